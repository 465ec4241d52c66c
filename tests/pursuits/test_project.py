"""ML-CSC projection P_M: back-projection, reported feasibility, exact noiseless recovery."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlverify import MLCSC, ConvDictionary, stripe_l0_inf
from mlverify.pursuits._basis_pursuit import basis_pursuit
from mlverify.pursuits._omp import omp
from mlverify.pursuits._project import project

BARKER = np.array([1, 1, 1, 1, 1, -1, -1, 1, 1, -1, 1, -1, 1], dtype=np.float64) / np.sqrt(13)


def golomb_model() -> MLCSC:
    """D_1 = Barker-13 (μ = 1/13), D_2 = 2 sparse filters on the Golomb ruler {0,1,4,6} (μ = ¼)."""
    second = np.zeros((2, 1, 7))
    second[0, 0, [0, 1, 4, 6]] = 0.5
    second[1, 0, [0, 1, 4, 6]] = [0.5, -0.5, 0.5, -0.5]
    return MLCSC([ConvDictionary(BARKER.reshape(1, 1, 13)), ConvDictionary(second)])


def isolated_spikes(rng: np.random.Generator, N: int = 128, gap: int = 42) -> np.ndarray:
    """Γ_2 with spikes ±a (a ∈ [1, 2]) at least ``gap`` apart, alternating atoms."""
    gamma = np.zeros((2, N))
    start = int(rng.integers(N))
    for j, p in enumerate(range(0, N - gap + 1, gap)):
        gamma[(j + int(rng.integers(2))) % 2, (start + p) % N] = (
            rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 2.0))
    return gamma


@st.composite
def random_models(draw):
    """A random 2- or 3-layer model (1-D or 2-D) and a signal with N >= 2n^(K) - 1."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    d = draw(st.sampled_from([1, 2]))
    depth = draw(st.integers(2, 3))
    channels = [draw(st.integers(1, 2)) for _ in range(depth + 1)]
    sizes = [draw(st.integers(1, 3 if d == 1 else 2)) for _ in range(depth)]
    layers = [ConvDictionary(rng.standard_normal((channels[i + 1], channels[i]) + (sizes[i],) * d))
              for i in range(depth)]
    model = MLCSC(layers)
    n_eff = sum(sizes) - depth + 1
    N = 2 * n_eff - 1 + draw(st.integers(0, 4 if d == 1 else 1))
    y = rng.standard_normal((channels[0],) + (N,) * d)
    bounds = [draw(st.integers(1, 4)) for _ in range(depth)]
    return model, y, bounds


@pytest.mark.parametrize("tol", [None, 1e-9])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noiseless_two_layer_recovery(seed, tol):
    """THEORY W3 on D^(2) (k_eff < ½(1 + 1/μ(D^(2)))) ⇒ P_M by OMP recovers every layer."""
    model = golomb_model()
    rng = np.random.default_rng(seed)
    gamma2 = isolated_spikes(rng)
    x, gamma1, _ = model.synthesize(gamma2)
    effective = model.effective(2)
    n_eff = effective.kernel_size[0]
    k_eff = stripe_l0_inf(gamma2, n_eff)
    assert n_eff == 19 and k_eff < 0.5 * (1 + 1 / effective.coherence((128,)))
    bounds = [int(stripe_l0_inf(gamma1, 13)), int(k_eff)]
    assert bounds[0] == 4  # THEORY §5: Γ_1 = D_2Γ_2 has 4 non-zeros per stripe
    result = project(model, x, bounds, tol=None if tol is None else tol * np.linalg.norm(x))
    np.testing.assert_array_equal(result.codes[1] != 0, gamma2 != 0)
    np.testing.assert_allclose(result.codes[1], gamma2, atol=1e-10)
    np.testing.assert_allclose(result.codes[0], gamma1, atol=1e-10)
    assert result.converged and result.status == "converged" and "feasible" in result.message
    assert result.certificate < 1e-10
    assert result.history["stripe_l0_inf_1"] == [4.0]
    assert result.history["sparsity_bound"] == [4.0, float(k_eff)]
    assert result.n_iter == np.count_nonzero(gamma2)


@given(random_models(), st.sampled_from([None, 0.5]))
def test_back_projection_and_reported_feasibility(problem, tol):
    model, y, bounds = problem
    result = project(model, y, bounds, tol=tol)
    codes = result.codes
    assert len(codes) == model.n_layers
    for i in range(1, model.n_layers):  # Γ̂_{i-1} = D_i Γ̂_i (codes[i] is Γ̂_{i+1})
        np.testing.assert_allclose(codes[i - 1], model[i].synthesize(codes[i]), atol=1e-12)
    deepest = model.effective(model.n_layers)
    np.testing.assert_allclose(model[0].synthesize(codes[0]), deepest.synthesize(codes[-1]),
                               atol=1e-10)
    # the deepest layer is what stripe-constrained OMP on D^(K) returns
    inner = omp(deepest, y, n_nonzero=None if tol else codes[-1].size, tol=tol,
                max_stripe=bounds[-1])
    np.testing.assert_array_equal(codes[-1], inner.codes[0])
    assert stripe_l0_inf(codes[-1], deepest.kernel_size) <= bounds[-1]
    # reported numbers are the independent measures
    residual = np.linalg.norm(y - deepest.synthesize(codes[-1]))
    assert result.history["residual_l2"][0] == pytest.approx(residual, rel=1e-10, abs=1e-12)
    assert result.certificate == pytest.approx(residual, rel=1e-10, abs=1e-12)
    stripes = [stripe_l0_inf(c, layer.kernel_size) for c, layer in zip(codes, model.layers,
                                                                        strict=True)]
    for i, s in enumerate(stripes, start=1):
        assert result.history[f"stripe_l0_inf_{i}"] == [float(s)]
    feasible = all(s <= b for s, b in zip(stripes, bounds, strict=True))
    feasible = feasible and (tol is None or residual <= tol)
    assert result.converged == feasible
    assert result.status == ("converged" if feasible else "max_iter")
    assert ("infeasible" not in result.message) == feasible


def test_infeasible_layer_is_reported():
    model = golomb_model()
    gamma2 = isolated_spikes(np.random.default_rng(4))
    x = model.synthesize(gamma2)[0]
    result = project(model, x, [3, 1])  # Γ_1 needs 4 per stripe
    assert not result.converged and result.status == "max_iter"
    assert "infeasible (layers [1]" in result.message
    assert result.history["stripe_l0_inf_1"] == [4.0]
    np.testing.assert_allclose(result.codes[1], gamma2, atol=1e-10)


def test_bp_projection():
    model = golomb_model()
    gamma2 = isolated_spikes(np.random.default_rng(5))
    x = model.synthesize(gamma2)[0]
    effective = model.effective(2)
    result = project(model, x, [4, 1], pursuit="bp", lam=0.05, tol=1e-8)
    direct = basis_pursuit(effective, x, 0.05, tol=1e-8)
    np.testing.assert_allclose(result.codes[1], direct.codes[0], atol=1e-6)
    np.testing.assert_allclose(result.codes[0], model[1].synthesize(result.codes[1]), atol=1e-12)
    residual = np.linalg.norm(x - effective.synthesize(result.codes[1]))
    assert result.certificate == pytest.approx(residual, rel=1e-10)
    assert result.history["pursuit_certificate"] == [direct.certificate] and direct.converged
    assert result.converged == (
        result.history["stripe_l0_inf_1"][0] <= 4 and result.history["stripe_l0_inf_2"][0] <= 1)


def test_batch_and_float32():
    model = golomb_model()
    rng = np.random.default_rng(6)
    gammas = np.stack([isolated_spikes(rng) for _ in range(3)])
    x = model.synthesize(gammas)[0]
    result = project(model, x, [4, 1])
    assert result.codes[1].shape == (3, 2, 128)
    np.testing.assert_allclose(result.codes[1], gammas, atol=1e-10)
    assert len(result.history["residual_l2"]) == 3 and result.converged
    single = MLCSC([ConvDictionary(layer.filters.astype(np.float32)) for layer in model.layers])
    low = project(single, x[0].astype(np.float32), [4, 1])
    assert low.codes[0].dtype == np.float32
    np.testing.assert_array_equal(low.codes[1] != 0, gammas[0] != 0)
    np.testing.assert_allclose(low.codes[1], gammas[0], atol=1e-5)


def test_engines_agree():
    model = golomb_model()
    rng = np.random.default_rng(8)
    x = model.synthesize(isolated_spikes(rng))[0] + 0.01 * rng.standard_normal((1, 128))
    fast = project(model, x, [4, 2], engine="cpu")
    slow = project(model, x, [4, 2], engine="numpy")
    for a, b in zip(fast.codes, slow.codes, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-10)
    assert fast.message == slow.message


def test_argument_validation():
    model = golomb_model()
    x = np.zeros((1, 128))
    with pytest.raises(TypeError, match="model must be an MLCSC"):
        project(model.layers[0], x, [1])
    with pytest.raises(ValueError, match="pursuit must be"):
        project(model, x, [4, 1], pursuit="lasso")
    with pytest.raises(ValueError, match="one bound per layer"):
        project(model, x, [4])
    with pytest.raises(TypeError, match="sparsities must be a sequence"):
        project(model, x, 4)
    with pytest.raises(ValueError, match=r"sparsities\[1\] must be >= 1"):
        project(model, x, [4, 0])
    with pytest.raises(ValueError, match="needs sparsities or tol"):
        project(model, x)
    with pytest.raises(ValueError, match="lam is the weight"):
        project(model, x, [4, 1], lam=0.1)
    with pytest.raises(ValueError, match="needs lam"):
        project(model, x, pursuit="bp")
    with pytest.raises(ValueError, match="lam must be finite"):
        project(model, x, pursuit="bp", lam=-0.5)
    with pytest.raises(ValueError, match="tol must be finite"):
        project(model, x, [4, 1], tol=-1.0)
    with pytest.raises(ValueError, match="N >= 2n - 1"):
        project(model, np.zeros((1, 30)), [4, 1])
    with pytest.raises(TypeError, match="y has dtype"):
        project(model, x.astype(np.float32), [4, 1])
    with pytest.raises(ValueError, match="engine"):
        project(model, x, [4, 1], engine="gpu")
