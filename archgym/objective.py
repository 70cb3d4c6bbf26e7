"""What "better" means: one reward contract for every simulator and agent.

An :class:`Objective` is a weighted product of metrics to minimise (a single
metric is the one-term case; energy-delay product is
``{"energy_j": 1, "latency_s": 1}``; a negative weight maximises, e.g.
``{"throughput_per_s": -1}``) plus optional :class:`Target` bounds.

The reward is always finite, in ``[0, 1]`` and higher-is-better:

* ``cost = prod(metric_i ** weight_i)``; ``cost_score = ref / (ref + cost)``
  where ``ref`` is the cost of a reference design (the simulator's default
  design unless given), so the default design scores 0.5 and a design 10x
  cheaper scores 0.91.
* with targets only: the mean over targets of ``min(1, target/value)`` (for
  ``<=``; ``value/target`` for ``>=``); 1.0 exactly when every target is met.
* with targets and weights: targets come first (lexicographic): a design that
  misses a target scores ``0.5 * closeness`` (< 0.5), one that meets all of
  them scores ``0.5 + 0.5 * cost_score`` (> 0.5).
* an infeasible design, or one whose objective metrics are not finite and
  positive, scores 0.0.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .metrics import Metrics, unit_of

__all__ = ["Target", "Objective", "ObjectiveError"]


class ObjectiveError(ValueError):
    """A malformed objective or target specification."""


_TARGET_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Target:
    """A bound ``metric <= value`` or ``metric >= value``."""

    metric: str
    op: str
    value: float

    def __post_init__(self) -> None:
        if self.op not in ("<=", ">="):
            raise ObjectiveError(f"target operator {self.op!r}; allowed: '<=', '>='")
        try:
            unit_of(self.metric)
        except ValueError as e:
            raise ObjectiveError(str(e)) from None
        if not (math.isfinite(self.value) and self.value > 0):
            raise ObjectiveError(f"target {self.metric} {self.op} {self.value}: the bound must be finite and > 0")

    @classmethod
    def parse(cls, text: str) -> "Target":
        """Parse ``"latency_s<=0.05"``."""
        m = _TARGET_RE.match(text)
        try:
            value = float(m.group(3)) if m else None
        except ValueError:  # the pattern admits "1e" or "1.2.3"
            value = None
        if value is None:
            raise ObjectiveError(f"malformed target {text!r}; expected e.g. 'latency_s<=0.05' or 'throughput_per_s>=100'")
        return cls(m.group(1), m.group(2), value)

    def met(self, v: float) -> bool:
        if not math.isfinite(v):
            return False
        return v <= self.value if self.op == "<=" else v >= self.value

    def log_violation(self, v: float) -> float:
        """Signed log ratio of ``v`` to the bound: ``log(v/bound)`` for ``<=``,
        ``log(bound/v)`` for ``>=``; > 0 when missed, <= 0 (the margin) when met;
        NaN when ``v`` or the bound is not finite and > 0.  A smooth quantity for a
        surrogate model of the target (the BO agent's constraint GPs)."""
        if not (math.isfinite(v) and v > 0 and math.isfinite(self.value) and self.value > 0):
            return math.nan
        return math.log(v / self.value) if self.op == "<=" else math.log(self.value / v)

    def closeness(self, v: float) -> float:
        """How close ``v`` is to meeting the target, in [0, 1]: 1 exactly when it is met;
        ``target/value`` above a ``<=`` bound, ``value/target`` (0 for a value <= 0) below a
        ``>=`` bound; 0 for a value that is not finite."""
        if not math.isfinite(v):
            return 0.0
        if self.op == "<=":
            return 1.0 if v <= self.value else self.value / v
        return 1.0 if v >= self.value else max(0.0, v / self.value)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


@dataclass(frozen=True)
class Objective:
    """A weighted product of metrics to minimise, plus optional targets.

    ``weights`` maps metric name -> exponent (negative = maximise).  ``ref`` is
    the cost that scores 0.5; leave it ``None`` and the env fills it in from the
    simulator's default design (:meth:`with_reference`).
    """

    weights: Mapping[str, float] = field(default_factory=lambda: {"latency_s": 1.0})
    targets: tuple[Target, ...] = ()
    ref: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", dict(self.weights))
        object.__setattr__(self, "targets", tuple(self.targets))
        if not self.weights and not self.targets:
            raise ObjectiveError("an objective needs at least one weighted metric or one target")
        for m, w in self.weights.items():
            try:
                unit_of(m)
            except ValueError as e:
                raise ObjectiveError(str(e)) from None
            if not (math.isfinite(w) and w != 0):
                raise ObjectiveError(f"weight of {m!r} must be finite and non-zero, got {w}")
        if self.ref is not None and not (math.isfinite(self.ref) and self.ref > 0):
            raise ObjectiveError(f"reference cost must be finite and > 0, got {self.ref}")

    # --- construction ----------------------------------------------------------------
    @classmethod
    def parse(cls, spec: str | None = None, targets: Sequence[str] = ()) -> "Objective":
        """Build from CLI text: ``"latency_s"``, ``"energy_j*latency_s"``,
        ``"energy_j^2*latency_s"``, ``"max:throughput_per_s"``; targets like
        ``["latency_s<=0.05", "area_mm2<=2"]``."""
        weights: dict[str, float] = {}
        if spec:
            for term in spec.split("*"):
                term = term.strip()
                sign = 1.0
                if term.startswith("max:"):
                    sign, term = -1.0, term[4:]
                elif term.startswith("min:"):
                    term = term[4:]
                name, caret, power = term.partition("^")
                if caret and not power.strip():
                    raise ObjectiveError(f"objective term {term!r} has '^' but no exponent; e.g. 'energy_j^2'")
                try:
                    w = float(power) if power else 1.0
                except ValueError:
                    raise ObjectiveError(f"malformed exponent in objective term {term!r}") from None
                if not name.isidentifier():
                    raise ObjectiveError(f"malformed objective {spec!r}; expected e.g. 'latency_s' or 'energy_j*latency_s'")
                weights[name] = weights.get(name, 0.0) + sign * w
        return cls(weights, tuple(Target.parse(t) for t in targets))

    def with_reference(self, ref: float) -> "Objective":
        """Copy with the reference cost set (ignored if not finite and positive)."""
        if not (math.isfinite(ref) and ref > 0):
            ref = 1.0
        return Objective(self.weights, self.targets, ref)

    # --- evaluation ----------------------------------------------------------------
    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric the objective reads (weights first, then targets)."""
        out = list(self.weights)
        for t in self.targets:  # two targets on one metric (a range) read it once
            if t.metric not in out:
                out.append(t.metric)
        return tuple(out)

    @property
    def directions(self) -> tuple[str, ...]:
        """``"minimize"``/``"maximize"`` per weighted metric (for multi-objective agents)."""
        return tuple("minimize" if w > 0 else "maximize" for w in self.weights.values())

    def cost(self, metrics: Metrics) -> float:
        """``prod(metric ** weight)``; ``inf`` if infeasible or a metric is not finite and > 0."""
        return self._product(metrics.get) if metrics.feasible else math.inf

    def logged_cost(self, e: Any) -> float:
        """The cost of a logged evaluation (:class:`archgym.store.LoggedEval`), ``inf`` if it
        was infeasible or missed a target: the yardstick of the benchmarks and the lottery."""
        if not e.feasible or (self.targets and not e.target_met):
            return math.inf
        return self._product(lambda m: e.metrics.get(m, math.nan))

    def _product(self, get: Callable[[str], float]) -> float:
        log_c = 0.0
        for m, w in self.weights.items():
            v = get(m)
            if not (math.isfinite(v) and v > 0):
                return math.inf
            log_c += w * math.log(v)
        return math.exp(log_c) if log_c < 700 else math.inf

    def target_met(self, metrics: Metrics) -> bool:
        """True when the design is feasible and meets every target (vacuously with none)."""
        return metrics.feasible and all(t.met(metrics.get(t.metric)) for t in self.targets)

    def closeness(self, metrics: Metrics) -> float:
        """Mean target closeness in [0, 1] (1.0 when there are no targets)."""
        if not self.targets:
            return 1.0
        return sum(t.closeness(metrics.get(t.metric)) for t in self.targets) / len(self.targets)

    def reward(self, metrics: Metrics) -> float:
        """Bounded, higher-is-better reward in [0, 1] (see module docstring)."""
        if not metrics.feasible:
            return 0.0
        if not self.weights:
            return self.closeness(metrics)
        c = self.cost(metrics)
        ref = self.ref if self.ref is not None else 1.0
        score = 0.0 if not math.isfinite(c) else ref / (ref + c)
        if not self.targets:
            return score
        if self.target_met(metrics):
            return 0.5 + 0.5 * score
        return 0.5 * self.closeness(metrics)

    def describe(self) -> str:
        """Human-readable form: ``minimize energy_j*latency_s s.t. area_mm2<=2``,
        ``maximize tokens_per_s``, ``minimize energy_j/throughput_per_s``."""
        def term(m: str, w: float) -> str:
            return m if abs(w) == 1 else f"{m}^{abs(w):g}"

        num = "*".join(term(m, w) for m, w in self.weights.items() if w > 0)
        den = "*".join(term(m, w) for m, w in self.weights.items() if w < 0)
        if num and den:
            body = f"minimize {num}/{den}"
        elif num:
            body = f"minimize {num}"
        elif den:
            body = f"maximize {den}"
        else:
            body = "meet targets"
        if self.targets:
            body += " s.t. " + ", ".join(str(t) for t in self.targets)
        return body

    def to_dict(self) -> dict:
        """JSON-serialisable form (for the run log)."""
        return {"weights": dict(self.weights), "targets": [str(t) for t in self.targets], "ref": self.ref}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Objective":
        """Inverse of :meth:`to_dict`."""
        return cls(dict(d.get("weights", {})), tuple(Target.parse(t) for t in d.get("targets", ())), d.get("ref"))
