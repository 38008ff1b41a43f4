"""Small blobs (issue 20): the one-call path of small float32 arrays with the default exact
codec (container.encode_small/decode_small, kernels/rans_blob.py) writes and reads the
chunk pipeline's very bytes; short exact streams take 12-bit tables
(entropy.short_stream_layout); the quantizer's selection (its rule against a reference:
test_format_spec.py) finds every rank."""

import numpy as np
import pytest

import spherecodec
from common import assert_same_bits, load_sample, parse_layout
from spherecodec import container, entropy, pipeline
from spherecodec.blobsink import MemorySink
from spherecodec.errors import CorruptBlobError, SpherecodecError
from spherecodec.kernels import rans


def _pipeline_blob(array):
    """The blob the general chunk pipeline writes (no small path)."""
    return pipeline.encode_array(array, "exact", {}, MemorySink(), threads=1)


def _no_pipeline(*args, **kwargs):
    raise AssertionError("the small path should have taken this call")


@pytest.fixture(scope="module")
def sample():
    return load_sample()


SHAPES = {  # 1 lane, 8 lanes at 12 bits, 32 lanes at 12 bits with a tail step, 1-D, 3-D
    "1 lane": lambda x: x[:1, :255].copy(),
    "8 lanes": lambda x: x[:5, :300].copy(),
    "32 lanes": lambda x: x[:23, :383].copy(),
    "1-D": lambda x: x[7].copy(),
    "3-D": lambda x: x[:24].reshape(4, 6, 384).copy(),
}


@pytest.mark.parametrize("make", SHAPES.values(), ids=SHAPES.keys())
def test_small_path_writes_and_reads_the_pipeline_bytes(sample, make, monkeypatch):
    x = make(sample)
    expected = _pipeline_blob(x)
    container._SMALL_PREFIXES.clear()
    container._SMALL_METAS.clear()
    monkeypatch.setattr(container, "encode_array", _no_pipeline)
    blob = spherecodec.encode(x)
    assert blob == expected
    assert spherecodec.encode(x, threads=2) == expected  # cached header, any threads
    monkeypatch.setattr(container, "Header", _no_pipeline)
    assert_same_bits(spherecodec.decode(blob), x)


def test_small_path_learns_metadata_from_the_general_decoder(sample, monkeypatch):
    x = sample[:9, :100].copy()
    blob = _pipeline_blob(x)
    container._SMALL_PREFIXES.clear()
    container._SMALL_METAS.clear()
    assert_same_bits(spherecodec.decode(blob), x)  # general decoder: the metadata is now known
    monkeypatch.setattr(container, "Header", _no_pipeline)
    assert_same_bits(spherecodec.decode(blob, threads=1), x)


def test_small_path_buffer_is_per_thread_and_reused_cleanly(sample):
    # the kernel writes into a buffer each thread keeps (codecs.exact._SMALL_OUT): blobs of
    # growing and shrinking sizes, and threads coding at once, each get their own bytes
    from concurrent.futures import ThreadPoolExecutor

    pieces = [sample[k:k + rows, :dim].copy() for k, (rows, dim) in
              enumerate([(30, 384), (2, 100), (40, 384), (1, 50), (12, 384), (40, 384)] * 4)]
    expected = [_pipeline_blob(x) for x in pieces]
    assert [spherecodec.encode(x) for x in pieces] == expected
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            assert list(pool.map(spherecodec.encode, pieces)) == expected


def _with_zero_low_bit(x):
    y = x.copy()
    y.view(np.uint32)[:] &= ~np.uint32(1)
    return y


DECLINED = {  # chunks the pipeline codes in another mode: the small path hands them over
    "constant": lambda x: np.full((3, 50), 0.25, np.float32),
    "sparse": lambda x: np.where(np.arange(400).reshape(4, 100) % 5 == 0, x[:4, :100], 0).astype(np.float32),
    "zero low bit": lambda x: _with_zero_low_bit(x[:4, :100]),
    "one value (stored)": lambda x: x[:1, :1].copy(),
    "random bits (stored)": lambda x: np.random.default_rng(1).integers(0, 2**32, (4, 64), np.uint32)
    .view(np.float32),
    "big endian": lambda x: x[:4, :64].astype(">f4"),
    "not contiguous": lambda x: x[:8, :64][::2],
    "float64": lambda x: x[:4, :64].astype(np.float64),
}


@pytest.mark.parametrize("make", DECLINED.values(), ids=DECLINED.keys())
def test_inputs_the_small_path_declines_keep_their_bytes(sample, make):
    x = make(sample)
    blob = spherecodec.encode(x)
    assert blob == _pipeline_blob(x)
    assert spherecodec.decode(blob).tobytes() == np.ascontiguousarray(x).astype(x.dtype.newbyteorder("=")).tobytes()
    assert spherecodec.decode(blob).tobytes() == spherecodec.decode(blob).tobytes()  # again: small path tried


def test_damaged_small_blobs_fail_as_in_the_general_decoder(sample):
    x = sample[:6, :200].copy()
    blob = spherecodec.encode(x)
    spherecodec.decode(blob)  # metadata known: damaged copies reach the small path's kernel
    layout = parse_layout(blob)
    rng = np.random.default_rng(2)
    positions = sorted({layout["index_start"] + k for k in range(24)} | {layout["data_start"] + k for k in range(12)}
                       | set(rng.integers(layout["data_start"], len(blob), 40).tolist()))
    for pos in positions:
        damaged = bytearray(blob)
        damaged[pos] ^= 1 << (pos % 8)
        with pytest.raises(CorruptBlobError):
            spherecodec.decode(bytes(damaged))
    for cut in (len(blob) - 1, layout["data_start"] + 1, layout["data_start"]):
        with pytest.raises(SpherecodecError):
            spherecodec.decode(blob[:cut])


def test_short_streams_take_twelve_bit_tables():
    assert entropy.short_stream_layout(100, True) == (12, False)
    assert entropy.short_stream_layout(1 << 13, True) == (12, True)
    assert entropy.short_stream_layout(1 << 13, False) == (12, False)
    assert entropy.short_stream_layout((1 << 15) - 1, True) == (12, True)
    assert entropy.short_stream_layout(1 << 15, True) == (14, True)  # long streams as before
    assert entropy.short_stream_layout(0, True) == (14, False)  # and empty ones
    assert entropy.short_stream_layout((1 << 14) - 1, False) == (12, False)
    # a table of more symbols than 12 bits give two slots each takes more bits
    values = np.arange(3000, dtype=np.uint16)
    out = np.zeros(entropy.stream_capacity(values.size, 4096), np.uint8)
    entropy.encode_stream_into(values, 4096, out, 0, short_tables=True)
    assert out[1] == 13


def test_selection_finds_every_rank():
    rng = np.random.default_rng(5)
    for keys in (rng.permutation(500), np.arange(300), np.arange(300)[::-1],
                 np.concatenate([np.arange(0, 400, 2), np.arange(399, 0, -2)]), np.array([7])):
        keys = np.ascontiguousarray(keys, dtype=np.int64) * 3 + 1
        ordered = np.sort(keys)
        for m in sorted(m for m in {1, 2, keys.size // 2, keys.size - 1, keys.size} if 1 <= m <= keys.size):
            assert rans._kth_smallest(keys, m) == ordered[m - 1]
