"""The spherecodec container: one self-describing blob per array (spec: docs/format.md).

The byte layout is ``spherecodec.layout``'s; the way an array becomes chunks, and chunks
become rows, is ``spherecodec.pipeline``'s. This module is the in-memory API on top:
``encode`` (the pipeline into a ``blobsink.MemorySink``), ``Header`` (a parsed, validated
header), ``decode``, ``decode_rows`` and ``info``.
"""

import json
import math
import threading

import numpy as np

from . import aot, layout
from .blobsink import MemorySink
from .codecs.exact import (SMALL_BLOB_VALUES, STREAMING_FROM, decode_coded_chunks, decode_small_blob,
                          decodes_in_one_call, encode_small_blob, small_blob_plan)
from .errors import CorruptBlobError, TruncatedBlobError, UnsupportedError
from .kernels.checksum import MANY as CHECK_MANY
from .kernels.checksum import VECTOR_HASH, xxh64, xxh64_many
from .layout import ALLOCATION_SLACK, FORMAT_VERSION, MAGIC, checksum
from .pipeline import (ChunkPlan, CodecCalls, Workers, as_rows, decode_chunks, decoded_shape, encode_array,
                       make_codec, resolve_chunk_rows, resolve_threads)
from .scratch import release as release_scratch
from .scratch import reusable_array

# names other modules (fit, evaluate, search, bench, integrations, tests) take from here
__all__ = ["encode", "decode", "decode_rows", "info", "Header", "MAGIC", "FORMAT_VERSION", "ALLOCATION_SLACK",
           "as_rows", "checksum", "decoded_shape", "make_codec", "resolve_chunk_rows", "resolve_threads"]


def encode(array, codec="exact", *, threads=None, chunk_rows=None, try_small=True, **params):
    """Compress ``array`` into a self-describing blob (see ``spherecodec.encode``);
    ``try_small=False``: the caller already tried ``encode_small``."""
    if try_small and codec == "exact" and not params and chunk_rows is None:
        blob = encode_small(array, threads)
        if blob is not None:
            return blob
    return encode_array(array, codec, params, MemorySink(), threads=threads, chunk_rows=chunk_rows)


# -- small blobs: one kernel call each way -----------------------------------------------------
#
# A blob of a few rows (32 x 384 float32) spent ~85 us per call in Python around its ~50 us
# of coding. Small float32 arrays with the default exact codec (one chunk, no shared section)
# skip the pipeline: the header before the index is cached by shape, and one kernel codes
# or decodes the chunk with both checksums (codecs.exact.encode_small_blob). The bytes are
# the pipeline's; anything else, or a chunk the kernel does not take, goes the general way.

_F32 = np.dtype(np.float32)
_U32 = np.dtype(np.uint32)
_U8 = np.dtype(np.uint8)
#: shape -> (header before the index (uint8), codecs.exact.small_blob_plan) of a small
#: default exact blob
_SMALL_PREFIXES = {}
#: that header's metadata JSON -> shape: the metadata the small decode path knows valid
_SMALL_METAS = {}
#: shapes remembered at most (both caches start again when full)
_SMALL_CACHE_SIZE = 256


def _small_prefix(shape):
    """(The header before the index of a default exact blob of float32 ``shape``, as the
    pipeline writes it; its ``small_blob_plan``), cached."""
    known = _SMALL_PREFIXES.get(shape)
    if known is not None:
        return known
    rows, dim = math.prod(shape[:-1]), shape[-1]
    plan = ChunkPlan(rows, dim, resolve_chunk_rows(None, dim, _F32.itemsize))
    meta = layout.meta_bytes(CodecCalls.for_encoding("exact", {}).meta(_F32, shape, plan))
    prefix = np.frombuffer(layout.FIXED.pack(MAGIC, FORMAT_VERSION, 0, len(meta), 0, plan.n_chunks, 0) + meta,
                           dtype=np.uint8)
    if len(_SMALL_PREFIXES) >= _SMALL_CACHE_SIZE:
        _SMALL_PREFIXES.clear()
        _SMALL_METAS.clear()
    known = _SMALL_PREFIXES[shape] = (prefix, small_blob_plan(rows * dim))
    _SMALL_METAS[meta] = shape
    return known


def encode_small(array, threads):
    """The blob of a small C-contiguous native float32 ndarray with the default exact
    codec in one kernel call, or None (any other input, or a chunk not plainly coded).
    ``spherecodec.encode`` tries it first: every Python step here costs a few hundred
    ns when the caches are cold, so the common case (the builtin float32 dtype object,
    ``threads`` None or checked, a shape seen before) takes the fewest."""
    if type(array) is not np.ndarray:
        return None
    shape = array.shape
    if not shape or not 0 < array.size < SMALL_BLOB_VALUES:
        return None
    dtype = array.dtype
    if (dtype is not _F32 and dtype != _F32) or not array.flags.c_contiguous:
        return None
    if threads is not None and (type(threads) is not int or threads < 1):
        resolve_threads(threads)  # numpy integers pass; anything else raises, as in the pipeline
    known = _SMALL_PREFIXES.get(shape)
    prefix, plan = known if known is not None else _small_prefix(shape)
    return encode_small_blob(array.reshape(-1).view(_U32), prefix, plan)


def decode_small(blob, threads):
    """``decode`` of a small default exact blob (``bytes``) in one kernel call, or None
    (any other blob, or one the kernel finds damaged: the general decoder says what is
    wrong). Only metadata the general path wrote or validated is taken (``_SMALL_METAS``,
    shapes of fewer than ``SMALL_BLOB_VALUES`` values: no allocation to guard).
    ``spherecodec.decode`` tries it first."""
    if len(blob) < layout.FIXED_HEADER_SIZE:
        return None
    magic, version, flags, meta_len, reserved, n_chunks, shared_len = layout.FIXED.unpack_from(blob, 0)
    if magic != MAGIC or version != FORMAT_VERSION or flags or reserved or n_chunks != 1 or shared_len:
        return None
    index_at = layout.FIXED_HEADER_SIZE + meta_len
    shape = _SMALL_METAS.get(blob[layout.FIXED_HEADER_SIZE:index_at])
    if shape is None:
        return None
    if threads is not None and (type(threads) is not int or threads < 1):
        resolve_threads(threads)
    result = np.empty(shape, dtype=_F32)
    if decode_small_blob(np.frombuffer(blob, dtype=_U8), index_at, result.reshape(-1).view(_U32)):
        return result
    return None


def _remember_small(header):
    """After the general decoder read ``header``: if it may be a small default exact blob,
    cache its shape's header (its metadata then takes the small path when it matches)."""
    if (header.n_chunks == 1 and header.dtype == _F32 and header.shape and header.shape not in _SMALL_PREFIXES
            and header.rows * header.dim < SMALL_BLOB_VALUES and header.meta["codec"] == "exact"
            and not header.shared.size):
        _small_prefix(header.shape)


class Header:
    """A parsed, validated container header; ``chunk(i)`` gives payload bytes."""

    def __init__(self, blob):
        try:
            view = memoryview(blob).cast("B")
        except TypeError:
            raise TypeError(f"blob must be bytes-like, not {type(blob).__name__}") from None
        self.blob = np.frombuffer(view, dtype=np.uint8)
        size = self.blob.size
        if size < layout.FIXED_HEADER_SIZE:
            if bytes(view[:4]) != MAGIC[: min(4, size)]:
                raise CorruptBlobError("not a spherecodec blob (bad magic)")
            raise TruncatedBlobError(
                f"blob of {size} bytes is shorter than the {layout.FIXED_HEADER_SIZE}-byte header")
        magic, version, flags, meta_len, reserved, n_chunks, shared_len = layout.FIXED.unpack_from(view, 0)
        if magic != MAGIC:
            raise CorruptBlobError("not a spherecodec blob (bad magic)")
        if version == 0:
            # no spherecodec ever wrote version 0: zero-filled or cut-off bytes, not a newer format
            raise CorruptBlobError("damaged blob: the header after the magic is zero (format version 0 "
                                   "was never written); the blob was truncated or overwritten")
        if version != FORMAT_VERSION:
            raise UnsupportedError(
                f"format version {version} is not supported (this build reads version {FORMAT_VERSION}; "
                "a newer spherecodec may read it)")
        if flags != 0 or reserved != 0:
            raise UnsupportedError(f"header flags {flags:#x}/{reserved:#x} are not supported")
        if meta_len > layout.MAX_META:
            raise CorruptBlobError(f"metadata length {meta_len} exceeds {layout.MAX_META}")
        meta_start = layout.FIXED_HEADER_SIZE
        index_start = meta_start + meta_len + shared_len
        # compare before multiplying by the entry size, so no huge count reaches an allocation
        if index_start > size or n_chunks > (size - index_start) // layout.INDEX_ENTRY_SIZE:
            raise TruncatedBlobError("blob ends inside its header")
        index_end = index_start + n_chunks * layout.INDEX_ENTRY_SIZE
        if index_end + layout.CHECKSUM.size > size:
            raise TruncatedBlobError("blob ends inside its header")
        (expected,) = layout.CHECKSUM.unpack_from(view, index_end)
        if checksum(view[:index_end]) != expected:
            raise CorruptBlobError("header checksum mismatch")
        try:
            meta = json.loads(bytes(view[meta_start:meta_start + meta_len]))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise CorruptBlobError("metadata is not valid JSON") from None
        self._check_meta(meta)
        self.meta = meta
        self.n_chunks = n_chunks
        self.shared = self.blob[meta_start + meta_len:index_start]
        index = np.frombuffer(view[index_start:index_end], dtype=layout.INDEX_DTYPE)
        self.lengths = index["len"].astype(np.uint64)
        self.checksums = index["sum"].astype(np.uint64)
        self.data_start = index_end + layout.CHECKSUM.size
        self.plan = ChunkPlan(self.rows, self.dim, self.chunk_rows)
        if n_chunks != self.plan.n_chunks:
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
        #: chunks whose checksum ``chunk`` has seen hold; with ``check_ahead`` > 1 it checks
        #: that many chunks from the one asked in one call (``decode``, whose workers ask
        #: for them in order), under ``_check_lock``
        self.checked = np.zeros(n_chunks, dtype=bool)
        self.check_ahead = 1
        self._check_lock = threading.Lock()
        self.calls = CodecCalls.for_blob(meta["codec"], meta["params"], self.shared, self.dtype, self.dim)
        self.codec, self.state = self.calls.codec, self.calls.state
        #: values a chunk holds when ``decode_coded_chunks`` takes its plainly coded ones, else 0
        self.one_call_values = (min(self.chunk_rows, self.rows) * self.dim
                                if decodes_in_one_call(self.codec, self.dtype) else 0)
        self.streaming = self.nbytes >= STREAMING_FROM  # outputs larger than the caches
        self.budget = ALLOCATION_SLACK + self.calls.max_expansion * size
        if self.nbytes > self.budget:
            self.budget += self._dense_chunk_budget()
        if self.nbytes > self.budget:
            raise CorruptBlobError(
                f"header announces {self.nbytes} decoded bytes, more than this {size}-byte blob can hold")

    def _dense_chunk_budget(self):
        """What the codec's dense chunks (``Codec.dense_chunk_modes``: the exact codec's
        constant, sparse and trailing-zero chunks) add to the decoded bytes a blob may
        announce. Each counts only once its checksum holds, so that damage cannot buy an
        allocation."""
        modes = self.codec.dense_chunk_modes
        if not modes or not self.n_chunks:
            return 0.0
        starts = self.offsets[:-1][self.lengths > 0]
        dense = np.flatnonzero(np.isin(self.blob[starts], modes))
        extra = 0.0
        base = self.calls.max_expansion
        for i in np.flatnonzero(self.lengths > 0)[dense]:
            bound = self.codec.chunk_expansion(int(self.blob[self.offsets[i]]), self.state)
            if bound > base:
                self.chunk(i)  # raises CorruptBlobError on a checksum mismatch
                extra += (bound - base) * (int(self.lengths[i]) + layout.INDEX_ENTRY_SIZE)
        return extra

    def _check_meta(self, meta):
        if not isinstance(meta, dict):
            raise CorruptBlobError("metadata is not a JSON object")
        for key in layout.META_KEYS:
            if key not in meta:
                raise CorruptBlobError(f"metadata lacks {key!r}")
        if meta["dtype"] not in layout.DTYPES:
            raise UnsupportedError(f"dtype {meta['dtype']!r} is not supported")
        shape = meta["shape"]
        ints = [meta["rows"], meta["dim"], meta["chunk_rows"]] + (shape if isinstance(shape, list) else [])
        if (not isinstance(shape, list) or len(shape) > layout.MAX_NDIM
                or not all(type(v) is int and 0 <= v < 1 << 62 for v in ints)):
            raise CorruptBlobError("metadata shape fields are not non-negative integers")
        if meta["chunk_rows"] < 1:
            raise CorruptBlobError("chunk_rows must be positive")
        if not isinstance(meta["params"], dict) or not isinstance(meta["codec"], str):
            raise CorruptBlobError("metadata codec fields have the wrong type")
        self.dtype = np.dtype(meta["dtype"])
        self.shape = tuple(shape)
        self.rows, self.dim, self.chunk_rows = meta["rows"], meta["dim"], meta["chunk_rows"]
        expect_rows = 1 if len(shape) < 2 else math.prod(shape[:-1])
        expect_dim = 1 if not shape else shape[-1]
        if self.rows * self.dim != math.prod(shape) or (
                (self.rows, self.dim) != (expect_rows, expect_dim)):
            raise CorruptBlobError(f"rows x dim = {self.rows} x {self.dim} do not match shape {shape}")
        # numpy refuses even an empty shape whose non-zero extents overflow its index type
        # (e.g. [0, 2**61]): no encoder wrote one, and np.empty would raise a bare ValueError
        if math.prod(v for v in shape if v) * self.dtype.itemsize >= 1 << 63:
            raise CorruptBlobError(f"shape {shape} is larger than any array")
        self.nbytes = self.rows * self.dim * self.dtype.itemsize

    def chunk(self, i):
        """Payload bytes of chunk ``i`` as a uint8 array, checksum verified."""
        payload = self.blob[self.offsets[i]:self.offsets[i + 1]]
        if self.checked[i]:
            return payload
        if self.check_ahead > 1:
            # XXH64 runs 3-4x faster on several buffers side by side (kernels.checksum).
            # With threads, the worker that first needs a chunk of the next few checks them
            # all (``decode_chunk_into``: the others decode meanwhile)
            with self._check_lock:
                if not self.checked[i]:
                    end = min(i + self.check_ahead, self.n_chunks)
                    many = aot.kernel("xxh64_many", xxh64_many)
                    sums = many(self.blob, self.offsets[i:end], self.offsets[i + 1:end + 1], VECTOR_HASH)
                    bad = np.flatnonzero(sums != self.checksums[i:end])
                    if bad.size:
                        raise CorruptBlobError(f"checksum mismatch in chunk {i + int(bad[0])}")
                    self.checked[i:end] = True
            return payload
        elif aot.kernel("xxh64", xxh64)(payload) != self.checksums[i]:
            raise CorruptBlobError(f"checksum mismatch in chunk {i}")
        return payload

    def decode_chunk_into(self, i, out_rows):
        """Decode chunk ``i`` into ``out_rows`` (its rows of the output)."""
        if self.check_ahead > 1 and not self.checked[i] and self._check_lock.locked():
            # another worker is checking the next few chunks, most likely this one among
            # them: decode meanwhile, then take its verdict, rather than wait idle (with two
            # threads in step, that wait came back every few chunks). The kernels take any
            # bytes safely (the fuzz corpus reseals its damage); a damaged chunk still
            # reports its checksum, not what the damage did to its decoding
            try:
                self._decode_chunk(i, self.blob[self.offsets[i]:self.offsets[i + 1]], out_rows)
            finally:
                self.chunk(i)
            return
        self._decode_chunk(i, self.chunk(i), out_rows)

    def _decode_chunk(self, i, payload, out_rows):
        # a plainly coded exact float32 chunk in one kernel call, any other by its codec
        if self.one_call_values and decode_coded_chunks(self.blob, self.offsets, self.checksums, i, i + 1,
                                                        self.one_call_values, out_rows.reshape(-1).view(_U32),
                                                        verify=False, streaming=self.streaming) > i:
            return
        self.calls.decode_chunk(i, payload, out_rows)


def decode(blob, *, threads=None, out=None, try_small=True):
    """Decompress a blob (see ``spherecodec.decode``); ``try_small=False``: the caller
    already tried ``decode_small``."""
    if try_small and out is None and type(blob) is bytes:
        result = decode_small(blob, threads)
        if result is not None:
            return result
    header = Header(blob)
    _remember_small(header)
    threads = resolve_threads(threads)
    if out is None:
        result = reusable_array(header.shape, header.dtype)  # pooled memory: no page faults
    else:
        if not isinstance(out, np.ndarray) or out.shape != header.shape or out.dtype != header.dtype:
            raise ValueError(f"out must be an ndarray of shape {header.shape} and dtype {header.dtype}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("out must be C-contiguous and writeable")
        result = out
    if header.n_chunks == 1:  # small input: no scheduler, the chunk in this thread
        try:
            header.decode_chunk_into(0, result.reshape(header.rows, header.dim))
        finally:
            release_scratch()
        return result
    header.check_ahead = CHECK_MANY  # the chunks are taken in order: check their sums a few at a time
    if header.one_call_values:
        _decode_in_runs(header, result, threads)
        return result
    with Workers(threads) as workers:
        decode_chunks(header, result.reshape(header.rows, header.dim), range(header.n_chunks), workers)
    return result


def chunk_runs(n_chunks, threads, run=CHECK_MANY):
    """Runs ``(first, stop)`` of consecutive chunks covering ``0 .. n_chunks - 1`` for
    ``threads`` workers taking them in turn: one run for one thread; else runs of ``run``
    chunks (the checksum kernel checks that many side by side) until fewer than
    ``threads * run`` chunks are left, which go in runs of half as many, and so on down to
    one chunk, so that the workers finish together (halving from ``2 * threads * run``
    left measured 1.71-1.98x threads=1 on 30 chunks, from ``threads * run`` 1.94-2.02x)."""
    if threads <= 1:
        return [(0, n_chunks)]
    runs = []
    first = 0
    while first < n_chunks:
        size = run
        while size > 1 and n_chunks - first < threads * size:
            size //= 2
        runs.append((first, min(first + size, n_chunks)))
        first = runs[-1][1]
    return runs


def _decode_in_runs(header, result, threads):
    """Decode the chunks of a blob that ``decodes_in_one_call`` takes into ``result``: each
    run of ``chunk_runs`` in one kernel call (with threads, a kernel call per chunk left
    the Python around it, under the GIL, 1-1.5 ms of a 9 ms decode of 30 chunks); a chunk
    the kernel leaves (another mode, or damaged) by the general path, which decodes it or
    raises."""
    flat = result.reshape(-1).view(_U32)
    rows = result.reshape(header.rows, header.dim)
    per_chunk = header.one_call_values
    runs = chunk_runs(header.n_chunks, threads)

    def decode_run(k):
        i, stop = runs[k]
        while i < stop:
            i = decode_coded_chunks(header.blob, header.offsets, header.checksums, i, stop, per_chunk,
                                    flat[i * per_chunk:stop * per_chunk], streaming=header.streaming)
            if i < stop:
                lo, hi = header.plan.bounds(i)
                header.decode_chunk_into(i, rows[lo:hi])
                i += 1

    with Workers(threads) as workers:
        workers.run(range(len(runs)), decode_run)


def decode_rows(blob, start, stop):
    """Rows ``[start, stop)`` of a blob's 2-D row view, decoding only their chunks."""
    header = Header(blob)
    if len(header.shape) < 2:
        raise ValueError("decode_rows needs a blob of an array with at least 2 dimensions")
    start, stop, _ = slice(start, stop).indices(header.rows)
    stop = max(start, stop)
    result = reusable_array((stop - start, header.dim), header.dtype)
    if stop == start or header.dim == 0:
        return result
    # chunk_rows may exceed rows (a small array, a huge chunk_rows): size scratch by what exists
    block = np.empty((min(header.chunk_rows, header.rows), header.dim), dtype=header.dtype)
    try:
        for i in header.plan.chunks_of(start, stop):
            lo, hi = header.plan.bounds(i)
            header.decode_chunk_into(i, block[:hi - lo])
            a, b = max(start, lo), min(stop, hi)
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
