"""Top-k inner-product search on a blob, scoring its codes without decoding them to floats.

* int8/int4: the query is folded with the per-dimension scales and quantized to int16,
  then scored by integer inner products with the codes (plus the query's dot with the
  offsets); the score equals ``query . decoded_row`` up to the query's quantization
  (relative error about ``2**-15``).
* binary: the query's bits (same thresholds) against the codes by Hamming distance; the
  score is ``dim - 2 * hamming``.
* pq: asymmetric distance tables, ``query_s . codeword`` summed over subspaces; equals
  ``query . decoded_row`` up to float32 summation order.
* any other codec: rows decoded to float32, exact inner products.

With ``rescore_with`` (the original float32 rows), the best ``oversample * k`` candidates
of the code search are rescored by exact inner products.
"""

import numba
import numpy as np

from .codecs import SearchableCodec
from .container import Header, decode, resolve_threads
from .pipeline import float32_if_exact, from_torch
from .kernels import search as _ks

__all__ = ["search"]

#: query rows per block of the float path (bounds the score matrix at 64 x n floats)
_FLOAT_BLOCK = 64


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


def _search_pq(codec, state, codes, queries, kk):
    m, ksub, dsub = state.codebooks.shape
    qsub = queries.reshape(queries.shape[0], m, dsub)
    tables = np.ascontiguousarray(np.einsum("qsd,skd->qsk", qsub, state.codebooks), dtype=np.float32)
    scores = np.empty((queries.shape[0], kk), dtype=np.float32)
    ids = np.empty((queries.shape[0], kk), dtype=np.int64)
    _ks.search_pq(codes, tables, scores, ids)
    return scores, ids


def search_float(vectors, queries, k):
    """Exact top-k inner products of float32 ``queries`` against float32 ``vectors``.

    Returns ``(scores, ids)`` of shape (Q, k), best first, ties to the lower row.
    """
    nq = queries.shape[0]
    scores = np.empty((nq, k), dtype=np.float32)
    ids = np.empty((nq, k), dtype=np.int64)
    for lo in range(0, nq, _FLOAT_BLOCK):
        block = queries[lo:lo + _FLOAT_BLOCK] @ vectors.T
        _ks.topk_rows(np.ascontiguousarray(block, dtype=np.float32), 0, scores[lo:lo + _FLOAT_BLOCK],
                      ids[lo:lo + _FLOAT_BLOCK])
    return scores, ids


#: how each ``SearchableCodec.search_kind`` scores its codes
_SCORERS = {"affine": _search_affine, "hamming": _search_hamming, "pq": _search_pq}


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


def search(blob, queries, k=10, *, rescore_with=None, oversample=4, threads=None):
    """Top-``k`` rows of a blob by inner product with each query, scored on the codes.

    Parameters
    ----------
    blob : bytes-like
        A spherecodec blob (any codec; int8, int4, binary and pq are searched on their
        codes, others decoded to float32).
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

    Returns
    -------
    scores : ndarray, float32 (Q, k)
        Best first: approximate inner products (binary: ``dim - 2 * hamming``), exact
        ones when rescored. Missing results (``k > rows``) score ``-inf``.
    ids : ndarray, int64 (Q, k)
        Row numbers; -1 for missing results. Ties go to the lower row.
    """
    header = Header(blob)
    k = _positive_int("k", k)
    oversample = _positive_int("oversample", oversample)
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
        if header.rows == 0 or header.dim == 0:
            scores = np.full((q.shape[0], kk), -np.inf, dtype=np.float32)
            ids = np.full((q.shape[0], kk), -1, dtype=np.int64)
        elif kind in _SCORERS:
            scores, ids = _SCORERS[kind](codec, header.state, _gather_codes(header), q, kk)
        else:
            scores, ids = search_float(_decode_float(header), q, kk)
        if vectors is not None:
            scores64 = np.empty((q.shape[0], k), dtype=np.float64)
            final_ids = np.empty((q.shape[0], k), dtype=np.int64)
            _ks.rescore(vectors, q, ids, scores64, final_ids)
            scores, ids = scores64.astype(np.float32), final_ids
    finally:
        numba.set_num_threads(previous)
    if single:
        return scores[0], ids[0]
    return scores, ids

