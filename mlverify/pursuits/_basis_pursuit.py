r"""Convolutional basis pursuit by FISTA with adaptive restart, stopped on a certified gap.

Solves (THEORY.md §3, always with the ½)

.. math::

    \min_\Gamma\ F(\Gamma) = \tfrac12\|y - D\Gamma\|_2^2 + \lambda\|\Gamma\|_1
    \quad\bigl(\text{s.t. } \Gamma \ge 0 \text{ when non-negative}\bigr)

with the accelerated proximal gradient method (Beck, Teboulle 2009) and the gradient restart
scheme of O'Donoghue, Candès (2015): with :math:`L = \|D\|_2^2` (exact, from the DFT),

.. math::

    x_{k+1} = \mathrm{prox}_{\lambda/L}\bigl(z_k - \tfrac1L D^T(Dz_k - y)\bigr),\quad
    t_{k+1} = \tfrac12\bigl(1 + \sqrt{1 + 4t_k^2}\bigr),\quad
    z_{k+1} = x_{k+1} + \tfrac{t_k - 1}{t_{k+1}}(x_{k+1} - x_k),

and the momentum is reset (:math:`t = 1`, :math:`z_{k+1} = x_{k+1}`) whenever
:math:`\langle z_k - x_{k+1}, x_{k+1} - x_k\rangle > 0` (the step went against the gradient
mapping). The prox is the soft threshold :math:`S_{\lambda/L}` (:math:`S^+_{\lambda/L}` when
non-negative).

The stopping rule is a **certificate**, not an iteration count: every ``check_every`` iterations
the relative duality gap of :math:`x_k` is computed (float64, see
:mod:`mlverify.pursuits._certificates`) and the solver stops once it is ``<= tol``, which proves
:math:`F(\hat\Gamma) \le F_{opt}(1 + tol)` (DESIGN.md §3); the best dual value of all checks
is kept (each is a lower bound of :math:`F_{opt}`). ``max_iter`` is only a safety net.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .._validate import ENGINES, check_engine, check_positive, check_positive_int
from ..kernels import cpu
from ._certificates import DualityGap, inner, relative_gap
from ._checks import check_codes
from ._result import PursuitResult
from ._threshold import _threshold

SOLVERS = ("auto", "fista", "admm", "cd")

#: The objective at a check may exceed the reference ``max(F(x0), ½‖y‖²)`` by at most this
#: factor before the run is declared diverged (FISTA with step 1/L never gets close to it).
DIVERGENCE_FACTOR = 100.0


def basis_pursuit(D, y, lam, nonneg: bool = False, tol: float = 1e-4, max_iter: int = 10000,
                  solver: str = "auto", engine: str = "auto", x0=None,
                  check_every: int = 10, callback=None) -> PursuitResult:
    r"""Convolutional basis pursuit :math:`\min \tfrac12\|y - D\Gamma\|^2 + \lambda\|\Gamma\|_1`.

    Parameters
    ----------
    D : ConvDictionary
        The dictionary (periodic, stride 1; float32 or float64).
    y : ndarray, shape ``(..., c, *S)``
        Signal(s) with the dictionary's dtype. Leading axes are a batch of independent problems
        solved together: the objective (and the certificate) is their sum, and FISTA shares one
        momentum sequence across the batch.
    lam : float
        :math:`\lambda \ge 0`. For :math:`\lambda \ge \lambda_{max} = \|D^Ty\|_\infty`
        (:math:`\max_j (D^Ty)_j` when non-negative) :math:`\Gamma = 0` is optimal and returned
        at once (status ``"exact"``). With :math:`\lambda = 0` and ``y`` in the range of
        :math:`D` the optimum is 0 and no relative certificate exists: the solver then runs to
        ``max_iter``.
    nonneg : bool
        Add the constraint :math:`\Gamma \ge 0` (prox :math:`S^+`).
    tol : float
        Target relative duality gap, ``> 0``: at convergence :math:`F \le F_{opt}(1 + tol)`.
    max_iter : int
        Safety net on the number of iterations (status ``"max_iter"`` when reached).
    solver : {"auto", "fista", "admm", "cd"}
        ``"fista"`` (and ``"auto"``): this module; ``"admm"``: the DFT-domain ADMM of
        :mod:`mlverify.pursuits._bp_admm`; ``"cd"``: locally greedy coordinate descent
        (1-D dictionaries, :mod:`mlverify.pursuits._bp_cd`).
    engine : {"auto", "numpy", "cpu", "cuda"}
        Engine of the operators and the prox. ``"cuda"`` (FISTA only) keeps the iterations on
        the GPU (``y`` may be a device array; the codes come back in its array library) and
        solves a batch as **independent** problems, each with its own momentum and stop
        (:mod:`mlverify.pursuits._device`), where the CPU engines solve the batch jointly.
    x0 : ndarray, shape ``(..., m, *S)``, optional
        Initial codes (warm start), the dictionary's dtype; non-negative when ``nonneg``.
    check_every : int
        Iterations between two certificate evaluations (each costs about one iteration, in
        float64).
    callback : callable, optional
        ``callback(iteration, codes)``, called after every iteration with the current iterate
        (the sparse one: FISTA's :math:`x_k`, ADMM's :math:`Z`; a view to read, not to keep or
        modify). A true return value stops the solver (status ``"stopped"``, certificate of the
        last iterate). Its time counts as solver time.

    Returns
    -------
    PursuitResult
        ``codes = [Γ̂]``; ``certificate`` the certified relative duality gap of Γ̂
        (``certificate_kind = "relative_duality_gap"``); ``history`` with, at every check,
        ``iteration``, ``objective``, ``dual`` (the best certified lower bound of
        :math:`F_{opt}` so far), ``relative_duality_gap``, ``kkt`` (∞-norm
        optimality residual), ``restarts`` (cumulative), ``time`` (seconds since the start) and
        ``certified`` (1.0, or 0.0 for a DFT estimate that only decided not to certify yet:
        :meth:`~mlverify.pursuits._certificates.DualityGap.stopping_test`); the last entry is
        always certified.
        ``status`` is ``"converged"``, ``"max_iter"``, ``"diverged"`` (objective blew up),
        ``"non-finite"`` (the last finite iterate is returned) or ``"stopped"`` (by
        ``callback``).

    References
    ----------
    Beck, Teboulle (2009), "A fast iterative shrinkage-thresholding algorithm"; O'Donoghue,
    Candès (2015), "Adaptive restart for accelerated gradient schemes"; Papyan, Sulam, Elad
    (2017), "Working locally thinking globally" (convolutional BP).
    """
    if engine == "cuda":  # the device solver checks its arguments (y may be a device array)
        check_engine(engine, ENGINES)
        if solver == "admm" or callback is not None:
            raise ValueError("engine='cuda' runs FISTA without a callback (solver='admm' and "
                             "callback have no CUDA path)")
        from ._device import basis_pursuit as on_device

        return on_device(D, y, lam, nonneg=nonneg, tol=tol, max_iter=max_iter, x0=x0,
                         check_every=check_every)
    certificate = DualityGap(D, y, lam, nonneg=nonneg, engine=engine)
    y = certificate.y
    lam = certificate.lam
    tol = check_positive("tol", tol)
    max_iter = check_positive_int("max_iter", max_iter)
    check_every = check_positive_int("check_every", check_every)
    if not isinstance(solver, str) or solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    engine = check_engine(engine)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    if x0 is not None:
        x0 = check_codes(D, "x0", x0, y)
        if nonneg and (x0 < 0).any():
            raise ValueError("x0 must be >= 0 for non-negative basis pursuit")
    if solver == "admm":
        from ._bp_admm import bp_admm

        return bp_admm(D, y, lam, nonneg=nonneg, tol=tol, max_iter=max_iter, engine=engine,
                       x0=x0, check_every=check_every, callback=callback)
    if solver == "cd":
        from ._bp_cd import bp_cd

        return bp_cd(D, y, lam, nonneg=nonneg, tol=tol, max_iter=max_iter, engine=engine,
                     x0=x0, check_every=check_every, callback=callback)
    if y.size == 0 or lam >= certificate.lam_max:
        zeros = np.zeros((*y.shape[: -D.spatial_ndim - 1], D.n_atoms, *y.shape[-D.spatial_ndim:]),
                         D.dtype)
        gap = certificate.evaluate(zeros)[2]
        return PursuitResult(
            codes=[zeros], n_iter=0, converged=True, certificate=gap,
            certificate_kind="relative_duality_gap", status="exact",
            message="empty batch" if y.size == 0 else
            f"lam >= lam_max = {certificate.lam_max:.6g}: Gamma = 0 is optimal",
        )
    work = y.size * D.n_atoms * math.prod(D.kernel_size)  # multiply-adds per operator
    with cpu.threads_for(work):  # small problems: one thread (no parallel start-up per kernel)
        return _fista(D, certificate, tol, max_iter, check_every, engine, x0, callback)


def _fista(D, certificate: DualityGap, tol: float, max_iter: int, check_every: int, engine: str,
           x0, callback=None) -> PursuitResult:
    """FISTA with gradient restart on a validated problem (see the module docstring)."""
    y = certificate.y
    d = D.spatial_ndim
    lipschitz = D.spectral_norm(y.shape[-d:]) ** 2
    step = D.dtype.type(1.0 / lipschitz)
    beta = np.asarray(certificate.lam / lipschitz, dtype=D.dtype)
    kind = "relu" if certificate.nonneg else "soft"
    shape = (*y.shape[: -d - 1], D.n_atoms, *y.shape[-d:])
    x = np.zeros(shape, D.dtype) if x0 is None else x0.copy()
    z = x.copy()
    t = 1.0
    history: dict[str, list[float]] = {key: [] for key in (
        "iteration", "objective", "dual", "relative_duality_gap", "kkt", "restarts", "time",
        "certified")}
    reference = max(certificate.objective(x), 0.5 * inner(y, y))
    restarts = 0
    start = time.perf_counter()

    best_dual = -math.inf  # the best certified lower bound of F_opt so far

    def check(iteration: int, final: bool = False) -> dict[str, float]:
        nonlocal best_dual
        values = certificate.certificates(x) if final else certificate.stopping_test(x, tol)
        if values["certified"]:
            # every certified dual value is a lower bound of F_opt: keep the best one found
            best_dual = max(best_dual, values["dual"])
            values["dual"] = best_dual
            values["rel_gap"] = relative_gap(values["primal"], values["dual"])
        for key, value in (("iteration", iteration), ("objective", values["primal"]),
                           ("dual", values["dual"]), ("relative_duality_gap", values["rel_gap"]),
                           ("kkt", values["kkt"]), ("restarts", restarts),
                           ("time", time.perf_counter() - start),
                           ("certified", values["certified"])):
            history[key].append(float(value))
        return values

    status, message, iteration = "max_iter", f"max_iter = {max_iter} reached before tol", 0
    for iteration in range(1, max_iter + 1):
        residual = D.synthesize(z, engine=engine)
        residual -= y
        if not np.isfinite(residual).all():
            status, message = "non-finite", f"non-finite residual at iteration {iteration}"
            iteration -= 1
            break
        update = D.analyze(residual, engine=engine)
        update *= -step
        update += z
        x_new = _threshold(update, beta, kind, engine)
        dx = x_new - x
        progress = inner(z - x_new, dx)
        if not math.isfinite(progress):
            status, message = "non-finite", f"non-finite iterate at iteration {iteration}"
            iteration -= 1
            break
        if progress > 0:
            restarts += 1
            t = 1.0
            z = x_new.copy()
        else:
            t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
            dx *= D.dtype.type((t - 1.0) / t_next)
            z = x_new + dx
            t = t_next
        x = x_new
        if callback is not None and callback(iteration, x):
            status, message = "stopped", f"stopped by the callback at iteration {iteration}"
            break
        if iteration % check_every == 0 or iteration == max_iter:
            values = check(iteration)
            if values["certified"] and values["rel_gap"] <= tol:
                status, message = "converged", f"relative duality gap <= {tol:g}"
                break
            if values["primal"] > DIVERGENCE_FACTOR * reference:
                status = "diverged"
                message = (f"objective {values['primal']:.6g} exceeds {DIVERGENCE_FACTOR:g} x "
                           f"the initial {reference:.6g} at iteration {iteration}")
                break
    if not history["certified"] or not history["certified"][-1] or (
            history["iteration"][-1] != iteration):
        check(iteration, final=True)
    return PursuitResult(
        codes=[x], n_iter=iteration, converged=status == "converged",
        certificate=history["relative_duality_gap"][-1],
        certificate_kind="relative_duality_gap", history=history, status=status,
        message=message,
    )
