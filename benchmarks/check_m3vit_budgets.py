"""M3ViT-v0's declared budgets against the simulator on the whole grid.

Run:  python benchmarks/check_m3vit_budgets.py [WORKLOAD ...]   (default: pascal pascal-dense nyud/depth;
      about 15 s per workload on 2 cores)

For every one of the 11,059,200 designs, ``DesignSpace.feasible_mask`` with the declared rules
(``top_k`` and ``M3ViTSimulator.workload_constraints``: tile, dsp, memory) must equal the batched
kernel's feasibility (``evaluate_batch``), which tests/test_m3vit_batch.py checks against the slow
reference path.  Prints the counts and exits 1 on any mismatch.  tests/test_declared_constraints.py
checks the same, rule by rule, on random designs.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from archgym.runner import make_evaluator


def main(argv: list[str] | None = None) -> int:
    workloads = (sys.argv[1:] if argv is None else argv) or ["pascal", "pascal-dense", "nyud/depth"]
    bad_total = 0
    for wl in workloads:
        ev = make_evaluator("archgym/M3ViT-v0", workload=wl)
        space, sim = ev.space, ev.simulator
        nvec = list(space.nvec)
        total, bad, feasible, t0 = int(np.prod(nvec)), 0, 0, time.perf_counter()
        for lo in range(0, total, 1 << 20):
            idx = np.stack(np.unravel_index(np.arange(lo, min(total, lo + (1 << 20))), nvec), axis=1)
            f = sim.evaluate_batch(idx, ev.workload)["feasible"]
            bad += int((space.feasible_mask(idx) != f).sum())
            feasible += int(f.sum())
        bad_total += bad
        print(f"{wl}: {total:,} designs, {feasible:,} feasible, {bad} where the declared rules disagree "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return 1 if bad_total else 0


if __name__ == "__main__":
    sys.exit(main())
