"""Raw low bits of each value, stored in two planes.

For ``k`` raw bits per value: first ``k // 8`` little-endian bytes per value (value after
value), then the remaining ``k % 8`` bits of every value packed LSB first. Byte planes make
the common widths (16 of float32's 20 raw bits) plain loads and stores.
"""

import numpy as np
from numba import njit

from .rans_core import FLOAT32_RAW_BITS


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
        for i in range(n):
            out[2 * i] = values[i] & 0xFF
            out[2 * i + 1] = (values[i] >> 8) & 0xFF
        pos = 2 * n
    else:
        for i in range(n):
            v = np.uint64(values[i])
            for b in range(kb):
                out[pos] = (v >> np.uint64(8 * b)) & np.uint64(0xFF)
                pos += 1
    if kr == 4:
        shift = 8 * kb
        for j in range(n // 2):
            out[pos + j] = ((values[2 * j] >> shift) & 0xF) | (((values[2 * j + 1] >> shift) & 0xF) << 4)
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


@njit(nogil=True, cache=True)
def pack_and_count(values, k, out, counts):
    """``pack_low_bits`` and, in the same pass, ``counts[values >> k] += 1`` (one read of the
    values instead of two); returns the raw bytes used."""
    n = values.size
    # odd and even values count into two tables, summed at the end: a run of equal symbols
    # (common: embeddings' exponents) then does not wait on its own previous increment
    odd = np.zeros_like(counts)
    if k == FLOAT32_RAW_BITS:  # float32 at the exact codec's split: a 16-bit plane and a 4-bit plane
        half = n // 2
        nib = np.uint64(2 * n)
        # unsigned indices spare Numba's negative-index wraparound code (measured: 20% of
        # this loop's time)
        for i in range(half):
            j = np.uint64(i)
            a = values[2 * j]
            b = values[2 * j + 1]
            out[4 * j] = a & 0xFF
            out[4 * j + 1] = (a >> 8) & 0xFF
            out[4 * j + 2] = b & 0xFF
            out[4 * j + 3] = (b >> 8) & 0xFF
            out[nib + j] = ((a >> 16) & 0xF) | (((b >> 16) & 0xF) << 4)
            counts[np.uint64(a >> FLOAT32_RAW_BITS)] += 1
            odd[np.uint64(b >> FLOAT32_RAW_BITS)] += 1
        if n & 1:
            a = values[n - 1]
            out[2 * n - 2] = a & 0xFF
            out[2 * n - 1] = (a >> 8) & 0xFF
            out[nib + half] = (a >> 16) & 0xF
            counts[a >> FLOAT32_RAW_BITS] += 1
        for s in range(counts.size):
            counts[s] += odd[s]
        return raw_size(n, k)
    if k == 4:  # bfloat16 (and float32 that was bfloat16, shifted): one nibble plane
        half = n // 2
        for j in range(half):
            a = values[2 * j]
            b = values[2 * j + 1]
            out[j] = (a & 0xF) | ((b & 0xF) << 4)
            counts[a >> 4] += 1
            odd[b >> 4] += 1
        if n & 1:
            a = values[n - 1]
            out[half] = a & 0xF
            counts[a >> 4] += 1
        for s in range(counts.size):
            counts[s] += odd[s]
        return raw_size(n, k)
    for i in range(n):
        counts[values[i] >> k] += 1
    return pack_low_bits(values, k, out)


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
