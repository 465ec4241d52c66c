"""Sweep definitions, the registry, trial seeds and record validation.

A sweep is a grid of parameters and a pure function ``trial(params, seed) -> record``. Trial
``t`` of cell ``c`` of sweep ``name`` always receives the seed :func:`trial_seed` ``(name, c, t)``,
so the records do not depend on the executor, the number of workers or the order in which trials
finish, and a resumed sweep computes exactly what an uninterrupted one would have.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .grid import SCALARS, Grid

#: Sweep names: what a command line and a file name accept.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

Record = dict[str, Any]
TrialFunction = Callable[[dict, int], Record]


def trial_seed(name: str, cell: int, trial: int) -> int:
    r"""The seed of trial ``trial`` of cell ``cell`` of sweep ``name`` (a 63-bit int).

    It is the first 63 bits drawn from ``numpy.random.SeedSequence((crc32(name), cell, trial))``:
    a pure function of its arguments, independent of where and when the trial runs.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    for label, value in (("cell", cell), ("trial", trial)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{label} must be an int >= 0, got {value!r}")
    words = np.random.SeedSequence((zlib.crc32(name.encode()), int(cell), int(trial)))
    high, low = (int(w) for w in words.generate_state(2, np.uint32))
    return (high << 31) | (low >> 1)


def check_record(record: Any) -> Record:
    """Validate a trial's record: a dict of str -> bool/int/float/str (NumPy scalars converted).

    Raises
    ------
    TypeError
        If ``record`` is not a dict, a key is not a str or a value is of another type.
    """
    if not isinstance(record, dict):
        raise TypeError(f"a trial must return a dict record, got {type(record).__name__}")
    clean: Record = {}
    for key, value in record.items():
        if not isinstance(key, str):
            raise TypeError(f"record keys must be str, got {key!r}")
        if isinstance(value, np.generic):
            value = value.item()
        if not isinstance(value, SCALARS):
            raise TypeError(f"record[{key!r}] is a {type(value).__name__}; records hold only "
                            "bool, int, float and str")
        clean[key] = value
    return clean


@dataclass(frozen=True, eq=False)
class Sweep:
    """A named sweep: a grid, a trial function and how many trials per cell.

    Attributes
    ----------
    name : str
        Letters, digits, ``_``, ``.``, ``-``; also the key of its trials in a store and the seed
        root (:func:`trial_seed`).
    grid : Grid
        The cells.
    trial : callable
        ``trial(params, seed) -> record``: pure (the same arguments give the same record), with
        ``params`` the cell's parameters and ``seed`` an int (use
        ``numpy.random.default_rng(seed)``); the record maps str to bool, int, float or str. It
        must be a module-level function (it is pickled by reference to reach worker processes).
    trials : int
        Trials per cell.
    description : str
        One line for ``mlverify sweep --list``.
    quick : tuple of (Grid, int), optional
        Grid and trials of ``--quick`` (:meth:`variant`).
    warmup : callable, optional
        Called once per worker process before its first trial (compile the JIT, precompute
        dictionaries); module-level, no arguments.
    report : callable, optional
        ``report(sweep, rows, out_dir) -> list[Path]`` writes the figures and summaries of a
        finished sweep (``rows`` as returned by :meth:`mlverify.sweeps.Store.rows`). Default:
        :func:`mlverify.sweeps.report.write_summary`.
    """

    name: str
    grid: Grid
    trial: TrialFunction
    trials: int
    description: str = ""
    quick: tuple[Grid, int] | None = None
    warmup: Callable[[], None] | None = None
    report: Callable[..., list[Path]] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"name must match {_NAME.pattern}, got {self.name!r}")
        if not isinstance(self.grid, Grid):
            raise TypeError(f"grid must be a Grid, got {type(self.grid).__name__}")
        if not callable(self.trial):
            raise TypeError(f"trial must be callable, got {self.trial!r}")
        for label, function in (("warmup", self.warmup), ("report", self.report)):
            if function is not None and not callable(function):
                raise TypeError(f"{label} must be callable, got {function!r}")
        _check_count("trials", self.trials)
        if self.quick is not None:
            if (not isinstance(self.quick, tuple) or len(self.quick) != 2
                    or not isinstance(self.quick[0], Grid)):
                raise TypeError(f"quick must be a (Grid, int) pair, got {self.quick!r}")
            _check_count("quick trials", self.quick[1])

    @property
    def size(self) -> int:
        """Number of trials: cells × trials per cell."""
        return len(self.grid) * self.trials

    def variant(self, quick: bool) -> Sweep:
        """This sweep, or its ``--quick`` version named ``<name>-quick`` (its own seeds)."""
        if not quick:
            return self
        if self.quick is None:
            raise ValueError(f"sweep {self.name!r} has no quick variant")
        grid, trials = self.quick
        return replace(self, name=f"{self.name}-quick", grid=grid, trials=trials, quick=None)

    def run_trial(self, cell: int, trial: int) -> tuple[int, Record, float]:
        """Run one trial here: ``(seed, record, seconds)``."""
        seed = trial_seed(self.name, cell, trial)
        start = time.perf_counter()
        record = check_record(self.trial(self.grid.cell(cell), seed))
        return seed, record, time.perf_counter() - start

    def __repr__(self) -> str:
        return (f"Sweep({self.name!r}, {len(self.grid)} cells × {self.trials} trials, "
                f"axes {list(self.grid.axes)})")


def _check_count(label: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{label} must be an int >= 1, got {value!r}")


_REGISTRY: dict[str, Sweep] = {}


def register(sweep: Sweep, *, replace_existing: bool = False) -> Sweep:
    """Add ``sweep`` to the registry (what ``mlverify sweep NAME`` finds) and return it.

    Raises
    ------
    ValueError
        If another sweep already has this name and ``replace_existing`` is false.
    """
    if not isinstance(sweep, Sweep):
        raise TypeError(f"sweep must be a Sweep, got {type(sweep).__name__}")
    if sweep.name in _REGISTRY and not replace_existing and _REGISTRY[sweep.name] is not sweep:
        raise ValueError(f"a sweep named {sweep.name!r} is already registered")
    _REGISTRY[sweep.name] = sweep
    return sweep


def unregister(name: str) -> None:
    """Remove a registered sweep (KeyError if absent)."""
    del _REGISTRY[name]


def registry() -> dict[str, Sweep]:
    """Registered sweeps by name (a copy), the built-in ones included."""
    return dict(_REGISTRY)


def get(name: str) -> Sweep:
    """The registered sweep ``name`` (ValueError naming the known ones otherwise)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown sweep {name!r}; known: {', '.join(sorted(_REGISTRY))}") \
            from None

