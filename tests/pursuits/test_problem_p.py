"""Problem (P): the objective and the duality-gap-certified ADMM (THEORY.md §3, §4)."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlverify import MLCSC, ConvDictionary
from mlverify.pursuits._linear import ConvChain, MatrixOperator, normal_solver, suffix_products
from mlverify.pursuits._problem_p import ml_objective, solve_problem_p


def brute_force_p(d1, d2, y, lams, nonneg=False):
    """Exact F_opt of two-layer (P) by enumerating sign patterns of (D_2γ, γ).

    For the optimal pattern s (entries of {−1, 0, +1}) the minimiser minimises the quadratic
    ½‖y − Aγ‖² + λ_1 s_1ᵀD_2γ + λ_2 s_2ᵀγ on {γ : zero entries of s stay zero} (an equality-
    constrained least squares, solved through its KKT system). Every candidate is a feasible point,
    so the smallest objective over all patterns is F_opt exactly (unique when A is injective).
    """
    a = d1 @ d2
    rows = np.vstack([d2, np.eye(d2.shape[1])])
    weights = np.concatenate([np.full(d2.shape[0], lams[0]), np.full(d2.shape[1], lams[1])])
    values = (0.0, 1.0) if nonneg else (-1.0, 0.0, 1.0)
    best, best_gamma = np.inf, None
    m = d2.shape[1]
    for signs in itertools.product(values, repeat=rows.shape[0]):
        s = np.array(signs)
        zero = rows[s == 0]
        kkt = np.block([[a.T @ a, zero.T], [zero, np.zeros((zero.shape[0], zero.shape[0]))]])
        rhs = np.concatenate([a.T @ y - rows.T @ (weights * s), np.zeros(zero.shape[0])])
        gamma = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:m]
        if nonneg and (rows @ gamma < -1e-12).any():
            continue
        value = 0.5 * np.sum((y - a @ gamma) ** 2) + np.sum(weights * np.abs(rows @ gamma))
        if value < best:
            best, best_gamma = value, gamma
    return best, best_gamma


@settings(max_examples=8)
@given(seed=st.integers(0, 2**32 - 1), nonneg=st.booleans())
def test_admm_matches_brute_force(seed, nonneg):
    """ADMM's F and its certified lower bound bracket the exact F_opt within 1e-8 relative."""
    rng = np.random.default_rng(seed)
    d1 = rng.standard_normal((5, 4)) / np.sqrt(5)
    d2 = rng.standard_normal((4, 3)) / np.sqrt(4)
    y = rng.standard_normal(5)
    lams = rng.uniform(0.02, 0.3, 2)
    exact, gamma = brute_force_p(d1, d2, y, lams, nonneg)
    result = solve_problem_p([d1, d2], y, lams, tol=1e-12, nonneg=nonneg)
    assert result.converged and result.status == "converged"
    upper = result.history["objective"][-1]
    lower = result.history["dual_objective"][-1]
    # The enumeration accepts constraint slack of 1e-12 (non-negative case) and solves KKT systems
    # in floating point: it is exact to ~1e-11 relative, so the bracket is checked at 1e-10.
    assert lower <= exact * (1 + 1e-10)
    assert upper >= exact * (1 - 1e-10)
    assert abs(upper - exact) <= 1e-8 * exact
    np.testing.assert_allclose(result.codes[-1], gamma, atol=1e-5)
    np.testing.assert_allclose(result.codes[0], d2 @ result.codes[-1], rtol=1e-12, atol=1e-15)
    if nonneg:
        assert (result.codes[-1] >= -1e-12).all() and (result.codes[0] >= -1e-12).all()


def test_objective_formula():
    rng = np.random.default_rng(0)
    mats = [rng.standard_normal((6, 7)), rng.standard_normal((7, 5)), rng.standard_normal((5, 4))]
    y, gamma = rng.standard_normal(6), rng.standard_normal(4)
    lams = [0.3, 0.2, 0.1]
    g2 = mats[2] @ gamma
    g1 = mats[1] @ g2
    expected = (0.5 * np.sum((y - mats[0] @ g1) ** 2) + 0.3 * np.abs(g1).sum()
                + 0.2 * np.abs(g2).sum() + 0.1 * np.abs(gamma).sum())
    assert ml_objective(mats, y, gamma, lams) == pytest.approx(expected, rel=1e-13)


def conv_model(dtype=np.float64):
    rng = np.random.default_rng(3)
    d1 = ConvDictionary(rng.standard_normal((3, 2, 4)).astype(dtype)).normalized()
    d2 = ConvDictionary(rng.standard_normal((4, 3, 3)).astype(dtype)).normalized()
    y = rng.standard_normal((2, 12)).astype(dtype)
    return MLCSC([d1, d2]), y


@pytest.mark.parametrize("engine", ["numpy", "cpu"])
def test_conv_admm_equals_dense_admm(engine):
    """The DFT-domain solves give the same (P) solution as Cholesky on the global matrices."""
    model, y = conv_model()
    lams = [0.1, 0.05]
    conv = solve_problem_p(model, y, lams, tol=1e-12, engine=engine)
    mats = [layer.to_dense(12) for layer in model.layers]
    dense = solve_problem_p(mats, y.ravel(), lams, tol=1e-12)
    assert conv.converged and dense.converged
    assert conv.history["objective"][-1] == pytest.approx(dense.history["objective"][-1],
                                                          rel=1e-10)
    np.testing.assert_allclose(conv.codes[-1].ravel(), dense.codes[-1], atol=1e-6)
    assert ml_objective(model, y, conv.codes[-1], lams, engine=engine) == pytest.approx(
        ml_objective(mats, y.ravel(), conv.codes[-1].ravel(), lams), rel=1e-12)


def test_conv_2d_three_layers():
    """2-D periodic layers, three of them: the duality gap closes and the objective matches."""
    rng = np.random.default_rng(4)
    layers = [
        ConvDictionary(rng.standard_normal((2, 1, 2, 2))).normalized(),
        ConvDictionary(rng.standard_normal((3, 2, 2, 2))).normalized(),
        ConvDictionary(rng.standard_normal((2, 3, 2, 2))).normalized(),
    ]
    y = rng.standard_normal((1, 5, 6))
    lams = [0.05, 0.05, 0.05]
    result = solve_problem_p(layers, y, lams, tol=1e-10, engine="cpu")
    assert result.converged
    assert [c.shape for c in result.codes] == [(2, 5, 6), (3, 5, 6), (2, 5, 6)]
    assert ml_objective(layers, y, result.codes[-1], lams) == pytest.approx(
        result.history["objective"][-1], rel=1e-12)
    mats = [layer.to_dense((5, 6)) for layer in layers]
    dense = solve_problem_p(mats, y.ravel(), lams, tol=1e-10)
    assert dense.history["objective"][-1] == pytest.approx(result.history["objective"][-1],
                                                           rel=1e-9)


def test_float32_model():
    model, y = conv_model(np.float32)
    result = solve_problem_p(model, y, [0.1, 0.05], tol=1e-10)
    assert result.converged and all(c.dtype == np.float32 for c in result.codes)


def test_validation_and_max_iter():
    rng = np.random.default_rng(5)
    mats = [rng.standard_normal((5, 4)), rng.standard_normal((4, 3))]
    y = rng.standard_normal(5)
    with pytest.raises(ValueError, match="lams"):
        solve_problem_p(mats, y, [0.1, 0.0])
    with pytest.raises(ValueError, match="lams"):
        solve_problem_p(mats, y, [0.1, np.inf])
    with pytest.raises(ValueError, match="tol"):
        solve_problem_p(mats, y, [0.1, 0.1], tol=-1.0)
    with pytest.raises(TypeError, match="max_iter"):
        solve_problem_p(mats, y, [0.1, 0.1], max_iter=1.5)
    with pytest.raises(ValueError, match="gamma"):
        ml_objective(mats, y, np.zeros(4), [0.1, 0.1])
    short = solve_problem_p(mats, y, [0.1, 0.1], tol=1e-15, max_iter=20, check_every=5)
    assert short.status == "max_iter" and not short.converged
    assert short.history["iteration"] == [5.0, 10.0, 15.0, 20.0]
    assert all(g >= -1e-15 for g in short.history["relative_gap"])


@pytest.mark.parametrize("shape", [(12,), (5, 6)])
def test_dft_normal_solver_and_norm_match_dense(shape):
    """The per-frequency solves and chain norms equal dense linear algebra on to_dense."""
    rng = np.random.default_rng(6)
    taps = (3,) if len(shape) == 1 else (2, 3)
    d1 = ConvDictionary(rng.standard_normal((3, 2, *taps)))
    d2 = ConvDictionary(rng.standard_normal((4, 3, *taps)))
    chains = [ConvChain(layers, shape, "numpy", 4, np.float64) for layers in ([d1, d2], [d2], [])]
    dense = [d1.to_dense(shape) @ d2.to_dense(shape), d2.to_dense(shape)]
    dense.append(np.eye(dense[1].shape[1]))
    weights = [1.0, 0.7, 0.3]
    b = rng.standard_normal((4, *shape))
    solved = normal_solver(chains, weights)(b)
    normal = sum(w * m.T @ m for w, m in zip(weights, dense, strict=True))
    atol = 1e-11 * np.abs(solved).max()
    np.testing.assert_allclose(solved.ravel(), np.linalg.solve(normal, b.ravel()), atol=atol)
    dense_solved = normal_solver([MatrixOperator(m) for m in dense], weights)(b.ravel())
    np.testing.assert_allclose(dense_solved, solved.ravel(), atol=atol)
    for chain, m in zip(chains, dense, strict=True):
        assert chain.norm() == pytest.approx(np.linalg.norm(m, 2), rel=1e-10)
        np.testing.assert_allclose(chain.forward(b).ravel(), m @ b.ravel(), rtol=1e-12)
    tails = suffix_products([ConvChain([d], shape, "cpu", d.n_atoms, np.float64) for d in (d1, d2)])
    np.testing.assert_allclose(tails[0].forward(b).ravel(), dense[0] @ b.ravel(), rtol=1e-12)
    np.testing.assert_array_equal(tails[2].forward(b), b)


def test_non_finite_is_reported():
    """Finite inputs whose objective overflows float64 give status "non-finite", not garbage."""
    rng = np.random.default_rng(7)
    mats = [rng.standard_normal((5, 4)), rng.standard_normal((4, 3))]
    with np.errstate(over="ignore", invalid="ignore"):
        result = solve_problem_p(mats, np.full(5, 1e200), [0.1, 0.1], max_iter=50)
    assert result.status == "non-finite" and not result.converged
