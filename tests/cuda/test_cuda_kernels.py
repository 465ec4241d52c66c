"""CUDA kernels = Numba CPU kernels = NumPy oracles (DESIGN.md §6), device arrays in and out.

Runs on a GPU, or in the simulator with tiny grids (every simulated thread is a Python thread):
``NUMBA_ENABLE_CUDASIM=1 pytest -q -m cuda tests/cuda``. Skipped when neither is usable. No
Hypothesis here (the GPU check machine may lack it): the properties are in
``test_cuda_properties.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlverify import _cuda
from mlverify.kernels import cpu, reference
from mlverify.kernels import cuda as ck
from mlverify.kernels._scalar import KINDS

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not _cuda.HAVE_CUDA, reason="no CUDA device and the simulator is off "
                       "(run with NUMBA_ENABLE_CUDASIM=1)"),
]

DTYPES = [np.float32, np.float64]
#: (batch, m, c, H, W, n1, n2): 1-D (H = n1 = 1) and 2-D, single and multi-channel, filters as
#: long as the signal, non-square; at most 2·3·8·8 outputs per problem.
SHAPES = [
    (1, 1, 1, 1, 7, 1, 3),
    (2, 3, 2, 1, 8, 1, 8),
    (1, 2, 3, 5, 6, 2, 3),
    (2, 3, 2, 4, 8, 4, 2),
    (2, 1, 1, 3, 3, 3, 3),
]


def tolerance(dtype) -> dict[str, float]:
    """Different summation orders (CPU unrolls taps, CUDA does not): a few ulps of the sum."""
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}


def problem(shape, dtype, seed):
    batch, m, c, height, width, n1, n2 = shape
    rng = np.random.default_rng(seed)
    filters = rng.standard_normal((m, c, n1, n2)).astype(dtype)
    codes = rng.standard_normal((batch, m, height, width)).astype(dtype)
    signal = rng.standard_normal((batch, c, height, width)).astype(dtype)
    return filters, codes, signal


def synthesis_taps(filters):
    """As ``ConvDictionary`` builds them: transposed, flipped along x."""
    return np.ascontiguousarray(filters.transpose(1, 0, 2, 3)[..., ::-1])


def cpu_correlate(src, taps, row_sign, col_offset):
    out = np.empty((src.shape[0], taps.shape[0]) + src.shape[2:], src.dtype)
    cpu.correlate(src, taps, out, row_sign, col_offset, *cpu.tiling(out),
                  *cpu.epilogue(src.dtype))
    return out


def assert_close_or_zero(actual, expected):
    """Equal up to the sign of zeros (skipping all-zero terms can turn ``-0.0`` into ``+0.0``)."""
    np.testing.assert_array_equal(actual + 0.0, expected + 0.0)


def check_operators(filters, codes, signal):
    """CUDA = CPU = NumPy oracle for synthesis and analysis, and the CUDA pair is adjoint."""
    tol = tolerance(filters.dtype)
    taps = synthesis_taps(filters)
    synthesized = ck.synthesize(codes, filters)
    assert_close_or_zero(ck.synthesize(codes, filters, sparse=False), synthesized)
    analyzed = ck.analyze(signal, filters)
    assert synthesized.dtype == analyzed.dtype == filters.dtype
    np.testing.assert_allclose(synthesized, reference.synthesize(codes, filters), **tol)
    np.testing.assert_allclose(synthesized, cpu_correlate(codes, taps, -1, 1 - taps.shape[3]),
                               **tol)
    np.testing.assert_allclose(analyzed, reference.analyze(signal, filters), **tol)
    np.testing.assert_allclose(analyzed, cpu_correlate(signal, filters, 1, 0), **tol)
    # Dot test <D g, v> = <g, D^T v>, in float64 from the CUDA results.
    left = np.vdot(synthesized.astype(np.float64), signal.astype(np.float64))
    right = np.vdot(codes.astype(np.float64), analyzed.astype(np.float64))
    assert abs(left - right) <= 1e-4 * (1 + abs(left)) if filters.dtype == np.float32 else (
        abs(left - right) <= 1e-10 * (1 + abs(left)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_correlate_matches_cpu_and_oracle(shape, dtype):
    check_operators(*problem(shape, dtype, seed=hash(shape) % 2**32))


def test_synthesis_matches_dense_matrix():
    """One problem against the global matrix: column ``(f, p)`` is the atom ``f`` shifted by p."""
    filters, codes, _ = problem((1, 2, 2, 3, 4, 2, 3), np.float64, seed=7)
    matrix = reference.dense_operator(filters, 3, 4)
    out = ck.synthesize(codes, filters)
    np.testing.assert_allclose(out.ravel(), matrix @ codes.ravel(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ck.analyze(out, filters).ravel(), matrix.T @ out.ravel(),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_correlate_writes_every_output(dtype):
    """The raw kernel on a NaN-filled output: the grid-stride loop reaches every element."""
    filters, _, signal = problem((2, 3, 2, 4, 8, 2, 3), dtype, seed=3)
    out = _cuda.to_device(np.full((2, 3, 4, 8), np.nan, dtype))
    np.testing.assert_allclose(ck.analyze_threshold(signal, filters, out=out).copy_to_host(),
                               reference.analyze(signal, filters), **tolerance(dtype))
    signal_out = _cuda.to_device(np.full((2, 2, 4, 8), np.nan, dtype))
    ck.synthesize(out, filters, out=signal_out)
    np.testing.assert_allclose(signal_out.copy_to_host(),
                               reference.synthesize(out.copy_to_host(), filters),
                               **tolerance(dtype))


def numpy_threshold(values, beta, kind):
    """The NumPy formulas of THEORY.md §3, ``beta`` per channel of axis 1."""
    b = beta[None, :, None, None]
    zero = np.zeros((), values.dtype)
    if kind == "hard":
        return np.where(np.abs(values) > b, values, zero)
    if kind == "soft":
        return np.where(values > b, values - b, np.where(values < -b, values + b, zero))
    return np.where(values > b, values - b, zero)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_threshold_matches_cpu_and_numpy(kind, dtype):
    """Exactly equal (same scalar code), ties at ±beta included, zeros returned as +0.0."""
    rng = np.random.default_rng(11)
    beta = np.array([0.0, 0.5, 1.0], dtype)
    values = rng.standard_normal((2, 3, 2, 5)).astype(dtype)
    values[0, 1, 0, :4] = [0.5, -0.5, 0.0, -0.0]
    values[1, 2, 1, :2] = [1.0, -1.0]
    values[1, 0, 0, :2] = [0.0, -0.0]
    out = ck.threshold(values, beta, kind)
    expected = np.empty_like(values)
    cpu.threshold(values, beta, KINDS[kind], expected)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out, numpy_threshold(values, beta, kind))
    assert not np.signbit(out[out == 0]).any()
    assert out.dtype == values.dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_device_arrays_stay_on_the_device(dtype):
    """Device in, device out, same values as the host path; the input is left unchanged."""
    filters, codes, signal = problem((2, 3, 2, 3, 6, 2, 2), dtype, seed=5)
    d_codes, d_signal = _cuda.to_device(codes), _cuda.to_device(signal)
    d_synth = ck.synthesize(d_codes, filters)
    d_anal = ck.analyze(d_signal, filters)
    d_thr = ck.threshold(d_anal, np.full(3, 0.3, dtype), "soft")
    for result in (d_synth, d_anal, d_thr):
        assert _cuda.is_device_array(result)
        assert result.dtype == dtype
    np.testing.assert_array_equal(d_synth.copy_to_host(), ck.synthesize(codes, filters))
    np.testing.assert_array_equal(d_anal.copy_to_host(), ck.analyze(signal, filters))
    np.testing.assert_array_equal(d_thr.copy_to_host(),
                                  ck.threshold(d_anal.copy_to_host(), np.full(3, 0.3, dtype),
                                               "soft"))
    np.testing.assert_array_equal(d_codes.copy_to_host(), codes)
    assert _cuda.like(d_synth, d_codes) is d_synth


def test_as_float_array_checks_device_inputs():
    good = np.arange(12, dtype=np.float32).reshape(3, 4)
    device = ck.as_float_array("codes", _cuda.to_device(good), dtype=np.float32)
    assert _cuda.is_device_array(device)
    np.testing.assert_array_equal(device.copy_to_host(), good)
    host = ck.as_float_array("codes", good, dtype=np.float32)
    assert isinstance(host, np.ndarray)
    with pytest.raises(TypeError, match="codes has dtype float32"):
        ck.as_float_array("codes", _cuda.to_device(good), dtype=np.float64)
    with pytest.raises(TypeError, match="codes must have dtype float32 or float64"):
        ck.as_float_array("codes", _cuda.to_device(good.astype(np.int32)))
    with pytest.raises(ValueError, match="codes must be C-contiguous"):
        ck.as_float_array("codes", _cuda.to_device(good)[:, ::2])
    bad = good.copy()
    bad[2, 3] = np.inf
    with pytest.raises(ValueError, match="signal contains NaN or infinite"):
        ck.as_float_array("signal", _cuda.to_device(bad))
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="signal contains NaN or infinite"):
        ck.as_float_array("signal", bad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tile", [1, 3, None])
def test_sparse_synthesis_skips_only_zeros(monkeypatch, tile, dtype):
    """Sparse-aware synthesis = dense synthesis = oracle on codes with empty tiles and rows.

    Under the simulator the tile width is shrunk (1 and 3 columns) so that windows straddle
    tiles and wrap around the period on these tiny signals; on a GPU the kernels keep ``TILE``.
    """
    if tile is not None:
        if not _cuda.SIMULATED:
            pytest.skip("the tile width is compiled into the device kernels")
        monkeypatch.setattr(ck, "TILE", tile)
    rng = np.random.default_rng(17)
    for shape in [(2, 3, 2, 1, 10, 1, 4), (2, 2, 1, 4, 7, 2, 3)]:
        filters, codes, _ = problem(shape, dtype, seed=int(rng.integers(2**32)))
        codes[rng.random(codes.shape) < 0.8] = 0.0
        codes[0, :, 0] = 0.0  # an empty row of every atom
        codes[-1, -1, :, -1] = 1.0  # a non-zero in the last column: wraps onto the first
        sparse = ck.synthesize(codes, filters)
        assert_close_or_zero(sparse, ck.synthesize(codes, filters, sparse=False))
        np.testing.assert_allclose(sparse, reference.synthesize(codes, filters),
                                   **tolerance(dtype))
    filters = problem((1, 3, 2, 1, 9, 1, 4), dtype, seed=0)[0]
    zeros = np.zeros((2, 3, 1, 9), dtype)
    np.testing.assert_array_equal(ck.synthesize(zeros, filters), np.zeros((2, 2, 1, 9), dtype))
