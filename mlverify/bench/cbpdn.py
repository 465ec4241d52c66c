r"""CBPDN side by side with SPORCO on SPORCO's own example (DESIGN.md §7).

The problem is the one of SPORCO's ``cbpdn`` example script: the kodim23 image (shipped with
SPORCO), grey, crop ``[160:416, 60:316]`` (256×256), the high-pass part of a Tikhonov split
(:math:`\lambda = 10`, pad 16), the dictionary ``G:12x12x36`` (also shipped) and

.. math::

    \min_\Gamma\ F(\Gamma) = \tfrac12\Big\|s - \sum_m d_m * \Gamma_m\Big\|_2^2
        + \lambda\|\Gamma\|_1, \qquad \lambda = 5\cdot10^{-2},

periodic convolutions in float32 (SPORCO's dtype for this image). SPORCO's ``d_m * \Gamma_m``
(filters zero-padded at the origin, products of DFTs) is exactly ``ConvDictionary.synthesize``
with ``filters[m, 0] = d_m`` (checked in :func:`load_problem`), so both minimise the identical
:math:`F`.

**Protocol.** Both contenders run in this process with the same thread count (Numba's and
SPORCO's FFT threads), warmed up on the same problem; a :class:`~mlverify.bench._record.Recorder`
evaluates :math:`F` of the sparse iterate (mlverify's ADMM :math:`Z`, SPORCO's ``Y``) in float64
after every iteration, outside the clock, and the times at which the relative gap
:math:`(F - F^\star)/F^\star` first falls to :math:`10^{-3}` and :math:`10^{-4}` are compared
(each contender's fastest of :data:`REPEAT` alternating runs: other load only adds time).
:math:`F^\star` is the **certified lower bound** (a dual value) of a long float64 solve, so
the gaps measured are upper bounds of the true relative suboptimality (both contenders are
judged against the same number); the bound's own uncertainty (best primal minus dual) is
reported. mlverify's time to its own certified stop (duality gap :math:`\le 10^{-4}`, every
check included) is reported as well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

from ..model.dictionary import ConvDictionary
from ..pursuits import basis_pursuit
from ._result import Comparison

#: SPORCO example settings.
CROP = (slice(160, 416), slice(60, 316))
TIKHONOV_LAMBDA, TIKHONOV_PAD = 10.0, 16
DICTIONARY = "G:12x12x36"
LAM = 5e-2
#: Relative gaps at which the contenders are timed.
GAPS = (1e-3, 1e-4)
#: Goal of DESIGN.md §7: mlverify at least this many times faster.
GOAL = 5.0
#: Traced runs per contender (alternating); each contender's fastest run is reported.
REPEAT = 3


@dataclass
class CBPDNProblem:
    """A 2-D CBPDN problem in both layouts.

    Attributes
    ----------
    filters_hwm : ndarray, shape ``(n1, n2, m)``
        SPORCO's dictionary layout.
    signal : ndarray, shape ``(H, W)``
    lam : float
    source : str
        Where the data come from.
    """

    filters_hwm: np.ndarray
    signal: np.ndarray
    lam: float
    source: str

    @property
    def dictionary(self) -> ConvDictionary:
        """The same dictionary as a :class:`ConvDictionary`, ``filters[m, 0] = d_m``."""
        return ConvDictionary(np.ascontiguousarray(np.moveaxis(self.filters_hwm, -1, 0)[:, None]))

    @property
    def y(self) -> np.ndarray:
        """The signal as mlverify's ``(1, H, W)``."""
        return self.signal[None]


def load_problem() -> CBPDNProblem:
    """SPORCO's example problem (needs ``sporco``: ``pip install 'mlverify[compare]'``)."""
    from sporco import signal, util

    image = util.ExampleImages().image("kodim23.png", scaled=True, gray=True, idxexp=CROP)
    _, high = signal.tikhonov_filter(image, TIKHONOV_LAMBDA, TIKHONOV_PAD)
    filters = util.convdicts()[DICTIONARY]
    problem = CBPDNProblem(np.ascontiguousarray(filters), np.ascontiguousarray(high), LAM,
                           f"sporco kodim23 crop {CROP}, Tikhonov high-pass, {DICTIONARY}")
    _check_same_operator(problem)
    return problem


def synthetic_problem(size: int = 256, seed: int = 0, dtype=np.float32) -> CBPDNProblem:
    """A problem of the same sizes without SPORCO: 36 unit-norm random 12×12 atoms and a
    smooth random image minus its local mean (for asv and the tests)."""
    rng = np.random.default_rng(seed)
    filters = rng.standard_normal((12, 12, 36))
    filters /= np.sqrt((filters**2).sum(axis=(0, 1)))
    noise = rng.standard_normal((size, size))
    spectrum = scipy.fft.rfft2(noise)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    radius = np.hypot(fy, fx)
    image = scipy.fft.irfft2(spectrum * radius / (radius + 0.05) / (1 + 40 * radius), s=noise.shape)
    image *= 0.1 / image.std()
    return CBPDNProblem(filters.astype(dtype), image.astype(dtype), LAM,
                        f"synthetic {size}x{size}, 36 random 12x12 atoms (seed {seed})")


def _check_same_operator(problem: CBPDNProblem) -> None:
    """SPORCO's DFT-domain synthesis equals ``ConvDictionary.synthesize`` (same objective)."""
    rng = np.random.default_rng(1)
    shape = problem.signal.shape
    codes = rng.standard_normal((problem.filters_hwm.shape[-1], *shape))
    spectra = np.fft.rfft2(problem.filters_hwm.astype(np.float64), s=shape, axes=(0, 1))
    theirs = np.fft.irfft2((spectra * np.fft.rfft2(np.moveaxis(codes, 0, -1), axes=(0, 1)))
                           .sum(axis=-1), s=shape, axes=(0, 1))
    filters = np.moveaxis(problem.filters_hwm.astype(np.float64), -1, 0)[:, None]
    ours = ConvDictionary(np.ascontiguousarray(filters)).synthesize(codes)[0]
    if not np.allclose(theirs, ours, rtol=0, atol=1e-9 * np.abs(ours).max()):
        raise AssertionError("SPORCO's convolution and ConvDictionary.synthesize differ")


class Objective:
    r""":math:`F(\Gamma)` in float64 through the DFT (a measurement, not a certificate).

    Accepts codes as ``(m, H, W)`` / ``(1, m, H, W)`` (mlverify) or ``(H, W, …, m)`` (SPORCO,
    ``hwm=True``).
    """

    def __init__(self, problem: CBPDNProblem, workers: int = 1) -> None:
        self.shape = problem.signal.shape
        self.spectra = scipy.fft.rfft2(problem.filters_hwm.astype(np.float64), s=self.shape,
                                       axes=(0, 1))
        self.signal = problem.signal.astype(np.float64)
        self.lam = problem.lam
        self.workers = workers

    def __call__(self, codes, hwm: bool = False) -> float:
        codes = np.asarray(codes, dtype=np.float64)
        codes = codes.reshape(*self.shape, -1) if hwm else np.moveaxis(
            codes.reshape(-1, *self.shape), 0, -1)
        model = scipy.fft.irfft2(
            (self.spectra * scipy.fft.rfft2(codes, axes=(0, 1), workers=self.workers)).sum(-1),
            s=self.shape, workers=self.workers)
        residual = self.signal - model
        return 0.5 * float(np.einsum("ij,ij->", residual, residual)) + self.lam * float(
            np.abs(codes).sum())


@dataclass
class Optimum:
    """A certified bracket :math:`\\text{dual} \\le F^\\star \\le \\text{primal}`."""

    primal: float
    dual: float
    iterations: int
    seconds: float

    @property
    def uncertainty(self) -> float:
        """``(primal - dual) / dual``: how far above :math:`F^\\star` the bound may sit."""
        return (self.primal - self.dual) / self.dual


def certified_optimum(problem: CBPDNProblem, tol: float = 1e-6,
                      max_iter: int = 20000) -> Optimum:
    """Solve in float64 by ADMM to a certified relative duality gap ``tol``."""
    D = ConvDictionary(problem.dictionary.filters.astype(np.float64))
    result = basis_pursuit(D, problem.y.astype(np.float64), problem.lam, solver="admm", tol=tol,
                           max_iter=max_iter)
    history = result.history
    return Optimum(primal=min(history["objective"]), dual=max(history["dual"]),
                   iterations=result.n_iter, seconds=history["time"][-1])


def relative_gap_recorder(objective: Objective, optimum: Optimum, stop_below: float,
                          hwm: bool = False):
    """A :class:`Recorder` of :math:`(F - F^\\star)/F^\\star` against the certified dual."""
    from ._record import Recorder

    def gap(*args) -> float:
        return (objective(args[-1], hwm=hwm) - optimum.dual) / optimum.dual

    return Recorder(gap, stop_below=stop_below)


def run_mlverify(problem: CBPDNProblem, recorder, max_iter: int = 3000, solver: str = "admm"):
    """Our solver traced by ``recorder`` (its stop condition ends the run)."""
    recorder.start()
    return basis_pursuit(problem.dictionary, problem.y, problem.lam, solver=solver,
                         tol=1e-12, max_iter=max_iter,
                         callback=lambda iteration, codes: recorder(codes))


def run_sporco(problem: CBPDNProblem, recorder, max_iter: int = 3000):
    """SPORCO's ``ConvBPDN`` (its default options, ``FastSolve``) traced by ``recorder``."""
    from sporco.admm import cbpdn

    def callback(solver) -> bool:
        return recorder(solver.getcoef())

    options = cbpdn.ConvBPDN.Options({"Verbose": False, "MaxMainIter": max_iter,
                                      "RelStopTol": 0.0, "FastSolve": True,
                                      "Callback": callback})
    recorder.start()
    solver = cbpdn.ConvBPDN(problem.filters_hwm, problem.signal, problem.lam, options, dimK=0)
    solver.solve()
    return solver


def hwm_codes(codes: np.ndarray) -> np.ndarray:
    """mlverify codes ``(…, m, H, W)`` in SPORCO's ``(H, W, m)`` layout."""
    return np.moveaxis(np.asarray(codes).reshape(-1, *codes.shape[-2:]), 0, -1)


def time_to_gaps(recorder, gaps=GAPS) -> dict[float, float]:
    """``{gap: first solver time at or below it}`` (``nan`` if never reached)."""
    return {gap: recorder.time_to(gap) for gap in gaps}


def summary_note(name: str, recorder) -> str:
    """Iterations and final gap of one traced run."""
    final = recorder.values[-1] if recorder.values else math.nan
    return f"{name}: {len(recorder.values)} iterations traced, final relative gap {final:.3g}"


def _warm_up(problem: CBPDNProblem, with_sporco: bool) -> None:
    """Compile the kernels and plan the FFTs of both contenders on this problem (1 iteration)."""
    from ._record import Recorder

    run_mlverify(problem, Recorder(lambda *args: 0.0, stop_below=0.0))
    if with_sporco:
        run_sporco(problem, Recorder(lambda *args: 0.0, stop_below=0.0))


def compare(quick: bool = False, threads: int | None = None) -> Comparison:
    """mlverify's ADMM against SPORCO's ``ConvBPDN`` on SPORCO's example (module docstring).

    Parameters
    ----------
    quick : bool
        Time only the gap :math:`10^{-3}`, once, against an optimum certified to
        :math:`10^{-5}` (instead of :math:`10^{-3}, 10^{-4}`, best of :data:`REPEAT`, against
        :math:`10^{-6}`).
    threads : int, optional
        Threads for both contenders (default: Numba's current count).
    """
    from threadpoolctl import threadpool_limits

    from ..kernels import cpu
    from ._result import Metric

    name, title = "cbpdn-2d", "CBPDN, 2-D: SPORCO's kodim23 example (256×256, 36 atoms 12×12)"
    try:
        import sporco
        import sporco.fft
    except ImportError:
        return Comparison(name, title, "sporco",
                          skipped="sporco not installed (pip install 'mlverify[compare]')")
    threads = threads or cpu.thread_count()
    gaps = GAPS[:1] if quick else GAPS
    cpu.set_thread_count(threads)
    sporco.fft.pyfftw_threads = threads
    with threadpool_limits(threads):
        problem = load_problem()
        optimum = certified_optimum(problem, tol=1e-5 if quick else 1e-6)
        objective = Objective(problem, workers=threads)
        _warm_up(problem, with_sporco=True)
        runs: dict[str, list] = {"mlverify": [], "sporco": []}
        for _ in range(1 if quick else REPEAT):  # alternate the contenders, keep each one's best
            runs["mlverify"].append(relative_gap_recorder(objective, optimum, min(gaps)))
            result = run_mlverify(problem, runs["mlverify"][-1])
            runs["sporco"].append(relative_gap_recorder(objective, optimum, min(gaps), hwm=True))
            run_sporco(problem, runs["sporco"][-1])
        certified = basis_pursuit(problem.dictionary, problem.y, problem.lam, solver="admm",
                                  tol=min(gaps))
    ours, theirs = (min(runs[name], key=lambda rec: rec.time_to(min(gaps)))
                    for name in ("mlverify", "sporco"))
    coefficients = problem.signal.size * problem.filters_hwm.shape[-1]
    per_iteration = ours.times[-1] / len(ours.times)
    metrics = [Metric(f"time to relative gap {gap:g}", ours.time_to(gap), theirs.time_to(gap),
                      goal=GOAL) for gap in gaps]
    metrics.append(Metric(f"mlverify certified stop (duality gap ≤ {min(gaps):g}) vs SPORCO "
                          f"to gap {min(gaps):g}", certified.history["time"][-1],
                          theirs.time_to(min(gaps))))
    notes = [
        summary_note("mlverify ADMM", ours),
        summary_note("SPORCO ConvBPDN", theirs),
        f"mlverify: {per_iteration * 1e3:.1f} ms per iteration (certificate checks included), "
        f"{per_iteration / coefficients * 1e9:.2f} ns per coefficient-iteration; SPORCO: "
        f"{theirs.times[-1] / len(theirs.times) * 1e3:.1f} ms per iteration",
        f"mlverify certified stop: {certified.n_iter} iterations, certificate "
        f"{certified.certificate:.3g}, status {certified.status}",
        f"optimum certified in float64: dual {optimum.dual:.10g} <= F* <= primal "
        f"{optimum.primal:.10g} (uncertainty {optimum.uncertainty:.2g}, "
        f"{optimum.iterations} ADMM iterations, {optimum.seconds:.1f} s)",
        f"final ρ of mlverify: {result.history['rho'][-1]:.3g}",
    ]
    problem_info = {"source": problem.source, "shape": list(problem.signal.shape),
                    "atoms": problem.filters_hwm.shape[-1],
                    "kernel": list(problem.filters_hwm.shape[:2]), "lam": problem.lam,
                    "dtype": str(problem.signal.dtype), "threads": threads,
                    "optimum_dual": optimum.dual, "optimum_primal": optimum.primal}
    return Comparison(name, title, f"sporco {sporco.__version__} (admm.cbpdn.ConvBPDN)",
                      problem=problem_info, metrics=metrics,
                      traces={"mlverify": ours.trace(), "sporco": theirs.trace()}, notes=notes)
