"""Entropy-coded symbol streams: frequency models apart from the rANS coders.

A *stream* is self-describing given the number of symbols ``n`` and the alphabet size::

    u8      backend (0 = spherecodec's Numba rANS, 1 = constriction's AnsCoder,
            2 = spherecodec's 32-lane rANS, 3 = its 64-lane rANS, ``kernels.rans_simd``)
    u8      precision P (frequencies sum to 2**P, 1 <= P <= 15)
    varint  number of distinct symbols m
    m x     varint symbol delta (first symbol: from 0), varint frequency
    varint  number of coded bytes b
    b bytes the coded words (little endian)

Backends 0, 2 and 3 are the same coder (``kernels.rans_core``) with three layouts of the
coded words: 8 lanes (``kernels.rans``), or 32 or 64 lanes in two or four substreams,
which an AVX-512 CPU decodes 16 lanes at a time (``kernels.rans_simd``).
``encode_stream_into(wide=True)`` takes backend 2 for streams of ``rans_simd.MIN_SYMBOLS``
symbols or more and backend 3 from ``rans_simd.MIN_SYMBOLS_64`` on (the exact codec's
chunks, the grid codec's columns); other Numba streams are backend 0. They are written by
one kernel per layout family, ``kernels.rans.encode_stream_8`` / ``_wide``
(with the chunk's raw low bits first when asked: ``raw_bits=True``). Every codec codes its symbols through
``encode_stream``/``encode_stream_into`` and ``decode_stream``.
"""

import numpy as np

from . import aot
from .errors import CorruptBlobError, TruncatedBlobError
from .kernels import rans as _rans
from .kernels import rans_core as _core
from .kernels import rans_simd as _rans32
from .kernels.bits import merge_low_bits, merge_low_bits_shifted, raw_size
from .scratch import recycle as _recycle
from .scratch import scratch as _scratch
from .scratch import take_buffer as _take_buffer

BACKEND_NUMBA = 0
BACKEND_CONSTRICTION = 1
BACKEND_NUMBA32 = _rans32.BACKEND_ID
BACKEND_NUMBA64 = _rans32.BACKEND_ID_64
BACKENDS = {"numba": BACKEND_NUMBA, "constriction": BACKEND_CONSTRICTION}
MAX_PRECISION = _core.MAX_PRECISION
MIN_PRECISION = _core.MIN_PRECISION
#: streams shorter than this take tables of SHORT_PRECISION bits and up with
#: ``short_tables=True`` (see ``short_stream_layout``)
SHORT_STREAM = _rans.SHORT_STREAM
SHORT_PRECISION = _rans.SHORT_PRECISION
#: short wide streams take the 32 lanes from this many symbols on
SHORT_WIDE_SYMBOLS = 1 << 13
MAX_ALPHABET = 1 << 16
# No symbol may take more than 255/256 of the probability mass: every coded symbol then costs
# at least 0.0056 bit, which bounds how much a blob can expand (see Codec.max_expansion).
_CAP_SHIFT = _rans.CAP_SHIFT


def quantize_frequencies(counts, precision):
    """Integer frequencies summing to ``2**precision``, ``>= 1`` where ``counts > 0``.

    Deterministic integer arithmetic (largest remainder); a symbol holding nearly all the
    mass is capped at 255/256, giving a neighbour a phantom share if it stands alone.
    """
    counts = np.ascontiguousarray(counts, dtype=np.int64)
    used = int(np.count_nonzero(counts))
    if used > 1 << precision:
        raise ValueError(f"{used} distinct symbols need more than {precision}-bit precision")
    if counts.size < 2:
        raise ValueError("an alphabet has at least 2 symbols")
    return aot.checked("quantize_counts", _rans.quantize_counts)(counts, precision, _CAP_SHIFT)


def choose_precision(n_used, min_precision=MIN_PRECISION):
    """Precision for a table of ``n_used`` symbols, ``min_precision`` (default 14) or more.

    Measured on MiniLM embeddings (1 MiB chunks): 12 bits lose 0.3% of the ratio against
    16, 14 bits 0.01%; tables of 2**14 slots stay in L2 and keep decode fast. Short
    streams do better with less: see ``short_stream_layout``.
    """
    return int(_rans.choose_precision(int(n_used), int(min_precision)))


def short_stream_layout(n, wide):
    """(least table precision, whether to take the 32-lane layout) for a stream of ``n``
    symbols coded with ``encode_stream_into(short_tables=True, wide=wide)``.

    Below ``SHORT_STREAM`` (2**15) symbols the table starts at 12 bits: measured on MiniLM,
    mpnet and raw token rows (1 to 32 rows per stream), its 4,096 slots cost 20 to 55
    bytes less than 14 bits (the table's frequencies are shorter varints; the coded
    symbols lose less than that), and the decoder fills a quarter of the slots. From 128
    rows of 384 values on, 14 bits win again. Wide streams take the 32 lanes from
    ``SHORT_WIDE_SYMBOLS`` (2**13) on instead of ``rans_simd.MIN_SYMBOLS``: their coder
    and decoder run at twice the 8-lane speed (a 32 x 384 blob's chunk in ~15 us instead
    of ~30 each way) for ~60 bytes of states, which the smaller table pays back for the
    most part.
    """
    if not 0 < n < SHORT_STREAM:  # an empty stream keeps the precision 14 it was written with
        return MIN_PRECISION, wide and n >= _rans32.MIN_SYMBOLS
    return SHORT_PRECISION, wide and n >= SHORT_WIDE_SYMBOLS


def stream_capacity(n, alphabet_size):
    """Bytes that ``encode_stream_into`` may need for ``n`` symbols."""
    body = max(_rans.encode_scratch_size(n), _rans32.encode_scratch_size(n, _rans32.groups_for(n)) + 30)
    return 2 + 10 + 6 * min(alphabet_size, 1 << MAX_PRECISION) + 10 + body


def _check_alphabet(alphabet_size):
    if not 2 <= alphabet_size <= MAX_ALPHABET:
        raise ValueError(f"alphabet size {alphabet_size} outside 2..{MAX_ALPHABET}")


def encode_stream_into(values, alphabet_size, out, pos, *, shift=0, backend="numba", counts=None,
                       wide=False, raw_bits=False, short_tables=False):
    """Code the symbols ``values >> shift`` into ``out[pos:]``; return the end position.

    ``out`` (uint8) needs ``stream_capacity(values.size, alphabet_size)`` bytes from ``pos``
    (plus ``raw_size(values.size, shift)`` with ``raw_bits``). ``counts``: the symbols'
    counts if the caller has them. ``wide``: with the Numba backend, use the 32-lane
    layouts (backends 2 and 3) when there are ``rans_simd.MIN_SYMBOLS`` symbols or more.
    ``raw_bits``: first write the values' low ``shift`` bits (``kernels.bits`` layout), in
    the same pass as the counting. ``short_tables``: a Numba stream shorter than
    ``SHORT_STREAM`` takes a smaller table and, with ``wide``, 32 lanes sooner
    (``short_stream_layout``; the exact codec's value streams).
    """
    _check_alphabet(alphabet_size)
    backend_id = BACKENDS[backend]
    values = np.ascontiguousarray(values).reshape(-1)
    n = values.size
    count = counts is None
    counts = np.zeros(alphabet_size, dtype=np.int64) if count else np.ascontiguousarray(counts, dtype=np.int64)
    nraw = aot.kernel("raw_size", raw_size)(n, shift) if raw_bits else 0
    if backend_id == BACKEND_CONSTRICTION:
        return _encode_constriction(values, shift, nraw, counts, count, out, pos)
    if short_tables:
        min_precision, wide = short_stream_layout(n, wide)
    else:
        min_precision, wide = MIN_PRECISION, wide and n >= _rans32.MIN_SYMBOLS
    if wide:
        # from the shared buffer pool, not per-thread scratch: a thread pool's workers are new
        # threads on every call, and fresh memory costs faults (huge pages: compaction stalls)
        groups = _rans32.groups_for(n)
        scratch = _take_buffer(_rans32.encode_scratch_size(n, groups))
        try:
            kind = _rans32.VECTOR_ENCODE
            encode_wide = _rans.wide_stream_encoder(groups, kind)  # compiles only its own steps
            encode_wide = aot.checked(aot.export_name(f"encode_stream_wide_{values.dtype.name}", groups, kind),
                                      encode_wide)
            return encode_wide(values, shift, nraw, counts, count, scratch, out, pos, min_precision)
        finally:
            _recycle([scratch])
    scratch = _scratch("rans.encode", _rans.encode_scratch_size(n), np.uint8)
    encode_8 = aot.checked(f"encode_stream_8_{values.dtype.name}", _rans.encode_stream_8)
    return encode_8(values, shift, nraw, counts, count, scratch, out, pos, min_precision)


def _encode_constriction(values, shift, nraw, counts, count, out, pos):
    pos = _rans.count_symbols(values, shift, nraw, counts, count, out, pos)
    freq, precision, pos = _rans.write_stream_head(counts, BACKEND_CONSTRICTION, out, pos, MIN_PRECISION)
    if values.size == 0:
        return _core.write_varint(out, pos, 0)
    body = _constriction_encode(values >> shift if shift else values, freq, precision)
    size = body.size
    pos = _core.write_varint(out, pos, size)
    out[pos:pos + size] = body
    return pos + size


def encode_stream(values, alphabet_size, *, shift=0, backend="numba", counts=None, wide=False):
    """Entropy-code the symbols ``values >> shift`` (each ``< alphabet_size``); return bytes.
    ``wide`` as in ``encode_stream_into``."""
    values = np.ascontiguousarray(values).reshape(-1)
    out = np.empty(stream_capacity(values.size, alphabet_size), dtype=np.uint8)
    end = encode_stream_into(values, alphabet_size, out, 0, shift=shift, backend=backend, counts=counts,
                             wide=wide)
    return out[:end].tobytes()


def _constriction_model(freq_used, precision):
    import constriction

    return constriction.stream.model.Categorical(
        freq_used.astype(np.float64) / float(1 << precision), perfect=False)


def _constriction_encode(symbols, freq, precision):
    import constriction

    used = np.flatnonzero(freq)
    dense = np.searchsorted(used, symbols).astype(np.int32)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(dense, _constriction_model(freq[used], precision))
    return coder.get_compressed().astype("<u4").view(np.uint8)


def decode_stream(buf, pos, alphabet_size, out, *, raw20=None, raw4=None, shift=0):
    """Decode ``out.size`` symbols from the stream at ``buf[pos:]`` into ``out``.

    ``buf`` is a uint8 array, ``out`` an unsigned integer array. With ``raw20`` (a uint32
    ``out`` and the raw section of 20 low bits per value, ``kernels.bits`` layout) ``out``
    receives ``symbol << 20 | low bits`` instead, in the same pass. With ``raw4`` (the raw
    section of 4 low bits per value) ``out`` receives ``(symbol << 4 | low bits) << shift``,
    in the same pass where the vector decoder runs. Returns the position after the stream;
    raises CorruptBlobError (or TruncatedBlobError) on any inconsistency.
    """
    _check_alphabet(alphabet_size)
    n = out.size
    if pos + 2 > buf.size:
        raise TruncatedBlobError("stream header runs past the end of its chunk")
    backend_id = int(buf[pos])
    precision = int(buf[pos + 1])
    if backend_id not in (BACKEND_NUMBA, BACKEND_CONSTRICTION, BACKEND_NUMBA32, BACKEND_NUMBA64):
        raise CorruptBlobError(f"unknown entropy backend {backend_id}")
    if not 1 <= precision <= MAX_PRECISION:
        raise CorruptBlobError(f"rANS precision {precision} outside 1..{MAX_PRECISION}")
    table_cap = min(alphabet_size, 1 << precision)
    # per-thread scratch: fresh tables would cost page faults on every chunk
    symbols = _scratch("rans.symbols", table_cap, np.int64)
    freqs = _scratch("rans.freqs", table_cap, np.int64)
    slots = 0 if backend_id == BACKEND_CONSTRICTION else 1 << precision
    slot_table = _scratch("rans.slot_table", slots, np.uint32)
    slot_symbol = _scratch("rans.slot_symbol", slots, np.uint16)
    read_table, read_varint = aot.checked("read_table", _rans.read_table), aot.checked("read_varint", _core.read_varint)
    n_used, pos = read_table(buf, pos + 2, alphabet_size, precision, symbols, freqs, slot_table, slot_symbol)
    if pos < 0:
        raise CorruptBlobError("invalid frequency table")
    nbytes, pos = read_varint(buf, pos, buf.size)
    if pos < 0 or pos + nbytes > buf.size:
        raise TruncatedBlobError("coded bytes run past the end of their chunk")
    body = buf[pos:pos + nbytes]
    pos += nbytes
    if n == 0:
        if nbytes:
            raise CorruptBlobError("coded bytes for an empty stream")
        return pos
    if n_used == 0:
        raise CorruptBlobError("symbols announced but the frequency table is empty")
    if raw20 is not None and (out.dtype != np.uint32
                              or raw20.size != aot.kernel("raw_size", raw_size)(n, _core.FLOAT32_RAW_BITS)):
        raise ValueError("raw20 needs a uint32 output and exactly the raw section of 20-bit values")
    if backend_id == BACKEND_NUMBA:
        if raw20 is not None:
            decode = aot.checked("rans_decode_values", _rans.rans_decode_values)
            status = decode(body, slot_table, slot_symbol, precision, out, raw20)
        else:
            decode = aot.checked(f"rans_decode_symbols_{out.dtype.name}", _rans.rans_decode_symbols)
            status = decode(body, slot_table, slot_symbol, precision, out)
        if status != _core.STATUS_OK:
            raise CorruptBlobError("rANS stream does not decode cleanly")
    elif backend_id in (BACKEND_NUMBA32, BACKEND_NUMBA64):
        groups = _rans32.GROUPS[backend_id]
        if raw4 is not None and raw4.size != raw_size(n, 4):
            raise ValueError("raw4 must be exactly the raw section of 4-bit values")
        if _rans32.VECTOR:
            table = _scratch("rans.vector_table", _rans32.table_size(precision), np.uint64)
        if _rans32.VECTOR and raw4 is not None and out.dtype in (np.uint16, np.uint32):
            decode = aot.checked(f"decode_vector_nibbles_{out.dtype.name}", _rans32.decode_vector_nibbles)
            status = decode(body, slot_table, slot_symbol, precision, out, raw4, shift, table, groups)
            raw4 = None  # merged
        elif _rans32.VECTOR and raw20 is not None:
            decode = aot.checked("decode_vector_fused", _rans32.decode_vector_fused)
            status = decode(body, slot_table, slot_symbol, precision, out, raw20, table, groups)
        elif _rans32.VECTOR:
            decode = aot.checked(f"decode_vector_{out.dtype.name}", _rans32.decode_vector)
            status = decode(body, slot_table, slot_symbol, precision, out, table, groups)
        else:
            fused = raw20 if raw20 is not None else np.empty(0, dtype=np.uint8)
            status = _rans32.decode_scalar(body, slot_table, slot_symbol, precision, out, fused, groups)
        if status != _core.STATUS_OK:
            raise CorruptBlobError("rANS stream does not decode cleanly")
    else:
        _constriction_decode(body, symbols[:n_used], freqs[:n_used], precision, out)
        if raw20 is not None:
            merge_low_bits(out, raw20, _core.FLOAT32_RAW_BITS)
    if raw4 is not None:
        aot.checked(f"merge_low_bits_shifted_{out.dtype.name}", merge_low_bits_shifted)(out, raw4, 4, shift)
    return pos


def _constriction_decode(body, symbols, freq_used, precision, out):
    import constriction

    if body.size % 4:
        raise CorruptBlobError("constriction stream is not a whole number of 32-bit words")
    words = body.view("<u4").astype(np.uint32) if body.size else np.empty(0, np.uint32)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        dense = coder.decode(_constriction_model(freq_used, precision), out.size)
    except Exception as exc:  # constriction raises its own types on bad streams
        raise CorruptBlobError(f"constriction stream does not decode: {exc}") from None
    if not coder.is_empty():
        raise CorruptBlobError("constriction stream has trailing data")
    if dense.size != out.size or dense.min() < 0 or dense.max() >= symbols.size:
        raise CorruptBlobError("constriction stream decodes outside the table")
    out[:] = symbols[dense]
