"""Measure the core issue's targets against ZipNN and pcodec in one interleaved run.

Usage: python benches/measure_core.py [EMBEDDINGS.npy] [--repeats N]

Prints: compression ratios (spherecodec exact, ZipNN float32, pcodec level 8), single-thread
encode/decode MB/s as medians of interleaved runs and their ratios against ZipNN, the
threads=2 speed-up of encoding a 40k x 384 array, and peak memory (tracemalloc) of
encode and decode relative to the raw array size. All round trips are checked bit for bit.
"""

import argparse
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

import spherecodec

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "minilm-stdlib-sentences-384.npy"


def _median_speed(fn, nbytes, times):
    return nbytes / float(np.median(times)) / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    a = np.ascontiguousarray(np.load(args.data))
    raw = a.tobytes()
    bits = a.view(np.uint32)

    from pcodec import ChunkConfig, standalone
    from zipnn import ZipNN

    zipnn = ZipNN(bytearray_dtype="float32", threads=1)
    pco_config = ChunkConfig(compression_level=8)
    ours = spherecodec.encode(a, threads=1)
    theirs = zipnn.compress(raw)
    pco = standalone.simple_compress(a.ravel(), pco_config)
    assert (spherecodec.decode(ours).view(np.uint32) == bits).all()
    assert np.frombuffer(bytes(zipnn.decompress(theirs))[: a.nbytes], np.uint32).size == bits.size
    assert (standalone.simple_decompress(pco).view(np.uint32) == bits.ravel()).all()
    print(f"data {args.data}: {a.shape} {a.dtype}, {a.nbytes / 1e6:.1f} MB")
    print(f"ratio  spherecodec exact {a.nbytes / len(ours):.4f}x  ZipNN {a.nbytes / len(theirs):.4f}x  "
          f"pcodec-8 {a.nbytes / len(pco):.4f}x")

    runs = {
        "spherecodec encode": lambda: spherecodec.encode(a, threads=1),
        "ZipNN encode": lambda: zipnn.compress(raw),
        "pcodec encode": lambda: standalone.simple_compress(a.ravel(), pco_config),
        "spherecodec decode": lambda: spherecodec.decode(ours, threads=1),
        "ZipNN decode": lambda: zipnn.decompress(theirs),
        "pcodec decode": lambda: standalone.simple_decompress(pco),
    }
    times = {name: [] for name in runs}
    for _ in range(args.repeats):  # interleaved, so load on the machine hits every codec alike
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    speed = {name: a.nbytes / float(np.median(t)) / 1e6 for name, t in times.items()}
    for name, s in speed.items():
        print(f"{name:20s} {s:8.0f} MB/s (threads=1, median of {args.repeats})")
    print(f"encode speed vs ZipNN: {speed['spherecodec encode'] / speed['ZipNN encode']:.2f}x  "
          f"decode speed vs ZipNN: {speed['spherecodec decode'] / speed['ZipNN decode']:.2f}x")

    big = np.ascontiguousarray(np.resize(a, (40_000, a.shape[1])))
    t1, t2 = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        spherecodec.encode(big, threads=1)
        t1.append(time.perf_counter() - t)
        t = time.perf_counter()
        spherecodec.encode(big, threads=2)
        t2.append(time.perf_counter() - t)
    print(f"encode 40000x{a.shape[1]}: threads=2 is {np.median(t1) / np.median(t2):.2f}x threads=1")

    # in a fresh process: buffers recycled by earlier calls (scratch.py) must not hide memory
    out = subprocess.run([sys.executable, __file__, "--memory-only", args.data], check=True,
                         capture_output=True, text=True).stdout
    print(out.strip())


def memory_only(path):
    """Peak memory (tracemalloc) of encode and decode of a 40k-row array, in this process."""
    a = np.ascontiguousarray(np.load(path))
    big = np.ascontiguousarray(np.resize(a, (40_000, a.shape[1])))
    tracemalloc.start()
    blob = spherecodec.encode(big, threads=2)
    enc_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    spherecodec.decode(blob, threads=2)
    dec_peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    print(f"peak memory (fresh process): encode {enc_peak / big.nbytes:.2f}x raw, "
          f"decode {dec_peak / big.nbytes:.2f}x raw")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--memory-only":
        memory_only(sys.argv[2])
    else:
        main()
