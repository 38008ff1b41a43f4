"""nDCG@10 on a labelled retrieval set: DIVE (supervised) against truncation, PCA, a supervised
linear projection, Matryoshka-Adaptor (unsupervised and supervised) and Search-Adaptor, at 2x
to 16x reduction, mean and spread over seeds; plus DIVE then int8/binary, and a plot of
nDCG@10 against bytes per vector (results: docs/dive.md). The same run as
``spherecodec bench --retrieval DIR --out OUT``, with a choice of ratios, seeds and methods.

    python benches/dive_retrieval.py [--data DIR] [--ratios 2 4 8 16] [--seeds 0 1 2]
                                     [--methods ...] [--out DIR]

``--validate-heads 1 2 4`` scores DIVE's head counts on the *training pairs only* (never the
test split): a fixed 1,500 of the training pairs are held out as validation queries and
searched among all the training docs; DIVE trains on the other pairs (docs/dive.md,
"Choosing the number of heads").

    python benches/dive_retrieval.py --validate-heads 1 2 4 --dims 48 96 --seeds 0 1 [--json OUT]

``--validate-stopping`` scores the early-stopping rules ("best", "smoothed") the same way:
one untruncated fit per (dims, seed), each rule's kept epoch scored on the validation queries.

    python benches/dive_retrieval.py --validate-stopping --dims 48 96 --seeds 0 1 2 3 [--json OUT]

``--validate-configs NAME:KEY=VALUE,...`` scores DIVE settings the same way (the heads
protocol), each against the defaults ("default", no KEY=VALUE) with the paired difference
per seed; ``hidden``, ``heads``, ``init`` and ``init_noise`` go to the constructor, every other
key to ``fit`` (docs/dive.md, "A model-side lever at 48 dims").

    python benches/dive_retrieval.py --validate-configs default hidden512:hidden=512 \
        drop:dropout=0.1 --dims 48 --seeds 0 1 2 [--json OUT]
"""

import argparse
import glob
import json
import os
import sys
import time

import numpy as np

from spherecodec.dive import DiveAdapter
from spherecodec.dive._numpy import ranking_metrics

from spherecodec.bench.retrieval import METHODS, run, table, write

DEFAULT_DATA = "/work/shared/data/retrieval-debian"
#: validation split of the training pairs: fixed (independent of the fit seeds), 1,500 pairs
VALIDATION_PAIRS = 1500
VALIDATION_SEED = 2026


def validation_split(n_pairs, n_val=VALIDATION_PAIRS, seed=VALIDATION_SEED):
    """(fit rows, validation rows) of the training pairs, sorted; fixed for every run."""
    order = np.random.default_rng(seed).permutation(n_pairs)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def validation_set(data):
    """(train queries, train docs, fit rows, validation rows, qrels of the validation queries
    among all the training docs) of the validation protocol. The training files only:
    nothing of the test split is read."""
    train_q, train_d = (np.load(sorted(glob.glob(os.path.join(data, f"{prefix}-*.npy")))[0])
                        for prefix in ("train-queries", "train-docs"))
    fit_rows, val_rows = validation_split(len(train_q))
    return train_q, train_d, fit_rows, val_rows, [{int(r): 1} for r in val_rows]  # row in train_d


def fit_on_training_pairs(train_q, train_d, fit_rows, k, seed, threads, ctor, **fit):
    """DIVE (constructor keywords ``ctor``, ``fit`` keywords ``fit``) fitted on the fit rows'
    pairs: (adapter, wall seconds, CPU seconds)."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    a = DiveAdapter(train_q.shape[1], k, seed=seed, **ctor).fit(
        train_d[fit_rows], queries=train_q[fit_rows], positives=np.arange(len(fit_rows)),
        threads=threads, progress=False, **fit)
    return a, time.perf_counter() - t0, time.process_time() - cpu0


def validate_heads(data, heads_list, dims, seeds, threads=1, log=print):
    """DIVE's held-out quality per (dims, heads, seed) on the training pairs only.

    The validation queries are searched among *all* the training docs (their 1,500 unseen
    relevant docs among 10,500 docs the adapter trained on: a 12,000-doc corpus, near the
    test corpus's 20,000) and, as a check, among the 1,500 unseen validation docs only.
    """
    train_q, train_d, fit_rows, val_rows, qrels_all = validation_set(data)
    qrels_unseen = [{i: 1} for i in range(len(val_rows))]       # row in train_d[val_rows]
    rows = []
    for k in dims:
        for heads in heads_list:
            for seed in seeds:
                a, wall, cpu = fit_on_training_pairs(train_q, train_d, fit_rows, k, seed, threads,
                                                     {"heads": heads})
                zq, zd = a.transform(train_q[val_rows]), a.transform(train_d)
                m_all = ranking_metrics(zq, zd, qrels_all)
                m_unseen = ranking_metrics(zq, zd[val_rows], qrels_unseen)
                best = max(a.history, key=lambda r: r.get("val_ndcg@10", -1))
                row = {"dims": k, "heads": a.heads, "seed": seed, "val_all": m_all, "val_unseen": m_unseen,
                       "fit_seconds": wall, "fit_cpu_seconds": cpu, "best_epoch": best["epoch"],
                       "epochs_run": len(a.history) - 1, "load": os.getloadavg()[0]}
                rows.append(row)
                log(f"  {k:>3} dims heads {a.heads} seed {seed}: val nDCG@10 all-docs "
                    f"{m_all['ndcg@10']:.4f} unseen-docs {m_unseen['ndcg@10']:.4f}  best epoch "
                    f"{best['epoch']}/{row['epochs_run']}  fit {wall:.0f} s (CPU {cpu:.0f} s, "
                    f"load {row['load']:.1f})")
    return {"data": os.path.abspath(data), "validation_pairs": len(val_rows),
            "fit_pairs": len(fit_rows), "validation_seed": VALIDATION_SEED, "rows": rows}


CONSTRUCTOR_KEYS = ("hidden", "heads", "init", "init_noise")


def parse_config(spec):
    """``"name:key=value,key=value"`` -> (name, constructor kwargs, fit kwargs); values are
    JSON numbers (or bare strings)."""
    name, _, body = spec.partition(":")
    ctor, fit = {}, {}
    for item in filter(None, body.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"config {spec!r}: {item!r} is not key=value")
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
        (ctor if key in CONSTRUCTOR_KEYS else fit)[key] = value
    return name, ctor, fit


def validate_configs(data, specs, dims, seeds, threads=1, log=print):
    """DIVE's validation nDCG@10 (the heads protocol: training pairs only) per (dims, config,
    seed); configs are ``parse_config`` specs, one fit at a time."""
    train_q, train_d, fit_rows, val_rows, qrels_all = validation_set(data)
    rows = []
    for k in dims:
        for spec in specs:
            name, ctor, fit = parse_config(spec)
            for seed in seeds:
                a, wall, cpu = fit_on_training_pairs(train_q, train_d, fit_rows, k, seed, threads, ctor, **fit)
                m_all = ranking_metrics(a.transform(train_q[val_rows]), a.transform(train_d), qrels_all)
                best = max(a.history, key=lambda r: r.get("val_ndcg@10", -1))
                row = {"dims": k, "config": name, "constructor": ctor, "fit": fit, "seed": seed,
                       "val_all": m_all, "best_epoch": best["epoch"], "epochs_run": len(a.history) - 1,
                       "inner_val_ndcg@10": [r["val_ndcg@10"] for r in a.history],
                       "fit_seconds": wall, "fit_cpu_seconds": cpu, "load": os.getloadavg()[0]}
                rows.append(row)
                log(f"  {k:>3} dims {name} seed {seed}: val nDCG@10 {m_all['ndcg@10']:.4f}  best epoch "
                    f"{best['epoch']}/{row['epochs_run']}  fit {wall:.0f} s (CPU {cpu:.0f} s, "
                    f"load {row['load']:.1f})")
    return {"data": os.path.abspath(data), "validation_pairs": len(val_rows),
            "fit_pairs": len(fit_rows), "validation_seed": VALIDATION_SEED, "rows": rows}


def configs_table(results, base="default"):
    """Markdown: per dims and config, validation nDCG@10 mean ± sd and the paired difference
    to ``base`` over the seeds both have (mean ± standard error)."""
    lines = ["| dims | config | nDCG@10 (mean ± sd) | paired diff. to default (± se) | seeds |",
             "|---|---|---|---|---|"]
    for d in sorted({r["dims"] for r in results["rows"]}):
        by = {}
        for r in results["rows"]:
            if r["dims"] == d:
                by.setdefault(r["config"], {})[r["seed"]] = r["val_all"]["ndcg@10"]
        for name, vals in by.items():
            v = np.array(list(vals.values()))
            cell = f"{v.mean():.4f} ± {v.std(ddof=1) if v.size > 1 else 0:.4f}"
            diff_cell = ""
            if name != base and base in by:
                common = sorted(set(vals) & set(by[base]))
                diff = np.array([vals[s] - by[base][s] for s in common])
                se = diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else np.nan
                diff_cell = f"{diff.mean():+.4f} ± {se:.4f}"
            lines.append(f"| {d} | {name} | {cell} | {diff_cell} | {','.join(map(str, vals))} |")
    return "\n".join(lines)


def select_epoch(scores, rule, patience=3):
    """The epoch ``DiveAdapter.fit(..., early_stopping=rule, patience=patience)`` keeps, given
    the held-out nDCG@10 of epochs 0..E of an untruncated run (training does not depend on
    the rule: a stopped run is a prefix of the full one). Returns (kept epoch, last epoch run)."""
    best, kept, bad = -np.inf, 0, 0
    for t in range(1, len(scores)):
        if rule == "smoothed":
            value, epoch = float(np.mean(scores[max(0, t - 2):t + 1])), t - 1
        else:
            value, epoch = scores[t], t
            if t == 1:
                best = scores[0]
        if value > best:
            best, kept, bad = value, epoch, 0
        else:
            bad += 1
            if bad >= patience:
                break
    if rule == "smoothed" and float(np.mean(scores[t - 1:t + 1])) > best:
        kept = t
    return kept, t


def validate_stopping(data, dims, seeds, rules=("best", "smoothed"), threads=1, log=print):
    """Early-stopping rules on the training pairs only (the heads protocol): one untruncated
    fit per (dims, seed), every epoch's weights scored on the validation queries; each rule
    keeps the epoch it would have kept."""
    train_q, train_d, fit_rows, val_rows, qrels_all = validation_set(data)
    rows = []
    for k in dims:
        for seed in seeds:
            snapshots = []
            a, wall, cpu = fit_on_training_pairs(
                train_q, train_d, fit_rows, k, seed, threads, {}, patience=None,
                epoch_callback=lambda record, weights: snapshots.append(weights))
            per_epoch = []
            for weights in snapshots:
                a.params = weights
                per_epoch.append(ranking_metrics(a.transform(train_q[val_rows]), a.transform(train_d),
                                                 qrels_all)["ndcg@10"])
            inner = [r["val_ndcg@10"] for r in a.history]
            row = {"dims": k, "seed": seed, "inner_val_ndcg@10": inner, "val_all_per_epoch": per_epoch,
                   "fit_seconds_8_epochs": wall, "fit_cpu_seconds_8_epochs": cpu,
                   "load": os.getloadavg()[0]}
            for rule in rules:
                kept, last = select_epoch(inner, rule)
                row[rule] = {"kept_epoch": kept, "epochs_run": last, "val_all": per_epoch[kept]}
            rows.append(row)
            log(f"  {k:>3} dims seed {seed}: val all-docs per epoch "
                + " ".join(f"{v:.4f}" for v in per_epoch) + "  | "
                + "  ".join(f"{rule}: epoch {row[rule]['kept_epoch']}/{row[rule]['epochs_run']} "
                            f"{row[rule]['val_all']:.4f}" for rule in rules)
                + f"  fit {wall:.0f} s (CPU {cpu:.0f} s, load {row['load']:.1f})")
    return {"data": os.path.abspath(data), "validation_pairs": len(val_rows),
            "fit_pairs": len(fit_rows), "validation_seed": VALIDATION_SEED, "rules": list(rules),
            "rows": rows}


def stopping_table(results):
    """Markdown: per dims, each rule's validation nDCG@10 (mean ± sd) and the paired
    difference to the first rule (mean ± standard error)."""
    rules = results["rules"]
    lines = ["| dims | " + " | ".join(rules) + " | seeds |", "|---|" + "---|" * (len(rules) + 1)]
    for d in sorted({r["dims"] for r in results["rows"]}):
        rs = [r for r in results["rows"] if r["dims"] == d]
        base = np.array([r[rules[0]]["val_all"] for r in rs])
        cells = []
        for rule in rules:
            v = np.array([r[rule]["val_all"] for r in rs])
            cell = f"{v.mean():.4f} ± {v.std(ddof=1) if v.size > 1 else 0:.4f}"
            if rule != rules[0]:
                diff = v - base
                se = diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else np.nan
                cell += f" ({diff.mean():+.4f} ± se {se:.4f})"
            cells.append(cell)
        lines.append(f"| {d} | " + " | ".join(cells) + " | " + ",".join(str(r["seed"]) for r in rs) + " |")
    return "\n".join(lines)


def validation_table(results):
    """Markdown: validation nDCG@10 (all training docs) mean ± std over seeds, per dims and heads."""
    cells = {}
    for r in results["rows"]:
        cells.setdefault((r["dims"], r["heads"]), []).append(r)
    dims = sorted({d for d, _ in cells})
    heads = sorted({h for _, h in cells})
    lines = ["| dims | " + " | ".join(f"heads={h}" for h in heads) + " |",
             "|---|" + "---|" * len(heads)]
    for d in dims:
        out = []
        for h in heads:
            rs = cells.get((d, h))
            if not rs:
                out.append("")
                continue
            v = np.array([r["val_all"]["ndcg@10"] for r in rs])
            u = np.array([r["val_unseen"]["ndcg@10"] for r in rs])
            out.append(f"{v.mean():.4f} ± {v.std(ddof=1) if v.size > 1 else 0:.4f} "
                       f"(unseen {u.mean():.4f}; n={v.size})")
        lines.append(f"| {d} | " + " | ".join(out) + " |")
    return "\n".join(lines)


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
    ap.add_argument("--validate-heads", type=int, nargs="+", metavar="H",
                    help="no test split: score these head counts on held-out training pairs")
    ap.add_argument("--validate-stopping", action="store_true",
                    help="no test split: score early-stopping rules on held-out training pairs")
    ap.add_argument("--validate-configs", nargs="+", metavar="NAME:KEY=VALUE,...",
                    help="no test split: score these DIVE settings on held-out training pairs")
    ap.add_argument("--merge-configs", nargs="+", metavar="JSON",
                    help="no runs: print the table of earlier --validate-configs JSON files together")
    ap.add_argument("--dims", type=int, nargs="+", default=[48, 96],
                    help="with --validate-heads / --validate-stopping")
    ap.add_argument("--json", help="with --validate-heads: write the rows here")
    args = ap.parse_args(argv)
    if args.merge_configs:
        parts = [json.load(open(path)) for path in args.merge_configs]
        print(configs_table({**parts[0], "rows": [r for part in parts for r in part["rows"]]}))
        return 0
    if args.validate_configs:
        results = validate_configs(args.data, args.validate_configs, args.dims, args.seeds,
                                   args.threads, log=lambda s: print(s, flush=True))
        print(configs_table(results))
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(results, fh, indent=1)
        return 0
    if args.validate_stopping:
        results = validate_stopping(args.data, args.dims, args.seeds, threads=args.threads,
                                    log=lambda s: print(s, flush=True))
        print(stopping_table(results))
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(results, fh, indent=1)
        return 0
    if args.validate_heads:
        results = validate_heads(args.data, args.validate_heads, args.dims, args.seeds, args.threads,
                                 log=lambda s: print(s, flush=True))
        print(validation_table(results))
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(results, fh, indent=1)
        return 0
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
