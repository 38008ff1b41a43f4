"""The bundled sample: loads bit-exactly, is real unit-norm MiniLM data, ships in wheel and sdist."""

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

import spherecodec
from spherecodec import datasets

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_IN_PACKAGE = "spherecodec/data/minilm-sentences-2000.sphc"


def test_load_sample_is_the_stored_blob_decoded():
    x = datasets.load_sample()
    assert x.shape == (2000, 384) and x.dtype == np.float32
    blob = datasets.sample_path().read_bytes()
    facts = spherecodec.info(blob)
    assert facts["codec"] == "exact" and facts["ratio"] > 1.1
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    assert np.abs(norms - 1).max() < 1e-5  # unit-norm sentence embeddings
    # the 512-row test sample was cut from the same source rows
    first = np.load(ROOT / "tests" / "data" / "minilm-sentences-512.npy")
    assert np.array_equal(x[:512].view(np.uint32), first.view(np.uint32))
    again = spherecodec.decode(spherecodec.encode(x))
    assert np.array_equal(again.view(np.uint32), x.view(np.uint32))


def test_unknown_sample_is_refused():
    assert datasets.available_samples() == ["minilm-sentences-2000"]
    with pytest.raises(ValueError, match="unknown sample"):
        datasets.load_sample("nope")


def _copy_project(dst):
    ignore = shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc", "*.egg-info", "*.pyc")
    shutil.copytree(ROOT / "src", dst / "src", ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dst / name)


def test_sample_ships_in_the_built_wheel_and_sdist(tmp_path):
    project = tmp_path / "project"
    _copy_project(project)
    build = ("import setuptools.build_meta as b\n"
             "wheel = b.build_wheel('dist')\n"
             "sdist = b.build_sdist('dist')\n"
             "print('BUILT', wheel, sdist)\n")
    # without the kernels compiled ahead of time (a minute; tests/test_aot.py checks them)
    env = dict(os.environ, SPHERECODEC_AOT="0")
    result = subprocess.run([sys.executable, "-c", build], cwd=project, capture_output=True, text=True, timeout=300,
                            env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    wheel_name, sdist_name = result.stdout.split("BUILT")[-1].split()
    shipped = (ROOT / "src" / SAMPLE_IN_PACKAGE).read_bytes()
    with zipfile.ZipFile(project / "dist" / wheel_name) as wheel:
        assert wheel.read(SAMPLE_IN_PACKAGE) == shipped
        names = wheel.namelist()
        assert "spherecodec/cli.py" in names and "spherecodec/integrations/zarr.py" in names
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        text = wheel.read(entry_points).decode()
        assert "spherecodec = spherecodec.cli:main" in text
        assert "spherecodec.integrations.numcodecs:Spherecodec" in text
        assert "spherecodec.integrations.zarr:SpherecodecZarrCodec" in text
    with tarfile.open(project / "dist" / sdist_name) as sdist:
        members = {m.name.split("/", 1)[1]: m for m in sdist.getmembers() if "/" in m.name}
        assert sdist.extractfile(members["src/" + SAMPLE_IN_PACKAGE]).read() == shipped
        assert "setup.py" in members  # an install from the sdist compiles the kernels ahead of time
