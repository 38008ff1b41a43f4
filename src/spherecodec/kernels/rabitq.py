"""RaBitQ kernels: the structured rotation, B-bit quantization of rotated unit vectors
(extended RaBitQ), reconstruction, code packing and the search scorers.

The rotation is ``ROUNDS`` rounds of: multiply by a row of random signs, then a normalized
fast Walsh-Hadamard transform (FWHT) of size ``L`` (the largest power of two <= dim) on the
first ``L`` coordinates and, when ``L < dim``, another on the last ``L``. Each step is
orthogonal, so the whole is. It runs on blocks of rows held transposed (``buf[d, row]``), so
every butterfly is a loop over rows that vectorizes; each output element sees the same
additions in the same order whatever the block, CPU or thread count (no fastmath).

Codes: ``c[d]`` in ``[0, 2**bits)`` stands for ``y[d] = c[d] - h`` with ``h = (2**bits - 1)/2``.
A row ``x`` with centre ``c``, residual norm ``r`` and rotated unit residual ``u`` is coded
by the grid vector ``y`` of best cosine ``a = <y, u> / |y|`` (1 bit: the signs of ``u``), and
``f = r / (a |y|)``; then ``<x, q> ~ <c, q> + f <y, P q>`` without bias, and the
reconstruction ``c + f P^T y`` has exactly that inner product with every ``q``.
"""

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from .jit import callee
from .search import _emit, _push  # the top-k heap of every code search

#: rounds of signs + Hadamard transforms in the rotation (part of the format). 2, 3 and 4
#: rounds gave the same recall on MiniLM sentences and tokens (means over 5 seeds within
#: 0.001 of each other at 1 bit); 3 mixes every coordinate with every other twice
ROUNDS = 3
#: rows per transposed block
_BLOCK = 64
#: rows per block of search scores (a few KiB per query)
_DOT_BLOCK = 1024


@callee(nogil=True, cache=True)
def _fwht(buf, start, length, scale):
    """Normalized in-place Walsh-Hadamard transform of ``buf[start:start+length, :]``
    (each column one vector); ``scale`` is ``1/sqrt(length)``, applied in the last stage."""
    nb = buf.shape[1]
    h = 1
    while h < length:
        last = 2 * h >= length
        for i in range(start, start + length, 2 * h):
            for j in range(i, i + h):
                top = buf[j]
                bottom = buf[j + h]
                if last:
                    for c in range(nb):
                        a = top[c]
                        b = bottom[c]
                        top[c] = (a + b) * scale
                        bottom[c] = (a - b) * scale
                else:
                    for c in range(nb):
                        a = top[c]
                        b = bottom[c]
                        top[c] = a + b
                        bottom[c] = a - b
        h *= 2
    if length == 1:
        for c in range(nb):
            buf[start, c] *= scale


@callee(nogil=True, cache=True)
def rotate_block(buf, signs, length, scale):
    """Apply the rotation to every column of ``buf`` (dim, nb) float64, in place."""
    dim = buf.shape[0]
    nb = buf.shape[1]
    for r in range(signs.shape[0]):
        for d in range(dim):
            s = signs[r, d]
            for c in range(nb):
                buf[d, c] *= s
        _fwht(buf, 0, length, scale)
        if length < dim:
            _fwht(buf, dim - length, length, scale)


@callee(nogil=True, cache=True)
def unrotate_block(buf, signs, length, scale):
    """Apply the inverse rotation to every column of ``buf`` (dim, nb) float64, in place."""
    dim = buf.shape[0]
    nb = buf.shape[1]
    for r in range(signs.shape[0] - 1, -1, -1):
        if length < dim:
            _fwht(buf, dim - length, length, scale)
        _fwht(buf, 0, length, scale)
        for d in range(dim):
            s = signs[r, d]
            for c in range(nb):
                buf[d, c] *= s


@njit(nogil=True, cache=True)
def rotate_rows(rows, signs, length, scale, out):
    """``out[i] = P rows[i]`` in float64 for (n, dim) float32 or float64 ``rows``."""
    n, dim = rows.shape
    buf = np.empty((dim, _BLOCK), dtype=np.float64)
    for lo in range(0, n, _BLOCK):
        nb = min(_BLOCK, n - lo)
        for d in range(dim):
            for j in range(nb):
                buf[d, j] = np.float64(rows[lo + j, d])
            for j in range(nb, _BLOCK):
                buf[d, j] = 0.0
        rotate_block(buf, signs, length, scale)
        for j in range(nb):
            for d in range(dim):
                out[lo + j, d] = buf[d, j]


# --------------------------------------------------------------------------------------
# quantization of one rotated unit vector
# --------------------------------------------------------------------------------------
@callee(nogil=True, cache=True)
def _heap_down(keys, vals, size, pos):
    while True:
        left = 2 * pos + 1
        if left >= size:
            return
        child = left
        if left + 1 < size and keys[left + 1] < keys[left]:
            child = left + 1
        if keys[child] < keys[pos]:
            keys[pos], keys[child] = keys[child], keys[pos]
            vals[pos], vals[child] = vals[child], vals[pos]
            pos = child
        else:
            return


@callee(nogil=True, cache=True)
def _best_scale(o_abs, kmax, window_lo, window_hi, keys, vals, k):
    """The scale ``t`` whose codes ``min(floor(t o_abs), kmax)`` (grid values ``k + 1/2``)
    have the best cosine with ``o_abs`` (non-negative, unit norm).

    The cosine only changes where ``t o_abs[d]`` crosses an integer; those events are
    visited in increasing ``t`` with a heap, within ``[window_lo, window_hi] (kmax + 1) /
    max(o_abs)`` (0 and inf: every event), where the optimum lies (measured: 0.93 to 2.2).
    """
    dim = o_abs.size
    omax = 0.0
    for d in range(dim):
        if o_abs[d] > omax:
            omax = o_abs[d]
    if omax <= 0.0:
        return 0.0
    t_lo = window_lo * (kmax + 1) / omax
    t_hi = window_hi * (kmax + 1) / omax
    num = 0.0  # sum (k + 1/2) o_abs
    den = 0.0  # sum (k + 1/2)**2
    size = 0
    for d in range(dim):
        kd = 0
        if t_lo > 0.0:
            kd = min(int(np.floor(t_lo * o_abs[d])), kmax)
        k[d] = kd
        num += (kd + 0.5) * o_abs[d]
        den += (kd + 0.5) * (kd + 0.5)
        if kd < kmax and o_abs[d] > 0.0:
            tn = (kd + 1) / o_abs[d]
            if tn < t_hi:
                keys[size] = tn
                vals[size] = d
                size += 1
    for pos in range(size // 2 - 1, -1, -1):
        _heap_down(keys, vals, size, pos)
    # compare squared cosines (num >= 0): no square root per event
    best_num2 = num * num
    best_den = den
    best_t = t_lo
    while size > 0:
        t = keys[0]
        d = vals[0]
        kd = k[d] + 1
        k[d] = kd
        od = o_abs[d]
        num += od
        den += 2.0 * kd  # (k + 1/2)**2 - (k - 1/2)**2
        if num * num * best_den > best_num2 * den:
            best_num2 = num * num
            best_den = den
            best_t = t
        nxt = (kd + 1) / od
        if kd < kmax and nxt < t_hi:
            keys[0] = nxt
        else:
            size -= 1
            keys[0] = keys[size]
            vals[0] = vals[size]
        _heap_down(keys, vals, size, 0)
    return best_t


@njit(nogil=True, cache=True)
def encode_rows(rows, center, signs, length, scale, bits, codes, factor, offset, cosine):
    """Code float32 ``rows`` (n, dim) around ``center`` (float64): ``codes`` (n, dim) uint8,
    ``factor`` (n,) float64 ``f = r / (a |y|)``, ``offset`` (n,) float64 ``<x - center, center>``
    and ``cosine`` (n,) uint16 ``floor(a * 65535)``.

    Returns the number of rows holding NaN or infinite values (their outputs are zeros).
    """
    n, dim = rows.shape
    kmax = (1 << (bits - 1)) - 1
    mid = 1 << (bits - 1)
    # the window of scales searched (see _best_scale): every event for 2 bits (one per
    # dimension), the measured range of optima with a margin beyond
    window_lo = 0.0 if bits <= 2 else 0.85
    # (optima / ((kmax + 1) / max) on 200 MiniLM sentence and token rows: 3 bits 1.07-1.80,
    # 4 bits 1.00-1.52, 5 bits 0.97-1.18, 6 bits 0.94-1.07, 7 and 8 bits 0.93-1.03)
    if bits <= 4:
        window_hi = np.inf if bits <= 2 else 2.2
    else:
        window_hi = 1.35 if bits == 5 else (1.15 if bits == 6 else 1.1)
    # blocks of up to _BLOCK rows, no wider than the rows: one row rotates one column
    width = max(1, min(_BLOCK, n))
    buf = np.empty((dim, width), dtype=np.float64)
    vec = np.empty(dim, dtype=np.float64)
    keys = np.empty(dim, dtype=np.float64)
    o_abs = np.empty(dim, dtype=np.float64)
    vals = np.empty(dim, dtype=np.int64)
    k = np.empty(dim, dtype=np.int64)
    ok = np.empty(_BLOCK, dtype=np.bool_)
    oc = np.empty(_BLOCK, dtype=np.float64)
    r2s = np.empty(_BLOCK, dtype=np.float64)
    nums = np.empty(_BLOCK, dtype=np.float64)
    bad = 0
    for lo in range(0, n, width):
        nb = min(width, n - lo)
        for j in range(_BLOCK):
            ok[j] = j < nb
            oc[j] = 0.0
        for d in range(dim):
            cd = center[d]
            for j in range(nb):
                v = np.float64(rows[lo + j, d])
                if not np.isfinite(v):
                    ok[j] = False
                buf[d, j] = v - cd
                oc[j] += buf[d, j] * cd
            for j in range(nb, width):
                buf[d, j] = 0.0
        for j in range(nb):
            if not ok[j]:
                for d in range(dim):
                    buf[d, j] = 0.0
        rotate_block(buf, signs, length, scale)
        if bits == 1:
            # sign codes: one pass over the block, every loop over rows contiguous
            for j in range(width):
                r2s[j] = 0.0
                nums[j] = 0.0
            for d in range(dim):
                for j in range(nb):
                    v = buf[d, j]
                    r2s[j] += v * v
                    nums[j] += np.abs(v)
                    codes[lo + j, d] = 1 if v >= 0.0 else 0
            ynorm = np.sqrt(np.float64(dim)) * 0.5
            for j in range(nb):
                i = lo + j
                factor[i] = 0.0
                offset[i] = 0.0
                cosine[i] = 0
                if not ok[j]:
                    bad += 1
                    for d in range(dim):
                        codes[i, d] = 0
                    continue
                offset[i] = oc[j]
                r = np.sqrt(r2s[j])
                if r == 0.0:
                    continue
                ip = 0.5 * nums[j] / r  # <y, u>
                a = ip / ynorm
                factor[i] = r / ip
                cosine[i] = np.uint16(min(np.floor(a * 65535.0), 65535.0))
            continue
        for j in range(nb):
            i = lo + j
            factor[i] = 0.0
            offset[i] = 0.0
            cosine[i] = 0
            if not ok[j]:
                bad += 1
                for d in range(dim):
                    codes[i, d] = 0
                continue
            offset[i] = oc[j]
            r2 = 0.0
            for d in range(dim):
                vec[d] = buf[d, j]
                r2 += vec[d] * vec[d]
            r = np.sqrt(r2)
            if r == 0.0:
                for d in range(dim):
                    codes[i, d] = mid
                continue
            for d in range(dim):
                o_abs[d] = np.abs(vec[d]) / r
            t = _best_scale(o_abs, kmax, window_lo, window_hi, keys, vals, k)
            ip = 0.0
            y2 = 0.0
            for d in range(dim):
                kd = min(int(np.floor(t * o_abs[d] + 1e-9)), kmax)
                y = kd + 0.5
                ip += y * o_abs[d]
                y2 += y * y
                if vec[d] >= 0.0:
                    codes[i, d] = mid + kd
                else:
                    codes[i, d] = mid - 1 - kd
            ynorm = np.sqrt(y2)
            a = ip / ynorm
            factor[i] = r / ip
            cosine[i] = np.uint16(min(np.floor(a * 65535.0), 65535.0))
    return bad


@njit(nogil=True, cache=True)
def decode_rows(codes, factor, offset, center, signs, length, scale, bits, out):
    """Reconstruct rows: ``v = factor[i] * P^T (codes[i] - h)``, then
    ``out[i] = v + (1 + beta) center`` with ``beta = (offset[i] - <v, center>) / |center|**2``
    (so that ``<out[i], center>`` is the stored ``<x, center>``), in float64 rounded once to
    float32."""
    n, dim = codes.shape
    half = ((1 << bits) - 1) / 2.0
    c2 = 0.0
    for d in range(dim):
        c2 += np.float64(center[d]) * np.float64(center[d])
    width = max(1, min(_BLOCK, n))  # as encode_rows: no wider than the rows
    buf = np.empty((dim, width), dtype=np.float64)
    vc = np.empty(width, dtype=np.float64)
    for lo in range(0, n, width):
        nb = min(width, n - lo)
        for d in range(dim):
            for j in range(nb):
                buf[d, j] = factor[lo + j] * (np.float64(codes[lo + j, d]) - half)
            for j in range(nb, width):
                buf[d, j] = 0.0
        unrotate_block(buf, signs, length, scale)
        for j in range(width):
            vc[j] = 0.0
        for d in range(dim):
            cd = np.float64(center[d])
            for j in range(nb):
                vc[j] += buf[d, j] * cd
        for j in range(nb):
            beta = (offset[lo + j] - vc[j]) / c2 if c2 > 0.0 else 0.0
            for d in range(dim):
                out[lo + j, d] = np.float32(buf[d, j] + (1.0 + beta) * np.float64(center[d]))


# --------------------------------------------------------------------------------------
# packing
# --------------------------------------------------------------------------------------
@njit(nogil=True, cache=True)
def pack_codes(codes, bits, out):
    """Pack (n, dim) codes of ``bits`` bits, each row LSB first into ``out`` (n, row bytes)."""
    n, dim = codes.shape
    width = out.shape[1]
    for i in range(n):
        acc = np.uint64(0)
        nacc = 0
        pos = 0
        for d in range(dim):
            acc |= np.uint64(codes[i, d]) << np.uint64(nacc)
            nacc += bits
            while nacc >= 8:
                out[i, pos] = np.uint8(acc & np.uint64(0xFF))
                acc >>= np.uint64(8)
                nacc -= 8
                pos += 1
        if nacc > 0:
            out[i, pos] = np.uint8(acc & np.uint64(0xFF))
            pos += 1
        for p in range(pos, width):
            out[i, p] = 0


@njit(nogil=True, cache=True)
def unpack_codes(packed, bits, out):
    """Inverse of ``pack_codes`` into (n, dim) uint8 ``out``; returns True when a padding bit
    is set (a corrupt row)."""
    n, dim = out.shape
    mask = np.uint64((1 << bits) - 1)
    bad = False
    for i in range(n):
        acc = np.uint64(0)
        nacc = 0
        pos = 0
        for d in range(dim):
            if nacc < bits:
                acc |= np.uint64(packed[i, pos]) << np.uint64(nacc)
                nacc += 8
                pos += 1
            out[i, d] = np.uint8(acc & mask)
            acc >>= np.uint64(bits)
            nacc -= bits
        if acc != 0:
            bad = True
    return bad


# --------------------------------------------------------------------------------------
# search
# --------------------------------------------------------------------------------------
@intrinsic
def _popcount64(typingctx, x):
    """Set bits of a uint64: LLVM's ctpop (one popcnt instruction where the CPU has one, an
    exact bit-twiddling sequence elsewhere)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@callee(nogil=True, cache=True)
def _plane_dots(words, planes, lo, hi, out):
    """``out[i - lo] = sum_b 2**b popcount(words[i] & planes[b])`` for rows ``lo <= i < hi``."""
    nw = words.shape[1]
    nplanes = planes.shape[0]
    for i in range(lo, hi):
        dot = np.uint64(0)
        for b in range(nplanes):
            c = np.uint64(0)
            for j in range(nw):
                c += _popcount64(words[i, j] & planes[b, j])
            dot += c << np.uint64(b)
        out[i - lo] = dot


@njit(nogil=True, cache=True, parallel=True)
def search_bitplanes(words, ones, factor, offset, planes, coef, out_scores, out_ids):
    """Masked sums of a quantized query over bit codes, top-k per query.

    ``words`` (n, w) uint64 code bits (padding zero), ``ones`` (n,) their popcounts,
    ``factor`` and ``offset`` (n,) float64; ``planes`` (Q, p, w) uint64: bit ``j`` of plane
    ``b`` is bit ``b`` of the query's unsigned code ``u[j]``; ``coef`` (Q, 4) float64
    ``(base, lo, step, const)``. Score:
    ``base + offset[i] + factor[i] * (lo * ones[i] + step * sum_{bit j set} u[j] + const)``.
    """
    n = words.shape[0]
    nq, k = out_ids.shape
    for q in prange(nq):
        hs = np.empty(k, dtype=np.float64)
        hi = np.empty(k, dtype=np.int64)
        dots = np.empty(_DOT_BLOCK, dtype=np.uint64)
        base = coef[q, 0]
        lo_q = coef[q, 1]
        step = coef[q, 2]
        const = coef[q, 3]
        size = 0
        for lo in range(0, n, _DOT_BLOCK):
            top = min(n, lo + _DOT_BLOCK)
            _plane_dots(words, planes[q], lo, top, dots)
            for i in range(lo, top):
                s = base + offset[i] + factor[i] * (lo_q * np.float64(ones[i]) + step * np.float64(dots[i - lo])
                                                    + const)
                # rows come in increasing order: one scoring no better than the worst kept loses
                if size < k or s > hs[0]:
                    size = _push(hs, hi, size, s, i)
        _emit(hs, hi, size, -np.inf, out_scores[q], out_ids[q])


@callee(nogil=True, cache=True)
def _dots(codes, w, lo, hi, out):
    """``out[i - lo] = sum_d w[d] codes[i, d]`` for rows ``lo <= i < hi`` (int32).

    A function of its own: inside a ``prange`` body LLVM left this loop scalar (3.4x slower).
    """
    dim = codes.shape[1]
    for i in range(lo, hi):
        acc = np.int32(0)
        for d in range(dim):
            acc += np.int32(w[d]) * np.int32(codes[i, d])
        out[i - lo] = acc


@njit(nogil=True, cache=True, parallel=True)
def search_codes(codes, factor, offset, wq, coef, out_scores, out_ids):
    """Integer inner products of int16 codes with int16 queries, top-k per query (both
    int16 so that LLVM forms the pairwise multiply-add of 16-bit lanes).

    ``codes`` (n, dim) int16, ``factor`` and ``offset`` (n,) float64, ``wq`` (Q, dim) int16,
    ``coef`` (Q, 3) float64 ``(base, step, const)``. Score:
    ``base + offset[i] + factor[i] * step * (sum_d wq[q, d] codes[i, d] + const)``.
    """
    n = codes.shape[0]
    nq, k = out_ids.shape
    for q in prange(nq):
        hs = np.empty(k, dtype=np.float64)
        hi = np.empty(k, dtype=np.int64)
        dots = np.empty(_DOT_BLOCK, dtype=np.int32)
        base = coef[q, 0]
        step = coef[q, 1]
        const = coef[q, 2]
        size = 0
        for lo in range(0, n, _DOT_BLOCK):
            top = min(n, lo + _DOT_BLOCK)
            _dots(codes, wq[q], lo, top, dots)
            for i in range(lo, top):
                s = base + offset[i] + factor[i] * step * (np.float64(dots[i - lo]) + const)
                # rows come in increasing order: one scoring no better than the worst kept loses
                if size < k or s > hs[0]:
                    size = _push(hs, hi, size, s, i)
        _emit(hs, hi, size, -np.inf, out_scores[q], out_ids[q])


@njit(nogil=True, cache=True)
def grid_norms(codes, bits, out):
    """``out[i] = |codes[i] - h|`` (the grid vector's norm), without a float copy of the codes."""
    n, dim = codes.shape
    top = (1 << bits) - 1
    for i in range(n):
        acc = np.int64(0)
        for d in range(dim):
            t = 2 * np.int64(codes[i, d]) - top  # 2 (c - h), an integer
            acc += t * t
        out[i] = 0.5 * np.sqrt(np.float64(acc))


@njit(nogil=True, cache=True, parallel=True)
def rescore_bounded(vectors, queries, cand_ids, cand_scores, bound, qbound, factor, qslack, out_scores,
                    out_ids, counts):
    """Exact top-k among the candidates, rescoring only those that can still enter it.

    ``cand_ids``/``cand_scores`` (Q, c): estimated scores, ids -1 for none; a candidate's
    score is at most ``estimate + bound[i] * qbound[q] + factor[i] * qslack[q]`` (all
    float64, ``bound`` and ``factor`` (n,), ``qbound`` and ``qslack`` (Q,)).
    Candidates are visited by decreasing upper bound; once the k-th exact score is above
    the next upper bound, no later candidate can enter and the rest are skipped.
    ``counts[q]``: candidates rescored.
    """
    nq, c = cand_ids.shape
    dim = vectors.shape[1]
    k = out_ids.shape[1]
    for q in prange(nq):
        ub = np.empty(c, dtype=np.float64)
        for r in range(c):
            i = cand_ids[q, r]
            ub[r] = cand_scores[q, r] + bound[i] * qbound[q] + factor[i] * qslack[q] if i >= 0 else -np.inf
        order = np.argsort(-ub, kind="mergesort")
        hs = np.empty(k, dtype=np.float64)
        hi = np.empty(k, dtype=np.int64)
        size = 0
        done = 0
        for r in range(c):
            i = cand_ids[q, order[r]]
            if i < 0:
                break
            if size == k and ub[order[r]] < hs[0]:
                break
            acc = 0.0
            for d in range(dim):
                acc += np.float64(queries[q, d]) * np.float64(vectors[i, d])
            size = _push(hs, hi, size, acc, i)
            done += 1
        counts[q] = done
        _emit(hs, hi, size, -np.inf, out_scores[q], out_ids[q])
