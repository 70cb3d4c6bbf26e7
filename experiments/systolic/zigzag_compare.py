"""Table: archgym's systolic model vs ZigZag 3.9.1's best mapping (issue #15 item 3).

Reads ``zigzag_results.csv`` (ZigZag's outputs, committed; regenerate them with
``run_zigzag.py`` in ZigZag's own virtualenv) and evaluates the same (design, layer) pairs with
archgym's ``SystolicSimulator`` (``mode="default"``, 8-bit activations and weights, 1 GHz; area
budget lifted so every design is priced) and ``simulators.systolic.layer_model`` (DRAM read and
write bits). Convolutions are priced as the im2col GEMM archgym sees (rows with
``form=gemm``; the ``form=conv`` ZigZag rows are kept for reference with archgym's GEMM numbers).
Writes ``zigzag_compare.csv`` next to this script. Run in the project environment::

    python experiments/systolic/zigzag_compare.py

Columns: design and layer keys; ZigZag per-operand DRAM bits and archgym's DRAM read/write
bits; energies in pJ (total without static energy, MAC, SRAM, DRAM) of both; latency cycles of
both; ratios archgym / ZigZag for DRAM bits, DRAM energy, SRAM energy, total energy, cycles.
"""

from __future__ import annotations

import csv
import math
import os
import sys

from archgym.workloads.layers import Gemm, Workload
from simulators.systolic import SystolicSimulator, layer_model

HERE = os.path.dirname(os.path.abspath(__file__))
KEYS = ("design", "group", "layer", "form", "opt", "M", "N", "K", "rows", "cols", "dataflow",
        "ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb", "dram_bytes_per_cycle")
COLS = KEYS + (
    "zz_dram_I_read_bits", "zz_dram_W_read_bits", "zz_dram_O_write_bits", "zz_dram_O_read_bits",
    "ag_dram_read_bits", "ag_dram_write_bits",
    "zz_energy_pj", "ag_energy_pj", "zz_mac_pj", "ag_mac_pj", "zz_sram_pj", "ag_sram_pj",
    "zz_dram_pj", "ag_dram_pj", "zz_cycles", "ag_cycles",
    "ratio_dram_bits", "ratio_dram_energy", "ratio_sram_energy", "ratio_energy", "ratio_cycles",
    "zz_temporal_mapping")


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.4g}" if b else ""


def main() -> int:
    """Write zigzag_compare.csv; print a summary of the ratios."""
    sim = SystolicSimulator(mode="default", max_area_mm2=1e9)
    out = []
    with open(os.path.join(HERE, "zigzag_results.csv")) as f:
        for z in csv.DictReader(f):
            M, N, K = int(z["M"]), int(z["N"]), int(z["K"])
            design = dict(rows=int(z["rows"]), cols=int(z["cols"]), dataflow=z["dataflow"],
                          ifmap_sram_kb=int(z["ifmap_sram_kb"]),
                          filter_sram_kb=int(z["filter_sram_kb"]),
                          ofmap_sram_kb=int(z["ofmap_sram_kb"]),
                          dram_bw_bytes=int(z["dram_bytes_per_cycle"]), clock_mhz=1000,
                          act_bits=8, weight_bits=8)
            wl = Workload(name=z["layer"], layers=(Gemm(name=z["layer"], m=M, k=K, n=N,
                                                        a_bits=8, w_bits=8),))
            met = sim.evaluate(design, wl)
            lm = layer_model(M, K, N, rows=design["rows"], cols=design["cols"],
                             dataflow=design["dataflow"], ifmap_sram_kb=design["ifmap_sram_kb"],
                             filter_sram_kb=design["filter_sram_kb"],
                             ofmap_sram_kb=design["ofmap_sram_kb"],
                             dram_bw_bytes=design["dram_bw_bytes"], act_bits=8, weight_bits=8)
            ag = {k: float(met.get(k)) * 1e12 for k in ("mac_energy_j", "sram_energy_j",
                                                          "dram_energy_j")}
            zz_sram = sum(float(z[f"energy_sram_{op}_pj"]) for op in "IWO")
            zz_dram = sum(float(z[f"energy_dram_{op}_pj"]) for op in "IWO")
            zz_bits = sum(float(z[k]) for k in ("dram_I_read_bits", "dram_W_read_bits",
                                               "dram_O_write_bits", "dram_O_read_bits"))
            ag_total = sum(ag.values())
            row = {k: z[k] for k in KEYS}
            row.update({
                **{f"zz_{k}": z[k] for k in ("dram_I_read_bits", "dram_W_read_bits",
                                             "dram_O_write_bits", "dram_O_read_bits")},
                "ag_dram_read_bits": lm["dram_read_bits"], "ag_dram_write_bits": lm["dram_write_bits"],
                "zz_energy_pj": z["energy_total_pj"], "ag_energy_pj": f"{ag_total:.6g}",
                "zz_mac_pj": z["mac_energy_pj"], "ag_mac_pj": f"{ag['mac_energy_j']:.6g}",
                "zz_sram_pj": f"{zz_sram:.6g}", "ag_sram_pj": f"{ag['sram_energy_j']:.6g}",
                "zz_dram_pj": f"{zz_dram:.6g}", "ag_dram_pj": f"{ag['dram_energy_j']:.6g}",
                "zz_cycles": z["latency_cycles"], "ag_cycles": met.cycles,
                "ratio_dram_bits": _ratio(lm["dram_read_bits"] + lm["dram_write_bits"], zz_bits),
                "ratio_dram_energy": _ratio(ag["dram_energy_j"], zz_dram),
                "ratio_sram_energy": _ratio(ag["sram_energy_j"], zz_sram),
                "ratio_energy": _ratio(ag_total, float(z["energy_total_pj"])),
                "ratio_cycles": _ratio(met.cycles, float(z["latency_cycles"])),
                "zz_temporal_mapping": z["temporal_mapping"]})
            out.append(row)
    with open(os.path.join(HERE, "zigzag_compare.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLS, lineterminator="\n")
        w.writeheader()
        w.writerows(out)
    for opt in ("energy", "latency"):
        for key in ("ratio_dram_bits", "ratio_energy", "ratio_sram_energy", "ratio_cycles"):
            for form in ("gemm", "conv"):
                vals = [float(r[key]) for r in out
                        if r["opt"] == opt and r["form"] == form and r[key]]
                if vals:
                    gm = math.exp(sum(map(math.log, vals)) / len(vals))
                    print(f"ZigZag best by {opt}: {key} ({form}, {len(vals)} rows): geometric "
                          f"mean {gm:.3g}, range {min(vals):.3g}-{max(vals):.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
