"""The tile-DFT correlations (:mod:`mlverify.kernels.tiled`) against the NumPy oracles."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlverify import ConvDictionary
from mlverify.kernels import cpu, reference, tiled
from mlverify.kernels._scalar import KINDS


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(1, 4), c=st.integers(1, 3), n1=st.integers(1, 4), n2=st.integers(1, 5),
    extra=st.tuples(st.integers(0, 9), st.integers(0, 9)), batch=st.integers(1, 3),
    grids=st.sampled_from([(4,), (6,), (8,), (4, 8), (16,)]), block=st.integers(1, 6),
    adjoint=st.booleans(), kind=st.sampled_from(["none", "soft", "relu"]),
    dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16),
)
def test_tiles_equal_the_oracle_with_the_store(m, c, n1, n2, extra, batch, grids, block, adjoint,
                                               kind, dtype, seed):
    """Analysis and synthesis through tiles (several per axis, partial last tiles, several
    passes, single periodic tiles) equal the NumPy oracle, with the fused store
    T_β(base + scale·result) of the direct kernel and its counts."""
    rng = np.random.default_rng(seed)
    filters = rng.standard_normal((m, c, n1, n2)).astype(dtype)
    spatial = (n1 + extra[0], n2 + extra[1])
    n_in, n_out = (c, m) if adjoint else (m, c)
    src = rng.standard_normal((batch, n_in, *spatial)).astype(dtype)
    op = tiled.TiledCorrelation(filters, spatial, batch, adjoint, workers=2, grids=grids,
                                block=block)
    assert op.outputs[0] * op.counts[0] >= spatial[0] and op.outputs[1] * op.counts[1] >= spatial[1]
    exact = (reference.analyze if adjoint else reference.synthesize)(src.astype(np.float64),
                                                                    filters.astype(np.float64))
    out = np.full((batch, n_out, *spatial), np.nan, dtype)
    if kind == "none":
        bad, nonzero = op(src, out, *cpu.epilogue(dtype))
        want = exact
        assert (bad, nonzero) == (0, -1)  # a plain store counts nothing, like correlate
    else:
        base = rng.standard_normal(out.shape).astype(dtype)
        beta = np.abs(rng.standard_normal(n_out)).astype(dtype)
        bad, nonzero = op(src, out, *cpu.epilogue(dtype, base, -0.5, beta, KINDS[kind]))
        value = base.astype(np.float64) - 0.5 * exact
        threshold = beta[None, :, None, None].astype(np.float64)
        want = (np.maximum(value - threshold, 0.0) if kind == "relu"
                else np.sign(value) * np.maximum(np.abs(value) - threshold, 0.0))
        assert bad == 0 and nonzero == np.count_nonzero(out)
    tol = (1e-4 if dtype == np.float32 else 1e-11) * (1 + np.abs(exact).max())
    np.testing.assert_allclose(out, want, rtol=0, atol=tol)


def test_tiles_count_non_finite_values():
    """A NaN in the base is counted as bad (solvers stop on it), as in the direct kernel."""
    rng = np.random.default_rng(0)
    filters = rng.standard_normal((3, 2, 3, 3))
    op = tiled.TiledCorrelation(filters, (12, 10), 1, True, grids=(6,), block=2)
    base = rng.standard_normal((1, 3, 12, 10))
    base[0, 1, 4, 7] = np.nan
    out = np.empty_like(base)
    bad, _ = op(rng.standard_normal((1, 2, 12, 10)), out,
                *cpu.epilogue(np.float64, base, 1.0, np.zeros(3), KINDS["soft"]))
    assert bad == 1


def test_tile_grids_choose_tiles_for_many_channels_only():
    """The cost model tiles 256² for 64 atoms over 32 channels 5×5 and keeps one periodic
    tile, or the direct kernel, where tiles cannot pay (one input channel)."""
    (outputs, grid, counts), ns = tiled.tile_grids((256, 256), (5, 5), 32, 64, 1, 8)
    assert counts[0] * counts[1] > 1
    assert all(g - o == 4 for g, o in zip(grid, outputs, strict=True) if g < 256)
    assert ns < 0.6 * tiled.direct_ns((256, 256), (5, 5), 32, 64, 1, 8)
    _, ns = tiled.tile_grids((256, 256), (8, 8), 1, 32, 1, 4)
    assert ns > tiled.direct_ns((256, 256), (8, 8), 1, 32, 1, 4)
    assert tiled.tile_grids((5, 5), (3, 3), 2, 2, 1)[0] == ((5, 5), (5, 5), (1, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dictionary_fft_method(dtype):
    """``method="fft"`` of analyze, synthesize and normal equals the direct sums (2-D, 1-D, a
    batch), passes the dot test, and an empty batch gives an empty result."""
    rng = np.random.default_rng(4)
    for filters, spatial in (((6, 3, 4, 5), (40, 33)), ((5, 2, 7), (90,))):
        D = ConvDictionary(rng.standard_normal(filters).astype(dtype))
        codes = rng.standard_normal((2, D.n_atoms, *spatial)).astype(dtype)
        signal = rng.standard_normal((2, D.n_channels, *spatial)).astype(dtype)
        tol = 1e-4 if dtype == np.float32 else 1e-11
        for fft, direct in ((D.analyze(signal, method="fft"), D.analyze(signal, method="dense")),
                            (D.synthesize(codes, method="fft"),
                             D.synthesize(codes, method="dense")),
                            (D.normal(codes, method="fft"), D.normal(codes, method="dense"))):
            assert fft.dtype == dtype and fft.shape == direct.shape
            np.testing.assert_allclose(fft, direct, rtol=0, atol=tol * np.abs(direct).max())
        left = np.vdot(D.synthesize(codes, method="fft").astype(np.float64), signal)
        right = np.vdot(codes, D.analyze(signal, method="fft").astype(np.float64))
        assert abs(left - right) <= 10 * tol * abs(left)
        empty = np.zeros((0, D.n_atoms, *spatial), dtype)
        assert D.synthesize(empty, method="fft").shape == (0, D.n_channels, *spatial)
        assert D._tiled  # operators kept, and a pickle leaves them out (FFTW plans do not pickle)
        copy = pickle.loads(pickle.dumps(D))
        assert not copy._tiled and D._tiled
        again = D.analyze(signal, method="fft")  # new plans: equal up to rounding
        np.testing.assert_allclose(copy.analyze(signal, method="fft"), again, rtol=0,
                                   atol=tol * np.abs(again).max())


def test_fused_steps_take_tiles_where_modelled_faster():
    """proximal_gradient_step routes a dense float64 analysis of 64 atoms over 32 channels 5×5
    on 256² through tiles (modelled ~2× faster), float32 and one input channel through the
    direct kernel; the step equals the direct kernels' result."""
    rng = np.random.default_rng(5)
    filters = rng.standard_normal((64, 32, 5, 5)) / 40
    D64, D32 = ConvDictionary(filters), ConvDictionary(filters.astype(np.float32))
    assert D64._dense_work((256, 256), 1, True)[1]
    assert not D32._dense_work((256, 256), 1, True)[1]
    assert not ConvDictionary(rng.standard_normal((32, 1, 8, 8)))._dense_work((256, 256), 1,
                                                                              True)[1]
    codes = np.maximum(rng.standard_normal((64, 256, 256)), 0)  # half dense: the dense route
    target = rng.standard_normal((32, 256, 256))
    synthesized = D64.synthesize(codes, method="dense")
    fast = D64.proximal_gradient_step(codes, target, 0.1, 0.05, "relu", synthesized=synthesized)
    assert [key[2] for key in D64._tiled] == [True]  # the analysis went through tiles
    direct = np.maximum(codes - 0.1 * D64.analyze(synthesized - target, method="dense") - 0.05,
                        0)
    np.testing.assert_allclose(fast, direct, rtol=0, atol=1e-11 * np.abs(direct).max())
