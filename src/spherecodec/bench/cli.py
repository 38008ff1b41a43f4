"""The command line of ``spherecodec bench`` (and ``python -m spherecodec.bench``)."""

import argparse
import os
import sys
import time

from .. import container as _container
from ..codecs import available_codecs
from . import peers, retrieval
from .data import (SAMPLE_NAME, SYNTHETIC_SETS, BenchError, as_float32_rows, data_facts, load_file,
                   load_sample, synthetic)
from .report import describe_data, format_table, load_average, write_outputs
from .plots import plots_unavailable
from .runner import run_benchmark

__all__ = ["build_parser", "main"]


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
    src.add_argument("--retrieval", metavar="DIR",
                     help="a labelled retrieval set (corpus-D, queries-D, qrels, train-queries-D, "
                          "train-docs-D .npy): nDCG@10 of DIVE and its baselines at 2x-16x, 3 seeds, "
                          "and DIVE + int8/binary; needs torch; tens of minutes (docs/dive.md)")
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
        return as_float32_rows(load_file(args.file), args.rows), os.path.basename(args.file)
    return as_float32_rows(load_sample(), args.rows), f"bundled sample {SAMPLE_NAME}"


def _print_list():
    print("codecs:", " ".join(available_codecs()))
    for peer in peers.all_peers():
        state = "installed" if peer.available() else "not installed"
        print(f"peer {peer.name}: {peer.description} [{state}]")


def _argument_error(parser, args):
    """The message of an out-of-range option, or None."""
    for name, value, low in (("--repeats", args.repeats, 1), ("--k", args.k, 1),
                             ("--threads", args.threads, 1), ("--rows", args.rows, 2)):
        if value is not None and value < low:
            parser.print_usage(sys.stderr)
            return f"{name} must be at least {low}"
    if not 0 < args.queries < 1:
        return "--queries must be between 0 and 1"
    return None


def _retrieval(args, progress):
    """``--retrieval DIR``: the retrieval table (and with --out, its files and plot)."""
    try:
        results = retrieval.run(args.retrieval, [2, 4, 8, 16], [0, 1, 2], retrieval.METHODS,
                                threads=1, log=progress or (lambda line: None))
    except BenchError as exc:
        print(f"spherecodec bench: error: {exc}", file=sys.stderr)
        return 1
    print(retrieval.table(results))
    if args.out:
        print("wrote " + ", ".join(retrieval.write(results, args.out)))
    return 0


def main(argv=None):
    """Entry point of ``spherecodec bench``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or an argument error argparse already printed
        return int(exc.code or 0)
    if args.list:
        _print_list()
        return 0
    error = _argument_error(parser, args)
    if error:
        print(f"spherecodec bench: error: {error}", file=sys.stderr)
        return 2
    progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    started = time.perf_counter()
    if args.retrieval:
        return _retrieval(args, progress)
    load_before = load_average()
    for listed in (args.peers, args.codecs):
        # "--peers data.npy", "--codecs exact data.npy": the file is the data, not a name
        if listed and not (args.file or args.sample or args.synthetic) and os.path.isfile(listed[-1]):
            args.file = listed.pop()
    if args.codecs == []:
        args.codecs = None
    try:
        data, source = _load_args_data(args)
        results = run_benchmark(data, codecs=args.codecs,
                                peers=False if args.peers is None else (args.peers or True),
                                threads=args.threads, repeats=args.repeats, k=args.k,
                                query_fraction=args.queries, progress=progress)
    except BenchError as exc:
        print(f"spherecodec bench: error: {exc}", file=sys.stderr)
        return 1
    data_info = data_facts(data, source, args.queries)
    threads = _container.resolve_threads(args.threads)
    settings = {"repeats": args.repeats, "k": args.k, "query_fraction": args.queries,
                "thread_counts": [1] if threads == 1 else [1, threads],
                "load_average_before": load_before, "load_average_after": load_average(),
                "seconds": round(time.perf_counter() - started, 1)}
    print(f"{describe_data(data_info)}; medians of {args.repeats} runs")
    print(format_table(results, settings["thread_counts"]))
    if args.out:
        command = "spherecodec bench " + " ".join(argv if argv is not None else sys.argv[1:])
        paths = write_outputs(args.out, results, data_info, settings, command=command)
        print("wrote " + ", ".join(paths))
        missing = plots_unavailable()
        if missing:
            print(missing, file=sys.stderr)
    print(f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0
