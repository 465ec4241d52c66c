"""Planted ML-CSC instances (THEORY.md §1, §2, §5)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlverify import (
    MLCSC,
    extreme_magnitudes,
    patch_l0_inf,
    patch_l2_inf,
    stripe_l0_inf,
)
from mlverify.model.constructions import (
    barker13,
    golomb_filters,
    random_filters,
    sparse_filters,
)
from mlverify.model.sampler import LayerReport, PlantedInstance, _place, sample_instance

SEEDS = st.integers(0, 2**32 - 1)


def theory_model(dtype=np.float64) -> MLCSC:
    """THEORY.md §5: Barker-13 D_1 and the Golomb D_2."""
    return MLCSC([barker13(dtype), golomb_filters(dtype=dtype)])


def image_model() -> MLCSC:
    return MLCSC([random_filters(2, 1, (3, 3), 0), sparse_filters(3, 2, (2, 3), 2, 1)])


def naive_place(m, grid, radius, k, n_nonzero, seed):
    """Oracle: the same random draws, then a one-by-one scan with a full stripe recount."""
    rng = np.random.default_rng(seed)
    height, width = grid
    side = (2 * radius[0] + 1, 2 * radius[1] + 1)
    support = np.zeros((m, height, width))
    slots = rng.choice(m * side[0] * side[1], size=k, replace=False)
    channel, dy, dx = np.unravel_index(slots, (m, *side))
    y0, x0 = rng.integers(height), rng.integers(width)
    support[channel, (y0 + dy) % height, (x0 + dx) % width] = 1.0
    flat = support.reshape(-1)
    n = (radius[0] + 1, radius[1] + 1)
    count = k
    for slot in rng.permutation(flat.size):
        if n_nonzero is not None and count == n_nonzero:
            break
        if flat[slot]:
            continue
        flat[slot] = 1.0
        if stripe_l0_inf(support, n) > k:
            flat[slot] = 0.0
        else:
            count += 1
    return support != 0


@given(
    m=st.integers(1, 3),
    two_d=st.booleans(),
    data=st.data(),
)
def test_placement_matches_one_by_one_scan(m, two_d, data):
    """The chunked vectorised scan is exactly the sequential random scan (same draws)."""
    r = (data.draw(st.integers(0, 2)) if two_d else 0, data.draw(st.integers(0, 3)))
    grid = (data.draw(st.integers(2 * r[0] + 1, 2 * r[0] + 5)) if two_d else 1,
            data.draw(st.integers(2 * r[1] + 1, 2 * r[1] + 12)))
    k = data.draw(st.integers(1, m * (2 * r[0] + 1) * (2 * r[1] + 1)))
    n_nonzero = data.draw(st.one_of(st.none(), st.integers(k, k + 20)))
    seed = data.draw(SEEDS)
    fast = _place(m, grid, r, k, n_nonzero, np.random.default_rng(seed))
    np.testing.assert_array_equal(fast, naive_place(m, grid, r, k, n_nonzero, seed))


@pytest.mark.parametrize("seed", range(6))
def test_placement_with_small_budget_keeps_scan_order(seed):
    """A budget smaller than a chunk: the first admissible slots in scan order are the ones kept."""
    for grid, radius, k in (((1, 40), (0, 2), 1), ((9, 9), (1, 1), 2)):
        for budget in (2, 3, 5):
            fast = _place(2, grid, radius, k, k + budget, np.random.default_rng(seed))
            np.testing.assert_array_equal(fast, naive_place(2, grid, radius, k, k + budget, seed))


def assert_saturated(gamma: np.ndarray, n, k: int) -> None:
    """No zero of gamma can become non-zero without a stripe exceeding k."""
    flat = gamma.reshape(-1).copy()
    for slot in np.flatnonzero(flat == 0):
        flat[slot] = 1.0
        assert stripe_l0_inf(flat.reshape(gamma.shape), n) > k
        flat[slot] = 0.0


@given(
    m=st.integers(1, 3),
    n=st.integers(1, 6),
    extra=st.integers(0, 20),
    amplitude=st.floats(0.1, 10.0),
    contrast=st.floats(0.05, 1.0),
    nonneg=st.booleans(),
    seed=SEEDS,
    data=st.data(),
)
def test_deepest_layer_hits_k_1d(m, n, extra, amplitude, contrast, nonneg, seed, data):
    k = data.draw(st.integers(1, m * (2 * n - 1)))
    N = 2 * n - 1 + extra
    model = MLCSC([random_filters(m, 1, n, seed)])
    inst = sample_instance(model, N, seed, k=k, amplitude=amplitude, contrast=contrast,
                           nonneg=nonneg, engine="numpy")
    gamma = inst.deepest
    assert gamma.shape == (m, N)
    assert stripe_l0_inf(gamma, n) == k
    assert inst.layers[-1].stripe_sparsity == k
    low, high = extreme_magnitudes(gamma)
    assert contrast * amplitude <= low and high <= amplitude
    assert low / high >= contrast * (1 - 1e-12)
    if nonneg:
        assert (gamma >= 0).all()
    assert_saturated(gamma, n, k)


@given(seed=SEEDS, data=st.data())
def test_deepest_layer_hits_k_2d(seed, data):
    model = image_model()
    m, n = 3, (2, 3)
    k = data.draw(st.integers(1, m * 3 * 5))
    shape = (data.draw(st.integers(5, 9)), data.draw(st.integers(5, 9)))
    inst = sample_instance(model, shape, seed, k=k, engine="numpy")
    assert inst.deepest.shape == (m, *shape)
    assert stripe_l0_inf(inst.deepest, n) == k
    assert inst.layers[-1].stripe_sparsity == k
    assert inst.signal.shape == (1, *shape)
    assert_saturated(inst.deepest, n, k)


@given(seed=SEEDS, data=st.data())
def test_n_nonzero_is_met_or_saturated(seed, data):
    model = theory_model()
    k = data.draw(st.integers(1, 4))
    n_nonzero = data.draw(st.integers(k, 40))
    gamma = sample_instance(model, 64, seed, k=k, n_nonzero=n_nonzero, engine="numpy").deepest
    assert stripe_l0_inf(gamma, 7) == k
    count = np.count_nonzero(gamma)
    assert count <= n_nonzero
    if count < n_nonzero:
        assert_saturated(gamma, 7, k)


@given(seed=SEEDS, k=st.integers(1, 4), contrast=st.floats(0.1, 1.0))
def test_layers_and_reports(seed, k, contrast):
    """Γ_{i-1} = D_i Γ_i (dense oracle); every report equals the measures with THEORY's windows."""
    model = theory_model()
    inst = sample_instance(model, 40, seed, k=k, contrast=contrast, engine="numpy")
    assert isinstance(inst, PlantedInstance)
    assert len(inst.codes) == 2 and len(inst.layers) == 2
    D1, D2 = model.layers
    np.testing.assert_allclose(inst.codes[0].ravel(), D2.to_dense(40) @ inst.codes[1].ravel(),
                               atol=1e-12)
    np.testing.assert_allclose(inst.signal.ravel(), D1.to_dense(40) @ inst.codes[0].ravel(),
                               atol=1e-12)
    np.testing.assert_array_equal(inst.y, inst.signal)
    assert not inst.noise.any()
    assert inst.noise_patch == 0.0 and inst.noise_l2 == 0.0 and inst.snr_db == math.inf
    windows = [((13,), (7,)), ((7,), (1,))]
    for i, (report, code, (n, w)) in enumerate(zip(inst.layers, inst.codes, windows, strict=True),
                                               start=1):
        assert isinstance(report, LayerReport)
        assert report.layer == i and report.stripe_n == n and report.patch_w == w
        assert report.stripe_sparsity == stripe_l0_inf(code, n[0])
        assert report.patch_sparsity == patch_l0_inf(code, w[0])
        assert report.n_nonzero == np.count_nonzero(code)
        low, high = extreme_magnitudes(code)
        assert (report.min_magnitude, report.max_magnitude) == (low, high)
        assert report.contrast == low / high
    assert inst.stripe_sparsity == (inst.layers[0].stripe_sparsity, k)
    # Golomb D_2: isolated spikes give 4 non-zeros per atom placed (THEORY.md §5).
    if k == 1:
        assert inst.layers[0].patch_sparsity <= 4
    assert inst.layers[-1].contrast >= contrast


@pytest.mark.parametrize("two_d", [False, True])
@given(level=st.floats(1e-3, 10.0), seed=SEEDS)
def test_noise_levels_are_exact(two_d, level, seed):
    model, shape, n1 = (image_model(), (7, 8), (3, 3)) if two_d else (theory_model(), 50, 13)
    patch = sample_instance(model, shape, seed, k=2, noise_patch=level, engine="numpy")
    assert abs(patch_l2_inf(patch.noise, n1) - level) <= 1e-10 * level
    assert abs(patch.noise_patch - level) <= 1e-10 * level
    l2 = sample_instance(model, shape, seed, k=2, noise_l2=level, engine="numpy")
    assert abs(np.linalg.norm(l2.noise) - level) <= 1e-10 * level
    assert abs(l2.noise_l2 - level) <= 1e-10 * level
    snr = 40 * level - 20
    tagged = sample_instance(model, shape, seed, k=2, snr_db=snr, engine="numpy")
    measured = 10 * math.log10(np.sum(tagged.signal**2) / np.sum(tagged.noise**2))
    assert abs(measured - snr) <= 1e-10 * max(1.0, abs(snr))
    assert abs(tagged.snr_db - snr) <= 1e-10 * max(1.0, abs(snr))
    for inst in (patch, l2, tagged):
        np.testing.assert_array_equal(inst.y, inst.signal + inst.noise)
        assert inst.noise_l2 == pytest.approx(np.linalg.norm(inst.noise), rel=1e-12)
        assert inst.noise_patch == pytest.approx(patch_l2_inf(inst.noise, n1), rel=1e-12)
    # Same seed, same Γ: the noise is drawn after the codes.
    np.testing.assert_array_equal(patch.deepest, l2.deepest)


def test_same_seed_same_instance():
    model = theory_model()
    a = sample_instance(model, 128, 5, k=3, contrast=0.3, noise_patch=0.1)
    b = sample_instance(model, 128, np.random.default_rng(5), k=3, contrast=0.3, noise_patch=0.1)
    c = sample_instance(model, 128, 6, k=3, contrast=0.3, noise_patch=0.1)
    for name in ("signal", "noise", "y"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for x, y in zip(a.codes, b.codes, strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.layers == b.layers
    assert not np.array_equal(a.y, c.y)


def test_engines_agree_and_arrays_are_read_only():
    model = image_model()
    a = sample_instance(model, (12, 12), 3, k=4, snr_db=10.0, engine="cpu")
    b = sample_instance(model, (12, 12), 3, k=4, snr_db=10.0, engine="numpy")
    np.testing.assert_array_equal(a.deepest, b.deepest)
    np.testing.assert_allclose(a.y, b.y, atol=1e-12)
    for array in (*a.codes, a.signal, a.noise, a.y):
        assert not array.flags.writeable


def test_float32_model():
    model = theory_model(np.float32)
    inst = sample_instance(model, 64, 0, k=3, contrast=0.5, noise_patch=0.05)
    for array in (*inst.codes, inst.signal, inst.noise, inst.y):
        assert array.dtype == np.float32
    assert inst.layers[-1].stripe_sparsity == 3
    assert abs(inst.noise_patch - 0.05) <= 1e-6
    assert inst.layers[-1].contrast >= 0.5 * (1 - 1e-6)


def test_given_deepest():
    model = theory_model()
    gamma = np.zeros((2, 64))
    gamma[0, 3] = 2.0
    gamma[1, 35] = -1.0
    inst = sample_instance(model, 64, 0, deepest=gamma, noise_l2=0.5)
    np.testing.assert_array_equal(inst.deepest, gamma)
    assert inst.layers[-1].stripe_sparsity == 1
    assert inst.layers[-1].contrast == 0.5
    assert inst.layers[0].stripe_sparsity == 4  # one Golomb atom: 4 spikes within 13
    assert abs(inst.noise_l2 - 0.5) <= 1e-12


def test_planted_stripe_is_full_for_large_k():
    """k = m_K (2n_K - 1): the planted stripe is full and no other non-zero fits beside it."""
    model = theory_model()
    inst = sample_instance(model, 64, 1, k=2 * 13)
    assert inst.layers[-1].stripe_sparsity == 26


@pytest.mark.parametrize(
    ("kwargs", "error", "word"),
    [
        ({}, ValueError, "k"),
        ({"k": 0}, ValueError, "k"),
        ({"k": 27}, ValueError, "k"),
        ({"k": 1.5}, TypeError, "k"),
        ({"k": 3, "n_nonzero": 2}, ValueError, "n_nonzero"),
        ({"k": 1, "contrast": 0.0}, ValueError, "contrast"),
        ({"k": 1, "contrast": 1.5}, ValueError, "contrast"),
        ({"k": 1, "amplitude": -1.0}, ValueError, "amplitude"),
        ({"k": 1, "amplitude": math.nan}, ValueError, "amplitude"),
        ({"k": 1, "amplitude": "big"}, TypeError, "amplitude"),
        ({"k": 1, "nonneg": 1}, TypeError, "nonneg"),
        ({"k": 1, "noise_patch": 0.1, "noise_l2": 0.1}, ValueError, "at most one"),
        ({"k": 1, "noise_l2": -0.1}, ValueError, "noise_l2"),
        ({"k": 1, "snr_db": math.inf}, ValueError, "snr_db"),
        ({"k": 1, "deepest": np.ones((2, 64))}, ValueError, "deepest"),
        ({"deepest": np.zeros((2, 64))}, ValueError, "deepest"),
        ({"deepest": np.ones((2, 63))}, ValueError, "deepest"),
        ({"deepest": np.ones((2, 64), np.float32)}, TypeError, "deepest"),
        ({"deepest": np.full((2, 64), np.nan)}, ValueError, "deepest"),
        ({"k": 1, "engine": "gpu"}, ValueError, "engine"),
    ],
)
def test_bad_input_raises(kwargs, error, word):
    with pytest.raises(error, match=word):
        sample_instance(theory_model(), 64, 0, **kwargs)


def test_bad_model_shape_or_rng():
    with pytest.raises(TypeError, match="model"):
        sample_instance([barker13()], 64, 0, k=1)
    with pytest.raises(ValueError, match="spatial_shape"):
        sample_instance(theory_model(), 24, 0, k=1)
    with pytest.raises(ValueError, match="spatial_shape"):
        sample_instance(theory_model(), (64, 64), 0, k=1)
    with pytest.raises(TypeError, match="rng"):
        sample_instance(theory_model(), 64, None, k=1)
