"""Scale: indices past 2**31 in the kernels and the container, chunk counts in the millions.

Kept fast by virtual sizes: zero-stride arrays (one element seen 2**31 times), a sparse
memory-mapped file (2 GiB of holes: page cache, not anonymous memory), and blobs of
constant arrays, whose chunks are all the same payload, assembled by repeating one real
chunk (checked against the real encoder first). The slow full runs (a 2,000,000-chunk
encode and decode, a memory-mapped array of more than 2**31 float32 through encode and
decode) are ``scripts/scale_check.py``; their figures are in docs/reliability.md.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import spherecodec
from spherecodec import container, layout
from spherecodec.kernels import bits as kbits
from spherecodec.kernels import rans as krans
from spherecodec.kernels.checksum import xxh64

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))
import mutate  # noqa: E402

BIG = 2**31 + 9  # elements: past every signed and unsigned 32-bit index


def _virtual(value, n, dtype):
    """A read-only array of ``n`` copies of ``value`` backed by one element."""
    return np.lib.stride_tricks.as_strided(np.array([value], dtype=dtype), shape=(n,), strides=(0,),
                                           writeable=False)


def test_histogram_counts_past_2_31():
    counts = np.zeros(16, dtype=np.int64)
    krans.histogram(_virtual(0x35, BIG, np.uint32), 4, counts)
    assert counts[3] == BIG and counts.sum() == BIG


def test_bit_plane_packing_past_2_31_values():
    # one raw bit per value: the loop runs past 2**31 values; the packed plane is 256 MiB
    out = np.zeros(kbits.raw_size(BIG, 1), dtype=np.uint8)
    used = kbits.pack_low_bits(_virtual(1, BIG, np.uint32), 1, out)
    assert used == out.size == (BIG + 7) // 8
    assert (out[:-1] == 0xFF).all() and out[-1] == (1 << (BIG % 8)) - 1


def test_checksum_of_more_than_2_gib(tmp_path):
    import xxhash

    path = tmp_path / "sparse.bin"
    with open(path, "wb") as f:  # a sparse file: holes read as zeros, no disk blocks
        f.seek(BIG - 5)
        f.write(b"tail!")
    data = np.memmap(path, dtype=np.uint8, mode="r")
    assert data.size == BIG
    got = int(xxh64(np.asarray(data)))
    ref = xxhash.xxh64()
    for start in range(0, BIG, 1 << 28):
        ref.update(memoryview(data[start:start + (1 << 28)]))
    assert got == ref.intdigest()
    del data


# ----------------------------------------------------------------------------------------
# blobs of constant arrays, assembled from one real chunk
# ----------------------------------------------------------------------------------------
def repeat_chunks(blob, n_chunks):
    """``blob`` (all chunks full and equal) grown to ``n_chunks`` chunks: the blob that
    encoding the same constant rows ``n_chunks * chunk_rows`` times gives."""
    parts = mutate.split(blob)
    assert len(set(parts.payloads)) == 1
    meta = json.loads(parts.meta)
    rows = n_chunks * meta["chunk_rows"]
    meta.update(rows=rows, shape=[rows, meta["dim"]])
    meta_bytes = layout.meta_bytes(meta)
    payload = parts.payloads[0]
    head = layout.FIXED.pack(parts.magic, parts.version, 0, len(meta_bytes), 0, n_chunks, len(parts.shared))
    index = np.empty(n_chunks, dtype=[("len", "<u8"), ("sum", "<u8")])
    index["len"] = len(payload)
    index["sum"] = mutate.checksum(payload)
    header = head + meta_bytes + bytes(parts.shared) + index.tobytes()
    header += layout.CHECKSUM.pack(layout.checksum(header))
    return header + payload * n_chunks


def test_repeat_chunks_matches_the_encoder():
    for codec, params, dim, cr in (("exact", {}, 1, 1), ("int8", {"entropy": True}, 16, 8)):
        x = np.full((7 * cr, dim), 1.5, np.float32)
        small = spherecodec.encode(x[:2 * cr], codec, chunk_rows=cr, threads=1, **params)
        assert repeat_chunks(small, 7) == spherecodec.encode(x, codec, chunk_rows=cr, threads=1, **params)


def test_two_million_chunks():
    n = 2_000_000
    x1 = np.full((2, 1), 0.75, np.float32)
    blob = repeat_chunks(spherecodec.encode(x1, chunk_rows=1, threads=1), n)
    t0 = time.perf_counter()
    facts = spherecodec.info(blob)
    parse_s = time.perf_counter() - t0
    assert facts["chunks"] == n and facts["shape"] == (n, 1)
    for a, b in ((0, 3), (n // 2 - 1, n // 2 + 2), (n - 3, n), (1_234_567, 1_235_567)):
        rows = spherecodec.decode_rows(blob, a, b)
        assert rows.shape == (b - a, 1) and (rows == 0.75).all()
    # the chunk index (32 MB here) is parsed with numpy, not per chunk in Python
    assert parse_s < 5.0, parse_s
    # a damaged chunk deep inside is caught by decode_rows over it, and only there
    pos = facts["header_nbytes"] + 1_500_000 * (len(blob) - facts["header_nbytes"]) // n
    bad = bytearray(blob)
    bad[pos] ^= 1
    bad = bytes(bad)
    assert (spherecodec.decode_rows(bad, 0, 10) == 0.75).all()
    with pytest.raises(spherecodec.CorruptBlobError):
        spherecodec.decode_rows(bad, 1_499_990, 1_500_010)


def test_array_of_more_than_2_31_elements():
    """A (5.6M x 384) float32 array (2**31 + 262,144 elements, 8.6 GB decoded) as a 1.7 MB
    int8 blob: header arithmetic and decode_rows past element 2**31."""
    dim, cr = 384, 2048
    n_chunks = -(-(2**31 + 1) // (dim * cr)) + 1
    x = np.full((2 * cr, dim), -0.25, np.float32)
    blob = repeat_chunks(spherecodec.encode(x, "int8", entropy=True, chunk_rows=cr, threads=1), n_chunks)
    facts = spherecodec.info(blob)
    rows = n_chunks * cr
    assert rows * dim > 2**31 and facts["shape"] == (rows, dim)
    assert facts["nbytes"] == rows * dim * 4 and facts["nbytes"] > 2**33
    edge = 2**31 // dim  # the row holding element 2**31
    for a, b in ((edge - 2, edge + 2), (rows - 5, rows), (rows - cr - 1, rows - cr + 1)):
        got = spherecodec.decode_rows(blob, a, b)
        assert got.shape == (b - a, dim) and (got == -0.25).all()
    # the same arithmetic in the container's index: the last chunk's payload offset
    header = container.Header(blob)
    assert int(header.offsets[-1]) == len(blob)
