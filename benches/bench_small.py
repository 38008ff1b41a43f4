"""Small plain blobs (issue 20: "a plain blob of 32 rows encodes and decodes in <= 40 us each").

Run the table: ``python benches/bench_small.py`` (threads=1). Per data set (the shared
MiniLM 384-d and mpnet 768-d sentences and raw token embeddings when present, else the
tests' 512-row sample):
median encode and decode of a blob of 32 rows taken at random, spherecodec against ZipNN in
the same run (calls interleaved, each slice coded by both), and the ratio of blobs of 1, 32,
128 and 1,000 rows (random slices). ``--calls`` sets the slices timed.

The pytest-benchmark functions time the same 32-row calls on the MiniLM data:
``python -m pytest benches/bench_small.py --benchmark-only``.
"""

import argparse
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import spherecodec

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DATA = {"MiniLM 384-d": "minilm-stdlib-sentences-384.npy", "mpnet 768-d": "mpnet-stdlib-sentences-768.npy",
        "MiniLM tokens 384-d": "minilm-stdlib-tokens-raw-384.npy", "mpnet tokens 768-d": "mpnet-stdlib-tokens-raw-768.npy"}
SAMPLE = ROOT / "tests" / "data" / "minilm-sentences-512.npy"


def load(name):
    """The rows of data set ``name`` (the tests' sample when the shared file is absent)."""
    path = SHARED / DATA[name]
    return np.ascontiguousarray(np.load(path if path.exists() else SAMPLE))


def zipnn_coder():
    """(encode, decode) of ZipNN for float32 bytes, one thread."""
    import zipnn

    zn = zipnn.ZipNN(bytearray_dtype="float32", input_format="byte", threads=1)
    return (lambda a: bytes(zn.compress(a.tobytes())),
            lambda b, shape: np.frombuffer(zn.decompress(b), np.float32).reshape(shape))


def time_32_rows(x, calls, seed=0):
    """Median us of encode and decode of ``calls`` random 32-row blobs, ours and ZipNN's,
    interleaved slice by slice; every round trip checked bit for bit."""
    z_enc, z_dec = zipnn_coder()
    rng = np.random.default_rng(seed)
    times = {k: [] for k in ("enc", "dec", "zipnn enc", "zipnn dec")}
    for i in rng.integers(0, len(x) - 32, calls):
        a = np.ascontiguousarray(x[i:i + 32])
        t0 = time.perf_counter_ns()
        blob = spherecodec.encode(a, threads=1)
        t1 = time.perf_counter_ns()
        back = spherecodec.decode(blob, threads=1)
        t2 = time.perf_counter_ns()
        zblob = z_enc(a)
        t3 = time.perf_counter_ns()
        zback = z_dec(zblob, a.shape)
        t4 = time.perf_counter_ns()
        assert back.tobytes() == a.tobytes() and zback.tobytes() == a.tobytes()
        for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            times[key].append(dt / 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def ratios(x, rows_list=(1, 32, 128, 1000), slices=40, seed=1):
    """Raw bytes / blob bytes over ``slices`` random slices of each row count (ZipNN's too)."""
    z_enc, _ = zipnn_coder()
    rng = np.random.default_rng(seed)
    out = {}
    for rows in rows_list:
        if rows > len(x):
            continue
        raw = ours = theirs = 0
        for i in rng.integers(0, len(x) - rows + 1, slices if rows < 1000 else 6):
            a = np.ascontiguousarray(x[i:i + rows])
            raw += a.nbytes
            ours += len(spherecodec.encode(a, threads=1))
            theirs += len(z_enc(a))
        out[rows] = (raw / ours, raw / theirs)
    return out


def main():
    """Print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=2000)
    args = p.parse_args()
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    print(f"threads=1; {model}; median of {args.calls} random 32-row slices, ZipNN interleaved\n")
    print("| data | encode us | decode us | ZipNN encode us | ZipNN decode us | ratio 1 / 32 / 128 / 1000 rows "
          "(ZipNN) |")
    print("|---|---:|---:|---:|---:|---|")
    for name in DATA:
        x = load(name)
        time_32_rows(x, 50)  # warm-up: compile, caches
        t = time_32_rows(x, args.calls)
        r = ratios(x)
        shown = " / ".join(f"{ours:.4f} ({theirs:.3f})" for ours, theirs in r.values())
        print(f"| {name} | {t['enc']:.1f} | {t['dec']:.1f} | {t['zipnn enc']:.1f} | {t['zipnn dec']:.1f} | "
              f"{shown} |")


# -- pytest-benchmark ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def slices():
    x = load("MiniLM 384-d")
    rng = np.random.default_rng(0)
    chosen = [np.ascontiguousarray(x[i:i + 32]) for i in rng.integers(0, len(x) - 32, 64)]
    # load the kernels now: pytest-benchmark sizes its rounds from the first call, and a
    # first call that loads them from Numba's cache left it 5 rounds
    spherecodec.decode(spherecodec.encode(chosen[0], threads=1), threads=1)
    return chosen


@pytest.mark.benchmark(group="blob of 32 rows, random slices")
def test_small_blob_encode(benchmark, slices):
    it = iter(range(1 << 62))
    benchmark(lambda: spherecodec.encode(slices[next(it) % len(slices)], threads=1))


@pytest.mark.benchmark(group="blob of 32 rows, random slices")
def test_small_blob_decode(benchmark, slices):
    blobs = [spherecodec.encode(a, threads=1) for a in slices]
    it = iter(range(1 << 62))
    benchmark(lambda: spherecodec.decode(blobs[next(it) % len(blobs)], threads=1))


if __name__ == "__main__":
    main()
