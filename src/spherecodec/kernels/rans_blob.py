"""A whole small exact blob in one kernel call: the one-chunk float32 blobs of the
default exact codec (``container``'s small-input path, ``codecs.exact.encode_small_blob``);
and the chunks of a larger one decoded in one call (``chunks_decoder``).

Why: a blob of 32 x 384 float32 spent ~85 us in Python (codec set-up, metadata, index,
checksums, five or six kernel calls) around ~55 us of coding. Here the chunk's coding
(``rans.encode_stream_8``/``_32``: the same streams as the chunk pipeline writes), its
XXH64, the index entry and the header checksum are one nogil call, and decoding checks
both checksums, parses the stream head and decodes in one call. The bytes are the chunk
pipeline's own (tests compare them); the header before the index (fixed part and
metadata JSON) comes from the caller.

There is one kernel per stream layout (and decoder), so that a first call compiles only
what it runs. They decline (encode: -1; decode: a nonzero status) whatever they do not take:
a chunk that is not plainly coded (mode 0), a stored chunk, any inconsistency. The
caller then runs the general path, which writes the other modes and says what is wrong
with a damaged blob.
"""

import functools

import numpy as np
from numba import njit

from .bits import raw_size
from .checksum import MANY as CHECK_MANY
from .checksum import VECTOR_HASH, xxh64, xxh64_many
from .rans import encode_stream_8, encode_stream_wide_for, rans_decode_values, read_table
from .rans_core import FLOAT32_ALPHABET, FLOAT32_RAW_BITS, MAX_PRECISION, STATUS_CORRUPT, STATUS_OK, read_varint
from .rans_simd import BACKEND_ID as BACKEND_32_LANES
from .rans_simd import BACKEND_ID_64 as BACKEND_64_LANES
from .rans_simd import PREFIX_ENTRIES, decode_scalar, decode_vector_fused, decode_vector_streaming
from .shape import scan

#: chunks whose sums ``chunks_decoder`` checks before decoding them: four side by side
#: where the hash runs in vector registers; else one, so that the chunk just hashed is
#: still in L2 when it is decoded
CHECKED_TOGETHER = CHECK_MANY if VECTOR_HASH else 1
#: decode_blob's status for a blob it does not take (a chunk in another mode)
STATUS_OTHER = 2
#: decode_blob decoded the blob (rans_core.STATUS_OK)
STATUS_DONE = STATUS_OK
#: the chunk's mode byte for plainly coded values (codecs.exact.MODE_CODED)
MODE_CODED = 0
_INDEX_BYTES = 16
_CHECKSUM_BYTES = 8


@njit(inline="always")
def _write_u64(out, pos, value):
    for k in range(8):
        out[pos + k] = (value >> np.uint64(8 * k)) & np.uint64(0xFF)


@njit(inline="always")
def _read_u64(buf, pos):
    value = np.uint64(0)
    for k in range(8):
        value |= np.uint64(buf[pos + k]) << np.uint64(8 * k)
    return value


@njit(inline="always")
def _open_chunk(values, prefix, out, sparse_try):
    # the exact codec's rules: values all equal (two or more), sharing a zero low bit, or
    # with a zero in sparse_try or more take another mode (-1); else the header prefix and
    # the mode byte are written and the chunk's start returned
    n = values.size
    or_bits, zeros, constant = scan(values)
    if or_bits & np.uint64(1) == 0 or (constant and n > 1) or zeros * sparse_try >= n:
        return -1
    at = prefix.size
    for k in range(at):
        out[k] = prefix[k]
    start = at + _INDEX_BYTES + _CHECKSUM_BYTES
    out[start] = MODE_CODED
    return start


@njit(inline="always")
def _close_chunk(out, at, start, end, n):
    # the index entry and both checksums; -1 when the chunk did not shrink (stored, mode 1)
    if end > start + 1 + 4 * n:
        return -1
    _write_u64(out, at, np.uint64(end - start))
    _write_u64(out, at + 8, xxh64(out[start:end]))
    _write_u64(out, at + _INDEX_BYTES, xxh64(out[:at + _INDEX_BYTES]))
    return end


@njit(nogil=True, cache=True)
def encode_blob_8(values, prefix, out, scratch_bytes, min_precision, sparse_try):
    """Write the blob of the float32 bits ``values`` (uint32, 1-D, not empty) at ``out``:
    ``prefix`` (the header up to its index: fixed part, metadata JSON, no shared section),
    the index entry of its one chunk, the header's XXH64, then the chunk (mode 0: the
    values' 20 raw low bits, their head symbols' stream in 8 lanes, table precision from
    ``min_precision``: ``entropy.short_stream_layout``). Returns the blob's size, or -1
    when the chunk pipeline would code the chunk another way (the exact codec's rules,
    ``sparse_try`` its share of zeros to try sparse coding; or it does not shrink).
    ``scratch_bytes``: ``rans.encode_scratch_size``; ``out``: ``prefix.size + 25 + raw
    bits + entropy.stream_capacity`` bytes. One kernel per layout (``blob_encoder_32``):
    a first call compiles only the coder it needs."""
    start = _open_chunk(values, prefix, out, sparse_try)
    if start < 0:
        return -1
    n = values.size
    counts = np.zeros(FLOAT32_ALPHABET, dtype=np.int64)
    end = encode_stream_8(values, FLOAT32_RAW_BITS, raw_size(n, FLOAT32_RAW_BITS), counts, True,
                          np.empty(scratch_bytes, dtype=np.uint8), out, start + 1, min_precision)
    return _close_chunk(out, prefix.size, start, end, n)


@functools.cache
def blob_encoder_32(vector):
    """The kernel ``encode_blob_8`` with the stream in 32 lanes, its steps of the kind
    ``vector`` (``rans_simd.VECTOR_ENCODE``): ``f(values, prefix, out, scratch_bytes,
    min_precision, sparse_try)`` (``scratch_bytes``: ``rans_simd.encode_scratch_size``;
    fewer than ``rans_simd.MIN_SYMBOLS_64`` values). One kernel per kind: a first call
    compiles only its own (``rans.wide_stream_encoder``)."""

    @njit(nogil=True, cache=True)
    def encode_blob_32_kernel(values, prefix, out, scratch_bytes, min_precision, sparse_try):
        start = _open_chunk(values, prefix, out, sparse_try)
        if start < 0:
            return -1
        n = values.size
        counts = np.zeros(FLOAT32_ALPHABET, dtype=np.int64)
        end = encode_stream_wide_for(values, FLOAT32_RAW_BITS, raw_size(n, FLOAT32_RAW_BITS), counts, True,
                                     np.empty(scratch_bytes, dtype=np.uint8), out, start + 1, min_precision, vector,
                                     2)
        return _close_chunk(out, prefix.size, start, end, n)

    return encode_blob_32_kernel


def stream_backend_at(index_at, n):
    """Where a small blob's stream backend byte lies (its chunk's index entry at
    ``index_at``, ``n`` values): the caller picks the decoding kernel by it."""
    return index_at + _INDEX_BYTES + _CHECKSUM_BYTES + 1 + 2 * n + (4 * n + 7) // 8  # raw_size(n, 20)


@njit(inline="always")
def _coded_head(payload, n):
    """(status, where the stream's table starts, its backend byte, its precision) of the
    payload of a float32 chunk of ``n`` values coded plainly (mode 0: the 20 raw low bits,
    then the stream's head); ``STATUS_OTHER`` for another mode."""
    pos = 1 + raw_size(n, FLOAT32_RAW_BITS)
    if pos + 2 > payload.size or payload[0] != MODE_CODED:
        return STATUS_OTHER, 0, 0, 0
    precision = np.int64(payload[pos + 1])
    if not 1 <= precision <= MAX_PRECISION:
        return STATUS_CORRUPT, 0, 0, 0
    return STATUS_OK, pos + 2, np.int64(payload[pos]), precision


@njit(inline="always")
def _coded_tables(payload, pos, precision, symbols, freqs, slot_table, slot_symbol):
    """(status, where the body starts): the stream's table from ``pos`` read into the slot
    tables (``2**precision`` entries each), then the body's length, which must end the
    payload."""
    n_used, pos = read_table(payload, pos, FLOAT32_ALPHABET, precision, symbols, freqs, slot_table, slot_symbol)
    if pos < 0 or n_used == 0:
        return STATUS_CORRUPT, 0
    nbytes, pos = read_varint(payload, pos, payload.size)
    if pos < 0 or pos + nbytes != payload.size:
        return STATUS_CORRUPT, 0
    return STATUS_OK, pos


@njit(inline="always")
def _open_blob(blob, index_at, n, backend):
    """(status, body, raw section, slot tables, precision) of a one-chunk blob whose
    stream has ``backend``: both checksums, the chunk's size and its stream head checked."""
    none8 = np.empty(0, dtype=np.uint8)
    none32 = np.empty(0, dtype=np.uint32)
    none16 = np.empty(0, dtype=np.uint16)
    size = blob.size
    start = index_at + _INDEX_BYTES + _CHECKSUM_BYTES
    if start >= size or n == 0:
        return STATUS_CORRUPT, none8, none8, none32, none16, 0
    if xxh64(blob[:index_at + _INDEX_BYTES]) != _read_u64(blob, index_at + _INDEX_BYTES):
        return STATUS_CORRUPT, none8, none8, none32, none16, 0
    if _read_u64(blob, index_at) != np.uint64(size - start):
        return STATUS_CORRUPT, none8, none8, none32, none16, 0
    payload = blob[start:]
    if xxh64(payload) != _read_u64(blob, index_at + 8):
        return STATUS_CORRUPT, none8, none8, none32, none16, 0
    status, pos, stream_backend, precision = _coded_head(payload, n)
    if status == STATUS_OK and stream_backend != backend:
        status = STATUS_OTHER
    if status != STATUS_OK:
        return status, none8, none8, none32, none16, 0
    slots = 1 << precision
    slot_table = np.empty(slots, dtype=np.uint32)
    slot_symbol = np.empty(slots, dtype=np.uint16)
    symbols = np.empty(min(FLOAT32_ALPHABET, slots), dtype=np.int64)
    freqs = np.empty(min(FLOAT32_ALPHABET, slots), dtype=np.int64)
    status, pos = _coded_tables(payload, pos, precision, symbols, freqs, slot_table, slot_symbol)
    if status != STATUS_OK:
        return status, none8, none8, none32, none16, 0
    return STATUS_OK, payload[pos:], payload[1:1 + raw_size(n, FLOAT32_RAW_BITS)], slot_table, slot_symbol, precision


@njit(nogil=True, cache=True)
def decode_blob_8(blob, index_at, out):
    """Decode a one-chunk blob (uint8 ``blob``, its index entry at ``index_at``, right
    after the metadata) of a mode-0 float32 chunk whose stream has 8 lanes into ``out``
    (uint32, the values' bits). Checks the header's and the chunk's XXH64, the chunk's size
    and every part of its stream. Returns ``STATUS_DONE``, ``STATUS_OTHER`` (another mode
    or layout) or ``STATUS_CORRUPT``: the caller's general path then decodes or explains.
    One kernel per layout and decoder (``decode_blob_32``, ``decode_blob_32_scalar``): a
    first call compiles only the decoder it needs."""
    status, body, raw, slot_table, slot_symbol, precision = _open_blob(blob, index_at, out.size, 0)
    if status != STATUS_OK:
        return status
    return rans_decode_values(body, slot_table, slot_symbol, precision, out, raw)


@njit(nogil=True, cache=True)
def decode_blob_32(blob, index_at, out):
    """``decode_blob_8`` of a 32-lane stream by the vector decoder (``rans_simd.VECTOR``)."""
    status, body, raw, slot_table, slot_symbol, precision = _open_blob(blob, index_at, out.size, BACKEND_32_LANES)
    if status != STATUS_OK:
        return status
    table = np.empty((1 << precision) + PREFIX_ENTRIES // 2, dtype=np.uint64)  # rans_simd.table_size
    return decode_vector_fused(body, slot_table, slot_symbol, precision, out, raw, table, 2)


@njit(nogil=True, cache=True)
def decode_blob_32_scalar(blob, index_at, out):
    """``decode_blob_32`` by the scalar decoder (CPUs without the vector one)."""
    status, body, raw, slot_table, slot_symbol, precision = _open_blob(blob, index_at, out.size, BACKEND_32_LANES)
    if status != STATUS_OK:
        return status
    return decode_scalar(body, slot_table, slot_symbol, precision, out, raw, 2)


# -- the chunks of a larger blob ---------------------------------------------------------------
@njit(inline="always")
def _decode_coded(payload, out, table, slot_table, slot_symbol, symbols, freqs, vector, streaming):
    """One chunk's payload as the exact codec's decode_chunk reads a mode-0 float32 chunk
    (its 20 raw low bits, then a 32- or 64-lane stream), or ``STATUS_OTHER`` for any other
    mode or stream layout."""
    n = out.size
    status, pos, backend, precision = _coded_head(payload, n)
    if status != STATUS_OK:
        return status
    if backend == BACKEND_32_LANES:
        groups = 2
    elif backend == BACKEND_64_LANES:
        groups = 4
    else:
        return STATUS_OTHER
    slots = 1 << precision
    if slots > slot_table.size or slots + PREFIX_ENTRIES // 2 > table.size:
        return STATUS_OTHER  # tables larger than the scratch given: the general path's
    used_cap = min(FLOAT32_ALPHABET, slots)
    status, pos = _coded_tables(payload, pos, precision, symbols[:used_cap], freqs[:used_cap], slot_table[:slots],
                                slot_symbol[:slots])
    if status != STATUS_OK:
        return status
    body = payload[pos:]
    raw = payload[1:1 + raw_size(n, FLOAT32_RAW_BITS)]
    if vector and streaming:  # plain stores where the values do not start aligned
        return decode_vector_streaming(body, slot_table[:slots], slot_symbol[:slots], precision, out, raw, table,
                                       groups)
    if vector:
        return decode_vector_fused(body, slot_table[:slots], slot_symbol[:slots], precision, out, raw, table, groups)
    return decode_scalar(body, slot_table[:slots], slot_symbol[:slots], precision, out, raw, groups)


@functools.cache
def chunks_decoder(vector):
    """The kernel decoding a float32 blob's mode-0 chunks (the default exact codec's, level
    1) in one call, by the vector decoder or (``vector`` False) the scalar one:
    ``f(blob, offsets, checksums, first, stop, verify, streaming, chunk_values, out, table,
    slot_table, slot_symbol, symbols, freqs)`` decodes chunks ``first .. stop - 1`` in
    order (chunk ``i``: ``blob[offsets[i]:offsets[i + 1]]``, its XXH64 ``checksums[i]``,
    its values ``out[(i - first) * chunk_values:]``, uint32 bits) and returns the index
    of the first chunk it did not decode (``stop`` when it decoded them all).

    With ``verify`` it checks the sums of ``CHECK_MANY`` chunks at a time (``xxh64_many``)
    before decoding them, as the general path does (without, the caller has). With
    ``streaming`` the vector decoder stores a chunk's values past the caches
    (``rans_simd.decode_vector_streaming``) where they start 64-byte aligned. It stops
    at a damaged chunk or one in another mode or stream layout: the caller's general
    path then decodes it or says what is wrong, as it does a chunk whose tables need
    more than the scratch: ``table`` (``rans_simd.table_size(p)`` u64),
    ``slot_table``/``slot_symbol`` (``2**p`` u32/u16) and ``symbols``/``freqs``
    (``FLOAT32_ALPHABET`` int64) for the largest precision ``p`` it takes. Why: the
    Python around each chunk's four kernel calls cost 10-20% of decoding 18 MB in 1 MiB
    chunks. One kernel per decoder: a first call compiles only its own."""

    @njit(nogil=True, cache=True)
    def decode_chunks_kernel(blob, offsets, checksums, first, stop, verify, streaming, chunk_values, out, table,
                             slot_table, slot_symbol, symbols, freqs):
        total = out.size
        i = first
        while i < stop:
            end = min(i + CHECKED_TOGETHER, stop)
            group_end = end
            if verify:
                sums = xxh64_many(blob, offsets[i:end], offsets[i + 1:end + 1], VECTOR_HASH)
                for j in range(i, end):
                    if sums[j - i] != checksums[j]:
                        end = j  # the intact chunks before it are decoded first
                        break
            for j in range(i, end):
                lo = (j - first) * chunk_values
                status = _decode_coded(blob[offsets[j]:offsets[j + 1]], out[lo:min(total, lo + chunk_values)],
                                       table, slot_table, slot_symbol, symbols, freqs, vector, streaming)
                if status != STATUS_OK:
                    return j
            if end < group_end:
                return end
            i = end
        return stop

    return decode_chunks_kernel
