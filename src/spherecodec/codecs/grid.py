"""The ``grid`` codec: error-bounded uniform quantization of the Cartesian values.

The honest baseline for ``sphere``: ``q = round(x / step)`` with ``step`` a little under
``2 * max_abs_error``, the same entropy coding (exponent/mantissa split of the codes, rANS
per group of columns with similar statistics, raw low bits), and the same exception list,
so every decoded component is within ``max_abs_error`` of the input.

Also home of what both error-bounded codecs share besides the column coding
(``codecs.columns``): ``BoundedCodec``, the step and the chunk head.
"""

import struct

import numpy as np

from .. import aot
from ..errors import CorruptBlobError
from ..scratch import scratch
from ..kernels import grid as kg
from .registry import register_codec
from .base import Codec
from .columns import (MANTISSA_BITS, ChunkWriter, decode_columns, decode_exceptions, encode_columns,
                      encode_exceptions)

#: the step is ``2 * max_abs_error * STEP_FACTOR``: a hair under the bound leaves room
#: for the float32 rounding of the decoded value (what is left becomes exceptions)
STEP_FACTOR = 0.999
DEFAULT_MAX_ABS_ERROR = 2.0 ** -23
# decoded bytes per blob byte: every value is one rANS symbol of >= 0.0056 bit
MAX_EXPANSION = 5800.0
FORMAT = 0
_HEAD = struct.Struct("<BdBB")


def check_max_abs_error(value):
    """Validate ``max_abs_error`` (a positive finite number) and return it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"max_abs_error must be a number, not {type(value).__name__}")
    value = float(value)
    if not (np.isfinite(value) and value > 0.0):
        raise ValueError(f"max_abs_error must be positive and finite, not {value!r}")
    if value < 1e-30:
        raise ValueError("max_abs_error below 1e-30 is not supported; use the exact codec")
    return value


def step_for(max_abs_error):
    """Quantization step (Cartesian distance) for a bound."""
    return 2.0 * max_abs_error * STEP_FACTOR


def read_head(payload, formats=None):
    """(format, step, position after the head) of a chunk written with ``head``.

    ``formats`` maps the accepted formats to the mantissa bits their head must announce
    (default: grid's format with ``MANTISSA_BITS``).
    """
    formats = {FORMAT: MANTISSA_BITS} if formats is None else formats
    if payload.size < _HEAD.size:
        raise CorruptBlobError("chunk shorter than its head")
    fmt, step, mbits, _ = _HEAD.unpack_from(payload.tobytes()[:_HEAD.size])
    if formats.get(fmt) != mbits:
        raise CorruptBlobError(f"unknown chunk format {fmt}/{mbits}")
    if not (np.isfinite(step) and step > 0.0):
        raise CorruptBlobError(f"invalid step {step!r}")
    return fmt, step, _HEAD.size


def head(step, fmt=FORMAT, mantissa_bits=MANTISSA_BITS):
    """Chunk head: u8 format, f64 step, u8 mantissa bits, u8 reserved."""
    return _HEAD.pack(fmt, step, mantissa_bits, 0)


class BoundedCodec(Codec):
    """What the error-bounded codecs (grid, sphere) share: float32 in and out, one
    parameter, ``max_abs_error``, and the same expansion bound."""

    dtypes = ("float32",)
    max_expansion = MAX_EXPANSION

    def __init__(self, *, max_abs_error=DEFAULT_MAX_ABS_ERROR):
        self.max_abs_error = check_max_abs_error(max_abs_error)

    def get_config(self):
        return {"max_abs_error": self.max_abs_error}


@register_codec
class GridCodec(BoundedCodec):
    """Error-bounded uniform quantizer: every decoded value is within ``max_abs_error``.

    Each chunk: head (format, step), the codes of every column (see ``encode_columns``),
    then the exception list (values the grid and float32 rounding would put beyond the
    bound, including NaN and infinities, restored bit for bit). Decodes to float32.

    Parameters
    ----------
    max_abs_error : float
        Absolute bound on ``|decoded - original|`` for every component (default 2**-23).
    """

    name = "grid"

    def encode_chunk(self, rows, state):
        n, d = rows.shape
        step = step_for(self.max_abs_error)
        codes = np.empty((d, n), dtype=np.int64)
        xhat = np.empty((n, d), dtype=np.float32)
        aot.checked("grid_quantize", kg.grid_quantize)(rows, step, codes, xhat)
        out = ChunkWriter(3 * rows.nbytes // 4)
        out.append(head(step))
        encode_columns(codes, out)
        encode_exceptions(rows.reshape(-1), xhat.reshape(-1), self.max_abs_error, out)
        return out.array()

    def decode_chunk(self, payload, out, state):
        n, d = out.shape
        _, step, pos = read_head(payload)
        codes = scratch("grid.codes", (d, n), np.int64)
        pos = decode_columns(payload, pos, codes)
        kg.grid_reconstruct(codes, step, out)
        pos = decode_exceptions(payload, pos, out.reshape(-1))
        if pos != payload.size:
            raise CorruptBlobError(f"{payload.size - pos} unexpected bytes at the end of the chunk")
