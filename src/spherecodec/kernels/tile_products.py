"""``tile_products``: the predictions of a block's 16 rows for 16 columns at once, from
integer terms, in registers: model format 2's decoder (``kernels.predict.decode_quantized``).

Format 2's terms and coefficients are integers of at most ``QUANT_MAX`` (127) in magnitude
and a prediction sums at most 512 of their products, so every partial sum is an integer
below 2**24: int32 holds it, float32 too, and the sum is the same in any order. That frees
this kernel from the one-term-at-a-time order the format 1 kernels keep: it computes a
16 x 16 tile of predictions as a small integer matrix product. Each output column ``c`` is
one vector of the block's 16 rows (int32), held in a register while the coordinates go
by two at a time: the two terms of each row are 16-bit integers side by side, the two
coefficients of the column too, and one multiply-add of pairs (``pmaddwd``, or AVX-512
VNNI's ``vpdpwssd``, which also adds) takes 32 products a vector. Measured in a kernel
loop (16 rows x 512 coordinates x 256 columns, Intel Xeon with VNNI, December 8): float
multiply-adds in this layout 68 GMAC/s, the format 1 kernels' order 27.

Numba cannot hold a vector in a register across a loop, so the loop is LLVM IR (as
``kernels.rans_simd``'s) in generic vector types: a sign extension, a multiply and the
sum of even and odd lanes, which LLVM turns into ``vpdpwssd`` with VNNI, ``vpmaddwd``
with AVX2 or AVX-512 and ``pmaddwd`` with SSE2, so it runs on any processor and gives the
same integers everywhere. How many columns a pass keeps in registers depends on the
build's registers (``COLUMNS_PER_PASS``): all 16 with AVX-512's 32 of 16 lanes, 4 with
AVX2's 16 of 8, 2 with SSE's or a generic build's.
"""

import hashlib

import llvmlite.binding as llvm
from llvmlite import ir
from numba import config as numba_config
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: the columns of one tile, and the rows of one block (``kernels.predict.BLOCK_ROWS``)
TILE_COLUMNS = 16
TILE_ROWS = 16


def _columns_per_pass():
    """Output columns one pass over the coordinates keeps in registers (each a vector of
    ``TILE_ROWS`` lanes), sized to the build's vector registers so that none spills: the
    features ``NUMBA_CPU_FEATURES`` names when set, else the host's (Numba adds them to a
    named CPU too, as ``kernels.rans_simd._build_has_avx512`` reads them)."""
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


#: columns a pass keeps in registers (``_columns_per_pass``); the sums do not depend on it
COLUMNS_PER_PASS = _columns_per_pass()


def tile_products_ir(name, per_pass=COLUMNS_PER_PASS):
    """LLVM IR: ``void f(ptr coef, ptr terms, ptr out, i64 pairs)`` sets ``out[c, r]`` (16 x
    16 float, row-major) to the sum over ``p < pairs`` and ``h < 2`` of ``coef[p, c, h] *
    terms[p, r, h]`` (both int16, ``pairs`` x 16 x 2, row-major), ``per_pass`` columns a
    pass over the pairs; the sums are int32, converted exactly (below 2**24)."""
    acc = f"<{TILE_ROWS} x i32>"
    wide = f"<{2 * TILE_ROWS} x i32>"
    half = f"<{2 * TILE_ROWS} x i16>"
    even = ", ".join(f"i32 {2 * i}" for i in range(TILE_ROWS))
    odd = ", ".join(f"i32 {2 * i + 1}" for i in range(TILE_ROWS))
    lines = [
        f"define void @{name}(ptr noalias %coef, ptr noalias %terms, ptr noalias %out, i64 %pairs) {{",
        "entry:",
        "  %any = icmp sgt i64 %pairs, 0",
        "  br label %pass",
        "pass:",
        "  %c0 = phi i64 [0, %entry], [%c0next, %store]",
        "  br i1 %any, label %step, label %store",
        "step:",
        "  %p = phi i64 [0, %pass], [%pnext, %step]",
    ]
    add = lines.append
    cols = range(per_pass)
    for i in cols:
        add(f"  %acc{i} = phi {acc} [zeroinitializer, %pass], [%sum{i}, %step]")
    # the pair's terms, rows side by side; each column's pair of coefficients is one i32
    add(f"  %trow = mul i64 %p, {2 * TILE_ROWS}")
    add("  %tp = getelementptr i16, ptr %terms, i64 %trow")
    add(f"  %t = load {half}, ptr %tp, align 2")
    add(f"  %tw = sext {half} %t to {wide}")
    add(f"  %crow = mul i64 %p, {TILE_COLUMNS}")
    add("  %cbase = add i64 %crow, %c0")
    for i in cols:
        add(f"  %ci{i} = add i64 %cbase, {i}")
        add(f"  %wp{i} = getelementptr i32, ptr %coef, i64 %ci{i}")
        add(f"  %w{i} = load i32, ptr %wp{i}, align 2")
        add(f"  %wv{i} = insertelement {acc} poison, i32 %w{i}, i32 0")
        add(f"  %ws{i} = shufflevector {acc} %wv{i}, {acc} poison, <{TILE_ROWS} x i32> zeroinitializer")
        add(f"  %wh{i} = bitcast {acc} %ws{i} to {half}")
        add(f"  %ww{i} = sext {half} %wh{i} to {wide}")
        add(f"  %pr{i} = mul {wide} %ww{i}, %tw")
        add(f"  %pe{i} = shufflevector {wide} %pr{i}, {wide} poison, <{TILE_ROWS} x i32> <{even}>")
        add(f"  %po{i} = shufflevector {wide} %pr{i}, {wide} poison, <{TILE_ROWS} x i32> <{odd}>")
        add(f"  %pp{i} = add {acc} %pe{i}, %po{i}")
        add(f"  %sum{i} = add {acc} %acc{i}, %pp{i}")
    add("  %pnext = add i64 %p, 1")
    add("  %more = icmp slt i64 %pnext, %pairs")
    add("  br i1 %more, label %step, label %store")
    add("store:")
    for i in cols:
        add(f"  %fin{i} = phi {acc} [zeroinitializer, %pass], [%sum{i}, %step]")
    for i in cols:
        add(f"  %ff{i} = sitofp {acc} %fin{i} to <{TILE_ROWS} x float>")
        add(f"  %oc{i} = add i64 %c0, {i}")
        add(f"  %oi{i} = mul i64 %oc{i}, {TILE_ROWS}")
        add(f"  %op{i} = getelementptr float, ptr %out, i64 %oi{i}")
        add(f"  store <{TILE_ROWS} x float> %ff{i}, ptr %op{i}, align 4")
    add(f"  %c0next = add i64 %c0, {per_pass}")
    add(f"  %done = icmp uge i64 %c0next, {TILE_COLUMNS}")
    add("  br i1 %done, label %exit, label %pass")
    add("exit:")
    add("  ret void")
    add("}")
    return "\n".join(lines)


def tile_products_kernel(per_pass=COLUMNS_PER_PASS):
    """The intrinsic ``tile_products`` with ``per_pass`` columns a pass (tests take every
    build's choice on one host: the sums are the same)."""

    @intrinsic
    def tile_products(typingctx, coef, first, terms, out, pairs):
        """``out[c, r]`` = the sum over ``p < pairs``, ``h < 2`` of ``coef[p, c, h] * terms[p,
        r, h]`` for the 16 x 16 ``out`` (float32, C order), where ``coef`` (int16, C order)
        holds a tile's coefficients from its pair ``first`` on (16 x 2 a pair of
        coordinates: column, then coordinate) and ``terms`` (int16, C order, >= pairs x 16 x
        2) the block's terms (row, then coordinate). Integers: exact, whatever the order."""
        sig = types.void(coef, first, terms, out, pairs)

        def codegen(context, builder, signature, args):
            # a name per use, the same in every process (as rans_simd._merge_low_bits)
            prefix = (f"spherecodec_tile_products{per_pass}_"
                      + hashlib.sha1(builder.function.name.encode()).hexdigest()[:16])
            name = f"{prefix}_{sum(g.name.startswith(prefix) for g in builder.module.global_values)}"
            context.active_code_library.add_llvm_module(llvm.parse_assembly(tile_products_ir(name, per_pass)))
            ptr = ir.PointerType()
            i64 = ir.IntType(64)
            fnty = ir.FunctionType(ir.VoidType(), [ptr, ptr, ptr, i64])
            fn = cgutils.get_or_insert_function(builder.module, fnty, name)
            data = [context.make_array(signature.args[k])(context, builder, args[k]).data for k in (0, 2, 3)]
            # the tile's first pair: 2 * 16 int16 a pair of coordinates
            first_pair = builder.mul(context.cast(builder, args[1], signature.args[1], types.int64),
                                     ir.Constant(i64, 2 * TILE_COLUMNS))
            start = builder.gep(data[0], [first_pair])
            builder.call(fn, [builder.bitcast(start, ptr), builder.bitcast(data[1], ptr),
                              builder.bitcast(data[2], ptr),
                              context.cast(builder, args[4], signature.args[4], types.int64)])
            return context.get_dummy_value()

        return sig, codegen

    return tile_products


#: the build's tile products (``tile_products_kernel``'s docstring)
tile_products = tile_products_kernel()


def _rows_per_pass():
    """Rows one pass of ``row_tile_products`` keeps in registers (each a vector of
    ``TILE_COLUMNS`` int32): the same registers as ``COLUMNS_PER_PASS``."""
    return COLUMNS_PER_PASS


ROWS_PER_PASS = _rows_per_pass()


def row_tile_products_ir(name, per_pass=ROWS_PER_PASS):
    """LLVM IR: ``void f(ptr coef, ptr terms, ptr out, i64 ostride, i64 pairs)`` sets
    ``out[r * ostride + c]`` (float) for the 16 rows ``r`` and 16 columns ``c`` of a tile to
    the sum over ``p < pairs``, ``h < 2`` of ``coef[p, c, h] * terms[p, r, h]`` (both int16,
    x 16 x 2: ``tile_products``' layouts), ``per_pass`` rows a pass over the pairs: the
    encoder's orientation, rows of predictions stored as they lie in memory."""
    acc = f"<{TILE_COLUMNS} x i32>"
    wide = f"<{2 * TILE_COLUMNS} x i32>"
    half = f"<{2 * TILE_COLUMNS} x i16>"
    even = ", ".join(f"i32 {2 * i}" for i in range(TILE_COLUMNS))
    odd = ", ".join(f"i32 {2 * i + 1}" for i in range(TILE_COLUMNS))
    lines = [
        f"define void @{name}(ptr noalias %coef, ptr noalias %terms, ptr noalias %out, i64 %ostride, i64 %pairs) {{",
        "entry:",
        "  %any = icmp sgt i64 %pairs, 0",
        "  br label %pass",
        "pass:",
        "  %r0 = phi i64 [0, %entry], [%r0next, %store]",
        "  br i1 %any, label %step, label %store",
        "step:",
        "  %p = phi i64 [0, %pass], [%pnext, %step]",
    ]
    add = lines.append
    rows = range(per_pass)
    for i in rows:
        add(f"  %acc{i} = phi {acc} [zeroinitializer, %pass], [%sum{i}, %step]")
    add(f"  %crow = mul i64 %p, {2 * TILE_COLUMNS}")
    add("  %cp = getelementptr i16, ptr %coef, i64 %crow")
    add(f"  %cv = load {half}, ptr %cp, align 2")
    add(f"  %cw = sext {half} %cv to {wide}")
    add(f"  %tbase = mul i64 %p, {TILE_ROWS}")
    add("  %trow = add i64 %tbase, %r0")
    for i in rows:
        add(f"  %ti{i} = add i64 %trow, {i}")
        add(f"  %tp{i} = getelementptr i32, ptr %terms, i64 %ti{i}")
        add(f"  %t{i} = load i32, ptr %tp{i}, align 2")
        add(f"  %tv{i} = insertelement {acc} poison, i32 %t{i}, i32 0")
        add(f"  %ts{i} = shufflevector {acc} %tv{i}, {acc} poison, <{TILE_COLUMNS} x i32> zeroinitializer")
        add(f"  %th{i} = bitcast {acc} %ts{i} to {half}")
        add(f"  %tw{i} = sext {half} %th{i} to {wide}")
        add(f"  %pr{i} = mul {wide} %tw{i}, %cw")
        add(f"  %pe{i} = shufflevector {wide} %pr{i}, {wide} poison, <{TILE_COLUMNS} x i32> <{even}>")
        add(f"  %po{i} = shufflevector {wide} %pr{i}, {wide} poison, <{TILE_COLUMNS} x i32> <{odd}>")
        add(f"  %pp{i} = add {acc} %pe{i}, %po{i}")
        add(f"  %sum{i} = add {acc} %acc{i}, %pp{i}")
    add("  %pnext = add i64 %p, 1")
    add("  %more = icmp slt i64 %pnext, %pairs")
    add("  br i1 %more, label %step, label %store")
    add("store:")
    for i in rows:
        add(f"  %fin{i} = phi {acc} [zeroinitializer, %pass], [%sum{i}, %step]")
    for i in rows:
        add(f"  %ff{i} = sitofp {acc} %fin{i} to <{TILE_COLUMNS} x float>")
        add(f"  %or{i} = add i64 %r0, {i}")
        add(f"  %oi{i} = mul i64 %or{i}, %ostride")
        add(f"  %op{i} = getelementptr float, ptr %out, i64 %oi{i}")
        add(f"  store <{TILE_COLUMNS} x float> %ff{i}, ptr %op{i}, align 4")
    add(f"  %r0next = add i64 %r0, {per_pass}")
    add(f"  %done = icmp uge i64 %r0next, {TILE_ROWS}")
    add("  br i1 %done, label %exit, label %pass")
    add("exit:")
    add("  ret void")
    add("}")
    return "\n".join(lines)


def row_tile_products_kernel(per_pass=ROWS_PER_PASS):
    """The intrinsic ``row_tile_products`` with ``per_pass`` rows a pass."""

    @intrinsic
    def row_tile_products(typingctx, coef, first, terms, out, out_row, column, pairs):
        """Rows ``out_row .. out_row + 15``, columns ``column .. column + 15`` of ``out``
        (float32, 2-D, C order) = the products of a block's terms (``terms``: int16, pairs
        x 16 x 2, C order, ``tile_products``' layout) with the tile of ``coef`` (int16,
        ``tile_products``' layout) from its pair ``first`` on, over ``pairs`` pairs
        (``row_tile_products_ir``). The caller keeps every row and column in bounds."""
        sig = types.void(coef, first, terms, out, out_row, column, pairs)

        def codegen(context, builder, signature, args):
            prefix = (f"spherecodec_row_tile_products{per_pass}_"
                      + hashlib.sha1(builder.function.name.encode()).hexdigest()[:16])
            name = f"{prefix}_{sum(g.name.startswith(prefix) for g in builder.module.global_values)}"
            context.active_code_library.add_llvm_module(llvm.parse_assembly(row_tile_products_ir(name, per_pass)))
            ptr = ir.PointerType()
            i64 = ir.IntType(64)
            fnty = ir.FunctionType(ir.VoidType(), [ptr, ptr, ptr, i64, i64])
            fn = cgutils.get_or_insert_function(builder.module, fnty, name)

            def as_i64(k):
                return context.cast(builder, args[k], signature.args[k], types.int64)

            coef_array = context.make_array(signature.args[0])(context, builder, args[0])
            terms_array = context.make_array(signature.args[2])(context, builder, args[2])
            out_array = context.make_array(signature.args[3])(context, builder, args[3])
            ostride = cgutils.unpack_tuple(builder, out_array.shape, 2)[1]
            coef_start = builder.gep(coef_array.data, [builder.mul(as_i64(1), ir.Constant(i64, 2 * TILE_COLUMNS))])
            out_start = builder.gep(out_array.data, [builder.add(builder.mul(as_i64(4), ostride), as_i64(5))])
            builder.call(fn, [builder.bitcast(coef_start, ptr), builder.bitcast(terms_array.data, ptr),
                              builder.bitcast(out_start, ptr), ostride, as_i64(6)])
            return context.get_dummy_value()

        return sig, codegen

    return row_tile_products


#: the build's row tile products (``row_tile_products_kernel``)
row_tile_products = row_tile_products_kernel()


def _scaled_add_ir(name):
    # void f(ptr dst, ptr src, float w): dst[0:16] += w * src[0:16], one vector each
    vec = f"<{TILE_ROWS} x float>"
    return "\n".join([
        f"define void @{name}(ptr noalias %dst, ptr noalias %src, float %w) {{",
        f"  %d = load {vec}, ptr %dst, align 4",
        f"  %s = load {vec}, ptr %src, align 4",
        f"  %wi = insertelement {vec} poison, float %w, i32 0",
        f"  %wv = shufflevector {vec} %wi, {vec} poison, <{TILE_ROWS} x i32> zeroinitializer",
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
        prefix = "spherecodec_scaled_add_row_" + hashlib.sha1(builder.function.name.encode()).hexdigest()[:16]
        name = f"{prefix}_{sum(g.name.startswith(prefix) for g in builder.module.global_values)}"
        context.active_code_library.add_llvm_module(llvm.parse_assembly(_scaled_add_ir(name)))
        ptr = ir.PointerType()
        fnty = ir.FunctionType(ir.VoidType(), [ptr, ptr, ir.FloatType()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        dst_array = context.make_array(signature.args[0])(context, builder, args[0])
        src_array = context.make_array(signature.args[2])(context, builder, args[2])
        width = cgutils.unpack_tuple(builder, dst_array.shape, 2)[1]
        start = builder.gep(dst_array.data, [builder.mul(context.cast(builder, args[1], signature.args[1],
                                                                      types.int64), width)])
        weight = context.cast(builder, args[3], signature.args[3], types.float32)
        builder.call(fn, [builder.bitcast(start, ptr), builder.bitcast(src_array.data, ptr), weight])
        return context.get_dummy_value()

    return sig, codegen
