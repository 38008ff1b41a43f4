"""``pair_products``: 16 x 16 tiles of model format 2's predictions as 16-bit integer
products held in registers, for the encoder (``kernels.predict.predict_quantized``,
``count_quantized``) and the decoder (``decode_quantized``).

Format 2's terms and coefficients are integers of at most ``QUANT_MAX`` (127) in magnitude
and a prediction sums at most 512 of their products, so every partial sum is an integer
below 2**24: int32 holds it, float32 too, and the sum is the same in any order. That frees
these kernels from the one-term-at-a-time order the format 1 kernels keep: a tile of
predictions is a small integer matrix product. Coordinates go by two at a time: the two
terms of a row are 16-bit integers side by side, the two coefficients of a column too
(``exact_models._coef_tiles``), and one multiply-add of pairs (``pmaddwd``, or AVX-512
VNNI's ``vpdpwssd``, which also adds) takes 32 products a vector. The tile is computed in
either orientation by the same loop: the *vectors* operand gives 16 lanes a pair, the
*scalars* operand one pair per output vector, broadcast. The encoder takes the tile's 16
columns of coefficients as the vectors and a row's terms as each scalar, so its output
vectors are rows of predictions as they lie in memory; the decoder takes the block's 16
rows of terms as the vectors and a column's coefficients as each scalar, so each output
vector is a column of the block, the order it decodes in. Measured in a kernel loop (16
rows x 512 coordinates x 256 columns, Intel Xeon with VNNI, December 8): the encoder's
orientation 114 GMAC/s; float multiply-adds in the decoder's layout 68, the format 1
kernels' order 27.

Numba cannot hold a vector in a register across a loop, so the loop is LLVM IR (as
``kernels.rans_simd``'s) in generic vector types: a sign extension, a multiply and the
sum of even and odd lanes, which LLVM turns into ``vpdpwssd`` with VNNI, ``vpmaddwd``
with AVX2 or AVX-512 and ``pmaddwd`` with SSE2, so it runs on any processor and gives the
same integers everywhere. How many output vectors a pass keeps in registers depends on
the build's registers (``OUTPUTS_PER_PASS``): all 16 with AVX-512's 32 of 16 lanes, 4
with AVX2's 16 of 8, 2 with SSE's or a generic build's.
"""

import llvmlite.binding as llvm
from llvmlite import ir
from numba import config as numba_config
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .linking import link_ir_function

#: the columns of one tile, and the rows of one block (``kernels.predict.BLOCK_ROWS``)
TILE_COLUMNS = 16
TILE_ROWS = 16
#: lanes of an output vector: a tile's columns or a block's rows, as it is taken
_LANES = 16
assert TILE_COLUMNS == TILE_ROWS == _LANES


def _outputs_per_pass():
    """Output vectors one pass over the coordinates keeps in registers (each ``_LANES``
    int32), sized to the build's vector registers so that none spills: the features
    ``NUMBA_CPU_FEATURES`` names when set, else the host's (Numba adds them to a named CPU
    too, as ``kernels.rans_simd._build_has_avx512`` reads them)."""
    features = numba_config.CPU_FEATURES
    if features is None:
        host = llvm.get_host_cpu_features()
        avx512, avx2 = host.get("avx512f", False), host.get("avx2", False)
    else:
        avx512 = "+avx512f" in features
        avx2 = "+avx2" in features or numba_config.CPU_NAME == "haswell"
    if avx512:
        return 16
    return 4 if avx2 else 2


#: output vectors a pass keeps in registers (``_outputs_per_pass``); the sums do not depend on it
OUTPUTS_PER_PASS = _outputs_per_pass()


def pair_products_ir(name, per_pass=OUTPUTS_PER_PASS):
    """LLVM IR: ``void f(ptr vectors, ptr scalars, ptr out, i64 stride, i64 pairs)`` sets
    ``out[i * stride + l]`` (float) for the 16 outputs ``i`` and 16 lanes ``l`` to the sum
    over ``p < pairs``, ``h < 2`` of ``vectors[p, l, h] * scalars[p, i, h]`` (both int16,
    pairs x 16 x 2, row-major), ``per_pass`` outputs a pass over the pairs; the sums are
    int32, converted exactly (below 2**24)."""
    acc = f"<{_LANES} x i32>"
    wide = f"<{2 * _LANES} x i32>"
    half = f"<{2 * _LANES} x i16>"
    even = ", ".join(f"i32 {2 * i}" for i in range(_LANES))
    odd = ", ".join(f"i32 {2 * i + 1}" for i in range(_LANES))
    lines = [
        f"define void @{name}(ptr noalias %vectors, ptr noalias %scalars, ptr noalias %out, i64 %stride,"
        " i64 %pairs) {",
        "entry:",
        "  %any = icmp sgt i64 %pairs, 0",
        "  br label %pass",
        "pass:",
        "  %i0 = phi i64 [0, %entry], [%i0next, %store]",
        "  br i1 %any, label %step, label %store",
        "step:",
        "  %p = phi i64 [0, %pass], [%pnext, %step]",
    ]
    add = lines.append
    outputs = range(per_pass)
    for i in outputs:
        add(f"  %acc{i} = phi {acc} [zeroinitializer, %pass], [%sum{i}, %step]")
    # the pair's 16 lanes, side by side; each output's pair of scalars is one i32
    add(f"  %vrow = mul i64 %p, {2 * _LANES}")
    add("  %vp = getelementptr i16, ptr %vectors, i64 %vrow")
    add(f"  %v = load {half}, ptr %vp, align 2")
    add(f"  %vw = sext {half} %v to {wide}")
    add(f"  %srow = mul i64 %p, {_LANES}")
    add("  %sbase = add i64 %srow, %i0")
    for i in outputs:
        add(f"  %si{i} = add i64 %sbase, {i}")
        add(f"  %sp{i} = getelementptr i32, ptr %scalars, i64 %si{i}")
        add(f"  %s{i} = load i32, ptr %sp{i}, align 2")
        add(f"  %sv{i} = insertelement {acc} poison, i32 %s{i}, i32 0")
        add(f"  %ss{i} = shufflevector {acc} %sv{i}, {acc} poison, <{_LANES} x i32> zeroinitializer")
        add(f"  %sh{i} = bitcast {acc} %ss{i} to {half}")
        add(f"  %sw{i} = sext {half} %sh{i} to {wide}")
        add(f"  %pr{i} = mul {wide} %sw{i}, %vw")
        add(f"  %pe{i} = shufflevector {wide} %pr{i}, {wide} poison, <{_LANES} x i32> <{even}>")
        add(f"  %po{i} = shufflevector {wide} %pr{i}, {wide} poison, <{_LANES} x i32> <{odd}>")
        add(f"  %pp{i} = add {acc} %pe{i}, %po{i}")
        add(f"  %sum{i} = add {acc} %acc{i}, %pp{i}")
    add("  %pnext = add i64 %p, 1")
    add("  %more = icmp slt i64 %pnext, %pairs")
    add("  br i1 %more, label %step, label %store")
    add("store:")
    for i in outputs:
        add(f"  %fin{i} = phi {acc} [zeroinitializer, %pass], [%sum{i}, %step]")
    for i in outputs:
        add(f"  %ff{i} = sitofp {acc} %fin{i} to <{_LANES} x float>")
        add(f"  %oi{i} = add i64 %i0, {i}")
        add(f"  %oo{i} = mul i64 %oi{i}, %stride")
        add(f"  %op{i} = getelementptr float, ptr %out, i64 %oo{i}")
        add(f"  store <{_LANES} x float> %ff{i}, ptr %op{i}, align 4")
    add(f"  %i0next = add i64 %i0, {per_pass}")
    add(f"  %done = icmp uge i64 %i0next, {_LANES}")
    add("  br i1 %done, label %exit, label %pass")
    add("exit:")
    add("  ret void")
    add("}")
    return "\n".join(lines)


def pair_products_kernel(per_pass=OUTPUTS_PER_PASS):
    """The intrinsic ``pair_products`` with ``per_pass`` outputs a pass (tests take every
    build's choice on one host: the sums are the same)."""

    @intrinsic
    def pair_products(typingctx, vectors, vectors_pair, scalars, scalars_pair, out, out_row, out_column, pairs):
        """Rows ``out_row + i`` (i < 16), columns ``out_column .. out_column + 15`` of ``out``
        (float32, 2-D, C order) = the sums over ``pairs`` pairs of coordinates of
        ``vectors[p, l, h] * scalars[p, i, h]`` (``pair_products_ir``), where ``vectors`` and
        ``scalars`` are int16 arrays in C order, 16 x 2 values a pair (a tile of
        ``exact_models._coef_tiles``, or a block's terms), read from their pairs
        ``vectors_pair`` and ``scalars_pair`` on. Integers: exact, whatever the order. The
        caller keeps every row and column in bounds."""
        sig = types.void(vectors, vectors_pair, scalars, scalars_pair, out, out_row, out_column, pairs)

        def codegen(context, builder, signature, args):
            ptr = ir.PointerType()
            i64 = ir.IntType(64)
            fnty = ir.FunctionType(ir.VoidType(), [ptr, ptr, ptr, i64, i64])
            fn = link_ir_function(context, builder, f"spherecodec_pair_products{per_pass}",
                                  lambda name: pair_products_ir(name, per_pass), fnty)

            def as_i64(k):
                return context.cast(builder, args[k], signature.args[k], types.int64)

            def pair_start(k):
                # 2 * 16 int16 a pair
                data = context.make_array(signature.args[k])(context, builder, args[k]).data
                return builder.bitcast(builder.gep(data, [builder.mul(as_i64(k + 1), ir.Constant(i64, 2 * _LANES))]),
                                       ptr)

            out_array = context.make_array(signature.args[4])(context, builder, args[4])
            stride = cgutils.unpack_tuple(builder, out_array.shape, 2)[1]
            out_start = builder.gep(out_array.data, [builder.add(builder.mul(as_i64(5), stride), as_i64(6))])
            builder.call(fn, [pair_start(0), pair_start(2), builder.bitcast(out_start, ptr), stride, as_i64(7)])
            return context.get_dummy_value()

        return sig, codegen

    return pair_products


#: the build's pair products (``pair_products_kernel``)
pair_products = pair_products_kernel()


def _scaled_add_ir(name):
    # void f(ptr dst, ptr src, float w): dst[0:16] += w * src[0:16], one vector each
    vec = f"<{_LANES} x float>"
    return "\n".join([
        f"define void @{name}(ptr noalias %dst, ptr noalias %src, float %w) {{",
        f"  %d = load {vec}, ptr %dst, align 4",
        f"  %s = load {vec}, ptr %src, align 4",
        f"  %wi = insertelement {vec} poison, float %w, i32 0",
        f"  %wv = shufflevector {vec} %wi, {vec} poison, <{_LANES} x i32> zeroinitializer",
        f"  %p = fmul {vec} %wv, %s",
        f"  %r = fadd {vec} %d, %p",
        f"  store {vec} %r, ptr %dst, align 4",
        "  ret void",
        "}",
    ])


@intrinsic
def scaled_add_row(typingctx, dst, row, src, w):
    """``dst[row, :16] += w * src[:16]`` (float32, C order; ``dst``'s rows at least 16 wide)
    as one vector: the decoder's tile triangle, where LLVM could not prove ``dst`` and
    ``src`` apart and left 16 scalar steps. Exact for format 2's integers."""
    sig = types.void(dst, row, src, w)

    def codegen(context, builder, signature, args):
        ptr = ir.PointerType()
        fnty = ir.FunctionType(ir.VoidType(), [ptr, ptr, ir.FloatType()])
        fn = link_ir_function(context, builder, "spherecodec_scaled_add_row", _scaled_add_ir, fnty)
        dst_array = context.make_array(signature.args[0])(context, builder, args[0])
        src_array = context.make_array(signature.args[2])(context, builder, args[2])
        width = cgutils.unpack_tuple(builder, dst_array.shape, 2)[1]
        start = builder.gep(dst_array.data, [builder.mul(context.cast(builder, args[1], signature.args[1],
                                                                      types.int64), width)])
        weight = context.cast(builder, args[3], signature.args[3], types.float32)
        builder.call(fn, [builder.bitcast(start, ptr), builder.bitcast(src_array.data, ptr), weight])
        return context.get_dummy_value()

    return sig, codegen
