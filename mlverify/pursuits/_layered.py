r"""Layered basis pursuit (THEORY.md §3, theorem LBP).

.. math::

    \hat\Gamma_0 = Y,\qquad
    \hat\Gamma_i = \arg\min_\Gamma\ \tfrac12\|\hat\Gamma_{i-1} - D_i\Gamma\|_2^2
    + \xi_i\|\Gamma\|_1,\quad i = 1, \dots, K

(Papyan, Romano, Elad, JMLR 2017), each layer solved by :func:`basis_pursuit` to a certified
relative duality gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from .._validate import ENGINES, check_engine, check_nonnegative, check_positive
from ..model.mlcsc import MLCSC
from ._basis_pursuit import basis_pursuit
from ._checks import check_signal
from ._result import PursuitResult

#: Worst first: the status of a layered run is the worst of its layers.
_SEVERITY = ("non-finite", "diverged", "max_iter", "converged", "exact")


def layered_basis_pursuit(model: MLCSC, y, lams: Sequence, nonneg: bool = False,
                          tol: float = 1e-4, max_iter: int = 10000,
                          engine: str = "auto") -> PursuitResult:
    r"""Layered BP: :math:`\hat\Gamma_i = \arg\min \tfrac12\|\hat\Gamma_{i-1} - D_i\Gamma\|^2 +
    \xi_i\|\Gamma\|_1`, layer by layer.

    Parameters
    ----------
    model : MLCSC
        :math:`D_1, \dots, D_K`.
    y : ndarray, shape ``(..., m_0, *S)``
        Signal(s) with the model's dtype; leading axes are a batch (see :func:`basis_pursuit`).
    lams : sequence of K floats
        :math:`\xi_i \ge 0` (THEORY.md LBP: :math:`\xi_i = 4\varepsilon_L^{i-1}`).
    nonneg : bool
        Non-negative BP at every layer.
    tol : float
        Target relative duality gap of every layer.
    max_iter : int
        Safety net per layer.
    engine : {"auto", "numpy", "cpu", "cuda"}
        ``"cuda"``: every layer by the device FISTA of :mod:`mlverify.pursuits._device` (a batch
        as independent problems; ``y`` may be a device array, the codes then stay there).

    Returns
    -------
    PursuitResult
        ``codes = [Γ̂_1, …, Γ̂_K]``; ``certificate`` the largest per-layer relative gap;
        ``history["layer_certificate"]`` and ``history["layer_n_iter"]`` per layer;
        ``n_iter`` the total iterations; ``status`` the worst layer status.
    """
    if not isinstance(model, MLCSC):
        raise TypeError(f"model must be an MLCSC, got {type(model).__name__}")
    engine = check_engine(engine, ENGINES)
    if engine == "cuda":  # each layer on the device; y (maybe a device array) checked there
        from ._device import basis_pursuit as solve
    else:
        y = check_signal(model[0], "y", y)
        solve = partial(basis_pursuit, engine=engine)
    if isinstance(lams, (str, bytes)) or not isinstance(lams, Sequence):
        raise TypeError("lams must be a sequence with one value per layer")
    if len(lams) != model.n_layers:
        raise ValueError(f"lams must have one entry per layer ({model.n_layers}), "
                         f"got {len(lams)}")
    lams = [check_nonnegative(f"lams[{i}]", lam) for i, lam in enumerate(lams)]
    tol = check_positive("tol", tol)
    current = y
    results = []
    for layer, lam in zip(model.layers, lams, strict=True):
        result = solve(layer, current, lam, nonneg=nonneg, tol=tol, max_iter=max_iter)
        results.append(result)
        current = result.codes[0]
    status = min((r.status for r in results), key=_SEVERITY.index)
    messages = "; ".join(f"layer {i}: {r.message}" for i, r in enumerate(results, start=1))
    return PursuitResult(
        codes=[r.codes[0] for r in results],
        n_iter=sum(r.n_iter for r in results),
        converged=all(r.converged for r in results),
        certificate=max(r.certificate for r in results),
        certificate_kind="relative_duality_gap",
        history={"layer_certificate": [r.certificate for r in results],
                 "layer_n_iter": [float(r.n_iter) for r in results]},
        status=status,
        message=messages,
    )
