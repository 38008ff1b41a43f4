"""32-lane rANS streams (entropy backend 2) with an AVX-512 decoder.

Same coder as ``kernels.rans`` (32-bit states in ``[2**16, 2**32)``, 16-bit words, the
same tables), with a layout made for vector decoding:

* symbol ``i`` belongs to step ``i // 32`` and lane ``i % 32``; lanes 0-15 form group 0,
  lanes 16-31 group 1, and each group has its own substream;
* the decoder takes the steps in order; in a step each group decodes its 16 symbols, then
  its lanes whose state fell below ``2**16`` read one word each, in lane order;
* body: varint byte length of substream 0 (substream 1 takes the rest); each substream
  is its 16 final states (u32, little endian, lane order) then its words in the order the
  decoder reads them. The decoder returns ``STATUS_OK`` only when every lane is back at
  ``RANS_L`` and each substream was read to its last byte.

The vector decoder is LLVM IR (``_decoder_ir``) linked into a Numba kernel: a step of 16
lanes is one gather from each slot table, a multiply and an expanding load of the words.
Numba cannot express those, and on the CPUs of these machines (AMD EPYC, AVX-512) the step
costs 0.96 ns per float32 against 2.05 ns for the scalar 8-lane decoder. CPUs without
AVX-512 VBMI2 take ``decode_scalar``, the reference implementation, which the tests hold
the vector decoder to (all arithmetic is integer, so both give the same bits anywhere).
Only the exact codec's float32 chunks use this backend (``fused`` raw low bits).
"""

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .rans import RANS_L, STATUS_CORRUPT, STATUS_OK, _encode_step, _flush_state, read_varint, varint_size, write_varint

LANES = 32
GROUP_LANES = 16
#: streams shorter than this keep the 8-lane layout: 32 states cost 128 bytes, 0.25% of a
#: stream of 2**15 float32 symbols
MIN_SYMBOLS = 1 << 15
#: an expanding load takes up to 32 bytes: the vector steps stop (and the scalar ones
#: finish) when the last substream has fewer left
VECTOR_READ = 32
_U = np.uint64
_DECODER_NAME = "spherecodec_rans32_decode_fused"


def _has_vector_decoder():
    features = llvm.get_host_cpu_features()
    return all(features.get(name, False) for name in ("avx512f", "avx512bw", "avx512vbmi2"))


#: True when this CPU runs the vector decoder natively (else ``decode_scalar`` is used)
VECTOR = _has_vector_decoder()


def encode_scratch_size(n):
    """Bytes of scratch space ``rans32_encode`` needs for ``n`` symbols."""
    steps = (n + LANES - 1) // LANES
    return 2 * (2 * GROUP_LANES * steps + 4 * GROUP_LANES + 8)


@njit(nogil=True, cache=True)
def rans32_encode(values, shift, table, precision, scratch, out, pos):
    """Encode the symbols ``values >> shift`` at ``out[pos:]`` in the 32-lane layout: the
    body's byte length (varint), then the body. ``table`` comes from
    ``rans.encoder_table``; ``scratch`` holds ``encode_scratch_size(n)`` bytes, ``out``
    as many from ``pos``. Returns the position after the body.
    """
    n = values.size
    steps = (n + LANES - 1) // LANES
    cap = scratch.size // 2
    x = np.full(LANES, RANS_L, dtype=np.uint64)
    p0 = cap
    p1 = 2 * cap
    # the decoder reads a step's words in lane order after decoding it: the encoder, going
    # backwards, emits them in reverse lane order before coding the step
    full = n // LANES
    if full < steps:
        for j in range(LANES - 1, -1, -1):
            i = full * LANES + j
            if i < n:
                if j >= GROUP_LANES:
                    x[j], p1 = _encode_step(x[j], table[values[i] >> shift], precision, scratch, p1)
                else:
                    x[j], p0 = _encode_step(x[j], table[values[i] >> shift], precision, scratch, p0)
    for s in range(full - 1, -1, -1):
        base = s * LANES
        for j in range(LANES - 1, GROUP_LANES - 1, -1):
            x[j], p1 = _encode_step(x[j], table[values[base + j] >> shift], precision, scratch, p1)
        for j in range(GROUP_LANES - 1, -1, -1):
            x[j], p0 = _encode_step(x[j], table[values[base + j] >> shift], precision, scratch, p0)
    for j in range(LANES - 1, GROUP_LANES - 1, -1):
        p1 = _flush_state(x[j], scratch, p1)
    for j in range(GROUP_LANES - 1, -1, -1):
        p0 = _flush_state(x[j], scratch, p0)
    len0 = cap - p0
    len1 = 2 * cap - p1
    pos = write_varint(out, pos, varint_size(len0) + len0 + len1)
    pos = write_varint(out, pos, len0)
    out[pos:pos + len0] = scratch[p0:cap]
    pos += len0
    out[pos:pos + len1] = scratch[p1:]
    return pos + len1


@njit
def _parse(stream, bounds):
    # bounds <- (read position, end) of both substreams; False if the body is malformed
    size = stream.size
    len0, pos = read_varint(stream, 0, size)
    if pos < 0 or len0 > size - pos:
        return False
    bounds[0] = pos + 4 * GROUP_LANES
    bounds[1] = pos + len0
    bounds[2] = pos + len0 + 4 * GROUP_LANES
    bounds[3] = size
    return (len0 >= 4 * GROUP_LANES and size - pos - len0 >= 4 * GROUP_LANES
            and len0 % 2 == 0 and (size - pos - len0) % 2 == 0)


@njit
def _load_states(stream, bounds, states):
    for g in range(2):
        start = bounds[2 * g] - 4 * GROUP_LANES
        for j in range(GROUP_LANES):
            p = start + 4 * j
            states[GROUP_LANES * g + j] = (np.uint32(stream[p]) | (np.uint32(stream[p + 1]) << np.uint32(8))
                                           | (np.uint32(stream[p + 2]) << np.uint32(16))
                                           | (np.uint32(stream[p + 3]) << np.uint32(24)))


@njit
def _scalar_steps(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, first, fused):
    """Decode symbols ``first ..`` to the end of ``out`` one lane at a time (32-bit
    arithmetic, as the vector decoder); False if a word lies past its substream."""
    n = out.size
    nibbles = 2 * n
    mask = np.uint32((1 << precision) - 1)
    prec = np.uint32(precision)
    for i in range(first, n):
        j = i % LANES
        g = j // GROUP_LANES
        x = states[j]
        k = x & mask
        symbol = slot_symbol[k]
        if fused:
            low = np.uint32(raw[2 * i]) | (np.uint32(raw[2 * i + 1]) << np.uint32(8))
            nibble = (np.uint32(raw[nibbles + (i >> 1)]) >> np.uint32(4 * (i & 1))) & np.uint32(0xF)
            out[i] = (np.uint32(symbol) << np.uint32(20)) | (nibble << np.uint32(16)) | low
        else:
            out[i] = symbol
        e = slot_table[k]
        x = np.uint32((e & np.uint32(0xFFFF)) * (x >> prec) + (e >> np.uint32(16)))
        if x < np.uint32(RANS_L):
            p = bounds[2 * g]
            if p + 2 > bounds[2 * g + 1]:
                return False
            x = (x << np.uint32(16)) | np.uint32(stream[p]) | (np.uint32(stream[p + 1]) << np.uint32(8))
            bounds[2 * g] = p + 2
        states[j] = x
    return True


@njit
def _finish(bounds, states):
    if bounds[0] != bounds[1] or bounds[2] != bounds[3]:
        return STATUS_CORRUPT
    for j in range(LANES):
        if states[j] != RANS_L:
            return STATUS_CORRUPT
    return STATUS_OK


@njit(nogil=True, cache=True)
def decode_scalar(stream, slot_table, slot_symbol, precision, out, raw):
    """Decode ``out.size`` symbols of a 32-lane body ``stream``; returns a status.

    Tables as ``rans.read_table`` builds them. ``raw`` is empty (``out`` receives the
    symbols) or, for a uint32 ``out``, the 20 low bits of every value in the
    ``kernels.bits`` layout (``out`` receives ``symbol << 20 | low bits``).
    """
    bounds = np.empty(4, dtype=np.int64)
    states = np.empty(LANES, dtype=np.uint32)
    if not _parse(stream, bounds):
        return STATUS_CORRUPT
    _load_states(stream, bounds, states)
    fused = raw.size > 0
    if fused:
        ok = _scalar_steps(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, 0, True)
    else:
        ok = _scalar_steps(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, 0, False)
    return _finish(bounds, states) if ok else STATUS_CORRUPT


def _decoder_ir():
    """LLVM IR of the vector steps: ``i64 f(stream, bounds, slot_table, symbol_table,
    precision, out, steps, states, raw, nibbles)``; returns the steps decoded, fewer than
    asked near the end of the body or when a read position passed its substream's end
    (the scalar steps take over from there)."""
    lines = [
        "declare <16 x i32> @llvm.masked.gather.v16i32.v16p0(<16 x ptr>, i32 immarg, <16 x i1>, <16 x i32>)",
        "declare <16 x i16> @llvm.masked.expandload.v16i16(ptr, <16 x i1>, <16 x i16>)",
        "declare i16 @llvm.ctpop.i16(i16)",
        f"define i64 @{_DECODER_NAME}(ptr noalias %stream, ptr noalias %bounds, "
        "ptr noalias %slot_e, ptr noalias %slot_sym, i32 %prec, ptr noalias %out, i64 %steps, "
        "ptr noalias %states, ptr noalias %raw, i64 %nib) {",
        "entry:",
        "  %pi = insertelement <16 x i32> poison, i32 %prec, i64 0",
        "  %pv = shufflevector <16 x i32> %pi, <16 x i32> poison, <16 x i32> zeroinitializer",
        "  %one = shl i32 1, %prec",
        "  %mk = sub i32 %one, 1",
        "  %mi = insertelement <16 x i32> poison, i32 %mk, i64 0",
        "  %mv = shufflevector <16 x i32> %mi, <16 x i32> poison, <16 x i32> zeroinitializer",
        "  %nibp = getelementptr i8, ptr %raw, i64 %nib",
    ]
    add = lines.append
    for g in range(2):
        add(f"  %bp{g} = getelementptr i64, ptr %bounds, i64 {2 * g}")
        add(f"  %p0_{g} = load i64, ptr %bp{g}")
        add(f"  %be{g} = getelementptr i64, ptr %bounds, i64 {2 * g + 1}")
        add(f"  %end{g} = load i64, ptr %be{g}")
        add(f"  %sp{g} = getelementptr i32, ptr %states, i64 {16 * g}")
        add(f"  %x0_{g} = load <16 x i32>, ptr %sp{g}, align 4")
    add(f"  %last1 = sub i64 %end1, {VECTOR_READ}")
    add("  br label %check")
    add("check:")
    add("  %k = phi i64 [0, %entry], [%k1, %step]")
    for g in range(2):
        add(f"  %x{g} = phi <16 x i32> [%x0_{g}, %entry], [%xn{g}, %step]")
        add(f"  %p{g} = phi i64 [%p0_{g}, %entry], [%pn{g}, %step]")
    # stop at the last step, or when a load could pass the end of the body: substream 0
    # is followed by substream 1 (at least 64 bytes), the last one must hold 32 more
    add("  %more = icmp ult i64 %k, %steps")
    add("  %in0 = icmp ule i64 %p0, %end0")
    add(f"  %in1 = icmp ule i64 %p1, %last1")
    add("  %in = and i1 %in0, %in1")
    add("  %go = and i1 %more, %in")
    add("  br i1 %go, label %step, label %exit")
    add("step:")
    add("  %ob = mul i64 %k, 32")
    for g in range(2):
        add(f"  %i{g} = and <16 x i32> %x{g}, %mv")
        add(f"  %pe{g} = getelementptr i32, ptr %slot_e, <16 x i32> %i{g}")
        add(f"  %e{g} = call <16 x i32> @llvm.masked.gather.v16i32.v16p0(<16 x ptr> %pe{g}, i32 4, "
            "<16 x i1> splat (i1 true), <16 x i32> poison)")
        add(f"  %ps{g} = getelementptr i32, ptr %slot_sym, <16 x i32> %i{g}")
        add(f"  %s{g} = call <16 x i32> @llvm.masked.gather.v16i32.v16p0(<16 x ptr> %ps{g}, i32 4, "
            "<16 x i1> splat (i1 true), <16 x i32> poison)")
        # the value: symbol << 20 (the table holds it shifted), nibble << 16, low 16 bits
        add(f"  %o{g} = add i64 %ob, {16 * g}")
        add(f"  %lp{g} = getelementptr i16, ptr %raw, i64 %o{g}")
        add(f"  %lo{g} = load <16 x i16>, ptr %lp{g}, align 1")
        add(f"  %lw{g} = zext <16 x i16> %lo{g} to <16 x i32>")
        add(f"  %no{g} = lshr i64 %o{g}, 1")
        add(f"  %np{g} = getelementptr i8, ptr %nibp, i64 %no{g}")
        add(f"  %nb{g} = load <8 x i8>, ptr %np{g}, align 1")
        add(f"  %nd{g} = shufflevector <8 x i8> %nb{g}, <8 x i8> poison, <16 x i32> "
            "<i32 0, i32 0, i32 1, i32 1, i32 2, i32 2, i32 3, i32 3, "
            "i32 4, i32 4, i32 5, i32 5, i32 6, i32 6, i32 7, i32 7>")
        add(f"  %nw{g} = zext <16 x i8> %nd{g} to <16 x i32>")
        add(f"  %ns{g} = lshr <16 x i32> %nw{g}, <i32 0, i32 4, i32 0, i32 4, i32 0, i32 4, "
            "i32 0, i32 4, i32 0, i32 4, i32 0, i32 4, i32 0, i32 4, i32 0, i32 4>")
        add(f"  %nm{g} = and <16 x i32> %ns{g}, splat (i32 15)")
        add(f"  %nh{g} = shl <16 x i32> %nm{g}, splat (i32 16)")
        add(f"  %v1_{g} = or <16 x i32> %s{g}, %lw{g}")
        add(f"  %v2_{g} = or <16 x i32> %v1_{g}, %nh{g}")
        add(f"  %op{g} = getelementptr i32, ptr %out, i64 %o{g}")
        add(f"  store <16 x i32> %v2_{g}, ptr %op{g}, align 4")
        # the state: f * (x >> precision) + (slot - cumulative frequency), then the words
        add(f"  %f{g} = and <16 x i32> %e{g}, splat (i32 65535)")
        add(f"  %b{g} = lshr <16 x i32> %e{g}, splat (i32 16)")
        add(f"  %q{g} = lshr <16 x i32> %x{g}, %pv")
        add(f"  %m{g} = mul <16 x i32> %f{g}, %q{g}")
        add(f"  %xa{g} = add <16 x i32> %m{g}, %b{g}")
        add(f"  %u{g} = icmp ult <16 x i32> %xa{g}, splat (i32 65536)")
        add(f"  %wp{g} = getelementptr i8, ptr %stream, i64 %p{g}")
        add(f"  %w{g} = call <16 x i16> @llvm.masked.expandload.v16i16(ptr %wp{g}, <16 x i1> %u{g}, "
            "<16 x i16> zeroinitializer)")
        add(f"  %ww{g} = zext <16 x i16> %w{g} to <16 x i32>")
        add(f"  %xs{g} = shl <16 x i32> %xa{g}, splat (i32 16)")
        add(f"  %xo{g} = or <16 x i32> %xs{g}, %ww{g}")
        add(f"  %xn{g} = select <16 x i1> %u{g}, <16 x i32> %xo{g}, <16 x i32> %xa{g}")
        add(f"  %ub{g} = bitcast <16 x i1> %u{g} to i16")
        add(f"  %c{g} = call i16 @llvm.ctpop.i16(i16 %ub{g})")
        add(f"  %cw{g} = zext i16 %c{g} to i64")
        add(f"  %c2_{g} = shl i64 %cw{g}, 1")
        add(f"  %pn{g} = add i64 %p{g}, %c2_{g}")
    add("  %k1 = add i64 %k, 1")
    add("  br label %check")
    add("exit:")
    for g in range(2):
        add(f"  store <16 x i32> %x{g}, ptr %sp{g}, align 4")
        add(f"  store i64 %p{g}, ptr %bp{g}")
    add("  ret i64 %k")
    add("}")
    return "\n".join(lines)


@intrinsic
def _vector_steps(typingctx, stream, bounds, slot_table, symbol_table, precision, out, steps,
                  states, raw):
    """Run the IR of ``_decoder_ir`` on these arrays (Numba intrinsic)."""
    sig = types.int64(stream, bounds, slot_table, symbol_table, precision, out, steps, states, raw)

    def codegen(context, builder, signature, args):
        context.active_code_library.add_llvm_module(llvm.parse_assembly(_decoder_ir()))
        ptr = ir.PointerType()
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(i64, [ptr, ptr, ptr, ptr, ir.IntType(32), ptr, i64, ptr, ptr, i64])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _DECODER_NAME)
        arrays = {}
        for index in (0, 1, 2, 3, 5, 7, 8):
            arrays[index] = context.make_array(signature.args[index])(context, builder, args[index])
        data = {index: builder.bitcast(a.data, ptr) for index, a in arrays.items()}
        n = builder.extract_value(arrays[5].shape, 0)
        nibbles = builder.mul(n, ir.Constant(i64, 2))
        prec = builder.trunc(args[4], ir.IntType(32))
        return builder.call(fn, [data[0], data[1], data[2], data[3], prec, data[5], args[6],
                                 data[7], data[8], nibbles])

    return sig, codegen


@njit(nogil=True, cache=True)
def decode_vector(stream, slot_table, slot_symbol, precision, out, raw, symbol_table):
    """``decode_scalar`` for a uint32 ``out`` with raw low bits, by vector steps.

    ``symbol_table`` (uint32, the slot table's size) is scratch space.
    """
    n = out.size
    bounds = np.empty(4, dtype=np.int64)
    states = np.empty(LANES, dtype=np.uint32)
    if not _parse(stream, bounds):
        return STATUS_CORRUPT
    _load_states(stream, bounds, states)
    for k in range(1 << precision):
        symbol_table[k] = np.uint32(slot_symbol[k]) << np.uint32(20)
    done = _vector_steps(stream, bounds, slot_table, symbol_table, np.int64(precision), out,
                         np.int64(n // LANES), states, raw)
    if not _scalar_steps(stream, bounds, slot_table, slot_symbol, precision, out, raw, states,
                         done * LANES, True):
        return STATUS_CORRUPT
    return _finish(bounds, states)
