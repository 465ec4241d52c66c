r"""Periodic correlations through the DFTs of overlapping tiles (overlap-save), for many channels.

Whole-signal DFTs (:mod:`mlverify.kernels.fft`) need one spectrum per filter and frequency,
``m·c·H·(W/2+1)`` complex values: 540 MB for 64 atoms over 32 channels on 256², streamed from
memory at every call. Cut into tiles of ``T`` outputs per axis that read ``N = T + n - 1``
inputs, the filters need spectra on the ``N``-grid only (11 MB at ``N = 36``), and at every
frequency :math:`k` the mix of all tiles :math:`p` (of every batch element) is one matrix product
(BLAS ``gemm``):

.. math::

    \hat Y[k, o, p] = \sum_i \hat K[k, o, i]\,\hat X[k, i, p], \qquad
    \hat K = \overline{\hat A[o, i]} \ \text{(analysis } D^TV\text{)}, \quad
    \hat K = \hat A[i, o] \ \text{(synthesis } D\Gamma\text{)},

with :math:`\hat A` the DFTs of the filters zero-padded to the tile grid. THEORY.md §1's operators
are the periodic correlation :math:`(D^TV)[f, y] = \sum_c\sum_\tau A[f, c, \tau]\,V[c, y + \tau]`
and convolution :math:`(D\Gamma)[c, y] = \sum_f\sum_\tau A[f, c, \tau]\,\Gamma[f, y - \tau]`; on a
tile read from :math:`y_0` (analysis) or :math:`y_0 - (n - 1)` (synthesis), the circular
correlation (convolution) of length ``N`` equals the periodic one on the outputs ``[0, T)``
(``[n - 1, N)``): no term wraps around inside the tile. An axis that takes a single tile uses
``N = T = S`` and is exactly periodic. The results are the direct sums up to rounding (of order
:math:`u\log N` relative), like :mod:`mlverify.kernels.fft`.

Cost, against the direct kernel's :math:`mcn_1n_2` multiply-adds per position: transforms of
``m + c`` channels over ``(N/T)^2`` times the positions, and ``mc/2`` complex multiply-adds per
padded position in ``gemm``. Measured (2 threads, float32, 256², 64 atoms 32×5×5, analysis):
40-42 ms against 72 ms for :func:`mlverify.kernels.cpu.correlate` (float64: 64-72 against 132-138),
in passes of 30 tiles whose buffers take 24 MB (float64: 49 MB).
"""

from __future__ import annotations

import functools
import math
import threading

import numpy as np
import scipy.fft
from numba import njit, prange

from ._scalar import KIND_NONE
from .cpu import finish
from .fft import pyfftw

#: Candidate tile grids ``N`` per axis: powers of two, which FFTW transforms fastest (sizes with
#: factors of 3 measured up to 2× slower in the interleaved layout used here).
GRIDS = (8, 16, 32, 64, 128, 256, 512)
#: Tiles per pass (rounded to whole rows of tiles): the buffers kept are those of one pass, and
#: the per-frequency matrix products still have this many columns. On 256² with 32×32 tiles:
#: passes of 30 tiles, 49 MB of float64 buffers, 64-81 ms; passes of all 100, 162 MB, 63-68 ms.
BLOCK_TILES = 32

# Cost model of one call, in ns on 2 threads: per transformed value and log2 of the grid, per
# complex multiply-add of the mix (inflated by (1 + MIX_WIDTH / tiles per pass) for narrow matrix
# products), per gathered / scattered value, times a factor per precision (float32, float64); and
# per multiply-add of the direct kernel (mlverify.kernels.cpu.correlate) per precision. Measured
# on 256², 64 atoms 32×5×5, through ConvDictionary.analyze / synthesize (outputs allocated):
# direct 72-76 / 132-142 ms, tiles 40-60 / 64-76 ms (float32 / float64) over several runs.
_NS_FFT, _NS_MIX, _MIX_WIDTH, _NS_MOVE = 0.12, 0.067, 16, 1.0
_SCALE = {4: 1.7, 8: 2.5}
NS_DIRECT = {4: 0.022, 8: 0.042}


@functools.lru_cache(maxsize=64)
def tile_grids(spatial: tuple[int, int], kernel: tuple[int, int], n_in: int, n_out: int,
               batch: int, itemsize: int = 4, grids: tuple[int, ...] = GRIDS,
               block: int = BLOCK_TILES) -> tuple[tuple, float]:
    """The tiling of least modelled time and that time (ns, module cost model) for real values
    of ``itemsize`` bytes, tile grids from ``grids`` and passes of ``block`` tiles.

    Returns ``((T1, T2), (N1, N2), (count1, count2)), ns``: per axis ``count`` tiles of ``T``
    outputs reading ``N = T + n - 1`` inputs, one grid ``N`` from ``grids`` for every axis
    longer than it (square tiles: measured faster and steadier than strips), or one exactly
    periodic tile (``T = N = S``)."""
    best = None
    for grid in (*grids, None):  # one grid for every tiled axis (None: no tiles)
        axes = []
        for size, taps in zip(spatial, kernel, strict=True):
            outputs = 0 if grid is None else grid - taps + 1
            if grid is None or grid >= size or outputs < max(1, taps - 1):
                axes.append((size, size, 1))  # a tile at least as long as its halo, or none
            else:
                axes.append((outputs, grid, -(-size // outputs)))
        (t1, g1, c1), (t2, g2, c2) = axes
        tiles = batch * c1 * c2
        width = min(tiles, max(c2, block))
        values = tiles * g1 * g2
        ns = _SCALE[itemsize] * (
            _NS_FFT * values * math.log2(max(g1 * g2, 2)) * (n_in + n_out)
            + _NS_MIX * (1 + _MIX_WIDTH / width) * tiles * g1 * (g2 // 2 + 1) * n_in * n_out
            + _NS_MOVE * (values * n_in + batch * spatial[0] * spatial[1] * n_out))
        if best is None or ns < best[1]:
            best = (((t1, t2), (g1, g2), (c1, c2)), ns)
    return best


def direct_ns(spatial, kernel, n_in: int, n_out: int, batch: int, itemsize: int = 4) -> float:
    """Modelled time of the direct kernel for the same call (ns)."""
    return (NS_DIRECT[itemsize] * batch * math.prod(spatial) * n_in * n_out
            * math.prod(kernel))


class TiledCorrelation:
    r"""Analysis :math:`D^TV` (``adjoint=True``) or synthesis :math:`D\Gamma` of one filter bank
    on ``(B, ·, H, W)`` arrays through tile DFTs (module docstring), with the store of
    :func:`mlverify.kernels.cpu.correlate`: :math:`T_\beta(base + scale\cdot result)`.

    The tiles go through in passes of whole rows of tiles (about :data:`BLOCK_TILES` tiles); it
    keeps the transform plans and buffers of one pass between calls, and a lock serialises
    calls from several threads.

    Parameters
    ----------
    filters : ndarray, shape ``(m, c, n1, n2)``
        Real filters (float32 or float64: the precision of the computation).
    spatial : tuple of int
        ``(H, W)``, at least the kernel on each axis.
    batch : int
        ``B``.
    adjoint : bool
        Analysis (``c`` → ``m`` channels) or synthesis (``m`` → ``c``).
    workers : int
        Transform threads (the matrix products use BLAS's threads).
    grids, block : optional
        Candidate tile grids and tiles per pass (default :data:`GRIDS`, :data:`BLOCK_TILES`).
    """

    def __init__(self, filters: np.ndarray, spatial: tuple[int, int], batch: int,
                 adjoint: bool, workers: int = 1, grids: tuple[int, ...] = GRIDS,
                 block: int = BLOCK_TILES) -> None:
        self.dtype = filters.dtype
        cdtype = np.result_type(self.dtype, np.complex64)
        m, c, *kernel = filters.shape
        self.n_in, self.n_out = (c, m) if adjoint else (m, c)
        (self.outputs, self.grid, self.counts), _ = tile_grids(
            tuple(spatial), tuple(kernel), self.n_in, self.n_out, batch, self.dtype.itemsize,
            tuple(grids), block)
        # tile reads start at y0 (analysis) or y0 - (n - 1) (synthesis) and keep the outputs
        # from 0 (n - 1); a single, exactly periodic tile needs neither
        self.shift = tuple(0 if adjoint or count == 1 else 1 - n
                           for n, count in zip(kernel, self.counts, strict=True))
        self.crop = tuple(-s for s in self.shift)
        self.rows = batch * self.counts[0]  # rows of tiles, (batch element, tile row)
        self.rows_per_pass = max(1, min(self.rows, block // self.counts[1]))
        width = self.rows_per_pass * self.counts[1]
        n1, n2 = self.grid
        spectra = np.fft.rfft2(filters.astype(np.float64), s=self.grid)  # (m, c, N1, N2/2+1)
        spectra = np.conj(spectra) if adjoint else np.swapaxes(spectra, 0, 1)
        # (F, n_out, n_in): one matrix per frequency
        self.kernel = np.ascontiguousarray(
            np.moveaxis(spectra.reshape(self.n_out, self.n_in, -1), -1, 0).astype(cdtype))
        empty = np.empty if pyfftw is None else pyfftw.empty_aligned
        self.real_in = empty((self.n_in, n1, n2, width), dtype=self.dtype)
        self.spec_in = empty((self.n_in, n1, n2 // 2 + 1, width), dtype=cdtype)
        self.spec_out = empty((self.n_out, n1, n2 // 2 + 1, width), dtype=cdtype)
        self.real_out = empty((self.n_out, n1, n2, width), dtype=self.dtype)
        self.workers = workers
        if pyfftw is not None:
            self._forward = pyfftw.FFTW(self.real_in, self.spec_in, axes=(1, 2),
                                        threads=workers, flags=("FFTW_MEASURE",))
            self._backward = pyfftw.FFTW(self.spec_out, self.real_out, axes=(1, 2),
                                         direction="FFTW_BACKWARD", threads=workers,
                                         flags=("FFTW_MEASURE", "FFTW_DESTROY_INPUT"))
        self._lock = threading.Lock()

    def _transforms(self, width: int) -> None:
        """``real_in`` → ``spec_in``; mix; ``spec_out`` → ``real_out`` (the first ``width``
        tiles are those of the pass)."""
        if pyfftw is not None:
            self._forward()
        else:  # pragma: no cover - pyfftw is a dependency
            self.spec_in[...] = scipy.fft.rfftn(self.real_in, axes=(1, 2), workers=self.workers)
        nfreq = self.kernel.shape[0]
        mix_in = self.spec_in.reshape(self.n_in, nfreq, -1)[..., :width]
        mix_out = self.spec_out.reshape(self.n_out, nfreq, -1)[..., :width]
        np.matmul(self.kernel, mix_in.transpose(1, 0, 2), out=mix_out.transpose(1, 0, 2))
        if pyfftw is not None:
            self._backward()
        else:  # pragma: no cover
            self.real_out[...] = scipy.fft.irfftn(self.spec_out, s=self.grid, axes=(1, 2),
                                                  workers=self.workers)

    def __call__(self, src: np.ndarray, out: np.ndarray, base: np.ndarray, scale, beta: np.ndarray,
                 kind: int) -> tuple[int, int]:
        """``out`` ← :math:`T_\\beta(base + scale\\cdot K(src))` for canonical ``src (B, n_in,
        H, W)`` and ``out (B, n_out, H, W)``; the trailing arguments as from
        :func:`mlverify.kernels.cpu.epilogue`. Returns ``(bad, nonzero)`` as
        :func:`mlverify.kernels.cpu.correlate` does."""
        bad, nonzero = 0, 0
        with self._lock:
            for first in range(0, self.rows, self.rows_per_pass):
                rows = min(self.rows_per_pass, self.rows - first)
                gather_tiles(src, self.real_in, first, rows, *self.outputs, *self.shift,
                             *self.counts)
                self._transforms(rows * self.counts[1])
                bad_pass, nonzero_pass = scatter_tiles(
                    self.real_out, out, first, rows, *self.outputs, *self.crop, *self.counts,
                    base, scale, beta, kind)
                bad += bad_pass
                nonzero += nonzero_pass
        return bad, nonzero if nonzero >= 0 else -1


@njit(parallel=True, cache=True)
def gather_tiles(src, dst, first, rows, t1, t2, s1, s2, count1, count2):  # pragma: no cover
    """``dst[i, r, j, p] = src[b, i, (q1·t1 + s1 + r) mod H, (q2·t2 + s2 + j) mod W]`` for the
    tiles of the tile rows ``first + k = b·count1 + q1``, ``k < rows``, tile ``p = k·count2 +
    q2`` of the pass: the periodic inputs of every tile, the tiles on the last (contiguous)
    axis. Tasks are (channel, row of the tile grid)."""
    height, width = src.shape[2], src.shape[3]
    n_in, n1, n2 = dst.shape[0], dst.shape[1], dst.shape[2]
    for task in prange(n_in * n1):
        i = task // n1
        r = task % n1
        for k in range(rows):
            b = (first + k) // count1
            q1 = (first + k) % count1
            line = src[b, i, (q1 * t1 + s1 + r) % height]
            for q2 in range(count2):
                p = k * count2 + q2
                x = (q2 * t2 + s2) % width
                for j in range(n2):
                    dst[i, r, j, p] = line[x]
                    x += 1
                    if x == width:
                        x = 0


@njit(parallel=True, cache=True)
def scatter_tiles(src, out, first, rows, t1, t2, c1, c2, count1, count2, base, scale, beta,
                  kind):  # pragma: no cover - compiled
    """``out[b, o, y, x]`` ← the tile output ``src[o, c1 + y - q1·t1, c2 + x - q2·t2, p]`` for
    the positions of the tile rows of the pass (as in :func:`gather_tiles`), through
    :func:`mlverify.kernels.cpu.finish` (base, scale, threshold, counts) unless the store is
    plain. Tasks are (tile row, output channel)."""
    height, width = out.shape[2], out.shape[3]
    n_out, n1, n2, tiles = src.shape
    flat = src.reshape(-1)
    plain = base.size == 0 and scale == 1 and kind == KIND_NONE
    bad = 0
    nonzero = -1 if plain else 0
    for task in prange(rows * n_out):
        o = task % n_out
        k = task // n_out
        b = (first + k) // count1
        q1 = (first + k) % count1
        line = np.empty(count2 * t2, src.dtype)  # one output row, gathered from the tiles
        for local in range(min(t1, height - q1 * t1)):
            y = q1 * t1 + local
            start = ((o * n1 + c1 + local) * n2 + c2) * tiles + k * count2
            for j in range(t2):  # along the tiles' contiguous axis
                at = start + j * tiles
                for q2 in range(count2):
                    line[q2 * t2 + j] = flat[at + q2]
            row = out[b, o, y]
            if plain:
                row[:] = line[:width]
            else:
                bad_row, nonzero_row = finish(row, line, base, b, o, y, 0, scale,
                                              beta[o % beta.shape[0]], kind)
                bad += bad_row
                nonzero += nonzero_row
    return bad, nonzero
