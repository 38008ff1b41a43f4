"""Streaming reads and writes of container files, chunk by chunk, in bounded memory.

``spherecodec.encode`` builds a blob in memory. The functions here write the very same
bytes (the container format of :mod:`spherecodec.container`, spec in docs/format.md) to a
file while reading the input a batch of row chunks at a time, so an array larger than RAM
(a memory-mapped ``.npy``) compresses and decompresses with a few tens of MB of working
memory. The chunk index precedes the payloads, so the writer reserves the header, streams
the payloads behind it, then seeks back to write the header, index and CRC.

Memory-mapped pages that were consumed are handed back to the kernel
(``madvise(MADV_DONTNEED)``), so the resident set stays at one batch even though the
whole file is mapped.

A codec with a whole-array ``prepare`` hook (one that fits a model on all rows) still gets
every row at once, as it does in ``spherecodec.encode``; streaming then bounds only what
the container itself holds.
"""

import mmap
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from collections import deque
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

from . import container
from .scratch import release as release_scratch
from .codecs import Codec
from .container import decoded_shape, resolve_chunk_rows
from .errors import SpherecodecError

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
#: raw bytes one worker task handles (whole chunks), so tiny chunks do not cost a task each
TASK_BYTES = 1 << 20
#: seconds before a progress bar appears: short runs never draw one
PROGRESS_DELAY = 1.0
_COPY_BYTES = 8 << 20
_PAGE = mmap.PAGESIZE
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class NpyFormatError(SpherecodecError):
    """A file given as ``.npy`` input is not a readable, complete ``.npy`` array."""


class _MappedFile:
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
        if self._map is None or not hasattr(self._map, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
            return
        start = max(0, int(start))
        stop = min(self.size, int(stop))
        if stop <= start:
            return
        aligned = start - start % _PAGE
        self._map.madvise(mmap.MADV_DONTNEED, aligned, stop - aligned)

    def close(self):
        """Close the map and the file (the map stays open while arrays still view it)."""
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass  # numpy views still use it; it closes when they are collected
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _native(dtype):
    dtype = np.dtype(dtype)
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def _row_view(array):
    """The rows-over-last-axis 2-D view of ``array``, without copying when it can."""
    if array.ndim == 0:
        return array.reshape(1, 1)
    if array.ndim == 1:
        return array.reshape(1, -1)
    if array.ndim == 2:
        return array
    return array.reshape(-1, array.shape[-1])  # a view for C-ordered input


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


def _progress(total, desc, enabled):
    if not enabled:
        return nullcontext(None)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, delay=PROGRESS_DELAY,
                leave=False, dynamic_ncols=True)


@contextmanager
def _pool(threads):
    try:
        with ThreadPoolExecutor(max_workers=threads) if threads > 1 else nullcontext(None) as pool:
            yield pool
    finally:
        release_scratch()  # the calling thread's (threads=1 codes chunks in it)


def _tasks(n_chunks, chunk_rows, dim, itemsize, threads):
    """Groups of whole chunks ``(first, stop)`` and how many groups may be in flight."""
    per_chunk = max(1, chunk_rows * max(1, dim) * itemsize)
    group = max(1, TASK_BYTES // per_chunk)
    window = max(2 * threads, BATCH_BYTES // (group * per_chunk))
    return [(a, min(n_chunks, a + group)) for a in range(0, n_chunks, group)], window


def _ordered(pool, fn, items, window):
    """``fn`` over ``items`` in a pool, results in order, at most ``window`` in flight."""
    if pool is None:
        for item in items:
            yield fn(item)
        return
    pending = deque()
    it = iter(items)
    for item in it:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            break
    while pending:
        result = pending.popleft().result()
        for item in it:
            pending.append(pool.submit(fn, item))
            break
        yield result


def _encode_into(f, array, codec, threads, chunk_rows, params, progress, release):
    """Write the blob of ``array`` to the open file ``f`` (at position 0); return its size."""
    codec = container.make_codec(codec, params)
    threads = container.resolve_threads(threads)
    codec.check_dtype(array.dtype)
    native = _native(array.dtype)
    rows = _row_view(array)
    if type(codec).prepare is not Codec.prepare or type(codec).transform_rows is not Codec.transform_rows:
        # the codec may fit something on all rows: give it them at once, as encode does. For
        # C-ordered native input (any .npy we write) this is a view of the memory map, so a
        # prepare that fits nothing (exact level 1) reads nothing; the pages it did read go back
        rows = codec.transform_rows(np.ascontiguousarray(rows, dtype=native))
        state = codec.prepare(rows)
        release(0, None)
    else:
        state = codec.prepare(rows)
    out_dtype = codec.decoded_dtype(native)
    n_rows, dim = rows.shape
    shape = decoded_shape(array.shape, dim)
    itemsize = rows.dtype.itemsize
    chunk_rows = resolve_chunk_rows(chunk_rows, dim, itemsize)
    n_chunks = -(-n_rows // chunk_rows) if dim else 0
    lengths = np.zeros(n_chunks, dtype=np.uint64)
    sums = np.zeros(n_chunks, dtype=np.uint64)
    # reserve the header as it stands now; a codec may know its final config and shared
    # section only after the last chunk, which is handled below
    meta = container.blob_meta(codec, out_dtype, shape, n_rows, dim, chunk_rows, state)
    reserved = len(container.pack_header(meta, codec.shared_bytes(state), lengths, sums))
    f.seek(reserved)
    tasks, window = _tasks(n_chunks, chunk_rows, dim, itemsize, threads)
    row_dtype = _native(rows.dtype)

    def encode_group(task):
        out = []
        for i in range(*task):
            block = np.ascontiguousarray(rows[i * chunk_rows:(i + 1) * chunk_rows], dtype=row_dtype)
            payload = memoryview(codec.encode_chunk(block, state)).cast("B")
            out.append((payload, container.checksum(payload)))
        return task, out

    data_size = 0
    with _pool(threads) as pool, _progress(n_rows * dim * itemsize, "compress", progress) as bar:
        for (first, stop), results in _ordered(pool, encode_group, tasks, window):
            for i, (payload, digest) in zip(range(first, stop), results):
                f.write(payload)
                lengths[i] = len(payload)
                sums[i] = digest
                data_size += len(payload)
            lo, hi = first * chunk_rows, min(n_rows, stop * chunk_rows)
            release(lo, hi)
            if bar is not None:
                bar.update((hi - lo) * dim * itemsize)
    meta = container.blob_meta(codec, out_dtype, shape, n_rows, dim, chunk_rows, state)
    header = container.pack_header(meta, codec.shared_bytes(state), lengths, sums)
    if len(header) != reserved:
        _shift(f, reserved, reserved + data_size, len(header) - reserved)
    f.seek(0)
    f.write(header)
    return len(header) + data_size


@contextmanager
def _atomic_output(path):
    """An open binary file that replaces ``path`` only once the block ends without error."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent or ".")
    try:
        # mkstemp makes the file private; give it the mode a plain open() would
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w+b") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
    with _atomic_output(path) as f:
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
            from .errors import UnsupportedError

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
    with read_npy(src) as (array, release), _atomic_output(dst) as f:
        return _encode_into(f, array, codec, threads, chunk_rows, params, progress, release)


class BlobFile:
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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def info(self):
        """Header facts, as ``spherecodec.info`` gives them."""
        return container.info(self._mapped.buffer)

    def iter_blocks(self, *, threads=None):
        """Yield ``(first_row, rows)`` blocks of the 2-D row view, in order, each a new array."""
        h = self.header
        threads = container.resolve_threads(threads)
        cr = h.chunk_rows
        tasks, window = _tasks(h.n_chunks, cr, h.dim, h.dtype.itemsize, threads)

        def decode_group(task):
            first, stop = task
            lo, hi = first * cr, min(h.rows, stop * cr)
            block = np.empty((hi - lo, h.dim), dtype=h.dtype)
            for i in range(first, stop):
                h.decode_chunk_into(i, block[(i - first) * cr:(i - first + 1) * cr])
            return task, lo, block

        with _pool(threads) as pool:
            for (first, stop), lo, block in _ordered(pool, decode_group, tasks, window):
                self._mapped.release(h.offsets[first], h.offsets[stop])
                yield lo, block

    def read(self, *, threads=None):
        """The whole array (it must fit in memory)."""
        out = np.empty(self.shape, dtype=self.dtype)
        rows = out.reshape(self.header.rows, self.header.dim)
        for lo, block in self.iter_blocks(threads=threads):
            rows[lo:lo + len(block)] = block
        return out

    def read_rows(self, start, stop):
        """Rows ``[start, stop)``, as ``spherecodec.decode_rows`` gives them."""
        return container.decode_rows(self._mapped.buffer, start, stop)

    def to_npy(self, path, *, threads=None, progress=False):
        """Write the decoded array to the ``.npy`` file ``path``, streaming; return its size."""
        h = self.header
        with _atomic_output(path) as f:
            header = {"descr": np.lib.format.dtype_to_descr(h.dtype), "fortran_order": False,
                      "shape": tuple(h.shape)}
            try:
                np.lib.format.write_array_header_1_0(f, header)
            except ValueError:  # a header over 64 KiB needs format 2.0
                np.lib.format.write_array_header_2_0(f, header)
            with _progress(h.nbytes, "decompress", progress) as bar:
                for _, block in self.iter_blocks(threads=threads):
                    f.write(memoryview(block).cast("B"))
                    if bar is not None:
                        bar.update(block.nbytes)
            return f.tell()


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
