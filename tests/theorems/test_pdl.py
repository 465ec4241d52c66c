"""Theorem PM (projection stability, [PDL]): instances, floor of qualifying checks, failure."""

import dataclasses

import numpy as np
from hypothesis import given, target

from mlverify.model.measures import stripe_l0_inf
from mlverify.testing.strategies import instances
from mlverify.theorems import pdl
from mlverify.theorems._base import get

THEOREM = get("PM")


@given(instances("PM"))
def test_pm_holds_on_every_instance(instance):
    assert THEOREM.met(instance), THEOREM.hypotheses(instance)
    outcome = THEOREM.check(instance)
    target(outcome.ratio)
    assert outcome.holds, outcome
    assert outcome.details["competitor_feasible"] == 1.0


def test_pm_floor_and_tightness():
    ratios, feasible = [], 0
    for t in range(40):
        instance = THEOREM.sample(THEOREM.rng(0, t), (t + 0.5) / 40 * 0.99)
        assert THEOREM.met(instance)
        outcome = THEOREM.check(instance)
        assert outcome.holds, (t, outcome)
        ratios.append(outcome.ratio)
        feasible += outcome.details["projection_feasible"]
    assert max(ratios) > 0.9  # the competitor makes the deepest bound nearly tight
    assert feasible >= 20  # the OMP projection itself is checked on most instances


def test_pm_instance_structure():
    instance = THEOREM.sample(np.random.default_rng(3), 0.5)
    model = instance.model
    deepest = model.effective(2)
    # k_2 = 1 on the stripe of D^(2) (side 37): isolated spikes, also in the competitor.
    assert pdl.effective_sparsities(model, instance.codes) == [4, 1]
    assert stripe_l0_inf(instance.competitor, deepest.kernel_size[0]) == 1
    # The competitor is the most coherent move: ‖D̃Δ‖² = (1 - μ)‖WΔ‖².
    delta = deepest.atom_norms()[:, None] * (instance.codes[-1] - instance.competitor)
    fit = deepest.normalized().synthesize(delta)
    mu = deepest.normalized().coherence()
    assert np.isclose(np.sum(fit**2), (1 - mu) * np.sum(delta**2), rtol=1e-12)
    assert np.isclose(mu, 11 / 29, rtol=1e-12)


def test_pm_check_can_fail():
    instance = THEOREM.sample(np.random.default_rng(5), 0.5)
    # Y is the competitor's signal and the budget is tiny: ‖Y - X‖ <= E_0 fails, the competitor
    # is feasible and far from Γ, so the bound is violated.
    x_other = instance.model.effective(2).synthesize(instance.competitor)
    broken = dataclasses.replace(instance, y=x_other, budget=1e-3)
    assert not THEOREM.met(broken)
    outcome = THEOREM.check(broken)
    assert outcome.details["competitor_feasible"] == 1.0
    assert not outcome.holds
    assert outcome.ratio > 1


def test_pm_infeasible_projection_is_reported_not_counted(monkeypatch):
    instance = THEOREM.sample(np.random.default_rng(7), 0.3)
    real = pdl.project

    def far_projection(*args, **kwargs):
        result = real(*args, **kwargs)
        return dataclasses.replace(result, codes=[10 * c for c in result.codes])

    monkeypatch.setattr(pdl, "project", far_projection)
    outcome = THEOREM.check(instance)
    assert outcome.details["projection_feasible"] == 0.0
    assert outcome.holds
    assert "projection_layer2_error_sq" not in outcome.details
