"""Running a sweep: workers compute whole grid cells, the calling process commits every trial.

Executors:

- ``"local"`` (default): a pool of ``spawn``-started processes (forking after Numba's threads
  have started is unsafe); each worker runs the sweep's ``warmup`` once, from the pool's
  initializer;
- ``"dask"``: Dask distributed, on a ``LocalCluster`` of ``workers`` single-threaded workers or
  on the existing cluster at ``scheduler``; a worker runs ``warmup`` before its first cell;
- ``"serial"``: in this process (the Python API only; for debugging and small runs).

A task is one grid cell with its missing trials, and returns one ``(trial, seed, record,
seconds)`` tuple per trial. The calling process inserts each trial in its own transaction as the
cell's results arrive, so killing it loses only the cells in flight, which a rerun (resume)
computes again; trials already stored are never computed twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context

from .store import Store
from .sweep import Record, Sweep

EXECUTORS = ("local", "dask", "serial")

#: Names of the sweeps whose ``warmup`` already ran in this process.
_WARM: set[str] = set()

Result = tuple[int, int, Record, float]  # (trial, seed, record, seconds)


def warm(sweep: Sweep) -> None:
    """Run ``sweep.warmup`` once in this process (later calls do nothing)."""
    if sweep.name not in _WARM:
        if sweep.warmup is not None:
            sweep.warmup()
        _WARM.add(sweep.name)


def run_cell(sweep: Sweep, cell: int, trials: Iterable[int]) -> tuple[int, list[Result]]:
    """Compute ``trials`` of ``cell`` (the task a worker runs): ``(cell, results)``."""
    warm(sweep)
    return cell, [(trial, *sweep.run_trial(cell, trial)) for trial in trials]


@dataclass(frozen=True)
class RunSummary:
    """What :func:`run_sweep` did."""

    sweep: str
    total: int
    already_stored: int
    computed: int
    seconds: float


def run_sweep(
    sweep: Sweep,
    store: Store,
    *,
    executor: str = "local",
    workers: int = 1,
    scheduler: str | None = None,
    dask_processes: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> RunSummary:
    """Run the trials of ``sweep`` that ``store`` does not hold yet, committing each one.

    Parameters
    ----------
    sweep : Sweep
    store : Store
        Trials already there are skipped (resume); the others are inserted as they arrive.
    executor : {"local", "dask", "serial"}
    workers : int
        Processes of the local pool, or workers of the Dask ``LocalCluster``. Results do not
        depend on it.
    scheduler : str, optional
        Address of an existing Dask scheduler (``executor="dask"`` only).
    dask_processes : bool
        Whether the Dask ``LocalCluster`` uses processes (True) or threads of this process.
    progress : callable, optional
        ``progress(stored, total)`` once at the start and after every committed trial.

    Returns
    -------
    RunSummary

    Notes
    -----
    Worker processes are spawned: a script calling this with ``executor="local"`` or a Dask
    ``LocalCluster`` of processes needs the ``if __name__ == "__main__":`` guard. A Dask
    ``LocalCluster`` with ``dask_processes=False`` runs the workers as threads of this process:
    use one worker there (Numba's parallel kernels are not meant to be entered by several
    threads at once).
    """
    if not isinstance(sweep, Sweep):
        raise TypeError(f"sweep must be a Sweep, got {type(sweep).__name__}")
    if not isinstance(store, Store):
        raise TypeError(f"store must be a Store, got {type(store).__name__}")
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if scheduler is not None and executor != "dask":
        raise ValueError("scheduler is only used with executor='dask'")
    start = time.perf_counter()
    store.register(sweep)
    todo = store.missing(sweep)
    stored = sweep.size - sum(len(trials) for trials in todo.values())
    already = stored
    if progress is not None:
        progress(stored, sweep.size)
    if todo:
        if executor == "serial":
            results = (run_cell(sweep, cell, trials) for cell, trials in todo.items())
        elif executor == "local":
            results = _local(sweep, todo, min(workers, len(todo)))
        else:
            results = _dask(sweep, todo, workers, scheduler, dask_processes)
        for cell, cell_results in results:
            for trial, seed, record, seconds in cell_results:
                store.add(sweep.name, cell, trial, seed, record, seconds)
                stored += 1
                if progress is not None:
                    progress(stored, sweep.size)
    return RunSummary(sweep.name, sweep.size, already, stored - already,
                      time.perf_counter() - start)


def _local(sweep: Sweep, todo: dict[int, list[int]], workers: int) -> Iterator:
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=warm,
                             initargs=(sweep,)) as pool:
        futures = [pool.submit(run_cell, sweep, cell, trials) for cell, trials in todo.items()]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _dask(sweep: Sweep, todo: dict[int, list[int]], workers: int, scheduler: str | None,
          processes: bool) -> Iterator:
    try:
        from distributed import Client, LocalCluster
        from distributed import as_completed as dask_completed
    except ImportError as error:
        raise ImportError("executor='dask' needs dask[distributed]: "
                          "pip install 'mlverify[dask]'") from error
    if scheduler is not None:
        cluster, client = None, Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                               dashboard_address=":0")
        client = Client(cluster)
    try:
        futures = [client.submit(run_cell, sweep, cell, trials, pure=False)
                   for cell, trials in todo.items()]
        try:
            for future in dask_completed(futures):
                yield future.result()
        finally:
            client.cancel(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
