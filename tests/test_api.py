"""The public surface: names, error hierarchy, and the documented call forms."""

import inspect

import numpy as np
import pytest

from common import DATA, parse_layout

import spherecodec
from spherecodec import errors

PUBLIC = [
    "encode",
    "decode",
    "decode_rows",
    "info",
    "Codec",
    "register_codec",
    "get_codec",
    "available_codecs",
    "SpherecodecError",
    "CorruptBlobError",
    "TruncatedBlobError",
    "UnsupportedError",
    "fit",
    "search",
    "evaluate",
    "evaluate_retrieval",
    "__version__",
    "train_dictionary",
    "Dictionary",
    "DictionaryError",
    "encode_many",
    "decode_many",
]


def test_public_names_are_pinned():
    # adding or removing a public name is an API change: update PUBLIC with it
    assert list(spherecodec.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(spherecodec, name), name
    assert isinstance(spherecodec.__version__, str) and spherecodec.__version__.count(".") >= 2


def test_error_hierarchy():
    assert issubclass(spherecodec.SpherecodecError, ValueError)
    assert issubclass(spherecodec.CorruptBlobError, spherecodec.SpherecodecError)
    assert issubclass(spherecodec.TruncatedBlobError, spherecodec.CorruptBlobError)
    assert issubclass(spherecodec.UnsupportedError, spherecodec.SpherecodecError)
    assert not issubclass(spherecodec.UnsupportedError, spherecodec.CorruptBlobError)
    assert not issubclass(spherecodec.CorruptBlobError, spherecodec.UnsupportedError)
    for name in errors.__all__:
        assert getattr(spherecodec, name) is getattr(errors, name)
    assert set(errors.__all__) == {"SpherecodecError", "CorruptBlobError", "TruncatedBlobError",
                                   "UnsupportedError", "DictionaryError"}
    assert issubclass(spherecodec.DictionaryError, spherecodec.SpherecodecError)


def test_errors_are_catchable_as_value_error():
    with pytest.raises(ValueError):
        spherecodec.decode(b"definitely not a blob")
    with pytest.raises(ValueError):
        spherecodec.encode(np.zeros(3, np.int32))


def test_signatures():
    def params(fn):
        return {n: (p.kind, p.default) for n, p in inspect.signature(fn).parameters.items()}

    P = inspect.Parameter
    enc = params(spherecodec.encode)
    assert enc["array"][0] == P.POSITIONAL_OR_KEYWORD
    assert enc["codec"] == (P.POSITIONAL_OR_KEYWORD, "exact")
    assert enc["threads"] == (P.KEYWORD_ONLY, None)
    assert params(spherecodec.decode) == {"blob": (P.POSITIONAL_OR_KEYWORD, P.empty),
                                          "threads": (P.KEYWORD_ONLY, None),
                                          "out": (P.KEYWORD_ONLY, None),
                                          "dictionary": (P.KEYWORD_ONLY, None)}
    assert enc["dictionary"] == (P.KEYWORD_ONLY, None)
    assert list(params(spherecodec.decode_rows)) == ["blob", "start", "stop"]
    assert list(params(spherecodec.info)) == ["blob"]
    for name in ("encode", "decode", "decode_rows", "info", "get_codec", "available_codecs",
                 "register_codec", "fit", "search", "evaluate", "train_dictionary", "encode_many",
                 "decode_many"):
        assert inspect.getdoc(getattr(spherecodec, name)), name


def test_registry():
    names = spherecodec.available_codecs()
    assert "exact" in names and names == sorted(names)
    exact = spherecodec.get_codec("exact")
    assert issubclass(exact, spherecodec.Codec) and exact.name == "exact"
    for name in names:
        cls = spherecodec.get_codec(name)
        assert issubclass(cls, spherecodec.Codec) and cls.name == name
        assert cls.max_expansion > 0
    with pytest.raises(spherecodec.UnsupportedError):
        spherecodec.get_codec("no-such-codec")
    with pytest.raises(spherecodec.UnsupportedError):
        spherecodec.get_codec(None)
    with pytest.raises(TypeError):
        spherecodec.register_codec(int)

    class Nameless(spherecodec.Codec):
        pass

    with pytest.raises(TypeError):
        spherecodec.register_codec(Nameless)


def test_codec_base_contract():
    base = spherecodec.Codec
    assert base().get_config() == {}
    with pytest.raises(TypeError):
        base(unexpected=1)
    with pytest.raises(spherecodec.UnsupportedError):
        spherecodec.get_codec("exact").from_config({"entropy": "nope"})


def test_module_docstring_example():
    x = np.random.default_rng(0).standard_normal((100, 384)).astype(np.float32)
    blob = spherecodec.encode(x)
    assert (spherecodec.decode(blob).view(np.uint32) == x.view(np.uint32)).all()


# --- the codec contract: a codec object is its configuration ------------------------------

def _dive_adapter():
    from spherecodec.dive import DiveAdapter

    adapter = DiveAdapter(384, 48, heads=2, hidden=16, seed=2)
    adapter.params = adapter._initial_params(_contract_arrays()[0][:512])
    return adapter


_ARRAYS = []


def _contract_arrays():
    """Two different arrays of 2048 x 384 real embeddings (large enough for exact models)."""
    if not _ARRAYS:
        x = np.load(DATA / "minilm-sentences-512.npy")
        a = np.tile(x, (4, 1))
        b = np.ascontiguousarray(np.tile(x[::-1], (4, 1)) * np.float32(0.75))
        _ARRAYS.extend([a, b])
    return _ARRAYS


#: one or more configurations of every registered codec (test_contract_cases_cover_every_codec)
CONTRACT_CASES = [
    ("exact", {}), ("exact", {"mantissa_bits": 5, "entropy": "constriction"}), ("exact", {"level": 2}),
    ("exact", {"level": 3, "transform": "auto"}), ("exact", {"level": 5}), ("exact", {"transform": "spherical"}),
    ("grid", {"max_abs_error": 1e-3}), ("sphere", {"max_abs_error": 1e-4}),
    ("fp16", {"entropy": True}), ("bf16", {}),
    ("int8", {"clip": 99.0}), ("int4", {"symmetric": True, "entropy": True}), ("binary", {"entropy": True}),
    ("pq", {"nbits": 4, "niter": 2}),  # m=None: fitting chooses m, the codec must not keep it
    ("rabitq", {"bits": 3, "seed": 2}),
    ("dive", {"then": "pq", "then_config": {"nbits": 2, "niter": 1}}),
]


def _contract_codec(name, params):
    if name == "dive":
        params = {**params, "adapter": _dive_adapter()}
    return spherecodec.get_codec(name)(**params)


def test_contract_cases_cover_every_codec():
    # other test modules register codecs named "test-..." of their own
    shipped = {name for name in spherecodec.available_codecs() if not name.startswith("test-")}
    assert {name for name, _ in CONTRACT_CASES} == shipped


@pytest.mark.parametrize("name, params", CONTRACT_CASES, ids=[f"{n}-{p}" for n, p in CONTRACT_CASES])
def test_encoding_never_changes_the_codec(name, params):
    a, b = _contract_arrays()
    codec = _contract_codec(name, params)
    config, digest, text, attrs = codec.get_config(), hash(codec), repr(codec), dict(vars(codec))

    def unchanged():
        assert codec.get_config() == config and hash(codec) == digest and repr(codec) == text
        assert vars(codec).keys() == attrs.keys()
        assert all(vars(codec)[k] is v or vars(codec)[k] == v for k, v in attrs.items())

    first = spherecodec.encode(a, codec, chunk_rows=300, threads=2)
    unchanged()
    second = spherecodec.encode(b, codec, chunk_rows=300)
    unchanged()
    # one object coding two arrays writes what fresh objects write for each
    assert first == spherecodec.encode(a, _contract_codec(name, params), chunk_rows=300)
    assert second == spherecodec.encode(b, _contract_codec(name, params), chunk_rows=300)
    assert first != second
    assert codec == _contract_codec(name, params)
    if name == "exact" and params.get("level", 1) > 1:
        # the arrays are large enough for a model: each blob carries the state fitted on it
        assert parse_layout(first)["shared"] and parse_layout(second)["shared"]
        assert parse_layout(first)["shared"] != parse_layout(second)["shared"]
    if name == "pq":
        assert spherecodec.info(first)["params"]["m"] == 48  # settled in the blob, not the codec
