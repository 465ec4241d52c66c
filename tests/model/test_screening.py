"""Screened proximal-gradient steps (:mod:`mlverify.model.screening`,
:mod:`mlverify.kernels.screening`) against extended-precision oracles.

Kernel path: :func:`residual_windows` against ``np.roll`` box sums and ``np.pad`` (periodic,
channels last). Model path: sequences of ISTA steps through :class:`ScreenedStep` against the
formula :math:`T_\\beta(B - \\eta D^T(D\\Gamma - V))` (and the step's length) through the
package's NumPy oracles (:mod:`mlverify.kernels.reference`) run in ``np.longdouble`` on the same
arrays, then the NumPy threshold, and the invariant behind the screening: after every call,
:math:`-\\eta D^T(D\\Gamma - V)` stays below the threshold by the kept headroom minus the
position's drift (times the atom's norm), at every entry, so a screened entry is zero in exact
arithmetic. 1-D and 2-D, both dtypes, the three threshold kinds, refresh, screened and fallback
calls, given output buffers, non-finite inputs, and ML-ISTA / ML-FISTA with the screened deepest
layer against the NumPy engine.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlverify import ConvDictionary, ml_fista, ml_ista, threshold
from mlverify.kernels import reference
from mlverify.kernels import screening as kernels
from mlverify.kernels.cpu_sparse import pixel_nonzeros
from mlverify.model import screening
from mlverify.pursuits import _ml_ista
from mlverify.pursuits._problem_p import ml_objective

EXTENDED = np.longdouble


def planted(seed, dtype, spatial, atoms=16, channels=8, kernel=(4, 4)):
    """A unit-norm dictionary (``m·c·n1·n2 >= 2048``: screening fits), sparse non-negative
    codes and a noisy signal of them."""
    rng = np.random.default_rng(seed)
    layer = ConvDictionary(rng.standard_normal((atoms, channels) + kernel)).normalized()
    layer = ConvDictionary(layer.filters.astype(dtype))
    codes = (rng.random((atoms,) + spatial) < 0.05) * rng.uniform(0.5, 1.5, (atoms,) + spatial)
    signal = layer.synthesize(codes.astype(dtype))
    signal = (signal + 0.01 * rng.standard_normal(signal.shape)).astype(dtype)
    return layer, signal


@pytest.fixture
def always_screen(monkeypatch):
    """Model the screened route as free: every call computes through the screening."""
    monkeypatch.setattr(screening, "NS_GEMM", {4: 0.0, 8: 0.0})
    monkeypatch.setattr(screening, "NS_GATHER", {4: 0.0, 8: 0.0})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(seed=st.integers(0, 2**32 - 1), height=st.integers(3, 9), width=st.integers(4, 11),
       n1=st.integers(1, 3), n2=st.integers(1, 4), channels=st.integers(1, 3))
def test_residual_windows_match_box_sums(dtype, seed, height, width, n1, n2, channels):
    rng = np.random.default_rng(seed)
    n1, n2 = min(n1, height), min(n2, width)
    shape = (2, channels, height, width)
    synthesized, target, old = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    target[rng.random(shape) < 0.3] = 0
    previous = old.copy()
    padded = np.empty((2, height + n1 - 1, (width + n2 - 1) * channels), dtype)
    change, energy = np.empty((2, height, width)), np.empty((2, height, width))
    nonzero = kernels.residual_windows(synthesized, target, previous, padded, change, energy)
    residual = synthesized - target
    np.testing.assert_array_equal(previous, residual)
    assert nonzero == np.count_nonzero(target)
    wrapped = np.pad(residual, ((0, 0), (0, 0), (0, n1 - 1), (0, n2 - 1)), mode="wrap")
    np.testing.assert_array_equal(padded, wrapped.transpose(0, 2, 3, 1).reshape(padded.shape))
    for values, norms in ((residual.astype(np.float64) - old, change),
                          (residual.astype(np.float64), energy)):
        squares = (values**2).sum(axis=1)
        box = sum(np.roll(squares, (-ty, -tx), axis=(1, 2))
                  for ty in range(n1) for tx in range(n2))
        np.testing.assert_allclose(norms, np.sqrt(box), rtol=2e-9)  # the inflation: 1e-9
        assert np.all(norms >= np.sqrt(box))  # inflated: an upper bound


def check_collected_nonzeros(step, out):
    """The non-zeros the store collected are ``pixel_nonzeros`` of the output, and the
    synthesis from them is the layer's, bit for bit (only for the returned array)."""
    if step.nonzeros is None:  # a zero window kept a non-zero: nothing collected
        return
    canonical = step.layer._canonical("out", out, step.layer.n_atoms)[2]
    for collected, expected in zip(step.nonzeros, pixel_nonzeros(canonical), strict=True):
        np.testing.assert_array_equal(collected, expected)
    np.testing.assert_array_equal(step.synthesis(out), step.layer.synthesize(out))
    assert step.synthesis(out) is step.synthesis(out)  # made once per screened output
    assert step.synthesis(out.copy()) is None


def run_steps(layer, signal, kind, dtype, iterations, spatial, check_intervals=True):
    """ISTA through a :class:`ScreenedStep`, each output checked against the extended-precision
    step from the same input (and, when ``check_intervals``, the kept intervals against the
    extended-precision correlations). Returns the step object and the fraction of inactive
    positions per call."""
    step = screening.ScreenedStep(layer, spatial)
    eta = 0.9 / layer.spectral_norm(spatial) ** 2
    lam = 0.3 * float(np.abs(layer.analyze(signal)).max())  # a few per cent of codes survive
    beta = lam * eta if kind != "hard" else np.sqrt(2 * lam * eta)
    filters = layer.filters if len(spatial) == 2 else layer.filters[:, :, None, :]

    def lift(array):  # (c, *S) -> (1, c, H, W)
        return array[None] if len(spatial) == 2 else array[None, :, None, :]

    codes = np.zeros((layer.n_atoms,) + spatial, dtype)
    inactive, needed = [], []
    for _ in range(iterations):
        out = step(codes, signal, eta, beta, kind)
        assert out is not None
        # the NumPy oracles of the operators, run in extended precision
        wide = filters.astype(EXTENDED)
        residual = (reference.synthesize(lift(codes).astype(EXTENDED), wide)
                    - lift(signal).astype(EXTENDED))
        moved = EXTENDED(dtype(-eta)) * reference.analyze(residual, wide)
        expected = threshold((lift(codes).astype(EXTENDED) + moved).astype(np.float64),
                             float(dtype(beta)), kind, engine="numpy").codes[0]
        scale = float(np.abs(expected).max()) or 1.0
        tol = 1e-4 if dtype == np.float32 else 1e-11
        np.testing.assert_allclose(lift(out).astype(np.float64), expected, atol=tol * scale,
                                   rtol=tol)
        if step.key is not None:  # screened: the kernels summed the step's length
            length = np.linalg.norm(out.astype(np.float64) - codes.astype(np.float64))
            assert step.distance == pytest.approx(length, rel=1e-12, abs=1e-300)
            check_collected_nonzeros(step, out)
        else:
            assert step.distance is None and step.nonzeros is None
        if check_intervals and step.key is not None:
            # every correlation now stays within each atom's level minus the position's drift,
            # and within the position's headroom minus it: c_f ≤ β - |s|·‖a_f‖·(l - d_p), with
            # c_f = s·q (ReLU) or |s·q| and l = l_{p,f} or h_p, wherever they are known
            centre = moved if kind == "relu" else np.abs(moved)
            spread = step.spreads(dtype(-eta))[None, :, None, None]
            levels = np.moveaxis(step.levels.reshape(step.active.shape + (-1,)), -1, 1)
            for kept in (levels, step.headroom[:, None]):
                known = np.isfinite(kept)
                room = spread * (kept - step.drift[:, None])
                limit = EXTENDED(float(dtype(beta))) - np.where(known, room, 0).astype(EXTENDED)
                assert np.all((centre <= limit) | ~known)
                assert known.mean() > 0.5
        inactive.append(1.0 - float(step.active.mean()))
        needed.append(step.needed)
        codes = out
    step.history = needed  # the fraction of needed atoms after each call
    return step, inactive


@pytest.mark.usefixtures("always_screen")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["relu", "soft", "hard"])
@pytest.mark.parametrize("spatial", [(20, 24), (96,)])
def test_screened_steps_match_the_step_and_keep_valid_intervals(dtype, kind, spatial):
    kernel = (4, 4) if len(spatial) == 2 else (16,)
    layer, signal = planted(3, dtype, spatial, kernel=kernel)
    step, inactive = run_steps(layer, signal, kind, dtype, 30, spatial)
    assert step.key is not None  # every call went through the screening
    assert step.nonzeros is not None  # and collected its non-zeros (checked at every call)
    assert max(inactive) > 0.2  # and it screened: the test is not vacuous
    # and both routes ran: matrix products on the first call, dots where few atoms were needed
    assert min(step.history[:-1]) <= screening.DOT_LIMIT[np.dtype(dtype).itemsize]


@pytest.mark.usefixtures("always_screen")
def test_more_than_64_atoms_are_collected_in_order():
    # the store marks the kept atoms in 64-bit words: 80 atoms take two
    layer, signal = planted(17, np.float64, (12, 14), atoms=80, channels=4, kernel=(3, 3))
    step, _ = run_steps(layer, signal, "soft", np.float64, 12, (12, 14))
    assert step.key is not None  # every call stored through the screening (and was checked)
    assert step.nonzeros is not None and np.any(step.nonzeros[1] >= 64)


@pytest.mark.usefixtures("always_screen")
def test_a_batch_is_screened_problem_by_problem():
    layer, first = planted(13, np.float64, (16, 16))
    second = planted(14, np.float64, (16, 16))[1]
    signals = np.stack([first, second])
    step = screening.ScreenedStep(layer, (16, 16), batch=2)
    eta = 0.9 / layer.spectral_norm((16, 16)) ** 2
    beta = 0.3 * eta * float(np.abs(layer.analyze(signals)).max())
    codes = np.zeros((2, layer.n_atoms, 16, 16))
    screened = []
    for _ in range(30):
        expected = layer.proximal_gradient_step(codes, signals, eta, beta, "relu")
        codes = step(codes, signals, eta, beta, "relu")
        np.testing.assert_allclose(codes, expected, atol=1e-12)
        screened.append(1 - step.active.mean(axis=(1, 2)))
    assert step.key is not None and np.max(screened, axis=0).min() > 0.2  # in both problems


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_expensive_screening_falls_back_to_the_plain_step(dtype, monkeypatch):
    monkeypatch.setattr(screening, "NS_GEMM", {4: 1e6, 8: 1e6})
    layer, signal = planted(5, dtype, (16, 16))
    step, _ = run_steps(layer, signal, "relu", dtype, 4, (16, 16), check_intervals=False)
    assert step.key is None and 0 < step.cooldown < screening.COOLDOWN


@pytest.mark.usefixtures("always_screen")
def test_results_do_not_depend_on_which_worker_takes_which_chunk(monkeypatch):
    """Workers take the next free chunk of positions: the outputs, the step's length and the
    collected non-zeros are the same bit for bit whether the workers share the chunks or the
    last one takes them all (here: run one after the other, in reverse order)."""
    layer, signal = planted(23, np.float32, (48, 40))
    eta = 0.9 / layer.spectral_norm((48, 40)) ** 2
    beta = 0.3 * float(np.abs(layer.analyze(signal)).max()) * eta
    monkeypatch.setattr(screening, "WINDOW_BLOCK", 64)  # many chunks on this small grid
    monkeypatch.setattr(screening.cpu, "thread_count", lambda: 3)
    results = []
    for in_order in (True, False):
        if not in_order:
            monkeypatch.setattr(screening.fft, "run_workers", lambda task, threads: [
                task(worker) for worker in reversed(range(threads))])
        step = screening.ScreenedStep(layer, (48, 40))
        codes = np.zeros((layer.n_atoms, 48, 40), np.float32)
        for _ in range(3):
            codes = step(codes, signal, eta, beta, "relu")
            assert step.key is not None
        results.append((codes, step.distance, step.nonzeros))
    (codes, distance, nonzeros), (codes2, distance2, nonzeros2) = results
    np.testing.assert_array_equal(codes, codes2)
    assert distance == distance2
    for a, b in zip(nonzeros, nonzeros2, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.usefixtures("always_screen")
def test_a_new_step_size_starts_new_intervals():
    layer, signal = planted(7, np.float64, (16, 16))
    step = screening.ScreenedStep(layer, (16, 16))
    codes = np.zeros((layer.n_atoms, 16, 16))
    first = step(codes, signal, 0.1, 0.01, "soft")
    step(first, signal, 0.1, 0.01, "soft")
    other = step(first, signal, 0.05, 0.01, "soft")
    np.testing.assert_allclose(other, layer.proximal_gradient_step(first, signal, 0.05, 0.01,
                                                                   "soft"), atol=1e-12)
    assert step.key == (0.05, 0.01, "soft")


@pytest.mark.usefixtures("always_screen")
@pytest.mark.parametrize("where", ["target", "codes"])
def test_non_finite_values_are_reported_not_screened(where):
    layer, signal = planted(11, np.float32, (16, 16))
    step = screening.ScreenedStep(layer, (16, 16))
    codes = np.zeros((layer.n_atoms, 16, 16), np.float32)
    codes = step(codes, signal, 0.05, 0.001, "relu")
    codes = step(codes, signal, 0.05, 0.001, "relu")
    if where == "target":
        signal = signal.copy()
        signal[0, 3, 3] = np.nan
    else:
        codes = codes.copy()
        codes[2, 5, 5] = -np.inf  # a ReLU would map it to zero
    assert step(codes, signal, 0.05, 0.001, "relu") is None
    assert step.key is None


def test_screening_needs_enough_work_per_window():
    small = ConvDictionary(np.ones((4, 2, 3, 3)))
    assert not screening.ScreenedStep.fits(small)
    assert screening.ScreenedStep.fits(ConvDictionary(np.ones((16, 8, 4, 4))))
    with pytest.raises(ValueError, match="kind"):
        screening.ScreenedStep(small, (8, 8))(np.zeros((4, 8, 8)), np.zeros((2, 8, 8)), 0.1,
                                              0.1, "median")


@pytest.mark.usefixtures("always_screen")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver", [ml_ista, ml_fista])
@pytest.mark.parametrize("nonneg", [True, False])
@pytest.mark.parametrize("scatter", [False, True])
def test_ml_ista_with_the_screened_deepest_layer_matches_the_numpy_engine(dtype, solver, nonneg,
                                                                          scatter, monkeypatch):
    """``scatter``: :math:`D_1\\hat\\gamma_1` by the effective dictionary from the collected
    non-zeros at every screened iterate (modelled free), else by its cost model."""
    rng = np.random.default_rng(2)
    layers = [ConvDictionary(rng.standard_normal(shape)).normalized()
              for shape in ((8, 1, 3, 3), (16, 8, 4, 4))]
    layers = [ConvDictionary(layer.filters.astype(dtype)) for layer in layers]
    signal = layers[0].synthesize(layers[1].synthesize(
        ((rng.random((16, 24, 24)) < 0.05) * rng.uniform(0.5, 1.5, (16, 24, 24))).astype(dtype)))
    made = []
    original = _ml_ista._screen

    def recorded(op):
        made.append(original(op))
        return made[-1]

    monkeypatch.setattr(_ml_ista, "_screen", recorded)
    scattered = []
    signal_synthesis = _ml_ista._signal_synthesis
    monkeypatch.setattr(_ml_ista, "_signal_synthesis", lambda *args: scattered.append(
        signal_synthesis(*args)) or scattered[-1])
    if scatter:
        monkeypatch.setattr(_ml_ista, "SCATTER_COST", 0.0)
    lams = [0.02, 0.02]
    fast = solver(layers, signal, lams, max_iter=25, nonneg=nonneg, engine="cpu")
    oracle = solver(layers, signal, lams, max_iter=25, nonneg=nonneg, engine="numpy")
    tol = 1e-4 if dtype == np.float32 else 1e-10
    scale = float(np.abs(oracle.codes[-1]).max())
    np.testing.assert_allclose(fast.codes[-1], oracle.codes[-1], atol=tol * scale)
    assert made[0] is not None and made[0].key is not None
    # the objectives recorded from the screened step's syntheses are the objective's
    for result in (fast, oracle):
        assert result.history["objective"][-1] == pytest.approx(
            ml_objective(layers, signal, result.codes[-1], lams), rel=10 * tol)
    used = {id(x) for x in scattered if x is not None}  # one array per screened output
    # ML-ISTA's iterates are the screened outputs (all but the first, from zero), and so is the
    # last for its objective; ML-FISTA's extrapolated points are not, only the iterates of its
    # three objectives (iterations 10, 20, 25) are
    assert len(used) == (0 if not scatter else 25 if solver is ml_ista else 3)
    # the objectives share their syntheses with the next iteration, the result with the last
    assert len(used) < sum(x is not None for x in scattered) or not scatter


@pytest.mark.usefixtures("always_screen")
def test_the_result_goes_to_a_given_buffer_that_shares_no_input():
    layer, signal = planted(17, np.float64, (16, 16))
    step = screening.ScreenedStep(layer, (16, 16))
    codes = np.zeros((layer.n_atoms, 16, 16))
    buffers = np.full((2, layer.n_atoms, 16, 16), np.nan)
    for k in range(6):  # alternating buffers, as an iterating pursuit passes them
        expected = layer.proximal_gradient_step(codes, signal, 0.05, 0.01, "relu")
        codes = step(codes, signal, 0.05, 0.01, "relu", out=buffers[k % 2])
        assert np.shares_memory(codes, buffers[k % 2])
        np.testing.assert_allclose(codes, expected, atol=1e-12)
    for bad in (codes, np.empty((layer.n_atoms, 16, 15)), np.empty_like(codes, np.float32),
                np.empty((layer.n_atoms, 16, 32))[..., ::2]):
        with pytest.raises(ValueError, match="out must"):
            step(codes, signal, 0.05, 0.01, "relu", out=bad)
