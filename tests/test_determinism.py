"""Determinism: re-encoding gives the same bytes across runs, processes and entropy backends.

(Golden blobs, which pin the bytes across versions and machines, are tests/test_golden.py.)
A second Python process with another hash seed and one Numba thread re-encodes the whole
fuzz corpus (every codec, every sample) and must produce the same bytes as this process.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import spherecodec
from spherecodec import entropy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))
import mutate  # noqa: E402

_DIGESTS = """
import hashlib, json, sys
sys.path.insert(0, {fuzz!r})
import mutate
print(json.dumps({{f"{{e.codec}}/{{e.label}}": hashlib.sha256(e.blob).hexdigest()
                  for e in mutate.build_corpus(decode_reference=False)}}))
"""


def _digests():
    return {f"{e.codec}/{e.label}": hashlib.sha256(e.blob).hexdigest()
            for e in mutate.build_corpus(decode_reference=False)}


def test_encoding_is_identical_in_another_process():
    here = _digests()
    env = dict(os.environ, PYTHONHASHSEED="12345", NUMBA_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _DIGESTS.format(fuzz=str(ROOT / "fuzz"))],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    there = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(there) == set(here)
    differ = sorted(k for k in here if here[k] != there[k])
    assert not differ, f"encoded differently in another process: {differ}"


def test_encoding_is_identical_across_runs_in_process():
    assert _digests() == _digests()


@pytest.mark.parametrize("backend", tuple(entropy.BACKENDS))
def test_each_entropy_backend_is_deterministic(backend):
    rng = np.random.default_rng(11)
    for alphabet, n in ((2, 1), (256, 1000), (512, 4099), (1 << 16, 3000)):
        values = np.minimum(rng.geometric(0.05, size=n) - 1, alphabet - 1).astype(np.uint32)
        first = entropy.encode_stream(values, alphabet, backend=backend)
        assert entropy.encode_stream(values, alphabet, backend=backend) == first
        out = np.empty(n, dtype=np.uint32)
        end = entropy.decode_stream(np.frombuffer(first, np.uint8), 0, alphabet, out)
        assert end == len(first) and (out == values).all()


def test_both_backends_decode_to_the_same_bits():
    x = mutate.make_array("special", (64, 40), seed=5)
    blobs = {b: spherecodec.encode(x, "exact", entropy=b, chunk_rows=16, threads=1)
             for b in ("numba", "constriction")}
    assert blobs["numba"] != blobs["constriction"]
    for backend, blob in blobs.items():
        assert spherecodec.encode(x, "exact", entropy=backend, chunk_rows=16, threads=2) == blob
        assert (spherecodec.decode(blob).view(np.uint32) == x.view(np.uint32)).all(), backend
