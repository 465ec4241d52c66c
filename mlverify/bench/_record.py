"""The timing protocol of the side-by-side comparisons: progress traces and best-of timings.

A solver's progress is recorded by a callback that evaluates the iterate (for example its
relative objective gap above a certified optimum, in float64) and **excludes its own duration**
from the clock, so the evaluation costs neither contender anything; both contenders of a
comparison are traced through the same :class:`Recorder`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Recorder:
    """A callback that traces ``evaluate(*args)`` against solver time, minus its own time.

    Parameters
    ----------
    evaluate : callable
        Maps the callback's arguments (e.g. the current codes) to a float, e.g. a relative gap.
    stop_below : float, optional
        The callback returns ``True`` (stop) once the value is at or below it.

    Attributes
    ----------
    times, values : list of float
        Solver seconds (since :meth:`start`, callback time excluded) and values at every call.
    """

    evaluate: Callable[..., float]
    stop_below: float | None = None
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    _start: float = 0.0
    _excluded: float = 0.0

    def start(self) -> None:
        """Start (or restart) the clock and forget the trace."""
        self.times.clear()
        self.values.clear()
        self._excluded = 0.0
        self._start = time.perf_counter()

    def __call__(self, *args) -> bool:
        enter = time.perf_counter()
        value = float(self.evaluate(*args))
        self.times.append(enter - self._start - self._excluded)
        self.values.append(value)
        self._excluded += time.perf_counter() - enter
        return self.stop_below is not None and value <= self.stop_below

    def elapsed(self) -> float:
        """Solver seconds since :meth:`start` (callback time excluded)."""
        return time.perf_counter() - self._start - self._excluded

    def time_to(self, level: float) -> float:
        """First solver time at which the value is ``<= level`` (``nan`` if never)."""
        for seconds, value in zip(self.times, self.values, strict=True):
            if value <= level:
                return seconds
        return math.nan

    def trace(self) -> dict[str, list[float]]:
        """``{"time": [...], "value": [...]}`` (JSON-ready)."""
        return {"time": list(self.times), "value": list(self.values)}


def best_time(function: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Smallest wall time of ``repeat`` calls of ``function`` (seconds), after ``warmup`` calls.

    The minimum is the standard estimator of a function's cost on a noisy machine (other load
    only ever adds time).
    """
    return best_times((function,), repeat, warmup)[0]


def best_times(functions: Sequence[Callable[[], object]], repeat: int = 5,
               warmup: int = 1) -> tuple[float, ...]:
    """:func:`best_time` of each of ``functions``, their calls interleaved: ``warmup`` rounds,
    then ``repeat`` rounds that each call every function once, in order. Contenders compared
    this way see the same phases of a machine whose speed drifts (by tens of per cent within
    minutes on the development machine), where timing one after the other can give one of
    them all the slow minutes."""
    for _ in range(warmup):
        for function in functions:
            function()
    best = [math.inf] * len(functions)
    for _ in range(repeat):
        for i, function in enumerate(functions):
            start = time.perf_counter()
            function()
            best[i] = min(best[i], time.perf_counter() - start)
    return tuple(best)
