"""``link_ir_function``: an LLVM IR function linked into the Numba kernel an intrinsic is
lowered in, for the steps Numba cannot express (``kernels.rans_simd``,
``kernels.tile_products``)."""

import hashlib

import llvmlite.binding as llvm
from numba.core import cgutils


def link_ir_function(context, builder, stem, make_ir, fnty):
    """Add ``make_ir(name)`` (LLVM IR text defining ``@name``) to the code being compiled and
    return the function ``name`` of type ``fnty`` for ``builder`` to call.

    A name per use, the same in every process (kernels are cached): ``stem``, a hash of the
    calling function's name and the count of such names in its module already, since a
    kernel that inlines the step twice links it twice, and kernels compiled for two
    signatures may be linked into one."""
    prefix = f"{stem}_{hashlib.sha1(builder.function.name.encode()).hexdigest()[:16]}"
    name = f"{prefix}_{sum(g.name.startswith(prefix) for g in builder.module.global_values)}"
    context.active_code_library.add_llvm_module(llvm.parse_assembly(make_ir(name)))
    return cgutils.get_or_insert_function(builder.module, fnty, name)
