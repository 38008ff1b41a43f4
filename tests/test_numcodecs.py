"""numcodecs codec: found through the entry point, config round trip, bit-exact round trips."""

from pathlib import Path

import numcodecs
import numcodecs.registry
import numpy as np
import pytest
import zarr
import zarr.storage

import spherecodec
from spherecodec import UnsupportedError
from spherecodec.integrations.numcodecs import Spherecodec

DATA = Path(__file__).parent / "data"
SENTENCES = np.load(DATA / "minilm-sentences-512.npy")
TOKENS_RAW = np.load(DATA / "minilm-tokens-raw-256.npy")


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(
        a.view(f"u{a.dtype.itemsize}"), b.view(f"u{b.dtype.itemsize}"))


def with_specials(x):
    x = x.copy()
    u = x.view(np.uint32)
    u[0, :7] = [0x7FC00000, 0xFFC12345, 0x7F800000, 0xFF800000, 0x80000000, 0x00000001, 0x807FFFFF]
    return x


def test_get_codec_loads_it_through_the_entry_point(monkeypatch):
    # forget any earlier registration: the lookup must go through numcodecs.codecs
    monkeypatch.delitem(numcodecs.registry.codec_registry, "spherecodec", raising=False)
    numcodecs.registry.run_entrypoints()
    assert "spherecodec" in numcodecs.registry.entries
    codec = numcodecs.get_codec({"id": "spherecodec", "codec": "exact", "params": {"mantissa_bits": 2}})
    assert type(codec) is Spherecodec
    assert codec.get_config() == {"id": "spherecodec", "codec": "exact", "params": {"mantissa_bits": 2}}


@pytest.mark.parametrize("config", [
    {"id": "spherecodec"},
    {"id": "spherecodec", "codec": "exact", "params": {"entropy": "constriction", "chunk_rows": 100}},
    {"id": "spherecodec", "codec": "int8", "params": {}},
])
def test_config_round_trip(config):
    codec = numcodecs.get_codec(config)
    again = numcodecs.get_codec(codec.get_config())
    assert again == codec and again.get_config() == codec.get_config()
    assert Spherecodec.from_config(codec.get_config()) == codec
    assert codec.get_config()["id"] == "spherecodec"


@pytest.mark.parametrize("array", [
    with_specials(SENTENCES), with_specials(TOKENS_RAW), TOKENS_RAW.astype(np.float64),
    SENTENCES.astype(np.float16), SENTENCES.reshape(4, 128, 384), SENTENCES[7],
], ids=["sentences", "tokens-raw", "float64", "float16", "3-d", "1-d"])
def test_round_trip_is_bit_exact(array):
    codec = Spherecodec(params={"chunk_rows": 64})
    blob = codec.encode(array)
    assert bytes(blob) == spherecodec.encode(array, chunk_rows=64)
    assert same_bits(codec.decode(blob), array)
    if array.size > 10_000 and array.dtype == np.float32:
        assert len(blob) < array.nbytes


def test_decode_into_out_buffers():
    codec = Spherecodec()
    blob = codec.encode(TOKENS_RAW)
    out = np.empty_like(TOKENS_RAW)
    assert codec.decode(blob, out=out) is out and same_bits(out, TOKENS_RAW)
    flat = np.empty(TOKENS_RAW.nbytes, dtype=np.uint8)  # the shape numcodecs stores often pass
    codec.decode(np.frombuffer(blob, dtype=np.uint8), out=flat)
    assert same_bits(flat.view(np.float32).reshape(TOKENS_RAW.shape), TOKENS_RAW)
    with pytest.raises(ValueError, match="bytes"):
        codec.decode(blob, out=np.empty(10, dtype=np.float32))


def test_bad_configs_and_blobs_raise():
    with pytest.raises(UnsupportedError, match="unknown codec"):
        Spherecodec(codec="nope")
    with pytest.raises(ValueError):
        Spherecodec(params={"mantissa_bits": 99})
    with pytest.raises(TypeError):
        Spherecodec(params={"colour": "blue"})
    with pytest.raises(TypeError, match="JSON"):
        Spherecodec(params={"mantissa_bits": np.int64})
    with pytest.raises(ValueError, match="chunk_rows"):
        Spherecodec(params={"chunk_rows": 0})
    codec = Spherecodec()
    blob = bytearray(codec.encode(SENTENCES))
    blob[-3] ^= 0xFF
    with pytest.raises(spherecodec.CorruptBlobError):
        codec.decode(bytes(blob))
    with pytest.raises(UnsupportedError):
        codec.encode(np.arange(10, dtype=np.int32))


def test_lossy_codec_keeps_its_error_bound():
    codec = numcodecs.get_codec({"id": "spherecodec", "codec": "int8", "params": {}})
    y = codec.decode(codec.encode(SENTENCES))
    assert y.shape == SENTENCES.shape and np.abs(y - SENTENCES).max() < 0.05


def test_as_a_zarr_v2_compressor_is_bit_exact(tmp_path):
    x = with_specials(TOKENS_RAW)
    store = zarr.storage.LocalStore(str(tmp_path / "v2.zarr"))
    z = zarr.create_array(store, shape=x.shape, chunks=(100, 384), dtype="float32", zarr_format=2,
                          compressors=Spherecodec(), filters=None)
    z[:] = x
    back = zarr.open_array(str(tmp_path / "v2.zarr"), mode="r")
    assert same_bits(back[:], x)
    assert back.metadata.compressor.get_config()["id"] == "spherecodec"
