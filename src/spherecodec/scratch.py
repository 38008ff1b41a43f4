"""Per-thread scratch arrays, reused across the chunks of an encode or decode call.

A fresh large temporary costs a page fault per 4 KiB page the first time it is written,
on every chunk: measured on an 18 MB sphere encode, ~5,300 faults and ~12 ms of system
time per call (a quarter of the encode). Codecs take their chunk-sized temporaries from
here instead. An array from ``scratch`` is valid until the same thread asks for the same
name again: never return one to the caller or keep it past the chunk.
``container.encode``/``decode`` call ``release`` when they finish: a thread keeps its
arrays for the next call while they take at most ``RETAIN_LIMIT`` bytes (64 MiB), and
worker threads free theirs when they end; ``release(0)`` frees the calling thread's.
"""

import math
import mmap
import os
import threading
import weakref

import numpy as np

_local = threading.local()
#: scratch bytes a thread keeps between calls: fresh temporaries cost page faults on every
#: call (measured: sphere encode of 10,623 x 384 rows at 410-417 MB/s when dropped after each
#: call, 472-562 MB/s when kept)
RETAIN_LIMIT = 64 << 20
_HUGE_FROM = 256 << 10
_HUGE_ALLOC = 4 << 20


def scratch(name, shape, dtype):
    """A C-contiguous array of ``shape`` and ``dtype`` with undefined contents, reused by
    this thread for ``name`` (its storage grows to the largest size asked for)."""
    arrays = _local.__dict__.setdefault("arrays", {})
    count = math.prod(shape) if isinstance(shape, tuple) else int(shape)
    buf = arrays.get((name, dtype))
    if buf is None or buf.size < count:
        itemsize = np.dtype(dtype).itemsize
        # numpy backs arrays of 4 MiB or more with transparent huge pages (where the
        # kernel offers them): one fault per 2 MiB instead of per 4 KiB on first use
        if count * itemsize >= _HUGE_FROM:
            count_alloc = max(count, -(-_HUGE_ALLOC // itemsize))
        else:
            count_alloc = count
        buf = np.empty(count_alloc, dtype=dtype)
        arrays[(name, dtype)] = buf
    return buf[:count].reshape(shape)


def release(keep=None):
    """Drop this thread's scratch arrays, unless together they take at most ``keep`` bytes
    (default ``RETAIN_LIMIT``; 0 drops them all)."""
    keep = RETAIN_LIMIT if keep is None else keep
    arrays = _local.__dict__.get("arrays")
    if arrays and sum(a.nbytes for a in arrays.values()) > keep:
        del _local.arrays


# --- recycled chunk buffers -------------------------------------------------------------
#
# A chunk's payload must live until the container has joined every chunk into the blob,
# so it cannot be per-thread scratch. Payload buffers come from ``take_buffer`` and go
# back with ``recycle`` once joined: without this, every encode call maps fresh memory for
# its payloads and pays a page fault per 4 KiB (measured: 50 ms instead of 38 ms for an
# 18 MB sphere encode when malloc does not happen to reuse it). At most POOL_LIMIT bytes
# are kept.

POOL_LIMIT = 64 << 20
_pool_lock = threading.Lock()
_pool = []  # free buffers, smallest first
_issued = weakref.WeakValueDictionary()  # id -> buffer handed out by take_buffer


def take_buffer(nbytes):
    """A uint8 array of at least ``nbytes`` (undefined contents) for a chunk's payload."""
    nbytes = int(nbytes)
    with _pool_lock:
        for i, buf in enumerate(_pool):
            if buf.size >= nbytes:
                del _pool[i]
                break
        else:
            buf = np.empty(max(nbytes, 1), dtype=np.uint8)
        _issued[id(buf)] = buf
    return buf


def recycle(arrays):
    """Return the buffers behind ``arrays`` (payloads, or buffers from ``take_buffer``) to
    the pool. The caller guarantees that nothing uses them any more."""
    with _pool_lock:
        kept = sum(b.size for b in _pool)
        for a in arrays:
            buf = a if getattr(a, "base", None) is None else a.base
            if _issued.get(id(buf)) is not buf:
                continue  # not a pooled buffer (bytes, or a codec's own array)
            del _issued[id(buf)]
            if kept + buf.size <= POOL_LIMIT and not any(b is buf for b in _pool):
                _pool.append(buf)
                kept += buf.size
        _pool.sort(key=lambda b: b.size)


# --- the blob -----------------------------------------------------------------------------
#
# The blob is a fresh bytes object: writing it costs a page fault per 4 KiB (measured: 31 ms
# of a 94 ms exact encode of 61 MB, most of it faults). So it is created empty
# (PyBytes_FromStringAndSize(NULL, n), as C extensions do), advised onto transparent huge
# pages (12,451 faults became 699, 31 ms 11 ms) and filled in place before anyone sees it.
# ``BlobWriter`` goes further: the container copies each chunk's payload into it as soon as
# the chunks before it are coded, while the threads code the next ones, and shrinks it to
# size at the end (``_PyBytes_Resize``, as zlib and python-zstandard do; a shrinking realloc
# of a large block remaps pages rather than copying them). Where that API is missing,
# ``b"".join``.

_JOIN_IN_PLACE_BYTES = 8 << 20
try:
    import ctypes

    # on raw object pointers: a bytes object can only be resized while nothing else refers
    # to it, so BlobWriter holds it without a Python reference
    _raw_new = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ssize_t)(
        ("PyBytes_FromStringAndSize", ctypes.pythonapi))
    _raw_data = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)(("PyBytes_AsString", ctypes.pythonapi))
    _raw_resize = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.c_ssize_t)(
        ("_PyBytes_Resize", ctypes.pythonapi))
    _raw_decref = ctypes.PYFUNCTYPE(None, ctypes.c_void_p)(("Py_DecRef", ctypes.pythonapi))
except (ImportError, AttributeError):  # not CPython
    _raw_new = None


def join(parts):
    """``b"".join(parts)`` (bytes or uint8 arrays), on huge pages when it is large."""
    total = sum(len(p) for p in parts)
    if total < _JOIN_IN_PLACE_BYTES or not BlobWriter.available:
        return b"".join(parts)
    writer = BlobWriter(total)
    try:
        pos = 0
        for part in parts:
            writer.write(pos, part)
            pos += len(part)
    except BaseException:
        writer.discard()
        raise
    return writer.finish(total)


class BlobWriter:
    """A bytes object of ``capacity`` bytes filled in place: ``write`` pieces at any offset
    (it grows when needed), ``finish(size)`` returns it cut to ``size``; ``discard`` frees
    it. ``BlobWriter.available`` is False where the CPython API it needs is missing."""

    available = _raw_new is not None

    def __init__(self, capacity):
        self._ptr = ctypes.c_void_p(_raw_new(None, max(int(capacity), 1)))
        self.capacity = max(int(capacity), 1)
        self._view()

    def _view(self):
        address = _raw_data(self._ptr)
        _huge_pages(address, self.capacity)
        self.array = np.ctypeslib.as_array(ctypes.cast(address, ctypes.POINTER(ctypes.c_uint8)),
                                           shape=(self.capacity,))

    def _resize(self, size):
        self.array = None
        if _raw_resize(ctypes.byref(self._ptr), size) != 0:  # raises MemoryError itself
            raise MemoryError(f"cannot resize the blob to {size} bytes")
        self.capacity = size

    def reserve(self, size):
        """Grow to hold at least ``size`` bytes (``array`` is then a new view)."""
        if size > self.capacity:
            self._resize(max(size, 2 * self.capacity))
            self._view()

    def populate(self, start, end):
        """Fault in the pages of bytes ``[start, end)`` in this thread, without writing to
        them (Linux 5.14 and later; elsewhere nothing happens and writes fault them in)."""
        if _madvise is None or not _populate_works[0]:
            return
        address = _raw_data(self._ptr)
        first = (address + max(start, 0)) & ~(_PAGE - 1)
        last = address + min(end, self.capacity)
        if last > first and _madvise(first, last - first, _MADV_POPULATE_WRITE) != 0:
            _populate_works[0] = False  # an older kernel: leave the faults to the writes

    def write(self, pos, data):
        """Copy ``data`` (bytes or a uint8 array) to offset ``pos``."""
        data = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
        end = pos + data.size
        self.reserve(end)
        self.array[pos:end] = data

    def move(self, src, dst, size):
        """Move ``size`` bytes from offset ``src`` to ``dst`` (the ranges may overlap)."""
        if dst + size > self.capacity:
            self._resize(dst + size)
            self._view()
        self.array[dst:dst + size] = self.array[src:src + size].copy()

    def finish(self, size):
        """The bytes object, ``size`` bytes long; the writer is spent."""
        self._resize(size)
        # a new reference from the pointer, then the writer's own one given up
        blob = ctypes.cast(self._ptr, ctypes.py_object).value
        _raw_decref(self._ptr)
        self._ptr = None
        return blob

    def discard(self):
        """Free the bytes object (after an error)."""
        self.array = None
        if self._ptr is not None and self._ptr.value:
            _raw_decref(self._ptr)
        self._ptr = None


_HUGE = 2 << 20
_PAGE = mmap.PAGESIZE
_MADV_HUGEPAGE = 14  # Linux's values; other systems number their advice differently
_MADV_POPULATE_WRITE = 23
_populate_works = [True]
try:
    if os.uname().sysname != "Linux":
        raise OSError("MADV_HUGEPAGE is Linux's")
    _madvise = ctypes.CDLL(None, use_errno=True).madvise
    _madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    _madvise.restype = ctypes.c_int
except (NameError, OSError, AttributeError):
    _madvise = None


def _huge_pages(address, size):
    # ask for transparent huge pages on the 2 MiB-aligned part (a hint, ignored where
    # unsupported): one fault per 2 MiB instead of per 4 KiB
    start = (address + _HUGE - 1) & ~(_HUGE - 1)
    end = (address + size) & ~(_HUGE - 1)
    if _madvise is not None and end > start:
        _madvise(start, end - start, _MADV_HUGEPAGE)
