"""The built-in ``ml-ista-convergence`` sweep: FISTA with an inner prox, the trial, the report."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_info

from mlverify import ConvDictionary, ml_objective, solve_problem_p
from mlverify.pursuits._linear import MatrixOperator
from mlverify.pursuits._problem_p import generalized_lasso_admm
from mlverify.sweeps import Store, run_sweep, write_report
from mlverify.sweeps import ml_ista_convergence as mic


def _prox_objective(x, v, D2, a, b):
    return 0.5 * float(np.sum((x - v) ** 2)) + a * float(np.abs(D2 @ x).sum()) \
        + b * float(np.abs(x).sum())


@settings(max_examples=12)
@given(seed=st.integers(0, 2**32 - 1), m1=st.integers(2, 8), m2=st.integers(2, 12),
       a=st.floats(0.01, 2.0), b=st.floats(0.0, 1.0))
def test_coupled_prox_matches_an_independent_admm_solve(seed, m1, m2, a, b):
    rng = np.random.default_rng(seed)
    D2 = rng.standard_normal((m1, m2))
    v = rng.standard_normal(m2) * 2.0
    op = MatrixOperator(D2)
    x, w, gap, _ = mic.coupled_prox(v, [op], np.array([a]), b, [np.zeros(m1)],
                                    lipschitz=op.norm() ** 2, tol=1e-12, max_iter=5000)
    assert np.all(np.abs(w[0]) <= a * (1 + 1e-12))
    value = _prox_objective(x, v, D2, a, b)
    # The duality gap the solver reports is exactly P(x) minus the dual value at w.
    dual = 0.5 * float(np.sum((x - v) ** 2)) + b * float(np.abs(x).sum()) \
        + float(w[0] @ (D2 @ x))
    assert gap == pytest.approx(value - dual, abs=1e-9 * max(1.0, value))
    # Independent reference: the generalised lasso ½‖v − x‖² + a‖D2x‖₁ + b‖x‖₁ by ADMM.
    lams = np.array([a, b if b > 0 else 1e-12])
    reference, result = generalized_lasso_admm(
        MatrixOperator(np.eye(m2)), [op, MatrixOperator(np.eye(m2))], lams, v, nonneg=False,
        tol=1e-10, max_iter=20000)
    lower = result.history["dual_objective"][-1]
    assert value >= lower - 1e-9 * max(1.0, abs(lower))
    if gap <= 1e-12:
        assert value <= _prox_objective(reference, v, D2, a, b) + 1e-9 * max(1.0, value)


def _dense_instance(seed, n=12, m1=18, m2=24):
    rng = np.random.default_rng(seed)
    D1 = rng.standard_normal((n, m1)) / np.sqrt(n)
    D2 = rng.standard_normal((m1, m2)) / np.sqrt(m1)
    gamma = np.zeros(m2)
    gamma[rng.choice(m2, 3, replace=False)] = rng.standard_normal(3)
    y = D1 @ (D2 @ gamma) + 0.05 * rng.standard_normal(n)
    return [D1, D2], y, [0.3 * np.abs(D1.T @ y).max(), 0.05 * np.abs((D1 @ D2).T @ y).max()]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fista_reaches_the_certified_optimum_dense(seed):
    layers, y, lams = _dense_instance(seed)
    reference = solve_problem_p(layers, y, lams, tol=1e-11)
    lower = reference.history["dual_objective"][-1]
    result = mic.fista_problem_p(layers, y, lams, max_iter=3000, tol=1e-9)
    value = ml_objective(layers, y, result.codes[-1], lams)
    assert lower - 1e-12 <= value <= lower + 1e-7 * abs(lower)
    assert np.allclose(result.codes[0], layers[1] @ result.codes[-1])
    assert len(result.history["inner_iterations"]) == result.n_iter
    assert max(result.history["inner_iterations"]) <= mic.MAX_INNER


def test_fista_reaches_the_certified_optimum_convolutional():
    rng = np.random.default_rng(3)
    D1 = ConvDictionary(rng.standard_normal((2, 1, 5)) / np.sqrt(5))
    D2 = ConvDictionary(rng.standard_normal((3, 2, 3)) / np.sqrt(6))
    gamma = np.zeros((3, 24))
    gamma[rng.integers(0, 3, 3), rng.choice(24, 3, replace=False)] = 1.0
    y = D1.synthesize(D2.synthesize(gamma)) + 0.05 * rng.standard_normal((1, 24))
    lams = [0.2, 0.05]
    reference = solve_problem_p([D1, D2], y, lams, tol=1e-9, check_every=25)
    lower = reference.history["dual_objective"][-1]
    result = mic.fista_problem_p([D1, D2], y, lams, max_iter=200, tol=1e-9)
    value = ml_objective([D1, D2], y, result.codes[-1], lams)
    assert lower - 1e-12 <= value <= lower + 1e-6 * abs(lower)  # 2e-7 measured
    numpy = mic.fista_problem_p([D1, D2], y, lams, max_iter=20, engine="numpy")
    assert np.allclose(numpy.codes[-1], mic.fista_problem_p([D1, D2], y, lams,
                                                           max_iter=20).codes[-1])


def test_fista_rejects_bad_input():
    layers, y, lams = _dense_instance(0)
    with pytest.raises(ValueError, match="two layers"):
        mic.fista_problem_p(layers[:1], y, lams[:1])
    with pytest.raises(ValueError, match="max_iter"):
        mic.fista_problem_p(layers, y, lams, max_iter=0)
    with pytest.raises(ValueError, match="max_inner"):
        mic.fista_problem_p(layers, y, lams, max_inner=0)
    with pytest.raises(ValueError, match="lams"):
        mic.fista_problem_p(layers, y, [1.0, -1.0])


def test_inner_tolerance_is_relative_to_the_last_step():
    assert mic.inner_tolerance(None, 3.0, 2.0) == pytest.approx(mic.INNER_TOL * 1.5)
    assert mic.inner_tolerance(1e-4, 3.0, 2.0) == pytest.approx(mic.INNER_TOL * 1e-4)


def test_single_threaded_blas_limits_and_restores():
    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    assert before  # NumPy's wheel bundles OpenBLAS
    with mic.single_threaded_blas() as limited:
        assert limited == len(before)
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before


def test_sample_matches_the_documented_instance():
    D1, D2, y, lam1, lam2 = mic.sample(4)
    assert D1.shape == mic.SIZES[:2] and D2.shape == mic.SIZES[1:]
    assert lam1 == pytest.approx(mic.LAM1_FRACTION * np.abs(D1.T @ y).max())
    assert lam2 == pytest.approx(mic.LAM2_FRACTION * np.abs((D1 @ D2).T @ y).max())
    assert np.array_equal(mic.sample(4)[2], y) and not np.array_equal(mic.sample(5)[2], y)


def test_quick_sweep_floor_and_report(tmp_path):
    sweep = mic.SWEEP.variant(True)
    with Store(tmp_path / "s.sqlite") as store:
        run_sweep(sweep, store, executor="serial")
        rows = store.rows(sweep)
    assert len(rows) == sweep.size == 2
    by_scale = {}
    for row in rows:
        r = row.record
        by_scale[row.params["mu_scale"]] = r
        for method in mic.METHODS:
            gaps = [r[f"{method}_gap_at_{k}"] for k in mic.CHECKPOINTS]
            seconds = [r[f"{method}_seconds_at_{k}"] for k in mic.CHECKPOINTS]
            finite = [g for g in gaps if math.isfinite(g)]
            assert finite == gaps[:len(finite)] and len(finite) >= 5, (method, gaps)
            assert all(g >= 0 for g in finite)  # F_opt is a certified lower bound
            assert all(s > 0 for s in seconds[:len(finite)])
        assert r["reference_converged"] and r["reference_accuracy"] <= 1e-9 * r["f_opt"]
        assert r["fixed_point_residual"] <= 1e-12
        assert r["blas_single_threaded"] >= 1
        # THEORY §4 MLISTA: the fixed point's gap is at most 2λ₁‖z − u‖₁, and not zero.
        assert 0 < r["fixed_point_gap"] <= r["fixed_point_bound"]
        # Fixed μ: ML-ISTA stalls near the floor, far above F_opt; FISTA and ADMM pass below it.
        assert r[f"ml_ista_gap_at_{mic.CHECKPOINTS[-1]}"] >= 0.5 * r["fixed_point_gap"]
        for method in ("fista", "admm"):
            last = [g for g in (r[f"{method}_gap_at_{k}"] for k in mic.CHECKPOINTS)
                    if math.isfinite(g)][-1]
            assert last <= 1e-3 * r["fixed_point_gap"], method
        # Momentum helps at equal iterations before the floor.
        assert r["ml_fista_gap_at_100"] < r["ml_ista_gap_at_100"]
    # O(μ): the same instance's floor grows with μ.
    assert by_scale[0.1]["fixed_point_gap"] < by_scale[0.9]["fixed_point_gap"]
    figure, summary = write_report(sweep, rows, tmp_path / "reports")
    assert figure.name == "ml-ista-convergence-quick.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000
    text = summary.read_text()
    assert "![convergence](ml-ista-convergence-quick.png)" in text
    assert "held in 2 of 2 trials" in text
    assert "every trial ran with OpenBLAS limited to one thread" in text
    assert text.count("\n| 0.1 |") == 1 and text.count("\n| 0.9 |") == 1


def test_report_refuses_no_rows(tmp_path):
    with pytest.raises(ValueError, match="no stored trials"):
        write_report(mic.SWEEP, [], tmp_path)
