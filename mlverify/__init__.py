"""mlverify: fast kernels, executable theorems and speed tracking for ML-CSC.

The public API is what ``__all__`` lists; everything in a module whose name starts with ``_`` and
everything not re-exported here is private.
"""

import os

# Numba's OpenMP threads otherwise spin after every parallel region and steal the cores from the
# FFT threads (FFTW, scipy.fft) that the pursuits interleave with the kernels: one ADMM
# iteration on SPORCO's example took 36 ms instead of 13 ms (2 cores). Passive waiting costs a
# wake-up (tens of µs) per parallel region instead. An explicit user setting is kept; it must
# be in place before the OpenMP runtime loads, i.e. before the first parallel kernel runs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .model.constructions import (
    LowCoherenceFilters,
    barker13,
    golomb_filters,
    low_coherence_filters,
    random_filters,
    sparse_filters,
)
from .model.dictionary import ConvDictionary
from .model.measures import (
    coherence_lower_bound,
    contrast,
    extreme_magnitudes,
    patch_l0_inf,
    patch_l2_inf,
    stripe_l0_inf,
)
from .model.mlcsc import MLCSC
from .model.sampler import LayerReport, PlantedInstance, sample_instance
from .pursuits import (
    PursuitResult,
    basis_pursuit,
    bp_objective,
    holistic_pursuit,
    kkt_residual,
    layered_basis_pursuit,
    layered_thresholding,
    ml_fista,
    ml_ista,
    ml_objective,
    omp,
    project,
    projection_baseline,
    relative_duality_gap,
    solve_problem_p,
    threshold,
)

__version__ = "0.1.0"

__all__ = [
    "MLCSC",
    "ConvDictionary",
    "LayerReport",
    "LowCoherenceFilters",
    "PlantedInstance",
    "PursuitResult",
    "__version__",
    "barker13",
    "basis_pursuit",
    "bp_objective",
    "coherence_lower_bound",
    "contrast",
    "extreme_magnitudes",
    "golomb_filters",
    "holistic_pursuit",
    "kkt_residual",
    "layered_basis_pursuit",
    "layered_thresholding",
    "low_coherence_filters",
    "ml_fista",
    "ml_ista",
    "ml_objective",
    "omp",
    "patch_l0_inf",
    "patch_l2_inf",
    "project",
    "projection_baseline",
    "random_filters",
    "relative_duality_gap",
    "sample_instance",
    "solve_problem_p",
    "sparse_filters",
    "stripe_l0_inf",
    "threshold",
]
