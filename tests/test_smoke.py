import numpy as np

import spherecodec


def test_exact_round_trip_is_bit_exact():
    x = np.random.default_rng(0).standard_normal((300, 64)).astype(np.float32)
    y = spherecodec.decode(spherecodec.encode(x, chunk_rows=64))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert (y.view(np.uint32) == x.view(np.uint32)).all()
