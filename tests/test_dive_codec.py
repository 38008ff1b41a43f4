"""The "dive" codec: DIVE reduction composed with another codec, decodable without the adapter."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import spherecodec
from spherecodec.codecs import get_codec, register_codec
from spherecodec.codecs.base import Codec
from spherecodec.dive import DiveAdapter
from spherecodec.errors import CorruptBlobError

DATA = Path(__file__).parent / "data" / "minilm-sentences-512.npy"
ROOT = Path(__file__).resolve().parents[1]


@register_codec
class _ScaledInt16(Codec):
    """Test-only inner codec with per-blob state: one scale in the shared section."""

    name = "test-dive-scaled-int16"

    def prepare(self, rows):
        return float(np.abs(rows).max()) or 1.0  # the state: the scale

    def shared_bytes(self, scale):
        return np.float64(scale).tobytes()

    def load_shared(self, data, dtype, dim):
        if data.size != 8:
            raise CorruptBlobError("scale missing")
        return float(data.view(np.float64)[0])

    def encode_chunk(self, rows, scale):
        return np.round(rows / scale * 32767).astype("<i2").tobytes()

    def decode_chunk(self, payload, out, scale):
        if payload.size != out.size * 2:
            raise CorruptBlobError("bad length")
        out[:] = (payload.view("<i2").astype(np.float32) * np.float32(scale / 32767)).reshape(out.shape)


@pytest.fixture(scope="module")
def sentences():
    return np.load(DATA)


@pytest.fixture(scope="module")
def adapter(sentences):
    a = DiveAdapter(384, 48, heads=2, hidden=16, seed=2)
    a.params = a._initial_params(sentences)
    rng = np.random.default_rng(1)
    a.params["w2"] = (rng.standard_normal(a.params["w2"].shape) * 0.05).astype(np.float32)
    return a


def test_exact_inner_stores_the_reduced_rows_bit_exactly(sentences, adapter):
    blob = spherecodec.encode(sentences, codec="dive", adapter=adapter, then="exact", chunk_rows=100)
    out = spherecodec.decode(blob)
    assert out.shape == (512, 48) and out.dtype == np.float32
    assert np.array_equal(out.view(np.uint32), adapter.transform(sentences).view(np.uint32))
    meta = spherecodec.info(blob)
    assert meta["codec"] == "dive" and meta["shape"] == (512, 48)
    assert meta["params"]["adapter_sha256"] == adapter.weights_hash()
    assert meta["params"]["then"] == "exact" and meta["params"]["dim_in"] == 384
    assert np.array_equal(spherecodec.decode_rows(blob, 130, 260), out[130:260])


@pytest.mark.parametrize("then, then_config", [
    ("exact", {}), ("int8", {}), ("fp16", {}), ("test-dive-scaled-int16", {}), ("exact", {"mantissa_bits": 2}),
])
def test_composition_decodes_like_the_inner_codec_alone(sentences, adapter, then, then_config):
    reduced = adapter.transform(sentences)
    blob = spherecodec.encode(sentences, codec="dive", adapter=adapter, then=then, then_config=then_config)
    alone = spherecodec.encode(reduced, codec=then, **then_config)
    a, b = spherecodec.decode(blob), spherecodec.decode(alone)
    assert a.dtype == b.dtype and a.shape == b.shape == (512, 48)
    assert np.array_equal(a.view(np.uint8), b.view(np.uint8))
    params = spherecodec.info(blob)["params"]
    assert params["then"] == then and params["then_config"] == get_codec(then)(**then_config).get_config()


def test_shared_section_is_the_inner_codecs(sentences, adapter):
    blob = spherecodec.encode(sentences, codec="dive", adapter=adapter, then="test-dive-scaled-int16")
    reduced = adapter.transform(sentences)
    out = spherecodec.decode(blob)
    assert np.abs(out - reduced).max() <= np.abs(reduced).max() / 32767
    codec = get_codec("dive")(adapter=adapter, then="test-dive-scaled-int16")
    state = codec.prepare(codec.transform_rows(sentences))
    assert codec.shared_bytes(state) == np.float64(np.abs(reduced).max()).tobytes()


def test_nd_arrays_keep_their_leading_shape(sentences, adapter):
    x = sentences[:100].reshape(2, 50, 384)
    out = spherecodec.decode(spherecodec.encode(x, codec="dive", adapter=adapter))
    assert out.shape == (2, 50, 48)
    assert np.array_equal(out.reshape(100, 48), adapter.transform(sentences[:100]))


def test_decode_needs_neither_adapter_nor_torch(tmp_path, sentences, adapter):
    blob_path = tmp_path / "x.sphc"
    blob_path.write_bytes(spherecodec.encode(sentences, codec="dive", adapter=adapter, then="int8"))
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None
        import numpy as np, spherecodec
        blob = open({str(blob_path)!r}, "rb").read()
        np.save({str(tmp_path / 'y.npy')!r}, spherecodec.decode(blob))
        print(spherecodec.info(blob)["params"]["adapter_sha256"])
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == adapter.weights_hash()
    expected = spherecodec.decode(blob_path.read_bytes())
    assert np.array_equal(np.load(tmp_path / "y.npy").view(np.uint32), expected.view(np.uint32))


def test_config_round_trip_without_adapter(adapter):
    codec = get_codec("dive")(adapter=adapter, then="int8")
    rebuilt = get_codec("dive").from_config(codec.get_config())
    assert rebuilt == codec and rebuilt.adapter is None
    assert rebuilt.max_expansion == get_codec("int8")().max_expansion
    with pytest.raises(ValueError, match="needs adapter"):
        rebuilt.transform_rows(np.zeros((2, 384), np.float32))


def test_different_adapters_have_different_hashes(sentences, adapter):
    other = DiveAdapter(384, 48, heads=2, hidden=16, seed=3)
    b1 = spherecodec.encode(sentences[:10], codec="dive", adapter=adapter)
    b2 = spherecodec.encode(sentences[:10], codec="dive", adapter=other)
    assert spherecodec.info(b1)["params"]["adapter_sha256"] != spherecodec.info(b2)["params"]["adapter_sha256"]


def test_argument_errors(sentences, adapter):
    x = sentences[:10]
    with pytest.raises(ValueError, match="needs adapter"):
        spherecodec.encode(x, codec="dive")
    with pytest.raises(ValueError, match="nest"):
        spherecodec.encode(x, codec="dive", adapter=adapter, then="dive")
    with pytest.raises(spherecodec.UnsupportedError):
        spherecodec.encode(x, codec="dive", adapter=adapter, then="no-such-codec")
    with pytest.raises(ValueError, match="does not match"):
        spherecodec.encode(x, codec="dive", adapter=adapter, adapter_sha256="0" * 64)
    with pytest.raises(ValueError, match="dimensions"):
        spherecodec.encode(np.zeros((3, 100), np.float32), codec="dive", adapter=adapter)
    with pytest.raises(spherecodec.UnsupportedError):  # float64 that float32 cannot hold exactly
        spherecodec.encode(x.astype(np.float64) + 1e-12, codec="dive", adapter=adapter)
    with pytest.raises(TypeError):
        spherecodec.encode(x, codec="dive", adapter=object())
    with pytest.raises(TypeError):
        spherecodec.encode(x, codec="dive", adapter=adapter, then_config={"bogus": 1})


def test_blob_with_wrong_row_length_is_corrupt(adapter):
    codec = get_codec("dive").from_config(get_codec("dive")(adapter=adapter).get_config())
    with pytest.raises(CorruptBlobError):
        codec.load_shared(np.zeros(0, np.uint8), np.dtype(np.float32), 47)
    bad = get_codec("dive")(adapter=adapter).get_config()
    bad["adapter_sha256"] = "xyz"
    with pytest.raises(spherecodec.UnsupportedError):
        get_codec("dive").from_config(bad)
    bad = get_codec("dive")(adapter=adapter).get_config()
    bad["dim_out"] = 500
    with pytest.raises(spherecodec.UnsupportedError):
        get_codec("dive").from_config(bad)


def test_corrupted_blob_raises(sentences, adapter):
    blob = bytearray(spherecodec.encode(sentences[:50], codec="dive", adapter=adapter))
    blob[-3] ^= 0xFF
    with pytest.raises(CorruptBlobError):
        spherecodec.decode(bytes(blob))
