"""Lane-interleaved rANS coder (Numba): 32-bit states emitting 16-bit little-endian words.

Guarantees and requirements
---------------------------
* ``freq`` sums to exactly ``1 << precision`` (``precision <= 15``) and every symbol that
  occurs has ``freq >= 1``; the coder is then exactly invertible.
* Streams of at least ``LANE_THRESHOLD`` symbols use ``LANES`` (8) independent coders:
  symbol ``i`` goes to lane ``i % 8``, and each lane writes its own substream. Separate
  substreams keep the lanes' dependency chains apart, which is what makes decoding fast.
  Shorter streams use one lane.
* Body layout: the byte lengths of lanes ``0 .. lanes-2`` as varints (the last lane takes
  the rest), then each lane's substream: its final state (u32, little endian) followed by
  the 16-bit words in the order the decoder consumes them.
* A state emits or consumes at most one word per symbol, so renormalisation is a
  branch-free select.
* The decoder never reads outside ``stream``; it returns ``STATUS_OK`` only when every
  lane consumed exactly its bytes and returned to the initial state ``RANS_L``, which
  catches most corruption on its own.
"""

import numpy as np
from numba import njit

RANS_L = 1 << 16  # lower bound of a normalised state
LANES = 8
LANE_THRESHOLD = 256
_U = np.uint64
STATUS_OK = 0
STATUS_CORRUPT = 1


@njit
def lane_count(n):
    """Lanes used for a stream of ``n`` symbols."""
    return LANES if n >= LANE_THRESHOLD else 1


@njit
def _encode_step(x, e, precision, out, pos):
    # e packs the symbol's frequency (bits 0-15), cumulative frequency (16-31) and
    # reciprocal (32-63): one load from a table small enough for L1
    f = e & _U(0xFFFF)
    c = (e >> _U(16)) & _U(0xFFFF)
    rcp = e >> _U(32)
    # always store the candidate word below pos; keep it only if the state overflows
    overflow = x >= (f << _U(32 - precision))
    out[_U(pos - 2)] = x & _U(0xFF)
    out[_U(pos - 1)] = (x >> _U(8)) & _U(0xFF)
    if overflow:
        x >>= _U(16)
        pos -= 2
    # x // f by a reciprocal: rcp = min(floor(2**32 / f), 2**32 - 1) underestimates the
    # quotient by at most one for x < 2**32, and one exact correction step fixes it; then
    # (q << precision) + (x - q f) + c, written so that the correction is a plain add
    # (an if here compiles to a mispredicted branch: measured 5% slower)
    q = (x * rcp) >> _U(32)
    q += _U(x - q * f >= f)
    x = x + c + q * ((_U(1) << _U(precision)) - f)
    return x, pos


@njit
def _flush_state(x, out, pos):
    pos -= 4
    out[pos] = x & _U(0xFF)
    out[pos + 1] = (x >> _U(8)) & _U(0xFF)
    out[pos + 2] = (x >> _U(16)) & _U(0xFF)
    out[pos + 3] = (x >> _U(24)) & _U(0xFF)
    return pos


#: no symbol may take more than 1 - 2**-CAP_SHIFT of a table's mass (see quantize_counts)
CAP_SHIFT = 8
MIN_PRECISION = 14
MAX_PRECISION = 15


@njit(cache=True)
def choose_precision(n_used):
    """Precision for a table of ``n_used`` symbols: the smallest from 14 to 15 with at
    least two slots per symbol (``entropy.choose_precision`` tells why)."""
    p = MIN_PRECISION
    while (1 << p) < 2 * n_used and p < MAX_PRECISION:
        p += 1
    return p


@njit(nogil=True, cache=True)
def encoder_table(freq):
    """The encoder's packed per-symbol table for integer frequencies ``freq`` (int64)."""
    table = np.zeros(freq.size, dtype=np.uint64)
    cum = _U(0)
    for s in range(freq.size):
        f = _U(freq[s])
        if f:
            rcp = min(_U(1 << 32) // f, _U((1 << 32) - 1))
            table[s] = f | (cum << _U(16)) | (rcp << _U(32))
        else:
            table[s] = cum << _U(16)
        cum += f
    return table


@njit
def _descending(values):
    # indices by decreasing value, ties by increasing index (a stable sort of -values), as
    # unique keys sorted by a plain merge sort: Numba's own sorts take seconds to compile
    # (values < 2**40 here, indices < 2**16)
    n = values.size
    keys = np.empty(n, dtype=np.int64)
    top = values.max()
    for j in range(n):
        keys[j] = ((top - values[j]) << 16) | j
    spare = np.empty_like(keys)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid, hi = min(lo + width, n), min(lo + 2 * width, n)
            i, j = lo, mid
            for k in range(lo, hi):
                if j >= hi or (i < mid and keys[i] <= keys[j]):
                    spare[k] = keys[i]
                    i += 1
                else:
                    spare[k] = keys[j]
                    j += 1
        keys, spare = spare, keys
        width *= 2
    return keys & 0xFFFF


@njit(nogil=True, cache=True)
def quantize_counts(counts, precision, cap_shift):
    """``entropy.quantize_frequencies`` (which checks its arguments): integer frequencies
    summing to ``2**precision``, ``>= 1`` where ``counts > 0``, by largest remainder; no
    symbol above ``1 - 2**-cap_shift`` of the mass (a lone symbol's neighbour gets a
    phantom share)."""
    total_mass = 1 << precision
    out = np.zeros(counts.size, dtype=np.int64)
    used = np.flatnonzero(counts)
    if used.size == 0:
        return out
    if used.size == 1:
        counts = counts.copy()
        neighbour = used[0] + 1 if used[0] + 1 < counts.size else used[0] - 1
        counts[neighbour] = max(1, counts[used[0]] >> cap_shift)
        used = np.flatnonzero(counts)
    n = counts.sum()
    k = used.size
    freq = np.empty(k, dtype=np.int64)
    remainder = np.empty(k, dtype=np.int64)
    total = 0
    for j in range(k):
        scaled = counts[used[j]] * total_mass
        freq[j] = max(scaled // n, 1)
        remainder[j] = scaled - (scaled // n) * n
        total += freq[j]
    deficit = total_mass - total
    if deficit > 0:
        order = _descending(remainder)
        for j in range(deficit):
            freq[order[j]] += 1
    while deficit < 0:
        # forced minimum frequencies overshot: take back from the largest, one each
        order = _descending(freq)
        taken = 0
        for j in range(min(-deficit, k)):
            if freq[order[j]] > 1:
                freq[order[j]] -= 1
                taken += 1
        deficit += taken
    cap = total_mass - (total_mass >> cap_shift)
    top = np.argmax(freq)
    if freq[top] > cap:
        excess = freq[top] - cap
        freq[top] = cap
        share, rest = divmod(excess, k - 1)
        given = 0
        for j in range(k):
            if j != top:
                freq[j] += share + (1 if given < rest else 0)
                given += 1
    for j in range(k):
        out[used[j]] = freq[j]
    return out


@njit(cache=True)
def write_stream_head(counts, backend_id, out, pos):
    """The head of an entropy stream (layout: ``spherecodec.entropy``) for the symbol
    ``counts``: backend byte, precision byte and frequency table at ``out[pos:]``. Returns
    (frequencies, precision, position after the table)."""
    if counts.size < 2:
        raise ValueError("an alphabet has at least 2 symbols")
    n_used = 0
    for c in counts:
        if c:
            n_used += 1
    precision = choose_precision(max(n_used, 2))
    if n_used > 1 << precision:
        raise ValueError("more distinct symbols than a 15-bit frequency table holds")
    freq = quantize_counts(counts, precision, CAP_SHIFT)
    out[pos] = backend_id
    out[pos + 1] = precision
    return freq, precision, write_table(freq, out, pos + 2)


def encode_scratch_size(n):
    """Bytes of scratch space ``rans_encode`` needs for ``n`` symbols."""
    return 2 * n + 8 * LANES + 16


@njit(nogil=True, cache=True)
def rans_encode(values, shift, table, precision, scratch, out, pos):
    """Encode the symbols ``values >> shift`` at ``out[pos:]``: the body's byte length
    (varint), then the body.

    ``table`` (uint64 over the alphabet) comes from ``encoder_table``;
    ``scratch`` holds ``encode_scratch_size(n)`` bytes; ``out`` needs as many from ``pos``.
    Returns the position after the body.
    """
    n = values.size
    if n == 0:
        return write_varint(out, pos, 0)
    if lane_count(n) == 1:
        p = scratch.size
        x = _U(RANS_L)
        for i in range(n - 1, -1, -1):
            s = values[i] >> shift
            x, p = _encode_step(x, table[s], precision, scratch, p)
        p = _flush_state(x, scratch, p)
        size = scratch.size - p
        pos = write_varint(out, pos, size)
        out[pos:pos + size] = scratch[p:]
        return pos + size
    # lane j writes backwards from the end of its region of scratch
    ends = np.empty(LANES, dtype=np.int64)
    e = 0
    for j in range(LANES):
        e += 2 * ((n - j + LANES - 1) // LANES) + 8
        ends[j] = e
    starts = np.empty(LANES, dtype=np.int64)
    # four lanes per pass keep every state and position in registers
    _encode_four_lanes(values, shift, table, precision, scratch, ends, starts, 0)
    _encode_four_lanes(values, shift, table, precision, scratch, ends, starts, 4)
    body = ends[LANES - 1] - starts[LANES - 1]
    for j in range(LANES - 1):
        body += varint_size(ends[j] - starts[j]) + ends[j] - starts[j]
    pos = write_varint(out, pos, body)
    for j in range(LANES - 1):
        pos = write_varint(out, pos, ends[j] - starts[j])
    for j in range(LANES):
        size = ends[j] - starts[j]
        out[pos:pos + size] = scratch[starts[j]:ends[j]]
        pos += size
    return pos


@njit
def _encode_four_lanes(values, shift, table, precision, scratch, ends, starts, first):
    """Encode lanes ``first .. first+3`` into their regions; record where each starts."""
    n = values.size
    n8 = n - n % LANES
    pa, pb, pc, pd = ends[first], ends[first + 1], ends[first + 2], ends[first + 3]
    xa = xb = xc = xd = _U(RANS_L)
    # the tail symbol of a lane (index n8 + lane) is decoded last, so it is encoded first
    tail = n - n8
    if first + 3 < tail:
        s = values[n8 + first + 3] >> shift
        xd, pd = _encode_step(xd, table[s], precision, scratch, pd)
    if first + 2 < tail:
        s = values[n8 + first + 2] >> shift
        xc, pc = _encode_step(xc, table[s], precision, scratch, pc)
    if first + 1 < tail:
        s = values[n8 + first + 1] >> shift
        xb, pb = _encode_step(xb, table[s], precision, scratch, pb)
    if first < tail:
        s = values[n8 + first] >> shift
        xa, pa = _encode_step(xa, table[s], precision, scratch, pa)
    for g in range(n8 // LANES - 1, -1, -1):
        i = _U(LANES * g + first)
        s = values[i + _U(3)] >> shift
        xd, pd = _encode_step(xd, table[s], precision, scratch, pd)
        s = values[i + _U(2)] >> shift
        xc, pc = _encode_step(xc, table[s], precision, scratch, pc)
        s = values[i + _U(1)] >> shift
        xb, pb = _encode_step(xb, table[s], precision, scratch, pb)
        s = values[i] >> shift
        xa, pa = _encode_step(xa, table[s], precision, scratch, pa)
    starts[first] = _flush_state(xa, scratch, pa)
    starts[first + 1] = _flush_state(xb, scratch, pb)
    starts[first + 2] = _flush_state(xc, scratch, pc)
    starts[first + 3] = _flush_state(xd, scratch, pd)


@njit
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


@njit
def _emit(out, i, symbol, raw, nibbles, fused):
    if fused:
        i = _U(i)
        low = np.uint32(raw[_U(2) * i]) | (np.uint32(raw[_U(2) * i + _U(1)]) << np.uint32(8))
        nibble = (np.uint32(raw[_U(nibbles) + (i >> _U(1))]) >> np.uint32(_U(4) * (i & _U(1)))) & np.uint32(0xF)
        out[i] = (np.uint32(symbol) << np.uint32(20)) | (nibble << np.uint32(16)) | low
    else:
        out[i] = symbol


@njit
def _read_state(stream, p):
    return (np.int64(stream[p]) | (np.int64(stream[p + 1]) << 8)
            | (np.int64(stream[p + 2]) << 16) | (np.int64(stream[p + 3]) << 24))


@njit(nogil=True, cache=True)
def rans_decode(stream, slot_table, slot_symbol, precision, out, raw):
    """Decode ``out.size`` symbols; see ``_rans_decode``. Returns a status code."""
    if raw.size:
        return _rans_decode(stream, slot_table, slot_symbol, precision, out, raw, True)
    return _rans_decode(stream, slot_table, slot_symbol, precision, out, raw, False)


@njit(inline="always")  # inlined with a constant `fused`, so each caller gets its own loop
def _rans_decode(stream, slot_table, slot_symbol, precision, out, raw, fused):
    """Decode ``out.size`` symbols from the body ``stream`` into ``out``; return a status.

    ``slot_table`` and ``slot_symbol`` come from ``read_table``. ``raw`` is empty (``out``
    receives the symbols) or holds the 20 low bits of every value in the
    ``kernels.bits`` layout (16-bit plane, then 4-bit plane): ``out[i]`` then receives
    ``symbol << 20 | low bits``, the float32 exact codec's values, merged here to spare a
    second pass over the output.
    """
    n = out.size
    nibbles = 2 * n
    size = stream.size
    if n == 0:
        return STATUS_OK if size == 0 else STATUS_CORRUPT
    mask = np.int64((1 << precision) - 1)
    if lane_count(n) == 1:
        if size < 4 or size & 1:
            return STATUS_CORRUPT
        x = _read_state(stream, 0)
        pos = 4
        for i in range(n):
            _emit(out, i, slot_symbol[_U(x & mask)], raw, nibbles, fused)
            x, pos = _decode_step(x, slot_table, precision, mask, stream, pos, size - 2)
        return STATUS_OK if (pos == size and x == RANS_L) else STATUS_CORRUPT
    lengths = np.empty(LANES, dtype=np.int64)
    pos = 0
    total = 0
    for j in range(LANES - 1):
        length, pos = read_varint(stream, pos, size)
        if pos < 0:
            return STATUS_CORRUPT
        lengths[j] = length
        total += length
    if total > size - pos:
        return STATUS_CORRUPT
    lengths[LANES - 1] = size - pos - total
    starts = np.empty(LANES, dtype=np.int64)
    for j in range(LANES):
        if lengths[j] < 4 or lengths[j] & 1:
            return STATUS_CORRUPT
        starts[j] = pos
        pos += lengths[j]
    # per lane: state, read position, last position a word may be loaded from, end
    x0 = _read_state(stream, starts[0])
    x1 = _read_state(stream, starts[1])
    x2 = _read_state(stream, starts[2])
    x3 = _read_state(stream, starts[3])
    x4 = _read_state(stream, starts[4])
    x5 = _read_state(stream, starts[5])
    x6 = _read_state(stream, starts[6])
    x7 = _read_state(stream, starts[7])
    p0, p1, p2, p3 = starts[0] + 4, starts[1] + 4, starts[2] + 4, starts[3] + 4
    p4, p5, p6, p7 = starts[4] + 4, starts[5] + 4, starts[6] + 4, starts[7] + 4
    e0, e1, e2, e3 = p1 - 6, p2 - 6, p3 - 6, p4 - 6
    e4, e5, e6, e7 = p5 - 6, p6 - 6, p7 - 6, size - 2
    n8 = n - n % LANES
    for g in range(n8 // LANES):
        i = _U(LANES * g)
        _emit(out, i, slot_symbol[_U(x0 & mask)], raw, nibbles, fused)
        x0, p0 = _decode_step(x0, slot_table, precision, mask, stream, p0, e0)
        _emit(out, i + _U(1), slot_symbol[_U(x1 & mask)], raw, nibbles, fused)
        x1, p1 = _decode_step(x1, slot_table, precision, mask, stream, p1, e1)
        _emit(out, i + _U(2), slot_symbol[_U(x2 & mask)], raw, nibbles, fused)
        x2, p2 = _decode_step(x2, slot_table, precision, mask, stream, p2, e2)
        _emit(out, i + _U(3), slot_symbol[_U(x3 & mask)], raw, nibbles, fused)
        x3, p3 = _decode_step(x3, slot_table, precision, mask, stream, p3, e3)
        _emit(out, i + _U(4), slot_symbol[_U(x4 & mask)], raw, nibbles, fused)
        x4, p4 = _decode_step(x4, slot_table, precision, mask, stream, p4, e4)
        _emit(out, i + _U(5), slot_symbol[_U(x5 & mask)], raw, nibbles, fused)
        x5, p5 = _decode_step(x5, slot_table, precision, mask, stream, p5, e5)
        _emit(out, i + _U(6), slot_symbol[_U(x6 & mask)], raw, nibbles, fused)
        x6, p6 = _decode_step(x6, slot_table, precision, mask, stream, p6, e6)
        _emit(out, i + _U(7), slot_symbol[_U(x7 & mask)], raw, nibbles, fused)
        x7, p7 = _decode_step(x7, slot_table, precision, mask, stream, p7, e7)
    for i in range(n8, n):
        j = i - n8
        if j == 0:
            _emit(out, i, slot_symbol[_U(x0 & mask)], raw, nibbles, fused)
            x0, p0 = _decode_step(x0, slot_table, precision, mask, stream, p0, e0)
        elif j == 1:
            _emit(out, i, slot_symbol[_U(x1 & mask)], raw, nibbles, fused)
            x1, p1 = _decode_step(x1, slot_table, precision, mask, stream, p1, e1)
        elif j == 2:
            _emit(out, i, slot_symbol[_U(x2 & mask)], raw, nibbles, fused)
            x2, p2 = _decode_step(x2, slot_table, precision, mask, stream, p2, e2)
        elif j == 3:
            _emit(out, i, slot_symbol[_U(x3 & mask)], raw, nibbles, fused)
            x3, p3 = _decode_step(x3, slot_table, precision, mask, stream, p3, e3)
        elif j == 4:
            _emit(out, i, slot_symbol[_U(x4 & mask)], raw, nibbles, fused)
            x4, p4 = _decode_step(x4, slot_table, precision, mask, stream, p4, e4)
        elif j == 5:
            _emit(out, i, slot_symbol[_U(x5 & mask)], raw, nibbles, fused)
            x5, p5 = _decode_step(x5, slot_table, precision, mask, stream, p5, e5)
        else:
            _emit(out, i, slot_symbol[_U(x6 & mask)], raw, nibbles, fused)
            x6, p6 = _decode_step(x6, slot_table, precision, mask, stream, p6, e6)
    if (p0 != e0 + 2 or p1 != e1 + 2 or p2 != e2 + 2 or p3 != e3 + 2
            or p4 != e4 + 2 or p5 != e5 + 2 or p6 != e6 + 2 or p7 != e7 + 2):
        return STATUS_CORRUPT
    if (x0 != RANS_L or x1 != RANS_L or x2 != RANS_L or x3 != RANS_L
            or x4 != RANS_L or x5 != RANS_L or x6 != RANS_L or x7 != RANS_L):
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


@njit
def write_varint(out, pos, value):
    while value >= 0x80:
        out[pos] = (value & 0x7F) | 0x80
        value >>= 7
        pos += 1
    out[pos] = value
    return pos + 1


@njit
def varint_size(value):
    """Bytes ``write_varint`` takes for ``value``."""
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


@njit
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
