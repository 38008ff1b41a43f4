"""The chunk pipeline (spherecodec.pipeline): plan, scheduler, sinks, codec calls."""

import os
import threading
import time

import numpy as np
import pytest

import spherecodec
from spherecodec import CorruptBlobError, UnsupportedError, layout, pipeline, stream
from spherecodec.pipeline import ChunkPlan, Sink, Workers, blob_errors, encode_array

SAMPLE = np.load(__import__("pathlib").Path(__file__).parent / "data" / "minilm-sentences-512.npy")


def test_chunk_plan_cuts_rows_into_whole_chunks():
    plan = ChunkPlan(100, 8, 16)
    assert plan.n_chunks == 7 == layout.chunk_count(100, 8, 16)
    assert [plan.bounds(i) for i in (0, 5, 6)] == [(0, 16), (80, 96), (96, 100)]
    assert list(plan.chunks_of(15, 17)) == [0, 1] and list(plan.chunks_of(96, 100)) == [6]
    assert plan.run_bounds(2, 7) == (32, 100)
    batches = plan.batches(40 * 8 * 4, 8 * 4)  # 40 rows' bytes: 2 chunks of 16 rows each
    assert [list(b) for b in batches] == [[0, 1], [2, 3], [4, 5], [6]]
    assert ChunkPlan(0, 8, 16).n_chunks == 0 and ChunkPlan(5, 0, 16).n_chunks == 0
    assert ChunkPlan(16, 3, 16).n_chunks == 1 and ChunkPlan(17, 3, 16).n_chunks == 2


class _Recorder:
    """A consumer that checks the in-order hand-over and how far coding runs ahead."""

    def __init__(self, window=None):
        if window is not None:
            self.window = window
        self.taken = []
        self.runs = []
        self.ahead_of_taken = 0
        self.lock = threading.Lock()

    def take(self, i, result):
        assert result == i * i
        self.taken.append(i)
        return i, threading.get_ident()

    def put(self, tokens):
        with self.lock:
            self.runs.append([i for i, _ in tokens])


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("window", [None, 3])
def test_workers_hand_chunks_over_in_order_within_the_window(threads, window):
    recorder = _Recorder(window)
    coding = set()
    most_at_once = [0]

    def work(i):
        with recorder.lock:  # chunks started ahead of the last one handed over
            recorder.ahead_of_taken = max(recorder.ahead_of_taken, i - len(recorder.taken))
            coding.add(threading.get_ident())
            most_at_once[0] = max(most_at_once[0], len(coding))
        # uneven work, so that chunks complete out of order
        np.sort(np.random.default_rng(i).random(2000 * (1 + (7 * i) % 5)))
        with recorder.lock:
            coding.discard(threading.get_ident())
        return i * i

    with Workers(threads) as workers:
        workers.run(range(40), work, recorder)
        workers.run(range(40, 45), work, recorder)  # the same pool, a second run
    assert recorder.taken == list(range(45))
    assert sorted(i for run in recorder.runs for i in run) == list(range(45))
    assert all(run == list(range(run[0], run[0] + len(run))) for run in recorder.runs)
    if window is not None:
        assert recorder.ahead_of_taken < window
    # the kept helpers may differ from run to run; never more than ``threads`` code at once
    assert most_at_once[0] <= threads


def test_the_calling_thread_is_one_of_the_workers():
    # chunks 0 and 1 each wait for the other: they finish only if two threads code at once,
    # and with threads=2 the second one can only be the calling thread
    both = threading.Barrier(2, timeout=30)
    coders = set()

    def work(i):
        coders.add(threading.get_ident())
        if i < 2:
            both.wait()
        return i * i

    with Workers(2) as workers:
        workers.run(range(10), work, _Recorder())
    assert threading.get_ident() in coders and len(coders) == 2


def test_helper_threads_are_kept_between_runs():
    helpers = set()

    def work(i):
        if threading.get_ident() != caller:
            helpers.add(threading.current_thread())
        time.sleep(0.002)  # long enough that a helper takes chunks
        return i * i

    caller = threading.get_ident()
    counts = []
    for _ in range(4):
        with Workers(2) as workers:
            workers.run(range(20), work, _Recorder())
        counts.append(threading.active_count())
    # every helper that coded is still there after its run ended, and runs start none
    assert helpers and all(t.is_alive() and t.name.startswith("spherecodec") for t in helpers)
    assert counts[1:] == counts[:1] * 3


def test_a_run_does_not_wait_for_helpers_the_busy_pool_never_started():
    # every kept helper busy elsewhere (other calls' runs): the calling thread codes all
    # the chunks and returns, rather than wait for a helper to start and find none left
    pool = pipeline._helper_pool()
    release = threading.Event()
    busy = [pool.submit(release.wait, 60) for _ in range(pipeline.MAX_HELPERS)]
    try:
        done = []

        def call():
            with Workers(2) as workers:
                workers.run(range(10), lambda i: i * i, _Recorder())
            done.append(True)

        caller = threading.Thread(target=call)
        caller.start()
        caller.join(20)
        assert done == [True]
    finally:
        release.set()
        for f in busy:
            f.result()


def test_kept_helpers_free_large_scratch_after_a_run():
    from spherecodec import scratch

    held = {}  # thread -> its scratch's per-thread dict

    def work(i):
        scratch.scratch("test.large", pipeline.HELPER_SCRATCH + (1 << 20), np.uint8)
        held[threading.get_ident()] = scratch._local.__dict__
        time.sleep(0.002)
        return i * i

    caller = threading.get_ident()
    with Workers(2) as workers:
        workers.run(range(20), work, _Recorder())
    helpers = [d for t, d in held.items() if t != caller]
    assert helpers and all("arrays" not in d for d in helpers)
    assert any(name == "test.large" for name, _ in held[caller]["arrays"])  # the caller keeps up to 64 MiB
    scratch.release(0)


def test_a_forked_child_starts_its_own_helpers():
    # the parent's helper exists; the child has none of its threads and must not wait for one
    x = np.random.default_rng(0).standard_normal((4000, 64)).astype(np.float32)
    blob = spherecodec.encode(x, chunk_rows=100, threads=2)
    spherecodec.decode(blob, threads=2)
    pid = os.fork()
    if pid == 0:
        ok = spherecodec.decode(blob, threads=2).tobytes() == x.tobytes()
        os._exit(0 if ok else 1)
    deadline = time.monotonic() + 120
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung decoding with threads=2")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_a_failing_chunk_stops_every_worker(threads):
    started = []

    def work(i):
        started.append(i)
        if i == 5:
            raise RuntimeError("chunk 5 failed")
        return i * i

    with Workers(threads) as workers, pytest.raises(RuntimeError, match="chunk 5"):
        workers.run(range(1000), work, _Recorder(window=4))
    assert len(started) < 20


class _ListSink(Sink):
    """Records every call the pipeline makes, and the payload bytes at their positions."""

    window_bytes = 50 * 384 * 4

    def __init__(self):
        self.calls = []
        self.data = {}
        self.lock = threading.Lock()

    def begin(self, index):
        self.calls.append("begin")
        self.guess = len(index.header())

    def room(self, end):
        with self.lock:
            self.calls.append(("room", end))

    def put(self, first, pos, payloads):
        with self.lock:
            for data in payloads:
                self.data[first] = (pos, data.tobytes())
                first += 1
                pos += data.size

    def finish(self, index):
        self.calls.append("finish")
        return index.header() + b"".join(self.data[i][1] for i in range(len(index.lengths)))

    def discard(self):
        self.calls.append("discard")


@pytest.mark.parametrize("threads", [1, 2])
def test_a_sink_gets_every_chunk_once_at_its_place(threads):
    sink = _ListSink()
    blob = encode_array(SAMPLE, "exact", {}, sink, threads=threads, chunk_rows=20)
    assert blob == spherecodec.encode(SAMPLE, threads=1, chunk_rows=20)
    assert sink.calls[0] == "begin" and sink.calls[-1] == "finish"
    ends = [end for _, end in sink.calls[1:-1]]
    assert len(ends) == 26 and ends == sorted(ends)  # one room() per chunk, in chunk order
    pos = 0
    for i in range(26):  # payloads back to back, in chunk order
        assert sink.data[i][0] == pos
        pos += len(sink.data[i][1])
    assert pos == ends[-1]


def test_a_failing_encode_discards_the_sink():
    sink = _ListSink()
    with pytest.raises(UnsupportedError):
        encode_array(SAMPLE.astype(np.int32), "exact", {}, sink)  # refused before begin
    assert sink.calls == []
    with pytest.raises(ValueError, match="chunk_rows"):
        encode_array(SAMPLE, "exact", {}, sink, chunk_rows=0)
    assert sink.calls == []

    class Failing(_ListSink):
        def put(self, first, pos, payloads):
            raise OSError("disk full")

    sink = Failing()
    with pytest.raises(OSError, match="disk full"):
        encode_array(SAMPLE, "exact", {}, sink, threads=2, chunk_rows=20)
    assert sink.calls[0] == "begin" and sink.calls[-1] == "discard" and "finish" not in sink.calls


def test_blob_errors_is_the_one_translation_to_corrupt_blob_errors():
    with pytest.raises(CorruptBlobError, match="^chunk 3 does not decode: bad index$"):
        with blob_errors("chunk 3 does not decode"):
            raise IndexError("bad index")
    for exc in (ValueError("v"), KeyError("k"), TypeError("t"), OverflowError("o")):
        with pytest.raises(CorruptBlobError):
            with blob_errors("x"):
                raise exc
    with pytest.raises(UnsupportedError, match="as is"):  # already the family: unchanged
        with blob_errors("x"):
            raise UnsupportedError("as is")
    with pytest.raises(RuntimeError):  # not a decoder's complaint about bytes: unchanged
        with blob_errors("x"):
            raise RuntimeError("bug")


@pytest.mark.parametrize("codec, params", [("int8", {}), ("exact", {"level": 2})])
@pytest.mark.parametrize("layout_name", ["big-endian", "fortran", "strided"])
def test_prepare_and_byte_order_are_the_same_for_blob_and_file(tmp_path, codec, params, layout_name):
    # codecs that fit on all rows (a prepare of their own) get the same native, contiguous
    # rows from both entry points, whatever the input's order and layout
    x = SAMPLE[:300]
    variant = {"big-endian": x.astype(">f4"), "fortran": np.asfortranarray(x),
               "strided": np.repeat(x, 2, axis=0)[::2]}[layout_name]
    expected = spherecodec.encode(x, codec, threads=1, chunk_rows=64, **params)
    assert spherecodec.encode(variant, codec, threads=2, chunk_rows=64, **params) == expected
    path = tmp_path / "x.sphc"
    stream.encode_to_file(variant, path, codec, threads=2, chunk_rows=64, **params)
    assert path.read_bytes() == expected
    np.save(tmp_path / "x.npy", variant)
    stream.compress_npy(tmp_path / "x.npy", path, codec, threads=2, chunk_rows=64, **params)
    assert path.read_bytes() == expected


def test_default_chunk_rows_aim_at_the_default_chunk_bytes():
    assert pipeline.resolve_chunk_rows(None, 384, 4) == pipeline.DEFAULT_CHUNK_BYTES // (384 * 4)
    assert pipeline.resolve_chunk_rows(None, 0, 4) == pipeline.DEFAULT_CHUNK_BYTES
    assert pipeline.resolve_chunk_rows(7, 384, 4) == 7
