"""The kernels compiled ahead of time: their table (``exports``, which ``spherecodec.aot``
reads at run time too), the stamp a build must match, and the build step, which compiles
them with Numba's ahead-of-time compiler (``numba.pycc``) into the extension module
``spherecodec._kernels_aot``.

``setup.py``'s ``build_ext`` calls ``build(target)`` in a process of its own, with an empty
Numba cache, so that nothing compiled or cached before (or a kernel cache in a source tree)
is linked in. This module imports only the kernels (``kernels/``) and Numba; the build's
process stubs the ``spherecodec`` package, so that its ``__init__`` (and the runtime
dependencies it imports) is not needed to build.

The exports are the kernels that first encodes and decodes call from Python, each with the
one signature its call site passes (``spherecodec.aot``: the compiled functions do not
check types). Export names carry the choices a kernel is built for (``VECTOR_ENCODE`` kind,
vector or scalar decoder, groups), so that a call site whose choice differs (tests set
them) finds no export and takes the JIT.
"""

import hashlib
from pathlib import Path

from numba import types

from .kernels import (bits, checksum, grid, kmeans, memory, predict, quant, rabitq, rans, rans_blob, rans_core,
                      rans_simd, shape, spherical)

_HERE = Path(__file__).resolve().parent


def stamp():
    """A 64-bit digest of what the compiled kernels depend on: the source of every kernel
    module and of ``aot_build`` (the exports and their signatures), and the host CPU's name
    and features as Numba's JIT sees them. The build stores it in the module; a process
    uses the module only if its own stamp is the same."""
    from llvmlite import binding as llvm
    from numba.core.codegen import get_host_cpu_features

    digest = hashlib.sha256()
    for path in sorted((_HERE / "kernels").glob("*.py")) + [_HERE / "aot_build.py"]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(llvm.get_host_cpu_name().encode() + b"\0" + get_host_cpu_features().encode())
    return int.from_bytes(digest.digest()[:8], "little")


def export_name(kernel, *choices):
    """The export of ``kernel`` built for ``choices`` (ints or bools: a ``VECTOR_ENCODE``
    kind, the vector decoder or not, groups), e.g. ``decode_chunks_1``: a call site whose
    choices differ from the build host's (tests set them) finds no export."""
    return "_".join([kernel, *(str(int(c)) for c in choices)])


def _array(dtype, ndim=1, readonly=False):
    return types.Array(dtype, ndim, "C", readonly=readonly)


_U8, _U16, _U32, _I64, _U64 = (_array(t) for t in (types.uint8, types.uint16, types.uint32, types.int64, types.uint64))
_U8_READ = _array(types.uint8, readonly=True)
_F32, _F64 = _array(types.float32), _array(types.float64)
_F32_2, _F64_2, _I64_2, _U8_2, _U32_2, _U64_2 = (_array(t, 2) for t in (
    types.float32, types.float64, types.int64, types.uint8, types.uint32, types.uint64))
_F32_3 = _array(types.float32, 3)
_i64, _u64, _f64, _bool, _none = types.int64, types.uint64, types.float64, types.boolean, types.none


def exports():
    """``(name, dispatcher, signature)`` of every export, for this host's choices."""
    vector, kind = rans_simd.VECTOR, rans_simd.VECTOR_ENCODE
    encode_blob = _i64(_U32, _U8_READ, _U8, _i64, _i64, _i64)
    decode_blob = _i64(_U8_READ, _i64, _U32)
    return [
        # small blobs (exact.encode_small_blob, exact.decode_small_blob)
        ("encode_blob_8", rans_blob.encode_blob_8, encode_blob),
        (export_name("encode_blob_32", kind), rans_blob.blob_encoder_32(kind), encode_blob),
        ("decode_blob_8", rans_blob.decode_blob_8, decode_blob),
        (export_name("decode_blob_32", vector),
         rans_blob.decode_blob_32 if vector else rans_blob.decode_blob_32_scalar, decode_blob),
        # chunks: shape probe (its stream: entropy below), checksums
        ("probe", shape.probe, types.Tuple((_u64, _i64, _bool))(_array(types.uint32, readonly=True), _i64)),
        ("trailing_zeros", shape.trailing_zeros, _i64(_u64, _i64)),
        ("raw_size", bits.raw_size, _i64(_i64, _i64)),
        ("copy_bytes", memory.copy_bytes, types.none(_U8, _i64, _U8_READ, _i64, _i64)),  # blobsink
        ("xxh64", checksum.xxh64, _u64(_U8_READ)),
        ("xxh64_many", checksum.xxh64_many, _U64(_U8_READ, _I64, _I64, _bool)),
        # a chunk the one-call decoders do not take (an 8-lane stream in a blob that is not
        # bytes, decode_rows of a small blob): the codec's general path (entropy.decode_stream)
        ("read_table", rans.read_table, types.UniTuple(_i64, 2)(_U8_READ, _i64, _i64, _i64, _I64, _I64, _U32, _U16)),
        ("read_varint", rans_core.read_varint, types.UniTuple(_i64, 2)(_U8_READ, _i64, _i64)),
        ("rans_decode_values", rans.rans_decode_values, _i64(_U8_READ, _U32, _U16, _i64, _U32, _U8_READ)),
        # the one-call chunk decoder (exact.decode_coded_chunks)
        (export_name("decode_chunks", vector), rans_blob.chunks_decoder(vector),
         _i64(_U8_READ, _I64, _U64, _i64, _i64, _bool, _bool, _i64, _U32, _U64, _U32, _U16, _I64, _I64)),
    ] + _other_codecs(vector, kind)


def _other_codecs(vector, kind):
    """The kernels the other codecs' first encode and decode call from Python (what
    ``spherecodec bench --sample`` compiled longest) and the exact codec's other dtypes and
    modes (bfloat16, float16, float32 that was either, zero masks): the entropy coder's
    symbol streams, exact levels 2-5, grid, sphere, pq, rabitq, int8/int4. Their call sites
    take them through ``aot.checked``, which runs them only for arguments of exactly these
    types."""

    def stream(values):  # values: read only, whether the caller's array is writable or not
        return _i64(_array(values, readonly=True), _i64, _i64, _I64, _bool, _U8, _U8, _i64, _i64)

    def nibbles(out):
        return _i64(_U8_READ, _U32, _U16, _i64, out, _U8_READ, _i64, _U64, _i64)

    vector_decoders = [
        ("decode_vector_uint8", rans_simd.decode_vector, _i64(_U8_READ, _U32, _U16, _i64, _U8, _U64, _i64)),
        ("decode_vector_uint16", rans_simd.decode_vector, _i64(_U8_READ, _U32, _U16, _i64, _U16, _U64, _i64)),
        ("decode_vector_uint32", rans_simd.decode_vector, _i64(_U8_READ, _U32, _U16, _i64, _U32, _U64, _i64)),
        ("decode_vector_nibbles_uint16", rans_simd.decode_vector_nibbles, nibbles(_U16)),  # bfloat16
        ("decode_vector_nibbles_uint32", rans_simd.decode_vector_nibbles, nibbles(_U32)),  # float32 that was
        ("decode_vector_fused", rans_simd.decode_vector_fused,
         _i64(_U8_READ, _U32, _U16, _i64, _U32, _U8_READ, _U64, _i64)),
    ]
    return [
        # entropy (named by their symbols' dtype): the exact codec's float32 chunks (wide
        # uint32) and zero masks (uint8), the lossy codecs' columns (uint16), levels 2-5's
        # coefficients (uint32)
        ("encode_stream_8_uint8", rans.encode_stream_8, stream(types.uint8)),
        ("encode_stream_8_uint32", rans.encode_stream_8, stream(types.uint32)),
        *((export_name(f"encode_stream_wide_{values}", groups, kind), rans.wide_stream_encoder(groups, kind),
           stream(getattr(types, values))) for values, groups in (
              ("uint32", 2), ("uint32", 4), ("uint8", 2), ("uint16", 2), ("uint16", 4))),
        ("quantize_counts", rans.quantize_counts, _I64(_I64, _i64, _i64)),
        ("rans_decode_symbols_uint8", rans.rans_decode_symbols, _i64(_U8_READ, _U32, _U16, _i64, _U8)),
        ("rans_decode_symbols_uint32", rans.rans_decode_symbols, _i64(_U8_READ, _U32, _U16, _i64, _U32)),
        *(vector_decoders if vector else []),
        # float16 values' low bits (exact codec, and its mode 4)
        ("merge_low_bits_shifted_uint16", bits.merge_low_bits_shifted, _none(_U16, _U8_READ, _i64, _i64)),
        # exact levels 2-5 (codecs/exact_models.py)
        ("context_histogram", predict.context_histogram, _none(_U32_2, _U8_2, _I64_2)),
        ("residual_spreads", predict.residual_spreads, _none(_F32_2, _F32_2, _F32, _F32, _F32)),
        ("predict_quantized", predict.predict_quantized, _none(_F32_2, _F32, _array(types.int16, 4), _i64, _F32_2)),
        ("count_quantized", predict.count_quantized,
         _none(_F32_2, _U32_2, _F32, _array(types.int16, 4), _i64, _F32, _F32, _I64, _i64, _U8_2, _I64_2, _I64_2)),
        ("encode_contexts", predict.encode_contexts, _i64(_U32_2, _U8_2, _U64_2, _i64, _U8)),
        ("decode_contexts", predict.decode_contexts,
         _i64(_U8_READ, _U8_READ, _U16, _U32, _i64, _F32_2, _F32, _F32, _F32, _I64, _i64, _U32_2, _F32_2)),
        ("decode_quantized", predict.decode_quantized,
         _i64(_U8_READ, _U8_READ, _U16, _U32, _i64, _array(types.int16, 4), _i64, _F32, _F32, _F32, _I64, _i64, _U32_2,
              _array(types.int16, 3), _F32_2)),
        # grid and sphere (codecs/grid.py, sphere.py, columns.py)
        ("grid_quantize", grid.grid_quantize, _none(_F32_2, _f64, _I64_2, _F32_2)),
        ("column_order_keys", grid.column_order_keys, _F64(_I64_2, _i64)),
        ("desymbolize", grid.desymbolize, _i64(_U16, _I64, _i64, _U32, _I64_2)),
        ("apply_exceptions", grid.apply_exceptions, _i64(_U8_READ, _i64, _F32)),
        ("transpose_rows", spherical.transpose_rows, _none(_F32_2, _F32_2)),
        ("sphere_cos_prepare", spherical.sphere_cos_prepare,
         _none(_F32_2, _F32_2, _f64, _f64, _f64, _F32, _F64, _F64, _I64, _U32, _I64)),
        ("sphere_quantize_last", spherical.sphere_quantize_last,
         _none(_F32_2, _F32_2, _F32, _F64, _f64, _f64, _I64, _I64, _I64, _U32, _I64)),
        ("sphere_cos_keys", spherical.sphere_cos_keys, _F64(_F32_2, _F64, _I64_2, _i64)),
        ("sphere_reconstruct_last", spherical.sphere_reconstruct_last, _i64(_I64, _I64, _F64, _f64, _F32_2)),
        # pq, rabitq, int8/int4
        ("train_subspaces", kmeans.train_subspaces, _f64(_F32_2, _I64_2, _i64, _F32_3)),
        ("pq_encode", kmeans.pq_encode, _i64(_F32_2, _F32_3, _U8_2)),
        ("encode_rows", rabitq.encode_rows, _i64(_F32_2, _F64, _F64_2, _i64, _f64, _i64, _U8_2, _F64, _F64, _U16)),
        ("decode_rows", rabitq.decode_rows, _none(_U8_2, _F64, _F64, _F32, _F64_2, _i64, _f64, _i64, _F32_2)),
        ("quantize_affine", quant.quantize_affine, _i64(_F32_2, _F32, _F64, _i64, _i64, _U8_2)),
    ]


def _stamp_function(value):
    value = types.uint64(value)

    def aot_stamp():
        return value

    return aot_stamp


class _HostBuild:
    """Numba's AOT compiler, for the duration of a build, as its JIT compiles:

    * for the host CPU with the host's own features (the AOT codegen takes a CPU model's
      features, which a virtual machine may not all offer);
    * each export with flags of its own, releasing the GIL as the kernels' ``nogil=True``
      does (threads code chunks side by side). pycc passes one flags object to every
      export, and Numba's inliner of ``inline="always"`` functions turns its SSA option off
      on the flags it is given: the next export that inlines the same function then failed
      to type.
    """

    def __enter__(self):
        from numba.core import codegen
        from numba.pycc import compiler

        self._saved = (codegen.AOTCPUCodegen._customize_tm_features, compiler.compile_extra)
        compile_extra = compiler.compile_extra

        def compile_export(typingctx, targetctx, func, args, return_type, flags, *rest, **options):
            flags = flags.copy()
            flags.release_gil = True
            return compile_extra(typingctx, targetctx, func, args, return_type, flags, *rest, **options)

        codegen.AOTCPUCodegen._customize_tm_features = lambda self: codegen.get_host_cpu_features()
        compiler.compile_extra = compile_export
        return self

    def __exit__(self, *exc):
        from numba.core import codegen
        from numba.pycc import compiler

        codegen.AOTCPUCodegen._customize_tm_features, compiler.compile_extra = self._saved


def build(target):
    """Compile every export and the stamp into the extension module file ``target``."""
    import warnings

    from numba.core.errors import NumbaPendingDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaPendingDeprecationWarning)  # pycc's own notice
        from numba.pycc import CC

    target = Path(target)
    module = CC(target.name.split(".")[0])
    module.output_dir = str(target.parent)
    module.output_file = target.name
    module.target_cpu = "host"
    for name, dispatcher, signature in exports():
        module.export(name, signature)(dispatcher.py_func)
    module.export("stamp", types.uint64())(_stamp_function(stamp()))
    with _HostBuild():
        module.compile()

