"""Table: archgym's default-mode DRAM stalls vs SCALE-Sim 3.0.0 USER-mode stalls (issue #15 item 6).

Reads ``tests/data/scalesim_user_goldens.csv`` (real SCALE-Sim runs), evaluates each layer with
``simulators.systolic.layer_model`` (``mode="default"``, 8-bit activations and weights, DRAM
bandwidth = SCALE-Sim's words/cycle as bytes/cycle since a SCALE-Sim word is one byte) and with
the plain-Python USER-mode reference ``scalesim_user_model.user_mode``, and writes
``scalesim_user_stalls.csv`` next to this script. Run in the project environment::

    python experiments/systolic/user_stall_table.py

Columns: ``case_id``, layer and design columns, ``scalesim_stalls`` (golden),
``reference_stalls`` (the reference; equal on every golden), ``archgym_stalls`` (default-mode
``cycles - compute_cycles``), ``ratio`` = archgym / SCALE-Sim (empty when SCALE-Sim has 0),
``scalesim_compute`` / ``archgym_compute`` (stall-free cycles: SCALE-Sim's Total minus stalls
plus 1; archgym's default compute cycles), DRAM words of both, ``scalesim_incl_prefetch_extra``
(SCALE-Sim's "Total Cycles (incl. prefetch)" minus its stall-free cycles: stalls plus the initial
fill and the final drain, the quantity closest to archgym's roofline stall), and ``reason``: tags
of the causes of a ratio outside 0.8-1.25 (legend in ``scalesim_user_mode.md`` section 5).
"""

from __future__ import annotations

import csv
import math
from collections import Counter
import os
import sys

from simulators.systolic import layer_model

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDENS = os.path.join(HERE, "..", "..", "tests", "data", "scalesim_user_goldens.csv")
COLS = ("case_id", "group", "layer", "M", "N", "K", "rows", "cols", "dataflow", "ifmap_sram_kb",
        "filter_sram_kb", "ofmap_sram_kb", "bw", "scalesim_stalls", "reference_stalls",
        "archgym_stalls", "ratio", "scalesim_compute", "archgym_compute", "scalesim_dram_words",
        "archgym_dram_words", "scalesim_incl_prefetch_extra", "archgym_mapping", "reason")


def _reason(g: dict, ours: dict, theirs: int) -> str:
    """Tags for a stall ratio outside 0.8-1.25; legend in ``scalesim_user_mode.md`` section 5."""
    st = ours["cycles"] - ours["compute_cycles"]
    if theirs == st or (theirs and 0.8 <= st / theirs <= 1.25):
        return ""
    M, N = int(g["M"]), int(g["N"])
    reads_s = int(float(g["ifmap_dram_reads"])) + int(float(g["filter_dram_reads"]))
    tags = []
    if theirs == 0:
        tags.append("fit")
    if reads_s > 1.25 * ours["dram_read_bits"] / 8:
        tags.append("refetch")
    if int(float(g["ofmap_dram_writes"])) > 1.25 * M * N:
        tags.append("psum_out")
    if ours["dram_write_bits"] > M * N * 8:
        tags.append("psum_spill")
    if theirs and st < theirs:
        tags.append("double")
    if st > theirs:
        tags.append("roofline")
    return ";".join(tags)


def main() -> int:
    """Write scalesim_user_stalls.csv; print a summary."""
    from scalesim_user_model import user_mode  # same folder: run as a script

    rows = []
    with open(GOLDENS) as f:
        for g in csv.DictReader(f):
            M, N, K, R, C = (int(g[k]) for k in ("M", "N", "K", "rows", "cols"))
            kb = tuple(int(g[k]) for k in ("ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb"))
            conv = None
            if g["input_type"] == "conv":
                conv = tuple(int(g[k]) for k in ("ifmap_h", "ifmap_w", "filter_h", "filter_w",
                                                 "channels", "num_filters", "stride"))
            ref = user_mode(M, N, K, R, C, g["dataflow"], *kb, int(g["bw"]), conv)
            # the mapper needs power-of-two arrays; other arrays use the fixed loop order
            mapping = "best" if R & (R - 1) == 0 and C & (C - 1) == 0 else "fixed"
            ours = layer_model(M, K, N, rows=R, cols=C, dataflow=g["dataflow"], ifmap_sram_kb=kb[0],
                               filter_sram_kb=kb[1], ofmap_sram_kb=kb[2],
                               dram_bw_bytes=int(g["bw"]), act_bits=8, weight_bits=8, mapping=mapping)
            theirs = int(g["stall_cycles"])
            ours_st = ours["cycles"] - ours["compute_cycles"]
            compute_s = int(g["total_cycles"]) - theirs + 1
            words_s = sum(int(float(g[k])) for k in ("ifmap_dram_reads", "filter_dram_reads",
                                                     "ofmap_dram_writes"))
            rows.append({
                **{k: g[k] for k in COLS if k in g}, "scalesim_stalls": theirs,
                "reference_stalls": ref["stall_cycles"], "archgym_stalls": ours_st,
                "ratio": f"{ours_st / theirs:.4g}" if theirs else "",
                "scalesim_compute": compute_s, "archgym_compute": ours["compute_cycles"],
                "scalesim_dram_words": words_s,
                "archgym_dram_words": (ours["dram_read_bits"] + ours["dram_write_bits"]) // 8,
                "scalesim_incl_prefetch_extra": int(g["total_cycles_incl_prefetch"]) - compute_s,
                "archgym_mapping": mapping, "reason": _reason(g, ours, theirs)})
    with open(os.path.join(HERE, "scalesim_user_stalls.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    inside = sum(1 for r in rows if r["ratio"] and 0.8 <= float(r["ratio"]) <= 1.25)
    exact = sum(r["reference_stalls"] == r["scalesim_stalls"] for r in rows)
    both0 = sum(1 for r in rows if r["scalesim_stalls"] == 0 and r["archgym_stalls"] == 0)
    ratios = [float(r["ratio"]) for r in rows if r["ratio"] and float(r["ratio"]) > 0]
    gmean = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else float("nan")
    only_s = sum(1 for r in rows if r["scalesim_stalls"] > 0 and r["archgym_stalls"] == 0)
    only_a = sum(1 for r in rows if r["scalesim_stalls"] == 0 and r["archgym_stalls"] > 0)
    tagged = [r for r in rows if r["reason"]]
    tags = Counter(t for r in tagged for t in r["reason"].split(";"))
    print(f"{len(rows)} layers: reference exact on {exact}; ratio in 0.8-1.25 on {inside}; "
          f"both zero on {both0}; geometric-mean ratio over the {len(ratios)} with both > 0: {gmean:.3g}; "
          f"only SCALE-Sim stalls on {only_s}, only archgym on {only_a}; {len(tagged)} outside the band, tags: "
          + ", ".join(f"{k} {v}" for k, v in tags.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
