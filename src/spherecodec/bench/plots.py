"""The benchmark's PNG plots: ratio against decode speed, ratio against max error, recall
against bytes per vector.

matplotlib is an OPTIONAL dependency (the ``bench`` and ``test`` extras install it): it is
imported lazily, only when plots are written, and without it ``write_plots`` writes none.
"""

import os

import numpy as np

__all__ = ["write_plots", "plots_unavailable"]

_COLOURS = {"spherecodec": "tab:blue", "peer": "tab:orange"}


def _plot_points(ax, pts, legend="upper left"):
    # matplotlib is optional: imported lazily, only when plotting
    from matplotlib.lines import Line2D

    for x, y, r in pts:
        ax.scatter([x], [y], c=_COLOURS[r.source], marker="o" if r.bit_exact else "^", s=36, zorder=3)
    ax.legend(handles=[
        Line2D([], [], color="tab:blue", marker="o", ls="", label="spherecodec"),
        Line2D([], [], color="tab:orange", marker="o", ls="", label="peer"),
        Line2D([], [], color="grey", marker="o", ls="", label="bit-exact"),
        Line2D([], [], color="grey", marker="^", ls="", label="lossy"),
    ], fontsize=7, loc=legend)
    ax.grid(True, which="both", alpha=0.3)


def _label_points(ax, pts, fontsize=7, group_exact=None):
    """Name each point, moving a label up or down until it clears the labels already placed.

    ``group_exact`` (an axes-fraction (x, y) position): name the bit-exact points in one text
    box there instead, as they crowd together in the error and recall plots.
    """
    ax.autoscale_view()
    if group_exact is not None:
        exact = sorted((p for p in pts if p[2].bit_exact), key=lambda p: -p[2].ratio)
        if exact:
            ax.text(*group_exact, "bit-exact (ratio):\n" + "\n".join(
                f"{r.name} {r.ratio:.3f}" for _, _, r in exact), transform=ax.transAxes,
                fontsize=fontsize, va="top", ha="left",
                bbox={"boxstyle": "round", "fc": "white", "ec": "grey", "alpha": 0.85})
        pts = [p for p in pts if not p[2].bit_exact]
    px_per_pt = ax.figure.dpi / 72.0
    char_w, line_h = 0.6 * fontsize * px_per_pt, 1.25 * fontsize * px_per_pt
    placed = []
    steps = [3] + [v for k in range(1, 12) for v in (3 - 11 * k, 3 + 11 * k)]
    top = ax.transAxes.transform((0, 0.9))[1]
    for x, y, r in sorted(pts, key=lambda p: (p[0], p[1])):
        px, py = ax.transData.transform((x, y))
        label = _short_label(r.name)
        w = char_w * len(label)
        # near the top edge, look downwards first so labels stay inside the axes
        order = sorted(steps, key=lambda v: (v > 0, abs(v))) if py > top else steps
        for dy in order:
            box = (px + 4 * px_per_pt, py + dy * px_per_pt, w)
            if not any(abs(box[1] - b[1]) < line_h and box[0] < b[0] + b[2] and b[0] < box[0] + w
                       for b in placed):
                break
        placed.append(box)
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, dy),
                    fontsize=fontsize, va="bottom",
                    arrowprops=None if abs(dy) < 10 else {"arrowstyle": "-", "lw": 0.4, "color": "grey"})


def _short_label(name):
    return name.replace("max_abs_error=", "err ")


def _plain_log_ticks(axis):
    # matplotlib is optional: imported lazily, only when plotting
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(fmt)
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if str(f"{v:g}")[0] in "235" else ""))


def _finite_error(r):
    return r.max_abs_error and np.isfinite(r.max_abs_error)


def _ratio_vs_decode_speed(ax, ok):
    # threads=1 CPU time: the codec's own cost, least disturbed by other jobs on the machine
    pts = [(r.speeds("cpu")[1].get(1), r.ratio, r) for r in ok if r.speeds("cpu")[1].get(1)]
    if not pts:
        return False
    _plot_points(ax, pts)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    _label_points(ax, pts)
    ax.set_xlabel("decode MB/s, threads=1, from CPU time (log)")
    ax.set_ylabel("compression ratio (log)")
    return "Ratio against decode speed"


def _ratio_vs_max_error(ax, ok):
    errs = [r.max_abs_error for r in ok if _finite_error(r)]
    # bit-exact rows sit at a floor left of every measured error
    floor = (min(errs) if errs else 1e-6) / 30
    pts = [(floor if r.bit_exact else r.max_abs_error, r.ratio, r) for r in ok
           if r.bit_exact or _finite_error(r)]
    _plot_points(ax, pts, legend="lower right")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    _label_points(ax, pts, group_exact=(0.1, 0.7))
    ax.axvline(floor * 3, color="grey", lw=0.8, ls=":")
    ax.text(floor, ax.get_ylim()[1], " bit-exact", fontsize=7, va="top", rotation=90)
    ax.set_xlabel("max abs error (log; bit-exact at the left)")
    ax.set_ylabel("compression ratio (log)")
    return "Ratio against max error"


def _recall_vs_bytes_per_vector(ax, ok):
    pts = [(r.bytes_per_vector, r.recall, r) for r in ok if r.recall is not None]
    if not pts:
        return False
    _plot_points(ax, pts, legend="lower right")
    ax.set_xscale("log")
    low = min(p[1] for p in pts)
    ax.set_ylim(low - 0.05 * max(1 - low, 0.01), 1 + 0.15 * max(1 - low, 0.01))
    _plain_log_ticks(ax.xaxis)
    _label_points(ax, pts, group_exact=(0.02, 0.7))
    ax.set_xlabel("bytes per vector (log)")
    ax.set_ylabel(f"decoded recall@{ok[0].k} (exact search on decoded vectors)")
    return "Recall against size"


#: file name -> function drawing the plot on an axes (returns its title, or False if no
#: row has the values it needs)
_PLOTS = {
    "ratio_vs_decode_speed.png": _ratio_vs_decode_speed,
    "ratio_vs_max_error.png": _ratio_vs_max_error,
    "recall_vs_bytes_per_vector.png": _recall_vs_bytes_per_vector,
}


def plots_unavailable():
    """Why the bench can write no plots here (matplotlib is not installed), or None."""
    try:
        # matplotlib is optional: imported lazily, only to see whether plots can be drawn
        import matplotlib  # noqa: F401
    except ImportError:
        return "no plots written: matplotlib is not installed (pip install matplotlib, or \"spherecodec[bench]\")"
    return None


def write_plots(results, out_dir, title=""):
    """Write the PNG plots of the measured ``BenchResult`` rows into ``out_dir``; return their
    paths (none if matplotlib is missing or no row was measured)."""
    try:
        # matplotlib is optional: imported lazily, only when plotting
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    ok = [r for r in results if r.status == "ok" and r.ratio]
    if not ok:
        return []
    paths = []
    for name, draw in _PLOTS.items():
        fig, ax = plt.subplots(figsize=(7, 4.5))
        heading = draw(ax, ok)
        if heading:
            ax.set_title(f"{heading} {title}".strip(), fontsize=9)
            path = os.path.join(out_dir, name)
            fig.tight_layout()
            fig.savefig(path, dpi=90)
            paths.append(path)
        plt.close(fig)
    return paths
