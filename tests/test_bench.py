"""The benchmark tool: table, JSON and plots written, exactness judged bit for bit, peers that
are missing or broken reported instead of crashing, recall@k computed right."""

import contextlib
import io
import json
import os

import numpy as np
import pytest

import spherecodec
from spherecodec import bench, peers

DATA = os.path.join(os.path.dirname(__file__), "data", "minilm-sentences-512.npy")


@pytest.fixture(scope="module")
def real_rows():
    return np.load(DATA)[:160]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, real_rows):
    """One CLI run with every installed peer on 160 real MiniLM rows, shared by the checks."""
    tmp = tmp_path_factory.mktemp("bench")
    path = tmp / "data.npy"
    np.save(path, real_rows)
    out = tmp / "out"
    argv = [str(path), "--codecs", "exact", "--peers", "--threads", "2", "--repeats", "2",
            "--out", str(out), "-q"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = bench.main(argv)
    return status, buf.getvalue(), out


def test_cli_prints_the_table_with_every_peer(cli_run):
    status, stdout, _ = cli_run
    assert status == 0
    header = "| " + " | ".join(bench.table_columns([1, 2])) + " |"
    assert header in stdout.splitlines()
    for name in peers.peer_names():
        # faiss-pq is named by its fitted shape (faiss-pq48x7 on 144 rows of 384-d)
        assert (f"| {name}" in stdout) if name != "faiss-pq" else ("| faiss-pq" in stdout), name
    assert "| exact | spherecodec | yes |" in stdout


def test_cli_writes_markdown_json_and_png_plots(cli_run):
    _, _, out = cli_run
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


def test_cli_judges_exactness_by_bits_and_measures_lossy_error(cli_run):
    _, _, out = cli_run
    results = {r["name"]: r for r in json.loads((out / "results.json").read_text())["results"]}
    exact = results["exact"]
    assert exact["status"] == "ok" and exact["bit_exact"] is True
    assert exact["max_abs_error"] == 0 and exact["recall"] == 1.0
    assert exact["ratio"] > 1.1  # real embeddings: sign/exponent bits are very skewed
    assert exact["compressed_bytes"] == len(spherecodec.encode(np.load(DATA)[:144]))
    assert len(exact["encode_seconds"]["1"]) == 2 and len(exact["encode_seconds"]["2"]) == 2
    assert len(exact["decode_cpu_seconds"]["2"]) == 2 and min(exact["decode_cpu_seconds"]["1"]) >= 0
    assert exact["decode_mbps"]["1"] > 0 and exact["decode_mbps"]["2"] > 0
    installed = {p.name: p for p in peers.all_peers() if p.available()}
    assert "zstd-3" in installed  # the bench extra installs it
    for name, r in results.items():
        if r["source"] != "peer":
            continue
        peer = installed.get(name) or installed.get("faiss-pq" if name.startswith("faiss-pq") else name)
        if peer is None:
            assert r["status"] == "skipped" and "not installed" in r["reason"]
            continue
        assert r["status"] == "ok", (name, r["reason"])
        if peer.exact:
            assert r["bit_exact"] is True, name
        else:
            assert r["bit_exact"] is False and r["max_abs_error"] > 0, name
            assert 0.0 <= r["recall"] <= 1.0
        # peers without a thread count are measured once, at threads=1
        assert sorted(r["encode_mbps"]) == (["1", "2"] if peer.threaded else ["1"])
        assert sorted(r["decode_mbps"]) == (["1", "2"] if peer.threaded and peer.threaded_decode else ["1"])
    if "faiss-sq8" in results:
        assert 3.5 < results["faiss-sq8"]["ratio"] <= 4.0


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


def test_missing_broken_and_inexact_peers_are_reported_not_crashing(monkeypatch, real_rows):
    monkeypatch.setattr(peers, "all_peers",
                        lambda: [_Missing(), _Broken(), _OneUlpOff(), _Verbatim()])
    results = {r["name"]: r for r in bench.run_benchmark(real_rows[:40], codecs=[], peers=True,
                                                         threads=2, repeats=1)}
    assert results["missing"]["status"] == "skipped"
    assert "no-such-package not installed" in results["missing"]["reason"]
    assert results["broken"]["status"] == "failed"
    assert "cannot compress this" in results["broken"]["reason"]
    off = results["one-ulp-off"]
    assert off["status"] == "ok" and off["bit_exact"] is False
    assert 0 < off["max_abs_error"] < 1e-6
    assert any("claims lossless" in n for n in off["notes"])
    verbatim = results["verbatim"]
    assert verbatim["bit_exact"] is True and verbatim["ratio"] == 1.0
    assert sorted(verbatim["encode_mbps"]) == ["1", "2"]
    table = bench.format_table(list(results.values()), [1, 2])
    assert "skipped: no-such-package not installed" in table
    assert "failed: warm-up: RuntimeError: cannot compress this" in table


def test_codecs_that_cannot_run_are_skipped_with_the_reason(real_rows):
    results = {r["name"]: r for r in bench.run_benchmark(
        real_rows[:40], codecs=["no-such-codec", "exact:mantissa_bits=99", "exact:mantissa_bits=2"],
        repeats=1, threads=1)}
    assert results["no-such-codec"]["status"] == "skipped"
    assert "unknown codec" in results["no-such-codec"]["reason"]
    bad = results["exact(mantissa_bits=99)"]
    assert bad["status"] == "skipped" and "mantissa_bits" in bad["reason"]
    good = results["exact(mantissa_bits=2)"]
    assert good["status"] == "ok" and good["bit_exact"] is True
    assert list(good["decode_mbps"]) == ["1"]


def test_every_registered_codec_gets_a_row(real_rows):
    results = bench.run_benchmark(real_rows[:64, :32].copy(), repeats=1, threads=1)
    specs = bench.default_codec_specs()
    assert set(spherecodec.available_codecs()) <= set(specs)
    assert [r["name"] for r in results] == [bench.codec_label(*bench.parse_codec_spec(s)) for s in specs]
    for r in results:
        assert r["status"] in ("ok", "skipped", "failed")
        if r["status"] == "ok":
            assert r["ratio"] > 0 and 0.0 <= r["recall"] <= 1.0
        else:
            assert r["reason"]


def test_parse_codec_spec():
    assert bench.parse_codec_spec("exact") == ("exact", {})
    assert bench.parse_codec_spec("sphere:bits=8,mode=fast,eps=1e-4") == (
        "sphere", {"bits": 8, "mode": "fast", "eps": 1e-4})
    with pytest.raises(bench.BenchError):
        bench.parse_codec_spec("sphere:bits")


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
    monkeypatch.setattr(bench, "SCORE_BLOCK_FLOATS", 500 * 4)  # 4 queries per block
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
