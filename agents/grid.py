"""Grid search with a cap: a coarse grid over every parameter, visited in a seeded order.

Each parameter contributes ``levels`` evenly spaced values of its index range,
both ends included (all of its values when it has fewer; the middle value when
``levels=1``).  The grid is the Cartesian product of those values.  A design
space of 10 parameters at 3 levels is already 59,049 points, so:

* ``max_points`` caps the grid: a larger grid is cut to a seeded random subset
  of ``max_points`` points;
* ``shuffle=True`` (default) visits the points in a seeded random order, so a
  budget smaller than the grid covers it evenly instead of sweeping only the
  last parameter; ``shuffle=False`` visits them in order (last parameter
  fastest) and ignores the seed;
* once the grid is exhausted the agent continues with uniform random designs.

Optuna's ``GridSampler``/``BruteForceSampler`` would do the enumeration but
not the coarse levels, the cap or the fallback, so this is hand-written.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from archgym.agent import Agent
from archgym.metrics import Metrics

__all__ = ["GridSearch"]


def level_indices(n: int, levels: int) -> np.ndarray:
    """Indices of ``levels`` evenly spaced values among ``n`` (ends included)."""
    if levels >= n:
        return np.arange(n, dtype=np.int64)
    if levels == 1:
        return np.array([(n - 1) // 2], dtype=np.int64)
    return np.unique(np.round(np.linspace(0, n - 1, levels)).astype(np.int64))


class GridSearch(Agent):
    """Coarse grid, capped and visited in a seeded order (see module docstring)."""

    name = "grid"

    @dataclasses.dataclass(frozen=True)
    class Params:
        """Hyperparameters of grid search."""

        levels: int = dataclasses.field(default=3, metadata={"help": "values per parameter (evenly spaced, ends included)"})
        max_points: int = dataclasses.field(
            default=100_000, metadata={"help": "cap on grid points; a larger grid is cut to a seeded random subset"})
        shuffle: bool = dataclasses.field(default=True, metadata={"help": "visit the grid in a seeded random order"})

        def __post_init__(self) -> None:
            if self.levels < 1:
                raise ValueError(f"levels={self.levels} must be >= 1")
            if self.max_points < 1:
                raise ValueError(f"max_points={self.max_points} must be >= 1")

    def __init__(self, space, **kw: Any) -> None:
        super().__init__(space, **kw)
        p = self.params
        self._levels = [level_indices(int(n), p.levels) for n in space.nvec]
        self._radix = [len(lv) for lv in self._levels]
        size = 1
        for r in self._radix:
            size *= r
        self.grid_size = size
        if size > 2**62:
            raise ValueError(f"the grid has {size} points, too many to index; lower levels={p.levels}")
        n = min(size, p.max_points)
        if p.shuffle:
            self._order = self.rng.permutation(n) if n == size else self.rng.choice(size, size=n, replace=False)
        else:
            self._order = None
        self._n = n
        self._next = 0

    def _flat_to_indices(self, flat: int) -> np.ndarray:
        out = np.empty(len(self._radix), dtype=np.int64)
        for j in range(len(self._radix) - 1, -1, -1):
            flat, r = divmod(flat, self._radix[j])
            out[j] = self._levels[j][r]
        return out

    def ask(self) -> dict:
        if self._next >= self._n:
            return self.space.sample(self.rng)
        flat = int(self._order[self._next]) if self._order is not None else self._next
        return self.space.decode(self._flat_to_indices(flat))

    def tell(self, design: Mapping[str, Any], metrics: Metrics, reward: float) -> None:
        self._next += 1
