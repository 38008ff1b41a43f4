"""``spherecodec.fit``: a codec fitted once on a sample, reused for every later batch."""

import numpy as np

from .container import make_codec
from .errors import UnsupportedError

__all__ = ["fit"]


def fit(codec, sample, **params):
    """Fit a codec's state (scales, thresholds, codebooks) on ``sample``.

    Parameters
    ----------
    codec : str or Codec
        A codec name (``"int8"``, ``"int4"``, ``"binary"``, ``"pq"``, ``"fp16"``,
        ``"bf16"``) or an unfitted codec object.
    sample : array_like
        float32 rows (2-D, or N-D with rows over the last axis).
    **params
        Codec parameters when ``codec`` is a name.

    Returns
    -------
    Codec
        The fitted codec: ``.encode(batch)`` codes new batches with the same state, and
        passing it as ``codec=`` to ``spherecodec.encode`` does the same; its blobs decode
        with ``spherecodec.decode``.

    Examples
    --------
    >>> import numpy as np, spherecodec
    >>> x = np.random.default_rng(0).standard_normal((1000, 64)).astype(np.float32)
    >>> int8 = spherecodec.fit("int8", x[:500])
    >>> spherecodec.decode(int8.encode(x[500:])).shape
    (500, 64)
    """
    codec = make_codec(codec, params)
    if not callable(getattr(codec, "fit", None)):
        raise UnsupportedError(f"codec {codec.name!r} has no state to fit")
    sample = np.asarray(sample)
    codec.check_dtype(sample.dtype)
    return codec.fit(sample)
