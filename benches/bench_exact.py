"""Throughput of the exact codec against ZipNN and pcodec on real embeddings (threads=1).

Run: python -m pytest benches/bench_exact.py --benchmark-only --benchmark-group-by=group
Uses the shared MiniLM sentence embeddings when present (../shared/data), else the sample
shipped in tests/data. Compare rows of one group: they ran in the same session.
"""

import statistics
import time
from pathlib import Path

import numpy as np
import pytest

import spherecodec

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "minilm-stdlib-sentences-384.npy"
SAMPLE = ROOT / "tests" / "data" / "minilm-sentences-512.npy"


@pytest.fixture(scope="module")
def embeddings():
    return np.ascontiguousarray(np.load(SHARED if SHARED.exists() else SAMPLE))


def _zipnn():
    zipnn = pytest.importorskip("zipnn")
    return zipnn.ZipNN(bytearray_dtype="float32", threads=1)


@pytest.mark.benchmark(group="encode")
def test_encode_spherecodec(benchmark, embeddings):
    blob = benchmark(spherecodec.encode, embeddings, threads=1)
    benchmark.extra_info["ratio"] = embeddings.nbytes / len(blob)


@pytest.mark.benchmark(group="encode")
def test_encode_spherecodec_2_threads(benchmark, embeddings):
    blob = benchmark(spherecodec.encode, embeddings, threads=2)
    benchmark.extra_info["ratio"] = embeddings.nbytes / len(blob)


@pytest.fixture(scope="module")
def rows_40k(embeddings):
    # the core issue's thread-scaling case: 40,000 x 384 (61 MB), the embeddings repeated
    return np.ascontiguousarray(np.resize(embeddings, (40_000, embeddings.shape[1])))


@pytest.mark.benchmark(group="encode 40k x 384")
@pytest.mark.parametrize("threads", [1, 2])
def test_encode_40k_rows(benchmark, rows_40k, threads):
    blob = benchmark(spherecodec.encode, rows_40k, threads=threads)
    benchmark.extra_info["ratio"] = rows_40k.nbytes / len(blob)


def _thread_speedup(benchmark, call, what):
    """threads=2 against threads=1 for ``call(threads)``: each round times threads=1, then
    threads=2 (the two rows of a group, timed one after the other, would show a change of
    machine load between them as a change of speed-up); the ratio of the medians goes in
    extra_info and is printed with -s."""
    times = {1: [], 2: []}

    def pair():
        for threads in (1, 2):
            start = time.perf_counter()
            call(threads)
            times[threads].append(time.perf_counter() - start)

    benchmark.pedantic(pair, rounds=15, warmup_rounds=1)
    speedup = statistics.median(times[1][1:]) / statistics.median(times[2][1:])
    benchmark.extra_info["threads=2 speed-up"] = speedup
    print(f"\n{what}: threads=2 is {speedup:.2f}x threads=1 (medians of 15 interleaved pairs)")


@pytest.mark.benchmark(group="encode 40k x 384, threads=1 then threads=2")
def test_encode_40k_rows_thread_speedup(benchmark, rows_40k):
    _thread_speedup(benchmark, lambda threads: spherecodec.encode(rows_40k, threads=threads), "encode 40k x 384")


@pytest.mark.benchmark(group="decode 40k x 384, threads=1 then threads=2")
def test_decode_40k_rows_thread_speedup(benchmark, rows_40k):
    # each round decodes into a fresh array
    blob = spherecodec.encode(rows_40k, threads=1)
    _thread_speedup(benchmark, lambda threads: spherecodec.decode(blob, threads=threads), "decode 40k x 384")
    assert spherecodec.decode(blob, threads=2).tobytes() == rows_40k.tobytes()


@pytest.mark.benchmark(group="encode")
def test_encode_zipnn(benchmark, embeddings):
    zipnn = _zipnn()
    raw = embeddings.tobytes()
    blob = benchmark(zipnn.compress, raw)
    benchmark.extra_info["ratio"] = embeddings.nbytes / len(blob)


@pytest.mark.benchmark(group="encode")
def test_encode_pcodec(benchmark, embeddings):
    pcodec = pytest.importorskip("pcodec")
    config = pcodec.ChunkConfig(compression_level=8)
    blob = benchmark(pcodec.standalone.simple_compress, embeddings.ravel(), config)
    benchmark.extra_info["ratio"] = embeddings.nbytes / len(blob)


@pytest.mark.benchmark(group="decode")
def test_decode_spherecodec(benchmark, embeddings):
    blob = spherecodec.encode(embeddings, threads=1)
    out = benchmark(spherecodec.decode, blob, threads=1)
    assert (out.view(np.uint32) == embeddings.view(np.uint32)).all()


@pytest.mark.benchmark(group="decode")
def test_decode_spherecodec_2_threads(benchmark, embeddings):
    blob = spherecodec.encode(embeddings, threads=1)
    out = benchmark(spherecodec.decode, blob, threads=2)
    assert (out.view(np.uint32) == embeddings.view(np.uint32)).all()


@pytest.mark.benchmark(group="decode")
def test_decode_zipnn(benchmark, embeddings):
    zipnn = _zipnn()
    blob = zipnn.compress(embeddings.tobytes())
    benchmark(zipnn.decompress, blob)


@pytest.mark.benchmark(group="decode")
def test_decode_pcodec(benchmark, embeddings):
    pcodec = pytest.importorskip("pcodec")
    blob = pcodec.standalone.simple_compress(embeddings.ravel(), pcodec.ChunkConfig(compression_level=8))
    benchmark(pcodec.standalone.simple_decompress, blob)
