"""The in-memory blob as a sink of the chunk pipeline (``container.encode``'s result).

Small arrays (under ``LARGE_BLOB_BYTES``), and any array where the CPython bytes API is
missing or the blob cannot be reserved, keep their payloads and join them behind the
header at the end (``pybytes.join``). Large arrays are written straight into their blob
(``pybytes.BlobWriter``), sized for the input before the chunks are coded: each payload is
copied into place as soon as the chunks before it are coded, by the thread that completed
them, and its buffer recycled at once (docs/design.md, "Memory and page faults").
"""

import threading

from . import aot
from .kernels.memory import copy_bytes
from .pipeline import Sink
from .pybytes import BlobWriter, join

#: arrays of this many bytes or more are written straight into their blob (BlobWriter)
LARGE_BLOB_BYTES = 8 << 20
#: with threads, the calling thread faults in the blob's pages this far ahead of the
#: payloads placed in it (see MemorySink.ahead)
POPULATE_AHEAD = 4 << 20


class MemorySink(Sink):
    """Collects a blob in memory; ``finish`` returns it as ``bytes``.

    The size of the rows being coded decides between joining the payloads at the end and
    writing them into a ``BlobWriter`` of about that size as they come.
    """

    def __init__(self):
        self.writer = None
        self.keeps_payloads = True
        self._parts = []

    def begin(self, index):
        if not BlobWriter.available or index.raw_bytes < LARGE_BLOB_BYTES:
            return
        # the header's size is known but for what the codec settles while coding: if it
        # changes, the payloads move once at the end
        self.start = len(index.header())
        try:
            self.writer = BlobWriter(self.start + index.raw_bytes + len(index.lengths))
        except MemoryError:
            return  # no room to reserve: join at the end
        self.keeps_payloads = False
        self._populated = self.start
        self._copying = 0  # puts and page population in flight: the blob may not move
        self._growing = False
        self._cond = threading.Condition()

    def room(self, end):
        if self.writer is None or self.start + end <= self.writer.capacity:
            return
        # resizing moves the buffer: only once no copy is writing into it
        with self._cond:
            self._growing = True
            while self._copying:
                self._cond.wait()
            try:
                self.writer.reserve(self.start + end)
            finally:
                self._growing = False

    def ahead(self, end):
        """Fault in the blob's pages up to ``POPULATE_AHEAD`` bytes past ``end`` from the
        calling thread, so that the copies into them take no page faults.

        On these VMs a 2 MiB page fault taken in a pool thread cost 5-6 ms now and then,
        and never in the calling thread (0.2 ms); measured over 25 interleaved pairs,
        threads=2 went from 1.57-1.69x threads=1 to 1.77-1.94x. Alone, a thread takes its
        faults in its copies (populating first measured 3-5% slower), so the pipeline
        calls this only with threads.
        """
        if self.writer is None:
            return
        with self._cond:
            target = min(self.start + end + POPULATE_AHEAD, self.writer.capacity)
            if target <= self._populated or self._growing:
                return
            first, self._populated = self._populated, target
            self._copying += 1
        try:
            self.writer.populate(first, target)
        finally:
            with self._cond:
                self._copying -= 1
                self._cond.notify_all()

    def put(self, first, pos, payloads):
        if self.writer is None:
            self._parts.extend(payloads)
            return
        with self._cond:
            self._copying += 1
            array = self.writer.array
        try:
            pos += self.start
            copy = aot.checked("copy_bytes", copy_bytes)
            for data in payloads:
                copy(array, pos, data, 0, data.size)  # nogil, unlike a numpy copy
                pos += data.size
        finally:
            with self._cond:
                self._copying -= 1
                self._cond.notify_all()

    def finish(self, index):
        header = index.header()
        if self.writer is None:
            return join([header] + self._parts)
        if len(header) != self.start:
            self.writer.move(self.start, len(header), index.data_size)
        self.writer.write(0, header)
        return self.writer.finish(len(header) + index.data_size)

    def discard(self):
        self._parts = []
        if self.writer is not None:
            self.writer.discard()
