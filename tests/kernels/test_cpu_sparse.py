"""Sparse-input kernels (:mod:`mlverify.kernels.cpu_sparse`) against NumPy oracles.

Kernel path: :func:`pixel_nonzeros` against ``np.nonzero``; :func:`correlate_sparse` against the
formula of its docstring written with ``np.roll``, for any row sign and offsets, every block width,
every threshold kind, outputs pre-filled with NaN. Public path: ``ConvDictionary.analyze`` /
``synthesize`` / ``normal`` with ``method="sparse"`` against the dense matrix ``to_dense(S)``,
1-D and 2-D, both dtypes, batch axes, empty, random and full sparsity patterns.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlverify import ConvDictionary
from mlverify.kernels import cpu, cpu_sparse, reference
from mlverify.kernels._scalar import KINDS
from mlverify.model import dictionary

DENSITIES = [0.0, 0.1, 0.5, 1.0]


def tolerance(dtype) -> float:
    return 1e-10 if dtype == np.float64 else 1e-4


def sparse_array(rng, shape, density, dtype):
    return (rng.standard_normal(shape) * (rng.random(shape) < density)).astype(dtype)


def oracle_correlation(src, taps, row_sign, row_offset, col_offset):
    """``out[b,o,y,x] = Σ_i Σ_ty Σ_u taps[i,ty,u,o] src[b,i,(y+ρ+s·ty) % H,(x+u+δ) % W]``."""
    batch, n_in, height, width = src.shape
    out = np.zeros((batch, taps.shape[3], height, width), np.float64)
    for i in range(n_in):
        for ty in range(taps.shape[1]):
            for u in range(taps.shape[2]):
                shifted = np.roll(src[:, i].astype(np.float64),
                                  (-(row_offset + row_sign * ty), -(u + col_offset)), axis=(1, 2))
                out += taps[i, ty, u][None, :, None, None] * shifted[:, None]
    return out


def oracle_threshold(values, beta, kind):
    """THEORY.md §3: H_β(v) = v·1[|v| > β], S_β(v) = sign(v)max(|v|−β, 0), S⁺_β = max(v−β, 0)."""
    b = beta[None, :, None, None]
    if kind == "hard":
        return np.where(np.abs(values) > b, values, 0.0)
    if kind == "soft":
        return np.sign(values) * np.maximum(np.abs(values) - b, 0.0)
    return np.maximum(values - b, 0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("density", DENSITIES)
def test_pixel_nonzeros(dtype, density):
    rng = np.random.default_rng(1)
    src = sparse_array(rng, (2, 5, 3, 7), density, dtype)
    offsets, channels, values = cpu_sparse.pixel_nonzeros(src)
    b, i, y, x = np.nonzero(src)
    order = np.lexsort((i, x, y, b))  # pixel-major, channels increasing inside a pixel
    np.testing.assert_array_equal(channels, i[order])
    np.testing.assert_array_equal(values, src[b, i, y, x][order])
    assert values.dtype == dtype
    counts = np.count_nonzero(src, axis=1).ravel()
    np.testing.assert_array_equal(offsets, np.concatenate([[0], np.cumsum(counts)]))


@st.composite
def correlations(draw):
    """A sparse input ``(B, n_in, H, W)``, taps ``(n_in, n1, n2, n_out)`` and the offsets."""
    ndim = draw(st.sampled_from([1, 2]))
    n1 = draw(st.integers(1, 4)) if ndim == 2 else 1
    n2 = draw(st.integers(1, 6))
    height = draw(st.integers(1, 6)) if ndim == 2 else 1
    width = draw(st.integers(1, 12))
    n_in, n_out = draw(st.integers(1, 6)), draw(st.integers(1, 9))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    src = sparse_array(rng, (draw(st.integers(1, 2)), n_in, height, width),
                       draw(st.sampled_from(DENSITIES)), dtype)
    taps = rng.standard_normal((n_in, n1, n2, n_out)).astype(dtype)
    row_sign = draw(st.sampled_from([1, -1]))
    row_offset = draw(st.integers(-4, 4))
    col_offset = draw(st.integers(-7, 7))
    return src, taps, row_sign, row_offset, col_offset


@given(correlations())
def test_correlate_sparse_every_block_width(case):
    src, taps, row_sign, row_offset, col_offset = case
    dtype = src.dtype
    want = oracle_correlation(src, taps, row_sign, row_offset, col_offset)
    compressed = cpu_sparse.pixel_nonzeros(src)
    flipped = cpu_sparse.sparse_taps(taps)
    tol = tolerance(dtype)
    beta = np.abs(np.random.default_rng(0).standard_normal(taps.shape[3])).astype(dtype)
    for block in range(1, src.shape[3] + 1):
        out = np.full(want.shape, np.nan, dtype)
        bad, nonzero = cpu_sparse.correlate_sparse(*compressed, flipped, out, row_sign, row_offset,
                                                   col_offset, block, *cpu.epilogue(dtype))
        np.testing.assert_allclose(out, want, rtol=tol, atol=tol)
        assert bad == 0 and nonzero == np.count_nonzero(out)
    plain = out  # the last block width; the fused threshold must see exactly these sums
    for kind, code in KINDS.items():
        out = np.full(want.shape, np.nan, dtype)
        counts = cpu_sparse.correlate_sparse(*compressed, flipped, out, row_sign, row_offset,
                                             col_offset, src.shape[3],
                                             *cpu.epilogue(dtype, None, 1.0, beta, code))
        assert counts == (0, np.count_nonzero(out))
        thresholded = oracle_threshold(plain.astype(np.float64), beta.astype(np.float64), kind)
        np.testing.assert_array_equal(out, thresholded.astype(dtype))
        assert not np.any(np.signbit(out[out == 0]))  # zeros are +0.0
        np.testing.assert_allclose(out, oracle_threshold(want, beta, kind), rtol=tol,
                                   atol=10 * tol)
    # base + scale·correlation, stored in place over the base; a NaN in the base is counted
    base = np.random.default_rng(1).standard_normal(want.shape).astype(dtype)
    out = base.copy()
    bad, _ = cpu_sparse.correlate_sparse(*compressed, flipped, out, row_sign, row_offset,
                                         col_offset, src.shape[3], *cpu.epilogue(dtype, out, -0.5))
    np.testing.assert_allclose(out, base - 0.5 * want, rtol=tol, atol=tol)
    assert bad == 0
    base.flat[0] = np.nan
    out = np.empty_like(base)
    bad, _ = cpu_sparse.correlate_sparse(*compressed, flipped, out, row_sign, row_offset,
                                         col_offset, src.shape[3],
                                         *cpu.epilogue(dtype, base, 2.0, beta, 1))
    assert bad == 1


@st.composite
def dictionaries(draw):
    """``(D, codes, signal, spatial)`` with sparse codes and a sparse signal (batch axes too)."""
    ndim = draw(st.sampled_from([1, 2]))
    kernel = tuple(draw(st.integers(1, 4 if ndim == 1 else 3)) for _ in range(ndim))
    spatial = tuple(draw(st.integers(n, n + 5)) for n in kernel)
    m, c = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    batch = draw(st.sampled_from([(), (2,), (3, 1)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    D = ConvDictionary(rng.standard_normal((m, c, *kernel)).astype(dtype))
    codes = sparse_array(rng, (*batch, m, *spatial), draw(st.sampled_from(DENSITIES)), dtype)
    signal = sparse_array(rng, (*batch, c, *spatial), draw(st.sampled_from(DENSITIES)), dtype)
    return D, codes, signal, spatial


@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 2), st.integers(1, 7), st.integers(1, 40), st.integers(1, 9),
                    st.integers(1, 9), st.integers(1, 5), st.integers(1, 6)),
    density=st.sampled_from(DENSITIES),
    band=st.integers(1, 10),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_scatter_synthesis_matches_reference(seed, shape, density, band, dtype):
    """Scattered synthesis = NumPy oracle, for any band of source rows, atoms larger than the
    signal (windows wrapping more than once), 1 to 7 non-zeros per pixel, 1 to 40 channels
    (patch rows of single values, single vectors and register blocks) and empty codes."""
    batch, atoms, channels, height, width, n1, n2 = shape
    rng = np.random.default_rng(seed)
    codes = sparse_array(rng, (batch, atoms, height, width), density, dtype)
    filters = rng.standard_normal((atoms, channels, n1, n2)).astype(dtype)
    out = np.full((batch, channels, height, width), np.nan, dtype)
    cpu_sparse.scatter_synthesis(*cpu_sparse.pixel_nonzeros(codes),
                                 np.ascontiguousarray(filters.transpose(0, 2, 3, 1)), out, band)
    expected = reference.synthesize(codes.astype(np.float64), filters.astype(np.float64))
    np.testing.assert_allclose(out, expected, rtol=tolerance(dtype),
                               atol=tolerance(dtype) * max(1.0, np.abs(expected).max()))


def test_scatter_band_depends_on_the_grid_only():
    """The bands fix the fold's order of summation: they must not follow the thread count."""
    threads = cpu.thread_count()
    bands = {height: cpu_sparse.scatter_band(height) for height in (256, 7, 1, 33)}
    try:
        cpu.set_thread_count(1)
        assert {height: cpu_sparse.scatter_band(height) for height in bands} == bands
    finally:
        cpu.set_thread_count(threads)
    for height, band in bands.items():
        assert 1 <= band <= height
        assert -(-height // band) <= cpu_sparse.SCATTER_BANDS


@given(dictionaries())
def test_public_sparse_methods_match_dense_matrix(case):
    D, codes, signal, spatial = case
    matrix = D.to_dense(spatial).astype(np.float64)
    size = math.prod(spatial)
    flat_codes = codes.reshape(-1, D.n_atoms * size).astype(np.float64)
    flat_signal = signal.reshape(-1, D.n_channels * size).astype(np.float64)
    tol = tolerance(D.dtype)
    checks = [
        (D.synthesize, codes, flat_codes @ matrix.T),
        (D.analyze, signal, flat_signal @ matrix),
        (D.normal, codes, flat_codes @ (matrix.T @ matrix)),
    ]
    for operator, argument, want in checks:
        for method in ("sparse", "dense", "auto"):
            got = operator(argument, method=method)
            assert got.dtype == D.dtype and got.shape[:-D.spatial_ndim - 1] == codes.shape[
                :-D.spatial_ndim - 1]
            np.testing.assert_allclose(got.reshape(want.shape), want, rtol=tol, atol=10 * tol)
    np.testing.assert_allclose(D.normal(codes, engine="numpy").reshape(checks[2][2].shape),
                               checks[2][2], rtol=tol, atol=10 * tol)


@given(dictionaries(), st.sampled_from(sorted(KINDS)), st.floats(0.05, 1.0),
       st.floats(0.0, 0.5), st.booleans())
def test_proximal_gradient_step_matches_dense_matrix(case, kind, step, beta, given_dx):
    """Both routes (sparse and dense, forced through SPARSE_DENSITY) of the fused step against
    T_β(Γ − η Dᵀ(DΓ − V)) with the dense matrix, in float64."""
    D, codes, signal, spatial = case
    matrix = D.to_dense(spatial).astype(np.float64)
    size = math.prod(spatial)
    flat_codes = codes.reshape(-1, D.n_atoms * size).astype(np.float64)
    flat_signal = signal.reshape(-1, D.n_channels * size).astype(np.float64)
    point = flat_codes - step * (flat_codes @ matrix.T - flat_signal) @ matrix
    want = oracle_threshold(point.reshape(-1, D.n_atoms, 1, size), np.full(D.n_atoms, beta), kind)
    synthesized = D.synthesize(codes) if given_dx else None
    tol = tolerance(D.dtype)
    for density in (0.0, np.inf):  # dense route, sparse route
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(dictionary, "SPARSE_DENSITY", density)
            patch.setattr(dictionary, "SPARSE_MIN_OUT", 1)  # small test dictionaries
            got = D.proximal_gradient_step(codes, signal, step, beta, kind,
                                           synthesized=synthesized)
        assert got.shape == codes.shape and got.dtype == D.dtype
        # a threshold is discontinuous (hard) at β: compare away from it
        away = np.abs(np.abs(point) - beta).reshape(want.shape) > 100 * tol
        np.testing.assert_allclose(got.reshape(want.shape)[away], want[away], rtol=tol,
                                   atol=10 * tol)


def test_proximal_gradient_step_reports_non_finite():
    D = ConvDictionary(np.ones((2, 1, 3)))
    codes = np.zeros((2, 8))
    signal = np.zeros((1, 8))
    signal[0, 3] = np.inf
    for density in (0.0, np.inf):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(dictionary, "SPARSE_DENSITY", density)
            patch.setattr(dictionary, "SPARSE_MIN_OUT", 1)  # small test dictionaries
            assert D.proximal_gradient_step(codes, signal, 0.1, 0.0) is None
    with pytest.raises(ValueError, match="kind"):
        D.proximal_gradient_step(codes, signal, 0.1, 0.0, "fast")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_sparse_problem_uses_the_pool(dtype):
    """Work above SERIAL_WORK (the threaded path), the standard layer-2 shapes, smaller image."""
    rng = np.random.default_rng(4)
    D = ConvDictionary(rng.standard_normal((16, 8, 5, 5)).astype(dtype))
    signal = sparse_array(rng, (8, 48, 80), 0.1, dtype)
    codes = sparse_array(rng, (16, 48, 80), 0.05, dtype)
    assert np.count_nonzero(signal) * D.filters[0].size >= cpu.SERIAL_WORK
    tol = tolerance(dtype)
    for operator, argument in ((D.analyze, signal), (D.synthesize, codes), (D.normal, codes)):
        np.testing.assert_allclose(operator(argument, method="sparse"),
                                   operator(argument, engine="numpy"), rtol=tol, atol=10 * tol)


def test_normal_taps_are_the_unnormalised_gram():
    rng = np.random.default_rng(2)
    D = ConvDictionary(rng.standard_normal((3, 2, 2, 3)))
    taps = D.normal_taps()
    assert taps.shape == (3, 3, 5, 3)
    scale = D.atom_norms()
    gram = D.local_gram() * scale[:, None, None, None] * scale[None, :, None, None]
    # taps[g, n1-1+sy, n2-1+sx, f] = G[f, g, sy, sx] (shifts stored mod 2n-1 by local_gram)
    np.testing.assert_allclose(taps[:, 1, 2, :], gram[:, :, 0, 0].T, atol=1e-12)
    np.testing.assert_allclose(taps[:, 0, 4, :], gram[:, :, -1, 2].T, atol=1e-12)
    assert D.normal_work(10) == 10 * 3 * 5 * 3


def test_auto_limit_shrinks_with_the_output_channels():
    """``"auto"``: the limit density scales with the output channels below SPARSE_FULL_OUT and is
    zero below SPARSE_MIN_OUT; ``"sparse"`` is always obeyed."""
    full, least = dictionary.SPARSE_FULL_OUT, dictionary.SPARSE_MIN_OUT
    assert dictionary.sparse_limit(full, 0.6) == dictionary.sparse_limit(4 * full, 0.6) == 0.6
    assert dictionary.sparse_limit(full // 2, 0.6) == 0.3
    assert dictionary.sparse_limit(least - 1, 0.6) == 0.0
    array = np.zeros((1, 2, 3, 4))
    array[0, 0, 0, :2] = 1.0  # density 1/12
    choose = ConvDictionary._choose
    for n_out, want in ((least - 1, "dense"), (least, "dense"), (full, "sparse")):
        limit = dictionary.sparse_limit(n_out, 0.6)
        assert choose(array, "auto", limit, lambda a: "sparse", lambda a: "dense") == want
    assert choose(array, "sparse", 0.0, lambda a: "sparse", lambda a: "dense") == "sparse"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("filters_shape", "scatters"), [
    ((6, 1, 8, 8), True),  # one channel, 64 taps: whole atoms scattered
    ((6, 2, 9, 8), True),
    ((6, 1, 32), False),  # 1-D, 32 taps: the dense kernel
    ((6, 3, 8, 8), True),  # three channels and more: scattered at any size of atom
    ((6, 8, 3, 3), True),
    ((4, 32, 3, 3), True),
    ((4, 48, 3, 3), True),
    ((4, 49, 3, 3), False),  # SCATTER_MAX_OUT channels: the sparse-input kernel's
])
def test_sparse_synthesis_scatters_atoms_into_fewer_channels(dtype, filters_shape, scatters,
                                                             monkeypatch):
    """``"auto"`` scatters whole atoms into fewer than SPARSE_MIN_OUT channels with atoms of
    SCATTER_MIN_TAPS taps or more, up to SCATTER_DENSITY, and into SPARSE_MIN_OUT up to fewer
    than SCATTER_MAX_OUT channels within the sparse limit (at density 0.5 the dense kernel
    runs, or into 49 channels the sparse-input kernel); the same synthesis as the NumPy
    oracle."""
    rng = np.random.default_rng(4)
    D = ConvDictionary(rng.standard_normal(filters_shape).astype(dtype))
    spatial = (20, 40)[-D.spatial_ndim:]
    calls = []
    scatter = ConvDictionary._scatter_synthesize
    monkeypatch.setattr(ConvDictionary, "_scatter_synthesize",
                        lambda self, *args: calls.append(1) or scatter(self, *args))
    for density, expected in ((0.03, scatters), (0.5, False)):
        codes = sparse_array(rng, (2, D.n_atoms, *spatial), density, dtype)
        calls.clear()
        out = D.synthesize(codes)
        assert bool(calls) == expected
        np.testing.assert_allclose(out, D.synthesize(codes, engine="numpy"),
                                   rtol=tolerance(dtype), atol=tolerance(dtype))


def test_bad_method():
    D = ConvDictionary(np.ones((2, 1, 3)))
    for operator in (D.analyze, D.normal):
        with pytest.raises(ValueError, match="method"):
            operator(np.ones((1 if operator is D.analyze else 2, 5)), method="fast")
