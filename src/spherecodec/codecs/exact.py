"""The bit-exact codec: sign + exponent + top mantissa bits entropy-coded, low bits raw."""

import threading
from dataclasses import dataclass

import numpy as np

from .. import aot, entropy
from ..errors import CorruptBlobError, UnsupportedError
from ..kernels import rans as _rans
from ..kernels import rans_blob as _blob
from ..kernels import rans_simd as _rans32
from ..kernels import shape as _shape
from ..kernels.bits import merge_low_bits_shifted, raw_size
from ..kernels.rans_core import FLOAT32_ALPHABET, FLOAT32_RAW_BITS, read_varint, varint_size, write_varint
from ..scratch import ALIGNED_FROM, recycle, scratch, take_buffer
from .base import NO_STATE, Codec
from .exact_models import MAX_LEVEL, Model
from .registry import register_codec
from .sphere import decode_residual_chunk, encode_residual_chunk

# per dtype: unsigned view type, bits in sign + exponent, default top mantissa bits in symbol
_LAYOUT = {
    "float32": (np.uint32, 9, 3),
    "float64": (np.uint64, 12, 3),
    "float16": (np.uint16, 6, 3),
    "bfloat16": (np.uint16, 9, 3),
}
# symbols index 2**15 entries at most so that the rANS tables can hold every one
MAX_SYMBOL_BITS = 15
MODE_CODED = 0
MODE_STORED = 1
MODE_MODELLED = 2  # levels >= 2: context-modelled chunk (codecs/exact_models.py)
MODE_SPHERICAL = 3  # transform="spherical"/"auto": angles + exact residual (codecs/sphere.py)
MODE_TRAILING = 4  # u8 t, then as mode 0 without the t low bits every value has zero
MODE_SPARSE = 5  # varint nonzero count, mask stream, then the nonzero values as a chunk (modes 0, 1, 4)
MODE_CONSTANT = 6  # one value (little endian) that every value of the chunk repeats
#: decoded bytes per byte of a chunk in modes 4-6 and its index entry, at most: a constant
#: chunk's value stands for at most this many bytes, so that a forged header still cannot
#: make decode allocate at will (docs/format.md; a sparse chunk's mask costs at least
#: 0.0007 bit per value, a trailing chunk's symbols 0.0056 bit: both stay below it)
DENSE_EXPANSION = float(1 << 17)
#: the index entry (u64 length, u64 checksum) each chunk costs in the blob
_INDEX_ENTRY_BYTES = 16
#: a chunk with at least this share of zero values is coded sparse without measuring the
#: plain coding: each zero saves its >= 20 raw bits (float32; 4 for bfloat16) and the mask
#: costs at most ~1 bit per value, so from 1/16 on (1/4 for 16-bit values) sparse is smaller
_SPARSE_SURE = {2: 4, 4: 16, 8: 16}
#: from this share of zeros on (and below the sure share) both codings are made, the smaller kept
_SPARSE_TRY = 128
#: values sampled before a chunk of at least _PROBE_MIN values is scanned: at 1/128 zeros
#: the sample shows ~16 of them (missing all: p < 1e-7, which costs ratio, never bits)
_PROBE_SAMPLES = 2048
_PROBE_MIN = 16 * _PROBE_SAMPLES
TRANSFORMS = ("none", "spherical", "auto")
#: float32 arrays of fewer values than this (128 KiB: one chunk) take the one-call
#: small-blob path (``encode_small_blob``) with the default exact codec; from 8 x 4,096
#: values on, the pipeline's own overhead is small beside the coding
SMALL_BLOB_VALUES = 1 << 15


@dataclass(frozen=True)
class ExactState:
    """The exact codec's state at levels >= 2: the fitted model (``exact_models.Model``).

    Without a model (level 1, or no model paid on the array) the state is ``NO_STATE``.
    """

    model: Model


@register_codec
class ExactCodec(Codec):
    """Lossless: every bit comes back (NaN payloads, infinities, signed zeros, subnormals).

    Each chunk is ``u8 mode`` then, when coded, the raw low bits of every value
    (``kernels.bits`` layout) and one entropy stream of the high symbols; a chunk that
    would not shrink is stored verbatim (mode 1, little endian).

    Parameters
    ----------
    mantissa_bits : int or None
        Top mantissa bits coded with the sign and exponent as one rANS symbol (default 3,
        measured best on real embeddings); the remaining low bits are stored raw.
    entropy : {"numba", "constriction"}
        Entropy coder backend. Both write the same container and decode alike.
    level : int
        1 (default): one frequency table per chunk, fastest. 2 to 5: per-blob models that
        code each value's head symbol with a table chosen from a bit-exact linear
        prediction (2: column groups only; 3, 4, 5: predicted from up to 32, 128, all
        earlier coordinates), slower as they go; float32 only. See docs/exact-levels.md.
    transform : {None, "none", "spherical", "auto"}
        float32 rows of 2 or more values: "spherical" codes sphere-codec angles plus the
        exact residual to the original bits; "auto" keeps per chunk the smaller of that and
        the plain coding. None/"none" (default): plain. See docs/sphere.md.
    """

    name = "exact"
    dtypes = tuple(_LAYOUT)
    max_expansion = 16.0  # modes 0-3: >= 1 raw bit per value of <= 16 bits, or stored verbatim
    dense_chunk_modes = (MODE_TRAILING, MODE_SPARSE, MODE_CONSTANT)

    def __init__(self, *, mantissa_bits=None, entropy="numba", level=1, transform=None):
        if transform is not None and transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {TRANSFORMS} or None, not {transform!r}")
        self.transform = "none" if transform is None else transform
        if not isinstance(level, (int, np.integer)) or isinstance(level, bool) or not 1 <= level <= MAX_LEVEL:
            raise ValueError(f"level must be an integer from 1 to {MAX_LEVEL}, not {level!r}")
        if level > 1 and mantissa_bits not in (None, 3):
            raise ValueError("mantissa_bits applies to level 1 only (levels >= 2 use 3)")
        self.level = int(level)
        if entropy not in entropy_backends():
            raise ValueError(f"entropy must be 'numba' or 'constriction', not {entropy!r}")
        if mantissa_bits is not None:
            if not isinstance(mantissa_bits, (int, np.integer)) or isinstance(mantissa_bits, bool):
                raise ValueError("mantissa_bits must be an integer")
            if not 0 <= mantissa_bits <= 6:
                raise ValueError("mantissa_bits must be between 0 and 6")
            mantissa_bits = int(mantissa_bits)
        self.mantissa_bits = mantissa_bits
        self.entropy = entropy

    def get_config(self):
        config = {"mantissa_bits": self.mantissa_bits, "entropy": self.entropy}
        if self.level != 1:  # absent at level 1, so level-1 blobs keep their bytes
            config["level"] = self.level
        if self.transform != "none":  # absent by default, so plain blobs keep their bytes
            config["transform"] = self.transform
        return config

    def _layout(self, dtype):
        utype, head_bits, default_m = _LAYOUT[np.dtype(dtype).name]
        m = default_m if self.mantissa_bits is None else self.mantissa_bits
        symbol_bits = head_bits + m
        if symbol_bits > MAX_SYMBOL_BITS:
            raise UnsupportedError(
                f"mantissa_bits={m} makes {symbol_bits}-bit symbols for {np.dtype(dtype).name}; "
                f"at most {MAX_SYMBOL_BITS - head_bits} fit")
        raw_bits = np.dtype(utype).itemsize * 8 - symbol_bits
        return utype, symbol_bits, raw_bits

    def chunk_expansion(self, mode, state):
        return DENSE_EXPANSION if mode in self.dense_chunk_modes else self.max_expansion

    def check_dtype(self, dtype):
        super().check_dtype(dtype)
        self._layout(dtype)
        if self.level > 1 and np.dtype(dtype) != np.float32:
            raise UnsupportedError(f"exact level {self.level} codes float32 only; use level=1 for "
                                   f"{np.dtype(dtype).name}")

    def prepare(self, rows):
        if self.level > 1:
            model = Model.fit(rows, self.level)
            if model is not None:
                return ExactState(model)
        return NO_STATE

    def shared_bytes(self, state):
        if self.level == 1 or state is NO_STATE:
            return b""
        # no side effect: the pipeline asks before and after the chunks are coded
        return state.model.to_bytes()

    def load_shared(self, data, dtype, dim):
        if self.level == 1 or not data.size:
            return super().load_shared(data, dtype, dim)
        return ExactState(Model.from_bytes(data, self.level, dim))

    def encode_chunk(self, rows, state):
        if self.transform != "none" and rows.dtype == np.float32 and rows.shape[1] >= 2:
            return self._encode_chunk_spherical(rows, state)
        return self._encode_chunk_plain(rows, state)

    def _encode_chunk_spherical(self, rows, state):
        """The sphere codes plus the exact residual (``sphere.encode_residual_chunk``);
        with ``transform="auto"`` the smaller of that and the plain chunk."""
        payload = encode_residual_chunk(rows, MODE_SPHERICAL)
        # the exact codec promises at most max_expansion decoded bytes per blob byte, and
        # never more than 1 + nbytes per chunk: beyond either, the plain chunk is taken
        fits = self.max_expansion * payload.size >= rows.nbytes and payload.size <= 1 + rows.nbytes
        if self.transform == "auto" or not fits:
            plain = self._encode_chunk_plain(rows, state)
            if len(plain) <= payload.size or not fits:
                recycle([payload])
                return plain
            recycle([plain])
        return payload

    def _encode_chunk_plain(self, rows, state):
        utype, symbol_bits, raw_bits = self._layout(rows.dtype)
        layout = (symbol_bits, raw_bits, rows.dtype.name)
        values = rows.reshape(-1).view(utype)
        # long chunks are sampled first: plain embeddings (a low bit set, no zero, no repeat)
        # skip the full scan
        looks_plain = False
        if values.size >= _PROBE_MIN:
            or_bits, zeros, constant = aot.checked("probe", _shape.probe)(values, values.size // _PROBE_SAMPLES)
            looks_plain = or_bits & 1 and zeros == 0 and not constant
        if not looks_plain:
            or_bits, zeros, constant = _shape.scan(values)
        constant_fits = values.nbytes <= DENSE_EXPANSION * (_INDEX_ENTRY_BYTES + 1 + values.itemsize)
        if constant and values.size > 1 and constant_fits:
            out = take_buffer(1 + values.itemsize)[:1 + values.itemsize]
            out[0] = MODE_CONSTANT
            out[1:] = values[:1].astype(values.dtype.newbyteorder("<")).view(np.uint8)
            return out
        if zeros and zeros * _SPARSE_TRY >= values.size:
            sparse = self._encode_sparse(values, zeros, layout, or_bits)
            if zeros * _SPARSE_SURE[values.itemsize] >= values.size:
                return sparse
            plain = self._encode_values(values, layout, or_bits)
            if len(plain) < len(sparse):
                recycle([sparse])
                return plain
            recycle([plain])
            return sparse
        if or_bits & 1 == 0 and values.size:
            return self._encode_values(values, layout, or_bits)
        if state is not NO_STATE and rows.dtype == np.float32:
            payload = state.model.encode_chunk(rows, MODE_MODELLED)
            if payload is not None and payload.size <= 1 + rows.nbytes:
                return payload
        return self._encode_values(values, layout, 1)

    def _encode_values(self, values, layout, or_bits):
        """Mode 0 (or 4 when the values' low ``t`` bits are all zero: ``or_bits``, the OR of
        every value, has ``t`` trailing zeros), stored (mode 1) if that would not shrink.
        ``layout``: (symbol bits, raw bits, dtype name)."""
        symbol_bits, raw_bits, dtype_name = layout
        t = aot.kernel("trailing_zeros", _shape.trailing_zeros)(np.uint64(or_bits), raw_bits) if values.size else 0
        alphabet = 1 << symbol_bits
        nraw = aot.kernel("raw_size", raw_size)(values.size, raw_bits - t)
        head = 2 if t else 1
        out = take_buffer(head + nraw + entropy.stream_capacity(values.size, alphabet))
        coded = values
        if t:
            out[0], out[1] = MODE_TRAILING, t
            coded = take_buffer(values.nbytes)[:values.nbytes].view(values.dtype)
            _shape.shift_right(values, t, coded)
        else:
            out[0] = MODE_CODED
        # long streams take the wide layouts, which decode 2-3x faster (float32 values at
        # the default split also fuse their raw bits into the decoder's pass); float32 at
        # other splits and float64 keep the 8-lane layout they were first written with
        if t or dtype_name in ("bfloat16", "float16"):
            wide = values.dtype != np.uint64
        else:
            wide = raw_bits == FLOAT32_RAW_BITS and values.dtype == np.uint32
        try:
            end = entropy.encode_stream_into(coded, alphabet, out, head, shift=raw_bits - t,
                                             backend=self.entropy, wide=wide, raw_bits=True, short_tables=True)
        finally:
            if t:
                recycle([coded.view(np.uint8)])
        if end > 1 + values.nbytes:
            out[0] = MODE_STORED
            out[1:1 + values.nbytes] = values.astype(values.dtype.newbyteorder("<"), copy=False).view(np.uint8)
            end = 1 + values.nbytes
        return out[:end]

    def _encode_sparse(self, values, zeros, layout, or_bits):
        """Mode 5: the mask of nonzero values (one rANS stream of its bytes), then the
        nonzero values coded as a chunk of their own (``or_bits``: the chunk's OR, which is
        theirs too: zeros add no bits)."""
        n = values.size
        mask = take_buffer((n + 7) // 8)[:(n + 7) // 8]
        nonzero = take_buffer((n - zeros) * values.itemsize)[:(n - zeros) * values.itemsize].view(values.dtype)
        try:
            count = _shape.split_nonzero(values, mask, nonzero)
            inner = self._encode_values(nonzero, layout, or_bits)
            head = 1 + varint_size(count)
            out = take_buffer(head + entropy.stream_capacity(mask.size, 256) + inner.size)
            out[0] = MODE_SPARSE
            write_varint(out, 1, count)
            end = entropy.encode_stream_into(mask, 256, out, head, backend=self.entropy, wide=True)
            out[end:end + inner.size] = inner
            recycle([inner])
        finally:
            recycle([mask, nonzero.view(np.uint8)])
        return out[:end + inner.size]

    def decode_chunk(self, payload, out, state):
        utype, symbol_bits, raw_bits = self._layout(out.dtype)
        values = out.reshape(-1).view(utype)
        if payload.size < 1:
            raise CorruptBlobError("empty chunk")
        mode = int(payload[0])
        if mode == MODE_SPHERICAL and self.transform != "none":
            return decode_residual_chunk(payload, out)
        if mode == MODE_MODELLED and self.level > 1:
            if state is NO_STATE:
                raise CorruptBlobError("context-modelled chunk in a blob without a model")
            return state.model.decode_chunk(payload, out)
        if mode == MODE_CONSTANT:
            if payload.size != 1 + values.itemsize:
                raise CorruptBlobError(f"constant chunk holds {payload.size - 1} bytes, {values.itemsize} expected")
            if values.nbytes > DENSE_EXPANSION * (_INDEX_ENTRY_BYTES + payload.size):
                raise CorruptBlobError(f"constant chunk stands for {values.nbytes} bytes, more than a chunk may")
            values[:] = payload[1:].view(np.dtype(utype).newbyteorder("<"))[0]
            return
        if mode == MODE_SPARSE:
            return self._decode_sparse(payload, values, symbol_bits, raw_bits)
        end = self._decode_values(payload, 0, values, symbol_bits, raw_bits)
        if end != payload.size:
            raise CorruptBlobError(f"{payload.size - end} unexpected bytes after the chunk's stream")

    def _decode_values(self, payload, pos, values, symbol_bits, raw_bits):
        """Decode what ``_encode_values`` wrote at ``payload[pos:]`` into ``values``; return
        the end position."""
        if pos >= payload.size:
            raise CorruptBlobError("chunk ends before its mode byte")
        mode = int(payload[pos])
        if mode == MODE_STORED:
            if payload.size - pos - 1 < values.nbytes:
                raise CorruptBlobError(f"stored values hold {payload.size - pos - 1} bytes, {values.nbytes} expected")
            values[:] = payload[pos + 1:pos + 1 + values.nbytes].view(values.dtype.newbyteorder("<"))
            return pos + 1 + values.nbytes
        t = 0
        pos += 1
        if mode == MODE_TRAILING:
            if pos >= payload.size:
                raise CorruptBlobError("chunk ends before its count of zero low bits")
            t = int(payload[pos])
            pos += 1
            if not 1 <= t <= raw_bits:
                raise CorruptBlobError(f"{t} zero low bits announced; values of this dtype have {raw_bits} raw bits")
        elif mode != MODE_CODED:
            raise CorruptBlobError(f"unknown chunk mode {mode}")
        low = raw_bits - t
        nraw = aot.kernel("raw_size", raw_size)(values.size, low)
        if payload.size < pos + nraw:
            raise CorruptBlobError(f"chunk holds {payload.size} bytes, its raw bits alone need {nraw}")
        raw = payload[pos:pos + nraw]
        # the decoder merges the common raw widths in its own pass: float32's 20 bits, and 4
        # bits (bfloat16; float32 that was bfloat16) with the zero bits' shift
        fuse = low == FLOAT32_RAW_BITS and values.dtype == np.uint32
        nibbles = low == 4 and values.dtype != np.uint64
        end = entropy.decode_stream(payload, pos + nraw, 1 << symbol_bits, values, raw20=raw if fuse else None,
                                    raw4=raw if nibbles else None, shift=t)
        if not (fuse or nibbles) and (low or t):
            merge = aot.checked(f"merge_low_bits_shifted_{values.dtype.name}", merge_low_bits_shifted)
            merge(values, raw, low, t)
        return end

    def _decode_sparse(self, payload, values, symbol_bits, raw_bits):
        count, pos = read_varint(payload, 1, values.size)
        if pos < 0:
            raise CorruptBlobError(f"sparse chunk's count of nonzero values is cut short or exceeds its "
                                   f"{values.size} values")
        mask = take_buffer((values.size + 7) // 8)[:(values.size + 7) // 8]
        nonzero = take_buffer(count * values.itemsize)[:count * values.itemsize].view(values.dtype)
        try:
            pos = entropy.decode_stream(payload, pos, 256, mask)
            if _shape.mask_count(mask, values.size) != count:
                raise CorruptBlobError("sparse chunk's mask does not hold its count of nonzero values")
            end = self._decode_values(payload, pos, nonzero, symbol_bits, raw_bits)
            if end != payload.size:
                raise CorruptBlobError(f"{payload.size - end} unexpected bytes after the chunk's stream")
            _shape.scatter_nonzero(mask, nonzero, values)
        finally:
            recycle([mask, nonzero.view(np.uint8)])


def entropy_backends():
    """Names of the entropy coder backends."""
    return tuple(entropy.BACKENDS)


# -- small blobs in one call -------------------------------------------------------------------

#: the calling thread's buffer the small-blob kernel writes into (``buffer``, grown to the
#: largest blob asked for: under ~170 KB), copied out as the blob: a fresh one per call cost
#: ~2 us of a 32-row encode when the caches are cold. Not ``scratch.scratch``: its
#: bookkeeping (name and dtype keys, a slice and reshape) cost another 1.6-1.8 us there
_SMALL_OUT = threading.local()


def small_blob_plan(n):
    """What ``encode_small_blob`` needs to know of ``n`` values, worked out once per size:
    (the blob kernel of the stream layout, ``kernels.rans_blob``; least table precision;
    encode scratch bytes; bytes after the header prefix that coding may touch)."""
    min_precision, wide = entropy.short_stream_layout(n, True)
    if wide:
        kind = _rans32.VECTOR_ENCODE
        kernel = aot.kernel(aot.export_name("encode_blob_32", kind), _blob.blob_encoder_32(kind))
        scratch_bytes = _rans32.encode_scratch_size(n, _rans32.groups_for(n))
    else:
        kernel, scratch_bytes = aot.kernel("encode_blob_8", _blob.encode_blob_8), _rans.encode_scratch_size(n)
    nraw = aot.kernel("raw_size", raw_size)(n, FLOAT32_RAW_BITS)
    return kernel, min_precision, scratch_bytes, 25 + nraw + entropy.stream_capacity(n, FLOAT32_ALPHABET)


def encode_small_blob(values, prefix, plan):
    """The blob the chunk pipeline writes for float32 values (``values``: their bits,
    uint32, 1-D, 1 to ``SMALL_BLOB_VALUES - 1`` of them) with the default exact codec,
    after the header ``prefix`` (uint8: fixed part and metadata, no shared section), in
    one kernel call (``kernels.rans_blob``); ``plan``: ``small_blob_plan(values.size)``.
    None when its chunk would not be plainly coded (mode 0): the pipeline then writes it."""
    kernel, min_precision, scratch_bytes, tail = plan
    size = prefix.size + tail
    out = getattr(_SMALL_OUT, "buffer", None)
    if out is None or out.size < size:
        out = _SMALL_OUT.buffer = np.empty(size, dtype=np.uint8)
    end = kernel(values, prefix, out, scratch_bytes, min_precision, _SPARSE_TRY)
    return None if end < 0 else out[:end].tobytes()


def decode_small_blob(blob, index_at, out):
    """Decode a one-chunk blob of the default exact codec (``blob``: uint8, its chunk
    index entry at ``index_at``) into ``out`` (the float32 values' bits, uint32, 1-D) in
    one kernel call; False when the kernel does not take it (a chunk in another mode) or
    finds it damaged: the general decoder then decodes it or says what is wrong."""
    at = _blob.stream_backend_at(index_at, out.size)
    if at >= blob.size:
        return False
    backend = blob[at]  # picks the kernel only: the kernel checks everything
    if backend == entropy.BACKEND_NUMBA:
        status = aot.kernel("decode_blob_8", _blob.decode_blob_8)(blob, index_at, out)
    elif backend == entropy.BACKEND_NUMBA32:
        vector = _rans32.VECTOR
        kernel = aot.kernel(aot.export_name("decode_blob_32", vector),
                            _blob.decode_blob_32 if vector else _blob.decode_blob_32_scalar)
        status = kernel(blob, index_at, out)
    else:
        return False
    return status == _blob.STATUS_DONE


# -- the chunks of a larger blob in one call ---------------------------------------------------

_FLOAT32 = np.dtype(np.float32)
#: the largest table precision ``decode_coded_chunks`` takes: float32 head symbols get 14
#: bits at most (``kernels.rans.choose_precision``: 2 slots a symbol of 4096 fit), and
#: scratch for 15 would take 4 MiB (``scratch``'s huge-page rounding past 256 KiB)
ONE_CALL_PRECISION = 14
#: decoded sizes from which ``decode_coded_chunks`` streams its stores past the caches
#: (``streaming``), into outputs that start 64-byte aligned (``scratch.reusable_array``'s
#: from ``scratch.ALIGNED_FROM`` on): plain stores read every line before writing it,
#: which costs more than it saves once the output outgrows the caches (measured, decode
#: then sum: 4 MB 25% slower streamed, 18 MB 1-6% faster, 61 MB 7-9% faster and
#: threads=2 11-13%; decode alone, 18 and 25 MB: 2-5% faster)
STREAMING_FROM = ALIGNED_FROM


def decodes_in_one_call(codec, dtype):
    """Whether ``decode_coded_chunks`` takes the chunks of a blob of ``codec`` and ``dtype``:
    float32 with the exact codec at level 1, untransformed, 20 raw low bits (the default)."""
    return (isinstance(codec, ExactCodec) and codec.level == 1 and codec.transform == "none"
            and np.dtype(dtype) == _FLOAT32 and codec._layout(dtype)[2] == FLOAT32_RAW_BITS)


def decode_coded_chunks(blob, offsets, checksums, first, stop, chunk_values, out, *, verify=True, streaming=False):
    """Decode chunks ``first .. stop - 1`` of a blob that ``decodes_in_one_call`` takes
    (``blob``: uint8; chunk ``i`` is ``blob[offsets[i]:offsets[i + 1]]``, its XXH64
    ``checksums[i]``, checked unless ``verify`` is False) into ``out`` (their float32
    values' bits, uint32, 1-D, ``chunk_values`` per chunk from chunk ``first`` on) in one
    kernel call (``kernels.rans_blob.chunks_decoder``). Returns the index of the first
    chunk not decoded (``stop`` when all were): damaged, or coded in another mode, for the
    general decoder to decode or explain. ``streaming``: store past the caches (for a
    decoded size of ``STREAMING_FROM`` or more)."""
    vector = _rans32.VECTOR
    kernel = aot.kernel(aot.export_name("decode_chunks", vector), _blob.chunks_decoder(vector))
    slots = 1 << ONE_CALL_PRECISION
    if blob.flags.writeable:  # one array type: a blob of bytearray would compile the kernel again
        blob = blob.view()
        blob.flags.writeable = False
    return kernel(blob, offsets, checksums, first, stop, verify, streaming, chunk_values, out,
                  scratch("rans.vector_table", _rans32.table_size(ONE_CALL_PRECISION), np.uint64),
                  scratch("rans.slot_table", slots, np.uint32), scratch("rans.slot_symbol", slots, np.uint16),
                  scratch("rans.symbols", FLOAT32_ALPHABET, np.int64), scratch("rans.freqs", FLOAT32_ALPHABET, np.int64))
