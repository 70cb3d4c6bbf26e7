"""Sweeps: a YAML spec of envs x agents x hyperparameter grids x seeds, expanded into runs.

Spec (loaded with ``yaml.safe_load`` and validated strictly: an unknown key,
a wrong type, an unknown agent or hyperparameter, or a grid that expands to
zero runs is a one-line :class:`SweepSpecError`)::

    name: demo                      # optional
    budget: 200                     # evaluations per run (required)
    seeds: [0, 1, 2]                # a list, or an int n meaning 0..n-1 (default [0])
    db: demo.db                     # optional run log; relative to the working directory
    imports: [my_accel.register]    # optional modules that register extra envs
    envs:
      - archgym/Systolic-v0         # an id, or a mapping:
      - id: archgym/Systolic-v0
        workload: opt-125m/decode
        objective: latency_s        # default: the env's
        targets: ["area_mm2<=4"]
        fixed: {dataflow: ws}       # pin parameters; agents search the rest
        sim_opts: {mode: scalesim}  # simulator constructor options
    agents:
      - random                      # a name, or a mapping:
      - name: ga
        params: {elite: 2}          # fixed hyperparameters
        grid:                       # Cartesian product of hyperparameter values
          pop_size: [8, 16, 32]
          mutation_prob: [0.05, 0.1]
        budget: 100                 # optional per-agent override

Every run has the deterministic id of :func:`archgym.runner.run_id_for` (the
same id ``archgym run`` gives the same command), so :func:`run_sweep` skips
runs the log already holds in full, and continues a partial run by shipping
its logged prefix to the worker, which replays it into the agent (no
simulator calls).  Workers return each run's rows; only the driver writes the
log, one run at a time, so a sweep killed at any point and restarted with the
same command loses nothing that was committed and repeats nothing finished.
Each run is computed from its seed alone, so a local pool and a Dask cluster
give identical rows.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .agent import agent_class, make_agent
from .executors import Executor, LocalExecutor
from .objective import Objective
from .registry import spec_of
from .agent import check_seed
from .runner import check_budget, make_evaluator, run, run_id_for
from .store import LoggedEval, RunStore

__all__ = ["SweepSpecError", "SweepSpec", "EnvEntry", "AgentEntry", "RunTask", "TaskResult", "SweepReport",
           "load_spec", "parse_spec", "expand", "execute_task", "run_sweep", "Optimum", "exhaustive", "evaluator_for",
           "can_enumerate"]


class SweepSpecError(ValueError):
    """A malformed sweep spec (the message names the file and the key)."""


@dataclass(frozen=True)
class EnvEntry:
    """One env of a sweep: an id plus optional overrides."""

    id: str
    workload: str | None = None
    objective: str | None = None
    targets: tuple[str, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)
    sim_opts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentEntry:
    """One agent of a sweep: fixed hyperparameters and a grid to expand."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    grid: Mapping[str, tuple] = field(default_factory=dict)
    budget: int | None = None

    def combos(self) -> list[dict]:
        """Every hyperparameter assignment of the grid (fixed params included)."""
        keys = list(self.grid)
        return [{**self.params, **dict(zip(keys, vals))} for vals in itertools.product(*self.grid.values())]


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec (see the module docstring)."""

    budget: int
    envs: tuple[EnvEntry, ...]
    agents: tuple[AgentEntry, ...]
    seeds: tuple[int, ...] = (0,)
    name: str = "sweep"
    db: str | None = None
    imports: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs to execute (or continue) one run."""

    run_id: str
    env: EnvEntry
    agent: str
    params: Mapping[str, Any]
    seed: int
    budget: int
    imports: tuple[str, ...] = ()
    prefix: tuple[LoggedEval, ...] = ()

    def label(self) -> str:
        hp = ",".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.agent}({hp}) on {self.env.id} seed {self.seed}"


@dataclass(frozen=True)
class TaskResult:
    """What a worker returns: the run's header and new rows, plus a summary."""

    run_id: str
    begin: Mapping[str, Any]
    rows: tuple[tuple, ...]
    best_reward: float
    steps: int
    resumed_steps: int
    sim_calls: int
    cache_hits: int
    wall_s: float


@dataclass
class SweepReport:
    """Outcome of :func:`run_sweep`."""

    total: int
    skipped: int = 0
    completed: list[TaskResult] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (label, one-line error)
    db: str = ""

    def summary(self) -> str:
        line = (f"sweep: {self.total} runs: {self.skipped} already complete (skipped), {len(self.completed)} run now"
                f", {len(self.failed)} failed; run log {self.db}")
        if self.failed:
            line += f"\nfirst failure: {self.failed[0][0]}: {self.failed[0][1]}"
        return line


# --- spec loading and validation ----------------------------------------------------------
_TOP = {"name", "budget", "seeds", "db", "imports", "envs", "agents"}
_ENV = {"id", "workload", "objective", "targets", "fixed", "sim_opts"}
_AGENT = {"name", "params", "grid", "budget"}


#: default cap on the runs one spec may expand to (``--max-runs`` / ``max_runs=`` overrides it)
MAX_RUNS = 100_000
#: cap on the values a spec holds once YAML aliases are expanded (an alias bomb is a few lines)
MAX_SPEC_VALUES = 100_000
#: cap on a spec file's size
MAX_SPEC_BYTES = 1 << 20


def load_spec(path: str | os.PathLike, *, max_runs: int = MAX_RUNS) -> SweepSpec:
    """Read and validate a YAML sweep spec (``yaml.safe_load`` only).

    Refused before anything is expanded: a file over 1 MiB, YAML nested too deeply or whose
    aliases expand past :data:`MAX_SPEC_VALUES` values, and a spec that would expand to more
    than ``max_runs`` runs.  A relative ``db:`` is relative to the working directory.
    """
    import yaml

    path = os.fspath(path)
    try:
        if os.path.getsize(path) > MAX_SPEC_BYTES:
            raise SweepSpecError(f"sweep spec {path!r} is larger than {MAX_SPEC_BYTES // 1024} KiB")
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise SweepSpecError(f"sweep spec {path!r} does not exist") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise SweepSpecError(f"sweep spec {path!r} cannot be read: {e}") from None
    except yaml.YAMLError as e:
        raise SweepSpecError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    except RecursionError:
        raise SweepSpecError(f"{path}: the YAML is nested too deeply") from None
    return parse_spec(data, source=path, max_runs=max_runs)


def _expanded_size(obj: Any, limit: int) -> int:
    """How many values ``obj`` holds with every shared (aliased) part counted each time it is
    used, computed once per shared part (so an alias bomb is measured, not expanded); stops
    counting past ``limit``."""
    memo: dict[int, int] = {}

    def size(x: Any, depth: int) -> int:
        if depth > 100:
            raise RecursionError
        if not isinstance(x, (list, dict)):
            return 1
        k = id(x)
        if k not in memo:
            items = list(x.items()) if isinstance(x, dict) else [(None, v) for v in x]
            total = 1
            for key, v in items:
                total += size(v, depth + 1) + (1 if key is not None else 0)
                if total > limit:
                    break
            memo[k] = total
        return memo[k]

    return size(obj, 0)


def _fail(source: str, where: str, msg: str) -> SweepSpecError:
    return SweepSpecError(f"{source}: {where}: {msg}" if where else f"{source}: {msg}")


def _keys(source: str, where: str, d: Mapping, allowed: set[str]) -> None:
    for k in d:
        if k not in allowed:
            raise _fail(source, where, f"unknown key {k!r}; allowed: {', '.join(sorted(allowed))}")


def _typed(source: str, where: str, v: Any, typ: type | tuple, what: str) -> Any:
    if isinstance(v, bool) and typ in (int, (int,)) or not isinstance(v, typ):
        raise _fail(source, where, f"expected {what}, got {v!r}")
    return v


def _budget(source: str, where: str, v: Any) -> int:
    try:
        return check_budget(v, where)
    except ValueError as e:
        raise _fail(source, "", str(e)) from None


def _seed(source: str, where: str, v: Any) -> int:
    try:
        return check_seed(v, where)
    except ValueError as e:
        raise _fail(source, "", str(e)) from None


def _str_list(source: str, where: str, v: Any) -> tuple[str, ...]:
    _typed(source, where, v, list, "a list of strings")
    for i, x in enumerate(v):
        _typed(source, f"{where}[{i}]", x, str, "a string")
    return tuple(v)


def _mapping(source: str, where: str, v: Any) -> dict:
    _typed(source, where, v, dict, "a mapping")
    for k in v:
        _typed(source, where, k, str, "string keys")
    return dict(v)


def parse_spec(data: Any, *, source: str = "<spec>", max_runs: int = MAX_RUNS) -> SweepSpec:
    """Validate a spec already parsed from YAML (a mapping) into a :class:`SweepSpec`.

    The number of runs is counted (envs x agents x grid points x seeds) before anything is
    expanded and must not exceed ``max_runs``."""
    try:
        n_values = _expanded_size(data, MAX_SPEC_VALUES)
    except RecursionError:
        raise _fail(source, "", "nested too deeply (more than 100 levels)") from None
    if n_values > MAX_SPEC_VALUES:
        raise _fail(source, "", f"expands to more than {MAX_SPEC_VALUES:,} values (YAML aliases?); a sweep spec "
                                "is a short list of envs, agents, grids and seeds")
    if not isinstance(data, dict):
        raise _fail(source, "", f"a sweep spec must be a mapping with keys {', '.join(sorted(_TOP))}")
    _keys(source, "", data, _TOP)
    for req in ("budget", "envs", "agents"):
        if req not in data:
            raise _fail(source, "", f"missing required key {req!r}")
    budget = _budget(source, "budget", data["budget"])
    seeds_v = data.get("seeds", [0])
    if isinstance(seeds_v, int) and not isinstance(seeds_v, bool):
        if not 0 <= seeds_v <= max_runs:
            raise _fail(source, "seeds", f"expected a count in 0..{max_runs:,} (the run cap) or a list of seeds, "
                                         f"got {seeds_v}")
        seeds = tuple(range(seeds_v))
    else:
        _typed(source, "seeds", seeds_v, list, "a list of integers or a count")
        seeds = tuple(_seed(source, f"seeds[{i}]", s) for i, s in enumerate(seeds_v))
    name = _typed(source, "name", data.get("name", "sweep"), str, "a string")
    db = data.get("db")
    if db is not None:
        _typed(source, "db", db, str, "a file path")
    imports = _str_list(source, "imports", data.get("imports", []))
    for i, m in enumerate(imports):
        try:
            importlib.import_module(m)
        except (ImportError, TypeError, ValueError) as e:
            raise _fail(source, f"imports[{i}]", f"cannot import {m!r}: {e}") from None

    envs_v = _typed(source, "envs", data["envs"], list, "a list of env ids or mappings")
    envs = []
    for i, e in enumerate(envs_v):
        where = f"envs[{i}]"
        if isinstance(e, str):
            e = {"id": e}
        e = _mapping(source, where, e)
        _keys(source, where, e, _ENV)
        if "id" not in e:
            raise _fail(source, where, "missing required key 'id'")
        env_id = _typed(source, f"{where}.id", e["id"], str, "an env id")
        try:
            spec_of(env_id)
        except ValueError as err:
            raise _fail(source, f"{where}.id", str(err)) from None
        envs.append(EnvEntry(
            env_id,
            workload=None if e.get("workload") is None else _typed(source, f"{where}.workload", e["workload"], str,
                                                                    "a workload name"),
            objective=None if e.get("objective") is None else _typed(source, f"{where}.objective", e["objective"],
                                                                      str, "an objective spec"),
            targets=_str_list(source, f"{where}.targets", e.get("targets", [])),
            fixed=_mapping(source, f"{where}.fixed", e.get("fixed", {})),
            sim_opts=_mapping(source, f"{where}.sim_opts", e.get("sim_opts", {})),
        ))

    agents_v = _typed(source, "agents", data["agents"], list, "a list of agent names or mappings")
    agents = []
    for i, a in enumerate(agents_v):
        where = f"agents[{i}]"
        if isinstance(a, str):
            a = {"name": a}
        a = _mapping(source, where, a)
        _keys(source, where, a, _AGENT)
        if "name" not in a:
            raise _fail(source, where, "missing required key 'name'")
        agent = _typed(source, f"{where}.name", a["name"], str, "an agent name")
        try:
            cls = agent_class(agent)
        except ValueError as err:
            raise _fail(source, f"{where}.name", str(err)) from None
        params = _mapping(source, f"{where}.params", a.get("params", {}))
        grid = {}
        for k, vals in _mapping(source, f"{where}.grid", a.get("grid", {})).items():
            if not isinstance(vals, list):
                vals = [vals]
            if not vals:
                raise _fail(source, f"{where}.grid.{k}", "empty list: the sweep would expand to zero runs")
            if k in params:
                raise _fail(source, f"{where}.grid.{k}", "also given in params; put it in one place")
            grid[k] = tuple(vals)
        ab = a.get("budget")
        if ab is not None:
            _budget(source, f"{where}.budget", ab)
        entry = AgentEntry(agent, params, grid, ab)
        n_grid = math.prod(len(v) for v in grid.values())
        if n_grid * max(len(seeds), 1) * max(len(envs), 1) > max_runs:
            raise _fail(source, f"{where}.grid", f"{len(envs)} envs x {n_grid:,} grid points x {len(seeds):,} seeds "
                                                 f"is more than the cap of {max_runs:,} runs (raise it with "
                                                 "--max-runs)")
        for combo in entry.combos():
            try:
                cls.parse_params(combo)
            except ValueError as err:
                raise _fail(source, where, str(err)) from None
        agents.append(entry)
    if not envs or not agents or not seeds:
        empty = "envs" if not envs else "agents" if not agents else "seeds"
        raise _fail(source, empty, "empty: the sweep expands to zero runs")
    n_runs = len(envs) * len(seeds) * sum(math.prod(len(v) for v in a.grid.values()) for a in agents)
    if n_runs > max_runs:
        raise _fail(source, "", f"expands to {n_runs:,} runs, more than the cap of {max_runs:,} (raise it with "
                                "--max-runs)")
    return SweepSpec(budget, tuple(envs), tuple(agents), seeds, name, db, imports)


# --- expansion ---------------------------------------------------------------------------------
def _objective(entry: EnvEntry) -> Objective | None:
    if entry.objective is None and not entry.targets:
        return None
    base = entry.objective
    if base is None:
        o = spec_of(entry.id).objective
        base = o if isinstance(o, str) else (o or {}).get("spec")
    return Objective.parse(base, entry.targets)


def evaluator_for(entry: EnvEntry):
    """The :class:`~archgym.simulator.Evaluator` a worker builds for ``entry`` (workload,
    objective with its reference, fixed parameters and simulator options resolved)."""
    return make_evaluator(entry.id, workload=entry.workload, objective=_objective(entry),
                          simulator_kwargs=entry.sim_opts, fixed=entry.fixed or None)


def expand(spec: SweepSpec, *, check_agents: bool = True) -> list[RunTask]:
    """Expand a spec into runs (duplicates removed), computing each run id.

    Builds one evaluator per env entry on the driver (one calibration
    evaluation each) to resolve the workload, objective reference and fixed
    parameters exactly as the worker will.  With ``check_agents`` every
    (env, agent, hyperparameters) combination is instantiated once, so bad
    hyperparameter values and missing optional libraries fail before any run.
    """
    tasks: list[RunTask] = []
    seen: set[str] = set()
    for i, entry in enumerate(spec.envs):
        try:
            ev = evaluator_for(entry)
        except ValueError as e:
            raise SweepSpecError(f"envs[{i}] ({entry.id}): {e}") from None
        for a in spec.agents:
            cls = agent_class(a.name)
            for combo in a.combos():
                params = asdict(cls.parse_params(combo))
                if check_agents:
                    make_agent(a.name, ev.space, seed=spec.seeds[0], params=combo, objective=ev.objective,
                               budget=a.budget or spec.budget).close()
                for seed in spec.seeds:
                    rid = run_id_for(entry.id, ev.workload.key, ev.objective, cls.name, params, seed,
                                     entry.sim_opts, ev.fixed)
                    if rid in seen:
                        continue
                    seen.add(rid)
                    tasks.append(RunTask(rid, entry, a.name, combo, seed, a.budget or spec.budget, spec.imports))
    if not tasks:
        raise SweepSpecError(f"sweep {spec.name!r} expands to zero runs")
    return tasks


# --- worker side ---------------------------------------------------------------------------------
class _RecordingStore:
    """Stands in for :class:`RunStore` inside a worker: serves the logged prefix for
    replay and records what the run loop would write, for the driver to commit."""

    def __init__(self, prefix: Sequence[LoggedEval]) -> None:
        self.prefix = list(prefix)
        self.begin: dict[str, Any] = {}
        self.rows: list[tuple] = []

    def begin_run(self, run_id: str, **kw: Any) -> None:
        self.begin = {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in kw.items()}

    def contiguous_prefix(self, run_id: str) -> list[LoggedEval]:
        return self.prefix

    def append(self, run_id: str, step: int, design_values, metric_values, **kw: Any) -> None:
        self.rows.append((step, tuple(design_values), tuple(metric_values), kw))

    def finish_run(self, run_id: str) -> None:
        pass


def execute_task(task: RunTask) -> TaskResult:
    """Run one task in this process (a pool or Dask worker) and return its new rows.

    BLAS/OpenMP run on one thread, so results do not depend on the worker's
    thread settings.
    """
    for m in task.imports:
        importlib.import_module(m)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        threadpool_limits = None
    store = _RecordingStore(task.prefix)
    e = task.env
    kwargs = dict(seed=task.seed, params=task.params, store=store, workload=e.workload, objective=_objective(e),
                  simulator_kwargs=e.sim_opts, fixed=e.fixed or None, run_id=task.run_id)
    if threadpool_limits is not None:
        with threadpool_limits(limits=1):
            res = run(e.id, task.agent, task.budget, **kwargs)
    else:  # pragma: no cover
        res = run(e.id, task.agent, task.budget, **kwargs)
    return TaskResult(task.run_id, store.begin, tuple(store.rows), res.best_reward, res.steps, res.resumed_steps,
                      res.sim_calls, res.cache_hits, res.wall_s)


# --- driver ----------------------------------------------------------------------------------------
def _commit(store: RunStore, r: TaskResult) -> None:
    store.begin_run(r.run_id, **r.begin)
    for step, design, metrics, kw in r.rows:
        store.append(r.run_id, step, design, metrics, **kw)
    store.finish_run(r.run_id)


def run_sweep(
    spec: SweepSpec, *, db: str | os.PathLike | None = None, executor: Executor | None = None,
    progress: Callable[[str], None] | None = None, tasks: Sequence[RunTask] | None = None,
) -> SweepReport:
    """Execute every run of ``spec`` not already complete in the run log.

    ``db`` overrides the spec's ``db`` (default ``runs.db``); ``executor``
    defaults to a :class:`LocalExecutor` with one worker per CPU.  ``progress``
    receives one line per finished run.  Returns a :class:`SweepReport`; a
    failed run is reported there (the others still complete and are logged).
    """
    db = os.fspath(db or spec.db or "runs.db")
    tasks = list(tasks) if tasks is not None else expand(spec)
    say = progress or (lambda line: None)
    report = SweepReport(total=len(tasks), db=os.path.abspath(db))
    own_executor = executor is None
    executor = executor or LocalExecutor()
    store = RunStore(db)
    try:
        todo = []
        for t in tasks:
            info = store.run(t.run_id)
            n = store.count(t.run_id) if info is not None else 0
            if n >= t.budget:
                report.skipped += 1
                continue
            prefix = tuple(store.contiguous_prefix(t.run_id)[: t.budget]) if n else ()
            todo.append(dataclasses.replace(t, prefix=prefix))
        if report.skipped:
            say(f"{report.skipped} of {len(tasks)} runs already complete in {db}: skipped")
        t0 = time.perf_counter()
        for done, (i, ok, value) in enumerate(executor.map_unordered(execute_task, todo), 1):
            t = todo[i]
            if ok:
                _commit(store, value)
                report.completed.append(value)
                say(f"[{done}/{len(todo)}] {t.label()}: best reward {value.best_reward:.6f}, "
                    f"{value.steps} evaluations ({value.resumed_steps} replayed) in {value.wall_s:.1f} s "
                    f"[{time.perf_counter() - t0:.0f} s]")
            else:
                report.failed.append((t.label(), value))
                say(f"[{done}/{len(todo)}] {t.label()}: FAILED: {value}")
    finally:
        store.close()
        if own_executor:
            executor.close()
    return report


# the exact optimum moved to archgym.optimum; kept importable from here
from .optimum import Optimum, _batch_reward, can_enumerate, exhaustive  # noqa: E402,F401
