"""Exceptions raised by spherecodec.

Every failure caused by the bytes of a blob is a :class:`SpherecodecError`, itself a
:class:`ValueError`, so ``except ValueError`` keeps working for callers that do not know
this library.
"""

__all__ = [
    "SpherecodecError",
    "CorruptBlobError",
    "TruncatedBlobError",
    "UnsupportedError",
    "DictionaryError",
]


class SpherecodecError(ValueError):
    """Base class of every error spherecodec raises about its input."""


class CorruptBlobError(SpherecodecError):
    """The blob is damaged: a checksum, a length or a field does not hold."""


class TruncatedBlobError(CorruptBlobError):
    """The blob ends before the data its header announces."""


class UnsupportedError(SpherecodecError):
    """A format version, codec, dtype or parameter this build does not support."""


class DictionaryError(SpherecodecError):
    """A frame needs a dictionary that was not given, or another one than the one given."""
