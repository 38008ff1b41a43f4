"""spherecodec.stream: files written chunk by chunk are encode()'s bytes; streamed reads are exact."""

from pathlib import Path

import numpy as np
import pytest

import spherecodec
from spherecodec import CorruptBlobError, TruncatedBlobError, UnsupportedError, blobsink, stream
from spherecodec.codecs import Codec
from spherecodec.codecs import _REGISTRY as codecs_registry

DATA = Path(__file__).parent / "data"
SENTENCES = np.load(DATA / "minilm-sentences-512.npy")
TOKENS_RAW = np.load(DATA / "minilm-tokens-raw-256.npy")


def bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.dtype(f"u{a.dtype.itemsize}")) if a.ndim else a.reshape(1).view(np.dtype(f"u{a.dtype.itemsize}"))


def same_bits(a, b):
    return a.shape == b.shape and np.array_equal(bits(a), bits(b))


def specials():
    """Real rows with every special float32 pattern planted in them."""
    x = SENTENCES[:64].copy()
    u = x.view(np.uint32)
    u[0, :8] = [0x7FC00000, 0x7FC12345, 0xFFC00001, 0x7F800001, 0x7F800000, 0xFF800000, 0x80000000, 0x00000001]
    u[1, :4] = [0x007FFFFF, 0x80000007, 0x00000000, 0x7F7FFFFF]
    return x


ARRAYS = {
    "sentences": (SENTENCES, {}),
    "sentences-chunks-7": (SENTENCES, {"chunk_rows": 7}),
    "sentences-chunk-1": (SENTENCES[:40], {"chunk_rows": 1}),
    "tokens-raw": (TOKENS_RAW, {"chunk_rows": 50}),
    "specials": (specials(), {"chunk_rows": 16}),
    "big-endian": (TOKENS_RAW.astype(">f4"), {"chunk_rows": 64}),
    "fortran": (np.asfortranarray(SENTENCES[:100]), {"chunk_rows": 30}),
    "3-d": (SENTENCES.reshape(8, 64, 384), {"chunk_rows": 33}),
    "strided": (SENTENCES[::3, ::2], {"chunk_rows": 20}),
    "1-d": (SENTENCES[5], {}),
    "0-d": (np.float32(-0.0), {}),
    "no-rows": (np.zeros((0, 384), np.float32), {}),
    "float64": (TOKENS_RAW.astype(np.float64), {"chunk_rows": 64}),
    "float16": (SENTENCES.astype(np.float16), {"mantissa_bits": 2}),
}


@pytest.mark.parametrize("name", list(ARRAYS))
@pytest.mark.parametrize("threads", [1, 2])
def test_encode_to_file_writes_encodes_bytes(tmp_path, name, threads):
    array, params = ARRAYS[name]
    path = tmp_path / "a.sphc"
    written = stream.encode_to_file(array, path, threads=threads, **params)
    expected = spherecodec.encode(array, threads=1, **params)
    assert path.read_bytes() == expected
    assert written == len(expected)


@pytest.mark.parametrize("name", list(ARRAYS))
def test_npy_round_trip_is_bit_exact_and_matches_encode(tmp_path, name, monkeypatch):
    # tiny batches: the window of chunks in flight is reached even on small data
    monkeypatch.setattr(stream, "BATCH_BYTES", 1 << 14)
    array, params = ARRAYS[name]
    src, blob, out = tmp_path / "in.npy", tmp_path / "x.sphc", tmp_path / "out.npy"
    np.save(src, array)
    stream.compress_npy(src, blob, threads=2, **params)
    assert blob.read_bytes() == spherecodec.encode(array, threads=1, **params)
    stream.decompress_npy(blob, out, threads=2)
    back = np.load(out)
    assert back.dtype == np.dtype(array.dtype.name)  # native byte order
    assert same_bits(back, np.asarray(array).astype(back.dtype))


@pytest.mark.parametrize("codec", spherecodec.available_codecs())
def test_every_registered_codec_streams_to_the_same_bytes(tmp_path, codec):
    x = SENTENCES[:120]
    src, path = tmp_path / "in.npy", tmp_path / "x.sphc"
    np.save(src, x)
    try:
        expected = spherecodec.encode(x, codec, threads=1, chunk_rows=32)
    except (ValueError, TypeError) as exc:  # a codec that needs parameters: same refusal
        with pytest.raises(type(exc)):
            stream.compress_npy(src, path, codec, threads=2, chunk_rows=32)
        assert not path.exists()
        return
    stream.compress_npy(src, path, codec, threads=2, chunk_rows=32)
    assert path.read_bytes() == expected
    stream.decompress_npy(path, tmp_path / "out.npy")
    assert same_bits(np.load(tmp_path / "out.npy"), spherecodec.decode(expected))


class _Seen:
    """_LateConfigCodec's state: a count that coding changes."""

    def __init__(self, seen):
        self.seen = seen


class _LateConfigCodec(Codec):
    """Test codec whose stored config and shared section only settle after the last chunk.

    The codec contract forbids it (a state is immutable once ``prepare`` returns it); this
    one breaks it on purpose, to check that the writers survive a header that changes size.
    """

    dtypes = ("float32",)

    def __init__(self, *, grow=True, seen=0):
        self.grow = grow
        self.seen = seen

    def get_config(self):
        return {"grow": self.grow, "seen": self.seen}

    def prepare(self, rows):
        return _Seen(self.seen)

    def stored_config(self, state):
        return {"grow": self.grow, "seen": state.seen}

    def encode_chunk(self, rows, state):
        state.seen += 1000 if self.grow else 0
        return rows.tobytes()

    def decode_chunk(self, payload, out, state):
        if payload.size != out.nbytes:
            raise CorruptBlobError("bad size")
        out[...] = payload.view(np.float32).reshape(out.shape)

    def shared_bytes(self, state):
        return b"s" * (state.seen // 100) if self.grow else b""

    def load_shared(self, data, dtype, dim):
        return _Seen(self.seen)


class _GrowingCodec(_LateConfigCodec):
    name = "test-stream-growing"


class _ShrinkingCodec(_LateConfigCodec):
    """Starts with a long config that encoding shortens."""

    name = "test-stream-shrinking"

    def __init__(self, *, grow=False, seen=10 ** 12):
        super().__init__(grow=grow, seen=seen)

    def encode_chunk(self, rows, state):
        state.seen = 1
        return rows.tobytes()


@pytest.mark.parametrize("codec", [_GrowingCodec, _ShrinkingCodec])
def test_large_blob_whose_header_changes_size_while_encoding(codec, monkeypatch):
    # encode writes payloads into the blob behind a header of the size it expects; a codec
    # that settles its config while coding makes them move once
    monkeypatch.setitem(codecs_registry, codec.name, codec)
    monkeypatch.setattr(blobsink, "LARGE_BLOB_BYTES", 1000)
    x = SENTENCES[:200]
    blobs = [spherecodec.encode(x, codec.name, chunk_rows=16, threads=t) for t in (1, 2)]
    monkeypatch.setattr(blobsink, "LARGE_BLOB_BYTES", 1 << 62)
    assert blobs[0] == blobs[1] == spherecodec.encode(x, codec.name, chunk_rows=16, threads=1)
    assert same_bits(spherecodec.decode(blobs[0]), x)


class _FailingCodec(_LateConfigCodec):
    name = "test-stream-failing"

    def encode_chunk(self, rows, state):
        if rows[0, 0] == SENTENCES[100, 0]:
            raise ValueError("chunk 100 refuses")
        return rows.tobytes()


def test_an_error_while_writing_a_large_blob_propagates(monkeypatch):
    monkeypatch.setitem(codecs_registry, _FailingCodec.name, _FailingCodec)
    monkeypatch.setattr(blobsink, "LARGE_BLOB_BYTES", 1000)
    for threads in (1, 2):
        with pytest.raises(ValueError, match="refuses"):
            spherecodec.encode(SENTENCES[:200], _FailingCodec.name, chunk_rows=10, threads=threads)


@pytest.mark.parametrize("codec", [_GrowingCodec, _ShrinkingCodec])
def test_header_that_changes_size_while_encoding_moves_the_payloads(tmp_path, codec, monkeypatch):
    # registered for this test only: other tests iterate over the real codecs
    monkeypatch.setitem(codecs_registry, codec.name, codec)
    codec = codec.name
    monkeypatch.setattr(stream, "_COPY_BYTES", 1000)  # many moves of a few bytes each
    x = SENTENCES[:200]
    path = tmp_path / "x.sphc"
    stream.encode_to_file(x, path, codec, chunk_rows=16, threads=2)
    expected = spherecodec.encode(x, codec, chunk_rows=16, threads=1)
    assert path.read_bytes() == expected
    assert same_bits(spherecodec.decode(path.read_bytes()), x)


def test_blob_file_reads_blocks_rows_and_info(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "BATCH_BYTES", 1 << 13)  # many blocks
    x = TOKENS_RAW
    path = tmp_path / "x.sphc"
    stream.encode_to_file(x, path, chunk_rows=10)
    with stream.BlobFile(path) as blob:
        assert blob.info() == spherecodec.info(path.read_bytes())
        starts = []
        joined = np.empty_like(x)
        for lo, block in blob.iter_blocks(threads=2):
            starts.append(lo)
            joined[lo:lo + len(block)] = block
        assert starts == sorted(starts) and len(starts) > 1
        assert same_bits(joined, x)
        assert same_bits(blob.read_rows(37, 141), x[37:141])
        assert same_bits(blob.read(), x)
    assert stream.file_info(path)["shape"] == x.shape


def test_corrupt_and_truncated_files_raise_and_leave_no_output(tmp_path):
    path = tmp_path / "x.sphc"
    stream.encode_to_file(SENTENCES, path, chunk_rows=100)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x40  # inside the last chunk's payload
    bad = tmp_path / "bad.sphc"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptBlobError, match="chunk"):
        stream.decompress_npy(bad, tmp_path / "out.npy")
    short = tmp_path / "short.sphc"
    short.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(TruncatedBlobError):
        stream.decompress_npy(short, tmp_path / "out.npy")
    empty = tmp_path / "empty.sphc"
    empty.write_bytes(b"")
    with pytest.raises(TruncatedBlobError):
        stream.file_info(empty)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.sphc", "empty.sphc", "short.sphc", "x.sphc"]


def test_bad_npy_inputs_raise_clear_errors(tmp_path):
    src = tmp_path / "in.npy"
    np.save(src, SENTENCES)
    truncated = tmp_path / "truncated.npy"
    truncated.write_bytes(src.read_bytes()[:-4])
    with pytest.raises(stream.NpyFormatError, match="truncated"):
        stream.compress_npy(truncated, tmp_path / "o.sphc")
    not_npy = tmp_path / "text.npy"
    not_npy.write_bytes(b"hello, this is not an array\n")
    with pytest.raises(stream.NpyFormatError, match="not a .npy"):
        stream.compress_npy(not_npy, tmp_path / "o.sphc")
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UnsupportedError):
        stream.compress_npy(objects, tmp_path / "o.sphc")
    ints = tmp_path / "ints.npy"
    np.save(ints, np.arange(12, dtype=np.int32).reshape(3, 4))
    with pytest.raises(UnsupportedError, match="int32"):
        stream.compress_npy(ints, tmp_path / "o.sphc")
    assert not (tmp_path / "o.sphc").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_read_npy_gives_pages_back(tmp_path):
    # 16 MB of rows: after release the mapping's resident size drops back
    src = tmp_path / "in.npy"
    np.save(src, np.tile(SENTENCES, (21, 1)))
    with stream.read_npy(src) as (array, release):
        assert same_bits(array[:512], SENTENCES)
        total = float(np.asarray(array, dtype=np.float64).sum())  # touches every page
        assert np.isfinite(total)
        resident_before = _resident_bytes(array)
        release(0, None)
        resident_after = _resident_bytes(array)
    assert resident_before > 8 << 20
    assert resident_after < resident_before / 4


def _resident_bytes(array):
    """Resident bytes of the pages under ``array``, from /proc/self/smaps' entry for its map."""
    start = array.__array_interface__["data"][0]
    with open("/proc/self/smaps") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        head = line.split()[0]
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            lo, hi = (int(v, 16) for v in head.split("-"))
            if lo <= start < hi:
                for entry in lines[i + 1:]:
                    if entry.startswith("Rss:"):
                        return int(entry.split()[1]) * 1024
    raise AssertionError("mapping not found")
