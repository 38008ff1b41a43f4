"""Interleaved rANS coder (Numba), 32-bit states emitting 16-bit little-endian words.

Guarantees and requirements
---------------------------
* ``freq`` sums to exactly ``1 << precision`` (``precision <= 15``) and every symbol that
  occurs has ``freq >= 1``; the coder is then exactly invertible.
* Four states interleave over the symbol sequence (symbol ``i`` uses state ``i % 4``); the
  encoder runs backwards and fills its output from the end, so the decoder reads one
  forward stream: the four final states (4 bytes each, little endian), then 16-bit words.
* A state emits or consumes at most one word per symbol (``precision <= 16``), so
  renormalisation is a branch-free select.
* The decoder never reads outside ``stream``; it returns ``STATUS_OK`` only when every
  byte was consumed and every state returned to its initial value, which catches most
  corruption on its own.
"""

import numpy as np
from numba import njit

RANS_L = 1 << 16  # lower bound of a normalised state
_U = np.uint64
STATUS_OK = 0
STATUS_CORRUPT = 1


@njit(inline="always")
def _encode_step(x, f, c, precision, out, pos):
    # always store the candidate word below pos; keep it only if the state overflows
    overflow = x >= (f << (32 - precision))
    out[pos - 2] = x & 0xFF
    out[pos - 1] = (x >> 8) & 0xFF
    if overflow:
        x >>= 16
        pos -= 2
    q = np.uint32(x) // np.uint32(f)
    x = (np.int64(q) << precision) + (x - np.int64(q) * f) + c
    return x, pos


@njit(nogil=True, cache=True)
def rans_encode(values, shift, freq, cum, precision, out):
    """Encode symbols ``values >> shift`` into ``out``; return the start offset.

    ``out`` must hold at least ``2 * values.size + 18`` bytes; the stream is
    ``out[start:]``.
    """
    n = values.size
    pos = out.size
    x0 = np.int64(RANS_L)
    x1 = np.int64(RANS_L)
    x2 = np.int64(RANS_L)
    x3 = np.int64(RANS_L)
    n4 = n - (n & 3)
    # the tail (n % 4 symbols) is decoded last, so it is encoded first
    for i in range(n - 1, n4 - 1, -1):
        s = np.int64(values[i] >> shift)
        j = i & 3
        if j == 0:
            x0, pos = _encode_step(x0, np.int64(freq[s]), np.int64(cum[s]), precision, out, pos)
        elif j == 1:
            x1, pos = _encode_step(x1, np.int64(freq[s]), np.int64(cum[s]), precision, out, pos)
        else:
            x2, pos = _encode_step(x2, np.int64(freq[s]), np.int64(cum[s]), precision, out, pos)
    for i in range(n4 - 4, -1, -4):
        s = np.int64(values[i + 3] >> shift)
        x3, pos = _encode_step(x3, np.int64(freq[s]), np.int64(cum[s]), precision, out, pos)
        s = np.int64(values[i + 2] >> shift)
        x2, pos = _encode_step(x2, np.int64(freq[s]), np.int64(cum[s]), precision, out, pos)
        s = np.int64(values[i + 1] >> shift)
        x1, pos = _encode_step(x1, np.int64(freq[s]), np.int64(cum[s]), precision, out, pos)
        s = np.int64(values[i] >> shift)
        x0, pos = _encode_step(x0, np.int64(freq[s]), np.int64(cum[s]), precision, out, pos)
    for x in (x3, x2, x1, x0):
        pos -= 4
        out[pos] = x & 0xFF
        out[pos + 1] = (x >> 8) & 0xFF
        out[pos + 2] = (x >> 16) & 0xFF
        out[pos + 3] = (x >> 24) & 0xFF
    return pos


@njit(inline="always")
def _decode_step(x, slot_table, precision, mask, stream, pos, last):
    # unsigned indices spare Numba's negative-index wraparound code in the hot loop
    e = slot_table[_U(x & mask)]
    x = np.int64(e & 0xFFFF) * (x >> precision) + np.int64(e >> 16)
    # branch-free renormalisation: the word is loaded at a clamped position and kept only
    # when the state underflows; overrunning reads are caught by the final position check
    p = _U(min(pos, last))
    w = np.int64(stream[p]) | (np.int64(stream[p + _U(1)]) << 8)
    if x < RANS_L:
        x = (x << 16) | w
        pos += 2
    return x, pos


@njit(nogil=True, cache=True)
def rans_decode(stream, slot_table, slot_symbol, precision, out):
    """Decode ``out.size`` symbols from ``stream`` into ``out``; return a status code.

    ``slot_table`` and ``slot_symbol`` come from ``build_slot_table``.
    """
    n = out.size
    end = stream.size
    if n == 0:
        return STATUS_OK if end == 0 else STATUS_CORRUPT
    if end < 16 or (end & 1):
        return STATUS_CORRUPT
    x0 = np.int64(0)
    x1 = np.int64(0)
    x2 = np.int64(0)
    x3 = np.int64(0)
    for j in range(4):
        x = (np.int64(stream[4 * j]) | (np.int64(stream[4 * j + 1]) << 8)
             | (np.int64(stream[4 * j + 2]) << 16) | (np.int64(stream[4 * j + 3]) << 24))
        if j == 0:
            x0 = x
        elif j == 1:
            x1 = x
        elif j == 2:
            x2 = x
        else:
            x3 = x
    pos = 16
    last = end - 2
    mask = np.int64((1 << precision) - 1)
    n4 = n - (n & 3)
    for g in range(n4 // 4):
        i = _U(4 * g)
        out[i] = slot_symbol[_U(x0 & mask)]
        x0, pos = _decode_step(x0, slot_table, precision, mask, stream, pos, last)
        out[i + _U(1)] = slot_symbol[_U(x1 & mask)]
        x1, pos = _decode_step(x1, slot_table, precision, mask, stream, pos, last)
        out[i + _U(2)] = slot_symbol[_U(x2 & mask)]
        x2, pos = _decode_step(x2, slot_table, precision, mask, stream, pos, last)
        out[i + _U(3)] = slot_symbol[_U(x3 & mask)]
        x3, pos = _decode_step(x3, slot_table, precision, mask, stream, pos, last)
    for i in range(n4, n):
        j = i & 3
        if j == 0:
            out[i] = slot_symbol[x0 & mask]
            x0, pos = _decode_step(x0, slot_table, precision, mask, stream, pos, last)
        elif j == 1:
            out[i] = slot_symbol[x1 & mask]
            x1, pos = _decode_step(x1, slot_table, precision, mask, stream, pos, last)
        else:
            out[i] = slot_symbol[x2 & mask]
            x2, pos = _decode_step(x2, slot_table, precision, mask, stream, pos, last)
    if pos != end:
        return STATUS_CORRUPT
    if x0 != RANS_L or x1 != RANS_L or x2 != RANS_L or x3 != RANS_L:
        return STATUS_CORRUPT
    return STATUS_OK


@njit(nogil=True, cache=True)
def histogram(values, shift, counts):
    """Count the symbols ``values >> shift`` into ``counts`` (which must be zeroed)."""
    for i in range(values.size):
        counts[values[i] >> shift] += 1


@njit(nogil=True, cache=True)
def write_table(freq, out, pos):
    """Write the sparse table of ``freq`` at ``out[pos:]`` as varints; return the new pos.

    Layout: count of used symbols, then per used symbol its delta from the previous one
    (the first: from 0) and its frequency. ``out`` needs ``3 * 2 * used + 3`` bytes.
    """
    n_used = 0
    for s in range(freq.size):
        if freq[s]:
            n_used += 1
    pos = write_varint(out, pos, n_used)
    prev = 0
    for s in range(freq.size):
        if freq[s]:
            pos = write_varint(out, pos, s - prev)
            pos = write_varint(out, pos, freq[s])
            prev = s
    return pos


@njit(inline="always")
def write_varint(out, pos, value):
    while value >= 0x80:
        out[pos] = (value & 0x7F) | 0x80
        value >>= 7
        pos += 1
    out[pos] = value
    return pos + 1


@njit(inline="always")
def read_varint(buf, pos, limit):
    """Return (value, new pos); pos -1 if the varint runs past the buffer or ``limit``."""
    value = 0
    shift = 0
    while True:
        if pos >= buf.size or shift > 56:
            return 0, -1
        b = np.int64(buf[pos])
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
    if value > limit:
        return 0, -1
    return value, pos


@njit(nogil=True, cache=True)
def read_table(buf, pos, alphabet_size, precision, symbols, freqs, slot_table, slot_symbol):
    """Parse a table written by ``write_table`` and build the decoder's slot tables.

    ``symbols``/``freqs`` (size ``>= min(alphabet_size, 1 << precision)``) receive the used
    symbols and their frequencies. Returns (number of used symbols, new pos); pos is -1
    when the table is malformed: symbols not increasing or out of the alphabet,
    frequencies not positive or not summing to ``1 << precision``.
    """
    total = 1 << precision
    n_used, pos = read_varint(buf, pos, min(alphabet_size, total))
    if pos < 0:
        return 0, -1
    s = 0
    c = 0
    for j in range(n_used):
        delta, pos = read_varint(buf, pos, alphabet_size)
        if pos < 0 or (j > 0 and delta == 0):
            return 0, -1
        s += delta
        f, pos = read_varint(buf, pos, total)
        if pos < 0 or s >= alphabet_size or f <= 0 or c + f > total:
            return 0, -1
        symbols[j] = s
        freqs[j] = f
        if slot_table.size:
            for slot in range(c, c + f):
                slot_table[slot] = f | ((slot - c) << 16)
                slot_symbol[slot] = s
        c += f
    if n_used and c != total:
        return 0, -1
    return n_used, pos
