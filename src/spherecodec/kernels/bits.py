"""Raw low bits of each value, stored in two planes.

For ``k`` raw bits per value: first ``k // 8`` little-endian bytes per value (value after
value), then the remaining ``k % 8`` bits of every value packed LSB first. Byte planes make
the common widths (16 of float32's 20 raw bits) plain loads and stores.
"""

import numpy as np
from numba import njit

from .jit import callee


#: ``histogram`` counts into two tables from this many values on
TWO_TABLES = 1 << 16


@njit(cache=True)
def raw_size(n, k):
    """Bytes of the raw section for ``n`` values of ``k`` bits."""
    return n * (k // 8) + (n * (k % 8) + 7) // 8


@njit(nogil=True, cache=True)
def pack_low_bits(values, k, out):
    """Write the low ``k`` bits (``k <= 56``) of each value into ``out``; return bytes used."""
    n = values.size
    kb = k // 8
    kr = k % 8
    pos = 0
    if kb == 2:
        # 16-bit stores, little endian like every CPU Numba compiles for: LLVM vectorises
        # this loop, not its bytewise form (2.0 against 6.0 us for a 32 x 384 float32 blob)
        words = out[:2 * n].view(np.uint16)
        for i in range(n):
            words[i] = values[i] & 0xFFFF
        pos = 2 * n
    else:
        for i in range(n):
            v = np.uint64(values[i])
            for b in range(kb):
                out[pos] = (v >> np.uint64(8 * b)) & np.uint64(0xFF)
                pos += 1
    if kr == 4:
        # a shift of the values' own type (an int64 one makes every value signed 64-bit)
        # and a slice: LLVM vectorises the loop (1.7 against 6.1 us for 32 x 384 float32)
        shift = values.dtype.type(8 * kb)
        nibbles = out[pos:pos + n // 2]
        if kb == 0:  # bfloat16: no shift at all, 4x faster again
            for j in range(n // 2):
                nibbles[j] = (values[2 * j] & 0xF) | ((values[2 * j + 1] & 0xF) << 4)
        else:
            for j in range(n // 2):
                nibbles[j] = ((values[2 * j] >> shift) & 0xF) | (((values[2 * j + 1] >> shift) & 0xF) << 4)
        pos += n // 2
        if n & 1:
            out[pos] = (values[n - 1] >> shift) & 0xF
            pos += 1
    elif kr:
        rmask = np.uint64((1 << kr) - 1)
        acc = np.uint64(0)
        nbits = 0
        for i in range(n):
            acc |= ((np.uint64(values[i]) >> np.uint64(8 * kb)) & rmask) << np.uint64(nbits)
            nbits += kr
            if nbits >= 8:
                out[pos] = acc & np.uint64(0xFF)
                acc >>= np.uint64(8)
                nbits -= 8
                pos += 1
        if nbits > 0:
            out[pos] = acc & np.uint64(0xFF)
            pos += 1
    return pos


@callee(nogil=True, cache=True)
def pack_and_count(values, k, out, counts):
    """``pack_low_bits`` and ``counts[values >> k] += 1`` (``histogram``) in one call;
    returns the raw bytes used. Two passes, each one a loop LLVM compiles well (the packing
    vectorised): on 2**19 float32 0.43 ns per value, against 0.57 for one pass doing both;
    bfloat16 0.33 against 0.43 (Zen 4)."""
    pos = pack_low_bits(values, k, out)
    histogram(values, k, counts)
    return pos


@callee(nogil=True, cache=True)
def histogram(values, shift, counts):
    """Add the count of each symbol ``values >> shift`` to ``counts``.

    From ``TWO_TABLES`` values on, odd and even values count into two tables, summed at the
    end: a run of equal symbols (common: embeddings' exponents) then does not wait on its
    own previous increment; below, zeroing and summing the second table costs more than
    it saves (a 32-row blob)."""
    n = values.size
    # unsigned indices (a shift of the values' own type keeps them so) spare Numba's
    # negative-index wraparound code (measured: 20% of the loop)
    s = values.dtype.type(shift)
    if n < TWO_TABLES:
        for i in range(n):
            counts[values[i] >> s] += 1
        return
    odd = np.zeros_like(counts)
    for i in range(n // 2):
        j = np.uint64(i)
        counts[values[2 * j] >> s] += 1
        odd[values[2 * j + 1] >> s] += 1
    if n & 1:
        counts[values[n - 1] >> s] += 1
    for c in range(counts.size):
        counts[c] += odd[c]


@njit(nogil=True, cache=True)
def merge_low_bits(out, raw, k):
    """``out[i] = out[i] << k | raw bits of value i``; ``raw`` must have ``raw_size`` bytes."""
    n = out.size
    kb = k // 8
    kr = k % 8
    utype = out.dtype.type
    sk = utype(k)
    # the byte plane: the common widths get straight-line loops the compiler can vectorise
    if kb == 2:
        for i in range(n):
            out[i] = (out[i] << sk) | utype(raw[2 * i]) | (utype(raw[2 * i + 1]) << utype(8))
    elif kb == 0:
        for i in range(n):
            out[i] = out[i] << sk
    else:
        for i in range(n):
            v = out[i] << sk
            base = i * kb
            for b in range(kb):
                v |= utype(raw[base + b]) << utype(8 * b)
            out[i] = v
    if kr:
        start = n * kb
        shift = utype(8 * kb)
        rmask = utype((1 << kr) - 1)
        if kr == 4:
            for i in range(n):
                field = (utype(raw[start + (i >> 1)]) >> utype(4 * (i & 1))) & rmask
                out[i] |= field << shift
        else:
            last = raw.size - 1
            for i in range(n):
                bitpos = i * kr
                byte = start + (bitpos >> 3)
                word = utype(raw[byte]) | (utype(raw[min(byte + 1, last)]) << utype(8))
                out[i] |= ((word >> utype(bitpos & 7)) & rmask) << shift


@njit(inline="always")
def _merge_groups_of_8(out, raw, groups, k, st):
    # merge_low_bits_shifted's groups of 8 values for a width k known when compiling
    utype = out.dtype.type
    sk = utype(k)
    rmask = np.uint64((1 << k) - 1)
    for g in range(groups):
        base = g * k
        fields = np.uint64(0)
        for b in range(k):
            fields |= np.uint64(raw[base + b]) << np.uint64(8 * b)
        for j in range(8):
            low = utype((fields >> np.uint64(j * k)) & rmask)
            out[8 * g + j] = ((out[8 * g + j] << sk) | low) << st


@njit(nogil=True, cache=True)
def merge_low_bits_shifted(out, raw, k, t):
    """``out[i] = (out[i] << k | raw bits of value i) << t``: ``merge_low_bits``, then every
    value shifted left by ``t`` (the exact codec's values whose low ``t`` bits are zero), in
    one pass where ``k < 8``: nibbles two values a byte, other widths eight values
    (``k`` whole bytes) at a time (2.6x faster than ``merge_low_bits`` for 7 bits)."""
    if k >= 8:
        merge_low_bits(out, raw, k)
        if t:
            st = out.dtype.type(t)
            for i in range(out.size):
                out[i] = out[i] << st
        return
    n = out.size
    utype = out.dtype.type
    sk = utype(k)
    st = utype(t)
    if k == 4:
        half = n // 2
        for j in range(half):
            byte = utype(raw[j])
            out[2 * j] = ((out[2 * j] << sk) | (byte & utype(15))) << st
            out[2 * j + 1] = ((out[2 * j + 1] << sk) | (byte >> utype(4))) << st
        if n & 1:
            out[n - 1] = ((out[n - 1] << sk) | (utype(raw[half]) & utype(15))) << st
        return
    rmask = np.uint64((1 << k) - 1)
    groups = n // 8 if k else 0
    if k == 7:  # float16, and float32 that was float16: a constant width the compiler unrolls
        _merge_groups_of_8(out, raw, groups, 7, st)
    else:
        for g in range(groups):
            fields = np.uint64(0)
            for b in range(k):
                fields |= np.uint64(raw[g * k + b]) << np.uint64(8 * b)
            for j in range(8):
                low = utype((fields >> np.uint64(j * k)) & rmask)
                out[8 * g + j] = ((out[8 * g + j] << sk) | low) << st
    for i in range(8 * groups, n):  # the last values (every value when k == 0)
        low = np.uint64(0)
        if k:
            bitpos = i * k
            byte = bitpos >> 3
            word = np.uint64(raw[byte])
            if byte + 1 < raw.size:
                word |= np.uint64(raw[byte + 1]) << np.uint64(8)
            low = (word >> np.uint64(bitpos & 7)) & rmask
        out[i] = ((out[i] << sk) | utype(low)) << st
