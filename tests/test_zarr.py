"""zarr v3 array-to-bytes codec: entry point, metadata round trip, bit-exact stores, the examples."""

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
import zarr.registry
import zarr.storage

import spherecodec
from spherecodec import arrow as sca
from spherecodec.integrations.zarr import SpherecodecZarrCodec

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
SENTENCES = np.load(DATA / "minilm-sentences-512.npy")
TOKENS_RAW = np.load(DATA / "minilm-tokens-raw-256.npy")


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(
        a.view(f"u{a.dtype.itemsize}"), b.view(f"u{b.dtype.itemsize}"))


def test_zarr_finds_the_codec_by_name_through_the_entry_point():
    assert zarr.registry.get_codec_class("spherecodec") is SpherecodecZarrCodec


@pytest.mark.parametrize("kwargs", [{}, {"codec": "exact", "params": {"mantissa_bits": 1, "chunk_rows": 64}},
                                    {"codec": "int8"}])
def test_metadata_round_trip(kwargs):
    codec = SpherecodecZarrCodec(**kwargs)
    meta = codec.to_dict()
    assert meta["name"] == "spherecodec" and set(meta["configuration"]) == {"codec", "params"}
    again = SpherecodecZarrCodec.from_dict(meta)
    assert again == codec and hash(again) == hash(codec) and again.to_dict() == meta
    assert zarr.registry.get_codec_class(meta["name"]).from_dict(meta) == codec


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_row_chunked_store_reads_back_bit_exact(tmp_path, dtype):
    x = TOKENS_RAW.astype(dtype)
    x.view(f"u{x.dtype.itemsize}")[0, :3] = [np.array(v).astype(f"u{x.dtype.itemsize}") for v in (0, 1, 2)]
    path = str(tmp_path / "e.zarr")
    z = zarr.create_array(path, shape=x.shape, chunks=(100, 384), dtype=dtype,  # last chunk partial
                          serializer=SpherecodecZarrCodec(params={"chunk_rows": 32}), compressors=None)
    z[:] = x
    back = zarr.open_array(path, mode="r")  # a fresh reader: metadata names the codec
    assert back.metadata.codecs[0] == SpherecodecZarrCodec(params={"chunk_rows": 32})
    assert same_bits(back[:], x)
    assert same_bits(back[95:105], x[95:105])  # rows across two chunks
    chunk = (tmp_path / "e.zarr" / "c" / "1" / "0").read_bytes()
    assert same_bits(spherecodec.decode(chunk), x[100:200])  # each chunk is a plain blob
    stored = sum(p.stat().st_size for p in (tmp_path / "e.zarr" / "c").rglob("*") if p.is_file())
    if dtype == "float32":
        assert stored < x.nbytes


def test_partial_writes_update_single_chunks(tmp_path):
    x = SENTENCES.copy()
    z = zarr.create_array(zarr.storage.MemoryStore(), shape=x.shape, chunks=(128, 384), dtype="float32",
                          serializer=SpherecodecZarrCodec(), compressors=None)
    z[:] = x
    x[200:210] = -x[200:210]
    z[200:210] = x[200:210]
    assert same_bits(z[:], x)


def test_unsupported_dtype_is_refused_when_the_array_is_made():
    with pytest.raises(spherecodec.UnsupportedError, match="int32"):
        zarr.create_array(zarr.storage.MemoryStore(), shape=(10, 4), chunks=(5, 4), dtype="int32",
                          serializer=SpherecodecZarrCodec(), compressors=None)


def test_bad_configuration_is_refused():
    with pytest.raises(spherecodec.UnsupportedError):
        SpherecodecZarrCodec(codec="nope")
    with pytest.raises(ValueError):
        SpherecodecZarrCodec.from_dict({"name": "spherecodec", "configuration": {"params": {"mantissa_bits": 9}}})


def _run_example(name, *args):
    saved = sys.argv
    try:
        sys.argv = [name, *map(str, args)]
        namespace = runpy.run_path(str(ROOT / "examples" / name), run_name="example")
        return namespace["main"](sys.argv)
    finally:
        sys.argv = saved


def test_zarr_example_runs(tmp_path, capsys):
    assert _run_example("zarr_example.py", tmp_path / "emb.zarr") == 0
    assert "bit-exact" in capsys.readouterr().out
    assert (tmp_path / "emb.zarr" / "zarr.json").exists()


def test_dask_example_runs_on_a_cluster_of_two_worker_processes(tmp_path, capsys):
    # a real dask.distributed LocalCluster: 2 worker processes, tasks and data pickled between them
    namespace = runpy.run_path(str(ROOT / "examples" / "dask_zarr_example.py"), run_name="example")
    assert namespace["main"](["10000", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "in 2 chunks, 2 dask workers, verified bit-exact" in out
    assert "Parquet dataset, 10000 rows in 2 files" in out and out.count("verified bit-exact") == 2
    # what the workers wrote is what this process reads: every bit, both stores
    source = np.load(tmp_path / "vectors.npy")
    assert same_bits(zarr.open_array(str(tmp_path / "vectors.zarr"), mode="r")[:], source)
    back = sca.read_parquet(tmp_path / "docs-sphc")
    assert back.column("embedding").combine_chunks().flatten().to_numpy().tobytes() == source.tobytes()
    assert set(sca.parquet_info(tmp_path / "docs-sphc" / "part-00001.parquet")["columns"]) == {"embedding"}
