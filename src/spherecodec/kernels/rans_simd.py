"""Wide rANS streams: 32 lanes (entropy backend 2) or 64 lanes (backend 3), coded 16
lanes at a time with AVX-512.

Same coder as ``kernels.rans`` (``kernels.rans_core``'s steps: 32-bit states in
``[2**16, 2**32)``, 16-bit words, the same tables), with a layout made for vector code
(docs/format.md 2.2b). A layout has ``groups`` groups of 16 lanes (2 or 4):

* symbol ``i`` belongs to step ``i // lanes`` and lane ``i % lanes``; lanes ``16 g`` to
  ``16 g + 15`` form group ``g``, and each group has its own substream;
* the decoder takes the steps in order; in a step each group decodes its 16 symbols, then
  its lanes whose state fell below ``2**16`` read one word each, in lane order;
* body: the byte lengths of substreams ``0 .. groups - 2`` (varints; the last substream
  takes the rest); each substream is its 16 final states (u32, little endian, lane
  order) then its words in the order the decoder reads them. The decoder returns
  ``STATUS_OK`` only when every lane is back at ``RANS_L`` and each substream was read to
  its last byte.

The decoder's steps are a chain per group (the state, a table lookup, a multiply, the
words' load): four groups keep twice as many chains in flight as two, which is why long
streams take the 64-lane layout (0.61 against 0.82 ns per symbol on the AMD EPYC of these
machines). The vector steps are LLVM IR (``_decoder_ir``, ``_encoder_ir``, around
``rans_core``'s ``ir_decode_step``/``ir_encode_step``) linked into Numba kernels by
intrinsics, because Numba cannot express them: per 16 lanes the decoder does two 64-bit
gathers from one table holding each slot's entry and symbol, a multiply and an expanding
load of the words; the encoder fetches each symbol's frequency and reciprocal the same
way (or by scalar loads where gathers are slow: ``_encode_kind``) and writes the overflowing lanes' words compressed in a register with a masked
store. On AVX2 (``VECTOR_ISA``), which has no expanding load, the decoder's steps take
8 lanes at a time and hand each half-group's next 8 words to its lanes with a permutation
(``vpermd``) at offsets from a table indexed by its mask (``_decoder_ir_avx2``: 1.4
against 3.3 ns per float32 for the scalar steps, 1.15 against 2.5 per bfloat16, in the
haswell build on the EPYC). The IR uses LLVM's target-independent intrinsics, so it is
correct anywhere; where neither applies (or Numba compiles for a generic CPU) the scalar
kernels here code the same layouts (``decode_scalar``, ``SUBSTREAM_ENCODERS[groups, ENCODE_SCALAR]``),
and the tests hold the vector kernels to them byte for byte. All arithmetic is integer.
"""

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import config as numba_config
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .bits import merge_low_bits_shifted
from .jit import callee
from .linking import link_ir_function
from .memory import copy_bytes
from .rans_core import (ENTRY_BITS, ENTRY_MASK, FLOAT32_RAW_BITS, RANS_L, STATE_BITS, STATE_BYTES,
                        STATUS_CORRUPT, STATUS_OK, WORD_BITS, WORD_BYTES, decode_advance, decode_step,
                        decode_step_in_bounds, encode_step, flush_state,
                        ir_decode_step, ir_encode_step, ir_merge_float32, ir_nibbles, read_state, read_varint,
                        read_word, store_symbol, varint_size, write_varint)

#: the entropy backend bytes of the two layouts (entropy.BACKEND_NUMBA32 / _NUMBA64)
BACKEND_ID = 2
BACKEND_ID_64 = 3
#: groups of 16 lanes per layout, by backend byte
GROUPS = {BACKEND_ID: 2, BACKEND_ID_64: 4}
LANES = 32
GROUP_LANES = 16
#: streams shorter than this keep the 8-lane layout: 32 states take 85 bytes more than its
#: 8 states and 7 lengths, 0.16% of an exact chunk of 2**14 float32 (3.3 bytes each)
MIN_SYMBOLS = 1 << 14
#: streams of this many symbols or more take the 64-lane layout: its 32 more states cost
#: 0.04% of a chunk of 2**16 float32, and it decodes 1.35x faster than the 32-lane one
MIN_SYMBOLS_64 = 1 << 16
#: an expanding load takes up to 32 bytes: the vector steps stop (and the scalar ones
#: finish) when the last substream has fewer left
VECTOR_READ = 32
_U = np.uint64


def _vector_isa():
    """The vector steps this build runs: "avx512" where Numba compiles for a host with
    AVX-512 VBMI2, "avx2" for a host with AVX2 or ``NUMBA_CPU_NAME=haswell`` (the portable
    AVX2 build), else None (the scalar kernels). Another named CPU, or a generic one, would
    have the IR emulated, slower than the scalar kernels."""
    name = numba_config.CPU_NAME
    if name not in (None, "host"):
        return "avx2" if name == "haswell" else None
    features = llvm.get_host_cpu_features()
    if all(features.get(flag, False) for flag in ("avx512f", "avx512bw", "avx512vbmi2")):
        return "avx512"
    return "avx2" if features.get("avx2", False) else None


#: which vector decoder steps this build runs ("avx512", "avx2" or None)
VECTOR_ISA = _vector_isa()
#: True when the vector decoder runs (else ``decode_scalar`` is used)
VECTOR = VECTOR_ISA is not None
#: the encoder's steps, all writing the same bytes: ENCODE_SCALAR (Numba code),
#: ENCODE_GATHER (vector steps fetching each lane's table entry with a hardware gather) or
#: ENCODE_LOADS (vector steps fetching them with one scalar load per lane, the symbol read
#: from the values in memory: no gather, no extraction from a vector register)
ENCODE_SCALAR, ENCODE_GATHER, ENCODE_LOADS = 0, 1, 2
ENCODE_KINDS = (ENCODE_SCALAR, ENCODE_GATHER, ENCODE_LOADS)


def _encode_kind():
    """The encoder steps for this build and host (``VECTOR_ENCODE``).

    AVX2 lacks the compressing shuffle the vector steps use, but LLVM's AVX2 form of it
    still beats the scalar steps 3x, so both vector ISAs take them. AMD's cores (LLVM's
    ``znver*``) gather slowly: on the Zen 4 EPYC of these machines a 1 MiB chunk of
    bfloat16 codes its steps in 0.90 ns per value with gathers and 0.54 with scalar loads
    (AVX2 build: 0.89 and 0.43). Intel's gathers are faster and the loads' inserts would
    queue on its one shuffle port, so other hosts keep the gathers, except in a build
    without AVX-512 (what an AVX2-only Intel CPU runs): there LLVM emulates the
    compressing shuffle and the masked stores in AVX2 and the scalar steps win (whole
    encode of the MiniLM sentences on the Xeon of December 7, ``NUMBA_CPU_NAME=haswell``
    with haswell's own features: 952-1,110 MB/s scalar against 803-947 with gathers and
    857-1,005 with loads; with AVX-512 the gathers win, 1,476 against 1,018).
    """
    if not VECTOR:
        return ENCODE_SCALAR
    if llvm.get_host_cpu_name().startswith("znver"):
        return ENCODE_LOADS
    return ENCODE_GATHER if _build_has_avx512() else ENCODE_SCALAR


def _build_has_avx512():
    """Whether Numba compiles this build with AVX-512: the features ``NUMBA_CPU_FEATURES``
    names when set, else the host's (Numba adds them to a named CPU too)."""
    if numba_config.CPU_FEATURES is not None:
        return "+avx512f" in numba_config.CPU_FEATURES
    return bool(llvm.get_host_cpu_features().get("avx512f", False))


#: which encoder steps ``entropy`` runs (the ENCODE_* kinds); tests run every kind
VECTOR_ENCODE = _encode_kind()
#: the vector decoders' table lookups: on AMD hosts half of the entries come from gathers
#: and half from scalar loads, so that the gather unit and the load ports work side by
#: side (Zen 4, AVX-512: 0.55 against 0.64 ns per bfloat16 symbol with gathers only, 0.56
#: with loads only; the AVX2 build: 0.72 against 0.79); elsewhere gathers only. Read when
#: the kernels compile (a test compiles the other choice in a child process).
DECODE_SPLIT_LOOKUPS = VECTOR and llvm.get_host_cpu_name().startswith("znver")
#: lanes per vector register in the decoder's IR: 16 (AVX-512) or 8 (AVX2: each group of 16
#: lanes is two halves, whose words an 8-lane gather fetches at offsets from a table)
VECTOR_WIDTH = 8 if VECTOR_ISA == "avx2" else GROUP_LANES
#: the AVX2 steps' table of word offsets: for each 8-bit mask of the lanes that read a
#: word, lane j's offset among those words (the set bits below j), after the slot table
PREFIX_ENTRIES = 256 * 8


def groups_for(n):
    """Groups of 16 lanes the wide layout gives a stream of ``n`` symbols (2 or 4)."""
    return 4 if n >= MIN_SYMBOLS_64 else 2


def backend_for(groups):
    """The entropy backend byte of the wide layout with ``groups`` groups."""
    return BACKEND_ID_64 if groups == 4 else BACKEND_ID


def encode_scratch_size(n, groups=2):
    """Bytes of scratch space ``encode_into_for`` needs for ``n`` symbols in ``groups`` groups:
    per group, a word per symbol at most, its states and 8 spare bytes."""
    lanes = GROUP_LANES * groups
    steps = (n + lanes - 1) // lanes
    return groups * (2 * GROUP_LANES * steps + 4 * GROUP_LANES + 8)


def _splat(name, vector, element, value, width=16):
    """IR setting ``%name`` to the ``vector`` type with every lane ``value`` (an ``element``)."""
    return [f"  %{name}_i = insertelement {vector} poison, {element} {value}, i64 0",
            f"  %{name} = shufflevector {vector} %{name}_i, {vector} poison, <{width} x i32> zeroinitializer"]


def _shift_line(bits):
    """IR giving ``%shw``, the i32 ``%shift`` in the values' width."""
    if bits == 32:
        return "  %shw = or i32 %shift, 0"
    return f"  %shw = {'trunc' if bits < 32 else 'zext'} i32 %shift to i{bits}"


def _open_groups(add, groups, positions, stride):
    """IR loading each group's byte position (``%p0_{g}``, i64 ``positions[stride * g]``
    at ``%pp{g}``) and its 16 states (``%x0_{g}``, at ``%sp{g}``)."""
    for g in range(groups):
        add(f"  %pp{g} = getelementptr i64, ptr %{positions}, i64 {stride * g}")
        add(f"  %p0_{g} = load i64, ptr %pp{g}")
        add(f"  %sp{g} = getelementptr i32, ptr %states, i64 {GROUP_LANES * g}")
        add(f"  %x0_{g} = load <16 x i32>, ptr %sp{g}, align 4")


def _state_phis(add, groups, x, p):
    """IR naming each group's states ``%{x}{g}`` and position ``%{p}{g}``: the loaded ones
    coming from the entry block, the stepped ones (``%xn{g}``, ``%pn{g}``) from ``step``."""
    for g in range(groups):
        add(f"  %{x}{g} = phi <16 x i32> [%x0_{g}, %entry], [%xn{g}, %step]")
        add(f"  %{p}{g} = phi i64 [%p0_{g}, %entry], [%pn{g}, %step]")


def _close_groups(add, groups, x, p):
    """IR storing each group's states ``%{x}{g}`` and position ``%{p}{g}`` back."""
    for g in range(groups):
        add(f"  store <16 x i32> %{x}{g}, ptr %sp{g}, align 4")
        add(f"  store i64 %{p}{g}, ptr %pp{g}")


_GATHER64 = "declare <8 x i64> @llvm.masked.gather.v8i64.v8p0(<8 x ptr>, i32 immarg, <8 x i1>, <8 x i64>)"
_HALVES = (", ".join(f"i32 {k}" for k in range(8)), ", ".join(f"i32 {k}" for k in range(8, 16)))
_EVEN_ODD = (", ".join(f"i32 {2 * k}" for k in range(16)), ", ".join(f"i32 {2 * k + 1}" for k in range(16)))


def _ir_scalar_lookups(add, tag, index, index_type, first, count, table):
    """IR loading the u64 ``table[index[first + k]]`` for ``k < count`` one by one (``index``:
    an i32 vector of ``index_type``) into a ``<count x i64>``; returns its name. The
    decoders' split lookups (``DECODE_SPLIT_LOOKUPS``); ``tag`` keeps the names apart."""
    built = "poison"
    for k in range(count):
        t = f"{k}_{tag}"
        add(f"  %hi{t} = extractelement {index_type} {index}, i32 {first + k}")
        add(f"  %hz{t} = zext i32 %hi{t} to i64")
        add(f"  %hp{t} = getelementptr i64, ptr %{table}, i64 %hz{t}")
        add(f"  %he{t} = load i64, ptr %hp{t}, align 8")
        add(f"  %hv{t} = insertelement <{count} x i64> {built}, i64 %he{t}, i32 {k}")
        built = f"%hv{t}"
    return built


def _ir_gather_pairs(add, g, index, table, low, high, split=False):
    """IR gathering the u64 ``table[index]`` of 16 lanes (``%{index}{g}``, i32) as two
    8-lane gathers, their low halves into ``%{low}{g}`` and high halves into ``%{high}{g}``
    (<16 x i32>): one gathered element per lane instead of one per lane and half.
    ``split``: lanes 8-15 load theirs one by one instead (``DECODE_SPLIT_LOOKUPS``)."""
    for h, part in enumerate(_HALVES):
        if split and h == 1:
            built = _ir_scalar_lookups(add, g, f"%{index}{g}", "<16 x i32>", 8, 8, table)
            add(f"  %gd{h}_{g} = bitcast <8 x i64> {built} to <16 x i32>")
            continue
        add(f"  %gi{h}_{g} = shufflevector <16 x i32> %{index}{g}, <16 x i32> poison, <8 x i32> <{part}>")
        add(f"  %gp{h}_{g} = getelementptr i64, ptr %{table}, <8 x i32> %gi{h}_{g}")
        add(f"  %gq{h}_{g} = call <8 x i64> @llvm.masked.gather.v8i64.v8p0(<8 x ptr> %gp{h}_{g}, i32 8, "
            "<8 x i1> splat (i1 true), <8 x i64> poison)")
        add(f"  %gd{h}_{g} = bitcast <8 x i64> %gq{h}_{g} to <16 x i32>")
    for name, part in zip((low, high), _EVEN_ODD):
        add(f"  %{name}{g} = shufflevector <16 x i32> %gd0_{g}, <16 x i32> %gd1_{g}, <16 x i32> <{part}>")


def _ir_load_entries(add, g, bits, low, high):
    """IR fetching the u64 ``table`` entries of group ``g``'s 16 symbols (the values from
    ``%o{g}`` shifted right by ``%shift64``) with one scalar load each, their low halves
    into ``%{low}{g}`` and high halves into ``%{high}{g}`` (<16 x i32>), as
    ``_ir_gather_pairs`` does with gathers."""
    for h in range(2):
        built = "poison"
        for k in range(8):
            lane, t = 8 * h + k, f"{h}_{k}_{g}"
            add(f"  %lo{t} = add i64 %o{g}, {lane}")
            add(f"  %la{t} = getelementptr i{bits}, ptr %values, i64 %lo{t}")
            add(f"  %lw{t} = load i{bits}, ptr %la{t}, align 1")
            add(f"  %lx{t} = zext i{bits} %lw{t} to i64" if bits < 64 else f"  %lx{t} = or i64 %lw{t}, 0")
            add(f"  %ls{t} = lshr i64 %lx{t}, %shift64")
            add(f"  %lp{t} = getelementptr i64, ptr %table, i64 %ls{t}")
            add(f"  %le{t} = load i64, ptr %lp{t}, align 8")
            add(f"  %lv{t} = insertelement <8 x i64> {built}, i64 %le{t}, i32 {k}")
            built = f"%lv{t}"
        add(f"  %gd{h}_{g} = bitcast <8 x i64> {built} to <16 x i32>")
    for name, part in zip((low, high), _EVEN_ODD):
        add(f"  %{name}{g} = shufflevector <16 x i32> %gd0_{g}, <16 x i32> %gd1_{g}, <16 x i32> <{part}>")


def _encoder_ir(name, bits, groups, loads):
    """LLVM IR of the encoder's vector steps for ``bits``-bit values: ``void f(values,
    steps, shift, table, precision, scratch, positions, states)`` codes steps
    ``steps - 1 .. 0`` of every group backwards into ``scratch`` from ``positions``
    (i64 x groups, updated) with the states (u32 x 16 groups, updated). ``table`` is
    ``rans.encoder_table`` (u64: frequency | cumulative << 16 | reciprocal << 32),
    read by gathers or, with ``loads``, by scalar loads (``_encode_kind``)."""
    vec = f"<16 x i{bits}>"
    lanes = GROUP_LANES * groups
    lines = [
        _GATHER64,
        "declare <16 x i16> @llvm.experimental.vector.compress.v16i16(<16 x i16>, <16 x i1>, <16 x i16>)",
        "declare void @llvm.masked.store.v16i16.p0(<16 x i16>, ptr, i32 immarg, <16 x i1>)",
        "declare i16 @llvm.ctpop.i16(i16)",
        f"define void @{name}(ptr noalias %values, i64 %steps, i32 %shift, ptr noalias %table, "
        "i32 %prec, ptr noalias %scratch, ptr noalias %positions, ptr noalias %states) {",
        "entry:",
        _shift_line(bits),
        *_splat("sv", vec, f"i{bits}", "%shw"),
        "  %shift64 = zext i32 %shift to i64",
        f"  %up = sub i32 {STATE_BITS}, %prec",
        *_splat("uv", "<16 x i32>", "i32", "%up"),
        *_splat("pv", "<16 x i32>", "i32", "%prec"),
    ]
    add = lines.append
    _open_groups(add, groups, "positions", 1)
    add("  %none = icmp eq i64 %steps, 0")
    add("  br i1 %none, label %exit, label %step")
    add("step:")
    add("  %k = phi i64 [%steps, %entry], [%k1, %step]")
    _state_phis(add, groups, "x", "p")
    add("  %k1 = sub i64 %k, 1")
    add(f"  %ob = mul i64 %k1, {lanes}")
    for g in range(groups):
        add(f"  %o{g} = add i64 %ob, {GROUP_LANES * g}")
        if loads:
            _ir_load_entries(add, g, bits, "fc", "rc")
        else:
            add(f"  %vp{g} = getelementptr i{bits}, ptr %values, i64 %o{g}")
            add(f"  %vl{g} = load {vec}, ptr %vp{g}, align 1")
            add(f"  %vs{g} = lshr {vec} %vl{g}, %sv")
            if bits == 32:
                add(f"  %sy{g} = or <16 x i32> %vs{g}, zeroinitializer")
            else:
                add(f"  %sy{g} = {'zext' if bits < 32 else 'trunc'} {vec} %vs{g} to <16 x i32>")
            _ir_gather_pairs(add, g, "sy", "table", "fc", "rc")
        ir_encode_step(add, g, lambda g: lines.extend(_splat(f"cv{g}", "<16 x i16>", "i16", f"%cn{g}")))
    add("  %more = icmp ugt i64 %k1, 0")
    add("  br i1 %more, label %step, label %exit")
    add("exit:")
    _state_phis(add, groups, "xe", "pe")
    _close_groups(add, groups, "xe", "pe")
    add("  ret void")
    add("}")
    return "\n".join(lines)


def _encode_steps_intrinsic(groups, loads):
    """A Numba intrinsic running ``_encoder_ir``'s steps for ``groups`` groups (``loads``:
    the table read by scalar loads, not gathers)."""

    @intrinsic
    def steps_kernel(typingctx, values, steps, shift, table, precision, scratch, positions, states):
        bits = values.dtype.bitwidth
        name = f"spherecodec_rans{GROUP_LANES * groups}_encode_u{bits}{'_loads' if loads else ''}"
        sig = types.void(values, steps, shift, table, precision, scratch, positions, states)

        def codegen(context, builder, signature, args):
            ir_text = _encoder_ir(name, bits, groups, loads)
            context.active_code_library.add_llvm_module(llvm.parse_assembly(ir_text))
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

    return steps_kernel


_gather_steps_2 = _encode_steps_intrinsic(2, False)
_gather_steps_4 = _encode_steps_intrinsic(4, False)
_load_steps_2 = _encode_steps_intrinsic(2, True)
_load_steps_4 = _encode_steps_intrinsic(4, True)


@njit(inline="always")
def encode_into_for(values, shift, table, precision, scratch, out, pos, vector, groups):
    """Encode the symbols ``values >> shift`` (``shift`` uint64) at ``out[pos:]`` in the
    wide layout of ``groups`` groups (2 or 4): the body's byte length (varint), then the
    body; return the position after it. ``table`` comes from ``rans.encoder_table``;
    ``scratch`` holds ``encode_scratch_size(n, groups)`` bytes, ``out`` as many from
    ``pos``; ``vector``: which steps (``VECTOR_ENCODE``'s kinds), the same bytes.

    For callers whose ``vector`` and ``groups`` are constants (a kernel built per layout
    and kind of steps, ``rans.wide_stream_encoder``): inlined there, the branches on them
    fold away and only that layout's substream encoder of that kind compiles (or loads
    from the cache: the small-blob kernel shares it)."""
    if groups == 4:
        if vector == ENCODE_LOADS:
            starts = _substreams_4_loads(values, shift, table, precision, scratch)
        elif vector == ENCODE_GATHER:
            starts = _substreams_4_gather(values, shift, table, precision, scratch)
        else:
            starts = _substreams_4_scalar(values, shift, table, precision, scratch)
    elif vector == ENCODE_LOADS:
        starts = _substreams_2_loads(values, shift, table, precision, scratch)
    elif vector == ENCODE_GATHER:
        starts = _substreams_2_gather(values, shift, table, precision, scratch)
    else:
        starts = _substreams_2_scalar(values, shift, table, precision, scratch)
    return _write_body(starts, scratch, out, pos, groups)


@callee
def _write_body(starts, scratch, out, pos, groups):
    # the body's byte length (varint), the substreams' lengths, then the substreams
    part = scratch.size // groups
    size = 0
    for g in range(groups):
        length = (g + 1) * part - starts[g]
        size += length + (varint_size(length) if g < groups - 1 else 0)
    pos = write_varint(out, pos, size)
    for g in range(groups - 1):
        pos = write_varint(out, pos, (g + 1) * part - starts[g])
    for g in range(groups):
        length = (g + 1) * part - starts[g]
        copy_bytes(out, pos, scratch, starts[g], length)
        pos += length
    return pos


@njit(inline="always")
def _encode_scalar_steps(values, shift, table, precision, scratch, x, starts, groups, first):
    # the partial last step if any (lanes past the end get no symbol), then the whole steps
    # from the last down to `first` (all of them when the vector steps do not run); lane j
    # of group g writes below starts[g], a group's lanes from the last to the first
    lanes = GROUP_LANES * groups
    n = values.size
    full = n // lanes
    if full * lanes < n:
        for j in range(lanes - 1, -1, -1):
            i = full * lanes + j
            if i < n:
                g = j // GROUP_LANES
                x[j], starts[g] = encode_step(x[j], table[values[i] >> shift], precision, scratch, starts[g])
    # unsigned indices and a shift of the values' own type spare Numba's negative-index
    # code: the generic build's steps (what ARM runs) 3.1 -> 2.7 ns per value
    shift = values.dtype.type(shift)
    for s in range(full - 1, first - 1, -1):
        for g in range(groups - 1, -1, -1):
            p = starts[g]
            base = _U(s * lanes + GROUP_LANES * g)
            for j in range(GROUP_LANES - 1, -1, -1):
                k = GROUP_LANES * g + j
                x[k], p = encode_step(x[k], table[values[base + _U(j)] >> shift], precision, scratch, p)
            starts[g] = p


@njit(inline="always")
def _encode_substreams_for(values, shift, table, precision, scratch, vector, groups):
    # every group's substream coded backwards into its part of `scratch` (`groups` parts),
    # the whole steps by `vector`'s kernels (_encoder_ir's unless ENCODE_SCALAR: the same
    # bytes); returns where each starts. Inlined where `groups` and `vector` are constants
    lanes = GROUP_LANES * groups
    full = values.size // lanes
    part = scratch.size // groups
    x = np.full(lanes, RANS_L, dtype=np.uint64)
    starts = np.empty(groups, dtype=np.int64)
    for g in range(groups):
        starts[g] = (g + 1) * part
    # the decoder reads a step's words in lane order after decoding it: the encoder, going
    # backwards, emits them in reverse lane order before coding the step
    if vector != ENCODE_SCALAR:
        _encode_scalar_steps(values, shift, table, precision, scratch, x, starts, groups, full)
        states = x.astype(np.uint32)
        steps, shift64, precision64 = np.int64(full), np.int64(shift), np.int64(precision)
        if vector == ENCODE_LOADS:
            if groups == 4:
                _load_steps_4(values, steps, shift64, table, precision64, scratch, starts, states)
            else:
                _load_steps_2(values, steps, shift64, table, precision64, scratch, starts, states)
        elif groups == 4:
            _gather_steps_4(values, steps, shift64, table, precision64, scratch, starts, states)
        else:
            _gather_steps_2(values, steps, shift64, table, precision64, scratch, starts, states)
        for j in range(lanes):  # a loop, not a slice assignment (whose error path is slow to compile)
            x[j] = states[j]
    else:
        _encode_scalar_steps(values, shift, table, precision, scratch, x, starts, groups, 0)
    for j in range(lanes - 1, -1, -1):
        g = j // GROUP_LANES
        starts[g] = flush_state(x[j], scratch, starts[g])
    return starts


def _substream_encoder(groups, vector):
    # _encode_substreams_for for one layout and kind of steps: a kernel (and cache entry) each
    @callee(nogil=True, cache=True)
    def encode_substreams_kernel(values, shift, table, precision, scratch):
        return _encode_substreams_for(values, shift, table, precision, scratch, vector, groups)

    return encode_substreams_kernel


# module globals (not closure cells), so that the kernels calling them can be cached
_substreams_2_scalar = _substream_encoder(2, ENCODE_SCALAR)
_substreams_2_gather = _substream_encoder(2, ENCODE_GATHER)
_substreams_2_loads = _substream_encoder(2, ENCODE_LOADS)
_substreams_4_scalar = _substream_encoder(4, ENCODE_SCALAR)
_substreams_4_gather = _substream_encoder(4, ENCODE_GATHER)
_substreams_4_loads = _substream_encoder(4, ENCODE_LOADS)
#: (groups, kind of steps) -> that substream encoder: ``f(values, shift, table, precision,
#: scratch)``, returning where each group's substream starts in ``scratch`` (the tests hold
#: the kinds to each other through it; kernels call the globals, which Numba can cache)
SUBSTREAM_ENCODERS = {
    (2, ENCODE_SCALAR): _substreams_2_scalar, (2, ENCODE_GATHER): _substreams_2_gather,
    (2, ENCODE_LOADS): _substreams_2_loads, (4, ENCODE_SCALAR): _substreams_4_scalar,
    (4, ENCODE_GATHER): _substreams_4_gather, (4, ENCODE_LOADS): _substreams_4_loads,
}


@callee
def _parse(stream, bounds, groups):
    # bounds <- (read position, end) of every substream; False if the body is malformed
    size = stream.size
    pos = 0
    total = 0
    for g in range(groups - 1):
        length, pos = read_varint(stream, pos, size)
        if pos < 0:
            return False
        bounds[2 * g + 1] = length
        total += length
    if total > size - pos:
        return False
    bounds[2 * groups - 1] = size - pos - total
    start = pos
    for g in range(groups):
        length = bounds[2 * g + 1]
        if length < 4 * GROUP_LANES or length % 2:
            return False
        bounds[2 * g] = start + 4 * GROUP_LANES
        bounds[2 * g + 1] = start + length
        start += length
    return True


@callee
def _load_states(stream, bounds, states, groups):
    for g in range(groups):
        start = bounds[2 * g] - STATE_BYTES * GROUP_LANES
        for j in range(GROUP_LANES):
            states[GROUP_LANES * g + j] = read_state(stream, start + STATE_BYTES * j)


@callee
def _scalar_steps(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, first, fused, groups):
    """Decode symbols ``first ..`` to the end of ``out`` one lane at a time (states in
    ``[2**16, 2**32)``, as in the vector decoder); False if a word lies past its substream."""
    lanes = GROUP_LANES * groups
    n = out.size
    nibbles = 2 * n
    mask = np.int64((1 << precision) - 1)
    for i in range(first, n):
        j = i % lanes
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


@njit(inline="always")
def _group_position(bounds, g):
    # group g's read position and the last one a word load may use (decode_step: clamped
    # there, an overrun shows in the final position check)
    return bounds[2 * g], max(bounds[2 * g + 1] - 2, 0)


@njit(inline="always")
def _scalar_full_steps(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, fused, groups):
    """The whole steps of ``out`` one lane at a time; returns the steps done (all).
    Inlined where ``groups`` is a constant, so that the lane loops have fixed bounds."""
    lanes = GROUP_LANES * groups
    nibbles = 2 * out.size
    mask = np.int64((1 << precision) - 1)
    steps = out.size // lanes
    for s in range(steps):
        base = s * lanes
        for g in range(groups):
            p, last = _group_position(bounds, g)
            for j in range(GROUP_LANES * g, GROUP_LANES * (g + 1)):
                states[j], p = _lane_step(stream, slot_table, slot_symbol, mask, precision, out, raw, nibbles,
                                          fused, states[j], base + j, p, last)
            bounds[2 * g] = p
    return steps


@njit(inline="always")
def _symbol_pair(stream, table, out, states, mask, precision, base, j, p):
    # lanes j and j + 1 of a fused step from ``base``: their head symbols out (placed as in
    # the float32), their states on; returns the group's read position after them (its
    # words in bounds: ``_fused_steps_at``'s batches)
    i = base + _U(j)
    x = np.int64(states[j])
    e = table[_U(x & mask)]
    states[j], p = decode_step_in_bounds(x, np.uint32(e), precision, stream, p)
    out[i] = np.uint32(e >> _U(32))
    x = np.int64(states[j + 1])
    e = table[_U(x & mask)]
    states[j + 1], p = decode_step_in_bounds(x, np.uint32(e), precision, stream, p)
    out[i + _U(1)] = np.uint32(e >> _U(32))
    return p


def _merge_low_bits_ir(name):
    """LLVM IR: ``void f(out, raw, nibp, first, end)`` ORs into values ``first .. end - 1``
    of ``out`` (i32; both multiples of 16) their 20 raw low bits, 16 at a time by the
    vector decoders' own merge (``rans_core.ir_merge_float32``: the 16-bit plane at
    ``raw``, the 4-bit one at ``nibp``). Generic vector types: SSE2 (x86-64's baseline) and
    NEON take each 16 in a few shuffles, where the loop in Numba vectorised poorly (6
    instructions a value)."""
    lines = [
        "define void @{name}(ptr noalias %out, ptr noalias %raw, ptr noalias %nibp, i64 %first, i64 %end) {{".format(
            name=name),
        "entry:",
        "  %none = icmp uge i64 %first, %end",
        "  br i1 %none, label %exit, label %loop",
        "loop:",
        "  %o = phi i64 [%first, %entry], [%o1, %loop]",
        "  %op = getelementptr i32, ptr %out, i64 %o",
        f"  %s = load <{GROUP_LANES} x i32>, ptr %op, align 4",
    ]
    ir_merge_float32(lines.append, "")
    lines += [
        f"  %o1 = add i64 %o, {GROUP_LANES}",
        "  %more = icmp ult i64 %o1, %end",
        "  br i1 %more, label %loop, label %exit",
        "exit:",
        "  ret void",
        "}",
    ]
    return "\n".join(lines)


@intrinsic
def _merge_low_bits(typingctx, out, raw, nibbles, first, end):
    """``_merge_low_bits_ir``'s loop on ``out`` (uint32) from the raw section ``raw``
    (uint8: its 16-bit plane first, its 4-bit plane from byte ``nibbles``)."""
    sig = types.void(out, raw, nibbles, first, end)

    def codegen(context, builder, signature, args):
        # a kernel that inlines the steps twice (two precisions) links the function twice
        ptr = ir.PointerType()
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(ir.VoidType(), [ptr, ptr, ptr, i64, i64])
        fn = link_ir_function(context, builder, "spherecodec_merge_low_bits", _merge_low_bits_ir, fnty)
        data = [builder.bitcast(context.make_array(signature.args[k])(context, builder, args[k]).data, ptr)
                for k in (0, 1)]
        nibble_plane = builder.gep(data[1], [context.cast(builder, args[2], signature.args[2], types.int64)])
        builder.call(fn, [data[0], data[1], nibble_plane,
                          context.cast(builder, args[3], signature.args[3], types.int64),
                          context.cast(builder, args[4], signature.args[4], types.int64)])
        return context.get_dummy_value()

    return sig, codegen


#: the table precision of every float32 chunk spherecodec writes (``rans.choose_precision``
#: for 4,096 head symbols; ``codecs.exact.ONE_CALL_PRECISION``): the scalar fused steps
#: are compiled for it as a constant, for immediate shifts and masks
FUSED_PRECISION = 14
#: the fused steps merge the raw low bits into this many steps' values at a time (their
#: values still in L1: 32 steps of 64 lanes, 8 KiB)
MERGE_STEPS = 32


@njit(inline="always")
def _scalar_fused_steps(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, groups):
    """``_scalar_full_steps`` of a fused float32 decode (``out`` uint32, ``raw`` its 20 low
    bits), two lanes at a time: one lookup per value in a table of slot entry | symbol
    placed as in the float32 (high half), the raw bits merged in after every
    ``MERGE_STEPS`` steps (``_merge_low_bits``). The generic build's steps, what ARM runs:
    2.7 -> 2.3 ns per value on the EPYC with the table; it costs ~1 ns per slot, hence
    ``_decode_scalar_body``'s threshold. Returns the steps done: all but the last few,
    which ``_scalar_steps`` checks word by word."""
    slots = 1 << precision
    table = np.empty(slots, dtype=np.uint64)
    for k in range(slots):
        table[k] = _U(slot_table[k]) | (_U(slot_symbol[k]) << _U(32 + FLOAT32_RAW_BITS))
    if precision == FUSED_PRECISION:
        return _fused_steps_at(stream, bounds, table, FUSED_PRECISION, out, raw, states, groups)
    return _fused_steps_at(stream, bounds, table, precision, out, raw, states, groups)


@njit(inline="always")
def _fused_steps_at(stream, bounds, table, precision, out, raw, states, groups):
    """The steps of ``_scalar_fused_steps`` (``precision`` a constant where it can be) in
    batches whose word loads all lie in ``stream``: a group's step reads at most one word
    a lane, so ``k`` steps are safe while every group has ``k`` steps' words left before
    the stream's end (reads past a group's own end stay in the stream and show in the final
    position check, as clamped ones did). No clamp, no clamp bound held for each group, and
    the precision a constant: in the generic build on the Xeon here the steps stopped
    spilling (21 instructions a value, no stack traffic) and, with ``_merge_low_bits`` and
    one chunk hashed at a time (``rans_blob.CHECKED_TOGETHER``), the whole decode went
    from 0.56 to 0.64-0.69 of ZipNN's (``benches/bench_cpus.py``).

    The groups' pairs go in turn (pair j of group 0, of group 1, ..., then pair j + 2):
    each group's read position is a chain of dependent additions, lane after lane, and
    interleaved the chains run side by side (generic build 5-7% faster end to end: 0.387
    -> 0.41 of ZipNN's decode, MiniLM and mpnet)."""
    lanes = GROUP_LANES * groups
    nibbles = _U(2 * out.size)
    mask = np.int64((1 << precision) - 1)
    steps = out.size // lanes
    step_bytes = WORD_BYTES * GROUP_LANES
    size = stream.size
    p0 = bounds[0]
    p1 = bounds[2]
    p2 = bounds[4] if groups == 4 else p0
    p3 = bounds[6] if groups == 4 else p0
    s = 0
    while s < steps:
        batch = min(steps - s, (size - max(max(p0, p1), max(p2, p3))) // step_bytes)
        if batch <= 0:
            break
        for block in range(s, s + batch, MERGE_STEPS):
            block_end = min(block + MERGE_STEPS, s + batch)
            for t in range(block, block_end):
                base = _U(t * lanes)
                for j in range(0, GROUP_LANES, 2):
                    p0 = _symbol_pair(stream, table, out, states, mask, precision, base, j, p0)
                    p1 = _symbol_pair(stream, table, out, states, mask, precision, base, j + GROUP_LANES, p1)
                    if groups == 4:
                        p2 = _symbol_pair(stream, table, out, states, mask, precision, base, j + 2 * GROUP_LANES,
                                          p2)
                        p3 = _symbol_pair(stream, table, out, states, mask, precision, base, j + 3 * GROUP_LANES,
                                          p3)
            _merge_low_bits(out, raw, nibbles, block * lanes, block_end * lanes)
        s += batch
    bounds[0] = p0
    bounds[2] = p1
    if groups == 4:
        bounds[4] = p2
        bounds[6] = p3
    return s


@callee
def _finish(bounds, states, groups):
    for g in range(groups):
        if bounds[2 * g] != bounds[2 * g + 1]:
            return STATUS_CORRUPT
    for j in range(GROUP_LANES * groups):
        if states[j] != RANS_L:
            return STATUS_CORRUPT
    return STATUS_OK


@njit(inline="always")
def _decode_scalar_body(stream, slot_table, slot_symbol, precision, out, raw, groups):
    bounds = np.empty(2 * groups, dtype=np.int64)
    states = np.empty(GROUP_LANES * groups, dtype=np.uint32)
    if not _parse(stream, bounds, groups):
        return STATUS_CORRUPT
    _load_states(stream, bounds, states, groups)
    if raw.size and out.size >= 8 << precision:  # its table is worth building (chunks, not small blobs)
        done = _scalar_fused_steps(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, groups)
    elif raw.size:
        done = _scalar_full_steps(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, True,
                                  groups)
    else:
        done = _scalar_full_steps(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, False,
                                  groups)
    # a position past its end is corruption (the clamped loads read garbage there)
    for g in range(groups):
        if bounds[2 * g] > bounds[2 * g + 1]:
            return STATUS_CORRUPT
    ok = _scalar_steps(stream, bounds, slot_table, slot_symbol, precision, out, raw, states,
                       done * GROUP_LANES * groups, raw.size > 0, groups)
    return _finish(bounds, states, groups) if ok else STATUS_CORRUPT


@njit(nogil=True, cache=True)
def decode_scalar(stream, slot_table, slot_symbol, precision, out, raw, groups):
    """Decode ``out.size`` symbols of a wide body ``stream`` of ``groups`` groups (2: the
    32-lane layout, 4: the 64-lane one); returns a status.

    Tables as ``rans.read_table`` builds them. ``raw`` is empty (``out`` receives the
    symbols) or, for a uint32 ``out``, the 20 low bits of every value in the
    ``kernels.bits`` layout (``out`` receives ``rans_core.merge_float32``'s values).
    """
    if groups == 4:
        return _decode_scalar_body(stream, slot_table, slot_symbol, precision, out, raw, 4)
    return _decode_scalar_body(stream, slot_table, slot_symbol, precision, out, raw, 2)


def _ir_next_step(add, groups):
    """IR ending the decoders' ``check`` block: on to ``step`` (which starts with ``%ob``, the
    step's first symbol) unless the steps are done or a load could pass the end of the
    body: a substream is followed by the next one (at least 64 bytes), the last one must
    hold 32 more (``%lastp``)."""
    add("  %go_s = icmp ult i64 %k, %steps")
    ready = "%go_s"
    for g in range(groups):
        limit = "%lastp" if g == groups - 1 else f"%end{g}"
        add(f"  %in{g} = icmp ule i64 %p{g}, {limit}")
        add(f"  %go{g} = and i1 {ready}, %in{g}")
        ready = f"%go{g}"
    add(f"  br i1 {ready}, label %step, label %exit")
    add("step:")
    add(f"  %ob = mul i64 %k, {GROUP_LANES * groups}")


def _decoder_ir(name, out_bits, fused, nibble, groups, streaming=False):
    """LLVM IR of the vector steps for ``groups`` groups: ``i64 f(stream, bounds, table,
    precision, out, steps, states, raw, nibbles)``; returns the steps decoded, fewer than
    asked near the end of the body or when a read position passed its substream's end
    (the scalar steps take over from there). ``table`` holds per slot the slot entry
    (low 32 bits) and the symbol, shifted as it goes into the output (high 32 bits).
    ``nibble``: each value's 4 raw bits are the nibble plane at ``raw`` and go in shifted
    left by the last argument (the symbols come shifted by 4 more from the table):
    ``(symbol << 4 | nibble) << t`` in one pass. ``streaming`` (fused only): the values
    go to memory by non-temporal stores (``out`` 64-byte aligned), fenced at the end."""
    lines = [
        _GATHER64,
        "declare void @llvm.x86.sse.sfence()",
        "declare <16 x i16> @llvm.masked.expandload.v16i16(ptr, <16 x i1>, <16 x i16>)",
        "declare i16 @llvm.ctpop.i16(i16)",
        f"define i64 @{name}(ptr noalias %stream, ptr noalias %bounds, ptr noalias %table, i32 %prec, "
        "ptr noalias %out, i64 %steps, ptr noalias %states, ptr noalias %raw, i64 %nib) {",
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
    _open_groups(add, groups, "bounds", 2)
    for g in range(groups):
        add(f"  %be{g} = getelementptr i64, ptr %bounds, i64 {2 * g + 1}")
        add(f"  %end{g} = load i64, ptr %be{g}")
    add(f"  %lastp = sub i64 %end{groups - 1}, {VECTOR_READ}")
    add("  br label %check")
    add("check:")
    add("  %k = phi i64 [0, %entry], [%k1, %step]")
    _state_phis(add, groups, "x", "p")
    _ir_next_step(add, groups)
    for g in range(groups):
        add(f"  %i{g} = and <16 x i32> %x{g}, %mv")
        _ir_gather_pairs(add, g, "i", "table", "e", "s", DECODE_SPLIT_LOOKUPS)
        add(f"  %o{g} = add i64 %ob, {GROUP_LANES * g}")
        add(f"  %op{g} = getelementptr i{out_bits}, ptr %out, i64 %o{g}")
        if fused:
            ir_merge_float32(add, g, streaming)
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
    _close_groups(add, groups, "x", "p")
    if streaming:
        add("  call void @llvm.x86.sse.sfence()")  # the streamed stores before any later one
    add("  ret i64 %k")
    add("}")
    if streaming:
        add("!0 = !{i32 1}")
    return "\n".join(lines)


def _decoder_ir_avx2(name, out_bits, fused, nibble, groups, streaming=False):
    """``_decoder_ir`` for 8-lane registers (AVX2): each group's 16 lanes are two halves.
    A half gathers its slot pairs in two 4-lane gathers (``vpgatherdq`` by its x86
    intrinsic: LLVM's target-independent gather becomes one scalar load per lane, with
    extracts and inserts, on the CPUs its cost model says gather slowly, Haswell and
    AMD's; with haswell's own features on the EPYC here those steps took 7.6-8.2 ms for
    24.6 MB of mpnet values, the gathers 6.1-6.5, as with the host's features); the lanes
    that fell below ``RANS_L`` take the next words in lane order by a permutation of the 8
    words at the position (``vpermd`` at ``table``'s prefix offsets for the half's mask;
    the second half's words follow the first's): no expanding load, which AVX2 lacks. x86
    only, as ``VECTOR_ISA`` chooses it. ``streaming``: as ``_decoder_ir``'s (``out``
    32-byte aligned is enough here)."""
    lanes = GROUP_LANES * groups
    v8 = "<8 x i32>"
    quads = (", ".join(f"i32 {k}" for k in range(4)), ", ".join(f"i32 {k}" for k in range(4, 8)))
    even_odd = (", ".join(f"i32 {2 * k}" for k in range(8)), ", ".join(f"i32 {2 * k + 1}" for k in range(8)))
    lines = [
        "declare <4 x i64> @llvm.x86.avx2.gather.d.q.256(<4 x i64>, ptr, <4 x i32>, <4 x i64>, i8)",
        "declare <8 x i32> @llvm.x86.avx2.permd(<8 x i32>, <8 x i32>)",
        "declare i8 @llvm.ctpop.i8(i8)",
        "declare void @llvm.x86.sse.sfence()",
        f"define i64 @{name}(ptr noalias %stream, ptr noalias %bounds, ptr noalias %table, i32 %prec, "
        "ptr noalias %out, i64 %steps, ptr noalias %states, ptr noalias %raw, i64 %nib) {",
        "entry:",
        *_splat("pv", v8, "i32", "%prec", 8),
        "  %one = shl i32 1, %prec",
        "  %mk = sub i32 %one, 1",
        *_splat("mv", v8, "i32", "%mk", 8),
        "  %slots = zext i32 %one to i64",
        "  %prefix = getelementptr i64, ptr %table, i64 %slots",
        "  %nibp = getelementptr i8, ptr %raw, i64 %nib",
        "  %nibt = trunc i64 %nib to i32",
        *_splat("tv", v8, "i32", "%nibt", 8),
    ]
    add = lines.append
    halves = [(g, h) for g in range(groups) for h in range(2)]
    for g in range(groups):
        add(f"  %pp{g} = getelementptr i64, ptr %bounds, i64 {2 * g}")
        add(f"  %p0_{g} = load i64, ptr %pp{g}")
        add(f"  %be{g} = getelementptr i64, ptr %bounds, i64 {2 * g + 1}")
        add(f"  %end{g} = load i64, ptr %be{g}")
    for g, h in halves:
        add(f"  %sp{g}_{h} = getelementptr i32, ptr %states, i64 {GROUP_LANES * g + 8 * h}")
        add(f"  %x0_{g}_{h} = load {v8}, ptr %sp{g}_{h}, align 4")
    add(f"  %lastp = sub i64 %end{groups - 1}, {VECTOR_READ}")
    add("  br label %check")
    add("check:")
    add("  %k = phi i64 [0, %entry], [%k1, %step]")
    for g in range(groups):
        add(f"  %p{g} = phi i64 [%p0_{g}, %entry], [%pn{g}, %step]")
    for g, h in halves:
        add(f"  %x{g}_{h} = phi {v8} [%x0_{g}_{h}, %entry], [%xn{g}_{h}, %step]")
    _ir_next_step(add, groups)
    for g, h in halves:
        t = f"{g}_{h}"
        add(f"  %i{t} = and {v8} %x{t}, %mv")
        for q, part in enumerate(quads):
            if q == 1 and DECODE_SPLIT_LOOKUPS:  # lanes 4-7 by scalar loads (DECODE_SPLIT_LOOKUPS)
                built = _ir_scalar_lookups(add, t, f"%i{t}", v8, 4, 4, "table")
                add(f"  %gd{q}_{t} = bitcast <4 x i64> {built} to {v8}")
                continue
            add(f"  %gi{q}_{t} = shufflevector {v8} %i{t}, {v8} poison, <4 x i32> <{part}>")
            add(f"  %gq{q}_{t} = call <4 x i64> @llvm.x86.avx2.gather.d.q.256(<4 x i64> zeroinitializer, "
                f"ptr %table, <4 x i32> %gi{q}_{t}, <4 x i64> splat (i64 -1), i8 8)")
            add(f"  %gd{q}_{t} = bitcast <4 x i64> %gq{q}_{t} to {v8}")
        add(f"  %e{t} = shufflevector {v8} %gd0_{t}, {v8} %gd1_{t}, {v8} <{even_odd[0]}>")
        add(f"  %s{t} = shufflevector {v8} %gd0_{t}, {v8} %gd1_{t}, {v8} <{even_odd[1]}>")
        add(f"  %o{t} = add i64 %ob, {GROUP_LANES * g + 8 * h}")
        add(f"  %op{t} = getelementptr i{out_bits}, ptr %out, i64 %o{t}")
        value = f"%s{t}"
        if fused or nibble:
            plane = "%nibp" if fused else "%raw"
            add(f"  %no{t} = lshr i64 %o{t}, 1")
            add(f"  %np{t} = getelementptr i8, ptr {plane}, i64 %no{t}")
            add(f"  %nb{t} = load <4 x i8>, ptr %np{t}, align 1")
            add(f"  %nd{t} = shufflevector <4 x i8> %nb{t}, <4 x i8> poison, <8 x i32> "
                "<i32 0, i32 0, i32 1, i32 1, i32 2, i32 2, i32 3, i32 3>")
            add(f"  %nw{t} = zext <8 x i8> %nd{t} to {v8}")
            add(f"  %ns{t} = lshr {v8} %nw{t}, <i32 0, i32 4, i32 0, i32 4, i32 0, i32 4, i32 0, i32 4>")
            add(f"  %nm{t} = and {v8} %ns{t}, splat (i32 15)")
            if fused:
                add(f"  %lp{t} = getelementptr i16, ptr %raw, i64 %o{t}")
                add(f"  %lo{t} = load <8 x i16>, ptr %lp{t}, align 1")
                add(f"  %lw{t} = zext <8 x i16> %lo{t} to {v8}")
                add(f"  %nh{t} = shl {v8} %nm{t}, splat (i32 16)")
                add(f"  %v1_{t} = or {v8} %s{t}, %lw{t}")
            else:
                add(f"  %nh{t} = shl {v8} %nm{t}, %tv")
                add(f"  %v1_{t} = or {v8} %s{t}, zeroinitializer")
            add(f"  %v{t} = or {v8} %v1_{t}, %nh{t}")
            value = f"%v{t}"
        if out_bits == 32 and streaming:
            add(f"  store {v8} {value}, ptr %op{t}, align 32, !nontemporal !0")
        elif out_bits == 32:
            add(f"  store {v8} {value}, ptr %op{t}, align 1")
        else:
            add(f"  %vw{t} = {'trunc' if out_bits < 32 else 'zext'} {v8} {value} to <8 x i{out_bits}>")
            add(f"  store <8 x i{out_bits}> %vw{t}, ptr %op{t}, align 1")
        # the decode step of rans_core.decode_step for 8 lanes
        add(f"  %f{t} = and {v8} %e{t}, splat (i32 {ENTRY_MASK})")
        add(f"  %b{t} = lshr {v8} %e{t}, splat (i32 {ENTRY_BITS})")
        add(f"  %q{t} = lshr {v8} %x{t}, %pv")
        add(f"  %m{t} = mul {v8} %f{t}, %q{t}")
        add(f"  %xa{t} = add {v8} %m{t}, %b{t}")
        add(f"  %u{t} = icmp ult {v8} %xa{t}, splat (i32 {RANS_L})")
        add(f"  %ub{t} = bitcast <8 x i1> %u{t} to i8")
        add(f"  %uz{t} = zext i8 %ub{t} to i64")
        add(f"  %ux{t} = mul i64 %uz{t}, 8")
        add(f"  %pt{t} = getelementptr i32, ptr %prefix, i64 %ux{t}")
        add(f"  %off{t} = load {v8}, ptr %pt{t}, align 4")
        base = f"%p{g}" if h == 0 else f"%pm{g}"
        # the next 8 words (within the body: the steps stop 32 bytes before its end), each
        # lane taking the one at its offset (vpermd; this IR only runs on x86 with AVX2)
        add(f"  %wb{t} = getelementptr i8, ptr %stream, i64 {base}")
        add(f"  %wv{t} = load <8 x i16>, ptr %wb{t}, align 1")
        add(f"  %wz{t} = zext <8 x i16> %wv{t} to {v8}")
        add(f"  %ww{t} = call {v8} @llvm.x86.avx2.permd({v8} %wz{t}, {v8} %off{t})")
        add(f"  %xs{t} = shl {v8} %xa{t}, splat (i32 {WORD_BITS})")
        add(f"  %xo{t} = or {v8} %xs{t}, %ww{t}")
        add(f"  %xn{t} = select <8 x i1> %u{t}, {v8} %xo{t}, {v8} %xa{t}")
        add(f"  %c{t} = call i8 @llvm.ctpop.i8(i8 %ub{t})")
        add(f"  %cw{t} = zext i8 %c{t} to i64")
        add(f"  %c2_{t} = mul i64 %cw{t}, {WORD_BYTES}")
        add(f"  {'%pm' if h == 0 else '%pn'}{g} = add i64 {base}, %c2_{t}")
    add("  %k1 = add i64 %k, 1")
    add("  br label %check")
    add("exit:")
    for g in range(groups):
        add(f"  store i64 %p{g}, ptr %pp{g}")
    for g, h in halves:
        add(f"  store {v8} %x{g}_{h}, ptr %sp{g}_{h}, align 4")
    if streaming:
        add("  call void @llvm.x86.sse.sfence()")  # the streamed stores before any later one
    add("  ret i64 %k")
    add("}")
    if streaming:
        add("!0 = !{i32 1}")
    return "\n".join(lines)


def _ir_merge_nibble(add, g, out_bits):
    # the 16 values from %o{g}: their nibbles shifted by %tv, ORed into the symbols %s{g}
    # (already shifted by the table)
    ir_nibbles(add, g, "raw")
    add(f"  %nh{g} = shl <16 x i32> %nm{g}, %tv")
    add(f"  %v{g} = or <16 x i32> %s{g}, %nh{g}")
    if out_bits == 32:
        add(f"  store <16 x i32> %v{g}, ptr %op{g}, align 1")
    else:
        add(f"  %vw{g} = trunc <16 x i32> %v{g} to <16 x i{out_bits}>")
        add(f"  store <16 x i{out_bits}> %vw{g}, ptr %op{g}, align 1")


def _vector_steps_intrinsic(variant, groups):
    """A Numba intrinsic running ``_decoder_ir``'s steps for ``groups`` groups. ``variant``:
    "plain" (symbols, any unsigned output), "fused" (float32 values with their 20 raw
    bits; the last argument is ignored, the nibble plane follows the 16-bit plane) or
    "nibble" (values with 4 raw bits; the last argument is the shift ``t``); "streaming":
    "fused" by non-temporal stores (``out`` 64-byte aligned)."""
    streaming = variant == "streaming"
    fused = variant == "fused" or streaming
    nibble = variant == "nibble"

    @intrinsic
    def steps_kernel(typingctx, stream, bounds, table, precision, out, steps, states, raw, extra):
        bits = out.dtype.bitwidth
        if (fused and bits != 32) or (nibble and bits not in (16, 32)):
            return None
        split = "_split" if DECODE_SPLIT_LOOKUPS else ""
        name = f"spherecodec_rans{GROUP_LANES * groups}_decode_{variant}_u{bits}{split}"
        sig = types.int64(stream, bounds, table, precision, out, steps, states, raw, extra)

        def codegen(context, builder, signature, args):
            if VECTOR_WIDTH == 8:
                text = _decoder_ir_avx2(name, bits, fused, nibble, groups, streaming)
            else:
                text = _decoder_ir(name, bits, fused, nibble, groups, streaming)
            context.active_code_library.add_llvm_module(llvm.parse_assembly(text))
            ptr = ir.PointerType()
            i64 = ir.IntType(64)
            fnty = ir.FunctionType(i64, [ptr, ptr, ptr, ir.IntType(32), ptr, i64, ptr, ptr, i64])
            fn = cgutils.get_or_insert_function(builder.module, fnty, name)
            data = {}
            for index in (0, 1, 2, 4, 6, 7):
                array = context.make_array(signature.args[index])(context, builder, args[index])
                data[index] = builder.bitcast(array.data, ptr)
            n = builder.extract_value(context.make_array(signature.args[4])(context, builder, args[4]).shape, 0)
            # the IR's last argument: the nibble plane's offset (fused: after n 16-bit fields),
            # or the shift of the nibble variant
            last = args[8] if nibble else builder.mul(n, ir.Constant(i64, 2))
            prec = builder.trunc(args[3], ir.IntType(32))
            return builder.call(fn, [data[0], data[1], data[2], prec, data[4], args[5], data[6], data[7], last])

        return sig, codegen

    return steps_kernel


#: Numba intrinsics running the IR of ``_decoder_ir`` for 2 and 4 groups: values with raw
#: low bits (uint32), plain symbols (any unsigned output), values with a nibble of raw
#: bits (uint16/uint32)
_steps_fused_2 = _vector_steps_intrinsic("fused", 2)
_steps_fused_4 = _vector_steps_intrinsic("fused", 4)
_steps_streaming_2 = _vector_steps_intrinsic("streaming", 2)
_steps_streaming_4 = _vector_steps_intrinsic("streaming", 4)
_steps_plain_2 = _vector_steps_intrinsic("plain", 2)
_steps_plain_4 = _vector_steps_intrinsic("plain", 4)
_steps_nibble_2 = _vector_steps_intrinsic("nibble", 2)
_steps_nibble_4 = _vector_steps_intrinsic("nibble", 4)


def table_size(precision):
    """Entries of the ``table`` scratch the vector decoders take (u64: one per slot, then
    the AVX2 steps' word offsets, ``PREFIX_ENTRIES`` u32)."""
    return (1 << precision) + PREFIX_ENTRIES // 2


@callee
def _vector_prologue(stream, slot_table, slot_symbol, precision, table, shift, groups):
    # (body well formed, bounds, states); table <- each slot's entry | symbol << shift << 32
    bounds = np.empty(2 * groups, dtype=np.int64)
    states = np.empty(GROUP_LANES * groups, dtype=np.uint32)
    if not _parse(stream, bounds, groups):
        return False, bounds, states
    _load_states(stream, bounds, states, groups)
    slots = 1 << precision
    for k in range(slots):
        symbol = np.uint64(np.uint32(slot_symbol[k]) << np.uint32(shift))
        table[k] = np.uint64(slot_table[k]) | (symbol << np.uint64(32))
    # the AVX2 steps' word offsets (2,048 stores: a microsecond against the chunk's millisecond)
    prefix = table[slots:slots + PREFIX_ENTRIES // 2].view(np.uint32)
    for mask in range(256):
        below = 0
        for j in range(8):
            prefix[8 * mask + j] = below
            below += (mask >> j) & 1
    return True, bounds, states


@callee
def _vector_epilogue(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, done, fused, groups):
    # the scalar steps finish what the vector steps left (`done` steps decoded)
    if not _scalar_steps(stream, bounds, slot_table, slot_symbol, precision, out, raw, states,
                         done * GROUP_LANES * groups, fused, groups):
        return STATUS_CORRUPT
    return _finish(bounds, states, groups)


@njit(nogil=True, cache=True)
def decode_vector(stream, slot_table, slot_symbol, precision, out, table, groups):
    """``decode_scalar`` of plain symbols by vector steps (``table``: uint64 scratch of
    ``table_size(precision)`` entries)."""
    ok, bounds, states = _vector_prologue(stream, slot_table, slot_symbol, precision, table, 0, groups)
    if not ok:
        return STATUS_CORRUPT
    raw = np.empty(0, dtype=np.uint8)
    steps = np.int64(out.size // (GROUP_LANES * groups))
    if groups == 4:
        done = _steps_plain_4(stream, bounds, table, np.int64(precision), out, steps, states, raw, np.int64(0))
    else:
        done = _steps_plain_2(stream, bounds, table, np.int64(precision), out, steps, states, raw, np.int64(0))
    return _vector_epilogue(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, done, False,
                            groups)


@njit(inline="always")
def _decode_fused_by(steps_2, steps_4, stream, slot_table, slot_symbol, precision, out, raw, table, groups):
    # decode_vector_fused with the vector steps steps_2 / steps_4 (intrinsics of the fused
    # kind, for 2 and 4 groups): inlined, so that each caller compiles only its own
    ok, bounds, states = _vector_prologue(stream, slot_table, slot_symbol, precision, table, FLOAT32_RAW_BITS,
                                          groups)
    if not ok:
        return STATUS_CORRUPT
    steps = np.int64(out.size // (GROUP_LANES * groups))
    if groups == 4:
        done = steps_4(stream, bounds, table, np.int64(precision), out, steps, states, raw, np.int64(0))
    else:
        done = steps_2(stream, bounds, table, np.int64(precision), out, steps, states, raw, np.int64(0))
    return _vector_epilogue(stream, bounds, slot_table, slot_symbol, precision, out, raw, states, done, True,
                            groups)


@njit(nogil=True, cache=True)
def decode_vector_fused(stream, slot_table, slot_symbol, precision, out, raw, table, groups):
    """``decode_scalar`` of float32 values (uint32 ``out``, ``raw`` their 20 low bits) by
    vector steps (``table``: uint64 scratch of ``table_size(precision)`` entries)."""
    return _decode_fused_by(_steps_fused_2, _steps_fused_4, stream, slot_table, slot_symbol, precision, out, raw,
                            table, groups)


@callee(nogil=True, cache=True)
def decode_vector_streaming(stream, slot_table, slot_symbol, precision, out, raw, table, groups):
    """``decode_vector_fused`` whose vector steps store the values non-temporally, past the
    caches, for an ``out`` that starts 64-byte aligned (any other is decoded with plain
    stores: a streamed store must be aligned): for outputs larger than the caches, where
    plain stores first read every line they write (measured on 61 MB: 7-9% faster at
    threads=1, 11-13% at threads=2; slower for outputs that fit the caches)."""
    if out.ctypes.data & 63:
        return decode_vector_fused(stream, slot_table, slot_symbol, precision, out, raw, table, groups)
    return _decode_fused_by(_steps_streaming_2, _steps_streaming_4, stream, slot_table, slot_symbol, precision, out,
                            raw, table, groups)


@njit(nogil=True, cache=True)
def decode_vector_nibbles(stream, slot_table, slot_symbol, precision, out, raw, shift, table, groups):
    """``decode_vector`` of values with 4 raw bits each (``raw``: their nibble plane, the
    ``kernels.bits`` layout) and ``shift`` zero low bits: ``out`` (uint16 or uint32) receives
    ``(symbol << 4 | nibble) << shift``, in the decoder's pass where the vector steps run
    (the scalar steps' tail is merged after them). Same status as ``decode_vector``."""
    ok, bounds, states = _vector_prologue(stream, slot_table, slot_symbol, precision, table, 4 + shift, groups)
    if not ok:
        return STATUS_CORRUPT
    steps = np.int64(out.size // (GROUP_LANES * groups))
    if groups == 4:
        done = _steps_nibble_4(stream, bounds, table, np.int64(precision), out, steps, states, raw,
                               np.int64(shift))
    else:
        done = _steps_nibble_2(stream, bounds, table, np.int64(precision), out, steps, states, raw,
                               np.int64(shift))
    empty = np.empty(0, dtype=np.uint8)
    status = _vector_epilogue(stream, bounds, slot_table, slot_symbol, precision, out, empty, states, done, False,
                              groups)
    start = done * GROUP_LANES * groups  # even: the tail's nibbles start at a byte
    merge_low_bits_shifted(out[start:], raw[start // 2:], 4, shift)
    return status
