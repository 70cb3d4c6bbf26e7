"""ZigZag 3.9.1 cross-check of archgym's systolic architecture (issue #15 item 3).

Models archgym's systolic design (an R x C MAC array, three SRAMs for ifmap I, filter W and
ofmap O incl. partial sums, one DRAM) in ZigZag (``zigzag-dse==3.9.1``, KU Leuven MICAS), runs
ZigZag's mapper (LOMA temporal mapping, fixed spatial mapping per dataflow, best mapping by
energy) on Llama-2-7B prefill/decode GEMMs and ResNet-18 convolutions, and saves ZigZag's
outputs so archgym's tests can check them without ZigZag installed (each layer twice: the
best mapping by energy, ``opt=energy``, and the best by latency, ``opt=latency``):

* ``zigzag_results.csv``: one row per (design, layer): per-operand DRAM traffic in bits
  (``dram_I_read_bits``, ``dram_W_read_bits``, ``dram_O_write_bits``, ``dram_O_read_bits`` = partial
  sums read back), energy in pJ (total, MAC, each SRAM, DRAM per operand), latency cycles and its
  parts, utilisation, and the mapping as text;
* ``zigzag_mappings.json``: the same rows keyed by ``design/group/layer/form/opt`` with the spatial and
  temporal mapping per operand and memory level (innermost loop first) and the word accesses per
  level and direction, as ZigZag reports them.

ZigZag is never a runtime dependency: it lives in its own virtualenv (any location)::

    python3 -m venv venvs/zigzag
    venvs/zigzag/bin/pip install zigzag-dse==3.9.1 six   # six: undeclared import of 3.9.1
    venvs/zigzag/bin/python experiments/systolic/run_zigzag.py --jobs 2

Modelling (the note ``zigzag_crosscheck.md`` lists every assumption and what could not match):

* operational array: R x C multipliers (ZigZag dims D1 = rows, D2 = cols, both systolic), one
  MAC = 0.3 pJ (archgym TECH: 0.2 pJ 8x8 multiply * a*w/64 + 0.1 pJ 32-bit add);
* per-PE registers for I (8 bit), W (8 bit) and O (32 bit) with zero energy: archgym charges
  no register energy, and ZigZag needs a level below the SRAMs for stationarity;
* SRAMs of the design's sizes (full size, not archgym's active half), energy per bit
  10/64 * sqrt(kB / 8) pJ (archgym TECH, Horowitz ISSCC 2014); ports of min 8 bit so ZigZag's
  access rounding is per 8-bit word; ports max(R, C) words wide so the SRAMs never stall;
* DRAM: 1300/64 pJ per bit, one read/write port of ``dram_bytes_per_cycle * 8`` bits/cycle;
* precisions: I 8, W 8, O 32 (partial sums), O_final 8;
* spatial mapping fixed by the dataflow: ws = D1 <- reduction (GEMM K / conv C), D2 <- N
  (conv K); os = D1 <- M (conv OX), D2 <- N (conv K). The temporal mapping is ZigZag's LOMA
  search (``lpf_limit`` 6), best by energy and, separately, best by latency.

Layers: Llama-2-7B (hidden 4096, FFN 11008, 32 heads of 128, vocab 32000) prefill at sequence
256 and decode (M = 1, 256 cached tokens); ResNet-18 conv1 and each distinct 3x3/1x1 conv
(ImageNet 224x224). Each is run as the GEMM archgym sees (``form=gemm``; a conv is lowered by
im2col: M = OH*OW, K = Fh*Fw*C, N = filters), and each conv also in ZigZag's native conv form
(``form=conv``; the input size follows from ZigZag's relation ix = s*ox + fx, i.e. no padding
term). Layers with the same shape (q/k/v/o, gate/up) are run once and written once per name.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DRAM_PJ_PER_BIT = 1300.0 / 64.0
MAC_PJ = 0.2 * 8 * 8 / 64 + 0.1
BITS = {"I1": 8, "I2": 8, "O": 32}
OPERANDS = {"I": "I1", "W": "I2", "O": "O"}  # layer operand -> ZigZag memory operand

# name: (rows, cols, dataflow, ifmap kB, filter kB, ofmap kB, DRAM bytes/cycle)
DESIGNS = {
    "32x32_ws": (32, 32, "ws", 256, 256, 128, 32),
    "128x128_os": (128, 128, "os", 512, 512, 256, 64),
    "16x64_ws_small": (16, 64, "ws", 32, 32, 32, 16),
}

SEQ, HID, FFN, HEAD, VOCAB = 256, 4096, 11008, 128, 32000
LLAMA = [  # (phase, names, M, N, K)
    ("prefill", ("q_proj", "k_proj", "v_proj", "o_proj"), SEQ, HID, HID),
    ("prefill", ("gate_proj", "up_proj"), SEQ, FFN, HID),
    ("prefill", ("down_proj",), SEQ, HID, FFN),
    ("prefill", ("attn_qk_per_head",), SEQ, SEQ, HEAD),
    ("prefill", ("attn_av_per_head",), SEQ, HEAD, SEQ),
    ("prefill", ("lm_head",), SEQ, VOCAB, HID),
    ("decode", ("q_proj", "k_proj", "v_proj", "o_proj"), 1, HID, HID),
    ("decode", ("gate_proj", "up_proj"), 1, FFN, HID),
    ("decode", ("down_proj",), 1, HID, FFN),
    ("decode", ("attn_qk_per_head",), 1, SEQ, HEAD),
    ("decode", ("attn_av_per_head",), 1, HEAD, SEQ),
    ("decode", ("lm_head",), 1, VOCAB, HID),
]
RESNET18 = [  # (name, OH=OW, Fh=Fw, C, K filters, stride)
    ("conv1_7x7_s2", 112, 7, 3, 64, 2),
    ("layer1_3x3_64", 56, 3, 64, 64, 1),
    ("layer2_3x3_s2_64_128", 28, 3, 64, 128, 2),
    ("layer2_3x3_128", 28, 3, 128, 128, 1),
    ("layer2_1x1_s2_64_128", 28, 1, 64, 128, 2),
    ("layer3_3x3_s2_128_256", 14, 3, 128, 256, 2),
    ("layer3_3x3_256", 14, 3, 256, 256, 1),
    ("layer3_1x1_s2_128_256", 14, 1, 128, 256, 2),
    ("layer4_3x3_s2_256_512", 7, 3, 256, 512, 2),
    ("layer4_3x3_512", 7, 3, 512, 512, 1),
    ("layer4_1x1_s2_256_512", 7, 1, 256, 512, 2),
]

LEVELS = ("reg", "sram", "dram")
COLS = ("design", "rows", "cols", "dataflow", "ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb",
        "dram_bytes_per_cycle", "group", "layer", "form", "M", "N", "K", "ofmap_hw", "filter_hw",
        "channels", "stride", "opt", "energy_total_pj", "mac_energy_pj")
COLS += tuple(f"energy_{lv}_{op}_pj" for lv in LEVELS[1:] for op in OPERANDS)
COLS += ("dram_I_read_bits", "dram_W_read_bits", "dram_O_write_bits", "dram_O_read_bits",
         "sram_I_read_bits", "sram_W_read_bits", "sram_O_write_bits", "sram_O_read_bits",
         "latency_cycles", "ideal_cycles", "ideal_temporal_cycles", "stall_slack_cycles",
         "onloading_cycles", "offloading_cycles", "mac_utilization", "spatial_mapping",
         "temporal_mapping")


def sram_pj_per_bit(kb: float) -> float:
    """archgym's SRAM energy per bit (TECH: 10 pJ per 64-bit access at 8 kB, ~ sqrt(size))."""
    return 10.0 / 64.0 * math.sqrt(kb / 8.0)


def _port(name: str, kind: str, bw_min: int, bw_max: int, alloc: list[str]) -> dict:
    return {"name": name, "type": kind, "bandwidth_min": bw_min, "bandwidth_max": bw_max,
            "allocation": alloc}


def hardware(design: str) -> dict:
    """ZigZag accelerator description (the YAML content) of one design."""
    rows, cols, _df, kb_i, kb_w, kb_o, dram_bytes = DESIGNS[design]
    mem = {}
    for op, bits in BITS.items():  # per-PE registers, free (archgym charges no register energy)
        ports = [_port("w_port_1", "write", bits, bits, [f"{op}, fh"]),
                 _port("r_port_1", "read", bits, bits, [f"{op}, tl"])]
        if op == "O":
            ports += [_port("w_port_2", "write", bits, bits, ["O, fl"]),
                      _port("r_port_2", "read", bits, bits, ["O, th"])]
        mem[f"reg_{op}"] = {"size": bits, "r_cost": 0.0, "w_cost": 0.0, "area": 0.0,
                            "latency": 1, "operands": [op], "ports": ports,
                            "served_dimensions": []}
    for op, kb in (("I1", kb_i), ("I2", kb_w), ("O", kb_o)):
        bw = max(rows, cols) * BITS[op]
        cost = sram_pj_per_bit(kb) * bw  # ZigZag charges r/w_cost per max-bandwidth access
        if op == "O":
            ports = [_port("r_port_1", "read", 8, bw, ["O, tl", "O, th"]),
                     _port("w_port_1", "write", 8, bw, ["O, fl", "O, fh"])]
        else:
            ports = [_port("r_port_1", "read", 8, bw, [f"{op}, tl"]),
                     _port("w_port_1", "write", 8, bw, [f"{op}, fh"])]
        mem[f"sram_{op}"] = {"size": kb * 8192, "r_cost": cost, "w_cost": cost, "area": 0.0,
                             "latency": 1, "operands": [op], "ports": ports,
                             "served_dimensions": ["D1", "D2"]}
    dbw = dram_bytes * 8
    alloc = [f"{op}, {d}" for op in ("I1", "I2") for d in ("fh", "tl")]
    alloc += [f"O, {d}" for d in ("fh", "tl", "fl", "th")]
    mem["dram"] = {"size": 10**12, "r_cost": DRAM_PJ_PER_BIT * dbw,
                   "w_cost": DRAM_PJ_PER_BIT * dbw, "area": 0.0, "latency": 1,
                   "operands": ["I1", "I2", "O"],
                   "ports": [_port("rw_port_1", "read_write", 8, dbw, alloc)],
                   "served_dimensions": ["D1", "D2"]}
    return {"name": f"archgym_{design}", "memories": mem,
            "operational_array": {"unit_energy": MAC_PJ, "unit_area": 1.0,
                                  "dimensions": ["D1", "D2"], "sizes": [rows, cols],
                                  "systolic_dimensions": ["D1", "D2"]}}


def mapping(design: str, form: str) -> list[dict]:
    """ZigZag mapping file content: the spatial unrolling that makes the design's dataflow."""
    rows, cols, df = DESIGNS[design][:3]
    if form == "gemm":  # O[d0][d1] += I[d0][d2] * W[d2][d1]: d0 = M, d1 = N, d2 = K
        sm = {"D1": [f"D2, {rows}"], "D2": [f"D1, {cols}"]} if df == "ws" else \
             {"D1": [f"D0, {rows}"], "D2": [f"D1, {cols}"]}
    else:
        sm = {"D1": [f"C, {rows}"], "D2": [f"K, {cols}"]} if df == "ws" else \
             {"D1": [f"OX, {rows}"], "D2": [f"K, {cols}"]}
    return [{"name": "default", "spatial_mapping": sm,
             "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}]


def layers() -> list[dict]:
    """Unique layers to run, each with the names it stands for."""
    out = []
    for phase, names, m, n, k in LLAMA:
        out.append({"group": f"llama2_7b_{phase}", "names": list(names), "form": "gemm",
                    "M": m, "N": n, "K": k})
    for name, o, f, c, kf, s in RESNET18:
        base = {"group": "resnet18", "names": [name], "ofmap_hw": o, "filter_hw": f,
                "channels": c, "stride": s, "M": o * o, "N": kf, "K": f * f * c}
        out.append({**base, "form": "gemm"})
        out.append({**base, "form": "conv"})
    return out


def workload(layer: dict) -> list[dict]:
    """ZigZag workload (list-of-dicts form of the YAML) of one layer."""
    prec = {"W": 8, "I": 8, "O": 32, "O_final": 8}
    if layer["form"] == "gemm":
        return [{"id": 0, "name": "layer", "operator_type": "Gemm",
                 "equation": "O[d0][d1]+=I[d0][d2]*W[d2][d1]", "dimension_relations": [],
                 "loop_dims": ["D0", "D1", "D2"], "loop_sizes": [layer["M"], layer["N"], layer["K"]],
                 "operand_precision": prec, "operand_source": {"I": 0, "W": 0}}]
    s, f, o = layer["stride"], layer["filter_hw"], layer["ofmap_hw"]
    return [{"id": 0, "name": "layer", "operator_type": "Conv",
             "equation": "O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]",
             "dimension_relations": [f"ix={s}*ox+1*fx", f"iy={s}*oy+1*fy"],
             "loop_dims": ["B", "K", "C", "OY", "OX", "FY", "FX"],
             "loop_sizes": [1, layer["N"], layer["channels"], o, o, f, f],
             "operand_precision": prec, "operand_source": {"I": 0, "W": 0}}]


def _loops(levels) -> list[list[str]]:
    return [[f"{dim}:{int(size) if float(size).is_integer() else size}" for dim, size in lv]
            for lv in levels]


def run_one(job: tuple[str, dict]) -> dict:
    """Run ZigZag on one (design, layer); return the result row plus mapping details."""
    import yaml
    from zigzag.api import get_hardware_performance_zigzag
    from zigzag.mapping.data_movement import DataDirection as DD

    design, layer, opt = job
    rows, cols, df, kb_i, kb_w, kb_o, dram_bytes = DESIGNS[design]
    with tempfile.TemporaryDirectory(prefix="zigzag_") as tmp:
        hw_path, map_path = os.path.join(tmp, "hw.yaml"), os.path.join(tmp, "map.yaml")
        with open(hw_path, "w") as f:
            yaml.safe_dump(hardware(design), f, sort_keys=False)
        with open(map_path, "w") as f:
            yaml.safe_dump(mapping(design, layer["form"]), f, sort_keys=False)
        t0 = time.perf_counter()
        _e, _l, cmes = get_hardware_performance_zigzag(
            workload=workload(layer), accelerator=hw_path, mapping=map_path, opt=opt,
            dump_folder=os.path.join(tmp, "out"), lpf_limit=6, loma_show_progress_bar=False)
        wall = time.perf_counter() - t0
    cme = cmes[0][1][0][0]
    row = {"design": design, "rows": rows, "cols": cols, "dataflow": df, "ifmap_sram_kb": kb_i,
           "filter_sram_kb": kb_w, "ofmap_sram_kb": kb_o, "dram_bytes_per_cycle": dram_bytes,
           "group": layer["group"], "form": layer["form"], "opt": opt,
           **{k: layer.get(k, "") for k in ("M", "N", "K", "ofmap_hw", "filter_hw", "channels",
                                             "stride")},
           "energy_total_pj": cme.energy_total, "mac_energy_pj": cme.mac_energy,
           "latency_cycles": cme.latency_total2, "ideal_cycles": cme.ideal_cycle,
           "ideal_temporal_cycles": cme.ideal_temporal_cycle,
           "stall_slack_cycles": cme.stall_slack_comb, "onloading_cycles": cme.data_onloading_cycle,
           "offloading_cycles": cme.data_offloading_cycle,
           "mac_utilization": cme.mac_utilization2}
    words = {}
    for op, mem_op in OPERANDS.items():
        lop = next(x for x in cme.memory_word_access if str(x) == op)
        acc, energy = cme.memory_word_access[lop], cme.mem_energy_breakdown[lop]
        if len(acc) != 3 or energy[0] != 0:
            raise RuntimeError(f"{design}/{layer['names'][0]}: unexpected levels for {op}")
        sram_bw, dram_bw = max(rows, cols) * BITS[mem_op], dram_bytes * 8
        row[f"energy_sram_{op}_pj"], row[f"energy_dram_{op}_pj"] = energy[1], energy[2]
        words[op] = [{d.value: int(a.get(d)) for d in DD} for a in acc]
        if op == "O":
            row["dram_O_write_bits"] = acc[2].get(DD.WR_IN_BY_LOW) * dram_bw
            row["dram_O_read_bits"] = acc[2].get(DD.RD_OUT_TO_LOW) * dram_bw
            row["sram_O_write_bits"] = (acc[1].get(DD.WR_IN_BY_LOW)
                                        + acc[1].get(DD.WR_IN_BY_HIGH)) * sram_bw
            row["sram_O_read_bits"] = (acc[1].get(DD.RD_OUT_TO_LOW)
                                       + acc[1].get(DD.RD_OUT_TO_HIGH)) * sram_bw
        else:
            row[f"dram_{op}_read_bits"] = acc[2].get(DD.RD_OUT_TO_LOW) * dram_bw
            row[f"sram_{op}_read_bits"] = acc[1].get(DD.RD_OUT_TO_LOW) * sram_bw
    tm = {str(op): _loops(lv) for op, lv in cme.temporal_mapping.mapping_dic_stationary.items()}
    sm = str(cme.spatial_mapping)
    row["spatial_mapping"] = sm
    row["temporal_mapping"] = "; ".join(
        f"{op}: " + " | ".join(f"{LEVELS[i]}[{' '.join(lv)}]" for i, lv in enumerate(levels))
        for op, levels in sorted(tm.items()))
    print(f"{design:16s} {layer['group']:18s} {layer['names'][0]:24s} {layer['form']:4s} {opt} "
          f"E={cme.energy_total:.4g} pJ lat={cme.latency_total2:.0f} wall={wall:5.1f}s",
          file=sys.stderr, flush=True)
    return {"row": row, "names": layer["names"], "detail": {
        "spatial_mapping": sm, "temporal_mapping_innermost_first": tm, "word_accesses": words}}


def _cached_run(job: tuple[str, dict, str, str]) -> dict:
    design, layer, opt, cache_dir = job
    if not cache_dir:
        return run_one((design, layer, opt))
    tail = "" if opt == "energy" else f"__{opt}"
    name = f"{design}__{layer['group']}__{layer['names'][0]}__{layer['form']}{tail}.json"
    path = os.path.join(cache_dir, name)
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    res = run_one((design, layer, opt))
    os.makedirs(cache_dir, exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(res, f)
    os.replace(path + ".tmp", path)
    return res


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    ap.add_argument("--only", default="", help="comma-separated design names (default: all)")
    ap.add_argument("--opt", default="energy,latency",
                    help="ZigZag's mapping criteria, comma-separated (default energy,latency)")
    ap.add_argument("--cache-dir", default="",
                    help="keep each run's result here and reuse it (resumable runs)")
    args = ap.parse_args(argv)
    from importlib.metadata import version
    if version("zigzag-dse") != "3.9.1":
        raise SystemExit(f"need zigzag-dse 3.9.1, got {version('zigzag-dse')}")
    designs = args.only.split(",") if args.only else list(DESIGNS)
    bad = [d for d in designs if d not in DESIGNS]
    if bad:
        raise SystemExit(f"unknown design {bad[0]!r}; choose from {sorted(DESIGNS)}")
    opts = args.opt.split(",")
    if not set(opts) <= {"energy", "latency"}:
        raise SystemExit(f"--opt={args.opt!r}; allowed: energy, latency (comma-separated)")
    jobs = [(d, lay, o, args.cache_dir) for o in opts for d in designs for lay in layers()]
    t0 = time.perf_counter()
    if args.jobs == 1:
        results = [_cached_run(j) for j in jobs]
    else:
        with multiprocessing.Pool(args.jobs, maxtasksperchild=4) as pool:
            results = pool.map(_cached_run, jobs, chunksize=1)
    rows, detail = [], {}
    for res in results:
        for name in res["names"]:
            row = {**res["row"], "layer": name}
            rows.append(row)
            detail[f"{row['design']}/{row['group']}/{name}/{row['form']}/{row['opt']}"] = {
                **{k: row[k] for k in COLS if k not in ("spatial_mapping", "temporal_mapping")},
                **res["detail"]}
    with open(os.path.join(HERE, "zigzag_results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(HERE, "zigzag_mappings.json"), "w") as f:
        json.dump(detail, f, indent=1, sort_keys=True)
    print(f"wrote {len(rows)} rows ({len(jobs)} ZigZag runs) in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
