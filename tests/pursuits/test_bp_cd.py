"""Locally greedy coordinate descent for 1-D basis pursuit: kernels against their NumPy oracles,
optima against FISTA/ADMM (periodic) and a dense proximal-gradient oracle (valid boundary),
honest certificates, callbacks and input checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mlverify.kernels import cpu_cd
from mlverify.model.dictionary import ConvDictionary
from mlverify.pursuits._basis_pursuit import basis_pursuit
from mlverify.pursuits._bp_cd import _State, bp_cd
from mlverify.pursuits._certificates import DualityGap

DTYPES = [np.float32, np.float64]
#: Certified gap each dtype can reach on the small problems below.
TOL = {np.float32: 1e-5, np.float64: 1e-9}


def _problem(seed, dtype, atoms=3, channels=2, taps=5, width=24, batch=2):
    rng = np.random.default_rng(seed)
    D = ConvDictionary(rng.standard_normal((atoms, channels, taps)).astype(dtype)).normalized()
    y = rng.standard_normal((batch, channels, width)).astype(dtype)
    return D, y


def _support(D, width, valid):
    if not valid:
        return None
    support = np.zeros((D.n_atoms, width), bool)
    support[:, : width - D.kernel_size[0] + 1] = True
    return support


# ----------------------------------------------------------------------------- kernels
@given(
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from(DTYPES),
    nonneg=st.booleans(),
    valid=st.booleans(),
    seg_len=st.integers(1, 12),
    eps=st.sampled_from([0.0, 1e-2, 0.3]),
)
def test_sweeps_match_oracle(seed, dtype, nonneg, valid, seg_len, eps):
    # eps = 0 counts rounding-level moves as updates: float32 kernel and oracle (different
    # summation orders) may then disagree on a near-tie, so float32 is compared with eps > 0.
    assume(dtype == np.float64 or eps > 0)
    D, y = _problem(seed, dtype, batch=3)
    rng = np.random.default_rng(seed + 1)
    width, n = y.shape[-1], D.kernel_size[0]
    n_valid = width - n + 1 if valid else width
    codes = rng.standard_normal((3, D.n_atoms, width)).astype(dtype) * (rng.random() < 0.5)
    if nonneg:
        codes = np.abs(codes)
    codes[..., n_valid:] = 0
    states = []
    for _ in range(2):
        state = _State(D, y, codes.copy(), n_valid, "cpu")
        state.active = np.ones((3, -(-n_valid // seg_len)), np.uint8)
        state.eps = np.full(3, eps)
        states.append(state)
    lam = dtype(0.2)
    counts = [np.zeros(3, np.int64), np.zeros(3, np.int64)]
    for function, state, count in zip((cpu_cd.lgcd_sweeps, cpu_cd.lgcd_sweeps_reference), states,
                                      counts, strict=True):
        function(state.beta, state.codes, state.resid, D.filters, state.cross, state.inv_diag,
                 state.norms, lam, nonneg, n_valid, not valid, seg_len, 3, state.active,
                 state.eps, count)
    fast, oracle = states
    np.testing.assert_array_equal(counts[0], counts[1])
    assert counts[0].sum() > 0 or eps > 0
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    for name in ("codes", "beta", "resid"):
        a, b = getattr(fast, name), getattr(oracle, name)
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=0, atol=rtol * max(1.0, np.abs(b).max()))
    np.testing.assert_array_equal(fast.active, oracle.active)
    np.testing.assert_array_equal(fast.eps, oracle.eps)
    assert (fast.codes[..., n_valid:] == 0).all()
    if nonneg:
        assert (fast.codes >= 0).all()
    # the maintained state is still the exact one of the new codes
    exact = _State(D, y, fast.codes.copy(), n_valid, "numpy")
    for name in ("beta", "resid"):
        a = getattr(fast, name)[..., :n_valid] if name == "beta" else getattr(fast, name)
        b = getattr(exact, name)[..., :n_valid] if name == "beta" else getattr(exact, name)
        np.testing.assert_allclose(a, b, rtol=0, atol=20 * rtol * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nonneg", [False, True])
def test_gap_terms_match_oracle(dtype, nonneg):
    D, y = _problem(3, dtype, batch=4)
    rng = np.random.default_rng(4)
    codes = np.abs(rng.standard_normal((4, D.n_atoms, y.shape[-1]))).astype(dtype)
    state = _State(D, y, codes, 20, "cpu")
    out = [np.zeros((4, 4)), np.zeros((4, 4))]
    cpu_cd.gap_terms(state.beta, state.codes, state.resid, state.y, state.diag, 20, nonneg, out[0])
    cpu_cd.gap_terms_reference(state.beta, state.codes, state.resid, state.y, state.diag, 20,
                               nonneg, out[1])
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12)


def test_cross_correlations_are_the_gram_entries():
    D, _ = _problem(5, np.float64, atoms=3, channels=2, taps=4, width=11)
    dense = D.to_dense((11,))  # columns: (atom, position) in C order
    cross = cpu_cd.cross_correlations(D.filters)
    t = 5
    for k in range(3):
        for j in range(3):
            for q in range(t - 3, t + 4):
                expected = dense[:, j * 11 + q] @ dense[:, k * 11 + t]
                assert cross[k, j, q - t + 3] == pytest.approx(expected, abs=1e-14)


# ----------------------------------------------------------------------------- optima
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("solver", ["fista", "admm"])
def test_periodic_optimum_matches_fista_and_admm(dtype, nonneg, solver):
    D, y = _problem(11, dtype)
    lam, tol = 0.3, TOL[dtype]
    ours = bp_cd(D, y, lam, nonneg=nonneg, tol=tol)
    theirs = basis_pursuit(D, y, lam, nonneg=nonneg, tol=tol, solver=solver, max_iter=100000)
    assert ours.status == theirs.status == "converged"
    assert ours.certificate <= tol and ours.history["certified"][-1] == 1.0
    assert ours.codes[0].dtype == dtype and ours.codes[0].shape == theirs.codes[0].shape
    certificate = DualityGap(D, y, lam, nonneg=nonneg)
    f_ours, f_theirs = certificate.objective(ours.codes[0]), certificate.objective(theirs.codes[0])
    assert abs(f_ours - f_theirs) <= 2 * tol * f_theirs
    scale = np.abs(theirs.codes[0]).max()
    atol = (3e-3 if dtype == np.float32 else 1e-4) * scale
    np.testing.assert_allclose(ours.codes[0], theirs.codes[0], rtol=0, atol=atol)


def _dense_valid_optimum(D, y, lam, nonneg, iterations=20000):
    """FISTA in NumPy on the dense restricted matrix (columns of the valid positions)."""
    width, n = y.shape[-1], D.kernel_size[0]
    n_valid = width - n + 1
    dense = D.to_dense((width,)).astype(np.float64)
    columns = (np.arange(D.n_atoms)[:, None] * width + np.arange(n_valid)).ravel()
    matrix = dense[:, columns]
    step = 1.0 / np.linalg.norm(matrix, 2) ** 2
    out = []
    for signal in y.astype(np.float64).reshape(y.shape[0], -1):
        x = z = np.zeros(matrix.shape[1])
        t = 1.0
        for _ in range(iterations):
            v = z - step * (matrix.T @ (matrix @ z - signal))
            x_new = np.maximum(v - step * lam, 0) if nonneg else np.sign(v) * np.maximum(
                np.abs(v) - step * lam, 0)
            t_new = 0.5 * (1 + np.sqrt(1 + 4 * t * t))
            z = x_new + (t - 1) / t_new * (x_new - x)
            x, t = x_new, t_new
        codes = np.zeros((D.n_atoms, width))
        codes[:, :n_valid] = x.reshape(D.n_atoms, n_valid)
        out.append(codes)
    return np.stack(out)


@pytest.mark.parametrize("nonneg", [False, True])
def test_valid_optimum_matches_dense_oracle(nonneg):
    D, y = _problem(21, np.float64, width=16)
    lam = 0.3
    ours = bp_cd(D, y, lam, nonneg=nonneg, tol=1e-10, boundary="valid")
    assert ours.status == "converged"
    n_valid = 16 - D.kernel_size[0] + 1
    assert (ours.codes[0][..., n_valid:] == 0).all()
    oracle = _dense_valid_optimum(D, y, lam, nonneg)
    np.testing.assert_allclose(ours.codes[0], oracle, rtol=0, atol=1e-6)
    # the objective is the non-periodic one: synthesis of the padded codes does not wrap
    full = sum(np.convolve(ours.codes[0][0, k, :n_valid], D.filters[k, 0])
               for k in range(D.n_atoms))
    np.testing.assert_allclose(D.synthesize(ours.codes[0])[0, 0], full, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("boundary", ["periodic", "valid"])
def test_certificate_is_honest(dtype, boundary):
    D, y = _problem(31, dtype)
    lam = 0.2
    valid = boundary == "valid"
    rough = bp_cd(D, y, lam, tol=1e-2, boundary=boundary, check_every=1)
    D64 = ConvDictionary(D.filters.astype(np.float64))
    sharp = bp_cd(D64, y.astype(np.float64), lam, tol=1e-11, boundary=boundary)
    certificate = DualityGap(D64, y.astype(np.float64), lam, support=_support(D, 24, valid))
    f_opt_upper = certificate.objective(sharp.codes[0])
    f_rough = certificate.objective(rough.codes[0].astype(np.float64))
    assert rough.certificate <= 1e-2
    # the reported gap bounds the true relative suboptimality (>= this lower bound of it)
    assert rough.certificate >= (f_rough - f_opt_upper) / f_opt_upper
    assert rough.history["objective"][-1] == pytest.approx(f_rough, rel=1e-12)


def test_batch_is_independent_problems():
    D, y = _problem(41, np.float64, batch=3)
    together = bp_cd(D, y, 0.3, tol=1e-10)
    for b in range(3):
        alone = bp_cd(D, y[b], 0.3, tol=1e-10)
        np.testing.assert_allclose(together.codes[0][b], alone.codes[0], atol=1e-6)


def test_warm_start_at_the_optimum_stops_at_the_first_check():
    D, y = _problem(42, np.float64)
    optimum = bp_cd(D, y, 0.3, tol=1e-10).codes[0]
    again = bp_cd(D, y, 0.3, tol=1e-8, x0=optimum, check_every=2)
    assert again.status == "converged" and again.n_iter == 2


def test_lam_above_lam_max_is_exact_zero():
    D, y = _problem(43, np.float64)
    lam_max = DualityGap(D, y, 0.0, nonneg=True).lam_max
    result = bp_cd(D, y, lam_max * 1.01, nonneg=True)
    assert result.status == "exact" and not result.codes[0].any()


def test_callback_sees_every_sweep_and_can_stop():
    D, y = _problem(44, np.float64)
    seen = []

    def callback(iteration, codes):
        seen.append((iteration, codes.shape))
        return iteration == 3

    result = bp_cd(D, y, 0.3, tol=1e-12, callback=callback)
    assert result.status == "stopped" and not result.converged and result.n_iter == 3
    assert seen == [(1, (2, 3, 24)), (2, (2, 3, 24)), (3, (2, 3, 24))]
    assert result.history["certified"][-1] == 1.0 and result.history["iteration"][-1] == 3


def test_max_iter_reports_a_certified_gap():
    D, y = _problem(45, np.float64)
    result = bp_cd(D, y, 0.3, tol=1e-12, max_iter=3)
    assert result.status == "max_iter" and result.n_iter == 3
    assert result.certificate == result.history["relative_duality_gap"][-1] > 1e-12


def test_support_restricts_the_certificate():
    D, y = _problem(46, np.float64)
    support = _support(D, 24, True)
    restricted = DualityGap(D, y, 0.1, support=support)
    codes = np.zeros((2, 3, 24))
    codes[0, 1, -1] = 1.0
    assert restricted.objective(codes) == np.inf and restricted.kkt(codes) == np.inf
    assert restricted.certificates(codes)["primal"] == np.inf
    assert restricted.lam_max <= DualityGap(D, y, 0.1).lam_max
    with pytest.raises(TypeError, match="support"):
        DualityGap(D, y, 0.1, support=support.astype(int))
    with pytest.raises(ValueError, match="support"):
        DualityGap(D, y, 0.1, support=support[:, :10])


def test_bad_inputs_raise_clear_errors():
    D, y = _problem(47, np.float64)
    with pytest.raises(ValueError, match="1-D"):
        bp_cd(ConvDictionary(np.ones((2, 1, 3, 3))), np.ones((1, 8, 8)), 0.1)
    with pytest.raises(ValueError, match="boundary"):
        bp_cd(D, y, 0.1, boundary="same")
    with pytest.raises(TypeError, match="nonneg"):
        bp_cd(D, y, 0.1, nonneg=1)
    with pytest.raises(ValueError, match="tol"):
        bp_cd(D, y, 0.1, tol=0)
    with pytest.raises(TypeError, match="callback"):
        bp_cd(D, y, 0.1, callback=3)
    with pytest.raises(TypeError, match="y"):
        bp_cd(D, y.astype(np.float32), 0.1)
    with pytest.raises(ValueError, match="2n - 1"):
        bp_cd(D, y[..., :8], 0.1)
    bp_cd(D, y[..., :8], 0.1, boundary="valid", max_iter=2)  # no wrap-around: N >= n suffices
    with pytest.raises(ValueError, match="x0"):
        bp_cd(D, y, 0.1, nonneg=True, x0=-np.ones((2, 3, 24)))
    with pytest.raises(ValueError, match="last n - 1"):
        bp_cd(D, y, 0.1, boundary="valid", x0=np.ones((2, 3, 24)))
    with pytest.raises(ValueError, match="lam"):
        bp_cd(D, y, -1.0)


def test_same_objective_as_alphacsc():
    """alphacsc's objective and ours agree on the same codes; both solvers reach its optimum."""
    pytest.importorskip("alphacsc")
    from alphacsc.loss_and_gradient import compute_X_and_objective_multi
    from alphacsc.update_z_multi import update_z_multi

    rng = np.random.default_rng(48)
    atoms = rng.standard_normal((4, 1, 8))
    atoms /= np.sqrt((atoms**2).sum(axis=(1, 2), keepdims=True))
    D = ConvDictionary(atoms)
    x = rng.standard_normal((2, 1, 64))
    ours = bp_cd(D, x, 0.5, nonneg=True, tol=1e-10, boundary="valid").codes[0]
    theirs, _, _ = update_z_multi(x, atoms, 0.5, solver="lgcd", solver_kwargs={"tol": 1e-10})
    padded = np.zeros_like(ours)
    padded[..., :57] = theirs
    certificate = DualityGap(D, x, 0.5, nonneg=True, support=_support(D, 64, True))
    for codes in (ours, padded):
        peer = compute_X_and_objective_multi(x, codes[..., :57], D_hat=atoms, reg=0.5,
                                             feasible_evaluation=False)
        assert certificate.objective(codes) == pytest.approx(peer, rel=1e-13)
    np.testing.assert_allclose(ours, padded, atol=1e-6)
