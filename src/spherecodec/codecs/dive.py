"""The "dive" codec: reduce rows with a DiveAdapter, then store them through another codec.

``encode(x, codec="dive", adapter=a, then="exact")`` stores ``a.transform(x)`` (dim_out
columns) with the inner codec; the blob's params record the adapter's sha256, its
dimensions and the inner codec's name and config, and its shared section is the inner
codec's. Decoding needs no adapter (nor torch): it returns the reduced rows, and
``spherecodec.info(blob)["params"]["adapter_sha256"]`` says which adapter made them.
"""

import os
import re

from ..dive.adapter import DiveAdapter
from ..errors import CorruptBlobError
from .registry import get_codec, register_codec
from .base import Codec, DelegatingCodec

_SHA256 = re.compile(r"[0-9a-f]{64}")


def _load_adapter(path):
    """The DiveAdapter saved at ``path``; ValueError naming the path when it is not one."""
    if not os.path.isfile(path):
        raise ValueError(f"adapter file {os.fspath(path)!r} does not exist (write one with "
                         "DiveAdapter.save)")
    return DiveAdapter.load(path)


@register_codec
class DiveCodec(DelegatingCodec):
    """DIVE reduction composed with any other registered codec.

    Parameters
    ----------
    adapter : DiveAdapter, path or None
        Runtime only (never stored): needed to encode, not to decode. A path (str or
        os.PathLike) names a file written by ``DiveAdapter.save``; that is how the command
        line (``-p adapter=FILE.npz``), the bench (``dive:adapter=FILE.npz``) and zarr
        (``params={"adapter": "FILE.npz"}``) pass it.
    then : str
        Name of the inner codec that stores the reduced rows (not "dive").
    then_config : dict or None
        The inner codec's parameters.
    adapter_sha256, dim_in, dim_out : optional
        Recorded from ``adapter`` at encode time; when given with an adapter they must match.
    """

    name = "dive"
    dtypes = ("float32",)

    def __init__(self, *, adapter=None, then="exact", then_config=None, adapter_sha256=None,
                 dim_in=None, dim_out=None):
        if not isinstance(then, str):
            raise TypeError(f"then must be a codec name, not {type(then).__name__}")
        if then == self.name:
            raise ValueError("then='dive' would nest DIVE in itself")
        if then_config is None:
            then_config = {}
        if not isinstance(then_config, dict):
            raise TypeError("then_config must be a dict of the inner codec's parameters")
        inner_cls = get_codec(then)
        try:
            self.inner = inner_cls(**then_config)
        except TypeError as exc:
            raise TypeError(f"bad then_config for codec {then!r}: {exc}") from None
        self.then = then
        if isinstance(adapter, (str, os.PathLike)):
            adapter = _load_adapter(adapter)
        if adapter is not None:
            for attr in ("transform", "weights_hash", "dim_in", "dim_out"):
                if not hasattr(adapter, attr):
                    raise TypeError(f"adapter must be a DiveAdapter or the path of one saved with "
                                     f".save(), not {type(adapter).__name__}")
            digest = adapter.weights_hash()
            for given, actual, what in ((adapter_sha256, digest, "adapter_sha256"),
                                        (dim_in, adapter.dim_in, "dim_in"),
                                        (dim_out, adapter.dim_out, "dim_out")):
                if given is not None and given != actual:
                    raise ValueError(f"{what}={given!r} does not match the adapter's {actual!r}")
            adapter_sha256, dim_in, dim_out = digest, adapter.dim_in, adapter.dim_out
        elif adapter_sha256 is None:
            raise ValueError("codec 'dive' needs adapter=DiveAdapter(...) or adapter=FILE.npz "
                             "(saved with DiveAdapter.save) to encode")
        if not isinstance(adapter_sha256, str) or not _SHA256.fullmatch(adapter_sha256):
            raise ValueError("adapter_sha256 must be 64 lowercase hex digits")
        for what, v in (("dim_in", dim_in), ("dim_out", dim_out)):
            if type(v) is not int or v < 1:
                raise ValueError(f"{what} must be a positive integer, not {v!r}")
        if dim_out > dim_in:
            raise ValueError(f"dim_out={dim_out} exceeds dim_in={dim_in}")
        self.adapter = adapter
        self.adapter_sha256 = adapter_sha256
        self.dim_in, self.dim_out = dim_in, dim_out
        # the container bounds decoded size by the codec that writes the payloads
        self.max_expansion = self.inner.max_expansion

    def get_config(self):
        return {"adapter_sha256": self.adapter_sha256, "dim_in": self.dim_in, "dim_out": self.dim_out,
                "then": self.then, "then_config": self.inner.get_config()}

    def check_dtype(self, dtype):
        Codec.check_dtype(self, dtype)
        self.inner.check_dtype(dtype)

    def transform_rows(self, rows):
        if self.adapter is None:
            raise ValueError("codec 'dive' needs adapter=DiveAdapter(...) to encode")
        if rows.shape[1] != self.dim_in:
            raise ValueError(f"rows have {rows.shape[1]} dimensions; the adapter takes {self.dim_in}")
        reduced = self.adapter.transform(rows) if rows.shape[0] else rows[:, :self.dim_out].copy()
        return self.inner.transform_rows(reduced)

    def stored_config(self, state):
        return {**self.get_config(), "then_config": self.inner.stored_config(state)}

    def load_shared(self, data, dtype, dim):
        if dim != self.dim_out:
            raise CorruptBlobError(f"blob rows have {dim} dimensions, the adapter made {self.dim_out}")
        return self.inner.load_shared(data, dtype, dim)
