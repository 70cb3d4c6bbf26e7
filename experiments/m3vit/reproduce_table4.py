"""Regenerate the M3ViT Table 4 comparison (FPGA rows): paper vs model, error %.

Run:  python experiments/m3vit/reproduce_table4.py [--out experiments/m3vit/results]

Writes ``table4.md`` (tables) and ``table4.csv`` (one row per quantity) and
prints the markdown.  Paper numbers: m3vit.md §2.4 (Table 4) and §2.5 (the
11.610 MiB naive design, the 2.40x / 9.23x / 8.88x ratios).  Tolerances are the
issue's: dense and reordered latency 5%, reordered within 1% of dense, memory
5%, cache-based latency 15%.  The calibration sweeps at the end show the
PASCAL-only choices (calibration.md): the MAC array width and the DRAM port count.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from simulators.m3vit import DEFAULT_DESIGN, PAPER_TABLE4, simulate

HERE = Path(__file__).parent
MIB = 2.0**20


def rows() -> list[dict]:
    """Every compared quantity: name, paper, model, error %, tolerance %, pass."""
    out = []

    def add(name: str, paper: float, model: float, tol: float, unit: str) -> None:
        err = (model / paper - 1.0) * 100.0
        out.append({"quantity": name, "unit": unit, "paper": paper, "model": model, "error_pct": err,
                    "tolerance_pct": tol, "pass": abs(err) <= tol})

    lat = {}
    for ds in ("pascal", "nyud"):
        for s in ("dense", "reorder", "cache"):
            m = simulate(ds, s)
            lat[ds, s] = m.latency_s * 1e3
            tol = 15.0 if s == "cache" else 5.0
            add(f"{s} latency, {ds}", PAPER_TABLE4[s][f"{ds}_ms"], lat[ds, s], tol, "ms")
            add(f"{s} energy (10 W), {ds}", PAPER_TABLE4[s][f"{ds}_ms"] * 10 / 1e3, m.energy_j, tol, "J")
        pd_ = PAPER_TABLE4["reorder"][f"{ds}_ms"] / PAPER_TABLE4["dense"][f"{ds}_ms"]
        add(f"reorder / dense latency, {ds}", pd_, lat[ds, "reorder"] / lat[ds, "dense"], 1.0, "ratio")
        pc = PAPER_TABLE4["cache"][f"{ds}_ms"] / PAPER_TABLE4["reorder"][f"{ds}_ms"]
        add(f"cache / reorder energy (the {pc:.2f}x), {ds}", pc, lat[ds, "cache"] / lat[ds, "reorder"], 15.0,
            "ratio")
    mem = {s: simulate("pascal", s).onchip_bytes / MIB for s in ("dense", "reorder", "cache", "naive")}
    for s in ("dense", "reorder", "cache", "naive"):
        add(f"on-chip memory, {s}", PAPER_TABLE4[s]["memory_mib"], mem[s], 5.0, "MiB")
    paper_mem = PAPER_TABLE4["naive"]["memory_mib"] / PAPER_TABLE4["reorder"]["memory_mib"]
    add("naive / reorder memory (the 2.40x)", paper_mem, mem["naive"] / mem["reorder"], 5.0, "ratio")
    return out


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
            f"Model: `simulators.m3vit`, default design {DEFAULT_DESIGN}, uniform routing seed 0, fixed 10 W.", "",
            "| quantity | unit | paper | model | error | tolerance | pass |", "|---|---|---|---|---|---|---|"]
    body = [f"| {r['quantity']} | {r['unit']} | {r['paper']:.4g} | {r['model']:.4g} | {r['error_pct']:+.2f}% "
            f"| {r['tolerance_pct']:g}% | {'yes' if r['pass'] else 'NO'} |" for r in table]
    return "\n".join(head + body + sweeps()) + "\n"


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
