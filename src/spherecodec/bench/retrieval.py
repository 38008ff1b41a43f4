"""``spherecodec bench --retrieval DIR``: nDCG@10 of DIVE (supervised), its baselines and
DIVE + codec compositions on a labelled retrieval set, over reduction ratios and seeds, with
a plot of nDCG@10 against bytes per vector. Training needs torch (the ``dive`` extra).

DIR holds corpus-D.npy, queries-D.npy, qrels.npy, train-queries-D.npy and train-docs-D.npy
(the layout of retrieval-debian): every method trains on the training pairs (docs = train
docs, positives = arange) and is scored on the test queries over the corpus.
"""

import glob
import json
import os
import time

import numpy as np

from ..dive import PCA, DiveAdapter, LinearProjection, MatryoshkaAdaptor, SearchAdaptor, Truncation
from ..retrieval import evaluate_retrieval
from .data import BenchError

METHODS = ["truncation", "pca", "linear", "matryoshka", "matryoshka-sup", "search-adaptor", "dive"]
#: codecs stored after DIVE (and on the frozen embeddings) for the bytes-per-vector chart
COMPOSE = ["int8", "binary"]
TRAINED = {"linear", "matryoshka", "matryoshka-sup", "search-adaptor", "dive"}


def load_set(directory):
    """(corpus, queries, qrels, train queries, train docs) of a retrieval directory."""
    def one(prefix):
        found = sorted(glob.glob(os.path.join(directory, f"{prefix}*.npy")))
        if not found:
            raise BenchError(f"{directory}: no {prefix}*.npy (a retrieval set needs corpus-D.npy, "
                             "queries-D.npy, qrels.npy, train-queries-D.npy and train-docs-D.npy)")
        return np.load(found[0])
    return (one("corpus-"), one("queries-"), one("qrels"), one("train-queries-"), one("train-docs-"))


def make(name, d, k, seed, train_q, train_d, threads):
    """Fit method ``name`` reducing d -> k on the training pairs; returns (reducer, seconds)."""
    pos = np.arange(len(train_q))
    t0, cpu0 = time.perf_counter(), time.process_time()
    if name == "truncation":
        m = Truncation(d, k)
    elif name == "pca":
        m = PCA(d, k).fit(train_d, queries=train_q, positives=pos)
    elif name == "linear":
        m = LinearProjection(d, k, seed=seed).fit(train_d, queries=train_q, positives=pos,
                                                 threads=threads, progress=False)
    elif name == "search-adaptor":
        m = SearchAdaptor(d, k, seed=seed).fit(train_d, queries=train_q, positives=pos,
                                              threads=threads, progress=False)
    elif name == "matryoshka":
        m = MatryoshkaAdaptor(d, k, seed=seed).fit(np.concatenate([train_d, train_q]), threads=threads,
                                                   progress=False)
    elif name == "matryoshka-sup":
        m = MatryoshkaAdaptor(d, k, seed=seed).fit(train_d, queries=train_q, positives=pos,
                                                   threads=threads, progress=False)
    elif name == "dive":
        m = DiveAdapter(d, k, seed=seed).fit(train_d, queries=train_q, positives=pos, threads=threads,
                                             progress=False)
    else:
        raise BenchError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    m.fit_cpu_seconds = time.process_time() - cpu0  # CPU time: the machine may be shared
    return m, time.perf_counter() - t0


def summarise(values):
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "values": [float(x) for x in v]}


def run(data, ratios, seeds, methods, threads, log=print):
    """Every (method, ratio, seed) fit and scored; returns the results dict."""
    corpus, queries, qrels, train_q, train_d = load_set(data)
    d = corpus.shape[1]
    log(f"{data}: corpus {corpus.shape}, queries {queries.shape}, train pairs {len(train_q)}")
    results = {"data": os.path.abspath(data), "corpus": int(corpus.shape[0]),
               "queries": int(queries.shape[0]), "train_pairs": int(len(train_q)),
               "seeds": list(seeds), "cpu_load": os.getloadavg()[0], "rows": []}
    frozen = {"frozen": None, **{f"frozen+{c}": c for c in COMPOSE}}
    for row in evaluate_retrieval(corpus, queries, qrels, methods=frozen):
        results["rows"].append({**row, "name": row["method"], "ratio": 1, "seed": None, "fit_seconds": 0.0})
        log(f"  {row['method']:<24} {row['bytes_per_vector']:8.1f} B  nDCG@10 {row['ndcg@10']:.4f}")
    for ratio in ratios:
        k = d // ratio
        for name in methods:
            for seed in (seeds if name in TRAINED else seeds[:1]):
                m, fit_s = make(name, d, k, seed, train_q, train_d, threads)
                variants = {name: m}
                if name == "dive":
                    variants.update({f"dive+{c}": (m, c) for c in COMPOSE})
                for row in evaluate_retrieval(corpus, queries, qrels, methods=variants):
                    results["rows"].append({**row, "name": row["method"], "ratio": ratio, "seed": seed,
                                            "fit_seconds": fit_s, "fit_cpu_seconds": m.fit_cpu_seconds,
                                            "load": os.getloadavg()[0]})
                    log(f"  {ratio:>2}x {row['method']:<18} seed {seed}  {row['bytes_per_vector']:8.1f} B  "
                        f"nDCG@10 {row['ndcg@10']:.4f}  R@10 {row['recall@10']:.4f}  fit {fit_s:6.1f} s "
                        f"(CPU {m.fit_cpu_seconds:6.1f} s) "
                        f"(load {os.getloadavg()[0]:.1f})")
    return results


def table(results):
    """Markdown table: nDCG@10 mean ± std over seeds, per method and ratio, and fit times."""
    rows = results["rows"]
    ratios = sorted({r["ratio"] for r in rows if r["ratio"] > 1})
    names = list(dict.fromkeys(r["name"] for r in rows if r["ratio"] > 1))
    dims = max(r["dims"] for r in rows)
    lines = ["| method | " + " | ".join(f"{x}x ({dims // x})" for x in ratios)
             + " | fit s, wall (mean) | fit s, CPU (mean) |",
             "|---|" + "---|" * (len(ratios) + 2)]
    for name in names:
        cells, fits, cpus = [], [], []
        for ratio in ratios:
            mine = [r for r in rows if r["name"] == name and r["ratio"] == ratio]
            vals = [r["ndcg@10"] for r in mine]
            fits += [r["fit_seconds"] for r in mine]
            cpus += [r["fit_cpu_seconds"] for r in mine if r.get("fit_cpu_seconds") is not None]
            s = summarise(vals) if vals else None
            cells.append("" if s is None else f"{s['mean']:.4f} ± {s['std']:.4f}" if len(vals) > 1
                         else f"{s['mean']:.4f}")
        cpu = f"{np.mean(cpus):.0f}" if cpus else ""
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {np.mean(fits):.0f} | {cpu} |")
    for r in rows:
        if r["ratio"] == 1:
            lines.append(f"| {r['name']} ({r['dims']} dims, {r['bytes_per_vector']:.0f} B) | "
                         f"{r['ndcg@10']:.4f} |" + " |" * (len(ratios) + 1))
    return "\n".join(lines)


def plot(results, path):
    """nDCG@10 (mean over seeds) against bytes per vector, one line per method family."""
    # matplotlib is optional: imported lazily, only when plotting
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = results["rows"]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    names = list(dict.fromkeys(r["name"] for r in rows))
    colours = plt.get_cmap("tab20").colors
    for i, name in enumerate(names):
        pts = {}
        for r in rows:
            if r["name"] == name:
                pts.setdefault(round(r["bytes_per_vector"], 1), []).append(r["ndcg@10"])
        xs = sorted(pts)
        frozen = name.startswith("frozen")
        ax.plot(xs, [np.mean(pts[x]) for x in xs], marker="*" if frozen else "o",
                markersize=12 if frozen else 6, label=name, color=colours[(2 * i) % 20 + (i // 10) % 2],
                linestyle="-" if len(xs) > 1 else "none")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("bytes per vector (corpus, as stored)")
    ax.set_ylabel("nDCG@10")
    ax.set_title(f"{os.path.basename(results['data'].rstrip('/'))}: nDCG@10 vs storage")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)




def write(results, out_dir):
    """retrieval.md (the table), retrieval.json and retrieval.png in ``out_dir``; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, name) for name in ("retrieval.md", "retrieval.json", "retrieval.png")]
    with open(paths[0], "w") as fh:
        fh.write(table(results) + "\n")
    with open(paths[1], "w") as fh:
        json.dump(results, fh, indent=1)
    try:
        plot(results, paths[2])
    except ImportError:
        return paths[:2]
    return paths
