"""The local measures of THEORY.md §2 against brute-force loops over periodic windows."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlverify import (
    ConvDictionary,
    coherence_lower_bound,
    contrast,
    extreme_magnitudes,
    patch_l0_inf,
    patch_l2_inf,
    stripe_l0_inf,
)


@st.composite
def measure_cases(draw, *, stripe: bool):
    """``(array (*batch, channels, *S), size, sides)``: ``size`` is the int/pair the measure takes,
    ``sides`` the window side per axis (``2n − 1`` for a stripe, ``w`` for a patch)."""
    ndim = draw(st.sampled_from([1, 2]))
    sizes = tuple(draw(st.integers(1, 4 if ndim == 1 else 3)) for _ in range(ndim))
    sides = tuple(2 * s - 1 for s in sizes) if stripe else sizes
    spatial = tuple(draw(st.integers(s, s + (6 if ndim == 1 else 3))) for s in sides)
    channels = draw(st.integers(1, 3))
    batch = draw(st.sampled_from([(), (2,), (2, 3)]))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    density = draw(st.sampled_from([0.0, 0.1, 0.3, 1.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (*batch, channels, *spatial)
    array = (rng.standard_normal(shape) * (rng.random(shape) < density)).astype(dtype)
    return array, (sizes[0] if ndim == 1 else sizes), sides


def brute_force(array: np.ndarray, offsets: list[range], value) -> np.ndarray:
    """Per batch element: max over positions x of Σ over channels and offsets o of
    ``value(array[..., ch, (x + o) mod N])``, by explicit loops."""
    d = len(offsets)
    batch, channels, spatial = array.shape[: -d - 1], array.shape[-d - 1], array.shape[-d:]
    out = np.zeros(batch)
    for b in np.ndindex(*batch):
        best = 0.0
        for x in np.ndindex(*spatial):
            total = 0.0
            for o in itertools.product(*offsets):
                position = tuple((xi + oi) % ni for xi, oi, ni in zip(x, o, spatial, strict=True))
                for ch in range(channels):
                    total += value(float(array[(*b, ch, *position)]))
            best = max(best, total)
        out[b] = best
    return out


def stripe_offsets(sizes) -> list[range]:
    """The stripe centred at x: positions x − n + 1 … x + n − 1 (THEORY.md §2)."""
    return [range(-(n - 1), n) for n in np.atleast_1d(sizes)]


def patch_offsets(sizes) -> list[range]:
    """The patch starting at x: positions x … x + w − 1."""
    return [range(w) for w in np.atleast_1d(sizes)]


def batch_shape(array: np.ndarray, sides) -> tuple[int, ...]:
    return array.shape[: -len(sides) - 1]


def per_element(array: np.ndarray, sides, reduce) -> np.ndarray:
    """``reduce`` over the channel and spatial axes, one value per batch element."""
    return reduce(array, axis=tuple(range(-len(sides) - 1, 0)))


def energy(v: np.ndarray) -> np.ndarray:
    """Squares in float64 (the measures compute in float64)."""
    return v.astype(np.float64) ** 2


@given(measure_cases(stripe=True))
def test_stripe_l0_inf_brute_force(case):
    codes, n, sides = case
    got = stripe_l0_inf(codes, n)
    assert np.shape(got) == batch_shape(codes, sides)
    np.testing.assert_array_equal(got, brute_force(codes, stripe_offsets(n), lambda v: v != 0))


@given(measure_cases(stripe=False))
def test_patch_l0_inf_brute_force(case):
    codes, w, sides = case
    got = patch_l0_inf(codes, w)
    assert np.shape(got) == batch_shape(codes, sides)
    np.testing.assert_array_equal(got, brute_force(codes, patch_offsets(w), lambda v: v != 0))


@given(measure_cases(stripe=False))
def test_patch_l2_inf_brute_force(case):
    v, w, sides = case
    got = patch_l2_inf(v, w)
    assert np.shape(got) == batch_shape(v, sides)
    want = np.sqrt(brute_force(v, patch_offsets(w), lambda x: x * x))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)


@given(measure_cases(stripe=True), st.integers(0, 2**32 - 1))
def test_stripe_l0_inf_is_subadditive(case, seed):
    """‖a + b‖^s_{0,∞} <= ‖a‖^s_{0,∞} + ‖b‖^s_{0,∞} (THEORY.md §2)."""
    a, n, _ = case
    rng = np.random.default_rng(seed)
    b = (rng.standard_normal(a.shape) * (rng.random(a.shape) < 0.3)).astype(a.dtype)
    if rng.random() < 0.5:  # cancellations: b shares part of a's support with opposite sign
        b = np.where(rng.random(a.shape) < 0.5, -a, b)
    assert np.all(stripe_l0_inf(a + b, n) <= stripe_l0_inf(a, n) + stripe_l0_inf(b, n))


@given(measure_cases(stripe=False))
def test_norm_ordering(case):
    """‖v‖_∞ <= ‖v‖^p_{2,∞} <= ‖v‖_2 per batch element (THEORY.md §2)."""
    v, w, sides = case
    middle = patch_l2_inf(v, w)
    low = per_element(np.abs(v), sides, np.max)
    high = np.sqrt(per_element(energy(v), sides, np.sum))
    assert np.all(low <= middle * (1 + 1e-12))
    assert np.all(middle <= high * (1 + 1e-12))


@given(measure_cases(stripe=False))
def test_whole_signal_window(case):
    """A window covering the whole signal counts every non-zero and has the full ℓ2 norm."""
    v, _, sides = case
    spatial = v.shape[-len(sides):]
    whole = spatial[0] if len(spatial) == 1 else spatial
    np.testing.assert_array_equal(patch_l0_inf(v, whole), per_element(v != 0, sides, np.sum))
    np.testing.assert_allclose(patch_l2_inf(v, whole),
                               np.sqrt(per_element(energy(v), sides, np.sum)), rtol=1e-12)


def test_stripe_uses_side_2n_minus_1():
    """Two non-zeros 2n − 2 apart share a stripe, 2n − 1 apart (N = 4n) they do not."""
    n = 3
    codes = np.zeros((1, 12))
    codes[0, [0, 4]] = 1.0
    assert stripe_l0_inf(codes, n) == 2
    assert patch_l0_inf(codes, n) == 1
    codes = np.zeros((2, 12))
    codes[0, 0], codes[1, 5] = 1.0, -2.0
    assert stripe_l0_inf(codes, n) == 1
    image = np.zeros((1, 5, 5))
    image[0, 0, 0] = image[0, 4, 4] = 1.0  # diagonal neighbours through the periodic corner
    assert stripe_l0_inf(image, (2, 2)) == 2
    assert patch_l0_inf(image, (2, 2)) == 2


@given(measure_cases(stripe=False))
def test_extreme_magnitudes_and_contrast(case):
    v, _, _ = case
    magnitudes = np.abs(v[v != 0]).astype(np.float64)
    if magnitudes.size == 0:
        with pytest.raises(ValueError, match="codes"):
            extreme_magnitudes(v)
        return
    assert extreme_magnitudes(v) == (magnitudes.min(), magnitudes.max())
    assert contrast(v) == magnitudes.min() / magnitudes.max()
    assert 0 < contrast(v) <= 1


@pytest.mark.parametrize(("m", "n", "c"), [(1, 3, 1), (2, 1, 1), (5, 4, 1), (8, 7, 1), (3, 2, 2),
                                           (7, 5, 3), (2, 6, 2), (4, 3, 4)])
def test_coherence_lower_bound_formula(m, n, c):
    """THEORY.md §2: sqrt((m − c)/(c((2n − 1)m − 1))), 0 when m <= c; c = 1 gives the
    single-channel sqrt((m − 1)/(m(2n − 1) − 1))."""
    want = math.sqrt((m - c) / (c * ((2 * n - 1) * m - 1))) if m > c else 0.0
    assert coherence_lower_bound(m, n, c) == pytest.approx(want, rel=1e-15, abs=0)
    if c == 1:
        single = math.sqrt((m - 1) / (m * (2 * n - 1) - 1)) if m * (2 * n - 1) > 1 else 0.0
        assert coherence_lower_bound(m, n) == pytest.approx(single, rel=1e-15, abs=0)


def test_coherence_lower_bound_2d_uses_product_of_sides():
    m, c, n = 6, 2, (3, 2)
    shifts = 5 * 3
    assert coherence_lower_bound(m, n, c) == pytest.approx(
        math.sqrt((m - c) / (c * (shifts * m - 1))), rel=1e-15)


def test_single_channel_bound_is_false_for_several_channels():
    """THEORY.md §2 counterexample family: with m <= c atoms on disjoint channels μ = 0 is reached,
    below the single-channel formula; the multi-channel bound (0) still holds."""
    m = c = 2
    n = 6
    filters = np.zeros((m, c, n))
    filters[0, 0, 2] = filters[1, 1, 4] = 1.0
    mu = ConvDictionary(filters).coherence()
    assert mu < 1e-12  # zero up to the FFT rounding of local_gram
    assert math.sqrt((m - 1) / (m * (2 * n - 1) - 1)) > mu
    assert coherence_lower_bound(m, n, c) <= mu
