"""Measure SCALE-Sim 3.0.0's wall time per layer (Python API, no traces).

Writes/updates ``benchmarks/scalesim_timing.csv`` with one row per (layer, dataflow):
layer, M, N, K, rows, cols, dataflow, total_cycles, wall_s_median, n_runs, plus wall_s_runs
(every run, ';'-separated), sram_kb, peak_rss_mb (largest child-process RSS) and note (set when
a run was killed by ``--timeout``; then n_runs counts only the finished runs).

SCALE-Sim needs ``numpy<2.4`` (with numpy 2.4 every run crashes in
``double_buffered_scratchpad_mem.py``: SCALE-Sim issue #160), so run this in a virtualenv of its
own, never the project one; e.g., from the repository root::

    python3 -m venv venvs/scalesim
    venvs/scalesim/bin/pip install scalesim==3.0.0
    venvs/scalesim/bin/pip install "numpy<2.4"
    venvs/scalesim/bin/python benchmarks/time_scalesim.py --layer small_128 --runs 5
    venvs/scalesim/bin/python benchmarks/time_scalesim.py --layer llama2_7b_q_proj \
        --dataflow ws --runs 1
    venvs/scalesim/bin/python benchmarks/time_scalesim.py --layer llama2_7b_q_proj \
        --dataflow os --runs 1 --timeout 900

Whole topology files (issue #13: ``archgym eval`` vs SCALE-Sim on the same file): ``--topology``
takes a file under ``tests/data/scalesim_topologies/`` (GEMM format when it is under
``GEMM_mnk/``) and times one SCALE-Sim run of every layer of it on a 32x32 array; the row's
``layer`` is ``file:<path>``, ``total_cycles`` the sum of the layers' Total Cycles, and ``note``
adds the CPU seconds of each run (robust when other jobs share the cores) and the load average::

    venvs/scalesim/bin/python benchmarks/time_scalesim.py \
        --topology conv_nets/Googlenet.csv --dataflow ws --runs 3

Measured with scalesim 3.0.0, numpy 2.3.5, CPython 3.11.7 on a shared 2-core x86 machine.
Each run is a fresh child process; the time covers ``scalesim(...)`` construction plus
``run_scale`` (config/topology parsing, compute + memory simulation, report writing) with
``save_disk_space=True`` and ``verbose=False``; interpreter start-up and imports are excluded.
Configuration: CALC interface bandwidth, SRAMs of ``--sram-kb`` kB each (default 4096, the same
"large SRAM" as tests/data/scalesim_goldens.csv).

Results recorded in scalesim_timing.csv (2026-11-28; other jobs were running, load average 3-6 on
the 2 cores during the long runs, so the long figures are upper-end): 128^3 on 32x32 os, 3,039
cycles, median 0.185 s of 5 runs; Llama-2-7B q_proj (M=256, K=N=4096) on 32x32 ws, 5,734,399
cycles, 1,704.5 s (one run, peak RSS 15.9 GB, about 3.4 k simulated cycles/s); the same layer
with os did not finish within the 900 s timeout.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
import time

LAYERS = {
    # name: (M, N, K, rows, cols); GEMM (M x K) x (K x N), SCALE-Sim topology order M, N, K.
    "small_128": (128, 128, 128, 32, 32),
    # Llama-2-7B prefill, q_proj: 256 tokens x 4096 hidden -> 4096.
    "llama2_7b_q_proj": (256, 4096, 4096, 32, 32),
}
DEFAULT_DATAFLOW = {"small_128": "os", "llama2_7b_q_proj": "ws"}
CSV_COLS = ("layer", "M", "N", "K", "rows", "cols", "dataflow", "total_cycles",
            "wall_s_median", "n_runs", "wall_s_runs", "sram_kb", "peak_rss_mb", "note")


def _generator():
    """The golden generator module (tests/data/gen_scalesim_goldens.py): the one place that
    writes SCALE-Sim configs and layout files."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "tests" / "data" / "gen_scalesim_goldens.py"
    spec = importlib.util.spec_from_file_location("gen_scalesim_goldens", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


_GEN = _generator()
TOPO_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "scalesim_topologies"
LAYOUT_HEADER = _GEN.LAYOUT_HEADER


def one_run(spec: tuple[int, int, int, int, int, str, int]) -> tuple[float, int, float]:
    """Run one layer in this (child) process; return (wall s, Total Cycles, peak RSS MB)."""
    from scalesim.scale_sim import scalesim

    m, n, k, rows, cols, df, kb = spec
    with tempfile.TemporaryDirectory(prefix="scalesim_timing_") as tmp:
        cfg, topo, lay = (os.path.join(tmp, x) for x in ("c.cfg", "t.csv", "l.csv"))
        with open(cfg, "w") as f:
            f.write(_GEN.CONFIG_TEMPLATE.format(run_name="run", rows=rows, cols=cols, ifmap_kb=kb,
                                                filter_kb=kb, ofmap_kb=kb, dataflow=df))
        with open(topo, "w") as f:
            f.write(f"Layer Name, M, N, K,\nl0, {m}, {n}, {k},\n")
        with open(lay, "w") as f:
            f.write(LAYOUT_HEADER)
        t0 = time.perf_counter()
        sim = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo,
                       layout=lay, input_type_gemm=True)
        sim.run_scale(top_path=os.path.join(tmp, "out"))
        wall = time.perf_counter() - t0
        with open(os.path.join(tmp, "out", "run", "COMPUTE_REPORT.csv")) as f:
            cycles = int(f.read().splitlines()[1].split(",")[2])
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return wall, cycles, rss_mb


def one_file_run(spec: tuple[str, int, int, str, int]) -> tuple[float, int, float, float]:
    """Run a whole topology file in this (child) process; return (wall s, summed Total Cycles,
    peak RSS MB, CPU s of this process)."""
    from scalesim.scale_sim import scalesim

    rel, rows, cols, df, kb = spec
    topo = os.path.join(TOPO_DIR, rel)
    with tempfile.TemporaryDirectory(prefix="scalesim_timing_") as tmp:
        cfg, lay = os.path.join(tmp, "c.cfg"), os.path.join(tmp, "l.csv")
        with open(cfg, "w") as f:
            f.write(_GEN.CONFIG_TEMPLATE.format(run_name="run", rows=rows, cols=cols, ifmap_kb=kb,
                                                filter_kb=kb, ofmap_kb=kb, dataflow=df))
        with open(lay, "w") as f:
            f.write(LAYOUT_HEADER)
        t0, c0 = time.perf_counter(), time.process_time()
        sim = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo,
                       layout=lay, input_type_gemm=rel.startswith("GEMM_mnk"))
        sim.run_scale(top_path=os.path.join(tmp, "out"))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        with open(os.path.join(tmp, "out", "run", "COMPUTE_REPORT.csv")) as f:
            cycles = sum(int(line.split(",")[2]) for line in f.read().splitlines()[1:] if line)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return wall, cycles, rss_mb, cpu


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layer", choices=sorted(LAYERS))
    ap.add_argument("--topology", default=None,
                    help="time a whole file under tests/data/scalesim_topologies/ instead")
    ap.add_argument("--dataflow", choices=("os", "ws", "is"), default=None)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sram-kb", type=int, default=4096)
    ap.add_argument("--timeout", type=float, default=None,
                    help="kill a run after this many seconds and record it as not finished")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "scalesim_timing.csv"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:  # internal: one timed run in this fresh process
        spec = tuple(json.loads(args.child))
        print(json.dumps(one_file_run(spec) if len(spec) == 5 else one_run(spec)))
        return 0
    if args.topology is not None:
        if not os.path.isfile(os.path.join(TOPO_DIR, args.topology)):
            raise SystemExit(f"--topology={args.topology!r} is not a file under {TOPO_DIR}")
        args.layer = f"file:{args.topology}"
        df = args.dataflow or "ws"
        m = n = k = ""
        rows, cols = 32, 32
        spec = [args.topology, rows, cols, df, args.sram_kb]
    if args.layer is None:
        raise SystemExit(f"--layer is required; choose one of {sorted(LAYERS)}")
    if args.runs < 1:
        raise SystemExit(f"--runs={args.runs} must be >= 1")
    if args.topology is None:
        df = args.dataflow or DEFAULT_DATAFLOW[args.layer]
        m, n, k, rows, cols = LAYERS[args.layer]
        spec = [m, n, k, rows, cols, df, args.sram_kb]
    walls, cycles, rss, cpus = [], set(), 0.0, []
    note = ""
    for i in range(args.runs):
        try:
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                                   json.dumps(spec)], capture_output=True, text=True,
                                  check=False, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            note = f"run {i + 1} killed after {args.timeout:g} s (timeout), not finished"
            print(f"{args.layer} {df}: {note}", file=sys.stderr, flush=True)
            break
        if proc.returncode != 0:
            raise RuntimeError(f"child run failed:\n{proc.stderr}")
        wall, cyc, rss_mb, *cpu = json.loads(proc.stdout.strip().splitlines()[-1])
        walls.append(wall)
        cpus += cpu
        cycles.add(cyc)
        rss = max(rss, rss_mb)
        print(f"{args.layer} {df} run {i + 1}/{args.runs}: {wall:.2f} s, {cyc} cycles, "
              f"RSS {rss_mb:.0f} MB", file=sys.stderr, flush=True)
    if cpus:  # whole-file runs: CPU time too, since the machine may be shared
        load = os.getloadavg()[0]
        note = (note + "; " if note else "") + (
            f"CPU s median {statistics.median(cpus):.1f} (runs {';'.join(f'{c:.1f}' for c in cpus)})"
            f"; load average {load:.1f} at the end")
    if len(cycles) > 1:
        raise RuntimeError(f"runs disagree on Total Cycles: {sorted(cycles)}")
    row = {"layer": args.layer, "M": m, "N": n, "K": k, "rows": rows, "cols": cols,
           "dataflow": df, "total_cycles": cycles.pop() if cycles else "",
           "wall_s_median": f"{statistics.median(walls):.3f}" if walls else "",
           "n_runs": len(walls), "wall_s_runs": ";".join(f"{w:.3f}" for w in walls),
           "sram_kb": args.sram_kb, "peak_rss_mb": f"{rss:.0f}" if walls else "", "note": note}
    rows_out = []
    if os.path.exists(args.out):
        with open(args.out, newline="") as f:
            rows_out = [r for r in csv.DictReader(f)
                        if (r["layer"], r["dataflow"]) != (args.layer, df)]
    rows_out.append({k: str(v) for k, v in row.items()})
    for r in rows_out:
        r.setdefault("note", "")
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows_out)
    print(row, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
