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

where :math:`(\cdot)_p` is the ``c × n1 × n2`` window read by position ``p``. Kept per entry, an
interval ``[lower, upper]`` that holds :math:`s\,q` in exact arithmetic therefore stays valid
after widening by that amount; when :math:`B + \text{upper} \le \beta` (ReLU) or
:math:`|B + s\,q| \le \beta` on the whole interval (soft, hard), the entry's output is exactly
zero and its correlation need not be computed. The positions where some atom cannot be
screened are *active*: their correlations for all atoms are computed by one matrix product of
their windows (:func:`gather_windows`, then BLAS ``gemm``), and their intervals are reset to the
computed value plus its rounding bound :math:`|s|\gamma_K\|a_f\|_2\|R_p\|_2` (any summation
order, :math:`K = c\,n_1n_2`, :math:`\gamma_K = Ku/(1 - Ku)`; Higham, *Accuracy and Stability
of Numerical Algorithms*, §3.1). Every bound is carried in float64 and rounded outwards, so a
screened entry is zero in exact arithmetic on the computed arrays, not merely up to rounding.

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


#: Absolute outward margin of a stored bound (above twice the smallest float32 subnormal).
TINY = 1e-44


@njit(inline="always", cache=True)
def _outward(value, relative):  # pragma: no cover - compiled
    """The outward margin ``|value|·relative + TINY`` of a bound ``value`` computed in float64:
    ``value ± margin`` stored in the dtype whose ``relative`` it is (2⁻²² for float32, 2⁻⁵¹
    for float64) still bounds ``value`` and covers its own rounding."""
    return abs(value) * relative + TINY


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
def screen(base, upper, lower, drift, change, energy, widen, beta, kind, out,
           active):  # pragma: no cover - compiled
    """Screen every entry and finish the inactive positions.

    The interval of :math:`s\\,q` at entry ``(b, f, y, x)`` is ``[lower - w, upper + w]``,
    ``w = widen[f]·drift[b, y, x]``: ``upper`` and ``lower`` bound it when the position was
    last computed, ``drift`` sums the window changes since then (this call's ``change`` is added
    first, rounded up), and ``widen[f] = |s|·‖a_f‖`` (rounded up). The entry is screened when
    the threshold ``kind`` (per-atom ``beta``) maps all of ``base +`` interval to zero
    (``lower`` is not read for the ReLU); a non-finite value never screens. ``active[b, y, x]``
    is set where some atom is not screened, unless ``energy`` is zero: there the residual window
    is zero, :math:`q = 0` exactly, ``out = T(base)`` and the position's intervals and drift
    are reset to zero. At the other inactive positions ``out`` is zero. Returns the numbers of
    non-finite ``base`` values at the zero-window positions and of non-zero ``base`` values.
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
            spread = widen[f]
            ups = upper[b, f, y]
            lows = lower[b, f, y]
            bases = base[b, f, y]
            for x in range(width):
                # float64 sums: each rounds by at most 2^-53 of |base| + |interval end|
                w = spread * moves[x]
                v = np.float64(bases[x])
                nonzero += v != 0.0
                edge = np.float64(ups[x]) + w
                screened = v + edge + (abs(v) + abs(edge)) * 2.0 ** -51 <= limit
                if not relu:
                    edge = np.float64(lows[x]) - w
                    screened &= v + edge - (abs(v) + abs(edge)) * 2.0 ** -51 >= -limit
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
                    upper[b, f, y, x] = 0.0
                    lower[b, f, y, x] = 0.0
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
def store_active(products, positions, columns, starts, base, energy, spread, rounding, scale,
                 beta, kind, relative, out, upper, lower):  # pragma: no cover - compiled
    """Finish the active positions from their correlations ``products[j, f] = q[f, p_j]``.

    ``out = T_β(base + scale·q)`` as the direct kernels store it (in the dtype), and the interval
    of :math:`s\\,q` becomes ``s·q ± (rounding·spread[f]·energy[p] + |s·q|·2⁻⁵²)`` (``rounding
    = γ_K``, ``spread[f] = |s|·‖a_f‖``; the last term covers the float64 product), stored
    outwards (``relative``: see :func:`_outward`; ``lower`` only for soft and hard
    thresholds). ``columns`` are the positions' ``x``, ``starts`` their row runs (the positions
    sorted, :func:`row_segments`); tasks are (run, atom), each writing along one row. Returns
    ``(bad, nonzero)`` counts of non-finite ``base + scale·q`` and non-zero outputs.
    """
    atoms, height, width = base.shape[1:]
    runs = starts.shape[0] - 1
    bad = 0
    nonzero = 0
    for task in range(runs * atoms):
        k = task // atoms
        f = task % atoms
        row_index = positions[starts[k]] // width
        b = row_index // height
        y = row_index % height
        limit = beta[f % beta.shape[0]]
        ups = upper[b, f, y]
        lows = lower[b, f, y]
        bases = base[b, f, y]
        norms = energy[b, y]
        row = out[b, f, y]
        for j in range(starts[k], starts[k + 1]):
            x = columns[j]
            q = products[j, f]
            v = scale * q
            v += bases[x]
            bad += not np.isfinite(v)
            stored = shrink(v, limit, kind)
            row[x] = stored
            nonzero += stored != 0
            centre = np.float64(scale) * np.float64(q)
            error = rounding * spread[f] * norms[x] + abs(centre) * 2.0 ** -52
            edge = centre + error
            ups[x] = edge + _outward(edge, relative)
            if kind != KIND_RELU:
                edge = centre - error
                lows[x] = edge - _outward(edge, relative)
    return bad, nonzero
