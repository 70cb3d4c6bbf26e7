"""Optuna samplers as ask/tell agents: TPE, CMA-ES, NSGA-II (multi-objective) and GP.

One in-memory study per run.  ``ask`` calls ``study.ask`` with the fixed
distributions of :meth:`archgym.space.DesignSpace.optuna_distributions`
(ordered parameters as integer indices, categorical ones as categorical
indices; parameters pinned to one value are left out), so the sampler sees
exactly the env's design space.  ``tell`` reports the result:

* single-objective samplers (``tpe``, ``cmaes``, ``gp``) maximise the logit of
  the reward (the log cost ratio, see ``agents._util.Score``), so the
  surrogate sees differences between good designs that the bounded reward
  squashes;
* ``nsga2`` minimises/maximises each weighted metric of the objective as a
  separate objective (``Objective.directions``) and keeps a Pareto front;
* a design the sampler proposes again is answered from the agent's memory of
  earlier results (``dedupe``, up to 20 times per ask): a repeat would be a
  cache hit that still consumes budget, and the other agents avoid repeats too;
* feasibility (and, for ``nsga2``, each target ``metric <= bound`` as a
  relative violation) is reported with ``trial.set_constraint`` (Optuna >= 5:
  feasible when <= 0), which TPE, GP and NSGA-II use; CMA-ES ignores
  constraints and sees only the infeasible penalty score.

Determinism: every sampler is seeded with the agent's seed, the study is
driven strictly sequentially (one running trial at a time, so TPE's constant
liar never fires), no wall-clock value is read, and model fitting runs on one
thread (``agents._util.single_thread``).  Replaying the logged results into a
fresh agent therefore reproduces the same asks (how a killed run resumes).

Optional library: ``torch`` for GP (``pip install 'archgym[gp]'``); ``cmaes``
(for CMA-ES) is a core dependency.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from archgym.agent import Agent, BadHyperparameter
from archgym.metrics import Metrics

from ._util import Score, quiet, require, single_thread

__all__ = ["OptunaAgent", "TPE", "CmaEs", "NSGA2", "GP"]

_MAX_REPEATS = 20  # sampler proposals of already evaluated designs answered from memory per ask
_DEDUPE_HELP = "answer a re-proposed, already evaluated design from memory and ask again (no budget spent)"


class OptunaAgent(Agent):
    """Base class: an Optuna sampler behind ask/tell.  Subclasses build the sampler."""

    name = ""
    multi_objective = False
    use_constraints = True

    def __init__(self, space, **kw: Any) -> None:
        super().__init__(space, **kw)
        optuna = require("optuna", agent=self.name, extra=None)  # a core dependency
        self._active = [j for j, p in enumerate(space.params) if p.size > 1]
        all_dists = space.optuna_distributions()
        self._dists = {space.params[j].name: self._distribution(space.params[j], all_dists) for j in self._active}
        self._score = Score()
        self._trial = None
        self._known: dict[tuple[int, ...], tuple[Metrics, float]] = {}
        with quiet():
            sampler = self._make_sampler()
            if self.multi_objective:
                self._metrics, self._directions = _objectives(self.objective)
                self._targets = tuple(self.objective.targets) if self.objective is not None else ()
                self.study = optuna.create_study(directions=list(self._directions), sampler=sampler)
            else:
                self._targets = ()
                self.study = optuna.create_study(direction="maximize", sampler=sampler)

    # --- hooks ---------------------------------------------------------------------------
    def _make_sampler(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _distribution(self, param, all_dists):
        return all_dists[param.name]

    # --- ask/tell ------------------------------------------------------------------------
    def ask(self) -> dict:
        idx = [0] * len(self.space.params)
        for _ in range(_MAX_REPEATS):
            if not self._dists:
                break
            if self._trial is None:
                with quiet(), single_thread():
                    self._trial = self.study.ask(self._dists)
            for j in self._active:
                idx[j] = int(self._trial.params[self.space.params[j].name])
            known = self._known.get(tuple(idx)) if self.params.dedupe else None
            if known is None:
                break
            # a repeat: tell the sampler the result it was already told, without an evaluation
            self._report(self._trial, *known)
            self._trial = None
        return self.space.decode(idx)

    def tell(self, design: Mapping[str, Any], metrics: Metrics, reward: float) -> None:
        trial, self._trial = self._trial, None
        if trial is None:
            self._score(reward, metrics.feasible)
            return
        self._known[tuple(self.space.encode(design).tolist())] = (metrics, float(reward))
        self._report(trial, metrics, float(reward))

    def _report(self, trial, metrics: Metrics, reward: float) -> None:
        score = self._score(reward, metrics.feasible)
        with quiet(), single_thread():
            if self.use_constraints:
                trial.set_constraint("feasible", 0.0 if metrics.feasible else 1.0)
                for t in self._targets:
                    v = metrics.get(t.metric)
                    viol = 1.0 - t.closeness(v) if math.isfinite(v) else 1.0
                    trial.set_constraint(str(t), viol)
            if self.multi_objective:
                vals = [metrics.get(m) if metrics.feasible else math.nan for m in self._metrics]
                vals = [v if math.isfinite(v) else math.inf * (1 if d == "minimize" else -1)
                        for v, d in zip(vals, self._directions)]
                self.study.tell(trial, vals)
            else:
                self.study.tell(trial, score)


def _objectives(objective) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Metrics and directions of the multi-objective problem: the weighted metrics,
    or the target metrics when the objective has targets only."""
    if objective is None:
        return ("latency_s",), ("minimize",)
    if objective.weights:
        return tuple(objective.weights), objective.directions
    return (tuple(t.metric for t in objective.targets),
            tuple("minimize" if t.op == "<=" else "maximize" for t in objective.targets))


class TPE(OptunaAgent):
    """Optuna's Tree-structured Parzen Estimator, seeded; multivariate, as Optuna 5 defaults
    to for one objective (``multivariate=False`` is the independent TPE, Optuna 4's default)."""

    name = "tpe"

    @dataclasses.dataclass(frozen=True)
    class Params:
        """Hyperparameters of Optuna's TPESampler."""

        n_startup_trials: int = dataclasses.field(default=10, metadata={"help": "random designs before TPE is used"})
        n_ei_candidates: int = dataclasses.field(default=24, metadata={"help": "candidates scored per ask"})
        multivariate: bool = dataclasses.field(default=True, metadata={"help": "joint (multivariate) Parzen estimator"})
        constraints: bool = dataclasses.field(default=True, metadata={"help": "report feasibility as a constraint"})
        dedupe: bool = dataclasses.field(default=True, metadata={"help": _DEDUPE_HELP})
        gamma: float = dataclasses.field(
            default=0.1, metadata={"help": "fraction of the trials in TPE's 'good' group (Optuna's default 0.1)"})
        gamma_cap: int = dataclasses.field(
            default=25, metadata={"help": "most trials in the 'good' group (Optuna's default 25)"})
        prior_weight: float = dataclasses.field(
            default=1.0, metadata={"help": "weight of the uniform prior in both Parzen estimators"})
        consider_endpoints: bool = dataclasses.field(
            default=False, metadata={"help": "let the kernels of the extreme values reach the space's bounds"})
        group: bool = dataclasses.field(
            default=False, metadata={"help": "decompose the space into groups of co-occurring parameters "
                                             "(needs multivariate)"})

        def __post_init__(self) -> None:
            if self.n_startup_trials < 0 or self.n_ei_candidates < 1:
                raise ValueError("need n_startup_trials >= 0 and n_ei_candidates >= 1")
            if not 0 < self.gamma <= 1 or self.gamma_cap < 1:
                raise ValueError(f"need 0 < gamma <= 1 (got {self.gamma}) and gamma_cap >= 1 (got {self.gamma_cap})")
            if self.prior_weight <= 0:
                raise ValueError(f"prior_weight={self.prior_weight} must be > 0")
            if self.group and not self.multivariate:
                raise ValueError("group=True needs multivariate=True")

    def _make_sampler(self):
        import optuna

        self.use_constraints = self.params.constraints
        p = self.params
        # Optuna 4.9 deprecated gamma, prior_weight and consider_endpoints (removal planned for
        # 6.0); they are passed only when set away from their defaults (the same sampler as
        # Optuna's own defaults), so a default TPE keeps working when they are gone.
        kw: dict[str, Any] = {}
        if (p.gamma, p.gamma_cap) != (0.1, 25):
            kw["gamma"] = _Gamma(p.gamma, p.gamma_cap)
        if p.prior_weight != 1.0:
            kw["prior_weight"] = p.prior_weight
        if p.consider_endpoints:
            kw["consider_endpoints"] = True
        try:
            return optuna.samplers.TPESampler(
                n_startup_trials=p.n_startup_trials, n_ei_candidates=p.n_ei_candidates,
                multivariate=p.multivariate, seed=self.seed, group=p.group, **kw,
            )
        except TypeError as e:  # a knob this Optuna no longer has
            raise BadHyperparameter(
                f"tpe: {', '.join(sorted(kw))} not supported by optuna {optuna.__version__} ({e}); "
                "use the default"
            ) from None


@dataclasses.dataclass(frozen=True)
class _Gamma:
    """TPE's size of the 'good' group for ``n`` trials: ``min(ceil(frac * n), cap)``
    (Optuna's default is frac=0.1, cap=25); a picklable callable."""

    frac: float
    cap: int

    def __call__(self, n: int) -> int:
        return min(math.ceil(self.frac * n), self.cap)


class CmaEs(OptunaAgent):
    """Optuna's CMA-ES sampler (with margin for discrete parameters)."""

    name = "cmaes"
    use_constraints = False  # CmaEsSampler ignores constraints (and warns)

    @dataclasses.dataclass(frozen=True)
    class Params:
        """Hyperparameters of Optuna's CmaEsSampler."""

        sigma0: float = dataclasses.field(
            default=0.0, metadata={"help": "initial step size in the unit box (0 = Optuna's default, 1/6)"})
        popsize: int = dataclasses.field(default=0, metadata={"help": "population size (0 = 4 + 3 ln d)"})
        n_startup_trials: int = dataclasses.field(default=1, metadata={"help": "random designs before CMA-ES"})
        with_margin: bool = dataclasses.field(
            default=True, metadata={"help": "CMA-ES with margin (keeps discrete parameters from freezing)"})
        categorical_as_ordinal: bool = dataclasses.field(
            default=True, metadata={"help": "model categorical parameters as integer indices (else sampled at random)"})
        dedupe: bool = dataclasses.field(default=True, metadata={"help": _DEDUPE_HELP})

        def __post_init__(self) -> None:
            if self.sigma0 < 0 or self.popsize < 0 or self.n_startup_trials < 0:
                raise ValueError("sigma0, popsize and n_startup_trials must be >= 0")

    def __init__(self, space, **kw: Any) -> None:
        require("cmaes", agent="cmaes", extra=None)  # a core dependency
        super().__init__(space, **kw)

    def _distribution(self, param, all_dists):
        if not param.ordered and self.params.categorical_as_ordinal:
            import optuna

            return optuna.distributions.IntDistribution(0, param.size - 1)
        return all_dists[param.name]

    def _make_sampler(self):
        import optuna

        p = self.params
        return optuna.samplers.CmaEsSampler(
            sigma0=p.sigma0 or None, popsize=p.popsize or None, n_startup_trials=p.n_startup_trials,
            with_margin=p.with_margin, seed=self.seed, warn_independent_sampling=False,
        )


class NSGA2(OptunaAgent):
    """Optuna's NSGA-II over the objective's weighted metrics (a Pareto front)."""

    name = "nsga2"
    multi_objective = True

    @dataclasses.dataclass(frozen=True)
    class Params:
        """Hyperparameters of Optuna's NSGAIISampler."""

        population_size: int = dataclasses.field(default=16, metadata={"help": "designs per generation"})
        mutation_prob: float = dataclasses.field(
            default=0.0, metadata={"help": "per-parameter mutation probability (0 = 1/number of parameters)"})
        crossover_prob: float = dataclasses.field(default=0.9, metadata={"help": "probability of crossover"})
        swapping_prob: float = dataclasses.field(default=0.5, metadata={"help": "uniform-crossover swap probability"})
        constraints: bool = dataclasses.field(
            default=True, metadata={"help": "feasibility and targets as constraints (constrained domination)"})
        dedupe: bool = dataclasses.field(default=True, metadata={"help": _DEDUPE_HELP})

        def __post_init__(self) -> None:
            if self.population_size < 2:
                raise ValueError(f"population_size={self.population_size} must be >= 2")
            for k in ("mutation_prob", "crossover_prob", "swapping_prob"):
                if not 0.0 <= getattr(self, k) <= 1.0:
                    raise ValueError(f"{k}={getattr(self, k)} must be in [0, 1]")

    def _make_sampler(self):
        import optuna

        p = self.params
        self.use_constraints = p.constraints
        return optuna.samplers.NSGAIISampler(
            population_size=p.population_size, mutation_prob=p.mutation_prob or None,
            crossover_prob=p.crossover_prob, swapping_prob=p.swapping_prob, seed=self.seed,
        )


class GP(OptunaAgent):
    """Optuna's Gaussian-process sampler (logEI; needs torch).  Cost grows with the
    number of trials: keep GP runs to a few hundred evaluations."""

    name = "gp"

    @dataclasses.dataclass(frozen=True)
    class Params:
        """Hyperparameters of Optuna's GPSampler."""

        n_startup_trials: int = dataclasses.field(default=10, metadata={"help": "random designs before the GP is used"})
        constraints: bool = dataclasses.field(
            default=False, metadata={"help": "model feasibility with a second GP (slower; else a penalty score)"})
        dedupe: bool = dataclasses.field(default=True, metadata={"help": _DEDUPE_HELP})

        def __post_init__(self) -> None:
            if self.n_startup_trials < 0:
                raise ValueError(f"n_startup_trials={self.n_startup_trials} must be >= 0")

    def __init__(self, space, **kw: Any) -> None:
        require("torch", agent="gp", extra="gp")
        super().__init__(space, **kw)

    def _make_sampler(self):
        import optuna

        self.use_constraints = self.params.constraints
        return optuna.samplers.GPSampler(
            n_startup_trials=self.params.n_startup_trials, deterministic_objective=True, seed=self.seed,
            warn_independent_sampling=False,
        )
