"""asv benchmarks of every pursuit: times, iterations to tolerance, gaps at a fixed budget and
recovery rates (DESIGN.md §7).

Problems are built once per ``setup`` from a fixed seed; each ``setup`` runs the pursuit once on
the same dtypes so the JIT is warm before anything is timed. ``track_*`` values are counts or
rates, not times: asv plots them against commits like any benchmark.
"""

import numpy as np

from mlverify import (
    MLCSC,
    ConvDictionary,
    basis_pursuit,
    holistic_pursuit,
    layered_basis_pursuit,
    layered_thresholding,
    ml_fista,
    ml_ista,
    omp,
    project,
    projection_baseline,
    relative_duality_gap,
    solve_problem_p,
)
from mlverify.bench.cbpdn import synthetic_problem

DTYPES = ["float32", "float64"]


def _unit_filters(rng, shape, dtype):
    filters = rng.standard_normal(shape)
    filters /= np.sqrt((filters**2).reshape(shape[0], -1).sum(axis=1)).reshape(
        (-1,) + (1,) * (len(shape) - 1))
    return filters.astype(dtype)


def _two_layer(dtype, n=512, seed=0, spikes=6):
    """A 1-D two-layer model (8 atoms × 9 taps, then 12 atoms over 8 channels × 5 taps), a
    planted sparse deepest code, its signal plus 1 % noise."""
    rng = np.random.default_rng(seed)
    D1 = ConvDictionary(_unit_filters(rng, (8, 1, 9), dtype))
    D2 = ConvDictionary(_unit_filters(rng, (12, 8, 5), dtype))
    model = MLCSC([D1, D2])
    deepest = np.zeros((12, n), dtype)
    positions = rng.choice(n // 16, spikes, replace=False) * 16
    deepest[rng.integers(0, 12, spikes), positions] = rng.choice([-1.0, 1.0], spikes) * (
        1 + rng.random(spikes))
    clean = D1.synthesize(D2.synthesize(deepest))
    y = (clean + 0.01 * np.abs(clean).max() * rng.standard_normal(clean.shape)).astype(dtype)
    return model, y, deepest


class BasisPursuit:
    """FISTA and ADMM on a 64×64 CBPDN problem (36 random 12×12 atoms, λ = 0.05)."""

    params = (DTYPES, ["fista", "admm"])
    param_names = ["dtype", "solver"]
    timeout = 300
    number = 1
    repeat = (1, 3, 20.0)

    def setup(self, dtype, solver):
        problem = synthetic_problem(size=64, dtype=dtype)
        self.D, self.y, self.lam = problem.dictionary, problem.y, problem.lam
        basis_pursuit(self.D, self.y, self.lam, solver=solver, max_iter=3)

    def time_to_gap_1e3(self, dtype, solver):
        basis_pursuit(self.D, self.y, self.lam, solver=solver, tol=1e-3, max_iter=5000)

    def track_iterations_to_gap_1e3(self, dtype, solver):
        return basis_pursuit(self.D, self.y, self.lam, solver=solver, tol=1e-3,
                             max_iter=5000).n_iter

    def track_gap_after_50_iterations(self, dtype, solver):
        result = basis_pursuit(self.D, self.y, self.lam, solver=solver, tol=1e-12, max_iter=50)
        return relative_duality_gap(self.D, self.y, result.codes[0], self.lam)[2]

    track_iterations_to_gap_1e3.unit = "iterations"
    track_gap_after_50_iterations.unit = "relative duality gap"


class LayeredPursuits:
    """Layered thresholding, layered BP, the projection P_M, ML-ISTA/ML-FISTA and (P)."""

    params = DTYPES
    param_names = ["dtype"]
    timeout = 300
    number = 1
    repeat = (1, 3, 20.0)

    def setup(self, dtype):
        self.model, self.y, self.deepest = _two_layer(dtype)
        self.lams = [0.02, 0.05]
        self.thresholds = [0.3, 0.5]
        for call in (self.time_layered_thresholding, self.time_project_omp):
            call(dtype)
        ml_ista(self.model, self.y, self.lams, max_iter=3)

    def time_layered_thresholding(self, dtype):
        layered_thresholding(self.model, self.y, self.thresholds, kind="soft")

    def time_layered_basis_pursuit(self, dtype):
        layered_basis_pursuit(self.model, self.y, self.lams, tol=1e-4)

    def time_project_omp(self, dtype):
        project(self.model, self.y, [24, 6])

    def time_ml_ista_100(self, dtype):
        ml_ista(self.model, self.y, self.lams, max_iter=100, tol=1e-12)

    def time_ml_fista_100(self, dtype):
        ml_fista(self.model, self.y, self.lams, max_iter=100, tol=1e-12)

    def time_problem_p(self, dtype):
        solve_problem_p(self.model, self.y, self.lams, tol=1e-4, max_iter=2000)

    def track_ml_fista_iterations_to_1e4(self, dtype):
        return ml_fista(self.model, self.y, self.lams, max_iter=5000, tol=1e-4).n_iter

    def track_ml_ista_certificate_after_100(self, dtype):
        return ml_ista(self.model, self.y, self.lams, max_iter=100, tol=1e-12).certificate

    track_ml_fista_iterations_to_1e4.unit = "iterations"
    track_ml_ista_certificate_after_100.unit = "certificate"


class OMP:
    """Convolutional OMP on the deepest layer's effective dictionary, and its recovery rate."""

    params = DTYPES
    param_names = ["dtype"]

    def setup(self, dtype):
        self.model, self.y, self.deepest = _two_layer(dtype)
        self.D = self.model.effective(2)
        omp(self.D, self.y, n_nonzero=6)

    def time_omp(self, dtype):
        omp(self.D, self.y, n_nonzero=6)

    def track_support_recovery_rate(self, dtype):
        """Fraction of 20 planted instances whose 6-spike support OMP finds exactly."""
        hits = 0
        for seed in range(20):
            model, y, deepest = _two_layer(dtype, seed=seed)
            codes = omp(model.effective(2), y, n_nonzero=6).codes[-1]
            hits += np.array_equal(codes != 0, deepest != 0)
        return hits / 20

    track_support_recovery_rate.unit = "fraction"


class Holistic:
    """Holistic pursuit against the projection baseline on a dense two-layer problem."""

    params = DTYPES
    param_names = ["dtype"]
    timeout = 300

    def setup(self, dtype):
        rng = np.random.default_rng(0)
        self.D1 = _unit_filters(rng, (80, 40), dtype).T.copy()
        self.D2 = _unit_filters(rng, (60, 80), dtype).T.copy()
        gamma2 = np.zeros(60, dtype)
        gamma2[rng.choice(60, 4, replace=False)] = 1.0
        self.y = (self.D1 @ (self.D2 @ gamma2)).astype(dtype)
        self.y += (0.01 * rng.standard_normal(self.y.shape)).astype(dtype)
        holistic_pursuit(self.D1, self.D2, self.y, n_zeros=20, lam=0.05)

    def time_holistic(self, dtype):
        holistic_pursuit(self.D1, self.D2, self.y, n_zeros=20, lam=0.05)

    def time_projection_baseline(self, dtype):
        projection_baseline(self.D1, self.D2, self.y, lam=0.05)
