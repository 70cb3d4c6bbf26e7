"""Systolic model: speed with the mapper (issue #15 item 4, issue #13 item 5) and its properties
counted over >= 100,000 (design, workload) pairs (issue #15 item 2).

Run:  python benchmarks/bench_systolic.py               (speed + properties, about 2-4 min)
      python benchmarks/bench_systolic.py --only speed  (or --only properties)

Prints markdown tables; benchmarks/README.md records them.  Speed figures are medians of
repeats measured side by side in this one process; each is given in wall time and in this
process's CPU time (the machine is shared: CPU time is what other jobs do not inflate).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from archgym.runner import make_evaluator
from archgym.sweep import exhaustive
from simulators import _systolic_kernels as kern
from simulators.systolic import SystolicSimulator, _derive
from simulators._systolic_user import user_mode

ROOT = Path(__file__).resolve().parent.parent
WORKLOAD = "llama-2-7b/prefill"
TOPOLOGY = ROOT / "tests" / "data" / "scalesim_topologies" / "conv_nets" / "Googlenet.csv"


def timed(fn, repeats: int = 5) -> tuple[float, float]:
    """(median wall s, median CPU s) of ``fn`` after one warm-up call."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


# --- speed -----------------------------------------------------------------------------
def bench_batch(n: int = 200_000) -> list[tuple]:
    """evaluate_batch on llama-2-7b/prefill: mapper vs fixed mapping, side by side."""
    rows = []
    idx = SystolicSimulator().design_space().sample_indices(np.random.default_rng(0), n)
    for mapping in ("best", "fixed"):
        sim = SystolicSimulator(mapping=mapping)
        n_layers, n_shapes = len(sim.gemms(WORKLOAD)), len(sim.distinct_gemms(WORKLOAD))
        wall, cpu = timed(lambda: sim.evaluate_batch(idx, WORKLOAD))
        rows.append((mapping, n_layers, n_shapes, n * n_layers / wall, n * n_layers / cpu, wall / n * 1e6,
                     cpu / n * 1e6))
    return rows


def bench_single(n: int = 5000) -> list[tuple]:
    """One design through evaluate() (checked path, breakdown built lazily, not read)."""
    out = []
    for mapping in ("best", "fixed"):
        sim = SystolicSimulator(mapping=mapping)
        d, w = sim.default_design(), sim.workload(WORKLOAD)
        wall, cpu = timed(lambda: [sim.evaluate(d, w) for _ in range(n)], 3)
        out.append((mapping, wall / n * 1e6, cpu / n * 1e6))
    return out


def bench_exhaustive() -> list[tuple]:
    """Systolic-v0's whole space (2,332,800 designs) through archgym.sweep.exhaustive."""
    out = []
    for mapping in ("best", "fixed"):
        ev = make_evaluator("archgym/Systolic-v0", simulator_kwargs={"mapping": mapping})
        c0 = time.process_time()
        opt = exhaustive(ev)
        out.append((mapping, opt.n_designs, opt.wall_s, time.process_time() - c0, opt.design))
    return out


def bench_topology(n: int = 200_000) -> dict:
    """Googlenet.csv (58 layers): batched kernel rate; archgym eval vs SCALE-Sim 3.0.0 on the file."""
    path = str(TOPOLOGY)
    res = {}
    idx = SystolicSimulator().design_space().sample_indices(np.random.default_rng(1), n)
    for mapping in ("best", "fixed"):
        sim = SystolicSimulator(mapping=mapping)
        layers = len(sim.gemms(path))
        wall, cpu = timed(lambda: sim.evaluate_batch(idx, path), 3)
        res[mapping] = (layers, len(sim.distinct_gemms(path)), n * layers / wall, n * layers / cpu)
    # the same file in SCALE-Sim's mode on the array SCALE-Sim was timed on
    # (CALC-mode cycles do not depend on the SRAM sizes; the largest on the env's grid, so the CLI takes them)
    sim = SystolicSimulator(mode="scalesim")
    d = {**sim.default_design(), "rows": 32, "cols": 32, "dataflow": "ws", "ifmap_sram_kb": 1024,
         "filter_sram_kb": 1024, "ofmap_sram_kb": 512}
    m = sim.evaluate(d, path)
    wall, cpu = timed(lambda: [sim.evaluate(d, path) for _ in range(200)], 3)
    res["scalesim_cycles"] = m.cycles
    res["evaluate_s"] = (wall / 200, cpu / 200)
    cmd = [sys.executable, "-m", "archgym", "eval", "archgym/Systolic-v0", "rows=32", "cols=32", "dataflow=ws",
           "ifmap_sram_kb=1024", "filter_sram_kb=1024", "ofmap_sram_kb=512", "--workload", path,
           "--sim-opt", "mode=scalesim"]
    walls = []
    for _ in range(3):
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        walls.append(time.perf_counter() - t0)
    assert f"cycles = {m.cycles:,} cycles" in out, out
    res["cli_s"] = statistics.median(walls)
    for row in csv.DictReader((ROOT / "benchmarks" / "scalesim_timing.csv").open()):
        if row["layer"] == "file:conv_nets/Googlenet.csv" and row["dataflow"] == "ws":
            res["scalesim_row"] = row
    return res


def bench_user_vs_zoo(n: int = 200_000) -> list[tuple]:
    """A user workload (a GEMM topology CSV with the zoo workload's 10 GEMM shapes, no repeat
    counts) costs what the zoo workload costs."""
    sim = SystolicSimulator()
    g = sim.gemms(WORKLOAD)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "user.csv"
        path.write_text("Layer, M, N, K,\n" + "".join(f"l{i}, {m}, {nn}, {k},\n" for i, (m, k, nn, _c) in enumerate(g)))
        idx = sim.design_space().sample_indices(np.random.default_rng(2), n)
        out = []
        for name, w in ((WORKLOAD, WORKLOAD), ("user CSV, same 10 GEMMs", str(path))):
            wl = sim.workload(w)
            wall, cpu = timed(lambda: sim.evaluate_batch(idx, wl))
            d = sim.default_design()
            w1, c1 = timed(lambda: [sim.evaluate(d, wl) for _ in range(5000)], 3)
            out.append((name, len(wl.gemm_array()), wall / n * 1e6, cpu / n * 1e6, w1 / 5000 * 1e6, c1 / 5000 * 1e6))
    return out


def bench_user_mode() -> tuple:
    """The USER-mode walk on SCALE-Sim's CI layer (256x128x256, 32x32 os): demand lines per second."""
    lines = 4 * 8 * (256 + 32 + 32 - 2)  # folds x lines per fold (os)
    wall, cpu = timed(lambda: user_mode(256, 128, 256, 32, 32, "os", 64, 64, 64, 10), 3)
    return lines, wall, cpu


# --- properties --------------------------------------------------------------------------
PROPERTY_WORKLOADS = ("llama-2-7b/prefill", "opt-1.3b/prefill", "phi-2/prefill",
                      "llama-2-7b/decode", "opt-1.3b/decode", "phi-2/decode")


def evaluate_arrays(sim: SystolicSimulator, gemms: np.ndarray, d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The batched kernel on raw parameter arrays (values may leave the env's grid, e.g. rows=512)."""
    i64 = {k: np.asarray(v, dtype=np.int64) for k, v in d.items() if k not in ("dataflow", "clock_mhz")}
    df = np.asarray([("os", "ws", "is").index(x) for x in d["dataflow"]], dtype=np.int64)
    res = kern.batch_eval(gemms, i64["rows"], i64["cols"], df, i64["ifmap_sram_kb"] * 8192,
                          i64["filter_sram_kb"] * 8192, i64["ofmap_sram_kb"] * 8192, i64["dram_bw_bytes"] * 8,
                          i64["act_bits"], i64["weight_bits"], sim._code)
    out = _derive(res[:, :8].T, res[:, 8], res[:, 9], d["rows"], d["cols"], np.asarray(d["dataflow"]),
                  d["ifmap_sram_kb"], d["filter_sram_kb"], d["ofmap_sram_kb"], d["clock_mhz"], d["act_bits"],
                  d["weight_bits"], sim._mode)
    out["cycles"] = res[:, 1]
    out["passes"] = res[:, 9]
    return out


def properties(n_designs: int = 20_000) -> dict:
    """Count each property over len(PROPERTY_WORKLOADS) x n_designs pairs, per mapping."""
    report = {}
    for mapping in ("best", "fixed"):
        sim = SystolicSimulator(mapping=mapping)
        space = sim.design_space()
        rng = np.random.default_rng(20261203)
        c = {k: 0 for k in ("pairs", "sram_worse", "bw_worse", "latency_neq", "energy_down", "energy_pairs")}
        dbl = {key: dict(worse=0, bound_fail=0, bound_fail_same_bits=0, over10_prefill=0, prefill=0, worst=0.0,
                         worst_prefill=0.0) for key in ("rows", "cols")}
        for wl in PROPERTY_WORKLOADS:
            idx = space.sample_indices(rng, n_designs)
            d = {p.name: np.asarray(p.values, dtype=object)[idx[:, j]] for j, p in enumerate(space.params)}
            d = {k: (v.astype(str) if k == "dataflow" else v.astype(float if k == "clock_mhz" else np.int64))
                 for k, v in d.items()}
            g = sim.distinct_gemms(wl)
            base = evaluate_arrays(sim, g, d)
            c["pairs"] += n_designs
            prefill = wl.endswith("prefill")
            for key in ("rows", "cols"):
                new = evaluate_arrays(sim, g, {**d, key: d[key] * 2})
                ratio = new["latency_s"] / base["latency_s"]
                grow = 2 * d["rows"] if key == "rows" else d["cols"]
                bound_ok = new["cycles"] <= base["cycles"] + base["passes"] * grow
                same_bits = new["dram_bytes"] == base["dram_bytes"]
                s = dbl[key]
                s["worse"] += int((ratio > 1).sum())
                s["bound_fail"] += int((~bound_ok).sum())
                s["bound_fail_same_bits"] += int((~bound_ok & same_bits).sum())
                s["worst"] = max(s["worst"], float(ratio.max()))
                if prefill:
                    s["prefill"] += n_designs
                    s["over10_prefill"] += int((ratio > 1.10).sum())
                    s["worst_prefill"] = max(s["worst_prefill"], float(ratio.max()))
            for key in ("ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb"):
                new = evaluate_arrays(sim, g, {**d, key: d[key] * 2})
                c["sram_worse"] += int((new["dram_bytes"] > base["dram_bytes"]).sum())
            new = evaluate_arrays(sim, g, {**d, "dram_bw_bytes": d["dram_bw_bytes"] * 2})
            c["bw_worse"] += int((new["cycles"] > base["cycles"]).sum())
            c["latency_neq"] += int((base["latency_s"] != base["cycles"] / (d["clock_mhz"] * 1e6)).sum())
            # more MACs, same design: the prefill at twice the sequence, the decode at twice the context
            more = wl + ("?seq_len=512" if prefill else "?context_len=512")
            bigger = evaluate_arrays(sim, sim.distinct_gemms(more), d)
            assert sim.workload(more).macs > sim.workload(wl).macs
            c["energy_down"] += int((bigger["energy_j"] < base["energy_j"]).sum())
            c["energy_pairs"] += n_designs
        report[mapping] = (c, dbl)
    return report


def mapped_vs_fixed(n_designs: int = 20_000) -> list[tuple]:
    """Per workload, the mapper against the fixed loop order on the same random designs:
    (workload, share slower by > 10 %, worst latency ratio, median latency ratio, share with more
    energy, worst energy ratio, median energy ratio, median DRAM-bytes ratio)."""
    best, fixed = SystolicSimulator(), SystolicSimulator(mapping="fixed")
    space = best.design_space()
    rng = np.random.default_rng(5)
    out = []
    for wl in PROPERTY_WORKLOADS:
        idx = space.sample_indices(rng, n_designs)
        d = {p.name: np.asarray(p.values, dtype=object)[idx[:, j]] for j, p in enumerate(space.params)}
        d = {k: (v.astype(str) if k == "dataflow" else v.astype(float if k == "clock_mhz" else np.int64))
             for k, v in d.items()}
        a = evaluate_arrays(best, best.distinct_gemms(wl), d)
        b = evaluate_arrays(fixed, fixed.distinct_gemms(wl), d)
        lr, er, tr = a["latency_s"] / b["latency_s"], a["energy_j"] / b["energy_j"], a["dram_bytes"] / b["dram_bytes"]
        out.append((wl, float(np.mean(lr > 1.1)), float(lr.max()), float(np.median(lr)), float(np.mean(er > 1)),
                    float(er.max()), float(np.median(er)), float(np.median(tr))))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("speed", "properties"))
    args = ap.parse_args(argv)
    if args.only != "properties":
        print("| mapping | layers (distinct shapes) | layer-evaluations/s wall | ... CPU | us per design wall | ... CPU |")
        print("|---|---|---|---|---|---|")
        for m, nl, ns, lw, lc, uw, uc in bench_batch():
            print(f"| {m} | {nl} ({ns}) | {lw:,.0f} | {lc:,.0f} | {uw:.2f} | {uc:.2f} |")
        print()
        for m, w, c in bench_single():
            print(f"one {WORKLOAD} evaluate(), mapping={m}: {w:.1f} us wall, {c:.1f} us CPU")
        for m, n, w, c, best in bench_exhaustive():
            print(f"exhaustive Systolic-v0, mapping={m}: {n:,} designs in {w:.2f} s wall, {c:.2f} s CPU; optimum {best}")
        t = bench_topology()
        for m in ("best", "fixed"):
            layers, shapes, lw, lc = t[m]
            print(f"{TOPOLOGY.name} ({layers} layers, {shapes} distinct shapes), mapping={m}: {lw:,.0f} "
                  f"layer-evaluations/s wall, {lc:,.0f} CPU")
        row = t.get("scalesim_row")
        ev_w, ev_c = t["evaluate_s"]
        print(f"{TOPOLOGY.name} in mode=scalesim on 32x32 ws: {t['scalesim_cycles']:,} cycles; evaluate() "
              f"{ev_w * 1e3:.2f} ms wall ({ev_c * 1e3:.2f} ms CPU); `archgym eval` process {t['cli_s']:.2f} s wall")
        if row:
            cpu = float(row["note"].split("CPU s median ")[1].split()[0]) if "CPU s median" in row["note"] else None
            print(f"SCALE-Sim 3.0.0 on the file: {row['total_cycles']} cycles, {row['wall_s_median']} s wall, CPU "
                  f"{cpu} s; ratios: evaluate() {cpu / ev_c:,.0f}x (CPU), archgym eval process "
                  f"{cpu / t['cli_s']:,.0f}x (its wall vs SCALE-Sim's CPU)")
        for name, nrows, bw, bc, sw, sc in bench_user_vs_zoo():
            print(f"{name} ({nrows} GEMM rows): evaluate_batch {bw:.2f} us/design wall ({bc:.2f} CPU); "
                  f"evaluate() {sw:.1f} us wall ({sc:.1f} CPU)")
        lines, w, c = bench_user_mode()
        print(f"mode=scalesim-user walk, SCALE-Sim CI layer ({lines:,} demand lines): {w * 1e3:.1f} ms wall, "
              f"{c * 1e3:.1f} ms CPU ({lines / c:,.0f} lines/s CPU)")
        print()
    if args.only != "speed":
        rep = properties()
        for mapping, (c, dbl) in rep.items():
            print(f"mapping={mapping}: {c['pairs']:,} (design, workload) pairs per property")
            print(f"  doubling an SRAM increased DRAM bytes: {c['sram_worse']} of {3 * c['pairs']:,}")
            print(f"  doubling DRAM bandwidth increased cycles: {c['bw_worse']} of {c['pairs']:,}")
            print(f"  latency != cycles / clock: {c['latency_neq']} of {c['pairs']:,}")
            print(f"  twice the sequence/context lowered energy: {c['energy_down']} of {c['energy_pairs']:,}")
            for key, s in dbl.items():
                print(f"  doubling {key}: slower {s['worse']:,}/{c['pairs']:,} ({100 * s['worse'] / c['pairs']:.2f} %), "
                      f"worst latency ratio {s['worst']:.3f}x; fill/drain bound broken {s['bound_fail']} "
                      f"(with unchanged DRAM bytes: {s['bound_fail_same_bits']}); prefill: > +10 % on "
                      f"{s['over10_prefill']}/{s['prefill']:,}, worst {s['worst_prefill']:.3f}x")
        print()
        print("| workload | mapper slower than fixed by > 10 % | worst | median latency ratio | more energy | worst "
              "| median energy ratio | median DRAM bytes ratio |")
        print("|---|---|---|---|---|---|---|---|")
        for wl, s10, lw, lm, e1, ew, em, tm in mapped_vs_fixed():
            print(f"| {wl} | {100 * s10:.1f} % | {lw:.2f}x | {lm:.3f} | {100 * e1:.2f} % | {ew:.2f}x | {em:.3f} | {tm:.3f} |")


if __name__ == "__main__":
    main()
