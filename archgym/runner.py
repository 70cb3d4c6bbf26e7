"""The shared budgeted run loop: one agent, one env, one seed, ``budget`` evaluations.

Every agent goes through :func:`run`, which counts evaluations identically:
``budget`` is the number of designs the agent asks for; each is evaluated
once through the :class:`~archgym.simulator.Evaluator` (a repeated design is a
cache hit, counted separately, and still consumes budget).  With a store, each
evaluation becomes one row of the run log; a run restarted with the same
arguments replays the logged rows into the agent (no simulator calls) and
continues from the first missing step.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Callable, Mapping

from .agent import Agent, check_seed, make_agent
from .metrics import Metrics
from .objective import Objective
from .registry import spec_of
from .simulator import Evaluation, Evaluator, load_simulator
from .store import RunStore, StoreError

__all__ = ["run", "RunResult", "make_evaluator", "run_id_for", "ResumeMismatch", "Progress", "check_budget",
           "MAX_BUDGET"]


#: the largest budget of one run (a run log row per evaluation: 10^9 rows is ~100 GB)
MAX_BUDGET = 10**9


def check_budget(budget: Any, what: str = "budget") -> int:
    """``budget`` as an int in 1..:data:`MAX_BUDGET`, else ``ValueError`` naming ``what``."""
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= MAX_BUDGET:
        raise ValueError(f"{what}={budget!r} is not allowed; a budget is an integer in 1..{MAX_BUDGET:,}")
    return budget


class ResumeMismatch(StoreError):
    """The agent asked for a different design than the log holds at that step."""


@dataclass(frozen=True)
class RunResult:
    """Summary of a finished run."""

    run_id: str
    env_id: str
    agent: str
    seed: int
    steps: int
    resumed_steps: int
    sim_calls: int
    cache_hits: int
    best_design: dict | None
    best_metrics: Metrics | None
    best_reward: float
    best_step: int
    target_met_steps: int
    wall_s: float
    objective: Objective

    def summary(self) -> str:
        """A multi-line, unit-annotated summary of the best design."""
        lines = [
            f"run {self.run_id}: {self.agent} on {self.env_id}, seed {self.seed}: {self.steps} evaluations "
            f"({self.resumed_steps} resumed from the log, {self.sim_calls} simulator calls, "
            f"{self.cache_hits} cache hits) in {self.wall_s:.2f} s of search (agent + simulator + log)",
            f"objective: {self.objective.describe()}",
        ]
        if self.best_design is None:
            lines.append("no feasible design found")
            return "\n".join(lines)
        line = f"best reward {self.best_reward:.6f} at step {self.best_step}"
        if self.objective.targets:
            line += f"; targets met in {self.target_met_steps} of {self.steps} evaluations"
        lines.append(line)
        lines.append("best design: " + ", ".join(f"{k}={v}" for k, v in self.best_design.items()))
        lines += ["  " + s for s in self.best_metrics.summary().splitlines()]
        return "\n".join(lines)


def make_evaluator(env_id: str, *, workload: Any = None, objective: Objective | str | None = None,
                   simulator_kwargs: Mapping[str, Any] | None = None,
                   fixed: Mapping[str, Any] | None = None,
                   workload_params: Mapping[str, Any] | None = None) -> Evaluator:
    """An :class:`Evaluator` for a registered env id, with optional overrides.

    ``workload``: a zoo name, a file or a query string (:func:`archgym.workloads.load_workload`)
    or a :class:`~archgym.workloads.Workload`; ``workload_params``: ``batch``, ``seq_len``,
    ``context_len``, ``gen_tokens``, ``phase``."""
    spec = spec_of(env_id)
    sim = load_simulator(spec.simulator, **{**dict(spec.simulator_kwargs), **dict(simulator_kwargs or {})})
    obj = objective if objective is not None else spec.objective
    if isinstance(obj, str):
        obj = Objective.parse(obj)
    elif isinstance(obj, Mapping):
        obj = Objective.parse(obj.get("spec"), obj.get("targets", ()))
    return Evaluator(sim, workload or spec.workload, obj, fixed=fixed, workload_params=workload_params)


def run_id_for(env_id: str, workload: str, objective: Objective, agent: str, params: Mapping[str, Any],
               seed: int, simulator_kwargs: Mapping[str, Any] | None = None,
               fixed: Mapping[str, Any] | None = None) -> str:
    """Deterministic run id: the same command gives the same id (so it resumes).

    ``workload`` is the workload's :attr:`~archgym.workloads.Workload.key` (its source
    plus a hash of its layers, so a changed file or zoo definition is a new run).  The
    budget is not part of the id: re-running with a larger budget extends the run.
    """
    key = [env_id, workload, objective.to_dict(), agent, dict(params), int(seed), dict(simulator_kwargs or {})]
    if fixed:
        key.append(dict(fixed))
    key = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha1(key.encode()).hexdigest()[:12]


class Progress:
    """A minimal progress bar on stderr (no dependency)."""

    def __init__(self, total: int, label: str = "", stream=None, every_s: float = 0.2) -> None:
        self.total, self.label = total, label
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self._t0 = time.monotonic()
        self._last = 0.0

    def __call__(self, done: int, best: float) -> None:
        now = time.monotonic()
        if done < self.total and now - self._last < self.every_s:
            return
        self._last = now
        width = 30
        frac = done / self.total if self.total else 1.0
        bar = "#" * int(width * frac) + "-" * (width - int(width * frac))
        rate = done / max(now - self._t0, 1e-9)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total} best={best:.4f} {rate:,.0f} eval/s")
        if done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def run(
    env_id: str,
    agent: str | Agent,
    budget: int,
    *,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    store: RunStore | None = None,
    workload: str | None = None,
    objective: Objective | str | None = None,
    simulator_kwargs: Mapping[str, Any] | None = None,
    fixed: Mapping[str, Any] | None = None,
    workload_params: Mapping[str, Any] | None = None,
    evaluator: Evaluator | None = None,
    progress: Callable[[int, float], None] | None = None,
    run_id: str | None = None,
) -> RunResult:
    """Run ``agent`` on ``env_id`` for ``budget`` evaluations; log to ``store`` if given.

    Returns a :class:`RunResult`.  Raises ``UnknownAgent``/``BadHyperparameter``
    for bad agent input, ``ValueError`` for an unknown env id or workload, and
    :class:`ResumeMismatch` if a logged run cannot be replayed.
    """
    check_budget(budget)
    seed = check_seed(seed)
    ev = evaluator or make_evaluator(env_id, workload=workload, objective=objective,
                                     simulator_kwargs=simulator_kwargs, fixed=fixed, workload_params=workload_params)
    if isinstance(agent, Agent):
        ag = agent
        params_d = _params_dict(ag.params)
    else:
        ag = make_agent(agent, ev.space, seed=seed, params=params, objective=ev.objective, budget=budget)
        params_d = _params_dict(ag.params)
    rid = run_id or run_id_for(env_id, ev.workload.key, ev.objective, ag.name, params_d, seed, simulator_kwargs,
                               ev.fixed)
    t0 = time.perf_counter()
    best = _Best()
    resumed = 0
    if store is not None:
        store.begin_run(
            rid, env_id=env_id, workload=ev.workload.spec, agent=ag.name, params=params_d, seed=seed, budget=budget,
            objective=ev.objective.to_dict(), design_names=ev.space.names, metric_names=ev.metric_names,
        )
        for row in store.contiguous_prefix(rid)[:budget]:
            d = ag.ask()
            if ev.space.validate(d) != row.design:
                raise ResumeMismatch(
                    f"cannot resume run {rid}: at step {row.step} the agent asked for {d} but the log has "
                    f"{row.design} (was the agent or its seed changed?)"
                )
            m = _metrics_from_row(row.metrics, row.feasible, row.reason)
            if ev.prime(row.design, m) != row.cached:
                raise ResumeMismatch(
                    f"cannot resume run {rid}: step {row.step} was logged as {'a cache hit' if row.cached else 'new'} "
                    f"but replaying the log makes it {'new' if row.cached else 'a cache hit'} (was the cache size "
                    "changed?)")
            ag.tell(row.design, m, row.reward)
            best.update(row.step, row.design, m, row.reward, row.target_met)
            resumed += 1
    for step in range(resumed, budget):
        d = ag.ask()
        e: Evaluation = ev.evaluate(d)
        ag.tell(e.design, e.metrics, e.reward)
        best.update(step, e.design, e.metrics, e.reward, e.target_met)
        if store is not None:
            store.append(
                rid, step, tuple(e.design.values()), e.metrics.vector(ev.metric_names), reward=e.reward,
                feasible=e.feasible, target_met=e.target_met, cached=e.cached, reason=e.metrics.reason,
                wall_s=e.wall_s,
            )
        if progress is not None:
            progress(step + 1, best.reward)
    if store is not None:
        store.finish_run(rid)
    ag.close()
    return RunResult(
        rid, env_id, ag.name, seed, budget, resumed, ev.sim_calls, ev.cache_hits, best.design, best.metrics,
        best.reward, best.step, best.target_steps, time.perf_counter() - t0, ev.objective,
    )


class _Best:
    def __init__(self) -> None:
        self.reward = -math.inf
        self.design = None
        self.metrics = None
        self.step = -1
        self.target_steps = 0

    def update(self, step: int, design: dict, metrics: Metrics, reward: float, target_met: bool) -> None:
        self.target_steps += int(target_met)
        if metrics.feasible and reward > self.reward:
            self.reward, self.design, self.metrics, self.step = reward, dict(design), metrics, step


def _params_dict(params: Any) -> dict:
    return asdict(params) if is_dataclass(params) else dict(params or {})


def _metrics_from_row(values: Mapping[str, float], feasible: bool, reason: str) -> Metrics:
    """The :class:`Metrics` an agent was told, rebuilt from a logged row: every logged value
    (infeasible rows included: their simulator-specific metrics are part of what the agent
    saw), so a replayed agent sees the same numbers as in the original run."""
    from .metrics import _CORE

    core = {k: values[k] for k in _CORE if k in values}
    cyc = core.pop("cycles", None)
    extra = {k: v for k, v in values.items() if k not in _CORE}
    return Metrics(cycles=None if cyc is None or cyc != cyc else int(cyc), feasible=feasible, reason=reason,
                   extra=extra, **core)
