"""Convolutional OMP: engines agree, equals a plain dense OMP, recovery under THEORY W3/W6."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlverify import ConvDictionary, patch_l2_inf, stripe_l0_inf
from mlverify.pursuits._omp import _gram_column, omp

BARKER = np.array([1, 1, 1, 1, 1, -1, -1, 1, 1, -1, 1, -1, 1], dtype=np.float64) / np.sqrt(13)


def barker() -> ConvDictionary:
    return ConvDictionary(BARKER.reshape(1, 1, 13))


def plain_omp(D: ConvDictionary, y: np.ndarray, steps: int, max_stripe: int | None = None):
    """Textbook OMP on the dense normalised matrix (lstsq re-fit, brute-force stripe check)."""
    spatial = y.shape[1:]
    A = D.to_dense(spatial)
    norms = np.linalg.norm(A, axis=0)
    A = A / norms
    shape = (D.n_atoms,) + spatial
    target = y.ravel()
    support: list[int] = []
    coef = np.zeros(0)
    resid = target.copy()
    for _ in range(steps):
        score = np.abs(A.T @ resid)
        score[support] = -1.0
        if max_stripe is not None:
            for j in np.flatnonzero(score >= 0):
                trial = np.zeros(A.shape[1])
                trial[support + [j]] = 1.0
                if stripe_l0_inf(trial.reshape(shape), D.kernel_size) > max_stripe:
                    score[j] = -1.0
        if score.max() < 0:
            break
        support.append(int(np.argmax(score)))
        coef = np.linalg.lstsq(A[:, support], target, rcond=None)[0]
        resid = target - A[:, support] @ coef
    codes = np.zeros(A.shape[1])
    codes[support] = coef / norms[support]
    return support, codes.reshape(shape)


@st.composite
def problems(draw, dtype=np.float64):
    """A random dictionary (1-D or 2-D, c >= 1) and a signal with N >= 2n - 1 (no exact ties)."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    d = draw(st.sampled_from([1, 2]))
    m = draw(st.integers(1, 3))
    c = draw(st.integers(1, 2))
    if d == 1:
        n = (draw(st.integers(1, 4)),)
        spatial = (2 * n[0] - 1 + draw(st.integers(0, 6)),)
    else:
        n = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        spatial = tuple(2 * k - 1 + draw(st.integers(0, 2)) for k in n)
    if m > 1 and c * np.prod(n) == 1:  # scalar atoms are collinear: every selection is a tie
        c = 2
    filters = rng.standard_normal((m, c) + n) * rng.uniform(0.5, 2.0, (m, 1) + (1,) * d)
    D = ConvDictionary(filters.astype(dtype))
    y = rng.standard_normal((c,) + spatial).astype(dtype)
    return D, y


def planted_barker(rng: np.random.Generator, N: int, k: int, low: float = 1.0) -> np.ndarray:
    """Codes for Barker-13 with no stripe (side 25) holding more than ``k`` non-zeros.

    Built constructively: positions are offered in random order and kept while every periodic
    window of side 25 still holds at most ``k`` of them.
    """
    counts = np.zeros(N, dtype=int)  # counts[x]: kept positions in the window x .. x+24
    codes = np.zeros((1, N))
    for p in rng.permutation(N)[: rng.integers(1, N + 1)]:
        starts = (p - np.arange(25)) % N
        if counts[starts].max() < k:
            counts[starts] += 1
            codes[0, p] = rng.choice([-1.0, 1.0]) * rng.uniform(low, 2.0)
    return codes


def test_gram_column_matches_dense_gram():
    rng = np.random.default_rng(3)
    D = ConvDictionary(rng.standard_normal((2, 2, 3, 2)))
    spatial = (5, 4)
    A = D.normalized().to_dense(spatial)
    shape = (2, 1 * 5, 4)
    gram = D.local_gram()
    everything = np.arange(A.shape[1])
    for pick in (0, 7, 23, 39):
        np.testing.assert_allclose(
            _gram_column(gram, everything, pick, shape), A.T @ A[:, pick], atol=1e-12
        )


@given(problems(), st.integers(1, 8), st.sampled_from([None, 1, 2]))
def test_engines_agree(problem, steps, max_stripe):
    D, y = problem
    fast = omp(D, y, n_nonzero=steps, max_stripe=max_stripe, engine="cpu")
    slow = omp(D, y, n_nonzero=steps, max_stripe=max_stripe, engine="numpy")
    assert fast.history["atom"] == slow.history["atom"]
    assert fast.n_iter == slow.n_iter
    if fast.status != slow.status:
        # A residual at round-off level: "orthogonal to every atom" (converged) and "next atom
        # linearly dependent" (stopped) are both rounding decisions, and the engines sum in
        # different orders.
        assert {fast.status, slow.status} == {"converged", "max_iter"}
        assert fast.history["residual_norm"][-1] <= 1e-12 * np.linalg.norm(y)
    np.testing.assert_allclose(fast.codes[0], slow.codes[0], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        fast.history["residual_norm"], slow.history["residual_norm"], rtol=1e-9, atol=1e-10
    )


@pytest.mark.parametrize("max_stripe", [None, 4])
def test_engines_agree_over_many_steps(max_stripe):
    """The local updates do not drift: 60 steps on a 2-D, 2-channel problem."""
    rng = np.random.default_rng(9)
    D = ConvDictionary(rng.standard_normal((3, 2, 4, 3)))
    y = rng.standard_normal((2, 24, 20))
    fast = omp(D, y, n_nonzero=60, max_stripe=max_stripe)
    slow = omp(D, y, n_nonzero=60, max_stripe=max_stripe, engine="numpy")
    assert fast.n_iter == slow.n_iter and fast.n_iter > 16  # past the kernel's first growth
    assert fast.history["atom"] == slow.history["atom"]
    np.testing.assert_allclose(fast.codes[0], slow.codes[0], rtol=1e-9, atol=1e-10)
    assert fast.certificate == pytest.approx(slow.certificate, rel=1e-9)
    assert fast.history["residual_norm"][-1] == pytest.approx(fast.certificate, rel=1e-9)


@given(problems(), st.integers(1, 8), st.sampled_from([None, 1, 2]))
def test_equals_plain_dense_omp(problem, steps, max_stripe):
    D, y = problem
    result = omp(D, y, n_nonzero=steps, max_stripe=max_stripe)
    support, codes = plain_omp(D, y, result.n_iter, max_stripe)
    assert [int(a) for a in result.history["atom"]] == support
    np.testing.assert_allclose(result.codes[0], codes, rtol=1e-10, atol=1e-10)
    # the certificate is the residual of the returned codes
    residual = np.linalg.norm(y - D.synthesize(result.codes[0]))
    assert result.certificate == pytest.approx(residual, rel=1e-10, abs=1e-12)
    assert (result.n_iter == steps) == result.message.startswith("n_nonzero steps done")


@given(problems(), st.integers(1, 3))
def test_max_stripe_respected(problem, k):
    D, y = problem
    result = omp(D, y, n_nonzero=50, max_stripe=k)
    assert stripe_l0_inf(result.codes[0], D.kernel_size) <= k
    assert np.count_nonzero(result.codes[0]) == result.n_iter


@given(problems(np.float32), st.integers(1, 6))
def test_float32_matches_float64(problem, steps):
    D, y = problem
    single = omp(D, y, n_nonzero=steps)
    double = omp(ConvDictionary(D.filters.astype(np.float64)), y.astype(np.float64),
                 n_nonzero=steps)
    assert single.codes[0].dtype == np.float32
    assert single.history["atom"] == double.history["atom"]
    # float32 least squares on the support: rounding amplified by the condition number
    dense = D.to_dense(y.shape[1:]).astype(np.float64)
    cond = np.linalg.cond(dense[:, double.codes[0].ravel() != 0]) if steps else 1.0
    tol = 10 * np.finfo(np.float32).eps * max(cond, 1.0)
    np.testing.assert_allclose(single.codes[0], double.codes[0].astype(np.float32), rtol=tol,
                               atol=tol * np.abs(double.codes[0]).max())


@given(st.integers(0, 2**32 - 1), st.integers(25, 90), st.integers(1, 6))
def test_barker_noiseless_recovery_w3(seed, N, k):
    """THEORY W3: ‖Γ‖^s_{0,∞} < ½(1 + 1/μ) = 7 ⇒ ‖Γ‖₀ OMP steps recover Γ exactly."""
    D = barker()
    assert D.coherence((N,)) == pytest.approx(1 / 13)
    gamma = planted_barker(np.random.default_rng(seed), N, k)
    assert stripe_l0_inf(gamma, 13) <= k < 0.5 * (1 + 13)
    y = D.synthesize(gamma)
    result = omp(D, y, n_nonzero=np.count_nonzero(gamma))
    np.testing.assert_array_equal(result.codes[0] != 0, gamma != 0)
    np.testing.assert_allclose(result.codes[0], gamma, atol=1e-10)
    assert result.certificate < 1e-10
    tolerant = omp(D, y, tol=1e-9)
    np.testing.assert_array_equal(tolerant.codes[0] != 0, gamma != 0)
    assert tolerant.status == "converged"


def test_barker_noisy_recovery_w6():
    """THEORY W6: k < ½(1 + 1/μ) − (1/μ)·ε_L/|Γ^min| ⇒ exact support, bounded error."""
    rng = np.random.default_rng(7)
    D = barker()
    N, k, eps = 120, 3, 0.1
    gamma = planted_barker(rng, N, k)
    gamma[gamma != 0] = np.sign(gamma[gamma != 0]) * (1 + np.abs(gamma[gamma != 0]) / 2)
    noise = rng.standard_normal((1, N))
    noise *= eps / patch_l2_inf(noise, 13)
    mu = D.coherence((N,))
    g_min = np.abs(gamma[gamma != 0]).min()
    k_true = stripe_l0_inf(gamma, 13)
    assert k_true < 0.5 * (1 + 1 / mu) - (1 / mu) * eps / g_min
    assert np.count_nonzero(gamma) >= 5
    result = omp(D, D.synthesize(gamma) + noise, n_nonzero=np.count_nonzero(gamma))
    np.testing.assert_array_equal(result.codes[0] != 0, gamma != 0)
    error = np.sum((result.codes[0] - gamma) ** 2)
    assert error <= np.sum(noise**2) / (1 - mu * (k_true - 1))


def test_tol_stops_at_first_step_below():
    rng = np.random.default_rng(11)
    D = ConvDictionary(rng.standard_normal((2, 1, 4)))
    y = rng.standard_normal((1, 16))
    tol = 0.4 * np.linalg.norm(y)
    result = omp(D, y, tol=tol)
    trace = result.history["residual_norm"]
    assert result.status == "converged" and result.converged
    assert trace[-1] <= tol < trace[-2]
    assert np.all(np.diff(trace) <= 1e-12)
    capped = omp(D, y, n_nonzero=1, tol=1e-9)
    assert capped.status == "max_iter" and not capped.converged and capped.n_iter == 1


def test_batch_equals_loop():
    rng = np.random.default_rng(5)
    D = ConvDictionary(rng.standard_normal((2, 1, 3, 3)))
    y = rng.standard_normal((2, 3, 1, 6, 5))
    result = omp(D, y, n_nonzero=4)
    assert result.codes[0].shape == (2, 3, 2, 6, 5)
    for index in np.ndindex(2, 3):
        single = omp(D, y[index], n_nonzero=4)
        np.testing.assert_array_equal(result.codes[0][index], single.codes[0])
    assert len(result.history["final_residual_norm"]) == 6


def test_scale_of_given_atoms():
    rng = np.random.default_rng(2)
    filters = rng.standard_normal((2, 1, 3))
    y = rng.standard_normal((1, 10))
    base = omp(ConvDictionary(filters), y, n_nonzero=3).codes[0]
    scaled = omp(ConvDictionary(filters * np.array([2.0, 0.5])[:, None, None]), y,
                 n_nonzero=3).codes[0]
    np.testing.assert_allclose(scaled * np.array([2.0, 0.5])[:, None], base, atol=1e-12)


def test_argument_validation():
    D = ConvDictionary(np.ones((1, 1, 3)))
    y = np.ones((1, 8))
    with pytest.raises(ValueError, match="n_nonzero or tol"):
        omp(D, y)
    with pytest.raises(TypeError, match="D must be"):
        omp(np.ones((1, 1, 3)), y, n_nonzero=1)
    with pytest.raises(TypeError, match="y has dtype"):
        omp(D, y.astype(np.float32), n_nonzero=1)
    with pytest.raises(ValueError, match="N >= 2n - 1"):
        omp(D, np.ones((1, 4)), n_nonzero=1)
    with pytest.raises(ValueError, match="channels"):
        omp(D, np.ones((2, 8)), n_nonzero=1)
    with pytest.raises(ValueError, match="y contains NaN"):
        omp(D, np.full((1, 8), np.nan), n_nonzero=1)
    with pytest.raises(ValueError, match="n_nonzero must be >= 1"):
        omp(D, y, n_nonzero=0)
    with pytest.raises(TypeError, match="n_nonzero must be an integer"):
        omp(D, y, n_nonzero=1.5)
    with pytest.raises(ValueError, match="tol must be finite"):
        omp(D, y, tol=-1.0)
    with pytest.raises(TypeError, match="tol must be a real"):
        omp(D, y, tol="small")
    with pytest.raises(ValueError, match="max_stripe must be >= 1"):
        omp(D, y, n_nonzero=1, max_stripe=0)
    with pytest.raises(ValueError, match="engine"):
        omp(D, y, n_nonzero=1, engine="cuda")
    with pytest.raises(ValueError, match="empty batch"):
        omp(D, np.ones((0, 1, 8)), n_nonzero=1)
    with pytest.raises(ValueError, match="all zero"):
        omp(ConvDictionary(np.zeros((1, 1, 3))), y, n_nonzero=1)


def test_early_stops_are_reported():
    D = ConvDictionary(np.ones((1, 1, 1)))  # the identity: 5 atoms span everything
    y = np.arange(1.0, 6.0).reshape(1, 5)
    result = omp(D, y, n_nonzero=9)
    assert result.n_iter == 5 and result.status == "max_iter"
    assert "no eligible atom" in result.message
    np.testing.assert_allclose(result.codes[0], y)
    zero = omp(D, np.zeros((1, 5)), n_nonzero=3)
    assert zero.n_iter == 0 and zero.status == "converged" and "orthogonal" in zero.message
    rng = np.random.default_rng(0)  # 6 atoms in R^3: the 4th pick lies in the span of 3
    dependent = omp(ConvDictionary(rng.standard_normal((2, 1, 2))), rng.standard_normal((1, 3)),
                    n_nonzero=6)
    assert dependent.n_iter == 3 and "linearly dependent" in dependent.message
    assert dependent.status == "max_iter" and dependent.certificate < 1e-13
