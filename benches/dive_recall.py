"""recall@10 against full-dimension exact search: DIVE vs truncation, PCA, random projection
and a Matryoshka-Adaptor-style adapter, at 2x, 4x and 8x reduction (results: docs/dive.md).

    python benches/dive_recall.py [--data PATH] [--ratios 2 4 8] [--timing] [--json OUT]

Split (disjoint): the last ``--queries`` rows are queries, the ``--corpus`` rows before them
the corpus, every earlier row trains the reducers. Truth: each query's 10 nearest corpus rows
by full-dimension cosine. ``--timing`` also times DIVE's default fit on 10k x 384 -> 96.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from spherecodec.dive import (PCA, DiveAdapter, MatryoshkaAdaptor, RandomProjection, Truncation,
                              exact_knn, l2_normalize, recall_at_k)

DEFAULT_DATA = "/work/shared/data/minilm-stdlib-sentences-384.npy"


def evaluate(method, queries, corpus, truth):
    return recall_at_k(method.transform(queries), method.transform(corpus), truth)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--ratios", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--corpus", type=int, default=4000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--methods", nargs="+",
                    default=["truncation", "pca", "pca-centred", "random", "matryoshka", "dive"])
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    x = np.load(args.data).astype(np.float32)
    n = x.shape[0]
    queries = x[n - args.queries:]
    corpus = x[n - args.queries - args.corpus:n - args.queries]
    train = x[:n - args.queries - args.corpus]
    truth = exact_knn(l2_normalize(queries), l2_normalize(corpus), 10)
    d = x.shape[1]
    print(f"data {args.data}: train {train.shape[0]}, corpus {corpus.shape[0]}, queries {queries.shape[0]}, "
          f"dim {d}", flush=True)
    results = {"data": os.path.basename(args.data), "train": int(train.shape[0]),
               "corpus": int(corpus.shape[0]), "queries": int(queries.shape[0]), "recall@10": {}}
    for ratio in args.ratios:
        k = d // ratio
        row = {}
        for name in args.methods:
            t0 = time.perf_counter()
            if name == "truncation":
                m = Truncation(d, k).fit(train)
            elif name == "pca":
                m = PCA(d, k).fit(train)
            elif name == "pca-centred":
                m = PCA(d, k, center=True).fit(train)
            elif name == "random":
                m = RandomProjection(d, k, seed=0)
            elif name == "matryoshka":
                m = MatryoshkaAdaptor(d, k, hidden=512).fit(train, threads=args.threads, progress=False)
            elif name == "dive":
                m = DiveAdapter(d, k, hidden=args.hidden).fit(train, threads=args.threads, progress=False)
            else:
                raise SystemExit(f"unknown method {name}")
            fit_s = time.perf_counter() - t0
            row[name] = {"recall": evaluate(m, queries, corpus, truth), "fit_seconds": fit_s}
            extra = ""
            if name == "dive":
                best = max(m.history, key=lambda h: h.get("val_recall", -1))
                row[name]["best_epoch"] = best["epoch"]
                row[name]["history"] = m.history
                extra = f" best epoch {best['epoch']}, zero-grad fractions " + ", ".join(
                    f"{h['zero_grad_fraction']:.3f}" for h in m.history if "zero_grad_fraction" in h)
            print(f"{ratio}x ({k} dims) {name:12s} recall@10 {row[name]['recall']:.4f}  fit {fit_s:7.1f} s{extra}",
                  flush=True)
        results["recall@10"][f"{ratio}x"] = row
    if args.timing:
        big = x[:10000]
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        a = DiveAdapter(d, 96, hidden=args.hidden).fit(big, threads=args.threads, progress=False)
        results["timing_10k_to_96"] = {"wall_seconds": time.perf_counter() - t0,
                                       "cpu_seconds": time.process_time() - cpu0,
                                       "epochs": len(a.history) - 1,
                                       "load_average": os.getloadavg()}
        print(f"fit 10000 x {d} -> 96: {results['timing_10k_to_96']}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=float)
    return results


if __name__ == "__main__":
    sys.exit(main() and 0)
