"""Ant colony optimisation (Ant Colony System) over the design space (hand-written).

Each parameter is one decision on an ant's path; its allowed values are the
edges, each with a pheromone level (all start at ``pheromone_start``).  This is
the Ant Colony System of Dorigo & Gambardella (IEEE TEC 1997), the variant
behind DeepSwarm, which ArchGym vendored for its ACO agent
(srivatsankrishnan/oss-arch-gym ``aco/DeepSwarm/``), with the same hyperparameter
names:

* an ant picks, for every parameter, the value with the most pheromone with
  probability ``greediness`` and otherwise samples a value with probability
  proportional to its pheromone (no heuristic information: the simulator is a
  black box);
* local update: every value an ant picks decays toward the start level,
  ``tau = (1 - decay) tau + decay tau_0``, which pushes later ants of the same
  colony elsewhere;
* global update, after every colony of ``ant_count`` ants has been evaluated:
  the values of the best design found so far are reinforced,
  ``tau = (1 - evaporation) tau + evaporation * 1``.

``ask`` builds one ant (one design) at a time; ``dedupe=True`` rebuilds an ant
whose design was already evaluated (up to 10 times), since a repeat is a cache
hit that still consumes budget.  An infeasible design never becomes the best.
ArchGym's ``max_depth`` has no counterpart (the path length is the number of
parameters).  No well-kept Python ACO library targets mixed discrete spaces
(``scikit-opt``'s ACA is a TSP solver), hence the hand-written version.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from archgym.agent import Agent
from archgym.metrics import Metrics

__all__ = ["AntColony"]


class AntColony(Agent):
    """Ant Colony System over parameter values (see module docstring)."""

    name = "aco"

    @dataclasses.dataclass(frozen=True)
    class Params:
        """Hyperparameters of ant colony optimisation."""

        ant_count: int = dataclasses.field(default=8, metadata={"help": "ants (designs) per colony"})
        greediness: float = dataclasses.field(
            default=0.5, metadata={"help": "probability of taking the max-pheromone value (ACS q0)"})
        evaporation: float = dataclasses.field(
            default=0.25, metadata={"help": "global update rate toward the best design (ACS rho)"})
        decay: float = dataclasses.field(default=0.1, metadata={"help": "local update rate toward the start level"})
        pheromone_start: float = dataclasses.field(default=0.1, metadata={"help": "initial pheromone (tau_0), < 1"})
        dedupe: bool = dataclasses.field(default=True, metadata={"help": "rebuild ants whose design was evaluated"})

        def __post_init__(self) -> None:
            if self.ant_count < 1:
                raise ValueError(f"ant_count={self.ant_count} must be >= 1")
            for k in ("greediness", "evaporation", "decay"):
                v = getattr(self, k)
                if not 0.0 <= v <= 1.0:
                    raise ValueError(f"{k}={v} must be in [0, 1]")
            if not 0.0 < self.pheromone_start < 1.0:
                raise ValueError(f"pheromone_start={self.pheromone_start} must be in (0, 1)")

    def __init__(self, space, **kw: Any) -> None:
        super().__init__(space, **kw)
        tau0 = self.params.pheromone_start
        self.tau = [np.full(int(n), tau0) for n in space.nvec]
        self._pending: np.ndarray | None = None
        self._in_colony = 0
        self._seen: set[tuple[int, ...]] = set()
        self._best: np.ndarray | None = None
        self._best_reward = -np.inf

    def ask(self) -> dict:
        if self._pending is None:
            ant = self._build()
            if self.params.dedupe:
                tries = 0
                while tuple(ant.tolist()) in self._seen and tries < 10:
                    ant = self._build()
                    tries += 1
            self._pending = ant
        return self.space.decode(self._pending)

    def _build(self) -> np.ndarray:
        p = self.params
        ant = np.empty(len(self.tau), dtype=np.int64)
        for j, t in enumerate(self.tau):
            if self.rng.random() < p.greediness:
                v = int(np.argmax(t))
            else:
                v = int(self.rng.choice(t.size, p=t / t.sum()))
            ant[j] = v
            t[v] = (1.0 - p.decay) * t[v] + p.decay * p.pheromone_start
        return ant

    def tell(self, design: Mapping[str, Any], metrics: Metrics, reward: float) -> None:
        idx = self.space.encode(design)
        self._pending = None
        self._seen.add(tuple(idx.tolist()))
        if metrics.feasible and reward > self._best_reward:
            self._best, self._best_reward = idx, float(reward)
        self._in_colony += 1
        if self._in_colony >= self.params.ant_count:
            self._in_colony = 0
            if self._best is not None:
                rho = self.params.evaporation
                for j, t in enumerate(self.tau):
                    v = self._best[j]
                    t[v] = (1.0 - rho) * t[v] + rho * 1.0
