"""Codec registry: one module per codec family, looked up by name."""

from ..errors import UnsupportedError
from .base import NO_STATE, Codec, SearchableCodec

_REGISTRY = {}

__all__ = ["Codec", "SearchableCodec", "NO_STATE", "register_codec", "get_codec", "available_codecs"]


def register_codec(cls):
    """Register a Codec subclass under ``cls.name``; usable as a class decorator."""
    if not (isinstance(cls, type) and issubclass(cls, Codec)) or not cls.name:
        raise TypeError("register_codec needs a Codec subclass with a name")
    _REGISTRY[cls.name] = cls
    return cls


def get_codec(name):
    """The Codec class registered under ``name``; UnsupportedError if unknown."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnsupportedError(
            f"unknown codec {name!r}; available: {', '.join(sorted(_REGISTRY))}") from None


def available_codecs():
    """Names of the registered codecs, sorted."""
    return sorted(_REGISTRY)


# built-in codecs register themselves on import
from . import exact  # noqa: E402,F401
from . import quant, pq  # noqa: E402,F401
from . import grid, sphere  # noqa: E402,F401
from . import dive  # noqa: E402,F401
