"""``kernels.jit.callee``: kernels' callees compile without the Python wrappers, and a call
from Python still works (through the twin) instead of jumping to a null pointer."""

import numpy as np
from numba import njit

import spherecodec
from spherecodec.kernels import bits, checksum, rans, rans_simd
from spherecodec.kernels.jit import TWIN_SUFFIX, CalleeDispatcher, callee


@callee
def _scaled(values, factor):
    total = 0
    for v in values:
        total += v * factor
    return total


@njit
def _caller(values):
    return _scaled(values, 3) + 1


@njit
def _histogram_in_kernel(values, shift, counts):
    bits.histogram(values, shift, counts)


def _wrapper_address(dispatcher, sig):
    cres = dispatcher.overloads[sig]
    return cres.library.get_pointer_to_function(cres.fndesc.llvm_cpython_wrapper_name)


def test_callee_runs_from_kernels_and_from_python():
    values = np.arange(10, dtype=np.int64)
    assert _caller(values) == 3 * 45 + 1
    # the kernel's call compiled the callee without its CPython wrapper
    (sig,) = _scaled.signatures
    assert _wrapper_address(_scaled, sig) == 0
    # a Python call runs the twin, compiled with one, and gives the same result
    assert _scaled(values, 2) == 90
    twin = _scaled.python_twin()
    assert twin is _scaled.python_twin() and not isinstance(twin, CalleeDispatcher)
    assert twin.py_func.__qualname__ == _scaled.py_func.__qualname__ + TWIN_SUFFIX
    assert _wrapper_address(twin, twin.signatures[0]) != 0
    assert _scaled.signatures == [sig]  # the Python call compiled nothing into the callee


def test_twin_has_cache_files_of_its_own():
    # Numba names cache files after the function: one shared name would let a version
    # without wrapper load for a Python call (a crash) or the reverse
    twin = bits.histogram.python_twin()
    assert bits.histogram._cache._impl.filename_base != twin._cache._impl.filename_base
    values = np.random.default_rng(1).integers(0, 1 << 20, 5000).astype(np.uint32)
    from_python, from_kernel = np.zeros(64, np.uint32), np.zeros(64, np.uint32)
    bits.histogram(values, 14, from_python)
    _histogram_in_kernel(values, 14, from_kernel)
    expected = np.bincount(values >> 14, minlength=64).astype(np.uint32)
    assert from_python.tobytes() == from_kernel.tobytes() == expected.tobytes()


def test_small_blob_callees_compile_without_wrappers():
    x = np.random.default_rng(0).standard_normal((32, 384)).astype(np.float32)
    y = spherecodec.decode(spherecodec.encode(x))
    assert y.tobytes() == x.tobytes()
    # the callees of the one-call small-blob kernels (compiled into them only when the
    # kernels were not in Numba's cache yet): callees, so compiled bare when they are
    callees = (rans._quantized, rans._coding_head, rans._kth_smallest, bits.pack_and_count,
               checksum._read64, rans_simd._parse, rans_simd._vector_prologue,
               rans_simd._scalar_steps, rans_simd.SUBSTREAM_ENCODERS[(2, rans_simd.ENCODE_SCALAR)])
    for d in callees:
        assert isinstance(d, CalleeDispatcher), d.py_func.__name__
        for sig in d.signatures:
            assert _wrapper_address(d, sig) == 0, d.py_func.__name__
