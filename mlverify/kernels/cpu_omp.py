r"""Numba CPU kernel of convolutional orthogonal matching pursuit with local updates.

Layout (canonical, as in :mod:`mlverify.kernels.cpu`): signal ``(c, H, W)``, correlations
``(m, H, W)``, unit-norm filters ``(m, c, n1, n2)``; 1-D is ``H = n1 = 1``. All arithmetic is in
float64. The local Gram ``gram[f, g, sy, sx]`` holds
:math:`\langle d_{f,p}, d_{g,p+s}\rangle` with the shift ``s`` stored modulo ``2n - 1`` per axis
(:meth:`mlverify.ConvDictionary.local_gram`); it describes the global Gram exactly when every
spatial size ``N >= 2n - 1`` (the caller checks this).

Each step (Papyan, Sulam, Elad 2017, "Working locally thinking globally"; THEORY.md §3):

1. pick the eligible, inactive atom with the largest :math:`|\langle d_j, r\rangle|` (first in C
   order on ties);
2. extend the Cholesky factor :math:`L L^T = G_{\Lambda\Lambda}` of the active Gram by one row;
3. re-fit :math:`x = G_{\Lambda\Lambda}^{-1} D_\Lambda^T y` (the forward solve is incremental,
   the backward solve is redone);
4. with :math:`\Delta x = x_{new} - x_{old}`, update the correlations
   :math:`D^T r \mathrel{-}= \sum_j \Delta x_j\, G(\cdot, j)` and the residual
   :math:`r \mathrel{-}= \sum_j \Delta x_j d_j`: every term is a local stencil around atom ``j``.

The stripe constraint (``stripe_k > 0``) keeps the number of active atoms in every periodic
window of side ``(2n1 - 1, 2n2 - 1)`` (all channels) at most ``stripe_k``: a position is blocked
as soon as a window that contains it is full.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Stop reasons returned by :func:`omp`.
STEPS, TOL, NO_ELIGIBLE, ORTHOGONAL, DEPENDENT = 0, 1, 2, 3, 4

#: An atom whose squared distance to the span of the active atoms is at most this (unit-norm
#: atoms) is treated as linearly dependent: OMP stops instead of adding it.
PIVOT_FLOOR = 1e-12


@njit(cache=True)
def _grow(array, size):  # pragma: no cover - compiled
    """``array`` (1-D or square 2-D) copied into a zero array of side ``size``."""
    if array.ndim == 1:
        out = np.zeros(size, dtype=array.dtype)
        out[: array.shape[0]] = array
        return out
    out2 = np.zeros((size, size), dtype=array.dtype)
    out2[: array.shape[0], : array.shape[1]] = array
    return out2


@njit(cache=True)
def _gram_entry(gram, f, py, px, g, qy, qx, height, width):  # pragma: no cover - compiled
    r"""Global Gram entry :math:`\langle d_{f,p}, d_{g,q}\rangle` from the local Gram."""
    s1 = gram.shape[2]
    s2 = gram.shape[3]
    h1 = (s1 - 1) // 2
    h2 = (s2 - 1) // 2
    sy = (qy - py) % height
    if sy > h1:
        sy -= height
    sx = (qx - px) % width
    if sx > h2:
        sx -= width
    if sy < -h1 or sy > h1 or sx < -h2 or sx > h2:
        return 0.0
    return gram[f, g, sy % s1, sx % s2]


@njit(cache=True)
def _residual_norm(resid):  # pragma: no cover - compiled
    total = 0.0
    for v in resid.ravel():
        total += v * v
    return np.sqrt(total)


@njit(cache=True)
def _block(window, blocked, py, px, k, s1, s2):  # pragma: no cover - compiled
    """Count a new active atom at ``(py, px)`` in every window containing it; block full ones."""
    height, width = blocked.shape
    for dy in range(s1):
        wy = (py - dy) % height
        for dx in range(s2):
            wx = (px - dx) % width
            window[wy, wx] += 1
            if window[wy, wx] >= k:
                for ty in range(s1):
                    for tx in range(s2):
                        blocked[(wy + ty) % height, (wx + tx) % width] = True


@njit(cache=True)
def omp(y, filters, gram, corr, max_steps, tol, stripe_k):  # pragma: no cover - compiled
    """Run OMP on one problem; ``corr`` (``D^T y``, unit-norm atoms) is updated in place.

    Parameters
    ----------
    y : float64 ``(c, H, W)``
    filters : float64 ``(m, c, n1, n2)``, unit-norm atoms
    gram : float64 ``(m, m, 2n1-1, 2n2-1)``
    corr : float64 ``(m, H, W)``, :math:`D^T y` on entry
    max_steps : int, most atoms to select
    tol : float, stop when the residual norm is ``<= tol``; negative disables it
    stripe_k : int, stripe bound; ``0`` disables it

    Returns
    -------
    atoms : int64 ``(k,)``, flat indices into ``(m, H, W)`` in selection order
    coef : float64 ``(k,)``, least-squares coefficients of the unit-norm atoms
    history : float64 ``(k + 1,)``, residual norm before the first and after every step
    reason : int, one of ``STEPS, TOL, NO_ELIGIBLE, ORTHOGONAL, DEPENDENT``
    """
    atoms_n, channels, n1, n2 = filters.shape
    height, width = corr.shape[1], corr.shape[2]
    plane = height * width
    s1, s2 = 2 * n1 - 1, 2 * n2 - 1
    h1, h2 = n1 - 1, n2 - 1
    resid = y.copy()
    active = np.zeros((atoms_n, height, width), dtype=np.bool_)
    blocked = np.zeros((height, width), dtype=np.bool_)
    window = np.zeros((height, width), dtype=np.int64)
    cap = 16
    chol = np.zeros((cap, cap))
    idx = np.zeros(cap, dtype=np.int64)
    proj = np.zeros(cap)  # L^{-1} D_Λ^T y (incremental forward solve)
    coef = np.zeros(cap)
    new = np.zeros(cap)
    history = np.zeros(cap + 1)
    history[0] = _residual_norm(resid)
    k = 0
    reason = STEPS
    while True:
        if tol >= 0.0 and history[k] <= tol:
            reason = TOL
            break
        if k >= max_steps:
            reason = STEPS
            break
        best = -1.0
        pick = -1
        for f in range(atoms_n):
            for py in range(height):
                for px in range(width):
                    if active[f, py, px] or blocked[py, px]:
                        continue
                    v = abs(corr[f, py, px])
                    if v > best:
                        best = v
                        pick = (f * height + py) * width + px
        if pick < 0:
            reason = NO_ELIGIBLE
            break
        if best == 0.0:
            reason = ORTHOGONAL
            break
        g = pick // plane
        qy = (pick // width) % height
        qx = pick % width
        if k == cap:
            cap *= 2
            chol = _grow(chol, cap)
            idx = _grow(idx, cap)
            proj = _grow(proj, cap)
            coef = _grow(coef, cap)
            new = _grow(new, cap)
            history = _grow(history, cap + 1)
        # new row of L: solve L w = G[Λ, j]
        norm2 = 0.0
        for i in range(k):
            a = idx[i]
            v = _gram_entry(gram, a // plane, (a // width) % height, a % width,
                            g, qy, qx, height, width)
            for t in range(i):
                v -= chol[i, t] * chol[k, t]
            v /= chol[i, i]
            chol[k, i] = v
            norm2 += v * v
        pivot = gram[g, g, 0, 0] - norm2
        if pivot <= PIVOT_FLOOR:
            for i in range(k):
                chol[k, i] = 0.0
            reason = DEPENDENT
            break
        chol[k, k] = np.sqrt(pivot)
        # incremental forward solve with b_j = <d_j, y>
        b = 0.0
        for ch in range(channels):
            for ty in range(n1):
                row = (qy + ty) % height
                for tx in range(n2):
                    b += filters[g, ch, ty, tx] * y[ch, row, (qx + tx) % width]
        for t in range(k):
            b -= chol[k, t] * proj[t]
        proj[k] = b / chol[k, k]
        idx[k] = pick
        active[g, qy, qx] = True
        if stripe_k > 0:
            _block(window, blocked, qy, qx, stripe_k, s1, s2)
        k += 1
        # backward solve L^T x = proj
        for i in range(k - 1, -1, -1):
            v = proj[i]
            for t in range(i + 1, k):
                v -= chol[t, i] * new[t]
            new[i] = v / chol[i, i]
        # local updates of the correlations and the residual
        for i in range(k):
            delta = new[i] - coef[i]
            coef[i] = new[i]
            if delta == 0.0:
                continue
            a = idx[i]
            ga = a // plane
            ay = (a // width) % height
            ax = a % width
            for f in range(atoms_n):
                for sy in range(-h1, h1 + 1):
                    py = (ay - sy) % height
                    for sx in range(-h2, h2 + 1):
                        corr[f, py, (ax - sx) % width] -= delta * gram[f, ga, sy % s1, sx % s2]
            for ch in range(channels):
                for ty in range(n1):
                    row = (ay + ty) % height
                    for tx in range(n2):
                        resid[ch, row, (ax + tx) % width] -= delta * filters[ga, ch, ty, tx]
        history[k] = _residual_norm(resid)
    return idx[:k].copy(), coef[:k].copy(), history[: k + 1].copy(), reason
