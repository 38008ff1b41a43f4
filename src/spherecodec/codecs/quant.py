"""Lossy scalar quantization codecs: fp16, bf16, int8, int4 and binary (sign bits).

Every codec decodes to float32. int8, int4 and binary fit per-dimension state on the data
(``prepare`` returns it: ``AffineState``, ``BinaryState``; ``spherecodec.fit`` fits it once
for many batches); the state travels in the blob's shared section.

Chunk payload: ``u8 mode`` then the codes, raw (mode 0) or entropy-coded (mode 1) with the
rANS streams of ``spherecodec.entropy``. With ``entropy=True`` each chunk takes whichever of
the two is smaller, so entropy coding never costs more than the mode byte.

Error bounds (``x`` an input value, ``y`` its decoded value; see docs/quantization.md):

* fp16: ``|x - y| <= 2**-11 |x|`` for ``|x| >= 2**-14``, ``<= 2**-25`` below.
* bf16: ``|x - y| <= 2**-8 |x|`` (normal floats).
* int8/int4: ``|x - y| <= scale[d] / 2`` (plus float32 rounding of the decoded value) for
  ``x`` inside the fitted range of its dimension; values outside are clipped to the range.
* binary: ``y`` is the mean of the fitted sample's values on the same side of the threshold.
"""

from dataclasses import dataclass

import numpy as np

from .. import aot
from .. import entropy as _entropy
from ..errors import CorruptBlobError
from ..kernels import quant as _k
from ..kernels.bits import merge_low_bits, pack_low_bits, raw_size
from .registry import register_codec
from .base import NO_STATE, Codec, SearchableCodec

MODE_RAW = 0
MODE_CODED = 1
#: the rANS streams cap any symbol's probability at 255/256: a coded symbol costs at least
#: -log2(255/256) = 0.00565 bit, which bounds how far an entropy-coded blob can expand
MIN_BITS_PER_SYMBOL = 0.0056


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, not {value!r}")
    return bool(value)


def encode_symbols(symbols, alphabet, raw, use_entropy):
    """Chunk payload: mode byte then ``raw`` bytes, or the rANS stream of ``symbols``.

    The stream is chosen only when ``use_entropy`` and it is shorter than ``raw``.
    """
    raw = np.ascontiguousarray(raw).reshape(-1).view(np.uint8)
    if use_entropy and symbols.size:
        out = np.empty(1 + _entropy.stream_capacity(symbols.size, alphabet), dtype=np.uint8)
        end = _entropy.encode_stream_into(symbols, alphabet, out, 1)
        if end - 1 < raw.size:
            out[0] = MODE_CODED
            return out[:end]
    out = np.empty(1 + raw.size, dtype=np.uint8)
    out[0] = MODE_RAW
    out[1:] = raw
    return out


def decode_symbols(payload, n_symbols, alphabet, raw_size_bytes, use_entropy):
    """Split a payload written by ``encode_symbols``.

    Returns ``(mode, data)``: for mode 0 the raw bytes (length checked), for mode 1 the
    ``n_symbols`` decoded symbols as uint8 or uint16.
    """
    if payload.size < 1:
        raise CorruptBlobError("empty chunk")
    mode = int(payload[0])
    if mode == MODE_RAW:
        if payload.size != 1 + raw_size_bytes:
            raise CorruptBlobError(f"raw chunk holds {payload.size - 1} bytes, {raw_size_bytes} expected")
        return mode, payload[1:]
    if mode != MODE_CODED or not use_entropy:
        raise CorruptBlobError(f"unknown chunk mode {mode}")
    symbols = np.empty(n_symbols, dtype=np.uint8 if alphabet <= 256 else np.uint16)
    end = _entropy.decode_stream(payload, 1, alphabet, symbols)
    if end != payload.size:
        raise CorruptBlobError(f"{payload.size - end} unexpected bytes after the chunk's stream")
    return mode, symbols


class QuantCodec(Codec):
    """Shared behaviour of the lossy codecs: float32 output, a state fitted by ``prepare``
    that ``spherecodec.fit`` may reuse for other arrays of the same width."""

    dtypes = ("float32",)
    #: ``spherecodec.fit`` accepts these codecs: their state codes any array of its width
    reusable_state = True

    def __init__(self, *, entropy=False):
        self.entropy = _check_bool("entropy", entropy)

    def get_config(self):
        return {"entropy": self.entropy}

    def decoded_dtype(self, dtype):
        return np.dtype(np.float32)

    # -- fitting ---------------------------------------------------------------------
    def prepare(self, rows):
        if rows.shape[0] == 0:
            raise ValueError(f"codec {self.name!r} cannot fit on an empty array; fit it first")
        return self._fit(rows)

    def _fit(self, rows):
        """The state fitted on ``rows`` (2-D float32, at least one row)."""
        raise NotImplementedError

    def check_rows(self, rows, state):
        dim = state.dim
        if rows.shape[1] != dim:
            raise ValueError(f"codec was fitted on {dim}-dimensional rows, got {rows.shape[1]}")

    def _check_rows(self, rows, state):
        """``rows`` as C-contiguous 2-D float32 rows of the state's width."""
        rows = np.asarray(rows)
        if rows.dtype != np.float32:
            raise TypeError(f"codec {self.name!r} takes float32 arrays, not {rows.dtype}")
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2:
            rows = rows.reshape(-1, rows.shape[-1])
        rows = np.ascontiguousarray(rows)
        self.check_rows(rows, state)
        return rows

    def _check_dim(self, dim):
        if not isinstance(dim, int) or dim < 0:
            raise CorruptBlobError(f"bad dimension {dim!r}")


class CodesCodec(QuantCodec, SearchableCodec):
    """A lossy codec that codes each row as uint8 codes (int8, int4, binary, pq), searched
    on them: ``codes`` runs the subclass's ``_code_rows`` kernel on checked rows."""

    def _code_width(self, state):
        """Codes per row (uint8 columns of ``codes``)."""
        raise NotImplementedError

    def _code_rows(self, rows, state, out):
        """Fill ``out`` with the codes of ``rows``; true when a value is NaN or infinite."""
        raise NotImplementedError

    def codes(self, rows, state):
        rows = self._check_rows(rows, state)
        out = np.empty((rows.shape[0], self._code_width(state)), dtype=np.uint8)
        if self._code_rows(rows, state, out):
            raise ValueError(f"codec {self.name!r} cannot code NaN or infinite values")
        return out


# ----------------------------------------------------------------------------------
# 16-bit floats
# ----------------------------------------------------------------------------------
class _Float16Base(QuantCodec):
    """A 16-bit float per value; nothing fitted (the state is ``NO_STATE``, any width).

    Parameters
    ----------
    entropy : bool
        Entropy-code the sign, exponent and top 3 mantissa bits of each value (rANS).
    """

    #: bits of each 16-bit value that form the entropy-coded symbol (sign, exponent and
    #: the top 3 mantissa bits, as the exact codec); the rest are stored raw
    symbol_bits = None

    def __init__(self, *, entropy=False):
        super().__init__(entropy=entropy)
        raw_bits = 16 - self.symbol_bits
        # raw: 2 payload bytes per 4 decoded; coded: >= raw_bits payload bits per 32 decoded
        self.max_expansion = 32.0 / raw_bits if self.entropy else 2.0

    def prepare(self, rows):
        return NO_STATE

    def check_rows(self, rows, state):
        pass  # nothing fitted: rows of any width

    def _to_u16(self, rows):
        raise NotImplementedError

    def _from_u16(self, half, out):
        raise NotImplementedError

    def encode_chunk(self, rows, state):
        half = self._to_u16(rows).reshape(-1)
        raw_bits = 16 - self.symbol_bits
        raw = half.astype("<u2", copy=False)
        if self.entropy and half.size:
            nraw = raw_size(half.size, raw_bits)
            alphabet = 1 << self.symbol_bits
            out = np.empty(1 + nraw + _entropy.stream_capacity(half.size, alphabet), dtype=np.uint8)
            pack_low_bits(half, raw_bits, out[1:1 + nraw])
            end = _entropy.encode_stream_into(half, alphabet, out, 1 + nraw, shift=raw_bits)
            if end - 1 < raw.nbytes:
                out[0] = MODE_CODED
                return out[:end]
        out = np.empty(1 + raw.nbytes, dtype=np.uint8)
        out[0] = MODE_RAW
        out[1:] = raw.view(np.uint8)
        return out

    def decode_chunk(self, payload, out, state):
        n = out.size
        if payload.size < 1:
            raise CorruptBlobError("empty chunk")
        mode = int(payload[0])
        if mode == MODE_RAW:
            if payload.size != 1 + 2 * n:
                raise CorruptBlobError(f"raw chunk holds {payload.size - 1} bytes, {2 * n} expected")
            half = payload[1:].view("<u2").astype(np.uint16)
        elif mode == MODE_CODED and self.entropy:
            raw_bits = 16 - self.symbol_bits
            nraw = raw_size(n, raw_bits)
            if payload.size < 1 + nraw:
                raise CorruptBlobError(f"chunk holds {payload.size} bytes, its raw bits alone need {nraw}")
            half = np.empty(n, dtype=np.uint16)
            end = _entropy.decode_stream(payload, 1 + nraw, 1 << self.symbol_bits, half)
            if end != payload.size:
                raise CorruptBlobError(f"{payload.size - end} unexpected bytes after the chunk's stream")
            merge_low_bits(half, payload[1:1 + nraw], raw_bits)
        else:
            raise CorruptBlobError(f"unknown chunk mode {mode}")
        self._from_u16(half, out.reshape(-1))


@register_codec
class Float16Codec(_Float16Base):
    """IEEE half precision (2x): round to nearest even, relative error <= 2**-11.

    Finite inputs beyond half's range (|x| >= 65520) raise ValueError rather than turn
    into infinities; infinities and NaNs pass through. Parameters: see ``_Float16Base``.
    """

    name = "fp16"
    symbol_bits = 9

    def _to_u16(self, rows):
        with np.errstate(over="ignore"):
            half = rows.astype(np.float16)
        if np.isinf(half).any() and (np.isinf(half) & np.isfinite(rows)).any():
            raise ValueError("values beyond float16's range (|x| >= 65520) cannot be coded as fp16")
        return half.view(np.uint16)

    def _from_u16(self, half, out):
        out[:] = half.view(np.float16)


@register_codec
class BFloat16Codec(_Float16Base):
    """bfloat16 (2x): the top 16 bits of float32, rounded to nearest even.

    Keeps float32's exponent range; relative error <= 2**-8. NaNs stay NaNs. Parameters:
    see ``_Float16Base``.
    """

    name = "bf16"
    symbol_bits = 12

    def _to_u16(self, rows):
        half = np.empty(rows.size, dtype=np.uint16)
        _k.float32_to_bf16(rows.reshape(-1).view(np.uint32), half)
        return half

    def _from_u16(self, half, out):
        _k.bf16_to_float32(half, out.view(np.uint32))


# ----------------------------------------------------------------------------------
# int8 / int4
# ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class AffineState:
    """int8/int4 state: per-dimension float32 ``offset`` and ``scale`` (code ``c`` decodes to
    ``offset + scale * c``) and the encoder's float64 ``inv_scale`` (0 where scale is 0)."""

    offset: np.ndarray
    scale: np.ndarray
    inv_scale: np.ndarray

    @classmethod
    def of(cls, offset, scale):
        """The state of ``offset`` and ``scale`` (float32 per dimension)."""
        offset = np.ascontiguousarray(offset, dtype=np.float32)
        scale = np.ascontiguousarray(scale, dtype=np.float32)
        s = scale.astype(np.float64)
        return cls(offset, scale, np.divide(1.0, s, out=np.zeros_like(s), where=s > 0))

    @property
    def dim(self):
        """Values per row."""
        return self.offset.size


class _AffineCodec(CodesCodec):
    """Per-dimension affine codes: ``y = offset[d] + scale[d] * c``, ``c`` in [cmin, cmax]."""

    bits = None
    search_kind = "affine"

    def __init__(self, *, symmetric=False, clip=None, entropy=False):
        super().__init__(entropy=entropy)
        self.symmetric = _check_bool("symmetric", symmetric)
        if clip is not None:
            if isinstance(clip, bool) or not isinstance(clip, (int, float, np.integer, np.floating)):
                raise ValueError(f"clip must be a percentile or None, not {clip!r}")
            clip = float(clip)
            if not 50.0 < clip <= 100.0:
                raise ValueError(f"clip must be a percentile in (50, 100], not {clip}")
        self.clip = clip
        self.cmax = (1 << self.bits) - 1
        # symmetric codes leave the lowest code unused so that 0 maps to 0 exactly
        self.cmin = 1 if self.symmetric else 0
        self.max_expansion = 32.0 / MIN_BITS_PER_SYMBOL if self.entropy else 32.0 / self.bits

    def get_config(self):
        return {"symmetric": self.symmetric, "clip": self.clip, "entropy": self.entropy}

    def _fit(self, rows):
        if not np.isfinite(rows).all():
            raise ValueError(f"codec {self.name!r} cannot fit on NaN or infinite values")
        x = rows.astype(np.float64)
        half = (1 << (self.bits - 1)) - 1  # 127 or 7
        if self.symmetric:
            a = np.abs(x)
            amax = a.max(axis=0) if self.clip is None else np.percentile(a, self.clip, axis=0)
            scale = (amax / half).astype(np.float32)
            # offset is an exact power-of-two multiple of scale: code 2**(bits-1) is 0.0
            offset = (-float(1 << (self.bits - 1)) * scale).astype(np.float32)
        else:
            if self.clip is None:
                lo, hi = x.min(axis=0), x.max(axis=0)
            else:
                lo = np.percentile(x, 100.0 - self.clip, axis=0)
                hi = np.percentile(x, self.clip, axis=0)
            offset = lo.astype(np.float32)
            scale = ((hi - offset.astype(np.float64)) / self.cmax).astype(np.float32)
        return AffineState.of(offset, scale)

    def shared_bytes(self, state):
        return state.offset.astype("<f4").tobytes() + state.scale.astype("<f4").tobytes()

    def load_shared(self, data, dtype, dim):
        self._check_dim(dim)
        if data.size != 8 * dim:
            raise CorruptBlobError(f"shared section of {data.size} bytes, {8 * dim} expected for dim {dim}")
        values = data.view("<f4").astype(np.float32)
        offset, scale = values[:dim], values[dim:]
        top = offset.astype(np.float64) + scale.astype(np.float64) * self.cmax
        if (not np.isfinite(values).all() or (scale < 0).any()
                or (np.abs(top) >= np.finfo(np.float32).max).any()):
            raise CorruptBlobError("shared section holds non-finite or negative scales")
        return AffineState.of(offset, scale)

    def _code_width(self, state):
        return state.dim

    def _code_rows(self, rows, state, out):
        quantize = aot.checked("quantize_affine", _k.quantize_affine)
        return quantize(rows, state.offset, state.inv_scale, self.cmin, self.cmax, out)

    def _raw(self, codes):
        raise NotImplementedError

    def _raw_size(self, n_values):
        raise NotImplementedError

    def encode_chunk(self, rows, state):
        codes = self.codes(rows, state)
        return encode_symbols(codes.reshape(-1), 1 << self.bits, self._raw(codes), self.entropy)

    def decode_codes_chunk(self, payload, n_rows, state):
        n = n_rows * state.dim
        mode, data = decode_symbols(payload, n, 1 << self.bits, self._raw_size(n), self.entropy)
        codes = self._unraw(data, n) if mode == MODE_RAW else data
        codes = codes.reshape(n_rows, state.dim)
        if self.symmetric and n and codes.min() < self.cmin:
            raise CorruptBlobError("symmetric code 0 found in the chunk")
        return codes

    def decode_chunk(self, payload, out, state):
        codes = self.decode_codes_chunk(payload, out.shape[0], state)
        _k.dequantize_affine(codes, state.offset, state.scale, out)


@register_codec
class Int8Codec(_AffineCodec):
    """8-bit codes per value (4x), per-dimension scale and offset fitted on the data.

    Parameters
    ----------
    symmetric : bool
        False (default): codes span each dimension's [min, max]. True: they span
        [-max|x|, max|x|] with 0 coded exactly (codes 1..255).
    clip : float or None
        Percentile (in (50, 100]) of each dimension used instead of its extremes; values
        beyond are clipped. None uses the extremes.
    entropy : bool
        Entropy-code the codes (rANS) where that is smaller.
    """

    name = "int8"
    bits = 8

    def _raw(self, codes):
        return codes

    def _raw_size(self, n_values):
        return n_values

    def _unraw(self, data, n):
        return data


@register_codec
class Int4Codec(_AffineCodec):
    """4-bit codes per value (8x), two per byte; parameters as ``int8``."""

    name = "int4"
    bits = 4

    def _raw(self, codes):
        flat = codes.reshape(-1)
        out = np.empty((flat.size + 1) // 2, dtype=np.uint8)
        _k.pack_nibbles(flat, out)
        return out

    def _raw_size(self, n_values):
        return (n_values + 1) // 2

    def _unraw(self, data, n):
        out = np.empty(n, dtype=np.uint8)
        if _k.unpack_nibbles(data, out):
            raise CorruptBlobError("padding nibble is not zero")
        return out


# ----------------------------------------------------------------------------------
# binary
# ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class BinaryState:
    """binary state: per-dimension float32 ``threshold`` and the values a bit decodes to
    (``lo`` at or below the threshold, ``hi`` above)."""

    threshold: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def of(cls, threshold, lo, hi):
        """The state of the three per-dimension arrays (as float32)."""
        return cls(*(np.ascontiguousarray(a, dtype=np.float32) for a in (threshold, lo, hi)))

    @property
    def dim(self):
        """Values per row."""
        return self.threshold.size

    @property
    def row_bytes(self):
        """Bytes of one row's packed bits."""
        return (self.dim + 7) // 8


@register_codec
class BinaryCodec(CodesCodec):
    """One bit per value (32x): whether it exceeds its dimension's threshold.

    The threshold is each dimension's mean on the fitted data (``center=True``) or 0 (plain
    sign bits). A bit decodes to the mean of the fitted values on its side of the threshold.
    Searching scores codes by Hamming distance to the query's bits.

    Parameters
    ----------
    center : bool
        Threshold at the per-dimension mean (default) instead of 0.
    entropy : bool
        Entropy-code the packed bytes (rANS) where that is smaller.
    """

    name = "binary"
    search_kind = "hamming"

    def __init__(self, *, center=True, entropy=False):
        super().__init__(entropy=entropy)
        self.center = _check_bool("center", center)
        # raw: 1 bit per 32 decoded; coded: one symbol per 8 values (256 decoded bits)
        self.max_expansion = 256.0 / MIN_BITS_PER_SYMBOL if self.entropy else 32.0

    def get_config(self):
        return {"center": self.center, "entropy": self.entropy}

    def _fit(self, rows):
        if not np.isfinite(rows).all():
            raise ValueError("codec 'binary' cannot fit on NaN or infinite values")
        x = rows.astype(np.float64)
        t = x.mean(axis=0).astype(np.float32) if self.center else np.zeros(x.shape[1], np.float32)
        above = x > t
        n_above = above.sum(axis=0)
        n_below = x.shape[0] - n_above
        sum_above = np.where(above, x, 0.0).sum(axis=0)
        sum_below = x.sum(axis=0) - sum_above
        hi = np.where(n_above > 0, sum_above / np.maximum(n_above, 1), t)
        lo = np.where(n_below > 0, sum_below / np.maximum(n_below, 1), t)
        return BinaryState.of(t, lo, hi)

    def shared_bytes(self, state):
        return b"".join(a.astype("<f4").tobytes() for a in (state.threshold, state.lo, state.hi))

    def load_shared(self, data, dtype, dim):
        self._check_dim(dim)
        if data.size != 12 * dim:
            raise CorruptBlobError(f"shared section of {data.size} bytes, {12 * dim} expected for dim {dim}")
        values = data.view("<f4").astype(np.float32)
        if not np.isfinite(values).all():
            raise CorruptBlobError("shared section holds non-finite values")
        return BinaryState.of(values[:dim], values[dim:2 * dim], values[2 * dim:])

    def _code_width(self, state):
        return state.row_bytes

    def _code_rows(self, rows, state, out):
        return _k.sign_bits(rows, state.threshold, out)

    def encode_chunk(self, rows, state):
        packed = self.codes(rows, state)
        return encode_symbols(packed.reshape(-1), 256, packed, self.entropy)

    def decode_codes_chunk(self, payload, n_rows, state):
        n = n_rows * state.row_bytes
        _, data = decode_symbols(payload, n, 256, n, self.entropy)
        packed = data.reshape(n_rows, state.row_bytes)
        if state.dim & 7 and n_rows and (packed[:, -1] >> (state.dim & 7)).any():
            raise CorruptBlobError("padding bits are set")
        return packed

    def decode_chunk(self, payload, out, state):
        packed = self.decode_codes_chunk(payload, out.shape[0], state)
        _k.bits_to_values(packed, state.lo, state.hi, out)
