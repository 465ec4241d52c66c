r"""Thresholding operators and layered thresholding, the CNN forward pass (THEORY.md §3).

- hard :math:`H_\beta(v) = v\,1[|v| > \beta]` (the proximal map of
  :math:`\tfrac{\beta^2}{2}\|u\|_0`),
- soft :math:`S_\beta(v) = \mathrm{sign}(v)\max(|v| - \beta, 0)` (prox of :math:`\beta\|u\|_1`),
- ReLU / non-negative soft :math:`S^+_\beta(v) = \max(v - \beta, 0)` (prox of
  :math:`\beta\,\mathbf 1^T u + \iota_{u \ge 0}`): a CNN layer :math:`\mathrm{ReLU}(v + b)` with
  bias :math:`b = -\beta`.

Layered thresholding (Papyan, Romano, Elad, JMLR 2017): :math:`\hat\Gamma_0 = Y`,
:math:`\hat\Gamma_i = T_{\beta_i}(D_i^T\hat\Gamma_{i-1})`.

**Thresholds.** ``beta`` is either a scalar :math:`\ge 0` (the same for every entry) or a
*per-channel* array of shape ``(m,) + (1,) * d``: ``m`` thresholds for the channel axis ``-(d+1)``
of ``v`` (``v.shape[-(d+1)] == m``), broadcast over the ``d`` trailing (spatial) axes and any
leading (batch) axes. For codes ``(…, m, N)`` use shape ``(m, 1)``; for codes ``(…, m, H, W)``
use ``(m, 1, 1)``. The thresholds are rounded to ``v``'s dtype (float32 or float64) before use,
so both engines compare exactly the same numbers. Zeros are returned as ``+0.0``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .._validate import ENGINES, as_float_array, check_engine, check_finite
from ..kernels import cpu
from ..kernels._scalar import KINDS
from ..model.mlcsc import MLCSC
from ._checks import check_signal
from ._result import PursuitResult


def _check_kind(kind) -> str:
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"kind must be one of {tuple(KINDS)}, got {kind!r}")
    return kind


def _check_beta(name: str, beta, v: np.ndarray) -> np.ndarray:
    """``beta`` as an array of ``v``'s dtype: 0-d (scalar) or ``(m,) + (1,) * d``."""
    if isinstance(beta, (str, bytes)) or beta is None or isinstance(beta, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real scalar or array, got {type(beta).__name__}")
    array = np.asarray(beta)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be real, got dtype {array.dtype}")
    if array.ndim > 0:
        d = array.ndim - 1
        if array.ndim > v.ndim or any(s != 1 for s in array.shape[1:]):
            raise ValueError(
                f"{name} must be a scalar or have shape (m,) + (1,) * d (one threshold per "
                f"channel of axis -(d+1) of the input), got {array.shape} for input {v.shape}"
            )
        channels = v.shape[v.ndim - d - 1]  # (simulator device shapes: no index < 0)
        if array.shape[0] != channels:
            raise ValueError(
                f"{name} has {array.shape[0]} per-channel thresholds but axis {-d - 1} of the "
                f"input has {channels} channels"
            )
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError(f"{name} must be finite and >= 0")
    return array.astype(v.dtype)


def _check_thresholds(model: MLCSC, thresholds) -> None:
    """``thresholds`` must be a sequence with one entry per layer of ``model``."""
    if isinstance(thresholds, (str, bytes)) or not isinstance(thresholds, Sequence):
        raise TypeError("thresholds must be a sequence with one threshold per layer")
    if len(thresholds) != model.n_layers:
        raise ValueError(f"thresholds must have one entry per layer ({model.n_layers}), "
                         f"got {len(thresholds)}")


def _numpy_threshold(v: np.ndarray, beta: np.ndarray, kind: str) -> np.ndarray:
    """Plain NumPy oracle of the three thresholds (``beta`` broadcastable against ``v``)."""
    zero = np.zeros((), v.dtype)
    if kind == "hard":
        return np.where(np.abs(v) > beta, v, zero)
    if kind == "soft":
        return np.where(v > beta, v - beta, np.where(v < -beta, v + beta, zero))
    return np.where(v > beta, v - beta, zero)


def _canonical(v, beta: np.ndarray):
    """``v`` as the kernels' layout ``(B, m, H, W)`` and ``beta`` as ``(m,)``."""
    if beta.ndim == 0:
        # One channel; rows over all but the last axis give the kernel parallel tasks.
        width = v.shape[v.ndim - 1] if v.ndim else 1
        return v.reshape(1, 1, -1, width), beta.reshape(1)
    m = beta.shape[0]
    spatial = v.shape[v.ndim - (beta.ndim - 1):]
    height = spatial[0] if len(spatial) > 1 else 1
    width = math.prod(spatial[1:] if len(spatial) > 1 else spatial)
    return v.reshape(-1, m, height, width), np.ascontiguousarray(beta.reshape(m))


def _cpu_threshold(v: np.ndarray, beta: np.ndarray, kind: str) -> np.ndarray:
    """The Numba kernel on the canonical layout ``(B, m, H, W)`` with ``beta (m,)``."""
    canonical, per_channel = _canonical(v, beta)
    out = np.empty_like(canonical)
    with cpu.threads_for(canonical.size):
        cpu.threshold(canonical, per_channel, KINDS[kind], out)
    return out.reshape(v.shape)


def _threshold(v: np.ndarray, beta: np.ndarray, kind: str, engine: str) -> np.ndarray:
    if v.size == 0:  # nothing to launch a kernel for
        return v.copy()
    if engine == "numpy":
        return _numpy_threshold(v, beta, kind)
    if engine == "cuda":
        from ..kernels import cuda

        return cuda.threshold(*_canonical(v, beta), kind).reshape(v.shape)
    return _cpu_threshold(v, beta, kind)


def threshold(v, beta, kind: str = "soft", engine: str = "auto") -> PursuitResult:
    r"""Apply :math:`H_\beta`, :math:`S_\beta` or :math:`S^+_\beta` entrywise.

    Parameters
    ----------
    v : ndarray, float32 or float64
        Values to threshold (any shape; finite); with ``engine="cuda"`` also a device array
        (``__cuda_array_interface__``), thresholded on the device and returned there.
    beta : float or ndarray
        Threshold :math:`\beta \ge 0`: a scalar, or per channel of shape ``(m,) + (1,) * d``
        for the channel axis ``-(d+1)`` of ``v`` (see the module docstring).
    kind : {"hard", "soft", "relu"}
        :math:`H_\beta(v) = v\,1[|v|>\beta]`, :math:`S_\beta(v) = \mathrm{sign}(v)
        \max(|v|-\beta, 0)`, :math:`S^+_\beta(v) = \max(v-\beta, 0)`.
    engine : {"auto", "numpy", "cpu", "cuda"}
        ``"numpy"``: plain NumPy; ``"cpu"`` (and ``"auto"``): the Numba kernel
        :func:`mlverify.kernels.cpu.threshold`; ``"cuda"``: the CUDA kernel
        :func:`mlverify.kernels.cuda.threshold`. All give identical results.

    Returns
    -------
    PursuitResult
        ``codes = [T_beta(v)]`` (same shape and dtype as ``v``), ``status="exact"``.
    """
    kind = _check_kind(kind)
    engine = check_engine(engine, ENGINES)
    if engine == "cuda":
        from ..kernels import cuda

        array = cuda.as_float_array("v", v)  # a device array stays there (checked, finite)
        out = cuda.like(_threshold(array, _check_beta("beta", beta, array), kind, engine), v)
    else:
        v = as_float_array("v", v)
        check_finite("v", v)
        out = _threshold(v, _check_beta("beta", beta, v), kind, engine)
    return PursuitResult(codes=[out], n_iter=0, converged=True, status="exact",
                         message=f"{kind} thresholding (closed form)")


def layered_thresholding(model: MLCSC, y, thresholds: Sequence, kind: str = "hard",
                         engine: str = "auto") -> PursuitResult:
    r"""The forward pass :math:`\hat\Gamma_i = T_{\beta_i}(D_i^T \hat\Gamma_{i-1})`, :math:`\hat
    \Gamma_0 = Y` (Papyan, Romano, Elad, JMLR 2017; THEORY.md §3, theorem LT).

    Parameters
    ----------
    model : MLCSC
        :math:`D_1, \dots, D_K`.
    y : ndarray, shape ``(..., m_0, *S)``
        Signal(s), the model's dtype; leading axes are a batch.
    thresholds : sequence of K floats or arrays
        :math:`\beta_i` per layer: a scalar or a per-channel array of shape
        ``(m_i,) + (1,) * d`` (``d`` = spatial dimension).
    kind : {"hard", "soft", "relu"}
    engine : {"auto", "numpy", "cpu", "cuda"}
        Engine of the analysis operators and the thresholds. ``"cuda"`` runs one fused
        analysis-threshold kernel per layer (:mod:`mlverify.pursuits._device`) and also takes a
        device array ``y`` (the codes then stay on the device).

    Returns
    -------
    PursuitResult
        ``codes = [Γ̂_1, …, Γ̂_K]``; ``history["nonzeros"]`` the non-zeros per layer.
    """
    if not isinstance(model, MLCSC):
        raise TypeError(f"model must be an MLCSC, got {type(model).__name__}")
    kind = _check_kind(kind)
    engine = check_engine(engine, ENGINES)
    if engine == "cuda":
        from ._device import layered_thresholding as on_device

        return on_device(model, y, thresholds, kind)
    y = check_signal(model[0], "y", y)
    _check_thresholds(model, thresholds)
    current = y
    codes, nonzeros = [], []
    d = model[0].spatial_ndim
    for i, (layer, beta) in enumerate(zip(model.layers, thresholds, strict=True), start=1):
        shape = (*current.shape[: -d - 1], layer.n_atoms, *current.shape[-d:])
        beta = _check_beta(f"thresholds[{i - 1}]", beta,
                           np.broadcast_to(np.zeros((), layer.dtype), shape))
        if engine == "numpy" or beta.ndim not in (0, d + 1):
            current = _threshold(layer.analyze(current, engine=engine), beta, kind, engine)
            nonzeros.append(int(cpu.nonzeros(current)[0]))
        else:  # one pass: the threshold is fused into the analysis kernel's store (which counts)
            per_channel = np.ascontiguousarray(
                np.broadcast_to(beta, (layer.n_atoms,) + (1,) * d).reshape(layer.n_atoms))
            canonical = current.reshape((-1, layer.n_channels) + (1,) * (2 - d) + shape[-d:])
            # the previous layer's count is the input's, per problem, for a single problem
            known = np.array(nonzeros[-1:]) if nonzeros and canonical.shape[0] == 1 else None
            current, count = layer._analyze_threshold(canonical, per_channel, KINDS[kind], known)
            current = current.reshape(shape)
            nonzeros.append(count)
        codes.append(current)
    return PursuitResult(
        codes=codes, n_iter=0, converged=True, status="exact",
        history={"nonzeros": [float(count) for count in nonzeros]},
        message=f"layered {kind} thresholding (closed form)",
    )
