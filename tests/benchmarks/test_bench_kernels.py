"""pytest-benchmark tests of the convolution kernels on the standard problems (DESIGN.md §7).

Disabled by default (``--benchmark-disable`` in the pytest configuration: the bodies still run once
and their results are checked); ``pytest tests/benchmarks --benchmark-enable`` times them. Times
are never asserted.
"""

import numpy as np
import pytest

from mlverify import ConvDictionary

STANDARD = {
    # name: (atoms, channels, filter size, image side)
    "layer1-32x8x8": (32, 1, 8, 256),
    "layer2-64x32x5x5": (64, 32, 5, 128),
}


def _problem(name, dtype, density):
    atoms, channels, size, side = STANDARD[name]
    rng = np.random.default_rng(0)
    D = ConvDictionary(rng.standard_normal((atoms, channels, size, size)).astype(dtype))
    codes = rng.standard_normal((atoms, side, side)).astype(dtype)
    codes *= rng.random(codes.shape) < density
    signal = rng.standard_normal((channels, side, side)).astype(dtype)
    return D, codes, signal


def _check_dot(D, codes, signal, synthesized, analyzed):
    """The timed results must be right: ⟨DΓ, V⟩ = ⟨Γ, DᵀV⟩ with the timed DΓ and DᵀV."""
    left = np.vdot(synthesized.astype(np.float64), signal.astype(np.float64))
    right = np.vdot(codes.astype(np.float64), analyzed.astype(np.float64))
    rtol = 1e-4 if D.dtype == np.float32 else 1e-10
    assert left == pytest.approx(right, rel=rtol, abs=rtol * np.abs(left))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(STANDARD))
@pytest.mark.parametrize(("method", "density"), [("dense", 1.0), ("sparse", 0.02), ("fft", 1.0)])
def test_bench_synthesize(benchmark, name, dtype, method, density):
    D, codes, signal = _problem(name, dtype, density)
    D.synthesize(codes, method=method)  # warm the JIT outside the timing
    synthesized = benchmark(D.synthesize, codes, method=method)
    _check_dot(D, codes, signal, synthesized, D.analyze(signal))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(STANDARD))
@pytest.mark.parametrize("method", ["auto", "fft"])
def test_bench_analyze(benchmark, name, dtype, method):
    D, codes, signal = _problem(name, dtype, 1.0)
    D.analyze(signal, method=method)
    analyzed = benchmark(D.analyze, signal, method=method)
    _check_dot(D, codes, signal, D.synthesize(codes), analyzed)
