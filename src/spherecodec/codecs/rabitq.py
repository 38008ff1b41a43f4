"""RaBitQ codes (Gao & Long, SIGMOD 2024) and their B-bit extension (SIGMOD 2025).

Each row ``x`` is coded around the blob's centre ``c`` (the mean of the fitted rows): its
residual ``o = x - c`` is rotated by a seeded structured rotation ``P`` (random signs and
Walsh-Hadamard transforms, ``kernels.rabitq``), normalized, and quantized to the grid vector
``y`` (``bits`` per dimension, values ``c_d - (2**bits - 1)/2``) of best cosine ``a`` with it.
Three numbers per row go with the codes: ``f = |o| / <y, P o / |o|>``, ``<o, c>``, and ``a``.
Then, for any query ``q``::

    <x, q> ~ <c, q> + <o, c> + f <y, P (q - c)>          (unbiased)

and ``|error| <= EPSILON0 |q - c| f |y| sqrt(1 - a**2) / sqrt(dim - 1)`` with high
probability: ``spherecodec.search`` rescores a candidate only while that bound lets it
enter the top k.

The rotation is stored as its seed (``seed`` parameter), the centre in the shared section
(``4 * dim`` bytes). Chunk payload::

    f32 factor_scale, f32 offset_scale           (little endian)
    n x f16 factor / factor_scale
    n x f16 offset / offset_scale                (<o, c>)
    n x u16 floor(a * 65535)
    codes: encode_symbols' mode byte, then n rows of dim * bits bits packed LSB first
           (raw), or one rANS stream (entropy=True, bits = 1: of the packed bytes; more
           bits: of the codes)

Decoding gives ``f P^T y + (1 + beta) c``, ``beta`` such that its inner product with ``c``
is the stored ``<x, c>``: the estimator's reconstruction (for a query ``q``, its inner
product differs from the search estimate by ``beta (|c|**2 - <c, q>)``).
"""

from dataclasses import dataclass

import numpy as np

from .. import aot
from ..errors import CorruptBlobError
from ..kernels import rabitq as _k
from .base import SearchableCodec
from .quant import MODE_RAW, QuantCodec, decode_symbols, encode_symbols
from .registry import register_codec

#: confidence constant of the error bound. The papers use 1.9 (Haar rotations, float32
#: factors); with this structured rotation and float16 factors rescoring by the bound lost
#: 0.001 of recall@10 against rescoring every candidate at 1.9, none at 3.0 (MiniLM
#: sentences, 1, 2 and 4 bits)
EPSILON0 = 3.0
#: bytes per row besides the codes (two float16 factors and the uint16 cosine)
ROW_FACTOR_BYTES = 6
#: bytes per chunk besides the rows (two float32 scales)
CHUNK_HEADER_BYTES = 8

_GOLDEN = 0x9E3779B97F4A7C15


def rotation_signs(seed, dim, rounds=_k.ROUNDS):
    """The rotation's random signs, (rounds, dim) float64 of +-1: bit 0 of splitmix64 of
    ``seed * golden + index`` (integer arithmetic, the same on every machine and numpy)."""
    start = (seed * _GOLDEN + _GOLDEN) % (1 << 64)  # Python integers: no numpy overflow warning
    z = np.arange(rounds * dim, dtype=np.uint64) + np.uint64(start)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.where(z & np.uint64(1), -1.0, 1.0).reshape(rounds, dim)


@dataclass(frozen=True, eq=False)
class RabitqState:
    """rabitq state: the centre (float32, ``dim``) and the rotation made from the seed."""

    center: np.ndarray
    signs: np.ndarray
    length: int
    scale: float

    @classmethod
    def of(cls, center, seed):
        """The state of a float32 ``center`` and rotation ``seed``."""
        center = np.ascontiguousarray(center, dtype=np.float32)
        dim = center.size
        length = 1 << (max(dim, 1).bit_length() - 1)  # largest power of two <= dim
        return cls(center, rotation_signs(seed, dim), length, 1.0 / np.sqrt(length))

    @property
    def dim(self):
        """Values per row."""
        return self.center.size

    def rotate(self, rows):
        """``P rows`` in float64 (rows: (n, dim) float32 or float64)."""
        out = np.empty(rows.shape, dtype=np.float64)
        _k.rotate_rows(np.ascontiguousarray(rows), self.signs, self.length, self.scale, out)
        return out


@dataclass(frozen=True, eq=False)
class RabitqCodes:
    """The codes of some rows, as search reads them: ``factor``, ``offset`` (float64) and
    ``cosine`` (uint16) per row, ``codes`` (n, dim) uint8."""

    factor: np.ndarray
    offset: np.ndarray
    cosine: np.ndarray
    codes: np.ndarray

    @classmethod
    def concatenate(cls, parts):
        """One ``RabitqCodes`` of the rows of ``parts``, in order."""
        return cls(*(np.ascontiguousarray(np.concatenate([getattr(p, name) for p in parts]))
                     for name in ("factor", "offset", "cosine", "codes")))


def _to_half(values, scale):
    """``values / scale`` as float16 (scale 0: zeros)."""
    if scale == 0.0:
        return np.zeros(values.size, dtype="<f2")
    return (values / scale).astype("<f2")


@register_codec
class RabitqCodec(QuantCodec, SearchableCodec):
    """RaBitQ codes: ``bits`` per dimension after a seeded random rotation, with per-row
    factors for an unbiased inner-product estimate and its error bound.

    Parameters
    ----------
    bits : int
        Bits per dimension, 1 to 8 (1: RaBitQ; more: extended RaBitQ).
    seed : int
        Seed of the rotation (stored in the blob), 0 <= seed < 2**63.
    entropy : bool
        Entropy-code the codes (rANS) where that is smaller.
    """

    name = "rabitq"
    search_kind = "rabitq"

    def __init__(self, *, bits=1, seed=0, entropy=False):
        super().__init__(entropy=entropy)
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
            raise ValueError(f"bits must be an integer from 1 to 8, not {bits!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 1 << 63:
            raise ValueError(f"seed must be an integer in [0, 2**63), not {seed!r}")
        self.bits = int(bits)
        self.seed = int(seed)
        # raw: >= bits payload bits per 32 decoded; coded: the 6 factor bytes per row remain
        self.max_expansion = 32.0 / self.bits

    def get_config(self):
        return {"bits": self.bits, "seed": self.seed, "entropy": self.entropy}

    def expansion_bound(self, state):
        if not self.entropy:
            return self.max_expansion
        # each row keeps its ROW_FACTOR_BYTES raw: 4 * dim decoded bytes per 6 payload bytes
        return max(self.max_expansion, 4.0 * state.dim / ROW_FACTOR_BYTES)

    # -- fitting ---------------------------------------------------------------------
    def _fit(self, rows):
        # a NaN or infinity anywhere makes its column's float64 mean non-finite (float32
        # values cannot overflow a float64 sum), so the mean is the check
        center = np.mean(rows, axis=0, dtype=np.float64)
        if not np.isfinite(center).all():
            raise ValueError("codec 'rabitq' cannot fit on NaN or infinite values")
        return RabitqState.of(center.astype(np.float32), self.seed)

    def shared_bytes(self, state):
        return state.center.astype("<f4").tobytes()

    def load_shared(self, data, dtype, dim):
        self._check_dim(dim)
        if data.size != 4 * dim:
            raise CorruptBlobError(f"shared section of {data.size} bytes, {4 * dim} expected for dim {dim}")
        center = data.view("<f4").astype(np.float32)
        if not np.isfinite(center).all():
            raise CorruptBlobError("shared section holds a non-finite centre")
        return RabitqState.of(center, self.seed)

    # -- coding ----------------------------------------------------------------------
    def _row_bytes(self, dim):
        return (dim * self.bits + 7) // 8

    def codes(self, rows, state):
        """``RabitqCodes`` of float32 ``rows`` (before the float16 rounding of the factors)."""
        rows = self._check_rows(rows, state)
        n = rows.shape[0]
        codes = np.empty((n, state.dim), dtype=np.uint8)
        factor = np.empty(n, dtype=np.float64)
        offset = np.empty(n, dtype=np.float64)
        cosine = np.empty(n, dtype=np.uint16)
        encode_rows = aot.checked("encode_rows", _k.encode_rows)
        bad = encode_rows(rows, state.center.astype(np.float64), state.signs, state.length, state.scale,
                          self.bits, codes, factor, offset, cosine)
        if bad:
            raise ValueError(f"codec 'rabitq' cannot code NaN or infinite values ({bad} rows hold some); "
                             "drop or repair those rows first")
        if not (np.isfinite(factor).all() and np.isfinite(offset).all()):
            raise ValueError("codec 'rabitq': values too large for float32 arithmetic; scale the rows down")
        return RabitqCodes(factor, offset, cosine, codes)

    def encode_chunk(self, rows, state):
        c = self.codes(rows, state)
        n = c.codes.shape[0]
        factor_scale = np.float32(c.factor.max()) if n else np.float32(0)
        offset_scale = np.float32(np.abs(c.offset).max()) if n else np.float32(0)
        if not (np.isfinite(factor_scale) and np.isfinite(offset_scale)):
            raise ValueError("codec 'rabitq': values too large for float32 arithmetic; scale the rows down")
        packed = np.empty((n, self._row_bytes(state.dim)), dtype=np.uint8)
        _k.pack_codes(c.codes, self.bits, packed)
        if self.bits == 1:
            symbols, alphabet = packed.reshape(-1), 256
        else:
            symbols, alphabet = c.codes.reshape(-1), 1 << self.bits
        body = encode_symbols(symbols, alphabet, packed, self.entropy)
        head = np.array([factor_scale, offset_scale], dtype="<f4").view(np.uint8)
        parts = [head, _to_half(c.factor, np.float64(factor_scale)).view(np.uint8),
                 _to_half(c.offset, np.float64(offset_scale)).view(np.uint8),
                 c.cosine.astype("<u2").view(np.uint8), body]
        return np.concatenate(parts)

    def decode_codes_chunk(self, payload, n_rows, state):
        """``RabitqCodes`` of a chunk, validated."""
        fixed = CHUNK_HEADER_BYTES + ROW_FACTOR_BYTES * n_rows
        if payload.size < fixed + 1:
            raise CorruptBlobError(f"chunk of {payload.size} bytes, at least {fixed + 1} expected "
                                   f"for {n_rows} rows")
        scales = payload[:CHUNK_HEADER_BYTES].view("<f4").astype(np.float64)
        if not np.isfinite(scales).all() or (scales < 0).any():
            raise CorruptBlobError("chunk holds non-finite or negative factor scales")
        pos = CHUNK_HEADER_BYTES
        halves = payload[pos:pos + 4 * n_rows].view("<f2").astype(np.float64)
        pos += 4 * n_rows
        if not np.isfinite(halves).all():
            raise CorruptBlobError("chunk holds non-finite row factors")
        factor = halves[:n_rows] * scales[0]
        offset = halves[n_rows:] * scales[1]
        if not (np.isfinite(factor).all() and np.isfinite(offset).all()) or (factor < 0).any():
            raise CorruptBlobError("chunk holds non-finite or negative row factors")
        cosine = payload[pos:pos + 2 * n_rows].view("<u2").astype(np.uint16)
        pos += 2 * n_rows
        dim = state.dim
        width = self._row_bytes(dim)
        alphabet = 256 if self.bits == 1 else 1 << self.bits
        n_symbols = n_rows * (width if self.bits == 1 else dim)
        mode, data = decode_symbols(payload[pos:], n_symbols, alphabet, n_rows * width, self.entropy)
        codes = np.empty((n_rows, dim), dtype=np.uint8)
        if mode == MODE_RAW or self.bits == 1:
            packed = np.ascontiguousarray(data, dtype=np.uint8).reshape(n_rows, width)
            if _k.unpack_codes(packed, self.bits, codes):
                raise CorruptBlobError("padding bits are set")
        else:
            codes[...] = data.reshape(n_rows, dim)
            if n_rows and dim and int(codes.max()) >> self.bits:
                raise CorruptBlobError(f"code beyond {self.bits} bits")
        return RabitqCodes(factor, offset, cosine, codes)

    def decode_chunk(self, payload, out, state):
        c = self.decode_codes_chunk(payload, out.shape[0], state)
        decode_rows = aot.checked("decode_rows", _k.decode_rows)
        decode_rows(c.codes, c.factor, c.offset, state.center, state.signs, state.length, state.scale,
                    self.bits, out)


__all__ = ["RabitqCodec", "RabitqState", "RabitqCodes", "EPSILON0", "rotation_signs"]
