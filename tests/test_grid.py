"""The grid codec: the error-bounded uniform quantizer that sphere is measured against."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spherecodec
from bounded_checks import BOUNDS, awkward_arrays, check_bound
from common import check_config_round_trip, check_corruptions, check_truncations, load_sample
from spherecodec.codecs.columns import ChunkWriter, decode_columns, encode_columns
from spherecodec.codecs.grid import GridCodec
from spherecodec.errors import CorruptBlobError, UnsupportedError


@pytest.mark.parametrize("bound", BOUNDS)
def test_bound_holds_on_real_embeddings(bound):
    check_bound(load_sample(), "grid", bound)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(awkward_arrays(), st.sampled_from(BOUNDS))
def test_bound_holds_on_awkward_arrays(arr, bound):
    check_bound(arr, "grid", bound, chunk_rows=4)


def test_ratio_grows_with_the_bound_and_matches_the_entropy_estimate():
    x = load_sample()
    ratios = [x.nbytes / len(spherecodec.encode(x, "grid", max_abs_error=b))
              for b in (2.0 ** -23, 1e-6, 1e-5, 1e-4, 1e-3)]
    assert all(a < b for a, b in zip(ratios, ratios[1:])), ratios
    # a uniform quantizer of step 2e codes N(0, s^2) values in about
    # log2(s sqrt(2 pi e) / 2e) bits: the coder must come within 3% of that
    eps = 1e-4
    sigma = x.astype(np.float64).std(axis=0)
    bits = np.log2(np.maximum(sigma, 1e-12) * np.sqrt(2 * np.pi * np.e) / (2 * eps)).clip(0.1)
    estimate = 32 / bits.mean()
    got = x.nbytes / len(spherecodec.encode(x, "grid", max_abs_error=eps))
    assert got > 0.97 * estimate, (got, estimate)


@st.composite
def code_matrices(draw):
    ncols = draw(st.integers(1, 20))
    n = draw(st.integers(0, 30))
    magnitude = draw(st.sampled_from([1, 8, 2 ** 20, 2 ** 40, 2 ** 49]))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    codes = rng.integers(-magnitude, magnitude, size=(ncols, n), dtype=np.int64)
    codes[rng.random((ncols, n)) < 0.3] = 0
    return codes


@settings(max_examples=80, deadline=None)
@given(code_matrices())
def test_columns_round_trip_exactly(codes):
    parts = ChunkWriter(16)  # starts small: growing it is part of the test
    encode_columns(codes, parts)
    payload = parts.array()
    back = np.empty_like(codes)
    assert decode_columns(payload, 0, back) == payload.size
    assert (back == codes).all()


def test_truncated_columns_raise():
    codes = np.random.default_rng(1).integers(-5000, 5000, size=(6, 50))
    parts = ChunkWriter(16)  # starts small: growing it is part of the test
    encode_columns(codes, parts)
    payload = parts.array()
    for cut in range(1, payload.size):
        try:
            end = decode_columns(payload[:cut], 0, np.empty_like(codes))
        except CorruptBlobError:
            continue
        raise AssertionError(f"cut at {cut} decoded to position {end}")


def test_config_errors_and_dtypes():
    codec = GridCodec(max_abs_error=0.5)
    check_config_round_trip(codec)
    assert GridCodec().get_config() == {"max_abs_error": 2.0 ** -23}
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError):
            GridCodec(max_abs_error=bad)
    with pytest.raises(TypeError):
        GridCodec(max_abs_error="big")
    with pytest.raises(UnsupportedError):  # float64 that float32 cannot hold exactly
        spherecodec.encode(np.full(4, 0.1, np.float64), "grid")


def test_max_expansion_covers_the_most_compressible_input():
    x = np.zeros((4096, 256), dtype=np.float32)
    blob = spherecodec.encode(x, "grid", max_abs_error=1e-3)
    assert x.nbytes <= GridCodec.max_expansion * len(blob)


def test_damaged_blobs_raise_or_decode_to_the_announced_shape():
    x = load_sample()[:40].copy()
    x[0, 0] = np.inf
    blob = spherecodec.encode(x, "grid", max_abs_error=1e-5, chunk_rows=16)
    check_truncations(blob, max_lengths=60)
    raised = check_corruptions(blob, n=120)
    assert raised["plain"] == 120


@settings(max_examples=60, deadline=None)
@given(code_matrices())
def test_paired_columns_round_trip_exactly(codes):
    parts = ChunkWriter(16)
    encode_columns(codes, parts, paired=True)
    payload = parts.array()
    back = np.empty_like(codes)
    assert decode_columns(payload, 0, back, paired=True) == payload.size
    assert (back == codes).all()


def test_symbol_pairs_and_their_corruption():
    from spherecodec.kernels import grid as kg

    syms = np.array([3, 0, 50, 7, 1], dtype=np.uint16)
    pairs = np.empty(3, dtype=np.uint16)
    counts = np.zeros(kg.PAIR_ALPHABET, dtype=np.int64)
    kg.pair_symbols(syms, pairs, counts)
    assert pairs.tolist() == [3 << 6, (50 << 6) | 7, 1 << 6]
    assert counts.sum() == 3 and counts[1 << 6] == 1
    back = np.empty_like(syms)
    assert kg.unpair_symbols(pairs, 51, back) == kg.STATUS_OK and (back == syms).all()
    pairs[2] = (1 << 6) | 4  # the odd symbol's missing partner must be 0
    assert kg.unpair_symbols(pairs, 51, back) == kg.STATUS_CORRUPT
    pairs[2] = 1 << 6
    pairs[1] = (51 << 6) | 7  # beyond the alphabet of bit lengths
    assert kg.unpair_symbols(pairs, 51, back) == kg.STATUS_CORRUPT
    pairs[1] = (50 << 6) | 63
    assert kg.unpair_symbols(pairs, 51, back) == kg.STATUS_CORRUPT
