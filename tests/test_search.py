"""Search on codes: results equal brute force on the decoded vectors (or on the bits)."""

import numpy as np
import pytest
from common import DATA as DATA_DIR
from common import load_sample

import spherecodec


@pytest.fixture(scope="module")
def data():
    x = load_sample()
    # queries held out from the corpus
    return x[:448], x[448:]


def _check_against_decoded(blob, base, queries, k, tol):
    """Top-k ids of ``search`` hold the k best decoded rows up to ``tol``; scores agree."""
    scores, ids = spherecodec.search(blob, queries, k)
    decoded = spherecodec.decode(blob).astype(np.float64)
    exact = queries.astype(np.float64) @ decoded.T
    assert scores.shape == ids.shape == (len(queries), k)
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    for q in range(len(queries)):
        assert len(set(ids[q])) == k
        kth = np.sort(exact[q])[-k]
        true = exact[q, ids[q]]
        assert (true >= kth - 2 * tol).all()
        assert np.allclose(scores[q], true, atol=tol, rtol=0)
        assert (np.diff(scores[q]) <= 0).all()
    # where no near tie blurs the order, the ids are exactly brute force's
    order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
    clear = np.array([np.diff(-np.sort(-exact[q])[:k + 1]).min() < -4 * tol for q in range(len(queries))])
    assert clear.mean() > 0.5
    assert (ids[clear] == order[clear]).all()
    return scores, ids


@pytest.mark.parametrize("codec, params", [("int8", {}), ("int8", {"symmetric": True, "entropy": True}),
                                           ("int4", {}), ("int4", {"clip": 99.0})])
def test_integer_search_equals_brute_force_on_decoded(data, codec, params):
    base, queries = data
    blob = spherecodec.encode(base, codec, chunk_rows=100, **params)
    fitted = spherecodec.fit(codec, base, **params)
    # the query is quantized to 16 bits after folding in the scales: error <= step/2 * sum(codes)
    w = np.abs(queries[:, None, :] * fitted.state.scale).max(axis=(1, 2))
    tol = float((w / 32767).max() / 2 * fitted.codec.cmax * 384) + 1e-6
    _check_against_decoded(blob, base, queries, 10, tol)


def test_pq_search_equals_brute_force_on_decoded(data):
    base, queries = data
    blob = spherecodec.encode(base, "pq", m=24, nbits=4, niter=5, chunk_rows=100)
    _check_against_decoded(blob, base, queries, 10, 1e-5)


@pytest.mark.parametrize("codec", ["fp16", "bf16", "exact"])
def test_float_codecs_search_the_decoded_rows(data, codec):
    base, queries = data
    blob = spherecodec.encode(base, codec)
    _check_against_decoded(blob, base, queries, 5, 1e-5)


@pytest.mark.parametrize("center", [True, False])
def test_binary_hamming_search_is_hamming_brute_force(data, center):
    base, queries = data
    blob = spherecodec.encode(base, "binary", center=center, chunk_rows=64)
    codec = spherecodec.fit("binary", base, center=center)
    bits = np.unpackbits(codec.codec.codes(base, codec.state), axis=1, bitorder="little")[:, :384].astype(np.int64)
    qbits = (queries > codec.state.threshold).astype(np.int64)
    ham = (bits[None, :, :] != qbits[:, None, :]).sum(-1)
    expected_scores = 384 - 2 * ham
    order = np.lexsort((np.broadcast_to(np.arange(len(base)), ham.shape), ham), axis=1)[:, :7]
    scores, ids = spherecodec.search(blob, queries, 7, hamming=True)
    assert (ids == order).all()
    assert (scores == np.take_along_axis(expected_scores, order, 1)).all()
    # the decoded rows carry the same bits
    assert ((spherecodec.decode(blob) > codec.state.threshold) == bits.astype(bool)).all()


@pytest.mark.parametrize("codec", ["int8", "int4", "binary", "pq"])
def test_rescoring_is_exact_on_candidates(data, codec):
    base, queries = data
    params = {"m": 24, "nbits": 4, "niter": 3} if codec == "pq" else {}
    blob = spherecodec.encode(base, codec, **params)
    _, cand = spherecodec.search(blob, queries, 12)
    scores, ids = spherecodec.search(blob, queries, 3, rescore_with=base, oversample=4)
    exact = queries.astype(np.float64) @ base.T.astype(np.float64)
    for q in range(len(queries)):
        best = cand[q][np.argsort(-exact[q, cand[q]], kind="stable")[:3]]
        assert set(ids[q]) == set(best)
        assert np.allclose(scores[q], exact[q, ids[q]], atol=1e-6)
    # with every row a candidate, rescoring is exact search
    scores, ids = spherecodec.search(blob, queries, 5, rescore_with=base, oversample=len(base))
    assert (ids == np.argsort(-exact, axis=1, kind="stable")[:, :5]).all()


def test_rescoring_recovers_recall(data):
    base, queries = data
    blob = spherecodec.encode(base, "binary")
    truth = np.argsort(-(queries @ base.T), axis=1)[:, :10]

    def recall(ids):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth)])

    plain = recall(spherecodec.search(blob, queries, 10)[1])
    rescored = recall(spherecodec.search(blob, queries, 10, rescore_with=base, oversample=4)[1])
    assert rescored > plain + 0.1 and rescored > 0.85


def test_results_do_not_depend_on_threads_or_chunks(data):
    base, queries = data
    fitted = spherecodec.fit("int8", base)
    a = spherecodec.search(fitted.encode(base, chunk_rows=50), queries, 10, threads=1)
    b = spherecodec.search(fitted.encode(base, chunk_rows=448), queries, 10, threads=2)
    assert (a[1] == b[1]).all() and (a[0] == b[0]).all()


def test_single_query_and_k_beyond_rows(data):
    base, queries = data
    blob = spherecodec.encode(base[:5], "int8")
    scores, ids = spherecodec.search(blob, queries[0], 8)
    assert scores.shape == ids.shape == (8,)
    assert sorted(ids[:5]) == [0, 1, 2, 3, 4] and (ids[5:] == -1).all() and np.isneginf(scores[5:]).all()
    empty = spherecodec.encode(np.zeros((0, 384), np.float32), spherecodec.fit("int8", base))
    scores, ids = spherecodec.search(empty, queries[:2], 3)
    assert (ids == -1).all()


def test_bad_arguments(data):
    base, queries = data
    blob = spherecodec.encode(base, "int8")
    with pytest.raises(ValueError):
        spherecodec.search(blob, queries[:, :100])
    with pytest.raises(TypeError, match="float32 cannot hold exactly"):
        spherecodec.search(blob, queries.astype(np.float64) + 1e-12)
    with pytest.raises(TypeError, match="queries must be a float32 array, not <U"):
        spherecodec.search(blob, np.full(queries.shape, "a"))
    with pytest.raises(ValueError):
        spherecodec.search(blob, queries, k=0)
    with pytest.raises(ValueError):
        spherecodec.search(blob, queries, oversample=0)
    with pytest.raises(ValueError):
        spherecodec.search(blob, queries, rescore_with=base[:10])
    bad = queries.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        spherecodec.search(blob, bad)
    with pytest.raises(spherecodec.SpherecodecError):
        spherecodec.search(blob[:-3], queries)


@pytest.mark.parametrize("codec", ["exact", "int8", "int4", "binary", "pq", "rabitq"])
def test_l2_metric_ranks_by_distance_to_the_decoded_rows(codec):
    """``metric="l2"``: nearest first by squared distance to the decoded vectors, and the
    exact distances (float64 sums) once rescored; rows of any norm."""
    base = np.load(DATA_DIR / "minilm-tokens-raw-256.npy")
    queries = base[:12] + np.float32(0.05)
    blob = spherecodec.encode(base, codec)
    decoded = spherecodec.decode(blob).astype(np.float64)
    dist, ids = spherecodec.search(blob, queries, k=5, metric="l2")
    brute = ((queries[:, None, :].astype(np.float64) - decoded[None]) ** 2).sum(-1)
    assert np.array_equal(ids, np.argsort(brute, axis=1, kind="stable")[:, :5])
    assert np.allclose(dist, np.take_along_axis(brute, ids, axis=1), rtol=1e-4)
    assert (np.diff(dist, axis=1) >= 0).all()
    exact_dist, exact_ids, rescored = spherecodec.search(blob, queries, k=5, metric="l2", rescore_with=base,
                                                         return_rescored=True)
    truth = ((queries[:, None, :].astype(np.float64) - base[None].astype(np.float64)) ** 2).sum(-1)
    assert np.allclose(exact_dist, np.take_along_axis(truth, exact_ids, axis=1), rtol=1e-6)
    assert (rescored == 20).all()
    assert (exact_ids[:, 0] == np.argmin(truth, axis=1)).all()  # each query's own row, nudged


def test_l2_metric_bad_combinations():
    blob = spherecodec.encode(np.ones((4, 8), np.float32), "binary")
    with pytest.raises(ValueError, match="metric must be 'ip' or 'l2'"):
        spherecodec.search(blob, np.ones(8, np.float32), metric="cosine")
    with pytest.raises(ValueError, match="does not combine with metric='l2'"):
        spherecodec.search(blob, np.ones(8, np.float32), metric="l2", hamming=True)
    dist, ids = spherecodec.search(blob, np.ones(8, np.float32), k=6, metric="l2")
    assert ids.tolist()[4:] == [-1, -1] and np.isinf(dist[4:]).all()
