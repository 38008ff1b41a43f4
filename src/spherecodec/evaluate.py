"""``spherecodec.evaluate``: compare codecs, lossy and lossless, on the caller's own data."""

import time

import numpy as np

from .codecs import Codec
from .container import Header, as_rows, decode, encode, make_codec
from .search import search, search_float

__all__ = ["evaluate"]

#: queries drawn from the array itself when the caller gives none
DEFAULT_QUERIES = 100


def _codec_specs(codecs):
    if isinstance(codecs, (str, dict, tuple, Codec)):
        codecs = [codecs]
    specs = []
    for item in codecs:
        if isinstance(item, str):
            specs.append((item, {}))
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], dict):
            specs.append((item[0], dict(item[1])))
        elif isinstance(item, dict) and isinstance(item.get("codec"), str):
            params = dict(item)
            specs.append((params.pop("codec"), params))
        elif isinstance(item, Codec):
            specs.append((item, {}))
        else:
            raise TypeError(f"a codec is a name, (name, params), {{'codec': name, ...}} or a Codec, not {item!r}")
    return specs


def _timed(fn, repeat):
    times = []
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return result, float(np.median(times))


def _recall(found, truth):
    k = truth.shape[1]
    hits = sum(np.intersect1d(f[f >= 0], t[t >= 0]).size for f, t in zip(found, truth))
    return hits / (k * truth.shape[0])


def evaluate(array, codecs, queries=None, k=10, *, oversample=4, repeat=1, threads=None):
    """Encode ``array`` with each codec and measure what it costs and keeps.

    Parameters
    ----------
    array : array_like
        float32 rows (2-D, or N-D with rows over the last axis).
    codecs : iterable
        Each a codec name, a ``(name, params)`` pair, a dict ``{"codec": name, **params}``
        or a Codec object (used as given: fitted objects keep their state).
    queries : array_like or None
        float32 (Q, dim) queries for recall. None: up to 100 rows of ``array`` evenly
        spaced (then each query also finds itself, in the truth and the results alike).
    k : int
        Neighbours for recall@k.
    oversample : int
        Candidates per result rescored for ``recall_rescored``.
    repeat : int
        Timed runs of encode and decode; the median is reported.
    threads : int or None
        Threads for encode, decode and search.

    Returns
    -------
    list of dict
        One row per codec: ``codec``, ``params``, ``ratio``, ``bytes_per_vector``,
        ``max_abs_error``, ``mean_abs_error``, ``k``, ``recall`` (recall@k of the search on
        the codes against exact float32 search), ``recall_rescored`` (after exact rescoring
        of ``oversample * k`` candidates), ``encode_MBps``, ``decode_MBps``,
        ``search_ms_per_query``.
    """
    x = np.asarray(array)
    if x.dtype != np.float32:
        raise TypeError(f"evaluate takes float32 arrays, not {x.dtype}")
    x = as_rows(x)
    n, dim = x.shape
    if n == 0 or dim == 0:
        raise ValueError("evaluate needs a non-empty array")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, not {k!r}")
    if isinstance(repeat, bool) or not isinstance(repeat, (int, np.integer)) or repeat < 1:
        raise ValueError(f"repeat must be a positive integer, not {repeat!r}")
    if queries is None:
        queries = x[np.linspace(0, n - 1, min(DEFAULT_QUERIES, n)).astype(np.int64)]
    queries = np.ascontiguousarray(np.asarray(queries))
    if queries.dtype != np.float32 or queries.ndim != 2 or queries.shape[1] != dim:
        raise ValueError(f"queries must be float32 of shape (Q, {dim})")
    k_eff = min(int(k), n)
    _, truth = search_float(x, queries, k_eff)
    rows = []
    for codec, params in _codec_specs(codecs):
        # a name makes a fresh, unfitted codec for every run: fitting is part of encoding
        blob, t_enc = _timed(lambda: encode(x, make_codec(codec, params), threads=threads), repeat)
        y, t_dec = _timed(lambda: decode(blob, threads=threads), repeat)
        y = y.reshape(n, dim)
        err = np.abs(x.astype(np.float64) - y.astype(np.float64))
        finite = np.isfinite(err)
        t0 = time.perf_counter()
        _, found = search(blob, queries, k_eff, threads=threads)
        t_search = time.perf_counter() - t0
        _, found_rescored = search(blob, queries, k_eff, rescore_with=x, oversample=oversample,
                                   threads=threads)
        header = Header(blob)
        rows.append({
            "codec": header.codec.name,
            "params": dict(header.meta["params"]),
            "ratio": x.nbytes / len(blob),
            "bytes_per_vector": len(blob) / n,
            "max_abs_error": float(err[finite].max()) if finite.any() else float("nan"),
            "mean_abs_error": float(err[finite].mean()) if finite.any() else float("nan"),
            "k": k_eff,
            "recall": _recall(found, truth),
            "recall_rescored": _recall(found_rescored, truth),
            "encode_MBps": x.nbytes / 1e6 / t_enc if t_enc > 0 else float("inf"),
            "decode_MBps": x.nbytes / 1e6 / t_dec if t_dec > 0 else float("inf"),
            "search_ms_per_query": 1e3 * t_search / queries.shape[0],
        })
    return rows
