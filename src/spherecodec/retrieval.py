"""``spherecodec.evaluate_retrieval``: search quality with relevance labels (nDCG@10, recall,
MRR) of codecs, dimension reducers and reducer + codec compositions."""

import time

import numpy as np

from .codecs import Codec
from .container import decode, encode, make_codec
from .dive._numpy import as_float32_rows, ranking_metrics

__all__ = ["evaluate_retrieval", "as_qrels"]


def as_qrels(qrels, n_queries, n_docs):
    """Relevance labels as one ``{doc row: grade}`` dict per query.

    Accepts an int array of one relevant doc row per query (binary), a sequence with one
    item per query of an int doc row, an int array of doc rows (binary, several) or a dict
    ``{doc row: grade}`` (graded; grade <= 0 is not relevant).
    """
    if isinstance(qrels, np.ndarray) and qrels.ndim == 1 and qrels.dtype.kind in "iu":
        items = [{int(d): 1} for d in qrels]
    elif isinstance(qrels, np.ndarray) and qrels.dtype.kind not in "iuO":
        raise TypeError(f"qrels must hold integer doc rows, not dtype {qrels.dtype}")
    else:
        try:
            raw = list(qrels)
        except TypeError:
            raise TypeError("qrels must be an int array (one relevant doc row per query) or a list "
                            "with, per query, doc rows or a {doc row: grade} dict") from None
        items = []
        for i, item in enumerate(raw):
            if isinstance(item, dict):
                rel = {}
                for d, g in item.items():
                    if not isinstance(d, (int, np.integer)) or isinstance(d, bool):
                        raise TypeError(f"qrels[{i}] has key {d!r}: keys are doc rows (int)")
                    if not isinstance(g, (int, float, np.integer, np.floating)) or not np.isfinite(g):
                        raise TypeError(f"qrels[{i}][{d}] = {g!r}: grades are finite numbers")
                    rel[int(d)] = float(g)
            else:
                rows = np.asarray(item).reshape(-1)
                if rows.dtype.kind not in "iu":
                    raise TypeError(f"qrels[{i}] must be doc rows (int) or a {{doc row: grade}} dict")
                rel = {int(d): 1.0 for d in rows}
            items.append(rel)
    if len(items) != n_queries:
        raise ValueError(f"qrels has {len(items)} entries but there are {n_queries} queries: give "
                         "the relevant docs of every query")
    for i, rel in enumerate(items):
        bad = [d for d in rel if not 0 <= d < n_docs]
        if bad:
            raise ValueError(f"qrels[{i}] points at doc row {bad[0]}, outside the corpus's {n_docs} rows")
        if not any(g > 0 for g in rel.values()):
            raise ValueError(f"qrels[{i}] has no relevant doc (grade > 0): nDCG is undefined; drop "
                             "that query")
    return items


def _codec_spec(spec):
    """(codec or name, params) from a name, (name, params), {"codec": name, ...} or a Codec."""
    if isinstance(spec, (str, Codec)):
        return spec, {}
    if isinstance(spec, dict) and isinstance(spec.get("codec"), str):
        params = dict(spec)
        return params.pop("codec"), params
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], dict):
        return spec[0], dict(spec[1])
    return None


def _parse_method(method):
    """(reducer or None, codec spec or None) of one method."""
    if method is None or (isinstance(method, str) and method == "float32"):
        return None, None
    spec = _codec_spec(method)
    if spec is not None:
        return None, spec
    if hasattr(method, "transform"):
        return method, None
    if isinstance(method, tuple) and len(method) == 2 and hasattr(method[0], "transform"):
        spec = _codec_spec(method[1])
        if spec is not None:
            return method[0], spec
    raise TypeError(f"a method is None/'float32' (the frozen embeddings), a codec (name, (name, params), "
                    f"{{'codec': name, ...}} or Codec), a reducer with .transform (DiveAdapter, PCA, ...) "
                    f"or a (reducer, codec) pair, not {method!r}")


def evaluate_retrieval(corpus, queries, qrels, *, methods, k=10, depth=100, threads=None):
    """Retrieval quality of each method on a labelled set, by exact inner-product search.

    Parameters
    ----------
    corpus, queries : array_like
        float32 (n_docs, dim) and (n_queries, dim) embeddings.
    qrels
        Relevance: an int array of one relevant corpus row per query, or per query a list of
        rows or a ``{row: grade}`` dict (graded; nDCG gain = grade).
    methods : dict or list
        ``{label: method}`` (a list is labelled by position). A method is None or "float32"
        (the frozen embeddings), a codec (name, ``(name, params)``, ``{"codec": name, ...}``
        or Codec: the corpus is encoded and decoded, queries stay float32), a reducer with
        ``transform`` (DiveAdapter, PCA, ...: applied to corpus and queries), or a
        ``(reducer, codec)`` pair (reduce, then store the reduced corpus with the codec).
    k : int
        Cut-off of nDCG and the first recall (nDCG@10, recall@10).
    depth : int
        Cut-off of the second recall and of MRR (recall@100; reciprocal rank of the first
        relevant doc in the top 100, else 0).

    Returns
    -------
    list of dict
        One row per method: ``method``, ``dims``, ``bytes_per_vector`` (the encoded corpus
        blob over its rows, headers included; 4 x dims for float32), ``ndcg@{k}``,
        ``recall@{k}``, ``recall@{depth}``, ``mrr``, ``seconds`` (reduce, encode, decode).
        Ties in score rank the lower corpus row first.
    """
    c = as_float32_rows(corpus, name="corpus")
    q = as_float32_rows(queries, name="queries")
    if q.shape[1] != c.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} columns but the corpus has {c.shape[1]}")
    for name, value, low in (("k", k, 1), ("depth", depth, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
    rel = as_qrels(qrels, q.shape[0], c.shape[0])
    if isinstance(methods, dict):
        items = list(methods.items())
    else:
        items = [(str(i), m) for i, m in enumerate(methods)]
    parsed = [(label, *_parse_method(m)) for label, m in items]
    rows = []
    for label, reducer, spec in parsed:
        t0 = time.perf_counter()
        cv, qv = (reducer.transform(c), reducer.transform(q)) if reducer is not None else (c, q)
        cv = np.ascontiguousarray(cv, dtype=np.float32)
        qv = np.ascontiguousarray(qv, dtype=np.float32)
        bytes_per_vector = 4.0 * cv.shape[1]
        if spec is not None:
            codec = make_codec(*spec)
            blob = encode(cv, codec, threads=threads)
            cv = decode(blob, threads=threads).reshape(cv.shape[0], -1)
            bytes_per_vector = len(blob) / cv.shape[0]
            if getattr(codec, "adapter", None) is not None and cv.shape[1] != qv.shape[1]:
                # the dive codec reduces inside encode: queries go through its adapter too
                qv = np.ascontiguousarray(codec.adapter.transform(qv), dtype=np.float32)
            if cv.shape[1] != qv.shape[1]:
                raise ValueError(f"method {label!r} decodes to {cv.shape[1]} dimensions but the queries "
                                 f"have {qv.shape[1]}: give a (reducer, codec) pair so queries are reduced too")
        seconds = time.perf_counter() - t0
        metrics = ranking_metrics(qv, cv, rel, k=int(k), depth=int(depth))
        rows.append({"method": label, "dims": int(cv.shape[1]), "bytes_per_vector": bytes_per_vector,
                     **metrics, "seconds": seconds})
    return rows
