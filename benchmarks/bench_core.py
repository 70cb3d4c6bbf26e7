"""Core speed benchmark: batched systolic evaluation, single-design latency, logging cost.

Run:  python benchmarks/bench_core.py            (about 30-40 s on 2 cores)

Prints a markdown table; benchmarks/README.md records the figures.  Every
figure is the median of several repeats measured in this one process, side by
side, on whatever machine runs it (machines are shared and noisy: compare
ratios, not absolute times across machines).
"""

from __future__ import annotations

import csv
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from archgym.workloads import Gemm, Workload

from archgym.runner import make_evaluator, run
from archgym.store import RunStore
from simulators.systolic import SystolicSimulator

WORKLOAD = "llama-2-7b/prefill"


def median_time(fn, repeats: int = 5) -> float:
    fn()  # warm-up (numba compilation / cache load)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def bench_batch(n_designs: int = 200_000) -> tuple[float, float]:
    sim = SystolicSimulator()
    idx = sim.design_space().sample_indices(np.random.default_rng(0), n_designs)
    n_layers = len(sim.gemms(WORKLOAD))
    t = median_time(lambda: sim.evaluate_batch(idx, WORKLOAD))
    return n_designs * n_layers / t, n_designs / t


def bench_single(n: int = 20_000) -> float:
    sim = SystolicSimulator()
    d = sim.default_design()

    def loop():
        for _ in range(n):
            sim.evaluate(d, WORKLOAD)

    return median_time(loop) / n


def bench_logging(budget: int = 20_000, pairs: int = 15) -> tuple[float, float, list[float]]:
    """Run loop without and with the SQLite run log, interleaved in ``pairs`` pairs so load
    drift hits both alike.  Returns (median eval/s without, median eval/s with, the
    per-pair logging cost per row in us)."""
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**9))

        def once(log: bool) -> float:
            ev = make_evaluator("archgym/Systolic-v0", workload="opt-125m/decode")
            t0 = time.perf_counter()
            if log:
                with RunStore(Path(tmp) / f"b{next(counter)}.db") as st:
                    run("archgym/Systolic-v0", "random", budget, seed=0, evaluator=ev, store=st)
            else:
                run("archgym/Systolic-v0", "random", budget, seed=0, evaluator=ev)
            return time.perf_counter() - t0

        once(False), once(True)  # warm-up
        t_no, t_log = [], []
        for _ in range(pairs):
            t_no.append(once(False))
            t_log.append(once(True))
    row_us = [(b - a) / budget * 1e6 for a, b in zip(t_no, t_log)]
    return budget / statistics.median(t_no), budget / statistics.median(t_log), row_us


def bench_vs_scalesim() -> list[tuple[str, int, float, float]]:
    """The layers timed with the real SCALE-Sim (benchmarks/scalesim_timing.csv, made by
    benchmarks/time_scalesim.py), evaluated here in mode='scalesim' on the same array."""
    path = Path(__file__).with_name("scalesim_timing.csv")
    out = []
    for row in csv.DictReader(path.open()):
        if not row["total_cycles"] or not row["wall_s_median"] or not row["M"]:
            continue  # a run that did not finish, or a whole topology file (bench_systolic.py times those)
        M, N, K, R, C = (int(row[k]) for k in ("M", "N", "K", "rows", "cols"))
        sim = SystolicSimulator(mode="scalesim", max_area_mm2=1e9)
        wl = Workload(row["layer"], (Gemm(row["layer"], M, K, N),))
        design = {**sim.default_design(), "rows": R, "cols": C, "dataflow": row["dataflow"]}
        m = sim.evaluate(design, wl)
        assert m.cycles == int(row["total_cycles"]), (row["layer"], m.cycles, row["total_cycles"])
        n = 20000
        t = median_time(lambda: [sim.evaluate(design, wl) for _ in range(n)], 3) / n
        out.append((row["layer"], m.cycles, float(row["wall_s_median"]), t))
    return out


def main() -> None:
    layers_per_s, designs_per_s = bench_batch()
    single = bench_single()
    no_log, with_log, row_us_pairs = bench_logging()
    print("| figure | value |")
    print("|---|---|")
    print(f"| batched systolic layer-evaluations/s (`evaluate_batch`, {WORKLOAD}) | {layers_per_s:,.0f} |")
    print(f"| batched designs/s ({WORKLOAD}, whole model) | {designs_per_s:,.0f} |")
    print(f"| one {WORKLOAD} evaluation of one design (`evaluate`) | {single * 1e6:.1f} us |")
    print(f"| run loop, random agent, no run log | {no_log:,.0f} eval/s |")
    print(f"| run loop, random agent, SQLite run log | {with_log:,.0f} eval/s |")
    row_us = statistics.median(row_us_pairs)
    spread = ", ".join(f"{x:.1f}" for x in sorted(row_us_pairs))
    print(f"| logging overhead at this loop's rate (medians) | {(no_log / with_log - 1) * 100:.1f} % |")
    print(f"| logging cost per row, median of {len(row_us_pairs)} interleaved pairs ({spread}) | {row_us:.1f} us |")
    print(f"| logging overhead at 10,000 eval/s (= cost per row / 100 us) | {row_us:.1f} % |")
    print()
    print("| layer (SCALE-Sim timing) | cycles (both agree) | SCALE-Sim 3.0.0 wall | archgym `evaluate` | speed ratio |")
    print("|---|---|---|---|---|")
    for name, cycles, t_ss, t_ours in bench_vs_scalesim():
        print(f"| {name} | {cycles:,} | {t_ss:,.3f} s | {t_ours * 1e6:.1f} us | {t_ss / t_ours:,.0f}x |")


if __name__ == "__main__":
    main()
