"""Top-k search kernels over codes, parallel over queries.

Every kernel keeps, per query, the ``k`` best rows in a small min-heap and writes them to
``out_scores``/``out_ids`` best first. Ties go to the lower row number (rows are visited in
order and a row only enters the heap if it beats the worst kept). Rows beyond ``n`` (when
``k > n``) are reported as id -1 with the lowest score. Within a query nothing runs in
parallel, so results do not depend on the thread count.
"""

import numpy as np
from numba import njit, prange

from .jit import callee


@callee(nogil=True, cache=True)
def _worse(hs, hi, a, b):
    """Heap entry ``a`` ranks below entry ``b``: a lower score, or an equal score and a larger
    id (the min-heap keeps the worst kept result on top)."""
    return hs[a] < hs[b] or (hs[a] == hs[b] and hi[a] > hi[b])


@callee(nogil=True, cache=True)
def _swap(hs, hi, a, b):
    hs[a], hs[b] = hs[b], hs[a]
    hi[a], hi[b] = hi[b], hi[a]


@callee(nogil=True, cache=True)
def _sift_down(hs, hi, size, pos):
    while True:
        left = 2 * pos + 1
        if left >= size:
            return
        child = left
        right = left + 1
        if right < size and _worse(hs, hi, right, left):
            child = right
        if _worse(hs, hi, child, pos):
            _swap(hs, hi, pos, child)
            pos = child
        else:
            return


@callee(nogil=True, cache=True)
def _sift_up(hs, hi, pos):
    while pos > 0:
        parent = (pos - 1) // 2
        if _worse(hs, hi, pos, parent):
            _swap(hs, hi, pos, parent)
            pos = parent
        else:
            return


@callee(nogil=True, cache=True)
def _push(hs, hi, size, score, idx):
    """Offer (score, idx) to a heap holding ``size`` of ``hs.size`` entries; new size."""
    k = hs.size
    if size < k:
        hs[size] = score
        hi[size] = idx
        _sift_up(hs, hi, size)
        return size + 1
    if score > hs[0] or (score == hs[0] and idx < hi[0]):  # ties to the lower row, in any push order
        hs[0] = score
        hi[0] = idx
        _sift_down(hs, hi, k, 0)
    return size


@callee(nogil=True, cache=True)
def _emit(hs, hi, size, low, out_scores, out_ids):
    """Write the heap best first (score descending, id ascending); pad with (low, -1)."""
    for r in range(size - 1, -1, -1):
        # pop the worst to the back
        out_scores[r] = hs[0]
        out_ids[r] = hi[0]
        last = r
        hs[0] = hs[last]
        hi[0] = hi[last]
        _sift_down(hs, hi, last, 0)
    for r in range(size, out_ids.size):
        out_scores[r] = low
        out_ids[r] = -1


@njit(nogil=True, cache=True, parallel=True)
def search_affine(codes, wq, out_scores, out_ids):
    """Integer inner products ``sum_d wq[q, d] * codes[i, d]``, top-k per query.

    ``codes`` (n, dim) uint8, ``wq`` (Q, dim) int16 (the query folded with the scales and
    quantized); ``out_scores`` (Q, k) int64.
    """
    n, dim = codes.shape
    nq, k = out_ids.shape
    low = np.iinfo(np.int64).min
    for q in prange(nq):
        hs = np.empty(k, dtype=np.int64)
        hi = np.empty(k, dtype=np.int64)
        w = wq[q].astype(np.int32)
        size = 0
        for i in range(n):
            acc = np.int32(0)
            for d in range(dim):
                acc += w[d] * np.int32(codes[i, d])
            size = _push(hs, hi, size, np.int64(acc), i)
        _emit(hs, hi, size, low, out_scores[q], out_ids[q])


@callee(nogil=True, cache=True)
def _popcount64(x):
    # the SWAR form, which LLVM turns into a popcnt instruction where there is one
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(nogil=True, cache=True, parallel=True)
def search_hamming(words, qwords, dim, out_scores, out_ids):
    """Score ``dim - 2 * hamming`` (the inner product of the +-1 vectors), top-k per query.

    ``words`` (n, w) and ``qwords`` (Q, w) uint64 packed bits, padding bits zero in both.
    """
    n, nw = words.shape
    nq, k = out_ids.shape
    low = np.iinfo(np.int64).min
    for q in prange(nq):
        hs = np.empty(k, dtype=np.int64)
        hi = np.empty(k, dtype=np.int64)
        size = 0
        for i in range(n):
            h = np.uint64(0)
            for j in range(nw):
                h += _popcount64(words[i, j] ^ qwords[q, j])
            size = _push(hs, hi, size, np.int64(dim) - 2 * np.int64(h), i)
        _emit(hs, hi, size, low, out_scores[q], out_ids[q])


@njit(nogil=True, cache=True, parallel=True)
def search_pq(codes, tables, out_scores, out_ids):
    """Asymmetric distance tables: score ``sum_s tables[q, s, codes[i, s]]``, top-k.

    ``codes`` (n, m) uint8, ``tables`` (Q, m, ksub) float32 (query subvector . codeword).
    """
    n, m = codes.shape
    nq, k = out_ids.shape
    low = -np.inf
    for q in prange(nq):
        hs = np.empty(k, dtype=np.float32)
        hi = np.empty(k, dtype=np.int64)
        t = tables[q]
        size = 0
        for i in range(n):
            acc = np.float32(0.0)
            for s in range(m):
                acc += t[s, codes[i, s]]
            size = _push(hs, hi, size, acc, i)
        _emit(hs, hi, size, np.float32(low), out_scores[q], out_ids[q])


@njit(nogil=True, cache=True, parallel=True)
def topk_rows(scores, row_offset, out_scores, out_ids):
    """Top-k of each row of a (Q, n) float32 score matrix; ids shifted by ``row_offset``."""
    nq, n = scores.shape
    k = out_ids.shape[1]
    for q in prange(nq):
        hs = np.empty(k, dtype=np.float32)
        hi = np.empty(k, dtype=np.int64)
        size = 0
        for i in range(n):
            size = _push(hs, hi, size, scores[q, i], i + row_offset)
        _emit(hs, hi, size, np.float32(-np.inf), out_scores[q], out_ids[q])


@njit(nogil=True, cache=True, parallel=True)
def rescore(vectors, queries, candidates, out_scores, out_ids):
    """Exact inner products (float64 sums) of each query with its candidate rows, top-k.

    ``candidates`` (Q, c) int64 row numbers, -1 for none; ``vectors`` (N, dim) float32.
    """
    nq, c = candidates.shape
    dim = vectors.shape[1]
    k = out_ids.shape[1]
    for q in prange(nq):
        hs = np.empty(k, dtype=np.float64)
        hi = np.empty(k, dtype=np.int64)
        size = 0
        # candidates in row order, so that ties still go to the lower row
        cand = np.sort(candidates[q])
        for r in range(c):
            i = cand[r]
            if i < 0:
                continue
            acc = 0.0
            for d in range(dim):
                acc += np.float64(queries[q, d]) * np.float64(vectors[i, d])
            size = _push(hs, hi, size, acc, i)
        row_scores = np.empty(k, dtype=np.float64)
        _emit(hs, hi, size, -np.inf, row_scores, out_ids[q])
        for r in range(k):
            out_scores[q, r] = row_scores[r]
