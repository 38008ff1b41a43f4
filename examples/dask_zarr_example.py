"""Compress embeddings on a dask.distributed cluster, then check every bit.

Two jobs, both larger-than-memory safe:

1. a memory-mapped .npy into a zarr array: each task reads one block of rows and writes one
   compressed zarr chunk (one spherecodec blob), so no step holds the whole array;
2. a Parquet dataset (a directory of files with an id, a text and an embedding column) into
   a spherecodec Parquet dataset: one task per file, streamed a row group at a time.

By default the cluster is a ``LocalCluster`` of 2 worker processes on this machine. Give
``--scheduler tcp://HOST:8786`` to run the same code on a remote cluster; then WORKDIR must
be a path every worker reaches (a shared file system; for object stores give zarr an
``s3://...`` store), and spherecodec must be installed on the workers.

Usage: python examples/dask_zarr_example.py [ROWS] [WORKDIR] [--scheduler ADDRESS]
(default 200,000 rows x 384 = 307 MB, in a temporary directory)

Needs the ``zarr`` and ``arrow`` extras: pip install "spherecodec[zarr,arrow]".
"""

import argparse
import contextlib
import tempfile
from pathlib import Path

import dask.array as da
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr
from dask.distributed import Client, LocalCluster

from spherecodec import arrow as sca
from spherecodec.datasets import load_sample
from spherecodec.integrations.zarr import SpherecodecZarrCodec

DIM = 384
CHUNK_ROWS = 8192  # 12 MB of float32 per zarr chunk, dask block and Parquet file


class NpyRows:
    """Rows of a .npy file, memory-mapped afresh on each read.

    dask ships the array it reads to every worker; a ``np.memmap`` would be pickled as
    its whole contents, this object is pickled as its path.
    """

    def __init__(self, path):
        header = np.load(path, mmap_mode="r")
        self.path, self.shape, self.dtype, self.ndim = str(path), header.shape, header.dtype, header.ndim

    def __getitem__(self, key):
        return np.asarray(np.load(self.path, mmap_mode="r")[key])


def npy_to_zarr(src, store):
    """Compress the .npy ``src`` into a new zarr array at ``store`` on the current dask client."""
    x = da.from_array(NpyRows(src), chunks=(CHUNK_ROWS, DIM))
    z = zarr.create_array(store=str(store), shape=x.shape, chunks=(CHUNK_ROWS, DIM), dtype=np.float32,
                          serializer=SpherecodecZarrCodec(codec="exact"), compressors=None, overwrite=True)
    da.store(x, z, lock=False)  # blocks == chunks, so no two tasks write the same chunk
    return z


def parquet_dataset(client, src_dir, dst_dir):
    """Compress every ``*.parquet`` of ``src_dir`` into ``dst_dir``, one task per file."""
    dst_dir.mkdir(exist_ok=True)
    sources = sorted(src_dir.glob("*.parquet"))
    futures = client.map(sca.compress_parquet, sources, [dst_dir / p.name for p in sources],
                         columns=["embedding"], codec="exact", pure=False)
    return sum(client.gather(futures))


def make_inputs(workdir, rows):
    """A .npy of ``rows`` embedding-like vectors and the same rows as a Parquet dataset,
    written block by block (never all in memory)."""
    src, parquet_dir = workdir / "vectors.npy", workdir / "docs"
    parquet_dir.mkdir(exist_ok=True)
    base = load_sample()
    out = np.lib.format.open_memmap(src, mode="w+", dtype=np.float32, shape=(rows, DIM))
    rng = np.random.default_rng(0)
    for part, lo in enumerate(range(0, rows, CHUNK_ROWS)):
        n = min(CHUNK_ROWS, rows - lo)
        block = base[rng.integers(0, len(base), n)] + rng.standard_normal((n, DIM), dtype=np.float32) * 0.01
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[lo:lo + n] = block
        table = pa.table({"id": pa.array(np.arange(lo, lo + n, dtype=np.int64)),
                          "text": pa.array([f"document {i}" for i in range(lo, lo + n)]),
                          "embedding": pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1)), DIM)})
        pq.write_table(table, parquet_dir / f"part-{part:05d}.parquet")
    out.flush()
    del out
    return src, parquet_dir


def check_zarr(src, store):
    """Bit-exact, block by block; returns the stored chunk bytes."""
    source = np.load(src, mmap_mode="r")
    back = zarr.open_array(str(store), mode="r")
    for lo in range(0, source.shape[0], CHUNK_ROWS):
        a = np.asarray(source[lo:lo + CHUNK_ROWS])
        assert (a.view(np.uint32) == back[lo:lo + CHUNK_ROWS].view(np.uint32)).all(), f"rows {lo}.. differ"
    return sum(p.stat().st_size for p in store.rglob("*") if p.is_file() and p.name != "zarr.json")


def check_parquet(src_dir, dst_dir):
    """Every file reads back equal (vectors bit for bit); returns (plain bytes, compressed bytes)."""
    for plain in sorted(src_dir.glob("*.parquet")):
        a, b = pq.read_table(plain), sca.read_parquet(dst_dir / plain.name)
        assert a.column("id").equals(b.column("id")) and a.column("text").equals(b.column("text"))
        va = a.column("embedding").combine_chunks().flatten().to_numpy()
        vb = b.column("embedding").combine_chunks().flatten().to_numpy()
        assert va.tobytes() == vb.tobytes(), f"{plain.name}: vectors differ"
    size = lambda d: sum(p.stat().st_size for p in d.glob("*.parquet"))  # noqa: E731
    return size(src_dir), size(dst_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="?", type=int, default=200_000)
    parser.add_argument("workdir", nargs="?", type=Path)
    parser.add_argument("--scheduler", help="address of a running dask scheduler (default: a LocalCluster)")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp())
    workdir.mkdir(parents=True, exist_ok=True)
    src, parquet_dir = make_inputs(workdir, args.rows)

    with contextlib.ExitStack() as stack:
        if args.scheduler:
            client = stack.enter_context(Client(args.scheduler))
        else:
            cluster = stack.enter_context(LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                                       dashboard_address=None))
            client = stack.enter_context(Client(cluster))
        workers = len(client.scheduler_info()["workers"])
        npy_to_zarr(src, workdir / "vectors.zarr")
        rows = parquet_dataset(client, parquet_dir, workdir / "docs-sphc")

    stored = check_zarr(src, workdir / "vectors.zarr")
    print(f"{args.rows} x {DIM} float32 ({src.stat().st_size / 1e6:.0f} MB .npy) -> zarr {stored / 1e6:.0f} MB "
          f"(ratio {args.rows * DIM * 4 / stored:.3f}) in {-(-args.rows // CHUNK_ROWS)} chunks, "
          f"{workers} dask workers, verified bit-exact")
    plain, packed = check_parquet(parquet_dir, workdir / "docs-sphc")
    print(f"Parquet dataset, {rows} rows in {len(list(parquet_dir.glob('*.parquet')))} files: "
          f"{plain / 1e6:.1f} MB -> {packed / 1e6:.1f} MB, verified bit-exact")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
