"""spherecodec: compression of embedding vectors, bit-exact by default.

>>> import numpy as np, spherecodec
>>> x = np.random.default_rng(0).standard_normal((100, 384)).astype(np.float32)
>>> blob = spherecodec.encode(x)
>>> bool((spherecodec.decode(blob).view(np.uint32) == x.view(np.uint32)).all())
True
"""

from . import container as _container
from . import frames as _frames
from .codecs import Codec, available_codecs, get_codec, register_codec
from .dictionary import Dictionary, train_dictionary
from .errors import CorruptBlobError, DictionaryError, SpherecodecError, TruncatedBlobError, UnsupportedError
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
    "train_dictionary",
    "Dictionary",
    "DictionaryError",
    "encode_many",
    "decode_many",
]


def encode(array, codec="exact", *, threads=None, dictionary=None, **params):
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
        The calling thread is one of them; the others come from a pool the process keeps
        between calls.
    dictionary : Dictionary or None
        With a dictionary (``train_dictionary``), a compact *frame* of a vector or a 2-D
        block of rows, coded with the dictionary's codec and model (``codec``, ``threads``
        and parameters do not apply); decode it with the same dictionary.
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
    if dictionary is not None:
        if params or codec not in ("exact", getattr(dictionary, "codec", None)):
            raise TypeError(f"a frame is coded with its dictionary's codec and parameters: pass them to "
                            f"train_dictionary, not to encode (codec={codec!r}, {sorted(params)})")
        return _frames.encode(array, dictionary)
    if codec == "exact" and not params:
        blob = _container.encode_small(array, threads)
        if blob is not None:
            return blob
        return _container.encode(array, codec, threads=threads, try_small=False)
    return _container.encode(array, codec, threads=threads, **params)


def decode(blob, *, threads=None, out=None, dictionary=None):
    """Decompress a blob (or a frame, with its ``dictionary``) to an array of the encoded
    dtype and shape.

    ``out`` may be a C-contiguous array of that shape and dtype to fill. Without it, an
    array of 32 MiB or more takes memory that earlier decoded arrays released (no page
    faults: ``scratch.reusable_array``), so it does not own its data, like a view. Raises a
    :class:`SpherecodecError` subclass for truncated, corrupted or unsupported blobs, and
    :class:`DictionaryError` for a frame without its dictionary or with another one.
    """
    small = out is None and dictionary is None and type(blob) is bytes
    if small:
        result = _container.decode_small(blob, threads)  # None for a frame: its first byte is no magic
        if result is not None:
            return result
    if _frames.is_frame(blob):
        return _frames.decode(blob, dictionary, out=out)
    return _container.decode(blob, threads=threads, out=out, try_small=not small)


def decode_rows(blob, start, stop):
    """Rows ``[start, stop)`` (slice semantics) of a 2-D array, decoding only their chunks.

    Arrays of more than 2 dimensions are addressed as their rows over the last axis.
    """
    return _container.decode_rows(blob, start, stop)


def info(blob):
    """Header facts (codec, params, dtype, shape, sizes, ratio, chunks) without decoding;
    for a frame, the dictionary it needs (``dictionary_id32``), its shape and sizes."""
    if _frames.is_frame(blob):
        return _frames.info(blob)
    return _container.info(blob)


def encode_many(rows, *, dictionary):
    """One frame per row of the 2-D float32 ``rows`` (a list of bytes), coded with
    ``dictionary`` in one call: for stores that keep one vector per record."""
    return _frames.encode_many(rows, dictionary)


def decode_many(frames, *, dictionary):
    """The vectors of many frames of one length (``encode_many``'s), as a 2-D float32
    array, decoded in one call."""
    return _frames.decode_many(frames, dictionary)
