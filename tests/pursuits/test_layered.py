"""Layered basis pursuit = successive certified basis-pursuit solves."""

import numpy as np
import pytest

from mlverify import MLCSC, ConvDictionary
from mlverify.pursuits._basis_pursuit import basis_pursuit
from mlverify.pursuits._layered import layered_basis_pursuit


def _model(seed, two_d=False, dtype=np.float64):
    rng = np.random.default_rng(seed)
    shapes = [(4, 1, 3, 3), (3, 4, 2, 2)] if two_d else [(4, 1, 5), (3, 4, 3)]
    return MLCSC([ConvDictionary(rng.standard_normal(s).astype(dtype)).normalized()
                  for s in shapes]), rng


@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("two_d", [False, True])
def test_layered_bp_equals_successive_basis_pursuit(two_d, nonneg):
    model, rng = _model(1, two_d)
    y = rng.standard_normal((1, 6, 6) if two_d else (1, 16))
    lams = [0.2, 0.05]
    result = layered_basis_pursuit(model, y, lams, nonneg=nonneg, tol=1e-8)
    previous = y
    expected = []
    for layer, lam in zip(model.layers, lams, strict=True):
        step = basis_pursuit(layer, previous, lam, nonneg=nonneg, tol=1e-8)
        expected.append(step)
        previous = step.codes[0]
    assert len(result.codes) == 2
    for got, want in zip(result.codes, expected, strict=True):
        np.testing.assert_array_equal(got, want.codes[0])
    assert result.history["layer_certificate"] == [e.certificate for e in expected]
    assert result.history["layer_n_iter"] == [float(e.n_iter) for e in expected]
    assert result.certificate == max(e.certificate for e in expected) <= 1e-8
    assert result.n_iter == sum(e.n_iter for e in expected)
    assert result.converged and result.status == "converged"


def test_layered_bp_status_is_the_worst_layer():
    model, rng = _model(2)
    y = rng.standard_normal((2, 1, 16)).astype(np.float64)
    capped = layered_basis_pursuit(model, y, [0.2, 0.05], tol=1e-12, max_iter=3)
    assert capped.status == "max_iter" and not capped.converged
    assert capped.codes[0].shape == (2, 4, 16) and capped.codes[1].shape == (2, 3, 16)
    # a huge first-layer penalty zeros Γ̂_1, so the second layer is exactly 0 as well
    zero = layered_basis_pursuit(model, y, [1e6, 0.05])
    assert zero.status == "exact" and not zero.codes[1].any()


def test_layered_bp_rejects_bad_arguments():
    model, rng = _model(3)
    y = rng.standard_normal((1, 16))
    with pytest.raises(ValueError, match="lams"):
        layered_basis_pursuit(model, y, [0.1])
    with pytest.raises(TypeError, match="lams"):
        layered_basis_pursuit(model, y, 0.1)
    with pytest.raises(ValueError, match=r"lams\[1\]"):
        layered_basis_pursuit(model, y, [0.1, -0.1])
    with pytest.raises(ValueError, match="tol"):
        layered_basis_pursuit(model, y, [0.1, 0.1], tol=-1.0)
    with pytest.raises(TypeError, match="model"):
        layered_basis_pursuit(model.layers[0], y, [0.1])
    with pytest.raises(TypeError, match="y"):
        layered_basis_pursuit(model, y.astype(np.float32), [0.1, 0.1])
    with pytest.raises(ValueError, match="engine"):
        layered_basis_pursuit(model, y, [0.1, 0.1], engine="fast")
