r"""Safe screening of a convolutional layer's proximal-gradient step across iterations.

An iterative pursuit repeats, with the same layer, step :math:`\eta` and threshold :math:`\beta`,

.. math::

    \Gamma_{k+1} = T_\beta\big(B_k - \eta\,D^T(D\Gamma_k - V_k)\big)

(ISTA; every layer of ML-ISTA and ML-FISTA, THEORY.md §3, with :math:`B_k` the iterate or the
extrapolated point). When the codes are sparse, most outputs are zero at every iteration, and
the residual :math:`R_k = D\Gamma_k - V_k` moves little between two. :class:`ScreenedStep`
keeps, per position, how far the correlations :math:`(D^TR)[f, p]` may have moved (the
Cauchy–Schwarz bounds of the residual's changes over the position's window, summed) and, per
position and atom, how far that may go before the entry, zero when last computed (its rounding
bound included), could survive the threshold. It skips every atom, and every position, that
cannot (the safe-screening idea of El Ghaoui, Viallon, Rabbani, *Pacific J. Optim.* 2012,
applied here between iterations rather than from a duality gap); see
:mod:`mlverify.kernels.screening` for the bounds. Only the other atoms of the other positions
are computed: by dot products when few are (:data:`DOT_LIMIT`), else all atoms of those
positions by matrix products (BLAS). The output is the unscreened step's up to rounding: a
screened entry is zero in exact arithmetic.

Which is cheaper, this or the plain step (:meth:`mlverify.ConvDictionary.proximal_gradient_step`,
its own sparse or dense route), is decided at every call from the number of active positions;
the first call, which has no headrooms yet, computes every position whose window is not zero and
is taken while it costs at most :data:`REFRESH_ALLOWANCE` times the plain step (it pays for the
screened iterations after it). After a plain step the headrooms are stale: the next
:data:`COOLDOWN` calls take the plain step directly.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
from threadpoolctl import ThreadpoolController

from ..kernels import cpu, cpu_sparse, fft, screening
from ..kernels._memory import aligned_copy, aligned_empty
from ..kernels._scalar import KINDS
from .dictionary import ConvDictionary

#: Modelled ns per multiply-add of the window products (BLAS ``gemm``; float32, float64) and per
#: gathered window value. Measured on 2 threads, 1024 windows of 800 values times 64 atoms:
#: 0.76 ms (float32, 69 GMAC/s) and 1.86 ms (float64, 28 GMAC/s); gathering 24 k windows of
#: 800 float32 values 2.2-2.5 ms (before the gathers were ``memcpy``: 1.5 ms for 23 k windows on
#: one core now, so the model overstates them).
NS_GEMM = {4: 0.0145, 8: 0.0355}
NS_GATHER = {4: 0.12, 8: 0.24}
#: A screened call computes only each active position's needed atoms (those whose base is
#: non-zero or whose interval no longer rules out a non-zero output; two positions at a time,
#: each computing the atoms either needs), by dot products in blocks of two windows by four
#: atoms, when the last call computed at most this fraction of its active positions' atoms;
#: otherwise all of them, by matrix products (BLAS, register-blocked). Measured on the CNN
#: benchmark's layer 2 (24 k active positions in chunks of 1024, one thread of an Intel Xeon
#: at 2.8 GHz), the same calls both ways with more or fewer levels made unknown, dots against
#: gathered windows and matrix products: float32 44.1 against 52.2 ms at 55 % computed, 51.7
#: against 53.4 at 65 %, 54.0 against 52.0 at 73 %; float64 60.7 against 101.5 at 41 %, 76.7
#: against 89.6 at 62 %, 74.8 against 94.2 at 79 %, 101.1 against 93.3 at 85 %.
DOT_LIMIT = {4: 0.65, 8: 0.8}
#: Windows per matrix product, at most.
WINDOW_BLOCK = 1024
#: The first screened call, which computes every position with a non-zero window, is taken
#: while its modelled time is at most this multiple of the plain step's.
REFRESH_ALLOWANCE = 2.0
#: Calls that take the plain step after one did (the headrooms are then stale).
COOLDOWN = 8
#: Screening needs ``c·n1·n2 · m`` (the multiply-adds of one window) at least this large: below,
#: the matrix products are too small for BLAS to run them efficiently.
MIN_WINDOW_WORK = 2048


class ScreenedStep:
    r"""Screened proximal-gradient steps :math:`T_\beta(B - \eta D^T(D\Gamma - V))` of one
    dictionary on one grid, with the positions' drifts and headrooms kept between calls (module
    docstring).

    Parameters
    ----------
    layer : ConvDictionary
        :math:`D`; the float64 norms of its atoms bound the correlations' changes.
    spatial : tuple of int
        The grid ``S`` of the codes (1-D or 2-D).
    batch : int
        Independent problems per call (leading axis of the canonical arrays).
    """

    def __init__(self, layer: ConvDictionary, spatial: tuple[int, ...], batch: int = 1) -> None:
        filters = layer._f4  # (m, c, n1, n2), 1-D as n1 = 1
        m, c, n1, n2 = filters.shape
        height, width = (1, *spatial) if len(spatial) == 1 else spatial
        dtype = layer.dtype
        self.layer = layer
        self.window = c * n1 * n2
        self.previous = np.zeros((batch, c, height, width), dtype)
        self.padded = aligned_empty((batch, height + n1 - 1, (width + n2 - 1) * c), dtype)
        self.change = np.empty((batch, height, width))
        self.drift = np.empty_like(self.change)
        self.headroom = np.empty_like(self.change)
        self.levels = np.empty((batch * height * width, m))  # per position and atom
        self.energy = np.empty_like(self.change)
        self.active = np.empty((batch, height, width), dtype=np.bool_)
        # (m, K), one row per atom, K in the order (t_y, t_x, i) of the windows (the dots read
        # the rows; the matrix products take the transpose, as fast as a (K, m) copy)
        self.weights = aligned_copy(filters.transpose(0, 2, 3, 1).reshape(m, self.window))
        unit = float(np.finfo(dtype).eps) / 2
        self.rounding = self.window * unit / (1 - self.window * unit) * (1 + 1e-6)  # γ_K
        self.norms = layer.atom_norms() * (1 + 1e-12)
        self.key: tuple | None = None  # (step, beta, kind) of the headrooms; None: none
        self.cooldown = 0
        self.needed = 1.0  # fraction of the active positions' atoms the last call computed
        self.distance: float | None = None  # ‖out - codes‖₂ of the last call, if screened
        #: ``(offsets, channels, values)`` of the last screened output (``pixel_nonzeros``)
        self.nonzeros: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._returned: np.ndarray | None = None  # the array of the last screened call
        self._syntheses: list[tuple[ConvDictionary, np.ndarray]] = []  # of _returned
        self._counts = np.zeros(batch * height * width, dtype=np.int64)
        self._scratch: list[tuple[np.ndarray, np.ndarray]] = []  # windows, products per worker
        self._collected = (np.empty(0, np.int32), np.empty(0, layer.dtype))  # atoms, values

    @classmethod
    def fits(cls, layer: ConvDictionary) -> bool:
        """Whether screening can pay for ``layer`` (see :data:`MIN_WINDOW_WORK`)."""
        work = layer.n_atoms * layer.n_channels * int(np.prod(layer.kernel_size))
        return work >= MIN_WINDOW_WORK

    def __call__(self, codes: np.ndarray, target: np.ndarray, step: float, beta: float,
                 kind: str, synthesized: np.ndarray | None = None,
                 out: np.ndarray | None = None) -> np.ndarray | None:
        r""":math:`T_\beta(\Gamma - \eta D^T(D\Gamma - V))` as
        :meth:`mlverify.ConvDictionary.proximal_gradient_step` (same arguments and result:
        ``None`` when a value before the threshold is not finite), screened when that is
        modelled cheaper.

        ``out`` (C-contiguous, the codes' shape and dtype, sharing no memory with the inputs)
        receives a screened result; by default it is a new array, and the plain step always
        returns one. An iterating caller passes a buffer it no longer holds: a new array of
        this size at every call costs its page faults again (measured on the CNN benchmark's
        layer 2, 16.8 MB: ML-ISTA iterations 5-10 % slower). After a screened call,
        :attr:`distance` is :math:`\|\Gamma^+ - \Gamma\|_2` (float64, summed by the kernels
        over the positions they wrote; ``None`` after a plain step): the fixed-point residual of
        ISTA without another pass over the codes.

        The kernels read the codes compressed (:func:`mlverify.kernels.cpu_sparse.pixel_nonzeros`)
        and collect the output's non-zeros in :attr:`nonzeros`; when ``codes`` is the array the
        last screened call returned (the caller has not changed it since), those are reused and
        the codes are not compressed again."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
        layer = self.layer
        batch, spatial, codes4 = layer._canonical("codes", codes, layer.n_atoms, finite=False)
        target4 = layer._canonical("target", target, layer.n_channels, finite=False)[2]
        if codes4.shape[:1] + codes4.shape[2:] != self.active.shape:
            raise ValueError(f"codes of shape {codes.shape} do not match the screened grid "
                             f"{self.active.shape}")
        # the codes compressed: the last output's collected non-zeros when they are its own
        compressed = self.nonzeros if codes is self._returned else None
        self.distance = self.nonzeros = self._returned = None
        self._syntheses.clear()
        key = (float(step), float(beta), kind)
        if key != self.key:
            self.key = None  # headrooms of another step, or none
        if self.cooldown:
            self.cooldown -= 1
            return layer.proximal_gradient_step(codes, target, step, beta, kind,
                                                synthesized=synthesized)
        if compressed is None:
            with cpu.threads_for(codes4.size):
                compressed = cpu_sparse.pixel_nonzeros(codes4)
        if synthesized is None:
            synthesized4 = layer._synthesize_cpu(codes4, "auto", compressed)
        else:
            synthesized4 = layer._canonical("synthesized", synthesized, layer.n_channels,
                                            finite=False)[2]
        refresh = self.key is None
        if refresh:
            self.headroom.fill(-np.inf)  # unknown: never screens
            self.levels.fill(-np.inf)
            self.drift.fill(0.0)
        itemsize = layer.dtype.itemsize
        scale = layer.dtype.type(-step)
        betas = np.full(layer.n_atoms, beta, dtype=layer.dtype)
        lines = screening.headroom_lines(scale, betas, self.spreads(scale), kind == "relu")
        given = out
        if out is None:
            out = np.empty(codes4.shape, layer.dtype)
        else:
            out = self._buffer(out, codes, target, synthesized).reshape(codes4.shape)
        with cpu.threads_for(codes4.size):
            target_nonzeros = screening.residual_windows(synthesized4, target4, self.previous,
                                                         self.padded, self.change, self.energy)
            bad, squares, kept = screening.screen(
                *compressed, self.headroom, self.drift, self.change, self.energy, lines, betas,
                KINDS[kind], out, self.active)
        codes_nonzeros = int(compressed[0][-1])
        positions = np.flatnonzero(self.active)
        modelled = positions.size * self.window * (NS_GEMM[itemsize] * layer.n_atoms
                                                  + NS_GATHER[itemsize])
        route = layer._step_route(codes4, target4, synthesized is not None,
                                  (codes_nonzeros, target_nonzeros))
        allowance = 1.0 if self.key is not None else REFRESH_ALLOWANCE
        if modelled > allowance * route.ns:
            self.cooldown = COOLDOWN
            self.key = None
            return layer.proximal_gradient_step(codes, target, step, beta, kind,
                                                synthesized=synthesized)
        self.key = key
        active_bad, active_squares, nonzeros = self._compute_active(
            positions, compressed, lines, scale, betas, KINDS[kind], out, refresh)
        if bad + active_bad:
            self.key = None
            return None
        self.distance = float(np.sqrt(squares + active_squares))
        self.nonzeros = None if kept else nonzeros  # kept: non-zeros the store did not collect
        self._returned = (given if given is not None
                          else out.reshape(batch + (layer.n_atoms,) + spatial))
        return self._returned

    def synthesis(self, codes: np.ndarray,
                  dictionary: ConvDictionary | None = None) -> np.ndarray | None:
        r""":math:`D\Gamma` of ``codes`` from the non-zeros :attr:`nonzeros` that the last
        screened call collected in its store, when ``codes`` is the array that call returned
        (the caller has not changed it since): the same kernel and result as
        :meth:`mlverify.ConvDictionary.synthesize`, without its passes over the codes to check,
        count and compress them. ``None`` for any other array or after a plain step.

        ``dictionary``: synthesise by another dictionary of the same atoms instead, by
        scattering whole atoms (:func:`mlverify.kernels.cpu_sparse.scatter_synthesis`); for an
        effective dictionary :math:`D_1\cdots D_L` (few output channels, large atoms).

        Each synthesis is computed once per screened call: asked again (an objective recorded
        between two iterations, then the next iteration), the same array is returned, so the
        caller must not modify it.
        """
        if self.nonzeros is None or codes is not self._returned:
            return None
        layer = self.layer if dictionary is None else dictionary
        for made_by, made in self._syntheses:
            if made_by is layer:
                return made
        batch, spatial, codes4 = self.layer._canonical("codes", codes, self.layer.n_atoms,
                                                       finite=False)
        if dictionary is None:
            out = layer._synthesize_cpu(codes4, "auto", self.nonzeros)
        else:
            if dictionary.n_atoms != self.layer.n_atoms or dictionary.dtype != self.layer.dtype:
                raise ValueError(f"dictionary must have {self.layer.n_atoms} atoms of dtype "
                                 f"{self.layer.dtype}, got {dictionary!r}")
            out = dictionary._scatter_synthesize(self.nonzeros, codes4.shape)
        out = out.reshape(batch + (layer.n_channels,) + spatial)
        self._syntheses.append((layer, out))
        return out

    def _buffer(self, out, *inputs) -> np.ndarray:
        """``out`` checked as the output buffer of a call on ``inputs`` (the first: codes)."""
        codes = inputs[0]
        if (not isinstance(out, np.ndarray) or out.shape != np.shape(codes)
                or out.dtype != self.layer.dtype or not out.flags.c_contiguous):
            raise ValueError(f"out must be a C-contiguous {self.layer.dtype} array of shape "
                             f"{np.shape(codes)}")
        if any(np.may_share_memory(out, array) for array in inputs if array is not None):
            raise ValueError("out must not share memory with the codes, target or synthesis")
        return out

    def spreads(self, scale) -> np.ndarray:
        r""":math:`|s|\,\|a_f\|_2` per atom, rounded up: how far a change of the residual's
        window of norm 1 can move each scaled correlation :math:`s\,q` (Cauchy–Schwarz)."""
        return abs(float(scale)) * self.norms * (1 + 1e-12)

    def _compute_active(self, positions: np.ndarray, compressed: tuple, lines: np.ndarray,
                        scale, betas: np.ndarray, kind: int, out: np.ndarray,
                        refresh: bool) -> tuple[int, float, tuple]:
        """Outputs, levels and headrooms of the active ``positions`` (sorted), in chunks of
        up to :data:`WINDOW_BLOCK` consecutive positions: each worker takes the next free chunk
        (balanced when a core is slowed, by another process say) and stores it
        (:func:`mlverify.kernels.screening.store_active`), either computing only each
        position's needed atoms by dot products (:data:`DOT_LIMIT`), or all of them by
        one matrix product of the chunk's gathered windows on a single BLAS thread (no BLAS
        thread pool competing with the kernels'), as always on a ``refresh`` (no level known).
        Sets :attr:`needed`. Returns the count of non-finite values before the threshold,
        :math:`\\sum (out - codes)^2` over the positions and the non-zeros of ``out`` there in
        the layout of :func:`mlverify.kernels.cpu_sparse.pixel_nonzeros`; both are reduced in
        chunk order, so they do not depend on which worker took which chunk."""
        layer = self.layer
        counts = self._counts
        counts.fill(0)
        height, width = self.active.shape[1:]
        threads = max(1, min(cpu.thread_count(), -(-positions.size // WINDOW_BLOCK)))
        block = max(1, min(WINDOW_BLOCK, -(-positions.size // threads)))
        starts = np.arange(0, positions.size, block)
        bad, stored = np.zeros(starts.size, np.int64), np.zeros(starts.size, np.int64)
        wanted = np.zeros(starts.size, np.int64)
        squares = np.zeros(starts.size)
        while len(self._scratch) < threads:  # per worker, kept between calls
            self._scratch.append((np.empty((WINDOW_BLOCK, self.window), layer.dtype),
                                  np.empty((WINDOW_BLOCK, layer.n_atoms), layer.dtype)))
        atoms, values = self._collection(positions.size * layer.n_atoms)
        claim = itertools.count()  # next() on it is atomic: each chunk once
        dots = not refresh and self.needed <= DOT_LIMIT[layer.dtype.itemsize]
        state = (self.headroom.reshape(-1), self.levels, self.drift.reshape(-1),
                 self.energy.reshape(-1))

        def work(worker: int) -> None:
            windows, products = self._scratch[worker]
            while (c := next(claim)) < starts.size:
                chunk = positions[starts[c]:starts[c] + block]
                rows, correlations = windows[:chunk.size], products[:chunk.size]
                if not dots:
                    screening.gather_windows(self.padded, chunk, height, width,
                                             layer.n_channels, rows)
                    with np.errstate(all="ignore"):  # non-finite values: counted in the store
                        np.matmul(rows, self.weights.T, out=correlations)
                region = starts[c] * layer.n_atoms  # room for every atom of the chunk
                bad[c], squares[c], stored[c], wanted[c] = screening.store_active(
                    correlations, chunk, compressed, scale, betas, kind, out, lines, state,
                    self.rounding, (counts, atoms[region:], values[region:]),
                    (self.padded, self.weights, layer.n_channels), dots)

        if positions.size:
            with _blas_controller().limit(limits=1, user_api="blas"):
                fft.run_workers(work, threads)
        # after a refresh (every level unknown, every atom needed), the non-zeros it found:
        # a lower bound of what the next call needs (their bases are non-zero)
        needed = stored.sum() if refresh else wanted.sum()
        self.needed = int(needed) / max(1, positions.size * layer.n_atoms)
        offsets = np.zeros(counts.size + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        regions = [(first * layer.n_atoms, n) for first, n in zip(starts, stored, strict=True)]
        nonzeros = (offsets, np.concatenate([atoms[:0], *(atoms[r:r + n] for r, n in regions)]),
                    np.concatenate([values[:0], *(values[r:r + n] for r, n in regions)]))
        return int(bad.sum()), float(squares.sum()), nonzeros

    def _collection(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Buffers for the atoms and values of up to ``size`` collected non-zeros (kept between
        calls, replaced by larger ones when short)."""
        if self._collected[0].size < size:
            self._collected = (np.empty(size, np.int32), np.empty(size, self.layer.dtype))
        return self._collected


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """The BLAS thread pools (inspected once: limiting through it costs ~10 µs a call)."""
    return ThreadpoolController()
