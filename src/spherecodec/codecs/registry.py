"""The codec registry: codec classes by name (the name every blob stores)."""

from ..errors import UnsupportedError
from .base import Codec

_REGISTRY = {}


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
