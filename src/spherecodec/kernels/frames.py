"""Frame kernels: one short float32 vector coded against a trained (dictionary) table.

A frame (``spherecodec.frames``, docs/format.md section 5) codes a few hundred values, so
what a blob spends per chunk (a frequency table, 8 or 32 lane states of 4 bytes each) would
cost more than the coding gains. Here the table comes from the dictionary and two rANS lanes
share one word stream, so a frame's coding overhead is two 4-byte states.

The arithmetic is ``kernels.rans_core``'s (32-bit states, 16-bit words, table entries) and
the float32 split is the exact codec's (12-bit head symbol, 20 raw low bits in the
``kernels.bits`` planes). What is new:

* **two lanes, one stream**: symbol ``i`` belongs to lane ``i & 1``; the decoder reads the
  words in symbol order, so the encoder codes the symbols last to first into one stream
  written backwards. Body: lane 0's final state, lane 1's (u32 each), then the words.
* **escape**: the trained table has ``FRAME_ALPHABET = 4097`` symbols, the 4,096 head
  symbols and ``ESCAPE``. A head symbol the sample never showed has no frequency; it is
  coded as ``ESCAPE`` followed by its 12 bits in two uniform 6-bit steps (frequency
  ``2**(precision - 6)`` each) on the same lane. So any float32 (NaN payloads, infinities,
  subnormals) codes against any dictionary; an unusual one costs more bits, never a wrong one.

The batch kernels (``encode_frames``, ``decode_frames``) run the same per-frame code over
many frames in one nogil call.
"""

import numpy as np
from numba import njit

from .bits import merge_low_bits_shifted, pack_low_bits, raw_size
from .checksum import xxh64
from .jit import callee
from .rans_core import (ENTRY_MASK, FLOAT32_ALPHABET, FLOAT32_RAW_BITS, RANS_L, STATE_BYTES, STATUS_CORRUPT,
                        STATUS_OK, WORD_BYTES, decode_step, encode_step, encoder_entry, flush_state, read_state,
                        slot_entry, store_symbol, write_varint)
from .shape import trailing_zeros

#: the trained table's extra symbol: "the head symbol follows in 12 uniform bits"
ESCAPE = FLOAT32_ALPHABET
FRAME_ALPHABET = FLOAT32_ALPHABET + 1
#: an escaped symbol's 12 bits go in two uniform steps of this many bits
ESCAPE_STEP_BITS = 6
ESCAPE_STEPS = 2
#: payload modes (the frame kind's low bits): coded, the values stored verbatim, one value
#: repeated (a constant vector: all zeros, padding), coded without the low ``t`` bits every
#: value has zero (float32 that was bfloat16: ``t >= 16``; float16: ``t >= 13``)
MODE_CODED = 0
MODE_STORED = 1
MODE_CONSTANT = 2
MODE_SHIFTED = 3
#: decoded bytes per frame byte a reader accepts for the constant and shifted modes (the
#: exact codec's DENSE_EXPANSION); the encoder uses them only for vectors within it even at
#: the smallest frame (``4 n <= ALLOCATION_SLACK + DENSE_EXPANSION * (header + 8)``, half a
#: million values), so every frame it writes reads back
DENSE_EXPANSION = float(1 << 17)
#: ``layout.ALLOCATION_SLACK``: decoded bytes any frame may stand for besides its bound
ALLOCATION_SLACK = 1 << 16
#: lanes per frame and the bytes their states take
LANES = 2
STATES_BYTES = LANES * STATE_BYTES
_U = np.uint64


@callee(cache=True)
def coded_capacity(n):
    """Bytes a coded payload of ``n`` values may need while it is written: the raw planes,
    the states and up to one word per rANS step (1 step per value, 3 when escaped)."""
    return raw_size(n, FLOAT32_RAW_BITS) + STATES_BYTES + WORD_BYTES * (1 + ESCAPE_STEPS) * n + 4


@njit(inline="always")
def _uniform_entry(v, precision):
    # encoder entry of the value v of a uniform 6-bit step
    f = 1 << (precision - ESCAPE_STEP_BITS)
    return encoder_entry(f, v * f)


@njit(inline="always")
def _encode_value(x, s, table, precision, out, p):
    # value's head symbol s on one lane, coded last to first: its escape's steps in reverse
    e = table[s]
    if e & _U(ENTRY_MASK) == _U(0):
        x, p = encode_step(x, _uniform_entry(s & 63, precision), precision, out, p)
        x, p = encode_step(x, _uniform_entry(s >> ESCAPE_STEP_BITS, precision), precision, out, p)
        e = table[ESCAPE]
    return encode_step(x, e, precision, out, p)


@callee
def _encode_lanes_escaping(values, table, precision, out, p):
    # the two lanes, last symbol first, any of them escaped; returns the states and position
    x0 = _U(RANS_L)
    x1 = _U(RANS_L)
    for i in range(values.size - 1, -1, -1):
        s = values[i] >> FLOAT32_RAW_BITS
        if i & 1:
            x1, p = _encode_value(x1, s, table, precision, out, p)
        else:
            x0, p = _encode_value(x0, s, table, precision, out, p)
    return x0, x1, p


@njit(inline="always")
def _encode_heads(values, table, precision, out, body, end):
    # the head symbols of values on the two lanes, last to first, the words written
    # backwards from out[end]; then the states at out[body:] and the words moved behind
    # them. Returns (end, OR of the values, whether any differs from the first): the loop
    # looking for escapes reads every value anyway, so the frame's shape costs nothing here
    escapes = False
    acc = np.uint32(0)
    differs = False
    first = values[0] if values.size else np.uint32(0)
    for i in range(values.size):
        v = values[i]
        escapes |= (table[v >> FLOAT32_RAW_BITS] & _U(ENTRY_MASK)) == _U(0)
        acc |= v
        differs |= v != first
    if escapes:
        x0, x1, p = _encode_lanes_escaping(values, table, precision, out, end)
    else:
        # no escape: the plain loop (the escape's branch in it measured 4x slower)
        p = end
        x0 = _U(RANS_L)
        x1 = _U(RANS_L)
        n = values.size
        shift = np.uint32(FLOAT32_RAW_BITS)
        if n & 1:  # the last value is on lane 0
            x0, p = encode_step(x0, table[values[n - 1] >> shift], precision, out, p)
        # pairs from the last, lane 1 then lane 0, unsigned indices: no branch on the lane,
        # no negative-index code
        for k in range(n // 2 - 1, -1, -1):
            i = _U(2 * k)
            x1, p = encode_step(x1, table[values[i + _U(1)] >> shift], precision, out, p)
            x0, p = encode_step(x0, table[values[i] >> shift], precision, out, p)
    words = end - p
    flush_state(x0, out, body + STATE_BYTES)
    flush_state(x1, out, body + STATES_BYTES)
    dst = body + STATES_BYTES
    # dst <= p: a forward copy never overwrites a byte it has yet to read
    for j in range(words):
        out[dst + j] = out[p + j]
    return dst + words, acc, differs


@callee(nogil=True, cache=True)
def encode_payload(values, table, precision, out, pos):
    """Write the coded payload of the float32 bits ``values`` at ``out[pos:]``: the raw low
    bits (``kernels.bits`` planes), lane 0's and lane 1's final states, the words.

    ``table`` (uint64 over ``FRAME_ALPHABET``, ``rans.encoder_table``) must give ``ESCAPE``
    a frequency. ``out`` needs ``coded_capacity(n)`` bytes from ``pos``: the words are first
    written backwards from its end, then moved behind the states. Returns the end position,
    the OR of the values and whether any differs from the first.
    """
    n = values.size
    nraw = raw_size(n, FLOAT32_RAW_BITS)
    pack_low_bits(values, FLOAT32_RAW_BITS, out[pos:pos + nraw])
    return _encode_heads(values, table, precision, out, pos + nraw, pos + coded_capacity(n))


@callee(nogil=True, cache=True)
def encode_payload_shifted(values, t, table, precision, out, pos):
    """``encode_payload`` for values whose low ``t`` bits (1 to 20) are all zero: ``u8 t``,
    then only the ``20 - t`` raw bits above them (``kernels.bits`` planes of ``values >> t``),
    the states and the words as in ``encode_payload``. Returns the end position."""
    n = values.size
    width = FLOAT32_RAW_BITS - t
    out[pos] = t
    shifted = np.empty(n, dtype=np.uint32)
    for i in range(n):
        shifted[i] = values[i] >> t
    nraw = pack_low_bits(shifted, width, out[pos + 1:pos + 1 + raw_size(n, width)])
    return _encode_heads(values, table, precision, out, pos + 1 + nraw, pos + 1 + coded_capacity(n))[0]


@njit(inline="always")
def _decode_value(x, pos, last, slot_table, slot_symbol, precision, mask, stream):
    # one value's head symbol from lane state x: the table's symbol, or an escape's 12 bits
    slot = x & mask
    s = np.int64(slot_symbol[slot])
    x, pos = decode_step(x, slot_table[slot], precision, stream, pos, last)
    if s == ESCAPE:
        shift = precision - ESCAPE_STEP_BITS
        f = np.int64(1) << shift
        s = 0
        for _ in range(ESCAPE_STEPS):
            slot = x & mask
            s = (s << ESCAPE_STEP_BITS) | (slot >> shift)
            x, pos = decode_step(x, slot_entry(f, slot & (f - 1)), precision, stream, pos, last)
    return s, x, pos


@njit(inline="always")
def _decode_heads(stream, slot_table, slot_symbol, precision, out, raw, nibbles, fused):
    # the head symbols of out.size values from the two lanes of stream, into out: merged
    # with their 20 raw bits (fused, a constant in each caller) or alone; status
    n = out.size
    ssize = stream.size
    if ssize < STATES_BYTES or ssize & 1:
        return STATUS_CORRUPT
    mask = np.int64((1 << precision) - 1)
    x0 = read_state(stream, 0)
    x1 = read_state(stream, STATE_BYTES)
    if x0 < RANS_L or x1 < RANS_L:
        return STATUS_CORRUPT
    pos = STATES_BYTES
    # a word is loaded from min(pos, last) and kept only when needed: never past the end
    last = max(ssize - 2, 0)
    for i in range(0, n - 1, 2):
        s, x0, pos = _decode_value(x0, pos, last, slot_table, slot_symbol, precision, mask, stream)
        store_symbol(out, i, s, raw, nibbles, fused)
        s, x1, pos = _decode_value(x1, pos, last, slot_table, slot_symbol, precision, mask, stream)
        store_symbol(out, i + 1, s, raw, nibbles, fused)
    if n & 1:
        s, x0, pos = _decode_value(x0, pos, last, slot_table, slot_symbol, precision, mask, stream)
        store_symbol(out, n - 1, s, raw, nibbles, fused)
    if pos != ssize or x0 != RANS_L or x1 != RANS_L:
        return STATUS_CORRUPT
    return STATUS_OK


@callee(nogil=True, cache=True)
def decode_payload(payload, slot_table, slot_symbol, precision, out):
    """Decode a coded payload (``encode_payload``) into the float32 bits ``out`` (uint32,
    ``n = out.size`` values); return ``STATUS_OK`` or ``STATUS_CORRUPT`` (short payload,
    words read past its end or left over, a lane not back at its initial state).

    ``slot_table``/``slot_symbol`` are the decoder's slot tables of the dictionary
    (``rans.slot_tables`` over ``FRAME_ALPHABET``). Never reads outside ``payload``.
    """
    n = out.size
    nraw = raw_size(n, FLOAT32_RAW_BITS)
    if payload.size < nraw:
        return STATUS_CORRUPT
    return _decode_heads(payload[nraw:], slot_table, slot_symbol, precision, out, payload[:nraw], 2 * n, True)


@callee(nogil=True, cache=True)
def decode_payload_shifted(payload, slot_table, slot_symbol, precision, out):
    """Decode a payload of ``encode_payload_shifted`` into the float32 bits ``out``
    (uint32); ``STATUS_OK`` or ``STATUS_CORRUPT`` (also for a ``t`` outside 1..20)."""
    n = out.size
    if payload.size < 1:
        return STATUS_CORRUPT
    t = np.int64(payload[0])
    if t < 1 or t > FLOAT32_RAW_BITS:
        return STATUS_CORRUPT
    width = FLOAT32_RAW_BITS - t
    nraw = raw_size(n, width)
    if payload.size < 1 + nraw:
        return STATUS_CORRUPT
    raw = payload[1:1 + nraw]
    status = _decode_heads(payload[1 + nraw:], slot_table, slot_symbol, precision, out, raw, 0, False)
    if status == STATUS_OK:
        merge_low_bits_shifted(out, raw, width, t)
    return status


@njit(inline="always")
def _store_values(values, out, pos):
    # stored payload: the values' bits, little endian
    for i in range(values.size):
        v = values[i]
        out[pos + 4 * i] = v & 0xFF
        out[pos + 4 * i + 1] = (v >> 8) & 0xFF
        out[pos + 4 * i + 2] = (v >> 16) & 0xFF
        out[pos + 4 * i + 3] = (v >> 24) & 0xFF
    return pos + 4 * values.size


@njit(inline="always")
def _load_values(payload, out):
    for i in range(out.size):
        out[i] = (np.uint32(payload[4 * i]) | (np.uint32(payload[4 * i + 1]) << np.uint32(8))
                  | (np.uint32(payload[4 * i + 2]) << np.uint32(16))
                  | (np.uint32(payload[4 * i + 3]) << np.uint32(24)))


# -- whole frames ---------------------------------------------------------------------------
@njit(inline="always")
def write_header(out, pos, kind, dictionary_id32, rows, dim, ndim):
    """The frame header at ``out[pos:]``: kind, u32 dictionary id, u8 ndim, the shape's
    extents as varints; returns the position after it."""
    out[pos] = kind
    for b in range(4):
        out[pos + 1 + b] = (dictionary_id32 >> (8 * b)) & 0xFF
    out[pos + 5] = ndim
    pos += 6
    if ndim == 2:
        pos = write_varint(out, pos, rows)
    if ndim >= 1:
        pos = write_varint(out, pos, dim)
    return pos


@njit(inline="always")
def seal(out, start, end, check_key):
    """Append the frame check: the low 32 bits of XXH64(``out[start:end]``) XOR
    ``check_key`` (the dictionary id's high half), little endian; return the end."""
    h = xxh64(out[start:end]) ^ _U(check_key)
    for b in range(4):
        out[end + b] = (h >> _U(8 * b)) & _U(0xFF)
    return end + 4


@njit(inline="always")
def frame_check(frame):
    """The check a frame's last 4 bytes should hold, before XOR with the key: low 32 bits of
    XXH64 of every byte before them (``frame.size >= 4``)."""
    return xxh64(frame[:frame.size - 4]) & _U(0xFFFFFFFF)


@njit(inline="always")
def stored_check(frame):
    """The u32 stored in a frame's last 4 bytes."""
    n = frame.size
    return (_U(frame[n - 4]) | (_U(frame[n - 3]) << _U(8)) | (_U(frame[n - 2]) << _U(16))
            | (_U(frame[n - 1]) << _U(24)))


@njit(inline="always")
def _write_constant(value, out, pos):
    for b in range(4):
        out[pos + b] = (value >> (8 * b)) & 0xFF
    return pos + 4


@callee(nogil=True, cache=True)
def _encode_shaped(values, constant, t, table, precision, out, pos, header_size, plain_end):
    # (mode, end) of the payload at out[pos:]: a constant or shifted one in place of the plain
    # coding (which ends at plain_end) when one applies and pays, else the plain coding
    # (coded again if a shifted attempt overwrote it). A function of its own, called only
    # for such vectors: the plain path's code stays as it was (measured 2% slower inlined)
    n = values.size
    # within the dense bound: a frame of a few bytes cannot stand for any length
    if 4.0 * n > ALLOCATION_SLACK + DENSE_EXPANSION * (header_size + 8):
        return MODE_CODED, plain_end
    if constant:
        return MODE_CONSTANT, _write_constant(values[0], out, pos)
    if t and raw_size(n, FLOAT32_RAW_BITS) - raw_size(n, FLOAT32_RAW_BITS - t) > 1:
        end = encode_payload_shifted(values, t, table, precision, out, pos)
        if end - pos < 4 * n:
            return MODE_SHIFTED, end
        return MODE_CODED, encode_payload(values, table, precision, out, pos)[0]
    return MODE_CODED, plain_end


@njit(inline="always")
def _encode_one(values, kind_base, dictionary_id32, check_key, rows, dim, ndim, table, precision, out, start):
    # one exact frame at out[start:]: header, payload, check; returns the end. The payload is
    # the smallest of: one value (a constant vector), the values coded without the low bits
    # they all have zero, coded, stored (when coding would not shrink it)
    pos = write_header(out, start, kind_base + MODE_CODED, dictionary_id32, rows, dim, ndim)
    n = values.size
    mode = MODE_CODED
    end, or_bits, differs = encode_payload(values, table, precision, out, pos)
    # a constant vector, or one whose values share zero low bits: coded again in its mode
    # (rare, so the plain coding's pass over the values is what finds it)
    if n >= 2 and (not differs or not or_bits & 1):
        mode, end = _encode_shaped(values, not differs, trailing_zeros(np.uint64(or_bits), FLOAT32_RAW_BITS),
                                   table, precision, out, pos, pos - start, end)
    if mode == MODE_CODED and end - pos >= 4 * n:
        mode = MODE_STORED
        end = _store_values(values, out, pos)
    out[start] = kind_base + mode
    return seal(out, start, end, check_key)  # one seal: its inlined hash once in the code


@njit(nogil=True, cache=True)
def encode_frame(values, kind_base, dictionary_id32, check_key, rows, dim, ndim, table, precision, out):
    """One exact frame of the float32 bits ``values`` (``rows`` x ``dim``, ``ndim`` 0-2)
    into ``out`` (``frame_capacity`` bytes); returns its length."""
    return _encode_one(values, kind_base, dictionary_id32, check_key, rows, dim, ndim, table, precision, out, 0)


@njit(nogil=True, cache=True)
def encode_frames(rows, kind_base, dictionary_id32, check_key, table, precision, out, ends):
    """One 1-D exact frame per row of ``rows`` (uint32, 2-D), back to back in ``out``
    (``len(rows) * frame_capacity(dim)`` bytes); ``ends[i]`` receives frame ``i``'s end."""
    pos = 0
    dim = rows.shape[1]
    for i in range(rows.shape[0]):
        pos = _encode_one(rows[i], kind_base, dictionary_id32, check_key, 1, dim, 1, table, precision, out, pos)
        ends[i] = pos
    return pos


@njit(cache=True)
def frame_capacity(n):
    """Bytes ``encode_frame`` may need for ``n`` values (header, payload while written, check)."""
    return 6 + 20 + max(1 + coded_capacity(n), 4 * n) + 4


@njit(inline="always")
def _decode_one(frame, header_size, kind_base, slot_table, slot_symbol, precision, out):
    # payload after the header (mode from the kind byte) into out; status
    mode = np.int64(frame[0]) - kind_base
    payload = frame[header_size:frame.size - 4]
    if mode == MODE_CODED:
        return decode_payload(payload, slot_table, slot_symbol, precision, out)
    if mode == MODE_STORED:
        if payload.size != 4 * out.size:
            return STATUS_CORRUPT
        _load_values(payload, out)
        return STATUS_OK
    if mode == MODE_CONSTANT:
        if payload.size != 4:
            return STATUS_CORRUPT
        _load_values(payload, out[:1])
        for i in range(1, out.size):
            out[i] = out[0]
        return STATUS_OK
    if mode == MODE_SHIFTED:
        return decode_payload_shifted(payload, slot_table, slot_symbol, precision, out)
    return STATUS_CORRUPT


@njit(nogil=True, cache=True)
def decode_frame(frame, header_size, kind_base, check_key, slot_table, slot_symbol, precision, out):
    """Check and decode one exact frame whose header (``header_size`` bytes) the caller has
    parsed; ``out`` (uint32) receives its values. Returns ``STATUS_OK``, ``STATUS_CORRUPT``
    or ``STATUS_CHECK`` (the check does not match: damage, or another dictionary)."""
    if frame_check(frame) ^ (_U(check_key) & _U(0xFFFFFFFF)) != stored_check(frame):
        return STATUS_CHECK
    return _decode_one(frame, header_size, kind_base, slot_table, slot_symbol, precision, out)


#: the frame check does not match
STATUS_CHECK = 2


@njit(nogil=True, cache=True)
def decode_frames(data, starts, header, kind_base, check_key, slot_table, slot_symbol, precision, out):
    """Decode frames ``data[starts[i]:starts[i + 1]]`` into the rows of ``out`` (uint32, 2-D).

    Every frame's header after its kind byte must equal ``header[1:]`` (same dictionary id
    and shape). Returns -1 when all decode, else the index of the first frame that does
    not, times 4, plus its status (``STATUS_CORRUPT`` or ``STATUS_CHECK``, or 3: a header
    that differs).
    """
    hsize = header.size
    for i in range(out.shape[0]):
        frame = data[starts[i]:starts[i + 1]]
        if frame.size < hsize + 4:
            return 4 * i + 3
        for b in range(1, hsize):
            if frame[b] != header[b]:
                return 4 * i + 3
        if frame_check(frame) ^ (_U(check_key) & _U(0xFFFFFFFF)) != stored_check(frame):
            return 4 * i + STATUS_CHECK
        status = _decode_one(frame, hsize, kind_base, slot_table, slot_symbol, precision, out[i])
        if status != STATUS_OK:
            return 4 * i + status
    return -1


@njit(nogil=True, cache=True)
def head_counts(values, counts):
    """``counts[values >> 20] += 1`` over the float32 bits ``values`` (any shape, uint32)."""
    flat = values.reshape(-1)
    for i in range(flat.size):
        counts[flat[i] >> FLOAT32_RAW_BITS] += 1


@njit(nogil=True, cache=True)
def assemble_frames(header, payloads, check_key, out):
    """Frames of one size: ``out[i]`` <- ``header``, ``payloads[i]``, the check
    (``seal``); ``out`` is (n, header + payload + 4) uint8."""
    hsize = header.size
    psize = payloads.shape[1]
    for i in range(out.shape[0]):
        row = out[i]
        row[:hsize] = header
        row[hsize:hsize + psize] = payloads[i]
        seal(row, 0, hsize + psize, check_key)


@njit(nogil=True, cache=True)
def check_frames(frames, header, check_key):
    """Frames of one size (the rows of ``frames``): -1 when every one starts with ``header``
    and holds its check, else the index of the first that does not, times 4, plus 3 (a
    header that differs) or ``STATUS_CHECK``."""
    hsize = header.size
    key = _U(check_key) & _U(0xFFFFFFFF)
    for i in range(frames.shape[0]):
        frame = frames[i]
        for b in range(hsize):
            if frame[b] != header[b]:
                return 4 * i + 3
        if frame_check(frame) ^ key != stored_check(frame):
            return 4 * i + STATUS_CHECK
    return -1
