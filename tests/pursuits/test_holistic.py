"""Holistic pursuit and the projection baseline (THEORY.md §3 [HOL], §6 [HOL] experiment)."""

import numpy as np
import pytest
import scipy.linalg

from mlverify import ConvDictionary
from mlverify.pursuits._holistic import holistic_pursuit, projection_baseline


def hol_instance(seed, n_zeros, s2=11, snr_db=25.0, sigma=0.1):
    """The [HOL] experiment's signal, as the authors' ``CreateMlsrSignalD2Kernel.m`` builds it.

    n = 50, m_1 = 100, m_2 = 50, D_1 = randn/√n, D_2 = randn/√m_2; support Λ_2 (s_2 atoms) and
    co-support Λ_1^c (n_zeros rows) at random; γ_2 on Λ_2 drawn in null(D_2[Λ_1^c, Λ_2]) so that
    γ_1 = D_2γ_2 vanishes on Λ_1^c. The amplitude follows the authors' script:
    ‖x‖ = 10^(SNR/10)·√n·σ (their "25 dB" is a norm ratio of 10^2.5 to the noise's √n·σ).
    """
    rng = np.random.default_rng(seed)
    n, m1, m2 = 50, 100, 50
    d1 = rng.standard_normal((n, m1)) / np.sqrt(n)
    d2 = rng.standard_normal((m1, m2)) / np.sqrt(m2)
    support = rng.choice(m2, s2, replace=False)
    zeros = rng.choice(m1, n_zeros, replace=False)
    basis = scipy.linalg.null_space(d2[np.ix_(zeros, support)])
    gamma2 = np.zeros(m2)
    gamma2[support] = basis @ rng.standard_normal(basis.shape[1])
    x = d1 @ (d2 @ gamma2)
    scale = 10 ** (snr_db / 10) * np.sqrt(n) * sigma / np.linalg.norm(x)
    gamma2 *= scale
    y = scale * x + sigma * rng.standard_normal(n)
    return d1, d2, y, gamma2, zeros, sigma


@pytest.mark.parametrize("n_zeros", [5, 8])
def test_holistic_beats_projection_on_average(n_zeros):
    """[HOL]: holistic error ‖γ̂_2 − γ_2‖²/‖γ_2‖² below the projection's on average (ℓ_1 ≥ 5)."""
    errors = {"holistic": [], "projection": []}
    for seed in range(3):
        d1, d2, y, gamma2, _, sigma = hol_instance(100 * n_zeros + seed, n_zeros)
        holistic = holistic_pursuit(d1, d2, y, n_zeros, sigma=sigma, tol=1e-6)
        projection = projection_baseline(d1, d2, y, sigma=sigma, tol=1e-6)
        for name, result in (("holistic", holistic), ("projection", projection)):
            assert result.converged
            residual = np.sum((y - d1 @ result.codes[0]) ** 2)
            assert abs(residual / (y.size * sigma**2) - 1) <= 0.05
            errors[name].append(np.sum((result.codes[1] - gamma2) ** 2) / np.sum(gamma2**2))
    assert np.mean(errors["holistic"]) < np.mean(errors["projection"])


def test_holistic_structure():
    """γ̂_1 = D_2γ̂_2 vanishes on the chosen co-support; the indices are distinct."""
    d1, d2, y, _, _, _ = hol_instance(7, 6)
    result = holistic_pursuit(d1, d2, y, 6, lam=0.5, tol=1e-10)
    chosen = [int(j) for j in result.history["co_support"]]
    assert len(set(chosen)) == 6
    np.testing.assert_allclose(result.codes[0], d2 @ result.codes[1], rtol=1e-12, atol=1e-14)
    assert np.abs(result.codes[0][chosen]).max() <= 1e-12 * np.abs(result.codes[0]).max()
    assert len(result.history["lam"]) == 7 and result.history["lam"] == [0.5] * 7
    assert str(chosen) in result.message


def test_projection_baseline_is_a_certified_lasso():
    """K = I: the lasso's optimality conditions hold at the baseline's γ̂_2."""
    d1, d2, y, _, _, _ = hol_instance(8, 3)
    lam = 0.3
    result = projection_baseline(d1, d2, y, lam, tol=1e-12)
    gamma = result.codes[1]
    correlation = (d1 @ d2).T @ (y - d1 @ d2 @ gamma)
    on = np.abs(gamma) > 1e-8
    assert np.abs(correlation).max() <= lam * (1 + 1e-5)
    np.testing.assert_allclose(correlation[on], lam * np.sign(gamma[on]), rtol=1e-5)
    assert result.history["co_support"] == []


def test_convolutional_layers_use_the_dense_path():
    """ConvDictionary layers give the same result as their global matrices."""
    rng = np.random.default_rng(9)
    d1 = ConvDictionary(rng.standard_normal((3, 1, 4))).normalized()
    d2 = ConvDictionary(rng.standard_normal((2, 3, 3))).normalized()
    y = rng.standard_normal((1, 10))
    conv = holistic_pursuit(d1, d2, y, 3, lam=0.05, tol=1e-11)
    dense = holistic_pursuit(d1.to_dense(10), d2.to_dense(10), y.ravel(), 3, lam=0.05, tol=1e-11)
    assert [c.shape for c in conv.codes] == [(3, 10), (2, 10)]
    assert conv.history["co_support"] == dense.history["co_support"]
    for a, b in zip(conv.codes, dense.codes, strict=True):
        np.testing.assert_allclose(a.ravel(), b, atol=1e-8)


def test_float32_inputs_give_float32_codes():
    d1, d2, y, _, _, sigma = hol_instance(10, 2)
    result = holistic_pursuit(d1.astype(np.float32), d2.astype(np.float32), y.astype(np.float32),
                              2, sigma=sigma, tol=1e-6)
    assert all(c.dtype == np.float32 for c in result.codes)


def test_arguments_are_validated():
    d1, d2, y, _, _, _ = hol_instance(11, 2)
    with pytest.raises(ValueError, match="exactly one"):
        holistic_pursuit(d1, d2, y, 2)
    with pytest.raises(ValueError, match="exactly one"):
        holistic_pursuit(d1, d2, y, 2, 0.1, sigma=0.1)
    with pytest.raises(ValueError, match="lam"):
        holistic_pursuit(d1, d2, y, 2, -0.1)
    with pytest.raises(ValueError, match="n_zeros"):
        holistic_pursuit(d1, d2, y, 50, 0.1)
    with pytest.raises(ValueError, match="n_zeros"):
        holistic_pursuit(d1, d2, y, -1, 0.1)
    with pytest.raises(ValueError, match="y"):
        projection_baseline(d1, d2, y[:-1], 0.1)
    with pytest.raises(ValueError, match="y"):
        projection_baseline(d1, d2, np.full_like(y, np.inf), 0.1)
    with pytest.raises(ValueError, match="D2"):
        projection_baseline(d1, d2.T, y, 0.1)
    with pytest.raises(ValueError, match="engine"):
        projection_baseline(d1, d2, y, 0.1, engine="gpu")
