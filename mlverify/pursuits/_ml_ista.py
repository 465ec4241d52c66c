r"""ML-ISTA and ML-FISTA for multi-layer basis pursuit (problem (P)).

Sulam, Aberdam, Beck, Elad, "On multi-layer basis pursuit, efficient algorithms and
convolutional neural networks", IEEE TPAMI 2019 ([MLBP]); THEORY.md §3.

Two layers (step sizes :math:`\mu` inner, :math:`t` outer):

.. math::

    \gamma_1 &\leftarrow S_{\mu\lambda_1}\big(D_2\gamma^k - \mu D_1^T(D_1D_2\gamma^k - y)\big)\\
    \gamma^{k+1} &\leftarrow S_{t\lambda_2}\big(\gamma^k - \tfrac{t}{\mu} D_2^T(D_2\gamma^k -
        \gamma_1)\big)

Step 1 is one proximal-gradient step (step :math:`\mu`) on
:math:`h(u) = \tfrac12\|y - D_1u\|^2 + \lambda_1\|u\|_1` from :math:`u = D_2\gamma^k`, a proxy
of :math:`\mathrm{prox}_{\mu h}(D_2\gamma^k)`; step 2 is then a proximal-gradient step (step
:math:`t`) on the Moreau envelope :math:`M_\mu h(D_2\gamma)`, whose gradient is
:math:`D_2^T(D_2\gamma - \mathrm{prox}_{\mu h}(D_2\gamma))/\mu` — hence the factor
:math:`t/\mu` (THEORY.md §3 **fix**: the lecture omits it).

**L layers** (what is implemented). The authors' code runs a backward sweep
:math:`\hat\gamma_{L-1} = D_L\gamma^k, \dots, \hat\gamma_1 = D_2\hat\gamma_2` and then a forward
sweep :math:`\gamma_i = \mathrm{prox}(\hat\gamma_i - c_i D_i^T(D_i\hat\gamma_i - \gamma_{i-1}))`,
:math:`\gamma_0 := y`, :math:`\hat\gamma_L := \gamma^k`. Nesting the two-layer argument (layer
:math:`i` is a proximal-gradient step with step :math:`\mu_i` on
:math:`\lambda_i\|\cdot\|_1 + M_{\mu_{i-1}}h_{i-1}(D_i\,\cdot)`) fixes the constants:

.. math::

    \gamma_i = S_{\mu_i\lambda_i}\Big(\hat\gamma_i - \frac{\mu_i}{\mu_{i-1}}
        D_i^T(D_i\hat\gamma_i - \gamma_{i-1})\Big), \qquad \mu_0 := 1,\ \mu_L := t,

which is the two-layer rule for :math:`L = 2` (:math:`c_1 = \mu`, :math:`c_2 = t/\mu`). Step-size
ranges: :math:`\mu_1 \in (0, 1/\|D_1\|^2)` and :math:`t \in (0, 4\mu_{L-1}/(3\|D_L\|^2))` (THEORY
§3, the paper's ranges for two layers); the middle steps of a deeper model are proximal-gradient
steps on a smooth part with Lipschitz constant :math:`\|D_i\|^2/\mu_{i-1}`, so
:math:`\mu_i \in (0, \mu_{i-1}/\|D_i\|^2)` (our extension; the paper analyses two layers).
Defaults are 0.9 times each upper limit, from exact spectral norms.

**ML-FISTA** applies the same step at
:math:`z^k = \gamma^k + \frac{t_k - 1}{t_{k+1}}(\gamma^k - \gamma^{k-1})`,
:math:`t_{k+1} = (1 + \sqrt{1 + 4t_k^2})/2`, :math:`t_0 = 1`: momentum on the deepest variable
only.

From :math:`\gamma^0 = 0` the first step is layered soft thresholding:
:math:`\gamma_i = \mu_i S_{\lambda_i}(D_i^T\,T_{i-1})` with :math:`T_0 = y`,
:math:`T_i = S_{\lambda_i}(D_i^T T_{i-1})`, so :math:`\gamma^1 = t\,T_L` (the CNN forward pass).
"""

from __future__ import annotations

import math
import time

import numpy as np

from .._validate import ENGINES, check_engine, check_positive, check_positive_int
from ..kernels import cpu
from ..model.dictionary import SPARSE_MIN_OUT, ConvDictionary
from ..model.mlcsc import MLCSC
from ..model.screening import ScreenedStep
from ._linear import ConvChain, Operator, layer_operators
from ._problem_p import chain_objective, check_code, check_lams
from ._result import PursuitResult

#: An objective above this multiple of F(0) = ½‖y‖² (plus one) is reported as divergence.
DIVERGENCE_FACTOR = 1e8

#: Cost of a multiply-add of the scattered synthesis by the effective dictionary over one of
#: the dense synthesis by :math:`D_1` (:func:`_signal_synthesis`). Measured on one core, float32,
#: on the CNN benchmark's settled iterate: :math:`D_1D_2\gamma` (12×12 atoms, 198 k non-zeros,
#: 28.6 M multiply-adds) 2.6 ms against 6.4–7.1 ms for :math:`D_1\hat\gamma_1` (134 M).
SCATTER_COST = 1.9


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """``‖a - b‖_2`` accumulated in float64 (Numba kernel for the convolutional codes)."""
    if a.ndim < 2:
        return float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)))
    rows = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    with cpu.threads_for(a.size):
        return float(np.sqrt(cpu.squared_distance(*rows)))


def _steps(ops: list[Operator], mu, t) -> list[float]:
    """Validated ``[μ_1, …, μ_{L-1}, t]`` (defaults: 0.9 × each upper limit)."""
    n_layers = len(ops)
    norms2 = [op.norm() ** 2 for op in ops]
    if n_layers == 1:
        if mu is not None:
            raise ValueError("mu must be None for a one-layer model (only t is used)")
        inner: list[float] = []
    elif mu is None:
        inner = []
    else:
        values = np.atleast_1d(np.asarray(mu, dtype=np.float64))
        if values.shape != (n_layers - 1,):
            raise ValueError(f"mu must be a number (two layers) or {n_layers - 1} numbers, got "
                             f"shape {values.shape}")
        inner = values.tolist()
    steps: list[float] = []
    previous = 1.0
    for i in range(n_layers - 1):
        limit = previous / norms2[i]
        if len(inner) > i:
            value = inner[i]
            if not np.isfinite(value) or not 0 < value < limit:
                raise ValueError(f"mu[{i}] (step of layer {i + 1}) must lie in (0, {limit:.6g}) "
                                 f"= (0, mu_{i}/||D_{i + 1}||^2), got {value}")
        else:
            value = 0.9 * limit
        steps.append(float(value))
        previous = value
    scale = 4.0 / 3.0 if n_layers > 1 else 1.0
    limit = scale * previous / norms2[-1]
    if t is None:
        t = 0.9 * limit
    elif not np.isfinite(t) or not 0 < t < limit:
        rule = "4 mu_{L-1}/(3 ||D_L||^2)" if n_layers > 1 else "1/||D_1||^2"
        raise ValueError(f"t must lie in (0, {limit:.6g}) = (0, {rule}), got {t}")
    steps.append(float(t))
    return steps


def _screen(op: Operator) -> ScreenedStep | None:
    """The screened step of the deepest layer, where it can pay: one convolutional layer on
    the CPU engine (:class:`mlverify.model.screening.ScreenedStep`)."""
    if (isinstance(op, ConvChain) and op.engine == "cpu" and len(op.layers) == 1
            and ScreenedStep.fits(op.layers[0])):
        return ScreenedStep(op.layers[0], op.spatial)
    return None


def _effective(ops: list[Operator], screen: ScreenedStep | None) -> ConvDictionary | None:
    """The effective dictionary :math:`D_1\\cdots D_L` (THEORY.md §1) of a screened chain
    (:func:`_screen`) of two layers or more into fewer than
    :data:`~mlverify.model.dictionary.SPARSE_MIN_OUT` channels (where scattering whole atoms
    pays), composed in float64 and rounded once to the working dtype; else ``None``."""
    if (screen is None or len(ops) < 2 or ops[0].out_shape[0] >= SPARSE_MIN_OUT
            or not all(isinstance(op, ConvChain) and len(op.layers) == 1 for op in ops)):
        return None
    layers = [op.layers[0] for op in ops]
    wide = MLCSC([ConvDictionary(layer.filters.astype(np.float64)) for layer in layers])
    return ConvDictionary(wide.effective(len(layers)).filters.astype(layers[0].dtype))


def _signal_synthesis(ops: list[Operator], screen: ScreenedStep | None,
                      effective: ConvDictionary | None, gamma: np.ndarray) -> np.ndarray | None:
    r""":math:`D_1\hat\gamma_1 = D_1 \cdots D_L\gamma`, the first layer's synthesis, by the
    effective dictionary from the non-zeros of ``gamma`` that the screened step collected
    (:meth:`ScreenedStep.synthesis`), when that costs less than :math:`D_1` on the dense
    :math:`\hat\gamma_1` (multiply-adds weighted by :data:`SCATTER_COST`); else ``None``.

    On the CNN benchmark (:math:`\gamma` 4.7 % dense): 28.6 M scattered multiply-adds against
    134 M dense ones."""
    if effective is None or screen.nonzeros is None:
        return None
    first = ops[0].layers[0]
    scattered = screen.nonzeros[2].size * effective.filters[0].size * SCATTER_COST
    if scattered >= math.prod(ops[0].in_shape) * first.filters[0].size:
        return None
    return screen.synthesis(gamma, effective)


def _projections(ops: list[Operator], screen: ScreenedStep | None,
                 effective: ConvDictionary | None,
                 gamma: np.ndarray) -> tuple[list[np.ndarray], np.ndarray | None]:
    """The back-projections ``[γ̂_1, …, γ̂_{L-1}, γ]``, :math:`\\hat\\gamma_i =
    D_{i+1}\\cdots D_L\\gamma`, and :math:`D_1\\hat\\gamma_1` when the effective dictionary gives
    it cheaply (:func:`_signal_synthesis`; else ``None``). When ``gamma`` is the screened
    step's last output, :math:`D_L\\gamma` is synthesised from the non-zeros its store collected,
    once: an objective recorded between two iterations and the next iteration share it
    (:meth:`ScreenedStep.synthesis`)."""
    projected = [gamma]
    for op in reversed(ops[1:]):
        known = screen.synthesis(gamma) if screen is not None and op is ops[-1] else None
        projected.append(op.forward(projected[-1]) if known is None else known)
    projected.reverse()
    return projected, _signal_synthesis(ops, screen, effective, gamma)


def _objective(ops: list[Operator], y: np.ndarray, gamma: np.ndarray, lams,
               screen: ScreenedStep | None, effective: ConvDictionary | None) -> float:
    """:math:`F(\\gamma)` (float64) from :func:`_projections`: after a screened step, the
    syntheses the next iteration will reuse."""
    projected, signal = _projections(ops, screen, effective, gamma)
    return chain_objective([ops[0].forward(projected[0]) if signal is None else signal,
                            *projected], y, lams)


def _sweep(ops: list[Operator], y: np.ndarray, gamma: np.ndarray, steps, lams, nonneg: bool,
           screen: ScreenedStep | None = None, out: np.ndarray | None = None,
           effective: ConvDictionary | None = None):
    """One ML-ISTA step from ``gamma`` (backward then forward sweep); ``None`` if non-finite.

    The check runs before every threshold: thresholding maps NaN to zero and would hide it.
    ``screen`` runs the deepest layer's step (the same step, screened), into ``out`` when
    given (:meth:`ScreenedStep.__call__`); when ``gamma`` is its last output, it also
    synthesises :math:`D_L\\gamma` (:meth:`ScreenedStep.synthesis`) and, with the effective
    dictionary ``effective`` (:func:`_effective`), :math:`D_1\\hat\\gamma_1`
    (:func:`_signal_synthesis`).
    """
    projected, signal = _projections(ops, screen, effective, gamma)
    previous, previous_step = y, 1.0
    for index, (op, base, step, lam) in enumerate(zip(ops, projected, steps, lams, strict=True)):
        # D_i γ̂_i = γ̂_{i-1} is already known for i > 1 (the backward sweep computed it).
        known = projected[index - 1] if index else signal
        if screen is not None and index == len(ops) - 1:
            previous = screen(base, previous, step / previous_step, step * lam,
                              "relu" if nonneg else "soft", synthesized=known, out=out)
        else:
            previous = op.gradient_step(base, previous, known, step / previous_step, step * lam,
                                        nonneg)
        if previous is None:
            return None
        previous_step = step
    return previous


def _spare(spares: list[np.ndarray], *held: np.ndarray) -> np.ndarray:
    """A buffer of ``spares`` that shares no memory with the arrays ``held``; a new one
    (appended) when every buffer is held. The screened step writes each iterate into one, and
    ML-FISTA each extrapolated point, so that no large array is allocated at every iteration
    (a new one costs its page faults again)."""
    for buffer in spares:
        if not any(np.may_share_memory(buffer, array) for array in held):
            return buffer
    spares.append(np.empty_like(held[0]))
    return spares[-1]


def _run(model, y, lams, mu, t, max_iter, tol, nonneg, engine, x0, check_every, momentum):
    if check_engine(engine, ENGINES) == "cuda":
        from ._device import ml_ista as on_device

        return on_device(model, y, lams, mu, t, max_iter=max_iter, tol=tol, nonneg=nonneg,
                         x0=x0, check_every=check_every, momentum=momentum)
    ops, y = layer_operators(model, y, engine=engine)
    lams = check_lams(lams, len(ops), positive=False)
    max_iter = check_positive_int("max_iter", max_iter)
    check_every = check_positive_int("check_every", check_every)
    tol = check_positive("tol", tol)
    steps = _steps(ops, mu, t)
    gamma = (np.zeros(ops[-1].in_shape, dtype=y.dtype) if x0 is None
             else check_code("x0", x0, ops).copy())
    f_zero = 0.5 * float(np.vdot(y.astype(np.float64), y.astype(np.float64)))
    screen = _screen(ops[-1])
    effective = _effective(ops, screen)
    spares: list[np.ndarray] = []  # two buffers for ML-ISTA, four for ML-FISTA (its points)
    history: dict[str, list[float]] = {
        "iteration": [], "objective": [], "fixed_point_residual": [], "seconds": []
    }
    start = time.perf_counter()
    previous, tk = gamma, 1.0
    status, residual, it = "max_iter", float("inf"), 0
    for it in range(1, max_iter + 1):
        if momentum:
            tk_next = (1.0 + np.sqrt(1.0 + 4.0 * tk * tk)) / 2.0
            point = np.subtract(gamma, previous, out=_spare(spares, gamma, previous))
            point *= np.asarray((tk - 1.0) / tk_next, gamma.dtype)
            point += gamma  # γ + c·(γ - γ_prev)
            tk = tk_next
        else:
            point = gamma
        out = None if screen is None else _spare(spares, gamma, previous, point)
        new = _sweep(ops, y, point, steps, lams, nonneg, screen, out, effective)
        if new is None:
            status, residual = "non-finite", float("nan")
            break
        moved = None if screen is None else screen.distance  # summed by a screened step
        residual = (_distance(new, point) if moved is None else moved) / steps[-1]
        # only the momentum needs the previous iterate (ML-ISTA then rotates two buffers)
        previous, gamma = (gamma if momentum else new), new
        done = residual <= tol
        if done:
            status = "converged"
        if it % check_every and not done and it != max_iter:
            continue
        objective = _objective(ops, y, gamma, lams, screen, effective)
        for key, value in zip(history, (it, objective, residual, time.perf_counter() - start),
                              strict=True):
            history[key].append(float(value))
        if done:
            break
        if not np.isfinite(objective):
            status = "non-finite"
            break
        if objective > DIVERGENCE_FACTOR * (f_zero + 1.0):
            status = "diverged"
            break
    name = "ML-FISTA" if momentum else "ML-ISTA"
    messages = {
        "converged": f"{name}: fixed-point residual {residual:.3e} <= tol {tol:.1e} after {it} "
                     "iterations",
        "max_iter": f"{name}: max_iter={max_iter} reached, fixed-point residual {residual:.3e}",
        "non-finite": f"{name}: non-finite values at iteration {it}",
        "diverged": f"{name}: objective exceeded {DIVERGENCE_FACTOR:.0e}·(F(0)+1) at iteration "
                    f"{it}",
    }
    return PursuitResult(
        # after the objective of the last iteration: the syntheses it made
        codes=_projections(ops, screen, effective, gamma)[0], n_iter=it,
        converged=status == "converged", certificate=residual,
        certificate_kind="fixed_point_residual", history=history, status=status,
        message=messages[status] + f" (steps mu={steps[:-1]}, t={steps[-1]:.6g})",
    )


def ml_ista(
    model,
    y,
    lams,
    mu=None,
    t=None,
    *,
    max_iter: int = 1000,
    tol: float = 1e-6,
    nonneg: bool = False,
    engine: str = "auto",
    x0=None,
    check_every: int = 10,
) -> PursuitResult:
    r"""ML-ISTA for problem (P) (see the module docstring for the iteration and step sizes).

    Parameters
    ----------
    model : MLCSC, sequence of ConvDictionary, or sequence of 2-D arrays
        The layers :math:`D_1, \dots, D_L` (periodic convolutional, or dense matrices).
    y : ndarray
        Signal ``(m_0, *S)`` (convolutional) or vector (dense), the model's dtype.
    lams : sequence of float
        :math:`[\lambda_1, \dots, \lambda_L]`, each ``>= 0``.
    mu : float or sequence of float, optional
        Inner steps :math:`[\mu_1, \dots, \mu_{L-1}]` (a number for two layers); default
        :math:`0.9/\|D_1\|^2` and :math:`0.9\,\mu_{i-1}/\|D_i\|^2`. Values outside the ranges
        raise ``ValueError``.
    t : float, optional
        Outer step, in :math:`(0, 4\mu_{L-1}/(3\|D_L\|^2))`; default 0.9 times the limit.
    max_iter : int
        Iteration limit.
    tol : float
        Stop when the fixed-point residual :math:`\|\gamma^{k+1} - z^k\|/t \le` ``tol``
        (:math:`z^k = \gamma^k` for ML-ISTA, the extrapolated point for ML-FISTA).
    nonneg : bool
        Use :math:`S^+` (non-negative codes, the ReLU network) instead of :math:`S`.
    engine : {"auto", "numpy", "cpu", "cuda"}
        ``"numpy"``: NumPy oracles; ``"cpu"``/``"auto"``: Numba kernels (convolutional layers);
        ``"cuda"``: the device solver of :mod:`mlverify.pursuits._device` (convolutional layers;
        ``y`` may be a batch ``(..., m_0, *S)`` of independent signals, or a device array).
    x0 : ndarray, optional
        Warm start :math:`\gamma^0` (deepest code), default zero.
    check_every : int
        Iterations between two records of the objective in ``history``.

    Returns
    -------
    PursuitResult
        ``codes = [D^(1,L)γ, …, D^(L-1,L)γ, γ]``: the intermediate layers are the
        **back-projections** of the deepest code (consistent with (P)), not the thresholded
        intermediates of the last sweep. ``certificate`` is the fixed-point residual;
        ``history`` holds ``iteration``, ``objective`` (:math:`F(\gamma^k)`, float64),
        ``fixed_point_residual`` and ``seconds``. ``status`` reports ``"non-finite"`` or
        ``"diverged"`` instead of returning garbage silently.
    """
    return _run(model, y, lams, mu, t, max_iter, tol, nonneg, engine, x0, check_every, False)


def ml_fista(
    model,
    y,
    lams,
    mu=None,
    t=None,
    *,
    max_iter: int = 1000,
    tol: float = 1e-6,
    nonneg: bool = False,
    engine: str = "auto",
    x0=None,
    check_every: int = 10,
) -> PursuitResult:
    r"""ML-FISTA: ML-ISTA with FISTA momentum on the deepest variable (same arguments).

    See :func:`ml_ista`; the step is applied at
    :math:`z^k = \gamma^k + \frac{t_k-1}{t_{k+1}}(\gamma^k - \gamma^{k-1})`,
    :math:`t_{k+1} = (1+\sqrt{1+4t_k^2})/2`, and the certificate is
    :math:`\|\gamma^{k+1} - z^k\|/t` (the gradient-mapping norm at :math:`z^k`; zero exactly at
    a fixed point of the ML-ISTA map).
    """
    return _run(model, y, lams, mu, t, max_iter, tol, nonneg, engine, x0, check_every, True)
