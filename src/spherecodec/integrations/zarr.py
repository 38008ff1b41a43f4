"""spherecodec as a zarr v3 array-to-bytes codec (the array's ``serializer``).

Each zarr chunk becomes one spherecodec blob. Chunk the array in rows
(``chunks=(rows, dim)``) so that every chunk holds whole vectors::

    import zarr
    from spherecodec.integrations.zarr import SpherecodecZarrCodec

    z = zarr.create_array(store, shape=x.shape, chunks=(4096, x.shape[1]), dtype=x.dtype,
                          serializer=SpherecodecZarrCodec(codec="exact"), compressors=None)
    z[:] = x

The array metadata names the codec ``{"name": "spherecodec", "configuration": {"codec":
..., "params": ...}}``; zarr finds the class through the ``zarr.codecs`` entry point.
"""

import asyncio
import json
from dataclasses import dataclass

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration

from .. import container as _container
from ..codecs import get_codec
from ..dive import DiveAdapter
from ..errors import CorruptBlobError
from . import check_codec_config

__all__ = ["SpherecodecZarrCodec"]

CODEC_NAME = "spherecodec"


@dataclass(frozen=True)
class SpherecodecZarrCodec(ArrayBytesCodec):
    """zarr v3 array-to-bytes codec storing each chunk as a spherecodec blob.

    Parameters
    ----------
    codec : str
        spherecodec codec name (default ``"exact"``, bit-exact).
    params : dict or None
        That codec's parameters, plus optionally ``chunk_rows`` (rows per independently
        coded block inside one zarr chunk).

    A codec that changes the row length (dimensionality reduction) cannot serve zarr,
    whose chunks keep their shape: encoding then raises ValueError.
    """

    is_fixed_size = False

    codec: str
    params: dict

    def __init__(self, *, codec="exact", params=None):
        for key, value in (params.items() if isinstance(params, dict) else ()):
            if isinstance(value, DiveAdapter):
                raise TypeError(f"params[{key!r}] is a DiveAdapter object, which zarr metadata cannot hold: "
                                "pass the path of the file its .save() wrote")
        codec, params = check_codec_config(codec, params)
        object.__setattr__(self, "codec", codec)
        object.__setattr__(self, "params", params)

    def __hash__(self):
        return hash((self.codec, json.dumps(self.params, sort_keys=True)))

    @classmethod
    def from_dict(cls, data):
        """From zarr metadata ``{"name": "spherecodec", "configuration": {...}}``."""
        _, configuration = parse_named_configuration(data, CODEC_NAME, require_configuration=False)
        return cls(**(configuration or {}))

    def to_dict(self):
        """zarr metadata of the codec."""
        return {"name": CODEC_NAME, "configuration": {"codec": self.codec, "params": dict(self.params)}}

    def _check_dtype(self, zdtype):
        own = {k: v for k, v in self.params.items() if k != "chunk_rows"}
        get_codec(self.codec)(**own).check_dtype(zdtype.to_native_dtype())

    def evolve_from_array_spec(self, array_spec):
        self._check_dtype(array_spec.dtype)
        return self

    def validate(self, *, shape, dtype, chunk_grid):
        self._check_dtype(dtype)

    def _encode_sync(self, chunk_array, chunk_spec):
        array = np.asarray(chunk_array.as_ndarray_like())
        blob = _container.encode(array, self.codec, threads=1, **self.params)
        shape = _container.Header(blob).shape
        if shape != tuple(chunk_spec.shape):
            raise ValueError(f"codec {self.codec!r} turns chunks of shape {tuple(chunk_spec.shape)} into "
                             f"{shape}; zarr chunks must keep their shape")
        return chunk_spec.prototype.buffer.from_bytes(blob)

    def _decode_sync(self, chunk_bytes, chunk_spec):
        array = _container.decode(chunk_bytes.as_numpy_array(), threads=1)
        if array.shape != tuple(chunk_spec.shape):
            raise CorruptBlobError(f"chunk decodes to shape {array.shape}, not {tuple(chunk_spec.shape)}")
        native = chunk_spec.dtype.to_native_dtype()
        if array.dtype != native:
            array = array.astype(native)
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(array)

    async def _encode_single(self, chunk_array, chunk_spec):
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes, chunk_spec):
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length, chunk_spec):
        raise NotImplementedError  # variable-size output
