"""The rANS primitives every spherecodec coder is built from: one definition of each.

Three coders use them: the 8-lane layout of entropy streams (``kernels.rans``, backend 0),
the 32-lane layout (``kernels.rans_simd``, backend 2: scalar steps here, vector steps in
LLVM IR made by ``ir_encode_step``/``ir_decode_step`` below) and the multi-table coder of
the exact codec's levels >= 2 (``kernels.predict``). They differ only in how symbols are
dealt to states and how the states' words are laid out; the arithmetic is this:

* a state ``x`` lives in ``[RANS_L, 2**32)`` and starts (encoder) and ends (decoder) at
  ``RANS_L``; it is stored as ``STATE_BYTES`` little-endian bytes (``flush_state``,
  ``read_state``);
* it moves ``WORD_BITS`` bits at a time: the encoder emits its low word before coding a
  symbol that would take it past ``2**32`` (``encode_step``), the decoder reads a word when
  it falls below ``RANS_L`` (``decode_step``); a word is 2 bytes, little endian;
* frequencies sum to ``2**precision`` with ``precision <= MAX_PRECISION``; an encoder
  table entry packs frequency, cumulative frequency and reciprocal (``encoder_entry``), a
  decoder slot entry frequency and the slot's offset in its symbol (``slot_entry``);
* decoders return ``STATUS_OK`` or ``STATUS_CORRUPT``.

The exact codec splits a float32 into a ``FLOAT32_SYMBOL_BITS``-bit head symbol (sign,
exponent, top 3 mantissa bits), entropy-coded, and ``FLOAT32_RAW_BITS`` raw low bits
stored in ``kernels.bits``' two planes (16-bit plane, then 4-bit plane); its decoders
rebuild each value in the same pass with ``merge_float32``.

Everything here is small and inlined into the coders' loops (measured: the same speed as
the hand-written copies it replaced). All arithmetic is integer.
"""

import numpy as np
from numba import njit

from .jit import callee

#: a normalised state is at least this (and below 2**STATE_BITS)
RANS_L = 1 << 16
STATE_BITS = 32
STATE_BYTES = STATE_BITS // 8
#: renormalisation moves one little-endian word of this many bits
WORD_BITS = 16
WORD_BYTES = WORD_BITS // 8
#: table entries keep a frequency in their low ENTRY_BITS bits (so precision <= 15)
ENTRY_BITS = 16
ENTRY_MASK = (1 << ENTRY_BITS) - 1
#: entropy streams' tables: 14 or 15 bits (``rans.choose_precision``); any 1..15 decodes
MIN_PRECISION = 14
MAX_PRECISION = 15
STATUS_OK = 0
STATUS_CORRUPT = 1
#: the exact codec's float32 split: head symbol bits (sign, exponent, 3 mantissa bits) and
#: raw low bits, as a 16-bit plane and a 4-bit plane (``kernels.bits``)
FLOAT32_SYMBOL_BITS = 12
FLOAT32_RAW_BITS = 32 - FLOAT32_SYMBOL_BITS
FLOAT32_ALPHABET = 1 << FLOAT32_SYMBOL_BITS
_PLANE_BITS = 8 * (FLOAT32_RAW_BITS // 8)
_NIBBLE_MASK = (1 << (FLOAT32_RAW_BITS % 8)) - 1
_U = np.uint64


# -- tables ------------------------------------------------------------------------------
@njit(inline="always")
def encoder_entry(f, c):
    """An encoder table entry (uint64): frequency ``f`` (bits 0-15), cumulative frequency
    ``c`` (16-31) and the reciprocal ``min(2**32 // f, 2**32 - 1)`` (32-63): one load per
    symbol from a table small enough for L1. ``f == 0``: no reciprocal (never coded)."""
    f = _U(f)
    if f == _U(0):
        return _U(c) << _U(ENTRY_BITS)
    rcp = min(_U(1 << STATE_BITS) // f, _U((1 << STATE_BITS) - 1))
    return f | (_U(c) << _U(ENTRY_BITS)) | (rcp << _U(STATE_BITS))


@njit(inline="always")
def slot_entry(f, offset):
    """A decoder slot entry (uint32): the symbol's frequency ``f`` and the slot's offset
    from the symbol's first slot (``slot - cumulative frequency``)."""
    return np.uint32(f | (offset << ENTRY_BITS))


# -- encoder -----------------------------------------------------------------------------
@njit(inline="always")
def _renormalize_for(x, f, precision, out, pos):
    # before coding a symbol of frequency f: emit the low word of a state that would
    # overflow; the candidate word is always stored below pos and kept only then
    overflow = x >= (f << _U(STATE_BITS - precision))
    out[_U(pos - 2)] = x & _U(0xFF)
    out[_U(pos - 1)] = (x >> _U(8)) & _U(0xFF)
    if overflow:
        x >>= _U(WORD_BITS)
        pos -= WORD_BYTES
    return x, pos


@njit(inline="always")
def _code(x, f, c, q, precision):
    # (q << precision) + (x - q f) + c with q = x // f, written so that a quotient
    # corrected by one (encode_step) is a plain add
    return x + c + q * ((_U(1) << _U(precision)) - f)


@callee
def encode_step(x, e, precision, out, pos):
    """Code one symbol with encoder entry ``e`` into state ``x`` (uint64), writing any word
    below ``out[pos]``; return (state, position)."""
    f = e & _U(ENTRY_MASK)
    c = (e >> _U(ENTRY_BITS)) & _U(ENTRY_MASK)
    rcp = e >> _U(STATE_BITS)
    x, pos = _renormalize_for(x, f, precision, out, pos)
    # x // f by the reciprocal: it underestimates the quotient by at most one for
    # x < 2**32, and one exact correction step fixes it (an if here compiles to a
    # mispredicted branch: measured 5% slower)
    q = (x * rcp) >> _U(STATE_BITS)
    q += _U(x - q * f >= f)
    return _code(x, f, c, q, precision), pos


@njit(inline="always")
def encode_step_divide(x, f, c, precision, out, pos):
    """``encode_step`` from frequency ``f`` and cumulative frequency ``c`` (uint64) by a
    division, for tables without reciprocals (``kernels.predict``'s, one per context:
    computing a reciprocal per symbol measured 20% slower than the division)."""
    x, pos = _renormalize_for(x, f, precision, out, pos)
    return _code(x, f, c, x // f, precision), pos


@callee
def flush_state(x, out, pos):
    """Write the final state ``x`` as ``STATE_BYTES`` little-endian bytes below
    ``out[pos]``; return the new position."""
    pos -= STATE_BYTES
    out[pos] = x & _U(0xFF)
    out[pos + 1] = (x >> _U(8)) & _U(0xFF)
    out[pos + 2] = (x >> _U(16)) & _U(0xFF)
    out[pos + 3] = (x >> _U(24)) & _U(0xFF)
    return pos


# -- decoder -----------------------------------------------------------------------------
@njit(inline="always")
def read_state(stream, p):
    """The state stored at ``stream[p:p + 4]`` (int64)."""
    return (np.int64(stream[p]) | (np.int64(stream[p + 1]) << 8)
            | (np.int64(stream[p + 2]) << 16) | (np.int64(stream[p + 3]) << 24))


@njit(inline="always")
def read_word(stream, p):
    """The word at ``stream[p:p + 2]`` (int64, ``p`` unsigned)."""
    return np.int64(stream[p]) | (np.int64(stream[p + _U(1)]) << 8)


@njit(inline="always")
def decode_advance(x, e, precision):
    """The state (int64) after decoding the symbol of slot entry ``e``, before any word:
    ``f * (x >> precision) + (x mod 2**precision) - c``."""
    return np.int64(e & ENTRY_MASK) * (np.int64(x) >> precision) + np.int64(e >> ENTRY_BITS)


@njit(inline="always")
def renormalize_decoded(x, stream, pos, last):
    """The state ``x`` (int64) after a symbol was decoded from it, with the word at ``pos``
    read in if it fell below ``RANS_L``; return (state, position). Branch-free: the word
    is loaded at ``min(pos, last)`` and kept only on underflow, so a decoder never reads
    past ``last + 1``; an overrun shows in the caller's final position check."""
    return _renormalize_reading(x, stream, pos, min(pos, last))


@njit(inline="always")
def _renormalize_reading(x, stream, pos, at):
    # the word at ``at`` (pos, or where the caller clamped it) joins x if x fell below RANS_L
    w = read_word(stream, _U(at))
    if x < RANS_L:
        x = (x << WORD_BITS) | w
        pos += WORD_BYTES
    return x, pos


@njit(inline="always")
def decode_step_in_bounds(x, e, precision, stream, pos):
    """``decode_step`` for a caller that has made sure ``pos + WORD_BYTES <= stream.size``
    (a word load needs no clamp: one compare and one register fewer a symbol)."""
    return _renormalize_reading(decode_advance(x, e, precision), stream, pos, pos)


@njit(inline="always")
def decode_step(x, e, precision, stream, pos, last):
    """Decode with slot entry ``e`` from state ``x``, reading a word at ``pos`` if the state
    falls below ``RANS_L`` (``renormalize_decoded``); return (state, position)."""
    return renormalize_decoded(decode_advance(x, e, precision), stream, pos, last)


@njit(inline="always")
def merge_float32(symbol, raw, nibbles, i):
    """Value ``i``'s float32 bits (uint32) from its head ``symbol`` and its raw low bits in
    ``raw`` (``kernels.bits`` layout; ``nibbles``: where the 4-bit plane starts)."""
    i = _U(i)
    low = np.uint32(raw[_U(2) * i]) | (np.uint32(raw[_U(2) * i + _U(1)]) << np.uint32(8))
    nibble = (np.uint32(raw[_U(nibbles) + (i >> _U(1))]) >> np.uint32(_U(4) * (i & _U(1)))) & np.uint32(_NIBBLE_MASK)
    return (np.uint32(symbol) << np.uint32(FLOAT32_RAW_BITS)) | (nibble << np.uint32(_PLANE_BITS)) | low


@njit(inline="always")
def store_symbol(out, i, symbol, raw, nibbles, fused):
    """``out[i] = symbol``, or with ``fused`` (a constant in every caller) the float32 of
    ``merge_float32``: decoders merge the raw bits as they go, sparing a second pass."""
    if fused:
        out[_U(i)] = merge_float32(symbol, raw, nibbles, i)
    else:
        out[_U(i)] = symbol


# -- lengths -----------------------------------------------------------------------------
@njit
def write_varint(out, pos, value):
    """Write ``value`` (>= 0) as a LEB128 varint at ``out[pos:]``; return the new position."""
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


@njit(cache=True)  # cached: entropy.decode_stream calls it from Python in every process
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


# -- the same steps for 16 lanes at a time, as LLVM IR (kernels.rans_simd) ---------------
def ir_encode_step(add, g, splat_count):
    """Append the IR of ``encode_step`` for the 16 lanes of group ``g``: from states
    ``%x{g}``, entries ``%fc{g}`` (frequency | cumulative << 16) and ``%rc{g}``
    (reciprocals), words stored below byte ``%p{g}`` of ``%scratch``; defines ``%xn{g}`` and
    ``%pn{g}``. Needs ``%uv`` (32 - precision), ``%pv`` (precision) and, per group,
    ``%cv{g}`` (the count ``%cn{g}`` splatted: ``splat_count(g)`` appends it)."""
    add(f"  %f{g} = and <16 x i32> %fc{g}, splat (i32 {ENTRY_MASK})")
    add(f"  %c{g} = lshr <16 x i32> %fc{g}, splat (i32 {ENTRY_BITS})")
    # renormalise first: states at or above f << (32 - precision) emit their low word
    add(f"  %lim{g} = shl <16 x i32> %f{g}, %uv")
    add(f"  %ov{g} = icmp uge <16 x i32> %x{g}, %lim{g}")
    add(f"  %ob{g} = bitcast <16 x i1> %ov{g} to i16")
    add(f"  %cn{g} = call i16 @llvm.ctpop.i16(i16 %ob{g})")
    add(f"  %cw{g} = zext i16 %cn{g} to i64")
    add(f"  %c2_{g} = mul i64 %cw{g}, {WORD_BYTES}")
    add(f"  %pn{g} = sub i64 %p{g}, %c2_{g}")
    add(f"  %wd{g} = trunc <16 x i32> %x{g} to <16 x i{WORD_BITS}>")
    add(f"  %wp{g} = getelementptr i8, ptr %scratch, i64 %pn{g}")
    # compressed in a register, then a masked store of the first cnt words (a compressing
    # store to memory is microcoded and slow on AMD Zen 4)
    add(f"  %wc{g} = call <16 x i16> @llvm.experimental.vector.compress.v16i16(<16 x i16> %wd{g}, "
        f"<16 x i1> %ov{g}, <16 x i16> poison)")
    splat_count(g)
    add(f"  %sm{g} = icmp ult <16 x i16> <i16 0, i16 1, i16 2, i16 3, i16 4, i16 5, i16 6, i16 7, "
        f"i16 8, i16 9, i16 10, i16 11, i16 12, i16 13, i16 14, i16 15>, %cv{g}")
    add(f"  call void @llvm.masked.store.v16i16.p0(<16 x i16> %wc{g}, ptr %wp{g}, i32 1, <16 x i1> %sm{g})")
    add(f"  %xh{g} = lshr <16 x i32> %x{g}, splat (i32 {WORD_BITS})")
    add(f"  %xr{g} = select <16 x i1> %ov{g}, <16 x i32> %xh{g}, <16 x i32> %x{g}")
    # x // f by the reciprocal (short by at most one, then corrected), then
    # (x // f << precision) + x % f + c: the remainder comes with the correction, which
    # saves the multiply of x + c + q (2**precision - f) (3.5% of the encoder's steps)
    add(f"  %xq{g} = zext <16 x i32> %xr{g} to <16 x i64>")
    add(f"  %rq{g} = zext <16 x i32> %rc{g} to <16 x i64>")
    add(f"  %pr{g} = mul <16 x i64> %xq{g}, %rq{g}")
    add(f"  %ph{g} = lshr <16 x i64> %pr{g}, splat (i64 {STATE_BITS})")
    add(f"  %q{g} = trunc <16 x i64> %ph{g} to <16 x i32>")
    add(f"  %qf{g} = mul <16 x i32> %q{g}, %f{g}")
    add(f"  %rm{g} = sub <16 x i32> %xr{g}, %qf{g}")
    add(f"  %fix{g} = icmp uge <16 x i32> %rm{g}, %f{g}")
    add(f"  %fx{g} = zext <16 x i1> %fix{g} to <16 x i32>")
    add(f"  %qq{g} = add <16 x i32> %q{g}, %fx{g}")
    add(f"  %rf{g} = select <16 x i1> %fix{g}, <16 x i32> %f{g}, <16 x i32> zeroinitializer")
    add(f"  %rr{g} = sub <16 x i32> %rm{g}, %rf{g}")
    add(f"  %qs{g} = shl <16 x i32> %qq{g}, %pv")
    add(f"  %xc{g} = add <16 x i32> %rr{g}, %c{g}")
    add(f"  %xn{g} = add <16 x i32> %xc{g}, %qs{g}")


def ir_decode_step(add, g):
    """Append the IR of ``decode_step`` for the 16 lanes of group ``g``: from states
    ``%x{g}`` and slot entries ``%e{g}``, the words of the lanes that fell below ``RANS_L``
    loaded in lane order from byte ``%p{g}`` of ``%stream`` (an expanding load); defines
    ``%xn{g}`` and ``%pn{g}``. Needs ``%pv`` (precision) splatted."""
    add(f"  %f{g} = and <16 x i32> %e{g}, splat (i32 {ENTRY_MASK})")
    add(f"  %b{g} = lshr <16 x i32> %e{g}, splat (i32 {ENTRY_BITS})")
    add(f"  %q{g} = lshr <16 x i32> %x{g}, %pv")
    add(f"  %m{g} = mul <16 x i32> %f{g}, %q{g}")
    add(f"  %xa{g} = add <16 x i32> %m{g}, %b{g}")
    add(f"  %u{g} = icmp ult <16 x i32> %xa{g}, splat (i32 {RANS_L})")
    add(f"  %wp{g} = getelementptr i8, ptr %stream, i64 %p{g}")
    add(f"  %w{g} = call <16 x i{WORD_BITS}> @llvm.masked.expandload.v16i{WORD_BITS}(ptr %wp{g}, "
        f"<16 x i1> %u{g}, <16 x i{WORD_BITS}> zeroinitializer)")
    add(f"  %ww{g} = zext <16 x i{WORD_BITS}> %w{g} to <16 x i32>")
    add(f"  %xs{g} = shl <16 x i32> %xa{g}, splat (i32 {WORD_BITS})")
    add(f"  %xo{g} = or <16 x i32> %xs{g}, %ww{g}")
    add(f"  %xn{g} = select <16 x i1> %u{g}, <16 x i32> %xo{g}, <16 x i32> %xa{g}")
    add(f"  %ub{g} = bitcast <16 x i1> %u{g} to i16")
    add(f"  %c{g} = call i16 @llvm.ctpop.i16(i16 %ub{g})")
    add(f"  %cw{g} = zext i16 %c{g} to i64")
    add(f"  %c2_{g} = mul i64 %cw{g}, {WORD_BYTES}")
    add(f"  %pn{g} = add i64 %p{g}, %c2_{g}")


def ir_nibbles(add, g, plane):
    """Append IR setting ``%nm{g}`` to the 4-bit fields of the 16 values from ``%o{g}``
    (i32 lanes), read from the nibble plane at ``%{plane}`` (two a byte, low nibble first)."""
    add(f"  %no{g} = lshr i64 %o{g}, 1")
    add(f"  %np{g} = getelementptr i8, ptr %{plane}, i64 %no{g}")
    add(f"  %nb{g} = load <8 x i8>, ptr %np{g}, align 1")
    add(f"  %nd{g} = shufflevector <8 x i8> %nb{g}, <8 x i8> poison, <16 x i32> "
        "<i32 0, i32 0, i32 1, i32 1, i32 2, i32 2, i32 3, i32 3, "
        "i32 4, i32 4, i32 5, i32 5, i32 6, i32 6, i32 7, i32 7>")
    add(f"  %nw{g} = zext <16 x i8> %nd{g} to <16 x i32>")
    add(f"  %ns{g} = lshr <16 x i32> %nw{g}, <i32 0, i32 4, i32 0, i32 4, i32 0, i32 4, "
        "i32 0, i32 4, i32 0, i32 4, i32 0, i32 4, i32 0, i32 4, i32 0, i32 4>")
    add(f"  %nm{g} = and <16 x i32> %ns{g}, splat (i32 {_NIBBLE_MASK})")


def ir_merge_float32(add, g, streaming=False):
    """Append the IR of ``merge_float32`` for the 16 values from ``%o{g}``: symbols
    ``%s{g}`` already shifted left by ``FLOAT32_RAW_BITS`` (the symbol table holds them so),
    the 16-bit plane at ``%raw``, the 4-bit plane at ``%nibp``; stores at ``%op{g}``
    (``streaming``: a non-temporal store, 64-byte aligned, metadata ``!0`` the module's
    ``!{i32 1}``)."""
    add(f"  %lp{g} = getelementptr i16, ptr %raw, i64 %o{g}")
    add(f"  %lo{g} = load <16 x i16>, ptr %lp{g}, align 1")
    add(f"  %lw{g} = zext <16 x i16> %lo{g} to <16 x i32>")
    ir_nibbles(add, g, "nibp")
    add(f"  %nh{g} = shl <16 x i32> %nm{g}, splat (i32 {_PLANE_BITS})")
    add(f"  %v1_{g} = or <16 x i32> %s{g}, %lw{g}")
    add(f"  %v2_{g} = or <16 x i32> %v1_{g}, %nh{g}")
    if streaming:
        add(f"  store <16 x i32> %v2_{g}, ptr %op{g}, align 64, !nontemporal !0")
    else:
        add(f"  store <16 x i32> %v2_{g}, ptr %op{g}, align 4")
