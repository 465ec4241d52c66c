r"""Convolutional dictionaries that meet the hypotheses of the theorems (THEORY.md §5).

Random unit filters have a mutual coherence :math:`\mu \approx 0.4`–:math:`0.7`, so the
stability theorems (which need e.g. :math:`\mu < 1/2` for a stripe sparsity of one and
:math:`\mu < 1/5` for two) almost never apply to them. This module builds dictionaries
*constructively*:

- :func:`barker13`: the Barker-13 sequence, one atom with :math:`\mu = 1/13`;
- :func:`golomb_filters`: sparse ±1 filters supported on a Golomb ruler (all pairwise differences
  of the marks distinct), so two shifted atoms overlap in at most one tap per channel; the default
  is THEORY.md's :math:`D_2` with :math:`\mu = 1/4`;
- :func:`low_coherence_filters`: filters of low coherence found by numerical optimisation;
- :func:`random_filters`, :func:`sparse_filters`: Gaussian and sparse random unit filters.

Every function returns a :class:`~mlverify.model.dictionary.ConvDictionary` with unit ℓ2-norm
atoms (over channels × taps), float64 by default or float32 on request; everything random takes
an ``int`` seed or a :class:`numpy.random.Generator`.

References: Papyan, Romano, Elad, "Convolutional neural networks analyzed via convolutional sparse
coding", JMLR 2017 (coherence-based guarantees); Papyan, Sulam, Elad, "Working locally thinking
globally", IEEE TSP 2017.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._validate import as_generator, check_positive_int, float_dtype, spatial_size
from .dictionary import ConvDictionary
from .measures import coherence_lower_bound

#: The Barker sequence of length 13 (its aperiodic autocorrelation sidelobes are 0 or 1).
BARKER13 = (1, 1, 1, 1, 1, -1, -1, 1, 1, -1, 1, -1, 1)

#: Schedule of exponents ``p`` of the smooth maximum used by :func:`low_coherence_filters`.
P_SCHEDULE = (8, 32, 128, 512)

#: Coherence treated as attained zero by :func:`low_coherence_filters` (the smooth maximum is not
#: differentiable at zero, so L-BFGS only creeps towards it).
ZERO = 1e-10


def _unit(filters: np.ndarray, dtype) -> ConvDictionary:
    """Normalise every atom of float64 ``filters (m, c, *n)`` in float64, then cast."""
    norms = np.sqrt(np.sum(filters**2, axis=tuple(range(1, filters.ndim))))
    shape = (-1,) + (1,) * (filters.ndim - 1)
    return ConvDictionary((filters / norms.reshape(shape)).astype(float_dtype(dtype)))


def barker13(dtype=np.float64) -> ConvDictionary:
    r"""The Barker-13 filter: one atom, one channel, 13 taps, :math:`\mu = 1/13`.

    .. math:: a = (+1\,{+1}\,{+1}\,{+1}\,{+1}\,{-1}\,{-1}\,{+1}\,{+1}\,{-1}\,{+1}\,{-1}\,{+1})
              / \sqrt{13}

    Every aperiodic autocorrelation sidelobe of a Barker sequence is 0 or ±1, so the largest
    normalised sidelobe is :math:`1/13` (THEORY.md §5): BP is stable for stripe sparsity
    :math:`k \le 4`, OMP and thresholding for :math:`k \le 6`.

    Parameters
    ----------
    dtype : float32 or float64
    """
    return _unit(np.array(BARKER13, dtype=np.float64).reshape(1, 1, 13), dtype)


def _golomb_marks(marks) -> tuple[int, ...]:
    try:
        values = tuple(marks)
    except TypeError:
        raise TypeError(f"marks must be a sequence of ints, got {marks!r}") from None
    if not values:
        raise ValueError("marks must hold at least one position")
    values = tuple(check_positive_int("marks", v, minimum=0) for v in values)
    if len(set(values)) != len(values):
        raise ValueError(f"marks must be distinct, got {values}")
    differences = [abs(a - b) for a, b in combinations(values, 2)]
    if len(set(differences)) != len(differences):
        raise ValueError(
            f"marks {values} are not a Golomb ruler: some pairwise differences repeat "
            "(two shifted atoms would overlap in more than one tap)"
        )
    return values


def golomb_filters(
    marks=(0, 1, 4, 6),
    signs=((1, 1, 1, 1), (1, -1, 1, -1)),
    *,
    length: int | None = None,
    n_channels: int = 1,
    dtype=np.float64,
) -> ConvDictionary:
    r"""Sparse ±1 filters supported on a Golomb ruler (THEORY.md §5, "sparse deeper layers").

    Atom ``f`` has the value :math:`s_{f,c,j}/\sqrt{c\,|M|}` at tap ``marks[j]`` of channel ``c``
    and zeros elsewhere. Because the marks :math:`M` form a Golomb ruler (all pairwise differences
    distinct), two atoms shifted by :math:`s \ne 0` share at most one tap per channel:

    .. math:: |\langle \hat a_f, S_s \hat a_g \rangle| \le 1/|M| \quad (s \ne 0),

    and at :math:`s = 0` the correlation is the normalised inner product of the sign patterns.
    With pairwise orthogonal sign patterns, :math:`\mu = 1/|M|`. The defaults give THEORY.md's
    :math:`D_2`: two filters of length 7, non-zeros :math:`\pm\tfrac12` at :math:`\{0, 1, 4, 6\}`,
    signs :math:`(+,+,+,+)` and :math:`(+,-,+,-)`, :math:`\mu = 1/4`.

    Parameters
    ----------
    marks : sequence of int
        Tap positions (distinct, >= 0, a Golomb ruler).
    signs : array_like of ±1, shape ``(m, len(marks))`` or ``(m, n_channels, len(marks))``
        Sign pattern of each atom (the first form uses the same pattern on every channel).
    length : int, optional
        Filter length ``n``; at least ``max(marks) + 1`` (the default).
    n_channels : int
        Number of input channels ``c``.
    dtype : float32 or float64
    """
    marks = _golomb_marks(marks)
    n_channels = check_positive_int("n_channels", n_channels)
    shortest = max(marks) + 1
    length = shortest if length is None else check_positive_int("length", length)
    if length < shortest:
        raise ValueError(f"length must be >= max(marks) + 1 = {shortest}, got {length}")
    pattern = np.asarray(signs)
    if pattern.dtype.kind not in "iuf":
        raise TypeError(f"signs must be an array of +1/-1, got dtype {pattern.dtype}")
    if pattern.ndim == 2 and pattern.shape[1] == len(marks):
        pattern = np.broadcast_to(pattern[:, None, :], (pattern.shape[0], n_channels, len(marks)))
    if pattern.ndim != 3 or pattern.shape[1:] != (n_channels, len(marks)) or pattern.shape[0] < 1:
        raise ValueError(
            f"signs must have shape (m, {len(marks)}) or (m, {n_channels}, {len(marks)}) "
            f"(marks has {len(marks)} entries, n_channels={n_channels}), got {np.shape(signs)}"
        )
    if not np.all(np.abs(pattern) == 1):
        raise ValueError("signs must hold only +1 and -1")
    filters = np.zeros((pattern.shape[0], n_channels, length))
    filters[:, :, list(marks)] = pattern
    return _unit(filters, dtype)


def random_filters(m: int, c: int, n, rng, dtype=np.float64) -> ConvDictionary:
    r"""Gaussian random unit filters: :math:`a_f = g_f / \|g_f\|_2`, :math:`g_f \sim N(0, I)`.

    Parameters
    ----------
    m, c : int
        Number of atoms and of input channels.
    n : int or (int, int)
        Filter length (1-D) or size (2-D).
    rng : numpy.random.Generator or int
    dtype : float32 or float64
    """
    m, c = check_positive_int("m", m), check_positive_int("c", c)
    size = spatial_size("n", n)
    dtype = float_dtype(dtype)
    return _unit(as_generator(rng).standard_normal((m, c, *size)), dtype)


def sparse_filters(m: int, c: int, n, nnz: int, rng, dtype=np.float64) -> ConvDictionary:
    r"""Sparse random unit filters: ``nnz`` entries :math:`\pm 1/\sqrt{\mathrm{nnz}}` per atom.

    The support of each atom is drawn uniformly among its :math:`c \prod n` entries and the signs
    are fair coin flips. Sparse deeper dictionaries keep the intermediate layers of an ML-CSC
    signal sparse (THEORY.md §5): with :math:`\Gamma_i = D_{i+1}\Gamma_{i+1}`, every non-zero of
    :math:`\Gamma_{i+1}` creates at most ``nnz`` non-zeros of :math:`\Gamma_i`.

    Parameters
    ----------
    m, c : int
        Number of atoms and of input channels.
    n : int or (int, int)
        Filter length (1-D) or size (2-D).
    nnz : int
        Non-zeros per atom, ``1 <= nnz <= c * prod(n)``.
    rng : numpy.random.Generator or int
    dtype : float32 or float64
    """
    m, c = check_positive_int("m", m), check_positive_int("c", c)
    size = spatial_size("n", n)
    nnz = check_positive_int("nnz", nnz)
    dtype = float_dtype(dtype)
    slots = c * math.prod(size)
    if nnz > slots:
        raise ValueError(f"nnz must be <= c * prod(n) = {slots}, got {nnz}")
    generator = as_generator(rng)
    order = np.argsort(generator.random((m, slots)), axis=1)[:, :nnz]
    filters = np.zeros((m, slots))
    np.put_along_axis(filters, order, generator.choice((-1.0, 1.0), size=(m, nnz)), axis=1)
    return _unit(filters.reshape(m, c, *size), dtype)


@dataclass(frozen=True)
class LowCoherenceFilters:
    """Result of :func:`low_coherence_filters`.

    Attributes
    ----------
    dictionary : ConvDictionary
        The best filters found (unit atoms).
    coherence : float
        Their mutual coherence, ``dictionary.coherence()``.
    lower_bound : float
        ``coherence_lower_bound(m, n, c)``: no dictionary of this size does better.
    """

    dictionary: ConvDictionary
    coherence: float
    lower_bound: float


class _SmoothCoherence:
    r"""The smooth maximum :math:`\|G\|_p` of all local cross-correlations and its gradient.

    For atoms :math:`a_f = v_f/\|v_f\|` the local Gram is
    :math:`G[f,g,s] = \sum_{c,\tau} a_f[c,\tau]\,a_g[c,\tau-s]`, :math:`|s| \le n-1` per axis:
    one matrix product of the flattened atoms with every shifted copy of every atom (a sliding
    window over the zero-padded atoms), which is faster than FFTs at these sizes. The objective is
    :math:`\phi_p = (\sum_{(f,g,s)\ne(f,f,0)} |G[f,g,s]|^p)^{1/p} \ge \mu`, which tends to
    :math:`\mu` as :math:`p \to \infty`. As :math:`G[f,g,s] = G[g,f,-s]`, its gradient in
    :math:`a_f` is :math:`2\sum_{g,s} W[f,g,s]\,a_g[c,\tau-s]` with
    :math:`W = \partial\phi_p/\partial G`; the chain rule through :math:`a_f = v_f/\|v_f\|`
    projects it on the tangent space of the sphere and divides by :math:`\|v_f\|`.
    """

    def __init__(self, m: int, c: int, size: tuple[int, ...]) -> None:
        self.shape = (m, c, *size)
        self.size = size
        self.pad = ((0, 0), (0, 0), *((s - 1, s - 1) for s in size))
        self.axes = tuple(range(2, 2 + len(size)))
        shifts = math.prod(2 * s - 1 for s in size)
        self.mask = np.ones((m, m, shifts), dtype=bool)
        self.mask[np.arange(m), np.arange(m), shifts // 2] = False
        self.mask = self.mask.reshape(m, m * shifts)

    def __call__(self, v: np.ndarray, p: float) -> tuple[float, np.ndarray]:
        flat = v.reshape(self.shape[0], -1)
        norms = np.sqrt(np.sum(flat**2, axis=1, keepdims=True))
        atoms = flat / norms
        windows = sliding_window_view(
            np.pad(atoms.reshape(self.shape), self.pad), self.size, axis=self.axes
        )
        d = len(self.size)
        order = (0, *range(2, 2 + d), 1, *range(2 + d, 2 + 2 * d))
        shifted = windows.transpose(order).reshape(-1, flat.shape[1])
        gram = atoms @ shifted.T
        magnitude = np.where(self.mask, np.abs(gram), 0.0)
        top = magnitude.max()
        if top == 0.0:
            return 0.0, np.zeros(v.size)
        ratio = magnitude / top
        total = np.sum(ratio**p)
        weight = total ** (1.0 / p - 1.0) * ratio ** (p - 1.0) * np.sign(gram)
        grad = 2.0 * (weight @ shifted)
        grad = (grad - np.sum(grad * atoms, axis=1, keepdims=True) * atoms) / norms
        return float(top * total ** (1.0 / p)), grad.ravel()


def _lbfgs(objective, x: np.ndarray, p: float, max_iter: int, memory: int = 8) -> np.ndarray:
    """Minimise ``objective(x, p) -> (value, gradient)`` by L-BFGS with Armijo backtracking.

    Written with NumPy vector operations on purpose: ``scipy.optimize``'s L-BFGS-B calls a
    multi-threaded BLAS on these tiny vectors, which made it 10-30x slower on a busy machine.
    Stops after ``max_iter`` iterations, when a step decreases the value by less than
    ``1e-13`` relative or to at most :data:`ZERO`, or when no descent step is found.
    """
    value, grad = objective(x, p)
    steps: list[np.ndarray] = []
    changes: list[np.ndarray] = []
    for _ in range(max_iter):
        direction = grad.copy()
        coefficients = []
        for s, y in zip(reversed(steps), reversed(changes), strict=True):
            a = (s @ direction) / (y @ s)
            direction -= a * y
            coefficients.append(a)
        if steps:
            direction *= (steps[-1] @ changes[-1]) / (changes[-1] @ changes[-1])
        else:
            direction /= max(float(np.linalg.norm(grad)), np.finfo(float).tiny)
        for s, y, a in zip(steps, changes, reversed(coefficients), strict=True):
            direction += s * (a - (y @ direction) / (y @ s))
        direction = -direction
        slope = grad @ direction
        if slope >= 0:
            direction, slope = -grad, -(grad @ grad)
            steps.clear()
            changes.clear()
        if slope == 0:
            break
        step = 1.0
        for _ in range(40):
            trial = x + step * direction
            trial_value, trial_grad = objective(trial, p)
            if trial_value <= value + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break
        s, y = trial - x, trial_grad - grad
        if s @ y > 1e-12 * np.sqrt((s @ s) * (y @ y)):
            steps.append(s)
            changes.append(y)
            if len(steps) > memory:
                del steps[0], changes[0]
        done = value - trial_value <= 1e-13 * abs(value) or trial_value <= ZERO
        x, value, grad = trial, trial_value, trial_grad
        if done:
            break
    return x


def low_coherence_filters(
    m: int,
    c: int,
    n,
    rng,
    *,
    restarts: int = 10,
    max_iter: int = 300,
    dtype=np.float64,
) -> LowCoherenceFilters:
    r"""Filters of low mutual coherence, found by smooth-max minimisation with restarts.

    Minimises :math:`\phi_p(A) = \big(\sum_{(f,g,s) \ne (f,f,0)} |G[f,g,s]|^p\big)^{1/p}`, a smooth
    upper bound of :math:`\mu` over all local cross-correlations, by L-BFGS on
    :math:`v` with atoms :math:`a_f = v_f/\|v_f\|` (so they stay on the unit sphere), with the
    continuation :math:`p \in` :data:`P_SCHEDULE`, from ``restarts`` Gaussian starts; the start with
    the smallest exact :math:`\mu` (``ConvDictionary.coherence``) wins; the restarts stop early if
    one reaches the lower bound (to :data:`ZERO`). When :math:`\mu = 0` is attainable the result
    is only zero to about :data:`ZERO`.

    With the defaults it reaches (seed 0) :math:`\mu \approx 0.17` for
    :math:`(m, n, c) = (2, 13, 1)`, :math:`0.12` for :math:`(3, 8, 2)` and :math:`\approx 0` for
    :math:`(2, 6, 2)`, below the hill-climbing values 0.237, 0.211, 0.136 of THEORY.md §5. (When
    :math:`m \le c`, :math:`\mu = 0` is attainable: put a unit spike on a separate channel per
    atom.)

    Parameters
    ----------
    m, c : int
        Number of atoms and of input channels.
    n : int or (int, int)
        Filter length (1-D) or size (2-D).
    rng : numpy.random.Generator or int
    restarts : int
        Number of random starts.
    max_iter : int
        L-BFGS iterations per exponent ``p``.
    dtype : float32 or float64
        dtype of the returned dictionary (the optimisation runs in float64).

    Returns
    -------
    LowCoherenceFilters
        ``(dictionary, coherence, lower_bound)``; ``coherence`` is measured on the returned
        dictionary (after a float32 cast, if any).
    """
    m, c = check_positive_int("m", m), check_positive_int("c", c)
    size = spatial_size("n", n)
    restarts = check_positive_int("restarts", restarts)
    max_iter = check_positive_int("max_iter", max_iter)
    dtype = float_dtype(dtype)
    generator = as_generator(rng)
    objective = _SmoothCoherence(m, c, size)
    bound = coherence_lower_bound(m, size, c)
    best: ConvDictionary | None = None
    best_mu = math.inf
    for _ in range(restarts):
        v = generator.standard_normal(m * c * math.prod(size))
        for p in P_SCHEDULE:
            v = _lbfgs(objective, v, p, max_iter)
        candidate = _unit(v.reshape(m, c, *size), dtype)
        mu = candidate.coherence()
        if mu < best_mu:
            best, best_mu = candidate, mu
        if best_mu <= bound + ZERO:
            break
    return LowCoherenceFilters(best, best_mu, bound)
