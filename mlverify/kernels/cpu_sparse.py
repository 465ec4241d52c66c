"""Numba CPU kernels for periodic correlations of a *sparse* input (the CNN forward pass).

A ReLU layer's output is sparse: most of its entries are exactly zero. The kernels here touch
only the non-zeros of the input and are vectorised over the **output channels**:

1. :func:`pixel_nonzeros` compresses the input ``(B, n_in, H, W)`` pixel by pixel (CSR over the
   ``B·H·W`` pixels: for each pixel the list of its non-zero channels and values);
2. :func:`correlate_sparse` computes the same periodic correlation as
   :func:`mlverify.kernels.cpu.correlate`, with the same fused store (``T(base + scale·…)``,
   see :func:`mlverify.kernels.cpu.epilogue`). A task owns a block of one output row. Each
   output pixel's sums over all the output channels are held in vector registers while the
   non-zeros of its window add their taps (:func:`mlverify.kernels._vector.window_sums`), and
   stored channels-last in a ``(block, n_out)`` buffer of up to :data:`BLOCK_BYTES`. The buffer
   is transposed tile by tile into channel rows when the task stores it into the
   ``(n_out, H, W)`` layout, so no two threads write the same element.

Synthesis of sparse codes, analysis of a sparse signal and the Gram operator :math:`D^TD` of
sparse codes are all this correlation with different taps and offsets (see
:mod:`mlverify.model.dictionary`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from ._memory import aligned_empty
from ._vector import VECTOR_BYTES, add_patches, window_sums
from .cpu import finish

#: Bytes of a task's channels-last sums (in the L2 cache until they are transposed into rows).
BLOCK_BYTES = 64 * 1024
#: Bands of source rows per batch element in :func:`scatter_synthesis` (its parallel tasks).
SCATTER_BANDS = 16


def block_width(out: np.ndarray) -> int:
    """Columns per task of :func:`correlate_sparse` for the output ``out (B, n_out, H, W)``.

    As many as fit a :data:`BLOCK_BYTES` buffer of sums (the output channels padded to whole
    vectors, as :func:`sparse_taps` pads them), fewer when that leaves a thread idle.
    """
    batch, n_out, height, width = out.shape
    block = max(8, BLOCK_BYTES // (padded_channels(n_out, out.dtype) * out.itemsize))
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


def sparse_taps(taps: np.ndarray) -> np.ndarray:
    """Taps ``(n_in, n1, n2, n_out)`` in the layout :func:`correlate_sparse` takes: C-contiguous
    from a 64-byte boundary, the output channels padded with zeros to a whole number of vectors
    (:func:`padded_channels`), so that every tap vector is one cache line (callers that correlate
    repeatedly keep this copy)."""
    n_in, n1, n2, n_out = taps.shape
    width = padded_channels(n_out, taps.dtype)
    padded = aligned_empty((n_in, n1, n2, width), taps.dtype)
    padded[..., :n_out] = taps
    padded[..., n_out:] = 0.0
    return padded


def padded_channels(n_out: int, dtype) -> int:
    """``n_out`` rounded up to whole vectors of :func:`mlverify.kernels._vector.window_sums`
    (``64 / itemsize`` values of ``dtype``)."""
    lanes = VECTOR_BYTES // np.dtype(dtype).itemsize
    return -(-n_out // lanes) * lanes


@njit(parallel=True, cache=True)
def correlate_sparse(offsets, channels, values, taps, out, row_sign, row_offset, col_offset,
                     block, base, scale, beta, kind):  # pragma: no cover - compiled
    """Periodic multi-channel correlation of a compressed sparse input, optionally thresholded.

    .. math::

        out[b, o, y, x] = T_{\\beta_o}\\Big(base[b, o, y, x] + scale\\sum_i \\sum_{t_y}
            \\sum_u taps[i, t_y, u, o]\\,
            src[b, i, (y + \\rho + s\\,t_y) \\bmod H, (x + u + \\delta) \\bmod W]\\Big)

    with ``src`` given by :func:`pixel_nonzeros` (``offsets``, ``channels``, ``values``) and the
    taps in the layout of :func:`sparse_taps` (``o < n_out = out.shape[1]``, the rest of the
    last axis zeros), ``s = row_sign``, ``ρ = row_offset``, ``δ = col_offset``; the trailing
    ``(base, scale, beta, kind)`` come from :func:`mlverify.kernels.cpu.epilogue` (default: the
    plain correlation). ``out (B, n_out, H, W)`` may be ``base``; the tasks own blocks of
    ``block`` columns of one output row. Returns ``(bad, nonzero)``: the number of non-finite
    ``base + scale·correlation`` values and of non-zero entries of ``out``.

    Pixel by pixel: the ``n1 × n2`` source pixels of an output pixel's window, each with the
    offset of its taps, go to :func:`mlverify.kernels._vector.window_sums`, which holds all the
    output channels in vector registers while every non-zero of the window adds its tap vector
    (one load and one fused multiply-add per vector). The task's sums, channels-last, are then
    moved tile by tile into channel rows (:func:`_transpose`), which the threshold and store
    read contiguously.
    """
    batch, n_out, height, width = out.shape
    n1, n2, n_pad = taps.shape[1], taps.shape[2], taps.shape[3]
    flat = taps.reshape(taps.size)
    bad = 0
    nonzero = 0
    n_blocks = (width + block - 1) // block
    for task in prange(batch * height * n_blocks):
        xb = task % n_blocks
        y = (task // n_blocks) % height
        b = task // (n_blocks * height)
        xa = xb * block
        xe = min(width, xa + block)
        acc = np.empty((xe - xa) * n_pad, dtype=out.dtype)
        rows = np.empty((n_out, xe - xa), dtype=out.dtype)
        pixels = np.empty(n1 * n2, dtype=np.int64)  # the window's source pixels, (t_y, u)
        shifts = np.empty(n1 * n2, dtype=np.int64)  # and the offsets of their taps
        source_rows = np.empty(n1, dtype=np.int64)  # first pixel of each source row
        for ty in range(n1):
            source_rows[ty] = (b * height + (y + row_offset + row_sign * ty) % height) * width
            for u in range(n2):
                shifts[ty * n2 + u] = (ty * n2 + u) * n_pad
        for x in range(xa, xe):
            for u in range(n2):
                column = (x + u + col_offset) % width
                for ty in range(n1):
                    pixels[ty * n2 + u] = source_rows[ty] + column
            window_sums(acc, (x - xa) * n_pad, n_pad, flat, channels, n1 * n2 * n_pad, values,
                        offsets, pixels, shifts, n1 * n2)
        _transpose(acc, n_pad, rows, xe - xa)
        for o in range(n_out):
            bad_row, nonzero_row = finish(out[b, o, y, xa:xe], rows[o], base, b, o, y,
                                          xa, scale, beta[o % beta.shape[0]], kind)
            bad += bad_row
            nonzero += nonzero_row
    return bad, nonzero


#: Side of the square tiles in which :func:`_transpose` moves the sums (a tile of each layout
#: stays in L1 while it is moved).
TILE = 16


@njit(inline="always", cache=True)
def _transpose(acc, stride, rows, nx):  # pragma: no cover - compiled
    """``rows[o, x] = acc[x·stride + o]`` for ``x < nx``, ``o < rows.shape[0]``, tile by
    tile: the channels-last sums of :func:`correlate_sparse` as channel rows, so that its
    store reads each row contiguously (read in place with a stride, every value on its own
    cache line of a buffer larger than L1, the store took ~30 % of the kernel on the CNN
    benchmark's layer 2; transposed, the kernel took 33.6 / 19.4 ms against 35.3 / 23.3 ms on
    1 / 2 threads, best of 12 rounds alternating in one process)."""
    n_out = rows.shape[0]
    for x0 in range(0, nx, TILE):
        x1 = min(nx, x0 + TILE)
        for o0 in range(0, n_out, TILE):
            o1 = min(n_out, o0 + TILE)
            for x in range(x0, x1):
                for o in range(o0, o1):
                    rows[o, x] = acc[x * stride + o]


def scatter_band(height: int) -> int:
    """Source rows per task of :func:`scatter_synthesis`: :data:`SCATTER_BANDS` bands per batch
    element. The bands fix the order in which the fold sums the buffers, so they depend on the
    grid only, never on the thread count (the results do not either)."""
    return max(1, -(-height // SCATTER_BANDS))


@njit(parallel=True, cache=True)
def scatter_synthesis(offsets, channels, values, filters, out, band):  # pragma: no cover - compiled
    """Periodic synthesis :math:`D\\Gamma` of compressed codes by scattering whole atoms:

    .. math::

        out[b, c, (y + t_y) \\bmod H, (x + t_x) \\bmod W] \\mathrel{+}=
            \\sum_{(f, v)\\,\\in\\,\\Gamma[b, :, y, x]} v\\, A[f, c, t_y, t_x],

    with the codes given by :func:`pixel_nonzeros` (``offsets``, ``channels``, ``values``) and
    the atoms ``filters`` channels-last, :math:`A[f, c, t_y, t_x]` at ``filters[f, t_y, t_x,
    c]`` (shape ``(m, n1, n2, c)``, C-contiguous); ``out (B, c, H, W)`` is overwritten. For
    dictionaries with few output channels and large atoms (an effective dictionary
    :math:`D_1 D_2`, one channel, 12×12), where :func:`correlate_sparse`, vectorised over the
    output channels, has nothing to vectorise, and for sparse codes into many channels.

    Each pixel's patch :math:`\\sum v A_f` goes into the task's channels-last buffer, each of
    its ``n1`` rows one contiguous run of ``n2·c`` values there, added in registers block by
    block while the pixel's non-zeros add their atoms' tap vectors
    (:func:`mlverify.kernels._vector.add_patches`: the buffer is read and written once per
    pixel). A task owns ``band`` source rows of one batch element and a private buffer of
    ``band + n1 - 1`` rows of ``(W + n2 - 1)·c`` values; a second pass sums, per output row,
    the buffer rows that land on it (periodically, the overhangs folded back) and stores it
    channel by channel, so no two threads write the same element.
    """
    batch, n_c, height, width = out.shape
    n1, n2 = filters.shape[1], filters.shape[2]
    size = n1 * n2 * n_c
    run = n2 * n_c  # one patch row
    taps = filters.reshape(filters.size)
    n_bands = (height + band - 1) // band
    rows = band + n1 - 1
    cols = (width + n2 - 1) * n_c
    buffers = np.zeros((batch * n_bands, rows, cols), dtype=out.dtype)
    flat = buffers.reshape(buffers.size)
    for task in prange(batch * n_bands):
        b = task // n_bands
        r0 = (task % n_bands) * band
        origin = task * rows * cols
        for y in range(r0, min(height, r0 + band)):
            for x in range(width):
                p = (b * height + y) * width + x
                if offsets[p] < offsets[p + 1]:
                    add_patches(flat, origin + (y - r0) * cols + x * n_c, cols, n1, run, taps,
                                size, channels, values, offsets[p], offsets[p + 1])
    inside = width * n_c
    for task in prange(batch * height):
        b = task // height
        y = task % height
        total = np.zeros(inside, dtype=out.dtype)
        for t in range(n_bands):
            i = (y - t * band) % height
            while i < rows:  # every row of band t's buffer that lands on output row y
                source = buffers[b * n_bands + t, i]
                for q in range(inside):
                    total[q] += source[q]
                for q in range(inside, cols):  # the overhang, which may wrap more than once
                    total[q % inside] += source[q]
                i += height
        for c in range(n_c):
            line = out[b, c, y]
            for x in range(width):
                line[x] = total[x * n_c + c]
    return out
