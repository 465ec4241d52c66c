"""pytest-benchmark test of 1-D basis pursuit by LGCD on alphacsc's problem (DESIGN.md §7).

Disabled by default (``--benchmark-disable``: the body runs once and its result is checked);
``pytest tests/benchmarks --benchmark-enable`` times it. Times are never asserted.
"""

import numpy as np
import pytest

from mlverify.bench.csc1d import problem
from mlverify.pursuits._bp_cd import bp_cd


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bench_bp_cd(benchmark, dtype):
    p = problem(dtype=np.dtype(dtype))
    tol = 1e-3
    bp_cd(p.D, p.y, p.lam, nonneg=True, tol=1e-1, boundary="valid")  # warm the JIT
    result = benchmark(bp_cd, p.D, p.y, p.lam, nonneg=True, tol=tol, boundary="valid")
    assert result.status == "converged" and result.certificate <= tol
    assert result.codes[0].dtype == dtype
    assert (result.codes[0][..., p.n_valid:] == 0).all() and (result.codes[0] >= 0).all()
