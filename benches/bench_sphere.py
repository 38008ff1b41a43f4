"""The sphere and grid codecs against jzip-zig: microbenchmarks and the issue's measurements.

``python -m pytest benches/bench_sphere.py --benchmark-only`` times encode and decode of
sphere, grid and (when installed) jzip-zig on the shipped sample, threads=1.

``python benches/bench_sphere.py [--repeat 7] [--out bench-out/sphere.json]`` measures on
the real data of /work/shared/data (or ``--data DIR``), in one run:

* jzip-zig (level 1, threads=1) on the MiniLM sentence embeddings: ratio, largest error,
  encode and decode time;
* sphere and grid with ``max_abs_error`` set to jzip-zig's largest error: ratio, largest
  error, encode and decode time with threads=1, and the speed-ups over jzip-zig;
* the largest error of sphere and jzip-zig on the raw (non-unit) token embeddings.

Times are CPU seconds of this process (``time.process_time``), median of ``--repeat`` runs
that alternate between the tools, so that load from other processes on a shared machine
hurts every tool alike.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pytest

import spherecodec

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "minilm-sentences-512.npy"
JZIP_BOUND = 7.4505806e-08

try:
    import jzip
except ImportError:  # jzip-zig is a peer, not a dependency
    jzip = None


# --- microbenchmarks ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample():
    return np.load(SAMPLE)


def _report(benchmark, nbytes):
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["MB/s"] = round(nbytes / 1e6 / benchmark.stats.stats.median, 1)


@pytest.mark.parametrize("codec", ["sphere", "grid"])
def test_encode(benchmark, sample, codec):
    benchmark(spherecodec.encode, sample, codec, threads=1, max_abs_error=JZIP_BOUND)
    _report(benchmark, sample.nbytes)


@pytest.mark.parametrize("codec", ["sphere", "grid"])
def test_decode(benchmark, sample, codec):
    blob = spherecodec.encode(sample, codec, max_abs_error=JZIP_BOUND)
    benchmark(spherecodec.decode, blob, threads=1)
    _report(benchmark, sample.nbytes)


@pytest.mark.skipif(jzip is None, reason="jzip-zig not installed")
def test_jzip_encode(benchmark, sample):
    benchmark(jzip.compress, sample, level=1, threads=1)
    _report(benchmark, sample.nbytes)


@pytest.mark.skipif(jzip is None, reason="jzip-zig not installed")
def test_jzip_decode(benchmark, sample):
    blob = jzip.compress(sample, level=1, threads=1)
    benchmark(jzip.decompress, blob, threads=1)
    _report(benchmark, sample.nbytes)


# --- the measurements ---------------------------------------------------------------

def _timed(fn):
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


def _max_error(decoded, original):
    return float(np.abs(decoded.astype(np.float64) - original.astype(np.float64)).max())


def measure(data_dir, repeat):
    """Every figure of docs/sphere.md's comparison with jzip-zig, in one run."""
    if jzip is None:
        raise SystemExit("jzip-zig is needed for this comparison (pip install jzip-zig)")
    x = np.load(Path(data_dir) / "minilm-stdlib-sentences-384.npy")
    raw = np.load(Path(data_dir) / "minilm-stdlib-tokens-raw-384.npy")
    jblob = jzip.compress(x, level=1, threads=1)
    bound = _max_error(jzip.decompress(jblob, threads=1), x)
    tools = {
        "jzip": (lambda: jzip.compress(x, level=1, threads=1), lambda b: jzip.decompress(b, threads=1)),
        "sphere": (lambda: spherecodec.encode(x, "sphere", threads=1, max_abs_error=bound),
                   lambda b: spherecodec.decode(b, threads=1)),
        "grid": (lambda: spherecodec.encode(x, "grid", threads=1, max_abs_error=bound),
                 lambda b: spherecodec.decode(b, threads=1)),
    }
    times = {name: {"encode": [], "decode": []} for name in tools}
    blobs = {name: enc() for name, (enc, _) in tools.items()}  # warm up (JIT, caches)
    for _ in range(repeat):
        for name, (enc, dec) in tools.items():
            t, blobs[name] = _timed(enc)
            times[name]["encode"].append(t)
            t, _ = _timed(lambda: dec(blobs[name]))
            times[name]["decode"].append(t)
    result = {"data": "minilm-stdlib-sentences-384.npy", "shape": list(x.shape),
              "max_abs_error": bound, "repeat": repeat, "tools": {}}
    for name, (_, dec) in tools.items():
        enc_t = float(np.median(times[name]["encode"]))
        dec_t = float(np.median(times[name]["decode"]))
        result["tools"][name] = {
            "ratio": x.nbytes / len(blobs[name]),
            "max_error": _max_error(dec(blobs[name]), x),
            "encode_s": enc_t, "decode_s": dec_t,
            "encode_MBps": x.nbytes / 1e6 / enc_t, "decode_MBps": x.nbytes / 1e6 / dec_t,
        }
    for name in ("sphere", "grid"):
        tool = result["tools"][name]
        tool["encode_speedup_vs_jzip"] = result["tools"]["jzip"]["encode_s"] / tool["encode_s"]
        tool["decode_speedup_vs_jzip"] = result["tools"]["jzip"]["decode_s"] / tool["decode_s"]
    raw_sphere = spherecodec.decode(spherecodec.encode(raw, "sphere", max_abs_error=bound))
    raw_jzip = jzip.decompress(jzip.compress(raw, level=1, threads=1))
    result["raw_tokens"] = {"data": "minilm-stdlib-tokens-raw-384.npy", "shape": list(raw.shape),
                            "sphere_max_error": _max_error(raw_sphere, raw),
                            "jzip_max_error": _max_error(raw_jzip, raw)}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="/work/shared/data")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    result = measure(args.data, args.repeat)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
