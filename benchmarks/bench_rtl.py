"""Long cosimulation: every datapath's Verilog against its Python model on >= 10,000 vectors.

Usage::

    python benchmarks/bench_rtl.py [--vectors 10000] [--simulator verilator] [--seed 0]

For each configuration: edge cases + N seeded random vectors in one simulation run, every
output bit and every cycle compared. Prints a Markdown table (vectors, cycles, build time
with an empty cache and cached, model time, simulation time, PASS/FAIL) and exits 1 if any
configuration mismatches. Builds go to a fresh temporary cache, so the first build includes
compiling Verilator's runtime once.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from archgym import rtl

CONFIGS = [
    ("systolic-pe", {}),
    ("systolic-array", {}),                                   # os 4 x 4, int8, acc 32
    ("systolic-array", {"dataflow": "ws", "acc_bits": 16}),   # ws 4 x 4, narrow sums wrap
    ("bitmod-pe", {}),                                        # FP4-ext, group 128, INT8 scales
    ("bitmod-pe", {"bits": 8, "group": 16, "scale": "fp16", "rounding": "truncate"}),
    ("bitmod-pe", {"bits": 3, "group": 4}),                   # dequant longer than a group: stalls
    ("smmw-lane", {}),                                        # the paper's 32/16-bit lane
    ("smmw-lane", {"drain_every": 300, "allow_unsafe_drain": True}),
    ("ternary-acc", {}),                                      # 24-bit accumulator
    ("ternary-acc", {"acc_bits": 12}),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=10_000)
    ap.add_argument("--simulator", default="verilator")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print("| datapath | parameters | vectors | cycles | build s (empty cache) | build s (cached) | model s | "
          "simulation s | result |")
    print("|---|---|---|---|---|---|---|---|---|")
    failed = 0
    with tempfile.TemporaryDirectory(prefix="archgym-bench-rtl-") as cache:
        for name, raw in CONFIGS:
            rep = rtl.check(name, raw, vectors=args.vectors, seed=args.seed, simulator=args.simulator,
                            cache_dir=cache)
            again = rtl.check(name, raw, vectors=0, seed=args.seed, simulator=args.simulator, cache_dir=cache)
            assert again.cached
            params = ", ".join(f"{k}={v}" for k, v in raw.items()) or "defaults"
            print(f"| {name} | {params} | {rep.vectors:,} | {rep.cycles:,} | {rep.build_s:.1f} | 0 (hit) | "
                  f"{rep.model_s:.1f} | {rep.sim_s:.1f} | {'PASS' if rep.passed else 'FAIL'} |", flush=True)
            if not rep.passed:
                failed += 1
                print(rep.mismatch.format(), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
