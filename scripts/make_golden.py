"""Write the golden blobs that pin the byte format: tests/data/golden/<codec>/NAME.sphc.

Each blob comes with ``NAME.npy``, the array it must decode to, bit for bit. For lossy
codecs, ``NAME.npy`` is the decoded output and ``NAME.input.npy`` what was encoded (the
exact codec's output is its input, so it ships no ``.input.npy``). ``tests/test_golden.py``
decodes every blob it finds there and re-encodes the inputs to check that today's encoder
still writes the same bytes.

Run this only when the format changes on purpose (a new format version): the golden blobs
exist to catch changes nobody meant. Blobs are encoded with ``threads=1`` (the bytes never
depend on it; the test checks that too).

Usage: python scripts/make_golden.py [CASE ...]   (default: every case)
"""

import sys
from pathlib import Path

import ml_dtypes
import numpy as np

import spherecodec

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden"
SAMPLE = ROOT / "tests" / "data" / "minilm-sentences-512.npy"


def _specials(dtype):
    """Every kind of special float of ``dtype`` (NaN payloads, signalling NaNs, infinities,
    signed zeros, subnormals, extreme normals), from bit patterns."""
    utype, exp_bits, mant = {np.float16: (np.uint16, 5, 10), np.float32: (np.uint32, 8, 23),
                             np.float64: (np.uint64, 11, 52)}[dtype]
    sign = 1 << (exp_bits + mant)
    inf = ((1 << exp_bits) - 1) << mant
    quiet = 1 << (mant - 1)
    top = (1 << mant) - 1
    patterns = [0, sign, inf, inf | sign, inf | quiet, inf | quiet | sign, inf | quiet | 1,
                inf | quiet | (0x5A5A5A5A5A5A5 & (quiet - 1)), inf | 1, inf | sign | 1,
                inf | (0x2A5A5A5A5A5A5 & (quiet - 1)), inf | top, inf | top | sign, 1, 1 | sign,
                top, top | sign, 1 << mant, (1 << mant) | sign, inf - 1, (inf - 1) | sign,
                ((1 << (exp_bits - 1)) - 1) << mant, (((1 << (exp_bits - 1)) - 1) << mant) | sign]
    return np.array(patterns, dtype=np.uint64).astype(utype).view(dtype)


def _mixed(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 0.05).astype(dtype)
    flat = x.reshape(-1)
    k = max(1, flat.size // 20)
    flat[rng.integers(0, flat.size, size=k)] = rng.choice(_specials(dtype), k)
    return x


def _sample(rows, dim):
    return np.ascontiguousarray(np.load(SAMPLE)[:rows, :dim])


def _shapes():
    """Row blocks of 12 (one chunk each): bfloat16 upcast, float16 upcast, sparse with
    specials, float16 values among zeros, all -0.0, every other row zero."""
    x = _sample(72, 64)
    x[:12] = x[:12].astype(ml_dtypes.bfloat16).astype(np.float32)
    x[12:24] = x[12:24].astype(np.float16).astype(np.float32)
    sparse = x[24:36].copy()
    sparse[np.arange(sparse.size).reshape(sparse.shape) % 7 != 0] = 0.0
    sparse.reshape(-1)[[1, 8, 15]] = _specials(np.float32)[[2, 6, 13]]
    x[24:36] = sparse
    x[36:48] = np.where(np.arange(12 * 64).reshape(12, 64) % 3 == 0, 0.0, x[36:48].astype(np.float16))
    x[48:60] = -0.0
    x[61:72:2] = 0.0
    return x


def _random_bits(shape, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2**32, size=shape, dtype=np.uint32).view(np.float32)


# name -> (codec, input array, parameters)
CASES = {
    "exact": {
        "f32_sample": lambda: (_sample(64, 128), {"chunk_rows": 24}),
        "f32_specials": lambda: (np.tile(_specials(np.float32), (6, 1)), {"chunk_rows": 4}),
        "f64_mixed": lambda: (_mixed((20, 33), np.float64, 1), {"chunk_rows": 8}),
        "f16_mixed": lambda: (_mixed((24, 40), np.float16, 2), {"chunk_rows": 10}),
        "f32_1d": lambda: (_sample(1, 100).reshape(-1), {}),
        "f32_3d": lambda: (_sample(12, 17).reshape(3, 4, 17), {"chunk_rows": 5}),
        "f64_scalar": lambda: (np.array(-np.pi), {}),
        "f32_empty": lambda: (np.zeros((0, 8), np.float32), {}),
        "f32_constriction": lambda: (_sample(40, 128), {"entropy": "constriction", "chunk_rows": 16}),
        "f32_stored": lambda: (np.concatenate([_random_bits((16, 64), 3), _sample(16, 64)]),
                               {"chunk_rows": 16}),
        "f32_mantissa0": lambda: (_sample(16, 64), {"mantissa_bits": 0}),
        "f16_mantissa6": lambda: (_sample(16, 64).astype(np.float16), {"mantissa_bits": 6}),
        # 16,426 values: one stream in the 32-lane layout (entropy backend 2), with a tail step
        "f32_wide": lambda: (_sample(43, 382), {}),
        # chunk modes 4 (zero low bits: was bfloat16, was float16), 5 (sparse), 6 (constant)
        "f32_shapes": lambda: (_shapes(), {"chunk_rows": 12}),
        "bf16_sample": lambda: (_sample(40, 96).astype(ml_dtypes.bfloat16), {"chunk_rows": 16}),
        # 65,704 values: one stream in the 64-lane layout (entropy backend 3), with a tail step
        "bf16_wide64": lambda: (_sample(172, 382).astype(ml_dtypes.bfloat16), {}),
        # small blobs (one chunk, default codec: container's one-call path): 12-bit tables,
        # 8 lanes (1,536 values) and 32 lanes (8,280 values, a tail step: short wide streams)
        "f32_small": lambda: (_sample(8, 192), {}),
        "f32_small_wide": lambda: (_sample(23, 360), {}),
    },
}


def write_case(codec, name, make):
    """Encode one case and write NAME.sphc, NAME.npy (and NAME.input.npy when lossy)."""
    array, params = make()
    blob = spherecodec.encode(array, codec, threads=1, **params)
    decoded = spherecodec.decode(blob)
    folder = GOLDEN / codec
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.sphc").write_bytes(blob)
    np.save(folder / f"{name}.npy", decoded)
    lossless = (decoded.dtype == array.dtype and decoded.shape == array.shape
                and decoded.tobytes() == np.ascontiguousarray(array).tobytes())
    if codec == "exact":
        assert lossless, name
    if not lossless:
        np.save(folder / f"{name}.input.npy", array)
    return len(blob)


def main(argv):
    wanted = set(argv[1:])
    for codec, cases in CASES.items():
        for name, make in cases.items():
            if not wanted or name in wanted:
                size = write_case(codec, name, make)
                print(f"{codec}/{name}.sphc: {size} bytes")
    total = sum(p.stat().st_size for p in GOLDEN.rglob("*") if p.is_file())
    print(f"golden data: {total} bytes")


if __name__ == "__main__":
    main(sys.argv)
