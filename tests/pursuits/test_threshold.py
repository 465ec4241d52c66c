"""Thresholds (prox optimality, engines, per-channel convention) and layered thresholding."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlverify import MLCSC, ConvDictionary
from mlverify.pursuits._threshold import layered_thresholding, threshold

KINDS = ("hard", "soft", "relu")
GRID = np.linspace(-25.0, 25.0, 100001)  # spacing 5e-4


def penalty(kind, u, beta):
    """The function whose prox each threshold is: β|u|, βu + ι(u ≥ 0), (β²/2)·1[u ≠ 0]."""
    u = np.asarray(u, dtype=np.float64)
    if kind == "soft":
        return beta * np.abs(u)
    if kind == "relu":
        return np.where(u >= 0, beta * u, np.inf)
    return 0.5 * beta**2 * (u != 0)


values = hnp.arrays(np.float64, st.integers(1, 20),
                    elements=st.floats(-20, 20, allow_nan=False, allow_infinity=False))


@given(v=values, beta=st.floats(0, 10, allow_nan=False), kind=st.sampled_from(KINDS),
       engine=st.sampled_from(("numpy", "cpu")))
def test_threshold_is_the_prox(v, beta, kind, engine):
    u = threshold(v, beta, kind, engine=engine).codes[0]
    for value, out in zip(v, u, strict=True):
        candidates = np.concatenate([GRID, [0.0, value, value - beta, value + beta]])
        objective = 0.5 * (candidates - value) ** 2 + penalty(kind, candidates, beta)
        mine = 0.5 * (out - value) ** 2 + penalty(kind, out, beta)
        assert mine <= objective.min() + 1e-12
        # the minimiser is where the closed form says (away from hard's tie |v| = β)
        best = candidates[np.argmin(objective)]
        if not (kind == "hard" and abs(abs(value) - beta) < 1e-6):
            assert abs(best - out) <= 1e-3


@given(
    data=st.data(),
    dtype=st.sampled_from((np.float32, np.float64)),
    kind=st.sampled_from(KINDS),
    layout=st.sampled_from(((3,), (2, 3, 7), (2, 4, 5, 6), (3, 5, 4))),
    per_channel=st.booleans(),
)
def test_numpy_and_cpu_engines_agree(data, dtype, kind, layout, per_channel):
    v = data.draw(hnp.arrays(dtype, layout, elements=st.floats(-5, 5, width=32)))
    if per_channel:
        d = max(len(layout) - 2, 0) if len(layout) > 1 else 0
        m = layout[-d - 1]
        beta = data.draw(hnp.arrays(np.float64, (m,) + (1,) * d, elements=st.floats(0, 3)))
    else:
        beta = data.draw(st.floats(0, 3))
    a = threshold(v, beta, kind, engine="numpy").codes[0]
    b = threshold(v, beta, kind, engine="cpu").codes[0]
    assert a.dtype == b.dtype == v.dtype and a.shape == v.shape
    np.testing.assert_array_equal(a, b)
    assert not np.signbit(a[a == 0]).any() and not np.signbit(b[b == 0]).any()


@pytest.mark.parametrize("engine", ["numpy", "cpu"])
@pytest.mark.parametrize("shape, beta_shape", [((4, 3, 10), (3, 1)), ((2, 3, 6, 5), (3, 1, 1))])
def test_per_channel_thresholds_act_channel_by_channel(engine, shape, beta_shape):
    rng = np.random.default_rng(3)
    v = rng.standard_normal(shape)
    beta = rng.uniform(0.2, 1.5, beta_shape)
    channel_axis = -len(beta_shape)
    for kind in KINDS:
        out = threshold(v, beta, kind, engine=engine).codes[0]
        for f in range(beta_shape[0]):
            one = np.take(v, f, axis=channel_axis)
            expected = threshold(one, float(beta[f].item()), kind, engine="numpy").codes[0]
            np.testing.assert_array_equal(np.take(out, f, axis=channel_axis), expected)


def test_threshold_values_and_result_fields():
    v = np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    hard = threshold(v, 1.0, "hard").codes[0]
    soft = threshold(v, 1.0, "soft").codes[0]
    relu = threshold(v, 1.0, "relu")
    np.testing.assert_array_equal(hard, [-3, 0, 0, 0, 0, 0, 3])
    np.testing.assert_array_equal(soft, [-2, 0, 0, 0, 0, 0, 2])
    np.testing.assert_array_equal(relu.codes[0], [0, 0, 0, 0, 0, 0, 2])
    assert relu.status == "exact" and relu.n_iter == 0 and relu.converged


def test_threshold_rejects_bad_arguments():
    v = np.ones((3, 8))
    with pytest.raises(ValueError, match="kind"):
        threshold(v, 0.5, "medium")
    with pytest.raises(ValueError, match="beta"):
        threshold(v, -0.1)
    with pytest.raises(ValueError, match="beta"):
        threshold(v, np.nan)
    with pytest.raises(ValueError, match="beta"):
        threshold(v, np.ones((1, 3)))
    with pytest.raises(ValueError, match="beta"):
        threshold(v, np.ones(3))  # (m,) would mean channels on the last axis (8 there)
    with pytest.raises(TypeError, match="beta"):
        threshold(v, "0.5")
    with pytest.raises(ValueError, match="v"):
        threshold(np.array([1.0, np.inf]), 0.5)
    with pytest.raises(TypeError, match="v"):
        threshold(np.array(["a"]), 0.5)
    with pytest.raises(ValueError, match="engine"):
        threshold(v, 0.5, engine="gpu")


def _model(rng, dtype, two_d):
    shape1 = (4, 1, 3, 3) if two_d else (4, 1, 5)
    shape2 = (3, 4, 2, 2) if two_d else (3, 4, 3)
    return MLCSC([ConvDictionary(rng.standard_normal(shape1).astype(dtype)).normalized(),
                  ConvDictionary(rng.standard_normal(shape2).astype(dtype)).normalized()])


@pytest.mark.parametrize("two_d", [False, True])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("engine", ["numpy", "cpu"])
def test_layered_thresholding_equals_a_hand_written_loop(two_d, kind, engine):
    rng = np.random.default_rng(7)
    model = _model(rng, np.float64, two_d)
    spatial = (6, 7) if two_d else (12,)
    y = rng.standard_normal((1, *spatial))
    d = len(spatial)
    thresholds = [0.4, rng.uniform(0.1, 0.6, (3,) + (1,) * d)]
    result = layered_thresholding(model, y, thresholds, kind, engine=engine)
    previous = y
    for i, layer in enumerate(model.layers):
        corr = (layer.to_dense(spatial).T @ previous.ravel()).reshape(
            (layer.n_atoms, *spatial))
        beta = np.broadcast_to(thresholds[i], corr.shape)
        if kind == "hard":
            expected = np.where(np.abs(corr) > beta, corr, 0.0)
        elif kind == "soft":
            expected = np.sign(corr) * np.maximum(np.abs(corr) - beta, 0.0)
        else:
            expected = np.maximum(corr - beta, 0.0)
        np.testing.assert_allclose(result.codes[i], expected, rtol=0, atol=1e-12)
        previous = expected
    assert len(result.codes) == 2 and result.status == "exact"
    assert result.history["nonzeros"] == [float(np.count_nonzero(c)) for c in result.codes]


def test_layered_thresholding_batch_and_float32():
    rng = np.random.default_rng(8)
    model = _model(rng, np.float32, False)
    y = rng.standard_normal((3, 1, 16)).astype(np.float32)
    batched = layered_thresholding(model, y, [0.3, 0.2], "relu")
    for b in range(3):
        single = layered_thresholding(model, y[b], [0.3, 0.2], "relu")
        for a, s in zip(batched.codes, single.codes, strict=True):
            assert a.dtype == np.float32
            np.testing.assert_array_equal(a[b], s)


def test_layered_thresholding_rejects_bad_arguments():
    rng = np.random.default_rng(9)
    model = _model(rng, np.float64, False)
    y = rng.standard_normal((1, 12))
    with pytest.raises(ValueError, match="thresholds"):
        layered_thresholding(model, y, [0.1])
    with pytest.raises(TypeError, match="thresholds"):
        layered_thresholding(model, y, 0.1)
    with pytest.raises(ValueError, match=r"thresholds\[1\]"):
        layered_thresholding(model, y, [0.1, np.ones((4, 1))])
    with pytest.raises(TypeError, match="model"):
        layered_thresholding(model.layers[0], y, [0.1])
    with pytest.raises(TypeError, match="y"):
        layered_thresholding(model, y.astype(np.float32), [0.1, 0.1])
    with pytest.raises(ValueError, match="y"):
        layered_thresholding(model, np.ones((2, 12)), [0.1, 0.1])
    with pytest.raises(ValueError, match="kind"):
        layered_thresholding(model, y, [0.1, 0.1], kind="abs")


@pytest.mark.parametrize("engine", ["numpy", "cpu"])
@pytest.mark.parametrize("shape", [(), (0,), (2, 0)])
def test_scalar_and_empty_inputs_keep_their_shape(engine, shape):
    v = np.full(shape, 2.0)
    out = threshold(v, 0.5, "soft", engine=engine).codes[0]
    assert out.shape == shape
    np.testing.assert_array_equal(out, np.full(shape, 1.5))
