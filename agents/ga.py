"""Genetic algorithm over the design space's index vectors (hand-written).

A generational GA: tournament selection, uniform crossover, per-gene mutation
to another allowed value, and elitism.  Genes are parameter indices, so every
child is inside the design space by construction.

* ``ask`` returns one design at a time from an internal buffer holding the
  current generation's children; the generation is bred when the buffer is
  empty and every child's result has been told.
* Elites are carried into the next generation with their known reward and are
  *not* asked again (a re-evaluation would be a cache hit that still consumes
  budget).
* ``dedupe=True`` re-mutates a child that repeats an already evaluated design
  (up to 10 tries), for the same reason.
* Fitness is the reward; an infeasible design ranks below every feasible one.

ArchGym used scikit-opt's ``GA`` (hyperparameters ``size_pop``, ``max_iter``,
``prob_mut``; vendored as ``sko/`` in srivatsankrishnan/oss-arch-gym).  ``max_iter``
here is the budget divided by ``pop_size``.  A well-kept library would serve for the
algorithm itself (``pymoo``'s GA, or Optuna's ``NSGAIISampler`` on one objective,
available as ``--agent nsga2``); it is hand-written to keep the ask-one-design contract
and the no-repeat rule without adapters.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from archgym.agent import Agent
from archgym.metrics import Metrics

__all__ = ["GeneticAlgorithm"]


class GeneticAlgorithm(Agent):
    """Generational GA with tournament selection and elitism (see module docstring)."""

    name = "ga"

    @dataclasses.dataclass(frozen=True)
    class Params:
        """Hyperparameters of the genetic algorithm."""

        pop_size: int = dataclasses.field(default=16, metadata={"help": "designs per generation"})
        mutation_prob: float = dataclasses.field(
            default=0.1, metadata={"help": "probability that a gene (parameter) is redrawn"})
        crossover_prob: float = dataclasses.field(
            default=0.9, metadata={"help": "probability that a child mixes two parents (uniform crossover)"})
        tournament: int = dataclasses.field(default=2, metadata={"help": "tournament size for parent selection"})
        elite: int = dataclasses.field(default=1, metadata={"help": "best designs carried over unchanged"})
        dedupe: bool = dataclasses.field(default=True, metadata={"help": "re-mutate children already evaluated"})

        def __post_init__(self) -> None:
            if self.pop_size < 2:
                raise ValueError(f"pop_size={self.pop_size} must be >= 2")
            for k in ("mutation_prob", "crossover_prob"):
                v = getattr(self, k)
                if not 0.0 <= v <= 1.0:
                    raise ValueError(f"{k}={v} must be in [0, 1]")
            if self.tournament < 1:
                raise ValueError(f"tournament={self.tournament} must be >= 1")
            if not 0 <= self.elite < self.pop_size:
                raise ValueError(f"elite={self.elite} must be in 0..pop_size-1 ({self.pop_size - 1})")

    def __init__(self, space, **kw: Any) -> None:
        super().__init__(space, **kw)
        self._nvec = space.nvec
        self._pop: list[tuple[np.ndarray, float]] = []  # evaluated parents: (indices, fitness)
        self._queue: list[np.ndarray] = []  # children still to ask
        self._told: list[tuple[np.ndarray, float]] = []  # children of this generation with results
        self._seen: set[tuple[int, ...]] = set()
        self.generation = 0

    # --- ask/tell ------------------------------------------------------------------------
    def ask(self) -> dict:
        if not self._queue:
            self._queue = self._breed() if self._pop else self._random(self.params.pop_size)
        return self.space.decode(self._queue[0])

    def tell(self, design: Mapping[str, Any], metrics: Metrics, reward: float) -> None:
        idx = self.space.encode(design)
        if self._queue:  # the runner tells exactly the design it was asked for
            self._queue.pop(0)
        self._seen.add(tuple(idx.tolist()))
        self._told.append((idx, float(reward) if metrics.feasible else -1.0))
        if not self._queue:
            elites = sorted(self._pop, key=lambda t: -t[1])[: self.params.elite] if self._pop else []
            self._pop = elites + self._told
            self._told = []
            self.generation += 1

    # --- operators -------------------------------------------------------------------------
    def _random(self, n: int) -> list[np.ndarray]:
        return [self.rng.integers(0, self._nvec) for _ in range(n)]

    def _select(self) -> np.ndarray:
        k = min(self.params.tournament, len(self._pop))
        picks = self.rng.choice(len(self._pop), size=k, replace=False)
        best = max(picks, key=lambda i: (self._pop[i][1], -i))
        return self._pop[best][0]

    def _mutate(self, child: np.ndarray, prob: float) -> np.ndarray:
        child = child.copy()
        for j in np.flatnonzero(self.rng.random(child.size) < prob):
            n = int(self._nvec[j])
            if n > 1:
                other = int(self.rng.integers(n - 1))
                child[j] = other if other < child[j] else other + 1
        return child

    def _breed(self) -> list[np.ndarray]:
        p = self.params
        n_children = p.pop_size - min(p.elite, len(self._pop))
        children = []
        for _ in range(n_children):
            a = self._select()
            if self.rng.random() < p.crossover_prob:
                b = self._select()
                child = np.where(self.rng.random(a.size) < 0.5, a, b)
            else:
                child = a.copy()
            child = self._mutate(child, p.mutation_prob)
            if p.dedupe:
                tries = 0
                batch = {tuple(c.tolist()) for c in children}
                while (tuple(child.tolist()) in self._seen or tuple(child.tolist()) in batch) and tries < 10:
                    child = self._mutate(child, max(p.mutation_prob, 1.0 / child.size))
                    tries += 1
            children.append(child)
        return children
