"""Exact optimum of an Agile-Quant env without enumerating its 2.4e10 designs.

:func:`exact_optimum` takes an :class:`archgym.simulator.Evaluator` over
:class:`~simulators.agile_quant.AgileQuantSimulator` (any sub-space of its
design space, any supported objective) and returns the design of maximum
reward, with the reward, the cost and how it was found.

Method: branch and bound with dominance over the separable structure
-----------------------------------------------------------------------
The design is five layer groups (each: activation bits, weight bits, group
size: 45 options) plus four global parameters (pruning ratio and start, SIMD
packing, device: 128 combinations).  For a fixed global combination ``c`` every
metric is a monotone function of one of four sums over the groups
(:mod:`simulators._agile_quant_kernels` builds the terms)::

    T = const_time[c] + sum_g time[c, g, o_g]      latency_s = T / eff (up), throughput_per_s,
                                                   tokens_per_s (down)
    B = const_traffic[c] + sum_g traffic[c, g, o_g] dram_bytes (up)
    W = sum_g wbytes[g, o_g]                       weight_bytes = W + fp16 bytes (up),
                                                   dram_overflow_bytes (up); feasible iff
                                                   W + fp16 + activations <= DRAM
    N = sum_g nsr[g, o_g]                          quant_nsr_ratio = N / 5, error_nsr_ratio =
                                                   N / 5 + prune[c] (up), sqnr_db (down)

(``prune_nsr_ratio``, ``pruned_frac`` and ``gemm_macs`` depend on ``c`` only; an option
whose accumulation overflows is infeasible whatever the rest, so it is dropped.)

Claim: for a supported objective the reward is a non-increasing function of
each *oriented* sum ``s * dir(s)``, where ``dir(s) = +1`` if the objective
prefers ``s`` small and ``-1`` if it prefers it large.  Proof: the reward
(:mod:`archgym.objective`) is 0 when infeasible, else ``0.5 + 0.5 * ref / (ref +
cost)`` when every target is met and ``0.5 * closeness < 0.5`` otherwise (without
targets: the score; without weights: the closeness).  ``cost = prod m_i^w_i`` is
non-decreasing in each metric the objective minimises (``w > 0``) and
non-increasing in each it maximises, provided each weighted metric stays
positive (true for every supported weighted metric on a feasible design; the
two that can reach 0 or below, ``dram_overflow_bytes`` and a minimised
``sqnr_db``, are refused).  Each target's "met" flag and closeness
``min(1, bound / v)`` (``<=``) or ``min(1, v / bound)`` (``>=``) are monotone in
``v`` the same way.  Feasibility (``W`` within DRAM) is monotone in ``W``.  Each
metric is a monotone function of exactly one sum with the signs listed above, and
``dir`` is defined only when every metric on a sum asks for the same direction
(otherwise the objective is not supported).  Composing monotone maps gives the claim.

Consequences, both used below for one global combination at a time:

1. Dominance: if partial assignments ``p`` and ``q`` of the same groups satisfy
   ``p <= q`` in every oriented relevant sum, then for every completion ``x``,
   ``reward(p + x) >= reward(q + x)``, so ``q`` can be dropped without losing the
   maximum.  Groups are added one at a time and each stage keeps only the
   non-dominated partial sums (a Pareto front, usually a few thousand).
2. Bound: ``reward(p + sum over the remaining groups of each sum's best option)``
   is an upper bound of every completion of ``p`` (each oriented sum is at least
   that large).  A partial whose bound is below the best reward found so far is
   dropped; combinations are visited best bound first, and the search stops when
   the next combination's bound is below the incumbent.

The leaves that survive are priced by the batched kernel (the path
:func:`archgym.sweep.exhaustive` uses) and the best ones re-evaluated through the
evaluator, as :func:`~archgym.sweep.exhaustive` does.  So the reward returned is
the maximum reward over the space, exactly; when several designs share it, the
one returned is the one of lowest flat index among those the dominance rule
kept (a design dropped because another equals it in every relevant sum has the
same reward).  ``tests/test_agile_quant_optimum.py`` checks both against
:func:`~archgym.sweep.exhaustive` on restricted sub-spaces.

Supported objectives: any product of the metrics above (``gemm_macs``,
``prune_nsr_ratio`` and ``pruned_frac`` too) with any ``<=``/``>=`` targets on them,
as long as no sum is wanted both small and large (e.g. ``latency_s`` with
``throughput_per_s>=x`` is fine: both prefer small ``T``; ``latency_s`` with
``latency_s>=x`` is not).  For anything else the search falls back to
:func:`archgym.sweep.exhaustive` when the evaluator's space has at most 2e7 designs
(e.g. pinned with ``fixed``), and otherwise refuses with one line saying why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numba
import numpy as np

from archgym.metrics import Metrics

from . import _agile_quant_kernels as _kern

__all__ = ["ExactOptimum", "exact_optimum", "OptimumError", "SUMS"]

#: metric -> (sum it is a function of, +1 if increasing in the sum / -1 if decreasing, 0: constant per combination)
SUMS: dict[str, tuple[str | None, int]] = {
    "latency_s": ("T", 1), "throughput_per_s": ("T", -1), "tokens_per_s": ("T", -1), "dram_bytes": ("B", 1),
    "weight_bytes": ("W", 1), "dram_overflow_bytes": ("W", 1), "quant_nsr_ratio": ("N", 1),
    "error_nsr_ratio": ("N", 1), "sqnr_db": ("N", -1), "prune_nsr_ratio": (None, 0), "pruned_frac": (None, 0),
    "gemm_macs": (None, 0),
}
_COORD = {"T": 0, "B": 1, "W": 2, "N": 3}
_EPS = 1e-12          # reward slack for float rounding between summation orders (rewards are in [0, 1])


class OptimumError(ValueError):
    """The exact method cannot handle this evaluator or objective (the message says why)."""


@dataclass(frozen=True)
class ExactOptimum:
    """The exact optimum of an evaluator's space and objective.

    ``design``/``reward``/``cost``/``metrics`` come from the evaluator's scalar path (what an
    agent would log); ``n_designs`` is the size of the space searched; ``n_examined`` the
    partial and complete assignments the search priced; ``method`` says how it was found;
    ``wall_s`` the search's wall time (tables included; numba compilation excluded after the
    first call in a process).
    """

    design: dict
    reward: float
    cost: float
    metrics: Metrics
    n_designs: int
    n_examined: int
    method: str
    wall_s: float


def _directions(objective) -> np.ndarray:
    """+1 / -1 / 0 per sum (T, B, W, N): prefer small / large / irrelevant; W always small."""
    want: dict[str, set[int]] = {s: set() for s in _COORD}
    prefs: list[tuple[str, int, str]] = []
    for m, w in objective.weights.items():
        prefs.append((m, 1 if w > 0 else -1, "minimised" if w > 0 else "maximised"))
    for t in objective.targets:
        prefs.append((t.metric, 1 if t.op == "<=" else -1, f"bounded by {t}"))
    for m, p, how in prefs:
        if m not in SUMS:
            raise OptimumError(f"exact_optimum cannot handle metric {m!r}; supported: {', '.join(SUMS)}")
        s, sign = SUMS[m]
        if s is not None:
            want[s].add(p * sign)
    for m, w in objective.weights.items():
        if m == "dram_overflow_bytes" or (m == "sqnr_db" and w > 0):
            raise OptimumError(f"exact_optimum cannot minimise {m!r}: it reaches 0 or below on feasible designs, "
                               "where the cost is undefined, so the reward is not monotone in it")
    want["W"].add(1)                               # DRAM capacity: fewer weight bytes never hurt feasibility
    out = np.zeros(4)
    for s, ps in want.items():
        if len(ps) > 1:
            raise OptimumError(f"exact_optimum cannot handle {objective.describe()!r}: it wants the sum behind "
                               f"{', '.join(m for m in SUMS if SUMS[m][0] == s)} both small and large, so no "
                               "dominance order exists; use archgym.sweep.exhaustive on a sub-space")
        if ps:
            out[_COORD[s]] = ps.pop()
    return out


@numba.njit(cache=True)
def _pareto_sorted(vals):
    """Keep-mask of the rows of ``vals`` (already in lexicographic order, ties by key) that no
    earlier kept row weakly dominates (``<=`` in every column)."""
    n, d = vals.shape
    keep = np.zeros(n, dtype=np.bool_)
    front = np.empty((n, d))
    nf = 0
    for i in range(n):
        dominated = False
        for j in range(nf):
            ok = True
            for k in range(d):
                if front[j, k] > vals[i, k]:
                    ok = False
                    break
            if ok:
                dominated = True
                break
        if not dominated:
            for k in range(d):
                front[nf, k] = vals[i, k]
            nf += 1
            keep[i] = True
    return keep


def _pareto(sums: np.ndarray, keys: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows (oriented by ``dirs``; among equal rows the lowest key)."""
    cols = np.flatnonzero(dirs)
    v = sums[:, cols] * dirs[cols]
    order = np.lexsort((keys,) + tuple(v[:, j] for j in range(v.shape[1] - 1, -1, -1)))
    return order[_pareto_sorted(np.ascontiguousarray(v[order]))]


class _Problem:
    """The tables, the objective and the allowed options of one evaluator."""

    def __init__(self, evaluator) -> None:
        from .agile_quant import AgileQuantSimulator

        sim = evaluator.simulator
        if not isinstance(sim, AgileQuantSimulator):
            raise OptimumError(f"exact_optimum needs an AgileQuantSimulator evaluator, got {type(sim).__name__}")
        space, full = evaluator.space, sim.design_space()
        # the simulator's declared overflow rules are priced as infeasible below; other constraints are not
        if any(c not in getattr(evaluator, "workload_constraints", ()) for c in getattr(space, "constraints", ())):
            raise OptimumError("exact_optimum cannot handle design-space constraints")
        self.ev, self.space, self.full = evaluator, space, full
        self.objective = evaluator.objective
        self.dirs = _directions(self.objective)
        self.t = sim.tables(evaluator.workload)
        self.seq_len = evaluator.workload.params["seq_len"]
        allowed = [np.array([full[p.name].index(v) for v in p.values], dtype=np.int64) for p in space.params]
        self.allowed = allowed
        self.group_opts = []
        for g in range(5):
            a_i, w_i, g_i = (set(allowed[3 * g + j].tolist()) for j in range(3))
            self.group_opts.append(np.array([(a * 3 + w) * 5 + s for a in sorted(a_i) for w in sorted(w_i)
                                             for s in sorted(g_i)], dtype=np.int64))
        self.globals = allowed[15:19]

    def combo(self, r: int, s: int, p: int, d: int) -> int:
        t = self.t
        return ((r * t.n_starts + s) * 2 + p) * t.n_dev + d

    def metrics_of(self, c_r: int, c_s: int, d: int, sums: np.ndarray) -> dict[str, np.ndarray]:
        """Metric arrays of rows of raw sums (T, B, W, N) under one combination (the formulas of
        :func:`simulators._agile_quant_kernels.batch_eval`)."""
        t = self.t
        eff, cap = t.devs[d]
        lat = sums[:, 0] / eff
        w_total = sums[:, 2] + t.wconst
        over = np.maximum(0.0, w_total + t.act_bytes - cap)
        quant = sums[:, 3] / 5
        prune, frac, macs = t.sched[c_r, c_s]
        err = quant + prune
        with np.errstate(divide="ignore", invalid="ignore"):
            return {"latency_s": lat, "dram_bytes": sums[:, 1], "throughput_per_s": 1.0 / lat,
                    "tokens_per_s": self.seq_len / lat, "weight_bytes": w_total,
                    "gemm_macs": np.full(len(sums), macs), "quant_nsr_ratio": quant,
                    "prune_nsr_ratio": np.full(len(sums), prune), "error_nsr_ratio": err,
                    "sqnr_db": -10.0 * np.log10(err), "pruned_frac": np.full(len(sums), frac),
                    "dram_overflow_bytes": over, "feasible": over <= 0}

    def reward(self, c_r: int, c_s: int, d: int, sums: np.ndarray) -> np.ndarray:
        from archgym.sweep import _batch_reward

        return _batch_reward(self.objective, self.metrics_of(c_r, c_s, d, sums))[0]


def _search_combo(pb: _Problem, ri: int, si: int, pi: int, di: int, best: float, stats: list[int]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dominance + bound search of one combination: (keys, rewards, raw sums T, B, W, N) of its leaves
    whose reward is within ``_EPS`` of the best seen (``best`` is the incumbent)."""
    t, dirs = pb.t, pb.dirs
    c = pb.combo(ri, si, pi, di)
    opts = []
    for g in range(5):
        o = pb.group_opts[g]
        o = o[t.ok[pi, g, o]]
        if o.size == 0:
            return np.empty(0, np.int64), np.empty(0), np.empty((0, 4))
        vals = np.stack([t.time[c, g, o], t.traffic[c, g, o], t.wbytes[g, o], t.nsr[g, o]], axis=1)
        keep = _pareto(vals, o, dirs)           # an option dominated within its group never helps
        opts.append((o[keep], vals[keep]))
    # best completion of each oriented sum from group g on
    best_rest = np.zeros((6, 4))
    for g in range(4, -1, -1):
        o, v = opts[g]
        pick = np.where(dirs >= 0, v.min(axis=0), v.max(axis=0))
        best_rest[g] = best_rest[g + 1] + pick
    sums = np.array([[t.const_t[c], t.const_b[c], 0.0, 0.0]])
    keys = np.zeros(1, dtype=np.int64)
    for g in range(5):
        o, v = opts[g]
        sums = (sums[:, None, :] + v[None, :, :]).reshape(-1, 4)
        keys = (keys[:, None] + o[None, :] * 45 ** (4 - g)).reshape(-1)
        stats[0] += len(sums)
        ub = pb.reward(ri, si, di, sums + best_rest[g + 1])
        live = ub >= best - _EPS
        sums, keys = sums[live], keys[live]
        if g < 4 and len(sums) > 1:
            keep = _pareto(sums, keys, dirs)
            sums, keys = sums[keep], keys[keep]
        if len(sums) == 0:
            break
    r = pb.reward(ri, si, di, sums) if len(sums) else np.empty(0)
    return keys, r, sums


def _index_rows(pb: _Problem, keys: np.ndarray, ri: int, si: int, pi: int, di: int) -> np.ndarray:
    """Full design-space index vectors of leaves given by their option keys."""
    rows = np.empty((len(keys), 19), dtype=np.int64)
    k = keys.copy()
    for g in range(4, -1, -1):
        o = k % 45
        k //= 45
        rows[:, 3 * g], rows[:, 3 * g + 1], rows[:, 3 * g + 2] = (o // 5) // 3, (o // 5) % 3, o % 5
    rows[:, 15:19] = (ri, si, pi, di)
    return rows


def _exhaustive(evaluator, why: str, t0: float) -> ExactOptimum:
    """The stated fallback for an objective the bound cannot handle, on a small enough space."""
    from archgym.sweep import exhaustive

    o = exhaustive(evaluator)
    e = evaluator.evaluate(o.design)
    return ExactOptimum(o.design, o.reward, o.cost, e.metrics, o.n_designs, o.n_designs,
                        f"exhaustive batched evaluation of all {o.n_designs:,} designs ({why})",
                        time.perf_counter() - t0)


def exact_optimum(evaluator, *, top: int = 16, fallback_limit: int = 20_000_000) -> ExactOptimum:
    """The design of maximum reward over ``evaluator.space`` for ``evaluator.objective``, found by
    branch and bound over the separable layer groups (see the module docstring for the method
    and its proof); about a second for the full 2.4e10-design AgileQuant-v0 space.

    ``top``: how many of the best leaves (by the batched kernel's reward) are re-evaluated
    through the evaluator's scalar path to pick the one returned (ties: lowest flat index).
    An objective the method does not support (see the module docstring) falls back to
    :func:`archgym.sweep.exhaustive` when the space has at most ``fallback_limit`` designs
    (e.g. a sub-space pinned with the evaluator's ``fixed``), which ``method`` then says; on a
    larger space it raises :class:`OptimumError` (a ``ValueError``) with the reason in one line.
    """
    from archgym.sweep import _batch_reward

    t0 = time.perf_counter()
    try:
        pb = _Problem(evaluator)
    except OptimumError as e:
        if "AgileQuantSimulator" in str(e) or evaluator.space.size > fallback_limit:
            raise
        return _exhaustive(evaluator, str(e), t0)
    t = pb.t
    stats = [0]
    # visit the global combinations best bound first
    combos = []
    for ri in pb.globals[0]:
        for si in pb.globals[1]:
            for pi in pb.globals[2]:
                for di in pb.globals[3]:
                    c = pb.combo(ri, si, pi, di)
                    lo = np.array([t.const_t[c], t.const_b[c], 0.0, 0.0])
                    feasible_groups = True
                    for g in range(5):
                        o = pb.group_opts[g]
                        o = o[t.ok[pi, g, o]]
                        if o.size == 0:
                            feasible_groups = False
                            break
                        v = np.stack([t.time[c, g, o], t.traffic[c, g, o], t.wbytes[g, o], t.nsr[g, o]], axis=1)
                        lo += np.where(pb.dirs >= 0, v.min(axis=0), v.max(axis=0))
                    if feasible_groups:
                        combos.append((float(pb.reward(ri, si, di, lo[None])[0]), int(ri), int(si), int(pi), int(di)))
    combos.sort(key=lambda x: -x[0])
    best = 0.0
    found: list[tuple[np.ndarray, np.ndarray]] = []
    for ub, ri, si, pi, di in combos:
        if ub < best - _EPS:
            break
        keys, r, _ = _search_combo(pb, ri, si, pi, di, best, stats)
        if r.size:
            best = max(best, float(r.max()))
            sel = r >= best - _EPS
            found.append((_index_rows(pb, keys[sel], ri, si, pi, di), r[sel]))
    n_designs = int(pb.space.size)
    if not found or best <= 0:
        first = pb.space.decode(np.zeros(len(pb.space.params), dtype=np.int64))
        e = evaluator.evaluate(first)
        return ExactOptimum(e.design, float(e.reward), float(evaluator.objective.cost(e.metrics)), e.metrics,
                            n_designs, stats[0], "branch and bound: no design has a positive reward; returned the "
                            "first design of the space", time.perf_counter() - t0)
    rows = np.concatenate([f[0] for f in found])
    rows = rows[np.concatenate([f[1] for f in found]) >= best - _EPS]
    # price the candidates as the batched path does, then re-evaluate the best as exhaustive() does
    b, _ = _kern.evaluate_tables(t, rows)
    r, _, _ = _batch_reward(evaluator.objective, b)
    order = np.argsort(-r, kind="stable")[:top]
    best_ev, best_key = None, None
    full_names = pb.full.names
    for i in order:
        d = {n: pb.full[n].value(int(j)) for n, j in zip(full_names, rows[i])}
        e = evaluator.evaluate(d)
        key = (-e.reward, pb.space.index_of(e.design))
        if best_key is None or key < best_key:
            best_ev, best_key = e, key
    method = (f"branch and bound over the 5 separable layer groups with Pareto dominance, "
              f"{len(combos)} global combinations bounded, {stats[0]:,} partial/complete assignments priced "
              f"of {n_designs:,} designs; best candidates re-evaluated through the evaluator")
    return ExactOptimum(best_ev.design, float(best_ev.reward), float(evaluator.objective.cost(best_ev.metrics)),
                        best_ev.metrics, n_designs, stats[0], method, time.perf_counter() - t0)
