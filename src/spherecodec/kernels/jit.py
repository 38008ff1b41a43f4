"""``callee``: Numba's ``njit`` for a function that other kernels call.

Why: a fresh environment's first encode and decode is mostly compilation (11 s for a
32 x 384 array, before this). Numba gives every function it compiles, for every
signature, a CPython wrapper (unboxing each argument from a Python object) and a
C-callable one, and lowers, optimises and turns both into machine code. A function
that only kernels call never runs either wrapper: the callers call its native body,
which LLVM inlines. Leaving them out of the callees cut that first encode and decode
from 11.1-11.6 s to 9.6-10.8 s (``docs/design.md``), with the same machine code in the
kernels Python calls, so the same speed and the same bytes.

A compiled function without its CPython wrapper cannot be called from Python (Numba
would jump to a null pointer), and tests call some callees. So a callee's dispatcher
sends a Python call to a twin: the same function compiled the usual way, under its own
name (its own cache files), made at the first Python call. A function that the library's
own Python code calls as well as its kernels stays ``njit``: as a callee, a process
using both would compile it twice.
"""

import types as _pytypes

from numba import config as _numba_config
from numba import njit
from numba.core.registry import CPUDispatcher

__all__ = ["callee", "CalleeDispatcher"]

#: the twin's name is the function's own with this suffix: Numba's cache files are named
#: after the function, so the twin's compiled versions (with wrappers) never stand in for
#: the callee's (without) or the reverse
TWIN_SUFFIX = "__called_from_python"


class CalleeDispatcher(CPUDispatcher):
    """A Numba dispatcher compiling without the CPython and C wrappers: for the native calls
    of other kernels. A call from Python runs ``python_twin()``."""

    def __call__(self, *args, **kwargs):
        return self.python_twin()(*args, **kwargs)

    def python_twin(self):
        """The function compiled with its wrappers, as ``njit`` would (made once)."""
        twin = self.__dict__.get("_python_twin")
        if twin is None:
            f = self.py_func
            copy = _pytypes.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__, f.__closure__)
            copy.__kwdefaults__ = f.__kwdefaults__
            copy.__qualname__ = f.__qualname__ + TWIN_SUFFIX
            copy.__module__ = f.__module__
            copy.__doc__ = f.__doc__
            twin = self.__dict__["_python_twin"] = njit(**self._python_options)(copy)
        return twin


def callee(function=None, *, cache=False, **options):
    """Compile ``function`` like ``njit(cache=cache, **options)`` for calls from other kernels,
    without the wrappers that only a call from Python needs; Python calls still work (they
    run a twin compiled with them). Use it bare (``@callee``) or with options
    (``@callee(cache=True, nogil=True)``); ``inline="always"`` functions need neither and keep ``njit``."""

    def decorate(f):
        if _numba_config.DISABLE_JIT:
            return f
        targetoptions = dict(options, nopython=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
        dispatcher = CalleeDispatcher(py_func=f, locals={}, targetoptions=targetoptions)
        if cache:
            dispatcher.enable_caching()
        dispatcher._python_options = dict(options, cache=cache)
        return dispatcher

    return decorate if function is None else decorate(function)
