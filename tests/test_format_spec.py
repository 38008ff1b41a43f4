"""An independent decoder written from docs/format.md alone, in plain Python.

It shares no code with spherecodec (no Numba kernels, no container module, no constriction):
if it decodes the golden and freshly encoded blobs to the same bits as spherecodec, the
spec says enough to write a decoder. Slow by design; used on small blobs only.
"""

import json
import struct
from pathlib import Path

import numpy as np
import pytest

import spherecodec
from common import assert_same_bits, load_npy, load_sample

GOLDEN = Path(__file__).resolve().parent / "data" / "golden" / "exact"

# --- XXH64 (docs/format.md, "Checksums") ---------------------------------------------------

_M64 = (1 << 64) - 1
_P1, _P2, _P3 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9
_P4, _P5 = 0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _M64


def _round(acc, lane):
    acc = (acc + lane * _P2) & _M64
    return (_rotl(acc, 31) * _P1) & _M64


def _merge(acc, v):
    acc ^= _round(0, v)
    return (acc * _P1 + _P4) & _M64


def xxh64(data, seed=0):
    data = bytes(data)
    n = len(data)
    i = 0
    if n >= 32:
        v = [(seed + _P1 + _P2) & _M64, (seed + _P2) & _M64, seed, (seed - _P1) & _M64]
        while i + 32 <= n:
            for k in range(4):
                v[k] = _round(v[k], int.from_bytes(data[i + 8 * k:i + 8 * k + 8], "little"))
            i += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M64
        for k in range(4):
            h = _merge(h, v[k])
    else:
        h = (seed + _P5) & _M64
    h = (h + n) & _M64
    while i + 8 <= n:
        h ^= _round(0, int.from_bytes(data[i:i + 8], "little"))
        h = (_rotl(h, 27) * _P1 + _P4) & _M64
        i += 8
    if i + 4 <= n:
        h ^= (int.from_bytes(data[i:i + 4], "little") * _P1) & _M64
        h = (_rotl(h, 23) * _P2 + _P3) & _M64
        i += 4
    while i < n:
        h ^= (data[i] * _P5) & _M64
        h = (_rotl(h, 11) * _P1) & _M64
        i += 1
    h ^= h >> 33
    h = (h * _P2) & _M64
    h ^= h >> 29
    h = (h * _P3) & _M64
    return h ^ (h >> 32)


# --- container ----------------------------------------------------------------------------

class Bad(Exception):
    """The reference decoder's only error: the blob breaks a rule of the spec."""


def parse_container(blob):
    if len(blob) < 32:
        raise Bad("short")
    magic, version, flags, meta_len, reserved, n_chunks, shared_len = struct.unpack_from("<4sHHIIQQ", blob)
    if magic != b"SPHC" or version != 1 or flags or reserved or meta_len > 1 << 20:
        raise Bad("fixed header")
    index_start = 32 + meta_len + shared_len
    index_end = index_start + 16 * n_chunks
    if index_end + 8 > len(blob):
        raise Bad("truncated header")
    if xxh64(blob[:index_end]) != struct.unpack_from("<Q", blob, index_end)[0]:
        raise Bad("header checksum")
    meta = json.loads(blob[32:32 + meta_len].decode("utf-8"))
    pos = index_end + 8
    chunks = []
    for i in range(n_chunks):
        length, check = struct.unpack_from("<QQ", blob, index_start + 16 * i)
        payload = blob[pos:pos + length]
        if len(payload) != length or xxh64(payload) != check:
            raise Bad(f"chunk {i}")
        chunks.append(payload)
        pos += length
    if pos != len(blob):
        raise Bad("trailing bytes")
    return meta, blob[32 + meta_len:index_start], chunks


# --- entropy streams ------------------------------------------------------------------------

def read_varint(buf, pos):
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 56:
            raise Bad("varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def decode_numba_body(body, n, symbols, freqs, precision):
    lanes = 8 if n >= 256 else 1
    pos = 0
    lengths = []
    for _ in range(lanes - 1):
        length, pos = read_varint(body, pos)
        lengths.append(length)
    lengths.append(len(body) - pos - sum(lengths))
    cum = np.concatenate([[0], np.cumsum(freqs)])
    slot_to_index = np.repeat(np.arange(len(symbols)), freqs)
    states, cursors, ends = [], [], []
    for length in lengths:
        if length < 4 or length % 2:
            raise Bad("lane length")
        states.append(int.from_bytes(body[pos:pos + 4], "little"))
        cursors.append(pos + 4)
        pos += length
        ends.append(pos)
    out = np.empty(n, dtype=np.int64)
    mask = (1 << precision) - 1
    for i in range(n):
        j = i % lanes
        x = states[j]
        k = int(slot_to_index[x & mask])
        out[i] = symbols[k]
        x = int(freqs[k]) * (x >> precision) + (x & mask) - int(cum[k])
        if x < 1 << 16:
            if cursors[j] + 2 > ends[j]:
                raise Bad("lane overrun")
            x = (x << 16) | int.from_bytes(body[cursors[j]:cursors[j] + 2], "little")
            cursors[j] += 2
        states[j] = x
    if cursors != ends or any(x != 1 << 16 for x in states):
        raise Bad("rANS lanes did not end cleanly")
    return out


def decode_wide_body(body, n, symbols, freqs, precision, groups=2):
    # 16 * groups lanes (32 or 64): lanes 16g .. 16g+15 read substream g; in each step a
    # lane reads its word right after its symbol, so words come in lane order per group
    lanes = 16 * groups
    pos, lengths = 0, []
    for _ in range(groups - 1):
        length, pos = read_varint(body, pos)
        lengths.append(length)
    if sum(lengths) > len(body) - pos:
        raise Bad("substream length")
    lengths.append(len(body) - pos - sum(lengths))
    bounds = []
    for length in lengths:
        if length < 64 or length % 2:
            raise Bad("substream length")
        bounds.append((pos, pos + length))
        pos += length
    states = [int.from_bytes(body[start + 4 * j:start + 4 * j + 4], "little")
              for start, _ in bounds for j in range(16)]
    cursors = [start + 64 for start, _ in bounds]
    cum = np.concatenate([[0], np.cumsum(freqs)])
    slot_to_index = np.repeat(np.arange(len(symbols)), freqs)
    out = np.empty(n, dtype=np.int64)
    mask = (1 << precision) - 1
    for i in range(n):
        j = i % lanes
        g = j // 16
        x = states[j]
        k = int(slot_to_index[x & mask])
        out[i] = symbols[k]
        x = int(freqs[k]) * (x >> precision) + (x & mask) - int(cum[k])
        if x < 1 << 16:
            if cursors[g] + 2 > bounds[g][1]:
                raise Bad("substream overrun")
            x = (x << 16) | int.from_bytes(body[cursors[g]:cursors[g] + 2], "little")
            cursors[g] += 2
        states[j] = x
    if cursors != [end for _, end in bounds] or any(x != 1 << 16 for x in states):
        raise Bad("rANS lanes did not end cleanly")
    return out


def decode_constriction_body(body, n, symbols, freqs, precision):
    if len(body) % 4:
        raise Bad("constriction words")
    words = [int.from_bytes(body[i:i + 4], "little") for i in range(0, len(body), 4)]
    m = len(symbols)
    cum = np.concatenate([[0], np.cumsum(freqs)])
    # constriction's fast quantization to 24 bits: every symbol keeps at least one slot
    left = [(int(cum[j]) * ((1 << 24) - m) >> precision) + j for j in range(m)] + [1 << 24]
    if words and words[-1] == 0:
        raise Bad("constriction data ends in a zero word")
    state = words.pop() if words else 0
    if words:
        state = (state << 32) | words.pop()
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        quantile = state & ((1 << 24) - 1)
        k = int(np.searchsorted(left, quantile, side="right")) - 1
        out[i] = symbols[k]
        state = (left[k + 1] - left[k]) * (state >> 24) + quantile - left[k]
        if state < 1 << 32 and words:
            state = (state << 32) | words.pop()
    if words or state != 0:
        raise Bad("constriction stream has data left")
    return out


def decode_stream(buf, pos, alphabet, n):
    backend, precision = buf[pos], buf[pos + 1]
    if backend not in (0, 1, 2, 3) or not 1 <= precision <= 15:
        raise Bad("stream header")
    m, pos = read_varint(buf, pos + 2)
    symbols, freqs = [], []
    s = 0
    for j in range(m):
        delta, pos = read_varint(buf, pos)
        freq, pos = read_varint(buf, pos)
        if (j and not delta) or freq < 1:
            raise Bad("table")
        s += delta
        symbols.append(s)
        freqs.append(freq)
    if symbols and (symbols[-1] >= alphabet or sum(freqs) != 1 << precision):
        raise Bad("table")
    nbytes, pos = read_varint(buf, pos)
    body = buf[pos:pos + nbytes]
    if len(body) != nbytes:
        raise Bad("body")
    if n == 0:
        if nbytes:
            raise Bad("bytes for an empty stream")
        return np.empty(0, np.int64), pos + nbytes
    decoder = {0: decode_numba_body, 1: decode_constriction_body, 2: decode_wide_body,
               3: lambda *args: decode_wide_body(*args, groups=4)}[backend]
    return decoder(body, n, np.array(symbols), np.array(freqs), precision), pos + nbytes


# --- exact codec ----------------------------------------------------------------------------

EXACT = {"float16": (16, 6, 3), "bfloat16": (16, 9, 3), "float32": (32, 9, 3), "float64": (64, 12, 3)}


def decode_exact_chunk(payload, n, dtype, params):
    width, head, default_m = EXACT[dtype]
    m = default_m if params.get("mantissa_bits") is None else params["mantissa_bits"]
    symbol_bits = head + m
    raw_bits = width - symbol_bits
    if payload[0] == 6:  # constant
        if len(payload) != 1 + width // 8:
            raise Bad("constant size")
        return [int.from_bytes(payload[1:], "little")] * n
    if payload[0] == 5:  # sparse: mask stream, then the nonzero values as a payload of their own
        count, pos = read_varint(payload, 1)
        mask, pos = decode_stream(payload, pos, 256, (n + 7) // 8)
        bits = [(int(mask[i // 8]) >> (i % 8)) & 1 for i in range(8 * len(mask))]
        if sum(bits) != count or any(bits[n:]):
            raise Bad("mask")
        nonzero = iter(decode_exact_values(payload[pos:], count, width, symbol_bits, raw_bits))
        return [next(nonzero) if bits[i] else 0 for i in range(n)]
    return decode_exact_values(payload, n, width, symbol_bits, raw_bits)


def decode_exact_values(payload, n, width, symbol_bits, raw_bits):
    """Modes 0, 1 and 4."""
    if payload[0] == 1:
        if len(payload) != 1 + n * width // 8:
            raise Bad("stored size")
        return [int.from_bytes(payload[1 + i * width // 8:1 + (i + 1) * width // 8], "little")
                for i in range(n)]
    t, start = 0, 1
    if payload[0] == 4:  # low t bits zero in every value, not stored
        t, start = payload[1], 2
        if not 1 <= t <= raw_bits:
            raise Bad("zero low bits")
    elif payload[0] != 0:
        raise Bad("mode")
    low_bits = raw_bits - t
    kb, kr = divmod(low_bits, 8)
    nraw = n * kb + (n * kr + 7) // 8
    raw = payload[start:start + nraw]
    bitplane = int.from_bytes(raw[n * kb:], "little")
    symbols, end = decode_stream(payload, start + nraw, 1 << symbol_bits, n)
    if end != len(payload):
        raise Bad("bytes after the stream")
    values = []
    for i in range(n):
        low = int.from_bytes(raw[i * kb:(i + 1) * kb], "little")
        low |= ((bitplane >> (i * kr)) & ((1 << kr) - 1)) << (8 * kb)
        values.append(((int(symbols[i]) << low_bits) | low) << t)
    return values


def reference_decode(blob):
    meta, shared, chunks = parse_container(blob)
    if meta["codec"] != "exact" or shared:
        raise Bad("not a level-1 exact blob")
    dtype = np.dtype(meta["dtype"])
    rows, dim, chunk_rows = meta["rows"], meta["dim"], meta["chunk_rows"]
    values = []
    for i, payload in enumerate(chunks):
        n = min(chunk_rows, rows - i * chunk_rows) * dim
        values += decode_exact_chunk(payload, n, dtype.name, meta["params"])
    if len(values) != rows * dim:
        raise Bad("value count")
    utype = {2: np.uint16, 4: np.uint32, 8: np.uint64}[dtype.itemsize]
    return np.array(values, dtype=np.uint64).astype(utype).view(dtype).reshape(meta["shape"])


# --- tests ------------------------------------------------------------------------------------

def test_reference_xxh64_matches_spherecodec():
    from spherecodec import layout

    rng = np.random.default_rng(0)
    for n in [0, 1, 3, 4, 7, 8, 31, 32, 33, 63, 64, 100, 1000]:
        data = rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()
        assert xxh64(data) == layout.checksum(data)
    assert xxh64(b"") == 0xEF46DB3751D8E999  # published XXH64 of the empty input, seed 0


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.sphc")), ids=lambda p: p.stem)
def test_reference_decoder_reads_the_golden_blobs(path):
    blob = path.read_bytes()
    assert_same_bits(reference_decode(blob), load_npy(path.with_suffix(".npy")))


@pytest.mark.parametrize("backend", ["numba", "constriction"])
@pytest.mark.parametrize("dtype,mantissa_bits", [(np.float32, None), (np.float16, 5),
                                                  (np.float64, 1), (np.float32, 0)])
def test_reference_decoder_reads_fresh_blobs(backend, dtype, mantissa_bits):
    # 300 rows x 5: chunks of 60 rows (300 symbols, 8 lanes) and a tail chunk below 256
    x = load_sample()[:303, :5].astype(dtype)
    x[0, :3] = [np.nan, -np.inf, -0.0]
    blob = spherecodec.encode(x, entropy=backend, mantissa_bits=mantissa_bits, chunk_rows=60)
    assert_same_bits(reference_decode(blob), x)


@pytest.mark.parametrize("backend", ["numba", "constriction"])
def test_reference_decoder_reads_the_shape_modes(backend):
    """Modes 4 (trailing zero bits), 5 (sparse) and 6 (constant), each in a chunk of its own,
    and bfloat16 values, as the spec describes them."""
    import ml_dtypes

    x = load_sample()[:40, :24]
    half = x.astype(ml_dtypes.bfloat16).astype(np.float32)      # mode 4, t >= 16
    sparse = np.where(np.arange(x.size).reshape(x.shape) % 5 == 0, x, 0).astype(np.float32)
    sparse[0, :3] = [np.nan, -0.0, -np.inf]                        # mode 5, values of mode 0
    halfsparse = np.where(sparse != 0, half, 0).astype(np.float32)  # mode 5, values of mode 4
    constant = np.full_like(x, -0.0)                               # mode 6
    y = np.concatenate([half, sparse, halfsparse, constant])
    blob = spherecodec.encode(y, entropy=backend, chunk_rows=40)
    modes = [c[0] for c in parse_container(blob)[2]]
    assert modes == [4, 5, 5, 6]
    assert_same_bits(reference_decode(blob), y)
    b16 = x.astype(ml_dtypes.bfloat16)
    assert_same_bits(reference_decode(spherecodec.encode(b16, entropy=backend)), b16)


def test_reference_decoder_reads_64_lane_streams():
    """Chunks of 2**16 values or more take the 64-lane layout (backend 3): float32 with its
    20 raw bits, and bfloat16 with a nibble."""
    import ml_dtypes

    x = load_sample()[:171]  # 65,664 values
    for y in (x, x.astype(ml_dtypes.bfloat16)):
        blob = spherecodec.encode(y, threads=1)
        (chunk,) = parse_container(blob)[2]
        raw_bits = 8 * y.itemsize - 12  # the raw section: whole bytes, then a bit plane
        assert chunk[1 + y.size * (raw_bits // 8) + -(-y.size * (raw_bits % 8) // 8)] == 3
        assert_same_bits(reference_decode(blob), y)


def test_reference_decoder_reads_single_symbol_streams():
    for backend in ("numba", "constriction"):
        x = np.full((40, 16), 0.25, np.float32)
        assert_same_bits(reference_decode(spherecodec.encode(x, entropy=backend)), x)


def test_reference_decoder_agrees_on_damage():
    x = load_sample()[:8, :40]
    blob = spherecodec.encode(x, chunk_rows=8)
    for cut in (1, 9, len(blob) - 40):
        with pytest.raises(Bad):
            reference_decode(blob[:-cut])
    with pytest.raises(Bad):
        reference_decode(blob + b"\0")


# --- encoder side (docs/format.md 2.2 "Encoding", 2.4) --------------------------------------

def reference_quantize(counts, precision):
    counts = [int(c) for c in counts]
    total = 1 << precision
    used = [s for s, c in enumerate(counts) if c]
    if not used:
        return [0] * len(counts)
    if len(used) == 1:
        s = used[0]
        neighbour = s + 1 if s + 1 < len(counts) else s - 1
        counts[neighbour] = max(1, counts[s] >> 8)
        used = sorted(used + [neighbour])
    n = sum(counts[s] for s in used)
    freq = {s: max(1, counts[s] * total // n) for s in used}
    remainder = {s: counts[s] * total % n for s in used}
    short = total - sum(freq.values())
    for s in sorted(used, key=lambda s: -remainder[s])[:max(short, 0)]:
        freq[s] += 1
    while short < 0:
        take = [s for s in sorted(used, key=lambda s: -freq[s])[:-short] if freq[s] > 1]
        for s in take:
            freq[s] -= 1
        short += len(take)
    cap = total - (total >> 8)
    top = max(used, key=lambda s: (freq[s], -s))
    if freq[top] > cap:
        excess = freq[top] - cap
        freq[top] = cap
        others = [s for s in used if s != top]
        share, rest = divmod(excess, len(others))
        for j, s in enumerate(others):
            freq[s] += share + (j < rest)
    return [freq.get(s, 0) for s in range(len(counts))]


def _varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def reference_encode_stream(symbols, alphabet, min_precision=14):
    """Section 2.4's stream in 8 lanes (1 below 256 symbols); ``min_precision`` 12 for the
    exact codec's short value streams."""
    counts = np.bincount(symbols, minlength=alphabet)
    m = int(np.count_nonzero(counts))
    precision = min_precision
    while (1 << precision) < 2 * max(m, 2) and precision < 15:
        precision += 1
    freq = reference_quantize(counts, precision)
    cum = np.concatenate([[0], np.cumsum(freq)])
    out = bytearray([0, precision]) + _varint(sum(1 for f in freq if f))
    prev = 0
    for s, f in enumerate(freq):
        if f:
            out += _varint(s - prev) + _varint(f)
            prev = s
    n = len(symbols)
    if n == 0:
        return bytes(out + _varint(0))
    lanes = 8 if n >= 256 else 1
    substreams = []
    for j in range(lanes):
        x = 1 << 16
        words = []
        for s in reversed(symbols[j::lanes].tolist()):
            f, c = freq[s], int(cum[s])
            if x >= f << (32 - precision):
                words.append(x & 0xFFFF)
                x >>= 16
            x = ((x // f) << precision) + x % f + c
        substreams.append(struct.pack("<I", x) + b"".join(struct.pack("<H", w) for w in reversed(words)))
    body = b"".join(_varint(len(sub)) for sub in substreams[:-1]) + b"".join(substreams)
    return bytes(out + _varint(len(body)) + body)


def test_reference_quantizer_matches_spherecodec():
    from spherecodec import entropy

    rng = np.random.default_rng(1)
    cases = [np.array([0, 5, 0, 0]), np.array([0, 0, 0, 9]), np.array([1000000, 1, 1, 0, 3])]
    for _ in range(200):
        size = int(rng.integers(2, 600))
        counts = rng.integers(0, 3, size=size) * rng.integers(0, 10**int(rng.integers(1, 7)), size=size)
        cases.append(counts)
    for counts in cases:
        m = int(np.count_nonzero(counts))
        for least in (14, 12):  # long streams, short ones (2.4)
            precision = entropy.choose_precision(max(m, 2), least)
            expected = entropy.quantize_frequencies(counts, precision).tolist()
            assert reference_quantize(counts, precision) == expected, counts


@pytest.mark.parametrize("n", [0, 1, 5, 255, 256, 257, 3001])
def test_reference_encoder_writes_spherecodec_stream_bytes(n):
    from spherecodec import entropy

    rng = np.random.default_rng(n)
    x = load_sample().reshape(-1)[:n]
    symbols = (x.view(np.uint32) >> 20).astype(np.int64)
    assert reference_encode_stream(symbols, 4096) == entropy.encode_stream(symbols, 4096)
    skewed = rng.geometric(0.7, size=n).clip(0, 63).astype(np.int64)
    assert reference_encode_stream(skewed, 64) == entropy.encode_stream(skewed, 64)
    # the exact codec's short value streams start from 12-bit tables (2.4)
    out = np.zeros(entropy.stream_capacity(n, 4096), np.uint8)
    end = entropy.encode_stream_into(x.view(np.uint32), 4096, out, 0, shift=20, short_tables=True)
    assert reference_encode_stream(symbols, 4096, 12 if n else 14) == out[:end].tobytes()
