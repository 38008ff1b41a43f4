"""The exact codec's levels >= 2: a fitted linear predictor selects per-value frequency tables.

Level 1 (``exact.py``) codes every float32's 12-bit head symbol (sign, exponent, top three
mantissa bits) with one table per chunk and stores the low 20 bits raw. Here each value's
head symbol is coded with one of a few tables (its *context*), chosen from a prediction of
the value made from the earlier coordinates of its row (``kernels.predict``); the low 20
bits stay raw. The prediction only picks a table, so any prediction decodes exactly as
long as the decoder computes the same one (see ``kernels.predict`` for how it does).

Each level caps the predictor at K earlier coordinates (``LEVEL_PREDICTORS``):

* level 2: K = 0, the prediction is the column mean: contexts group columns (by mean
  and spread); the column-group models;
* level 3: K <= 32, level 4: K <= 128, level 5: every earlier coordinate (the Cholesky
  factor of the covariance), cost growing with K (K multiply-adds per value, about).

``Model.fit`` (called by the codec's ``prepare``, once per blob) fits the least-squares
predictor on every ``n // _FIT_ROWS``-th row (all rows below 8192) and writes it as model
format 2: each of the first K coordinates becomes an integer *term* (``round(scale * x)``,
at most ``QUANT_MAX`` in magnitude), the coefficients are integers of at most
``QUANT_MAX`` too, so a prediction is an integer sum (below 2**24) that int32 and float32
hold exactly in any order: the encoder and the decoder both compute them as 16-bit integer
tile products (``kernels.tile_products``), each in its own orientation, and agree on every
processor. It then picks the predictor size (up to the level's K), the context
layout (buckets of the prediction x classes of columns) and whether a model pays at all,
by the estimated bits on every ``n // _PROBE_ROWS``-th row: symbols, tables and
coefficients. When none beats level 1 (small arrays) it returns None and the chunks are
coded as at level 1. The model lives in the blob's shared section; chunks hold the raw
bits and one rANS body. Model format 1 (float32 predictions from float32 coefficients,
added in a fixed order) is still read, and coded with when a parsed model is reused.

Shared section (little endian)::

    u8  model format (1 or 2)  u8  level
    u16 dim                    u16 K (predictor coordinates)
    u8  coefficient shift (format 1: 8; format 2: 0)
    u8  buckets                u8 classes     u8 rANS precision
    f32 x dim  bias (format 1) or the terms' scales (format 2)
    f32 x dim  gain            f32 x dim offset   u8 x dim class
    entropy stream of the zigzagged coefficients (row k: columns k+1 .. dim-1, k < K;
        alphabet 2**16 in format 1, 255 in format 2)
    classes x buckets frequency tables (``kernels.rans.write_table``)
"""

import contextlib
import struct
import weakref

import numpy as np

from .. import aot, entropy
from ..errors import CorruptBlobError
from ..kernels import predict as _pk
from ..kernels import rans as _rans
from ..kernels import rans_core as _core
from ..kernels.bits import pack_low_bits, raw_size
from ..scratch import reusable_array

#: the model format written; MODEL_FORMATS are read (1: float32 predictions, 2: integer ones)
MODEL_FORMAT = 2
MODEL_FORMATS = (1, 2)
#: predictor coordinates per level (None: all earlier coordinates)
LEVEL_PREDICTORS = {2: 0, 3: 32, 4: 128, 5: None}
MAX_LEVEL = max(LEVEL_PREDICTORS)
#: bounds on the predictor, so that a forged model cannot make the decoder allocate at will
MAX_PREDICTORS = 512
MAX_COEFFICIENTS = 1 << 20
MAX_CONTEXTS = 64
#: format 1's coefficients are multiples of 2**-COEF_SHIFT (measured: 2**-8 loses < 0.01
#: bit/value); format 2 writes 0 in that field
COEF_SHIFT = 8
#: format 2's terms map a column's mean magnitude plus this many standard deviations
#: onto QUANT_MAX (|term| <= QUANT_MAX; its coefficients are integers up to QUANT_MAX)
TERM_SPREAD = 4.0
#: format 2: the coefficients' rounding adds noise of about COEF_NOISE * sqrt(K / 32)
#: times the residual's spread to a prediction from K coordinates: finer for small
#: predictors, whose coefficients cost little (measured on the five shared sets: 0.1 at
#: every K lost at K = 32 on unit tokens against 0.05, at K = 128 gained against 0.2, and
#: lost 0.5% at K = 512 on mpnet's raw tokens against 0.2)
COEF_NOISE = 0.05
#: (buckets, classes) candidates; the cheapest (entropy + tables) on the blob wins. Both
#: are powers of two: the fit counts the finest layout and sums the others from it
CONTEXT_CHOICES = ((1, 1), (4, 1), (8, 1), (16, 1), (8, 2), (16, 2), (8, 4), (16, 4))
#: prediction range mapped onto the buckets, in column standard deviations
SPAN = 6.0
#: (buckets, classes) used to compare predictor sizes
_K_LAYOUT = (16, 2)
RAW_BITS = _core.FLOAT32_RAW_BITS
_FIT_ROWS = 4096
_PROBE_ROWS = 1024
#: the covariance is one full product when that takes at most this many columns more than
#: the predictor's rows (_covariance)
_FULL_PRODUCT_SLACK = 32
#: blocks of the predictor's triangular inverse left to numpy's general inverse
_INVERSE_LEAF = 64
_HEAD = struct.Struct("<BBHHBBBB")
_TABLE_BYTES_PER_SYMBOL = 3.0


def _sanitized(rows):
    """``kernels.predict.sanitized`` of ``rows`` into float32 memory from the output pool
    (``scratch.reusable_array``), which takes it back when the fit drops the array: a fresh
    sample cost page faults (or the kernel's huge-page compaction) every fit, measured
    1,264 faults and 12 ms of system time a level 3 encode of 8,000 x 768."""
    out = reusable_array(rows.shape, np.float32)
    _pk.sanitized(rows, out)
    return out


class Model:
    """A fitted level >= 2 model: predictor, contexts and frequency tables."""

    def __init__(self, level, dim, coef, bias, gain, offset, cls, buckets, classes, precision, freq, scale=None):
        self.level = level
        self.dim = dim
        self.coef = coef            # (K, dim) float32 (format 2: integers)
        self.bias = bias            # float32 per column (format 2: zeros)
        self.scale = scale          # format 2: float32 per column, the terms' scales; format 1: None
        self.gain = gain
        self.offset = offset
        self.cls = cls              # uint8 per column
        self.buckets = buckets
        self.classes = classes
        self.base = cls.astype(np.int64) * buckets
        self.precision = precision
        self.freq = freq            # (contexts, 4096) int64, each row sums to 2**precision or 0
        self._entries = None        # the encoder's tables (kernels.predict.encoder_tables), made when needed
        self._slots = None
        self._tiles = None          # format 2: the coefficients by tile (the _coef_tiles method)
        self._cache = None
        self._bytes = None          # the shared section, once written

    @property
    def predictors(self):
        return self.coef.shape[0]

    @property
    def format(self):
        """The model format: 1 (float32 predictions) or 2 (integer ones, what ``fit`` makes)."""
        return 1 if self.scale is None else 2

    # -- fitting -----------------------------------------------------------------------
    @classmethod
    def fit(cls, rows, level):
        """Fit the model of ``level`` on ``rows`` (float32, rows x dim); cache contexts.

        Returns None when no model is estimated to beat level 1 (small arrays: the model's
        tables and coefficients would cost more than they save).

        The covariance comes from every ``n // _FIT_ROWS``-th row (all rows below twice
        ``_FIT_ROWS``; fewer measured a lower ratio at level 5); the predictor size and
        the contexts are chosen on every ``n // _PROBE_ROWS``-th row by estimated bits
        (symbols, tables and coefficients); the tables are counted on every row.
        """
        with _one_blas_thread():
            return cls._fit(rows, level)

    @classmethod
    def _fit(cls, rows, level):
        n, d = rows.shape
        sample = _sanitized(rows[::max(1, n // _FIT_ROWS)])
        m = max(1, sample.shape[0])
        mu = sample.mean(axis=0, dtype=np.float64) if sample.size else np.zeros(d)
        centred = sample
        centred -= mu.astype(np.float32)  # in place: a second array of the sample's size costs its page faults
        cov = _covariance(centred, m, max(_predictor_choices(level, d)))
        sd = np.sqrt(np.maximum(np.diag(cov), 0.0)) if d else np.zeros(0)
        scale = _term_scales(mu, sd)
        probe = np.ascontiguousarray(rows[::max(1, n // _PROBE_ROWS)])
        probe_bits = probe.view(np.uint32)
        grow = n / max(1, probe.shape[0])

        def layout_costs(pred, predictor, sr, layouts):
            """{(centre index, buckets, classes): (estimated bits, (buckets, classes, gain,
            offset, colcls))} of the context layouts ``layouts`` (centre index, buckets,
            classes) for the probe's predictions ``pred`` (format 2's integers) by
            ``predictor`` (``_exact_predictor``'s). The probe's values are counted once per
            centre, with the most classes and the most buckets; every other layout's counts
            are sums of those. The class ``i * classes // d`` of the column of rank ``i`` is
            ``(i * top // d) // (top // classes)``. A bucket of ``buckets`` is ``fine //
            (most // buckets)`` of the finest: the bucket counts are powers of two, so the
            finest layout's gain and offset are exactly ``most // buckets`` times a
            coarser one's, and so is ``p * gain + offset`` in float32 (scaling by a power
            of two rounds alike), whose floor then halves exactly. Where that fails (a
            gain or offset at ``_context_params``' clip, an overflow) only the estimate is
            off: the chosen layout's tables are counted afresh on every row.
            One bucket is one context per class whatever the centre: centre 0's sums."""
            _, w, bias, coef_bits = predictor
            top = max(classes for _, _, classes in layouts)
            most = max(buckets for _, buckets, _ in layouts)
            counts = {}
            ctx = np.empty(pred.shape, dtype=np.uint8)
            for ci in sorted({0 if buckets == 1 else ci for ci, buckets, _ in layouts}):
                gain, offset, colcls = _context_params(centres[ci], sd, sr, most, top, w, bias)
                _pk.contexts_of(pred, gain, offset, colcls.astype(np.int64) * most, most, ctx)
                counts[ci] = np.zeros((top * most, _pk.ALPHABET), dtype=np.int64)
                aot.checked("context_histogram", _pk.context_histogram)(probe_bits, ctx, counts[ci])
            out = {}
            for ci, buckets, classes in layouts:
                fine = counts[0 if buckets == 1 else ci].reshape(classes, top // classes, buckets, most // buckets, -1)
                coded, tables = _cost(fine.sum(axis=(1, 3)).reshape(classes * buckets, -1))
                gain, offset, colcls = _context_params(centres[ci], sd, sr, buckets, classes, w, bias)
                out[ci, buckets, classes] = (coded * grow + tables + coef_bits, (buckets, classes, gain, offset, colcls))
            return out

        # the predictor size first, with one context layout; then every layout for it
        # buckets centred on 0 line up with the head symbol's sign; centred on the
        # column mean they suit columns far from 0
        centres = (np.zeros(d), mu)
        best = None
        clean_probe = _sanitized(probe)
        for K in _predictor_choices(level, d):
            predictor = _exact_predictor(cov, mu, scale, K)
            coef, w, bias, _ = predictor
            tiles = _coef_tiles(coef, d)
            pred = _predictions(probe, scale, coef, tiles)
            # the spreads of the residuals of the prediction these integers stand for (in
            # float32: they only rank the columns into classes)
            sr = np.zeros(d, dtype=np.float32)
            if probe.size:  # numpy's (clean_probe - (pred / w + bias)).std(axis=0), bit for bit
                aot.checked("residual_spreads", _pk.residual_spreads)(
                    clean_probe, pred, (1.0 / w).astype(np.float32), bias.astype(np.float32), sr)
            cost, _ = layout_costs(pred, predictor, sr, [(0,) + _K_LAYOUT])[(0,) + _K_LAYOUT]
            if best is None or cost < best[0]:
                best = (cost, predictor, tiles, pred, sr)
        _, predictor, tiles, pred, sr = best
        best = None
        layouts = [(ci, buckets, classes) for ci in range(len(centres)) for buckets, classes in CONTEXT_CHOICES]
        costs = layout_costs(pred, predictor, sr, layouts)
        for key in layouts:  # in this order, so that a tie goes to the same layout as ever
            cost, layout = costs[key]
            if best is None or cost < best[0]:
                best = (cost,) + layout
        # the model's own fields, and what level 1 would spend: one table per ~1 MiB chunk
        fixed = 8.0 * (_HEAD.size + 13 * d)
        plain_counts = np.bincount((probe_bits >> _pk.HEAD_SHIFT).reshape(-1), minlength=_pk.ALPHABET)
        plain_coded, plain_table = _cost(plain_counts[None, :])
        chunks = -(-n * d * 4 // (1 << 20))
        if best is None or best[0] + fixed >= plain_coded * grow + plain_table * chunks:
            return None
        _, buckets, classes, gain, offset, colcls = best
        coef = predictor[0]
        ctx, counts = _count_tables(rows, scale, coef, tiles, gain, offset, colcls.astype(np.int64) * buckets,
                                    buckets, buckets * classes)
        used = int((counts > 0).sum(axis=1).max()) if counts.size else 1
        # 2**12 slots per table (2**13 past 2048 symbols) keep the decoder's tables in L2
        precision = 12 if used <= 2048 else 13
        freq = np.stack([entropy.quantize_frequencies(c, precision) for c in counts])
        model = cls(level, d, coef, np.zeros(d, np.float32), gain, offset, colcls, buckets, classes, precision, freq,
                    scale=scale)
        model._tiles = tiles
        # the contexts of the fitted rows, for their chunks; a weak reference to the rows, so
        # that a state kept after the encode (spherecodec.fit) does not keep the array alive
        model._cache = (weakref.ref(rows), ctx)
        model._encoder_tables()  # before the chunks are coded in threads
        return model

    # -- shared section ----------------------------------------------------------------
    def to_bytes(self):
        """The shared section (see the module docstring)."""
        if self._bytes is None:  # the pipeline asks before and after the chunks are coded
            self._bytes = self._section()
        return self._bytes

    def _section(self):
        d = self.dim
        K = self.predictors
        fmt = self.format
        out = bytearray(_HEAD.pack(fmt, self.level, d, K, COEF_SHIFT if fmt == 1 else 0, self.buckets,
                                   self.classes, self.precision))
        for arr in (self.bias if fmt == 1 else self.scale, self.gain, self.offset):
            out += arr.astype("<f4").tobytes()
        out += self.cls.astype(np.uint8).tobytes()
        q = self.coef.astype(np.float64) * ((1 << COEF_SHIFT) if fmt == 1 else 1)
        q = np.rint(q).astype(np.int64)
        upper = np.concatenate([q[k, k + 1:] for k in range(K)]) if K else np.zeros(0, np.int64)
        zig = ((upper << 1) ^ (upper >> 63)).astype(np.uint32)
        out += entropy.encode_stream(zig, _coef_alphabet(fmt))
        buf = np.zeros(self.freq.shape[0] * (6 * _pk.ALPHABET + 4) + 4, dtype=np.uint8)
        pos = 0
        for row in self.freq:
            pos = _rans.write_table(row, buf, pos)
        out += buf[:pos].tobytes()
        return bytes(out)

    @classmethod
    def from_bytes(cls, data, level, dim):
        """Parse and validate a shared section; CorruptBlobError on any inconsistency."""
        data = np.ascontiguousarray(data, dtype=np.uint8)
        if data.size < _HEAD.size:
            raise CorruptBlobError("exact model section is truncated")
        fmt, lvl, d, K, shift, buckets, classes, precision = _HEAD.unpack_from(data.tobytes()[:_HEAD.size])
        if fmt not in MODEL_FORMATS:
            raise CorruptBlobError(f"unknown exact model format {fmt}")
        if lvl != level:
            raise CorruptBlobError(f"model of level {lvl} in a blob of level {level}")
        if d != dim:
            raise CorruptBlobError(f"model for {d} columns in a blob of {dim}")
        if (K > max(d - 1, 0) or K > MAX_PREDICTORS or K * d > MAX_COEFFICIENTS
                or shift != (COEF_SHIFT if fmt == 1 else 0)):
            raise CorruptBlobError("exact model predictor fields are invalid")
        contexts_ok = 1 <= buckets and 1 <= classes and buckets * classes <= MAX_CONTEXTS
        if not contexts_ok or not 12 <= precision <= 13:
            raise CorruptBlobError("exact model context fields are invalid")
        pos = _HEAD.size
        need = pos + 13 * d
        if data.size < need:
            raise CorruptBlobError("exact model section is truncated")
        f = data[pos:pos + 12 * d].view("<f4").astype(np.float32).reshape(3, d)
        if not np.isfinite(f).all():
            raise CorruptBlobError("exact model holds non-finite parameters")
        # format 1: bias, gain, offset; format 2: the terms' scales, gain, offset
        first, gain, offset = (np.ascontiguousarray(f[i]) for i in range(3))
        bias, scale = (first, None) if fmt == 1 else (np.zeros(d, np.float32), first)
        colcls = data[pos + 12 * d:need].copy()
        if colcls.size and int(colcls.max()) >= classes:
            raise CorruptBlobError("exact model column class out of range")
        ncoef = _coef_count(K, d)
        # 8 bytes per coefficient at most while parsing (a forged model is bounded by
        # MAX_COEFFICIENTS, not by the blob's size: see docs/exact-levels.md)
        zig = np.empty(ncoef, dtype=np.uint32)
        # format 2's alphabet holds the zigzags of -QUANT_MAX .. QUANT_MAX only: no
        # coefficient can take a prediction out of float32's exact integers
        pos = entropy.decode_stream(data, need, _coef_alphabet(fmt), zig)
        coef = np.zeros((K, d), dtype=np.float32)
        step = np.float32(1 << COEF_SHIFT) if fmt == 1 else np.float32(1)
        wide = zig.astype(np.int64)
        del zig
        # row k's columns k + 1 .. d - 1, rows in order: a row-major mask's order
        coef[np.triu(np.ones((K, d), dtype=bool), 1)] = ((wide >> 1) ^ -(wide & 1)) / step
        del wide
        n_ctx = buckets * classes
        size = 1 << precision
        freq = np.zeros((n_ctx, _pk.ALPHABET), dtype=np.int64)
        slot_table = np.zeros(n_ctx * size, dtype=np.uint32)
        slot_symbol = np.zeros(n_ctx * size, dtype=np.uint16)
        symbols = np.empty(min(_pk.ALPHABET, size), dtype=np.int64)
        freqs = np.empty(min(_pk.ALPHABET, size), dtype=np.int64)
        for c in range(n_ctx):
            n_used, pos = _rans.read_table(data, pos, _pk.ALPHABET, precision, symbols, freqs,
                                           slot_table[c * size:(c + 1) * size],
                                           slot_symbol[c * size:(c + 1) * size])
            if pos < 0:
                raise CorruptBlobError(f"exact model frequency table {c} is invalid")
            freq[c, symbols[:n_used]] = freqs[:n_used]
        if pos != data.size:
            raise CorruptBlobError(f"{data.size - pos} unexpected bytes after the exact model")
        model = cls(level, d, coef, bias, gain, offset, colcls, buckets, classes, precision, freq, scale=scale)
        # the slots as read_table laid them out (a fitted model builds its own: the test
        # suite checks they agree); the symbols' frequencies from the parsed tables
        symbol_entry = np.empty(freq.size, dtype=np.uint32)
        _pk.decoder_tables(freq, precision, np.empty_like(slot_symbol), symbol_entry)
        model._slots = (slot_symbol, symbol_entry)
        return model

    def _coef_tiles(self):
        """Format 2's coefficients by tile (``_coef_tiles``), made once."""
        if self._tiles is None:  # chunks decoded in threads may both make it: the same array
            self._tiles = _coef_tiles(self.coef, self.dim)
        return self._tiles

    def _encoder_tables(self):
        if self._entries is None:
            entries = np.empty(self.freq.shape, dtype=np.uint64)
            _pk.encoder_tables(self.freq, entries)
            self._entries = entries
        return self._entries

    # -- chunks ------------------------------------------------------------------------
    def _contexts(self, rows):
        cache = self._cache
        base = cache[0]() if cache is not None else None
        if base is None:
            self._cache = None  # the fitted rows are gone: so is the use of their contexts
        else:
            ctx = cache[1]
            step = base.strides[0]
            offset = rows.ctypes.data - base.ctypes.data
            if (rows.shape[1] == base.shape[1] and step and offset % step == 0
                    and 0 <= offset // step <= base.shape[0] - rows.shape[0]
                    and rows.strides == base.strides and np.shares_memory(rows, base)):
                start = offset // step
                return ctx[start:start + rows.shape[0]]
        if self.scale is None:
            pred = np.empty(rows.shape, dtype=np.float32)
            _pk.predict_rows(rows, self.coef, self.bias, pred)
        else:
            pred = _predictions(rows, self.scale, self.coef, self._coef_tiles())
        ctx = np.empty(rows.shape, dtype=np.uint8)
        _pk.contexts_of(pred, self.gain, self.offset, self.base, self.buckets, ctx)
        return ctx

    def encode_chunk(self, rows, mode):
        """Payload ``u8 mode | raw low bits | varint body size | rANS body``, or None.

        None when a value's head symbol has no frequency in its context's table (rows the
        model was not fitted on); the caller then codes the chunk at level 1.
        """
        n, d = rows.shape
        bits = rows.view(np.uint32)
        total = n * d
        ctx = self._contexts(rows)
        body = np.empty(2 * total + 16, dtype=np.uint8)
        encode_contexts = aot.checked("encode_contexts", _pk.encode_contexts)
        start = encode_contexts(bits, ctx, self._encoder_tables(), self.precision, body)
        if start < 0:
            return None
        nraw = raw_size(total, RAW_BITS)
        size = body.size - start
        out = np.empty(1 + nraw + 10 + size, dtype=np.uint8)
        out[0] = mode
        pack_low_bits(bits.reshape(-1), RAW_BITS, out[1:1 + nraw])
        pos = _core.write_varint(out, 1 + nraw, size)
        out[pos:pos + size] = body[start:]
        return out[:pos + size]

    def decode_chunk(self, payload, out):
        """Decode a payload written by ``encode_chunk`` into ``out`` (float32 rows x dim)."""
        n, d = out.shape
        if d != self.dim:
            raise CorruptBlobError(f"chunk of {d} columns for a model of {self.dim}")
        total = n * d
        nraw = raw_size(total, RAW_BITS)
        if payload.size < 1 + nraw:
            raise CorruptBlobError(f"chunk holds {payload.size} bytes, its raw bits alone need {nraw}")
        size, pos = _core.read_varint(payload, 1 + nraw, payload.size)
        if pos < 0 or pos + size != payload.size:
            raise CorruptBlobError("chunk's rANS body length does not match its size")
        if self._slots is None:
            self._slots = _decoder_tables(self.freq, self.precision)
        slot_symbol, symbol_entry = self._slots
        bits = out.view(np.uint32)
        stream, raw = _read_only(payload[pos:]), _read_only(payload[1:1 + nraw])
        if self.scale is None:
            pred = np.empty((_pk.BLOCK_ROWS, d), dtype=np.float32)
            decode_contexts = aot.checked("decode_contexts", _pk.decode_contexts)
            status = decode_contexts(stream, raw, slot_symbol, symbol_entry, self.precision, self.coef, self.bias,
                                     self.gain, self.offset, self.base, self.buckets, bits, pred)
        else:
            tiles = self._coef_tiles()
            terms = np.empty((tiles.shape[1], _pk.BLOCK_ROWS, 2), dtype=np.int16)
            pred = np.empty((_pk.TILE_COLUMNS, _pk.BLOCK_ROWS), dtype=np.float32)
            decode_quantized = aot.checked("decode_quantized", _pk.decode_quantized)
            status = decode_quantized(stream, raw, slot_symbol, symbol_entry, self.precision, tiles,
                                      self.predictors, self.scale, self.gain, self.offset, self.base, self.buckets, bits, terms, pred)
        if status != _core.STATUS_OK:
            raise CorruptBlobError("context-coded chunk does not decode cleanly")


def _coef_tiles(coef, d):
    """Format 2's coefficients as ``kernels.predict.decode_quantized`` reads them: int16,
    (tiles, pairs, ``TILE_COLUMNS``, 2), tile ``t`` holding columns ``t * TILE_COLUMNS``
    on, coordinates two by two; 0 where a column does not take coordinate ``k``'s term
    (``j <= k``), lies past ``d``, or ``k`` past K (an odd K's last pair)."""
    K = coef.shape[0]
    width = _pk.TILE_COLUMNS
    tiles = -(-d // width)
    pairs = max(1, -(-K // 2))
    padded = np.zeros((2 * pairs, tiles * width), dtype=np.int16)
    # coef is 0 where j <= k already (fitted or parsed); the decoder never reads those
    # entries anyway: a tile's products take the coordinates before its first column
    padded[:K, :d] = coef
    # [k, t, c] -> [t, k // 2, c, k % 2]
    return np.ascontiguousarray(padded.reshape(pairs, 2, tiles, width).transpose(2, 0, 3, 1))


def _read_only(array):
    """A read-only view of ``array``: payloads come both from bytes (read-only) and from
    writable buffers, and one array type spares the decoder a second compilation."""
    view = array.view()
    view.flags.writeable = False
    return view


def _one_blas_thread():
    """Keep LAPACK on one thread: on small matrices its thread start-up costs more than it saves."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it LAPACK uses its default threads
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _predictor_choices(level, d):
    """Predictor sizes tried at ``level`` (each capped at ``d - 1``)."""
    top = LEVEL_PREDICTORS[level]
    top = min(d - 1 if top is None else top, d - 1, MAX_PREDICTORS, MAX_COEFFICIENTS // max(d, 1))
    return sorted({k for k in (0, 32, 128) if k <= top} | {max(top, 0)})


def _coef_alphabet(fmt):
    """The alphabet of a model format's zigzagged coefficients."""
    return 1 << 16 if fmt == 1 else 2 * _pk.QUANT_MAX + 1


def _term_scales(mu, sd):
    """Format 2's per-column scales: the mean's magnitude plus ``TERM_SPREAD`` standard
    deviations to ``QUANT_MAX`` (float32, never subnormal, infinite or 0)."""
    reach = np.abs(mu) + TERM_SPREAD * sd
    scale = _pk.QUANT_MAX / np.where(reach > 0, reach, 1.0)
    return np.clip(scale, 1e-30, 1e30).astype(np.float32)


def _exact_predictor(cov, mu, scale, K):
    """Format 2's predictor from the first ``K`` coordinates: ``(coef, w, bias, bits)``.

    ``coef`` (K x d float32) holds integers of at most ``QUANT_MAX`` in magnitude (``coef[k,
    j]`` = 0 unless k < j), so that ``coef[:, j]`` times the row's terms (``_predictions``)
    is an integer about ``w[j]`` times the least-squares prediction of column ``j`` less
    ``bias[j]`` (float64 per column); ``bits`` estimates the coefficients' cost."""
    d = cov.shape[0]
    A = _fit_predictor(cov, K)  # x_j ~ sum_k A[j, k] x_k, and a term is about scale[k] x_k
    per_term = A.T / scale[:K, None].astype(np.float64)
    top = np.abs(per_term).max(axis=0) if K else np.zeros(d)
    # the coarsest steps whose rounding adds noise of COEF_NOISE times the residual's spread
    # to the prediction (about terms / 12 steps squared, each term's square about
    # (QUANT_MAX / TERM_SPREAD) ** 2), at most QUANT_MAX for the largest coefficient
    terms = np.minimum(np.arange(d), K)
    resid = np.diag(cov) - np.einsum("jk,kj->j", A, cov[:K]) if K else np.diag(cov)
    spread = np.sqrt(np.maximum(resid, 1e-30 * max(float(np.trace(cov)) / max(d, 1), 1e-30)))
    noise = COEF_NOISE * np.sqrt(max(K, 1) / 32.0)
    w = np.sqrt(terms / 12.0) * (_pk.QUANT_MAX / TERM_SPREAD) / (noise * spread)
    w = np.where(top > 1e-30, np.minimum(w, _pk.QUANT_MAX / np.maximum(top, 1e-30)), 1.0)
    coef = np.clip(np.rint(per_term * w), -_pk.QUANT_MAX, _pk.QUANT_MAX) + 0.0  # + 0.0: no -0.0
    # the weights the integers stand for, and the bias that centres their prediction
    weights = coef / w * scale[:K, None].astype(np.float64)
    bias = mu - weights.T @ mu[:K]
    bits = 0.0
    if K:
        upper = coef[np.triu(np.ones((K, d), dtype=bool), 1)].astype(np.int64)  # the coded entries
        counts = np.bincount(upper + _pk.QUANT_MAX, minlength=1)
        counts = counts[counts > 0]
        bits = float(-(counts * np.log2(counts / upper.size)).sum()) + 24.0 * counts.size
    return np.ascontiguousarray(coef, dtype=np.float32), w, bias, bits


def _predictions(rows, scale, coef, tiles):
    """Format 2's predictions of ``rows`` (float32, n x d), float32 n x d.

    Each is an integer, ``coef[k, j]`` times the term of coordinate ``k`` summed over
    ``k < min(j, K)``: products of at most ``QUANT_MAX ** 2`` and sums of at most
    ``MAX_PREDICTORS`` of them stay below 2**24, so any order of the sums gives the same
    value. ``kernels.predict.predict_quantized`` computes them in 16-bit integer tiles
    (``tiles``: ``_coef_tiles(coef, d)``), the decoder its own way
    (``kernels.predict.decode_quantized``): both get the same integers."""
    out = np.empty(rows.shape, dtype=np.float32)
    aot.checked("predict_quantized", _pk.predict_quantized)(rows, scale, tiles, coef.shape[0], out)
    return out


def _count_tables(rows, scale, coef, tiles, gain, offset, base, buckets, contexts):
    """(contexts of every value (uint8, n x d), counts (contexts x alphabet)) of ``rows``
    under a format 2 model (``tiles``: ``_coef_tiles(coef, d)``):
    ``kernels.predict.count_quantized``, its predictions a block of rows at a time."""
    n, d = rows.shape
    ctx = np.empty((n, d), dtype=np.uint8)
    counts = np.zeros((contexts, _pk.ALPHABET), dtype=np.int64)
    # two tables when the values are many against them (see kernels.predict._add_histogram)
    two = n * d >= _pk.TWO_TABLES_FROM * counts.size
    spare = np.zeros_like(counts) if two else np.zeros((0, _pk.ALPHABET), dtype=np.int64)
    count = aot.checked("count_quantized", _pk.count_quantized)
    count(rows, rows.view(np.uint32), scale, tiles, coef.shape[0], gain, offset, base, buckets, ctx, counts, spare)
    if two:
        counts += spare
    return ctx, counts


def _covariance(centred, m, top):
    """The covariance (float64) of the float32 rows ``centred`` (divided by ``m``) as far as
    a predictor from the first ``top`` coordinates reads it: its first ``top + 1`` rows and
    its diagonal (the rest stays 0 when that is all; at level 3 it is 1/10 of the products).
    The products are float32 BLAS (measured: the models of the five shared sets coded to
    the same sizes as from float64, at half the time), the square part symmetric; the
    diagonal past it is each column's sum of squares in float64 (only the columns'
    spreads are read there)."""
    d = centred.shape[1]
    if top + 1 + _FULL_PRODUCT_SLACK >= d:
        return (centred.T @ centred).astype(np.float64) / m
    cov = np.zeros((d, d))
    head = centred[:, :top + 1]
    cov[:top + 1, :top + 1] = head.T @ head
    cov[:top + 1, top + 1:] = head.T @ centred[:, top + 1:]
    cov[:top + 1] /= m
    rest = np.arange(top + 1, d)
    tail = centred[:, top + 1:]
    cov[rest, rest] = np.einsum("ij,ij->j", tail, tail, dtype=np.float64) / m
    return cov


def _coef_count(K, d):
    return sum(d - k - 1 for k in range(K))


def _fit_predictor(cov, K):
    """A (d x K): A[j, k] weighs coordinate k < min(j, K) in the least-squares prediction of j."""
    d = cov.shape[0]
    A = np.zeros((d, max(K, 0)))
    if K <= 0 or d < 2:
        return A
    ridge = 1e-6 * max(float(np.trace(cov)) / d, 1e-30)
    # the ridge on the diagonal of the block the Cholesky factor reads; what the solve
    # below reads lies off the diagonal (d x d temporaries cost 9 ms at K = 32, d = 768)
    c = cov[:K + 1, :K + 1] + ridge * np.eye(K + 1)
    lower = np.linalg.cholesky(c)
    unit = lower / np.diag(lower)[None, :]
    # x = unit @ innovations, so innovations = inv(unit) @ x and x_j - innovation_j is the
    # prediction of x_j from x_0 .. x_{j-1}
    inverse = _inverse_unit_lower(unit)
    pred = np.eye(K + 1) - inverse
    A[:K + 1] = np.tril(pred, -1)[:, :K]
    if K + 1 < d:
        # solve(c[:K, :K], b) from the factor at hand: c[:K, :K] = L L^T with L = lower[:K, :K],
        # whose inverse is inverse[:K, :K] over the diagonal (two products: at K = 512, d =
        # 768, 1.3 ms instead of 4 for the solve)
        inv_lower = inverse[:K, :K] / np.diag(lower)[:K, None]
        A[K + 1:] = (inv_lower.T @ (inv_lower @ cov[:K, K + 1:])).T
    return A


def _inverse_unit_lower(unit):
    """The inverse of the lower-triangular ``unit`` (ones on its diagonal), by halves:
    inv([[A, 0], [B, C]]) = [[inv(A), 0], [-inv(C) B inv(A), inv(C)]]. Two products per
    level instead of a general inverse: at 768 columns 8 ms instead of 44 (its LU
    factorisation ignores the zeros). Blocks up to _INVERSE_LEAF use numpy's inverse, so
    small models are computed exactly as before."""
    n = unit.shape[0]
    if n <= _INVERSE_LEAF:
        return np.linalg.inv(unit)
    h = n // 2
    head = _inverse_unit_lower(unit[:h, :h])
    tail = _inverse_unit_lower(unit[h:, h:])
    out = np.zeros_like(unit)
    out[:h, :h] = head
    out[h:, h:] = tail
    out[h:, :h] = -(tail @ (unit[h:, :h] @ head))
    return out


def _context_params(centre, sd, sr, buckets, classes, w, bias):
    """Per-column gain, offset, class of format 2's integer predictions ``P``: bucket =
    floor(P * gain + offset), about ``(p - centre) / sd * buckets / SPAN + buckets / 2``
    of the prediction ``p = bias + P / w`` they stand for. Gains and offsets are float32,
    never subnormal or infinite (a processor that flushes subnormals agrees)."""
    d = sd.shape[0]
    scale = np.where(sd > 0, sd, 1.0)
    per_value = buckets / (SPAN * scale)
    gain = np.clip(per_value / w, 1e-30, 1e30).astype(np.float32)
    offset = np.clip(buckets / 2.0 + (bias - centre) * per_value, -1e30, 1e30)
    offset = np.where(np.abs(offset) < 1e-30, 0.0, offset).astype(np.float32)
    colcls = np.zeros(d, dtype=np.uint8)
    if classes > 1 and d:
        order = np.argsort(np.log(np.maximum(sr, 1e-30)), kind="stable")
        colcls[order] = (np.arange(d) * classes // d).astype(np.uint8)
    return gain, offset, colcls


def _cost(counts):
    """(bits of the symbols, bits of the tables) to code ``counts`` (contexts x alphabet)."""
    totals = counts.sum(axis=1)
    used = counts > 0
    c = counts[used].astype(np.float64)
    row_totals = np.broadcast_to(totals[:, None], counts.shape)[used]
    bits = float(-(c * np.log2(c / row_totals)).sum())
    return bits, 8 * _TABLE_BYTES_PER_SYMBOL * c.size


def _decoder_tables(freq, precision):
    """The decoder's (slot symbols, symbol entries) of ``freq`` (``kernels.predict.decoder_tables``)."""
    slot_symbol = np.zeros(freq.shape[0] << precision, dtype=np.uint16)
    symbol_entry = np.empty(freq.size, dtype=np.uint32)
    _pk.decoder_tables(freq, precision, slot_symbol, symbol_entry)
    return slot_symbol, symbol_entry
