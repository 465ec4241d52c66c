"""asv benchmarks of 1-D basis pursuit by locally greedy coordinate descent (DESIGN.md §7).

The problem is alphacsc's setting (:func:`mlverify.bench.csc1d.problem`: 10 signals of 4096
samples, 20 unit atoms of 32 taps, non-negative, reg 0.1, non-periodic boundary). ``setup`` solves
it once with the same dtype so that the JIT cache is warm; ``track_*`` record the sweeps and
coordinate updates needed for a certified relative duality gap.
"""

import numpy as np

from mlverify.bench.csc1d import problem
from mlverify.pursuits._bp_cd import bp_cd


class CSC1D:
    """``bp_cd`` to a certified relative duality gap ``tol``, alphacsc's problem."""

    params = (["float32", "float64"], [1e-3, 1e-4])
    param_names = ["dtype", "tol"]
    timeout = 300

    def setup(self, dtype, tol):
        self.problem = problem(dtype=np.dtype(dtype))
        self.solve(1e-1)

    def solve(self, tol):
        p = self.problem
        return bp_cd(p.D, p.y, p.lam, nonneg=True, tol=tol, boundary="valid")

    def time_bp_cd(self, dtype, tol):
        self.solve(tol)

    def track_sweeps(self, dtype, tol):
        return self.solve(tol).n_iter

    track_sweeps.unit = "sweeps"

    def track_updates(self, dtype, tol):
        return int(self.solve(tol).history["updates"][-1])

    track_updates.unit = "coordinate updates"
