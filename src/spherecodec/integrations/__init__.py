"""Codecs for the array stores users already have: numcodecs and zarr v3.

Both register through entry points declared in pyproject.toml, so after
``pip install "spherecodec[zarr]"`` they are found by name without importing spherecodec:

* ``numcodecs.get_codec({"id": "spherecodec", "codec": "exact", "params": {}})``
  -> :class:`spherecodec.integrations.numcodecs.Spherecodec`
* zarr v3 codec ``{"name": "spherecodec", "configuration": {"codec": ..., "params": ...}}``
  -> :class:`spherecodec.integrations.zarr.SpherecodecZarrCodec`

numcodecs and zarr are imported only by those two modules (the ``zarr`` extra).
"""

import json

from ..codecs import get_codec
from ..container import resolve_chunk_rows

__all__ = ["check_codec_config"]


def check_codec_config(codec, params):
    """Validate a codec name and its parameters the way encode will use them.

    Returns ``(codec, params)`` with ``params`` a plain dict. ``params`` may hold
    ``chunk_rows`` (the container's rows per chunk) beside the codec's own parameters.
    Raises UnsupportedError for an unknown codec, TypeError/ValueError for bad parameters.
    """
    if not isinstance(codec, str):
        raise TypeError(f"codec must be a codec name, not {type(codec).__name__}")
    params = {} if params is None else params
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise TypeError("params must be a dict with string keys")
    params = dict(params)
    try:
        json.dumps(params)
    except (TypeError, ValueError):
        raise TypeError("params must be JSON-serialisable (they are stored in array metadata)") from None
    own = {k: v for k, v in params.items() if k != "chunk_rows"}
    get_codec(codec)(**own)  # the codec checks its own parameters
    resolve_chunk_rows(params.get("chunk_rows"), 1, 1)  # checks a given value
    return codec, params
