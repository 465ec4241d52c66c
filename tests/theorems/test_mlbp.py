"""MLISTA-gap [MLBP]: fixed-point gap bound, fixed-point polish, lecture-constant fit."""

import dataclasses

import hypothesis
import numpy as np
import pytest
from hypothesis import given

from mlverify import ml_ista
from mlverify.testing.strategies import instances
from mlverify.theorems import get, mlbp

THEOREM = get("MLISTA-gap")
KNOBS = np.linspace(0.0, 0.99, 40)


@given(instances("MLISTA-gap"))
def test_gap_bound_holds(instance):
    assert THEOREM.met(instance)
    outcome = THEOREM.check(instance)
    hypothesis.target(outcome.ratio)
    assert outcome.details["fixed_point_residual"] <= mlbp.FIXED_POINT_TOL
    assert outcome.holds, outcome


def test_floor_and_tightness():
    outcomes = []
    for t, knob in enumerate(KNOBS):
        instance = THEOREM.sample(THEOREM.rng(0, t), float(knob))
        assert THEOREM.met(instance)
        outcomes.append(THEOREM.check(instance))
    assert len(outcomes) == 40
    assert all(o.holds for o in outcomes)
    assert not any(o.details["undecided"] for o in outcomes)  # all proven, none in the band
    ratios = [o.ratio for o in outcomes]
    assert max(ratios) > 0.2  # measured 0.37 over 200 trials (median 0.17)
    # The certified bracket F(γ*) − F_upper <= true gap <= F(γ*) − F_lb is narrow.
    for o in outcomes:
        assert o.details["gap_lower_estimate"] <= o.measured
        assert o.measured - o.details["gap_lower_estimate"] <= 1e-6 + 1e-3 * o.measured
    constants = mlbp.fit_lecture_constants(o.details for o in outcomes)
    assert constants["rows"] == 80
    assert min(constants["eta"], constants["beta"], constants["kappa"]) >= 0
    rows = [(d["lecture_eps"], d["mu"], d["t"], d["lecture_gap"]) for d in (
        o.details for o in outcomes)]
    for eps, mu, t, gap in rows:  # the envelope is an upper bound on every record
        fit = constants["eta_envelope"] * eps + (constants["beta_envelope"]
                                                 + constants["kappa_envelope"] * t) * mu
        assert gap <= fit * (1 + 1e-6) + 1e-12


def test_polish_gives_a_fixed_point_and_ista_agrees():
    instance = THEOREM.sample(np.random.default_rng(5), 0.5)
    gamma, residual, _ = mlbp.fixed_point(instance)
    assert residual <= mlbp.FIXED_POINT_TOL
    # Plain ML-ISTA from zero reaches the same fixed point (ML-ISTA and ML-FISTA agree).
    plain = ml_ista([instance.D1, instance.D2], instance.y, [instance.lam1, instance.lam2],
                    mu=instance.mu, t=instance.t, tol=1e-11, max_iter=200000, check_every=100)
    assert plain.converged
    assert np.linalg.norm(plain.codes[-1] - gamma) <= 1e-8 * max(np.linalg.norm(gamma), 1.0)


def test_gap_is_order_mu():
    """THEORY §4 consequence: the fixed-point gap shrinks with μ (same problem)."""
    base = THEOREM.sample(np.random.default_rng(11), 0.99)
    gaps = []
    for scale in (1.0, 0.25):
        mu = base.mu * scale
        t = 0.9 * 4 * mu / (3 * np.linalg.norm(base.D2, 2) ** 2)
        outcome = THEOREM.check(dataclasses.replace(base, mu=mu, t=t))
        assert outcome.holds
        gaps.append(outcome.measured)
    assert gaps[1] < 0.5 * gaps[0]


def test_check_can_fail(monkeypatch):
    instance = THEOREM.sample(np.random.default_rng(1), 0.3)
    # A point that is not a fixed point (one ML-ISTA step from zero) must not pass.
    monkeypatch.setattr(mlbp, "fixed_point", lambda inst, engine="auto": (
        ml_ista([inst.D1, inst.D2], inst.y, [inst.lam1, inst.lam2], mu=inst.mu, t=inst.t,
                max_iter=1).codes[-1], 1.0, 0))
    assert not THEOREM.check(instance).holds


def test_check_can_fail_on_the_bound(monkeypatch):
    instance = THEOREM.sample(np.random.default_rng(2), 0.3)
    # Report the true fixed point but a bound computed with λ1 / 100: gap > bound.
    real_inner = mlbp.inner_step

    def shrunk(inst, gamma):
        z, u = real_inner(inst, gamma)
        return z, z + (u - z) / 100

    monkeypatch.setattr(mlbp, "inner_step", shrunk)
    outcome = THEOREM.check(instance)
    assert outcome.ratio > 1 and not outcome.holds


def test_fit_recovers_planted_constants():
    rng = np.random.default_rng(0)
    records = []
    for _ in range(30):
        eps, mu, t = rng.uniform(0, 1, 3)
        eps0 = rng.uniform(0, 1e-3)
        records.append({"mu": mu, "t": t, "lecture_eps": eps, "fixed_point_residual": eps0,
                        "lecture_gap": 0.3 * eps + (0.2 + 0.7 * t) * mu,
                        "gap": 0.3 * eps0 + (0.2 + 0.7 * t) * mu})
    fit = mlbp.fit_lecture_constants(records)
    assert fit["eta"] == pytest.approx(0.3) and fit["beta"] == pytest.approx(0.2)
    assert fit["kappa"] == pytest.approx(0.7) and fit["rms"] < 1e-10
    # Exact data: the envelope is the same inequality, tight.
    assert fit["eta_envelope"] == pytest.approx(0.3, abs=1e-6)
    assert fit["beta_envelope"] == pytest.approx(0.2, abs=1e-6)
    assert fit["kappa_envelope"] == pytest.approx(0.7, abs=1e-6)
    with pytest.raises(ValueError, match="records"):
        mlbp.fit_lecture_constants([])
