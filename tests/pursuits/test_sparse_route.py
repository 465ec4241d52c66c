"""The sparse route of the ML-ISTA gradient step: ``D^T(Dx − γ) = D^TD x − D^Tγ`` through the
sparse-input kernels (fused with the step and the threshold) gives the same iterates as the dense
route and the NumPy engine."""

import numpy as np
import pytest

from mlverify import MLCSC, ConvDictionary, ml_fista, ml_ista
from mlverify.model import dictionary
from mlverify.pursuits._linear import ConvChain


def _net(dtype, ndim):
    rng = np.random.default_rng(3)
    kernels = ((4, 4), (3, 3)) if ndim == 2 else ((5,), (3,))
    D1 = ConvDictionary(rng.standard_normal((6, 1, *kernels[0])).astype(dtype)).normalized()
    D2 = ConvDictionary(rng.standard_normal((8, 6, *kernels[1])).astype(dtype)).normalized()
    spatial = (12, 10) if ndim == 2 else (40,)
    return MLCSC([D1, D2]), rng.standard_normal((1, *spatial)).astype(dtype)


@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("solver", [ml_ista, ml_fista])
def test_routes_give_the_same_iterates(dtype, ndim, solver):
    net, y = _net(dtype, ndim)
    lams = [0.3, 0.2]
    want = solver(net, y, lams, max_iter=30, nonneg=True, engine="numpy")
    assert 0 < np.count_nonzero(want.codes[-1]) < want.codes[-1].size  # sparse, not trivial
    tol = 1e-10 if dtype == np.float64 else 2e-4
    for crossover in (np.inf, 0.0):  # always sparse, never sparse
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(dictionary, "SPARSE_DENSITY", crossover)
            patch.setattr(dictionary, "SPARSE_MIN_OUT", 1)  # small test dictionaries
            got = solver(net, y, lams, max_iter=30, nonneg=True, engine="cpu")
        assert got.n_iter == want.n_iter
        for a, b in zip(got.codes, want.codes, strict=True):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())


@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("density", [0.0, 0.1, 1.0])
def test_gradient_step(dtype, density, nonneg):
    """``S_β(x − η D^T(Dx − target))`` of a one-layer chain, both routes, against the matrix."""
    D2 = _net(dtype, 2)[0].layers[1]
    rng = np.random.default_rng(int(density * 10))
    x = (rng.standard_normal((8, 12, 10)) * (rng.random((8, 12, 10)) < density)).astype(dtype)
    target = (rng.standard_normal((6, 12, 10)) * (rng.random((6, 12, 10)) < density)).astype(dtype)
    matrix = D2.to_dense((12, 10)).astype(np.float64)
    point = x.ravel() - 0.3 * matrix.T @ (matrix @ x.ravel() - target.ravel())
    beta = 0.05
    shrunk = np.maximum(point - beta, 0) if nonneg else np.sign(point) * np.maximum(
        np.abs(point) - beta, 0)
    tol = 1e-10 if dtype == np.float64 else 1e-4
    for crossover in (np.inf, 0.0):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(dictionary, "SPARSE_DENSITY", crossover)
            patch.setattr(dictionary, "SPARSE_MIN_OUT", 1)  # small test dictionaries
            for engine in ("cpu", "numpy"):
                chain = ConvChain([D2], (12, 10), engine, 8, dtype)
                for cx in (None, D2.synthesize(x)):
                    got = chain.gradient_step(x, target, cx, 0.3, beta, nonneg)
                    assert got.dtype == dtype and got.shape == x.shape
                    np.testing.assert_allclose(got.ravel(), shrunk, rtol=tol, atol=tol)
