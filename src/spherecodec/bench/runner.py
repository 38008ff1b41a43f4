"""The measurement: an untimed warm-up of every candidate, then interleaved timed rounds."""

import gc
import time

from .. import container as _container
from ..warmup import warm_cache
from .candidates import (HALF_VARIANTS, codec_candidate, default_codec_specs, missing_dependency, peer_candidate,
                         select_peers)
from .data import as_float32_rows, split_queries
from .quality import measure_quality, top_k
from .result import BenchResult

__all__ = ["run_benchmark"]

# rows the kernels are compiled on ahead of a fresh install's first run
_WARM_ROWS = 2048


def run_benchmark(data, codecs=None, peers=False, threads=None, repeats=5, k=10,
                  query_fraction=0.1, progress=None):
    """Measure codecs and peers on ``data``; return one ``BenchResult`` per candidate.

    Parameters
    ----------
    data : array_like
        Floating-point vectors (rows over the last axis), cast to float32.
    codecs : list of str or None
        spherecodec codecs as ``"name"`` or ``"name:key=value,..."``; None: every registered
        codec with its default parameters (``CODEC_PARAMS``) plus ``DEFAULT_VARIANTS``, and
        with peers ``HALF_VARIANTS`` (the exact codec on the vectors cast to bfloat16 and
        float16). A spec's ``as=bfloat16``/``as=float16`` casts the vectors before coding.
    peers : bool or list of str
        True: every peer in ``spherecodec.bench.peers``; a list: the peers of those names.
    threads : int or None
        The "all cores" thread count measured beside threads=1 (None: ``os.cpu_count()``).
    repeats : int
        Timed runs per candidate and thread count (after one untimed warm-up); medians.
    k : int
        Neighbours for recall@k.
    query_fraction : float
        Share of the rows (the last ones) held out as queries.
    progress : callable or None
        Called with a line of text as the run advances.

    Returns
    -------
    list of BenchResult
        In the order codecs, then peers; ``status`` "ok", "skipped" (with the ``reason``
        and nothing measured) or "failed" (with where it raised).
    """
    say = progress or (lambda line: None)
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError("repeats must be a positive integer")
    if not isinstance(k, int) or k < 1:
        raise ValueError("k must be a positive integer")
    all_cores = _container.resolve_threads(threads)
    thread_counts = [1] if all_cores == 1 else [1, all_cores]
    base, queries = split_queries(as_float32_rows(data), query_fraction)
    truth = top_k(base, queries, k)

    specs = default_codec_specs() if codecs is None else list(codecs)
    if codecs is None and peers:  # the half-precision rows, beside their peers zipnn-bf16 / -fp16
        specs += HALF_VARIANTS
    cands = [codec_candidate(spec) for spec in specs]
    if peers:
        cands += [peer_candidate(p) for p in select_peers(peers)]
    results = [BenchResult(c.name, c.source, raw_bytes=int(base.nbytes), rows=base.shape[0],
                           k=int(min(k, base.shape[0])), description=c.description,
                           exact_claimed=c.exact_claimed,
                           threads=[t for t in thread_counts if t == 1 or c.threaded],
                           status="skipped" if c.skip else "ok", reason=c.skip or "")
               for c in cands]

    live = [(c, r) for c, r in zip(cands, results) if not c.skip]
    # a fresh install compiles every kernel on first use: do it in one process per core
    if warm_cache([c.codec_spec for c, _ in live if c.codec_spec], base[:_WARM_ROWS], processes=all_cores):
        say("  compiled the kernels in parallel processes (first run after installation)")
    # untimed warm-up (JIT caches, thread pools), model fitting and quality, once each
    live = [(c, r) for c, r in live if _warm_up(c, r, base, queries, truth, k, say)]
    _timed_rounds([(c, r, t) for c, r in live for t in r.threads], base, repeats, say)
    for r in results:
        r.notes += r.closing_notes()
    return results


def _warm_up(cand, result, base, queries, truth, k, say):
    """Fit, encode and decode once untimed and measure size and quality; False if it cannot run."""
    started = time.perf_counter()
    try:
        if cand.peer is not None and cand.peer.fits_model:
            t0 = time.perf_counter()
            cand.peer.fit(base)
            result.fit_seconds = time.perf_counter() - t0
            if cand.peer.name != cand.name:  # faiss PQ names its shape once fitted
                cand.name = result.name = cand.peer.name
                cand.description = result.description = cand.peer.description
        blob = cand.encode(base, 1)
        decoded = cand.decode(blob, base.shape, base.dtype, 1)
        if cand.fit is not None:  # the fit inside every encode, timed apart (compiled by now)
            t0 = time.perf_counter()
            cand.fit(base)
            result.fit_seconds, result.fit_in_encode = time.perf_counter() - t0, True
            result.fit_reusable = cand.fit_reusable
    except ImportError as exc:  # an optional dependency imported on first use
        result.skip(missing_dependency(exc))
        say(f"  {result.name}: skipped: {result.reason}")
        return False
    except Exception as exc:  # a peer or codec that cannot handle this data
        result.fail(f"warm-up: {type(exc).__name__}: {exc}")
        say(f"  {result.name}: {result.reason}")
        return False
    say(f"warm-up {cand.name}: {time.perf_counter() - started:.2f} s")
    quality = measure_quality(base, decoded, queries, truth, k)
    result.bit_exact = quality.bit_exact
    result.max_abs_error, result.rmse, result.recall = quality.max_abs_error, quality.rmse, quality.recall
    if quality.note:
        result.notes.append(quality.note)
    if cand.exact_claimed and not quality.bit_exact:
        result.notes.append("claims lossless but did not round-trip bit-exactly")
    result.compressed_bytes = len(blob)
    result.blob_sizes.add(len(blob))
    return True


def _timed_rounds(runs, base, repeats, say):
    """``repeats`` rounds over every ``(candidate, result, threads)`` in turn (interleaved, so
    a slow spell of the machine spreads over all of them), with the garbage collector off."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for rep in range(repeats):
            say(f"timed round {rep + 1}/{repeats}")
            for cand, result, threads in runs:
                if result.status != "ok":
                    continue
                try:
                    c0, t0 = time.process_time(), time.perf_counter()
                    blob = cand.encode(base, threads)
                    c1, t1 = time.process_time(), time.perf_counter()
                    cand.decode(blob, base.shape, base.dtype, threads)
                    c2, t2 = time.process_time(), time.perf_counter()
                except Exception as exc:
                    result.fail(f"timed run {rep + 1}, threads={threads}: {type(exc).__name__}: {exc}")
                    say(f"  {result.name}: {result.reason}")
                    continue
                if threads == 1 or cand.threaded_decode:
                    result.record_run(threads, t1 - t0, c1 - c0, t2 - t1, c2 - c1)
                else:  # its decode ignores the thread count: timed at threads=1 only
                    result.record_run(threads, t1 - t0, c1 - c0)
                result.blob_sizes.add(len(blob))
                del blob
            gc.collect()
    finally:
        if gc_was_enabled:
            gc.enable()
