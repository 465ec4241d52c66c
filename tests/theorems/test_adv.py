"""Theorems ADV-LT, ADV-LBP, ADV-P0 (adversarial robustness, [ADV])."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, target

from mlverify.model.measures import patch_l2_inf
from mlverify.testing.strategies import instances
from mlverify.theorems import adv
from mlverify.theorems._base import get
from mlverify.theorems.jmlr import layer_measures, lt_chain


def _run(theorem_id, instance):
    theorem = get(theorem_id)
    assert theorem.met(instance), theorem.hypotheses(instance)
    outcome = theorem.check(instance)
    target(outcome.ratio)
    assert outcome.holds, outcome
    return outcome


@given(instances("ADV-LT"))
def test_adv_lt_holds_on_every_instance(instance):
    outcome = _run("ADV-LT", instance)
    # LT's own conclusion behind the label: exact supports at every layer.
    assert outcome.details["layer1_support_errors"] == 0
    assert outcome.details["layer2_support_errors"] == 0


@given(instances("ADV-LT-soft"))
def test_adv_lt_soft_holds_on_every_instance(instance):
    outcome = _run("ADV-LT-soft", instance)
    assert outcome.details["layer1_support_errors"] == 0
    assert outcome.details["layer2_support_errors"] == 0


@given(instances("ADV-LBP"))
def test_adv_lbp_holds_on_every_instance(instance):
    outcome = _run("ADV-LBP", instance)
    assert outcome.details["layer2_outside_support"] == 0


@given(instances("ADV-P0"))
def test_adv_p0_holds_on_every_instance(instance):
    outcome = _run("ADV-P0", instance)
    assert outcome.details["competitor_feasible"] == 1.0
    assert outcome.details["true_feasible"] == 1.0


@pytest.mark.parametrize(("theorem_id", "floor"), [("ADV-LT", 0.05), ("ADV-LT-soft", 0.05),
                                                   ("ADV-LBP", 0.1), ("ADV-P0", 0.5)])
def test_adv_floor_and_tightness(theorem_id, floor):
    theorem = get(theorem_id)
    ratios, certified = [], []
    for t in range(40):
        instance = theorem.sample(theorem.rng(0, t), (t + 0.5) / 40 * 0.99)
        assert theorem.met(instance)
        outcome = theorem.check(instance)
        assert outcome.holds, (t, outcome)
        ratios.append(outcome.ratio)
        certified.append(outcome.details["certified/O_B"])
    assert max(ratios) > floor
    assert max(certified) > 0.95  # the knob brings O_B down to the certified shift


@pytest.mark.parametrize("theorem_id", ["ADV-LT", "ADV-LT-soft"])
def test_adv_lt_noise_limit_is_the_boundary(theorem_id):
    theorem = get(theorem_id)
    instance = theorem.sample(np.random.default_rng(1), 0.5)
    layers = layer_measures(instance.model, instance.codes)
    theta = [sum(r) / 2 for r in theorem.theta_ranges]
    limit = adv.lt_noise_limit(layers, theorem.kind, theta)
    assert limit > 0
    for scale, inside in ((0.999, True), (1.001, False)):
        steps = lt_chain(layers, limit * scale, theorem.kind, theta=theta)
        assert all(step.K < step.top for step in steps) == inside
    # The attack has the prescribed patch energy (w = n_1) and the thresholds sit inside the
    # intervals of the measured noise.
    eps = patch_l2_inf(instance.y - instance.signal, 13)
    assert eps == pytest.approx(adv.noise_patch(instance), rel=1e-15)
    steps = lt_chain(layers, eps, theorem.kind, betas=instance.thresholds)
    assert all(step.K < step.beta < step.top for step in steps)


def test_adv_lbp_chain_matches_theory():
    instance = get("ADV-LBP").sample(np.random.default_rng(2), 0.5)
    eps0 = adv.noise_patch(instance)
    eps = adv.lbp_noise(instance.model, instance.codes, eps0)
    # ‖Γ_1‖^p_{0,∞} = 4 with w = n_2 = 7 and ‖Γ_2‖^p_{0,∞} = 1 (w = 1): ε_L^1 = 15ε_0.
    assert eps == pytest.approx([eps0, 15 * eps0, 112.5 * eps0], rel=1e-15)
    outcome = get("ADV-LBP").check(instance)
    assert outcome.details["certified_shift"] == pytest.approx(
        112.5 * eps0 * np.abs(instance.w).sum(), rel=1e-12)


@pytest.mark.parametrize(("theorem_id", "name"), [("ADV-LT", "layered_thresholding"),
                                                  ("ADV-LT-soft", "layered_thresholding"),
                                                  ("ADV-LBP", "certified_bp")])
def test_adv_layered_check_can_fail(theorem_id, name, monkeypatch):
    theorem = get(theorem_id)
    instance = theorem.sample(np.random.default_rng(4), 0.5)
    real = getattr(adv, name)
    score = float(np.sum(instance.w * instance.codes[-1])) + instance.omega
    step = -2 * score * instance.w / np.sum(instance.w**2)

    def flipped(*args, **kwargs):
        # A pursuit whose deepest code moves the classifier output across the boundary.
        result = real(*args, **kwargs)
        if name == "certified_bp":
            codes, exact = result
            deepest = codes.shape == instance.codes[-1].shape
            return (instance.codes[-1] + step if deepest else codes), exact
        return dataclasses.replace(result, codes=[*result.codes[:-1], instance.codes[-1] + step])

    monkeypatch.setattr(adv, name, flipped)
    outcome = theorem.check(instance)
    assert not outcome.holds
    assert outcome.details["pursuit_label_kept"] == 0.0


def test_adv_lt_broken_thresholds_fail():
    theorem = get("ADV-LT")
    instance = theorem.sample(np.random.default_rng(6), 0.5)
    # β_2 above |Γ_2^min| - C_2 (here above every entry): the pursuit loses the support.
    broken = dataclasses.replace(instance, thresholds=(instance.thresholds[0], 10.0))
    assert not theorem.met(broken)
    outcome = theorem.check(broken)
    assert not outcome.holds
    assert outcome.details["layer2_support_errors"] > 0


def test_adv_p0_check_can_fail():
    theorem = get("ADV-P0")
    instance = theorem.sample(np.random.default_rng(8), 0.5)
    # Y is the competitor's signal and ε tiny: ‖E‖₂ <= ε fails, the competitor is feasible and
    # w is aligned with Γ - Γ', so its shift exceeds the certified one.
    D = instance.model.layers[0]
    broken = dataclasses.replace(instance, y=D.synthesize(instance.competitor), budget=1e-3)
    assert not theorem.met(broken)
    outcome = theorem.check(broken)
    assert outcome.details["competitor_feasible"] == 1.0
    assert not outcome.holds
