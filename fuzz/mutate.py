"""Fuzz corpus builder and mutation engine for spherecodec blobs.

The corpus holds real blobs of every registered codec (``CODEC_SAMPLES`` says which
parameters and arrays each codec is fuzzed with; a codec missing from it is an error, so a
new codec of the library cannot slip past the fuzzer). ``mutate(corpus, seed, index)`` derives one
mutated blob deterministically from ``(seed, index)``, so any failing case can be
reproduced from those two numbers alone.

Mutations come in two families:

* *raw*: bit flips, byte overwrites, truncations, insertions, deletions, splices. Header
  and chunk checksums are left as they are, so the container must detect them (or the blob must
  decode to the very bits of the original: the "never lies" check).
* *sealed*: structure-aware forgeries (header fields, metadata JSON, shared section, chunk
  index, chunk payloads), after which every checksum is recomputed (most of the time). They get past the checksums
  and exercise the codec decoders and the Numba kernels on hostile bytes.

Used by ``fuzz/run.py`` (subprocess-isolated runner), ``fuzz/atheris_harness.py`` and the
tests (tests/test_fuzz.py, tests/test_bitflip.py).
"""

import json
import random
import struct
from dataclasses import dataclass, field
from pathlib import Path

import ml_dtypes
import numpy as np

import spherecodec
from spherecodec import container, frames, layout

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"

# the format's own layout and checksum (spherecodec.layout), so that sealing follows the format
_FIXED = layout.FIXED
_ENTRY = layout.INDEX_ENTRY
_CHECKSUM = layout.CHECKSUM
_CHECK_MASK = (1 << (8 * _CHECKSUM.size)) - 1


def checksum(data):
    """The format's checksum of ``data``."""
    return layout.checksum(bytes(data))


# --------------------------------------------------------------------------------------
# sample parameters per codec
# --------------------------------------------------------------------------------------
@dataclass
class Sample:
    """One corpus entry: a codec configuration applied to one array.

    ``params`` is passed to ``spherecodec.encode``; ``factory``, when set, is called with
    the array and returns ``(codec, params)`` instead (for codecs needing a fitted object).
    """

    label: str
    params: dict = field(default_factory=dict)
    data: str = "gauss"  # gauss | unit | raw | special | special-nomax | zeros
    shape: tuple = (24, 48)
    dtype: str = "float32"
    chunk_rows: object = 7  # None: the default chunking
    factory: object = None


def _exact_model(level, **params):
    """Factory: an exact codec of ``level`` whose model was fitted on 32,768 rows (a small
    array alone gets none), so that the blob's shared section holds a model."""

    def factory(arr):
        from spherecodec.codecs.exact import ExactCodec, ExactState
        from spherecodec.codecs.exact_models import Model

        train = np.tile(make_array("unit", (512, arr.shape[-1])), (64, 1))
        model = Model.fit(train, level)
        if model is None:
            raise AssertionError(f"no level-{level} model fitted for the fuzz corpus")
        state = ExactState(model)

        class Prefitted(ExactCodec):  # writes ordinary "exact" blobs with the model above
            def prepare(self, rows):
                return state

        return Prefitted(level=level, **params), {}

    return factory


def _exact_format_1_model():
    """Factory: an exact codec of level 5 whose state is the model of a blob written with
    model format 1 (float32 predictions: ``tests/data/golden-exact-levels``), which
    decoders still read, so that the fuzzer reaches its parser and its decoder too. Its
    sample is that blob's own array ("golden-format-1"), whose symbols its tables hold."""

    def factory(arr):
        from spherecodec.codecs.exact import ExactCodec, ExactState
        from spherecodec.codecs.exact_models import Model

        blob = (DATA / "golden-exact-levels" / "model-format-1" / "level5.sphc").read_bytes()
        state = ExactState(Model.from_bytes(np.frombuffer(split(blob).shared, np.uint8), 5, arr.shape[-1]))

        class Prefitted(ExactCodec):
            def prepare(self, rows):
                return state

        return Prefitted(level=5), {}

    return factory


def _exact():
    return [
        Sample("f32", {}, "raw", (24, 48), chunk_rows=7),
        Sample("f32-unit-real", {}, "unit", (40, 384), chunk_rows=16),
        Sample("f32-constriction", {"entropy": "constriction"}, "gauss", (20, 40), chunk_rows=6),
        Sample("f32-m0-special", {"mantissa_bits": 0}, "special", (9, 33), chunk_rows=4),
        Sample("f32-m6-zeros", {"mantissa_bits": 6}, "zeros", (5, 16), chunk_rows=2),
        Sample("f16", {}, "gauss", (16, 24), "float16", chunk_rows=5),
        Sample("f64-1d", {"entropy": "constriction"}, "gauss", (50,), "float64", chunk_rows=1),
        Sample("f32-3d", {}, "gauss", (3, 4, 10), chunk_rows=5),
        Sample("f32-empty", {}, "gauss", (0, 8), chunk_rows=3),
        # default chunking: container's one-call small-blob path (8 lanes; 32 lanes from 2**13)
        Sample("f32-small-one-call", {}, "unit", (6, 384), chunk_rows=None),
        Sample("f32-small-wide-one-call", {}, "unit", (23, 360), chunk_rows=None),
        # levels >= 2 fit a model only on large arrays: these blobs carry one fitted on more rows
        Sample("level2-model", data="unit", shape=(40, 32), chunk_rows=13, factory=_exact_model(2)),
        Sample("level3-model", data="raw", shape=(30, 32), chunk_rows=9, factory=_exact_model(3)),
        Sample("level4-model-constriction", data="unit", shape=(24, 32), chunk_rows=7,
               factory=_exact_model(4, entropy="constriction")),
        Sample("level3-small", {"level": 3}, "unit", (20, 40), chunk_rows=7),
        Sample("level5-model-format-1", data="golden-format-1", shape=(60, 8), chunk_rows=23,
               factory=_exact_format_1_model()),
        # shapes where the spherical transform wins (mode 3 chunks) on most chunks
        Sample("spherical", {"transform": "spherical"}, "unit", (120, 16), chunk_rows=40),
        Sample("auto-zeros", {"transform": "auto"}, "zeros", (24, 48), chunk_rows=8),
        Sample("auto-level3-special", {"transform": "auto", "level": 3}, "special", (20, 32), chunk_rows=6),
        # chunk modes 4 (zero low bits), 5 (sparse) and 6 (constant), and bfloat16 values
        Sample("shapes", {}, "shapes", (40, 48), chunk_rows=8),
        Sample("shapes-constriction", {"entropy": "constriction"}, "shapes", (20, 24), chunk_rows=4),
        Sample("bf16", {}, "gauss", (16, 24), "bfloat16", chunk_rows=5),
        Sample("bf16-shapes", {}, "shapes", (20, 32), "bfloat16", chunk_rows=4),
        # the wide rANS layouts: 32 lanes (2**14 values or more), 64 lanes (2**16 or more)
        Sample("f32-32-lanes", {}, "unit", (44, 384), chunk_rows=44),
        Sample("bf16-64-lanes", {}, "unit", (172, 384), "bfloat16", chunk_rows=171),
    ]


def _half():
    return [
        Sample("raw", {}, "raw", (24, 48), chunk_rows=7),
        Sample("entropy-unit", {"entropy": True}, "unit", (30, 96), chunk_rows=11),
        Sample("entropy-special", {"entropy": True}, "special-nomax", (6, 20), chunk_rows=4),
    ]


def _affine():
    return [
        Sample("default", {}, "raw", (24, 48), chunk_rows=7),
        Sample("symmetric-entropy", {"symmetric": True, "entropy": True}, "unit", (30, 96), chunk_rows=11),
        Sample("clip-entropy", {"clip": 99.0, "entropy": True}, "gauss", (17, 15), chunk_rows=5),
        Sample("1d", {}, "gauss", (33,), chunk_rows=1),
    ]


def _binary():
    return [
        Sample("default", {}, "unit", (24, 48), chunk_rows=7),
        Sample("sign-entropy", {"center": False, "entropy": True}, "raw", (30, 100), chunk_rows=11),
        Sample("odd-dim", {}, "gauss", (9, 13), chunk_rows=4),
    ]


def _pq():
    return [
        Sample("m8-nbits4", {"m": 8, "nbits": 4, "niter": 4}, "unit", (40, 48), chunk_rows=13),
        Sample("m3-nbits3-entropy", {"m": 3, "nbits": 3, "niter": 3, "entropy": True}, "raw", (24, 12),
               chunk_rows=5),
        Sample("m4-nbits8-entropy", {"m": 4, "nbits": 8, "niter": 2, "entropy": True}, "gauss", (260, 16),
               chunk_rows=100),
        Sample("m1-nbits1", {"m": 1, "nbits": 1, "niter": 2}, "gauss", (10, 5), chunk_rows=3),
    ]


def _rabitq():
    return [
        Sample("bits1", {"bits": 1}, "unit", (24, 48), chunk_rows=7),
        Sample("bits3-entropy", {"bits": 3, "entropy": True, "seed": 5}, "raw", (30, 100), chunk_rows=11),
        Sample("bits8-odd-dim", {"bits": 8}, "gauss", (9, 13), chunk_rows=4),
        Sample("bits2-1d", {"bits": 2}, "gauss", (33,), chunk_rows=1),
    ]


def _bounded():
    return [
        Sample("default", {}, "unit", (24, 48), chunk_rows=7),
        Sample("coarse-raw", {"max_abs_error": 1e-3}, "raw", (30, 64), chunk_rows=11),
        Sample("special", {"max_abs_error": 1e-4}, "special", (9, 16), chunk_rows=4),
        Sample("one-column", {"max_abs_error": 0.01}, "gauss", (20, 1), chunk_rows=6),
        Sample("two-columns-real", {"max_abs_error": 2e-5}, "unit", (40, 2), chunk_rows=40),
    ]


def _dive_factory(then, then_config=None, dim_out=16):
    """Factory: codec "dive" with a small untrained (seeded, random-init) DiveAdapter."""

    def factory(arr):
        from spherecodec.dive import DiveAdapter

        adapter = DiveAdapter(arr.shape[-1], dim_out, heads=2, hidden=32, init="random", seed=0)
        return "dive", {"adapter": adapter, "then": then, "then_config": then_config or {}}

    return factory


def _dive():
    return [
        Sample("exact", data="unit", shape=(24, 48), chunk_rows=7, factory=_dive_factory("exact")),
        Sample("int8-entropy", data="raw", shape=(30, 64), chunk_rows=11,
               factory=_dive_factory("int8", {"entropy": True}, dim_out=24)),
        Sample("grid", data="unit", shape=(20, 32), chunk_rows=6,
               factory=_dive_factory("grid", {"max_abs_error": 1e-3}, dim_out=8)),
        Sample("pq", data="unit", shape=(40, 48), chunk_rows=13,
               factory=_dive_factory("pq", {"m": 4, "nbits": 3, "niter": 3})),
    ]


#: codec name -> function returning its samples. Every registered codec needs an entry.
CODEC_SAMPLES = {
    "exact": _exact,
    "fp16": _half,
    "bf16": _half,
    "int8": _affine,
    "int4": _affine,
    "binary": _binary,
    "pq": _pq,
    "rabitq": _rabitq,
    "grid": _bounded,
    "sphere": _bounded,
    "dive": _dive,
}


def shipped_codecs():
    """Names of the registered codecs that the library itself defines (a codec a caller or a
    test registers from its own module is not the library's to fuzz)."""
    return [name for name in spherecodec.available_codecs()
            if spherecodec.get_codec(name).__module__.startswith("spherecodec.")]


class MissingSamplesError(AssertionError):
    """A registered codec has no entry in CODEC_SAMPLES."""


def check_table(codecs=None):
    """Raise MissingSamplesError naming every shipped codec absent from the table."""
    codecs = shipped_codecs() if codecs is None else codecs
    missing = [c for c in codecs if c not in CODEC_SAMPLES]
    if missing:
        raise MissingSamplesError(
            f"codec(s) {missing} are registered but have no fuzz samples: add an entry to "
            f"CODEC_SAMPLES in fuzz/mutate.py so that they are fuzzed, bit-flipped and "
            f"checked for determinism")


# --------------------------------------------------------------------------------------
# sample arrays
# --------------------------------------------------------------------------------------
_CACHE = {}


def _load(name):
    if name not in _CACHE:
        _CACHE[name] = np.load(DATA / name)
    return _CACHE[name]


def make_array(kind, shape, dtype="float32", seed=0):
    """A deterministic sample array of ``shape`` (rows over the last axis)."""
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    n = int(np.prod(shape)) if shape else 1
    dim = shape[-1] if shape else 1
    rows = n // dim if dim else 0
    if kind == "zeros":
        return np.zeros(shape, dtype=dtype)
    if kind == "golden-format-1":  # rows of the golden model-format-1 blobs' array
        src = _load("golden-exact-levels/model-format-1/level5.npy")
        return src[np.arange(rows) % src.shape[0], :dim].astype(dtype).reshape(shape)
    if kind == "shapes":
        return _shapes_array(shape, dtype, seed)
    if kind in ("unit", "raw") and dim <= 384:
        src = _load("minilm-sentences-512.npy" if kind == "unit" else "minilm-tokens-raw-256.npy")
        take = src[np.arange(rows) % src.shape[0], :dim].astype(np.float64)
        if kind == "unit":
            norms = np.linalg.norm(take, axis=1, keepdims=True)
            take = take / np.where(norms > 0, norms, 1)
        return take.astype(dtype).reshape(shape)
    x = rng.standard_normal(n).astype(dtype)
    if kind == "unit":
        x = x.reshape(rows, dim)
        x = (x / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)).astype(dtype)
    if kind in ("special", "special-nomax"):
        # "special-nomax" leaves out float32's largest values, which fp16 refuses to code
        flat = x.reshape(-1)
        big = np.finfo(dtype).max if kind == "special" else 1e4
        specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, np.finfo(dtype).tiny / 4,
                             big, -np.finfo(dtype).tiny], dtype=dtype)
        flat[rng.integers(0, n, size=min(n, 3 * specials.size))] = np.resize(specials, min(n, 3 * specials.size))
        # a NaN with a payload: bit-exact codecs must keep it
        u = flat.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[flat.itemsize])
        u[0] = {2: 0x7E01, 4: 0x7FC00123, 8: 0x7FF8000000000123}[flat.itemsize]
    return x.reshape(shape)


def _shapes_array(shape, dtype, seed):
    """Five row blocks, one per chunk mode of the exact codec's shapes: values that were
    bfloat16 (mode 4), sparse rows with specials (mode 5), float16 values among zeros (mode 5
    over mode 4), one repeated value (mode 6) and every other row zero."""
    x = make_array("unit", shape, "float32", seed).reshape(-1, shape[-1])
    blocks = np.array_split(np.arange(x.shape[0]), 5)
    x[blocks[0]] = x[blocks[0]].astype(ml_dtypes.bfloat16).astype(np.float32)
    part = x[blocks[1]]
    part[np.arange(part.size).reshape(part.shape) % 4 != 0] = 0.0
    part.reshape(-1)[:4] = [np.nan, -0.0, np.inf, 1e-45]
    x[blocks[1]] = part
    part = x[blocks[2]].astype(np.float16).astype(np.float32)
    part[np.arange(part.size).reshape(part.shape) % 3 == 0] = 0.0
    x[blocks[2]] = part
    x[blocks[3]] = -0.0
    x[blocks[4][1::2]] = 0.0
    return x.astype(dtype).reshape(shape)


@dataclass
class Entry:
    """A corpus blob with what made it and the reference decode."""

    codec: str
    label: str
    blob: bytes
    array: np.ndarray  # the array that was encoded
    reference: np.ndarray = None  # decode(blob): what every raw mutation must decode to
    dictionary: bytes = None  # frames (codec FRAME): the dictionary's bytes they need


#: the corpus's pseudo codec name of frames (spherecodec.frames): coded with a dictionary
FRAME = "frame"


def _frame_samples():
    """(label, dictionary codec, sample data, training rows, frame shape) of the frame corpus."""
    return [
        ("exact-vector", "exact", "unit", 64, (48,)),
        ("exact-special", "exact", "special", 64, (33,)),
        ("exact-block", "exact", "raw", 32, (3, 20)),
        ("exact-noise-stored", "exact", "noise", 16, (24,)),
        ("int8-vector", "int8", "unit", 64, (48,)),
        ("pq-vector", "pq", "unit", 64, (48,)),
        # issue 22's shapes in exact frames: a constant vector, low bits all zero
        ("exact-zeros-constant", "exact", "zeros", 16, (40,)),
        ("exact-bf16-shifted", "exact", "bf16", 64, (48,)),
        ("exact-fp16-shifted", "exact", "fp16", 64, (2, 24)),
        ("rabitq-1bit-row", "rabitq", "unit", 64, (48,)),
        ("rabitq-3bit-row", "rabitq", "unit", 64, (40,)),
        ("rabitq-block", "rabitq", "unit", 64, (3, 32)),
        ("exact-bfloat16", "exact", "bfloat16", 64, (48,)),
    ]


def _frame_entries():
    entries = []
    for i, (label, codec, data, n_train, shape) in enumerate(_frame_samples()):
        dim = shape[-1]
        train = make_array("unit", (n_train, dim), seed=100 + i)
        params = {"m": 4, "nbits": 4, "niter": 2} if codec == "pq" else {}
        if codec == "rabitq":
            params = {"bits": 3 if "3bit" in label else 1, "seed": i}
        d = spherecodec.train_dictionary(train, codec, **params)
        if data == "zeros":
            arr = np.zeros(shape, dtype=np.float32)
        elif data == "bfloat16":  # a bfloat16 frame (decoded as bfloat16), specials included
            arr = make_array("special", shape, seed=200 + i).astype(ml_dtypes.bfloat16)
        elif data in ("bf16", "fp16"):
            arr = make_array("unit", shape, seed=200 + i)
            if data == "bf16":
                arr = (arr.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
            else:
                arr = arr.astype(np.float16).astype(np.float32)
        elif data == "noise":
            arr = np.random.default_rng(i).integers(0, 2**32, int(np.prod(shape)), dtype=np.uint32)
            arr = arr.view(np.float32).reshape(shape)
        else:
            arr = make_array(data, shape, seed=200 + i)
            if codec != "exact":
                arr = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=-1.0)
        entries.append(Entry(FRAME, label, spherecodec.encode(arr, dictionary=d), arr, dictionary=d.to_bytes()))
    return entries


_DICTIONARIES = {}


def dictionary_of(entry):
    """The ``spherecodec.Dictionary`` a frame entry needs (loaded once per process)."""
    if entry.dictionary not in _DICTIONARIES:
        _DICTIONARIES[entry.dictionary] = spherecodec.Dictionary.from_bytes(entry.dictionary)
    return _DICTIONARIES[entry.dictionary]


def reference(entry):
    """What the unmutated blob or frame of ``entry`` decodes to."""
    if entry.dictionary is not None:
        return spherecodec.decode(entry.blob, dictionary=dictionary_of(entry))
    return spherecodec.decode(entry.blob, threads=1)


def seal_frame(frame, entry):
    """``frame`` with its check recomputed for the entry's dictionary (frames of 4+ bytes)."""
    if len(frame) < 4:
        return frame
    d = dictionary_of(entry)
    h = (checksum(frame[:-4]) ^ d.check_key) & 0xFFFFFFFF
    return bytes(frame[:-4]) + h.to_bytes(4, "little")


def build_corpus(codecs=None, *, decode_reference=True):
    """Blobs of every codec's samples (``codecs``: names, default every registered one)."""
    codecs = shipped_codecs() + [FRAME] if codecs is None else list(codecs)
    check_table([c for c in codecs if c != FRAME])
    corpus = []
    for name in codecs:
        if name == FRAME:
            for entry in _frame_entries():
                if decode_reference:
                    entry.reference = reference(entry)
                corpus.append(entry)
            continue
        for i, s in enumerate(CODEC_SAMPLES[name]()):
            arr = make_array(s.data, s.shape, s.dtype, seed=i)
            if s.factory is not None:
                codec, params = s.factory(arr)
            else:
                codec, params = name, dict(s.params)
            blob = spherecodec.encode(arr, codec, threads=1, chunk_rows=s.chunk_rows, **params)
            entry = Entry(name, s.label, blob, arr)
            if decode_reference:
                entry.reference = spherecodec.decode(blob, threads=1)
            corpus.append(entry)
    return corpus


# --------------------------------------------------------------------------------------
# lenient blob structure
# --------------------------------------------------------------------------------------
@dataclass
class Parts:
    """A blob cut into its container sections, rebuilt by ``build``.

    ``None`` in an override field means: write the value matching the content.
    """

    magic: bytes
    version: int
    flags: int
    reserved: int
    meta: bytes
    shared: bytes
    payloads: list
    crcs: list
    meta_len: int = None
    n_chunks: int = None
    shared_len: int = None
    lengths: list = None  # forged index lengths

    def build(self, seal=True):
        """Blob bytes; ``seal`` recomputes the chunk and header checksums."""
        n = len(self.payloads) if self.n_chunks is None else self.n_chunks
        fixed = _FIXED.pack(self.magic, self.version & 0xFFFF, self.flags & 0xFFFF,
                            (len(self.meta) if self.meta_len is None else self.meta_len) & 0xFFFFFFFF,
                            self.reserved & 0xFFFFFFFF, n & (2**64 - 1),
                            (len(self.shared) if self.shared_len is None else self.shared_len) & (2**64 - 1))
        head = bytearray(fixed) + bytes(self.meta) + bytes(self.shared)
        for i, p in enumerate(self.payloads):
            length = len(p) if self.lengths is None or i >= len(self.lengths) else self.lengths[i]
            crc = checksum(p) if seal or i >= len(self.crcs) else self.crcs[i]
            head += _ENTRY.pack(length & (2**64 - 1), crc & _CHECK_MASK)
        head += _CHECKSUM.pack(checksum(head) if seal else self.header_crc)
        return bytes(head) + b"".join(self.payloads)

    header_crc: int = 0


def split(blob):
    """Cut a blob into ``Parts``; None when its framing does not hold together."""
    if len(blob) < _FIXED.size:
        return None
    magic, version, flags, meta_len, reserved, n_chunks, shared_len = _FIXED.unpack_from(blob, 0)
    index_start = _FIXED.size + meta_len + shared_len
    if index_start + _ENTRY.size * n_chunks + _CHECKSUM.size > len(blob):
        return None
    meta = blob[_FIXED.size:_FIXED.size + meta_len]
    shared = blob[_FIXED.size + meta_len:index_start]
    pos = index_start
    entries = [_ENTRY.unpack_from(blob, pos + _ENTRY.size * i) for i in range(n_chunks)]
    pos += _ENTRY.size * n_chunks
    (hcrc,) = _CHECKSUM.unpack_from(blob, pos)
    pos += _CHECKSUM.size
    payloads = []
    for length, _ in entries:
        if pos + length > len(blob):
            return None
        payloads.append(blob[pos:pos + length])
        pos += length
    return Parts(magic, version, flags, reserved, meta, shared, payloads, [c for _, c in entries],
                 header_crc=hcrc)


def seal(blob):
    """Recompute every checksum of a blob whose framing holds; else return it unchanged."""
    parts = split(blob)
    return blob if parts is None else parts.build(seal=True)


# --------------------------------------------------------------------------------------
# mutations
# --------------------------------------------------------------------------------------
INTERESTING_INTS = [0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 127, 128, 255, 256, 384,
                    1023, 1024, 4095, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 1,
                    2**40, 2**53, 2**62 - 1, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -1, -2,
                    -(2**31), -(2**63)]
INTERESTING_VALUES = INTERESTING_INTS + [None, True, False, 0.5, 1.0, -0.0, 1e308, float("inf"),
                                         float("nan"), "", "x", "numba", "constriction", "float32",
                                         [], [1], [2**62, 2**62], {}, {"a": 1}, "\u0000"]
INTERESTING_BYTES = [0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF, 0x10, 0x0F]


def _flip_bits(b, rng, k):
    b = bytearray(b)
    if not b:
        return bytes(b)
    for _ in range(k):
        bit = rng.randrange(len(b) * 8)
        b[bit >> 3] ^= 1 << (bit & 7)
    return bytes(b)


_WORDS = [struct.pack("<d", v) for v in (0.0, -0.0, 1.0, -1.0, 1e-300, 1e300, float("inf"), float("-inf"),
                                          float("nan"), 5e-324, 2.0**-23)]
_WORDS += [struct.pack("<f", v) for v in (0.0, -1.0, 1e-45, 3e38, float("inf"), float("nan"))]
_WORDS += [struct.pack("<Q", v) for v in (2**63, 2**64 - 1, 2**32, 2**31)]
_WORDS += [struct.pack("<I", v) for v in (2**31, 2**32 - 1, 65536, 65535)]
_WORDS += [struct.pack("<H", v) for v in (0x8000, 0xFFFF, 0x7C00)]


def _position(n, rng):
    # codec chunk heads (modes, steps, table sizes) sit at the start: favour it
    return min(rng.randrange(n), rng.randrange(n)) if rng.random() < 0.5 else rng.randrange(n)


def _mutate_bytes(b, rng, others=()):
    """One generic byte-level mutation of ``b``."""
    b = bytearray(b)
    n = len(b)
    op = rng.randrange(13)
    if op == 11 and n:
        # an interesting integer or float, little endian, at a (head-biased) position
        word = rng.choice(_WORDS)
        at = _position(n, rng)
        b[at:at + len(word)] = word
        return bytes(b)
    if op == 0 or n == 0 and op < 6:
        return _flip_bits(bytes(b), rng, rng.choice([1, 1, 1, 2, 3, 8, 32]))
    if op == 1:
        for _ in range(rng.choice([1, 1, 2, 4])):
            b[_position(n, rng)] = rng.choice(INTERESTING_BYTES)
    elif op == 2:
        cut = rng.randrange(n + 1)
        del b[cut:]
    elif op == 3:
        at = rng.randrange(n + 1)
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.choice([1, 2, 4, 8, 64])))
    elif op == 4:
        at = rng.randrange(n)
        del b[at:at + rng.choice([1, 2, 4, 8, 64])]
    elif op == 5:
        at = rng.randrange(n)
        length = min(n - at, rng.choice([2, 4, 8, 32]))
        b[at:at + length] = bytes(rng.randrange(256) for _ in range(length))
    elif op == 6:
        b = bytearray(rng.randrange(256) for _ in range(rng.choice([0, 1, 2, 5, 16, 100, n])))
    elif op == 7 and n:
        at = rng.randrange(n)
        length = min(n - at, rng.choice([1, 4, 16, 256]))
        chunk = b[at:at + length]
        to = rng.randrange(n + 1)
        b[to:to] = chunk
    elif op == 8:
        b += bytes(rng.randrange(256) for _ in range(rng.choice([1, 3, 17])))
    elif op == 9 and others:
        other = rng.choice(others)
        cut = rng.randrange(n + 1)
        cut2 = rng.randrange(len(other) + 1)
        b = b[:cut] + bytearray(other[cut2:])
    elif op == 10 and n:
        # varints and lengths: a run of continuation bytes or a saturated field
        at = rng.randrange(n)
        length = min(n - at, rng.choice([2, 5, 9, 11]))
        b[at:at + length] = bytes([rng.choice([0xFF, 0x80])] * length)
    else:
        at = rng.randrange(n) if n else 0
        if n:
            b[at] = (b[at] + rng.choice([1, -1, 2, -2, 128])) & 0xFF
    return bytes(b)


def _forge_meta(meta, rng, corpus):
    """Forge the metadata JSON (a dict when it parses)."""
    try:
        d = json.loads(meta)
    except (ValueError, RecursionError):
        return _mutate_bytes(meta, rng)
    if not isinstance(d, dict):
        return _mutate_bytes(meta, rng)
    op = rng.randrange(14)
    keys = ["codec", "params", "dtype", "shape", "rows", "dim", "chunk_rows"]
    if op == 0:
        d[rng.choice(keys)] = rng.choice(INTERESTING_VALUES)
    elif op == 1:
        d.pop(rng.choice(keys), None)
    elif op == 2 and isinstance(d.get("params"), dict):
        params = d["params"]
        if params and rng.random() < 0.8:
            params[rng.choice(sorted(params))] = rng.choice(INTERESTING_VALUES)
        else:
            params[rng.choice(["bogus", "threads", "chunk_rows", "level"])] = rng.choice(INTERESTING_VALUES)
    elif op == 3:
        # the params of another blob of another (or the same) codec
        other = rng.choice(corpus)
        try:
            om = json.loads(split(other.blob).meta)
            d["params"] = om["params"]
            if rng.random() < 0.5:
                d["codec"] = om["codec"]
        except (ValueError, AttributeError, KeyError, RecursionError):
            pass
    elif op == 4:
        d["codec"] = rng.choice(spherecodec.available_codecs() + ["", "EXACT", "nope", 1])
    elif op == 5:
        d["dtype"] = rng.choice(["float16", "float32", "float64", "int8", "uint8", "bfloat16",
                                 "float128", "object", "<f4", None, 4])
    elif op in (6, 7):
        # consistent shape forgery: the container's own checks hold, the codec sees rows/dims
        # it did not write
        rows = d.get("rows", 1) if isinstance(d.get("rows"), int) else 1
        dim = d.get("dim", 1) if isinstance(d.get("dim"), int) else 1
        new_rows = rng.choice([0, 1, 2, max(rows - 1, 0), rows + 1, rows * 2, 2**31, 2**40, rows])
        new_dim = rng.choice([dim, 0, 1, 2, max(dim - 1, 0), dim + 1, dim * 2, dim // 2, 2**31, 2**40, 2**61])
        d["rows"], d["dim"], d["shape"] = new_rows, new_dim, [new_rows, new_dim]
        if rng.random() < 0.5:
            d["chunk_rows"] = rng.choice([1, 2, 3, max(1, new_rows), 2**31, 2**61])
    elif op == 8:
        cr = d.get("chunk_rows")
        d["chunk_rows"] = rng.choice([1, 2, 2**31, 2**40, 2**61, 2**62 - 1,
                                      (cr + 1) if isinstance(cr, int) else 3,
                                      (cr - 1) if isinstance(cr, int) else 0])
    elif op == 9:
        shape = d.get("shape") if isinstance(d.get("shape"), list) else []
        forms = [[], [0], [1] * 33, [2**62 - 1, 2**62 - 1], [-1] + shape[1:], shape[::-1],
                 [1] + shape, shape[:-1], [float(v) if isinstance(v, int) else v for v in shape],
                 [[v] for v in shape], "shape"]
        d["shape"] = rng.choice(forms)
    elif op == 10:
        d[rng.choice(["extra", "Codec", "version"])] = rng.choice(INTERESTING_VALUES)
    elif op == 11:
        return rng.choice([b"[]", b"1", b'"x"', b"null", b"{", b"", b"\xff\xfe", b"[" * 100000,
                           b'{"a":' * 5000 + b"1" + b"}" * 5000, b"9" * 5000, b'{"rows": 1e999}'])
    elif op == 12:
        return _mutate_bytes(meta, rng)
    else:
        d = [d] if rng.random() < 0.5 else d
    return json.dumps(d, sort_keys=rng.random() < 0.5).encode()


def mutate_entry(corpus, entry, rng):
    """One mutation of ``entry.blob``; returns (blob, kind, sealed)."""
    blob = entry.blob
    others = [e.blob for e in corpus]
    if entry.dictionary is not None:
        # frames: raw damage (the check must catch it), or damage behind a resealed check
        out = _mutate_bytes(blob, rng, others)
        if rng.random() < 0.5:
            return seal_frame(out, entry), "frame-sealed", True
        return out, "frame-raw", False
    parts = split(blob)
    if parts is None or rng.random() < 0.3:
        kind = "raw"
        out = _mutate_bytes(blob, rng, others)
        if rng.random() < 0.3:
            out = _mutate_bytes(out, rng, others)
        return out, kind, False
    kind = rng.choice(["fixed", "meta", "meta", "shared", "index", "payload", "payload", "payload",
                       "payload-swap", "chunks", "multi"])
    steps = [kind] if kind != "multi" else [rng.choice(["fixed", "meta", "shared", "index", "payload",
                                                        "payload-swap", "chunks"]) for _ in range(3)]
    for step in steps:
        if step == "fixed":
            fieldname = rng.choice(["version", "flags", "reserved", "meta_len", "n_chunks", "shared_len",
                                    "magic"])
            if fieldname == "magic":
                parts.magic = rng.choice([b"SPHD", b"\0\0\0\0", b"sphc"])
            elif fieldname in ("meta_len", "n_chunks", "shared_len"):
                cur = {"meta_len": len(parts.meta), "n_chunks": len(parts.payloads),
                       "shared_len": len(parts.shared)}[fieldname]
                setattr(parts, fieldname, rng.choice([cur + 1, cur - 1, cur + 12, 0, 2**20, 2**32 - 1,
                                                      2**31, 2**63, 2**64 - 1, cur * 2]) & (2**64 - 1))
            else:
                setattr(parts, fieldname, rng.choice([1, 2, 0xFFFF, 0x8000, 0]))
        elif step == "meta":
            parts.meta = _forge_meta(parts.meta, rng, corpus)
        elif step == "shared":
            op = rng.randrange(4)
            if op == 0 or not parts.shared:
                same = [e for e in corpus if e.codec == entry.codec] or corpus
                src = split(rng.choice(same).blob)
                parts.shared = src.shared if src else b""
                if rng.random() < 0.5:
                    parts.shared = _mutate_bytes(parts.shared, rng)
            elif op == 1:
                parts.shared = b""
            else:
                parts.shared = _mutate_bytes(parts.shared, rng)
        elif step == "index":
            parts.lengths = [len(p) for p in parts.payloads]
            if len(parts.lengths) >= 2 and rng.random() < 0.6:
                # move a boundary: total length and CRC sealing stay consistent
                i = rng.randrange(len(parts.lengths) - 1)
                d = rng.choice([1, -1, 2, -2, 4, -4])
                a, b = parts.lengths[i] + d, parts.lengths[i + 1] - d
                if a >= 0 and b >= 0:
                    joined = b"".join(parts.payloads[i:i + 2])
                    parts.payloads[i:i + 2] = [joined[:a], joined[a:]]
                parts.lengths = None
            elif parts.lengths:
                i = rng.randrange(len(parts.lengths))
                parts.lengths[i] = rng.choice([0, 2**63, 2**64 - 1, parts.lengths[i] + 1,
                                               max(parts.lengths[i] - 1, 0), 2**32])
        elif step in ("payload", "payload-swap") and parts.payloads:
            i = rng.randrange(len(parts.payloads))
            if step == "payload":
                parts.payloads[i] = _mutate_bytes(parts.payloads[i], rng)
            else:
                donor = split(rng.choice(corpus).blob)
                if donor and donor.payloads:
                    parts.payloads[i] = rng.choice(donor.payloads)
        elif step == "chunks":
            # drop, duplicate or reorder whole chunks
            p = parts.payloads
            if p:
                op = rng.randrange(3)
                if op == 0:
                    del p[rng.randrange(len(p))]
                elif op == 1:
                    p.insert(rng.randrange(len(p) + 1), rng.choice(p))
                else:
                    rng.shuffle(p)
    sealed = rng.random() < 0.9
    if not sealed:
        parts.header_crc = split(blob).header_crc
    return parts.build(seal=sealed), kind, sealed


def mutate(corpus, seed, index):
    """The mutated case number ``index`` of run ``seed``: (entry, blob, kind, sealed)."""
    rng = random.Random(f"{seed}:{index}")
    entry = corpus[rng.randrange(len(corpus))]
    blob, kind, sealed = mutate_entry(corpus, entry, rng)
    return entry, blob, kind, sealed, rng


# --------------------------------------------------------------------------------------
# the oracle
# --------------------------------------------------------------------------------------
class UnexpectedError(AssertionError):
    """The decoder did something other than decoding or raising SpherecodecError."""


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint8).tobytes() if a.size else b""


def max_expansion(blob):
    """Decoded bytes per blob byte that the blob's header may announce (the codec's
    max_expansion, which may depend on its parameters and shared state, plus what its dense
    chunks add: ``container.Header.budget``); None when the header does not parse."""
    try:
        header = container.Header(blob)
        # the container's budget: max_expansion per byte, plus what dense chunks add
        return float(header.budget - layout.ALLOCATION_SLACK) / len(blob)
    except spherecodec.SpherecodecError:
        return None


#: decoder tables whose size does not follow the blob's: the rANS slot and symbol tables of
#: the streams in flight (2**15 slots x 6 B, alphabet-sized arrays: about 1 MiB each) and the
#: exact codec's level >= 2 context tables (at most 64 contexts of 2**13 slots plus 64 x 4096
#: counts: about 5 MiB)
FIXED_TABLES = 16 << 20
#: per-chunk temporaries allowed, in multiples of the chunk's decoded bytes (grid and
#: sphere hold int64 codes, 2x a float32 output, and a transposed copy, 1x)
TEMP_FACTOR = 4


def allocation_bound(blob_size, expansion):
    """Bytes a decode of a ``blob_size``-byte blob may hold at once (measured by tracemalloc).

    With ``budget = max_expansion * size + ALLOCATION_SLACK`` (the most decoded bytes the
    container accepts; ``expansion`` None, a header that does not parse, counts 0): the
    result and, for decode_rows, one scratch chunk (``2 * budget``), per-chunk temporaries
    (``TEMP_FACTOR * budget``), copies of the blob's sections (``2 * size``) and the fixed
    decoder tables (``FIXED_TABLES``).
    """
    budget = (expansion or 0.0) * blob_size + layout.ALLOCATION_SLACK
    return int((2 + TEMP_FACTOR) * budget + 2 * blob_size + FIXED_TABLES)


def check_case(entry, blob, sealed, rng, *, threads=1, measure=None):
    """Run info, decode and decode_rows on ``blob``; raise UnexpectedError on misbehaviour.

    Misbehaviour: an exception other than SpherecodecError; an allocation beyond
    ``allocation_bound`` (when ``measure`` is given); decode, decode_rows and info that
    disagree on dtype, shape or bits; and, for unsealed (checksummed) damage, a decode to
    bits other than the original's. Returns the outcomes joined by "/" ("ok" or the error
    class name per call). ``measure``: a callable(fn) -> (result_or_exception, peak_bytes).
    """
    if entry.dictionary is not None:
        return check_frame_case(entry, blob, sealed, measure=measure)
    outcome = []
    SE = spherecodec.SpherecodecError
    # what a successful decode must give: unsealed damage must decode to the original bits
    must_equal = entry.reference if (not sealed or blob == entry.blob) else None

    def call(fn):
        if measure is None:
            try:
                return fn(), None
            except Exception as exc:  # noqa: BLE001 - classified by judge
                return exc, None
        return measure(fn)

    def judge(what, res, peak, expansion):
        if isinstance(res, BaseException):
            if not isinstance(res, SE):
                raise UnexpectedError(f"{what} raised {type(res).__name__}: {res}") from res
            outcome.append(type(res).__name__)
            return None
        if peak is not None:
            bound = allocation_bound(len(blob), expansion)
            if peak > bound:
                raise UnexpectedError(f"{what} held {peak} bytes, bound {bound} for a {len(blob)}-byte blob")
        outcome.append("ok")
        return res

    res, peak = call(lambda: spherecodec.info(blob))
    meta = judge("info", res, peak, None)
    expansion = max_expansion(blob) if meta is not None and measure is not None else None
    res, peak = call(lambda: spherecodec.decode(blob, threads=threads))
    decoded = judge("decode", res, peak, expansion)
    if decoded is not None:
        if meta is None:
            raise UnexpectedError("decode succeeded where info failed")
        if decoded.shape != tuple(meta["shape"]) or decoded.dtype.name != meta["dtype"]:
            raise UnexpectedError(f"decode gave {decoded.shape} {decoded.dtype}, info says "
                                  f"{meta['shape']} {meta['dtype']}")
        if must_equal is not None and (decoded.shape != must_equal.shape
                                       or _bits(decoded) != _bits(must_equal)):
            raise UnexpectedError("a blob whose checksums hold decoded to bits other than the original's")
        # again into an output pre-filled with a pattern: an element a decoder leaves
        # unwritten, or a value read from uninitialised memory, shows as a difference
        out = np.empty_like(decoded)
        out.reshape(-1).view(np.uint8)[:] = 0xA5
        try:
            spherecodec.decode(blob, threads=1, out=out)
        except spherecodec.SpherecodecError as exc:
            raise UnexpectedError(f"decode(out=) refused a blob decode accepted: {exc}") from exc
        if _bits(out) != _bits(decoded):
            raise UnexpectedError("decode(out=pattern) differs from decode: unwritten or uninitialised output")
    if meta is not None and len(meta["shape"]) >= 2:
        rows = int(np.prod(meta["shape"][:-1], dtype=object))
        lo, hi = (-3, rows + 3) if rows < 2**40 else (0, 10)
        a, b = rng.randrange(lo, hi), rng.randrange(lo, hi)
        res, peak = call(lambda: spherecodec.decode_rows(blob, a, b))
        part = judge("decode_rows", res, peak, expansion)
        if part is not None:
            n = len(range(*slice(a, b).indices(rows)))
            if part.shape != (n, meta["shape"][-1]) or part.dtype.name != meta["dtype"]:
                raise UnexpectedError(f"decode_rows({a}, {b}) gave {part.shape} {part.dtype}")
            for full in (decoded, must_equal):
                if full is not None and _bits(part) != _bits(full.reshape(rows, meta["shape"][-1])[a:b]):
                    raise UnexpectedError(f"decode_rows({a}, {b}) disagrees with decode")
        # the other readers of blobs: search on codes, and the memory-mapped file reader
        dim = meta["shape"][-1]
        if 0 < dim <= 4096 and rng.random() < 0.25:
            queries = np.random.default_rng(rng.randrange(2**32)).standard_normal((2, dim)).astype(np.float32)
            k = rng.choice([1, 5])
            res, peak = call(lambda: _search()(blob, queries, k, threads=1))
            found = judge("search", res, peak, expansion)
            if found is not None:
                scores, ids = found
                if scores.shape != (2, k) or ids.shape != (2, k) or ((ids < -1) | (ids >= rows)).any():
                    raise UnexpectedError(f"search gave {scores.shape} scores and ids {ids.tolist()} for {rows} rows")
    if meta is not None and rng.random() < 0.0625:
        res, _ = call(lambda: _read_file(blob))
        whole = judge("BlobFile.read", res, None, expansion)
        if whole is not None and decoded is not None and _bits(whole) != _bits(decoded):
            raise UnexpectedError("BlobFile.read disagrees with decode")
        if whole is not None and decoded is None:
            raise UnexpectedError("BlobFile.read decoded a blob that decode refused")
    return "/".join(outcome)


def check_frame_case(entry, frame, sealed, *, measure=None):
    """``check_case`` for a frame: info, decode with its dictionary (and into a patterned
    ``out``), decode_many of it twice, decode without a dictionary (DictionaryError)."""
    outcome = []
    SE = spherecodec.SpherecodecError
    d = dictionary_of(entry)
    must_equal = entry.reference if (not sealed or frame == entry.blob) else None

    def call(what, fn):
        if measure is None:
            try:
                res, peak = fn(), None
            except Exception as exc:  # noqa: BLE001 - classified below
                res, peak = exc, None
        else:
            res, peak = measure(fn)
        if isinstance(res, BaseException):
            if not isinstance(res, SE):
                raise UnexpectedError(f"{what} raised {type(res).__name__}: {res}") from res
            outcome.append(type(res).__name__)
            return None
        if peak is not None:
            # the dense kinds (constant, zero low bits) have a larger bound than the dictionary's
            bound = allocation_bound(len(frame), frames.expansion_bound(frame[0] if len(frame) else 0, d))
            if peak > bound:
                raise UnexpectedError(f"{what} held {peak} bytes, bound {bound} for a {len(frame)}-byte frame")
        outcome.append("ok")
        return res

    meta = call("info", lambda: spherecodec.info(frame))
    decoded = call("decode", lambda: spherecodec.decode(frame, dictionary=d))
    if decoded is not None:
        if meta is None or decoded.shape != tuple(meta["shape"]) or decoded.dtype.name != meta["dtype"]:
            raise UnexpectedError(f"decode gave {decoded.shape} {decoded.dtype}, info says {meta}")
        if must_equal is not None and _bits(decoded) != _bits(must_equal):
            raise UnexpectedError("a frame whose check holds decoded to bits other than the original's")
        out = np.empty_like(decoded)
        out.reshape(-1).view(np.uint8)[:] = 0xA5
        spherecodec.decode(frame, dictionary=d, out=out)
        if _bits(out) != _bits(decoded):
            raise UnexpectedError("decode(out=pattern) differs from decode: unwritten or uninitialised output")
    if meta is not None and len(meta["shape"]) == 1:
        many = call("decode_many", lambda: spherecodec.decode_many([frame, frame], dictionary=d))
        if (many is None) != (decoded is None):
            raise UnexpectedError("decode_many and decode disagree on accepting the frame")
        if many is not None and (_bits(many[0]) != _bits(decoded) or _bits(many[1]) != _bits(decoded)):
            raise UnexpectedError("decode_many disagrees with decode")
    if meta is not None:
        try:
            spherecodec.decode(frame)
            raise UnexpectedError("a frame decoded without its dictionary")
        except SE:
            pass
    return "/".join(outcome)


def _search():
    from spherecodec.search import search

    return search


def _read_file(blob):
    import os
    import tempfile

    from spherecodec.stream import BlobFile

    fd, path = tempfile.mkstemp(suffix=".sphc")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        with BlobFile(path) as bf:
            return bf.read(threads=1)
    finally:
        os.unlink(path)


# --------------------------------------------------------------------------------------
# targeted forgeries (tests and the docs' allocation figures)
# --------------------------------------------------------------------------------------
def forge(blob, *, meta=None, payloads=None, seal_blob=True, **fixed):
    """A copy of ``blob`` with metadata keys replaced (``meta`` dict), payloads replaced,
    or fixed-header / index fields overridden (``n_chunks``, ``shared_len``, ``meta_len``,
    ``lengths``, ``version``, ``flags``, ``reserved``, ``shared``, ``meta_bytes``), sealed."""
    parts = split(blob)
    if meta:
        d = json.loads(parts.meta)
        d.update(meta)
        parts.meta = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
    if "meta_bytes" in fixed:
        parts.meta = fixed.pop("meta_bytes")
    if payloads is not None:
        parts.payloads = list(payloads)
    for key, value in fixed.items():
        setattr(parts, key, value)
    return parts.build(seal=seal_blob)


def max_chunk_forgery(entry, fill=0.95):
    """``entry.blob`` forged to announce one chunk of nearly the decoded size the container's
    budget allows for it, holding the blob's first real payload: the codec decodes a tiny
    payload into a large output and must refuse it without temporaries beyond proportion."""
    parts = split(entry.blob)
    d = json.loads(parts.meta)
    codec = spherecodec.get_codec(d["codec"]).from_config(d["params"])
    dim = max(1, d["dim"])
    row_bytes = dim * np.dtype(d["dtype"]).itemsize
    payloads = parts.payloads[:1] or [b"\0"]

    def build(rows):
        shape = [rows, dim] if len(d["shape"]) >= 2 else [dim]
        return forge(entry.blob, meta={"rows": rows, "dim": dim, "shape": shape, "chunk_rows": rows},
                     payloads=payloads)

    if len(d["shape"]) < 2:
        return build(1)
    size = len(build(10**12)) + 16  # more digits than the final row count
    budget = layout.ALLOCATION_SLACK + codec.max_expansion * size
    # the codec's max_expansion may depend on its shared state: take it from the header
    try:
        budget = layout.ALLOCATION_SLACK + container.Header(build(1)).codec.max_expansion * size
    except spherecodec.SpherecodecError:
        pass
    return build(max(1, int(budget * fill) // row_bytes))
