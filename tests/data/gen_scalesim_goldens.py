"""Generate ``tests/data/scalesim_goldens.csv`` from the real SCALE-Sim 3.0.0.

The CSV holds golden per-layer results of SCALE-Sim (GEMM mode, ``InterfaceBandwidth CALC``)
so that archgym's systolic model can be tested in CI without SCALE-Sim installed.

SCALE-Sim needs ``numpy<2.4`` (with numpy 2.4 every run crashes in
``double_buffered_scratchpad_mem.py``: SCALE-Sim issue #160), so it lives in a virtualenv of its
own, never in the project environment. Regenerate from the repository root with, e.g.::

    python3 -m venv venvs/scalesim
    venvs/scalesim/bin/pip install scalesim==3.0.0
    venvs/scalesim/bin/pip install "numpy<2.4"
    venvs/scalesim/bin/python tests/data/gen_scalesim_goldens.py --jobs 2

Produced with scalesim 3.0.0, numpy 2.3.5, pandas 3.1.1, CPython 3.11.7: 367 rows in 99 s of
wall time with ``--jobs 2`` on an idle 2-core machine (220 s when the machine was busy). The output is
deterministic: the random cases come from ``random.Random(SEED)`` / ``random.Random(SEED + 1)``,
and SCALE-Sim itself has no randomness in this mode.

What is run (one SCALE-Sim run of one layer per CSV row):

* group ``handpicked``: five hand-picked GEMMs (8x8: 64x32x48, 20x13x37, 128x64x96; 32x32:
  256^3 and 1024x1024x64), each with os/ws/is, large SRAMs.
* group ``random``: ``N_RANDOM`` seeded cases, M, N, K in [1, 96] (ones, primes and arbitrary
  values), R, C in {1, 2, 3, 4, 5, 8, 16, 32}, dataflows cycling os/ws/is, large SRAMs. A case
  is redrawn while the stall-free cycle count of the closed form (:func:`closed_form_cycles`)
  exceeds ``MAX_RANDOM_CYCLES`` (SCALE-Sim runs ~10-20 k simulated cycles/s); this only bounds
  the run time, the golden values themselves come from SCALE-Sim.
* group ``small_sram``: 18 hand-picked and ``N_SMALL_RANDOM`` seeded random cases with 1-4 kB
  SRAMs (still CALC mode; M, N, K in [1, 128]), so that IFMAP/filter DRAM reads exceed the
  single-read minimum and the OFMAP buffer drains during the run; one edge case whose IFMAP
  misses fill exactly one prefetch epoch; three 256^3 layers on 8x8 with 16/32/64 kB SRAMs.

"Large SRAM" is ``LARGE_SRAM_KB`` kB for each of the three buffers: big enough that no operand
is refetched and the OFMAP buffer never drains before the end of any layer here (the largest
OFMAP write count is 2,097,152 words for 1024x1024x64 ws/is on 32x32). Note that
``total_cycles_incl_prefetch`` and the DRAM start cycles still depend on the SRAM size: SCALE-Sim
books the initial prefetch as ceil(n_sets * floor(words / 100) / 10) cycles (whole sets of 1 %
of the SRAM at 10 words/cycle), e.g. DRAM start cycle -4195 for one set at 4096 kB.

Where the numbers come from: every column is parsed from the three report files SCALE-Sim
writes (``COMPUTE_REPORT.csv``, ``BANDWIDTH_REPORT.csv``, ``DETAILED_ACCESS_REPORT.csv``); the
script also reads the same items from the layer objects of the Python API
(``get_compute_report_items`` etc.) and stops with an error if any value differs. Word counts
(``*_sram_reads``, ``*_dram_reads``, ``*_writes``) are the DETAILED_ACCESS_REPORT columns;
floats are written exactly as SCALE-Sim printed them (Python ``str`` of a float, which
round-trips), except that integer-valued numbers are written without ".0". ``total_cycles`` is COMPUTE_REPORT's "Total Cycles" (compute + stalls, the value
SCALE-Sim's verbose console mislabels "Compute cycles"); ``total_cycles_incl_prefetch`` is its
"Total Cycles (incl. prefetch)".

Column meaning: M, N, K in SCALE-Sim topology order (GEMM is (M x K) x (K x N)); rows =
ArrayHeight, cols = ArrayWidth; ``*_sram_kb`` are the configured SRAM sizes (word = 1 byte in
SCALE-Sim, so kB = kilo-words); ``*_start``/``*_stop`` are the DETAILED_ACCESS_REPORT
start/stop cycles (DRAM prefetch starts at negative cycles); ``avg_*_bw`` are BANDWIDTH_REPORT
columns in words/cycle.
"""

from __future__ import annotations

import argparse
import csv
import math
import multiprocessing
import os
import random
import re
import sys
import tempfile
import time
from dataclasses import dataclass

SEED = 20261128
N_RANDOM = 240
MAX_RANDOM_CYCLES = 60_000
N_SMALL_RANDOM = 90
LARGE_SRAM_KB = 4096
DATAFLOWS = ("os", "ws", "is")
ARRAY_SIDES = (1, 2, 3, 4, 5, 8, 16, 32)
PRIMES_TO_96 = tuple(p for p in range(2, 97) if all(p % d for d in range(2, int(p**0.5) + 1)))

# 21-column header of layouts/conv_nets/test.csv in scalesim-project/scale-sim-v3 (the CLI
# requires a layout file); a header-only layout file is enough when custom layouts are off.
LAYOUT_HEADER = (
    "Layer name,IFMAP Height Intraline Factor,IFMAP Width Intraline Factor,"
    "Filter Height Intraline Factor,Filter Width Intraline Factor,Channel Intraline Factor,"
    "Num Filter Intraline Factor,IFMAP Height Intraline Order,IFMAP Width Intraline Order,"
    "Channel Intraline Order,IFMAP Height Interline Order,IFMAP Width Interline Order,"
    "Channel Interline Order,Num Filter Intraline Order,Channel Intraline Order,"
    "Filter Height Intraline Order,Filter Width Intraline Order,Num Filter Interline Order,"
    "Channel Interline Order,Filter Height Interline Order,Filter Width Interline Order,\n"
)

CONFIG_TEMPLATE = """[general]
run_name = {run_name}

[architecture_presets]
ArrayHeight : {rows}
ArrayWidth : {cols}
IfmapSramSzkB : {ifmap_kb}
FilterSramSzkB : {filter_kb}
OfmapSramSzkB : {ofmap_kb}
IfmapOffset : 0
FilterOffset : 10000000
OfmapOffset : 20000000
Bandwidth : 10
Dataflow : {dataflow}
MemoryBanks : 1
ReadRequestBuffer : 32
WriteRequestBuffer : 32

[layout]
IfmapCustomLayout : False
IfmapSRAMBankBandwidth : 10
IfmapSRAMBankNum : 10
IfmapSRAMBankPort : 2
FilterCustomLayout : False
FilterSRAMBankBandwidth : 10
FilterSRAMBankNum : 10
FilterSRAMBankPort : 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth : CALC
UseRamulatorTrace : False
"""

# (report file, our column names in file order after LayerID)
COMPUTE_COLS = ("total_cycles_incl_prefetch", "total_cycles", "stall_cycles",
                "overall_util_pct", "mapping_eff_pct", "compute_util_pct")
BANDWIDTH_COLS = ("avg_ifmap_sram_bw", "avg_filter_sram_bw", "avg_ofmap_sram_bw",
                  "avg_ifmap_dram_bw", "avg_filter_dram_bw", "avg_ofmap_dram_bw")
DETAIL_COLS = ("ifmap_sram_start", "ifmap_sram_stop", "ifmap_sram_reads",
               "filter_sram_start", "filter_sram_stop", "filter_sram_reads",
               "ofmap_sram_start", "ofmap_sram_stop", "ofmap_sram_writes",
               "ifmap_dram_start", "ifmap_dram_stop", "ifmap_dram_reads",
               "filter_dram_start", "filter_dram_stop", "filter_dram_reads",
               "ofmap_dram_start", "ofmap_dram_stop", "ofmap_dram_writes")
CASE_COLS = ("case_id", "group", "M", "N", "K", "rows", "cols", "dataflow",
             "ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb")
HEAD_COLS = ("total_cycles", "total_cycles_incl_prefetch", "stall_cycles", "overall_util_pct",
             "mapping_eff_pct", "compute_util_pct", "ifmap_sram_reads", "filter_sram_reads",
             "ofmap_sram_writes", "ifmap_dram_reads", "filter_dram_reads", "ofmap_dram_writes")
OUT_COLS = (CASE_COLS + HEAD_COLS + BANDWIDTH_COLS
            + tuple(c for c in DETAIL_COLS if c not in HEAD_COLS))


@dataclass(frozen=True)
class Case:
    """One SCALE-Sim run: a GEMM (M x K) x (K x N) on a rows x cols array."""

    case_id: str
    group: str
    M: int
    N: int
    K: int
    rows: int
    cols: int
    dataflow: str
    ifmap_kb: int = LARGE_SRAM_KB
    filter_kb: int = LARGE_SRAM_KB
    ofmap_kb: int = LARGE_SRAM_KB

    def __post_init__(self) -> None:
        if self.dataflow not in DATAFLOWS:
            # SCALE-Sim runs OS for an unknown dataflow after a mere warning (measured).
            raise ValueError(f"dataflow {self.dataflow!r} is not one of {DATAFLOWS}")
        for name in ("M", "N", "K", "rows", "cols", "ifmap_kb", "filter_kb", "ofmap_kb"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")


def closed_form_cycles(M: int, N: int, K: int, R: int, C: int, df: str) -> int:
    """Stall-free folds x per-fold cycles (SCALE-Sim's reported value + 1).

    The per-fold terms follow the demand matrices of SCALE-Sim's
    ``scalesim/compute/systolic_compute_{os,ws,is}.py``.

    Used here only to bound the run time of random cases.
    """
    if df == "os":
        return math.ceil(M / R) * math.ceil(N / C) * (K + R + C - 2)
    if df == "ws":
        return math.ceil(K / R) * math.ceil(N / C) * (2 * R + C + M - 2)
    return math.ceil(K / R) * math.ceil(M / C) * (2 * R + C + N - 2)


def handpicked_cases() -> list[Case]:
    """The five hand-picked GEMMs (see the module docstring), all three dataflows."""
    shapes = [(8, 8, 64, 32, 48), (8, 8, 20, 13, 37), (8, 8, 128, 64, 96),
              (32, 32, 256, 256, 256), (32, 32, 1024, 1024, 64)]
    cases = []
    for r, c, m, n, k in shapes:
        for df in DATAFLOWS:
            cases.append(Case(f"hp_{r}x{c}_{m}x{n}x{k}_{df}", "handpicked", m, n, k, r, c, df))
    return cases


def _draw_dim(rng: random.Random) -> int:
    u = rng.random()
    if u < 0.15:
        return 1
    if u < 0.45:
        return rng.choice(PRIMES_TO_96)
    return rng.randint(1, 96)


def random_cases(n: int = N_RANDOM, seed: int = SEED) -> list[Case]:
    """``n`` seeded random cases; dataflows cycle os/ws/is; redrawn above MAX_RANDOM_CYCLES."""
    rng = random.Random(seed)
    cases = []
    for i in range(n):
        df = DATAFLOWS[i % 3]
        while True:
            m, nn, k = _draw_dim(rng), _draw_dim(rng), _draw_dim(rng)
            r, c = rng.choice(ARRAY_SIDES), rng.choice(ARRAY_SIDES)
            if closed_form_cycles(m, nn, k, r, c, df) <= MAX_RANDOM_CYCLES:
                break
        cases.append(Case(f"rnd_{i:03d}", "random", m, nn, k, r, c, df))
    return cases


def small_sram_cases() -> list[Case]:
    """Cases with 1-4 kB SRAMs so DRAM traffic exceeds one read per operand word."""
    specs = [  # M, N, K, R, C, df, ifmap_kb, filter_kb, ofmap_kb
        (64, 64, 64, 8, 8, "os", 1, 1, 1),
        (64, 64, 64, 8, 8, "ws", 1, 1, 1),
        (64, 64, 64, 8, 8, "is", 1, 1, 1),
        (96, 80, 72, 8, 8, "os", 2, 2, 2),
        (96, 80, 72, 8, 8, "ws", 2, 2, 2),
        (96, 80, 72, 8, 8, "is", 2, 2, 2),
        (100, 60, 90, 16, 8, "os", 4, 1, 2),
        (100, 60, 90, 16, 8, "ws", 1, 4, 2),
        (100, 60, 90, 8, 16, "is", 3, 2, 1),
        (128, 128, 64, 16, 16, "ws", 2, 3, 4),
        (128, 128, 64, 16, 16, "os", 3, 2, 1),
        (73, 97, 61, 5, 7, "is", 1, 2, 3),
        (73, 97, 61, 7, 5, "os", 2, 1, 1),
        (61, 73, 97, 4, 4, "ws", 1, 1, 2),
        (128, 64, 96, 8, 8, "ws", 1, 1, 1),
        (128, 64, 96, 8, 8, "is", 4, 4, 4),
        (32, 256, 40, 8, 32, "os", 2, 1, 4),
        (256, 32, 40, 32, 8, "ws", 1, 2, 1),
    ]
    cases = [Case(f"small_{i:02d}_{df}", "small_sram", m, n, k, r, c, df, ik, fk, ok)
             for i, (m, n, k, r, c, df, ik, fk, ok) in enumerate(specs)]
    # IFMAP stream of exactly one 1 kB epoch (50 sets x 10 words = 500 misses): the last miss
    # completes the epoch, so the final prefetch is empty (edge case of read_buffer_estimate_bw).
    cases.append(Case("small_edge_epoch_ws", "small_sram", 20, 8, 25, 5, 8, "ws", 1, 1, 1))
    # Medium SRAMs on bigger layers.
    for i, (df, kb) in enumerate((("os", 16), ("ws", 32), ("is", 64))):
        cases.append(Case(f"medium_{i}_{df}", "small_sram", 256, 256, 256, 8, 8, df, kb, kb, kb))
    rng = random.Random(SEED + 1)
    for i in range(N_SMALL_RANDOM):
        df = DATAFLOWS[i % 3]
        while True:
            m, n, k = (rng.randint(1, 128) if rng.random() < 0.7 else _draw_dim(rng)
                       for _ in range(3))
            r, c = rng.choice(ARRAY_SIDES), rng.choice(ARRAY_SIDES)
            if closed_form_cycles(m, n, k, r, c, df) <= MAX_RANDOM_CYCLES:
                break
        ik, fk, ok = (rng.randint(1, 4) for _ in range(3))
        cases.append(Case(f"small_rnd_{i:03d}", "small_sram", m, n, k, r, c, df, ik, fk, ok))
    return cases


def all_cases() -> list[Case]:
    """Every case of the golden file, in file order."""
    return handpicked_cases() + random_cases() + small_sram_cases()


def write_inputs(case: Case, workdir: str) -> tuple[str, str, str]:
    """Write the config, GEMM topology and header-only layout files; return their paths."""
    cfg = os.path.join(workdir, "cfg.cfg")
    topo = os.path.join(workdir, "topo.csv")
    layout = os.path.join(workdir, "layout.csv")
    with open(cfg, "w") as f:
        f.write(CONFIG_TEMPLATE.format(run_name="run", rows=case.rows, cols=case.cols,
                                       ifmap_kb=case.ifmap_kb, filter_kb=case.filter_kb,
                                       ofmap_kb=case.ofmap_kb, dataflow=case.dataflow))
    with open(topo, "w") as f:  # every row needs a trailing comma (the parser drops the last field)
        f.write("Layer Name, M, N, K,\n")
        f.write(f"g0, {case.M}, {case.N}, {case.K},\n")
    with open(layout, "w") as f:
        f.write(LAYOUT_HEADER)
    return cfg, topo, layout


def _read_report_row(path: str, ncols: int) -> list[str]:
    with open(path) as f:
        lines = [ln.strip() for ln in f if ln.strip()]
    if len(lines) != 2:
        raise RuntimeError(f"{path}: expected a header and one layer row, got {len(lines)} lines")
    fields = [x.strip() for x in lines[1].split(",")]
    if fields[-1] == "":
        fields = fields[:-1]
    if len(fields) != ncols + 1 or fields[0] != "0":
        raise RuntimeError(f"{path}: unexpected row {lines[1]!r}")
    return fields[1:]


def _canon(text: str) -> str:
    """Integers as integers ('-1049.0' -> '-1049'); other floats as printed by SCALE-Sim."""
    value = float(text)
    if value.is_integer() and "e" not in text.lower():
        return str(int(value))
    return text


def run_case(case: Case) -> dict[str, str]:
    """Run SCALE-Sim on one case and return the golden row (strings, file order)."""
    from scalesim.scale_sim import scalesim  # imported here: only the scalesim venv has it

    with tempfile.TemporaryDirectory(prefix="scalesim_golden_") as tmp:
        cfg, topo, layout = write_inputs(case, tmp)
        sim = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo,
                       layout=layout, input_type_gemm=True)
        t0 = time.perf_counter()
        sim.run_scale(top_path=os.path.join(tmp, "out"))
        wall = time.perf_counter() - t0
        rep = os.path.join(tmp, "out", "run")
        from_file = {}
        for name, cols in (("COMPUTE_REPORT.csv", COMPUTE_COLS),
                           ("BANDWIDTH_REPORT.csv", BANDWIDTH_COLS),
                           ("DETAILED_ACCESS_REPORT.csv", DETAIL_COLS)):
            from_file.update(zip(cols, _read_report_row(os.path.join(rep, name), len(cols))))
        layers = sim.runner.single_layer_sim_object_list
        if len(layers) != 1:
            raise RuntimeError(f"{case.case_id}: expected one layer object, got {len(layers)}")
        layer = layers[0]
        from_api = dict(zip(COMPUTE_COLS, layer.get_compute_report_items()))
        from_api.update(zip(BANDWIDTH_COLS, layer.get_bandwidth_report_items()))
        from_api.update(zip(DETAIL_COLS, layer.get_detail_report_items()))
    for key, text in from_file.items():
        if float(text) != float(from_api[key]):
            raise RuntimeError(f"{case.case_id}: API {key}={from_api[key]!r} but report file "
                               f"says {text!r}")
    row = {"case_id": case.case_id, "group": case.group, "M": case.M, "N": case.N, "K": case.K,
           "rows": case.rows, "cols": case.cols, "dataflow": case.dataflow,
           "ifmap_sram_kb": case.ifmap_kb, "filter_sram_kb": case.filter_kb,
           "ofmap_sram_kb": case.ofmap_kb}
    row.update({k: _canon(v) for k, v in from_file.items()})
    print(f"{case.case_id:32s} cycles={row['total_cycles']:>8s} wall={wall:7.2f}s",
          file=sys.stderr, flush=True)
    return {k: str(row[k]) for k in OUT_COLS}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "scalesim_goldens.csv"))
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    ap.add_argument("--only", default="", help="comma-separated groups to run (default: all)")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        raise SystemExit(f"--jobs={args.jobs} must be >= 1")
    import numpy
    import scalesim  # noqa: F401  (fail early outside the scalesim venv)
    from importlib.metadata import version
    np_ver = tuple(int(x) for x in re.findall(r"\d+", numpy.__version__)[:2])
    if version("scalesim") != "3.0.0" or np_ver >= (2, 4):
        raise SystemExit(f"need scalesim 3.0.0 and numpy<2.4, got scalesim {version('scalesim')}"
                         f" numpy {numpy.__version__}")
    cases = all_cases()
    if args.only:
        groups = set(args.only.split(","))
        cases = [c for c in cases if c.group in groups]
    # Longest first so the pool does not end on one long straggler.
    order = sorted(range(len(cases)), key=lambda i: -closed_form_cycles(
        cases[i].M, cases[i].N, cases[i].K, cases[i].rows, cases[i].cols, cases[i].dataflow))
    t0 = time.perf_counter()
    if args.jobs == 1:
        results = [run_case(cases[i]) for i in order]
    else:
        with multiprocessing.Pool(args.jobs) as pool:
            results = pool.map(run_case, [cases[i] for i in order], chunksize=1)
    by_id = {r["case_id"]: r for r in results}
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=OUT_COLS, lineterminator="\n")
        w.writeheader()
        for c in cases:
            w.writerow(by_id[c.case_id])
    print(f"wrote {len(cases)} rows to {args.out} in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
