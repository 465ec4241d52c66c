"""Pursuits: one module per algorithm, one result type (:class:`PursuitResult`).

Pursuits call the model's operators and the kernels; they never import numba themselves.
"""

from ._basis_pursuit import basis_pursuit
from ._certificates import bp_objective, kkt_residual, relative_duality_gap
from ._holistic import holistic_pursuit, projection_baseline
from ._layered import layered_basis_pursuit
from ._ml_ista import ml_fista, ml_ista
from ._omp import omp
from ._problem_p import ml_objective, solve_problem_p
from ._project import project
from ._result import PursuitResult
from ._threshold import layered_thresholding, threshold

__all__ = [
    "PursuitResult",
    "basis_pursuit",
    "bp_objective",
    "holistic_pursuit",
    "kkt_residual",
    "layered_basis_pursuit",
    "layered_thresholding",
    "ml_fista",
    "ml_ista",
    "ml_objective",
    "omp",
    "project",
    "projection_baseline",
    "relative_duality_gap",
    "solve_problem_p",
    "threshold",
]
