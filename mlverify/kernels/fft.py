r"""Periodic synthesis and analysis through the DFT (``scipy.fft``), for large filters.

A periodic, stride-1 dictionary is diagonalised by the DFT: with :math:`\hat A[f, c, k]` the DFT
of channel :math:`c` of atom :math:`f` zero-padded to the signal size,

.. math::

    \widehat{D\Gamma}[c, k] = \sum_f \hat A[f, c, k]\,\hat\Gamma[f, k], \qquad
    \widehat{D^TV}[f, k] = \sum_c \overline{\hat A[f, c, k]}\,\hat V[c, k],

the same operators as :func:`mlverify.kernels.cpu.correlate` (THEORY.md §1) at a cost of
:math:`O((m + c)\,N\log N + mcN)` instead of :math:`O(mcNn)` for ``n`` taps per filter. The
results differ from the direct sums by rounding only (of order :math:`u\log N` relative); they
carry no rigorous error bound, which is why certificates use them only to decide *when* to
certify (:class:`mlverify.pursuits._certificates.DualityGap`).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft


class SpectralConvolution:
    """Synthesis and analysis of one filter bank on one spatial shape through the DFT.

    Parameters
    ----------
    filters : ndarray, shape ``(m, c, *kernel)``
        Real filters (float32 or float64: computations run in that precision).
    spatial : tuple of int
        Signal shape (each at least the kernel size).
    workers : int
        ``scipy.fft`` threads.
    """

    def __init__(self, filters: np.ndarray, spatial: tuple[int, ...], workers: int = 1) -> None:
        self.dtype = filters.dtype
        self.spatial = tuple(spatial)
        self.ndim = len(self.spatial)
        self.axes = tuple(range(-self.ndim, 0))
        self.workers = workers
        spectra = scipy.fft.rfftn(filters.astype(np.float64), s=self.spatial, axes=self.axes)
        self.spectra = spectra.astype(np.result_type(self.dtype, np.complex64))
        self.freq_shape = spectra.shape[2:]

    def _forward(self, array: np.ndarray) -> np.ndarray:
        out = scipy.fft.rfftn(array, axes=self.axes, workers=self.workers)
        return out.reshape(*out.shape[: -self.ndim], math.prod(self.freq_shape))

    def _backward(self, spectrum: np.ndarray) -> np.ndarray:
        shaped = spectrum.reshape(*spectrum.shape[:-1], *self.freq_shape)
        return scipy.fft.irfftn(shaped, s=self.spatial, axes=self.axes, workers=self.workers)

    def synthesize(self, codes: np.ndarray) -> np.ndarray:
        """:math:`D\\Gamma` for codes ``(..., m, *S)`` (a signal ``(..., c, *S)``)."""
        spectra = self.spectra.reshape(*self.spectra.shape[:2], -1)
        out = np.einsum("fck,...fk->...ck", spectra, self._forward(codes))
        return self._backward(out).astype(self.dtype, copy=False)

    def analyze(self, signal: np.ndarray) -> np.ndarray:
        """:math:`D^TV` for a signal ``(..., c, *S)`` (codes ``(..., m, *S)``)."""
        spectra = np.conj(self.spectra.reshape(*self.spectra.shape[:2], -1))
        out = np.einsum("fck,...ck->...fk", spectra, self._forward(signal))
        return self._backward(out).astype(self.dtype, copy=False)
