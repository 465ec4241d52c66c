"""DFT-domain ADMM for basis pursuit: kernels against oracles, solutions against L-BFGS-B."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize
from hypothesis import given
from hypothesis import strategies as st

from mlverify.kernels import cpu_admm
from mlverify.model.dictionary import ConvDictionary
from mlverify.pursuits import _bp_admm
from mlverify.pursuits._bp_admm import bp_admm
from mlverify.pursuits._certificates import bp_objective, relative_duality_gap

CDTYPE = {np.float32: np.complex64, np.float64: np.complex128}
RTOL = {np.float32: 2e-5, np.float64: 1e-12}


def _complex(rng, shape, dtype):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(CDTYPE[dtype])


# ----------------------------------------------------------------------------- kernels
#: Strategies of the per-frequency kernels' tests.
FREQUENCY_CASES = dict(
    seed=st.integers(0, 2**32 - 1),
    channels=st.integers(1, 3),
    nfreq=st.integers(1, 40),
    batch=st.integers(1, 3),
    block=st.integers(1, 16),
    dtype=st.sampled_from([np.float32, np.float64]),
)


@given(atoms=st.integers(1, 5), **FREQUENCY_CASES)
def test_solve_frequencies_matches_oracle_and_direct_solve(
    seed, channels, atoms, nfreq, batch, block, dtype
):
    rng = np.random.default_rng(seed)
    spectra = _complex(rng, (channels, atoms, nfreq), dtype)
    y_hat = _complex(rng, (batch, channels, nfreq), dtype)
    w = _complex(rng, (batch, atoms, nfreq), dtype)
    rho = float(rng.uniform(0.1, 5.0))
    s128 = spectra.astype(np.complex128)
    gram = cpu_admm.frequency_gram(s128)
    np.testing.assert_allclose(gram, cpu_admm.frequency_gram_reference(s128), rtol=0,
                               atol=1e-13 * np.abs(s128).max() ** 2 * atoms)
    kinv = cpu_admm.woodbury_factor(gram, rho, CDTYPE[dtype])
    signal = (y_hat / dtype(rho)).astype(CDTYPE[dtype])
    rhs0 = np.einsum("cmk,bck->bmk", np.conj(s128), y_hat.astype(np.complex128))  # D^H s

    fast = w.copy()
    cpu_admm.solve_frequencies(spectra, kinv, signal, fast, CDTYPE[dtype](1.0), block)
    oracle = w.copy()
    cpu_admm.solve_frequencies_reference(spectra, kinv, signal, oracle, 1.0)
    scaled = w.copy()  # the folded normalisation of the inverse DFT
    cpu_admm.solve_frequencies(spectra, kinv, signal, scaled, CDTYPE[dtype](0.25), block)
    np.testing.assert_allclose(scaled, 0.25 * fast, rtol=0, atol=RTOL[dtype] * np.abs(fast).max())
    assert fast.dtype == CDTYPE[dtype]
    scale = np.abs(oracle).max()
    np.testing.assert_allclose(fast, oracle, rtol=0, atol=50 * RTOL[dtype] * scale)

    # Independent check: the dense per-frequency system (M^H M + rho I) x = rhs0 + rho w.
    per_freq = np.moveaxis(s128, -1, 0)  # (F, c, m)
    system = np.conj(np.swapaxes(per_freq, 1, 2)) @ per_freq + rho * np.eye(atoms)
    full = (rhs0 + rho * w).astype(np.complex128)
    direct = np.linalg.solve(system[None], np.moveaxis(full, 1, 2)[..., None])[..., 0]
    np.testing.assert_allclose(fast, np.moveaxis(direct, 2, 1), rtol=0,
                               atol=1e3 * np.finfo(dtype).eps * np.abs(direct).max())


@given(parts=st.integers(1, 4), **FREQUENCY_CASES)
def test_row_kernels_of_the_projection_match_einsum(seed, channels, parts, batch, nfreq, block,
                                                    dtype):
    """``row_rhs`` stores (first share) or adds its share M v of the projection, and
    ``woodbury_apply`` sums the partial projections and applies K, as their einsum formulas."""
    rng = np.random.default_rng(seed)
    atoms = 2
    spectra = _complex(rng, (channels, atoms, nfreq), dtype)
    signal = _complex(rng, (batch, channels, nfreq), dtype)
    w_hat = _complex(rng, (nfreq,), dtype)
    v = np.zeros((batch * atoms, nfreq), CDTYPE[dtype])
    previous = _complex(rng, (channels, nfreq), dtype)
    scale = np.abs(spectra).max() * (np.abs(w_hat).max() + channels * np.abs(signal).max())
    expected_v = w_hat + np.einsum("ck,ck->k", np.conj(spectra[:, 1]), signal[batch - 1])
    for first in (True, False):
        proj = previous.copy()
        cpu_admm.row_rhs(w_hat, spectra, 1, signal, batch - 1, v, 2 * batch - 1, proj, first)
        np.testing.assert_allclose(v[-1], expected_v, rtol=0, atol=10 * RTOL[dtype] * scale)
        share = spectra[:, 1] * expected_v
        np.testing.assert_allclose(proj, share if first else previous + share, rtol=0,
                                   atol=10 * RTOL[dtype] * scale * (1 + np.abs(previous).max()))

    partial = _complex(rng, (parts, batch, channels, nfreq), dtype)
    kinv = _complex(rng, (channels, channels, nfreq), dtype)
    coef = np.empty((batch, channels, nfreq), CDTYPE[dtype])
    cpu_admm.woodbury_apply(kinv, partial, coef, block)
    oracle = np.einsum("cdk,bdk->bck", kinv.astype(np.complex128),
                       partial.astype(np.complex128).sum(axis=0))
    np.testing.assert_allclose(coef, oracle, rtol=0,
                               atol=10 * RTOL[dtype] * parts * channels * np.abs(oracle).max())


@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 4),
    size=st.integers(1, 50),
    block=st.integers(1, 64),
    nonneg=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_relaxed_update_matches_oracle(seed, rows, size, block, nonneg, dtype):
    rng = np.random.default_rng(seed)
    x, z, u = (rng.standard_normal((rows, size)).astype(dtype) for _ in range(3))
    alpha, beta = dtype(1.8), dtype(rng.uniform(0.0, 1.0))
    keep = dtype(1.0) - alpha
    low = dtype(-np.inf) if nonneg else -beta
    n_tasks = rows * -(-size // block)
    out = []
    for fast in (True, False):
        zz, uu, ww = z.copy(), u.copy(), np.empty_like(z)
        if fast:
            sums = np.zeros((n_tasks, cpu_admm.N_SUMS))
            cpu_admm.relaxed_update(x, zz, uu, ww, alpha, keep, beta, low, block, sums)
        else:
            sums = np.zeros((1, cpu_admm.N_SUMS))
            cpu_admm.relaxed_update_reference(x, zz, uu, ww, alpha, keep, beta, low, sums)
        out.append((zz, uu, ww, sums.sum(axis=0)))
    for fast, oracle in zip(*out, strict=True):
        np.testing.assert_allclose(fast, oracle, rtol=RTOL[dtype], atol=RTOL[dtype])
    zz = out[0][0]
    assert not np.signbit(zz[zz == 0]).any()  # thresholds give +0.0
    if nonneg:
        assert (zz >= 0).all()
    # the summing and the vectorised loops update identically
    zs, us, ws = z.copy(), u.copy(), np.empty_like(z)
    cpu_admm.relaxed_step(x, zs, us, ws, alpha, keep, beta, low, block)
    for a, b in zip((zs, us, ws), out[0][:3], strict=True):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- solutions
def _problem(seed, *, c, spatial, m=3, n=(3,), dtype=np.float64, batch=()):
    rng = np.random.default_rng(seed)
    D = ConvDictionary(rng.standard_normal((m, c, *n)).astype(dtype)).normalized()
    y = rng.standard_normal((*batch, c, *spatial)).astype(dtype)
    return D, y


def _lbfgs_reference(D, y, lam, nonneg):
    """Tightly converged L-BFGS-B on Γ = p − q (p, q ≥ 0), or Γ = p ≥ 0 when non-negative."""
    spatial = y.shape[1:]
    A = D.to_dense(spatial).astype(np.float64)
    b = y.astype(np.float64).ravel()
    k = A.shape[1]

    def fun(v):
        gamma = v[:k] if nonneg else v[:k] - v[k:]
        r = A @ gamma - b
        g = A.T @ r
        grad = g + lam if nonneg else np.concatenate([g + lam, -g + lam])
        return 0.5 * r @ r + lam * v.sum(), grad

    size = k if nonneg else 2 * k
    opt = scipy.optimize.minimize(
        fun, np.zeros(size), jac=True, method="L-BFGS-B", bounds=[(0, None)] * size,
        options={"maxiter": 100_000, "maxfun": 200_000, "ftol": 1e-16, "gtol": 1e-14},
    )
    gamma = opt.x[:k] if nonneg else opt.x[:k] - opt.x[k:]
    # Polish: on the support found, the optimality condition A_S^T(b - A_S g) = lam sign(g_S)
    # is a linear system; solve it exactly (the caller certifies the result by its gap).
    support = np.abs(gamma) > 1e-6 * np.abs(gamma).max()
    sub = A[:, support]
    signs = np.sign(gamma[support])
    polished = np.zeros(k)
    polished[support] = np.linalg.solve(sub.T @ sub, sub.T @ b - lam * signs)
    assert (np.sign(polished[support]) == signs).all()
    return polished.reshape((D.n_atoms, *spatial))


CASES = [
    pytest.param(dict(c=1, spatial=(24,), n=(4,)), id="1d-c1"),
    pytest.param(dict(c=2, spatial=(20,), n=(3,)), id="1d-c2"),
    pytest.param(dict(c=1, spatial=(7, 8), n=(3, 2)), id="2d-c1"),
    pytest.param(dict(c=2, spatial=(6, 6), n=(2, 3)), id="2d-c2"),
]


@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_objective_matches_lbfgs_and_gap_is_certified(case, nonneg):
    D, y = _problem(7, **case)
    lam = 0.2
    reference = _lbfgs_reference(D, y, lam, nonneg)
    f_ref, _dual_ref, gap_ref = relative_duality_gap(D, y, reference, lam, nonneg=nonneg)
    assert gap_ref < 1e-9  # the independent reference is itself certified

    res = bp_admm(D, y, lam, nonneg=nonneg, tol=1e-11, max_iter=20_000)
    assert res.status == "converged" and res.converged
    (z,) = res.codes
    assert z.dtype == y.dtype and z.shape == reference.shape
    if nonneg:
        assert (z >= 0).all()
    f_admm = bp_objective(D, y, z, lam)
    assert abs(f_admm - f_ref) <= 1e-8 * f_ref
    # The reported gap bounds the true relative suboptimality (F_opt <= f_ref).
    assert res.certificate <= 1e-11
    assert (f_admm - f_ref) / f_ref <= res.certificate + 1e-15
    assert res.history["dual"][-1] <= f_ref * (1 + 1e-12)
    assert res.history["objective"][-1] == pytest.approx(f_admm, rel=1e-12)
    np.testing.assert_allclose(z, reference, atol=1e-5 * np.abs(reference).max())


@pytest.mark.parametrize("case", CASES[:3])
def test_float32_reaches_tolerance(case):
    D32, y32 = _problem(3, dtype=np.float32, **case)
    D64 = ConvDictionary(D32.filters.astype(np.float64))  # the same problem, exactly
    y64 = y32.astype(np.float64)
    lam = 0.2
    res = bp_admm(D32, y32, lam, tol=1e-4)
    assert res.status == "converged"
    assert res.codes[0].dtype == np.float32
    f_opt = bp_admm(D64, y64, lam, tol=1e-10).history["objective"][-1]
    f32 = relative_duality_gap(D32, y32, res.codes[0], lam)[0]
    assert f_opt * (1 - 1e-10) <= f32 <= f_opt * (1 + 1e-4)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(dict(c=1, spatial=(16,), batch=(2, 3)), id="1d-c1"),
        pytest.param(dict(c=2, spatial=(6, 5), n=(2, 2), batch=(3,)), id="2d-c2"),
    ],
)
def test_batched_equals_one_by_one(case):
    D, y = _problem(11, **case)
    lam = 0.15
    res = bp_admm(D, y, lam, tol=1e-11, max_iter=20_000)
    assert res.status == "converged"
    (z,) = res.codes
    assert z.shape == (*case["batch"], D.n_atoms, *case["spatial"])
    for index in np.ndindex(*case["batch"]):
        alone = bp_admm(D, y[index], lam, tol=1e-11, max_iter=20_000)
        f_alone = bp_objective(D, y[index], alone.codes[0], lam)
        f_batch = bp_objective(D, y[index], z[index], lam)
        assert f_batch == pytest.approx(f_alone, rel=1e-9)
        np.testing.assert_allclose(z[index], alone.codes[0], atol=1e-5)


def test_numpy_engine_matches_cpu_engine():
    D, y = _problem(5, c=2, spatial=(6, 7), n=(2, 3), batch=(2,))
    fast = bp_admm(D, y, 0.1, tol=1e-8)
    slow = bp_admm(D, y, 0.1, tol=1e-8, engine="numpy")
    assert fast.n_iter == slow.n_iter
    np.testing.assert_allclose(fast.codes[0], slow.codes[0], atol=1e-7)
    assert fast.history["rho"] == pytest.approx(slow.history["rho"])


@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize(
    ("case", "dtype"),
    [
        pytest.param(dict(c=2, spatial=(6, 7), n=(2, 3), batch=(2,)), np.float64, id="2d-c2"),
        pytest.param(dict(c=1, spatial=(24,), n=(4,), batch=(3,)), np.float64, id="1d-c1"),
        pytest.param(dict(c=1, spatial=(8, 9), n=(3, 3)), np.float32, id="2d-c1-f32"),
    ],
)
def test_row_sweep_matches_numpy_engine(case, dtype, nonneg, monkeypatch):
    """The row-by-row iteration of FFTW-sized problems (forced on small ones, any worker count)
    gives the iterates of the batched NumPy oracle: same ρ changes and codes after 60
    iterations, warm start included."""
    pytest.importorskip("pyfftw")
    D, y = _problem(5, dtype=dtype, **case)
    monkeypatch.setattr(_bp_admm, "fftw_planned", lambda size: True)
    monkeypatch.setattr(_bp_admm, "ROW_SWEEP_SIZE", 1)
    sweeps = []
    step = _bp_admm._RowSweep.step
    monkeypatch.setattr(_bp_admm._RowSweep, "step",
                        lambda self, with_sums: sweeps.append(with_sums) or step(self, with_sums))
    x0 = bp_admm(D, y, 0.1, nonneg=nonneg, max_iter=7, engine="numpy").codes[0]
    for threads in (1, 2, 3):
        monkeypatch.setattr(_bp_admm.cpu, "thread_count", lambda threads=threads: threads)
        for start in (None, x0):
            kwargs = dict(nonneg=nonneg, tol=0.0, max_iter=60, x0=start)
            rows = bp_admm(D, y, 0.1, **kwargs)
            oracle = bp_admm(D, y, 0.1, engine="numpy", **kwargs)
            assert rows.n_iter == oracle.n_iter == 60
            assert len(sweeps) == 60 and any(sweeps) and not all(sweeps)  # the row sweep ran
            sweeps.clear()
            again = bp_admm(D, y, 0.1, **kwargs).codes[0]  # fixed row shares: reproducible
            np.testing.assert_array_equal(again, rows.codes[0])
            sweeps.clear()
            assert rows.history["rho"] == pytest.approx(oracle.history["rho"], rel=1e-4)
            assert len(set(oracle.history["rho"])) > 1 or start is not None  # ρ changed
            atol = (1e-4 if dtype == np.float32 else 1e-9) * np.abs(oracle.codes[0]).max()
            np.testing.assert_allclose(rows.codes[0], oracle.codes[0], rtol=0, atol=atol)


def test_row_sweep_is_chosen_for_large_rows_only():
    """FFTW-sized problems iterate row by row when a row has ROW_SWEEP_SIZE values; many small
    rows stay batched (their per-row calls would dominate)."""
    pytest.importorskip("pyfftw")
    rng = np.random.default_rng(2)
    D = ConvDictionary(rng.standard_normal((16, 1, 3, 3)).astype(np.float32))
    large = np.zeros((1, 1, 256, 256), np.float32)  # 16 rows of 256²: 2^20 values
    small = np.zeros((16, 1, 64, 64), np.float32)  # 256 rows of 64²: 2^20 values
    assert _bp_admm._ADMM(D, large, 0.1, False, "cpu", None, None).sweep is not None
    assert _bp_admm._ADMM(D, small, 0.1, False, "cpu", None, None).sweep is None
    assert _bp_admm._ADMM(D, large, 0.1, False, "numpy", None, None).sweep is None


def test_warm_start_at_optimum_stops_at_once():
    D, y = _problem(2, c=1, spatial=(30,), n=(5,))
    cold = bp_admm(D, y, 0.3, tol=1e-9)
    warm = bp_admm(D, y, 0.3, tol=1e-8, x0=cold.codes[0])
    assert warm.status == "converged" and warm.n_iter == 0
    np.testing.assert_array_equal(warm.codes[0], cold.codes[0])
    # The dual warm start D^T(y - D x0)/rho makes x0 a fixed point: a tighter tol needs far
    # fewer iterations than from zero.
    tighter = bp_admm(D, y, 0.3, tol=1e-11, x0=cold.codes[0], max_iter=20_000)
    fresh = bp_admm(D, y, 0.3, tol=1e-11, max_iter=20_000)
    assert tighter.status == fresh.status == "converged"
    assert tighter.n_iter < fresh.n_iter


def test_zero_is_optimal_above_lambda_max():
    D, y = _problem(4, c=1, spatial=(20,))
    lam_max = np.abs(D.analyze(y)).max()
    res = bp_admm(D, y, 1.01 * lam_max)
    assert res.status == "converged" and res.n_iter == 0 and res.certificate == 0.0
    assert not res.codes[0].any()


def test_empty_batch_and_more_channels_than_atoms():
    D, y = _problem(12, c=3, m=2, spatial=(16,), n=(4,), batch=(0,))
    empty = bp_admm(D, y, 0.1)
    assert empty.status == "exact" and empty.codes[0].shape == (0, 2, 16)
    D, y = _problem(12, c=3, m=2, spatial=(16,), n=(4,))  # Woodbury factor larger than m x m
    res = bp_admm(D, y, 0.1, tol=1e-10)
    reference = _lbfgs_reference(D, y, 0.1, nonneg=False)
    assert res.status == "converged"
    assert bp_objective(D, y, res.codes[0], 0.1) == pytest.approx(
        bp_objective(D, y, reference, 0.1), rel=1e-9)


def test_history_and_statuses():
    D, y = _problem(6, c=1, spatial=(20,))
    res = bp_admm(D, y, 0.1, tol=1e-14, max_iter=25)
    assert res.status == "max_iter" and not res.converged and res.n_iter == 25
    assert res.certificate_kind == "relative_duality_gap"
    checks = res.history["iteration"]
    assert checks[:2] == [0.0, 10.0] and checks[-1] == 25.0
    steps = np.diff(checks[:-1])  # the last check is max_iter's
    assert np.all(steps >= 10) and np.all(steps <= _bp_admm.CHECK_STRETCH * 10)
    assert res.certificate == res.history["relative_duality_gap"][-1] > 1e-14
    sparse_checks = bp_admm(D, y, 0.1, tol=1e-14, max_iter=12, check_every=5)
    assert sparse_checks.history["iteration"][:2] == [0.0, 5.0]
    assert sparse_checks.history["iteration"][-1] == 12.0
    for key in ("objective", "dual", "kkt", "primal_residual", "dual_residual", "rho", "time"):
        assert len(res.history[key]) == len(checks)


def test_check_interval():
    """Checks stretch while the extrapolated gap stays far above tol, never below check_every."""
    interval = _bp_admm._check_interval
    assert interval(1e-2, (1e-1, 0.0), 10, 1e-12, 10) == 50  # 100 iterations away: half
    assert interval(1e-2, (1e-1, 0.0), 10, 1e-30, 10) == 80  # far: at most 8 periods
    # 10x per 10 iterations, 1e-3 -> 1e-4 needs 10 iterations: check again after check_every
    assert interval(1e-3, (1e-2, 0.0), 10, 1e-4, 10) == 10
    assert interval(1e-3, (1e-2, 0.0), 10, 1e-7, 10) == 20  # 40 iterations away: half of it
    assert interval(1e-2, (1e-2, 0.0), 10, 1e-4, 10) == 10  # no progress: the base period
    assert interval(1e-2, (math.nan, 0.0), 10, 1e-4, 10) == 10


def test_overflow_reports_non_finite():
    D, y = _problem(8, c=1, spatial=(16,), dtype=np.float32)
    huge = np.full_like(y, np.finfo(np.float32).max / 4)
    res = bp_admm(D, huge, 1.0, max_iter=5)
    assert res.status == "non-finite" and not res.converged


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(D=np.ones((1, 1, 3))), TypeError, "D must be a ConvDictionary"),
        (dict(y=np.ones((1, 16), np.float32)), TypeError, "y has dtype"),
        (dict(y=np.ones((2, 16))), ValueError, "y must have shape"),
        (dict(lam=-1.0), ValueError, "lam"),
        (dict(lam="a"), TypeError, "lam"),
        (dict(tol=-1e-3), ValueError, "tol"),
        (dict(tol=None), TypeError, "tol"),
        (dict(max_iter=0), ValueError, "max_iter"),
        (dict(check_every=0), ValueError, "check_every"),
        (dict(rho=0.0), ValueError, "rho"),
        (dict(rho=np.inf), ValueError, "rho"),
        (dict(x0=np.zeros((2, 16))), ValueError, "x0 must have shape"),
        (dict(engine="gpu"), ValueError, "engine"),
        (dict(nonneg=1), TypeError, "nonneg"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    D, y = _problem(0, c=1, spatial=(16,))
    args = dict(D=D, y=y, lam=0.1) | {k: v for k, v in kwargs.items() if k in ("D", "y", "lam")}
    options = {k: v for k, v in kwargs.items() if k not in ("D", "y", "lam")}
    with pytest.raises(error, match=match):
        bp_admm(args["D"], args["y"], args["lam"], **options)


@pytest.mark.parametrize("nonneg", [False, True])
def test_fista_and_admm_agree(nonneg):
    from mlverify.pursuits._basis_pursuit import basis_pursuit

    D, y = _problem(9, c=2, spatial=(12, 10), n=(3, 3), m=4, batch=(2,))
    lam = 0.1
    fista = basis_pursuit(D, y, lam, nonneg=nonneg, tol=1e-10, solver="fista")
    admm = bp_admm(D, y, lam, nonneg=nonneg, tol=1e-10)
    assert fista.status == admm.status == "converged"
    f_fista = bp_objective(D, y, fista.codes[0], lam)
    f_admm = bp_objective(D, y, admm.codes[0], lam)
    assert f_admm == pytest.approx(f_fista, rel=2e-10)
    np.testing.assert_allclose(admm.codes[0], fista.codes[0], atol=1e-4)
    via_dispatcher = basis_pursuit(D, y, lam, nonneg=nonneg, tol=1e-10, solver="admm")
    np.testing.assert_array_equal(via_dispatcher.codes[0], admm.codes[0])
