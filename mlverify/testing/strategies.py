"""Hypothesis strategies over the theorem samplers (DESIGN.md §6).

Instances are built **constructively** by :meth:`mlverify.theorems.Theorem.sample` (never by
filtering random draws), so every example meets the theorem's hypotheses::

    from hypothesis import given
    from mlverify.testing.strategies import instances
    from mlverify.theorems import get

    @given(instances("W7"))
    def test_my_bp_solver(instance):
        ...  # run your own pursuit on the instance, compare with get("W7").check(instance)

The ``knob`` strategy moves instances toward the boundary of the hypotheses; with
``hypothesis.target`` on the measured/bound ratio Hypothesis can search for the tightest cases.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from ..theorems import get

#: Knobs strictly below 1: the boundary itself is excluded (strict hypotheses).
KNOB_MAX = 0.99


def knobs(low: float = 0.0, high: float = KNOB_MAX) -> st.SearchStrategy[float]:
    """Positions between comfortably inside the hypotheses (0) and their boundary (→ 1)."""
    if not 0.0 <= low <= high < 1.0:
        raise ValueError(f"need 0 <= low <= high < 1, got low={low}, high={high}")
    return st.floats(low, high, allow_nan=False)


def instances(
    theorem_id: str, knob: st.SearchStrategy[float] | None = None
) -> st.SearchStrategy[Any]:
    """Instances of theorem ``theorem_id`` meeting its hypotheses by construction."""
    theorem = get(theorem_id)
    return st.builds(
        lambda seed, k: theorem.sample(np.random.default_rng(seed), k),
        st.integers(0, 2**32 - 1),
        knobs() if knob is None else knob,
    )
