"""M3ViT's layer-wise MoE ViT accelerator on a ZCU104-class FPGA (cycle-approximate).

Reproduces M3ViT (Liang et al., NeurIPS 2022) Table 4: dense ViT-S and MoE ViT-S latency
with the expert-by-expert reordering and with the cache-based baseline, and the on-chip
memory of the reordered vs the naive all-experts design (tolerances and results:
experiments/m3vit/calibration.md; tests/test_m3vit.py).

Hardware (one set of units shared by all blocks, layers run in sequence, M3ViT §3.2):

* a MAC array of ``pe_out`` dot-product lanes, each ``pe_in`` wide (Edge-MoE's 16x16
  linear unit generalised), one 16-bit MAC per DSP48E2.  A GEMM ``(M x K) @ (K x N)``
  takes ``M * ceil(N/pe_out) * ceil(K/pe_in)`` cycles (rows streamed one per cycle,
  weights stationary per tile); when ``N < pe_out`` the lanes split into ``pe_out // N``
  groups that take different rows (Edge-MoE runs 4 query patches at once in attention).
  Attention runs head by head: ``QK^T`` is ``(T x hd) @ (hd x T)`` and ``AV``
  ``(T x T) @ (T x hd)``; softmax is online and LayerNorm/GELU/residual/top-k/combine are
  fused into the neighbouring streams (Edge-MoE), so they add no cycles.  Every weight
  chunk and attention matmul adds a pipeline fill of ``4 + ceil(log2(pe_in))`` cycles.
* weights stream from DRAM (one channel, ``dram_gbps``, 200 ns per transfer) into a pool
  of ``n_wbuf`` buffers of ``wbuf_kib``; a layer is loaded in column chunks of at most
  one buffer; a chunk may load ``prefetch_depth`` chunks ahead of the one computing
  (1 = ping-pong).  Each FFN (the dense MLP and every expert) runs in hidden chunks of
  the model width ``d``, whose hidden activations reuse an activation buffer.
* MoE schedules (M3ViT §3.2, Fig. 4): ``reorder``: gate all tokens, per-expert queues,
  experts one by one (ascending index, active ones only) through the weight pool;
  ``cache``: tokens in order, each with its k experts (its cached ones first), an LRU
  cache of ``cache_slots`` whole experts, every miss a serial stall of DRAM latency +
  expert bytes / bandwidth; ``naive``: all N experts of the layer on chip, loaded before
  the layer, tokens in order.  The expert slots of ``cache``/``naive`` share the memory of
  the weight pool (as Table 4's equal 4.840 MiB implies), so their loads cannot overlap the
  previous layers.  A ``-dense`` workload is the ViT without MoE.

On-chip memory is a buffer inventory (:func:`memory_inventory`) mapped onto URAM, then
BRAM36, then LUTRAM; DSPs are the array plus per-lane and misc units.  A design over the
DSP or memory budget is infeasible (with the numbers), never an exception.  The two budgets
and the weight tile that must fit one buffer are closed-form in the design and the workload's
geometry, so they are also declared as rules (:meth:`M3ViTSimulator.workload_constraints`,
``archgym describe archgym/M3ViT-v0``): agents that filter with them (BO) never ask such a design.

Power (``power="resources"``, the default): a static part plus the clocked power of the
provisioned DSPs, BRAM36, URAM and LUTRAM (``count x clock x uW/MHz``), plus energy per MAC
and per DRAM byte (:data:`TECH`; the static part is calibrated so that the paper's design
draws M3ViT's 10 W on PASCAL, every other design's power is a prediction).
``power="fixed"`` is the paper's own convention, energy = latency x 10 W for every design.

Metrics: the core fields (docs/metrics.md), extras (resource counts, stalls, buffers),
and ``breakdown``: one entry per layer of the workload (``qkv``, ``attn_qk``, ``attn_v``,
``proj``, ``fc1``, ``fc2``, ``moe``) with ``cycles``, ``latency_s``, ``energy_j``,
``compute_cycles``, ``dram_stall_cycles``, ``work_macs``, ``dram_bytes`` (the layers'
cycles sum to ``cycles``; their energy plus ``unit:io``'s, the encoder input/output
transfer, sums to ``energy_j``), and ``unit:moe_gate``/``unit:moe_experts`` (the MoE
layer's two parts), ``unit:memory`` (buffer bytes), ``unit:power`` (average watts per term).

The model itself is in :mod:`simulators._m3vit_model` (slow reference path, used by
``evaluate``); :meth:`M3ViTSimulator.evaluate_batch` runs the numba kernel of
:mod:`simulators._m3vit_kernels`, which gives the same numbers.
"""

from __future__ import annotations

import functools
import math
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from archgym.metrics import Metrics
from archgym.simulator import Simulator
from archgym.space import Choice, Constraint, DesignSpace, InvalidDesign
from archgym.workloads import VIT_TOKENS, Workload, WorkloadError, get_model
from archgym.workloads.routing import Routing, generate_routing

from . import _m3vit_batch as _batch
from . import _m3vit_kernels as _kern
from ._m3vit_model import (
    EXTRA_KEYS, MODEL, PLATFORM, REASON_CLASSES, SCHEDULES, TECH, BRAM_URAM_BYTES, Geom, evaluate_reference,
    gemm_cycles, lru_misses_reference, reason_class, timeline_reference,
)
from ._m3vit_model import memory_inventory as _inventory

__all__ = [
    "M3ViTSimulator", "simulate", "memory_inventory", "gemm_cycles", "PLATFORM", "MODEL", "TECH", "DEFAULT_DESIGN",
    "SCHEDULES", "DATASETS", "TASKS", "RANGES", "REASON_CLASSES", "reason_class", "lru_misses_reference",
    "timeline_reference",
]

DATASETS = ("pascal", "nyud")
# Task order of M3ViT §4.1 / Tables 1-2.  Multi-gate: one router per task (M3ViT §3.1).
TASKS = {"pascal": ("semseg", "normals", "human_parts", "sal", "edge"), "nyud": ("semseg", "depth")}

# The paper's calibrated point (experiments/m3vit/calibration.md says where each value comes from).
DEFAULT_DESIGN: dict[str, Any] = {
    "pe_in": 16, "pe_out": 96, "n_wbuf": 2, "wbuf_kib": 1152, "prefetch_depth": 1, "cache_slots": 4,
    "schedule": "reorder", "dram_gbps": 19.2, "clock_mhz": 300, "n_experts": 16, "top_k": 4,
}

#: What ``evaluate``/``simulate`` accept off the grid: ``name: (low, high, integer, why)``.
RANGES: dict[str, tuple[float, float, bool, str]] = {
    "pe_in": (1, 1024, True, "MAC lane width"),
    "pe_out": (1, 4096, True, "MAC lanes; beyond any FPGA's DSP count"),
    "n_wbuf": (1, 64, True, "weight buffers"),
    "wbuf_kib": (1, 1 << 20, True, "KiB per weight buffer, up to 1 GiB"),
    "prefetch_depth": (0, 62, True, "weight chunks loaded ahead"),
    "cache_slots": (1, 1024, True, "experts cached on chip"),
    "n_experts": (1, 256, True, "the synthetic router draws tokens x n_experts scores per MoE layer"),
    "top_k": (1, 256, True, "experts per token, at most n_experts"),
    "dram_gbps": (0.1, 1000.0, False, "GB/s"),
    "clock_mhz": (1.0, float(PLATFORM["dsp_fmax_mhz"]), False, "MHz, up to the DSP48E2 Fmax of a -2 part"),
}

_CFG = get_model("m3vit-vit-s")
_T_CAP = max(VIT_TOKENS.values())   # one bitstream serves both datasets: buffers sized for 1201 tokens
_SIM_OPTIONS = ("power", "cache_policy", "routing_skew", "zipf_s", "task_strength", "routing_seed", "lutram_frac")
_BATCH_KEYS = ("cycles", "latency_s", "energy_j", "power_w", "onchip_bytes", "dram_bytes", "throughput_per_s",
               "utilization_frac", "cache_misses_count", "expert_loads_count", "dram_stall_cycles",
               "compute_cycles", "encoder_macs", "dsp_count", "bram36_count", "uram_count", "lutram_bytes",
               "weight_buffer_bytes", "bias_buffer_bytes", "activation_buffer_bytes", "routing_buffer_bytes",
               "dsp_util_frac", "onchip_util_frac")
assert len(_BATCH_KEYS) == _batch.N_OUT and set(_BATCH_KEYS[8:]) == set(EXTRA_KEYS)
# the batched kernel has these implementation constants written in; they must not drift from MODEL/PLATFORM
_KERNEL_ASSUMES = {"w_bits": 16, "bias_bits": 16, "a_bits": 16, "dsp_per_mac": 1, "fill_base_cycles": 4,
                   "misc_dsp_count": 32, "lane_dsp_per_out": 1, "activation_tensors": 3, "queue_entry_bytes": 4}


def _geom(cfg: Any, tokens: int) -> Geom:
    return Geom(cfg.n_layers, cfg.hidden, cfg.heads, cfg.ffn, cfg.expert_hidden or cfg.hidden, tokens)


_DEFAULT_GEOM = {ds: _geom(_CFG, t) for ds, t in VIT_TOKENS.items()}


def _check(design: Mapping[str, Any], schedules: tuple[str, ...]) -> dict:
    """check_design's rules (``schedules`` allowed; ``simulate`` also allows ``dense``)."""
    if not isinstance(design, Mapping):
        raise InvalidDesign(f"a design must be a mapping of parameter names to values, got {type(design).__name__}")
    for k in design:
        if k not in DEFAULT_DESIGN:
            raise InvalidDesign(f"unknown parameter {k!r}; parameters: {', '.join(DEFAULT_DESIGN)}")
    out: dict[str, Any] = {}
    for k in DEFAULT_DESIGN:
        if k not in design:
            raise InvalidDesign(f"missing parameter {k!r}; parameters: {', '.join(DEFAULT_DESIGN)}")
        v = design[k]
        if k == "schedule":
            if not isinstance(v, str) or v not in schedules:
                raise InvalidDesign(f"schedule={v!r} is not allowed; allowed: {', '.join(schedules)}")
            out[k] = v
            continue
        lo, hi, integer, why = RANGES[k]
        allowed = f"{'integers' if integer else 'numbers'} {lo:g}..{hi:g} ({why})"
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise InvalidDesign(f"{k}={v!r} must be a real number; allowed: {allowed}")
        if not math.isfinite(v) or not lo <= v <= hi:
            raise InvalidDesign(f"{k}={v!r} is out of range; allowed: {allowed}")
        if integer and v != int(v):
            raise InvalidDesign(f"{k}={v!r} must be an integer; allowed: {allowed}")
        out[k] = int(v) if integer else float(v)
    if out["top_k"] > out["n_experts"]:
        raise InvalidDesign(f"top_k={out['top_k']} exceeds n_experts={out['n_experts']}; "
                            f"allowed top_k: 1..{out['n_experts']}")
    return out


def memory_inventory(design: Mapping[str, Any], schedule: str | None = None, *,
                     token_capacity: int = _T_CAP) -> dict[str, int]:
    """On-chip buffers of a design (M3ViT's ViT-S geometry) in bytes: ``weights``, ``biases``,
    ``activations``, ``routing``.  ``design`` may be partial (the rest is :data:`DEFAULT_DESIGN`).

    * weights: the pool of ``n_wbuf x wbuf_kib`` (dense layers and, with ``reorder``, the
      experts stream through it); ``cache`` needs ``cache_slots`` whole experts and ``naive``
      all ``n_experts`` in the same memory, so the pool grows to the larger of the two.
    * biases: one bias vector per weight chunk in flight (``n_wbuf`` of the widest chunk),
      or per cached expert.
    * activations: 3 tensors of ``token_capacity x d`` 16-bit values (x, K, V; the module
      docstring and calibration.md give the dataflow).
    * routing: ``reorder`` keeps Edge-MoE's per-expert queues (token index and score per
      entry, ``N x token_capacity`` each) and queue lengths; token order keeps one token's top-k.

    Raises ``ValueError`` for a bad design, and when a weight tile does not fit one buffer.
    """
    d = _check({**DEFAULT_DESIGN, **design}, SCHEDULES[1:])
    sched = d["schedule"] if schedule is None else schedule
    if sched not in SCHEDULES:
        raise ValueError(f"schedule={sched!r} is not allowed; allowed: {', '.join(SCHEDULES)}")
    return _inventory(d, sched, _DEFAULT_GEOM["nyud"], token_capacity)


# --- routing (synthetic, cached) -----------------------------------------------------------------
@lru_cache(maxsize=256)
def _routing(tokens: int, n: int, k: int, layers: int, skew: str, zipf_s: float, task: int, n_tasks: int,
             strength: float, seed: int) -> Routing:
    return generate_routing(tokens, n, k, layers, skew=skew, zipf_s=zipf_s, task=task, n_tasks=n_tasks,
                            task_strength=strength, seed=seed)


@lru_cache(maxsize=1024)
def _cached_misses(routing: Routing, slots: int, hits_first: bool) -> np.ndarray:
    # keyed by identity: only the generator's routings (held by _routing's cache) come here
    return _kern.lru_misses(routing.experts, slots, hits_first)


def _misses(routing: Routing, slots: int, hits_first: bool) -> np.ndarray:
    if routing.meta.get("source") == "generate_routing":
        return _cached_misses(routing, slots, hits_first)
    return _kern.lru_misses(routing.experts, slots, hits_first)


# --- the simulator --------------------------------------------------------------------------------
class M3ViTSimulator(Simulator):
    """M3ViT's MoE ViT-S on a ZCU104-class FPGA (layer-wise design, three MoE schedules).

    Design parameters (:data:`DEFAULT_DESIGN` is the paper's calibrated point; off-grid
    values are accepted within :data:`RANGES`): ``pe_in`` x ``pe_out`` MAC array,
    ``n_wbuf`` weight buffers of ``wbuf_kib``, ``prefetch_depth`` (weight chunks loaded
    ahead; 1 = ping-pong), ``cache_slots`` (experts cached by the ``cache`` schedule),
    ``schedule`` (``reorder``/``cache``/``naive``), ``dram_gbps``, ``clock_mhz``,
    ``n_experts`` and ``top_k`` (the MoE width is co-designed, so the design's values are
    used, not the workload's).

    Workloads: ``"pascal"``/``"nyud"`` (task 0, semseg), ``"<dataset>/<task>"`` (multi-gate:
    each task's router gives its own routing, see :data:`TASKS`), ``"<dataset>-dense"``
    (the ViT without MoE; the MoE parameters are ignored), and any ViT-MoE workload
    (``m3vit-vit-s/nyud?task=depth``, or a :class:`~archgym.workloads.Workload` built by
    :func:`~archgym.workloads.vit_moe_workload` from a ``vit-moe`` ModelConfig).

    Args:
        power: ``"resources"`` (power from the provisioned resources, clock, MACs and DRAM
            traffic; :data:`TECH`) or ``"fixed"`` (10 W for every design, as the paper).
        cache_policy: ``"hits_first"`` (a token uses its cached experts first, then loads
            the missing ones, LRU eviction) or ``"rank_order"`` (experts in top-k order,
            plain LRU; can evict an expert the token still needs).
        routing_skew, zipf_s, task_strength, routing_seed: the synthetic routing
            (:func:`archgym.workloads.routing.generate_routing`); Table 4 uses
            ``"uniform"`` with seed 0.
        lutram_frac: fraction of the device's LUTRAM that may hold buffers (0 = BRAM +
            URAM only, which makes the paper's own point infeasible).
        token_capacity: tokens the activation/queue buffers hold (default 1201, the larger
            dataset, so one design serves both as in Table 4).
    """

    name = "m3vit"
    reference = ("M3ViT (NeurIPS'22) Table 4 on ZCU104: dense and reordered latency within 5%, reordered within "
                 "1% of dense, memory 4.840/11.610 MiB within 5%, cache-based latency within 15% "
                 "(tests/test_m3vit.py; calibrated on PASCAL only, NYUD held out)")
    accepts = ("MoE ViT encoders (model family vit-moe, e.g. m3vit-vit-s) on pascal or nyud frames, one task's "
               "router, batch 1")

    def __init__(self, power: str = "resources", cache_policy: str = "hits_first", routing_skew: str = "uniform",
                 zipf_s: float = 1.0, task_strength: float = 3.0, routing_seed: int = 0,
                 lutram_frac: float = MODEL["lutram_frac"], token_capacity: int = _T_CAP) -> None:
        if power not in ("resources", "fixed"):
            raise ValueError(f"power={power!r} is not allowed; allowed: 'resources', 'fixed'")
        if cache_policy not in ("hits_first", "rank_order"):
            raise ValueError(f"cache_policy={cache_policy!r} is not allowed; allowed: 'hits_first', 'rank_order'")
        if isinstance(lutram_frac, bool) or not isinstance(lutram_frac, (int, float)) or not 0 <= lutram_frac <= 1:
            raise ValueError(f"lutram_frac={lutram_frac!r} must be a number in [0, 1]")
        if isinstance(token_capacity, bool) or not isinstance(token_capacity, int) or not 1 <= token_capacity <= 1 << 20:
            raise ValueError(f"token_capacity={token_capacity!r} must be an integer in [1, {1 << 20}]")
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
                        "top_k={top_k} exceeds n_experts={n_experts}",
                        vector=lambda c: c["top_k"] <= c["n_experts"])],
        )
        self._tables: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def design_space(self) -> DesignSpace:
        return self._space

    def default_design(self) -> dict:
        return dict(DEFAULT_DESIGN)

    def check_design(self, design: Mapping[str, Any]) -> dict:
        """Validate a raw design (it need not lie on the grid): every parameter present,
        integers or numbers as :data:`RANGES` says and inside its range, ``schedule`` one of
        ``reorder``/``cache``/``naive``, ``top_k <= n_experts``.  Raises
        :class:`~archgym.InvalidDesign` (a ``ValueError``) naming the parameter, the value and
        what is allowed.  Over-budget designs are not errors: they come back infeasible."""
        return _check(design, SCHEDULES[1:])

    # --- workloads ---------------------------------------------------------------------------
    def workloads(self) -> tuple[str, ...]:
        out = list(DATASETS) + [f"{ds}-dense" for ds in DATASETS]
        return tuple(out + [f"{ds}/{t}" for ds in DATASETS for t in TASKS[ds]])

    def workload_aliases(self) -> dict[str, str]:
        out = {ds: f"m3vit-vit-s/{ds}" for ds in DATASETS}
        out.update({f"{ds}-dense": f"m3vit-vit-s/{ds}-dense" for ds in DATASETS})
        out.update({f"{ds}/{t}": f"m3vit-vit-s/{ds}?task={t}" for ds in DATASETS for t in TASKS[ds]})
        return out

    def check_workload(self, workload: Workload) -> None:
        """Refuse (one-line :class:`~archgym.workloads.WorkloadError`) what this model cannot price:
        anything but a ``vit-moe`` model's encoder, a batch other than 1, more tokens than
        ``token_capacity``, an unknown task, or a geometry outside the buffer plan (FFN width a
        multiple of the model width, expert hidden at most the model width)."""
        cfg, src = workload.model, workload.source
        if cfg is None:
            raise WorkloadError(f"m3vit cannot price workload {src!r}: it is a plain layer list with no model "
                                f"config; this simulator prices {self.accepts}")
        if cfg.family != "vit-moe":
            raise WorkloadError(f"m3vit cannot price workload {src!r}: {cfg.name} is a {cfg.family} model; "
                                f"this simulator prices {self.accepts}")
        p = workload.params
        if p.get("batch", 1) != 1:
            raise WorkloadError(f"m3vit cannot price workload {src!r}: batch={p['batch']}; the layer-wise design "
                                "runs one frame at a time (batch 1)")
        ds, task = p.get("dataset"), p.get("task")
        if ds not in TASKS:
            raise WorkloadError(f"m3vit cannot price workload {src!r}: dataset={ds!r}; allowed: {', '.join(TASKS)}")
        if task is not None and task not in TASKS[ds]:
            raise WorkloadError(f"m3vit: task={task!r} for {ds}; allowed: {', '.join(TASKS[ds])}")
        g = _geom(cfg, VIT_TOKENS[ds])
        if g.tokens > self.token_capacity:
            raise WorkloadError(f"m3vit cannot price workload {src!r}: {g.tokens} tokens, more than "
                                f"token_capacity={self.token_capacity}")
        if g.hidden % g.heads or g.ffn % g.hidden or not 0 < g.expert_hidden <= g.hidden:
            raise WorkloadError(
                f"m3vit cannot price workload {src!r}: hidden={g.hidden}, heads={g.heads}, ffn={g.ffn}, "
                f"expert_hidden={g.expert_hidden}; the buffer plan needs hidden divisible by heads, ffn a multiple "
                "of hidden and 0 < expert_hidden <= hidden")

    def budget_reasons(self, columns: Mapping[str, np.ndarray], workload: Workload | str | None = None) -> np.ndarray:
        """Which resource budget each design breaks, without running the model: ``int8`` codes of
        :data:`REASON_CLASSES` (0 within them, 2 a weight tile larger than one buffer, 3/4/5 over
        the DSPs / on-chip memory / both), from the batched kernel's own resource count
        (``_m3vit_batch.budget_reasons``).  ``columns``: one array of values per parameter, a row
        per design (``Constraint.vector``'s input); ``top_k <= n_experts`` is not checked here."""
        g, _, _, dense = self._info(self.workload(workload))
        ints = [np.asarray(columns[k], dtype=np.int64) for k in ("pe_in", "pe_out", "n_wbuf", "wbuf_kib", "cache_slots")]
        sched = np.asarray(columns["schedule"])
        code = (np.full(len(sched), 3, dtype=np.int64) if dense
                else np.select([sched == s for s in self._space["schedule"].values], [0, 1, 2], -1))
        reason = np.empty(len(sched), dtype=np.int8)
        _batch.budget_reasons(*ints, code, *(np.asarray(columns[k], dtype=np.int64) for k in ("n_experts", "top_k")),
                              np.array([*g, self.token_capacity], dtype=np.int64), self._kernel_constants(), reason)
        return reason

    def workload_constraints(self, workload: Workload) -> tuple[Constraint, ...]:
        """The device's budgets as declared rules (no simulation needed; :meth:`budget_reasons`):
        a weight tile must fit one buffer (``tile``: up to ``d x pe_out`` 16-bit weights, ``d``
        the workload's model width), the MAC array must fit the DSPs (``dsp``) and the buffer
        inventory the BRAM, URAM and allowed LUTRAM (``memory``; it depends on the workload's
        width and expert size).  A design whose tile does not fit breaks ``tile`` alone, as the
        simulator reports it.  :meth:`evaluate` reports these designs infeasible as before, with
        its own reason and metrics; the declaration lets agents (BO's ``known_constraints``)
        skip them without a simulation, as the ``top_k`` rule is skipped.  ``archgym describe
        archgym/M3ViT-v0`` prints them."""
        w = self.workload(workload)
        g, _, _, dense = self._info(w)
        lut = PLATFORM["lutram_bits"] / 8 * self.lutram_frac
        sched = "" if dense else ", schedule={schedule}"
        rules = {   # rule: (message, the reason codes that break it)
            "tile": (f"a weight tile (up to {g.hidden} x pe_out={{pe_out}} {int(MODEL['w_bits'])}-bit weights) "
                     f"does not fit one wbuf_kib={{wbuf_kib}} KiB buffer", (2,)),
            "dsp": (f"the pe_in={{pe_in}} x pe_out={{pe_out}} MAC array needs pe_in x pe_out + pe_out + "
                    f"{int(MODEL['misc_dsp_count'])} DSPs, more than the device's {int(PLATFORM['dsp_count'])}", (3, 5)),
            "memory": (f"the on-chip buffers (n_wbuf={{n_wbuf}} x wbuf_kib={{wbuf_kib}} KiB weights{sched}, "
                       f"cache_slots={{cache_slots}}, n_experts={{n_experts}}, plus biases, activations and "
                       f"routing queues) exceed the device's {BRAM_URAM_BYTES / 2**20:.3f} MiB BRAM+URAM + "
                       f"{lut / 2**20:.3f} MiB LUTRAM (lutram_frac={self.lutram_frac:g})", (4, 5)),
        }

        def vector(codes: tuple[int, ...], c: Mapping[str, np.ndarray]) -> np.ndarray:
            return ~np.isin(self.budget_reasons(c, w), codes)

        def check(codes: tuple[int, ...], d: Mapping[str, Any]) -> bool:
            return bool(vector(codes, {k: np.array([v]) for k, v in d.items()})[0])

        return tuple(Constraint(name, functools.partial(check, codes), msg, vector=functools.partial(vector, codes))
                     for name, (msg, codes) in rules.items())

    def routing_for(self, dataset: str, task: int, n_experts: int, top_k: int, *, geom: Geom | None = None) -> Routing:
        """The (cached) synthetic routing of the MoE layers for one dataset and task."""
        g = geom or _DEFAULT_GEOM[dataset]
        skew, s, strength, seed = self.routing_opts
        return _routing(g.tokens, n_experts, top_k, g.n_moe, skew, s, task, len(TASKS[dataset]), strength, seed)

    def _info(self, w: Workload) -> tuple[Geom, str, int, bool]:
        info = self.__dict__.setdefault("_wl_info", {}).get(w.key)
        if info is None:
            ds, task = w.params["dataset"], w.params.get("task")
            info = (_geom(w.model, VIT_TOKENS[ds]), ds, TASKS[ds].index(task) if task else 0, not w.moes())
            self._wl_info[w.key] = info
        return info

    def _evaluate(self, design: dict, workload: Workload) -> Metrics:
        """The model on a checked design and workload (the slow reference path)."""
        g, ds, task, dense = self._info(workload)
        return self._run(design, g, ds, task, "dense" if dense else design["schedule"], None)

    def _run(self, d: Mapping[str, Any], g: Geom, ds: str, task: int, sched: str, routing: Routing | None) -> Metrics:
        qlen = misses = None
        if sched in ("reorder", "cache"):
            r = routing or self.routing_for(ds, task, d["n_experts"], d["top_k"], geom=g)
            if sched == "reorder":
                qlen = r.queue_lengths()
            else:
                misses = _misses(r, d["cache_slots"], self.cache_policy == "hits_first")
        return evaluate_reference(d, g, sched, qlen, misses, power=self.power, lutram_frac=self.lutram_frac,
                                  token_capacity=self.token_capacity)

    # --- batched --------------------------------------------------------------------------------
    def evaluate_batch(self, indices: np.ndarray, workload: Workload | str | None = None, *,
                       reasons: bool = False) -> dict[str, np.ndarray]:
        """Every metric of many grid designs at once (the numba kernel; the same numbers as
        :meth:`evaluate`).  ``indices``: integer ``(n, 11)`` index vectors into
        :meth:`design_space`.  Returns ``{metric: float64 array(n)}`` plus ``"feasible"``,
        and with ``reasons=True`` ``"reason_class"`` (int8 codes into :data:`REASON_CLASSES`:
        constraint, a weight tile too big for its buffer, over the DSP and/or memory budget).
        Designs violating ``top_k <= n_experts`` are infeasible with every metric NaN."""
        w = self.workload(workload)
        space = self._space
        idx = np.asarray(indices)
        nvec = np.array([len(p.values) for p in space.params])
        if idx.ndim != 2 or idx.shape[1] != len(nvec) or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise ValueError(f"indices must be an integer array of shape (n, {len(nvec)}); got shape {idx.shape} "
                             f"dtype {idx.dtype}")
        if idx.size and ((idx < 0).any() or (idx >= nvec).any()):
            j = int(np.argmax(((idx < 0) | (idx >= nvec)).any(axis=0)))
            raise ValueError(f"indices for {space.params[j].name} must be in 0..{nvec[j] - 1}; got values "
                             f"{int(idx[:, j].min())}..{int(idx[:, j].max())}")
        idx = idx.astype(np.int64, copy=False)
        g, ds, task, dense = self._info(w)
        act, nact, nmin, pre, miss_tab = self._batch_tables(g, ds, task)
        vals = self.__dict__.get("_vals")
        if vals is None:
            vals = self._vals = [np.array(p.values if p.name != "schedule" else range(3)) for p in space.params]
        col = [v[idx[:, j]] for j, v in enumerate(vals)]
        pi, po, nb, wk, pf, sl, sc, bw, clk, ne, tk = col
        sched = np.full(len(idx), 3, dtype=np.int64) if dense else sc.astype(np.int64)
        nK = len(vals[10])
        tab = idx[:, 9] * nK + idx[:, 10]
        miss = miss_tab[idx[:, 9], idx[:, 10], idx[:, 5]]
        out = np.empty((_batch.N_OUT, len(idx)))
        reason = np.empty(len(idx), dtype=np.int8)
        if any(MODEL[k] != v for k, v in _KERNEL_ASSUMES.items()):
            raise RuntimeError("MODEL constants differ from those written into _m3vit_kernels.batch_eval")
        _batch.batch_eval(*(a.astype(np.int64) for a in (pi, po, nb, wk, pf, sl)), sched, bw.astype(np.float64),
                         clk.astype(np.float64), ne.astype(np.int64), tk.astype(np.int64), tab, act, nact, nmin, pre, miss,
                         np.array([*g, self.token_capacity], dtype=np.int64), self._kernel_constants(),
                         self.power == "fixed", out, reason)
        res = dict(zip(_BATCH_KEYS, out))
        res["feasible"] = reason == 0
        if reasons:
            res["reason_class"] = reason
        return res

    def _kernel_constants(self) -> np.ndarray:
        t = TECH
        return np.array([PLATFORM["dsp_count"], PLATFORM["dram_latency_s"], PLATFORM["power_w"], t["static_w"],
                         t["dsp_uw_per_mhz"], t["bram36_uw_per_mhz"], t["uram_uw_per_mhz"],
                         t["lutram_uw_per_mhz_per_kib"], t["mac_pj"], t["dram_pj_per_byte"], BRAM_URAM_BYTES,
                         PLATFORM["lutram_bits"] / 8 * self.lutram_frac], dtype=np.float64)

    def _batch_tables(self, g: Geom, ds: str, task: int) -> tuple[np.ndarray, ...]:
        """Routing tables of every (n_experts, top_k) of the grid, row ``n_idx * len(top_k) + k_idx``:
        tokens of each active expert in expert order ``[rows, n_moe, max N]``, how many are active and
        the smallest queue ``[rows, n_moe]``, prefix sums of the first ``[rows, n_moe, max N + 1]``; and the cache misses ``[nN, nK, nS, n_moe]``.  The routing
        is workload data, computed once per workload."""
        key = (g, ds, task, self.routing_opts, self.cache_policy)
        hit = self._tables.get(key)
        if hit is not None:
            return hit
        ns, ks, slots = (self._space[p].values for p in ("n_experts", "top_k", "cache_slots"))
        L = max(g.n_moe, 1)
        act = np.zeros((len(ns) * len(ks), L, max(ns)), dtype=np.int64)
        pre = np.zeros((len(ns) * len(ks), L, max(ns) + 1), dtype=np.int64)
        nact = np.zeros((len(ns) * len(ks), L), dtype=np.int64)
        nmin = np.zeros((len(ns) * len(ks), L), dtype=np.int64)
        miss = np.zeros((len(ns), len(ks), len(slots), L), dtype=np.int64)
        if g.n_moe:
            for a, n in enumerate(ns):
                for b, k in enumerate(ks):
                    if k > n:
                        continue
                    r = self.routing_for(ds, task, n, k, geom=g)
                    for layer, q in enumerate(r.queue_lengths()):
                        on = q[q > 0]
                        act[a * len(ks) + b, layer, :len(on)] = on
                        pre[a * len(ks) + b, layer, 1:len(on) + 1] = np.cumsum(on)
                        nact[a * len(ks) + b, layer] = len(on)
                        nmin[a * len(ks) + b, layer] = on.min()
                    for c, s in enumerate(slots):
                        miss[a, b, c] = _misses(r, s, self.cache_policy == "hits_first")
        self._tables[key] = (act, nact, nmin, pre, miss)
        return act, nact, nmin, pre, miss


def simulate(dataset: str, schedule: str, *, task: int | str = 0, routing: Routing | None = None,
             **design: Any) -> Metrics:
    """Simulate one frame of M3ViT's encoder: ``simulate("pascal", "reorder", pe_out=64)``.

    Args:
        dataset: ``"pascal"`` (1025 tokens) or ``"nyud"`` (1201 tokens).
        schedule: ``"dense"`` (ViT-S), ``"naive"``, ``"cache"`` or ``"reorder"``.
        task: task index or name (:data:`TASKS`); selects that task's router.
        routing: explicit routing (``[6, tokens, top_k]`` with ``n_experts`` experts)
            instead of the synthetic one; must match the design.
        **design: any of :data:`DEFAULT_DESIGN` (others keep the paper's point; values need
            not lie on the env's grid, see :data:`RANGES`), plus the
            :class:`M3ViTSimulator` options ``power``, ``cache_policy``, ``routing_skew``,
            ``zipf_s``, ``task_strength``, ``routing_seed``, ``lutram_frac``.

    Returns :class:`~archgym.metrics.Metrics`; a design over the DSP/memory budget or with a
    weight buffer smaller than one tile comes back with ``feasible=False`` and the numbers in
    ``reason``.  Bad input (unknown dataset/schedule/parameter, a value out of range,
    ``top_k > n_experts``) raises ``ValueError`` naming it.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset={dataset!r} is not allowed; allowed: {', '.join(DATASETS)}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} is not allowed; allowed: {', '.join(SCHEDULES)}")
    if "schedule" in design:
        raise ValueError("pass the schedule as the second argument, not as a design parameter")
    opts = {k: design.pop(k) for k in _SIM_OPTIONS if k in design}
    sim = _simulator(tuple(sorted(opts.items())))
    tasks = TASKS[dataset]
    if isinstance(task, str) and task in tasks:
        task = tasks.index(task)
    if isinstance(task, bool) or not isinstance(task, (int, np.integer)) or not 0 <= task < len(tasks):
        raise ValueError(f"task={task!r} for {dataset}; allowed 0..{len(tasks) - 1} or {', '.join(tasks)}")
    d = _check({**DEFAULT_DESIGN, **design, "schedule": "reorder" if schedule == "dense" else schedule},
               SCHEDULES[1:])
    g = _DEFAULT_GEOM[dataset]
    if routing is not None and schedule != "dense":
        if not isinstance(routing, Routing):
            raise ValueError(f"routing must be an archgym.workloads.routing.Routing, got {type(routing).__name__}")
        want = (g.n_moe, g.tokens, d["top_k"], d["n_experts"])
        got = (routing.n_layers, routing.tokens, routing.top_k, routing.n_experts)
        if got != want:
            raise ValueError(f"routing has (layers, tokens, top_k, n_experts) = {got}; this design needs {want}")
    return sim._run(d, g, dataset, int(task), schedule, routing)


@lru_cache(maxsize=32)
def _simulator(opts: tuple) -> M3ViTSimulator:
    return M3ViTSimulator(**dict(opts))
