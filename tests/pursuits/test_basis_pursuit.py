"""Basis pursuit (FISTA) and its certificates against an independent dense Lasso solver."""

import sys
import types

import numpy as np
import pytest
import scipy.optimize
from hypothesis import given
from hypothesis import strategies as st

from mlverify import ConvDictionary
from mlverify.pursuits._basis_pursuit import basis_pursuit
from mlverify.pursuits._certificates import bp_objective, kkt_residual, relative_duality_gap


def dense_lasso(A, y, lam, nonneg=False):
    """Independent optimum of ½‖y − Ax‖² + λ‖x‖₁ (+ x ≥ 0) from a dense matrix.

    L-BFGS-B on the split x = p − q (p, q ≥ 0; only p when non-negative), then a polish: solve
    the stationarity equations A_Sᵀ(A_S x_S − y) + λ sign = 0 exactly on the support found, and
    check the KKT conditions of the polished point to 1e-10 (else fail).
    """
    n = A.shape[1]
    AtA, Aty = A.T @ A, A.T @ y
    sides = 1 if nonneg else 2

    def fun(w):
        x = w[:n] - (0 if nonneg else w[n:])
        grad_x = AtA @ x - Aty
        value = 0.5 * np.sum((y - A @ x) ** 2) + lam * w.sum()
        grad = np.concatenate([grad_x, -grad_x][:sides]) + lam
        return value, grad

    res = scipy.optimize.minimize(fun, np.zeros(sides * n), jac=True, method="L-BFGS-B",
                                  bounds=[(0, None)] * (sides * n),
                                  options={"maxiter": 50000, "ftol": 1e-15, "gtol": 1e-13})
    x = res.x[:n] - (0 if nonneg else res.x[n:])
    support = np.abs(x) > 1e-7 * max(np.abs(x).max(), 1e-300)
    signs = np.sign(x[support])
    A_s = A[:, support]
    x = np.zeros(n)
    x[support] = np.linalg.solve(A_s.T @ A_s, A_s.T @ y - lam * signs)
    g = A.T @ (y - A @ x)
    assert np.all(np.sign(x[support]) == signs), "polish changed a sign"
    assert np.allclose(g[support], lam * signs, atol=1e-10 * max(lam, 1))
    off = g[~support]
    assert np.all((off if nonneg else np.abs(off)) <= lam * (1 + 1e-10))
    return x, 0.5 * np.sum((y - A @ x) ** 2) + lam * np.abs(x).sum()


PROBLEMS = [  # (filters shape, spatial shape)
    ((3, 1, 5), (20,)),
    ((4, 2, 4), (16,)),
    ((2, 1, 3, 3), (8, 8)),
    ((3, 2, 3, 2), (6, 7)),
]


def make_problem(filters_shape, spatial, seed, dtype=np.float64, frac=0.3, nonneg=False):
    rng = np.random.default_rng(seed)
    D = ConvDictionary(rng.standard_normal(filters_shape).astype(dtype)).normalized()
    y = rng.standard_normal((filters_shape[1], *spatial)).astype(dtype)
    corr = D.analyze(y).astype(np.float64)
    lam_max = corr.max() if nonneg else np.abs(corr).max()
    return D, y, frac * lam_max


def dense_optimum(D, y, lam, nonneg=False):
    A = D.to_dense(y.shape[1:]).astype(np.float64)
    x, f_opt = dense_lasso(A, y.astype(np.float64).ravel(), lam, nonneg)
    return x.reshape((D.n_atoms, *y.shape[1:])), f_opt


@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: f"{p[0]}-{p[1]}")
def test_fista_float64_reaches_the_independent_optimum(problem, nonneg):
    D, y, lam = make_problem(*problem, seed=1, nonneg=nonneg)
    x_opt, f_opt = dense_optimum(D, y, lam, nonneg)
    result = basis_pursuit(D, y, lam, nonneg=nonneg, tol=1e-11)
    gamma = result.codes[0]
    f = bp_objective(D, y, gamma, lam)
    assert result.status == "converged" and result.converged
    assert result.certificate <= 1e-11
    assert result.certificate_kind == "relative_duality_gap"
    assert abs(f - f_opt) <= 1e-8 * f_opt
    assert result.certificate >= (f - f_opt) / f_opt - 1e-14  # honest
    assert kkt_residual(D, y, gamma, lam, nonneg=nonneg) <= 1e-5 * lam
    np.testing.assert_allclose(gamma, x_opt, atol=1e-4 * np.abs(x_opt).max())
    if nonneg:
        assert (gamma >= 0).all()
    history = result.history
    assert history["iteration"][-1] == result.n_iter
    assert history["relative_duality_gap"][-1] == result.certificate
    assert len({len(v) for v in history.values()}) == 1
    duals = history["dual"]
    assert all(np.diff(duals) >= 0)  # the best bound is kept
    assert duals[-1] <= f_opt * (1 + 1e-13)
    for p, d, gap in zip(history["objective"], duals, history["relative_duality_gap"],
                         strict=True):
        assert gap == pytest.approx((p - d) / d, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("problem", PROBLEMS[1:3], ids=lambda p: f"{p[0]}-{p[1]}")
def test_fista_float32_certificate_is_honest(problem, nonneg):
    D, y, lam = make_problem(*problem, seed=2, dtype=np.float32, nonneg=nonneg)
    _, f_opt = dense_optimum(D, y, lam, nonneg)
    result = basis_pursuit(D, y, lam, nonneg=nonneg, tol=1e-4)
    gamma = result.codes[0]
    assert gamma.dtype == np.float32 and result.converged and result.certificate <= 1e-4
    true_gap = (bp_objective(D, y, gamma, lam) - f_opt) / f_opt
    assert -1e-12 <= true_gap <= result.certificate + 1e-14


@pytest.mark.parametrize("problem", PROBLEMS[::2], ids=lambda p: f"{p[0]}-{p[1]}")
def test_certificate_bounds_the_true_gap_along_the_iterations(problem):
    D, y, lam = make_problem(*problem, seed=3)
    _, f_opt = dense_optimum(D, y, lam)
    for max_iter in (1, 4, 16, 64):
        result = basis_pursuit(D, y, lam, tol=1e-14, max_iter=max_iter, check_every=1000)
        assert result.status == "max_iter" and not result.converged
        assert result.n_iter == max_iter and result.history["iteration"] == [max_iter]
        true_gap = (bp_objective(D, y, result.codes[0], lam) - f_opt) / f_opt
        assert true_gap <= result.certificate + 1e-14


_HONESTY = {}


@given(seed=st.integers(0, 2**32 - 1), density=st.floats(0, 1), scale=st.floats(0, 3),
       nonneg=st.booleans(), frac=st.sampled_from((0.05, 0.5, 0.95)))
def test_relative_duality_gap_is_an_upper_bound_for_any_codes(seed, density, scale, nonneg, frac):
    key = (nonneg, frac)
    if key not in _HONESTY:
        problem = make_problem((3, 2, 4), (12,), seed=4, frac=frac, nonneg=nonneg)
        _HONESTY[key] = (*problem, dense_optimum(*problem, nonneg)[1])
    D, y, lam, f_opt = _HONESTY[key]
    rng = np.random.default_rng(seed)
    codes = rng.standard_normal((3, 12)) * (rng.random((3, 12)) < density) * scale
    if nonneg:
        codes = np.abs(codes)
    primal, dual, gap = relative_duality_gap(D, y, codes, lam, nonneg=nonneg)
    assert dual <= f_opt * (1 + 1e-13)
    assert primal == pytest.approx(bp_objective(D, y, codes, lam), rel=1e-13)
    assert gap >= (primal - f_opt) / f_opt - 1e-13


def test_certificates_on_the_dense_formulas():
    D, y, lam = make_problem((3, 2, 4), (12,), seed=5)
    A = D.to_dense((12,))
    rng = np.random.default_rng(5)
    codes = rng.standard_normal((3, 12)) * (rng.random((3, 12)) < 0.3)
    r = y.ravel() - A @ codes.ravel()
    assert bp_objective(D, y, codes, lam) == pytest.approx(
        0.5 * r @ r + lam * np.abs(codes).sum(), rel=1e-14)
    g = A.T @ r
    on = codes.ravel() != 0
    expected = max(np.abs(g[on] - lam * np.sign(codes.ravel()[on])).max(),
                   np.maximum(np.abs(g[~on]) - lam, 0).max())
    assert kkt_residual(D, y, codes, lam) == pytest.approx(expected, rel=1e-12)
    assert kkt_residual(D, y, -np.abs(codes), lam, nonneg=True) == np.inf
    assert relative_duality_gap(D, y, -np.abs(codes), lam, nonneg=True)[2] == np.inf
    x_opt, _ = dense_optimum(D, y, lam)
    assert kkt_residual(D, y, x_opt, lam) <= 1e-12
    assert relative_duality_gap(D, y, x_opt, lam)[2] <= 1e-12


@pytest.mark.parametrize("nonneg", [False, True])
def test_lam_at_or_above_lam_max_gives_zero(nonneg):
    D, y, lam_max = make_problem((3, 1, 5), (20,), seed=6, frac=1.0, nonneg=nonneg)
    for lam in (lam_max, 2 * lam_max):
        result = basis_pursuit(D, y, lam, nonneg=nonneg)
        assert result.status == "exact" and result.n_iter == 0 and result.converged
        assert not result.codes[0].any() and result.codes[0].shape == (3, 20)
        assert result.certificate <= 1e-13
    below = basis_pursuit(D, y, 0.9 * lam_max, nonneg=nonneg, tol=1e-8)
    assert below.codes[0].any() and below.status == "converged"


@pytest.mark.parametrize("by_rows", [False, True])
@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize(("filters", "spatial"), [((3, 2, 5), (20,)), ((4, 1, 6, 6), (14, 12))])
def test_certificates_of_none_are_those_of_zero_codes(filters, spatial, nonneg, by_rows,
                                                      monkeypatch):
    """``codes=None`` (a cold start, no transform) gives the values of explicit zero codes: the
    certified ones, the DFT estimates (36 taps: spectral; batched or row by row) and the
    stopping test, with a batch and a support."""
    from mlverify.kernels import fft
    from mlverify.pursuits._certificates import DualityGap

    rng = np.random.default_rng(11)
    D = ConvDictionary(rng.standard_normal(filters)).normalized()
    y = rng.standard_normal((2, filters[1], *spatial))
    support = rng.random((filters[0], *spatial)) < 0.7
    zeros = np.zeros((2, filters[0], *spatial))
    if by_rows:
        pytest.importorskip("pyfftw")
        monkeypatch.setattr(fft, "ROW_SIZE", 1)
        monkeypatch.setattr(fft, "FFTW_SIZE", 1)
    for kwargs in ({}, {"support": support}):
        def fresh():
            return DualityGap(D, y, 0.3, nonneg=nonneg, **kwargs)  # noqa: B023
        for estimate in (False, True):
            got = fresh().certificates(None, estimate=estimate)
            want = fresh().certificates(zeros, estimate=estimate)
            assert got.keys() == want.keys()
            for key in got:
                assert got[key] == pytest.approx(want[key], rel=1e-12, nan_ok=True), key
        got, want = fresh().stopping_test(None, 1e-3), fresh().stopping_test(zeros, 1e-3)
        assert got["rel_gap"] == pytest.approx(want["rel_gap"], rel=1e-12)


def test_zero_signal_gives_zero_codes_and_zero_gap():
    D, y, _ = make_problem((3, 1, 5), (20,), seed=7)
    result = basis_pursuit(D, np.zeros_like(y), 0.1)
    assert result.status == "exact" and not result.codes[0].any() and result.certificate == 0.0
    assert relative_duality_gap(D, np.zeros_like(y), np.zeros((3, 20)), 0.1) == (0.0, 0.0, 0.0)


def test_empty_batch_returns_empty_codes():
    D, _, lam = make_problem((3, 1, 5), (20,), seed=13)
    empty = np.zeros((0, 1, 20))
    result = basis_pursuit(D, empty, lam)
    assert result.codes[0].shape == (0, 3, 20) and result.status == "exact"
    assert result.certificate == 0.0
    assert relative_duality_gap(D, empty, np.zeros((0, 3, 20)), lam) == (0.0, 0.0, 0.0)
    assert kkt_residual(D, empty, np.zeros((0, 3, 20)), lam) == 0.0


def test_batch_is_a_set_of_independent_problems():
    rng = np.random.default_rng(8)
    D = ConvDictionary(rng.standard_normal((3, 1, 4))).normalized()
    y = rng.standard_normal((2, 1, 16))
    lam = 0.3
    batched = basis_pursuit(D, y, lam, tol=1e-10)
    assert batched.codes[0].shape == (2, 3, 16) and batched.converged
    total = 0.0
    for b in range(2):
        single = basis_pursuit(D, y[b], lam, tol=1e-10)
        np.testing.assert_allclose(batched.codes[0][b], single.codes[0], atol=1e-5)
        total += dense_optimum(D, y[b], lam)[1]
    assert bp_objective(D, y, batched.codes[0], lam) == pytest.approx(total, rel=1e-9)


def test_numpy_engine_and_warm_start():
    D, y, lam = make_problem((2, 1, 3, 3), (8, 8), seed=9)
    _, f_opt = dense_optimum(D, y, lam)
    result = basis_pursuit(D, y, lam, tol=1e-9, engine="numpy")
    assert result.converged
    assert bp_objective(D, y, result.codes[0], lam) <= f_opt * (1 + 1e-9)
    warm = basis_pursuit(D, y, lam, tol=1e-9, x0=result.codes[0], check_every=1)
    assert warm.converged and warm.n_iter == 1


def test_divergence_and_non_finite_are_reported(monkeypatch):
    D, y, lam = make_problem((3, 1, 5), (20,), seed=10)
    true_norm = D.spectral_norm((20,))
    monkeypatch.setattr(D, "spectral_norm", lambda spatial: 0.1 * true_norm)
    diverged = basis_pursuit(D, y, lam, check_every=1)
    assert diverged.status == "diverged" and not diverged.converged
    assert np.isfinite(diverged.codes[0]).all()
    overflow = basis_pursuit(D, y, lam, check_every=10**6, max_iter=10**4)
    assert overflow.status == "non-finite" and not overflow.converged
    assert np.isfinite(overflow.codes[0]).all() and overflow.n_iter < 10**4
    assert overflow.history["iteration"] == [overflow.n_iter]


def test_bad_arguments_raise():
    D, y, lam = make_problem((3, 1, 5), (20,), seed=11)
    bad_y = y.copy()
    bad_y[0, 3] = np.nan
    with pytest.raises(ValueError, match="y"):
        basis_pursuit(D, bad_y, lam)
    with pytest.raises(TypeError, match="y"):
        basis_pursuit(D, y.astype(np.float32), lam)
    with pytest.raises(ValueError, match="y"):
        basis_pursuit(D, np.ones((2, 20)), lam)
    with pytest.raises(ValueError, match="lam"):
        basis_pursuit(D, y, -1.0)
    with pytest.raises(ValueError, match="lam"):
        basis_pursuit(D, y, np.inf)
    with pytest.raises(TypeError, match="lam"):
        basis_pursuit(D, y, np.ones(3))
    with pytest.raises(TypeError, match="lam"):
        basis_pursuit(D, y, "0.1")
    assert basis_pursuit(D, y, np.array(lam)).codes[0].shape == (3, 20)
    with pytest.raises(ValueError, match="tol"):
        basis_pursuit(D, y, lam, tol=0)
    with pytest.raises(ValueError, match="max_iter"):
        basis_pursuit(D, y, lam, max_iter=0)
    with pytest.raises(ValueError, match="check_every"):
        basis_pursuit(D, y, lam, check_every=0)
    with pytest.raises(ValueError, match="solver"):
        basis_pursuit(D, y, lam, solver="newton")
    with pytest.raises(ValueError, match="engine"):
        basis_pursuit(D, y, lam, engine="tpu")
    with pytest.raises(TypeError, match="D"):
        basis_pursuit(D.filters, y, lam)
    with pytest.raises(ValueError, match="x0"):
        basis_pursuit(D, y, lam, x0=np.zeros((2, 20)))
    with pytest.raises(ValueError, match="x0"):
        basis_pursuit(D, y, lam, x0=np.full((3, 20), np.inf))
    with pytest.raises(ValueError, match="x0"):
        basis_pursuit(D, y, lam, nonneg=True, x0=-np.ones((3, 20)))
    with pytest.raises(ValueError, match="codes"):
        relative_duality_gap(D, y, np.zeros((3, 19)), lam)


def test_admm_solver_is_dispatched_with_validated_arguments(monkeypatch):
    calls = []

    def fake_bp_admm(D, y, lam, *, nonneg, tol, max_iter, engine, x0=None, check_every=10,
                     callback=None):
        calls.append((D, y, lam, nonneg, tol, max_iter, engine, x0, check_every, callback))
        return "admm result"

    module = types.ModuleType("mlverify.pursuits._bp_admm")
    module.bp_admm = fake_bp_admm
    monkeypatch.setitem(sys.modules, "mlverify.pursuits._bp_admm", module)
    D, y, lam = make_problem((3, 1, 5), (20,), seed=12)
    x0 = np.zeros((3, 20))
    out = basis_pursuit(D, y, np.float64(lam), nonneg=True, tol=1e-6, max_iter=7,
                        solver="admm", engine="auto", x0=x0, check_every=3, callback=print)
    assert out == "admm result" and len(calls) == 1
    got = calls[0]
    assert got[0] is D and np.array_equal(got[1], y) and got[2] == lam
    assert got[3:7] == (True, 1e-6, 7, "cpu") and np.array_equal(got[7], x0)
    assert got[8:] == (3, print)
    assert basis_pursuit(D, y, lam, solver="auto").certificate_kind == "relative_duality_gap"
    assert len(calls) == 1  # "auto" is FISTA


@pytest.mark.parametrize("solver", ["fista", "admm"])
def test_callback_sees_every_iterate_and_can_stop(solver):
    D, y, lam = make_problem((3, 1, 5), (40,), seed=21)
    seen: list[tuple[int, float]] = []

    def callback(iteration, codes):
        assert codes.shape == (3, 40)
        seen.append((iteration, bp_objective(D, y, codes, lam)))
        return iteration == 7

    result = basis_pursuit(D, y, lam, solver=solver, tol=1e-12, callback=callback)
    assert [it for it, _ in seen] == list(range(1, 8))
    assert result.status == "stopped" and not result.converged and result.n_iter == 7
    assert result.history["certified"][-1] == 1.0
    assert result.history["objective"][-1] == pytest.approx(seen[-1][1], rel=1e-12)
    with pytest.raises(TypeError, match="callback"):
        basis_pursuit(D, y, lam, callback=3)


@pytest.mark.parametrize("by_rows", [False, True])
@pytest.mark.parametrize("solver", ["fista", "admm"])
def test_large_filters_stop_on_a_certified_gap_after_dft_estimates(solver, by_rows,
                                                                    monkeypatch):
    """6x6 filters: checks are DFT estimates until the estimate passes tol, then certified;
    the estimates' transforms batched or row by row (forced on this small problem)."""
    from mlverify.kernels import fft
    from mlverify.pursuits._certificates import DualityGap

    if by_rows:
        pytest.importorskip("pyfftw")
        monkeypatch.setattr(fft, "ROW_SIZE", 1)
        monkeypatch.setattr(fft, "FFTW_SIZE", 1)
    D, y, lam = make_problem((4, 1, 6, 6), (24, 20), seed=22)
    assert DualityGap(D, y, lam)._spectral.by_rows == by_rows
    result = basis_pursuit(D, y, lam, solver=solver, tol=1e-6, max_iter=20000)
    certified = result.history["certified"]
    assert result.converged and certified[-1] == 1.0 and 0.0 in certified
    gap = DualityGap(D, y, lam)
    exact = gap.certificates(result.codes[0])
    estimate = gap.certificates(result.codes[0], estimate=True)
    assert exact["certified"] and not estimate["certified"]
    # the solver may hold a better dual point (extrapolated, or an earlier one) than a fresh check
    assert exact["rel_gap"] <= 1e-6 and result.certificate <= exact["rel_gap"] * (1 + 1e-12)
    for key in ("primal", "dual"):
        assert estimate[key] == pytest.approx(exact[key], rel=1e-9, abs=1e-12)
    assert np.isnan(estimate["kkt"]) and np.isfinite(exact["kkt"])
    codes32 = result.codes[0].astype(np.float32)
    D32 = ConvDictionary(D.filters.astype(np.float32))
    gap32 = DualityGap(D32, y.astype(np.float32), lam)
    estimate32 = gap32.certificates(codes32, estimate=True)
    exact32 = gap32.certificates(codes32)
    for key in ("primal", "dual"):  # float32 DFT estimates, float64 sums
        assert estimate32[key] == pytest.approx(exact32[key], rel=1e-5)


def test_dual_extrapolation_recovers_the_limit_of_a_linear_recursion():
    """Celer's extrapolation is exact for residuals r_t = r* + Σ_j a_j^t v_j with fewer modes
    than residual differences; its candidate only ever enters through the feasibility scaling."""
    from mlverify.pursuits._certificates import EXTRAPOLATION, DualityGap

    rng = np.random.default_rng(0)
    D = ConvDictionary(rng.standard_normal((2, 1, 3)))
    gap = DualityGap(D, rng.standard_normal((1, 20)), 0.1)
    assert gap._extrapolated() is None  # no history yet
    limit = rng.standard_normal(20)
    modes = np.linalg.qr(rng.standard_normal((20, EXTRAPOLATION - 1)))[0].T
    rates = np.linspace(0.9, -0.3, EXTRAPOLATION - 1)
    gap._residuals = [(limit + (rates[:, None] ** t * modes).sum(axis=0))[None]
                      for t in range(EXTRAPOLATION + 1)]
    assert np.abs(gap._residuals[-1][0] - limit).max() > 0.1
    np.testing.assert_allclose(gap._extrapolated()[0], limit, atol=1e-8)
