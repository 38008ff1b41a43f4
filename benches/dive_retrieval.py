"""nDCG@10 on a labelled retrieval set: DIVE (supervised) against truncation, PCA, a supervised
linear projection, Matryoshka-Adaptor (unsupervised and supervised) and Search-Adaptor, at 2x
to 16x reduction, mean and spread over seeds; plus DIVE then int8/binary, and a plot of
nDCG@10 against bytes per vector (results: docs/dive.md). The same run as
``spherecodec bench --retrieval DIR --out OUT``, with a choice of ratios, seeds and methods.

    python benches/dive_retrieval.py [--data DIR] [--ratios 2 4 8 16] [--seeds 0 1 2]
                                     [--methods ...] [--out DIR]
"""

import argparse
import json
import sys

from spherecodec.bench.retrieval import METHODS, run, table, write

DEFAULT_DATA = "/work/shared/data/retrieval-debian"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--ratios", type=int, nargs="+", default=[2, 4, 8, 16])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--threads", type=int, default=1, help="torch threads while training")
    ap.add_argument("--out", help="write retrieval.md, retrieval.json and retrieval.png here")
    ap.add_argument("--merge", nargs="+", metavar="JSON",
                    help="no runs: combine the retrieval.json files of earlier (e.g. parallel) runs")
    args = ap.parse_args(argv)
    if args.merge:
        parts = [json.load(open(path)) for path in args.merge]
        results = {**parts[0], "rows": []}
        for part in parts:
            # the frozen rows are in every part: keep them once
            results["rows"] += [r for r in part["rows"] if r["ratio"] > 1 or part is parts[0]]
    else:
        results = run(args.data, args.ratios, args.seeds, args.methods, args.threads,
                      log=lambda s: print(s, flush=True))
    print(table(results))
    if args.out:
        print("wrote " + ", ".join(write(results, args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
