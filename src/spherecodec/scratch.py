"""Per-thread scratch arrays, recycled payload buffers and reusable large outputs, reused
across chunks and calls.

A fresh large temporary costs a page fault per 4 KiB page the first time it is written,
on every chunk: measured on an 18 MB sphere encode, ~5,300 faults and ~12 ms of system
time per call (a quarter of the encode). Codecs take their chunk-sized temporaries from
here instead. An array from ``scratch`` is valid until the same thread asks for the same
name again: never return one to the caller or keep it past the chunk.
The chunk pipeline (``pipeline.Workers``) calls ``release`` when a call ends: a thread
keeps its arrays for the next call while they take at most ``RETAIN_LIMIT`` bytes
(64 MiB), the kept pool threads after each run while they take at most
``pipeline.HELPER_SCRATCH`` (4 MiB); ``release(0)`` frees the calling thread's.
Decoded arrays of 32 MiB or more (``reusable_array``) take memory that earlier ones
released, once nothing refers to it any more; from 16 MiB on they start 64-byte aligned.
"""

import ctypes
import math
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
# A chunk's payload must live until its sink has copied it (or joined every chunk into
# the blob), so it cannot be per-thread scratch. Payload buffers come from ``take_buffer``
# and go back with ``recycle`` once copied: without this, every encode call maps fresh memory for
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


# --- outputs the caller keeps -------------------------------------------------------------
#
# A decoded array is the caller's, yet its fresh memory costs a page fault (and the
# zeroing of a page) per 4 KiB or 2 MiB on first write. glibc's malloc reuses freed memory
# of up to 32 MiB by itself; from there on every allocation maps fresh pages. Measured on
# 40,000 x 384 float32 (61 MB), a decode into a fresh array took 1.33-1.49x the time of one
# into ``out=``, and with two threads the faults, which scale poorly, left the second
# thread little to gain. ``reusable_array`` takes such outputs from a pool of their own
# and gives the memory back once the array and every view of it are gone: the memory
# belongs to a ctypes object that only numpy holds (every view keeps it alive: numpy stops
# collapsing a view's base at a non-array), whose finalizer returns it. Smaller outputs
# stay with malloc (a pool there would change which memory malloc reuses for others).

#: outputs from this size on come from the output pool (glibc's largest mmap threshold)
REUSE_FROM = 32 << 20
#: outputs from this size on start at a 64-byte boundary (pooled or not), for the exact
#: decoder's streamed stores (``codecs.exact.STREAMING_FROM``)
ALIGNED_FROM = 16 << 20
#: released output memory kept for reuse, at most (a request takes a kept buffer of at
#: most 5/4 its size)
OUTPUT_POOL_LIMIT = 256 << 20
_outputs_lock = threading.Lock()
_outputs = []  # free output buffers


def _take_output(nbytes):
    with _outputs_lock:
        best = None  # by index: list.remove would compare arrays element by element
        for i, b in enumerate(_outputs):
            if nbytes <= b.size <= nbytes + nbytes // 4 and (best is None or b.size < _outputs[best].size):
                best = i
        if best is not None:
            return _outputs.pop(best)
    return _aligned_bytes(nbytes)


def _aligned_bytes(nbytes):
    # from a 64-byte boundary: the exact decoder streams its stores into such outputs
    # (codecs.exact.STREAMING_FROM), which takes aligned ones
    spare = np.empty(nbytes + 63, dtype=np.uint8)
    start = -spare.ctypes.data % 64
    return spare[start:start + nbytes]


def _give_back_output(buf):
    with _outputs_lock:
        _outputs.append(buf)
        while sum(b.size for b in _outputs) > OUTPUT_POOL_LIMIT:
            _outputs.pop(0)  # the longest kept


def release_outputs():
    """Free the released output memory kept for reuse (``reusable_array``)."""
    with _outputs_lock:
        _outputs.clear()


def reusable_array(shape, dtype):
    """A new C-contiguous array of ``shape`` and ``dtype`` (undefined contents) for the
    caller to keep, e.g. a decoded array. From ``REUSE_FROM`` bytes on its memory comes
    from the output pool and returns to it when neither the array nor any view of it, nor
    any buffer exported from them, remains (at most ``OUTPUT_POOL_LIMIT`` bytes are kept:
    ``release_outputs`` frees them). From ``ALIGNED_FROM`` bytes on it starts at a 64-byte
    boundary and does not own its data (``flags.owndata`` is False), as for any view."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < ALIGNED_FROM:
        return np.empty(shape, dtype=dtype)
    if nbytes < REUSE_FROM:  # malloc's memory, which it reuses by itself at these sizes
        return _aligned_bytes(nbytes).view(dtype).reshape(shape)
    buf = _take_output(nbytes)
    # sized by the buffer, not the request: ctypes makes a type per length, and the
    # pool's buffers come in few sizes
    owner = (ctypes.c_char * buf.size).from_buffer(buf)
    weakref.finalize(owner, _give_back_output, buf)
    return np.frombuffer(owner, dtype=dtype, count=nbytes // dtype.itemsize).reshape(shape)
