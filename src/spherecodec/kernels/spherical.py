"""Spherical coordinates in float64: the forward transform, a libm-free inverse, and the
closed-loop quantizer of the ``sphere`` codec.

For a row ``x`` of ``d >= 2`` values with norm ``r``, the angles are
``theta_i = acos(x_i / ||x_i .. x_{d-1}||)`` for ``i < d - 2`` and
``theta_{d-2} = atan2(x_{d-1}, x_{d-2})``; the inverse is
``x_i = r sin(theta_0) .. sin(theta_{i-1}) cos(theta_i)``.

Everything a decoder computes (``sin_cos``, ``spherical_inverse``, ``sphere_reconstruct``)
uses only ``+ - * /`` and IEEE-754 double rounding, evaluated in a fixed order (no fastmath,
no libm), so every machine reproduces the same bits. The sine and cosine are FreeBSD's
(fdlibm) ``k_sin``/``k_cos`` polynomials after a Cody-Waite reduction by pi/2 in three
33-bit parts: below one ulp of error on ``|x| <= SINCOS_DOMAIN``.
"""

import numpy as np
from numba import njit

from .grid import KEY_BLOCK, _bitlen, scaled_code
from .rans_core import STATUS_CORRUPT, STATUS_OK

# Cody-Waite reduction (fdlibm e_rem_pio2.c): pio2_1, pio2_2, pio2_3 have 33 bits, so
# n * pio2_k is exact for |n| < 2**20; the *t constants are the remaining tails.
_INVPIO2 = 6.36619772367581382433e-01
_PIO2_1 = 1.57079632673412561417e+00
_PIO2_2 = 6.07710050630396597660e-11
_PIO2_3 = 2.02226624871116645580e-21
_PIO2_3T = 8.47842766036889956997e-32
_ROUND_MAGIC = 6755399441055744.0  # 1.5 * 2**52: (v + M) - M rounds v to an integer
#: |x| above which ``sin_cos`` returns NaN (n * pio2_1 must stay exact)
SINCOS_DOMAIN = 1647099.0  # a little below 2**20 * pi / 2

# k_sin.c / k_cos.c minimax coefficients on [-pi/4, pi/4]
_S1 = -1.66666666666666324348e-01
_S2 = 8.33333333332248946124e-03
_S3 = -1.98412698298579493134e-04
_S4 = 2.75573137070700676789e-06
_S5 = -2.50507602534068634195e-08
_S6 = 1.58969099521155010221e-10
_C1 = 4.16666666666666019037e-02
_C2 = -1.38888888888741095749e-03
_C3 = 2.48015872894767294178e-05
_C4 = -2.75573143513906633035e-07
_C5 = 2.08757232129817482790e-09
_C6 = -1.13596475577881948265e-11

# e_asin.c rational approximation (encoder only: its result is an initial guess)
_PS0 = 1.66666666666666657415e-01
_PS1 = -3.25565818622400915405e-01
_PS2 = 2.01212532134862925881e-01
_PS3 = -4.00555345006794114027e-02
_PS4 = 7.91534994289814532176e-04
_PS5 = 3.47933107596021167570e-05
_QS1 = -2.40339491173441421878e+00
_QS2 = 2.02094576023350569471e+00
_QS3 = -6.88283971605453293030e-01
_QS4 = 7.70381505559019352791e-02
_PIO2 = 1.5707963267948966

#: a decoded polar angle (latitude) may not exceed this; cos stays > 0 below it
PHI_LIMIT = 1.5707963267948966
# the encoder keeps |phi| below a slightly smaller bound so rounding never crosses PHI_LIMIT
_PHI_ENC = 1.5707963
#: bound on the decoded last angle (|theta| <= pi plus rounding)
THETA_LIMIT = 3.2


@njit(inline="always")
def _sincos(x):
    # branch-free so that loops over rows vectorise; every operation rounds once
    fn = (x * _INVPIO2 + _ROUND_MAGIC) - _ROUND_MAGIC
    n = np.int64(fn)
    # fdlibm's three rounds, always taken: x - n pi/2 = r - w to about 150 bits, where
    # e2 and e3 are the exact rounding errors of the two subtractions
    t = x - fn * _PIO2_1
    w = fn * _PIO2_2
    r = t - w
    e2 = (t - r) - w
    t = r
    w = fn * _PIO2_3
    r = t - w
    e3 = (t - r) - w
    w = fn * _PIO2_3T - (e3 + e2)
    y0 = r - w
    y1 = (r - y0) - w
    z = y0 * y0
    zz = z * z
    # sine kernel (k_sin.c, with tail y1)
    rs = _S2 + z * (_S3 + z * _S4) + z * zz * (_S5 + z * _S6)
    v = z * y0
    ks = y0 - ((z * (0.5 * y1 - v * rs) - y1) - v * _S1)
    # cosine kernel (k_cos.c)
    rc = z * (_C1 + z * (_C2 + z * _C3)) + zz * zz * (_C4 + z * (_C5 + z * _C6))
    hz = 0.5 * z
    wc = 1.0 - hz
    kc = wc + (((1.0 - wc) - hz) + (z * rc - y0 * y1))
    # quadrant n mod 4 by independent selects (a chain of ternaries stops vectorisation)
    odd = (n & 1) != 0
    bs = kc if odd else ks
    bc = ks if odd else kc
    s = -bs if (n & 2) != 0 else bs
    c = -bc if ((n + 1) & 2) != 0 else bc
    ok = abs(x) <= SINCOS_DOMAIN
    return (s if ok else np.nan), (c if ok else np.nan)


@njit(nogil=True, cache=True, error_model="numpy")
def sin_cos(x, sin_out, cos_out):
    """Deterministic sine and cosine of every element of ``x`` (float64 arrays).

    Below one ulp of error for ``|x| <= SINCOS_DOMAIN``; NaN outside and for NaN input.
    Uses only ``+ - * /``, so the bits are the same on every machine.
    """
    for i in range(x.size):
        s, c = _sincos(x[i])
        sin_out[i] = s
        cos_out[i] = c


@njit(inline="always")
def _asin(t):
    # fdlibm's asin without its extra-precision branch near |t| = 1 (error ~1e-16)
    a = abs(t)
    big = a > 0.5
    z = (1.0 - a) * 0.5 if big else a * a
    p = z * (_PS0 + z * (_PS1 + z * (_PS2 + z * (_PS3 + z * (_PS4 + z * _PS5)))))
    q = 1.0 + z * (_QS1 + z * (_QS2 + z * (_QS3 + z * _QS4)))
    w = p / q
    s = np.sqrt(z)
    res = (_PIO2 - 2.0 * (s + s * w)) if big else (a + a * w)
    return -res if t < 0 else res


@njit(nogil=True, cache=True, error_model="numpy")
def arcsin(t, out):
    """``asin`` of every element of ``t`` (|t| <= 1), accurate to ~2e-16 (encoder use only)."""
    for i in range(t.size):
        out[i] = _asin(t[i])


@njit(nogil=True, cache=True, error_model="numpy")
def spherical_forward(x, norms, angles):
    """Spherical coordinates of the rows of ``x`` (n, d), d >= 2, using libm.

    ``norms`` (n,) receives each row's norm, ``angles`` (n, d - 1) the angles: theta_i in
    [0, pi] for i < d - 2, theta_{d-2} in (-pi, pi]. A zero tail gives angle 0.
    """
    n, d = x.shape
    tail = np.empty(d, dtype=np.float64)
    for i in range(n):
        acc = 0.0
        for j in range(d - 1, -1, -1):
            v = np.float64(x[i, j])
            acc += v * v
            tail[j] = np.sqrt(acc)
        norms[i] = tail[0]
        for j in range(d - 2):
            if tail[j] > 0.0:
                c = np.float64(x[i, j]) / tail[j]
                angles[i, j] = np.arccos(min(1.0, max(-1.0, c)))
            else:
                angles[i, j] = 0.0
        angles[i, d - 2] = np.arctan2(np.float64(x[i, d - 1]), np.float64(x[i, d - 2]))


@njit(nogil=True, cache=True, error_model="numpy")
def spherical_inverse(norms, angles, out):
    """Rows ``out`` (n, d) from ``norms`` (n,) and ``angles`` (n, d - 1), without libm.

    ``out[i, j] = r sin(theta_0) .. sin(theta_{j-1}) cos(theta_j)``, the last value with the
    sine of the last angle; products in index order, so the result is reproducible.
    """
    n, d = out.shape
    for i in range(n):
        rad = np.float64(norms[i])
        for j in range(d - 1):
            s, c = _sincos(angles[i, j])
            out[i, j] = rad * c
            if j == d - 2:
                out[i, d - 1] = rad * s
            rad = rad * s


# --- the sphere codec's closed-loop quantizer --------------------------------------------
#
# Row i keeps a running tail radius R (starting at its stored norm). Column j's value is the
# latitude phi = asin(x_j / R), put on the grid of step ``step / R``: the integer
# q = round(phi R / step) is what gets coded, and both sides compute
#   phi^ = (q * step) * (1 / R),   x^_j = R sin(phi^),   R <- R cos(phi^)
# (phi^ = 0 when R = 0).
# Every angle's step is worth the same Cartesian distance ``step``, whatever the tail, and
# the encoder quantizes against the decoder's own R, so errors do not accumulate.


_FLT_MAX = 3.4028234663852886e38


@njit(inline="always")
def _finite_or_zero(v):
    return v if abs(v) <= _FLT_MAX else 0.0


@njit(inline="always")
def _record(rows, i, j, xh, index, delta, cnt):
    d = rows.shape[1]
    index[cnt] = i * d + j
    delta[cnt] = np.uint32((np.int64(rows.view(np.uint32)[i, j]) - np.int64(np.float32(xh).view(np.uint32))) & 0xFFFFFFFF)


@njit(nogil=True, cache=True, error_model="numpy")
def sphere_quantize(xt, rows, radius, step, eps, q, scratch, index, delta, count):
    """Closed-loop quantization of the polar angles, column after column.

    ``xt`` (d, n) holds the values column-major (non-finite ones are coded as 0),
    ``radius`` (n,) the starting radii (updated in place to the tail radius R^ left for
    the last pair), ``q`` (d - 2, n) int64 receives the codes. Values the decoder would
    put beyond ``eps`` are appended to the exception arrays ``index`` (flat index into
    ``rows``) and ``delta`` (bits of ``rows`` minus bits of the decoded float32), with
    ``count[0]`` their number. Column-major, so that the loop over rows vectorises.
    """
    ncol, n = q.shape
    inv_step = 1.0 / step
    xh = scratch[0]
    flag = scratch[1]
    cnt = count[0]
    for j in range(ncol):
        anybad = False
        for i in range(n):
            rad = radius[i]
            pos = rad > 0.0
            inv = 1.0 / rad if pos else 0.0
            v = np.float64(xt[j, i])
            t = min(1.0, max(-1.0, _finite_or_zero(v) * inv))
            scale = rad * inv_step
            qq = np.rint(_asin(t) * scale)
            qmax = np.floor(_PHI_ENC * scale)
            # + 0.0 turns a rounded -0.0 into the +0.0 that the decoder's integer code gives
            qq = min(qmax, max(-qmax, qq)) + 0.0
            phi = (qq * step) * inv
            s, c = _sincos(phi)
            x32 = np.float32(rad * s)
            radius[i] = rad * c
            q[j, i] = np.int64(qq)
            bad = not (abs(np.float64(x32) - v) <= eps)
            xh[i] = x32
            flag[i] = 1.0 if bad else 0.0
            anybad |= bad
        if anybad:
            for i in range(n):
                if flag[i] != 0.0:
                    _record(rows, i, j, xh[i], index, delta, cnt)
                    cnt += 1
    count[0] = cnt


@njit(nogil=True, cache=True, error_model="numpy")
def sphere_reconstruct(q, radius, step, out_t):
    """The decoder's side of ``sphere_quantize``: values into ``out_t`` (d, n) float32.

    ``radius`` (n,) starts as the norms and ends as the tail radii. Returns a status:
    STATUS_CORRUPT when a code puts an angle outside [-PHI_LIMIT, PHI_LIMIT].
    """
    ncol, n = q.shape
    bad = False
    for j in range(ncol):
        for i in range(n):
            rad = radius[i]
            qq = np.float64(q[j, i])
            phi = (qq * step) * (1.0 / rad) if rad > 0.0 else 0.0
            bad |= not (abs(phi) <= PHI_LIMIT)
            bad |= (qq != 0.0) & (rad <= 0.0)
            s, c = _sincos(phi)
            out_t[j, i] = np.float32(rad * s)
            radius[i] = rad * c
    return STATUS_CORRUPT if bad else STATUS_OK


@njit(inline="always")
def _last_pair(rad, c, ql, step):
    rr = rad + c * step
    th = (ql * step) / rr if rr != 0.0 else 0.0
    s, co = _sincos(th)
    return rr * co, rr * s, th


@njit(nogil=True, cache=True, error_model="numpy")
def sphere_quantize_last(xt, rows, norms, radius, step, eps, c_out, ql_out, index, delta, count):
    """Code the last pair (a, b) of every row against the tail radius ``radius``.

    The decoder uses ``R~ = R^ + c step`` (the correction c absorbs the radius drift of the
    chain) and ``theta^ = (ql step) / R~``, then ``(R~ cos, R~ sin)``. The nearest codes
    are tried first, then their neighbours until both values are within ``eps``; what
    still misses goes to the exception arrays (see ``sphere_quantize``). Rows of norm 0
    (zero, or set aside by ``row_norms``) code the pair as (0, 0).
    """
    d = xt.shape[0]
    n = radius.size
    cnt = count[0]
    for i in range(n):
        av0 = np.float64(xt[d - 2, i])
        bv0 = np.float64(xt[d - 1, i])
        live = norms[i] > 0
        av = _finite_or_zero(av0) if live else 0.0
        bv = _finite_or_zero(bv0) if live else 0.0
        rad = radius[i]
        target = np.sqrt(av * av + bv * bv)
        c0 = np.rint((target - rad) / step)
        theta = np.arctan2(bv, av)
        best_c = c0
        best_ql = 0.0
        found = False
        for dc in (0.0, -1.0, 1.0):
            c = c0 + dc
            rr = rad + c * step
            ql0 = np.rint(theta * rr / step)
            for dq in (0.0, -1.0, 1.0):
                ql = ql0 + dq
                xa_, xb_, th = _last_pair(rad, c, ql, step)
                if not abs(th) <= THETA_LIMIT:
                    continue
                if dc == 0.0 and dq == 0.0:
                    best_ql = ql
                fa = np.float64(np.float32(xa_))
                fb = np.float64(np.float32(xb_))
                if abs(fa - av0) <= eps and abs(fb - bv0) <= eps:
                    best_c = c
                    best_ql = ql
                    found = True
                    break
            if found:
                break
        xa_, xb_, th = _last_pair(rad, best_c, best_ql, step)
        if not abs(th) <= THETA_LIMIT:
            best_ql = 0.0
            xa_, xb_, th = _last_pair(rad, best_c, best_ql, step)
        c_out[i] = np.int64(best_c)
        ql_out[i] = np.int64(best_ql)
        if not found:
            if not abs(np.float64(np.float32(xa_)) - av0) <= eps:
                _record(rows, i, d - 2, xa_, index, delta, cnt)
                cnt += 1
            if not abs(np.float64(np.float32(xb_)) - bv0) <= eps:
                _record(rows, i, d - 1, xb_, index, delta, cnt)
                cnt += 1
    count[0] = cnt


@njit(nogil=True, cache=True, error_model="numpy")
def sphere_reconstruct_last(c, ql, radius, step, out_t):
    """The decoder's side of ``sphere_quantize_last``: ``out_t[d - 2:]``; returns a status."""
    bad = False
    d = out_t.shape[0]
    for i in range(c.size):
        xa_, xb_, th = _last_pair(radius[i], np.float64(c[i]), np.float64(ql[i]), step)
        bad |= not (abs(th) <= THETA_LIMIT)
        out_t[d - 2, i] = np.float32(xa_)
        out_t[d - 1, i] = np.float32(xb_)
    return STATUS_CORRUPT if bad else STATUS_OK


@njit(nogil=True, cache=True, error_model="numpy")
def row_norms(rows, max_norm, norms32):
    """Float32 norms of the float32 ``rows`` (n, d), summed in float64 in index order.

    Non-finite values count as 0 (they become exceptions); a row whose float32 norm is not
    finite or reaches ``max_norm`` gets norm 0 (all its values become exceptions).
    """
    n, d = rows.shape
    for i in range(n):
        acc = 0.0
        for j in range(d):
            v = _finite_or_zero(np.float64(rows[i, j]))
            acc += v * v
        r = np.float32(np.sqrt(acc))
        norms32[i] = r if np.float64(r) < max_norm else np.float32(0.0)


# --- format 1 of the sphere codec: each angle quantized uniformly in its cosine ------------
#
# Polar angle theta_j (j < d - 2) of a row with tail radius R_j is coded as
# q_j = rint(R_j cos(theta_j) / step) = rint(x_j / step): every angle is worth the same
# Cartesian resolution ``step``, and the decoder needs no trigonometry for it
# (x^_j = q_j step). The encoder never materialises these codes: it computes them from the
# transposed rows whenever it needs them (norms, radius and exceptions, group keys, symbols).

_TILE = 64  # edge of the transposition's square tiles
_U = np.uint64  # unsigned indices spare Numba's negative-index wraparound code


@njit(nogil=True, cache=True)
def transpose_rows(rows, xt):
    """``xt`` (d, n) = ``rows`` (n, d).T for float32, by square tiles (measured: 64 beats
    32 by 40% and numpy's transposing copy by 2x)."""
    n, d = rows.shape
    for i0 in range(0, n, _TILE):
        i1 = min(i0 + _TILE, n)
        for j0 in range(0, d, _TILE):
            j1 = min(j0 + _TILE, d)
            for j in range(j0, j1):
                for i in range(i0, i1):
                    xt[_U(j), _U(i)] = rows[_U(i), _U(j)]


@njit(nogil=True, cache=True, error_model="numpy")
def sphere_cos_prepare(xt, rows, max_norm, step, eps, norms32, scale, radius, index, delta, count):
    """Format 1, first pass over ``xt`` (d, n), the transposed float32 ``rows``.

    Fills ``norms32`` (as ``row_norms``: 0 for rows set aside), ``scale`` (``1 / step``, or
    0 for rows set aside, whose codes are all 0: the code of ``v`` is
    ``rint(v * scale)``), and ``radius``, the tail radius ``sqrt(max(r^2 - sum_j x^_j^2, 0))``
    the decoder computes for the last pair (float64, summed in column order). Values the
    decoder would put beyond ``eps`` go to the exception arrays (see ``sphere_quantize``),
    column after column.
    """
    d, n = xt.shape
    inv_step = 1.0 / step
    sumsq = np.zeros(n, dtype=np.float64)
    acc = np.zeros(n, dtype=np.float64)
    missed = np.zeros(max(d - 2, 0), dtype=np.int64)
    # one pass for the norms (summed in index order per row, as row_norms does) and the
    # decoded values' squares, as if no row were set aside; the loops over rows touch few
    # arrays, so that LLVM vectorises them
    for j in range(d):
        if j < d - 2:
            misses = 0  # an integer count: a float sum would not vectorise (no reassociation)
            for i in range(n):
                v = np.float64(xt[j, i])
                f = _finite_or_zero(v)
                sumsq[i] += f * f
                x32 = np.float64(np.float32(scaled_code(v, inv_step) * step))
                acc[i] += x32 * x32
                misses += 0 if abs(x32 - v) <= eps else 1
            missed[j] = misses
        else:
            for i in range(n):
                f = _finite_or_zero(np.float64(xt[j, i]))
                sumsq[i] += f * f
    aside = False
    for i in range(n):
        nr = np.float32(np.sqrt(sumsq[i]))
        ok = np.float64(nr) < max_norm
        norms32[i] = nr if ok else np.float32(0.0)
        scale[i] = inv_step if ok else 0.0
        aside |= not ok
    if aside:  # rare (norms near the float32 range): a second pass with their codes at 0
        acc[:] = 0.0
        for j in range(d - 2):
            misses = 0
            for i in range(n):
                v = np.float64(xt[j, i])
                x32 = np.float64(np.float32(scaled_code(v, scale[i]) * step))
                acc[i] += x32 * x32
                misses += 0 if abs(x32 - v) <= eps else 1
            missed[j] = misses
    cnt = count[0]
    for j in range(d - 2):
        if missed[j]:  # rare
            for i in range(n):
                v = np.float64(xt[j, i])
                xh = scaled_code(v, scale[i]) * step
                if not abs(np.float64(np.float32(xh)) - v) <= eps:
                    _record(rows, i, j, xh, index, delta, cnt)
                    cnt += 1
    for i in range(n):
        rn = np.float64(norms32[i])
        rest = rn * rn - acc[i]
        radius[i] = np.sqrt(rest) if rest > 0.0 else 0.0
    count[0] = cnt


@njit(nogil=True, cache=True)
def sphere_cos_codes(xt, scale, codes):
    """The format-1 codes of the first ``codes.shape[0]`` columns (int64 (k, n))."""
    for j in range(codes.shape[0]):
        for i in range(codes.shape[1]):
            codes[j, i] = np.int64(scaled_code(np.float64(xt[j, i]), scale[i]))


@njit(nogil=True, cache=True)
def sphere_cos_keys(xt, scale, extra, stride):
    """``grid.column_order_keys`` of the format-1 codes: columns ``0 .. d-3`` computed from
    ``xt`` (d, n) and ``scale``, then the rows of ``extra`` (int64), on the same rows."""
    nx = xt.shape[0] - 2
    n = xt.shape[1]
    keys = np.zeros(nx + extra.shape[0], dtype=np.float64)
    for c in range(keys.size):
        total = 0
        taken = 0
        for b in range(0, n, KEY_BLOCK * stride):
            for i in range(b, min(b + KEY_BLOCK, n)):
                if c < nx:
                    v = np.int64(scaled_code(np.float64(xt[c, i]), scale[i]))
                else:
                    v = extra[c - nx, i]
                total += _bitlen(-v if v < 0 else v)
                taken += 1
        keys[c] = total / max(taken, 1)
    return keys


@njit(nogil=True, cache=True, error_model="numpy")
def sphere_reconstruct_cos(q, norms, step, radius, xt):
    """The decoder's side of ``sphere_cos_prepare``: from the codes ``q`` (d - 2, n) and the
    float64 ``norms``, the values of the first d - 2 columns into ``xt`` (float32, d x n,
    transposed) and the tail radii into ``radius`` (n,).

    Returns STATUS_CORRUPT when a code puts a value beyond its row's norm (no encoder
    writes one: ``|x^_j| <= |x_j| + step / 2``).
    """
    ncol, n = q.shape
    acc = np.zeros(n, dtype=np.float64)
    bad = 0
    for j in range(ncol):
        for i in range(n):
            xh = np.float64(q[j, i]) * step
            bad += 0 if abs(xh) <= norms[i] * 1.000001 + step else 1
            x32 = np.float64(np.float32(xh))
            xt[j, i] = x32
            acc[i] += x32 * x32
    for i in range(n):
        rn = norms[i]
        rest = rn * rn - acc[i]
        radius[i] = np.sqrt(rest) if rest > 0.0 else 0.0
    return STATUS_CORRUPT if bad else STATUS_OK
