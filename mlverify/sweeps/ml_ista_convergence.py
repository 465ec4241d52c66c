r"""Built-in sweep ``ml-ista-convergence``: :math:`F(\gamma^k) - F_{opt}` of four solvers of (P).

THEORY.md §6, [MLBP] convergence (Sulam, Aberdam, Beck, Elad, "On multi-layer basis pursuit,
efficient algorithms and convolutional neural networks", IEEE TPAMI 2019). Problem (P), two
layers:

.. math::

    F(\gamma) = \tfrac12\|y - D_1D_2\gamma\|_2^2 + \lambda_1\|D_2\gamma\|_1
        + \lambda_2\|\gamma\|_1 .

**Instances** (dense, the paper's sizes :math:`n = 50`, :math:`m_1 = 100`, :math:`m_2 = 200`;
the remaining choices are ours): :math:`D_1` with i.i.d. :math:`N(0, 1/n)` entries, :math:`D_2`
with :math:`N(0, 1/m_1)` entries, :math:`y = D_1D_2\gamma_0 + \sigma e` with :math:`\gamma_0`
:data:`SPARSITY`-sparse (standard normal non-zeros), :math:`\sigma =` :data:`NOISE`,
:math:`\lambda_1 =` :data:`LAM1_FRACTION` :math:`\|D_1^Ty\|_\infty` and :math:`\lambda_2 =`
:data:`LAM2_FRACTION` :math:`\|(D_1D_2)^Ty\|_\infty`. The instance is drawn from the grid axis
``instance`` (its seed), so every :math:`\mu` sees the same instances.

**Solvers**, each called afresh with ``max_iter = k`` for every checkpoint :math:`k` of
:data:`CHECKPOINTS` (``seconds_at_k`` is the wall time of that call, set-up included; the gap
is evaluated outside the timing):

- ``ml_ista``, ``ml_fista``: :func:`mlverify.ml_ista` / :func:`mlverify.ml_fista` with
  :math:`\mu = \mu_s/\|D_1\|^2` (:math:`\mu_s` the grid axis ``mu_scale``) and
  :math:`t = 0.9\cdot 4\mu/(3\|D_2\|^2)`, from :math:`\gamma^0 = 0`;
- ``fista``: :func:`fista_problem_p`, FISTA (Beck, Teboulle 2009) on
  :math:`f(\gamma) = \tfrac12\|y - D_1D_2\gamma\|^2` with step :math:`1/\|D_1D_2\|^2`, whose
  prox of the coupled penalty :math:`g = \lambda_1\|D_2\,\cdot\|_1 + \lambda_2\|\cdot\|_1` is
  computed by an inner fast dual proximal gradient (:func:`coupled_prox`), warm-started and
  stopped by its own duality gap (:func:`inner_tolerance`, at most :data:`MAX_INNER` steps);
  one iteration = one outer step (its inner steps are what makes it costly per iteration);
- ``admm``: :func:`mlverify.solve_problem_p` (ADMM with the splits :math:`u_1 = D_2\gamma`,
  :math:`u_2 = \gamma`; the returned point is the best one among its duality-gap checks, every
  10 iterations).

:math:`F_{opt}`: the certified dual lower bound :math:`F_{lb}` of a high-accuracy ADMM solve
(relative duality gap :data:`REFERENCE_TOL`), so every recorded gap
:math:`F(\gamma^k) - F_{lb}` is an upper bound of the true gap and is positive; gaps below the
reference's accuracy :math:`F_{ref} - F_{lb}` are not resolved: a solver's curve ends (NaN at
the later checkpoints, which are not run) at its first gap below :data:`RESOLUTION_FACTOR` times
that accuracy. Trials run with OpenBLAS on one thread (:func:`single_threaded_blas`).

**Record** per trial (one instance, one :math:`\mu`): ``<method>_gap_at_<k>`` and
``<method>_seconds_at_<k>`` for every method of :data:`METHODS` and checkpoint, ``mu``, ``t``,
``lam1``, ``lam2``, ``f_opt``, ``reference_accuracy``, ``reference_converged``,
``fixed_point_gap``, ``fixed_point_bound``, ``fixed_point_residual``, ``fixed_point_nnz``,
``blas_single_threaded``.

**The floor** (THEORY.md §4, MLISTA fixed-point gap): with a fixed :math:`\mu`, ML-ISTA and
ML-FISTA converge to a fixed point :math:`\gamma^*` of the ML-ISTA map, not to a minimiser of
(P): :math:`F(\gamma^*) - F_{opt} \le 2\lambda_1\|z - u\|_1` with :math:`z = D_2\gamma^*`,
:math:`u = S_{\mu\lambda_1}(z - \mu D_1^T(D_1z - y))`, an :math:`O(\mu)` floor. Each trial
computes :math:`\gamma^*` to machine precision (:func:`mlverify.theorems.mlbp.fixed_point`) and
records its gap and the bound; it does not assert :math:`F(\gamma^k) \to F_{opt}`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from .._validate import check_positive, check_positive_int
from ..pursuits import ml_fista, ml_ista, ml_objective, solve_problem_p
from ..pursuits._linear import Operator, layer_operators, suffix_products
from ..pursuits._problem_p import check_lams
from ..pursuits._result import PursuitResult
from ..theorems.mlbp import MLISTAInstance, fixed_point, inner_step
from .grid import Grid
from .report import aggregate, write_figure_and_summary
from .store import Row
from .sweep import Sweep

#: Sizes (n, m_1, m_2) of the dense two-layer instances.
SIZES = (50, 100, 200)
#: Non-zeros of the planted deepest code γ_0.
SPARSITY = 10
#: Standard deviation of the Gaussian noise added to D_1D_2γ_0.
NOISE = 0.05
#: λ_1 as a fraction of ‖D_1^T y‖_∞.
LAM1_FRACTION = 0.3
#: λ_2 as a fraction of ‖(D_1D_2)^T y‖_∞.
LAM2_FRACTION = 0.05
#: Iteration counts at which every solver's gap and time are recorded.
CHECKPOINTS = (1, 3, 10, 30, 100, 300, 1000, 3000)
#: Methods, in plotting order (record keys ``<method>_gap_at_<k>``, ``<method>_seconds_at_<k>``).
METHODS = ("ml_ista", "ml_fista", "fista", "admm")
#: Display names of :data:`METHODS`.
LABELS = {"ml_ista": "ML-ISTA", "ml_fista": "ML-FISTA", "fista": "FISTA (inner prox)",
          "admm": "ADMM"}
#: Relative duality gap of the reference solve that gives F_opt.
REFERENCE_TOL = 1e-10
#: Iterations between two duality-gap checks of the reference solve.
REFERENCE_CHECK_EVERY = 25
#: Iterations between two duality-gap checks of the timed ADMM runs (solve_problem_p's default).
ADMM_CHECK_EVERY = 10
#: A curve ends at the first gap below this multiple of the reference's accuracy.
RESOLUTION_FACTOR = 10.0
#: Tolerance of the timed runs: small enough that every run does its ``max_iter`` iterations.
RUN_TOL = 1e-300
#: Inner-prox tolerance scale c of :func:`inner_tolerance`.
INNER_TOL = 0.1
#: Iteration cap of one inner prox solve.
MAX_INNER = 100


def coupled_prox(
    v: np.ndarray,
    Bs: Sequence[Operator],
    weights: np.ndarray,
    weight_last: float,
    w: list[np.ndarray],
    *,
    lipschitz: float,
    tol: float,
    max_iter: int,
) -> tuple[np.ndarray, list[np.ndarray], float, int]:
    r"""Approximate :math:`\mathrm{prox}` of :math:`\sum_i a_i\|B_i\,\cdot\|_1 + b\|\cdot\|_1`
    at ``v`` by the fast dual proximal gradient method (Beck, Teboulle, "A fast dual proximal
    gradient algorithm for convex minimization and applications", Oper. Res. Lett. 2014).

    The prox problem :math:`\min_x \tfrac12\|x - v\|^2 + b\|x\|_1 + \sum_i a_i\|B_ix\|_1` has the
    dual :math:`\max_{\|w_i\|_\infty \le a_i} \min_x \tfrac12\|x - v\|^2 + b\|x\|_1 +
    \sum_i w_i^TB_ix`, whose inner minimiser is :math:`x(w) = S_b(v - \sum_i B_i^Tw_i)` and whose
    gradient in :math:`w_i` is :math:`B_ix(w)` (Lipschitz constant at most
    :math:`\sum_i\|B_i\|^2`). FISTA on the dual, with projection on the boxes, runs until the
    duality gap of :math:`x(w)`, :math:`\sum_i (a_i\|B_ix\|_1 - w_i^TB_ix) \ge 0`, is ``<= tol``
    or ``max_iter`` iterations were done.

    Parameters
    ----------
    v : ndarray
        The point (the deepest code's space).
    Bs : sequence of Operator
        :math:`B_1, \dots, B_{L-1}` (for two layers, :math:`B_1 = D_2`).
    weights : ndarray
        :math:`a_i \ge 0`.
    weight_last : float
        :math:`b \ge 0`.
    w : list of ndarray
        Dual starting point (warm start), inside the boxes.
    lipschitz : float
        A Lipschitz constant of the dual gradient, e.g. :math:`\sum_i\|B_i\|^2` (> 0).
    tol : float
        Target duality gap of the prox problem.
    max_iter : int
        Iteration cap.

    Returns
    -------
    x, w, gap, iterations
        The primal point :math:`x(w)`, the final dual point, its duality gap (an upper bound of
        the prox objective's excess at ``x``) and the iterations done.
    """
    lows = [-a for a in weights]

    def primal(dual: list[np.ndarray]) -> np.ndarray:
        back = sum(B.adjoint(wi) for B, wi in zip(Bs, dual, strict=True))
        return Bs[0].shrink(v - back, weight_last, False)

    def duality_gap(bx: list[np.ndarray], dual: list[np.ndarray]) -> float:
        return sum(a * float(np.abs(b).sum()) - float(np.vdot(wi, b))
                   for a, b, wi in zip(weights, bx, dual, strict=True))

    x = primal(w)
    bx = [B.forward(x) for B in Bs]
    gap = duality_gap(bx, w)
    point, tk, it = w, 1.0, 0
    while gap > tol and it < max_iter:
        it += 1
        x_point = primal(point)
        new = [np.clip(p + B.forward(x_point) / lipschitz, low, -low)
               for B, p, low in zip(Bs, point, lows, strict=True)]
        tk_next = (1.0 + math.sqrt(1.0 + 4.0 * tk * tk)) / 2.0
        beta = (tk - 1.0) / tk_next
        point = [n + beta * (n - o) for n, o in zip(new, w, strict=True)]
        w, tk = new, tk_next
        x = primal(w)
        bx = [B.forward(x) for B in Bs]
        gap = duality_gap(bx, w)
    return x, w, gap, it


def inner_tolerance(previous_step_sq: float | None, f_zero: float, lipschitz: float) -> float:
    r"""Duality-gap target of an inner prox (a relative-error rule, our heuristic choice).

    :math:`c\,\|\gamma^k - \gamma^{k-1}\|^2` (the prox is solved for :math:`g/L`, so this is
    :math:`c/L` times :math:`L^2\|\gamma^k - \gamma^{k-1}\|^2` in units of :math:`F`), and
    :math:`c\,F(0)/L` for the first step (``previous_step_sq`` None); :math:`c =`
    :data:`INNER_TOL` (with :math:`c = 1` FISTA diverged on a small convolutional instance:
    the accepted error then feeds the next step's length). The prox error thus shrinks with
    the outer steps, as inexact accelerated proximal methods need (Schmidt, Le Roux, Bach,
    NeurIPS 2011: errors in the prox objective summable against :math:`k`); no rate is claimed
    for this rule. The cap :data:`MAX_INNER` bounds each solve, so near convergence the prox is
    as accurate as that many inner steps make it.
    """
    if previous_step_sq is None:
        return INNER_TOL * f_zero / lipschitz
    return INNER_TOL * previous_step_sq


def fista_problem_p(
    model,
    y,
    lams,
    *,
    max_iter: int = 100,
    tol: float = 1e-6,
    max_inner: int = MAX_INNER,
    engine: str = "auto",
) -> PursuitResult:
    r"""FISTA on problem (P) with an inner iterative prox of the coupled penalty.

    .. math::

        z^k = \gamma^k + \tfrac{t_k - 1}{t_{k+1}}(\gamma^k - \gamma^{k-1}),\qquad
        \gamma^{k+1} \approx \mathrm{prox}_{g/L}\big(z^k - \tfrac1L D^{(L)T}(D^{(L)}z^k - y)
        \big),

    :math:`L = \|D^{(L)}\|^2`, :math:`g(\gamma) = \sum_{i<L}\lambda_i\|D^{(i,L)}\gamma\|_1 +
    \lambda_L\|\gamma\|_1`, the prox by :func:`coupled_prox` to the gap
    :func:`inner_tolerance` (relative to the last step), warm-started from the previous outer
    step's dual point.

    Parameters
    ----------
    model, y, lams
        As in :func:`mlverify.ml_ista` (periodic convolutional or dense layers, all
        :math:`\lambda_i \ge 0`).
    max_iter : int
        Outer iterations.
    tol : float
        Stop when the gradient-mapping norm :math:`L\|\gamma^{k+1} - z^k\|` is ``<= tol``.
    max_inner : int
        Iteration cap of each inner prox.
    engine : {"auto", "numpy", "cpu"}

    Returns
    -------
    PursuitResult
        ``codes = [D^(1,L)γ, …, γ]`` (back-projected); certificate the gradient-mapping norm;
        history per outer iteration: ``iteration``, ``inner_iterations``, ``prox_gap`` (the
        final inner duality gap).
    """
    ops, y = layer_operators(model, y, engine=engine)
    lams = check_lams(lams, len(ops), positive=False)
    max_iter = check_positive_int("max_iter", max_iter)
    max_inner = check_positive_int("max_inner", max_inner)
    tol = check_positive("tol", tol)
    tails = suffix_products(ops)
    A, Bs = tails[0], tails[1:-1]
    lipschitz = A.norm() ** 2
    if len(Bs) == 0 or lipschitz == 0:
        raise ValueError("fista_problem_p needs at least two layers and a non-zero D^(L)")
    f_zero = 0.5 * float(np.vdot(y.astype(np.float64), y.astype(np.float64)))
    gamma = np.zeros(A.in_shape, dtype=y.dtype)
    previous, tk = gamma, 1.0
    dual = [np.zeros(B.out_shape, dtype=y.dtype) for B in Bs]
    weights = lams[:-1] / lipschitz
    dual_lipschitz = max(sum(B.norm() ** 2 for B in Bs), np.finfo(np.float64).tiny)
    history: dict[str, list[float]] = {"iteration": [], "inner_iterations": [], "prox_gap": []}
    status, mapping, it, step_sq = "max_iter", float("inf"), 0, None
    for it in range(1, max_iter + 1):
        tk_next = (1.0 + math.sqrt(1.0 + 4.0 * tk * tk)) / 2.0
        point = gamma + np.asarray((tk - 1.0) / tk_next, gamma.dtype) * (gamma - previous)
        tk = tk_next
        v = point - A.adjoint(A.forward(point) - y) / np.asarray(lipschitz, y.dtype)
        if not np.isfinite(v).all():
            status = "non-finite"
            break
        new, dual, gap, inner = coupled_prox(
            v, Bs, weights, lams[-1] / lipschitz, dual, lipschitz=dual_lipschitz,
            tol=inner_tolerance(step_sq, f_zero, lipschitz), max_iter=max_inner)
        mapping = lipschitz * float(np.linalg.norm((new - point).astype(np.float64)))
        step_sq = float(np.sum((new - gamma).astype(np.float64) ** 2))
        previous, gamma = gamma, new.astype(y.dtype, copy=False)
        for key, value in zip(history, (it, inner, gap), strict=True):
            history[key].append(float(value))
        if mapping <= tol:
            status = "converged"
            break
    codes = [gamma]
    for op in reversed(ops[1:]):
        codes.append(op.forward(codes[-1]))
    messages = {"converged": f"FISTA: gradient mapping {mapping:.3e} <= tol after {it} steps",
                "max_iter": f"FISTA: max_iter={max_iter} reached, gradient mapping {mapping:.3e}",
                "non-finite": f"FISTA: non-finite values at iteration {it}"}
    return PursuitResult(
        codes=codes[::-1], n_iter=it, converged=status == "converged", certificate=mapping,
        certificate_kind="gradient_mapping", history=history, status=status,
        message=messages[status],
    )


@contextmanager
def single_threaded_blas() -> Iterator[int]:
    """Run the block with the BLAS libraries on one thread (threadpoolctl; restored afterwards).

    The instances' matrix-vector products are small: BLAS threads only contend with the other
    workers (on two busy cores a 100 × 200 product became about 100 times slower). Yields the
    number of BLAS libraries limited (0 where none was found: timings then carry that contention,
    and the report says so).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        yield sum(1 for lib in threadpool_info() if lib["user_api"] == "blas")


def sample(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """The dense instance ``(D1, D2, y, lam1, lam2)`` of ``seed`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n, m1, m2 = SIZES
    D1 = rng.standard_normal((n, m1)) / np.sqrt(n)
    D2 = rng.standard_normal((m1, m2)) / np.sqrt(m1)
    gamma0 = np.zeros(m2)
    gamma0[rng.choice(m2, SPARSITY, replace=False)] = rng.standard_normal(SPARSITY)
    y = D1 @ (D2 @ gamma0) + NOISE * rng.standard_normal(n)
    lam1 = LAM1_FRACTION * float(np.abs(D1.T @ y).max())
    lam2 = LAM2_FRACTION * float(np.abs((D1 @ D2).T @ y).max())
    return D1, D2, y, lam1, lam2


def _curve(method: str, run, layers, y, lams, f_lb: float, resolution: float,
           checkpoints) -> dict[str, float]:
    """``<method>_gap_at_k`` and ``<method>_seconds_at_k`` of fresh calls ``run(k)``.

    Once a gap is at most ``resolution`` (what the reference resolves), the later checkpoints
    are not run and are recorded as NaN: the curve ends there.
    """
    record, resolved = {}, False
    for k in checkpoints:
        gap = seconds = math.nan
        if not resolved:
            start = time.perf_counter()
            result = run(k)
            seconds = time.perf_counter() - start
            gap = ml_objective(layers, y, result.codes[-1], lams) - f_lb
            resolved = gap <= resolution
        record[f"{method}_gap_at_{k}"] = gap
        record[f"{method}_seconds_at_{k}"] = seconds
    return record


def run_instance(D1, D2, y, lam1: float, lam2: float, mu_scale: float,
                 checkpoints=CHECKPOINTS) -> dict:
    """All four solvers and the ML-ISTA fixed point on one instance: the trial's record."""
    layers, lams = [D1, D2], [lam1, lam2]
    mu = mu_scale / np.linalg.norm(D1, 2) ** 2
    t = 0.9 * 4.0 * mu / (3.0 * np.linalg.norm(D2, 2) ** 2)
    reference = solve_problem_p(layers, y, lams, tol=REFERENCE_TOL,
                                check_every=REFERENCE_CHECK_EVERY)
    f_lb = reference.history["dual_objective"][-1]
    f_ref = reference.history["objective"][-1]
    runs = {
        "ml_ista": lambda k: ml_ista(layers, y, lams, mu=mu, t=t, max_iter=k, tol=RUN_TOL,
                                     check_every=k),
        "ml_fista": lambda k: ml_fista(layers, y, lams, mu=mu, t=t, max_iter=k, tol=RUN_TOL,
                                       check_every=k),
        "fista": lambda k: fista_problem_p(layers, y, lams, max_iter=k, tol=RUN_TOL),
        "admm": lambda k: solve_problem_p(layers, y, lams, tol=RUN_TOL, max_iter=k,
                                          check_every=ADMM_CHECK_EVERY),
    }
    record = {"mu": float(mu), "t": float(t), "lam1": lam1, "lam2": lam2, "f_opt": f_lb,
              "reference_accuracy": f_ref - f_lb, "reference_converged": reference.converged}
    resolution = RESOLUTION_FACTOR * max(f_ref - f_lb, REFERENCE_TOL * abs(f_lb))
    for method in METHODS:
        record.update(_curve(method, runs[method], layers, y, lams, f_lb, resolution,
                             checkpoints))
    instance = MLISTAInstance(D1, D2, y, lam1, lam2, float(mu), float(t), 1)
    gamma, residual, _ = fixed_point(instance)
    z, u = inner_step(instance, gamma)
    record.update({
        "fixed_point_residual": residual,
        "fixed_point_gap": ml_objective(layers, y, gamma, lams) - f_lb,
        "fixed_point_bound": 2.0 * lam1 * float(np.abs(z - u).sum()),
        "fixed_point_nnz": int(np.count_nonzero(gamma)),
    })
    return record


def trial(params: dict, seed: int) -> dict:
    """The instance ``params["instance"]`` at ``μ = params["mu_scale"]/‖D_1‖²``.

    ``seed`` is not used: the instance comes from the grid (so that every μ sees it), and the
    solvers are deterministic.
    """
    del seed
    with single_threaded_blas() as limited:
        record = run_instance(*sample(params["instance"]), params["mu_scale"])
    record["blas_single_threaded"] = limited
    return record


def warmup() -> None:
    """One short run of every solver (first-call costs stay out of the timings)."""
    with single_threaded_blas():
        run_instance(*sample(0), 0.9, checkpoints=(1, 3))


def _medians(rows: list[Row], method: str, kind: str, mu_scale: float | None):
    picked = [r.record for r in rows if mu_scale is None or r.params["mu_scale"] == mu_scale]
    return np.array([_nanmedian([r[f"{method}_{kind}_at_{k}"] for r in picked])
                     for k in CHECKPOINTS])


def _fmt(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "—"


def _nanmedian(values) -> float:
    """Median of the finite values (NaN if none)."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.median(finite)) if finite else math.nan


def write_figure(rows: list[Row], path: Path) -> Path:
    """F − F_opt against iterations and seconds (medians over instances); a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales = sorted({r.params["mu_scale"] for r in rows})
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(scales)))
    tiny = np.finfo(np.float64).tiny
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), sharey=True, constrained_layout=True)
    iterations = np.array(CHECKPOINTS, dtype=float)
    curves = []
    for scale, color in zip(scales, colors, strict=True):
        for method, style in (("ml_ista", "-o"), ("ml_fista", "--s")):
            curves.append((f"{LABELS[method]}, μ = {scale:g}/‖D₁‖²", method, scale, style,
                           color))
    curves += [(LABELS["fista"], "fista", None, "-^", "tab:red"),
               (LABELS["admm"], "admm", None, "-D", "tab:orange")]
    for ax, kind in zip(axes, ("iterations", "seconds"), strict=True):
        for label, method, scale, style, color in curves:
            gaps = np.maximum(_medians(rows, method, "gap", scale), tiny)
            x = iterations if kind == "iterations" else _medians(rows, method, "seconds", scale)
            ax.plot(x, gaps, style, color=color, label=label, ms=4, lw=1.4)
        for scale, color in zip(scales, colors, strict=True):
            bound = np.median([r.record["fixed_point_bound"] for r in rows
                               if r.params["mu_scale"] == scale])
            ax.axhline(bound, color=color, ls=":", lw=1.5,
                       label=f"2λ₁‖z − u‖₁ at the ML-ISTA fixed point, μ = {scale:g}/‖D₁‖²")
        accuracy = np.median([max(r.record["reference_accuracy"], tiny) for r in rows])
        ax.axhline(accuracy, color="0.5", ls="-.", lw=1,
                   label="F_ref − F_lb (reference accuracy)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("iterations" if kind == "iterations" else "seconds (fresh call, wall)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("F(γᵏ) − F_opt (median over instances)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=7)
    n, m1, m2 = SIZES
    fig.suptitle(f"ml-ista-convergence: dense (P), n = {n}, m₁ = {m1}, m₂ = {m2}; "
                 "fixed-μ ML-ISTA/ML-FISTA stall at an O(μ) floor below 2λ₁‖z − u‖₁, "
                 "FISTA and ADMM reach F_opt", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _markdown(sweep: Sweep, rows: list[Row], figure: Path) -> str:
    summaries = aggregate(rows)
    scales = sorted({r.params["mu_scale"] for r in rows})
    n, m1, m2 = SIZES
    last = CHECKPOINTS[-1]
    within = sum(r.record["fixed_point_gap"] <= r.record["fixed_point_bound"] for r in rows)
    lines = [
        f"# Sweep `{sweep.name}`: F(γᵏ) − F_opt of ML-ISTA, ML-FISTA, FISTA and ADMM", "",
        f"Dense problem (P), n = {n}, m₁ = {m1}, m₂ = {m2}, γ₀ {SPARSITY}-sparse, noise σ = "
        f"{NOISE}, λ₁ = {LAM1_FRACTION}‖D₁ᵀy‖∞, λ₂ = {LAM2_FRACTION}‖(D₁D₂)ᵀy‖∞; μ = "
        "μ_s/‖D₁‖², t = 0.9·4μ/(3‖D₂‖²). F_opt = the certified dual lower bound of an ADMM "
        f"solve to relative gap {REFERENCE_TOL:g}. FISTA: outer FISTA on ½‖y − D₁D₂γ‖², the "
        "prox of λ₁‖D₂γ‖₁ + λ₂‖γ‖₁ by a warm-started fast dual proximal gradient to the gap "
        f"{INNER_TOL:g}·‖γᵏ − γᵏ⁻¹‖² (at most {MAX_INNER} inner steps). Seconds: wall time of "
        "a fresh call with max_iter = k. A curve ends (— below) at the first gap under "
        f"{RESOLUTION_FACTOR:g}× the reference's accuracy. "
        f"{len(sweep.grid)} cells × {sweep.trials} trials, {len(rows)} stored.", "",
        f"![convergence]({figure.name})", "",
        "Fixed-point gap (THEORY.md §4, MLISTA): F(γ*) − F_opt ≤ 2λ₁‖z − u‖₁ held in "
        f"{within} of {len(rows)} trials (a failure would contradict the theorem). Fixed μ "
        "gives a floor, not F_opt.", "",
        "## Medians over instances", "",
        "| μ_s | fixed-point gap | bound 2λ₁‖z − u‖₁ | gap / μ_s | "
        + " | ".join(f"{LABELS[m]} @ {k}" for m in METHODS for k in (100, last)) + " |",
        "|" + "---|" * (4 + 2 * len(METHODS)),
    ]
    for scale in scales:
        picked = [r.record for r in rows if r.params["mu_scale"] == scale]
        gap = float(np.median([r["fixed_point_gap"] for r in picked]))
        bound = float(np.median([r["fixed_point_bound"] for r in picked]))
        cells = [_fmt(_nanmedian([r[f'{m}_gap_at_{k}'] for r in picked]))
                 for m in METHODS for k in (100, last)]
        lines.append(f"| {scale:g} | {gap:.3g} | {bound:.3g} | {gap / scale:.3g} | "
                     + " | ".join(cells) + " |")
    timed = (100, 1000)
    lines += ["", "## Seconds of a fresh call with max_iter = k (means over the cell)", "",
              "| instance | μ_s | " + " | ".join(f"{LABELS[m]} @ {k}" for m in METHODS
                                                 for k in timed)
              + " | reference accuracy |", "|" + "---|" * (3 + len(timed) * len(METHODS))]
    for s in summaries:
        lines.append(f"| {s.params['instance']} | {s.params['mu_scale']:g} | "
                     + " | ".join(_fmt(s.means[f"{m}_seconds_at_{k}"]) for m in METHODS
                                  for k in timed)
                     + f" | {s.means['reference_accuracy']:.2g} |")
    unlimited = sum(r.record["blas_single_threaded"] == 0 for r in rows)
    lines += ["", "BLAS: every trial ran with OpenBLAS limited to one thread."
              if not unlimited else f"BLAS: {unlimited} trials could not limit OpenBLAS to one "
              "thread; their seconds include thread contention with the other workers "
              "(set OPENBLAS_NUM_THREADS=1)."]
    lines.append("")
    return "\n".join(lines)


def report(sweep: Sweep, rows: list[Row], out_dir: Path) -> list[Path]:
    """Write ``<sweep>.png`` (gap curves) and ``<sweep>.md`` (tables) under ``out_dir``."""
    return write_figure_and_summary(sweep, rows, out_dir, write_figure, _markdown)


SWEEP = Sweep(
    name="ml-ista-convergence",
    grid=Grid({"instance": list(range(8)), "mu_scale": [0.1, 0.3, 0.9]}),
    trial=trial,
    trials=1,
    description="F(γᵏ) − F_opt of ML-ISTA, ML-FISTA (fixed μ: O(μ) floor), FISTA with an inner "
    "prox, and ADMM on dense two-layer problems (P), against iterations and seconds",
    quick=(Grid({"instance": [0], "mu_scale": [0.1, 0.9]}), 1),
    warmup=warmup,
    report=report,
)

__all__ = ["SWEEP", "coupled_prox", "fista_problem_p", "inner_tolerance", "run_instance",
           "sample", "single_threaded_blas", "trial"]
