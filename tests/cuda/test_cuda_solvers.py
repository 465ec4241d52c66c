"""Device-resident solvers (``engine="cuda"``, :mod:`mlverify.pursuits._device`) = host engines.

A batch on the device is a set of independent problems, each solved as if alone: the CUDA result
of problem ``b`` must equal the CPU (and NumPy) engine's result on ``y[b]`` alone — same
iterates, restarts and stopping iteration, up to the order of floating-point sums. Tiny shapes
(every simulated thread is a Python thread): ``NUMBA_ENABLE_CUDASIM=1 pytest -m cuda tests/cuda``.
No Hypothesis here (the GPU check machine may lack it): independent cases come from seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlverify import (
    MLCSC,
    ConvDictionary,
    _cuda,
    basis_pursuit,
    layered_basis_pursuit,
    layered_thresholding,
    ml_fista,
    ml_ista,
    relative_duality_gap,
)
from mlverify.pursuits import _device

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not _cuda.HAVE_CUDA, reason="no CUDA device and the simulator is off "
                       "(run with NUMBA_ENABLE_CUDASIM=1)"),
]

DTYPES = [np.float32, np.float64]


def tol_for(dtype) -> dict[str, float]:
    """Iterates of the two engines differ by the rounding of the sums, amplified a little by the
    iterations (and by thresholds crossed at slightly different values)."""
    return {"rtol": 1e-4, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-9,
                                                                      "atol": 1e-10}


def dictionary(rng, shape, dtype) -> ConvDictionary:
    return ConvDictionary(rng.standard_normal(shape).astype(dtype)).normalized()


def two_layers(rng, ndim: int, dtype) -> tuple[MLCSC, tuple[int, ...]]:
    """1-D: N = 16, 1 → 3 atoms (n = 4) → 4 atoms (n = 3); 2-D: 6x6, 1 → 2 (2x2) → 3 (2x2)."""
    if ndim == 1:
        return MLCSC([dictionary(rng, (3, 1, 4), dtype), dictionary(rng, (4, 3, 3), dtype)]), (16,)
    return MLCSC([dictionary(rng, (2, 1, 2, 2), dtype), dictionary(rng, (3, 2, 2, 2), dtype)]), (
        6, 6)


def assert_codes_close(actual, expected, dtype):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype == dtype
    np.testing.assert_allclose(actual, expected, **tol_for(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2])
def test_layered_thresholding_equals_cpu_and_numpy(ndim, dtype):
    rng = np.random.default_rng(100 + ndim)
    for seed_case in range(2):  # independent random cases
        model, spatial = two_layers(rng, ndim, dtype)
        y = rng.standard_normal((2, 1, *spatial)).astype(dtype)
        kind = ("hard", "soft", "relu")[(seed_case + ndim) % 3]
        thresholds = [0.4, np.array([0.1, 0.3, 0.2, 0.5][: model[1].n_atoms]).reshape(
            (-1,) + (1,) * ndim)]
        result = layered_thresholding(model, y, thresholds, kind, engine="cuda")
        for engine in ("cpu", "numpy"):
            expected = layered_thresholding(model, y, thresholds, kind, engine=engine)
            for got, want in zip(result.codes, expected.codes, strict=True):
                assert_codes_close(got, want, dtype)
            assert result.history == expected.history
        assert result.status == "exact"


@pytest.mark.parametrize("dtype", DTYPES)
def test_layered_thresholding_device_arrays_in_and_out(dtype):
    rng = np.random.default_rng(5)
    model, spatial = two_layers(rng, 1, dtype)
    y = rng.standard_normal((3, 1, *spatial)).astype(dtype)
    result = layered_thresholding(model, _cuda.to_device(y), [0.3, 0.2], "relu", engine="cuda")
    expected = layered_thresholding(model, y, [0.3, 0.2], "relu", engine="cpu")
    for got, want in zip(result.codes, expected.codes, strict=True):
        assert _cuda.is_device_array(got)
        assert_codes_close(got.copy_to_host(), want, dtype)
    with pytest.raises(ValueError, match=r"thresholds\[1\] has 2 per-channel"):
        layered_thresholding(model, y, [0.3, np.ones((2, 1))], engine="cuda")
    with pytest.raises(TypeError, match="y has dtype"):
        other = np.float64 if dtype == np.float32 else np.float32
        layered_thresholding(model, _cuda.to_device(y.astype(other)), [0.3, 0.2],
                             engine="cuda")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nonneg", [False, True])
def test_fista_batch_equals_cpu_per_problem(nonneg, dtype):
    """A fixed number of iterations (tol unreachable): same iterates and restarts per problem."""
    rng = np.random.default_rng(7 + nonneg)
    D = dictionary(rng, (2, 1, 4), dtype)
    y = rng.standard_normal((2, 1, 16)).astype(dtype)
    result = _device.basis_pursuit(D, y, 0.2, nonneg=nonneg, tol=1e-14, max_iter=20,
                                   check_every=10)
    assert result.status == "max_iter" and result.n_iter == 20
    restarts = 0.0
    for b in range(2):
        expected = basis_pursuit(D, y[b], 0.2, nonneg=nonneg, tol=1e-14, max_iter=20,
                                 check_every=10, engine="cpu")
        assert_codes_close(result.codes[0][b], expected.codes[0], dtype)
        restarts += expected.history["restarts"][-1]
        numpy = basis_pursuit(D, y[b], 0.2, nonneg=nonneg, tol=1e-14, max_iter=20,
                              check_every=10, engine="numpy")
        assert_codes_close(result.codes[0][b], numpy.codes[0], dtype)
    assert result.history["restarts"][-1] == restarts
    assert result.history["iteration"] == [10.0, 20.0]


def test_fista_problems_stop_on_their_own_certified_gap():
    """Two problems converging at different checks: each frozen at its own stop, as on the CPU,
    and the batch's certificate (recomputed on the host) is below tol."""
    rng = np.random.default_rng(3)
    D = dictionary(rng, (2, 1, 3), np.float64)
    y = np.stack([rng.standard_normal((1, 16)), 0.05 * rng.standard_normal((1, 16))])
    lam, tol = 0.1, 1e-2
    result = _device.basis_pursuit(D, y, lam, tol=tol, max_iter=200, check_every=5)
    assert result.status == "converged" and result.converged
    assert result.certificate <= tol
    assert relative_duality_gap(D, y, result.codes[0], lam)[2] <= tol * (1 + 1e-9)
    iterations = []
    for b in range(2):
        expected = basis_pursuit(D, y[b], lam, tol=tol, max_iter=200, check_every=5,
                                 engine="cpu")
        iterations.append(expected.n_iter)
        assert_codes_close(result.codes[0][b], expected.codes[0], np.float64)
    assert result.n_iter == max(iterations)
    assert iterations[0] != iterations[1], "the case must exercise per-problem stopping"


def test_basis_pursuit_device_arrays_and_shortcuts():
    rng = np.random.default_rng(11)
    D = dictionary(rng, (2, 1, 3), np.float32)
    y = rng.standard_normal((2, 1, 8)).astype(np.float32)
    result = basis_pursuit(D, _cuda.to_device(y), 0.3, tol=1e-14, max_iter=10, check_every=5,
                           engine="cuda")  # the public dispatch
    assert _cuda.is_device_array(result.codes[0])
    with pytest.raises(ValueError, match="no CUDA path"):
        basis_pursuit(D, y, 0.3, solver="admm", engine="cuda")
    expected = basis_pursuit(D, y, 0.3, tol=1e-14, max_iter=10, check_every=5, engine="cpu")
    assert result.codes[0].shape == expected.codes[0].shape
    big = _device.basis_pursuit(D, y, 100.0)
    assert big.status == "exact" and not big.codes[0].any() and big.certificate == 0.0
    with pytest.raises(ValueError, match="x0 must be >= 0"):
        _device.basis_pursuit(D, y, 0.3, nonneg=True, x0=-np.ones((2, 2, 8), np.float32))
    with pytest.raises(ValueError, match="y must have shape"):
        _device.basis_pursuit(D, _cuda.to_device(y[:, 0]), 0.3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", [ml_ista, ml_fista])
def test_ml_ista_batch_equals_cpu_per_problem(solver, dtype):
    rng = np.random.default_rng(21)
    model, spatial = two_layers(rng, 1, dtype)
    y = rng.standard_normal((2, 1, *spatial)).astype(dtype)
    lams = [0.2, 0.1]
    result = solver(model, y, lams, max_iter=12, tol=1e-12, check_every=6, engine="cuda")
    assert result.n_iter == 12 and result.status == "max_iter"
    for b in range(2):
        expected = solver(model, y[b], lams, max_iter=12, tol=1e-12, check_every=6,
                          engine="cpu")
        for got, want in zip(result.codes, expected.codes, strict=True):
            assert_codes_close(got[b], want, dtype)
    assert result.history["iteration"] == [6.0, 12.0]


def test_ml_ista_2d_nonneg_stops_per_problem_and_keeps_device_arrays():
    rng = np.random.default_rng(4)
    model, spatial = two_layers(rng, 2, np.float64)
    y = np.stack([rng.standard_normal((1, *spatial)), 0.01 * rng.standard_normal((1, *spatial))])
    kwargs = {"max_iter": 30, "tol": 2e-2, "check_every": 10, "nonneg": True}
    result = ml_fista(model, _cuda.to_device(y), [0.1, 0.05], engine="cuda", **kwargs)
    assert all(_cuda.is_device_array(c) for c in result.codes)
    iterations = []
    for b in range(2):
        expected = ml_fista(model, y[b], [0.1, 0.05], engine="cpu", **kwargs)
        iterations.append(expected.n_iter)
        for got, want in zip(result.codes, expected.codes, strict=True):
            assert_codes_close(got.copy_to_host()[b], want, np.float64)
    assert result.n_iter == max(iterations)
    assert iterations[0] != iterations[1], "the case must exercise per-problem stopping"


def test_layered_basis_pursuit_on_the_device():
    rng = np.random.default_rng(8)
    model, spatial = two_layers(rng, 1, np.float64)
    y = rng.standard_normal((2, 1, *spatial))
    result = layered_basis_pursuit(model, y, [0.3, 0.2], tol=1e-2, max_iter=100,
                                   engine="cuda")
    assert result.converged and result.certificate <= 1e-2
    current = y
    for layer, lam, codes in zip(model.layers, [0.3, 0.2], result.codes, strict=True):
        assert relative_duality_gap(layer, current, codes, lam)[2] <= 1e-2 * (1 + 1e-9)
        current = codes


def test_ml_ista_cuda_refuses_dense_models():
    with pytest.raises(TypeError, match="convolutional models only"):
        ml_ista([np.eye(4)], np.ones(4), [0.1], engine="cuda")
