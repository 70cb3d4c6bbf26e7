"""Evaluation speed of every registered env's simulator, side by side in one run.

Run:  python benchmarks/bench_envs.py [--designs 20000]

For each registered id: the median time of one ``evaluate`` of a random design on
the env's default workload, and ``evaluate_batch`` throughput in designs/s (the
numba kernels where a simulator has them; the generic loop otherwise).  Where a
simulator has a kernel, the generic loop (``Simulator.evaluate_batch``, what the env
had before its kernel) is timed in the same run on the first 1,000 of the same
designs, and the speed-up is kernel / loop.  Prints a markdown table (see
benchmarks/README.md for recorded figures).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import archgym
from archgym.runner import make_evaluator
from archgym.simulator import Simulator


def bench(env_id: str, n_designs: int) -> tuple[str, float, float, bool, float]:
    """(workload, median evaluate seconds, batch designs/s, has a kernel, generic-loop designs/s)."""
    ev = make_evaluator(env_id)
    sim, space, wl = ev.simulator, ev.space, ev.workload
    rng = np.random.default_rng(0)
    idx = space.sample_indices(rng, n_designs)
    designs = [space.decode(i) for i in idx[:2000]]
    # timed on designs the simulator's own space allows (not the workload's declared budgets,
    # which would leave only designs that run the whole model): the mix the figures were measured on
    own = sim.design_space()
    feasible = [d for d in designs if own.is_feasible(d)] or designs
    sim.evaluate(feasible[0], wl)
    times = []
    for d in feasible[:2000]:
        t0 = time.perf_counter()
        sim.evaluate(d, wl)
        times.append(time.perf_counter() - t0)
    batched = type(sim).evaluate_batch is not Simulator.evaluate_batch
    sim.evaluate_batch(idx[:100], wl)
    n = n_designs if batched else min(n_designs, 2000)
    reps = []
    for _ in range(3):
        t0 = time.perf_counter()
        sim.evaluate_batch(idx[:n], wl)
        reps.append(time.perf_counter() - t0)
    rate = n / statistics.median(reps)
    loop_rate = rate
    if batched:   # the generic loop over evaluate, side by side
        n_loop = min(n, 1000)
        loop = []
        for _ in range(3):
            t0 = time.perf_counter()
            Simulator.evaluate_batch(sim, idx[:n_loop], wl)
            loop.append(time.perf_counter() - t0)
        loop_rate = n_loop / statistics.median(loop)
    return wl.source, statistics.median(times), rate, batched, loop_rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--designs", type=int, default=20000)
    args = ap.parse_args()
    print("| env | workload | `evaluate` median | `evaluate_batch` designs/s | batched kernel | generic loop designs/s "
          "| speed-up |")
    print("|---|---|---|---|---|---|---|")
    for env_id in archgym.env_ids():
        try:
            wl, single, rate, batched, loop_rate = bench(env_id, args.designs)
        except ImportError as e:
            print(f"| {env_id} | (skipped: {e}) | | | | | |")
            continue
        print(f"| {env_id} | {wl} | {single * 1e6:,.1f} us | {rate:,.0f} | {'numba' if batched else 'loop'} "
              f"| {loop_rate:,.0f} | {rate / loop_rate:,.0f}x |")


if __name__ == "__main__":
    main()
