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
per position, a cumulative *drift* :math:`D_p`: the sum of its window's changes since the
intervals were started, and per position and atom a *level* :math:`l_{p,f}`: the drift at which
the entry was last computed, minus the rounding bound of that value, :math:`\gamma_K\|R_p\|_2`
(any summation order, :math:`K = c\,n_1n_2`, :math:`\gamma_K = Ku/(1 - Ku)`; Higham, *Accuracy
and Stability of Numerical Algorithms*, §3.1), plus the entry's *allowance*
:math:`(\beta_f - c_f)/(|s|\,\|a_f\|)`, with :math:`c_f = s\,q` for the ReLU and
:math:`|s\,q|` for soft and hard thresholds. Then :math:`s\,q_{now}` lies within
:math:`|s|\,\|a_f\|_2\,(D_p - D_p^{then} + \gamma_K\|R_p\|)` of the value :math:`s\,q` computed,
in exact arithmetic, and where the base is zero the threshold maps all of that interval to zero
while :math:`D_p \le l_{p,f}`: the entry is zero without being computed. A position whose base
is zero is screened whole (its outputs are exactly zero) while :math:`D_p \le h_p`, its
*headroom* :math:`h_p = \min_f l_{p,f}`. The other positions are *active*: at each, the atoms
whose base is non-zero or whose level the drift exceeds are *needed*, and computed; the others
keep their levels, which stay valid (each is a statement about the value computed then). The
needed atoms are computed either by one matrix product of all the active windows and atoms
(:func:`gather_windows`, then BLAS ``gemm``) or one dot product each
(:func:`mlverify.kernels._vector.dot_runs`), whichever the caller picks. Every sum of the test
is carried in float64 with an outward margin for its rounding, so a screened entry is zero in
exact arithmetic on the computed arrays, not merely up to rounding.

Layouts: codes ``(B, m, H, W)``, read compressed pixel by pixel
(:func:`mlverify.kernels.cpu_sparse.pixel_nonzeros`: only their non-zeros are touched), residuals
``(B, c, H, W)`` (1-D is ``H = n1 = 1``); windows are gathered from a channels-last, periodically
padded copy of the residual, ``(B, H + n1 - 1, (W + n2 - 1)·c)``, in which each window row is
contiguous. The store collects the non-zeros of the new codes in the same compressed layout, so
an iterating caller never compresses them again.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.cpython.unsafe.numbers import trailing_zeros

from ._memory import copy_run
from ._scalar import KIND_HARD, KIND_RELU, KIND_SOFT, shrink
from ._vector import dot_block

#: Relative inflation of the float64 window norms (sums of at most ~10⁶ float64 terms, each
#: rounding by at most 2⁻⁵³ relative: far below 1e-9).
NORM_INFLATION = 1.0 + 1e-9
#: Relative outward margin of the float64 tests: 2⁻⁵⁰ covers up to eight roundings of at most
#: 2⁻⁵³ relative each.
MARGIN = 2.0**-50


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
    sums = np.empty((2, batch, height, width))  # squares summed over the window's n2 columns
    nonzero = 0
    for task in prange(batch * height):
        b = task // height
        y = task % height
        moved = np.zeros(width + n2 - 1)
        total = np.zeros(width + n2 - 1)
        line = padded[b, y]
        for i in range(c):  # two loops over few arrays each: both vectorise
            new_row = synthesized[b, i, y]
            old_row = previous[b, i, y]
            target_row = target[b, i, y]
            for x in range(width):
                r = new_row[x] - target_row[x]
                nonzero += target_row[x] != 0
                d = np.float64(r) - np.float64(old_row[x])
                moved[x] += d * d
                old_row[x] = r
            for x in range(width):
                total[x] += np.float64(old_row[x]) * np.float64(old_row[x])
        for i in range(c):  # channels last, periodic columns
            source = previous[b, i, y]
            for x in range(width):
                line[x * c + i] = source[x]
            for x in range(n2 - 1):
                line[(width + x) * c + i] = source[x]
        if y < n1 - 1:  # periodic rows
            padded[b, height + y] = line
        for x in range(n2 - 1):
            moved[width + x] = moved[x]
            total[width + x] = total[x]
        out_moved = sums[0, b, y]
        out_total = sums[1, b, y]
        out_moved[:] = moved[:width]
        out_total[:] = total[:width]
        for tx in range(1, n2):
            for x in range(width):
                out_moved[x] += moved[x + tx]
                out_total[x] += total[x + tx]
    # the column sums over the window's n1 rows (periodic), then the norms
    for task in prange(batch * height):
        b = task // height
        y = task % height
        for k in range(2):
            norms = change[b, y] if k == 0 else energy[b, y]
            norms[:] = sums[k, b, y]
            for ty in range(1, n1):
                source = sums[k, b, (y + ty) % height]
                for x in range(width):
                    norms[x] += source[x]
            for x in range(width):
                norms[x] = np.sqrt(norms[x]) * NORM_INFLATION
    return nonzero


def headroom_lines(scale, beta: np.ndarray, spread: np.ndarray, relu: bool) -> np.ndarray:
    """Per atom ``f``, the float64 line ``(A_f, B_f, M·|A_f|)`` of :func:`allowance`:
    :math:`A_f = \\beta_f/\\mathrm{spread}_f` and :math:`B_f = s'/\\mathrm{spread}_f` with
    :math:`s' = s` (ReLU) or :math:`|s|`, so that the allowance of a correlation ``q`` is the
    line :math:`A_f - B_f q'` (:math:`q' = q` or :math:`|q|`), evaluated without a division. A
    zero ``spread`` (a zero atom, whose correlations are exactly zero) gives the line
    :math:`\\pm\\infty` of :math:`\\beta_f \\ge 0` or :math:`< 0`."""
    lines = np.zeros((3, spread.shape[0]))
    factor = float(scale) if relu else abs(float(scale))
    for f, width in enumerate(spread):
        limit = float(beta[f % beta.shape[0]])
        if width == 0.0:
            lines[0, f] = np.inf if limit >= 0.0 else -np.inf
        else:
            lines[0, f] = limit / width
            lines[1, f] = factor / width
            lines[2, f] = abs(lines[0, f]) * MARGIN
    return lines


@njit(inline="always", cache=True)
def allowance(q, lines, f, relu):  # pragma: no cover - compiled
    """The drift up to which the entry ``f`` of correlation ``q`` stays screened (zero base):
    :math:`(\\beta_f - c)/\\mathrm{spread}_f` rounded down, :math:`c = s\\,q` (ReLU) or
    :math:`|s\\,q|`, from the line of :func:`headroom_lines`.

    With :math:`t = B_f q'`, the value :math:`A_f - t` carries at most five float64 roundings
    of at most :math:`2^{-53}(|A_f| + |t|)` each (the line's two quotients, the product, and the
    differences here); subtracting :data:`MARGIN` :math:`\\cdot(|A_f| + |t|)` (eight of them)
    rounds it down. A non-finite ``q`` gives NaN or :math:`-\\infty`; its ``v = base + s·q`` is
    then not finite and the caller discards the whole call (:func:`store_active`)."""
    t = lines[1, f] * (np.float64(q) if relu else abs(np.float64(q)))
    return ((lines[0, f] - t) - lines[2, f]) - abs(t) * MARGIN


#: Allowances above this are kept at it: a level stays finite (an infinite allowance, of a
#: zero atom, would turn the rounding margin of :func:`level` into ``inf - inf``).
ALLOWANCE_CEILING = 1e300


@njit(inline="always", cache=True)
def level(drift, rounding, room):  # pragma: no cover - compiled
    """The cumulative drift up to which an entry stays screened: ``(drift - rounding) + room``
    rounded down, for an entry computed when the position's cumulative drift was ``drift``,
    with the rounding bound ``rounding`` (:math:`\\gamma_K\\|R_p\\|`) and the allowance
    ``room`` (:func:`allowance`, kept below :data:`ALLOWANCE_CEILING`). The two sums round by
    at most :math:`2^{-53}` of ``drift + rounding + |room|`` each and the last difference by
    as much; :data:`MARGIN` times that (eight roundings) is subtracted. ``drift`` and
    ``rounding`` are non-negative."""
    room = min(room, ALLOWANCE_CEILING)
    return ((drift - rounding) + room) - ((drift + rounding) + abs(room)) * MARGIN


@njit(parallel=True, cache=True)
def screen(code_offsets, code_atoms, code_values, headroom, drift, change, energy, lines, beta,
           kind, out, active):  # pragma: no cover - compiled
    """Screen every position and finish the inactive ones.

    The codes (the base of the step) come compressed pixel by pixel, ``(code_offsets,
    code_atoms, code_values)`` as :func:`mlverify.kernels.cpu_sparse.pixel_nonzeros` gives them:
    a position is occupied when it holds a non-zero (NaN too). ``drift (B, H, W)`` holds the
    positions' cumulative drifts (module docstring), to which this call's window ``change`` is
    added first (rounded up), and ``headroom (B, H, W)`` the least level over their atoms
    (``-inf``: none known). A position is screened whole when it is not occupied and its drift
    is at most its headroom: then every atom's interval thresholds (``kind``, per-atom
    ``beta``) to zero. Otherwise ``active[b, y, x]`` is set, unless the position's residual
    window is zero (``energy`` 0): there :math:`q = 0` exactly, ``out = T(base)`` and the
    headroom is the :func:`level` of the least allowance of :math:`q = 0` (the atoms' levels
    are left as they are: lower, still valid). ``out`` is zero at the other positions, the
    active ones included (:func:`store_active` writes only their non-zeros). Returns the
    number of non-finite base values at the zero-window positions, :math:`\\sum (out - base)^2`
    over the inactive positions (float64; the base is zero there but at the zero windows) and
    the number of non-zero outputs at the zero windows.
    """
    batch, atoms, height, width = out.shape
    relu = kind == KIND_RELU
    bad = 0
    squares = 0.0
    kept = 0
    for task in prange(batch * height):
        b = task // height
        y = task % height
        empty = np.inf  # the least allowance of a zero window (q = 0)
        for f in range(atoms):
            empty = min(empty, allowance(0.0, lines, f, relu))
            out[b, f, y] = 0.0
        first = task * width  # the pixel (b, y, 0)
        act = active[b, y]
        moves = drift[b, y]
        steps = change[b, y]
        zero = energy[b, y]
        room = headroom[b, y]
        for x in range(width):
            p = first + x
            moves[x] = (moves[x] + steps[x]) * (1.0 + MARGIN)
            act[x] = zero[x] != 0.0 and (code_offsets[p + 1] > code_offsets[p]
                                         or not moves[x] <= room[x])
            if zero[x] == 0.0:  # q = 0 exactly: every atom's allowance from here
                room[x] = level(moves[x], 0.0, empty)
                for k in range(code_offsets[p], code_offsets[p + 1]):  # out = T(base) there
                    f = code_atoms[k]
                    v = code_values[k]
                    value = shrink(v, beta[f % beta.shape[0]], kind)
                    out[b, f, y, x] = value
                    bad += not np.isfinite(v)
                    moved = np.float64(value) - np.float64(v)
                    squares += moved * moved
                    kept += value != 0.0
    return bad, squares, kept


@njit(nogil=True, cache=True)
def gather_windows(padded, positions, height, width, channels, windows):  # pragma: no cover
    """``windows[j]`` = the window of ``positions[j] = (b·H + y)·W + x`` in ``padded``, in the
    order ``(t_y, t_x, i)``: ``n1`` runs of ``n2·c`` contiguous padded entries, each one
    ``memcpy`` (:func:`mlverify.kernels._memory.copy_run`; serial, without the GIL: one worker's
    share). Both arrays C-contiguous."""
    padded_rows, row_length = padded.shape[1], padded.shape[2]
    n1 = padded_rows - height + 1
    length = windows.shape[1] // n1
    for j in range(positions.shape[0]):
        p = positions[j]
        b = p // (height * width)
        y = (p // width) % height
        start = (b * padded_rows + y) * row_length + (p % width) * channels
        for ty in range(n1):
            copy_run(windows, (j * n1 + ty) * length, padded, start + ty * row_length, length)


#: Bits of a word: :func:`store_active` marks each position's kept atoms in 64-bit masks.
WORD = 64
#: Multiplying eight bytes that are each 0 or 1 by this constant gathers them, byte ``i`` at
#: bit ``56 + i``, into the top byte of the product (bytes in little-endian order).
_GATHER_BYTES = np.uint64(0x0102040810204080)


@njit(inline="always", cache=True)
def _position_values(q, bases, limits, lines, new, levels, needed, drift, rounding, least, scale,
                     kind):  # pragma: no cover - compiled
    """The outputs ``new[f] = T(bases[f] + scale·q[f])`` of one position, the :func:`level` of
    each atom it computed (``needed[f]``; the others keep theirs) and the least level over its
    atoms; returns ``(bad, headroom)``, ``bad`` the count of non-finite ``bases + scale·q``.

    ``kind`` is a constant at each call site, so that the loops vectorise (as do a per-atom
    threshold ``limits[f]`` read without a modulo, and loops over few arrays each). ``least``
    has a power-of-two length, its entries past the atoms ``+inf``: the minimum is a tree of
    element-wise minima, which vectorise where a running minimum does not (a NaN level, of a
    non-finite ``q``, is left out; its call is discarded anyway)."""
    bad = 0
    for f in range(q.shape[0]):
        v = scale * q[f]
        v += bases[f]
        new[f] = shrink(v, limits[f], kind)
        bad += not np.isfinite(v)
    for f in range(q.shape[0]):
        fresh = level(drift, rounding, allowance(q[f], lines, f, kind == KIND_RELU))
        levels[f] = fresh if needed[f] else levels[f]
        least[f] = levels[f]
    width = least.shape[0] // 2
    while width:
        for f in range(width):
            h = least[f + width]
            least[f] = h if h < least[f] else least[f]
        width //= 2
    return bad, least[0]


@njit(inline="always", cache=True)
def _pair_dots(q0, q1, chosen, count, padded, starts, row_length, weights, window, length,
               runs):  # pragma: no cover - compiled
    """``q0[f]``, and ``q1[f]`` for a second window, for the atoms ``f`` in ``chosen[:count]``:
    the dots of the windows of ``padded`` at ``starts`` (one or two) with the atoms' rows of
    ``weights``, four atoms at a time (:func:`mlverify.kernels._vector.dot_block`), then one
    at a time. Each the same bits as alone. With one window, ``q1`` is ``q0``."""
    k = 0
    while k + 4 <= count:
        f0, f1, f2, f3 = chosen[k], chosen[k + 1], chosen[k + 2], chosen[k + 3]
        sums = dot_block(padded, starts, row_length, weights,
                         (f0 * window, f1 * window, f2 * window, f3 * window), length, runs)
        q0[f0], q0[f1], q0[f2], q0[f3] = sums[:4]
        q1[f0], q1[f1], q1[f2], q1[f3] = sums[-4:]
        k += 4
    for rest in range(k, count):
        f = chosen[rest]
        sums = dot_block(padded, starts, row_length, weights, (f * window,), length, runs)
        q0[f] = sums[0]
        q1[f] = sums[-1]


@njit(nogil=True, cache=True)
def store_active(products, positions, codes, scale, beta, kind, out, lines, state, rounding,
                 collected, windows, dots):  # pragma: no cover - compiled
    """Finish the active positions: ``out = T_β(base + scale·q)`` as the direct kernels store it
    (in the dtype), with the base read from the compressed ``codes = (offsets, atoms, values)``
    (as in :func:`screen`), the atoms' levels and the positions' headrooms.

    ``state = (headroom, levels, drift, energy)``, flat over the positions ``(B·H·W,)`` (levels
    ``(B·H·W, m)``): an atom is *needed* at a position when its base is non-zero or the
    position's cumulative drift exceeds its level (:func:`level`); the others are zero in exact
    arithmetic. With ``dots``, only the needed atoms are computed, each by one fixed-order dot
    product (:func:`mlverify.kernels._vector.dot_runs`) of the position's window, read in place
    from ``windows = (padded, weights, c)`` (``weights (m, c·n1·n2)`` in the window's order
    ``(t_y, t_x, i)``, as :func:`gather_windows` orders it), into ``products[j]``; without,
    ``products[j, f] = q[f, p_j]`` holds all of them (a matrix product) and all are stored. The
    positions go in pairs (``positions[0:2]``, ``positions[2:4]``, …), each of which computes
    the atoms either of its two positions needs (:func:`_pair_dots`: the loads of an atom serve
    both windows; at the CNN benchmark's layer 2, 20 % more dots, each pair's windows mostly
    overlapping, in 20 % less time). The computed atoms' levels restart from the drift minus
    the rounding bound ``rounding · energy[p]`` (:math:`\\gamma_K\\|R_p\\|`), and
    ``headroom[p]`` is the least level of the position's atoms.

    Position by position (serial, without the GIL: one worker's share), after its pair's dots:
    the codes are scattered into an atom-long row, the outputs computed along the position's
    contiguous row of ``products`` (:func:`_position_values`), and the atoms that are non-zero
    in the output or the base marked in 64-bit masks (bytes of 0/1 flags gathered eight at a
    time by one multiplication). Only the marked atoms are visited after that: they carry every
    term of :math:`\\sum (out - base)^2` (the others are exactly zero), and the non-zeros of
    ``out`` among them are written (``out`` must be zero at the positions: :func:`screen`
    cleared it) and collected in the layout of
    :func:`mlverify.kernels.cpu_sparse.pixel_nonzeros` into ``collected = (counts, channels,
    values)``: ``counts[p]`` per position, and their atoms and values appended to ``channels``
    and ``values``, position by position, atoms in increasing order. Returns the count of
    non-finite ``base + scale·q``, :math:`\\sum (out - base)^2` over the positions (float64),
    the number of non-zeros appended and the number of atoms computed over the positions (with
    ``dots``, the pairs' unions of the needed atoms).
    """
    code_offsets, code_atoms, code_values = codes
    headroom, levels, drift, energy = state
    counts, channels, values = collected
    padded, weights, n_channels = windows
    atoms, height, width = out.shape[1:]
    plane = height * width
    n1 = padded.shape[1] - height + 1
    window = weights.shape[1]  # c·n1·n2
    length = window // n1
    row_length = padded.shape[2]
    flat = out.reshape(-1)
    limits = np.empty(atoms, out.dtype)
    for f in range(atoms):
        limits[f] = beta[f % beta.shape[0]]
    bases = np.zeros((2, atoms), out.dtype)  # of the two positions of a pair
    needed = np.empty((2, atoms), np.uint8)
    new = np.empty(atoms, out.dtype)
    chosen = np.empty(atoms, np.int64)  # the needed atoms, in increasing order
    size = 1
    while size < atoms:
        size *= 2
    least = np.full(size, np.inf)
    words = (atoms + WORD - 1) // WORD
    flags = np.zeros(words * WORD, np.uint8)
    packed = flags.view(np.uint64)  # eight flags per entry
    starts = np.empty(2, np.int64)  # the pair's windows in padded
    bad = 0
    squares = 0.0
    stored = 0
    wanted = 0
    for first in range(0, positions.shape[0], 2):
        pair = min(2, positions.shape[0] - first)
        for m in range(pair):
            p = positions[first + m]
            for k in range(code_offsets[p], code_offsets[p + 1]):
                bases[m, code_atoms[k]] = code_values[k]
            for f in range(atoms):
                needed[m, f] = (bases[m, f] != 0.0) | (not drift[p] <= levels[p, f])
            pixel = p % plane
            starts[m] = ((p // plane * padded.shape[1] + pixel // width) * row_length
                         + pixel % width * n_channels)
        count = 0
        for f in range(atoms):  # the pair computes the atoms either needs
            needed[0, f] |= needed[pair - 1, f]
            needed[pair - 1, f] = needed[0, f]
            count += needed[0, f]
        wanted += pair * count
        if dots:
            k = 0
            for f in range(atoms):  # the needed atoms listed, branch-free
                products[first, f] = 0.0
                products[first + pair - 1, f] = 0.0
                chosen[k] = f
                k += needed[0, f]
            if pair == 2:
                _pair_dots(products[first], products[first + 1], chosen, count, padded,
                           (starts[0], starts[1]), row_length, weights, window, length, n1)
            else:
                _pair_dots(products[first], products[first], chosen, count, padded,
                           (starts[0],), row_length, weights, window, length, n1)
        else:
            needed[:pair] = 1
        for m in range(pair):
            j = first + m
            p = positions[j]
            r = rounding * energy[p]
            if kind == KIND_RELU:
                found, room = _position_values(products[j], bases[m], limits, lines, new,
                                               levels[p], needed[m], drift[p], r, least, scale,
                                               KIND_RELU)
            elif kind == KIND_SOFT:
                found, room = _position_values(products[j], bases[m], limits, lines, new,
                                               levels[p], needed[m], drift[p], r, least, scale,
                                               KIND_SOFT)
            else:
                found, room = _position_values(products[j], bases[m], limits, lines, new,
                                               levels[p], needed[m], drift[p], r, least, scale,
                                               KIND_HARD)
            bad += found
            headroom[p] = room
            base = bases[m]
            for f in range(atoms):
                flags[f] = (new[f] != 0.0) | (base[f] != 0.0)
            total = 0.0
            before = stored
            b = p // plane
            pixel = p - b * plane
            for w in range(words):
                mask = np.uint64(0)
                for byte in range(WORD // 8):
                    gathered = (packed[w * (WORD // 8) + byte] * _GATHER_BYTES) >> np.uint64(56)
                    mask |= gathered << np.uint64(8 * byte)
                while mask:  # the marked atoms, lowest bit first: increasing order
                    f = w * WORD + trailing_zeros(mask)
                    mask &= mask - np.uint64(1)
                    value = new[f]
                    moved = np.float64(value) - np.float64(base[f])
                    total += moved * moved
                    if value != 0.0:
                        channels[stored] = f
                        values[stored] = value
                        flat[(b * atoms + f) * plane + pixel] = value
                        stored += 1
            squares += total
            counts[p] = stored - before
            for k in range(code_offsets[p], code_offsets[p + 1]):
                base[code_atoms[k]] = 0.0
    return bad, squares, stored, wanted
