"""M3ViT's layer-wise MoE ViT-S accelerator on a ZCU104-class FPGA (cycle-approximate).

Reproduces M3ViT (NeurIPS'22) Table 4 (m3vit.md §2.4): dense ViT-S and MoE ViT-S
latency with the expert-by-expert reordering and with the cache-based baseline,
and the on-chip memory of the reordered vs the naive all-experts design
(tolerances and results: experiments/m3vit/calibration.md, tests/test_m3vit.py).

Hardware (one set of units shared by the 12 blocks, layers run in sequence,
m3vit.md §2.2):

* a MAC array of ``pe_out`` dot-product lanes, each ``pe_in`` wide (Edge-MoE's
  16x16 linear unit generalised, m3vit.md §3), one 16-bit MAC per DSP48E2.
  A GEMM ``(M x K) @ (K x N)`` takes ``M * ceil(N/pe_out) * ceil(K/pe_in)``
  cycles (rows streamed one per cycle, weights stationary per tile); when
  ``N < pe_out`` the lanes are split into ``pe_out // N`` groups that take
  different rows (Edge-MoE runs 4 query patches at once in attention).
  Attention runs head by head: ``QK^T`` is ``(T x hd) @ (hd x T)`` and ``AV``
  ``(T x T) @ (T x hd)``; softmax is online and LayerNorm/GELU/residual/top-k/
  combine are fused into the neighbouring streams (Edge-MoE), so they add no
  cycles.  Every weight chunk adds a pipeline fill of ``4 + log2(pe_in)`` cycles.
* weights stream from DRAM (one channel, ``dram_gbps``, 200 ns per transfer)
  into a pool of ``n_wbuf`` buffers of ``wbuf_kib``; a layer is loaded in
  column chunks of at most one buffer; a chunk may load ``prefetch_depth``
  chunks ahead of the one computing (1 = ping-pong).  Each FFN (the dense MLP
  and every expert) runs in hidden chunks of ``d`` = 384 (so the dense MLP is
  four expert-sized FC1/FC2 pairs), whose hidden activations reuse an
  activation buffer.
* MoE schedules (m3vit.md §2.3, §4): ``reorder``: gate all tokens, per-expert
  queues, experts one by one (ascending index, active ones only) through the
  weight pool; ``cache``: tokens in order, each with its k experts (its cached
  ones first), an LRU cache of ``cache_slots`` whole experts, every miss a
  serial stall of DRAM latency + expert bytes / bandwidth; ``naive``: all N
  experts of the layer on chip, loaded before the layer, tokens in order.  The
  expert slots of ``cache``/``naive`` share the memory of the weight pool (as
  Table 4's equal 4.840 MiB implies), so their loads cannot overlap the
  previous layers.  ``dense`` is ViT-S without MoE.

On-chip memory is a buffer inventory (:func:`memory_inventory`), mapped onto
URAM, then BRAM36, then LUTRAM; DSPs are the array plus per-lane and misc
units.  A design over the DSP or memory budget is infeasible (with the
numbers), never an exception.  Energy is ``latency * 10 W`` as in the paper
(``power="fixed"``) or an activity model (``power="activity"``, constants in
:data:`TECH`, assumed).  Constants and their sources: :data:`PLATFORM`,
:data:`MODEL`, :data:`TECH`, and experiments/m3vit/calibration.md.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from archgym.metrics import Metrics
from archgym.simulator import Simulator
from archgym.space import Choice, Constraint, DesignSpace
from archgym.workloads import VIT_TOKENS, WorkloadError, get_model
from archgym.workloads.routing import Routing, generate_routing

from . import _m3vit_kernels as _kern

__all__ = [
    "M3ViTSimulator", "simulate", "memory_inventory", "gemm_cycles", "PLATFORM", "MODEL", "TECH",
    "PAPER_TABLE4", "DEFAULT_DESIGN", "SCHEDULES", "DATASETS", "TASKS",
]

SCHEDULES = ("dense", "naive", "cache", "reorder")
DATASETS = ("pascal", "nyud")
# Task order of m3vit.md §1.4 / Tables 1-2.  Multi-gate: one router per task (§1.3).
TASKS = {"pascal": ("semseg", "normals", "human_parts", "sal", "edge"), "nyud": ("semseg", "depth")}

# ZCU104 (XCZU7EV) platform, m3vit.md §2.1 and §4 unless marked.
PLATFORM: dict[str, float] = {
    "dsp_count": 1728,            # m3vit.md §2.1
    "bram36_count": 312,          # m3vit.md §2.5, §4 (36 Kb each)
    "uram_count": 96,             # m3vit.md §2.5, §4 (288 Kb each)
    "lutram_bits": 6.9e6,         # assumed: AMD product table value for ZU7EV distributed RAM (not in the sheet)
    "clock_mhz": 300,             # m3vit.md §2.1
    "power_w": 10.0,              # m3vit.md §2.1: constant 10 W
    "dram_latency_s": 200e-9,     # assumed: DDR4 read latency seen from the PL
}

# Model/implementation constants.  Sources: m3vit.md (sheet) or Edge-MoE code (§3), else assumed/fitted.
MODEL: dict[str, float] = {
    "w_bits": 16,                 # Edge-MoE ap_fixed<16,2> linear weights (§3)
    "bias_bits": 16,              # Edge-MoE ap_fixed<16,5> biases (§3)
    "a_bits": 16,                 # assumed: 16-bit activations so one DSP48E2 (27x18) does one MAC; the
                                  # paper's ~1,536 MAC/cycle (§2.6) is impossible with Edge-MoE's 32-bit ones
    "dsp_per_mac": 1,             # follows from the two lines above
    "fill_base_cycles": 4,        # assumed: DSP48E2 pipeline; + ceil(log2(pe_in)) adder-tree levels
    "misc_dsp_count": 32,         # assumed: LayerNorm (mean/var/rsqrt) and softmax exp/reciprocal
    "lane_dsp_per_out": 1,        # assumed: one multiplier per output lane (GELU interpolation / gate-score scale)
    "activation_tensors": 3,      # x (residual stream), K, V; K/V are reused as LN2(x) and the FFN hidden
    "queue_entry_bytes": 4,       # Edge-MoE expert_queues[N][T] (token index) + expert_scores, 16-bit each
    "lutram_frac": 0.5,           # assumed: half the distributed RAM may hold buffers (the rest is logic)
}

# Activity power model (power="activity").  All assumed, order of magnitude for 16 nm UltraScale+; the
# paper itself uses a constant 10 W (PLATFORM["power_w"]).
TECH: dict[str, float] = {
    "static_w": 2.5,              # assumed: PS + PL static and board idle
    "mac_pj": 2.0,                # assumed: one 16-bit MAC in a DSP48E2 with its local routing
    "onchip_pj_per_byte": 1.25,   # assumed: BRAM/URAM access (about 2.5 pJ per 16-bit word)
    "dram_pj_per_byte": 120.0,    # assumed: DDR4 incl. controller and PHY (~15 pJ/bit)
}

# The paper's calibrated point (experiments/m3vit/calibration.md says where each value comes from).
DEFAULT_DESIGN: dict[str, Any] = {
    "pe_in": 16, "pe_out": 96, "n_wbuf": 2, "wbuf_kib": 1152, "prefetch_depth": 1, "cache_slots": 4,
    "schedule": "reorder", "dram_gbps": 19.2, "clock_mhz": 300, "n_experts": 16, "top_k": 4,
}

# M3ViT Table 4, FPGA rows (m3vit.md §2.4) and the 11.610 MiB naive design (§2.5).
PAPER_TABLE4: dict[str, dict[str, float]] = {
    "dense": {"pascal_ms": 68.931, "nyud_ms": 84.418, "memory_mib": 4.828},
    "cache": {"pascal_ms": 637.478, "nyud_ms": 750.557, "memory_mib": 4.840},
    "reorder": {"pascal_ms": 69.033, "nyud_ms": 84.538, "memory_mib": 4.840},
    "naive": {"memory_mib": 11.610},
}

_CFG = get_model("m3vit-vit-s")
_T_CAP = max(VIT_TOKENS.values())   # one bitstream serves both datasets: buffers sized for 1201 tokens
_UNITS = ("qkv_proj", "attention", "mlp", "moe_gate", "moe_experts")
_URAM_BITS = 288 * 1024
_BRAM_BITS = 36 * 1024


class _Infeasible(ValueError):
    """Internal: the design cannot even be scheduled (message has the numbers)."""


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def gemm_cycles(m: int, k: int, n: int, pe_in: int, pe_out: int) -> int:
    """Array cycles of ``(m x k) @ (k x n)`` on ``pe_out`` lanes of width ``pe_in`` (no fill)."""
    if m <= 0:
        return 0
    if n >= pe_out:
        return m * _cdiv(n, pe_out) * _cdiv(k, pe_in)
    return _cdiv(m, pe_out // n) * _cdiv(k, pe_in)


# --- slow references of the numba kernels ------------------------------------------------------
def lru_misses_reference(experts: np.ndarray, slots: int, hits_first: bool = True) -> np.ndarray:
    """Plain-Python LRU expert cache: misses per layer (reference of ``lru_misses``)."""
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


# --- design handling --------------------------------------------------------------------------
def _check_design(design: Mapping[str, Any]) -> dict:
    unknown = [k for k in design if k not in DEFAULT_DESIGN]
    if unknown:
        raise ValueError(f"unknown design parameter {unknown[0]!r}; allowed: {', '.join(DEFAULT_DESIGN)}")
    d = {**DEFAULT_DESIGN, **design}
    for k in ("pe_in", "pe_out", "n_wbuf", "wbuf_kib", "cache_slots", "n_experts", "top_k", "prefetch_depth"):
        v = d[k]
        lo = 0 if k == "prefetch_depth" else 1
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{k}={v!r} must be an integer >= {lo}")
        d[k] = int(v)
    for k in ("dram_gbps", "clock_mhz"):
        v = d[k]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not (math.isfinite(v) and v > 0):
            raise ValueError(f"{k}={v!r} must be a finite number > 0")
        d[k] = float(v)
    if d["schedule"] not in SCHEDULES:
        raise ValueError(f"schedule={d['schedule']!r}; allowed: {', '.join(SCHEDULES)}")
    if d["top_k"] > d["n_experts"]:
        raise ValueError(f"top_k={d['top_k']} exceeds n_experts={d['n_experts']}; allowed top_k: 1..{d['n_experts']}")
    return d


def _expert_bytes(d: Mapping[str, Any]) -> tuple[int, int]:
    """(weight bytes, bias bytes) of one whole expert (FC1 + FC2)."""
    dm, h = _CFG.hidden, _CFG.expert_hidden
    return 2 * dm * h * MODEL["w_bits"] // 8, (h + dm) * MODEL["bias_bits"] // 8


def _chunk_cols(k: int, n: int, d: Mapping[str, Any]) -> int:
    """Columns per weight chunk of a ``k x n`` weight matrix; raises _Infeasible if no tile fits."""
    wb = MODEL["w_bits"] // 8
    maxc = d["wbuf_kib"] * 1024 // (k * wb)
    if n <= maxc:
        return n
    c = (maxc // d["pe_out"]) * d["pe_out"]
    if c == 0:
        tile = k * min(n, d["pe_out"]) * wb
        raise _Infeasible(
            f"weight buffer {d['wbuf_kib']} KiB is smaller than one expert tile {k}x{min(n, d['pe_out'])}x"
            f"{MODEL['w_bits']}-bit = {tile / 1024:g} KiB (K x pe_out weights)"
        )
    return c


def memory_inventory(design: Mapping[str, Any], schedule: str | None = None, *,
                     token_capacity: int = _T_CAP) -> dict[str, int]:
    """On-chip buffers of a design in bytes: ``weights``, ``biases``, ``activations``, ``routing``.

    * weights: the pool of ``n_wbuf x wbuf_kib`` (dense layers and, with
      ``reorder``, the experts stream through it); ``cache`` needs
      ``cache_slots`` whole experts and ``naive`` all ``n_experts`` in the same
      memory, so the pool grows to the larger of the two.
    * biases: one bias vector per weight chunk in flight (``n_wbuf`` of the
      widest chunk), or per cached expert.
    * activations: 3 tensors of ``token_capacity x 384`` 16-bit values
      (x, K, V; see the module docstring).
    * routing: ``reorder`` keeps Edge-MoE's per-expert queues (token index and
      score per entry, ``N x token_capacity`` each) and queue lengths; token
      order keeps one token's top-k.
    """
    d = _check_design(dict(design))
    sched = d["schedule"] if schedule is None else schedule
    if sched not in SCHEDULES:
        raise ValueError(f"schedule={sched!r}; allowed: {', '.join(SCHEDULES)}")
    ew, eb = _expert_bytes(d)
    dm = _CFG.hidden
    widest = max(_chunk_cols(dm, 3 * dm, d), _chunk_cols(dm, dm, d))
    weights = d["n_wbuf"] * d["wbuf_kib"] * 1024
    biases = d["n_wbuf"] * widest * MODEL["bias_bits"] // 8
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


# --- the cycle model ---------------------------------------------------------------------------
@lru_cache(maxsize=128)
def _routing(tokens: int, n: int, k: int, layers: int, skew: str, zipf_s: float, task: int, n_tasks: int,
             strength: float, seed: int) -> Routing:
    return generate_routing(tokens, n, k, layers, skew=skew, zipf_s=zipf_s, task=task, n_tasks=n_tasks,
                            task_strength=strength, seed=seed)


@lru_cache(maxsize=256)
def _cached_misses(routing: Routing, slots: int, hits_first: bool) -> np.ndarray:
    # keyed by identity: only the generator's routings (held by _routing's cache) come here
    return _kern.lru_misses(routing.experts, slots, hits_first)


def _misses(routing: Routing, slots: int, hits_first: bool) -> np.ndarray:
    if routing.meta.get("source") == "generate_routing":
        return _cached_misses(routing, slots, hits_first)
    return _kern.lru_misses(routing.experts, slots, hits_first)


class _Steps:
    """Step list of one frame: weight-chunk size, load and compute cycles, MACs, DRAM bytes, unit."""

    def __init__(self, d: Mapping[str, Any]) -> None:
        self.d = d
        self.size: list[int] = []
        self.load: list[int] = []
        self.comp: list[int] = []
        self.macs: list[int] = []
        self.dram: list[int] = []
        self.unit: list[int] = []
        self.fill = int(MODEL["fill_base_cycles"]) + math.ceil(math.log2(d["pe_in"]))
        self.bpc = d["dram_gbps"] * 1e3 / d["clock_mhz"]            # DRAM bytes per cycle
        self.lat = math.ceil(PLATFORM["dram_latency_s"] * d["clock_mhz"] * 1e6)

    def transfer(self, nbytes: int) -> int:
        return self.lat + math.ceil(nbytes / self.bpc)

    def add(self, size: int, load: int, comp: int, macs: int, dram: int, unit: str) -> None:
        self.size.append(size)
        self.load.append(load)
        self.comp.append(comp)
        self.macs.append(macs)
        self.dram.append(dram)
        self.unit.append(_UNITS.index(unit))

    def gemm(self, m: int, k: int, n: int, unit: str) -> None:
        """A weight GEMM ``(m x k) @ (k x n)`` in column chunks through the weight pool."""
        d = self.d
        cols = _chunk_cols(k, n, d)
        wb, bb = MODEL["w_bits"] // 8, MODEL["bias_bits"] // 8
        for c0 in range(0, n, cols):
            c = min(cols, n - c0)
            nbytes = k * c * wb + c * bb          # biases travel with the chunk but sit in the bias buffers
            self.add(k * c * wb, self.transfer(nbytes), gemm_cycles(m, k, c, d["pe_in"], d["pe_out"]) + self.fill,
                     m * k * c, nbytes, unit)


def _frame(d: Mapping[str, Any], tokens: int, sched: str, routing: Routing | None, capacity: int,
           hits_first: bool) -> tuple[_Steps, dict]:
    """Build the step list of one encoder frame and the MoE side results."""
    st = _Steps(d)
    dm, hd, heads, ffn, h = _CFG.hidden, _CFG.head_dim, _CFG.heads, _CFG.ffn, _CFG.expert_hidden
    pi, po, T, k = d["pe_in"], d["pe_out"], tokens, d["top_k"]
    ew, eb = _expert_bytes(d)
    per_tok_expert = gemm_cycles(1, dm, h, pi, po) + gemm_cycles(1, h, dm, pi, po)
    side = {"cache_misses": 0, "expert_loads": 0, "miss_stall_cycles": 0}
    moe_layer = 0
    for b in range(_CFG.n_layers):
        st.gemm(T, dm, 3 * dm, "qkv_proj")
        att = heads * (gemm_cycles(T, hd, T, pi, po) + gemm_cycles(T, T, hd, pi, po)) + 2 * st.fill
        st.add(0, 0, att, 2 * heads * T * T * hd, 0, "attention")
        st.gemm(T, dm, dm, "qkv_proj")
        if sched == "dense" or b % 2 == 0:        # even blocks dense, odd blocks MoE (m3vit.md §1.2)
            for _ in range(ffn // dm):            # the MLP as ffn/d hidden chunks of width d
                st.gemm(T, dm, dm, "mlp")
                st.gemm(T, dm, dm, "mlp")
            continue
        st.gemm(T, dm, d["n_experts"], "moe_gate")
        if sched == "reorder":
            for n_e in routing.queue_lengths()[moe_layer].tolist():
                if n_e:
                    st.gemm(n_e, dm, h, "moe_experts")
                    st.gemm(n_e, h, dm, "moe_experts")
                    side["expert_loads"] += 1
        elif sched == "naive":
            nbytes = d["n_experts"] * (ew + eb)
            st.add(d["n_experts"] * ew, st.transfer(nbytes), k * T * per_tok_expert + st.fill,
                   k * T * 2 * dm * h, nbytes,
                   "moe_experts")
            side["expert_loads"] += d["n_experts"]
        else:  # cache: the whole weight memory becomes expert slots; misses stall serially
            miss = int(_misses(routing, d["cache_slots"], hits_first)[moe_layer])
            penalty = st.transfer(ew + eb) + st.fill
            st.add(capacity, 0, k * T * per_tok_expert + st.fill + miss * penalty, k * T * 2 * dm * h,
                   miss * (ew + eb), "moe_experts")
            side["cache_misses"] += miss
            side["expert_loads"] += miss
            side["miss_stall_cycles"] += miss * penalty
        moe_layer += 1
    return st, side


def _resources(d: Mapping[str, Any], onchip: float) -> dict[str, float]:
    """DSPs, and the on-chip bytes mapped onto URAM, then BRAM36, then LUTRAM (capacity level)."""
    dsp = (d["pe_in"] * d["pe_out"] * MODEL["dsp_per_mac"] + d["pe_out"] * MODEL["lane_dsp_per_out"]
           + MODEL["misc_dsp_count"])
    if not math.isfinite(onchip):
        return {"dsp_count": float(dsp), "bram36_count": math.nan, "uram_count": math.nan, "lutram_bytes": math.nan}
    bits = int(onchip) * 8
    uram = min(PLATFORM["uram_count"], _cdiv(bits, _URAM_BITS))
    rest = max(0, bits - uram * _URAM_BITS)
    bram = min(PLATFORM["bram36_count"], _cdiv(rest, _BRAM_BITS))
    lut = _cdiv(max(0, rest - bram * _BRAM_BITS), 8)
    return {"dsp_count": float(dsp), "bram36_count": float(bram), "uram_count": float(uram),
            "lutram_bytes": float(lut)}


_BRAM_URAM_BYTES = (PLATFORM["uram_count"] * _URAM_BITS + PLATFORM["bram36_count"] * _BRAM_BITS) / 8  # 4.746 MiB
_EXTRA_KEYS = ("dsp_count", "bram36_count", "uram_count", "lutram_bytes", "cache_misses_count",
               "expert_loads_count", "dram_stall_cycles", "compute_cycles", "encoder_macs", "weight_buffer_bytes",
               "bias_buffer_bytes", "activation_buffer_bytes", "routing_buffer_bytes", "dsp_util_frac",
               "onchip_util_frac")


def _evaluate(d: dict, dataset: str, routing: Routing | None, sim: "M3ViTSimulator") -> Metrics:
    sched, tokens = d["schedule"], VIT_TOKENS[dataset]
    if tokens > sim.token_capacity:
        raise ValueError(f"dataset {dataset!r} has {tokens} tokens, more than token_capacity={sim.token_capacity}")
    try:
        inv = memory_inventory(d, sched, token_capacity=sim.token_capacity)
        st, side = _frame(d, tokens, sched, routing, inv["weights"], sim.cache_policy == "hits_first")
    except _Infeasible as e:
        extra = dict.fromkeys(_EXTRA_KEYS, math.nan) | _resources(d, math.nan)
        extra["dsp_util_frac"] = extra["dsp_count"] / PLATFORM["dsp_count"]
        return Metrics.infeasible(str(e), extra=extra)
    onchip = float(sum(inv.values()))
    res = _resources(d, onchip)
    comp = np.array(st.comp, dtype=np.int64)
    end, stall = _kern.timeline(np.array(st.size, dtype=np.int64), np.array(st.load, dtype=np.int64), comp,
                                inv["weights"], d["prefetch_depth"])
    cycles = int(end[-1])
    f = d["clock_mhz"] * 1e6
    latency = cycles / f
    macs, dram, unit = np.array(st.macs, dtype=np.float64), np.array(st.dram, dtype=np.float64), np.array(st.unit)
    dram_total = float(dram.sum()) + 2 * tokens * _CFG.hidden * MODEL["a_bits"] // 8   # + encoder input/output
    total_macs = float(macs.sum())
    wb, ab, te = MODEL["w_bits"] / 8, MODEL["a_bits"] / 8, TECH

    def energy_of(m: float, b: float, t: float) -> float:
        if sim.power == "fixed":                  # m3vit.md §2.1: energy = latency x 10 W
            return PLATFORM["power_w"] * t
        onchip_acc = m * wb + m / d["pe_out"] * ab + b   # weight per MAC, broadcast activations, DRAM fills
        return te["static_w"] * t + 1e-12 * (te["mac_pj"] * m + te["onchip_pj_per_byte"] * onchip_acc
                                             + te["dram_pj_per_byte"] * b)

    energy = energy_of(total_macs, dram_total, latency)
    miss_stall = side["miss_stall_cycles"]
    breakdown: dict[str, dict[str, float]] = {}
    for i, name in enumerate(_UNITS):
        sel = unit == i
        if not sel.any():
            continue
        c, s, m, b = int(comp[sel].sum()), int(stall[sel].sum()), float(macs[sel].sum()), float(dram[sel].sum())
        extra_stall = miss_stall if name == "moe_experts" else 0
        breakdown[name] = {"compute_cycles": float(c - extra_stall), "dram_stall_cycles": float(s + extra_stall),
                           "latency_s": (c + s) / f, "work_macs": m, "dram_bytes": b,
                           "energy_j": energy_of(m, b, (c + s) / f)}
    breakdown["memory"] = {f"{k}_bytes": float(v) for k, v in inv.items()}
    extra = dict(res)
    extra.update(
        cache_misses_count=float(side["cache_misses"]), expert_loads_count=float(side["expert_loads"]),
        dram_stall_cycles=float(stall.sum() + miss_stall), compute_cycles=float(comp.sum() - miss_stall),
        encoder_macs=total_macs, weight_buffer_bytes=float(inv["weights"]), bias_buffer_bytes=float(inv["biases"]),
        activation_buffer_bytes=float(inv["activations"]), routing_buffer_bytes=float(inv["routing"]),
        dsp_util_frac=res["dsp_count"] / PLATFORM["dsp_count"], onchip_util_frac=onchip / _BRAM_URAM_BYTES,
    )
    known = dict(cycles=cycles, latency_s=latency, energy_j=energy, power_w=energy / latency, onchip_bytes=onchip,
                 dram_bytes=dram_total, throughput_per_s=1.0 / latency,
                 utilization_frac=total_macs / (d["pe_in"] * d["pe_out"] * cycles), extra=extra, breakdown=breakdown)
    over = []
    if res["dsp_count"] > PLATFORM["dsp_count"]:
        over.append(f"needs {res['dsp_count']:.0f} DSPs ({d['pe_in']}x{d['pe_out']} MAC array + {d['pe_out']} lane "
                    f"+ {MODEL['misc_dsp_count']} misc), device has {PLATFORM['dsp_count']}")
    lut_budget = PLATFORM["lutram_bits"] / 8 * sim.lutram_frac
    if res["lutram_bytes"] > lut_budget:
        over.append(f"needs {onchip / 2**20:.3f} MiB on chip, device holds {_BRAM_URAM_BYTES / 2**20:.3f} MiB "
                    f"BRAM+URAM + {lut_budget / 2**20:.3f} MiB LUTRAM (lutram_frac={sim.lutram_frac:g})")
    return Metrics.infeasible("; ".join(over), **known) if over else Metrics(**known)


# --- public API ----------------------------------------------------------------------------------
class M3ViTSimulator(Simulator):
    """M3ViT's MoE ViT-S on a ZCU104-class FPGA (layer-wise design, three MoE schedules).

    Design parameters (:data:`DEFAULT_DESIGN` is the paper's calibrated point):
    ``pe_in`` x ``pe_out`` MAC array, ``n_wbuf`` weight buffers of ``wbuf_kib``,
    ``prefetch_depth`` (weight chunks loaded ahead; 1 = ping-pong),
    ``cache_slots`` (experts cached by the ``cache`` schedule), ``schedule``
    (``reorder``/``cache``/``naive``), ``dram_gbps``, ``clock_mhz``,
    ``n_experts`` and ``top_k``.

    Workloads: ``"pascal"``/``"nyud"`` (task 0, semseg), ``"<dataset>/<task>"``
    (multi-gate: each task's router gives its own routing, see :data:`TASKS`),
    and ``"<dataset>-dense"`` (ViT-S without MoE; the MoE parameters are ignored).

    Args:
        power: ``"fixed"`` (10 W, as the paper) or ``"activity"`` (:data:`TECH`).
        cache_policy: ``"hits_first"`` (a token uses its cached experts first,
            then loads the missing ones, LRU eviction) or ``"rank_order"``
            (experts in top-k order, plain LRU; can evict an expert the token
            still needs).
        routing_skew, zipf_s, task_strength, routing_seed: the synthetic
            routing (:func:`archgym.workloads.routing.generate_routing`);
            Table 4 uses ``"uniform"`` with seed 0.
        lutram_frac: fraction of the device's LUTRAM that may hold buffers
            (0 = BRAM + URAM only, which makes the paper's own point infeasible).
        token_capacity: tokens the activation/queue buffers hold (default 1201,
            the larger dataset, so one design serves both as in Table 4).
    """

    name = "m3vit"
    reference = ("M3ViT (NeurIPS'22) Table 4 on ZCU104: dense and reordered latency within 5%, reordered within "
                 "1% of dense, memory 4.840/11.610 MiB within 5%, cache-based latency within 15% "
                 "(tests/test_m3vit.py; calibrated on PASCAL only)")

    def __init__(self, power: str = "fixed", cache_policy: str = "hits_first", routing_skew: str = "uniform",
                 zipf_s: float = 1.0, task_strength: float = 3.0, routing_seed: int = 0,
                 lutram_frac: float = MODEL["lutram_frac"], token_capacity: int = _T_CAP) -> None:
        if power not in ("fixed", "activity"):
            raise ValueError(f"power={power!r}; allowed: 'fixed', 'activity'")
        if cache_policy not in ("hits_first", "rank_order"):
            raise ValueError(f"cache_policy={cache_policy!r}; allowed: 'hits_first', 'rank_order'")
        if isinstance(lutram_frac, bool) or not isinstance(lutram_frac, (int, float)) or not 0 <= lutram_frac <= 1:
            raise ValueError(f"lutram_frac={lutram_frac!r} must be a number in [0, 1]")
        if isinstance(token_capacity, bool) or not isinstance(token_capacity, int) or token_capacity < 1:
            raise ValueError(f"token_capacity={token_capacity!r} must be a positive integer")
        generate_routing(1, 2, 1, 1, skew=routing_skew, zipf_s=zipf_s, task_strength=task_strength,
                         seed=routing_seed)   # validates the routing options
        self.power, self.cache_policy = power, cache_policy
        self.routing_opts = (routing_skew, float(zipf_s), float(task_strength), int(routing_seed))
        self.lutram_frac, self.token_capacity = float(lutram_frac), token_capacity
        self._space = DesignSpace(
            [
                Choice(name="pe_in", options=(8, 16, 32), ordinal=True, doc="MAC lane width (inputs per lane)"),
                Choice(name="pe_out", options=(16, 32, 48, 64, 80, 96, 112, 128), ordinal=True,
                       doc="MAC lanes (outputs in parallel)"),
                Choice(name="n_wbuf", options=(1, 2, 3, 4), ordinal=True, doc="weight buffers in the pool"),
                Choice(name="wbuf_kib", options=(64, 144, 288, 576, 1152, 2304), ordinal=True, unit="KiB",
                       doc="size of one weight buffer (largest weight chunk)"),
                Choice(name="prefetch_depth", options=(0, 1, 2, 3), ordinal=True,
                       doc="weight chunks loaded ahead of the computing one (1 = ping-pong)"),
                Choice(name="cache_slots", options=(1, 2, 4, 8, 16), ordinal=True,
                       doc="experts cached on chip by the cache schedule"),
                Choice(name="schedule", options=("reorder", "cache", "naive"), doc="MoE schedule"),
                Choice(name="dram_gbps", options=(4.8, 9.6, 19.2, 38.4), ordinal=True, unit="GB/s"),
                Choice(name="clock_mhz", options=(100, 150, 200, 250, 300), ordinal=True, unit="MHz"),
                Choice(name="n_experts", options=(4, 8, 16, 32), ordinal=True, doc="experts per MoE layer"),
                Choice(name="top_k", options=(1, 2, 4, 8), ordinal=True, doc="experts per token"),
            ],
            [Constraint("top_k", lambda x: x["top_k"] <= x["n_experts"],
                        "top_k={top_k} exceeds n_experts={n_experts}")],
        )

    def design_space(self) -> DesignSpace:
        return self._space

    def default_design(self) -> dict:
        return dict(DEFAULT_DESIGN)

    accepts = "the M3ViT MoE ViT-S encoder (m3vit-vit-s) on pascal or nyud frames, one task's router; batch 1"

    def workloads(self) -> tuple[str, ...]:
        out = list(DATASETS) + [f"{ds}-dense" for ds in DATASETS]
        return tuple(out + [f"{ds}/{t}" for ds in DATASETS for t in TASKS[ds]])

    def workload_aliases(self) -> dict[str, str]:
        out = {ds: f"m3vit-vit-s/{ds}" for ds in DATASETS}
        out.update({f"{ds}-dense": f"m3vit-vit-s/{ds}-dense" for ds in DATASETS})
        out.update({f"{ds}/{t}": f"m3vit-vit-s/{ds}?task={t}" for ds in DATASETS for t in TASKS[ds]})
        return out

    def check_workload(self, workload) -> None:
        cfg = workload.model
        if cfg is None or cfg.name != _CFG.name or workload.params.get("batch", 1) != 1:
            raise WorkloadError(f"m3vit cannot price workload {workload.source!r}: it prices {self.accepts}")
        ds, task = workload.params["dataset"], workload.params.get("task")
        if task is not None and task not in TASKS[ds]:
            raise WorkloadError(f"m3vit: task={task!r} for {ds}; allowed: {', '.join(TASKS[ds])}")

    def routing_for(self, dataset: str, task: int, n_experts: int, top_k: int) -> Routing:
        """The (cached) synthetic routing of the 6 MoE layers for one dataset and task."""
        skew, s, strength, seed = self.routing_opts
        return _routing(VIT_TOKENS[dataset], n_experts, top_k, _CFG.n_layers // 2, skew, s, task,
                        len(TASKS[dataset]), strength, seed)

    def evaluate(self, design: Mapping[str, Any], workload: str) -> Metrics:
        """Metrics of one design on ``workload`` (units in the names; see the module docstring)."""
        w = self.workload(workload)
        dataset, task_name = w.params["dataset"], w.params.get("task")
        dense = not w.moes()
        d = _check_design(design)
        if dense:
            d["schedule"] = "dense"
            return _evaluate(d, dataset, None, self)
        task = TASKS[dataset].index(task_name) if task_name else 0
        return _evaluate(d, dataset, self.routing_for(dataset, task, d["n_experts"], d["top_k"]), self)


def simulate(dataset: str, schedule: str, *, task: int | str = 0, routing: Routing | None = None,
             **design: Any) -> Metrics:
    """Simulate one frame of M3ViT's encoder: ``simulate("pascal", "reorder", pe_out=64)``.

    Args:
        dataset: ``"pascal"`` (1025 tokens) or ``"nyud"`` (1201 tokens).
        schedule: ``"dense"`` (ViT-S), ``"naive"``, ``"cache"`` or ``"reorder"``.
        task: task index or name (:data:`TASKS`); selects that task's router.
        routing: explicit routing (``[6, tokens, top_k]`` with ``n_experts``
            experts) instead of the synthetic one; must match the design.
        **design: any of :data:`DEFAULT_DESIGN` (others keep the paper's
            point; values need not lie on the env's grid), plus the
            :class:`M3ViTSimulator` options ``power``, ``cache_policy``,
            ``routing_skew``, ``zipf_s``, ``task_strength``, ``routing_seed``,
            ``lutram_frac``.

    Returns :class:`~archgym.metrics.Metrics`; a design over the DSP/memory
    budget or with a weight buffer smaller than one tile comes back with
    ``feasible=False`` and the numbers in ``reason``.  Bad input (unknown
    dataset/schedule/parameter, ``top_k > n_experts``) raises ``ValueError``.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset={dataset!r}; allowed: {', '.join(DATASETS)}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r}; allowed: {', '.join(SCHEDULES)}")
    if "schedule" in design:
        raise ValueError("pass the schedule as the second argument, not as a design parameter")
    opts = {k: design.pop(k) for k in _SIM_OPTIONS if k in design}
    sim = _simulator(tuple(sorted(opts.items())))
    tasks = TASKS[dataset]
    if isinstance(task, str) and task in tasks:
        task = tasks.index(task)
    if isinstance(task, bool) or not isinstance(task, (int, np.integer)) or not 0 <= task < len(tasks):
        raise ValueError(f"task={task!r} for {dataset}; allowed 0..{len(tasks) - 1} or {', '.join(tasks)}")
    d = _check_design({**design, "schedule": schedule})
    if schedule == "dense":
        return _evaluate(d, dataset, None, sim)
    if routing is None:
        routing = sim.routing_for(dataset, int(task), d["n_experts"], d["top_k"])
    elif not isinstance(routing, Routing):
        raise ValueError(f"routing must be an archgym.workloads.routing.Routing, got {type(routing).__name__}")
    want = (_CFG.n_layers // 2, VIT_TOKENS[dataset], d["top_k"], d["n_experts"])
    got = (routing.n_layers, routing.tokens, routing.top_k, routing.n_experts)
    if got != want:
        raise ValueError(f"routing has (layers, tokens, top_k, n_experts) = {got}; this design needs {want}")
    return _evaluate(d, dataset, routing, sim)


_SIM_OPTIONS = ("power", "cache_policy", "routing_skew", "zipf_s", "task_strength", "routing_seed", "lutram_frac")


@lru_cache(maxsize=32)
def _simulator(opts: tuple) -> M3ViTSimulator:
    return M3ViTSimulator(**dict(opts))
