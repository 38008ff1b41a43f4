"""spherecodec.evaluate: one row per codec with measured, consistent numbers."""

import numpy as np
import pytest
from common import load_sample

import spherecodec

FIELDS = {"codec", "params", "ratio", "bytes_per_vector", "max_abs_error", "mean_abs_error", "k", "recall",
          "recall_rescored", "encode_MBps", "decode_MBps", "search_ms_per_query"}


@pytest.fixture(scope="module")
def data():
    x = load_sample()
    return x[:400], x[400:]


@pytest.fixture(scope="module")
def rows(data):
    base, queries = data
    return spherecodec.evaluate(base, ["exact", "int8", ("int4", {"clip": 99.5}), {"codec": "binary"},
                                       spherecodec.get_codec("fp16")(entropy=True)], queries=queries, k=5)


def test_rows_have_every_field(rows):
    assert [r["codec"] for r in rows] == ["exact", "int8", "int4", "binary", "fp16"]
    for r in rows:
        assert set(r) == FIELDS
        assert r["k"] == 5
        for key in FIELDS - {"codec", "params", "k"}:
            assert isinstance(r[key], float) and np.isfinite(r[key]) and r[key] >= 0, (r["codec"], key)
    assert rows[2]["params"]["clip"] == 99.5 and rows[4]["params"]["entropy"] is True


def test_numbers_match_direct_measurements(data, rows):
    base, queries = data
    by = {r["codec"]: r for r in rows}
    assert by["exact"]["max_abs_error"] == 0 and by["exact"]["recall"] == 1.0
    for r in rows:
        blob = spherecodec.encode(base, r["codec"], **r["params"])
        assert r["ratio"] == pytest.approx(base.nbytes / len(blob))
        assert r["bytes_per_vector"] == pytest.approx(len(blob) / len(base))
        err = np.abs(spherecodec.decode(blob).astype(np.float64) - base)
        assert r["max_abs_error"] == pytest.approx(err.max()) and r["mean_abs_error"] == pytest.approx(err.mean())
        truth = np.argsort(-(queries.astype(np.float64) @ base.T.astype(np.float64)), axis=1)[:, :5]
        ids = spherecodec.search(blob, queries, 5)[1]
        assert r["recall"] == pytest.approx(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ids, truth)]))
    assert by["int8"]["recall"] >= 0.9 and by["binary"]["recall_rescored"] > by["binary"]["recall"]
    assert by["binary"]["ratio"] > by["int4"]["ratio"] > by["int8"]["ratio"] > by["fp16"]["ratio"] > by["exact"]["ratio"]


def test_default_queries_and_bad_input(data):
    base, _ = data
    rows = spherecodec.evaluate(base[:50], "int8", k=3)
    assert len(rows) == 1 and rows[0]["recall_rescored"] == 1.0
    with pytest.raises(TypeError):
        spherecodec.evaluate(base.astype(np.float64), ["int8"])
    with pytest.raises(ValueError):
        spherecodec.evaluate(base, ["int8"], queries=base[:3, :10])
    with pytest.raises(ValueError):
        spherecodec.evaluate(base, ["int8"], k=0)
    with pytest.raises(TypeError):
        spherecodec.evaluate(base, [42])
    with pytest.raises(spherecodec.UnsupportedError):
        spherecodec.evaluate(base, ["no-such-codec"])
