"""Golden blobs: bytes written by earlier builds must decode to the same bits forever.

Layout: ``tests/data/golden/<codec>/NAME.sphc`` with ``NAME.npy``, the array the blob must
decode to (for lossy codecs: their stored decoded output). Every such pair is found and
tested automatically; a codec adds its golden blobs by dropping files there.

Re-encoding (today's encoder must write the very same bytes, with 1 or 2 threads) is
checked for every blob whose input is known: ``NAME.input.npy`` if present, else ``NAME.npy``
for the lossless codecs in ``LOSSLESS``. Blobs coded with the ``constriction`` entropy
backend are only decoded: their bytes belong to that library's version. So are the blobs
named ``NAME-14bit``: the bytes ``NAME`` had before short exact streams took 12-bit tables
(``entropy.short_stream_layout``); every reader must still decode them.
"""

from pathlib import Path

import numpy as np
import pytest

import spherecodec
from common import assert_same_bits, load_npy, parse_layout

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
#: codecs whose decoded output is their input, so NAME.npy is what was encoded
LOSSLESS = {"exact"}
#: the exact codec's golden set (scripts/make_golden.py): all must stay present
EXACT_NAMES = {"f32_sample", "f32_specials", "f64_mixed", "f16_mixed", "f32_1d", "f32_3d",
               "f64_scalar", "f32_empty", "f32_constriction", "f32_stored", "f32_mantissa0",
               "f16_mantissa6", "f32_wide", "bf16_wide64", "f32_small", "f32_small_wide"}
#: blobs an earlier encoder wrote (see the module docstring): decoded, not re-encoded
WRITTEN_BEFORE = "-14bit"

BLOBS = sorted(GOLDEN.glob("*/*.sphc"))


def _id(path):
    return f"{path.parent.name}/{path.stem}"


def _input_of(path):
    """The array that was encoded into ``path``, or None if not known (or not what
    today's encoder writes for it)."""
    if path.stem.endswith(WRITTEN_BEFORE):
        return None
    explicit = path.with_name(path.stem + ".input.npy")
    if explicit.exists():
        return load_npy(explicit)
    if path.parent.name in LOSSLESS:
        return load_npy(path.with_suffix(".npy"))
    return None


def test_golden_set_is_complete():
    assert {p.stem for p in GOLDEN.glob("exact/*.sphc")} >= EXACT_NAMES
    for blob in BLOBS:
        assert blob.with_suffix(".npy").exists(), f"{_id(blob)} has no .npy to compare with"
    for npy in GOLDEN.glob("*/*.npy"):
        stem = npy.name[:-len(".input.npy")] if npy.name.endswith(".input.npy") else npy.stem
        assert npy.with_name(stem + ".sphc").exists(), f"{npy} belongs to no blob"
    exact_bytes = sum(p.stat().st_size for name in EXACT_NAMES for p in GOLDEN.glob(f"exact/{name}.*"))
    # the repository ships small files only (f32_wide needs 2**14 values: 120 KB,
    # bf16_wide64 2**16: 218 KB, f32_small_wide 2**13: 60 KB)
    assert exact_bytes < 580_000


@pytest.mark.parametrize("path", BLOBS, ids=_id)
def test_golden_blob_decodes_to_its_bits(path):
    blob = path.read_bytes()
    expected = load_npy(path.with_suffix(".npy"))
    meta = spherecodec.info(blob)
    assert meta["codec"] == path.parent.name
    assert meta["dtype"] == expected.dtype.name and tuple(meta["shape"]) == expected.shape
    for threads in (1, 2):
        assert_same_bits(spherecodec.decode(blob, threads=threads), expected)
    out = np.empty_like(expected)
    spherecodec.decode(blob, out=out)
    assert_same_bits(out, expected)
    if expected.ndim >= 2:
        rows = expected.reshape(-1, expected.shape[-1])
        mid = rows.shape[0] // 2
        assert_same_bits(spherecodec.decode_rows(blob, mid - 3, mid + 4), rows[max(mid - 3, 0):mid + 4])


REENCODABLE = [p for p in BLOBS if _input_of(p) is not None
               and spherecodec.info(p.read_bytes())["params"].get("entropy") != "constriction"]


@pytest.mark.parametrize("path", REENCODABLE, ids=_id)
def test_encoder_still_writes_the_golden_bytes(path):
    blob = path.read_bytes()
    meta = spherecodec.info(blob)
    array = _input_of(path)
    for threads in (1, 2):
        again = spherecodec.encode(array, meta["codec"], threads=threads, chunk_rows=meta["chunk_rows"],
                                   **meta["params"])
        assert again == blob, f"{_id(path)}: today's encoder writes different bytes"


def test_reencode_covers_the_exact_numba_blobs():
    names = {p.stem for p in REENCODABLE if p.parent.name == "exact"}
    assert names >= EXACT_NAMES - {"f32_constriction"}
    assert "f32_constriction" not in names


def test_golden_exact_structure():
    """The golden set covers what it claims: a stored chunk, both backends, several dtypes."""
    stored = parse_layout((GOLDEN / "exact" / "f32_stored.sphc").read_bytes())
    assert [c[0] for c in stored["chunks"]] == [1, 0]  # random bits stored, embeddings coded
    params = spherecodec.info((GOLDEN / "exact" / "f32_constriction.sphc").read_bytes())["params"]
    assert params["entropy"] == "constriction"
    dtypes = {spherecodec.info(p.read_bytes())["dtype"] for p in GOLDEN.glob("exact/*.sphc")}
    assert dtypes == {"float16", "float32", "float64", "bfloat16"}
    shapes = parse_layout((GOLDEN / "exact" / "f32_shapes.sphc").read_bytes())
    assert [c[0] for c in shapes["chunks"]] == [4, 4, 5, 5, 6, 5]  # zero low bits, sparse, constant
    for name in EXACT_NAMES - {"f32_constriction", "f32_empty"}:  # earlier bytes kept, if changed
        earlier = GOLDEN / "exact" / f"{name}{WRITTEN_BEFORE}.sphc"
        if earlier.exists():
            assert earlier.read_bytes() != (GOLDEN / "exact" / f"{name}.sphc").read_bytes()
            same_input = load_npy(GOLDEN / "exact" / f"{name}.npy").tobytes()
            assert load_npy(earlier.with_suffix(".npy")).tobytes() == same_input
    for name, backend in (("f32_small", 0), ("f32_small_wide", 2)):  # short streams: 12-bit tables
        small = parse_layout((GOLDEN / "exact" / f"{name}.sphc").read_bytes())
        (chunk,) = small["chunks"]
        values = small["meta"]["rows"] * small["meta"]["dim"]
        head = 1 + 2 * values + (4 * values + 7) // 8  # mode byte, 20 raw bits per value
        assert (chunk[0], chunk[head], chunk[head + 1]) == (0, backend, 12)
    specials = np.load(GOLDEN / "exact" / "f32_specials.npy")
    assert np.isnan(specials).any() and np.isinf(specials).any() and (specials.view(np.uint32) == 1).any()
