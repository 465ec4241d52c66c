r"""Periodic synthesis and analysis through the DFT (``scipy.fft``/FFTW), for large filters.

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

import contextlib
import functools
import json
import math
import os
import platform
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import scipy.fft
from numba import njit, prange

from ._scalar import row_block

try:  # FFTW through pyfftw (a dependency; absent on some GPU images: then scipy.fft)
    import pyfftw
except ImportError:  # pragma: no cover - depends on the environment
    pyfftw = None

#: Transforms of at least this many real values run FFTW plans (1.5–1.8× faster than
#: ``scipy.fft`` on 36×256×256 float32, 2 threads).
FFTW_SIZE = 1 << 20

#: FFTW's planner rigour for single-threaded plans (the row sweeps' one-row transforms, which
#: carry the ADMM): ``FFTW_MEASURE`` times a few candidate plans once, and the 256×256 float32
#: forward plan it picked ran 94, 95, 114 and 149 µs in four fresh processes on the 2-core
#: development machine; ``FFTW_PATIENT``'s ran 98 µs, at 2.2 s of planning (against 0.25 s) once
#: per shape and machine: the plans are kept on disk (:func:`wisdom_path`). SPORCO's CBPDN
#: example, time to the gap 1e-3 in three pairs of fresh processes: 476, 548, 524 ms against 688,
#: 618, 555 ms with ``FFTW_MEASURE``. Multi-threaded (batched) plans stay ``FFTW_MEASURE``:
#: ``FFTW_PATIENT`` planned a 36×256×256 forward transform on 2 threads in 23.7 s against
#: 0.17 s, for 1.85 against 1.99 ms.
PLANNER = "FFTW_PATIENT"
#: Planning that takes longer than this (seconds) made new plans: the wisdom is saved.
NEW_PLANS_SECONDS = 0.05

_wisdom_lock = threading.Lock()
_wisdom_loaded = False


#: Values per row from which :class:`SpectralConvolution` transforms FFTW-sized operands one row
#: at a time (the ADMM's row sweep uses the same size, see
#: :data:`mlverify.pursuits._bp_admm.ROW_SWEEP_SIZE`): a row and its spectrum stay in a worker's
#: cache, where the batched transforms of a ``(36, 256, 256)`` operand stream ~40 MB of buffers.
#: Measured on SPORCO's example, 2 threads: a certificate check's estimate 11-12 ms against
#: 19 ms, its synthesis 3.7-4.1 ms against 7.4 (and the batched buffers were made, and their
#: pages touched, again at every solve).
ROW_SIZE = 1 << 14


def fftw_planned(size: int) -> bool:
    """Whether transforms of ``size`` real values run FFTW plans (pyfftw present, at least
    :data:`FFTW_SIZE` values) rather than ``scipy.fft``."""
    return pyfftw is not None and size >= FFTW_SIZE


def wisdom_path() -> Path:
    """The file that keeps FFTW's plans ("wisdom") between processes, like Numba's cache.

    In ``$MLVERIFY_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlverify``, else ``~/.cache/mlverify``;
    one file per host and FFTW version, since plans are tuned to the machine (another
    machine's plans would still compute the same transforms, only maybe slower).
    """
    root = os.environ.get("MLVERIFY_CACHE_DIR")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlverify"
    version = getattr(pyfftw, "__version__", "none")
    return Path(root) / f"fftw_wisdom-{platform.node() or 'host'}-pyfftw{version}.json"


@contextlib.contextmanager
def kept_wisdom() -> Iterator[None]:
    """Plan FFTW transforms inside: the kept wisdom (:func:`wisdom_path`) is loaded first, once
    per process, and saved again when the planning inside made new plans (it took longer than
    :data:`NEW_PLANS_SECONDS`). A missing, unreadable or unwritable file only costs planning
    time."""
    global _wisdom_loaded
    with _wisdom_lock:
        if not _wisdom_loaded:
            _wisdom_loaded = True
            with contextlib.suppress(OSError, ValueError, TypeError):
                kept = json.loads(wisdom_path().read_text())
                pyfftw.import_wisdom(tuple(part.encode("ascii") for part in kept))
        start = time.perf_counter()
        yield
        if time.perf_counter() - start > NEW_PLANS_SECONDS:
            path = wisdom_path()
            with contextlib.suppress(OSError):
                path.parent.mkdir(parents=True, exist_ok=True)
                text = json.dumps([part.decode("ascii") for part in pyfftw.export_wisdom()])
                with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False,
                                                 suffix=".tmp") as handle:
                    handle.write(text)
                os.replace(handle.name, path)  # atomic: concurrent processes never read half


@functools.lru_cache(maxsize=4)
def helper_pool(threads: int) -> ThreadPoolExecutor:
    """``threads`` helper threads, kept, that run row transforms and ``nogil`` kernels beside
    the calling thread (FFTW and the kernels release the GIL)."""
    return ThreadPoolExecutor(threads, thread_name_prefix="mlverify-rows")


def run_workers(task, threads: int) -> None:
    """``task(worker)`` for ``worker`` in ``range(threads)``, side by side: worker 0 is the
    calling thread, the others are :func:`helper_pool` threads; returns when all are done."""
    others = [helper_pool(max(threads - 1, 1)).submit(task, t) for t in range(1, threads)]
    task(0)
    for future in others:
        future.result()


def run_shares(task, rows: int, threads: int) -> None:
    """``task(worker, start, stop)`` on ``threads`` fixed, consecutive shares of ``rows`` rows,
    side by side (:func:`run_workers`)."""
    shares = min(threads, rows)
    bounds = np.linspace(0, rows, shares + 1).astype(int)
    run_workers(lambda t: task(t, bounds[t], bounds[t + 1]), shares)


class RealDFT:
    r"""Forward and backward real DFTs over the last ``ndim`` axes of one array shape.

    The arrays live here, so a solver iterates on them without copies: :attr:`real_in` →
    :meth:`forward` → :attr:`spectrum` → :meth:`backward` → :attr:`real_out` (the backward
    transform overwrites :attr:`spectrum`). Large transforms (:data:`FFTW_SIZE`) run FFTW plans
    (:data:`PLANNER` for one thread, made once per shape and machine), smaller ones
    ``scipy.fft``; both compute the unnormalised forward and the normalised backward transform,
    equal up to rounding.

    Parameters
    ----------
    shape : tuple of int
        Shape of the real arrays.
    dtype : float32 or float64
    ndim : int
        Number of trailing axes transformed.
    workers : int
        Threads.
    fftw : bool, optional
        Force FFTW (``True``, needs pyfftw) or ``scipy.fft`` (``False``); default by size.
    """

    def __init__(self, shape: tuple[int, ...], dtype, ndim: int, workers: int = 1,
                 fftw: bool | None = None) -> None:
        dtype = np.dtype(dtype)
        self.axes = tuple(range(len(shape) - ndim, len(shape)))
        self.spatial = tuple(shape[-ndim:])
        spectrum_shape = (*shape[:-1], shape[-1] // 2 + 1)
        cdtype = np.result_type(dtype, np.complex64)
        if fftw is None:
            fftw = fftw_planned(math.prod(shape))
        if fftw and pyfftw is None:
            raise ImportError("fftw=True needs pyfftw (pip install pyfftw)")
        self.fftw = bool(fftw)
        if self.fftw:
            self.real_in = pyfftw.empty_aligned(shape, dtype=dtype)
            self.spectrum = pyfftw.empty_aligned(spectrum_shape, dtype=cdtype)
            self.real_out = pyfftw.empty_aligned(shape, dtype=dtype)
            planner = PLANNER if workers == 1 else "FFTW_MEASURE"
            with kept_wisdom():
                self._forward = pyfftw.FFTW(self.real_in, self.spectrum, axes=self.axes,
                                            threads=workers, flags=(planner,))
                self._backward = pyfftw.FFTW(self.spectrum, self.real_out, axes=self.axes,
                                             direction="FFTW_BACKWARD", threads=workers,
                                             flags=(planner, "FFTW_DESTROY_INPUT"))
        else:
            self.real_in = np.zeros(shape, dtype)
            self.spectrum = np.zeros(spectrum_shape, cdtype)
            self.real_out = np.zeros(shape, dtype)
        self.workers = workers

    def forward(self) -> np.ndarray:
        """:attr:`spectrum` ← DFT of :attr:`real_in`; returns :attr:`spectrum`."""
        if self.fftw:
            self._forward()
        else:
            self.spectrum[...] = scipy.fft.rfftn(self.real_in, axes=self.axes,
                                                 workers=self.workers)
        return self.spectrum

    def backward(self, normalise: bool = True) -> np.ndarray:
        """:attr:`real_out` ← inverse DFT of :attr:`spectrum` (destroyed); returns it.

        With ``normalise=False`` the result is ``N`` times the inverse DFT (``N`` the number of
        transformed values): a caller that scales the spectrum anyway saves a pass."""
        if self.fftw:
            if normalise:
                self._backward()  # pyfftw normalises the backward transform by default
            else:
                self._backward.execute()
        else:
            self.real_out[...] = scipy.fft.irfftn(self.spectrum, s=self.spatial, axes=self.axes,
                                                  workers=self.workers,
                                                  norm="backward" if normalise else "forward")
        return self.real_out


class SpectralConvolution:
    """Synthesis and analysis of one filter bank on one spatial shape through the DFT.

    It keeps its FFTW transforms and their buffers between calls, so one instance serves one
    thread. FFTW-sized operands whose rows hold at least :data:`ROW_SIZE` values go one row at
    a time, on ``workers`` threads with single-row plans (``by_rows``): each worker's row and
    spectrum stay in its cache, and no operand-sized buffer is made.

    Parameters
    ----------
    filters : ndarray, shape ``(m, c, *kernel)``
        Real filters (float32 or float64: computations run in that precision).
    spatial : tuple of int
        Signal shape (each at least the kernel size).
    workers : int
        Threads.
    spectra : ndarray, optional
        The filters' spectra ``rfftn(filters, s=spatial)`` when the caller has them
        (:meth:`mlverify.model.dictionary.ConvDictionary.spectra`, used without a copy when in
        the working precision); computed here otherwise.
    by_rows : bool, optional
        Force (``True``) or forbid (``False``) the row-by-row transforms; default by size.
    """

    def __init__(self, filters: np.ndarray, spatial: tuple[int, ...], workers: int = 1,
                 spectra: np.ndarray | None = None, by_rows: bool | None = None) -> None:
        self.dtype = filters.dtype
        self.spatial = tuple(spatial)
        self.ndim = len(self.spatial)
        self.axes = tuple(range(-self.ndim, 0))
        self.workers = workers
        if spectra is None:
            spectra = scipy.fft.rfftn(filters.astype(np.float64), s=self.spatial, axes=self.axes,
                                      workers=workers)
        self.spectra = np.asarray(spectra, dtype=np.result_type(self.dtype, np.complex64))
        self.freq_shape = spectra.shape[2:]
        self.nfreq = math.prod(self.freq_shape)
        self._dfts: dict[tuple, list[RealDFT]] = {}
        size = math.prod(self.spatial)
        self.by_rows = (size >= ROW_SIZE and fftw_planned(size * filters.shape[0])
                        if by_rows is None else bool(by_rows))
        self._row_dfts: list[RealDFT] = []

    def _dft(self, lead: tuple[int, ...], dtype, busy: RealDFT | None = None) -> RealDFT:
        """The transforms of arrays ``(*lead, *spatial)``: FFTW-sized ones made once and kept
        (a solver's certificate checks reuse their plans), never ``busy`` (the operand's, when
        the result has the same shape: then a second set); ``scipy.fft``-sized ones made per
        call (keeping their buffers slowed the 64×64 ADMM's iterations between checks ~1.6×,
        measured, through the memory layout)."""
        shape = (*lead, *self.spatial)
        if not fftw_planned(math.prod(shape)):
            return RealDFT(shape, dtype, self.ndim, self.workers)
        kept = self._dfts.setdefault((lead, np.dtype(dtype)), [])
        for dft in kept:
            if dft is not busy:
                return dft
        kept.append(RealDFT(shape, dtype, self.ndim, self.workers))
        return kept[-1]

    def _apply(self, array: np.ndarray, adjoint: bool) -> np.ndarray:
        """DFT of ``array`` ``(..., n_in, *S)``, per-frequency mix, inverse DFT (a new array)."""
        lead = array.shape[: -self.ndim - 1]
        n_out = self.spectra.shape[0 if adjoint else 1]
        source = self._dft(array.shape[: -self.ndim], array.dtype)
        target = self._dft((*lead, n_out), array.dtype, busy=source)
        source.real_in[...] = array
        spectrum = source.forward()
        frequency_mix(self.spectra.reshape(*self.spectra.shape[:2], self.nfreq),
                      spectrum.reshape(-1, spectrum.shape[-self.ndim - 1], self.nfreq), adjoint,
                      MIX_BLOCK, target.spectrum.reshape(-1, n_out, self.nfreq))
        return target.backward().astype(self.dtype)

    def _rows_ready(self) -> list[RealDFT]:
        """One single-row transform per worker (made on first use, then kept)."""
        if not self._row_dfts:
            self._row_dfts = [RealDFT(self.spatial, self.dtype, self.ndim,
                                      fftw=pyfftw is not None) for _ in range(self.workers)]
        return self._row_dfts

    def _spectra_of(self, rows: np.ndarray) -> np.ndarray:
        """The spectra ``(R, F)`` of a few real rows ``(R, *S)`` (worker 0's transform)."""
        dft = self._rows_ready()[0]
        out = np.empty((rows.shape[0], self.nfreq), self.spectra.dtype)
        for i, row in enumerate(rows):
            dft.real_in.reshape(-1)[...] = row.reshape(-1)
            out[i] = dft.forward().reshape(-1)
        return out

    def _synthesize_rows(self, codes: np.ndarray) -> np.ndarray:
        """:meth:`synthesize` row by row: ``codes (B, m, *S)`` to ``(B, c, *S)``."""
        batch, atoms = codes.shape[:2]
        channels = self.spectra.shape[1]
        dfts = self._rows_ready()
        flat = codes.reshape(batch * atoms, -1)
        spectra = self.spectra.reshape(atoms, channels, self.nfreq)
        shares: dict[int, tuple[int, np.ndarray]] = {}

        def task(t: int, start: int, stop: int) -> None:
            dft = dfts[t]
            first_b = start // atoms
            acc = np.empty(((stop - 1) // atoms - first_b + 1, channels, self.nfreq),
                           self.spectra.dtype)
            source, spectrum = dft.real_in.reshape(-1), dft.spectrum.reshape(-1)
            for row in range(start, stop):
                b, f = divmod(row, atoms)
                source[...] = flat[row]
                dft.forward()
                accumulate_row(spectrum, spectra, f, acc[b - first_b], row == start or f == 0)
            shares[t] = first_b, acc

        run_shares(task, batch * atoms, len(dfts))
        total = np.zeros((batch, channels, self.nfreq), self.spectra.dtype)
        for t in sorted(shares):  # in worker order: the sums do not depend on the timing
            first_b, acc = shares[t]
            total[first_b:first_b + acc.shape[0]] += acc
        dft = dfts[0]
        out = np.empty((batch, channels, *self.spatial), self.dtype)
        for b in range(batch):
            for c in range(channels):
                dft.spectrum.reshape(-1)[...] = total[b, c]
                out[b, c] = dft.backward()
        return out

    def _canonical(self, array: np.ndarray) -> tuple[tuple[int, ...], np.ndarray]:
        """``(batch shape, array (B, n, *S))``."""
        lead = array.shape[: -self.ndim - 1]
        return lead, array.reshape((math.prod(lead), *array.shape[-self.ndim - 1:]))

    def synthesize(self, codes: np.ndarray) -> np.ndarray:
        """:math:`D\\Gamma` for codes ``(..., m, *S)`` (a signal ``(..., c, *S)``)."""
        if not self.by_rows:
            return self._apply(codes, adjoint=False)
        lead, codes3 = self._canonical(codes)
        out = self._synthesize_rows(codes3)
        return out.reshape((*lead, *out.shape[1:]))

    def analyze(self, signal: np.ndarray) -> np.ndarray:
        """:math:`D^TV` for a signal ``(..., c, *S)`` (codes ``(..., m, *S)``)."""
        return self._apply(signal, adjoint=True)

    def analysis_extremes(self, signal: np.ndarray, support: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
        r"""Largest and smallest entry of :math:`D^TV` per batch element, ``(B,)`` each.

        ``support`` (bool, ``(m, *S)``): the entries off it count as 0 (the correlations a
        support-restricted dual constraint involves). Row by row, :math:`D^TV` is never
        stored whole. A NaN entry gives NaN.
        """
        signal3 = self._canonical(signal)[1]
        batch = signal3.shape[0]
        atoms = self.spectra.shape[0]
        mask = None if support is None else support.reshape(atoms, -1)
        if not self.by_rows:
            values = self._apply(signal3, adjoint=True).reshape(batch, atoms, -1)
            if mask is not None:
                values = np.where(mask, values, 0)
            return values.max(axis=(1, 2)), values.min(axis=(1, 2))
        channels = self.spectra.shape[1]
        v_hat = self._spectra_of(signal3.reshape(batch * channels, -1)).reshape(
            batch, channels, self.nfreq)
        spectra = self.spectra.reshape(atoms, channels, self.nfreq)
        dfts = self._rows_ready()
        highs, lows = np.empty(batch * atoms), np.empty(batch * atoms)
        # an atom's entries off the support count as 0: its extremes start from 0 then
        initial = None if mask is None else np.where(mask.all(axis=1), np.inf, 0.0)

        def task(t: int, start: int, stop: int) -> None:
            dft = dfts[t]
            spectrum, values = dft.spectrum.reshape(-1), dft.real_out.reshape(-1)
            for row in range(start, stop):
                b, f = divmod(row, atoms)
                adjoint_row(spectra, f, v_hat[b], spectrum)
                dft.backward()
                if mask is None:
                    highs[row], lows[row] = values.max(), values.min()
                else:
                    highs[row] = values.max(where=mask[f], initial=-initial[f])
                    lows[row] = values.min(where=mask[f], initial=initial[f])

        run_shares(task, batch * atoms, len(dfts))
        return highs.reshape(batch, atoms).max(axis=1), lows.reshape(batch, atoms).min(axis=1)


@njit(nogil=True, cache=True)
def accumulate_row(x_hat, spectra, f, acc, first):  # pragma: no cover - compiled
    r"""``acc[c] +=`` :math:`\hat A[f, c]\,\hat x` for every channel (``first``: stored instead of
    added): one atom's share of the synthesis spectrum; ``spectra (m, c, F)``."""
    for c in range(spectra.shape[1]):
        for k in range(x_hat.shape[0]):
            share = spectra[f, c, k] * x_hat[k]
            acc[c, k] = share if first else acc[c, k] + share


@njit(nogil=True, cache=True)
def adjoint_row(spectra, f, v_hat, out):  # pragma: no cover - compiled
    r"""``out`` ← :math:`\sum_c \overline{\hat A[f, c]}\,\hat v[c]`, one atom's row of the
    analysis spectrum (sums in order); ``spectra (m, c, F)``, ``v_hat (c, F)``."""
    for k in range(out.shape[0]):
        out[k] = np.conj(spectra[f, 0, k]) * v_hat[0, k]
    for c in range(1, spectra.shape[1]):
        for k in range(out.shape[0]):
            out[k] += np.conj(spectra[f, c, k]) * v_hat[c, k]


#: Frequencies per task of :func:`frequency_mix`.
MIX_BLOCK = 1024


@njit(parallel=True, cache=True)
def frequency_mix(spectra, x, adjoint, block, out):  # pragma: no cover - compiled
    r"""The per-frequency products of :class:`SpectralConvolution` into ``out``, ``x (B, ·, F)``.

    ``adjoint=False``: :math:`\hat y[b, c, k] = \sum_f \hat A[f, c, k]\,\hat x[b, f, k]`
    (synthesis, ``x`` over the ``m`` atoms); ``adjoint=True``: :math:`\hat y[b, f, k] =
    \sum_c \overline{\hat A[f, c, k]}\,\hat x[b, c, k]` (analysis, over the ``c`` channels).
    ``spectra (m, c, F)``; sums in the dtype of ``x``, in order. Tasks are (batch element,
    block of frequencies); each owns its columns of the output.
    """
    atoms, channels, nfreq = spectra.shape
    batch = x.shape[0]
    n_blocks = (nfreq + block - 1) // block
    for task in prange(batch * n_blocks):
        b, k0, k1 = row_block(task, n_blocks, block, nfreq)
        for row in range(out.shape[1]):
            for k in range(k0, k1):
                out[b, row, k] = 0
        for f in range(atoms):
            for c in range(channels):
                if adjoint:
                    for k in range(k0, k1):
                        out[b, f, k] += np.conj(spectra[f, c, k]) * x[b, c, k]
                else:
                    for k in range(k0, k1):
                        out[b, c, k] += spectra[f, c, k] * x[b, f, k]


def frequency_mix_reference(spectra: np.ndarray, x: np.ndarray, adjoint: bool) -> np.ndarray:
    """NumPy oracle of :func:`frequency_mix`."""
    if adjoint:
        return np.einsum("fck,bck->bfk", np.conj(spectra), x)
    return np.einsum("fck,bfk->bck", spectra, x)
