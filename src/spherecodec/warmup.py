"""Fill Numba's on-disk kernel cache in parallel processes.

Numba compiles each kernel the first time it runs and keeps the result in its cache
(``cache=True``), so only a fresh installation pays: about 60 s of single-threaded
compilation across all codecs on the machines measured here, of which an install from
source compiles the most used ahead of time (``spherecodec.aot``: about 15 s are left).
Compiling in one process per core fills the cache in a fraction of that wall time; the
calling process then loads the kernels from the cache.

For container images, run ``python -m spherecodec.warmup`` once at build time (after
``pip install``): it compiles every codec's kernels (the exact codec also for float16,
bfloat16, float64 and its zero/half-precision chunk modes) into the cache, so that the
image's first encode starts in about a second. ``--codecs NAME ...`` limits it.
"""

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import ml_dtypes
import numpy as np

from . import aot, container, datasets
from .codecs import available_codecs
from .kernels.rans import count_symbols
from .kernels.rans_simd import MIN_SYMBOLS, MIN_SYMBOLS_64


def cache_is_warm():
    """True when the rANS symbol counter (which every encode of the exact codec runs, in
    every stream layout) already has an entry in Numba's cache."""
    cache = getattr(count_symbols, "_cache", None)
    path = getattr(cache, "cache_path", None)
    if not path or not os.path.isdir(path):
        return True  # caching unavailable: nothing to gain from warming
    return any(name.startswith("rans.count_symbols-") and name.endswith(".nbi") for name in os.listdir(path))


def _wide_layout_rows(dim):
    """Rows of ``dim`` float32 whose one chunk's stream takes the 32-lane layout, then the
    64-lane one."""
    dim = max(dim, 1)
    return -(-MIN_SYMBOLS // dim), -(-MIN_SYMBOLS_64 // dim)


def _compile(specs, sample):
    for name, params in specs:
        try:
            container.decode(container.encode(sample, name, threads=1, **params), threads=1)
            if name == "exact" and not params:
                # a small sample takes the one-call path (container.encode_small): an
                # explicit chunk_rows compiles the chunk pipeline's kernels too, in both wide
                # stream layouts (32 and 64 lanes: a kernel each, rans.wide_stream_encoder)
                for rows in _wide_layout_rows(sample.shape[-1]):
                    block = np.ascontiguousarray(np.resize(sample, (rows, sample.shape[-1])))
                    container.decode(container.encode(block, threads=1, chunk_rows=rows), threads=1)
        except Exception:  # the real run reports failures; warming is best effort
            pass
    return len(specs)


def warm_cache(specs, sample, processes=None, force=False):
    """Run a tiny encode/decode of every ``(codec name, params)`` in worker processes.

    ``sample`` is a small 2-D float32 array with the data's row length, so the kernels
    compiled are the ones the real run needs. Returns the number of codecs warmed (0 when
    the cache is already warm or there is a single core, unless ``force``).
    """
    processes = processes or os.cpu_count() or 1
    if not specs or (not force and (processes < 2 or cache_is_warm())):
        return 0
    # one codec per task, handed out as workers finish: codecs' compile times differ 100-fold
    # (exact level 5: ~16 s, int8: 0.1 s), so fixed shares left one worker with most of it.
    # The exact codec's first: its tasks take longest, and the others share some of its
    # kernels. Workers may compile a shared kernel side by side (the later one to finish
    # saves it again); compiling the shared kernels first, alone, had left the other
    # cores idle for longer (measured, 2 cores: 40.5-42.2 s against 30.4-32.1 s)
    specs = sorted(specs, key=lambda spec: spec[0] != "exact")  # stable: the given order otherwise
    context = multiprocessing.get_context("spawn")
    sample = np.ascontiguousarray(sample)
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        return sum(pool.map(_compile, [[spec] for spec in specs], [sample] * len(specs)))


def _exact_variants(sample):
    """Arrays that take the exact codec's other kernels: half and double precision, and
    chunks of its zero, sparse and shared-zero-bits modes."""
    sparse = sample.copy()
    sparse[:, 1::2] = 0.0
    return [sample.astype(np.float16), sample.astype(ml_dtypes.bfloat16), sample.astype(np.float64),
            sample.astype(ml_dtypes.bfloat16).astype(np.float32), sparse, np.zeros_like(sample)]


def main(argv=None):
    """``python -m spherecodec.warmup [--codecs NAME ...] [--dim D]``: compile the kernels."""
    parser = argparse.ArgumentParser(prog="python -m spherecodec.warmup",
                                     description="Compile spherecodec's kernels into Numba's cache "
                                                 "(once per installation, e.g. when building an image).")
    parser.add_argument("--codecs", nargs="+", metavar="NAME",
                        help="codecs to compile (default: every codec that runs with default parameters)")
    parser.add_argument("--dim", type=int, default=384, help="vector length to compile for (default 384)")
    parser.add_argument("--processes", type=int, help="compiling processes (default: one per core)")
    args = parser.parse_args(argv)
    names = args.codecs or [name for name in available_codecs() if name != "dive"]  # dive needs an adapter
    unknown = sorted(set(names) - set(available_codecs()))
    if unknown:
        parser.error(f"unknown codecs {unknown}; available: {', '.join(available_codecs())}")
    if args.dim < 1:
        parser.error("--dim must be positive")
    started = time.perf_counter()
    base = datasets.load_sample()
    rows = max(64, -(-MIN_SYMBOLS // args.dim))  # enough rows for the 32-lane streams
    sample = np.ascontiguousarray(np.resize(base, (rows, args.dim)), dtype=np.float32)
    warm_cache([(name, {}) for name in names], sample, processes=max(args.processes or os.cpu_count() or 1, 1),
               force=True)
    if "exact" in names:
        for variant in _exact_variants(sample):
            container.decode(container.encode(variant, threads=1, chunk_rows=len(variant)), threads=1)
    used, reason = aot.status()
    print(f"compiled the kernels of {len(names)} codecs for {args.dim}-d vectors in "
          f"{time.perf_counter() - started:.1f} s (Numba's cache: later processes load them); "
          f"kernels compiled at install: {'used' if used else 'not used, ' + reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
