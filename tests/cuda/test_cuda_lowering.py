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
    """The floating-point types of the arithmetic in ``ir``."""
    return set(re.findall(r"= f(?:add|sub|mul) (?:[a-z]+ )*(float|double) ", ir))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_lower_for_the_device(monkeypatch, dtype):
    from mlverify.kernels import cuda as ck

    scalar = types.float32 if dtype == np.float32 else types.float64
    name = "float" if dtype == np.float32 else "double"
    a4, a1 = types.Array(scalar, 4, "C"), types.Array(scalar, 1, "C")
    correlate = lower(monkeypatch, ck._correlate_kernel(np.dtype(dtype)),
                      (a4, a4, a4, types.int64, types.int64))
    assert float_ops(correlate) == {name}, "the correlation accumulates in the input's dtype"
    threshold = lower(monkeypatch, ck._threshold_kernel, (a4, a1, types.int64, a4))
    assert name in float_ops(threshold)
    nonfinite = lower(monkeypatch, ck._count_nonfinite, (a1, types.Array(types.int64, 1, "C")))
    assert "atomicrmw add" in nonfinite
