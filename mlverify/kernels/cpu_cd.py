r"""Numba CPU kernels of 1-D convolutional basis pursuit by locally greedy coordinate descent.

Layout (canonical 1-D): signals and residuals ``(B, c, N)``, codes and the auxiliary variable
:math:`\beta` ``(B, m, N)``, filters ``(m, c, n)``. The codes are free on the positions
``[0, n_valid)`` and fixed at 0 beyond: ``n_valid = N`` with ``periodic=True`` is the periodic
model of :class:`mlverify.ConvDictionary` (all updates wrap modulo ``N``, which needs
``N >= 2n - 1``); ``n_valid = N - n + 1`` with ``periodic=False`` is the non-periodic ("valid")
model of alphacsc, where :math:`D\Gamma` is the full linear convolution and nothing wraps.

The state of every signal is (Moreau, Oudre, Vayatis, "DICOD: distributed convolutional
coordinate descent", ICML 2018; Kavukcuoglu et al. 2010 for greedy CD)

.. math::

    r = y - D\Gamma, \qquad \beta_k[t] = (D^Tr)_k[t] + \|d_k\|^2\,\Gamma_k[t],

so that the exact minimiser of the objective in the coordinate :math:`(k, t)` alone is
:math:`\Gamma^\star_k[t] = S_\lambda(\beta_k[t]) / \|d_k\|^2` (:math:`S^+_\lambda` when
non-negative). A *sweep* visits the segments ``[s, s + seg_len)`` of ``[0, n_valid)`` in order;
in each it picks the coordinate with the largest step
:math:`|\Gamma^\star_k[t] - \Gamma_k[t]|\,\|d_k\|` (the change of the reconstruction; the
plain step for unit atoms, as in alphacsc; first in (atom, position) order on ties), sets it to
:math:`\Gamma^\star_k[t]` and updates :math:`\beta` locally through the atoms'
cross-correlations,

.. math::

    \beta_j[q] \mathrel{-}= \Delta\,\langle d_{j,q}, d_{k,t}\rangle
    \quad (|q - t| \le n - 1,\ (j, q) \ne (k, t)),

(``cross[k, j, q - t + n - 1]``, :func:`cross_correlations`) and the residual
:math:`r \mathrel{-}= \Delta\, d_{k,t}`.

**Activity** (alphacsc's LGCD): a segment whose best step is at most the signal's threshold
``eps`` is marked inactive and skipped until an update changes :math:`\beta` inside it; a sweep
that changes nothing (every segment inactive) multiplies ``eps`` by :data:`EPS_DECAY` and
reactivates all segments, so repeated sweeps keep converging. Every signal of the batch is an
independent problem handled by one ``prange`` task that writes only its own rows (no races).

Every kernel has a NumPy oracle (``*_reference``, same arguments) that runs the same steps.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._scalar import relu, soft

#: Factor applied to a signal's activity threshold ``eps`` after a sweep without any update.
EPS_DECAY = 0.1


def cross_correlations(filters: np.ndarray) -> np.ndarray:
    r"""``cross[k, j, s + n - 1]`` = :math:`\langle d_{j,q}, d_{k,q-s}\rangle`, float64.

    With :math:`d_{k,t}` atom ``k`` placed at ``t``: :math:`\langle d_{j,q}, d_{k,t}\rangle =
    \sum_{c,\tau} A[j,c,\tau]\, A[k,c,\tau + q - t]` for :math:`|q - t| \le n - 1` (0 beyond).
    Shape ``(m, m, 2n - 1)``; row ``cross[k, j]`` is contiguous in the shift, which is what the
    :math:`\beta` update after a change of coordinate ``(k, t)`` reads.
    """
    a = np.asarray(filters, dtype=np.float64)
    m, _, n = a.shape
    cross = np.zeros((m, m, 2 * n - 1))
    for shift in range(-(n - 1), n):  # shift = q - t
        lo, hi = max(0, -shift), min(n, n - shift)
        cross[:, :, shift + n - 1] = np.einsum("jcu,kcu->kj", a[:, :, lo:hi],
                                               a[:, :, lo + shift:hi + shift])
    return cross


@njit(inline="always", cache=True)
def _shrink(v, lam, nonneg):  # pragma: no cover - compiled
    return relu(v, lam) if nonneg else soft(v, lam)


@njit(inline="always", cache=True)
def _update_beta(beta, cross_k, delta, q0, q1, first):  # pragma: no cover - compiled
    """``beta[j, q0:q1] -= delta * cross_k[j, first:first + q1 - q0]`` for every atom ``j``.

    Loops over contiguous 1-D views: LLVM vectorises them (6x faster than 2-D indexing here).
    """
    for j in range(beta.shape[0]):
        target = beta[j, q0:q1]
        row = cross_k[j, first:first + q1 - q0]
        for i in range(target.shape[0]):
            target[i] -= delta * row[i]


@njit(inline="always", cache=True)
def _wake_range(active, q0, q1, seg_len):  # pragma: no cover - compiled
    """Mark active the segments that hold a position of ``[q0, q1)`` (non-empty)."""
    for i in range(q0 // seg_len, (q1 - 1) // seg_len + 1):
        active[i] = 1


@njit(inline="always", cache=True)
def _wake(active, lo, hi, seg_len, periodic, n_valid):  # pragma: no cover - compiled
    """Mark active the segments that hold a position of the window ``[lo, hi)`` (wrapped when
    periodic, clipped to ``[0, n_valid)`` otherwise)."""
    _wake_range(active, max(lo, 0), min(hi, n_valid), seg_len)
    if periodic and lo < 0:
        _wake_range(active, lo + n_valid, n_valid, seg_len)
    if periodic and hi > n_valid:
        _wake_range(active, 0, hi - n_valid, seg_len)


@njit(cache=True)
def _sweeps_one(beta, codes, resid, filters, cross, inv_diag, norms, lam, nonneg, n_valid,
                periodic, seg_len, n_sweeps, active, eps):  # pragma: no cover - compiled
    """``n_sweeps`` sweeps on one signal (2-D views, ``eps`` a 1-element view); returns the
    number of coordinate updates."""
    m, width = beta.shape
    channels, n = filters.shape[1], filters.shape[2]
    updates = 0
    for _ in range(n_sweeps):
        moved = False
        for i_seg in range(active.shape[0]):
            if not active[i_seg]:
                continue
            s0 = i_seg * seg_len
            s1 = min(s0 + seg_len, n_valid)
            best = 0.0
            bk, bt = -1, -1
            bz = beta[0, 0]
            for k in range(m):
                scale = inv_diag[k]
                row = abs(lam) * 0.0
                rt = -1
                rz = row
                for t in range(s0, s1):
                    target = _shrink(beta[k, t], lam, nonneg) * scale
                    step = abs(target - codes[k, t])
                    if step > row:
                        row, rt, rz = step, t, target
                weighted = np.float64(row) * norms[k]
                if weighted > best:
                    best, bk, bt, bz = weighted, k, rt, rz
            if best <= eps[0]:
                active[i_seg] = 0
                continue
            delta = bz - codes[bk, bt]
            codes[bk, bt] = bz
            updates += 1
            moved = True
            kept = beta[bk, bt]
            # the window q in [lo, hi) around bt reads cross[bk, :, q - lo]
            lo, hi = bt - n + 1, bt + n
            if periodic:  # at most one piece wraps (width >= 2n - 1)
                _update_beta(beta, cross[bk], delta, max(lo, 0), min(hi, width), max(lo, 0) - lo)
                if lo < 0:
                    _update_beta(beta, cross[bk], delta, lo + width, width, 0)
                if hi > width:
                    _update_beta(beta, cross[bk], delta, 0, hi - width, width - lo)
            else:
                _update_beta(beta, cross[bk], delta, max(lo, 0), min(hi, n_valid),
                             max(lo, 0) - lo)
            beta[bk, bt] = kept
            _wake(active, lo, hi, seg_len, periodic, n_valid)
            for c in range(channels):
                atom = filters[bk, c]
                if bt + n <= width:
                    target = resid[c, bt:bt + n]
                    for tau in range(n):
                        target[tau] -= delta * atom[tau]
                else:  # periodic wrap-around
                    for tau in range(n):
                        resid[c, (bt + tau) % width] -= delta * atom[tau]
        if not moved:  # every segment is eps-optimal: refine eps and wake them all
            eps[0] *= EPS_DECAY
            active[:] = 1
    return updates


@njit(parallel=True, cache=True)
def lgcd_sweeps(beta, codes, resid, filters, cross, inv_diag, norms, lam, nonneg, n_valid,
                periodic, seg_len, n_sweeps, active, eps, updates):  # pragma: no cover - compiled
    """``n_sweeps`` locally greedy sweeps on every signal of the batch, in place.

    ``beta``, ``codes`` ``(B, m, N)``, ``resid`` ``(B, c, N)``, ``filters`` ``(m, c, n)``,
    ``cross`` ``(m, m, 2n - 1)`` (:func:`cross_correlations`), ``inv_diag`` ``(m,)``
    (:math:`1/\\|d_k\\|^2`) and ``lam`` in the working dtype; ``norms`` ``(m,)`` float64 atom
    norms; ``active`` ``(B, ceil(n_valid / seg_len))`` uint8 segment flags and ``eps`` ``(B,)``
    float64 thresholds (both updated); ``updates[b]`` (int64) receives the number of coordinate
    changes made on signal ``b``.
    """
    for b in prange(beta.shape[0]):
        updates[b] = _sweeps_one(beta[b], codes[b], resid[b], filters, cross, inv_diag, norms,
                                 lam, nonneg, n_valid, periodic, seg_len, n_sweeps, active[b],
                                 eps[b:b + 1])


@njit(parallel=True, cache=True)
def gap_terms(beta, codes, resid, y, diag, n_valid, nonneg, out):  # pragma: no cover - compiled
    r"""Per signal, in float64: ``out[b] = (‖r‖², ⟨y, r⟩, ‖Γ‖₁, max corr)``.

    ``corr`` is :math:`D^Tr = \beta - \|d_k\|^2\Gamma` on the free positions ``[0, n_valid)``
    (its maximum when non-negative, else the maximum of its absolute value): the ingredients of
    the duality gap of :mod:`mlverify.pursuits._certificates`, from the maintained state (so an
    *estimate*: it inherits the round-off accumulated in ``beta`` and ``resid``).
    """
    for b in prange(beta.shape[0]):
        rr = 0.0
        yr = 0.0
        for c in range(resid.shape[1]):
            for t in range(resid.shape[2]):
                r = np.float64(resid[b, c, t])
                rr += r * r
                yr += np.float64(y[b, c, t]) * r
        l1 = 0.0
        corr = -np.inf if nonneg else 0.0
        for k in range(beta.shape[1]):
            for t in range(n_valid):
                z = np.float64(codes[b, k, t])
                g = np.float64(beta[b, k, t]) - np.float64(diag[k]) * z
                l1 += abs(z)
                corr = max(corr, g if nonneg else abs(g))
        out[b, 0] = rr
        out[b, 1] = yr
        out[b, 2] = l1
        out[b, 3] = corr


def lgcd_sweeps_reference(beta, codes, resid, filters, cross, inv_diag, norms, lam, nonneg,
                          n_valid, periodic, seg_len, n_sweeps, active, eps, updates):
    """NumPy oracle of :func:`lgcd_sweeps` (same arguments, same steps and tie-breaking)."""
    width = beta.shape[2]
    n = filters.shape[2]
    zero = beta.dtype.type(0)
    for b in range(beta.shape[0]):
        count = 0
        for _ in range(n_sweeps):
            moved = False
            for i_seg in range(active.shape[1]):
                if not active[b, i_seg]:
                    continue
                s0 = i_seg * seg_len
                s1 = min(s0 + seg_len, n_valid)
                window = beta[b, :, s0:s1]
                if nonneg:
                    target = np.maximum(window - lam, zero)
                else:
                    target = np.sign(window) * np.maximum(np.abs(window) - lam, zero)
                target *= inv_diag[:, None]
                step = np.abs(target - codes[b, :, s0:s1])
                rows = np.argmax(step, axis=1)
                weighted = step[np.arange(step.shape[0]), rows].astype(np.float64) * norms
                bk = int(np.argmax(weighted))
                if weighted[bk] <= eps[b]:
                    active[b, i_seg] = 0
                    continue
                bt = s0 + rows[bk]
                delta = target[bk, rows[bk]] - codes[b, bk, bt]
                codes[b, bk, bt] = target[bk, rows[bk]]
                count += 1
                moved = True
                kept = beta[b, bk, bt]
                q = np.arange(bt - n + 1, bt + n)
                weights = cross[bk]
                if not periodic:
                    keep = (q >= 0) & (q < n_valid)
                    q, weights = q[keep], weights[:, keep]
                beta[b][:, q % width] -= delta * weights
                beta[b, bk, bt] = kept
                active[b, np.unique((q % n_valid) // seg_len)] = 1
                resid[b][:, (bt + np.arange(n)) % width] -= delta * filters[bk]
            if not moved:
                eps[b] *= EPS_DECAY
                active[b] = 1
        updates[b] = count


def gap_terms_reference(beta, codes, resid, y, diag, n_valid, nonneg, out):
    """NumPy oracle of :func:`gap_terms` (same arguments)."""
    r = resid.astype(np.float64)
    z = codes[:, :, :n_valid].astype(np.float64)
    g = beta[:, :, :n_valid].astype(np.float64) - diag.astype(np.float64)[:, None] * z
    flat = g.reshape(g.shape[0], -1)
    out[:, 0] = np.einsum("bct,bct->b", r, r)
    out[:, 1] = np.einsum("bct,bct->b", y.astype(np.float64), r)
    out[:, 2] = np.abs(z).sum(axis=(1, 2))
    out[:, 3] = flat.max(axis=1) if nonneg else np.abs(flat).max(axis=1)
