"""Codecs: one module per codec family, registered by name (``codecs.registry``).

The contract every codec honours is ``codecs.base``; importing this package registers the
built-in codecs.
"""

from . import dive, exact, grid, pq, quant, rabitq, sphere  # noqa: F401  (each registers its codecs)
from .base import NO_STATE, Codec, SearchableCodec
from .registry import _REGISTRY, available_codecs, get_codec, register_codec  # noqa: F401

__all__ = ["Codec", "SearchableCodec", "NO_STATE", "register_codec", "get_codec", "available_codecs"]
