"""pytest-benchmark tests of the pursuits on the standard problems (DESIGN.md §7).

Disabled by default (the bodies run once and their results are checked); ``pytest
tests/benchmarks --benchmark-enable`` times them. Times are never asserted.
"""

import numpy as np
import pytest

from mlverify import (
    MLCSC,
    ConvDictionary,
    basis_pursuit,
    layered_thresholding,
    ml_ista,
    relative_duality_gap,
)
from mlverify.bench.cbpdn import synthetic_problem


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("solver", ["admm", "fista"])
def test_bench_cbpdn(benchmark, dtype, solver):
    """CBPDN (36 random 12×12 atoms, λ = 0.05) on 64×64 to a certified gap 1e-2."""
    problem = synthetic_problem(size=64, dtype=dtype)
    D, y, lam = problem.dictionary, problem.y, problem.lam
    basis_pursuit(D, y, lam, solver=solver, max_iter=2)  # warm the JIT outside the timing
    result = benchmark(basis_pursuit, D, y, lam, solver=solver, tol=1e-2, max_iter=5000)
    assert result.converged and result.certificate <= 1e-2
    # the solver's dual (best or extrapolated) is never worse than a fresh plain check
    primal, plain_dual, _ = relative_duality_gap(D, y, result.codes[0], lam)
    assert primal == pytest.approx(result.history["objective"][-1], rel=1e-9)
    assert result.history["dual"][-1] >= plain_dual * (1 - 1e-12)


def test_bench_cbpdn_256_row_sweep(benchmark):
    """20 ADMM iterations on the CBPDN example's size (256×256, 36 atoms 12×12, float32): the
    row-by-row iteration of FFTW-sized problems (checks every 10 iterations included)."""
    pytest.importorskip("pyfftw")
    problem = synthetic_problem(size=256, dtype="float32")
    D, y, lam = problem.dictionary, problem.y, problem.lam
    basis_pursuit(D, y, lam, solver="admm", tol=1e-12, max_iter=2)  # JIT and FFTW plans
    result = benchmark(basis_pursuit, D, y, lam, solver="admm", tol=1e-12, max_iter=20)
    assert result.n_iter == 20 and result.status == "max_iter"
    history = result.history["relative_duality_gap"]
    assert history[-1] < history[0]  # the certified gap decreased


def _two_layer(dtype):
    rng = np.random.default_rng(0)
    filters1 = rng.standard_normal((32, 1, 8, 8))
    filters2 = rng.standard_normal((64, 32, 5, 5))
    layers = [ConvDictionary(f.astype(dtype)).normalized() for f in (filters1, filters2)]
    y = rng.standard_normal((1, 32, 32)).astype(dtype)
    return MLCSC(layers), y


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bench_forward_pass(benchmark, dtype):
    """The 2-layer forward pass (ReLU layered thresholding) of the standard model on 32×32."""
    model, y = _two_layer(dtype)
    thresholds = [1.0, 2.0]
    layered_thresholding(model, y, thresholds, kind="relu")
    result = benchmark(layered_thresholding, model, y, thresholds, kind="relu")
    first = np.maximum(model.layers[0].analyze(y) - thresholds[0], 0)
    expected = np.maximum(model.layers[1].analyze(first) - thresholds[1], 0)
    rtol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(result.codes[-1], expected, rtol=rtol, atol=rtol * expected.max())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bench_ml_ista(benchmark, dtype):
    """10 ML-ISTA iterations of the standard 2-layer model on 32×32."""
    model, y = _two_layer(dtype)
    lams = [0.5, 1.0]
    ml_ista(model, y, lams, max_iter=2)
    result = benchmark(ml_ista, model, y, lams, max_iter=10, tol=1e-12)
    assert result.n_iter == 10 and all(np.isfinite(c).all() for c in result.codes)
