"""Pursuits: one module per algorithm, one result type (:class:`PursuitResult`).

Pursuits call the model's operators and the kernels; they never import numba themselves.
"""

from ._certificates import bp_objective, kkt_residual, relative_duality_gap
from ._result import PursuitResult
from .basis_pursuit import basis_pursuit
from .holistic import holistic_pursuit, projection_baseline
from .layered import layered_basis_pursuit
from .ml_ista import ml_fista, ml_ista
from .omp import omp
from .problem_p import ml_objective, solve_problem_p
from .project import project
from .threshold import layered_thresholding, threshold

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
