"""spherecodec rabitq and binary against faiss IndexRaBitQ, same run, same split.

Corpus = all but the last 1,000 rows, queries = the last 1,000; truth = exact float32
inner-product top-10. For each bit width: recall@10 raw, recall@10 after rescoring with
the exact rows (``oversample`` x 10 candidates; rabitq rescores only those its error bound
allows, faiss all of them), bytes/vector (spherecodec: the whole blob / rows; faiss: its
code_size), encode time (spherecodec: fit + code, ``spherecodec.encode``; faiss: train +
add), queries/s of the code search at threads=1 and 2. Times are medians of ``--repeat``
interleaved runs.

    python benches/bench_rabitq.py /work/shared/data/minilm-stdlib-sentences-384.npy
"""

import argparse
import os
import statistics
import tempfile
import time

import faiss
import numba
import numpy as np

import spherecodec

try:  # the RaBitQ authors' library (PyPI rabitqlib), an optional peer
    import rabitqlib
except ImportError:
    rabitqlib = None


def recall(ids, truth):
    """Mean fraction of each query's true top-k found in ``ids``."""
    k = truth.shape[1]
    return float(np.mean([len(set(a[:k]) & set(b)) / k for a, b in zip(ids, truth)]))


def rescore(base, queries, cand, k):
    """Exact top-k among candidate ids (the same rescoring for faiss as spherecodec's)."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for qi in range(len(queries)):
        c = cand[qi][cand[qi] >= 0]
        out[qi] = c[np.argsort(-(base[c] @ queries[qi]), kind="stable")[:k]]
    return out


def timed(fn, repeat):
    """(median seconds, last result) of ``repeat`` calls."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def rabitqlib_row(base, queries, truth, bits, k, over):
    """rabitqlib's IVF index with one cluster (centre: the mean), i.e. flat RaBitQ codes;
    bytes/vector: its saved file / rows."""
    t0 = time.perf_counter()
    index = rabitqlib.IvfIndex(base.shape[1], len(base), 1, bits, metric="ip")
    index.build(base, base.mean(axis=0, keepdims=True), np.zeros(len(base), np.uint32), num_threads=1)
    encode = time.perf_counter() - t0
    t0 = time.perf_counter()
    found = index.search(queries, k, 1, num_threads=1)
    qps = len(queries) / (time.perf_counter() - t0)
    ids = np.asarray(found[0] if np.asarray(found[0]).dtype.kind in "iu" else found[1]).astype(np.int64)
    more = index.search(queries, k * over, 1, num_threads=1)
    cand = np.asarray(more[0] if np.asarray(more[0]).dtype.kind in "iu" else more[1]).astype(np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "index.bin")
        index.save(path)
        size = os.path.getsize(path)
    return (f"| rabitqlib IvfIndex(1 cluster) {bits} bit | {size / len(base):.1f} | {recall(ids, truth):.4f} "
            f"| {recall(rescore(base, queries, cand, k), truth):.4f} | {k * over} | {encode:.3f} | {qps:,.0f} | |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--bits", default="1,2,4,8")
    parser.add_argument("--oversample", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    x = np.load(args.path).astype(np.float32)
    base, queries = np.ascontiguousarray(x[:-1000]), np.ascontiguousarray(x[-1000:])
    k, over = 10, args.oversample
    truth = np.argsort(-(queries @ base.T), axis=1, kind="stable")[:, :k]
    print(f"{args.path}: corpus {base.shape}, queries {queries.shape}, k={k}, oversample={over}")
    header = ("| codes | bytes/vector | recall@10 | rescored | rescored per query | encode s (1 thr) "
              "| qps thr=1 | qps thr=2 |")
    print(header)
    print("|" + "---|" * 8)
    # warm up the compiled kernels outside the timings
    warm = spherecodec.encode(base[:100], "rabitq", bits=1)
    spherecodec.search(warm, queries[:2], k)
    for bits in [int(b) for b in args.bits.split(",")]:
        rows = {}
        for _ in range(args.repeat):  # interleave the two encoders
            faiss.omp_set_num_threads(1)
            index = faiss.IndexRaBitQ(base.shape[1], faiss.METRIC_INNER_PRODUCT, bits)
            t0 = time.perf_counter()
            index.train(base)
            index.add(base)
            rows.setdefault("faiss_enc", []).append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            blob = spherecodec.encode(base, "rabitq", bits=bits, threads=1)
            rows.setdefault("ours_enc", []).append(time.perf_counter() - t0)
        ours_q, faiss_q = {}, {}
        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            qs_f, qs_o = [], []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                _, fi = index.search(queries, k)
                qs_f.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                _, oi = spherecodec.search(blob, queries, k, threads=threads)
                qs_o.append(time.perf_counter() - t0)
            faiss_q[threads] = len(queries) / statistics.median(qs_f)
            ours_q[threads] = len(queries) / statistics.median(qs_o)
        _, fi4 = index.search(queries, k * over)
        _, ours_r, n_rescored = spherecodec.search(blob, queries, k, rescore_with=base, oversample=over,
                                                   return_rescored=True)
        print(f"| spherecodec rabitq {bits} bit | {len(blob) / len(base):.1f} | {recall(oi, truth):.4f} "
              f"| {recall(ours_r, truth):.4f} | {n_rescored.mean():.1f} of {k * over} "
              f"| {statistics.median(rows['ours_enc']):.3f} | {ours_q[1]:,.0f} | {ours_q[2]:,.0f} |")
        print(f"| faiss IndexRaBitQ {bits} bit | {index.code_size} | {recall(fi, truth):.4f} "
              f"| {recall(rescore(base, queries, fi4, k), truth):.4f} | {k * over} "
              f"| {statistics.median(rows['faiss_enc']):.3f} | {faiss_q[1]:,.0f} | {faiss_q[2]:,.0f} |")
        if rabitqlib is not None:
            print(rabitqlib_row(base, queries, truth, bits, k, over))
    # binary: asymmetric (default) and Hamming, rescored the same way
    blob = spherecodec.encode(base, "binary")
    for hamming in (False, True):
        _, ids = spherecodec.search(blob, queries, k, hamming=hamming, threads=1)
        _, rids = spherecodec.search(blob, queries, k, hamming=hamming, rescore_with=base, oversample=over)
        name = "Hamming" if hamming else "asymmetric"
        print(f"| spherecodec binary, {name} | {len(blob) / len(base):.1f} | {recall(ids, truth):.4f} "
              f"| {recall(rids, truth):.4f} | {k * over} | | | |")
    print(f"numba threads available: {numba.config.NUMBA_NUM_THREADS}; rabitqlib "
          f"{'measured (one run, threads=1)' if rabitqlib is not None else 'not installed'}")


if __name__ == "__main__":
    main()
