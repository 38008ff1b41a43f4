"""Adapters for the compressors that ``spherecodec bench`` measures spherecodec against.

Each peer has one uniform interface so the benchmark treats them all alike:

* ``name`` (table label), ``package`` (what to ``pip install``), ``exact`` (lossless by
  design), ``threaded`` (accepts a thread count);
* ``available()``: whether its package imports (``unavailable_reason`` says why not);
* ``fit(base)``: optional one-time model fitting (faiss PQ training; ``fits_model`` says
  whether a peer has one), run once before the timed runs and timed on its own;
* ``encode(arr, threads=1) -> bytes`` and ``decode(blob, shape, dtype, threads=1) -> array``
  on C-contiguous 2-D float32 arrays. A blob holds everything needed to decode (codebooks
  included), so the compression ratio counts it.

Every package is imported lazily: a peer that is not installed is reported as skipped.
"""

import importlib
import math

import numpy as np

__all__ = ["Peer", "all_peers", "peer_names"]


class Peer:
    """Base class of a peer compressor adapter."""

    name = None
    #: distribution to install for this peer
    package = None
    #: module imported by ``available()``
    module = None
    #: lossless by design (the benchmark still compares bits)
    exact = True
    #: encode/decode accept a thread count
    threaded = False
    #: decode uses more than one thread when given them (else only encode does)
    threaded_decode = True
    #: what the table says about the peer's settings
    description = ""
    #: ``fit`` trains a model (timed apart from the encodes); else it does nothing
    fits_model = False

    def __init__(self):
        self.unavailable_reason = None
        self._mod = None

    def _load(self):
        if self._mod is None:
            self._mod = importlib.import_module(self.module)
        return self._mod

    def available(self):
        """True if the peer's package imports; else ``unavailable_reason`` says why."""
        try:
            self._load()
        except Exception as exc:  # ImportError, or a broken binary wheel
            self.unavailable_reason = f"{self.package} not installed ({type(exc).__name__}: {exc})"
            return False
        return True

    def fit(self, base):
        """Fit any model once on ``base`` (not timed); most peers need none."""

    def encode(self, arr, threads=1):
        """Compress a C-contiguous 2-D float32 array; return bytes."""
        raise NotImplementedError

    def decode(self, blob, shape, dtype, threads=1):
        """Decompress ``blob`` to an array of ``shape`` (float32 for every peer here)."""
        raise NotImplementedError

    def __repr__(self):
        return f"<peer {self.name}>"


def _from_bytes(buf, shape, dtype):
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


class Zstd(Peer):
    name = "zstd-3"
    package = module = "zstandard"
    threaded = True
    threaded_decode = False  # zstd frames decode on one thread
    description = "zstandard level 3 on the raw bytes (threads: compression only)"

    def encode(self, arr, threads=1):
        zstd = self._load()
        # threads=0 is zstd's single-threaded mode; n > 0 starts n worker threads
        return zstd.ZstdCompressor(level=3, threads=0 if threads == 1 else threads).compress(
            memoryview(arr).cast("B"))

    def decode(self, blob, shape, dtype, threads=1):
        zstd = self._load()
        return _from_bytes(zstd.ZstdDecompressor().decompress(blob), shape, dtype)


class Blosc2(Peer):
    package = module = "blosc2"
    threaded = True

    def __init__(self, filter_name="SHUFFLE", clevel=5):
        super().__init__()
        self.filter_name = filter_name
        self.clevel = clevel
        self.name = f"blosc2-{filter_name.lower()}-zstd{clevel}"
        self.description = f"blosc2 {filter_name.lower()} + zstd clevel {clevel}, typesize 4"

    def encode(self, arr, threads=1):
        blosc2 = self._load()
        if arr.nbytes >= 2**31 - 64:
            raise ValueError("blosc2.compress2 takes at most 2 GiB per call")
        return blosc2.compress2(memoryview(arr).cast("B"), typesize=arr.dtype.itemsize,
                                clevel=self.clevel, codec=blosc2.Codec.ZSTD,
                                filters=[getattr(blosc2.Filter, self.filter_name)],
                                nthreads=threads)

    def decode(self, blob, shape, dtype, threads=1):
        blosc2 = self._load()
        return _from_bytes(blosc2.decompress2(blob, nthreads=threads), shape, dtype)


class ZipNN(Peer):
    name = "zipnn"
    package = module = "zipnn"
    threaded = True
    description = "ZipNN(bytearray_dtype='float32'): byte grouping + Huffman/zstd"
    #: the dtype ZipNN groups the bytes of
    bytearray_dtype = "float32"

    def _codec(self, threads):
        return self._load().ZipNN(bytearray_dtype=self.bytearray_dtype, input_format="byte", threads=threads)

    def encode(self, arr, threads=1):
        return bytes(self._codec(threads).compress(arr.tobytes()))

    def decode(self, blob, shape, dtype, threads=1):
        return _from_bytes(self._codec(threads).decompress(blob), shape, dtype)


class ZipNNHalf(ZipNN):
    """ZipNN on the vectors cast to bfloat16 or float16 (lossy against float32: the rounding),
    the peer of ``exact(as=bfloat16)`` / ``exact(as=float16)``."""

    exact = False

    def __init__(self, half):
        super().__init__()
        self.bytearray_dtype = half
        self.name = {"bfloat16": "zipnn-bf16", "float16": "zipnn-fp16"}[half]
        self.description = f"the vectors as {half}, then ZipNN(bytearray_dtype='{half}')"

    def encode(self, arr, threads=1):
        return super().encode(arr.astype(np.dtype(self.bytearray_dtype)), threads)

    def decode(self, blob, shape, dtype, threads=1):
        return super().decode(blob, shape, np.dtype(self.bytearray_dtype), threads).astype(np.float32)


class ParquetFile(Peer):
    """The vectors as one ``fixed_size_list<float32, d>`` column of a Parquet file written
    by pyarrow (zstd, no dictionary; byte-stream-split when said): what a data lake holds."""

    package = "pyarrow"
    module = "pyarrow.parquet"
    #: a list column's values are the leaf "<name>.list.element" (byte-stream-split is per leaf)
    _LEAF = "embedding.list.element"

    def __init__(self, byte_stream_split):
        super().__init__()
        self.byte_stream_split = byte_stream_split
        self.name = "parquet-bss-zstd" if byte_stream_split else "parquet-zstd"
        self.description = ("Parquet file (pyarrow), fixed_size_list<float32> column, zstd"
                            + (", byte-stream-split" if byte_stream_split else "") + ", no dictionary")

    def encode(self, arr, threads=1):
        pq = self._load()
        pa = importlib.import_module("pyarrow")
        column = pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), arr.shape[1])
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({"embedding": column}), sink, compression="zstd", use_dictionary=False,
                       use_byte_stream_split=[self._LEAF] if self.byte_stream_split else False)
        return sink.getvalue().to_pybytes()

    def decode(self, blob, shape, dtype, threads=1):
        pq = self._load()
        pa = importlib.import_module("pyarrow")
        table = pq.read_table(pa.BufferReader(blob), use_threads=threads > 1)
        values = table.column("embedding").combine_chunks().flatten()
        return values.to_numpy(zero_copy_only=False).reshape(shape)


class Pcodec(Peer):
    name = "pcodec-8"
    package = "pcodec"
    module = "pcodec"
    description = "pcodec standalone, compression_level 8"

    def encode(self, arr, threads=1):
        pcodec = self._load()
        from pcodec import standalone

        return standalone.simple_compress(arr.reshape(-1), pcodec.ChunkConfig(compression_level=8))

    def decode(self, blob, shape, dtype, threads=1):
        self._load()
        from pcodec import standalone

        return standalone.simple_decompress(blob).reshape(shape)


class Jzip(Peer):
    name = "jzip-zig"
    package = "jzip-zig"
    module = "jzip"
    exact = False
    threaded = True
    description = "jzip-zig level 1 (near-lossless, for unit-norm vectors)"

    def encode(self, arr, threads=1):
        return self._load().compress(arr, level=1, threads=threads)

    def decode(self, blob, shape, dtype, threads=1):
        return self._load().decompress(blob, threads=threads).reshape(shape)


class Fpzip(Peer):
    name = "fpzip"
    package = module = "fpzip"
    description = "fpzip lossless (precision 0)"

    def encode(self, arr, threads=1):
        return self._load().compress(arr, precision=0, order="C")

    def decode(self, blob, shape, dtype, threads=1):
        return self._load().decompress(blob, order="C").reshape(shape)


class Zfp(Peer):
    package = "zfpy"
    module = "zfpy"

    def __init__(self, tolerance=None):
        super().__init__()
        self.tolerance = tolerance
        self.exact = tolerance is None
        self.name = "zfp-reversible" if tolerance is None else f"zfp-tol{tolerance:g}"
        self.description = ("zfp reversible (lossless) mode" if tolerance is None
                            else f"zfp fixed-accuracy mode, tolerance {tolerance:g}")

    def encode(self, arr, threads=1):
        zfpy = self._load()
        if self.tolerance is None:
            return zfpy.compress_numpy(arr)
        return zfpy.compress_numpy(arr, tolerance=self.tolerance)

    def decode(self, blob, shape, dtype, threads=1):
        return self._load().decompress_numpy(blob).reshape(shape)


class _Faiss(Peer):
    package = "faiss-cpu"
    module = "faiss"
    exact = False
    threaded = True

    def _with_threads(self, threads, fn):
        faiss = self._load()
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(threads)
        try:
            return fn(faiss)
        finally:
            faiss.omp_set_num_threads(before)

    def decode(self, blob, shape, dtype, threads=1):
        def run(faiss):
            index = faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
            return index.reconstruct_n(0, index.ntotal)

        return self._with_threads(threads, run).reshape(shape)


class FaissSQ(_Faiss):
    def __init__(self, qtype="QT_8bit"):
        super().__init__()
        self.qtype = qtype
        self.name = {"QT_8bit": "faiss-sq8", "QT_fp16": "faiss-sq-fp16"}.get(qtype, f"faiss-{qtype}")
        self.description = f"faiss IndexScalarQuantizer {qtype} (trained per blob), serialized index"

    def encode(self, arr, threads=1):
        def run(faiss):
            index = faiss.IndexScalarQuantizer(arr.shape[1], getattr(faiss.ScalarQuantizer, self.qtype),
                                               faiss.METRIC_INNER_PRODUCT)
            index.train(arr)
            index.add(arr)
            return faiss.serialize_index(index).tobytes()

        return self._with_threads(threads, run)


def pq_subquantizers(dim):
    """Sub-quantizers for faiss PQ: 8 dimensions each (48 on 384-d), else a divisor of ``dim``."""
    if dim % 8 == 0:
        return dim // 8
    target = max(1, dim // 8)
    divisors = [m for m in range(1, dim + 1) if dim % m == 0]
    return min(divisors, key=lambda m: (abs(m - target), m))


class FaissPQ(_Faiss):
    """faiss IndexPQ; the codebook is trained once in ``fit`` (untimed) and stored in every blob."""

    fits_model = True

    def __init__(self):
        super().__init__()
        self.name = "faiss-pq"
        self._trained = None
        self.description = "faiss IndexPQ (nbits 8), codebook trained once outside the timed runs"

    def fit(self, base):
        faiss = self._load()
        dim = base.shape[1]
        m = pq_subquantizers(dim)
        # 8-bit codes need 256 training points; tiny inputs get fewer centroids
        nbits = max(1, min(8, int(math.log2(max(2, base.shape[0])))))
        index = faiss.IndexPQ(dim, m, nbits, faiss.METRIC_INNER_PRODUCT)
        # silence faiss's "please provide at least N training points" warning on small data
        index.pq.cp.min_points_per_centroid = 1
        self._with_threads(1, lambda _: index.train(base))
        self._trained = index
        self.name = f"faiss-pq{m}x{nbits}"
        self.description = (f"faiss IndexPQ m={m}, nbits={nbits}; codebook trained once outside the "
                            "timed runs, stored in every blob")

    def encode(self, arr, threads=1):
        if self._trained is None:
            self.fit(arr)

        def run(faiss):
            index = faiss.clone_index(self._trained)
            index.add(arr)
            return faiss.serialize_index(index).tobytes()

        return self._with_threads(threads, run)


def all_peers():
    """Fresh adapters for every peer the benchmark knows, installed or not."""
    return [
        Zstd(),
        Blosc2("SHUFFLE"),
        Blosc2("BITSHUFFLE"),
        ZipNN(),
        ZipNNHalf("bfloat16"),
        ZipNNHalf("float16"),
        ParquetFile(byte_stream_split=True),
        ParquetFile(byte_stream_split=False),
        Pcodec(),
        Fpzip(),
        Zfp(),
        Jzip(),
        Zfp(tolerance=1e-4),
        FaissSQ("QT_fp16"),
        FaissSQ("QT_8bit"),
        FaissPQ(),
    ]


def peer_names():
    """Table labels of every known peer (faiss-pq's depends on the data's dimension)."""
    return [p.name for p in all_peers()]
