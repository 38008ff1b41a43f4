"""Write the golden frames of tests/test_frames.py (tests/data/golden-frames/).

An exact dictionary trained on the first 256 rows of the tests' MiniLM sample, and the
frames of 8 other rows (plus one with special values) as written today; then frames of
the kinds added later (docs/format.md 5.2): constant and zero-low-bits exact frames with
the same dictionary, and a rabitq dictionary (2 bits) with the frames of 6 rows and what
they decode to; bfloat16 frames (0xE8-0xEB) of 4 rows with the exact dictionary. Writes
only the files that are missing: each set is made once, when its
frame kinds are created, and the test holds later builds to those bytes.
"""

from pathlib import Path

import ml_dtypes
import numpy as np

import spherecodec

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "golden-frames"


def _write_frames(stem, many):
    (OUT / f"{stem}.frames").write_bytes(b"".join(many))
    np.save(OUT / f"{stem}.lengths.npy", np.array([len(f) for f in many], dtype=np.int64))


def exact_rows(sample, d):
    """The first set: plain exact frames (kinds 0xE0, 0xE1)."""
    rows = sample[300:309].copy()
    rows[8, ::41] = np.array([0x7FC00001, 0xFF800000, 0x80000000, 0x00000001, 0x7F7FFFFF, 0xFFC12345, 0, 0x00400000,
                              0x7F800001, 0x3F800000], dtype=np.uint32).view(np.float32)
    (OUT / "minilm-exact.sphd").write_bytes(d.to_bytes())
    np.save(OUT / "minilm-rows.npy", rows)
    _write_frames("minilm-rows", spherecodec.encode_many(rows, dictionary=d))


def shape_rows(sample, d):
    """Constant (0xE2) and zero-low-bits (0xE3) exact frames: zeros, a constant, a row that
    was bfloat16, one that was float16, one truncated to 3 zero bits, one to 20."""
    bits = sample[310:314].view(np.uint32)
    rows = np.stack([np.zeros(384, np.float32), np.full(384, -0.75, np.float32),
                     (bits[0] & np.uint32(0xFFFF0000)).view(np.float32),
                     sample[311].astype(np.float16).astype(np.float32),
                     (bits[2] & np.uint32(0xFFFFFFF8)).view(np.float32),
                     (bits[3] & np.uint32(0xFFF00000)).view(np.float32)])
    np.save(OUT / "minilm-shapes.npy", rows)
    _write_frames("minilm-shapes", spherecodec.encode_many(rows, dictionary=d))


def rabitq_rows(sample):
    """rabitq row frames (0xE5): the dictionary, 6 rows, their frames and decoded rows."""
    d = spherecodec.train_dictionary(sample[:256], "rabitq", bits=2, seed=3)
    rows = sample[320:326]
    many = spherecodec.encode_many(rows, dictionary=d)
    (OUT / "minilm-rabitq.sphd").write_bytes(d.to_bytes())
    np.save(OUT / "minilm-rabitq-rows.npy", rows)
    _write_frames("minilm-rabitq-rows", many)
    np.save(OUT / "minilm-rabitq-decoded.npy", spherecodec.decode_many(many, dictionary=d))


def bfloat16_rows(sample, d):
    """bfloat16 exact frames: 3 rows (special values in one), and a zero row."""
    rows = np.zeros((4, 384), dtype=ml_dtypes.bfloat16)
    rows[:3] = sample[330:333].astype(ml_dtypes.bfloat16)
    rows.view(np.uint16)[1, ::50] = [0x7FC1, 0xFF80, 0x8000, 0x0001, 0x7F7F, 0xFFA5, 0x0000, 0x3F80]
    np.save(OUT / "minilm-bfloat16.npy", rows.view(np.uint16))  # .npy has no bfloat16: the bits
    _write_frames("minilm-bfloat16", spherecodec.encode_many(rows, dictionary=d))


def main():
    sample = np.load(ROOT / "tests" / "data" / "minilm-sentences-512.npy")
    OUT.mkdir(parents=True, exist_ok=True)
    d = spherecodec.train_dictionary(sample[:256])
    if not (OUT / "minilm-rows.frames").exists():
        exact_rows(sample, d)
    if not (OUT / "minilm-shapes.frames").exists():
        shape_rows(sample, d)
    if not (OUT / "minilm-rabitq-rows.frames").exists():
        rabitq_rows(sample)
    if not (OUT / "minilm-bfloat16.frames").exists():
        bfloat16_rows(sample, d)


if __name__ == "__main__":
    main()
