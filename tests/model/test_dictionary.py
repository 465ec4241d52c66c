"""ConvDictionary against matrices built in this file from THEORY.md §1's index formulas.

The global matrix is assembled entry by entry from
``(DΓ)[c, x] = Σ_f Σ_τ A[f, c, τ] Γ[f, (x − τ) mod N]`` (C-order rows ``(c, x)`` and columns
``(f, p)``), never through :meth:`ConvDictionary.to_dense`, so every operator, the coherence, the
spectral norm and the stripe-RIP bound (THEORY.md W4) are checked against an independent
computation.
"""

from __future__ import annotations

import itertools
import math
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlverify import ConvDictionary, coherence_lower_bound, stripe_l0_inf

DTYPES = (np.float64, np.float32)


@st.composite
def cases(draw, *, dtypes=DTYPES, stripe_sized=False, extra=0):
    """A random dictionary problem: ``(filters, spatial, batch, rng)``.

    ``stripe_sized`` makes every spatial size ``>= 2n - 1`` (coherence, stripes); ``extra`` adds
    room for a second filter of length ``extra + 1`` (composition).
    """
    ndim = draw(st.sampled_from([1, 2]))
    kernel = tuple(draw(st.integers(1, 4 if ndim == 1 else 3)) for _ in range(ndim))
    smallest = [(2 * n - 1 if stripe_sized else n) + extra for n in kernel]
    spatial = tuple(draw(st.integers(s, s + (5 if ndim == 1 else 3))) for s in smallest)
    m = draw(st.integers(1, 3))
    c = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from(dtypes))
    batch = draw(st.sampled_from([(), (2,), (2, 1)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    filters = rng.standard_normal((m, c, *kernel)).astype(dtype)
    return filters, spatial, batch, rng


def global_matrix(filters: np.ndarray, spatial: tuple[int, ...]) -> np.ndarray:
    """THEORY.md §1 entry by entry: row ``(c, x)``, column ``(f, (x−τ) mod N)`` += ``A[f,c,τ]``."""
    m, c = filters.shape[:2]
    kernel = filters.shape[2:]
    size = math.prod(spatial)
    matrix = np.zeros((c * size, m * size), dtype=filters.dtype)
    for ch, x in itertools.product(range(c), np.ndindex(*spatial)):
        row = ch * size + np.ravel_multi_index(x, spatial)
        for f, tau in itertools.product(range(m), np.ndindex(*kernel)):
            p = tuple((xi - ti) % ni for xi, ti, ni in zip(x, tau, spatial, strict=True))
            matrix[row, f * size + np.ravel_multi_index(p, spatial)] += filters[(f, ch, *tau)]
    return matrix


def apply(matrix: np.ndarray, arrays: np.ndarray, batch: tuple[int, ...], out_channels: int,
          spatial: tuple[int, ...]) -> np.ndarray:
    """``matrix @ a.ravel()`` for every batch element of ``arrays (*batch, ch, *spatial)``."""
    flat = arrays.reshape(-1, matrix.shape[1])
    return (flat @ matrix.T).reshape((*batch, out_channels, *spatial))


def assert_matches(got: np.ndarray, want: np.ndarray, scale: np.ndarray) -> None:
    """float64: agree to 1e-10; float32: to 1e-5 of ``scale`` (the sum of the absolute terms)."""
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    if got.dtype == np.float64:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    else:
        error = np.abs(got.astype(np.float64) - want.astype(np.float64))
        assert np.all(error <= 1e-5 * (1.0 + scale)), error.max()


def term_scale(codes: np.ndarray, *filters: np.ndarray) -> np.ndarray:
    """Σ of the absolute terms of ``D_1 ⋯ D_k codes`` (float64): the error scale for float32."""
    out = np.abs(codes).astype(np.float64)
    for array in reversed(filters):
        out = ConvDictionary(np.abs(array).astype(np.float64)).synthesize(out, engine="numpy")
    return out


def random_array(rng, shape, dtype, density=1.0) -> np.ndarray:
    values = rng.standard_normal(shape)
    return (values * (rng.random(shape) < density)).astype(dtype)


# ---------------------------------------------------------------------------------- operators
@given(cases(), st.sampled_from(["numpy", "cpu", "auto"]))
def test_dot_test(case, engine):
    """⟨DΓ, V⟩ = ⟨Γ, DᵀV⟩ (THEORY.md §1, exact adjoint)."""
    filters, spatial, batch, rng = case
    D = ConvDictionary(filters)
    codes = random_array(rng, (*batch, D.n_atoms, *spatial), D.dtype)
    signal = random_array(rng, (*batch, D.n_channels, *spatial), D.dtype)
    synthesized = D.synthesize(codes, engine=engine).astype(np.float64)
    analyzed = D.analyze(signal, engine=engine).astype(np.float64)
    left = np.vdot(synthesized, signal.astype(np.float64))
    right = np.vdot(codes.astype(np.float64), analyzed)
    scale = (np.linalg.norm(synthesized) * np.linalg.norm(signal)
             + np.linalg.norm(codes) * np.linalg.norm(analyzed))
    assert abs(left - right) <= (1e-12 if D.dtype == np.float64 else 1e-5) * (1.0 + scale)


@given(cases(), st.sampled_from(["numpy", "cpu"]),
       st.sampled_from(["auto", "dense", "sparse", "fft"]))
def test_operators_match_index_formula(case, engine, method):
    """synthesize, analyze and to_dense equal the matrix of THEORY.md §1 built entry by entry."""
    filters, spatial, batch, rng = case
    D = ConvDictionary(filters)
    matrix = global_matrix(filters, spatial)
    np.testing.assert_array_equal(D.to_dense(spatial), matrix)
    assert D.to_dense(spatial).dtype == D.dtype

    codes = random_array(rng, (*batch, D.n_atoms, *spatial), D.dtype, density=0.3)
    scale = term_scale(codes, filters)
    got = D.synthesize(codes, engine=engine, method=method)
    assert_matches(got, apply(matrix, codes, batch, D.n_channels, spatial), scale)

    signal = random_array(rng, (*batch, D.n_channels, *spatial), D.dtype)
    scale = apply(np.abs(matrix.T).astype(np.float64), np.abs(signal).astype(np.float64), batch,
                  D.n_atoms, spatial)
    got = D.analyze(signal, engine=engine, method=method)
    assert_matches(got, apply(matrix.T, signal, batch, D.n_atoms, spatial), scale)


@given(cases(), st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0]))
def test_sparse_path_equals_dense_path(case, density):
    filters, spatial, batch, rng = case
    D = ConvDictionary(filters)
    codes = random_array(rng, (*batch, D.n_atoms, *spatial), D.dtype, density)
    dense = D.synthesize(codes, engine="cpu", method="dense")
    scale = term_scale(codes, filters)
    for method in ("sparse", "auto"):
        assert_matches(D.synthesize(codes, engine="cpu", method=method), dense, scale)
    if density == 0.0:
        assert not np.any(D.synthesize(codes, engine="cpu", method="sparse"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["dense", "sparse", "auto"])
@pytest.mark.parametrize("engine", ["numpy", "cpu"])
@pytest.mark.parametrize(("kernel", "spatial"), [((4,), (6,)), ((3, 4), (5, 7)), ((2, 2), (2, 2))])
def test_single_nonzero_at_wraparound_corner(kernel, spatial, engine, method, dtype):
    """An atom placed at the last position wraps around every axis: X[c, (p + τ) mod N] = v·A."""
    rng = np.random.default_rng(7)
    filters = rng.standard_normal((2, 3, *kernel)).astype(dtype)
    D = ConvDictionary(filters)
    codes = np.zeros((2, *spatial), dtype)
    corner = tuple(s - 1 for s in spatial)
    value = dtype(1.75)
    codes[(1, *corner)] = value
    want = np.zeros((3, *spatial), dtype)
    for tau in np.ndindex(*kernel):
        x = tuple((p + t) % s for p, t, s in zip(corner, tau, spatial, strict=True))
        want[(slice(None), *x)] += value * filters[(1, slice(None), *tau)]
    np.testing.assert_array_equal(D.synthesize(codes, engine=engine, method=method), want)


@given(cases(dtypes=(np.float64,)))
def test_spectral_norm_is_largest_singular_value(case):
    filters, spatial, _, _ = case
    D = ConvDictionary(filters)
    sigma = np.linalg.svd(global_matrix(filters, spatial), compute_uv=False)[0]
    assert abs(D.spectral_norm(spatial) - sigma) <= 1e-10 * sigma


@pytest.mark.parametrize("shape", [(3, 2, 4), (2, 3, 2, 3)])
def test_spectral_norm_float32_filters(shape):
    """float32 filters: the norm is exact for the float32 values (computed in float64)."""
    filters = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    spatial = tuple(n + 2 for n in shape[2:])
    sigma = np.linalg.svd(global_matrix(filters.astype(np.float64), spatial), compute_uv=False)[0]
    assert abs(ConvDictionary(filters).spectral_norm(spatial) - sigma) <= 1e-10 * sigma


@pytest.mark.parametrize(("shape", "spatial"), [((3, 2, 5, 4), (64, 40)), ((2, 3, 7), (3001,)),
                                              ((4, 4, 3, 3), (45, 50))])
def test_spectral_norm_many_frequencies(shape, spatial):
    """More than one chunk of 1024 frequencies (the pruned search): max over the full DFT grid of
    σ_max of the c × m response matrix, computed here frequency by frequency."""
    filters = np.random.default_rng(4).standard_normal(shape)
    axes = tuple(range(2, filters.ndim))
    response = np.fft.fftn(filters, s=spatial, axes=axes).reshape(shape[0], shape[1], -1)
    want = max(np.linalg.svd(response[:, :, k], compute_uv=False)[0]
               for k in range(response.shape[2]))
    D = ConvDictionary(filters)
    assert abs(D.spectral_norm(spatial) - want) <= 1e-10 * want
    assert D.spectral_norm(spatial) == D.spectral_norm(spatial)


@pytest.mark.parametrize(("shape", "spatial"), [((3, 2, 5, 4), (16, 9)), ((2, 3, 7), (30,))])
def test_spectra_are_the_padded_dfts_kept_per_shape(shape, spatial, monkeypatch):
    """``spectra(S)`` is the DFT of every filter on the grid ``S`` (against the DFT matrix of
    the padded filter), read-only, computed once per shape; the oldest shape is dropped."""
    from mlverify.model import dictionary

    filters = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    D = ConvDictionary(filters)
    spectra = D.spectra(spatial)
    padded = np.zeros((*shape[:2], *spatial))
    padded[(Ellipsis, *(slice(0, n) for n in shape[2:]))] = filters
    want = padded
    for axis, size in enumerate(spatial, start=2):  # DFT matrix per axis, in float64
        k = np.arange(size)
        want = np.moveaxis(np.tensordot(np.exp(-2j * np.pi * np.outer(k, k) / size), want,
                                        axes=([1], [axis])), 0, axis)
    want = want[..., : spatial[-1] // 2 + 1]
    assert spectra.dtype == np.complex128 and spectra.shape == want.shape
    np.testing.assert_allclose(spectra, want, rtol=0, atol=1e-12 * np.abs(want).max())
    assert not spectra.flags.writeable and D.spectra(spatial) is spectra
    single = D.spectra(spatial, np.complex64)  # rounded once, kept beside the float64 ones
    assert single.dtype == np.complex64 and not single.flags.writeable
    assert D.spectra(spatial, "complex64") is single
    np.testing.assert_array_equal(single, spectra.astype(np.complex64))
    with pytest.raises(ValueError, match="complex64 or complex128"):
        D.spectra(spatial, np.float64)
    monkeypatch.setattr(dictionary, "SPECTRA_KEPT", 2)
    others = [tuple(n + extra for n in spatial) for extra in (1, 2)]
    assert D.spectra(others[0]) is D.spectra(others[0]) and D.spectra(spatial) is spectra
    D.spectra(others[1])  # a third shape: the oldest (spatial) is dropped
    assert D.spectra(spatial) is not spectra
    np.testing.assert_array_equal(D.spectra(spatial), spectra)


def test_convention_by_hand():
    """THEORY.md §1 on a literal example: atom at p covers p, p+1, p+2 (mod 5) with taps 1, 2, 3."""
    D = ConvDictionary([[[1.0, 2.0, 3.0]]])
    want = np.array([
        [1, 0, 0, 3, 2],
        [2, 1, 0, 0, 3],
        [3, 2, 1, 0, 0],
        [0, 3, 2, 1, 0],
        [0, 0, 3, 2, 1],
    ], dtype=np.float64)
    np.testing.assert_array_equal(D.to_dense(5), want)
    np.testing.assert_array_equal(global_matrix(D.filters, (5,)), want)
    np.testing.assert_array_equal(D.synthesize(np.array([[0, 0, 0, 0, 1.0]])), [[2, 3, 0, 0, 1]])
    np.testing.assert_array_equal(D.analyze(np.array([[1.0, 0, 0, 0, 0]])), [[1, 0, 0, 3, 2]])


# ---------------------------------------------------------------------------------- coherence
def normalised_gram(filters: np.ndarray, spatial: tuple[int, ...]) -> np.ndarray:
    """Gram matrix of the unit-norm columns of the global matrix (float64)."""
    matrix = global_matrix(filters.astype(np.float64), spatial)
    matrix /= np.linalg.norm(matrix, axis=0)
    return matrix.T @ matrix


@given(cases(stripe_sized=True))
def test_coherence_is_max_offdiagonal_of_global_gram(case):
    """For N >= 2n − 1 on every axis the local formula equals the global Gram (THEORY.md §2)."""
    filters, spatial, _, _ = case
    D = ConvDictionary(filters)
    gram = normalised_gram(filters, spatial)
    np.fill_diagonal(gram, 0.0)
    want = np.abs(gram).max()
    tol = 1e-10 if D.dtype == np.float64 else 1e-6
    assert abs(D.coherence() - want) <= tol
    assert abs(D.coherence(spatial) - want) <= tol


@given(cases(dtypes=(np.float64,)))
def test_local_gram_is_global_gram_at_side_2n_minus_1(case):
    """G[f, g, s] = ⟨atom f at 0, atom g at s⟩ on the periodic signal of side 2n − 1."""
    filters, _, _, _ = case
    D = ConvDictionary(filters)
    side = tuple(2 * n - 1 for n in D.kernel_size)
    size = math.prod(side)
    gram = normalised_gram(filters, side)
    local = D.local_gram()
    assert local.shape == (D.n_atoms, D.n_atoms, *side)
    for f, g in itertools.product(range(D.n_atoms), repeat=2):
        block = gram[f * size, g * size:(g + 1) * size].reshape(side)
        np.testing.assert_allclose(local[f, g], block, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    ("kernel", "spatial", "accepted"),
    [
        ((4,), (3,), False), ((4,), (4,), False), ((4,), (6,), False), ((4,), (7,), True),
        ((3, 2), (4, 3), False), ((3, 2), (5, 2), False), ((3, 2), (5, 3), True),
        ((1, 1), (1, 1), True),
    ],
)
def test_coherence_refuses_small_signals(kernel, spatial, accepted):
    """coherence(spatial_shape) needs N >= 2n − 1 on every axis (DESIGN.md §8)."""
    D = ConvDictionary(np.random.default_rng(2).standard_normal((2, 2, *kernel)))
    if accepted:
        assert D.coherence(spatial) == D.coherence()
    else:
        with pytest.raises(ValueError, match="spatial_shape"):
            D.coherence(spatial)


@given(cases(stripe_sized=True))
def test_coherence_lower_bound_holds(case):
    """μ(D) >= sqrt((m − c)/(c((2n−1)m − 1))) (THEORY.md §2, 2-D: product of the sides)."""
    filters, _, _, _ = case
    D = ConvDictionary(filters)
    n = D.kernel_size[0] if D.spatial_ndim == 1 else D.kernel_size
    bound = coherence_lower_bound(D.n_atoms, n, D.n_channels)
    assert bound <= D.coherence() + (1e-12 if D.dtype == np.float64 else 1e-6)


# ---------------------------------------------------------------------------------- stripe-RIP
def stripe_sparse_codes(rng, shape, n, k) -> np.ndarray:
    """Random codes with ‖Δ‖^s_{0,∞} <= k: add random entries while every stripe stays <= k."""
    codes = np.zeros(shape)
    budget = rng.integers(1, codes.size + 1)
    for index in rng.permutation(codes.size)[:budget]:
        codes.flat[index] = rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 2.0)
        if stripe_l0_inf(codes, n) > k:
            codes.flat[index] = 0.0
    return codes


@given(cases(dtypes=(np.float64,), stripe_sized=True), st.integers(1, 6))
def test_stripe_rip_gershgorin_bound(case, k):
    """THEORY.md W4: (1 − (k−1)μ)‖Δ‖² <= ‖DΔ‖² <= (1 + (k−1)μ)‖Δ‖² when ‖Δ‖^s_{0,∞} <= k.

    Checked for a random Δ and, stronger, for the extreme eigenvalues of the Gram matrix restricted
    to its support (the worst Δ on that support).
    """
    filters, spatial, _, rng = case
    D = ConvDictionary(filters).normalized()
    n = D.kernel_size[0] if D.spatial_ndim == 1 else D.kernel_size
    delta = stripe_sparse_codes(rng, (D.n_atoms, *spatial), n, k)
    assert stripe_l0_inf(delta, n) <= k
    mu = D.coherence()
    energy = np.sum(delta**2)
    image = np.sum(D.synthesize(delta) ** 2)
    slack = 1e-10 * (1.0 + energy)
    assert (1 - (k - 1) * mu) * energy - slack <= image <= (1 + (k - 1) * mu) * energy + slack

    columns = global_matrix(D.filters, spatial)[:, delta.ravel() != 0]
    eigenvalues = np.linalg.eigvalsh(columns.T @ columns)
    assert eigenvalues[0] >= 1 - (k - 1) * mu - 1e-10
    assert eigenvalues[-1] <= 1 + (k - 1) * mu + 1e-10


# ---------------------------------------------------------------------------------- composition
@given(cases(extra=3), st.integers(1, 3), st.integers(1, 4), st.sampled_from(["numpy", "cpu"]))
def test_compose_is_successive_synthesis(case, m2, n2, engine):
    """D1.compose(D2) Γ = D1 (D2 Γ), filter length n1 + n2 − 1 (THEORY.md §1)."""
    filters, spatial, batch, rng = case
    D1 = ConvDictionary(filters)
    kernel2 = (n2,) * D1.spatial_ndim
    D2 = ConvDictionary(rng.standard_normal((m2, D1.n_atoms, *kernel2)).astype(D1.dtype))
    effective = D1.compose(D2)
    assert effective.n_atoms == m2
    assert effective.n_channels == D1.n_channels
    assert effective.dtype == D1.dtype
    assert effective.kernel_size == tuple(a + n2 - 1 for a in D1.kernel_size)
    codes = random_array(rng, (*batch, m2, *spatial), D1.dtype)
    successive = D1.synthesize(D2.synthesize(codes, engine=engine), engine=engine)
    scale = term_scale(codes, D1.filters, D2.filters)
    assert_matches(effective.synthesize(codes, engine=engine), successive, scale)


# ---------------------------------------------------------------------------------- description
@given(cases())
def test_normalized_and_atom_norms(case):
    filters, _, _, _ = case
    D = ConvDictionary(filters)
    want = np.sqrt(np.sum(filters.astype(np.float64) ** 2, axis=tuple(range(1, filters.ndim))))
    np.testing.assert_allclose(D.atom_norms(), want, rtol=1e-12)
    unit = D.normalized()
    assert unit.dtype == D.dtype
    assert unit.filters.shape == filters.shape
    tol = 1e-12 if D.dtype == np.float64 else 1e-6
    np.testing.assert_allclose(unit.atom_norms(), 1.0, rtol=0, atol=tol)
    # normalising only rescales each atom
    ratio = unit.filters.astype(np.float64) * want.reshape((-1,) + (1,) * (filters.ndim - 1))
    np.testing.assert_allclose(ratio, filters.astype(np.float64), rtol=10 * tol, atol=10 * tol)


def test_normalized_refuses_zero_atom():
    filters = np.ones((3, 1, 4))
    filters[1] = 0.0
    with pytest.raises(ValueError, match=r"atoms \[1\] are all zero"):
        ConvDictionary(filters).normalized()


@pytest.mark.parametrize("dtype", DTYPES)
def test_properties_and_repr(dtype):
    filters = np.arange(2 * 3 * 4 * 5, dtype=dtype).reshape(2, 3, 4, 5)
    D = ConvDictionary(filters)
    assert (D.n_atoms, D.n_channels, D.kernel_size, D.spatial_ndim) == (2, 3, (4, 5), 2)
    assert D.dtype == np.dtype(dtype)
    assert repr(D) == f"ConvDictionary(m=2, c=3, n=4x5, dtype={np.dtype(dtype).name})"
    one_d = ConvDictionary(filters[:, :, 0])
    assert (one_d.kernel_size, one_d.spatial_ndim) == ((5,), 1)
    assert repr(one_d) == f"ConvDictionary(m=2, c=3, n=5, dtype={np.dtype(dtype).name})"


def test_filters_are_a_readonly_copy():
    filters = np.ones((2, 1, 3))
    D = ConvDictionary(filters)
    filters[0, 0, 0] = 5.0
    assert D.filters[0, 0, 0] == 1.0
    with pytest.raises(ValueError):
        D.filters[0, 0, 0] = 2.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_pickled_dictionary_keeps_its_caches_and_aligns_its_layouts(dtype):
    """Unpickled (Dask workers, asv caches): the same filters, read-only, the cached spectral
    norms, the kernels' layouts 64-byte aligned again, and the same results bit for bit."""
    rng = np.random.default_rng(3)
    D = ConvDictionary(rng.standard_normal((6, 4, 3, 3)).astype(dtype))
    norm = D.spectral_norm((8, 8))
    for _ in range(8):  # unpickled arrays land wherever the allocator puts them
        copy = pickle.loads(pickle.dumps(D))
        assert copy._spectral_norms == {(8, 8): norm}
        np.testing.assert_array_equal(copy.filters, D.filters)
        assert not copy.filters.flags.writeable
        for name in ("_analysis_taps_t", "_synthesis_taps_t", "_scatter_taps"):
            assert getattr(copy, name).ctypes.data % 64 == 0, name
    codes = random_array(rng, (2, 6, 8, 8), dtype, density=0.1)
    signal = rng.standard_normal((2, 4, 8, 8)).astype(dtype)
    for method in ("dense", "sparse"):
        np.testing.assert_array_equal(copy.synthesize(codes, method=method),
                                      D.synthesize(codes, method=method))
        np.testing.assert_array_equal(copy.analyze(signal, method=method),
                                      D.analyze(signal, method=method))


def test_integer_lists_become_float64():
    D = ConvDictionary([[[1, 2, 3]]])
    assert D.dtype == np.float64
    np.testing.assert_array_equal(D.synthesize([[1, 0, 0, 0]]), [[1.0, 2.0, 3.0, 0.0]])


@pytest.mark.parametrize(
    ("operator", "engine", "method"),
    [
        ("synthesize", "numpy", "auto"),
        ("synthesize", "cpu", "sparse"),
        ("synthesize", "cpu", "auto"),
        ("synthesize", "cpu", "dense"),
        ("synthesize", "cpu", "fft"),
        ("analyze", "numpy", None),
        ("analyze", "cpu", None),
    ],
)
def test_empty_batch(operator, engine, method):
    """A batch of zero problems gives an empty result of the right shape (regression: the x-block
    width once divided by the zero task count)."""
    D = ConvDictionary(np.ones((2, 3, 2)))
    if operator == "synthesize":
        assert D.synthesize(np.zeros((0, 2, 5)), engine=engine, method=method).shape == (0, 3, 5)
    else:
        assert D.analyze(np.zeros((0, 3, 5)), engine=engine).shape == (0, 2, 5)
