"""The contract every codec honours, numcodecs-style.

The container (``spherecodec.container``) cuts a 2-D array of rows into row chunks and asks
the codec to code each chunk on its own; a codec never sees the container's bytes.
"""

import json

import numpy as np

from ..errors import UnsupportedError


class Codec:
    """Base class of spherecodec codecs.

    Subclasses set ``name`` (the registry key, stored in every blob) and implement
    ``encode_chunk`` and ``decode_chunk``. Parameters are keyword arguments checked in
    ``__init__``; ``get_config()`` returns them as JSON-able values and
    ``from_config(get_config())`` rebuilds an equal codec.
    """

    name = None
    #: dtypes the codec accepts (numpy dtype names)
    dtypes = ("float32",)
    #: upper bound of decoded bytes per payload byte; the container rejects blobs beyond it
    max_expansion = 64.0

    def __init__(self, **params):
        if params:
            raise TypeError(f"codec {self.name!r} got unexpected parameters {sorted(params)}")

    # -- configuration -------------------------------------------------------------
    def get_config(self):
        """Parameters as a JSON-serialisable dict (no codec name)."""
        return {}

    @classmethod
    def from_config(cls, config):
        """Rebuild the codec from ``get_config()``'s output."""
        try:
            return cls(**config)
        except (TypeError, ValueError) as exc:
            raise UnsupportedError(f"bad parameters for codec {cls.name!r}: {exc}") from None

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((self.name, json.dumps(self.get_config(), sort_keys=True)))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # -- whole-array hooks ---------------------------------------------------------
    def check_dtype(self, dtype):
        """Raise UnsupportedError unless the codec accepts ``dtype``."""
        if np.dtype(dtype).name not in self.dtypes:
            raise UnsupportedError(
                f"codec {self.name!r} does not support dtype {np.dtype(dtype).name}; "
                f"supported: {', '.join(self.dtypes)}")

    def decoded_dtype(self, dtype):
        """dtype that decode returns for an input of ``dtype``."""
        return np.dtype(dtype)

    def prepare(self, rows):
        """Called once on the whole 2-D array before chunking (fit models, transform).

        Returns the 2-D array whose chunks are passed to ``encode_chunk``; its second
        dimension is the decoded row length.
        """
        return rows

    def shared_bytes(self):
        """Bytes stored once per blob (fitted scales, codebooks); ``b""`` if none."""
        return b""

    def load_shared(self, data, dtype, dim):
        """Restore the state that ``shared_bytes`` wrote; ``data`` is a uint8 array."""
        if data.size:
            from ..errors import CorruptBlobError

            raise CorruptBlobError(f"codec {self.name!r} stores no shared section")

    # -- per chunk -------------------------------------------------------------------
    def encode_chunk(self, rows):
        """Encode a C-contiguous 2-D block of rows; return bytes."""
        raise NotImplementedError

    def decode_chunk(self, payload, out):
        """Decode ``payload`` (uint8 array) into ``out``, a C-contiguous 2-D block.

        Raises CorruptBlobError (or a subclass) on any inconsistency.
        """
        raise NotImplementedError
