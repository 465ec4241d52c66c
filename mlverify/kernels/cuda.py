"""CUDA kernels (plain ``@cuda.jit``) and their host wrappers, the ``engine="cuda"`` paths.

Same canonical layout and formulas as :mod:`mlverify.kernels.cpu` (oracles in
:mod:`mlverify.kernels.reference`): codes ``(B, m, H, W)``, signals ``(B, c, H, W)``, filters
``(m, c, n1, n2)``, 1-D being ``H = n1 = 1``, periodic boundary, stride 1. Synthesis and analysis
are one periodic correlation kernel (:func:`analyze`, :func:`synthesize`); :func:`threshold`
applies the shared scalar :func:`mlverify.kernels._scalar.shrink`.

Every kernel runs one thread per output element over a grid-stride loop, so a thread owns its
output element (no races, no atomics except the non-finite counter) and the sums are computed in
the same order on every run. Only plain CUDA features are used (no warp shuffles, no cooperative
groups), so the kernels also run in the Numba simulator.

The host wrappers take NumPy arrays or device arrays (see :mod:`mlverify._cuda`): a device input
is used in place and the result stays on the device; a NumPy input is copied to the device and
the result copied back. :func:`like` returns a device result in the input's array library.
``numba.cuda`` is imported only through :mod:`mlverify._cuda`.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from .. import _cuda
from .._cuda import cuda, like
from .._validate import as_float_array as _host_float_array
from .._validate import check_finite, check_float_dtype
from ._scalar import KINDS, shrink

__all__ = ["analyze", "as_float_array", "like", "synthesize", "threshold"]

#: Threads per block and the most blocks of one launch on a GPU (a grid-stride loop covers more).
THREADS, MAX_BLOCKS = 128, 8192
#: In the simulator every thread is a Python thread (0.1–2 ms each): a few suffice to exercise
#: the block and grid-stride indexing.
SIM_THREADS, SIM_BLOCKS = 4, 2


def _grid(total: int) -> tuple[int, int]:
    """``(blocks, threads per block)`` for ``total`` outputs."""
    threads, most = (SIM_THREADS, SIM_BLOCKS) if _cuda.SIMULATED else (THREADS, MAX_BLOCKS)
    return max(1, min(most, -(-total // threads))), threads


@cache
def _correlate_kernel(dtype: np.dtype):
    """The periodic correlation kernel for ``dtype`` (the accumulator starts at ``dtype(0)``).

    .. math::

        out[b, o, y, x] = \\sum_i \\sum_{t_y} \\sum_u taps[o, i, t_y, u]\\,
            src[b, i, (y + s\\,t_y) \\bmod H, (x + u + \\delta) \\bmod W]

    exactly as :func:`mlverify.kernels.cpu.correlate` (``s = row_sign``, ``δ = col_offset``).
    """
    zero = dtype.type(0)

    @cuda.jit
    def correlate(src, taps, out, row_sign, col_offset):  # pragma: no cover - compiled
        batch, n_out, height, width = out.shape
        n_in, n1, n2 = src.shape[1], taps.shape[2], taps.shape[3]
        for idx in range(cuda.grid(1), batch * n_out * height * width, cuda.gridsize(1)):
            x = idx % width
            y = (idx // width) % height
            o = (idx // (width * height)) % n_out
            b = idx // (width * height * n_out)
            first = (x + col_offset) % width
            acc = zero
            for i in range(n_in):
                for ty in range(n1):
                    row = (y + row_sign * ty) % height
                    col = first  # (x + u + δ) mod W, stepped without a division per tap
                    for u in range(n2):
                        acc += taps[o, i, ty, u] * src[b, i, row, col]
                        col += 1
                        if col == width:
                            col = 0
            out[b, o, y, x] = acc

    return correlate


@cuda.jit
def _threshold_kernel(values, beta, kind, out):  # pragma: no cover - compiled
    """``out[b, f, y, x] = T_{beta[f]}(values[b, f, y, x])`` (``kind`` from ``KINDS``)."""
    batch, atoms, height, width = values.shape
    for idx in range(cuda.grid(1), batch * atoms * height * width, cuda.gridsize(1)):
        x = idx % width
        y = (idx // width) % height
        f = (idx // (width * height)) % atoms
        b = idx // (width * height * atoms)
        out[b, f, y, x] = shrink(values[b, f, y, x], beta[f], kind)


@cuda.jit
def _count_nonfinite(values, counter):  # pragma: no cover - compiled
    """``counter[0] += #{k : values[k] is NaN or ±inf}`` for a flat ``values``."""
    for idx in range(cuda.grid(1), values.shape[0], cuda.gridsize(1)):
        if not math.isfinite(values[idx]):
            cuda.atomic.add(counter, 0, 1)


def as_float_array(name: str, value, *, dtype: np.dtype | None = None):
    """Check an input of the CUDA engine; a device array stays on the device (no copy).

    A host input gets the checks of :func:`mlverify._validate.as_float_array` and
    :func:`mlverify._validate.check_finite` and comes back as a NumPy array. A device input
    (``__cuda_array_interface__``) comes back as a Numba device array viewing the same memory,
    after the same checks done on the device: float32/float64 (``dtype`` when given; no silent
    cast), C-contiguous, finite.

    Raises
    ------
    TypeError
        Wrong dtype. ``ValueError``: not C-contiguous, or NaN/inf entries.
    """
    if not _cuda.is_device_array(value):
        array = _host_float_array(name, value, dtype=dtype)
        check_finite(name, array)
        return array
    array = _cuda.as_device_array(value)
    check_float_dtype(name, array.dtype, dtype)
    if not array.is_c_contiguous():
        raise ValueError(f"{name} must be C-contiguous on the device")
    if array.size:
        counter = _cuda.to_device(np.zeros(1, dtype=np.int64))
        _count_nonfinite[_grid(array.size)](array.reshape(array.size), counter)
        if counter.copy_to_host()[0]:
            raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _on_device(array):
    """``(device array, was it already on the device)``."""
    if _cuda.is_device_array(array):
        return _cuda.as_device_array(array), True
    return _cuda.to_device(array), False


def _correlate(src, taps: np.ndarray, row_sign: int, col_offset: int):
    """Run the correlation kernel on ``src (B, n_in, H, W)``, returning ``(B, n_out, H, W)``."""
    d_src, resident = _on_device(src)
    batch, _, height, width = d_src.shape
    out = _cuda.device_array((batch, taps.shape[0], height, width), d_src.dtype)
    if out.size:
        kernel = _correlate_kernel(np.dtype(d_src.dtype))
        kernel[_grid(out.size)](d_src, _cuda.to_device(taps), out, row_sign, col_offset)
    return out if resident else out.copy_to_host()


def analyze(signal4, filters4: np.ndarray):
    """Analysis :math:`D^T V`: ``signal4 (B, c, H, W)`` to codes ``(B, m, H, W)``.

    Parameters
    ----------
    signal4 : ndarray or device array
        Canonical signal, the filters' dtype.
    filters4 : ndarray, shape ``(m, c, n1, n2)``
        Filters :math:`A` (taps ``A``, ``s = +1``, ``δ = 0``).

    Returns
    -------
    ndarray or device array
        On the device when ``signal4`` was.
    """
    return _correlate(signal4, filters4, 1, 0)


def synthesize(codes4, synthesis_taps: np.ndarray):
    """Synthesis :math:`D\\Gamma`: ``codes4 (B, m, H, W)`` to a signal ``(B, c, H, W)``.

    Parameters
    ----------
    codes4 : ndarray or device array
        Canonical codes, the filters' dtype.
    synthesis_taps : ndarray, shape ``(c, m, n1, n2)``
        ``taps[c, f, t_y, u] = A[f, c, t_y, n2 - 1 - u]`` (transposed, flipped along x), run with
        ``s = -1``, ``δ = -(n2 - 1)`` as in :func:`mlverify.kernels.cpu.correlate`.

    Returns
    -------
    ndarray or device array
        On the device when ``codes4`` was.
    """
    return _correlate(codes4, synthesis_taps, -1, 1 - synthesis_taps.shape[3])


def threshold(values4, beta: np.ndarray, kind: str):
    """``T_{beta[f]}`` entrywise on ``values4 (B, m, H, W)``, ``beta (m,)`` of its dtype.

    Parameters
    ----------
    values4 : ndarray or device array
    beta : ndarray, shape ``(m,)``
        Per-channel thresholds :math:`\\beta_f \\ge 0`.
    kind : {"hard", "soft", "relu"}
        :math:`H_\\beta`, :math:`S_\\beta`, :math:`S^+_\\beta` (see :mod:`._scalar`).

    Returns
    -------
    ndarray or device array
        A new array (on the device when ``values4`` was).
    """
    d_values, resident = _on_device(values4)
    out = _cuda.device_array(d_values.shape, d_values.dtype)
    if out.size:
        _threshold_kernel[_grid(out.size)](d_values, _cuda.to_device(beta), KINDS[kind], out)
    return out if resident else out.copy_to_host()
