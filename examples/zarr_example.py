"""Store 2-D embeddings in zarr v3 with spherecodec, in row chunks, and read them back bit-exactly.

Usage: python examples/zarr_example.py [STORE_DIR]   (default: a temporary directory, removed at the end)

Needs the ``zarr`` extra: pip install "spherecodec[zarr]".
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import zarr

from spherecodec.datasets import load_sample
from spherecodec.integrations.zarr import SpherecodecZarrCodec


def main(argv):
    if len(argv) > 1:
        return store_and_read_back(Path(argv[1]))
    with tempfile.TemporaryDirectory() as tmp:  # removed on the way out, even on an error
        return store_and_read_back(Path(tmp) / "embeddings.zarr")


def store_and_read_back(store_dir):
    """Write the bundled sample into a zarr v3 array at ``store_dir`` and check it reads back."""
    x = load_sample()  # 2000 x 384 real MiniLM sentence embeddings, float32

    # chunks of whole rows: each chunk is one spherecodec blob of 500 vectors
    z = zarr.create_array(store=str(store_dir), shape=x.shape, chunks=(500, x.shape[1]), dtype=x.dtype,
                          serializer=SpherecodecZarrCodec(codec="exact"), compressors=None, overwrite=True)
    z[:] = x

    # a reader needs nothing but zarr and spherecodec installed: the codec is found by name
    back = zarr.open_array(str(store_dir), mode="r")
    y = back[:]
    assert y.dtype == x.dtype and y.shape == x.shape
    assert (y.view(np.uint32) == x.view(np.uint32)).all(), "round trip is not bit-exact"
    assert (back[1234:1240].view(np.uint32) == x[1234:1240].view(np.uint32)).all()

    stored = sum(p.stat().st_size for p in store_dir.rglob("*") if p.is_file() and p.name != "zarr.json")
    print(f"{x.shape[0]} x {x.shape[1]} float32 in {store_dir}: {x.nbytes} -> {stored} bytes "
          f"(ratio {x.nbytes / stored:.3f}), read back bit-exact")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
