r"""1-D convolutional sparse coding side by side with alphacsc's LGCD (DESIGN.md §7).

The problem is alphacsc's setting: 10 signals of :math:`T = 4096` samples, 20 unit-norm random
atoms of :math:`L = 32` taps, one channel, planted non-negative codes (density 0.5 % on the
:math:`T - L + 1` valid positions, amplitudes uniform in [0, 1) as in
``alphacsc.simulate.get_activations``) plus Gaussian noise of standard deviation 0.01, and

.. math::

    \min_{z \ge 0}\ F(z) = \sum_i \tfrac12\Big\|x_i - \sum_k z_{ik} * d_k\Big\|_2^2
        + \lambda\sum_{i,k,t} z_{ik}[t], \qquad \lambda = 0.1,

with alphacsc's **non-periodic** convention: :math:`z_{ik}` has :math:`T - L + 1` entries and
:math:`*` is the full linear convolution (length :math:`T`). mlverify solves the same problem with
``bp_cd(..., boundary="valid")``: codes of length :math:`T` constrained to 0 on their last
:math:`L - 1` positions, whose periodic synthesis has no wrap-around, so the two objectives are
the same function (checked numerically by :func:`objective_agreement`, both objective codes on
both solutions, float64).

**Protocol.** Both contenders run in this process, on the same float64 data, with the same
thread count (Numba's threads and, through threadpoolctl, the BLAS threads), JIT caches warm.
alphacsc's LGCD is a single-threaded Python loop (``n_jobs=1`` keeps it in this process; more
jobs would fork worker processes), so the default is **one thread** for both, the like-for-like
setting; ``threads=2`` lets mlverify sweep two signals at once (on a loaded machine the per-sweep
parallel start-up, paid because the Recorder needs the codes after every sweep, can make that
slower than one thread).
Every gap is :math:`(F - F^\star)/F^\star` with :math:`F^\star` the certified dual value of a
float64 solve of mlverify's LGCD to a relative duality gap of ``1e-9`` (:func:`certified_optimum`),
so each measured gap is an upper bound of the true relative suboptimality.

(a) alphacsc's ``update_z_multi(solver="lgcd")`` with its default settings (``tol=1e-3``: a
segment is left once its best coordinate step is at most ``1e-3·std(x_i)``) is timed to the end
(best of ``repeat`` runs): time :math:`t_a`, gap :math:`g_a`. mlverify's time to reach
:math:`g_a` is measured by a :class:`~mlverify.bench._record.Recorder` called after every sweep
that evaluates the gap outside the clock and stops the solver at :math:`g_a` (best of
``repeat``). Metric "time to alphacsc's objective", goal 2.

(b) Gaps ``1e-3`` and ``1e-4``: mlverify's times from the same kind of trace. alphacsc cannot be
stopped from outside, so it is run once per ``tol`` of :data:`ALPHACSC_TOLS` (to the end, timed as
in (a)); its time to a gap is that of the fastest run whose final gap reaches it (the loosest
sufficient ``tol``) — an honest upper bound of what a user gets by choosing ``tol``.

The progress figure shows mlverify's Recorder trace and alphacsc's own ``timing=True`` trace
(its objective every 100 coordinate visits, with the evaluation time excluded by alphacsc
itself): alphacsc solves the signals one after the other, so its batch objective at a time is the
sum of the finished signals' final objectives, the running signal's current one and the untouched
signals' :math:`\tfrac12\|x_i\|^2`.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..kernels import cpu
from ..model.dictionary import ConvDictionary
from ..pursuits._bp_cd import bp_cd
from ..pursuits._certificates import DualityGap
from ._record import Recorder
from ._result import Comparison, Metric
from .cbpdn import Optimum, time_to_gaps

#: alphacsc's setting.
N_SIGNALS, N_TIMES, N_ATOMS, N_TAPS = 10, 4096, 20, 32
DENSITY, NOISE, LAM = 0.005, 0.01, 0.1
#: Relative gaps at which the contenders are timed.
GAPS = (1e-3, 1e-4)
#: alphacsc ``tol`` values run for the time-to-gap metrics (its default is 1e-3).
ALPHACSC_TOLS = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3)
#: Goal of DESIGN.md §7: mlverify at least this many times faster.
GOAL = 2.0


@dataclass
class CSC1DProblem:
    """A batch of 1-D CSC problems in mlverify's layout (alphacsc's is derived from it).

    Attributes
    ----------
    D : ConvDictionary
        ``(m, 1, L)`` unit-norm atoms.
    y : ndarray, shape ``(B, 1, T)``
    lam : float
    planted : ndarray, shape ``(B, m, T)``
        The planted codes (0 on the last ``L - 1`` positions).
    """

    D: ConvDictionary
    y: np.ndarray
    lam: float
    planted: np.ndarray = field(repr=False)

    @property
    def n_valid(self) -> int:
        """Free code positions per atom, :math:`T - L + 1`."""
        return self.y.shape[-1] - self.D.kernel_size[0] + 1

    def certificate(self) -> DualityGap:
        """The duality gap of the non-periodic (restricted-support) problem."""
        support = np.zeros((self.D.n_atoms, self.y.shape[-1]), bool)
        support[:, : self.n_valid] = True
        return DualityGap(self.D, self.y, self.lam, nonneg=True, support=support)

    def pad(self, z: np.ndarray) -> np.ndarray:
        """alphacsc codes ``(B, m, T - L + 1)`` as mlverify codes ``(B, m, T)`` (zero tail)."""
        out = np.zeros((*z.shape[:-1], self.y.shape[-1]), self.D.dtype)
        out[..., : self.n_valid] = z
        return out


def problem(seed: int = 0, dtype=np.float64) -> CSC1DProblem:
    """alphacsc's setting, deterministic in ``seed`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((N_ATOMS, 1, N_TAPS))
    atoms /= np.sqrt((atoms**2).sum(axis=(1, 2), keepdims=True))
    D = ConvDictionary(atoms)
    n_valid = N_TIMES - N_TAPS + 1
    planted = np.zeros((N_SIGNALS, N_ATOMS, N_TIMES))
    active = rng.random((N_SIGNALS, N_ATOMS, n_valid)) < DENSITY
    planted[..., :n_valid] = active * rng.uniform(0.0, 1.0, active.shape)
    y = D.synthesize(planted) + NOISE * rng.standard_normal((N_SIGNALS, 1, N_TIMES))
    return CSC1DProblem(ConvDictionary(atoms.astype(dtype)), y.astype(dtype), LAM,
                        planted.astype(dtype))


def certified_optimum(prob: CSC1DProblem, tol: float = 1e-9) -> Optimum:
    """mlverify's LGCD in float64 to a certified relative duality gap ``tol``."""
    D64 = ConvDictionary(prob.D.filters.astype(np.float64))
    start = time.perf_counter()
    result = bp_cd(D64, prob.y.astype(np.float64), prob.lam, nonneg=True, tol=tol,
                   max_iter=100000, boundary="valid")
    history = result.history
    certified = [i for i, flag in enumerate(history["certified"]) if flag]
    return Optimum(primal=min(history["objective"][i] for i in certified),
                   dual=max(history["dual"][i] for i in certified), iterations=result.n_iter,
                   seconds=time.perf_counter() - start)


def objective_agreement(prob: CSC1DProblem, ours: np.ndarray, theirs: np.ndarray) -> float:
    """Largest relative difference between alphacsc's and mlverify's objective (float64).

    Both objective codes evaluated on both solutions (``ours`` ``(B, m, T)``, ``theirs``
    ``(B, m, T - L + 1)``); ~1e-15 when the two minimise the same function.
    """
    from alphacsc.loss_and_gradient import compute_X_and_objective_multi

    certificate = prob.certificate()
    atoms = prob.D.filters.astype(np.float64)
    x = prob.y.astype(np.float64)
    worst = 0.0
    for codes in (ours.astype(np.float64), prob.pad(theirs)):
        mine = certificate.objective(codes)
        # alphacsc's own objective: ½‖x - Σ z_k * d_k‖² + reg Σ z (all its solvers use it)
        peer = compute_X_and_objective_multi(x, codes[..., : prob.n_valid], D_hat=atoms,
                                             reg=prob.lam, feasible_evaluation=False)
        worst = max(worst, abs(mine - peer) / abs(peer))
    return worst


def _gap_recorder(prob: CSC1DProblem, optimum: Optimum, stop_below: float) -> Recorder:
    certificate = prob.certificate()
    return Recorder(lambda codes: (certificate.objective(codes) - optimum.dual) / optimum.dual,
                    stop_below=stop_below)


def run_mlverify(prob: CSC1DProblem, recorder: Recorder, max_iter: int = 20000):
    """Our LGCD traced by ``recorder`` after every sweep (its stop condition ends the run)."""
    recorder.start()
    return bp_cd(prob.D, prob.y, prob.lam, nonneg=True, tol=1e-12, max_iter=max_iter,
                 boundary="valid", callback=lambda iteration, codes: recorder(codes))


def run_alphacsc(prob: CSC1DProblem, tol: float = 1e-3) -> tuple[np.ndarray, float]:
    """alphacsc's LGCD (``update_z_multi``, defaults but ``tol``): codes and wall time."""
    from alphacsc.update_z_multi import update_z_multi

    x = prob.y.astype(np.float64)
    atoms = prob.D.filters.astype(np.float64)
    start = time.perf_counter()
    z, _, _ = update_z_multi(x, atoms, prob.lam, solver="lgcd", solver_kwargs={"tol": tol},
                             n_jobs=1)
    return z, time.perf_counter() - start


def alphacsc_trace(prob: CSC1DProblem, optimum: Optimum) -> dict[str, list[float]]:
    """alphacsc's own ``timing=True`` trace, signals stitched in their order of solution."""
    from alphacsc.update_z_multi import _update_z_multi_idx

    x = prob.y.astype(np.float64)
    atoms = prob.D.filters.astype(np.float64)
    initial = [0.5 * float(np.sum(xi**2)) for xi in x]
    finals = list(initial)
    times, values, clock = [], [], 0.0
    for i, xi in enumerate(x):
        *_, pobj, seconds = _update_z_multi_idx(
            xi, atoms, prob.lam, np.zeros((prob.D.n_atoms, prob.n_valid)), False,
            solver="lgcd", timing=True)
        for objective, step in zip(pobj, seconds, strict=True):
            clock += step
            total = sum(finals[:i]) + objective + sum(initial[i + 1:])
            times.append(clock)
            values.append((total - optimum.dual) / optimum.dual)
        finals[i] = pobj[-1]
    return {"time": times, "value": values}


@contextlib.contextmanager
def _threads(threads: int):
    """Numba and BLAS threads both set to ``threads`` (restored on exit)."""
    from threadpoolctl import threadpool_limits

    previous = cpu.thread_count()
    cpu.set_thread_count(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        cpu.set_thread_count(previous)


def compare(quick: bool = False, threads: int = 1, repeat: int | None = None,
            seed: int = 0) -> Comparison:
    """mlverify's LGCD against alphacsc's on :func:`problem` (see the module docstring).

    Parameters
    ----------
    quick : bool
        One timed run per contender (instead of 3), alphacsc ``tol`` values 1e-2 and 1e-3 only,
        and an optimum certified to 1e-8 instead of 1e-9.
    threads : int
        Numba and BLAS threads for both (default 1, see the module docstring).
    repeat : int, optional
        Timed runs per measurement (the best is kept); default 1 if ``quick`` else 3.
    seed : int
        Seed of :func:`problem`.
    """
    name, title = "csc-1d", "1-D CSC, 10 x 4096, 20 atoms of 32 taps, non-negative, reg 0.1"
    try:
        import alphacsc
    except ImportError:
        return Comparison(name, title, "alphacsc", skipped="alphacsc not installed "
                                                           "(pip install 'mlverify[compare]')")
    repeat = (1 if quick else 3) if repeat is None else repeat
    tols = (1e-2, 1e-3) if quick else ALPHACSC_TOLS
    prob = problem(seed)
    with _threads(threads):
        # warm both JIT caches on the problem itself
        bp_cd(prob.D, prob.y, prob.lam, nonneg=True, tol=1e-1, boundary="valid")
        run_alphacsc(CSC1DProblem(prob.D, prob.y[:1], prob.lam, prob.planted[:1]), tol=1e-1)
        optimum = certified_optimum(prob, tol=1e-8 if quick else 1e-9)

        peer_runs = {}
        for tol in tols:
            best = math.inf
            for _ in range(repeat if tol == 1e-3 else 1):
                z, seconds = run_alphacsc(prob, tol)
                best = min(best, seconds)
            gap = (prob.certificate().objective(prob.pad(z)) - optimum.dual) / optimum.dual
            peer_runs[tol] = (best, gap, z)
        t_a, g_a, z_a = peer_runs[1e-3]

        ours_to_peer, our_codes, sweeps_to_peer = math.inf, None, -1
        for _ in range(repeat):
            recorder = _gap_recorder(prob, optimum, stop_below=g_a)
            result = run_mlverify(prob, recorder)
            if recorder.values[-1] <= g_a and recorder.times[-1] < ours_to_peer:
                ours_to_peer, our_codes, sweeps_to_peer = recorder.times[-1], result.codes[0], \
                    result.n_iter
        trace_recorder, ours_to_gap = None, dict.fromkeys(GAPS, math.inf)
        for _ in range(repeat):
            recorder = _gap_recorder(prob, optimum, stop_below=min(GAPS))
            run_mlverify(prob, recorder)
            for gap, seconds in time_to_gaps(recorder).items():
                ours_to_gap[gap] = min(ours_to_gap[gap], seconds)
            trace_recorder = trace_recorder or recorder
        certified_times = []
        for _ in range(repeat):
            start = time.perf_counter()
            certified = bp_cd(prob.D, prob.y, prob.lam, nonneg=True, tol=1e-4, boundary="valid")
            certified_times.append(time.perf_counter() - start)
        peer_trace = alphacsc_trace(prob, optimum)

    metrics = [Metric("time to alphacsc's objective", ours_to_peer, t_a, GOAL)]
    for gap in GAPS:
        reached = [seconds for seconds, final, _ in peer_runs.values() if final <= gap]
        metrics.append(Metric(f"time to relative gap {gap:g}", ours_to_gap[gap],
                              min(reached) if reached else math.nan, GOAL))
    metrics.append(Metric("mlverify to its certified duality gap 1e-4 (alphacsc: its default "
                          "run)", min(certified_times), t_a))
    agreement = objective_agreement(
        prob, certified.codes[0] if our_codes is None else our_codes, z_a)
    density = float((certified.codes[0][..., : prob.n_valid] != 0).mean())
    problem_info = {
        "signals": N_SIGNALS, "times": N_TIMES, "atoms": N_ATOMS, "taps": N_TAPS, "lam": LAM,
        "density_planted": DENSITY, "noise": NOISE, "dtype": "float64", "threads": threads,
        "seed": seed, "boundary": "valid (alphacsc's z of length T - L + 1)",
        "optimum_dual": optimum.dual, "optimum_primal": optimum.primal,
        "optimum_uncertainty": optimum.uncertainty, "objective_agreement": agreement,
    }
    notes = [
        f"alphacsc default (tol=1e-3): {t_a:.3f} s, relative gap {g_a:.3g}, solution density "
        f"{float((z_a != 0).mean()):.4f}",
        *(f"alphacsc tol={tol:g}: {seconds:.3f} s, relative gap {gap:.3g}"
          for tol, (seconds, gap, _) in peer_runs.items()),
        f"mlverify: {sweeps_to_peer} sweeps to alphacsc's objective; certified stop (gap 1e-4) "
        f"after {certified.n_iter} sweeps, {int(certified.history['updates'][-1])} coordinate "
        f"updates, solution density {density:.4f}",
        f"certified optimum: {optimum.iterations} sweeps, {optimum.seconds:.1f} s, "
        f"(primal - dual)/dual = {optimum.uncertainty:.2g}",
        f"objectives of both codes agree to {agreement:.2g} (relative, float64)",
    ]
    return Comparison(name, title, f"alphacsc {alphacsc.__version__} (update_z_multi, lgcd)",
                      problem=problem_info, metrics=metrics,
                      traces={"mlverify": trace_recorder.trace(), "alphacsc": peer_trace},
                      notes=notes)
