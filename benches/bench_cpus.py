"""Issue 18's table in one command: the exact codec against ZipNN on every CPU build.

Usage: python benches/bench_cpus.py [EMBEDDINGS.npy] [--repeats N] [--builds native haswell avx2 generic]

Each build runs in a process of its own with ``NUMBA_CPU_NAME`` set (native: unset, the
vector kernels where the CPU has AVX-512 VBMI2; ``haswell``: the AVX2 kernels, compiled
with the host's features, AVX-512 included on an AVX-512 host, as Numba does for a named
CPU; ``avx2``: the same with haswell's own features only (``NUMBA_CPU_FEATURES`` empty),
the code an AVX2-only CPU runs; ``generic``: any x86-64) and its own ``NUMBA_CACHE_DIR``
(under the system temp dir, kept between runs so only the first run compiles). Each process measures spherecodec and ZipNN
side by side, threads=1, medians of interleaved runs, as process CPU time (steadier than
the wall clock on a shared machine), checks every round trip bit for bit, and prints one
table row; the native process also prints the threads=2 speed-ups (40,000 rows, fresh
output; runs alternating, medians and fastest) and the speeds of levels 3 and 5 (8,000
rows of the data, and of the shared mpnet 768-d sentences when present). Default data:
the shared MiniLM sentences (11,803 x 384).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT = SHARED / "minilm-stdlib-sentences-384.npy"
MPNET = SHARED / "mpnet-stdlib-sentences-768.npy"  # the levels' speeds at 768-d too, when present


def _cpu_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return float(np.median(times))


def _speed_up(fn1, fn2, repeats):
    """(median, best) wall time of ``fn1`` over ``fn2``, their runs alternating (after one
    of each unmeasured), so that the host's slow and fast minutes fall on both."""
    fn1()
    fn2()
    t1, t2 = [], []
    for _ in range(repeats):
        for fn, times in ((fn1, t1), (fn2, t2)):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return float(np.median(t1) / np.median(t2)), min(t1) / min(t2)


def measure(path, repeats, extras):
    """One build's figures as a dict (runs in the child process)."""
    import spherecodec
    from zipnn import ZipNN

    a = np.ascontiguousarray(np.load(path), dtype=np.float32)
    zipnn = ZipNN(bytearray_dtype="float32", input_format="byte", threads=1)
    ours = spherecodec.encode(a, threads=1)
    theirs = bytes(zipnn.compress(a.tobytes()))  # ZipNN groups its input's bytes in place: a copy
    assert spherecodec.decode(ours).tobytes() == a.tobytes()
    assert bytes(zipnn.decompress(theirs))[:a.nbytes] == a.tobytes()
    fig = {"ratio": a.nbytes / len(ours), "zipnn_ratio": a.nbytes / len(theirs)}
    enc, dec, zenc, zdec = [], [], [], []
    for _ in range(repeats):  # interleaved: machine noise hits both alike
        enc.append(_cpu_time(lambda: spherecodec.encode(a, threads=1), 1))
        copy = a.tobytes()
        t = time.process_time()
        zipnn.compress(copy)
        zenc.append(time.process_time() - t)
        dec.append(_cpu_time(lambda: spherecodec.decode(ours, threads=1), 1))
        zdec.append(_cpu_time(lambda: zipnn.decompress(theirs), 1))
    mb = a.nbytes / 1e6
    fig.update(enc=mb / np.median(enc), dec=mb / np.median(dec), zenc=mb / np.median(zenc), zdec=mb / np.median(zdec))
    if extras:
        big = np.ascontiguousarray(np.resize(a, (40_000, a.shape[1])))
        blob = spherecodec.encode(big, threads=1)
        for what, fn1, fn2 in (("encode", lambda: spherecodec.encode(big, threads=1),
                                lambda: spherecodec.encode(big, threads=2)),
                               ("decode", lambda: spherecodec.decode(blob, threads=1),
                                lambda: spherecodec.decode(blob, threads=2))):
            fig[f"threads2_{what}"] = _speed_up(fn1, fn2, repeats)
        sets = [a[:8000]] + [np.load(p)[:8000] for p in (MPNET,) if p.exists()]
        for level in (3, 5):
            for x in map(np.ascontiguousarray, sets):
                lb = spherecodec.encode(x, threads=1, level=level)
                assert spherecodec.decode(lb).tobytes() == x.tobytes()
                mbx = x.nbytes / 1e6
                fig[f"level{level}_{x.shape[1]}"] = (x.nbytes / len(lb),
                                                      mbx / _cpu_time(lambda: spherecodec.encode(x, threads=1,
                                                                                                 level=level), 3),
                                                      mbx / _cpu_time(lambda: spherecodec.decode(lb, threads=1), 3))
    return fig


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(DEFAULT))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--builds", nargs="+", default=["native", "haswell", "avx2", "generic"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.data, args.repeats, args.child == "native")))
        return
    cpu = "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                    if line.startswith("model name")), cpu)
    print(f"{args.data}; CPU: {cpu}; threads=1, CPU-time medians of {args.repeats} interleaved runs")
    print("| build | ratio (ZipNN) | encode MB/s (ZipNN) | decode MB/s (ZipNN) | encode vs ZipNN | decode vs ZipNN |")
    print("|---|---|---|---|---|---|")
    native = None
    for build in args.builds:
        env = dict(os.environ)
        env.pop("NUMBA_CPU_NAME", None)
        env.pop("NUMBA_CPU_FEATURES", None)
        if build == "avx2":
            env.update(NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="")
        elif build != "native":
            env["NUMBA_CPU_NAME"] = build
        env["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"spherecodec-numba-{build}")
        out = subprocess.run([sys.executable, __file__, args.data, "--repeats", str(args.repeats), "--child", build],
                             env=env, check=True, capture_output=True, text=True).stdout
        f = json.loads(out.strip().splitlines()[-1])
        native = f if build == "native" else native
        print(f"| {build} | {f['ratio']:.3f} ({f['zipnn_ratio']:.3f}) | {f['enc']:.0f} ({f['zenc']:.0f}) | "
              f"{f['dec']:.0f} ({f['zdec']:.0f}) | {f['enc'] / f['zenc']:.2f}x | {f['dec'] / f['zdec']:.2f}x |",
              flush=True)
    if native:
        (enc, enc_best), (dec, dec_best) = native["threads2_encode"], native["threads2_decode"]
        print(f"\nthreads=2 vs threads=1 (40,000 rows, fresh output, wall clock, runs alternating): encode "
              f"{enc:.2f}x (fastest runs {enc_best:.2f}x), decode {dec:.2f}x (fastest runs {dec_best:.2f}x)")
        for key, (ratio, enc, dec) in sorted((k, v) for k, v in native.items() if k.startswith("level")):
            level, dim = key[5:].split("_")
            print(f"level {level}, {dim}-d: ratio {ratio:.3f}, encode {enc:.0f} MB/s, decode {dec:.0f} MB/s (CPU time)")


if __name__ == "__main__":
    main()
