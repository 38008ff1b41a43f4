"""Shapes that real embedding stores are full of, made from real vectors.

Each shape turns a float32 array into what a user's store often holds instead of plain
float32 embeddings: vectors that passed through bfloat16 or float16 (inference in half
precision, upcast on output), all zeros (unused slots, zarr's fill), padded multi-vector
slots (every other row zero) and sparse rows (most values zero). ``spherecodec bench
--synthetic NAME`` applies them to the bundled sample; ``benches/bench_shapes.py`` to the
shared embeddings.
"""

import ml_dtypes
import numpy as np

__all__ = ["SHAPES", "make_shape"]


def _bf16_upcast(x, rng):
    return x.astype(ml_dtypes.bfloat16).astype(np.float32)


def _fp16_upcast(x, rng):
    return x.astype(np.float16).astype(np.float32)


def _zeros(x, rng):
    return np.zeros_like(x)


def _padded_rows(x, rng):
    y = x.copy()
    y[1::2] = 0.0
    return y


def _sparse_95(x, rng):
    return np.where(rng.random(x.shape) < 0.95, np.float32(0.0), x)


#: name -> (what it is, the function that makes it from float32 rows)
SHAPES = {
    "plain": ("the vectors as they are", lambda x, rng: x.copy()),
    "bf16-upcast": ("float32 that was bfloat16 (low 16 bits zero)", _bf16_upcast),
    "fp16-upcast": ("float32 that was float16 (exactly float16-representable)", _fp16_upcast),
    "zeros": ("all zeros", _zeros),
    "padded-rows": ("every other row zero (padded multi-vector slots)", _padded_rows),
    "sparse-95": ("95% of values zero at random (seeded)", _sparse_95),
}


def make_shape(name, x, seed=0):
    """``x`` (float32 rows) turned into the shape ``name`` (a key of ``SHAPES``)."""
    if name not in SHAPES:
        raise ValueError(f"unknown shape {name!r}; choose from {', '.join(SHAPES)}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    return np.ascontiguousarray(SHAPES[name][1](x, np.random.default_rng(seed)), dtype=np.float32)
