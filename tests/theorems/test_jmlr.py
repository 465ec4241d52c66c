"""Theorems of [JMLR] (J2, LT-hard/soft/relu, LBP, LBP-noiseless, SP): every instance meets the
hypotheses and passes, a floor of qualifying checks exercises the bounds, and every check can
fail."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, target
from hypothesis import strategies as st

from mlverify.model.measures import patch_l2_inf, stripe_l0_inf
from mlverify.testing.strategies import instances
from mlverify.theorems import jmlr
from mlverify.theorems._base import get

IDS = ("J2", "LT-hard", "LT-soft", "LT-relu", "LBP", "LBP-noiseless", "SP")

#: Smallest worst ratio over the 40 floor trials: the bound is actually exercised.
TIGHTNESS = {"J2": 0.3, "LT-hard": 0.4, "LT-soft": 0.8, "LT-relu": 0.8, "LBP": 0.4, "SP": 0.99}


@pytest.mark.parametrize("theorem_id", IDS)
@given(data=st.data())
def test_holds_on_every_instance(theorem_id, data):
    theorem = get(theorem_id)
    instance = data.draw(instances(theorem_id))
    assert theorem.met(instance), theorem.hypotheses(instance)
    outcome = theorem.check(instance)
    target(outcome.ratio)
    assert outcome.holds, outcome


def _floor(theorem_id):
    theorem = get(theorem_id)
    trials = [theorem.sample(theorem.rng(0, t), (t + 0.5) / 40 * 0.99) for t in range(40)]
    assert all(theorem.met(instance) for instance in trials)
    outcomes = [theorem.check(instance) for instance in trials]
    assert all(outcome.holds for outcome in outcomes), [o for o in outcomes if not o.holds]
    return trials, outcomes


@pytest.mark.parametrize("theorem_id", sorted(TIGHTNESS))
def test_floor_and_tightness(theorem_id):
    _, outcomes = _floor(theorem_id)
    assert max(outcome.ratio for outcome in outcomes) > TIGHTNESS[theorem_id]


def test_lbp_noiseless_floor_reaches_the_sparsity_boundary():
    trials, outcomes = _floor("LBP-noiseless")
    sparsities = {stripe_l0_inf(instance.codes[0], 13) for instance in trials}
    # k_1 = 6 is the largest stripe sparsity below ½(1 + 1/μ_1) = 7 for Barker-13.
    assert sparsities == {4, 5, 6}
    assert max(outcome.measured for outcome in outcomes) < 1e-12


def test_lbp_solutions_are_kkt_certified():
    theorem = get("LBP")
    for t in range(10):
        outcome = theorem.check(theorem.sample(theorem.rng(1, t), t / 10))
        assert outcome.details["KKT-certified"] == 1.0


def test_j2_candidates_are_feasible_and_reach_the_noise_boundary():
    theorem = get("J2")
    instance = theorem.sample(np.random.default_rng(2), 0.99)
    outcome = theorem.check(instance)
    assert outcome.details["feasible candidates"] == 6.0
    # Worst-case noise (in the range of A): the ellipsoid point moves ‖D_1Δ_1‖ to about 2E_0.
    model = instance.model
    gamma2 = dict(jmlr._dcp_candidates(instance, "auto"))["ellipsoid layer 1 -1"]
    moved = model.layers[0].synthesize(model.layers[1].synthesize(gamma2 - instance.codes[1]))
    assert np.linalg.norm(moved) > 1.9 * instance.radius


# ----------------------------------------------------------------------------------------------
# Layered thresholding specifics
# ----------------------------------------------------------------------------------------------


def test_hard_thresholding_is_invariant_across_the_interval():
    theorem = get("LT-hard")
    instance = theorem.sample(np.random.default_rng(4), 0.9)
    _, steps = theorem._steps(instance)
    outputs = [jmlr.layered_thresholding(instance.model, instance.y,
                                         [s.K + theta * (s.top - s.K) for s in steps], "hard").codes
               for theta in (0.01, 0.3, 0.7, 0.99)]
    for other in outputs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(outputs[0], other, strict=True))


def test_soft_needs_beta_in_the_propagated_error():
    # THEORY §7.5: without β_i in ε_L^i the soft forward pass exceeds the (hard) patch bound.
    theorem = get("LT-soft")
    instance = theorem.sample(np.random.default_rng(6), 0.5)
    layers, steps = theorem._steps(instance)
    eps0 = float(patch_l2_inf(instance.noise, 13))
    hard_steps = jmlr.lt_chain(layers, eps0, "hard", betas=instance.thresholds)
    estimate = jmlr.layered_thresholding(instance.model, instance.y, list(instance.thresholds),
                                         "soft").codes[0]
    error = float(patch_l2_inf(estimate - instance.codes[0], 4))
    assert hard_steps[0].eps_out < error <= steps[0].eps_out


def test_soft_is_infeasible_with_four_golomb_marks():
    # THEORY §5's D_2 (marks {0,1,4,6}): even noiseless with β_1 → K_1, layer 2's interval is
    # empty, hence LT-soft uses two marks.
    model = jmlr.golomb_model(*jmlr.GOLOMB4)
    codes = tuple(model.synthesize(jmlr.planted_spikes(np.random.default_rng(0), 2, 32, 1.0, 1.0,
                                                False))[1:])
    steps = jmlr.lt_chain(jmlr.layer_measures(model, codes), 0.0, "soft", theta=(1e-9, 0.5))
    assert steps[0].top > steps[0].K
    assert steps[1].top < steps[1].K


def test_relu_instances_are_nonnegative():
    theorem = get("LT-relu")
    instance = theorem.sample(np.random.default_rng(8), 0.7)
    assert all((gamma >= 0).all() for gamma in instance.codes)


# ----------------------------------------------------------------------------------------------
# Every check can fail
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("theorem_id", ("LT-hard", "LT-soft", "LT-relu"))
def test_lt_check_fails_outside_the_interval(theorem_id):
    theorem = get(theorem_id)
    instance = theorem.sample(np.random.default_rng(10), 0.5)
    broken = dataclasses.replace(instance, thresholds=(instance.thresholds[0], 0.0))
    assert not theorem.met(broken)
    assert not theorem.check(broken).holds


def test_lt_hard_check_detects_a_broken_invariance(monkeypatch):
    theorem = get("LT-hard")
    instance = theorem.sample(np.random.default_rng(11), 0.5)
    real = jmlr.layered_thresholding

    def drifting(model, y, thresholds, kind, engine="auto"):
        result = real(model, y, thresholds, kind, engine=engine)
        if tuple(thresholds) != instance.thresholds:
            result.codes[-1] = result.codes[-1] * (1 + 1e-9)
        return result

    monkeypatch.setattr(jmlr, "layered_thresholding", drifting)
    outcome = theorem.check(instance)
    assert outcome.details["same output across the intervals"] == 0.0
    assert not outcome.holds


def test_j2_check_fails_with_understated_radii(monkeypatch):
    theorem = get("J2")
    instance = theorem.sample(np.random.default_rng(12), 0.9)
    real = jmlr.DCPStability._radii
    monkeypatch.setattr(jmlr.DCPStability, "_radii",
                        lambda self, inst: [r / 100 for r in real(self, inst)])
    outcome = theorem.check(instance)
    assert not outcome.holds
    assert outcome.ratio > 1


def test_j2_infeasible_candidates_are_not_counted(monkeypatch):
    theorem = get("J2")
    instance = theorem.sample(np.random.default_rng(13), 0.5)
    real = jmlr.omp

    def far(*args, **kwargs):
        result = real(*args, **kwargs)
        return dataclasses.replace(result, codes=[10 * c for c in result.codes])

    monkeypatch.setattr(jmlr, "omp", far)
    outcome = theorem.check(instance)
    assert outcome.details["OMP on D1D2: infeasible"] == 1.0
    assert outcome.details["feasible candidates"] == 5.0
    assert outcome.holds


def test_lbp_check_fails_when_the_noise_is_understated():
    theorem = get("LBP")
    instance = theorem.sample(np.random.default_rng(14), 0.5)
    # ξ_1 = 4ε computed from a noise 100 times smaller than the one in y: BP fits the noise.
    broken = dataclasses.replace(instance, noise=instance.noise / 100)
    outcome = theorem.check(broken)
    assert not outcome.holds
    assert outcome.details["non-zeros outside supp(Γ_1)"] > 0


def test_lbp_noiseless_check_fails_on_a_noisy_signal():
    theorem = get("LBP-noiseless")
    instance = theorem.sample(np.random.default_rng(15), 0.5)
    noise = 1e-3 * np.random.default_rng(0).standard_normal(instance.y.shape)
    broken = dataclasses.replace(instance, noise=noise, y=instance.y + noise)
    assert not theorem.met(broken)
    assert not theorem.check(broken).holds


def test_sp_check_fails_with_an_understated_column_count(monkeypatch):
    theorem = get("SP")
    instance = theorem.sample(np.random.default_rng(16), 0.99)
    real = jmlr._column_nonzeros
    monkeypatch.setattr(jmlr, "_column_nonzeros", lambda D: real(D) - 1)
    assert not theorem.check(instance).holds


def test_sp_column_count_matches_the_global_matrix():
    theorem = get("SP")
    instance = theorem.sample(np.random.default_rng(17), 0.3)
    for layer in instance.model.layers:
        dense = layer.to_dense((64,))
        assert jmlr._column_nonzeros(layer) == np.count_nonzero(dense, axis=0).max()
