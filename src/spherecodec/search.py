"""Top-k inner-product search on a blob, scoring its codes without decoding them to floats.

* int8/int4: the query is folded with the per-dimension scales and quantized to int16,
  then scored by integer inner products with the codes (plus the query's dot with the
  offsets); the score equals ``query . decoded_row`` up to the query's quantization
  (relative error about ``2**-15``).
* binary (default, asymmetric): the float query against the codes' decoded values,
  ``query . lo + sum_{bit d set} query_d (hi_d - lo_d)``, with the weights quantized to 8
  bits and summed by popcounts of bit planes; ``hamming=True``: the query's bits (same
  thresholds) against the codes by Hamming distance, score ``dim - 2 * hamming``.
* rabitq: the unbiased RaBitQ estimate ``<c, q> + <o, c> + f <y, P (q - c)>``
  (codecs/rabitq.py), the rotated query quantized to 8 bits (1-bit codes, popcounts of bit
  planes) or 16 bits (integer inner products).
* pq: asymmetric distance tables, ``query_s . codeword`` summed over subspaces; equals
  ``query . decoded_row`` up to float32 summation order.
* any other codec: rows decoded to float32, exact inner products.

With ``rescore_with`` (the original float32 rows), the best ``oversample * k`` candidates
of the code search are rescored by exact inner products; for rabitq only those whose
error bound lets them still enter the top k (``oversample`` is then a cap).
"""

import numba
import numpy as np

from .codecs import SearchableCodec
from .codecs.rabitq import EPSILON0
from .container import Header, decode, resolve_threads
from .kernels import rabitq as _kr
from .kernels import search as _ks
from .pipeline import float32_if_exact, from_torch

__all__ = ["search"]

#: query rows per block of the float path (bounds the score matrix at 64 x n floats)
_FLOAT_BLOCK = 64
#: bits of the quantized query scored against bit codes (binary, 1-bit rabitq)
QUERY_BITS = 8


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def _gather_codes(header):
    """Codes of every chunk, concatenated (one row per vector)."""
    parts = []
    for i in range(header.n_chunks):
        lo, hi = header.plan.bounds(i)
        parts.append(header.calls.decode_codes_chunk(i, header.chunk(i), hi - lo))
    if not parts:
        return None
    if hasattr(parts[0], "concatenate"):
        return type(parts[0]).concatenate(parts)
    return np.ascontiguousarray(np.concatenate(parts))


def _search_affine(codec, state, codes, queries, kk):
    w = queries.astype(np.float64) * state.scale.astype(np.float64)
    const = queries.astype(np.float64) @ state.offset.astype(np.float64)
    peak = np.abs(w).max(axis=1)
    step = np.where(peak > 0, peak / 32767.0, 1.0)
    wq = np.rint(w / step[:, None]).astype(np.int16)
    iscores = np.empty((queries.shape[0], kk), dtype=np.int64)
    ids = np.empty((queries.shape[0], kk), dtype=np.int64)
    _ks.search_affine(codes, wq, iscores, ids)
    scores = (const[:, None] + step[:, None] * iscores).astype(np.float32)
    scores[ids < 0] = -np.inf
    return scores, ids


def _search_hamming(codec, state, codes, queries, kk):
    qbits = codec.codes(queries, state)
    nw = (qbits.shape[1] + 7) // 8
    words = np.zeros((codes.shape[0], nw * 8), dtype=np.uint8)
    words[:, :codes.shape[1]] = codes
    qwords = np.zeros((queries.shape[0], nw * 8), dtype=np.uint8)
    qwords[:, :qbits.shape[1]] = qbits
    iscores = np.empty((queries.shape[0], kk), dtype=np.int64)
    ids = np.empty((queries.shape[0], kk), dtype=np.int64)
    _ks.search_hamming(words.view("<u8"), qwords.view("<u8"), state.dim, iscores, ids)
    scores = iscores.astype(np.float32)
    scores[ids < 0] = -np.inf
    return scores, ids


def _bit_planes(weights, n_bits):
    """``weights`` (Q, dim) quantized to unsigned ``n_bits``-bit integers: ``(planes, lo,
    step, total)`` with ``weights ~ lo + step * u``, ``planes`` (Q, n_bits, words) uint64
    (bit d of plane b: bit b of ``u[d]``) and ``total = sum_d u[d]``."""
    nq, dim = weights.shape
    lo = weights.min(axis=1)
    span = weights.max(axis=1) - lo
    top = (1 << n_bits) - 1
    step = np.where(span > 0, span / top, 1.0)
    u = np.rint((weights - lo[:, None]) / step[:, None]).astype(np.int64)
    words = (dim + 63) // 64
    bits = np.zeros((nq, n_bits, words * 64), dtype=np.uint8)
    for b in range(n_bits):
        bits[:, b, :dim] = (u >> b) & 1
    planes = np.packbits(bits, axis=2, bitorder="little").view("<u8").astype(np.uint64)
    return np.ascontiguousarray(planes), lo, step, u.sum(axis=1).astype(np.float64)


def _code_words(packed_bits, dim):
    """Packed bit rows (n, ceil(dim / 8)) as (n, ceil(dim / 64)) uint64 words, zero padded."""
    words = (dim + 63) // 64
    out = np.zeros((packed_bits.shape[0], words * 8), dtype=np.uint8)
    out[:, :packed_bits.shape[1]] = packed_bits
    return out.view("<u8").astype(np.uint64)


def _search_binary_asymmetric(codec, state, codes, queries, kk):
    q = queries.astype(np.float64)
    base = q @ state.lo.astype(np.float64)
    weights = q * (state.hi.astype(np.float64) - state.lo.astype(np.float64))
    planes, lo, step, _ = _bit_planes(weights, QUERY_BITS)
    words = _code_words(codes, state.dim)
    ones = np.unpackbits(codes, axis=1, bitorder="little")[:, :state.dim].sum(axis=1).astype(np.int64)
    n = codes.shape[0]
    coef = np.ascontiguousarray(np.stack([base, lo, step, np.zeros_like(lo)], axis=1))
    scores = np.empty((q.shape[0], kk), dtype=np.float64)
    ids = np.empty((q.shape[0], kk), dtype=np.int64)
    _kr.search_bitplanes(words, ones, np.ones(n), np.zeros(n), planes, coef, scores, ids)
    return scores.astype(np.float32), ids


def _search_rabitq(codec, state, codes, queries, kk):
    """RaBitQ estimates, top-``kk``; also a function giving the error-bound terms."""
    dim = state.dim
    bits = codec.bits
    half = ((1 << bits) - 1) / 2.0
    center = state.center.astype(np.float64)
    q = queries.astype(np.float64)
    base = q @ center
    centred = q - center
    rotated = state.rotate(centred)
    nq = q.shape[0]
    scores = np.empty((nq, kk), dtype=np.float64)
    ids = np.empty((nq, kk), dtype=np.int64)
    # the rotated query as int16 (scores: integer inner products with the codes, which
    # measured 2.5x faster than popcounts of 8 query bit planes over 1-bit codes); the
    # products of the codes and the query must add up within int32
    cmax = (1 << bits) - 1
    wmax = min(32767, (2 ** 31 - 1) // max(1, dim * cmax))
    peak = np.abs(rotated).max(axis=1)
    step = np.where(peak > 0, peak / wmax, 1.0)
    wq = np.rint(rotated / step[:, None]).astype(np.int16)
    const = -half * wq.sum(axis=1, dtype=np.int64).astype(np.float64)
    coef = np.ascontiguousarray(np.stack([base, step, const], axis=1))
    codes16 = codes.codes.astype(np.int16)
    _kr.search_codes(codes16, codes.factor, codes.offset, wq, coef, scores, ids)

    def bounds():
        # EPSILON0 |q - c| f |y| sqrt(1 - a^2) / sqrt(dim - 1), plus the query's rounding:
        # at most step/2 per dimension times sum_d |y_d| <= dim * half
        ynorm = np.empty(codes16.shape[0], dtype=np.float64)
        _kr.grid_norms(codes16, bits, ynorm)
        a = codes.cosine.astype(np.float64) / 65535.0
        spread = np.sqrt(np.maximum(0.0, 1.0 - a * a))
        row_bound = codes.factor * ynorm * spread / np.sqrt(max(dim - 1, 1))
        query_bound = EPSILON0 * np.sqrt(np.einsum("ij,ij->i", centred, centred))
        return row_bound, query_bound, codes.factor, step * 0.5 * dim * half, scores

    return scores.astype(np.float32), ids, bounds


def _search_pq(codec, state, codes, queries, kk):
    m, ksub, dsub = state.codebooks.shape
    qsub = queries.reshape(queries.shape[0], m, dsub)
    tables = np.ascontiguousarray(np.einsum("qsd,skd->qsk", qsub, state.codebooks), dtype=np.float32)
    scores = np.empty((queries.shape[0], kk), dtype=np.float32)
    ids = np.empty((queries.shape[0], kk), dtype=np.int64)
    _ks.search_pq(codes, tables, scores, ids)
    return scores, ids


def search_float(vectors, queries, k, bias=None):
    """Exact top-k inner products of float32 ``queries`` against float32 ``vectors`` (plus
    ``bias``, one float per row, when given).

    Returns ``(scores, ids)`` of shape (Q, k), best first, ties to the lower row.
    """
    nq = queries.shape[0]
    scores = np.empty((nq, k), dtype=np.float32)
    ids = np.empty((nq, k), dtype=np.int64)
    for lo in range(0, nq, _FLOAT_BLOCK):
        block = queries[lo:lo + _FLOAT_BLOCK] @ vectors.T
        if bias is not None:
            block += bias
        _ks.topk_rows(np.ascontiguousarray(block, dtype=np.float32), 0, scores[lo:lo + _FLOAT_BLOCK],
                      ids[lo:lo + _FLOAT_BLOCK])
    return scores, ids


def _search_l2(header, queries, kk):
    """Nearest rows by (squared) L2 distance to the decoded vectors: ``<q, x> - |x|^2 / 2``
    ranks like ``-|q - x|^2``. Returns ``(squared distances, ids)``, nearest first."""
    decoded = _decode_float(header)
    half_norms = -0.5 * np.einsum("ij,ij->i", decoded, decoded, dtype=np.float64)
    _, ids = search_float(decoded, queries, kk, bias=half_norms.astype(np.float32))
    # the distances of the candidates in float64 (|q|^2 - 2 score cancels in float32), in order
    distances, ids = _rescore_l2(decoded, queries, ids, kk)
    return distances.astype(np.float32), ids


def _rescore_l2(vectors, queries, ids, k):
    """Exact squared L2 distances (float64) of each query to its candidate rows; the ``k``
    nearest, ties to the lower row; missing results ``inf`` / -1."""
    nq = queries.shape[0]
    out = np.full((nq, k), np.inf, dtype=np.float64)
    out_ids = np.full((nq, k), -1, dtype=np.int64)
    for lo in range(0, nq, _FLOAT_BLOCK):
        cand = ids[lo:lo + _FLOAT_BLOCK]
        rows = vectors[np.maximum(cand, 0)].astype(np.float64)
        diff = rows - queries[lo:lo + _FLOAT_BLOCK, None, :].astype(np.float64)
        dist = np.where(cand >= 0, np.einsum("qcd,qcd->qc", diff, diff), np.inf)
        order = np.lexsort((np.where(cand >= 0, cand, np.iinfo(np.int64).max), dist), axis=-1)[:, :k]
        take = min(k, order.shape[1])
        out[lo:lo + _FLOAT_BLOCK, :take] = np.take_along_axis(dist, order, axis=1)[:, :take]
        out_ids[lo:lo + _FLOAT_BLOCK, :take] = np.where(np.isfinite(out[lo:lo + _FLOAT_BLOCK, :take]),
                                                        np.take_along_axis(cand, order, axis=1)[:, :take], -1)
    return out, out_ids


#: how each ``SearchableCodec.search_kind`` scores its codes
_SCORERS = {"affine": _search_affine, "hamming": _search_binary_asymmetric, "pq": _search_pq,
            "rabitq": _search_rabitq}


def _decode_float(header):
    return decode(header.blob, threads=1).reshape(header.rows, header.dim).astype(np.float32, copy=False)


def _exactly_float32(what, values):
    """``values`` as float32: float32 itself, or any float/integer input float32 holds
    exactly (float16, float64 made from float32 values, a list of them); TypeError otherwise."""
    a = np.asarray(from_torch(values))
    if a.dtype == np.float32:
        return a
    if a.dtype.kind != "f":
        raise TypeError(f"{what} must be a float32 array, not {a.dtype}")
    converted = float32_if_exact(a)
    if converted is None:
        raise TypeError(f"{what} are {a.dtype} with values float32 cannot hold exactly: "
                        f"pass {what}.astype(np.float32) to accept the rounding")
    return converted


def search(blob, queries, k=10, *, rescore_with=None, oversample=4, threads=None, hamming=False,
           return_rescored=False, metric="ip"):
    """Top-``k`` rows of a blob by inner product with each query, scored on the codes (or
    nearest by L2 distance, ``metric="l2"``).

    Parameters
    ----------
    blob : bytes-like
        A spherecodec blob (any codec; int8, int4, binary, pq and rabitq are searched on
        their codes, others decoded to float32).
    queries : array_like
        float32 (Q, dim), or (dim,) for one query; other float input float32 holds
        exactly (float16, float64 from float32 values) is converted.
    k : int
        Results per query.
    rescore_with : array_like or None
        The float32 rows the blob was made from, shape (rows, dim): the best
        ``oversample * k`` candidates are rescored by exact inner products.
    oversample : int
        Candidates per result kept for rescoring.
    threads : int or None
        Threads over queries (None: Numba's default). Results do not depend on it.
    hamming : bool
        binary codes only: score by Hamming distance between the query's bits and the
        codes (False, the default: the float query against the codes' values).
    return_rescored : bool
        Also return how many candidates each query rescored (int64 (Q,); 0 without
        ``rescore_with``). rabitq rescores a candidate only while its error bound lets it
        enter the top k; other codecs rescore all ``oversample * k``.
    metric : {"ip", "l2"}
        "ip" (default): largest inner product first (cosine for unit vectors). "l2":
        smallest squared L2 distance first, ranked on the decoded vectors (every codec;
        not on the codes), then exactly when ``rescore_with`` is given; ``hamming`` does
        not apply.

    Returns
    -------
    scores : ndarray, float32 (Q, k)
        Best first: approximate inner products (binary with ``hamming=True``:
        ``dim - 2 * hamming``), exact ones when rescored. Missing results (``k > rows``) score
        ``-inf``. With ``metric="l2"``: squared distances, smallest first, ``inf`` when missing.
    ids : ndarray, int64 (Q, k)
        Row numbers; -1 for missing results. Ties go to the lower row.
    """
    header = Header(blob)
    k = _positive_int("k", k)
    oversample = _positive_int("oversample", oversample)
    if not isinstance(hamming, (bool, np.bool_)):
        raise ValueError(f"hamming must be True or False, not {hamming!r}")
    if metric not in ("ip", "l2"):
        raise ValueError(f"metric must be 'ip' or 'l2', not {metric!r}")
    if metric == "l2" and hamming:
        raise ValueError("hamming=True ranks by Hamming distance; it does not combine with metric='l2'")
    q = _exactly_float32("queries", queries)
    single = q.ndim == 1
    if q.ndim not in (1, 2):
        raise TypeError(f"queries must be an array of 1 or 2 dimensions, not {q.ndim}-D")
    q = np.ascontiguousarray(q.reshape(1, -1) if single else q)
    if q.shape[1] != header.dim:
        raise ValueError(f"queries have {q.shape[1]} dimensions, the blob {header.dim}")
    if not np.isfinite(q).all():
        raise ValueError("queries hold NaN or infinite values")
    vectors = None
    if rescore_with is not None:
        vectors = _exactly_float32("rescore_with", rescore_with)
        if vectors.shape != (header.rows, header.dim):
            raise ValueError(f"rescore_with must be the {header.rows} x {header.dim} rows the blob was "
                             f"made from, not an array of shape {vectors.shape} (pass the same rows "
                             "you encoded)")
        vectors = np.ascontiguousarray(vectors)
    kk = k * oversample if vectors is not None else k
    n_threads = numba.get_num_threads()
    if threads is not None:
        n_threads = min(resolve_threads(threads), numba.config.NUMBA_NUM_THREADS)
    previous = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        codec = header.codec
        kind = codec.search_kind if isinstance(codec, SearchableCodec) else None
        bounds = None
        if header.rows == 0 or header.dim == 0:
            scores = np.full((q.shape[0], kk), np.inf if metric == "l2" else -np.inf, dtype=np.float32)
            ids = np.full((q.shape[0], kk), -1, dtype=np.int64)
        elif metric == "l2":
            scores, ids = _search_l2(header, q, kk)
        elif kind == "hamming" and hamming:
            scores, ids = _search_hamming(codec, header.state, _gather_codes(header), q, kk)
        elif kind in _SCORERS:
            scores, ids, *extra = _SCORERS[kind](codec, header.state, _gather_codes(header), q, kk)
            bounds = extra[0] if extra else None
        else:
            scores, ids = search_float(_decode_float(header), q, kk)
        rescored = np.zeros(q.shape[0], dtype=np.int64)
        if vectors is not None and metric == "l2":
            rescored[:] = (ids >= 0).sum(axis=1)
            scores64, ids = _rescore_l2(vectors, q, ids, k)
            scores = scores64.astype(np.float32)
        elif vectors is not None:
            scores64 = np.empty((q.shape[0], k), dtype=np.float64)
            final_ids = np.empty((q.shape[0], k), dtype=np.int64)
            if bounds is not None:
                row_bound, query_bound, factor, query_slack, estimates = bounds()
                _kr.rescore_bounded(vectors, q, ids, estimates, row_bound, query_bound, factor, query_slack,
                                    scores64, final_ids, rescored)
            else:
                _ks.rescore(vectors, q, ids, scores64, final_ids)
                rescored[:] = (ids >= 0).sum(axis=1)
            scores, ids = scores64.astype(np.float32), final_ids
    finally:
        numba.set_num_threads(previous)
    if single:
        return (scores[0], ids[0], rescored[:1]) if return_rescored else (scores[0], ids[0])
    return (scores, ids, rescored) if return_rescored else (scores, ids)

