r"""Convolutional basis pursuit by ADMM in the DFT domain (Wohlberg 2016).

Solves (THEORY.md §3, always with the ½)

.. math::

    \min_\Gamma\ \tfrac12\|y - D\Gamma\|_2^2 + \lambda\|\Gamma\|_1
    \quad\bigl(+\ \iota_{\Gamma\ge0}\ \text{when non-negative}\bigr)

for a periodic convolutional dictionary :math:`D` by ADMM on the splitting :math:`\Gamma = Z`
(scaled dual :math:`U`, over-relaxation :math:`\alpha`), as in B. Wohlberg, "Efficient algorithms
for convolutional sparse representations", IEEE Trans. Image Process. 25(1), 2016 (SPORCO's
``ConvBPDN``):

.. math::

    X &\leftarrow (D^TD + \rho I)^{-1}\bigl(D^Ty + \rho(Z - U)\bigr) \\
    X_r &\leftarrow \alpha X + (1 - \alpha) Z \\
    Z &\leftarrow S_{\lambda/\rho}(X_r + U) \quad (S^+_{\lambda/\rho}\ \text{non-negative}) \\
    U &\leftarrow U + X_r - Z.

The X-step is diagonal in the DFT domain up to a :math:`c\times m` block per frequency and is
solved there by Sherman–Morrison (:math:`c = 1`) or Woodbury (a :math:`c\times c` factor per
frequency), see :mod:`mlverify.kernels.cpu_admm`. Problems large enough for FFTW plans
(:func:`mlverify.kernels.fft.fftw_planned`), with rows of at least :data:`ROW_SWEEP_SIZE` values,
run the same iteration one code row at a time on each worker thread (:class:`_RowSweep`), which
keeps a row's transforms in cache: 1.3–1.4× faster per iteration on SPORCO's 256×256 example,
where the batched steps are bound by memory bandwidth.

**Penalty** :math:`\rho`. The initial value, the balancing rule and :math:`\alpha = 1.8` are
SPORCO's ``ConvBPDN`` defaults: :math:`\rho_0 = 50\lambda + 1`; with the relative residuals
:math:`r = \|X - Z\|/\max(\|X\|, \|Z\|)`, :math:`s = \|Z - Z_{prev}\|/\|U\|` and the target ratio
:math:`\xi = 1 + 18.3^{\log_{10}\lambda + 1}`, :math:`\rho` is multiplied by
:math:`\min(\sqrt{r/(\xi s)}, 1000)` when :math:`r > 1.2\,\xi s` and divided by
:math:`\min(\sqrt{\xi s/r}, 1000)` when :math:`s > (1.2/\xi)\, r` (:math:`U` rescaled, the
per-frequency factors recomputed). Unlike SPORCO (which may change :math:`\rho` every iteration)
the rule is applied after :data:`RHO_PERIOD` iterations and the period doubles after every change
(:data:`RHO_PERIOD_GROWTH`): :math:`\rho` settles, so the iteration keeps the convergence of
fixed-:math:`\rho` ADMM. Measured on small random problems, balancing at every period without the
growth stalled or even drifted away from the optimum near the round-off level (residual noise
keeps changing :math:`\rho`); with it, iterations to a :math:`10^{-10}` gap dropped by 20–50 %.

**Stopping.** The certified relative duality gap of the sparse iterate :math:`Z`
(:class:`mlverify.pursuits._certificates.DualityGap`) is evaluated every ``check_every``
iterations (default :data:`CHECK_PERIOD`), or less often while it is far from ``tol``: the next
check comes after half the iterations the gap needs to reach ``tol`` at its rate since the last
check, at most :data:`CHECK_STRETCH` periods (a check costs about three iterations). ADMM's gap
usually decays no faster later than earlier, so the extrapolation rarely overshoots the stop;
when it does, the stop comes at most that many iterations late (never wrong). The solver
stops when the gap is at most ``tol``, so on return :math:`F(Z) \le F_{opt}(1 + tol)` is
proved. Non-finite iterates (overflow) stop it with status ``"non-finite"`` at the next
iteration that computes the residuals (a check or a penalty update: the other iterations skip
the reductions).
"""

from __future__ import annotations

import functools
import itertools
import math
import time

import numpy as np
import scipy.fft

from .._validate import check_engine, check_nonnegative, check_positive_int
from ..kernels import cpu, cpu_admm
from ..kernels.fft import RealDFT, fftw_planned, run_workers
from ._certificates import DualityGap
from ._checks import check_codes, check_dictionary, check_signal
from ._result import PursuitResult

#: Over-relaxation parameter α (SPORCO's ``RelaxParam``).
RELAX = 1.8
#: Iterations between two penalty updates (residual balancing).
RHO_PERIOD = 10
#: Factor by which that period grows after every change of ρ (so that ρ settles).
RHO_PERIOD_GROWTH = 2
#: Residual ratio tolerated before ρ changes (SPORCO's ``RsdlRatio``).
RHO_RATIO = 1.2
#: Largest factor of one ρ update (SPORCO's ``Scaling``).
RHO_MAX_FACTOR = 1000.0
#: Iterations between two evaluations of the duality-gap certificate (at least)...
CHECK_PERIOD = 10
#: ...and at most this many times more while the gap is far from ``tol`` (see
#: :func:`_check_interval`).
CHECK_STRETCH = 8

#: Values per code row from which FFTW-sized problems iterate row by row (:class:`_RowSweep`).
#: Measured per iteration, 2 threads, float32, 8×8 atoms: 64 rows of 256² 11.7 ms against 18.6
#: batched, 128 rows of 128² 10.0 against 11.5; but 512 rows of 64² 11.6 against 7.7 (the
#: per-row Python calls dominate small rows).
ROW_SWEEP_SIZE = 1 << 14

#: The chunks of rows of :class:`_RowSweep` shrink to ``rows // (CHUNK_FLOOR · threads)`` rows
#: (at least one), see :func:`_guided_chunks`.
CHUNK_FLOOR = 16

_FREQ_BLOCK = 512
_UPDATE_BLOCK = 8192


def _block(tasks: int, size: int, block: int) -> int:
    """Block length so that ``tasks`` rows give at least 4 blocks per thread, at most ``block``."""
    wanted = 4 * cpu.thread_count()
    per_row = -(-wanted // max(tasks, 1))
    return max(1, min(block, -(-size // per_row)))


class _ADMM:
    """State and steps of one (batched) solve; arrays in the canonical ``(B, m, *S)`` layout."""

    def __init__(self, D, y, lam, nonneg, engine, rho, x0):
        d = D.spatial_ndim
        self.spatial = y.shape[-d:]
        self.batch_shape = y.shape[: -d - 1]
        batch = math.prod(self.batch_shape)
        m, c = D.n_atoms, D.n_channels
        self.dtype = D.dtype
        self.cdtype = np.result_type(self.dtype, np.complex64)
        self.axes = tuple(range(2, 2 + d))
        self.workers = cpu.thread_count()
        self.lam = lam
        self.nonneg = nonneg

        spec = D.spectra(self.spatial)
        self.freq_shape = spec.shape[2:]
        nfreq = math.prod(self.freq_shape)
        gram = cpu_admm.frequency_gram_reference if engine == "numpy" else cpu_admm.frequency_gram
        self.gram = gram(np.ascontiguousarray(np.swapaxes(spec.reshape(m, c, nfreq), 0, 1)))
        # (c, m, F) in the working precision: a read-only view of the dictionary's for c = 1
        self.spectra = np.ascontiguousarray(np.swapaxes(
            D.spectra(self.spatial, self.cdtype).reshape(m, c, nfreq), 0, 1))
        self.y_hat = self._fft(y.reshape((batch, c, *self.spatial))).astype(self.cdtype)

        shape = (batch, m, *self.spatial)
        rows, size = batch * m, math.prod(self.spatial)
        self.flat = (rows, size)
        self.inverse_size = self.cdtype.type(1.0 / size)
        self.relax = self.dtype.type(RELAX)
        self.keep = self.dtype.type(1.0 - RELAX)
        self.set_rho(50.0 * lam + 1.0 if rho is None else rho)
        self.cold = x0 is None  # Z = 0 until the first iteration
        if x0 is None:
            self.z = np.zeros(shape, self.dtype)
            self.u = np.zeros(shape, self.dtype)
        else:
            # Dual warm start U = D^T(y - D x0)/rho: a fixed point when x0 is optimal.
            self.z = np.array(x0, dtype=self.dtype).reshape(shape)
            x_hat = self._fft(self.z)
            model = np.einsum("cmk,bmk->bck", self.spectra, x_hat)
            back = np.einsum("cmk,bck->bmk", np.conj(self.spectra), self.y_hat - model)
            self.u = self._ifft(back * self.inv_rho)

        self.sweep: _RowSweep | None = None
        if engine == "numpy":
            self._solve = cpu_admm.solve_frequencies_reference
            self._update = cpu_admm.relaxed_update_reference
            self._step = cpu_admm.relaxed_update_reference
            self.sums = np.zeros((1, cpu_admm.N_SUMS))
        elif fftw_planned(rows * size) and size >= ROW_SWEEP_SIZE:  # row by row (_RowSweep)
            self.sweep = _RowSweep(self, min(self.workers, rows))
        else:
            self._solve = functools.partial(
                cpu_admm.solve_frequencies, block=_block(batch, nfreq, _FREQ_BLOCK)
            )
            ublock = _block(rows, size, _UPDATE_BLOCK)
            self._update = functools.partial(cpu_admm.relaxed_update, block=ublock)
            self._step = functools.partial(cpu_admm.relaxed_step, block=ublock)
            self.sums = np.zeros((rows * -(-size // ublock), cpu_admm.N_SUMS))
        if self.sweep is None:
            # The iteration's transforms on arrays they own (scipy.fft below the FFTW size);
            # the NumPy oracle engine stays on scipy.fft.
            self.dft = RealDFT(shape, self.dtype, d, self.workers,
                               fftw=False if engine == "numpy" else None)
            self.w = self.dft.real_in  # the forward transform's input: w = z - u
        self._refresh(zero=self.cold)

    def _fft(self, array):
        out = scipy.fft.rfftn(array, axes=self.axes, workers=self.workers)
        return out.reshape((*out.shape[:2], -1))

    def _ifft(self, array):
        shaped = array.reshape(array.shape[:2] + self.freq_shape)
        return scipy.fft.irfftn(shaped, s=self.spatial, axes=self.axes, workers=self.workers)

    def set_rho(self, rho: float) -> None:
        """Set the penalty and recompute the per-frequency Woodbury factors."""
        self.rho_value = float(rho)
        self.inv_rho = self.dtype.type(1.0 / rho)
        self.beta = self.dtype.type(self.lam / rho)
        self.low = self.dtype.type(-np.inf) if self.nonneg else -self.beta
        self.kinv = cpu_admm.woodbury_factor(self.gram, self.rho_value, self.cdtype)
        with np.errstate(invalid="ignore", over="ignore"):  # overflow: status non-finite
            self.signal = self.y_hat * self.inv_rho

    def rescale_rho(self, factor: float) -> None:
        """Multiply ρ by ``factor`` and the scaled dual U by ``1/factor``."""
        self.set_rho(self.rho_value * factor)
        self.u *= self.dtype.type(1.0 / factor)
        self._refresh()

    def _refresh(self, zero: bool = False) -> None:
        """The next step's input from Z, U and ρ: :math:`w = z - u` (row by row: the
        right-hand side spectra and the Woodbury coefficients, see :class:`_RowSweep`);
        ``zero``: Z = U = 0 (a cold start)."""
        if self.sweep is not None:
            self.sweep.prime(zero)
        else:
            np.subtract(self.z, self.u, out=self.w)

    def step(self, with_sums: bool = True) -> np.ndarray | None:
        """One ADMM iteration; the sums of :data:`cpu_admm.N_SUMS` (float64) when asked for
        (they cost 5–10 % of an iteration), else ``None``."""
        if self.sweep is not None:
            return self.sweep.step(with_sums)
        w_hat = self.dft.forward()
        # the solve scales by 1/N: the inverse transform runs unnormalised (one pass fewer)
        self._solve(self.spectra, self.kinv, self.signal, w_hat.reshape(self.z.shape[:2] + (-1,)),
                    self.inverse_size)
        x = self.dft.backward(normalise=False)
        rows = self.flat
        arrays = (x.reshape(rows), self.z.reshape(rows), self.u.reshape(rows),
                  self.w.reshape(rows), self.relax, self.keep, self.beta, self.low)
        if not with_sums:
            self._step(*arrays)
            return None
        self._update(*arrays, sums=self.sums)
        return self.sums.sum(axis=0)

    def view(self) -> np.ndarray:
        """:math:`Z` with the caller's batch shape (a view)."""
        return self.z.reshape(self.batch_shape + self.z.shape[1:])


def _guided_chunks(rows: int, threads: int) -> np.ndarray:
    """Boundaries of fixed chunks of consecutive rows for ``threads`` workers taking them in
    turn (guided scheduling): each chunk holds ``1/(2·threads)`` of the rows left, at least
    ``rows // (CHUNK_FLOOR · threads)`` (and one), so the first chunks are large (few partial
    projections) and the last ones small (a worker finishing early waits at most for one
    small chunk; on SPORCO's example, 36 rows on 2 workers: 9, 7, 5, 4, 3, 2, 2, 1, 1, 1, 1)."""
    bounds = [0]
    smallest = max(1, rows // (CHUNK_FLOOR * threads))
    while bounds[-1] < rows:
        left = rows - bounds[-1]
        bounds.append(bounds[-1] + min(left, max(smallest, -(-left // (2 * threads)))))
    return np.array(bounds)


class _RowSweep:
    r"""The ADMM iteration one code row (batch element, atom) at a time, for FFTW-sized problems.

    The batched iteration streams every ``(B, m, *S)`` array through memory four times per
    iteration (forward DFT, solve, inverse DFT, update); on SPORCO's 256×256 example they do not
    fit the caches, and the iteration is bound by memory bandwidth. Here each of ``threads``
    workers has one set of single-row FFTW plans, takes the next free chunk of rows, and does,
    on its cached buffers: the row of the solution :math:`\hat x = v - M^H K M v` from the
    coefficients :math:`K M v` (:func:`~mlverify.kernels.cpu_admm.row_solution`), the inverse
    DFT, the relaxed update of Z and U (:func:`~mlverify.kernels.cpu_admm.row_step`), the DFT of
    :math:`w = z - u` and the next :math:`v = \hat w + M^H\hat s/\rho` with its share of the
    projection :math:`M v` (:func:`~mlverify.kernels.cpu_admm.row_rhs`). Between two sweeps the
    shares are summed into the next coefficients
    (:func:`~mlverify.kernels.cpu_admm.woodbury_apply`).
    Same iterates as the batched steps up to rounding; the kernels release the GIL and FFTW
    runs without it, so the workers run side by side.
    """

    def __init__(self, state: _ADMM, threads: int) -> None:
        self.state = state
        self.threads = threads
        batch, channels = state.signal.shape[:2]
        nfreq = state.spectra.shape[-1]
        rows = state.flat[0]
        self.dfts = [RealDFT(state.spatial, state.dtype, len(state.spatial), workers=1, fftw=True)
                     for _ in range(threads)]
        self.v = np.empty((rows, nfreq), state.cdtype)  # the right-hand sides M^H s/ρ + ŵ
        # fixed chunks of consecutive rows, each with its partial projections (one per batch
        # element; those of the elements outside the chunk stay zero); workers take the next
        # free chunk (balanced when a thread is slowed) and the partials are summed in chunk
        # order, so the iterates do not depend on which worker did which chunk
        self.chunks = _guided_chunks(rows, threads)
        self.partial = np.zeros((len(self.chunks) - 1, batch, channels, nfreq), state.cdtype)
        self._claim = itertools.count()
        self.coef = np.zeros((batch, channels, nfreq), state.cdtype)
        self.block = _block(batch, nfreq, _FREQ_BLOCK)
        self.sums = np.zeros((rows, cpu_admm.N_SUMS))

    def _sweep(self, rows_of_thread) -> None:
        """``rows_of_thread(t)`` for every worker (worker 0 is the calling thread), then the
        next Woodbury coefficients from their partial projections."""
        self._claim = itertools.count()
        run_workers(rows_of_thread, self.threads)
        cpu_admm.woodbury_apply(self.state.kinv, self.partial, self.coef, self.block)

    def _rows(self):
        """``(row, batch element, atom, z row, u row, partial projection, first)`` of the
        chunks the calling worker takes (``next`` on the shared counter is atomic: each chunk
        once); ``first``: the row's share is the first of its partial projection."""
        st = self.state
        atoms = st.z.shape[1]
        z, u = st.z.reshape(st.flat), st.u.reshape(st.flat)
        while (chunk := next(self._claim)) < len(self.chunks) - 1:
            start = self.chunks[chunk]
            for row in range(start, self.chunks[chunk + 1]):
                b, f = divmod(row, atoms)
                yield row, b, f, z[row], u[row], self.partial[chunk, b], row == start or f == 0

    def prime(self, zero: bool = False) -> None:
        r""":math:`v` and the coefficients from the current Z, U and ρ (``zero``: Z = U = 0,
        so :math:`\hat w = 0` without transforms)."""
        st = self.state

        def rows_of_thread(t: int) -> None:
            dft = self.dfts[t]
            w, w_hat = dft.real_in.reshape(-1), dft.spectrum.reshape(-1)
            if zero:
                w_hat[...] = 0
            for row, b, f, z, u, proj, first in self._rows():
                if not zero:
                    np.subtract(z, u, out=w)
                    dft.forward()
                cpu_admm.row_rhs(w_hat, st.spectra, f, st.signal, b, self.v, row, proj, first)

        self._sweep(rows_of_thread)

    def step(self, with_sums: bool) -> np.ndarray | None:
        """One iteration (see :meth:`_ADMM.step`)."""
        st = self.state

        def rows_of_thread(t: int) -> None:
            dft = self.dfts[t]
            spectrum = dft.spectrum.reshape(-1)
            x, w = dft.real_out.reshape(-1), dft.real_in.reshape(-1)
            scalars = (st.relax, st.keep, st.beta, st.low)
            for row, b, f, z, u, proj, first in self._rows():
                cpu_admm.row_solution(self.v, row, st.spectra, f, self.coef, b, st.inverse_size,
                                      spectrum)
                dft.backward(normalise=False)
                if with_sums:
                    cpu_admm.row_update(x, z, u, w, *scalars, self.sums[row])
                else:
                    cpu_admm.row_step(x, z, u, w, *scalars)
                dft.forward()
                cpu_admm.row_rhs(spectrum, st.spectra, f, st.signal, b, self.v, row, proj,
                                 first)

        self._sweep(rows_of_thread)
        return self.sums.sum(axis=0) if with_sums else None


def _check_interval(gap: float, previous: tuple[float, float], it: int, tol: float,
                    check_every: int) -> int:
    """Iterations to the next certificate check: ``check_every``, or up to
    :data:`CHECK_STRETCH` times more while the gap, extrapolated at its last geometric rate,
    stays above ``tol`` for at least twice as long (each check costs several iterations)."""
    last_gap, last_it = previous
    if not (0 < gap < last_gap and it > last_it and tol > 0 and math.isfinite(last_gap)):
        return check_every
    rate = math.log(last_gap / gap) / (it - last_it)  # per iteration
    remaining = math.log(gap / tol) / rate  # iterations to tol at that rate
    return int(min(max(check_every, remaining // 2), CHECK_STRETCH * check_every))


def _rho_factor(r: float, s: float, xi: float) -> float:
    """SPORCO's residual-balancing factor for ρ (1 when the residuals are balanced)."""
    if r > RHO_RATIO * xi * s:
        return RHO_MAX_FACTOR if s == 0 else min(math.sqrt(r / (xi * s)), RHO_MAX_FACTOR)
    if s > (RHO_RATIO / xi) * r:
        return 1.0 / (RHO_MAX_FACTOR if r == 0 else min(math.sqrt(xi * s / r), RHO_MAX_FACTOR))
    return 1.0


def bp_admm(
    D,
    y,
    lam,
    *,
    nonneg: bool = False,
    tol: float = 1e-4,
    max_iter: int = 2000,
    engine: str = "auto",
    x0=None,
    rho: float | None = None,
    check_every: int = CHECK_PERIOD,
    callback=None,
) -> PursuitResult:
    r"""Basis pursuit :math:`\min_\Gamma \tfrac12\|y - D\Gamma\|_2^2 + \lambda\|\Gamma\|_1` by ADMM.

    Periodic boundary; leading batch axes of ``y`` are independent problems solved together.
    See the module docstring for the iteration (Wohlberg, IEEE TIP 2016), the penalty rule and
    the stopping certificate.

    Parameters
    ----------
    D : ConvDictionary
        The dictionary, 1-D or 2-D, any number of channels, float32 or float64.
    y : ndarray, shape ``(..., c, *S)``
        Signal(s), same dtype as ``D``.
    lam : float
        :math:`\lambda \ge 0`. With :math:`\lambda = 0` the certified dual value is 0 in
        general (the dual feasible set is :math:`D^T\nu = 0`), so no relative certificate exists
        and the solver runs to ``max_iter``.
    nonneg : bool
        Add the constraint :math:`\Gamma \ge 0` (non-negative soft threshold).
    tol : float
        Stop when the certified relative duality gap of the sparse iterate is at most ``tol``.
    max_iter : int
        Safety net on the number of iterations (status ``"max_iter"``).
    engine : {"auto", "numpy", "cpu"}
        ``"cpu"``/``"auto"``: Numba kernels; ``"numpy"``: the NumPy oracles of the same steps.
    x0 : ndarray, shape ``(..., m, *S)``, optional
        Warm start of :math:`Z`; the dual is started at :math:`D^T(y - Dx_0)/\rho`.
    rho : float, optional
        Initial penalty (default :math:`50\lambda + 1`, then adapted).
    check_every : int
        Iterations between two certificate evaluations while the gap is near ``tol`` (each
        costs a float64 synthesis and analysis, about three ADMM iterations on SPORCO's 256×256,
        36 atoms 12×12 example); up to :data:`CHECK_STRETCH` times more while it is far.
    callback : callable, optional
        ``callback(iteration, Z)`` after every iteration (``Z`` a view to read); a true return
        stops the solver with status ``"stopped"``.

    Returns
    -------
    PursuitResult
        ``codes = [Z]`` (dtype of ``y``), ``certificate`` the relative duality gap,
        ``history`` with, at every certificate check, ``iteration``, ``objective``, ``dual``,
        ``relative_duality_gap``, ``kkt`` (from
        :class:`~mlverify.pursuits._certificates.DualityGap`), ``primal_residual``,
        ``dual_residual`` (relative, as in the ρ rule), ``rho``, ``time`` (seconds since the
        start) and ``certified`` (0.0 for a DFT estimate, see
        :meth:`~mlverify.pursuits._certificates.DualityGap.stopping_test`; the returned
        certificate is always certified) — the keys of the FISTA solver plus the ADMM ones.
    """
    D = check_dictionary("D", D)
    engine = check_engine(engine)
    y = check_signal(D, "y", y)
    lam = check_nonnegative("lam", lam)
    if not isinstance(nonneg, (bool, np.bool_)):
        raise TypeError(f"nonneg must be a bool, got {type(nonneg).__name__}")
    tol = check_nonnegative("tol", tol)
    max_iter = check_positive_int("max_iter", max_iter)
    check_every = check_positive_int("check_every", check_every)
    if rho is not None and check_nonnegative("rho", rho) == 0:
        raise ValueError("rho must be > 0, got 0")
    if x0 is not None:
        x0 = check_codes(D, "x0", x0, y)

    coefficients = y.size // D.n_channels * D.n_atoms
    if coefficients == 0:  # an empty batch: nothing to solve
        codes = np.zeros((*y.shape[: -D.spatial_ndim - 1], D.n_atoms, *y.shape[-D.spatial_ndim:]),
                         D.dtype)
        return PursuitResult(codes=[codes], n_iter=0, converged=True, certificate=0.0,
                             certificate_kind="relative_duality_gap", status="exact",
                             message="empty batch")
    certificate = DualityGap(D, y, lam, nonneg=bool(nonneg), engine=engine)
    with cpu.threads_for(coefficients * (D.n_channels + 2)):  # small problems: one thread
        state = _ADMM(D, y, lam, bool(nonneg), engine, rho, x0)
        return _iterate(state, certificate, tol, max_iter, check_every, callback)


def _iterate(
    state: _ADMM, certificate: DualityGap, tol: float, max_iter: int, check_every: int,
    callback=None,
) -> PursuitResult:
    """The ADMM loop with penalty balancing and certificate checks (see the module docstring)."""
    lam = state.lam
    xi = 1.0 + 18.3 ** (math.log10(lam) + 1.0) if lam > 0 else 1.0
    history: dict[str, list[float]] = {
        key: []
        for key in ("iteration", "objective", "dual", "relative_duality_gap", "kkt",
                    "primal_residual", "dual_residual", "rho", "time", "certified")
    }

    def check(iteration: int, r: float, s: float, final: bool = False) -> float:
        # a cold start's Z = 0 is passed as None: the certificate then needs no transform
        view = None if iteration == 0 and state.cold else state.view()
        values = certificate.certificates(view) if final else certificate.stopping_test(view, tol)
        values.update(iteration=iteration, objective=values["primal"],
                      relative_duality_gap=values["rel_gap"], primal_residual=r, dual_residual=s,
                      rho=state.rho_value, time=time.perf_counter() - start)
        for key, series in history.items():
            series.append(float(values[key]))
        return values["rel_gap"]

    def result(n_iter: int, gap: float, status: str, message: str) -> PursuitResult:
        return PursuitResult(
            codes=[state.view().copy()], n_iter=n_iter, converged=status == "converged",
            certificate=gap, certificate_kind="relative_duality_gap", history=history,
            status=status, message=message,
        )

    rho_period = RHO_PERIOD
    next_rho_update = RHO_PERIOD
    start = time.perf_counter()
    gap = check(0, math.nan, math.nan)
    if gap <= tol:
        return result(0, gap, "converged", f"relative duality gap {gap:.3g} <= tol at the start")
    r = s = u_norm = math.nan
    next_check = check_every
    for it in range(1, max_iter + 1):
        # The residuals (and the non-finite test) are computed on the iterations that use them:
        # certificate checks and penalty updates.
        sums = state.step(with_sums=it in (next_check, max_iter, next_rho_update))
        if sums is not None:
            if not np.isfinite(sums).all():
                return result(it, math.nan, "non-finite", f"non-finite iterate at iteration {it}")
            primal_diff, dual_diff, x_norm, z_norm, u_norm = np.sqrt(sums)
            r = primal_diff / max(x_norm, z_norm) if max(x_norm, z_norm) > 0 else 0.0
            s = dual_diff / u_norm if u_norm > 0 else math.inf
        if callback is not None and callback(it, state.view()):
            return result(it, check(it, r, s, final=True), "stopped",
                          f"stopped by the callback at iteration {it}")
        if it in (next_check, max_iter):
            previous = history["relative_duality_gap"][-1], history["iteration"][-1]
            gap = check(it, r, s, final=it == max_iter)
            if gap <= tol:
                return result(it, gap, "converged", f"relative duality gap {gap:.3g} <= {tol}")
            next_check = it + _check_interval(gap, previous, it, tol, check_every)
        if it == next_rho_update:
            factor = _rho_factor(r, s, xi) if u_norm > 0 else 1.0
            if factor != 1.0:
                state.rescale_rho(factor)
                rho_period *= RHO_PERIOD_GROWTH
            next_rho_update += rho_period
    return result(max_iter, gap, "max_iter",
                  f"max_iter={max_iter} reached with relative duality gap {gap:.3g} > {tol}")
