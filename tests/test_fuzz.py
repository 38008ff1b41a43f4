"""Bounded fuzzing of decode, decode_rows and info over every codec, and forged headers.

The fuzz session runs ``fuzz/run.py`` in a subprocess (its cases run in worker processes
of their own), so a segfault in a Numba kernel fails this test instead of killing pytest.
The long session is ``python fuzz/run.py --mutations 100000`` (docs/reliability.md).
"""

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import spherecodec
from spherecodec import container, layout

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))
import mutate  # noqa: E402

CODECS = mutate.shipped_codecs()
RUN = [sys.executable, str(ROOT / "fuzz" / "run.py")]


def test_every_registered_codec_has_fuzz_samples():
    # a new codec must be added to fuzz/mutate.py's CODEC_SAMPLES to be fuzzed at all
    mutate.check_table()
    with pytest.raises(mutate.MissingSamplesError, match="no-such-codec"):
        mutate.check_table(CODECS + ["no-such-codec"])


def test_corpus_covers_every_codec_and_reseals_identically():
    corpus = mutate.build_corpus()
    assert {e.codec for e in corpus} == set(CODECS) | {mutate.FRAME}  # frames (issue 20) too
    for e in corpus:
        assert mutate.seal(e.blob) == e.blob, f"{e.codec}/{e.label}: the fuzzer's sealing differs"


def test_bounded_fuzz_session(tmp_path):
    """~30 s of fuzzing (after warm-up), every codec: no crash, hang, foreign error, big allocation."""
    summary = tmp_path / "summary.json"
    proc = subprocess.run(RUN + ["--mutations", "40000", "--seconds", "30", "--workers", "2", "--seed",
                                 "7", "--crash-dir", str(tmp_path / "crashes"), "--json", str(summary)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    s = json.loads(summary.read_text())
    assert s["unexpected"] == s["crashes"] == s["hangs"] == 0
    assert s["allocation_checked"]
    # the machine is shared: demand far fewer cases than an idle one runs in 40 s
    assert s["cases"] >= 1000, s
    assert set(s["per_codec"]) == set(CODECS) | {mutate.FRAME}, s["per_codec"]
    # the mutations reach the codecs: some blobs decode, others fail at every stage
    assert any(k.startswith("ok/ok") for k in s["outcomes"]), s["outcomes"]
    assert any(k.startswith("ok/CorruptBlobError") for k in s["outcomes"]), s["outcomes"]


def test_runner_reports_segfaults_hangs_and_foreign_exceptions(tmp_path):
    """The runner itself: a segfaulting, a hanging and a misbehaving case are each caught,
    saved with their reproducer, and the session goes on past them."""
    summary = tmp_path / "summary.json"
    env = dict(os.environ, SPHC_FUZZ_SELFTEST="raise:3,crash:5,hang:8")
    proc = subprocess.run(RUN + ["--mutations", "12", "--workers", "2", "--timeout", "5", "--crash-dir",
                                 str(tmp_path / "crashes"), "--json", str(summary)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    s = json.loads(summary.read_text())
    got = sorted((f["case"], f["what"]) for f in s["failures"])
    assert got == [(3, "unexpected"), (5, "crash"), (8, "hang")]
    assert s["cases"] == 12  # every other case still ran
    assert "SIGSEGV" in (tmp_path / "crashes" / "crash-seed1-case5.txt").read_text()
    assert "KeyError" in (tmp_path / "crashes" / "unexpected-seed1-case3.txt").read_text()
    saved = (tmp_path / "crashes" / "hang-seed1-case8.bin").read_bytes()
    corpus = mutate.build_corpus(decode_reference=False)
    assert saved == mutate.mutate(corpus, 1, 8)[1]  # the reproducer is the case's blob


# ----------------------------------------------------------------------------------------
# forged headers: every one raises a SpherecodecError, allocating within the bound
# ----------------------------------------------------------------------------------------
def _peak(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        try:
            res = fn()
        except Exception as exc:  # noqa: BLE001 - inspected by the caller
            res = exc
        return res, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _forgeries(entry):
    blob = entry.blob
    parts = mutate.split(blob)
    meta = json.loads(parts.meta)
    dim = max(meta["dim"], 1)
    yield "rows 2**40", mutate.forge(blob, meta={"rows": 2**40, "shape": [2**40, dim], "dim": dim,
                                                 "chunk_rows": 2**40}, payloads=parts.payloads[:1])
    yield "dim 2**40, no rows", mutate.forge(blob, meta={"rows": 0, "dim": 2**40, "shape": [0, 2**40]},
                                             payloads=[])
    yield "empty shape past numpy's range", mutate.forge(
        blob, meta={"rows": 0, "dim": 2**61, "shape": [0, 2**61]}, payloads=[])
    yield "chunk_rows 2**61", mutate.forge(blob, meta={"chunk_rows": 2**61}, payloads=[b"".join(parts.payloads)])
    yield "n_chunks 2**60", mutate.forge(blob, n_chunks=2**60)
    yield "shared_len 2**63", mutate.forge(blob, shared_len=2**63)
    yield "meta_len 2**32-1", mutate.forge(blob, meta_len=2**32 - 1)
    yield "chunk length 2**64-1", mutate.forge(blob, lengths=[2**64 - 1] * len(parts.payloads))
    yield "deep JSON", mutate.forge(blob, meta_bytes=b"[" * 100000 + b"]" * 100000)
    yield "shape [8, 0] over rows 0 x dim 8", mutate.forge(blob, meta={"rows": 0, "dim": 8, "shape": [8, 0]},
                                                          payloads=[])
    yield "largest single chunk", mutate.max_chunk_forgery(entry)
    yield "shared section of another size", mutate.forge(blob, shared=parts.shared + b"\0" * 8)


@pytest.mark.parametrize("codec", CODECS)
def test_forged_headers_raise_and_allocate_within_bound(codec):
    entries = [e for e in mutate.build_corpus([codec]) if len(mutate.split(e.blob).payloads) >= 2]
    for entry in entries[:2]:
        for what, forged in _forgeries(entry):
            bound = mutate.allocation_bound(len(forged), mutate.max_expansion(forged))
            for call, fn in [("info", lambda: spherecodec.info(forged)),
                             ("decode", lambda: spherecodec.decode(forged, threads=1)),
                             ("decode_rows", lambda: spherecodec.decode_rows(forged, 0, 3))]:
                res, peak = _peak(fn)
                if isinstance(res, Exception):
                    assert isinstance(res, spherecodec.SpherecodecError), (
                        f"{codec}/{entry.label} {what}: {call} raised {type(res).__name__}: {res}")
                elif what not in ("dim 2**40, no rows", "chunk_rows 2**61") and call != "info":
                    pytest.fail(f"{codec}/{entry.label} {what}: {call} accepted the forgery")
                assert peak <= bound, f"{codec}/{entry.label} {what}: {call} held {peak} B > {bound} B"


def test_huge_chunk_rows_decode_rows_allocates_by_rows():
    # regression: decode_rows sized its scratch by chunk_rows (2**61 rows) before rows
    x = np.arange(40, dtype=np.float32).reshape(5, 8)
    blob = spherecodec.encode(x, chunk_rows=8)
    parts = mutate.split(blob)
    forged = mutate.forge(blob, meta={"chunk_rows": 2**61}, payloads=parts.payloads)
    res, peak = _peak(lambda: spherecodec.decode_rows(forged, 1, 3))
    assert (res.view(np.uint32) == x[1:3].view(np.uint32)).all()
    assert peak < 1 << 20


def test_empty_shape_beyond_numpy_is_corrupt():
    # regression (found by fuzz/run.py, seed 2 case 7731): shape [0, 2**61] passed the header
    # checks (0 bytes) and np.empty raised a bare ValueError "array is too big"
    blob = spherecodec.encode(np.zeros((0, 8), np.float32))
    forged = mutate.forge(blob, meta={"rows": 0, "dim": 2**61, "shape": [0, 2**61]})
    for fn in (spherecodec.info, spherecodec.decode, lambda b: spherecodec.decode_rows(b, 0, 1)):
        with pytest.raises(spherecodec.CorruptBlobError, match="larger than any array"):
            fn(forged)


def test_deep_json_and_contradicting_empty_shape_are_corrupt():
    blob = spherecodec.encode(np.zeros((0, 8), np.float32))
    with pytest.raises(spherecodec.CorruptBlobError):
        spherecodec.info(mutate.forge(blob, meta_bytes=b'{"a":' * 50000 + b"1" + b"}" * 50000))
    with pytest.raises(spherecodec.CorruptBlobError):
        spherecodec.decode_rows(mutate.forge(blob, meta={"rows": 0, "dim": 8, "shape": [8, 0]}), 0, 2)


@pytest.mark.parametrize("shape", [(8, 0), (3, 4, 0), (0, 0), (0,), (3, 0, 5)])
def test_empty_axes_round_trip(shape):
    # regression: reshape(-1, 0) made encode raise a bare ValueError for an empty last axis
    x = np.zeros(shape, np.float32)
    y = spherecodec.decode(spherecodec.encode(x))
    assert y.shape == x.shape and y.dtype == x.dtype


def test_declared_expansion_bounds_what_a_header_may_announce():
    """The container refuses a header announcing one byte more than its budget."""
    blob = spherecodec.encode(np.ones((4, 8), np.float32), chunk_rows=4)
    parts = mutate.split(blob)
    exp = container.Header(blob).codec.max_expansion
    for rows, ok in ((4, True), (10**9, False)):
        forged = mutate.forge(blob, meta={"rows": rows, "shape": [rows, 8], "chunk_rows": rows},
                              payloads=parts.payloads)
        budget = layout.ALLOCATION_SLACK + exp * len(forged)
        assert (rows * 32 <= budget) == ok
        if not ok:
            with pytest.raises(spherecodec.CorruptBlobError, match="decoded bytes"):
                spherecodec.info(forged)
