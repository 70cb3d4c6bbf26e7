"""The exact optimum of an env's objective: how good is the best design, really?

:func:`optimum` finds it by the best exact method the env has:

* a simulator's own exact method (:meth:`archgym.simulator.Simulator.exact_optimum`, e.g.
  branch and bound over a space too large to enumerate), if it has one for this objective;
* otherwise exhaustive batched evaluation (:func:`exhaustive`) where the space can be
  enumerated (:func:`can_enumerate`);
* otherwise a :class:`NoExactMethod` error (one line: the space size and the limit).

``archgym optimum ENV`` prints the result and how it was obtained.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any, Mapping


__all__ = ["Optimum", "optimum", "exhaustive", "can_enumerate", "NoExactMethod", "Landscape", "descent_basins"]


class NoExactMethod(ValueError):
    """The env has no exact optimisation method for this objective and space."""


@dataclass(frozen=True)
class Optimum:
    """The exact optimum of an enumerable design space (see :func:`exhaustive`)."""

    design: dict
    reward: float
    cost: float
    n_designs: int
    n_feasible: int
    n_target_met: int  # feasible designs meeting every target (every feasible one without targets)
    front: Mapping[str, Any]  # {"x": metric, "y": metric, "xs": [...], "ys": [...]}: exact Pareto front
    wall_s: float
    # keep_costs=True: every design's cost in flat-index order (inf if infeasible or a target is
    # missed, as Objective.logged_cost counts it); None otherwise
    costs: Any = None
    # how it was obtained, in words ("exhaustive batched evaluation of N designs", ...)
    method: str = ""


def _batch_reward(objective: Objective, b: Mapping[str, Any]):
    """:meth:`Objective.reward`, :meth:`Objective.cost` and :meth:`Objective.target_met`
    over arrays of metrics (same formulas, numpy): ``(reward, cost, met)``."""
    import numpy as np

    feas = np.asarray(b["feasible"], dtype=bool)
    met = feas.copy()
    for t in objective.targets:
        v = np.asarray(b[t.metric], dtype=float)
        met &= np.isfinite(v) & ((v <= t.value) if t.op == "<=" else (v >= t.value))

    def closeness():
        out = np.zeros(feas.shape)
        for t in objective.targets:
            v = np.asarray(b[t.metric], dtype=float)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                c = (np.where(v <= t.value, 1.0, t.value / v) if t.op == "<="
                     else np.where(v >= t.value, 1.0, np.maximum(0.0, v / t.value)))
            out += np.where(np.isfinite(v), c, 0.0)
        return out / max(len(objective.targets), 1)

    if not objective.weights:  # the cost is an empty product
        return np.where(feas, closeness(), 0.0), np.where(feas, 1.0, np.inf), met
    log_c = np.zeros(feas.shape)
    bad = ~feas
    for m, w in objective.weights.items():
        v = np.asarray(b[m], dtype=float)
        pos = np.isfinite(v) & (v > 0)
        bad |= ~pos
        log_c += w * np.log(np.where(pos, v, 1.0))
    with np.errstate(over="ignore"):
        cost = np.where(bad | (log_c >= 700), np.inf, np.exp(log_c))
    ref = objective.ref if objective.ref is not None else 1.0
    score = np.where(np.isfinite(cost), ref / (ref + np.where(np.isfinite(cost), cost, 0.0)), 0.0)
    if not objective.targets:
        return np.where(feas, score, 0.0), cost, met
    return np.where(feas, np.where(met, 0.5 + 0.5 * score, 0.5 * closeness()), 0.0), cost, met


def can_enumerate(evaluator, *, limit: int = 20_000_000, slow_limit: int = 200_000) -> bool:
    """True when :func:`exhaustive` is practical: at most ``limit`` designs and a
    batched ``evaluate_batch`` override, or at most ``slow_limit`` designs."""
    return evaluator.space.size <= (limit if _fast(evaluator) else slow_limit)


def exhaustive(evaluator, *, chunk: int = 1 << 17, top: int = 16, limit: int = 20_000_000,
               front: tuple[str, str] | None = None, keep_costs: bool = False) -> Optimum:
    """Evaluate every design of ``evaluator.space`` with the simulator's batched
    ``evaluate_batch`` and return the exact optimum.

    Rewards are computed with the objective's formulas on the batch arrays;
    the ``top`` best candidates are then re-evaluated one by one through the
    evaluator (the scalar path every agent uses) and the best of those by its
    exact reward is returned, so the optimum is the one an agent could log.
    ``front`` names two metrics (default: the first two objective metrics, or
    ``latency_s``/``energy_j``) whose exact Pareto front over feasible designs
    is returned too; ``keep_costs`` keeps every design's cost (``Optimum.costs``,
    e.g. to count the designs within 1 % of the optimum).  Raises ``ValueError``
    above ``limit`` designs.
    """
    import numpy as np

    from .plots import pareto_mask

    t0 = time.perf_counter()
    space, sim = evaluator.space, evaluator.simulator
    full = sim.design_space()
    # the evaluator's space may pin parameters (``fixed``): map its indices to the simulator's
    to_full = [np.array([full[p.name].index(v) for v in p.values], dtype=np.int64) for p in space.params]
    idx_all = space.grid_indices(limit=limit)
    mets = list(evaluator.objective.metrics)
    fx, fy = front or ((mets + ["latency_s", "energy_j"])[:2] if len(mets) >= 2 else ("latency_s", "energy_j"))
    cand_idx, cand_r, costs = [], [], []
    n_feas = n_met = 0
    fxs, fys = np.empty(0), np.empty(0)
    for s in range(0, len(idx_all), chunk):
        idx = idx_all[s:s + chunk]
        full_idx = np.stack([to_full[j][idx[:, j]] for j in range(idx.shape[1])], axis=1)
        b = sim.evaluate_batch(full_idx, evaluator.workload)
        r, c, met = _batch_reward(evaluator.objective, b)
        feas = np.asarray(b["feasible"], dtype=bool)
        if keep_costs:
            costs.append(np.where(met, c, np.inf))
        n_feas += int(feas.sum())
        n_met += int(met.sum())
        k = min(top, r.size)
        best = np.argpartition(-r, k - 1)[:k]
        cand_idx.append(idx[best])
        cand_r.append(r[best])
        if fx in b and fy in b:
            x, y = np.asarray(b[fx], float)[feas], np.asarray(b[fy], float)[feas]
            m = pareto_mask(x, y)
            fxs, fys = np.concatenate([fxs, x[m]]), np.concatenate([fys, y[m]])
            m = pareto_mask(fxs, fys)
            fxs, fys = fxs[m], fys[m]
    cand_idx = np.concatenate(cand_idx)
    cand_r = np.concatenate(cand_r)
    order = np.argsort(-cand_r, kind="stable")[:top]
    best_ev, best_key = None, None
    for i in order:
        e = evaluator.evaluate(space.decode(cand_idx[i]))
        key = (-e.reward, space.index_of(e.design))  # ties: the lowest flat index
        if best_key is None or key < best_key:
            best_ev, best_key = e, key
    o = np.argsort(fxs)
    wall = time.perf_counter() - t0
    return Optimum(
        best_ev.design, float(best_ev.reward), float(evaluator.objective.cost(best_ev.metrics)), len(idx_all),
        n_feas, n_met, {"x": fx, "y": fy, "xs": fxs[o].tolist(), "ys": fys[o].tolist()},
        wall, np.concatenate(costs) if keep_costs else None,
        f"exhaustive batched evaluation of all {len(idx_all):,} designs ({n_feas:,} feasible) in {wall:.1f} s; "
        f"the best {top} by batch reward re-evaluated one by one",
    )


def optimum(evaluator, **kw: Any) -> Optimum:
    """The exact optimum of ``evaluator``'s objective over its space (see the module
    docstring for the method used).  ``kw`` goes to :func:`exhaustive`.  Raises
    :class:`NoExactMethod` when the env has no exact method for it."""
    t0 = time.perf_counter()
    sim = evaluator.simulator
    res = sim.exact_optimum(evaluator)
    if res is not None:
        return res if res.method else replace(res, method=f"{type(sim).__name__}.exact_optimum",
                                              wall_s=time.perf_counter() - t0)
    if can_enumerate(evaluator):
        return exhaustive(evaluator, **kw)
    raise NoExactMethod(
        f"{sim.name}: no exact method for this objective: {evaluator.space.size:,} designs are more than "
        f"exhaustive evaluation takes ({'20,000,000 with' if _fast(evaluator) else '200,000 without'} a batched "
        f"evaluate_batch) and the simulator has no exact method for {evaluator.objective.describe()!r}")


def _fast(evaluator) -> bool:
    """Does the simulator have a batched evaluate_batch of its own?"""
    from .simulator import Simulator

    return type(evaluator.simulator).evaluate_batch is not Simulator.evaluate_batch


@dataclass(frozen=True)
class Landscape:
    """How hard an enumerated space is for local search (see :func:`descent_basins`)."""

    n_finite: int  # designs with a finite cost (feasible, every target met)
    n_local_minima: int  # finite-cost designs no one-parameter move makes strictly cheaper
    n_traps: int  # ... of which more than ``threshold`` above the optimum
    basin_share: float  # share of finite-cost designs whose steepest descent ends within ``threshold``
    max_steps: int  # the longest steepest descent, in moves
    threshold: float

    def describe(self) -> str:
        """One line: the local minima, the traps among them and the optimum's basin share."""
        return (f"steepest one-parameter descent (one parameter to any value per move): "
                f"{self.n_local_minima:,} local minima among {self.n_finite:,} designs with a finite cost, "
                f"{self.n_traps:,} of them more than {self.threshold:.0%} above the optimum; descents from "
                f"{self.basin_share:.2%} of the designs end within {self.threshold:.0%} (at most "
                f"{self.max_steps} moves)")


def descent_basins(costs, nvec, *, threshold: float = 0.01) -> Landscape:
    """Steepest descent over one-parameter moves from every design of an enumerated space.

    ``costs`` is every design's cost in flat-index order (``Optimum.costs`` from
    ``exhaustive(..., keep_costs=True)``; ``inf`` for an infeasible design or a target miss) and
    ``nvec`` the number of values of each parameter (``DesignSpace.nvec``).  A move sets one
    parameter to any other value; a descent takes the strictly cheapest move (the lowest value
    index, then the first parameter, among equal costs) until no move is strictly cheaper, so it
    ends at a local minimum.  The returned :class:`Landscape` counts the local minima, the traps
    (local minima more than ``threshold`` above the global minimum) and the share of
    finite-cost designs whose descent ends within ``threshold`` of it: a local search restarted
    from uniformly random designs needs about ``1 / basin_share`` restarts to reach the optimum.

    Exact, not sampled: each design's best move is found along each axis of the cost array,
    then the descents are followed for every design at once, one move per round (O(N sum(nvec))
    for the moves, O(N L) for descents of at most L moves)."""
    import numpy as np

    nvec = tuple(int(n) for n in nvec)
    c = np.asarray(costs, dtype=float).reshape(nvec)
    n = c.size
    flat = np.arange(n, dtype=np.int64).reshape(nvec)
    best = c.copy()
    nxt = flat.copy()
    stride = np.cumprod((1,) + nvec[::-1])[:-1][::-1]
    for j, nj in enumerate(nvec):
        if nj < 2:
            continue
        lo = c.min(axis=j, keepdims=True)
        arg = c.argmin(axis=j, keepdims=True)  # the first index of the minimum along j
        shape = [1] * len(nvec)
        shape[j] = nj
        here = np.arange(nj).reshape(shape)
        target = flat + (arg - here) * stride[j]
        better = lo < best
        best = np.where(better, lo, best)
        nxt = np.where(better, target, nxt)
    c, nxt = c.ravel(), nxt.ravel()
    finite = np.isfinite(c)
    nxt = np.where(finite, nxt, np.arange(n))  # an infinite-cost design is not a start
    end, rounds = np.arange(n), 0
    for _ in range(n):  # every descent one move per round, all at once (each move is strictly cheaper)
        step = nxt[end]
        if np.array_equal(step, end):
            break
        end, rounds = step, rounds + 1
    minima = finite & (nxt == np.arange(n))
    opt = c[finite].min() if finite.any() else math.inf
    near = c <= opt * (1.0 + threshold)
    return Landscape(int(finite.sum()), int(minima.sum()), int((minima & ~near).sum()),
                     float((near[end] & finite).sum() / max(finite.sum(), 1)), rounds,
                     threshold)
