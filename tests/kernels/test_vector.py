"""The vector kernels of :mod:`mlverify.kernels._vector` against NumPy oracles.

- ``dot_runs``: against an extended-precision oracle, within the rounding bound
  :math:`\\gamma_K\\sum|x_kw_k|`, and summed in an order fixed by the lengths alone (the same
  bits wherever the arrays start in memory);
- ``correlate_channels``, ``correlate_channel_rows``, ``window_sums`` and ``add_patches``:
  against the sums written out in NumPy (float64), and each output the same bits whichever
  kernel, register block, vector or scalar tail computes it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import njit
from numba.core.errors import TypingError

from mlverify.kernels._vector import (
    GROUP,
    add_patches,
    correlate_channel_rows,
    correlate_channels,
    dot_block,
    dot_runs,
    window_sums,
)


@njit(cache=True)
def _dot(x, x_start, x_stride, w, w_start, length, runs):
    return dot_runs(x, x_start, x_stride, w, w_start, length, runs)


@njit(cache=True)
def _block(x, x_starts, x_stride, w, w_starts, length, runs):
    return dot_block(x, x_starts, x_stride, w, w_starts, length, runs)


def _operands(data, dtype):
    """Random runs of ``x`` (at a stride) and a contiguous ``w``, with their oracle's terms."""
    length = data.draw(st.integers(0, 150), label="length")
    runs = data.draw(st.integers(0, 4), label="runs")
    stride = length + data.draw(st.integers(0, 9), label="gap")
    x_start, w_start = data.draw(st.integers(0, 20)), data.draw(st.integers(0, 20))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    x = rng.standard_normal(x_start + runs * stride + 3).astype(dtype)
    w = rng.standard_normal(w_start + runs * length + 3).astype(dtype)
    terms = [x[x_start + r * stride + k].astype(np.longdouble) * w[w_start + r * length + k]
             for r in range(runs) for k in range(length)]
    return (x, x_start, stride, w, w_start, length, runs), np.array(terms, np.longdouble)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data())
def test_dot_runs_is_within_the_rounding_bound(dtype, data):
    args, terms = _operands(data, dtype)
    got = _dot(*args)
    unit = np.finfo(dtype).eps / 2
    gamma = terms.size * unit / (1 - terms.size * unit)
    assert abs(np.longdouble(got) - terms.sum()) <= gamma * np.abs(terms).sum()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data(), shift=st.integers(1, 15))
def test_dot_runs_order_does_not_depend_on_where_the_arrays_start(dtype, data, shift):
    (x, x_start, stride, w, w_start, length, runs), _ = _operands(data, dtype)
    moved_x = np.concatenate([np.zeros(shift, dtype), x])  # a copy starting elsewhere
    moved_w = np.concatenate([np.zeros(shift + 1, dtype), w])
    assert (_dot(x, x_start, stride, w, w_start, length, runs)
            == _dot(moved_x, x_start + shift, stride, moved_w, w_start + shift + 1, length, runs))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data())
@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (2, 1), (2, 4), (3, 2)])
def test_block_dots_are_the_single_dots_bit_for_bit(dtype, data, shape):
    (x, x_start, stride, w, w_start, length, runs), _ = _operands(data, dtype)
    x_starts = tuple(data.draw(st.integers(0, x_start)) for _ in range(shape[0]))
    w_starts = tuple(data.draw(st.integers(0, w_start)) for _ in range(shape[1]))
    single = [_dot(x, a, stride, w, b, length, runs) for a in x_starts for b in w_starts]
    assert list(_block(x, x_starts, stride, w, w_starts, length, runs)) == single


def test_dot_runs_sums_exactly_representable_values_exactly():
    # 1000 products of small integers: every partial sum is exact, in any order
    x = np.arange(1000, dtype=np.float64) % 7 - 3
    w = np.arange(1000, dtype=np.float64) % 5 - 2
    assert _dot(x, 0, 250, w, 0, 250, 4) == float(x @ w)


def test_dot_runs_rejects_mixed_dtypes():
    with pytest.raises(TypingError):
        _dot(np.zeros(4), 0, 0, np.zeros(4, np.float32), 0, 4, 1)


@njit(cache=True)
def _channels(dst, dst_start, dst_step, rows, width, src, src_start, src_channel, src_row, taps,
              taps_start, taps_step, n_in, n1, n2):
    correlate_channels(dst, dst_start, dst_step, rows, width, src, src_start, src_channel,
                       src_row, taps, taps_start, taps_step, n_in, n1, n2)


@njit(cache=True)
def _channel_rows(dst, dst_start, dst_step, rows, width, src, src_start, src_step, src_channel,
                  src_row, taps, taps_start, n_in, n1, n2):
    correlate_channel_rows(dst, dst_start, dst_step, rows, width, src, src_start, src_step,
                           src_channel, src_row, taps, taps_start, n_in, n1, n2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data())
def test_correlate_channels_and_rows_equal_the_sums_bit_for_bit_alike(dtype, data):
    """Output channels of one row, and output rows of one channel, against the sums in NumPy;
    every output the same bits by either kernel and computed alone (the scalar tail)."""
    n_out = data.draw(st.integers(1, 2 * GROUP + 1), label="n_out")  # groups and single rows
    n_in, n1, n2 = (data.draw(st.integers(1, 4), label=name) for name in ("n_in", "n1", "n2"))
    width = data.draw(st.integers(1, 150), label="width")  # blocks, single vectors and values
    sign = data.draw(st.sampled_from([1, -1]), label="row sign")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    span = width + n2 - 1
    src = rng.standard_normal((n_in, n1, span)).astype(dtype)
    taps = rng.standard_normal((n_out, n_in, n1, n2)).astype(dtype)
    lead = 0 if sign > 0 else n1 - 1  # source row t_y is lead + sign·t_y
    want = np.zeros((n_out, width))
    for i in range(n_in):
        for ty in range(n1):
            for u in range(n2):
                want += np.outer(taps[:, i, ty, u], src[i, lead + sign * ty, u:u + width])
    got = np.full((n_out, width + 3), np.nan, dtype)
    _channels(got.reshape(-1), 2, width + 3, n_out, width, src.reshape(-1), lead * span,
              n1 * span, sign * span, taps.reshape(-1), 0, taps[0].size, n_in, n1, n2)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got[:, 2:2 + width], want, rtol=tol, atol=tol * n_in * n1 * n2)
    assert np.isnan(got[:, :2]).all() and np.isnan(got[:, 2 + width:]).all()
    # one channel's taps against n_out copies of the source, shifted by a row each
    copies = np.stack([src] * n_out)  # (n_out rows, n_in, n1, span)
    rows = np.full((n_out, width), np.nan, dtype)
    for o in range(n_out):
        _channel_rows(rows.reshape(-1), 0, width, n_out, width, copies.reshape(-1),
                      lead * span, src.size, n1 * span, sign * span, taps.reshape(-1),
                      o * taps[0].size, n_in, n1, n2)
        assert np.array_equal(rows, np.broadcast_to(got[o, 2:2 + width], rows.shape))
    alone = np.empty(n_out, dtype)
    for x in range(width):
        _channels(alone, 0, 1, n_out, 1, src.reshape(-1), lead * span + x, n1 * span,
                  sign * span, taps.reshape(-1), 0, taps[0].size, n_in, n1, n2)
        assert np.array_equal(alone, got[:, 2 + x])


@njit(cache=True)
def _window(dst, dst_start, width, taps, channels, stride, values, offsets, pixels, shifts,
            count):
    window_sums(dst, dst_start, width, taps, channels, stride, values, offsets, pixels, shifts,
                count)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data())
def test_window_sums_equal_the_sums_in_every_block(dtype, data):
    lanes = 64 // np.dtype(dtype).itemsize
    vectors = data.draw(st.integers(1, 17), label="vectors")  # every block size, repeated
    width = vectors * lanes
    n_in, n_shifts = data.draw(st.integers(1, 5), label="n_in"), data.draw(st.integers(1, 6))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    counts = rng.integers(0, 4, size=8)  # non-zeros of 8 pixels, some empty
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    channels = rng.integers(0, n_in, size=offsets[-1]).astype(np.int32)
    values = rng.standard_normal(offsets[-1]).astype(dtype)
    taps = rng.standard_normal(n_in * n_shifts * width).astype(dtype)
    count = data.draw(st.integers(0, 10), label="segments")
    pixels = rng.integers(0, 8, size=count).astype(np.int64)
    shifts = rng.integers(0, n_shifts, size=count).astype(np.int64) * width
    stride = n_shifts * width
    want = np.zeros(width)
    for pixel, shift in zip(pixels, shifts, strict=True):
        for k in range(offsets[pixel], offsets[pixel + 1]):
            start = channels[k] * stride + shift
            want += np.float64(values[k]) * taps[start:start + width]
    got = np.full(width + lanes, np.nan, dtype)
    _window(got, lanes, width, taps, channels, stride, values, offsets, pixels, shifts, count)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got[lanes:], want, rtol=tol, atol=tol * max(1, values.size))
    assert np.isnan(got[:lanes]).all()
    one = np.empty(lanes, dtype)  # each vector by the smallest block: the same chain of sums
    for v in range(vectors):
        part = taps.reshape(-1, width)[:, v * lanes:(v + 1) * lanes].reshape(-1)
        _window(one, 0, lanes, part, channels, n_shifts * lanes, values, offsets,
                pixels, shifts // width * lanes, count)
        assert np.array_equal(one, got[lanes + v * lanes:lanes + (v + 1) * lanes])


@njit(cache=True)
def _patches(dst, dst_start, dst_stride, rows, run, taps, atom_size, channels, values, first,
             last):
    add_patches(dst, dst_start, dst_stride, rows, run, taps, atom_size, channels, values, first,
                last)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data())
def test_add_patches_adds_the_scaled_atoms_in_every_block(dtype, data):
    lanes = 64 // np.dtype(dtype).itemsize
    run = data.draw(st.integers(1, 20 * lanes), label="run")  # blocks, vectors and values
    rows, atoms = data.draw(st.integers(1, 4), label="rows"), data.draw(st.integers(1, 5))
    gap, start = data.draw(st.integers(0, 9), label="gap"), data.draw(st.integers(0, 9))
    stride = run + gap
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    size = rows * run
    taps = rng.standard_normal(atoms * size).astype(dtype)
    count = data.draw(st.integers(0, 6), label="non-zeros")
    first = data.draw(st.integers(0, 3), label="first")
    channels = rng.integers(0, atoms, size=first + count).astype(np.int32)
    values = rng.standard_normal(first + count).astype(dtype)
    old = rng.standard_normal(start + rows * stride + 3).astype(dtype)
    want = old.astype(np.float64)
    for r in range(rows):
        at = start + r * stride
        for k in range(first, first + count):
            patch = taps[channels[k] * size + r * run:channels[k] * size + (r + 1) * run]
            want[at:at + run] += np.float64(values[k]) * patch
    got = old.copy()
    _patches(got, start, stride, rows, run, taps, size, channels, values, first, first + count)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * (1 + count))
    inside = np.zeros(got.size, bool)
    for r in range(rows):
        inside[start + r * stride:start + r * stride + run] = True
    assert np.array_equal(got[~inside], old[~inside])  # nothing written outside the runs
    for q in range(run):  # each entry alone, by the scalar tail: the same chain of sums
        entries = slice(start + q, start + q + (rows - 1) * stride + 1, stride)
        one = old[entries].copy()
        column = np.ascontiguousarray(taps.reshape(atoms, rows, run)[:, :, q].reshape(-1))
        _patches(one, 0, 1, rows, 1, column, rows, channels, values, first, first + count)
        assert np.array_equal(one, got[entries])
