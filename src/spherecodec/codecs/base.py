"""The contract every codec honours, numcodecs-style.

The container (``spherecodec.container``) cuts a 2-D array of rows into row chunks and asks
the codec to code each chunk on its own; a codec never sees the container's bytes.

A codec object holds its configuration and nothing else: what it fits on an array (scales,
codebooks, a predictor) is a separate *state* object that ``prepare`` returns and that every
later call takes explicitly. Encoding never changes the codec (``get_config()``, equality,
hash), so one object may code any number of arrays, from any number of threads.

One encode::

    rows = codec.transform_rows(rows)       # whole array, once (dive: the reduction)
    state = codec.prepare(rows)             # whole array, once: fit; NO_STATE if nothing to fit
    payload = codec.encode_chunk(chunk, state)          # per chunk, any thread
    params = codec.stored_config(state)     # the blob's "params"
    shared = codec.shared_bytes(state)      # the blob's shared section

One decode::

    codec = get_codec(name).from_config(params)
    state = codec.load_shared(shared, dtype, dim)
    codec.decode_chunk(payload, out, state)             # per chunk, any thread
"""

import functools
import inspect
import json
from dataclasses import dataclass

import numpy as np

from ..errors import CorruptBlobError, UnsupportedError


def _unknown_parameters_message(codec_name, unknown, accepted):
    names = ", ".join(repr(k) for k in unknown)
    takes = f"it takes {', '.join(accepted)}" if accepted else "it takes no parameters"
    return f"codec {codec_name!r} has no parameter {names}; {takes}"


def _with_named_parameter_errors(init):
    """``init`` checking its keyword arguments first: an unknown one is a TypeError that
    names the codec and the parameters it accepts."""
    signature = inspect.signature(init)
    kinds = {p.kind for p in signature.parameters.values()}
    if inspect.Parameter.VAR_KEYWORD in kinds:
        return init  # takes any keyword: it checks them itself
    accepted = tuple(name for name, p in list(signature.parameters.items())[1:]
                     if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))

    @functools.wraps(init)
    def checked_init(self, *args, **params):
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise TypeError(_unknown_parameters_message(getattr(self, "name", None) or type(self).__name__,
                                                        unknown, accepted))
        return init(self, *args, **params)

    return checked_init


@dataclass(frozen=True)
class NoState:
    """The state of a codec that fits nothing (``NO_STATE``, its only instance)."""


#: what ``prepare`` and ``load_shared`` return for a codec with nothing to fit
NO_STATE = NoState()


class Codec:
    """Base class of spherecodec codecs.

    Subclasses set ``name`` (the registry key, stored in every blob) and implement
    ``encode_chunk`` and ``decode_chunk``. Parameters are keyword arguments checked in
    ``__init__``; ``get_config()`` returns them as JSON-able values and
    ``from_config(get_config())`` rebuilds an equal codec. The object holds only that
    configuration: state fitted on data lives in the object ``prepare`` returns.
    """

    name = None
    #: dtypes the codec accepts (numpy dtype names)
    dtypes = ("float32",)
    #: upper bound of decoded bytes per payload byte (``expansion_bound`` may refine it
    #: with the state); the container rejects blobs beyond it
    max_expansion = 64.0
    #: first payload bytes (chunk modes) of chunks that may decode to more than
    #: ``max_expansion`` bytes per byte (the exact codec's constant and sparse chunks);
    #: ``chunk_expansion`` bounds them
    dense_chunk_modes = ()
    #: True when a state fitted on one array codes any other array its ``check_rows``
    #: accepts (``spherecodec.fit`` fits such codecs once for many arrays)
    reusable_state = False

    def __init__(self, **params):
        if params:
            raise TypeError(_unknown_parameters_message(self.name, sorted(params), ()))

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # a user's misspelt parameter is reported with the codec's name and the parameters
        # it takes, not as Python's "SomeCodec.__init__() got an unexpected keyword argument"
        if "__init__" in cls.__dict__:
            cls.__init__ = _with_named_parameter_errors(cls.__dict__["__init__"])

    # -- configuration -------------------------------------------------------------
    def get_config(self):
        """Parameters as a JSON-serialisable dict (no codec name)."""
        return {}

    @classmethod
    def from_config(cls, config):
        """Rebuild the codec from ``get_config()``'s output."""
        try:
            return cls(**config)
        except (TypeError, ValueError) as exc:
            raise UnsupportedError(f"bad parameters for codec {cls.name!r}: {exc}") from None

    def stored_config(self, state):
        """The parameters a blob coded with ``state`` records: ``get_config()`` with what
        fitting settled (pq: the number of subspaces it chose)."""
        return self.get_config()

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((self.name, json.dumps(self.get_config(), sort_keys=True)))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # -- whole-array hooks ---------------------------------------------------------
    def check_dtype(self, dtype):
        """Raise UnsupportedError unless the codec accepts ``dtype``."""
        if np.dtype(dtype).name not in self.dtypes:
            raise UnsupportedError(
                f"codec {self.name!r} does not support dtype {np.dtype(dtype).name}; "
                f"supported: {', '.join(self.dtypes)}")

    def decoded_dtype(self, dtype):
        """dtype that decode returns for an input of ``dtype``."""
        return np.dtype(dtype)

    def transform_rows(self, rows):
        """The 2-D array whose chunks are coded, made once from the whole array (C-contiguous
        native rows); its second dimension is the decoded row length. Default: ``rows``."""
        return rows

    def prepare(self, rows):
        """Fit the per-blob state on ``transform_rows``'s whole output, once, and return it.

        The state is immutable once returned (caches a kernel fills are allowed); a codec
        with nothing to fit returns ``NO_STATE`` (the default).
        """
        return NO_STATE

    def check_rows(self, rows, state):
        """Raise ValueError unless ``rows`` may be coded with ``state`` fitted on other rows
        (``spherecodec.fit``'s reuse). Default: any rows."""

    def shared_bytes(self, state):
        """Bytes stored once per blob for ``state`` (fitted scales, codebooks); ``b""`` if none.

        No side effect: the pipeline asks for it before the chunks are coded (to reserve the
        header) and again after.
        """
        return b""

    def load_shared(self, data, dtype, dim):
        """The state that ``shared_bytes`` wrote; ``data`` is a uint8 array.

        Raises CorruptBlobError (or a subclass) on any inconsistency.
        """
        if data.size:
            raise CorruptBlobError(f"codec {self.name!r} stores no shared section")
        return NO_STATE

    def expansion_bound(self, state):
        """Upper bound of decoded bytes per payload byte in a blob with ``state``."""
        return self.max_expansion

    def chunk_expansion(self, mode, state):
        """Upper bound of decoded bytes per byte of a chunk whose payload starts with ``mode``
        (one of ``dense_chunk_modes``), its index entry counted; the container lets a blob
        announce that much more for each such chunk whose checksum holds."""
        return self.expansion_bound(state)

    # -- per chunk -------------------------------------------------------------------
    def encode_chunk(self, rows, state):
        """Encode a C-contiguous 2-D block of rows with ``state``; return its payload.

        The payload is ``bytes`` or a 1-D C-contiguous uint8 array, and the caller owns it:
        the codec keeps no reference and never writes it again. It may be (a view of) a
        buffer from ``scratch.take_buffer``, which the caller may give back with
        ``scratch.recycle`` once it has copied the bytes (the container does, once the
        payload is in the blob); it is never per-thread ``scratch.scratch`` memory.
        """
        raise NotImplementedError

    def decode_chunk(self, payload, out, state):
        """Decode ``payload`` (uint8 array) into ``out``, a C-contiguous 2-D block, with the
        ``state`` that ``load_shared`` returned.

        Raises CorruptBlobError (or a subclass) on any inconsistency.
        """
        raise NotImplementedError


class SearchableCodec(Codec):
    """A codec whose codes ``spherecodec.search`` scores without decoding them to floats.

    ``search_kind`` names how the codes are scored, and so what the state provides:

    * ``"affine"``: codes ``c`` stand for ``state.offset + state.scale * c`` (float32 arrays
      of ``dim``); ``decode_codes_chunk`` gives uint8 codes ``(n_rows, dim)``.
    * ``"hamming"``: codes are bits packed LSB first, ``(n_rows, ceil(state.dim / 8))``;
      scored against the float query with ``state.lo``/``state.hi`` (asymmetric), or with
      ``hamming=True`` against the queries' bits (``codes(queries, state)``) by Hamming distance.
    * ``"rabitq"``: ``decode_codes_chunk`` gives ``codecs.rabitq.RabitqCodes`` (per-row factors
      and ``(n_rows, dim)`` uint8 codes); ``state`` has the centre and the rotation.
    * ``"pq"``: codes index ``state.codebooks`` (float32 ``(m, ksub, dsub)``), uint8
      ``(n_rows, m)``.
    """

    search_kind = None

    def codes(self, rows, state):
        """Codes of float32 ``rows`` under ``state``, as ``decode_codes_chunk`` returns them."""
        raise NotImplementedError

    def decode_codes_chunk(self, payload, n_rows, state):
        """Codes of a chunk of ``n_rows`` rows, validated, without decoding values.

        Raises CorruptBlobError (or a subclass) on any inconsistency.
        """
        raise NotImplementedError


class DelegatingCodec(Codec):
    """A codec that codes with another codec, ``self.inner``: every hook forwards to it
    (dive adds its reduction, ``spherecodec.fit``'s codec a state fitted once)."""

    inner = None

    def check_dtype(self, dtype):
        self.inner.check_dtype(dtype)

    def decoded_dtype(self, dtype):
        return self.inner.decoded_dtype(dtype)

    def transform_rows(self, rows):
        return self.inner.transform_rows(rows)

    def prepare(self, rows):
        return self.inner.prepare(rows)

    def check_rows(self, rows, state):
        self.inner.check_rows(rows, state)

    def stored_config(self, state):
        return self.inner.stored_config(state)

    def shared_bytes(self, state):
        return self.inner.shared_bytes(state)

    def load_shared(self, data, dtype, dim):
        return self.inner.load_shared(data, dtype, dim)

    def expansion_bound(self, state):
        return self.inner.expansion_bound(state)

    @property
    def dense_chunk_modes(self):
        return self.inner.dense_chunk_modes

    def chunk_expansion(self, mode, state):
        return self.inner.chunk_expansion(mode, state)

    def encode_chunk(self, rows, state):
        return self.inner.encode_chunk(rows, state)

    def decode_chunk(self, payload, out, state):
        self.inner.decode_chunk(payload, out, state)
