"""ML-ISTA / ML-FISTA (THEORY.md §3 [MLBP], §4 MLISTA fixed-point gap)."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlverify import MLCSC, ConvDictionary
from mlverify.pursuits import _ml_ista as ml_ista_module
from mlverify.pursuits._ml_ista import ml_fista, ml_ista
from mlverify.pursuits._problem_p import ml_objective, solve_problem_p


def soft(v, beta, nonneg=False):
    if nonneg:
        return np.maximum(v - beta, 0.0)
    return np.sign(v) * np.maximum(np.abs(v) - beta, 0.0)


def dense_chain(seed, sizes=(20, 30, 25), dtype=np.float64):
    rng = np.random.default_rng(seed)
    mats = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in itertools.pairwise(sizes)]
    y = rng.standard_normal(sizes[0])
    return [m.astype(dtype) for m in mats], y.astype(dtype)


def conv_chain(seed, n_signal=32, dtype=np.float64):
    """Two layers: D1 4 atoms of length 8 (one channel), D2 8 atoms of length 5."""
    rng = np.random.default_rng(seed)
    d1 = ConvDictionary(rng.standard_normal((4, 1, 8)).astype(dtype)).normalized()
    d2 = ConvDictionary(rng.standard_normal((8, 4, 5)).astype(dtype)).normalized()
    y = rng.standard_normal((1, n_signal)).astype(dtype)
    return MLCSC([d1, d2]), y


def fixed_point_gap_bound(mats, y, gamma, lam1, mu):
    """2 λ_1 ‖z − u‖_1 with z = D_2γ*, u = S_{μλ_1}(z − μ D_1^T(D_1 z − y)) (THEORY §4)."""
    d1, d2 = mats
    z = d2 @ gamma
    u = soft(z - mu * d1.T @ (d1 @ z - y), mu * lam1)
    return 2 * lam1 * np.abs(z - u).sum()


# ------------------------------------------------------------------ first step = layered ST
@given(seed=st.integers(0, 2**32 - 1), depth=st.sampled_from([1, 2, 3]), nonneg=st.booleans())
def test_first_step_is_layered_soft_thresholding_dense(seed, depth, nonneg):
    """From γ^0 = 0 one ML-ISTA step is μ_L · layered soft thresholding with thresholds λ_i."""
    mats, y = dense_chain(seed, sizes=(12, 15, 10, 8)[: depth + 1])
    rng = np.random.default_rng(seed + 1)
    lams = rng.uniform(0.01, 0.3, depth)
    result = ml_ista(mats, y, lams, max_iter=1, nonneg=nonneg)
    norms2 = [np.linalg.norm(m, 2) ** 2 for m in mats]
    steps, previous = [], 1.0
    for i in range(depth - 1):
        previous = 0.9 * previous / norms2[i]
        steps.append(previous)
    t = 0.9 * (4 / 3 if depth > 1 else 1.0) * previous / norms2[-1]
    layered = y
    for m, lam in zip(mats, lams, strict=True):
        layered = soft(m.T @ layered, lam, nonneg=nonneg)
    np.testing.assert_allclose(result.codes[-1], t * layered, rtol=1e-12, atol=1e-14)
    assert result.n_iter == 1


@pytest.mark.parametrize("engine", ["numpy", "cpu"])
def test_first_step_is_layered_soft_thresholding_conv(engine):
    model, y = conv_chain(0)
    lams = [0.2, 0.1]
    d1, d2 = (m.to_dense(32) for m in model.layers)
    mu = 0.9 / model[0].spectral_norm(32) ** 2
    t = 0.9 * 4 * mu / (3 * model[1].spectral_norm(32) ** 2)
    result = ml_ista(model, y, lams, max_iter=1, engine=engine)
    expected = t * soft(d2.T @ soft(d1.T @ y.ravel(), lams[0]), lams[1])
    np.testing.assert_allclose(result.codes[-1].ravel(), expected, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ L-layer recursion, momentum
def numpy_ml_ista(mats, y, lams, steps, n_iter, momentum):
    """Plain NumPy ML-(F)ISTA: backward sweep, forward sweep with c_i = μ_i/μ_{i-1} (μ_0 = 1)."""
    gamma = previous = np.zeros(mats[-1].shape[1])
    tk = 1.0
    for _ in range(n_iter):
        point = gamma
        if momentum:
            tk_next = (1 + np.sqrt(1 + 4 * tk * tk)) / 2
            point = gamma + (tk - 1) / tk_next * (gamma - previous)
            tk = tk_next
        projected = [point]
        for m in mats[:0:-1]:
            projected.insert(0, m @ projected[0])
        layer, step_before = y, 1.0
        for m, base, step, lam in zip(mats, projected, steps, lams, strict=True):
            layer = soft(base - step / step_before * m.T @ (m @ base - layer), step * lam)
            step_before = step
        previous, gamma = gamma, layer
    return gamma


@pytest.mark.parametrize(("depth", "momentum"), [(3, False), (3, True), (2, True), (4, False)])
def test_iteration_matches_numpy_recursion(depth, momentum):
    mats, y = dense_chain(11, sizes=(12, 15, 10, 8, 6)[: depth + 1])
    lams = [0.05] * depth
    norms2 = [np.linalg.norm(m, 2) ** 2 for m in mats]
    mu = [0.5 / norms2[0]]
    for n2 in norms2[1:-1]:
        mu.append(0.7 * mu[-1] / n2)
    t = 0.8 * 4 * mu[-1] / (3 * norms2[-1])
    solver = ml_fista if momentum else ml_ista
    result = solver(mats, y, lams, mu=mu, t=t, max_iter=25)
    expected = numpy_ml_ista(mats, y, lams, [*mu, t], 25, momentum)
    np.testing.assert_allclose(result.codes[-1], expected, rtol=1e-11, atol=1e-13)
    for i in range(depth - 1):
        np.testing.assert_allclose(result.codes[i], mats[i + 1] @ result.codes[i + 1],
                                   rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ engines, dtypes, conv = dense
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver", [ml_ista, ml_fista])
def test_engines_agree_and_match_dense(dtype, solver):
    model, y = conv_chain(1, dtype=dtype)
    lams = [0.2, 0.1]
    by_engine = {e: solver(model, y, lams, max_iter=30, engine=e) for e in ("numpy", "cpu")}
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    for a, b in zip(by_engine["numpy"].codes, by_engine["cpu"].codes, strict=True):
        assert a.dtype == dtype and b.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(a).max())
    mats = [m.to_dense(32) for m in model.layers]
    dense = solver(mats, y.ravel(), lams, max_iter=30)
    np.testing.assert_allclose(dense.codes[-1], by_engine["cpu"].codes[-1].ravel(), rtol=rtol,
                               atol=rtol * np.abs(dense.codes[-1]).max())


def test_codes_are_back_projections_and_history():
    mats, y = dense_chain(2)
    result = ml_ista(mats, y, [0.1, 0.05], max_iter=50, check_every=10)
    np.testing.assert_allclose(result.codes[0], mats[1] @ result.codes[1], rtol=1e-14)
    assert result.history["iteration"] == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert result.status == "max_iter" and not result.converged
    f = ml_objective(mats, y, result.codes[-1], [0.1, 0.05])
    assert result.history["objective"][-1] == pytest.approx(f, rel=1e-12)
    assert result.certificate_kind == "fixed_point_residual"


def test_nonneg_codes():
    mats, y = dense_chain(3)
    result = ml_fista(mats, y, [0.05, 0.02], nonneg=True, max_iter=2000, tol=1e-8)
    assert result.converged
    assert (result.codes[-1] >= 0).all()


# ------------------------------------------------------------------ fixed points and the gap
def test_ista_and_fista_reach_the_same_fixed_point_and_the_gap_bound_holds():
    """THEORY §4 MLISTA fixed-point gap: F(γ*) − F_opt ≤ 2λ_1‖z − u‖_1 at a fixed point."""
    mats, y = dense_chain(4)
    lams = [0.1, 0.05]
    ista = ml_ista(mats, y, lams, max_iter=200000, tol=1e-12, check_every=1000)
    fista = ml_fista(mats, y, lams, max_iter=200000, tol=1e-12, check_every=1000)
    assert ista.converged and fista.converged
    np.testing.assert_allclose(ista.codes[-1], fista.codes[-1], atol=1e-9)
    reference = solve_problem_p(mats, y, lams, tol=1e-13)
    assert reference.converged
    f_opt_upper = reference.history["objective"][-1]
    f_opt_lower = reference.history["dual_objective"][-1]
    mu = 0.9 / np.linalg.norm(mats[0], 2) ** 2
    f_star = ml_objective(mats, y, fista.codes[-1], lams)
    bound = fixed_point_gap_bound(mats, y, fista.codes[-1], lams[0], mu)
    assert f_star - f_opt_lower <= bound
    assert f_star >= f_opt_upper - 1e-12 * f_opt_upper  # a fixed point is never below F_opt


def test_gap_shrinks_with_mu():
    """Smaller μ (and t = 0.9·4μ/(3‖D_2‖²)) gives a fixed point closer to F_opt."""
    mats, y = dense_chain(5)
    lams = [0.1, 0.05]
    f_opt = solve_problem_p(mats, y, lams, tol=1e-13).history["dual_objective"][-1]
    norm2 = np.linalg.norm(mats[0], 2) ** 2
    gaps, bounds, start = [], [], None
    for factor in (0.9, 0.3, 0.1):
        mu = factor / norm2
        result = ml_fista(mats, y, lams, mu=mu, max_iter=400000, tol=1e-11, x0=start,
                          check_every=10000)
        assert result.converged
        start = result.codes[-1]
        gaps.append(ml_objective(mats, y, start, lams) - f_opt)
        bounds.append(fixed_point_gap_bound(mats, y, start, lams[0], mu))
        assert gaps[-1] <= bounds[-1]
    assert gaps[0] > gaps[1] > gaps[2] > 0
    assert bounds[0] > bounds[2]


def test_conv_fixed_point_gap_bound():
    """The bound on a periodic convolutional instance.

    ML-FISTA runs on the global matrices (``to_dense``: the same problem, tested equal to the
    convolutional run above) because tens of thousands of iterations on a 32-sample signal are
    dominated by per-call overhead; F_opt comes from the convolutional ADMM (DFT solves).
    """
    model, y = conv_chain(6)
    lams = [0.2, 0.1]
    mats = [m.to_dense(32) for m in model.layers]
    result = ml_fista(mats, y.ravel(), lams, max_iter=200000, tol=1e-11, check_every=10000)
    assert result.converged
    f_opt = solve_problem_p(model, y, lams, tol=1e-12, engine="numpy").history["dual_objective"]
    mu = 0.9 / model[0].spectral_norm(32) ** 2
    gamma = result.codes[-1].reshape(8, 32)
    f_star = ml_objective(model, y, gamma, lams, engine="numpy")
    bound = fixed_point_gap_bound(mats, y.ravel(), result.codes[-1], lams[0], mu)
    assert 0 <= f_star - f_opt[-1] <= bound


# ------------------------------------------------------------------ validation, failures
def test_step_sizes_are_validated():
    mats, y = dense_chain(7)
    mu_max = 1 / np.linalg.norm(mats[0], 2) ** 2
    with pytest.raises(ValueError, match="mu"):
        ml_ista(mats, y, [0.1, 0.1], mu=1.01 * mu_max)
    with pytest.raises(ValueError, match="mu"):
        ml_ista(mats, y, [0.1, 0.1], mu=-1.0)
    t_max = 4 * 0.5 * mu_max / (3 * np.linalg.norm(mats[1], 2) ** 2)
    with pytest.raises(ValueError, match="t must lie"):
        ml_ista(mats, y, [0.1, 0.1], mu=0.5 * mu_max, t=1.01 * t_max)
    ml_ista(mats, y, [0.1, 0.1], mu=0.5 * mu_max, t=0.99 * t_max, max_iter=2)
    with pytest.raises(ValueError, match="mu"):
        ml_ista(mats, y, [0.1, 0.1], mu=[0.1, 0.1])


def test_arguments_are_validated():
    mats, y = dense_chain(8)
    with pytest.raises(ValueError, match="lams"):
        ml_ista(mats, y, [0.1])
    with pytest.raises(ValueError, match="lams"):
        ml_ista(mats, y, [0.1, -0.1])
    with pytest.raises(TypeError, match="y"):
        ml_ista(mats, y.astype(np.float32), [0.1, 0.1])
    with pytest.raises(ValueError, match="y"):
        ml_ista(mats, np.full_like(y, np.nan), [0.1, 0.1])
    with pytest.raises(ValueError, match="y"):
        ml_ista(mats, y[:-1], [0.1, 0.1])
    with pytest.raises(ValueError, match="engine"):
        ml_fista(mats, y, [0.1, 0.1], engine="gpu")
    with pytest.raises(ValueError, match="x0"):
        ml_ista(mats, y, [0.1, 0.1], x0=np.zeros(3))
    with pytest.raises(ValueError, match="tol"):
        ml_ista(mats, y, [0.1, 0.1], tol=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        ml_ista(mats, y, [0.1, 0.1], max_iter=0)
    with pytest.raises(ValueError, match="D2"):
        ml_ista([mats[0], mats[1].T], y, [0.1, 0.1])
    with pytest.raises(TypeError, match="model"):
        ml_ista(mats[0], y, [0.1])
    model, yc = conv_chain(8)
    with pytest.raises(ValueError, match="y"):
        ml_ista(model, yc[None], [0.1, 0.1])


def test_non_finite_is_reported():
    """Overflow in float32 (finite but huge input) is reported, not returned silently."""
    mats, y = dense_chain(9, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        result = ml_ista(mats, np.full_like(y, 3e38), [0.1, 0.1], max_iter=5)
    assert result.status == "non-finite" and not result.converged


def test_divergence_is_reported(monkeypatch):
    """Steps far outside the ranges (bypassing the validation) make the objective explode."""
    mats, y = dense_chain(10)
    monkeypatch.setattr(ml_ista_module, "_steps", lambda ops, mu, t: [30.0, 30.0])
    with np.errstate(over="ignore", invalid="ignore"):
        result = ml_ista(mats, y, [1e-3, 1e-3], max_iter=2000, check_every=1)
    assert result.status == "diverged" and not result.converged
