"""Bad input raises a clear ValueError/TypeError naming the argument (DESIGN.md §8).

Every public entry point of the foundation is fed each kind of bad input: wrong ndim, channel
mismatch, NaN/inf, mixed or non-float dtypes, windows larger than the signal, bad engine/method
strings, inconsistent MLCSC layers and bad layer indices. The ``_validate`` helpers are tested
directly at the end.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlverify import (
    MLCSC,
    ConvDictionary,
    coherence_lower_bound,
    contrast,
    extreme_magnitudes,
    patch_l0_inf,
    patch_l2_inf,
    stripe_l0_inf,
)
from mlverify._validate import (
    as_float_array,
    check_engine,
    check_finite,
    check_positive_int,
    window_shape,
)

RNG = np.random.default_rng(0)
D1 = ConvDictionary(RNG.standard_normal((2, 3, 4)))  # 1-D, m = 2, c = 3, n = 4, float64
D2 = ConvDictionary(RNG.standard_normal((2, 3, 2, 3)))  # 2-D
D32 = ConvDictionary(RNG.standard_normal((2, 3, 4)).astype(np.float32))
MODEL = MLCSC([D1, ConvDictionary(RNG.standard_normal((3, 2, 2)))])  # K = 2
CODES = np.zeros((2, 8))
SIGNAL = np.zeros((3, 8))


def with_value(array: np.ndarray, value) -> np.ndarray:
    out = array.copy()
    out.flat[1] = value
    return out


BAD_INPUTS = [
    # filters
    ("filters ndim 2", lambda: ConvDictionary(np.ones((2, 3))), ValueError, "filters"),
    ("filters ndim 5", lambda: ConvDictionary(np.ones((1, 1, 2, 2, 2))), ValueError, "filters"),
    ("filters empty axis", lambda: ConvDictionary(np.ones((0, 1, 3))), ValueError, "filters"),
    ("filters NaN", lambda: ConvDictionary(with_value(np.ones((1, 1, 3)), np.nan)), ValueError,
     "filters"),
    ("filters inf", lambda: ConvDictionary(with_value(np.ones((1, 1, 3)), -np.inf)), ValueError,
     "filters"),
    ("filters complex", lambda: ConvDictionary(np.ones((1, 1, 3), complex)), TypeError, "filters"),
    ("filters object", lambda: ConvDictionary(np.ones((1, 1, 3), object)), TypeError, "filters"),
    ("filters float16", lambda: ConvDictionary(np.ones((1, 1, 3), np.float16)), TypeError,
     "filters"),
    ("filters str", lambda: ConvDictionary("abc"), TypeError, "filters"),
    ("filters None", lambda: ConvDictionary(None), TypeError, "filters"),
    # codes
    ("codes ndim 1-D", lambda: D1.synthesize(np.zeros(8)), ValueError, "codes"),
    ("codes ndim 2-D", lambda: D2.synthesize(np.zeros((2, 8))), ValueError, "codes"),
    ("codes channels", lambda: D1.synthesize(np.zeros((3, 8))), ValueError, "codes"),
    ("codes channels 2-D", lambda: D2.synthesize(np.zeros((4, 3, 5, 5))), ValueError, "codes"),
    ("codes NaN", lambda: D1.synthesize(with_value(CODES, np.nan)), ValueError, "codes"),
    ("codes inf", lambda: D1.synthesize(with_value(CODES, np.inf)), ValueError, "codes"),
    ("codes NaN numpy engine", lambda: D1.synthesize(with_value(CODES, np.nan), engine="numpy"),
     ValueError, "codes"),
    ("codes float64 for float32 dict", lambda: D32.synthesize(CODES), TypeError, "codes"),
    ("codes float32 for float64 dict", lambda: D1.synthesize(CODES.astype(np.float32)),
     TypeError, "codes"),
    ("codes complex", lambda: D1.synthesize(CODES.astype(complex)), TypeError, "codes"),
    ("codes object", lambda: D1.synthesize(CODES.astype(object)), TypeError, "codes"),
    ("codes shorter than filters", lambda: D1.synthesize(np.zeros((2, 3))), ValueError, "codes"),
    ("codes shorter 2-D", lambda: D2.synthesize(np.zeros((2, 5, 2))), ValueError, "codes"),
    # signal
    ("signal ndim", lambda: D1.analyze(np.zeros(8)), ValueError, "signal"),
    ("signal channels", lambda: D1.analyze(np.zeros((2, 8))), ValueError, "signal"),
    ("signal NaN", lambda: D1.analyze(with_value(SIGNAL, np.nan)), ValueError, "signal"),
    ("signal inf", lambda: D2.analyze(with_value(np.zeros((3, 4, 4)), np.inf)), ValueError,
     "signal"),
    ("signal float64 for float32 dict", lambda: D32.analyze(SIGNAL), TypeError, "signal"),
    ("signal complex", lambda: D1.analyze(SIGNAL.astype(complex)), TypeError, "signal"),
    ("signal shorter than filters", lambda: D1.analyze(np.zeros((3, 2))), ValueError, "signal"),
    # engine and method
    *[(f"engine {e!r}", lambda e=e: D1.synthesize(CODES, engine=e), ValueError, "engine")
      for e in ("gpu", "CPU", None, "")],
    ("analyze engine", lambda: D1.analyze(SIGNAL, engine="fast"), ValueError, "engine"),
    ("mlcsc engine", lambda: MLCSC([D1]).synthesize(CODES, engine="gpu"), ValueError, "engine"),
    ("method", lambda: D1.synthesize(CODES, method="fast"), ValueError, "method"),
    ("method numpy engine", lambda: D1.synthesize(CODES, engine="numpy", method=None), ValueError,
     "method"),
    # spatial shapes
    ("to_dense smaller than filters", lambda: D1.to_dense(3), ValueError, "spatial_shape"),
    ("to_dense 2-D smaller", lambda: D2.to_dense((5, 2)), ValueError, "spatial_shape"),
    ("to_dense wrong length", lambda: D1.to_dense((8, 8)), ValueError, "spatial_shape"),
    ("to_dense zero", lambda: D2.to_dense((0, 5)), ValueError, "spatial_shape"),
    ("to_dense float", lambda: D1.to_dense(8.0), TypeError, "spatial_shape"),
    ("to_dense None", lambda: D1.to_dense(None), TypeError, "spatial_shape"),
    ("spectral_norm smaller", lambda: D1.spectral_norm(2), ValueError, "spatial_shape"),
    ("coherence N < 2n - 1", lambda: D1.coherence(6), ValueError, "spatial_shape"),
    ("coherence 2-D N < 2n - 1", lambda: D2.coherence((3, 4)), ValueError, "spatial_shape"),
    # compose
    ("compose non-dictionary", lambda: D1.compose(np.ones((2, 2, 2))), TypeError, "other"),
    ("compose channels", lambda: D1.compose(ConvDictionary(np.ones((2, 3, 2)))), ValueError,
     "other"),
    ("compose ndim", lambda: D1.compose(ConvDictionary(np.ones((2, 2, 2, 2)))), ValueError,
     "other"),
    ("compose dtype", lambda: D1.compose(ConvDictionary(np.ones((2, 2, 2), np.float32))),
     TypeError, "other"),
    # MLCSC
    ("mlcsc empty", lambda: MLCSC([]), ValueError, "dictionaries"),
    ("mlcsc non-dictionary", lambda: MLCSC([D1, np.ones((2, 2, 2))]), TypeError,
     r"dictionaries\[1\]"),
    ("mlcsc channels", lambda: MLCSC([D1, ConvDictionary(np.ones((2, 3, 2)))]), ValueError, "D2"),
    ("mlcsc dtype", lambda: MLCSC([D1, ConvDictionary(np.ones((2, 2, 2), np.float32))]),
     TypeError, "D2"),
    ("mlcsc ndim", lambda: MLCSC([D1, ConvDictionary(np.ones((2, 2, 2, 2)))]), ValueError, "D2"),
    *[(f"effective({i!r})", lambda i=i: MODEL.effective(i), ValueError, r"^i must be")
      for i in (0, 3, -1, True, 1.5, "1")],
    # measures
    ("stripe codes ndim", lambda: stripe_l0_inf(np.zeros(5), 2), ValueError, "codes"),
    ("stripe 2-D window on 1-D codes", lambda: stripe_l0_inf(np.zeros((2, 5)), (1, 1)),
     ValueError, "codes"),
    ("patch_l2 v ndim", lambda: patch_l2_inf(np.zeros(5), 1), ValueError, r"^v "),
    ("stripe n zero", lambda: stripe_l0_inf(CODES, 0), ValueError, r"\bn\b"),
    ("stripe n triple", lambda: stripe_l0_inf(CODES, (1, 1, 1)), ValueError, r"\bn\b"),
    ("stripe n bool", lambda: stripe_l0_inf(CODES, True), TypeError, r"\bn\b"),
    ("patch w zero", lambda: patch_l0_inf(CODES, 0), ValueError, r"\bw\b"),
    ("patch_l2 w negative", lambda: patch_l2_inf(CODES, (2, -1)), ValueError, r"\bw\b"),
    ("stripe codes complex", lambda: stripe_l0_inf(CODES.astype(complex), 1), TypeError, "codes"),
    ("patch_l2 v complex", lambda: patch_l2_inf(CODES.astype(complex), 1), TypeError, r"^v "),
    ("extreme all zero", lambda: extreme_magnitudes(CODES), ValueError, "codes"),
    ("contrast all zero", lambda: contrast(CODES), ValueError, "codes"),
    ("extreme complex", lambda: extreme_magnitudes(CODES.astype(complex)), TypeError, "codes"),
    ("bound m zero", lambda: coherence_lower_bound(0, 3), ValueError, r"\bm\b"),
    ("bound m float", lambda: coherence_lower_bound(2.0, 3), TypeError, r"\bm\b"),
    ("bound n zero", lambda: coherence_lower_bound(3, 0), ValueError, r"\bn\b"),
    ("bound n triple", lambda: coherence_lower_bound(3, (2, 2, 2)), ValueError, r"\bn\b"),
    ("bound c zero", lambda: coherence_lower_bound(3, 2, 0), ValueError, r"\bc\b"),
]


@pytest.mark.parametrize(("call", "error", "match"), [pytest.param(*case[1:], id=case[0])
                                                      for case in BAD_INPUTS])
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(("call", "match"), [
    (lambda: stripe_l0_inf(CODES, 2.5), r"\bn\b"),
    (lambda: patch_l0_inf(CODES, None), r"\bw\b"),
    (lambda: patch_l2_inf(CODES, 1.0), r"\bw\b"),
    (lambda: coherence_lower_bound(3, 2.5), r"\bn\b"),
], ids=["stripe n=2.5", "patch w=None", "patch_l2 w=1.0", "bound n=2.5"])
def test_non_integer_window_names_the_argument(call, match):
    with pytest.raises(TypeError, match=match):
        call()


@pytest.mark.parametrize(("call", "match"), [
    (lambda: stripe_l0_inf(np.zeros((1, 4)), 3), r"\bn\b"),
    (lambda: patch_l0_inf(np.zeros((1, 4)), 5), r"\bw\b"),
    (lambda: patch_l2_inf(np.zeros((1, 4, 4)), (2, 5)), r"\bw\b"),
], ids=["stripe 2n-1 > N", "patch w > N", "patch_l2 w > N"])
def test_measure_window_larger_than_signal_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_measure_window_larger_than_signal_is_refused():
    """The refusal itself (the message naming the argument is tested above)."""
    for call in (lambda: stripe_l0_inf(np.zeros((1, 4)), 3),
                 lambda: patch_l0_inf(np.zeros((1, 4)), 5),
                 lambda: patch_l2_inf(np.zeros((1, 4, 4)), (2, 5))):
        with pytest.raises(ValueError, match="larger than the signal"):
            call()


@pytest.mark.parametrize(("call", "match"), [
    (lambda: stripe_l0_inf(with_value(CODES, np.nan), 2), "codes"),
    (lambda: patch_l0_inf(with_value(CODES, np.inf), 2), "codes"),
    (lambda: patch_l2_inf(with_value(SIGNAL, np.nan), 2), r"^v "),
    (lambda: extreme_magnitudes(with_value(CODES, np.nan)), "codes"),
], ids=["stripe NaN", "patch inf", "patch_l2 NaN", "extreme NaN"])
def test_measures_refuse_non_finite(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------------- _validate
def test_as_float_array():
    x32 = np.ones((3, 4), np.float32)[:, ::2]
    out = as_float_array("x", x32)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, x32)
    assert as_float_array("x", [1, 2]).dtype == np.float64
    assert as_float_array("x", [1, 2], dtype=np.float32).dtype == np.float32
    assert as_float_array("x", [True, False]).dtype == np.float64
    for bad in ("1.0", b"1", None):
        with pytest.raises(TypeError, match=r"^x must"):
            as_float_array("x", bad)
    with pytest.raises(TypeError, match=r"^x has dtype float64 but the dictionary is float32"):
        as_float_array("x", np.ones(2), dtype=np.float32)
    with pytest.raises(TypeError, match=r"^x must have dtype"):
        as_float_array("x", np.ones(2, np.int64))


def test_check_finite():
    check_finite("x", np.ones(3))
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match=r"^x contains NaN or infinite"):
            check_finite("x", np.array([0.0, bad]))


def test_check_engine():
    assert check_engine("auto") == "cpu"
    assert check_engine("cpu") == "cpu"
    assert check_engine("numpy") == "numpy"
    assert check_engine("numpy", available=("numpy",)) == "numpy"
    for bad in ("gpu", "Auto", None, 1, ["cpu"]):
        with pytest.raises(ValueError, match=r"^engine must be one of"):
            check_engine(bad)
    with pytest.raises(ValueError, match=r"^engine"):
        check_engine("cpu", available=("numpy",))


def test_check_positive_int():
    assert check_positive_int("k", 3) == 3
    assert type(check_positive_int("k", np.int32(3))) is int
    assert check_positive_int("k", 0, minimum=0) == 0
    for bad in (True, np.bool_(True), 2.0, "2", None):
        with pytest.raises(TypeError, match=r"^k must be an integer"):
            check_positive_int("k", bad)
    for bad in (0, -1):
        with pytest.raises(ValueError, match=r"^k must be >= 1"):
            check_positive_int("k", bad)


def test_window_shape():
    assert window_shape("w", 3, 2) == (3, 3)
    assert window_shape("w", np.int64(3), 1) == (3,)
    assert window_shape("w", [2, 3], 2) == (2, 3)
    with pytest.raises(ValueError, match=r"^w must have 2 entries"):
        window_shape("w", (2, 3, 4), 2)
    with pytest.raises(TypeError, match=r"^w must be an int or a tuple"):
        window_shape("w", 2.5, 1)
    with pytest.raises(TypeError, match=r"^w must be an integer"):
        window_shape("w", (2.0,), 1)
    with pytest.raises(TypeError, match=r"^w must be an int or a tuple"):
        window_shape("w", True, 1)
    with pytest.raises(ValueError, match=r"^w must be >= 1"):
        window_shape("w", (1, 0), 2)
