"""``spherecodec bench``: every spherecodec codec against the peers, on your own embeddings.

Usage::

    spherecodec bench FILE.npy [--rows N] [--peers] [--codecs exact sphere:bits=8] \\
        [--threads N] [--repeats 5] [--out DIR]
    spherecodec bench --sample --peers            # the bundled 2000 x 384 MiniLM sample
    spherecodec bench --synthetic unit-768        # built-in synthetic sets
    python -m spherecodec.bench ...               # the same without the console script

The last 10% of the rows are held out as queries; every codec and peer compresses the rest
(the *base*). Runs are interleaved (A, B, C, A, B, C, ...) after one untimed warm-up run each,
and the table reports medians of ``--repeats`` (default 5) timed runs of: compression ratio,
bytes per vector, encode and decode MB/s of raw float32 (threads=1 and all cores), bit-exactness
(compared bit for bit) or the max abs error, and recall@10 of exact inner-product search of the
held-out queries over the decoded base against the same search over the original base.

``--out DIR`` writes ``results.md``, ``results.json`` and three PNG plots (ratio against
decode speed, ratio against max error, recall against bytes per vector).
"""

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from importlib import metadata, resources

import numpy as np

from . import container as _container
from .warmup import warm_cache
from . import decode, encode, get_codec
from .codecs import available_codecs

__all__ = ["main", "run_benchmark", "load_sample", "synthetic", "SYNTHETIC_SETS",
           "recall_at_k", "format_table", "write_outputs", "machine_facts"]

#: parameters the benchmark gives a codec when the user names none (codecs whose defaults
#: are fine need no entry)
CODEC_PARAMS = {}
#: extra settings a default run measures beside each registered codec's defaults: the
#: error-bounded codecs at the bound of the zfp peer, to place them on the ratio/error curve
DEFAULT_VARIANTS = {
    "sphere": ["sphere:max_abs_error=1e-4"],
    "grid": ["grid:max_abs_error=1e-4"],
}

#: built-in synthetic sets: name -> (kind, dim)
SYNTHETIC_SETS = {
    "unit-384": ("unit", 384),
    "unit-768": ("unit", 768),
    "unit-1024": ("unit", 1024),
    "unit-4096": ("unit", 4096),
    "nonunit-384": ("nonunit", 384),
    "multivector-128": ("multivector", 128),
}
# synthetic sets hold about this many floats unless --rows says otherwise (6 MB)
_SYNTHETIC_FLOATS = 1_500_000
SAMPLE_NAME = "minilm-sentences-2000.sphc"
#: held-out queries are capped so exact search stays cheap on big inputs
MAX_QUERIES = 1000
#: scores computed at once by ``top_k`` (floats)
SCORE_BLOCK_FLOATS = 1 << 26


class BenchError(Exception):
    """A benchmark input problem reported to the user as one line, not a traceback."""


# -- data -------------------------------------------------------------------------------

def load_sample():
    """The bundled real sample: 2000 x 384 unit-norm MiniLM sentence embeddings."""
    try:
        from . import datasets  # another part of the package may provide this
        loader = getattr(datasets, "load_sample", None)
    except ImportError:
        loader = None
    if loader is not None:
        return np.asarray(loader())
    blob = resources.files("spherecodec").joinpath("data", SAMPLE_NAME).read_bytes()
    try:
        return decode(blob)
    except ValueError as exc:
        raise BenchError(f"the bundled sample {SAMPLE_NAME} does not decode: {exc}") from None


def synthetic(name, rows=None, seed=0):
    """A built-in synthetic set (see ``SYNTHETIC_SETS``) as a 2-D float32 array.

    ``unit-D``: Gaussian vectors normalised to unit length. ``nonunit-384``: Gaussian
    directions with log-normal norms (0.2 to 20). ``multivector-128``: ColBERT-style token
    vectors, 32 per document, each a unit vector near its document's centre.
    """
    if name not in SYNTHETIC_SETS:
        raise BenchError(f"unknown synthetic set {name!r}; choose from {', '.join(SYNTHETIC_SETS)}")
    kind, dim = SYNTHETIC_SETS[name]
    rows = rows or max(64, _SYNTHETIC_FLOATS // dim)
    rng = np.random.default_rng(seed)
    if kind == "multivector":
        per_doc = 32
        docs = -(-rows // per_doc)
        centres = rng.standard_normal((docs, 1, dim))
        x = (centres + 0.6 * rng.standard_normal((docs, per_doc, dim))).reshape(-1, dim)[:rows]
    else:
        x = rng.standard_normal((rows, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    if kind == "nonunit":
        x *= np.exp(rng.uniform(np.log(0.2), np.log(20.0), size=(rows, 1)))
    return np.ascontiguousarray(x, dtype=np.float32)


def load_file(path):
    """Rows of a ``.npy`` file or a spherecodec blob (``.sphc``) as an array."""
    if not os.path.exists(path):
        raise BenchError(f"no such file: {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        if head == _container.MAGIC:
            with open(path, "rb") as f:
                return decode(f.read())  # a SpherecodecError is a ValueError
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise BenchError(f"cannot read {path}: {exc}") from None


def _as_float32_rows(array, rows=None):
    array = np.asarray(array)
    if array.dtype.kind != "f":
        raise BenchError(f"data must be floating point, not {array.dtype}")
    if array.ndim == 0:
        raise BenchError("data must have at least one dimension")
    array = array.reshape(-1, array.shape[-1]) if array.ndim != 1 else array.reshape(1, -1)
    if rows is not None:
        array = array[:rows]
    # an owned, writeable copy: some peers refuse read-only buffers (memory-mapped files)
    return np.array(array, dtype=np.float32, order="C", copy=True)


def split_queries(data, query_fraction=0.1, max_queries=MAX_QUERIES):
    """``(base, queries)``: the last ``query_fraction`` of the rows (at most ``max_queries``)
    are held-out queries, never compressed; the rows before them are the base."""
    n = data.shape[0]
    if n < 2:
        raise BenchError(f"need at least 2 rows (base and queries), got {n}")
    nq = min(n - 1, max_queries, max(1, int(round(n * query_fraction))))
    return np.ascontiguousarray(data[:n - nq]), np.ascontiguousarray(data[n - nq:])


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


def _quality(base, decoded, queries, truth, k):
    out = {"bit_exact": False, "max_abs_error": None, "rmse": None, "recall": None, "note": ""}
    decoded = np.asarray(decoded)
    if decoded.size != base.size:
        out["note"] = f"decoded {decoded.shape}, not {base.shape}: no error or recall"
        return out
    decoded = decoded.reshape(base.shape)
    if decoded.dtype == base.dtype:
        out["bit_exact"] = bool(np.array_equal(decoded.view(np.uint32), base.view(np.uint32)))
    if out["bit_exact"]:
        out["max_abs_error"] = 0.0
        out["rmse"] = 0.0
    else:
        diff = decoded.astype(np.float64) - base.astype(np.float64)
        finite = np.isfinite(diff)
        out["max_abs_error"] = float(np.abs(diff[finite]).max()) if finite.any() else float("nan")
        out["rmse"] = float(np.sqrt(np.mean(diff[finite] ** 2))) if finite.any() else float("nan")
    out["recall"] = recall_at_k(truth, top_k(decoded.astype(np.float32, copy=False), queries, k))
    return out


# -- candidates -------------------------------------------------------------------------

class _Candidate:
    """One thing to measure: a spherecodec codec with parameters, or a peer."""

    def __init__(self, name, source, encode_fn, decode_fn, *, threaded, exact_claimed,
                 description="", fit=None, skip=None, threaded_decode=None):
        self.name = name
        self.source = source
        self.encode = encode_fn
        self.decode = decode_fn
        self.threaded = threaded
        self.threaded_decode = threaded if threaded_decode is None else threaded_decode
        self.exact_claimed = exact_claimed
        self.description = description
        self.fit = fit
        self.skip = skip


def parse_codec_spec(spec):
    """``"name"`` or ``"name:key=value,key=value"`` -> ``(name, params)``; values are JSON or strings."""
    name, _, rest = spec.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise BenchError(f"bad codec parameter {item!r} in {spec!r}: use key=value")
        try:
            params[key.strip()] = json.loads(value)
        except ValueError:
            params[key.strip()] = value
    return name.strip(), params


def default_codec_specs():
    """Every registered codec (default parameters), then ``DEFAULT_VARIANTS`` of those present,
    and the exact codec at its highest level."""
    names = available_codecs()
    specs = names + [v for name in names for v in DEFAULT_VARIANTS.get(name, [])]
    try:
        from .codecs.exact_models import MAX_LEVEL
    except ImportError:
        MAX_LEVEL = 1
    if "exact" in names and MAX_LEVEL > 1:
        specs.insert(names.index("exact") + 1, f"exact:level={MAX_LEVEL}")
    return specs


def codec_label(name, params):
    """Table label of a codec with parameters: ``name`` or ``name(key=value,...)``."""
    if not params:
        return name
    return name + "(" + ",".join(f"{k}={v}" for k, v in params.items()) + ")"


def _codec_candidate(spec):
    name, params = parse_codec_spec(spec)
    if ":" not in spec:
        params = dict(CODEC_PARAMS.get(name, {}))
    label = codec_label(name, params)
    try:
        cls = get_codec(name)
    except ValueError as exc:
        return _Candidate(label, "spherecodec", None, None, threaded=True, exact_claimed=None,
                          skip=str(exc))
    try:
        codec = cls(**params)
    except (TypeError, ValueError) as exc:
        return _Candidate(label, "spherecodec", None, None, threaded=True, exact_claimed=None,
                          skip=f"cannot run with default parameters ({exc}); "
                               f"pass them as --codecs {name}:key=value")

    def enc(arr, threads):
        return encode(arr, codec, threads=threads)

    def dec(blob, shape, dtype, threads):
        return decode(blob, threads=threads)

    return _Candidate(label, "spherecodec", enc, dec, threaded=True, exact_claimed=None,
                      description=repr(codec))


def _peer_candidate(peer):
    if not peer.available():
        return _Candidate(peer.name, "peer", None, None, threaded=peer.threaded,
                          exact_claimed=peer.exact, description=peer.description,
                          skip=peer.unavailable_reason)
    return _Candidate(peer.name, "peer",
                      lambda arr, t: peer.encode(arr, threads=t),
                      lambda blob, shape, dtype, t: peer.decode(blob, shape, dtype, threads=t),
                      threaded=peer.threaded, exact_claimed=peer.exact,
                      description=peer.description, fit=peer,
                      threaded_decode=peer.threaded and peer.threaded_decode)


# -- the run ----------------------------------------------------------------------------

def _median_mbps(nbytes, seconds):
    if not seconds:
        return None
    med = statistics.median(seconds)
    return nbytes / 1e6 / med if med > 0 else float("inf")


def run_benchmark(data, codecs=None, peers=False, threads=None, repeats=5, k=10,
                  query_fraction=0.1, progress=None):
    """Measure codecs and peers on ``data``; return one result dict per candidate.

    Parameters
    ----------
    data : array_like
        Floating-point vectors (rows over the last axis), cast to float32.
    codecs : list of str or None
        spherecodec codecs as ``"name"`` or ``"name:key=value,..."``; None: every registered
        codec with its default parameters (``CODEC_PARAMS``) plus ``DEFAULT_VARIANTS``.
    peers : bool or list of str
        True: every peer in ``spherecodec.peers``; a list: the peers of those names.
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
    list of dict
        Keys: ``name``, ``source`` ("spherecodec" or "peer"), ``status`` ("ok", "skipped",
        "failed"), ``reason``, ``description``, ``exact_claimed``, ``bit_exact``, ``ratio``,
        ``raw_bytes``, ``compressed_bytes``, ``bytes_per_vector``, ``encode_mbps`` and
        ``decode_mbps`` (dicts from thread count, as a string, to median MB/s of raw float32),
        ``encode_seconds``/``decode_seconds`` (wall clock of every timed run),
        ``encode_cpu_seconds``/``decode_cpu_seconds`` (CPU time of the process, all its threads,
        which a machine shared with other jobs inflates less), ``max_abs_error``, ``rmse``,
        ``recall``, ``k``, ``notes``.
    """
    from . import peers as peers_mod

    say = progress or (lambda line: None)
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError("repeats must be a positive integer")
    if not isinstance(k, int) or k < 1:
        raise ValueError("k must be a positive integer")
    all_cores = _container.resolve_threads(threads)
    thread_counts = [1] if all_cores == 1 else [1, all_cores]
    base, queries = split_queries(_as_float32_rows(data), query_fraction)
    truth = top_k(base, queries, k)

    if codecs is None:
        codecs = default_codec_specs()
    cands = [_codec_candidate(spec) for spec in codecs]
    if peers:
        known = peers_mod.all_peers()
        if peers is not True:
            wanted = list(peers)
            names = {p.name: p for p in known}
            missing = [w for w in wanted if w not in names and not w.startswith("faiss-pq")]
            if missing:
                raise BenchError(f"unknown peers {missing}; known: {', '.join(names)}")
            known = [p for p in known if p.name in wanted
                     or (isinstance(p, peers_mod.FaissPQ) and any(w.startswith("faiss-pq") for w in wanted))]
        cands += [_peer_candidate(p) for p in known]

    results = {}
    for c in cands:
        results[id(c)] = r = {
            "name": c.name, "source": c.source, "status": "ok", "reason": "",
            "description": c.description, "exact_claimed": c.exact_claimed, "bit_exact": None,
            "ratio": None, "raw_bytes": int(base.nbytes), "compressed_bytes": None,
            "bytes_per_vector": None, "encode_mbps": {}, "decode_mbps": {},
            "encode_seconds": {}, "decode_seconds": {}, "encode_cpu_seconds": {},
            "decode_cpu_seconds": {}, "max_abs_error": None, "rmse": None,
            "recall": None, "k": int(min(k, base.shape[0])), "notes": [],
            "threads": [t for t in thread_counts if t == 1 or c.threaded],
        }
        if c.skip:
            r["status"], r["reason"] = "skipped", c.skip

    def fail(c, exc, when):
        r = results[id(c)]
        r["status"] = "failed"
        r["reason"] = f"{when}: {type(exc).__name__}: {exc}"
        say(f"  {c.name}: {r['reason']}")

    live = [c for c in cands if not c.skip]
    # a fresh install compiles every kernel on first use: do it in one process per core
    runnable = [parse_codec_spec(spec) if ":" in spec else (spec, dict(CODEC_PARAMS.get(spec, {})))
                for spec, c in zip(codecs, cands) if not c.skip]
    if warm_cache(runnable, base[:2048], processes=all_cores):
        say("  compiled the kernels in parallel processes (first run after installation)")
    # untimed warm-up (JIT caches, thread pools), model fitting and quality, once each
    for c in list(live):
        r = results[id(c)]
        t_warm = time.perf_counter()
        try:
            if c.fit is not None:
                t0 = time.perf_counter()
                c.fit.fit(base)
                fit_s = time.perf_counter() - t0
                if fit_s > 0.05:
                    r["fit_seconds"] = fit_s
                if c.fit.name != c.name:  # faiss PQ names its shape once fitted
                    c.name = r["name"] = c.fit.name
                    r["description"] = c.description = c.fit.description
            blob = c.encode(base, 1)
            decoded = c.decode(blob, base.shape, base.dtype, 1)
        except Exception as exc:  # a peer or codec that cannot handle this data
            fail(c, exc, "warm-up")
            live.remove(c)
            continue
        say(f"warm-up {c.name}: {time.perf_counter() - t_warm:.2f} s")
        q = _quality(base, decoded, queries, truth, k)
        r["bit_exact"] = q["bit_exact"]
        r["max_abs_error"], r["rmse"], r["recall"] = q["max_abs_error"], q["rmse"], q["recall"]
        if q["note"]:
            r["notes"].append(q["note"])
        if c.exact_claimed and not q["bit_exact"]:
            r["notes"].append("claims lossless but did not round-trip bit-exactly")
        r["compressed_bytes"] = len(blob)
        r["ratio"] = base.nbytes / len(blob) if len(blob) else float("inf")
        r["bytes_per_vector"] = len(blob) / base.shape[0]
        r["_sizes"] = {len(blob)}
        del blob, decoded

    runs = [(c, t) for c in live for t in thread_counts if t == 1 or c.threaded]
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for rep in range(repeats):
            say(f"timed round {rep + 1}/{repeats}")
            for c, t in runs:
                r = results[id(c)]
                if r["status"] != "ok":
                    continue
                try:
                    c0, t0 = time.process_time(), time.perf_counter()
                    blob = c.encode(base, t)
                    c1, t1 = time.process_time(), time.perf_counter()
                    c.decode(blob, base.shape, base.dtype, t)
                    c2, t2 = time.process_time(), time.perf_counter()
                except Exception as exc:
                    fail(c, exc, f"timed run {rep + 1}, threads={t}")
                    continue
                r["encode_seconds"].setdefault(str(t), []).append(t1 - t0)
                r["encode_cpu_seconds"].setdefault(str(t), []).append(c1 - c0)
                if t == 1 or c.threaded_decode:  # else its decode at t threads is the 1-thread one
                    r["decode_seconds"].setdefault(str(t), []).append(t2 - t1)
                    r["decode_cpu_seconds"].setdefault(str(t), []).append(c2 - c1)
                r["_sizes"].add(len(blob))
                del blob
            gc.collect()
    finally:
        if gc_was_enabled:
            gc.enable()

    out = []
    for r in results.values():
        sizes = r.pop("_sizes", set())
        if len(sizes) > 1:
            r["notes"].append(f"blob size differs between runs or thread counts "
                              f"({min(sizes)}..{max(sizes)} bytes; ratio from threads=1)")
        if r["status"] == "ok":
            for t, secs in r["encode_seconds"].items():
                r["encode_mbps"][t] = _median_mbps(base.nbytes, secs)
            for t, secs in r["decode_seconds"].items():
                r["decode_mbps"][t] = _median_mbps(base.nbytes, secs)
            r["encode_cpu_mbps"] = {t: _median_mbps(base.nbytes, secs)
                                    for t, secs in r["encode_cpu_seconds"].items()}
            r["decode_cpu_mbps"] = {t: _median_mbps(base.nbytes, secs)
                                    for t, secs in r["decode_cpu_seconds"].items()}
            fit_s = r.get("fit_seconds")
            if fit_s and r["encode_seconds"].get("1"):
                with_fit = base.nbytes / 1e6 / (fit_s + statistics.median(r["encode_seconds"]["1"]))
                r["notes"].append(f"model fitted once ({fit_s:.1f} s) outside the timed encodes; "
                                  f"with the fit: {with_fit:.1f} MB/s")
        out.append(r)
    return out


# -- reporting --------------------------------------------------------------------------

def _fmt(value, spec):
    return "—" if value is None else format(value, spec)


def _fmt_err(r):
    if r["bit_exact"]:
        return "0"
    return _fmt(r["max_abs_error"], ".2e")


def table_columns(thread_counts, k=10):
    """Column titles of the results table for the measured thread counts and recall@k."""
    cols = ["codec", "from", "bit-exact", "ratio", "B/vector"]
    for t in thread_counts:
        cols += [f"enc MB/s {t}T", f"dec MB/s {t}T"]
    return cols + ["max abs err", f"recall@{k}", "notes"]


def format_table(results, thread_counts=None, clock="wall"):
    """The results as a Markdown table (skipped and failed candidates last, with the reason).

    ``clock="cpu"``: speeds from the CPU time of threads=1 runs only (columns "cpu MB/s"),
    which other jobs on a shared machine disturb less than wall-clock time.
    """
    if thread_counts is None:
        thread_counts = sorted({int(t) for r in results for t in r.get("threads", [1])}) or [1]
    if clock == "cpu":
        thread_counts = [1]
    cols = table_columns(thread_counts, max((r.get("k", 10) for r in results), default=10))
    if clock == "cpu":
        cols = [c.replace("MB/s 1T", "MB/s 1T cpu") for c in cols]
    enc_key, dec_key = ("encode_cpu_mbps", "decode_cpu_mbps") if clock == "cpu" else (
        "encode_mbps", "decode_mbps")
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    ok = [r for r in results if r["status"] == "ok"]
    rest = [r for r in results if r["status"] != "ok"]
    for r in ok:
        cells = [r["name"], r["source"], "yes" if r["bit_exact"] else "no",
                 _fmt(r["ratio"], ".3f"), _fmt(r["bytes_per_vector"], ".1f")]
        for t in thread_counts:
            cells += [_fmt(r.get(enc_key, {}).get(str(t)), ".0f"),
                      _fmt(r.get(dec_key, {}).get(str(t)), ".0f")]
        cells += [_fmt_err(r), _fmt(r["recall"], ".3f"), "; ".join(r["notes"])]
        lines.append("| " + " | ".join(cells) + " |")
    for r in rest:
        cells = [r["name"], r["source"]] + ["—"] * (len(cols) - 3) + [f"{r['status']}: {r['reason']}"]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def _load_average():
    """1-minute load average of the machine (None where the OS does not tell)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_facts():
    """CPU model, cores, OS and versions of Python, numpy, numba and the peers' packages."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {name: _version(name) for name in (
        "spherecodec", "numpy", "numba", "constriction", "zstandard", "blosc2", "zipnn", "pcodec",
        "jzip-zig", "fpzip", "zfpy", "faiss-cpu", "matplotlib")}
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {k: v for k, v in versions.items() if v},
    }


def _plot_points(ax, pts, legend="upper left"):
    colours = {"spherecodec": "tab:blue", "peer": "tab:orange"}
    for x, y, r in pts:
        ax.scatter([x], [y], c=colours[r["source"]], marker="o" if r["bit_exact"] else "^",
                   s=36, zorder=3)
    from matplotlib.lines import Line2D

    ax.legend(handles=[
        Line2D([], [], color="tab:blue", marker="o", ls="", label="spherecodec"),
        Line2D([], [], color="tab:orange", marker="o", ls="", label="peer"),
        Line2D([], [], color="grey", marker="o", ls="", label="bit-exact"),
        Line2D([], [], color="grey", marker="^", ls="", label="lossy"),
    ], fontsize=7, loc=legend)
    ax.grid(True, which="both", alpha=0.3)


def _label_points(ax, pts, fontsize=7, group_exact=None):
    """Name each point, moving a label up or down until it clears the labels already placed.

    ``group_exact`` (an axes-fraction (x, y) position): name the bit-exact points in one text
    box there instead, as they crowd together in the error and recall plots.
    """
    ax.autoscale_view()
    if group_exact is not None:
        exact = sorted((p for p in pts if p[2]["bit_exact"]), key=lambda p: -p[2]["ratio"])
        if exact:
            ax.text(*group_exact, "bit-exact (ratio):\n" + "\n".join(
                f"{r['name']} {r['ratio']:.3f}" for _, _, r in exact), transform=ax.transAxes,
                fontsize=fontsize, va="top", ha="left",
                bbox={"boxstyle": "round", "fc": "white", "ec": "grey", "alpha": 0.85})
        pts = [p for p in pts if not p[2]["bit_exact"]]
    px_per_pt = ax.figure.dpi / 72.0
    char_w, line_h = 0.6 * fontsize * px_per_pt, 1.25 * fontsize * px_per_pt
    placed = []
    steps = [3] + [v for k in range(1, 12) for v in (3 - 11 * k, 3 + 11 * k)]
    top = ax.transAxes.transform((0, 0.9))[1]
    for x, y, r in sorted(pts, key=lambda p: (p[0], p[1])):
        px, py = ax.transData.transform((x, y))
        label = _short_label(r["name"])
        w = char_w * len(label)
        # near the top edge, look downwards first so labels stay inside the axes
        order = sorted(steps, key=lambda v: (v > 0, abs(v))) if py > top else steps
        for dy in order:
            box = (px + 4 * px_per_pt, py + dy * px_per_pt, w)
            if not any(abs(box[1] - b[1]) < line_h and box[0] < b[0] + b[2] and b[0] < box[0] + w
                       for b in placed):
                break
        placed.append(box)
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, dy),
                    fontsize=fontsize, va="bottom",
                    arrowprops=None if abs(dy) < 10 else {"arrowstyle": "-", "lw": 0.4, "color": "grey"})


def _short_label(name):
    return name.replace("max_abs_error=", "err ")


def _plain_log_ticks(axis):
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(fmt)
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if str(f"{v:g}")[0] in "235" else ""))


def write_plots(results, out_dir, title=""):
    """Write the PNG plots; return their paths (none if matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    ok = [r for r in results if r["status"] == "ok" and r["ratio"]]
    paths = []

    def save(fig, name):
        path = os.path.join(out_dir, name)
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)

    # threads=1 CPU time: the codec's own cost, least disturbed by other jobs on the machine
    pts = [(r.get("decode_cpu_mbps", {}).get("1"), r["ratio"], r) for r in ok
           if r.get("decode_cpu_mbps", {}).get("1")]
    if pts:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        _plot_points(ax, pts)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
        _label_points(ax, pts)
        ax.set_xlabel("decode MB/s, threads=1, from CPU time (log)")
        ax.set_ylabel("compression ratio (log)")
        ax.set_title(f"Ratio against decode speed {title}".strip(), fontsize=9)
        save(fig, "ratio_vs_decode_speed.png")

    errs = [r["max_abs_error"] for r in ok if r["max_abs_error"] and np.isfinite(r["max_abs_error"])]
    if ok:
        floor = (min(errs) if errs else 1e-6) / 30
        pts = [(floor if r["bit_exact"] else r["max_abs_error"], r["ratio"], r) for r in ok
               if r["bit_exact"] or (r["max_abs_error"] and np.isfinite(r["max_abs_error"]))]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        _plot_points(ax, pts, legend="lower right")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
        _label_points(ax, pts, group_exact=(0.1, 0.7))
        ax.axvline(floor * 3, color="grey", lw=0.8, ls=":")
        ax.text(floor, ax.get_ylim()[1], " bit-exact", fontsize=7, va="top", rotation=90)
        ax.set_xlabel("max abs error (log; bit-exact at the left)")
        ax.set_ylabel("compression ratio (log)")
        ax.set_title(f"Ratio against max error {title}".strip(), fontsize=9)
        save(fig, "ratio_vs_max_error.png")

    pts = [(r["bytes_per_vector"], r["recall"], r) for r in ok if r["recall"] is not None]
    if pts:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        _plot_points(ax, pts, legend="lower right")
        ax.set_xscale("log")
        low = min(p[1] for p in pts)
        ax.set_ylim(low - 0.05 * max(1 - low, 0.01), 1 + 0.15 * max(1 - low, 0.01))
        _plain_log_ticks(ax.xaxis)
        _label_points(ax, pts, group_exact=(0.02, 0.7))
        ax.set_xlabel("bytes per vector (log)")
        ax.set_ylabel(f"recall@{ok[0]['k']} of exact inner-product search")
        ax.set_title(f"Recall against size {title}".strip(), fontsize=9)
        save(fig, "recall_vs_bytes_per_vector.png")
    return paths


def _describe_data(data_info):
    d = data_info
    return (f"{d['source']}: {d['rows']} x {d['dim']} float32 ({d['base_rows']} base rows compressed, "
            f"{d['query_rows']} held-out queries); row norms {d['norm_min']:.3g}..{d['norm_max']:.3g}")


def write_outputs(out_dir, results, data_info, settings, command=None):
    """Write ``results.md``, ``results.json`` and the plots into ``out_dir``; return paths."""
    os.makedirs(out_dir, exist_ok=True)
    machine = machine_facts()
    payload = {"command": command, "data": data_info, "settings": settings, "machine": machine,
               "results": results}
    json_path = os.path.join(out_dir, "results.json")
    with open(json_path, "w") as f:
        json.dump(payload, f, indent=1, default=float)
    plots = write_plots(results, out_dir, title=f"({data_info['source']})")
    md = [f"# spherecodec bench: {data_info['source']}", ""]
    if command:
        md += ["```", command, "```", ""]
    md += [f"Data: {_describe_data(data_info)}.", "",
           f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['platform']}, "
           f"Python {machine['python']}; " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
           + ".", "",
           f"1-minute load average before/after the run: {settings.get('load_average_before')}/"
           f"{settings.get('load_average_after')} on {machine['cores']} cores (a load above the core "
           f"count means other processes shared the CPUs: the all-cores columns suffer first).", "",
           f"Medians of {settings['repeats']} interleaved timed runs after a warm-up; MB/s of raw "
           f"float32 (10^6 bytes/s); ratio = raw bytes / compressed bytes (codebooks and headers "
           f"included); recall@{settings['k']} of exact inner-product search of the held-out "
           f"queries on the decoded vectors against the original ones.", "",
           format_table(results, settings["thread_counts"]), ""]
    md += ["Speeds at threads=1 from the process's CPU time instead of the wall clock (the same "
           "runs; other jobs on a shared machine inflate these less):", "",
           format_table(results, clock="cpu"), ""]
    for p in plots:
        md += [f"![{os.path.basename(p)}]({os.path.basename(p)})", ""]
    md += ["## Settings of each row", ""]
    md += [f"- `{r['name']}`: {r['description'] or 'default parameters'}" for r in results]
    md += [""]
    md_path = os.path.join(out_dir, "results.md")
    with open(md_path, "w") as f:
        f.write("\n".join(md))
    return [md_path, json_path] + plots


# -- command line -----------------------------------------------------------------------

def build_parser():
    """The argparse parser of ``spherecodec bench``."""
    p = argparse.ArgumentParser(
        prog="spherecodec bench", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  spherecodec bench --sample --peers\n"
               "  spherecodec bench vectors.npy --rows 6000 --peers --out bench-out\n"
               "  spherecodec bench vectors.npy --codecs exact sphere:max_abs_error=1e-4 int8\n"
               "  spherecodec bench --synthetic unit-768 --peers zstd-3 pcodec-8 --threads 4",
        description="Benchmark spherecodec's codecs (and with --peers, other compressors) on "
                    "embedding vectors: ratio, speed, exactness or error, recall@k.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("file", nargs="?", help="a .npy file (rows over the last axis) or a .sphc blob")
    src.add_argument("--sample", action="store_true",
                     help="the bundled 2000 x 384 MiniLM sentence sample (the default)")
    src.add_argument("--synthetic", choices=sorted(SYNTHETIC_SETS), help="a built-in synthetic set")
    p.add_argument("--rows", type=int, help="use only the first N rows (synthetic: make N rows)")
    p.add_argument("--codecs", nargs="+", metavar="NAME[:k=v,...]",
                   help="spherecodec codecs to run, with parameters after a colon (default: "
                        "every registered codec, and the error-bounded ones also at 1e-4)")
    p.add_argument("--peers", nargs="*", metavar="PEER",
                   help="also run the peer compressors (all, or the ones named)")
    p.add_argument("--threads", type=int, help="the all-cores thread count (default: os.cpu_count())")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per candidate (median; default 5)")
    p.add_argument("--k", type=int, default=10, help="neighbours for recall@k (default 10)")
    p.add_argument("--queries", type=float, default=0.1,
                   help="fraction of rows (the last ones) held out as queries (default 0.1)")
    p.add_argument("--out", metavar="DIR", help="write results.md, results.json and PNG plots here")
    p.add_argument("--list", action="store_true", help="list codecs and peers, then exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    return p


def _load_args_data(args):
    if args.synthetic:
        return synthetic(args.synthetic, rows=args.rows), f"synthetic {args.synthetic}"
    if args.file:
        return _as_float32_rows(load_file(args.file), args.rows), os.path.basename(args.file)
    return _as_float32_rows(load_sample(), args.rows), f"bundled sample {SAMPLE_NAME}"


def main(argv=None):
    """Entry point of ``spherecodec bench``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or an argument error argparse already printed
        return int(exc.code or 0)
    if args.list:
        from . import peers as peers_mod

        print("codecs:", " ".join(available_codecs()))
        for peer in peers_mod.all_peers():
            state = "installed" if peer.available() else "not installed"
            print(f"peer {peer.name}: {peer.description} [{state}]")
        return 0
    for name, value, low in (("--repeats", args.repeats, 1), ("--k", args.k, 1),
                             ("--threads", args.threads, 1), ("--rows", args.rows, 2)):
        if value is not None and value < low:
            parser.print_usage(sys.stderr)
            print(f"spherecodec bench: error: {name} must be at least {low}", file=sys.stderr)
            return 2
    if not 0 < args.queries < 1:
        print("spherecodec bench: error: --queries must be between 0 and 1", file=sys.stderr)
        return 2
    progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    started = time.perf_counter()
    load_before = _load_average()
    for listed in (args.peers, args.codecs):
        # "--peers data.npy", "--codecs exact data.npy": the file is the data, not a name
        if listed and not (args.file or args.sample or args.synthetic) and os.path.isfile(listed[-1]):
            args.file = listed.pop()
    if args.codecs == []:
        args.codecs = None
    try:
        data, source = _load_args_data(args)
        peers = False if args.peers is None else (args.peers or True)
        results = run_benchmark(data, codecs=args.codecs, peers=peers, threads=args.threads,
                                repeats=args.repeats, k=args.k, query_fraction=args.queries,
                                progress=progress)
    except BenchError as exc:
        print(f"spherecodec bench: error: {exc}", file=sys.stderr)
        return 1
    base_rows = split_queries(data[:, :1], args.queries)[0].shape[0]
    norms = np.linalg.norm(data.astype(np.float64), axis=1)
    data_info = {"source": source, "rows": int(data.shape[0]), "dim": int(data.shape[1]),
                 "base_rows": int(base_rows), "query_rows": int(data.shape[0] - base_rows),
                 "norm_min": float(norms.min()), "norm_max": float(norms.max())}
    threads = _container.resolve_threads(args.threads)
    settings = {"repeats": args.repeats, "k": args.k, "query_fraction": args.queries,
                "thread_counts": [1] if threads == 1 else [1, threads],
                "load_average_before": load_before, "load_average_after": _load_average(),
                "seconds": round(time.perf_counter() - started, 1)}
    print(f"{_describe_data(data_info)}; medians of {args.repeats} runs")
    print(format_table(results, settings["thread_counts"]))
    if args.out:
        command = "spherecodec bench " + " ".join(argv if argv is not None else sys.argv[1:])
        paths = write_outputs(args.out, results, data_info, settings, command=command)
        print("wrote " + ", ".join(paths))
    print(f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
