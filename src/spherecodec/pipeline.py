"""The chunk pipeline: the one way an array becomes coded chunks, and chunks become rows.

Every writer of container bytes (``container.encode``'s in-memory blob, ``stream``'s
files) runs the same steps, here::

    array --row_view--> rows --CodecCalls.prepare--> rows to chunk --ChunkPlan--> chunks
          --Workers.run (threads over chunks)--> coded chunks, in chunk order --> Sink

* ``ChunkPlan``: rows per chunk, the chunk count (``layout.chunk_count``) and each chunk's
  rows; readers (``container.Header``) build the same plan from a header.
* ``CodecCalls``: every call into a codec (set-up, ``prepare``, ``shared_bytes``,
  ``load_shared``, ``encode_chunk``, ``decode_chunk``, dtype checks) and the one place
  that turns a decoder's low-level exception into a ``CorruptBlobError``.
* ``Workers``: the one scheduler. The calling thread and ``threads - 1`` pool threads take
  chunks in turn; whoever completes a run of consecutive chunks hands the run to the
  consumer itself (design: docs/design.md, "Threads").
* ``Sink``: where the coded chunks of ``encode_array`` go (the in-memory blob:
  ``blobsink.MemorySink``; a file: ``stream.FileSink``).
"""

import functools
import itertools
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import ml_dtypes
import numpy as np

from . import layout
from .codecs import NO_STATE, Codec, get_codec
from .errors import CorruptBlobError, SpherecodecError, UnsupportedError
from .scratch import recycle
from .scratch import release as release_scratch

#: raw bytes per chunk the default chunking aims at (measured: see docs/format.md, "Chunk size")
DEFAULT_CHUNK_BYTES = 2 << 20


# -- set-up ---------------------------------------------------------------------------------

def resolve_threads(threads):
    """Number of worker threads: ``None`` means every core."""
    if threads is None:
        return os.cpu_count() or 1
    if not isinstance(threads, (int, np.integer)) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, not {threads!r}")
    return int(threads)


def resolve_chunk_rows(chunk_rows, dim, itemsize):
    """Rows per chunk: ``chunk_rows`` checked, or the default of ``DEFAULT_CHUNK_BYTES``."""
    if chunk_rows is None:
        return max(1, DEFAULT_CHUNK_BYTES // max(1, dim * itemsize))
    if not isinstance(chunk_rows, (int, np.integer)) or isinstance(chunk_rows, bool) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, not {chunk_rows!r}")
    return int(chunk_rows)


def row_view(array):
    """``array`` as a 2-D array of rows over its last axis, a view where numpy can make one
    (any memory layout and byte order: chunks are made contiguous and native one by one)."""
    if array.ndim == 0:
        return array.reshape(1, 1)
    if array.ndim == 1:
        return array.reshape(1, -1)
    if array.ndim == 2:
        return array
    # explicit row count: reshape(-1, 0) is ambiguous for arrays whose last axis is empty
    return array.reshape(int(np.prod(array.shape[:-1])), array.shape[-1])


def from_torch(array):
    """A torch tensor as a numpy array of its values without a copy where possible (moved
    to the CPU first, detached from autograd; bfloat16 as ``ml_dtypes.bfloat16``); anything
    else unchanged. torch is never imported here: a tensor means torch is loaded."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(array, torch.Tensor):
        return array
    tensor = array.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        # numpy has no bfloat16 of its own: reinterpret the 16-bit patterns as ml_dtypes'
        return tensor.contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    try:
        return tensor.numpy()
    except TypeError as exc:  # dtypes numpy cannot hold (complex32, float8, quantized)
        raise UnsupportedError(f"a torch tensor of dtype {tensor.dtype} cannot be compressed: {exc}") from None


def as_rows(array):
    """View ``array`` as a C-contiguous 2-D array of rows over its last axis."""
    return np.ascontiguousarray(row_view(np.asarray(array)))


@functools.lru_cache(maxsize=64)
def dtype_name(dtype):
    """``np.dtype(dtype).name``, cached: numpy computes it in Python (~8 us a call)."""
    return np.dtype(dtype).name


def native_dtype(dtype):
    """``dtype`` in this machine's byte order: codecs read the bits natively."""
    dtype = np.dtype(dtype)
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def decoded_shape(shape, dim):
    """Shape decode returns for an input of ``shape`` whose rows became ``dim`` wide."""
    if not shape:
        return ()
    return tuple(shape[:-1]) + (dim,)


def make_codec(codec, params):
    """A Codec instance from a name and parameters, or the instance itself."""
    if isinstance(codec, Codec):
        if params:
            raise TypeError("parameters go to the codec object, not to encode, when passing one")
        return codec
    if not isinstance(codec, str):
        raise TypeError(f"codec must be a name or a Codec, not {type(codec).__name__}")
    return get_codec(codec)(**params)


class ChunkPlan:
    """How ``rows`` rows of ``dim`` values are cut: ``chunk_rows`` rows per chunk (the last
    one shorter), ``n_chunks`` of them, coded and stored in row order."""

    def __init__(self, rows, dim, chunk_rows):
        self.rows, self.dim, self.chunk_rows = int(rows), int(dim), int(chunk_rows)
        self.n_chunks = layout.chunk_count(self.rows, self.dim, self.chunk_rows)

    def bounds(self, i):
        """Rows ``(lo, hi)`` of chunk ``i``."""
        lo = i * self.chunk_rows
        return lo, min(self.rows, lo + self.chunk_rows)

    def run_bounds(self, first, stop):
        """Rows ``(lo, hi)`` of chunks ``first .. stop - 1``."""
        return first * self.chunk_rows, min(self.rows, stop * self.chunk_rows)

    def chunks_of(self, start, stop):
        """The chunks holding rows ``[start, stop)`` (``0 <= start < stop <= rows``)."""
        return range(start // self.chunk_rows, (stop - 1) // self.chunk_rows + 1)

    def batches(self, nbytes, row_bytes):
        """Runs of whole chunks ``range(first, stop)`` of about ``nbytes`` raw bytes each."""
        per_chunk = max(1, self.chunk_rows * row_bytes)
        step = max(1, nbytes // per_chunk)
        return [range(a, min(self.n_chunks, a + step)) for a in range(0, self.n_chunks, step)]


# -- codec calls ------------------------------------------------------------------------------

#: what a decoder may raise on bytes it cannot make sense of, besides SpherecodecError
_LOW_LEVEL_ERRORS = (ValueError, IndexError, KeyError, TypeError, OverflowError)


@contextmanager
def blob_errors(what):
    """The one place a low-level exception raised while reading a blob's bytes becomes a
    ``CorruptBlobError`` (``what`` says where); SpherecodecErrors pass unchanged."""
    try:
        yield
    except SpherecodecError:
        raise
    except _LOW_LEVEL_ERRORS as exc:
        raise CorruptBlobError(f"{what}: {exc}") from None


class CodecCalls:
    """Every call the pipeline makes into a codec, with the state it fitted or loaded, so
    that a change of the codec contract (codecs/base.py) changes this class only.

    The codec object holds only its configuration; what ``prepare`` fits (or ``load_shared``
    reads back) is ``self.state``, handed to every later call.
    """

    def __init__(self, codec, state=NO_STATE):
        self.codec = codec
        self.name = codec.name
        self.state = state

    @classmethod
    def for_encoding(cls, codec, params):
        """Calls into the codec ``codec`` (a name with ``params``, or a Codec object)."""
        return cls(make_codec(codec, params))

    @classmethod
    def for_blob(cls, name, params, shared, dtype, dim):
        """Calls into the codec a blob names, its shared section loaded (errors in it are
        the blob's: CorruptBlobError)."""
        codec = get_codec(name).from_config(params)
        codec.check_dtype(dtype)
        with blob_errors(f"shared section of codec {codec.name!r} is invalid"):
            state = codec.load_shared(shared, dtype, dim)
        return cls(codec, state)

    @property
    def max_expansion(self):
        """Upper bound of decoded bytes per payload byte of a blob with this state."""
        return self.codec.expansion_bound(self.state)

    def check_dtype(self, dtype):
        """UnsupportedError unless the codec accepts ``dtype``."""
        self.codec.check_dtype(dtype)

    def decoded_dtype(self, dtype):
        """The dtype decode returns for input of ``dtype``."""
        return self.codec.decoded_dtype(dtype)

    def prepare(self, rows):
        """Fit the codec's state on all rows; return the rows to cut into chunks.

        ``rows`` may be any 2-D view (a memory map, strided, foreign byte order). A codec
        that keeps the base class's ``transform_rows`` and ``prepare`` (which fit nothing)
        gets its chunks from ``rows`` one at a time, so nothing is copied up front. Any
        other gets all rows at once, C-contiguous and native.
        """
        codec = type(self.codec)
        if codec.prepare is Codec.prepare and codec.transform_rows is Codec.transform_rows:
            self.state = self.codec.prepare(rows)
            return rows
        rows = self.codec.transform_rows(np.ascontiguousarray(rows, dtype=native_dtype(rows.dtype)))
        self.state = self.codec.prepare(rows)
        return rows

    def meta(self, out_dtype, shape, plan):
        """The blob's metadata: the codec's config with what fitting settled."""
        return {
            "codec": self.codec.name,
            "params": self.codec.stored_config(self.state),
            "dtype": dtype_name(out_dtype),
            "shape": [int(x) for x in shape],
            "rows": plan.rows,
            "dim": plan.dim,
            "chunk_rows": plan.chunk_rows,
        }

    def shared_bytes(self):
        """The shared section of the state (ask after the chunks: the exact model drops
        its encode-only context cache here)."""
        return self.codec.shared_bytes(self.state)

    def encode_chunk(self, rows):
        """The payload of a C-contiguous native block of rows (bytes or a uint8 array that
        the caller owns: codecs/base.py)."""
        return self.codec.encode_chunk(rows, self.state)

    def decode_chunk(self, i, payload, out):
        """Decode chunk ``i``'s ``payload`` into ``out``; CorruptBlobError if it does not."""
        with blob_errors(f"chunk {i} does not decode"):
            self.codec.decode_chunk(payload, out, self.state)

    def decode_codes_chunk(self, i, payload, n_rows):
        """The codes of chunk ``i``'s ``n_rows`` rows (codecs that search on their codes:
        ``spherecodec.search``); CorruptBlobError if they do not decode."""
        with blob_errors(f"chunk {i} does not decode"):
            return self.codec.decode_codes_chunk(payload, n_rows, self.state)


# -- the scheduler ----------------------------------------------------------------------------

#: most helper threads kept at once (started only as runs ask for them): enough for two
#: calls at every core on any machine; a run's helpers that find the pool busy queue, and
#: are cancelled if its calling thread has coded every chunk before they start
MAX_HELPERS = max(64, 2 * (os.cpu_count() or 1))
#: scratch bytes a kept helper thread keeps after a run (the exact codec's decode: ~0.3 MiB;
#: a sphere run's ~25 MiB goes, as when the helpers ended with their call: the helpers of
#: a big machine must not hold gigabytes between calls)
HELPER_SCRATCH = 4 << 20
_helpers = None
_helpers_lock = threading.Lock()


def _helper_pool():
    """The helper threads, kept from one run to the next (started on demand, up to
    ``MAX_HELPERS``): starting one cost 0.1-0.6 ms here, with its join, of a 61 MB
    decode's 8 ms at threads=2."""
    global _helpers
    if _helpers is None:
        with _helpers_lock:
            if _helpers is None:
                _helpers = ThreadPoolExecutor(max_workers=MAX_HELPERS, thread_name_prefix="spherecodec")
    return _helpers


def _forget_helpers():
    # a fork's child has none of its parent's threads (and maybe a lock a thread held)
    global _helpers, _helpers_lock
    _helpers = None
    _helpers_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forget_helpers)


class Workers:
    """The one scheduler: ``threads`` threads over the chunks of one or more runs.

    ``run(chunks, work, consumer)`` calls ``work(i)`` once for every chunk ``i`` of
    ``chunks``, from the calling thread and up to ``threads - 1`` pool threads, which take
    chunks in turn. With a ``consumer``, results reach it in chunk order: under a lock,
    ``consumer.take(i, result)`` for each chunk of a run of consecutive completed chunks
    (cheap bookkeeping), then, outside the lock, ``consumer.put(tokens)`` with what the
    takes returned, from the thread that completed the run: copies run beside the coding,
    on the cores, and no thread only copies. ``consumer.window`` (None or a chunk count)
    bounds how far coding may run ahead of the last chunk taken; ``consumer.ahead()``, if
    the consumer has it, is called by the calling thread before each chunk it codes when
    threads > 1 (see ``blobsink``: page faults belong in the calling thread).

    Use as a context manager: the calling thread's scratch (``scratch.release``) is
    trimmed when the block ends. The pool threads are the process's (``_helper_pool``),
    kept between calls; each frees its scratch after a run unless it is small
    (``HELPER_SCRATCH``).
    """

    def __init__(self, threads):
        self.threads = resolve_threads(threads)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        release_scratch()  # the calling thread's (the helpers free theirs after each run)

    def run(self, chunks, work, consumer=None):
        """Run ``work`` over ``chunks`` (a range), feeding ``consumer`` in order."""
        threads = min(self.threads, len(chunks))
        run = _Run(chunks, work, consumer, threads)
        if threads <= 1:
            run.loop()
        else:
            pool = _helper_pool()
            helpers = [pool.submit(run.helper_loop) for _ in range(threads - 1)]
            try:
                run.loop()
            finally:
                # waits for every helper that started; one still queued (the pool busy with
                # other calls' helpers) is cancelled: the chunks are all done or taken
                failed_here = [f.exception() for f in helpers if not f.cancel()]
            for exc in failed_here:
                if exc is not None:
                    raise exc
        if consumer is not None and run.taken != len(chunks):  # every worker returned
            raise RuntimeError(f"{run.taken} of {len(chunks)} chunks placed")


class _Run:
    """One ``Workers.run``: the chunks' shared counter and the in-order hand-over."""

    def __init__(self, chunks, work, consumer, threads):
        self.chunks = chunks
        self.work = work
        self.consumer = consumer
        self.window = getattr(consumer, "window", None)
        self.ahead = getattr(consumer, "ahead", None) if threads > 1 else None
        self.caller = threading.get_ident()
        self.next = itertools.count()  # atomic under the GIL
        self.failed = threading.Event()
        self.taken = 0  # chunks handed to the consumer: the next one to hand over
        self._done = {}  # k -> result, completed before the chunks ahead of it
        self._cond = threading.Condition()

    def helper_loop(self):
        """``loop`` in a helper thread, which then frees its scratch beyond ``HELPER_SCRATCH``."""
        try:
            self.loop()
        finally:
            release_scratch(HELPER_SCRATCH)

    def loop(self):
        """Take chunks until none is left (or a worker failed)."""
        n = len(self.chunks)
        try:
            for k in self.next:
                if k >= n or self.failed.is_set():
                    return
                if self.window is not None and k >= self.taken + self.window:
                    with self._cond:  # bounded memory: wait for the chunks before it
                        while k >= self.taken + self.window and not self.failed.is_set():
                            self._cond.wait()
                    if self.failed.is_set():
                        return
                if self.ahead is not None and threading.get_ident() == self.caller:
                    self.ahead()
                result = self.work(self.chunks[k])
                if self.consumer is not None:
                    self._hand_over(k, result)
        except BaseException:
            self.failed.set()
            with self._cond:
                self._cond.notify_all()
            raise

    def _hand_over(self, k, result):
        tokens = []
        with self._cond:
            self._done[k] = result
            while self.taken in self._done:
                tokens.append(self.consumer.take(self.chunks[self.taken], self._done.pop(self.taken)))
                self.taken += 1
            if tokens and self.window is not None:
                self._cond.notify_all()
        if tokens:
            self.consumer.put(tokens)


# -- encoding ---------------------------------------------------------------------------------

class ChunkIndex:
    """What the header of a blob records: metadata, shared section, per-chunk payload
    lengths and XXH64 checksums, and the payloads' total size; ``raw_bytes`` is the size
    of the rows being coded."""

    def __init__(self, meta, shared, n_chunks, raw_bytes):
        self.meta = meta
        self.shared = bytes(shared)
        self.raw_bytes = raw_bytes
        self.lengths = np.zeros(n_chunks, dtype=np.uint64)
        self.checksums = np.zeros(n_chunks, dtype=np.uint64)
        self.data_size = 0

    def header(self):
        """The container bytes before the payloads (``layout.pack_header``)."""
        return layout.pack_header(self.meta, self.shared, self.lengths, self.checksums)


class Sink:
    """Where ``encode_array`` puts the coded chunks of one array (the interface; the base
    class does nothing). Positions are byte offsets into the payload area, which follows
    the header. Calls, in order:

    * ``begin(index)`` once, before any chunk: ``index`` (a ``ChunkIndex``) as the header
      would be now, every length 0; its ``header()`` size is a good guess of the final one;
    * ``room(end)`` in chunk order, under the pipeline's lock, as each chunk's place is
      assigned: make room for payload bytes up to ``end`` (may wait for puts in flight);
    * ``put(first, pos, payloads)`` for runs of consecutive chunks ``first, first + 1, ...``
      whose payloads (flat uint8 arrays, readable until ``put`` returns) start at
      ``pos``: from whichever thread completed the run, outside the lock, so runs may arrive
      concurrently and out of order; they never overlap;
    * ``ahead(end)``, optionally: the calling thread, before coding a chunk (threads > 1),
      may prepare storage past ``end``, the end of the payloads placed so far;
    * ``finish(index)`` once all chunks are put: ``index`` is final; returns the result;
    * ``discard()`` instead of ``finish`` after an error.

    ``window_bytes`` (None: no bound) bounds the raw input bytes coded ahead of the last
    chunk put, and so the payloads held at once. A sink that sets ``keeps_payloads`` may
    keep the arrays ``put`` gets until ``finish`` or ``discard`` returns.
    """

    window_bytes = None
    keeps_payloads = False

    def begin(self, index):
        """Before the first chunk."""

    def room(self, end):
        """Make room for payload bytes up to ``end``."""

    def put(self, first, pos, payloads):
        """Store a run of consecutive payloads at ``pos``."""
        raise NotImplementedError

    def finish(self, index):
        """After the last chunk: the result."""
        raise NotImplementedError

    def discard(self):
        """After an error."""


class _Encoding:
    """The consumer of ``Workers.run`` that assigns each coded chunk its place and index
    entry, in chunk order, and hands runs of payloads to the sink."""

    def __init__(self, sink, index, plan, row_bytes, threads, on_rows_done):
        self.sink = sink
        self.index = index
        self.plan = plan
        self.end = 0
        self.kept = []
        self.on_rows_done = on_rows_done
        if sink.window_bytes is not None:
            self.window = max(2 * threads, sink.window_bytes // max(1, plan.chunk_rows * row_bytes))
        if hasattr(sink, "ahead"):
            self.ahead = lambda: sink.ahead(self.end)

    def take(self, i, coded):
        payload, data, digest = coded
        pos, self.end = self.end, self.end + data.size
        self.sink.room(self.end)
        self.index.lengths[i] = data.size
        self.index.checksums[i] = digest
        return i, pos, payload, data

    def put(self, tokens):
        first, pos = tokens[0][:2]
        self.sink.put(first, pos, [data for _, _, _, data in tokens])
        payloads = [payload for _, _, payload, _ in tokens]
        if self.sink.keeps_payloads:
            self.kept.extend(payloads)  # recycled after finish
        else:
            recycle(payloads)  # the codecs' pooled buffers (scratch.take_buffer)
        if self.on_rows_done is not None:
            self.on_rows_done(*self.plan.run_bounds(first, tokens[-1][0] + 1))


def payload_bytes(payload):
    """A payload (bytes, or an array as codecs return them) as a flat uint8 array."""
    if isinstance(payload, np.ndarray) and payload.dtype == np.uint8 and payload.ndim == 1:
        return payload
    return np.frombuffer(payload, dtype=np.uint8)


def float32_if_exact(array):
    """A float32 copy of the float ``array`` when float32 holds every one of its values
    exactly (NaNs included), else None; the one test of that for encode and search."""
    converted = array.astype(np.float32)
    if not np.array_equal(converted.astype(array.dtype), array, equal_nan=True):
        return None
    return converted


def losslessly_accepted(array, calls):
    """``array`` itself when the codec takes its dtype; else, for float input
    whose every value float32 holds exactly (float16 always; float64 from a Python list of
    float32 values), that float32 copy when the codec takes float32 (decode then returns
    float32). Anything else raises the codec's UnsupportedError, saying what to do."""
    dtype = native_dtype(array.dtype)
    try:
        calls.check_dtype(dtype)
        return array
    except UnsupportedError as refusal:
        float32 = np.dtype(np.float32)
        try:
            calls.check_dtype(float32)
        except UnsupportedError:
            raise refusal from None
        if dtype.kind != "f":
            raise UnsupportedError(f"{refusal}; convert the {dtype.name} input to float32 first") from None
        converted = float32_if_exact(array)
        if converted is None:
            raise UnsupportedError(f"{refusal}; the {dtype.name} input has values float32 cannot hold "
                                   "exactly: convert it with .astype(np.float32) to accept the rounding") from None
        return converted


def encode_array(array, codec, params, sink, *, threads=None, chunk_rows=None, on_rows_done=None):
    """Code ``array`` with ``codec`` (a name with ``params``, or a Codec) into ``sink``; return
    ``sink.finish``'s result. The one encode pipeline: every writer of container bytes calls it.

    ``on_rows_done(lo, hi)``, if given, is called once rows ``[lo, hi)`` of the 2-D row view
    are coded and put (from any thread); ``on_rows_done(0, None)`` means all rows, after a
    whole-array ``prepare`` read them.
    """
    calls = CodecCalls.for_encoding(codec, params)
    threads = resolve_threads(threads)
    array = np.asarray(from_torch(array))
    # byte order is the input's storage, not its type: codecs see native dtypes only (the
    # chunks are converted as they are cut, or all rows at once for a codec's prepare)
    array = losslessly_accepted(array, calls)
    in_dtype = native_dtype(array.dtype)
    view = row_view(array)
    rows = calls.prepare(view)
    if rows is not view and on_rows_done is not None:
        on_rows_done(0, None)  # prepare read every row: give their pages back
    out_dtype = calls.decoded_dtype(in_dtype)
    row_dtype = native_dtype(rows.dtype)
    n_rows, dim = rows.shape
    plan = ChunkPlan(n_rows, dim, resolve_chunk_rows(chunk_rows, dim, row_dtype.itemsize))
    shape = decoded_shape(array.shape, dim)

    def code(i):
        lo, hi = plan.bounds(i)
        payload = calls.encode_chunk(np.ascontiguousarray(rows[lo:hi], dtype=row_dtype))
        data = payload_bytes(payload)
        return payload, data, layout.checksum(data)

    # the header as it stands now; a codec may settle its config or shared section only
    # while coding, so both are read again at the end (the sink moves the payloads then)
    index = ChunkIndex(calls.meta(out_dtype, shape, plan), calls.shared_bytes(), plan.n_chunks,
                       n_rows * dim * row_dtype.itemsize)
    sink.begin(index)
    encoding = _Encoding(sink, index, plan, dim * row_dtype.itemsize, threads, on_rows_done)
    try:
        if plan.n_chunks == 1:  # small input: no scheduler, the chunk in this thread
            try:
                encoding.put([encoding.take(0, code(0))])
            finally:
                release_scratch()
        else:
            with Workers(threads) as workers:
                workers.run(range(plan.n_chunks), code, encoding)
        index.meta = calls.meta(out_dtype, shape, plan)
        index.shared = bytes(calls.shared_bytes())
        index.data_size = encoding.end
        return sink.finish(index)
    except BaseException:
        sink.discard()
        raise
    finally:
        recycle(encoding.kept)


# -- decoding ---------------------------------------------------------------------------------

def decode_chunks(header, rows, chunks, workers, first_row=0):
    """Decode ``chunks`` (a range) of the blob ``header`` (a ``container.Header``) describes
    into ``rows``, rows ``first_row ..`` of its 2-D row view, with ``workers``."""

    def decode(i):
        lo, hi = header.plan.bounds(i)
        header.decode_chunk_into(i, rows[lo - first_row:hi - first_row])

    workers.run(chunks, decode)
