"""Every single-bit flip of a small blob of every codec is detected or harmless.

For each codec, its smallest fuzz-corpus blob with a shared section or several chunks (so
that metadata, shared state, index and payloads are all present) is flipped one bit at a
time. Each flipped blob must make ``decode`` raise a SpherecodecError or decode to the
very bits of the original; ``info`` must raise or report the original's facts;
``decode_rows`` over the first chunk must raise or return the original rows.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

import spherecodec
from spherecodec import layout

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))
import mutate  # noqa: E402

CODECS = mutate.shipped_codecs()


def small_blobs(codec):
    """The codec's smallest corpus blob with >= 2 chunks, and its smallest one of another
    kind (entropy-coded, transformed, special values) when that is small too: raw and
    coded chunks go through different decoders."""
    mutate.check_table([codec])
    entries = [e for e in mutate.build_corpus([codec]) if len(mutate.split(e.blob).payloads) >= 2]
    assert entries, f"codec {codec!r} has no fuzz sample with two chunks or more"
    entries.sort(key=lambda e: len(e.blob))
    picked = [entries[0]]
    kinds = ("entropy", "constriction", "auto", "spherical", "special", "model")
    other = [e for e in entries[1:] if any(k in e.label for k in kinds) and len(e.blob) <= 1024]
    if other:
        picked.append(other[0])
    return picked


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8).tobytes()


@pytest.mark.parametrize("codec", CODECS)
def test_every_bit_flip_is_detected_or_harmless(codec):
    for entry in small_blobs(codec):
        blob = entry.blob
        ref = spherecodec.decode(blob, threads=1)
        ref_info = spherecodec.info(blob)
        first_chunk = ref_info["chunk_rows"]
        ref_rows = spherecodec.decode_rows(blob, 0, first_chunk) if ref.ndim >= 2 else None
        header_bits = 8 * ref_info["header_nbytes"]
        first_chunk_end = 8 * (ref_info["header_nbytes"] + len(mutate.split(blob).payloads[0]))
        detected = harmless = 0
        buf = bytearray(blob)
        for bit in range(8 * len(blob)):
            buf[bit >> 3] ^= 1 << (bit & 7)
            flipped = bytes(buf)
            buf[bit >> 3] ^= 1 << (bit & 7)
            try:
                out = spherecodec.decode(flipped, threads=1)
            except spherecodec.SpherecodecError:
                detected += 1
            else:
                assert out.dtype == ref.dtype and out.shape == ref.shape and _bits(out) == _bits(ref), (
                    f"{codec}/{entry.label}: flipping bit {bit} (byte {bit >> 3}) decodes to other bits")
                harmless += 1
            if bit >= first_chunk_end:
                continue  # info and decode_rows(first chunk) read none of these bytes
            try:
                facts = spherecodec.info(flipped)
            except spherecodec.SpherecodecError:
                pass
            else:
                assert bit >= header_bits and facts == ref_info, (
                    f"{codec}/{entry.label}: bit {bit} changes info silently")
            if ref_rows is not None:
                try:
                    rows = spherecodec.decode_rows(flipped, 0, first_chunk)
                except spherecodec.SpherecodecError:
                    pass
                else:
                    assert _bits(rows) == _bits(ref_rows), f"{codec}/{entry.label}: bit {bit} changes rows"
        assert detected + harmless == 8 * len(blob)
        # every byte is covered by a checksum: a flip cannot be harmless
        assert harmless == 0, f"{codec}/{entry.label}: {harmless} flips went unnoticed"


def test_flip_in_every_region_is_detected():
    """The flips land in each container region: fixed header, metadata, shared, index, payload."""
    entry = next(e for e in mutate.build_corpus(["int8"]) if e.label == "default")
    parts = mutate.split(entry.blob)
    fixed = layout.FIXED_HEADER_SIZE
    regions = {
        "fixed": fixed // 2,
        "meta": fixed + len(parts.meta) // 2,
        "shared": fixed + len(parts.meta) + len(parts.shared) // 2,
        "index": fixed + len(parts.meta) + len(parts.shared) + 3,
        "payload": len(entry.blob) - 2,
    }
    assert len(parts.shared) > 0
    for name, at in regions.items():
        b = bytearray(entry.blob)
        b[at] ^= 0x10
        with pytest.raises(spherecodec.SpherecodecError):
            spherecodec.decode(bytes(b))
