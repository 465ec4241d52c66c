r"""Numba CPU kernels of the DFT-domain ADMM for convolutional basis pursuit, with NumPy oracles.

The solver (:mod:`mlverify.pursuits._bp_admm`) follows Wohlberg, "Efficient algorithms for
convolutional sparse representations", IEEE TIP 25(1), 2016. Two steps per iteration are done
here; the DFTs between them by ``scipy.fft`` or FFTW. The ``row_*`` kernels do the same steps
one code row at a time (the solver's row sweep); their oracle is the whole iteration of the NumPy
engine, whose iterates the tests compare.

**x-update, one linear system per frequency.** At DFT frequency :math:`k` the dictionary acts as
the :math:`c \times m` matrix :math:`M_k` (``spectra[:, :, k]``, ``M_k[ch, f]`` = DFT of channel
``ch`` of atom ``f``), and the ADMM x-update
:math:`(D^H D + \rho I)x = D^H s + \rho(z - u)` decouples into

.. math::

    (M_k^H M_k + \rho I_m)\,\hat x_k = \hat b_k := \widehat{D^H s}_k + \rho\,\hat w_k,
    \qquad \hat w = \mathrm{DFT}(z - u),

solved by the Woodbury identity with the precomputed :math:`c \times c` factor
:math:`K_k = (\rho I_c + M_k M_k^H)^{-1}` (``kinv[:, :, k]``):

.. math::

    \hat x_k = v_k - M_k^H K_k M_k v_k, \qquad v_k = \hat b_k / \rho
    = \widehat{D^H s}_k / \rho + \hat w_k.

For ``c = 1`` this is exactly Sherman–Morrison (:math:`K_k = 1/(\rho + \|a_k\|^2)`).

**z- and u-updates, elementwise.** With over-relaxation :math:`\alpha`:
:math:`x_r = \alpha x + (1-\alpha) z`, :math:`z \leftarrow T_\beta(x_r + u)` (soft or
non-negative soft threshold, :math:`\beta = \lambda/\rho`), :math:`u \leftarrow u + x_r - z`,
and the next FFT input :math:`w = z - u`, together with the sums the residuals need.

Every kernel has a NumPy oracle (``*_reference``, same arguments less ``block``) used by the
``numpy`` engine and by the tests. Parallel tasks own disjoint blocks of the output (no races);
reductions are written per task and summed by the caller. Complex arithmetic runs in
``complex64`` for ``float32`` problems and ``complex128`` for ``float64`` ones; the callers pass
scalars already cast to the working dtype so nothing is promoted.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._scalar import row_block

#: Columns of the per-task sums written by :func:`relaxed_update`: ‖x − z‖², ‖z − z_prev‖²,
#: ‖x‖², ‖z‖², ‖u‖² (``z``, ``u`` after the update).
N_SUMS = 5


@njit(parallel=True, cache=True)
def solve_frequencies(spectra, kinv, signal, w, scale, block):  # pragma: no cover - compiled
    r"""Overwrite ``w`` (``(B, m, F)``) with ``scale`` times the per-frequency solution
    :math:`\hat x` (``scale = 1/N`` folds the normalisation of the inverse DFT in here).

    ``spectra (c, m, F)``, ``kinv (c, c, F)``, ``signal (B, c, F)`` = :math:`\hat s/\rho`;
    with :math:`v = \hat b/\rho = M^H\hat s/\rho + \hat w` (the first term formed here from
    the spectra the solve reads anyway, so no ``(B, m, F)`` right-hand side is streamed) the
    solution is :math:`v - M^H K M v`. Tasks are (batch, block of frequencies); each owns its
    columns of ``w``.
    """
    batch, atoms, nfreq = w.shape
    channels = spectra.shape[0]
    n_blocks = (nfreq + block - 1) // block
    for task in prange(batch * n_blocks):
        b, k0, k1 = row_block(task, n_blocks, block, nfreq)
        proj = np.zeros((channels, k1 - k0), w.dtype)
        for f in range(atoms):
            row = w[b, f, k0:k1]
            for ch in range(channels):
                resp = spectra[ch, f, k0:k1]
                src = signal[b, ch, k0:k1]
                for k in range(k1 - k0):
                    row[k] += np.conj(resp[k]) * src[k]
            for ch in range(channels):
                resp = spectra[ch, f, k0:k1]
                acc = proj[ch]
                for k in range(k1 - k0):
                    acc[k] += resp[k] * row[k]
        coef = np.zeros((channels, k1 - k0), w.dtype)
        for ch in range(channels):
            out = coef[ch]
            for ch2 in range(channels):
                fac = kinv[ch, ch2, k0:k1]
                src = proj[ch2]
                for k in range(k1 - k0):
                    out[k] += fac[k] * src[k]
        for f in range(atoms):
            row = w[b, f, k0:k1]
            for ch in range(channels):
                resp = spectra[ch, f, k0:k1]
                src = coef[ch]
                for k in range(k1 - k0):
                    row[k] -= np.conj(resp[k]) * src[k]
            for k in range(k1 - k0):
                row[k] *= scale


def solve_frequencies_reference(spectra, kinv, signal, w, scale):
    """NumPy oracle of :func:`solve_frequencies` (same arguments, ``w`` overwritten)."""
    v = np.einsum("cmk,bck->bmk", np.conj(spectra), signal) + w
    proj = np.einsum("cmk,bmk->bck", spectra, v)
    coef = np.einsum("cdk,bdk->bck", kinv, proj)
    w[...] = scale * (v - np.einsum("cmk,bck->bmk", np.conj(spectra), coef))


@njit(parallel=True, cache=True)
def frequency_gram(spectra):  # pragma: no cover - compiled
    r""":math:`G_k = M_k M_k^H` for every frequency, ``(F, c, c)`` complex128, from the
    ``(c, m, F)`` complex128 ``spectra`` (:math:`G_k[a, b] = \sum_f M_k[a, f]\,
    \overline{M_k[b, f]}`, summed over atoms in order). Each task owns one frequency."""
    channels, atoms, nfreq = spectra.shape
    gram = np.zeros((nfreq, channels, channels), np.complex128)
    for k in prange(nfreq):
        for a in range(channels):
            for b in range(channels):
                acc = 0j
                for f in range(atoms):
                    acc += spectra[a, f, k] * np.conj(spectra[b, f, k])
                gram[k, a, b] = acc
    return gram


def frequency_gram_reference(spectra: np.ndarray) -> np.ndarray:
    """NumPy oracle of :func:`frequency_gram`."""
    return np.einsum("cmk,dmk->kcd", spectra, np.conj(spectra))


def woodbury_factor(gram: np.ndarray, rho: float, dtype) -> np.ndarray:
    r""":math:`K_k = (\rho I_c + G_k)^{-1}` for every frequency, shape ``(c, c, F)``.

    ``gram`` holds :math:`G_k = M_k M_k^H` as ``(F, c, c)`` complex128; the inverse is computed in
    complex128 and returned as ``dtype`` (complex64 or complex128). With one channel it is the
    reciprocal :math:`1/(\rho + \|a_k\|^2)` (Sherman–Morrison), without LAPACK's per-matrix
    overhead.
    """
    if gram.shape[1] == 1:
        inverse = 1.0 / (gram.real + rho)
    else:
        inverse = np.linalg.inv(gram + rho * np.eye(gram.shape[1]))
    return np.ascontiguousarray(np.moveaxis(inverse, 0, -1).astype(dtype))


@njit(inline="always", cache=True)
def _relaxed(xv, zold, uv, alpha, keep, beta, low):  # pragma: no cover - compiled
    """One element of the relaxed z/u-update: ``(z_new, u_new)``."""
    relaxed = alpha * xv + keep * zold
    v = relaxed + uv
    clip = v if v < beta else beta
    clip = clip if clip > low else low
    znew = v - clip
    return znew, uv + (relaxed - znew)


@njit(inline="always", cache=True)
def _step_span(x, z, u, w, alpha, keep, beta, low):  # pragma: no cover - compiled
    """The relaxed update on one span of 1-D slices (no sums: the loop vectorises)."""
    for j in range(x.shape[0]):
        znew, unew = _relaxed(x[j], z[j], u[j], alpha, keep, beta, low)
        z[j] = znew
        u[j] = unew
        w[j] = znew - unew


#: Interleaved float64 partial sums of :func:`_update_span` (lane ``l`` sums the elements
#: ``≡ l`` mod ``LANES`` in order): independent accumulators let LLVM vectorise the loop without
#: reassociating any sum (measured 4× faster than one accumulator per sum on a 65 536 row).
LANES = 16


@njit(inline="always", cache=True)
def _update_at(x, z, u, w, j, alpha, keep, beta, low, acc, lane):  # pragma: no cover - compiled
    """Relaxed update of element ``j``; its squares added to the column ``lane`` of ``acc``."""
    xv = x[j]
    zold = z[j]
    znew, unew = _relaxed(xv, zold, u[j], alpha, keep, beta, low)
    z[j] = znew
    u[j] = unew
    w[j] = znew - unew
    d_primal = np.float64(xv - znew)
    d_dual = np.float64(znew - zold)
    acc[0, lane] += d_primal * d_primal
    acc[1, lane] += d_dual * d_dual
    acc[2, lane] += np.float64(xv) * np.float64(xv)
    acc[3, lane] += np.float64(znew) * np.float64(znew)
    acc[4, lane] += np.float64(unew) * np.float64(unew)


@njit(inline="always", cache=True)
def _update_span(x, z, u, w, alpha, keep, beta, low, sums):  # pragma: no cover - compiled
    """The relaxed update on one span of 1-D slices; its :data:`N_SUMS` float64 sums into
    ``sums`` (over :data:`LANES` interleaved partial sums)."""
    n = x.shape[0]
    body = n - n % LANES
    acc = np.zeros((N_SUMS, LANES))
    for base in range(0, body, LANES):
        for lane in range(LANES):
            _update_at(x, z, u, w, base + lane, alpha, keep, beta, low, acc, lane)
    for j in range(body, n):
        _update_at(x, z, u, w, j, alpha, keep, beta, low, acc, 0)
    for k in range(N_SUMS):
        sums[k] = acc[k].sum()


@njit(parallel=True, cache=True)
def relaxed_step(x, z, u, w, alpha, keep, beta, low, block):  # pragma: no cover - compiled
    r"""The relaxed z/u-update of :func:`relaxed_update` without the sums.

    The solver calls it on the iterations that need no residuals (the sums cost 5–10 % of an
    ADMM iteration on SPORCO's example).
    """
    rows, size = x.shape
    n_blocks = (size + block - 1) // block
    for task in prange(rows * n_blocks):
        r, j0, j1 = row_block(task, n_blocks, block, size)
        # slices indexed from 0: no negative-index wrap-around, so the loop vectorises
        _step_span(x[r, j0:j1], z[r, j0:j1], u[r, j0:j1], w[r, j0:j1], alpha, keep, beta, low)


@njit(parallel=True, cache=True)
def relaxed_update(x, z, u, w, alpha, keep, beta, low, block, sums):  # pragma: no cover - compiled
    r"""Relaxed z/u-update on rows ``(R, P)``; ``z``, ``u`` updated in place, ``w = z - u``.

    ``alpha``, ``keep = 1 - alpha``, ``beta`` and ``low`` are scalars of the working precision:
    ``low = -beta`` gives the soft threshold, ``low = -inf`` the non-negative one. The threshold is
    written branch-free as :math:`v - \mathrm{clip}(v, low, \beta)` (:math:`S_\beta` and
    :math:`S^+_\beta` exactly, zeros are +0.0). Task ``t`` (row, block of columns) writes
    ``sums[t]`` (see :data:`N_SUMS`, accumulated in float64 over :data:`LANES` interleaved
    partial sums; :func:`relaxed_step` skips them when no residuals are needed).
    """
    rows, size = x.shape
    n_blocks = (size + block - 1) // block
    for task in prange(rows * n_blocks):
        r, j0, j1 = row_block(task, n_blocks, block, size)
        _update_span(x[r, j0:j1], z[r, j0:j1], u[r, j0:j1], w[r, j0:j1], alpha, keep, beta, low,
                     sums[task])


# ----------------------------------------------------------------------------- row by row
# The same iteration, one code row (batch element b, atom f) at a time, so that a thread keeps
# the row's spectrum and its real transforms in cache between the steps (see
# mlverify.pursuits._bp_admm). Serial kernels without the GIL: threads run them side by side.


@njit(nogil=True, cache=True)
def row_solution(v, row, spectra, f, coef, b, scale, out):  # pragma: no cover - compiled
    r"""``out`` ← ``scale`` · row ``row`` of the solution, :math:`\hat x_{bf} = v_{bf} -
    \sum_c \overline{M[c, f]}\,K(Mv)_{bc}`, from ``coef[b]`` = :math:`K_k (M_k v_k)` (see
    :func:`woodbury_apply`); ``v (R, F)``, ``spectra (c, m, F)``, ``coef (B, c, F)``."""
    channels, _, nfreq = spectra.shape
    source = v[row]  # 1-D views: the loops index them directly
    if channels == 1:  # one pass (Sherman–Morrison)
        atom, weights = spectra[0, f], coef[b, 0]
        for k in range(nfreq):
            out[k] = (source[k] - np.conj(atom[k]) * weights[k]) * scale
        return
    for k in range(nfreq):
        out[k] = source[k]
    for c in range(channels):
        atom, weights = spectra[c, f], coef[b, c]
        for k in range(nfreq):
            out[k] -= np.conj(atom[k]) * weights[k]
    for k in range(nfreq):
        out[k] *= scale


@njit(nogil=True, cache=True)
def row_rhs(w_hat, spectra, f, signal, b, v, row, proj, first):  # pragma: no cover - compiled
    r"""Row ``row`` of :math:`v = \hat w + M^H\hat s/\rho` from the row's spectrum ``w_hat``
    (``signal (B, c, F)`` = :math:`\hat s/\rho`), and its share of the projection:
    ``proj[c] += M[c, f] v_{bf}`` (``proj (c, F)``, the caller's partial sum for batch ``b``;
    ``first``: the first share, stored instead of added, so the caller never zeroes it)."""
    channels, _, nfreq = spectra.shape
    target = v[row]  # 1-D views: the loops index them directly
    if channels == 1:  # one pass
        atom, source, share_of = spectra[0, f], signal[b, 0], proj[0]
        if first:
            for k in range(nfreq):
                value = w_hat[k] + np.conj(atom[k]) * source[k]
                target[k] = value
                share_of[k] = atom[k] * value
        else:
            for k in range(nfreq):
                value = w_hat[k] + np.conj(atom[k]) * source[k]
                target[k] = value
                share_of[k] += atom[k] * value
        return
    for k in range(nfreq):
        target[k] = w_hat[k]
    for c in range(channels):
        atom, source = spectra[c, f], signal[b, c]
        for k in range(nfreq):
            target[k] += np.conj(atom[k]) * source[k]
    for c in range(channels):
        atom, share_of = spectra[c, f], proj[c]
        if first:
            for k in range(nfreq):
                share_of[k] = atom[k] * target[k]
        else:
            for k in range(nfreq):
                share_of[k] += atom[k] * target[k]


@njit(parallel=True, cache=True)
def woodbury_apply(kinv, partial, coef, block):  # pragma: no cover - compiled
    r"""``coef[b, c] = \sum_d K[c, d] \sum_t partial[t, b, d]``: the Woodbury coefficients
    :math:`K_k M_k v_k` from partial projections ``partial (T, B, c, F)`` (one per chunk of
    rows, summed in order). Tasks are (batch element, block of ``block`` frequencies)."""
    parts, batch, channels, nfreq = partial.shape
    n_blocks = (nfreq + block - 1) // block
    for task in prange(batch * n_blocks):
        b, k0, k1 = row_block(task, n_blocks, block, nfreq)
        for d in range(channels):  # the projection M v, summed in chunk order
            for k in range(k0, k1):
                coef[b, d, k] = partial[0, b, d, k]
            for t in range(1, parts):
                for k in range(k0, k1):
                    coef[b, d, k] += partial[t, b, d, k]
        if channels == 1:
            for k in range(k0, k1):
                coef[b, 0, k] *= kinv[0, 0, k]
            continue
        mixed = np.empty(channels, coef.dtype)
        for k in range(k0, k1):
            for c in range(channels):
                acc = kinv[c, 0, k] * coef[b, 0, k]
                for d in range(1, channels):
                    acc += kinv[c, d, k] * coef[b, d, k]
                mixed[c] = acc
            for c in range(channels):
                coef[b, c, k] = mixed[c]


@njit(nogil=True, cache=True)
def row_step(x, z, u, w, alpha, keep, beta, low):  # pragma: no cover - compiled
    """:func:`relaxed_step` on one row (1-D arrays), serial."""
    _step_span(x, z, u, w, alpha, keep, beta, low)


@njit(nogil=True, cache=True)
def row_update(x, z, u, w, alpha, keep, beta, low, sums):  # pragma: no cover - compiled
    """:func:`relaxed_update` on one row (1-D arrays), serial; its sums into ``sums``."""
    _update_span(x, z, u, w, alpha, keep, beta, low, sums)


def relaxed_update_reference(x, z, u, w, alpha, keep, beta, low, sums=None):
    """NumPy oracle of :func:`relaxed_update` (explicit thresholds; ``sums`` gets one row) and,
    with ``sums=None``, of :func:`relaxed_step`."""
    zold = z.copy()
    relaxed = alpha * x + keep * zold
    v = relaxed + u
    if low == -np.inf:
        z[...] = np.maximum(v - beta, 0)
    else:
        z[...] = np.sign(v) * np.maximum(np.abs(v) - beta, 0)
    z += 0.0
    u += relaxed - z
    w[...] = z - u
    if sums is None:
        return
    for col, arr in enumerate((x - z, z - zold, x, z, u)):
        sums[0, col] = np.sum(arr.astype(np.float64) ** 2)
