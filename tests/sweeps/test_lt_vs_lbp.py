"""The ``lt-vs-lbp`` sweep: instances, thresholds, theorem regions, quick run and report."""

import math

import numpy as np
import pytest

from mlverify import layered_thresholding, sample_instance, stripe_l0_inf
from mlverify.sweeps import Store, run_sweep, write_report
from mlverify.sweeps import lt_vs_lbp as sweep_module


def _instance(seed: int, contrast: float, eps0: float):
    rng = np.random.default_rng(seed)
    model = sweep_module.model()
    gamma2 = sweep_module.spikes(rng, model.layers[1].n_atoms, contrast)
    return sample_instance(model, sweep_module.N, rng, deepest=gamma2, noise_patch=eps0)


@pytest.mark.parametrize("contrast", [0.1, 0.35, 1.0])
def test_spikes_have_exact_contrast_and_the_theory_sparsities(contrast):
    instance = _instance(3, contrast, 0.01)
    for layer in instance.layers:
        assert layer.contrast == pytest.approx(contrast, rel=1e-12)
    model = instance.model
    assert stripe_l0_inf(instance.codes[0], 13) == 4 == instance.layers[0].stripe_sparsity
    assert stripe_l0_inf(instance.codes[1], 7) == 1
    assert instance.layers[0].patch_sparsity == 4
    assert np.count_nonzero(instance.codes[1]) == sweep_module.N // sweep_module.SPACING
    assert model.layers[0].coherence() == pytest.approx(1 / 13)
    assert model.layers[1].coherence() == pytest.approx(1 / 4)
    assert instance.noise_patch == pytest.approx(0.01, rel=1e-12)


def test_lbp_levels_follow_the_theorem():
    instance = _instance(4, 0.5, 0.002)
    assert sweep_module.lbp_levels(instance) == pytest.approx([0.002, 0.03, 0.225])


def test_hard_thresholds_use_the_lt_interval_where_it_is_non_empty():
    # Layer 1: C = 3/26 + ε, K = 4/26 + ε; layer 2: ε_L^1 = 2C_1, C_2 = ε_L^1, K_2 = 1/4 + ε_L^1.
    eps0, contrast = 0.01, 1.0
    betas, theorem = sweep_module.lt_thresholds(_instance(5, contrast, eps0), "hard")
    assert theorem
    c1, k1 = 3 / 26 + eps0, 4 / 26 + eps0
    eps1 = 2 * c1
    assert betas[0] == pytest.approx(0.5 * (k1 + contrast / 2 - c1))
    assert betas[1] == pytest.approx(0.5 * (0.25 + eps1 + contrast - eps1))
    # Below the LT condition c > 1/4 + 2ε_L^1 the oracle rule takes over.
    assert not sweep_module.lt_thresholds(_instance(5, 0.6, eps0), "hard")[1]
    # Soft thresholding cannot meet LT on THEORY's D_2 (see mlverify.theorems.jmlr).
    assert not sweep_module.lt_thresholds(_instance(5, 1.0, 1e-4), "soft")[1]


@pytest.mark.parametrize("kind", ["hard", "soft"])
def test_oracle_thresholds_recover_the_noiseless_support(kind):
    instance = _instance(6, 0.6, 0.0)
    betas, theorem = sweep_module.lt_thresholds(instance, kind)
    assert not theorem
    codes = layered_thresholding(instance.model, instance.signal, betas, kind).codes
    for estimate, truth in zip(codes, instance.codes, strict=True):
        assert np.array_equal(estimate != 0, truth != 0)


def test_trial_is_pure_and_its_record_is_sane():
    params = {"eps0": 0.003, "contrast": 0.9}
    record = sweep_module.trial(params, 99)
    assert record == sweep_module.trial(params, 99)
    assert record != sweep_module.trial(params, 100)
    assert record["eps_l0"] == pytest.approx(0.003, rel=1e-12)
    assert record["contrast_1"] == pytest.approx(0.9) == record["contrast_2"]
    assert (record["k_1"], record["k_2"], record["patch_1"]) == (4, 1, 4)
    assert record["hard_theorem"] and not record["soft_theorem"]
    assert record["lbp_theorem"] and record["lbp_support_theorem"]  # 0.45 > 7.5ε₀, 0.9 > 7.5 · 15ε₀
    assert record["lbp_gap"] <= sweep_module.BP_TOL
    for prefix in ("hard", "soft", "lbp"):
        for layer in (1, 2):
            assert 0 <= record[f"{prefix}_relerr_{layer}"] < math.inf
        assert record[f"{prefix}_support"] == (record[f"{prefix}_support_1"]
                                                and record[f"{prefix}_support_2"])


def test_quick_sweep_report_and_expected_outcomes(tmp_path):
    sweep = sweep_module.SWEEP.variant(True)
    with Store(tmp_path / "s.sqlite") as store:
        run_sweep(sweep, store, executor="serial")
        rows = store.rows(sweep)
    assert len(rows) == sweep.size == 27
    for row in rows:  # the theorems are sufficient: inside them the support must be recovered
        r = row.record
        assert r["contrast_1"] == pytest.approx(row.params["contrast"])
        if r["hard_theorem"]:
            assert r["hard_support"], row
        if r["lbp_theorem"]:
            assert r["lbp_subset"] and r["lbp_patch_error_ratio"] <= 1 + 1e-9, row
        if r["lbp_support_theorem"]:
            assert r["lbp_support"], row
    assert any(r.record["hard_theorem"] for r in rows)
    assert any(r.record["lbp_support_theorem"] for r in rows)
    found = sweep_module.findings(rows)
    # THEORY.md §6: thresholding collapses as the contrast falls; layered BP does not at low noise
    # and beats thresholding somewhere; no theorem is contradicted.
    assert found["low_hard"] < found["high_hard"] and found["low_soft"] < found["high_soft"]
    assert found["low_lbp"] > found["low_hard"] and found["lbp_wins_cells"] >= 1
    assert found["relerr_lbp_1"] < min(found["relerr_hard_1"], found["relerr_soft_1"])
    assert sum(found[f"violations_{p}"] for p in ("hard", "soft", "lbp")) == 0
    paths = write_report(sweep, rows, tmp_path / "reports")
    assert [p.name for p in paths] == ["lt-vs-lbp-quick.png", "lt-vs-lbp-quick-error.png",
                                       "lt-vs-lbp-quick.md"]
    for figure in paths[:2]:
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000
    text = paths[2].read_text()
    assert "![success maps](lt-vs-lbp-quick.png)" in text
    for label in ("hard LT", "soft LT", "layered BP"):
        assert f"## {label}: success rate" in text
    assert text.count("\n| 1 | ") == 3 and text.count("\n| 0.1 | ") == 3
