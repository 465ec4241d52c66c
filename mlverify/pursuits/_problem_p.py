r"""Problem (P) of multi-layer basis pursuit and an independent high-accuracy ADMM solver.

Problem (P) (Sulam, Aberdam, Beck, Elad, "On multi-layer basis pursuit", 2019; THEORY.md §3):

.. math::

    F(\gamma) = \tfrac12\|y - D^{(L)}\gamma\|_2^2
        + \sum_{i<L} \lambda_i \|D^{(i,L)}\gamma\|_1 + \lambda_L\|\gamma\|_1,
    \qquad D^{(i,L)} = D_{i+1}\cdots D_L .

It is a *generalised lasso* :math:`\min_x \tfrac12\|y - Ax\|^2 + \sum_i \lambda_i\|B_i x\|_1`
(:math:`A = D^{(L)}`, :math:`B_i = D^{(i,L)}`, :math:`B_L = I`), solved here by ADMM with the
splits :math:`u_i = B_i x` (THEORY.md §4: :math:`u_1 = D_2\gamma`, :math:`u_2 = \gamma` for two
layers). The :math:`x`-update :math:`(A^TA + \rho\sum_i B_i^TB_i)\,x = A^Ty + \rho\sum_i
B_i^T(u_i - w_i)` is solved exactly (:func:`mlverify.pursuits._linear.normal_solver`: per
frequency in the DFT domain for periodic convolutions, Cholesky for dense matrices).

The stopping rule is a rigorous **duality gap**. The dual of the generalised lasso is

.. math::

    \max_{\theta, v}\; -\tfrac12\|\theta\|^2 - \theta^T y \quad \text{s.t.}\quad
    A^T\theta = \sum_i B_i^T v_i,\ \ \|v_i\|_\infty \le \lambda_i

(:math:`v_i \ge -\lambda_i` instead of the box for the non-negative problem). From the iterate,
:math:`\theta = Ax - y` and the ADMM multipliers :math:`\hat v_i = -\rho w_i`; the correction
:math:`v_i = \hat v_i + B_i c`, :math:`(\sum_i B_i^TB_i)c = A^T\theta - \sum_i B_i^T\hat v_i`,
makes the equality exact (after a few rounds of alternating projection between the boxes and
this affine set, which bring the estimate close to both), and a common scaling
:math:`s \in [0, s_{\max}]` (the best one for the dual objective) makes the boxes hold.
``F(x) - dual`` then bounds ``F(x) - F_opt`` from above; the solver keeps the best primal point
and the best dual value seen, both valid bounds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._validate import as_float_array, check_finite, check_positive, check_positive_int
from ._linear import Operator, layer_operators, normal_solver, suffix_products
from ._result import PursuitResult

#: ADMM adapts ρ by residual balancing (Boyd et al. 2011, §3.4.1) at iterations whose spacing
#: grows geometrically by this factor (from ``check_every``), so ρ changes finitely often per
#: decade of iterations and the fixed-ρ convergence theory applies between changes.
ADAPT_GROWTH = 1.5
#: Rounds of alternating projection (box, then the affine set) applied to the dual estimate
#: before the final scaling: they bring the common scale s close to 1, so the lower bound is tight.
DUAL_ROUNDS = 3


def check_lams(lams, n_layers: int, *, positive: bool) -> np.ndarray:
    """Validate the per-layer weights ``[λ_1, …, λ_L]`` (finite, ``>= 0`` or ``> 0``)."""
    try:
        values = np.asarray(lams, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"lams must be a sequence of {n_layers} numbers") from None
    if values.ndim == 0 and n_layers == 1:
        values = values.reshape(1)
    if values.shape != (n_layers,):
        raise ValueError(f"lams must hold one weight per layer ({n_layers}), got shape "
                         f"{values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("lams contains NaN or infinite values")
    if positive and np.any(values <= 0):
        raise ValueError(f"lams must be > 0, got {values.tolist()}")
    if np.any(values < 0):
        raise ValueError(f"lams must be >= 0, got {values.tolist()}")
    return values


def layer_objective(ops: Sequence[Operator], y: np.ndarray, gamma: np.ndarray, lams) -> float:
    """:math:`F(\\gamma)` of problem (P) from the per-layer operators, accumulated in float64."""
    chain = [gamma]
    for op in reversed(ops):
        chain.append(op.forward(chain[-1]))
    return chain_objective(chain[::-1], y, lams)


def chain_objective(chain: Sequence[np.ndarray], y: np.ndarray, lams) -> float:
    """:math:`F(\\gamma)` of problem (P) from the chain
    :math:`[D^{(L)}\\gamma, D^{(1,L)}\\gamma, \\dots, D^{(L-1,L)}\\gamma, \\gamma]` (the signal's
    reconstruction, the back-projections, the deepest code), accumulated in float64 (the
    penalties from the deepest layer up)."""
    value = 0.0
    for v, lam in zip(reversed(chain[1:]), reversed(lams), strict=True):
        value += float(lam) * float(np.abs(v).sum(dtype=np.float64))
    residual = chain[0].astype(np.float64) - y.astype(np.float64)
    return 0.5 * float(np.vdot(residual, residual)) + value


def ml_objective(model, y, gamma, lams, *, engine: str = "auto") -> float:
    r"""The objective of problem (P), computed in float64.

    .. math::

        F(\gamma) = \tfrac12\|y - D^{(L)}\gamma\|_2^2 + \sum_{i<L}\lambda_i\|D^{(i,L)}\gamma\|_1
            + \lambda_L\|\gamma\|_1

    Parameters
    ----------
    model : MLCSC, sequence of ConvDictionary, or sequence of 2-D arrays
        The layers :math:`D_1, \dots, D_L`.
    y : ndarray
        Signal ``(m_0, *S)`` (convolutional) or vector (dense), the model's dtype.
    gamma : ndarray
        Deepest code :math:`\gamma = \Gamma_L`, the model's dtype.
    lams : sequence of float
        :math:`[\lambda_1, \dots, \lambda_L]`, each ``>= 0``.
    engine : {"auto", "numpy", "cpu"}
    """
    ops, y = layer_operators(model, y, engine=engine)
    gamma = check_code("gamma", gamma, ops)
    lams = check_lams(lams, len(ops), positive=False)
    ops64, _ = layer_operators(model, y, engine=engine, dtype=np.float64)
    return layer_objective(ops64, y, gamma.astype(np.float64), lams)


def check_code(name: str, gamma, ops: Sequence[Operator]) -> np.ndarray:
    """Check a deepest code against the deepest operator's input space and dtype."""
    gamma = as_float_array(name, gamma, dtype=ops[0].dtype)
    if gamma.shape != ops[-1].in_shape:
        raise ValueError(f"{name} must have shape {ops[-1].in_shape}, got {gamma.shape}")
    check_finite(name, gamma)
    return gamma


def generalized_lasso_admm(
    A: Operator,
    Bs: Sequence[Operator],
    lams: np.ndarray,
    y: np.ndarray,
    *,
    nonneg: bool,
    tol: float,
    max_iter: int,
    check_every: int = 10,
) -> tuple[np.ndarray, PursuitResult]:
    r"""ADMM for :math:`\min_x \tfrac12\|y - Ax\|^2 + \sum_i\lambda_i\|B_ix\|_1` (float64).

    ``A`` and ``Bs`` share their input space and are float64 operators of one kind; the normal
    matrix :math:`\sum_i B_i^TB_i` must be invertible (e.g. one :math:`B_i` is the identity or
    has orthonormal columns) and every :math:`\lambda_i > 0`. With ``nonneg`` every
    :math:`B_i x` is also constrained to be :math:`\ge 0`. Stops when the relative duality gap
    ``(F - dual) / max(F, tiny)`` is ``<= tol`` (tested every ``check_every`` iterations). With
    ``nonneg`` the iterate :math:`x` is feasible only in the limit, so :math:`F(x)` bounds
    :math:`F_{opt}` from above only approximately: the rule then also requires the relative
    constraint violation ``max_i max(-B_i x) / max(1, ‖B_i x‖_∞)`` to be ``<= tol`` (and the gap
    to be ``<= tol`` in absolute value); the dual value stays a rigorous lower bound.

    Returns
    -------
    x : ndarray
        The checked iterate with the smallest objective (the last checked one with ``nonneg``),
        float64.
    result : PursuitResult
        ``codes`` empty (the callers fill them); certificate ``relative_duality_gap``; history
        per check: ``iteration``, ``objective`` (best so far, :math:`F` of the returned point at
        the end), ``dual_objective`` (best lower bound so far), ``relative_gap`` (of these two),
        ``rho``, ``violation``.
    """
    rho = max(A.norm() ** 2, np.finfo(np.float64).tiny)
    solve = normal_solver([A, *Bs], [1.0] + [rho] * len(Bs))
    correct = normal_solver(Bs, [1.0] * len(Bs))
    aty = A.adjoint(y)
    x = np.zeros(A.in_shape)
    u = [np.zeros(B.out_shape) for B in Bs]
    w = [np.zeros(B.out_shape) for B in Bs]
    history: dict[str, list[float]] = {
        "iteration": [], "objective": [], "dual_objective": [], "relative_gap": [], "rho": [],
        "violation": [],
    }
    status, gap = "max_iter", float("inf")
    best_primal, best_dual, best_x = np.inf, -np.inf, x
    it, next_adapt, period = 0, check_every, float(check_every)
    for it in range(1, max_iter + 1):
        rhs = aty + rho * sum(B.adjoint(ui - wi) for B, ui, wi in zip(Bs, u, w, strict=True))
        x = solve(rhs)
        bx = [B.forward(x) for B in Bs]
        u_old = u
        u = [B.shrink(bxi + wi, lam / rho, nonneg) for B, bxi, wi, lam in
             zip(Bs, bx, w, lams, strict=True)]
        w = [wi + bxi - ui for wi, bxi, ui in zip(w, bx, u, strict=True)]
        if it % check_every and it != max_iter:
            continue
        if not np.isfinite(x).all():
            status = "non-finite"
            break
        primal, dual = _gap(A, Bs, lams, y, x, bx, w, rho, correct, nonneg)
        if not np.isfinite(primal):
            status = "non-finite"
            break
        violation = _violation(bx) if nonneg else 0.0
        if nonneg or primal <= best_primal:
            best_primal, best_x = primal, x
        best_dual = max(best_dual, dual)
        gap = (best_primal - best_dual) / max(abs(best_primal), np.finfo(np.float64).tiny)
        for key, value in zip(history, (it, best_primal, best_dual, gap, rho, violation),
                              strict=True):
            history[key].append(float(value))
        if abs(gap) <= tol and violation <= tol:
            status = "converged"
            break
        if it >= next_adapt:
            period *= ADAPT_GROWTH
            next_adapt = it + int(period)
            r_primal = np.sqrt(sum(np.vdot(b - c, b - c) for b, c in zip(bx, u, strict=True)))
            change = sum(B.adjoint(c - o) for B, c, o in zip(Bs, u, u_old, strict=True))
            r_dual = rho * np.linalg.norm(change)
            factor = 2.0 if r_primal > 10 * r_dual else 0.5 if r_dual > 10 * r_primal else 1.0
            if factor != 1.0:
                rho *= factor
                w = [wi / factor for wi in w]
                solve = normal_solver([A, *Bs], [1.0] + [rho] * len(Bs))
    messages = {
        "converged": f"relative duality gap {gap:.3e} within tol {tol:.1e} after {it} iterations",
        "max_iter": f"max_iter={max_iter} reached with relative duality gap {gap:.3e}",
        "non-finite": f"non-finite iterate or objective at iteration {it}",
    }
    if status != "non-finite":
        x = best_x
    result = PursuitResult(
        codes=[], n_iter=it, converged=status == "converged", certificate=float(gap),
        certificate_kind="relative_duality_gap", history=history, status=status,
        message=messages[status],
    )
    return x, result


def _violation(bx) -> float:
    """Largest relative violation of the constraints ``B_i x >= 0`` (non-negative problem)."""
    return max(float(np.max(-b)) / max(float(np.max(np.abs(b))), 1.0) for b in bx)


def _gap(A, Bs, lams, y, x, bx, w, rho, correct, nonneg) -> tuple[float, float]:
    """Primal value at ``x`` and the value of a feasible dual point built from the multipliers."""
    theta = A.forward(x) - y
    primal = 0.5 * float(np.vdot(theta, theta)) + sum(
        lam * float(np.abs(b).sum()) for lam, b in zip(lams, bx, strict=True)
    )
    aty = A.adjoint(theta)
    v = [-rho * wi for wi in w]
    for rounds in range(DUAL_ROUNDS + 1):
        if rounds:
            v = [np.clip(vi, -lam, None if nonneg else lam) for vi, lam in
                 zip(v, lams, strict=True)]
        mismatch = aty - sum(B.adjoint(vi) for B, vi in zip(Bs, v, strict=True))
        c = correct(mismatch)
        v = [vi + B.forward(c) for B, vi in zip(Bs, v, strict=True)]
    scale = np.inf
    for lam, vi in zip(lams, v, strict=True):
        largest = float(np.max(-vi)) if nonneg else float(np.max(np.abs(vi)))
        if largest > 0:
            scale = min(scale, lam / largest)
    sq = float(np.vdot(theta, theta))
    ty = float(np.vdot(theta, y))
    best = -ty / sq if sq > 0 else 0.0
    s = min(max(best, 0.0), scale)
    return primal, -0.5 * s * s * sq - s * ty


def solve_problem_p(
    model,
    y,
    lams,
    *,
    tol: float = 1e-10,
    max_iter: int = 50000,
    nonneg: bool = False,
    engine: str = "auto",
    check_every: int = 10,
) -> PursuitResult:
    r"""High-accuracy solution of problem (P) by ADMM, certified by a duality gap.

    An independent reference for :math:`F_{opt}` (THEORY.md §4, MLISTA fixed-point gap), not a
    fast pursuit: it works in float64 whatever the model's dtype.

    Parameters
    ----------
    model : MLCSC, sequence of ConvDictionary, or sequence of 2-D arrays
        The layers :math:`D_1, \dots, D_L` (periodic convolutional, or dense matrices).
    y : ndarray
        Signal ``(m_0, *S)`` or vector, the model's dtype.
    lams : sequence of float
        :math:`[\lambda_1, \dots, \lambda_L]`, all ``> 0`` (the dual certificate needs them).
    tol : float
        Bound on the relative duality gap at return: ``F(γ) <= F_opt (1 + tol)``.
    max_iter : int
        Iteration limit.
    nonneg : bool
        Also constrain every :math:`D^{(i,L)}\gamma \ge 0` (the prox becomes :math:`S^+`).
    engine : {"auto", "numpy", "cpu"}
        Engine of the convolutions (the DFT solves use NumPy/SciPy).
    check_every : int
        Iterations between two duality-gap evaluations.

    Returns
    -------
    PursuitResult
        ``codes = [D^(1,L)γ, …, D^(L-1,L)γ, γ]`` (back-projected, so consistent with (P)) in the
        model's dtype; certificate ``relative_duality_gap``; ``history["objective"][-1]`` is
        :math:`F(\gamma)` (float64) and ``history["dual_objective"][-1]`` a certified lower
        bound on :math:`F_{opt}`; with ``nonneg``, ``history["violation"]`` is the relative
        constraint violation (see :func:`generalized_lasso_admm`).
    """
    ops, y = layer_operators(model, y, engine=engine)
    lams = check_lams(lams, len(ops), positive=True)
    tol = check_positive("tol", tol)
    max_iter = check_positive_int("max_iter", max_iter)
    check_every = check_positive_int("check_every", check_every)
    ops64, _ = layer_operators(model, y, engine=engine, dtype=np.float64)
    tails = suffix_products(ops64)
    gamma, result = generalized_lasso_admm(
        tails[0], tails[1:], lams, y.astype(np.float64), nonneg=bool(nonneg), tol=tol,
        max_iter=max_iter, check_every=check_every,
    )
    result.codes = [B.forward(gamma).astype(y.dtype) for B in tails[1:]]
    if result.history["objective"]:
        result.message += f"; F = {result.history['objective'][-1]:.15g}"
    return result
