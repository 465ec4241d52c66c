r"""Planted ML-CSC instances: :math:`y = X + E`, :math:`X = D_1 D_2 \cdots D_K \Gamma_K`.

:func:`sample_instance` draws the deepest code :math:`\Gamma_K` with an *exact* stripe sparsity
:math:`k = \|\Gamma_K\|^s_{0,\infty}` (stripes of side :math:`2n_K - 1`, all channels; THEORY.md
§2), synthesises the intermediate layers :math:`\Gamma_{i-1} = D_i\Gamma_i` and the signal
:math:`X = \Gamma_0`, and adds Gaussian noise :math:`E` rescaled to a prescribed patch energy
:math:`\varepsilon_0 = \|E\|^p_{2,\infty}` (patches of side :math:`n_1`), ℓ2 energy or SNR.
The returned :class:`PlantedInstance` reports what was achieved, layer by layer, with the window
conventions of THEORY.md §2 (stripe side :math:`2n_i - 1`, patch side :math:`w = n_{i+1}`, and
:math:`w = 1` for the deepest layer).

Placement of :math:`\Gamma_K` (random sequential adsorption under a stripe budget): ``k``
non-zeros are planted inside one random stripe, so that stripe holds exactly ``k``; then
non-zeros are added one at a time, each uniformly among the free (channel, position) slots whose
addition keeps every stripe at most ``k``, until ``n_nonzero`` are placed or no slot is left
(saturation). The scan accepts whole runs of slots that share no stripe at once (vectorised
NumPy), so a 64×64 image costs a few milliseconds.

References: Papyan, Romano, Elad, "Convolutional neural networks analyzed via convolutional sparse
coding", JMLR 2017 (the ML-CSC model and its stripe/patch measures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._validate import (
    as_float_array,
    as_generator,
    check_engine,
    check_finite,
    check_positive_int,
    window_shape,
)
from .measures import extreme_magnitudes, patch_l0_inf, patch_l2_inf, stripe_l0_inf
from .mlcsc import MLCSC

#: Admissible slots examined at once by the placement of :math:`\Gamma_K`.
CHUNK = 64


@dataclass(frozen=True)
class LayerReport:
    r"""What a planted instance achieves on one layer :math:`\Gamma_i` (THEORY.md §2).

    Attributes
    ----------
    layer : int
        ``i`` in ``1..K``.
    stripe_n : tuple of int
        :math:`n_i`, the filter size of :math:`D_i` (stripe side :math:`2n_i - 1`).
    stripe_sparsity : int
        :math:`\|\Gamma_i\|^s_{0,\infty}`.
    patch_w : tuple of int
        :math:`w = n_{i+1}`, or 1 for the deepest layer.
    patch_sparsity : int
        :math:`\|\Gamma_i\|^p_{0,\infty}` with windows of side ``patch_w``.
    n_nonzero : int
        Number of non-zeros of :math:`\Gamma_i`.
    min_magnitude, max_magnitude : float
        :math:`|\Gamma_i^{\min}|`, :math:`|\Gamma_i^{\max}|` over the non-zeros.
    contrast : float
        ``min_magnitude / max_magnitude``.
    """

    layer: int
    stripe_n: tuple[int, ...]
    stripe_sparsity: int
    patch_w: tuple[int, ...]
    patch_sparsity: int
    n_nonzero: int
    min_magnitude: float
    max_magnitude: float
    contrast: float


@dataclass(frozen=True, eq=False)
class PlantedInstance:
    r"""A planted ML-CSC signal :math:`y = X + E` with its codes and achieved measures.

    All arrays are read-only and have the model's dtype.

    Attributes
    ----------
    model : MLCSC
    codes : tuple of ndarray
        :math:`(\Gamma_1, \dots, \Gamma_K)`, deepest last, shapes ``(m_i, *S)``.
    signal : ndarray
        :math:`X = \Gamma_0 = D_1\Gamma_1`, shape ``(m_0, *S)``.
    noise : ndarray
        :math:`E` (zeros when noiseless).
    y : ndarray
        :math:`X + E`.
    layers : tuple of LayerReport
        One report per layer ``1..K``.
    noise_patch : float
        :math:`\varepsilon_0 = \|E\|^p_{2,\infty}` with patches of side :math:`n_1`.
    noise_l2 : float
        :math:`\|E\|_2`.
    snr_db : float
        :math:`10\log_{10}(\|X\|_2^2/\|E\|_2^2)` (``inf`` when noiseless).
    """

    model: MLCSC
    codes: tuple[np.ndarray, ...]
    signal: np.ndarray
    noise: np.ndarray
    y: np.ndarray
    layers: tuple[LayerReport, ...]
    noise_patch: float
    noise_l2: float
    snr_db: float

    @property
    def deepest(self) -> np.ndarray:
        r""":math:`\Gamma_K`."""
        return self.codes[-1]

    @property
    def stripe_sparsity(self) -> tuple[int, ...]:
        r""":math:`(\|\Gamma_1\|^s_{0,\infty}, \dots, \|\Gamma_K\|^s_{0,\infty})`."""
        return tuple(report.stripe_sparsity for report in self.layers)


def _size_arg(size: tuple[int, ...]):
    """A kernel size as the measures expect it: an int in 1-D, a pair in 2-D."""
    return size[0] if len(size) == 1 else size


def _box_sum(array: np.ndarray, radius: tuple[int, int]) -> np.ndarray:
    """Periodic sums over the boxes of side ``2r+1`` centred at every position of a 2-D array."""
    for axis, r in enumerate(radius):
        if r:
            rows = np.moveaxis(array, axis, -1)
            wrapped = np.concatenate((rows[..., -r:], rows, rows[..., :r]), axis=-1)
            total = np.zeros((*wrapped.shape[:-1], wrapped.shape[-1] + 1), dtype=np.int64)
            np.cumsum(wrapped, axis=-1, out=total[..., 1:])
            array = np.moveaxis(total[..., 2 * r + 1 :] - total[..., : -2 * r - 1], -1, axis)
    return array


def _place(m: int, grid: tuple[int, int], radius: tuple[int, int], k: int,
           n_nonzero: int | None, rng: np.random.Generator) -> np.ndarray:
    r"""Support of :math:`\Gamma_K`: a boolean ``(m, H, W)`` array of stripe sparsity exactly ``k``.

    ``radius`` is :math:`n_K - 1` per axis (0 on the dummy axis of 1-D signals), so the stripe
    centred at ``x`` is the box ``x - radius .. x + radius``.

    Choosing each new non-zero uniformly among the admissible slots is the same as scanning a
    random permutation of all slots and keeping each slot that is admissible when reached, because
    a slot never becomes admissible again. The scan goes in chunks of :data:`CHUNK` admissible
    slots. Two slots share a stripe iff they are at most ``2 * radius`` apart (periodically) on
    every axis; a slot of the chunk that shares no stripe with an earlier slot of the chunk is
    decided by the current counts alone, so all such slots are accepted at once, exactly as the
    one-by-one scan would accept them (with fewer than :data:`CHUNK` non-zeros left to place,
    only the prefix before the first shared stripe, to respect the order). The scan resumes at
    the first slot of the chunk that shares a stripe with an earlier one.
    """
    height, width = grid
    side = (2 * radius[0] + 1, 2 * radius[1] + 1)
    support = np.zeros((m, height, width), dtype=bool)
    slots = rng.choice(m * side[0] * side[1], size=k, replace=False)
    channel, dy, dx = np.unravel_index(slots, (m, *side))
    y0, x0 = rng.integers(height), rng.integers(width)
    support[channel, (y0 + dy) % height, (x0 + dx) % width] = True
    order = rng.permutation(m * height * width)
    position = order % (height * width)
    order_y, order_x = np.divmod(position, width)
    budget = (m * height * width if n_nonzero is None else n_nonzero) - k
    flat = support.reshape(-1)
    start = 0
    while budget > 0:
        full = _box_sum(support.sum(axis=0), radius) >= k
        blocked = _box_sum(full.astype(np.int64), radius) > 0
        rest = order[start:]
        admissible = np.flatnonzero(~flat[rest] & ~blocked.reshape(-1)[position[start:]])
        if admissible.size == 0:
            break
        chunk = start + admissible[:CHUNK]
        gap_y = np.abs(order_y[chunk][:, None] - order_y[chunk][None, :])
        gap_x = np.abs(order_x[chunk][:, None] - order_x[chunk][None, :])
        near = ((np.minimum(gap_y, height - gap_y) <= 2 * radius[0])
                & (np.minimum(gap_x, width - gap_x) <= 2 * radius[1]))
        clash = np.tril(near, -1).any(axis=1)
        first = int(np.argmax(clash)) if clash.any() else chunk.size
        take = chunk[~clash] if budget >= chunk.size else chunk[: min(first, budget)]
        flat[order[take]] = True
        budget -= take.size
        start = chunk[first] if first < chunk.size else chunk[-1] + 1
    return support


def _report(layer: int, codes: np.ndarray, n: tuple[int, ...], w: tuple[int, ...]) -> LayerReport:
    low, high = extreme_magnitudes(codes)
    return LayerReport(
        layer=layer,
        stripe_n=n,
        stripe_sparsity=int(stripe_l0_inf(codes, _size_arg(n))),
        patch_w=w,
        patch_sparsity=int(patch_l0_inf(codes, _size_arg(w))),
        n_nonzero=int(np.count_nonzero(codes)),
        min_magnitude=low,
        max_magnitude=high,
        contrast=low / high,
    )


def _nonnegative_finite(name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _noise(signal: np.ndarray, n1: tuple[int, ...], rng: np.random.Generator,
           noise_patch, noise_l2, snr_db) -> np.ndarray:
    """Gaussian noise rescaled to exactly one prescribed level (zeros when none is given)."""
    given = {name: value for name, value in
             (("noise_patch", noise_patch), ("noise_l2", noise_l2), ("snr_db", snr_db))
             if value is not None}
    if len(given) > 1:
        raise ValueError(f"give at most one of noise_patch, noise_l2, snr_db; got {sorted(given)}")
    if not given:
        return np.zeros_like(signal)
    (name, value), = given.items()
    value = _nonnegative_finite(name, value)
    gaussian = rng.standard_normal(signal.shape)
    if name == "snr_db":
        energy = float(np.linalg.norm(signal.astype(np.float64)))
        if energy == 0:
            raise ValueError("snr_db is undefined: the signal X is identically zero")
        target, current = energy * 10.0 ** (-value / 20.0), float(np.linalg.norm(gaussian))
    elif value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    elif name == "noise_l2":
        target, current = value, float(np.linalg.norm(gaussian))
    else:
        target, current = value, float(patch_l2_inf(gaussian, _size_arg(n1)))
    return (gaussian * (target / current)).astype(signal.dtype)


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


def sample_instance(
    model: MLCSC,
    spatial_shape,
    rng,
    *,
    k: int | None = None,
    n_nonzero: int | None = None,
    amplitude: float | None = None,
    contrast: float | None = None,
    nonneg: bool | None = None,
    deepest=None,
    noise_patch: float | None = None,
    noise_l2: float | None = None,
    snr_db: float | None = None,
    engine: str = "auto",
) -> PlantedInstance:
    r"""Draw a planted ML-CSC instance :math:`y = D_1 \cdots D_K \Gamma_K + E`.

    Parameters
    ----------
    model : MLCSC
        The dictionaries :math:`D_1, \dots, D_K` (use unit atoms for the theorems).
    spatial_shape : int or (int, int)
        Signal size ``N`` (1-D) or ``(H, W)`` (2-D); every axis must be at least
        :math:`2n_i - 1` for every layer, so that stripes do not wrap onto themselves.
    rng : numpy.random.Generator or int
        Randomness; the same seed gives the same instance.
    k : int
        Stripe sparsity :math:`\|\Gamma_K\|^s_{0,\infty}` to hit exactly,
        ``1 <= k <= m_K * prod(2 n_K - 1)``. Required unless ``deepest`` is given.
    n_nonzero : int, optional
        Total non-zeros of :math:`\Gamma_K` (``>= k``). Default: add non-zeros until no stripe
        can take another (saturation); fewer are placed if saturation comes first.
    amplitude : float, optional
        :math:`a > 0`: magnitudes are uniform in :math:`[\text{contrast}\cdot a, a]`. Default 1.
    contrast : float, optional
        In ``(0, 1]``; a lower bound on the contrast of :math:`\Gamma_K`. Default 1 (all
        magnitudes equal to ``a``).
    nonneg : bool, optional
        Non-negative :math:`\Gamma_K` (default: random signs).
    deepest : array_like, shape ``(m_K, *S)``, optional
        A given :math:`\Gamma_K` (model dtype) instead of a random one; then ``k``,
        ``n_nonzero``, ``amplitude``, ``contrast`` and ``nonneg`` must not be given.
    noise_patch, noise_l2, snr_db : float, optional
        At most one: Gaussian noise rescaled so that :math:`\|E\|^p_{2,\infty} = \varepsilon_0`
        (patches of side :math:`n_1`), :math:`\|E\|_2 = E_0`, or
        :math:`10\log_{10}(\|X\|^2/\|E\|^2) =` ``snr_db``. None: noiseless. The levels are met to
        rounding in float64 (about 1e-7 relative for a float32 model, whose noise is cast).
    engine : {"auto", "numpy", "cpu"}
        Engine of the synthesis.

    Returns
    -------
    PlantedInstance
    """
    if not isinstance(model, MLCSC):
        raise TypeError(f"model must be an MLCSC, got {type(model).__name__}")
    check_engine(engine)
    spatial = window_shape("spatial_shape", spatial_shape, model.spatial_ndim)
    for i, layer in enumerate(model.layers, start=1):
        too_small = [s for s, n in zip(spatial, layer.kernel_size, strict=True) if s < 2 * n - 1]
        if too_small:
            raise ValueError(
                f"spatial_shape {spatial} is smaller than the stripe side 2n - 1 of D{i} "
                f"(n = {layer.kernel_size}) on some axis"
            )
    generator = as_generator(rng)
    last = model.layers[-1]
    shape = (last.n_atoms, *spatial)
    random_options = {"k": k, "n_nonzero": n_nonzero, "amplitude": amplitude,
                      "contrast": contrast, "nonneg": nonneg}
    if deepest is not None:
        clash = sorted(name for name, value in random_options.items() if value is not None)
        if clash:
            raise ValueError(f"deepest is given: {clash} describe a random Γ_K and must not be")
        gamma = as_float_array("deepest", deepest, dtype=model.dtype)
        if gamma.shape != shape:
            raise ValueError(f"deepest must have shape {shape} (m_K, *spatial_shape), "
                             f"got {gamma.shape}")
        check_finite("deepest", gamma)
        if not np.any(gamma):
            raise ValueError("deepest has no non-zero entry")
        gamma = gamma.copy()
    else:
        gamma = _random_deepest(shape, last.kernel_size, generator, k, n_nonzero,
                                amplitude, contrast, nonneg).astype(model.dtype)
    layers = model.synthesize(gamma, engine=engine)
    codes = layers[1:]
    sizes = [layer.kernel_size for layer in model.layers]
    reports = []
    for i, code in enumerate(codes, start=1):
        if not np.any(code):
            raise ValueError(f"Γ_{i} is identically zero for this deepest code")
        window = sizes[i] if i < len(sizes) else (1,) * model.spatial_ndim
        reports.append(_report(i, code, sizes[i - 1], window))
    signal = layers[0]
    noise = _noise(signal, sizes[0], generator, noise_patch, noise_l2, snr_db)
    noise64, signal64 = noise.astype(np.float64), signal.astype(np.float64)
    noise_energy = float(np.sum(noise64**2))
    snr = (math.inf if noise_energy == 0
           else 10.0 * math.log10(float(np.sum(signal64**2)) / noise_energy))
    return PlantedInstance(
        model=model,
        codes=tuple(_frozen(code) for code in codes),
        signal=_frozen(signal),
        noise=_frozen(noise),
        y=_frozen(signal + noise),
        layers=tuple(reports),
        noise_patch=float(patch_l2_inf(noise, _size_arg(sizes[0]))),
        noise_l2=math.sqrt(noise_energy),
        snr_db=snr,
    )


def _random_deepest(shape: tuple[int, ...], n: tuple[int, ...], rng: np.random.Generator,
                    k, n_nonzero, amplitude, contrast, nonneg) -> np.ndarray:
    r"""Random :math:`\Gamma_K` (float64) with stripe sparsity exactly ``k``."""
    if k is None:
        raise ValueError("k (the stripe sparsity of Γ_K) is required unless deepest is given")
    m = shape[0]
    side = math.prod(2 * s - 1 for s in n)
    k = check_positive_int("k", k)
    if k > m * side:
        raise ValueError(f"k must be <= m_K * prod(2 n_K - 1) = {m * side} (a full stripe), "
                         f"got {k}")
    if n_nonzero is not None:
        n_nonzero = check_positive_int("n_nonzero", n_nonzero)
        if n_nonzero < k:
            raise ValueError(f"n_nonzero must be >= k = {k}, got {n_nonzero}")
    amplitude = 1.0 if amplitude is None else _nonnegative_finite("amplitude", amplitude)
    if amplitude <= 0:
        raise ValueError(f"amplitude must be > 0, got {amplitude}")
    contrast = 1.0 if contrast is None else _nonnegative_finite("contrast", contrast)
    if not 0 < contrast <= 1:
        raise ValueError(f"contrast must be in (0, 1], got {contrast}")
    if nonneg is None:
        nonneg = False
    if not isinstance(nonneg, (bool, np.bool_)):
        raise TypeError(f"nonneg must be a bool, got {type(nonneg).__name__}")
    grid = (1, *shape[1:]) if len(n) == 1 else shape[1:]
    radius = (0, n[0] - 1) if len(n) == 1 else (n[0] - 1, n[1] - 1)
    support = _place(m, grid, radius, k, n_nonzero, rng).reshape(shape)
    count = int(support.sum())
    magnitudes = rng.uniform(contrast * amplitude, amplitude, size=count)
    if not nonneg:
        magnitudes *= rng.choice((-1.0, 1.0), size=count)
    gamma = np.zeros(shape)
    gamma[support] = magnitudes
    return gamma
