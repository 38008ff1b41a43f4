"""The spherical-coordinate kernels: libm-free sin/cos within 1 ulp, the transform pair."""

import numpy as np
import pytest

from spherecodec.kernels import spherical as ks


def ulp_distance(a, b):
    """Distance between float64 arrays in units in the last place (0 for equal bits)."""
    ai = a.view(np.int64).copy()
    bi = b.view(np.int64).copy()
    # map the sign-magnitude bit patterns onto a monotonic integer line
    ai[ai < 0] = np.int64(-(2 ** 63)) - ai[ai < 0]
    bi[bi < 0] = np.int64(-(2 ** 63)) - bi[bi < 0]
    return np.abs(ai - bi)


def own_sin_cos(x):
    x = np.ascontiguousarray(x, dtype=np.float64)
    s = np.empty_like(x)
    c = np.empty_like(x)
    ks.sin_cos(x, s, c)
    return s, c


def sample_domain(rng):
    """Arguments over the whole domain, denser where reduction is delicate."""
    parts = [
        rng.uniform(-np.pi / 4, np.pi / 4, 200_000),
        rng.uniform(-4 * np.pi, 4 * np.pi, 200_000),
        rng.uniform(-ks.SINCOS_DOMAIN, ks.SINCOS_DOMAIN, 200_000),
        np.exp(rng.uniform(np.log(1e-300), np.log(ks.SINCOS_DOMAIN), 100_000)) * rng.choice([-1, 1], 100_000),
    ]
    # the doubles nearest to multiples of pi/2 (the worst cancellation in the reduction)
    k = np.arange(-(2 ** 20) + 2, 2 ** 20 - 2, 97, dtype=np.float64)
    near = k * (np.pi / 2)
    parts += [near, np.nextafter(near, np.inf), np.nextafter(near, -np.inf)]
    x = np.concatenate(parts)
    return x[np.abs(x) <= ks.SINCOS_DOMAIN]


def test_sin_cos_within_one_ulp_of_numpy_over_the_domain():
    x = sample_domain(np.random.default_rng(1))
    s, c = own_sin_cos(x)
    assert ulp_distance(s, np.sin(x)).max() <= 1
    assert ulp_distance(c, np.cos(x)).max() <= 1


def test_sin_cos_special_arguments():
    tiny = np.array([0.0, -0.0, 5e-324, -5e-324, 1e-310, 1e-20, -1e-200])
    s, c = own_sin_cos(tiny)
    assert (s.view(np.int64) == tiny.view(np.int64)).all()  # sin x = x, sign of zero kept
    assert (c == 1.0).all()
    bad = np.array([np.nan, np.inf, -np.inf, ks.SINCOS_DOMAIN * 1.01, -1e300])
    s, c = own_sin_cos(bad)
    assert np.isnan(s).all() and np.isnan(c).all()


def test_sin_cos_is_reproducible_and_odd_even():
    x = np.random.default_rng(2).uniform(-100, 100, 10_000)
    s1, c1 = own_sin_cos(x)
    s2, c2 = own_sin_cos(-x)
    assert (s1.view(np.int64) == (-s2).view(np.int64)).all()
    assert (c1.view(np.int64) == c2.view(np.int64)).all()
    s3, c3 = own_sin_cos(x.copy())
    assert (s3.view(np.int64) == s1.view(np.int64)).all() and (c3.view(np.int64) == c1.view(np.int64)).all()


def test_arcsin_is_accurate():
    t = np.concatenate([np.random.default_rng(3).uniform(-1, 1, 100_000),
                        [-1.0, 1.0, 0.0, 0.5, -0.5, np.nextafter(0.5, 1), 1e-300]])
    out = np.empty_like(t)
    ks.arcsin(t, out)
    assert np.abs(out - np.arcsin(t)).max() <= 4.5e-16


def reference_forward(x):
    """Angles by the textbook formulas, in plain numpy (float64)."""
    x = x.astype(np.float64)
    n, d = x.shape
    tails = np.sqrt(np.cumsum((x ** 2)[:, ::-1], axis=1)[:, ::-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(tails[:, :d - 2] > 0, x[:, :d - 2] / tails[:, :d - 2], 1.0)
    angles = np.empty((n, d - 1))
    angles[:, :d - 2] = np.arccos(np.clip(ratio, -1, 1))
    angles[:, d - 2] = np.arctan2(x[:, d - 1], x[:, d - 2])
    return tails[:, 0], angles


def reference_inverse(norms, angles):
    n, k = angles.shape
    out = np.empty((n, k + 1))
    rad = norms.astype(np.float64).copy()
    for j in range(k):
        out[:, j] = rad * np.cos(angles[:, j])
        rad = rad * np.sin(angles[:, j])
    out[:, k] = rad
    return out


@pytest.mark.parametrize("d", [2, 3, 7, 384])
def test_forward_matches_numpy_and_inverse_restores(d):
    rng = np.random.default_rng(d)
    x = rng.standard_normal((200, d)).astype(np.float32) * rng.uniform(0.01, 100, (200, 1)).astype(np.float32)
    x[0] = 0.0                     # zero row
    x[1, d // 2:] = 0.0            # zero tail
    x[2, :-1] = 0.0                # only the last value
    norms = np.empty(200)
    angles = np.empty((200, d - 1))
    ks.spherical_forward(x, norms, angles)
    ref_norms, ref_angles = reference_forward(x)
    assert np.allclose(norms, ref_norms, rtol=1e-14, atol=0)
    assert np.allclose(angles, ref_angles, rtol=0, atol=1e-10)
    assert (angles[:, :d - 2] >= 0).all() and (angles[:, :d - 2] <= np.pi).all()
    assert (np.abs(angles[:, d - 2]) <= np.pi).all()
    out = np.empty((200, d))
    ks.spherical_inverse(norms, angles, out)
    scale = np.maximum(norms, 1e-300)[:, None]
    assert (np.abs(out - x) <= 1e-12 * scale).all()
    assert (out[0] == 0).all()
    # a zero tail follows an angle of 0 or pi: sin(pi) in doubles leaves ~1e-16 of the norm
    assert (np.abs(out[1, d // 2:]) <= 1e-15 * norms[1]).all()
    # the libm-free inverse agrees with numpy's sin/cos to a few ulps of the norm
    ref = reference_inverse(norms, angles)
    assert (np.abs(out - ref) <= 4 * np.finfo(np.float64).eps * scale).all()
