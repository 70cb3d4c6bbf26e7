"""Generate the SCALE-Sim 3.0.0 topology goldens (issue #13: SCALE-Sim topology CSVs as workloads).

Writes three files next to this script:

* ``scalesim_topologies/random_conv.csv`` -- seeded random conv layers in SCALE-Sim's conv
  format (strides that do not divide ``H - Fh``, non-square inputs and filters, ``Fh = H``,
  1x1 filters, stride > filter, depthwise ``DP`` rows, irregular whitespace);
* ``scalesim_topology_layers.csv`` -- how SCALE-Sim's own parser
  (``scalesim.topology_utils.topologies.load_arrays`` + ``topo_calc_hyperparams``) reads every
  layer of every topology file under ``scalesim_topologies/`` (the files shipped in
  scale-sim-v3's ``topologies/conv_nets`` and ``topologies/GEMM_mnk``, copied unchanged, plus
  ``random_conv.csv``). A file SCALE-Sim cannot read gets one row whose ``parse_status`` is the
  exception it raised;
* ``scalesim_topology_goldens.csv`` -- per-layer results of running the real SCALE-Sim
  (``InterfaceBandwidth CALC``, 4096 kB SRAMs as in ``scalesim_goldens.csv``) on those layers, on
  arrays 32x32, 8x8 and 16x64 (rows x cols) with os/ws/is, and each random layer on one array of
  ``RANDOM_ARRAYS`` with os/ws/is.

Regenerate (SCALE-Sim needs ``numpy<2.4``, so it gets its own virtualenv; any location works)::

    python3 -m venv venvs/scalesim
    venvs/scalesim/bin/pip install scalesim==3.0.0 "numpy<2.4"
    venvs/scalesim/bin/python tests/data/gen_scalesim_topologies.py --jobs 2

Measured: scalesim 3.0.0, numpy 2.3.5, CPython 3.11.7: 788 SCALE-Sim runs, 988 golden rows,
4,794 s of wall time with ``--jobs 2`` on a 2-core machine shared with other jobs (load average
8-12; 27 CPU-minutes). Deterministic: the random layers come from ``random.Random(SEED)``.

What is run, and what is cut. SCALE-Sim simulates about 5-20 k cycles per second (its memory
model walks every demand line in Python), so a (layer, array, dataflow) run is skipped when its
stall-free CALC cycle count (the closed form ``closed_form_cycles`` of gen_scalesim_goldens.py,
exact on every golden) exceeds ``CYCLE_CAP`` (60 k cycles, about 5-25 s of SCALE-Sim). Cut this
way: every layer of GEMM_mnk gnmt, gpt2, unet2d, vit_l_last and conv_nets alexnet, alexnet_full,
alexnet_part, Resnet_test, UNet_2d, yolo, yolo_tiny_layer1 (millions of cycles per layer), and the
larger layers or arrays of the other files (e.g. 8x8 runs of most ImageNet layers). 788 runs
remain, covering 214 file layers: 16 GEMM_mnk layers, 123 conv_nets layers and all 75 random
layers (after the depthwise expansion). The skipped runs are simply absent from the goldens;
``scalesim_topology_layers.csv`` still lists their parse. SCALE-Sim layers are independent (every
layer gets a fresh ``single_layer_sim`` and memory system in ``simulator.run``), so each unique
parsed layer is run once, alone, as a one-row topology file of the same format (conv or GEMM),
and its result is written for every file row with that parse.

Columns of ``scalesim_topology_goldens.csv``: ``topology_file`` (path under
``scalesim_topologies/``), ``layer_index`` (0-based, after SCALE-Sim's depthwise expansion),
``layer_name`` (as SCALE-Sim's parser stores it), ``input_type`` (conv / gemm), the parsed conv
fields ``ifmap_h, ifmap_w, filter_h, filter_w, channels, num_filters, stride_h, stride_w``,
``ofmap_h, ofmap_w`` (SCALE-Sim's ``topo_calc_hyperparams``), ``M, N, K`` observed from
SCALE-Sim's own operand matrices (ifmap M x K, filter K x N, ofmap M x N; asserted consistent),
``ifmap_pad_entries`` (entries of the ifmap operand matrix that are -1: window positions past
the input edge), ``rows, cols, dataflow``, the SRAM sizes, and every COMPUTE_REPORT,
BANDWIDTH_REPORT and DETAILED_ACCESS_REPORT column (names as in ``scalesim_goldens.csv``;
``total_cycles`` is COMPUTE_REPORT's "Total Cycles").
"""

from __future__ import annotations

import argparse
import csv
import glob
import math
import multiprocessing
import os
import random
import sys
import time

import _scalesim_run as SR

HERE = os.path.dirname(os.path.abspath(__file__))
TOPO_DIR = os.path.join(HERE, "scalesim_topologies")
RANDOM_FILE = "random_conv.csv"
SEED = 20261203
N_RANDOM = 66
N_RANDOM_DP = 3
CYCLE_CAP = 60_000
LARGE_SRAM_KB = 4096
ARRAYS = ((32, 32), (8, 8), (16, 64))
RANDOM_ARRAYS = ((8, 8), (4, 4), (16, 4), (5, 7), (32, 32), (8, 16), (3, 12), (16, 64))
DATAFLOWS = ("os", "ws", "is")
CONV_HEADER = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
               "Num Filter, Strides,\n")
PARSE_COLS = ("ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "num_filters",
              "stride_h", "stride_w")
LAYER_COLS = (("topology_file", "parse_status", "layer_index", "layer_name", "input_type")
              + PARSE_COLS + ("sparsity_n", "sparsity_m", "ofmap_h", "ofmap_w",
                              "ofmap_px_per_filter", "window_size", "num_macs"))
GOLDEN_COLS = (("topology_file", "layer_index", "layer_name", "input_type") + PARSE_COLS
               + ("ofmap_h", "ofmap_w", "M", "N", "K", "ifmap_pad_entries", "rows", "cols",
                  "dataflow", "ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb")
               + SR.GEN.HEAD_COLS + SR.GEN.BANDWIDTH_COLS
               + tuple(c for c in SR.GEN.DETAIL_COLS if c not in SR.GEN.HEAD_COLS))


# --------------------------------------------------------------------------- random layers
def _random_layer(rng: random.Random, kind: str) -> tuple[int, ...]:
    """One conv layer (H, W, Fh, Fw, C, Nf, S) of the given kind; small enough to run fast."""
    while True:
        h, w = rng.randint(3, 18), rng.randint(3, 18)
        c, nf = rng.randint(1, 12), rng.randint(1, 20)
        if kind == "nondiv":  # stride does not divide H - Fh (nor, usually, W - Fw)
            s = rng.randint(2, 4)
            fh, fw = rng.randint(1, min(5, h)), rng.randint(1, min(5, w))
            if (h - fh) % s == 0:
                continue
        elif kind == "nonsquare":
            s = rng.randint(1, 3)
            h, w = rng.sample(range(3, 19), 2)
            fh, fw = rng.sample(range(1, min(h, w, 6) + 1), 2) if min(h, w) >= 2 else (1, 1)
        elif kind == "full":  # filter as tall as the input (Fh = H), sometimes as wide too
            h = rng.randint(1, 7)
            fh = h
            fw = w if rng.random() < 0.4 else rng.randint(1, min(w, 5))
            s = rng.randint(1, 3)
        elif kind == "1x1":
            fh = fw = 1
            s = rng.choice((1, 1, 2, 3))
            c = rng.randint(1, 24)
        elif kind == "stride_gt_filter":
            fh, fw = rng.randint(1, 3), rng.randint(1, 3)
            s = rng.randint(max(fh, fw) + 1, 5)
        else:  # generic
            fh, fw = rng.randint(1, min(h, 5)), rng.randint(1, min(w, 5))
            s = rng.randint(1, 3)
        oh, ow = math.ceil((h - fh + s) / s), math.ceil((w - fw + s) / s)
        if oh * ow <= 256 and fh * fw * c <= 150:
            return h, w, fh, fw, c, nf, s


def random_topology_text(n: int = N_RANDOM, n_dp: int = N_RANDOM_DP, seed: int = SEED) -> str:
    """The text of ``random_conv.csv``: ``n`` conv rows cycling through the kinds, ``n_dp``
    depthwise rows (name contains ``DP``: SCALE-Sim expands them per channel), with irregular
    whitespace around fields (SCALE-Sim strips each field)."""
    rng = random.Random(seed)
    kinds = ("nondiv", "nonsquare", "full", "1x1", "stride_gt_filter", "generic")
    lines = [CONV_HEADER]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        vals = _random_layer(rng, kind)
        sep = rng.choice((",", ", ", " , ", ",\t"))
        lines.append(f"r{i:02d}_{kind}{sep}" + sep.join(str(v) for v in vals) + ",\n")
    for i in range(n_dp):
        h, w, fh, fw, c, nf, s = _random_layer(rng, "generic")
        lines.append(f"DP{i}_depthwise, {h}, {w}, {fh}, {fw}, {rng.randint(2, 4)}, {nf}, {s},\n")
    return "".join(lines)


# --------------------------------------------------------------------------- parsing
def topology_files() -> list[str]:
    """Topology files under scalesim_topologies/, relative paths, sorted."""
    paths = glob.glob(os.path.join(TOPO_DIR, "*", "*.csv")) + [os.path.join(TOPO_DIR, RANDOM_FILE)]
    return sorted(os.path.relpath(p, TOPO_DIR) for p in paths)


def is_gemm_file(rel: str) -> bool:
    """GEMM_mnk files are read with ``-i gemm`` (``mnk_inputs=True``), all others as conv."""
    return rel.startswith("GEMM_mnk")


def parse_file(rel: str) -> list[dict]:
    """Rows of scalesim_topology_layers.csv for one file, from SCALE-Sim's own parser."""
    from scalesim.topology_utils import topologies

    topo = topologies()
    gemm = is_gemm_file(rel)
    try:
        topo.load_arrays(topofile=os.path.join(TOPO_DIR, rel), mnk_inputs=gemm)
        topo.topo_calc_hyperparams()
    except Exception as exc:  # noqa: BLE001 -- the exception itself is the recorded result
        msg = f"error: {type(exc).__name__}: {exc}".replace("\n", " ")
        return [{"topology_file": rel, "parse_status": msg}]
    rows = []
    for i, entry in enumerate(topo.topo_arrays):
        oh, ow, macs, win = topo.layers_calculated_hyperparams[i]
        row = {"topology_file": rel, "parse_status": "ok", "layer_index": i,
               "layer_name": entry[0], "input_type": "gemm" if gemm else "conv",
               "sparsity_n": entry[9], "sparsity_m": entry[10], "ofmap_h": oh, "ofmap_w": ow,
               "ofmap_px_per_filter": oh * ow, "window_size": win, "num_macs": macs}
        row.update(zip(PARSE_COLS, entry[1:9]))
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- runs
def work(M: int, N: int, K: int, R: int, C: int, df: str) -> int:
    """Run-time proxy: stall-free cycles (SCALE-Sim's time is about linear in them)."""
    return SR.GEN.closed_form_cycles(M, N, K, R, C, df)


def _layer_key(row: dict) -> tuple:
    return (row["input_type"],) + tuple(row[c] for c in PARSE_COLS) + (row["sparsity_n"],
                                                                        row["sparsity_m"])


def _one_layer_text(key: tuple) -> str:
    kind, h, w, fh, fw, c, nf, sh, sw, spn, spm = key
    if (spn, spm) != (1, 1) or sh != sw:
        raise ValueError(f"unsupported layer for a one-row rerun: {key}")
    if kind == "gemm":  # SCALE-Sim stores a GEMM row as [M, K, 1, K, 1, N, 1, 1]
        return f"Layer, M, N, K,\nlayer, {h}, {nf}, {w},\n"
    return CONV_HEADER + f"layer, {h}, {w}, {fh}, {fw}, {c}, {nf}, {sh},\n"


def _operand_info(layer) -> dict:
    import numpy as np

    om = layer.op_mat_obj
    (m, k), (k2, n), (m2, n2) = (om.ifmap_addr_matrix.shape, om.filter_addr_matrix.shape,
                                 om.ofmap_addr_matrix.shape)
    if (m, k, n) != (m2, k2, n2):
        raise RuntimeError(f"operand shapes disagree: ifmap {m}x{k}, filter {k2}x{n}, "
                           f"ofmap {m2}x{n2}")
    return {"M": m, "N": n, "K": k, "ifmap_pad_entries": int(np.sum(om.ifmap_addr_matrix == -1))}


def run_one(job: tuple) -> tuple[tuple, dict]:
    """Run one unique layer (``key``) on one array and dataflow; return (job, report row)."""
    key, rows, cols, df = job
    cfg = SR.config_text(rows=rows, cols=cols, dataflow=df, ifmap_kb=LARGE_SRAM_KB,
                         filter_kb=LARGE_SRAM_KB, ofmap_kb=LARGE_SRAM_KB)
    res, wall = SR.run_scalesim(cfg, _one_layer_text(key), key[0] == "gemm", extra=_operand_info)
    if len(res) != 1:
        raise RuntimeError(f"{key}: expected one layer, got {len(res)}")
    print(f"{str(key):58s} {rows}x{cols} {df} cycles={res[0]['total_cycles']:>8s} "
          f"wall={wall:6.2f}s", file=sys.stderr, flush=True)
    return job, res[0]


def plan(layer_rows: list[dict]) -> list[tuple]:
    """Unique (layer key, rows, cols, dataflow) jobs under CYCLE_CAP."""
    jobs = {}
    for row in layer_rows:
        if row["parse_status"] != "ok":
            continue
        key = _layer_key(row)
        m, n, k = row["ofmap_px_per_filter"], row["num_filters"], row["window_size"]
        if row["topology_file"] == RANDOM_FILE:
            idx = int(row["layer_name"][1:3]) if row["layer_name"][0] == "r" else 0
            arrays = (RANDOM_ARRAYS[idx % len(RANDOM_ARRAYS)],)
        else:
            arrays = ARRAYS
        for r, c in arrays:
            for df in DATAFLOWS:
                if work(m, n, k, r, c, df) <= CYCLE_CAP:
                    jobs[(key, r, c, df)] = work(m, n, k, r, c, df)
    return sorted(jobs, key=lambda j: -jobs[j])  # longest first: no straggler at the end


def _write_csv(path: str, cols: tuple, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, lineterminator="\n", restval="")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in cols})


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    ap.add_argument("--parse-only", action="store_true",
                    help="write random_conv.csv and the layer table, run nothing")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        raise SystemExit(f"--jobs={args.jobs} must be >= 1")
    SR.check_versions()
    t0 = time.perf_counter()
    with open(os.path.join(TOPO_DIR, RANDOM_FILE), "w") as f:
        f.write(random_topology_text())
    layer_rows = [r for rel in topology_files() for r in parse_file(rel)]
    _write_csv(os.path.join(HERE, "scalesim_topology_layers.csv"), LAYER_COLS, layer_rows)
    print(f"parsed {len(layer_rows)} layer rows", file=sys.stderr)
    if args.parse_only:
        return 0
    jobs = plan(layer_rows)
    print(f"{len(jobs)} SCALE-Sim runs", file=sys.stderr, flush=True)
    if args.jobs == 1:
        results = dict(map(run_one, jobs))
    else:
        with multiprocessing.Pool(args.jobs, maxtasksperchild=25) as pool:
            results = dict(pool.imap_unordered(run_one, jobs, chunksize=1))
    out = []
    for row in layer_rows:
        if row["parse_status"] != "ok":
            continue
        key = _layer_key(row)
        for (k, r, c, df), res in ((j, results[j]) for j in jobs if j[0] == key):
            lowered = (row["ofmap_px_per_filter"], row["num_filters"], row["window_size"])
            if (res["M"], res["N"], res["K"]) != lowered:
                raise RuntimeError(f"{row['topology_file']}:{row['layer_name']}: operand "
                                   f"matrices give {res['M'], res['N'], res['K']}, parse {lowered}")
            g = {**row, **res, "layer_name": row["layer_name"], "rows": r, "cols": c,
                 "dataflow": df, "ifmap_sram_kb": LARGE_SRAM_KB,
                 "filter_sram_kb": LARGE_SRAM_KB, "ofmap_sram_kb": LARGE_SRAM_KB}
            out.append(g)
    out.sort(key=lambda g: (g["topology_file"], g["layer_index"], ARRAYS.index((g["rows"], g["cols"]))
                            if (g["rows"], g["cols"]) in ARRAYS else 9, g["rows"], g["cols"],
                            DATAFLOWS.index(g["dataflow"])))
    _write_csv(os.path.join(HERE, "scalesim_topology_goldens.csv"), GOLDEN_COLS, out)
    print(f"wrote {len(out)} golden rows from {len(jobs)} runs in "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
