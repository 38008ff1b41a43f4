"""One vector at a time (issue 20): frames against ZipNN and zstd with a trained dictionary.

Run the table: ``python benches/bench_frames.py [minilm|mpnet]`` (threads=1, every peer in
the same run, calls interleaved round-robin, medians). The data: the shared MiniLM sentences
(../shared/data, 11,803 x 384; ``mpnet``: the mpnet sentences, 8,000 x 768) when present,
else the tests' 512-row sample; dictionaries (ours and zstd's 16 KiB one) are trained on the
first 5,000 rows (the first half of the sample) and every other row is coded alone. Ratios
exclude the dictionaries, as zstd's.

Two more tables: rabitq frames (1, 2 and 4 bits: bytes per frame against the codec's bytes
per row in a blob of all the rows), and issue 22's shapes (the test rows turned into
float32 that was bfloat16 or float16, all-zero and constant vectors), each coded alone
with the same dictionaries (trained on the plain rows) against ZipNN and zstd.

The pytest-benchmark functions below time the same calls:
``python -m pytest benches/bench_frames.py --benchmark-only --benchmark-group-by=group``.
"""

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import spherecodec

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "minilm-stdlib-sentences-384.npy"
SHARED_MPNET = ROOT.parent / "shared" / "data" / "mpnet-stdlib-sentences-768.npy"
SAMPLE = ROOT / "tests" / "data" / "minilm-sentences-512.npy"
ZSTD_DICT_BYTES = 16 << 10
RABITQ_BITS = (1, 2, 4)


def load(name="minilm"):
    """(train rows, test rows) as described in the module docstring."""
    shared = SHARED_MPNET if name == "mpnet" else SHARED
    x = np.ascontiguousarray(np.load(shared if shared.exists() else SAMPLE))
    cut = 5000 if len(x) > 5000 else len(x) // 2
    return x[:cut], x[cut:]


class Coder:
    """One way of coding a single vector: ``encode(row) -> bytes``, ``decode(bytes) -> row``."""

    def __init__(self, name, encode, decode):
        self.name, self.encode, self.decode = name, encode, decode


def coders(train, dim):
    """Every single-vector coder of the table, trained on ``train`` where it takes a model."""
    import zipnn
    import zstandard

    d = spherecodec.train_dictionary(train)
    i8 = spherecodec.train_dictionary(train, "int8")
    zdict = zstandard.train_dictionary(ZSTD_DICT_BYTES, [r.tobytes() for r in train])
    zc19 = zstandard.ZstdCompressor(level=19, dict_data=zdict)
    zd19 = zstandard.ZstdDecompressor(dict_data=zdict)
    zc3, zd3 = zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()
    zn = zipnn.ZipNN(bytearray_dtype="float32", input_format="byte", threads=1)

    def from_bytes(b):
        return np.frombuffer(b, dtype=np.float32)

    return d, i8, [
        Coder("spherecodec frame (exact)", lambda r: spherecodec.encode(r, dictionary=d),
              lambda b: spherecodec.decode(b, dictionary=d)),
        Coder("spherecodec blob per vector (exact)", lambda r: spherecodec.encode(r, threads=1),
              lambda b: spherecodec.decode(b, threads=1)),
        Coder("ZipNN", lambda r: bytes(zn.compress(r.tobytes())), lambda b: from_bytes(zn.decompress(b))),
        Coder("zstd-19 + 16 KiB trained dictionary", lambda r: zc19.compress(r.tobytes()),
              lambda b: from_bytes(zd19.decompress(b))),
        Coder("zstd-3", lambda r: zc3.compress(r.tobytes()), lambda b: from_bytes(zd3.decompress(b))),
        Coder("spherecodec frame (int8, lossy)", lambda r: spherecodec.encode(r, dictionary=i8),
              lambda b: spherecodec.decode(b, dictionary=i8)),
    ]


def _median_us(times):
    return statistics.median(times) / 1e3


def measure_single(all_coders, test, calls=300, rounds=7):
    """Per coder: ratio over every test row coded alone, lossless or not, and the median
    encode and decode time of one call (``rounds`` rounds of ``calls`` rows, coders
    interleaved round by round)."""
    rows = {}
    for c in all_coders:
        frames = [c.encode(r) for r in test]
        exact = all(np.array_equal(c.decode(f).view(np.uint32), r.view(np.uint32)) for f, r in zip(frames, test))
        rows[c.name] = {"ratio": test.nbytes / sum(map(len, frames)), "exact": exact, "enc": [], "dec": [],
                        "frames": frames}
    rng = np.random.default_rng(0)
    for _ in range(rounds):
        pick = rng.choice(len(test), size=min(calls, len(test)), replace=False)
        for c in all_coders:
            r = rows[c.name]
            for i in pick:
                row = test[i]
                t0 = time.perf_counter_ns()
                c.encode(row)
                t1 = time.perf_counter_ns()
                c.decode(r["frames"][i])
                t2 = time.perf_counter_ns()
                r["enc"].append(t1 - t0)
                r["dec"].append(t2 - t1)
    return rows


def measure_batches(d, test, rounds=7):
    """encode_many/decode_many of 1,000 vectors and a plain blob of 32 rows: MB/s and us
    (medians of ``rounds``, interleaved)."""
    many = np.ascontiguousarray(test[:1000])
    b32 = np.ascontiguousarray(test[1000:1032] if len(test) >= 1032 else test[:32])
    frames = spherecodec.encode_many(many, dictionary=d)
    blob = spherecodec.encode(b32, threads=1)
    assert np.array_equal(spherecodec.decode_many(frames, dictionary=d).view(np.uint32), many.view(np.uint32))
    t = {"many_enc": [], "many_dec": [], "b32_enc": [], "b32_dec": []}
    cpu = {k: [] for k in t}
    for _ in range(rounds):
        for key, fn, reps in (("many_enc", lambda: spherecodec.encode_many(many, dictionary=d), 3),
                              ("many_dec", lambda: spherecodec.decode_many(frames, dictionary=d), 3),
                              ("b32_enc", lambda: spherecodec.encode(b32, threads=1), 100),
                              ("b32_dec", lambda: spherecodec.decode(blob, threads=1), 100)):
            t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            for _ in range(reps):
                fn()
            t[key].append((time.perf_counter_ns() - t0) / reps)
            cpu[key].append((time.thread_time_ns() - c0) / reps)
    med = {k: statistics.median(v) for k, v in t.items()}
    # CPU time of the calling thread (all of the work: threads=1): what a shared machine's
    # other jobs do not add to, unlike the wall clock (the README's encode_cpu_mbps)
    mcpu = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "encode_many MB/s": many.nbytes / med["many_enc"] * 1e3,
        "decode_many MB/s": many.nbytes / med["many_dec"] * 1e3,
        "encode_many MB/s per CPU-second": many.nbytes / mcpu["many_enc"] * 1e3,
        "decode_many MB/s per CPU-second": many.nbytes / mcpu["many_dec"] * 1e3,
        "encode_many frames": len(many),
        "blob of 32 rows encode us": med["b32_enc"] / 1e3,
        "blob of 32 rows decode us": med["b32_dec"] / 1e3,
        "blob of 32 rows encode CPU us": mcpu["b32_enc"] / 1e3,
        "blob of 32 rows decode CPU us": mcpu["b32_dec"] / 1e3,
        "blob of 32 rows ratio": b32.nbytes / len(blob),
    }


def shapes(test):
    """Issue 22's shapes of the test rows (bit patterns, float32)."""
    bits = test.view(np.uint32)
    return {
        "float32 that was bfloat16": (bits & np.uint32(0xFFFF0000)).view(np.float32),
        "float32 that was float16": test.astype(np.float16).astype(np.float32),
        "all zeros": np.zeros_like(test),
        "constant (0.25)": np.full_like(test, 0.25),
    }


def measure_shapes(all_coders, test, calls=100, rounds=3):
    """``measure_single`` of the bit-exact coders on every shape of ``test``."""
    lossless = [c for c in all_coders if "lossy" not in c.name and "blob per vector" not in c.name]
    return {name: measure_single(lossless, rows, calls=calls, rounds=rounds) for name, rows in shapes(test).items()}


def measure_rabitq(train, test, calls=300, rounds=5):
    """Per bit width: bytes per frame, the codec's bytes per row in one blob of every test
    row, median encode/decode us of one frame, encode_many/decode_many MB/s of 1,000."""
    out = {}
    for bits in RABITQ_BITS:
        d = spherecodec.train_dictionary(train, "rabitq", bits=bits)
        fitted = spherecodec.fit("rabitq", train, bits=bits)
        frames = spherecodec.encode_many(test, dictionary=d)
        blob = fitted.encode(test, threads=1)
        many = np.ascontiguousarray(test[:1000])
        row = {"frame bytes": statistics.mean(map(len, frames)), "blob bytes per row": len(blob) / len(test),
               "codec row bytes": (test.shape[1] * bits + 7) // 8 + 6, "enc": [], "dec": [], "many_enc": [],
               "many_dec": []}
        fm = spherecodec.encode_many(many, dictionary=d)
        rng = np.random.default_rng(0)
        for _ in range(rounds):
            for i in rng.choice(len(test), size=min(calls, len(test)), replace=False):
                t0 = time.perf_counter_ns()
                spherecodec.encode(test[i], dictionary=d)
                t1 = time.perf_counter_ns()
                spherecodec.decode(frames[i], dictionary=d)
                t2 = time.perf_counter_ns()
                row["enc"].append(t1 - t0)
                row["dec"].append(t2 - t1)
            t0 = time.perf_counter_ns()
            spherecodec.encode_many(many, dictionary=d)
            t1 = time.perf_counter_ns()
            spherecodec.decode_many(fm, dictionary=d)
            t2 = time.perf_counter_ns()
            row["many_enc"].append(many.nbytes / (t1 - t0) * 1e3)
            row["many_dec"].append(many.nbytes / (t2 - t1) * 1e3)
        out[bits] = row
    return out


def main(name="minilm"):
    """Print the tables."""
    import platform
    import subprocess

    train, test = load(name)
    d, i8, all_coders = coders(train, train.shape[1])
    # warm-up: compile every kernel before timing
    for c in all_coders:
        c.decode(c.encode(test[0]))
    measure_batches(d, test, rounds=1)
    single = measure_single(all_coders, test)
    batch = measure_batches(d, test)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")),
                 platform.processor())
    print(f"{len(test)} vectors of {test.shape[1]} values coded alone, dictionaries trained on {len(train)} "
          f"rows; threads=1; {model}; median of {len(next(iter(single.values()))['enc'])} calls each\n")
    print("| coder | bit-exact | ratio, 1 vector | encode us | decode us |")
    print("|---|---|---:|---:|---:|")
    for name, r in single.items():
        print(f"| {name} | {'yes' if r['exact'] else 'no'} | {r['ratio']:.3f} | {_median_us(r['enc']):.1f} | "
              f"{_median_us(r['dec']):.1f} |")
    print(f"\nexact dictionary {len(d.to_bytes())} bytes, int8 dictionary {len(i8.to_bytes())} bytes "
          f"(not counted, as zstd's {ZSTD_DICT_BYTES} bytes are not)\n")
    for k, v in batch.items():
        print(f"{k}: {v:,.3f}" if isinstance(v, float) else f"{k}: {v}")
    rabitq = measure_rabitq(train, test)
    print("\n| rabitq frame | bytes per frame | codec's bytes per row (codes + factors) | blob bytes per row "
          "(all rows) | encode us | decode us | encode_many MB/s | decode_many MB/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for bits, r in rabitq.items():
        print(f"| {bits} bit | {r['frame bytes']:.1f} | {r['codec row bytes']} | {r['blob bytes per row']:.1f} | "
              f"{_median_us(r['enc']):.1f} | {_median_us(r['dec']):.1f} | {statistics.median(r['many_enc']):,.0f} | "
              f"{statistics.median(r['many_dec']):,.0f} |")
    shaped = measure_shapes(all_coders, test)
    print("\n| shape | coder | bit-exact | ratio, 1 vector | encode us | decode us |")
    print("|---|---|---|---:|---:|---:|")
    for shape, rows in shaped.items():
        for coder, r in rows.items():
            print(f"| {shape} | {coder} | {'yes' if r['exact'] else 'no'} | {r['ratio']:.3f} | "
                  f"{_median_us(r['enc']):.1f} | {_median_us(r['dec']):.1f} |")
    return single, batch, rabitq, shaped


# -- pytest-benchmark ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data():
    train, test = load()
    return spherecodec.train_dictionary(train), test


@pytest.mark.benchmark(group="one vector")
def test_frame_encode(benchmark, data):
    d, test = data
    benchmark(spherecodec.encode, test[1], dictionary=d)


@pytest.mark.benchmark(group="one vector")
def test_frame_decode(benchmark, data):
    d, test = data
    frame = spherecodec.encode(test[1], dictionary=d)
    benchmark(spherecodec.decode, frame, dictionary=d)


@pytest.mark.benchmark(group="1,000 frames")
def test_encode_many(benchmark, data):
    d, test = data
    benchmark(spherecodec.encode_many, test[:1000], dictionary=d)


@pytest.mark.benchmark(group="1,000 frames")
def test_decode_many(benchmark, data):
    d, test = data
    frames = spherecodec.encode_many(test[:1000], dictionary=d)
    benchmark(spherecodec.decode_many, frames, dictionary=d)


@pytest.mark.benchmark(group="blob of 32 rows")
def test_blob32_encode(benchmark, data):
    benchmark(spherecodec.encode, np.ascontiguousarray(data[1][:32]), threads=1)


@pytest.mark.benchmark(group="blob of 32 rows")
def test_blob32_decode(benchmark, data):
    blob = spherecodec.encode(np.ascontiguousarray(data[1][:32]), threads=1)
    benchmark(spherecodec.decode, blob, threads=1)


if __name__ == "__main__":
    main(*sys.argv[1:2])
    sys.exit(0)
