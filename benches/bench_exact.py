"""Throughput of the exact codec against ZipNN and pcodec on real embeddings (threads=1).

Run: python -m pytest benches/bench_exact.py --benchmark-only --benchmark-group-by=group
Uses the shared MiniLM sentence embeddings when present (../shared/data), else the sample
shipped in tests/data. Compare rows of one group: they ran in the same session.
"""

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
