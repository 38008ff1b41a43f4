"""Write the golden blobs of the ``sphere`` and ``grid`` codecs (tests/data/golden/<codec>/).

Each case is ``NAME.sphc`` (the blob), ``NAME.npy`` (what it decodes to, bit for bit) and
``NAME.input.npy`` (what was encoded, so tests/test_golden.py can check that today's
encoder writes the same bytes). Run only when the byte format changes on purpose, and keep
the blobs of earlier formats decode-only (without .input.npy), as the sphere codec's
format0_*.sphc (latitude grids, written before format 1) are kept.

Usage: python scripts/make_sphere_golden.py
"""

from pathlib import Path

import numpy as np

import spherecodec

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden"
SAMPLE = ROOT / "tests" / "data" / "minilm-sentences-512.npy"
RAW = ROOT / "tests" / "data" / "minilm-tokens-raw-256.npy"


def awkward():
    """Rows every bounded codec must survive: zero row, zero tail, one value, NaN, inf,
    a norm beyond float32, subnormals, a big single value, plain rows."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((10, 12)).astype(np.float32) * np.float32(0.3)
    x[0] = 0.0
    x[1, 4:] = 0.0
    x[2, :-1] = 0.0
    x[3, 2] = np.nan
    x[4, 7] = -np.inf
    x[5] = np.float32(2.0e38)
    x[6] = np.float32(1e-42)
    x[7, 0] = np.float32(-7.5)
    return x


def cases():
    sample = np.load(SAMPLE)
    raw = np.load(RAW)
    yield "sphere", "minilm_default", sample[:16], {}
    yield "sphere", "minilm_1e-3", sample[16:32], {"max_abs_error": 1e-3}
    yield "sphere", "raw_tokens_jzip_bound", raw[:12], {"max_abs_error": 7.4505806e-08}
    yield "sphere", "awkward_chunked", awkward(), {"max_abs_error": 1e-5, "chunk_rows": 3}
    yield "sphere", "dim1", np.linspace(-2, 2, 9, dtype=np.float32).reshape(9, 1), {"max_abs_error": 1e-4}
    yield "sphere", "dim2_3d", sample[:12, :2].reshape(3, 4, 2), {"max_abs_error": 1e-6}
    yield "grid", "minilm_1e-5", sample[:16], {"max_abs_error": 1e-5}
    yield "grid", "awkward_chunked", awkward(), {"max_abs_error": 2.0 ** -23, "chunk_rows": 4}


def main():
    for codec, name, arr, params in cases():
        folder = GOLDEN / codec
        folder.mkdir(parents=True, exist_ok=True)
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        blob = spherecodec.encode(arr, codec, threads=1, **params)
        out = spherecodec.decode(blob)
        (folder / f"{name}.sphc").write_bytes(blob)
        np.save(folder / f"{name}.npy", out)
        np.save(folder / f"{name}.input.npy", arr)
        print(f"{codec}/{name}: {arr.shape} -> {len(blob)} bytes")


if __name__ == "__main__":
    main()
