"""The simulator contract and the shared, counted, cached evaluator.

A simulator is a performance model of one accelerator: it declares its
:class:`~archgym.space.DesignSpace`, a default design and the workloads it
accepts, and maps ``(design, workload) -> Metrics``.  It never computes rewards
(that is the :class:`~archgym.objective.Objective`'s job) and never touches
randomness.

:class:`Evaluator` is the one place where designs are validated, constraint
violations become infeasible results, repeated designs hit a cache, and every
simulator call is counted and timed.  The env and the agents' run loop both go
through it, so evaluation counts mean the same thing for every agent.
"""

from __future__ import annotations

import importlib
import math
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .metrics import Metrics
from .objective import Objective
from .space import DesignSpace, InvalidDesign

__all__ = ["Simulator", "Evaluator", "Evaluation", "load_simulator"]


class Simulator(ABC):
    """Base class of every accelerator performance model.

    Subclasses set ``name`` and ``reference`` (the paper/tool reproduced and the
    tolerance met) and implement :meth:`design_space`, :meth:`default_design`,
    :meth:`workloads` and :meth:`evaluate`.  Override :meth:`evaluate_batch`
    with a numba kernel where it pays off.
    """

    name: str = ""
    reference: str = ""

    @abstractmethod
    def design_space(self) -> DesignSpace:
        """The one design space every agent searches."""

    @abstractmethod
    def default_design(self) -> dict:
        """A feasible baseline design (the paper's configuration where there is one)."""

    @abstractmethod
    def workloads(self) -> tuple[str, ...]:
        """Names of the workloads this simulator accepts (first = default)."""

    @abstractmethod
    def evaluate(self, design: Mapping[str, Any], workload: str) -> Metrics:
        """Metrics of one valid design on one workload (pure; no randomness).

        Return ``Metrics.infeasible(reason)`` for a design the model can price
        but the platform cannot hold (over a resource budget); raise only for
        programming errors.
        """

    def evaluate_batch(self, indices: np.ndarray, workload: str) -> dict[str, np.ndarray]:
        """Evaluate many designs given as index vectors ``(n, d)``.

        Returns ``{metric_name: array(n)}`` plus a boolean ``"feasible"`` array.
        Constraint violations are infeasible.  The default loops over
        :meth:`evaluate`; fast simulators override it with a numba kernel.
        """
        space = self.design_space()
        rows = []
        for idx in np.asarray(indices):
            d = space.decode(idx)
            m = self.evaluate(d, workload) if space.is_feasible(d) else Metrics.infeasible("constraint")
            rows.append(m)
        keys = _metric_keys(rows)
        out = {k: np.array([r.as_dict().get(k, math.nan) for r in rows], dtype=float) for k in keys}
        out["feasible"] = np.array([r.feasible for r in rows], dtype=bool)
        return out

    def check_workload(self, workload: str) -> str:
        """Return ``workload`` if accepted, else raise ``ValueError`` listing the allowed ones."""
        allowed = self.workloads()
        if workload not in allowed:
            raise ValueError(f"workload {workload!r} is not accepted by {self.name}; allowed: {', '.join(allowed)}")
        return workload


def _metric_keys(rows: Sequence[Metrics]) -> list[str]:
    keys: list[str] = []
    for r in rows:
        for k in r.as_dict():
            if k not in keys:
                keys.append(k)
    return keys


def load_simulator(spec: str | type | Simulator, **kwargs: Any) -> Simulator:
    """Instantiate a simulator from ``"module:Class"``, a class, or pass an instance through."""
    if isinstance(spec, Simulator):
        return spec
    if isinstance(spec, str):
        mod, _, cls = spec.partition(":")
        if not cls:
            raise ValueError(f"simulator spec {spec!r} must look like 'package.module:ClassName'")
        spec = getattr(importlib.import_module(mod), cls)
    if not (isinstance(spec, type) and issubclass(spec, Simulator)):
        raise TypeError(f"{spec!r} is not a Simulator subclass")
    return spec(**kwargs)


@dataclass(frozen=True)
class Evaluation:
    """The result of evaluating one design through an :class:`Evaluator`."""

    design: dict
    metrics: Metrics
    reward: float
    target_met: bool
    cached: bool
    wall_s: float

    @property
    def feasible(self) -> bool:
        return self.metrics.feasible


class Evaluator:
    """Validated, cached, counted evaluation of designs for one (simulator, workload, objective).

    ``objective.ref`` is filled in from the simulator's default design when it is
    ``None`` (one calibration evaluation, counted in ``calibration_calls``, not
    in ``sim_calls``).  ``cache_size=0`` disables the cache.  ``fixed`` pins
    some parameters (``{"dataflow": "ws"}``): agents then search the rest.
    """

    def __init__(
        self, simulator: Simulator, workload: str | None = None, objective: Objective | None = None,
        *, cache_size: int = 1 << 16, fixed: Mapping[str, Any] | None = None,
    ) -> None:
        self.simulator = simulator
        self.space: DesignSpace = simulator.design_space()
        self.fixed = dict(self.space.validate(fixed, partial=True)) if fixed else {}
        if self.fixed:
            self.space = self.space.restrict(self.fixed)
        self.workload = simulator.check_workload(workload or simulator.workloads()[0])
        objective = objective or Objective()
        self.sim_calls = 0
        self.cache_hits = 0
        self.calibration_calls = 0
        self._cache: OrderedDict[tuple, Metrics] = OrderedDict()
        self._cache_size = cache_size
        self.default_design = {**simulator.default_design(), **self.fixed}
        self.default_design = self.space.validate(self.default_design)
        ref_metrics = simulator.evaluate(self.default_design, self.workload)
        self.calibration_calls = 1
        self.reference_metrics = ref_metrics
        for m in objective.metrics:
            if m not in ref_metrics.as_dict():
                raise ValueError(
                    f"objective metric {m!r} is not reported by {simulator.name}; "
                    f"available: {', '.join(ref_metrics.names())}"
                )
        if objective.ref is None:
            objective = objective.with_reference(objective.cost(ref_metrics))
        self.objective = objective
        # the metrics this simulator models (finite for its default design), in a stable order
        self.metric_names = tuple(ref_metrics.names() if ref_metrics.feasible else ref_metrics.as_dict())

    def metrics_of(self, design: Mapping[str, Any]) -> tuple[Metrics, bool]:
        """Metrics of a design and whether they came from the cache.

        Raises :class:`InvalidDesign` for a design outside the space; a
        constraint violation returns an infeasible :class:`Metrics`.
        """
        return self._metrics_of(self.space.validate(design))

    def _metrics_of(self, d: dict) -> tuple[Metrics, bool]:
        key = tuple(d.values())
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            self.cache_hits += 1
            return hit, True
        violations = self.space.violations(d)
        if violations:
            m = Metrics.infeasible("; ".join(violations))
        else:
            m = self.simulator.evaluate(d, self.workload)
            self.sim_calls += 1
        if self._cache_size:
            self._cache[key] = m
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return m, False

    def prime(self, design: Mapping[str, Any], metrics: Metrics, *, cached: bool = False) -> None:
        """Put a known result (e.g. replayed from the run log) into the cache.

        Not counted as a simulator call or a cache hit: the counters describe
        the work done by this process.
        """
        if self._cache_size:
            self._cache[tuple(self.space.validate(design).values())] = metrics

    def evaluate(self, design: Mapping[str, Any]) -> Evaluation:
        """Evaluate one design: metrics, reward, target flag, cache flag, wall time."""
        t0 = time.perf_counter()
        d = self.space.validate(design)
        m, cached = self._metrics_of(d)
        return Evaluation(
            d, m, self.objective.reward(m), self.objective.target_met(m), cached, time.perf_counter() - t0
        )

    def info(self, ev: Evaluation) -> dict:
        """A flat ``info`` dict with the same keys every step.

        Keys: every metric this simulator models (``None`` where a value is
        absent, e.g. for an infeasible design), ``feasible``, ``target_met``,
        ``reason``.  Counters (``sim_calls``, ``cache_hits``) are attributes of
        the evaluator, not info keys, so a step's info depends only on the design.
        """
        return self.info_of(ev.metrics, ev.target_met)

    def info_of(self, metrics: Metrics | None, target_met: bool = False) -> dict:
        """:meth:`info` for a metrics record (``None`` = nothing evaluated yet)."""
        vals = metrics.vector(self.metric_names) if metrics is not None else [math.nan] * len(self.metric_names)
        out: dict[str, Any] = {
            k: (None if v != v else (int(v) if k == "cycles" else v)) for k, v in zip(self.metric_names, vals)
        }
        out.update(
            feasible=bool(metrics is not None and metrics.feasible),
            target_met=bool(target_met),
            reason=metrics.reason if metrics is not None else "",
        )
        return out


__all__ += ["InvalidDesign"]
