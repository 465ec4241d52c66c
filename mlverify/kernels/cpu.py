"""Numba CPU kernels for periodic, stride-1 convolutional dictionaries.

Canonical layout (see :mod:`mlverify.kernels.reference` for the formulas and the NumPy oracles):
codes ``(B, m, H, W)``, signals ``(B, c, H, W)``, filters ``(m, c, n1, n2)``, 1-D being
``H = n1 = 1``. Filters must not be longer than the signal on any axis (``n1 <= H``,
``n2 <= W``); the public wrappers check this.

Parallel work is split into tasks that each own a distinct block of the *output*, so no two
threads ever write the same element (no races in ``prange``). The innermost loops are plain
``axpy`` loops over contiguous memory, which LLVM vectorises without ``fastmath``; the periodic
wrap is handled by splitting each loop into its in-range and wrapped parts instead of a modulo
per element.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._scalar import shrink


@njit(parallel=True, cache=True)
def synthesize_dense(codes, filters, out, block):  # pragma: no cover - compiled
    """``out = D codes`` touching every coefficient; tasks are (batch, channel, row, x-block)."""
    batch, atoms, height, width = codes.shape
    channels, n1, n2 = filters.shape[1], filters.shape[2], filters.shape[3]
    n_blocks = (width + block - 1) // block
    for task in prange(batch * channels * height * n_blocks):
        xb = task % n_blocks
        rest = task // n_blocks
        y = rest % height
        rest //= height
        ch = rest % channels
        b = rest // channels
        x0 = xb * block
        x1 = min(width, x0 + block)
        row = out[b, ch, y]
        for x in range(x0, x1):
            row[x] = 0.0
        for f in range(atoms):
            for ty in range(n1):
                r = y - ty
                if r < 0:
                    r += height
                src = codes[b, f, r]
                for tx in range(n2):
                    a = filters[f, ch, ty, tx]
                    if a == 0.0:
                        continue
                    for x in range(max(x0, tx), x1):
                        row[x] += a * src[x - tx]
                    for x in range(x0, min(x1, tx)):
                        row[x] += a * src[x - tx + width]


@njit(parallel=True, cache=True)
def analyze_dense(signal, filters, out, block):  # pragma: no cover - compiled
    """``out = D^T signal``; tasks are (batch, atom, row, x-block)."""
    batch, channels, height, width = signal.shape
    atoms, n1, n2 = filters.shape[0], filters.shape[2], filters.shape[3]
    n_blocks = (width + block - 1) // block
    for task in prange(batch * atoms * height * n_blocks):
        xb = task % n_blocks
        rest = task // n_blocks
        y = rest % height
        rest //= height
        f = rest % atoms
        b = rest // atoms
        x0 = xb * block
        x1 = min(width, x0 + block)
        row = out[b, f, y]
        for x in range(x0, x1):
            row[x] = 0.0
        for ch in range(channels):
            for ty in range(n1):
                r = y + ty
                if r >= height:
                    r -= height
                src = signal[b, ch, r]
                for tx in range(n2):
                    a = filters[f, ch, ty, tx]
                    if a == 0.0:
                        continue
                    for x in range(x0, min(x1, width - tx)):
                        row[x] += a * src[x + tx]
                    for x in range(max(x0, width - tx), x1):
                        row[x] += a * src[x + tx - width]


@njit(parallel=True, cache=True)
def row_nonzeros(codes):  # pragma: no cover - compiled
    """Number of non-zeros of ``codes[b, :, y, :]`` for every (b, y): an ``(B, H)`` int64 array."""
    batch, atoms, height, width = codes.shape
    counts = np.zeros((batch, height), dtype=np.int64)
    for task in prange(batch * height):
        b = task // height
        y = task % height
        n = 0
        for f in range(atoms):
            for x in range(width):
                if codes[b, f, y, x] != 0.0:
                    n += 1
        counts[b, y] = n
    return counts


@njit(parallel=True, cache=True)
def synthesize_sparse(codes, filters, counts, out):  # pragma: no cover - compiled
    """``out = D codes`` touching only the non-zeros of ``codes``.

    ``counts`` is :func:`row_nonzeros` of ``codes``. The non-zeros are first gathered into a
    row-compressed list (atom, column, value) per code row; then each task owns one output row
    ``out[b, :, y, :]`` and adds the atoms of the code rows ``y - ty`` (``ty < n1``) into it, so the
    scatter needs no atomics.
    """
    batch, atoms, height, width = codes.shape
    channels, n1, n2 = filters.shape[1], filters.shape[2], filters.shape[3]
    n_rows = batch * height
    offsets = np.zeros(n_rows + 1, dtype=np.int64)
    for i in range(n_rows):
        offsets[i + 1] = offsets[i] + counts[i // height, i % height]
    atom_of = np.empty(offsets[n_rows], dtype=np.int32)
    col_of = np.empty(offsets[n_rows], dtype=np.int32)
    val_of = np.empty(offsets[n_rows], dtype=codes.dtype)
    for i in prange(n_rows):
        b = i // height
        y = i % height
        k = offsets[i]
        for f in range(atoms):
            for x in range(width):
                v = codes[b, f, y, x]
                if v != 0.0:
                    atom_of[k] = f
                    col_of[k] = x
                    val_of[k] = v
                    k += 1
    for i in prange(n_rows):
        b = i // height
        y = i % height
        for ch in range(channels):
            for x in range(width):
                out[b, ch, y, x] = 0.0
        for ty in range(n1):
            r = y - ty
            if r < 0:
                r += height
            src_row = b * height + r
            for k in range(offsets[src_row], offsets[src_row + 1]):
                f = atom_of[k]
                x0 = col_of[k]
                v = val_of[k]
                split = min(n2, width - x0)
                for ch in range(channels):
                    dst = out[b, ch, y]
                    taps = filters[f, ch, ty]
                    for tx in range(split):
                        dst[x0 + tx] += v * taps[tx]
                    for tx in range(split, n2):
                        dst[x0 + tx - width] += v * taps[tx]


@njit(parallel=True, cache=True)
def threshold(values, beta, kind, out):  # pragma: no cover - compiled
    """``out[b, f] = T_{beta[f]}(values[b, f])`` for ``values (B, m, H, W)``, ``beta (m,)``.

    ``kind`` is one of :data:`mlverify.kernels._scalar.KINDS`; ``out`` may be ``values``.
    """
    batch, atoms, height, width = values.shape
    for task in prange(batch * atoms * height):
        y = task % height
        f = (task // height) % atoms
        b = task // (height * atoms)
        t = beta[f]
        for x in range(width):
            out[b, f, y, x] = shrink(values[b, f, y, x], t, kind)
