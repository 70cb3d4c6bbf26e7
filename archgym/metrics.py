"""One metrics record for every simulator, with units in the field names.

Every quantity a simulator reports is a named float whose name ends in its unit
(``latency_s``, ``energy_j``, ``dram_bytes``, ...).  Common fields are
attributes of :class:`Metrics`; simulator-specific ones go into ``extra`` and
must also follow the naming rule, which :func:`unit_of` enforces.  No unit is
ever implied.
"""

from __future__ import annotations

import math
import operator
from functools import lru_cache
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

__all__ = ["Metrics", "UNIT_SUFFIXES", "unit_of", "format_metric"]

# name suffix -> unit shown to users.  Longest suffix wins.
UNIT_SUFFIXES: dict[str, str] = {
    "cycles": "cycles",
    "_s": "s",
    "_ms": "ms",
    "_us": "us",
    "_j": "J",
    "_pj": "pJ",
    "_w": "W",
    "_mw": "mW",
    "_mm2": "mm^2",
    "_um2": "um^2",
    "_bytes": "B",
    "_bits": "bit",
    "_words": "words",
    "_per_s": "1/s",
    "_per_j": "1/J",
    "_hz": "Hz",
    "_mhz": "MHz",
    "_frac": "fraction",
    "_pct": "%",
    "_db": "dB",
    "_count": "count",
    "_ops": "ops",
    "_macs": "MACs",
    "_js": "J*s",
    "_ratio": "ratio",
}


@lru_cache(maxsize=4096)
def unit_of(name: str) -> str:
    """Unit of a metric from its name suffix; raises ``ValueError`` if none."""
    best = ""
    for suffix in UNIT_SUFFIXES:
        if name.endswith(suffix) and len(suffix) > len(best):
            best = suffix
    if not best:
        raise ValueError(
            f"metric name {name!r} has no unit suffix; allowed suffixes: {', '.join(UNIT_SUFFIXES)}"
        )
    return UNIT_SUFFIXES[best]


def format_metric(name: str, value: float) -> str:
    """``"latency_s = 1.234e-03 s"``-style rendering with the unit."""
    if isinstance(value, float) and (value != value):
        return f"{name} = nan"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        body = f"{int(value):,}"
    else:
        body = f"{value:.4g}"
    return f"{name} = {body} {unit_of(name)}"


NAN = math.nan


@dataclass(frozen=True)
class Metrics:
    """What one evaluation of one design on one workload produced.

    Fields are NaN when a simulator does not model them.  ``feasible=False``
    marks an infeasible design (over a resource budget, violating a constraint);
    ``reason`` says why.  ``breakdown`` maps a layer or unit name to its own
    metric dict (same naming rule).
    """

    cycles: int | None = None
    latency_s: float = NAN
    energy_j: float = NAN
    power_w: float = NAN
    area_mm2: float = NAN
    onchip_bytes: float = NAN
    dram_bytes: float = NAN
    throughput_per_s: float = NAN
    utilization_frac: float = NAN
    feasible: bool = True
    reason: str = ""
    extra: Mapping[str, float] = field(default_factory=dict)
    breakdown: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for k in self.extra:
            unit_of(k)
            if k in _CORE:
                raise ValueError(f"extra metric {k!r} shadows a core Metrics field")

    # --- access ------------------------------------------------------------------
    def get(self, name: str) -> float:
        """Value of a core or extra metric by name; NaN when this record does not carry it
        (e.g. an infeasible design's result).  ``KeyError`` for a name that is not a metric
        name at all (no unit suffix)."""
        if name in _CORE:
            v = getattr(self, name)
            return math.nan if v is None else float(v)
        v = self.extra.get(name)
        if v is not None:
            return float(v)
        try:
            unit_of(name)
        except ValueError:
            raise KeyError(f"unknown metric {name!r}; available: {', '.join(self.names())}") from None
        return math.nan

    def names(self) -> list[str]:
        """Names of every metric that has a finite value."""
        out = [n for n in _CORE if _finite(getattr(self, n))]
        out += [k for k, v in self.extra.items() if _finite(v)]
        return out

    def vector(self, names: tuple[str, ...]) -> list[float]:
        """Values of ``names`` in order as floats (NaN where absent); the fast path
        used by the run log."""
        get, n_core, extras = _vector_plan(tuple(names))
        if get is None:  # core and extra names interleaved
            ex = self.extra
            return [(math.nan if (v := getattr(self, n)) is None else float(v)) if n in _CORE_SET
                    else float(ex.get(n, math.nan)) for n in names]
        core = get(self) if n_core > 1 else (get(self),) if n_core else ()
        ex = self.extra
        return [math.nan if v is None else float(v) for v in core] + [float(ex.get(n, math.nan)) for n in extras]

    def as_dict(self) -> dict[str, float]:
        """Flat ``{name: value}`` of every core and extra metric (NaN where absent)."""
        d: dict[str, Any] = {}
        for n in _CORE:
            v = getattr(self, n)
            d[n] = (math.nan if v is None else (int(v) if n == "cycles" else float(v)))
        d.update({k: float(v) for k, v in self.extra.items()})
        return d

    @classmethod
    def infeasible(cls, reason: str, **known: Any) -> "Metrics":
        """An infeasible result with a reason (and whatever is known, e.g. area)."""
        return cls(feasible=False, reason=reason, **known)

    def summary(self) -> str:
        """Multi-line, unit-annotated summary of the finite metrics."""
        lines = [format_metric(n, self.get(n) if n != "cycles" else int(self.cycles)) for n in self.names()]
        if not self.feasible:
            lines.insert(0, f"INFEASIBLE: {self.reason}")
        return "\n".join(lines)


_CORE = tuple(
    f.name for f in fields(Metrics) if f.name not in ("feasible", "reason", "extra", "breakdown")
)


_CORE_SET = frozenset(_CORE)


@lru_cache(maxsize=64)
def _vector_plan(names: tuple[str, ...]):
    """For :meth:`Metrics.vector`: (one C getter of the leading core names, how many,
    the extra names after them), or (None, 0, ()) when core and extra names interleave."""
    n_core = 0
    while n_core < len(names) and names[n_core] in _CORE_SET:
        n_core += 1
    if any(n in _CORE_SET for n in names[n_core:]):
        return None, 0, ()
    get = operator.attrgetter(*names[:n_core]) if n_core else (lambda m: ())
    return get, n_core, names[n_core:]


def _finite(v: Any) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)
