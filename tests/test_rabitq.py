"""rabitq: RaBitQ codes (1 to 8 bits), their estimator, bound-guided rescoring; binary's
asymmetric search."""

import sys

import numpy as np
import pytest
from common import build_blob, check_config_round_trip, check_corruptions, check_truncations, load_sample, \
    parse_layout
from hypothesis import given, settings
from hypothesis import strategies as st

import spherecodec
from spherecodec.codecs.rabitq import RabitqCodec, RabitqState, rotation_signs

search_module = sys.modules["spherecodec.search"]


@pytest.fixture(scope="module")
def data():
    x = load_sample()
    return x[:448], x[448:]


def _recall(ids, truth):
    return np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(ids, truth)])


def _estimates(blob, queries):
    """The RaBitQ estimator computed in numpy from the blob's codes, (Q, rows) float64."""
    header = search_module.Header(blob)
    state, codec = header.state, header.codec
    codes = search_module._gather_codes(header)
    half = ((1 << codec.bits) - 1) / 2
    q = queries.astype(np.float64)
    center = state.center.astype(np.float64)
    y = codes.codes.astype(np.float64) - half
    return (q @ center)[:, None] + codes.offset[None, :] + state.rotate(q - center) @ y.T * codes.factor[None, :]


def test_rotation_is_orthogonal_and_seeded():
    for dim in (1, 5, 64, 384):
        state = RabitqState.of(np.zeros(dim, np.float32), seed=3)
        p = state.rotate(np.eye(dim))
        assert np.abs(p @ p.T - np.eye(dim)).max() < 1e-12
    # the signs are a fixed function of the seed (integer arithmetic): pinned
    assert rotation_signs(0, 8, rounds=1)[0].tolist() == [-1.0, -1.0, 1.0, -1.0, 1.0, 1.0, 1.0, -1.0]
    assert (rotation_signs(1, 384) != rotation_signs(0, 384)).any()


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_search_is_the_estimator_and_decode_its_reconstruction(data, bits):
    base, queries = data
    blob = spherecodec.encode(base, "rabitq", bits=bits, chunk_rows=100, threads=1)
    assert spherecodec.encode(base, "rabitq", bits=bits, chunk_rows=100, threads=2) == blob
    est = _estimates(blob, queries)
    scores, ids = spherecodec.search(blob, queries, 10, threads=1)
    again = spherecodec.search(blob, queries, 10, threads=2)
    assert (again[0] == scores).all() and (again[1] == ids).all()
    # scores are the estimator up to the query's 16-bit rounding
    assert np.abs(scores - np.take_along_axis(est, ids, 1)).max() < 2e-3
    kth = np.sort(est, axis=1)[:, -10]
    assert (np.take_along_axis(est, ids, 1) >= kth[:, None] - 4e-3).all()
    # the decoded rows keep <x, c> and give the estimate up to beta (|c|^2 - <c, q>)
    decoded = spherecodec.decode(blob).astype(np.float64)
    center = base.astype(np.float64).mean(0).astype(np.float32).astype(np.float64)
    assert np.allclose(decoded @ center, base.astype(np.float64) @ center, atol=1e-3)
    # more bits, closer rows
    assert np.abs(decoded - base).max() < {1: 0.5, 2: 0.2, 4: 0.05, 8: 0.005}[bits]
    # recall on the codes, against exact search
    truth = np.argsort(-(queries @ base.T), axis=1)[:, :10]
    assert _recall(ids, truth) > {1: 0.7, 2: 0.8, 4: 0.9, 8: 0.97}[bits]


@pytest.mark.parametrize("bits", [1, 4])
def test_bound_guided_rescoring(data, bits, monkeypatch):
    base, queries = data
    blob = spherecodec.encode(base, "rabitq", bits=bits)
    exact = queries.astype(np.float64) @ base.T.astype(np.float64)
    scores, ids, counts = spherecodec.search(blob, queries, 5, rescore_with=base, oversample=4,
                                             return_rescored=True)
    assert np.allclose(scores, np.take_along_axis(exact, ids, 1), atol=1e-6)
    assert (counts >= 5).all() and (counts <= 20).all() and counts.mean() < 20
    # with an unbounded error every candidate is rescored: the same results here
    monkeypatch.setattr(search_module, "EPSILON0", 1e9)
    all_scores, all_ids, all_counts = spherecodec.search(blob, queries, 5, rescore_with=base, oversample=4,
                                                         return_rescored=True)
    assert (all_counts == 20).all()
    assert (all_ids == ids).mean() > 0.99
    truth = np.argsort(-exact, axis=1)[:, :5]
    assert _recall(ids, truth) > (0.95 if bits == 1 else 0.99)
    # without rescoring nothing is rescored
    assert (spherecodec.search(blob, queries, 5, return_rescored=True)[2] == 0).all()


def test_binary_search_is_asymmetric_by_default(data):
    base, queries = data
    blob = spherecodec.encode(base, "binary")
    scores, ids = spherecodec.search(blob, queries, 10)
    exact = queries.astype(np.float64) @ spherecodec.decode(blob).astype(np.float64).T
    # the query's weights are rounded to 8 bits: a small error per score
    assert np.abs(scores - np.take_along_axis(exact, ids, 1)).max() < 0.02
    kth = np.sort(exact, axis=1)[:, -10]
    assert (np.take_along_axis(exact, ids, 1) >= kth[:, None] - 0.04).all()
    truth = np.argsort(-(queries @ base.T), axis=1)[:, :10]
    ham = spherecodec.search(blob, queries, 10, hamming=True)
    assert _recall(ids, truth) > _recall(ham[1], truth)
    assert (np.asarray(ham[0]) == np.rint(ham[0])).all()  # dim - 2 * hamming
    # codecs without a bound rescore every candidate
    assert (spherecodec.search(blob, queries, 10, rescore_with=base, return_rescored=True)[2] == 40).all()
    with pytest.raises(ValueError, match="hamming must be True or False"):
        spherecodec.search(blob, queries, hamming="yes")


def test_sizes_and_entropy(data):
    base, _ = data
    for bits in (1, 2, 4, 8):
        blob = spherecodec.encode(base, "rabitq", bits=bits, chunk_rows=448)
        per_row = 6 + (384 * bits + 7) // 8
        overhead = len(blob) - 448 * per_row
        assert 4 * 384 <= overhead < 4 * 384 + 400  # centre, header, one chunk
        coded = spherecodec.encode(base, "rabitq", bits=bits, entropy=True, chunk_rows=448)
        assert len(coded) <= len(blob) + 1
        assert (spherecodec.decode(coded) == spherecodec.decode(blob)).all()


def test_bad_input(data):
    base, queries = data
    for bits in (0, 9, True, 2.0, "2"):
        with pytest.raises(ValueError, match="bits must be an integer from 1 to 8"):
            spherecodec.encode(base, "rabitq", bits=bits)
    for seed in (-1, 1 << 63, 1.5):
        with pytest.raises(ValueError, match="seed"):
            spherecodec.encode(base, "rabitq", seed=seed)
    bad = base[:20].copy()
    bad[3, 7] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        spherecodec.encode(bad, "rabitq")
    fitted = spherecodec.fit("rabitq", base, bits=2)
    bad[3, 7] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        fitted.encode(bad)
    with pytest.raises(ValueError, match="fitted on 384-dimensional rows"):
        fitted.encode(base[:, :100])
    with pytest.raises(ValueError, match="empty array"):
        spherecodec.encode(np.zeros((0, 384), np.float32), "rabitq")
    blob = fitted.encode(base[:3])
    with pytest.raises(ValueError, match="queries have 100 dimensions, the blob 384"):
        spherecodec.search(blob, queries[:, :100])
    scores, ids = spherecodec.search(blob, queries[0], 5)  # k > rows
    assert sorted(ids[:3]) == [0, 1, 2] and (ids[3:] == -1).all() and np.isneginf(scores[3:]).all()
    empty = fitted.encode(np.zeros((0, 384), np.float32))
    assert (spherecodec.search(empty, queries[:2], 3)[1] == -1).all()
    # a row equal to the centre has no direction: it decodes to the centre
    centre = fitted.state.center.reshape(1, -1)
    assert np.allclose(spherecodec.decode(fitted.encode(centre)), centre, atol=1e-6)


def test_config_and_damaged_blobs(data):
    base, _ = data
    check_config_round_trip(RabitqCodec(bits=3, seed=5, entropy=True))
    for params in ({"bits": 1}, {"bits": 3, "entropy": True}):
        blob = spherecodec.encode(base[:40, :64], "rabitq", chunk_rows=16, **params)
        check_truncations(blob, max_lengths=40)
        check_corruptions(blob, n=40)
    # a forged centre
    blob = spherecodec.encode(base[:20], "rabitq")
    layout = parse_layout(blob)
    shared = np.frombuffer(layout["shared"], dtype="<f4").copy()
    for data_ in (shared[:-1].tobytes(), np.full_like(shared, np.nan).tobytes()):
        forged = build_blob(meta=layout["meta"], chunks=layout["chunks"], shared=data_)
        with pytest.raises(spherecodec.CorruptBlobError):
            spherecodec.decode(forged)


@settings(max_examples=8, deadline=None)
@given(bits=st.integers(1, 8), dim=st.integers(1, 40), rows=st.integers(1, 30), seed=st.integers(0, 2 ** 32))
def test_any_shape_round_trips_and_rescoring_everything_is_exact(bits, dim, rows, seed):
    x = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    blob = spherecodec.encode(x, "rabitq", bits=bits, seed=seed, chunk_rows=7)
    y = spherecodec.decode(blob)
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    scores, ids = spherecodec.search(blob, x[:3], 1, rescore_with=x, oversample=rows)
    exact = x[:3].astype(np.float64) @ x.T.astype(np.float64)
    assert np.allclose(scores[:, 0], exact.max(axis=1), atol=1e-5)
