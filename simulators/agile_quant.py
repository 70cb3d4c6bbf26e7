"""Agile-Quant (Shen et al., AAAI 2024, arXiv 2312.05693) edge-CPU latency model.

Reproduces: Table 4 of the paper (sheet ``shared/reference/agile_quant.md`` §3):
end-to-end latency of OPT-125M/1.3B/2.7B and LLaMA-7B with FP16 and
Agile-Quant-8/-4 (W4A8 / W4A4 + token pruning) on a Snapdragon 870 phone and a
Raspberry Pi 4B.  Tolerances met (``tests/test_agile_quant.py``): speedups over
FP16 within 10% for every model and device; OPT-1.3B absolute latency within
15% (one efficiency constant per device, fitted on OPT-1.3B only); the other
models' absolute latencies are reported with their error (large: see
``experiments/agile_quant/calibration.md``).

Model (one forward pass of ``seq_len`` tokens; per layer, token pruning
shrinking the later layers):

* GEMM time = ``max(compute, memory)``.  Compute = MACs / (threads x clock x
  SIMD pipes x lanes x kernel ratio): FP16 lanes = SIMD bits / 16 on an
  FP16-capable core (Armv8.2, Cortex-A77), / 32 on the Cortex-A72 (Armv8.0 has
  no FP16 arithmetic); the INT8 and packed-INT4 kernel ratios are the paper's
  measured GEMM speedups (1.8-1.9x over FP16, 1.75x over INT8), with group-size
  overheads from instruction counts (:func:`rtl_models.simd.op_counts` for the
  SMMW lane loop and drains).  Memory = DRAM bytes / bandwidth with a blocked
  GEMM whose weight panel must fit half the last-level cache.
* LayerNorm/RMSNorm, Softmax, ReLU/SwiGLU, RoPE, residual adds, activation
  (de)quantization and pruning gathers run in FP16 (paper: nonlinear ops stay
  FP16) at NEON instruction counts per vector (:data:`EW_INSTR`, assumed),
  or at DRAM speed when their tensors exceed the cache.
* Token pruning: the cascade of ``rtl_models.quant.kept_token_counts``; a
  layer's attention runs on the tokens that entered it, its FFN on the
  survivors.
* The output module (LM head) stays FP16 and runs on the last token only
  (assumed; the paper calls the output module a "relatively small
  proportion" of the latency, which all-token logits of OPT-125M would not be).
* Total time / ``device.efficiency`` (the one calibrated constant per device).

The accuracy side (:mod:`simulators._agile_quant_kernels`) is a computed
noise-to-signal ratio of every quantized layer group on seeded synthetic
activations with outlier channels, plus a token-pruning term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Mapping

from archgym.metrics import Metrics
from archgym.simulator import Simulator
from archgym.space import Choice, DesignSpace
from archgym.workloads import ModelConfig, WorkloadError, get_model
from rtl_models.quant import kept_token_counts
from rtl_models.simd import SMMWConfig, op_counts

from . import _agile_quant_kernels as _err

__all__ = ["simulate", "AgileQuantSimulator", "AgileQuantError", "DEVICES", "Device", "MODELS", "SCHEMES",
           "GROUPS", "TABLE4", "preset", "calibrate_efficiency", "overflow_reason"]

MODELS = ("opt-125m", "opt-1.3b", "opt-2.7b", "llama-7b")
SCHEMES = ("fp16", "w4a8", "w4a4")
GROUPS = _err.GROUPS
BITS = _err.BITS
GROUP_SIZES = _err.GROUP_SIZES
PRUNE_RATIOS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
PRUNE_STARTS = (0.0, 0.25, 0.5, 0.75)

# Paper Table 4 (sheet §3): seconds, (FP16, ours*-8, ours*-4) per model and device.
TABLE4: dict[str, dict[str, tuple[float, float, float]]] = {
    "snapdragon-870": {"opt-125m": (1.03, 0.58, 0.44), "opt-1.3b": (5.42, 2.98, 2.18),
                       "opt-2.7b": (8.28, 4.60, 3.31), "llama-7b": (10.6, 5.89, 4.44)},
    "rpi-4b": {"opt-125m": (143.2, 80.34, 61.16), "opt-1.3b": (754.25, 410.58, 296.50),
               "opt-2.7b": (1150.9, 625.41, 455.64), "llama-7b": (1473.4, 810.25, 610.98)},
}

# Kernel constants.
KERNEL: dict[str, float] = {
    # INT8 GEMM over FP16 GEMM: paper, "End-to-end Performance": "approximately 1.8x to 1.9x" (midpoint)
    "int8_over_fp16": 1.85,
    # packed INT4 (SMMW) GEMM over INT8: paper, same section: "approximately 1.75x"
    "int4_over_int8": 1.75,
    # group size the paper's ratios were measured with: GPTQ group 128 (sheet §5, run-gptq-llama.sh)
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
            bandwidth alike), fitted on OPT-1.3B only (see :func:`calibrate_efficiency`).
            The Snapdragon value exceeds 1: Table 4's phone latencies are faster than
            the cores' FP16 peak allows for 2048 tokens (see calibration.md).
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
    def fp16_macs_per_s(self) -> float:
        """Peak FP16 GEMM multiply-accumulates per second (FMLA on every lane, every pipe)."""
        lanes = self.simd_bits // (16 if self.fp16_arith else 32)
        return self.ghz * 1e9 * self.simd_pipes * lanes

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

_HW_KEYS = {"threads": int, "freq_ghz": float, "simd_bits": int, "dram_gbps": float, "llc_mb": float,
            "dram_gb": float, "efficiency": float}


def _device(name: str, overrides: Mapping[str, Any]) -> Device:
    try:
        dev = DEVICES[name]
    except (KeyError, TypeError):
        raise AgileQuantError(f"unknown device {name!r}; allowed: {', '.join(DEVICES)}") from None
    kw = {k: v for k, v in overrides.items() if v is not None}
    for k, v in kw.items():
        typ = _HW_KEYS[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (typ is int and int(v) != v):
            raise AgileQuantError(f"{k}={v!r} must be {'an integer' if typ is int else 'a number'}")
        kw[k] = typ(v)
    if "freq_ghz" in kw:
        f = kw.pop("freq_ghz")
        if not (isinstance(f, (int, float)) and 0 < f <= 10):
            raise AgileQuantError(f"freq_ghz={f!r} is outside the allowed range (0, 10]")
        kw["core_ghz"] = tuple(float(f) for _ in dev.core_ghz)
    return replace(dev, **kw) if kw else dev


def _model(name: str) -> ModelConfig:
    if name not in MODELS:
        raise AgileQuantError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
    return get_model(name)


def preset(scheme: str) -> dict[str, Any]:
    """The flat design of a Table-4 configuration.

    ``fp16``: everything FP16, no pruning.  ``w4a8`` (ours*-8): every linear GEMM
    INT4 weights (group 128, GPTQ) x INT8 activations, attention INT8 x INT8,
    token pruning to ``prune_ratio=0.1`` at the last layer starting at half
    depth (assumed: the paper gives neither value for Table 4).  ``w4a4``
    (ours*-4): as w4a8, but o_proj and the FFN GEMMs take 4-bit activations on the
    packed SMMW kernel (the released code's INT4 activations: attention output,
    post-attention-LN output, SwiGLU product; sheet §5).
    """
    if scheme not in SCHEMES:
        raise AgileQuantError(f"unknown scheme {scheme!r}; allowed: {', '.join(SCHEMES)}")
    d: dict[str, Any] = {}
    for g in GROUPS:
        if scheme == "fp16":
            a, w = 16, 16
        elif scheme == "w4a4" and g in ("o_proj", "ffn_up", "ffn_down"):
            a, w = 4, 4
        else:
            a, w = 8, (8 if g == "attn" else 4)
        d.update({f"a_bits_{g}": a, f"w_bits_{g}": w, f"group_size_{g}": 128})
    d["prune_ratio"] = 0.0 if scheme == "fp16" else 0.1
    d["prune_start_frac"] = 0.5
    d["simd_packing"] = "off" if scheme == "fp16" else "on"
    return d


def _check_design(d: Mapping[str, Any]) -> None:
    for g in GROUPS:
        for k in ("a_bits", "w_bits"):
            v = d[f"{k}_{g}"]
            if isinstance(v, bool) or v not in BITS:
                raise AgileQuantError(f"{k}_{g}={v!r} is not a supported operand width; allowed: 4, 8, 16")
        v = d[f"group_size_{g}"]
        if isinstance(v, bool) or v not in GROUP_SIZES:
            raise AgileQuantError(f"group_size_{g}={v!r}; allowed: {', '.join(map(str, GROUP_SIZES))}")
    r = d["prune_ratio"]
    if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0.0 <= r < 1.0:
        raise AgileQuantError(f"prune_ratio={r!r} is outside the allowed range [0, 1)")
    s = d["prune_start_frac"]
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0.0 <= s < 1.0:
        raise AgileQuantError(f"prune_start_frac={s!r} is outside the allowed range [0, 1)")
    if d["simd_packing"] not in ("on", "off", True, False):
        raise AgileQuantError(f"simd_packing={d['simd_packing']!r}; allowed: 'on', 'off'")


# ---------------------------------------------------------------- kernels ----
def _kernel(a: int, w: int, packing: bool) -> str:
    if a == 16 or w == 16:
        return "fp16"          # weight-only (or activation-only) quantization computes in FP16
    if packing and a + w <= 8:
        return "smmw"          # two products per 16-bit operand need <= 8-bit products (sheet §2)
    return "int8"              # sub-byte operands zero-extended to 8 bits (paper, Background)


@lru_cache(maxsize=4096)
def _smmw_factor(k: int, group: int) -> float:
    """SMMW instructions per MAC at drain interval ``min(group, k)`` relative to the
    paper's reference (group 128), counted by :func:`rtl_models.simd.op_counts`
    plus a per-drain rescale of 2 FP instructions per 4 outputs."""
    def per_mac(g: int) -> float:
        cfg = SMMWConfig(drain_every=min(g, k, 256), allow_unsafe_drain=False)
        oc = op_counts(1, k, 2 * KERNEL["smmw_lanes"], config=cfg, lanes_per_vector=KERNEL["smmw_lanes"])
        rescale = oc.drains_per_lane * oc.lane_groups * 2 * 2 / KERNEL["smmw_lanes"]
        return (oc.total + rescale) / oc.macs
    return per_mac(group) / per_mac(int(KERNEL["ref_group"]))


def _int8_factor(k: int, group: int) -> float:
    c, ref = KERNEL["int8_rescale_per_group"], KERNEL["ref_group"]
    return (1.0 + c / min(group, k)) / (1.0 + c / min(ref, k))


def overflow_reason(group: str, k: int, a: int, w: int, group_size: int, packing: bool) -> str | None:
    """Why a GEMM's accumulation would overflow (None if it would not).

    SMMW: a 32-bit lane holds two 16-bit fields that accumulate unsigned
    ``w x a``-bit products between drains (one drain per quantization group);
    more than ``SMMWConfig.max_safe_accumulations`` worst-case products carry
    into the neighbouring field.  INT8 path: 32-bit accumulators.
    """
    kind = _kernel(a, w, packing)
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
    """Accumulates per-category time (s, before the efficiency scale) and DRAM bytes."""

    def __init__(self, dev: Device) -> None:
        self.dev = dev
        self.time: dict[str, float] = {}
        self.bytes = 0.0
        self.half_llc = dev.llc_mb * 1e6 / 2
        self.bw = dev.dram_gbps * 1e9
        self.lanes16 = dev.simd_bits // (16 if dev.fp16_arith else 32)

    def _add(self, cat: str, compute: float, traffic: float, mult: float) -> None:
        self.time[cat] = self.time.get(cat, 0.0) + max(compute, traffic / self.bw) * mult
        self.bytes += traffic * mult

    def gemm(self, cat: str, m: int, k: int, n: int, count: float, a: int, w: int, g: int, packing: bool) -> None:
        kind = _kernel(a, w, packing)
        rate = self.dev.fp16_macs_per_s
        if kind == "int8":
            rate *= KERNEL["int8_over_fp16"] / _int8_factor(k, g)
        elif kind == "smmw":
            rate *= KERNEL["int8_over_fp16"] * KERNEL["int4_over_int8"] / _smmw_factor(k, g)
        ab, wb = a / 8, w / 8
        w_bytes = k * n * wb + (n * math.ceil(k / min(g, k)) * (2 + wb) if w < 16 else 0.0)
        a_bytes, c_bytes = m * k * ab, m * n * 2.0
        if a_bytes <= self.half_llc:
            a_traffic = 0.0                      # produced by the previous op, still cached
        else:                                    # re-read once per weight panel that fits half the LLC
            n_c = max(1, int(self.half_llc // (k * wb)))
            a_traffic = a_bytes * math.ceil(n / n_c)
        c_traffic = c_bytes if c_bytes > self.half_llc else 0.0
        self._add(cat, m * k * n / rate, w_bytes + a_traffic + c_traffic, count)

    def ew(self, cat: str, op: str, elems: float, count: float = 1.0) -> None:
        instr, passes = EW_INSTR[op]
        compute = elems / self.lanes16 * instr / self.dev.vec_per_s
        traffic = elems * 2.0 * passes if elems * 2.0 > self.half_llc else 0.0
        self._add(cat, compute, traffic, count)


def _bits(d: Mapping[str, Any], g: str) -> tuple[int, int, int]:
    return int(d[f"a_bits_{g}"]), int(d[f"w_bits_{g}"]), int(d[f"group_size_{g}"])


def _layer(cost: _Cost, cfg: ModelConfig, d: Mapping[str, Any], t_in: int, t_out: int, mult: float) -> None:
    """One decoder layer: attention on ``t_in`` tokens, FFN on the ``t_out`` survivors."""
    h, hd, f = cfg.hidden, cfg.head_dim, cfg.ffn
    llama = cfg.family == "llama"
    pack = d["simd_packing"] in ("on", True)
    norm = "rmsnorm" if llama else "layernorm"
    aq, wq, gq = _bits(d, "qkv")
    cost.ew("elementwise", norm, t_in * h, mult)
    if aq < 16:
        cost.ew("quantize", "quantize", t_in * h, mult)
    cost.gemm("qkv", t_in, h, h, mult, aq, wq, gq, pack)
    cost.gemm("qkv", t_in, h, cfg.kv_dim, 2 * mult, aq, wq, gq, pack)
    if llama:
        cost.ew("elementwise", "rope", t_in * (h + cfg.kv_dim), mult)
    aa, wa, ga = _bits(d, "attn")
    if aa < 16:
        cost.ew("quantize", "quantize", t_in * (h + 2 * cfg.kv_dim), mult)
    cost.gemm("attention", t_in, hd, t_in, cfg.heads * mult, aa, wa, ga, pack)
    cost.ew("softmax", "softmax", t_in * t_in, cfg.heads * mult)
    cost.gemm("attention", t_in, t_in, hd, cfg.heads * mult, aa, wa, ga, pack)
    ao, wo, go = _bits(d, "o_proj")
    if ao < 16:
        cost.ew("quantize", "quantize", t_in * h, mult)
    cost.gemm("o_proj", t_in, h, h, mult, ao, wo, go, pack)
    cost.ew("elementwise", "add", t_in * h, mult)
    if t_out < t_in:
        cost.ew("elementwise", "gather", t_out * h, mult)
    au, wu, gu = _bits(d, "ffn_up")
    cost.ew("elementwise", norm, t_out * h, mult)
    if au < 16:
        cost.ew("quantize", "quantize", t_out * h, mult)
    cost.gemm("ffn", t_out, h, f, (2 if llama else 1) * mult, au, wu, gu, pack)
    cost.ew("elementwise", "swiglu" if llama else "relu", t_out * f, mult)
    ad, wd, gd = _bits(d, "ffn_down")
    if ad < 16:
        cost.ew("quantize", "quantize", t_out * f, mult)
    cost.gemm("ffn", t_out, f, h, mult, ad, wd, gd, pack)
    cost.ew("elementwise", "add", t_out * h, mult)


def _reduction_dims(cfg: ModelConfig, seq_len: int) -> dict[str, tuple[int, ...]]:
    return {"qkv": (cfg.hidden,), "attn": (cfg.head_dim, seq_len), "o_proj": (cfg.hidden,),
            "ffn_up": (cfg.hidden,), "ffn_down": (cfg.ffn,)}


def _weight_bytes(cfg: ModelConfig, d: Mapping[str, Any]) -> float:
    h, f, L = cfg.hidden, cfg.ffn, cfg.n_layers
    shapes = {"qkv": [(h, h), (h, cfg.kv_dim), (h, cfg.kv_dim)], "o_proj": [(h, h)],
              "ffn_up": [(h, f)] * (2 if cfg.family == "llama" else 1), "ffn_down": [(f, h)]}
    total = 0.0
    for g, mats in shapes.items():
        _, w, gs = _bits(d, g)
        for k, n in mats:
            total += k * n * w / 8 + (n * math.ceil(k / min(gs, k)) * (2 + w / 8) if w < 16 else 0.0)
    total *= L
    total += cfg.vocab * h * 2 * (1 if cfg.tied_embeddings else 2)          # embeddings (+ untied LM head)
    if cfg.family == "opt":
        total += 2050 * h * 2                                               # learned positions (2048 + 2)
    total += (4 * L + 2) * h * 2                                            # norm scales/biases
    return total


def _evaluate(model: str, device: Device, d: Mapping[str, Any], seq_len: int, enforce_capacity: bool) -> Metrics:
    cfg = _model(model)
    _check_design(d)
    L, S = cfg.n_layers, seq_len
    pack = d["simd_packing"] in ("on", True)
    reasons = []
    dims = _reduction_dims(cfg, S)
    for g in GROUPS:
        a, w, gs = _bits(d, g)
        for k in dims[g]:
            r = overflow_reason(g, k, a, w, gs, pack)
            if r and r not in reasons:
                reasons.append(r)
    weight_bytes = _weight_bytes(cfg, d)
    footprint = weight_bytes + S * (4 * cfg.hidden + 2 * cfg.ffn) * 2 + cfg.heads * S * S * 2
    overflow = max(0.0, footprint - device.dram_gb * 1e9)
    if enforce_capacity and overflow > 0:
        reasons.append(f"weights + activations need {footprint / 1e9:.2f} GB; {device.name} has {device.dram_gb:g} GB")
    beta, start = float(d["prune_ratio"]), min(L - 1, int(round(float(d["prune_start_frac"]) * L)))
    counts = kept_token_counts(S, L, start, beta) if beta > 0 else [S] * L
    entering = [S] + counts[:-1]                        # tokens entering each layer's attention
    quant = sum(_err.group_nsr(g, *_bits(d, g)) for g in GROUPS) / len(GROUPS)
    prune = sum(_err.prune_nsr(t / S) if t < S else 0.0 for t in entering) / L
    err = quant + prune
    macs = sum(_gemm_macs(cfg, t, c) for t, c in zip(entering, counts)) + cfg.hidden * cfg.vocab
    extra = {"weight_bytes": weight_bytes, "gemm_macs": float(macs), "quant_nsr_ratio": quant,
             "prune_nsr_ratio": prune, "error_nsr_ratio": err, "sqnr_db": -10.0 * math.log10(err),
             "pruned_frac": 1.0 - sum(entering) / (S * L), "dram_overflow_bytes": overflow}
    if reasons:                                         # same metric keys as a feasible result
        return Metrics.infeasible("; ".join(reasons), extra=extra)
    cost = _Cost(device)
    l = 0
    while l < L:
        same = 1                                        # identical unpruned layers: price once
        while l + same < L and counts[l] == entering[l] and counts[l + same] == entering[l]:
            same += 1
        _layer(cost, cfg, d, entering[l], counts[l], same)
        l += same
    cost.ew("elementwise", "rmsnorm" if cfg.family == "llama" else "layernorm", counts[-1] * cfg.hidden)
    cost.gemm("lm_head", 1, cfg.hidden, cfg.vocab, 1, 16, 16, 128, False)
    cost._add("elementwise", 0.0, S * cfg.hidden * 2.0, 1)                  # embedding gather
    eff = device.efficiency
    latency = sum(cost.time.values()) / eff
    return Metrics(latency_s=latency, dram_bytes=cost.bytes, throughput_per_s=S / latency, extra=extra,
                   breakdown={k: {"latency_s": v / eff} for k, v in cost.time.items()})


def _gemm_macs(cfg: ModelConfig, t_in: int, t_out: int) -> int:
    h, f = cfg.hidden, cfg.ffn
    attn = t_in * (h + 2 * cfg.kv_dim) * h + t_in * h * h + 2 * t_in * t_in * h
    return attn + t_out * h * f * (3 if cfg.family == "llama" else 2)


def _design_from(scheme: str, kw: dict[str, Any]) -> dict[str, Any]:
    d = preset(scheme)
    for short in ("a_bits", "w_bits", "group_size"):
        if short in kw:
            v = kw.pop(short)
            for g in GROUPS:
                d[f"{short}_{g}"] = v
    unknown = [k for k in kw if k not in d]
    if unknown:
        allowed = sorted(d) + ["a_bits", "w_bits", "group_size", "seq_len", "enforce_capacity"] + sorted(_HW_KEYS)
        raise AgileQuantError(f"unknown design key {unknown[0]!r}; allowed: {', '.join(allowed)}")
    d.update(kw)
    return d


def simulate(model: str, device: str, scheme: str, **design: Any) -> Metrics:
    """Latency, memory and error of one forward pass on an edge CPU.

    Args:
        model: ``"opt-125m"``, ``"opt-1.3b"``, ``"opt-2.7b"`` or ``"llama-7b"``.
        device: ``"snapdragon-870"`` or ``"rpi-4b"`` (:data:`DEVICES`).
        scheme: ``"fp16"``, ``"w4a8"`` or ``"w4a4"``: the Table-4 preset (:func:`preset`).
        **design: overrides of the preset: ``a_bits_<group>``, ``w_bits_<group>``,
            ``group_size_<group>`` (groups: qkv, attn, o_proj, ffn_up, ffn_down) or
            ``a_bits``/``w_bits``/``group_size`` for all groups; ``prune_ratio`` in
            [0, 1); ``prune_start_frac`` in [0, 1); ``simd_packing`` ``"on"``/``"off"``;
            ``seq_len`` (default 2048, the paper's evaluation length); hardware:
            ``threads``, ``freq_ghz``, ``simd_bits``, ``dram_gbps``, ``llc_mb``,
            ``dram_gb``, ``efficiency``; ``enforce_capacity`` (default False: a model
            larger than DRAM is reported in ``extra["dram_overflow_bytes"]``, as Table 4
            reports LLaMA-7B FP16 on the 8 GB Pi; True makes it infeasible).

    Returns:
        :class:`~archgym.metrics.Metrics`: ``latency_s``, ``dram_bytes``,
        ``throughput_per_s`` (tokens/s) and extras ``weight_bytes``, ``gemm_macs``,
        ``quant_nsr_ratio``, ``prune_nsr_ratio``, ``error_nsr_ratio`` (their sum),
        ``sqnr_db``, ``pruned_frac``, ``dram_overflow_bytes``; infeasible (with the
        reason) when an accumulation would overflow.

    Raises:
        AgileQuantError (a ValueError): unknown model/device/scheme/key, a bit-width
        outside {4, 8, 16}, a pruning ratio outside [0, 1), a bad hardware value.
    """
    kw = dict(design)
    seq_len = kw.pop("seq_len", 2048)
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or not 1 <= seq_len <= 1 << 16:
        raise AgileQuantError(f"seq_len={seq_len!r} is outside the allowed range [1, 65536]")
    enforce = bool(kw.pop("enforce_capacity", False))
    hw = {k: kw.pop(k) for k in list(kw) if k in _HW_KEYS}
    dev = _device(device, hw)
    _model(model)
    return _evaluate(model, dev, _design_from(scheme, kw), seq_len, enforce)


def calibrate_efficiency(device: str, *, seq_len: int = 2048) -> float:
    """The efficiency constant of ``device``: geometric mean of predicted/paper latency
    for OPT-1.3B over FP16, W4A8 and W4A4 at efficiency 1 (Table 4; OPT-1.3B only)."""
    logs = [math.log(simulate("opt-1.3b", device, s, efficiency=1.0, seq_len=seq_len).latency_s / paper)
            for s, paper in zip(SCHEMES, TABLE4[device]["opt-1.3b"])]
    return math.exp(sum(logs) / len(logs))


# ------------------------------------------------------------------- env ----
class AgileQuantSimulator(Simulator):
    """Agile-Quant on an edge CPU as an archgym simulator (``archgym/AgileQuant-v0``).

    Design: per layer group (qkv, attn, o_proj, ffn_up, ffn_down) activation
    bits, weight bits and quantization group size; token-pruning ratio and
    start (fraction of depth); SIMD packing (SMMW) on/off; device.  Workload:
    ``"<model>/prefill"`` at ``seq_len`` tokens (constructor argument).
    Infeasible: an accumulation that would overflow (SMMW field capacity), or
    weights + activations larger than the device's DRAM.
    """

    name = "agilequant"
    reference = ("Agile-Quant (AAAI'24) Table 4: speedups within 10%, OPT-1.3B latency within 15% "
                 "(tests/test_agile_quant.py); other models' absolute latency: see calibration.md")

    accepts = "decoder-LLM prefill workloads of opt-125m, opt-1.3b, opt-2.7b and llama-7b; batch 1"

    def __init__(self, seq_len: int = 2048) -> None:
        if isinstance(seq_len, bool) or not isinstance(seq_len, int) or not 1 <= seq_len <= 1 << 16:
            raise AgileQuantError(f"seq_len={seq_len!r} is outside the allowed range [1, 65536]")
        self.seq_len = seq_len
        self.workload_defaults = {"seq_len": seq_len}

    def check_workload(self, workload) -> None:
        cfg = workload.model
        if cfg is None or cfg.name not in MODELS or workload.phase != "prefill":
            raise WorkloadError(f"agilequant cannot price workload {workload.source!r}: it prices {self.accepts}")
        if workload.params.get("batch", 1) != 1 or not 1 <= workload.params["seq_len"] <= 1 << 16:
            raise WorkloadError(f"agilequant cannot price workload {workload.source!r}: batch must be 1 and "
                                "seq_len in [1, 65536]")

    def design_space(self) -> DesignSpace:
        params = []
        for g in GROUPS:
            params += [Choice(name=f"a_bits_{g}", options=BITS, ordinal=True, unit="bit",
                              doc=f"{g}: activation bits (16 = FP16)"),
                       Choice(name=f"w_bits_{g}", options=BITS, ordinal=True, unit="bit",
                              doc=f"{g}: weight bits (for attn: K/V bits)"),
                       Choice(name=f"group_size_{g}", options=GROUP_SIZES, ordinal=True,
                              doc=f"{g}: quantization group along the reduction axis = SMMW drain interval")]
        params += [Choice(name="prune_ratio", options=PRUNE_RATIOS, ordinal=True,
                          doc="fraction of tokens pruned by the last layer"),
                   Choice(name="prune_start_frac", options=PRUNE_STARTS, ordinal=True,
                          doc="first pruning layer as a fraction of depth"),
                   Choice(name="simd_packing", options=("off", "on"), doc="SMMW packed INT4 kernel"),
                   Choice(name="device", options=tuple(DEVICES), doc="edge CPU preset")]
        return DesignSpace(params)

    def default_design(self) -> dict:
        return {**preset("w4a8"), "device": "snapdragon-870"}

    def workloads(self) -> tuple[str, ...]:
        return tuple(f"{m}/prefill" for m in ("opt-1.3b", "opt-125m", "opt-2.7b", "llama-7b"))

    def evaluate(self, design: Mapping[str, Any], workload) -> Metrics:
        w = self.workload(workload)
        d = dict(design)
        dev = _device(d.pop("device"), {})
        return _evaluate(w.model.name, dev, d, w.params["seq_len"], enforce_capacity=True)
