"""The DFT operators (:mod:`mlverify.kernels.fft`) against the dense matrix and direct kernels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlverify import ConvDictionary
from mlverify.kernels import fft
from mlverify.kernels.fft import SpectralConvolution, frequency_mix, frequency_mix_reference


@settings(max_examples=40, deadline=None)
@given(ndim=st.sampled_from([1, 2]), m=st.integers(1, 3), c=st.integers(1, 3),
       n=st.integers(1, 4), extra=st.integers(0, 4), batch=st.sampled_from([(), (2,)]),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**16))
def test_spectral_equals_dense_matrix(ndim, m, c, n, extra, batch, dtype, seed):
    rng = np.random.default_rng(seed)
    kernel = (n,) * ndim
    spatial = tuple(k + extra + (i % 2) for i, k in enumerate(kernel))  # odd and even sizes
    filters = rng.standard_normal((m, c, *kernel)).astype(dtype)
    D = ConvDictionary(filters)
    op = SpectralConvolution(filters, spatial)
    shared = SpectralConvolution(filters, spatial, spectra=D.spectra(spatial))
    codes = rng.standard_normal((*batch, m, *spatial)).astype(dtype)
    signal = rng.standard_normal((*batch, c, *spatial)).astype(dtype)
    dense = D.to_dense(spatial).astype(np.float64)
    rtol = 1e-4 if dtype == np.float32 else 1e-11
    synth = op.synthesize(codes)
    assert synth.dtype == dtype and synth.shape == (*batch, c, *spatial)
    expected = (codes.reshape(-1, dense.shape[1]).astype(np.float64) @ dense.T)
    np.testing.assert_allclose(synth.reshape(expected.shape), expected, rtol=rtol,
                               atol=rtol * np.abs(expected).max())
    analysis = op.analyze(signal)
    assert analysis.dtype == dtype and analysis.shape == (*batch, m, *spatial)
    expected = signal.reshape(-1, dense.shape[0]).astype(np.float64) @ dense
    np.testing.assert_allclose(analysis.reshape(expected.shape), expected, rtol=rtol,
                               atol=rtol * np.abs(expected).max())
    np.testing.assert_array_equal(shared.synthesize(codes), synth)  # the dictionary's spectra
    np.testing.assert_array_equal(shared.analyze(signal), analysis)


@settings(max_examples=30, deadline=None)
@given(ndim=st.sampled_from([1, 2]), m=st.integers(1, 4), c=st.integers(1, 3),
       n=st.integers(1, 4), extra=st.integers(0, 4), batch=st.sampled_from([(), (1,), (3,)]),
       workers=st.integers(1, 3), with_support=st.booleans(),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**16))
def test_row_by_row_operators_equal_dense_matrix(ndim, m, c, n, extra, batch, workers,
                                                 with_support, dtype, seed):
    """The row-by-row synthesis (any number of workers, rows of several batch elements per
    worker) and the analysis extremes (entries off a support counted as 0) of both paths
    against the dense matrix."""
    rng = np.random.default_rng(seed)
    kernel = (n,) * ndim
    spatial = tuple(k + extra + (i % 2) for i, k in enumerate(kernel))
    filters = rng.standard_normal((m, c, *kernel)).astype(dtype)
    dense = ConvDictionary(filters).to_dense(spatial).astype(np.float64)
    rows = SpectralConvolution(filters, spatial, workers=workers, by_rows=True)
    batched = SpectralConvolution(filters, spatial, workers=workers, by_rows=False)
    codes = rng.standard_normal((*batch, m, *spatial)).astype(dtype)
    signal = rng.standard_normal((*batch, c, *spatial)).astype(dtype)
    rtol = 1e-4 if dtype == np.float32 else 1e-11
    synth = rows.synthesize(codes)
    assert synth.dtype == dtype and synth.shape == (*batch, c, *spatial)
    expected = codes.reshape(-1, dense.shape[1]).astype(np.float64) @ dense.T
    np.testing.assert_allclose(synth.reshape(expected.shape), expected, rtol=rtol,
                               atol=rtol * np.abs(expected).max())
    support = rng.random((m, *spatial)) < 0.5 if with_support else None
    analysis = signal.reshape(-1, dense.shape[0]).astype(np.float64) @ dense
    if support is not None:
        analysis = np.where(support.reshape(-1), analysis, 0.0)
    scale = rtol * np.abs(analysis).max()
    for op in (rows, batched):
        high, low = op.analysis_extremes(signal, support)
        assert high.shape == low.shape == (max(1, int(np.prod(batch))),)
        np.testing.assert_allclose(high, analysis.max(axis=1), rtol=0, atol=scale)
        np.testing.assert_allclose(low, analysis.min(axis=1), rtol=0, atol=scale)
    bad = signal.copy()
    bad.reshape(-1)[0] = np.nan
    assert np.isnan(rows.analysis_extremes(bad)[0][0])  # NaN is not hidden


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 4), c=st.integers(1, 3), nfreq=st.integers(1, 40), batch=st.integers(1, 3),
       block=st.integers(1, 16), adjoint=st.booleans(),
       dtype=st.sampled_from([np.complex64, np.complex128]), seed=st.integers(0, 2**16))
def test_frequency_mix_matches_oracle(m, c, nfreq, batch, block, adjoint, dtype, seed):
    rng = np.random.default_rng(seed)

    def draw(*shape):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)

    spectra = draw(m, c, nfreq)
    x = draw(batch, c if adjoint else m, nfreq)
    want = frequency_mix_reference(spectra, x, adjoint)
    got = draw(*want.shape)  # overwritten
    frequency_mix(spectra, x, adjoint, block, got)
    assert got.dtype == dtype and got.shape == want.shape == (batch, m if adjoint else c, nfreq)
    tol = 1e-5 if dtype == np.complex64 else 1e-13
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * max(m, c) * np.abs(want).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spectral_adjoint_large_filters(dtype):
    """Dot test <D x, v> = <x, D^T v> and equality with the direct kernel at 12x12 atoms."""
    rng = np.random.default_rng(3)
    filters = rng.standard_normal((5, 2, 12, 12)).astype(dtype)
    op = SpectralConvolution(filters, (40, 36), workers=2)
    x = rng.standard_normal((5, 40, 36)).astype(dtype)
    v = rng.standard_normal((2, 40, 36)).astype(dtype)
    lhs = float(np.vdot(op.synthesize(x).astype(np.float64), v))
    rhs = float(np.vdot(x, op.analyze(v).astype(np.float64)))
    assert abs(lhs - rhs) <= (1e-3 if dtype == np.float32 else 1e-10) * abs(lhs)
    D = ConvDictionary(filters)
    tol = 1e-3 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(op.analyze(v), D.analyze(v), rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(op.synthesize(x), D.synthesize(x), rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 10, 12), (3, 2, 17)])
def test_real_dft_fftw_equals_scipy(shape, dtype):
    """FFTW plans and scipy.fft: the same forward and backward transforms (both scalings)."""
    pytest.importorskip("pyfftw")
    from mlverify.kernels.fft import RealDFT

    ndim = len(shape) - 2
    signal = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    results = []
    for fftw in (True, False):
        dft = RealDFT(shape, dtype, ndim, workers=2, fftw=fftw)
        assert dft.fftw is fftw
        dft.real_in[...] = signal
        spectrum = dft.forward().copy()
        back = dft.backward()
        results.append((spectrum, back.copy()))
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(back, signal, rtol=tol, atol=tol)
        dft.forward()
        size = np.prod(shape[2:])  # unnormalised: N times the inverse
        np.testing.assert_allclose(dft.backward(normalise=False) / size, signal, rtol=tol,
                                   atol=tol)
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5, atol=1e-4)


def test_admm_iterates_with_fftw_plans(monkeypatch):
    """The ADMM on FFTW plans (forced on a small problem) equals the scipy.fft run."""
    pytest.importorskip("pyfftw")
    from mlverify import basis_pursuit
    from mlverify.kernels import fft

    rng = np.random.default_rng(4)
    D = ConvDictionary(rng.standard_normal((3, 1, 4, 4))).normalized()
    y = rng.standard_normal((1, 20, 18))
    reference = basis_pursuit(D, y, 0.1, solver="admm", tol=1e-9)
    monkeypatch.setattr(fft, "FFTW_SIZE", 0)
    planned = basis_pursuit(D, y, 0.1, solver="admm", tol=1e-9)
    assert planned.converged and planned.n_iter == pytest.approx(reference.n_iter, abs=10)
    np.testing.assert_allclose(planned.codes[0], reference.codes[0], atol=1e-6)


def test_wisdom_path_follows_the_cache_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("MLVERIFY_CACHE_DIR", str(tmp_path / "mine"))
    assert fft.wisdom_path().parent == tmp_path / "mine"
    monkeypatch.delenv("MLVERIFY_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert fft.wisdom_path().parent == tmp_path / "xdg" / "mlverify"
    assert fft.wisdom_path().name.startswith("fftw_wisdom-")


def test_plans_are_kept_and_a_bad_cache_costs_only_planning(monkeypatch, tmp_path):
    """New plans are saved as FFTW wisdom (JSON, three strings); a corrupt file is ignored at
    the next process's first plan, and an unwritable cache is not an error."""
    pyfftw = pytest.importorskip("pyfftw")
    monkeypatch.setenv("MLVERIFY_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(fft, "NEW_PLANS_SECONDS", -1.0)  # every planning saves
    monkeypatch.setattr(fft, "_wisdom_loaded", False)
    values = np.random.default_rng(0).standard_normal((2, 12, 10))

    def transform():
        dft = fft.RealDFT(values.shape, np.float64, 2, fftw=True)
        dft.real_in[...] = values
        return dft.forward().copy()

    expected = np.fft.rfftn(values, axes=(1, 2))
    np.testing.assert_allclose(transform(), expected, atol=1e-12)
    kept = json.loads(fft.wisdom_path().read_text())
    assert len(kept) == 3 and all(isinstance(part, str) for part in kept)
    assert kept == [part.decode("ascii") for part in pyfftw.export_wisdom()]
    fft.wisdom_path().write_text("{not json")
    monkeypatch.setattr(fft, "_wisdom_loaded", False)
    np.testing.assert_allclose(transform(), expected, atol=1e-12)
    blocked = tmp_path / "a file"
    blocked.write_text("")
    monkeypatch.setenv("MLVERIFY_CACHE_DIR", str(blocked))  # its parent is a file: unwritable
    np.testing.assert_allclose(transform(), expected, atol=1e-12)
