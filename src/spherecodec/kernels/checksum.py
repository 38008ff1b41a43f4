"""XXH64 (seed 0) of a byte array: the container's checksum.

The published algorithm (github.com/Cyan4973/xxHash, doc/xxhash_spec.md), reimplemented
here so that checking a chunk runs at memory speed inside a nogil kernel; tests compare it
with the reference implementation (the ``xxhash`` package). Each 8-byte word enters one of
four lanes through a bijection, so any change confined to one word always changes its
lane.
"""

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import callee
from .rans_simd import VECTOR_ISA

_U = np.uint64
_I = np.int64
_P1 = _U(0x9E3779B185EBCA87)
_P2 = _U(0xC2B2AE3D27D4EB4F)
_P3 = _U(0x165667B19E3779F9)
_P4 = _U(0x85EBCA77C2B2AE63)
_P5 = _U(0x27D4EB2F165667C5)


# the helpers are functions of their own, not inline="always": inlined in Numba's IR they
# hashed at 10.6 instead of 12.3 GB/s (1 MiB, AMD EPYC), to save 0.3 s of a cold start.
# Rotations are passed as int64 (_I), not literals: Numba would compile _rotl once per
# literal (eight times, 0.35 s of a cold start); LLVM still folds each constant
@callee
def _rotl(x, r):
    return (x << _U(r)) | (x >> _U(64 - r))


@callee
def _read64(b, i):
    return (_U(b[i]) | (_U(b[i + 1]) << _U(8)) | (_U(b[i + 2]) << _U(16)) | (_U(b[i + 3]) << _U(24))
            | (_U(b[i + 4]) << _U(32)) | (_U(b[i + 5]) << _U(40)) | (_U(b[i + 6]) << _U(48))
            | (_U(b[i + 7]) << _U(56)))


@callee
def _round(acc, word):
    acc += word * _P2
    return _rotl(acc, _I(31)) * _P1


@njit(nogil=True, cache=True)
def xxh64(b):
    """XXH64 with seed 0 of the uint8 array ``b``, as a uint64."""
    n = b.size
    v1, v2, v3, v4 = _stripes(b, 0, n // 32, _P1 + _P2, _P2, _U(0), _U(0) - _P1)
    return _finish(b, n, v1, v2, v3, v4)


@njit(inline="always")
def _stripes(b, first, end, v1, v2, v3, v4):
    # the four lanes after 32-byte stripes first .. end - 1 of b
    for k in range(first, end):
        i = 32 * k
        v1 = _round(v1, _read64(b, i))
        v2 = _round(v2, _read64(b, i + 8))
        v3 = _round(v3, _read64(b, i + 16))
        v4 = _round(v4, _read64(b, i + 24))
    return v1, v2, v3, v4


@njit(inline="always")
def _finish(b, n, v1, v2, v3, v4):
    # the hash of the n bytes b from its lanes after every whole stripe: the lanes merged
    # (when there was a stripe), then the tail
    i = n - n % 32
    if n >= 32:
        h = _rotl(v1, _I(1)) + _rotl(v2, _I(7)) + _rotl(v3, _I(12)) + _rotl(v4, _I(18))
        for v in (v1, v2, v3, v4):
            h ^= _round(_U(0), v)
            h = h * _P1 + _P4
    else:
        h = _P5
    h += _U(n)
    while i + 8 <= n:
        h ^= _round(_U(0), _read64(b, i))
        h = _rotl(h, _I(27)) * _P1 + _P4
        i += 8
    if i + 4 <= n:
        w = _U(b[i]) | (_U(b[i + 1]) << _U(8)) | (_U(b[i + 2]) << _U(16)) | (_U(b[i + 3]) << _U(24))
        h ^= w * _P1
        h = _rotl(h, _I(23)) * _P2 + _P3
        i += 4
    while i < n:
        h ^= _U(b[i]) * _P5
        h = _rotl(h, _I(11)) * _P1
        i += 1
    h ^= h >> _U(33)
    h *= _P2
    h ^= h >> _U(29)
    h *= _P3
    h ^= h >> _U(32)
    return h


# -- four hashes side by side --------------------------------------------------------------------
#: XXH64 is a chain of two multiplies per lane and 8 bytes: one buffer's four lanes leave
#: the multipliers idle. Four buffers' lanes in two 8-lane registers run 4x faster on the
#: EPYC of these machines (58 against 12-15 GB/s, in the native and the haswell build,
#: where LLVM builds the 64-bit multiply from 32-bit ones); decoding checks its chunks four
#: at a time (``container.Header.chunk``). A generic build (no vector ISA: 11 GB/s) hashes
#: one buffer after the other.
MANY = 4
VECTOR_HASH = VECTOR_ISA is not None
#: ``xxh64_many`` hashes a group of fewer buffers one at a time: four side by side take
#: the time of four whatever their number (a group of fewer repeats its last buffer), and
#: on the Xeon here one buffer alone hashed at 5.4 GB/s that way against 13 GB/s by the
#: scalar lanes (1.7 MB chunks, in cache); a blob of 9 chunks ends with a group of one
VECTOR_FROM = 3


def _stripes_ir(name):
    """LLVM IR: ``void f(data, starts, stripes, lanes)`` runs stripes ``0 .. stripes - 1``
    of the four buffers at byte offsets ``starts`` (i64 x 4) of ``data``, updating their
    lanes (u64 x 16: buffer 0's four, then buffer 1's, ...)."""
    v8 = "<8 x i64>"
    lines = [
        f"declare {v8} @llvm.fshl.v8i64({v8}, {v8}, {v8})",
        f"define void @{name}(ptr noalias %data, ptr noalias %starts, i64 %stripes, ptr noalias %lanes) {{",
        "entry:",
    ]
    add = lines.append
    for h in range(MANY):
        add(f"  %sp{h} = getelementptr i64, ptr %starts, i64 {h}")
        add(f"  %s{h} = load i64, ptr %sp{h}")
    for r in range(2):
        add(f"  %lp{r} = getelementptr i64, ptr %lanes, i64 {8 * r}")
        add(f"  %l0_{r} = load {v8}, ptr %lp{r}, align 8")
    add("  %none = icmp eq i64 %stripes, 0")
    add("  br i1 %none, label %exit, label %loop")
    add("loop:")
    add("  %k = phi i64 [0, %entry], [%k1, %loop]")
    for r in range(2):
        add(f"  %a{r} = phi {v8} [%l0_{r}, %entry], [%n{r}, %loop]")
    add("  %o = mul i64 %k, 32")
    for h in range(MANY):
        add(f"  %at{h} = add i64 %s{h}, %o")
        add(f"  %p{h} = getelementptr i8, ptr %data, i64 %at{h}")
        add(f"  %w{h} = load <4 x i64>, ptr %p{h}, align 1")
    for r in range(2):
        add(f"  %w{r}x = shufflevector <4 x i64> %w{2 * r}, <4 x i64> %w{2 * r + 1}, "
            "<8 x i32> <i32 0, i32 1, i32 2, i32 3, i32 4, i32 5, i32 6, i32 7>")
        add(f"  %m{r} = mul {v8} %w{r}x, splat (i64 {int(_P2) - (1 << 64)})")
        add(f"  %s{r}a = add {v8} %a{r}, %m{r}")
        add(f"  %r{r} = call {v8} @llvm.fshl.v8i64({v8} %s{r}a, {v8} %s{r}a, {v8} splat (i64 31))")
        add(f"  %n{r} = mul {v8} %r{r}, splat (i64 {int(_P1) - (1 << 64)})")
    add("  %k1 = add i64 %k, 1")
    add("  %more = icmp ult i64 %k1, %stripes")
    add("  br i1 %more, label %loop, label %done")
    add("done:")
    for r in range(2):
        add(f"  store {v8} %n{r}, ptr %lp{r}, align 8")
    add("  br label %exit")
    add("exit:")
    add("  ret void")
    add("}")
    return "\n".join(lines)


@intrinsic
def _vector_stripes(typingctx, data, starts, stripes, lanes):
    sig = types.void(data, starts, stripes, lanes)
    name = "spherecodec_xxh64_stripes4"

    def codegen(context, builder, signature, args):
        context.active_code_library.add_llvm_module(llvm.parse_assembly(_stripes_ir(name)))
        ptr = ir.PointerType()
        fnty = ir.FunctionType(ir.VoidType(), [ptr, ptr, ir.IntType(64), ptr])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        pointers = [builder.bitcast(context.make_array(signature.args[k])(context, builder, args[k]).data, ptr)
                    for k in (0, 1, 3)]
        builder.call(fn, [pointers[0], pointers[1], args[2], pointers[2]])
        return context.get_dummy_value()

    return sig, codegen


@njit(nogil=True, cache=True)
def xxh64_many(data, starts, ends, vector):
    """XXH64 (``xxh64``) of each of the byte ranges ``data[starts[j]:ends[j]]`` (int64
    arrays), as a uint64 array; ``vector`` (``VECTOR_HASH``): four at a time in vector
    registers, the same hashes (a last group of three runs padded with its last range;
    of fewer than ``VECTOR_FROM``, one range after the other in scalar lanes)."""
    count = starts.size
    hashes = np.empty(count, dtype=np.uint64)
    lanes = np.empty(4 * MANY, dtype=np.uint64)
    group = np.empty(MANY, dtype=np.int64)
    for first in range(0, count, MANY):
        m = min(MANY, count - first)
        common = 0
        if vector and m >= VECTOR_FROM:
            # the stripes all four have run side by side, then each finishes alone
            common = (ends[first] - starts[first]) // 32
            for j in range(MANY):
                r = first + min(j, m - 1)
                group[j] = starts[r]
                common = min(common, (ends[r] - starts[r]) // 32)
                lanes[4 * j] = _P1 + _P2
                lanes[4 * j + 1] = _P2
                lanes[4 * j + 2] = _U(0)
                lanes[4 * j + 3] = _U(0) - _P1
            _vector_stripes(data, group, np.int64(common), lanes)
        for j in range(m):
            b = data[starts[first + j]:ends[first + j]]
            if common:
                v1, v2, v3, v4 = _stripes(b, common, b.size // 32, lanes[4 * j], lanes[4 * j + 1],
                                          lanes[4 * j + 2], lanes[4 * j + 3])
                hashes[first + j] = _finish(b, b.size, v1, v2, v3, v4)
            else:
                hashes[first + j] = xxh64(b)
    return hashes
