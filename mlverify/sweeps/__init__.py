"""Sweeps (phase transitions): ``trial(params, seed) -> record`` over a grid, a resumable SQLite
store, and local-process or Dask executors.

A user-defined sweep::

    from mlverify.sweeps import Grid, Store, Sweep, register, run_sweep

    def my_trial(params, seed):          # module level: workers import it by name
        rng = numpy.random.default_rng(seed)
        return {"ok": bool(rng.random() < params["p"])}

    SWEEP = register(Sweep("my-sweep", Grid({"p": [0.1, 0.5]}), my_trial, trials=100))
    with Store("my.sqlite") as store:
        run_sweep(SWEEP, store, workers=2)   # rerun the same call to resume after a kill

or from the command line, ``mlverify sweep my-sweep --module my_module --store my.sqlite``.
"""

from . import holistic, lt_vs_lbp, ml_ista_convergence, phase_bp
from .grid import Grid
from .report import CellSummary, aggregate, write_report, write_summary
from .runner import EXECUTORS, RunSummary, run_sweep
from .store import SCHEMA_VERSION, Row, Store
from .sweep import Sweep, check_record, get, register, registry, trial_seed, unregister

register(phase_bp.SWEEP)
register(lt_vs_lbp.SWEEP)
register(holistic.SWEEP)
register(ml_ista_convergence.SWEEP)

__all__ = [
    "EXECUTORS",
    "SCHEMA_VERSION",
    "CellSummary",
    "Grid",
    "Row",
    "RunSummary",
    "Store",
    "Sweep",
    "aggregate",
    "check_record",
    "get",
    "register",
    "registry",
    "run_sweep",
    "trial_seed",
    "unregister",
    "write_report",
    "write_summary",
]
