"""The ``spherecodec`` command line.

::

    spherecodec compress IN.npy OUT.sphc [--codec NAME] [--param k=v ...] [--threads N]
    spherecodec decompress IN.sphc OUT.npy [--threads N]
    spherecodec compress IN.parquet OUT.parquet [--column NAME ...] [--codec NAME] [--param k=v ...]
    spherecodec decompress IN.parquet OUT.parquet
    spherecodec info FILE.sphc [--json]
    spherecodec codecs
    spherecodec bench [FILE.npy | --sample] [--codecs ...] [--peers] [--threads N] [--out DIR]

compress and decompress stream: the input is memory-mapped and coded a few MB of chunks at
a time, so files larger than RAM work. A Parquet input (the ``arrow`` extra) is streamed one
row group at a time; its vector columns are compressed in place (spherecodec.arrow). Errors on bad input are one line on stderr and a
non-zero exit status (1: the input or the files; 2: the command line; 130: interrupted);
set ``SPHERECODEC_DEBUG=1`` to get the traceback instead.
"""

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__, available_codecs, get_codec, stream
from .errors import SpherecodecError
from .layout import MAGIC as _SPHC_MAGIC

__all__ = ["main", "parse_param"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_NPY_MAGIC = b"\x93NUMPY"
_PARQUET_MAGIC = b"PAR1"


class CommandError(Exception):
    """An error reported to the user as one line (exit status 1)."""


class _UsageError(Exception):
    def __init__(self, prog, message):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors instead of a usage block and exit."""

    def error(self, message):
        raise _UsageError(self.prog, message)


def parse_param(text):
    """``"k=v"`` -> ``(k, v)``: v parsed as JSON when it is (numbers, booleans, null), else a string.

    >>> parse_param("mantissa_bits=4"), parse_param("entropy=numba")
    (('mantissa_bits', 4), ('entropy', 'numba'))
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY a name, got {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return key, parsed


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser():
    """The argument parser of every subcommand but ``bench`` (which parses its own)."""
    parser = _Parser(prog="spherecodec", description="Compress embedding arrays (.npy) into .sphc files.",
                     epilog="Run 'spherecodec COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"spherecodec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("compress", help="compress a .npy file into a .sphc file, or the vector columns of "
                                        "a Parquet file (streaming)",
                       description="Compress IN.npy into OUT.sphc, a few MB of rows at a time; or copy "
                                   "IN.parquet to OUT.parquet with its vector columns compressed, a row "
                                   "group at a time.")
    p.add_argument("input", metavar="IN.npy|IN.parquet")
    p.add_argument("output", metavar="OUT.sphc|OUT.parquet")
    p.add_argument("--column", action="append", metavar="NAME",
                   help="Parquet only: a vector column to compress, repeatable (default: every column "
                        "of float vectors)")
    p.add_argument("--codec", default="exact",
                   help="codec name (default: exact, bit-exact); 'spherecodec codecs' lists them")
    p.add_argument("--param", "-p", action="append", default=[], type=parse_param, metavar="KEY=VALUE",
                   help="codec parameter, repeatable; VALUE is read as JSON when it parses, else a string")
    p.add_argument("--chunk-rows", type=_positive_int, metavar="N", help="rows per independently decodable chunk")
    _common(p)

    p = sub.add_parser("decompress", help="decompress a .sphc file into a .npy file, or a spherecodec "
                                          "Parquet file into plain Parquet (streaming)",
                       description="Decompress IN.sphc into OUT.npy, a few MB of rows at a time; or "
                                   "IN.parquet (written by spherecodec) into a plain OUT.parquet.")
    p.add_argument("input", metavar="IN.sphc|IN.parquet")
    p.add_argument("output", metavar="OUT.npy|OUT.parquet")
    _common(p)

    p = sub.add_parser("info", help="show what a .sphc file holds (reads only its header)",
                       description="Show a .sphc file's codec, parameters, dtype, shape and sizes.")
    p.add_argument("input", metavar="FILE.sphc")
    p.add_argument("--json", action="store_true", help="print the facts as one JSON object")

    sub.add_parser("codecs", help="list the available codecs", description="List the available codecs.")
    sub.add_parser("bench", help="compare the codecs and peers on your data or the bundled sample "
                                 "(see 'spherecodec bench --help')", add_help=False)
    return parser


def _common(p):
    p.add_argument("--threads", "-t", type=_positive_int, metavar="N", help="worker threads (default: every core)")
    p.add_argument("--force", "-f", action="store_true", help="overwrite the output file if it exists")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_const", const=True,
                     help="always draw a progress bar (default: on a terminal, for runs over a second)")
    bar.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                     help="never draw a progress bar")


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _magic(path):
    try:
        with open(path, "rb") as f:
            return f.read(6)
    except OSError:
        return b""


def _check_paths(args):
    src, dst = Path(args.input), Path(args.output)
    if not src.exists():
        raise CommandError(f"{src}: no such file")
    if src.is_dir():
        raise CommandError(f"{src}: is a directory")
    if dst.is_dir():
        raise CommandError(f"{dst}: is a directory")
    if not dst.parent.is_dir():
        raise CommandError(f"{dst}: no such directory {str(dst.parent)!r} (create it first)")
    if dst.exists():
        if src.resolve() == dst.resolve():
            raise CommandError(f"{dst}: output would overwrite the input")
        if not args.force:
            raise CommandError(f"{dst}: exists (use --force to overwrite)")
    return src, dst


def _progress_flag(args):
    return sys.stderr.isatty() if args.progress is None else args.progress


def _compress(args):
    params = dict(args.param)
    chunk_rows = params.pop("chunk_rows", None)
    if args.chunk_rows is not None:
        chunk_rows = args.chunk_rows
    # a bad codec name or parameter is the first thing said, before any file is looked at
    codec_class = get_codec(args.codec)
    try:
        codec = codec_class(**params)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        prefix = f"codec {args.codec!r}"
        raise CommandError(message if message.startswith(prefix) else f"{prefix}: {message}") from None
    src, dst = _check_paths(args)
    if _magic(src).startswith(_PARQUET_MAGIC):
        return _compress_parquet(args, src, dst, params, chunk_rows)
    if args.column:
        raise CommandError(f"{src}: --column applies to Parquet files; this is not one")
    if _magic(src).startswith(_SPHC_MAGIC):
        raise CommandError(f"{src}: is already a .sphc file (did you mean 'spherecodec decompress'?)")
    started = time.perf_counter()
    try:
        written = stream.compress_npy(src, dst, codec, threads=args.threads, chunk_rows=chunk_rows,
                                      progress=_progress_flag(args))
    except stream.NpyFormatError as exc:
        raise CommandError(f"{src}: {exc}") from None
    if not args.quiet:
        raw = stream.file_info(dst)["nbytes"]
        print(f"{src} -> {dst}: {_size(raw)} -> {_size(written)} (ratio {raw / max(1, written):.3f}, "
              f"codec {args.codec}) in {time.perf_counter() - started:.1f} s")
    return EXIT_OK


def _arrow_module():
    """spherecodec.arrow, or a CommandError saying how to install pyarrow."""
    try:
        # pyarrow is optional (the arrow extra): loaded by the Parquet commands only
        from .integrations import arrow
    except ImportError as exc:
        raise CommandError(f"Parquet files need pyarrow ({exc}): pip install 'spherecodec[arrow]'") from None
    return arrow


def _compress_parquet(args, src, dst, params, chunk_rows):
    arrow = _arrow_module()
    if chunk_rows is not None:
        params = dict(params, chunk_rows=chunk_rows)
    started = time.perf_counter()
    try:
        rows = arrow.compress_parquet(src, dst, args.column, args.codec, params=params or None,
                                      threads=args.threads, progress=_progress_flag(args))
    except (ValueError, TypeError) as exc:
        message = str(exc)
        raise CommandError(message if message.startswith(str(src)) else f"{src}: {message}") from None
    if not args.quiet:
        print(f"{src} -> {dst}: {_size(os.path.getsize(src))} -> {_size(os.path.getsize(dst))}, "
              f"{rows:,} rows (codec {args.codec}) in {time.perf_counter() - started:.1f} s")
    return EXIT_OK


def _decompress_parquet(args, src, dst):
    arrow = _arrow_module()
    started = time.perf_counter()
    try:
        rows = arrow.decompress_parquet(src, dst, threads=args.threads, progress=_progress_flag(args))
    except (ValueError, SpherecodecError) as exc:
        message = str(exc)
        raise CommandError(message if message.startswith(str(src)) else f"{src}: {message}") from None
    if not args.quiet:
        print(f"{src} -> {dst}: {_size(os.path.getsize(src))} -> {_size(os.path.getsize(dst))}, "
              f"{rows:,} rows in {time.perf_counter() - started:.1f} s")
    return EXIT_OK


def _decompress(args):
    src, dst = _check_paths(args)
    if _magic(src).startswith(_PARQUET_MAGIC):
        return _decompress_parquet(args, src, dst)
    if _magic(src).startswith(_NPY_MAGIC):
        raise CommandError(f"{src}: is a .npy file, not a .sphc file (did you mean 'spherecodec compress'?)")
    started = time.perf_counter()
    try:
        written = stream.decompress_npy(src, dst, threads=args.threads, progress=_progress_flag(args))
    except SpherecodecError as exc:
        raise CommandError(f"{src}: {exc}") from None
    if not args.quiet:
        print(f"{src} -> {dst}: {_size(os.path.getsize(src))} -> {_size(written)} "
              f"in {time.perf_counter() - started:.1f} s")
    return EXIT_OK


def _info(args):
    src = Path(args.input)
    if src.is_dir():
        raise CommandError(f"{src}: is a directory")
    if _magic(src).startswith(_NPY_MAGIC):
        raise CommandError(f"{src}: is a .npy file, not a .sphc file")
    try:
        facts = stream.file_info(src)
    except SpherecodecError as exc:
        raise CommandError(f"{src}: {exc}") from None
    if args.json:
        facts = dict(facts, shape=list(facts["shape"]), file=str(src))
        print(json.dumps(facts, sort_keys=True))
        return EXIT_OK
    values = max(1, facts["nbytes"] // max(1, _itemsize(facts["dtype"])))
    rows = [
        ("file", str(src)),
        ("codec", f"{facts['codec']} {json.dumps(facts['params'], sort_keys=True)}"),
        ("dtype", facts["dtype"]),
        ("shape", " x ".join(str(d) for d in facts["shape"]) or "scalar"),
        ("raw", f"{facts['nbytes']:,} bytes ({_size(facts['nbytes'])})"),
        ("compressed", f"{facts['compressed_nbytes']:,} bytes ({_size(facts['compressed_nbytes'])}), "
                       f"ratio {facts['ratio']:.3f}, {8 * facts['compressed_nbytes'] / values:.2f} bits/value"),
        ("chunks", f"{facts['chunks']} of {facts['chunk_rows']} rows"),
        ("header", f"{facts['header_nbytes']:,} bytes"),
        ("format", f"version {facts['format_version']}"),
    ]
    for key, value in rows:
        print(f"{key:<11} {value}")
    return EXIT_OK


def _itemsize(dtype):
    return np.dtype(dtype).itemsize


def _codecs(args):
    for name in available_codecs():
        doc = (get_codec(name).__doc__ or "").strip().splitlines()
        print(f"{name:<12} {doc[0] if doc else ''}")
    return EXIT_OK


def _bench(argv):
    try:
        # the bench package (peers, plots) is loaded by this command only, not by every CLI call
        from .bench import main as bench_main
    except ImportError as exc:
        raise CommandError(f"the bench command is not available: {exc}") from None
    return int(bench_main(list(argv)) or 0)


_COMMANDS = {"compress": _compress, "decompress": _decompress, "info": _info, "codecs": _codecs}


def _users_path(filename):
    """The path the user named for ``filename``: the output itself, not the temporary
    ``.NAME.XXXX.part`` file beside it that atomic writes go through."""
    name = os.path.basename(str(filename))
    match = re.fullmatch(r"\.(.+)\.[^.]+\.part", name)
    return os.path.join(os.path.dirname(str(filename)), match.group(1)) if match else filename


def _one_line(exc):
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _run(argv):
    if argv and argv[0] == "bench":
        return _bench(argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(f"{exc.prog}: error: {_one_line(exc)} (see '{exc.prog} --help')", file=sys.stderr)
        return EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return _COMMANDS[args.command](args)


def main(argv=None):
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if os.environ.get("SPHERECODEC_DEBUG"):
        return _run(argv)
    try:
        return _run(argv)
    except CommandError as exc:
        message = _one_line(exc)
    except SpherecodecError as exc:
        message = _one_line(exc)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            return EXIT_ERROR
        where = f"{_users_path(exc.filename)}: " if exc.filename else ""
        message = f"{where}{exc.strerror or _one_line(exc)}"
    except (ValueError, TypeError) as exc:  # codec parameters refused at encode time
        message = _one_line(exc)
    except MemoryError:
        message = "out of memory"
    except KeyboardInterrupt:
        print("spherecodec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the promise is one line, never a traceback
        message = (f"internal error: {type(exc).__name__}: {_one_line(exc)} "
                   "(set SPHERECODEC_DEBUG=1 for the traceback)")
    print(f"spherecodec: error: {message}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
