r"""Holistic pursuit for the two-layer model and its projection baseline.

Aberdam, Sulam, Elad, "Multi-layer sparse coding: the holistic way", SIAM J. Math. Data Sci.
2019 ([HOL]; THEORY.md §3). The signal is :math:`y = D_1D_2\gamma_2 + v` where the middle code
:math:`\gamma_1 = D_2\gamma_2` has ``n_zeros`` zeros (its co-support); knowing that zeros of
:math:`\gamma_1` constrain :math:`\gamma_2` to the null space of the matching rows of
:math:`D_2`, the holistic pursuit estimates that co-support greedily:

1. :math:`K \leftarrow I`, :math:`C \leftarrow \emptyset`; repeat ``n_zeros`` times:
   :math:`\hat\gamma_2 = K\alpha`, :math:`\alpha = \arg\min \tfrac12\|y - D_1D_2K\alpha\|^2 +
   \lambda\|K\alpha\|_1`; :math:`\hat\gamma_1 = D_2\hat\gamma_2`; add to :math:`C` the index not
   yet in :math:`C` with the smallest :math:`|\hat\gamma_{1,j}|`; :math:`K \leftarrow`
   orthonormal basis of :math:`\mathrm{null}(D_2[C, :])`.
2. A final precise solve on the last :math:`K`.

The projection baseline is the same solver with :math:`K = I` (``n_zeros = 0``). The
generalised lasso of each step is solved by the ADMM of problem (P)
(:func:`mlverify.pursuits._problem_p.generalized_lasso_admm`, :math:`A = D_1D_2K`, one split
:math:`u = K\alpha`, certified by a relative duality gap). Convolutional layers are handled
through their global matrices (:meth:`ConvDictionary.to_dense`, small sizes only): one dense code
path. With ``sigma`` given, :math:`\lambda` is tuned in every solve by bisection (in
:math:`\log\lambda`) so that :math:`\|y - D_1D_2\hat\gamma_2\|^2 = n\sigma^2` within ±5 %, as the
authors do.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from .._validate import check_positive, check_positive_int
from ..model.dictionary import ConvDictionary
from ._linear import MatrixOperator, layer_operators
from ._problem_p import generalized_lasso_admm
from ._result import PursuitResult

#: Relative window of the λ bisection around the target residual n σ² (the authors' ±5 %).
RESIDUAL_WINDOW = 0.05
#: Bisection steps before giving up on the window (the closest λ found is then used).
BISECTION_STEPS = 40


def _dense_problem(D1, D2, y, engine):
    """Checked float64 matrices, the signal as a vector, the code shapes and the model's dtype."""
    ops, y = layer_operators([D1, D2], y, engine=engine)
    if isinstance(D1, ConvDictionary):
        spatial = y.shape[1:]
        matrices = [D1.to_dense(spatial), D2.to_dense(spatial)]
        shapes = [(D1.n_atoms, *spatial), (D2.n_atoms, *spatial)]
    else:
        matrices = [op.matrix for op in ops]
        shapes = [(m.shape[1],) for m in matrices]
    m1, m2 = (m.astype(np.float64) for m in matrices)
    return m1, m2, y.ravel().astype(np.float64), shapes, y.dtype


def _solve(effective, basis, y, lam, tol, max_iter):
    """Generalised lasso on ``γ_2 = K α``: returns ``γ_2`` and the solver's result."""
    alpha, result = generalized_lasso_admm(
        MatrixOperator(effective @ basis), [MatrixOperator(basis)], np.array([lam]), y,
        nonneg=False, tol=tol, max_iter=max_iter,
    )
    return basis @ alpha, result


def _tuned_solve(effective, basis, y, lam, sigma, tol, max_iter):
    """Solve with ``lam``, or with λ bisected so that ``‖y − D_eff γ_2‖² ≈ n σ²`` (±5 %)."""
    if sigma is None:
        gamma2, result = _solve(effective, basis, y, lam, tol, max_iter)
        return gamma2, result, lam
    target = y.size * sigma**2
    high = float(np.max(np.abs(basis @ (basis.T @ (effective.T @ y)))))
    if high == 0.0 or target >= float(y @ y):
        return np.zeros(basis.shape[0]), _zero_result(), high
    low = high * 1e-8
    best = None
    total = 0
    for _ in range(BISECTION_STEPS):
        lam = float(np.sqrt(low * high))
        gamma2, result = _solve(effective, basis, y, lam, tol, max_iter)
        total += result.n_iter
        misfit = float(np.sum((y - effective @ gamma2) ** 2)) / target - 1.0
        if best is None or abs(misfit) < abs(best[0]):
            best = (misfit, gamma2, result, lam)
        if abs(misfit) <= RESIDUAL_WINDOW:
            break
        if misfit > 0:
            high = lam
        else:
            low = lam
    _, gamma2, result, lam = best
    result.n_iter = total
    return gamma2, result, lam


def _zero_result() -> PursuitResult:
    return PursuitResult(codes=[], n_iter=0, converged=True, certificate=0.0,
                         certificate_kind="relative_duality_gap", status="exact",
                         message="the target residual is at least ‖y‖²: the zero code")


def _check_sigma_lam(lam, sigma):
    if (lam is None) == (sigma is None):
        raise ValueError("give exactly one of lam (fixed weight) and sigma (tune lam so that "
                         "‖y − D1 D2 γ2‖² ≈ n σ²)")
    value = lam if sigma is None else sigma
    name = "lam" if sigma is None else "sigma"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return (float(lam), None) if sigma is None else (None, float(sigma))


def holistic_pursuit(
    D1,
    D2,
    y,
    n_zeros: int,
    lam: float | None = None,
    *,
    sigma: float | None = None,
    tol: float = 1e-9,
    max_iter: int = 20000,
    engine: str = "auto",
) -> PursuitResult:
    r"""Holistic pursuit [HOL] for :math:`y = D_1D_2\gamma_2 + v` (see the module docstring).

    Parameters
    ----------
    D1, D2 : 2-D arrays or ConvDictionary
        The two layers: dense matrices (the non-convolutional [HOL] model, ``y`` a vector) or
        periodic convolutional dictionaries (``y`` of shape ``(m_0, *S)``; small sizes, they are
        made dense).
    y : ndarray
        The signal, the layers' dtype.
    n_zeros : int
        :math:`\ell_1`, the number of zeros of :math:`\gamma_1` to estimate (``0`` gives the
        projection baseline); must be smaller than the number of atoms of :math:`D_2`.
    lam : float, optional
        Fixed :math:`\lambda > 0` of every solve.
    sigma : float, optional
        Noise level: tune :math:`\lambda` in every solve so that
        :math:`\|y - D_1D_2\hat\gamma_2\|^2 = n\sigma^2` (±5 %). Give ``lam`` or ``sigma``.
    tol : float
        Relative duality gap of every generalised-lasso solve.
    max_iter : int
        ADMM iteration limit per solve.
    engine : {"auto", "numpy", "cpu"}
        Validated for API uniformity; the computation is dense linear algebra.

    Returns
    -------
    PursuitResult
        ``codes = [γ̂_1, γ̂_2]`` (``γ̂_1 = D_2γ̂_2``, shapes of the layers' codes, the layers'
        dtype); ``certificate`` is the final solve's relative duality gap; ``history`` holds
        ``co_support`` (the chosen indices of :math:`\gamma_1`, in order), and per solve ``lam``,
        ``residual_sq`` and ``n_iter`` (ADMM iterations, all bisection steps included);
        ``message`` repeats the co-support.
    """
    m1, m2, yv, shapes, dtype = _dense_problem(D1, D2, y, engine)
    lam, sigma = _check_sigma_lam(lam, sigma)
    n_zeros = check_positive_int("n_zeros", n_zeros, minimum=0)
    if n_zeros >= m2.shape[1]:
        raise ValueError(f"n_zeros must be smaller than the {m2.shape[1]} atoms of D2, got "
                         f"{n_zeros}")
    tol = check_positive("tol", tol)
    max_iter = check_positive_int("max_iter", max_iter)
    effective = m1 @ m2
    basis = np.eye(m2.shape[1])
    co_support: list[int] = []
    history: dict[str, list[float]] = {"co_support": [], "lam": [], "residual_sq": [],
                                       "n_iter": []}
    total_iter = 0
    for stage in range(n_zeros + 1):
        gamma2, result, used = _tuned_solve(effective, basis, yv, lam, sigma, tol, max_iter)
        total_iter += result.n_iter
        history["lam"].append(used)
        history["residual_sq"].append(float(np.sum((yv - effective @ gamma2) ** 2)))
        history["n_iter"].append(float(result.n_iter))
        if result.status == "non-finite" or stage == n_zeros:
            break
        magnitudes = np.abs(m2 @ gamma2)
        magnitudes[co_support] = np.inf
        co_support.append(int(np.argmin(magnitudes)))
        basis = scipy.linalg.null_space(m2[co_support, :])
    history["co_support"] = [float(j) for j in co_support]
    gamma1 = m2 @ gamma2
    codes = [gamma1.reshape(shapes[0]).astype(dtype), gamma2.reshape(shapes[1]).astype(dtype)]
    return PursuitResult(
        codes=codes, n_iter=total_iter, converged=result.converged,
        certificate=result.certificate, certificate_kind=result.certificate_kind,
        history=history, status=result.status,
        message=f"{result.message}; co-support of γ1: {co_support}",
    )


def projection_baseline(
    D1,
    D2,
    y,
    lam: float | None = None,
    *,
    sigma: float | None = None,
    tol: float = 1e-9,
    max_iter: int = 20000,
    engine: str = "auto",
) -> PursuitResult:
    r"""The projection baseline of [HOL]: the holistic solver with :math:`K = I`.

    :math:`\hat\gamma_2 = \arg\min \tfrac12\|y - D_1D_2\gamma\|^2 + \lambda\|\gamma\|_1`,
    :math:`\hat\gamma_1 = D_2\hat\gamma_2` (``holistic_pursuit`` with ``n_zeros = 0``; same
    arguments and result).
    """
    return holistic_pursuit(D1, D2, y, 0, lam, sigma=sigma, tol=tol, max_iter=max_iter,
                            engine=engine)
