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


@pytest.mark.parametrize("K", [32, 383])
@pytest.mark.parametrize("way", ["int16_tiles", "blas_float32"])
def test_level_predictions(benchmark, rows, K, way):
    """Exact levels' format 2 predictions of every row (``predict_quantized``: 16-bit
    integer tiles) against BLAS's float32 product of the same terms and coefficients (the
    encoder's way before December 8, one thread), at level 3's K and level 5's; both give
    the same integers, which the benchmark checks."""
    from threadpoolctl import threadpool_limits

    from spherecodec.codecs import exact_models
    from spherecodec.kernels import predict

    x = np.ascontiguousarray(rows, dtype=np.float32)
    n, d = x.shape
    rng = np.random.default_rng(K)
    coef = np.triu(rng.integers(-127, 128, size=(K, d)), 1).astype(np.float32)
    scale = (predict.QUANT_MAX / (4 * np.abs(x).max(axis=0))).astype(np.float32)
    tiles = exact_models._coef_tiles(coef, d)
    terms = np.empty((n, K), np.float32)
    predict.quantize_terms(x, scale, terms)
    out = np.empty_like(x)
    if way == "int16_tiles":
        def run():
            predict.predict_quantized(x, scale, tiles, K, out)
    else:
        def run():
            np.matmul(terms, coef, out=out)
    with threadpool_limits(1):
        benchmark(run)
    assert (out == terms.astype(np.int64) @ coef.astype(np.int64)).all()
    benchmark.extra_info["GMAC/s"] = round(n * sum(min(j, K) for j in range(d)) / 1e9
                                           / benchmark.stats.stats.median, 1)
