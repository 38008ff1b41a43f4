"""Page advice: transparent huge pages, populating pages ahead, giving mapped pages back.

On the machines measured here a page fault costs about 2 us, and filling a fresh buffer
takes one per 4 KiB page. Two Linux ``madvise`` calls help (elsewhere both do nothing, and
the writes take their faults as usual):

* ``advise_huge``: ``MADV_HUGEPAGE`` on the 2 MiB-aligned part of a buffer, so it faults
  in a 2 MiB page at a time (a 61 MB blob: 12,451 faults became 699, 31 ms became 11 ms);
* ``populate_write``: ``MADV_POPULATE_WRITE`` (Linux 5.14 and later) faults pages in
  from the calling thread without writing to them, so another thread's later copy into
  them takes no fault (why that matters: docs/design.md, "Threads");
* ``give_back``: ``MADV_DONTNEED`` on pages of a read-only file mapping already used, so
  a streamed file's resident set stays at a batch of chunks although all of it is mapped.
"""

import mmap
import os

PAGE = mmap.PAGESIZE
HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE = 14  # Linux's values; other systems number their advice differently
_MADV_POPULATE_WRITE = 23
_populate_works = [True]  # False once the kernel refused MADV_POPULATE_WRITE (before 5.14)
try:
    import ctypes

    if os.uname().sysname != "Linux":
        raise OSError("MADV_HUGEPAGE is Linux's")
    _madvise = ctypes.CDLL(None, use_errno=True).madvise
    _madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    _madvise.restype = ctypes.c_int
except (ImportError, OSError, AttributeError):  # no ctypes, or not Linux
    _madvise = None


def advise_huge(address, size):
    """Ask for transparent huge pages on the 2 MiB-aligned part of ``[address, address + size)``
    (a hint, ignored where unsupported)."""
    start = (address + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1)
    end = (address + size) & ~(HUGE_PAGE - 1)
    if _madvise is not None and end > start:
        _madvise(start, end - start, _MADV_HUGEPAGE)


def populate_write(address, size):
    """Fault in the pages of ``[address, address + size)`` in this thread without writing to
    them; where the kernel cannot, nothing happens (the writes fault them in)."""
    if _madvise is None or not _populate_works[0] or size <= 0:
        return
    first = address & ~(PAGE - 1)
    if _madvise(first, address + size - first, _MADV_POPULATE_WRITE) != 0:
        _populate_works[0] = False  # an older kernel: leave the faults to the writes


def populate_works():
    """False once the kernel refused ``MADV_POPULATE_WRITE`` (or where there is no madvise)."""
    return _madvise is not None and _populate_works[0]


def give_back(mapping, start, stop):
    """Drop the resident pages of bytes ``[start, stop)`` of the ``mmap.mmap`` ``mapping``
    (where ``madvise`` exists); later reads fault them back in from the file."""
    if stop <= start or not hasattr(mapping, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return
    aligned = start - start % PAGE
    mapping.madvise(mmap.MADV_DONTNEED, aligned, stop - aligned)
