"""The wide rANS layouts (entropy backends 2 and 3: 32 and 64 lanes): vector and scalar coders
against each other."""

import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spherecodec
from spherecodec import entropy
from spherecodec.errors import CorruptBlobError, SpherecodecError
from spherecodec.kernels import rans
from spherecodec.kernels import rans_simd
from spherecodec.kernels.bits import pack_low_bits, raw_size
from spherecodec.kernels.memory import copy_bytes
from common import assert_same_bits, load_sample, parse_layout

MIN = rans_simd.MIN_SYMBOLS
MIN64 = rans_simd.MIN_SYMBOLS_64
GOLDEN_WIDE = Path(__file__).resolve().parent / "data" / "golden" / "exact" / "f32_wide.sphc"


def skewed_symbols(n, alphabet, seed):
    """Symbols with a geometric-like law over a shuffled alphabet, as exponents have."""
    rng = np.random.default_rng(seed)
    ranks = np.minimum(rng.geometric(0.35, size=n) - 1, alphabet - 1)
    return rng.permutation(alphabet)[ranks]


def coded(values, alphabet, shift=0, min_precision=None):
    """(stream bytes, body, tables) of ``values >> shift`` in a wide layout: 64 lanes from
    ``MIN64`` symbols on, else 32; tables = (slot table, slot symbols, precision, groups).
    ``min_precision``: a table of that many bits at least (the encoder's own choice, 14
    for float32 head symbols, when None)."""
    out = np.zeros(entropy.stream_capacity(values.size, alphabet), dtype=np.uint8)
    if min_precision is None:
        end = entropy.encode_stream_into(values, alphabet, out, 0, shift=shift, wide=True)
    else:
        groups = rans_simd.groups_for(values.size)
        scratch = np.empty(rans_simd.encode_scratch_size(values.size, groups), dtype=np.uint8)
        encode = rans.wide_stream_encoder(groups, rans_simd.ENCODE_SCALAR)
        end = encode(values, shift, 0, np.zeros(alphabet, dtype=np.int64), True, scratch, out, 0, min_precision)
    stream = out[:end]
    wide = values.size >= MIN64
    assert stream[0] == (entropy.BACKEND_NUMBA64 if wide else entropy.BACKEND_NUMBA32)
    precision = int(stream[1])
    slots = 1 << precision
    table_cap = min(alphabet, slots)
    slot_table = np.empty(slots, dtype=np.uint32)
    slot_symbol = np.empty(slots, dtype=np.uint16)
    _, pos = rans.read_table(stream, 2, alphabet, precision, np.empty(table_cap, np.int64),
                             np.empty(table_cap, np.int64), slot_table, slot_symbol)
    nbytes, pos = rans.read_varint(stream, pos, stream.size)
    assert pos + nbytes == stream.size
    return stream, stream[pos:].copy(), (slot_table, slot_symbol, precision, 4 if wide else 2)


def decode_all_ways(body, tables, n, dtype, raw=None):
    """Status and output of every decoder for this body: scalar, and vector when available
    (for float32 values with ``raw``: with plain and with streamed stores)."""
    slot_table, slot_symbol, precision, groups = tables
    fused = raw if raw is not None else np.empty(0, dtype=np.uint8)
    results = {}
    out = np.full(n, 7, dtype=dtype)
    results["scalar"] = (rans_simd.decode_scalar(body, slot_table, slot_symbol, precision, out, fused, groups),
                         out)
    if rans_simd.VECTOR:
        out = np.full(n, 7, dtype=dtype)
        table = np.empty(rans_simd.table_size(precision), dtype=np.uint64)
        if raw is not None:
            status = rans_simd.decode_vector_fused(body, slot_table, slot_symbol, precision, out, raw, table,
                                                   groups)
        else:
            status = rans_simd.decode_vector(body, slot_table, slot_symbol, precision, out, table, groups)
        results["vector"] = (status, out)
        if raw is not None:  # float32 values streamed from a 64-byte boundary (and plain stores off one)
            spare = np.full(n + 32, 7, dtype=dtype)
            for name, skip in (("streaming", 0), ("streaming, unaligned", 1)):
                start = (-spare.ctypes.data % 64) // spare.itemsize + skip
                out = spare[start:start + n]
                out[:] = 7
                status = rans_simd.decode_vector_streaming(body, slot_table, slot_symbol, precision, out, raw,
                                                           table, groups)
                results[name] = (status, out.copy())
    return results


@settings(max_examples=25, deadline=None)
@given(n=st.one_of(st.integers(MIN, MIN + 70), st.integers(MIN64 - 5, MIN64 + 70), st.integers(MIN, 6 * MIN)),
       alphabet=st.sampled_from([2, 3, 61, 4096]), dtype=st.sampled_from([np.uint16, np.uint32]),
       seed=st.integers(0, 2**31))
def test_streams_round_trip_through_every_decoder(n, alphabet, dtype, seed):
    values = skewed_symbols(n, alphabet, seed).astype(dtype)
    stream, body, tables = coded(values, alphabet)
    for name, (status, out) in decode_all_ways(body, tables, n, dtype).items():
        assert status == rans.STATUS_OK, name
        assert (out == values).all(), name
    back = np.empty(n, dtype=dtype)
    assert entropy.decode_stream(stream, 0, alphabet, back) == stream.size
    assert (back == values).all()


@pytest.mark.parametrize("n", [MIN, MIN + 1, MIN + 31, MIN + 33, MIN64 - 1, MIN64 + 33, 524160])
def test_float32_values_with_their_raw_bits(n):
    x = np.resize(load_sample().reshape(-1), n)
    x[::97] = -x[::97]
    values = x.view(np.uint32)
    raw = np.empty(raw_size(n, 20), dtype=np.uint8)
    pack_low_bits(values, 20, raw)
    _, body, tables = coded(values, 4096, shift=20)
    for name, (status, out) in decode_all_ways(body, tables, n, np.uint32, raw).items():
        assert status == rans.STATUS_OK, name
        assert (out == values).all(), name


@pytest.mark.parametrize("n", [MIN, MIN + 1, MIN + 31, MIN + 33, 3 * MIN + 17, MIN64 + 17, MIN64 + 64])
@pytest.mark.parametrize("dtype,shift", [(np.uint16, 0), (np.uint32, 16), (np.uint32, 0), (np.uint32, 7)])
def test_values_with_a_nibble_of_raw_bits_and_zero_low_bits(n, dtype, shift):
    """``decode_vector_nibbles`` (bfloat16; float32 that was bfloat16) gives what the scalar
    decoder and a separate merge give, odd tails included."""
    rng = np.random.default_rng(n)
    values = (skewed_symbols(n, 4096, n).astype(np.uint64) << np.uint64(4)
              | rng.integers(0, 16, n).astype(np.uint64)).astype(dtype)
    raw = np.empty(raw_size(n, 4), dtype=np.uint8)
    pack_low_bits(values, 4, raw)
    _, body, tables = coded(values, 4096, shift=4)
    expected = values.astype(np.uint64) << np.uint64(shift)
    status, out = decode_all_ways(body, tables, n, dtype)["scalar"]
    assert status == rans.STATUS_OK and (out == values >> dtype(4)).all()
    if rans_simd.VECTOR:
        slot_table, slot_symbol, precision, groups = tables
        out = np.full(n, 7, dtype=dtype)
        table = np.empty(rans_simd.table_size(precision), dtype=np.uint64)
        status = rans_simd.decode_vector_nibbles(body, slot_table, slot_symbol, precision, out, raw, shift, table,
                                                 groups)
        assert status == rans.STATUS_OK
        assert (out.astype(np.uint64) == (expected & np.uint64(np.iinfo(dtype).max))).all()
        truncated = body[:-3].copy()
        assert rans_simd.decode_vector_nibbles(truncated, slot_table, slot_symbol, precision, out, raw, shift,
                                               table, groups) != rans.STATUS_OK


def test_short_streams_keep_the_8_lane_layout():
    values = skewed_symbols(MIN - 1, 61, 1).astype(np.uint16)
    out = np.zeros(entropy.stream_capacity(values.size, 61), dtype=np.uint8)
    entropy.encode_stream_into(values, 61, out, 0, wide=True)
    assert out[0] == entropy.BACKEND_NUMBA


@pytest.mark.parametrize("groups", [2, 4])
@pytest.mark.parametrize("dtype, shift, alphabet", [(np.uint32, 20, 4096), (np.uint16, 4, 4096), (np.uint8, 0, 256)])
def test_vector_encoders_write_the_scalar_encoders_bytes(groups, dtype, shift, alphabet):
    # every kind of steps (scalar, vector with gathers, vector with scalar loads), on the
    # value widths the codecs code: float32 and bfloat16 heads, mask bytes
    values = skewed_symbols(5 * MIN + 5, alphabet, 2).astype(dtype) << dtype(shift)
    values |= (np.arange(values.size) % (1 << shift)).astype(dtype)  # low bits the shift drops
    counts = np.bincount(values >> shift, minlength=alphabet)
    precision = entropy.choose_precision(int(np.count_nonzero(counts)))
    table = rans.encoder_table(entropy.quantize_frequencies(counts, precision))
    bodies = []
    for vector in rans_simd.ENCODE_KINDS:
        scratch = np.zeros(rans_simd.encode_scratch_size(values.size, groups), dtype=np.uint8)
        starts = rans_simd.SUBSTREAM_ENCODERS[groups, vector](values, np.uint64(shift), table, precision, scratch)
        part = scratch.size // groups
        bodies.append(b"".join(scratch[start:(g + 1) * part].tobytes() for g, start in enumerate(starts)))
    assert bodies[1] == bodies[0] and bodies[2] == bodies[0]


def damaged(body, data, kinds):
    """``body`` with one damage drawn from ``kinds`` ("none", "flip" a bit, "truncate",
    "extend" with zeros, "zero_run")."""
    kind = data.draw(st.sampled_from(kinds))
    if kind == "flip":
        at = data.draw(st.integers(0, body.size - 1))
        body[at] ^= np.uint8(1 << data.draw(st.integers(0, 7)))
    elif kind == "truncate":
        body = body[:data.draw(st.integers(0, body.size - 1))].copy()
    elif kind == "extend":
        body = np.concatenate([body, np.zeros(data.draw(st.integers(1, 40)), np.uint8)])
    elif kind == "zero_run":
        at = data.draw(st.integers(0, body.size - 1))
        body[at:at + data.draw(st.integers(1, 64))] = 0
    return body


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_corrupt_bodies_give_the_same_verdict_in_every_decoder(data):
    values = skewed_symbols(data.draw(st.sampled_from([MIN + 45, MIN64 + 45])), 61, 3).astype(np.uint16)
    _, body, tables = coded(values, 61)
    body = damaged(body, data, ["flip", "truncate", "extend", "zero_run"])
    results = decode_all_ways(body, tables, values.size, np.uint16)
    verdicts = {name: status for name, (status, _) in results.items()}
    assert len(set(verdicts.values())) == 1, verdicts
    status, out = results["scalar"]
    if status == rans.STATUS_OK:  # a flip the coder cannot see: every decoder agrees
        for _, other in results.values():
            assert (other == out).all()


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_corrupt_float32_bodies_give_the_same_verdict_in_every_decoder(data):
    # big enough for the scalar decoder's paired steps (a table built per stream): their
    # verdict and values match the lane-by-lane steps' (symbols only, merged after) and
    # the vector decoder's
    n = 140_000
    x = np.resize(load_sample().reshape(-1), n)
    values = x.view(np.uint32)
    raw = np.empty(raw_size(n, 20), dtype=np.uint8)
    pack_low_bits(values, 20, raw)
    _, body, tables = coded(values, 4096, shift=20)
    slot_table, slot_symbol, precision, groups = tables
    assert n >= 8 << precision  # the paired steps run
    intact = body.copy()
    body = damaged(body, data, ["none", "flip", "truncate", "zero_run"])
    results = decode_all_ways(body, tables, n, np.uint32, raw)
    symbols = np.full(n, 7, dtype=np.uint32)
    plain = rans_simd.decode_scalar(body, slot_table, slot_symbol, precision, symbols, np.empty(0, np.uint8), groups)
    verdicts = {name: status for name, (status, _) in results.items()}
    assert set(verdicts.values()) == {plain}, (verdicts, plain)
    if np.array_equal(body, intact):
        assert plain == rans.STATUS_OK
    if plain == rans.STATUS_OK:
        merged = (symbols << np.uint32(20)) | (values & np.uint32((1 << 20) - 1))
        for name, (_, out) in results.items():
            assert (out == merged).all(), name


@pytest.mark.parametrize("damage", ["none", "truncate", "flip"])
def test_paired_steps_at_another_precision(damage):
    """The scalar decoder's paired steps are compiled for the 14-bit tables the encoder
    writes and for any other precision a stream may record: a 15-bit one decodes to the
    same values, and a damaged one gets the verdict the lane-by-lane steps give."""
    n = (8 << 15) + 1_000  # the paired steps run at 15 bits too
    values = np.resize(load_sample().reshape(-1), n).view(np.uint32)
    raw = np.empty(raw_size(n, 20), dtype=np.uint8)
    pack_low_bits(values, 20, raw)
    _, body, tables = coded(values, 4096, shift=20, min_precision=15)
    slot_table, slot_symbol, precision, groups = tables
    assert precision == 15
    if damage == "truncate":
        body = body[:-7]
    elif damage == "flip":
        body[body.size // 2] ^= 0x40
    results = decode_all_ways(body, tables, n, np.uint32, raw)
    symbols = np.full(n, 7, dtype=np.uint32)
    plain = rans_simd.decode_scalar(body, slot_table, slot_symbol, precision, symbols, np.empty(0, np.uint8), groups)
    assert plain == (rans.STATUS_OK if damage == "none" else rans.STATUS_CORRUPT)
    assert {status for status, _ in results.values()} == {plain}
    if damage == "none":
        for name, (_, out) in results.items():
            assert_same_bits(out, values)


def test_builds_without_avx512_take_the_scalar_encoder_steps_on_intel(monkeypatch):
    """What an AVX2-only Intel CPU runs codes with the scalar steps (LLVM's AVX2 form of the
    vector steps measured slower there); a build with AVX-512 features keeps the gathers,
    AMD hosts the loads. The build's features: NUMBA_CPU_FEATURES when set, else the host's."""
    monkeypatch.setattr(rans_simd.numba_config, "CPU_FEATURES", "")
    assert not rans_simd._build_has_avx512()
    monkeypatch.setattr(rans_simd.numba_config, "CPU_FEATURES", "+avx2,+avx512f,+avx512bw")
    assert rans_simd._build_has_avx512()
    monkeypatch.setattr(rans_simd, "VECTOR", True)
    for host, features, kind in (("sapphirerapids", "", rans_simd.ENCODE_SCALAR),
                                 ("sapphirerapids", "+avx512f", rans_simd.ENCODE_GATHER),
                                 ("znver4", "", rans_simd.ENCODE_LOADS)):
        monkeypatch.setattr(rans_simd.llvm, "get_host_cpu_name", lambda: host)
        monkeypatch.setattr(rans_simd.numba_config, "CPU_FEATURES", features)
        assert rans_simd._encode_kind() == kind, (host, features)


@pytest.mark.parametrize("n", [MIN, MIN64])
def test_garbage_bodies_are_rejected_not_crashing(n):
    rng = np.random.default_rng(5)
    values = skewed_symbols(n, 61, 4).astype(np.uint16)
    _, body, tables = coded(values, 61)
    for size in (0, 1, 3, 64, 130, 131, 259, 260, body.size):
        garbage = rng.integers(0, 256, size=size, dtype=np.uint8)
        for name, (status, _) in decode_all_ways(garbage, tables, values.size, np.uint16).items():
            assert status == rans.STATUS_CORRUPT, (name, size)


def test_exact_codec_writes_float32_chunks_in_the_wide_layouts():
    x = load_sample()
    for rows, backend in ((len(x), entropy.BACKEND_NUMBA64), (64, entropy.BACKEND_NUMBA32)):
        blob = spherecodec.encode(x[:rows], threads=1)
        (chunk,) = parse_layout(blob)["chunks"]  # one chunk
        assert chunk[1 + raw_size(rows * x.shape[1], 20)] == backend
        assert_same_bits(spherecodec.decode(blob), x[:rows])
        assert_same_bits(spherecodec.decode_rows(blob, 10, 50), x[10:50])


def test_golden_blobs_hold_a_32_and_a_64_lane_stream():
    blob = GOLDEN_WIDE.read_bytes()
    chunk = parse_layout(blob)["chunks"][0]
    n = spherecodec.info(blob)["nbytes"] // 4
    assert n >= MIN and chunk[1 + raw_size(n, 20)] == entropy.BACKEND_NUMBA32
    blob = GOLDEN_WIDE.with_name("bf16_wide64.sphc").read_bytes()
    (chunk,) = parse_layout(blob)["chunks"]
    n = spherecodec.info(blob)["nbytes"] // 2
    assert n >= MIN64 and chunk[1 + raw_size(n, 4)] == entropy.BACKEND_NUMBA64


def test_damaged_streams_raise_through_the_entropy_module():
    values = skewed_symbols(MIN + 3, 3, 9).astype(np.uint16)
    stream, _, _ = coded(values, 3)
    back = np.empty(values.size, dtype=np.uint16)
    entropy.decode_stream(stream, 0, 3, back)
    assert (back == values).all()
    broken = stream.copy()
    broken[-1] ^= 0xFF
    with pytest.raises(CorruptBlobError):
        entropy.decode_stream(broken, 0, 3, back)
    with pytest.raises(SpherecodecError):
        entropy.decode_stream(stream[:-5], 0, 3, back)


def test_cpus_without_avx512_decode_through_the_scalar_kernels(monkeypatch):
    # entropy.decode_stream picks the scalar decoder where the CPU lacks AVX-512 VBMI2
    x = load_sample()
    blob = spherecodec.encode(x, threads=1)
    monkeypatch.setattr(rans_simd, "VECTOR", False)
    assert_same_bits(spherecodec.decode(blob, threads=1), x)
    for shaped in (x.astype(ml_dtypes.bfloat16), x.astype(ml_dtypes.bfloat16).astype(np.float32),
                   x.astype(np.float16)):
        assert_same_bits(spherecodec.decode(spherecodec.encode(shaped, threads=1), threads=1), shaped)
    grid = spherecodec.encode(x, "grid", threads=1)
    monkeypatch.setattr(rans_simd, "VECTOR", True)
    expected = spherecodec.decode(grid, threads=1)
    monkeypatch.setattr(rans_simd, "VECTOR", False)
    assert_same_bits(spherecodec.decode(grid, threads=1), expected)


@pytest.mark.parametrize("n", [MIN, MIN + 1, 3 * MIN + 17, 2 * MIN + 32, MIN64 + 5])
@pytest.mark.parametrize("vector", rans_simd.ENCODE_KINDS, ids=["scalar", "gather", "loads"])
def test_raw_bits_and_stream_in_one_call_write_the_separate_steps_bytes(n, vector):
    # the exact codec writes a chunk's raw bits and its stream in one nogil call: the same
    # bytes as packing the raw bits, then coding a stream of the heads
    rng = np.random.default_rng(n)
    values = (rng.standard_normal(n) * 0.05).astype(np.float32).view(np.uint32)
    values[::97] = 0x7FC00001  # a NaN payload: a rare symbol
    nraw = raw_size(n, 20)
    capacity = 1 + nraw + entropy.stream_capacity(n, 4096)
    expected = np.zeros(capacity, dtype=np.uint8)
    pack_low_bits(values, 20, expected[1:1 + nraw])
    rans_simd.VECTOR_ENCODE, saved = vector, rans_simd.VECTOR_ENCODE
    try:
        end = entropy.encode_stream_into(values, 4096, expected, 1 + nraw, shift=20, wide=True)
        out = np.zeros(capacity, dtype=np.uint8)
        got = entropy.encode_stream_into(values, 4096, out, 1, shift=20, wide=True, raw_bits=True)
    finally:
        rans_simd.VECTOR_ENCODE = saved
    assert got == end and out[1:end].tobytes() == expected[1:end].tobytes()
    assert out[1 + nraw] == (entropy.BACKEND_NUMBA64 if n >= MIN64 else entropy.BACKEND_NUMBA32)


def test_copy_bytes_copies_and_checks_its_bounds():
    src = np.arange(100, dtype=np.uint8)
    dst = np.zeros(50, dtype=np.uint8)
    copy_bytes(dst, 5, src, 60, 40)
    assert (dst[5:45] == src[60:100]).all() and not dst[:5].any() and not dst[45:].any()
    copy_bytes(dst, 0, src, 0, 0)
    for dst_pos, src_pos, n in ((11, 0, 40), (0, 61, 40), (-1, 0, 1), (0, -1, 1), (0, 0, -1)):
        with pytest.raises(IndexError):
            copy_bytes(dst, dst_pos, src, src_pos, n)
    with pytest.raises(ValueError):
        copy_bytes(dst, 0, src[::2], 0, 10)  # strided: a memcpy would read the wrong bytes
    with pytest.raises(ValueError):
        copy_bytes(dst[::-1], 0, src, 0, 10)


_CHILD = """
import sys
import ml_dtypes
import numpy as np
import spherecodec
from spherecodec.kernels import rans_simd
folder, build = sys.argv[1:]
if build == "avx2-only":
    assert rans_simd.VECTOR_ISA == "avx2", rans_simd.VECTOR_ISA
else:  # the table lookups this host does not take by default, compiled before any decoding
    assert rans_simd.VECTOR_ISA == "avx512", rans_simd.VECTOR_ISA
    rans_simd.DECODE_SPLIT_LOOKUPS = not rans_simd.DECODE_SPLIT_LOOKUPS
for name in ("f32", "bf16", "f16", "f32_32"):
    blob = open(f"{folder}/{name}.sphc", "rb").read()
    expected = np.load(f"{folder}/{name}.npy")
    assert spherecodec.decode(blob, threads=1).tobytes() == expected.tobytes(), name
    if name == "bf16":
        expected = expected.view(ml_dtypes.bfloat16)  # .npy keeps bfloat16 as void16
    assert spherecodec.encode(expected, threads=1) == blob, name  # this build's encoder: the same bytes
    broken = bytearray(blob)
    broken[-40] ^= 0x10
    try:
        spherecodec.decode(bytes(broken), threads=1)
    except spherecodec.SpherecodecError:
        pass
    else:
        raise AssertionError(f"damaged {name} decoded")
# streamed stores (the thresholds lowered: the sample stands in for a large output)
from spherecodec import container, scratch
container.STREAMING_FROM = scratch.ALIGNED_FROM = 1 << 16
expected = np.load(f"{folder}/f32.npy")
blob = spherecodec.encode(expected, chunk_rows=150, threads=1)  # chunks of 230,400 bytes: all aligned
header = container.Header(blob)
assert header.streaming and header.n_chunks > 2
for threads in (1, 2):
    back = spherecodec.decode(blob, threads=threads)
    assert back.ctypes.data % 64 == 0 and back.tobytes() == expected.tobytes(), threads
print("ok")
"""


@pytest.mark.parametrize("build", ["avx2-only", "other-lookups"])
def test_other_builds_decode_every_wide_layout_to_the_same_bits(tmp_path, build):
    """What an AVX2-only CPU runs (``NUMBA_CPU_NAME=haswell`` with ``NUMBA_CPU_FEATURES``
    empty: the 8-lane vector steps, words gathered at table offsets, with haswell's own
    features only, where LLVM builds what AVX2 lacks from other instructions; without
    the empty features Numba would add the host's, AVX-512 on an AVX-512 host, which no
    AVX2 CPU runs), and the AVX-512 steps with the table lookups this host does
    not take (``DECODE_SPLIT_LOOKUPS``: AMD hosts split them between a gather and scalar
    loads, others gather), decode blobs of both wide layouts to their bits, encode them to
    the same bytes and reject a damaged one. A child process with its own kernel cache:
    the build and the lookups are chosen when the kernels compile."""
    if build == "other-lookups" and rans_simd.VECTOR_ISA != "avx512":
        pytest.skip("the AVX-512 steps need a host with AVX-512 VBMI2")
    x = load_sample()
    cases = {"f32": x, "bf16": x.astype(ml_dtypes.bfloat16), "f16": x.astype(np.float16),
             "f32_32": x[:100]}  # 38,400 values: the 32-lane layout
    for name, array in cases.items():
        (tmp_path / f"{name}.sphc").write_bytes(spherecodec.encode(array, threads=1))
        np.save(tmp_path / f"{name}.npy", array)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / f"numba-{build}"))
    if build == "avx2-only":  # haswell's own features: without, Numba adds the host's
        env.update(NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="")
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path), build], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
