"""What a decoded base is worth: bit-exactness, error against the original, and recall@k of
exact inner-product search of the held-out queries."""

from dataclasses import dataclass

import numpy as np

__all__ = ["SCORE_BLOCK_FLOATS", "Quality", "top_k", "recall_at_k", "measure_quality"]

#: scores computed at once by ``top_k`` (floats)
SCORE_BLOCK_FLOATS = 1 << 26


def top_k(base, queries, k):
    """Indices of the ``k`` largest inner products per query (exact search), best first."""
    base = np.asarray(base, dtype=np.float32)
    queries = np.asarray(queries, dtype=np.float32)
    k = min(k, base.shape[0])
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    # score blocks of queries so the score matrix stays near 256 MB on big bases
    block = max(1, SCORE_BLOCK_FLOATS // max(1, base.shape[0]))
    for lo in range(0, queries.shape[0], block):
        scores = queries[lo:lo + block] @ base.T
        idx = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, idx, axis=1), axis=1, kind="stable")
        out[lo:lo + block] = np.take_along_axis(idx, order, axis=1)
    return out


def recall_at_k(truth, found):
    """Mean fraction of each query's true top-k found in its retrieved top-k."""
    truth = np.asarray(truth)
    found = np.asarray(found)
    if truth.shape != found.shape:
        raise ValueError("truth and found must have the same shape")
    hits = sum(len(set(t.tolist()) & set(f.tolist())) for t, f in zip(truth, found))
    return hits / truth.size if truth.size else 1.0


@dataclass
class Quality:
    """How a decoded base compares with the original; None where it could not be measured
    (``note`` says why)."""

    bit_exact: bool = False
    max_abs_error: float | None = None
    rmse: float | None = None
    recall: float | None = None
    note: str = ""


def measure_quality(base, decoded, queries, truth, k):
    """Compare ``decoded`` with ``base`` bit for bit, measure its error, and the recall@k of
    the ``queries`` searched over it against ``truth`` (their top-k over ``base``)."""
    decoded = np.asarray(decoded)
    if decoded.size != base.size:
        return Quality(note=f"decoded {decoded.shape}, not {base.shape}: no error or recall")
    decoded = decoded.reshape(base.shape)
    bit_exact = decoded.dtype == base.dtype and bool(
        np.array_equal(decoded.view(np.uint32), base.view(np.uint32)))
    if bit_exact:
        max_abs_error = rmse = 0.0
    else:
        diff = decoded.astype(np.float64) - base.astype(np.float64)
        finite = np.isfinite(diff)
        max_abs_error = float(np.abs(diff[finite]).max()) if finite.any() else float("nan")
        rmse = float(np.sqrt(np.mean(diff[finite] ** 2))) if finite.any() else float("nan")
    recall = recall_at_k(truth, top_k(decoded.astype(np.float32, copy=False), queries, k))
    return Quality(bit_exact, max_abs_error, rmse, recall)
