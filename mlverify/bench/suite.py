"""The comparisons ``mlverify bench`` runs, by name, and their report files.

Each comparison module exposes ``compare(quick: bool, threads: int | None) -> Comparison``.
"""

from __future__ import annotations

import importlib
import json
import math
import multiprocessing
import platform
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ._result import Comparison

#: Name → (module, one-line description), in report order.
COMPARISONS: dict[str, tuple[str, str]] = {
    "cbpdn": ("mlverify.bench.cbpdn", "2-D CBPDN against SPORCO's ConvBPDN (kodim23 example)"),
    "csc1d": ("mlverify.bench.csc1d", "1-D non-negative CSC against alphacsc's LGCD"),
    "cnn": ("mlverify.bench.cnn", "2-layer forward pass and ML-ISTA iteration against PyTorch"),
    "kernels": ("mlverify.bench.kernels", "dense kernels against the BLAS peak; first calls"),
}


def _compare(module: str, quick: bool, options: dict) -> Comparison:
    return importlib.import_module(module).compare(quick=quick, **options)


def run(names: list[str], quick: bool = False, threads: int | None = None,
        announce: Callable[[str], None] = lambda name: None) -> list[Comparison]:
    """Run the named comparisons in order (``announce(name)`` before each), each in a fresh
    spawned process: the peers' thread pools and runtimes (PyTorch's OpenMP, FFTW's threads)
    stay out of the next comparison (measured: layer-1 analysis at 27 % of peak after the CNN
    comparison in the same process, 46 % alone)."""
    unknown = [name for name in names if name not in COMPARISONS]
    if unknown:
        raise ValueError(f"unknown comparison(s) {unknown}; choose from {list(COMPARISONS)}")
    options = {} if threads is None else {"threads": threads}  # else each one's default
    results = []
    for name in names:
        announce(name)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            results.append(pool.submit(_compare, COMPARISONS[name][0], quick, options).result())
    return results


def _fmt(value: float, unit: str = "s") -> str:
    if not math.isfinite(value):
        return "not reached"
    if unit == "s":
        return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:.4g} {unit}"


def markdown(comparisons: list[Comparison]) -> str:
    """The ``BENCHMARKS.md`` text: one section per comparison, metrics as a table."""
    lines = ["# Side-by-side benchmarks (`mlverify bench`)", "",
             f"Machine: {platform.machine()}, {platform.system()} {platform.release()}, "
             f"Python {platform.python_version()}. Both contenders of each comparison run in one "
             "process, on the same data, dtype and thread count; ratio = peer time / mlverify "
             "time (> 1: mlverify is faster), measured in one run (these machines are noisy).",
             ""]
    for comparison in comparisons:
        lines += [f"## {comparison.title}", "", f"Peer: {comparison.peer}.", ""]
        if comparison.skipped:
            lines += [f"**Skipped**: {comparison.skipped}.", ""]
            continue
        if comparison.problem:
            lines += ["Problem: " + ", ".join(f"{k} = {v}" for k, v in comparison.problem.items())
                      + ".", ""]
        lines += ["| metric | mlverify | peer | ratio | goal | met |", "|---|---|---|---|---|---|"]
        for m in comparison.metrics:
            goal = "—" if m.goal is None else f"≥ {m.goal:g}×"
            met = "—" if m.met is None else ("yes" if m.met else "**no**")
            lines.append(f"| {m.name} | {_fmt(m.ours, m.unit)} | {_fmt(m.peer, m.unit)} | "
                         f"{m.ratio:.2f} | {goal} | {met} |")
        lines.append("")
        lines += [f"- {note}" for note in comparison.notes]
        lines.append("")
    return "\n".join(lines)


def write_figure(comparisons: list[Comparison], path: Path) -> Path | None:
    """Relative objective gap against seconds, one panel per comparison with traces."""
    traced = [c for c in comparisons if c.traces]
    if not traced:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(traced), figsize=(5.5 * len(traced), 4.2), squeeze=False)
    for ax, comparison in zip(axes[0], traced, strict=True):
        for contender, trace in comparison.traces.items():
            ax.semilogy(trace["time"], [max(v, 1e-12) for v in trace["value"]], label=contender)
        for m in comparison.metrics:
            if m.goal is not None and "gap" in m.name:
                level = float(m.name.rsplit(" ", 1)[-1])
                ax.axhline(level, color="grey", lw=0.6, ls=":")
        ax.set_xlabel("seconds (evaluation excluded)")
        ax.set_ylabel("relative gap above the certified optimum")
        ax.set_title(comparison.title, fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(comparisons: list[Comparison], out_dir) -> list[Path]:
    """``BENCHMARKS.md``, ``benchmarks.json`` and ``benchmarks.png`` under ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "BENCHMARKS.md", out_dir / "benchmarks.json"]
    written[0].write_text(markdown(comparisons))
    written[1].write_text(json.dumps([c.to_dict() for c in comparisons], indent=1))
    figure = write_figure(comparisons, out_dir / "benchmarks.png")
    return written + ([figure] if figure else [])
