"""Numba CPU kernels for periodic, stride-1 convolutional dictionaries.

Canonical layout (see :mod:`mlverify.kernels.reference` for the formulas and the NumPy oracles):
codes ``(B, m, H, W)``, signals ``(B, c, H, W)``, filters ``(m, c, n1, n2)``, 1-D being
``H = n1 = 1``. Filters must not be longer than the signal on any axis (``n1 <= H``,
``n2 <= W``); the public wrappers check this.

Parallel work is split into tasks that each own a distinct block of the *output*, so no two
threads ever write the same element (no races in ``prange``). Synthesis and analysis are the same
periodic correlation kernel (:func:`correlate`) with transposed, flipped taps; its sums run in
register blocks of fused multiply-adds (:mod:`mlverify.kernels._vector`), in an order fixed by
the shapes alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np
from numba import njit, prange

from ._scalar import KIND_HARD, KIND_NONE, KIND_RELU, KIND_SOFT, shrink
from ._vector import GROUP, correlate_channel_rows, correlate_channels

#: Below this many multiply-adds a kernel call runs on the calling thread only: waking the thread
#: pool costs ~10 µs on an idle machine and tens of ms on a loaded one, far more than the work.
SERIAL_WORK = 1 << 17
#: Output rows per task of :func:`correlate`, at most: its source rows are gathered once per band.
#: Synthesis of the CNN benchmark's layer 1 (32 channels 8×8 into 1, 256², float32, 2 threads):
#: 3.1-3.3 ms in bands of 8 rows against 3.9 ms row by row (16 rows: 3.2, 32: 3.4).
BAND = 8


@contextmanager
def threads_for(work: int) -> Iterator[None]:
    """Run the parallel kernels called inside on one thread when ``work`` is small."""
    if work >= SERIAL_WORK:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def thread_count() -> int:
    """Threads the parallel kernels use (Numba's current setting)."""
    return numba.get_num_threads()


def set_thread_count(threads: int) -> None:
    """Use ``threads`` threads in the parallel kernels (e.g. 1 per worker process)."""
    numba.set_num_threads(threads)


def threading_info() -> dict[str, str]:
    """Numba's thread settings, for ``mlverify info``."""
    return {"numba threads": f"{numba.get_num_threads()} of {numba.config.NUMBA_NUM_THREADS}",
            "threading layer": str(numba.config.THREADING_LAYER)}


def epilogue(dtype, base: np.ndarray | None = None, scale: float = 1.0,
             beta: np.ndarray | None = None, kind: int = KIND_NONE) -> tuple:
    """The trailing ``(base, scale, beta, kind)`` arguments of the correlation kernels.

    The kernels store :math:`T_{\\beta_o}(\\mathrm{base} + \\mathrm{scale}\\cdot
    \\mathrm{correlation})` with ``T`` the threshold ``kind``; the defaults store the
    correlation itself (no base: a zero-size array; ``KIND_NONE``: no threshold).
    """
    dtype = np.dtype(dtype)
    if base is None:
        base = np.empty((0, 0, 0, 0), dtype)
    if beta is None:
        beta = np.zeros(1, dtype)
    return base, dtype.type(scale), beta, kind


@njit(inline="always", cache=True)
def _finish_row(row, acc, base_row, scale, t, kind):  # pragma: no cover - compiled
    """:func:`finish` with the base as a 1-D row (empty: no base term), which the loop indexes
    directly (indexing the 4-D base in the loop measured ~7 % slower on a sparse Gram pass).
    The loop comes once per threshold kind, each inlined with its kind a constant, so that LLVM
    drops the dispatch and vectorises it."""
    if kind == KIND_RELU:
        return _finish_loop(row, acc, base_row, scale, t, KIND_RELU)
    if kind == KIND_SOFT:
        return _finish_loop(row, acc, base_row, scale, t, KIND_SOFT)
    if kind == KIND_HARD:
        return _finish_loop(row, acc, base_row, scale, t, KIND_HARD)
    return _finish_loop(row, acc, base_row, scale, t, KIND_NONE)


@njit(inline="always", cache=True)
def _finish_loop(row, acc, base_row, scale, t, kind):  # pragma: no cover - compiled
    """The loop of :func:`_finish_row`."""
    bad = 0
    nonzero = 0
    with_base = base_row.size > 0
    for x in range(row.shape[0]):
        v = scale * acc[x]
        if with_base:
            v += base_row[x]
        bad += not np.isfinite(v)
        stored = shrink(v, t, kind)
        row[x] = stored
        nonzero += stored != 0
    return bad, nonzero


@njit(inline="always", cache=True)
def finish(row, acc, base, b, o, y, x0, scale, t, kind):  # pragma: no cover - compiled
    """Store ``row[x] = T_t(base[b, o, y, x0 + x] + scale·acc[x])`` (no base term when ``base``
    is empty); returns ``(bad, nonzero)``: how many ``base + scale·acc`` values are not finite,
    and how many stored values are not zero."""
    if base.size > 0:
        return _finish_row(row, acc, base[b, o, y, x0:], scale, t, kind)
    return _finish_row(row, acc, base.reshape(-1), scale, t, kind)


@njit(cache=True)
def _finish_rows(out, b, y0, y1, x0, x1, base, scale, beta, kind):  # pragma: no cover - compiled
    """:func:`finish` of every accumulated row ``out[b, o, y, x0:x1]``, ``y0 <= y < y1``, in
    place; returns the summed ``(bad, nonzero)``. (A separate function: Numba's parallel loop
    lost these counts when they were summed in a loop nested in its body.)"""
    bad = 0
    nonzero = 0
    for o in range(out.shape[1]):
        for y in range(y0, y1):
            acc = out[b, o, y, x0:x1]
            bad_row, nonzero_row = finish(acc, acc, base, b, o, y, x0, scale,
                                          beta[o % beta.shape[0]], kind)
            bad += bad_row
            nonzero += nonzero_row
    return bad, nonzero


def tiling(out: np.ndarray) -> tuple[int, int]:
    """``(block, band)`` of :func:`correlate` for the canonical output ``out``: x-blocks of
    ``block`` columns, ``band`` output rows per task.

    Whole rows in bands of up to :data:`BAND` rows while there are enough bands for every
    thread; else single rows, split into blocks (of at least 64 columns) until there are
    enough tasks.
    """
    tasks, width = out.shape[0] * out.shape[2], out.shape[3]
    wanted = 4 * numba.get_num_threads()
    if tasks == 0 or tasks >= wanted:
        return width, max(1, min(BAND, tasks // wanted))
    return max(64, -(-width // -(-wanted // tasks))), 1


@njit(parallel=True, cache=True)
def correlate(src, taps, out, row_sign, col_offset, block, band, base, scale, beta,
              kind):  # pragma: no cover - compiled
    """Periodic multi-channel correlation, the one kernel behind synthesis and analysis.

    .. math::

        out[b, o, y, x] = T_{\\beta_o}\\Big(base[b, o, y, x] + scale\\sum_i \\sum_{t_y}
            \\sum_u taps[o, i, t_y, u]\\,
            src[b, i, (y + s\\,t_y) \\bmod H, (x + u + \\delta) \\bmod W]\\Big)

    with ``s = row_sign`` and ``δ = col_offset``. Analysis :math:`D^T V` is ``taps = A``,
    ``s = +1``, ``δ = 0``; synthesis :math:`D\\Gamma` is ``taps[c, f, t_y, u] =
    A[f, c, t_y, n_2 - 1 - u]`` (transposed, flipped along x), ``s = -1``, ``δ = -(n_2 - 1)``.

    The trailing ``(base, scale, beta, kind)`` come from :func:`epilogue` (default: store the
    plain correlation); ``out`` must not be ``base``. Returns ``(bad, nonzero)``: the number of
    non-finite ``base + scale·correlation`` values and of non-zero entries of ``out``, counted in
    the store of a base, scale or threshold (``(0, -1)`` for the plain correlation: not counted,
    so plain calls pay no extra pass).

    A task owns the output rows ``out[b, :, y, x0:x1]`` of a band of ``band`` rows
    (:func:`tiling`); it first gathers the periodic source segments the band reads into a
    contiguous buffer (so the inner loops have no wrap-around, and each source row is gathered
    once per band instead of once per output row), then computes every output row from that
    buffer in register blocks of fused multiply-adds: row by row, the channels in groups of
    :data:`~mlverify.kernels._vector.GROUP` (:func:`mlverify.kernels._vector.
    correlate_channels`), or, into fewer channels than that, channel by channel, the band's
    rows in groups (:func:`mlverify.kernels._vector.correlate_channel_rows`). Both sum every
    output in the same order, so the results depend only on the shapes, never on the task
    split or the thread count.
    """
    batch, n_in, height, width = src.shape
    plain = base.size == 0 and scale == 1 and kind == KIND_NONE
    bad = 0
    nonzero = -1 if plain else 0
    n_out, n1, n2 = taps.shape[0], taps.shape[2], taps.shape[3]
    n_blocks = (width + block - 1) // block
    n_bands = (height + band - 1) // band
    n_taps = n_in * n1 * n2  # one output channel's
    flat_out = out.reshape(out.size)
    flat_taps = taps.reshape(taps.size)
    for task in prange(batch * n_bands * n_blocks):
        xb = task % n_blocks
        y0 = (task // n_blocks) % n_bands * band
        y1 = min(height, y0 + band)
        b = task // (n_blocks * n_bands)
        x0 = xb * block
        x1 = min(width, x0 + block)
        span = x1 - x0 + n2 - 1
        # the band's source rows y + row_sign·t_y, y0 <= y < y1, t_y < n1, from the lowest
        first = y0 if row_sign > 0 else y0 - (n1 - 1)
        n_rows = y1 - y0 + n1 - 1
        ext = np.empty((n_in, n_rows, span), dtype=src.dtype)
        start = (x0 + col_offset) % width
        for i in range(n_in):
            for k in range(n_rows):
                row = src[b, i, (first + k) % height]
                dst = ext[i, k]
                filled = 0
                j = start
                while filled < span:
                    seg = min(span - filled, width - j)
                    dst[filled : filled + seg] = row[j : j + seg]
                    filled += seg
                    j = 0
        flat_ext = ext.reshape(ext.size)
        if n_out >= GROUP:  # every row: the channels in register blocks
            for y in range(y0, y1):
                correlate_channels(flat_out, (b * n_out * height + y) * width + x0,
                                   height * width, n_out, x1 - x0, flat_ext, (y - first) * span,
                                   n_rows * span, row_sign * span, flat_taps, 0, n_taps, n_in,
                                   n1, n2)
        else:  # every channel: the band's rows in register blocks
            for o in range(n_out):
                correlate_channel_rows(flat_out, ((b * n_out + o) * height + y0) * width + x0,
                                       width, y1 - y0, x1 - x0, flat_ext, (y0 - first) * span,
                                       span, n_rows * span, row_sign * span, flat_taps,
                                       o * n_taps, n_in, n1, n2)
        if not plain:
            bad_rows, nonzero_rows = _finish_rows(out, b, y0, y1, x0, x1, base, scale, beta,
                                                  kind)
            bad += bad_rows
            nonzero += nonzero_rows
    return bad, nonzero


def nonzeros(array: np.ndarray, rows: int = 1) -> np.ndarray:
    """Non-zero counts of ``array`` split into ``rows`` equal rows (C order), an int64 array."""
    flat = np.ascontiguousarray(array).reshape(rows, -1)
    if flat.size < SERIAL_WORK:  # NumPy's count costs less than a kernel call here
        return np.count_nonzero(flat, axis=1).astype(np.int64)
    return row_nonzeros(flat)


@njit(parallel=True, cache=True)
def row_nonzeros(rows):  # pragma: no cover - compiled
    """Non-zero entries of each row of a 2-D array (branch-free counts in fixed chunks of
    each row: vectorised integer sums over a 1-D view, ten times faster than indexing the 2-D
    array in the loop; no races)."""
    n_rows, n = rows.shape
    chunk = 1 << 14
    n_chunks = (n + chunk - 1) // chunk
    partial = np.zeros((n_rows, max(n_chunks, 1)), dtype=np.int64)
    for task in prange(n_rows * n_chunks):
        i = task // n_chunks
        start = (task % n_chunks) * chunk
        part = rows[i, start:min(n, start + chunk)]
        count = np.int32(0)  # a chunk's count fits: 32-bit lanes vectorise twice as wide
        for j in range(part.shape[0]):
            count += np.int32(part[j] != 0)
        partial[i, task % n_chunks] = count
    return partial.sum(axis=1)


@njit(parallel=True, cache=True)
def squared_distance(a, b):  # pragma: no cover - compiled
    """:math:`\\sum_{ij} (a_{ij} - b_{ij})^2` in float64 for 2-D arrays of one shape, without a
    temporary (one partial sum per row, four interleaved accumulators: no races, no
    reassociation left to the compiler)."""
    partial = np.zeros(a.shape[0])
    for i in prange(a.shape[0]):
        s0 = s1 = s2 = s3 = 0.0
        n = a.shape[1]
        j = 0
        while j + 4 <= n:
            d0 = np.float64(a[i, j]) - np.float64(b[i, j])
            d1 = np.float64(a[i, j + 1]) - np.float64(b[i, j + 1])
            d2 = np.float64(a[i, j + 2]) - np.float64(b[i, j + 2])
            d3 = np.float64(a[i, j + 3]) - np.float64(b[i, j + 3])
            s0 += d0 * d0
            s1 += d1 * d1
            s2 += d2 * d2
            s3 += d3 * d3
            j += 4
        while j < n:
            d0 = np.float64(a[i, j]) - np.float64(b[i, j])
            s0 += d0 * d0
            j += 1
        partial[i] = (s0 + s1) + (s2 + s3)
    return partial.sum()


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
        source, target = values[b, f, y], out[b, f, y]
        for x in range(width):
            target[x] = shrink(source[x], t, kind)
