"""Kernels against references: XXH64 against the xxhash package, rANS and bit planes."""

import hashlib

import numpy as np
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

import spherecodec
from common import load_sample
from spherecodec import entropy
from spherecodec.errors import CorruptBlobError
from spherecodec.kernels import rans_simd
from spherecodec.kernels.bits import merge_low_bits, pack_and_count, pack_low_bits, raw_size
from spherecodec.kernels.checksum import xxh64, xxh64_many


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_xxh64_matches_reference(data):
    assert int(xxh64(np.frombuffer(data, dtype=np.uint8))) == xxhash.xxh64_intdigest(data)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_xxh64_many_hashes_each_range_as_the_reference(data):
    # ranges of any length (a group of four side by side runs their common whole stripes
    # in vector registers, then each its own rest), overlapping or not, in groups of four
    # and a partial group
    blob = np.frombuffer(data.draw(st.binary(min_size=1, max_size=3000)), dtype=np.uint8)
    count = data.draw(st.integers(1, 9))
    starts = np.array(data.draw(st.lists(st.integers(0, blob.size), min_size=count, max_size=count)), np.int64)
    ends = np.array([data.draw(st.integers(int(a), blob.size)) for a in starts], np.int64)
    expected = [xxhash.xxh64_intdigest(blob[a:b].tobytes()) for a, b in zip(starts, ends)]
    for vector in (True, False):
        assert [int(h) for h in xxh64_many(blob, starts, ends, vector)] == expected


def test_xxh64_detects_every_single_bit_flip():
    data = np.random.default_rng(1).integers(0, 256, 203, dtype=np.uint8)
    reference = xxh64(data)
    for bit in range(data.size * 8):
        flipped = data.copy()
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert xxh64(flipped) != reference


@pytest.mark.parametrize("n", [0, 1, 7, 255, 256, 257, 263, 1000, 4099])
@pytest.mark.parametrize("skew", [0.3, 3.0])
def test_rans_stream_round_trip_lane_edges(n, skew):
    # 256 is where 8 lanes start; tails of 0..7 symbols exercise every lane
    rng = np.random.default_rng(n)
    alphabet = 300
    p = np.exp(-skew * np.arange(alphabet) / 30.0)
    symbols = rng.choice(alphabet, size=n, p=p / p.sum()).astype(np.uint32)
    for backend in ("numba", "constriction"):
        blob = entropy.encode_stream(symbols, alphabet, backend=backend)
        out = np.empty(n, dtype=np.uint32)
        end = entropy.decode_stream(np.frombuffer(blob, np.uint8), 0, alphabet, out)
        assert end == len(blob)
        assert (out == symbols).all()


def test_rans_size_close_to_entropy_and_constriction():
    rng = np.random.default_rng(5)
    alphabet = 600
    p = np.exp(-np.arange(alphabet) / 40.0)
    symbols = rng.choice(alphabet, size=300_000, p=p / p.sum()).astype(np.uint32)
    counts = np.bincount(symbols, minlength=alphabet)
    q = counts[counts > 0] / symbols.size
    entropy_bytes = -(q * np.log2(q)).sum() * symbols.size / 8
    ours = len(entropy.encode_stream(symbols, alphabet))
    theirs = len(entropy.encode_stream(symbols, alphabet, backend="constriction"))
    assert ours < entropy_bytes * 1.005
    assert ours < theirs * 1.005


def test_rans_rejects_damaged_body():
    symbols = np.random.default_rng(2).integers(0, 50, 5000).astype(np.uint32)
    blob = np.frombuffer(entropy.encode_stream(symbols, 64), np.uint8).copy()
    out = np.empty(symbols.size, np.uint32)
    detected = 0
    for pos in range(blob.size - 40, blob.size):
        damaged = blob.copy()
        damaged[pos] ^= 0x5A
        try:
            entropy.decode_stream(damaged, 0, 64, out)
        except CorruptBlobError:
            detected += 1
    # the final-state check catches the damage in nearly every case
    assert detected >= 38
    with pytest.raises(CorruptBlobError):
        entropy.decode_stream(blob[:-2], 0, 64, out)


@pytest.mark.parametrize("k", [0, 3, 4, 7, 8, 13, 16, 20, 23, 49])
def test_bit_planes_round_trip(k):
    rng = np.random.default_rng(k)
    dtype = np.uint64 if k > 23 else np.uint32
    for n in (0, 1, 2, 3, 17, 1000):
        values = rng.integers(0, 2 ** 63, n, dtype=np.uint64).astype(dtype)
        raw = np.empty(raw_size(n, k), np.uint8)
        assert pack_low_bits(values, k, raw) == raw.size
        high = values >> dtype(k)
        merge_low_bits(high, raw, k)
        assert (high == values).all()
        if 8 <= k <= 23:  # the exact codec's one-pass split: same bytes, and the histogram of the heads
            fused = np.empty(raw.size, np.uint8)
            counts = np.zeros(1 << (32 - k), np.int64)
            assert pack_and_count(values, k, fused, counts) == raw.size
            assert (fused == raw).all()
            assert (counts == np.bincount(values >> dtype(k), minlength=counts.size)).all()


def test_quantized_frequencies_sum_and_cover():
    rng = np.random.default_rng(3)
    for _ in range(50):
        counts = rng.integers(0, 1000, 400) * (rng.random(400) < 0.5)
        counts[rng.integers(0, 400)] += 10 ** 7
        freq = entropy.quantize_frequencies(counts, 14)
        assert freq.sum() == 1 << 14
        assert ((freq > 0) == (counts > 0)).all() or (counts > 0).sum() == 1
        assert freq.max() <= (1 << 14) - (1 << 6)


#: sha256 (first 16 hex digits) of what each rANS coder wrote for the real sample before
#: kernels/rans_core.py gathered their steps (the code of commit 0675421); the streams of
#: 2**16 symbols or more, and the blobs holding them, since they take the 64-lane layout
#: (backend 3; the 32-lane bytes are unchanged: tests/data/golden/exact/f32_wide re-encodes)
PINNED = {
    "8 lanes": "83f98cb01b7f669d",
    "1 lane": "3ebb44fe1def3f80",
    "8 lanes, 16-bit symbols": "0228c24ed3df1021",
    "32 lanes": "eaf4f357e2919831",
    "64 lanes": "0f7578a57c1ed064",
    "raw bits and 64 lanes": "c5052c0cafb02af3",
    "exact blob": "4bcf032ab3ee2134",
    # chunks of 7,680 values: 12-bit tables since short streams took them (was af679541246241d5)
    "exact blob, small chunks": "2934deb2b6674b1f",
    # float32 values as float64: 29 zero low bits, chunk mode 4 since the shape modes (issue 22)
    "exact blob, float64": "642aa300b0e4dc66",
    # float16 chunks of 2**14 values or more take the wide layouts since 2026-12 (8 lanes before)
    "exact blob, float16": "60547a5a160cb32f",
    "exact level 2 blob": "e48346ace8201559",
    "exact level 3 blob": "b64235aa7f18bb2d",
}


def _digest(data):
    return hashlib.sha256(bytes(data)).hexdigest()[:16]


@pytest.mark.parametrize("vector", rans_simd.ENCODE_KINDS, ids=["scalar", "gather", "loads"])
def test_every_rans_coder_writes_its_pinned_bytes_on_the_sample(vector):
    x = load_sample()
    values = x.reshape(-1).view(np.uint32)
    n = values.size
    got = {
        "8 lanes": entropy.encode_stream(values, 4096, shift=20),
        "1 lane": entropy.encode_stream(values[:200], 4096, shift=20),
        "8 lanes, 16-bit symbols": entropy.encode_stream((values >> 16).astype(np.uint16), 1 << 16),
        "exact blob, small chunks": spherecodec.encode(x, threads=1, chunk_rows=20),
        "exact blob, float64": spherecodec.encode(x.astype(np.float64), threads=1),
        "exact blob, float16": spherecodec.encode(x.astype(np.float16), threads=1),
        "exact level 2 blob": spherecodec.encode(x, threads=1, level=2),
        "exact level 3 blob": spherecodec.encode(x, threads=1, level=3),
    }
    rans_simd.VECTOR_ENCODE, saved = vector, rans_simd.VECTOR_ENCODE
    try:  # the wide encoders' vector steps, or their scalar ones
        below = values[:rans_simd.MIN_SYMBOLS_64 - 7]
        got["32 lanes"] = entropy.encode_stream(below, 4096, shift=20, wide=True)
        got["64 lanes"] = entropy.encode_stream(values, 4096, shift=20, wide=True)
        assert entropy.encode_stream((values >> 20).astype(np.uint16), 4096, wide=True) == got["64 lanes"]
        out = np.zeros(raw_size(n, 20) + entropy.stream_capacity(n, 4096), np.uint8)
        end = entropy.encode_stream_into(values, 4096, out, 0, shift=20, wide=True, raw_bits=True)
        got["raw bits and 64 lanes"] = out[:end]
        got["exact blob"] = spherecodec.encode(x, threads=1)
    finally:
        rans_simd.VECTOR_ENCODE = saved
    assert {name: _digest(data) for name, data in got.items()} == PINNED
