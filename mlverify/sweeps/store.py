"""The SQLite store of a sweep's trials (DESIGN.md §8: atomic, resumable, nothing repeated).

Layout (schema version :data:`SCHEMA_VERSION`, kept in the ``meta`` table):

- ``meta(key, value)``: ``schema_version`` and the mlverify version that created the file;
- ``sweeps(name, grid)``: the grid of every sweep stored, as canonical JSON; a sweep resumed with
  a different grid is refused (its cell indices would name other parameters);
- ``trials(sweep, cell, trial, seed, record, seconds)`` with ``UNIQUE(sweep, cell, trial)``;
  ``record`` is the JSON text of the record.

The database runs in WAL mode; each trial is inserted in its own transaction, so a process killed
at any moment leaves every trial either fully stored or absent, and the UNIQUE key makes a
duplicate impossible. With ``synchronous=NORMAL`` a committed trial survives the death of the
process (not necessarily a power cut, after which the last trials are simply computed again).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .sweep import Record, Sweep

#: Version of the table layout; a store written with another version is refused.
SCHEMA_VERSION = 1

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sweeps (name TEXT PRIMARY KEY, grid TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS trials (
        sweep TEXT NOT NULL,
        cell INTEGER NOT NULL CHECK (cell >= 0),
        trial INTEGER NOT NULL CHECK (trial >= 0),
        seed INTEGER NOT NULL,
        record TEXT NOT NULL,
        seconds REAL NOT NULL,
        UNIQUE (sweep, cell, trial)
    )""",
)


@dataclass(frozen=True)
class Row:
    """One stored trial."""

    cell: int
    trial: int
    seed: int
    params: dict
    record: Record
    seconds: float


class Store:
    """A sweep store backed by one SQLite file (created on first use).

    Parameters
    ----------
    path : str or Path
        The database file.

    Raises
    ------
    ValueError
        If the file is a store of another schema version.
    """

    def __init__(self, path) -> None:
        from .. import __version__

        self.path = Path(path)
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        try:
            with self._transaction():
                for statement in _SCHEMA:
                    self._conn.execute(statement)
                version = self._conn.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if version is None:
                    self._conn.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?)",
                        [("schema_version", str(SCHEMA_VERSION)), ("created_by", __version__)])
                elif version[0] != str(SCHEMA_VERSION):
                    raise ValueError(f"path: {self.path} is a sweep store of schema version "
                                     f"{version[0]}; this mlverify reads version "
                                     f"{SCHEMA_VERSION}")
        except BaseException:
            self._conn.close()
            raise

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    @property
    def schema_version(self) -> int:
        """The ``schema_version`` recorded in ``meta``."""
        return int(self._conn.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])

    def register(self, sweep: Sweep) -> None:
        """Record ``sweep``'s grid, or check that the stored one is the same.

        Raises
        ------
        ValueError
            If the store holds a sweep of this name with another grid.
        """
        grid = sweep.grid.to_json()
        with self._transaction():
            stored = self._conn.execute("SELECT grid FROM sweeps WHERE name = ?",
                                        (sweep.name,)).fetchone()
            if stored is None:
                self._conn.execute("INSERT INTO sweeps (name, grid) VALUES (?, ?)",
                                   (sweep.name, grid))
            elif stored[0] != grid:
                raise ValueError(f"store {self.path} holds sweep {sweep.name!r} with another grid "
                                 f"({stored[0]}); use another store or the same grid")

    def add(self, sweep: str, cell: int, trial: int, seed: int, record: Record,
            seconds: float) -> None:
        """Insert one finished trial in its own transaction.

        Raises
        ------
        sqlite3.IntegrityError
            If ``(sweep, cell, trial)`` is already stored (nothing is overwritten).
        """
        text = json.dumps(record, sort_keys=True)
        with self._transaction():
            self._conn.execute(
                "INSERT INTO trials (sweep, cell, trial, seed, record, seconds) "
                "VALUES (?, ?, ?, ?, ?, ?)", (sweep, cell, trial, seed, text, float(seconds)))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` when the body raises)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def done(self, sweep: str) -> set[tuple[int, int]]:
        """The stored ``(cell, trial)`` pairs of ``sweep``."""
        return set(self._conn.execute("SELECT cell, trial FROM trials WHERE sweep = ?",
                                      (sweep,)).fetchall())

    def missing(self, sweep: Sweep) -> dict[int, list[int]]:
        """Cell -> trial indices of ``sweep`` not stored yet (cells with none missing omitted)."""
        done = self.done(sweep.name)
        todo = {}
        for cell in range(len(sweep.grid)):
            trials = [t for t in range(sweep.trials) if (cell, t) not in done]
            if trials:
                todo[cell] = trials
        return todo

    def count(self, sweep: str) -> int:
        """Number of stored trials of ``sweep``."""
        return self._conn.execute("SELECT COUNT(*) FROM trials WHERE sweep = ?",
                                  (sweep,)).fetchone()[0]

    def sweeps(self) -> list[str]:
        """Names of the sweeps recorded in this store."""
        return [name for (name,) in self._conn.execute("SELECT name FROM sweeps ORDER BY name")]

    def rows(self, sweep: Sweep) -> list[Row]:
        """The stored trials of ``sweep`` within its grid and trial count, by (cell, trial)."""
        return list(self._iter_rows(sweep))

    def _iter_rows(self, sweep: Sweep) -> Iterator[Row]:
        query = ("SELECT cell, trial, seed, record, seconds FROM trials WHERE sweep = ? "
                 "AND cell < ? AND trial < ? ORDER BY cell, trial")
        for cell, trial, seed, record, seconds in self._conn.execute(
                query, (sweep.name, len(sweep.grid), sweep.trials)):
            yield Row(cell, trial, seed, sweep.grid.cell(cell), json.loads(record), seconds)
