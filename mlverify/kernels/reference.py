"""Plain NumPy oracles of the convolution kernels (shipped; the ``numpy`` engine and the tests).

All functions work on the canonical layout used by every kernel of the package:
codes ``(B, m, H, W)``, signals ``(B, c, H, W)`` and filters ``(m, c, n1, n2)``; a 1-D problem is
the case ``H = n1 = 1``. The boundary is periodic and the stride 1 (THEORY.md §1):

.. math::

    (D\\Gamma)[c, x] = \\sum_f \\sum_\\tau A[f, c, \\tau]\\, \\Gamma[f, (x - \\tau) \\bmod N],
    \\qquad
    (D^T V)[f, p] = \\sum_c \\sum_\\tau A[f, c, \\tau]\\, V[c, (p + \\tau) \\bmod N].

``np.roll(x, s)[i] == x[i - s]``, so synthesis rolls by ``+tau`` and analysis by ``-tau``.
"""

from __future__ import annotations

import numpy as np


def synthesize(codes: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Synthesis ``D Γ`` by explicit periodic shifts: ``(B, m, H, W) -> (B, c, H, W)``."""
    batch, _, height, width = codes.shape
    _, channels, n1, n2 = filters.shape
    out = np.zeros((batch, channels, height, width), dtype=codes.dtype)
    for f in range(filters.shape[0]):
        for ty in range(n1):
            for tx in range(n2):
                shifted = np.roll(codes[:, f], (ty, tx), axis=(1, 2))
                out += filters[f, :, ty, tx][None, :, None, None] * shifted[:, None]
    return out


def analyze(signal: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Analysis ``D^T V`` by explicit periodic shifts: ``(B, c, H, W) -> (B, m, H, W)``."""
    batch, _, height, width = signal.shape
    atoms, channels, n1, n2 = filters.shape
    out = np.zeros((batch, atoms, height, width), dtype=signal.dtype)
    for ch in range(channels):
        for ty in range(n1):
            for tx in range(n2):
                shifted = np.roll(signal[:, ch], (-ty, -tx), axis=(1, 2))
                out += filters[:, ch, ty, tx][None, :, None, None] * shifted[:, None]
    return out


def dense_operator(filters: np.ndarray, height: int, width: int) -> np.ndarray:
    """The global banded-circulant matrix of the dictionary.

    Rows are indexed by ``(c, y, x)`` and columns by ``(f, p_y, p_x)``, both in C order, so that
    ``dense_operator(A, H, W) @ codes.ravel() == synthesize(codes, A).ravel()`` for one problem.
    Entry: ``D[(c, y, x), (f, p_y, p_x)] = A[f, c, (y - p_y) mod H, (x - p_x) mod W]`` (taps
    beyond the filter are zero; taps that wrap onto the same offset add up).
    """
    atoms, channels, n1, n2 = filters.shape
    size = height * width
    matrix = np.zeros((channels * size, atoms * size), dtype=filters.dtype)
    py, px = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    cols_base = (py * width + px).ravel()
    for f in range(atoms):
        for ch in range(channels):
            for ty in range(n1):
                for tx in range(n2):
                    rows = ch * size + (((py + ty) % height) * width + (px + tx) % width).ravel()
                    np.add.at(matrix, (rows, f * size + cols_base), filters[f, ch, ty, tx])
    return matrix
