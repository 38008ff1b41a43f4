"""The bit-exact codec: every bit of every float comes back, on every shape and dtype."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spherecodec
from common import (assert_same_bits, build_blob, check_config_round_trip, check_corruptions,
                    check_round_trip_exact, check_truncations, load_sample, parse_layout)
from spherecodec.codecs.exact import ExactCodec
from spherecodec.errors import SpherecodecError, UnsupportedError

BACKENDS = ("numba", "constriction")
FLOATS = (np.float16, np.float32, np.float64)
UNSIGNED = {np.float16: np.uint16, np.float32: np.uint32, np.float64: np.uint64}
# sign + exponent bits, mantissa bits
LAYOUT = {np.float16: (6, 10), np.float32: (9, 23), np.float64: (12, 52)}


def special_values(dtype):
    """Every kind of special float of ``dtype``, built from bit patterns."""
    utype = UNSIGNED[dtype]
    head, mant = LAYOUT[dtype]
    nbits = head + mant
    sign = 1 << (nbits - 1)
    exp_all = ((1 << (head - 1)) - 1) << mant
    quiet = 1 << (mant - 1)
    top = (1 << mant) - 1
    patterns = [
        0, sign,                                        # +0, -0
        exp_all, exp_all | sign,                        # +inf, -inf
        exp_all | quiet, exp_all | quiet | sign,        # canonical quiet NaNs
        exp_all | quiet | 1, exp_all | quiet | 0x5A5 % top,  # quiet NaNs with payloads
        exp_all | 1, exp_all | sign | 1,                # signalling NaNs, smallest payload
        exp_all | (quiet - 1), exp_all | 0b1010 | sign,  # signalling NaNs with payload bits
        exp_all | top, exp_all | top | sign,            # all-ones NaNs
        1, 1 | sign,                                    # smallest subnormals
        top, top | sign,                                # largest subnormals
        1 << mant, (1 << mant) | sign,                  # smallest normals
        exp_all - 1, (exp_all - 1) | sign,              # largest finite (max / min normal)
        ((1 << (head - 2)) - 1) << mant,                # 1.0
        (((1 << (head - 2)) - 1) << mant) | sign,       # -1.0
    ]
    return np.array(patterns, dtype=np.uint64).astype(utype).view(dtype)


def test_special_values_are_what_they_claim():
    for dtype in FLOATS:
        v = special_values(dtype)
        info = np.finfo(dtype)
        assert np.isnan(v).sum() == 10
        assert np.isposinf(v).sum() == 1 and np.isneginf(v).sum() == 1
        assert v[14] == info.smallest_subnormal and v[20] == info.max and v[21] == info.min
        assert v[18] == info.smallest_normal and v[22] == 1.0 and v[23] == -1.0
        assert v[16] < info.smallest_normal and v[16] > 0 and np.signbit(v[1])
        # signalling NaNs: quiet bit clear, payload non-zero
        b = v.view(UNSIGNED[dtype]).astype(np.uint64)
        quiet_bit = np.uint64(1 << (LAYOUT[dtype][1] - 1))
        assert ((b[8:12] & quiet_bit) == 0).all() and np.isnan(v[8:12]).all()


def make_content(kind, shape, dtype, seed):
    """Test arrays of several statistical kinds (random bits, specials, embeddings-like)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    utype = UNSIGNED[dtype]
    if kind == "bits":
        flat = rng.integers(0, np.iinfo(utype).max, size=n, dtype=utype, endpoint=True).view(dtype)
    elif kind == "specials":
        flat = rng.choice(special_values(dtype), size=n)
    elif kind == "gauss":
        flat = (rng.standard_normal(n) * 0.05).astype(dtype)
    elif kind == "constant":
        flat = np.full(n, rng.choice(special_values(dtype)), dtype=dtype)
    else:  # mixed: embeddings-like values with specials sprinkled in
        flat = (rng.standard_normal(n) * 0.05).astype(dtype)
        k = rng.integers(0, n + 1)
        flat[rng.integers(0, max(n, 1), size=k)] = rng.choice(special_values(dtype), size=k)
    return np.ascontiguousarray(flat.reshape(shape))


shapes = st.one_of(
    st.just(()),
    st.tuples(st.integers(0, 40)),
    st.tuples(st.integers(0, 30), st.integers(0, 40)),
    st.tuples(st.integers(0, 4), st.integers(0, 5), st.integers(0, 9)),
    st.tuples(st.integers(0, 3), st.sampled_from([1, 383, 384, 1024, 4096])),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes, dtype=st.sampled_from(FLOATS),
       kind=st.sampled_from(["bits", "specials", "gauss", "constant", "mixed"]),
       chunk_rows=st.one_of(st.none(), st.integers(1, 7)), backend=st.sampled_from(BACKENDS),
       seed=st.integers(0, 2**32 - 1))
def test_round_trip_property(shape, dtype, kind, chunk_rows, backend, seed):
    arr = make_content(kind, shape, dtype, seed)
    params = {"entropy": backend}
    if chunk_rows is not None:
        params["chunk_rows"] = chunk_rows
    blob = check_round_trip_exact(arr, "exact", **params)
    meta = spherecodec.info(blob)
    rows = 1 if arr.ndim < 2 else int(np.prod(arr.shape[:-1]))
    dim = 1 if arr.ndim == 0 else arr.shape[-1]
    assert meta["chunks"] == (-(-rows // meta["chunk_rows"]) if dim else 0)


@pytest.mark.parametrize("shape", [
    (), (0,), (1,), (7,), (0, 384), (1, 384), (100, 1), (5, 0), (2, 0, 3), (0, 3, 4),
    (3, 4096), (2, 3, 5), (4, 2, 3, 2)])
@pytest.mark.parametrize("dtype", FLOATS)
def test_round_trip_shapes(shape, dtype):
    arr = make_content("mixed", shape, dtype, seed=len(shape))
    for chunk_rows in (None, 1, 3):
        check_round_trip_exact(arr, chunk_rows=chunk_rows)


def test_scalar_and_python_inputs():
    check_round_trip_exact(np.float32(np.nan))
    check_round_trip_exact(np.array(-0.0, dtype=np.float64))
    # python floats become float64; lists of rows a 2-D array
    assert_same_bits(spherecodec.decode(spherecodec.encode([[1.5, -0.0], [np.inf, 2.0]])),
                     np.array([[1.5, -0.0], [np.inf, 2.0]]))


def test_non_contiguous_and_big_endian_inputs():
    x = make_content("mixed", (20, 30), np.float32, seed=3)
    check_round_trip_exact(x[::2, 1::3])
    check_round_trip_exact(np.asfortranarray(x))
    for dtype in FLOATS:
        arr = make_content("bits", (6, 7), dtype, seed=4)
        swapped = arr.astype(arr.dtype.newbyteorder(">"))
        y = spherecodec.decode(spherecodec.encode(swapped, chunk_rows=4))
        assert_same_bits(y, arr)  # decoded in native order, same values and NaN payloads


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_special_value_round_trips(dtype, backend):
    v = special_values(dtype)
    check_round_trip_exact(v, entropy=backend)
    check_round_trip_exact(np.tile(v, (9, 1)), entropy=backend, chunk_rows=2)


def test_every_float16_bit_pattern_round_trips():
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).reshape(256, 256)
    for backend in BACKENDS:
        check_round_trip_exact(every, entropy=backend, chunk_rows=100)
        check_round_trip_exact(every[:, ::-1].copy(), entropy=backend)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_bit_patterns(dtype):
    utype = UNSIGNED[dtype]
    rng = np.random.default_rng(5)
    x = rng.integers(0, np.iinfo(utype).max, size=(64, 257), dtype=utype, endpoint=True).view(dtype)
    for backend in BACKENDS:
        check_round_trip_exact(x, entropy=backend, chunk_rows=10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_embeddings_round_trip(backend):
    x = load_sample()
    blob = check_round_trip_exact(x, entropy=backend)
    assert spherecodec.info(blob)["ratio"] > 1.15  # 12-bit heads of unit vectors compress
    small = check_round_trip_exact(x, entropy=backend, chunk_rows=37)
    assert_same_bits(spherecodec.decode_rows(small, 100, 300), x[100:300])


def test_backends_decode_to_identical_bits_and_cross_decode():
    x = load_sample()[:200]
    blobs = {b: spherecodec.encode(x, entropy=b, chunk_rows=64) for b in BACKENDS}
    assert blobs["numba"] != blobs["constriction"]
    decoded = {b: spherecodec.decode(blob) for b, blob in blobs.items()}
    assert_same_bits(decoded["numba"], decoded["constriction"])
    assert_same_bits(decoded["numba"], x)
    # the entropy backend is a per-stream byte: every chunk says how to decode itself
    # (the Numba coder's streams of 2**14 symbols or more take the 32-lane layout, 2)
    for b, blob in blobs.items():
        for i, chunk in enumerate(parse_layout(blob)["chunks"]):
            n_values = min(64, 200 - 64 * i) * 384
            expected = BACKENDS.index(b) if b == "constriction" or n_values < 1 << 14 else 2
            assert chunk[0] == 0 and chunk[1 + n_values * 20 // 8] == expected


# --- compression quality -------------------------------------------------------------

def _varint(buf, pos):
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, pos


def stream_parts(payload, n_values, raw_bits):
    """Sizes of a coded exact chunk's parts: (table bytes incl. stream header, body bytes)."""
    assert payload[0] == 0
    pos = 1 + n_values * (raw_bits // 8) + (n_values * (raw_bits % 8) + 7) // 8
    start = pos
    pos += 2
    n_used, pos = _varint(payload, pos)
    for _ in range(2 * n_used):
        _, pos = _varint(payload, pos)
    nbytes, pos = _varint(payload, pos)
    assert pos + nbytes == len(payload)
    return pos - start, nbytes


def order0_entropy_bytes(symbols):
    counts = np.bincount(symbols)
    p = counts[counts > 0] / symbols.size
    return float(-(p * np.log2(p)).sum()) * symbols.size / 8


def test_numba_chunks_within_half_a_percent_of_constriction():
    x = load_sample()
    sizes = {}
    for backend in BACKENDS:
        layout = parse_layout(spherecodec.encode(x, entropy=backend))
        assert len(layout["chunks"]) == 1
        sizes[backend] = len(layout["chunks"][0])
    assert abs(sizes["numba"] / sizes["constriction"] - 1) < 0.005, sizes


@pytest.mark.parametrize("backend", BACKENDS)
def test_coded_stream_overhead_over_order0_entropy(backend):
    x = load_sample()
    symbols = x.view(np.uint32).reshape(-1) >> 20  # float32: 9 head + 3 mantissa bits
    ideal = order0_entropy_bytes(symbols)
    chunk = parse_layout(spherecodec.encode(x, entropy=backend))["chunks"][0]
    table, body = stream_parts(chunk, x.size, 20)
    assert body < 1.005 * ideal, (body, ideal)
    # the frequency table (about 2 bytes per used symbol) adds its own, fixed cost
    assert table < 3 * len(np.unique(symbols)) + 8
    assert body + table < 1.01 * ideal, (body + table, ideal)


# --- dtypes and parameters -------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int32, np.int16, np.uint8, np.uint32, np.complex64,
                                   np.complex128, object, bool, "U3", "S2", "datetime64[s]"])
def test_unsupported_dtypes_raise(dtype):
    arr = np.zeros((3, 4), dtype=dtype)
    with pytest.raises(UnsupportedError) as excinfo:
        spherecodec.encode(arr)
    assert isinstance(excinfo.value, ValueError)
    with pytest.raises(UnsupportedError):
        spherecodec.encode(arr, ExactCodec(entropy="constriction"))


def test_stored_chunk_round_trips():
    rng = np.random.default_rng(6)
    noise = rng.integers(0, 2**32, size=(40, 64), dtype=np.uint32).view(np.float32)
    smooth = np.zeros((40, 64), np.float32)
    for backend in BACKENDS:
        blob = check_round_trip_exact(np.concatenate([noise, smooth]), entropy=backend, chunk_rows=40)
        modes = [c[0] for c in parse_layout(blob)["chunks"]]
        assert modes == [1, 6]  # incompressible bits are stored verbatim, zeros as one value
        stored = parse_layout(blob)["chunks"][0]
        assert len(stored) == 1 + noise.nbytes
        assert stored[1:] == noise.astype("<f4").tobytes()
    for dtype in FLOATS:
        arr = make_content("bits", (30, 33), dtype, seed=7)
        blob = check_round_trip_exact(arr)
        assert parse_layout(blob)["chunks"][0][0] == 1


@pytest.mark.parametrize("dtype,allowed", [(np.float16, range(7)), (np.float32, range(7)),
                                           (np.float64, range(4))])
def test_mantissa_bits_round_trip(dtype, allowed):
    arr = make_content("gauss", (17, 50), dtype, seed=8)
    arr[3, :5] = special_values(dtype)[:5]
    sizes = []
    for m in allowed:
        for backend in BACKENDS:
            blob = check_round_trip_exact(arr, mantissa_bits=m, entropy=backend, chunk_rows=5)
            assert spherecodec.info(blob)["params"]["mantissa_bits"] == m
        sizes.append(len(blob))
    assert len(set(sizes)) > 1  # the parameter changes the coding
    for m in range(max(allowed) + 1, 7):
        with pytest.raises(UnsupportedError):
            spherecodec.encode(arr, mantissa_bits=m)


def test_default_mantissa_bits_is_three():
    x = load_sample()[:50]
    a, b = (parse_layout(spherecodec.encode(x, mantissa_bits=m, threads=1))["chunks"]
            for m in (None, 3))
    assert a == b  # same chunk bytes; only the params in the metadata differ
    assert spherecodec.info(spherecodec.encode(x))["params"]["mantissa_bits"] is None


@pytest.mark.parametrize("params", [
    {"mantissa_bits": 7}, {"mantissa_bits": -1}, {"mantissa_bits": True}, {"mantissa_bits": 2.0},
    {"mantissa_bits": "3"}, {"entropy": "zstd"}, {"entropy": None}, {"bogus": 1}])
def test_bad_parameters_raise_at_encode(params):
    with pytest.raises((ValueError, TypeError)):
        spherecodec.encode(np.zeros((2, 3), np.float32), **params)


def test_config_round_trip():
    for params in ({}, {"mantissa_bits": 0}, {"mantissa_bits": 6, "entropy": "constriction"},
                   {"entropy": "numba", "mantissa_bits": None}):
        codec = ExactCodec(**params)
        rebuilt = check_config_round_trip(codec)
        x = make_content("mixed", (5, 6), np.float32, seed=9)
        assert spherecodec.encode(x, rebuilt) == spherecodec.encode(x, "exact", **params)
    assert ExactCodec(mantissa_bits=2) != ExactCodec(mantissa_bits=3)
    assert ExactCodec() == ExactCodec(mantissa_bits=None, entropy="numba")


# --- damaged blobs -------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_truncations_and_corruptions(backend, dtype):
    arr = make_content("mixed", (9, 24), dtype, seed=10)
    for chunk_rows in (4, 100):
        blob = spherecodec.encode(arr, entropy=backend, chunk_rows=chunk_rows)
        check_truncations(blob)
        raised = check_corruptions(blob, n=150, seed=chunk_rows)
        assert raised["plain"] == 150  # the checksums catch every corruption of 1..3 bytes here


@pytest.mark.parametrize("backend", BACKENDS)
def test_corrupted_entropy_streams_are_caught(backend):
    """Corruptions inside the entropy stream, past the checksums, are caught by the stream checks."""
    x = load_sample()[:4, :128]
    layout = parse_layout(spherecodec.encode(x, entropy=backend, chunk_rows=4))
    chunk = layout["chunks"][0]
    raw_end = 1 + x.size * 20 // 8
    rng = np.random.default_rng(11)
    raised = 0
    trials = 400
    for _ in range(trials):
        damaged = bytearray(chunk)
        for pos in rng.integers(raw_end, len(chunk), size=rng.integers(1, 3)):
            damaged[pos] ^= int(rng.integers(1, 256))
        blob = build_blob(meta=layout["meta"], chunks=[bytes(damaged)])
        try:
            y = spherecodec.decode(blob)
        except SpherecodecError:
            raised += 1
        else:
            assert y.shape == x.shape and y.dtype == x.dtype
    assert raised >= 0.8 * trials, raised


def test_garbage_mode_byte_and_stored_length():
    x = make_content("gauss", (16, 64), np.float32, seed=12)
    layout = parse_layout(spherecodec.encode(x))
    chunk = layout["chunks"][0]
    assert chunk[0] == 0  # coded
    for payload in (b"", bytes([2]) + chunk[1:], bytes([255]) + chunk[1:], bytes([1]) + chunk[1:],
                    bytes([1]) + x.tobytes()[:-1], bytes([0])):
        with pytest.raises(SpherecodecError):
            spherecodec.decode(build_blob(meta=layout["meta"], chunks=[payload]))
    stored = bytes([1]) + x.astype("<f4").tobytes()
    assert_same_bits(spherecodec.decode(build_blob(meta=layout["meta"], chunks=[stored])), x)
