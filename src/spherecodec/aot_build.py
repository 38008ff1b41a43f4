"""Build step: compile the kernels ``spherecodec.aot`` loads, with Numba's ahead-of-time
compiler (``numba.pycc``), into the extension module ``spherecodec._kernels_aot``.

``setup.py``'s ``build_ext`` calls ``build(target)`` in a process of its own, with an empty
Numba cache, so that nothing compiled or cached before (or a kernel cache in a source tree)
is linked in. This module imports only the kernels (``kernels/``), ``aot`` and Numba; the
build's process stubs the ``spherecodec`` package, so that its ``__init__`` (and the runtime
dependencies it imports) is not needed to build.

The exports are the kernels a first encode and decode of float32 with the default exact
codec call from Python, each with the one signature its call site passes
(``spherecodec.aot``: the compiled functions do not check types). Export names carry the
choices a kernel is built for (``VECTOR_ENCODE`` kind, vector or scalar decoder, groups), so
that a call site whose choice differs (tests set them) finds no export and takes the JIT.
"""

from pathlib import Path

from numba import types

from .aot import export_name, stamp
from .kernels import bits, checksum, memory, rans, rans_blob, rans_core, rans_simd, shape

_U8 = types.Array(types.uint8, 1, "C")
_U8_READ = types.Array(types.uint8, 1, "C", readonly=True)
_U16 = types.Array(types.uint16, 1, "C")
_U32 = types.Array(types.uint32, 1, "C")
_I64 = types.Array(types.int64, 1, "C")
_U64 = types.Array(types.uint64, 1, "C")
_i64, _u64, _bool = types.int64, types.uint64, types.boolean


def exports():
    """``(name, dispatcher, signature)`` of every export, for this host's choices."""
    vector, kind = rans_simd.VECTOR, rans_simd.VECTOR_ENCODE
    encode_blob = _i64(_U32, _U8_READ, _U8, _i64, _i64, _i64)
    decode_blob = _i64(_U8_READ, _i64, _U32)
    wide = _i64(_U32, _i64, _i64, _I64, _bool, _U8, _U8, _i64, _i64)
    return [
        # small blobs (exact.encode_small_blob, exact.decode_small_blob)
        ("encode_blob_8", rans_blob.encode_blob_8, encode_blob),
        (export_name("encode_blob_32", kind), rans_blob.blob_encoder_32(kind), encode_blob),
        ("decode_blob_8", rans_blob.decode_blob_8, decode_blob),
        (export_name("decode_blob_32", vector),
         rans_blob.decode_blob_32 if vector else rans_blob.decode_blob_32_scalar, decode_blob),
        # chunks: shape probe, the plain chunk's stream (entropy.encode_stream_into), checksums
        ("probe", shape.probe, types.Tuple((_u64, _i64, _bool))(_U32, _i64)),
        ("trailing_zeros", shape.trailing_zeros, _i64(_u64, _i64)),
        ("raw_size", bits.raw_size, _i64(_i64, _i64)),
        (export_name("encode_stream_wide", 2, kind), rans.wide_stream_encoder(2, kind), wide),
        (export_name("encode_stream_wide", 4, kind), rans.wide_stream_encoder(4, kind), wide),
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

