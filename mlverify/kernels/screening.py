r"""Numba CPU kernels of the screened proximal-gradient step (safe screening across iterations).

The step of one layer of ML-ISTA (and of ISTA) stores, for every code entry :math:`(f, p)`,

.. math::

    \Gamma^+[f, p] = T_\beta\big(B[f, p] + s\,q[f, p]\big), \qquad
    q[f, p] = (D^TR)[f, p] = \sum_{i, \tau} A[f, i, \tau]\,R[i, p + \tau],

with the base :math:`B` (the iterate), the scale :math:`s = -\eta` and the residual
:math:`R = D\Gamma - V`. From one iteration to the next, Cauchy–Schwarz on the window of ``p``
bounds how far each correlation can move:

.. math::

    |s\,q_{k+1}[f, p] - s\,q_k[f, p]| \le |s|\,\|a_f\|_2\,\|(R_{k+1} - R_k)_{p}\|_2,

where :math:`(\cdot)_p` is the ``c × n1 × n2`` window read by position ``p``. So the kernels keep,
per entry, the correlation :math:`q` last computed and, per position, a *drift* :math:`d_p`:
the rounding bound of that computation, :math:`\gamma_K\|R_p\|_2` (any summation order,
:math:`K = c\,n_1n_2`, :math:`\gamma_K = Ku/(1 - Ku)`; Higham, *Accuracy and Stability of
Numerical Algorithms*, §3.1), plus the window changes since. Then :math:`s\,q_{now}` lies in
:math:`s\,q \pm |s|\,\|a_f\|_2\,d_p` in exact arithmetic; when the threshold maps all of
:math:`B +` that interval to zero (:math:`B + s\,q + |s|\|a_f\|d_p \le \beta` for the ReLU,
also :math:`\ge -\beta` for soft and hard thresholds), the entry's output is exactly zero and
its correlation need not be computed. The positions where some atom cannot be screened are
*active*: their correlations for all atoms are computed by one matrix product of their windows
(:func:`gather_windows`, then BLAS ``gemm``), which resets their values and drift. Every sum
of the test is carried in float64 with an outward margin for its rounding, so a screened entry
is zero in exact arithmetic on the computed arrays, not merely up to rounding.

Layouts: codes ``(B, m, H, W)``, residuals ``(B, c, H, W)`` (1-D is ``H = n1 = 1``); windows
are gathered from a channels-last, periodically padded copy of the residual,
``(B, H + n1 - 1, (W + n2 - 1)·c)``, in which each window row is contiguous.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._scalar import KIND_RELU, shrink

#: Relative inflation of the float64 window norms (sums of at most ~10⁶ float64 terms, each
#: rounding by at most 2⁻⁵³ relative: far below 1e-9).
NORM_INFLATION = 1.0 + 1e-9


@njit(parallel=True, cache=True)
def residual_windows(synthesized, target, previous, padded, change, energy):  # pragma: no cover
    """The residual :math:`R = D\\Gamma - V` and the window norms of the step.

    ``previous (B, c, H, W)`` holds the last residual (overwritten with this one); ``padded
    (B, H + n1 - 1, (W + n2 - 1)·c)`` receives the channels-last periodic copy of ``R``, whose
    shape fixes the window ``n1 × n2``. ``change`` and ``energy`` ``(B, H, W)`` (float64)
    receive :math:`\\|(R - R_{prev})_p\\|_2` and :math:`\\|R_p\\|_2` for every position ``p``
    (the window starting at ``p``, periodic), inflated by :data:`NORM_INFLATION`. Returns the
    number of non-zero entries of ``target``.
    """
    batch, c, height, width = synthesized.shape
    n1 = padded.shape[1] - height + 1
    n2 = padded.shape[2] // c - width + 1
    nonzero = 0
    for task in prange(batch * height):
        b = task // height
        y = task % height
        moved = np.zeros(width + n2 - 1)
        total = np.zeros(width + n2 - 1)
        for i in range(c):
            new_row = synthesized[b, i, y]
            old_row = previous[b, i, y]
            target_row = target[b, i, y]
            for x in range(width):
                r = new_row[x] - target_row[x]
                nonzero += target_row[x] != 0
                d = np.float64(r) - np.float64(old_row[x])
                moved[x] += d * d
                total[x] += np.float64(r) * np.float64(r)
                old_row[x] = r
        # the row sums over the window's n2 columns (periodic)
        for x in range(n2 - 1):
            moved[width + x] = moved[x]
            total[width + x] = total[x]
        out_moved = change[b, y]
        out_total = energy[b, y]
        out_moved[:] = moved[:width]
        out_total[:] = total[:width]
        for tx in range(1, n2):
            for x in range(width):
                out_moved[x] += moved[x + tx]
                out_total[x] += total[x + tx]
    for task in prange(batch * (height + n1 - 1)):
        b = task // (height + n1 - 1)
        y = task % (height + n1 - 1) % height
        row = padded[b, task % (height + n1 - 1)]
        for i in range(c):
            source = previous[b, i, y]
            for x in range(width):
                row[x * c + i] = source[x]
            for x in range(n2 - 1):
                row[(width + x) * c + i] = source[x]
    # the column sums over the window's n1 rows (periodic), then the norms
    for b in range(batch):
        for sums in (change[b], energy[b]):
            rows = sums.copy()
            for y in prange(height):
                line = sums[y]
                for ty in range(1, n1):
                    source = rows[(y + ty) % height]
                    for x in range(width):
                        line[x] += source[x]
                for x in range(width):
                    line[x] = np.sqrt(line[x]) * NORM_INFLATION
    return nonzero


@njit(parallel=True, cache=True)
def screen(base, values, drift, change, energy, scale, spread, beta, kind, out,
           active):  # pragma: no cover - compiled
    """Screen every entry and finish the inactive positions.

    ``values`` hold the correlations :math:`q` last computed (NaN: none yet) and ``drift
    (B, H, W)`` the positions' drift (module docstring), to which this call's window ``change``
    is added first (rounded up). With ``scale`` :math:`s` and ``spread[f]`` :math:`|s|\\|a_f\\|`
    (rounded up), entry ``(b, f, y, x)`` is screened when the threshold ``kind`` (per-atom
    ``beta``) maps all of ``base + s·q ± spread[f]·drift`` to zero; a non-finite value never
    screens. ``active[b, y, x]`` is set where some atom is not screened, unless ``energy`` is
    zero: there the residual window is zero, :math:`q = 0` exactly, ``out = T(base)`` and the
    position's values and drift are reset to zero. At the other inactive positions ``out`` is
    zero. Returns the numbers of non-finite ``base`` values at the zero-window positions and of
    non-zero ``base`` values.
    """
    batch, atoms, height, width = base.shape
    relu = kind == KIND_RELU
    bad = 0
    nonzero = 0
    for task in prange(batch * height):
        b = task // height
        y = task % height
        act = active[b, y]
        act[:] = False
        moves = drift[b, y]
        steps = change[b, y]
        for x in range(width):
            moves[x] = (moves[x] + steps[x]) * (1.0 + 2.0 ** -50)
        for f in range(atoms):
            limit = np.float64(beta[f % beta.shape[0]])
            reach = spread[f]
            kept = values[b, f, y]
            bases = base[b, f, y]
            for x in range(width):
                v = np.float64(bases[x])
                nonzero += v != 0.0
                centre = scale * np.float64(kept[x])
                w = reach * moves[x]
                # four float64 roundings (s·q, ±w, base +, + margin), each at most 2^-53 of
                # |v| + |s·q| + w: a margin of twice their sum
                margin = (abs(v) + abs(centre) + w) * 2.0 ** -50
                screened = v + (centre + w) + margin <= limit
                if not relu:
                    screened &= v + (centre - w) - margin >= -limit
                act[x] |= not screened
        zero = energy[b, y]
        for x in range(width):
            act[x] &= zero[x] != 0.0
        for f in range(atoms):  # store_active overwrites the active positions
            row = out[b, f, y]
            for x in range(width):
                row[x] = 0.0
        for x in range(width):
            if zero[x] == 0.0:
                moves[x] = 0.0
                for f in range(atoms):
                    v = base[b, f, y, x]
                    bad += not np.isfinite(v)
                    out[b, f, y, x] = shrink(v, beta[f % beta.shape[0]], kind)
                    values[b, f, y, x] = 0.0
    return bad, nonzero


@njit(nogil=True, cache=True)
def gather_windows(padded, positions, height, width, channels, windows):  # pragma: no cover
    """``windows[j]`` = the window of ``positions[j] = (b·H + y)·W + x`` in ``padded``, in the
    order ``(t_y, t_x, i)``: ``n1`` runs of ``n2·c`` contiguous padded entries (serial, without
    the GIL: one worker's share)."""
    n1 = padded.shape[1] - height + 1
    length = windows.shape[1] // n1
    for j in range(positions.shape[0]):
        p = positions[j]
        b = p // (height * width)
        y = (p // width) % height
        start = (p % width) * channels
        for ty in range(n1):
            windows[j, ty * length:(ty + 1) * length] = padded[b, y + ty, start:start + length]


@njit(nogil=True, cache=True)
def row_segments(positions, width):  # pragma: no cover - compiled
    """Starts of the runs of sorted ``positions`` that lie in one row (``p // width``), and the
    end: ``positions[starts[k]:starts[k + 1]]`` is the ``k``-th run."""
    n = positions.shape[0]
    starts = np.empty(n + 1, dtype=np.int64)
    count = 0
    for j in range(n):
        if j == 0 or positions[j] // width != positions[j - 1] // width:
            starts[count] = j
            count += 1
    starts[count] = n
    return starts[:count + 1]


@njit(nogil=True, cache=True)
def store_active(products, positions, columns, starts, base, scale, beta, kind, out,
                 values):  # pragma: no cover - compiled
    """Finish the active positions from their correlations ``products[j, f] = q[f, p_j]``:
    ``out = T_β(base + scale·q)`` as the direct kernels store it (in the dtype), ``values = q``
    (the caller resets the positions' drift). ``columns`` are the positions' ``x``, ``starts``
    their row runs (the positions sorted, :func:`row_segments`); it goes run by run, atom by
    atom, each writing along one row (serial, without the GIL: one worker's share). Returns the
    count of non-finite ``base + scale·q``.
    """
    atoms, height, width = base.shape[1:]
    runs = starts.shape[0] - 1
    bad = 0
    for task in range(runs * atoms):
        k = task // atoms
        f = task % atoms
        row_index = positions[starts[k]] // width
        b = row_index // height
        y = row_index % height
        limit = beta[f % beta.shape[0]]
        kept = values[b, f, y]
        bases = base[b, f, y]
        row = out[b, f, y]
        for j in range(starts[k], starts[k + 1]):
            x = columns[j]
            q = products[j, f]
            v = scale * q
            v += bases[x]
            bad += not np.isfinite(v)
            row[x] = shrink(v, limit, kind)
            kept[x] = q
    return bad
