"""``copy_run`` (:mod:`mlverify.kernels._memory`) against NumPy's flat slices."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import njit
from numba.core.errors import TypingError

from mlverify.kernels._memory import copy_run


@njit(cache=True)
def _copy(dst, dst_start, src, src_start, count):
    copy_run(dst, dst_start, src, src_start, count)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@given(data=st.data())
def test_copy_run_matches_flat_slices(dtype, data):
    src = np.arange(6 * 7, dtype=dtype).reshape(6, 7) + 1
    dst = np.zeros((5, 9), dtype)
    count = data.draw(st.integers(0, min(src.size, dst.size)))
    src_start = data.draw(st.integers(0, src.size - count))
    dst_start = data.draw(st.integers(0, dst.size - count))
    expected = dst.copy()
    expected.reshape(-1)[dst_start:dst_start + count] = src.reshape(-1)[src_start:src_start + count]
    _copy(dst, dst_start, src, src_start, count)
    np.testing.assert_array_equal(dst, expected)


@pytest.mark.parametrize("src", [np.zeros(8, np.float32), np.zeros((8, 4))[:, 0]])
def test_copy_run_takes_only_contiguous_arrays_of_one_dtype(src):
    @njit
    def copy(dst, src):
        copy_run(dst, 0, src, 0, 4)

    with pytest.raises(TypingError):
        copy(np.zeros(8), src)
