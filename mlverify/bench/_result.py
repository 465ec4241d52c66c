"""Results of the side-by-side comparisons, JSON-ready."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


@dataclass
class Metric:
    """One timed quantity for both contenders.

    ``ratio = peer / ours`` (seconds, so > 1 means mlverify is faster); ``goal`` is the ratio
    DESIGN.md §7 asks for (``None`` when the metric is only reported).
    """

    name: str
    ours: float
    peer: float
    goal: float | None = None
    unit: str = "s"

    @property
    def ratio(self) -> float:
        if not (self.ours > 0 and math.isfinite(self.ours) and math.isfinite(self.peer)):
            return math.nan
        return self.peer / self.ours

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else bool(self.ratio >= self.goal)

    def to_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


@dataclass
class Comparison:
    """One side-by-side comparison: the problem, its metrics, progress traces and notes.

    Attributes
    ----------
    name : str
        Short identifier (``"cbpdn-2d"``, ``"csc-1d"``, ``"cnn"``, ``"kernels"``).
    title : str
        One line for the report.
    peer : str
        The peer and its version, e.g. ``"sporco 0.2.2.post1 (ConvBPDN)"``.
    problem : dict
        What was solved (sizes, parameters, dtype, threads, certified optimum …).
    metrics : list of Metric
    traces : dict
        ``{contender: {"time": [...], "value": [...]}}`` for the progress figure (value: the
        relative objective gap above the certified optimum), possibly empty.
    notes : list of str
        Measured facts worth a sentence in the report (densities, iteration counts, …).
    skipped : str, optional
        Why the comparison did not run (peer not installed): then ``metrics`` is empty.
    """

    name: str
    title: str
    peer: str
    problem: dict = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    traces: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["metrics"] = [metric.to_dict() for metric in self.metrics]
        return data
