"""Product quantization: ``m`` subspaces, ``2**nbits`` codewords each, k-means trained.

A row of ``dim`` values is cut into ``m`` subvectors of ``dim / m`` values; each is coded
by the number of its nearest codeword. The codebooks (float32, ``m x 2**nbits x dim/m``)
are trained by Lloyd's k-means (``kernels.kmeans``, Numba) from a seeded random pick of
initial centroids, so a seed gives the same codebooks on a machine; they are stored in the
blob's shared section, so decoding never depends on training.

Chunk payload: ``u8 mode`` then the codes packed ``nbits`` bits each, LSB first (mode 0),
or one rANS stream of the codes (mode 1, with ``entropy=True`` when smaller).
"""

from dataclasses import dataclass

import numpy as np

from .. import aot
from ..errors import CorruptBlobError
from ..kernels import kmeans as _km
from ..kernels import quant as _kq
from ..kernels.bits import pack_low_bits
from .registry import register_codec
from .quant import MIN_BITS_PER_SYMBOL, MODE_RAW, CodesCodec, decode_symbols, encode_symbols


def _check_int(name, value, lo, hi, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {value}")
    return int(value)


@dataclass(frozen=True, eq=False)
class PQState:
    """pq state: the float32 ``codebooks`` (m subspaces x ksub codewords x dsub values)."""

    codebooks: np.ndarray

    @property
    def m(self):
        """Subspaces."""
        return self.codebooks.shape[0]

    @property
    def dsub(self):
        """Values per subspace."""
        return self.codebooks.shape[2]

    @property
    def dim(self):
        """Values per row."""
        return self.m * self.dsub


@register_codec
class PQCodec(CodesCodec):
    """Product quantization (``dim * 32 / (m * nbits)`` x), searched with distance tables.

    Parameters
    ----------
    m : int or None
        Number of subspaces; must divide the dimension. None: ``dim // 8`` (8 values per
        subspace), recorded in the blob's parameters once chosen.
    nbits : int
        Bits per code, 1 to 8 (``2**nbits`` codewords per subspace).
    niter : int
        k-means (Lloyd) iterations.
    seed : int
        Seed of the training-row sample and of the initial centroids.
    max_train : int or None
        Rows used for training at most (a seeded sample); None: ``256 * 2**nbits``.
    entropy : bool
        Entropy-code the codes (rANS) where that is smaller.
    """

    name = "pq"
    dtypes = ("float32",)
    search_kind = "pq"

    def __init__(self, *, m=None, nbits=8, niter=25, seed=0, max_train=None, entropy=False):
        super().__init__(entropy=entropy)
        self.m = _check_int("m", m, 1, 1 << 16, allow_none=True)
        self.nbits = _check_int("nbits", nbits, 1, 8)
        self.niter = _check_int("niter", niter, 0, 10_000)
        self.seed = _check_int("seed", seed, 0, (1 << 63) - 1)
        self.max_train = _check_int("max_train", max_train, 1, 1 << 40, allow_none=True)

    def get_config(self):
        return {"m": self.m, "nbits": self.nbits, "niter": self.niter, "seed": self.seed,
                "max_train": self.max_train, "entropy": self.entropy}

    def stored_config(self, state):
        return {**self.get_config(), "m": state.m}

    @property
    def ksub(self):
        """Codewords per subspace."""
        return 1 << self.nbits

    def _resolve_m(self, dim):
        m = self.m if self.m is not None else max(1, dim // 8)
        if dim == 0 or dim % m:
            raise ValueError(f"pq needs m dividing the dimension; m={m}, dim={dim}")
        return m

    def _fit(self, rows):
        n, dim = rows.shape
        m = self._resolve_m(dim)
        if not np.isfinite(rows).all():
            raise ValueError("codec 'pq' cannot fit on NaN or infinite values")
        k = self.ksub
        if n < k:
            raise ValueError(f"pq with nbits={self.nbits} needs at least {k} training rows, got {n}")
        rng = np.random.default_rng(self.seed)
        limit = self.max_train if self.max_train is not None else 256 * k
        if n > limit:
            rows = rows[np.sort(rng.choice(n, limit, replace=False))]
            n = limit
        init_ids = np.stack([rng.choice(n, k, replace=False) for _ in range(m)]).astype(np.int64)
        codebooks = np.empty((m, k, dim // m), dtype=np.float32)
        aot.checked("train_subspaces", _km.train_subspaces)(np.ascontiguousarray(rows), init_ids, self.niter, codebooks)
        return PQState(codebooks)

    def expansion_bound(self, state):
        if self.entropy:
            # one coded symbol per code of dsub values, >= MIN_BITS_PER_SYMBOL each
            return 32.0 * state.dsub / MIN_BITS_PER_SYMBOL
        return 32.0 * state.dsub / self.nbits

    def shared_bytes(self, state):
        return state.codebooks.astype("<f4").tobytes()

    def load_shared(self, data, dtype, dim):
        self._check_dim(dim)
        if self.m is None:
            raise CorruptBlobError("pq blob does not record m")
        if dim == 0 or dim % self.m:
            raise CorruptBlobError(f"m={self.m} does not divide the dimension {dim}")
        expect = 4 * self.ksub * dim
        if data.size != expect:
            raise CorruptBlobError(f"shared section of {data.size} bytes, {expect} expected for the codebooks")
        codebooks = data.view("<f4").astype(np.float32).reshape(self.m, self.ksub, dim // self.m)
        if not np.isfinite(codebooks).all():
            raise CorruptBlobError("codebooks hold non-finite values")
        return PQState(np.ascontiguousarray(codebooks))

    def _code_width(self, state):
        return state.m

    def _code_rows(self, rows, state, out):
        # serial: the container already runs chunks in threads, and Numba's parallel
        # kernels must not be entered from several threads at once
        return aot.checked("pq_encode", _km.pq_encode)(rows, state.codebooks, out)

    def _raw_size(self, n_codes):
        return (n_codes * self.nbits + 7) // 8

    def encode_chunk(self, rows, state):
        codes = self.codes(rows, state)
        flat = codes.reshape(-1)
        if self.nbits == 8:
            raw = flat
        else:
            raw = np.empty(self._raw_size(flat.size), dtype=np.uint8)
            pack_low_bits(flat, self.nbits, raw)  # one bit plane of nbits < 8: LSB first
        return encode_symbols(flat, max(2, self.ksub), raw, self.entropy)

    def decode_codes_chunk(self, payload, n_rows, state):
        n = n_rows * state.m
        mode, data = decode_symbols(payload, n, max(2, self.ksub), self._raw_size(n), self.entropy)
        if mode == MODE_RAW and self.nbits < 8:
            codes = np.empty(n, dtype=np.uint8)
            if _kq.unpack_codes(data, self.nbits, codes):
                raise CorruptBlobError("padding bits are set")
        else:
            codes = data
        if self.nbits == 1 and n and codes.max() > 1:
            raise CorruptBlobError("code outside the codebook")
        return codes.reshape(n_rows, state.m)

    def decode_chunk(self, payload, out, state):
        codes = self.decode_codes_chunk(payload, out.shape[0], state)
        if _km.pq_decode(codes, state.codebooks, out):
            raise CorruptBlobError("code outside the codebook")
