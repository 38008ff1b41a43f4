"""Microbenchmarks of the core kernels on real MiniLM embeddings (tests/data, 512 x 384).

The symbols are what the exact codec codes: sign, exponent and top 3 mantissa bits of each
float32 (12 bits), the low 20 bits stored raw. Each benchmark reports bytes of float32 input
per second through ``extra_info["MB/s"]`` beside pytest-benchmark's timings.
"""

import os

import numpy as np
import pytest

from spherecodec import decode, encode, entropy
from spherecodec.kernels.bits import merge_low_bits, pack_low_bits, raw_size
from spherecodec.kernels.rans import histogram

DATA = os.path.join(os.path.dirname(__file__), os.pardir, "tests", "data", "minilm-sentences-512.npy")
RAW_BITS = 20
ALPHABET = 1 << 12


@pytest.fixture(scope="module")
def rows():
    return np.load(DATA)


@pytest.fixture(scope="module")
def words(rows):
    return np.ascontiguousarray(rows).reshape(-1).view(np.uint32)


def _report(benchmark, nbytes):
    benchmark.extra_info["MB/s"] = round(nbytes / 1e6 / benchmark.stats.stats.median, 1)


def test_histogram(benchmark, words):
    counts = np.zeros(ALPHABET, dtype=np.int64)

    def run():
        counts[:] = 0
        histogram(words, RAW_BITS, counts)

    benchmark(run)
    assert counts.sum() == words.size
    _report(benchmark, words.nbytes)


# the two layouts of the rANS streams: 8 lanes (backend 0), and 32 lanes (backend 2, coded
# 16 lanes at a time on AVX-512 CPUs; what the exact codec writes for float32 chunks)
LAYOUTS = pytest.mark.parametrize("wide", [False, True], ids=["8lanes", "32lanes"])


@LAYOUTS
def test_rans_encode(benchmark, words, wide):
    blob = benchmark(entropy.encode_stream, words, ALPHABET, shift=RAW_BITS, wide=wide)
    # real embeddings: 12-bit symbols take well under 8 bits each
    assert len(blob) < words.size and blob[0] == (2 if wide else 0)
    _report(benchmark, words.nbytes)


@LAYOUTS
def test_rans_decode(benchmark, words, wide):
    blob = np.frombuffer(entropy.encode_stream(words, ALPHABET, shift=RAW_BITS, wide=wide), dtype=np.uint8)
    out = np.empty(words.size, dtype=np.uint32)
    end = benchmark(entropy.decode_stream, blob, 0, ALPHABET, out)
    assert end == blob.size and np.array_equal(out, words >> RAW_BITS)
    _report(benchmark, words.nbytes)


@LAYOUTS
def test_rans_decode_with_raw_bits(benchmark, words, wide):
    # what the exact codec's decoder runs: symbols and the 20 raw low bits merged in one pass
    raw = np.empty(raw_size(words.size, RAW_BITS), dtype=np.uint8)
    pack_low_bits(words, RAW_BITS, raw)
    blob = np.frombuffer(entropy.encode_stream(words, ALPHABET, shift=RAW_BITS, wide=wide), dtype=np.uint8)
    out = np.empty(words.size, dtype=np.uint32)
    benchmark(entropy.decode_stream, blob, 0, ALPHABET, out, raw20=raw)
    assert np.array_equal(out, words)
    _report(benchmark, words.nbytes)


def test_bit_split_pack(benchmark, words):
    out = np.empty(raw_size(words.size, RAW_BITS), dtype=np.uint8)
    used = benchmark(pack_low_bits, words, RAW_BITS, out)
    assert used == out.size
    _report(benchmark, words.nbytes)


def test_bit_split_merge(benchmark, words):
    raw = np.empty(raw_size(words.size, RAW_BITS), dtype=np.uint8)
    pack_low_bits(words, RAW_BITS, raw)
    high = words >> RAW_BITS
    out = np.empty_like(words)

    def run():
        out[:] = high
        merge_low_bits(out, raw, RAW_BITS)

    benchmark(run)
    assert np.array_equal(out, words)
    _report(benchmark, words.nbytes)


@pytest.mark.parametrize("threads", [1, None], ids=["threads1", "all_cores"])
def test_exact_codec_encode(benchmark, rows, threads):
    big = np.concatenate([rows] * 8)  # 6 MB: several 1 MiB chunks
    benchmark(encode, big, threads=threads)
    _report(benchmark, big.nbytes)


@pytest.mark.parametrize("threads", [1, None], ids=["threads1", "all_cores"])
def test_exact_codec_decode(benchmark, rows, threads):
    big = np.concatenate([rows] * 8)
    blob = encode(big)
    out = benchmark(decode, blob, threads=threads)
    assert np.array_equal(out.view(np.uint32), big.view(np.uint32))
    _report(benchmark, big.nbytes)
