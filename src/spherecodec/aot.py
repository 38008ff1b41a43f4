"""Kernels compiled ahead of time: a first encode and decode without Numba compiling.

Numba compiles a kernel at its first call, which made a fresh environment's first encode and
decode of float32 with the default exact codec take about 10 s, nearly all compilation.
Installing spherecodec from source (``pip install``, ``python -m build``) therefore compiles
the kernels those calls run from Python (``aot_build.EXPORTS``: the small-blob kernels, the
chunk encoder's, the one-call chunk decoder, the checksums) into one extension module,
``spherecodec._kernels_aot``, with Numba's ahead-of-time compiler, for the CPU it is built on
and with that CPU's features, as Numba's JIT would compile them: the same machine code, the
same bytes.

The module is used only where it was built for what would otherwise run:

* its stamp (``stamp()``: the kernels' source files, the host CPU's name and features) must
  equal this process's: another CPU, or a source edited after the build, takes the JIT;
* Numba must compile for the host as is: ``NUMBA_CPU_NAME``, ``NUMBA_CPU_FEATURES``,
  ``NUMBA_DISABLE_JIT`` or ``NUMBA_BOUNDSCHECK`` set means the JIT (tests build the AVX2 and
  generic kernels that way);
* ``SPHERECODEC_AOT=0`` turns it off.

A call site asks ``kernel(name, jit)`` for the compiled function of an export, or gets the
Numba dispatcher ``jit`` back. The compiled functions do not check their arguments' types
as a dispatcher does: each call site passes exactly the types of its export's signature
(``tests/test_aot.py`` holds every export to its dispatcher, byte for byte).
"""

import hashlib
import importlib
import os
from pathlib import Path

#: the extension module ``aot_build`` writes
MODULE = "spherecodec._kernels_aot"
#: environment variable: "0" keeps the compiled kernels unused (every kernel by Numba's JIT)
ENV = "SPHERECODEC_AOT"

_HERE = Path(__file__).resolve().parent
_module = None  # the loaded module, False when not used, None until looked up
_reason = "not looked up yet"


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


def jit_settings_changed():
    """The Numba settings under which the compiled kernels are not what the JIT would run,
    as a list of their environment variables (empty: none set)."""
    from numba.core import config

    changed = []
    if config.CPU_NAME is not None:
        changed.append("NUMBA_CPU_NAME")
    if config.CPU_FEATURES is not None:
        changed.append("NUMBA_CPU_FEATURES")
    if config.DISABLE_JIT:
        changed.append("NUMBA_DISABLE_JIT")
    if config.BOUNDSCHECK:
        changed.append("NUMBA_BOUNDSCHECK")
    return changed


def _load():
    global _module, _reason
    if os.environ.get(ENV, "1") == "0":
        _module, _reason = False, f"{ENV}=0"
        return _module
    changed = jit_settings_changed()
    if changed:
        _module, _reason = False, f"Numba compiles for another target or mode ({', '.join(changed)})"
        return _module
    try:
        module = importlib.import_module(MODULE)
    except ImportError as exc:
        _module, _reason = False, f"not built ({exc})"
        return _module
    if module.stamp() != stamp():
        _module, _reason = False, "built for another CPU or other kernel sources"
        return _module
    _module, _reason = module, "loaded"
    return _module


def kernel(name, jit):
    """The compiled export ``name`` when the module is used, else ``jit`` (the kernel's
    Numba dispatcher, which compiles at its first call)."""
    module = _load() if _module is None else _module
    return getattr(module, name, jit) if module else jit


def status():
    """Whether the compiled kernels are used: ``(used, reason)``."""
    used = bool(_load() if _module is None else _module)
    return used, _reason
