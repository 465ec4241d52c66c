r"""The ML-ISTA fixed-point gap of multi-layer basis pursuit (THEORY.md §3, §4).

Sulam, Aberdam, Beck, Elad, "On multi-layer basis pursuit, efficient algorithms and
convolutional neural networks", IEEE TPAMI 2019 ([MLBP]). Problem (P), two layers:

.. math::

    F(\gamma) = \tfrac12\|y - D_1D_2\gamma\|_2^2 + \lambda_1\|D_2\gamma\|_1
        + \lambda_2\|\gamma\|_1 .

- **MLISTA-gap** [D]: at a fixed point :math:`\gamma^*` of ML-ISTA (steps
  :math:`\mu \in (0, 1/\|D_1\|^2)`, :math:`t \in (0, 4\mu/(3\|D_2\|^2))`), with
  :math:`z = D_2\gamma^*` and :math:`u = S_{\mu\lambda_1}(z - \mu D_1^T(D_1z - y))`,

  .. math:: F(\gamma^*) - F_{opt} \le 2\lambda_1\|z - u\|_1 .

The bound holds at a fixed point only, so the check first computes one to machine precision:
ML-FISTA (same fixed points as ML-ISTA) to a moderate residual, then :func:`polish_fixed_point`
(the fixed point of the ML-ISTA map is the solution of a linear system once the supports and
signs of both thresholds are known), then a few ML-ISTA steps from the polished point, whose
fixed-point residual :math:`\|\gamma^{k+1} - \gamma^k\|/t` (computed by
:func:`mlverify.ml_ista` itself) certifies it. :math:`F_{opt}` comes from the independent ADMM
solver :func:`mlverify.solve_problem_p`, which brackets it with certified bounds
:math:`F_{lb} \le F_{opt} \le F_{ref}`, :math:`F_{ref} - F_{lb} \le 10^{-7}F_{ref}`.
``measured = F(γ*) − F_lb`` is an upper bound of the true gap (the conservative side), and
``measured <= bound`` proves the conclusion. A violation is declared only when it is certified,
:math:`F(\gamma^*) - F_{ref} > ` bound (the true gap is at least that); in the band between the
two (at most the reference's certified accuracy wide) the check counts as holding and
``details["undecided"]`` is 1.

The lecture's rate, :math:`\|\gamma^{k+1} - \gamma^k\| \le t\varepsilon \Rightarrow
F(\gamma^{k+1}) - F_{opt} \le \eta\varepsilon + (\beta + \kappa t)\mu` with unknown constants, is
not asserted: every check records one early ML-ISTA iterate and the fixed point, and
:func:`fit_lecture_constants` fits :math:`\eta, \beta, \kappa` over a run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import scipy.optimize

from ..pursuits import ml_fista, ml_ista, ml_objective, solve_problem_p
from ._base import Outcome, Theorem, register

#: Sizes of the dense instances (n, m_1, m_2): each trial costs a few tens of ms.
SIZES = (20, 30, 40)
#: A point is accepted as a fixed point when its residual ‖γ^{k+1} − γ^k‖/t is at most this.
FIXED_POINT_TOL = 1e-12
#: Relative accuracy of the ADMM reference: F_ref − F_lb <= REFERENCE_TOL · F_ref (certified).
REFERENCE_TOL = 1e-7
#: Iterations between two duality-gap evaluations of the reference (each costs several
#: iterations' worth of work).
REFERENCE_CHECK_EVERY = 25
#: Relative slack of the comparison: rounding of F and the residual left at the fixed point.
GAP_SLACK = 1e-10
#: ML-FISTA tolerances tried before each polish (stop at the first that polishes to a fixed point).
FISTA_TOLS = (1e-4, 1e-6, 1e-8, 1e-10, 1e-12)


@dataclass(frozen=True)
class MLISTAInstance:
    """Dense two-layer problem (P), ML-ISTA steps and the early iteration recorded for the fit."""

    D1: np.ndarray
    D2: np.ndarray
    y: np.ndarray
    lam1: float
    lam2: float
    mu: float
    t: float
    early_iter: int


def soft(values: np.ndarray, beta: float) -> np.ndarray:
    r""":math:`S_\beta(v) = \mathrm{sign}(v)\max(|v| - \beta, 0)`."""
    return np.sign(values) * np.maximum(np.abs(values) - beta, 0.0)


def inner_step(instance: MLISTAInstance, gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""``z = D_2γ`` and ``u = S_{μλ_1}(z − μD_1^T(D_1z − y))`` (step 1 of ML-ISTA)."""
    D1, mu = instance.D1, instance.mu
    z = instance.D2 @ gamma
    return z, soft(z - mu * (D1.T @ (D1 @ z - instance.y)), mu * instance.lam1)


def polish_fixed_point(instance: MLISTAInstance, gamma: np.ndarray) -> np.ndarray:
    r"""The fixed point of ML-ISTA with the supports and signs of both thresholds at ``gamma``.

    With :math:`Q, s_Q` the support and signs of the inner threshold at :math:`D_2\gamma` and
    :math:`P, s_P` those of ``gamma``, the ML-ISTA map is affine on the region where they stay
    the same: :math:`u = E_Q(E_Q^T((I - \mu D_1^TD_1)D_2\gamma + \mu D_1^Ty) - \mu\lambda_1 s_Q)`
    and :math:`\gamma = E_Px`, so the fixed-point equation
    :math:`x = x - \tfrac{t}{\mu}E_P^TD_2^T(D_2E_Px - u) - t\lambda_2 s_P` is the linear system
    :math:`E_P^TD_2^T(D_2E_P - U_Q)x = E_P^TD_2^Tc_Q - \mu\lambda_2 s_P` (independent of
    :math:`t`). Returns ``gamma`` unchanged when the system is singular; the caller certifies the
    result with ML-ISTA's own fixed-point residual (a wrong region gives a large residual).
    """
    D1, D2, mu = instance.D1, instance.D2, instance.mu
    P = gamma != 0
    if not P.any():
        return np.zeros_like(gamma)
    w = D2 @ gamma - mu * (D1.T @ (D1 @ (D2 @ gamma) - instance.y))
    Q = np.abs(w) > mu * instance.lam1
    columns = D2[:, P]
    U = np.zeros_like(columns)
    U[Q] = (columns - mu * (D1.T @ (D1 @ columns)))[Q]
    c = np.zeros(D2.shape[0])
    c[Q] = mu * (D1.T @ instance.y)[Q] - mu * instance.lam1 * np.sign(w[Q])
    system = columns.T @ (columns - U)
    rhs = columns.T @ c - mu * instance.lam2 * np.sign(gamma[P])
    try:
        x = np.linalg.solve(system, rhs)
    except np.linalg.LinAlgError:
        return gamma
    polished = np.zeros_like(gamma)
    polished[P] = x
    return polished


def fixed_point(instance: MLISTAInstance, engine: str = "auto") -> tuple[np.ndarray, float, int]:
    """An ML-ISTA fixed point: ``(γ*, residual, ML-FISTA iterations)``.

    ML-FISTA to each tolerance of :data:`FISTA_TOLS` in turn (warm-started), polished by
    :func:`polish_fixed_point`, then three ML-ISTA steps; returns at the first residual
    ``<= FIXED_POINT_TOL`` (else the last attempt, whose residual then says it is not one).
    """
    layers, lams = [instance.D1, instance.D2], [instance.lam1, instance.lam2]
    steps = {"mu": instance.mu, "t": instance.t, "engine": engine}
    start, total = None, 0
    for tol in FISTA_TOLS:
        accelerated = ml_fista(layers, instance.y, lams, tol=tol, max_iter=20000, x0=start,
                               check_every=50, **steps)
        total += accelerated.n_iter
        start = accelerated.codes[-1]
        plain = ml_ista(layers, instance.y, lams, tol=FIXED_POINT_TOL, max_iter=3,
                        x0=polish_fixed_point(instance, start), check_every=1, **steps)
        if plain.certificate <= FIXED_POINT_TOL:
            break
    return plain.codes[-1], float(plain.certificate), total


def _objective(instance: MLISTAInstance, gamma: np.ndarray) -> float:
    return ml_objective([instance.D1, instance.D2], instance.y, gamma,
                        [instance.lam1, instance.lam2])


@register
class MLISTAFixedPointGap(Theorem):
    r"""**MLISTA-gap** [D]: at an ML-ISTA fixed point, :math:`F(\gamma^*) - F_{opt} \le
    2\lambda_1\|z - u\|_1` (module docstring).

    Instances: dense :math:`D_1` (``n × m_1``, entries :math:`N(0, 1/n)`) and :math:`D_2`
    (``m_1 × m_2``, :math:`N(0, 1/m_1)`), sizes :data:`SIZES`, ``y = D_1D_2γ_0 + 0.05·noise``
    with a 4-sparse :math:`\gamma_0`, :math:`\lambda_1 \in [0.25, 0.5]\|D_1^Ty\|_\infty`,
    :math:`\lambda_2 \in [0.03, 0.12]\|(D_1D_2)^Ty\|_\infty` (non-trivial fixed points; the bound
    is tightest for a large λ_1 and a small λ_2). The knob moves :math:`\mu = (0.3 + 0.69\,
    \mathrm{knob})/\|D_1\|^2` toward the end of its range; :math:`t = 0.9 \cdot 4\mu/(3\|D_2\|^2)`.
    """

    id = "MLISTA-gap"
    paper = "MLBP"
    status = "D"
    statement = "γ* fixed point of ML-ISTA, z = D2γ*, u = S_μλ1(z − μD1ᵀ(D1z − y)) ⇒ " \
                "F(γ*) − F_opt ≤ 2λ1‖z − u‖₁"

    def summarise(self, details: list[Mapping[str, float]]) -> dict[str, float]:
        """The lecture's constants η, β, κ fitted over the run (:func:`fit_lecture_constants`)."""
        return fit_lecture_constants(details)

    def sample(self, rng: np.random.Generator, knob: float) -> MLISTAInstance:
        n, m1, m2 = SIZES
        D1 = rng.standard_normal((n, m1)) / np.sqrt(n)
        D2 = rng.standard_normal((m1, m2)) / np.sqrt(m1)
        gamma0 = np.zeros(m2)
        gamma0[rng.choice(m2, 4, replace=False)] = rng.standard_normal(4)
        y = D1 @ (D2 @ gamma0) + 0.05 * rng.standard_normal(n)
        lam1 = float(rng.uniform(0.25, 0.5) * np.abs(D1.T @ y).max())
        lam2 = float(rng.uniform(0.03, 0.12) * np.abs((D1 @ D2).T @ y).max())
        mu = (0.3 + 0.69 * knob) / np.linalg.norm(D1, 2) ** 2
        t = 0.9 * 4.0 * mu / (3.0 * np.linalg.norm(D2, 2) ** 2)
        return MLISTAInstance(D1, D2, y, lam1, lam2, float(mu), float(t),
                              int(rng.integers(1, 30)))

    def hypotheses(self, instance: MLISTAInstance) -> dict[str, float]:
        mu, t = instance.mu, instance.t
        return {
            "mu": mu,
            "1/‖D1‖² - mu": 1.0 / np.linalg.norm(instance.D1, 2) ** 2 - mu,
            "t": t,
            "4mu/(3‖D2‖²) - t": 4.0 * mu / (3.0 * np.linalg.norm(instance.D2, 2) ** 2) - t,
            "lam1": instance.lam1,
            "lam2": instance.lam2,
        }

    def check(self, instance: MLISTAInstance, engine: str = "auto") -> Outcome:
        layers, lams = [instance.D1, instance.D2], [instance.lam1, instance.lam2]
        gamma, residual, fista_iter = fixed_point(instance, engine)
        z, u = inner_step(instance, gamma)
        bound = 2.0 * instance.lam1 * float(np.abs(z - u).sum())
        value = _objective(instance, gamma)
        reference = solve_problem_p(layers, instance.y, lams, tol=REFERENCE_TOL, engine=engine,
                                    check_every=REFERENCE_CHECK_EVERY)
        lower = reference.history["dual_objective"][-1]
        upper = reference.history["objective"][-1]
        gap = value - lower  # >= F(γ*) − F_opt: the conservative side
        # The lecture's rate: one early iterate of plain ML-ISTA from zero.
        early = ml_ista(layers, instance.y, lams, mu=instance.mu, t=instance.t,
                        max_iter=instance.early_iter, tol=FIXED_POINT_TOL, check_every=1,
                        engine=engine)
        slack = GAP_SLACK * max(abs(value), 1.0)
        proven = gap <= bound + slack
        violated = value - upper > bound + slack  # certified: F(γ*) − F_opt >= F(γ*) − F_ref
        holds = residual <= FIXED_POINT_TOL and reference.converged and not violated
        return Outcome(gap, bound, bool(holds), {
            "fixed_point_residual": residual,
            "gap": gap,
            "gap_lower_estimate": value - upper,
            "undecided": float(not proven and not violated),
            "reference_relative_gap": reference.certificate,
            "fista_iterations": float(fista_iter),
            "nnz": float(np.count_nonzero(gamma)),
            "mu": instance.mu,
            "t": instance.t,
            "lecture_eps": early.history["fixed_point_residual"][-1],
            "lecture_gap": early.history["objective"][-1] - lower,
        })


def fit_lecture_constants(records: Iterable[Mapping[str, float]]) -> dict[str, float]:
    r"""Fit the lecture's :math:`F(\gamma^{k+1}) - F_{opt} \le \eta\varepsilon +
    (\beta + \kappa t)\mu` over a run (reported, never asserted), two ways.

    - **Least squares** (non-negative): the constants that best describe the typical gap.
    - **Envelope**: the non-negative constants of smallest total :math:`\sum_k` fit that make the
      bound hold on every record (a linear programme), i.e. the empirical constants of the
      lecture's inequality on this run.

    Parameters
    ----------
    records : iterable of mappings
        ``Outcome.details`` of :class:`MLISTAFixedPointGap` checks. Each gives two rows: the
        early iterate (``lecture_eps`` → ``lecture_gap``) and the fixed point
        (``fixed_point_residual`` → ``gap``), both with the features :math:`(\varepsilon, \mu,
        t\mu)`.

    Returns
    -------
    dict
        ``eta``, ``beta``, ``kappa`` (least squares), ``rms`` (its root-mean-square residual),
        ``max_excess`` (largest ``gap − fit``), ``eta_envelope``, ``beta_envelope``,
        ``kappa_envelope`` and ``rows``.
    """
    features, targets = [], []
    for record in records:
        mu, t = record["mu"], record["t"]
        features.append([record["lecture_eps"], mu, t * mu])
        targets.append(record["lecture_gap"])
        features.append([record["fixed_point_residual"], mu, t * mu])
        targets.append(record["gap"])
    if not features:
        raise ValueError("records must hold at least one MLISTA-gap check")
    X, b = np.asarray(features, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    coef, _ = scipy.optimize.nnls(X, b)
    fit = X @ coef
    envelope = scipy.optimize.linprog(X.sum(axis=0), A_ub=-X, b_ub=-b, bounds=(0, None))
    env = envelope.x if envelope.success else np.full(3, np.nan)
    return {"eta": float(coef[0]), "beta": float(coef[1]), "kappa": float(coef[2]),
            "rms": float(np.sqrt(np.mean((b - fit) ** 2))), "max_excess": float(np.max(b - fit)),
            "eta_envelope": float(env[0]), "beta_envelope": float(env[1]),
            "kappa_envelope": float(env[2]), "rows": float(len(b))}
