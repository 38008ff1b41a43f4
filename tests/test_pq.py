"""Product quantization: seeded deterministic training, nearest-codeword codes, sizes,
fitted reuse, entropy coding and damaged blobs."""

import numpy as np
import pytest
from common import build_blob, check_config_round_trip, check_corruptions, load_sample, parse_layout

import spherecodec
from spherecodec.fit import FittedCodec
from spherecodec.kernels import kmeans as km

# small codebooks keep the tests fast; the measured configuration (m=48, nbits=8) runs in
# benches/bench_quant.py
PARAMS = {"m": 24, "nbits": 4, "niter": 8}


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture(scope="module")
def fitted(sample):
    return spherecodec.fit("pq", sample, **PARAMS)


def test_training_is_deterministic_for_a_seed(sample, fitted):
    again = spherecodec.fit("pq", sample, **PARAMS)
    assert fitted.state.codebooks.shape == (24, 16, 16)
    assert (again.state.codebooks.view(np.uint32) == fitted.state.codebooks.view(np.uint32)).all()
    assert spherecodec.encode(sample, again) == spherecodec.encode(sample, fitted)
    other = spherecodec.fit("pq", sample, **{**PARAMS, "seed": 1})
    assert not np.array_equal(other.state.codebooks, fitted.state.codebooks)
    # the thread count of the parallel training does not change the codebooks
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        single = spherecodec.fit("pq", sample, **PARAMS)
    finally:
        numba.set_num_threads(previous)
    assert (single.state.codebooks.view(np.uint32) == fitted.state.codebooks.view(np.uint32)).all()


def _nearest(sample, codebooks):
    m, k, dsub = codebooks.shape
    sub = sample.reshape(len(sample), m, dsub).astype(np.float64)
    d = ((sub[:, :, None, :] - codebooks[None].astype(np.float64)) ** 2).sum(-1)
    return d.argmin(-1), d.min(-1)


def test_codes_are_nearest_codewords(sample, fitted):
    codes = fitted.codec.codes(sample, fitted.state)
    best, best_d = _nearest(sample, fitted.state.codebooks)
    m, k, dsub = fitted.state.codebooks.shape
    sub = sample.reshape(len(sample), m, dsub).astype(np.float64)
    chosen = fitted.state.codebooks[np.arange(m)[None, :], codes.astype(np.int64)].astype(np.float64)
    chosen_d = ((sub - chosen) ** 2).sum(-1)
    # float32 distance arithmetic may pick an equally near codeword, never a farther one
    assert (chosen_d <= best_d + 1e-5).all()
    assert (codes == best).mean() > 0.99


def test_decoded_rows_are_codeword_lookups(sample, fitted):
    y = spherecodec.decode(fitted.encode(sample))
    assert y.dtype == np.float32 and y.shape == sample.shape
    codes = fitted.codec.codes(sample, fitted.state).astype(np.int64)
    expected = fitted.state.codebooks[np.arange(24)[None, :], codes].reshape(len(sample), 384)
    assert (y.view(np.uint32) == expected.view(np.uint32)).all()


def test_lloyd_iterations_reduce_distortion(sample):
    errors = []
    for niter in (0, 2, 8):
        codec = spherecodec.fit("pq", sample, **{**PARAMS, "niter": niter})
        y = spherecodec.decode(codec.encode(sample))
        errors.append(((sample - y) ** 2).sum())
    assert errors[0] > errors[1] > errors[2]


def test_kmeans_kernel_matches_numpy_lloyd():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 4)).astype(np.float32)
    init = x[:8].copy()
    labels = np.empty(300, np.int32)
    centroids = init.copy()
    km.kmeans(x, centroids, 5, labels)
    c = init.astype(np.float64)
    for _ in range(5):
        lab = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
        c = np.stack([x[lab == j].mean(0) if (lab == j).any() else c[j] for j in range(8)])
    assert np.allclose(centroids, c, atol=1e-5)
    assert (labels == ((x[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)).mean() > 0.99


def test_empty_clusters_are_refilled():
    # 40 identical points and 10 distinct ones: most initial centroids collide
    x = np.concatenate([np.zeros((40, 2)), np.arange(20).reshape(10, 2)]).astype(np.float32)
    centroids = np.zeros((8, 2), np.float32)
    labels = np.empty(50, np.int32)
    km.kmeans(x, centroids, 5, labels)
    assert len({tuple(c) for c in centroids}) == 8


@pytest.mark.parametrize("nbits", [1, 3, 8])
def test_payload_is_m_times_nbits_per_row(sample, nbits):
    codec = spherecodec.fit("pq", sample, m=12, nbits=nbits, niter=2)
    blob = codec.encode(sample, chunk_rows=100)
    layout = parse_layout(blob)
    sizes = [len(c) for c in layout["chunks"]]
    assert sizes == [1 + (min(100, 512 - s) * 12 * nbits + 7) // 8 for s in range(0, 512, 100)]
    assert len(layout["shared"]) == 4 * (1 << nbits) * 384
    y = spherecodec.decode(blob)
    codes = codec.codec.codes(sample, codec.state).astype(np.int64)
    expected = codec.state.codebooks[np.arange(12)[None, :], codes].reshape(512, 384)
    assert (y == expected).all()
    assert spherecodec.info(blob)["nbytes"] <= codec.max_expansion * len(blob)
    assert codec.max_expansion == 32.0 * 32 / nbits  # 32 values per subspace


def test_entropy_same_codes(sample, fitted):
    coded = FittedCodec(spherecodec.get_codec("pq")(**{**fitted.get_config(), "entropy": True}), fitted.state)
    a = spherecodec.decode(fitted.encode(sample))
    blob = coded.encode(sample)
    assert len(blob) <= len(fitted.encode(sample))
    assert (spherecodec.decode(blob) == a).all()
    assert spherecodec.info(blob)["nbytes"] <= coded.max_expansion * len(blob)
    # a skewed code distribution makes the coded mode win
    skewed = np.repeat(sample[:4], 200, axis=0)
    assert parse_layout(coded.encode(skewed))["chunks"][0][0] == 1
    assert (spherecodec.decode(coded.encode(skewed)) == spherecodec.decode(fitted.encode(skewed))).all()


def test_fitted_pq_is_stable_across_batches(sample, fitted):
    whole = spherecodec.decode(fitted.encode(sample[100:]))
    parts = np.concatenate([spherecodec.decode(fitted.encode(sample[a:b])) for a, b in ((100, 101), (101, 512))])
    assert (whole == parts).all()


def test_default_m_and_bad_arguments(sample):
    codec = spherecodec.fit("pq", sample, nbits=2, niter=1)
    assert codec.get_config()["m"] == 48 and codec.codec.m is None and spherecodec.info(codec.encode(sample[:3]))["params"]["m"] == 48
    with pytest.raises(ValueError, match="divid"):
        spherecodec.encode(sample, "pq", m=5)
    with pytest.raises(ValueError, match="training rows"):
        spherecodec.encode(sample[:100], "pq", m=8, nbits=8)
    for bad in ({"nbits": 9}, {"nbits": 0}, {"m": 0}, {"niter": -1}, {"seed": -2}, {"m": 2.0}, {"nbits": True}):
        with pytest.raises(ValueError):
            spherecodec.get_codec("pq")(**bad)
    bad = sample.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError):
        spherecodec.encode(bad, "pq", m=8, nbits=2)
    with pytest.raises(ValueError):
        codec.encode(bad)


def test_config_round_trip(fitted):
    check_config_round_trip(fitted.codec)
    check_config_round_trip(spherecodec.get_codec("pq")())


def test_forged_codebooks_are_rejected(sample, fitted):
    blob = fitted.encode(sample[:20])
    layout = parse_layout(blob)
    shared = np.frombuffer(layout["shared"], "<f4").copy()
    for data in (shared[:-1].tobytes(), b"", (shared * np.float32(np.nan)).tobytes()):
        with pytest.raises(spherecodec.CorruptBlobError):
            spherecodec.decode(build_blob(meta=layout["meta"], chunks=layout["chunks"], shared=data))
    for m in (None, 7):
        meta = {**layout["meta"], "params": {**layout["meta"]["params"], "m": m}}
        with pytest.raises(spherecodec.CorruptBlobError):
            spherecodec.decode(build_blob(meta=meta, chunks=layout["chunks"], shared=layout["shared"]))


def test_damaged_blobs_raise(sample, fitted):
    check_corruptions(fitted.encode(sample[:30], chunk_rows=8), n=60)
