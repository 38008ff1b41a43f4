"""Write the golden blobs of the quantization codecs: tests/data/golden/<codec>/NAME.sphc
and NAME.npy (its decoded float32 array), from the shipped real sample.

Run once when the format is settled; tests check that every later build decodes these
bytes to the same bits. Rerunning overwrites them (only do so on a format change).
"""

import sys
from pathlib import Path

import numpy as np

import spherecodec

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden"

CASES = [
    ("fp16", "sentences-16", {}),
    ("fp16", "sentences-16-entropy", {"entropy": True}),
    ("bf16", "sentences-16", {}),
    ("bf16", "sentences-16-entropy", {"entropy": True}),
    ("int8", "sentences-16", {}),
    ("int8", "sentences-32-symmetric-entropy", {"symmetric": True, "entropy": True}),
    ("int4", "sentences-16-clip", {"clip": 99.0}),
    ("int4", "sentences-16-entropy", {"entropy": True}),
    ("binary", "sentences-16", {}),
    ("binary", "sentences-16-sign-entropy", {"center": False, "entropy": True}),
    ("pq", "sentences-16-m48-nbits4", {"m": 48, "nbits": 4, "niter": 10}),
    ("pq", "sentences-16-m24-nbits3-entropy", {"m": 24, "nbits": 3, "niter": 10, "entropy": True}),
    ("rabitq", "sentences-16-bits1", {"bits": 1}),
    ("rabitq", "sentences-16-bits4-seed7-entropy", {"bits": 4, "seed": 7, "entropy": True}),
]


def main(codecs=None):
    """Write the golden files of ``codecs`` (names; None: every case)."""
    x = np.load(ROOT / "tests" / "data" / "minilm-sentences-512.npy")
    for codec, name, params in CASES:
        if codecs is not None and codec not in codecs:
            continue
        # fitted on the whole sample, 16 rows coded: small files with real fitted state
        fitted = spherecodec.fit(codec, x, **params)
        # entropy-coded cases get one chunk, large enough for the coded mode to win
        rows = int(name.split("-")[1])
        blob = spherecodec.encode(x[:rows], fitted, chunk_rows=rows if params.get("entropy") else 7)
        out = GOLDEN / codec
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.sphc").write_bytes(blob)
        np.save(out / f"{name}.npy", spherecodec.decode(blob))
        print(codec, name, len(blob))


if __name__ == "__main__":
    main(sys.argv[1:] or None)
