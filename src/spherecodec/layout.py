"""The container's byte layout, in one place (spec: docs/format.md).

Every module that reads or writes container bytes takes the layout from here: the
container (``container.Header`` parses, ``pack_header`` writes), the chunk pipeline, the
tests and the fuzzers. Layout (little endian)::

    0   4  magic b"SPHC"
    4   2  format version (1)
    6   2  flags (0; any other value is unsupported)
    8   4  meta_len: bytes of the UTF-8 JSON metadata
    12  4  reserved (0)
    16  8  n_chunks
    24  8  shared_len: bytes of the codec's shared section
    32     metadata JSON {"codec", "params", "dtype", "shape", "rows", "dim", "chunk_rows"}
    ..     shared section (shared_len bytes)
    ..     chunk index: n_chunks x (u64 payload length, u64 XXH64 of the payload)
    ..  8  XXH64 of every byte above
    ..     chunk payloads, back to back

Checksums are XXH64 with seed 0 (``kernels.checksum``).
"""

import json
import struct

import ml_dtypes  # noqa: F401  (registers numpy's "bfloat16" dtype, which blobs may hold)
import numpy as np

from . import aot
from .kernels.checksum import xxh64

MAGIC = b"SPHC"
FORMAT_VERSION = 1
#: magic, version, flags, meta_len, reserved, n_chunks, shared_len
FIXED = struct.Struct("<4sHHIIQQ")
#: per chunk: payload length, XXH64 of the payload
INDEX_ENTRY = struct.Struct("<QQ")
#: XXH64 of the header, after the index
CHECKSUM = struct.Struct("<Q")
#: the index as a numpy record array
INDEX_DTYPE = np.dtype([("len", "<u8"), ("sum", "<u8")])
FIXED_HEADER_SIZE = FIXED.size
INDEX_ENTRY_SIZE = INDEX_ENTRY.size
#: the metadata's keys, every one required
META_KEYS = ("codec", "params", "dtype", "shape", "rows", "dim", "chunk_rows")
#: dtypes a blob may decode to
DTYPES = ("float16", "float32", "float64", "bfloat16")

# -- limits a reader enforces before it allocates ------------------------------------------
#: longest metadata JSON accepted
MAX_META = 1 << 20
#: most dimensions a shape may have
MAX_NDIM = 32
#: a blob may not announce more decoded bytes than this slack plus its size times the
#: codec's max_expansion: a forged header cannot make decode allocate at will
ALLOCATION_SLACK = 1 << 16


def checksum(data):
    """XXH64 (seed 0) of a bytes-like object, as an int."""
    view = np.frombuffer(data, dtype=np.uint8)
    view.flags.writeable = False  # one compiled xxh64 for bytes and arrays (read-only, as decoding's)
    return int(aot.kernel("xxh64", xxh64)(view))


def chunk_count(rows, dim, chunk_rows):
    """Chunks of an array of ``rows`` rows of ``dim`` values: ``ceil(rows / chunk_rows)``,
    none when rows are empty (``dim == 0``). The only place this is computed."""
    return -(-int(rows) // int(chunk_rows)) if dim else 0


def meta_bytes(meta):
    """The metadata JSON as stored: keys sorted, no spaces."""
    return json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()


def pack_header(meta, shared, lengths, checksums):
    """Every byte before the payloads: fixed part, metadata JSON, shared section, index, checksum.

    ``lengths`` and ``checksums`` (XXH64) are per chunk. Every writer (the in-memory blob,
    the streamed file) uses it, so their bytes are the same.
    """
    meta_json = meta_bytes(meta)
    shared = bytes(shared)
    header = bytearray(FIXED.pack(MAGIC, FORMAT_VERSION, 0, len(meta_json), 0, len(lengths), len(shared)))
    header += meta_json
    header += shared
    for n, h in zip(lengths, checksums):
        header += INDEX_ENTRY.pack(int(n), int(h))
    header += CHECKSUM.pack(checksum(header))
    return bytes(header)
