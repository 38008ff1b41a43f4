"""``tile_products``: the predictions of a block's 16 rows for 16 columns at once, from
integer terms, in registers: model format 2's decoder (``kernels.predict.decode_quantized``).

Format 2's terms and coefficients are integers of at most ``QUANT_MAX`` (127) in magnitude
and a prediction sums at most 512 of their products, so every partial sum is an integer
below 2**24 that float32 holds exactly: the sum is the same in any order, with or without
fused multiply-adds. That frees this kernel from the one-term-at-a-time order the format 1
kernels keep, and it computes a 16 x 16 tile of predictions as a small matrix product:
each output column ``c`` is one vector of the block's 16 rows, held in a register while
every earlier coordinate ``k`` adds ``coef[k, c] * terms[k, :]`` (one vector load of the
terms and one broadcast coefficient a column). Loaded and stored once per tile, the
predictions no longer stream through L1 once per four coordinates (``kernels.predict
._add_terms``: 26 GMAC/s in a kernel loop on the Intel Xeon of December 8, against the
fused form's ... here).

Numba cannot hold a vector in a register across a loop, so the loop is LLVM IR (as
``kernels.rans_simd``'s), with generic vector types and ``llvm.fmuladd`` (fused where the
processor has an FMA unit, a multiply and an add elsewhere: the same integers either way),
so it is correct on any processor. How many columns a pass keeps in registers depends on
the build's registers (``COLUMNS_PER_PASS``): all 16 with AVX-512's 32 of 16 floats, 4
with AVX2's 16 of 8, 2 with SSE's or a generic build's.
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
    ``TILE_ROWS`` floats), sized to the build's vector registers so that none spills."""
    features = numba_config.CPU_FEATURES
    if features is None and numba_config.CPU_NAME in (None, "host"):
        host = llvm.get_host_cpu_features()
        avx512, avx2 = host.get("avx512f", False), host.get("avx2", False)
    else:
        named = features or ""
        avx512 = "+avx512f" in named
        avx2 = "+avx2" in named or numba_config.CPU_NAME == "haswell"
    if avx512:
        return 16
    return 4 if avx2 else 2


#: columns a pass keeps in registers (``_columns_per_pass``); the sums do not depend on it
COLUMNS_PER_PASS = _columns_per_pass()


def tile_products_ir(name, per_pass=COLUMNS_PER_PASS):
    """LLVM IR: ``void f(ptr coef, ptr terms, ptr out, i64 nk)`` sets ``out[c, r]`` (16 x 16
    float, row-major) to the sum over ``k < nk`` of ``coef[k, c] * terms[k, r]`` (both
    ``nk`` x 16 float, row-major), ``per_pass`` columns a pass over ``k``."""
    vec = f"<{TILE_ROWS} x float>"
    lines = [
        f"declare {vec} @llvm.fmuladd.v{TILE_ROWS}f32({vec}, {vec}, {vec})",
        f"define void @{name}(ptr noalias %coef, ptr noalias %terms, ptr noalias %out, i64 %nk) {{",
        "entry:",
        "  %any = icmp sgt i64 %nk, 0",
        "  br label %pass",
        "pass:",
        "  %c0 = phi i64 [0, %entry], [%c0next, %store]",
        "  br i1 %any, label %step, label %store",
        "step:",
        "  %k = phi i64 [0, %pass], [%knext, %step]",
    ]
    add = lines.append
    cols = range(per_pass)
    for i in cols:
        add(f"  %acc{i} = phi {vec} [zeroinitializer, %pass], [%sum{i}, %step]")
    add(f"  %trow = mul i64 %k, {TILE_ROWS}")
    add("  %tp = getelementptr float, ptr %terms, i64 %trow")
    add(f"  %t = load {vec}, ptr %tp, align 4")
    add(f"  %crow = mul i64 %k, {TILE_COLUMNS}")
    add("  %cbase = add i64 %crow, %c0")
    for i in cols:
        add(f"  %ci{i} = add i64 %cbase, {i}")
        add(f"  %wp{i} = getelementptr float, ptr %coef, i64 %ci{i}")
        add(f"  %w{i} = load float, ptr %wp{i}, align 4")
        add(f"  %wv{i} = insertelement {vec} poison, float %w{i}, i32 0")
        add(f"  %ws{i} = shufflevector {vec} %wv{i}, {vec} poison, <{TILE_ROWS} x i32> zeroinitializer")
        add(f"  %sum{i} = call {vec} @llvm.fmuladd.v{TILE_ROWS}f32({vec} %ws{i}, {vec} %t, {vec} %acc{i})")
    add("  %knext = add i64 %k, 1")
    add("  %more = icmp slt i64 %knext, %nk")
    add("  br i1 %more, label %step, label %store")
    add("store:")
    for i in cols:
        add(f"  %fin{i} = phi {vec} [zeroinitializer, %pass], [%sum{i}, %step]")
    for i in cols:
        add(f"  %oc{i} = add i64 %c0, {i}")
        add(f"  %oi{i} = mul i64 %oc{i}, {TILE_ROWS}")
        add(f"  %op{i} = getelementptr float, ptr %out, i64 %oi{i}")
        add(f"  store {vec} %fin{i}, ptr %op{i}, align 4")
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
    def tile_products(typingctx, coef, first, terms, out, nk):
        """``out[c, r] = sum(coef.flat[first + 16 k + c] * terms[k, r] for k < nk)`` for the
        16 x 16 ``out`` (float32, C order): ``coef`` holds a tile's coefficients from element
        ``first`` on, 16 a coordinate; ``terms`` (float32, C order, >= nk x 16) the block's
        terms, a coordinate a row. Exact (and order-free) for format 2's integers only."""
        sig = types.void(coef, first, terms, out, nk)

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
            start = builder.gep(data[0], [context.cast(builder, args[1], signature.args[1], types.int64)])
            builder.call(fn, [builder.bitcast(start, ptr), builder.bitcast(data[1], ptr),
                              builder.bitcast(data[2], ptr),
                              context.cast(builder, args[4], signature.args[4], types.int64)])
            return context.get_dummy_value()

        return sig, codegen

    return tile_products


#: the build's tile products (``tile_products_kernel``'s docstring)
tile_products = tile_products_kernel()
