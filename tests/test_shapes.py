"""The exact codec on what real stores hold besides plain float32: values that were bfloat16
or float16, zeros, padded rows, sparse rows, bfloat16 arrays and torch tensors (chunk modes
4, 5 and 6; docs/format.md 3.2)."""

import sys

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spherecodec
from common import assert_same_bits, load_sample, parse_layout
from spherecodec import container
from spherecodec.bench.shapes import SHAPES, make_shape
from spherecodec.errors import CorruptBlobError

MODE_CODED, MODE_TRAILING, MODE_SPARSE, MODE_CONSTANT = 0, 4, 5, 6


def _modes(blob):
    return [c[0] for c in parse_layout(blob)["chunks"]]


def _round_trip(x, **params):
    blob = spherecodec.encode(x, threads=1, **params)
    assert_same_bits(spherecodec.decode(blob), x)
    return blob


@pytest.fixture(scope="module")
def sample():
    return load_sample()[:512]


# every shape: bit-exact, in the mode that fits it, and smaller than plain float32 costs
@pytest.mark.parametrize("name,modes,least_ratio", [
    ("plain", {MODE_CODED}, 1.15),
    ("bf16-upcast", {MODE_TRAILING}, 2.9),     # 16 zero low bits are not stored
    ("fp16-upcast", {MODE_TRAILING}, 2.2),     # 13 of them
    ("zeros", {MODE_CONSTANT}, 2000.0),        # a few bytes per chunk
    ("padded-rows", {MODE_SPARSE}, 2.2),       # a zero costs no raw bits
    ("sparse-95", {MODE_SPARSE}, 12.0),
])
def test_each_shape_codes_in_its_mode(sample, name, modes, least_ratio):
    x = make_shape(name, sample)
    blob = _round_trip(x)
    assert set(_modes(blob)) == modes
    assert x.nbytes / len(blob) >= least_ratio


def test_plain_float32_keeps_its_bytes(sample):
    """No zeros, no shared zero bits: the chunks are mode 0 exactly as before the shape
    modes (the golden blobs pin the bytes; here, that nothing else is tried)."""
    blob = _round_trip(sample)
    assert set(_modes(blob)) == {MODE_CODED}


def test_a_few_zeros_are_measured_both_ways(sample):
    """Between 1/128 and 1/16 zeros both codings are made and the smaller kept."""
    x = sample.copy()
    x.reshape(-1)[::50] = 0.0  # 2% zeros
    blob = _round_trip(x, chunk_rows=128)
    plain_size = len(spherecodec.encode(sample, threads=1, chunk_rows=128))
    assert set(_modes(blob)) <= {MODE_CODED, MODE_SPARSE}
    assert len(blob) < plain_size  # zeros save their raw bits whichever mode won


def test_negative_zero_and_nan_payloads_are_values(sample):
    """Only +0.0 is "zero": -0.0 and every NaN payload come back as they went in."""
    x = np.zeros((64, 48), np.float32)
    x[::3, ::5] = -0.0
    x.view(np.uint32)[1::7, 2] = 0x7FC00123
    x.view(np.uint32)[5, 5] = 0xFF800001  # a signalling NaN
    x[9, 9] = -np.inf
    x.view(np.uint32)[11, 11] = 1  # the smallest subnormal
    blob = _round_trip(x)
    assert _modes(blob) == [MODE_SPARSE]


def test_constant_chunks_of_every_dtype():
    for dtype in (np.float16, ml_dtypes.bfloat16, np.float32, np.float64):
        for value in (0.0, -0.0, 1.5, np.inf, np.nan):
            x = np.full((30, 17), value, dtype=dtype)
            blob = _round_trip(x, chunk_rows=10)
            assert _modes(blob) == [MODE_CONSTANT] * 3
    single = np.array([[np.float32(2.5)]])
    assert _modes(_round_trip(single)) != [MODE_CONSTANT]  # one value: nothing to repeat


def test_trailing_zero_bits_of_every_dtype():
    rng = np.random.default_rng(3)
    x64 = rng.standard_normal((40, 24)).astype(np.float32).astype(np.float64)  # 29 zero bits
    assert set(_modes(_round_trip(x64))) == {MODE_TRAILING}
    x16 = (rng.integers(0, 64, (40, 24)) / 8).astype(np.float16)  # few mantissa bits
    assert set(_modes(_round_trip(x16))) == {MODE_TRAILING}
    truncated = rng.standard_normal((40, 24)).astype(np.float32)
    truncated.view(np.uint32)[:] &= np.uint32(0xFFFFFFE0)  # any number of bits, here 5
    assert set(_modes(_round_trip(truncated))) == {MODE_TRAILING}


def test_levels_and_transforms_take_the_shape_modes(sample):
    x = make_shape("bf16-upcast", sample)
    for params in ({"level": 3}, {"transform": "auto"}):
        blob = _round_trip(x, **params)
        assert set(_modes(blob)) == {MODE_TRAILING}, params


SHAPE_NAMES = [name for name in SHAPES if name != "plain"]


@st.composite
def mixed_arrays(draw):
    """Row blocks of random shapes (real vectors underneath), specials sprinkled in."""
    base = load_sample()
    dim = draw(st.integers(1, 40))
    blocks = []
    for _ in range(draw(st.integers(1, 5))):
        rows = draw(st.integers(1, 30))
        start = draw(st.integers(0, base.shape[0] - rows))
        block = np.ascontiguousarray(base[start:start + rows, :dim])
        blocks.append(make_shape(draw(st.sampled_from(SHAPE_NAMES + ["plain"])), block, seed=start))
    x = np.concatenate(blocks)
    specials = np.array([0x7FC00123, 0xFF800001, 0x7F800000, 0xFF800000, 0x80000000, 1, 0x807FFFFF],
                        dtype=np.uint32)
    for _ in range(draw(st.integers(0, 4))):
        x.view(np.uint32).reshape(-1)[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from(specials))
    return x


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=mixed_arrays(), chunk_rows=st.integers(1, 40), entropy=st.sampled_from(["numba", "constriction"]))
def test_mixed_shapes_round_trip_bit_exact(x, chunk_rows, entropy):
    blob = _round_trip(x, chunk_rows=chunk_rows, entropy=entropy)
    assert spherecodec.encode(x, threads=2, chunk_rows=chunk_rows, entropy=entropy) == blob


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=mixed_arrays(), chunk_rows=st.integers(1, 40))
def test_mixed_shapes_in_half_precision(x, chunk_rows):
    for dtype in (ml_dtypes.bfloat16, np.float16):
        with np.errstate(over="ignore", invalid="ignore"):
            _round_trip(x.astype(dtype), chunk_rows=chunk_rows)


def test_bfloat16_arrays(sample):
    """bfloat16 in, bfloat16 out (ml_dtypes), every bit: specials, subnormals, any shape."""
    x = sample.astype(ml_dtypes.bfloat16)
    blob = _round_trip(x)
    assert spherecodec.info(blob)["dtype"] == "bfloat16"
    assert x.nbytes / len(blob) >= 1.45
    bits = np.array([0x7FC1, 0xFF81, 0x7F80, 0xFF80, 0x8000, 0x0001, 0x807F, 0x7F7F], np.uint16)
    odd = np.resize(bits, (3, 4, 8)).view(ml_dtypes.bfloat16)
    _round_trip(odd)
    _round_trip(x[:7, 5])  # 1-D, non-contiguous
    assert spherecodec.decode_rows(blob, 10, 20).tobytes() == x[10:20].tobytes()


def test_torch_tensors_go_in_without_converting(sample):
    torch = pytest.importorskip("torch")  # the test extra installs it: never skipped in CI
    t = torch.from_numpy(sample[:64]).reshape(4, 16, 384)
    for dtype, view in ((torch.float32, torch.int32), (torch.float16, torch.int16),
                        (torch.bfloat16, torch.int16)):
        tensor = t.to(dtype).clone().requires_grad_(dtype != torch.float16)
        decoded = spherecodec.decode(spherecodec.encode(tensor))
        expected = tensor.detach().contiguous().view(view).numpy()
        assert decoded.shape == tuple(tensor.shape)
        assert decoded.dtype == {torch.float32: np.float32, torch.float16: np.float16,
                                 torch.bfloat16: ml_dtypes.bfloat16}[dtype]
        assert (decoded.view(expected.dtype) == expected).all()
    strided = t.to(torch.bfloat16)[:, ::3, 1::2]
    decoded = spherecodec.decode(spherecodec.encode(strided))
    assert (decoded.view(np.int16) == strided.contiguous().view(torch.int16).numpy()).all()
    blob = spherecodec.encode(sample[:200], "int8")
    scores, ids = spherecodec.search(blob, torch.from_numpy(sample[:3]), k=1)
    assert ids[:, 0].tolist() == [0, 1, 2]


def test_import_does_not_load_torch():
    import subprocess

    code = "import sys, spherecodec; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def _chunk_payload_forged(blob, payload):
    """``blob`` (one chunk) with its chunk replaced by ``payload``, checksums made good."""
    from common import build_blob

    layout = parse_layout(blob)
    return build_blob(meta=layout["meta"], chunks=[payload])


@pytest.mark.parametrize("payload,message", [
    (bytes([MODE_CONSTANT, 1, 2]), "constant chunk holds"),
    (bytes([MODE_TRAILING, 0]) + bytes(40), "zero low bits"),
    (bytes([MODE_TRAILING, 21]) + bytes(40), "zero low bits"),
    (bytes([MODE_SPARSE, 0x80, 0x80, 0x80, 0x80, 0x01]), "exceeds its 32 values"),
    (bytes([MODE_SPARSE, 0x80]), "cut short"),
    (bytes([MODE_SPARSE, 3]), "runs past"),
    (bytes([MODE_TRAILING]), "ends before"),
])
def test_damaged_shape_chunks_raise_clear_errors(payload, message):
    blob = spherecodec.encode(np.ones((4, 8), np.float32) * 1.5, chunk_rows=4)
    forged = _chunk_payload_forged(blob, payload)
    with pytest.raises(CorruptBlobError, match=message):
        spherecodec.decode(forged)


def test_a_constant_chunk_cannot_buy_an_allocation():
    """A header that announces more than its dense chunks may stand for is refused before
    anything is allocated; a damaged mode byte buys nothing (its checksum fails first)."""
    from common import build_blob

    blob = spherecodec.encode(np.zeros((4000, 256), np.float32), threads=1)
    header = container.Header(blob)
    assert header.nbytes <= header.budget
    layout = parse_layout(blob)
    rows = int(header.budget // (256 * 4)) + 4000
    meta = dict(layout["meta"], rows=rows, shape=[rows, 256], chunk_rows=-(-rows // len(layout["chunks"])))
    with pytest.raises(CorruptBlobError, match="more than this"):
        spherecodec.decode(build_blob(meta=meta, chunks=layout["chunks"]))


def test_long_chunks_are_sampled_yet_find_zero_rows_at_their_end(sample):
    """A chunk of 32,768 values or more is probed on a sample before the full scan; zarr's
    fill (zero rows after the data) and a 1% sprinkle of zeros still take the sparse mode."""
    x = np.resize(sample, (1400, 384))
    filled = x.copy()
    filled[-70:] = 0.0
    sprinkled = x.copy()
    sprinkled.reshape(-1)[::100] = 0.0
    plain_size = len(spherecodec.encode(x, threads=1, chunk_rows=1400))
    for y in (filled, sprinkled):
        blob = _round_trip(y, chunk_rows=1400)
        assert _modes(blob) == [MODE_SPARSE] and len(blob) < plain_size
    assert _modes(_round_trip(x, chunk_rows=1400)) == [MODE_CODED]
