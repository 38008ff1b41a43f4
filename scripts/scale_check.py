"""Slow scale checks behind tests/test_scale.py; figures go to docs/reliability.md.

Usage::

    python scripts/scale_check.py chunks [--rows 2000000] [--codec exact]
        encode and decode a (rows x 1) array with chunk_rows=1: one chunk per row
    python scripts/scale_check.py memmap [--dir /tmp] [--codec grid]
        a memory-mapped float32 array of 2**31 + 262,144 elements (8.6 GB, a sparse file of
        zeros: no disk blocks) through encode, info, and decode_rows in batches that cover
        every row (bounded memory), checking every value

Both print wall times. Needs about 9 GB of free disk address space (sparse) and a few GB
of memory.
"""

import argparse
import os
import tempfile
import time

import numpy as np

import spherecodec


def chunks(args):
    x = np.random.default_rng(0).standard_normal((args.rows, 1)).astype(np.float32)
    t = time.perf_counter()
    blob = spherecodec.encode(x, args.codec, chunk_rows=1)
    enc = time.perf_counter() - t
    t = time.perf_counter()
    facts = spherecodec.info(blob)
    parse = time.perf_counter() - t
    t = time.perf_counter()
    y = spherecodec.decode(blob)
    dec = time.perf_counter() - t
    t = time.perf_counter()
    spherecodec.decode_rows(blob, args.rows - 10, args.rows)
    tail = time.perf_counter() - t
    exact = bool((y.view(np.uint32) == x.view(np.uint32)).all())
    print(f"{args.codec}: {facts['chunks']:,} chunks, blob {len(blob):,} B; encode {enc:.1f} s "
          f"({1e6 * enc / args.rows:.0f} us/chunk), info {parse * 1e3:.0f} ms, decode {dec:.1f} s "
          f"({1e6 * dec / args.rows:.0f} us/chunk), decode_rows(last 10) {tail * 1e3:.1f} ms, "
          f"bit-exact {exact}")


def memmap(args):
    dim = 384
    rows = -(-(2**31 + 1) // dim) + 682  # 2**31 + 262,144 elements
    fd, path = tempfile.mkstemp(suffix=".f32", dir=args.dir)
    os.close(fd)
    try:
        x = np.memmap(path, dtype=np.float32, mode="w+", shape=(rows, dim))  # sparse zeros
        x[-1, -1] = 1.0  # one non-zero value at the very end
        x.flush()
        print(f"array {rows:,} x {dim} = {rows * dim:,} elements ({rows * dim * 4 / 1e9:.1f} GB)")
        t = time.perf_counter()
        blob = spherecodec.encode(x, args.codec)
        print(f"encode ({args.codec}): {time.perf_counter() - t:.1f} s, blob {len(blob):,} B")
        facts = spherecodec.info(blob)
        assert facts["shape"] == (rows, dim), facts
        print(f"info: {facts['chunks']:,} chunks of {facts['chunk_rows']} rows")
        t = time.perf_counter()
        batch = 65536
        bad = 0
        for start in range(0, rows, batch):
            part = spherecodec.decode_rows(blob, start, start + batch)
            want = x[start:start + batch]
            bad += int(np.count_nonzero(np.abs(part - want) > 1e-3))
        print(f"decode_rows over every row: {time.perf_counter() - t:.1f} s, values off bound: {bad}")
        del x
    finally:
        os.unlink(path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["chunks", "memmap"])
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--codec", default=None)
    p.add_argument("--dir", default=tempfile.gettempdir())
    args = p.parse_args()
    if args.what == "chunks":
        args.codec = args.codec or "exact"
        chunks(args)
    else:
        args.codec = args.codec or "grid"
        memmap(args)


if __name__ == "__main__":
    main()
