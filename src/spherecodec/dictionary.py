"""Trained dictionaries: a codec's shared state fitted once on a sample, kept apart from the
data, so that frames (``spherecodec.frames``) of one vector each need no table of their own.

* ``exact``: the frequency table of the float32 head symbols (sign, exponent, top 3
  mantissa bits) counted over the sample, plus an escape symbol for every head symbol the
  sample never showed (``kernels.frames``).
* codecs with a reusable fitted state (``int8``, ``int4``, ``binary``, ``pq``, ...): that
  state (``spherecodec.fit``), as the codec's shared section.

Bytes (little endian; docs/format.md section 5.1)::

    0   4  magic b"SPHD"
    4   2  version (1)
    6   2  flags (0)
    8   4  meta_len
    12  4  body_len
    16     metadata JSON {"codec", "params", "dtype", "dim"} (sorted keys, no spaces)
    ..     body: exact: u8 precision, frequency table (format.md 2.1's table layout) over
           4,097 symbols; other codecs: the codec's shared section
    ..  8  XXH64 of every byte above: the dictionary's id
"""

import json
import struct

import ml_dtypes
import numpy as np

from .codecs import get_codec
from .errors import CorruptBlobError, TruncatedBlobError, UnsupportedError
from .fit import fit
from .kernels import frames as _kf
from .kernels import rans as _rans
from .kernels.checksum import xxh64
from .kernels.rans_core import MAX_PRECISION
from .layout import checksum, meta_bytes
from .pipeline import as_rows, blob_errors, float32_if_exact

__all__ = ["Dictionary", "train_dictionary", "DICTIONARY_MAGIC", "DICTIONARY_VERSION", "BFLOAT16"]

DICTIONARY_MAGIC = b"SPHD"
DICTIONARY_VERSION = 1
#: magic, version, flags, meta_len, body_len
_FIXED = struct.Struct("<4sHHII")
_ID = struct.Struct("<Q")
#: longest metadata JSON accepted
_MAX_META = 1 << 16
#: the exact dictionary's table precision: 2**12 slots keep the decoder's tables (24 KiB) in
#: L1 (MiniLM, 6,803 frames: ratio 1.1840 at 12 bits, 1.1888 at 15; the batch decoder
#: 1.9 us per frame at 12 bits, 3.0 at 15)
EXACT_PRECISION = 12
#: the lowest precision a reader accepts: the escape's uniform 6-bit steps need 2**6 slots
MIN_EXACT_PRECISION = 10
#: the escape's share of the sample's counts: about one value in 2**16 (at least one count)
_ESCAPE_SHIFT = 16


#: numpy's bfloat16 (ml_dtypes registers it)
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


def bfloat16_as_float32(x):
    """The float32 of every bfloat16 value of ``x``, bit for bit (its 16 bits, then 16 zero bits)."""
    bits = np.ascontiguousarray(x).view(np.uint16).astype(np.uint32) << np.uint32(16)
    return bits.view(np.float32).reshape(np.shape(x))  # a 0-d array stays 0-d


def float32_rows(array, what):
    """``array`` as C-contiguous native float32 (float input float32 holds exactly is
    converted, bfloat16 too); anything else raises UnsupportedError naming ``what``."""
    x = np.asarray(array)
    if x.dtype == np.float32 and x.dtype.isnative:
        return np.ascontiguousarray(x)
    if x.dtype == BFLOAT16:
        return bfloat16_as_float32(x)
    if x.dtype.kind != "f":
        raise UnsupportedError(f"{what} must be float32, not {x.dtype}")
    converted = float32_if_exact(x)
    if converted is None:
        raise UnsupportedError(f"{what} has {x.dtype.name} values float32 cannot hold exactly; "
                               "convert it with .astype(np.float32) to accept the rounding")
    return np.ascontiguousarray(converted)


class Dictionary:
    """A codec's state trained on a sample (``spherecodec.train_dictionary``), for frames.

    Store it once (``to_bytes``; ``Dictionary.from_bytes`` reads it back) and pass it to
    ``spherecodec.encode``/``decode`` (``dictionary=``), ``encode_many``, ``decode_many``.
    Frames name it by ``id`` (the XXH64 of its bytes, so equal content has equal ids), and a
    frame decodes only with the dictionary it was coded with.

    Attributes
    ----------
    codec : str
        The codec name.
    params : dict
        The codec's parameters.
    dim : int
        Values per row of the training sample (the rows int8 and the other fitted codecs
        code; an exact dictionary codes vectors of any length).
    id : int
        64-bit content hash; ``hex_id`` is its 16 hex digits, frames hold its low 32 bits.
    """

    def __init__(self, codec, params, dim, body, *, raw=None):
        self.codec = codec
        self.params = dict(params)
        self.dim = int(dim)
        self.dtype = "float32"
        self._body = bytes(body)
        meta = meta_bytes({"codec": codec, "params": self.params, "dtype": self.dtype, "dim": self.dim})
        if raw is None:
            head = _FIXED.pack(DICTIONARY_MAGIC, DICTIONARY_VERSION, 0, len(meta), len(self._body))
            raw = head + meta + self._body
            raw += _ID.pack(checksum(raw))
        self._bytes = bytes(raw)
        (self.id,) = _ID.unpack_from(self._bytes, len(self._bytes) - _ID.size)
        self.id32 = self.id & 0xFFFFFFFF
        self.check_key = self.id >> 32
        if codec == "exact":
            self._load_exact(self._body)
        else:
            self._load_fitted(self._body)

    # -- the exact table -------------------------------------------------------------------
    def _load_exact(self, body):
        if self.params:
            raise CorruptBlobError(f"exact dictionary with parameters {self.params}")
        buf = np.frombuffer(body, dtype=np.uint8)
        if buf.size < 2:
            raise CorruptBlobError("exact dictionary body is shorter than its table")
        precision = int(buf[0])
        if not MIN_EXACT_PRECISION <= precision <= MAX_PRECISION:
            raise CorruptBlobError(f"exact dictionary table precision {precision}, not in "
                                   f"{MIN_EXACT_PRECISION}..{MAX_PRECISION}")
        slots = 1 << precision
        alphabet = _kf.FRAME_ALPHABET
        symbols = np.empty(min(alphabet, slots), dtype=np.int64)
        freqs = np.empty(min(alphabet, slots), dtype=np.int64)
        slot_table = np.empty(slots, dtype=np.uint32)
        slot_symbol = np.empty(slots, dtype=np.uint16)
        used, end = _rans.read_table(buf, 1, alphabet, precision, symbols, freqs, slot_table, slot_symbol)
        if end < 0 or used == 0:
            raise CorruptBlobError("exact dictionary table is malformed")
        if end != buf.size:
            raise CorruptBlobError(f"{buf.size - end} bytes follow the exact dictionary's table")
        freq = np.zeros(alphabet, dtype=np.int64)
        freq[symbols[:used]] = freqs[:used]
        if freq[_kf.ESCAPE] == 0:
            raise CorruptBlobError("exact dictionary table gives the escape symbol no frequency")
        self.precision = precision
        self.frequencies = freq
        self.encoder_table = _rans.encoder_table(freq)
        self.slot_table = slot_table
        self.slot_symbol = slot_symbol
        self.state = None
        self.codec_object = None
        # a coded value keeps its 20 raw bits; a stored frame is 1:1
        self.max_expansion = 32.0 / 20.0

    @classmethod
    def _train_exact(cls, rows, precision=None):
        precision = EXACT_PRECISION if precision is None else precision
        counts = np.zeros(_kf.FRAME_ALPHABET, dtype=np.int64)
        _kf.head_counts(rows.view(np.uint32), counts)
        counts[_kf.ESCAPE] = max(1, rows.size >> _ESCAPE_SHIFT)
        freq = _rans.quantize_counts(counts, precision, _rans.CAP_SHIFT)
        body = np.empty(1 + 6 * _kf.FRAME_ALPHABET + 10, dtype=np.uint8)
        body[0] = precision
        end = _rans.write_table(freq, body, 1)
        return cls("exact", {}, rows.shape[1], body[:end].tobytes())

    # -- fitted codecs ---------------------------------------------------------------------
    def _load_fitted(self, body):
        codec = get_codec(self.codec).from_config(self.params)
        if not codec.reusable_state:
            raise UnsupportedError(f"codec {self.codec!r} has no state for a dictionary")
        codec.check_dtype(np.float32)
        with blob_errors(f"dictionary state of codec {self.codec!r} is invalid"):
            self.state = codec.load_shared(np.frombuffer(body, dtype=np.uint8), np.dtype(np.float32), self.dim)
        self.codec_object = codec
        self.max_expansion = codec.expansion_bound(self.state)

    # -- bytes -----------------------------------------------------------------------------
    def to_bytes(self):
        """The dictionary's bytes (``Dictionary.from_bytes`` reads them)."""
        return self._bytes

    @classmethod
    def from_bytes(cls, data):
        """The dictionary ``to_bytes`` wrote; CorruptBlobError (or TruncatedBlobError,
        UnsupportedError) when ``data`` is not one."""
        try:
            view = memoryview(data).cast("B")
        except TypeError:
            raise TypeError(f"dictionary bytes must be bytes-like, not {type(data).__name__}") from None
        size = len(view)
        if size < _FIXED.size + _ID.size:
            if bytes(view[:4]) != DICTIONARY_MAGIC[:min(4, size)]:
                raise CorruptBlobError("not a spherecodec dictionary (bad magic)")
            raise TruncatedBlobError(f"dictionary of {size} bytes is shorter than its {_FIXED.size}-byte header")
        magic, version, flags, meta_len, body_len = _FIXED.unpack_from(view, 0)
        if magic != DICTIONARY_MAGIC:
            raise CorruptBlobError("not a spherecodec dictionary (bad magic)")
        if version != DICTIONARY_VERSION or flags:
            raise UnsupportedError(f"dictionary version {version} (flags {flags:#x}) is not supported; this build "
                                   f"reads version {DICTIONARY_VERSION}")
        if meta_len > _MAX_META:
            raise CorruptBlobError(f"dictionary metadata length {meta_len} exceeds {_MAX_META}")
        end = _FIXED.size + meta_len + body_len
        if end + _ID.size != size:
            if end + _ID.size > size:
                raise TruncatedBlobError(f"dictionary holds {size} bytes; its header announces {end + _ID.size}")
            raise CorruptBlobError(f"{size - end - _ID.size} bytes follow the dictionary")
        (stored,) = _ID.unpack_from(view, end)
        if int(xxh64(np.frombuffer(view[:end], dtype=np.uint8))) != stored:
            raise CorruptBlobError("dictionary checksum mismatch")
        try:
            meta = json.loads(bytes(view[_FIXED.size:_FIXED.size + meta_len]))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise CorruptBlobError("dictionary metadata is not valid JSON") from None
        if (not isinstance(meta, dict) or set(meta) != {"codec", "params", "dtype", "dim"}
                or not isinstance(meta["codec"], str) or not isinstance(meta["params"], dict)
                or type(meta["dim"]) is not int or not 0 < meta["dim"] < 1 << 31):
            raise CorruptBlobError("dictionary metadata lacks or mistypes codec, params, dtype, dim")
        if meta["dtype"] != "float32":
            raise UnsupportedError(f"dictionary dtype {meta['dtype']!r} is not supported")
        body = bytes(view[_FIXED.size + meta_len:end])
        return cls(meta["codec"], meta["params"], meta["dim"], body, raw=bytes(view))

    @property
    def hex_id(self):
        """The id as 16 hex digits."""
        return f"{self.id:016x}"

    def __eq__(self, other):
        return isinstance(other, Dictionary) and self._bytes == other._bytes

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"Dictionary(codec={self.codec!r}, params={self.params}, dim={self.dim}, id={self.hex_id})"


def train_dictionary(sample, codec="exact", **params):
    """Fit ``codec``'s shared state on ``sample`` into a :class:`Dictionary` for frames.

    Parameters
    ----------
    sample : array_like
        float32 rows (2-D, or N-D with rows over the last axis), like the vectors the frames
        will hold: a few thousand rows are plenty (bfloat16 is read as the float32 it holds).
    codec : str
        ``"exact"`` (default: the head-symbol frequency table; takes no parameters), or a
        codec with a fitted state: ``"int8"``, ``"int4"``, ``"binary"``, ``"pq"``.
    **params
        The codec's parameters (as for ``spherecodec.encode``).

    Examples
    --------
    >>> import numpy as np, spherecodec
    >>> x = np.random.default_rng(0).standard_normal((1000, 64)).astype(np.float32)
    >>> d = spherecodec.train_dictionary(x[:500])
    >>> frame = spherecodec.encode(x[600], dictionary=d)
    >>> bool((spherecodec.decode(frame, dictionary=d) == x[600]).all())
    True
    """
    if not isinstance(codec, str):
        raise TypeError(f"codec must be a codec name, not {type(codec).__name__}")
    rows = as_rows(float32_rows(sample, "the dictionary sample"))
    if rows.shape[0] == 0 or rows.shape[1] == 0:
        raise ValueError(f"cannot train a dictionary on an empty sample (shape {np.shape(sample)})")
    if codec == "exact":
        if params:
            raise TypeError(f"an exact dictionary takes no parameters, not {', '.join(sorted(params))}")
        return Dictionary._train_exact(rows)
    codec_class = get_codec(codec)
    if not codec_class.reusable_state:
        raise UnsupportedError(f"codec {codec!r} has no fitted state to put in a dictionary; "
                               "dictionaries hold the exact codec's table or a fitted codec's state "
                               "(int8, int4, binary, pq)")
    fitted = fit(codec, rows, **params)
    inner, state = fitted.codec, fitted.state
    return Dictionary(inner.name, inner.stored_config(state), rows.shape[1], bytes(inner.shared_bytes(state)))
