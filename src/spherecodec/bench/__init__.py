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
held-out queries over the decoded base against the same search over the original base. A peer
or codec that cannot run (its package or an optional dependency not installed, parameters
missing) is a ``skipped`` row with the reason and nothing measured.

``--out DIR`` writes ``results.md``, ``results.json`` and three PNG plots (ratio against
decode speed, ratio against max error, recall against bytes per vector).

Modules: ``data`` (inputs and the base/query split), ``candidates`` (what is measured),
``peers`` (adapters of the other compressors), ``runner`` (the timed runs), ``quality``
(exactness, error, recall@k), ``result`` (``BenchResult``, one row), ``report`` (table,
Markdown, JSON), ``plots`` (optional matplotlib), ``cli``. ``import spherecodec`` does not
import this package; only the ``bench`` command does.
"""

from .candidates import codec_label, default_codec_specs, parse_codec_spec
from .cli import build_parser, main
from .data import SYNTHETIC_SETS, BenchError, load_sample, split_queries, synthetic
from .quality import recall_at_k, top_k
from .report import format_table, machine_facts, table_columns, write_outputs
from .result import BenchResult
from .runner import run_benchmark

__all__ = ["main", "build_parser", "run_benchmark", "BenchResult", "BenchError", "load_sample",
           "synthetic", "SYNTHETIC_SETS", "split_queries", "top_k", "recall_at_k", "parse_codec_spec",
           "codec_label", "default_codec_specs", "format_table", "table_columns", "write_outputs",
           "machine_facts"]
