"""DIVE dimensionality reduction of frozen embeddings, and baselines to compare it with.

``import spherecodec.dive`` and every ``transform``/``load`` are pure numpy; only training
(``fit`` of :class:`DiveAdapter` and :class:`MatryoshkaAdaptor`) imports torch, the
``spherecodec[dive]`` extra. See docs/dive.md.
"""

from ._numpy import exact_knn, l2_normalize, ranking_metrics, recall_at_k
from .adapter import DiveAdapter, pca_basis
from .baselines import PCA, LinearProjection, MatryoshkaAdaptor, RandomProjection, SearchAdaptor, Truncation

__all__ = ["DiveAdapter", "Truncation", "PCA", "RandomProjection", "MatryoshkaAdaptor", "LinearProjection", "SearchAdaptor", "pca_basis", "exact_knn", "l2_normalize", "recall_at_k", "ranking_metrics"]
