"""A whole small exact blob in one kernel call: the one-chunk float32 blobs of the
default exact codec (``container``'s small-input path, ``codecs.exact.encode_small_blob``).

Why: a blob of 32 x 384 float32 spent ~85 us in Python (codec set-up, metadata, index,
checksums, five or six kernel calls) around ~55 us of coding. Here the chunk's coding
(``rans.encode_stream_8``/``_32``: the same streams as the chunk pipeline writes), its
XXH64, the index entry and the header checksum are one nogil call, and decoding checks
both checksums, parses the stream head and decodes in one call. The bytes are the chunk
pipeline's own (tests compare them); the header before the index (fixed part and
metadata JSON) comes from the caller.

Both kernels decline (encode: -1; decode: a nonzero status) whatever they do not take:
a chunk that is not plainly coded (mode 0), a stored chunk, any inconsistency. The
caller then runs the general path, which writes the other modes and says what is wrong
with a damaged blob.
"""

import numpy as np
from numba import njit

from .bits import raw_size
from .checksum import xxh64
from .rans import encode_stream_8, encode_stream_32, rans_decode, read_table
from .rans_core import FLOAT32_ALPHABET, FLOAT32_RAW_BITS, MAX_PRECISION, STATUS_CORRUPT, STATUS_OK, read_varint
from .rans_simd import BACKEND_ID as BACKEND_32_LANES
from .rans_simd import decode_scalar, decode_vector_fused
from .shape import scan

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


@njit(nogil=True, cache=True)
def encode_blob(values, prefix, out, scratch_bytes, wide, min_precision, sparse_try, vector):
    """Write the blob of the float32 bits ``values`` (uint32, 1-D, not empty) at ``out``:
    ``prefix`` (the header up to its index: fixed part, metadata JSON, no shared section),
    the index entry of its one chunk, the header's XXH64, then the chunk (mode 0, the
    values' 20 raw low bits, their head symbols' stream: 32 lanes if ``wide``, table
    precision from ``min_precision``; ``entropy.short_stream_layout``). Returns the blob's
    size, or -1 when the chunk pipeline would code the chunk another way: values that are
    all equal (two or more), share a zero low bit, or hold a zero in ``sparse_try`` or more (exact
    codec's rules), or do not shrink. ``scratch_bytes``: the layout's encode scratch size
    (``rans.encode_scratch_size``, ``rans_simd.encode_scratch_size``); ``out``:
    ``prefix.size + 24 + 1 + raw bits + entropy.stream_capacity`` bytes; ``vector``:
    ``rans_simd.VECTOR_ENCODE``."""
    n = values.size
    or_bits, zeros, constant = scan(values)
    if or_bits & np.uint64(1) == 0 or (constant and n > 1) or zeros * sparse_try >= n:
        return -1
    at = prefix.size
    for k in range(at):
        out[k] = prefix[k]
    start = at + _INDEX_BYTES + _CHECKSUM_BYTES
    out[start] = MODE_CODED
    counts = np.zeros(FLOAT32_ALPHABET, dtype=np.int64)
    scratch = np.empty(scratch_bytes, dtype=np.uint8)
    nraw = raw_size(n, FLOAT32_RAW_BITS)
    if wide:
        end = encode_stream_32(values, FLOAT32_RAW_BITS, nraw, counts, True, scratch, out, start + 1, vector,
                               min_precision)
    else:
        end = encode_stream_8(values, FLOAT32_RAW_BITS, nraw, counts, True, scratch, out, start + 1,
                              min_precision)
    if end > start + 1 + 4 * n:
        return -1  # stored verbatim (mode 1) by the chunk pipeline
    _write_u64(out, at, np.uint64(end - start))
    _write_u64(out, at + 8, xxh64(out[start:end]))
    _write_u64(out, at + _INDEX_BYTES, xxh64(out[:at + _INDEX_BYTES]))
    return end


@njit(nogil=True, cache=True)
def decode_blob(blob, index_at, out, vector):
    """Decode a one-chunk blob (uint8 ``blob``, its index entry at ``index_at``, right
    after the metadata) of a mode-0 float32 chunk into ``out`` (uint32, the values' bits).
    Checks the header's and the chunk's XXH64, the chunk's size and every part of its
    stream. Returns ``STATUS_OK``, ``STATUS_OTHER`` for a chunk in another mode, or
    ``STATUS_CORRUPT``: the caller's general path then decodes or explains. ``vector``:
    ``rans_simd.VECTOR`` (the 32-lane vector decoder)."""
    size = blob.size
    start = index_at + _INDEX_BYTES + _CHECKSUM_BYTES
    if start >= size:
        return STATUS_CORRUPT
    if xxh64(blob[:index_at + _INDEX_BYTES]) != _read_u64(blob, index_at + _INDEX_BYTES):
        return STATUS_CORRUPT
    if _read_u64(blob, index_at) != np.uint64(size - start):
        return STATUS_CORRUPT
    payload = blob[start:]
    if xxh64(payload) != _read_u64(blob, index_at + 8):
        return STATUS_CORRUPT
    if payload[0] != MODE_CODED:
        return STATUS_OTHER
    n = out.size
    nraw = raw_size(n, FLOAT32_RAW_BITS)
    pos = 1 + nraw
    if n == 0 or pos + 2 > payload.size:
        return STATUS_CORRUPT
    backend = payload[pos]
    precision = np.int64(payload[pos + 1])
    if (backend != 0 and backend != BACKEND_32_LANES) or not 1 <= precision <= MAX_PRECISION:
        return STATUS_OTHER  # constriction's, or not a stream: the general path says
    slots = 1 << precision
    slot_table = np.empty(slots, dtype=np.uint32)
    slot_symbol = np.empty(slots, dtype=np.uint16)
    symbols = np.empty(min(FLOAT32_ALPHABET, slots), dtype=np.int64)
    freqs = np.empty(min(FLOAT32_ALPHABET, slots), dtype=np.int64)
    n_used, pos = read_table(payload, pos + 2, FLOAT32_ALPHABET, precision, symbols, freqs, slot_table,
                             slot_symbol)
    if pos < 0 or n_used == 0:
        return STATUS_CORRUPT
    nbytes, pos = read_varint(payload, pos, payload.size)
    if pos < 0 or pos + nbytes != payload.size:
        return STATUS_CORRUPT
    body = payload[pos:]
    raw = payload[1:1 + nraw]
    if backend == 0:
        return rans_decode(body, slot_table, slot_symbol, precision, out, raw)
    if vector:
        symbol_table = np.empty(slots, dtype=np.uint32)
        return decode_vector_fused(body, slot_table, slot_symbol, precision, out, raw, symbol_table)
    return decode_scalar(body, slot_table, slot_symbol, precision, out, raw)
