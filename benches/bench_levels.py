"""Ratio and speed of the exact codec's levels (threads=1) on real embeddings, with peers.

As pytest-benchmark microbenchmarks::

    python -m pytest benches/bench_levels.py --benchmark-only --benchmark-group-by=group

As a table (what docs/exact-levels.md quotes)::

    python benches/bench_levels.py [EMBEDDINGS.npy ...] [--repeats N] [--levels 3 5] [--no-peers] [--sweep]

The table gives each level's ratio and its median encode/decode speed over interleaved
runs, as wall-clock and as process CPU time (the machine these numbers come from is shared,
so CPU time is the steadier single-thread figure), next to ZipNN and pcodec (level 8)
measured in the same run. ``--sweep`` adds the ratio for several predictor sizes K.
Every round trip is checked bit for bit. Uses the shared MiniLM (384-d) and mpnet (768-d)
embeddings when present (../shared/data), else the sample shipped in tests/data. The
library measured is whichever ``import spherecodec`` finds, so the same script compares
two checkouts (``PYTHONPATH=checkout/src``).
"""

import argparse
import time
from pathlib import Path

import numpy as np
import pytest

import spherecodec
from spherecodec.codecs import exact_models

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SENTENCES = SHARED / "minilm-stdlib-sentences-384.npy"
MPNET = SHARED / "mpnet-stdlib-sentences-768.npy"  # issue 18's levels target is at 768-d too
SAMPLE = ROOT / "tests" / "data" / "minilm-sentences-512.npy"
LEVELS = list(range(1, exact_models.MAX_LEVEL + 1))


@pytest.fixture(scope="module")
def embeddings():
    return np.ascontiguousarray(np.load(SENTENCES if SENTENCES.exists() else SAMPLE))


def _record_speed(benchmark, nbytes):
    if benchmark.stats:  # None under --benchmark-disable
        benchmark.extra_info["MB/s"] = nbytes / benchmark.stats.stats.median / 1e6


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.benchmark(group="levels-encode")
def test_encode_level(benchmark, embeddings, level):
    blob = benchmark(spherecodec.encode, embeddings, threads=1, level=level)
    benchmark.extra_info["ratio"] = embeddings.nbytes / len(blob)
    _record_speed(benchmark, embeddings.nbytes)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.benchmark(group="levels-decode")
def test_decode_level(benchmark, embeddings, level):
    blob = spherecodec.encode(embeddings, threads=1, level=level)
    out = benchmark(spherecodec.decode, blob, threads=1)
    assert (out.view(np.uint32) == embeddings.view(np.uint32)).all()
    benchmark.extra_info["ratio"] = embeddings.nbytes / len(blob)
    _record_speed(benchmark, embeddings.nbytes)


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _peers(a):
    """(name, encode, decode) of the peers that are installed."""
    peers = []
    try:
        from zipnn import ZipNN

        z = ZipNN(bytearray_dtype="float32", threads=1)
        raw = a.tobytes()
        peers.append(("ZipNN", lambda: z.compress(raw), lambda blob: z.decompress(blob)))
    except ImportError:
        pass
    try:
        from pcodec import ChunkConfig, standalone

        config = ChunkConfig(compression_level=8)
        peers.append(("pcodec-8", lambda: standalone.simple_compress(a.ravel(), config),
                      lambda blob: standalone.simple_decompress(blob)))
    except ImportError:
        pass
    return peers


def table(path, repeats, levels=LEVELS, peers=True):
    """Print one file's table: ratio, encode and decode MB/s (wall and CPU) per level and peer."""
    a = np.ascontiguousarray(np.load(path))
    bits = a.view(np.uint32)
    mb = a.nbytes / 1e6
    runs = [(f"exact level {level}",
             (lambda level=level: spherecodec.encode(a, threads=1, level=level)),
             (lambda blob: spherecodec.decode(blob, threads=1)))
            for level in levels] + (_peers(a) if peers else [])
    stats = {name: {"ratio": 0.0, "enc": [], "enc_cpu": [], "dec": [], "dec_cpu": []} for name, _, _ in runs}
    for rep in range(repeats):  # interleaved, so load on the machine hits every codec alike
        for name, enc, dec in runs:
            blob, wall, cpu = _timed(enc)
            stats[name]["enc"].append(wall)
            stats[name]["enc_cpu"].append(cpu)
            out, wall, cpu = _timed(lambda: dec(blob))
            stats[name]["dec"].append(wall)
            stats[name]["dec_cpu"].append(cpu)
            stats[name]["ratio"] = a.nbytes / len(blob)
            if rep == 0 and name.startswith("exact"):
                assert (np.asarray(out).view(np.uint32) == bits).all(), f"{name} is not bit-exact"
    print(f"\n{Path(path).name}: {a.shape} {a.dtype}, {mb:.1f} MB, "
          f"median of {repeats} interleaved runs, threads=1")
    print(f"{'codec':<16}{'ratio':>8}{'enc MB/s':>10}{'(cpu)':>8}{'dec MB/s':>10}{'(cpu)':>8}")
    for name, s in stats.items():
        print(f"{name:<16}{s['ratio']:>8.4f}"
              f"{mb / np.median(s['enc']):>10.1f}{mb / np.median(s['enc_cpu']):>8.1f}"
              f"{mb / np.median(s['dec']):>10.1f}{mb / np.median(s['dec_cpu']):>8.1f}")


def sweep(path, sizes=(0, 8, 16, 32, 64, 128, 192, 256, None)):
    """Ratio with the predictor forced to K earlier coordinates (None: all of them)."""
    a = np.ascontiguousarray(np.load(path))
    saved = dict(exact_models.LEVEL_PREDICTORS), exact_models._predictor_choices
    try:
        def forced(level, d):
            k = exact_models.LEVEL_PREDICTORS[level]
            return [d - 1 if k is None else min(k, d - 1)]

        exact_models._predictor_choices = forced
        print(f"\n{Path(path).name}: ratio by predictor size K (threads=1)")
        for k in sizes:
            exact_models.LEVEL_PREDICTORS[exact_models.MAX_LEVEL] = k
            blob, wall, cpu = _timed(lambda: spherecodec.encode(a, threads=1, level=exact_models.MAX_LEVEL))
            out, dwall, dcpu = _timed(lambda: spherecodec.decode(blob, threads=1))
            assert (out.view(np.uint32) == a.view(np.uint32)).all()
            label = "all" if k is None else k
            print(f"K={label!s:<5} ratio {a.nbytes / len(blob):.4f}"
                  f"  encode {a.nbytes / 1e6 / cpu:6.1f} MB/s cpu"
                  f"  decode {a.nbytes / 1e6 / dcpu:6.1f} MB/s cpu")
    finally:
        exact_models.LEVEL_PREDICTORS.clear()
        exact_models.LEVEL_PREDICTORS.update(saved[0])
        exact_models._predictor_choices = saved[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = [p for p in (SENTENCES, MPNET, SHARED / "minilm-stdlib-tokens-unit-384.npy",
                           SHARED / "minilm-stdlib-tokens-raw-384.npy") if p.exists()] or [SAMPLE]
    parser.add_argument("data", nargs="*", default=[str(p) for p in default])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--levels", type=int, nargs="+", default=LEVELS, choices=LEVELS,
                        help="the levels to measure (default: all)")
    parser.add_argument("--no-peers", action="store_true", help="leave out ZipNN and pcodec")
    parser.add_argument("--sweep", action="store_true", help="also the ratio for several predictor sizes")
    args = parser.parse_args()
    for path in args.data:
        table(path, args.repeats, args.levels, not args.no_peers)
        if args.sweep:
            sweep(path)


if __name__ == "__main__":
    main()
