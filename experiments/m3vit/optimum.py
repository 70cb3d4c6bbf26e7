"""The exact optimum of M3ViT-v0's default objective: every one of its 11,059,200 designs evaluated.

Run:  python experiments/m3vit/optimum.py [--workload pascal] [--out experiments/m3vit/results]

Uses :func:`archgym.sweep.exhaustive` (the batched numba kernel over the whole space, then
the best candidates re-evaluated one by one through the evaluator every agent uses) and
writes ``optimum.md``: the optimum design and its metrics, how many designs are feasible and
how many lie within 1 % of the optimum's cost, the exact Pareto front of the objective's two
metrics, and the wall time.  The env's objective is ``energy_j*onchip_bytes`` (registry), with
the energy from the resource power model (experiments/m3vit/calibration.md, "Power").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from archgym.runner import make_evaluator
from archgym.sweep import exhaustive

HERE = Path(__file__).parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default=None, help="workload (default: the env's, pascal)")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="output folder")
    args = ap.parse_args()
    ev = make_evaluator("archgym/M3ViT-v0", workload=args.workload)
    ev.simulator.evaluate_batch(ev.space.sample_indices(np.random.default_rng(0), 10), ev.workload)  # compile first
    t0 = time.perf_counter()
    opt = exhaustive(ev, keep_costs=True)
    wall = time.perf_counter() - t0
    costs = np.asarray(opt.costs)
    within = int(np.count_nonzero(costs <= opt.cost * 1.01))
    m = ev.evaluate(opt.design).metrics
    paper = ev.evaluate(ev.default_design)
    lines = [
        "# M3ViT-v0: exact optimum of the default objective", "",
        f"Command: `python experiments/m3vit/optimum.py`{' --workload ' + args.workload if args.workload else ''}; "
        f"objective `{ev.objective}` on workload "
        f"`{ev.workload.source}`.", "",
        f"- designs evaluated: {opt.n_designs:,} in {wall:.1f} s ({opt.n_designs / wall:,.0f} designs/s, "
        "numba `evaluate_batch` + rewards + the exact Pareto front)",
        f"- feasible: {opt.n_feasible:,}; within 1 % of the optimum's cost: {within:,}",
        f"- optimum: `{opt.design}`",
        f"- its cost (energy_j x onchip_bytes): {opt.cost:.6g} J B; reward {opt.reward:.6f}",
        f"- the paper's design: cost {ev.objective.cost(paper.metrics):.6g} J B "
        f"({ev.objective.cost(paper.metrics) / opt.cost:.2f}x the optimum's)", "",
        "| metric | optimum | paper's design |", "|---|---|---|",
    ]
    for k in ("latency_s", "energy_j", "power_w", "onchip_bytes", "dram_bytes", "dsp_count", "utilization_frac"):
        lines.append(f"| {k} | {m.get(k):.6g} | {paper.metrics.get(k):.6g} |")
    lines += ["", f"Exact Pareto front of {opt.front['x']} vs {opt.front['y']} over the feasible designs:", "",
              f"| {opt.front['x']} | {opt.front['y']} |", "|---|---|"]
    lines += [f"| {x:.6g} | {y:.6g} |" for x, y in zip(opt.front["xs"], opt.front["ys"])]
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"optimum{'_' + args.workload.replace('/', '_') if args.workload else ''}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
