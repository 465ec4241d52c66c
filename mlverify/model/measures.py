r"""Local sparsity and energy measures of ML-CSC (THEORY.md §2).

Windows are periodic and, in 2-D, square per axis, over all channels. Arrays have shape
``(..., channels, *S)``; leading axes are a batch and every measure returns one value per batch
element (a scalar when there is no batch). The spatial dimension is read from the window size:
an ``int`` means 1-D, a pair ``(n1, n2)`` means 2-D.

- **stripe** of :math:`\Gamma_i` at :math:`x`: positions :math:`x-n_i+1 \dots x+n_i-1` (side
  :math:`2n_i - 1`), where :math:`n_i` is the filter length of :math:`D_i`;
  :math:`\|\Gamma_i\|^s_{0,\infty}` is the largest number of non-zeros in a stripe.
- **patch** of :math:`V` at :math:`x`: positions :math:`x \dots x+w-1` with :math:`w = n_{i+1}`
  (the next dictionary's filter length; :math:`w = n_1` for the signal);
  :math:`\|V\|^p_{0,\infty}` and :math:`\|V\|^p_{2,\infty}` are the largest count and ℓ2 norm.

Because every window position is scanned, the maximum does not depend on where a window is
anchored, only on its side.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._validate import as_float_array, check_finite, check_positive_int, spatial_size


def _window_max(per_position: np.ndarray, sizes: tuple[int, ...], name: str):
    """Max over periodic windows of side ``sizes`` of the sums of ``per_position (..., *S)``.

    ``name`` is the argument that set the window size, for the error message.
    """
    d = len(sizes)
    spatial = per_position.shape[-d:]
    if any(w > s for w, s in zip(sizes, spatial, strict=True)):
        raise ValueError(
            f"{name}: the window {sizes} is larger than the signal {spatial} (periodic windows "
            "would count a position twice)"
        )
    pad = [(0, 0)] * (per_position.ndim - d) + [(0, w - 1) for w in sizes]
    padded = np.pad(per_position, pad, mode="wrap")
    axes = tuple(range(per_position.ndim - d, per_position.ndim))
    windows = sliding_window_view(padded, sizes, axis=axes)
    sums = windows.sum(axis=tuple(range(-d, 0)))
    best = sums.max(axis=axes)
    return best[()] if best.ndim == 0 else best


def _per_position(name: str, array, sizes: tuple[int, ...], reduce) -> np.ndarray:
    array = as_float_array(name, array)
    check_finite(name, array)
    d = len(sizes)
    if array.ndim < d + 1:
        raise ValueError(f"{name} must have shape (..., channels, {', '.join('N' * d)}), "
                         f"got {array.shape}")
    return reduce(array).sum(axis=-d - 1)


def stripe_l0_inf(codes, n):
    r"""Stripe sparsity :math:`\|\Gamma\|^s_{0,\infty}`: max non-zeros in a window of side ``2n-1``.

    Parameters
    ----------
    codes : ndarray, shape ``(..., m, *S)``
    n : int or (int, int)
        Filter length of the dictionary that synthesises from ``codes`` (:math:`n_i` for
        :math:`\Gamma_i`).
    """
    sizes = spatial_size("n", n)
    counts = _per_position("codes", codes, sizes, lambda a: (a != 0).astype(np.int64))
    return _window_max(counts, tuple(2 * s - 1 for s in sizes), "n (stripe side 2n - 1)")


def patch_l0_inf(codes, w):
    r"""Patch sparsity :math:`\|\Gamma\|^p_{0,\infty}`: max non-zeros in a window of side ``w``.

    ``w`` is the next dictionary's filter length (:math:`n_{i+1}` for :math:`\Gamma_i`), ``1`` for
    the deepest layer.
    """
    sizes = spatial_size("w", w)
    counts = _per_position("codes", codes, sizes, lambda a: (a != 0).astype(np.int64))
    return _window_max(counts, sizes, "w")


def patch_l2_inf(v, w):
    r"""Patch energy :math:`\|V\|^p_{2,\infty}`: max ℓ2 norm over windows of side ``w``.

    For noise :math:`E` on the signal use ``w = n_1`` (this is :math:`\varepsilon_L`).
    Computed in float64.
    """
    sizes = spatial_size("w", w)
    energy = _per_position("v", v, sizes, lambda a: a.astype(np.float64) ** 2)
    return np.sqrt(_window_max(energy, sizes, "w"))


def extreme_magnitudes(codes) -> tuple[float, float]:
    r""":math:`(|\Gamma^{\min}|, |\Gamma^{\max}|)` over the non-zeros of the whole array."""
    codes = as_float_array("codes", codes)
    check_finite("codes", codes)
    magnitudes = np.abs(codes)
    nonzero = magnitudes[magnitudes != 0]
    if nonzero.size == 0:
        raise ValueError("codes has no non-zero entry: its extreme magnitudes are undefined")
    return float(nonzero.min()), float(nonzero.max())


def contrast(codes) -> float:
    r"""Contrast :math:`|\Gamma^{\min}| / |\Gamma^{\max}| \in (0, 1]` over the non-zeros."""
    low, high = extreme_magnitudes(codes)
    return low / high


def coherence_lower_bound(m: int, n, c: int = 1) -> float:
    r"""Welch-type lower bound on the mutual coherence of ``m`` atoms, ``c`` channels, size ``n``.

    .. math:: \mu \ge \sqrt{\frac{m - c}{c\,(P m - 1)}}, \qquad P = \prod_a (2 n_a - 1)

    With ``c = 1`` and 1-D filters this is THEORY.md's :math:`\sqrt{(m-1)/(m(2n-1)-1)}`; the
    single-channel formula is false for ``c > 1`` (THEORY.md §2). It is the Welch bound for the
    :math:`Pm` columns of the global dictionary on a periodic signal of side :math:`2n_a - 1` (where
    the global and local coherences agree) in dimension :math:`Pc`; trivial (0) when ``m <= c``.
    2-D is our extension of the same argument [D].
    """
    m = check_positive_int("m", m)
    c = check_positive_int("c", c)
    sizes = spatial_size("n", n)
    shifts = math.prod(2 * s - 1 for s in sizes)
    if m <= c or m * shifts == 1:
        return 0.0
    return math.sqrt((m - c) / (c * (shifts * m - 1)))
