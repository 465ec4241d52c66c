"""Hypothesis properties of the CUDA kernels (kept apart: the GPU check machine may lack
Hypothesis, and ``scripts/gpu_check.py`` then leaves this file out)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cuda_kernels import DTYPES, check_operators, problem

from mlverify import _cuda

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not _cuda.HAVE_CUDA, reason="no CUDA device and the simulator is off "
                       "(run with NUMBA_ENABLE_CUDASIM=1)"),
]


@settings(max_examples=10)
@given(
    ndim=st.sampled_from([1, 2]),
    sizes=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3)),
    kernel=st.tuples(st.integers(1, 3), st.integers(1, 4)),
    extra=st.tuples(st.integers(0, 3), st.integers(0, 4)),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**32 - 1),
)
def test_correlate_property(ndim, sizes, kernel, extra, dtype, seed):
    """For all small shapes (filter no longer than the signal), CUDA = CPU = oracle."""
    n1, n2 = (1, kernel[1]) if ndim == 1 else kernel
    height = 1 if ndim == 1 else n1 + extra[0]
    check_operators(*problem((*sizes, height, n2 + extra[1], n1, n2), dtype, seed))
