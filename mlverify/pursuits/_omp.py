r"""Convolutional orthogonal matching pursuit with local updates (THEORY.md §3).

Greedy pursuit on the global (periodic, banded-circulant) dictionary: each step selects the atom
most correlated with the residual, re-fits all selected coefficients by least squares and updates
the correlations :math:`D^T r` only in the neighbourhoods of the active atoms, through the local
Gram matrix (Papyan, Sulam, Elad, "Working locally thinking globally", 2017). A stripe-constrained
variant (``max_stripe``) keeps :math:`\|\Gamma\|^s_{0,\infty} \le k`, as the ML-CSC projection
needs (Sulam, Papyan, Romano, Elad 2018).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
from numpy.lib.stride_tricks import sliding_window_view

from .._validate import check_engine, check_positive_int
from ..kernels import cpu_omp, reference
from ..model.dictionary import ConvDictionary
from ._checks import check_dictionary, check_local_signal, check_optional_tol
from ._result import PursuitResult

_REASONS = {
    cpu_omp.STEPS: "n_nonzero steps done",
    cpu_omp.TOL: "residual norm <= tol",
    cpu_omp.NO_ELIGIBLE: "no eligible atom left (all active, or blocked by max_stripe)",
    cpu_omp.ORTHOGONAL: "the residual is orthogonal to every eligible atom",
    cpu_omp.DEPENDENT: (
        f"the next atom is linearly dependent on the active ones (squared distance to their span "
        f"<= {cpu_omp.PIVOT_FLOOR:g})"
    ),
}


def _as4(array: np.ndarray, lead: int) -> np.ndarray:
    """View ``(lead, *S)`` (1-D or 2-D) as ``(lead, H, W)``, 1-D being ``H = 1``."""
    return array.reshape((lead,) + (1,) * (3 - array.ndim) + array.shape[1:])


def _stripe_blocked(counts: np.ndarray, k: int, sides: tuple[int, int]) -> np.ndarray:
    """Positions ``(H, W)`` in a periodic window of side ``sides`` that already holds ``k``."""
    s1, s2 = sides
    padded = np.pad(counts, ((0, s1 - 1), (0, s2 - 1)), mode="wrap")
    full = sliding_window_view(padded, sides).sum(axis=(-2, -1)) >= k
    padded = np.pad(full, ((s1 - 1, 0), (s2 - 1, 0)), mode="wrap")
    return sliding_window_view(padded, sides).any(axis=(-2, -1))


def _gram_column(gram: np.ndarray, active: np.ndarray, pick: int, shape) -> np.ndarray:
    r""":math:`\langle d_a, d_{pick}\rangle` for the flat indices ``active`` (local Gram lookup)."""
    height, width = shape[1:]
    f, py, px = np.unravel_index(active, shape)
    g, qy, qx = np.unravel_index(pick, shape)
    half = ((gram.shape[2] - 1) // 2, (gram.shape[3] - 1) // 2)
    shifts = []
    for q, p, size, h in ((qy, py, height, half[0]), (qx, px, width, half[1])):
        s = (q - p) % size
        shifts.append(np.where(s > h, s - size, s))
    inside = (np.abs(shifts[0]) <= half[0]) & (np.abs(shifts[1]) <= half[1])
    values = gram[f, g, shifts[0] % gram.shape[2], shifts[1] % gram.shape[3]]
    return np.where(inside, values, 0.0)


def _filters4(D: ConvDictionary) -> np.ndarray:
    """The filters of ``D`` in float64, canonical ``(m, c, n1, n2)`` (1-D: ``n1 = 1``)."""
    filters = D.filters.astype(np.float64)
    return np.ascontiguousarray(filters if D.spatial_ndim == 2 else filters[:, :, None, :])


def residual_norm(D: ConvDictionary, y: np.ndarray, codes: np.ndarray) -> float:
    r""":math:`\|y - D\Gamma\|_2` in float64 for one problem, touching only the non-zeros.

    ``y`` is ``(c, *S)`` and ``codes`` ``(m, *S)`` (already checked); the fit
    :math:`\sum_j \Gamma_j d_j` is accumulated atom by atom with periodic indices, so it costs
    :math:`O(\|\Gamma\|_0\, c\, n_1 n_2)` and uses no convolution kernel.
    """
    filters = _filters4(D)
    _, channels, n1, n2 = filters.shape
    shape = (D.n_atoms,) + (1,) * (2 - D.spatial_ndim) + codes.shape[1:]
    idx = np.flatnonzero(codes)
    f, qy, qx = np.unravel_index(idx, shape)
    rows = (qy[:, None, None, None] + np.arange(n1)[None, None, :, None]) % shape[1]
    cols = (qx[:, None, None, None] + np.arange(n2)[None, None, None, :]) % shape[2]
    chans = np.arange(channels)[None, :, None, None]
    values = codes.ravel()[idx].astype(np.float64)
    fit = np.zeros((channels,) + shape[1:])
    np.add.at(fit, (chans, rows, cols), values[:, None, None, None] * filters[f])
    return float(np.linalg.norm(y.reshape(fit.shape).astype(np.float64) - fit))


def _omp_numpy(y, filters, gram, max_steps, tol, stripe_k):
    """Plain NumPy oracle of :func:`mlverify.kernels.cpu_omp.omp` (same arguments, same result).

    The correlations :math:`D^T r` and the residual are recomputed globally every step (no local
    updates); selection, the incremental Cholesky factor and the stopping rules are the same.
    """
    shape = (filters.shape[0],) + y.shape[1:]
    sides = (2 * filters.shape[2] - 1, 2 * filters.shape[3] - 1)
    corr0 = reference.analyze(y[None], filters)[0]
    active = np.zeros(shape, dtype=bool)
    chol = np.zeros((0, 0))
    idx: list[int] = []
    proj = np.zeros(0)
    coef = np.zeros(0)
    resid = y
    history = [float(np.linalg.norm(resid))]
    while True:
        if tol >= 0 and history[-1] <= tol:
            reason = cpu_omp.TOL
            break
        if len(idx) >= max_steps:
            reason = cpu_omp.STEPS
            break
        eligible = ~active
        if stripe_k > 0:
            eligible &= ~_stripe_blocked(active.sum(axis=0), stripe_k, sides)[None]
        corr = reference.analyze(resid[None], filters)[0]
        score = np.where(eligible, np.abs(corr), -1.0)
        pick = int(np.argmax(score))
        if score.flat[pick] < 0:
            reason = cpu_omp.NO_ELIGIBLE
            break
        if score.flat[pick] == 0:
            reason = cpu_omp.ORTHOGONAL
            break
        column = _gram_column(gram, np.array(idx, dtype=np.int64), pick, shape)
        w = scipy.linalg.solve_triangular(chol, column, lower=True) if idx else column
        g = pick // (shape[1] * shape[2])
        pivot = gram[g, g, 0, 0] - w @ w
        if pivot <= cpu_omp.PIVOT_FLOOR:
            reason = cpu_omp.DEPENDENT
            break
        k = len(idx)
        grown = np.zeros((k + 1, k + 1))
        grown[:k, :k] = chol
        grown[k, :k] = w
        grown[k, k] = math.sqrt(pivot)
        chol = grown
        proj = np.append(proj, (corr0.flat[pick] - w @ proj) / chol[k, k])
        idx.append(pick)
        active.flat[pick] = True
        coef = scipy.linalg.solve_triangular(chol.T, proj, lower=False)
        codes = np.zeros(shape)
        codes.flat[idx] = coef
        resid = y - reference.synthesize(codes[None], filters)[0]
        history.append(float(np.linalg.norm(resid)))
    return np.array(idx, dtype=np.int64), coef, np.array(history), reason


def omp(
    D: ConvDictionary,
    y,
    n_nonzero: int | None = None,
    tol: float | None = None,
    max_stripe: int | None = None,
    engine: str = "auto",
) -> PursuitResult:
    r"""Convolutional orthogonal matching pursuit (greedy ℓ0 pursuit) with local updates.

    Approximately solves :math:`\min \|\Gamma\|_0` s.t. :math:`\|y - D\Gamma\|_2 \le \varepsilon`
    (or with :math:`k` non-zeros) on the global periodic dictionary. Every step selects
    :math:`j = \arg\max_{j \notin \Lambda} |\hat d_j^T r|` over the unit-norm atoms
    :math:`\hat d_j`, adds it to the active set :math:`\Lambda` and re-fits
    :math:`x_\Lambda = (\hat D_\Lambda^T \hat D_\Lambda)^{-1} \hat D_\Lambda^T y` through a Cholesky
    factor extended by one row per step; the correlations are updated locally,
    :math:`\hat D^T r \mathrel{-}= \sum_{j\in\Lambda} \Delta x_j\, \hat G(\cdot, j)`, with the
    local Gram :math:`\hat G` (THEORY.md §3; Papyan, Sulam, Elad, "Working locally thinking
    globally", 2017). Under THEORY W3 (noiseless, :math:`\|\Gamma\|^s_{0,\infty} <
    \tfrac12(1 + 1/\mu)`) ``n_nonzero = ‖Γ‖₀`` steps recover Γ exactly; W6 covers noise.

    Parameters
    ----------
    D : ConvDictionary
        Any atom norms (zero atoms are refused); the pursuit runs on ``D.normalized()``.
    y : ndarray, shape ``(..., c, *S)``, the dictionary's dtype
        Leading axes are independent problems (solved one after another). Every spatial size
        must be ``>= 2n - 1`` for the filter length ``n`` of its axis (the local Gram is exact
        only then); smaller sizes raise ``ValueError``.
    n_nonzero : int, optional
        Most steps (selected atoms).
    tol : float, optional
        Stop as soon as :math:`\|y - D\hat\Gamma\|_2 \le` ``tol``. At least one of ``n_nonzero``
        and ``tol`` is required.
    max_stripe : int, optional
        Stripe-constrained variant: an atom is eligible only if adding it keeps
        :math:`\|\hat\Gamma\|^s_{0,\infty} \le` ``max_stripe`` (periodic windows of side
        ``2n - 1`` per axis over all atoms, THEORY.md §2).
    engine : {"auto", "numpy", "cpu"}
        ``"cpu"`` (and ``"auto"``): Numba kernel with local updates; ``"numpy"``: plain oracle
        recomputing the correlations globally every step (same selections, for small sizes).

    Returns
    -------
    PursuitResult
        ``codes = [Γ̂]`` in the scale of ``D``'s atoms (:math:`D\hat\Gamma` is the least-squares
        fit), ``n_iter`` = steps, ``certificate`` = :math:`\|y - D\hat\Gamma\|_2` recomputed in
        float64 from the returned codes (``certificate_kind = "residual_l2"``). One problem:
        ``history["residual_norm"]`` (before the first and after every step) and
        ``history["atom"]`` (flat indices into ``(m, *S)`` in selection order); a batch:
        ``history["final_residual_norm"]`` and ``history["n_steps"]``, one per problem.
        ``status`` is ``"converged"`` when ``tol`` was reached, or when no ``tol`` was given and
        the pursuit made ``n_nonzero`` steps or the residual became orthogonal to every eligible
        atom; otherwise ``"max_iter"`` (``message`` says why it stopped).

    Notes
    -----
    Computations run in float64 whatever the dtype; the codes are returned in the dictionary's
    dtype. An atom whose squared distance to the span of the active atoms is at most
    ``1e-12`` is treated as dependent and ends the pursuit. Ties in the selection go to the
    first atom in C order of ``(m, *S)``.
    """
    D = check_dictionary("D", D)
    engine = check_engine(engine)
    tol = check_optional_tol("tol", tol)
    if n_nonzero is not None:
        n_nonzero = check_positive_int("n_nonzero", n_nonzero)
    if n_nonzero is None and tol is None:
        raise ValueError("give n_nonzero or tol (or both): OMP needs a stopping rule")
    if max_stripe is not None:
        max_stripe = check_positive_int("max_stripe", max_stripe)
    y = check_local_signal(D, "y", y)
    d = D.spatial_ndim
    m, c = D.n_atoms, D.n_channels
    spatial = y.shape[-d:]
    batch = y.shape[: -d - 1]
    problems = y.reshape((-1, c) + spatial).astype(np.float64)
    if problems.shape[0] == 0:
        raise ValueError(f"y has an empty batch (shape {y.shape})")

    unit = ConvDictionary(D.filters.astype(np.float64)).normalized()
    filters = _filters4(unit)
    gram = D.local_gram()
    gram = np.ascontiguousarray(gram if d == 2 else gram[:, :, None, :])
    norms = D.atom_norms()
    shape = (m,) + (1,) * (2 - d) + spatial
    max_steps = n_nonzero if n_nonzero is not None else math.prod(shape)
    args = (-1.0 if tol is None else tol, 0 if max_stripe is None else max_stripe)

    codes = np.zeros((problems.shape[0], m) + spatial, D.dtype)
    runs = []
    residuals = np.zeros(problems.shape[0])
    for b, problem in enumerate(problems):
        y4 = _as4(problem, c)
        if engine == "numpy":
            idx, coef, history, reason = _omp_numpy(y4, filters, gram, max_steps, *args)
        else:
            corr = unit.analyze(problem, engine="cpu").reshape(shape)
            idx, coef, history, reason = cpu_omp.omp(y4, filters, gram, corr, max_steps, *args)
        codes[b].reshape(-1)[idx] = coef / norms[idx // math.prod(spatial)]
        residuals[b] = residual_norm(D, problem, codes[b])
        runs.append((idx, history, int(reason)))

    def done(reason: int) -> bool:
        if reason == cpu_omp.TOL:
            return True
        return tol is None and reason in (cpu_omp.STEPS, cpu_omp.ORTHOGONAL)

    converged = all(done(reason) for _, _, reason in runs)
    steps = [len(idx) for idx, _, _ in runs]
    if batch:
        history = {"final_residual_norm": residuals.tolist(), "n_steps": [float(s) for s in steps]}
        message = (f"{sum(done(r) for _, _, r in runs)} of {len(runs)} problems met the stopping "
                   f"rule; steps {min(steps)}..{max(steps)}, largest residual "
                   f"{residuals.max():.3g}")
    else:
        idx, trace, reason = runs[0]
        history = {"residual_norm": trace.tolist(), "atom": idx.astype(float).tolist()}
        message = f"{_REASONS[reason]} after {steps[0]} steps, residual {residuals[0]:.3g}"
    return PursuitResult(
        codes=[codes.reshape(batch + (m,) + spatial)],
        n_iter=max(steps),
        converged=converged,
        certificate=float(residuals.max()),
        certificate_kind="residual_l2",
        history=history,
        status="converged" if converged else "max_iter",
        message=message,
    )
