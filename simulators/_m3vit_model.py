"""The M3ViT FPGA model, step by step: the reference (slow) path of :mod:`simulators.m3vit`.

Everything here works on one design at a time with Python lists of steps, so each rule
is readable; :mod:`simulators._m3vit_kernels` has the batched numba kernel that must give
the same numbers (tests/test_m3vit_batch.py compares them on random designs).

Sources of the constants: M3ViT (Liang et al., "M3ViT: Mixture-of-Experts Vision
Transformer for Efficient Multi-task Learning with Model-Accelerator Co-design",
NeurIPS 2022; §3.2, §4.1, Table 4 and its Appendix A.3), the Edge-MoE HLS code
(sharc-lab/Edge-MoE, ICCAD 2023: ``include/model.hpp``, ``include/datatypes.hpp``,
``src/moe.cpp``), the ZCU104 / XCZU7EV data sheets, or "assumed"; experiments/m3vit/
calibration.md lists every one with its source and what was calibrated.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple

import numpy as np

from archgym.metrics import Metrics

__all__ = [
    "Geom", "PLATFORM", "MODEL", "TECH", "SCHEDULES", "LAYERS", "REASON_CLASSES", "gemm_cycles", "chunk_cols",
    "memory_inventory", "resources", "power_terms", "frame_steps", "evaluate_reference", "lru_misses_reference",
    "timeline_reference", "reason_class", "Infeasible",
]

SCHEDULES = ("dense", "naive", "cache", "reorder")

# ZCU104 (XCZU7EV-2FFVC1156) platform.
PLATFORM: dict[str, float] = {
    "dsp_count": 1728,            # XCZU7EV: 1,728 DSP48E2 (M3ViT §4.1; Zynq UltraScale+ product table)
    "bram36_count": 312,          # XCZU7EV: 312 BRAM36 (11 Mb)
    "uram_count": 96,             # XCZU7EV: 96 URAM288 (27 Mb)
    "lutram_bits": 6.9e6,         # XCZU7EV distributed RAM, Zynq UltraScale+ product table (6.9 Mb)
    "clock_mhz": 300,             # M3ViT §4.1 / Appendix A.3: 300 MHz
    "power_w": 10.0,              # M3ViT §4.1: power taken as a constant 10 W (power="fixed")
    "dram_latency_s": 200e-9,     # assumed: DDR4 read latency seen from the PL
    "dsp_fmax_mhz": 891,          # DSP48E2 Fmax, -2 speed grade (DS925, Zynq UltraScale+ switching characteristics)
}

# Model/implementation constants: Edge-MoE code where it has them, else assumed (calibration.md).
MODEL: dict[str, float] = {
    "w_bits": 16,                 # Edge-MoE ap_fixed<16,2> linear weights (datatypes.hpp)
    "bias_bits": 16,              # Edge-MoE ap_fixed<16,5> biases (datatypes.hpp)
    "a_bits": 16,                 # assumed: 16-bit activations so one DSP48E2 (27x18) does one MAC; M3ViT's
                                  # ~1,536 MAC/cycle is impossible with Edge-MoE's 32-bit activations
    "dsp_per_mac": 1,             # follows from the two lines above
    "fill_base_cycles": 4,        # assumed: DSP48E2 pipeline; + ceil(log2(pe_in)) adder-tree levels
    "misc_dsp_count": 32,         # assumed: LayerNorm (mean/var/rsqrt) and softmax exp/reciprocal
    "lane_dsp_per_out": 1,        # assumed: one multiplier per output lane (GELU interpolation / gate-score scale)
    "activation_tensors": 3,      # x (residual stream), K, V; K/V are reused as LN2(x) and the FFN hidden
    "queue_entry_bytes": 4,       # Edge-MoE expert_queues[N][T] (token index) + expert_scores, 16-bit each
    "lutram_frac": 0.5,           # assumed: half the distributed RAM may hold buffers (the rest is logic)
}

# Power from the resources (power="resources", the default): the XPE way of counting (Xilinx Power
# Estimator, UG440: per resource, count x clock x a per-MHz coefficient at a toggle rate) plus energy per
# MAC and per DRAM byte.  Coefficients are assumed (order of magnitude for a 16 nm UltraScale+ -2 part at
# 0.85 V); static_w is the one calibrated value: it makes the paper's design come out at M3ViT's 10 W on
# PASCAL (calibration.md, "Power"; experiments/m3vit/reproduce_table4.py re-derives it).
TECH: dict[str, float] = {
    "static_w": 7.1288,              # fitted: board + PS + DDR background + PL static, so the paper point = 10.000 W
    "dsp_uw_per_mhz": 1.0,           # assumed: clock and pipeline registers of one provisioned DSP48E2
    "bram36_uw_per_mhz": 6.0,        # assumed: one BRAM36 at ~50 % enable (clock, read/write ports)
    "uram_uw_per_mhz": 15.0,         # assumed: one URAM288 at ~50 % enable
    "lutram_uw_per_mhz_per_kib": 0.5,  # assumed: distributed RAM per KiB used as buffer
    "mac_pj": 2.5,                   # assumed: one 16x16 MAC in a DSP48E2 with its operand delivery (~25 % toggle)
    "dram_pj_per_byte": 160.0,       # DRAM access ~20 pJ/bit (Horowitz, "Computing's energy problem", ISSCC 2014)
}

# Per-layer names of the workload (archgym.workloads.vit_moe_workload) the steps are booked under.
LAYERS = ("qkv", "attn_qk", "attn_v", "proj", "fc1", "fc2", "moe")
# Step tags: the layers, then the two parts of the MoE layer (reported as unit:moe_gate / unit:moe_experts).
_TAGS = LAYERS[:-1] + ("moe.gate", "moe.experts")
TAG = {t: i for i, t in enumerate(_TAGS)}
#: ``evaluate_batch(..., reasons=True)`` codes: why a design is infeasible (0 = feasible).
REASON_CLASSES = ("feasible", "constraint", "tile", "dsp", "memory", "dsp+memory")

_URAM_BITS = 288 * 1024
_BRAM_BITS = 36 * 1024
BRAM_URAM_BYTES = (PLATFORM["uram_count"] * _URAM_BITS + PLATFORM["bram36_count"] * _BRAM_BITS) / 8  # 4.746 MiB
EXTRA_KEYS = ("dsp_count", "bram36_count", "uram_count", "lutram_bytes", "cache_misses_count",
              "expert_loads_count", "dram_stall_cycles", "compute_cycles", "encoder_macs", "weight_buffer_bytes",
              "bias_buffer_bytes", "activation_buffer_bytes", "routing_buffer_bytes", "dsp_util_frac",
              "onchip_util_frac")


class Geom(NamedTuple):
    """Encoder geometry of one ViT-MoE workload: blocks, width, heads, FFN and expert hidden, tokens.

    Even blocks have the dense MLP, odd blocks the MoE (M3ViT's ``vision_transformer_moe.py``)."""

    n_layers: int
    hidden: int
    heads: int
    ffn: int
    expert_hidden: int
    tokens: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def n_moe(self) -> int:
        """MoE blocks (the odd ones)."""
        return self.n_layers // 2


class Infeasible(ValueError):
    """The design cannot be scheduled at all (a weight tile does not fit its buffer); message has the numbers."""


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def fill_cycles(pe_in: int) -> int:
    """Pipeline fill per weight chunk / attention matmul: ``4 + ceil(log2(pe_in))`` (integer form)."""
    return int(MODEL["fill_base_cycles"]) + (int(pe_in) - 1).bit_length()


def gemm_cycles(m: int, k: int, n: int, pe_in: int, pe_out: int) -> int:
    """Array cycles of ``(m x k) @ (k x n)`` on ``pe_out`` lanes of width ``pe_in`` (no fill).

    ``m * ceil(n/pe_out) * ceil(k/pe_in)``; when ``n < pe_out`` the lanes split into
    ``pe_out // n`` groups that take different rows: ``ceil(m / (pe_out // n)) * ceil(k/pe_in)``."""
    if m <= 0:
        return 0
    if n >= pe_out:
        return m * _cdiv(n, pe_out) * _cdiv(k, pe_in)
    return _cdiv(m, pe_out // n) * _cdiv(k, pe_in)


def chunk_cols(k: int, n: int, d: Mapping[str, Any]) -> int:
    """Columns per weight chunk of a ``k x n`` weight matrix: all ``n`` if they fit one buffer of
    ``wbuf_kib``, else the largest multiple of ``pe_out`` that fits.  Raises :class:`Infeasible` if not
    even ``pe_out`` columns fit."""
    wb = int(MODEL["w_bits"]) // 8
    maxc = d["wbuf_kib"] * 1024 // (k * wb)
    if n <= maxc:
        return n
    c = (maxc // d["pe_out"]) * d["pe_out"]
    if c == 0:
        tile = k * min(n, d["pe_out"]) * wb
        raise Infeasible(
            f"weight buffer {d['wbuf_kib']} KiB is smaller than one weight tile {k}x{min(n, d['pe_out'])}x"
            f"{int(MODEL['w_bits'])}-bit = {tile / 1024:g} KiB (K x pe_out weights)")
    return c


def expert_bytes(g: Geom) -> tuple[int, int]:
    """(weight bytes, bias bytes) of one whole expert (FC1 + FC2)."""
    dm, h = g.hidden, g.expert_hidden
    return 2 * dm * h * int(MODEL["w_bits"]) // 8, (h + dm) * int(MODEL["bias_bits"]) // 8


def memory_inventory(d: Mapping[str, Any], sched: str, g: Geom, token_capacity: int) -> dict[str, int]:
    """On-chip buffers in bytes: ``weights``, ``biases``, ``activations``, ``routing`` (see
    :func:`simulators.m3vit.memory_inventory`).  Raises :class:`Infeasible` if a tile does not fit."""
    ew, eb = expert_bytes(g)
    dm = g.hidden
    widest = max(chunk_cols(dm, 3 * dm, d), chunk_cols(dm, dm, d))
    weights = d["n_wbuf"] * d["wbuf_kib"] * 1024
    biases = d["n_wbuf"] * widest * int(MODEL["bias_bits"]) // 8
    if sched in ("cache", "naive"):
        n = d["cache_slots"] if sched == "cache" else d["n_experts"]
        weights, biases = max(weights, n * ew), max(biases, n * eb)
    acts = int(MODEL["activation_tensors"]) * token_capacity * dm * int(MODEL["a_bits"]) // 8
    if sched == "reorder":
        routing = d["n_experts"] * (token_capacity * int(MODEL["queue_entry_bytes"]) + 2)
    elif sched == "dense":
        routing = 0
    else:
        routing = d["top_k"] * 3
    return {"weights": weights, "biases": biases, "activations": acts, "routing": routing}


def resources(d: Mapping[str, Any], onchip: float) -> dict[str, float]:
    """DSPs, and the on-chip bytes mapped onto URAM, then BRAM36, then LUTRAM (capacity level)."""
    dsp = (d["pe_in"] * d["pe_out"] * int(MODEL["dsp_per_mac"]) + d["pe_out"] * int(MODEL["lane_dsp_per_out"])
           + int(MODEL["misc_dsp_count"]))
    if not math.isfinite(onchip):
        return {"dsp_count": float(dsp), "bram36_count": math.nan, "uram_count": math.nan, "lutram_bytes": math.nan}
    bits = int(onchip) * 8
    uram = min(int(PLATFORM["uram_count"]), _cdiv(bits, _URAM_BITS))
    rest = max(0, bits - uram * _URAM_BITS)
    bram = min(int(PLATFORM["bram36_count"]), _cdiv(rest, _BRAM_BITS))
    lut = _cdiv(max(0, rest - bram * _BRAM_BITS), 8)
    return {"dsp_count": float(dsp), "bram36_count": float(bram), "uram_count": float(uram),
            "lutram_bytes": float(lut)}


def power_terms(res: Mapping[str, float], clock_mhz: float) -> dict[str, float]:
    """The frame-independent power of a design (W): static, and the clocked power of its provisioned
    DSPs, BRAM36, URAM and LUTRAM (``count x clock_mhz x uW/MHz``, :data:`TECH`).  Their sum is the
    power drawn whatever the array does; MACs and DRAM bytes add energy on top (:func:`energy`)."""
    f, t = clock_mhz, TECH
    return {"static_w": t["static_w"], "dsp_clock_w": res["dsp_count"] * t["dsp_uw_per_mhz"] * f * 1e-6,
            "bram36_w": res["bram36_count"] * t["bram36_uw_per_mhz"] * f * 1e-6,
            "uram_w": res["uram_count"] * t["uram_uw_per_mhz"] * f * 1e-6,
            "lutram_w": res["lutram_bytes"] / 1024 * t["lutram_uw_per_mhz_per_kib"] * f * 1e-6}


def base_power_w(res: Mapping[str, float], clock_mhz: float) -> float:
    """Sum of :func:`power_terms` in a fixed order (the batched kernel adds them in the same order)."""
    p = power_terms(res, clock_mhz)
    return p["static_w"] + p["dsp_clock_w"] + p["bram36_w"] + p["uram_w"] + p["lutram_w"]


def energy(base_w: float, seconds: float, macs: float, dram_bytes: float) -> float:
    """Energy (J) of a span: ``base_w x seconds + mac_pj x MACs + dram_pj_per_byte x bytes``."""
    return base_w * seconds + 1e-12 * (TECH["mac_pj"] * macs + TECH["dram_pj_per_byte"] * dram_bytes)


# --- slow references of the numba kernels ------------------------------------------------------
def lru_misses_reference(experts: np.ndarray, slots: int, hits_first: bool = True) -> np.ndarray:
    """Plain-Python LRU expert cache: misses per layer (reference of ``_m3vit_kernels.lru_misses``)."""
    out = []
    for layer in np.asarray(experts).tolist():
        cache: list[int] = []          # least recently used first
        misses = 0
        for tok in layer:
            order = [e for e in tok if e in cache] + [e for e in tok if e not in cache] if hits_first else tok
            for e in order:
                if e in cache:
                    cache.remove(e)
                else:
                    misses += 1
                    if len(cache) == slots:
                        cache.pop(0)
                cache.append(e)
        out.append(misses)
    return np.array(out, dtype=np.int64)


def timeline_reference(size, load, comp, capacity: int, prefetch: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain-Python event schedule with the rules of ``_m3vit_kernels.timeline``."""
    ends, stalls, chunk_start, held = [], [], [], []   # held: (release time, bytes)
    dram_free = prev_end = 0
    for s, ld, c in zip(np.asarray(size).tolist(), np.asarray(load).tolist(), np.asarray(comp).tolist()):
        if s > 0:
            j = len(chunk_start)
            t = prev_end if prefetch == 0 else (chunk_start[j - prefetch] if j >= prefetch else 0)
            t = max(t, dram_free)
            for r in sorted({r for r, _ in held if r > t}):
                if sum(b for rr, b in held if rr > t) + s <= capacity:
                    break
                t = r
            dram_free = t + ld
            start = max(prev_end, dram_free)
            stalls.append(start - prev_end)
            chunk_start.append(start)
            held.append((start + c, s))
        else:
            start = prev_end
            stalls.append(0)
        prev_end = start + c
        ends.append(prev_end)
    return np.array(ends, dtype=np.int64), np.array(stalls, dtype=np.int64)


# --- the step list of one frame --------------------------------------------------------------------
class _Steps:
    """Step list of one frame: weight-chunk size, load and compute cycles, MACs, DRAM bytes, tag."""

    def __init__(self, d: Mapping[str, Any]) -> None:
        self.d = d
        self.size: list[int] = []
        self.load: list[int] = []
        self.comp: list[int] = []
        self.macs: list[int] = []
        self.dram: list[int] = []
        self.tag: list[int] = []
        self._memo: dict[tuple, list[tuple]] = {}
        self.fill = fill_cycles(d["pe_in"])
        self.bpc = d["dram_gbps"] * 1e3 / d["clock_mhz"]            # DRAM bytes per cycle
        self.lat = math.ceil(PLATFORM["dram_latency_s"] * d["clock_mhz"] * 1e6)

    def transfer(self, nbytes: int) -> int:
        """Cycles of one DRAM transfer: latency + bytes / bandwidth."""
        return self.lat + math.ceil(nbytes / self.bpc)

    def add(self, size: int, load: int, comp: int, macs: int, dram: int, tag: str) -> None:
        self.size.append(size)
        self.load.append(load)
        self.comp.append(comp)
        self.macs.append(macs)
        self.dram.append(dram)
        self.tag.append(TAG[tag])

    def gemm(self, m: int, k: int, n: int, tag: str) -> None:
        """A weight GEMM ``(m x k) @ (k x n)`` in column chunks through the weight pool."""
        key = (m, k, n, tag)
        steps = self._memo.get(key)      # the same GEMM recurs in every block: build its chunks once
        if steps is None:
            d = self.d
            cols = chunk_cols(k, n, d)
            wb, bb = int(MODEL["w_bits"]) // 8, int(MODEL["bias_bits"]) // 8
            steps = []
            for c0 in range(0, n, cols):
                c = min(cols, n - c0)
                nbytes = k * c * wb + c * bb      # biases travel with the chunk but sit in the bias buffers
                steps.append((k * c * wb, self.transfer(nbytes),
                              gemm_cycles(m, k, c, d["pe_in"], d["pe_out"]) + self.fill, m * k * c, nbytes, TAG[tag]))
            self._memo[key] = steps
        for st in steps:
            self.size.append(st[0])
            self.load.append(st[1])
            self.comp.append(st[2])
            self.macs.append(st[3])
            self.dram.append(st[4])
            self.tag.append(st[5])


def frame_steps(d: Mapping[str, Any], g: Geom, sched: str, qlen: np.ndarray | None, misses: np.ndarray | None,
                capacity: int) -> tuple[_Steps, dict]:
    """The step list of one encoder frame and the MoE side results (loads, misses, miss stalls).

    ``qlen``: tokens per expert ``[n_moe, n_experts]`` (``reorder``); ``misses``: LRU misses per MoE
    layer (``cache``); ``capacity``: bytes of the weight pool (the cache schedule's step holds all of it).
    """
    st = _Steps(d)
    dm, hd, heads, ffn, h, T = g.hidden, g.head_dim, g.heads, g.ffn, g.expert_hidden, g.tokens
    pi, po, k = d["pe_in"], d["pe_out"], d["top_k"]
    ew, eb = expert_bytes(g)
    per_tok_expert = gemm_cycles(1, dm, h, pi, po) + gemm_cycles(1, h, dm, pi, po)
    side = {"cache_misses": 0, "expert_loads": 0, "miss_stall_cycles": 0}
    moe_layer = 0
    for b in range(g.n_layers):
        st.gemm(T, dm, 3 * dm, "qkv")
        # attention head by head (no weights): QK^T then AV, each with one pipeline fill
        st.add(0, 0, heads * gemm_cycles(T, hd, T, pi, po) + st.fill, heads * T * T * hd, 0, "attn_qk")
        st.add(0, 0, heads * gemm_cycles(T, T, hd, pi, po) + st.fill, heads * T * T * hd, 0, "attn_v")
        st.gemm(T, dm, dm, "proj")
        if sched == "dense" or b % 2 == 0:        # even blocks dense, odd blocks MoE
            for _ in range(ffn // dm):            # the MLP as ffn/d hidden chunks of width d
                st.gemm(T, dm, dm, "fc1")
                st.gemm(T, dm, dm, "fc2")
            continue
        st.gemm(T, dm, d["n_experts"], "moe.gate")
        if sched == "reorder":
            for n_e in np.asarray(qlen[moe_layer]).tolist():
                if n_e:
                    st.gemm(n_e, dm, h, "moe.experts")
                    st.gemm(n_e, h, dm, "moe.experts")
                    side["expert_loads"] += 1
        elif sched == "naive":
            nbytes = d["n_experts"] * (ew + eb)
            st.add(d["n_experts"] * ew, st.transfer(nbytes), k * T * per_tok_expert + st.fill,
                   k * T * 2 * dm * h, nbytes, "moe.experts")
            side["expert_loads"] += d["n_experts"]
        else:  # cache: the whole weight memory becomes expert slots; misses stall serially
            miss = int(misses[moe_layer])
            penalty = st.transfer(ew + eb) + st.fill
            st.add(capacity, 0, k * T * per_tok_expert + st.fill + miss * penalty, k * T * 2 * dm * h,
                   miss * (ew + eb), "moe.experts")
            side["cache_misses"] += miss
            side["expert_loads"] += miss
            side["miss_stall_cycles"] += miss * penalty
        moe_layer += 1
    return st, side


def reason_class(m: Metrics) -> str:
    """The class of a result's infeasibility (one of :data:`REASON_CLASSES`), from its reason text."""
    if m.feasible:
        return "feasible"
    r = m.reason
    if "smaller than one weight tile" in r:
        return "tile"
    dsp, mem = "DSPs" in r, "on chip" in r
    if dsp or mem:
        return "dsp+memory" if dsp and mem else ("dsp" if dsp else "memory")
    return "constraint"


def evaluate_reference(d: Mapping[str, Any], g: Geom, sched: str, qlen: np.ndarray | None,
                       misses: np.ndarray | None, *, power: str, lutram_frac: float,
                       token_capacity: int) -> Metrics:
    """Metrics of one checked design (the slow path; see :mod:`simulators.m3vit` for the model).

    ``sched`` is the design's schedule or ``"dense"``; ``qlen``/``misses`` as in :func:`frame_steps`."""
    from . import _m3vit_kernels as _kern

    try:
        inv = memory_inventory(d, sched, g, token_capacity)
        st, side = frame_steps(d, g, sched, qlen, misses, inv["weights"])
    except Infeasible as e:
        extra = dict.fromkeys(EXTRA_KEYS, math.nan) | resources(d, math.nan)
        extra["dsp_util_frac"] = extra["dsp_count"] / PLATFORM["dsp_count"]
        return Metrics.infeasible(str(e), extra=extra)
    onchip = float(sum(inv.values()))
    res = resources(d, onchip)
    comp = np.array(st.comp, dtype=np.int64)
    end, stall = _kern.timeline(np.array(st.size, dtype=np.int64), np.array(st.load, dtype=np.int64), comp,
                                inv["weights"], d["prefetch_depth"])
    cycles = int(end[-1])
    f = d["clock_mhz"] * 1e6
    latency = cycles / f
    macs, dram, tag = np.array(st.macs, dtype=np.float64), np.array(st.dram, dtype=np.float64), np.array(st.tag)
    io_bytes = 2 * g.tokens * g.hidden * int(MODEL["a_bits"]) // 8     # encoder input and output
    dram_total = float(dram.sum()) + io_bytes
    total_macs = float(macs.sum())
    fixed = power == "fixed"
    base_w = PLATFORM["power_w"] if fixed else base_power_w(res, d["clock_mhz"])

    def energy_of(m: float, b: float, t: float) -> float:
        return base_w * t if fixed else energy(base_w, t, m, b)   # fixed: M3ViT's latency x 10 W

    total_energy = energy_of(total_macs, dram_total, latency)
    miss_stall = side["miss_stall_cycles"]
    breakdown: dict[str, dict[str, float]] = {}

    def book(key: str, sel: np.ndarray, extra_stall: int) -> None:
        c, s, m, b = int(comp[sel].sum()), int(stall[sel].sum()), float(macs[sel].sum()), float(dram[sel].sum())
        breakdown[key] = {"cycles": float(c + s), "latency_s": (c + s) / f, "energy_j": energy_of(m, b, (c + s) / f),
                          "compute_cycles": float(c - extra_stall), "dram_stall_cycles": float(s + extra_stall),
                          "work_macs": m, "dram_bytes": b}

    for i, name in enumerate(LAYERS[:-1]):
        if (tag == i).any():
            book(name, tag == i, 0)
    moe = tag >= TAG["moe.gate"]
    if moe.any():
        book("moe", moe, miss_stall)
        book("unit:moe_gate", tag == TAG["moe.gate"], 0)
        book("unit:moe_experts", tag == TAG["moe.experts"], miss_stall)
    breakdown["unit:io"] = {"dram_bytes": float(io_bytes), "energy_j": 0.0 if fixed else energy(0.0, 0.0, 0.0, io_bytes)}
    breakdown["unit:memory"] = {f"{k}_bytes": float(v) for k, v in inv.items()}
    if fixed:
        breakdown["unit:power"] = {"fixed_w": PLATFORM["power_w"]}
    else:
        pw = power_terms(res, d["clock_mhz"])
        pw["mac_w"] = 1e-12 * TECH["mac_pj"] * total_macs / latency
        pw["dram_w"] = 1e-12 * TECH["dram_pj_per_byte"] * dram_total / latency
        breakdown["unit:power"] = pw
    extra = dict(res)
    extra.update(
        cache_misses_count=float(side["cache_misses"]), expert_loads_count=float(side["expert_loads"]),
        dram_stall_cycles=float(stall.sum() + miss_stall), compute_cycles=float(comp.sum() - miss_stall),
        encoder_macs=total_macs, weight_buffer_bytes=float(inv["weights"]), bias_buffer_bytes=float(inv["biases"]),
        activation_buffer_bytes=float(inv["activations"]), routing_buffer_bytes=float(inv["routing"]),
        dsp_util_frac=res["dsp_count"] / PLATFORM["dsp_count"], onchip_util_frac=onchip / BRAM_URAM_BYTES,
    )
    known = dict(cycles=cycles, latency_s=latency, energy_j=total_energy, power_w=total_energy / latency,
                 onchip_bytes=onchip, dram_bytes=dram_total, throughput_per_s=1.0 / latency,
                 utilization_frac=total_macs / (d["pe_in"] * d["pe_out"] * cycles), extra=extra, breakdown=breakdown)
    over = []
    if res["dsp_count"] > PLATFORM["dsp_count"]:
        over.append(f"needs {res['dsp_count']:.0f} DSPs ({d['pe_in']}x{d['pe_out']} MAC array + {d['pe_out']} lane "
                    f"+ {int(MODEL['misc_dsp_count'])} misc), device has {int(PLATFORM['dsp_count'])}")
    lut_budget = PLATFORM["lutram_bits"] / 8 * lutram_frac
    if res["lutram_bytes"] > lut_budget:
        over.append(f"needs {onchip / 2**20:.3f} MiB on chip, device holds {BRAM_URAM_BYTES / 2**20:.3f} MiB "
                    f"BRAM+URAM + {lut_budget / 2**20:.3f} MiB LUTRAM (lutram_frac={lutram_frac:g})")
    return Metrics.infeasible("; ".join(over), **known) if over else Metrics(**known)
