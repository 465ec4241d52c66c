"""``mlverify sweep``: run, resume and report phase-transition sweeps (DESIGN.md §4).

Wired into :mod:`mlverify.cli` by ``add_sweep_parser(subparsers)``. Re-running the same command
resumes: only the (cell, trial) pairs missing from ``--store`` are computed.
Exit codes: 0 done; 1 the run stopped on an error (a trial raised, a worker died; the trials
finished before it are kept); 2 bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import traceback
from pathlib import Path

from rich.console import Console


def add_sweep_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand to ``subparsers`` (from ``add_subparsers``); return it."""
    sweep = subparsers.add_parser(
        "sweep", help="run or resume a phase-transition sweep",
        description="Run the trials of a sweep that the store does not hold yet (re-run the "
        "same command to resume after an interruption), then write its figure and summary "
        "under --out. Built-in sweeps: see --list; user sweeps: --module.")
    sweep.add_argument("name", nargs="?", metavar="NAME", help="sweep name (see --list)")
    sweep.add_argument("--list", action="store_true", help="list the sweeps and exit")
    sweep.add_argument("--store", metavar="FILE", default="mlverify-sweeps.sqlite",
                       help="SQLite store (created if absent; default mlverify-sweeps.sqlite)")
    sweep.add_argument("--quick", action="store_true",
                       help="the sweep's small variant (stored as NAME-quick)")
    sweep.add_argument("--executor", choices=("local", "dask"), default="local",
                       help="local process pool (default) or Dask distributed")
    sweep.add_argument("--workers", type=_positive_int, default=os.cpu_count() or 1,
                       help="processes / Dask workers (default: all cores); results do not "
                       "depend on it")
    sweep.add_argument("--scheduler", metavar="ADDRESS",
                       help="address of an existing Dask scheduler (with --executor dask)")
    sweep.add_argument("--out", metavar="DIR", default="reports",
                       help="directory of the figure and summary (default reports/)")
    sweep.add_argument("--no-report", action="store_true", help="only run the trials")
    sweep.add_argument("--module", action="append", metavar="MODULE", default=[],
                       help="import this module first (it registers user sweeps; repeatable)")
    sweep.set_defaults(run=cmd_sweep, parser=sweep)
    return sweep


def cmd_sweep(args: argparse.Namespace, console: Console) -> int:
    """Run (or resume) ``args.name`` and write its report; see :func:`add_sweep_parser`."""
    from . import sweeps

    for module in args.module:
        try:
            importlib.import_module(module)
        except ImportError as error:
            args.parser.error(f"--module {module}: {error}")
    if args.list:
        for sweep in sweeps.registry().values():
            quick = "" if sweep.quick is None else (
                f"; --quick {len(sweep.quick[0])} cells × {sweep.quick[1]}")
            console.print(f"[bold]{sweep.name}[/bold] ({len(sweep.grid)} cells × "
                          f"{sweep.trials} trials{quick}): {sweep.description}")
        return 0
    if args.name is None:
        args.parser.error("give a sweep NAME (or --list)")
    if args.scheduler is not None and args.executor != "dask":
        args.parser.error("--scheduler needs --executor dask")
    try:
        sweep = sweeps.get(args.name).variant(args.quick)
    except ValueError as error:
        args.parser.error(str(error))
    try:
        store = sweeps.Store(args.store)
    except (ValueError, OSError, sqlite3.Error) as error:
        args.parser.error(f"--store {args.store}: {error}")
    with store, _progress(console) as bar:
        try:
            store.register(sweep)
        except ValueError as error:
            bar.stop()
            args.parser.error(f"--store: {error}")
        task = bar.add_task(sweep.name, total=sweep.size)
        try:
            summary = sweeps.run_sweep(
                sweep, store, executor=args.executor, workers=args.workers,
                scheduler=args.scheduler,
                progress=lambda done, total: bar.update(task, completed=done, total=total))
        except Exception:
            bar.stop()
            console.print(f"[bold red]sweep {sweep.name} stopped on an error[/bold red] "
                          f"(finished trials are stored in {args.store}; rerun to resume):")
            console.print(traceback.format_exc())
            return 1
        rows = store.rows(sweep)
    console.print(f"{sweep.name}: {summary.computed} trials computed, {summary.already_stored} "
                  f"already stored, {summary.total} in all ({summary.seconds:.1f} s, "
                  f"{args.executor} executor, {args.workers} workers); store {args.store}")
    if not args.no_report:
        for path in sweeps.write_report(sweep, rows, Path(args.out)):
            console.print(f"wrote {path}")
    return 0


def _progress(console: Console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
