"""Constructions of low-coherence dictionaries (THEORY.md §2, §5)."""

import math
from functools import lru_cache
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlverify import ConvDictionary, coherence_lower_bound
from mlverify.model.constructions import (
    BARKER13,
    LowCoherenceFilters,
    _lbfgs,
    _SmoothCoherence,
    barker13,
    golomb_filters,
    low_coherence_filters,
    random_filters,
    sparse_filters,
)

# Golomb rulers (optimal ones up to 5 marks, and non-optimal ones) to draw from.
RULERS = [(0,), (0, 1), (0, 1, 3), (0, 2, 3), (0, 1, 4, 6), (0, 1, 4, 9, 11), (0, 2, 7, 8, 11),
          (0, 3, 4, 9), (0, 1, 5)]


def dense_coherence(D: ConvDictionary, N) -> float:
    """Oracle: largest off-diagonal entry of the global Gram of the normalised columns."""
    A = D.to_dense(N).astype(np.float64)
    A = A / np.linalg.norm(A, axis=0)
    G = A.T @ A
    np.fill_diagonal(G, 0.0)
    return float(np.abs(G).max())


@lru_cache
def optimum(m: int, n: int, c: int) -> LowCoherenceFilters:
    """low_coherence_filters with the defaults and seed 0 (cached: it takes about a second)."""
    return low_coherence_filters(m, c, n, 0)


def assert_unit_atoms(D: ConvDictionary, atol: float) -> None:
    np.testing.assert_allclose(D.atom_norms(), 1.0, rtol=0, atol=atol)


# ----------------------------------------------------------------------------- Barker
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_barker13_values_and_coherence(dtype):
    D = barker13(dtype)
    assert D.dtype == np.dtype(dtype)
    assert D.filters.shape == (1, 1, 13)
    atol = 1e-15 if dtype == np.float64 else 1e-7
    np.testing.assert_allclose(D.filters[0, 0] * math.sqrt(13), BARKER13, atol=10 * atol)
    assert_unit_atoms(D, 10 * atol)
    assert abs(D.coherence() - 1 / 13) <= (1e-12 if dtype == np.float64 else 1e-6)


def test_barker13_dense_oracle():
    assert abs(dense_coherence(barker13(), 25) - 1 / 13) <= 1e-12


def test_barker_sidelobes_are_zero_or_one():
    seq = np.array(BARKER13)
    sidelobes = np.correlate(seq, seq, mode="full")[:12]
    assert set(np.abs(sidelobes).tolist()) <= {0, 1}


# ----------------------------------------------------------------------------- Golomb
def test_golomb_default_is_theory_D2():
    D = golomb_filters()
    assert D.filters.shape == (2, 1, 7)
    expected = np.zeros((2, 1, 7))
    expected[0, 0, [0, 1, 4, 6]] = [0.5, 0.5, 0.5, 0.5]
    expected[1, 0, [0, 1, 4, 6]] = [0.5, -0.5, 0.5, -0.5]
    np.testing.assert_array_equal(D.filters, expected)
    assert abs(D.coherence() - 0.25) <= 1e-12
    assert abs(dense_coherence(D, 13) - 0.25) <= 1e-12


@given(
    ruler=st.sampled_from(RULERS),
    m=st.integers(1, 3),
    extra=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_golomb_coherence_formula_single_channel(ruler, m, extra, seed):
    """c = 1: μ = max(1/|M| (shifted overlaps), max_{f≠g} |<s_f, s_g>|/|M|) exactly."""
    signs = np.random.default_rng(seed).choice((-1, 1), size=(m, len(ruler)))
    D = golomb_filters(ruler, signs, length=max(ruler) + 1 + extra)
    assert_unit_atoms(D, 1e-15)
    size = len(ruler)
    terms = [1 / size] if size > 1 else [0.0]
    terms += [abs(signs[f] @ signs[g]) / size for f, g in combinations(range(m), 2)]
    assert abs(D.coherence() - max(terms)) <= 1e-12


@given(ruler=st.sampled_from(RULERS[1:]), m=st.integers(1, 3), c=st.integers(2, 3),
       seed=st.integers(0, 2**32 - 1))
def test_golomb_multichannel_shifted_overlaps_bounded(ruler, m, c, seed):
    """Every shifted correlation is at most 1/|M|: one shared tap per channel."""
    signs = np.random.default_rng(seed).choice((-1, 1), size=(m, c, len(ruler)))
    D = golomb_filters(ruler, signs, n_channels=c)
    assert D.filters.shape == (m, c, max(ruler) + 1)
    assert_unit_atoms(D, 1e-15)
    gram = D.local_gram()
    shifted = np.abs(gram[:, :, 1:])
    assert shifted.max() <= 1 / len(ruler) + 1e-12
    assert abs(D.coherence() - dense_coherence(D, 2 * D.kernel_size[0] - 1)) <= 1e-12


def test_golomb_same_pattern_on_every_channel():
    D1 = golomb_filters()
    D3 = golomb_filters(n_channels=3)
    assert D3.filters.shape == (2, 3, 7)
    np.testing.assert_allclose(D3.filters * math.sqrt(3), np.repeat(D1.filters, 3, axis=1))
    assert abs(D3.coherence() - 0.25) <= 1e-12


@pytest.mark.parametrize(
    ("kwargs", "error", "word"),
    [
        ({"marks": (0, 1, 2)}, ValueError, "Golomb"),
        ({"marks": (0, 1, 1, 4)}, ValueError, "distinct"),
        ({"marks": ()}, ValueError, "marks"),
        ({"marks": (0, -1, 3, 7)}, ValueError, "marks"),
        ({"marks": 3}, TypeError, "marks"),
        ({"signs": ((1, 1, 1, 1), (1, 2, 1, 1))}, ValueError, "signs"),
        ({"signs": ((1, 1, 1),)}, ValueError, "signs"),
        ({"signs": (("a", "b", "c", "d"),)}, TypeError, "signs"),
        ({"length": 6}, ValueError, "length"),
        ({"n_channels": 0}, ValueError, "n_channels"),
        ({"dtype": np.int32}, TypeError, "dtype"),
    ],
)
def test_golomb_rejects_bad_input(kwargs, error, word):
    with pytest.raises(error, match=word):
        golomb_filters(**kwargs)


# ----------------------------------------------------------------------------- random / sparse
kernel_sizes = st.one_of(st.integers(1, 6), st.tuples(st.integers(1, 4), st.integers(1, 4)))


@given(m=st.integers(1, 4), c=st.integers(1, 3), n=kernel_sizes, seed=st.integers(0, 2**32 - 1))
def test_random_filters_unit_and_reproducible(m, c, n, seed):
    D = random_filters(m, c, n, seed)
    size = (n,) if isinstance(n, int) else n
    assert D.filters.shape == (m, c, *size)
    assert_unit_atoms(D, 1e-14)
    np.testing.assert_array_equal(D.filters, random_filters(m, c, n, np.random.default_rng(seed))
                                  .filters)
    D32 = random_filters(m, c, n, seed, dtype=np.float32)
    assert D32.dtype == np.float32
    np.testing.assert_allclose(D32.filters, D.filters, atol=1e-7)


@given(m=st.integers(1, 4), c=st.integers(1, 3), n=kernel_sizes, data=st.data())
def test_sparse_filters_support_and_values(m, c, n, data):
    size = (n,) if isinstance(n, int) else n
    nnz = data.draw(st.integers(1, c * math.prod(size)))
    D = sparse_filters(m, c, n, nnz, data.draw(st.integers(0, 2**32 - 1)))
    flat = D.filters.reshape(m, -1)
    assert D.filters.shape == (m, c, *size)
    assert (np.count_nonzero(flat, axis=1) == nnz).all()
    np.testing.assert_allclose(np.abs(flat[flat != 0]), 1 / math.sqrt(nnz), rtol=1e-15)
    assert_unit_atoms(D, 1e-14)


def test_sparse_filters_are_random():
    a = sparse_filters(8, 2, 7, 3, 0).filters
    b = sparse_filters(8, 2, 7, 3, 1).filters
    assert not np.array_equal(a, b)
    assert (a > 0).any() and (a < 0).any()
    np.testing.assert_array_equal(a, sparse_filters(8, 2, 7, 3, 0).filters)


@pytest.mark.parametrize(
    ("call", "error", "word"),
    [
        (lambda: random_filters(0, 1, 5, 0), ValueError, "m"),
        (lambda: random_filters(2, 1.5, 5, 0), TypeError, "c"),
        (lambda: random_filters(2, 1, (2, 2, 2), 0), ValueError, "n"),
        (lambda: random_filters(2, 1, 2.5, 0), TypeError, "n"),
        (lambda: random_filters(2, 1, 0, 0), ValueError, "n"),
        (lambda: random_filters(2, 1, 5, None), TypeError, "rng"),
        (lambda: random_filters(2, 1, 5, -3), ValueError, "rng"),
        (lambda: random_filters(2, 1, 5, 0, dtype=np.float16), TypeError, "dtype"),
        (lambda: sparse_filters(2, 1, 5, 6, 0), ValueError, "nnz"),
        (lambda: sparse_filters(2, 1, 5, 0, 0), ValueError, "nnz"),
        (lambda: low_coherence_filters(2, 1, 5, 0, restarts=0), ValueError, "restarts"),
        (lambda: low_coherence_filters(2, 1, 5, 0, max_iter=0), ValueError, "max_iter"),
        (lambda: low_coherence_filters(2, 1, 5, 0.5), TypeError, "rng"),
    ],
)
def test_random_constructions_reject_bad_input(call, error, word):
    with pytest.raises(error, match=word):
        call()


# ----------------------------------------------------------------------------- low coherence
@pytest.mark.parametrize(("m", "n", "c", "theory"), [(2, 13, 1, 0.237), (3, 8, 2, 0.211),
                                                     (2, 6, 2, 0.136)])
def test_low_coherence_reaches_theory_values(m, n, c, theory):
    """THEORY.md §5 lists what hill-climbing reached; we must do as well, within 3 %.

    3 % is the "within a few percent" of the task: the values are optima of a non-convex problem
    found by another local method, so matching them up to a small slack (not beating them) is
    the claim. In fact the smooth-max L-BFGS does much better (about 0.17, 0.12 and 0).
    """
    result = optimum(m, n, c)
    assert isinstance(result, LowCoherenceFilters)
    D = result.dictionary
    assert D.filters.shape == (m, c, n)
    assert_unit_atoms(D, 1e-14)
    assert result.coherence == D.coherence()
    assert abs(result.coherence - dense_coherence(D, 2 * n - 1)) <= 1e-12
    assert result.coherence <= 1.03 * theory
    assert result.lower_bound == coherence_lower_bound(m, n, c)
    assert result.coherence >= result.lower_bound


def test_single_channel_bound_fails_for_two_channels():
    """THEORY.md §2: sqrt((m-1)/(m(2n-1)-1)) is false for c > 1; (2, 6, 2) is a counterexample."""
    m, n, c = 2, 6, 2
    single = math.sqrt((m - 1) / (m * (2 * n - 1) - 1))
    assert abs(single - 0.218) < 5e-4
    result = optimum(m, n, c)
    assert result.coherence < single
    assert result.coherence >= coherence_lower_bound(m, n, c)
    # The optimum is in fact 0: one spike per atom, on separate channels.
    spikes = np.zeros((2, 2, 6))
    spikes[0, 0, 0] = spikes[1, 1, 0] = 1.0
    assert dense_coherence(ConvDictionary(spikes), 11) == 0.0


@given(
    m=st.integers(1, 4),
    c=st.integers(1, 3),
    n=st.one_of(st.integers(1, 6), st.tuples(st.integers(1, 3), st.integers(1, 3))),
    seed=st.integers(0, 2**32 - 1),
)
def test_low_coherence_respects_lower_bound(m, c, n, seed):
    result = low_coherence_filters(m, c, n, seed, restarts=1, max_iter=20)
    assert_unit_atoms(result.dictionary, 1e-14)
    assert result.coherence >= coherence_lower_bound(m, n, c) - 1e-12
    assert result.coherence == result.dictionary.coherence()


def test_low_coherence_seeded_and_float32():
    a = low_coherence_filters(3, 1, 5, 7, restarts=2, max_iter=30)
    b = low_coherence_filters(3, 1, 5, np.random.default_rng(7), restarts=2, max_iter=30)
    np.testing.assert_array_equal(a.dictionary.filters, b.dictionary.filters)
    f32 = low_coherence_filters(3, 1, 5, 7, restarts=2, max_iter=30, dtype=np.float32)
    assert f32.dictionary.dtype == np.float32
    assert abs(f32.coherence - a.coherence) <= 1e-6
    assert f32.coherence == f32.dictionary.coherence()


@pytest.mark.parametrize(("m", "c", "size"), [(2, 1, (7,)), (3, 2, (4,)), (2, 2, (2, 3))])
def test_smooth_coherence_value_and_gradient(m, c, size):
    """Oracles: φ_p is between μ and μ·(count)^(1/p); the gradient matches finite differences."""
    objective = _SmoothCoherence(m, c, size)
    v = np.random.default_rng(1).standard_normal(m * c * math.prod(size))
    mu = ConvDictionary(v.reshape(m, c, *size)).coherence()
    count = objective.mask.sum()
    for p in (4.0, 64.0):
        value, _ = objective(v, p)
        assert mu - 1e-12 <= value <= mu * count ** (1 / p) + 1e-12
    _, grad = objective(v, 8.0)
    h = 1e-6
    numeric = np.array([(objective(v + h * e, 8.0)[0] - objective(v - h * e, 8.0)[0]) / (2 * h)
                        for e in np.eye(v.size)])
    np.testing.assert_allclose(grad, numeric, atol=1e-7)
    # Scale invariance of the atoms: the gradient is orthogonal to each v_f.
    per_atom = (grad.reshape(m, -1) * v.reshape(m, -1)).sum(axis=1)
    np.testing.assert_allclose(per_atom, 0.0, atol=1e-12)


def test_lbfgs_minimises_a_quadratic():
    target = np.arange(5.0)
    scales = np.array([1.0, 10.0, 100.0, 0.5, 3.0])

    def quadratic(x, p):
        r = x - target
        return float(0.5 * np.sum(scales * r**2)), scales * r

    x = _lbfgs(quadratic, np.zeros(5), 1.0, 200)
    np.testing.assert_allclose(x, target, atol=1e-6)
