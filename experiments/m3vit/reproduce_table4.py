"""Regenerate the M3ViT Table 4 comparison (FPGA rows): paper vs model, error %, calibration or held out.

Run:  python experiments/m3vit/reproduce_table4.py [--out experiments/m3vit/results]

Writes ``table4.md`` (tables) and ``table4.csv`` (one row per quantity) and prints the
markdown.  Paper numbers: tests/data/m3vit_paper.json (M3ViT, NeurIPS 2022, Table 4 and
§4.3: the 11.610 MiB naive design).  Tolerances: dense and reordered latency 5 %, reordered
within 1 % of dense, memory 5 %, cache-based latency 15 %.  "calibration" marks numbers a
constant was chosen on (PASCAL-Context only), "held out" the NYUD-v2 numbers predicted with
the same constants.  The sections at the end show the PASCAL-only choices (the MAC array
width, the DRAM port count, the static power) and the power the resource model predicts
for the paper's designs (the paper assumes 10 W for every one of them).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from simulators.m3vit import DEFAULT_DESIGN, TECH, simulate

HERE = Path(__file__).parent
PAPER = json.loads((HERE.parents[1] / "tests" / "data" / "m3vit_paper.json").read_text())
T4 = PAPER["table4"]
MIB = 2.0**20


def rows() -> list[dict]:
    """Every compared quantity: name, role, paper, model, error %, tolerance %, pass."""
    out = []

    def add(name: str, role: str, paper: float, model: float, tol: float, unit: str) -> None:
        err = (model / paper - 1.0) * 100.0
        out.append({"quantity": name, "role": role, "unit": unit, "paper": paper, "model": model, "error_pct": err,
                    "tolerance_pct": tol, "pass": abs(err) <= tol})

    lat = {}
    for ds in ("pascal", "nyud"):
        role = "calibration" if ds == "pascal" else "held out"
        for s in ("dense", "reorder", "cache"):
            m = simulate(ds, s, power="fixed")
            lat[ds, s] = m.latency_s * 1e3
            tol = 15.0 if s == "cache" else 5.0
            add(f"{s} latency, {ds}", role, T4[s][f"{ds}_ms"], lat[ds, s], tol, "ms")
            add(f"{s} energy (paper's fixed 10 W), {ds}", role, T4[s][f"{ds}_j"], m.energy_j, tol, "J")
        pd_ = T4["reorder"][f"{ds}_ms"] / T4["dense"][f"{ds}_ms"]
        add(f"reorder / dense latency, {ds}", role, pd_, lat[ds, "reorder"] / lat[ds, "dense"], 1.0, "ratio")
        pc = T4["cache"][f"{ds}_ms"] / T4["reorder"][f"{ds}_ms"]
        add(f"cache / reorder energy (the {pc:.2f}x), {ds}", role, pc, lat[ds, "cache"] / lat[ds, "reorder"], 15.0,
            "ratio")
    mem = {s: simulate("pascal", s).onchip_bytes / MIB for s in ("dense", "reorder", "cache", "naive")}
    for s in ("dense", "reorder", "cache"):   # the buffers' token capacity and the cache's 4 slots were chosen
        add(f"on-chip memory, {s}", "calibration", T4[s]["memory_mib"], mem[s], 5.0, "MiB")   # with these seen
    add("on-chip memory, naive", "held out", PAPER["naive_memory_mib"], mem["naive"], 5.0, "MiB")
    add("naive / reorder memory (the 2.40x)", "held out", PAPER["naive_memory_mib"] / T4["reorder"]["memory_mib"],
        mem["naive"] / mem["reorder"], 5.0, "ratio")
    add("power of the paper's design, pascal (resource model)", "calibration", PAPER["power_w"],
        simulate("pascal", "reorder").power_w, 0.01, "W")
    return out


def power_lines() -> list[str]:
    """The static-power fit and the resource model's predictions for the paper's designs."""
    m = simulate("pascal", "reorder")
    dynamic = m.power_w - TECH["static_w"]
    lines = ["", "## Power from the resources (the default `power=\"resources\"`)", "",
             f"Calibration: static power = {PAPER['power_w']:g} W - {dynamic:.4f} W (the paper design's clocked "
             f"resources, MACs and DRAM traffic on PASCAL) = {PAPER['power_w'] - dynamic:.4f} W "
             f"(`TECH[\"static_w\"]` = {TECH['static_w']:g}).  Everything below is a prediction: the paper "
             "measured no per-design power (it assumes 10 W for every FPGA design).", "",
             "| design | dataset | latency ms | power W | energy J | paper energy J (x 10 W) | "
             "static | DSP clock | BRAM | URAM | LUTRAM | MACs | DRAM |", "|---|---|---|---|---|---|" + "---|" * 7]
    for ds in ("pascal", "nyud"):
        for s in ("dense", "reorder", "cache", "naive"):
            r = simulate(ds, s)
            p = r.breakdown["unit:power"]
            paper = f"{T4[s][f'{ds}_j']:.3f}" if s in T4 else "-"
            lines.append(f"| {s} | {ds} | {r.latency_s * 1e3:.3f} | {r.power_w:.3f} | {r.energy_j:.4f} | {paper} | "
                         + " | ".join(f"{p[k]:.3f}" for k in ("static_w", "dsp_clock_w", "bram36_w", "uram_w",
                                                                "lutram_w", "mac_w", "dram_w")) + " |")
    return lines


def sweeps() -> list[str]:
    """The PASCAL-only calibration choices and two sensitivity checks, as markdown lines."""
    lines = ["", "## Calibration sweeps (PASCAL only)", "",
             "MAC array width `pe_out` (lanes of `pe_in` = 16, Edge-MoE's LINEAR_IN_SIZE), dense ViT-S, PASCAL:", "",
             "| pe_out | MACs/cycle | latency ms | vs 68.931 ms | feasible |", "|---|---|---|---|---|"]
    for po in (64, 80, 96, 112, 128):
        m = simulate("pascal", "dense", pe_out=po)
        lines.append(f"| {po} | {16 * po} | {m.latency_s * 1e3:.3f} | {(m.latency_s * 1e3 / 68.931 - 1) * 100:+.2f}% "
                     f"| {m.feasible} {m.reason} |")
    lines += ["", "DRAM bandwidth (256-bit AXI ports at 300 MHz), cache-based MoE, PASCAL:", "",
              "| AXI ports | GB/s | latency ms | vs 637.478 ms |", "|---|---|---|---|"]
    for ports in (1, 2, 4):
        m = simulate("pascal", "cache", dram_gbps=9.6 * ports)
        lines.append(f"| {ports} | {9.6 * ports:.1f} | {m.latency_s * 1e3:.3f} | "
                     f"{(m.latency_s * 1e3 / 637.478 - 1) * 100:+.2f}% |")
    lines += ["", "## Sensitivity (not used for calibration)", "",
              "| variant | PASCAL | NYUD |", "|---|---|---|"]
    for label, kw in (("cache, rank-order LRU (ms)", dict(cache_policy="rank_order")),
                      ("cache, routing seed 1 (ms)", dict(routing_seed=1)),
                      ("cache, Zipf s=1 routing (ms)", dict(routing_skew="zipf", zipf_s=1.0))):
        vals = [simulate(ds, "cache", **kw).latency_s * 1e3 for ds in ("pascal", "nyud")]
        lines.append(f"| {label} | {vals[0]:.3f} | {vals[1]:.3f} |")
    return lines


def render(table: list[dict]) -> str:
    head = ["# M3ViT Table 4: paper vs model", "",
            f"Model: `simulators.m3vit`, default design {DEFAULT_DESIGN}, uniform routing seed 0.  Latency and "
            "energy rows use the paper's own convention (`power=\"fixed\"`: energy = latency x 10 W); the last row "
            "is the resource power model's calibration point.  Role: `calibration` = a constant was chosen on it "
            "(PASCAL only); `held out` = predicted with those constants.", "",
            "| quantity | role | unit | paper | model | error | tolerance | pass |", "|---|---|---|---|---|---|---|---|"]
    body = [f"| {r['quantity']} | {r['role']} | {r['unit']} | {r['paper']:.4g} | {r['model']:.4g} | "
            f"{r['error_pct']:+.2f}% | {r['tolerance_pct']:g}% | {'yes' if r['pass'] else 'NO'} |" for r in table]
    return "\n".join(head + body + power_lines() + sweeps()) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "results", help="output folder")
    args = ap.parse_args()
    table = rows()
    args.out.mkdir(parents=True, exist_ok=True)
    md = render(table)
    (args.out / "table4.md").write_text(md)
    with open(args.out / "table4.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    print(md)
    if not all(r["pass"] for r in table):
        raise SystemExit("some quantities are outside their tolerance")


if __name__ == "__main__":
    main()
