"""Small real embedding samples shipped inside the package.

>>> from spherecodec.datasets import load_sample
>>> x = load_sample()
>>> x.shape, x.dtype.name
((2000, 384), 'float32')
"""

from importlib import resources

from . import container as _container

__all__ = ["SAMPLES", "available_samples", "sample_path", "load_sample"]

#: name -> (file under spherecodec/data, description)
SAMPLES = {
    "minilm-sentences-2000": (
        "minilm-sentences-2000.sphc",
        "2,000 unit-norm 384-d sentence embeddings (all-MiniLM-L6-v2 of CPython docstrings), "
        "stored with the exact codec; made by scripts/make_samples.py",
    ),
}
DEFAULT_SAMPLE = "minilm-sentences-2000"


def available_samples():
    """Names of the bundled samples."""
    return sorted(SAMPLES)


def sample_path(name=DEFAULT_SAMPLE):
    """A ``Traversable`` for the bundled sample's ``.sphc`` file (``open("rb")`` reads it)."""
    try:
        filename, _ = SAMPLES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown sample {name!r}; available: {', '.join(available_samples())}") from None
    return resources.files("spherecodec").joinpath("data", filename)


def load_sample(name=DEFAULT_SAMPLE):
    """Decode a bundled sample into a new float32 array (bit-exact: it is stored losslessly).

    Parameters
    ----------
    name : str
        One of :func:`available_samples` (default ``"minilm-sentences-2000"``).

    Returns
    -------
    numpy.ndarray
    """
    blob = sample_path(name).read_bytes()
    return _container.decode(blob, threads=1)
