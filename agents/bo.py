"""Bayesian optimisation with a Gaussian-process surrogate, driven by ask/tell.

ArchGym's BO wrapped the simulator as a scikit-learn estimator and drove it
with ``BayesSearchCV``, which made ~4 simulator calls per counted iteration
(cross-validation folds and a re-fit in the scorer; oss-arch-gym's
``arch_gym/envs`` BO wrappers).  Here the
agent only proposes points: every asked design is evaluated once by the
shared run loop and told back.  The loop is the textbook one over a finite,
mixed (ordered + categorical) space:

* **Encoding.**  An ordered parameter is its index scaled to [0, 1] (for a
  power-of-two parameter the index is log2 of the value, so the scale is
  logarithmic); a categorical one is one-hot; parameters with a single value
  (pinned with ``--fix``) are left out of the model.
* **Surrogate.**  An exact GP (``agents/_gp.py``) with scikit-optimize's default GP
  kernel (constant x Matern-5/2 with one length scale per input, normalised targets, a
  fitted noise level), optionally plus a first-order additive Matern term
  (``additive``), or one of skopt's tree/boosting regressors (``base_estimator``;
  these need scikit-optimize).  The GP is written out so the likelihood gradient costs
  O(n^2 d) per step; it is checked against scikit-learn's regressor with the same
  kernel (tests/test_bo_gp.py).  The kernel hyperparameters are fitted by L-BFGS-B
  (at most ``gp_max_iter`` iterations, from a fixed start and from the last fit) on
  every tell while the run is young (``2 * n_initial_points``) and then every
  ``refit_every`` tells; in between the GP is re-fitted to the new data with the last
  fitted hyperparameters (one Cholesky factorisation, no kernel search).
* **What it models.**  The objective as the log cost ratio ``log(ref/cost)``
  (``cost`` = the objective's weighted product), which the GP models far
  better than the reward ``ref/(ref+cost)``, which squashes good designs
  towards 1.  A design that misses a target still has a cost, so the
  objective model learns from it; each target is modelled by a second GP of
  its log violation (``log(value/bound)``, > 0 when missed) and the
  acquisition is multiplied by the probability that every target is met
  (constrained EI, Gardner et al. 2014).  Feasibility is modelled the same
  way (``feasibility``): a GP of +1 (infeasible) / -1 (feasible) labels gives
  P(feasible), and the objective GP is fitted to feasible designs only.  This
  model learns the infeasibility only results reveal; imputing infeasible designs at the
  worst value seen instead (``--feasibility false``, the usual trick) puts a
  cliff into the objective model right where constrained optima sit (on
  Systolic-v0 the optimum is one step from the area budget in four
  parameters).
* **Declared constraints** (``known_constraints``, on by default).  A constraint the
  design space declares (``DesignSpace.constraints``: Systolic-v0's area budget,
  M3ViT-v0's top_k <= n_experts and its DSP, on-chip memory and weight-tile budgets,
  AgileQuant-v0's accumulator overflows; the last two from ``Simulator.workload_constraints``
  for the workload; ``archgym describe ENV`` lists them) is a rule
  on the parameters, checked without a simulation, so the agent never asks a design that
  violates one: every random, initial and candidate design is filtered with
  ``space.feasible_mask`` (as SMAC never samples a configuration its ConfigSpace's
  forbidden clauses exclude; Gelbart, Snoek and Adams, "Bayesian optimization with
  unknown constraints", UAI 2014, separate such known constraints from the unknown ones a
  model must learn).  Learning them from results instead (``known_constraints=false``,
  as every other agent here does) spent 19-68 % (median 53 %) of Systolic-v0's 200 evaluations on
  designs over the area budget (seeds 0-9), and the feasibility GP's +1/-1 labels describe
  the area boundary poorly; on M3ViT-v0, before it declared its budgets, 75 % of BO's asks
  (seeds 0-39) broke one (57 % of them MAC arrays over the DSPs, extrapolated from the
  feasible pe_in=32, pe_out=48 by an objective model that sees only feasible designs).  A
  Latin-hypercube row that violates one is skipped (a random feasible design takes its
  place).  Objectives with targets only model the reward's logit (``agents._util.Score``).
* **Initial designs.**  ``n_initial_points`` designs before the first model:
  uniformly random (default) or a Latin hypercube over each parameter's
  values (``initial=lhs``).
* **Acquisition optimiser.**  EI/PI/LCB (or skopt's ``gp_hedge`` portfolio
  of the three) is evaluated on candidates, and the best unevaluated one is
  asked: every one-step neighbour (an adjacent value of an ordered
  parameter, any other option of a categorical one) of the
  ``local_candidates`` best designs so far; the best design's two-step
  neighbours (``two_step``) and every design that differs from it in one
  parameter by any amount (``cross``); and ``n_points`` uniformly random
  designs; every design that differs from the best in two parameters (``pairs``; in
  three too with ``triples``, off by default: 2,800-19,000 more designs on the built-in envs); and
  the designs visited by a hill climb of the acquisition itself from the best designs
  and the best candidates (``climb_starts``; one parameter to any value per step, up to
  ``climb_steps`` steps).  In a space of millions of designs random candidates rarely land
  next to the incumbent, so pure sampling stalls short of the optimum; the
  neighbours alone would make it a local search; the cross lets the model
  jump along one parameter past a ridge (Systolic-v0's cost rises with the
  ifmap SRAM up to 512 kB and halves at 1024 kB, where the whole ifmap fits);
  the pairs and the climb let it move two or more coupled parameters at once
  (M3ViT-v0's pe_in=32, pe_out=48, 64 KiB weight buffer is 5.3 % above the optimum at
  pe_in=16, pe_out=96, 144 KiB: only the move of all three improves it).

What each piece buys (Systolic-v0 before its mapping-aware model, budget 200,
20 seeds, runs within 1 % of the exhaustive optimum; benchmarks/README.md,
"Search agents"): worst-value imputation without the cross 8/20; the
feasibility GP 16/20; with the cross as well 20/20, median 49.5 evaluations.
The pairs and the climb: M3ViT-v0 1/3 seeds without them, 2/2 (seeds 1, 2) with
both, 0/1 with the pairs alone (seed 1).  The triples (seeds 0-39 on M3ViT-v0 before it
declared its budgets, 0-19 elsewhere) put that three-parameter escape among the candidates, yet
9 of 40 M3ViT-v0 runs still ended there, as 9 did without them (27/40 within 1 % either way);
Systolic-v0 17/20 with them, 19/20 without; AgileQuant-v0 19/20, BitMoD-v0 and MatMulFree-v0
20/20 either way; 1.7-4.5x the agent's time per ask.  So they are off by default.

Declared constraints (at the defaults above, seeds 0-9, budget 200, runs within 1 % of the
exact optimum): Systolic-v0 1/10 -> 9/10, M3ViT-v0 7/10 -> 8/10 with top_k <= n_experts alone
(27/40 on seeds 0-39) -> 40/40 on seeds 0-39 with its budgets declared too (median 31.5
evaluations to 1 %), AgileQuant-v0 3/10 -> 9/10
(overflows had taken 1-68 % of its evaluations, median 53 %; benchmarks/README.md); BitMoD-v0
and MatMulFree-v0 declare none and are unchanged (the same asks).

Determinism: all randomness comes from ``self.rng``; model fits run on one
BLAS thread (``agents._util.single_thread``); replaying the logged results
reproduces the asks (how a killed run resumes).

scikit-optimize 0.10.2 works with numpy 2.4 / scikit-learn 1.9 but its
repository was archived on 2024-02-28 (scikit-optimize on GitHub); it is kept as the
ArchGym-compatible BO baseline.  The maintained alternatives are Optuna's
``GPSampler`` (``--agent gp``) and TPE (``--agent tpe``).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Mapping

import numpy as np

from archgym.agent import Agent
from archgym.metrics import Metrics
from archgym.space import index_neighbours

from ._gp import MaternGP
from ._util import Score, quiet, require, single_thread

__all__ = ["BayesOpt"]

_ESTIMATORS = ("GP", "RF", "ET", "GBRT")
_ACQ = ("EI", "PI", "LCB", "gp_hedge")


class BayesOpt(Agent):
    """Bayesian optimisation with a GP (or scikit-optimize tree) surrogate (see module docstring)."""

    name = "bo"

    @dataclasses.dataclass(frozen=True)
    class Params:
        """Hyperparameters of the Bayesian optimisation loop."""

        base_estimator: str = dataclasses.field(
            default="GP", metadata={"help": "surrogate model (scikit-optimize): GP, RF, ET or GBRT"})
        acq_func: str = dataclasses.field(default="EI", metadata={"help": "acquisition: EI, PI, LCB or gp_hedge"})
        n_initial_points: int = dataclasses.field(default=10, metadata={"help": "random designs before the model is used"})
        initial: str = dataclasses.field(
            default="random", metadata={"help": "initial designs: lhs (Latin hypercube over each parameter's values: "
                                             "every value appears about equally often) or random"})
        xi: float = dataclasses.field(default=0.01, metadata={"help": "EI/PI exploration margin (in normalised units)"})
        kappa: float = dataclasses.field(default=1.96, metadata={"help": "LCB exploration weight"})
        n_points: int = dataclasses.field(
            default=2000, metadata={"help": "random candidates scored by the acquisition per ask"})
        gp_max_iter: int = dataclasses.field(
            default=50, metadata={"help": "L-BFGS-B iterations per GP kernel fit (0 = scipy's default)"})
        refit_every: int = dataclasses.field(
            default=5, metadata={"help": "fit the GP kernel hyperparameters every this many tells once the run has "
                                         "2 x n_initial_points results (1 = every tell)"})
        local_candidates: int = dataclasses.field(
            default=5, metadata={"help": "the one-step neighbours of this many best designs join the acquisition's "
                                         "random candidates (0 = random candidates only)"})
        two_step: bool = dataclasses.field(
            default=True, metadata={"help": "the best design's two-step neighbours join the candidates too"})
        cross: bool = dataclasses.field(
            default=True, metadata={"help": "every design that differs from the best in one parameter (any value) "
                                            "joins the candidates too"})
        pairs: bool = dataclasses.field(
            default=True, metadata={"help": "every design that differs from the best in two parameters (any values) "
                                             "joins the candidates too"})
        triples: bool = dataclasses.field(
            default=False, metadata={"help": "every design that differs from the best in three parameters (any values) "
                                              "joins the candidates too (1.7-4.5x the agent's time per ask; no measured "
                                              "gain: benchmarks/README.md)"})
        additive: bool = dataclasses.field(
            default=False, metadata={"help": "GP kernel: add a first-order additive Matern-5/2 term (one per input) to "
                                             "the ARD Matern-5/2 kernel (GP only)"})
        climb_starts: int = dataclasses.field(
            default=5, metadata={"help": "hill-climb the acquisition (one parameter to any value per step) from the "
                                         "this many best designs and this many best candidates; every design "
                                         "visited joins the candidates (0 = no climb)"})
        climb_steps: int = dataclasses.field(default=20, metadata={"help": "steps per acquisition climb"})
        constraints: bool = dataclasses.field(
            default=True, metadata={"help": "model each target's log violation and weight the acquisition by the "
                                            "probability of meeting it (else target misses score below every hit)"})
        feasibility: bool = dataclasses.field(
            default=True, metadata={"help": "model feasibility with its own GP, fit the objective on feasible designs "
                                            "only and weight the acquisition by P(feasible) (else an infeasible "
                                            "design is imputed at the worst objective value seen)"})
        known_constraints: bool = dataclasses.field(
            default=True, metadata={"help": "never ask a design that violates one of the design space's declared "
                                            "constraints (checked without a simulation); false: learn them from "
                                            "results like any other infeasibility"})

        def __post_init__(self) -> None:
            if self.base_estimator not in _ESTIMATORS:
                raise ValueError(f"base_estimator={self.base_estimator!r}; allowed: {', '.join(_ESTIMATORS)}")
            if self.acq_func not in _ACQ:
                raise ValueError(f"acq_func={self.acq_func!r}; allowed: {', '.join(_ACQ)}")
            if self.initial not in ("lhs", "random"):
                raise ValueError(f"initial={self.initial!r} is not one of: lhs, random")
            if self.n_initial_points < 1:
                raise ValueError(f"n_initial_points={self.n_initial_points} must be >= 1")
            if self.n_points < 1:
                raise ValueError(f"n_points={self.n_points} must be >= 1")
            if self.gp_max_iter < 0 or self.local_candidates < 0 or self.climb_starts < 0 or self.climb_steps < 0:
                raise ValueError("gp_max_iter, local_candidates, climb_starts and climb_steps must be >= 0")
            if self.additive and self.base_estimator != "GP":
                raise ValueError(f"additive=True needs base_estimator='GP' (got {self.base_estimator!r})")
            if self.refit_every < 1:
                raise ValueError(f"refit_every={self.refit_every} must be >= 1")
            if not (self.xi >= 0 and self.kappa >= 0):
                raise ValueError(f"need xi >= 0 and kappa >= 0; got xi={self.xi}, kappa={self.kappa}")

    def __init__(self, space, **kw: Any) -> None:
        super().__init__(space, **kw)
        self._skopt = (require("skopt", agent=self.name, extra=None, package="scikit-optimize")
                       if self.params.base_estimator != "GP" else None)
        self._active = [j for j, prm in enumerate(space.params) if prm.size > 1]
        self._nvec = np.array([space.params[j].size for j in self._active], dtype=np.int64)
        self._ordered = np.array([space.params[j].ordered for j in self._active], dtype=bool)
        obj = self.objective
        self._log_cost = obj is not None and bool(obj.weights)
        self._targets = tuple(obj.targets) if (obj is not None and self._log_cost and self.params.constraints) else ()
        self._score = Score()
        self._X: list[tuple[int, ...]] = []  # evaluated index vectors (active parameters)
        self._y: list[float] = []  # objective value to maximise (nan: infeasible, imputed at fit time)
        self._g: list[list[float]] = []  # per target: log violation (> 0 = missed); nan if unknown
        self._ok: list[bool] = []  # counts as a result (feasible and, with constraints, every target met)
        self._seen: set[tuple[int, ...]] = set()
        self._pending: tuple[int, ...] | None = None
        self._feas_model = self._log_cost and self.params.feasibility
        self._initial: list[tuple[int, ...]] | None = None  # the Latin hypercube, once drawn
        self._feasible: list[bool] = []  # the simulator's verdict per evaluated design
        # one GP per modelled quantity (objective, each target, feasibility), kept across asks
        # for the warm start of its kernel fit
        self._gps = [MaternGP(self.params.gp_max_iter, additive=self.params.additive)
                     for _ in range(2 + len(self._targets))]
        self._gains = np.zeros(3)  # gp_hedge portfolio gains (EI, PI, LCB)
        self._hedge_prev: np.ndarray | None = None  # gp_hedge: the encoded nominees of the last ask
        self._known = self.params.known_constraints and bool(space.constraints)
        self._move_tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # _moves: (subsets, value ranks) per m

    # --- encoding --------------------------------------------------------------------------
    def _encode(self, idx: np.ndarray) -> np.ndarray:
        """Index vectors (n, d_active) -> model inputs: ordered in [0, 1], categorical one-hot."""
        idx = np.atleast_2d(idx)
        cols = []
        for k, n in enumerate(self._nvec):
            if self._ordered[k]:
                cols.append((idx[:, k] / max(n - 1, 1))[:, None])
            else:
                cols.append(np.eye(n)[idx[:, k]])
        return np.hstack(cols).astype(float)

    # --- models ----------------------------------------------------------------------------
    def _model(self, k: int):
        skopt = self._skopt
        p = self.params
        seed = int(self.rng.integers(2**31 - 1))
        if p.base_estimator == "GP":
            return self._gps[k]
        if p.base_estimator == "GBRT":
            from sklearn.ensemble import GradientBoostingRegressor

            return skopt.learning.GradientBoostingQuantileRegressor(
                base_estimator=GradientBoostingRegressor(n_estimators=30, loss="quantile"), random_state=seed)
        cls = skopt.learning.RandomForestRegressor if p.base_estimator == "RF" else skopt.learning.ExtraTreesRegressor
        return cls(n_estimators=100, min_samples_leaf=3, random_state=seed)

    def _fit(self):
        """Fit the objective model, one model per target and (``feasibility``) one of
        feasibility; returns (objective model, constraint models, best feasible y).

        A constraint model predicts a violation ``g`` (> 0 = violated): a target's log
        violation, or +1/-1 for an infeasible/feasible design."""
        X = self._encode(np.array(self._X))
        y = np.array(self._y, dtype=float)
        finite = np.isfinite(y)
        feas = np.array(self._feasible, dtype=bool)
        n = len(self._y)
        refit = n <= 2 * self.params.n_initial_points or n % self.params.refit_every == 0
        jobs = []  # (fit slot, X, y) per model; None: nothing to learn
        if self._feas_model and finite.any():
            jobs.append((0, X[finite], y[finite]))
        else:  # infeasible designs imputed at the worst value seen
            jobs.append((0, X, np.where(finite, y, np.min(y[finite]) if finite.any() else 0.0)))
        for k in range(len(self._targets)):
            g = np.array([row[k] for row in self._g], dtype=float)
            known = np.isfinite(g)
            useful = known.sum() >= 2 and (g[known] > 0).any()
            jobs.append((1 + k, X[known], g[known]) if useful else None)
        if self._feas_model:
            useful = feas.any() and not feas.all()
            jobs.append((1 + len(self._targets), X, np.where(feas, -1.0, 1.0)) if useful else None)
        models = []
        for job in jobs:
            if job is None:
                models.append(None)
                continue
            k, Xk, yk = job
            m = self._model(k)
            if self.params.base_estimator == "GP":
                m.fit(Xk, yk, optimize=refit)
            else:
                m.fit(Xk, yk)
            models.append(m)
        ok = np.array(self._ok)
        best = float(np.max(y[ok])) if ok.any() else float(np.max(y[finite])) if finite.any() else 0.0
        return models[0], models[1:], best

    # --- acquisition -----------------------------------------------------------------------
    def _candidates(self) -> np.ndarray:
        """The unevaluated designs the acquisition scores (module docstring): one-step neighbours of
        the best designs, the incumbent's two-step neighbours and its one-, two- (and with
        ``triples`` three-) parameter moves, and uniform random designs; declared constraints
        filter them (``known_constraints``)."""
        p = self.params
        cands: dict[tuple[int, ...], None] = {}
        if p.local_candidates:
            key = np.where(np.array(self._ok), np.array(self._y, dtype=float), -np.inf)
            key = np.where(np.isnan(key), -np.inf, key)
            for rank, i in enumerate(np.argsort(-key, kind="stable")[: p.local_candidates]):
                ones = self._neighbours(self._X[i])
                if rank == 0 and p.two_step:  # the incumbent's two-step neighbours too
                    ones = ones + [nb2 for nb in ones for nb2 in self._neighbours(nb)]
                # and every design that differs from it in one (cross), two (pairs) or three parameters
                for m, on in ((1, p.cross), (2, p.pairs), (3, p.triples)):
                    if rank == 0 and on:
                        ones = ones + self._moves(self._X[i], m)
                for nb in ones:
                    if nb not in self._seen:
                        cands[nb] = None
        rnd = self.rng.integers(0, self._nvec, size=(p.n_points, len(self._nvec)))
        for r in map(tuple, rnd.tolist()):
            if r not in self._seen:
                cands[r] = None
        out = np.array(list(cands), dtype=np.int64).reshape(-1, len(self._nvec))
        return out[self._allowed(out)]

    def _moves(self, x: tuple[int, ...], m: int) -> list[tuple[int, ...]]:
        """Every index vector that differs from ``x`` in exactly ``m`` parameters (any values),
        parameter subsets in lexicographic order, then values in ascending order.  The subsets
        and value ranks are tabled once per ``m``: the rank-``r`` value other than ``x[j]`` is
        ``r + (r >= x[j])``."""
        if m not in self._move_tables:
            nv = self._nvec.tolist()
            cols, ranks = [], []
            for c in itertools.combinations(range(len(nv)), m):
                r = list(itertools.product(*[range(nv[j] - 1) for j in c]))
                cols += [c] * len(r)
                ranks += r
            self._move_tables[m] = (np.array(cols, dtype=np.int64).reshape(-1, m),
                                    np.array(ranks, dtype=np.int64).reshape(-1, m))
        cols, ranks = self._move_tables[m]
        xa = np.asarray(x, dtype=np.int64)
        z = np.repeat(xa[None, :], len(cols), axis=0)
        np.put_along_axis(z, cols, ranks + (ranks >= xa[cols]), axis=1)
        return list(map(tuple, z.tolist()))

    def _allowed(self, cand: np.ndarray) -> np.ndarray:
        """Mask of the index vectors ``cand`` that satisfy the space's declared constraints
        (all True without ``known_constraints``)."""
        if not self._known:
            return np.ones(len(cand), dtype=bool)
        full = np.zeros((len(cand), len(self.space.params)), dtype=np.int64)
        full[:, self._active] = cand
        return self.space.feasible_mask(full)

    def _neighbours(self, x: tuple[int, ...]) -> list[tuple[int, ...]]:
        return index_neighbours(x, self._nvec.tolist(), self._ordered.tolist())

    def _acq(self, models, cand: np.ndarray) -> dict:
        """Every acquisition (maximisation scale) at index vectors ``cand``."""
        from scipy.stats import norm

        model, constraint_models, best = models
        Xc = self._encode(cand)
        mu, sd = model.predict(Xc, return_std=True)
        sd = np.maximum(sd, 1e-9)
        pof = np.ones(len(cand))
        for m in constraint_models:
            if m is not None:
                gm, gs = m.predict(Xc, return_std=True)
                pof *= norm.cdf(-gm / np.maximum(gs, 1e-9))
        # skopt's acquisitions, on the maximisation scale: xi is relative to the model's y scale
        scale = float(np.std(self._finite_y())) or 1.0
        z_ei = (mu - best - self.params.xi * scale) / sd
        return {
            "EI": ((mu - best - self.params.xi * scale) * norm.cdf(z_ei) + sd * norm.pdf(z_ei)) * pof,
            "PI": norm.cdf(z_ei) * pof,
            "LCB": (mu + self.params.kappa * sd) + np.log(np.maximum(pof, 1e-300)) * scale,
            "X": Xc,
        }

    def _climb(self, models, starts: np.ndarray) -> np.ndarray:
        """Best-improvement hill climbing on the acquisition from each start, one parameter
        changed (to any value) per step; returns every design visited."""
        acq = self.params.acq_func if self.params.acq_func != "gp_hedge" else "EI"
        nv = self._nvec.tolist()
        moves = [(j, v) for j, n in enumerate(nv) for v in range(n)]
        mj = np.array([m[0] for m in moves])
        mv = np.array([m[1] for m in moves])
        cur = np.array(starts, dtype=np.int64)
        val = self._acq(models, cur)[acq]
        visited = [cur.copy()]
        active = np.ones(len(cur), dtype=bool)
        for _ in range(self.params.climb_steps):
            if not active.any():
                break
            a = np.flatnonzero(active)
            nb = np.repeat(cur[a], len(moves), axis=0)
            rows = np.arange(len(nb))
            nb[rows, np.tile(mj, len(a))] = np.tile(mv, len(a))
            v = np.where(self._allowed(nb), self._acq(models, nb)[acq], -np.inf).reshape(len(a), len(moves))
            k = np.argmax(v, axis=1)
            better = v[np.arange(len(a)), k] > val[a] * (1 + 1e-9) + 1e-300
            for i, si in enumerate(a):
                if better[i]:
                    cur[si] = nb[i * len(moves) + k[i]]
                    val[si] = v[i, k[i]]
                else:
                    active[si] = False
            visited.append(cur[a[better]].copy())
        return np.concatenate(visited)

    def _acquire(self) -> tuple[int, ...]:
        models = self._fit()
        cand = self._candidates()
        if self.params.climb_starts and len(cand):
            acq = self.params.acq_func if self.params.acq_func != "gp_hedge" else "EI"
            v = self._acq(models, cand)[acq]
            key = np.where(np.array(self._ok), np.array(self._y, dtype=float), -np.inf)
            key = np.where(np.isnan(key), -np.inf, key)
            top = np.array(self._X, dtype=np.int64)[np.argsort(-key, kind="stable")[: self.params.climb_starts]]
            starts = np.concatenate([top, cand[np.argsort(-v, kind="stable")[: self.params.climb_starts]]])
            extra = [tuple(r) for r in self._climb(models, starts).tolist()]
            known = set(map(tuple, cand.tolist()))
            extra = [r for r in dict.fromkeys(extra) if r not in self._seen and r not in known]
            if extra:
                cand = np.concatenate([cand, np.array(extra, dtype=np.int64)])
        if len(cand) == 0:  # every candidate was evaluated: a random design (space nearly exhausted)
            return tuple(int(v) for v in self.rng.integers(0, self._nvec))
        acqs = self._acq(models, cand)
        Xc = acqs["X"]
        model = models[0]
        if self.params.acq_func != "gp_hedge":
            return tuple(int(v) for v in cand[int(np.argmax(acqs[self.params.acq_func]))])
        # skopt's gp_hedge (Hoffman et al. 2011): each acquisition's gain grows by the refitted
        # model's mean at the design it nominated last time; each nominates its best candidate
        # now and one is picked with probability softmax(gains)
        if self._hedge_prev is not None:
            self._gains += model.predict(self._hedge_prev)
        picks = [int(np.argmax(acqs[a])) for a in ("EI", "PI", "LCB")]
        self._hedge_prev = Xc[picks]
        logits = self._gains - self._gains.max()
        prob = np.exp(logits) / np.exp(logits).sum()
        return tuple(int(v) for v in cand[picks[int(self.rng.choice(3, p=prob))]])

    def _finite_y(self) -> np.ndarray:
        y = np.array(self._y, dtype=float)
        return y[np.isfinite(y)] if np.isfinite(y).any() else np.zeros(1)

    # --- ask/tell --------------------------------------------------------------------------
    def ask(self) -> dict:
        idx = [0] * len(self.space.params)
        if self._active:
            if self._pending is None:
                fresh = ([x for x in self._lhs() if x not in self._seen and self._allowed(np.array([x]))[0]]
                         if self.params.initial == "lhs" else [])
                if len(self._y) < self.params.n_initial_points and fresh:
                    self._pending = fresh[0]
                elif len(self._y) < self.params.n_initial_points or not np.isfinite(self._y).any():
                    self._pending = self._random_unseen()
                else:
                    with quiet(), single_thread():
                        self._pending = self._acquire()
            for j, v in zip(self._active, self._pending):
                idx[j] = int(v)
        return self.space.decode(idx)

    def _lhs(self) -> list[tuple[int, ...]]:
        """The initial Latin hypercube (drawn once from ``self.rng``): each parameter's
        column holds every value ``n_initial_points // size`` times plus distinct random
        ones for the remainder, in a random order independent of the other columns."""
        if self._initial is None:
            m = self.params.n_initial_points
            cols = []
            for n in self._nvec.tolist():
                levels = np.concatenate([np.tile(np.arange(n), m // n), self.rng.choice(n, m % n, replace=False)])
                cols.append(self.rng.permutation(levels))
            self._initial = [tuple(int(v) for v in row) for row in np.stack(cols, axis=1).tolist()]
        return self._initial

    def _random_unseen(self) -> tuple[int, ...]:
        for _ in range(100):
            x = tuple(int(v) for v in self.rng.integers(0, self._nvec))
            if x not in self._seen and self._allowed(np.array([x]))[0]:
                return x
        return x

    def tell(self, design: Mapping[str, Any], metrics: Metrics, reward: float) -> None:
        s = self._score(reward, metrics.feasible)
        if not self._active:
            return
        self._pending = None
        idx = self.space.encode(design)
        x = tuple(int(idx[j]) for j in self._active)
        if x in self._seen:  # a repeat (only after the space ran out of candidates): nothing new to learn
            return
        self._seen.add(x)
        self._X.append(x)
        self._feasible.append(bool(metrics.feasible))
        if not self._log_cost:
            self._y.append(s)
            self._g.append([])
            self._ok.append(bool(metrics.feasible))
            return
        cost = self.objective.cost(metrics) if metrics.feasible else math.inf
        ref = self.objective.ref or 1.0
        y = math.log(ref / cost) if 0 < cost < math.inf else math.nan
        g = [t.log_violation(metrics.get(t.metric)) if metrics.feasible else math.nan for t in self._targets]
        met = self.objective.target_met(metrics)
        if not self._targets and self.objective.targets and math.isfinite(y):
            # targets without a constraint model: a miss ranks below every hit (lexicographic)
            y = y if met else min(self._finite_y().min(), y) - 1.0 - (1.0 - self.objective.closeness(metrics))
        self._y.append(y)
        self._g.append(g)
        self._ok.append(bool(met) and math.isfinite(y))

