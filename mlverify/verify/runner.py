"""The trial runner behind ``mlverify verify`` (DESIGN.md §4).

Trial ``t`` of theorem ``T`` in a run seeded with ``seed`` draws its instance from
``T.rng(seed, t)`` at knob :func:`knob_of` ``(t, target)``: the same seed gives the same
instances and the same report whatever the number of worker processes or the order in which
trials finish.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context

import numpy as np

from ..theorems import Theorem, get

#: Trials are drawn until ``target`` instances meet the hypotheses or this many times ``target``
#: attempts were made (samplers are constructive, so all should qualify).
MAX_ATTEMPT_FACTOR = 2
#: Largest knob used by the runner (the boundary itself is excluded).
KNOB_MAX = 0.99


def knob_of(trial: int, target: int) -> float:
    """Knobs spread evenly over ``[0, KNOB_MAX]`` across the first ``target`` trials."""
    return ((trial % target) + 0.5) / target * KNOB_MAX


@dataclass(frozen=True)
class TrialRecord:
    """One trial: where it was drawn and what the check found."""

    theorem: str
    seed: int
    trial: int
    knob: float
    met: bool
    holds: bool | None = None
    measured: float = math.nan
    bound: float = math.nan
    ratio: float = math.nan
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    def replay_spec(self, engine: str) -> dict:
        """What ``mlverify verify --replay`` needs to rebuild and re-check this instance."""
        from .. import __version__

        return {
            "theorem": self.theorem,
            "seed": self.seed,
            "trial": self.trial,
            "knob": self.knob,
            "engine": engine,
            "mlverify": __version__,
            "measured": self.measured,
            "bound": self.bound,
            "ratio": self.ratio,
            "holds": self.holds,
        }


def run_trial(theorem: Theorem, seed: int, trial: int, knob: float, engine: str) -> TrialRecord:
    """Sample, test the hypotheses and, when they hold, check the conclusion."""
    start = time.perf_counter()
    instance = theorem.sample(theorem.rng(seed, trial), knob)
    if not theorem.met(instance):
        return TrialRecord(theorem.id, seed, trial, knob, met=False,
                           seconds=time.perf_counter() - start)
    outcome = theorem.check(instance, engine=engine)
    return TrialRecord(
        theorem.id, seed, trial, knob, met=True, holds=bool(outcome.holds),
        measured=float(outcome.measured), bound=float(outcome.bound), ratio=float(outcome.ratio),
        seconds=time.perf_counter() - start, details=dict(outcome.details),
    )


def _run_chunk(theorem_id: str, seed: int, trials: Sequence[int], target: int,
               engine: str) -> list[TrialRecord]:
    theorem = get(theorem_id)
    return [run_trial(theorem, seed, t, knob_of(t, target), engine) for t in trials]


@dataclass
class TheoremReport:
    """Aggregate of one theorem's trials (the rows of the verify table and JSON)."""

    id: str
    paper: str
    tag: str
    statement: str
    trials: int
    hypotheses_met: int
    violations: int
    worst_ratio: float
    median_ratio: float
    seconds: float
    floor: int
    worst: dict | None = None
    violating: list[dict] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)
    fitted: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        """``violated`` (a conclusion failed), ``insufficient`` (fewer qualifying trials than the
        floor), ``finding`` (only known findings reproduced) or ``ok``."""
        if self.violations:
            return "violated"
        if self.hypotheses_met < self.floor:
            return "insufficient"
        if any(f["reproduced"] for f in self.findings):
            return "finding"
        return "ok"

    def as_json(self) -> dict:
        data = asdict(self)
        data["status"] = self.status
        data.pop("ratios")
        return data


def summarise(theorem: Theorem, records: Iterable[TrialRecord], floor: int, seconds: float,
              engine: str, findings: list[dict]) -> TheoremReport:
    """Aggregate trial records into a :class:`TheoremReport`."""
    records = sorted(records, key=lambda r: r.trial)
    met = [r for r in records if r.met]
    ratios = [r.ratio for r in met]
    finite = [x for x in ratios if math.isfinite(x)]
    worst = max(met, key=lambda r: r.ratio if math.isfinite(r.ratio) else math.inf, default=None)
    return TheoremReport(
        id=theorem.id, paper=theorem.paper, tag=theorem.status, statement=theorem.statement,
        trials=len(records), hypotheses_met=len(met),
        violations=sum(1 for r in met if not r.holds),
        worst_ratio=max(ratios, default=math.nan),
        median_ratio=float(np.median(finite)) if finite else math.nan,
        seconds=seconds, floor=floor,
        worst=None if worst is None else worst.replay_spec(engine),
        violating=[r.replay_spec(engine) for r in met if not r.holds],
        ratios=ratios, findings=findings,
        fitted=theorem.summarise([r.details for r in met]) if met else {},
    )


def replay_findings(theorem: Theorem, engine: str) -> list[dict]:
    """Re-check every recorded :class:`~mlverify.theorems.Finding` of ``theorem``."""
    results = []
    for finding in theorem.findings:
        instance = theorem.sample(np.random.default_rng(finding.seed), finding.knob)
        outcome = theorem.check(instance, engine=engine)
        results.append({"seed": finding.seed, "knob": finding.knob, "reason": finding.reason,
                        "met": theorem.met(instance), "reproduced": not outcome.holds,
                        "ratio": outcome.ratio})
    return results


def _search_task(theorem_id: str, seed: int, engine: str, budget: int,
                 start: TrialRecord | None) -> list[TrialRecord]:
    from .tightness import search

    return search(get(theorem_id), seed, engine, budget, start)


def run(theorem_ids: Sequence[str], target: int, seed: int, engine: str, workers: int = 1,
        chunk: int = 25, search_budget: int = 0,
        progress: Callable[[str, int], None] | None = None) -> list[TheoremReport]:
    """Run every theorem until ``target`` trials met its hypotheses (or the attempts run out).

    Parameters
    ----------
    theorem_ids : sequence of str
        Registry ids.
    target : int
        Qualifying trials wanted per theorem (also the floor of the report).
    seed : int
        Run seed; trial ``t`` uses ``Theorem.rng(seed, t)``.
    engine : str
        Passed to every check.
    workers : int
        Processes (1 runs in this process). Results do not depend on it. Workers are spawned
        (not forked), so only theorems registered by importing :mod:`mlverify` exist there.
    chunk : int
        Trials per task sent to a worker.
    search_budget : int
        Extra instances per theorem visited by the tightness search
        (:func:`mlverify.verify.tightness.search`), started from the worst trial of the run.
    progress : callable, optional
        ``progress(theorem_id, n_done_trials)`` after each chunk and each search.
    """
    theorems = [get(i) for i in theorem_ids]
    records: dict[str, list[TrialRecord]] = {t.id: [] for t in theorems}
    elapsed = dict.fromkeys(records, 0.0)
    pending = {t.id: 0 for t in theorems}  # next trial index

    def tasks_for(theorem_id: str) -> list[list[int]]:
        met = sum(r.met for r in records[theorem_id])
        start = pending[theorem_id]
        limit = MAX_ATTEMPT_FACTOR * target
        wanted = min(target - met, limit - start)
        if wanted <= 0:
            return []
        pending[theorem_id] = start + wanted
        trial_ids = list(range(start, start + wanted))
        return [trial_ids[i : i + chunk] for i in range(0, len(trial_ids), chunk)]

    def collect(theorem_id: str, chunk_records: list[TrialRecord]) -> None:
        records[theorem_id].extend(chunk_records)
        elapsed[theorem_id] += sum(r.seconds for r in chunk_records)
        if progress is not None:
            progress(theorem_id, len(chunk_records))

    def worst(theorem_id: str) -> TrialRecord | None:
        met = [r for r in records[theorem_id] if r.met and math.isfinite(r.ratio)]
        return max(met, key=lambda r: r.ratio, default=None)

    # "spawn": forking a process whose OpenMP/Numba thread pool is running is unsafe.
    pool = None if workers <= 1 else ProcessPoolExecutor(
        max_workers=workers, initializer=_single_thread, mp_context=get_context("spawn")
    )
    try:
        while True:
            batch = [(t.id, _run_chunk, (t.id, seed, ids, target, engine))
                     for t in theorems for ids in tasks_for(t.id)]
            if not batch:
                break
            _execute(pool, batch, collect)
        if search_budget > 0:
            batch = [(t.id, _search_task, (t.id, seed, engine, search_budget, worst(t.id)))
                     for t in theorems]
            _execute(pool, batch, collect)
    finally:
        if pool is not None:
            pool.shutdown()
    return [
        summarise(t, records[t.id], target, elapsed[t.id], engine, replay_findings(t, engine))
        for t in theorems
    ]


def _execute(pool, batch, collect) -> None:
    """Run ``(theorem_id, function, args)`` tasks here or in ``pool``, collecting in order."""
    if pool is None:
        for theorem_id, function, args in batch:
            collect(theorem_id, function(*args))
        return
    futures = [(theorem_id, pool.submit(function, *args)) for theorem_id, function, args in batch]
    for theorem_id, future in futures:
        collect(theorem_id, future.result())


def _single_thread() -> None:
    """Worker initialiser: one kernel thread per process (the processes share the cores)."""
    from ..kernels import cpu

    cpu.set_thread_count(1)
