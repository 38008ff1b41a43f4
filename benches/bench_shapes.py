"""The exact codec on the shapes of issue 22 against ZipNN and zstd-3, in one interleaved run.

Usage: python benches/bench_shapes.py [EMBEDDINGS.npy ...] [--rows N] [--repeats N]

For each file (default: the shared MiniLM sentences and mpnet sentences) and each shape of
``spherecodec.bench.shapes`` prints the compression ratio of spherecodec exact, ZipNN
(float32 byte grouping) and zstd level 3, and single-thread encode/decode speeds as medians
of interleaved runs of process CPU time (steadier than the wall clock on a shared machine;
every contender runs on the calling thread), with spherecodec's speed as a ratio of ZipNN's. Every round trip is
checked bit for bit. Also prints the bf16 and float16 rows (the vectors cast to bfloat16 /
float16 and coded in that width; ZipNN with bytearray_dtype bfloat16 / float16).
"""

import argparse
import os
import time
from pathlib import Path

import ml_dtypes
import numpy as np
import zstandard
from zipnn import ZipNN

import spherecodec
from spherecodec.bench.shapes import SHAPES, make_shape

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_FILES = [SHARED / "minilm-stdlib-sentences-384.npy", SHARED / "mpnet-stdlib-sentences-768.npy"]


def _zipnn_for(dtype):
    name = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}[np.dtype(dtype).name]
    return ZipNN(bytearray_dtype=name, input_format="byte", threads=1)


_fresh = []  # copies of the input for ZipNN, made before each timed call


def _contenders(x):
    zipnn = _zipnn_for(x.dtype)
    zc = zstandard.ZstdCompressor(level=3)
    zd = zstandard.ZstdDecompressor()
    raw = x.tobytes()
    # name -> (encode, decode, decoded output as bytes); only encode and decode are timed
    return {
        "spherecodec": (lambda: spherecodec.encode(x, threads=1), lambda blob: spherecodec.decode(blob, threads=1),
                        lambda out: out.tobytes()),
        # ZipNN byte-groups its input in place: each call gets its own copy (made outside the timing)
        "zipnn": (lambda: zipnn.compress(_fresh.pop()), zipnn.decompress, lambda out: bytes(out)[:len(raw)]),
        "zstd-3": (lambda: zc.compress(raw), zd.decompress, bytes),
    }


def measure(x, repeats):
    """{name: (ratio, encode MB/s, decode MB/s)}, round trips checked by bytes."""
    raw = x.tobytes()
    fns = _contenders(x)
    _fresh.append(x.tobytes())
    blobs = {name: bytes(enc()) for name, (enc, _, _) in fns.items()}
    for name, (_, dec, as_bytes) in fns.items():
        if as_bytes(dec(blobs[name])) != raw:
            raise SystemExit(f"{name} does not round-trip bit-exact")
    times = {name: ([], []) for name in fns}
    for _ in range(repeats):  # interleaved, so that machine noise hits every contender alike
        for name, (enc, dec, _) in fns.items():
            _fresh.append(x.tobytes())
            t = time.process_time()
            enc()
            times[name][0].append(time.process_time() - t)
            _fresh.clear()
            t = time.process_time()
            dec(blobs[name])
            times[name][1].append(time.process_time() - t)
    mb = x.nbytes / 1e6
    return {name: (x.nbytes / len(blobs[name]), mb / np.median(te), mb / np.median(td))
            for name, (te, td) in times.items()}


def _row(label, res):
    s, z, t = res["spherecodec"], res["zipnn"], res["zstd-3"]
    best = max(z[0], t[0])
    return (f"| {label} | {s[0]:.3f} | {z[0]:.3f} | {t[0]:.3f} | {'yes' if s[0] >= best else 'NO'} | "
            f"{s[1]:.0f} ({s[1] / z[1]:.2f}x) | {s[2]:.0f} ({s[2] / z[2]:.2f}x) | {z[1]:.0f} / {z[2]:.0f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", default=[str(f) for f in DEFAULT_FILES])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "unknown CPU") if os.path.exists("/proc/cpuinfo") else "unknown CPU"
    print(f"CPU: {cpu}; threads=1; CPU-time medians of {args.repeats} interleaved runs; MB/s of the input; "
          f"load average {os.getloadavg()[0]:.1f}")
    for path in args.files:
        base = np.ascontiguousarray(np.load(path)[:args.rows], dtype=np.float32)
        measure(base, 1)  # untimed: the first calls of a process fill buffer pools and caches
        print(f"\n{Path(path).name}: {base.shape[0]} x {base.shape[1]}")
        print("| data | spherecodec | ZipNN | zstd-3 | >= best peer | encode MB/s (vs ZipNN) | "
              "decode MB/s (vs ZipNN) | ZipNN enc / dec |")
        print("|---|---|---|---|---|---|---|---|")
        for name in SHAPES:
            print(_row(name, measure(make_shape(name, base), args.repeats)), flush=True)
        for dtype in (ml_dtypes.bfloat16, np.float16):
            print(_row(f"as {np.dtype(dtype).name}", measure(base.astype(dtype), args.repeats)), flush=True)


if __name__ == "__main__":
    main()
