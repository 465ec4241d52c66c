"""Theorems as data: hypotheses + bound + check (DESIGN.md §2, THEORY.md §4).

A theorem is a sufficient condition "hypotheses ⇒ conclusion". Each is an object with

- ``sample(rng, knob)``: an instance that meets the hypotheses **by construction** (never by
  filtering random draws); ``knob`` in ``[0, 1)`` moves it from comfortably inside the
  hypotheses (0) toward their boundary (→ 1), where the bound should be tightest;
- ``hypotheses(instance)``: the margin of every hypothesis (``> 0`` means met, strictly);
- ``check(instance, engine)``: runs the pursuit, measures the quantity the conclusion bounds and
  returns an :class:`Outcome` (measured, bound, whether every conclusion holds).

The same objects serve the tests (through :mod:`mlverify.testing.strategies`), ``mlverify
verify``, the tightness search, sweeps and benchmarks. A theorem module never changes a bound to
make a check pass: a violation is a finding (THEORY.md §7.9), recorded with
:class:`Finding` so that it is replayed and reported.
"""

from __future__ import annotations

import math
import zlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

#: Status tags of THEORY.md: primary source, secondary source, derived here.
STATUSES = ("P", "S", "D", "S+D", "unknown")


@dataclass(frozen=True)
class Outcome:
    """What one check measured.

    Attributes
    ----------
    measured, bound : float
        The quantity the conclusion bounds and its bound (``measured <= bound`` is the typical
        conclusion; for pure support statements ``measured`` is an error count and ``bound`` 0
        is not used: such theorems report a quantitative companion instead).
    holds : bool
        Whether **every** conclusion of the theorem holds on this instance.
    details : mapping of str to float
        Every other measured quantity (per-conclusion values, pursuit certificates, …).
    """

    measured: float
    bound: float
    holds: bool
    details: Mapping[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """``measured / bound``: how tight the bound was (1 = tight, > 1 = violated)."""
        if self.bound > 0:
            return self.measured / self.bound
        return 0.0 if self.measured <= 0 else math.inf


@dataclass(frozen=True)
class Finding:
    """A known violation of a derived ([D]) statement, kept as a regression case.

    ``seed`` and ``knob`` replay the instance through :meth:`Theorem.sample`; ``reason`` says what
    is wrong with the statement (never a loosened bound).
    """

    seed: int
    knob: float
    reason: str


class Theorem(ABC):
    """Base class of every theorem; subclasses set the class attributes and three methods."""

    #: Registry identifier (THEORY.md §4 IDs, e.g. ``"W7"``, ``"LT-hard"``).
    id: ClassVar[str]
    #: Short name of the paper (``"WLTG"``, ``"JMLR"``, …).
    paper: ClassVar[str]
    #: One of :data:`STATUSES`.
    status: ClassVar[str]
    #: One-line statement, hypotheses ⇒ conclusion.
    statement: ClassVar[str]
    #: Known violations of this statement (replayed and reported as findings).
    findings: ClassVar[tuple[Finding, ...]] = ()

    @abstractmethod
    def sample(self, rng: np.random.Generator, knob: float) -> Any:
        """An instance meeting the hypotheses by construction; ``knob`` ∈ [0, 1) → boundary."""

    @abstractmethod
    def hypotheses(self, instance: Any) -> dict[str, float]:
        """Margin of every hypothesis: ``> 0`` means met (strict inequalities)."""

    @abstractmethod
    def check(self, instance: Any, engine: str = "auto") -> Outcome:
        """Run the pursuit on ``instance`` and compare what it measures with the bound."""

    def summarise(self, details: list[Mapping[str, float]]) -> dict[str, float]:
        """Quantities fitted over a run's ``Outcome.details`` (reported, never asserted); none by
        default."""
        return {}

    def met(self, instance: Any) -> bool:
        """Whether every hypothesis holds strictly."""
        return all(margin > 0 for margin in self.hypotheses(instance).values())

    def rng(self, seed: int, trial: int) -> np.random.Generator:
        """The generator of trial ``trial`` of a run seeded with ``seed`` (same inputs, same
        instance, whatever the order in which trials run)."""
        return np.random.default_rng([seed, zlib.crc32(self.id.encode()), trial])

    def __repr__(self) -> str:
        return f"<Theorem {self.id} [{self.status}] {self.paper}: {self.statement}>"


_REGISTRY: dict[str, Theorem] = {}


def register(cls: type[Theorem]) -> type[Theorem]:
    """Class decorator adding one instance of ``cls`` to the registry (ids must be unique)."""
    if cls.status not in STATUSES:
        raise ValueError(f"{cls.__name__}.status must be one of {STATUSES}, got {cls.status!r}")
    if cls.id in _REGISTRY:
        raise ValueError(f"theorem id {cls.id!r} is registered twice")
    _REGISTRY[cls.id] = cls()
    return cls


def registry() -> dict[str, Theorem]:
    """Every registered theorem by id, in registration order."""
    from . import modules  # noqa: F401  (importing the modules registers their theorems)

    return dict(_REGISTRY)


def get(theorem_id: str) -> Theorem:
    """The theorem ``theorem_id``, or a ``ValueError`` listing the known ids."""
    theorems = registry()
    if theorem_id not in theorems:
        raise ValueError(f"unknown theorem {theorem_id!r}; known: {', '.join(theorems)}")
    return theorems[theorem_id]
