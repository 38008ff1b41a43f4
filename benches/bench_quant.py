"""Quantization codecs: microbenchmarks (pytest-benchmark) and the issue's measurements.

``python -m pytest benches/bench_quant.py --benchmark-only`` times encode, decode and search
of int8, int4, binary and pq on the shipped sample (tests/data/minilm-sentences-512.npy).

``python benches/bench_quant.py [--repeat 5] [--out bench-out/quant.json]`` measures, on the
real data of /work/shared/data (or ``--data DIR``), everything docs/quantization.md reports:

* recall@10 of every codec on MiniLM sentence embeddings with the last 1000 rows held out as
  queries, on the codes and after 4x oversampled rescoring;
* PQ (m=48, nbits=8) against faiss-cpu's ProductQuantizer with the same m and nbits in the
  same run: recall@10 and training + encoding time, single-threaded (faiss.omp_set_num_threads(1),
  numba.set_num_threads(1)) and with every core, median of ``--repeat`` alternating runs;
* ratios on 13,000 x 384 unit token embeddings, and what ``entropy=True`` gains per codec.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pytest

import spherecodec
from spherecodec.fit import FittedCodec

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "minilm-sentences-512.npy"


# --- microbenchmarks ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample():
    return np.load(SAMPLE)


def _median(benchmark):
    # None under --benchmark-disable
    stats = getattr(benchmark, "stats", None)
    return stats.stats.median if stats else None


def _report(benchmark, nbytes):
    if _median(benchmark):
        benchmark.extra_info["MB/s"] = round(nbytes / 1e6 / _median(benchmark), 1)


@pytest.mark.parametrize("codec", ["int8", "int4", "binary", "bf16"])
def test_encode(benchmark, sample, codec):
    fitted = spherecodec.fit(codec, sample)
    benchmark(fitted.encode, sample, threads=1)
    _report(benchmark, sample.nbytes)


@pytest.mark.parametrize("codec", ["int8", "int4", "binary", "bf16"])
def test_decode(benchmark, sample, codec):
    blob = spherecodec.encode(sample, codec)
    benchmark(spherecodec.decode, blob, threads=1)
    _report(benchmark, sample.nbytes)


def test_pq_train_m48_nbits6(benchmark, sample):
    benchmark.pedantic(spherecodec.fit, args=("pq", sample), kwargs={"m": 48, "nbits": 6}, rounds=3)


@pytest.mark.parametrize("codec", ["int8", "binary", "pq"])
def test_search(benchmark, sample, codec):
    params = {"m": 48, "nbits": 6} if codec == "pq" else {}
    blob = spherecodec.encode(sample[:448], codec, **params)
    scores, ids = benchmark(spherecodec.search, blob, sample[448:], 10, threads=1)
    assert ids.shape == (64, 10)
    if _median(benchmark):
        benchmark.extra_info["queries/s"] = round(64 / _median(benchmark), 1)


# --- the measurements -----------------------------------------------------------------

def _recall(ids, truth):
    k = truth.shape[1]
    return float(np.mean([np.intersect1d(a, b).size / k for a, b in zip(ids, truth)]))


def _threads(n):
    import faiss
    import numba

    faiss.omp_set_num_threads(n)
    numba.set_num_threads(n)


def measure_recall(base, queries, k=10):
    rows = spherecodec.evaluate(base, [
        "fp16", "bf16", "int8", ("int8", {"symmetric": True}), "int4", ("int4", {"clip": 99.9}),
        "binary", ("binary", {"center": False}), ("pq", {"m": 48, "nbits": 8}),
    ], queries=queries, k=k, oversample=4, repeat=1)
    return rows


def measure_pq_vs_faiss(base, queries, repeat, k=10):
    import faiss
    import numba

    m, nbits = 48, 8
    truth = np.argsort(-(queries @ base.T), axis=1, kind="stable")[:, :k]
    out = {}
    for label, n_threads in (("1 thread", 1), (f"{numba.config.NUMBA_NUM_THREADS} threads",
                                                numba.config.NUMBA_NUM_THREADS)):
        _threads(n_threads)
        ours_t, faiss_t = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fitted = spherecodec.fit("pq", base, m=m, nbits=nbits)
            blob = fitted.encode(base, threads=n_threads)
            ours_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            pq = faiss.ProductQuantizer(base.shape[1], m, nbits)
            pq.train(base)
            codes = pq.compute_codes(base)
            faiss_t.append(time.perf_counter() - t0)
        ours = float(np.median(ours_t))
        theirs = float(np.median(faiss_t))
        out[label] = {"ours_s": ours, "faiss_s": theirs, "ratio": ours / theirs,
                      "ours_runs": ours_t, "faiss_runs": faiss_t}
    _, ids = spherecodec.search(blob, queries, k)
    decoded = pq.decode(codes)
    faiss_ids = np.argsort(-(queries @ decoded.T), axis=1, kind="stable")[:, :k]
    _, ids_rescored = spherecodec.search(blob, queries, k, rescore_with=base, oversample=4)
    out["recall"] = {"ours": _recall(ids, truth), "faiss": _recall(faiss_ids, truth),
                     "ours_rescored_4x": _recall(ids_rescored, truth)}
    # search speed on the codes, 1000 queries
    _threads(1)
    t0 = time.perf_counter()
    spherecodec.search(blob, queries, k, threads=1)
    out["search_1000_queries_s"] = time.perf_counter() - t0
    return out


def measure_ratios(x):
    rows = []
    for codec, params in [("fp16", {}), ("bf16", {}), ("int8", {}), ("int4", {}), ("binary", {}),
                          ("pq", {"m": 48, "nbits": 8})]:
        fitted = spherecodec.fit(codec, x, **params)
        plain = fitted.encode(x)
        # the same fitted state under entropy=True: only the chunk coding differs
        coded_codec = spherecodec.get_codec(codec)(**{**fitted.get_config(), "entropy": True})
        coded = spherecodec.encode(x, FittedCodec(coded_codec, fitted.state))
        rows.append({"codec": codec, "ratio": x.nbytes / len(plain), "ratio_entropy": x.nbytes / len(coded),
                     "entropy_gain": len(plain) / len(coded) - 1})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="/work/shared/data")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench-out" / "quant.json"))
    args = parser.parse_args()
    data = Path(args.data)
    sentences = np.load(data / "minilm-stdlib-sentences-384.npy")
    base, queries = sentences[:-1000], sentences[-1000:]
    tokens = np.load(data / "minilm-stdlib-tokens-unit-384.npy")[:13000]
    result = {"corpus": list(base.shape), "queries": list(queries.shape)}
    # compile every kernel first, so that no timing below includes Numba's compilation
    measure_recall(base[:600], queries[:20])
    result["ratios_13000x384"] = measure_ratios(tokens)
    for r in result["ratios_13000x384"]:
        print(f"{r['codec']:7s} ratio {r['ratio']:7.3f}  entropy=True {r['ratio_entropy']:7.3f} "
              f"(+{100 * r['entropy_gain']:.1f}%)")
    _threads(1)
    result["recall"] = measure_recall(base, queries)
    for r in result["recall"]:
        print(f"{r['codec']:7s} {json.dumps(r['params'], sort_keys=True):80s} ratio {r['ratio']:7.3f} "
              f"recall@10 {r['recall']:.4f} rescored {r['recall_rescored']:.4f} "
              f"max err {r['max_abs_error']:.2e} mean {r['mean_abs_error']:.2e} "
              f"enc {r['encode_MBps']:.0f} dec {r['decode_MBps']:.0f} MB/s")
    result["pq_vs_faiss"] = measure_pq_vs_faiss(base, queries, args.repeat)
    print(json.dumps(result["pq_vs_faiss"], indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
