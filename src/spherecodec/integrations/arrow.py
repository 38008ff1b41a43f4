"""Arrow vector columns and Parquet files with spherecodec-compressed embeddings.

Embeddings usually sit in a Parquet file beside ids and text, as a ``list<float32>`` or
``fixed_size_list<float32, d>`` column. This module swaps such a column for a compressed
one and back, and reads and writes whole Parquet files (or directories of them) that way::

    from spherecodec import arrow as sca

    sca.write_parquet(table, "docs.parquet", vectors={"embedding": "exact"})
    table = sca.read_parquet("docs.parquet")                  # original types, same bits
    part = sca.read_parquet("docs.parquet", rows=(1000, 2000))  # only the row groups needed

In memory: ``encode_array`` / ``decode_array`` (and ``encode_table`` / ``decode_table``)
turn a vector column into a :class:`VectorType` extension array and back.

Layout of an encoded column (``VectorType``, extension name ``"spherecodec.vectors"``,
storage ``large_binary``), one *segment* per record batch / Parquet row group:

* the column keeps one slot per row, so it sits in a table beside the other columns;
* a missing vector (a null row) is a null storage slot: the storage's own validity bitmap
  is the column's, so nulls survive and cost one bit;
* the non-null vectors of a segment, in row order, are one spherecodec blob stored in the
  segment's first non-null slot (its *head*); every other non-null slot is empty (b"");
* so the vector of a non-null row is row ``k`` of the blob at the nearest non-empty
  non-null slot at or before it, ``k`` counting the non-null slots from that head.

Zero-copy slices of an encoded array decode (the head before the slice is found in the
array's buffers, and only the blob chunks holding the slice are decoded); a chunked array
decodes across chunk boundaries. What cannot decode is an array whose heads were dropped
(a filter or ``take`` of the encoded column): decode first, then filter.

The type's metadata (JSON) records the codec, its parameters and the original Arrow type
(list kind, value type, dimension, item field). In a Parquet file the column is a plain
binary column to any reader; the file's key-value metadata (key ``"spherecodec"``) names
the codec, the original type and how to read it.
"""

import contextlib
import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import spherecodec
from spherecodec import CorruptBlobError, SpherecodecError, UnsupportedError
from spherecodec.atomic import atomic_path

__all__ = [
    "compress_parquet",
    "decompress_parquet",
    "vector_columns",
    "VectorType",
    "VectorArray",
    "EXTENSION_NAME",
    "METADATA_KEY",
    "ParquetReadError",
    "encode_array",
    "decode_array",
    "encode_table",
    "decode_table",
    "write_parquet",
    "read_parquet",
    "iter_parquet",
    "parquet_info",
]

EXTENSION_NAME = "spherecodec.vectors"
#: key of the file-level (schema) key-value metadata that describes the encoded columns
METADATA_KEY = "spherecodec"
#: version of the column layout described in the module docstring
LAYOUT = "blob-per-batch-1"
READ_WITH = "pip install spherecodec; spherecodec.arrow.read_parquet(path)"
#: raw vector bytes per row group when ``row_group_rows`` is not given
ROW_GROUP_BYTES = 64 << 20

_LIST_KINDS = {"list": pa.list_, "large_list": pa.large_list}
_VALUE_TYPES = {"halffloat": pa.float16(), "float": pa.float32(), "double": pa.float64()}


class ParquetReadError(SpherecodecError):
    """A file given to read_parquet is missing, not Parquet, truncated or damaged."""


# ---------------------------------------------------------------------------------------
# The extension type


def _describe_type(arrow_type, column):
    """The JSON description of a vector column's Arrow type; refuses what is not vectors."""
    if pa.types.is_fixed_size_list(arrow_type):
        kind, dim = "fixed_size_list", arrow_type.list_size
        if dim == 0:
            raise ValueError(f"column {column!r} holds empty vectors ({arrow_type})")
    elif pa.types.is_list(arrow_type):
        kind, dim = "list", None
    elif pa.types.is_large_list(arrow_type):
        kind, dim = "large_list", None
    else:
        raise ValueError(f"column {column!r} has type {arrow_type}, not a list of floats "
                         "(fixed_size_list, list or large_list of float16/float32/float64)")
    field = arrow_type.value_field
    if str(field.type) not in _VALUE_TYPES:
        raise ValueError(f"column {column!r} holds {field.type} values; vectors must be "
                         "float16, float32 or float64")
    return {"kind": kind, "value_type": str(field.type), "dim": dim,
            "item_name": field.name, "item_nullable": field.nullable}


def _original_type(desc):
    """The Arrow type a description (from ``_describe_type``) stands for."""
    field = pa.field(desc["item_name"], _VALUE_TYPES[desc["value_type"]], nullable=desc["item_nullable"])
    if desc["kind"] == "fixed_size_list":
        return pa.list_(field, desc["dim"])
    return _LIST_KINDS[desc["kind"]](field)


def _check_metadata(meta):
    """Validate a VectorType metadata dict read from a file or an IPC stream."""
    try:
        desc = meta["arrow_type"]
        ok = (meta["layout"] == LAYOUT and isinstance(meta["codec"], str) and isinstance(meta["params"], dict)
              and desc["kind"] in ("fixed_size_list", "list", "large_list")
              and desc["value_type"] in _VALUE_TYPES and isinstance(desc["item_name"], str)
              and isinstance(desc["item_nullable"], bool)
              and (desc["dim"] is None or (isinstance(desc["dim"], int) and desc["dim"] > 0))
              and (desc["kind"] != "fixed_size_list" or desc["dim"] is not None))
    except (KeyError, TypeError):
        ok = False
    if not ok:
        if isinstance(meta, dict) and meta.get("layout") not in (None, LAYOUT):
            raise UnsupportedError(f"spherecodec column layout {meta.get('layout')!r} is not supported "
                                   f"(this build reads {LAYOUT!r})")
        raise CorruptBlobError(f"invalid spherecodec column metadata: {meta!r}"[:300])
    return meta


class VectorType(pa.ExtensionType):
    """Arrow extension type of a spherecodec-compressed vector column.

    Storage is ``large_binary``: per segment (record batch / row group), the non-null
    vectors as one blob in the first non-null slot, empty slots after it, nulls as nulls.
    ``codec``, ``params`` and ``arrow_type`` (the type the column decodes to) are the
    type's parameters, serialised as JSON; ``dim`` is the vector length of a list column
    (a fixed_size_list's own; None when no vector was seen yet).
    """

    def __init__(self, codec, params, arrow_type, dim=None):
        desc = _describe_type(arrow_type, "?")
        if desc["dim"] is None:
            desc["dim"] = dim
        self._meta = _check_metadata({"layout": LAYOUT, "codec": codec, "params": dict(params),
                                      "arrow_type": desc})
        super().__init__(pa.large_binary(), EXTENSION_NAME)

    @property
    def codec(self):
        """Name of the spherecodec codec the column was written with."""
        return self._meta["codec"]

    @property
    def params(self):
        """That codec's parameters as given to the writer."""
        return dict(self._meta["params"])

    @property
    def arrow_type(self):
        """The Arrow type the column decodes to."""
        return _original_type(self._meta["arrow_type"])

    def __arrow_ext_serialize__(self):
        return json.dumps(self._meta, sort_keys=True).encode()

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type, serialized):
        if not (pa.types.is_large_binary(storage_type) or pa.types.is_binary(storage_type)):
            raise CorruptBlobError(f"{EXTENSION_NAME} storage must be binary, not {storage_type}")
        try:
            meta = _check_metadata(json.loads(bytes(serialized)))
        except (ValueError, UnicodeDecodeError) as e:
            if isinstance(e, SpherecodecError):
                raise
            raise CorruptBlobError(f"invalid {EXTENSION_NAME} metadata: {e}") from None
        desc = meta["arrow_type"]
        return cls(meta["codec"], meta["params"], _original_type(desc), desc["dim"])

    def __arrow_ext_class__(self):
        return VectorArray

    def __reduce__(self):
        return VectorType, (self.codec, self.params, self.arrow_type, self._meta["arrow_type"]["dim"])


class VectorArray(pa.ExtensionArray):
    """An array of :class:`VectorType`; ``decode()`` gives the original vector array."""

    def decode(self, *, threads=None):
        """The vectors as the array of the original Arrow type (see :func:`decode_array`)."""
        return decode_array(self, threads=threads)


def _register():
    try:
        pa.register_extension_type(VectorType("exact", {}, pa.list_(pa.float32(), 1)))
    except pa.ArrowKeyError:  # already registered (module reloaded)
        pass


_register()


# ---------------------------------------------------------------------------------------
# Encoding one array


def _codec_spec(spec, column):
    """``(codec, params)`` from a codec name, a ``(name, params)`` pair or a dict."""
    if isinstance(spec, str):
        codec, params = spec, {}
    elif isinstance(spec, dict):
        unknown = set(spec) - {"codec", "params"}
        if unknown or "codec" not in spec:
            raise ValueError(f"column {column!r}: a codec dict needs 'codec' and optionally 'params', "
                             f"got keys {sorted(spec)}")
        codec, params = spec["codec"], spec.get("params") or {}
    elif isinstance(spec, (tuple, list)) and len(spec) == 2:
        codec, params = spec
        params = params or {}
    else:
        raise TypeError(f"column {column!r}: codec must be a name, a (name, params) pair or "
                        f"{{'codec': name, 'params': {{...}}}}, not {spec!r}")
    if not isinstance(codec, str):
        raise TypeError(f"column {column!r}: codec must be a codec name, not {type(codec).__name__}")
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise TypeError(f"column {column!r}: codec params must be a dict with string keys")
    try:
        json.dumps(params)
    except (TypeError, ValueError):
        raise TypeError(f"column {column!r}: codec params must be JSON-serialisable "
                        "(they are stored in the column's type)") from None
    own = {k: v for k, v in params.items() if k != "chunk_rows"}
    spherecodec.get_codec(codec)(**own)  # unknown codec / bad parameter errors, before any work
    return codec, dict(params)


def _validity(array):
    """Boolean numpy mask of the non-null slots of an Arrow array."""
    if array.null_count == 0:
        return np.ones(len(array), dtype=bool)
    return array.is_valid().to_numpy(zero_copy_only=False)


def _vectors(array, column, first_row):
    """``(matrix of the non-null vectors, validity mask)`` of a list/fixed_size_list array.

    ``first_row`` is the array's first row in the whole column (for error messages).
    """
    n = len(array)
    valid = _validity(array)
    arrow_type = array.type
    if pa.types.is_fixed_size_list(arrow_type):
        dim = arrow_type.list_size
        child = array.values.slice(array.offset * dim, n * dim)
        offsets = None
    else:
        offsets = array.offsets.to_numpy()  # n + 1 entries, already shifted by the slice
        lengths = np.diff(offsets)
        valid_lengths = lengths[valid]
        if valid_lengths.size == 0:
            return None, valid
        dim = int(valid_lengths[0])
        ragged = np.flatnonzero(valid & (lengths != dim))
        if ragged.size:
            row = int(ragged[0])
            raise ValueError(f"column {column!r} is ragged: row {first_row + row} holds {int(lengths[row])} "
                             f"values, the first vector {dim}; every vector must have the same length")
        child = array.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
        offsets = offsets - offsets[0]
    if dim == 0:
        raise ValueError(f"column {column!r} holds empty vectors")
    if child.null_count:
        raise ValueError(f"column {column!r} has null values inside vectors; only whole vectors may be null")
    values = child.to_numpy(zero_copy_only=False)
    if offsets is None:
        matrix = values.reshape(n, dim)
        return (matrix if valid.all() else matrix[valid]), valid
    starts = offsets[:-1][valid]
    if starts.size and np.array_equal(starts, np.arange(starts.size) * dim):  # packed rows: no gather
        return values[: starts.size * dim].reshape(starts.size, dim), valid
    return values[starts[:, None] + np.arange(dim)], valid


def _bitmap(valid):
    """An Arrow validity buffer for a boolean mask (None when every slot is valid)."""
    if valid.all():
        return None
    return pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())


def _encode_segment(array, ext_type, column, threads, first_row=0):
    """One VectorArray segment (one blob) for a list / fixed_size_list Arrow array."""
    n = len(array)
    matrix, valid = _vectors(array, column, first_row)
    codec, params = ext_type.codec, ext_type.params
    offsets = np.zeros(n + 1, dtype=np.int64)
    data = b""
    if matrix is not None and matrix.shape[0]:
        want = ext_type._meta["arrow_type"]["dim"]
        if want is not None and matrix.shape[1] != want:
            row = first_row + int(np.argmax(valid))
            raise ValueError(f"column {column!r} is ragged: row {row} holds {matrix.shape[1]} values, "
                             f"the first vector {want}; every vector must have the same length")
        data = spherecodec.encode(matrix, codec, threads=threads, **params)
        shape = spherecodec.info(data)["shape"]
        if tuple(shape) != matrix.shape:
            raise ValueError(f"column {column!r}: codec {codec!r} turns vectors of shape {matrix.shape} "
                             f"into {tuple(shape)}; an Arrow column must keep its vectors' length")
        head = int(np.argmax(valid))
        offsets[head + 1:] = len(data)
    storage = pa.Array.from_buffers(pa.large_binary(), n, [_bitmap(valid), pa.py_buffer(offsets.tobytes()),
                                                           pa.py_buffer(data)])
    return pa.ExtensionArray.from_storage(ext_type, storage)


def _first_dim(arrays, column):
    """The vector length of the first non-null vector of some list arrays (None if all null)."""
    for array in arrays:
        if pa.types.is_fixed_size_list(array.type):
            return array.type.list_size
        valid = _validity(array)
        if valid.any():
            offsets = array.offsets.to_numpy()
            row = int(np.argmax(valid))
            dim = int(offsets[row + 1] - offsets[row])
            if dim == 0:
                raise ValueError(f"column {column!r} holds empty vectors")
            return dim
    return None


def encode_array(array, codec="exact", *, params=None, threads=None, name="vectors"):
    """Compress an Arrow vector column into a :class:`VectorType` array.

    ``array`` is a ``FixedSizeListArray``, a ``ListArray``/``LargeListArray`` whose non-null
    rows all have the same length, or a ``ChunkedArray`` of one of them; values float16,
    float32 (or float64 for the exact codec). Each chunk becomes one segment (one blob).
    Null rows stay null. ``name`` only labels error messages. Returns the same kind
    (Array or ChunkedArray). Raises ValueError for ragged rows, null values inside a
    vector, or a non-float column.
    """
    codec, params = _codec_spec((codec, params or {}), name)
    chunked = isinstance(array, pa.ChunkedArray)
    chunks = array.chunks if chunked else [array]
    if not isinstance(array, (pa.Array, pa.ChunkedArray)):
        raise TypeError(f"column {name!r}: expected a pyarrow Array or ChunkedArray, not {type(array).__name__}")
    arrow_type = array.type
    if isinstance(arrow_type, VectorType):
        raise ValueError(f"column {name!r} is already spherecodec-encoded")
    _describe_type(arrow_type, name)
    ext_type = VectorType(codec, params, arrow_type, _first_dim(chunks, name))
    starts = np.cumsum([0] + [len(chunk) for chunk in chunks])
    encoded = [_encode_segment(chunk, ext_type, name, threads, int(start)) for chunk, start in zip(chunks, starts)]
    return pa.chunked_array(encoded, type=ext_type) if chunked else encoded[0]


# ---------------------------------------------------------------------------------------
# Decoding


def _storage_views(storage):
    """``(valid mask, value offsets, data buffer)`` of a (large_)binary array's own rows."""
    n, start = len(storage), storage.offset
    buffers = storage.buffers()
    width = np.int64 if pa.types.is_large_binary(storage.type) else np.int32
    offsets = np.frombuffer(buffers[1], dtype=width)[start:start + n + 1] if n else np.zeros(1, width)
    if buffers[0] is None or storage.null_count == 0:
        valid = np.ones(n, dtype=bool)
    else:
        bits = np.unpackbits(np.frombuffer(buffers[0], dtype=np.uint8), bitorder="little")
        valid = bits[start:start + n].astype(bool)
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    return valid, offsets.astype(np.int64), data


def _prefix_carry(storage):
    """For a zero-copy slice: the head blob before the slice and how many of its rows precede."""
    if storage.offset == 0:
        return None
    whole = pa.Array.from_buffers(storage.type, storage.offset, storage.buffers(), offset=0)
    valid, offsets, data = _storage_views(whole)
    heads = np.flatnonzero(valid & (np.diff(offsets) > 0))
    if heads.size == 0:
        return None
    h = int(heads[-1])
    return data[offsets[h]:offsets[h + 1]], int(valid[h:].sum())


def _blob_rows(blob, start, stop, dim, where, threads):
    """Rows [start, stop) of a segment blob, checked against what the column needs."""
    info = spherecodec.info(blob)
    shape = info["shape"]
    # dim is None only for a list column whose first row group had no vector at all
    if len(shape) != 2 or (dim is not None and shape[1] != dim):
        raise CorruptBlobError(f"{where}: blob holds an array of shape {tuple(shape)}, "
                               f"not {dim}-value vectors")
    if stop > shape[0]:
        raise CorruptBlobError(f"{where}: {stop} non-null rows point at a blob of {shape[0]} vectors")
    if start == 0 and stop == shape[0]:
        return spherecodec.decode(blob, threads=threads)
    return spherecodec.decode_rows(blob, start, stop)


def _decode_segment(storage, desc, carry, where, threads):
    """Decoded non-null vectors of one storage array, and the carry for the next chunk."""
    valid, offsets, data = _storage_views(storage)
    dim = desc["dim"]
    rows = np.flatnonzero(valid)
    heads = np.flatnonzero((np.diff(offsets) > 0)[rows])  # positions among the non-null rows
    pieces = []
    first = int(heads[0]) if heads.size else rows.size
    if first:
        if carry is None:
            carry = _prefix_carry(storage)
        if carry is None:
            raise CorruptBlobError(f"{where}: non-null rows before the first blob: the array starts "
                                   "inside a segment whose blob is in an earlier batch (decode the batches "
                                   "together, as one ChunkedArray, or read with spherecodec.arrow.iter_parquet), "
                                   "or the encoded column was filtered or reordered (decode before filtering)")
        blob, done = carry
        pieces.append(_blob_rows(blob, done, done + first, dim, where, threads))
        carry = (blob, done + first)
    for j, h in enumerate(heads):
        end = int(heads[j + 1]) if j + 1 < heads.size else rows.size
        r = rows[h]
        blob = data[offsets[r]:offsets[r + 1]]
        pieces.append(_blob_rows(blob, 0, end - int(h), dim, where, threads))
        carry = (blob, end - int(h))
    if not pieces:
        return None, valid, carry
    matrix = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    return matrix, valid, carry


def _build(desc, matrix, valid):
    """The original-type Arrow array from the non-null vectors and the validity mask."""
    arrow_type = _original_type(desc)
    dtype = _VALUE_TYPES[desc["value_type"]].to_pandas_dtype()
    n = valid.size
    dim = desc["dim"]
    if matrix is None:
        matrix = np.zeros((0, dim or 0), dtype=dtype)
    if matrix.dtype != dtype:  # a lossy codec decoding to another float type
        matrix = matrix.astype(dtype)
    if desc["kind"] == "fixed_size_list":
        if matrix.shape[0] == n:
            full = matrix
        else:  # null rows hold zeros: a fixed_size_list has n * dim child values
            full = np.zeros((n, dim), dtype=dtype)
            full[valid] = matrix
        values = pa.array(full.reshape(-1), type=arrow_type.value_type)
        return pa.Array.from_buffers(arrow_type, n, [_bitmap(valid)], children=[values])
    width = np.int32 if desc["kind"] == "list" else np.int64
    offsets = np.zeros(n + 1, dtype=width)
    np.cumsum(valid * matrix.shape[1], out=offsets[1:])
    values = pa.array(matrix.reshape(-1), type=arrow_type.value_type)
    return pa.Array.from_buffers(arrow_type, n, [_bitmap(valid), pa.py_buffer(offsets.tobytes())],
                                 children=[values])


def _as_chunks(array):
    if isinstance(array, pa.ChunkedArray):
        return array.chunks, True
    return [array], False


def _decode_chunks(chunks, desc, where, threads):
    carry = None
    out = []
    for chunk in chunks:
        storage = chunk.storage if isinstance(chunk, pa.ExtensionArray) else chunk
        matrix, valid, carry = _decode_segment(storage, desc, carry, where, threads)
        out.append(_build(desc, matrix, valid))
    return out


def decode_array(array, *, threads=None, name="vectors"):
    """The original vector array of a :class:`VectorType` array (or ChunkedArray of one).

    Bit-exact for lossless codecs; null rows come back null. A chunked array decodes
    across chunk boundaries. Raises CorruptBlobError for damaged blobs or an encoded array
    whose heads were filtered away.
    """
    if not isinstance(array.type, VectorType):
        raise ValueError(f"column {name!r} has type {array.type}, not {EXTENSION_NAME}")
    chunks, chunked = _as_chunks(array)
    desc = array.type._meta["arrow_type"]
    out = _decode_chunks(chunks, desc, f"column {name!r}", threads)
    if chunked:
        return pa.chunked_array(out, type=_original_type(desc))
    return out[0]


def _vector_specs(schema, vectors):
    """``{column: (codec, params)}`` checked against a schema."""
    if isinstance(vectors, str):
        vectors = [vectors]
    if isinstance(vectors, (list, tuple)):
        vectors = {name: "exact" for name in vectors}
    if not isinstance(vectors, dict) or not vectors:
        raise TypeError("vectors must name at least one column: {'embedding': 'exact', ...}")
    specs = {}
    for column, spec in vectors.items():
        if column not in schema.names:
            raise ValueError(f"no column {column!r} to encode (the table has {schema.names})")
        if schema.get_field_index(column) < 0:
            raise ValueError(f"column name {column!r} appears more than once in the table")
        _describe_type(schema.field(column).type, column)
        specs[column] = _codec_spec(spec, column)
    return specs


def encode_table(table, vectors, *, threads=None):
    """A copy of ``table`` whose ``vectors`` columns are :class:`VectorType` columns.

    ``vectors`` maps column names to a codec name, a ``(name, params)`` pair or
    ``{"codec": name, "params": {...}}`` (a list of names means the exact codec). Other
    columns are untouched; each record batch (table chunk) is one segment.
    """
    specs = _vector_specs(table.schema, vectors)
    columns, fields = list(table.columns), list(table.schema)
    for column, (codec, params) in specs.items():
        i = table.schema.get_field_index(column)
        columns[i] = encode_array(table.column(i), codec, params=params, threads=threads, name=column)
        fields[i] = pa.field(column, columns[i].type, fields[i].nullable, fields[i].metadata)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, table.schema.metadata))


def decode_table(table, *, threads=None):
    """A copy of ``table`` with every :class:`VectorType` column decoded to its original type."""
    columns, fields = list(table.columns), list(table.schema)
    for i, field in enumerate(fields):
        if isinstance(field.type, VectorType):
            columns[i] = decode_array(columns[i], threads=threads, name=field.name)
            fields[i] = pa.field(field.name, columns[i].type, field.nullable, field.metadata)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, table.schema.metadata))


# ---------------------------------------------------------------------------------------
# Parquet


def _encoded_schema(schema, ext_types):
    """The schema of the file: vector fields of their VectorType, METADATA_KEY added."""
    fields = list(schema)
    for column, ext_type in ext_types.items():
        i = schema.get_field_index(column)
        fields[i] = pa.field(column, ext_type, fields[i].nullable, fields[i].metadata)
    metadata = dict(schema.metadata or {})
    metadata[METADATA_KEY.encode()] = _file_metadata(ext_types).encode()
    return pa.schema(fields, metadata)


def _writer_options(schema, specs, compression, parquet_options):
    """``pq.ParquetWriter`` arguments: the caller's for other columns, none for the blobs.

    A blob does not compress further, and dictionaries or statistics of blobs only cost
    time and bytes, so vector columns get none of them whatever the caller asks.
    """
    others = [name for name in schema.names if name not in specs]
    if isinstance(compression, str) or compression is None:
        compression = {name: compression or "none" for name in others}
    options = {"compression": {**compression, **{name: "none" for name in specs}},
               "use_dictionary": others, "write_statistics": others, "write_page_checksum": True}
    parquet_options = dict(parquet_options)
    for key in ("use_dictionary", "write_statistics"):
        given = parquet_options.pop(key, True)
        if given is not True:
            options[key] = [n for n in (given or []) if n not in specs]
    options.update(parquet_options)
    return options


def _file_metadata(ext_types):
    """The JSON stored under METADATA_KEY in the Parquet file's key-value metadata."""
    columns = {}
    for column, ext_type in ext_types.items():
        meta = ext_type._meta
        columns[column] = {"codec": meta["codec"], "params": meta["params"],
                           "arrow_type": str(ext_type.arrow_type), "type": meta["arrow_type"]}
    return json.dumps({"layout": LAYOUT, "spherecodec_version": spherecodec.__version__,
                       "read_with": READ_WITH,
                       "storage": "binary column, per row group: one spherecodec blob of the non-null "
                                  "vectors in the first non-null row, empty values after it, nulls as nulls",
                       "columns": columns}, sort_keys=True)


def _row_group_batches(source, rows):
    """Tables of at most ``rows`` rows (exactly ``rows`` but the last) from a table or batch reader."""
    if isinstance(source, pa.Table):
        for start in range(0, source.num_rows, rows):
            yield source.slice(start, rows)
        return
    pending, count = [], 0
    for batch in source:
        while batch.num_rows:
            take = min(rows - count, batch.num_rows)
            pending.append(batch.slice(0, take))
            count += take
            batch = batch.slice(take)
            if count == rows:
                yield pa.Table.from_batches(pending)
                pending, count = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def _default_row_group_rows(schema, specs):
    """Rows per row group so that each holds about ROW_GROUP_BYTES of raw vectors."""
    widest = 1
    for column in specs:
        arrow_type = schema.field(column).type
        dim = arrow_type.list_size if pa.types.is_fixed_size_list(arrow_type) else 1024
        widest = max(widest, dim * arrow_type.value_type.bit_width // 8)
    return max(1024, min(1 << 20, ROW_GROUP_BYTES // widest))


def write_parquet(table, path, vectors, *, row_group_rows=None, threads=None, compression="zstd",
                  **parquet_options):
    """Write ``table`` to a Parquet file with its ``vectors`` columns spherecodec-compressed.

    ``table`` is a ``pyarrow.Table`` or a ``RecordBatchReader`` (streamed: one row group of
    batches in memory at a time). ``vectors`` maps column names to a codec name, a
    ``(name, params)`` pair or ``{"codec": name, "params": {...}}``; a list of names means
    the exact codec. Each row group of ``row_group_rows`` rows (default: about 64 MiB of
    raw vectors) holds one blob per vector column. Other columns are written by pyarrow
    with ``compression`` and ``**parquet_options`` (``pq.ParquetWriter`` arguments); the
    vector columns are stored uncompressed, without dictionary or statistics. Page CRCs
    are written. The file appears at ``path`` only when complete (written to a temporary
    name in the same directory, then renamed). Returns the number of rows written.
    """
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, (pa.Table, pa.RecordBatchReader)):
        raise TypeError(f"table must be a pyarrow Table or RecordBatchReader, not {type(table).__name__}")
    schema = table.schema
    specs = _vector_specs(schema, vectors)
    if row_group_rows is None:
        row_group_rows = _default_row_group_rows(schema, specs)
    if not isinstance(row_group_rows, (int, np.integer)) or isinstance(row_group_rows, bool) or row_group_rows < 1:
        raise ValueError(f"row_group_rows must be a positive integer, not {row_group_rows!r}")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give a file name (e.g. {path / 'part-0.parquet'})")

    # the schema is written first, and a list column's type records its vector length:
    # take it from the table, or from a stream's first row group; later rows are checked
    groups = _row_group_batches(table, int(row_group_rows))
    first = next(groups, None)
    ext_types = {}
    for column, (codec, params) in specs.items():
        if isinstance(table, pa.Table):
            chunks = table.column(column).chunks
        else:
            chunks = first.column(column).chunks if first is not None else []
        ext_types[column] = VectorType(codec, params, schema.field(column).type, _first_dim(chunks, column))
    out_schema = _encoded_schema(schema, ext_types)
    options = _writer_options(schema, specs, compression, parquet_options)

    rows = 0
    with atomic_path(path, fsync=True) as tmp:
        with pq.ParquetWriter(tmp, out_schema, **options) as writer:
            for piece in itertools.chain([] if first is None else [first], groups):
                columns = list(piece.columns)
                for column in specs:
                    i = schema.get_field_index(column)
                    # one segment (one blob) per row group, whatever the input's chunking
                    vectors = piece.column(i).combine_chunks()
                    columns[i] = _encode_segment(vectors, ext_types[column], column, threads, rows)
                writer.write_table(pa.Table.from_arrays(columns, schema=out_schema),
                                   row_group_size=max(1, piece.num_rows))
                rows += piece.num_rows
    return rows


def _files(path):
    """The Parquet files of a path: the file itself, or a directory's ``*.parquet`` in name order."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.parquet") if p.is_file())
        if not files:
            raise ParquetReadError(f"{path}: directory holds no *.parquet file")
        return files
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    return [path]


def _open(path):
    try:
        return pq.ParquetFile(path, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as e:
        raise ParquetReadError(f"{path}: not a readable Parquet file ({e})") from None


def _our_columns(pf, path):
    """``{column: type description}`` of the spherecodec columns of an open Parquet file."""
    raw = (pf.schema_arrow.metadata or {}).get(METADATA_KEY.encode())
    if raw is None:
        return {}
    try:
        meta = json.loads(raw)
        if meta.get("layout") != LAYOUT:
            raise UnsupportedError(f"{path}: spherecodec layout {meta.get('layout')!r} is not supported "
                                   f"(this build reads {LAYOUT!r})")
        columns = {name: _check_metadata({"layout": LAYOUT, "codec": c["codec"], "params": c["params"],
                                          "arrow_type": c["type"]})["arrow_type"]
                   for name, c in meta["columns"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        if isinstance(e, SpherecodecError):
            raise
        raise ParquetReadError(f"{path}: damaged spherecodec metadata ({e})") from None
    for name in columns:
        if name not in pf.schema_arrow.names:
            raise ParquetReadError(f"{path}: spherecodec metadata names column {name!r}, which the file lacks")
        storage = pf.schema_arrow.field(name).type
        storage = storage.storage_type if isinstance(storage, pa.ExtensionType) else storage
        if not (pa.types.is_large_binary(storage) or pa.types.is_binary(storage)):
            raise ParquetReadError(f"{path}: spherecodec column {name!r} is stored as {storage}, not binary")
    return columns


def _restored_schema(schema, ours):
    fields = []
    for field in schema:
        if field.name in ours:
            field = pa.field(field.name, _original_type(ours[field.name]), field.nullable, field.metadata)
        fields.append(field)
    metadata = {k: v for k, v in (schema.metadata or {}).items() if k != METADATA_KEY.encode()}
    return pa.schema(fields, metadata or None)


def _row_range(rows, total):
    if rows is None:
        return 0, total
    if isinstance(rows, slice):
        if rows.step not in (None, 1):
            raise ValueError(f"rows must be a contiguous range (step 1), not {rows!r}")
        start, stop, _ = rows.indices(total)
    elif isinstance(rows, (tuple, list)) and len(rows) == 2:
        start, stop, _ = slice(*rows).indices(total)
    else:
        raise TypeError(f"rows must be a slice or a (start, stop) pair, not {rows!r}")
    return start, max(start, stop)


def iter_parquet(path, columns=None, rows=None, *, threads=None):
    """Decoded tables, one per row group read, of a Parquet file or directory of them.

    The streaming form of :func:`read_parquet` (same arguments): one row group's columns
    in memory at a time. Only the row groups overlapping ``rows`` are read.
    """
    return _iter_files(_files(path), columns, rows, threads)


def _iter_files(files, columns, rows, threads):
    columns = [columns] if isinstance(columns, str) else columns
    opened = [_open(f) for f in files]
    total = sum(pf.metadata.num_rows for pf in opened)
    start, stop = _row_range(rows, total)
    first_row = 0
    for file, pf in zip(files, opened):
        ours = _our_columns(pf, file)
        names = pf.schema_arrow.names
        if columns is not None:
            missing = [c for c in columns if c not in names]
            if missing:
                raise ValueError(f"{file}: no column {missing[0]!r} (the file has {names})")
        for g in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            lo, hi = max(start, first_row), min(stop, first_row + n)
            if lo < hi:
                try:
                    group = pf.read_row_group(g, columns=columns)
                except (pa.ArrowException, OSError) as e:
                    raise ParquetReadError(f"{file}: row group {g} is damaged ({e})") from None
                if group.num_rows != n:
                    raise ParquetReadError(f"{file}: row group {g} holds {group.num_rows} rows, "
                                           f"its metadata {n}")
                group = group.slice(lo - first_row, hi - lo)
                yield _decode_group(group, ours, file, g, threads)
            first_row += n


def _decode_group(group, ours, file, g, threads):
    out_columns, fields = [], []
    for field, column in zip(group.schema, group.columns):
        if field.name in ours:
            desc = ours[field.name]
            try:
                column = pa.chunked_array(
                    _decode_chunks(column.chunks, desc, f"{file}: column {field.name!r}, row group {g}", threads),
                    type=_original_type(desc))
            except CorruptBlobError as e:
                raise type(e)(str(e) if str(e).startswith(str(file)) else
                              f"{file}: column {field.name!r}, row group {g}: {e}") from e
            field = pa.field(field.name, column.type, field.nullable, field.metadata)
        out_columns.append(column)
        fields.append(field)
    return pa.Table.from_arrays(out_columns, schema=_restored_schema(pa.schema(fields, group.schema.metadata), {}))


def read_parquet(path, columns=None, rows=None, *, threads=None):
    """Read a Parquet file (or a directory's ``*.parquet`` files, in name order) to a Table.

    spherecodec columns come back as their original vector type (bit-exact for lossless
    codecs, nulls kept); every other column is exactly what pyarrow reads. ``columns``
    selects columns by name; ``rows`` (a slice or a ``(start, stop)`` pair over the whole
    dataset) reads only the row groups that hold those rows and decodes only the blob
    chunks it needs. A Parquet file without spherecodec columns is read unchanged.
    Raises ParquetReadError for an unreadable, truncated or damaged file, CorruptBlobError
    for a damaged blob, ValueError for an unknown column.
    """
    files = _files(path)
    pieces = list(_iter_files(files, columns, rows, threads))
    if pieces:
        try:
            return pa.concat_tables(pieces)
        except pa.ArrowInvalid as e:
            raise ValueError(f"{path}: the files' schemas differ ({e})") from None
    pf = _open(files[0])
    schema = _restored_schema(pf.schema_arrow, _our_columns(pf, files[0]))
    if columns is not None:
        columns = [columns] if isinstance(columns, str) else columns
        schema = pa.schema([schema.field(c) for c in columns], schema.metadata)
    return schema.empty_table()


def parquet_info(path):
    """The spherecodec metadata of a Parquet file (``{}`` when it has no spherecodec column)."""
    (file,) = _files(path)[:1]
    pf = _open(file)
    _our_columns(pf, file)
    raw = (pf.schema_arrow.metadata or {}).get(METADATA_KEY.encode())
    return {} if raw is None else json.loads(raw)


# ---------------------------------------------------------------------------------------
# Parquet file to Parquet file (the command line's compress / decompress)


def vector_columns(schema):
    """Names of the columns of ``schema`` that hold float vectors (lists of float16/32/64)."""
    names = []
    for field in schema:
        try:
            _describe_type(field.type, field.name)
        except ValueError:
            continue
        names.append(field.name)
    return names


def _counted(batches, bar):
    """``batches``, advancing ``bar`` (or nothing when None) by each one's rows."""
    for batch in batches:
        yield batch
        if bar is not None:
            bar.update(batch.num_rows)


def _rows_bar(total, desc, enabled):
    if not enabled:
        return contextlib.nullcontext(None)
    # tqdm is a core dependency, imported by the call that draws a bar (as stream.py does)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=" rows", unit_scale=True, delay=1.0, leave=False,
                dynamic_ncols=True)


def compress_parquet(src, dst, columns=None, codec="exact", *, params=None, row_group_rows=None,
                     threads=None, progress=False):
    """Copy the Parquet file ``src`` to ``dst`` with vector columns spherecodec-compressed.

    ``columns`` names the vector columns to compress (default: every column of float
    vectors); each uses ``codec`` with ``params``. The file is streamed: one row group of
    ``row_group_rows`` rows in memory at a time (default: about 64 MiB of raw vectors).
    Other columns are rewritten by pyarrow with zstd. ``dst`` appears only when complete.
    Returns the number of rows written.
    """
    src, dst = Path(src), Path(dst)
    pf = _open(src)
    if _our_columns(pf, src):
        raise ValueError(f"{src}: already holds spherecodec columns (did you mean decompress?)")
    schema = pf.schema_arrow
    found = vector_columns(schema)
    if columns is None:
        columns = found
        if not columns:
            raise ValueError(f"{src}: no column holds float vectors (columns: "
                             + ", ".join(f"{f.name} {f.type}" for f in schema) + ")")
    elif isinstance(columns, str):
        columns = [columns]
    spec = codec if params is None else (codec, dict(params))
    vectors = {name: spec for name in columns}
    specs = _vector_specs(schema, vectors)  # names and types checked before anything is written
    if row_group_rows is None:
        row_group_rows = _default_row_group_rows(schema, specs)
    with _rows_bar(pf.metadata.num_rows, "compress", progress) as bar:
        try:
            batches = pf.iter_batches(batch_size=min(int(row_group_rows), 1 << 16))
            reader = pa.RecordBatchReader.from_batches(schema, _counted(batches, bar))
            return write_parquet(reader, dst, vectors, row_group_rows=row_group_rows, threads=threads)
        except (pa.ArrowException, OSError) as e:
            if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)):
                raise
            raise ParquetReadError(f"{src}: not a readable Parquet file ({e})") from None


def decompress_parquet(src, dst, *, threads=None, progress=False, compression="zstd"):
    """Write ``src`` (a Parquet file or directory with spherecodec columns) back to a plain
    Parquet file ``dst``: vector columns of their original types, bit-exact for lossless
    codecs, one row group per stored row group, ``compression`` for every column.

    Streams one row group at a time; ``dst`` appears only when complete. Returns the
    number of rows written. ValueError when ``src`` holds no spherecodec column.
    """
    files = _files(src)
    first = _open(files[0])
    ours = _our_columns(first, files[0])
    if not ours:
        raise ValueError(f"{src}: holds no spherecodec column (nothing to decompress)")
    schema = _restored_schema(first.schema_arrow, ours)
    total = sum(_open(f).metadata.num_rows for f in files)
    rows = 0
    with atomic_path(Path(dst), fsync=True) as tmp, _rows_bar(total, "decompress", progress) as bar:
        with pq.ParquetWriter(tmp, schema, compression=compression, write_page_checksum=True) as writer:
            for table in _iter_files(files, None, None, threads):
                if not table.schema.equals(schema):
                    raise ValueError(f"{src}: the files' schemas differ ({table.schema} vs {schema})")
                writer.write_table(table, row_group_size=max(1, table.num_rows))
                rows += table.num_rows
                if bar is not None:
                    bar.update(table.num_rows)
    return rows
