"""What a benchmark measures: spherecodec codecs (with parameters) and peers, each as a
``Candidate`` with the same encode/decode interface, or with the reason it cannot run."""

import json
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import decode, encode, get_codec
from ..codecs import available_codecs
from ..codecs.exact_models import MAX_LEVEL as EXACT_MAX_LEVEL
from . import peers
from .data import BenchError

__all__ = ["CODEC_PARAMS", "DEFAULT_VARIANTS", "HALF_DTYPES", "HALF_VARIANTS", "Candidate", "parse_codec_spec", "resolve_codec_spec",
           "default_codec_specs", "codec_label", "codec_candidate", "peer_candidate", "select_peers",
           "missing_dependency"]

#: parameters the benchmark gives a codec when the user names none (codecs whose defaults
#: are fine need no entry)
CODEC_PARAMS = {}
#: extra settings a default run measures beside each registered codec's defaults: the
#: error-bounded codecs at the bound of the zfp peer, to place them on the ratio/error curve
DEFAULT_VARIANTS = {
    "sphere": ["sphere:max_abs_error=1e-4"],
    "grid": ["grid:max_abs_error=1e-4"],
}
#: dtypes a codec spec's ``as=`` casts the vectors to before coding (``exact:as=bfloat16``:
#: what storing them as bfloat16 costs, against the ``zipnn-bf16`` peer)
HALF_DTYPES = ("bfloat16", "float16")
#: the half-precision rows a run with peers adds (beside zipnn-bf16 / zipnn-fp16)
HALF_VARIANTS = [f"exact:as={half}" for half in HALF_DTYPES]


@dataclass
class Candidate:
    """One thing to measure: a spherecodec codec with parameters, or a peer.

    ``encode(arr, threads) -> bytes`` and ``decode(blob, shape, dtype, threads) -> array``;
    both None when ``skip`` says why it cannot run.
    """

    name: str
    #: "spherecodec" or "peer"
    source: str
    encode: Callable | None
    decode: Callable | None
    #: encode takes a thread count
    threaded: bool
    #: decode uses the thread count too (else only encode does)
    threaded_decode: bool
    #: lossless by design (None: a spherecodec codec, judged by its bits alone)
    exact_claimed: bool | None = None
    description: str = ""
    #: the peer adapter (its ``fit`` runs once, untimed, before the first encode)
    peer: peers.Peer | None = None
    skip: str | None = None
    #: ``(codec name, params)`` of a spherecodec codec, for compiling its kernels ahead
    codec_spec: tuple | None = None
    #: ``fit(arr)``: the model fitting a spherecodec codec's every encode does (its
    #: ``prepare``), timed once apart so the table can say when it dominates the encode
    fit: Callable | None = None
    #: that model can be fitted once and reused (``spherecodec.fit``)
    fit_reusable: bool = False


def parse_codec_spec(spec):
    """``"name"`` or ``"name:key=value,key=value"`` -> ``(name, params)``; values are JSON or strings."""
    name, _, rest = spec.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise BenchError(f"bad codec parameter {item!r} in {spec!r}: use key=value")
        try:
            params[key.strip()] = json.loads(value)
        except ValueError:
            params[key.strip()] = value
    return name.strip(), params


def resolve_codec_spec(spec):
    """``(name, params)`` the benchmark runs for ``spec``: its own parameters when it names
    any (``name:...``), else ``CODEC_PARAMS``' defaults for the codec."""
    name, params = parse_codec_spec(spec)
    if ":" not in spec:
        params = dict(CODEC_PARAMS.get(name, {}))
    return name, params


def default_codec_specs():
    """Every registered codec (default parameters), then ``DEFAULT_VARIANTS`` of those present,
    and the exact codec at its highest level."""
    names = available_codecs()
    specs = names + [v for name in names for v in DEFAULT_VARIANTS.get(name, [])]
    if "exact" in names and EXACT_MAX_LEVEL > 1:
        specs.insert(names.index("exact") + 1, f"exact:level={EXACT_MAX_LEVEL}")
    return specs


def codec_label(name, params):
    """Table label of a codec with parameters: ``name`` or ``name(key=value,...)``."""
    if not params:
        return name
    return name + "(" + ",".join(f"{k}={v}" for k, v in params.items()) + ")"


def missing_dependency(exc):
    """The skip reason for an ImportError: an optional dependency is not installed."""
    return f"{exc.name or 'an optional dependency'} not installed ({type(exc).__name__}: {exc})"


def _skipped_codec(label, reason):
    return Candidate(label, "spherecodec", None, None, threaded=True, threaded_decode=True, skip=reason)


def codec_candidate(spec):
    """The candidate of a spherecodec codec spec (``"name"`` or ``"name:key=value,..."``);
    skipped with the reason if the codec is unknown, its parameters are refused or an
    optional dependency of it is missing."""
    name, params = resolve_codec_spec(spec)
    label = codec_label(name, params)
    # "as": code the vectors cast to a half dtype (the bf16/fp16 rows): the error is the cast's
    half = params.pop("as", None)
    if half not in (None,) + HALF_DTYPES:
        return _skipped_codec(label, f"as= must be one of {', '.join(HALF_DTYPES)}, not {half!r}")
    try:
        cls = get_codec(name)
    except ValueError as exc:
        return _skipped_codec(label, str(exc))
    try:
        codec = cls(**params)
    except ImportError as exc:
        return _skipped_codec(label, missing_dependency(exc))
    except (TypeError, ValueError) as exc:
        return _skipped_codec(label, f"cannot run with default parameters ({exc}); "
                                     f"pass them as --codecs {name}:key=value")

    def enc(arr, threads):
        return encode(arr.astype(np.dtype(half)) if half else arr, codec, threads=threads)

    def dec(blob, shape, dtype, threads):
        decoded = decode(blob, threads=threads)
        return decoded.astype(np.float32) if half else decoded

    def fit(arr):
        codec.prepare(codec.transform_rows(np.ascontiguousarray(arr.astype(np.dtype(half)) if half else arr)))

    return Candidate(label, "spherecodec", enc, dec, threaded=True, threaded_decode=True,
                     description=repr(codec), codec_spec=(name, params), fit=fit,
                     fit_reusable=codec.reusable_state)


def peer_candidate(peer):
    """The candidate of a peer adapter; skipped with the reason if its package is missing."""
    common = {"threaded": peer.threaded, "exact_claimed": peer.exact, "description": peer.description}
    if not peer.available():
        return Candidate(peer.name, "peer", None, None, threaded_decode=peer.threaded,
                         skip=peer.unavailable_reason, **common)
    return Candidate(peer.name, "peer",
                     lambda arr, t: peer.encode(arr, threads=t),
                     lambda blob, shape, dtype, t: peer.decode(blob, shape, dtype, threads=t),
                     threaded_decode=peer.threaded and peer.threaded_decode, peer=peer, **common)


def select_peers(wanted):
    """Fresh adapters of the peers to run: ``True`` for all of them, else the listed names
    (``faiss-pq...`` names faiss PQ whatever shape it fits)."""
    known = peers.all_peers()
    if wanted is True:
        return known
    wanted = list(wanted)
    names = {p.name: p for p in known}
    missing = [w for w in wanted if w not in names and not w.startswith("faiss-pq")]
    if missing:
        raise BenchError(f"unknown peers {missing}; known: {', '.join(names)}")
    return [p for p in known if p.name in wanted
            or (isinstance(p, peers.FaissPQ) and any(w.startswith("faiss-pq") for w in wanted))]
