"""k-means (Lloyd) for product quantization codebooks, and nearest-centroid assignment.

Deterministic: the caller picks the initial centroids (seeded), every loop runs in a fixed
order, empty clusters are refilled from the point farthest from its centroid. Distances
are float32 ``||c||^2 - 2 x.c`` (the ``||x||^2`` term does not change the argmin),
centroid sums float64.
"""

import numpy as np
from numba import njit, prange

from .jit import callee


@callee(nogil=True, cache=True)
def _argmin(acc):
    """(smallest value, its first index) of the non-empty ``acc``."""
    best = acc[0]
    best_j = 0
    for j in range(1, acc.size):
        if acc[j] < best:
            best = acc[j]
            best_j = j
    return best, best_j


@callee(nogil=True, cache=True)
def _assign_block(x, centroids, c_norms, labels, dists):
    """Nearest centroid of every row of ``x``; ``dists`` gets ``||x - c||^2``."""
    n, dsub = x.shape
    k = centroids.shape[0]
    # centroids transposed: the inner loop runs over centroids, contiguous, and vectorises
    ct = np.ascontiguousarray(centroids.T)
    acc = np.empty(k, dtype=np.float32)
    for i in range(n):
        for j in range(k):
            acc[j] = c_norms[j]
        x_norm = np.float32(0.0)
        for t in range(dsub):
            xt = x[i, t]
            x_norm += xt * xt
            w = np.float32(-2.0) * xt
            for j in range(k):
                acc[j] += w * ct[t, j]
        best, best_j = _argmin(acc)
        labels[i] = best_j
        dists[i] = max(best + x_norm, np.float32(0.0))


@callee(nogil=True, cache=True)
def _norms(centroids, out):
    for j in range(centroids.shape[0]):
        s = np.float32(0.0)
        for t in range(centroids.shape[1]):
            s += centroids[j, t] * centroids[j, t]
        out[j] = s


@callee(nogil=True, cache=True)
def kmeans(x, centroids, n_iter, labels):
    """Run ``n_iter`` Lloyd iterations from ``centroids`` (k, dsub) float32, in place.

    ``x`` (n, dsub) float32, ``n >= k``. ``labels`` (n,) int32 receives the final
    assignment. Returns the final sum of squared distances (float64).
    """
    n, dsub = x.shape
    k = centroids.shape[0]
    c_norms = np.empty(k, dtype=np.float32)
    dists = np.empty(n, dtype=np.float32)
    sums = np.empty((k, dsub), dtype=np.float64)
    counts = np.empty(k, dtype=np.int64)
    taken = np.zeros(n, dtype=np.uint8)
    for _ in range(n_iter):
        _norms(centroids, c_norms)
        _assign_block(x, centroids, c_norms, labels, dists)
        sums[:] = 0.0
        counts[:] = 0
        for i in range(n):
            j = labels[i]
            counts[j] += 1
            for t in range(dsub):
                sums[j, t] += x[i, t]
        taken[:] = 0
        for j in range(k):
            if counts[j] > 0:
                for t in range(dsub):
                    centroids[j, t] = np.float32(sums[j, t] / counts[j])
            else:
                # refill an empty cluster with the worst-served point not used yet
                far = -1
                far_d = np.float32(-1.0)
                for i in range(n):
                    if taken[i] == 0 and dists[i] > far_d:
                        far_d = dists[i]
                        far = i
                taken[far] = 1
                dists[far] = np.float32(0.0)
                for t in range(dsub):
                    centroids[j, t] = x[far, t]
    _norms(centroids, c_norms)
    _assign_block(x, centroids, c_norms, labels, dists)
    total = 0.0
    for i in range(n):
        total += dists[i]
    return total


@callee(nogil=True, cache=True)
def train_subspace(x, s, init_ids, n_iter, codebook):
    """k-means on subspace ``s`` of ``x`` (n, m * dsub) into ``codebook`` (k, dsub) float32.

    ``init_ids`` (k,) holds the row numbers of the initial centroids (chosen by the
    caller from its seed). Returns the final sum of squared distances.
    """
    n = x.shape[0]
    k, dsub = codebook.shape
    sub = np.empty((n, dsub), dtype=np.float32)
    labels = np.empty(n, dtype=np.int32)
    for i in range(n):
        for t in range(dsub):
            sub[i, t] = x[i, s * dsub + t]
    for j in range(k):
        for t in range(dsub):
            codebook[j, t] = sub[init_ids[j], t]
    return kmeans(sub, codebook, n_iter, labels)


@njit(nogil=True, cache=True, parallel=True)
def train_subspaces(x, init_ids, n_iter, codebooks):
    """``train_subspace`` for every subspace, in parallel over subspaces (same result).

    ``init_ids`` is (m, k), ``codebooks`` (m, k, dsub) float32. Returns the total
    sum of squared distances.
    """
    m = codebooks.shape[0]
    err = np.zeros(m, dtype=np.float64)
    for s in prange(m):
        err[s] = train_subspace(x, s, init_ids[s], n_iter, codebooks[s])
    return err.sum()


@njit(nogil=True, cache=True)
def pq_encode(x, codebooks, codes):
    """Nearest codeword of each subvector: ``codes`` (n, m) uint8.

    Returns the number of rows holding a non-finite value (their codes are meaningless).
    """
    n = x.shape[0]
    m, k, dsub = codebooks.shape
    c_norms = np.empty((m, k), dtype=np.float32)
    ct = np.empty((m, dsub, k), dtype=np.float32)
    for s in range(m):
        _norms(codebooks[s], c_norms[s])
        ct[s] = codebooks[s].T
    acc = np.empty(k, dtype=np.float32)
    bad = 0
    for i in range(n):
        finite = True
        for s in range(m):
            for j in range(k):
                acc[j] = c_norms[s, j]
            base = s * dsub
            for t in range(dsub):
                w = np.float32(-2.0) * x[i, base + t]
                for j in range(k):
                    acc[j] += w * ct[s, t, j]
            best, best_j = _argmin(acc)
            if not np.isfinite(best):
                finite = False
            codes[i, s] = best_j
        if not finite:
            bad += 1
    return bad


@njit(nogil=True, cache=True)
def pq_decode(codes, codebooks, out):
    """``out[i, s*dsub:(s+1)*dsub] = codebooks[s, codes[i, s]]``; returns 1 on a bad code."""
    n = codes.shape[0]
    m, k, dsub = codebooks.shape
    for i in range(n):
        for s in range(m):
            c = codes[i, s]
            if c >= k:
                return 1
            for t in range(dsub):
                out[i, s * dsub + t] = codebooks[s, c, t]
    return 0
