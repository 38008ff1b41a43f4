"""The ``sphere`` codec: error-bounded coding of spherical coordinates.

After "Embedding Compression via Spherical Coordinates" (Xiao, arXiv 2602.00079), with
what its reference tool (jzip) lacks: the norm is kept, the error bound is a guarantee,
zero tails, zero rows and non-finite values survive, and the decoder is libm-free.

Row ``x`` (d >= 2) is coded as its float32 norm ``r`` and d - 1 angle codes. Format 1 (what
the encoder writes): polar angle ``theta_j`` (j < d - 2), whose tail has radius ``R_j``,
is quantized uniformly in its cosine on a grid of ``step / R_j``:
``q_j = rint(R_j cos(theta_j) / step) = rint(x_j / step)`` and ``x^_j = q_j step``, so every
angle is worth the same Cartesian resolution however small its tail, without trigonometry.
The decoder's tail radius for the last pair is ``R = sqrt(max(r^2 - sum x^_j^2, 0))``; the
last pair is ``(R~ cos theta^, R~ sin theta^)`` with ``R~ = R + c step`` (``c`` absorbs the
radius drift) and ``theta^ = q_{d-2} step / R~``. Format 0 (still decoded) quantized each
latitude ``phi_j = pi/2 - theta_j`` uniformly: ``x^_j = R sin(q_j step / R)``,
``R <- R cos(q_j step / R)``, with the encoder quantizing against the decoder's own ``R``.
Every component that float32 rounding or the last pair would still put beyond
``max_abs_error`` goes to the exception list, stored bit for bit.

Chunk layout: head (format, step, mantissa bits: 0 for format 1, 2 for format 0), the codes
of the columns ``q_0 .. q_{d-3}, q_{d-2}, c`` and the norm (its float32 bits minus those of
1.0) with ``columns.write_columns`` (format 1: bit lengths in pairs), then the exception list.
Rows of one value (d = 1) are coded like the grid codec.
"""

import numpy as np

from .. import aot
from ..errors import CorruptBlobError
from ..scratch import scratch
from ..kernels import grid as kg
from ..kernels import spherical as ks
from .registry import register_codec
from .columns import (MANTISSA_BITS, ChunkWriter, decode_columns, decode_exceptions, encode_columns,
                      encode_exceptions, groups_from_keys, key_stride, write_columns, write_exceptions)
from .grid import BoundedCodec, head, read_head, step_for

# a row whose norm is this many steps or more is coded as zeros plus exceptions (its codes
# would not fit CODE_BITS): only rows near the float32 range or with absurd bounds
_MAX_NORM_STEPS = 2.0 ** (kg.CODE_BITS - 2)
# the norm's code is its float32 bit pattern minus that of 1.0: a few ulps for unit rows
_NORM_REF = 0x3F800000


def quantize_rows(rows, step, max_abs_error):
    """Closed-loop spherical quantization of float32 ``rows`` (n, d >= 2).

    Returns ``(codes, index, delta)``: int64 codes (d + 1, n) in the column order
    ``q_0 .. q_{d-3}, q_{d-2}, c, norm``, and the exceptions (sorted flat indices, uint32
    bit differences) for the values the decoder would put beyond ``max_abs_error``.
    """
    n, d = rows.shape
    xt = np.ascontiguousarray(rows.T)
    norms32 = np.empty(n, dtype=np.float32)
    ks.row_norms(rows, _MAX_NORM_STEPS * step, norms32)
    radius = norms32.astype(np.float64)
    codes = np.empty((d + 1, n), dtype=np.int64)
    index = np.empty(n * d, dtype=np.int64)
    delta = np.empty(n * d, dtype=np.uint32)
    count = np.zeros(1, dtype=np.int64)
    scratch = np.empty((2, n), dtype=np.float64)
    ks.sphere_quantize(xt, rows, radius, step, max_abs_error, codes[:d - 2], scratch,
                       index, delta, count)
    quantize_last = aot.checked("sphere_quantize_last", ks.sphere_quantize_last)
    quantize_last(xt, rows, norms32, radius, step, max_abs_error, codes[d - 1], codes[d - 2], index, delta, count)
    codes[d] = norms32.view(np.uint32).astype(np.int64) - _NORM_REF
    cnt = int(count[0])
    order = np.argsort(index[:cnt], kind="stable")
    return codes, index[:cnt][order], delta[:cnt][order]


def reconstruct_rows(codes, step, out):
    """The decoder's side of ``quantize_rows``: fill float32 ``out`` (n, d)."""
    n, d = out.shape
    radius = _stored_norms(codes, d)
    out_t = np.empty((d, n), dtype=np.float32)
    status = ks.sphere_reconstruct(codes[:d - 2], radius, step, out_t)
    reconstruct_last = aot.checked("sphere_reconstruct_last", ks.sphere_reconstruct_last)
    status |= reconstruct_last(codes[d - 1], codes[d - 2], radius, step, out_t)
    if status != ks.STATUS_OK:
        raise CorruptBlobError("an angle code lies outside its range")
    out[...] = out_t.T


#: chunk formats: 0 quantizes each latitude uniformly (decoder: sin/cos per value), 1 each
#: angle uniformly in its cosine (decoder: one multiplication per value); both decode
FORMAT_LATITUDE = 0
FORMAT_COSINE = 1


class CosineQuantized:
    """Format-1 quantization of float32 ``rows`` (n, d >= 2), kept implicit.

    ``codes()`` gives what ``quantize_rows`` does for format 0 (int64 (d + 1, n) in the
    column order ``q_0 .. q_{d-3}, q_{d-2}, c, norm``); ``write_codes`` codes them like
    ``columns.encode_columns`` without materialising the (d - 2) x n angle codes.
    ``index``/``delta`` are the sorted exceptions.
    """

    def __init__(self, rows, step, max_abs_error):
        n, d = rows.shape
        self.step = step
        self.xt = scratch("sphere.xt", (d, n), np.float32)
        aot.checked("transpose_rows", ks.transpose_rows)(rows, self.xt)
        norms32 = np.empty(n, dtype=np.float32)
        self.scale = np.empty(n, dtype=np.float64)
        radius = np.empty(n, dtype=np.float64)
        # room for every value; pages are touched only by the few exceptions
        index = scratch("sphere.index", n * d, np.int64)
        delta = scratch("sphere.delta", n * d, np.uint32)
        count = np.zeros(1, dtype=np.int64)
        cos_prepare = aot.checked("sphere_cos_prepare", ks.sphere_cos_prepare)
        cos_prepare(self.xt, rows, _MAX_NORM_STEPS * step, step, max_abs_error,
                    norms32, self.scale, radius, index, delta, count)
        # the last pair's codes q_{d-2}, c and the norms' codes
        self.extra = np.empty((3, n), dtype=np.int64)
        quantize_last = aot.checked("sphere_quantize_last", ks.sphere_quantize_last)
        quantize_last(self.xt, rows, norms32, radius, step, max_abs_error,
                      self.extra[1], self.extra[0], index, delta, count)
        self.extra[2] = norms32.view(np.uint32).astype(np.int64) - _NORM_REF
        cnt = int(count[0])
        order = np.argsort(index[:cnt], kind="stable")
        self.index, self.delta = index[:cnt][order], delta[:cnt][order]

    def codes(self):
        """The codes as one int64 array (d + 1, n)."""
        d, n = self.xt.shape
        codes = np.empty((d + 1, n), dtype=np.int64)
        ks.sphere_cos_codes(self.xt, self.scale, codes[:d - 2])
        codes[d - 2:] = self.extra
        return codes

    def write_codes(self, out):
        """Append the codes to ``out`` (a ``columns.ChunkWriter``), as ``encode_columns``."""
        d, n = self.xt.shape
        cos_keys = aot.checked("sphere_cos_keys", ks.sphere_cos_keys)
        keys = cos_keys(self.xt, self.scale, self.extra, key_stride(n, paired=True))
        ids, groups = groups_from_keys(keys, n)

        def symbolize(perm, m, syms, raw32, counts, group_of):
            # the codes of the first d - 2 columns computed from xt on the fly
            return kg.symbolize_columns(self.extra, self.xt, self.scale, self.extra, perm, m,
                                        syms, raw32, counts, group_of, True)

        write_columns(symbolize, (d + 1, n), ids, groups, out, paired=True)


def _stored_norms(codes, d):
    n = codes.shape[1]
    bits = codes[d] + _NORM_REF
    if n and (bits.min() < 0 or bits.max() >= 0x7F800000):
        raise CorruptBlobError("a stored norm is negative or not finite")
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


def reconstruct_rows_cos(codes, step, out):
    """The decoder's side of ``CosineQuantized``: fill float32 ``out`` (n, d) from ``codes``."""
    n, d = out.shape
    norms = _stored_norms(codes, d)
    radius = np.empty(n, dtype=np.float64)
    xt = scratch("sphere.xt", (d, n), np.float32)
    status = ks.sphere_reconstruct_cos(codes[:d - 2], norms, step, radius, xt)
    reconstruct_last = aot.checked("sphere_reconstruct_last", ks.sphere_reconstruct_last)
    status |= reconstruct_last(codes[d - 1], codes[d - 2], radius, step, xt)
    if status != ks.STATUS_OK:
        raise CorruptBlobError("an angle code lies outside its range")
    aot.checked("transpose_rows", ks.transpose_rows)(xt, out)


@register_codec
class SphereCodec(BoundedCodec):
    """Spherical coordinates on a grid derived from ``max_abs_error``; a guaranteed bound.

    Every decoded component is within ``max_abs_error`` of the input (NaN and infinities
    come back bit for bit); the norm of each row is stored as float32. Decodes to float32.

    Parameters
    ----------
    max_abs_error : float
        Absolute bound on ``|decoded - original|`` for every component (default 2**-23).
        Looser bounds put the angles on a coarser grid and compress further.
    """

    name = "sphere"

    def encode_chunk(self, rows, state):
        n, d = rows.shape
        step = step_for(self.max_abs_error)
        parts = ChunkWriter(3 * rows.nbytes // 4)
        parts.append(head(step, FORMAT_COSINE, 0))
        if d < 2:
            codes = np.empty((d, n), dtype=np.int64)
            xhat = np.empty((n, d), dtype=np.float32)
            kg.grid_quantize(rows, step, codes, xhat)
            encode_columns(codes, parts, paired=True)
            encode_exceptions(rows.reshape(-1), xhat.reshape(-1), self.max_abs_error, parts)
        else:
            quantized = CosineQuantized(rows, step, self.max_abs_error)
            quantized.write_codes(parts)
            write_exceptions(quantized.index, quantized.delta, parts)
        return parts.array()

    def decode_chunk(self, payload, out, state):
        n, d = out.shape
        fmt, step, pos = read_head(payload, {FORMAT_LATITUDE: MANTISSA_BITS, FORMAT_COSINE: 0})
        if d < 2:
            codes = scratch("grid.codes", (d, n), np.int64)
            pos = decode_columns(payload, pos, codes, paired=fmt == FORMAT_COSINE)
            kg.grid_reconstruct(codes, step, out)
        else:
            codes = scratch("grid.codes", (d + 1, n), np.int64)
            pos = decode_columns(payload, pos, codes, paired=fmt == FORMAT_COSINE)
            if fmt == FORMAT_COSINE:
                reconstruct_rows_cos(codes, step, out)
            else:
                reconstruct_rows(codes, step, out)
        pos = decode_exceptions(payload, pos, out.reshape(-1))
        if pos != payload.size:
            raise CorruptBlobError(f"{payload.size - pos} unexpected bytes at the end of the chunk")


# --- the exact codec's transform="spherical" / "auto" (codecs/exact.py chooses) ------------

#: grid of the angles in the exact variant (measured on MiniLM, 2 MiB chunks: 2**-13 to
#: 2**-23 all give 1.154-1.155x, finer grids lose, 2**-29 1.140x; plain exact: 1.205x)
EXACT_STEP = 2.0 ** -21


def encode_residual_chunk(rows, mode):
    """A bit-exact chunk of float32 ``rows`` (n, d >= 2): ``u8 mode``, the sphere codes at
    ``EXACT_STEP``, then the residual ``bits(x) - bits(decoded)`` of every value as int64
    codes (``columns.encode_columns``). A ``ChunkWriter``'s array (the caller owns it).
    """
    step = EXACT_STEP
    codes, _, _ = quantize_rows(rows, step, np.inf)
    decoded = np.empty_like(rows)
    reconstruct_rows(codes, step, decoded)
    residual = (rows.view(np.uint32).astype(np.int64) - decoded.view(np.uint32).astype(np.int64)).T
    parts = ChunkWriter(rows.nbytes)
    parts.append(bytes([mode]))
    parts.append(head(step))
    encode_columns(codes, parts)
    encode_columns(np.ascontiguousarray(residual), parts)
    return parts.array()


def decode_residual_chunk(payload, out):
    """Inverse of ``encode_residual_chunk`` (the mode byte included) into float32 ``out``."""
    n, d = out.shape
    if out.dtype != np.float32 or d < 2:
        raise CorruptBlobError("spherical chunk in a blob that cannot hold one")
    _, step, pos = read_head(payload[1:])
    pos += 1
    codes = np.empty((d + 1, n), dtype=np.int64)
    pos = decode_columns(payload, pos, codes)
    reconstruct_rows(codes, step, out)
    residual = np.empty((d, n), dtype=np.int64)
    pos = decode_columns(payload, pos, residual)
    if pos != payload.size:
        raise CorruptBlobError(f"{payload.size - pos} unexpected bytes at the end of the chunk")
    bits = out.view(np.uint32)
    bits[...] = ((bits.astype(np.int64) + residual.T) & 0xFFFFFFFF).astype(np.uint32)
