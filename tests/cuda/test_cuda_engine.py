"""``engine="cuda"`` on the public API: ConvDictionary.synthesize/analyze and threshold.

Same results as ``engine="cpu"`` for NumPy inputs (any batch shape, 1-D and 2-D), device arrays
in and out, the input checks done on the device, and the clear error without CUDA. The CUDA runs
need a GPU or ``NUMBA_ENABLE_CUDASIM=1``; the error tests run everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlverify import ConvDictionary, _cuda, omp, threshold

needs_cuda = pytest.mark.skipif(not _cuda.HAVE_CUDA, reason="no CUDA device and the simulator "
                                "is off (run with NUMBA_ENABLE_CUDASIM=1)")
CASES = [  # (filters shape, spatial shape, batch shape)
    ((2, 1, 3), (7,), ()),
    ((3, 2, 4), (6,), (2,)),
    ((2, 3, 2, 3), (3, 5), (2, 1)),
]


def case(filters_shape, spatial, batch, dtype, seed=0):
    rng = np.random.default_rng(seed)
    D = ConvDictionary(rng.standard_normal(filters_shape).astype(dtype))
    codes = rng.standard_normal((*batch, D.n_atoms, *spatial)).astype(dtype)
    signal = rng.standard_normal((*batch, D.n_channels, *spatial)).astype(dtype)
    return D, codes, signal


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("filters_shape", "spatial", "batch"), CASES)
def test_dictionary_cuda_equals_cpu(filters_shape, spatial, batch, dtype):
    D, codes, signal = case(filters_shape, spatial, batch, dtype)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
    synthesized = D.synthesize(codes, engine="cuda")
    analyzed = D.analyze(signal, engine="cuda")
    assert isinstance(synthesized, np.ndarray) and isinstance(analyzed, np.ndarray)
    assert synthesized.shape == signal.shape and analyzed.shape == codes.shape
    assert synthesized.dtype == analyzed.dtype == dtype
    np.testing.assert_allclose(synthesized, D.synthesize(codes, engine="cpu"), **tol)
    np.testing.assert_allclose(analyzed, D.analyze(signal, engine="cpu"), **tol)


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("kind", ["hard", "soft", "relu"])
def test_threshold_cuda_equals_cpu(kind):
    rng = np.random.default_rng(3)
    v = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    for beta in (0.5, np.array([0.0, 0.5, 1.0]).reshape(3, 1, 1)):
        expected = threshold(v, beta, kind, engine="cpu").codes[0]
        np.testing.assert_array_equal(threshold(v, beta, kind, engine="cuda").codes[0], expected)
        on_device = threshold(_cuda.to_device(v), beta, kind, engine="cuda").codes[0]
        assert _cuda.is_device_array(on_device)
        np.testing.assert_array_equal(on_device.copy_to_host(), expected)


@pytest.mark.cuda
@needs_cuda
def test_dictionary_device_arrays_in_and_out():
    D, codes, signal = case((2, 3, 2, 3), (3, 5), (2,), np.float64)
    synthesized = D.synthesize(_cuda.to_device(codes), engine="cuda")
    analyzed = D.analyze(_cuda.to_device(signal), engine="cuda")
    assert _cuda.is_device_array(synthesized) and _cuda.is_device_array(analyzed)
    assert synthesized.shape == signal.shape and analyzed.shape == codes.shape
    np.testing.assert_array_equal(synthesized.copy_to_host(), D.synthesize(codes, engine="cuda"))
    np.testing.assert_array_equal(analyzed.copy_to_host(), D.analyze(signal, engine="cuda"))
    with pytest.raises(TypeError, match="codes has dtype float32"):
        D.synthesize(_cuda.to_device(codes.astype(np.float32)), engine="cuda")
    bad = signal.copy()
    bad[1, 2, 0, 4] = np.nan
    with pytest.raises(ValueError, match="signal contains NaN"):
        D.analyze(_cuda.to_device(bad), engine="cuda")
    with pytest.raises(ValueError, match="signal has 2 channels"):
        D.analyze(_cuda.to_device(signal[:, :2].copy()), engine="cuda")


@pytest.mark.cuda
@needs_cuda
def test_device_arrays_with_a_new_axis_are_contiguous():
    """``cuda.to_device(x[None])`` keeps NumPy's 0 stride on the new axis, which Numba's device
    arrays read as broadcasting: the engine takes such an array as the C-contiguous one it is
    (the first run on a GPU refused it; the simulator's arrays follow NumPy's rule)."""
    D, codes, signal = case((2, 3, 2, 3), (3, 5), (), np.float32)
    synthesized = D.synthesize(_cuda.cuda.to_device(codes[None]), engine="cuda")
    analyzed = D.analyze(_cuda.to_device(signal[None]), engine="cuda")
    np.testing.assert_array_equal(synthesized.copy_to_host(),
                                  D.synthesize(codes[None], engine="cuda"))
    np.testing.assert_array_equal(analyzed.copy_to_host(), D.analyze(signal[None], engine="cuda"))
    with pytest.raises(ValueError, match="signal must be C-contiguous"):
        D.analyze(_cuda.cuda.to_device(np.zeros((2, 3, 3, 10), np.float32))[:, :, :, ::2],
                  engine="cuda")


def test_cuda_engine_without_cuda_is_a_clear_error(monkeypatch):
    """No silent fallback: RuntimeError naming the way out, before any input is looked at."""
    monkeypatch.setattr(_cuda, "HAVE_CUDA", False)
    D, codes, signal = case((2, 1, 3), (7,), (), np.float64)
    for call in (lambda: D.synthesize(codes, engine="cuda"),
                 lambda: D.analyze(signal, engine="cuda"),
                 lambda: threshold(codes, 0.1, engine="cuda")):
        with pytest.raises(RuntimeError, match="engine='cuda' needs a CUDA GPU"):
            call()


def test_functions_without_a_cuda_path_refuse_it():
    D, _, signal = case((2, 1, 3), (7,), (), np.float64)
    with pytest.raises(ValueError, match="no CUDA path here yet"):
        omp(D, signal, n_nonzero=1, engine="cuda")
