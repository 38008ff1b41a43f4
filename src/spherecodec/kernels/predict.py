"""Bit-exact linear prediction and context-modelled rANS for the exact codec's levels >= 2.

Every float32 value ``x[r, j]`` gets a prediction ``p[r, j]`` from the earlier coordinates of
its own row, and the prediction only *selects the frequency table* (the context) its
12-bit head symbol (sign, exponent, top 3 mantissa bits) is coded with; the low 20 bits
are stored raw. The decoder recomputes every prediction from values it already decoded, so
the bits round trip whatever the prediction is: it only has to be the same on both sides.

Determinism rules the code below follows. Model format 2 (what the encoder writes):

* the prediction of coordinate ``j`` is the sum of ``coef[k, j] * q(x[k])`` over ``k <
  min(j, K)``, where ``q`` (``_quantized``) maps a value to an integer term of at most
  ``QUANT_MAX`` in magnitude and the coefficients are integers of at most ``QUANT_MAX``:
  with K <= 512 every partial sum is an integer below 2**24, which int32 and float32 hold
  exactly, so any order of the sums gives the same value. Both sides take them as 16-bit
  integer tile products (``kernels.tile_products``): the encoder a tile of 16 rows x 16
  columns from every coordinate before the tile's last column (``predict_quantized``,
  ``count_quantized``), the decoder from the coordinates before the tile, then each
  coordinate of the tile as it is decoded (``decode_quantized``);

Model format 1 (still read):

* the prediction of coordinate ``j`` is ``bias[j]`` plus ``coef[k, j] * s(x[k])`` for
  ``k = 0, 1, ..., min(j, K) - 1``, added one at a time in that order, in float32, with a
  separate multiply and add (no fastmath, so LLVM neither reassociates nor fuses them;
  vectorising over ``j`` keeps each lane's order);

Both:

* ``s(x)`` replaces values outside ``[1e-30, 1e30]`` in magnitude (zeros, subnormals,
  infinities, NaNs) by 0, so predictions never see a subnormal, an infinity or a NaN and
  a processor flushing subnormals to zero computes the same predictions (``q`` starts
  from ``s(x)``);
* the context is ``floor(p * gain[j] + offset[j])`` clamped to ``0 .. buckets - 1``, plus a
  per-column base; no libm function anywhere.

Format 1's kernels (``predict_rows``, ``decode_contexts``: ``_add_terms`` and its tiles)
add the terms one at a time in coordinate order.

Stream order within a chunk: rows in blocks of ``BLOCK_ROWS``; within a block, column by
column, row by row. Symbol ``i`` of that order uses rANS state ``i % 4``; the body is the
four final states (u32 little endian each) then the 16-bit words in decoding order. The
coder's steps, constants and status codes are ``kernels.rans_core``'s.
"""

import numpy as np
from numba import njit

from .jit import callee
from .tile_products import TILE_COLUMNS, TILE_ROWS, pair_products, scaled_add_row
from .rans_core import (ENTRY_BITS, ENTRY_MASK, FLOAT32_ALPHABET, FLOAT32_RAW_BITS, FLOAT32_SYMBOL_BITS, RANS_L,
                        STATE_BYTES, STATUS_CORRUPT, STATUS_OK, encode_step, encoder_entry, flush_state, read_state,
                        renormalize_decoded)

BLOCK_ROWS = 16
#: the head symbol of a float32 is its top bits, above the raw ones (rans_core's split)
HEAD_SHIFT = FLOAT32_RAW_BITS
HEAD_BITS = FLOAT32_SYMBOL_BITS
ALPHABET = FLOAT32_ALPHABET
#: rANS states, dealt to the symbols of a block's column row by row
STATES = 4
_TINY = np.float32(1e-30)
_HUGE = np.float32(1e30)
_U = np.uint64
#: a literal 0 argument would make Numba compile a callee once more for the type Literal[int](0)
_ZERO = np.int64(0)


@njit(inline="always")
def _sanitize(x):
    a = abs(x)
    if a >= _TINY and a <= _HUGE:
        return x
    return np.float32(0.0)


#: model format 2's terms: integers in -QUANT_MAX .. QUANT_MAX (see _quantized)
QUANT_MAX = 127


@njit(inline="always")
def _quantized(x, s):
    # model format 2's term of value x in its column of scale s: round(s * x) clamped to
    # +-127, an integer held in a float32. Every step is one IEEE float32 operation or an
    # exact conversion, so every processor gets the same integer (a flush to zero of a
    # subnormal s * x still gives 0); values _sanitize zeroes give 0
    t = _sanitize(x) * s
    t = min(max(t, np.float32(-QUANT_MAX)), np.float32(QUANT_MAX))
    # t + 128.5 lies in [1.5, 255.5]: truncation is floor, so this rounds half up
    return np.float32(np.int64(t + np.float32(QUANT_MAX + 1.5))) - np.float32(QUANT_MAX + 1)


@njit(inline="always")
def _context(p, gain, offset, buckets, base):
    # t clamped to 0 .. buckets - 1 by a max and a min (maxss/minss: no branch, which a
    # prediction near a bucket's edge made mispredict), then truncated: floor, as t >= 0.
    # NaN compares false: the max gives 0, so NaN takes the first bucket
    t = p * gain + offset
    t = t if t > np.float32(0.0) else np.float32(0.0)
    top = np.float32(buckets - 1)
    t = t if t < top else top
    return base + np.int64(t)


#: columns of predictions updated per pass: a block's tile of them (16 rows x 128 floats,
#: 8 KiB) and the coefficient rows' slices stay in L1 while every earlier coordinate's term
#: is added, instead of streaming whole rows of predictions (3 KiB each at d = 768) per term
TILE = 128


@njit(inline="always")
def _update_range(pred, r, coef, k, xk, lo, hi):
    # the term of coordinate k added to columns lo .. hi - 1 of row r (one add each)
    ur = _U(r)
    uk = _U(k)
    for jj in range(_U(lo), _U(hi)):
        pred[ur, jj] += coef[uk, jj] * xk


@njit(inline="always")
def _update_quad(pred, r, coef, k, x0, x1, x2, x3, lo, hi):
    # the terms of coordinates k .. k + 3, in that order, added to columns lo .. hi - 1 of
    # row r: each element still gets four separate multiply-then-add steps in order, with
    # one load and one store of the prediction instead of four
    ur = _U(r)
    uk = _U(k)
    for jj in range(_U(lo), _U(hi)):
        pred[ur, jj] = (((pred[ur, jj] + coef[uk, jj] * x0) + coef[uk + _U(1), jj] * x1)
                        + coef[uk + _U(2), jj] * x2) + coef[uk + _U(3), jj] * x3


@njit(inline="always")
def _update_oct(pred, r, coef, k, xa, xb, lo, hi):
    # _update_quad for coordinates k .. k + 7 (values: the tuples xa, then xb): eight
    # multiply-then-add steps in order per element, one load and store of the prediction
    ur = _U(r)
    uk = _U(k)
    for jj in range(_U(lo), _U(hi)):
        p = (((pred[ur, jj] + coef[uk, jj] * xa[0]) + coef[uk + _U(1), jj] * xa[1])
             + coef[uk + _U(2), jj] * xa[2]) + coef[uk + _U(3), jj] * xa[3]
        pred[ur, jj] = ((((p + coef[uk + _U(4), jj] * xb[0]) + coef[uk + _U(5), jj] * xb[1])
                         + coef[uk + _U(6), jj] * xb[2]) + coef[uk + _U(7), jj] * xb[3])


@njit(inline="always")
def _quad_of(values, r, k):
    return (_sanitize(values[r, k]), _sanitize(values[r, k + 1]), _sanitize(values[r, k + 2]),
            _sanitize(values[r, k + 3]))


@callee(nogil=True)
def _add_terms(pred, values, r0, r1, p0, coef, k0, k1, lo, hi):
    """Add the terms of coordinates ``k0 .. k1 - 1``, in that order, to the columns
    ``lo .. hi - 1`` of rows ``r0 .. r1 - 1`` of ``values``, whose predictions are the
    rows ``r - p0`` of ``pred``; every column there must lie after ``k1 - 1``. Rows that
    come in fours (a whole block) take four coordinates a pass four rows at a time, so
    that each coefficient loaded serves four rows (measured 1.3x the passes below on 16
    rows x 512 coordinates x 256 columns, Intel Xeon); other rows eight, then four
    coordinates per pass, so their coefficient slices serve the whole block. Every
    element takes its terms one at a time in coordinate order either way.

    Format 1's one tile routine: its prediction and its decoder call it (not inlined, so
    it is compiled once per signature instead of once per caller)."""
    k = k0
    if (r1 - r0) % 4 == 0:
        for r in range(r0, r1, 4):
            p = r - p0
            k = k0
            while k + 4 <= k1:
                # written out here: the same loop in an inlined helper taking these as
                # arguments was not vectorised (5 against 27 GMAC/s)
                a0, a1, a2, a3 = _quad_of(values, r, k)
                b0, b1, b2, b3 = _quad_of(values, r + 1, k)
                c0, c1, c2, c3 = _quad_of(values, r + 2, k)
                d0, d1, d2, d3 = _quad_of(values, r + 3, k)
                for jj in range(_U(lo), _U(hi)):
                    w0 = coef[_U(k), jj]
                    w1 = coef[_U(k + 1), jj]
                    w2 = coef[_U(k + 2), jj]
                    w3 = coef[_U(k + 3), jj]
                    pred[_U(p), jj] = (((pred[_U(p), jj] + w0 * a0) + w1 * a1) + w2 * a2) + w3 * a3
                    pred[_U(p + 1), jj] = (((pred[_U(p + 1), jj] + w0 * b0) + w1 * b1) + w2 * b2) + w3 * b3
                    pred[_U(p + 2), jj] = (((pred[_U(p + 2), jj] + w0 * c0) + w1 * c1) + w2 * c2) + w3 * c3
                    pred[_U(p + 3), jj] = (((pred[_U(p + 3), jj] + w0 * d0) + w1 * d1) + w2 * d2) + w3 * d3
                k += 4
        # every group stopped at the same k: the last coordinates one at a time, below
    while k + 8 <= k1:
        for r in range(r0, r1):
            _update_oct(pred, r - p0, coef, k, _quad_of(values, r, k), _quad_of(values, r, k + 4), lo, hi)
        k += 8
    while k + 4 <= k1:
        for r in range(r0, r1):
            _update_quad(pred, r - p0, coef, k, _sanitize(values[r, k]), _sanitize(values[r, k + 1]),
                         _sanitize(values[r, k + 2]), _sanitize(values[r, k + 3]), lo, hi)
        k += 4
    while k < k1:
        for r in range(r0, r1):
            _update_range(pred, r - p0, coef, k, _sanitize(values[r, k]), lo, hi)
        k += 1


@njit(inline="always")
def _add_triangle(pred, values, r0, r1, p0, coef, t0, K, t1):
    """Within the tile ``t0 .. t1 - 1`` (rows as in ``_add_terms``): each column ``j``
    there gets the terms of the tile's coordinates ``t0 .. min(j, K) - 1`` in order."""
    kend = min(K, t1 - 1)
    k = t0
    while k < kend:
        if k + 4 <= kend:
            for r in range(r0, r1):
                p = r - p0
                # the columns k + 1 .. k + 3 take the first one to three of the four terms
                x0 = _sanitize(values[r, k])
                x1 = _sanitize(values[r, k + 1])
                x2 = _sanitize(values[r, k + 2])
                x3 = _sanitize(values[r, k + 3])
                pred[p, k + 1] += coef[k, k + 1] * x0
                pred[p, k + 2] = (pred[p, k + 2] + coef[k, k + 2] * x0) + coef[k + 1, k + 2] * x1
                pred[p, k + 3] = (((pred[p, k + 3] + coef[k, k + 3] * x0) + coef[k + 1, k + 3] * x1)
                                  + coef[k + 2, k + 3] * x2)
                _update_quad(pred, p, coef, k, x0, x1, x2, x3, k + 4, t1)
            k += 4
        else:
            for r in range(r0, r1):
                _update_range(pred, r - p0, coef, k, _sanitize(values[r, k]), k + 1, t1)
            k += 1


@callee(nogil=True)
def _predict_block(pred, values, r0, r1, p0, coef, bias, K):
    """Predictions of rows ``r0 .. r1 - 1`` of ``values`` into the rows ``r - p0`` of
    ``pred``, a tile of columns at a time: the terms of the earlier tiles' coordinates,
    then the tile's own (``predict_rows``' block: a callee, compiled once)."""
    d = values.shape[1]
    for t0 in range(0, d, TILE):
        t1 = min(d, t0 + TILE)
        for r in range(r0, r1):
            for j in range(t0, t1):
                pred[r - p0, j] = bias[j]
        _add_terms(pred, values, r0, r1, p0, coef, _ZERO, min(K, t0), t0, t1)
        _add_triangle(pred, values, r0, r1, p0, coef, t0, K, t1)


@njit(nogil=True, cache=True)
def predict_rows(values, coef, bias, pred):
    """Prediction of every value of ``values`` (float32, rows x d) into ``pred`` (same shape).

    ``coef`` is (K, d) float32: ``coef[k, j]`` weighs coordinate ``k < j`` in the
    prediction of ``j`` (entries with ``j <= k`` are ignored); ``bias`` is float32 per column.
    """
    n, d = values.shape
    K = min(coef.shape[0], d)
    for r0 in range(0, n, BLOCK_ROWS):
        _predict_block(pred, values, r0, min(n, r0 + BLOCK_ROWS), _ZERO, coef, bias, K)


@njit(nogil=True, cache=True)
def quantize_terms(rows, scale, out):
    """``out[r, k] = _quantized(rows[r, k], scale[k])`` for the first ``out.shape[1]``
    columns of ``rows`` (float32, rows x d): the terms model format 2 predicts from (the
    kernels quantize them in their blocks; the tests hold this rule to numpy)."""
    n, K = out.shape
    for r in range(n):
        for k in range(K):
            out[r, k] = _quantized(rows[r, k], scale[k])


@njit(nogil=True, cache=True)
def sanitized(rows, out):
    """``out`` = ``rows`` (float32) where ``1e-30 <= |x| <= 1e30`` (NaN: no), else 0: the
    values the model is fitted on (``out``: float32)."""
    n, d = rows.shape
    for r in range(n):
        for j in range(d):
            x = rows[r, j]
            a = abs(x)
            out[r, j] = x if a >= _TINY and a <= _HUGE else np.float32(0.0)


@njit(nogil=True, cache=True)
def residual_spreads(clean, pred, inverse_w, bias, out):
    """``out[j]`` = the standard deviation over rows (float32, numpy's ``std(axis=0)``
    steps: the sum of the rows in order, the mean, then the sum of squared deviations in
    order, each divided by the row count, its square root) of ``clean - (pred * inverse_w +
    bias)`` (float32, rows x d; the last two per column): the spreads of the residuals of
    the predictions ``pred`` stand for, which rank the columns into classes. Without the
    three n x d temporaries numpy's expression makes."""
    n, d = clean.shape
    total = np.zeros(d, dtype=np.float32)
    for r in range(n):
        for j in range(d):
            total[j] += clean[r, j] - (pred[r, j] * inverse_w[j] + bias[j])
    count = np.float32(n)
    for j in range(d):
        total[j] = total[j] / count
    squares = np.zeros(d, dtype=np.float32)
    for r in range(n):
        for j in range(d):
            x = (clean[r, j] - (pred[r, j] * inverse_w[j] + bias[j])) - total[j]
            squares[j] += x * x
    for j in range(d):
        out[j] = np.sqrt(squares[j] / count)


@njit(nogil=True, cache=True)
def contexts_of(pred, gain, offset, base, buckets, ctx):
    """Context of every prediction: ``base[j] + clamp(floor(p * gain[j] + offset[j]))``."""
    n, d = pred.shape
    for r in range(n):
        for j in range(d):
            ctx[r, j] = _context(pred[r, j], gain[j], offset[j], buckets, base[j])


#: values per table entry from which the histograms count into two tables (_add_histogram)
TWO_TABLES_FROM = 8


@callee(nogil=True)
def _add_histogram(values, ctx, r0, r1, counts, spare):
    """Add the head symbols of rows ``r0 .. r1 - 1`` of ``values`` (uint32) to
    ``counts[ctx, symbol]`` (even columns) and ``spare[ctx, symbol]`` (odd ones): a value
    often has the context and symbol of its neighbour, and one table would make each such
    increment wait for the store before it (two: 4.8 -> 2.9 ms for 8,000 x 384)."""
    d = values.shape[1]
    for r in range(_U(r0), _U(r1)):
        for j in range(_U(0), _U(d - d % 2), _U(2)):
            counts[_U(ctx[r, j]), _U(values[r, j] >> np.uint32(HEAD_SHIFT))] += 1
            spare[_U(ctx[r, j + _U(1)]), _U(values[r, j + _U(1)] >> np.uint32(HEAD_SHIFT))] += 1
        if d % 2:
            counts[_U(ctx[r, _U(d - 1)]), _U(values[r, _U(d - 1)] >> np.uint32(HEAD_SHIFT))] += 1


@callee(nogil=True)
def _spare_counts(counts, values):
    # _add_histogram's second table for ``values`` values: a zeroed one when they are many
    # against the tables (its zeroing and summing cost ~0.3 ms at 64 contexts), else
    # ``counts`` itself (one table, as the probe's few rows are counted)
    if values >= TWO_TABLES_FROM * counts.size:
        return np.zeros_like(counts)
    return counts


@callee(nogil=True)
def _fold_spare(counts, spare):
    # _spare_counts' table added into counts (nothing to add when it is counts itself)
    if spare is counts:
        return
    for c in range(counts.shape[0]):
        for s in range(counts.shape[1]):
            counts[c, s] += spare[c, s]


@njit(nogil=True, cache=True)
def context_histogram(values, ctx, counts):
    """Add the head symbols of ``values`` (uint32) to ``counts[ctx, symbol]``."""
    spare = _spare_counts(counts, values.size)
    _add_histogram(values, ctx, _ZERO, np.int64(values.shape[0]), counts, spare)
    _fold_spare(counts, spare)


@njit(nogil=True, cache=True)
def encoder_tables(freq, entries):
    """``entries[c, s]``: ``rans_core.encoder_entry`` of symbol ``s`` in context ``c``'s
    table (``freq``: int64, contexts x alphabet, each row summing to 2**precision or 0)."""
    for c in range(freq.shape[0]):
        cum = 0
        for s in range(freq.shape[1]):
            entries[c, s] = encoder_entry(freq[c, s], cum)
            cum += freq[c, s]


@njit(inline="always")
def _encoder_entry(entries, ctx, bits, r, j):
    # value [r, j]'s entry in its context's table
    return entries[_U(ctx[_U(r), _U(j)]), _U(bits[_U(r), _U(j)] >> np.uint32(HEAD_SHIFT))]


@njit(inline="always")
def _no_frequency(e):
    # 1 when entry e's symbol has no frequency (cannot be coded), else 0
    return _U(e & _U(ENTRY_MASK) == _U(0))


@njit(nogil=True, cache=True)
def encode_contexts(bits, ctx, entries, precision, out):
    """rANS-encode the head symbols of a chunk (``bits``: uint32, rows x d), value
    ``[r, j]`` with the table of context ``ctx[r, j]`` (``entries``: ``encoder_tables``),
    in the stream order (blocks of ``BLOCK_ROWS`` rows; column by column; row ``r`` of a
    block on state ``r % 4``), walked backwards as rANS encodes.

    The body fills ``out`` from its end (``out`` needs ``2 * rows * d + 16`` bytes);
    returns its start, or -1 when a symbol has no frequency in its table (the caller then
    codes the chunk another way). Such a symbol is coded like any other (it cannot write
    out of bounds) and found at the end of its block: one test a block, not a branch a
    value (with the four lanes unrolled: measured 16-25% faster).
    """
    n, d = bits.shape
    pos = out.size
    x0 = x1 = x2 = x3 = _U(RANS_L)
    missing = _U(0)
    last_block = ((n - 1) // BLOCK_ROWS) * BLOCK_ROWS if n else 0
    for r0 in range(last_block, -1, -BLOCK_ROWS):
        r1 = min(n, r0 + BLOCK_ROWS)
        for j in range(d - 1, -1, -1):
            if r1 - r0 == BLOCK_ROWS:
                # a whole block: rows g + 3 .. g on states 3 .. 0
                for g in range(r0 + BLOCK_ROWS - 4, r0 - 1, -4):
                    e = _encoder_entry(entries, ctx, bits, g + 3, j)
                    missing |= _no_frequency(e)
                    x3, pos = encode_step(x3, e, precision, out, pos)
                    e = _encoder_entry(entries, ctx, bits, g + 2, j)
                    missing |= _no_frequency(e)
                    x2, pos = encode_step(x2, e, precision, out, pos)
                    e = _encoder_entry(entries, ctx, bits, g + 1, j)
                    missing |= _no_frequency(e)
                    x1, pos = encode_step(x1, e, precision, out, pos)
                    e = _encoder_entry(entries, ctx, bits, g, j)
                    missing |= _no_frequency(e)
                    x0, pos = encode_step(x0, e, precision, out, pos)
            else:
                for r in range(r1 - 1, r0 - 1, -1):
                    e = _encoder_entry(entries, ctx, bits, r, j)
                    missing |= _no_frequency(e)
                    lane = (r - r0) & 3
                    if lane == 0:
                        x0, pos = encode_step(x0, e, precision, out, pos)
                    elif lane == 1:
                        x1, pos = encode_step(x1, e, precision, out, pos)
                    elif lane == 2:
                        x2, pos = encode_step(x2, e, precision, out, pos)
                    else:
                        x3, pos = encode_step(x3, e, precision, out, pos)
        if missing:
            return -1
    pos = flush_state(x3, out, pos)
    pos = flush_state(x2, out, pos)
    pos = flush_state(x1, out, pos)
    return flush_state(x0, out, pos)


@njit(nogil=True, cache=True)
def decoder_tables(freq, precision, slot_symbol, symbol_entry):
    """The decoder's tables of ``freq`` (int64, contexts x alphabet): ``slot_symbol``
    (uint16, contexts * 2**precision) maps context ``c``'s slot ``c << precision | v`` to its
    symbol (each symbol's slots in increasing symbol order, as ``kernels.rans.read_table``
    lays them out); ``symbol_entry`` (uint32, contexts * alphabet) holds each symbol's
    frequency (bits 0-15) and cumulative frequency (16-31)."""
    contexts, alphabet = freq.shape
    size = 1 << precision
    for c in range(contexts):
        cum = 0
        for s in range(alphabet):
            f = freq[c, s]
            symbol_entry[c * alphabet + s] = np.uint32(f | (cum << ENTRY_BITS))
            for slot in range(cum, min(cum + f, size)):
                slot_symbol[c * size + slot] = s
            cum += f


@njit(inline="always")
def _decode_value(x, pos, c, slot_symbol, symbol_entry, precision, mask, stream, last):
    # the slot's symbol (2 bytes a slot: a context's 2**12 slots take 8 KiB), then that
    # symbol's frequency and cumulative frequency, a table of few hot lines: two loads,
    # but from 1/3 of the memory of one 6-byte entry per slot, which stays in L2
    low = x & mask
    symbol = slot_symbol[(_U(c) << _U(precision)) | _U(low)]
    e = np.int64(symbol_entry[(_U(c) << _U(HEAD_BITS)) | _U(symbol)])
    x = (e & ENTRY_MASK) * (x >> precision) + low - (e >> ENTRY_BITS)
    x, pos = renormalize_decoded(x, stream, pos, last)
    return x, pos, symbol


@njit(inline="always")
def _put_symbol(out, r, j, symbol):
    # OR a head symbol in above the raw low bits out[r, j] holds already
    out[_U(r), _U(j)] |= np.uint32(symbol) << np.uint32(HEAD_SHIFT)


@njit(inline="always")
def _decode_column(x0, x1, x2, x3, pos, j, r0, r1, pred, gain, offset, base, buckets, slot_symbol,
                   symbol_entry, precision, mask, stream, last, out, ctx):
    """Decode coordinate ``j`` of rows ``r0 .. r1 - 1`` (one block); lane = row in block % 4.
    ``out`` holds the values' raw low bits already: each head symbol is ORed in above them.
    The block's contexts go to ``ctx`` (``BLOCK_ROWS`` int64) first, in a loop of their
    own, so that the float work stays out of the rANS steps' dependency chain (measured:
    level 3 decode 5-8% faster)."""
    g = gain[j]
    o = offset[j]
    b = base[j]
    for r in range(r0, r1):
        ctx[_U(r - r0)] = _context(pred[_U(r - r0), _U(j)], g, o, buckets, b)
    return _decode_symbols(x0, x1, x2, x3, pos, j, r0, r1, ctx, slot_symbol, symbol_entry, precision, mask, stream,
                           last, out)


@njit(inline="always")
def _decode_symbols(x0, x1, x2, x3, pos, j, r0, r1, ctx, slot_symbol, symbol_entry, precision, mask, stream, last,
                    out):
    """Decode coordinate ``j`` of rows ``r0 .. r1 - 1`` (one block) in the contexts
    ``ctx[r - r0]``; lane = row in block % 4 (``_decode_column``'s symbol steps)."""
    if r1 - r0 == BLOCK_ROWS:
        # a whole block: four rows a step, no row to check
        for q in range(0, BLOCK_ROWS, 4):
            r = r0 + q
            x0, pos, symbol = _decode_value(x0, pos, ctx[_U(q)], slot_symbol, symbol_entry, precision, mask,
                                            stream, last)
            _put_symbol(out, r, j, symbol)
            x1, pos, symbol = _decode_value(x1, pos, ctx[_U(q + 1)], slot_symbol, symbol_entry, precision, mask,
                                            stream, last)
            _put_symbol(out, r + 1, j, symbol)
            x2, pos, symbol = _decode_value(x2, pos, ctx[_U(q + 2)], slot_symbol, symbol_entry, precision, mask,
                                            stream, last)
            _put_symbol(out, r + 2, j, symbol)
            x3, pos, symbol = _decode_value(x3, pos, ctx[_U(q + 3)], slot_symbol, symbol_entry, precision, mask,
                                            stream, last)
            _put_symbol(out, r + 3, j, symbol)
        return x0, x1, x2, x3, pos
    # a short block (a chunk's last): one row at a time on its lane's state (a single
    # copy of the step, as this path is rare)
    for r in range(r0, r1):
        lane = (r - r0) & 3
        x = x0 if lane == 0 else (x1 if lane == 1 else (x2 if lane == 2 else x3))
        x, pos, symbol = _decode_value(x, pos, ctx[_U(r - r0)], slot_symbol, symbol_entry, precision, mask, stream,
                                       last)
        _put_symbol(out, r, j, symbol)
        if lane == 0:
            x0 = x
        elif lane == 1:
            x1 = x
        elif lane == 2:
            x2 = x
        else:
            x3 = x
    return x0, x1, x2, x3, pos


@njit(inline="always")
def _unpack_low_bits(raw, nibbles, out):
    # the raw low 20 bits of every value (kernels.bits layout: 16-bit plane, then the
    # 4-bit plane, two values a byte) into out, two values a step: a vectorisable pass
    # that spares the decoding loop three byte loads per value
    flat = out.reshape(-1)
    total = flat.size
    for h in range(total // 2):
        i = _U(2 * h)
        nib = np.uint32(raw[_U(nibbles) + _U(h)])
        flat[i] = (np.uint32(raw[_U(2) * i]) | (np.uint32(raw[_U(2) * i + _U(1)]) << np.uint32(8))
                   | ((nib & np.uint32(15)) << np.uint32(16)))
        flat[i + _U(1)] = (np.uint32(raw[_U(2) * i + _U(2)]) | (np.uint32(raw[_U(2) * i + _U(3)]) << np.uint32(8))
                           | ((nib >> np.uint32(4)) << np.uint32(16)))
    if total & 1:
        i = _U(total - 1)
        flat[i] = (np.uint32(raw[_U(2) * i]) | (np.uint32(raw[_U(2) * i + _U(1)]) << np.uint32(8))
                   | ((np.uint32(raw[_U(nibbles) + (i >> _U(1))]) & np.uint32(15)) << np.uint32(16)))


@njit(inline="always")
def _settled_before_decoding(total, end):
    # (whether the chunk's status is known before any step, that status): an empty chunk
    # needs an empty body; any other at least the four states, in 16-bit words
    if total == 0:
        return True, STATUS_OK if end == 0 else STATUS_CORRUPT
    if end < STATES * STATE_BYTES or (end & 1):
        return True, STATUS_CORRUPT
    return False, STATUS_OK


@njit(inline="always")
def _first_states(stream):
    # the body's four states, and the position of its first word
    return (read_state(stream, 0), read_state(stream, STATE_BYTES), read_state(stream, 2 * STATE_BYTES),
            read_state(stream, 3 * STATE_BYTES), STATES * STATE_BYTES)


@njit(inline="always")
def _status_after_decoding(pos, end, x0, x1, x2, x3):
    # a clean body ends read to its last byte with every state back at RANS_L
    if pos != end:
        return STATUS_CORRUPT
    if x0 != RANS_L or x1 != RANS_L or x2 != RANS_L or x3 != RANS_L:
        return STATUS_CORRUPT
    return STATUS_OK


@njit(nogil=True, cache=True)
def decode_contexts(stream, raw, slot_symbol, symbol_entry, precision, coef, bias, gain, offset, base, buckets,
                    out, pred):
    """Decode a chunk of a model format 1: predictions, contexts and symbols interleaved;
    return a status (format 2: ``decode_quantized``).

    ``out`` is uint32 (rows x d) and receives the values' bits; ``raw`` holds their low 20
    bits (``kernels.bits`` layout: 16-bit plane, then 4-bit plane, row-major value order);
    ``slot_symbol``/``symbol_entry`` are ``decoder_tables``'; ``pred`` is float32 scratch
    (``BLOCK_ROWS`` x d). The other arguments are those of ``predict_rows`` and
    ``contexts_of``; every ``base[j] + buckets - 1`` must index a table. The terms are the
    values, ``_sanitize``d, each prediction taking them one at a time in coordinate order.
    """
    n, d = out.shape
    total = n * d
    end = stream.size
    settled, status = _settled_before_decoding(total, end)
    if settled:
        return status
    fout = out.view(np.float32)
    K = min(coef.shape[0], d)
    # the block's terms of its first K coordinates, filled as they are decoded
    terms = np.zeros((BLOCK_ROWS, max(K, 1)), dtype=np.float32)
    x0, x1, x2, x3, pos = _first_states(stream)
    last = end - 2
    mask = np.int64((1 << precision) - 1)
    ctx = np.empty(BLOCK_ROWS, dtype=np.int64)
    _unpack_low_bits(raw, 2 * total, out)
    for r0 in range(0, n, BLOCK_ROWS):
        r1 = min(n, r0 + BLOCK_ROWS)
        rows = r1 - r0
        for t0 in range(0, d, TILE):
            t1 = min(d, t0 + TILE)
            for r in range(rows):
                for j in range(t0, t1):
                    pred[r, j] = bias[j]
            # the terms of the earlier tiles' (decoded) coordinates, then the tile's own as
            # they are decoded: every prediction takes its terms in coordinate order
            _add_terms(pred, terms, _ZERO, rows, _ZERO, coef, _ZERO, min(K, t0), t0, t1)
            j = t0
            while j < t1:
                # four coordinates at a time while their terms reach four columns of the tile:
                # each of j + 1 .. j + 3 takes the earlier ones' terms just before it is
                # decoded, the rest of the tile all four after them, in one pass. The terms
                # are kept (for the later tiles) in these loops over the rows: a loop of
                # their own per column, strided, became gathers and scatters (5% of a level
                # 3 decode)
                g = 4 if j + 4 <= min(K, t1) else 1
                for i in range(j, j + g):
                    # each loop over the rows keeps the term of the coordinate decoded last
                    if i == j + 1:
                        c01 = coef[j, i]
                        for r in range(rows):
                            q0 = _sanitize(fout[r0 + r, j])
                            terms[r, j] = q0
                            pred[r, i] += c01 * q0
                    elif i == j + 2:
                        c02 = coef[j, i]
                        c12 = coef[j + 1, i]
                        for r in range(rows):
                            q1 = _sanitize(fout[r0 + r, j + 1])
                            terms[r, j + 1] = q1
                            pred[r, i] = (pred[r, i] + c02 * terms[r, j]) + c12 * q1
                    elif i == j + 3:
                        c03 = coef[j, i]
                        c13 = coef[j + 1, i]
                        c23 = coef[j + 2, i]
                        for r in range(rows):
                            q2 = _sanitize(fout[r0 + r, j + 2])
                            terms[r, j + 2] = q2
                            pred[r, i] = (((pred[r, i] + c03 * terms[r, j]) + c13 * terms[r, j + 1])
                                          + c23 * q2)
                    x0, x1, x2, x3, pos = _decode_column(x0, x1, x2, x3, pos, i, r0, r1, pred, gain, offset,
                                                         base, buckets, slot_symbol, symbol_entry, precision,
                                                         mask, stream, last, out, ctx)
                if g == 4:
                    for r in range(rows):
                        q3 = _sanitize(fout[r0 + r, j + 3])
                        terms[r, j + 3] = q3
                        _update_quad(pred, r, coef, j, terms[r, j], terms[r, j + 1], terms[r, j + 2], q3, j + 4, t1)
                elif j < K:
                    for r in range(rows):
                        q0 = _sanitize(fout[r0 + r, j])
                        terms[r, j] = q0
                        _update_range(pred, r, coef, j, q0, j + 1, t1)
                j += g
    return _status_after_decoding(pos, end, x0, x1, x2, x3)


assert TILE_ROWS == BLOCK_ROWS


@njit(nogil=True, cache=True)
def decode_quantized(stream, raw, slot_symbol, symbol_entry, precision, coef_tiles, K, scale, gain, offset, base,
                     buckets, out, terms, pred):
    """Decode a chunk of a model format 2 (``decode_contexts``' stream and arguments) a tile
    of ``TILE_COLUMNS`` columns at a time; return a status.

    Format 2's predictions are integers whatever the order of their sums, so a tile's
    predictions from the coordinates before it are one small integer matrix product
    (``kernels.tile_products``, two coordinates a step), and each coordinate of the tile,
    once decoded, adds its term to the tile's later columns. ``coef_tiles`` (int16, tiles x
    pairs x ``TILE_COLUMNS`` x 2) holds ``coef[k, j]`` at ``[j // TILE_COLUMNS, k // 2, j %
    TILE_COLUMNS, k % 2]``, 0 where ``j <= k``, ``j >= d`` or ``k >= K``
    (``exact_models._coef_tiles``; K the predictor's coordinates); ``terms`` is int16 scratch of the same pairs (pairs x
    ``BLOCK_ROWS`` x 2), ``pred`` float32 scratch (``TILE_COLUMNS`` x ``BLOCK_ROWS``: a
    column's predictions a row)."""
    n, d = out.shape
    total = n * d
    end = stream.size
    settled, status = _settled_before_decoding(total, end)
    if settled:
        return status
    fout = out.view(np.float32)
    K = min(K, 2 * coef_tiles.shape[1], d)
    x0, x1, x2, x3, pos = _first_states(stream)
    last = end - 2
    mask = np.int64((1 << precision) - 1)
    ctx = np.empty(BLOCK_ROWS, dtype=np.int64)
    column = np.zeros(BLOCK_ROWS, dtype=np.float32)  # the terms of the coordinate decoded last
    # an odd K's last pair has a second term of 0; rows past a short last block keep the
    # earlier block's terms, which only their own (unread) predictions take
    terms[:] = 0
    _unpack_low_bits(raw, 2 * total, out)
    tile_pairs = coef_tiles.shape[1]
    for r0 in range(0, n, BLOCK_ROWS):
        r1 = min(n, r0 + BLOCK_ROWS)
        rows = r1 - r0
        for j0 in range(0, d, TILE_COLUMNS):
            tile = j0 // TILE_COLUMNS
            width = min(d, j0 + TILE_COLUMNS) - j0
            # the block's terms as vectors, a column's coefficients each scalar: pred[c, r]
            pair_products(terms, _ZERO, coef_tiles, tile * tile_pairs, pred, _ZERO, _ZERO, (min(j0, K) + 1) // 2)
            for c in range(width):
                j = j0 + c
                g = gain[j]
                o = offset[j]
                b = base[j]
                for r in range(rows):
                    ctx[_U(r)] = _context(pred[_U(c), _U(r)], g, o, buckets, b)
                x0, x1, x2, x3, pos = _decode_symbols(x0, x1, x2, x3, pos, j, r0, r1, ctx, slot_symbol,
                                                      symbol_entry, precision, mask, stream, last, out)
                if j < K:
                    s = scale[j]
                    p = _U(j >> 1)
                    h = _U(j & 1)
                    for r in range(rows):
                        q = _quantized(fout[r0 + r, j], s)
                        column[_U(r)] = q
                        terms[p, _U(r), h] = np.int16(q)
                    # the term reaches the tile's later columns (whole blocks of rows: the
                    # rows past a short block are unread), from a contiguous float copy
                    for c2 in range(c + 1, width):
                        scaled_add_row(pred, c2, column, np.float32(coef_tiles[tile, p, c2, h]))
    return _status_after_decoding(pos, end, x0, x1, x2, x3)


@callee(nogil=True)
def _block_predictions(rows, r0, r1, scale, coef_tiles, K, terms, tile_out, pred, p0):
    """Format 2's predictions of rows ``r0 .. r1 - 1`` of ``rows`` (float32, n x d) into
    the rows ``r - p0`` of ``pred`` (float32, C order), a tile of ``TILE_COLUMNS`` columns
    at a time (``kernels.tile_products.pair_products``: every coordinate before the
    tile's last column, as ``coef`` is 0 where ``j <= k``). ``terms`` (int16, pairs x
    ``BLOCK_ROWS`` x 2, zeros past K) and ``tile_out`` (float32, ``BLOCK_ROWS`` x
    ``TILE_COLUMNS``) are scratch; a short block or a part tile goes through ``tile_out``."""
    d = rows.shape[1]
    count = r1 - r0
    for r in range(count):
        for k in range(K):
            terms[_U(k >> 1), _U(r), _U(k & 1)] = np.int16(_quantized(rows[r0 + r, k], scale[k]))
    tile_pairs = coef_tiles.shape[1]
    for j0 in range(0, d, TILE_COLUMNS):
        tile = j0 // TILE_COLUMNS
        width = min(d, j0 + TILE_COLUMNS) - j0
        pairs = (min(j0 + TILE_COLUMNS, K) + 1) // 2
        # the tile's coefficients as vectors, a row's terms each scalar: rows as they lie
        if count == BLOCK_ROWS and width == TILE_COLUMNS:
            pair_products(coef_tiles, tile * tile_pairs, terms, _ZERO, pred, r0 - p0, j0, pairs)
        else:
            pair_products(coef_tiles, tile * tile_pairs, terms, _ZERO, tile_out, _ZERO, _ZERO, pairs)
            for r in range(count):
                for c in range(width):
                    pred[r0 - p0 + r, j0 + c] = tile_out[r, c]


@njit(nogil=True, cache=True)
def predict_quantized(rows, scale, coef_tiles, K, pred):
    """Format 2's predictions of every row of ``rows`` (float32, n x d) into ``pred``
    (float32, n x d): ``coef_tiles`` as ``decode_quantized`` reads them, K the predictor's
    coordinates. Integers, the same as any order of the sums gives."""
    n = rows.shape[0]
    K = min(K, 2 * coef_tiles.shape[1], rows.shape[1])
    terms = np.zeros((coef_tiles.shape[1], BLOCK_ROWS, 2), dtype=np.int16)
    tile_out = np.empty((BLOCK_ROWS, TILE_COLUMNS), dtype=np.float32)
    for r0 in range(0, n, BLOCK_ROWS):
        _block_predictions(rows, r0, min(n, r0 + BLOCK_ROWS), scale, coef_tiles, K, terms, tile_out, pred, _ZERO)


@njit(nogil=True, cache=True)
def count_quantized(rows, bits, scale, coef_tiles, K, gain, offset, base, buckets, ctx, counts, spare):
    """``contexts_of`` format 2's predictions of ``rows`` (float32, n x d) into ``ctx``
    (uint8, n x d) and ``context_histogram`` of ``bits`` (its values' bits) in them, a block
    of ``BLOCK_ROWS`` rows at a time while its predictions (``predict_quantized``'s) and
    contexts are in cache: even columns counted into ``counts``, odd ones into ``spare``, a
    zeroed table the caller adds in at the end (see ``_add_histogram``), or into ``counts``
    too when ``spare`` is empty."""
    n, d = rows.shape
    K = min(K, 2 * coef_tiles.shape[1], d)
    if spare.size == 0:
        spare = counts
    terms = np.zeros((coef_tiles.shape[1], BLOCK_ROWS, 2), dtype=np.int16)
    tile_out = np.empty((BLOCK_ROWS, TILE_COLUMNS), dtype=np.float32)
    pred = np.empty((BLOCK_ROWS, d), dtype=np.float32)
    for r0 in range(0, n, BLOCK_ROWS):
        r1 = min(n, r0 + BLOCK_ROWS)
        _block_predictions(rows, r0, r1, scale, coef_tiles, K, terms, tile_out, pred, r0)
        for r in range(r0, r1):
            for j in range(d):
                ctx[r, j] = _context(pred[r - r0, j], gain[j], offset[j], buckets, base[j])
        _add_histogram(bits, ctx, r0, r1, counts, spare)
