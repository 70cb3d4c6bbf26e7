"""The Agile-Quant edge-CPU cost model, one design at a time: the reference path.

Everything here prices one forward pass (prefill) of ``seq_len`` tokens of a
decoder LLM (OPT or LLaMA family) on one :class:`Device`; the batched numba
kernels (:mod:`simulators._agile_quant_kernels`) compute the same numbers from
tables and are tested against :func:`price`.  The equations are stated in
:mod:`simulators.agile_quant` and ``experiments/agile_quant/calibration.md``.

Separability (used by the batch tables and the exact optimum): every op's time
``max(compute, traffic / bandwidth)`` depends on at most one layer group's
(activation bits, weight bits, group size) plus the global parameters (token
schedule, SIMD packing, device), so the total latency, the DRAM traffic, the
weight bytes and the quantization error are each a constant plus one term per
layer group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Mapping

from archgym.metrics import Metrics
from archgym.workloads import ModelConfig
from rtl_models.quant import kept_token_counts
from rtl_models.simd import SMMWConfig, op_counts

from . import _agile_quant_error as _err

__all__ = ["AgileQuantError", "Device", "DEVICES", "KERNEL", "EW_INSTR", "FAMILIES", "GROUPS", "BITS",
           "GROUP_SIZES", "overflow_reason", "price", "token_schedule", "start_layer", "weight_bytes_of",
           "footprint_extra_bytes", "reduction_dims", "family_refusal", "OPT_POSITIONS"]

GROUPS = _err.GROUPS
BITS = _err.BITS
GROUP_SIZES = _err.GROUP_SIZES
FAMILIES = ("opt", "llama")
# OPT's learned position table: max_position_embeddings 2048 + the offset of 2 (Hugging Face OPT)
OPT_POSITIONS = 2050

# Kernel constants.
KERNEL: dict[str, float] = {
    # INT8 GEMM over FP16 GEMM: paper, "End-to-end Performance": "approximately 1.8x to 1.9x" (midpoint)
    "int8_over_fp16": 1.85,
    # packed INT4 (SMMW) GEMM over INT8: paper, same section: "approximately 1.75x"
    "int4_over_int8": 1.75,
    # group size the paper's ratios were measured with: GPTQ group 128 (run-gptq-llama.sh of
    # shawnricecake/agile-quant)
    "ref_group": 128,
    # INT8 per-group rescale: SCVTF + FMLA per 4 int32 outputs per group vs K/16 SDOT per output
    # -> overhead 8/g of the main loop (derived, instruction count)
    "int8_rescale_per_group": 8.0,
    # NEON lanes of one SMMW instruction (128-bit / 32-bit lanes, paper Algorithm 1's 1x4 mask vector)
    "smmw_lanes": 4,
}

# FP16 NEON instructions per vector of elements, and the number of full passes over the
# tensor in DRAM when it does not fit the cache.  exp follows Arm Compute Library's NEMath:
# vexpq_f16 = two vexpq_f32 on the FP32 halves plus 4 conversions; vexpq_f32 is range
# reduction + a degree-5 polynomial (~16 instructions) -> ~36 per 8 FP16 elements.
# The other counts are the obvious instruction sequences (assumed).
EW_INSTR: dict[str, tuple[float, int]] = {
    "layernorm": (8.0, 2),     # mean/var pass (2 FMLA + reductions), normalize + affine pass
    "rmsnorm": (6.0, 2),
    "softmax": (40.0, 2),      # max, exp(x - max) (36), sum, normalize (a 2048-token row fits L1)
    "relu": (1.0, 2),
    "swiglu": (44.0, 3),       # SiLU(gate) * up: exp(-x) (36), add, reciprocal (5), 2 mul
    "rope": (4.0, 2),          # 2 FMUL + FMLA/FMLS per rotated pair
    "add": (1.0, 3),           # residual add: two reads, one write
    "quantize": (10.0, 2),     # FP16 -> FP32 halves, scale + offset, round-convert, 2 narrows
    "gather": (1.0, 2),        # copy of the surviving tokens after pruning
}


class AgileQuantError(ValueError):
    """Bad input to the Agile-Quant model (names the value and what is allowed)."""


@dataclass(frozen=True, kw_only=True)
class Device:
    """An edge CPU.  Clocks are of the cores the threads run on, fastest first.

    Attributes:
        name, soc, core: identification.
        core_ghz: clock of each usable core (GHz), fastest first.
        threads: cores used (the fastest ``threads`` of ``core_ghz``).
        simd_bits, simd_pipes: NEON register width and 128-bit pipes per core.
        fp16_arith: Armv8.2 FP16 arithmetic (else FP16 data computes in FP32 lanes).
        dram_gbps: peak DRAM bandwidth (GB/s); llc_mb: last-level cache (MB).
        dram_gb: DRAM capacity (GB).
        efficiency: calibrated multiple of the spec peak achieved (compute and
            bandwidth alike), fitted on OPT-1.3B only (see
            :func:`simulators.agile_quant.calibrate_efficiency`).  The Snapdragon value
            exceeds 1: Table 4's phone latencies are faster than the cores' FP16 peak
            allows for 2048 tokens (see experiments/agile_quant/calibration.md).
        source: where the numbers come from.
    """

    name: str
    soc: str
    core: str
    core_ghz: tuple[float, ...]
    threads: int
    simd_bits: int = 128
    simd_pipes: int = 2
    fp16_arith: bool = True
    dram_gbps: float
    llc_mb: float
    dram_gb: float
    efficiency: float
    source: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.threads <= len(self.core_ghz):
            raise AgileQuantError(f"threads={self.threads} is outside the allowed range [1, {len(self.core_ghz)}]")
        if self.simd_bits not in (64, 128, 256, 512):
            raise AgileQuantError(f"simd_bits={self.simd_bits} is not allowed; allowed: 64, 128, 256, 512")
        for k in ("dram_gbps", "llc_mb", "dram_gb", "efficiency"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise AgileQuantError(f"{k}={v!r} must be a finite number > 0")
        if self.simd_pipes < 1 or any(not (g > 0) for g in self.core_ghz):
            raise AgileQuantError("simd_pipes and every core clock must be > 0")

    @property
    def ghz(self) -> float:
        """Sum of the clocks of the cores in use (work is balanced dynamically, assumed)."""
        return float(sum(sorted(self.core_ghz, reverse=True)[: self.threads]))

    @property
    def lanes16(self) -> int:
        """FP16 elements per NEON vector (FP32 lanes on a core without FP16 arithmetic)."""
        return self.simd_bits // (16 if self.fp16_arith else 32)

    @property
    def fp16_macs_per_s(self) -> float:
        """Peak FP16 GEMM multiply-accumulates per second (FMLA on every lane, every pipe)."""
        return self.ghz * 1e9 * self.simd_pipes * self.lanes16

    @property
    def vec_per_s(self) -> float:
        """Peak FP16 vector instructions per second (elementwise ops)."""
        return self.ghz * 1e9 * self.simd_pipes


DEVICES: dict[str, Device] = {
    # AnandTech, "Qualcomm Announces Snapdragon 870" (2021-01-19): 1x A77 @ 3.2 GHz (512 KB L2),
    # 3x A77 @ 2.42 GHz (256 KB L2), 4x A55 @ 1.8 GHz, 4 MB L3 + 3 MB system cache,
    # 4x16-bit LPDDR5-2750 = 44.0 GB/s.  Threads on the four A77 (assumed: ACL on the big
    # cores).  A77: two 128-bit ASIMD pipes with FP16 arithmetic (Arm Cortex-A77 Software
    # Optimization Guide).  Phone RAM 12 GB (assumed: the paper says only "Realme GT").
    "snapdragon-870": Device(
        name="snapdragon-870", soc="Snapdragon 870", core="Cortex-A77",
        core_ghz=(3.2, 2.42, 2.42, 2.42), threads=4, simd_bits=128, simd_pipes=2, fp16_arith=True,
        dram_gbps=44.0, llc_mb=4.0, dram_gb=12.0, efficiency=3.372,
        source="AnandTech SD870 table; Arm Cortex-A77 SWOG; efficiency fitted on OPT-1.3B (Table 4)"),
    # Raspberry Pi 4B: BCM2711, 4x Cortex-A72 @ 1.5 GHz (B0; 1.8 GHz on C0 boards), 1 MB shared L2,
    # LPDDR4-3200 on a 32-bit bus = 12.8 GB/s, 8 GB (paper).  A72 (Armv8.0): two 128-bit ASIMD
    # pipes, no FP16 arithmetic.
    "rpi-4b": Device(
        name="rpi-4b", soc="BCM2711", core="Cortex-A72",
        core_ghz=(1.5, 1.5, 1.5, 1.5), threads=4, simd_bits=128, simd_pipes=2, fp16_arith=False,
        dram_gbps=12.8, llc_mb=1.0, dram_gb=8.0, efficiency=0.08540,
        source="Raspberry Pi Beginner's Guide App. F; BCM2711 docs; efficiency fitted on OPT-1.3B"),
}

HW_KEYS = {"threads": int, "freq_ghz": float, "simd_bits": int, "dram_gbps": float, "llc_mb": float,
           "dram_gb": float, "efficiency": float}


def device(name: str, overrides: Mapping[str, Any]) -> Device:
    """A preset of :data:`DEVICES` with hardware overrides (``threads``, ``freq_ghz``, ...)."""
    try:
        dev = DEVICES[name]
    except (KeyError, TypeError):
        raise AgileQuantError(f"unknown device {name!r}; allowed: {', '.join(DEVICES)}") from None
    kw = {k: v for k, v in overrides.items() if v is not None}
    for k, v in kw.items():
        typ = HW_KEYS[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (typ is int and int(v) != v):
            raise AgileQuantError(f"{k}={v!r} must be {'an integer' if typ is int else 'a number'}")
        kw[k] = typ(v)
    if "freq_ghz" in kw:
        f = kw.pop("freq_ghz")
        if not (isinstance(f, (int, float)) and 0 < f <= 10):
            raise AgileQuantError(f"freq_ghz={f!r} is outside the allowed range (0, 10]")
        kw["core_ghz"] = tuple(float(f) for _ in dev.core_ghz)
    return replace(dev, **kw) if kw else dev


def family_refusal(cfg: ModelConfig) -> str | None:
    """Why the model cannot price ``cfg`` (None if it can)."""
    if cfg.family in FAMILIES:
        if cfg.hidden % cfg.heads or cfg.kv_heads < 1 or cfg.heads % cfg.kv_heads:
            return (f"{cfg.name}: hidden={cfg.hidden}, heads={cfg.heads}, kv_heads={cfg.kv_heads} do not "
                    "split into whole heads and KV groups")
        return None
    why = {"phi": "its parallel attention/MLP block has no place for Agile-Quant's token pruning (after the "
                  "attention residual) and its GELU is not in the model",
           "gpt2": "its GELU MLP and fused qkv are not in the model",
           "mixtral": "its mixture-of-experts FFN is not in the model",
           }.get(cfg.family, "it is not a decoder LLM")
    return f"{cfg.name} is a {cfg.family} model: {why}"


# ---------------------------------------------------------------- kernels ----
def kernel_kind(a: int, w: int, packing: bool) -> str:
    """Which GEMM kernel runs an (a-bit x w-bit) GEMM: ``fp16``, ``int8`` or ``smmw``."""
    if a == 16 or w == 16:
        return "fp16"          # weight-only (or activation-only) quantization computes in FP16
    if packing and a + w <= 8:
        return "smmw"          # two products per 16-bit operand need <= 8-bit products (paper, SMMW)
    return "int8"              # sub-byte operands zero-extended to 8 bits (paper, Background)


@lru_cache(maxsize=4096)
def smmw_factor(k: int, group: int) -> float:
    """SMMW instructions per MAC at drain interval ``min(group, k)`` relative to the
    paper's reference (group 128), counted by :func:`rtl_models.simd.op_counts`
    plus a per-drain rescale of 2 FP instructions per 4 outputs."""
    def per_mac(g: int) -> float:
        cfg = SMMWConfig(drain_every=min(g, k, 256), allow_unsafe_drain=False)
        oc = op_counts(1, k, 2 * KERNEL["smmw_lanes"], config=cfg, lanes_per_vector=KERNEL["smmw_lanes"])
        rescale = oc.drains_per_lane * oc.lane_groups * 2 * 2 / KERNEL["smmw_lanes"]
        return (oc.total + rescale) / oc.macs
    return per_mac(group) / per_mac(int(KERNEL["ref_group"]))


def int8_factor(k: int, group: int) -> float:
    """INT8 GEMM time per MAC at group ``group`` relative to group 128 (per-group rescale)."""
    c, ref = KERNEL["int8_rescale_per_group"], KERNEL["ref_group"]
    return (1.0 + c / min(group, k)) / (1.0 + c / min(ref, k))


def overflow_reason(group: str, k: int, a: int, w: int, group_size: int, packing: bool) -> str | None:
    """Why a GEMM's accumulation would overflow (None if it would not).

    SMMW: a 32-bit lane holds two 16-bit fields that accumulate unsigned
    ``w x a``-bit products between drains (one drain per quantization group);
    more than ``SMMWConfig.max_safe_accumulations`` worst-case products carry
    into the neighbouring field.  INT8 path: 32-bit accumulators.
    """
    kind = kernel_kind(a, w, packing)
    run = min(group_size, k)
    if kind == "smmw":
        cap = SMMWConfig(weight_bits=w, act_bits=a, drain_every=1).max_safe_accumulations
        if run > cap:
            return (f"{group}: SMMW lane accumulates {run} products of {w}x{a} bits per drain "
                    f"(group_size={group_size}, K={k}); a 16-bit field holds at most {cap}")
    elif kind == "int8":
        cap = (2 ** 31 - 1) // (2 ** (a - 1) * 2 ** (w - 1))
        if k > cap:
            return f"{group}: K={k} products of {w}x{a} bits overflow a 32-bit accumulator (max {cap})"
    return None


# ------------------------------------------------------------- cost model ----
class _Cost:
    """Accumulates time (s, before the efficiency scale) and DRAM bytes per breakdown key."""

    def __init__(self, dev: Device) -> None:
        self.dev = dev
        self.time: dict[str, float] = {}
        self.traffic: dict[str, float] = {}
        self.half_llc = dev.llc_mb * 1e6 / 2
        self.bw = dev.dram_gbps * 1e9
        self.lanes16 = dev.lanes16

    def add(self, key: str, compute: float, traffic: float, mult: float) -> None:
        self.time[key] = self.time.get(key, 0.0) + max(compute, traffic / self.bw) * mult
        self.traffic[key] = self.traffic.get(key, 0.0) + traffic * mult

    def gemm(self, key: str, m: int, k: int, n: int, count: float, a: int, w: int, g: int, packing: bool) -> None:
        kind = kernel_kind(a, w, packing)
        rate = self.dev.fp16_macs_per_s
        if kind == "int8":
            rate *= KERNEL["int8_over_fp16"] / int8_factor(k, g)
        elif kind == "smmw":
            rate *= KERNEL["int8_over_fp16"] * KERNEL["int4_over_int8"] / smmw_factor(k, g)
        ab, wb = a / 8, w / 8
        w_bytes = k * n * wb + (n * math.ceil(k / min(g, k)) * (2 + wb) if w < 16 else 0.0)
        a_bytes, c_bytes = m * k * ab, m * n * 2.0
        if a_bytes <= self.half_llc:
            a_traffic = 0.0                      # produced by the previous op, still cached
        else:                                    # re-read once per weight panel that fits half the LLC
            n_c = max(1, int(self.half_llc // (k * wb)))
            a_traffic = a_bytes * math.ceil(n / n_c)
        c_traffic = c_bytes if c_bytes > self.half_llc else 0.0
        self.add(key, m * k * n / rate, w_bytes + a_traffic + c_traffic, count)

    def ew(self, key: str, op: str, elems: float, count: float = 1.0) -> None:
        instr, passes = EW_INSTR[op]
        compute = elems / self.lanes16 * instr / self.dev.vec_per_s
        traffic = elems * 2.0 * passes if elems * 2.0 > self.half_llc else 0.0
        self.add(key, compute, traffic, count)


# breakdown keys of the non-GEMM work (docs/metrics.md: groupings other than layers are ``unit:``)
EW, QUANT, SOFTMAX = "unit:elementwise", "unit:quantize", "unit:softmax"


def _bits(d: Mapping[str, Any], g: str) -> tuple[int, int, int]:
    return int(d[f"a_bits_{g}"]), int(d[f"w_bits_{g}"]), int(d[f"group_size_{g}"])


def ffn_names(cfg: ModelConfig) -> tuple[str, ...]:
    """Workload layer names of the FFN GEMMs (as :func:`archgym.workloads.decoder_workload` names them)."""
    return ("gate_proj", "up_proj", "down_proj") if cfg.family == "llama" else ("fc1", "fc2")


def _layer(cost: _Cost, cfg: ModelConfig, d: Mapping[str, Any], pack: bool, t_in: int, t_out: int,
           mult: float) -> None:
    """One decoder layer: attention on ``t_in`` tokens, FFN on the ``t_out`` survivors."""
    h, hd, f, kv = cfg.hidden, cfg.head_dim, cfg.ffn, cfg.kv_dim
    llama = cfg.family == "llama"
    norm = "rmsnorm" if llama else "layernorm"
    aq, wq, gq = _bits(d, "qkv")
    cost.ew(EW, norm, t_in * h, mult)
    if aq < 16:
        cost.ew(QUANT, "quantize", t_in * h, mult)
    cost.gemm("q_proj", t_in, h, h, mult, aq, wq, gq, pack)
    cost.gemm("k_proj", t_in, h, kv, mult, aq, wq, gq, pack)
    cost.gemm("v_proj", t_in, h, kv, mult, aq, wq, gq, pack)
    if llama:
        cost.ew(EW, "rope", t_in * (h + kv), mult)
    aa, wa, ga = _bits(d, "attn")
    if aa < 16:
        cost.ew(QUANT, "quantize", t_in * (h + 2 * kv), mult)
    cost.gemm("attn_qk", t_in, hd, t_in, cfg.heads * mult, aa, wa, ga, pack)
    cost.ew(SOFTMAX, "softmax", t_in * t_in, cfg.heads * mult)
    cost.gemm("attn_v", t_in, t_in, hd, cfg.heads * mult, aa, wa, ga, pack)
    ao, wo, go = _bits(d, "o_proj")
    if ao < 16:
        cost.ew(QUANT, "quantize", t_in * h, mult)
    cost.gemm("o_proj", t_in, h, h, mult, ao, wo, go, pack)
    cost.ew(EW, "add", t_in * h, mult)
    if t_out < t_in:
        cost.ew(EW, "gather", t_out * h, mult)
    au, wu, gu = _bits(d, "ffn_up")
    cost.ew(EW, norm, t_out * h, mult)
    if au < 16:
        cost.ew(QUANT, "quantize", t_out * h, mult)
    names = ffn_names(cfg)
    for up in names[:-1]:
        cost.gemm(up, t_out, h, f, mult, au, wu, gu, pack)
    cost.ew(EW, "swiglu" if llama else "relu", t_out * f, mult)
    ad, wd, gd = _bits(d, "ffn_down")
    if ad < 16:
        cost.ew(QUANT, "quantize", t_out * f, mult)
    cost.gemm(names[-1], t_out, f, h, mult, ad, wd, gd, pack)
    cost.ew(EW, "add", t_out * h, mult)


def reduction_dims(cfg: ModelConfig, seq_len: int) -> dict[str, tuple[int, ...]]:
    """Reduction lengths K of each group's GEMMs (attention: head_dim for QK^T, seq_len for AV)."""
    return {"qkv": (cfg.hidden,), "attn": (cfg.head_dim, seq_len), "o_proj": (cfg.hidden,),
            "ffn_up": (cfg.hidden,), "ffn_down": (cfg.ffn,)}


def group_weight_shapes(cfg: ModelConfig) -> dict[str, list[tuple[int, int]]]:
    """(K, N) of each quantized weight matrix of one layer, per group (attention has none)."""
    h, f = cfg.hidden, cfg.ffn
    return {"qkv": [(h, h), (h, cfg.kv_dim), (h, cfg.kv_dim)], "o_proj": [(h, h)],
            "ffn_up": [(h, f)] * (2 if cfg.family == "llama" else 1), "ffn_down": [(f, h)]}


def fp16_weight_bytes(cfg: ModelConfig) -> float:
    """Bytes of the tensors that stay FP16: embeddings (+ untied LM head), OPT's learned
    positions, norm scales and biases."""
    h, L = cfg.hidden, cfg.n_layers
    total = cfg.vocab * h * 2 * (1 if cfg.tied_embeddings else 2)
    if cfg.family == "opt":
        total += OPT_POSITIONS * h * 2
    return total + (4 * L + 2) * h * 2


def matrix_bytes(k: int, n: int, w: int, gs: int) -> float:
    """Bytes of a (K x N) weight at ``w`` bits, plus an FP16 scale and a ``w``-bit zero point
    stored as (2 + w/8) bytes per group of ``gs`` along K and column (none at 16 bits)."""
    return k * n * w / 8 + (n * math.ceil(k / min(gs, k)) * (2 + w / 8) if w < 16 else 0.0)


def weight_bytes_of(cfg: ModelConfig, d: Mapping[str, Any]) -> float:
    """Weight bytes of the whole model for design ``d`` (a footprint, not traffic)."""
    total = 0.0
    for g, mats in group_weight_shapes(cfg).items():
        _, w, gs = _bits(d, g)
        for k, n in mats:
            total += matrix_bytes(k, n, w, gs)
    return total * cfg.n_layers + fp16_weight_bytes(cfg)


def footprint_extra_bytes(cfg: ModelConfig, seq_len: int) -> float:
    """DRAM the activations need besides the weights: residual stream, q/k/v/o and FFN
    buffers in FP16 (``S x (4h + 2f)``) and one layer's attention scores (``heads x S x S``)."""
    s = seq_len
    return s * (4 * cfg.hidden + 2 * cfg.ffn) * 2 + cfg.heads * s * s * 2


def start_layer(frac: float, n_layers: int) -> int:
    """First pruning layer: ``round(frac x L)`` (Python's rounding), at most ``L - 1``."""
    return min(n_layers - 1, int(round(float(frac) * n_layers)))


def token_schedule(seq_len: int, n_layers: int, prune_ratio: float, prune_start_frac: float
                   ) -> tuple[list[int], list[int]]:
    """(tokens entering each layer, tokens leaving it): the pruning cascade of
    :func:`rtl_models.quant.kept_token_counts` (no pruning when the ratio is 0)."""
    beta = float(prune_ratio)
    counts = (kept_token_counts(seq_len, n_layers, start_layer(prune_start_frac, n_layers), beta)
              if beta > 0 else [seq_len] * n_layers)
    return [seq_len] + counts[:-1], counts


def layer_runs(entering: list[int], counts: list[int]) -> list[tuple[int, int, int]]:
    """``(t_in, t_out, repeats)``: consecutive identical unpruned layers priced once."""
    runs, l, n = [], 0, len(counts)
    while l < n:
        same = 1
        while l + same < n and counts[l] == entering[l] and counts[l + same] == entering[l]:
            same += 1
        runs.append((entering[l], counts[l], same))
        l += same
    return runs


def prune_error(entering: list[int], seq_len: int) -> float:
    """Mean over layers of the pruning error of the tokens entering each layer."""
    return sum(_err.prune_nsr(t / seq_len) if t < seq_len else 0.0 for t in entering) / len(entering)


def gemm_macs(cfg: ModelConfig, entering: list[int], counts: list[int]) -> int:
    """MACs of every GEMM of the pass (attention on the entering tokens, FFN on the survivors,
    the LM head on the last token)."""
    h, f = cfg.hidden, cfg.ffn
    total = 0
    for t_in, t_out in zip(entering, counts):
        total += t_in * (h + 2 * cfg.kv_dim) * h + t_in * h * h + 2 * t_in * t_in * h
        total += t_out * h * f * (3 if cfg.family == "llama" else 2)
    return total + cfg.hidden * cfg.vocab


def price(cfg: ModelConfig, dev: Device, d: Mapping[str, Any], seq_len: int, enforce_capacity: bool) -> Metrics:
    """Metrics of one checked design ``d`` (group bits in :data:`BITS`, sizes in
    :data:`GROUP_SIZES`, ``simd_packing`` a bool or ``"on"``/``"off"``) on ``cfg`` at
    ``seq_len`` prefill tokens: the reference the batched kernels are tested against."""
    L, S = cfg.n_layers, seq_len
    pack = d["simd_packing"] in ("on", True)
    reasons = []
    dims = reduction_dims(cfg, S)
    for g in GROUPS:
        a, w, gs = _bits(d, g)
        for k in dims[g]:
            r = overflow_reason(g, k, a, w, gs, pack)
            if r and r not in reasons:
                reasons.append(r)
    wbytes = weight_bytes_of(cfg, d)
    footprint = wbytes + footprint_extra_bytes(cfg, S)
    overflow = max(0.0, footprint - dev.dram_gb * 1e9)
    if enforce_capacity and overflow > 0:
        reasons.append(f"weights + activations need {footprint / 1e9:.2f} GB; {dev.name} has {dev.dram_gb:g} GB")
    entering, counts = token_schedule(S, L, d["prune_ratio"], d["prune_start_frac"])
    quant = sum(_err.group_nsr(g, *_bits(d, g)) for g in GROUPS) / len(GROUPS)
    prune = prune_error(entering, S)
    err = quant + prune
    extra = {"tokens_per_s": math.nan, "weight_bytes": wbytes, "gemm_macs": float(gemm_macs(cfg, entering, counts)),
             "quant_nsr_ratio": quant, "prune_nsr_ratio": prune, "error_nsr_ratio": err,
             "sqnr_db": -10.0 * math.log10(err), "pruned_frac": 1.0 - sum(entering) / (S * L),
             "dram_overflow_bytes": overflow}
    if reasons:                                         # same metric keys as a feasible result
        return Metrics.infeasible("; ".join(reasons), extra=extra)
    cost = _Cost(dev)
    for t_in, t_out, same in layer_runs(entering, counts):
        _layer(cost, cfg, d, pack, t_in, t_out, same)
    cost.ew(EW, "rmsnorm" if cfg.family == "llama" else "layernorm", counts[-1] * cfg.hidden)
    cost.gemm("lm_head", 1, cfg.hidden, cfg.vocab, 1, 16, 16, 128, False)
    cost.add(EW, 0.0, S * cfg.hidden * 2.0, 1)          # embedding gather
    eff = dev.efficiency
    latency = sum(cost.time.values()) / eff
    extra["tokens_per_s"] = S / latency
    breakdown = {k: {"latency_s": v / eff, "dram_bytes": cost.traffic[k]} for k, v in cost.time.items()}
    return Metrics(latency_s=latency, dram_bytes=sum(cost.traffic.values()), throughput_per_s=1.0 / latency,
                   extra=extra, breakdown=breakdown)
