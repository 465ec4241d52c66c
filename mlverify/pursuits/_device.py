r"""Device-resident solvers of the CUDA engine (``engine="cuda"``).

The same iterations as the host solvers, run on the GPU by the kernels of
:mod:`mlverify.kernels.cuda` for a **batch of independent problems** (the leading axes of
``y``) in one launch sequence:

- :func:`layered_thresholding`: :math:`\hat\Gamma_i = T_{\beta_i}(D_i^T\hat\Gamma_{i-1})`, one
  fused analysis-threshold kernel per layer (the CNN forward pass);
- :func:`fista` / :func:`basis_pursuit`: FISTA with gradient restart for
  :math:`\min \tfrac12\|y - D\Gamma\|^2 + \lambda\|\Gamma\|_1`, the iteration and restart rule of
  :mod:`mlverify.pursuits._basis_pursuit` (Beck, Teboulle 2009; O'Donoghue, Candès 2015), each
  problem with its own momentum, restarts and stopping;
- :func:`layered_basis_pursuit` runs layer by layer through :func:`basis_pursuit` (the
  dispatch is in :mod:`._layered`);
- :func:`ml_ista`: ML-ISTA / ML-FISTA of :mod:`mlverify.pursuits._ml_ista` (Sulam, Aberdam,
  Beck, Elad, TPAMI 2019), each problem stopped on its own fixed-point residual.

**Transfers.** The signal goes to the device once (not at all when it is a device array, which
is used in place), the iteration runs there (residual :math:`Dz - y` in one synthesis kernel,
the proximal-gradient step in one fused analysis-threshold kernel, per-problem reductions and
scalar updates in small kernels; the host launches kernels and never waits for them between
checks), and the codes come back once (stay on the device, in the input's array library, when
``y`` was a device array). FISTA's stopping rule is the certified relative duality gap of
:mod:`._certificates`, computed in float64 on the host from a copy of the iterate every
``check_every`` iterations (``DualityGap.problem_certificates``): a problem stops once its own
gap is ``<= tol``, so the batch's gap (of the sums) is ``<= tol`` too. ML-ISTA tests its
residual on the device at every iteration, as the host solver does; the host looks at the
per-problem states every ``check_every`` iterations (when it also records the objective).

**Batches differ from the host engines** in one respect: the host FISTA treats a batch as one
problem (one momentum sequence, one stopping test on the summed gap) and the host ML-ISTA takes
one signal; here every problem runs exactly as if it were solved alone (same iterates as the
host engine on that problem, up to the order of floating-point sums).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import _cuda
from .._validate import as_float_array, check_finite, check_positive, check_positive_int
from ..kernels import cuda as ck
from ..model.dictionary import ConvDictionary
from ..model.mlcsc import MLCSC
from ._basis_pursuit import DIVERGENCE_FACTOR
from ._certificates import DualityGap, relative_gap
from ._checks import check_codes, check_dictionary, check_signal, check_signal_shape
from ._linear import ConvChain
from ._ml_ista import DIVERGENCE_FACTOR as ML_DIVERGENCE_FACTOR
from ._ml_ista import _steps
from ._problem_p import check_lams, layer_objective
from ._result import PursuitResult
from ._threshold import _check_beta, _check_kind, _check_thresholds

#: Problem states, worst first (the status of a batch is the worst of its problems).
_STATUS = {ck.NON_FINITE: "non-finite", ck.DIVERGED: "diverged", ck.RUNNING: "max_iter",
           ck.CONVERGED: "converged"}
_SEVERITY = (ck.NON_FINITE, ck.DIVERGED, ck.RUNNING, ck.CONVERGED)


@dataclass
class _Signal:
    """A checked signal on the device: ``dev4`` canonical ``(B, c, H, W)``; ``host`` the NumPy
    array (``None`` when ``y`` was a device array, ``template`` for :func:`_cuda.like`)."""

    dev4: object
    host: np.ndarray | None
    batch: tuple[int, ...]
    spatial: tuple[int, ...]
    template: object

    @property
    def size(self) -> int:
        return math.prod(self.batch)

    def host_copy(self) -> np.ndarray:
        """The signal on the host (copied once when it lives on the device)."""
        if self.host is None:
            self.host = self.dev4.copy_to_host().reshape(
                (*self.batch, self.dev4.shape[1], *self.spatial))
        return self.host

    def shape(self, channels: int) -> tuple[int, ...]:
        return (*self.batch, channels, *self.spatial)

    def canonical(self, channels: int) -> tuple[int, ...]:
        return (self.size, channels, *self.dev4.shape[2:])

    def out(self, dev4, channels: int):
        """A canonical device result as the caller's array: on the device (in ``y``'s library)
        when ``y`` was a device array, else copied to the host."""
        shape = self.shape(channels)
        if self.host is None or _cuda.is_device_array(self.template):
            return _cuda.like(dev4.reshape(shape), self.template)
        return dev4.copy_to_host().reshape(shape)


def _signal(D: ConvDictionary, name: str, y) -> _Signal:
    """Check ``y`` of shape ``(..., c, *S)`` against ``D`` and put it on the device."""
    if _cuda.is_device_array(y):
        dev = ck.as_float_array(name, y, dtype=D.dtype)  # checked on the device
        check_signal_shape(D, name, tuple(dev.shape))
        host = None
    else:
        host = check_signal(D, name, y)
        dev = _cuda.to_device(host)
    d = D.spatial_ndim
    shape = tuple(dev.shape)
    batch, spatial = shape[: len(shape) - d - 1], shape[len(shape) - d:]
    dev4 = dev.reshape((math.prod(batch), D.n_channels, *((1,) * (2 - d)), *spatial))
    return _Signal(dev4, host, batch, spatial, y)


def _filters4(D: ConvDictionary):
    """``D``'s filters on the device as ``(m, c, n1, n2)`` (copied once, see
    :func:`mlverify.kernels.cuda.device_filters`)."""
    f = ck.device_filters(D.filters)
    return f.reshape((D.n_atoms, D.n_channels, *((1,) * (2 - D.spatial_ndim)), *D.kernel_size))


def _host_codes(D: ConvDictionary, name: str, codes, y: np.ndarray) -> np.ndarray:
    """Codes ``(..., m, *S)`` matching ``y`` (a device array is copied to the host)."""
    if _cuda.is_device_array(codes):
        codes = ck.as_float_array(name, codes, dtype=D.dtype).copy_to_host()
    return check_codes(D, name, codes, y)


def _status(states: np.ndarray) -> str:
    return _STATUS[min(states.tolist(), key=_SEVERITY.index)] if states.size else "converged"


def _counts(states: np.ndarray) -> str:
    return ", ".join(f"{int((states == s).sum())} {_STATUS[s]}" for s in _SEVERITY
                     if (states == s).any())


# ---------------------------------------------------------------------- layered thresholding
def layered_thresholding(model: MLCSC, y, thresholds: Sequence, kind: str = "hard"
                         ) -> PursuitResult:
    r"""The forward pass :math:`\hat\Gamma_i = T_{\beta_i}(D_i^T\hat\Gamma_{i-1})` on the device.

    Arguments as :func:`mlverify.layered_thresholding`; ``y`` may be a device array (the codes
    then stay on the device). One fused analysis-threshold kernel per layer; the intermediate
    codes never leave the device.
    """
    if not isinstance(model, MLCSC):
        raise TypeError(f"model must be an MLCSC, got {type(model).__name__}")
    kind = _check_kind(kind)
    signal = _signal(model[0], "y", y)
    _check_thresholds(model, thresholds)
    current = signal.dev4
    codes, nonzeros = [], []
    for i, (layer, beta) in enumerate(zip(model.layers, thresholds, strict=True)):
        shape = signal.shape(layer.n_atoms)
        check_signal_shape(layer, "y", signal.shape(layer.n_channels))
        checked = _check_beta(f"thresholds[{i}]", beta,
                              np.broadcast_to(np.zeros((), model.dtype), shape))
        per_channel = np.ascontiguousarray(np.broadcast_to(checked.reshape(-1), layer.n_atoms))
        current = ck.analyze_threshold(current, _filters4(layer), per_channel, kind,
                                       out=_cuda.device_array(signal.canonical(layer.n_atoms),
                                                              model.dtype))
        partials = ck.problem_sums(ck.OP_NONZEROS, current).copy_to_host()
        nonzeros.append(float(partials.sum()))
        codes.append(signal.out(current, layer.n_atoms))
    return PursuitResult(codes=codes, n_iter=0, converged=True, status="exact",
                         history={"nonzeros": nonzeros},
                         message=f"layered {kind} thresholding (closed form, CUDA)")


# ---------------------------------------------------------------------- basis pursuit (FISTA)
def basis_pursuit(D, y, lam, nonneg: bool = False, tol: float = 1e-4, max_iter: int = 10000,
                  x0=None, check_every: int = 10) -> PursuitResult:
    r"""Convolutional basis pursuit on the device (arguments as :func:`mlverify.basis_pursuit`).

    ``y`` of shape ``(..., c, *S)`` is a batch of independent problems (a host array or a device
    array; see the module docstring for what differs from the host engines). For
    :math:`\lambda \ge \lambda_{max}` (over the batch) :math:`\Gamma = 0` is returned at once
    (status ``"exact"``).
    """
    D = check_dictionary("D", D)
    signal = _signal(D, "y", y)
    certificate = DualityGap(D, signal.host_copy(), lam, nonneg=nonneg, engine="cpu")
    tol = check_positive("tol", tol)
    max_iter = check_positive_int("max_iter", max_iter)
    check_every = check_positive_int("check_every", check_every)
    if x0 is not None:
        x0 = _host_codes(D, "x0", x0, certificate.y)
        if nonneg and (x0 < 0).any():
            raise ValueError("x0 must be >= 0 for non-negative basis pursuit")
    if signal.size == 0 or certificate.y.size == 0 or certificate.lam >= certificate.lam_max:
        zeros = _cuda.to_device(np.zeros(signal.canonical(D.n_atoms), D.dtype))
        return PursuitResult(
            codes=[signal.out(zeros, D.n_atoms)], n_iter=0, converged=True,
            certificate=certificate.evaluate(zeros.copy_to_host().reshape(
                signal.shape(D.n_atoms)))[2],
            certificate_kind="relative_duality_gap", status="exact",
            message="empty batch" if certificate.y.size == 0 else
            f"lam >= lam_max = {certificate.lam_max:.6g}: Gamma = 0 is optimal",
        )
    return fista(D, certificate, tol, max_iter, check_every, x0, signal)


def fista(D: ConvDictionary, certificate: DualityGap, tol: float, max_iter: int,
          check_every: int, x0=None, signal: _Signal | None = None) -> PursuitResult:
    r"""FISTA with gradient restart on the device, for a validated problem.

    The counterpart of ``_basis_pursuit._fista`` (same arguments; ``x0`` a host array or
    ``None``), every problem of the batch with its own momentum :math:`t`, restarts and stop:

    .. math::

        x_{k+1} = S_{\lambda/L}\bigl(z_k - \tfrac1L D^T(Dz_k - y)\bigr),\quad
        z_{k+1} = x_{k+1} + \tfrac{t_k - 1}{t_{k+1}}(x_{k+1} - x_k)

    (momentum reset when :math:`\langle z_k - x_{k+1}, x_{k+1} - x_k\rangle > 0`), stopped when
    the certified relative duality gap of the problem is ``<= tol`` (checked every
    ``check_every`` iterations on the host, the best dual value of each problem kept), or on
    divergence (objective above ``DIVERGENCE_FACTOR`` times its start), a non-finite step (the
    last finite iterate is kept) or ``max_iter``.

    Parameters
    ----------
    signal : optional
        The signal on the device (default: ``certificate.y`` copied there).

    Returns
    -------
    PursuitResult
        As the host solver's: ``history`` holds the batch's sums (``objective``, ``dual``,
        their ``relative_duality_gap``, the largest ``kkt``, the total ``restarts``) at every
        check; ``n_iter`` is the largest number of iterations of a problem.
    """
    if signal is None:
        signal = _signal(D, "y", certificate.y)
    y4, dtype = signal.dev4, D.dtype
    batch = y4.shape[0]
    codes4 = signal.canonical(D.n_atoms)
    lipschitz = D.spectral_norm(signal.spatial) ** 2
    step = dtype.type(1.0 / lipschitz)
    beta = _cuda.to_device(np.full(D.n_atoms, certificate.lam / lipschitz, dtype))
    kind = "relu" if certificate.nonneg else "soft"
    filters = _filters4(D)
    start_codes = np.zeros(codes4, dtype) if x0 is None else x0.reshape(codes4)
    x, z = _cuda.to_device(start_codes), _cuda.to_device(start_codes)
    x_new = _cuda.device_array(codes4, dtype)
    residual = _cuda.device_array(y4.shape, dtype)
    partials = ck.partial_sums_for(z)  # (x_new is not written yet: not read)
    t = _cuda.to_device(np.ones(batch))
    coef = _cuda.to_device(np.zeros(batch, dtype))
    restarts, iterations = (_cuda.to_device(np.zeros(batch, np.int64)) for _ in range(2))
    active = _cuda.to_device(np.ones(batch, np.int32))
    state = _cuda.to_device(np.zeros(batch, np.int32))

    y64 = certificate.y.astype(np.float64).reshape(batch, -1)
    reference = 0.5 * np.einsum("bi,bi->b", y64, y64)
    if x0 is not None:
        reference = np.maximum(reference, certificate.problem_certificates(x0)["primal"])
    best_dual = np.full(batch, -math.inf)
    history: dict[str, list[float]] = {key: [] for key in (
        "iteration", "objective", "dual", "relative_duality_gap", "kkt", "restarts", "time")}
    start = time.perf_counter()
    iteration = 0
    for iteration in range(1, max_iter + 1):
        ck.synthesize(z, filters, subtract=y4, active=active, out=residual)
        ck.analyze_threshold(residual, filters, beta, kind, base=z, coef=-step, active=active,
                             out=x_new)
        ck.problem_sums(ck.OP_STEP_INNER, z, x_new, x, active=active, out=partials)
        ck.fista_momentum(partials, t, coef, restarts, iterations, active, state)
        ck.momentum_step(x_new, x, z, coef, active)
        if iteration % check_every and iteration != max_iter:
            continue
        states, running = state.copy_to_host(), active.copy_to_host().astype(bool)
        values = certificate.problem_certificates(x.copy_to_host().reshape(signal.shape(
            D.n_atoms)))
        best_dual = np.maximum(best_dual, values["dual"])
        gaps = np.array([relative_gap(p, d) for p, d in zip(values["primal"], best_dual,
                                                           strict=True)])
        states[running & (gaps <= tol)] = ck.CONVERGED
        states[(states == ck.RUNNING) & running
               & (values["primal"] > DIVERGENCE_FACTOR * reference)] = ck.DIVERGED
        running &= states == ck.RUNNING
        state.copy_to_device(states)
        active.copy_to_device(running.astype(np.int32))
        primal, dual = float(values["primal"].sum()), float(best_dual.sum())
        for key, value in (("iteration", iteration), ("objective", primal), ("dual", dual),
                           ("relative_duality_gap", relative_gap(primal, dual)),
                           ("kkt", values["kkt"].max()),
                           ("restarts", restarts.copy_to_host().sum()),
                           ("time", time.perf_counter() - start)):
            history[key].append(float(value))
        if not running.any():
            break
    status = _status(states)
    message = (f"relative duality gap <= {tol:g}" if status == "converged" else
               f"{_counts(states)} of {batch} problems (max_iter = {max_iter}, "
               f"divergence factor {DIVERGENCE_FACTOR:g})")
    return PursuitResult(
        codes=[signal.out(x, D.n_atoms)], n_iter=int(iterations.copy_to_host().max(initial=0)),
        converged=status == "converged", certificate=history["relative_duality_gap"][-1],
        certificate_kind="relative_duality_gap", history=history, status=status,
        message=message + " (CUDA)",
    )


# ---------------------------------------------------------------------- ML-ISTA / ML-FISTA
def _conv_model(model) -> MLCSC:
    """The layers of ``model`` as an :class:`MLCSC` (the CUDA engine is convolutional only)."""
    if isinstance(model, MLCSC):
        return model
    if isinstance(model, (np.ndarray, str, bytes)) or not isinstance(model, Sequence):
        raise TypeError("model must be an MLCSC or a sequence of ConvDictionary, got "
                        f"{type(model).__name__}")
    if not all(isinstance(layer, ConvDictionary) for layer in model):
        raise TypeError("engine='cuda' runs convolutional models only (ConvDictionary layers); "
                        "use engine='cpu' or 'numpy' for dense matrices")
    return MLCSC(model)


def ml_ista(model, y, lams, mu=None, t=None, *, max_iter: int = 1000, tol: float = 1e-6,
            nonneg: bool = False, x0=None, check_every: int = 10,
            momentum: bool = False) -> PursuitResult:
    r"""ML-ISTA (``momentum=False``) or ML-FISTA on the device, for a batch of signals.

    Arguments and result as :func:`mlverify.ml_ista` (convolutional models only); ``y`` of
    shape ``(..., m_0, *S)`` and ``x0`` ``(..., m_L, *S)`` may be device arrays. Per iteration
    and problem: the backward sweep :math:`\hat\gamma_{i-1} = D_i\hat\gamma_i` (synthesis
    kernels), the forward sweep :math:`\gamma_i = S_{\mu_i\lambda_i}(\hat\gamma_i -
    \tfrac{\mu_i}{\mu_{i-1}}D_i^T(D_i\hat\gamma_i - \gamma_{i-1}))` (a residual synthesis and a
    fused analysis-threshold kernel per layer) and the fixed-point residual
    :math:`\|\gamma^{k+1} - z^k\|/t` tested against ``tol`` on the device. ``history`` holds the
    batch's summed objective and largest residual at every check.
    """
    chain = _conv_model(model)
    layers = chain.layers
    signal = _signal(layers[0], "y", y)
    for i, layer in enumerate(layers, start=1):
        check_signal_shape(layer, f"y (layer D{i})", signal.shape(layer.n_channels))
    lams = check_lams(lams, len(layers), positive=False)
    max_iter = check_positive_int("max_iter", max_iter)
    check_every = check_positive_int("check_every", check_every)
    tol = check_positive("tol", tol)
    dtype = chain.dtype
    ops = [ConvChain([layer], signal.spatial, "cpu", layer.n_atoms, dtype) for layer in layers]
    steps = _steps(ops, mu, t)
    batch, deepest, n_layers = signal.size, layers[-1].n_atoms, len(layers)
    if x0 is None:
        start_codes = np.zeros(signal.canonical(deepest), dtype)
    else:
        if _cuda.is_device_array(x0):
            x0 = ck.as_float_array("x0", x0, dtype=dtype).copy_to_host()
        x0 = as_float_array("x0", x0, dtype=dtype)
        if x0.shape != signal.shape(deepest):
            raise ValueError(f"x0 must have shape {signal.shape(deepest)}, got {x0.shape}")
        check_finite("x0", x0)
        start_codes = x0.reshape(signal.canonical(deepest))
    gamma, previous_gamma = _cuda.to_device(start_codes), _cuda.to_device(start_codes)
    new = _cuda.device_array(signal.canonical(deepest), dtype)
    point = _cuda.device_array(signal.canonical(deepest), dtype) if momentum else gamma
    # bases[j] = γ̂_{j+1} (the back-projection the forward step of layer j starts from); the
    # forward step overwrites it in place with γ_{j+1} (the kernel reads each base element
    # only for the output element it writes).
    bases = [*(_cuda.device_array(signal.canonical(layer.n_atoms), dtype)
               for layer in layers[:-1]), point]
    outputs = [*bases[:-1], new]
    residuals = [_cuda.device_array(signal.canonical(layer.n_channels), dtype)
                 for layer in layers]
    filters = [_filters4(layer) for layer in layers]
    kind = "relu" if nonneg else "soft"
    betas = [_cuda.to_device(np.full(layer.n_atoms, s * lam, dtype))
             for layer, s, lam in zip(layers, steps, lams, strict=True)]
    # point = base - c·grad with c = μ_i/μ_{i-1} rounded to the dtype, as the host solver
    coefs = [-dtype.type(s / p) for s, p in zip(steps, [1.0, *steps[:-1]], strict=True)]
    extrapolation = _cuda.to_device(_momentum_coefficients(max_iter, dtype))
    residual = _cuda.to_device(np.full(batch, np.inf))
    iterations = _cuda.to_device(np.zeros(batch, np.int64))
    active = _cuda.to_device(np.ones(batch, np.int32))
    state = _cuda.to_device(np.zeros(batch, np.int32))
    partials = ck.partial_sums_for(new)  # (new and point are not written yet: not read)

    y_host = signal.host_copy().reshape(signal.canonical(layers[0].n_channels)[:2]
                                        + signal.spatial)
    y64 = y_host.reshape(batch, -1).astype(np.float64)
    f_zero = 0.5 * np.einsum("bi,bi->b", y64, y64)
    history: dict[str, list[float]] = {
        "iteration": [], "objective": [], "fixed_point_residual": [], "seconds": []}
    start = time.perf_counter()
    it = 0
    for it in range(1, max_iter + 1):
        if momentum:  # point = γ + c_k(γ - γ_prev), then γ_prev = γ
            ck.momentum_step(gamma, previous_gamma, point, extrapolation, active, index=it - 1)
        for j in range(n_layers - 2, -1, -1):  # backward sweep γ̂_{j+1} = D_{j+2} γ̂_{j+2}
            ck.synthesize(bases[j + 1], filters[j + 1], active=active, out=bases[j])
        previous = signal.dev4
        for j in range(n_layers):  # forward sweep
            ck.synthesize(bases[j], filters[j], subtract=previous, active=active,
                          out=residuals[j])
            ck.analyze_threshold(residuals[j], filters[j], betas[j], kind, base=bases[j],
                                 coef=coefs[j], active=active, out=outputs[j])
            previous = outputs[j]
        ck.problem_sums(ck.OP_DIFF_SQUARES, new, point, active=active, out=partials)
        ck.fixed_point_test(partials, steps[-1], tol, residual, iterations, active, state)
        ck.commit(new, gamma, active, state)
        ck.retire(active, state)
        if it % check_every and it != max_iter:
            continue
        states, running = state.copy_to_host(), active.copy_to_host().astype(bool)
        gammas = gamma.copy_to_host().reshape((batch, deepest, *signal.spatial))
        objectives = np.array([layer_objective(ops, y_host[b], gammas[b], lams)
                               for b in range(batch)])
        states[running & ~np.isfinite(objectives)] = ck.NON_FINITE
        states[running & (objectives > ML_DIVERGENCE_FACTOR * (f_zero + 1.0))] = ck.DIVERGED
        running &= states == ck.RUNNING
        state.copy_to_device(states)
        active.copy_to_device(running.astype(np.int32))
        largest = float(residual.copy_to_host().max(initial=0.0))
        for key, value in zip(history, (it, objectives.sum(), largest,
                                        time.perf_counter() - start), strict=True):
            history[key].append(float(value))
        if not running.any():
            break
    codes = [gamma]
    for i in range(len(layers) - 1, 0, -1):
        codes.append(ck.synthesize(codes[-1], filters[i]))
    status = _status(states)
    name = "ML-FISTA" if momentum else "ML-ISTA"
    certificate = history["fixed_point_residual"][-1]
    return PursuitResult(
        codes=[signal.out(c, layer.n_atoms) for c, layer in zip(codes[::-1], layers,
                                                                  strict=True)],
        n_iter=int(iterations.copy_to_host().max(initial=0)),
        converged=status == "converged", certificate=certificate,
        certificate_kind="fixed_point_residual", history=history, status=status,
        message=f"{name} (CUDA): {_counts(states)} of {batch} problems, largest fixed-point "
                f"residual {certificate:.3e} (tol {tol:.1e}, max_iter {max_iter}; steps "
                f"mu={steps[:-1]}, t={steps[-1]:.6g})",
    )


def _momentum_coefficients(n: int, dtype: np.dtype) -> np.ndarray:
    """ML-FISTA's :math:`(t_k - 1)/t_{k+1}`, :math:`t_{k+1} = (1 + \\sqrt{1 + 4t_k^2})/2`,
    :math:`t_1 = 1`, for ``k = 1..n`` (computed in float64, rounded to ``dtype``)."""
    out = np.empty(n)
    tk = 1.0
    for k in range(n):
        tk_next = (1.0 + np.sqrt(1.0 + 4.0 * tk * tk)) / 2.0
        out[k] = (tk - 1.0) / tk_next
        tk = tk_next
    return out.astype(dtype)
