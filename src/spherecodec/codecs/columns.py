"""Column coding shared by the error-bounded codecs (grid, sphere) and the exact codec's
spherical transform: integer codes of each column entropy-coded by groups of columns with
similar statistics, the exception list, and ``ChunkWriter``, the buffer chunks are written in.

Codes are split into a bit length (with ``MANTISSA_BITS`` top mantissa bits) coded with
rANS, one stream per group of columns, and raw low bits (``kernels.grid``).
"""

import numpy as np

from .. import aot, entropy
from ..errors import CorruptBlobError
from ..kernels import grid as kg
from ..kernels.rans import read_varint, write_varint
from ..scratch import recycle, scratch, take_buffer

#: top mantissa bits coded with the bit length (measured: 2 is within 0.02% of 3 with
#: half the table size)
MANTISSA_BITS = 2
MAX_GROUPS = 15
# measured on MiniLM (1 MiB chunks): 4 groups beat 1 by 0.08% and 15 by 0.17% (tables)
GROUPS_CAP = 4
# choose_groups reads one block of rows in KEY_STRIDE (paired columns: in 16) in chunks
# of KEY_MIN_ROWS rows or more (kernels.grid.KEY_BLOCK rows per block)
KEY_STRIDE = 4
PAIRED_KEY_STRIDE = 16
KEY_MIN_ROWS = 256
# values per column group below which another group does not pay for its table
VALUES_PER_GROUP = 50000

def key_stride(n, paired=False):
    """One block of rows in this many is what ``choose_groups`` reads in a chunk of ``n`` rows."""
    return 1 if n < KEY_MIN_ROWS else PAIRED_KEY_STRIDE if paired else KEY_STRIDE


def choose_groups(codes, paired=False):
    """Group ids (uint8, one per column of ``codes`` (ncols, n)) for the entropy models.

    Columns are sorted by the mean bit length of their codes and cut into groups of equal
    size; the number of groups grows with the chunk so that tables stay cheap.
    """
    ncols, n = codes.shape
    # a sample of the rows tells the columns' statistics well enough
    keys = aot.checked("column_order_keys", kg.column_order_keys)(codes, key_stride(n, paired))
    return groups_from_keys(keys, n)


def groups_from_keys(keys, n):
    """``choose_groups`` for columns (of ``n`` codes each) with sort keys ``keys``."""
    ncols = keys.size
    groups = int(min(GROUPS_CAP, max(1, ncols * n // VALUES_PER_GROUP), ncols))
    order = np.argsort(keys, kind="stable")
    ids = np.empty(ncols, dtype=np.uint8)
    ids[order] = (np.arange(ncols) * groups // ncols).astype(np.uint8)
    return ids, groups


def _pack_nibbles(ids):
    padded = np.zeros(ids.size + (ids.size & 1), dtype=np.uint8)
    padded[:ids.size] = ids
    return (padded[0::2] | (padded[1::2] << 4)).astype(np.uint8)


class ChunkWriter:
    """A chunk's bytes written in place into one uint8 buffer that grows when needed
    (buffers from ``scratch.take_buffer``: the container recycles them once joined).

    Codecs append small pieces with ``append`` and let kernels write large ones straight
    into ``reserve(n)``'s buffer (then ``advance``), so a chunk is copied once, not per piece.
    """

    def __init__(self, capacity=1 << 16):
        self.buf = take_buffer(max(int(capacity), 16))
        self.pos = 0

    def reserve(self, n):
        """The buffer, with room for ``n`` more bytes from ``self.pos``."""
        need = self.pos + int(n)
        if need > self.buf.size:
            grown = take_buffer(max(need, 2 * self.buf.size))
            grown[:self.pos] = self.buf[:self.pos]
            recycle([self.buf])
            self.buf = grown
        return self.buf

    def advance(self, end):
        """Mark the bytes up to ``end`` (written into ``reserve``'s buffer) as used."""
        self.pos = int(end)

    def append(self, data):
        """Append ``data`` (bytes or a uint8 array)."""
        data = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray)) else data
        buf = self.reserve(data.size)
        buf[self.pos:self.pos + data.size] = data
        self.pos += data.size

    def array(self):
        """The chunk written so far (a view of the buffer)."""
        return self.buf[:self.pos]


def encode_columns(codes, out, paired=False):
    """Append the coded form of ``codes`` (ncols, n) int64 to ``out`` (a ``ChunkWriter``);
    ``paired`` as in ``write_columns``.

    Layout: u8 groups, group id per column (4 bits each), one rANS stream per group
    (its columns in order, column-major), varint raw length, raw bits.
    """
    ids, groups = choose_groups(codes, paired)

    def symbolize(perm, m, syms, raw32, counts, group_of):
        return kg.symbolize(codes, perm, m, syms, raw32, counts, group_of)

    write_columns(symbolize, codes.shape, ids, groups, out, paired)


def write_columns(symbolize, shape, ids, groups, out, paired=False):
    """``encode_columns`` for codes (``shape`` = (ncols, n)) that ``symbolize`` turns into
    symbols: called as ``symbolize(perm, m, syms, raw32, counts, group_of)`` with the
    arguments of ``kernels.grid.symbolize`` after ``codes``, it returns the raw bytes used.
    Codecs that compute codes on the fly (sphere) use it without materialising them.

    ``paired``: the symbols are bit lengths alone (0 mantissa bits) and each group's
    stream codes them two at a time (``kernels.grid.pair_symbols``, alphabet
    ``PAIR_ALPHABET``): half the rANS steps (the sphere codec's format 1).
    """
    ncols, n = shape
    perm = np.argsort(ids, kind="stable").astype(np.int64)
    m = 0 if paired else MANTISSA_BITS
    base = kg.alphabet_size(m)
    alphabet = kg.PAIR_ALPHABET if paired else base
    syms = scratch("grid.syms", ncols * n, np.uint16)
    raw32 = scratch("grid.raw32", kg.raw_words(ncols, n), np.uint32)
    counts = np.zeros((0 if paired else groups, base), dtype=np.int64)
    nraw = symbolize(perm, m, syms, raw32, counts, ids[perm].astype(np.int64))
    out.append(bytes([groups]))
    out.append(_pack_nibbles(ids))
    sizes = np.bincount(ids, minlength=groups)
    start = 0
    for g in range(groups):
        stop = start + int(sizes[g]) * n
        values, group_counts = syms[start:stop], None if paired else counts[g]
        if paired:
            pairs = scratch("grid.pairs", (values.size + 1) // 2, np.uint16)
            group_counts = np.zeros(alphabet, dtype=np.int64)
            kg.pair_symbols(values, pairs, group_counts)
            values = pairs
        buf = out.reserve(entropy.stream_capacity(values.size, alphabet))
        out.advance(entropy.encode_stream_into(values, alphabet, buf, out.pos, counts=group_counts,
                                               wide=True))
        start = stop
    out.advance(write_varint(out.reserve(10), out.pos, nraw))
    out.append(raw32.view(np.uint8)[:nraw])


def decode_columns(payload, pos, codes, paired=False):
    """Inverse of ``encode_columns`` (``write_columns`` with ``paired``): fill ``codes``
    (ncols, n) int64; return the end pos."""
    ncols, n = codes.shape
    if pos + 1 > payload.size:
        raise CorruptBlobError("chunk ends before its column groups")
    groups = int(payload[pos])
    pos += 1
    nbytes = (ncols + 1) // 2
    if not 1 <= groups <= MAX_GROUPS or groups > max(ncols, 1):
        raise CorruptBlobError(f"{groups} column groups")
    if pos + nbytes > payload.size:
        raise CorruptBlobError("chunk ends inside its column groups")
    packed = payload[pos:pos + nbytes]
    pos += nbytes
    ids = np.empty(2 * nbytes, dtype=np.uint8)
    ids[0::2] = packed & 0xF
    ids[1::2] = packed >> 4
    if ncols & 1 and ids[-1]:
        raise CorruptBlobError("padding of the column groups is not zero")
    ids = ids[:ncols]
    if ids.size and int(ids.max()) >= groups:
        raise CorruptBlobError("column group id out of range")
    perm = np.argsort(ids, kind="stable").astype(np.int64)
    counts = np.bincount(ids, minlength=groups)
    syms = scratch("grid.syms", ncols * n, np.uint16)
    m = 0 if paired else MANTISSA_BITS
    base = kg.alphabet_size(m)
    start = 0
    for g in range(groups):
        stop = start + int(counts[g]) * n
        if paired:
            pairs = scratch("grid.pairs", (stop - start + 1) // 2, np.uint16)
            pos = entropy.decode_stream(payload, pos, kg.PAIR_ALPHABET, pairs)
            if kg.unpair_symbols(pairs, base, syms[start:stop]) != kg.STATUS_OK:
                raise CorruptBlobError("invalid symbol pair")
        else:
            pos = entropy.decode_stream(payload, pos, base, syms[start:stop])
        start = stop
    nraw, pos = read_varint(payload, pos, payload.size)
    if pos < 0 or pos + nraw > payload.size:
        raise CorruptBlobError("raw section runs past the end of the chunk")
    raw32 = scratch("grid.raw32", (nraw + 3) // 4 + 2, np.uint32)  # two zero words of padding
    raw32.view(np.uint8)[:nraw] = payload[pos:pos + nraw]
    raw32.view(np.uint8)[nraw:] = 0
    used = aot.checked("desymbolize", kg.desymbolize)(syms, perm, m, raw32, codes)
    if (used + 7) // 8 != nraw:
        raise CorruptBlobError(f"raw section of {nraw} bytes does not match its {used} bits")
    return pos + nraw


def encode_exceptions(x, xhat, max_abs_error, out):
    """Append the exception list of ``xhat`` against ``x`` (flat float32 arrays) to ``out``."""
    index = np.empty(x.size, dtype=np.int64)
    delta = np.empty(x.size, dtype=np.uint32)
    count = kg.find_exceptions(x, xhat, max_abs_error, index, delta)
    write_exceptions(index[:count], delta[:count], out)
    return count


def write_exceptions(index, delta, out):
    """Append an exception list (sorted flat ``index``, uint32 ``delta``) to ``out``."""
    buf = out.reserve(10 + 16 * index.size)
    out.advance(kg.write_exceptions(index, delta, index.size, buf, out.pos))


def decode_exceptions(payload, pos, out_flat):
    """Patch ``out_flat`` with the exceptions at ``payload[pos:]``; return the end pos."""
    end = aot.checked("apply_exceptions", kg.apply_exceptions)(payload, pos, out_flat)
    if end < 0:
        raise CorruptBlobError("malformed exception list")
    return end
