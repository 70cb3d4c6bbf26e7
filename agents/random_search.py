"""Random search: independent uniform samples of the design space.

This is what ArchGym called a "random walker" (it was not a walk); the true
neighbourhood walk is a separate agent.  Constraint-violating designs are
proposed like any other and come back infeasible: the agent does not peek at
the constraints, so its evaluation count is honest.
"""

from __future__ import annotations

from typing import Any, Mapping

from archgym.agent import Agent
from archgym.metrics import Metrics

__all__ = ["RandomSearch"]


class RandomSearch(Agent):
    """Uniform i.i.d. sampling over the design space's index grid (seeded)."""

    name = "random"

    def ask(self) -> dict:
        return self.space.sample(self.rng)

    def tell(self, design: Mapping[str, Any], metrics: Metrics, reward: float) -> None:
        pass
