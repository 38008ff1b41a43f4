"""``spherecodec.aot``: the kernels compiled at install time are used, agree with their Numba
dispatchers byte for byte, spare a fresh process every compile of the default float32 paths,
release the GIL, and are left unused where they would not be what the JIT compiles."""

import json
import os
import subprocess
import sys
import threading

import ml_dtypes
import numpy as np
import pytest

import spherecodec
from spherecodec import aot, aot_build, container

from common import DATA, assert_same_bits, check_corruptions, load_sample

EXPORTS = {name for name, _, _ in aot_build.exports()}


def test_the_install_built_and_loads_the_compiled_kernels():
    # the README's set-up command builds them (setup.py): this host, these sources
    assert aot.status() == (True, "loaded")
    for name in EXPORTS:
        assert aot.kernel(name, None) is not None


def _same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _aligned_copy(a):
    # the vector kernels take some arrays (tables, streamed outputs) 64-byte aligned, as
    # the library's scratch and output pool give them
    raw = np.empty(a.nbytes + 64, dtype=np.uint8)
    start = -raw.ctypes.data % 64
    copy = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    copy[...] = a
    return copy


def _twin(name, jit, compiled, calls):
    """A callable running ``jit`` and, on copies of the arguments, ``compiled``: results,
    exceptions and every array argument (the outputs) must agree."""

    def both(*args):
        copies = [_aligned_copy(a) if isinstance(a, np.ndarray) else a for a in args]
        try:
            expected, failure = jit(*args), None
        except Exception as exc:  # noqa: BLE001 - the compiled export must raise alike
            expected, failure = None, exc
        if failure is None:
            got = compiled(*copies)
            assert _same(got, expected), name
        else:
            with pytest.raises(type(failure)):
                compiled(*copies)
        if name == "copy_bytes" and failure is None:
            # its destination is the blob, which other threads' chunks fill meanwhile
            (dst, pos, _, _, n), (copy, *_) = args, copies
            assert dst[pos:pos + n].tobytes() == copy[pos:pos + n].tobytes(), name
        else:
            for a, c in zip(args, copies):
                if isinstance(a, np.ndarray):
                    assert np.array_equal(a.view(np.uint8), c.view(np.uint8)), f"{name} wrote differently"
        calls[name] = calls.get(name, 0) + 1
        if failure is not None:
            raise failure
        return expected

    return both


@pytest.fixture
def twin_calls(monkeypatch):
    """Every compiled export the library calls also runs its dispatcher (``_twin``); the
    names of the exports called, with their counts."""
    calls = {}
    plain_kernel, checked_kernel = aot.kernel, aot.checked

    def kernel(name, jit):
        compiled = plain_kernel(name, jit)
        assert compiled is not jit, f"no compiled export {name}"
        return _twin(name, jit, compiled, calls)

    def checked(name, jit):
        call = checked_kernel(name, jit)
        if call is jit:  # no export of that name (e.g. a dtype none is built for): the JIT's
            return jit
        both = _twin(name, jit, call.compiled, calls)
        return lambda *args: both(*args) if call.fits(args) else jit(*args)

    monkeypatch.setattr(aot, "kernel", kernel)
    monkeypatch.setattr(aot, "checked", checked)
    # small blobs' plans keep their kernel per shape: made again, they take the twins
    monkeypatch.setattr(container, "_SMALL_PREFIXES", {})
    return calls


def test_every_export_matches_its_dispatcher(twin_calls):
    x = load_sample()
    big = np.ascontiguousarray(np.resize(x, (20_000, x.shape[1])))
    for rows, options in ((1, {}), (3, {}), (32, {}), (200, {}), (480, {"chunk_rows": 150}),
                          (len(big), {}), (len(big), {"threads": 1})):
        a = big[:rows]
        blob = spherecodec.encode(a, **options)
        for threads in (1, 2):
            assert_same_bits(spherecodec.decode(blob, threads=threads), a)
            assert_same_bits(spherecodec.decode(bytearray(blob), threads=threads), a)
        assert_same_bits(spherecodec.decode_rows(blob, 1, rows), a[1:])
    # damaged blobs, checksums resealed or not: the same verdicts and the same values
    for rows, options in ((3, {}), (32, {}), (480, {"chunk_rows": 150})):
        blob = spherecodec.encode(big[:rows], threads=1, **options)
        check_corruptions(blob, n=40, seed=rows)
        check_corruptions(blob, n=20, seed=rows, fix_checksums=False)
    # the other codecs' kernels (aot_build._other_codecs), damaged payloads too
    rows = big[:2048]  # levels 2-5 fit a model from about 2,000 rows on
    for codec, params in (("exact", {"level": 3}), ("exact", {"level": 5}), ("grid", {}), ("sphere", {}),
                          ("grid", {"max_abs_error": 1e-4}), ("sphere", {"max_abs_error": 1e-4}),
                          ("pq", {}), ("rabitq", {}), ("int8", {}), ("int4", {})):
        for threads in (1, 2):
            blob = spherecodec.encode(rows, codec, threads=threads, **params)
            expected = spherecodec.decode(blob, threads=1)
            assert_same_bits(spherecodec.decode(blob, threads=threads), expected)
        if codec in ("exact", "grid", "sphere"):
            check_corruptions(blob, n=20, seed=len(params))
    # the exact codec's other dtypes and modes: half precision, its upcasts, zero masks
    for rows in (32, 400, 2000):
        a = big[:rows]
        sparse = a.copy()
        sparse[:, 1::2] = 0
        for b in (a.astype(ml_dtypes.bfloat16), a.astype(np.float16), a.astype(ml_dtypes.bfloat16).astype(np.float32),
                  a.astype(np.float16).astype(np.float32), sparse):
            for threads in (1, 2):
                assert_same_bits(spherecodec.decode(spherecodec.encode(b, threads=threads), threads=threads), b)
    # levels 2-5's older model format (its own decoder, decode_contexts)
    for golden in sorted((DATA / "golden-exact-levels" / "model-format-1").glob("*.sphc")):
        blob = golden.read_bytes()
        assert_same_bits(spherecodec.decode(blob, threads=1), np.load(golden.with_suffix(".npy")))
    wide = np.ascontiguousarray(np.resize(x, (2 ** 16 // 8, 8)))  # grid's columns in 64-lane streams
    blob = spherecodec.encode(wide, "grid", threads=1)
    assert spherecodec.decode(blob, threads=1).tobytes() == spherecodec.decode(blob, threads=2).tobytes()
    assert set(twin_calls) == EXPORTS, EXPORTS - set(twin_calls)


_FRESH_PROCESS = """
import json, sys
import numpy as np
import spherecodec
from numba.core import event
compiled = []
class Compiles(event.Listener):
    depth = 0
    def on_start(self, ev):
        if self.depth == 0:
            compiled.append(ev.data["dispatcher"].py_func.__qualname__)
        self.depth += 1
    def on_end(self, ev):
        self.depth -= 1
event.register("numba:compile", Compiles())
x = np.load(sys.argv[1])
for rows in (1, 3, 32, 200, 10000):
    a = np.ascontiguousarray(np.resize(x, (rows, x.shape[1])))
    for threads in (None, 1):
        blob = spherecodec.encode(a, threads=threads)
        for b in (blob, bytearray(blob)):
            assert spherecodec.decode(b, threads=threads).tobytes() == a.tobytes()
    assert spherecodec.decode_rows(blob, 0, rows).tobytes() == a.tobytes()
print(json.dumps({"compiled": compiled, "aot": spherecodec.aot.status()}))
"""


def _run(code, tmp_path, **env):
    sample = tmp_path / "sample.npy"
    np.save(sample, load_sample())
    cache = tmp_path / "numba-cache"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "SPHERECODEC_"))}
    full_env.update(NUMBA_CACHE_DIR=str(cache), **env)
    done = subprocess.run([sys.executable, "-c", code, str(sample)], env=full_env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_fresh_process_compiles_nothing_for_default_float32(tmp_path):
    # an empty kernel cache: encode and decode of float32 with the default codec, small
    # blobs and chunked ones, threads or not, run without one Numba compilation
    result = _run(_FRESH_PROCESS, tmp_path)
    assert result == {"compiled": [], "aot": [True, "loaded"]}


_STATUS = """
import json
from spherecodec import aot
print(json.dumps(aot.status()))
"""


@pytest.mark.parametrize("env, reason", [
    ({"SPHERECODEC_AOT": "0"}, "SPHERECODEC_AOT=0"),
    ({"NUMBA_CPU_NAME": "haswell"}, "Numba compiles for another target or mode (NUMBA_CPU_NAME)"),
    ({"NUMBA_CPU_NAME": "generic", "NUMBA_CPU_FEATURES": ""},
     "Numba compiles for another target or mode (NUMBA_CPU_NAME, NUMBA_CPU_FEATURES)"),
    ({"NUMBA_BOUNDSCHECK": "1"}, "Numba compiles for another target or mode (NUMBA_BOUNDSCHECK)"),
])
def test_other_jit_settings_leave_the_compiled_kernels_unused(tmp_path, env, reason):
    assert _run(_STATUS, tmp_path, **env) == [False, reason]


def test_a_build_for_other_sources_or_another_cpu_is_not_used(monkeypatch):
    # the stamp covers the kernels' sources and the CPU: any change and the JIT compiles
    monkeypatch.setattr(aot, "_module", None)  # undone after the test, with its reason
    monkeypatch.setattr(aot, "_reason", aot._reason)
    monkeypatch.setattr(aot, "stamp", lambda: 12345)
    assert aot.status() == (False, "built for another CPU or other kernel sources")
    jit = object()
    assert aot.kernel("decode_blob_8", jit) is jit


def test_a_stamp_that_cannot_be_computed_leaves_the_jit(monkeypatch):
    # sources that cannot be read (say): no exception in the caller's encode, the JIT's kernels

    def unreadable():
        raise PermissionError("kernels/rans.py")

    monkeypatch.setattr(aot, "_module", None)
    monkeypatch.setattr(aot, "_reason", aot._reason)
    monkeypatch.setattr(aot, "stamp", unreadable)
    assert aot.status() == (False, "stamp not computed (PermissionError('kernels/rans.py'))")
    x = load_sample()[:3]
    assert_same_bits(spherecodec.decode(spherecodec.encode(x)), x)


def test_the_compiled_kernels_release_the_gil():
    # a chunked decode's one kernel call runs ~10 ms: with the GIL held, the calling
    # thread would not run a single Python step meanwhile
    x = load_sample()
    big = np.ascontiguousarray(np.resize(x, (40_000, x.shape[1])))
    blob = spherecodec.encode(big)
    spherecodec.decode(blob, threads=1)
    state = {"running": False, "done": False}
    compiled = aot.kernel(aot.export_name("decode_chunks", spherecodec.kernels.rans_simd.VECTOR), None)
    assert compiled is not None

    def timed_kernel(*args):
        state["running"] = True
        try:
            return compiled(*args)
        finally:
            state["running"], state["done"] = False, True

    steps = 0
    original = aot.kernel
    aot.kernel = lambda name, jit: timed_kernel if name.startswith("decode_chunks") else original(name, jit)
    try:
        worker = threading.Thread(target=lambda: spherecodec.decode(blob, threads=1))
        worker.start()
        while not state["done"]:
            steps += state["running"]
        worker.join()
    finally:
        aot.kernel = original
    assert steps > 1000
