r"""1-D convolutional basis pursuit by locally greedy coordinate descent (LGCD).

Solves (THEORY.md §3, always with the ½)

.. math::

    \min_\Gamma\ \tfrac12\|y - D\Gamma\|_2^2 + \lambda\|\Gamma\|_1
    \quad\bigl(\text{s.t. } \Gamma \ge 0 \text{ when non-negative}\bigr)

for a 1-D dictionary (any number of channels) by the locally greedy coordinate descent (LGCD) of
Moreau, Oudre, Vayatis ("DICOD: distributed convolutional coordinate descent", ICML 2018;
Moreau, Gramfort, "DiCoDiLe", 2019), the solver of alphacsc. The code positions are cut into
segments of :math:`\max(1, \lfloor n/4\rfloor)` positions (:data:`SEGMENT_DIVISOR`; alphacsc:
:math:`2n - 1`). A **sweep**, one iteration here, visits every segment once and, in each, sets
the coordinate whose exact one-dimensional minimisation moves it most to that minimiser, then
updates :math:`\beta = D^T(y - D\Gamma) + \mathrm{diag}(D^TD)\Gamma` and the residual locally
(:mod:`mlverify.kernels.cpu_cd`). As in alphacsc, a segment whose best step is small
(:math:`|\Delta\Gamma_k[t]|\,\|d_k\| \le \varepsilon`) is skipped until an update next to it
changes its :math:`\beta`; :math:`\varepsilon` starts at alphacsc's default,
:data:`EPS_INIT` times the signal's standard deviation, and is divided by 10 whenever a sweep
leaves a signal unchanged (so the sweeps never stall before the certificate is met). The
signals of a batch are independent problems swept in parallel.

**Boundary.** ``boundary="periodic"`` solves the periodic problem of
:class:`~mlverify.ConvDictionary` (``N >= 2n - 1``). ``boundary="valid"`` solves the non-periodic
problem of alphacsc, :math:`y = \sum_k z_k * d_k` (full linear convolution) with codes of length
:math:`N - n + 1`: the codes keep the shape ``(..., m, N)`` and are constrained to 0 on their last
:math:`n - 1` positions, so that ``D.synthesize(codes)`` is that linear convolution (no
wrap-around) and every mlverify operator applies unchanged; the certificate is that of the
restricted problem (``support`` of :class:`~mlverify.pursuits._certificates.DualityGap`).

**Stopping.** Every ``check_every`` sweeps the relative duality gap is *estimated* from the
maintained :math:`\beta` and residual (one pass over the state, no convolution); once the estimate
is at most ``tol``, the certified float64 gap of
:class:`~mlverify.pursuits._certificates.DualityGap` (a synthesis and an analysis) is evaluated
and the solver stops if it is at most ``tol``, which proves :math:`F(\hat\Gamma) \le
F_{opt}(1 + tol)`; otherwise :math:`\beta` and the residual are recomputed from the codes (the
estimate had drifted by round-off) and the sweeps go on. Coordinate descent decreases the
objective monotonically, so there is no divergence test; ``max_iter`` is a safety net.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from .._validate import check_engine, check_positive, check_positive_int
from ..kernels import cpu, cpu_cd
from ..model.dictionary import ConvDictionary
from ._certificates import DualityGap, relative_gap
from ._checks import check_codes, check_dictionary, check_local_signal, check_signal
from ._result import PursuitResult

BOUNDARIES = ("periodic", "valid")
#: Segments have ``max(1, n // SEGMENT_DIVISOR)`` positions. alphacsc uses ``2n - 1``; on its
#: problem (20 atoms of 32 taps, 10 x 4096, :mod:`mlverify.bench.csc1d`) ``n // 4`` reached
#: alphacsc's final objective in 3x fewer sweeps and 3-4x less time than ``2n - 1``
#: (``n // 2``: 2x; ``n // 8``: as ``n // 4``; measured on a loaded 2-core machine).
SEGMENT_DIVISOR = 4
#: Sweeps between two estimates of the duality gap (each costs about one sweep).
CHECK_PERIOD = 5
#: Initial activity threshold of a signal, in units of its standard deviation (alphacsc's
#: default ``tol``).
EPS_INIT = 1e-3


class _State:
    """Codes, residual and :math:`\\beta` of a batch in the canonical ``(B, ·, N)`` layout."""

    def __init__(self, D, y, codes, n_valid: int, engine: str):
        self.D = D
        self.engine = engine
        self.y = y
        self.codes = codes
        self.n_valid = n_valid
        cross = cpu_cd.cross_correlations(D.filters)
        n = D.kernel_size[0]
        self.diag64 = np.ascontiguousarray(cross[np.arange(D.n_atoms), np.arange(D.n_atoms),
                                                 n - 1])
        self.cross = cross.astype(D.dtype)
        self.diag = self.diag64.astype(D.dtype)
        self.inv_diag = (1.0 / self.diag64).astype(D.dtype)
        self.norms = np.sqrt(self.diag64)
        seg_len = max(1, n // SEGMENT_DIVISOR)
        self.seg_len = seg_len
        self.active = np.ones((codes.shape[0], -(-n_valid // seg_len)), np.uint8)
        self.eps = EPS_INIT * y.std(axis=(1, 2), dtype=np.float64)
        self.resync()

    def resync(self) -> None:
        """Recompute the residual and :math:`\\beta` from the codes (float64, then cast)."""
        d64 = ConvDictionary(self.D.filters.astype(np.float64))
        codes64 = self.codes.astype(np.float64)
        resid = self.y.astype(np.float64) - d64.synthesize(codes64, engine=self.engine)
        beta = d64.analyze(resid, engine=self.engine) + self.diag64[:, None] * codes64
        self.resid = resid.astype(self.D.dtype)
        self.beta = beta.astype(self.D.dtype)
        self.active[:] = 1


def bp_cd(
    D,
    y,
    lam,
    *,
    nonneg: bool = False,
    tol: float = 1e-4,
    max_iter: int = 10000,
    engine: str = "auto",
    x0=None,
    check_every: int = CHECK_PERIOD,
    callback: Callable[[int, np.ndarray], bool | None] | None = None,
    boundary: str = "periodic",
) -> PursuitResult:
    r"""1-D basis pursuit :math:`\min \tfrac12\|y - D\Gamma\|^2 + \lambda\|\Gamma\|_1` by LGCD.

    See the module docstring for the algorithm (Moreau, Oudre, Vayatis, ICML 2018), the
    boundary conventions and the stopping certificate.

    Parameters
    ----------
    D : ConvDictionary
        A 1-D dictionary (filters ``(m, c, n)``), float32 or float64. 2-D dictionaries are not
        supported by this solver.
    y : ndarray, shape ``(..., c, N)``
        Signal(s), same dtype as ``D``; leading axes are a batch of independent problems (the
        objective and the certificate are their sums).
    lam : float
        :math:`\lambda \ge 0`; for :math:`\lambda \ge \lambda_{max}` the zero codes are returned
        at once (status ``"exact"``).
    nonneg : bool
        Add the constraint :math:`\Gamma \ge 0`.
    tol : float
        Target certified relative duality gap, ``> 0``.
    max_iter : int
        Safety net on the number of sweeps (status ``"max_iter"``).
    engine : {"auto", "numpy", "cpu"}
        ``"cpu"``/``"auto"``: the Numba kernels; ``"numpy"``: their NumPy oracles.
    x0 : ndarray, shape ``(..., m, N)``, optional
        Initial codes (``>= 0`` when ``nonneg``; 0 on the last ``n - 1`` positions when
        ``boundary="valid"``).
    check_every : int
        Sweeps between two estimates of the duality gap.
    callback : callable, optional
        ``callback(iteration, codes)`` after every sweep (``iteration`` = sweeps done so far,
        ``codes`` the current codes with the shape of the result, a view: do not modify it); a
        ``True`` return stops the solver with status ``"stopped"``.
    boundary : {"periodic", "valid"}
        Periodic model, or the non-periodic model of alphacsc (codes 0 on the last ``n - 1``
        positions).

    Returns
    -------
    PursuitResult
        ``codes = [Γ̂]``; ``certificate`` the certified relative duality gap
        (``certificate_kind = "relative_duality_gap"``); ``history`` with, at every certified
        check, ``iteration``, ``objective``, ``dual`` (best certified lower bound so far),
        ``relative_duality_gap``, ``kkt``, ``updates`` (coordinate updates so far, all signals)
        and ``time`` (seconds since the start). ``status``: ``"converged"``, ``"max_iter"``,
        ``"stopped"`` (callback), ``"non-finite"`` or ``"exact"``.

    References
    ----------
    Moreau, Oudre, Vayatis (2018), "DICOD: distributed convolutional coordinate descent for
    convolutional sparse coding", ICML; Moreau, Gramfort (2019), "Distributed convolutional
    dictionary learning (DiCoDiLe)"; Kavukcuoglu et al. (2010), "Learning convolutional feature
    hierarchies for visual recognition" (greedy coordinate descent).
    """
    D = check_dictionary("D", D)
    if D.spatial_ndim != 1:
        raise ValueError(f"bp_cd solves 1-D problems only, got a {D.spatial_ndim}-D dictionary "
                         "(use basis_pursuit with solver 'fista' or 'admm')")
    if not isinstance(boundary, str) or boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    valid = boundary == "valid"
    y = check_signal(D, "y", y) if valid else check_local_signal(D, "y", y)
    if not isinstance(nonneg, (bool, np.bool_)):
        raise TypeError(f"nonneg must be a bool, got {type(nonneg).__name__}")
    tol = check_positive("tol", tol)
    max_iter = check_positive_int("max_iter", max_iter)
    check_every = check_positive_int("check_every", check_every)
    engine = check_engine(engine)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    width, n = y.shape[-1], D.kernel_size[0]
    n_valid = width - n + 1 if valid else width
    support = None
    if valid:
        support = np.zeros((D.n_atoms, width), bool)
        support[:, :n_valid] = True
    if x0 is not None:
        x0 = check_codes(D, "x0", x0, y)
        if nonneg and (x0 < 0).any():
            raise ValueError("x0 must be >= 0 for non-negative basis pursuit")
        if valid and (x0[..., n_valid:] != 0).any():
            raise ValueError(f"x0 must be 0 on its last n - 1 = {n - 1} positions with "
                             "boundary='valid'")
    certificate = DualityGap(D, y, lam, nonneg=bool(nonneg), engine=engine, support=support)
    shape = (*y.shape[:-2], D.n_atoms, width)
    if y.size == 0 or certificate.lam >= certificate.lam_max:
        zeros = np.zeros(shape, D.dtype)
        gap = certificate.evaluate(zeros)[2]
        return PursuitResult(
            codes=[zeros], n_iter=0, converged=True, certificate=gap,
            certificate_kind="relative_duality_gap", status="exact",
            message="empty batch" if y.size == 0 else
            f"lam >= lam_max = {certificate.lam_max:.6g}: Gamma = 0 is optimal",
        )
    batch = math.prod(y.shape[:-2])
    codes = np.zeros((batch, D.n_atoms, width), D.dtype) if x0 is None else \
        x0.reshape(batch, D.n_atoms, width).copy()
    with cpu.threads_for(2 * codes.size * (2 * n - 1)):
        state = _State(D, y.reshape(batch, D.n_channels, width), codes, n_valid, engine)
        return _iterate(state, certificate, tol, max_iter, check_every, callback, shape,
                        bool(nonneg), valid)


def _iterate(state: _State, certificate: DualityGap, tol: float, max_iter: int,
             check_every: int, callback, shape, nonneg: bool, valid: bool) -> PursuitResult:
    """The sweeps, gap estimates and certified checks (see the module docstring)."""
    D = state.D
    lam = certificate.lam
    lam_t = D.dtype.type(lam)
    numpy = state.engine == "numpy"
    sweeps = cpu_cd.lgcd_sweeps_reference if numpy else cpu_cd.lgcd_sweeps
    terms_of = cpu_cd.gap_terms_reference if numpy else cpu_cd.gap_terms
    counts = np.zeros(state.codes.shape[0], np.int64)
    terms = np.zeros((state.codes.shape[0], 4))
    history: dict[str, list[float]] = {key: [] for key in (
        "iteration", "objective", "dual", "relative_duality_gap", "kkt", "updates", "time",
        "certified")}
    updates = 0
    best_dual = -math.inf  # the best certified lower bound of F_opt so far
    start = time.perf_counter()

    def codes_view() -> np.ndarray:
        return state.codes.reshape(shape)

    def record(iteration: int, values: dict[str, float]) -> float:
        for key, value in (("iteration", iteration), ("objective", values["primal"]),
                           ("dual", values["dual"]), ("relative_duality_gap", values["rel_gap"]),
                           ("kkt", values["kkt"]), ("updates", updates),
                           ("time", time.perf_counter() - start),
                           ("certified", values["certified"])):
            history[key].append(float(value))
        return values["rel_gap"]

    def check(iteration: int) -> float:
        nonlocal best_dual
        values = certificate.certificates(codes_view())
        best_dual = max(best_dual, values["dual"])
        values["dual"] = best_dual
        values["rel_gap"] = relative_gap(values["primal"], best_dual)
        return record(iteration, values)

    def estimate(iteration: int) -> float:
        terms_of(state.beta, state.codes, state.resid, state.y, state.diag, state.n_valid,
                 nonneg, terms)
        rr, yr, l1, corr = terms.T
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.clip(np.where(rr > 0, yr / rr, 0.0), 0.0,
                        np.where(corr > 0, lam / corr, np.inf))
            dual = float(np.sum(np.where(rr > 0, s * yr - 0.5 * s * s * rr, 0.0)))
        primal = float(0.5 * rr.sum() + lam * l1.sum())
        return record(iteration, {"primal": primal, "dual": dual, "kkt": math.nan,
                                  "rel_gap": relative_gap(primal, dual), "certified": False})

    def result(iteration: int, status: str, message: str) -> PursuitResult:
        last_certified = bool(history["certified"]) and history["certified"][-1] == 1.0
        if not last_certified or history["iteration"][-1] != iteration:
            check(iteration)
        return PursuitResult(
            codes=[codes_view().copy()], n_iter=iteration, converged=status == "converged",
            certificate=history["relative_duality_gap"][-1],
            certificate_kind="relative_duality_gap", history=history, status=status,
            message=message)

    iteration = 0
    while iteration < max_iter:
        step = 1 if callback is not None else min(check_every - iteration % check_every,
                                                  max_iter - iteration)
        sweeps(state.beta, state.codes, state.resid, D.filters, state.cross, state.inv_diag,
               state.norms, lam_t, nonneg, state.n_valid, not valid, state.seg_len, step,
               state.active, state.eps, counts)
        iteration += step
        updates += int(counts.sum())
        if callback is not None and callback(iteration, codes_view()):
            return result(iteration, "stopped", f"callback stopped the solver at sweep "
                                                f"{iteration}")
        if iteration % check_every and iteration < max_iter:
            continue
        approx = estimate(iteration)
        if not np.isfinite(terms).all():
            return result(iteration, "non-finite", f"non-finite state at sweep {iteration}")
        if approx <= tol or iteration == max_iter:
            if check(iteration) <= tol:
                return result(iteration, "converged", f"relative duality gap <= {tol:g}")
            state.resync()
    return result(iteration, "max_iter", f"max_iter = {max_iter} reached before tol")
