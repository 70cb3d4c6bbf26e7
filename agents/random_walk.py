"""Random walk: a true neighbourhood walk over the design space (hand-written).

ArchGym's "random walker" drew independent uniform samples, which is random
search (``--agent random`` here).  This agent walks: every design it asks for
differs from the current design in exactly one parameter, by one step of an
ordered parameter (``rows`` 32 -> 16 or 64) or by switching a categorical one
to another option.  The walk starts at a uniform random design.

* ``accept="better"`` (default): move when the neighbour's reward is at least
  the current one (a stochastic hill climb that drifts across plateaus).  When
  every neighbour of the current design has been evaluated and none is
  accepted, the walk is at a local optimum and restarts at a random design.
* ``accept="always"``: move to every feasible neighbour (an unbiased walk).
  When every neighbour has been evaluated, the walk moves through them using
  the results it already knows (no evaluation, no budget) until it reaches a
  design with an unevaluated neighbour.

The walk remembers every result, so it never asks for a design twice (a
repeat would be a cache hit that still consumes budget).  An infeasible
neighbour is never moved to (unless no feasible design has been found yet:
then the walk moves freely).  ``restart_after=k`` jumps to a fresh random
design after ``k`` consecutive evaluations without a new best.

No library is used: the walk is short, and well-kept libraries (e.g.
``simanneal``) add a temperature schedule this baseline does not want.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from archgym.agent import Agent
from archgym.metrics import Metrics
from archgym.space import index_neighbours

__all__ = ["RandomWalk"]

_ACCEPT = ("better", "always")
_MAX_MOVES = 10_000  # moves through known designs per ask before giving up and sampling at random


class RandomWalk(Agent):
    """One-parameter-at-a-time neighbourhood walk (seeded; see module docstring)."""

    name = "walk"

    @dataclasses.dataclass(frozen=True)
    class Params:
        """Hyperparameters of the random walk."""

        accept: str = dataclasses.field(
            default="better", metadata={"help": "move rule: 'better' (reward >= current) or 'always'"})
        restart_after: int = dataclasses.field(
            default=0, metadata={"help": "restart from a random design after this many evaluations without a "
                                         "new best (0 = never)"})

        def __post_init__(self) -> None:
            if self.accept not in _ACCEPT:
                raise ValueError(f"accept={self.accept!r}; allowed: {', '.join(_ACCEPT)}")
            if self.restart_after < 0:
                raise ValueError(f"restart_after={self.restart_after} must be >= 0")

    def __init__(self, space, **kw: Any) -> None:
        super().__init__(space, **kw)
        self._nvec = space.nvec
        self._ordered = [p.ordered for p in space.params]
        self._known: dict[tuple[int, ...], float] = {}  # design -> reward (-inf if infeasible)
        self._current: tuple[int, ...] | None = None
        self._best = -np.inf
        self._stall = 0

    # --- ask/tell ------------------------------------------------------------------------
    def ask(self) -> dict:
        for _ in range(_MAX_MOVES):
            if self._current is None:
                start = tuple(self.rng.integers(0, self._nvec).tolist())
                if start not in self._known:
                    return self.space.decode(start)
                self._current = start  # a known start: walk on from it
            fresh = [n for n in self._neighbours(self._current) if n not in self._known]
            if fresh:
                return self.space.decode(fresh[int(self.rng.integers(len(fresh)))])
            if self.params.accept == "better":
                self._current = None  # local optimum: restart
                continue
            feasible = [n for n in self._neighbours(self._current) if self._known[n] > -np.inf]
            self._current = feasible[int(self.rng.integers(len(feasible)))] if feasible else None
        return self.space.sample(self.rng)

    def tell(self, design: Mapping[str, Any], metrics: Metrics, reward: float) -> None:
        idx = tuple(self.space.encode(design).tolist())
        r = float(reward) if metrics.feasible else -np.inf
        self._known[idx] = r
        if self._current is None or self._known[self._current] == -np.inf:
            self._current = idx  # start, or no feasible design yet: move freely
        elif r > -np.inf and (self.params.accept == "always" or r >= self._known[self._current]):
            self._current = idx
        improved = r > self._best
        self._best = max(self._best, r)
        self._stall = 0 if improved else self._stall + 1
        if self.params.restart_after and self._stall >= self.params.restart_after:
            self._current, self._stall = None, 0

    # --- neighbourhood -------------------------------------------------------------------
    def _neighbours(self, idx: tuple[int, ...]) -> list[tuple[int, ...]]:
        return index_neighbours(idx, self._nvec.tolist(), self._ordered)
