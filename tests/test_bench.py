"""The benchmark tool: table, JSON and plots written, exactness judged bit for bit, peers and
codecs that are missing or broken reported (skipped or failed, nothing measured) instead of
crashing, recall@k computed right.

The real run measures every peer whose package the project's ``test`` or ``bench`` extra
installs (the README's test command installs both), and requires each to run: a missing one
fails with its reason. What the bench does when a peer or an optional dependency is missing
is checked on simulated ones (monkeypatch), never by reading a real peer's fields
conditionally.
"""

import contextlib
import importlib
import io
import json
import os
import re
import subprocess
import sys
from importlib import metadata

import ml_dtypes
import numpy as np
import pytest

import spherecodec
from spherecodec import bench
from spherecodec.bench import candidates, peers, quality
from spherecodec.bench.result import BenchResult
from spherecodec.codecs.base import Codec

DATA = os.path.join(os.path.dirname(__file__), "data", "minilm-sentences-512.npy")
#: the keys of every row of results.json
RESULT_KEYS = {"name", "source", "status", "reason", "description", "exact_claimed", "bit_exact",
               "ratio", "raw_bytes", "compressed_bytes", "bytes_per_vector", "encode_mbps",
               "decode_mbps", "encode_seconds", "decode_seconds", "encode_cpu_seconds",
               "decode_cpu_seconds", "max_abs_error", "rmse", "recall", "k", "notes", "threads",
               "fit_seconds", "fit_in_encode", "encode_cpu_mbps", "decode_cpu_mbps"}
#: the fields a skipped row has nothing in
MEASURED = ("bit_exact", "ratio", "compressed_bytes", "bytes_per_vector", "max_abs_error", "rmse",
            "recall", "fit_seconds")
SPEEDS = ("encode_mbps", "decode_mbps", "encode_cpu_mbps", "decode_cpu_mbps", "encode_seconds",
          "decode_seconds", "encode_cpu_seconds", "decode_cpu_seconds")


def _extras_packages(*extras):
    """Distributions that the project's ``extras`` install, from the installed metadata."""
    names = set()
    for req in metadata.requires("spherecodec") or []:
        spec, _, marker = req.partition(";")
        if any(f'extra == "{e}"' in marker for e in extras):
            names.add(re.match(r"[A-Za-z0-9_.-]+", spec.strip()).group(0).lower())
    return names


# the peers the test environment has: those whose package the test or bench extra installs
INSTALLED_PEERS = [p for p in peers.all_peers() if p.package.lower() in _extras_packages("test", "bench")]
PEER_NAMES = [p.name for p in INSTALLED_PEERS]


@pytest.fixture(scope="module")
def real_rows():
    return np.load(DATA)[:160]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, real_rows):
    """One CLI run with every peer of the extras on 160 real MiniLM rows, shared by the checks."""
    tmp = tmp_path_factory.mktemp("bench")
    path = tmp / "data.npy"
    np.save(path, real_rows)
    out = tmp / "out"
    argv = [str(path), "--codecs", "exact", "--peers", *PEER_NAMES, "--threads", "2", "--repeats", "2",
            "--out", str(out), "-q"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = bench.main(argv)
    results = {r["name"]: r for r in json.loads((out / "results.json").read_text())["results"]}
    return status, buf.getvalue(), out, results


def test_the_extras_install_the_main_peers():
    # faiss (the quantizer peers), zstd and matplotlib must be among the measured ones
    assert {"zstd-3", "faiss-sq8", "faiss-sq-fp16", "faiss-pq", "pcodec-8", "zipnn"} <= set(PEER_NAMES)


def test_every_peer_of_the_extras_ran(cli_run):
    """A peer whose package is missing fails here with the reason (install the extras)."""
    _, _, _, results = cli_run
    rows = [r for r in results.values() if r["source"] == "peer"]
    assert len(rows) == len(PEER_NAMES)
    for r in rows:
        assert r["status"] == "ok", (r["name"], r["reason"], "pip install -e '.[test,bench]'")


def test_cli_prints_the_table_with_every_peer(cli_run):
    status, stdout, _, _ = cli_run
    assert status == 0
    header = "| " + " | ".join(bench.table_columns([1, 2])) + " |"
    assert header in stdout.splitlines()
    for peer in INSTALLED_PEERS:
        # measured rows say yes/no under bit-exact (a skipped one says —); faiss-pq is named by
        # its fitted shape (faiss-pq48x7 on 144 rows of 384-d)
        name = "faiss-pq48x7" if peer.name == "faiss-pq" else peer.name
        assert f"| {name} | peer | {'yes' if peer.exact else 'no'} |" in stdout, name
    assert "| exact | spherecodec | yes |" in stdout


def test_cli_writes_markdown_json_and_png_plots(cli_run):
    _, _, out, results = cli_run
    md = (out / "results.md").read_text()
    assert "| codec | from | bit-exact | ratio |" in md
    assert "| enc MB/s 1T cpu | dec MB/s 1T cpu |" in md
    assert "144 base rows compressed, 16 held-out queries" in md
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["ratio_vs_decode_speed.png", "ratio_vs_max_error.png",
                    "recall_vs_bytes_per_vector.png"]
    for name in pngs:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in md
    payload = json.loads((out / "results.json").read_text())
    assert payload["data"]["rows"] == 160 and payload["data"]["dim"] == 384
    assert payload["settings"]["thread_counts"] == [1, 2]
    assert payload["machine"]["versions"]["numpy"] == np.__version__
    for r in results.values():
        assert set(r) == RESULT_KEYS, r["name"]


def test_cli_judges_exactness_by_bits_and_measures_lossy_error(cli_run):
    _, _, _, results = cli_run
    exact = results["exact"]
    assert exact["status"] == "ok" and exact["bit_exact"] is True
    assert exact["max_abs_error"] == 0 and exact["recall"] == 1.0
    assert exact["ratio"] > 1.1  # real embeddings: sign/exponent bits are very skewed
    assert exact["compressed_bytes"] == len(spherecodec.encode(np.load(DATA)[:144]))
    assert len(exact["encode_seconds"]["1"]) == 2 and len(exact["encode_seconds"]["2"]) == 2
    assert len(exact["decode_cpu_seconds"]["2"]) == 2 and min(exact["decode_cpu_seconds"]["1"]) >= 0
    assert exact["decode_mbps"]["1"] > 0 and exact["decode_mbps"]["2"] > 0
    for peer in INSTALLED_PEERS:
        name = "faiss-pq48x7" if peer.name == "faiss-pq" else peer.name
        r = results[name]
        assert r["status"] == "ok", (name, r["reason"])
        if peer.exact:
            assert r["bit_exact"] is True, name
        else:
            assert r["bit_exact"] is False and r["max_abs_error"] > 0, name
            assert 0.0 <= r["recall"] <= 1.0
        # peers without a thread count are measured once, at threads=1
        assert sorted(r["encode_mbps"]) == (["1", "2"] if peer.threaded else ["1"])
        assert sorted(r["decode_mbps"]) == (["1", "2"] if peer.threaded and peer.threaded_decode else ["1"])
    assert 3.5 < results["faiss-sq8"]["ratio"] <= 4.0
    assert results["faiss-pq48x7"]["fit_seconds"] > 0
    assert results["zstd-3"]["fit_seconds"] is None  # nothing to fit


class _FakePeer(peers.Peer):
    module = "numpy"
    package = "numpy"

    def encode(self, arr, threads=1):
        return arr.tobytes()

    def decode(self, blob, shape, dtype, threads=1):
        return np.frombuffer(blob, dtype=dtype).reshape(shape)


class _OneUlpOff(_FakePeer):
    """Claims to be lossless but changes the last mantissa bit of one value."""

    name = "one-ulp-off"

    def decode(self, blob, shape, dtype, threads=1):
        out = super().decode(blob, shape, dtype).copy()
        out.view(np.uint32)[0, 0] ^= 1
        return out


class _Missing(_FakePeer):
    name = "missing"
    module = "spherecodec_no_such_module"
    package = "no-such-package"


class _Broken(_FakePeer):
    name = "broken"

    def encode(self, arr, threads=1):
        raise RuntimeError("cannot compress this")


class _Verbatim(_FakePeer):
    name = "verbatim"
    threaded = True


def _assert_nothing_measured(row):
    """A skipped row (a BenchResult, or its dict in results.json) holds no measurement."""
    row = row if isinstance(row, dict) else row.to_dict()
    for key in MEASURED:
        assert row[key] is None, key
    for key in SPEEDS:
        assert row[key] == {}, key


def test_missing_broken_and_inexact_peers_are_reported_not_crashing(monkeypatch, real_rows):
    monkeypatch.setattr(peers, "all_peers",
                        lambda: [_Missing(), _Broken(), _OneUlpOff(), _Verbatim()])
    results = {r.name: r for r in bench.run_benchmark(real_rows[:40], codecs=[], peers=True,
                                                      threads=2, repeats=1)}
    missing = results["missing"]
    assert missing.status == "skipped"
    assert "no-such-package not installed" in missing.reason
    _assert_nothing_measured(missing)
    assert results["broken"].status == "failed"
    assert "cannot compress this" in results["broken"].reason
    assert results["broken"].encode_mbps == {}
    off = results["one-ulp-off"]
    assert off.status == "ok" and off.bit_exact is False
    assert 0 < off.max_abs_error < 1e-6
    assert any("claims lossless" in n for n in off.notes)
    verbatim = results["verbatim"]
    assert verbatim.bit_exact is True and verbatim.ratio == 1.0
    assert sorted(verbatim.encode_mbps) == [1, 2]
    table = bench.format_table(list(results.values()), [1, 2])
    assert "skipped: no-such-package not installed" in table
    assert "failed: warm-up: RuntimeError: cannot compress this" in table


def test_a_missing_peer_is_a_skipped_row_in_the_table_and_json(monkeypatch, tmp_path, real_rows, capsys):
    """What a user without a peer's package sees: a skipped row, nothing measured, the plots
    of the rest."""
    monkeypatch.setattr(peers, "all_peers", lambda: [_Missing(), _Verbatim()])
    path = tmp_path / "rows.npy"
    np.save(path, real_rows[:40])
    out = tmp_path / "out"
    assert bench.main([str(path), "--codecs", "exact", "--peers", "--threads", "1", "--repeats", "1",
                       "--out", str(out), "-q"]) == 0
    stdout = capsys.readouterr().out
    cells = next(line for line in stdout.splitlines() if line.startswith("| missing |")).split(" | ")
    assert cells[2:-1] == ["—"] * (len(bench.table_columns([1])) - 3)
    assert cells[-1].startswith("skipped: no-such-package not installed")
    results = {r["name"]: r for r in json.loads((out / "results.json").read_text())["results"]}
    missing = results["missing"]
    assert set(missing) == RESULT_KEYS
    assert missing["status"] == "skipped" and "no-such-package not installed" in missing["reason"]
    _assert_nothing_measured(missing)
    assert results["verbatim"]["status"] == "ok" and results["verbatim"]["ratio"] == 1.0
    assert len(list(out.glob("*.png"))) == 3


class _NeedsTorch(Codec):
    """A codec whose optional dependency is missing when it is built."""

    name = "needs-torch"

    def __init__(self):
        super().__init__()
        importlib.import_module("spherecodec_no_such_torch")


class _NeedsTorchToEncode(Codec):
    """A codec whose optional dependency is imported on first use, when the data arrives."""

    name = "needs-torch-to-encode"

    def prepare(self, rows):
        importlib.import_module("spherecodec_no_such_torch")
        return rows


def test_a_codec_whose_optional_dependency_is_missing_is_skipped(monkeypatch, real_rows):
    fakes = {c.name: c for c in (_NeedsTorch, _NeedsTorchToEncode)}
    real_get_codec = candidates.get_codec
    monkeypatch.setattr(candidates, "get_codec", lambda name: fakes.get(name) or real_get_codec(name))
    rows = bench.run_benchmark(real_rows[:40], codecs=["needs-torch", "needs-torch-to-encode", "exact"],
                               repeats=1, threads=1)
    by_name = {r.name: r for r in rows}
    for name in fakes:
        r = by_name[name]
        assert r.status == "skipped", (name, r.reason)
        assert r.reason.startswith("spherecodec_no_such_torch not installed"), r.reason
        _assert_nothing_measured(r)
    assert by_name["exact"].status == "ok" and by_name["exact"].bit_exact is True
    table = bench.format_table(rows)
    assert "| needs-torch | spherecodec | — |" in table
    assert table.index("| exact |") < table.index("| needs-torch |")  # skipped rows last


def test_codecs_that_cannot_run_are_skipped_with_the_reason(real_rows):
    results = {r.name: r for r in bench.run_benchmark(
        real_rows[:40], codecs=["no-such-codec", "exact:mantissa_bits=99", "exact:mantissa_bits=2"],
        repeats=1, threads=1)}
    assert results["no-such-codec"].status == "skipped"
    assert "unknown codec" in results["no-such-codec"].reason
    _assert_nothing_measured(results["no-such-codec"])
    bad = results["exact(mantissa_bits=99)"]
    assert bad.status == "skipped" and "mantissa_bits" in bad.reason
    good = results["exact(mantissa_bits=2)"]
    assert good.status == "ok" and good.bit_exact is True
    assert list(good.decode_mbps) == [1]


def test_every_registered_codec_gets_a_row(real_rows):
    # 288 base rows: enough to train pq's 256 centroids
    rows = np.load(DATA)[:320, :32].copy()
    results = bench.run_benchmark(rows, repeats=1, threads=1)
    specs = bench.default_codec_specs()
    assert set(spherecodec.available_codecs()) <= set(specs)
    assert [r.name for r in results] == [bench.codec_label(*bench.parse_codec_spec(s)) for s in specs]
    for r in results:
        if r.name == "dive":  # a trained adapter is no default parameter
            assert r.status == "skipped" and "needs adapter" in r.reason
            _assert_nothing_measured(r)
        else:
            assert r.status == "ok", (r.name, r.reason)
            assert r.ratio > 0 and 0.0 <= r.recall <= 1.0


def test_bench_result_derives_ratio_speeds_and_notes():
    r = BenchResult("x", "peer", raw_bytes=4000, rows=10, k=10, threads=[1, 2])
    _assert_nothing_measured(r)
    r.compressed_bytes = 1000
    r.blob_sizes.update({1000, 1001})
    r.record_run(1, 0.002, 0.001, 0.004, 0.003)
    r.record_run(2, 0.001, 0.002)  # a decode that ignores the thread count: not timed at 2
    r.fit_seconds = 0.5
    assert r.ratio == 4.0 and r.bytes_per_vector == 100.0
    assert r.encode_mbps == {1: 2.0, 2: 4.0} and r.decode_mbps == {1: 1.0}
    assert r.speeds("cpu") == ({1: 4000 / 1e6 / 0.001, 2: 4000 / 1e6 / 0.002}, {1: 4000 / 1e6 / 0.003})
    notes = r.closing_notes()
    assert notes[0].startswith("blob size differs between runs or thread counts (1000..1001 bytes")
    assert notes[1] == "model fitted once (0.5 s) outside the timed encodes; with the fit: 0.0 MB/s"
    d = r.to_dict()
    assert set(d) == RESULT_KEYS
    assert d["encode_mbps"] == {"1": 2.0, "2": 4.0} and d["decode_seconds"] == {"1": [0.004]}
    r.fail("timed run 1, threads=2: boom")
    assert r.encode_mbps == {} and r.to_dict()["decode_cpu_mbps"] == {}


def test_bench_result_says_when_a_codecs_own_fit_dominates_its_encode():
    # a spherecodec codec fits its model inside every encode (pq's k-means): the row says so
    # when the fit is most of the encode, and never calls it "fitted once outside"
    r = BenchResult("pq", "spherecodec", raw_bytes=4000, rows=1800, k=10, threads=[1])
    r.compressed_bytes = 1000
    r.blob_sizes.add(1000)
    r.fit_in_encode = True
    r.record_run(1, 0.70, 0.70, 0.01, 0.01)
    r.fit_seconds = 0.65
    assert r.closing_notes() == ["encode is mostly fitting its model to these 1800 rows (0.65 s of 0.70 s)"]
    r.fit_reusable = True  # the advice only for codecs spherecodec.fit takes
    assert r.closing_notes() == ["encode is mostly fitting its model to these 1800 rows (0.65 s of 0.70 s); "
                                 "a model fitted once (spherecodec.fit) codes later batches without it"]
    assert r.to_dict()["fit_in_encode"] is True
    r.fit_seconds = 0.2  # a minor share of the encode: no note
    assert r.closing_notes() == []


def test_importing_spherecodec_does_not_import_the_bench():
    code = ("import spherecodec, sys; "
            "assert not any(m.startswith('spherecodec.bench') for m in sys.modules), "
            "sorted(m for m in sys.modules if m.startswith('spherecodec.bench'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_python_m_spherecodec_bench_is_the_command():
    result = subprocess.run([sys.executable, "-m", "spherecodec.bench", "--list"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    # a fresh process: only the built-in codecs (other tests register more in this one)
    first, *peer_lines = result.stdout.splitlines()
    assert first.startswith("codecs: ") and {"exact", "grid", "sphere", "int8"} <= set(first.split()[1:])
    assert [line.split(":")[0] for line in peer_lines] == [f"peer {name}" for name in peers.peer_names()]


def test_parse_codec_spec():
    assert bench.parse_codec_spec("exact") == ("exact", {})
    assert bench.parse_codec_spec("sphere:bits=8,mode=fast,eps=1e-4") == (
        "sphere", {"bits": 8, "mode": "fast", "eps": 1e-4})
    with pytest.raises(bench.BenchError):
        bench.parse_codec_spec("sphere:bits")


def test_unknown_peer_names_are_an_error():
    with pytest.raises(bench.BenchError, match="unknown peers"):
        candidates.select_peers(["zstd-3", "no-such-peer"])
    assert [p.name for p in candidates.select_peers(["faiss-pq48x8", "zstd-3"])] == ["zstd-3", "faiss-pq"]


def test_top_k_and_recall():
    base = np.array([[1, 0], [0, 1], [0.9, 0.1], [-1, 0]], dtype=np.float32)
    queries = np.array([[1, 0], [0, 1]], dtype=np.float32)
    assert bench.top_k(base, queries, 2).tolist() == [[0, 2], [1, 2]]
    assert bench.recall_at_k([[0, 2], [1, 2]], [[2, 0], [1, 3]]) == 0.75
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    q = rng.standard_normal((20, 16)).astype(np.float32)
    truth = bench.top_k(x, q, 10)
    assert bench.recall_at_k(truth, bench.top_k(x.copy(), q, 10)) == 1.0
    noisy = x + 0.5 * rng.standard_normal(x.shape).astype(np.float32)
    assert bench.recall_at_k(truth, bench.top_k(noisy, q, 10)) < 0.9


def test_queries_are_the_held_out_last_rows(real_rows):
    base, queries = bench.split_queries(real_rows, 0.1)
    assert base.shape == (144, 384) and queries.shape == (16, 384)
    assert np.array_equal(queries, real_rows[144:])
    with pytest.raises(bench.BenchError):
        bench.split_queries(real_rows[:1])


@pytest.mark.parametrize("name", sorted(bench.SYNTHETIC_SETS))
def test_synthetic_sets(name):
    kind, dim = bench.SYNTHETIC_SETS[name]
    x = bench.synthetic(name, rows=40)
    assert x.shape == (40, dim) and x.dtype == np.float32
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    if kind == "nonunit":
        assert norms.min() >= 0.2 * 0.999 and norms.max() <= 20 * 1.001 and norms.max() / norms.min() > 5
    elif kind == "shape":  # the bundled sample, reshaped: its first rows where kept
        real = bench.load_sample()[:40]
        kept = x != 0
        assert kept.any() == (name != "zeros")
        if name in ("padded-rows", "sparse-95"):
            assert np.array_equal(x[kept], real[kept])
        if name.endswith("upcast"):
            assert np.abs(x - real).max() < 0.01 and not np.array_equal(x, real)
    else:
        assert np.allclose(norms, 1, atol=1e-5)
    assert np.array_equal(x, bench.synthetic(name, rows=40))  # seeded


def test_sample_is_the_bundled_minilm_set():
    x = bench.load_sample()
    assert x.shape == (2000, 384) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-3)


def test_cli_errors_are_one_line_not_tracebacks(tmp_path, capsys):
    assert bench.main([str(tmp_path / "missing.npy")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert bench.main(["--synthetic", "unit-384", "--repeats", "0"]) == 2
    assert "--repeats must be at least 1" in capsys.readouterr().err
    assert bench.main(["--synthetic", "unit-384", "--queries", "1.5"]) == 2
    assert "--queries must be between 0 and 1" in capsys.readouterr().err
    assert bench.main(["--synthetic", "no-such-set"]) == 2
    bad = tmp_path / "ints.npy"
    np.save(bad, np.arange(12).reshape(3, 4))
    assert bench.main([str(bad)]) == 1
    assert "floating point" in capsys.readouterr().err


def test_top_k_in_blocks_matches_one_block(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 8)).astype(np.float32)
    q = rng.standard_normal((37, 8)).astype(np.float32)
    whole = bench.top_k(x, q, 10)
    monkeypatch.setattr(quality, "SCORE_BLOCK_FLOATS", 500 * 4)  # 4 queries per block
    assert np.array_equal(bench.top_k(x, q, 10), whole)


def test_queries_are_capped(real_rows):
    base, queries = bench.split_queries(real_rows, 0.5, max_queries=7)
    assert queries.shape[0] == 7 and base.shape[0] == 153


def test_a_file_after_peers_is_the_data_not_a_peer(tmp_path, real_rows, capsys):
    path = tmp_path / "rows.npy"
    np.save(path, real_rows[:30])
    assert bench.main(["--codecs", "exact", "--repeats", "1", "--threads", "1", "-q",
                       "--peers", "zstd-3", str(path)]) == 0
    out = capsys.readouterr().out
    assert "rows.npy: 30 x 384" in out and "| zstd-3 | peer | yes |" in out


def test_list_names_codecs_and_peers(capsys):
    assert bench.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "codecs: " + " ".join(spherecodec.available_codecs())
    for name in peers.peer_names():
        assert f"peer {name}: " in out


def test_half_precision_rows_cast_then_code(real_rows):
    """``exact:as=bfloat16`` codes the vectors as bfloat16, bit-exactly (its error is the
    cast's, the same as the zipnn-bf16 peer's); a run with peers adds both half rows."""
    x = real_rows[:40]
    for half, peer_name in (("bfloat16", "zipnn-bf16"), ("float16", "zipnn-fp16")):
        cand = candidates.codec_candidate(f"exact:as={half}")
        assert cand.skip is None and cand.name == f"exact(as={half})"
        expected = x.astype(ml_dtypes.bfloat16 if half == "bfloat16" else np.float16).astype(np.float32)
        blob = cand.encode(x, 1)
        assert spherecodec.info(blob)["dtype"] == half
        assert cand.decode(blob, x.shape, x.dtype, 1).tobytes() == expected.tobytes()
        (peer,) = candidates.select_peers([peer_name])
        assert peer.decode(peer.encode(x), x.shape, x.dtype).tobytes() == expected.tobytes()
    assert "as= must be one of" in candidates.codec_candidate("exact:as=int8").skip
    for leaf_split in (True, False):  # the Parquet peers: whole files, bit-exact
        peer = peers.ParquetFile(byte_stream_split=leaf_split)
        blob = peer.encode(x)
        assert blob[:4] == b"PAR1" and peer.decode(blob, x.shape, x.dtype).tobytes() == x.tobytes()
