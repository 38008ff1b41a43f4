"""Frames: one vector (or a few rows) coded against a trained ``Dictionary``.

A blob carries everything it needs to decode (JSON metadata, the codec's shared section,
a chunk index, checksums: ~190 bytes), which costs more than a single 384-d vector gains.
A frame carries only what differs between vectors; the model lives in the dictionary,
stored once. Layout (little endian; docs/format.md section 5)::

    u8      kind     0xE0 exact, coded; 0xE1 exact, stored verbatim; 0xE2 exact, one
                     value repeated; 0xE3 exact, coded without the low bits every value
                     has zero; 0xE4 a fitted codec's chunk payload (the dictionary names
                     the codec); 0xE5 one rabitq row (its factors in float32, its codes);
                     0xE8-0xEB bfloat16 values as the float32 they hold, in the modes of
                     0xE0-0xE3 (decoded back to bfloat16)
    u32     the dictionary id's low 32 bits
    u8      ndim     0, 1 or 2
    varint  rows     (ndim 2 only)
    varint  dim      (ndim >= 1)
    ...     payload
    u32     check    low 32 bits of XXH64(every byte before it) XOR the id's high 32 bits

Small inputs are the point, so the calls here do the least Python they can: the exact
codec's frames are written and read by one nogil kernel call each (``kernels.frames``);
``encode_many``/``decode_many`` code a whole batch of frames in one call.
"""

import functools

import numpy as np

from .dictionary import BFLOAT16, Dictionary, bfloat16_as_float32, float32_rows
from .errors import CorruptBlobError, DictionaryError, TruncatedBlobError, UnsupportedError
from .kernels import frames as _kf
from .kernels import rabitq as _kr
from .kernels.checksum import xxh64
from .kernels.rans_core import STATUS_OK
from .layout import ALLOCATION_SLACK, MAGIC
from .pipeline import blob_errors, payload_bytes
from .scratch import release as release_scratch
from .scratch import scratch

__all__ = ["encode", "decode", "info", "encode_many", "decode_many", "is_frame", "KIND_EXACT", "KIND_STORED",
           "KIND_CONSTANT", "KIND_SHIFTED", "KIND_CHUNK", "KIND_RABITQ", "BFLOAT16_KINDS"]

KIND_EXACT = 0xE0 + _kf.MODE_CODED
KIND_STORED = 0xE0 + _kf.MODE_STORED
KIND_CONSTANT = 0xE0 + _kf.MODE_CONSTANT
KIND_SHIFTED = 0xE0 + _kf.MODE_SHIFTED
KIND_CHUNK = 0xE4
KIND_RABITQ = 0xE5
_KIND_BASE = 0xE0
#: bfloat16 exact frames: the float32 kinds with this bit set (0xE8-0xEB)
_BFLOAT16_BIT = 0x08
_BFLOAT16_BASE = _KIND_BASE | _BFLOAT16_BIT
_EXACT_KINDS = (KIND_EXACT, KIND_STORED, KIND_CONSTANT, KIND_SHIFTED)
BFLOAT16_KINDS = tuple(k | _BFLOAT16_BIT for k in _EXACT_KINDS)
#: kinds whose few bytes may stand for many values (kernels.frames.DENSE_EXPANSION)
_DENSE_KINDS = (KIND_CONSTANT, KIND_SHIFTED, KIND_CONSTANT | _BFLOAT16_BIT, KIND_SHIFTED | _BFLOAT16_BIT)
_KINDS = _EXACT_KINDS + (KIND_CHUNK, KIND_RABITQ) + BFLOAT16_KINDS
_KIND_NAMES = {KIND_EXACT: "exact", KIND_STORED: "exact (stored)", KIND_CONSTANT: "exact (constant)",
               KIND_SHIFTED: "exact (zero low bits)", KIND_CHUNK: "fitted codec", KIND_RABITQ: "rabitq row"}
_KIND_NAMES.update({k | _BFLOAT16_BIT: name for k, name in _KIND_NAMES.items() if k in _EXACT_KINDS})
#: fixed header bytes before the shape's varints, and the check's bytes
_FIXED = 6
_CHECK = 4
_MAX_NDIM = 2
#: extents a frame header may announce (varints beyond are damage)
_MAX_EXTENT = 1 << 40


def is_frame(data):
    """True when ``data`` starts like a frame (its kind byte), not like a blob."""
    try:
        return len(data) > 0 and data[0] in _KINDS
    except TypeError:  # not bytes-like: the blob reader says so
        return False


def _check_dictionary(dictionary):
    if not isinstance(dictionary, Dictionary):
        raise TypeError(f"dictionary must be a spherecodec.Dictionary (spherecodec.train_dictionary, "
                        f"Dictionary.from_bytes), not {type(dictionary).__name__}")


def _capacity(n):
    # kernels.frames.frame_capacity, in Python: a Numba call costs more than the arithmetic
    raw = 2 * n + (n + 1) // 2
    return _FIXED + 20 + max(1 + raw + _kf.STATES_BYTES + 6 * n + 4, 4 * n) + _CHECK


def _header(kind, dictionary, shape):
    out = bytearray([kind]) + dictionary.id32.to_bytes(4, "little") + bytes([len(shape)])
    for extent in shape:
        while extent >= 0x80:
            out.append((extent & 0x7F) | 0x80)
            extent >>= 7
        out.append(extent)
    return out


def _shape_of(x):
    if x.ndim > _MAX_NDIM:
        raise ValueError(f"a frame holds a vector or a 2-D block of rows, not a {x.ndim}-D array "
                         f"(shape {x.shape}); reshape it or encode it as a blob (no dictionary)")
    return x.shape


# -- encode ------------------------------------------------------------------------------------
def encode(array, dictionary):
    """A frame of ``array`` (float32: a vector, a scalar or a 2-D block of rows) coded with
    ``dictionary``; bytes (``spherecodec.encode(x, dictionary=d)``). bfloat16 input makes a
    bfloat16 frame with an exact dictionary (decoded as bfloat16), and is read as the float32
    it holds by the other codecs."""
    _check_dictionary(dictionary)
    x = array
    kind_base = _KIND_BASE
    if not (type(x) is np.ndarray and x.dtype == np.float32 and x.flags.c_contiguous and x.dtype.isnative):
        if getattr(x, "dtype", None) == BFLOAT16 and dictionary.codec == "exact":
            kind_base = _BFLOAT16_BASE
        x = float32_rows(array, "the array to code in a frame")
    shape = _shape_of(x)
    if dictionary.codec != "exact":
        return _encode_chunk_frame(x, dictionary, shape)
    ndim = x.ndim
    rows = shape[0] if ndim == 2 else 1
    dim = shape[-1] if ndim else 1
    out = np.empty(_capacity(x.size), dtype=np.uint8)
    end = _kf.encode_frame(x.reshape(-1).view(np.uint32), kind_base, dictionary.id32, dictionary.check_key, rows,
                           dim, ndim, dictionary.encoder_table, dictionary.precision, out)
    return out[:end].tobytes()


def _check_dim(dictionary, shape):
    dim = shape[-1] if shape else 1
    if dim != dictionary.dim:  # checked before any reshape: reshape(-1, 0) is ambiguous
        raise ValueError(f"the {dictionary.codec} dictionary codes rows of {dictionary.dim} values, "
                         f"not {dim} (shape {shape})")
    return dim


def _encode_chunk_frame(x, dictionary, shape):
    dim = _check_dim(dictionary, shape)
    if dictionary.codec == "rabitq" and len(shape) <= 1:
        return _encode_rabitq_frames(x.reshape(1, dim), dictionary, shape)[0]
    rows = x.reshape(-1, dim)
    payload = payload_bytes(dictionary.codec_object.encode_chunk(rows, dictionary.state))
    frame = _header(KIND_CHUNK, dictionary, shape) + payload.tobytes()
    return bytes(_seal(frame, dictionary))


# -- rabitq rows ------------------------------------------------------------------------------
def _rabitq_row_dtype(dictionary):
    """One rabitq frame's payload as a record: the row's factor and offset as float32 (what
    a one-row chunk's float16 multiples of float32 scales decode to), its cosine, its packed
    codes (``codecs.rabitq``'s chunk payload without the chunk's scales and mode byte)."""
    return _record_dtype((dictionary.dim * dictionary.codec_object.bits + 7) // 8)


@functools.lru_cache(maxsize=64)
def _record_dtype(width):
    # made once per code width: a structured dtype costs microseconds to build
    return np.dtype([("factor", "<f4"), ("offset", "<f4"), ("cosine", "<u2"), ("codes", "u1", (width,))])


def _encode_rabitq_frames(rows, dictionary, shape):
    """One KIND_RABITQ frame of ``shape`` per row of ``rows`` (n, dim): the codec's codes of
    each row, bit for bit, and its factors in float32."""
    codec, state = dictionary.codec_object, dictionary.state
    c = codec.codes(rows, state)
    records = np.empty(rows.shape[0], dtype=_rabitq_row_dtype(dictionary))
    with np.errstate(over="ignore"):
        records["factor"] = c.factor.astype(np.float32) + np.float32(0)  # + 0: no -0.0
        records["offset"] = c.offset.astype(np.float32) + np.float32(0)
    if not (np.isfinite(records["factor"]).all() and np.isfinite(records["offset"]).all()):
        raise ValueError("codec 'rabitq': values too large for float32 arithmetic; scale the rows down")
    records["cosine"] = c.cosine
    _kr.pack_codes(c.codes, codec.bits, records["codes"])
    header = np.frombuffer(bytes(_header(KIND_RABITQ, dictionary, shape)), dtype=np.uint8)
    payloads = records.view(np.uint8).reshape(rows.shape[0], records.itemsize)
    out = np.empty((rows.shape[0], header.size + records.itemsize + _CHECK), dtype=np.uint8)
    _kf.assemble_frames(header, payloads, dictionary.check_key, out)
    return [row.tobytes() for row in out]


def _decode_rabitq_payloads(payloads, dictionary, out):
    """Rows of KIND_RABITQ payloads (n, record bytes) into ``out`` (n, dim) float32."""
    codec, state = dictionary.codec_object, dictionary.state
    if out.shape != (payloads.shape[0], dictionary.dim):  # the kernel trusts its shapes
        raise CorruptBlobError(f"rabitq frames of shape {out.shape[1:]}, the dictionary codes rows of {dictionary.dim}")
    records = np.ascontiguousarray(payloads).view(_rabitq_row_dtype(dictionary)).reshape(-1)
    factor = records["factor"].astype(np.float64)
    offset = records["offset"].astype(np.float64)
    if not (np.isfinite(factor).all() and np.isfinite(offset).all()) or (factor < 0).any():
        raise CorruptBlobError("rabitq frame holds non-finite or negative row factors")
    codes = np.empty((records.size, dictionary.dim), dtype=np.uint8)
    if _kr.unpack_codes(np.ascontiguousarray(records["codes"]), codec.bits, codes):
        raise CorruptBlobError("rabitq frame's padding bits are set")
    _kr.decode_rows(codes, factor, offset, state.center, state.signs, state.length, state.scale, codec.bits, out)


def _seal(frame, dictionary):
    h = int(xxh64(np.frombuffer(frame, dtype=np.uint8))) ^ dictionary.check_key
    frame += (h & 0xFFFFFFFF).to_bytes(4, "little")
    return frame


def encode_many(rows, dictionary):
    """One 1-D frame per row of ``rows`` (2-D float32), as a list of bytes: what a store
    that keeps one vector per record writes. The exact codec's frames are coded in one call."""
    _check_dictionary(dictionary)
    kind_base = _BFLOAT16_BASE if getattr(rows, "dtype", None) == BFLOAT16 else _KIND_BASE
    x = float32_rows(rows, "the rows to code in frames")
    if x.ndim != 2:
        raise ValueError(f"encode_many takes a 2-D array of rows, not shape {x.shape}")
    if dictionary.codec == "rabitq":
        _check_dim(dictionary, x.shape)
        return _encode_rabitq_frames(x, dictionary, x.shape[1:])
    if dictionary.codec != "exact":
        return [_encode_chunk_frame(row, dictionary, row.shape) for row in x]
    n, dim = x.shape
    cap = _capacity(dim)
    # a reused buffer: a fresh one of this size costs a page fault per 4 KiB on every call
    out = scratch("frames.encode_many", n * cap, np.uint8)
    ends = np.empty(n, dtype=np.int64)
    end = _kf.encode_frames(x.view(np.uint32), kind_base, dictionary.id32, dictionary.check_key,
                            dictionary.encoder_table, dictionary.precision, out, ends)
    data = out[:end].tobytes()
    release_scratch()  # keeps it unless this thread's scratch outgrew its limit
    starts = [0] + ends[:-1].tolist()
    return [data[a:b] for a, b in zip(starts, ends.tolist())]


# -- reading -----------------------------------------------------------------------------------
class FrameHeader:
    """A parsed frame header: ``kind``, ``id32``, ``shape``, ``size`` (header bytes)."""

    __slots__ = ("kind", "id32", "shape", "size", "count")

    def __init__(self, frame):
        n = len(frame)
        if n == 0:
            raise TruncatedBlobError("empty frame")
        kind = int(frame[0])  # bytes, memoryview or a uint8 array: plain ints from here
        if kind not in _KINDS:
            if bytes(frame[:4]) == MAGIC:
                raise UnsupportedError("this is a spherecodec blob, not a frame: decode it without dictionary=")
            raise CorruptBlobError(f"not a spherecodec frame (kind byte {kind:#04x})")
        if n < _FIXED + _CHECK:
            raise TruncatedBlobError(f"frame of {n} bytes is shorter than its header and check")
        self.kind = kind
        self.id32 = int.from_bytes(frame[1:5], "little")
        ndim = int(frame[5])
        if ndim > _MAX_NDIM:
            raise CorruptBlobError(f"frame announces {ndim} dimensions (at most {_MAX_NDIM})")
        pos = _FIXED
        shape = []
        for _ in range(ndim):
            value = shift = 0
            while True:
                if pos >= n - _CHECK or shift > 35:
                    raise TruncatedBlobError("frame ends inside its shape")
                b = int(frame[pos])
                pos += 1
                value |= (b & 0x7F) << shift
                shift += 7
                if b < 0x80:
                    break
            if value >= _MAX_EXTENT:
                raise CorruptBlobError(f"frame announces an extent of {value}")
            shape.append(value)
        self.shape = tuple(shape)
        self.size = pos
        count = 1
        for extent in shape:
            count *= extent
        self.count = count


def _header_for(frame, dictionary):
    """The header of ``frame`` for ``dictionary``; DictionaryError when it needs another."""
    header = FrameHeader(frame)
    if dictionary is None:
        raise DictionaryError(f"this frame needs dictionary {header.id32:08x}... (the low 32 bits of its id); "
                              "pass dictionary= to decode it")
    _check_dictionary(dictionary)
    if header.id32 != dictionary.id32:
        raise DictionaryError(f"this frame was coded with dictionary {header.id32:08x}..., not with "
                              f"{dictionary.hex_id}; pass the dictionary it names")
    kind = header.kind
    # integer comparisons, the fewest on the plain path: the single-vector call takes a few
    # microseconds, and each test shows in it (exact kinds: 0xE0-0xE3, bfloat16 0xE8-0xEB)
    if (KIND_SHIFTED < kind < _BFLOAT16_BASE) if dictionary.codec == "exact" else not (
            kind == KIND_CHUNK or (kind == KIND_RABITQ and dictionary.codec == "rabitq" and len(header.shape) <= 1)):
        raise CorruptBlobError(f"frame kind {kind:#04x} does not belong to a {dictionary.codec} dictionary")
    # a forged shape cannot make decode allocate at will (expansion_bound's bound; the dense
    # kinds' larger one looked for only when the usual one fails)
    if (4 * header.count > ALLOCATION_SLACK + dictionary.max_expansion * len(frame)
            and 4 * header.count > ALLOCATION_SLACK + expansion_bound(kind, dictionary) * len(frame)):
        raise CorruptBlobError(f"frame announces {header.count} values, more than its {len(frame)} bytes can hold")
    return header


def expansion_bound(kind, dictionary):
    """Decoded bytes per frame byte a frame of ``kind`` may stand for (besides
    ``layout.ALLOCATION_SLACK``): the dictionary's, or the dense kinds' larger one."""
    return _kf.DENSE_EXPANSION if kind in _DENSE_KINDS else dictionary.max_expansion


def _check_failed(dictionary):
    return CorruptBlobError(f"frame check mismatch: the frame is damaged, or was coded with another dictionary "
                            f"whose id shares its low 32 bits with {dictionary.hex_id}")


def decode(frame, dictionary, out=None):
    """The array a frame holds (``spherecodec.decode(frame, dictionary=d)``)."""
    header = _header_for(frame, dictionary)
    plain = header.kind <= KIND_SHIFTED  # float32 exact: the fewest steps (a few microseconds a call)
    dtype = np.float32 if header.kind < _BFLOAT16_BASE else BFLOAT16
    if out is None:
        result = np.empty(header.shape, dtype=dtype)
    else:
        if (not isinstance(out, np.ndarray) or out.shape != header.shape or out.dtype != dtype
                or not out.flags.c_contiguous or not out.flags.writeable):
            raise ValueError(f"out must be a writeable C-contiguous {np.dtype(dtype).name} array of shape "
                             f"{header.shape}")
        result = out
    data = np.frombuffer(frame, dtype=np.uint8)
    if data.flags.writeable:  # bytearray, a writable array: the kernel compiled for bytes serves it
        data = data.view()
        data.flags.writeable = False
    if not plain:
        return _decode_other(data, header, dictionary, result)
    status = _kf.decode_frame(data, header.size, _KIND_BASE, dictionary.check_key, dictionary.slot_table,
                              dictionary.slot_symbol, dictionary.precision, result.reshape(-1).view(np.uint32))
    if status != STATUS_OK:
        if status == _kf.STATUS_CHECK:
            raise _check_failed(dictionary)
        raise CorruptBlobError("frame payload does not decode")
    return result


def _decode_other(data, header, dictionary, result):
    """``decode`` of the frames that are not float32 exact ones: a fitted codec's chunk, a
    rabitq row, bfloat16 values."""
    if header.kind <= KIND_RABITQ:
        _decode_chunk_frame(data, header, dictionary, result)
        return result
    bits = np.empty(header.count, dtype=np.uint32)
    status = _kf.decode_frame(data, header.size, _BFLOAT16_BASE, dictionary.check_key, dictionary.slot_table,
                              dictionary.slot_symbol, dictionary.precision, bits)
    if status != STATUS_OK:
        if status == _kf.STATUS_CHECK:
            raise _check_failed(dictionary)
        raise CorruptBlobError("frame payload does not decode")
    _store_bfloat16(bits, result.reshape(-1))
    return result


def _store_bfloat16(bits, out):
    """``out`` (bfloat16) <- the float32 bits ``bits``, which must have 16 zero low bits."""
    if (bits & np.uint32(0xFFFF)).any():
        raise CorruptBlobError("bfloat16 frame holds values with nonzero low bits")
    out.view(np.uint16)[...] = bits >> np.uint32(16)


def _decode_chunk_frame(data, header, dictionary, result):
    h = (int(xxh64(data[:-_CHECK])) ^ dictionary.check_key) & 0xFFFFFFFF
    if h != int.from_bytes(data[-_CHECK:].tobytes(), "little"):
        raise _check_failed(dictionary)
    shape = header.shape
    dim = shape[-1] if shape else 1
    if dim != dictionary.dim:  # checked before the reshape: reshape(-1, 0) is ambiguous
        raise CorruptBlobError(f"frame rows of {dim} values, the dictionary codes {dictionary.dim}")
    rows = result.reshape(-1, dim)
    if header.kind == KIND_RABITQ:
        record = _rabitq_row_dtype(dictionary).itemsize
        payload = data[header.size:-_CHECK]
        if payload.size != record:
            raise CorruptBlobError(f"rabitq frame payload of {payload.size} bytes, {record} expected")
        _decode_rabitq_payloads(payload.reshape(1, record), dictionary, rows)
        return
    with blob_errors("frame payload does not decode"):
        dictionary.codec_object.decode_chunk(data[header.size:-_CHECK], rows, dictionary.state)


def decode_many(frames, dictionary):
    """The rows of many 1-D frames of one length as a 2-D float32 array (one row per
    frame; bfloat16 for bfloat16 frames), decoded in one call for the exact codec."""
    _check_dictionary(dictionary)
    frames = list(frames)
    if not frames:
        return np.empty((0, dictionary.dim), dtype=np.float32)
    first = _header_for(frames[0], dictionary)
    if len(first.shape) != 1:
        raise ValueError(f"decode_many takes frames of 1-D vectors; frame 0 holds shape {first.shape}")
    dim = first.shape[0]
    bfloat16 = first.kind >= _BFLOAT16_BASE
    if dictionary.codec == "rabitq":
        out = _decode_rabitq_many(frames, first, dictionary)
        if out is not None:
            return out
    if dictionary.codec != "exact":
        out = np.empty((len(frames), dim), dtype=np.float32)
        for i, frame in enumerate(frames):
            header = _header_for(frame, dictionary)
            if header.shape != first.shape:
                raise ValueError(f"frame {i} holds shape {header.shape}, frame 0 {first.shape}")
            _decode_chunk_frame(np.frombuffer(frame, dtype=np.uint8), header, dictionary, out[i])
        return out
    data = np.frombuffer(b"".join(frames), dtype=np.uint8)
    starts = np.zeros(len(frames) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, frames), dtype=np.int64, count=len(frames)), out=starts[1:])
    nbytes = 4 * dim * len(frames)
    # the dense kinds' larger bound is looked for only when the usual one fails
    if nbytes > ALLOCATION_SLACK + dictionary.max_expansion * data.size and (
            nbytes > ALLOCATION_SLACK + _kf.DENSE_EXPANSION * data.size
            or not any(frame[0] in _DENSE_KINDS for frame in frames)):
        raise CorruptBlobError(f"{len(frames)} frames of {dim} values cannot fit in {data.size} bytes")
    out = np.empty((len(frames), dim), dtype=np.float32)
    header = np.frombuffer(bytes(frames[0][:first.size]), dtype=np.uint8)
    status = _kf.decode_frames(data, starts, header, _BFLOAT16_BASE if bfloat16 else _KIND_BASE,
                               dictionary.check_key, dictionary.slot_table, dictionary.slot_symbol,
                               dictionary.precision, out.view(np.uint32))
    if status >= 0:
        i, what = divmod(int(status), 4)
        if (frames[i][0] >= _BFLOAT16_BASE) != bfloat16:
            names = ("float32", "bfloat16")
            raise ValueError(f"frame {i} holds {names[not bfloat16]} values, frame 0 {names[bfloat16]}")
        if what == 3:
            header = _header_for(frames[i], dictionary)  # raises for its own damage, or:
            if header.shape != first.shape:
                raise ValueError(f"frame {i} holds shape {header.shape}, frame 0 {first.shape}")
            raise CorruptBlobError(f"frame {i} is damaged (kind {frames[i][0]:#04x})")
        if what == _kf.STATUS_CHECK:
            raise CorruptBlobError(f"frame {i}: " + str(_check_failed(dictionary)))
        raise CorruptBlobError(f"frame {i}: payload does not decode")
    if bfloat16:
        result = np.empty((len(frames), dim), dtype=BFLOAT16)
        _store_bfloat16(out.view(np.uint32), result)
        return result
    return out


def _decode_rabitq_many(frames, first, dictionary):
    """decode_many's rows of rabitq frames in one call when every frame is a KIND_RABITQ
    frame of ``first``'s length; None when some are not (the caller decodes them one by one,
    and says which fails)."""
    size = len(frames[0])
    record = _rabitq_row_dtype(dictionary).itemsize
    if (first.kind != KIND_RABITQ or first.shape != (dictionary.dim,) or size != first.size + record + _CHECK
            or any(len(f) != size for f in frames)):
        return None
    data = np.frombuffer(b"".join(frames), dtype=np.uint8).reshape(len(frames), size)
    if _kf.check_frames(data, data[0, :first.size], dictionary.check_key) >= 0:
        return None
    out = np.empty((len(frames), first.shape[0]), dtype=np.float32)
    _decode_rabitq_payloads(data[:, first.size:size - _CHECK], dictionary, out)
    return out


def info(frame):
    """Header facts of a frame without decoding: kind, the dictionary it needs, shape."""
    header = FrameHeader(frame)
    bfloat16 = header.kind >= _BFLOAT16_BASE
    nbytes = (2 if bfloat16 else 4) * header.count
    size = len(frame)
    return {
        "format": "frame",
        # a fitted codec's frame names its codec only through the dictionary
        "codec": ("exact" if header.kind in _EXACT_KINDS or bfloat16 else "rabitq" if header.kind == KIND_RABITQ
                  else None),
        "kind": _KIND_NAMES[header.kind],
        "dictionary_id32": f"{header.id32:08x}",
        "dtype": "bfloat16" if bfloat16 else "float32",
        "shape": header.shape,
        "nbytes": nbytes,
        "compressed_nbytes": size,
        "ratio": nbytes / size,
        "header_nbytes": header.size,
    }
