"""What BO's models believe about the exact optimum at the end of a run (issue #19 item 3).

Run:  python benchmarks/diagnose_bo.py [--env archgym/AgileQuant-v0] [--seed 1] [--budget 200]
      (about 1 min for AgileQuant-v0 on an idle 2-core machine)
      python benchmarks/diagnose_bo.py --env ENV --path-from PARAM=VALUE,...
      (only the path to the optimum from its design with those parameters changed)

Drives the BO agent at its default hyperparameters through ask/evaluate/tell, then prints, at the
env's exact optimum (``archgym.optimum``) and at the run's best design: the objective GP's
prediction of log(ref/cost) with its standard deviation, each constraint model's probability of
being met (the targets, then feasibility), and the acquisition (EI x those probabilities); and
the largest acquisition over the candidates the agent would score next.  A model that predicts
the optimum well but whose acquisition never reaches it points at the acquisition optimiser; a
model that is confidently wrong there points at the surrogate.  Last, the path from the run's
best to the optimum: the best gap among the designs that change 1, 2, ... of the parameters in
which the two differ to the optimum's values, and the fewest simultaneous changes that improve
on the run's best (a trap that one- or two-parameter moves cannot leave shows here).
"""

from __future__ import annotations

import argparse
import itertools
import math

import numpy as np
from scipy.stats import norm

from agents.bo import BayesOpt
from archgym.cli import CliError, _parse_assignments
from archgym.optimum import optimum
from archgym.runner import make_evaluator


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="archgym/AgileQuant-v0")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--path-from", action="append", default=[], metavar="PARAM=VALUE",
                    help="no BO run: only the path to the optimum from the optimum's design with these "
                         "parameters changed (repeatable or comma-separated)")
    args = ap.parse_args(argv)
    ev = make_evaluator(args.env)
    obj = ev.objective
    opt = optimum(ev)
    if args.path_from:
        try:
            change = _parse_assignments(args.path_from, "--path-from")
        except CliError as e:
            ap.error(str(e))
        unknown = sorted(set(change) - set(opt.design))
        if unknown:
            ap.error(f"--path-from: unknown parameter {', '.join(unknown)}; allowed: {', '.join(opt.design)}")
        try:
            print(path_to_optimum(ev, {**opt.design, **change}, opt, "the given design"))
        except ValueError as e:  # a value the parameter does not take: one line, exit 2
            ap.error(str(e))
        return
    agent = BayesOpt(ev.space, seed=args.seed, objective=obj, budget=args.budget)
    best, best_design = math.inf, None
    for _ in range(args.budget):
        d = agent.ask()
        r = ev.evaluate(d)
        agent.tell(d, r.metrics, r.reward)
        if _cost(obj, r.metrics) < best:
            best, best_design = _cost(obj, r.metrics), dict(d)
    print(f"{args.env}, BO seed {args.seed}, {args.budget} evaluations: best cost {best:.6g}, "
          f"optimum {opt.cost:.6g} (gap {best / opt.cost - 1:.2%})")
    models = agent._fit()
    incumbent = int(np.nanargmax(np.where(agent._ok, agent._y, -np.inf)))
    at_opt = np.array([[int(ev.space.encode(opt.design)[j]) for j in agent._active]])
    names = [f"P({t}) met" for t in agent._targets] + (["P(feasible)"] if agent._feas_model else [])
    print("| design | predicted log(ref/cost) | true | " + " | ".join(names) + " | acquisition (EI) |")
    print("|---|---|---|" + "---|" * len(names) + "---|")
    m = ev.evaluate(opt.design).metrics
    true_opt = math.log((obj.ref or 1.0) / obj.cost(m))
    for label, x, true in (("optimum", at_opt, true_opt), ("run's best", np.array([agent._X[incumbent]]),
                                                           agent._y[incumbent])):
        mu, sd = models[0].predict(agent._encode(x), return_std=True)
        probs = [float(norm.cdf(-g[0] / max(s[0], 1e-9))) for g, s in
                 (cm.predict(agent._encode(x), return_std=True) for cm in models[1] if cm is not None)]
        acq = agent._acq(models, x)["EI"][0]
        print(f"| {label} | {mu[0]:.3f} +- {sd[0]:.3f} | {true:.3f} | " + " | ".join(f"{p:.2f}" for p in probs)
              + f" | {acq:.3g} |")
    cand = agent._candidates()
    print(f"largest acquisition over the {len(cand)} next candidates: {agent._acq(models, cand)['EI'].max():.3g}")
    if best_design is not None:
        print(path_to_optimum(ev, best_design, opt))


def _cost(obj, m) -> float:
    """The objective's cost of a result; infinity when infeasible or a target is missed."""
    return obj.cost(m) if m.feasible and obj.target_met(m) else math.inf


def path_to_optimum(ev, start: dict, opt, label: str = "the run's best") -> str:
    """The designs between ``start`` and the optimum: every subset of the parameters they
    differ in, set to the optimum's values.  Returns a table: per number of parameters changed,
    the best gap to the optimum and how many of those designs are infeasible (or miss a target);
    and the smallest number of simultaneous changes that improves on ``start``: a local search
    moving fewer parameters at a time cannot leave ``start`` towards the optimum."""
    obj = ev.objective
    diff = [k for k in start if start[k] != opt.design[k]]
    if not diff:
        return f"{label} is the optimum"
    if len(diff) > 12:
        return f"{label} differs from the optimum in {len(diff)} parameters (too many to enumerate)"

    def cost(d: dict) -> float:
        return _cost(obj, ev.evaluate(d).metrics)

    c0 = cost(start)
    verb = "parameters differ" if len(diff) > 1 else "parameter differs"
    lines = [f"from {label} to the optimum: {len(diff)} {verb} ({', '.join(diff)})",
             "| parameters changed | designs | best gap | infeasible or missing a target |", "|---|---|---|---|"]
    first = None
    for k in range(1, len(diff) + 1):
        cs = [cost({**start, **{p: opt.design[p] for p in sub}}) for sub in itertools.combinations(diff, k)]
        lo = min(cs)
        if first is None and lo < c0:
            first = k
        lines.append(f"| {k} | {len(cs)} | {lo / opt.cost - 1:.2%} | {sum(not math.isfinite(c) for c in cs)} |")
    if first is None:
        lines.append(f"no move towards the optimum improves on {label} ({c0 / opt.cost - 1:.2%})")
    else:
        lines.append(f"the smallest move towards the optimum that improves on {label} "
                     f"({c0 / opt.cost - 1:.2%}) changes {first} parameter{'s' if first != 1 else ''} at once")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
