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


def labelled_pairs(docs, queries, positives, dim):
    """Validate labelled training data; returns (queries float32, pair_query, pair_doc) with
    one (query row, doc row) int64 pair per relevant document.

    ``positives`` is an int array of one doc row per query, or a sequence (one item per
    query) of int arrays of doc rows (several relevant documents).
    """
    q = as_float32_rows(queries, name="queries")
    if q.shape[1] != dim:
        raise ValueError(f"queries have {q.shape[1]} columns but docs have {dim}: queries and "
                         "docs must come from the same embedding model")
    n_docs = docs.shape[0]
    if positives is None:
        raise ValueError("queries= needs positives= (the relevant doc row of each query)")
    if isinstance(positives, np.ndarray) and positives.ndim == 1:
        lists = None
        arr = positives
    else:
        try:
            lists = [np.asarray(p) for p in positives]
        except TypeError:
            raise TypeError("positives must be an int array (one doc row per query) or a list of "
                            "int arrays (several per query)") from None
        arr = None
    n_items = len(arr) if arr is not None else len(lists)
    if n_items != q.shape[0]:
        raise ValueError(f"positives has {n_items} entries but queries has {q.shape[0]} rows: "
                         "give one relevant doc row (or one array of them) per query")
    if arr is not None:
        if arr.dtype.kind not in "iu":
            raise TypeError(f"positives must hold integer doc rows, not dtype {arr.dtype}")
        pair_q = np.arange(q.shape[0], dtype=np.int64)
        pair_d = arr.astype(np.int64)
    else:
        for i, p in enumerate(lists):
            if p.size == 0:
                raise ValueError(f"positives[{i}] is empty: every query needs a relevant doc")
            if p.dtype.kind not in "iu" or p.ndim > 1:
                raise TypeError(f"positives[{i}] must be an int doc row or a 1-D int array of them")
        pair_q = np.concatenate([np.full(p.size, i, np.int64) for i, p in enumerate(lists)])
        pair_d = np.concatenate([p.reshape(-1).astype(np.int64) for p in lists])
    bad = (pair_d < 0) | (pair_d >= n_docs)
    if bad.any():
        i = int(pair_q[np.argmax(bad)])
        raise ValueError(f"positives for query {i} point at doc row {int(pair_d[np.argmax(bad)])}, "
                         f"outside docs' {n_docs} rows")
    return q, pair_q, pair_d


def relevance_codes(pair_q, pair_d, n_docs):
    """Sorted unique ``query * n_docs + doc`` codes: fast membership tests of (query, doc)."""
    return np.unique(pair_q * np.int64(n_docs) + pair_d)


def mine_hard_negatives(query_vecs, query_rows, doc_vecs, codes, k, extra):
    """The ``k`` docs ranked highest for each query that are not relevant to it.

    ``query_rows`` are the queries' row numbers in the labels (``codes``, from
    :func:`relevance_codes`); ``extra`` is the most relevant docs one query has (searched
    past so that ``k`` non-relevant ones remain)."""
    n_docs = doc_vecs.shape[0]
    depth = min(k + extra, n_docs)
    top = exact_knn(query_vecs, doc_vecs, depth)
    relevant = np.isin(query_rows[:, None] * np.int64(n_docs) + top, codes)
    # stable sort on the relevant flag moves relevant docs behind, keeping the rank order
    order = np.argsort(relevant, axis=1, kind="stable")[:, :min(k, depth)]
    return np.take_along_axis(top, order, axis=1)


def ranking_metrics(query_vecs, doc_vecs, qrels, k=10, depth=100, block=1024):
    """nDCG@k, recall@k, recall@depth and MRR (reciprocal rank of the first relevant doc in
    the top ``depth``, else 0), averaged over queries, of exact inner-product search.

    ``qrels``: one dict ``{doc row: grade}`` per query (grade > 0 relevant; nDCG gain =
    grade, the trec_eval convention). Ties rank the lower doc row first.
    """
    n_docs = doc_vecs.shape[0]
    depth = min(max(depth, k), n_docs)
    k_eff = min(k, n_docs)
    discount = 1.0 / np.log2(np.arange(2, depth + 2))
    sums = np.zeros(4)
    for start in range(0, len(qrels), block):
        found = exact_knn(query_vecs[start:start + block], doc_vecs, depth)
        for row, rel in zip(found, qrels[start:start + block]):
            grades = np.array([rel.get(int(d), 0) for d in row], dtype=np.float64)
            ideal = np.sort(np.array([g for g in rel.values() if g > 0], dtype=np.float64))[::-1]
            n_rel = ideal.size
            idcg = (ideal[:k_eff] * discount[:min(k_eff, n_rel)]).sum()
            hit = grades > 0
            sums[0] += (grades[:k_eff] * discount[:k_eff]).sum() / idcg if idcg > 0 else 0.0
            sums[1] += hit[:k_eff].sum() / n_rel if n_rel else 0.0
            sums[2] += hit.sum() / n_rel if n_rel else 0.0
            first = np.flatnonzero(hit)
            sums[3] += 1.0 / (first[0] + 1) if first.size else 0.0
    means = sums / max(len(qrels), 1)
    return {f"ndcg@{k}": float(means[0]), f"recall@{k}": float(means[1]),
            f"recall@{depth}": float(means[2]), "mrr": float(means[3])}
