"""Generate ``tests/data/scalesim_user_goldens.csv``: SCALE-Sim 3.0.0 USER-mode (bandwidth-limited) runs.

Issue #15 item 6 (stalls against SCALE-Sim's USER mode). One row per SCALE-Sim run of one layer
with ``InterfaceBandwidth USER``:

* group ``ci``: SCALE-Sim's own CI goldens (scale-sim-v3 ``test/general/golden_trace_user_{os,ws,is}``,
  run by ``test/general/scripts/diff_user_*.sh``): ``configs/scale.cfg`` (32x32, 64 kB SRAMs,
  ``Bandwidth 10``, 10 banks of bandwidth 10, 2 ports) switched to USER, on
  ``topologies/GEMM_mnk/test_mnk_input.csv`` (M=256, N=128, K=256). The script stops unless the
  run reproduces the upstream COMPUTE_REPORT (stall cycles 42,272 os, 41,248 ws, 5,777 is);
* group ``llama``: Llama-2-7B prefill (seq 256) and decode (M=1) GEMMs scaled down so SCALE-Sim
  runs them in seconds (hidden 4096 -> 256, FFN 11008 -> 688, vocab 32000 -> 2000, seq 256 -> 64,
  head dim 128 -> 32);
* group ``conv``: small conv layers (ResNet-like shapes, strided, 1x1), conv topology format;
* group ``sweep``: one GEMM over bandwidths 1-64 words/cycle and SRAMs 16-512 kB;
* group ``random``: ``N_RANDOM`` seeded small GEMM and conv layers (M, N, K up to 96, arrays
  2-16 a side, SRAMs of 1-8 kB so that operands are refetched and the OFMAP buffer drains many
  times, bandwidths 1-16 that often do not divide the buffer sizes): a stress test of the rule.

Bandwidth: in USER mode SCALE-Sim reads IFMAP/filter DRAM bandwidth from ``[layout]
IfmapSRAMBankBandwidth`` / ``FilterSRAMBankBandwidth`` and the OFMAP one from ``Bandwidth``
(single_layer_sim.run); the ``bw`` column sets all three. The bank count only matters with a
custom layout (off here), but the bank bandwidth must be a multiple of it, so non-CI rows use one
bank (``bank_num`` column).

Regenerate (SCALE-Sim needs ``numpy<2.4``; its own virtualenv, any location)::

    python3 -m venv venvs/scalesim
    venvs/scalesim/bin/pip install scalesim==3.0.0 "numpy<2.4"
    venvs/scalesim/bin/python tests/data/gen_scalesim_user_goldens.py --jobs 2

Columns: ``case_id, group, layer`` (a short name), ``input_type`` (gemm / conv), the conv fields
for conv rows, ``M, N, K`` (GEMM (M x K) x (K x N); for conv the lowered sizes SCALE-Sim's
operand matrices have), ``rows, cols, dataflow``, SRAM kB, ``bw`` (words/cycle; 1 word = 1 byte
in SCALE-Sim), ``bank_num``, then every COMPUTE_REPORT, BANDWIDTH_REPORT and
DETAILED_ACCESS_REPORT column (names as in ``scalesim_goldens.csv``; ``stall_cycles`` is
COMPUTE_REPORT's "Stall Cycles", ``total_cycles`` its "Total Cycles" = stall-free cycles +
stalls).
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import math
import os
import random
import sys
import time
from dataclasses import dataclass

import _scalesim_run as SR

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20261204
N_RANDOM = 40
MAX_RANDOM_CYCLES = 20_000
CONV_HEADER = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
               "Num Filter, Strides,\n")
# Upstream CI goldens (scale-sim-v3 test/general/golden_trace_user_*/COMPUTE_REPORT.csv):
# total cycles incl. prefetch, total cycles, stall cycles.
CI_EXPECTED = {"os": ("59000", "52447", "42272"), "ws": ("59002", "52447", "41248"),
               "is": ("29815", "19984", "5777")}
CONV_COLS = ("ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "num_filters", "stride")
CASE_COLS = (("case_id", "group", "layer", "input_type") + CONV_COLS
             + ("M", "N", "K", "rows", "cols", "dataflow", "ifmap_sram_kb", "filter_sram_kb",
                "ofmap_sram_kb", "bw", "bank_num"))
OUT_COLS = (CASE_COLS + SR.GEN.HEAD_COLS + SR.GEN.BANDWIDTH_COLS
            + tuple(c for c in SR.GEN.DETAIL_COLS if c not in SR.GEN.HEAD_COLS))


@dataclass(frozen=True)
class Case:
    """One USER-mode run: a GEMM ``(M, N, K)`` or a conv ``(H, W, Fh, Fw, C, Nf, S)`` layer."""

    case_id: str
    group: str
    layer: str
    dims: tuple
    rows: int
    cols: int
    dataflow: str
    sram_kb: tuple  # ifmap, filter, ofmap
    bw: int
    bank_num: int = 1

    @property
    def is_conv(self) -> bool:
        """True for a conv layer (7 dims), False for a GEMM (3 dims)."""
        return len(self.dims) == 7

    def topology_text(self) -> str:
        """A one-row SCALE-Sim topology file (GEMM or conv format) for this case."""
        if self.is_conv:
            return CONV_HEADER + "layer, " + ", ".join(map(str, self.dims)) + ",\n"
        m, n, k = self.dims
        return f"Layer, M, N, K,\nlayer, {m}, {n}, {k},\n"


LLAMA_PREFILL = {  # scaled Llama-2-7B prefill GEMMs: (M, N, K)
    "q_proj": (64, 256, 256), "gate_proj": (64, 688, 256), "down_proj": (64, 256, 688),
    "attn_qk": (64, 64, 32), "attn_av": (64, 32, 64), "lm_head": (64, 2000, 256),
}
LLAMA_DECODE = {name: (1, n, k) for name, (m, n, k) in LLAMA_PREFILL.items()}
LLAMA_DECODE["attn_qk"] = (1, 64, 32)  # one new token against 64 cached keys
LLAMA_DECODE["attn_av"] = (1, 32, 64)


def all_cases() -> list[Case]:
    """Every case of the golden file, in file order."""
    cases = [Case(f"ci_{df}", "ci", "test_mnk_input", (256, 128, 256), 32, 32, df, (64, 64, 64),
                  10, bank_num=10) for df in ("os", "ws", "is")]
    # (layer, array, dataflow, SRAM kB, bw): chosen so some operands fit their active half
    # buffer and some do not, and bandwidths span 1-64 words/cycle.
    prefill_specs = [
        ("q_proj", 32, 32, "os", (64, 64, 64), 10), ("q_proj", 32, 32, "ws", (32, 32, 32), 8),
        ("q_proj", 32, 32, "is", (16, 16, 16), 16), ("gate_proj", 32, 32, "ws", (64, 128, 32), 4),
        ("gate_proj", 16, 16, "os", (128, 512, 64), 32), ("down_proj", 32, 32, "is", (64, 64, 64), 2),
        ("down_proj", 32, 32, "ws", (512, 512, 512), 64), ("attn_qk", 16, 16, "os", (16, 16, 16), 1),
        ("attn_av", 16, 16, "ws", (16, 16, 16), 2), ("lm_head", 32, 32, "os", (256, 256, 128), 16),
        ("lm_head", 32, 32, "ws", (64, 64, 64), 10), ("attn_qk", 8, 8, "is", (32, 32, 32), 4),
    ]
    for i, (name, r, c, df, kb, bw) in enumerate(prefill_specs):
        cases.append(Case(f"llama_prefill_{i:02d}_{name}_{df}", "llama", f"prefill/{name}",
                          LLAMA_PREFILL[name], r, c, df, kb, bw))
    decode_specs = [
        ("q_proj", 32, 32, "os", (16, 64, 16), 4), ("q_proj", 32, 32, "ws", (16, 64, 16), 8),
        ("gate_proj", 32, 32, "ws", (16, 128, 16), 16), ("gate_proj", 32, 32, "is", (16, 64, 32), 2),
        ("down_proj", 32, 32, "os", (16, 128, 16), 1), ("lm_head", 32, 32, "ws", (16, 256, 16), 32),
        ("attn_qk", 16, 16, "ws", (16, 16, 16), 1), ("attn_av", 16, 16, "is", (16, 16, 16), 2),
    ]
    for i, (name, r, c, df, kb, bw) in enumerate(decode_specs):
        cases.append(Case(f"llama_decode_{i:02d}_{name}_{df}", "llama", f"decode/{name}",
                          LLAMA_DECODE[name], r, c, df, kb, bw))
    conv_specs = [  # (name, (H, W, Fh, Fw, C, Nf, S), R, C, df, kB, bw)
        ("res3x3", (14, 14, 3, 3, 32, 64, 1), 32, 32, "os", (16, 16, 16), 10),
        ("res3x3", (14, 14, 3, 3, 32, 64, 1), 32, 32, "ws", (16, 16, 16), 10),
        ("res3x3", (14, 14, 3, 3, 32, 64, 1), 32, 32, "is", (16, 16, 16), 10),
        ("res3x3_s2", (16, 16, 3, 3, 16, 32, 2), 16, 16, "ws", (32, 16, 16), 4),
        ("res1x1_s2", (28, 28, 1, 1, 64, 128, 2), 32, 32, "os", (64, 64, 32), 8),
        ("res1x1_s2", (28, 28, 1, 1, 64, 128, 2), 32, 32, "is", (64, 64, 32), 8),
        ("conv1_7x7", (40, 40, 7, 7, 3, 16, 2), 16, 16, "os", (32, 32, 32), 2),
        ("conv1_7x7", (40, 40, 7, 7, 3, 16, 2), 16, 16, "ws", (32, 32, 32), 64),
        ("nondiv", (13, 11, 3, 2, 8, 24, 3), 8, 8, "is", (16, 16, 16), 1),
        ("wide", (8, 30, 3, 5, 12, 40, 1), 16, 32, "ws", (64, 32, 16), 16),
    ]
    for i, (name, dims, r, c, df, kb, bw) in enumerate(conv_specs):
        cases.append(Case(f"conv_{i:02d}_{name}_{df}", "conv", name, dims, r, c, df, kb, bw))
    for i, (bw, kb, df) in enumerate([(1, 512, "ws"), (2, 256, "ws"), (4, 128, "ws"),
                                      (8, 64, "ws"), (16, 32, "ws"), (32, 16, "ws"),
                                      (64, 16, "os"), (1, 512, "os"), (4, 32, "is")]):
        cases.append(Case(f"sweep_{i:02d}_bw{bw}_{kb}kB_{df}", "sweep", "gemm_128x192x160",
                          (128, 192, 160), 16, 16, df, (kb, kb, kb), bw))
    cases += random_cases()
    return cases


def random_cases(n: int = N_RANDOM, seed: int = SEED) -> list[Case]:
    """Seeded small layers with small SRAMs (every third one a conv); dataflows cycle os/ws/is."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        df = ("os", "ws", "is")[i % 3]
        while True:
            r, c = rng.randint(2, 16), rng.randint(2, 16)
            if i % 3 == 2:
                h, w = rng.randint(3, 14), rng.randint(3, 14)
                fh, fw, s = rng.randint(1, min(h, 4)), rng.randint(1, min(w, 4)), rng.randint(1, 3)
                dims = (h, w, fh, fw, rng.randint(1, 8), rng.randint(1, 40), s)
                m = math.ceil((h - fh + s) / s) * math.ceil((w - fw + s) / s)
                mnk = (m, dims[5], fh * fw * dims[4])
            else:
                dims = mnk = tuple(rng.randint(1, 96) for _ in range(3))
            if SR.GEN.closed_form_cycles(*mnk, r, c, df) <= MAX_RANDOM_CYCLES:
                break
        kb = tuple(rng.randint(1, 8) for _ in range(3))
        out.append(Case(f"random_{i:02d}_{df}", "random", "random", dims, r, c, df, kb,
                        rng.randint(1, 16)))
    return out


def _lowered(layer) -> dict:
    om = layer.op_mat_obj
    m, k = om.ifmap_addr_matrix.shape
    return {"M": m, "K": k, "N": om.filter_addr_matrix.shape[1]}


def run_case(case: Case) -> dict[str, str]:
    """Run SCALE-Sim on one case and return the golden row (strings)."""
    kb_i, kb_f, kb_o = case.sram_kb
    cfg = SR.config_text(rows=case.rows, cols=case.cols, dataflow=case.dataflow, ifmap_kb=kb_i,
                         filter_kb=kb_f, ofmap_kb=kb_o, user_bw=case.bw, bank_num=case.bank_num)
    res, wall = SR.run_scalesim(cfg, case.topology_text(), not case.is_conv, extra=_lowered)
    if len(res) != 1:
        raise RuntimeError(f"{case.case_id}: expected one layer, got {len(res)}")
    row = dict(res[0])
    if not case.is_conv and (row["M"], row["N"], row["K"]) != case.dims:
        raise RuntimeError(f"{case.case_id}: operand matrices {row['M'], row['N'], row['K']}")
    if case.group == "ci":
        got = (row["total_cycles_incl_prefetch"], row["total_cycles"], row["stall_cycles"])
        if got != CI_EXPECTED[case.dataflow]:
            raise RuntimeError(f"{case.case_id}: {got} != upstream CI {CI_EXPECTED[case.dataflow]}")
    row.update(case_id=case.case_id, group=case.group, layer=case.layer,
               input_type="conv" if case.is_conv else "gemm", rows=case.rows, cols=case.cols,
               dataflow=case.dataflow, ifmap_sram_kb=kb_i, filter_sram_kb=kb_f,
               ofmap_sram_kb=kb_o, bw=case.bw, bank_num=case.bank_num)
    if case.is_conv:
        row.update(zip(CONV_COLS, case.dims))
    print(f"{case.case_id:40s} cycles={row['total_cycles']:>8s} stalls={row['stall_cycles']:>8s} "
          f"wall={wall:6.2f}s", file=sys.stderr, flush=True)
    return {k: str(row.get(k, "")) for k in OUT_COLS}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(HERE, "scalesim_user_goldens.csv"))
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        raise SystemExit(f"--jobs={args.jobs} must be >= 1")
    SR.check_versions()
    cases = all_cases()
    t0 = time.perf_counter()
    if args.jobs == 1:
        results = [run_case(c) for c in cases]
    else:
        with multiprocessing.Pool(args.jobs, maxtasksperchild=10) as pool:
            results = pool.map(run_case, cases, chunksize=1)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=OUT_COLS, lineterminator="\n")
        w.writeheader()
        w.writerows(results)
    print(f"wrote {len(results)} rows to {args.out} in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
