"""``dot_runs`` (:mod:`mlverify.kernels._vector`) against an extended-precision NumPy oracle:
within the rounding bound :math:`\\gamma_K\\sum|x_kw_k|`, and summed in an order fixed by the
lengths alone (the same bits wherever the arrays start in memory)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import njit
from numba.core.errors import TypingError

from mlverify.kernels._vector import dot_runs, dot_runs4


@njit(cache=True)
def _dot(x, x_start, x_stride, w, w_start, length, runs):
    return dot_runs(x, x_start, x_stride, w, w_start, length, runs)


@njit(cache=True)
def _dot4(x, x_start, x_stride, w, starts, length, runs):
    return dot_runs4(x, x_start, x_stride, w, starts[0], starts[1], starts[2], starts[3], length,
                     runs)


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
def test_four_dots_are_the_single_dots_bit_for_bit(dtype, data):
    (x, x_start, stride, w, w_start, length, runs), _ = _operands(data, dtype)
    starts = np.array([data.draw(st.integers(0, w_start)) for _ in range(4)])
    single = [_dot(x, x_start, stride, w, start, length, runs) for start in starts]
    assert list(_dot4(x, x_start, stride, w, starts, length, runs)) == single


def test_dot_runs_sums_exactly_representable_values_exactly():
    # 1000 products of small integers: every partial sum is exact, in any order
    x = np.arange(1000, dtype=np.float64) % 7 - 3
    w = np.arange(1000, dtype=np.float64) % 5 - 2
    assert _dot(x, 0, 250, w, 0, 250, 4) == float(x @ w)


def test_dot_runs_rejects_mixed_dtypes():
    with pytest.raises(TypingError):
        _dot(np.zeros(4), 0, 0, np.zeros(4, np.float32), 0, 4, 1)
