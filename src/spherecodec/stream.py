"""Streaming reads and writes of container files, chunk by chunk, in bounded memory.

``spherecodec.encode`` builds a blob in memory. The functions here write the very same
bytes (the container format of :mod:`spherecodec.container`, spec in docs/format.md) to a
file while reading the input a batch of row chunks at a time, so an array larger than RAM
(a memory-mapped ``.npy``) compresses and decompresses with a few tens of MB of working
memory. The chunk index precedes the payloads, so the writer reserves the header, streams
the payloads behind it, then writes the header, index and checksum in front. It is the
chunk pipeline of :mod:`spherecodec.pipeline` (the one ``spherecodec.encode`` runs) with a
file as its sink (``FileSink``).

Memory-mapped pages that were consumed are handed back to the kernel
(``pages.give_back``), so the resident set stays at one batch even though the
whole file is mapped.

A codec with a whole-array ``prepare`` hook (one that fits a model on all rows) still gets
every row at once, as it does in ``spherecodec.encode``; streaming then bounds only what
the container itself holds.
"""

import mmap
import os
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

from . import container, pages
from .atomic import atomic_output
from .errors import SpherecodecError, UnsupportedError
from .pipeline import Sink, Workers, decode_chunks, encode_array, from_torch, row_view
from .scratch import scratch

__all__ = [
    "BlobFile",
    "encode_to_file",
    "compress_npy",
    "decompress_npy",
    "read_npy",
    "file_info",
    "NpyFormatError",
    "BATCH_BYTES",
]

#: raw (decoded) bytes in flight at once; bounds the working memory
BATCH_BYTES = 8 << 20
#: seconds before a progress bar appears: short runs never draw one
PROGRESS_DELAY = 1.0
_COPY_BYTES = 8 << 20


class NpyFormatError(SpherecodecError):
    """A file given as ``.npy`` input is not a readable, complete ``.npy`` array."""


class _Closing:
    """A context manager that calls ``close()`` at the end of the block."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _MappedFile(_Closing):
    """A read-only memory map of a whole file whose used pages can be given back."""

    def __init__(self, path):
        self.path = Path(path)
        self._file = open(self.path, "rb")
        try:
            self.size = os.fstat(self._file.fileno()).st_size
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if self.size else None
        except BaseException:
            self._file.close()
            raise
        self.buffer = self._map if self._map is not None else b""

    def release(self, start, stop):
        """Drop the resident pages of bytes ``[start, stop)``; later reads fault them back in."""
        if self._map is not None:
            pages.give_back(self._map, max(0, int(start)), min(self.size, int(stop)))

    def close(self):
        """Close the map and the file (the map stays open while arrays still view it)."""
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass  # numpy views still use it; it closes when they are collected
        self._file.close()


_seek_lock = threading.Lock()


def _write_at(fd, pos, data):
    """Write all of ``data`` (bytes or a C-contiguous array) at offset ``pos`` of the file
    ``fd``; threads may write disjoint ranges at once (``os.pwrite`` moves no shared file
    position; where it is missing, a lock serialises seek and write)."""
    view = memoryview(data).cast("B")
    while view.nbytes:
        if hasattr(os, "pwrite"):
            n = os.pwrite(fd, view, pos)
        else:
            with _seek_lock:
                os.lseek(fd, pos, os.SEEK_SET)
                n = os.write(fd, view)
        view = view[n:]
        pos += n


def _shift(f, start, stop, delta):
    """Move file bytes ``[start, stop)`` by ``delta`` (either sign) in bounded memory."""
    if delta > 0:
        pos = stop
        while pos > start:
            n = min(_COPY_BYTES, pos - start)
            pos -= n
            f.seek(pos)
            data = f.read(n)
            f.seek(pos + delta)
            f.write(data)
    elif delta < 0:
        pos = start
        while pos < stop:
            n = min(_COPY_BYTES, stop - pos)
            f.seek(pos)
            data = f.read(n)
            f.seek(pos + delta)
            f.write(data)
            pos += n
        f.truncate(stop + delta)
    f.flush()


def _progress(total, desc, enabled):
    if not enabled:
        return nullcontext(None)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, delay=PROGRESS_DELAY,
                leave=False, dynamic_ncols=True)


class FileSink(Sink):
    """The chunk pipeline's sink for a container file: the open binary file ``f``, written
    from offset 0. Payloads go behind room left for the header as it stands at the start,
    written in place by the threads that complete them (``os.pwrite``); ``finish`` writes
    the header, moving the payloads first if the codec changed its size while coding."""

    def __init__(self, f):
        self.f = f
        self.fd = f.fileno()

    def begin(self, index):
        self.window_bytes = BATCH_BYTES  # bounded memory: a batch of chunks in flight
        self.start = len(index.header())

    def put(self, first, pos, payloads):
        pos += self.start
        for data in payloads:
            _write_at(self.fd, pos, data)
            pos += data.size

    def finish(self, index):
        header = index.header()
        if len(header) != self.start:
            _shift(self.f, self.start, self.start + index.data_size, len(header) - self.start)
        _write_at(self.fd, 0, header)
        return len(header) + index.data_size


def _encode_into(f, array, codec, threads, chunk_rows, params, progress, release):
    """Write the blob of ``array`` to the open file ``f``; return its size. ``release(lo,
    hi)`` gives back the input pages of rows ``[lo, hi)`` (``hi=None``: to the end)."""
    array = np.asarray(from_torch(array))
    rows = row_view(array)
    row_bytes = rows.shape[1] * rows.dtype.itemsize
    lock = threading.Lock()
    with _progress(rows.shape[0] * row_bytes, "compress", progress) as bar:

        def rows_done(lo, hi):
            release(lo, hi)
            if bar is not None and hi is not None:
                with lock:
                    bar.update((hi - lo) * row_bytes)

        return encode_array(array, codec, params, FileSink(f), threads=threads, chunk_rows=chunk_rows,
                            on_rows_done=rows_done)


def encode_to_file(array, path, codec="exact", *, threads=None, chunk_rows=None, progress=False, **params):
    """Compress ``array`` into the container file ``path``, a batch of chunks at a time.

    The file holds exactly the bytes ``spherecodec.encode(array, codec, chunk_rows=...,
    **params)`` returns. ``array`` may be a memory map larger than RAM.

    Parameters
    ----------
    array : array_like
        As for ``spherecodec.encode``; any memory layout or byte order.
    path : str or os.PathLike
        Output file, replaced only when the whole blob is written.
    codec, threads, chunk_rows, **params
        As for ``spherecodec.encode``.
    progress : bool
        Draw a progress bar on stderr for runs longer than a second.

    Returns
    -------
    int
        Bytes written.
    """
    array = np.asanyarray(array)
    with atomic_output(path) as f:
        return _encode_into(f, array, codec, threads, chunk_rows, params, progress, lambda a, b: None)


def _npy_header(f):
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    except (ValueError, EOFError, SyntaxError, TypeError) as exc:
        raise NpyFormatError(f"not a .npy file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    return shape, fortran, np.dtype(dtype), f.tell()


@contextmanager
def read_npy(path):
    """Memory-map the ``.npy`` file ``path``: yields ``(array, release)``.

    ``release(start_row, stop_row)`` gives back the resident pages of those rows (of the
    rows-over-last-axis view; ``stop_row=None`` means all). Raises NpyFormatError for a
    file that is not a complete ``.npy`` array, UnsupportedError for object arrays.
    """
    mapped = _MappedFile(path)
    try:
        with open(path, "rb") as f:
            shape, fortran, dtype, offset = _npy_header(f)
        if dtype.hasobject:
            raise UnsupportedError(f"{path}: object arrays are not supported (dtype {dtype})")
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if mapped.size < offset + nbytes:
            raise NpyFormatError(
                f"truncated .npy: {mapped.size - offset} data bytes of the {nbytes} its header announces")
        if nbytes == 0:
            array = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
        else:
            array = np.ndarray(shape, dtype=dtype, buffer=mapped.buffer, offset=offset,
                               order="F" if fortran else "C")
        row_bytes = (shape[-1] if len(shape) else 1) * dtype.itemsize

        def release(start, stop):
            if fortran and len(shape) > 1:
                return  # a row block spans the whole file; nothing local to give back
            stop = mapped.size if stop is None else offset + stop * row_bytes
            mapped.release(offset + start * row_bytes, stop)

        yield array, release
    finally:
        array = None
        mapped.close()


def compress_npy(src, dst, codec="exact", *, threads=None, chunk_rows=None, progress=False, **params):
    """Compress the ``.npy`` file ``src`` into the container file ``dst``, streaming.

    Memory use stays near one batch of chunks (:data:`BATCH_BYTES`) whatever the file
    size, except for codecs that fit a model on all rows at once. Returns bytes written.
    """
    with read_npy(src) as (array, release), atomic_output(dst) as f:
        return _encode_into(f, array, codec, threads, chunk_rows, params, progress, release)


class BlobFile(_Closing):
    """A container file, memory-mapped: header validated, chunks decoded on demand.

    Use as a context manager. ``info()``, ``iter_blocks()``, ``read_rows()`` and
    ``to_npy()`` read only the chunks they need and give their pages back afterwards.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._mapped = _MappedFile(path)
        try:
            self.header = container.Header(self._mapped.buffer)
        except BaseException:
            self._mapped.close()
            raise
        self.shape = self.header.shape
        self.dtype = self.header.dtype

    def close(self):
        """Release the memory map."""
        self.header = None
        self._mapped.close()

    def info(self):
        """Header facts, as ``spherecodec.info`` gives them."""
        return container.info(self._mapped.buffer)

    def _batches(self):
        """Runs of whole chunks of about ``BATCH_BYTES`` decoded bytes, with their rows."""
        h = self.header
        for chunks in h.plan.batches(BATCH_BYTES, h.dim * h.dtype.itemsize):
            yield chunks, h.plan.run_bounds(chunks.start, chunks.stop)

    def _decode(self, rows, chunks, workers, first_row):
        h = self.header
        decode_chunks(h, rows, chunks, workers, first_row)
        self._mapped.release(h.offsets[chunks.start], h.offsets[chunks.stop])

    def iter_blocks(self, *, threads=None):
        """Yield ``(first_row, rows)`` blocks of the 2-D row view, in order, each a new array."""
        h = self.header
        with Workers(threads) as workers:
            for chunks, (lo, hi) in self._batches():
                block = np.empty((hi - lo, h.dim), dtype=h.dtype)
                self._decode(block, chunks, workers, lo)
                yield lo, block

    def read(self, *, threads=None):
        """The whole array (it must fit in memory)."""
        out = np.empty(self.shape, dtype=self.dtype)
        rows = out.reshape(self.header.rows, self.header.dim)
        with Workers(threads) as workers:
            for chunks, _ in self._batches():
                self._decode(rows, chunks, workers, 0)
        return out

    def read_rows(self, start, stop):
        """Rows ``[start, stop)``, as ``spherecodec.decode_rows`` gives them."""
        return container.decode_rows(self._mapped.buffer, start, stop)

    def to_npy(self, path, *, threads=None, progress=False):
        """Write the decoded array to the ``.npy`` file ``path``, streaming; return its size."""
        h = self.header
        with atomic_output(path) as f:
            header = {"descr": np.lib.format.dtype_to_descr(h.dtype), "fortran_order": False,
                      "shape": tuple(h.shape)}
            try:
                np.lib.format.write_array_header_1_0(f, header)
            except ValueError:  # a header over 64 KiB needs format 2.0
                np.lib.format.write_array_header_2_0(f, header)
            f.flush()
            start = f.tell()
            fd = f.fileno()
            row_bytes = h.dim * h.dtype.itemsize
            lock = threading.Lock()
            with _progress(h.nbytes, "decompress", progress) as bar, Workers(threads) as workers:

                def decode(i):
                    # each chunk straight to its place in the file, from the thread that
                    # decoded it, through this thread's scratch: memory stays a chunk a thread
                    lo, hi = h.plan.bounds(i)
                    block = scratch("stream.to_npy", (hi - lo, h.dim), h.dtype)
                    h.decode_chunk_into(i, block)
                    _write_at(fd, start + lo * row_bytes, block)
                    self._mapped.release(h.offsets[i], h.offsets[i + 1])
                    if bar is not None:
                        with lock:
                            bar.update(block.nbytes)

                workers.run(range(h.n_chunks), decode)
            return start + h.nbytes


def decompress_npy(src, dst, *, threads=None, progress=False):
    """Decompress the container file ``src`` into the ``.npy`` file ``dst``, streaming.

    Memory use stays near one batch of chunks. Returns bytes written.
    """
    with BlobFile(src) as blob:
        return blob.to_npy(dst, threads=threads, progress=progress)


def file_info(path):
    """Header facts of the container file ``path`` (as ``spherecodec.info``), reading only its header."""
    with BlobFile(path) as blob:
        return blob.info()
