"""Tightness search: drive instances toward measured/bound → 1 (DESIGN.md §1.2).

The samplers' knob moves an instance toward the boundary of the hypotheses, where a sufficient
condition is tightest. The search draws fresh trials at knobs skewed toward the boundary, then
refines around the worst one found (same trial generator, nearby knobs). It only reports: the
conclusion is checked on every instance it visits, and a violation found here counts like any
other.
"""

from __future__ import annotations

import math

import numpy as np

from ..theorems import Theorem
from .runner import KNOB_MAX, TrialRecord, run_trial

#: Trial indices of the search start here, away from the main run's.
SEARCH_OFFSET = 1_000_000


def _key(record: TrialRecord) -> float:
    return record.ratio if record.met and math.isfinite(record.ratio) else -math.inf


def search(theorem: Theorem, seed: int, engine: str, budget: int,
           start: TrialRecord | None = None) -> list[TrialRecord]:
    """Visit ``budget`` instances of ``theorem`` chosen to maximise measured/bound.

    Half the budget explores knobs ``1 - (1 - KNOB_MAX)·…`` skewed toward the boundary
    (``KNOB_MAX·(1 − u²)``, u uniform); the other half refines around the worst instance so far
    (``start`` included), halving the step each time it fails to improve.
    """
    if budget <= 0:
        return []
    rng = np.random.default_rng([seed, SEARCH_OFFSET])
    records: list[TrialRecord] = []
    explore = budget - budget // 2
    for i in range(explore):
        knob = KNOB_MAX * (1 - rng.random() ** 2)
        records.append(run_trial(theorem, seed, SEARCH_OFFSET + i, knob, engine))
    candidates = [*records, *([start] if start is not None else [])]
    best = max(candidates, key=_key)
    if not best.met:
        return records
    step = 0.1
    for _ in range(budget // 2):
        direction = 1.0 if rng.random() < 0.7 else -1.0
        knob = float(np.clip(best.knob + direction * step, 0.0, KNOB_MAX))
        record = run_trial(theorem, seed, best.trial, knob, engine)
        records.append(record)
        if _key(record) > _key(best):
            best = record
        else:
            step /= 2
    return records
