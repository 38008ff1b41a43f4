"""The spherecodec command line: round trips, info, one-line errors, exit codes, bounded memory."""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import spherecodec
from spherecodec import cli, stream

DATA = Path(__file__).parent / "data"
SENTENCES = np.load(DATA / "minilm-sentences-512.npy")
TOKENS_RAW = np.load(DATA / "minilm-tokens-raw-256.npy")


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def npy(tmp_path):
    path = tmp_path / "in.npy"
    np.save(path, TOKENS_RAW)
    return path


def test_compress_decompress_round_trip_is_bit_exact(tmp_path, npy, capsys):
    sphc, out = tmp_path / "x.sphc", tmp_path / "out.npy"
    code, stdout, err = run(capsys, "compress", npy, sphc, "--threads", "2")
    assert code == 0 and err == ""
    assert "ratio" in stdout and str(sphc) in stdout
    assert sphc.read_bytes() == spherecodec.encode(TOKENS_RAW)
    code, stdout, err = run(capsys, "decompress", sphc, out, "-q")
    assert (code, stdout, err) == (0, "", "")
    assert same_bits(np.load(out), TOKENS_RAW)


def test_codec_and_params_reach_the_file(tmp_path, npy, capsys):
    sphc = tmp_path / "x.sphc"
    code, _, err = run(capsys, "compress", npy, sphc, "--codec", "exact", "--param", "mantissa_bits=1",
                       "-p", "entropy=constriction", "--param", "chunk_rows=40", "-q")
    assert code == 0, err
    facts = spherecodec.info(sphc.read_bytes())
    assert facts["params"] == {"mantissa_bits": 1, "entropy": "constriction"}
    assert facts["chunk_rows"] == 40
    assert sphc.read_bytes() == spherecodec.encode(TOKENS_RAW, mantissa_bits=1, entropy="constriction",
                                                   chunk_rows=40)
    code, _, _ = run(capsys, "compress", npy, sphc, "--chunk-rows", "25", "-q", "--force")
    assert code == 0 and spherecodec.info(sphc.read_bytes())["chunk_rows"] == 25


def test_lossy_codec_through_the_cli(tmp_path, capsys):
    src, sphc, out = tmp_path / "s.npy", tmp_path / "s.sphc", tmp_path / "s2.npy"
    np.save(src, SENTENCES)
    code, _, err = run(capsys, "compress", src, sphc, "--codec", "int8", "-q")
    assert code == 0, err
    assert run(capsys, "decompress", sphc, out, "-q")[0] == 0
    back = np.load(out)
    assert back.shape == SENTENCES.shape and sphc.stat().st_size < SENTENCES.nbytes / 3
    assert np.abs(back - SENTENCES).max() < 0.05


def test_parse_param_reads_json_values_else_strings():
    assert cli.parse_param("mantissa_bits=4") == ("mantissa_bits", 4)
    assert cli.parse_param("max_abs_error=1e-3") == ("max_abs_error", 0.001)
    assert cli.parse_param("flag=true") == ("flag", True)
    assert cli.parse_param("x=null") == ("x", None)
    assert cli.parse_param("entropy=numba") == ("entropy", "numba")
    assert cli.parse_param("name=a=b") == ("name", "a=b")
    assert cli.parse_param("s=") == ("s", "")
    for bad in ("novalue", "=3", "not a name=3"):
        with pytest.raises(Exception, match="KEY=VALUE"):
            cli.parse_param(bad)


def test_info_prints_the_header_facts(tmp_path, npy, capsys):
    sphc = tmp_path / "x.sphc"
    stream.compress_npy(npy, sphc, chunk_rows=100)
    code, out, err = run(capsys, "info", sphc)
    assert code == 0 and err == ""
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert lines["codec"].startswith("exact ")
    assert lines["dtype"] == "float32"
    assert lines["shape"] == "256 x 384"
    assert lines["chunks"] == "3 of 100 rows"
    code, out, _ = run(capsys, "info", sphc, "--json")
    facts = json.loads(out)
    expected = spherecodec.info(sphc.read_bytes())
    assert facts["shape"] == [256, 384]
    assert facts["compressed_nbytes"] == expected["compressed_nbytes"] == sphc.stat().st_size
    assert facts["ratio"] == pytest.approx(expected["ratio"])


def test_codecs_lists_every_codec(capsys):
    code, out, _ = run(capsys, "codecs")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == spherecodec.available_codecs()


def test_progress_bar_is_drawn_when_asked(tmp_path, npy, capsys, monkeypatch):
    monkeypatch.setattr(stream, "PROGRESS_DELAY", 0.0)
    code, _, err = run(capsys, "compress", npy, tmp_path / "x.sphc", "--progress", "--chunk-rows", "10")
    assert code == 0
    assert "compress:" in err and "|" in err and "384k" in err  # the bar, sized to the raw bytes
    code, _, err = run(capsys, "decompress", tmp_path / "x.sphc", tmp_path / "o.npy", "--no-progress")
    assert code == 0 and err == ""


# -- errors: one line on stderr, exit status 1 (input) or 2 (command line), no output file --------------

def _one_line_error(err):
    lines = err.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("spherecodec") and "error:" in lines[0] and "Traceback" not in err


def test_npy_given_to_decompress_is_a_one_line_error(tmp_path, npy, capsys):
    code, out, err = run(capsys, "decompress", npy, tmp_path / "out.npy")
    assert code == 1 and out == ""
    assert _one_line_error(err) and "is a .npy file" in err
    assert not (tmp_path / "out.npy").exists()


@pytest.mark.parametrize("case", [
    "sphc-to-compress", "missing-input", "unknown-codec", "bad-param-value", "unknown-param",
    "truncated-sphc", "corrupt-chunk", "text-as-npy", "truncated-npy", "int-npy", "output-exists",
    "directory-input", "info-of-npy", "info-of-garbage",
])
def test_bad_input_is_a_one_line_error_with_exit_status_1(tmp_path, npy, capsys, case):
    sphc = tmp_path / "good.sphc"
    stream.compress_npy(npy, sphc, chunk_rows=100)
    blob = sphc.read_bytes()
    bad = tmp_path / "bad"
    out = tmp_path / "out"
    argv = {
        "sphc-to-compress": ["compress", sphc, out],
        "missing-input": ["compress", tmp_path / "nope.npy", out],
        "unknown-codec": ["compress", npy, out, "--codec", "nope"],
        "bad-param-value": ["compress", npy, out, "--param", "mantissa_bits=99"],
        "unknown-param": ["compress", npy, out, "--param", "colour=1"],
        "truncated-sphc": ["decompress", bad, out],
        "corrupt-chunk": ["decompress", bad, out],
        "text-as-npy": ["compress", bad, out],
        "truncated-npy": ["compress", bad, out],
        "int-npy": ["compress", bad, out],
        "output-exists": ["compress", npy, sphc],
        "directory-input": ["compress", tmp_path, out],
        "info-of-npy": ["info", npy],
        "info-of-garbage": ["info", bad],
    }[case]
    if case == "truncated-sphc":
        bad.write_bytes(blob[: len(blob) // 2])
    elif case == "corrupt-chunk":
        bad.write_bytes(blob[:-5] + bytes([blob[-5] ^ 1]) + blob[-4:])
    elif case == "text-as-npy":
        bad.write_text("not numbers\n")
    elif case == "truncated-npy":
        bad.write_bytes(npy.read_bytes()[:1000])
    elif case == "int-npy":
        np.save(tmp_path / "ints.npy", np.arange(10, dtype=np.int64))
        os.replace(tmp_path / "ints.npy", bad)
    elif case == "info-of-garbage":
        bad.write_bytes(os.urandom(500))
    code, stdout, err = run(capsys, *argv)
    assert code == 1 and stdout == ""
    assert _one_line_error(err), err
    assert not out.exists()
    assert sphc.read_bytes() == blob  # never touched, even when named as the output
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


@pytest.mark.parametrize("argv", [
    [], ["compress"], ["compress", "a.npy"], ["frobnicate"], ["compress", "a", "b", "--threads", "0"],
    ["compress", "a", "b", "--param", "novalue"], ["decompress", "a", "b", "--bogus"],
])
def test_command_line_mistakes_exit_with_status_2(capsys, argv):
    code, stdout, err = run(capsys, *argv)
    assert code == 2 and stdout == ""
    assert "Traceback" not in err
    if argv:
        assert _one_line_error(err), err


def test_bench_is_dispatched_to_the_bench_module(monkeypatch, capsys):
    seen = []
    fake = types.ModuleType("spherecodec.bench")
    fake.main = lambda argv: seen.append(argv) or 7
    monkeypatch.setitem(sys.modules, "spherecodec.bench", fake)
    assert cli.main(["bench", "--sample", "--codecs", "exact", "--threads", "2"]) == 7
    assert seen == [["--sample", "--codecs", "exact", "--threads", "2"]]


def test_console_process_prints_no_traceback(tmp_path, npy):
    """The real process (python -m spherecodec), as a shell user meets it."""
    result = subprocess.run([sys.executable, "-m", "spherecodec", "decompress", str(npy), str(tmp_path / "o.npy")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert _one_line_error(result.stderr), result.stderr


# -- bounded memory: the streaming path reads a batch of chunks at a time ---------------------------

# one fresh child process: the small file first warms everything (imports, compiled kernels,
# thread pools, allocator arenas); the peak may then grow with the big file only if the
# CLI holds data in proportion to the file
_MEASURE = """
import resource, sys
from spherecodec.cli import main
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
for name in sys.argv[2:]:
    d = sys.argv[1] + "/" + name
    assert main(["compress", d + ".npy", d + ".sphc", "-q", "--threads", "2"]) == 0
    assert main(["decompress", d + ".sphc", d + "-back.npy", "-q", "--threads", "2"]) == 0
    print(name, peak())
"""


def _write_npy(path, rows):
    """A .npy of ``rows`` real-looking rows, written a block at a time."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, 384))
    rng = np.random.default_rng(0)
    for lo in range(0, rows, 8192):
        n = min(8192, rows - lo)
        block = SENTENCES[rng.integers(0, len(SENTENCES), n)]
        out[lo:lo + n] = block + rng.standard_normal(block.shape, dtype=np.float32) * 1e-3
    out.flush()
    del out


def test_cli_memory_does_not_grow_with_the_file(tmp_path):
    _write_npy(tmp_path / "small.npy", 8_000)    # 12 MB
    _write_npy(tmp_path / "big.npy", 64_000)     # 98 MB
    growth = (tmp_path / "big.npy").stat().st_size - (tmp_path / "small.npy").stat().st_size
    result = subprocess.run([sys.executable, "-c", _MEASURE, str(tmp_path), "small", "big"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    peaks = dict(line.split() for line in result.stdout.split("\n") if line)
    for name in ("small", "big"):
        with open(tmp_path / f"{name}.npy", "rb") as a, open(tmp_path / f"{name}-back.npy", "rb") as b:
            assert a.read() == b.read()
    extra = int(peaks["big"]) - int(peaks["small"])
    # holding the file would add >= 86 MB; a window of chunks adds nothing that grows
    assert extra < growth / 4, (extra, peaks)
