"""Round trips through the installed package, run from outside the checkout.

Usage: python installed_roundtrip.py VENV_DIR

Checks that ``spherecodec`` is imported from VENV_DIR (the installed wheel, not the source
tree), that the bundled sample ships and decodes, and that the exact codec gives every bit
back (special values included) while a lossy codec keeps its bound, with the kernels the wheel
compiled ahead of time.
"""

import sys
from pathlib import Path

import numpy as np

import spherecodec
from spherecodec.datasets import load_sample


def main(venv):
    where = Path(spherecodec.__file__).resolve()
    if Path(venv).resolve() not in where.parents:
        raise SystemExit(f"spherecodec imported from {where}, not from the installed wheel in {venv}")
    # the wheel carries the kernels compiled ahead of time for this host (setup.py)
    assert spherecodec.aot.status() == (True, "loaded"), spherecodec.aot.status()
    x = load_sample()
    assert x.shape == (2000, 384) and x.dtype == np.float32, (x.shape, x.dtype)
    specials = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -3.4e38], np.float32)
    x[:2, :8] = specials
    blob = spherecodec.encode(x)
    y = spherecodec.decode(blob)
    assert y.tobytes() == x.tobytes(), "exact round trip changed bits"
    rows = spherecodec.decode_rows(blob, 100, 200)
    assert rows.tobytes() == x[100:200].tobytes(), "decode_rows changed bits"
    close = spherecodec.decode(spherecodec.encode(x[2:], "grid", max_abs_error=1e-4))
    error = float(np.abs(close.astype(np.float64) - x[2:]).max())
    assert error <= 1e-4, error
    print(f"installed wheel at {where.parent}: exact {spherecodec.info(blob)['ratio']:.3f}x bit-exact, "
          f"decode_rows bit-exact, grid max abs error {error:.2e} <= 1e-4")


if __name__ == "__main__":
    main(sys.argv[1])
