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

import dataclasses
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
from .space import Constraint, DesignSpace, InvalidDesign
from .workloads import Workload, WorkloadError, format_workload, load_workload, parse_workload

__all__ = ["Simulator", "Evaluator", "Evaluation", "load_simulator", "simulator_options", "check_simulator_options"]


class Simulator(ABC):
    """Base class of every accelerator performance model.

    Subclasses set ``name``, ``reference`` (the paper/tool reproduced and the
    tolerance met) and ``accepts`` (which layer types and model families they
    can price), and implement :meth:`design_space`, :meth:`default_design`,
    :meth:`workloads` and :meth:`evaluate`.  Override :meth:`check_workload`
    to refuse workloads the model cannot price, :meth:`evaluate_batch` with a
    numba kernel where it pays off, and :meth:`check_design` to validate the
    raw values of a design passed to :meth:`evaluate` directly.

    Workloads: :meth:`evaluate` receives a :class:`~archgym.workloads.Workload`
    (or any text :func:`~archgym.workloads.load_workload` reads, resolved by
    :meth:`workload`).  ``workload_defaults`` fills parameters the user did not
    give (e.g. ``{"seq_len": 2048}``) so a simulator's zoo names keep their
    meaning; :meth:`workload_aliases` maps short names (``"pascal"``) to
    loadable text.
    """

    name: str = ""
    reference: str = ""
    accepts: str = "any workload with GEMM, convolution or MoE layers"
    workload_defaults: Mapping[str, Any] = {}

    @abstractmethod
    def design_space(self) -> DesignSpace:
        """The one design space every agent searches."""

    @abstractmethod
    def default_design(self) -> dict:
        """A feasible baseline design (the paper's configuration where there is one)."""

    @abstractmethod
    def workloads(self) -> tuple[str, ...]:
        """Names of the zoo workloads this simulator is known to price (first = default)."""

    def evaluate(self, design: Mapping[str, Any], workload: "Workload | str | None" = None) -> Metrics:
        """Metrics of one design on one workload (pure; no randomness): the public, checked path.

        Validates the raw design (:meth:`check_design`: names, types, finite values in the
        range the model can price; a ``ValueError`` names the bad value) and resolves the
        workload (:meth:`workload`), then calls :meth:`_evaluate`.  A design the model can
        price but the platform cannot hold (over a resource budget) comes back as
        ``Metrics.infeasible(reason)``, not an exception.
        """
        if type(self)._evaluate is Simulator._evaluate:
            raise NotImplementedError(f"{type(self).__name__} must implement _evaluate (or override evaluate)")
        return self._evaluate(self.check_design(design), self.workload(workload))

    def _evaluate(self, design: dict, workload: "Workload") -> Metrics:
        """The model itself, on a design already checked by :meth:`check_design` (or taken
        from the design space's grid) and a workload already resolved and checked by
        :meth:`workload`.  The :class:`Evaluator` calls it directly (its designs come from
        the grid), so the hot path pays for no re-validation.  Subclasses implement this."""
        raise NotImplementedError

    def evaluate_batch(self, indices: np.ndarray, workload: "Workload | str") -> dict[str, np.ndarray]:
        """Evaluate many designs given as index vectors ``(n, d)``.

        Returns ``{metric_name: array(n)}`` plus a boolean ``"feasible"`` array.
        Constraint violations are infeasible.  The default loops over
        :meth:`evaluate`; fast simulators override it with a numba kernel.
        """
        space = self.design_space()
        w = self.workload(workload)
        ev = self._evaluate if type(self)._evaluate is not Simulator._evaluate else self.evaluate
        rows = []
        for idx in np.asarray(indices):
            d = space.decode(idx)
            m = ev(d, w) if space.is_feasible(d) else Metrics.infeasible("constraint")
            rows.append(m)
        keys = _metric_keys(rows)
        out = {k: np.array([r.as_dict().get(k, math.nan) for r in rows], dtype=float) for k in keys}
        out["feasible"] = np.array([r.feasible for r in rows], dtype=bool)
        return out

    def exact_optimum(self, evaluator: "Evaluator") -> Any:
        """An exact optimisation method of the simulator's own (e.g. branch and bound over a
        space too large to enumerate) for ``evaluator``'s objective, returning an
        :class:`archgym.optimum.Optimum`; ``None`` when it has none for this objective
        (:func:`archgym.optimum.optimum` then enumerates, where the space allows)."""
        return None

    def workload_constraints(self, workload: "Workload") -> tuple[Constraint, ...]:
        """Rules on the design that depend on the workload and need no simulation (e.g. an
        accumulator that overflows for the workload's reduction length).  The
        :class:`Evaluator` adds them to its space's constraints, so agents that filter with
        ``space.is_feasible``/``feasible_mask`` (BO's ``known_constraints``) and ``archgym
        describe`` see them; a design that breaks one is still evaluated by the simulator,
        which reports it infeasible itself (same reason and metrics as without the
        declaration).  Default: none."""
        return ()

    # --- workloads -----------------------------------------------------------------
    def workload_aliases(self) -> Mapping[str, str]:
        """Short workload names this simulator accepts, mapped to loadable text."""
        return {}

    def check_workload(self, workload: "Workload") -> None:
        """Raise :class:`~archgym.workloads.WorkloadError` (one line saying why) if this
        simulator cannot price ``workload``.  The default accepts any workload with at least
        one GEMM, convolution or MoE layer."""
        if not workload.lowered():
            raise WorkloadError(f"{self.name} cannot price workload {workload.source!r}: it has no GEMM, "
                                f"convolution or MoE layer (this simulator prices {self.accepts})")

    def workload(self, source: "Workload | str | None" = None, **params: Any) -> "Workload":
        """Resolve ``source`` (default: the first of :meth:`workloads`) to a checked
        :class:`~archgym.workloads.Workload`, with ``params`` (``batch``, ``seq_len``, ...)
        and this simulator's :attr:`workload_defaults` for the ones not given.  Cached."""
        if isinstance(source, Workload):
            if params:
                raise WorkloadError("workload parameters apply to a name or file, not to a Workload object")
            # the hot path of evaluate(design, w): each workload object is checked once (the
            # dict holds it, so its id cannot be reused while it is in there)
            checked = self.__dict__.setdefault("_checked_workloads", {})
            if checked.get(id(source)) is source:
                return source
            self.check_workload(source)
            if len(checked) >= 256:
                checked.clear()
            checked[id(source)] = source
            return source
        else:
            text = self.workloads()[0] if source is None else source
            cache = self.__dict__.setdefault("_workload_cache", {})
            key = (text, tuple(sorted((k, str(v)) for k, v in params.items())))
            hit = cache.get(key)
            if hit is not None and hit[1] == _file_stamp(text):   # a file: unchanged since it was read
                return hit[0]
            src, q = parse_workload(text)
            given = {**q, **{k: v for k, v in params.items() if v is not None}}
            alias = self.workload_aliases().get(src)
            if alias is not None:
                asrc, aq = parse_workload(alias)
                w = load_workload(format_workload(asrc, {**aq, **given}), defaults=self.workload_defaults)
                # the run log and describe show the name the user gave
                w = dataclasses.replace(w, source=format_workload(src, given))
            elif not _loadable(src):
                if src not in self.workloads():
                    raise WorkloadError(
                        f"workload {src!r} is not known to {self.name}: give one of its workloads "
                        f"({', '.join(self.workloads()[:8])}{', ...' if len(self.workloads()) > 8 else ''}), "
                        "another zoo name it can price, or a file (.csv SCALE-Sim topology, .json Hugging Face "
                        "config, .onnx)")
                # a name this simulator defines itself: an opaque workload it alone understands
                w = Workload(src, (), params=given, source=format_workload(src, given))
            else:
                w = load_workload(format_workload(src, given), defaults=self.workload_defaults)
            self.check_workload(w)
            if len(cache) >= 256:
                cache.clear()
            cache[key] = (w, _file_stamp(text))
        return w

    # --- designs -------------------------------------------------------------------
    def check_design(self, design: Mapping[str, Any]) -> dict:
        """Validate a raw design for :meth:`evaluate` (values need not lie on the env's
        grid): every parameter present, of the right type, finite and in the range the
        model can price.  Returns the design as a plain dict; raises ``ValueError`` naming
        the parameter, the value and what is allowed.  The default checks names and types
        against :meth:`design_space` (numbers finite and > 0 where every grid value is)."""
        space = self.design_space()
        if not isinstance(design, Mapping):
            raise InvalidDesign(f"a design must be a mapping of parameter names to values, got {type(design).__name__}")
        out = {}
        for p in space.params:
            if p.name not in design:
                raise InvalidDesign(f"missing parameter {p.name!r}")
            out[p.name] = _check_value(p, design[p.name])
        unknown = [k for k in design if k not in out]
        if unknown:
            raise InvalidDesign(f"unknown parameter {unknown[0]!r}; parameters: {', '.join(space.names)}")
        return out


def _file_stamp(text: str) -> tuple | None:
    """(path, size, mtime) of the file a workload text names (its config.json for a folder),
    None for a zoo or simulator-own name: a cached workload is reused while this is unchanged."""
    import os

    from .workloads import MODELS

    src = parse_workload(text)[0]
    if src.partition("/")[0] in MODELS:   # a zoo name wins over any file of that name: no stat
        return None
    path = os.path.expanduser(src)
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (path, st.st_size, st.st_mtime_ns)


def _loadable(src: str) -> bool:
    import os

    from .workloads import MODELS

    return src.partition("/")[0] in MODELS or os.path.exists(os.path.expanduser(src))


def _check_value(p: Any, v: Any) -> Any:
    vals = p.values
    if all(isinstance(x, bool) for x in vals):
        if not isinstance(v, (bool, np.bool_)):
            raise InvalidDesign(f"{p.name}={v!r} must be a bool")
        return bool(v)
    if all(isinstance(x, str) for x in vals):
        if v not in vals:
            raise InvalidDesign(f"{p.name}={v!r} is not allowed; allowed: {', '.join(map(str, vals))}")
        return v
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise InvalidDesign(f"{p.name}={v!r} must be a real number")
    if not math.isfinite(float(v)):
        raise InvalidDesign(f"{p.name}={v!r} must be finite")
    nums = [x for x in vals if isinstance(x, (int, float)) and not isinstance(x, bool)]
    if nums and min(nums) > 0 and v <= 0:
        raise InvalidDesign(f"{p.name}={v!r} must be > 0")
    if nums and all(isinstance(x, int) for x in nums) and float(v) != int(v):
        raise InvalidDesign(f"{p.name}={v!r} must be an integer")
    return v


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
    check_simulator_options(spec, kwargs)
    try:
        return spec(**kwargs)
    except TypeError as e:  # a wrong type the constructor did not check itself
        raise ValueError(f"{spec.__name__} options {kwargs}: {e}") from None


def simulator_options(cls: type) -> dict[str, Any]:
    """The constructor options of a simulator class: ``{name: default}``."""
    import inspect

    out = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[name] = p.default
    return out


def check_simulator_options(cls: type, kwargs: Mapping[str, Any]) -> None:
    """``ValueError`` (one line, listing the allowed ones) for an option the simulator's
    constructor does not take (``--sim-opt nope=1``, ``__class__=x``, ``self=1``)."""
    allowed = simulator_options(cls)
    for k in kwargs:
        if not isinstance(k, str) or not k.isidentifier() or k.startswith("_") or k not in allowed:
            raise ValueError(f"unknown simulator option {k!r} for {getattr(cls, 'name', '') or cls.__name__}; "
                             f"allowed: {', '.join(allowed) or '(none)'}")


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
        self, simulator: Simulator, workload: "Workload | str | None" = None, objective: Objective | None = None,
        *, cache_size: int = 1 << 16, fixed: Mapping[str, Any] | None = None,
        workload_params: Mapping[str, Any] | None = None,
    ) -> None:
        self.simulator = simulator
        self.space: DesignSpace = simulator.design_space()
        self.fixed = dict(self.space.validate(fixed, partial=True)) if fixed else {}
        if self.fixed:
            self.space = self.space.restrict(self.fixed)
        #: the resolved :class:`~archgym.workloads.Workload`; ``workload.source`` is what the run log records
        self.workload: Workload = simulator.workload(workload, **dict(workload_params or {}))
        # the design space's own constraints are checked here before a simulation; the
        # workload's (Simulator.workload_constraints) are declared in the space for the agents
        # but left to the simulator, which reports them with its own reason and metrics
        self._checked = self.space.constraints
        #: the simulator's rules for this workload, declared in ``space.constraints`` too
        self.workload_constraints: tuple[Constraint, ...] = tuple(simulator.workload_constraints(self.workload))
        if self.workload_constraints:
            self.space = DesignSpace(self.space.params, self.space.constraints + self.workload_constraints)
        objective = objective or Objective()
        self.sim_calls = 0
        self.cache_hits = 0
        self.calibration_calls = 0
        self._cache: OrderedDict[tuple, Metrics] = OrderedDict()
        self._cache_size = cache_size
        self.default_design = {**simulator.default_design(), **self.fixed}
        self.default_design = self.space.validate(self.default_design)
        # designs here are validated against the grid, so simulators that separate the model
        # (_evaluate) from the raw-input checks (evaluate) are called without re-validation
        self._eval = simulator._evaluate if type(simulator)._evaluate is not Simulator._evaluate else simulator.evaluate
        ref_metrics = self._eval(self.default_design, self.workload)
        self.calibration_calls = 1
        self.reference_metrics = ref_metrics
        # what the simulator models: the finite metrics of a feasible default design (an
        # infeasible default, e.g. under a tight budget, only tells which fields exist)
        modelled = (set(ref_metrics.names()) | set(ref_metrics.extra) if ref_metrics.feasible
                    else set(ref_metrics.as_dict()))
        for m in objective.metrics:
            if m not in modelled:
                raise ValueError(
                    f"objective metric {m!r} is not modelled by {simulator.name}; "
                    f"available: {', '.join(sorted(modelled))}"
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
        violations = [v for v in (c.violation(d) for c in self._checked) if v is not None]
        if violations:
            m = Metrics.infeasible("; ".join(violations))
        else:
            m = self._eval(d, self.workload)
            self.sim_calls += 1
        if self._cache_size:
            self._cache[key] = m
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return m, False

    def prime(self, design: Mapping[str, Any], metrics: Metrics) -> bool:
        """Replay one logged evaluation into the cache, as :meth:`evaluate` did when it was
        logged: a design already cached is a hit (moved to the recent end), a new one is
        inserted (evicting the least recently used past ``cache_size``).  The cache then
        holds what an uninterrupted run's would, so later rows (``cached`` flags included)
        come out the same however long the run.  Returns whether it was a hit.  Not counted
        in ``sim_calls``/``cache_hits``: the counters describe this process's work."""
        if not self._cache_size:
            return False
        key = tuple(self.space.validate(design).values())
        if key in self._cache:
            self._cache.move_to_end(key)
            return True
        self._cache[key] = metrics
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return False

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

        Keys: every metric this simulator models, as a float (NaN where a value
        is absent, e.g. for an infeasible design: the same type every step, which
        vectorised envs need), ``feasible``, ``target_met``, ``reason``.  Counters (``sim_calls``, ``cache_hits``) are attributes of
        the evaluator, not info keys, so a step's info depends only on the design.
        """
        return self.info_of(ev.metrics, ev.target_met)

    def info_of(self, metrics: Metrics | None, target_met: bool = False) -> dict:
        """:meth:`info` for a metrics record (``None`` = nothing evaluated yet)."""
        vals = metrics.vector(self.metric_names) if metrics is not None else [math.nan] * len(self.metric_names)
        out: dict[str, Any] = dict(zip(self.metric_names, vals))
        out.update(
            feasible=bool(metrics is not None and metrics.feasible),
            target_met=bool(target_met),
            reason=metrics.reason if metrics is not None else "",
        )
        return out


__all__ += ["InvalidDesign"]
