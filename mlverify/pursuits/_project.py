r"""The ML-CSC projection :math:`P_{\mathcal M}` (Sulam, Papyan, Romano, Elad 2018; THEORY.md §3).

.. math::

    \min_{\{\Gamma_i\}} \|Y - D^{(K)}\Gamma_K\|_2 \quad \text{s.t.} \quad
    \Gamma_{i-1} = D_i\Gamma_i,\ \ \|\Gamma_i\|^s_{0,\infty} \le \lambda_i \ (i = 1..K).

In practice the deepest layer is pursued on the effective dictionary
:math:`D^{(K)} = D_1 \cdots D_K` (stripe-constrained OMP for the ℓ0 form, basis pursuit for the
relaxed one) and the other layers follow by back-projection
:math:`\hat\Gamma_i = D^{(i,K)}\hat\Gamma_K = D_{i+1}\cdots D_K\hat\Gamma_K`. Only the deepest
constraint is enforced during the pursuit; every layer's is measured afterwards and reported.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._validate import check_engine, check_nonnegative, check_positive_int
from ..model.dictionary import ConvDictionary
from ..model.measures import stripe_l0_inf
from ..model.mlcsc import MLCSC
from ._checks import check_local_signal, check_optional_tol
from ._omp import omp
from ._result import PursuitResult

PURSUITS = ("omp", "bp")


def _check_sparsities(sparsities, n_layers: int) -> list[int] | None:
    if sparsities is None:
        return None
    if isinstance(sparsities, (str, bytes)) or not isinstance(sparsities, (Sequence, np.ndarray)):
        raise TypeError(f"sparsities must be a sequence of {n_layers} ints or None, "
                        f"got {type(sparsities).__name__}")
    if len(sparsities) != n_layers:
        raise ValueError(f"sparsities must have one bound per layer ({n_layers}), "
                         f"got {len(sparsities)}")
    return [check_positive_int(f"sparsities[{i}]", s) for i, s in enumerate(sparsities)]


def project(
    model: MLCSC,
    y,
    sparsities: Sequence[int] | None = None,
    *,
    pursuit: str = "omp",
    lam: float | None = None,
    tol: float | None = None,
    engine: str = "auto",
) -> PursuitResult:
    r"""Project a signal onto the ML-CSC model: :math:`P_{\mathcal M}` of [PDL].

    Parameters
    ----------
    model : MLCSC
        :math:`D_1, \dots, D_K`.
    y : ndarray, shape ``(..., m_0, *S)``, the model's dtype
        Signal(s); leading axes are independent problems. Every spatial size must be
        ``>= 2n^{(K)} - 1`` (:math:`n^{(K)}` the filter length of :math:`D^{(K)}`).
    sparsities : sequence of K ints, optional
        :math:`\lambda_1, \dots, \lambda_K`, the bounds on :math:`\|\Gamma_i\|^s_{0,\infty}`
        (stripe side :math:`2n_i - 1` of layer ``i``'s own filters). With ``pursuit="omp"`` the
        deepest one constrains OMP on :math:`D^{(K)}`, whose stripes have side
        :math:`2n^{(K)} - 1 \ge 2n_K - 1`: a conservative version of the constraint (an OMP
        output always meets :math:`\lambda_K`; a true :math:`\Gamma_K` is admissible when its
        :math:`D^{(K)}`-stripe sparsity, the :math:`k_K^{(eff)}` of THEORY PM, is at most
        :math:`\lambda_K`). All bounds are reported against the result.
    pursuit : {"omp", "bp"}
        ``"omp"``: the ℓ0 form; needs ``sparsities`` or ``tol``. ``"bp"``: the relaxed form
        :math:`\min \tfrac12\|y - D^{(K)}\Gamma_K\|_2^2 + \lambda\|\Gamma_K\|_1` on the given
        (not normalised) atoms of :math:`D^{(K)}`; needs ``lam``.
    lam : float, optional
        :math:`\lambda \ge 0` of the relaxed form (``pursuit="bp"`` only).
    tol : float, optional
        ``"omp"``: stop once :math:`\|y - D^{(K)}\hat\Gamma_K\|_2 \le` ``tol`` (the error budget
        :math:`E_0`), otherwise OMP runs until no atom is eligible; ``"bp"``: the relative
        duality gap passed to :func:`~mlverify.pursuits._basis_pursuit.basis_pursuit`.
    engine : {"auto", "numpy", "cpu"}

    Returns
    -------
    PursuitResult
        ``codes = [Γ̂_1, …, Γ̂_K]`` with :math:`\hat\Gamma_{i-1} = D_i\hat\Gamma_i`;
        ``n_iter`` of the inner pursuit; ``certificate`` = the largest (over the batch)
        :math:`\|y - D^{(K)}\hat\Gamma_K\|_2`, computed in float64
        (``certificate_kind = "residual_l2"``). ``history``: ``"residual_l2"`` and
        ``"stripe_l0_inf_<i>"`` (one value per problem), ``"sparsity_bound"`` (the
        :math:`\lambda_i`, when given), ``"pursuit_certificate"`` and the inner pursuit's history
        under ``"pursuit_<key>"``. ``converged`` means feasible — every layer within its bound
        and, for OMP with ``tol``, the residual within ``tol`` — and, for BP, the inner solve
        certified; ``message`` names the violated layers.
    """
    if not isinstance(model, MLCSC):
        raise TypeError(f"model must be an MLCSC, got {type(model).__name__}")
    if not isinstance(pursuit, str) or pursuit not in PURSUITS:
        raise ValueError(f"pursuit must be one of {PURSUITS}, got {pursuit!r}")
    engine = check_engine(engine)
    n_layers = model.n_layers
    bounds = _check_sparsities(sparsities, n_layers)
    tol = check_optional_tol("tol", tol)
    deepest = model.effective(n_layers)
    y = check_local_signal(deepest, "y", y, dict_name="the effective dictionary D^(K)")
    if pursuit == "omp":
        if lam is not None:
            raise ValueError("lam is the weight of pursuit='bp'; the omp projection uses "
                             "sparsities and tol")
        if bounds is None and tol is None:
            raise ValueError("pursuit='omp' needs sparsities or tol (or both) to stop")
        size = deepest.n_atoms * int(np.prod(y.shape[-model.spatial_ndim:]))
        inner = omp(deepest, y, n_nonzero=None if tol is not None else size, tol=tol,
                    max_stripe=None if bounds is None else bounds[-1], engine=engine)
    else:
        if lam is None:
            raise ValueError("pursuit='bp' needs lam")
        lam = check_nonnegative("lam", lam)
        from ._basis_pursuit import basis_pursuit

        options = {} if tol is None else {"tol": tol}
        inner = basis_pursuit(deepest, y, lam, engine=engine, **options)

    codes = [inner.codes[-1]]
    for layer in reversed(model.layers[1:]):
        codes.insert(0, layer.synthesize(codes[0], engine=engine))
    d = model.spatial_ndim
    exact = ConvDictionary(deepest.filters.astype(np.float64))
    fit = exact.synthesize(codes[-1].astype(np.float64), engine=engine)
    residual = np.atleast_1d(
        np.sqrt(np.sum((y.astype(np.float64) - fit) ** 2, axis=tuple(range(-d - 1, 0))))
    ).ravel()
    stripes = [
        np.atleast_1d(stripe_l0_inf(gamma, layer.kernel_size)).ravel()
        for gamma, layer in zip(codes, model.layers, strict=True)
    ]

    history: dict[str, list[float]] = {"residual_l2": residual.tolist()}
    for i, stripe in enumerate(stripes, start=1):
        history[f"stripe_l0_inf_{i}"] = stripe.astype(float).tolist()
    violated = []
    if bounds is not None:
        history["sparsity_bound"] = [float(b) for b in bounds]
        violated = [i for i, (s, b) in enumerate(zip(stripes, bounds, strict=True), start=1)
                    if s.max() > b]
    over_tol = pursuit == "omp" and tol is not None and residual.max() > tol
    history["pursuit_certificate"] = [inner.certificate]
    for key, values in inner.history.items():
        history[f"pursuit_{key}"] = list(values)

    feasible = not violated and not over_tol
    converged = feasible and (pursuit == "omp" or inner.converged)
    if inner.status in ("diverged", "non-finite"):
        status = inner.status
    else:
        status = "converged" if converged else "max_iter"
    layers = ", ".join(f"{int(s.max())}" for s in stripes)
    message = (
        f"P_M by {pursuit}: residual {residual.max():.3g}"
        + (f" (tol {tol:g})" if tol is not None and pursuit == "omp" else "")
        + f"; stripe sparsities [{layers}]"
        + ("" if bounds is None else f" vs bounds {bounds}")
        + ("; feasible" if feasible else
           f"; infeasible (layers {violated} over their bound"
           + (", residual over tol" if over_tol else "") + ")")
        + f". Inner {pursuit}: {inner.status}, {inner.message}"
    )
    return PursuitResult(
        codes=codes,
        n_iter=inner.n_iter,
        converged=converged,
        certificate=float(residual.max()),
        certificate_kind="residual_l2",
        history=history,
        status=status,
        message=message,
    )
