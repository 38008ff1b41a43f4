"""Scratch arrays and recycled payload buffers (spherecodec.scratch), the bytes object filled in
place (spherecodec.pybytes, pages) and the in-memory blob sink (spherecodec.blobsink)."""

import platform
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import spherecodec
from spherecodec import blobsink, pages, pybytes, scratch


def test_scratch_arrays_are_reused_per_name_and_thread():
    a = scratch.scratch("test.a", (3, 4), np.float32)
    a[...] = 7
    b = scratch.scratch("test.a", (2, 5), np.float32)
    assert b.shape == (2, 5) and np.shares_memory(a, b)  # same storage, new shape
    c = scratch.scratch("test.c", 12, np.float32)
    assert not np.shares_memory(a, c)
    assert not np.shares_memory(scratch.scratch("test.a", 3, np.int64), a)  # per dtype
    other = []
    worker = threading.Thread(target=lambda: other.append(scratch.scratch("test.a", (3, 4), np.float32)))
    worker.start()
    worker.join()
    assert not np.shares_memory(other[0], a)  # per thread
    big = scratch.scratch("test.big", 300_000, np.uint8)  # >= 256 KiB: allocated at 4 MiB
    assert big.size == 300_000 and big.base is not None and big.base.nbytes >= 4 << 20
    scratch.release()  # a few MiB: kept for the next call
    assert np.shares_memory(scratch.scratch("test.a", (3, 4), np.float32), a)
    scratch.release(0)
    assert not np.shares_memory(scratch.scratch("test.a", (3, 4), np.float32), a)
    scratch.scratch("test.huge", scratch.RETAIN_LIMIT + 1, np.uint8)
    kept = scratch.scratch("test.a", (3, 4), np.float32)
    scratch.release()  # beyond RETAIN_LIMIT: all dropped
    assert not np.shares_memory(scratch.scratch("test.a", (3, 4), np.float32), kept)
    scratch.release(0)


def test_payload_buffers_are_recycled_only_when_issued_by_the_pool(monkeypatch):
    monkeypatch.setattr(scratch, "_pool", [])  # not the buffers earlier tests recycled
    buf = scratch.take_buffer(1000)
    payload = buf[:10]
    scratch.recycle([payload])
    again = scratch.take_buffer(500)
    assert again is buf  # the smallest free buffer that fits
    foreign = np.zeros(2000, dtype=np.uint8)
    scratch.recycle([foreign, b"bytes are ignored"])
    assert scratch.take_buffer(1500) is not foreign
    scratch.recycle([again, again])  # twice: kept once
    assert scratch.take_buffer(10) is again
    assert scratch.take_buffer(10) is not again


def test_reusable_arrays_return_their_memory_only_when_every_view_is_gone(monkeypatch):
    monkeypatch.setattr(scratch, "_outputs", [])
    n = scratch.REUSE_FROM // 4
    first = scratch.reusable_array((n // 8, 8), np.float32)
    assert first.flags.c_contiguous and first.flags.writeable and first.shape == (n // 8, 8)
    first[...] = 1.5
    address = first.ctypes.data
    view = first[10:][::2]  # a view of a view: numpy points its base past `first`
    exported = memoryview(view)
    del first
    held = [scratch.reusable_array((n,), np.float32)]  # kept: they do not go back to the pool here
    assert held[-1].ctypes.data != address  # `view` still uses it
    del view
    held.append(scratch.reusable_array((n,), np.float32))
    assert held[-1].ctypes.data != address  # so does `exported`
    assert np.asarray(exported).min() == 1.5  # untouched by the arrays since
    del exported
    again = scratch.reusable_array((n,), np.uint32)
    assert again.ctypes.data == address  # all gone: the memory is reused
    small = scratch.reusable_array((10,), np.float32)
    assert small.flags.owndata  # below REUSE_FROM: a plain array
    larger, bigger = np.empty(n * 4 + 64, np.uint8), np.empty(n * 9, np.uint8)
    scratch._outputs[:0] = [bigger, larger]  # kept buffers of other sizes, ahead of it in the pool
    assert scratch.reusable_array((n,), np.float32).ctypes.data == larger.ctypes.data  # the smallest that fits
    del again
    assert scratch.reusable_array((n * 2,), np.float32).ctypes.data != address  # much larger: new memory
    scratch.release_outputs()
    assert not scratch._outputs


def test_outputs_below_the_pool_start_aligned_from_aligned_from(monkeypatch):
    # between ALIGNED_FROM and REUSE_FROM: malloc's memory (not the pool's), from a 64-byte
    # boundary, for the exact decoder's streamed stores; below: a plain array
    monkeypatch.setattr(scratch, "_outputs", [])
    n = scratch.ALIGNED_FROM // 4
    assert scratch.ALIGNED_FROM < scratch.REUSE_FROM
    for _ in range(3):  # wherever malloc puts them
        a = scratch.reusable_array((n // 8, 8), np.float32)
        assert a.shape == (n // 8, 8) and a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable
        assert a.ctypes.data % 64 == 0 and not a.flags.owndata
        a[...] = 2.0
        del a
    assert not scratch._outputs  # none went to the pool
    assert scratch.reusable_array((n - 1,), np.float32).flags.owndata


def test_decoded_arrays_in_pooled_memory_stay_intact_while_used():
    import torch

    rng = np.random.default_rng(5)
    rows = scratch.REUSE_FROM // (4 * 384) + 200  # several chunks, pooled output
    arrays = [rng.standard_normal((rows, 384)).astype(np.float32) for _ in range(3)]
    blobs = [spherecodec.encode(a, threads=2) for a in arrays]
    kept = spherecodec.decode(blobs[0], threads=2)[7:]  # only a view survives
    tensor = torch.from_numpy(spherecodec.decode(blobs[1], threads=1))
    for _ in range(3):  # released outputs are reused: the kept ones must not be
        for blob, a in zip(blobs, arrays):
            assert spherecodec.decode(blob, threads=2).tobytes() == a.tobytes()
    assert kept.tobytes() == arrays[0][7:].tobytes()
    assert tensor.numpy().tobytes() == arrays[1].tobytes()
    with ThreadPoolExecutor(3) as pool:  # outputs taken and released from several threads
        for _ in range(3):
            decoded = list(pool.map(lambda b: spherecodec.decode(b, threads=1), blobs * 2))
            assert [d.tobytes() for d in decoded] == [a.tobytes() for a in arrays * 2]


def test_join_equals_bytes_join():
    rng = np.random.default_rng(0)
    parts = [b"header"] + [rng.integers(0, 256, size, dtype=np.uint8) for size in (3, 5_000_000, 1, 4_000_001)]
    blob = pybytes.join(parts)  # > 8 MiB: filled in place
    assert type(blob) is bytes and blob == b"".join(parts)
    assert hash(blob) == hash(b"".join(parts))
    assert pybytes.join([b"ab", np.frombuffer(b"cd", np.uint8)]) == b"abcd"  # small: plain join


def test_the_bytes_api_is_found_on_cpython():
    # the BlobWriter tests below skip only off CPython: here the API must be there, or the
    # in-place blob (docs/design.md) silently became the plain join
    assert pybytes.BlobWriter.available == (platform.python_implementation() == "CPython")


@pytest.mark.skipif(platform.python_implementation() != "CPython", reason="needs CPython's bytes API")
def test_blob_writer_fills_grows_moves_and_shrinks():
    rng = np.random.default_rng(2)
    data = rng.integers(0, 256, 3_000_000, dtype=np.uint8)
    writer = pybytes.BlobWriter(1_000_000)
    writer.write(10, data[:500_000])
    writer.write(500_010, data[500_000:])  # past the capacity: the bytes object grows
    writer.move(10, 7, data.size)  # overlapping, backwards
    writer.write(0, b"head---")
    blob = writer.finish(7 + data.size)
    expected = b"head---" + data.tobytes()
    assert type(blob) is bytes and blob == expected and hash(blob) == hash(expected)
    assert sys.getrefcount(blob) == 2  # the caller's reference only (and getrefcount's)
    again = pybytes.BlobWriter(100)
    again.write(0, b"x" * 10)
    again.discard()  # after an error: freed, never returned


@pytest.mark.skipif(platform.python_implementation() != "CPython", reason="needs CPython's bytes API")
def test_populating_a_blob_keeps_what_is_written_in_it():
    # the calling thread faults in pages that another thread may be copying a payload into
    data = np.random.default_rng(6).integers(0, 256, 5_000_000, dtype=np.uint8)
    writer = pybytes.BlobWriter(12_000_000)
    writer.write(3, data)
    writer.populate(0, 9_000_000)  # over the payload and past it
    writer.populate(8_000_000, 1 << 40)  # past the end: clipped to the capacity
    writer.populate(5, 5)
    writer.write(5_000_003, data[:10])
    blob = writer.finish(5_000_013)
    assert blob[3:5_000_003] == data.tobytes() and blob[5_000_003:] == data[:10].tobytes()
    release = tuple(int(part) for part in re.findall(r"\d+", platform.release())[:2])
    if platform.system() == "Linux" and release >= (5, 14):
        assert pages.populate_works()  # MADV_POPULATE_WRITE was taken, not refused


def test_large_blobs_are_identical_for_any_thread_count():
    # > 8 MiB of payload: the in-place join and the recycled buffers are in play
    x = np.random.default_rng(1).standard_normal((6000, 512)).astype(np.float32)
    blobs = [spherecodec.encode(x, codec, threads=t, **params)
             for codec, params in (("exact", {}), ("sphere", {"max_abs_error": 1e-6}))
             for t in (1, 2, 1)]
    assert blobs[0] == blobs[1] == blobs[2] and blobs[3] == blobs[4] == blobs[5]
    # the large-blob writer (payloads copied in as they are coded) writes the same bytes
    # as the join of all payloads that small arrays take
    blobsink.LARGE_BLOB_BYTES, limit = 1 << 62, blobsink.LARGE_BLOB_BYTES
    try:
        joined = [spherecodec.encode(x, codec, threads=t, **params)
                  for codec, params in (("exact", {}), ("sphere", {"max_abs_error": 1e-6})) for t in (1, 2)]
    finally:
        blobsink.LARGE_BLOB_BYTES = limit
    assert joined == [blobs[0], blobs[1], blobs[3], blobs[4]]
    assert (spherecodec.decode(blobs[0], threads=2).view(np.uint32) == x.view(np.uint32)).all()
    assert np.abs(spherecodec.decode(blobs[3]).astype(np.float64) - x).max() <= 1e-6


def test_large_blob_without_memory_to_reserve_falls_back_to_the_join(monkeypatch):
    x = np.random.default_rng(3).standard_normal((6000, 512)).astype(np.float32)
    expected = spherecodec.encode(x, threads=2)

    class Refusing:
        available = True

        def __init__(self, capacity):
            raise MemoryError("no room")

    monkeypatch.setattr(blobsink, "BlobWriter", Refusing)
    assert spherecodec.encode(x, threads=2) == spherecodec.encode(x, threads=1) == expected


@pytest.mark.skipif(platform.python_implementation() != "CPython", reason="needs CPython's bytes API")
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_blob_that_outgrows_its_reservation_while_threads_place_chunks(monkeypatch, threads):
    # the workers copy payloads into the blob as soon as the chunks before them are coded;
    # when the blob must grow, it moves: no copy may be writing into it then
    x = np.random.default_rng(4).standard_normal((3000, 300)).astype(np.float32)
    expected = spherecodec.encode(x, threads=1, chunk_rows=100)
    monkeypatch.setattr(blobsink, "LARGE_BLOB_BYTES", 1000)
    grown = []

    class Small(pybytes.BlobWriter):
        def __init__(self, capacity):
            super().__init__(capacity // 50)

        def reserve(self, size):
            grown.append(size > self.capacity)
            super().reserve(size)

    monkeypatch.setattr(blobsink, "BlobWriter", Small)
    for _ in range(3):
        assert spherecodec.encode(x, threads=threads, chunk_rows=100) == expected
    assert sum(grown) >= 3  # it did grow, in each call


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_a_failing_chunk_stops_the_workers_and_frees_the_blob(monkeypatch, threads):
    from spherecodec.codecs.exact import ExactCodec

    x = np.random.default_rng(5).standard_normal((3000, 300)).astype(np.float32)
    coded = []
    discarded = []
    plain = ExactCodec.encode_chunk

    lock = threading.Lock()

    def failing(self, rows, state):
        with lock:
            if len(coded) >= 7:
                raise RuntimeError("chunk failed")
            coded.append(rows.shape[0])
        return plain(self, rows, state)

    class Writer(pybytes.BlobWriter):
        def discard(self):
            discarded.append(True)
            super().discard()

    monkeypatch.setattr(blobsink, "LARGE_BLOB_BYTES", 1000)
    monkeypatch.setattr(blobsink, "BlobWriter", Writer)
    monkeypatch.setattr(ExactCodec, "encode_chunk", failing)
    with pytest.raises(RuntimeError, match="chunk failed"):
        spherecodec.encode(x, threads=threads, chunk_rows=100)
    assert discarded == [True] and len(coded) == 7  # the 23 other chunks were not coded
