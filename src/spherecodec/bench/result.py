"""One row of the benchmark: what was measured of a spherecodec codec or a peer."""

import statistics
from dataclasses import dataclass, field

__all__ = ["STATUSES", "BenchResult"]

#: ``ok``: measured; ``skipped``: not run (a peer or an optional dependency not installed, a
#: codec that needs parameters); ``failed``: raised while running (``reason`` says where)
STATUSES = ("ok", "skipped", "failed")
# below this, fitting a model is not worth a note in the table
_FIT_NOTE_SECONDS = 0.05


def _median_mbps(nbytes, seconds):
    med = statistics.median(seconds)
    return nbytes / 1e6 / med if med > 0 else float("inf")


@dataclass
class BenchResult:
    """A codec's or peer's row: status, sizes, timings per thread count, error and recall.

    The measured fields stay None (timings empty) unless the warm-up ran: a skipped row
    has ``status == "skipped"`` and its ``reason``, and nothing measured. Speeds in MB/s are
    medians over the timed runs and exist only for rows whose status is ``ok``.
    """

    name: str
    #: "spherecodec" or "peer"
    source: str
    #: bytes of raw float32 in the compressed base
    raw_bytes: int
    #: vectors in the compressed base
    rows: int
    #: neighbours of recall@k
    k: int
    #: thread counts measured (1, and all cores if the candidate takes a thread count)
    threads: list
    description: str = ""
    #: lossless by design (None: a spherecodec codec, judged by its bits alone)
    exact_claimed: bool | None = None
    status: str = "ok"
    reason: str = ""
    bit_exact: bool | None = None
    #: blob size of the threads=1 warm-up (the ratio's denominator)
    compressed_bytes: int | None = None
    max_abs_error: float | None = None
    rmse: float | None = None
    recall: float | None = None
    #: seconds spent fitting a model once, outside the timed runs (peers such as faiss PQ)
    fit_seconds: float | None = None
    #: the fit is part of every encode (a spherecodec codec's per-blob model), not done once
    fit_in_encode: bool = False
    #: the codec can fit once and reuse its model (``spherecodec.fit``)
    fit_reusable: bool = False
    #: thread count -> wall-clock seconds of each timed run
    encode_seconds: dict = field(default_factory=dict)
    decode_seconds: dict = field(default_factory=dict)
    #: thread count -> CPU seconds of the process (all its threads) of each timed run
    encode_cpu_seconds: dict = field(default_factory=dict)
    decode_cpu_seconds: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    #: every blob size seen (warm-up and timed runs); more than one earns a note
    blob_sizes: set = field(default_factory=set, repr=False)

    def skip(self, reason):
        """Mark the row as not run, for ``reason``."""
        self.status, self.reason = "skipped", reason

    def fail(self, reason):
        """Mark the row as failed, for ``reason``; its timings no longer count."""
        self.status, self.reason = "failed", reason

    @property
    def ratio(self):
        """Raw bytes over compressed bytes (None until measured)."""
        if self.compressed_bytes is None:
            return None
        return self.raw_bytes / self.compressed_bytes if self.compressed_bytes else float("inf")

    @property
    def bytes_per_vector(self):
        """Compressed bytes per base vector (None until measured)."""
        return None if self.compressed_bytes is None else self.compressed_bytes / self.rows

    def speeds(self, clock="wall"):
        """``(encode, decode)``: thread count -> median MB/s of raw float32 over the timed
        runs, from the wall clock or (``clock="cpu"``) the process's CPU time, which other
        jobs on a shared machine disturb less. Empty unless the status is ok."""
        if self.status != "ok":
            return {}, {}
        runs = ((self.encode_cpu_seconds, self.decode_cpu_seconds) if clock == "cpu"
                else (self.encode_seconds, self.decode_seconds))
        return tuple({t: _median_mbps(self.raw_bytes, secs) for t, secs in by_threads.items()}
                     for by_threads in runs)

    @property
    def encode_mbps(self):
        """Thread count -> median encode MB/s, wall clock."""
        return self.speeds()[0]

    @property
    def decode_mbps(self):
        """Thread count -> median decode MB/s, wall clock."""
        return self.speeds()[1]

    def record_run(self, threads, encode_wall, encode_cpu, decode_wall=None, decode_cpu=None):
        """Add one timed run at ``threads``; decode times None when the decode at this thread
        count is the threads=1 decode (the candidate decodes on one thread only)."""
        self.encode_seconds.setdefault(threads, []).append(encode_wall)
        self.encode_cpu_seconds.setdefault(threads, []).append(encode_cpu)
        if decode_wall is not None:
            self.decode_seconds.setdefault(threads, []).append(decode_wall)
            self.decode_cpu_seconds.setdefault(threads, []).append(decode_cpu)

    def closing_notes(self):
        """The notes known only once every run is done: blob sizes that varied, and the
        encode speed with the model fit counted."""
        notes = []
        if len(self.blob_sizes) > 1:
            notes.append(f"blob size differs between runs or thread counts "
                         f"({min(self.blob_sizes)}..{max(self.blob_sizes)} bytes; ratio from threads=1)")
        if (self.status == "ok" and self.fit_in_encode and self.fit_seconds and self.encode_seconds.get(1)
                and self.fit_seconds > max(_FIT_NOTE_SECONDS, 0.5 * statistics.median(self.encode_seconds[1]))):
            encode_seconds = statistics.median(self.encode_seconds[1])
            reuse = "; a model fitted once (spherecodec.fit) codes later batches without it" if self.fit_reusable else ""
            notes.append(f"encode is mostly fitting its model to these {self.rows} rows "
                         f"({self.fit_seconds:.2f} s of {encode_seconds:.2f} s){reuse}")
        elif (self.status == "ok" and not self.fit_in_encode and self.fit_seconds and self.fit_seconds > _FIT_NOTE_SECONDS
                and self.encode_seconds.get(1)):
            with_fit = self.raw_bytes / 1e6 / (self.fit_seconds + statistics.median(self.encode_seconds[1]))
            notes.append(f"model fitted once ({self.fit_seconds:.1f} s) outside the timed encodes; "
                         f"with the fit: {with_fit:.1f} MB/s")
        return notes

    def to_dict(self):
        """The row as ``results.json`` stores it (thread counts as string keys)."""

        def by_threads(d):
            return {str(t): v for t, v in d.items()}

        encode_cpu_mbps, decode_cpu_mbps = self.speeds("cpu")
        return {
            "name": self.name, "source": self.source, "status": self.status, "reason": self.reason,
            "description": self.description, "exact_claimed": self.exact_claimed,
            "bit_exact": self.bit_exact, "ratio": self.ratio, "raw_bytes": self.raw_bytes,
            "compressed_bytes": self.compressed_bytes, "bytes_per_vector": self.bytes_per_vector,
            "encode_mbps": by_threads(self.encode_mbps), "decode_mbps": by_threads(self.decode_mbps),
            "encode_seconds": by_threads(self.encode_seconds),
            "decode_seconds": by_threads(self.decode_seconds),
            "encode_cpu_seconds": by_threads(self.encode_cpu_seconds),
            "decode_cpu_seconds": by_threads(self.decode_cpu_seconds),
            "max_abs_error": self.max_abs_error, "rmse": self.rmse, "recall": self.recall,
            "k": self.k, "notes": list(self.notes), "threads": list(self.threads),
            "fit_seconds": self.fit_seconds, "fit_in_encode": self.fit_in_encode,
            "encode_cpu_mbps": by_threads(encode_cpu_mbps),
            "decode_cpu_mbps": by_threads(decode_cpu_mbps),
        }
