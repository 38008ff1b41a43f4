"""A ``bytes`` object filled in place: the CPython bytes trick, isolated here.

Why: ``encode`` returns ``bytes``. Building it the ordinary way (payloads, then
``b"".join``) writes every byte twice and faults in a fresh buffer page by page (measured:
31 ms of a 94 ms exact encode of 61 MB, most of it page faults). So the blob is created
empty, ``PyBytes_FromStringAndSize(NULL, n)`` as C extensions do, advised onto huge pages
(``pages.advise_huge``), filled in place before anyone sees it, and cut to size at the end
with ``_PyBytes_Resize`` (as zlib and python-zstandard do; a shrinking realloc of a large
block remaps pages rather than copying them).

How: through ``ctypes.pythonapi``, on raw object pointers. A bytes object may only be
resized while nothing else refers to it, so ``BlobWriter`` holds it without a Python
reference until ``finish`` hands it over (or ``discard`` frees it).

Fallback: where that API is missing (not CPython), ``BlobWriter.available`` is False; the
chunk pipeline then keeps the payloads and ``join`` is a plain ``b"".join``. The bytes are
the same either way.
"""

import numpy as np

from . import pages

try:
    import ctypes

    _raw_new = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ssize_t)(
        ("PyBytes_FromStringAndSize", ctypes.pythonapi))
    _raw_data = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)(("PyBytes_AsString", ctypes.pythonapi))
    _raw_resize = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.c_ssize_t)(
        ("_PyBytes_Resize", ctypes.pythonapi))
    _raw_decref = ctypes.PYFUNCTYPE(None, ctypes.c_void_p)(("Py_DecRef", ctypes.pythonapi))
except (ImportError, AttributeError):  # not CPython
    _raw_new = None

#: joins of this many bytes or more are filled in place
JOIN_IN_PLACE_BYTES = 8 << 20


class BlobWriter:
    """A bytes object of ``capacity`` bytes filled in place: ``write`` pieces at any offset
    (it grows when needed), ``finish(size)`` returns it cut to ``size``; ``discard`` frees
    it. ``array`` is a uint8 view of its storage (a new one after it grows).
    ``BlobWriter.available`` is False where the CPython API it needs is missing."""

    available = _raw_new is not None

    def __init__(self, capacity):
        self._ptr = ctypes.c_void_p(_raw_new(None, max(int(capacity), 1)))
        self.capacity = max(int(capacity), 1)
        self._view()

    def _view(self):
        address = _raw_data(self._ptr)
        pages.advise_huge(address, self.capacity)
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
        them (``pages.populate_write``)."""
        start, end = max(start, 0), min(end, self.capacity)
        if end > start:
            pages.populate_write(_raw_data(self._ptr) + start, end - start)

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


def join(parts):
    """``b"".join(parts)`` (bytes or uint8 arrays), filled in place on huge pages when large."""
    total = sum(len(p) for p in parts)
    if total < JOIN_IN_PLACE_BYTES or not BlobWriter.available:
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
