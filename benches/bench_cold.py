"""First calls in a fresh environment (issue 18's cold-start lines): each measurement runs in
a new process with an empty Numba cache, with the kernels compiled ahead of time at install
(``spherecodec.aot``) and without them (``SPHERECODEC_AOT=0``: Numba compiles at first use).

Prints, for each: the import, the first encode + decode of 32 x 384 float32 (the small-blob
path), the first level 5 encode + decode of 1,800 rows, and the wall time of a cold
``spherecodec bench --sample``. Runs alternate (with, without, with, ...).

    python benches/bench_cold.py [--runs 2]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

_FIRST_CALLS = """
import time
t0 = time.perf_counter()
import numpy as np
import spherecodec
from spherecodec.datasets import load_sample
t1 = time.perf_counter()
x = load_sample()
small = np.ascontiguousarray(x[:32])
t2 = time.perf_counter()
assert spherecodec.decode(spherecodec.encode(small)).tobytes() == small.tobytes()
t3 = time.perf_counter()
rows = np.ascontiguousarray(x[:1800])
assert spherecodec.decode(spherecodec.encode(rows, level=5, threads=1), threads=1).tobytes() == rows.tobytes()
t4 = time.perf_counter()
print(t1 - t0, t3 - t2, t4 - t3, spherecodec.aot.status()[0])
"""


def _environment(aot, cache):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "SPHERECODEC_"))}
    env["NUMBA_CACHE_DIR"] = cache
    if not aot:
        env["SPHERECODEC_AOT"] = "0"
    return env


def _measure(aot):
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as cache:
        out = subprocess.run([sys.executable, "-c", _FIRST_CALLS], env=_environment(aot, cache), check=True,
                             capture_output=True, text=True).stdout.split()
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as cache, tempfile.TemporaryDirectory() as where:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "spherecodec", "bench", "--sample", "--out", where],
                       env=_environment(aot, cache), check=True, capture_output=True)
        bench = time.perf_counter() - started
    import_s, small_s, level5_s = (float(v) for v in out[:3])
    return import_s, small_s, level5_s, bench, out[3] == "True"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="runs of each kind (default 2)")
    args = parser.parse_args()
    print("| kernels | import s | first encode+decode 32 x 384 s | first level 5, 1,800 rows s "
          "| cold bench --sample s | compiled kernels used |")
    print("|---|---|---|---|---|---|")
    for _ in range(args.runs):
        for aot in (True, False):
            import_s, small_s, level5_s, bench, used = _measure(aot)
            label = "compiled at install" if aot else "SPHERECODEC_AOT=0 (Numba at first use)"
            print(f"| {label} | {import_s:.2f} | {small_s:.3f} | {level5_s:.2f} | {bench:.1f} | {used} |", flush=True)


if __name__ == "__main__":
    main()
