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
import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping

import numpy as np

from .metrics import Metrics
from .objective import Objective
from .space import DesignSpace

__all__ = ["Agent", "AGENTS", "agent_class", "make_agent", "UnknownAgent", "BadHyperparameter", "check_seed",
           "SEED_RANGE"]


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
        self.seed = check_seed(seed)
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
            _check_range(cls.name, k, kw[k])
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


#: largest magnitude of an integer hyperparameter (population sizes, candidate counts, ...):
#: beyond it a run would not fit in memory or time anyway
MAX_INT_HYPERPARAMETER = 10**9


def _check_range(agent: str, name: str, v: Any) -> None:
    """Every numeric hyperparameter is finite and of a sane magnitude (per-agent ranges are
    checked by each ``Params.__post_init__``)."""
    if isinstance(v, float) and not math.isfinite(v):
        raise BadHyperparameter(f"agent {agent!r}: hyperparameter {name}={v!r} must be a finite number")
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_INT_HYPERPARAMETER:
        raise BadHyperparameter(f"agent {agent!r}: hyperparameter {name}={v!r} is out of range "
                                f"(|value| <= {MAX_INT_HYPERPARAMETER:,})")


#: seeds every agent accepts (numpy's and torch's generators take 32-bit seeds)
SEED_RANGE = (0, 2**32 - 1)


def check_seed(seed: Any, what: str = "seed") -> int:
    """``seed`` as an int in :data:`SEED_RANGE` (one rule for every agent), else ``ValueError``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise ValueError(f"{what}={seed!r} is not allowed; a seed is an integer in 0..{SEED_RANGE[1]}")
    return int(seed)


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
