"""Typed design spaces: one declaration serves every agent.

A :class:`DesignSpace` is an ordered tuple of :class:`Param` objects plus
:class:`Constraint` predicates.  Every parameter has a finite, ordered tuple of
allowed values, so each design has three interchangeable encodings:

* a ``dict`` ``{name: value}`` (what simulators and users see),
* an integer index vector (``gymnasium.spaces.MultiDiscrete``, GA, ACO, grid),
* a unit-cube float vector (BO, CMA-ES, any continuous optimiser).

Values outside the space raise :class:`InvalidDesign` naming the parameter, the
value and what is allowed.  Constraint violations are *not* errors: a design
that is in the space but violates a constraint is infeasible, and the env
reports it as a result (``feasible=False``) with the constraint's message.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

__all__ = [
    "InvalidDesign",
    "Param",
    "IntRange",
    "Pow2",
    "Choice",
    "FloatRange",
    "Constraint",
    "DesignSpace",
    "index_neighbours",
]


class InvalidDesign(ValueError):
    """A design (or a value in it) is outside its design space."""


def _fmt_allowed(values: Sequence[Any], limit: int = 12) -> str:
    vals = [repr(v) if isinstance(v, str) else str(v) for v in values]
    if len(vals) <= limit:
        return "{" + ", ".join(vals) + "}"
    return "{" + ", ".join(vals[:4]) + ", ..., " + ", ".join(vals[-3:]) + f"}} ({len(vals)} values)"


@dataclass(frozen=True, kw_only=True)
class Param:
    """Base class of a design parameter: a name, a doc string and finite values.

    Subclasses define :attr:`values`, the ordered tuple of allowed values.
    ``unit`` is a display unit (e.g. ``"kB"``, ``"MHz"``); put it in the name too
    where the value is a physical quantity (``sram_kb``).
    """

    name: str
    doc: str = ""
    unit: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"parameter name {self.name!r} must be a Python identifier")
        vals = self.values
        if len(vals) == 0:
            raise ValueError(f"parameter {self.name!r} has no values")
        if len(set(vals)) != len(vals):
            raise ValueError(f"parameter {self.name!r} has duplicate values: {vals}")

    @property
    def values(self) -> tuple:
        """The ordered tuple of allowed values (computed once)."""
        vals = self.__dict__.get("_values_cache")
        if vals is None:
            vals = self._compute_values()
            object.__setattr__(self, "_values_cache", vals)
        return vals

    def _compute_values(self) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def size(self) -> int:
        """Number of allowed values."""
        return len(self.values)

    @property
    def ordered(self) -> bool:
        """True when neighbouring indices are neighbouring values (not a categorical)."""
        return True

    def index(self, value: Any) -> int:
        """Index of ``value`` in :attr:`values`; raises :class:`InvalidDesign`."""
        lookup = self._lookup
        key = _normalise(value)
        try:
            return lookup[key]
        except (KeyError, TypeError):
            raise InvalidDesign(
                f"{self.name}={value!r} is not allowed; allowed: {_fmt_allowed(self.values)}"
            ) from None

    def value(self, index: int) -> Any:
        """Value at integer ``index``; raises :class:`InvalidDesign` if out of range."""
        i = int(index)
        if not 0 <= i < self.size:
            raise InvalidDesign(f"{self.name}: index {index} is outside 0..{self.size - 1}")
        return self.values[i]

    @property
    def _lookup(self) -> dict:
        cache = self.__dict__.get("_lookup_cache")
        if cache is None:
            cache = {_normalise(v): i for i, v in enumerate(self.values)}
            object.__setattr__(self, "_lookup_cache", cache)
        return cache

    def describe(self) -> str:
        """One-line human description: name, values and unit."""
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.name}: {_fmt_allowed(self.values)}{unit}"


def _normalise(value: Any) -> Any:
    """Map numpy scalars and integral floats to plain Python keys for lookup."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True, kw_only=True)
class IntRange(Param):
    """Integers ``low, low+step, ..., <= high``."""

    low: int
    high: int
    step: int = 1

    def __post_init__(self) -> None:
        if self.step < 1 or self.high < self.low:
            raise ValueError(f"IntRange {self.name!r}: need low <= high and step >= 1")
        super().__post_init__()

    def _compute_values(self) -> tuple:
        return tuple(range(self.low, self.high + 1, self.step))


@dataclass(frozen=True, kw_only=True)
class Pow2(Param):
    """Powers of two from ``low`` to ``high`` inclusive (both powers of two)."""

    low: int
    high: int

    def __post_init__(self) -> None:
        for v in (self.low, self.high):
            if v < 1 or v & (v - 1):
                raise ValueError(f"Pow2 {self.name!r}: bound {v} is not a power of two")
        if self.high < self.low:
            raise ValueError(f"Pow2 {self.name!r}: need low <= high")
        super().__post_init__()

    def _compute_values(self) -> tuple:
        lo, hi = int(math.log2(self.low)), int(math.log2(self.high))
        return tuple(1 << e for e in range(lo, hi + 1))


@dataclass(frozen=True, kw_only=True)
class Choice(Param):
    """A categorical choice among ``options`` (strings, ints or floats).

    ``ordinal=True`` declares the options ordered (neighbours are similar), which
    lets random walks and GA mutations step to adjacent options.
    """

    options: tuple
    ordinal: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        super().__post_init__()

    def _compute_values(self) -> tuple:
        return self.options

    @property
    def ordered(self) -> bool:
        return self.ordinal


@dataclass(frozen=True, kw_only=True)
class FloatRange(Param):
    """A float range discretised to ``num`` points (linear or log spaced).

    Discretisation keeps every agent on the same finite space (MultiDiscrete, grid,
    exhaustive optimum); ``num`` sets the resolution.
    """

    low: float
    high: float
    num: int = 16
    log: bool = False

    def __post_init__(self) -> None:
        if not (self.high > self.low) or self.num < 2:
            raise ValueError(f"FloatRange {self.name!r}: need low < high and num >= 2")
        if self.log and self.low <= 0:
            raise ValueError(f"FloatRange {self.name!r}: log scale needs low > 0")
        super().__post_init__()

    def _compute_values(self) -> tuple:
        if self.log:
            pts = np.geomspace(self.low, self.high, self.num)
        else:
            pts = np.linspace(self.low, self.high, self.num)
        return tuple(float(round(p, 12)) for p in pts)

    def index(self, value: Any) -> int:
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = math.nan
        vals = np.asarray(self.values)
        i = int(np.argmin(np.abs(vals - v))) if math.isfinite(v) else -1
        if i < 0 or not math.isclose(vals[i], v, rel_tol=1e-9, abs_tol=1e-12):
            raise InvalidDesign(
                f"{self.name}={value!r} is not one of the {self.num} grid points in "
                f"[{self.low}, {self.high}]{' (log)' if self.log else ''}: {_fmt_allowed(self.values)}"
            )
        return i


@dataclass(frozen=True)
class Constraint:
    """A feasibility predicate over a whole design.

    ``check(design) -> bool`` returns True when the design is feasible;
    ``message`` explains the rule in words (shown when it fails), and may use
    ``str.format`` fields named after parameters, e.g.
    ``"tile {rows}x{cols} exceeds the DSP budget"``.  ``vector`` (optional) is
    the same rule on a batch: it takes one numpy array of values per parameter
    (``{"rows": array([...]), ...}``, a row per design) and returns a boolean
    array; :meth:`DesignSpace.feasible_mask` uses it instead of calling ``check``
    design by design (it must agree with ``check`` exactly).
    """

    name: str
    check: Callable[[Mapping[str, Any]], bool]
    message: str
    vector: Callable[[Mapping[str, np.ndarray]], np.ndarray] | None = None

    def rule(self) -> str:
        """The message as a rule, without a design: ``{name}`` fields read as ``<name>``
        (``top_k=<top_k> exceeds n_experts=<n_experts>`` is infeasible)."""
        import re

        text = re.sub(r"\{(\w+)[^}]*\}", r"<\1>", self.message)
        return f"infeasible when {text}" if text != self.message else text

    def violation(self, design: Mapping[str, Any]) -> str | None:
        """The formatted message if ``design`` violates this constraint, else None."""
        if self.check(design):
            return None
        try:
            return f"{self.name}: " + self.message.format(**design)
        except (KeyError, IndexError, ValueError):
            return f"{self.name}: {self.message}"


def index_neighbours(idx: Sequence[int], sizes: Sequence[int], ordered: Sequence[bool]) -> list[tuple[int, ...]]:
    """Index vectors one step from ``idx``: an adjacent value of an ordered parameter
    (-1, then +1) or any other option of a categorical one, parameter by parameter.

    The one neighbourhood of the walk, the BO agent's local candidates and
    :meth:`DesignSpace.neighbours`; a parameter with one value has no neighbours."""
    idx = tuple(int(i) for i in idx)
    out = []
    for j, (n, i) in enumerate(zip(sizes, idx)):
        for s in ((i - 1, i + 1) if ordered[j] else range(n)):
            if 0 <= s < n and s != i:
                out.append(idx[:j] + (s,) + idx[j + 1:])
    return out


@dataclass(frozen=True)
class DesignSpace:
    """An ordered set of parameters plus feasibility constraints.

    Example::

        space = DesignSpace([Pow2(name="rows", low=4, high=128),
                             Choice(name="dataflow", options=("os", "ws", "is"))])
        design = space.decode([2, 1])          # {'rows': 16, 'dataflow': 'ws'}
        space.encode(design)                   # array([2, 1])
    """

    params: tuple[Param, ...]
    constraints: tuple[Constraint, ...] = field(default=())

    def __init__(self, params: Sequence[Param], constraints: Sequence[Constraint] = ()) -> None:
        object.__setattr__(self, "params", tuple(params))
        object.__setattr__(self, "constraints", tuple(constraints))
        names = [p.name for p in self.params]
        object.__setattr__(self, "_names", tuple(names))
        object.__setattr__(self, "_nvec", np.array([p.size for p in self.params], dtype=np.int64))
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate parameter names in design space: {names}")
        if not names:
            raise ValueError("a design space needs at least one parameter")

    # --- structure -----------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names in declaration order."""
        return self._names

    @property
    def nvec(self) -> np.ndarray:
        """Number of values per parameter (the ``MultiDiscrete`` nvec)."""
        return self._nvec.copy()

    @property
    def size(self) -> int:
        """Number of designs (before constraints)."""
        return int(math.prod(p.size for p in self.params))

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise InvalidDesign(f"unknown parameter {name!r}; parameters: {', '.join(self.names)}")

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def restrict(self, fixed: Mapping[str, Any]) -> "DesignSpace":
        """A sub-space with some parameters pinned to one value (validated).

        The pinned parameters stay in the space (as one-option choices), so
        designs keep every key and simulators need no change.
        """
        pinned = self.validate(fixed, partial=True)
        params = []
        for p in self.params:
            if p.name in pinned:
                params.append(Choice(name=p.name, options=(pinned[p.name],), doc=p.doc, unit=p.unit))
            else:
                params.append(p)
        return DesignSpace(params, self.constraints)

    # --- validation ----------------------------------------------------------------
    def validate(self, design: Mapping[str, Any], *, partial: bool = False) -> dict:
        """Return a normalised copy of ``design``; raise :class:`InvalidDesign`.

        Unknown names and values outside a parameter's allowed set are errors.  With
        ``partial=True`` missing parameters are allowed (for fixing a subset).
        """
        if not isinstance(design, Mapping):
            raise InvalidDesign(f"a design must be a mapping of parameter names to values, got {type(design).__name__}")
        names = self._names
        unknown = [k for k in design if k not in names]
        if unknown:
            raise InvalidDesign(
                f"unknown parameter {unknown[0]!r}; parameters: {', '.join(self.names)}"
            )
        out = {}
        for p in self.params:
            if p.name not in design:
                if partial:
                    continue
                raise InvalidDesign(f"missing parameter {p.name!r}; allowed: {_fmt_allowed(p.values)}")
            out[p.name] = p.values[p.index(design[p.name])]
        return out

    def violations(self, design: Mapping[str, Any]) -> list[str]:
        """Messages of every constraint ``design`` violates (empty list = feasible)."""
        msgs = []
        for c in self.constraints:
            m = c.violation(design)
            if m is not None:
                msgs.append(m)
        return msgs

    def is_feasible(self, design: Mapping[str, Any]) -> bool:
        """True when ``design`` satisfies every constraint."""
        return not self.violations(design)

    def feasible_mask(self, indices: Any) -> np.ndarray:
        """Which rows of an index array ``(n, d)`` satisfy every constraint: the boolean
        array ``[self.is_feasible(self.decode(i)) for i in indices]``, computed with each
        constraint's vectorised ``vector`` rule where it has one (no simulation either way)."""
        idx = self.check_indices(indices)
        mask = np.ones(len(idx), dtype=bool)
        cols: dict[str, np.ndarray] | None = None
        designs: list[dict] | None = None
        for c in self.constraints:
            if c.vector is not None:
                if cols is None:
                    cols = {p.name: np.asarray(p.values)[idx[:, j]] for j, p in enumerate(self.params)}
                mask &= np.asarray(c.vector(cols), dtype=bool)
            else:
                if designs is None:
                    designs = [self.decode(i) for i in idx]
                mask &= np.array([bool(c.check(d)) for d in designs], dtype=bool)
        return mask

    # --- encodings -----------------------------------------------------------------
    def encode(self, design: Mapping[str, Any]) -> np.ndarray:
        """Design dict -> integer index vector (validates)."""
        d = self.validate(design)
        return np.array([p.index(d[p.name]) for p in self.params], dtype=np.int64)

    def check_indices(self, indices: Any) -> np.ndarray:
        """A batch of index vectors as ``int64 (n, d)``, or one :class:`InvalidDesign` naming the
        first entry outside the grid (row, parameter, value, allowed range): for batched
        evaluators, where numpy would wrap a negative index or fail with an IndexError."""
        idx = np.asarray(indices)
        d = len(self.params)
        if idx.ndim != 2 or idx.shape[1] != d or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
            raise InvalidDesign(f"indices must be an integer array of shape (n, {d}); got shape {idx.shape}, "
                                f"dtype {idx.dtype}")
        bad = (idx < 0) | (idx >= self._nvec)
        if bad.any():
            i, j = (int(x) for x in np.argwhere(bad)[0])
            raise InvalidDesign(f"indices[{i}, {j}] = {int(idx[i, j])} ({self.params[j].name}) is outside "
                                f"0..{int(self._nvec[j]) - 1}")
        return idx.astype(np.int64, copy=False)

    def decode(self, indices: Sequence[int] | np.ndarray) -> dict:
        """Integer index vector -> design dict (raises on out-of-range indices)."""
        idx = np.asarray(indices).reshape(-1)
        if idx.shape[0] != len(self.params):
            raise InvalidDesign(f"index vector has {idx.shape[0]} entries; the space has {len(self.params)} parameters")
        return {p.name: p.value(i) for p, i in zip(self.params, idx)}

    def to_unit(self, design: Mapping[str, Any]) -> np.ndarray:
        """Design -> point in [0, 1]^d (cell centres of each parameter's index grid)."""
        idx = self.encode(design)
        return (idx + 0.5) / self.nvec

    def from_unit(self, u: Sequence[float] | np.ndarray) -> dict:
        """Point in [0, 1]^d -> design (each coordinate picks a cell; clipped to the box)."""
        u = np.clip(np.asarray(u, dtype=float).reshape(-1), 0.0, 1.0)
        if u.shape[0] != len(self.params):
            raise InvalidDesign(f"unit vector has {u.shape[0]} entries; the space has {len(self.params)} parameters")
        idx = np.minimum((u * self.nvec).astype(np.int64), self.nvec - 1)
        return self.decode(idx)

    def index_of(self, design: Mapping[str, Any]) -> int:
        """Flat (mixed-radix, last parameter fastest) index of a design in 0..size-1."""
        flat = 0
        for i, n in zip(self.encode(design), self.nvec):
            flat = flat * int(n) + int(i)
        return flat

    # --- sampling and enumeration -----------------------------------------------
    def sample(self, rng: np.random.Generator) -> dict:
        """A uniformly random design (constraints are not applied)."""
        return self.decode(rng.integers(0, self._nvec))

    def sample_indices(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniformly random index vectors, shape ``(n, d)``."""
        return rng.integers(0, self.nvec, size=(n, len(self.params)))

    def grid_indices(self, limit: int = 20_000_000) -> np.ndarray:
        """Every index vector, shape ``(size, d)``, in flat-index order.

        Raises ``ValueError`` if the space has more than ``limit`` designs.
        """
        if self.size > limit:
            raise ValueError(f"design space has {self.size} designs, more than the enumeration limit {limit}")
        grids = np.meshgrid(*[np.arange(n) for n in self.nvec], indexing="ij")
        return np.stack([g.reshape(-1) for g in grids], axis=1).astype(np.int64)

    def __iter__(self) -> Iterator[dict]:
        for idx in itertools.product(*[range(n) for n in self.nvec]):
            yield self.decode(idx)

    def neighbours(self, design: Mapping[str, Any]) -> list[dict]:
        """Designs one step away (see :func:`index_neighbours`), in a fixed order."""
        idx = tuple(self.encode(design).tolist())
        return [self.decode(nb) for nb in index_neighbours(idx, self.nvec.tolist(), [p.ordered for p in self.params])]

    # --- adapters for search libraries --------------------------------------
    def suggest(self, trial: Any) -> dict:
        """Ask an Optuna ``trial`` for a design: ordered parameters as integer
        indices (``suggest_int``), categoricals as ``suggest_categorical``."""
        design = {}
        for p in self.params:
            if p.ordered:
                design[p.name] = p.values[trial.suggest_int(p.name, 0, p.size - 1)]
            else:
                design[p.name] = p.values[trial.suggest_categorical(p.name, list(range(p.size)))]
        return design

    def optuna_distributions(self) -> dict:
        """Optuna distributions matching :meth:`suggest` (for ask/tell with fixed distributions)."""
        import optuna

        dists = {}
        for p in self.params:
            if p.ordered:
                dists[p.name] = optuna.distributions.IntDistribution(0, p.size - 1)
            else:
                dists[p.name] = optuna.distributions.CategoricalDistribution(list(range(p.size)))
        return dists

    def describe(self) -> str:
        """Multi-line description of every parameter and constraint."""
        lines = [f"{self.size} designs, {len(self.params)} parameters:"]
        lines += ["  " + p.describe() for p in self.params]
        for c in self.constraints:
            lines.append(f"  constraint {c.name}: {c.rule()}")
        return "\n".join(lines)
