"""Make docs/sphere.md's table: ratio and recall@10 against max_abs_error, sphere vs grid.

On the shared real data (MiniLM sentence embeddings, /work/shared/data or ``--data DIR``):
for each bound, both codecs' compression ratio, largest error, exceptions and recall@10 of
exact inner-product search over the decoded vectors (queries: the last 1000 rows, original
float32; database: the other rows, decoded; truth: the same search over the original rows).
jzip-zig is measured on the same data as a reference line. Also checks the raw token
embeddings (non-unit norms) at every bound.

Usage: python scripts/sphere_table.py [--data DIR] [--out bench-out/sphere_table.json]
"""

import argparse
import json
from pathlib import Path

import numpy as np

import spherecodec

BOUNDS = [("2**-23", 2.0 ** -23), ("1e-6", 1e-6), ("1e-5", 1e-5), ("1e-4", 1e-4), ("1e-3", 1e-3)]
QUERIES = 1000
K = 10


def top_k(queries, database, k=K):
    scores = queries.astype(np.float64) @ database.astype(np.float64).T
    part = np.argpartition(-scores, k, axis=1)[:, :k]
    return part


def recall(found, truth):
    hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found, truth))
    return hits / truth.size


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="/work/shared/data")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    x = np.load(Path(args.data) / "minilm-stdlib-sentences-384.npy")
    raw = np.load(Path(args.data) / "minilm-stdlib-tokens-raw-384.npy")
    queries, base = x[-QUERIES:], x[:-QUERIES]
    truth = top_k(queries, base)
    rows = []
    for label, bound in BOUNDS:
        for codec in ("sphere", "grid"):
            blob = spherecodec.encode(x, codec, max_abs_error=bound)
            out = spherecodec.decode(blob)
            err = np.abs(out.astype(np.float64) - x).max()
            raw_out = spherecodec.decode(spherecodec.encode(raw, codec, max_abs_error=bound))
            raw_err = np.abs(raw_out.astype(np.float64) - raw).max()
            rows.append({
                "codec": codec, "bound": label, "max_abs_error": bound,
                "ratio": x.nbytes / len(blob), "max_error": float(err),
                "recall@10": recall(top_k(queries, out[:-QUERIES]), truth),
                "raw_tokens_ratio": raw.nbytes / len(spherecodec.encode(raw, codec, max_abs_error=bound)),
                "raw_tokens_max_error": float(raw_err),
            })
            assert err <= bound and raw_err <= bound, rows[-1]
    reference = {}
    try:
        import jzip

        jblob = jzip.compress(x, level=1, threads=1)
        jout = jzip.decompress(jblob, threads=1)
        reference = {"codec": "jzip-zig 0.0.8 (level 1)", "ratio": x.nbytes / len(jblob),
                     "max_error": float(np.abs(jout.astype(np.float64) - x).max()),
                     "recall@10": recall(top_k(queries, jout[:-QUERIES]), truth)}
    except ImportError:
        pass
    print("| max_abs_error | sphere ratio | grid ratio | sphere recall@10 | grid recall@10 "
          "| sphere max error | raw tokens: sphere / grid ratio |")
    print("|---|---|---|---|---|---|---|")
    for label, _ in BOUNDS:
        s = next(r for r in rows if r["bound"] == label and r["codec"] == "sphere")
        g = next(r for r in rows if r["bound"] == label and r["codec"] == "grid")
        print(f"| {label} | {s['ratio']:.4f}x | {g['ratio']:.4f}x | {s['recall@10']:.4f} | "
              f"{g['recall@10']:.4f} | {s['max_error']:.3g} | "
              f"{s['raw_tokens_ratio']:.3f}x / {g['raw_tokens_ratio']:.3f}x |")
    if reference:
        print(f"\njzip-zig: {reference['ratio']:.4f}x, max error {reference['max_error']:.3g}, "
              f"recall@10 {reference['recall@10']:.4f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"rows": rows, "jzip": reference}, indent=2) + "\n")


if __name__ == "__main__":
    main()
