"""Parquet files of real embeddings: spherecodec.arrow.write_parquet against pyarrow's best.

Run: python -m pytest benches/bench_parquet.py --benchmark-only --benchmark-group-by=group
or   python benches/bench_parquet.py            (prints one table per data set, same run)

A table of an int64 id, the text (line i of stdlib-docstrings.txt is row i) and the
embedding as ``fixed_size_list<float32, d>`` is written three ways:

* ``spherecodec``: ``write_parquet(..., vectors={"embedding": "exact"})`` (lossless);
* ``pyarrow BSS+zstd``: pyarrow's best lossless setting for floats, byte-stream-split and
  zstd on the embedding, no dictionary for it;
* ``pyarrow zstd``: plain zstd, no dictionary for the embedding.

Every file is one row group, the other columns are zstd in all three. The embedding
column's ratio is its raw size over its compressed size in the file's metadata. Uses the
shared data sets (../shared/data) when present, else the MiniLM sample in tests/data.
"""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spherecodec import arrow as sca

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "tests" / "data" / "minilm-sentences-512.npy"
DATASETS = {  # name: (embeddings file, rows)
    "minilm-384": ("minilm-stdlib-sentences-384.npy", 11_803),
    "mpnet-768": ("mpnet-stdlib-sentences-768.npy", 8_000),
}


EMBEDDING_LEAF = "embedding.list.element"


def load_table(name):
    """The id / embedding / text table of one data set."""
    file, rows = DATASETS[name]
    path = SHARED / file
    if not path.exists():
        path, rows = SAMPLE, 512
    x = np.ascontiguousarray(np.load(path)[:rows])
    texts_path = SHARED / "stdlib-docstrings.txt"
    if texts_path.exists():
        lines = texts_path.read_text(encoding="utf-8").split("\n")[: len(x)]
    else:
        lines = []
    lines += [f"row {i}" for i in range(len(lines), len(x))]
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
    return pa.table({"id": pa.array(np.arange(len(x), dtype=np.int64)), "text": pa.array(lines),
                     "embedding": embedding})


def write_spherecodec(table, path):
    sca.write_parquet(table, path, vectors={"embedding": "exact"}, row_group_rows=table.num_rows)


def write_bss(table, path):
    # BSS is set per leaf column: a list column's values are "<name>.list.element"
    pq.write_table(table, path, compression="zstd", use_byte_stream_split=[EMBEDDING_LEAF],
                   use_dictionary=["id", "text"], row_group_size=table.num_rows)


def write_zstd(table, path):
    pq.write_table(table, path, compression="zstd", use_dictionary=["id", "text"],
                   row_group_size=table.num_rows)


def read_spherecodec(path):
    return sca.read_parquet(path)


def read_pyarrow(path):
    return pq.read_table(path)


WAYS = {  # name: (writer, reader)
    "spherecodec exact": (write_spherecodec, read_spherecodec),
    "pyarrow BSS+zstd": (write_bss, read_pyarrow),
    "pyarrow zstd": (write_zstd, read_pyarrow),
}


def column_ratio(path, table):
    """Raw bytes of the embedding values over the embedding column's bytes in the file."""
    meta = pq.ParquetFile(path).metadata
    stored = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            if group.column(c).path_in_schema.split(".")[0] == "embedding":
                stored += group.column(c).total_compressed_size
    raw = table.column("embedding").combine_chunks().values.nbytes
    return raw / stored


def _best(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def measure(name, repeats=5):
    """Rows of (way, file MB, embedding ratio, write ms, read ms) for one data set."""
    table = load_table(name)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for way, (write, read) in WAYS.items():
            path = os.path.join(tmp, way.replace(" ", "_") + ".parquet")
            write(table, path)  # warm-up (Numba kernels, page cache)
            back = read(path)
            assert back.column("embedding").combine_chunks().values.to_numpy().view(np.uint32).tobytes() == \
                table.column("embedding").combine_chunks().values.to_numpy().view(np.uint32).tobytes()
            write_s, _ = _best(lambda: write(table, path), repeats)
            read_s, _ = _best(lambda: read(path), repeats)
            rows.append((way, os.path.getsize(path) / 1e6, column_ratio(path, table), write_s * 1e3, read_s * 1e3))
    return table, rows


def _print(name, table, rows):
    x_shape = (table.num_rows, table.schema.field("embedding").type.list_size)
    print(f"\n{name}: {x_shape[0]:,} x {x_shape[1]} float32 + int64 id + text "
          f"(raw embedding {x_shape[0] * x_shape[1] * 4 / 1e6:.2f} MB)")
    print(f"| {'writer':<18} | file MB | embedding ratio | write ms | read ms |")
    print(f"|{'-' * 20}|--------:|----------------:|---------:|--------:|")
    for way, mb, ratio, w, r in rows:
        print(f"| {way:<18} | {mb:7.3f} | {ratio:15.3f} | {w:8.1f} | {r:7.1f} |")


# pytest-benchmark form: one group per data set and direction


@pytest.fixture(scope="module", params=list(DATASETS))
def dataset(request):
    table = load_table(request.param)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for way, (write, _) in WAYS.items():
            paths[way] = os.path.join(tmp, way.replace(" ", "_") + ".parquet")
            write(table, paths[way])
        yield request.param, table, paths


@pytest.mark.parametrize("way", list(WAYS))
def test_write(benchmark, dataset, way, tmp_path):
    name, table, _ = dataset
    benchmark.group = f"write {name}"
    path = tmp_path / "out.parquet"
    benchmark(WAYS[way][0], table, path)
    benchmark.extra_info["file_bytes"] = path.stat().st_size
    benchmark.extra_info["embedding_ratio"] = column_ratio(path, table)


@pytest.mark.parametrize("way", list(WAYS))
def test_read(benchmark, dataset, way):
    name, table, paths = dataset
    benchmark.group = f"read {name}"
    back = benchmark(WAYS[way][1], paths[way])
    assert back.num_rows == table.num_rows


if __name__ == "__main__":
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for name in DATASETS:
        table, rows = measure(name, repeats)
        _print(name, table, rows)
