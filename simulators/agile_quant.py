"""Agile-Quant (Shen et al., AAAI 2024, arXiv 2312.05693) edge-CPU latency model.

Reproduces: Table 4 of the paper: end-to-end latency of OPT-125M/1.3B/2.7B and
LLaMA-7B with FP16 and Agile-Quant-8/-4 (W4A8 / W4A4 + token pruning) on a
Snapdragon 870 phone and a Raspberry Pi 4B.  Tolerances met
(``tests/test_agile_quant.py``): speedups over FP16 within 10% for every model
and device (predictions: no constant is fitted on a speedup); OPT-1.3B absolute
latency within 15% (the calibration input: one efficiency constant per device,
fitted on OPT-1.3B only); the other models' absolute latencies are predictions,
reported with their error (large: see ``experiments/agile_quant/calibration.md``).

Model (one forward pass, prefill, of ``seq_len`` tokens of an OPT- or
LLaMA-family decoder; per layer, token pruning shrinking the later layers):

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

Metrics (docs/metrics.md): ``latency_s`` of one prefill; ``throughput_per_s`` =
prefills per second = ``1 / latency_s``; ``tokens_per_s`` = prompt tokens per
second = ``seq_len / latency_s``; ``dram_bytes`` = modelled DRAM traffic of the
pass; ``weight_bytes`` = the weights' footprint; ``cycles`` and ``energy_j`` are
not modelled (a CPU with several clocks; no power model).  ``breakdown`` has
``latency_s`` and ``dram_bytes`` per workload layer name (``q_proj`` ... ``lm_head``,
all layers' repetitions) and under ``unit:elementwise``, ``unit:quantize``,
``unit:softmax`` for the work of no GEMM; they sum to the totals.

The accuracy side (:mod:`simulators._agile_quant_error`) is a computed
noise-to-signal ratio of every quantized layer group on seeded synthetic
activations with outlier channels, plus a token-pruning term.  The batched
path (:meth:`AgileQuantSimulator.evaluate_batch`) prices designs from per-group
tables (:mod:`simulators._agile_quant_kernels`); the exact optimum of the
2.4e10-design space is :func:`simulators.agile_quant_optimum.exact_optimum`.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import OrderedDict
from typing import Any, Mapping, Sequence

import numpy as np

from archgym.metrics import Metrics
from archgym.simulator import Simulator
from archgym.space import Choice, Constraint, DesignSpace, InvalidDesign
from archgym.workloads import ModelConfig, Workload, WorkloadError, get_model

from . import _agile_quant_kernels as _kern
from ._agile_quant_model import device as _device
from ._agile_quant_model import (BITS, DEVICES, EW_INSTR, FAMILIES, GROUP_SIZES, GROUPS, HW_KEYS, KERNEL,
                                 AgileQuantError, Device, family_refusal, overflow_reason, price, reduction_dims)

__all__ = ["simulate", "AgileQuantSimulator", "AgileQuantError", "DEVICES", "Device", "MODELS", "SCHEMES",
           "GROUPS", "BITS", "GROUP_SIZES", "PRUNE_RATIOS", "PRUNE_STARTS", "KERNEL", "EW_INSTR", "FAMILIES",
           "preset", "check_design", "calibrate_efficiency", "overflow_reason", "MAX_SEQ_LEN"]

MODELS = ("opt-125m", "opt-1.3b", "opt-2.7b", "llama-7b")     # the paper's Table 4 models
SCHEMES = ("fp16", "w4a8", "w4a4")
PRUNE_RATIOS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
PRUNE_STARTS = (0.0, 0.25, 0.5, 0.75)
MAX_SEQ_LEN = 1 << 16
_DESIGN_KEYS = tuple(f"{k}_{g}" for g in GROUPS for k in ("a_bits", "w_bits", "group_size")) + (
    "prune_ratio", "prune_start_frac", "simd_packing")


def preset(scheme: str) -> dict[str, Any]:
    """The flat design of a Table-4 configuration.

    ``fp16``: everything FP16, no pruning.  ``w4a8`` (ours*-8): every linear GEMM
    INT4 weights (group 128, GPTQ) x INT8 activations, attention INT8 x INT8,
    token pruning to ``prune_ratio=0.1`` at the last layer starting at half
    depth (assumed: the paper gives neither value for Table 4).  ``w4a4``
    (ours*-4): as w4a8, but o_proj and the FFN GEMMs take 4-bit activations on the
    packed SMMW kernel (the released code's INT4 activations: attention output,
    post-attention-LN output, SwiGLU product; shawnricecake/agile-quant).
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


def _real(name: str, v: Any) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise AgileQuantError(f"{name}={v!r} must be a real number")
    return float(v)


def _member(name: str, v: Any, allowed: tuple[int, ...], what: str) -> int:
    x = _real(name, v)
    if not math.isfinite(x) or x != int(x) or int(x) not in allowed:
        raise AgileQuantError(f"{name}={v!r} is not {what}; allowed: {', '.join(map(str, allowed))}")
    return int(x)


def check_design(design: Mapping[str, Any], *, with_device: bool = False) -> dict[str, Any]:
    """Validate a raw design for the model and return it normalised (ints, ``"on"``/``"off"``).

    Keys: ``a_bits_<g>``, ``w_bits_<g>`` in {4, 8, 16}, ``group_size_<g>`` in {32, 64, 128,
    256, 512} for each group g of :data:`GROUPS` (the error tables exist only there);
    ``prune_ratio`` and ``prune_start_frac``, finite reals in [0, 1) (need not be on the env's
    grid); ``simd_packing`` ``"on"``/``"off"`` (or a bool); with ``with_device``, ``device``
    in :data:`DEVICES`.  Raises :class:`AgileQuantError` (a ``ValueError``) naming the key,
    the value and what is allowed; a missing or unknown key is an error too.
    """
    if not isinstance(design, Mapping):
        raise AgileQuantError(f"a design must be a mapping of parameter names to values, got {type(design).__name__}")
    keys = _DESIGN_KEYS + (("device",) if with_device else ())
    missing = [k for k in keys if k not in design]
    if missing:
        raise AgileQuantError(f"missing design parameter {missing[0]!r}")
    unknown = [k for k in design if k not in keys]
    if unknown:
        raise AgileQuantError(f"unknown design parameter {unknown[0]!r}; parameters: {', '.join(keys)}")
    out: dict[str, Any] = {}
    for g in GROUPS:
        for k in ("a_bits", "w_bits"):
            out[f"{k}_{g}"] = _member(f"{k}_{g}", design[f"{k}_{g}"], BITS, "a supported operand width")
        out[f"group_size_{g}"] = _member(f"group_size_{g}", design[f"group_size_{g}"], GROUP_SIZES,
                                         "a supported group size")
    for k in ("prune_ratio", "prune_start_frac"):
        x = _real(k, design[k])
        if not (math.isfinite(x) and 0.0 <= x < 1.0):
            raise AgileQuantError(f"{k}={design[k]!r} is outside the allowed range [0, 1)")
        out[k] = x
    p = design["simd_packing"]
    if isinstance(p, (bool, np.bool_)):
        p = "on" if p else "off"
    if p not in ("on", "off"):
        raise AgileQuantError(f"simd_packing={design['simd_packing']!r}; allowed: 'on', 'off'")
    out["simd_packing"] = p
    if with_device:
        dv = design["device"]
        if not isinstance(dv, str) or dv not in DEVICES:
            raise AgileQuantError(f"device={dv!r} is not allowed; allowed: {', '.join(DEVICES)}")
        out["device"] = dv
    return out


def _check_seq_len(seq_len: Any) -> int:
    if isinstance(seq_len, (bool, np.bool_)) or not isinstance(seq_len, (int, np.integer)) \
            or not 1 <= seq_len <= MAX_SEQ_LEN:
        raise AgileQuantError(f"seq_len={seq_len!r} is outside the allowed range [1, {MAX_SEQ_LEN}]")
    return int(seq_len)


def _model(model: str | ModelConfig) -> ModelConfig:
    if isinstance(model, ModelConfig):
        cfg = model
    else:
        try:
            cfg = get_model(model)
        except (WorkloadError, TypeError):
            raise AgileQuantError(f"unknown model {model!r}; allowed: a zoo model of the {' or '.join(FAMILIES)} "
                                  f"family (e.g. {', '.join(MODELS)}) or a ModelConfig") from None
    why = family_refusal(cfg)
    if why:
        raise AgileQuantError(f"cannot price {why}")
    return cfg


def _design_from(scheme: str, kw: dict[str, Any]) -> dict[str, Any]:
    d = preset(scheme)
    for short in ("a_bits", "w_bits", "group_size"):
        if short in kw:
            v = kw.pop(short)
            for g in GROUPS:
                d[f"{short}_{g}"] = v
    unknown = [k for k in kw if k not in d]
    if unknown:
        allowed = sorted(d) + ["a_bits", "w_bits", "group_size", "seq_len", "enforce_capacity"] + sorted(HW_KEYS)
        raise AgileQuantError(f"unknown design key {unknown[0]!r}; allowed: {', '.join(allowed)}")
    d.update(kw)
    return d


def simulate(model: str | ModelConfig, device: str, scheme: str, **design: Any) -> Metrics:
    """Latency, memory and error of one forward pass (prefill) on an edge CPU.

    Args:
        model: a zoo model of the OPT or LLaMA family (Table 4's ``"opt-125m"``,
            ``"opt-1.3b"``, ``"opt-2.7b"``, ``"llama-7b"``, or e.g. ``"llama-2-7b"``) or a
            :class:`~archgym.workloads.ModelConfig` of those families.
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
        ``throughput_per_s`` (prefills/s) and extras ``tokens_per_s``, ``weight_bytes``,
        ``gemm_macs``, ``quant_nsr_ratio``, ``prune_nsr_ratio``, ``error_nsr_ratio`` (their
        sum), ``sqnr_db``, ``pruned_frac``, ``dram_overflow_bytes``; per-layer
        ``breakdown``; infeasible (with the reason) when an accumulation would overflow.

    Raises:
        AgileQuantError (a ValueError): unknown model/device/scheme/key, a bit-width
        outside {4, 8, 16}, a pruning ratio outside [0, 1), a bad hardware value.
    """
    kw = dict(design)
    seq_len = _check_seq_len(kw.pop("seq_len", 2048))
    enforce = kw.pop("enforce_capacity", False)
    if not isinstance(enforce, (bool, np.bool_)):
        raise AgileQuantError(f"enforce_capacity={enforce!r} must be True or False")
    hw = {k: kw.pop(k) for k in list(kw) if k in HW_KEYS}
    dev = _device(device, hw)
    cfg = _model(model)
    return price(cfg, dev, check_design(_design_from(scheme, kw)), seq_len, bool(enforce))


def calibrate_efficiency(device: str, paper_s: Sequence[float], *, seq_len: int = 2048) -> float:
    """The efficiency constant of ``device``: geometric mean of predicted/paper latency
    of OPT-1.3B over FP16, W4A8 and W4A4 at efficiency 1.

    ``paper_s``: the paper's OPT-1.3B latencies on that device in that order (Table 4: the
    calibration input; the project keeps them in tests/data/agile_quant_table4.json).
    """
    if len(paper_s) != len(SCHEMES) or not all(isinstance(p, (int, float)) and p > 0 for p in paper_s):
        raise AgileQuantError(f"paper_s={paper_s!r}: give the {len(SCHEMES)} positive latencies (s) of "
                              f"{', '.join(SCHEMES)}")
    logs = [math.log(simulate("opt-1.3b", device, s, efficiency=1.0, seq_len=seq_len).latency_s / p)
            for s, p in zip(SCHEMES, paper_s)]
    return math.exp(sum(logs) / len(logs))


# ------------------------------------------------------------------- env ----
def _no_overflow(group: str, bad: frozenset, d: Mapping[str, Any]) -> bool:
    """``d``'s (a_bits, w_bits, group_size, packing) of ``group`` is not one of ``bad``."""
    return (int(d[f"a_bits_{group}"]), int(d[f"w_bits_{group}"]), int(d[f"group_size_{group}"]),
            d["simd_packing"] in ("on", True)) not in bad


def _no_overflow_columns(group: str, bad: frozenset, c: Mapping[str, np.ndarray]) -> np.ndarray:
    """:func:`_no_overflow` on columns of values (one array per parameter)."""
    a, w, gs = c[f"a_bits_{group}"], c[f"w_bits_{group}"], c[f"group_size_{group}"]
    packed = c["simd_packing"] == "on"
    hit = np.zeros(len(a), dtype=bool)
    for ba, bw, bgs, bp in bad:
        hit |= (a == ba) & (w == bw) & (gs == bgs) & (packed == bp)
    return ~hit


class AgileQuantSimulator(Simulator):
    """Agile-Quant on an edge CPU as an archgym simulator (``archgym/AgileQuant-v0``).

    Design: per layer group (qkv, attn, o_proj, ffn_up, ffn_down) activation
    bits, weight bits and quantization group size; token-pruning ratio and
    start (fraction of depth); SIMD packing (SMMW) on/off; device.  Workload:
    the prefill of ``seq_len`` tokens (constructor argument: the default of every
    workload that does not set its own) of a decoder LLM of the OPT or LLaMA family,
    batch 1.  Infeasible: an accumulation that would overflow (SMMW field capacity),
    or weights + activations larger than the device's DRAM.  Metrics: see
    :mod:`simulators.agile_quant`.
    """

    name = "agilequant"
    reference = ("Agile-Quant (AAAI'24) Table 4: speedups within 10% (predictions), OPT-1.3B latency within 15% "
                 "(calibration input); other models' absolute latency: predictions, see calibration.md")
    accepts = ("the prefill (batch 1) of a decoder LLM of the opt or llama family (GQA included), from a zoo "
               "name or a Hugging Face config.json; phi, gpt2 and mixtral models are refused")

    def __init__(self, seq_len: int = 2048) -> None:
        self.seq_len = _check_seq_len(seq_len)
        self.workload_defaults = {"seq_len": self.seq_len}
        self._tables: OrderedDict[str, Any] = OrderedDict()

    def check_workload(self, workload: Workload) -> None:
        """One-line :class:`~archgym.workloads.WorkloadError` for a workload the model cannot price."""
        cfg = workload.model
        head = f"agilequant cannot price workload {workload.source!r}"
        if not isinstance(cfg, ModelConfig):
            raise WorkloadError(f"{head}: it is a plain layer list, and agilequant prices a decoder LLM from its "
                                "model config (a zoo name or a Hugging Face config.json of the opt or llama family)")
        why = family_refusal(cfg)
        if why:
            raise WorkloadError(f"{head}: {why}")
        if workload.phase != "prefill":
            raise WorkloadError(f"{head}: phase {workload.phase!r} is not modelled, only prefill (the efficiency "
                                "constants were fitted on Table 4's 2048-token passes and scale DRAM bandwidth "
                                "too, so a weight-streaming decode step would be mispriced)")
        b = workload.params.get("batch", 1)
        if b != 1:
            raise WorkloadError(f"{head}: batch={b}; the model prices one sequence (batch 1, as Table 4)")
        s = workload.params.get("seq_len")
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_SEQ_LEN:
            raise WorkloadError(f"{head}: seq_len={s!r}; allowed: 1..{MAX_SEQ_LEN}")

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
        from archgym.workloads import MODELS as ZOO

        rest = [m for m, c in ZOO.items() if c.family in FAMILIES and m not in MODELS]
        return tuple(f"{m}/prefill" for m in ("opt-1.3b", "opt-125m", "opt-2.7b", "llama-7b", *rest))

    def check_design(self, design: Mapping[str, Any]) -> dict:
        """Validate a raw design (see :func:`check_design`; ``device`` required); raises
        :class:`archgym.InvalidDesign` naming the parameter, the value and what is allowed."""
        try:
            d = check_design(design, with_device=True)
        except AgileQuantError as e:
            raise InvalidDesign(str(e)) from None
        return {p: d[p] for p in self.design_space().names}

    def _evaluate(self, design: dict, workload: Workload) -> Metrics:
        return price(workload.model, DEVICES[design["device"]], design, workload.params["seq_len"], True)

    def workload_constraints(self, workload: Workload) -> tuple[Constraint, ...]:
        """One declared rule per layer group whose accumulation can overflow on ``workload``:
        the (a_bits, w_bits, group_size, simd_packing) combinations for which
        :func:`overflow_reason` reports an overflow at any of the group's reduction lengths
        (SMMW: a 16-bit field holds a limited number of products between drains; INT8: a
        32-bit accumulator).  On opt-1.3b at 2,048 tokens each group has one: A4 x W4, packed,
        in groups of 512.  :meth:`evaluate` reports these designs infeasible as before; the
        declaration lets agents skip them without a simulation.  The DRAM-capacity rule is
        not declared (it needs the design's weight bytes)."""
        dims = reduction_dims(workload.model, workload.params["seq_len"])
        out = []
        for g in GROUPS:
            bad = frozenset(c for c in itertools.product(BITS, BITS, GROUP_SIZES, (False, True))
                            if any(overflow_reason(g, k, *c) for k in dims[g]))
            if not bad:
                continue
            combos = "; ".join(f"A{a} x W{w} in groups of {gs}{' packed' if p else ''}"
                               for a, w, gs, p in sorted(bad))
            msg = (f"the {g} accumulation overflows ({combos}; reduction lengths "
                   f"{', '.join(map(str, dims[g]))}): a_bits_{g}={{a_bits_{g}}}, w_bits_{g}={{w_bits_{g}}}, "
                   f"group_size_{g}={{group_size_{g}}}, simd_packing={{simd_packing}}")
            out.append(Constraint(f"overflow_{g}", functools.partial(_no_overflow, g, bad), msg,
                                  vector=functools.partial(_no_overflow_columns, g, bad)))
        return tuple(out)

    # --- batched path ----------------------------------------------------------------
    def tables(self, workload: Workload | str) -> "_kern.Tables":
        """The per-group tables of a workload (built once per workload, about 0.1 s; the
        error tables are computed on first use, about 2 s)."""
        w = self.workload(workload)
        t = self._tables.get(w.key)
        if t is None:
            t = _kern.build_tables(w.model, w.params["seq_len"], PRUNE_RATIOS, PRUNE_STARTS,
                                   [DEVICES[d] for d in DEVICES])
            self._tables[w.key] = t
            if len(self._tables) > 16:
                self._tables.popitem(last=False)
        else:
            self._tables.move_to_end(w.key)
        return t

    def evaluate_batch_reasons(self, indices: np.ndarray, workload: Workload | str
                               ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """:meth:`evaluate_batch` plus the infeasibility reason of each row as bits: bit g set when
        group ``GROUPS[g]``'s accumulation overflows, bit 5 when the device's DRAM is too small."""
        idx = np.asarray(indices)
        space = self.__dict__.get("_space") or self.__dict__.setdefault("_space", self.design_space())
        nvec = space.nvec
        if idx.ndim != 2 or idx.shape[1] != len(nvec) or idx.dtype.kind not in "iu":
            raise ValueError(f"indices must be an integer array of shape (n, {len(nvec)}), got "
                             f"{idx.dtype} {idx.shape}")
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        bad = _kern.first_out_of_range(idx, nvec)
        if bad >= 0:
            r, c = divmod(bad, len(nvec))
            raise ValueError(f"indices[{r}, {c}] = {int(idx[r, c])} is outside 0..{int(nvec[c]) - 1} "
                             f"({space.names[c]})")
        return _kern.evaluate_tables(self.tables(workload), idx)

    def evaluate_batch(self, indices: np.ndarray, workload: Workload | str) -> dict[str, np.ndarray]:
        """Numba-batched evaluation of index vectors ``(n, 19)``: the metrics of :meth:`evaluate`
        (to 1e-12 relative; same feasibility) from per-group tables, about 1e7 designs/s."""
        return self.evaluate_batch_reasons(indices, workload)[0]

    def exact_optimum(self, evaluator):
        """The exact optimum of ``evaluator``'s space and objective without enumerating it:
        :func:`simulators.agile_quant_optimum.exact_optimum`."""
        from .agile_quant_optimum import exact_optimum

        return exact_optimum(evaluator)
