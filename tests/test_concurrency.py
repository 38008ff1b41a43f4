"""Concurrency: the bytes never depend on ``threads=`` or on other Python threads.

Encoders and decoders run Numba kernels with the GIL released, in the container's thread
pool and in callers' threads at once. Eight Python threads encoding and decoding every
codec together must produce exactly what one thread produces alone.
"""

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import spherecodec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))
import mutate  # noqa: E402

CODECS = mutate.shipped_codecs()


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8).tobytes()


def _case(codec):
    """(array, params) with many chunks: the codec's first fuzz sample's parameters."""
    mutate.check_table([codec])
    sample = mutate.CODEC_SAMPLES[codec]()[0]
    x = mutate.make_array("unit", (300, 96), seed=3)
    if sample.factory is not None:
        obj, params = sample.factory(x)
        return x, obj, params
    return x, codec, dict(sample.params)


@pytest.fixture(scope="module")
def references():
    refs = {}
    for codec in CODECS:
        x, obj, params = _case(codec)
        blob = spherecodec.encode(x, obj, threads=1, chunk_rows=16, **params)
        refs[codec] = (x, obj, params, blob, spherecodec.decode(blob, threads=1))
    return refs


@pytest.mark.parametrize("codec", CODECS)
def test_bytes_do_not_depend_on_threads(codec, references):
    x, obj, params, blob, decoded = references[codec]
    assert len(mutate.split(blob).payloads) == 19
    for threads in (2, 3, 8, None):
        assert spherecodec.encode(x, obj, threads=threads, chunk_rows=16, **params) == blob, threads
        assert _bits(spherecodec.decode(blob, threads=threads)) == _bits(decoded), threads
        out = np.empty_like(decoded)
        spherecodec.decode(blob, threads=threads, out=out)
        assert _bits(out) == _bits(decoded)


def test_eight_python_threads_at_once_match_one(references):
    barrier = threading.Barrier(8)
    errors = []
    results = {}

    def work(k):
        try:
            barrier.wait()
            order = CODECS[k % len(CODECS):] + CODECS[:k % len(CODECS)]
            for rep in range(2):
                for codec in order:
                    x, obj, params, _, _ = references[codec]
                    threads = (k + rep) % 3 + 1
                    blob = spherecodec.encode(x, obj, threads=threads, chunk_rows=16, **params)
                    dec = spherecodec.decode(blob, threads=threads)
                    rows = spherecodec.decode_rows(blob, 7 * k, 7 * k + 50)
                    results[(k, rep, codec)] = (blob, _bits(dec), _bits(rows))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append((k, repr(exc)))

    pool = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=300)
    assert not errors, errors
    assert len(results) == 8 * 2 * len(CODECS)
    for (k, rep, codec), (blob, dec, rows) in results.items():
        _, _, _, ref_blob, ref_dec = references[codec]
        assert blob == ref_blob, (codec, k, rep)
        assert dec == _bits(ref_dec), (codec, k, rep)
        assert rows == _bits(ref_dec[7 * k:7 * k + 50]), (codec, k, rep)


def test_one_fitted_codec_object_shared_by_threads(references):
    """A fitted codec object (scales, codebooks) is read-only while encoding: threads may share it."""
    fitted = []
    for codec in CODECS:
        x, obj, params, ref_blob, _ = references[codec]
        if not spherecodec.get_codec(codec).reusable_state or not isinstance(obj, str):
            continue
        fitted.append((codec, spherecodec.fit(codec, x, **params), x, ref_blob))
    assert fitted, "no codec with a state to fit and share"
    barrier = threading.Barrier(8)
    blobs = {}
    errors = []

    def work(k):
        try:
            barrier.wait()
            for codec, obj, x, _ in fitted:
                blobs[(k, codec)] = spherecodec.encode(x, obj, threads=k % 2 + 1, chunk_rows=16)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append((k, repr(exc)))

    pool = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=300)
    assert not errors, errors
    for codec, _, _, ref_blob in fitted:
        assert {blobs[(k, codec)] for k in range(8)} == {ref_blob}, codec
