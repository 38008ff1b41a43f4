"""Checks every codec's tests can call (numcodecs style).

Import them from a test module in ``tests/`` with ``from common import ...`` (pytest puts
``tests/`` on ``sys.path``). They assert behaviour the container promises for any codec:
bit-exact round trips, config round trips, and that damaged blobs fail with a
:class:`spherecodec.SpherecodecError`, never another exception or silent garbage.
"""

import json
from pathlib import Path

import ml_dtypes
import numpy as np

import spherecodec
from spherecodec import layout
from spherecodec.errors import SpherecodecError, TruncatedBlobError

DATA = Path(__file__).resolve().parent / "data"

_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
# the format's checksum (function and stored width) and structs come from spherecodec.layout,
# so these helpers forge blobs exactly as the format in use says
_CHECKSUM = layout.CHECKSUM


def checksum(data):
    """The format's checksum of ``data`` (bytes-like), as an int."""
    return layout.checksum(bytes(data))


def load_sample():
    """The 512 x 384 unit-norm MiniLM sentence embeddings shipped with the tests (float32)."""
    return np.load(DATA / "minilm-sentences-512.npy")


def bits(array):
    """``array`` viewed as unsigned integers of its item size (compare floats bit for bit)."""
    array = np.asarray(array)
    if not array.flags.c_contiguous:
        array = array.copy()
    return array.view(_UNSIGNED[array.dtype.itemsize])


def assert_same_bits(actual, expected):
    """Same dtype, same shape and the same bits in every element (NaN payloads included)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if actual.size:
        diff = np.flatnonzero(bits(actual).reshape(-1) != bits(expected).reshape(-1))
        assert diff.size == 0, f"{diff.size} values differ, first at flat index {diff[0]}"


def check_round_trip_exact(arr, codec="exact", **params):
    """Encode ``arr`` with ``codec`` and ``params``; assert a bit-exact round trip.

    Also checks that threads=1 and threads=2 write identical bytes, that ``decode`` into a
    caller's ``out=`` array gives the same bits, and that ``info`` reports the dtype and
    shape. Returns the blob (bytes).
    """
    arr = np.asarray(arr)
    blob = spherecodec.encode(arr, codec, threads=1, **params)
    assert isinstance(blob, bytes)
    blob2 = spherecodec.encode(arr, codec, threads=2, **params)
    assert blob2 == blob, "the bytes depend on the number of threads"
    for threads in (1, 2):
        assert_same_bits(spherecodec.decode(blob, threads=threads), arr)
    out = np.empty(arr.shape, dtype=arr.dtype)
    out.view(_UNSIGNED[arr.dtype.itemsize])[...] = np.iinfo(_UNSIGNED[arr.dtype.itemsize]).max  # poison
    result = spherecodec.decode(blob, out=out)
    assert result is out
    assert_same_bits(out, arr)
    meta = spherecodec.info(blob)
    assert meta["dtype"] == arr.dtype.name
    assert tuple(meta["shape"]) == arr.shape
    assert meta["compressed_nbytes"] == len(blob)
    return blob


def check_config_round_trip(codec_obj):
    """``get_config`` survives JSON and ``from_config`` rebuilds an equal codec; repr works."""
    config = codec_obj.get_config()
    assert isinstance(config, dict)
    restored_config = json.loads(json.dumps(config))
    assert restored_config == config, "get_config is not JSON-stable"
    rebuilt = type(codec_obj).from_config(restored_config)
    assert rebuilt == codec_obj
    assert hash(rebuilt) == hash(codec_obj)
    assert rebuilt.get_config() == config
    text = repr(codec_obj)
    assert text.startswith(type(codec_obj).__name__ + "(")
    assert repr(rebuilt) == text
    assert spherecodec.get_codec(codec_obj.name) is type(codec_obj)
    return rebuilt


# --- helpers that rewrite container fields (layout: spherecodec/layout.py, docs/format.md)

def parse_layout(blob):
    """Container fields of a well-formed ``blob``, as a dict (no validation)."""
    blob = bytes(blob)
    magic, version, flags, meta_len, reserved, n_chunks, shared_len = layout.FIXED.unpack_from(blob, 0)
    meta_start = layout.FIXED_HEADER_SIZE
    index_start = meta_start + meta_len + shared_len
    index_end = index_start + n_chunks * layout.INDEX_ENTRY_SIZE
    entries = [layout.INDEX_ENTRY.unpack_from(blob, index_start + i * layout.INDEX_ENTRY_SIZE)
               for i in range(n_chunks)]
    data_start = index_end + _CHECKSUM.size
    offsets = np.concatenate([[0], np.cumsum([e[0] for e in entries], dtype=np.int64)]) + data_start
    return {
        "magic": magic, "version": version, "flags": flags, "reserved": reserved,
        "meta_len": meta_len, "n_chunks": n_chunks, "shared_len": shared_len,
        "meta": json.loads(blob[meta_start:meta_start + meta_len]),
        "shared": blob[meta_start + meta_len:index_start],
        "index_start": index_start, "index_end": index_end, "data_start": data_start,
        "chunks": [blob[offsets[i]:offsets[i + 1]] for i in range(n_chunks)],
        "offsets": [int(o) for o in offsets],
    }


def build_blob(*, meta, chunks, shared=b"", magic=layout.MAGIC, version=layout.FORMAT_VERSION,
               flags=0, reserved=0, n_chunks=None, shared_len=None, meta_len=None, meta_bytes=None,
               lengths=None, checksums=None, tail=b""):
    """Assemble a blob from parts with a correct header checksum; any field may be forged.

    ``meta`` is serialised like the container does unless ``meta_bytes`` is given.
    ``lengths``/``checksums`` override the index entries (default: the real ones).
    """
    if meta_bytes is None:
        meta_bytes = layout.meta_bytes(meta)
    lengths = [len(c) for c in chunks] if lengths is None else lengths
    checksums = [checksum(c) for c in chunks] if checksums is None else checksums
    header = bytearray(layout.FIXED.pack(
        magic, version, flags, len(meta_bytes) if meta_len is None else meta_len, reserved,
        len(lengths) if n_chunks is None else n_chunks, len(shared) if shared_len is None else shared_len))
    header += meta_bytes + shared
    for length, value in zip(lengths, checksums):
        header += layout.INDEX_ENTRY.pack(length, value)
    header += _CHECKSUM.pack(checksum(header))
    return bytes(header) + b"".join(chunks) + tail


def refresh_checksums(blob):
    """Recompute every chunk checksum and the header checksum of a (damaged) blob, where its fields allow.

    Lets a corruption reach the codec's own checks instead of stopping at a checksum.
    """
    blob = bytearray(blob)
    size = len(blob)
    if size < layout.FIXED_HEADER_SIZE:
        return bytes(blob)
    _, _, _, meta_len, _, n_chunks, shared_len = layout.FIXED.unpack_from(blob, 0)
    index_start = layout.FIXED_HEADER_SIZE + meta_len + shared_len
    if index_start > size or n_chunks > (size - index_start) // layout.INDEX_ENTRY_SIZE:
        return bytes(blob)
    index_end = index_start + n_chunks * layout.INDEX_ENTRY_SIZE
    if index_end + _CHECKSUM.size > size:
        return bytes(blob)
    pos = index_end + _CHECKSUM.size
    for i in range(n_chunks):
        at = index_start + i * layout.INDEX_ENTRY_SIZE
        length, _ = layout.INDEX_ENTRY.unpack_from(blob, at)
        if pos + length > size:
            break
        layout.INDEX_ENTRY.pack_into(blob, at, length, checksum(blob[pos:pos + length]))
        pos += length
    _CHECKSUM.pack_into(blob, index_end, checksum(blob[:index_end]))
    return bytes(blob)


def _decode_or_error(blob):
    """decode(blob), or the SpherecodecError it raised; any other exception propagates."""
    try:
        return spherecodec.decode(blob, threads=1)
    except SpherecodecError as exc:
        return exc


def check_truncations(blob, *, max_lengths=None, seed=0):
    """Every truncation of ``blob`` raises TruncatedBlobError; truncated chunks raise too.

    ``max_lengths`` caps the number of tried lengths for big blobs (evenly spread, plus the
    first and last 64). Also cuts bytes off the end of each chunk payload, with the index
    and checksums rewritten to match, so the codec's ``decode_chunk`` must notice the short
    payload itself (SpherecodecError, never another exception).
    """
    blob = bytes(blob)
    lengths = range(len(blob))
    if max_lengths is not None and len(blob) > max_lengths:
        lengths = sorted(set(range(64)) | set(range(len(blob) - 64, len(blob)))
                         | set(np.linspace(0, len(blob) - 1, max_lengths).astype(int).tolist()))
    for n in lengths:
        try:
            spherecodec.decode(blob[:n])
        except TruncatedBlobError:
            pass
        else:
            raise AssertionError(f"a blob truncated to {n} of {len(blob)} bytes decoded")
        try:
            spherecodec.info(blob[:n])
        except TruncatedBlobError:
            pass
        else:
            raise AssertionError(f"info() accepted a blob truncated to {n} bytes")
    layout = parse_layout(blob)
    rng = np.random.default_rng(seed)
    for i, chunk in enumerate(layout["chunks"]):
        cuts = set(range(1, min(len(chunk), 8) + 1)) | {len(chunk)}
        cuts |= set(rng.integers(1, len(chunk) + 1, size=min(len(chunk), 8)).tolist())
        for cut in sorted(cuts):
            chunks = list(layout["chunks"])
            chunks[i] = chunk[:len(chunk) - cut]
            short = build_blob(meta=layout["meta"], chunks=chunks, shared=layout["shared"])
            result = _decode_or_error(short)
            assert isinstance(result, SpherecodecError), (
                f"chunk {i} cut by {cut} of {len(chunk)} bytes decoded without an error")


def check_corruptions(blob, *, n=300, seed=0, fix_checksums=True):
    """Random byte corruptions either raise a SpherecodecError or decode to the same bits.

    With ``fix_checksums`` the same kind of corruptions are repeated with every checksum recomputed
    (``refresh_checksums``), which sends them past the checksums into the header checks and the
    codec: those must raise a SpherecodecError or return an array of the announced dtype
    and shape (raw payload bits carry no redundancy), never another exception.
    Returns the number of corruptions that raised, per variant.
    """
    blob = bytes(blob)
    reference = spherecodec.decode(blob, threads=1)
    rng = np.random.default_rng(seed)
    raised = {"plain": 0, "fixed": 0}
    variants = ("plain", "fixed") if fix_checksums else ("plain",)
    for _ in range(n):
        damaged = bytearray(blob)
        k = int(rng.integers(1, 4))
        for pos in rng.integers(0, len(blob), size=k):
            damaged[pos] ^= int(rng.integers(1, 256))
        for variant in variants:
            candidate = bytes(damaged) if variant == "plain" else refresh_checksums(damaged)
            result = _decode_or_error(candidate)
            if isinstance(result, SpherecodecError):
                raised[variant] += 1
                continue
            assert isinstance(result, np.ndarray)
            if variant == "plain":
                assert_same_bits(result, reference)
            else:
                meta = spherecodec.info(candidate)
                assert result.dtype.name == meta["dtype"] and result.shape == tuple(meta["shape"])
    return raised


def load_npy(path):
    """``np.load`` of an array file, bfloat16 restored (numpy saves it as void ``V2``)."""
    array = np.load(path)
    if array.dtype == np.dtype("V2"):
        array = array.view(ml_dtypes.bfloat16)
    return array
