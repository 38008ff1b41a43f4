"""Kernels shared by the error-bounded codecs (``grid`` and ``sphere``).

* Integer codes -> (entropy symbol, raw bits): the exponent/mantissa split of a float,
  applied to ``|q|``: ``|q| < 2**(m + 1)`` is its own symbol; otherwise the symbol holds the
  bit length and the top ``m`` bits after the leading one, and the ``bitlen - 1 - m`` low
  bits go raw, followed by the sign bit when ``q != 0``. Raw fields are packed LSB first,
  by two interleaved chains (``symbolize_columns``); the decoder reads each field at its
  running bit offset (``desymbolize``).
* Symbol pairs at 0 mantissa bits, ``first << PAIR_SHIFT | second`` (``pair_symbols``,
  ``unpair_symbols``): the sphere codec's format 1 codes bit lengths two at a time.
* The uniform quantizer of the ``grid`` codec.
* Exceptions: the components whose decoded value would miss the bound, stored as a flat
  index gap and the difference of the float32 bit patterns (varints).
"""

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros

from .rans import read_varint, write_varint
from .rans_core import STATUS_CORRUPT, STATUS_OK

#: codes are limited to |q| < 2**CODE_BITS (so q * step is exact enough and symbols fit)
CODE_BITS = 50
#: the column statistics are read on blocks of KEY_BLOCK consecutive rows, one block in
#: every ``stride`` (whole cache lines of a column: a strided sample would touch them all)
KEY_BLOCK = 16
_U = np.uint64


def alphabet_size(m):
    """Symbols needed for codes of up to CODE_BITS bits with ``m`` mantissa bits."""
    return (CODE_BITS + 1 - m) << m


@njit(inline="always")
def _bitlen(a):
    return 64 - leading_zeros(_U(a))


@njit(inline="always")
def _split_code(v, m, small, top):
    # (symbol, raw field, raw field's bit count) of one code
    a = -v if v < 0 else v
    cls = _bitlen(a)
    nr = max(cls - 1 - m, 0)
    sym = ((cls - m) << m) + ((a >> nr) - top) if a >= small else a
    field = (_U(a) & ((_U(1) << _U(nr)) - _U(1))) | (_U(v < 0) << _U(nr))
    return sym, field, _U(nr + (a != 0))


def symbolize(codes, perm, m, syms, raw32, counts, group_of):
    """Symbols of ``codes`` (ncols, n) int64 in column order ``perm``; raw bits into ``raw32``.

    ``syms`` (ncols * n) uint16 receives column ``perm[0]``'s symbols, then ``perm[1]``'s...
    ``raw32`` (uint32) needs ``raw_words(ncols, n)`` words; ``counts`` (groups, alphabet)
    int64, zeroed, receives each group's symbol histogram (``group_of[c]`` is the group
    of the c-th column in ``perm`` order), unless it has no rows. Returns the raw bytes used.
    """
    none = np.empty((0, 0), dtype=np.float32)
    return symbolize_columns(codes, none, np.empty(0), codes, perm, m, syms, raw32, counts,
                             group_of, False)  # one compiled kernel for both uses


def raw_words(ncols, n):
    """uint32 words ``symbolize`` needs for its raw bits (and its second packing chain)."""
    return 2 * ncols * n + 4


@njit(inline="always")
def scaled_code(v, scale):
    """``rint(v * scale)`` as a float (non-finite ``v`` count as 0; -0.0 becomes +0.0)."""
    return np.rint((v if abs(v) <= _FLT_MAX else 0.0) * scale) + 0.0


_FLT_MAX = 3.4028234663852886e38


@njit(inline="always")
def _load_column(codes, xt, scale, extra, col, fused, out):
    # the values of code column ``col``: from ``codes``, or (fused) ``scaled_code`` of the
    # rows of ``xt`` for the first xt.shape[0] - 2 columns, then the rows of ``extra``
    if not fused:
        return codes[col]
    nx = xt.shape[0] - 2
    if col >= nx:
        return extra[col - nx]
    for i in range(out.size):
        out[i] = np.int64(scaled_code(np.float64(xt[col, i]), scale[i]))
    return out


@njit(inline="always")
def _split_column(values, m, g, k, syms, counts, fields, widths):
    # symbols into syms[k:], raw fields and their widths; True if a field exceeds 32 bits
    small = np.int64(1) << (m + 1)
    top = np.int64(1) << m
    wide = False
    for i in range(values.size):  # vectorises
        sym, field, nb = _split_code(values[i], m, small, top)
        syms[k + i] = sym
        fields[i] = field
        widths[i] = nb
        wide |= nb > _U(32)
    if counts.shape[0]:
        for i in range(values.size):
            counts[g, syms[k + i]] += 1
    return wide


@njit(inline="always")
def _put_wide(raw32, acc, nacc, p, field, nb):
    # a field of more than 32 bits: its low 32 bits first; returns what remains to put
    acc |= (field & _U(0xFFFFFFFF)) << nacc
    raw32[p] = np.uint32(acc & _U(0xFFFFFFFF))
    return acc >> _U(32), p + _U(1), field >> _U(32), nb - _U(32)


@njit(inline="always")
def _put(raw32, acc, nacc, p, field, nb):
    # append nb (<= 32) bits LSB first; the word is stored every time (branch-free) and
    # kept when 32 bits are full
    acc |= field << nacc
    total = nacc + nb
    raw32[p] = np.uint32(acc & _U(0xFFFFFFFF))
    full = total >> _U(5)
    return acc >> (full << _U(5)), total & _U(31), p + full


@njit(inline="always")
def _put_all_wide(raw32, acc, nacc, p, fields, widths):
    # append every field of a column, some wider than 32 bits
    for i in range(fields.size):
        field, nb = fields[i], widths[i]
        if nb > _U(32):
            acc, p, field, nb = _put_wide(raw32, acc, nacc, p, field, nb)
        acc, nacc, p = _put(raw32, acc, nacc, p, field, nb)
    return acc, nacc, p


@njit(nogil=True, cache=True)
def symbolize_columns(codes, xt, scale, extra, perm, m, syms, raw32, counts, group_of, fused):
    """``symbolize`` of the columns ``_load_column`` gives (``fused``: computed on the fly).

    The raw bit packing is a serial chain per value, so two chains run interleaved: the
    first half of the columns packs from word 0, the second half from the middle of
    ``raw32``; the second stream is then appended to the first.
    """
    ncols = perm.size
    n = syms.size // max(ncols, 1)
    half = (ncols + 1) // 2
    work = np.empty((4, n), dtype=np.uint64)
    col_a = np.empty(n, dtype=np.int64)
    col_b = np.empty(n, dtype=np.int64)
    acc_a, nacc_a, p_a = _U(0), _U(0), _U(0)
    start_b = _U(2 * half * n + 2)
    acc_b, nacc_b, p_b = _U(0), _U(0), start_b
    for c in range(half):
        va = _load_column(codes, xt, scale, extra, perm[c], fused, col_a)
        wide = _split_column(va, m, group_of[c], c * n, syms, counts, work[0], work[1])
        two = c + half < ncols
        if two:
            vb = _load_column(codes, xt, scale, extra, perm[c + half], fused, col_b)
            wide |= _split_column(vb, m, group_of[c + half], (c + half) * n, syms, counts,
                                  work[2], work[3])
        if wide:  # codes of more than 33 bits: one chain at a time, with the wide case
            acc_a, nacc_a, p_a = _put_all_wide(raw32, acc_a, nacc_a, p_a, work[0], work[1])
            if two:
                acc_b, nacc_b, p_b = _put_all_wide(raw32, acc_b, nacc_b, p_b, work[2], work[3])
        elif two:
            for i in range(n):
                acc_a, nacc_a, p_a = _put(raw32, acc_a, nacc_a, p_a, work[0, i], work[1, i])
                acc_b, nacc_b, p_b = _put(raw32, acc_b, nacc_b, p_b, work[2, i], work[3, i])
        else:
            for i in range(n):
                acc_a, nacc_a, p_a = _put(raw32, acc_a, nacc_a, p_a, work[0, i], work[1, i])
    # append the second stream: its whole words, then its partial one; the writes stay
    # behind the reads (the first stream ends before the second begins)
    for w in range(start_b, p_b):
        acc_a, nacc_a, p_a = _put(raw32, acc_a, nacc_a, p_a, _U(raw32[w]), _U(32))
    if nacc_b:
        acc_a, nacc_a, p_a = _put(raw32, acc_a, nacc_a, p_a, acc_b, nacc_b)
    if nacc_a > _U(0):
        raw32[p_a] = np.uint32(acc_a & _U(0xFFFFFFFF))
    return np.int64(4 * p_a + (nacc_a + _U(7)) // _U(8))


@njit(inline="always")
def _bits_at(raw32, last, off, nb):
    # nb (<= 32) bits from bit offset off: two words cover them whatever the offset; the
    # word index is clamped so that corrupt offsets read inside raw32 (the caller checks
    # the bits used against the section's length)
    w = min(off >> _U(5), last)
    v = (_U(raw32[w]) | (_U(raw32[w + _U(1)]) << _U(32))) >> (off & _U(31))
    return v & ((_U(1) << nb) - _U(1))


@njit(nogil=True, cache=True)
def desymbolize(syms, perm, m, raw32, codes):
    """Inverse of ``symbolize``: codes (ncols, n) int64 from symbols and raw bits.

    ``raw32`` holds the raw section as little-endian words followed by at least two zero
    words. Returns the number of raw bits consumed (the caller checks it against the
    section's length).
    """
    ncols, n = codes.shape
    small = np.int64(1) << (m + 1)
    top = np.int64(1) << m
    mmask = top - 1
    last = _U(raw32.size - 2)
    fields = np.empty(n, dtype=np.uint64)
    widths = np.empty(n, dtype=np.uint64)
    off = _U(0)
    k = 0
    for c in range(ncols):
        col = perm[c]
        # three passes per column, the widths first: then every field's bit offset is a
        # running sum and the fields are read independently of each other
        wide = False
        for i in range(n):
            s = np.int64(syms[k + i])
            nr = (s >> m) - 1 if s >= small else 0
            nb = _U(nr + (s != 0))
            widths[i] = nb
            wide |= nb > _U(32)
        if wide:  # codes of more than 33 bits: their fields in two reads
            for i in range(n):
                nb = widths[i]
                low = min(nb, _U(32))
                field = _bits_at(raw32, last, off, low)
                if nb > low:
                    field |= _bits_at(raw32, last, off + _U(32), nb - low) << _U(32)
                fields[i] = field
                off += nb
        else:
            for i in range(n):
                nb = widths[i]
                fields[i] = _bits_at(raw32, last, off, nb)
                off += nb
        for i in range(n):
            s = np.int64(syms[k + i])
            big = s >= small
            nr = (s >> m) - 1 if big else 0
            a = (s & mmask) + top if big else s
            field = fields[i]
            a = (a << nr) | np.int64(field & ((_U(1) << _U(nr)) - _U(1)))
            codes[col, i] = -a if (field >> _U(nr)) & _U(1) else a
        k += n
    return np.int64(off)


@njit(nogil=True, cache=True)
def column_order_keys(codes, stride):
    """Per column, the mean bit length of ``|q|`` (what decides its symbol statistics) over
    one block of ``KEY_BLOCK`` consecutive rows in every ``stride`` blocks."""
    ncols, n = codes.shape
    keys = np.zeros(ncols, dtype=np.float64)
    for c in range(ncols):
        acc = 0
        taken = 0
        for b in range(0, n, KEY_BLOCK * stride):
            for i in range(b, min(b + KEY_BLOCK, n)):
                v = codes[c, i]
                acc += _bitlen(-v if v < 0 else v)
                taken += 1
        keys[c] = acc / max(taken, 1)
    return keys


@njit(nogil=True, cache=True)
def grid_quantize(x, step, codes, xhat):
    """Uniform quantizer: ``codes`` (d, n) int64 column-major from ``x`` (n, d) float32.

    ``q = round(x / step)``, clamped to ``|q| < 2**CODE_BITS`` (non-finite values get 0 and
    become exceptions); ``xhat`` (n, d) float32 receives ``float32(q * step)``.
    """
    n, d = x.shape
    qmax = float(2 ** CODE_BITS - 1)
    for i in range(n):
        for j in range(d):
            v = np.float64(x[i, j])
            q = np.rint(v / step)
            q = min(qmax, max(-qmax, q)) if q == q else 0.0
            codes[j, i] = np.int64(q)
            xhat[i, j] = np.float32(q * step)


@njit(nogil=True, cache=True)
def grid_reconstruct(codes, step, out):
    """``out`` (n, d) float32 = ``float32(q * step)`` from ``codes`` (d, n)."""
    n, d = out.shape
    for i in range(n):
        for j in range(d):
            out[i, j] = np.float32(np.float64(codes[j, i]) * step)


@njit(nogil=True, cache=True)
def find_exceptions(x, xhat, eps, index, delta):
    """Flat indices where ``|xhat - x| > eps`` (or NaN), with ``bits(x) - bits(xhat)``.

    ``x`` and ``xhat`` are flat float32 arrays; returns the count written to ``index``
    (int64) and ``delta`` (uint32, wrapping).
    """
    cnt = 0
    xb = x.view(np.uint32)
    hb = xhat.view(np.uint32)
    for k in range(x.size):
        err = abs(np.float64(xhat[k]) - np.float64(x[k]))
        if not err <= eps:
            index[cnt] = k
            delta[cnt] = xb[k] - hb[k]
            cnt += 1
    return cnt


@njit(nogil=True, cache=True)
def write_exceptions(index, delta, count, out, pos):
    """Varints: count, then per exception the index gap and the zigzag int32 delta.

    ``out`` needs ``10 + 16 * count`` bytes from ``pos``; returns the end position.
    """
    pos = write_varint(out, pos, count)
    prev = 0
    for k in range(count):
        pos = write_varint(out, pos, index[k] - prev)
        prev = index[k] + 1
        d = np.int64(np.int32(delta[k]))
        pos = write_varint(out, pos, (d << 1) ^ (d >> 63) if d < 0 else d << 1)
    return pos


@njit(nogil=True, cache=True)
def apply_exceptions(buf, pos, out):
    """Read the exceptions at ``buf[pos:]`` and patch ``out`` (flat float32); return the
    end position, or -1 when they are malformed (index out of range, bad varints).
    """
    bits = out.view(np.uint32)
    total = out.size
    count, pos = read_varint(buf, pos, total)
    if pos < 0:
        return -1
    at = 0
    for k in range(count):
        gap, pos = read_varint(buf, pos, total)
        if pos < 0:
            return -1
        at += gap
        if at >= total:
            return -1
        z, pos = read_varint(buf, pos, 0xFFFFFFFF)
        if pos < 0:
            return -1
        d = (z >> 1) ^ -(z & 1)
        bits[at] = np.uint32((np.int64(bits[at]) + d) & 0xFFFFFFFF)
        at += 1
    return pos



#: a symbol pair is ``first << PAIR_SHIFT | second``: symbols of 0 mantissa bits are bit
#: lengths (< CODE_BITS + 1 <= 64), and a shift unpairs faster than a division
PAIR_SHIFT = 6
PAIR_ALPHABET = 1 << (2 * PAIR_SHIFT)


@njit(nogil=True, cache=True)
def pair_symbols(syms, pairs, counts):
    """``pairs[j] = syms[2j] << PAIR_SHIFT | syms[2j + 1]`` (a missing last partner counts
    as 0); their histogram is added to ``counts``."""
    half = syms.size // 2
    for j in range(half):
        pairs[j] = (syms[2 * j] << PAIR_SHIFT) | syms[2 * j + 1]
    if syms.size & 1:
        pairs[half] = syms[syms.size - 1] << PAIR_SHIFT
    for j in range(pairs.size):
        counts[pairs[j]] += 1


@njit(nogil=True, cache=True)
def unpair_symbols(pairs, limit, syms):
    """Inverse of ``pair_symbols``; returns STATUS_CORRUPT when a symbol is ``>= limit`` or
    the missing partner of an odd last symbol is not 0."""
    half = syms.size // 2
    low = (1 << PAIR_SHIFT) - 1
    bad = 0
    for j in range(half):
        p = np.int64(pairs[j])
        first, second = p >> PAIR_SHIFT, p & low
        bad |= (first >= limit) | (second >= limit)
        syms[2 * j] = first
        syms[2 * j + 1] = second
    if syms.size & 1:
        p = np.int64(pairs[half])
        bad |= ((p & low) != 0) | ((p >> PAIR_SHIFT) >= limit)
        syms[syms.size - 1] = p >> PAIR_SHIFT
    return STATUS_CORRUPT if bad else STATUS_OK
