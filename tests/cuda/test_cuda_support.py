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
