"""The spherecodec container: one self-describing blob per array (spec: docs/format.md).

Layout (little endian)::

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

import contextlib
import itertools
import json
import os
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .codecs import Codec, get_codec
from .kernels.checksum import xxh64
from .kernels.memory import copy_bytes
from .scratch import BlobWriter
from .scratch import join as join_parts
from .scratch import recycle
from .scratch import release as release_scratch
from .errors import CorruptBlobError, SpherecodecError, TruncatedBlobError, UnsupportedError

MAGIC = b"SPHC"
FORMAT_VERSION = 1
_FIXED = struct.Struct("<4sHHIIQQ")
_INDEX_ENTRY = struct.Struct("<QQ")
_CHECKSUM = struct.Struct("<Q")
FIXED_HEADER_SIZE = _FIXED.size
INDEX_ENTRY_SIZE = _INDEX_ENTRY.size
#: raw bytes per chunk the default chunking aims at (measured: see docs/format.md, "Chunk size")
DEFAULT_CHUNK_BYTES = 2 << 20
#: arrays of this many bytes or more are written straight into their blob (BlobWriter)
LARGE_BLOB_BYTES = 8 << 20
#: with threads, the calling thread faults in the blob's pages this far ahead of the
#: payloads placed in it (see _write_blob)
POPULATE_AHEAD = 4 << 20
#: a blob may not announce more decoded bytes than this slack plus its size times the
#: codec's max_expansion: a forged header cannot make decode allocate at will
ALLOCATION_SLACK = 1 << 16
_MAX_META = 1 << 20
_MAX_NDIM = 32
_DTYPES = ("float16", "float32", "float64")


def as_rows(array):
    """View ``array`` as a C-contiguous 2-D array of rows over its last axis."""
    array = np.asarray(array)
    if array.ndim == 0:
        return np.ascontiguousarray(array.reshape(1, 1))
    if array.ndim == 1:
        return np.ascontiguousarray(array.reshape(1, -1))
    # explicit row count: reshape(-1, 0) is ambiguous for arrays whose last axis is empty
    return np.ascontiguousarray(array.reshape(int(np.prod(array.shape[:-1])), array.shape[-1]))


def resolve_threads(threads):
    """Number of worker threads: ``None`` means every core."""
    if threads is None:
        return os.cpu_count() or 1
    if not isinstance(threads, (int, np.integer)) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, not {threads!r}")
    return int(threads)


def _map(fn, items, threads):
    try:
        if threads == 1 or len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
            return list(pool.map(fn, items))
    finally:
        release_scratch()  # the calling thread's; the workers' end with them


def decoded_shape(shape, dim):
    """Shape decode returns for an input of ``shape`` whose rows became ``dim`` wide."""
    if not shape:
        return ()
    return tuple(shape[:-1]) + (dim,)


def resolve_chunk_rows(chunk_rows, dim, itemsize):
    """Rows per chunk: ``chunk_rows`` checked, or the default of ``DEFAULT_CHUNK_BYTES``."""
    if chunk_rows is None:
        return max(1, DEFAULT_CHUNK_BYTES // max(1, dim * itemsize))
    if not isinstance(chunk_rows, (int, np.integer)) or isinstance(chunk_rows, bool) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, not {chunk_rows!r}")
    return int(chunk_rows)


def checksum(data):
    """XXH64 (seed 0) of a bytes-like object, as an int."""
    return int(xxh64(np.frombuffer(data, dtype=np.uint8)))


def make_codec(codec, params):
    """A Codec instance from a name and parameters, or the instance itself."""
    if isinstance(codec, Codec):
        if params:
            raise TypeError("parameters go to the codec object, not to encode, when passing one")
        return codec
    if not isinstance(codec, str):
        raise TypeError(f"codec must be a name or a Codec, not {type(codec).__name__}")
    return get_codec(codec)(**params)


def encode(array, codec="exact", *, threads=None, chunk_rows=None, **params):
    """Compress ``array`` into a self-describing blob (see ``spherecodec.encode``)."""
    codec = make_codec(codec, params)
    threads = resolve_threads(threads)
    array = np.asarray(array)
    if not array.dtype.isnative:
        # codecs read the bits in native order: big-endian input must not decode as garbage
        array = array.astype(array.dtype.newbyteorder("="))
    codec.check_dtype(array.dtype)
    rows = codec.transform_rows(as_rows(array))
    state = codec.prepare(rows)
    out_dtype = codec.decoded_dtype(array.dtype)
    n_rows, dim = rows.shape
    shape = decoded_shape(array.shape, dim)
    chunk_rows = resolve_chunk_rows(chunk_rows, dim, rows.dtype.itemsize)
    starts = list(range(0, n_rows, chunk_rows)) if dim else []
    def encode_chunk(start):
        payload = codec.encode_chunk(rows[start:start + chunk_rows], state)
        return payload, checksum(payload)

    def final_meta():
        # the config once the chunks are coded: a codec may settle parameters while coding
        return blob_meta(codec, out_dtype, shape, n_rows, dim, chunk_rows, state)

    try:
        placed = _blob_writer(len(starts), rows.nbytes, final_meta)
        if placed is not None:
            writer, guess = placed
            return _write_blob(writer, guess, encode_chunk, starts, min(threads, max(len(starts), 1)),
                               final_meta, codec, state)
        coded = _map(encode_chunk, starts, threads)
        payloads = [p for p, _ in coded]
        header = pack_header(final_meta(), codec.shared_bytes(state), [len(p) for p in payloads],
                             [h for _, h in coded])
        blob = join_parts([header] + payloads)
        del coded
        recycle(payloads)
        return blob
    finally:
        release_scratch()  # the calling thread's; the workers' end with them


def _blob_writer(n_chunks, raw_bytes, final_meta):
    """``(BlobWriter, header size it leaves room for)`` for a large array, sized for its
    input, or None (small arrays, no CPython bytes API, or no memory to reserve: the
    payloads are then joined at the end)."""
    if not BlobWriter.available or raw_bytes < LARGE_BLOB_BYTES:
        return None
    # the header's size is known but for what the codec settles while coding: if it
    # changes, the payloads move once at the end
    guess = len(pack_header(final_meta(), b"", [0] * n_chunks, [0] * n_chunks))
    try:
        return BlobWriter(guess + raw_bytes + n_chunks), guess
    except MemoryError:
        return None


class _Placer:
    """Puts coded payloads into the blob in chunk order, whichever thread coded them.

    A payload's offset is known once every chunk before it is coded. The thread that
    completes such a run of chunks assigns their offsets (under the lock) and copies
    them itself (outside it, while the other threads copy theirs): the copies run in
    the workers, on the cores, beside the coding, instead of on one extra thread.
    """

    def __init__(self, writer, start, n_chunks):
        self.writer = writer
        self.end = start
        self.lengths = [0] * n_chunks
        self.checksums = [0] * n_chunks
        self._waiting = {}  # chunk -> (payload, checksum), coded before its predecessors
        self.placed = 0  # chunks placed, the next one to place
        self._copying = 0
        self._growing = False
        self._populated = start
        self._cond = threading.Condition()

    def populate_ahead(self, margin):
        """Fault in the blob's pages up to ``margin`` bytes past the placed payloads, from
        the calling thread, so that the copies into them take no page faults."""
        with self._cond:
            target = min(self.end + margin, self.writer.capacity)
            if target <= self._populated or self._growing:
                return
            start, self._populated = self._populated, target
            self._copying += 1  # the blob may not move meanwhile
        try:
            self.writer.populate(start, target)
        finally:
            with self._cond:
                self._copying -= 1
                self._cond.notify_all()

    def add(self, i, payload, h):
        """Chunk ``i`` is coded: place it, with any chunks it was holding up."""
        copies = []
        with self._cond:
            self._waiting[i] = (payload, h)
            if self._growing:
                return  # the growing thread places it
            while self.placed in self._waiting:
                payload, h = self._waiting.pop(self.placed)
                end = self.end + len(payload)
                if end > self.writer.capacity:
                    # resizing moves the buffer: only once no copy is writing into it
                    self._growing = True
                    while self._copying:
                        self._cond.wait()
                    try:
                        self.writer.reserve(end)
                    finally:
                        self._growing = False
                copies.append((self.end, payload))
                self.lengths[self.placed] = len(payload)
                self.checksums[self.placed] = h
                self.end = end
                self.placed += 1
            self._copying += 1
            array = self.writer.array
        try:
            for pos, payload in copies:
                data = payload if isinstance(payload, np.ndarray) else np.frombuffer(payload, dtype=np.uint8)
                copy_bytes(array, pos, data, 0, data.size)  # nogil, unlike a numpy copy
                recycle([payload])
        finally:
            with self._cond:
                self._copying -= 1
                self._cond.notify_all()


def _write_blob(writer, guess, encode_chunk, starts, threads, final_meta, codec, state):
    """The blob of a large array: ``threads`` workers (the calling thread one of them) code
    the chunks in turn and copy each payload into place behind ``guess`` bytes left for
    the header as soon as the chunks before it are coded.

    With threads, the calling thread also faults in the blob's fresh pages a little ahead
    of the payloads: on these VMs a 2 MiB page fault taken in a pool thread cost 5-6 ms
    now and then, and never in the calling thread (0.2 ms); measured over 25 interleaved
    pairs, threads=2 went from 1.57-1.69x threads=1 to 1.77-1.94x. Alone, a thread takes
    its faults in the copies (populating first measured 3-5% slower there).
    """
    placer = _Placer(writer, guess, len(starts))
    next_chunk = itertools.count()
    failed = threading.Event()

    caller = threading.get_ident()

    def work():
        try:
            for i in next_chunk:  # itertools.count is atomic under the GIL
                if i >= len(starts) or failed.is_set():
                    return
                if threads > 1 and threading.get_ident() == caller:
                    placer.populate_ahead(POPULATE_AHEAD)
                placer.add(i, *encode_chunk(starts[i]))
        except BaseException:
            failed.set()
            raise

    try:
        with ThreadPoolExecutor(max_workers=threads - 1) if threads > 1 else contextlib.nullcontext() as pool:
            helpers = [pool.submit(work) for _ in range(threads - 1)] if threads > 1 else []
            try:
                work()
            finally:
                failed_here = [f.exception() for f in helpers]  # waits for every helper
            for exc in failed_here:
                if exc is not None:
                    raise exc
        if placer.placed != len(starts):  # every worker returned: nothing may be left behind
            raise RuntimeError(f"{placer.placed} of {len(starts)} chunks placed")
        lengths, checksums, pos = placer.lengths, placer.checksums, placer.end
        header = pack_header(final_meta(), codec.shared_bytes(state), lengths, checksums)
        if len(header) != guess:
            writer.move(guess, len(header), pos - guess)
        writer.write(0, header)
        return writer.finish(len(header) + pos - guess)
    except BaseException:
        writer.discard()
        raise


def blob_meta(codec, out_dtype, shape, n_rows, dim, chunk_rows, state):
    """The metadata ``pack_header`` writes for a blob coded with ``state`` (spherecodec.stream
    writes the same)."""
    return {
        "codec": codec.name,
        "params": codec.stored_config(state),
        "dtype": np.dtype(out_dtype).name,
        "shape": [int(x) for x in shape],
        "rows": int(n_rows),
        "dim": int(dim),
        "chunk_rows": int(chunk_rows),
    }


def pack_header(meta, shared, lengths, checksums):
    """Every byte before the payloads: fixed part, metadata JSON, shared section, index, checksum.

    ``lengths`` and ``checksums`` (XXH64) are per chunk. spherecodec.stream writes files
    with it, so a streamed file and ``encode``'s blob are the same bytes.
    """
    meta_bytes = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    shared = bytes(shared)
    header = bytearray(_FIXED.pack(MAGIC, FORMAT_VERSION, 0, len(meta_bytes), 0,
                                   len(lengths), len(shared)))
    header += meta_bytes
    header += shared
    for n, h in zip(lengths, checksums):
        header += _INDEX_ENTRY.pack(int(n), int(h))
    header += _CHECKSUM.pack(checksum(header))
    return bytes(header)


class Header:
    """A parsed, validated container header; ``chunk(i)`` gives payload bytes."""

    def __init__(self, blob):
        try:
            view = memoryview(blob).cast("B")
        except TypeError:
            raise TypeError(f"blob must be bytes-like, not {type(blob).__name__}") from None
        self.blob = np.frombuffer(view, dtype=np.uint8)
        size = self.blob.size
        if size < FIXED_HEADER_SIZE:
            if bytes(view[:4]) != MAGIC[: min(4, size)]:
                raise CorruptBlobError("not a spherecodec blob (bad magic)")
            raise TruncatedBlobError(f"blob of {size} bytes is shorter than the {FIXED_HEADER_SIZE}-byte header")
        magic, version, flags, meta_len, reserved, n_chunks, shared_len = _FIXED.unpack_from(view, 0)
        if magic != MAGIC:
            raise CorruptBlobError("not a spherecodec blob (bad magic)")
        if version != FORMAT_VERSION:
            raise UnsupportedError(
                f"format version {version} is not supported (this build reads version {FORMAT_VERSION})")
        if flags != 0 or reserved != 0:
            raise UnsupportedError(f"header flags {flags:#x}/{reserved:#x} are not supported")
        if meta_len > _MAX_META:
            raise CorruptBlobError(f"metadata length {meta_len} exceeds {_MAX_META}")
        index_start = FIXED_HEADER_SIZE + meta_len + shared_len
        # compare before multiplying by the entry size, so no huge count reaches an allocation
        if index_start > size or n_chunks > (size - index_start) // INDEX_ENTRY_SIZE:
            raise TruncatedBlobError("blob ends inside its header")
        index_end = index_start + n_chunks * INDEX_ENTRY_SIZE
        if index_end + _CHECKSUM.size > size:
            raise TruncatedBlobError("blob ends inside its header")
        (expected,) = _CHECKSUM.unpack_from(view, index_end)
        if checksum(view[:index_end]) != expected:
            raise CorruptBlobError("header checksum mismatch")
        try:
            meta = json.loads(bytes(view[FIXED_HEADER_SIZE:FIXED_HEADER_SIZE + meta_len]))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise CorruptBlobError("metadata is not valid JSON") from None
        self._check_meta(meta)
        self.meta = meta
        self.n_chunks = n_chunks
        self.shared = self.blob[FIXED_HEADER_SIZE + meta_len:index_start]
        index = np.frombuffer(view[index_start:index_end], dtype=np.dtype([("len", "<u8"), ("sum", "<u8")]))
        self.lengths = index["len"].astype(np.uint64)
        self.checksums = index["sum"].astype(np.uint64)
        self.data_start = index_end + _CHECKSUM.size
        if n_chunks != (-(-self.rows // self.chunk_rows) if self.dim else 0):
            raise CorruptBlobError(f"{n_chunks} chunks do not fit {self.rows} rows of {self.chunk_rows}")
        total = int(self.lengths.sum(dtype=np.uint64)) if n_chunks else 0
        if n_chunks and (self.lengths > np.uint64(size)).any():
            raise TruncatedBlobError("a chunk is longer than the blob")
        if self.data_start + total != size:
            if self.data_start + total > size:
                raise TruncatedBlobError(f"blob holds {size} bytes; its index announces {self.data_start + total}")
            raise CorruptBlobError(f"{size - self.data_start - total} bytes follow the last chunk")
        self.offsets = np.zeros(n_chunks + 1, dtype=np.int64)
        if n_chunks:
            np.cumsum(self.lengths.astype(np.int64), out=self.offsets[1:])
        self.offsets += self.data_start
        self.codec, self.state = self._make_codec()
        budget = ALLOCATION_SLACK + self.codec.expansion_bound(self.state) * size
        if self.nbytes > budget:
            raise CorruptBlobError(
                f"header announces {self.nbytes} decoded bytes, more than this {size}-byte blob can hold")

    def _check_meta(self, meta):
        if not isinstance(meta, dict):
            raise CorruptBlobError("metadata is not a JSON object")
        for key in ("codec", "params", "dtype", "shape", "rows", "dim", "chunk_rows"):
            if key not in meta:
                raise CorruptBlobError(f"metadata lacks {key!r}")
        if meta["dtype"] not in _DTYPES:
            raise UnsupportedError(f"dtype {meta['dtype']!r} is not supported")
        shape = meta["shape"]
        ints = [meta["rows"], meta["dim"], meta["chunk_rows"]] + (shape if isinstance(shape, list) else [])
        if (not isinstance(shape, list) or len(shape) > _MAX_NDIM
                or not all(type(v) is int and 0 <= v < 1 << 62 for v in ints)):
            raise CorruptBlobError("metadata shape fields are not non-negative integers")
        if meta["chunk_rows"] < 1:
            raise CorruptBlobError("chunk_rows must be positive")
        if not isinstance(meta["params"], dict) or not isinstance(meta["codec"], str):
            raise CorruptBlobError("metadata codec fields have the wrong type")
        self.dtype = np.dtype(meta["dtype"])
        self.shape = tuple(shape)
        self.rows, self.dim, self.chunk_rows = meta["rows"], meta["dim"], meta["chunk_rows"]
        expect_rows = 1 if len(shape) < 2 else int(np.prod(shape[:-1], dtype=object))
        expect_dim = 1 if not shape else shape[-1]
        if self.rows * self.dim != int(np.prod(shape, dtype=object)) or (
                (self.rows, self.dim) != (expect_rows, expect_dim)):
            raise CorruptBlobError(f"rows x dim = {self.rows} x {self.dim} do not match shape {shape}")
        # numpy refuses even an empty shape whose non-zero extents overflow its index type
        # (e.g. [0, 2**61]): no encoder wrote one, and np.empty would raise a bare ValueError
        if int(np.prod([v for v in shape if v], dtype=object)) * self.dtype.itemsize >= 1 << 63:
            raise CorruptBlobError(f"shape {shape} is larger than any array")
        self.nbytes = self.rows * self.dim * self.dtype.itemsize

    def _make_codec(self):
        codec = get_codec(self.meta["codec"]).from_config(self.meta["params"])
        codec.check_dtype(self.dtype)
        try:
            state = codec.load_shared(self.shared, self.dtype, self.dim)
        except SpherecodecError:
            raise
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise CorruptBlobError(f"shared section of codec {codec.name!r} is invalid: {exc}") from None
        return codec, state

    def chunk(self, i):
        """Payload bytes of chunk ``i`` as a uint8 array, checksum verified."""
        payload = self.blob[self.offsets[i]:self.offsets[i + 1]]
        if xxh64(payload) != self.checksums[i]:
            raise CorruptBlobError(f"checksum mismatch in chunk {i}")
        return payload

    def decode_chunk_into(self, i, out_rows):
        """Decode chunk ``i`` into ``out_rows`` (its rows of the output)."""
        payload = self.chunk(i)
        try:
            self.codec.decode_chunk(payload, out_rows, self.state)
        except SpherecodecError:
            raise
        except (ValueError, IndexError, KeyError, TypeError, OverflowError) as exc:
            raise CorruptBlobError(f"chunk {i} does not decode: {exc}") from None


def decode(blob, *, threads=None, out=None):
    """Decompress a blob (see ``spherecodec.decode``)."""
    header = Header(blob)
    threads = resolve_threads(threads)
    if out is None:
        result = np.empty(header.shape, dtype=header.dtype)
    else:
        if not isinstance(out, np.ndarray) or out.shape != header.shape or out.dtype != header.dtype:
            raise ValueError(f"out must be an ndarray of shape {header.shape} and dtype {header.dtype}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("out must be C-contiguous and writeable")
        result = out
    rows = result.reshape(header.rows, header.dim)
    cr = header.chunk_rows
    _map(lambda i: header.decode_chunk_into(i, rows[i * cr:(i + 1) * cr]), range(header.n_chunks), threads)
    return result


def decode_rows(blob, start, stop):
    """Rows ``[start, stop)`` of a blob's 2-D row view, decoding only their chunks."""
    header = Header(blob)
    if len(header.shape) < 2:
        raise ValueError("decode_rows needs a blob of an array with at least 2 dimensions")
    start, stop, _ = slice(start, stop).indices(header.rows)
    stop = max(start, stop)
    result = np.empty((stop - start, header.dim), dtype=header.dtype)
    cr = header.chunk_rows
    if stop == start or header.dim == 0:
        return result
    # chunk_rows may exceed rows (a small array, a huge chunk_rows): size scratch by what exists
    block = np.empty((min(cr, header.rows), header.dim), dtype=header.dtype)
    try:
        for i in range(start // cr, (stop - 1) // cr + 1):
            lo = i * cr
            n = min(cr, header.rows - lo)
            header.decode_chunk_into(i, block[:n])
            a, b = max(start, lo), min(stop, lo + n)
            result[a - start:b - start] = block[a - lo:b - lo]
    finally:
        release_scratch()
    return result


def info(blob):
    """Header facts of a blob without decoding its chunks (see ``spherecodec.info``)."""
    header = Header(blob)
    size = header.blob.size
    return {
        "format_version": FORMAT_VERSION,
        "codec": header.meta["codec"],
        "params": dict(header.meta["params"]),
        "dtype": header.dtype.name,
        "shape": header.shape,
        "nbytes": header.nbytes,
        "compressed_nbytes": size,
        "ratio": header.nbytes / size if size else float("inf"),
        "chunk_rows": header.chunk_rows,
        "chunks": header.n_chunks,
        "header_nbytes": header.data_start,
    }
