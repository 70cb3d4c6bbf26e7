"""AgileQuant-v0: the one-design loop vs the batched kernel, side by side, and the exact optimum.

Run:  python benchmarks/bench_agile_quant.py [--designs 1000000] [--loop 2000] [--reps 5]

Prints (figures recorded in benchmarks/README.md):

* designs/s of ``evaluate`` in a loop (the reference path an unbatched sweep takes, on
  ``--loop`` random designs) and of ``evaluate_batch`` (per-group tables + one numba lookup per
  design, on ``--designs`` random designs), medians of ``--reps`` runs, and their ratio;
* the time to build one workload's tables (once per workload and simulator);
* the wall time of :func:`simulators.agile_quant_optimum.exact_optimum` on the env's default
  objective for two workloads (first call in the process, then the median of ``--reps`` warm
  calls; the first includes building the tables, not numba compilation, which is cached on disk).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from archgym.runner import make_evaluator
from simulators.agile_quant_optimum import exact_optimum

ENV = "archgym/AgileQuant-v0"


def _median(f, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--designs", type=int, default=1_000_000)
    ap.add_argument("--loop", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    ev = make_evaluator(ENV)
    sim, space, w = ev.simulator, ev.space, ev.workload
    idx = space.sample_indices(np.random.default_rng(0), args.designs)
    designs = [space.decode(i) for i in idx[: args.loop]]
    sim.evaluate_batch(idx[:10], w)                    # tables and numba compilation out of the timing
    loop = _median(lambda: [sim._evaluate(d, w) for d in designs], args.reps) / len(designs)
    batch = _median(lambda: sim.evaluate_batch(idx, w), args.reps) / len(idx)
    print(f"| path | designs/s ({w.source}) |\n|---|---|")
    print(f"| `evaluate` loop (reference, {len(designs):,} designs) | {1 / loop:,.0f} |")
    print(f"| `evaluate_batch` (numba tables, {len(idx):,} designs) | {1 / batch:,.0f} |")
    print(f"| ratio | {loop / batch:,.0f}x |")
    fresh = type(sim)()
    fresh.tables("llama-7b/prefill")
    print(f"\ntables of one workload (llama-7b/prefill, error tables warm): "
          f"{_median(lambda: type(sim)().tables('llama-7b/prefill'), args.reps):.3f} s")
    print("\n| workload | designs | exact optimum (latency_s) | first call | warm median | assignments priced |")
    print("|---|---|---|---|---|---|")
    for wl in ("opt-1.3b/prefill", "llama-7b/prefill"):
        e = make_evaluator(ENV, workload=wl)
        t0 = time.perf_counter()
        o = exact_optimum(e)
        first = time.perf_counter() - t0
        warm = _median(lambda: exact_optimum(e), args.reps)
        print(f"| {wl} | {o.n_designs:,} | {o.metrics.latency_s:.4g} s (reward {o.reward:.6f}) | {first:.2f} s | "
              f"{warm:.2f} s | {o.n_examined:,} |")


if __name__ == "__main__":
    main()
