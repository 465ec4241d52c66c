"""Numba CPU kernels against the NumPy oracles and the dense matrix (DESIGN.md §6).

Public path: ``engine="cpu"`` (dense, sparse, auto) = ``engine="numpy"`` = ``to_dense(S) @ codes``.
Kernel path: the kernels called directly on the canonical layout ``(B, ch, H, W)`` with every
x-block width, outputs pre-filled with NaN (every element must be written), and bitwise equal
results for any thread count (no races, no order dependence on the blocking).

The wrappers run small work on one thread (:func:`cpu.threads_for`); tests of the parallel paths
on small problems lower :data:`cpu.SERIAL_WORK` to 0 (``pool``) so the thread pool really runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlverify import ConvDictionary
from mlverify.kernels import cpu, reference
from mlverify.kernels._scalar import KINDS


@st.composite
def problems(draw, *, min_width=None, max_width=None):
    """``(D, codes, signal, spatial)``: 1-D or 2-D, float32/float64, with or without batch axes."""
    ndim = draw(st.sampled_from([1, 2]))
    kernel = tuple(draw(st.integers(1, 4 if ndim == 1 else 3)) for _ in range(ndim))
    spatial = tuple(draw(st.integers(n, n + 5)) for n in kernel)
    if min_width is not None:
        spatial = (*spatial[:-1], draw(st.integers(max(min_width, kernel[-1]), max_width)))
    m = draw(st.integers(1, 3))
    c = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    batch = draw(st.sampled_from([(), (2,), (3, 1)]))
    density = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    D = ConvDictionary(rng.standard_normal((m, c, *kernel)).astype(dtype))
    shape = (*batch, m, *spatial)
    codes = (rng.standard_normal(shape) * (rng.random(shape) < density)).astype(dtype)
    signal = rng.standard_normal((*batch, c, *spatial)).astype(dtype)
    return D, codes, signal, spatial


@contextmanager
def pool(serial_work: int = 0) -> Iterator[None]:
    """Context in which the wrappers use the thread pool for any work above ``serial_work``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cpu, "SERIAL_WORK", serial_work)
        yield


SERIAL = 1 << 62  # as a SERIAL_WORK: every call on one thread


def tolerance(dtype) -> float:
    return 1e-10 if dtype == np.float64 else 1e-4


def per_problem(matrix: np.ndarray, arrays: np.ndarray, n_in: int) -> np.ndarray:
    """``matrix @ a.ravel()`` for every batch element, flattened per problem."""
    return arrays.reshape(-1, n_in) @ matrix.T


@pytest.mark.parametrize("serial_work", [0, SERIAL], ids=["pool", "serial"])
@given(case=problems())
def test_public_engines_agree_with_dense_matrix(serial_work, case):
    with pool(serial_work):
        check_engines(*case)


def check_engines(D, codes, signal, spatial):
    matrix = D.to_dense(spatial)
    size = math.prod(spatial)
    tol = tolerance(D.dtype)
    want = per_problem(matrix, codes, D.n_atoms * size)
    oracle = D.synthesize(codes, engine="numpy")
    np.testing.assert_allclose(oracle.reshape(want.shape), want, rtol=tol, atol=tol)
    for method in ("dense", "sparse", "auto"):
        got = D.synthesize(codes, engine="cpu", method=method)
        assert got.shape == oracle.shape and got.dtype == D.dtype
        np.testing.assert_allclose(got, oracle, rtol=tol, atol=tol)
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=tol, atol=tol)
    want = per_problem(matrix.T, signal, D.n_channels * size)
    oracle = D.analyze(signal, engine="numpy")
    np.testing.assert_allclose(oracle.reshape(want.shape), want, rtol=tol, atol=tol)
    sparse_signal = signal * (codes.reshape(-1)[0] != 0)  # all zero for some examples
    for method in ("dense", "sparse", "auto"):
        got = D.analyze(signal, engine="cpu", method=method)
        assert got.shape == oracle.shape and got.dtype == D.dtype
        np.testing.assert_allclose(got, oracle, rtol=tol, atol=tol)
        np.testing.assert_allclose(D.analyze(sparse_signal, method=method),
                                   D.analyze(sparse_signal, engine="numpy"), rtol=tol, atol=tol)


@given(problems(min_width=64, max_width=300))
def test_wide_signals_split_into_blocks(case):
    """Few (batch, channel, row) tasks on a wide signal: the wrappers split rows into x-blocks."""
    D, codes, signal, _ = case
    tol = tolerance(D.dtype)
    oracle = D.synthesize(codes, engine="numpy")
    with pool():
        for method in ("dense", "sparse"):
            np.testing.assert_allclose(D.synthesize(codes, engine="cpu", method=method), oracle,
                                       rtol=tol, atol=tol)
            np.testing.assert_allclose(D.analyze(signal, engine="cpu", method=method),
                                       D.analyze(signal, engine="numpy"), rtol=tol, atol=tol)


@pytest.mark.parametrize(
    ("kernel", "spatial"),
    [((90,), (200,)), ((90,), (100,)), ((64,), (64,)), ((65,), (129,)), ((2, 70), (3, 150))],
)
def test_wide_filters_wrap_across_blocks(kernel, spatial):
    """Filters longer than an x-block (64): a block's source span wraps, possibly more than once
    (span = block + n − 1 > N), and atoms wrap through several blocks."""
    rng = np.random.default_rng(3)
    D = ConvDictionary(rng.standard_normal((2, 1, *kernel)))
    codes = rng.standard_normal((2, *spatial)) * (rng.random((2, *spatial)) < 0.2)
    signal = rng.standard_normal((1, *spatial))
    matrix = D.to_dense(spatial)
    with pool():
        for method in ("dense", "sparse"):
            np.testing.assert_allclose(D.synthesize(codes, engine="cpu", method=method).ravel(),
                                       matrix @ codes.ravel(), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(D.analyze(signal, engine="cpu", method=method).ravel(),
                                       matrix.T @ signal.ravel(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_problem_uses_the_pool(dtype):
    """Work above the default SERIAL_WORK: the real multi-threaded path, against the oracle."""
    rng = np.random.default_rng(8)
    D = ConvDictionary(rng.standard_normal((4, 2, 6, 5)).astype(dtype))
    shape = (2, 4, 40, 70)
    codes = (rng.standard_normal(shape) * (rng.random(shape) < 0.2)).astype(dtype)
    signal = rng.standard_normal((2, 2, 40, 70)).astype(dtype)
    assert np.count_nonzero(codes) * D.filters[0].size >= cpu.SERIAL_WORK  # sparse path too
    tol = tolerance(dtype)
    oracle = D.synthesize(codes, engine="numpy")
    for method in ("dense", "sparse"):
        np.testing.assert_allclose(D.synthesize(codes, method=method), oracle, rtol=tol, atol=tol)
    np.testing.assert_allclose(D.analyze(signal), D.analyze(signal, engine="numpy"), rtol=tol,
                               atol=tol)


def test_threads_for():
    """One thread inside for small work, unchanged for large work, restored afterwards."""
    threads = numba.get_num_threads()
    with cpu.threads_for(cpu.SERIAL_WORK - 1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == threads
    with cpu.threads_for(cpu.SERIAL_WORK):
        assert numba.get_num_threads() == threads
    with pytest.raises(RuntimeError), cpu.threads_for(0):
        raise RuntimeError
    assert numba.get_num_threads() == threads


def canonical(D: ConvDictionary, array: np.ndarray) -> np.ndarray:
    """``(..., ch, *S)`` as ``(B, ch, H, W)``."""
    spatial = array.shape[-D.spatial_ndim:]
    return array.reshape((-1, array.shape[-D.spatial_ndim - 1]) + (1,) * (2 - D.spatial_ndim)
                         + spatial)


def filters4(D: ConvDictionary) -> np.ndarray:
    return D.filters.reshape(D.filters.shape[:2] + (1,) * (2 - D.spatial_ndim) + D.kernel_size)


def synthesis_taps(f4: np.ndarray) -> np.ndarray:
    """cpu.correlate's synthesis taps: ``taps[c, f, t_y, u] = A[f, c, t_y, n_2 − 1 − u]``."""
    return np.ascontiguousarray(f4.transpose(1, 0, 2, 3)[..., ::-1])


@given(problems())
def test_correlate_every_block_width(case):
    """cpu.correlate as analysis (taps A, s = +1, δ = 0) and as synthesis (transposed flipped taps,
    s = −1, δ = 1 − n_2) for every x-block width and bands of rows (whole rows); outputs start as
    NaN and must be overwritten."""
    D, codes, signal, _ = case
    codes4, signal4, f4 = canonical(D, codes), canonical(D, signal), filters4(D)
    tol = tolerance(D.dtype)
    want_x = reference.synthesize(codes4, f4)
    want_v = reference.analyze(signal4, f4)
    taps = synthesis_taps(f4)
    width, height = codes4.shape[3], codes4.shape[2]
    tilings = [(block, 1) for block in range(1, width + 1)]
    tilings += [(width, band) for band in range(2, height + 2)]  # the last: one band, cut short
    for block, band in tilings:
        out = np.full(want_x.shape, np.nan, D.dtype)
        counts = cpu.correlate(codes4, taps, out, -1, 1 - f4.shape[3], block, band,
                               *cpu.epilogue(D.dtype))
        np.testing.assert_allclose(out, want_x, rtol=tol, atol=tol)
        assert counts == (0, -1)  # the plain correlation is not counted
        out = np.full(want_v.shape, np.nan, D.dtype)
        cpu.correlate(signal4, f4, out, 1, 0, block, band, *cpu.epilogue(D.dtype))
        np.testing.assert_allclose(out, want_v, rtol=tol, atol=tol)
    # the epilogue: T_β(base + scale·D^T V) per atom, and the count of non-finite values
    base = np.random.default_rng(0).standard_normal(want_v.shape).astype(D.dtype)
    beta = np.linspace(0.0, 0.5, want_v.shape[1]).astype(D.dtype)
    point = base.astype(np.float64) - 0.5 * want_v
    for kind, code in KINDS.items():
        out = np.full(want_v.shape, np.nan, D.dtype)
        bad, nonzero = cpu.correlate(signal4, f4, out, 1, 0, 3, 1,
                                     *cpu.epilogue(D.dtype, base, -0.5, beta, code))
        assert nonzero == np.count_nonzero(out)
        want = numpy_threshold(point, beta.astype(np.float64), kind)
        away = np.abs(np.abs(point) - beta[None, :, None, None]) > 100 * tol
        np.testing.assert_allclose(out[away], want[away], rtol=tol, atol=10 * tol)
        assert bad == 0
    base.flat[-1] = np.inf
    assert cpu.correlate(signal4, f4, out, 1, 0, 3, 1, *cpu.epilogue(D.dtype, base))[0] == 1


@given(problems())
def test_results_do_not_depend_on_thread_count(case):
    """Each output element is summed in a fixed order by one task: bitwise equal for 1 thread."""
    D, codes, signal, _ = case
    with pool():
        def run():
            return [f(x, method=m) for f, x in ((D.synthesize, codes), (D.analyze, signal),
                                                (D.normal, codes)) for m in ("dense", "sparse")]

        many = run()
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            one = run()
        finally:
            numba.set_num_threads(threads)
    for a, b in zip(many, one, strict=True):
        np.testing.assert_array_equal(a, b)


def test_readonly_and_strided_inputs():
    rng = np.random.default_rng(5)
    D = ConvDictionary(rng.standard_normal((2, 3, 2, 3)))
    codes = rng.standard_normal((2, 6, 7))
    want = D.synthesize(codes, engine="numpy")
    readonly = codes.copy()
    readonly.setflags(write=False)
    strided = np.ascontiguousarray(codes.transpose(0, 2, 1)).transpose(0, 2, 1)
    assert not strided.flags.c_contiguous
    for array in (readonly, strided):
        for method in ("dense", "sparse"):
            np.testing.assert_allclose(D.synthesize(array, method=method), want, rtol=1e-12,
                                       atol=1e-12)
    signal = rng.standard_normal((3, 6, 7))
    signal.setflags(write=False)
    np.testing.assert_allclose(D.analyze(signal), D.analyze(signal, engine="numpy"), rtol=1e-12,
                               atol=1e-12)


def numpy_threshold(values: np.ndarray, beta: np.ndarray, kind: str) -> np.ndarray:
    """THEORY.md §3: H_β(v) = v·1[|v| > β], S_β(v) = sign(v)max(|v|−β, 0), S⁺_β = max(v−β, 0)."""
    b = beta[None, :, None, None]
    if kind == "hard":
        return np.where(np.abs(values) > b, values, 0.0)
    if kind == "soft":
        return np.sign(values) * np.maximum(np.abs(values) - b, 0.0)
    return np.maximum(values - b, 0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_threshold_kernel(kind, dtype):
    rng = np.random.default_rng(11)
    values = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    values[0, 0, 0, :3] = [0.5, -0.5, -0.0]  # exactly at ±β for atom 0, and a negative zero
    beta = np.array([0.5, 0.0, 1.0], dtype)
    want = numpy_threshold(values.astype(np.float64), beta.astype(np.float64), kind).astype(dtype)
    out = np.full_like(values, np.nan)
    cpu.threshold(values, beta, KINDS[kind], out)
    np.testing.assert_array_equal(out, want)
    assert not np.any(np.signbit(out[out == 0]))  # zeros are +0.0
    in_place = values.copy()
    cpu.threshold(in_place, beta, KINDS[kind], in_place)
    np.testing.assert_array_equal(in_place, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_squared_distance(dtype):
    """Σ(a − b)² accumulated in float64, every row length modulo the 4-way unrolling."""
    rng = np.random.default_rng(12)
    for columns in range(0, 9):
        a, b = (rng.standard_normal((3, columns)).astype(dtype) for _ in range(2))
        want = float(np.sum((a.astype(np.float64) - b.astype(np.float64)) ** 2))
        assert math.isclose(cpu.squared_distance(a, b), want, rel_tol=1e-14, abs_tol=1e-300)


@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("size", [0, 5, cpu.SERIAL_WORK + 7])
def test_nonzeros(rows, size):
    """Per-row non-zero counts, NumPy path (small) and kernel path (chunks, partial last one)."""
    rng = np.random.default_rng(13)
    array = (rng.standard_normal((rows, size)) * (rng.random((rows, size)) < 0.3)).astype(
        np.float32)
    got = cpu.nonzeros(array, rows)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.count_nonzero(array, axis=1))
    np.testing.assert_array_equal(cpu.row_nonzeros(array), np.count_nonzero(array, axis=1))
