"""The bit-exact codec: sign + exponent + top mantissa bits entropy-coded, low bits raw."""

from dataclasses import dataclass

import numpy as np

from .. import entropy
from ..errors import CorruptBlobError, UnsupportedError
from ..kernels.bits import merge_low_bits, raw_size
from ..kernels.rans_core import FLOAT32_RAW_BITS
from ..scratch import recycle, take_buffer
from .base import NO_STATE, Codec
from .exact_models import MAX_LEVEL, Model
from .registry import register_codec
from .sphere import decode_residual_chunk, encode_residual_chunk

# per dtype: unsigned view type, bits in sign + exponent, default top mantissa bits in symbol
_LAYOUT = {
    "float32": (np.uint32, 9, 3),
    "float64": (np.uint64, 12, 3),
    "float16": (np.uint16, 6, 3),
}
# symbols index 2**15 entries at most so that the rANS tables can hold every one
MAX_SYMBOL_BITS = 15
MODE_CODED = 0
MODE_STORED = 1
MODE_MODELLED = 2  # levels >= 2: context-modelled chunk (codecs/exact_models.py)
MODE_SPHERICAL = 3  # transform="spherical"/"auto": angles + exact residual (codecs/sphere.py)
TRANSFORMS = ("none", "spherical", "auto")


@dataclass(frozen=True)
class ExactState:
    """The exact codec's state at levels >= 2: the fitted model (``exact_models.Model``).

    Without a model (level 1, or no model paid on the array) the state is ``NO_STATE``.
    """

    model: Model


@register_codec
class ExactCodec(Codec):
    """Lossless: every bit comes back (NaN payloads, infinities, signed zeros, subnormals).

    Each chunk is ``u8 mode`` then, when coded, the raw low bits of every value
    (``kernels.bits`` layout) and one entropy stream of the high symbols; a chunk that
    would not shrink is stored verbatim (mode 1, little endian).

    Parameters
    ----------
    mantissa_bits : int or None
        Top mantissa bits coded with the sign and exponent as one rANS symbol (default 3,
        measured best on real embeddings); the remaining low bits are stored raw.
    entropy : {"numba", "constriction"}
        Entropy coder backend. Both write the same container and decode alike.
    level : int
        1 (default): one frequency table per chunk, fastest. 2 to 5: per-blob models that
        code each value's head symbol with a table chosen from a bit-exact linear
        prediction (2: column groups only; 3, 4, 5: predicted from up to 32, 128, all
        earlier coordinates), slower as they go; float32 only. See docs/exact-levels.md.
    transform : {None, "none", "spherical", "auto"}
        float32 rows of 2 or more values: "spherical" codes sphere-codec angles plus the
        exact residual to the original bits; "auto" keeps per chunk the smaller of that and
        the plain coding. None/"none" (default): plain. See docs/sphere.md.
    """

    name = "exact"
    dtypes = tuple(_LAYOUT)
    max_expansion = 16.0  # >= 1 raw bit per value of <= 16 bits, or stored verbatim

    def __init__(self, *, mantissa_bits=None, entropy="numba", level=1, transform=None):
        if transform is not None and transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {TRANSFORMS} or None, not {transform!r}")
        self.transform = "none" if transform is None else transform
        if not isinstance(level, (int, np.integer)) or isinstance(level, bool) or not 1 <= level <= MAX_LEVEL:
            raise ValueError(f"level must be an integer from 1 to {MAX_LEVEL}, not {level!r}")
        if level > 1 and mantissa_bits not in (None, 3):
            raise ValueError("mantissa_bits applies to level 1 only (levels >= 2 use 3)")
        self.level = int(level)
        if entropy not in entropy_backends():
            raise ValueError(f"entropy must be 'numba' or 'constriction', not {entropy!r}")
        if mantissa_bits is not None:
            if not isinstance(mantissa_bits, (int, np.integer)) or isinstance(mantissa_bits, bool):
                raise ValueError("mantissa_bits must be an integer")
            if not 0 <= mantissa_bits <= 6:
                raise ValueError("mantissa_bits must be between 0 and 6")
            mantissa_bits = int(mantissa_bits)
        self.mantissa_bits = mantissa_bits
        self.entropy = entropy

    def get_config(self):
        config = {"mantissa_bits": self.mantissa_bits, "entropy": self.entropy}
        if self.level != 1:  # absent at level 1, so level-1 blobs keep their bytes
            config["level"] = self.level
        if self.transform != "none":  # absent by default, so plain blobs keep their bytes
            config["transform"] = self.transform
        return config

    def _layout(self, dtype):
        utype, head_bits, default_m = _LAYOUT[np.dtype(dtype).name]
        m = default_m if self.mantissa_bits is None else self.mantissa_bits
        symbol_bits = head_bits + m
        if symbol_bits > MAX_SYMBOL_BITS:
            raise UnsupportedError(
                f"mantissa_bits={m} makes {symbol_bits}-bit symbols for {np.dtype(dtype).name}; "
                f"at most {MAX_SYMBOL_BITS - head_bits} fit")
        raw_bits = np.dtype(utype).itemsize * 8 - symbol_bits
        return utype, symbol_bits, raw_bits

    def check_dtype(self, dtype):
        super().check_dtype(dtype)
        self._layout(dtype)
        if self.level > 1 and np.dtype(dtype) != np.float32:
            raise UnsupportedError(f"exact level {self.level} codes float32 only; use level=1 for "
                                   f"{np.dtype(dtype).name}")

    def prepare(self, rows):
        if self.level > 1:
            model = Model.fit(rows, self.level)
            if model is not None:
                return ExactState(model)
        return NO_STATE

    def shared_bytes(self, state):
        if self.level == 1 or state is NO_STATE:
            return b""
        # no side effect: the pipeline asks before and after the chunks are coded
        return state.model.to_bytes()

    def load_shared(self, data, dtype, dim):
        if self.level == 1 or not data.size:
            return super().load_shared(data, dtype, dim)
        return ExactState(Model.from_bytes(data, self.level, dim))

    def encode_chunk(self, rows, state):
        if self.transform != "none" and rows.dtype == np.float32 and rows.shape[1] >= 2:
            return self._encode_chunk_spherical(rows, state)
        return self._encode_chunk_plain(rows, state)

    def _encode_chunk_spherical(self, rows, state):
        """The sphere codes plus the exact residual (``sphere.encode_residual_chunk``);
        with ``transform="auto"`` the smaller of that and the plain chunk."""
        payload = encode_residual_chunk(rows, MODE_SPHERICAL)
        # the exact codec promises at most max_expansion decoded bytes per blob byte, and
        # never more than 1 + nbytes per chunk: beyond either, the plain chunk is taken
        fits = self.max_expansion * payload.size >= rows.nbytes and payload.size <= 1 + rows.nbytes
        if self.transform == "auto" or not fits:
            plain = self._encode_chunk_plain(rows, state)
            if len(plain) <= payload.size or not fits:
                recycle([payload])
                return plain
            recycle([plain])
        return payload

    def _encode_chunk_plain(self, rows, state):
        if state is not NO_STATE and rows.dtype == np.float32:
            payload = state.model.encode_chunk(rows, MODE_MODELLED)
            if payload is not None and payload.size <= 1 + rows.nbytes:
                return payload
        utype, symbol_bits, raw_bits = self._layout(rows.dtype)
        values = rows.reshape(-1).view(utype)
        alphabet = 1 << symbol_bits
        nraw = raw_size(values.size, raw_bits)
        out = take_buffer(1 + nraw + entropy.stream_capacity(values.size, alphabet))
        out[0] = MODE_CODED
        # float32 values at the default split: the 32-lane layout (for long chunks), which
        # decodes 2x faster; raw bits and stream in one nogil call with the Numba backend
        wide = raw_bits == FLOAT32_RAW_BITS and values.dtype == np.uint32
        end = entropy.encode_stream_into(values, alphabet, out, 1, shift=raw_bits, backend=self.entropy,
                                         wide=wide, raw_bits=True)
        if end > 1 + values.nbytes:
            out[0] = MODE_STORED
            out[1:1 + values.nbytes] = values.astype(values.dtype.newbyteorder("<"), copy=False).view(np.uint8)
            end = 1 + values.nbytes
        return out[:end]

    def decode_chunk(self, payload, out, state):
        utype, symbol_bits, raw_bits = self._layout(out.dtype)
        values = out.reshape(-1).view(utype)
        if payload.size < 1:
            raise CorruptBlobError("empty chunk")
        mode = int(payload[0])
        if mode == MODE_STORED:
            if payload.size != 1 + values.nbytes:
                raise CorruptBlobError(f"stored chunk holds {payload.size - 1} bytes, {values.nbytes} expected")
            values[:] = payload[1:].view(np.dtype(utype).newbyteorder("<"))
            return
        if mode == MODE_SPHERICAL and self.transform != "none":
            return decode_residual_chunk(payload, out)
        if mode == MODE_MODELLED and self.level > 1:
            if state is NO_STATE:
                raise CorruptBlobError("context-modelled chunk in a blob without a model")
            return state.model.decode_chunk(payload, out)
        if mode != MODE_CODED:
            raise CorruptBlobError(f"unknown chunk mode {mode}")
        nraw = raw_size(values.size, raw_bits)
        if payload.size < 1 + nraw:
            raise CorruptBlobError(f"chunk holds {payload.size} bytes, its raw bits alone need {nraw}")
        raw = payload[1:1 + nraw]
        fuse = raw_bits == FLOAT32_RAW_BITS and values.dtype == np.uint32
        end = entropy.decode_stream(payload, 1 + nraw, 1 << symbol_bits, values,
                                    raw20=raw if fuse else None)
        if end != payload.size:
            raise CorruptBlobError(f"{payload.size - end} unexpected bytes after the chunk's stream")
        if raw_bits and not fuse:
            merge_low_bits(values, raw, raw_bits)


def entropy_backends():
    """Names of the entropy coder backends."""
    return tuple(entropy.BACKENDS)
