"""Write the golden frames of tests/test_frames.py (tests/data/golden-frames/).

An exact dictionary trained on the first 256 rows of the tests' MiniLM sample, and the
frames of 8 other rows (plus one with special values) as written today. Run once when the
frame format is created; never again for the same format (the test holds later builds to
these bytes).
"""

from pathlib import Path

import numpy as np

import spherecodec

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "golden-frames"


def main():
    sample = np.load(ROOT / "tests" / "data" / "minilm-sentences-512.npy")
    d = spherecodec.train_dictionary(sample[:256])
    rows = sample[300:309].copy()
    rows[8, ::41] = np.array([0x7FC00001, 0xFF800000, 0x80000000, 0x00000001, 0x7F7FFFFF, 0xFFC12345, 0, 0x00400000,
                              0x7F800001, 0x3F800000], dtype=np.uint32).view(np.float32)
    many = spherecodec.encode_many(rows, dictionary=d)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "minilm-exact.sphd").write_bytes(d.to_bytes())
    np.save(OUT / "minilm-rows.npy", rows)
    (OUT / "minilm-rows.frames").write_bytes(b"".join(many))
    np.save(OUT / "minilm-rows.lengths.npy", np.array([len(f) for f in many], dtype=np.int64))


if __name__ == "__main__":
    main()
