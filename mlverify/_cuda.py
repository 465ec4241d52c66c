"""The CUDA target: the only module of mlverify that imports ``numba.cuda`` (DESIGN.md §2, §5).

- :data:`HAVE_CUDA`: a usable CUDA device, or the Numba simulator.
- :data:`SIMULATED`: ``NUMBA_ENABLE_CUDASIM=1`` was set before Numba was imported; kernels then
  run as Python threads on the CPU (slow: for tests with tiny grids only).
- :func:`require_cuda`: the clear error for ``engine="cuda"`` without CUDA (never a silent
  fallback to another engine).
- Device arrays: anything exposing ``__cuda_array_interface__`` (Numba device arrays, CuPy
  arrays, PyTorch CUDA tensors) is used in place, without a copy to the host
  (:func:`is_device_array`, :func:`as_device_array`, :func:`like`).
"""

from __future__ import annotations

import sys
from importlib import metadata

import numpy as np
from numba import cuda

__all__ = [
    "HAVE_CUDA",
    "IMPLEMENTATION",
    "SIMULATED",
    "as_device_array",
    "c_strides",
    "cuda",
    "device_array",
    "info",
    "is_device_array",
    "like",
    "require_cuda",
    "to_device",
]

#: Kernels run in the Numba CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``).
SIMULATED: bool = bool(cuda.config.ENABLE_CUDASIM)


def _probe() -> tuple[bool, str]:
    """Whether a device (or the simulator) is usable, and why not when it is not."""
    if SIMULATED:
        return True, ""
    try:
        if cuda.is_available():
            return True, ""
    except Exception as error:  # any driver failure means "no CUDA"
        return False, f"{type(error).__name__}: {error}"
    from numba.cuda.cudadrv.driver import driver

    reason = getattr(driver, "initialization_error", None) or "no CUDA device found"
    return False, " ".join(str(reason).split())


#: A CUDA device or the simulator is usable.
HAVE_CUDA, _REASON = _probe()

#: Name and version of the CUDA implementation (the ``numba-cuda`` distribution).
IMPLEMENTATION: str = f"numba-cuda {metadata.version('numba-cuda')}"


def require_cuda() -> None:
    """Raise ``RuntimeError`` unless a CUDA device or the simulator is usable.

    Raises
    ------
    RuntimeError
        With the reason (for example the driver's initialisation error) and the two ways out.
    """
    if not HAVE_CUDA:
        raise RuntimeError(
            f"engine='cuda' needs a CUDA GPU with a working driver, or the Numba simulator "
            f"(set NUMBA_ENABLE_CUDASIM=1 before starting Python); neither is usable here "
            f"({_REASON}). mlverify never falls back silently: use engine='cpu' instead."
        )


def info() -> dict[str, str | bool | None]:
    """What ``mlverify info`` reports about CUDA.

    Keys: ``available`` (bool), ``simulated`` (bool), ``implementation`` (``numba-cuda X.Y.Z``),
    ``device`` (name and compute capability, ``None`` without a device), ``reason`` (why CUDA is
    not usable, ``None`` when it is).
    """
    device = None
    if SIMULATED:
        device = "simulator (NUMBA_ENABLE_CUDASIM=1)"
    elif HAVE_CUDA:
        current = cuda.get_current_device()
        name = current.name.decode() if isinstance(current.name, bytes) else str(current.name)
        major, minor = current.compute_capability
        device = f"{name} (compute capability {major}.{minor})"
    return {
        "available": HAVE_CUDA,
        "simulated": SIMULATED,
        "implementation": IMPLEMENTATION,
        "device": device,
        "reason": None if HAVE_CUDA else _REASON,
    }


def is_device_array(value) -> bool:
    """True for an array that lives on the device (``__cuda_array_interface__``, or a simulator
    device array)."""
    if SIMULATED:
        return isinstance(value, cuda.simulator.cudadrv.devicearray.FakeCUDAArray)
    return cuda.is_cuda_array(value)


def c_strides(shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int
              ) -> tuple[int, ...] | None:
    """The C strides of ``shape`` when an array of ``strides`` is C-contiguous by NumPy's rule,
    else ``None``.

    NumPy lets a dimension of length 1 carry any stride (``x[None]`` gives it 0); Numba's device
    arrays read a 0 stride as broadcasting and call such an array non-contiguous.
    """
    canonical, step = [], itemsize
    for n in reversed(shape):
        canonical.append(step)
        step *= n
    canonical.reverse()
    if any(n != 1 and s != c for n, s, c in zip(shape, strides, canonical, strict=True)):
        return None
    return tuple(canonical)


def _c_view(array):
    """``array``, re-viewed with C strides where only its length-1 dimensions' strides are off
    (:func:`c_strides`; no copy)."""
    if SIMULATED or array.is_c_contiguous():
        return array
    strides = c_strides(array.shape, array.strides, array.dtype.itemsize)
    if strides is None:
        return array  # really strided: the caller's contiguity check refuses it
    return cuda.cudadrv.devicearray.DeviceNDArray(array.shape, strides, array.dtype,
                                                  stream=array.stream, gpu_data=array.gpu_data)


def as_device_array(value):
    """A Numba device array viewing ``value`` (no copy); ``value`` must be a device array.
    Length-1 dimensions get C strides (:func:`c_strides`)."""
    if SIMULATED or cuda.cudadrv.devicearray.is_cuda_ndarray(value):
        return _c_view(value)
    return _c_view(cuda.as_cuda_array(value))


def like(result, template):
    """``result`` (a Numba device array) in the array library of ``template`` (no copy).

    CuPy arrays come back as CuPy arrays and PyTorch tensors as tensors on ``template``'s
    device; Numba device arrays (and anything else) as Numba device arrays.
    """
    library = type(template).__module__.split(".")[0]
    if library == "cupy":
        return sys.modules["cupy"].asarray(result)
    if library == "torch":
        return sys.modules["torch"].as_tensor(result, device=template.device)
    return result


def to_device(array: np.ndarray):
    """Copy a host array to the device (C-contiguous, with C strides: :func:`c_strides`)."""
    return _c_view(cuda.to_device(np.ascontiguousarray(array)))


def device_array(shape: tuple[int, ...], dtype: np.dtype):
    """An uninitialised C-contiguous device array."""
    return cuda.device_array(shape, dtype=dtype)
