"""The one result type every pursuit returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Values of :attr:`PursuitResult.status`.
STATUSES = ("converged", "max_iter", "diverged", "non-finite", "exact", "stopped")


@dataclass
class PursuitResult:
    """Outcome of a pursuit.

    Attributes
    ----------
    codes : list of ndarray
        Per-layer estimates, deepest last (``[Γ̂_1, …, Γ̂_K]``; a single-layer pursuit gives one).
    n_iter : int
        Iterations run (0 for closed-form pursuits such as thresholding).
    converged : bool
        Whether the stopping rule (the certificate below ``tol``) was met.
    certificate : float
        The quantity the stopping rule tests: a relative duality gap, an optimality residual or a
        fixed-point residual (``certificate_kind`` says which); ``nan`` when not applicable.
    certificate_kind : str
        Name of the certificate, e.g. ``"relative_duality_gap"``.
    history : dict of str to list of float
        Diagnostics recorded along the iterations (objective, certificate, …).
    status : str
        One of :data:`STATUSES`: iterative solvers report ``"diverged"`` or ``"non-finite"``
        instead of returning garbage silently; ``"stopped"`` when the caller's ``callback``
        asked to stop.
    message : str
        A human-readable explanation of ``status``.
    """

    codes: list[np.ndarray]
    n_iter: int = 0
    converged: bool = True
    certificate: float = float("nan")
    certificate_kind: str = "none"
    history: dict[str, list[float]] = field(default_factory=dict)
    status: str = "exact"
    message: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
