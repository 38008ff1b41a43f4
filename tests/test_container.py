"""The container: row access, header facts, and refusal of damaged or forged headers."""

import time
import tracemalloc

import numpy as np
import pytest

import spherecodec
from common import assert_same_bits, build_blob, load_sample, parse_layout, refresh_checksums
from spherecodec import container, pipeline, scratch
from spherecodec.codecs import exact
from spherecodec.kernels import rans_simd
from spherecodec.layout import ALLOCATION_SLACK, FIXED_HEADER_SIZE, FORMAT_VERSION
from spherecodec.errors import CorruptBlobError, SpherecodecError, TruncatedBlobError, UnsupportedError


@pytest.fixture(scope="module")
def sample():
    return load_sample()[:100, :48].copy()


@pytest.fixture(scope="module")
def blob(sample):
    return spherecodec.encode(sample, chunk_rows=16, threads=1)


# --- decode_rows -----------------------------------------------------------------------

def test_decode_rows_matches_slicing(sample, blob):
    full = spherecodec.decode(blob)
    rng = np.random.default_rng(0)
    bounds = [(0, 100), (0, 0), (99, 100), (15, 17), (16, 32), (-5, None), (None, 3), (-200, 500),
              (50, 10), (100, 120), (-1, -1), (7, -7)]
    bounds += [tuple(int(v) for v in rng.integers(-130, 130, size=2)) for _ in range(60)]
    for start, stop in bounds:
        got = spherecodec.decode_rows(blob, start, stop)
        assert_same_bits(got, full[start:stop])
        assert_same_bits(got, sample[start:stop])


def test_decode_rows_of_nd_arrays_and_edge_shapes():
    x = load_sample()[:24].reshape(4, 6, 384)
    blob = spherecodec.encode(x, chunk_rows=5)
    assert_same_bits(spherecodec.decode_rows(blob, 3, 17), x.reshape(-1, 384)[3:17])
    empty_rows = spherecodec.encode(np.zeros((0, 8), np.float32))
    assert spherecodec.decode_rows(empty_rows, 0, 10).shape == (0, 8)
    no_cols = spherecodec.encode(np.zeros((6, 0), np.float32))
    assert spherecodec.decode_rows(no_cols, 1, 4).shape == (3, 0)
    huge_chunks = spherecodec.encode(x, chunk_rows=10**12)
    assert spherecodec.info(huge_chunks)["chunks"] == 1
    spherecodec.decode_rows(huge_chunks, 0, 2)  # compiled first: Numba's compiler allocates too
    tracemalloc.start()
    try:
        assert_same_bits(spherecodec.decode_rows(huge_chunks, 0, 2), x.reshape(-1, 384)[:2])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 22  # scratch sized by the rows that exist (not 10**12 x 384 floats)
    for arr in (np.zeros(5, np.float32), np.float32(1)):
        with pytest.raises(ValueError):
            spherecodec.decode_rows(spherecodec.encode(arr), 0, 1)


def _damage_chunk(blob, i):
    """``blob`` with one payload byte of chunk ``i`` flipped (its checksum left stale)."""
    layout = parse_layout(blob)
    damaged = bytearray(blob)
    damaged[layout["offsets"][i] + len(layout["chunks"][i]) // 2] ^= 0x40
    return bytes(damaged)


def test_decode_rows_decodes_only_the_chunks_it_needs(sample, blob):
    # chunk_rows=16: chunk 2 holds rows 32..47
    damaged = _damage_chunk(blob, 2)
    with pytest.raises(CorruptBlobError, match="chunk 2"):
        spherecodec.decode(damaged)
    for start, stop in [(0, 32), (48, 100), (10, 20), (-52, None), (31, 32), (48, 49)]:
        assert_same_bits(spherecodec.decode_rows(damaged, start, stop), sample[start:stop])
    for start, stop in [(0, 100), (31, 33), (32, 33), (47, 48), (40, 60), (-60, -55)]:
        with pytest.raises(CorruptBlobError, match="chunk 2"):
            spherecodec.decode_rows(damaged, start, stop)
    assert spherecodec.info(damaged)["chunks"] == 7  # info reads no payload


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_every_damaged_chunk_reports_its_checksum_at_any_thread_count(blob, threads):
    for i in range(7):
        with pytest.raises(CorruptBlobError, match=f"checksum mismatch in chunk {i}"):
            spherecodec.decode(_damage_chunk(blob, i), threads=threads)


@pytest.mark.parametrize("damaged", [False, True])
def test_a_chunk_decoded_while_another_worker_checks_takes_its_verdict(sample, blob, damaged):
    # the worker that finds the batch check under way decodes first, then waits for the
    # check: its chunk must come out right, or report its checksum, never the damage
    import threading

    header = container.Header(_damage_chunk(blob, 3) if damaged else blob)
    header.check_ahead = container.CHECK_MANY
    out = np.empty((16, 48), np.float32)
    outcome = []

    def worker():
        try:
            header.decode_chunk_into(3, out)
            outcome.append(None)
        except CorruptBlobError as exc:
            outcome.append(exc)

    with header._check_lock:  # another worker checking
        t = threading.Thread(target=worker)
        t.start()
        t.join(0.5)
        assert t.is_alive()  # decoded, now waiting for the verdict
    t.join()
    if damaged:
        assert "checksum mismatch in chunk 3" in str(outcome[0])
    else:
        assert outcome == [None] and header.checked[3]
        assert_same_bits(out, sample[48:64])


# --- info ----------------------------------------------------------------------------------

def test_info_fields(sample, blob):
    meta = spherecodec.info(blob)
    assert meta["codec"] == "exact"
    assert meta["params"] == spherecodec.get_codec("exact")().get_config()
    assert meta["params"]["mantissa_bits"] is None and meta["params"]["entropy"] == "numba"
    assert meta["dtype"] == "float32"
    assert meta["shape"] == (100, 48)
    assert meta["nbytes"] == sample.nbytes
    assert meta["compressed_nbytes"] == len(blob)
    assert meta["ratio"] == pytest.approx(sample.nbytes / len(blob))
    assert meta["chunks"] == 7 and meta["chunk_rows"] == 16
    assert meta["format_version"] == FORMAT_VERSION
    layout = parse_layout(blob)
    assert meta["header_nbytes"] == layout["data_start"]
    assert layout["data_start"] + sum(map(len, layout["chunks"])) == len(blob)
    x64 = np.ones((3, 5, 7), np.float64)
    meta = spherecodec.info(spherecodec.encode(x64, mantissa_bits=2, entropy="constriction"))
    assert meta["shape"] == (3, 5, 7) and meta["dtype"] == "float64" and meta["nbytes"] == x64.nbytes
    assert meta["params"] == spherecodec.get_codec("exact")(mantissa_bits=2, entropy="constriction").get_config()
    assert spherecodec.info(spherecodec.encode(np.float16(2)))["shape"] == ()


def test_default_chunking_aims_at_default_chunk_bytes():
    x = np.zeros((3000, 384), np.float32)
    meta = spherecodec.info(spherecodec.encode(x))
    assert meta["chunk_rows"] == pipeline.DEFAULT_CHUNK_BYTES // (384 * 4)
    assert (1 << 18) <= pipeline.DEFAULT_CHUNK_BYTES <= (1 << 24)
    assert meta["chunks"] == -(-3000 // meta["chunk_rows"])


def test_blob_types():
    x = load_sample()[:10]
    blob = spherecodec.encode(x)
    for form in (bytearray(blob), memoryview(blob), np.frombuffer(blob, np.uint8)):
        assert_same_bits(spherecodec.decode(form), x)
    for bad in ("SPHC", 12, None):
        with pytest.raises(TypeError):
            spherecodec.decode(bad)


# --- damaged and forged headers ---------------------------------------------------------

@pytest.fixture(scope="module")
def parts():
    x = load_sample()[:40, :32].copy()
    layout = parse_layout(spherecodec.encode(x, chunk_rows=16))
    return x, layout


def _forge(parts, **fields):
    _, layout = parts
    meta = dict(layout["meta"])
    meta.update(fields.pop("meta", {}))
    fields.setdefault("chunks", layout["chunks"])
    return build_blob(meta=meta, **fields)


def _refused(blob, error, *, header=True):
    """Decode ``blob``: it must raise ``error``, fast and without a big allocation.

    ``header``: the header itself is bad, so ``info`` (which reads no payload) raises too.
    """
    tracemalloc.start()
    t0 = time.perf_counter()
    calls = [spherecodec.decode, lambda b: spherecodec.decode_rows(b, 0, 5)]
    if header:
        calls.append(spherecodec.info)
    try:
        for fn in calls:
            with pytest.raises(error) as excinfo:
                fn(blob)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 2.0
    assert peak < 8 * len(blob) + (1 << 20), peak
    return excinfo.value


def test_forging_helper_rebuilds_the_same_blob(parts):
    x, layout = parts
    again = _forge(parts)
    assert again == spherecodec.encode(x, chunk_rows=16)
    assert_same_bits(spherecodec.decode(again), x)


def test_bad_magic_version_flags(parts):
    _refused(_forge(parts, magic=b"SPHX"), CorruptBlobError)
    _refused(b"NOPE" + b"\0" * 100, CorruptBlobError)
    _refused(b"NO", CorruptBlobError)
    _refused(b"SP", TruncatedBlobError)
    _refused(b"", TruncatedBlobError)
    err = _refused(_forge(parts, version=FORMAT_VERSION + 1), UnsupportedError)
    assert "version" in str(err)
    assert "truncated" in str(_refused(_forge(parts, version=0), CorruptBlobError))
    _refused(_forge(parts, flags=1), UnsupportedError)
    _refused(_forge(parts, reserved=7), UnsupportedError)


def test_header_checksum(parts):
    blob = bytearray(_forge(parts))
    blob[FIXED_HEADER_SIZE + 3] ^= 1  # inside the metadata JSON
    _refused(bytes(blob), CorruptBlobError)


def test_unknown_codec_and_bad_params(parts):
    err = _refused(_forge(parts, meta={"codec": "no-such-codec"}), UnsupportedError)
    assert "no-such-codec" in str(err)
    _refused(_forge(parts, meta={"params": {"mantissa_bits": 99, "entropy": "numba"}}), UnsupportedError)
    _refused(_forge(parts, meta={"params": {"surprise": 1}}), UnsupportedError)
    _refused(_forge(parts, meta={"params": []}), CorruptBlobError)
    _refused(_forge(parts, meta={"codec": 5}), CorruptBlobError)
    _refused(_forge(parts, meta={"dtype": "int32"}), UnsupportedError)
    _refused(_forge(parts, meta={"dtype": ["float32"]}), UnsupportedError)
    _refused(_forge(parts, shared=b"\x01\x02"), CorruptBlobError)  # exact stores no shared state


def test_metadata_that_is_not_what_it_should_be(parts):
    for meta_bytes in (b"", b"not json", b"\xff\xfe", b"[1, 2]", b"null", b"[" * 100000 + b"]" * 100000):
        _refused(_forge(parts, meta_bytes=meta_bytes), CorruptBlobError)
    x, layout = parts
    for key in ("codec", "params", "dtype", "shape", "rows", "dim", "chunk_rows"):
        meta = {k: v for k, v in layout["meta"].items() if k != key}
        _refused(build_blob(meta=meta, chunks=layout["chunks"]), CorruptBlobError)


@pytest.mark.parametrize("fields", [
    {"shape": [40, -32], "rows": 40, "dim": -32},
    {"shape": [40.0, 32]},
    {"shape": [True, 32], "rows": 1},
    {"shape": "40x32"},
    {"shape": [1] * 33 + [40, 32]},
    {"rows": 41},
    {"dim": 31},
    {"rows": 32, "dim": 40},                       # same product, transposed
    {"shape": [1280], "rows": 40, "dim": 32},       # 1-D shape is one row
    {"shape": [0, 32], "rows": 10**12, "dim": 0},  # empty shape, absurd rows
    {"chunk_rows": 0},
    {"chunk_rows": 8},                              # 5 needed, 3 stored
    {"rows": 2**62, "shape": [2**62, 32]},
    {"rows": 2**61, "shape": [2**61, 32], "chunk_rows": 2**60},
    {"rows": 400000, "shape": [400000, 32], "chunk_rows": 150000},
])
def test_forged_shape_fields(parts, fields):
    _refused(_forge(parts, meta=fields), CorruptBlobError)


def test_consistent_header_whose_payloads_do_not_fit(parts):
    # 3 chunks of 15 rows fit 40 rows, but the payloads hold 16 rows each
    _refused(_forge(parts, meta={"chunk_rows": 15}), CorruptBlobError, header=False)


def test_allocation_bound(parts):
    """A header may not announce more decoded bytes than max_expansion allows."""
    x, layout = parts
    codec = spherecodec.get_codec("exact")
    # one chunk announcing 10 million rows: 1.2 GB from a blob of a few KB
    rows = 10_000_000
    blob = _forge(parts, meta={"rows": rows, "shape": [rows, 32], "chunk_rows": rows},
                  chunks=[layout["chunks"][0]])
    err = _refused(blob, CorruptBlobError)
    assert "decoded bytes" in str(err)
    budget = ALLOCATION_SLACK + codec.max_expansion * len(blob)
    assert rows * 32 * 4 > budget
    # the largest legal announcement passes the header and fails in the chunk instead
    ok_rows = rows
    for _ in range(3):  # the blob's size depends a little on the digits of ok_rows
        ok_rows = int((ALLOCATION_SLACK + codec.max_expansion * len(blob)) // (32 * 4))
        blob = _forge(parts, meta={"rows": ok_rows, "shape": [ok_rows, 32], "chunk_rows": ok_rows},
                      chunks=[layout["chunks"][0]])
    budget = ALLOCATION_SLACK + codec.max_expansion * len(blob)
    meta = spherecodec.info(blob)
    assert meta["nbytes"] <= budget
    with pytest.raises(CorruptBlobError):
        spherecodec.decode(blob)


def test_real_blobs_respect_the_allocation_bound():
    # the most compressible inputs: constant arrays of every dtype
    for dtype in (np.float16, np.float32, np.float64):
        for mantissa_bits in (0, 3):
            x = np.zeros((2000, 256), dtype)
            blob = spherecodec.encode(x, mantissa_bits=mantissa_bits)
            assert x.nbytes <= container.Header(blob).budget  # constant chunks: beyond max_expansion
            assert_same_bits(spherecodec.decode(blob), x)


@pytest.mark.parametrize("fields,error", [
    ({"n_chunks": 2**60}, TruncatedBlobError),
    ({"n_chunks": 2**64 - 1}, TruncatedBlobError),
    ({"shared_len": 2**63}, TruncatedBlobError),
    ({"shared_len": 2**64 - 1}, TruncatedBlobError),
    ({"meta_len": 2**32 - 1}, CorruptBlobError),
    ({"meta_len": (1 << 20) + 1}, CorruptBlobError),
    ({"lengths": [2**63, 2**63 + 5, 10]}, TruncatedBlobError),
    ({"lengths": [2**64 - 1, 1, 1]}, TruncatedBlobError),
])
def test_forged_sizes(parts, fields, error):
    _refused(_forge(parts, **fields), error)


def test_chunk_lengths_that_do_not_add_up(parts):
    x, layout = parts
    lengths = [len(c) for c in layout["chunks"]]
    moved = [lengths[0] - 3, lengths[1] + 3, lengths[2]]
    # the checksums of the moved chunks fail, once the payloads are read
    _refused(_forge(parts, lengths=moved), CorruptBlobError, header=False)
    longer = [lengths[0], lengths[1], lengths[2] + 1]
    _refused(_forge(parts, lengths=longer), TruncatedBlobError)
    shorter = [lengths[0], lengths[1], lengths[2] - 1]
    _refused(_forge(parts, lengths=shorter), CorruptBlobError)  # a byte trails the last chunk


def test_trailing_garbage(parts):
    for tail in (b"\0", b"SPHC", b"x" * 1000):
        err = _refused(_forge(parts, tail=tail), CorruptBlobError)
        assert not isinstance(err, TruncatedBlobError)


def test_two_blobs_back_to_back_are_refused(parts):
    one = _forge(parts)
    _refused(one + one, CorruptBlobError)


# --- arguments -----------------------------------------------------------------------------

def test_out_argument(parts):
    x, _ = parts
    blob = _forge(parts)
    for bad in (np.empty((40, 31), np.float32), np.empty((40, 32), np.float64),
                np.empty((32, 40), np.float32), np.empty(1280, np.float32),
                np.empty((40, 64), np.float32)[:, ::2], [[0.0] * 32] * 40):
        with pytest.raises(ValueError) as excinfo:
            spherecodec.decode(blob, out=bad)
        assert not isinstance(excinfo.value, SpherecodecError)
    readonly = np.empty((40, 32), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError):
        spherecodec.decode(blob, out=readonly)
    fortran = np.empty((40, 32), np.float32, order="F")
    with pytest.raises(ValueError):
        spherecodec.decode(blob, out=fortran)
    out = np.empty((40, 32), np.float32)
    assert spherecodec.decode(blob, out=out, threads=2) is out
    assert_same_bits(out, x)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2", 2.0])
def test_threads_validation(parts, threads):
    x, _ = parts
    blob = _forge(parts)
    with pytest.raises(ValueError):
        spherecodec.encode(x, threads=threads)
    with pytest.raises(ValueError):
        spherecodec.decode(blob, threads=threads)


def test_threads_accepted_values(parts):
    x, _ = parts
    blob = _forge(parts)
    for threads in (None, 1, 2, 7, np.int64(3)):
        assert spherecodec.encode(x, threads=threads, chunk_rows=16) == blob
        assert_same_bits(spherecodec.decode(blob, threads=threads), x)


@pytest.mark.parametrize("chunk_rows", [0, -1, 2.0, True, "16"])
def test_chunk_rows_validation(chunk_rows):
    with pytest.raises(ValueError):
        spherecodec.encode(np.zeros((4, 4), np.float32), chunk_rows=chunk_rows)


def test_codec_argument_forms():
    x = np.ones((3, 4), np.float32)
    codec = spherecodec.get_codec("exact")(entropy="constriction")
    assert spherecodec.encode(x, codec) == spherecodec.encode(x, "exact", entropy="constriction")
    with pytest.raises(TypeError):
        spherecodec.encode(x, codec, mantissa_bits=2)
    with pytest.raises(TypeError):
        spherecodec.encode(x, codec=3)
    with pytest.raises(UnsupportedError):
        spherecodec.encode(x, "no-such-codec")


# --- the chunks of a default exact float32 blob in one kernel call (threads=1) ----------------

def _spied_general_path(monkeypatch):
    """The chunks the codec's own ``decode_chunk`` decodes from now on (a list that fills)."""
    taken = []
    general = pipeline.CodecCalls.decode_chunk

    def spy(self, i, payload, rows):
        taken.append(i)
        return general(self, i, payload, rows)

    monkeypatch.setattr(pipeline.CodecCalls, "decode_chunk", spy)
    return taken


def _backend_of(chunk, values):
    return chunk[1 + 2 * values + (4 * values + 7) // 8]  # after the mode byte and the raw 20 bits


def test_one_call_decode_takes_every_plain_chunk(monkeypatch):
    x = load_sample()[:480].copy()
    blob = spherecodec.encode(x, chunk_rows=200, threads=1)
    layout = parse_layout(blob)
    # chunks of 200, 200 and 80 rows: streams of 64 lanes, then 32 (entropy.BACKEND_NUMBA64/32)
    assert [_backend_of(c, n * 384) for c, n in zip(layout["chunks"], (200, 200, 80))] == [3, 3, 2]
    taken = _spied_general_path(monkeypatch)
    assert_same_bits(spherecodec.decode(blob, threads=1), x)  # all in one call
    assert_same_bits(spherecodec.decode(blob, threads=2), x)  # runs of chunks, a call each
    assert_same_bits(spherecodec.decode_rows(blob, 150, 420), x[150:420])
    assert taken == []


def test_one_call_decode_leaves_other_chunks_to_the_general_path(monkeypatch):
    x = load_sample()[:500].copy()
    x[100:200] = 0.25                                      # chunk 1: one value (constant mode)
    x[300:400] = (x[300:400].view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)  # 3: bfloat16
    blob = spherecodec.encode(x, chunk_rows=100, threads=1)
    assert [c[0] for c in parse_layout(blob)["chunks"]] != [0] * 5
    taken = _spied_general_path(monkeypatch)
    assert_same_bits(spherecodec.decode(blob, threads=1), x)
    assert taken == [i for i, c in enumerate(parse_layout(blob)["chunks"]) if c[0] != 0] == [1, 3]
    assert_same_bits(spherecodec.decode(blob, threads=2), x)
    assert sorted(taken) == [1, 1, 3, 3]


def test_one_call_decode_reports_a_damaged_chunk_by_its_checksum():
    x = load_sample()[:480].copy()
    blob = spherecodec.encode(x, chunk_rows=60, threads=1)
    offsets = parse_layout(blob)["offsets"]
    for i in range(len(offsets) - 1):  # every place in a group of four checked together
        damaged = bytearray(blob)
        damaged[(offsets[i] + offsets[i + 1]) // 2] ^= 0x10
        for threads in (1, 2):
            with pytest.raises(CorruptBlobError, match=f"checksum mismatch in chunk {i}$"):
                spherecodec.decode(bytes(damaged), threads=threads)


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
@pytest.mark.parametrize("n_chunks", [0, 1, 2, 5, 9, 30, 31, 200])
def test_chunk_runs_cover_every_chunk_once_and_shrink_towards_the_end(n_chunks, threads):
    runs = container.chunk_runs(n_chunks, threads)
    assert [i for first, stop in runs for i in range(first, stop)] == list(range(n_chunks))
    sizes = [stop - first for first, stop in runs]
    assert all(0 < size <= container.CHECK_MANY for size in sizes) or threads == 1
    assert sizes == sorted(sizes, reverse=True)  # whole groups first, then halves, ...
    if threads == 1:
        assert runs == [(0, n_chunks)]
    elif n_chunks >= 2 * threads * container.CHECK_MANY:
        assert sizes[0] == container.CHECK_MANY and sizes[-1] == 1  # the last runs balance the workers


def _outcome(blob, threads):
    try:
        return spherecodec.decode(blob, threads=threads).tobytes()
    except SpherecodecError as exc:
        return type(exc), str(exc)


def test_one_call_decode_gives_the_general_verdict_on_resealed_damage():
    x = load_sample()[:480].copy()
    blob = spherecodec.encode(x, chunk_rows=100, threads=1)
    start = parse_layout(blob)["data_start"]
    rng = np.random.default_rng(5)
    raised = 0
    for _ in range(150):
        damaged = bytearray(blob)
        for pos in rng.integers(start, len(blob), size=int(rng.integers(1, 4))):
            damaged[pos] ^= int(rng.integers(1, 256))
        damaged = refresh_checksums(damaged)  # past the checksums, into the kernel's own checks
        one_call = _outcome(damaged, 1)
        assert one_call == _outcome(damaged, 2)
        raised += isinstance(one_call, tuple)
    assert 0 < raised < 150


def _aligned_zeros(n):
    """n zero uint32 starting at a 64-byte boundary."""
    raw = np.zeros(n + 16, dtype=np.uint32)
    start = (-raw.ctypes.data % 64) // 4
    return raw[start:start + n]


@pytest.mark.skipif(not rans_simd.VECTOR, reason="compares the vector decoder with the scalar one")
def test_one_call_decoders_agree():
    # the vector decoder with plain and streamed stores, and the scalar one
    x = load_sample()[:480].copy()
    blob = spherecodec.encode(x, chunk_rows=150, threads=1)
    layout = parse_layout(blob)
    offsets = np.array(layout["offsets"], dtype=np.int64)
    rng = np.random.default_rng(9)
    for trial in range(40):
        damaged = bytearray(blob)
        if trial:
            for pos in rng.integers(layout["data_start"], len(blob), size=int(rng.integers(1, 3))):
                damaged[pos] ^= int(rng.integers(1, 256))
        damaged = np.frombuffer(refresh_checksums(damaged), dtype=np.uint8)
        sums = np.array([int.from_bytes(bytes(damaged[layout["index_start"] + 16 * i + 8:][:8]), "little")
                         for i in range(layout["n_chunks"])], dtype=np.uint64)
        results = []
        for vector, streaming in ((True, False), (True, True), (False, False)):
            out = _aligned_zeros(x.size)  # every chunk's values start 64-byte aligned: streamed
            kernel = exact._blob.chunks_decoder(vector)
            slots = 1 << exact.ONE_CALL_PRECISION
            done = kernel(damaged, offsets, sums, 0, len(sums), True, streaming, 150 * 384, out,
                          np.empty(rans_simd.table_size(exact.ONE_CALL_PRECISION), np.uint64),
                          np.empty(slots, np.uint32), np.empty(slots, np.uint16),
                          np.empty(4096, np.int64), np.empty(4096, np.int64))
            results.append((done, out[:min(done * 150 * 384, x.size)].tobytes()))
        assert results[0] == results[1] == results[2]
        if not trial:
            assert results[0][0] == layout["n_chunks"] and results[0][1] == x.tobytes()


@pytest.mark.parametrize("pooled", [True, False])
def test_large_outputs_start_aligned_and_decode_streamed(monkeypatch, pooled):
    # outputs from STREAMING_FROM on come 64-byte aligned, from the output pool or from
    # malloc, and the decoder streams its stores into them (the thresholds lowered: a small
    # blob stands in for a large one); the values are the same, at threads 1 and 2 and
    # after reuse
    monkeypatch.setattr(scratch, "ALIGNED_FROM", 1 << 16)
    if pooled:
        monkeypatch.setattr(scratch, "REUSE_FROM", 1 << 16)
    monkeypatch.setattr(container, "STREAMING_FROM", 1 << 16)
    x = load_sample()[:480].copy()
    blob = spherecodec.encode(x, chunk_rows=150, threads=1)  # chunks of 230,400 bytes: aligned
    assert container.Header(blob).streaming
    for threads in (1, 2, 1, 2):
        y = spherecodec.decode(blob, threads=threads)
        assert y.ctypes.data % 64 == 0 and not y.flags.owndata
        assert_same_bits(y, x)
        del y
