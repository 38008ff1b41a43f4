"""Peak memory of the CLI round trip on a large .npy, against the in-memory API path.

Writes a .npy of real-looking embeddings (MiniLM sentence vectors plus small noise, written
block by block) of about SIZE_GB, then runs, each in a fresh process whose peak resident
set (ru_maxrss) is measured:

* ``spherecodec compress IN.npy OUT.sphc``  (streaming)
* ``spherecodec decompress OUT.sphc BACK.npy``  (streaming)
* the peer: ``np.load`` + ``spherecodec.encode`` + write, the whole array in memory

and checks BACK.npy is byte-identical to IN.npy and OUT.sphc equals the peer's blob.

Usage: python scripts/cli_memory.py [SIZE_GB] [WORKDIR]   (default 2.0 GB in a temp dir)
"""

import hashlib
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384
BLOCK = 16384

_PEAK = ("import resource, subprocess, sys\n"
         "code = subprocess.run(sys.argv[1:]).returncode\n"
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
         "sys.exit(code)\n")

_IN_MEMORY = ("import sys, numpy as np, spherecodec\n"
              "x = np.load(sys.argv[1])\n"
              "open(sys.argv[2], 'wb').write(spherecodec.encode(x))\n")


def measure(argv):
    """(peak resident bytes, seconds) of one fresh process running ``argv``."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _PEAK, *map(str, argv)], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{argv[:4]} failed: {result.stderr.strip()[-500:]}")
    return int(result.stdout.strip().splitlines()[-1]), time.perf_counter() - started


def base_vectors():
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "minilm-stdlib-sentences-384.npy"
    if shared.exists():
        return np.load(shared)
    from spherecodec.datasets import load_sample

    return load_sample()


def write_npy(path, rows):
    base = base_vectors()
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, DIM))
    rng = np.random.default_rng(0)
    for lo in range(0, rows, BLOCK):
        n = min(BLOCK, rows - lo)
        out[lo:lo + n] = base[rng.integers(0, len(base), n)] + rng.standard_normal((n, DIM), dtype=np.float32) * 1e-3
    out.flush()
    del out


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def main(argv):
    size_gb = float(argv[1]) if len(argv) > 1 else 2.0
    workdir = Path(argv[2]) if len(argv) > 2 else Path(tempfile.mkdtemp(prefix="sphc-mem-"))
    rows = int(size_gb * 2**30 / (DIM * 4))
    src, sphc, back, peer = (workdir / n for n in ("in.npy", "out.sphc", "back.npy", "peer.sphc"))
    t = time.perf_counter()
    write_npy(src, rows)
    print(f"{src}: {rows} x {DIM} float32, {src.stat().st_size / 2**30:.2f} GiB (written in "
          f"{time.perf_counter() - t:.0f} s)")
    cli = [sys.executable, "-m", "spherecodec"]
    runs = [
        ("spherecodec compress (streaming)", cli + ["compress", src, sphc, "-q", "-f"]),
        ("spherecodec decompress (streaming)", cli + ["decompress", sphc, back, "-q", "-f"]),
        ("peer: np.load + spherecodec.encode", [sys.executable, "-c", _IN_MEMORY, src, peer]),
    ]
    print(f"{'step':<38} {'peak RSS':>10} {'seconds':>8}")
    for name, command in runs:
        peak, seconds = measure(command)
        print(f"{name:<38} {peak / 2**20:>7.0f} MiB {seconds:>8.1f}")
    same = digest(src) == digest(back)
    print(f"round trip byte-identical: {same}; streamed file == in-memory blob: {digest(sphc) == digest(peer)}; "
          f"ratio {src.stat().st_size / sphc.stat().st_size:.3f}")
    for p in (src, sphc, back, peer):
        p.unlink()
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
