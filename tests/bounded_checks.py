"""Checks shared by the tests of the error-bounded codecs (``sphere``, ``grid``)."""

import numpy as np
from hypothesis import strategies as st

import spherecodec
from common import bits

#: bounds the tests sweep: the default, jzip's largest error on MiniLM, looser ones
BOUNDS = (2.0 ** -23, 7.4505806e-08, 1e-6, 1e-4, 1e-3, 0.25)


def check_bound(arr, codec, max_abs_error, **params):
    """Encode, decode, and assert every component is within the bound; return the blob.

    Finite values must come back within ``max_abs_error``; NaN and infinities bit for bit.
    Also checks that the bytes do not depend on the number of threads and that
    ``decode_rows`` gives the same rows.
    """
    arr = np.asarray(arr, dtype=np.float32)
    blob = spherecodec.encode(arr, codec, threads=1, max_abs_error=max_abs_error, **params)
    assert spherecodec.encode(arr, codec, threads=2, max_abs_error=max_abs_error, **params) == blob
    out = spherecodec.decode(blob, threads=2)
    assert out.dtype == np.float32 and out.shape == arr.shape
    finite = np.isfinite(arr)
    with np.errstate(invalid="ignore"):
        err = np.abs(out.astype(np.float64) - arr.astype(np.float64))
    assert (err[finite] <= max_abs_error).all(), f"max error {err[finite].max()} > {max_abs_error}"
    assert (bits(out)[~finite] == bits(arr)[~finite]).all(), "non-finite values changed"
    if arr.ndim == 2 and arr.shape[0] > 2:
        mid = arr.shape[0] // 2
        rows = spherecodec.decode_rows(blob, 1, mid + 1)
        assert (bits(rows) == bits(out[1:mid + 1])).all()
    return blob


@st.composite
def awkward_arrays(draw, max_rows=12, max_dim=40):
    """Float32 arrays mixing the rows the bounded codecs must survive.

    Unit and non-unit norms, sparse rows, zero rows, zero tails, huge and tiny norms,
    NaN and infinities, dimension 1 and 2.
    """
    n = draw(st.integers(1, max_rows))
    d = draw(st.integers(1, max_dim))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    kinds = draw(st.lists(st.sampled_from(
        ["unit", "scaled", "sparse", "zero", "zero_tail", "huge", "tiny", "nonfinite",
         "one_hot", "subnormal", "big_values"]), min_size=n, max_size=n))
    for i, kind in enumerate(kinds):
        row = x[i]
        if kind == "unit":
            row /= max(np.linalg.norm(row), 1e-30)
        elif kind == "scaled":
            row *= 10.0 ** rng.uniform(-3, 2)
        elif kind == "sparse":
            row[rng.random(d) < 0.8] = 0.0
        elif kind == "zero":
            row[:] = 0.0
        elif kind == "zero_tail":
            row[rng.integers(0, d + 1):] = 0.0
        elif kind == "huge":
            row *= 10.0 ** rng.uniform(20, 37)
        elif kind == "tiny":
            row *= 10.0 ** rng.uniform(-40, -20)
        elif kind == "nonfinite":
            row[rng.integers(0, d)] = rng.choice([np.nan, np.inf, -np.inf])
        elif kind == "one_hot":
            row[:] = 0.0
            row[rng.integers(0, d)] = rng.choice([-1.0, 1.0]) * 10.0 ** rng.uniform(-3, 3)
        elif kind == "subnormal":
            row *= 1e-42
        elif kind == "big_values":
            row[rng.integers(0, d)] = rng.choice([-1.0, 1.0]) * 3.0e38
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(np.float32)
