"""Bayesian optimisation with scikit-optimize's ``Optimizer`` (ask/tell).

ArchGym's BO wrapped the simulator as a scikit-learn estimator and drove it
with ``BayesSearchCV``, which made ~4 simulator calls per counted iteration
(cross-validation folds and a re-fit in the scorer; archgym.md §2).  Here the
``skopt.Optimizer`` only proposes points: every asked design is evaluated once
by the shared run loop and told back.

* Ordered parameters are ``Integer(0, n-1)`` index dimensions, categorical ones
  ``Categorical`` over their indices (one-hot inside skopt); parameters with a
  single value (pinned with ``--fix``) are left out of the model.
* The optimiser minimises ``-score``, where ``score`` is the logit of the
  reward (the log cost ratio; see ``agents._util.Score``), which a GP models
  far better than the squashed reward.
* The GP surrogate is skopt's default (constant x Matern-5/2 with one length
  scale per dimension, normalised targets, a fitted noise level) with a
  cheaper kernel fit: ``gp_restarts=0`` (skopt: 2) and at most
  ``gp_max_iter`` L-BFGS-B iterations, which keeps a 200-evaluation run to
  about a minute.  (Warm-starting each fit from the previous optimum was
  5x faster again but found worse designs: on Systolic-v0, budget 150, best
  rewards 0.921-0.979 over 4 seeds vs 0.983-0.995 cold, so it is not used.)
* The acquisition is maximised over ``n_points`` random candidates (skopt's
  ``sampling`` optimiser) plus every unevaluated one-step neighbour of the
  ``local_candidates`` best designs so far: in a space of millions of designs
  random candidates rarely land next to the incumbent, so pure sampling
  stalls short of the optimum.  (skopt has no hook for this; the agent
  extends the candidate generator of its own ``Optimizer`` instance.)
* ``avoid_duplicates`` keeps skopt from proposing an already evaluated point.

scikit-optimize 0.10.2 works with numpy 2.4 / scikit-learn 1.9 but its
repository was archived in 2024 (scalesim.md §3.4); it is kept as the
ArchGym-compatible BO baseline.  The maintained alternatives are Optuna's
``GPSampler`` (``--agent gp``) and TPE (``--agent tpe``).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping

import numpy as np

from archgym.agent import Agent
from archgym.metrics import Metrics

from ._util import Score, quiet, require, single_thread

__all__ = ["BayesOpt"]

_ESTIMATORS = ("GP", "RF", "ET", "GBRT")
_ACQ = ("EI", "PI", "LCB", "gp_hedge")


def _capped_lbfgsb(obj_func, initial_theta, bounds, *, max_iter: int):
    """scikit-learn's GP kernel fit (L-BFGS-B on the log marginal likelihood) with an
    iteration cap.  The uncapped fit with skopt's 2 restarts dominated the agent's
    time (3.3 s per tell at 100 observations on a loaded 2-core machine; 0.7 s
    capped at 50 iterations without restarts)."""
    from scipy.optimize import minimize

    opts = {"maxiter": max_iter} if max_iter else {}
    res = minimize(obj_func, initial_theta, method="L-BFGS-B", jac=True, bounds=bounds, options=opts)
    return res.x, res.fun


class BayesOpt(Agent):
    """scikit-optimize ``Optimizer`` driven by ask/tell (see module docstring)."""

    name = "bo"

    @dataclasses.dataclass(frozen=True)
    class Params:
        """Hyperparameters of scikit-optimize's Bayesian optimisation."""

        base_estimator: str = dataclasses.field(
            default="GP", metadata={"help": "surrogate model: GP, RF, ET or GBRT"})
        acq_func: str = dataclasses.field(default="gp_hedge", metadata={"help": "acquisition: EI, PI, LCB or gp_hedge"})
        n_initial_points: int = dataclasses.field(default=10, metadata={"help": "random designs before the model is used"})
        xi: float = dataclasses.field(default=0.01, metadata={"help": "EI/PI exploration margin"})
        kappa: float = dataclasses.field(default=1.96, metadata={"help": "LCB exploration weight"})
        n_points: int = dataclasses.field(
            default=2000, metadata={"help": "random candidates scored by the acquisition per ask"})
        gp_restarts: int = dataclasses.field(
            default=0, metadata={"help": "extra random restarts of the GP kernel fit (skopt's default is 2)"})
        gp_max_iter: int = dataclasses.field(
            default=50, metadata={"help": "L-BFGS-B iterations per GP kernel fit (0 = scipy's default)"})
        local_candidates: int = dataclasses.field(
            default=5, metadata={"help": "the one-step neighbours of this many best designs join the acquisition's "
                                         "random candidates (0 = skopt's random candidates only)"})

        def __post_init__(self) -> None:
            if self.base_estimator not in _ESTIMATORS:
                raise ValueError(f"base_estimator={self.base_estimator!r}; allowed: {', '.join(_ESTIMATORS)}")
            if self.acq_func not in _ACQ:
                raise ValueError(f"acq_func={self.acq_func!r}; allowed: {', '.join(_ACQ)}")
            if self.n_initial_points < 1:
                raise ValueError(f"n_initial_points={self.n_initial_points} must be >= 1")
            if self.n_points < 1:
                raise ValueError(f"n_points={self.n_points} must be >= 1")
            if self.gp_restarts < 0 or self.gp_max_iter < 0 or self.local_candidates < 0:
                raise ValueError("gp_restarts, gp_max_iter and local_candidates must be >= 0")

    def __init__(self, space, **kw: Any) -> None:
        super().__init__(space, **kw)
        skopt = require("skopt", agent=self.name, extra=None, package="scikit-optimize")
        p = self.params
        self._active = [j for j, prm in enumerate(space.params) if prm.size > 1]
        dims = []
        for j in self._active:
            prm = space.params[j]
            if prm.ordered:
                dims.append(skopt.space.Integer(0, prm.size - 1, name=prm.name))
            else:
                dims.append(skopt.space.Categorical(list(range(prm.size)), name=prm.name))
        self._score = Score()
        self._pending: list | None = None
        self._opt = None
        if dims:
            with quiet():
                estimator = p.base_estimator
                if estimator == "GP":
                    estimator = skopt.utils.cook_estimator(
                        "GP", space=dims, random_state=self.seed, n_restarts_optimizer=p.gp_restarts,
                        optimizer=functools.partial(_capped_lbfgsb, max_iter=p.gp_max_iter),
                    )
                self._opt = skopt.Optimizer(
                    dims, base_estimator=estimator, n_initial_points=p.n_initial_points,
                    acq_func=p.acq_func, acq_optimizer="sampling", random_state=self.seed,
                    acq_func_kwargs={"xi": p.xi, "kappa": p.kappa}, acq_optimizer_kwargs={"n_points": p.n_points},
                )
            if p.local_candidates:
                self._random_candidates = self._opt.space.rvs
                self._opt.space.rvs = self._candidates  # instance-level: skopt's acquisition step calls it

    def _candidates(self, n_samples=1, random_state=None):
        """skopt's random candidates plus, when it asks for the acquisition's
        ``n_points``, every unevaluated one-step neighbour of the best designs."""
        pts = self._random_candidates(n_samples=n_samples, random_state=random_state)
        opt = self._opt
        if n_samples != self.params.n_points or not opt.yi:
            return pts
        seen = {tuple(int(v) for v in x) for x in opt.Xi}
        local = {}
        for i in np.argsort(opt.yi, kind="stable")[: self.params.local_candidates]:
            base = [int(v) for v in opt.Xi[i]]
            for j, dim in enumerate(opt.space.dimensions):
                if hasattr(dim, "categories"):
                    steps = [c for c in dim.categories if c != base[j]]
                else:
                    steps = [v for v in (base[j] - 1, base[j] + 1) if dim.low <= v <= dim.high]
                for v in steps:
                    nb = tuple(base[:j] + [int(v)] + base[j + 1:])
                    if nb not in seen:
                        local[nb] = None
        return list(pts) + [list(x) for x in local]

    def ask(self) -> dict:
        idx = [0] * len(self.space.params)
        if self._opt is not None:
            if self._pending is None:
                with quiet(), single_thread():
                    self._pending = [int(v) for v in self._opt.ask()]
            for j, v in zip(self._active, self._pending):
                idx[j] = v
        return self.space.decode(idx)

    def tell(self, design: Mapping[str, Any], metrics: Metrics, reward: float) -> None:
        s = self._score(reward, metrics.feasible)
        if self._opt is None:
            return
        idx = self.space.encode(design)
        x = [int(idx[j]) for j in self._active]
        self._pending = None
        with quiet(), single_thread():
            self._opt.tell(x, -s)
