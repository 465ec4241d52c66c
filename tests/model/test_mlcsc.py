"""MLCSC: effective dictionaries D^(i) = D_1⋯D_i and the layer-by-layer synthesis (THEORY.md §1)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from mlverify import MLCSC, ConvDictionary


@st.composite
def models(draw, n_layers=3):
    """A random K-layer model with its spatial shape (room for the effective filters) and rng."""
    ndim = draw(st.sampled_from([1, 2]))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    channels = [draw(st.integers(1, 3)) for _ in range(n_layers + 1)]
    lengths = [draw(st.integers(1, 3 if ndim == 1 else 2)) for _ in range(n_layers)]
    effective = sum(lengths) - (n_layers - 1)
    spatial = tuple(draw(st.integers(effective, effective + 3)) for _ in range(ndim))
    batch = draw(st.sampled_from([(), (2,)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    layers = [
        ConvDictionary(rng.standard_normal((channels[i + 1], channels[i]) + (lengths[i],) * ndim)
                       .astype(dtype))
        for i in range(n_layers)
    ]
    return MLCSC(layers), spatial, batch, rng


def scale_of(layers, codes) -> np.ndarray:
    """Σ of the absolute terms of ``D_1 ⋯ D_i codes`` in float64 (float32 error scale)."""
    out = np.abs(codes).astype(np.float64)
    for layer in reversed(layers):
        out = ConvDictionary(np.abs(layer.filters).astype(np.float64)).synthesize(out)
    return out


@given(models(), st.sampled_from(["numpy", "cpu"]))
def test_effective_is_successive_synthesis(case, engine):
    """D^(i) Γ_i = D_1(D_2(⋯ D_i Γ_i)) with filters of length n_1 + … + n_i − (i − 1)."""
    model, spatial, batch, rng = case
    for i in range(1, model.n_layers + 1):
        layers = model.layers[:i]
        effective = model.effective(i)
        assert effective.n_atoms == layers[-1].n_atoms
        assert effective.n_channels == layers[0].n_channels
        assert effective.dtype == model.dtype
        for axis in range(model.spatial_ndim):
            want = sum(layer.kernel_size[axis] for layer in layers) - (i - 1)
            assert effective.kernel_size[axis] == want
        codes = rng.standard_normal((*batch, effective.n_atoms, *spatial)).astype(model.dtype)
        successive = codes
        for layer in reversed(layers):
            successive = layer.synthesize(successive, engine=engine)
        got = effective.synthesize(codes, engine=engine)
        if model.dtype == np.float64:
            np.testing.assert_allclose(got, successive, rtol=0, atol=1e-10)
        else:
            error = np.abs(got.astype(np.float64) - successive)
            assert np.all(error <= 1e-5 * (1 + scale_of(layers, codes)))


@given(models(), st.sampled_from(["numpy", "cpu"]))
def test_synthesize_returns_every_layer(case, engine):
    """[Γ_0 = X, Γ_1, …, Γ_K] with Γ_{i−1} = D_i Γ_i and Γ_K the input."""
    model, spatial, batch, rng = case
    deepest = rng.standard_normal((*batch, model.layers[-1].n_atoms, *spatial)).astype(model.dtype)
    gammas = model.synthesize(deepest, engine=engine)
    assert len(gammas) == model.n_layers + 1
    np.testing.assert_array_equal(gammas[-1], deepest)
    for i, layer in enumerate(model.layers, start=1):
        assert gammas[i - 1].shape == (*batch, layer.n_channels, *spatial)
        assert gammas[i - 1].dtype == model.dtype
        np.testing.assert_array_equal(gammas[i - 1], layer.synthesize(gammas[i], engine=engine))


def test_description():
    rng = np.random.default_rng(0)
    D1 = ConvDictionary(rng.standard_normal((4, 1, 3)))
    D2 = ConvDictionary(rng.standard_normal((5, 4, 2)))
    model = MLCSC([D1, D2])
    assert model.layers == (D1, D2)
    assert model.n_layers == len(model) == 2
    assert model[0] is D1 and model[1] is D2
    assert model.dtype == np.float64
    assert model.spatial_ndim == 1
    assert model.effective(1) is D1
    assert model.effective(2) is model.effective(2)  # cached
    assert repr(model) == f"MLCSC([{D1!r}, {D2!r}])"
    assert MLCSC(iter([D1])).n_layers == 1
