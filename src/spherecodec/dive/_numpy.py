"""Pure-numpy inference pieces shared by the adapters (no torch needed to serve)."""

import numpy as np

_SQRT_2_OVER_PI = np.float32(np.sqrt(2.0 / np.pi))
LAYER_NORM_EPS = 1e-5


def l2_normalize(x, eps=1e-12):
    """Rows of ``x`` scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float32))[:, None]
    return x / np.maximum(norms, np.float32(eps))


def gelu_tanh(x):
    """GELU, tanh form (torch ``approximate="tanh"``): numpy has no erf."""
    x = np.asarray(x, dtype=np.float32)
    inner = _SQRT_2_OVER_PI * (x + np.float32(0.044715) * x * x * x)
    return np.float32(0.5) * x * (np.float32(1.0) + np.tanh(inner))


def layer_norm(x, gamma, beta, eps=LAYER_NORM_EPS):
    """LayerNorm over the last axis, as ``torch.nn.LayerNorm`` (biased variance)."""
    mean = x.mean(axis=-1, keepdims=True, dtype=np.float32)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True, dtype=np.float32)
    return centred / np.sqrt(var + np.float32(eps)) * gamma + beta


def residual_mlp(x, w1, b1, ln_gamma, ln_beta, w2, b2):
    """``x + Linear2(GELU(LayerNorm(Linear1(x))))``; weights are (in, out) matrices."""
    hidden = layer_norm(x @ w1 + b1, ln_gamma, ln_beta)
    return x + gelu_tanh(hidden) @ w2 + b2


def as_float32_rows(x, dim=None, name="x"):
    """Validate ``x`` as a finite 2-D (or 1-D: one row) float array; return float32 rows."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a numeric array, not dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D, not {arr.ndim}-D")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has {arr.shape[1]} columns, {dim} expected")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return arr


def exact_knn(queries, corpus, k, *, exclude_self=False, block=2048):
    """Indices (rows, k) of the ``k`` largest inner products of each query in ``corpus``.

    Ties break towards the lower corpus index, so results are reproducible.
    ``exclude_self`` drops the diagonal (queries and corpus are the same array).
    """
    queries = np.asarray(queries, dtype=np.float32)
    corpus = np.asarray(corpus, dtype=np.float32)
    n = corpus.shape[0]
    limit = n - 1 if exclude_self else n
    if not 1 <= k <= limit:
        raise ValueError(f"k={k} needs 1 <= k <= {limit}")
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    for start in range(0, queries.shape[0], block):
        sims = queries[start:start + block] @ corpus.T
        if exclude_self:
            rows = np.arange(sims.shape[0])
            sims[rows, rows + start] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.lexsort((top, -top_sims), axis=1)
        out[start:start + block] = np.take_along_axis(top, order, axis=1)
    return out


def recall_at_k(reduced_queries, reduced_corpus, truth):
    """Mean fraction of each query's true neighbours (``truth`` rows) found in its reduced top-k."""
    k = truth.shape[1]
    found = exact_knn(reduced_queries, reduced_corpus, k)
    hits = [np.intersect1d(a, b, assume_unique=True).size for a, b in zip(found, truth)]
    return float(np.mean(hits)) / k
