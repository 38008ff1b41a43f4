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

DIVE reduces each row from ``dim_in`` to ``dim_out`` columns and a zarr chunk keeps its
shape, so a zarr array of DIVE rows holds the *reduced* rows: :func:`write_dive_array`
creates it (shape ``(rows, dim_out)``) and writes ``adapter.transform(x)`` block by block;
its serializer stores them with the inner codec and its metadata names the adapter by
sha256, so reading needs neither the adapter file nor torch.
"""

import asyncio
import json
import os
from dataclasses import dataclass

import numpy as np
import zarr
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration

from .. import container as _container
from ..codecs import get_codec
from ..dive import DiveAdapter
from ..errors import CorruptBlobError
from . import check_codec_config

__all__ = ["SpherecodecZarrCodec", "write_dive_array"]

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

    With ``codec="dive"`` (``params={"adapter": "FILE.npz", "then": ..., "then_config":
    ...}``) the chunks are the adapter's output rows (``dim_out`` columns; see
    :func:`write_dive_array`), stored with the inner codec. The metadata keeps the adapter's
    sha256 and dimensions instead of the file's path. Any other codec that changes the row
    length cannot serve zarr, whose chunks keep their shape: encoding then raises ValueError.
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
        if codec == "dive":
            params = _dive_params(params)
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
        if self.codec == "dive":
            blob = self._encode_reduced(array)
        else:
            blob = _container.encode(array, self.codec, threads=1, **self.params)
        shape = _container.Header(blob).shape
        if shape != tuple(chunk_spec.shape):
            raise ValueError(f"codec {self.codec!r} turns chunks of shape {tuple(chunk_spec.shape)} into "
                             f"{shape}; zarr chunks must keep their shape")
        return chunk_spec.prototype.buffer.from_bytes(blob)

    def _encode_reduced(self, rows):
        """A chunk of DIVE rows: already reduced, stored with the inner codec."""
        dim_in, dim_out = self.params["dim_in"], self.params["dim_out"]
        if rows.ndim != 2 or rows.shape[1] != dim_out:
            raise ValueError(f"a zarr array of DIVE rows holds the adapter's output ({dim_out} columns), "
                             f"not chunks of shape {rows.shape}: create it with "
                             f"spherecodec.integrations.zarr.write_dive_array(store, x, adapter) from "
                             f"{dim_in}-column rows")
        extra = {"chunk_rows": self.params["chunk_rows"]} if "chunk_rows" in self.params else {}
        return _container.encode(rows, self.params["then"], threads=1, **self.params["then_config"], **extra)

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


def _dive_params(params):
    """The zarr metadata of a DIVE codec: the adapter's sha256 and dimensions, not its path
    (readers need neither the file nor torch), plus the inner codec and ``chunk_rows``."""
    own = {k: v for k, v in params.items() if k != "chunk_rows"}
    stored = get_codec("dive")(**own).get_config()
    if "chunk_rows" in params:
        stored["chunk_rows"] = params["chunk_rows"]
    return stored


def write_dive_array(store, x, adapter, *, then="exact", then_config=None, block_rows=4096,
                     chunk_rows=None):
    """Reduce ``x`` with a DIVE adapter into a new zarr array of shape ``(rows, dim_out)``.

    ``adapter`` is a :class:`~spherecodec.dive.DiveAdapter` or the path ``.save()`` wrote;
    ``x`` is any 2-D array-like of ``dim_in`` columns sliceable by rows (numpy, a
    memory-mapped .npy, another zarr array), read and reduced ``block_rows`` rows at a time,
    which is also the zarr chunk height. ``then``/``then_config`` name the codec that stores
    the reduced rows; ``chunk_rows`` is the container's rows per coded block inside a chunk.
    Returns the zarr array. Reading it back needs neither the adapter nor torch.
    """
    if isinstance(adapter, (str, os.PathLike)):
        adapter = DiveAdapter.load(adapter)
    if not isinstance(adapter, DiveAdapter):
        raise TypeError(f"adapter must be a DiveAdapter or the path of one saved with .save(), "
                        f"not {type(adapter).__name__}")
    if len(getattr(x, "shape", ())) != 2 or x.shape[1] != adapter.dim_in:
        raise ValueError(f"x must be 2-D with the adapter's {adapter.dim_in} columns, "
                         f"not shape {getattr(x, 'shape', None)}")
    if type(block_rows) is not int or block_rows < 1:
        raise ValueError(f"block_rows must be a positive integer, not {block_rows!r}")
    params = {"adapter_sha256": adapter.weights_hash(), "dim_in": adapter.dim_in,
              "dim_out": adapter.dim_out, "then": then, "then_config": dict(then_config or {})}
    if chunk_rows is not None:
        params["chunk_rows"] = chunk_rows
    serializer = SpherecodecZarrCodec(codec="dive", params=params)
    rows = int(x.shape[0])
    z = zarr.create_array(store, shape=(rows, adapter.dim_out), chunks=(min(block_rows, max(rows, 1)),
                          adapter.dim_out), dtype="float32", serializer=serializer, compressors=None)
    for start in range(0, rows, block_rows):
        z[start:start + block_rows] = adapter.transform(np.asarray(x[start:start + block_rows]))
    return z
