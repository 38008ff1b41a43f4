"""Kernels compiled ahead of time: a first encode and decode without Numba compiling.

Numba compiles a kernel at its first call, which made a fresh environment's first encode and
decode of float32 with the default exact codec take about 10 s, nearly all compilation.
Installing spherecodec from source (``pip install``, ``python -m build``) therefore compiles
the kernels those calls run from Python (``aot_build.exports``: the exact codec's small-blob
kernels, chunk encoder, chunk decoders and checksums, and what the other codecs' first
calls compiled longest) into one extension module, ``spherecodec._kernels_aot``, with
Numba's ahead-of-time compiler, for the CPU it is built on and with that CPU's features, as
Numba's JIT would compile them: the same machine code, the same bytes.

The module is used only where it was built for what would otherwise run:

* its stamp (``aot_build.stamp``: the kernels' source files, the host CPU's name and
  features) must equal this process's: another CPU, or a source edited after the build,
  takes the JIT;
* Numba must compile for the host as is: ``NUMBA_CPU_NAME``, ``NUMBA_CPU_FEATURES``,
  ``NUMBA_DISABLE_JIT`` or ``NUMBA_BOUNDSCHECK`` set means the JIT (tests build the AVX2 and
  generic kernels that way);
* ``SPHERECODEC_AOT=0`` turns it off.

A call site asks ``kernel(name, jit)`` for the compiled function of an export, or gets the
Numba dispatcher ``jit`` back. The compiled functions do not check their arguments' types
as a dispatcher does, so ``kernel`` is for the hot call sites whose types are fixed (the
small-blob and chunk paths); the others ask ``checked(name, jit)``, which runs the export
only for arguments of exactly its types and the dispatcher for any others.
``tests/test_aot.py`` holds every export to its dispatcher, byte for byte.
"""

import importlib
import os

import numpy as np

from .aot_build import export_name, exports, stamp  # noqa: F401  (export_name: for the call sites)

#: the extension module ``aot_build`` writes
MODULE = "spherecodec._kernels_aot"
#: environment variable: "0" keeps the compiled kernels unused (every kernel by Numba's JIT)
ENV = "SPHERECODEC_AOT"

_module = None  # the loaded module, False when not used, None until looked up
_reason = "not looked up yet"


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
    try:
        same = module.stamp() == stamp()
    except Exception as exc:  # noqa: BLE001 - e.g. sources unreadable: compile at first use instead
        _module, _reason = False, f"stamp not computed ({exc!r})"
        return _module
    if not same:
        _module, _reason = False, "built for another CPU or other kernel sources"
        return _module
    _module, _reason = module, "loaded"
    return _module


def _loaded():
    return _load() if _module is None else _module


def kernel(name, jit):
    """The compiled export ``name`` when the module is used, else ``jit`` (the kernel's
    Numba dispatcher, which compiles at its first call)."""
    module = _loaded()
    return getattr(module, name, jit) if module else jit


def checked(name, jit):
    """``kernel`` for call sites whose arguments' types may vary: a callable that runs the
    export ``name`` for arguments of exactly its signature (``aot_build``: C-contiguous
    ndarrays of its dtypes and dimensions, writable where its type is; numbers of its
    kinds) and ``jit`` for any others. ``jit`` itself when the module is not used."""
    module = _loaded()
    compiled = getattr(module, name, None) if module else None
    if compiled is None:
        return jit
    call = _checked.get((name, jit))
    if call is None:
        call = _checked[name, jit] = _Checked(compiled, jit, _argument_checks(name))
    return call


class _Checked:
    """An export and its dispatcher: the export for arguments of its types."""

    __slots__ = ("compiled", "jit", "checks")

    def __init__(self, compiled, jit, checks):
        self.compiled, self.jit, self.checks = compiled, jit, checks

    def fits(self, args):
        """Whether ``args`` have exactly the export's types."""
        return len(args) == len(self.checks) and all(check(a) for check, a in zip(self.checks, args))

    def __call__(self, *args):
        return (self.compiled if self.fits(args) else self.jit)(*args)


_checked = {}
_signatures = None


def _argument_checks(name):
    global _signatures
    if _signatures is None:
        _signatures = {export: signature for export, _, signature in exports()}
    return tuple(_check_for(t) for t in _signatures[name].args)


def _check_for(argument_type):
    """A predicate: does a Python argument have ``argument_type`` (a Numba type) exactly?"""
    from numba.core import types

    flags = (bool, np.bool_)
    if isinstance(argument_type, types.Array):
        dtype, ndim, writes = np.dtype(str(argument_type.dtype)), argument_type.ndim, argument_type.mutable
        return lambda a: (type(a) is np.ndarray and a.dtype == dtype and a.ndim == ndim and a.flags.c_contiguous
                          and (a.flags.writeable or not writes))
    if isinstance(argument_type, types.Boolean):
        return lambda a: isinstance(a, flags)
    if isinstance(argument_type, types.Integer):
        return lambda a: isinstance(a, (int, np.integer)) and not isinstance(a, flags)
    if isinstance(argument_type, types.Float):
        return lambda a: isinstance(a, (int, float, np.integer, np.floating)) and not isinstance(a, flags)
    raise TypeError(f"no argument check for {argument_type}")


def status():
    """Whether the compiled kernels are used: ``(used, reason)``."""
    used = bool(_loaded())
    return used, _reason
