"""Compress a larger-than-memory .npy into zarr in parallel with dask, then check it.

The .npy is memory-mapped: dask reads it one block of rows at a time, each worker
compresses its blocks into zarr chunks (one spherecodec blob per chunk), and no step
holds the whole array. The same code runs on a cluster: start a ``dask.distributed``
Client pointing at it and write to a store every worker can reach (S3, GCS, a shared
file system) -- spherecodec and zarr only need to be installed on the workers.

Usage: python examples/dask_zarr_example.py [ROWS] [WORKDIR]
(default 200,000 rows x 384 = 307 MB, in a temporary directory)

Needs the ``zarr`` extra: pip install "spherecodec[zarr]".
"""

import sys
import tempfile
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import zarr

from spherecodec.datasets import load_sample
from spherecodec.integrations.zarr import SpherecodecZarrCodec

DIM = 384
CHUNK_ROWS = 8192  # 12 MB of float32 per zarr chunk and per dask block


def make_npy(path, rows):
    """Write a .npy of ``rows`` embedding-like vectors block by block (never all in memory)."""
    base = load_sample()
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, DIM))
    rng = np.random.default_rng(0)
    for lo in range(0, rows, CHUNK_ROWS):
        n = min(CHUNK_ROWS, rows - lo)
        block = base[rng.integers(0, len(base), n)] + rng.standard_normal((n, DIM), dtype=np.float32) * 0.01
        out[lo:lo + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    out.flush()
    del out


def main(argv):
    rows = int(argv[1]) if len(argv) > 1 else 200_000
    workdir = Path(argv[2]) if len(argv) > 2 else Path(tempfile.mkdtemp())
    src, store = workdir / "vectors.npy", workdir / "vectors.zarr"
    make_npy(src, rows)

    # lazy: a dask array over the memory map, one block per zarr chunk
    x = da.from_array(np.load(src, mmap_mode="r"), chunks=(CHUNK_ROWS, DIM))
    z = zarr.create_array(store=str(store), shape=x.shape, chunks=(CHUNK_ROWS, DIM), dtype=np.float32,
                          serializer=SpherecodecZarrCodec(codec="exact"), compressors=None, overwrite=True)
    # blocks and chunks line up, so workers never write the same chunk: no lock needed
    with dask.config.set(scheduler="threads"):
        da.store(x, z, lock=False)

    # check block by block, bit for bit, again without loading everything
    source = np.load(src, mmap_mode="r")
    back = zarr.open_array(str(store), mode="r")
    for lo in range(0, rows, CHUNK_ROWS):
        a = np.asarray(source[lo:lo + CHUNK_ROWS])
        b = back[lo:lo + CHUNK_ROWS]
        assert (a.view(np.uint32) == b.view(np.uint32)).all(), f"rows {lo}.. differ"

    stored = sum(p.stat().st_size for p in store.rglob("*") if p.is_file() and p.name != "zarr.json")
    print(f"{rows} x {DIM} float32 ({src.stat().st_size / 1e6:.0f} MB .npy) -> zarr {stored / 1e6:.0f} MB "
          f"(ratio {rows * DIM * 4 / stored:.3f}) in {x.numblocks[0]} chunks, verified bit-exact")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
