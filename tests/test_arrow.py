"""spherecodec.arrow: vector columns as a VectorType extension, and Parquet files of them.

Real data: the 512 x 384 MiniLM sentence embeddings in tests/data, beside an int64 id and
a text column. Lossless round trips compare the vectors' bits.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import spherecodec
from spherecodec import CorruptBlobError, SpherecodecError, UnsupportedError
from spherecodec import arrow as sca

DATA = Path(__file__).resolve().parent / "data"
X = np.load(DATA / "minilm-sentences-512.npy")
N, D = X.shape


def fixed(x, mask=None):
    """A fixed_size_list<float, d> array of the rows of ``x`` (``mask``: True = null)."""
    values = pa.array(np.ascontiguousarray(x).reshape(-1))
    array = pa.FixedSizeListArray.from_arrays(values, x.shape[1])
    if mask is None:
        return array
    return pa.Array.from_buffers(array.type, len(array), [pa.array(~mask).buffers()[1]], children=[values])


def listed(x, mask=None, large=False):
    """A list<float> (or large_list) array of the rows of ``x``; masked rows are null."""
    rows = [None if mask is not None and mask[i] else row for i, row in enumerate(x)]
    value_type = pa.from_numpy_dtype(x.dtype)
    return pa.array(rows, type=pa.large_list(value_type) if large else pa.list_(value_type))


def table(x=X, embedding=None):
    n = len(x)
    return pa.table({
        "id": pa.array(np.arange(n, dtype=np.int64) * 7 + 3),
        "embedding": fixed(x) if embedding is None else embedding,
        "text": pa.array([f"sentence {i}: {'lorem ipsum ' * (i % 5)}" for i in range(n)]),
    })


def vector_bits(array):
    """The uint view of every non-null vector's values, and the validity mask."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    rows = array.to_pylist()
    dtype = pa.from_numpy_dtype(np.float16).to_pandas_dtype() if "halffloat" in str(array.type) else np.float32
    matrix = np.array([r for r in rows if r is not None], dtype=dtype)
    return matrix.view(np.uint16 if dtype == np.float16 else np.uint32), valid


def assert_same_vectors(got, want):
    """Same Arrow type, same validity, same bits in every non-null vector."""
    assert got.type == want.type
    if isinstance(want, pa.ChunkedArray):
        want = want.combine_chunks()
    if isinstance(got, pa.ChunkedArray):
        got = got.combine_chunks()
    assert got.null_count == want.null_count
    if pa.types.is_fixed_size_list(want.type):
        # the flat child holds every vector: compare bits directly (null slots excluded)
        d = want.type.list_size
        valid = want.is_valid().to_numpy(zero_copy_only=False)
        assert np.array_equal(got.is_valid().to_numpy(zero_copy_only=False), valid)
        uint = np.uint16 if want.type.value_type == pa.float16() else np.uint32
        a = got.values.slice(got.offset * d, len(got) * d).to_numpy().view(uint).reshape(-1, d)
        b = want.values.slice(want.offset * d, len(want) * d).to_numpy().view(uint).reshape(-1, d)
        assert np.array_equal(a[valid], b[valid])
    else:
        ga, gv = vector_bits(got)
        wa, wv = vector_bits(want)
        assert np.array_equal(gv, wv) and np.array_equal(ga, wa)
    assert got.equals(want)


# --- in memory: encode_array / decode_array ----------------------------------------------


def test_import_spherecodec_does_not_import_pyarrow():
    code = "import sys, spherecodec; assert 'pyarrow' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_fixed_size_list_round_trip_is_bit_exact_and_smaller():
    array = fixed(X)
    encoded = sca.encode_array(array)
    assert isinstance(encoded.type, sca.VectorType) and len(encoded) == N
    assert encoded.type.arrow_type == array.type and encoded.type.codec == "exact"
    # one blob for the whole array, in the first slot; the other slots are empty
    lengths = np.array([len(v) for v in encoded.storage.to_pylist()])
    assert lengths[0] > 0 and not lengths[1:].any()
    assert encoded.storage.nbytes < array.nbytes / 1.15
    blob = encoded.storage[0].as_py()
    assert spherecodec.info(blob)["shape"] == (N, D)
    assert_same_vectors(sca.decode_array(encoded), array)
    assert_same_vectors(encoded.decode(), array)


@pytest.mark.parametrize("large", [False, True])
def test_list_round_trip_keeps_the_list_type(large):
    array = listed(X[:100], large=large)
    encoded = sca.encode_array(array)
    assert encoded.type.arrow_type == array.type
    assert_same_vectors(sca.decode_array(encoded), array)


def test_sliced_list_input_is_encoded_from_its_own_rows():
    array = listed(X[:100]).slice(17, 40)
    assert_same_vectors(sca.decode_array(sca.encode_array(array)), listed(X[17:57]))
    array = fixed(X[:100]).slice(17, 40)
    assert_same_vectors(sca.decode_array(sca.encode_array(array)), fixed(X[17:57]))


def test_float16_round_trip_is_bit_exact():
    x16 = X.astype(np.float16)
    for array in (fixed(x16), listed(x16[:64])):
        encoded = sca.encode_array(array)
        assert encoded.type.arrow_type.value_type == pa.float16()
        assert_same_vectors(sca.decode_array(encoded), array)


@pytest.mark.parametrize("make", [fixed, listed])
def test_nulls_survive_as_storage_nulls(make):
    rng = np.random.default_rng(5)
    mask = rng.random(N) < 0.2
    mask[0] = True  # the blob then lives in the first non-null row, not row 0
    array = make(X, mask)
    encoded = sca.encode_array(array)
    assert encoded.null_count == mask.sum() == array.null_count
    assert spherecodec.info(encoded.storage[int(np.argmin(mask))].as_py())["shape"] == (N - mask.sum(), D)
    back = sca.decode_array(encoded)
    assert_same_vectors(back, array)
    assert back.is_null().to_numpy(zero_copy_only=False).tolist() == mask.tolist()


def test_all_null_and_empty_arrays():
    mask = np.ones(10, dtype=bool)
    for array in (fixed(X[:10], mask), listed(X[:10], mask), fixed(X[:0])):
        encoded = sca.encode_array(array)
        assert encoded.storage.nbytes < 100
        assert_same_vectors(sca.decode_array(encoded), array)


def test_slices_of_an_encoded_array_decode_only_what_they_hold():
    mask = np.zeros(N, dtype=bool)
    mask[[3, 100, 101, 400]] = True
    array = fixed(X, mask)
    encoded = sca.encode_array(array, params={"chunk_rows": 64})
    for start, length in [(0, 10), (1, 5), (100, 2), (250, 200), (511, 1), (4, 0)]:
        assert_same_vectors(sca.decode_array(encoded.slice(start, length)), array.slice(start, length))


def test_chunked_arrays_encode_one_blob_per_chunk_and_decode_across_chunks():
    chunked = pa.chunked_array([fixed(X[:200]), fixed(X[200:201]), fixed(X[201:])])
    encoded = sca.encode_array(chunked)
    assert isinstance(encoded, pa.ChunkedArray) and encoded.num_chunks == 3
    assert [len(c) for c in encoded.chunks] == [200, 1, 311]
    assert_same_vectors(sca.decode_array(encoded), chunked)
    # re-chunking the encoded column elsewhere than at a blob head still decodes
    whole = pa.concat_arrays(encoded.chunks)
    rechunked = pa.chunked_array([whole.slice(0, 150), whole.slice(150, 100), whole.slice(250)])
    assert_same_vectors(sca.decode_array(rechunked), chunked)


def test_filtered_encoded_array_is_refused_cleanly():
    encoded = sca.encode_array(fixed(X[:20]))
    keep = pa.array([i % 2 == 1 for i in range(20)])
    with pytest.raises(CorruptBlobError, match="decode before filtering"):
        sca.decode_array(encoded.filter(keep))


def test_lossy_codec_keeps_the_type_and_is_close():
    array = fixed(X)
    encoded = sca.encode_array(array, "int8")
    back = sca.decode_array(encoded)
    assert back.type == array.type
    got = back.values.to_numpy().reshape(N, D)
    assert np.abs(got - X).max() < 0.02 and not np.array_equal(got, X)


def test_encode_table_keeps_other_columns_and_decode_table_restores():
    t = table().replace_schema_metadata({"origin": "test"})
    encoded = sca.encode_table(t, {"embedding": ("exact", {"chunk_rows": 128})})
    assert encoded.column("id").equals(t.column("id")) and encoded.column("text").equals(t.column("text"))
    assert encoded.schema.field("embedding").type.params == {"chunk_rows": 128}
    back = sca.decode_table(encoded)
    assert back.equals(t) and back.schema.metadata == t.schema.metadata
    assert_same_vectors(back.column("embedding"), t.column("embedding"))


def test_extension_type_survives_ipc_round_trip(tmp_path):
    mask = np.zeros(N, dtype=bool)
    mask[7] = True
    t = table(embedding=fixed(X, mask))
    encoded = sca.encode_table(t, ["embedding"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, encoded.schema) as writer:
        writer.write_table(encoded, max_chunksize=200)  # three batches: blobs split across them
    got = pa.ipc.open_stream(sink.getvalue()).read_all()
    assert isinstance(got.schema.field("embedding").type, sca.VectorType)
    assert got.schema.field("embedding").type == encoded.schema.field("embedding").type
    back = sca.decode_table(got)
    assert back.equals(t)
    assert_same_vectors(back.column("embedding"), t.column("embedding"))
    # Feather (IPC file) too
    import pyarrow.feather as feather

    feather.write_feather(encoded, tmp_path / "t.feather", compression="uncompressed")
    assert sca.decode_table(feather.read_table(tmp_path / "t.feather")).equals(t)


def test_type_metadata_is_json_and_checked():
    encoded = sca.encode_array(listed(X[:4]), "exact", params={"chunk_rows": 2})
    meta = json.loads(encoded.type.__arrow_ext_serialize__())
    assert meta["codec"] == "exact" and meta["params"] == {"chunk_rows": 2}
    assert meta["arrow_type"] == {"kind": "list", "value_type": "float", "dim": D,
                                  "item_name": "item", "item_nullable": True}
    with pytest.raises(CorruptBlobError):
        sca.VectorType.__arrow_ext_deserialize__(pa.large_binary(), b"{not json")
    with pytest.raises(CorruptBlobError):
        sca.VectorType.__arrow_ext_deserialize__(pa.large_binary(), json.dumps({**meta, "codec": 3}).encode())
    with pytest.raises(UnsupportedError):
        sca.VectorType.__arrow_ext_deserialize__(pa.large_binary(), json.dumps({**meta, "layout": "v9"}).encode())


# --- bad input in memory -----------------------------------------------------------------


def test_ragged_lists_are_refused_naming_the_column_and_row():
    rows = [list(X[0]), list(X[1]), None, list(X[2][:100]), list(X[3][:5])]
    with pytest.raises(ValueError, match=r"column 'emb' is ragged: row 3 holds 100 values"):
        sca.encode_array(pa.array(rows, type=pa.list_(pa.float32())), name="emb")
    t = pa.table({"embedding": pa.array(rows, type=pa.list_(pa.float32()))})
    with pytest.raises(ValueError, match=r"'embedding' is ragged: row 3"):
        sca.encode_table(t, ["embedding"])
    # a vector length that changes from one chunk to the next, named by its row in the column
    chunked = pa.chunked_array([listed(X[:10]), listed(X[:5, :8])])
    with pytest.raises(ValueError, match=r"ragged: row 10 holds 8 values, the first vector 384"):
        sca.encode_array(chunked)


@pytest.mark.parametrize("array, match", [
    (pa.array([[1, 2], [3, 4]], type=pa.list_(pa.int32())), "int32 values"),
    (pa.array(["a", "b"]), "not a list of floats"),
    (pa.array([1.0, 2.0], type=pa.float32()), "not a list of floats"),
    (pa.array([[1.0, None], [3.0, 4.0]], type=pa.list_(pa.float32())), "null values inside vectors"),
    (pa.array([[], []], type=pa.list_(pa.float32())), "empty vectors"),
])
def test_non_vector_columns_are_refused(array, match):
    with pytest.raises(ValueError, match=match):
        sca.encode_array(array)


def test_bad_codec_specs_are_refused():
    array = fixed(X[:4])
    with pytest.raises(UnsupportedError):
        sca.encode_array(array, "no-such-codec")
    with pytest.raises((TypeError, ValueError)):
        sca.encode_array(array, "exact", params={"no_such_param": 1})
    with pytest.raises(TypeError):
        sca.encode_array(array, "exact", params={"chunk_rows": object()})
    with pytest.raises(ValueError, match="already spherecodec-encoded"):
        sca.encode_array(sca.encode_array(array))
    with pytest.raises(ValueError, match="not spherecodec.vectors"):
        sca.decode_array(array)


def test_damaged_blob_in_memory_raises_corrupt_blob_error():
    encoded = sca.encode_array(fixed(X[:64]))
    blob = bytearray(encoded.storage[0].as_py())
    blob[len(blob) // 2] ^= 0x10
    offsets = np.array([0] + [len(blob)] * 64, dtype=np.int64)
    storage = pa.Array.from_buffers(pa.large_binary(), 64, [None, pa.py_buffer(offsets.tobytes()),
                                                            pa.py_buffer(bytes(blob))])
    with pytest.raises(CorruptBlobError):
        sca.decode_array(pa.ExtensionArray.from_storage(encoded.type, storage))


# --- Parquet ------------------------------------------------------------------------------


def test_parquet_round_trip_several_row_groups(tmp_path):
    t = table().replace_schema_metadata({"origin": "test"})
    path = tmp_path / "t.parquet"
    assert sca.write_parquet(t, path, vectors={"embedding": "exact"}, row_group_rows=100) == N
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == 6 and [meta.row_group(g).num_rows for g in range(6)] == [100] * 5 + [12]
    back = sca.read_parquet(path)
    assert back.equals(t) and back.schema == t.schema and back.schema.metadata == t.schema.metadata
    assert_same_vectors(back.column("embedding"), t.column("embedding"))
    assert back.column("id").equals(t.column("id")) and back.column("text").equals(t.column("text"))
    # smaller than pyarrow's plain zstd of the same table
    pq.write_table(t, tmp_path / "plain.parquet", compression="zstd", row_group_size=100)
    assert path.stat().st_size < (tmp_path / "plain.parquet").stat().st_size
    assert not list(tmp_path.glob(".*part"))  # no temporary file left


def test_parquet_other_columns_are_written_by_pyarrow(tmp_path):
    path = tmp_path / "t.parquet"
    sca.write_parquet(table(), path, vectors={"embedding": "exact"}, row_group_rows=256)
    group = pq.ParquetFile(path).metadata.row_group(0)
    columns = {group.column(c).path_in_schema: group.column(c) for c in range(group.num_columns)}
    assert columns["text"].compression == "ZSTD" and columns["id"].compression == "ZSTD"
    assert columns["embedding"].compression == "UNCOMPRESSED"  # compressing a blob only costs time
    assert columns["id"].statistics is not None and columns["embedding"].statistics is None


def test_parquet_nulls_and_float16_and_list_columns(tmp_path):
    rng = np.random.default_rng(9)
    mask = rng.random(N) < 0.3
    mask[:3] = True
    x16 = X.astype(np.float16)
    t = table().append_column("half", fixed(x16, mask)).append_column("listed", listed(X[:, :32], mask))
    t = t.set_column(1, "embedding", fixed(X, mask))
    path = tmp_path / "t.parquet"
    sca.write_parquet(t, path, vectors={"embedding": "exact", "half": ("exact", {}),
                                        "listed": {"codec": "exact"}}, row_group_rows=128)
    back = sca.read_parquet(path)
    assert back.equals(t) and back.schema == t.schema
    for name in ("embedding", "half", "listed"):
        assert_same_vectors(back.column(name), t.column(name))


def test_parquet_rows_reads_only_the_row_groups_it_needs(tmp_path, monkeypatch):
    t = table()
    path = tmp_path / "t.parquet"
    sca.write_parquet(t, path, vectors=["embedding"], row_group_rows=100)
    read = []
    original = pq.ParquetFile.read_row_group

    def counting(self, i, *args, **kwargs):
        read.append(i)
        return original(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", counting)
    for rows, groups in [((150, 420), [1, 2, 3, 4]), (slice(0, 1), [0]), (slice(-12, None), [5]),
                         ((199, 201), [1, 2]), (slice(300, 300), [])]:
        read.clear()
        got = sca.read_parquet(path, rows=rows)
        start, stop, _ = (rows if isinstance(rows, slice) else slice(*rows)).indices(N)
        assert got.equals(t.slice(start, stop - start)) and read == groups
        assert got.schema == t.schema
    read.clear()
    got = sca.read_parquet(path, columns=["embedding", "id"], rows=(5, 10))
    assert got.column_names == ["embedding", "id"] and read == [0]
    assert_same_vectors(got.column("embedding"), t.column("embedding").slice(5, 5))
    assert sca.read_parquet(path, columns=["text"]).column("text").equals(t.column("text"))


def test_iter_parquet_streams_one_row_group_at_a_time(tmp_path):
    path = tmp_path / "t.parquet"
    sca.write_parquet(table(), path, vectors=["embedding"], row_group_rows=200)
    pieces = list(sca.iter_parquet(path))
    assert [p.num_rows for p in pieces] == [200, 200, 112]
    assert pa.concat_tables(pieces).equals(table())


def test_parquet_list_column_whose_first_row_group_is_all_null(tmp_path):
    mask = np.zeros(300, dtype=bool)
    mask[:150] = True
    column = listed(X[:300, :16], mask)
    t = pa.table({"embedding": column})
    for source in (t, pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=100))):
        path = tmp_path / "t.parquet"
        sca.write_parquet(source, path, vectors=["embedding"], row_group_rows=100)
        back = sca.read_parquet(path, columns="embedding")
        assert_same_vectors(back.column("embedding"), column)


def test_parquet_record_batch_reader_input_is_regrouped(tmp_path):
    t = table()
    reader = pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=70))
    path = tmp_path / "t.parquet"
    sca.write_parquet(reader, path, vectors=["embedding"], row_group_rows=128)
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [128, 128, 128, 128]
    assert sca.read_parquet(path).equals(t)


def test_parquet_stream_input_holds_one_row_group_at_a_time(tmp_path, monkeypatch):
    t = table()
    pulled = []

    def batches():
        for batch in t.to_batches(max_chunksize=64):
            pulled.append(batch.num_rows)
            yield batch

    seen = []
    original = pq.ParquetWriter.write_table

    def recording(self, piece, *args, **kwargs):
        seen.append((piece.num_rows, sum(pulled)))
        return original(self, piece, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", recording)
    path = tmp_path / "t.parquet"
    sca.write_parquet(pa.RecordBatchReader.from_batches(t.schema, batches()), path, vectors=["embedding"],
                      row_group_rows=128)
    # each row group is written once its own batches are in, before the next are pulled
    assert seen == [(128, 128), (128, 256), (128, 384), (128, 512)]
    assert sca.read_parquet(path).equals(t)


def test_parquet_dataset_directory_reads_files_in_order(tmp_path):
    t = table()
    sca.write_parquet(t.slice(0, 300), tmp_path / "part-0.parquet", vectors=["embedding"], row_group_rows=128)
    sca.write_parquet(t.slice(300), tmp_path / "part-1.parquet", vectors=["embedding"], row_group_rows=128)
    (tmp_path / "notes.txt").write_text("not part of the dataset")
    assert sca.read_parquet(tmp_path).equals(t)
    assert sca.read_parquet(tmp_path, rows=(250, 350)).equals(t.slice(250, 100))
    assert sca.read_parquet(tmp_path, rows=(300, 301)).equals(t.slice(300, 1))


def test_parquet_file_looks_like_plain_parquet_to_other_readers(tmp_path):
    path = tmp_path / "t.parquet"
    t = table()
    sca.write_parquet(t, path, vectors=["embedding"], row_group_rows=200)
    schema = pq.read_schema(path)
    meta = json.loads(schema.metadata[b"spherecodec"])
    assert "spherecodec.arrow.read_parquet" in meta["read_with"]
    assert meta["columns"]["embedding"]["codec"] == "exact"
    assert meta["columns"]["embedding"]["arrow_type"] == str(t.schema.field("embedding").type)
    assert sca.parquet_info(path) == meta
    # a reader without the extension type registered sees a binary column of blobs
    pa.unregister_extension_type(sca.EXTENSION_NAME)
    try:
        plain = pq.read_table(path)
    finally:
        sca.VectorType.__module__  # the type class stays importable
        pa.register_extension_type(sca.VectorType("exact", {}, pa.list_(pa.float32(), 1)))
    assert pa.types.is_large_binary(plain.schema.field("embedding").type)
    assert plain.column("id").equals(t.column("id"))
    blob = plain.column("embedding").chunk(0)[0].as_py()
    assert np.array_equal(spherecodec.decode(blob).view(np.uint32), X[:200].view(np.uint32))
    # and read_parquet still decodes such a table's file
    assert sca.read_parquet(path).equals(t)
    # pyarrow's own readers give the extension type; batches that split row groups decode together
    assert isinstance(pq.read_table(path).schema.field("embedding").type, sca.VectorType)
    batches = list(pq.ParquetFile(path).iter_batches(batch_size=70))
    assert sca.decode_table(pa.Table.from_batches(batches)).equals(t)
    with pytest.raises(CorruptBlobError, match="decode the batches together"):
        sca.decode_array(batches[1].column(1))


def test_read_parquet_of_a_plain_file_returns_it_unchanged(tmp_path):
    t = table()
    path = tmp_path / "plain.parquet"
    pq.write_table(t, path, row_group_size=100)
    assert sca.read_parquet(path).equals(pq.read_table(path))
    assert sca.read_parquet(path, rows=(10, 20)).equals(t.slice(10, 10))
    assert sca.parquet_info(path) == {}


def test_empty_table_and_empty_selection(tmp_path):
    path = tmp_path / "empty.parquet"
    t = table().slice(0, 0)
    assert sca.write_parquet(t, path, vectors=["embedding"]) == 0
    back = sca.read_parquet(path)
    assert back.num_rows == 0 and back.schema == t.schema
    assert sca.read_parquet(path, columns=["embedding"]).schema.names == ["embedding"]


def test_write_is_atomic(tmp_path):
    path = tmp_path / "t.parquet"
    sca.write_parquet(table(X[:10]), path, vectors=["embedding"])
    before = path.read_bytes()
    ragged = [list(X[i]) for i in range(300)] + [list(X[300][:7])]
    t = pa.table({"embedding": pa.array(ragged, type=pa.list_(pa.float32()))})
    with pytest.raises(ValueError, match="ragged: row 300 holds 7"):  # fails in the third row group
        sca.write_parquet(t, path, vectors=["embedding"], row_group_rows=128)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]
    with pytest.raises(ValueError):
        sca.write_parquet(t, tmp_path / "new.parquet", vectors=["embedding"], row_group_rows=128)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]


def test_write_parquet_bad_input(tmp_path):
    t = table()
    path = tmp_path / "t.parquet"
    with pytest.raises(ValueError, match="no column 'emb'"):
        sca.write_parquet(t, path, vectors={"emb": "exact"})
    with pytest.raises(ValueError, match="'text'.*not a list of floats"):
        sca.write_parquet(t, path, vectors={"text": "exact"})
    with pytest.raises(ValueError, match="'id'.*not a list of floats"):
        sca.write_parquet(t, path, vectors=["id"])
    with pytest.raises(UnsupportedError):
        sca.write_parquet(t, path, vectors={"embedding": "nope"})
    with pytest.raises(ValueError, match="row_group_rows"):
        sca.write_parquet(t, path, vectors=["embedding"], row_group_rows=0)
    with pytest.raises(TypeError):
        sca.write_parquet(t, path, vectors={})
    with pytest.raises(TypeError):
        sca.write_parquet(X, path, vectors=["embedding"])
    with pytest.raises(IsADirectoryError):
        sca.write_parquet(t, tmp_path, vectors=["embedding"])
    assert list(tmp_path.iterdir()) == []


def test_read_parquet_bad_input(tmp_path):
    path = tmp_path / "t.parquet"
    sca.write_parquet(table(), path, vectors=["embedding"], row_group_rows=200)
    with pytest.raises(FileNotFoundError):
        sca.read_parquet(tmp_path / "missing.parquet")
    with pytest.raises(ValueError, match="no column 'nope'"):
        sca.read_parquet(path, columns=["nope"])
    with pytest.raises(ValueError, match="contiguous"):
        sca.read_parquet(path, rows=slice(0, 10, 2))
    with pytest.raises(TypeError):
        sca.read_parquet(path, rows=5)
    (tmp_path / "text.parquet").write_text("hello, not parquet\n" * 10)
    with pytest.raises(sca.ParquetReadError, match="not a readable Parquet file"):
        sca.read_parquet(tmp_path / "text.parquet")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(sca.ParquetReadError, match="no \\*.parquet"):
        sca.read_parquet(empty_dir)
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) - 9, len(data) // 2, 10, 0):
        (tmp_path / "cut.parquet").write_bytes(data[:cut])
        with pytest.raises(sca.ParquetReadError):
            sca.read_parquet(tmp_path / "cut.parquet")


def _blob_span(path):
    """Byte range of the first row group's embedding column chunk in the file."""
    group = pq.ParquetFile(path).metadata.row_group(0)
    for c in range(group.num_columns):
        column = group.column(c)
        if column.path_in_schema == "embedding":
            return column.data_page_offset, column.data_page_offset + column.total_compressed_size
    raise AssertionError("no embedding column")


def test_flipped_bytes_in_a_blob_raise_a_clean_error(tmp_path):
    path = tmp_path / "t.parquet"
    sca.write_parquet(table(X[:256]), path, vectors=["embedding"], row_group_rows=128)
    data = path.read_bytes()
    lo, hi = _blob_span(path)
    for pos in np.linspace(lo + 60, hi - 1, 8).astype(int):  # past the page header: blob bytes
        damaged = bytearray(data)
        damaged[pos] ^= 0x04
        (tmp_path / "bad.parquet").write_bytes(bytes(damaged))
        with pytest.raises(SpherecodecError):
            sca.read_parquet(tmp_path / "bad.parquet")


def test_flipped_bytes_anywhere_never_give_wrong_vectors(tmp_path):
    t = table(X[:64])
    path = tmp_path / "t.parquet"
    sca.write_parquet(t, path, vectors=["embedding"], row_group_rows=32)
    data = path.read_bytes()
    want = X[:64].view(np.uint32)
    rng = np.random.default_rng(16)
    errors = 0
    for pos in rng.choice(len(data), size=150, replace=False):
        damaged = bytearray(data)
        damaged[pos] ^= 1 << int(rng.integers(8))
        (tmp_path / "bad.parquet").write_bytes(bytes(damaged))
        try:
            back = sca.read_parquet(tmp_path / "bad.parquet")
        except SpherecodecError:
            errors += 1
            continue
        # a flip the file's checks cannot see (statistics, padding) must not reach the vectors
        got = back.column("embedding").combine_chunks().values.to_numpy().view(np.uint32).reshape(-1, D)
        assert np.array_equal(got, want)
    assert errors > 100
