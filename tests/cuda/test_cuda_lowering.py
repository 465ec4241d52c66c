"""The CUDA kernels type-check and lower to LLVM IR for a real device, without a GPU.

The simulator runs the kernels as Python, so it never compiles them; this test does, up to the
LLVM IR (PTX would need NVRTC; running them, a GPU). ``compile_ptx`` is stopped right before
the PTX stage, and device functions (the shared ``shrink``) are compiled for compute capability
9.0 instead of asking the (absent) driver. Skipped under the simulator, where ``numba.cuda`` is
the simulator.
"""

from __future__ import annotations

import re
import types as pytypes

import numpy as np
import pytest
from numba import types

from mlverify import _cuda

pytestmark = pytest.mark.skipif(_cuda.SIMULATED, reason="numba.cuda is the simulator")

CC = (9, 0)


class _Lowered(Exception):
    """Raised in place of PTX generation, carrying the module's LLVM IR."""


def lower(monkeypatch, function, signature) -> str:
    """LLVM IR of ``function`` compiled as a kernel for ``signature``."""
    import numba.cuda.dispatcher as dispatcher
    from numba.cuda import codegen

    def capture(library, *args, **kwargs):
        raise _Lowered(library.get_llvm_str())

    monkeypatch.setattr(codegen.CUDACodeLibrary, "get_asm_strs", capture)
    monkeypatch.setattr(dispatcher, "get_current_device",
                        lambda: pytypes.SimpleNamespace(compute_capability=CC))
    with pytest.raises(_Lowered) as lowered:
        _cuda.cuda.compile_ptx(function.py_func, signature, cc=CC)
    return str(lowered.value)


def float_ops(ir: str) -> set[str]:
    """The floating-point types of the arithmetic in ``ir``, apart from the zero of ``shrink``
    (``abs(v) * 0.0``: a float64 product by the constant 0, rounded back to ``v``'s dtype)."""
    ir = re.sub(r"= fmul (?:[a-z]+ )*double %\S+,\s+0x0\n", "", ir)
    return set(re.findall(r"= f(?:add|sub|mul) (?:[a-z]+ )*(float|double) ", ir))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_lower_for_the_device(monkeypatch, dtype):
    from mlverify.kernels import cuda as ck

    scalar = types.float32 if dtype == np.float32 else types.float64
    name = "float" if dtype == np.float32 else "double"
    a4, a2, a1 = (types.Array(scalar, n, "C") for n in (4, 2, 1))
    i1, i4 = types.Array(types.int32, 1, "C"), types.Array(types.int32, 4, "C")
    f2, f1 = types.Array(types.float64, 2, "C"), types.Array(types.float64, 1, "C")
    l1, i64 = types.Array(types.int64, 1, "C"), types.int64
    analysis = lower(monkeypatch, ck._analysis_kernel(np.dtype(dtype)),
                     (a4, a4, a4, i64, scalar, a1, i64, i1, a4))
    assert float_ops(analysis) == {name}, "the fused analysis computes in the input's dtype"
    synthesis = lower(monkeypatch, ck._synthesis_kernel(np.dtype(dtype)),
                      (a4, a4, i4, i64, a4, i64, i1, a4))
    assert float_ops(synthesis) == {name}, "the synthesis accumulates in the input's dtype"
    assert "fcmp" in lower(monkeypatch, ck._occupancy, (a4, i1, i4))
    threshold = lower(monkeypatch, ck._threshold_kernel, (a4, a1, i64, a4))
    assert name in float_ops(threshold)
    nonfinite = lower(monkeypatch, ck._count_nonfinite, (a1, l1))
    assert "atomicrmw add" in nonfinite
    sums = lower(monkeypatch, ck._problem_sums, (a2, a2, a2, i64, i1, f2))
    assert "addrspace(3)" in sums, "the reduction runs in shared memory"
    assert "double" in float_ops(sums), "the reduction accumulates in float64"
    assert "llvm.nvvm.barrier0" in sums
    for kernel, signature in (
        (ck._fista_momentum, (f2, f1, a1, l1, l1, i1, i1)),
        (ck._fixed_point_test, (f2, types.float64, types.float64, f1, l1, i1, i1)),
        (ck._momentum_step, (a2, a2, a2, a1, i64, i1)),
        (ck._commit, (a2, a2, i1, i1)),
        (ck._retire, (i1, i1)),
    ):
        assert "define" in lower(monkeypatch, kernel, signature)
