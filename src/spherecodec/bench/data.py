"""The data a benchmark runs on: the bundled sample, synthetic sets or a file, split into the
base (compressed) and the held-out queries (never compressed)."""

import os

import numpy as np

from .. import container as _container
from .. import datasets
from .shapes import SHAPES, make_shape

__all__ = ["BenchError", "SYNTHETIC_SETS", "SAMPLE_NAME", "MAX_QUERIES", "load_sample", "synthetic",
           "load_file", "as_float32_rows", "split_queries", "data_facts"]

#: built-in synthetic sets: name -> (kind, dim)
SYNTHETIC_SETS = {
    "unit-384": ("unit", 384),
    "unit-768": ("unit", 768),
    "unit-1024": ("unit", 1024),
    "unit-4096": ("unit", 4096),
    "nonunit-384": ("nonunit", 384),
    "multivector-128": ("multivector", 128),
}
# the shapes of real stores (bench.shapes), made from the bundled real sample
SYNTHETIC_SETS.update({name: ("shape", 384) for name in SHAPES if name != "plain"})
# synthetic sets hold about this many floats unless --rows says otherwise (6 MB)
_SYNTHETIC_FLOATS = 1_500_000
#: file name of the bundled sample, as the report names the data
SAMPLE_NAME = datasets.SAMPLES[datasets.DEFAULT_SAMPLE][0]
#: held-out queries are capped so exact search stays cheap on big inputs
MAX_QUERIES = 1000


class BenchError(Exception):
    """A benchmark input problem reported to the user as one line, not a traceback."""


def load_sample():
    """The bundled real sample: 2000 x 384 unit-norm MiniLM sentence embeddings."""
    try:
        return datasets.load_sample()
    except ValueError as exc:  # a SpherecodecError: the installed package file is damaged
        raise BenchError(f"the bundled sample {SAMPLE_NAME} does not decode: {exc}") from None


def synthetic(name, rows=None, seed=0):
    """A built-in synthetic set (see ``SYNTHETIC_SETS``) as a 2-D float32 array.

    ``bf16-upcast``, ``fp16-upcast``, ``zeros``, ``padded-rows``, ``sparse-95``: the bundled
    real sample in the shapes of ``bench.shapes``.
    ``unit-D``: Gaussian vectors normalised to unit length. ``nonunit-384``: Gaussian
    directions with log-normal norms (0.2 to 20). ``multivector-128``: ColBERT-style token
    vectors, 32 per document, each a unit vector near its document's centre.
    """
    if name not in SYNTHETIC_SETS:
        raise BenchError(f"unknown synthetic set {name!r}; choose from {', '.join(SYNTHETIC_SETS)}")
    kind, dim = SYNTHETIC_SETS[name]
    if kind == "shape":  # the bundled sample (2000 rows), repeated when more rows are asked for
        base = load_sample()
        rows = rows or base.shape[0]
        return make_shape(name, np.resize(base, (rows, base.shape[1])), seed=seed)
    rows = rows or max(64, _SYNTHETIC_FLOATS // dim)
    rng = np.random.default_rng(seed)
    if kind == "multivector":
        per_doc = 32
        docs = -(-rows // per_doc)
        centres = rng.standard_normal((docs, 1, dim))
        x = (centres + 0.6 * rng.standard_normal((docs, per_doc, dim))).reshape(-1, dim)[:rows]
    else:
        x = rng.standard_normal((rows, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    if kind == "nonunit":
        x *= np.exp(rng.uniform(np.log(0.2), np.log(20.0), size=(rows, 1)))
    return np.ascontiguousarray(x, dtype=np.float32)


def load_file(path):
    """Rows of a ``.npy`` file or a spherecodec blob (``.sphc``) as an array."""
    if not os.path.exists(path):
        raise BenchError(f"no such file: {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        if head == _container.MAGIC:
            with open(path, "rb") as f:
                return _container.decode(f.read())  # a SpherecodecError is a ValueError
        if head != b"\x93NUM":
            # np.load would guess a pickle and say so: say what the bench reads instead
            raise BenchError(f"{path}: not a .npy file (written by numpy.save) nor a .sphc file; "
                             "save the vectors with numpy.save(path, array)")
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise BenchError(f"cannot read {path}: {exc}") from None


def as_float32_rows(array, rows=None):
    """An owned, writeable, C-contiguous 2-D float32 copy of ``array`` (rows over the last
    axis), cut to its first ``rows`` rows when given."""
    array = np.asarray(array)
    if array.dtype.kind != "f":
        raise BenchError(f"data must be floating point, not {array.dtype}")
    if array.ndim == 0:
        raise BenchError("data must have at least one dimension")
    array = array.reshape(-1, array.shape[-1]) if array.ndim != 1 else array.reshape(1, -1)
    if rows is not None:
        array = array[:rows]
    # an owned, writeable copy: some peers refuse read-only buffers (memory-mapped files)
    return np.array(array, dtype=np.float32, order="C", copy=True)


def split_queries(data, query_fraction=0.1, max_queries=MAX_QUERIES):
    """``(base, queries)``: the last ``query_fraction`` of the rows (at most ``max_queries``)
    are held-out queries, never compressed; the rows before them are the base."""
    n = data.shape[0]
    if n < 2:
        raise BenchError(f"need at least 2 rows (base and queries), got {n}")
    nq = min(n - 1, max_queries, max(1, int(round(n * query_fraction))))
    return np.ascontiguousarray(data[:n - nq]), np.ascontiguousarray(data[n - nq:])


def data_facts(data, source, query_fraction):
    """What the report says about the data: source, shape, the base/query split, row norms."""
    base_rows = split_queries(data[:, :1], query_fraction)[0].shape[0]
    norms = np.linalg.norm(data.astype(np.float64), axis=1)
    return {"source": source, "rows": int(data.shape[0]), "dim": int(data.shape[1]),
            "base_rows": int(base_rows), "query_rows": int(data.shape[0] - base_rows),
            "norm_min": float(norms.min()), "norm_max": float(norms.max())}
