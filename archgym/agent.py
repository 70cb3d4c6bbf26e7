"""The search-agent contract (ask/tell) and the agent registry.

An agent proposes designs (:meth:`Agent.ask`) and learns from their results
(:meth:`Agent.tell`).  It sees the one :class:`~archgym.space.DesignSpace` of
the env, draws all randomness from ``self.rng`` (seeded in the constructor) and
never calls the simulator itself: the shared run loop (:mod:`archgym.runner`)
evaluates every design, so every agent's evaluations are counted the same way.

Because an agent is deterministic given its seed and the sequence of results
it was told, its state can be rebuilt from the run log by replaying the logged
``tell`` calls (that is how a killed run resumes).

Hyperparameters are a frozen dataclass ``Agent.Params`` whose fields carry a
type, a default and a ``metadata={"help": ...}`` string; the CLI turns each
field into a typed ``--option``.
"""

from __future__ import annotations

import dataclasses
import importlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping

import numpy as np

from .metrics import Metrics
from .objective import Objective
from .space import DesignSpace

__all__ = ["Agent", "AGENTS", "agent_class", "make_agent", "UnknownAgent", "BadHyperparameter"]


class UnknownAgent(ValueError):
    """An agent name that is not registered."""


class BadHyperparameter(ValueError):
    """A hyperparameter name or value the agent does not accept."""


# CLI name -> "module:Class" (imported lazily).
AGENTS: dict[str, str] = {
    "random": "agents.random_search:RandomSearch",
    "walk": "agents.random_walk:RandomWalk",
    "grid": "agents.grid:GridSearch",
    "ga": "agents.ga:GeneticAlgorithm",
    "aco": "agents.aco:AntColony",
    "bo": "agents.bo:BayesOpt",
    "tpe": "agents.optuna_agents:TPE",
    "cmaes": "agents.optuna_agents:CmaEs",
    "nsga2": "agents.optuna_agents:NSGA2",
    "gp": "agents.optuna_agents:GP",
    "ppo": "agents.ppo:PPOAgent",
}


class Agent(ABC):
    """Base class of every search agent.

    Subclasses set ``name`` and, if they have hyperparameters, a nested frozen
    dataclass ``Params``; they implement :meth:`ask` and :meth:`tell`.
    """

    name: ClassVar[str] = ""

    @dataclasses.dataclass(frozen=True)
    class Params:
        """No hyperparameters."""

    def __init__(
        self, space: DesignSpace, *, seed: int = 0, params: Any = None, objective: Objective | None = None,
        budget: int | None = None,
    ) -> None:
        self.space = space
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.params = params if params is not None else self.Params()
        self.objective = objective
        self.budget = budget

    @abstractmethod
    def ask(self) -> dict:
        """The next design to evaluate (a dict valid in ``self.space``)."""

    @abstractmethod
    def tell(self, design: Mapping[str, Any], metrics: Metrics, reward: float) -> None:
        """The result of evaluating ``design`` (reward in [0, 1], higher is better)."""

    def close(self) -> None:
        """Release resources (optional)."""

    @classmethod
    def parse_params(cls, values: Mapping[str, Any]) -> Any:
        """Build ``Params`` from a mapping, with type checks and clear errors."""
        fields = {f.name: f for f in dataclasses.fields(cls.Params)}
        for k in values:
            if k not in fields:
                allowed = ", ".join(fields) or "(none)"
                raise BadHyperparameter(f"agent {cls.name!r} has no hyperparameter {k!r}; allowed: {allowed}")
        kw = {}
        for k, v in values.items():
            kw[k] = _coerce(cls.name, fields[k], v)
        try:
            return cls.Params(**kw)
        except (TypeError, ValueError) as e:
            raise BadHyperparameter(f"agent {cls.name!r}: {e}") from None


def _coerce(agent: str, f: dataclasses.Field, v: Any) -> Any:
    typ = f.type if isinstance(f.type, type) else {"int": int, "float": float, "str": str, "bool": bool}.get(
        str(f.type), None
    )
    if typ is None or isinstance(v, typ) and not (typ is int and isinstance(v, bool)):
        return v
    try:
        if typ is bool:
            if isinstance(v, str) and v.lower() in ("true", "1", "yes", "false", "0", "no"):
                return v.lower() in ("true", "1", "yes")
            raise ValueError
        if typ is int and isinstance(v, float) and not v.is_integer():
            raise ValueError
        return typ(v)
    except (TypeError, ValueError):
        raise BadHyperparameter(
            f"agent {agent!r}: hyperparameter {f.name}={v!r} is not a valid {typ.__name__}"
        ) from None


def agent_class(name: str) -> type[Agent]:
    """The agent class registered as ``name`` (``UnknownAgent`` lists the names)."""
    try:
        path = AGENTS[name]
    except KeyError:
        raise UnknownAgent(f"unknown agent {name!r}; available: {', '.join(AGENTS)}") from None
    mod, _, cls = path.partition(":")
    return getattr(importlib.import_module(mod), cls)


def make_agent(
    name: str, space: DesignSpace, *, seed: int = 0, params: Mapping[str, Any] | None = None,
    objective: Objective | None = None, budget: int | None = None,
) -> Agent:
    """Instantiate a registered agent with validated hyperparameters."""
    cls = agent_class(name)
    return cls(space, seed=seed, params=cls.parse_params(params or {}), objective=objective, budget=budget)
