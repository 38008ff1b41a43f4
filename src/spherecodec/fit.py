"""``spherecodec.fit``: a codec fitted once on a sample, reused for every later batch."""

import numpy as np

from .codecs.base import DelegatingCodec
from .container import as_rows, encode, make_codec
from .errors import UnsupportedError

__all__ = ["fit", "FittedCodec"]


class FittedCodec(DelegatingCodec):
    """A codec together with a state fitted once (``spherecodec.fit``): every array it codes
    uses that state instead of fitting its own. Its blobs are the inner codec's (same name,
    parameters and shared section) and decode without it.

    Attributes
    ----------
    codec : Codec
        The inner codec (configuration only).
    state : object
        The fitted state (``codecs.quant.AffineState``, ``BinaryState``, ``pq.PQState``, or
        ``NO_STATE``).
    """

    def __init__(self, codec, state):
        if not codec.reusable_state:
            raise UnsupportedError(f"codec {codec.name!r} has no state to fit")
        self.inner = codec
        self.state = state
        self.name = codec.name
        self.dtypes = codec.dtypes
        self.max_expansion = codec.expansion_bound(state)

    @property
    def codec(self):
        """The inner codec."""
        return self.inner

    def get_config(self):
        return self.inner.stored_config(self.state)

    def __eq__(self, other):
        return (type(self) is type(other) and self.inner == other.inner
                and self.shared_bytes(self.state) == other.shared_bytes(other.state))

    def __hash__(self):
        return hash((super().__hash__(), self.shared_bytes(self.state)))

    def prepare(self, rows):
        # the fitted state, for rows it can code
        self.inner.check_rows(rows, self.state)
        return self.state

    def encode(self, batch, *, threads=None, chunk_rows=None):
        """Code ``batch`` with the fitted state (as ``spherecodec.encode(batch, self)``)."""
        return encode(batch, self, threads=threads, chunk_rows=chunk_rows)


def fit(codec, sample, **params):
    """Fit a codec's state (scales, thresholds, codebooks) on ``sample``.

    Parameters
    ----------
    codec : str or Codec
        A codec name (``"int8"``, ``"int4"``, ``"binary"``, ``"pq"``, ``"fp16"``,
        ``"bf16"``) or a codec object of one of them (it is not changed).
    sample : array_like
        float32 rows (2-D, or N-D with rows over the last axis).
    **params
        Codec parameters when ``codec`` is a name.

    Returns
    -------
    FittedCodec
        The codec with its fitted state (``.codec``, ``.state``): ``.encode(batch)`` codes
        new batches with that state, and passing it as ``codec=`` to ``spherecodec.encode``
        does the same; its blobs decode with ``spherecodec.decode``.

    Examples
    --------
    >>> import numpy as np, spherecodec
    >>> x = np.random.default_rng(0).standard_normal((1000, 64)).astype(np.float32)
    >>> int8 = spherecodec.fit("int8", x[:500])
    >>> spherecodec.decode(int8.encode(x[500:])).shape
    (500, 64)
    """
    codec = make_codec(codec, params)
    if isinstance(codec, FittedCodec):
        codec = codec.inner  # refit: the configuration, a new state
    if not codec.reusable_state:
        raise UnsupportedError(f"codec {codec.name!r} has no state to fit")
    sample = np.asarray(sample)
    if not sample.dtype.isnative:
        sample = sample.astype(sample.dtype.newbyteorder("="))  # codecs read native bits
    codec.check_dtype(sample.dtype)
    rows = codec.transform_rows(as_rows(sample))
    if rows.shape[0] == 0:
        raise ValueError("cannot fit on an empty sample")
    return FittedCodec(codec, codec.prepare(rows))
