"""mlverify._cuda without a device: the clear error, the info dict (runs in every pytest run)."""

from __future__ import annotations

import numpy as np
import pytest

from mlverify import _cuda


def test_require_cuda_raises_a_clear_error_without_cuda(monkeypatch):
    monkeypatch.setattr(_cuda, "HAVE_CUDA", False)
    monkeypatch.setattr(_cuda, "_REASON", "CUDA driver library cannot be found")
    with pytest.raises(RuntimeError, match=r"engine='cuda' needs a CUDA GPU.*NUMBA_ENABLE_CUDASIM"
                                           r"=1.*driver library cannot be found.*engine='cpu'"):
        _cuda.require_cuda()
    info = _cuda.info()
    assert info["available"] is False
    assert info["reason"] == "CUDA driver library cannot be found"


def test_info_describes_the_target():
    info = _cuda.info()
    assert set(info) == {"available", "simulated", "implementation", "device", "reason"}
    assert info["implementation"].startswith("numba-cuda ")
    assert info["available"] is _cuda.HAVE_CUDA
    assert (info["reason"] is None) is _cuda.HAVE_CUDA
    assert (info["device"] is None) is (not _cuda.HAVE_CUDA)
    if _cuda.HAVE_CUDA:
        _cuda.require_cuda()


def test_host_arrays_are_not_device_arrays():
    assert not _cuda.is_device_array(np.zeros(3))
    assert not _cuda.is_device_array([0.0, 1.0])


def test_c_strides_ignores_the_strides_of_length_one_dimensions():
    """NumPy's contiguity rule: ``x[None]`` (stride 0 on the new axis) is C-contiguous."""
    assert np.zeros((4, 4), np.float32)[None].strides == (0, 16, 4)
    assert _cuda.c_strides((1, 4, 4), (0, 16, 4), 4) == (64, 16, 4)
    assert _cuda.c_strides((2, 1, 3), (24, 999, 8), 8) == (24, 24, 8)
    assert _cuda.c_strides((2, 3), (24, 8), 8) == (24, 8)
    assert _cuda.c_strides((4, 4), (4, 16), 4) is None  # Fortran order
    assert _cuda.c_strides((2, 4), (32, 4), 4) is None  # every other row
