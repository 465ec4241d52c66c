"""Numba CPU kernels for periodic correlations of a *sparse* input (the CNN forward pass).

A ReLU layer's output is sparse: most of its entries are exactly zero. The kernels here touch
only the non-zeros of the input and are vectorised over the **output channels**:

1. :func:`pixel_nonzeros` compresses the input ``(B, n_in, H, W)`` pixel by pixel (CSR over the
   ``B·H·W`` pixels: for each pixel the list of its non-zero channels and values);
2. :func:`correlate_sparse` computes the same periodic correlation as
   :func:`mlverify.kernels.cpu.correlate`, with an optional fused threshold on the store. A task
   owns a block of one output row, accumulated channels-last in a small ``(block, n_out)`` buffer
   that stays in the L1 cache: every (non-zero, tap) pair is one contiguous multiply-add of length
   ``n_out`` against a tap vector of the pre-transposed taps ``(n_in, n1, n2, n_out)``. The buffer
   is transposed back to the ``(n_out, H, W)`` layout when the task stores it, so no two threads
   write the same element.

Synthesis of sparse codes, analysis of a sparse signal and the Gram operator :math:`D^TD` of
sparse codes are all this correlation with different taps and offsets (see
:mod:`mlverify.model.dictionary`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from ._scalar import shrink

#: ``kind`` of :func:`correlate_sparse` for "store the correlation as it is" (no threshold).
NO_THRESHOLD = -1

#: Bytes of a task's channels-last accumulator: it must stay in the L1 data cache (32 KiB).
BLOCK_BYTES = 16 * 1024


def block_width(out: np.ndarray) -> int:
    """Columns per task of :func:`correlate_sparse` for the output ``out (B, n_out, H, W)``.

    As many as fit a :data:`BLOCK_BYTES` accumulator, fewer when that leaves a thread idle.
    """
    batch, n_out, height, width = out.shape
    block = max(8, BLOCK_BYTES // (n_out * out.itemsize))
    wanted = 4 * numba.get_num_threads()
    if batch * height > 0 and batch * height * -(-width // block) < wanted:
        block = max(8, -(-width // -(-wanted // (batch * height))))
    return min(block, max(width, 1))


@njit(parallel=True, cache=True)
def pixel_nonzeros(src):  # pragma: no cover - compiled
    """Pixel-wise compressed non-zeros of ``src (B, n_in, H, W)``.

    Returns ``(offsets, channels, values)``: the non-zeros of pixel ``p = (b·H + y)·W + x`` are
    ``src[b, channels[k], y, x] = values[k]`` for ``offsets[p] <= k < offsets[p + 1]``, channels
    in increasing order.
    """
    batch, n_in, height, width = src.shape
    n_rows = batch * height
    offsets = np.zeros(n_rows * width + 1, dtype=np.int64)
    for row in prange(n_rows):
        b = row // height
        y = row % height
        counts = offsets[row * width + 1 : (row + 1) * width + 1]
        for i in range(n_in):
            line = src[b, i, y]
            for x in range(width):
                counts[x] += line[x] != 0.0  # branch-free: vectorised
    for p in range(n_rows * width):
        offsets[p + 1] += offsets[p]
    channels = np.empty(offsets[n_rows * width], dtype=np.int32)
    values = np.empty(offsets[n_rows * width], dtype=src.dtype)
    for row in prange(n_rows):
        b = row // height
        y = row % height
        cursor = offsets[row * width : (row + 1) * width].copy()
        for i in range(n_in):
            line = src[b, i, y]
            for x in range(width):
                v = line[x]
                if v != 0.0:
                    k = cursor[x]
                    channels[k] = i
                    values[k] = v
                    cursor[x] = k + 1
    return offsets, channels, values


@njit(parallel=True, cache=True)
def correlate_sparse(offsets, channels, values, taps, out, row_sign, row_offset, col_offset,
                     block, beta, kind):  # pragma: no cover - compiled
    """Periodic multi-channel correlation of a compressed sparse input, optionally thresholded.

    .. math::

        out[b, o, y, x] = T_{\\beta_o}\\Big(\\sum_i \\sum_{t_y} \\sum_u taps[i, t_y, u, o]\\,
            src[b, i, (y + \\rho + s\\,t_y) \\bmod H, (x + u + \\delta) \\bmod W]\\Big)

    with ``src`` given by :func:`pixel_nonzeros` (``offsets``, ``channels``, ``values``),
    ``s = row_sign``, ``ρ = row_offset``, ``δ = col_offset`` and ``T`` the threshold ``kind``
    (:data:`mlverify.kernels._scalar.KINDS`) with thresholds ``beta (n_out,)``, or the identity
    when ``kind`` is :data:`NO_THRESHOLD`. ``out`` is ``(B, n_out, H, W)``; the tasks own
    blocks of ``block`` columns of one output row.
    """
    batch, n_out, height, width = out.shape
    n1, n2 = taps.shape[1], taps.shape[2]
    n_blocks = (width + block - 1) // block
    for task in prange(batch * height * n_blocks):
        xb = task % n_blocks
        y = (task // n_blocks) % height
        b = task // (n_blocks * height)
        xa = xb * block
        xe = min(width, xa + block)
        acc = np.zeros((xe - xa, n_out), dtype=out.dtype)
        for ty in range(n1):
            row_base = (b * height + (y + row_offset + row_sign * ty) % height) * width
            # Source column j (unwrapped) reaches the output columns x = j - u - δ, u < n2.
            for j in range(xa + col_offset, xe + col_offset + n2 - 1):
                pixel = row_base + j % width
                start, stop = offsets[pixel], offsets[pixel + 1]
                if start == stop:
                    continue
                u0 = max(0, j - col_offset - xe + 1)
                u1 = min(n2 - 1, j - col_offset - xa)
                k = start
                while k + 4 <= stop:  # four non-zeros per pass over the buffer rows
                    v0, v1, v2, v3 = values[k], values[k + 1], values[k + 2], values[k + 3]
                    t0 = taps[channels[k], ty]
                    t1 = taps[channels[k + 1], ty]
                    t2 = taps[channels[k + 2], ty]
                    t3 = taps[channels[k + 3], ty]
                    for u in range(u0, u1 + 1):
                        dst = acc[j - col_offset - u - xa]
                        a0, a1, a2, a3 = t0[u], t1[u], t2[u], t3[u]
                        for o in range(n_out):
                            dst[o] += (v0 * a0[o] + v1 * a1[o]) + (v2 * a2[o] + v3 * a3[o])
                    k += 4
                if k + 2 <= stop:
                    v0, v1 = values[k], values[k + 1]
                    t0 = taps[channels[k], ty]
                    t1 = taps[channels[k + 1], ty]
                    for u in range(u0, u1 + 1):
                        dst = acc[j - col_offset - u - xa]
                        a0, a1 = t0[u], t1[u]
                        for o in range(n_out):
                            dst[o] += v0 * a0[o] + v1 * a1[o]
                    k += 2
                if k < stop:
                    v0 = values[k]
                    t0 = taps[channels[k], ty]
                    for u in range(u0, u1 + 1):
                        dst = acc[j - col_offset - u - xa]
                        a0 = t0[u]
                        for o in range(n_out):
                            dst[o] += v0 * a0[o]
        for o in range(n_out):
            row = out[b, o, y, xa:xe]
            if kind == NO_THRESHOLD:
                for x in range(xe - xa):
                    row[x] = acc[x, o]
            else:
                t = beta[o]
                for x in range(xe - xa):
                    row[x] = shrink(acc[x, o], t, kind)
