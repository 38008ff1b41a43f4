"""Scalar quantization codecs: fp16, bf16, int8, int4, binary.

Checks the nominal ratios (exact payload sizes), the documented error bounds, rounding
rules, fitting and reuse across batches, entropy coding, and damaged blobs.
"""

import numpy as np
import pytest
from common import (DATA, build_blob, check_config_round_trip, check_corruptions, check_truncations,
                    load_sample, parse_layout)

import spherecodec
from spherecodec.codecs.quant import MIN_BITS_PER_SYMBOL
from spherecodec.fit import FittedCodec


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture(scope="module")
def sample_2000():
    import importlib.resources

    blob = (importlib.resources.files("spherecodec") / "data" / "minilm-sentences-2000.sphc").read_bytes()
    return spherecodec.decode(blob)


def payload_bytes(blob):
    layout = parse_layout(blob)
    return sum(len(c) for c in layout["chunks"]), layout


# --- ratios ---------------------------------------------------------------------------

@pytest.mark.parametrize("codec, bits_per_value", [("fp16", 16), ("bf16", 16), ("int8", 8), ("int4", 4)])
def test_raw_payload_is_exactly_the_nominal_bits(sample, codec, bits_per_value):
    blob = spherecodec.encode(sample, codec, chunk_rows=100)
    total, layout = payload_bytes(blob)
    n_values_per_chunk = [min(100, 512 - s) * 384 for s in range(0, 512, 100)]
    expected = sum(1 + (n * bits_per_value + 7) // 8 for n in n_values_per_chunk)
    assert total == expected
    assert len(layout["shared"]) == {"fp16": 0, "bf16": 0, "int8": 8 * 384, "int4": 8 * 384}[codec]


def test_binary_payload_is_one_bit_per_value(sample):
    blob = spherecodec.encode(sample[:, :381], "binary", chunk_rows=200)
    total, layout = payload_bytes(blob)
    # rows are padded to whole bytes: 381 bits -> 48 bytes
    assert total == 3 + 512 * 48
    assert len(layout["shared"]) == 12 * 381


@pytest.mark.parametrize("codec, nominal", [("fp16", 2), ("bf16", 2), ("int8", 4), ("int4", 8), ("binary", 32)])
def test_ratio_within_3_percent_of_nominal(sample_2000, codec, nominal):
    # binary's 4.6 kB of thresholds need a few thousand rows to fade below 3%
    x = np.concatenate([sample_2000, sample_2000]) if codec == "binary" else sample_2000
    ratio = spherecodec.info(spherecodec.encode(x, codec))["ratio"]
    assert nominal * 0.97 <= ratio <= nominal


# --- 16-bit floats ----------------------------------------------------------------------

def test_fp16_is_numpys_round_to_nearest_even(sample):
    x = np.concatenate([sample.reshape(-1), np.float32([0.0, -0.0, 1e-8, -3e-6, 65504.0, np.inf, -np.inf])])
    y = spherecodec.decode(spherecodec.encode(x, "fp16"))
    assert y.dtype == np.float32
    expected = x.astype(np.float16).astype(np.float32)
    assert (y.view(np.uint32) == expected.view(np.uint32)).all()
    normal = np.abs(x) >= 2.0 ** -14
    finite = np.isfinite(x)
    err = np.abs(x[finite].astype(np.float64) - y[finite])
    assert (err[normal[finite]] <= 2.0 ** -11 * np.abs(x[finite & normal])).all()
    assert (err[~normal[finite]] <= 2.0 ** -25).all()


def test_fp16_overflow_raises():
    with pytest.raises(ValueError, match="float16"):
        spherecodec.encode(np.float32([1.0, 70000.0]), "fp16")
    y = spherecodec.decode(spherecodec.encode(np.float32([np.nan, np.inf]), "fp16"))
    assert np.isnan(y[0]) and y[1] == np.inf


def _bf16_reference(x):
    # independent reference: round the float64 value to 8 significant bits, ties to even
    out = []
    for v in x.astype(np.float64):
        if not np.isfinite(v) or v == 0:
            out.append(v)
            continue
        m, e = np.frexp(v)  # v = m * 2**e, 0.5 <= |m| < 1
        scaled = m * 256.0
        r = np.round(scaled)  # numpy rounds half to even
        out.append(np.ldexp(r / 256.0, e))
    return np.array(out, dtype=np.float32)


def test_bf16_rounds_to_nearest_even(sample):
    ties = np.array([0x3F808000, 0x3F818000, 0xBF808000, 0x3F80C000, 0x3F807FFF], dtype=np.uint32).view(np.float32)
    x = np.concatenate([sample[:20].reshape(-1), ties])
    y = spherecodec.decode(spherecodec.encode(x, "bf16"))
    assert (y.view(np.uint32) & 0xFFFF == 0).all()
    assert (y.view(np.uint32) == _bf16_reference(x).view(np.uint32)).all()
    assert list(y[-5:].view(np.uint32) >> 16) == [0x3F80, 0x3F82, 0xBF80, 0x3F81, 0x3F80]
    assert (np.abs(x.astype(np.float64) - y) <= 2.0 ** -8 * np.abs(x)).all()


def test_bf16_keeps_nan_and_infinity():
    x = np.array([np.nan, -np.inf, np.inf, 3e38], dtype=np.float32)
    y = spherecodec.decode(spherecodec.encode(x, "bf16"))
    assert np.isnan(y[0]) and y[1] == -np.inf and y[2] == np.inf
    assert np.isfinite(y[3]) and abs(y[3] - 3e38) <= 2.0 ** -8 * 3e38


@pytest.mark.parametrize("codec", ["fp16", "bf16"])
def test_16bit_entropy_same_values_smaller_blob(sample, codec):
    plain = spherecodec.encode(sample, codec)
    coded = spherecodec.encode(sample, codec, entropy=True)
    assert len(coded) < 0.9 * len(plain)
    assert (spherecodec.decode(coded).view(np.uint32) == spherecodec.decode(plain).view(np.uint32)).all()


# --- int8 / int4 ------------------------------------------------------------------------

@pytest.mark.parametrize("codec", ["int8", "int4"])
@pytest.mark.parametrize("symmetric", [False, True])
def test_affine_error_bound(sample, codec, symmetric):
    fitted = spherecodec.fit(codec, sample, symmetric=symmetric)
    y = spherecodec.decode(fitted.encode(sample))
    assert y.dtype == np.float32 and y.shape == sample.shape
    err = np.abs(sample.astype(np.float64) - y)
    ulp = 4 * np.finfo(np.float32).eps * np.abs(sample).max()
    scale = fitted.state.scale
    bound = scale.astype(np.float64) / 2 + ulp
    assert (err <= bound).all()
    # the bound is tight: some value sits near half a step from its code
    assert (err > 0.4 * scale).any()
    if symmetric:
        assert (y[np.abs(sample) < scale / 2] == 0).all()
        zero = spherecodec.decode(fitted.encode(np.zeros((1, 384), np.float32)))
        assert (zero == 0).all()


@pytest.mark.parametrize("codec", ["int8", "int4"])
def test_clip_bounds_values_inside_and_clamps_outside(sample, codec):
    fitted = spherecodec.fit(codec, sample, clip=99.0)
    y = spherecodec.decode(fitted.encode(sample))
    scale = fitted.state.scale
    lo = fitted.state.offset.astype(np.float64)
    hi = lo + scale.astype(np.float64) * fitted.codec.cmax
    inside = (sample >= lo) & (sample <= hi)
    assert 0.95 < inside.mean() < 1.0
    err = np.abs(sample.astype(np.float64) - y)
    assert (err[inside] <= (scale / 2 + 1e-6 * np.ones_like(sample))[inside]).all()
    ulp = 1e-6
    assert ((y >= lo - ulp) & (y <= hi + ulp)).all()
    full = spherecodec.fit(codec, sample)
    # clipping trades the outliers for a finer step
    assert (scale <= full.state.scale).all() and (scale < full.state.scale).any()


@pytest.mark.parametrize("codec", ["int8", "int4", "binary"])
def test_entropy_coding_same_codes(sample, codec):
    fitted = spherecodec.fit(codec, sample)
    plain = fitted.encode(sample)
    coded = spherecodec.encode(sample, FittedCodec(spherecodec.get_codec(codec)(**{**fitted.get_config(), "entropy": True}),
                                                   fitted.state))
    assert (spherecodec.decode(coded).view(np.uint32) == spherecodec.decode(plain).view(np.uint32)).all()
    # entropy coding never costs more than the mode byte per chunk
    assert len(coded) <= len(plain)
    if codec != "binary":
        assert len(coded) < 0.97 * len(plain)


def test_constant_dimension_and_empty_batch(sample):
    x = sample.copy()
    x[:, 5] = 0.25
    for codec in ("int8", "int4", "binary"):
        fitted = spherecodec.fit(codec, x)
        y = spherecodec.decode(fitted.encode(x))
        assert (y[:, 5] == np.float32(0.25)).all(), codec
        empty = spherecodec.decode(fitted.encode(np.zeros((0, 384), np.float32)))
        assert empty.shape == (0, 384)


# --- binary -----------------------------------------------------------------------------

@pytest.mark.parametrize("center", [True, False])
def test_binary_values_are_side_means(sample, center):
    fitted = spherecodec.fit("binary", sample, center=center)
    t = sample.mean(axis=0) if center else np.zeros(384)
    state = fitted.state
    assert np.allclose(state.threshold, t, atol=1e-7)
    y = spherecodec.decode(fitted.encode(sample))
    above = sample > state.threshold
    assert (y == np.where(above, state.hi, state.lo)).all()
    for d in (0, 100, 383):
        assert np.isclose(state.hi[d], sample[above[:, d], d].mean(), rtol=1e-5)
        assert np.isclose(state.lo[d], sample[~above[:, d], d].mean(), rtol=1e-5)


# --- fitting ----------------------------------------------------------------------------

@pytest.mark.parametrize("codec", ["int8", "int4", "binary", "fp16", "bf16"])
def test_fitted_codec_is_stable_across_batches(sample, codec):
    fitted = spherecodec.fit(codec, sample[:256])
    state = fitted.shared_bytes(fitted.state)
    whole = spherecodec.decode(fitted.encode(sample[256:]))
    parts = [spherecodec.decode(fitted.encode(sample[a:b])) for a, b in ((256, 300), (300, 301), (301, 512))]
    assert (np.concatenate(parts).view(np.uint32) == whole.view(np.uint32)).all()
    # passing the fitted object to spherecodec.encode is the same as its .encode
    assert spherecodec.encode(sample[256:], fitted) == fitted.encode(sample[256:])
    assert fitted.shared_bytes(fitted.state) == state
    if codec in ("int8", "int4", "binary"):
        assert parse_layout(fitted.encode(sample[300:310]))["shared"] == state
        # a one-call encode fits on its own data instead
        assert parse_layout(spherecodec.encode(sample[256:], codec))["shared"] != state


def test_fit_then_encode_out_of_range_values_clip(sample):
    fitted = spherecodec.fit("int8", sample)
    y = spherecodec.decode(fitted.encode(np.full((2, 384), 10.0, np.float32)))
    assert np.allclose(y, fitted.state.offset + fitted.state.scale * 255, rtol=1e-6)


def test_fit_rejects_bad_input(sample):
    with pytest.raises(ValueError):
        spherecodec.fit("int8", sample.astype(np.float64))
    bad = sample.copy()
    bad[3, 3] = np.nan
    for codec in ("int8", "int4", "binary"):
        with pytest.raises(ValueError):
            spherecodec.fit(codec, bad)
        with pytest.raises(ValueError):
            spherecodec.encode(bad, codec)
        with pytest.raises(ValueError):
            spherecodec.fit(codec, sample).encode(bad)
    with pytest.raises(ValueError):
        spherecodec.fit("int8", sample).encode(sample[:, :100])
    with pytest.raises(ValueError):
        spherecodec.fit("int8", sample[:0])
    with pytest.raises(spherecodec.UnsupportedError):
        spherecodec.fit("exact", sample)


@pytest.mark.parametrize("params", [{"clip": 40}, {"clip": 100.5}, {"clip": "99"}, {"symmetric": 1},
                                    {"entropy": "yes"}, {"bits": 3}])
def test_bad_parameters(sample, params):
    with pytest.raises((ValueError, TypeError)):
        spherecodec.encode(sample, "int8", **params)


@pytest.mark.parametrize("codec, params", [("fp16", {"entropy": True}), ("bf16", {}), ("int8", {"clip": 99.5}),
                                           ("int4", {"symmetric": True, "entropy": True}),
                                           ("binary", {"center": False})])
def test_config_round_trip(codec, params):
    check_config_round_trip(spherecodec.get_codec(codec)(**params))


# --- damaged blobs ----------------------------------------------------------------------

def _forge_shared(blob, shared):
    layout = parse_layout(blob)
    return build_blob(meta=layout["meta"], chunks=layout["chunks"], shared=shared)


@pytest.mark.parametrize("codec", ["int8", "int4", "binary"])
def test_forged_shared_sections_are_rejected(sample, codec):
    blob = spherecodec.encode(sample[:50], codec)
    shared = np.frombuffer(parse_layout(blob)["shared"], dtype="<f4").copy()
    assert (spherecodec.decode(_forge_shared(blob, shared.tobytes())) == spherecodec.decode(blob)).all()
    forged = [shared[:-1].tobytes(), shared.tobytes() + b"\0", b""]
    for value in (np.nan, np.inf):
        bad = shared.copy()
        bad[-1] = value
        forged.append(bad.tobytes())
    if codec != "binary":
        bad = shared.copy()
        bad[-1] = -1.0  # a negative scale
        forged.append(bad.tobytes())
        bad = shared.copy()
        bad[-1] = 3e38  # offset + scale * cmax overflows float32
        forged.append(bad.tobytes())
    for data in forged:
        with pytest.raises(spherecodec.CorruptBlobError):
            spherecodec.decode(_forge_shared(blob, data))
        with pytest.raises(spherecodec.CorruptBlobError):
            spherecodec.search(_forge_shared(blob, data), sample[:1, :])


@pytest.mark.parametrize("codec, params", [("int4", {}), ("int8", {"entropy": True}), ("binary", {}),
                                           ("bf16", {"entropy": True})])
def test_damaged_blobs_raise(sample, codec, params):
    blob = spherecodec.encode(sample[:40, :64], codec, chunk_rows=16, **params)
    check_truncations(blob, max_lengths=60)
    check_corruptions(blob, n=60)


def test_padding_bits_must_be_zero(sample):
    blob = spherecodec.encode(sample[:1, :3], "int4")
    layout = parse_layout(blob)
    chunk = bytearray(layout["chunks"][0])
    chunk[-1] |= 0xF0
    with pytest.raises(spherecodec.CorruptBlobError):
        spherecodec.decode(build_blob(meta=layout["meta"], chunks=[bytes(chunk)], shared=layout["shared"]))
    blob = spherecodec.encode(sample[:1, :3], "binary")
    layout = parse_layout(blob)
    chunk = bytearray(layout["chunks"][0])
    chunk[-1] |= 0x80
    with pytest.raises(spherecodec.CorruptBlobError):
        spherecodec.decode(build_blob(meta=layout["meta"], chunks=[bytes(chunk)], shared=layout["shared"]))


@pytest.mark.parametrize("codec, params", [("fp16", {}), ("fp16", {"entropy": True}), ("bf16", {"entropy": True}),
                                           ("int8", {}), ("int8", {"entropy": True}), ("int4", {"entropy": True}),
                                           ("binary", {}), ("binary", {"entropy": True})])
def test_real_blobs_stay_within_max_expansion(sample, codec, params):
    # constant input is the best case of every entropy coder: the bound must still hold
    for x in (sample, np.full((512, 384), 0.5, np.float32), np.zeros((3000, 384), np.float32)):
        fitted = spherecodec.fit(codec, sample, **params)
        blob = fitted.encode(x)
        info = spherecodec.info(blob)
        assert info["nbytes"] <= fitted.max_expansion * len(blob)
        spherecodec.decode(blob)
    assert MIN_BITS_PER_SYMBOL < -np.log2(255 / 256)


def test_golden_files_decode_to_their_arrays():
    # tests/data/golden/<codec>/NAME.sphc decode to NAME.npy bit for bit (made by
    # scripts/make_quant_golden.py); tests/test_golden.py checks every codec the same way
    found = 0
    for codec in ("fp16", "bf16", "int8", "int4", "binary", "pq", "rabitq"):
        for path in sorted((DATA / "golden" / codec).glob("*.sphc")):
            expected = np.load(path.with_suffix(".npy"))
            got = spherecodec.decode(path.read_bytes())
            assert (got.view(np.uint32) == expected.view(np.uint32)).all(), path
            found += 1
    assert found >= 8
