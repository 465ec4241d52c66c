"""Grid specifications of a sweep: named axes, cells in C order (the last axis varies fastest)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence

#: Types a grid value or a record value may take (they survive a JSON round trip unchanged).
SCALARS = (bool, int, float, str)


class Grid:
    """The Cartesian product of named axes.

    Cell ``i`` is the ``i``-th combination in C order (the last axis varies fastest), so a cell
    index names the same parameters wherever the sweep runs.

    Parameters
    ----------
    axes : mapping of str to sequence
        Axis name -> its values (non-empty; bool, int, float or str). Order matters.

    Examples
    --------
    >>> grid = Grid({"k": [1, 2], "mu": [0.1, 0.2, 0.3]})
    >>> len(grid), grid.cell(4)
    (6, {'k': 2, 'mu': 0.2})
    """

    def __init__(self, axes: Mapping[str, Sequence]) -> None:
        if not isinstance(axes, Mapping) or not axes:
            raise ValueError(f"axes must be a non-empty mapping of name -> values, got {axes!r}")
        self._axes: dict[str, tuple] = {}
        for name, values in axes.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"axes: every axis name must be a non-empty str, got {name!r}")
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                raise TypeError(f"axes[{name!r}] must be a sequence of values, got {values!r}")
            if not values:
                raise ValueError(f"axes[{name!r}] is empty")
            for value in values:
                if not isinstance(value, SCALARS):
                    raise TypeError(f"axes[{name!r}] holds {value!r} of type "
                                    f"{type(value).__name__}; use bool, int, float or str")
                if isinstance(value, float) and not math.isfinite(value):
                    raise ValueError(f"axes[{name!r}] holds a non-finite value {value}")
            self._axes[name] = tuple(values)

    @property
    def axes(self) -> dict[str, tuple]:
        """Axis name -> values (a copy)."""
        return dict(self._axes)

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of values per axis."""
        return tuple(len(values) for values in self._axes.values())

    def __len__(self) -> int:
        return math.prod(self.shape)

    def cell(self, index: int) -> dict:
        """Parameters of cell ``index`` (``0 <= index < len(self)``)."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        if not 0 <= index < len(self):
            raise ValueError(f"index must be in [0, {len(self)}), got {index}")
        params = {}
        for name, values in reversed(self._axes.items()):
            index, position = divmod(index, len(values))
            params[name] = values[position]
        return {name: params[name] for name in self._axes}

    def cells(self) -> Iterator[tuple[int, dict]]:
        """``(index, parameters)`` of every cell, in index order."""
        for index in range(len(self)):
            yield index, self.cell(index)

    def to_json(self) -> str:
        """Canonical JSON text (what the store compares on resume)."""
        return json.dumps([[name, list(values)] for name, values in self._axes.items()])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Grid) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.to_json())

    def __repr__(self) -> str:
        return f"Grid({self._axes!r})"
