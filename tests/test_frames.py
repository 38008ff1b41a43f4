"""Frames and dictionaries (issue 20): one vector at a time, coded against a trained model.

Every lossless check compares bits. Damage of any kind (a flipped bit, a cut, another
dictionary) must raise a SpherecodecError, never return other values.
"""

import struct
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spherecodec
from common import assert_same_bits, load_sample
from spherecodec import frames
from spherecodec.dictionary import DICTIONARY_MAGIC
from spherecodec.errors import CorruptBlobError, DictionaryError, SpherecodecError, TruncatedBlobError
from spherecodec.kernels import frames as kernel
from spherecodec.kernels import rabitq as kr

GOLDEN = Path(__file__).resolve().parent / "data" / "golden-frames"


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture(scope="module")
def dictionary(sample):
    return spherecodec.train_dictionary(sample[:256])


def _specials():
    bits = np.array([0x7FC00001, 0xFFC12345, 0x7F800001,  # NaNs: quiet with payloads, signalling
                     0x7F800000, 0xFF800000, 0x00000000, 0x80000000,  # infinities, signed zeros
                     0x00000001, 0x807FFFFF, 0x00400000,  # subnormals
                     0x7F7FFFFF, 0xFF7FFFFF, 0x3F800000], dtype=np.uint32)  # largest, 1.0
    return bits.view(np.float32)


def test_vectors_round_trip_bit_exact_and_smaller(sample, dictionary):
    total = 0
    for row in sample[256:320]:
        frame = spherecodec.encode(row, dictionary=dictionary)
        assert isinstance(frame, bytes) and frame[0] == frames.KIND_EXACT
        assert_same_bits(spherecodec.decode(frame, dictionary=dictionary), row)
        total += len(frame)
    # far smaller than a blob of one vector (~1,700 bytes), and smaller than the raw bytes
    assert total < sample[256:320].nbytes / 1.15


def test_shapes_round_trip(sample, dictionary):
    for x in (sample[300:303], sample[300, :7], np.float32(0.25), sample[300:301, :1], np.zeros(0, np.float32),
              np.zeros((3, 0), np.float32)):
        x = np.asarray(x)
        frame = spherecodec.encode(x, dictionary=dictionary)
        y = spherecodec.decode(frame, dictionary=dictionary)
        assert_same_bits(y, x)
        assert spherecodec.info(frame)["shape"] == x.shape


def test_special_values_and_data_unlike_the_sample(sample, dictionary):
    specials = _specials()
    # special values among ordinary ones: escaped symbols inside a coded frame
    mixed = sample[400].copy()
    mixed[::37] = specials[:mixed[::37].size]
    frame = spherecodec.encode(mixed, dictionary=dictionary)
    assert frame[0] == frames.KIND_EXACT
    assert_same_bits(spherecodec.decode(frame, dictionary=dictionary), mixed)
    # nothing like the sample: every symbol escapes, the frame stores the values instead
    noise = np.random.default_rng(1).integers(0, 2**32, 384, dtype=np.uint32).view(np.float32)
    frame = spherecodec.encode(noise, dictionary=dictionary)
    assert frame[0] == frames.KIND_STORED
    assert len(frame) <= noise.nbytes + 16
    assert_same_bits(spherecodec.decode(frame, dictionary=dictionary), noise)
    for values in (specials, -sample[401] * 1e30, sample[402] * 1e-38):
        values = np.ascontiguousarray(values, dtype=np.float32)
        assert_same_bits(spherecodec.decode(spherecodec.encode(values, dictionary=dictionary),
                                            dictionary=dictionary), values)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 2**32 - 1), max_size=70), st.integers(0, 2))
def test_any_bits_round_trip(dictionary, words, scale_exponent):
    # ordinary values with any bit patterns spliced in
    x = (np.arange(len(words), dtype=np.float32) / 100 - 0.3) * np.float32(10.0 ** -scale_exponent)
    x = x.astype(np.float32)
    w = np.array(words, dtype=np.uint32)
    x.view(np.uint32)[::3] = w[::3]
    frame = spherecodec.encode(x, dictionary=dictionary)
    assert_same_bits(spherecodec.decode(frame, dictionary=dictionary), x)


def test_float_input_that_float32_holds_is_accepted(sample, dictionary):
    x = sample[410]
    frame = spherecodec.encode(x.astype(np.float64), dictionary=dictionary)
    assert frame == spherecodec.encode(x, dictionary=dictionary)
    assert frame == spherecodec.encode(x.astype(">f4"), dictionary=dictionary)
    with pytest.raises(spherecodec.UnsupportedError, match="float32 cannot hold exactly"):
        spherecodec.encode(np.full(4, 0.1), dictionary=dictionary)
    with pytest.raises(spherecodec.UnsupportedError, match="must be float32, not int64"):
        spherecodec.encode(np.arange(4), dictionary=dictionary)
    with pytest.raises(ValueError, match="a 3-D array"):
        spherecodec.encode(np.zeros((2, 2, 2), np.float32), dictionary=dictionary)
    with pytest.raises(TypeError, match="train_dictionary"):
        spherecodec.encode(x, "int8", dictionary=dictionary)


def test_missing_or_wrong_dictionary_is_a_clear_error(sample, dictionary):
    frame = spherecodec.encode(sample[420], dictionary=dictionary)
    other = spherecodec.train_dictionary(sample[256:512])
    assert other.id != dictionary.id
    with pytest.raises(DictionaryError, match=f"needs dictionary {dictionary.hex_id[-8:]}"):
        spherecodec.decode(frame)
    with pytest.raises(DictionaryError, match=f"coded with dictionary {dictionary.hex_id[-8:]}.*not with "
                                              f"{other.hex_id}"):
        spherecodec.decode(frame, dictionary=other)
    with pytest.raises(DictionaryError):
        spherecodec.decode_many([frame], dictionary=other)
    with pytest.raises(TypeError, match="spherecodec.Dictionary"):
        spherecodec.decode(frame, dictionary=other.to_bytes())
    # an id whose low 32 bits match but whose high half differs: the check refuses it
    forged = spherecodec.Dictionary("exact", {}, dictionary.dim, dictionary._body)
    forged.check_key ^= 1
    with pytest.raises(CorruptBlobError, match="check mismatch"):
        spherecodec.decode(frame, dictionary=forged)
    # a blob is not a frame, and decodes as a blob (the dictionary is not needed)
    blob = spherecodec.encode(sample[420])
    assert_same_bits(spherecodec.decode(blob, dictionary=dictionary), sample[420])


def test_frames_from_any_bytes_like(sample, dictionary):
    x = sample[300:302, :200]  # an extent of two varint bytes
    frame = spherecodec.encode(x, dictionary=dictionary)
    for data in (bytearray(frame), memoryview(frame), np.frombuffer(frame, np.uint8)):
        assert_same_bits(spherecodec.decode(data, dictionary=dictionary), x)
        assert spherecodec.info(data)["shape"] == (2, 200)


def test_info_names_the_dictionary(sample, dictionary):
    frame = spherecodec.encode(sample[430:432], dictionary=dictionary)
    meta = spherecodec.info(frame)
    assert meta["format"] == "frame" and meta["codec"] == "exact" and meta["kind"] == "exact"
    assert meta["dictionary_id32"] == dictionary.hex_id[-8:]
    assert meta["shape"] == (2, 384)
    assert meta["compressed_nbytes"] == len(frame)
    assert meta["nbytes"] == 2 * 384 * 4


def test_every_bit_flip_and_cut_is_refused(sample, dictionary):
    x = sample[440, :40]
    frame = spherecodec.encode(x, dictionary=dictionary)
    for i in range(len(frame)):
        for bit in (0, 3, 7):
            damaged = bytearray(frame)
            damaged[i] ^= 1 << bit
            with pytest.raises(SpherecodecError):
                spherecodec.decode(bytes(damaged), dictionary=dictionary)
    for n in range(len(frame)):
        with pytest.raises(SpherecodecError):
            spherecodec.decode(frame[:n], dictionary=dictionary)
    with pytest.raises(CorruptBlobError):
        spherecodec.decode(frame + b"\0", dictionary=dictionary)
    with pytest.raises(TruncatedBlobError, match="empty frame"):
        frames.decode(b"", dictionary)


def test_sealed_damage_is_refused_by_the_kernel(sample, dictionary):
    """Payload damage behind a valid check (as a forger would make): the decoder's own
    checks refuse it; it never reads outside the payload."""
    frame = spherecodec.encode(sample[450, :64], dictionary=dictionary)
    header = frames.FrameHeader(frame)
    rng = np.random.default_rng(3)
    refused = 0
    for _ in range(300):
        body = bytearray(frame[:-4])
        pos = int(rng.integers(header.size, len(body)))
        body[pos] ^= 1 << int(rng.integers(8))
        if rng.integers(4) == 0:
            body = body[:int(rng.integers(header.size, len(body)))]
        sealed = bytes(frames._seal(body, dictionary))
        try:
            y = spherecodec.decode(sealed, dictionary=dictionary)
        except CorruptBlobError:
            refused += 1
        else:  # the raw bits are not covered by the coder: such damage decodes, to those bits
            assert y.shape == (64,)
    assert refused > 50


def test_encode_many_decode_many(sample, dictionary):
    rows = sample[256:356]
    many = spherecodec.encode_many(rows, dictionary=dictionary)
    assert many == [spherecodec.encode(r, dictionary=dictionary) for r in rows]
    assert_same_bits(spherecodec.decode_many(many, dictionary=dictionary), rows)
    assert spherecodec.decode_many([], dictionary=dictionary).shape == (0, 384)
    # stored frames mix with coded ones
    noisy = rows[:4].copy()
    noisy[1] = np.random.default_rng(2).integers(0, 2**32, 384, dtype=np.uint32).view(np.float32)
    mixed = spherecodec.encode_many(noisy, dictionary=dictionary)
    assert mixed[1][0] == frames.KIND_STORED
    assert_same_bits(spherecodec.decode_many(mixed, dictionary=dictionary), noisy)
    damaged = list(many[:5])
    damaged[3] = damaged[3][:-1] + bytes([damaged[3][-1] ^ 1])
    with pytest.raises(CorruptBlobError, match="frame 3"):
        spherecodec.decode_many(damaged, dictionary=dictionary)
    short = spherecodec.encode(rows[0, :100], dictionary=dictionary)
    with pytest.raises(ValueError, match=r"frame 2 holds shape \(100,\)"):
        spherecodec.decode_many(many[:2] + [short], dictionary=dictionary)
    with pytest.raises(ValueError, match="1-D vectors"):
        spherecodec.decode_many([spherecodec.encode(rows[:2], dictionary=dictionary)], dictionary=dictionary)
    with pytest.raises(ValueError, match="2-D array of rows"):
        spherecodec.encode_many(rows[0], dictionary=dictionary)


def test_dictionary_bytes_and_id(sample, dictionary):
    data = dictionary.to_bytes()
    assert data[:4] == DICTIONARY_MAGIC
    again = spherecodec.Dictionary.from_bytes(data)
    assert again == dictionary and again.id == dictionary.id
    assert spherecodec.train_dictionary(sample[:256]).id == dictionary.id  # content-derived
    frame = spherecodec.encode(sample[460], dictionary=dictionary)
    assert_same_bits(spherecodec.decode(frame, dictionary=again), sample[460])
    for n in (0, 3, 10, len(data) - 1):
        with pytest.raises(SpherecodecError):
            spherecodec.Dictionary.from_bytes(data[:n])
    for i in range(0, len(data), 7):
        damaged = bytearray(data)
        damaged[i] ^= 0x10
        with pytest.raises(SpherecodecError):
            spherecodec.Dictionary.from_bytes(bytes(damaged))
    with pytest.raises(CorruptBlobError, match="follow"):
        spherecodec.Dictionary.from_bytes(data + b"\0")


def test_train_dictionary_refuses_bad_input(sample):
    with pytest.raises(ValueError, match="empty sample"):
        spherecodec.train_dictionary(np.zeros((0, 8), np.float32))
    with pytest.raises(TypeError, match="no parameters"):
        spherecodec.train_dictionary(sample[:10], level=3)
    with pytest.raises(spherecodec.UnsupportedError, match="no fitted state"):
        spherecodec.train_dictionary(sample[:10], "grid")


def test_int8_frames_use_the_fitted_state(sample):
    d = spherecodec.train_dictionary(sample[:256], "int8")
    assert d.codec == "int8"
    fitted = spherecodec.fit("int8", sample[:256])
    rows = sample[256:260]
    frame = spherecodec.encode(rows[0], dictionary=d)
    assert frame[0] == frames.KIND_CHUNK and len(frame) < 384 + 16
    assert spherecodec.encode(rows[0], "int8", dictionary=d) == frame
    with pytest.raises(TypeError, match="train_dictionary"):
        spherecodec.encode(rows[0], "int8", dictionary=d, symmetric=True)
    expected = spherecodec.decode(fitted.encode(rows))
    assert_same_bits(spherecodec.decode(frame, dictionary=d), expected[0])
    assert_same_bits(spherecodec.decode_many(spherecodec.encode_many(rows, dictionary=d), dictionary=d), expected)
    assert spherecodec.Dictionary.from_bytes(d.to_bytes()) == d
    with pytest.raises(ValueError, match="rows of 384 values, not 10"):
        spherecodec.encode(rows[0, :10], dictionary=d)
    with pytest.raises(ValueError, match="rows of 384 values, not 0"):
        spherecodec.encode(np.zeros(0, np.float32), dictionary=d)
    # regression (fuzz/run.py seed 7 case 3949): a frame announcing 0 values per row
    empty = frames._header(frames.KIND_CHUNK, d, (0,)) + bytes(frame[7:-4])
    with pytest.raises(CorruptBlobError, match="rows of 0 values"):
        spherecodec.decode(bytes(frames._seal(empty, d)), dictionary=d)
    damaged = frame[:-1] + bytes([frame[-1] ^ 4])
    with pytest.raises(CorruptBlobError, match="check mismatch"):
        spherecodec.decode(damaged, dictionary=d)
    exact = spherecodec.train_dictionary(sample[:64])
    with pytest.raises(DictionaryError):
        spherecodec.decode(frame, dictionary=exact)


def test_frame_layout_as_documented(sample, dictionary):
    """docs/format.md section 5, read with struct: header, two lane states, check."""
    x = sample[470, :10]
    frame = spherecodec.encode(x, dictionary=dictionary)
    kind, id32, ndim, dim = struct.unpack_from("<BIBB", frame, 0)
    assert (kind, id32, ndim, dim) == (0xE0, dictionary.id & 0xFFFFFFFF, 1, 10)
    raw = 2 * 10 + 5  # 16-bit plane, 4-bit plane
    states = struct.unpack_from("<II", frame, 7 + raw)  # after 7 header bytes
    assert all(2**16 <= s < 2**32 for s in states)
    (check,) = struct.unpack_from("<I", frame, len(frame) - 4)
    assert check == (xxhash.xxh64_intdigest(frame[:-4]) ^ (dictionary.id >> 32)) & 0xFFFFFFFF
    low = x.view(np.uint32) & 0xFFFF
    assert np.frombuffer(frame[7:27], "<u2").tolist() == low.tolist()
    assert kernel.LANES == 2


def test_golden_frames_decode_and_reencode():
    """Frames written by an earlier build decode to the same bits, and today's encoder
    writes the same bytes (``GOLDEN``, made by scripts/make_golden_frames.py)."""
    d = spherecodec.Dictionary.from_bytes((GOLDEN / "minilm-exact.sphd").read_bytes())
    for stem, kinds in (("minilm-rows", {frames.KIND_EXACT}),
                        ("minilm-shapes", {frames.KIND_CONSTANT, frames.KIND_SHIFTED})):
        x = np.load(GOLDEN / f"{stem}.npy")
        many = _golden_frames(stem)
        assert {f[0] for f in many} == kinds
        assert_same_bits(spherecodec.decode_many(many, dictionary=d), x)
        assert spherecodec.encode_many(x, dictionary=d) == many
    # rabitq row frames: the same bytes from the same rows, the same decoded bits
    d = spherecodec.Dictionary.from_bytes((GOLDEN / "minilm-rabitq.sphd").read_bytes())
    many = _golden_frames("minilm-rabitq-rows")
    assert {f[0] for f in many} == {frames.KIND_RABITQ}
    assert spherecodec.encode_many(np.load(GOLDEN / "minilm-rabitq-rows.npy"), dictionary=d) == many
    assert_same_bits(spherecodec.decode_many(many, dictionary=d), np.load(GOLDEN / "minilm-rabitq-decoded.npy"))
    # bfloat16 frames (their .npy holds the bits)
    d = spherecodec.Dictionary.from_bytes((GOLDEN / "minilm-exact.sphd").read_bytes())
    x = np.load(GOLDEN / "minilm-bfloat16.npy").view(ml_dtypes.bfloat16)
    many = _golden_frames("minilm-bfloat16")
    assert {f[0] for f in many} == {0xEA, 0xEB}
    assert spherecodec.decode_many(many, dictionary=d).tobytes() == x.tobytes()
    assert spherecodec.encode_many(x, dictionary=d) == many


def _golden_frames(stem):
    stored = (GOLDEN / f"{stem}.frames").read_bytes()
    ends = np.cumsum(np.load(GOLDEN / f"{stem}.lengths.npy")).tolist()
    return [stored[a:b] for a, b in zip([0] + ends[:-1], ends)]


def test_forged_dictionaries_are_refused_or_code_exactly(sample, dictionary):
    """Dictionary bytes damaged behind a recomputed id: from_bytes refuses them with a
    SpherecodecError, or the table it accepts still round-trips any vector bit for bit."""
    data = dictionary.to_bytes()
    body_start = 16 + struct.unpack_from("<I", data, 8)[0]
    x = sample[480, :50].copy()
    x[::7] = _specials()[:8]
    rng = np.random.default_rng(5)
    accepted = 0
    for _ in range(200):
        forged = bytearray(data[:-8])
        pos = int(rng.integers(body_start, len(forged)))
        forged[pos] = int(rng.integers(256))
        if rng.integers(3) == 0:
            del forged[pos:pos + int(rng.integers(1, 4))]
        forged += struct.pack("<Q", xxhash.xxh64_intdigest(bytes(forged)))
        try:
            d = spherecodec.Dictionary.from_bytes(bytes(forged))
        except SpherecodecError:
            continue
        accepted += 1
        assert_same_bits(spherecodec.decode(spherecodec.encode(x, dictionary=d), dictionary=d), x)
    assert 0 < accepted < 200  # some forgeries are valid tables: they must code exactly


# -- shapes of exact frames: constant vectors, zero low bits (issue 22's shapes) -----------
def _low_bits_cleared(x, t):
    return (x.view(np.uint32) & np.uint32((0xFFFFFFFF << t) & 0xFFFFFFFF)).view(np.float32)


def test_constant_vectors_take_a_few_bytes(sample, dictionary):
    nan = np.array([0x7FC12345], np.uint32).view(np.float32)[0]
    for value in (0.0, -0.0, 0.5, np.inf, nan, np.float32(1e-45)):
        x = np.full(384, value, dtype=np.float32)
        frame = spherecodec.encode(x, dictionary=dictionary)
        assert frame[0] == frames.KIND_CONSTANT and len(frame) == 8 + 4 + 4
        assert_same_bits(spherecodec.decode(frame, dictionary=dictionary), x)
        assert spherecodec.info(frame)["kind"] == "exact (constant)"
    block = np.zeros((3, 7), np.float32)
    assert_same_bits(spherecodec.decode(spherecodec.encode(block, dictionary=dictionary), dictionary=dictionary),
                     block)
    # one value is not a constant vector: it keeps its plain bytes
    assert spherecodec.encode(np.float32(0.25), dictionary=dictionary)[0] == frames.KIND_STORED
    # +0.0 and -0.0 differ in their bits: not constant, but share every low bit (t = 20)
    mixed = np.zeros(64, np.float32)
    mixed[::3] = -0.0
    frame = spherecodec.encode(mixed, dictionary=dictionary)
    assert frame[0] != frames.KIND_CONSTANT
    assert_same_bits(spherecodec.decode(frame, dictionary=dictionary), mixed)


def test_zero_low_bits_are_not_stored(sample, dictionary):
    rows = sample[256:264]
    sizes = {}
    for name, x in (("bfloat16", _low_bits_cleared(rows, 16)),
                    ("float16", rows.astype(np.float16).astype(np.float32)),
                    ("plain", rows)):
        many = spherecodec.encode_many(x, dictionary=dictionary)
        assert {f[0] for f in many} == {frames.KIND_EXACT if name == "plain" else frames.KIND_SHIFTED}
        assert many == [spherecodec.encode(r, dictionary=dictionary) for r in x]
        assert_same_bits(spherecodec.decode_many(many, dictionary=dictionary), x)
        sizes[name] = sum(map(len, many))
    # bf16: 4 raw bits a value instead of 20 (16 bits saved); fp16: 7 (13 saved, less what
    # rounding to float16 moves the head symbols)
    assert sizes["plain"] - sizes["bfloat16"] >= 8 * 384 * 16 // 8 - 8
    assert sizes["plain"] - sizes["float16"] >= 8 * 384 * 12 // 8
    # decode_many over every kind at once
    mixed = np.stack([rows[0], _low_bits_cleared(rows[1], 16), np.zeros(384, np.float32),
                      np.random.default_rng(6).integers(0, 2**32, 384, dtype=np.uint32).view(np.float32)])
    many = spherecodec.encode_many(mixed, dictionary=dictionary)
    assert [f[0] for f in many] == [frames.KIND_EXACT, frames.KIND_SHIFTED, frames.KIND_CONSTANT, frames.KIND_STORED]
    assert_same_bits(spherecodec.decode_many(many, dictionary=dictionary), mixed)
    # many constant frames stand for more bytes than the plain kinds' bound allows
    zeros = np.zeros((200, 384), np.float32)
    assert_same_bits(spherecodec.decode_many(spherecodec.encode_many(zeros, dictionary=dictionary),
                                             dictionary=dictionary), zeros)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.integers(1, 32), st.integers(1, 90), st.integers(0, 2**32 - 1), st.booleans())
def test_any_shift_round_trips(dictionary, t, n, seed, special):
    """Every count of shared zero low bits, any length, specials (which keep those bits
    zero) mixed in: bit-exact, and the frame is never larger than the plain one."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * 0.05).astype(np.float32)
    if special:
        x[::5] = _specials()[[0, 3, 4, 5, 6, 12]][rng.integers(0, 6, x[::5].size)]
    x = _low_bits_cleared(x, t) if t < 32 else np.zeros(n, np.float32)
    frame = spherecodec.encode(x, dictionary=dictionary)
    assert_same_bits(spherecodec.decode(frame, dictionary=dictionary), x)
    assert len(frame) <= 7 + 4 * n + 4  # never more than stored


def test_damaged_shape_frames_are_refused(sample, dictionary):
    for x in (np.zeros(40, np.float32), _low_bits_cleared(sample[500, :40], 16)):
        frame = spherecodec.encode(x, dictionary=dictionary)
        assert frame[0] in (frames.KIND_CONSTANT, frames.KIND_SHIFTED)
        for i in range(len(frame)):
            damaged = bytearray(frame)
            damaged[i] ^= 0x21
            with pytest.raises(SpherecodecError):
                spherecodec.decode(bytes(damaged), dictionary=dictionary)
        for n in range(len(frame)):
            with pytest.raises(SpherecodecError):
                spherecodec.decode(frame[:n], dictionary=dictionary)
    header = frames.FrameHeader(frame).size
    # behind a valid check: a shift outside 1..20, a constant of 3 or 5 bytes
    for t in (0, 21, 255):
        forged = bytearray(frame[:-4])
        forged[header] = t
        with pytest.raises(CorruptBlobError, match="does not decode"):
            spherecodec.decode(bytes(frames._seal(forged, dictionary)), dictionary=dictionary)
    for payload in (b"\0\0\0", b"\0" * 5):
        forged = frames._header(frames.KIND_CONSTANT, dictionary, (40,)) + payload
        with pytest.raises(CorruptBlobError, match="does not decode"):
            spherecodec.decode(bytes(frames._seal(forged, dictionary)), dictionary=dictionary)
    # a constant frame cannot announce any length: its bound is kernels.frames.DENSE_EXPANSION
    huge = frames._header(frames.KIND_CONSTANT, dictionary, (1 << 39,)) + b"\0" * 4
    with pytest.raises(CorruptBlobError, match="more than its"):
        spherecodec.decode(bytes(frames._seal(huge, dictionary)), dictionary=dictionary)


# -- bfloat16 frames --------------------------------------------------------------------------
def test_bfloat16_frames_round_trip_as_bfloat16(sample, dictionary):
    rows = sample[256:262].astype(ml_dtypes.bfloat16)
    rows.view(np.uint16)[0, :6] = [0x7FC1, 0xFF80, 0x8000, 0x0001, 0x7F7F, 0xFFA5]  # NaNs, inf, -0, subnormal
    many = spherecodec.encode_many(rows, dictionary=dictionary)
    assert {f[0] for f in many} == {frames.KIND_SHIFTED | 0x08}
    assert many == [spherecodec.encode(r, dictionary=dictionary) for r in rows]
    back = spherecodec.decode_many(many, dictionary=dictionary)
    assert back.dtype == ml_dtypes.bfloat16 and back.tobytes() == rows.tobytes()
    # the float32 frame of the same values (upcast) carries the same payload, another kind
    upcast = spherecodec.encode(rows[1].astype(np.float32), dictionary=dictionary)
    assert upcast[1:-4] == many[1][1:-4] and upcast[0] == frames.KIND_SHIFTED
    for x in (np.zeros(384, ml_dtypes.bfloat16), rows[2, :1], rows[3, 0], rows[:2, :5]):
        x = np.asarray(x)
        frame = spherecodec.encode(x, dictionary=dictionary)
        assert frame[0] in frames.BFLOAT16_KINDS
        y = spherecodec.decode(frame, dictionary=dictionary)
        assert y.dtype == ml_dtypes.bfloat16 and y.shape == x.shape and y.tobytes() == x.tobytes()
        meta = spherecodec.info(frame)
        assert (meta["dtype"], meta["codec"], meta["nbytes"]) == ("bfloat16", "exact", 2 * x.size)
    out = np.empty(384, ml_dtypes.bfloat16)
    spherecodec.decode(many[0], dictionary=dictionary, out=out)
    assert out.tobytes() == rows[0].tobytes()
    with pytest.raises(ValueError, match="bfloat16 array of shape"):
        spherecodec.decode(many[0], dictionary=dictionary, out=np.empty(384, np.float32))
    with pytest.raises(ValueError, match="frame 1 holds float32 values, frame 0 bfloat16"):
        spherecodec.decode_many([many[0], upcast], dictionary=dictionary)
    # lossy dictionaries read bfloat16 as the float32 it holds
    int8 = spherecodec.train_dictionary(sample[:256], "int8")
    assert spherecodec.encode(rows[1], dictionary=int8) == spherecodec.encode(rows[1].astype(np.float32),
                                                                              dictionary=int8)


def test_damaged_bfloat16_frames_are_refused(sample, dictionary):
    frame = spherecodec.encode(sample[300, :40].astype(ml_dtypes.bfloat16), dictionary=dictionary)
    for i in range(len(frame)):
        damaged = bytearray(frame)
        damaged[i] ^= 0x10
        with pytest.raises(SpherecodecError):
            spherecodec.decode(bytes(damaged), dictionary=dictionary)
    # behind a valid check: a float32 frame relabelled bfloat16 holds values with low bits set
    plain = bytearray(spherecodec.encode(sample[300, :40], dictionary=dictionary)[:-4])
    plain[0] |= 0x08
    with pytest.raises(CorruptBlobError, match="nonzero low bits"):
        spherecodec.decode(bytes(frames._seal(plain, dictionary)), dictionary=dictionary)


# -- rabitq frames ----------------------------------------------------------------------------
@pytest.fixture(scope="module", params=[1, 4])
def rabitq(request, sample):
    bits = request.param
    return (spherecodec.train_dictionary(sample[:256], "rabitq", bits=bits, seed=7),
            spherecodec.fit("rabitq", sample[:256], bits=bits, seed=7))


def test_rabitq_frames_hold_the_codecs_codes(sample, rabitq):
    d, fitted = rabitq
    assert (d.codec, d.params["bits"], d.params["seed"]) == ("rabitq", fitted.codec.bits, 7)
    assert spherecodec.Dictionary.from_bytes(d.to_bytes()) == d
    rows = sample[256:266]
    many = spherecodec.encode_many(rows, dictionary=d)
    assert many == [spherecodec.encode(r, dictionary=d) for r in rows]
    width = (384 * fitted.codec.bits + 7) // 8
    codes = fitted.codec.codes(rows, fitted.state)
    for i, frame in enumerate(many):
        # header 8 bytes, f32 factor, f32 offset, u16 cosine, the packed codes, check 4
        assert frame[0] == frames.KIND_RABITQ and len(frame) == 8 + 10 + width + 4
        factor, offset, cosine = struct.unpack_from("<ffH", frame, 8)
        assert (factor, offset, cosine) == (np.float32(codes.factor[i]), np.float32(codes.offset[i]),
                                            codes.cosine[i])
        unpacked = np.empty((1, 384), np.uint8)
        kr.unpack_codes(np.frombuffer(frame, np.uint8)[18:18 + width].reshape(1, width), fitted.codec.bits,
                        unpacked)
        assert np.array_equal(unpacked[0], codes.codes[i])  # bit for bit the codec's codes
        # and decoded as the codec decodes a blob of that one row
        assert_same_bits(spherecodec.decode(frame, dictionary=d), spherecodec.decode(fitted.encode(rows[i:i + 1]))[0])
    assert_same_bits(spherecodec.decode_many(many, dictionary=d),
                     np.stack([spherecodec.decode(f, dictionary=d) for f in many]))
    meta = spherecodec.info(many[0])
    assert meta["codec"] == "rabitq" and meta["kind"] == "rabitq row" and meta["shape"] == (384,)
    # a block of rows is the codec's chunk, as in a blob
    block = spherecodec.encode(rows[:3], dictionary=d)
    assert block[0] == frames.KIND_CHUNK
    assert_same_bits(spherecodec.decode(block, dictionary=d), spherecodec.decode(fitted.encode(rows[:3])))


def test_rabitq_frames_refuse_bad_input_and_damage(sample, rabitq, dictionary):
    d, _ = rabitq
    frame = spherecodec.encode(sample[300], dictionary=d)
    with pytest.raises(ValueError, match="rows of 384 values, not 383"):
        spherecodec.encode(sample[300, :383], dictionary=d)
    with pytest.raises(ValueError, match="rows of 384 values, not 10"):
        spherecodec.encode_many(sample[:4, :10], dictionary=d)
    with pytest.raises(spherecodec.UnsupportedError, match="must be float32, not int64"):
        spherecodec.encode(np.arange(384), dictionary=d)
    bad = sample[300].copy()
    bad[5] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        spherecodec.encode(bad, dictionary=d)
    with pytest.raises(DictionaryError):
        spherecodec.decode(frame, dictionary=dictionary)
    with pytest.raises(DictionaryError):
        spherecodec.decode_many([frame], dictionary=spherecodec.train_dictionary(sample[:100], "rabitq"))
    with pytest.raises(DictionaryError, match="needs dictionary"):
        spherecodec.decode(frame)
    for i in range(len(frame)):
        damaged = bytearray(frame)
        damaged[i] ^= 0x40
        with pytest.raises(SpherecodecError):
            spherecodec.decode(bytes(damaged), dictionary=d)
        with pytest.raises((SpherecodecError, ValueError)):  # ValueError: "frame 1 holds shape ..."
            spherecodec.decode_many([frame, bytes(damaged)], dictionary=d)
    for n in range(len(frame)):
        with pytest.raises(SpherecodecError):
            spherecodec.decode(frame[:n], dictionary=d)
    # regression (fuzz/run.py seed 11): a sealed frame announcing another row width, of the
    # right length, crashed decode_many's batch path
    for dim in (0, 8, 5155):
        forged = frames._header(frames.KIND_RABITQ, d, (dim,))
        forged += frame[len(forged):-4]
        forged = bytes(frames._seal(forged, d))
        with pytest.raises(CorruptBlobError, match="the dictionary codes 384"):
            spherecodec.decode_many([forged, forged], dictionary=d)
    # behind a valid check: negative or non-finite factors, set padding bits, a short payload
    for forged in (frame[:8] + struct.pack("<f", -1.0) + frame[12:-4], frame[:12] + struct.pack("<f", np.inf)
                   + frame[16:-4], frame[:-5]):
        with pytest.raises(CorruptBlobError):
            spherecodec.decode(bytes(frames._seal(bytearray(forged), d)), dictionary=d)


# -- an independent decoder, from docs/format.md section 5 alone ------------------------------
def _varint(buf, pos):
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, pos


def _spec_dictionary(data):
    magic, version, flags, meta_len, body_len = struct.unpack_from("<4sHHII", data, 0)
    assert (magic, version, flags) == (b"SPHD", 1, 0)
    body = data[16 + meta_len:16 + meta_len + body_len]
    precision = body[0]
    m, pos = _varint(body, 1)
    table, symbol, cum = [], 0, 0
    for _ in range(m):
        delta, pos = _varint(body, pos)
        freq, pos = _varint(body, pos)
        symbol += delta
        table.append((symbol, freq, cum))
        cum += freq
    assert cum == 1 << precision and pos == len(body)
    return precision, table


def _spec_decode_frame(frame, precision, table):
    kind, _id32, ndim = struct.unpack_from("<BIB", frame, 0)
    pos, shape = 6, []
    for _ in range(ndim):
        extent, pos = _varint(frame, pos)
        shape.append(extent)
    n = int(np.prod(shape)) if shape else 1
    payload = frame[pos:-4]
    if kind >= 0xE8:  # bfloat16: the float32 frame of its values, whose low 16 bits are zero
        bits = _spec_decode_frame(bytes([kind - 8]) + frame[1:], precision, table)
        assert not (bits & 0xFFFF).any()
        return (bits >> 16).astype(np.uint16).view(ml_dtypes.bfloat16)
    if kind == 0xE1:
        return np.frombuffer(payload, "<u4").astype(np.uint32).reshape(shape)
    if kind == 0xE2:
        return np.full(shape, struct.unpack("<I", payload)[0], dtype=np.uint32)
    t = 0
    if kind == 0xE3:  # the shift, then the raw section of 20 - t bits, as 0xE0's
        t, payload = payload[0], payload[1:]
    else:
        assert kind == 0xE0
    width = 20 - t
    nraw = n * (width // 8) + (n * (width % 8) + 7) // 8
    raw, stream = payload[:nraw], payload[nraw:]
    # 3.3: width // 8 bytes per value, then the width % 8 leftover bits LSB first
    bit_plane = int.from_bytes(raw[n * (width // 8):], "little")
    lows = []
    for i in range(n):
        low = int.from_bytes(raw[i * (width // 8):(i + 1) * (width // 8)], "little")
        low |= ((bit_plane >> (i * (width % 8))) & ((1 << (width % 8)) - 1)) << (8 * (width // 8))
        lows.append(low << t)
    states = list(struct.unpack_from("<II", stream, 0))
    p = 8
    mask = (1 << precision) - 1

    def step(lane, f, start):
        nonlocal p
        x = states[lane]
        x = f * (x >> precision) + (x & mask) - start
        if x < 1 << 16:
            x = (x << 16) | struct.unpack_from("<H", stream, p)[0]
            p += 2
        states[lane] = x

    out = []
    for i in range(n):
        lane = i % 2
        slot = states[lane] & mask
        symbol, freq, start = next(e for e in table if e[2] <= slot < e[2] + e[1])
        step(lane, freq, start)
        if symbol == 4096:  # the escape: two uniform 6-bit steps, high half first
            symbol = 0
            f = 1 << (precision - 6)
            for _ in range(2):
                slot = states[lane] & mask
                symbol = (symbol << 6) | (slot >> (precision - 6))
                step(lane, f, slot - slot % f)
        out.append(symbol << 20 | lows[i])
    assert p == len(stream) and states == [1 << 16, 1 << 16]
    return np.array(out, dtype=np.uint32).reshape(shape)


def test_an_independent_decoder_from_the_spec(sample, dictionary):
    precision, table = _spec_dictionary(dictionary.to_bytes())
    x = sample[490, :64].copy()
    x[::9] = _specials()[:8]  # escapes
    noise = np.random.default_rng(4).integers(0, 2**32, 16, dtype=np.uint32).view(np.float32)  # stored
    kinds = set()
    shapes = [np.zeros(9, np.float32), _low_bits_cleared(x, 16), sample[491].astype(np.float16).astype(np.float32),
              _low_bits_cleared(sample[492, :31], 3), _low_bits_cleared(sample[492, :20], 20)]
    for values in [x, sample[491:493, :30], noise, np.float32(-2.5)] + shapes:
        values = np.asarray(values)
        frame = spherecodec.encode(values, dictionary=dictionary)
        assert_same_bits(_spec_decode_frame(frame, precision, table).view(np.float32), values)
        kinds.add(frame[0])
    for values in (sample[493, :50].astype(ml_dtypes.bfloat16), np.zeros(7, ml_dtypes.bfloat16)):
        frame = spherecodec.encode(values, dictionary=dictionary)
        assert _spec_decode_frame(frame, precision, table).tobytes() == values.tobytes()
        kinds.add(frame[0])
    assert kinds == {0xE0, 0xE1, 0xE2, 0xE3, 0xEA, 0xEB}
