"""Entropy streams' rANS kernels (Numba): tables, the stream head, the 8-lane layout,
and the kernels that write a whole stream in one nogil call: ``encode_stream_8`` for the
8-lane layout, ``wide_stream_encoder(groups, vector)`` for the wide ones (a kernel per wide
layout and kind of vector steps, so that a first call compiles only what it runs).

The coder's arithmetic (32-bit states, 16-bit little-endian words, table entries) is
``kernels.rans_core``'s; this module deals symbols to lanes.

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

import functools

import numpy as np
from numba import njit

from .bits import histogram, pack_and_count, pack_low_bits
from .jit import callee
from .memory import copy_bytes
from .rans_core import (MAX_PRECISION, MIN_PRECISION, RANS_L, STATE_BYTES, STATUS_CORRUPT, STATUS_OK,
                        decode_step, encode_step, encoder_entry, flush_state, read_state, read_varint,
                        slot_entry, store_symbol, varint_size, write_varint)
from .rans_simd import BACKEND_ID as BACKEND_32_LANES
from .rans_simd import BACKEND_ID_64 as BACKEND_64_LANES
from .rans_simd import encode_into_for

LANES = 8
LANE_THRESHOLD = 256
_U = np.uint64


@callee
def lane_count(n):
    """Lanes used for a stream of ``n`` symbols."""
    return LANES if n >= LANE_THRESHOLD else 1


#: no symbol may take more than 1 - 2**-CAP_SHIFT of a table's mass (see quantize_counts)
CAP_SHIFT = 8


#: streams of fewer symbols than this may take tables of SHORT_PRECISION bits and up
#: (the stream encoders' ``min_precision``; the exact codec's value streams: see
#: ``entropy.short_precision``)
SHORT_STREAM = 1 << 15
SHORT_PRECISION = 12


@njit(cache=True)
def choose_precision(n_used, min_precision=MIN_PRECISION):
    """Precision for a table of ``n_used`` symbols: the smallest from ``min_precision``
    (default 14) to 15 with at least two slots per symbol (``entropy.choose_precision``
    tells why)."""
    p = min_precision
    while (1 << p) < 2 * n_used and p < MAX_PRECISION:
        p += 1
    return p


@njit(nogil=True, cache=True)
def encoder_table(freq):
    """The encoder's packed per-symbol table for integer frequencies ``freq`` (int64)."""
    table = np.zeros(freq.size, dtype=np.uint64)
    cum = 0
    for s in range(freq.size):
        table[s] = encoder_entry(freq[s], cum)
        cum += freq[s]
    return table


@callee
def _order_keys(values):
    # unique keys whose increasing order is the indices by decreasing value, ties by
    # increasing index (a stable sort of -values): values < 2**40 here, indices < 2**16
    n = values.size
    keys = np.empty(n, dtype=np.int64)
    top = values[0]
    for j in range(1, n):  # not values.max(): its generic code took 0.4 s of a cold start
        top = max(top, values[j])
    for j in range(n):
        keys[j] = ((top - values[j]) << 16) | j
    return keys


@callee
def _sorted(keys):
    # keys in increasing order by a plain merge sort: Numba's own sorts take seconds to compile
    n = keys.size
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
    return keys


@callee
def _kth_smallest(keys, m):
    """The ``m``-th smallest (``1 <= m <= keys.size``) of distinct int64 ``keys``:
    quickselect (median-of-three pivots), the merge sort after 64 rounds, so that no input
    takes quadratic time. Any way of selecting gives the same key: they are distinct."""
    a = keys.copy()
    lo, hi, want = 0, a.size, m - 1
    rounds = 0
    while hi - lo > 1:
        rounds += 1
        if rounds > 64:
            return _sorted(a[lo:hi].copy())[want]
        x, y, z = a[lo], a[lo + (hi - lo) // 2], a[hi - 1]
        pivot = max(min(x, y), min(max(x, y), z))
        i = lo
        for j in range(lo, hi):
            v = a[j]
            if v < pivot:
                a[j] = a[i]
                a[i] = v
                i += 1
        if want < i - lo:
            hi = i
        elif want == i - lo:
            return pivot
        else:
            want -= i - lo + 1
            w = i
            for j in range(i, hi):
                if a[j] > pivot:
                    a[w] = a[j]
                    w += 1
            lo, hi = i, w
    return a[lo]


@callee
def _first_in_order(values, m):
    """Whether each index is among the first ``m`` (``1 <= m <= values.size``) of the
    indices by decreasing value, ties by increasing index (``_order_keys``), found without
    sorting them all (the order of the largest-remainder rule before it selected)."""
    keys = _order_keys(values)
    last = _kth_smallest(keys, m)
    return keys <= last


@callee
def _used_symbols(counts):
    # (the symbols whose count is not zero, in increasing order; the counts' sum), one
    # pass; blocks of 8 zero counts are skipped whole (most of a 4096-symbol alphabet:
    # 2.4 -> 0.6 us on a 32-row blob's)
    size = counts.size
    used = np.empty(size, dtype=np.int64)
    k = 0
    n = 0
    whole = size - size % 8
    for b in range(0, whole, 8):
        seen = 0
        for s in range(b, b + 8):
            seen |= counts[s]
        if seen == 0:
            continue
        for s in range(b, b + 8):
            c = counts[s]
            used[k] = s
            k += c != 0
            n += c
    for s in range(whole, size):
        c = counts[s]
        used[k] = s
        k += c != 0
        n += c
    return used[:k], n


@njit(inline="always")
def _floor_divide(a, n, inverse):
    # (a // n, a % n) for 0 <= a < 2**53 and n >= 1 (``inverse`` = 1 / n): the float
    # quotient is within one of the exact one, then corrected; a multiply instead of a
    # 64-bit division (40 cycles each on some CPUs), the same integers
    q = np.int64(a * inverse)
    r = a - q * n
    while r < 0:
        q -= 1
        r += n
    while r >= n:
        q += 1
        r -= n
    return q, r


@callee
def _quantized(counts, precision, cap_shift, used, n):
    """``quantize_counts`` as (the used symbols, increasing; their frequencies), given
    ``_used_symbols(counts)`` as ``used, n``."""
    total_mass = 1 << precision
    if used.size == 1:
        counts = counts.copy()
        neighbour = used[0] + 1 if used[0] + 1 < counts.size else used[0] - 1
        counts[neighbour] = max(1, counts[used[0]] >> cap_shift)
        used, n = _used_symbols(counts)
    k = used.size
    freq = np.empty(k, dtype=np.int64)
    if k == 0:
        return used, freq
    remainder = np.empty(k, dtype=np.int64)
    total = 0
    inverse = 1.0 / n
    for j in range(k):
        q, remainder[j] = _floor_divide(counts[used[j]] * total_mass, n, inverse)
        freq[j] = max(q, 1)
        total += freq[j]
    deficit = total_mass - total
    if deficit > 0:
        # the largest remainders (ties: the lower symbol) get one more each
        bump = _first_in_order(remainder, deficit)
        for j in range(k):
            freq[j] += bump[j]
    while deficit < 0:
        # forced minimum frequencies overshot: take back from the largest, one each
        take = _first_in_order(freq, min(-deficit, k))
        taken = 0
        for j in range(k):
            if take[j] and freq[j] > 1:
                freq[j] -= 1
                taken += 1
        deficit += taken
    cap = total_mass - (total_mass >> cap_shift)
    top = 0
    for j in range(1, k):  # the first largest, as np.argmax (whose generic code compiles slowly)
        if freq[j] > freq[top]:
            top = j
    if freq[top] > cap:
        excess = freq[top] - cap
        freq[top] = cap
        share, rest = divmod(excess, k - 1)
        given = 0
        for j in range(k):
            if j != top:
                freq[j] += share + (1 if given < rest else 0)
                given += 1
    return used, freq


@njit(nogil=True, cache=True)
def quantize_counts(counts, precision, cap_shift):
    """``entropy.quantize_frequencies`` (which checks its arguments): integer frequencies
    summing to ``2**precision``, ``>= 1`` where ``counts > 0``, by largest remainder; no
    symbol above ``1 - 2**-cap_shift`` of the mass (a lone symbol's neighbour gets a
    phantom share)."""
    out = np.zeros(counts.size, dtype=np.int64)
    used, n = _used_symbols(counts)
    used, freq = _quantized(counts, precision, cap_shift, used, n)
    for j in range(used.size):
        out[used[j]] = freq[j]
    return out


@callee
def _stream_precision(counts, min_precision):
    n_used = 0
    for c in counts:
        if c:
            n_used += 1
    return _precision_for(n_used, min_precision)


@callee
def _precision_for(n_used, min_precision):
    precision = choose_precision(max(n_used, 2), min_precision)
    if n_used > 1 << precision:
        raise ValueError("more distinct symbols than a 15-bit frequency table holds")
    return precision


@callee
def _write_used_table(used, freq, out, pos):
    # write_table of the frequencies ``freq`` of the symbols ``used`` (increasing, freq >= 1)
    pos = write_varint(out, pos, used.size)
    prev = 0
    for j in range(used.size):
        pos = write_varint(out, pos, used[j] - prev)
        pos = write_varint(out, pos, freq[j])
        prev = used[j]
    return pos


@callee(cache=True)  # cached: every wide encoder kernel (one per layout and kind) links it
def _coding_head(counts, backend_id, out, pos, min_precision):
    """``write_stream_head`` for spherecodec's own coders, with the encoder's table
    (``encoder_table``'s entries for the used symbols; the others, never coded, left
    unset) instead of the frequencies: the work of a short stream's table is over its used
    symbols, not the whole alphabet. Returns (table, precision, position)."""
    if counts.size < 2:
        raise ValueError("an alphabet has at least 2 symbols")
    used, n = _used_symbols(counts)
    precision = _precision_for(used.size, min_precision)
    used, freq = _quantized(counts, precision, CAP_SHIFT, used, n)
    out[pos] = backend_id
    out[pos + 1] = precision
    # not zeroed: the coders read only the entries of symbols they code (a 32-row
    # blob's 32 KB memset was 1-3% of its encode)
    table = np.empty(counts.size, dtype=np.uint64)
    cum = 0
    for j in range(used.size):
        table[used[j]] = encoder_entry(freq[j], cum)
        cum += freq[j]
    return table, precision, _write_used_table(used, freq, out, pos + 2)


@njit(cache=True)
def write_stream_head(counts, backend_id, out, pos, min_precision=MIN_PRECISION):
    """The head of an entropy stream (layout: ``spherecodec.entropy``) for the symbol
    ``counts``: backend byte, precision byte and frequency table at ``out[pos:]``, the
    table's precision from ``min_precision`` up (``choose_precision``). Returns
    (frequencies, precision, position after the table)."""
    if counts.size < 2:
        raise ValueError("an alphabet has at least 2 symbols")
    precision = _stream_precision(counts, min_precision)
    freq = quantize_counts(counts, precision, CAP_SHIFT)
    out[pos] = backend_id
    out[pos + 1] = precision
    return freq, precision, write_table(freq, out, pos + 2)


def encode_scratch_size(n):
    """Bytes of scratch space ``rans_encode`` needs for ``n`` symbols."""
    return 2 * n + 8 * LANES + 16


@njit(nogil=True, cache=True)
def count_symbols(values, shift, raw_bytes, counts, count, out, pos):
    """Count the symbols ``values >> shift`` into ``counts`` (zeros) if ``count``, and with
    ``raw_bytes`` write the raw section of the low ``shift`` bits at ``out[pos:]`` in the
    same pass; return the position after it (see ``encode_stream_8``)."""
    if raw_bytes:
        raw = out[pos:pos + raw_bytes]
        if count:
            pack_and_count(values, shift, raw, counts)
        else:
            pack_low_bits(values, shift, raw)
        return pos + raw_bytes
    if count:
        histogram(values, shift, counts)
    return pos


@njit(nogil=True, cache=True)
def encode_stream_8(values, shift, raw_bytes, counts, count, scratch, out, pos, min_precision=MIN_PRECISION):
    """Write the entropy stream (layout: ``spherecodec.entropy``) of the symbols
    ``values >> shift`` at ``out[pos:]`` in the 8-lane layout (backend 0), in one nogil
    call (threads coding side by side do not wait for each other's turn with the GIL
    between the steps); return the end position.

    ``counts`` (int64 over the alphabet) holds the symbols' counts, or zeros and ``count``
    is True: counted here. With ``raw_bytes`` (``bits.raw_size(n, shift)``, else 0) the
    raw section of the values' low ``shift`` bits comes first, packed in the same pass as
    the counting. ``scratch`` holds ``encode_scratch_size(n)`` bytes; ``out`` needs
    ``raw_bytes + entropy.stream_capacity`` from ``pos``. ``min_precision``: the table's
    least precision (``write_stream_head``). The wide layouts have kernels of their own
    (``wide_stream_encoder``) so that a first call compiles only the coder it uses."""
    pos = count_symbols(values, shift, raw_bytes, counts, count, out, pos)
    table, precision, pos = _coding_head(counts, 0, out, pos, min_precision)
    if values.size == 0:
        return write_varint(out, pos, 0)
    return rans_encode(values, _U(shift), table, precision, scratch, out, pos)


@njit(inline="always")
def encode_stream_wide_for(values, shift, raw_bytes, counts, count, scratch, out, pos, min_precision, vector,
                           groups):
    """``encode_stream_8`` in a wide layout: ``groups`` 4 (64 lanes,
    ``rans_simd.BACKEND_ID_64``) or 2 (32 lanes, ``rans_simd.BACKEND_ID``), the whole steps
    by ``vector`` (``rans_simd.VECTOR_ENCODE``'s kinds, the same bytes); ``scratch`` holds
    ``rans_simd.encode_scratch_size(n, groups)`` bytes. For callers whose ``vector`` and
    ``groups`` are constants (``wide_stream_encoder``, ``rans_blob``): inlined there, only
    that layout's steps of that kind compile."""
    pos = count_symbols(values, shift, raw_bytes, counts, count, out, pos)
    backend_id = np.int64(BACKEND_64_LANES if groups == 4 else BACKEND_32_LANES)
    table, precision, pos = _coding_head(counts, backend_id, out, pos, min_precision)
    if values.size == 0:
        return write_varint(out, pos, 0)
    return encode_into_for(values, _U(shift), table, np.int64(precision), scratch, out, np.int64(pos), vector,
                           groups)


@functools.cache
def wide_stream_encoder(groups, vector):
    """The kernel ``encode_stream_wide_for(..., min_precision, vector, groups)`` of the layout of
    ``groups`` groups (``rans_simd.groups_for``) and the ``vector`` steps
    (``rans_simd.VECTOR_ENCODE``), without those two arguments: ``f(values, shift,
    raw_bytes, counts, count, scratch, out, pos, min_precision)``, the same bytes.

    One kernel per choice, so that a first call compiles only the steps it runs (a kernel
    choosing them at run time compiled both layouts and every kind of steps: 2 s more on a
    cold start)."""

    @njit(nogil=True, cache=True)
    def encode_stream_wide_kernel(values, shift, raw_bytes, counts, count, scratch, out, pos, min_precision):
        return encode_stream_wide_for(values, shift, raw_bytes, counts, count, scratch, out, pos, min_precision,
                                      vector, groups)

    return encode_stream_wide_kernel


@callee(nogil=True, cache=True)
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
            x, p = encode_step(x, table[s], precision, scratch, p)
        p = flush_state(x, scratch, p)
        size = scratch.size - p
        pos = write_varint(out, pos, size)
        copy_bytes(out, pos, scratch, p, size)  # no slice assignment: its error path costs seconds of compile
        return pos + size
    # lane j writes backwards from the end of its region of scratch
    ends = np.empty(LANES, dtype=np.int64)
    e = 0
    for j in range(LANES):
        e += 2 * ((n - j + LANES - 1) // LANES) + 8
        ends[j] = e
    starts = np.empty(LANES, dtype=np.int64)
    # four lanes per pass keep every state and position in registers; the first lane as a
    # plain int64 (a constant argument would compile the function once for each value)
    _encode_four_lanes(values, shift, table, precision, scratch, ends, starts, np.int64(0))
    _encode_four_lanes(values, shift, table, precision, scratch, ends, starts, np.int64(4))
    body = ends[LANES - 1] - starts[LANES - 1]
    for j in range(LANES - 1):
        body += varint_size(ends[j] - starts[j]) + ends[j] - starts[j]
    pos = write_varint(out, pos, body)
    for j in range(LANES - 1):
        pos = write_varint(out, pos, ends[j] - starts[j])
    for j in range(LANES):
        size = ends[j] - starts[j]
        copy_bytes(out, pos, scratch, starts[j], size)
        pos += size
    return pos


@callee
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
        xd, pd = encode_step(xd, table[s], precision, scratch, pd)
    if first + 2 < tail:
        s = values[n8 + first + 2] >> shift
        xc, pc = encode_step(xc, table[s], precision, scratch, pc)
    if first + 1 < tail:
        s = values[n8 + first + 1] >> shift
        xb, pb = encode_step(xb, table[s], precision, scratch, pb)
    if first < tail:
        s = values[n8 + first] >> shift
        xa, pa = encode_step(xa, table[s], precision, scratch, pa)
    for g in range(n8 // LANES - 1, -1, -1):
        i = _U(LANES * g + first)
        s = values[i + _U(3)] >> shift
        xd, pd = encode_step(xd, table[s], precision, scratch, pd)
        s = values[i + _U(2)] >> shift
        xc, pc = encode_step(xc, table[s], precision, scratch, pc)
        s = values[i + _U(1)] >> shift
        xb, pb = encode_step(xb, table[s], precision, scratch, pb)
        s = values[i] >> shift
        xa, pa = encode_step(xa, table[s], precision, scratch, pa)
    starts[first] = flush_state(xa, scratch, pa)
    starts[first + 1] = flush_state(xb, scratch, pb)
    starts[first + 2] = flush_state(xc, scratch, pc)
    starts[first + 3] = flush_state(xd, scratch, pd)


@callee
def _lane(out, i, x, pos, last, slot_table, slot_symbol, precision, mask, stream, raw, nibbles, fused):
    # symbol i from state x, then the state's next value; unsigned indices spare Numba's
    # negative-index wraparound code. A plain callee, which LLVM inlines: inlined at
    # Numba's level, each of its nine call sites was typed again (the decoder compiled in
    # 5.1 s instead of 2.9)
    slot = _U(x & mask)
    store_symbol(out, i, slot_symbol[slot], raw, nibbles, fused)
    return decode_step(x, slot_table[slot], precision, stream, pos, last)


@callee
def _four_lanes(out, i, x, p, last, slot_table, slot_symbol, precision, mask, stream, raw, nibbles, fused):
    """Symbols ``i .. i + 3`` from four lanes' states ``x`` (read positions ``p``, last
    word positions ``last``); returns the new states and positions."""
    x0, p0 = _lane(out, i, x[0], p[0], last[0], slot_table, slot_symbol, precision, mask, stream, raw, nibbles,
                   fused)
    x1, p1 = _lane(out, i + _U(1), x[1], p[1], last[1], slot_table, slot_symbol, precision, mask, stream, raw,
                   nibbles, fused)
    x2, p2 = _lane(out, i + _U(2), x[2], p[2], last[2], slot_table, slot_symbol, precision, mask, stream, raw,
                   nibbles, fused)
    x3, p3 = _lane(out, i + _U(3), x[3], p[3], last[3], slot_table, slot_symbol, precision, mask, stream, raw,
                   nibbles, fused)
    return (x0, x1, x2, x3), (p0, p1, p2, p3)


@njit(nogil=True, cache=True)
def rans_decode_symbols(stream, slot_table, slot_symbol, precision, out):
    """Decode ``out.size`` symbols into ``out``; see ``_rans_decode``. Returns a status code.
    One kernel per output kind (``rans_decode_values``): each compiles only its own copy
    of the decoder's steps (about 4 s each in a fresh cache)."""
    return _rans_decode(stream, slot_table, slot_symbol, precision, out, np.empty(0, dtype=np.uint8), False)


@njit(nogil=True, cache=True)
def rans_decode_values(stream, slot_table, slot_symbol, precision, out, raw):
    """Decode ``out.size`` float32 values (uint32 ``out``) from their head symbols and
    their 20 low bits ``raw``; see ``_rans_decode``. Returns a status code."""
    return _rans_decode(stream, slot_table, slot_symbol, precision, out, raw, True)


@callee
def _rans_decode(stream, slot_table, slot_symbol, precision, out, raw, fused):
    """Decode ``out.size`` symbols from the body ``stream`` into ``out``; return a status.

    ``slot_table`` and ``slot_symbol`` come from ``read_table``. ``raw`` is empty (``out``
    receives the symbols) or holds the 20 low bits of every value in the
    ``kernels.bits`` layout (16-bit plane, then 4-bit plane): ``out[i]`` then receives
    the float32 bits of ``rans_core.merge_float32``, merged here to spare a second pass
    over the output.
    """
    n = out.size
    nibbles = 2 * n
    size = stream.size
    if n == 0:
        return STATUS_OK if size == 0 else STATUS_CORRUPT
    mask = np.int64((1 << precision) - 1)
    if lane_count(n) == 1:
        if size < STATE_BYTES or size & 1:
            return STATUS_CORRUPT
        x = read_state(stream, 0)
        # the types of the other call sites (a constant or a signed index would compile
        # _lane again, for its value or type)
        pos = np.int64(STATE_BYTES)
        for i in range(n):
            x, pos = _lane(out, _U(i), x, pos, size - 2, slot_table, slot_symbol, precision, mask, stream, raw,
                           nibbles, fused)
        return STATUS_OK if (pos == size and x == RANS_L) else STATUS_CORRUPT
    starts = np.empty(LANES + 1, dtype=np.int64)
    if not _lane_starts(stream, starts):
        return STATUS_CORRUPT
    # lanes 0-3 and 4-7: states, read positions, last positions a word may be loaded from
    xa, pa, la = _open_lanes(stream, starts, 0)
    xb, pb, lb = _open_lanes(stream, starts, 4)
    n8 = n - n % LANES
    for g in range(n8 // LANES):
        i = _U(LANES * g)
        xa, pa = _four_lanes(out, i, xa, pa, la, slot_table, slot_symbol, precision, mask, stream, raw, nibbles,
                             fused)
        xb, pb = _four_lanes(out, i + _U(4), xb, pb, lb, slot_table, slot_symbol, precision, mask, stream, raw,
                             nibbles, fused)
    # the tail, lane by lane in a loop (one call of the step, not eight: compile time):
    # symbol n8 + j is lane j's last
    x = np.array(xa + xb, dtype=np.int64)
    p = np.array(pa + pb, dtype=np.int64)
    last = np.array(la + lb, dtype=np.int64)
    for j in range(n - n8):
        x[j], p[j] = _lane(out, _U(n8 + j), x[j], p[j], last[j], slot_table, slot_symbol, precision, mask,
                           stream, raw, nibbles, fused)
    for j in range(LANES):
        if p[j] != last[j] + 2 or x[j] != RANS_L:
            return STATUS_CORRUPT
    return STATUS_OK


@callee
def _lane_starts(stream, starts):
    """``starts`` <- where each lane's substream starts, and the end of the body; False
    when the lengths are malformed."""
    size = stream.size
    pos = 0
    total = 0
    lengths = np.empty(LANES, dtype=np.int64)
    for j in range(LANES - 1):
        length, pos = read_varint(stream, pos, size)
        if pos < 0:
            return False
        lengths[j] = length
        total += length
    if total > size - pos:
        return False
    lengths[LANES - 1] = size - pos - total
    for j in range(LANES):
        if lengths[j] < STATE_BYTES or lengths[j] & 1:
            return False
        starts[j] = pos
        pos += lengths[j]
    starts[LANES] = size
    return True


@njit(inline="always")
def _open_lanes(stream, starts, first):
    # lanes first .. first + 3: initial states, first word positions, last word positions
    x = (read_state(stream, starts[first]), read_state(stream, starts[first + 1]),
         read_state(stream, starts[first + 2]), read_state(stream, starts[first + 3]))
    p = (starts[first] + STATE_BYTES, starts[first + 1] + STATE_BYTES,
         starts[first + 2] + STATE_BYTES, starts[first + 3] + STATE_BYTES)
    last = (starts[first + 1] - 2, starts[first + 2] - 2, starts[first + 3] - 2, starts[first + 4] - 2)
    return x, p, last


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
def fill_slots(slot_table, slot_symbol, s, f, c):
    """The decoder's slots ``c .. c + f - 1``: symbol ``s`` of frequency ``f``."""
    for slot in range(c, c + f):
        slot_table[slot] = slot_entry(f, slot - c)
        slot_symbol[slot] = s


@njit(nogil=True, cache=True)
def slot_tables(freq, slot_table, slot_symbol):
    """Fill the decoder's slot tables (``2**precision`` entries each) for the integer
    frequencies ``freq`` (summing to ``2**precision``), as ``read_table`` does."""
    c = 0
    for s in range(freq.size):
        if freq[s]:
            fill_slots(slot_table, slot_symbol, s, freq[s], c)
            c += freq[s]


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
            fill_slots(slot_table, slot_symbol, s, f, c)
        c += f
    if n_used and c != total:
        return 0, -1
    return n_used, pos
