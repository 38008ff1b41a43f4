"""spherecodec: compression of embedding vectors, bit-exact by default.

>>> import numpy as np, spherecodec
>>> x = np.random.default_rng(0).standard_normal((100, 384)).astype(np.float32)
>>> blob = spherecodec.encode(x)
>>> bool((spherecodec.decode(blob).view(np.uint32) == x.view(np.uint32)).all())
True
"""

from . import container as _container
from .codecs import Codec, available_codecs, get_codec, register_codec
from .errors import CorruptBlobError, SpherecodecError, TruncatedBlobError, UnsupportedError
from .evaluate import evaluate
from .fit import fit
from .search import search
from .retrieval import evaluate_retrieval

__version__ = "0.1.0"

__all__ = [
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
]


def encode(array, codec="exact", *, threads=None, **params):
    """Compress an array into a self-describing blob.

    Parameters
    ----------
    array : array_like
        float32 (float64 and float16 for the exact codec). 1-D arrays are one row; N-D
        arrays are rows over the last axis and decode to their shape.
    codec : str or Codec
        Registered codec name (``spherecodec.available_codecs()``) or a codec object.
    threads : int or None
        Worker threads over row chunks (None: every core). The bytes never depend on it.
    **params
        Codec parameters, and ``chunk_rows`` (rows per independently decodable chunk).

    Returns
    -------
    bytes

    Examples
    --------
    >>> import numpy as np, spherecodec
    >>> blob = spherecodec.encode(np.zeros((4, 8), np.float32))
    >>> spherecodec.decode(blob).shape
    (4, 8)
    """
    return _container.encode(array, codec, threads=threads, **params)


def decode(blob, *, threads=None, out=None):
    """Decompress a blob to an array of the encoded dtype and shape.

    ``out`` may be a C-contiguous array of that shape and dtype to fill. Raises a
    :class:`SpherecodecError` subclass for truncated, corrupted or unsupported blobs.
    """
    return _container.decode(blob, threads=threads, out=out)


def decode_rows(blob, start, stop):
    """Rows ``[start, stop)`` (slice semantics) of a 2-D array, decoding only their chunks.

    Arrays of more than 2 dimensions are addressed as their rows over the last axis.
    """
    return _container.decode_rows(blob, start, stop)


def info(blob):
    """Header facts (codec, params, dtype, shape, sizes, ratio, chunks) without decoding."""
    return _container.info(blob)
