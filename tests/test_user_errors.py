"""Issue 23: what a new user tries works as documented, and every refusal speaks the user's
language (names their input, what was wrong and what to do; no internal class, no temporary
path). Item 1 (docs/quantization.md's snippet) is run by tests/test_docs.py."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

import spherecodec
from spherecodec import cli
from spherecodec.bench import main as bench_main
from spherecodec.codecs.exact import MAX_LEVEL
from spherecodec.datasets import load_sample
from spherecodec.dive import DiveAdapter
from spherecodec.errors import CorruptBlobError, UnsupportedError
from spherecodec.integrations.numcodecs import Spherecodec
from spherecodec.integrations.zarr import SpherecodecZarrCodec, write_dive_array

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def x():
    return load_sample()[:300]


@pytest.fixture(scope="module")
def adapter_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("adapter") / "minilm-96.npz"
    DiveAdapter(384, 96, hidden=64).fit(load_sample()[:300], epochs=1, steps_per_epoch=2).save(path)
    return path


def _cli(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


# -- item 2: a saved DIVE adapter by path, everywhere a codec is named ---------------------
def test_cli_compresses_with_an_adapter_path_and_decodes_without_the_file(tmp_path, capsys, x, adapter_file):
    np.save(tmp_path / "v.npy", x)
    adapter_path = tmp_path / "a.npz"
    adapter_path.write_bytes(adapter_file.read_bytes())
    status, _, err = _cli(capsys, "compress", tmp_path / "v.npy", tmp_path / "d.sphc", "--codec", "dive",
                          "-p", f"adapter={adapter_path}", "-p", "then=int8", "--quiet")
    assert status == 0, err
    # the same bytes as encode with the adapter object: the path only loads it
    adapter = DiveAdapter.load(adapter_file)
    assert (tmp_path / "d.sphc").read_bytes() == spherecodec.encode(x, "dive", adapter=adapter, then="int8")
    adapter_path.unlink()  # decoding needs no adapter
    status, _, err = _cli(capsys, "decompress", tmp_path / "d.sphc", tmp_path / "d.npy", "--quiet")
    assert status == 0, err
    expected = spherecodec.decode(spherecodec.encode(x, "dive", adapter=adapter, then="int8"))
    assert np.load(tmp_path / "d.npy").tobytes() == expected.tobytes()
    assert expected.shape == (300, 96)
    status, _, err = _cli(capsys, "compress", tmp_path / "v.npy", tmp_path / "e.sphc", "--codec", "dive",
                          "-p", "adapter=missing.npz")
    assert status == 1 and "adapter file 'missing.npz' does not exist" in err and "DiveAdapter.save" in err


def test_bench_runs_dive_by_adapter_path(tmp_path, capsys, x, adapter_file):
    np.save(tmp_path / "v.npy", x)
    status = bench_main([str(tmp_path / "v.npy"), "--repeats", "1", "--codecs", f"dive:adapter={adapter_file}",
                         "int8", "-q"])
    out = capsys.readouterr().out
    assert status == 0
    row = next(line for line in out.splitlines() if line.startswith("| dive"))
    assert "skipped" not in row and "decoded (270, 96)" in row


def test_zarr_codec_takes_an_adapter_path(tmp_path, x, adapter_file):
    adapter = DiveAdapter.load(adapter_file)
    expected = adapter.transform(x)
    codec = SpherecodecZarrCodec(codec="dive", params={"adapter": str(adapter_file), "then": "exact"})
    # the metadata names the adapter by sha256 and dimensions, never by its path
    meta = codec.to_dict()["configuration"]["params"]
    assert meta["adapter_sha256"] == adapter.weights_hash() and "adapter" not in meta
    assert (meta["dim_in"], meta["dim_out"]) == (384, 96)
    assert SpherecodecZarrCodec.from_dict(codec.to_dict()) == codec
    # written from the 384-column rows by path, read back bit for bit as the adapter's output
    path, own_copy = tmp_path / "d.zarr", tmp_path / "own.npz"
    own_copy.write_bytes(adapter_file.read_bytes())
    z = write_dive_array(str(path), x, str(own_copy), block_rows=128)
    assert z.shape == (300, 96) and z.metadata.codecs[0].codec == "dive"
    own_copy.unlink()  # reading needs neither the adapter file nor torch
    back = zarr.open_array(str(path), mode="r")
    assert back[:].tobytes() == expected.tobytes()
    chunk = (path / "c" / "1" / "0").read_bytes()  # each chunk is a plain blob of the inner codec
    assert spherecodec.decode(chunk).tobytes() == expected[128:256].tobytes()
    # the same serializer, written by hand with the reduced rows, and through int8
    z8 = zarr.create_array(str(tmp_path / "h.zarr"), shape=(300, 96), chunks=(100, 96), dtype="float32",
                           serializer=SpherecodecZarrCodec(codec="dive", params={**meta, "then": "int8",
                                                                                 "then_config": {}}),
                           compressors=None)
    z8[:] = expected
    assert z8[:].tobytes() == spherecodec.decode(spherecodec.encode(expected[:100], "int8")).tobytes() + \
        b"".join(spherecodec.decode(spherecodec.encode(expected[i:i + 100], "int8")).tobytes() for i in (100, 200))
    # the original rows in an array of the original shape: the error says what to do
    z_raw = zarr.create_array(str(tmp_path / "z.zarr"), shape=x.shape, chunks=(100, 384), dtype="float32",
                              serializer=codec, compressors=None)
    with pytest.raises(ValueError, match="write_dive_array"):
        z_raw[:] = x
    # the numcodecs codec (bytes in, array out) round-trips the reduced rows too
    numcodec = Spherecodec(codec="dive", params={"adapter": str(adapter_file), "then": "exact"})
    assert numcodec.decode(numcodec.encode(x)).tobytes() == expected.tobytes()


# -- item 3: float input that converts without loss is accepted -----------------------------
def test_lossless_float_input_is_accepted(x):
    blob = spherecodec.encode(x.tolist(), "int8")
    assert blob == spherecodec.encode(x, "int8")
    half = x.astype(np.float16)
    back = spherecodec.decode(spherecodec.encode(half, "fp16"))
    assert back.dtype == np.float32 and back.tobytes() == half.astype(np.float32).tobytes()
    assert spherecodec.encode(x.astype(np.float64), level=3) == spherecodec.encode(x, level=3)
    # a codec that codes the input's dtype keeps it: exact level 1, float64, same bytes as before
    assert spherecodec.decode(spherecodec.encode(x.astype(np.float64))).dtype == np.float64
    queries = x[:5]
    assert [a.tobytes() for a in spherecodec.search(blob, queries.astype(np.float64), k=3)] == \
           [a.tobytes() for a in spherecodec.search(blob, queries, k=3)]
    assert [a.tobytes() for a in spherecodec.search(blob, queries, k=3, rescore_with=x.astype(np.float64))] == \
           [a.tobytes() for a in spherecodec.search(blob, queries, k=3, rescore_with=x)]


def test_lossy_float_input_is_refused_with_what_to_do(x):
    with pytest.raises(UnsupportedError, match=r"float32 cannot hold exactly: convert it with \.astype"):
        spherecodec.encode(x.astype(np.float64) + 1e-12, "int8")
    with pytest.raises(UnsupportedError, match="exact level 3 codes float32 only"):
        spherecodec.encode(x.astype(np.float64) + 1e-12, level=3)
    with pytest.raises(UnsupportedError, match="convert the str"):
        spherecodec.encode(np.full((2, 3), "a"), "int8")


# -- item 4: decoded recall and code recall have two names --------------------------------
def test_decoded_recall_and_code_recall_are_named_apart(capsys):
    assert bench_main(["--sample", "--rows", "200", "--repeats", "1", "--codecs", "binary", "-q"]) == 0
    header = capsys.readouterr().out
    assert "decoded recall@10" in header
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "| decoded recall@10 |" in readme and "code recall@10" in readme
    assert "| recall@10 |" not in (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert "code recall@10" in (ROOT / "docs" / "quantization.md").read_text(encoding="utf-8")


# -- item 5: the docs agree with the code and each other ----------------------------------
def test_docs_agree_on_levels_and_zfpy():
    fmt = (ROOT / "docs" / "format.md").read_text(encoding="utf-8")
    levels = (ROOT / "docs" / "exact-levels.md").read_text(encoding="utf-8")
    assert f'"level": 2..{MAX_LEVEL}' in fmt and f"level 1 (default) .. {MAX_LEVEL}" in levels
    assert "stay at level 1" not in levels
    assert "zfpy==" not in (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")


# -- item 6: error messages ---------------------------------------------------------------
def test_unknown_parameters_name_the_codec_and_what_it_takes(x):
    with pytest.raises(TypeError) as err:
        spherecodec.encode(x, "grid", max_error=1e-4)
    assert str(err.value) == "codec 'grid' has no parameter 'max_error'; it takes max_abs_error"
    with pytest.raises(TypeError) as err:
        spherecodec.encode(x, "fp16", level=3)
    assert str(err.value) == "codec 'fp16' has no parameter 'level'; it takes entropy"
    for name in spherecodec.available_codecs():
        with pytest.raises(TypeError) as err:
            spherecodec.get_codec(name)(no_such_parameter=1)
        assert f"codec {name!r} has no parameter 'no_such_parameter'" in str(err.value)
        assert "__init__" not in str(err.value)


def test_cli_errors_name_the_users_input(tmp_path, capsys, x):
    np.save(tmp_path / "v.npy", x)
    (tmp_path / "out.sphc").write_bytes(b"old")
    status, _, err = _cli(capsys, "compress", tmp_path / "v.npy", tmp_path / "out.sphc", "--codec", "int16")
    assert status == 1 and "unknown codec 'int16'" in err and "exists" not in err
    status, _, err = _cli(capsys, "compress", tmp_path / "v.npy", tmp_path / "nodir" / "out.sphc")
    assert status == 1 and "no such directory" in err and ".part" not in err
    status, _, err = _cli(capsys, "compress", tmp_path / "v.npy", tmp_path / "g.sphc", "--codec", "grid",
                          "-p", "max_error=1e-4")
    assert err.strip() == "spherecodec: error: codec 'grid' has no parameter 'max_error'; it takes max_abs_error"
    (tmp_path / "rand.bin").write_bytes(np.random.default_rng(0).bytes(1000))
    assert bench_main([str(tmp_path / "rand.bin")]) == 1
    err = capsys.readouterr().err
    assert "pickle" not in err and "not a .npy file" in err and "numpy.save" in err


def test_zero_filled_header_is_damage_not_a_version():
    with pytest.raises(CorruptBlobError, match="truncated or overwritten") as err:
        spherecodec.decode(b"SPHC" + b"\0" * 100)
    assert "not supported" not in str(err.value)


# -- item 7: the zarr example cleans up, the bench says why there are no plots -------------
def test_zarr_example_removes_its_temporary_directory(tmp_path, monkeypatch, capsys):
    import runpy
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    namespace = runpy.run_path(str(ROOT / "examples" / "zarr_example.py"), run_name="example")
    assert namespace["main"](["zarr_example.py"]) == 0
    assert "bit-exact" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_bench_says_when_matplotlib_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    out_dir = tmp_path / "out"
    assert bench_main(["--sample", "--rows", "200", "--repeats", "1", "--codecs", "int8", "-q",
                       "--out", str(out_dir)]) == 0
    err = capsys.readouterr().err
    assert "no plots written: matplotlib is not installed" in err
    assert "matplotlib is not installed" in (out_dir / "results.md").read_text()
    assert not [p for p in out_dir.iterdir() if p.suffix == ".png"]
    assert re.search(r"pip install matplotlib", err)


def test_zarr_codec_refuses_an_adapter_object_saying_to_pass_its_path(adapter_file):
    with pytest.raises(TypeError, match="pass the path of the file its .save"):
        SpherecodecZarrCodec(codec="dive", params={"adapter": DiveAdapter.load(adapter_file)})


def test_cli_reports_the_output_path_not_its_temporary_file():
    assert cli._users_path("/data/.out.sphc.a1b2_c3.part") == "/data/out.sphc"
    assert cli._users_path("/data/v.npy") == "/data/v.npy"
