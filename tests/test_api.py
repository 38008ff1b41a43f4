"""The public surface: names, error hierarchy, and the documented call forms."""

import inspect

import numpy as np
import pytest

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
    "__version__",
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
                                   "UnsupportedError"}


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
                                          "out": (P.KEYWORD_ONLY, None)}
    assert list(params(spherecodec.decode_rows)) == ["blob", "start", "stop"]
    assert list(params(spherecodec.info)) == ["blob"]
    for name in ("encode", "decode", "decode_rows", "info", "get_codec", "available_codecs",
                 "register_codec", "fit", "search", "evaluate"):
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
