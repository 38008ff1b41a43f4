"""Byte copies at memory speed inside Numba kernels.

A Numba slice assignment of uint8 arrays compiles to a byte-by-byte loop; ``copy_bytes``
is one ``memcpy`` (LLVM's intrinsic), callable from kernels and, without the GIL, from
Python threads.
"""

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def _memcpy(typingctx, dst, dst_pos, src, src_pos, n):
    sig = types.void(dst, types.int64, src, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        dst_array = context.make_array(signature.args[0])(context, builder, args[0])
        src_array = context.make_array(signature.args[2])(context, builder, args[2])
        cgutils.raw_memcpy(builder, builder.gep(dst_array.data, [args[1]]),
                           builder.gep(src_array.data, [args[3]]), args[4], 1)
        return context.get_dummy_value()

    return sig, codegen


@njit(nogil=True, cache=True)
def copy_bytes(dst, dst_pos, src, src_pos, n):
    """``dst[dst_pos:dst_pos + n] = src[src_pos:src_pos + n]`` for contiguous uint8 arrays,
    at memory speed (a Numba slice assignment copies byte by byte); bounds checked."""
    if (dst.ndim != 1 or src.ndim != 1 or dst.itemsize != 1 or src.itemsize != 1
            or dst.strides[0] != 1 or src.strides[0] != 1):
        raise ValueError("copy_bytes: contiguous 1-D uint8 arrays only")
    if n < 0 or dst_pos < 0 or src_pos < 0 or dst_pos + n > dst.size or src_pos + n > src.size:
        raise IndexError("copy_bytes: range outside its array")
    if n:
        _memcpy(dst, np.int64(dst_pos), src, np.int64(src_pos), np.int64(n))
