"""Report writers of ``mlverify verify``: terminal table, JSON, Markdown and one PNG per theorem."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.table import Table

from .runner import TheoremReport

_STATUS_STYLE = {"ok": "green", "finding": "yellow", "insufficient": "red", "violated": "bold red"}


def _fmt(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:.4g}"


def table(reports: list[TheoremReport]) -> Table:
    """The terminal table: one row per theorem."""
    out = Table(title="mlverify verify: hypotheses ⇒ conclusion, measured/bound")
    for name, justify in (("theorem", "left"), ("tag", "left"), ("status", "left"),
                          ("trials", "right"), ("met", "right"), ("viol.", "right"),
                          ("worst", "right"), ("median", "right"), ("s", "right")):
        out.add_column(name, justify=justify, no_wrap=True)
    for r in reports:
        style = _STATUS_STYLE[r.status]
        out.add_row(r.id, r.tag, f"[{style}]{r.status}[/{style}]", str(r.trials),
                    str(r.hypotheses_met), str(r.violations), _fmt(r.worst_ratio),
                    _fmt(r.median_ratio), f"{r.seconds:.1f}")
    return out


def as_json(reports: list[TheoremReport], *, seed: int, engine: str, target: int,
            wall_seconds: float) -> dict:
    """The JSON document (DESIGN.md §4: top-level ``violations`` and ``theorems``)."""
    from .. import __version__

    return {
        "mlverify": __version__,
        "seed": seed,
        "engine": engine,
        "target_trials": target,
        "wall_seconds": wall_seconds,
        "violations": sum(r.violations for r in reports),
        "findings": [dict(f, theorem=r.id) for r in reports for f in r.findings],
        "theorems": [r.as_json() for r in reports],
    }


def write_json(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, allow_nan=True) + "\n")


def _figure(report: TheoremReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = [x for x in report.ratios if math.isfinite(x)]
    fig, ax = plt.subplots(figsize=(6, 3.2), layout="constrained")
    if finite:
        ax.hist(finite, bins=30, color="#4c72b0")
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1, label="bound (ratio 1)")
    if report.worst is not None and math.isfinite(report.worst["ratio"]):
        ax.axvline(report.worst["ratio"], color="#c44e52", linewidth=1.5,
                   label=f"tightest {report.worst['ratio']:.3g} (trial {report.worst['trial']}, "
                   f"knob {report.worst['knob']:.2f})")
    ax.set_xlabel("measured / bound")
    ax.set_ylabel("instances")
    ax.set_title(f"{report.id} [{report.tag}] — {report.hypotheses_met} instances, "
                 f"{report.violations} violations", fontsize=10)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(directory: Path, reports: list[TheoremReport], document: dict) -> Path:
    """``report.md``, ``report.json`` and ``<id>.png`` per theorem under ``directory``."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RuntimeError(
            "--report needs matplotlib: pip install 'mlverify[plot]'"
        ) from None
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / "report.json", document)
    lines = [
        "# mlverify verify",
        "",
        f"mlverify {document['mlverify']}, seed {document['seed']}, engine {document['engine']}, "
        f"{document['target_trials']} qualifying trials wanted per theorem, "
        f"{document['wall_seconds']:.1f} s. **{document['violations']} violations.**",
        "",
        "| theorem | tag | paper | status | trials | met | violations | worst | median | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        lines.append(f"| {r.id} | {r.tag} | {r.paper} | {r.status} | {r.trials} | "
                     f"{r.hypotheses_met} | {r.violations} | {_fmt(r.worst_ratio)} | "
                     f"{_fmt(r.median_ratio)} | {r.seconds:.1f} |")
    lines.append("")
    for r in reports:
        name = f"{r.id}.png"
        _figure(r, directory / name)
        lines += [f"## {r.id} [{r.tag}] ({r.paper})", "", r.statement, "", f"![{r.id}]({name})",
                  ""]
        if r.worst is not None:
            lines += [f"Tightest case: ratio {_fmt(r.worst['ratio'])} at trial "
                      f"{r.worst['trial']}, knob {r.worst['knob']:.3f} (replay: "
                      f"`mlverify verify --replay` on a file with this spec).", ""]
        if r.fitted:
            lines += ["Fitted over this run (reported, not asserted): "
                      + ", ".join(f"{k} = {v:.4g}" for k, v in r.fitted.items()) + ".", ""]
        for f in r.findings:
            lines += [f"**Finding** (seed {f['seed']}, knob {f['knob']}): {f['reason']} — "
                      f"{'reproduced' if f['reproduced'] else 'NOT reproduced'}.", ""]
    path = directory / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
