"""32-lane rANS streams (entropy backend 2), coded 16 lanes at a time with AVX-512.

Same coder as ``kernels.rans`` (``kernels.rans_core``'s steps: 32-bit states in
``[2**16, 2**32)``, 16-bit words, the same tables), with a layout made for vector code
(docs/format.md 2.2b):

* symbol ``i`` belongs to step ``i // 32`` and lane ``i % 32``; lanes 0-15 form group 0,
  lanes 16-31 group 1, and each group has its own substream;
* the decoder takes the steps in order; in a step each group decodes its 16 symbols, then
  its lanes whose state fell below ``2**16`` read one word each, in lane order;
* body: varint byte length of substream 0 (substream 1 takes the rest); each substream
  is its 16 final states (u32, little endian, lane order) then its words in the order the
  decoder reads them. The decoder returns ``STATUS_OK`` only when every lane is back at
  ``RANS_L`` and each substream was read to its last byte.

The vector steps are LLVM IR (``_decoder_ir``, ``_encoder_ir``, around ``rans_core``'s
``ir_decode_step``/``ir_encode_step``) linked into Numba kernels by intrinsics, because
Numba cannot express them: per 16 lanes the decoder does one gather
from each slot table, a multiply and an expanding load of the words; the encoder gathers
the frequencies and reciprocals and writes the overflowing lanes' words compressed in a
register with a masked store. On the AMD EPYC (Zen 4) of these machines: 0.95 ns per
float32 decoded (raw bits merged) against 2.05 for the 8-lane decoder, 1.05 ns encoded
against 2.5. The IR uses LLVM's target-independent intrinsics, so it is correct anywhere;
where the CPU lacks AVX-512 VBMI2 (or Numba compiles for a generic CPU) the scalar kernels
here code the same layout (``decode_scalar``, ``_encode_substreams(vector=False)``), and
the tests hold the vector kernels to them byte for byte. All arithmetic is integer.
"""

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import config as numba_config
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .bits import merge_low_bits_shifted
from .memory import copy_bytes
from .rans_core import (FLOAT32_RAW_BITS, RANS_L, STATE_BITS, STATE_BYTES, STATUS_CORRUPT, STATUS_OK,
                        WORD_BITS, WORD_BYTES, decode_advance, decode_step, encode_step, flush_state,
                        ir_decode_step, ir_encode_step, ir_merge_float32, ir_nibbles, read_state, read_varint,
                        read_word, store_symbol, varint_size, write_varint)

#: the entropy backend byte of streams in this layout (entropy.BACKEND_NUMBA32)
BACKEND_ID = 2
LANES = 32
GROUP_LANES = 16
#: streams shorter than this keep the 8-lane layout: 32 states take 85 bytes more than its
#: 8 states and 7 lengths, 0.16% of an exact chunk of 2**14 float32 (3.3 bytes each)
MIN_SYMBOLS = 1 << 14
#: an expanding load takes up to 32 bytes: the vector steps stop (and the scalar ones
#: finish) when the last substream has fewer left
VECTOR_READ = 32
_U = np.uint64


def _has_vector_kernels():
    # Numba compiles for the host CPU unless told otherwise (NUMBA_CPU_NAME=generic for
    # portable caches): then the vector IR would be emulated, slower than the scalar kernels
    if numba_config.CPU_NAME not in (None, "host"):
        return False
    features = llvm.get_host_cpu_features()
    return all(features.get(name, False) for name in ("avx512f", "avx512bw", "avx512vbmi2"))


#: True when this CPU runs the vector decoder natively (else ``decode_scalar`` is used)
VECTOR = _has_vector_kernels()
#: the encoder's vector steps (the same bytes as its scalar ones, which other CPUs take)
VECTOR_ENCODE = VECTOR


def encode_scratch_size(n):
    """Bytes of scratch space ``encode_into`` needs for ``n`` symbols."""
    steps = (n + LANES - 1) // LANES
    return 2 * (2 * GROUP_LANES * steps + 4 * GROUP_LANES + 8)


def _splat(name, vector, element, value):
    """IR setting ``%name`` to the ``vector`` type with every lane ``value`` (an ``element``)."""
    return [f"  %{name}_i = insertelement {vector} poison, {element} {value}, i64 0",
            f"  %{name} = shufflevector {vector} %{name}_i, {vector} poison, <16 x i32> zeroinitializer"]


def _shift_line(bits):
    """IR giving ``%shw``, the i32 ``%shift`` in the values' width."""
    if bits == 32:
        return "  %shw = or i32 %shift, 0"
    return f"  %shw = {'trunc' if bits < 32 else 'zext'} i32 %shift to i{bits}"


def _open_groups(add, positions, stride):
    """IR loading each group's byte position (``%p0_{g}``, i64 ``positions[stride * g]``
    at ``%pp{g}``) and its 16 states (``%x0_{g}``, at ``%sp{g}``)."""
    for g in range(2):
        add(f"  %pp{g} = getelementptr i64, ptr %{positions}, i64 {stride * g}")
        add(f"  %p0_{g} = load i64, ptr %pp{g}")
        add(f"  %sp{g} = getelementptr i32, ptr %states, i64 {GROUP_LANES * g}")
        add(f"  %x0_{g} = load <16 x i32>, ptr %sp{g}, align 4")


def _state_phis(add, x, p):
    """IR naming each group's states ``%{x}{g}`` and position ``%{p}{g}``: the loaded ones
    coming from the entry block, the stepped ones (``%xn{g}``, ``%pn{g}``) from ``step``."""
    for g in range(2):
        add(f"  %{x}{g} = phi <16 x i32> [%x0_{g}, %entry], [%xn{g}, %step]")
        add(f"  %{p}{g} = phi i64 [%p0_{g}, %entry], [%pn{g}, %step]")


def _close_groups(add, x, p):
    """IR storing each group's states ``%{x}{g}`` and position ``%{p}{g}`` back."""
    for g in range(2):
        add(f"  store <16 x i32> %{x}{g}, ptr %sp{g}, align 4")
        add(f"  store i64 %{p}{g}, ptr %pp{g}")


def _encoder_ir(name, bits):
    """LLVM IR of the encoder's vector steps for ``bits``-bit values: ``void f(values,
    steps, shift, table, precision, scratch, positions, states)`` codes steps
    ``steps - 1 .. 0`` of both groups backwards into ``scratch`` from ``positions``
    (i64 x 2, updated) with the states (u32 x 32, updated). ``table`` is
    ``rans.encoder_table`` seen as u32 pairs (frequency | cumulative << 16, reciprocal)."""
    vec = f"<16 x i{bits}>"
    lines = [
        "declare <16 x i32> @llvm.masked.gather.v16i32.v16p0(<16 x ptr>, i32 immarg, <16 x i1>, <16 x i32>)",
        "declare <16 x i16> @llvm.experimental.vector.compress.v16i16(<16 x i16>, <16 x i1>, <16 x i16>)",
        "declare void @llvm.masked.store.v16i16.p0(<16 x i16>, ptr, i32 immarg, <16 x i1>)",
        "declare i16 @llvm.ctpop.i16(i16)",
        f"define void @{name}(ptr noalias %values, i64 %steps, i32 %shift, ptr noalias %table, "
        "i32 %prec, ptr noalias %scratch, ptr noalias %positions, ptr noalias %states) {",
        "entry:",
        _shift_line(bits),
        *_splat("sv", vec, f"i{bits}", "%shw"),
        f"  %up = sub i32 {STATE_BITS}, %prec",
        *_splat("uv", "<16 x i32>", "i32", "%up"),
        "  %tot = shl i32 1, %prec",
        *_splat("tv", "<16 x i32>", "i32", "%tot"),
    ]
    add = lines.append
    _open_groups(add, "positions", 1)
    add("  %none = icmp eq i64 %steps, 0")
    add("  br i1 %none, label %exit, label %step")
    add("step:")
    add("  %k = phi i64 [%steps, %entry], [%k1, %step]")
    _state_phis(add, "x", "p")
    add("  %k1 = sub i64 %k, 1")
    add(f"  %ob = mul i64 %k1, {LANES}")
    for g in range(2):
        add(f"  %o{g} = add i64 %ob, {GROUP_LANES * g}")
        add(f"  %vp{g} = getelementptr i{bits}, ptr %values, i64 %o{g}")
        add(f"  %vl{g} = load {vec}, ptr %vp{g}, align 1")
        add(f"  %vs{g} = lshr {vec} %vl{g}, %sv")
        if bits == 32:
            add(f"  %sy{g} = or <16 x i32> %vs{g}, zeroinitializer")
        else:
            add(f"  %sy{g} = {'zext' if bits < 32 else 'trunc'} {vec} %vs{g} to <16 x i32>")
        add(f"  %ia{g} = shl <16 x i32> %sy{g}, splat (i32 1)")
        add(f"  %ib{g} = or <16 x i32> %ia{g}, splat (i32 1)")
        add(f"  %pa{g} = getelementptr i32, ptr %table, <16 x i32> %ia{g}")
        add(f"  %fc{g} = call <16 x i32> @llvm.masked.gather.v16i32.v16p0(<16 x ptr> %pa{g}, i32 4, "
            "<16 x i1> splat (i1 true), <16 x i32> poison)")
        add(f"  %pb{g} = getelementptr i32, ptr %table, <16 x i32> %ib{g}")
        add(f"  %rc{g} = call <16 x i32> @llvm.masked.gather.v16i32.v16p0(<16 x ptr> %pb{g}, i32 4, "
            "<16 x i1> splat (i1 true), <16 x i32> poison)")
        ir_encode_step(add, g, lambda g: lines.extend(_splat(f"cv{g}", "<16 x i16>", "i16", f"%cn{g}")))
    add("  %more = icmp ugt i64 %k1, 0")
    add("  br i1 %more, label %step, label %exit")
    add("exit:")
    _state_phis(add, "xe", "pe")
    _close_groups(add, "xe", "pe")
    add("  ret void")
    add("}")
    return "\n".join(lines)


@intrinsic
def _vector_encode_steps(typingctx, values, steps, shift, table, precision, scratch, positions, states):
    """Run the IR of ``_encoder_ir`` for these arrays (Numba intrinsic)."""
    bits = values.dtype.bitwidth
    name = f"spherecodec_rans32_encode_u{bits}"
    sig = types.void(values, steps, shift, table, precision, scratch, positions, states)

    def codegen(context, builder, signature, args):
        context.active_code_library.add_llvm_module(llvm.parse_assembly(_encoder_ir(name, bits)))
        ptr = ir.PointerType()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr, ir.IntType(64), i32, ptr, i32, ptr, ptr, ptr])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        data = {}
        for index in (0, 3, 5, 6, 7):
            array = context.make_array(signature.args[index])(context, builder, args[index])
            data[index] = builder.bitcast(array.data, ptr)
        builder.call(fn, [data[0], args[1], builder.trunc(args[2], i32), data[3],
                          builder.trunc(args[4], i32), data[5], data[6], data[7]])
        return context.get_dummy_value()

    return sig, codegen


@njit(nogil=True, cache=True)
def encode_into(values, shift, table, precision, scratch, out, pos, vector):
    """Encode the symbols ``values >> shift`` (``shift`` uint64) at ``out[pos:]`` in the
    32-lane layout: the body's byte length (varint), then the body; return the position
    after it. ``table`` comes from ``rans.encoder_table``; ``scratch`` holds
    ``encode_scratch_size(n)`` bytes, ``out`` as many from ``pos``; ``vector``: the
    AVX-512 steps (``VECTOR_ENCODE``), the same bytes. ``rans.encode_stream_32`` calls it."""
    p0, p1 = _encode_substreams(values, shift, table, precision, scratch, vector)
    cap = scratch.size // 2
    len0 = cap - p0
    len1 = 2 * cap - p1
    pos = write_varint(out, pos, varint_size(len0) + len0 + len1)
    pos = write_varint(out, pos, len0)
    copy_bytes(out, pos, scratch, p0, len0)
    copy_bytes(out, pos + len0, scratch, p1, len1)
    return pos + len0 + len1


@njit(nogil=True, cache=True)
def _encode_substreams(values, shift, table, precision, scratch, vector):
    """Code both substreams backwards into the halves of ``scratch``; return where they
    start. ``vector``: the whole steps by ``_encoder_ir``'s kernel (same bytes)."""
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
                    x[j], p1 = encode_step(x[j], table[values[i] >> shift], precision, scratch, p1)
                else:
                    x[j], p0 = encode_step(x[j], table[values[i] >> shift], precision, scratch, p0)
    if vector:
        positions = np.array([p0, p1], dtype=np.int64)
        states = x.astype(np.uint32)
        _vector_encode_steps(values, np.int64(full), np.int64(shift), table.view(np.uint32),
                             np.int64(precision), scratch, positions, states)
        p0, p1 = positions[0], positions[1]
        for j in range(LANES):  # a loop, not a slice assignment (whose error path is slow to compile)
            x[j] = states[j]
    else:
        for s in range(full - 1, -1, -1):
            base = s * LANES
            for j in range(LANES - 1, GROUP_LANES - 1, -1):
                x[j], p1 = encode_step(x[j], table[values[base + j] >> shift], precision, scratch, p1)
            for j in range(GROUP_LANES - 1, -1, -1):
                x[j], p0 = encode_step(x[j], table[values[base + j] >> shift], precision, scratch, p0)
    for j in range(LANES - 1, GROUP_LANES - 1, -1):
        p1 = flush_state(x[j], scratch, p1)
    for j in range(GROUP_LANES - 1, -1, -1):
        p0 = flush_state(x[j], scratch, p0)
    return p0, p1


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
        start = bounds[2 * g] - STATE_BYTES * GROUP_LANES
        for j in range(GROUP_LANES):
            states[GROUP_LANES * g + j] = read_state(stream, start + STATE_BYTES * j)


@njit
def _scalar_steps(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, first, fused):
    """Decode symbols ``first ..`` to the end of ``out`` one lane at a time (states in
    ``[2**16, 2**32)``, as in the vector decoder); False if a word lies past its substream."""
    n = out.size
    nibbles = 2 * n
    mask = np.int64((1 << precision) - 1)
    for i in range(first, n):
        j = i % LANES
        g = j // GROUP_LANES
        x = np.int64(states[j])
        k = _U(x & mask)
        store_symbol(out, i, slot_symbol[k], raw, nibbles, fused)
        x = decode_advance(x, slot_table[k], precision)
        if x < RANS_L:
            p = bounds[2 * g]
            if p + WORD_BYTES > bounds[2 * g + 1]:
                return False
            x = (x << WORD_BITS) | read_word(stream, _U(p))
            bounds[2 * g] = p + WORD_BYTES
        states[j] = x
    return True


@njit(inline="always")
def _lane_step(stream, slot_table, slot_symbol, mask, precision, out, raw, nibbles, fused, x, i, p, last):
    # one lane of a whole step: emit symbol i, update the state, read a word if it fell
    # below 2**16 (loaded at a clamped position; overruns show in the final position check)
    k = _U(x & mask)
    store_symbol(out, i, slot_symbol[k], raw, nibbles, fused)
    return decode_step(np.int64(x), slot_table[k], precision, stream, p, last)


@njit
def _scalar_full_steps(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, fused):
    """The whole steps of ``out`` one lane at a time; returns the steps done (all)."""
    nibbles = 2 * out.size
    mask = np.int64((1 << precision) - 1)
    p0, e0, p1, e1 = bounds[0], bounds[1], bounds[2], bounds[3]
    last0 = max(e0 - 2, 0)
    last1 = max(e1 - 2, 0)
    steps = out.size // LANES
    for s in range(steps):
        base = s * LANES
        for j in range(GROUP_LANES):
            states[j], p0 = _lane_step(stream, slot_table, slot_symbol, mask, precision, out, raw, nibbles,
                                       fused, states[j], base + j, p0, last0)
        for j in range(GROUP_LANES, LANES):
            states[j], p1 = _lane_step(stream, slot_table, slot_symbol, mask, precision, out, raw, nibbles,
                                       fused, states[j], base + j, p1, last1)
    bounds[0] = p0
    bounds[2] = p1
    return steps


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
    ``kernels.bits`` layout (``out`` receives ``rans_core.merge_float32``'s values).
    """
    bounds = np.empty(4, dtype=np.int64)
    states = np.empty(LANES, dtype=np.uint32)
    if not _parse(stream, bounds):
        return STATUS_CORRUPT
    _load_states(stream, bounds, states)
    if raw.size:
        done = _scalar_full_steps(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, True)
    else:
        done = _scalar_full_steps(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, False)
    # a position past its end is corruption (the clamped loads read garbage there)
    if bounds[0] > bounds[1] or bounds[2] > bounds[3]:
        return STATUS_CORRUPT
    ok = _scalar_steps(stream, bounds, slot_table, slot_symbol, precision, out, raw, states,
                       done * LANES, raw.size > 0)
    return _finish(bounds, states) if ok else STATUS_CORRUPT


def _decoder_ir(name, out_bits, fused, nibble=False):
    """LLVM IR of the vector steps: ``i64 f(stream, bounds, slot_table, symbol_table,
    precision, out, steps, states, raw, nibbles)``; returns the steps decoded, fewer than
    asked near the end of the body or when a read position passed its substream's end
    (the scalar steps take over from there). ``nibble``: each value's 4 raw bits are the
    nibble plane at ``raw`` and go in shifted left by the last argument (the symbols come
    shifted by 4 more from the symbol table): ``(symbol << 4 | nibble) << t`` in one pass."""
    lines = [
        "declare <16 x i32> @llvm.masked.gather.v16i32.v16p0(<16 x ptr>, i32 immarg, <16 x i1>, <16 x i32>)",
        "declare <16 x i16> @llvm.masked.expandload.v16i16(ptr, <16 x i1>, <16 x i16>)",
        "declare i16 @llvm.ctpop.i16(i16)",
        f"define i64 @{name}(ptr noalias %stream, ptr noalias %bounds, "
        "ptr noalias %slot_e, ptr noalias %slot_sym, i32 %prec, ptr noalias %out, i64 %steps, "
        "ptr noalias %states, ptr noalias %raw, i64 %nib) {",
        "entry:",
        *_splat("pv", "<16 x i32>", "i32", "%prec"),
        "  %one = shl i32 1, %prec",
        "  %mk = sub i32 %one, 1",
        *_splat("mv", "<16 x i32>", "i32", "%mk"),
        "  %nibp = getelementptr i8, ptr %raw, i64 %nib",
        "  %nibt = trunc i64 %nib to i32",
        *_splat("tv", "<16 x i32>", "i32", "%nibt"),
    ]
    add = lines.append
    _open_groups(add, "bounds", 2)
    for g in range(2):
        add(f"  %be{g} = getelementptr i64, ptr %bounds, i64 {2 * g + 1}")
        add(f"  %end{g} = load i64, ptr %be{g}")
    add(f"  %last1 = sub i64 %end1, {VECTOR_READ}")
    add("  br label %check")
    add("check:")
    add("  %k = phi i64 [0, %entry], [%k1, %step]")
    _state_phis(add, "x", "p")
    # stop at the last step, or when a load could pass the end of the body: substream 0
    # is followed by substream 1 (at least 64 bytes), the last one must hold 32 more
    add("  %more = icmp ult i64 %k, %steps")
    add("  %in0 = icmp ule i64 %p0, %end0")
    add("  %in1 = icmp ule i64 %p1, %last1")
    add("  %in = and i1 %in0, %in1")
    add("  %go = and i1 %more, %in")
    add("  br i1 %go, label %step, label %exit")
    add("step:")
    add(f"  %ob = mul i64 %k, {LANES}")
    for g in range(2):
        add(f"  %i{g} = and <16 x i32> %x{g}, %mv")
        add(f"  %pe{g} = getelementptr i32, ptr %slot_e, <16 x i32> %i{g}")
        add(f"  %e{g} = call <16 x i32> @llvm.masked.gather.v16i32.v16p0(<16 x ptr> %pe{g}, i32 4, "
            "<16 x i1> splat (i1 true), <16 x i32> poison)")
        add(f"  %ps{g} = getelementptr i32, ptr %slot_sym, <16 x i32> %i{g}")
        add(f"  %s{g} = call <16 x i32> @llvm.masked.gather.v16i32.v16p0(<16 x ptr> %ps{g}, i32 4, "
            "<16 x i1> splat (i1 true), <16 x i32> poison)")
        add(f"  %o{g} = add i64 %ob, {GROUP_LANES * g}")
        add(f"  %op{g} = getelementptr i{out_bits}, ptr %out, i64 %o{g}")
        if fused:
            ir_merge_float32(add, g)
        elif nibble:
            _ir_merge_nibble(add, g, out_bits)
        elif out_bits == 32:
            add(f"  store <16 x i32> %s{g}, ptr %op{g}, align 1")
        else:
            conv = "trunc" if out_bits < 32 else "zext"
            add(f"  %sw{g} = {conv} <16 x i32> %s{g} to <16 x i{out_bits}>")
            add(f"  store <16 x i{out_bits}> %sw{g}, ptr %op{g}, align 1")
        ir_decode_step(add, g)
    add("  %k1 = add i64 %k, 1")
    add("  br label %check")
    add("exit:")
    _close_groups(add, "x", "p")
    add("  ret i64 %k")
    add("}")
    return "\n".join(lines)


def _ir_merge_nibble(add, g, out_bits):
    # the 16 values from %o{g}: their nibbles shifted by %tv, ORed into the symbols %s{g}
    # (already shifted by the symbol table)
    ir_nibbles(add, g, "raw")
    add(f"  %nh{g} = shl <16 x i32> %nm{g}, %tv")
    add(f"  %v{g} = or <16 x i32> %s{g}, %nh{g}")
    if out_bits == 32:
        add(f"  store <16 x i32> %v{g}, ptr %op{g}, align 1")
    else:
        add(f"  %vw{g} = trunc <16 x i32> %v{g} to <16 x i{out_bits}>")
        add(f"  store <16 x i{out_bits}> %vw{g}, ptr %op{g}, align 1")


def _vector_steps_intrinsic(variant):
    """A Numba intrinsic running ``_decoder_ir``'s steps. ``variant``: "plain" (symbols, any
    unsigned output), "fused" (float32 values with their 20 raw bits; the last argument is
    ignored, the nibble plane follows the 16-bit plane) or "nibble" (values with 4 raw bits;
    the last argument is the shift ``t``)."""
    fused = variant == "fused"
    nibble = variant == "nibble"

    @intrinsic
    def steps_kernel(typingctx, stream, bounds, slot_table, symbol_table, precision, out, steps,
                     states, raw, extra):
        bits = out.dtype.bitwidth
        if (fused and bits != 32) or (nibble and bits not in (16, 32)):
            return None
        name = f"spherecodec_rans32_decode_{variant}_u{bits}"
        sig = types.int64(stream, bounds, slot_table, symbol_table, precision, out, steps, states, raw, extra)

        def codegen(context, builder, signature, args):
            context.active_code_library.add_llvm_module(
                llvm.parse_assembly(_decoder_ir(name, bits, fused, nibble)))
            ptr = ir.PointerType()
            i64 = ir.IntType(64)
            fnty = ir.FunctionType(i64, [ptr, ptr, ptr, ptr, ir.IntType(32), ptr, i64, ptr, ptr, i64])
            fn = cgutils.get_or_insert_function(builder.module, fnty, name)
            data = {}
            for index in (0, 1, 2, 3, 5, 7, 8):
                array = context.make_array(signature.args[index])(context, builder, args[index])
                data[index] = builder.bitcast(array.data, ptr)
            n = builder.extract_value(context.make_array(signature.args[5])(context, builder, args[5]).shape, 0)
            # the IR's last argument: the nibble plane's offset (fused: after n 16-bit fields),
            # or the shift of the nibble variant
            last = args[9] if nibble else builder.mul(n, ir.Constant(i64, 2))
            prec = builder.trunc(args[4], ir.IntType(32))
            return builder.call(fn, [data[0], data[1], data[2], data[3], prec, data[5], args[6],
                                     data[7], data[8], last])

        return sig, codegen

    return steps_kernel


#: Numba intrinsics running the IR of ``_decoder_ir``: values with raw low bits (uint32),
#: plain symbols (any unsigned output), values with a nibble of raw bits (uint16/uint32)
_vector_steps_fused = _vector_steps_intrinsic("fused")
_vector_steps_plain = _vector_steps_intrinsic("plain")
_vector_steps_nibble = _vector_steps_intrinsic("nibble")


@njit
def _vector_prologue(stream, slot_symbol, precision, symbol_table, shift):
    # (body well formed, bounds, states); symbol_table <- the symbols shifted left by `shift`
    bounds = np.empty(4, dtype=np.int64)
    states = np.empty(LANES, dtype=np.uint32)
    if not _parse(stream, bounds):
        return False, bounds, states
    _load_states(stream, bounds, states)
    for k in range(1 << precision):
        symbol_table[k] = np.uint32(slot_symbol[k]) << np.uint32(shift)
    return True, bounds, states


@njit
def _vector_epilogue(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, done, fused):
    # the scalar steps finish what the vector steps left (`done` steps decoded)
    if not _scalar_steps(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, done * LANES,
                         fused):
        return STATUS_CORRUPT
    return _finish(bounds, states)


@njit(nogil=True, cache=True)
def decode_vector(stream, slot_table, slot_symbol, precision, out, symbol_table):
    """``decode_scalar`` of plain symbols by vector steps (``symbol_table``: uint32
    scratch of the slot table's size)."""
    ok, bounds, states = _vector_prologue(stream, slot_symbol, precision, symbol_table, 0)
    if not ok:
        return STATUS_CORRUPT
    raw = np.empty(0, dtype=np.uint8)
    done = _vector_steps_plain(stream, bounds, slot_table, symbol_table, np.int64(precision),
                               out, np.int64(out.size // LANES), states, raw, np.int64(0))
    return _vector_epilogue(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, done, False)


@njit(nogil=True, cache=True)
def decode_vector_fused(stream, slot_table, slot_symbol, precision, out, raw, symbol_table):
    """``decode_scalar`` of float32 values (uint32 ``out``, ``raw`` their 20 low bits) by
    vector steps (``symbol_table``: uint32 scratch of the slot table's size)."""
    ok, bounds, states = _vector_prologue(stream, slot_symbol, precision, symbol_table, FLOAT32_RAW_BITS)
    if not ok:
        return STATUS_CORRUPT
    done = _vector_steps_fused(stream, bounds, slot_table, symbol_table, np.int64(precision),
                               out, np.int64(out.size // LANES), states, raw, np.int64(0))
    return _vector_epilogue(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, done, True)


@njit(nogil=True, cache=True)
def decode_vector_nibbles(stream, slot_table, slot_symbol, precision, out, raw, shift, symbol_table):
    """``decode_vector`` of values with 4 raw bits each (``raw``: their nibble plane, the
    ``kernels.bits`` layout) and ``shift`` zero low bits: ``out`` (uint16 or uint32) receives
    ``(symbol << 4 | nibble) << shift``, in the decoder's pass where the vector steps run
    (the scalar steps' tail is merged after them). Same status as ``decode_vector``."""
    ok, bounds, states = _vector_prologue(stream, slot_symbol, precision, symbol_table, 4 + shift)
    if not ok:
        return STATUS_CORRUPT
    done = _vector_steps_nibble(stream, bounds, slot_table, symbol_table, np.int64(precision),
                                out, np.int64(out.size // LANES), states, raw, np.int64(shift))
    empty = np.empty(0, dtype=np.uint8)
    status = _vector_epilogue(stream, bounds, slot_table, slot_symbol, precision, out, empty, states, done, False)
    start = done * LANES  # even: the tail's nibbles start at a byte
    merge_low_bits_shifted(out[start:], raw[start // 2:], 4, shift)
    return status
