"""Scalar quantization kernels: affine codes, bf16 rounding, bit and nibble packing.

Affine codes follow one convention for int8, int4 and binary: a code ``c`` of dimension
``d`` decodes to ``offset[d] + scale[d] * c`` in float32 arithmetic (one multiply, one add,
each rounded: identical on every IEEE machine).
"""

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def quantize_affine(rows, offset, inv_scale, cmin, cmax, out):
    """``out[i, d] = clip(round((rows[i, d] - offset[d]) * inv_scale[d]), cmin, cmax)``.

    Computed in float64 so that the nearest code is found for every float32 input;
    ``inv_scale[d] == 0`` (a constant dimension) gives ``cmin`` clipped from 0.
    Returns the number of non-finite inputs met (their codes are ``cmin``).
    """
    n, dim = rows.shape
    bad = 0
    for i in range(n):
        for d in range(dim):
            x = np.float64(rows[i, d])
            if not np.isfinite(x):
                bad += 1
                out[i, d] = cmin
                continue
            t = np.round((x - np.float64(offset[d])) * inv_scale[d])
            if t < cmin:
                t = cmin
            elif t > cmax:
                t = cmax
            out[i, d] = np.uint8(t)
    return bad


@njit(nogil=True, cache=True)
def dequantize_affine(codes, offset, scale, out):
    """``out[i, d] = offset[d] + scale[d] * codes[i, d]`` in float32 arithmetic."""
    n, dim = codes.shape
    for i in range(n):
        for d in range(dim):
            out[i, d] = offset[d] + scale[d] * np.float32(codes[i, d])


@njit(nogil=True, cache=True)
def pack_nibbles(codes, out):
    """Pack the flat 4-bit ``codes`` two per byte, the first in the low nibble."""
    n = codes.size
    for j in range(n // 2):
        out[j] = (codes[2 * j] & 0xF) | ((codes[2 * j + 1] & 0xF) << 4)
    if n & 1:
        out[n // 2] = codes[n - 1] & 0xF


@njit(nogil=True, cache=True)
def unpack_nibbles(packed, out):
    """Inverse of ``pack_nibbles``; returns 1 if a padding nibble is not zero, else 0."""
    n = out.size
    for j in range(n // 2):
        b = packed[j]
        out[2 * j] = b & 0xF
        out[2 * j + 1] = b >> 4
    if n & 1:
        b = packed[n // 2]
        out[n - 1] = b & 0xF
        if b >> 4:
            return 1
    return 0


@njit(nogil=True, cache=True)
def unpack_codes(packed, nbits, out):
    """Unpack flat ``nbits``-bit codes (``1 <= nbits <= 8``) packed LSB first (as
    ``kernels.bits.pack_low_bits`` packs them) into ``out``; returns 1 if any padding bit is
    set, else 0."""
    mask = np.uint32((1 << nbits) - 1)
    acc = np.uint32(0)
    filled = 0
    pos = 0
    for i in range(out.size):
        while filled < nbits:
            acc |= np.uint32(packed[pos]) << np.uint32(filled)
            pos += 1
            filled += 8
        out[i] = acc & mask
        acc >>= np.uint32(nbits)
        filled -= nbits
    if filled > 0 and acc != 0:
        return 1
    return 0


@njit(nogil=True, cache=True)
def sign_bits(rows, threshold, out):
    """Bit ``d`` of row ``i`` is ``rows[i, d] > threshold[d]``, packed LSB first per row.

    ``out`` is ``(n, ceil(dim / 8))`` uint8; padding bits are zero. Returns the number
    of non-finite inputs (their bits are 0).
    """
    n, dim = rows.shape
    bad = 0
    for i in range(n):
        for j in range(out.shape[1]):
            out[i, j] = 0
        for d in range(dim):
            x = rows[i, d]
            if not np.isfinite(x):
                bad += 1
            elif x > threshold[d]:
                out[i, d >> 3] |= np.uint8(1 << (d & 7))
    return bad


@njit(nogil=True, cache=True)
def bits_to_values(packed, lo, hi, out):
    """``out[i, d]`` is ``hi[d]`` where bit ``d`` of row ``i`` is set, else ``lo[d]``.

    Returns 1 if a padding bit is set (corrupt input), else 0.
    """
    n, dim = out.shape
    for i in range(n):
        for d in range(dim):
            if (packed[i, d >> 3] >> (d & 7)) & 1:
                out[i, d] = hi[d]
            else:
                out[i, d] = lo[d]
        if dim & 7:
            if packed[i, dim >> 3] >> (dim & 7):
                return 1
    return 0


@njit(nogil=True, cache=True)
def float32_to_bf16(bits, out):
    """Round float32 (given as uint32 bits) to bfloat16 bits, to nearest even.

    NaNs stay NaNs (quiet, sign and top payload kept); values past bf16's largest finite
    number round to infinity as IEEE rounding prescribes.
    """
    for i in range(bits.size):
        u = np.uint32(bits[i])
        if (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000):
            out[i] = np.uint16((u >> np.uint32(16)) | np.uint32(0x0040))
        else:
            lsb = (u >> np.uint32(16)) & np.uint32(1)
            out[i] = np.uint16((u + np.uint32(0x7FFF) + lsb) >> np.uint32(16))


@njit(nogil=True, cache=True)
def bf16_to_float32(half, out):
    """bfloat16 bits to float32 bits (exact: bf16 is the top half of a float32)."""
    for i in range(half.size):
        out[i] = np.uint32(half[i]) << np.uint32(16)
