"""Fill Numba's on-disk kernel cache in parallel processes.

Numba compiles each kernel the first time it runs and keeps the result in its cache
(``cache=True``), so only a fresh installation pays: about 40 s of single-threaded
compilation across all codecs on the machines measured here. Compiling in one process per
core fills the cache in a fraction of that wall time; the calling process then loads the
kernels from the cache.
"""

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from . import container
from .kernels.rans import encode_stream_32
from .kernels.rans_simd import MIN_SYMBOLS


def cache_is_warm():
    """True when the core rANS encoder already has an entry in Numba's cache."""
    cache = getattr(encode_stream_32, "_cache", None)
    path = getattr(cache, "cache_path", None)
    if not path or not os.path.isdir(path):
        return True  # caching unavailable: nothing to gain from warming
    return any(name.startswith("rans.encode_stream_32-") and name.endswith(".nbi") for name in os.listdir(path))


def _compile(specs, sample):
    for name, params in specs:
        try:
            container.decode(container.encode(sample, name, threads=1, **params), threads=1)
        except Exception:  # the real run reports failures; warming is best effort
            pass
    return len(specs)


def warm_cache(specs, sample, processes=None):
    """Run a tiny encode/decode of every ``(codec name, params)`` in worker processes.

    ``sample`` is a small 2-D float32 array with the data's row length, so the kernels
    compiled are the ones the real run needs. Returns the number of codecs warmed (0 when
    the cache is already warm or there is a single core).
    """
    processes = processes or os.cpu_count() or 1
    if processes < 2 or not specs or cache_is_warm():
        return 0
    # shared kernels first, so the workers do not both compile them: enough rows for a
    # stream in the 32-lane layout too
    dim = max(sample.shape[-1], 1)
    _compile([("exact", {})], sample[:max(8, -(-MIN_SYMBOLS // dim))])
    groups = [specs[i::processes] for i in range(processes)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        done = pool.map(_compile, groups, [np.ascontiguousarray(sample)] * processes)
        return sum(done)
