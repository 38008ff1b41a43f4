"""The command line on Parquet files: compress the vector columns, decompress to plain Parquet.

Real data: the 512 x 384 MiniLM sentence embeddings in tests/data as a fixed_size_list column,
beside an int64 id, a text column and a list<float16> column with nulls.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spherecodec import arrow as sca
from spherecodec import cli

DATA = Path(__file__).resolve().parent / "data"
X = np.load(DATA / "minilm-sentences-512.npy")


def _table(x=X):
    n = len(x)
    halves = [None if i % 7 == 3 else row for i, row in enumerate(x[:, :32].astype(np.float16))]
    return pa.table({
        "id": pa.array(np.arange(n, dtype=np.int64) * 5 + 1),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1]),
        "text": pa.array([f"doc {i} " * (i % 4) for i in range(n)]),
        "head": pa.array(halves, type=pa.list_(pa.float16())),
    })


def _cli(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _same(a, b):
    """Tables equal, the float vector columns compared bit for bit."""
    assert a.schema.remove_metadata() == b.schema.remove_metadata() and a.num_rows == b.num_rows
    for name in a.column_names:
        ca, cb = a.column(name).combine_chunks(), b.column(name).combine_chunks()
        if name in ("embedding", "head"):
            assert ca.is_valid().equals(cb.is_valid())
            va, vb = ca.flatten().to_numpy(zero_copy_only=False), cb.flatten().to_numpy(zero_copy_only=False)
            assert va.tobytes() == vb.tobytes()
        else:
            assert ca.equals(cb)


@pytest.fixture
def plain(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(_table(), path, row_group_size=200)
    return path


def test_compress_then_decompress_round_trips_every_bit(tmp_path, capsys, plain):
    status, out, err = _cli(capsys, "compress", plain, tmp_path / "c.parquet", "-p", "chunk_rows=64")
    assert status == 0 and err == "" and "512 rows (codec exact)" in out
    info = sca.parquet_info(tmp_path / "c.parquet")
    assert set(info["columns"]) == {"embedding", "head"}  # every float vector column by default
    assert info["columns"]["embedding"]["params"]["chunk_rows"] == 64
    _same(sca.read_parquet(tmp_path / "c.parquet"), pq.read_table(plain))
    # any Parquet reader sees a binary column where the vectors were
    columns = pq.read_metadata(tmp_path / "c.parquet").schema
    assert columns.column(1).path == "embedding" and columns.column(1).physical_type == "BYTE_ARRAY"
    status, out, _ = _cli(capsys, "decompress", tmp_path / "c.parquet", tmp_path / "d.parquet")
    assert status == 0 and "512 rows" in out
    back = pq.read_table(tmp_path / "d.parquet")  # plain Parquet: pyarrow alone reads it
    assert sca.parquet_info(tmp_path / "d.parquet") == {}
    _same(back, pq.read_table(plain))


def test_compress_selected_column_with_a_lossy_codec(tmp_path, capsys, plain):
    status, _, _ = _cli(capsys, "compress", plain, tmp_path / "c.parquet", "--column", "embedding",
                        "--codec", "int8")
    assert status == 0
    info = sca.parquet_info(tmp_path / "c.parquet")
    assert list(info["columns"]) == ["embedding"] and info["columns"]["embedding"]["codec"] == "int8"
    back = sca.read_parquet(tmp_path / "c.parquet")
    original = pq.read_table(plain)
    assert back.column("head").equals(original.column("head"))  # not selected: untouched
    decoded = back.column("embedding").combine_chunks().flatten().to_numpy().reshape(X.shape)
    assert np.abs(decoded - X).max() < 0.01 and decoded.tobytes() != X.tobytes()


@pytest.mark.parametrize("argv, message", [
    (["--column", "nope"], "no column 'nope'"),
    (["--column", "text"], "column 'text' has type string, not a list of floats"),
    (["--codec", "int16"], "unknown codec 'int16'"),
])
def test_bad_parquet_compress_is_one_line_and_writes_nothing(tmp_path, capsys, plain, argv, message):
    status, out, err = _cli(capsys, "compress", plain, tmp_path / "c.parquet", *argv)
    assert status == 1 and out == "" and message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_parquet_inputs_that_cannot_be_processed(tmp_path, capsys, plain):
    # a truncated file: one line naming it, and no output left behind
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(plain.read_bytes()[:-100])
    status, _, err = _cli(capsys, "compress", cut, tmp_path / "c.parquet")
    assert status == 1 and str(cut) in err and "not a readable Parquet file" in err
    # plain Parquet given to decompress; no vector column given to compress
    status, _, err = _cli(capsys, "decompress", plain, tmp_path / "d.parquet")
    assert status == 1 and "holds no spherecodec column" in err
    pq.write_table(pa.table({"id": [1, 2]}), tmp_path / "ids.parquet")
    status, _, err = _cli(capsys, "compress", tmp_path / "ids.parquet", tmp_path / "c.parquet")
    assert status == 1 and "no column holds float vectors (columns: id int64)" in err
    # compressing twice is refused; --column on a .npy is refused
    assert _cli(capsys, "compress", plain, tmp_path / "c.parquet")[0] == 0
    status, _, err = _cli(capsys, "compress", tmp_path / "c.parquet", tmp_path / "cc.parquet")
    assert status == 1 and "already holds spherecodec columns" in err
    np.save(tmp_path / "v.npy", X[:10])
    status, _, err = _cli(capsys, "compress", tmp_path / "v.npy", tmp_path / "v.sphc", "--column", "x")
    assert status == 1 and "--column applies to Parquet files" in err
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"in.parquet", "cut.parquet", "ids.parquet", "c.parquet", "v.npy"}
