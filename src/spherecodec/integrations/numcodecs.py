"""spherecodec as a numcodecs codec (zarr v2 compressors, and anything else using numcodecs).

>>> import numcodecs, numpy as np
>>> codec = numcodecs.get_codec({"id": "spherecodec", "codec": "exact", "params": {}})
>>> x = np.ones((4, 8), np.float32)
>>> bool((codec.decode(codec.encode(x)) == x).all())
True
"""

import json

import numpy as np
from numcodecs.abc import Codec as _NumcodecsCodec
from numcodecs.compat import ensure_contiguous_ndarray_like, ensure_ndarray_like, ndarray_copy

from .. import container as _container
from . import check_codec_config

__all__ = ["Spherecodec"]


class Spherecodec(_NumcodecsCodec):
    """numcodecs codec that stores each buffer as one spherecodec blob.

    Parameters
    ----------
    codec : str
        spherecodec codec name (default ``"exact"``, bit-exact).
    params : dict or None
        That codec's parameters, plus optionally ``chunk_rows``; stored in the config.
    threads : int
        Worker threads per encode/decode call (default 1: stores such as zarr already
        parallelise over chunks). Not part of the config: it never changes the bytes.

    Encoding takes a float array of any shape (rows over its last axis) and returns the
    blob; decoding returns an array of the encoded dtype and shape, or fills ``out``.
    """

    codec_id = "spherecodec"

    def __init__(self, codec="exact", params=None, threads=1):
        self.codec, self.params = check_codec_config(codec, params)
        self.threads = _container.resolve_threads(threads)

    def encode(self, buf):
        """Compress ``buf`` (a float array, any shape) into blob bytes."""
        array = np.asarray(ensure_ndarray_like(buf))
        return _container.encode(array, self.codec, threads=self.threads, **self.params)

    def decode(self, buf, out=None):
        """Decompress blob bytes; into ``out`` when given (any array of the same nbytes)."""
        blob = np.asarray(ensure_contiguous_ndarray_like(buf)).view(np.uint8)
        if out is not None:
            target = np.asarray(ensure_ndarray_like(out))
            header = _container.Header(blob)
            if target.nbytes != header.nbytes:
                raise ValueError(f"out holds {target.nbytes} bytes; the blob decodes to {header.nbytes}")
            if (target.dtype == header.dtype and target.shape == header.shape
                    and target.flags.c_contiguous and target.flags.writeable):
                return _container.decode(blob, threads=self.threads, out=target)
            return ndarray_copy(_container.decode(blob, threads=self.threads), out)
        return _container.decode(blob, threads=self.threads)

    def get_config(self):
        """``{"id": "spherecodec", "codec": name, "params": {...}}``."""
        return {"id": self.codec_id, "codec": self.codec, "params": dict(self.params)}

    @classmethod
    def from_config(cls, config):
        """Rebuild from ``get_config()`` (the ``id`` key is optional)."""
        config = dict(config)
        config.pop("id", None)
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, Spherecodec) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash(json.dumps(self.get_config(), sort_keys=True))

    def __repr__(self):
        return f"Spherecodec(codec={self.codec!r}, params={self.params!r})"
