"""The benchmark's outputs: the Markdown table, ``results.md`` and ``results.json``, with the
facts of the machine that ran it."""

import json
import os
import platform
from importlib import metadata

from .plots import plots_unavailable, write_plots

__all__ = ["table_columns", "format_table", "describe_data", "load_average", "machine_facts",
           "write_outputs"]

# distributions whose versions the report names (those installed)
_VERSIONED = ("spherecodec", "numpy", "numba", "constriction", "zstandard", "blosc2", "zipnn", "pcodec",
              "jzip-zig", "fpzip", "zfpy", "faiss-cpu", "matplotlib")


def _fmt(value, spec):
    return "—" if value is None else format(value, spec)


def table_columns(thread_counts, k=10):
    """Column titles of the results table for the measured thread counts and recall@k."""
    cols = ["codec", "from", "bit-exact", "ratio", "B/vector"]
    for t in thread_counts:
        cols += [f"enc MB/s {t}T", f"dec MB/s {t}T"]
    return cols + ["max abs err", f"decoded recall@{k}", "notes"]


def _measured_row(r, thread_counts, clock):
    enc, dec = r.speeds(clock)
    cells = [r.name, r.source, "yes" if r.bit_exact else "no", _fmt(r.ratio, ".3f"),
             _fmt(r.bytes_per_vector, ".1f")]
    for t in thread_counts:
        cells += [_fmt(enc.get(t), ".0f"), _fmt(dec.get(t), ".0f")]
    cells += ["0" if r.bit_exact else _fmt(r.max_abs_error, ".2e"), _fmt(r.recall, ".3f"),
              "; ".join(r.notes)]
    return cells


def _unmeasured_row(r, columns):
    """A skipped or failed row: nothing measured, the status and reason in the notes."""
    cells = [r.name, r.source] + ["—"] * (columns - 3) + [f"{r.status}: {r.reason}"]
    return [c.replace("|", "/") for c in cells]


def format_table(results, thread_counts=None, clock="wall"):
    """The ``BenchResult`` rows as a Markdown table (skipped and failed candidates last, with
    the reason).

    ``clock="cpu"``: speeds from the CPU time of threads=1 runs only (columns "cpu MB/s"),
    which other jobs on a shared machine disturb less than wall-clock time.
    """
    if thread_counts is None:
        thread_counts = sorted({int(t) for r in results for t in r.threads}) or [1]
    if clock == "cpu":
        thread_counts = [1]
    cols = table_columns(thread_counts, max((r.k for r in results), default=10))
    if clock == "cpu":
        cols = [c.replace("MB/s 1T", "MB/s 1T cpu") for c in cols]
    rows = [_measured_row(r, thread_counts, clock) for r in results if r.status == "ok"]
    rows += [_unmeasured_row(r, len(cols)) for r in results if r.status != "ok"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


def describe_data(data_info):
    """One line on the data (``spherecodec.bench.data.data_facts``): source, shape, split, norms."""
    d = data_info
    return (f"{d['source']}: {d['rows']} x {d['dim']} float32 ({d['base_rows']} base rows compressed, "
            f"{d['query_rows']} held-out queries); row norms {d['norm_min']:.3g}..{d['norm_max']:.3g}")


def load_average():
    """1-minute load average of the machine (None where the OS does not tell)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_facts():
    """CPU model, cores, OS and versions of Python, numpy, numba and the peers' packages."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {name: _version(name) for name in _VERSIONED}
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {k: v for k, v in versions.items() if v},
    }


def write_outputs(out_dir, results, data_info, settings, command=None):
    """Write ``results.md``, ``results.json`` and the plots into ``out_dir``; return paths."""
    os.makedirs(out_dir, exist_ok=True)
    machine = machine_facts()
    payload = {"command": command, "data": data_info, "settings": settings, "machine": machine,
               "results": [r.to_dict() for r in results]}
    json_path = os.path.join(out_dir, "results.json")
    with open(json_path, "w") as f:
        json.dump(payload, f, indent=1, default=float)
    plots = write_plots(results, out_dir, title=f"({data_info['source']})")
    md = [f"# spherecodec bench: {data_info['source']}", ""]
    if command:
        md += ["```", command, "```", ""]
    md += [f"Data: {describe_data(data_info)}.", "",
           f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['platform']}, "
           f"Python {machine['python']}; " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
           + ".", "",
           f"1-minute load average before/after the run: {settings.get('load_average_before')}/"
           f"{settings.get('load_average_after')} on {machine['cores']} cores (a load above the core "
           f"count means other processes shared the CPUs: the all-cores columns suffer first).", "",
           f"Medians of {settings['repeats']} interleaved timed runs after a warm-up; MB/s of raw "
           f"float32 (10^6 bytes/s); ratio = raw bytes / compressed bytes (codebooks and headers "
           f"included); decoded recall@{settings['k']}: exact inner-product search of the held-out "
           f"queries on the decoded vectors against the original ones (not spherecodec.search's "
           f"code recall, which searches the codes).", "",
           format_table(results, settings["thread_counts"]), ""]
    md += ["Speeds at threads=1 from the process's CPU time instead of the wall clock (the same "
           "runs; other jobs on a shared machine inflate these less):", "",
           format_table(results, clock="cpu"), ""]
    missing = plots_unavailable()
    if missing:
        md += [missing + ".", ""]
    for p in plots:
        md += [f"![{os.path.basename(p)}]({os.path.basename(p)})", ""]
    md += ["## Settings of each row", ""]
    md += [f"- `{r.name}`: {r.description or 'default parameters'}" for r in results]
    md += [""]
    md_path = os.path.join(out_dir, "results.md")
    with open(md_path, "w") as f:
        f.write("\n".join(md))
    return [md_path, json_path] + plots
