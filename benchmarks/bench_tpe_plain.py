"""Optuna's TPE in a plain Optuna loop, no archgym agent in between: a cross-check of the
TPE figures of ``bench_agents.py``.

Run:  python benchmarks/bench_tpe_plain.py [--seeds 20] [--budget 200] [--envs ENV_ID ...]

For every enumerable env (as in ``bench_agents.py``) the exhaustive cost of every design is
computed once; then, per seed, a study with ``optuna.samplers.TPESampler(seed=seed,
multivariate=True)`` (Optuna 5's default for one objective, and the ``tpe`` agent's) and
otherwise Optuna's defaults is driven by hand: each trial suggests
every non-pinned parameter as an integer index, is told ``log(cost / optimum cost)``
(minimised), and an infeasible or target-missing design is marked with
``trial.set_constraint`` (Optuna's way; TPE ranks such trials after every feasible one).
The budget counts distinct designs, as archgym's run loop does: a design TPE proposes again
is told its known value and costs nothing (at most 20 x budget asks per run).

Prints, per env, the seeds that reach within 1 % of the optimum and the median gap.  If
these match the ``tpe`` agent's figures, a shortfall is the sampler's, not archgym's wrapper's.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from bench_agents import THRESHOLD, enumerable_optima


def plain_tpe(costs: np.ndarray, nvec: tuple[int, ...], names: tuple[str, ...], best_cost: float, seed: int,
              budget: int) -> tuple[int | None, float]:
    """One plain Optuna TPE run over a table of design costs (``inf`` = infeasible or
    target missed), row-major over ``nvec``.  Returns the number of distinct designs
    evaluated when the best first came within THRESHOLD of ``best_cost`` (None if never)
    and the final gap ``best / best_cost - 1``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True))
    active = [j for j, n in enumerate(nvec) if n > 1]
    seen: set[int] = set()
    best, hit = math.inf, None
    for _ in range(20 * budget):
        if len(seen) >= budget:
            break
        trial = study.ask()
        idx = [0] * len(nvec)
        for j in active:
            idx[j] = trial.suggest_int(names[j], 0, nvec[j] - 1)
        flat = int(np.ravel_multi_index(idx, nvec))
        cost = float(costs[flat])
        if flat not in seen:
            seen.add(flat)
            best = min(best, cost)
            if hit is None and best <= best_cost * (1 + THRESHOLD):
                hit = len(seen)
        feasible = math.isfinite(cost)
        trial.set_constraint("feasible", 0.0 if feasible else 1.0)
        # an infeasible trial's value is not used by TPE (it ranks by the violation)
        study.tell(trial, math.log(cost / best_cost) if feasible else 0.0)
    return hit, best / best_cost - 1.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--envs", nargs="*", help="env ids (default: every enumerable registered env)")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args(argv)
    print(f"plain Optuna TPESampler(multivariate=True), {args.seeds} seeds, budget {args.budget}")
    rows = []
    with ProcessPoolExecutor(args.workers) as pool:
        for entry, ev, o in enumerable_optima(args.envs):
            nvec = tuple(int(n) for n in ev.space.nvec)
            names = tuple(p.name for p in ev.space.params)
            futs = [pool.submit(plain_tpe, o.costs, nvec, names, o.cost, s, args.budget)
                    for s in range(args.seeds)]
            res = [f.result() for f in futs]
            hits = [h for h, _ in res if h is not None]
            gaps = [g for _, g in res]
            rows.append(f"| {entry.id} | {len(hits)}/{args.seeds} | "
                        f"{f'{statistics.median(hits):g}' if hits else '-'} | {100 * statistics.median(gaps):.2f}% |")
    print("| env | seeds within 1% | median evals to 1% | median gap |\n|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
