"""Aggregation of stored trials and the generic Markdown summary of a sweep."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .store import Row
from .sweep import Sweep


@dataclass(frozen=True)
class CellSummary:
    """The trials of one grid cell, aggregated.

    Attributes
    ----------
    cell : int
    params : dict
    trials : int
        Stored trials of the cell.
    means : dict of str to float
        Mean of every numeric or bool record field over the cell's trials (bools count 0/1;
        NaN values are skipped; NaN when no trial has a finite value).
    """

    cell: int
    params: dict
    trials: int
    means: dict[str, float]


def aggregate(rows: list[Row]) -> list[CellSummary]:
    """Per-cell means of the numeric and bool record fields, in cell order."""
    by_cell: dict[int, list[Row]] = {}
    for row in rows:
        by_cell.setdefault(row.cell, []).append(row)
    summaries = []
    for cell in sorted(by_cell):
        group = by_cell[cell]
        fields = [key for key, value in group[0].record.items() if not isinstance(value, str)]
        means = {}
        for key in fields:
            values = [float(r.record[key]) for r in group
                      if key in r.record and not math.isnan(float(r.record[key]))]
            means[key] = math.fsum(values) / len(values) if values else math.nan
        summaries.append(CellSummary(cell, group[0].params, len(group), means))
    return summaries


def _format(value) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def markdown_table(summaries: list[CellSummary], fields: list[str] | None = None) -> str:
    """A Markdown table: one row per cell, its parameters, trial count and field means."""
    if not summaries:
        return "(no trials stored)\n"
    axes = list(summaries[0].params)
    if fields is None:
        fields = list(dict.fromkeys(key for s in summaries for key in s.means))
    header = [*axes, "trials", *fields]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in summaries:
        cells = [_format(s.params[a]) for a in axes] + [str(s.trials)]
        cells += [_format(s.means.get(key, math.nan)) for key in fields]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(sweep: Sweep, rows: list[Row], out_dir: Path) -> list[Path]:
    """Write ``<out_dir>/<sweep>.md``: the per-cell means of every field (the default report)."""
    path = Path(out_dir) / f"{sweep.name}.md"
    text = (f"# Sweep `{sweep.name}`\n\n{sweep.description}\n\n"
            f"{len(sweep.grid)} cells × {sweep.trials} trials; {len(rows)} stored. "
            "Means per cell (bools: fraction true).\n\n" + markdown_table(aggregate(rows)))
    path.write_text(text)
    return [path]


def write_figure_and_summary(sweep: Sweep, rows: list[Row], out_dir: Path,
                             draw: Callable[[list[Row], Path], Path],
                             describe: Callable[[Sweep, list[Row], Path], str]) -> list[Path]:
    """The usual ``Sweep.report`` body: ``<sweep>.png`` by ``draw(rows, path)``, then
    ``<sweep>.md`` with the text ``describe(sweep, rows, figure)``; the files written."""
    figure = draw(rows, out_dir / f"{sweep.name}.png")
    summary = out_dir / f"{sweep.name}.md"
    summary.write_text(describe(sweep, rows, figure))
    return [figure, summary]


def write_report(sweep: Sweep, rows: list[Row], out_dir) -> list[Path]:
    """The sweep's own report (``sweep.report``) or :func:`write_summary`; the files written.

    Refuses an empty store and creates ``out_dir``, so the writers only draw and describe.
    """
    if not rows:
        raise ValueError(f"sweep {sweep.name!r} has no stored trials to report")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = sweep.report if sweep.report is not None else write_summary
    return writer(sweep, rows, out_dir)
