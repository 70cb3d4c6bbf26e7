"""Run a torch module with its layers computed by an accelerator's bit-exact datapath.

``emulate(model, "bitmod", inputs=ids)`` runs ``model(ids)`` with every ``nn.Linear``
computed by the accelerator's datapath in ``rtl_models`` (the vectorised bit-exact paths the
validator uses), and returns the module's outputs plus one row per emulated layer with its
GEMM shape and, from the same env's performance model (its registered ``Simulator``), its
cycles, latency and energy for a design. The accelerators and what a layer becomes:

* ``bitmod``: weights quantized by BitMoD's per-group datatype search (``rtl_models.bitmod``;
  the design's ``w_dtype`` and ``group_size``), activations cast to FP16, the bit-serial PE
  (dev-RTL widths, or ``pe="exact"``). The PE output (float64) is cast to the layer's dtype
  and the bias added in torch.
* ``systolic``: per-token / per-output-channel symmetric integer quantization to the design's
  ``act_bits`` / ``weight_bits`` (round half to even), the systolic integer GEMM with an
  ``acc_bits`` wrapping accumulator (default 32), dequantized in float64.
* ``agilequant``: Agile-Quant's released quantizers (per token ``s = max|x| / 127.5`` for 8-bit,
  ``/ 7.5`` for 4-bit; weights per output channel ``/ 7.5``) on the packed SMMW datapath
  (W4A8 or W4A4 from the design's ``a_bits_<group>``; the drain interval is ``group_size_<group>``);
  8-bit weights use the integer GEMM; a 16-bit operand keeps the layer in float.
* ``matmulfree``: the BitLinear integer datapath on the layer input (absmean ternary weights,
  absmax int8 activations, the design's ``acc_bits``); the model's norms stay torch ops.

Layers other than ``nn.Linear`` run unchanged (none of these accelerators has an MoE unit).
torch is imported when :func:`emulate` runs, never at ``import archgym``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["emulate", "EmulationResult", "LayerRow", "ACCELERATORS", "layer_costs", "EmulationError"]

#: accelerator -> the registered env whose simulator prices the layers
ACCELERATORS: dict[str, str] = {
    "bitmod": "archgym/BitMoD-v0",
    "systolic": "archgym/Systolic-v0",
    "agilequant": "archgym/AgileQuant-v0",
    "matmulfree": "archgym/MatMulFree-v0",
}


class EmulationError(ValueError):
    """Bad accelerator, option or a layer the datapath cannot take (one line saying why)."""


@dataclass
class LayerRow:
    """One emulated layer: qualified ``name``, GEMM ``m`` (tokens) x ``k`` (in_features) x ``n``
    (out_features), ``calls`` (forward calls; ``m`` sums their tokens), the ``datapath`` that
    computed it, the operand widths priced, and ``cycles``/``latency_s``/``energy_j`` from the simulator (None when costs
    were not requested)."""

    name: str
    m: int
    k: int
    n: int
    calls: int
    datapath: str
    a_bits: int = 16
    w_bits: int = 16
    cycles: float | None = None
    latency_s: float | None = None
    energy_j: float | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.m, self.k, self.n)


@dataclass
class EmulationResult:
    """``outputs``: what the module returned; ``layers``: one :class:`LayerRow` per emulated
    layer in first-call order; ``accelerator``, ``design`` (the full design the costs are for)
    and the datapath ``options`` used."""

    outputs: Any
    layers: tuple
    accelerator: str
    design: dict
    options: dict = field(default_factory=dict)

    def table(self) -> str:
        """The layer rows as a text table."""
        head = f"{'layer':<40} {'m x k x n':>20} {'cycles':>12} {'latency_s':>11} {'energy_j':>11}  datapath"
        rows = [head]
        for r in self.layers:
            f = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
            rows.append(f"{r.name:<40} {f'{r.m}x{r.k}x{r.n}':>20} {f(r.cycles, '12.0f'):>12} "
                        f"{f(r.latency_s, '11.3e'):>11} {f(r.energy_j, '11.3e'):>11}  {r.datapath}")
        return "\n".join(rows)


# --------------------------------------------------------------------------- layer datapaths
def _sym_quant(x: np.ndarray, qmax: float, div: float, axis: int, lo: int, hi: int):
    """Symmetric quantization along ``axis``: ``s = max|x| / div``, ``q = clip(rint(x / s))``."""
    m = np.max(np.abs(x), axis=axis, keepdims=True)
    s = np.where(m > 0, m / div, 1.0)
    return np.clip(np.rint(x / s), lo, hi).astype(np.int64), s


def _bitmod_layer(w: np.ndarray, opts: Mapping[str, Any], name: str):
    from rtl_models.bitmod import BitmodInputError, PEConfig, Rounding, quantize_weights
    from rtl_models.bitmod.fast import pe_dot_fast

    try:
        quant = quantize_weights(w.astype(np.float32), bits=opts["bits"], group=opts["group"],
                                 int8_scale=opts["int8_scale"])
    except BitmodInputError as e:
        raise EmulationError(f"layer {name!r} [{w.shape[0]} x {w.shape[1]}]: {e}") from None
    cfg = PEConfig.exact() if opts["pe"] == "exact" else PEConfig(
        guard_bits=opts["guard_bits"], acc_man_bits=opts["acc_man_bits"], deq_man_bits=opts["deq_man_bits"],
        out_man_bits=opts["out_man_bits"], rounding=Rounding(opts["rounding"]))

    def run(x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            x16 = x.astype(np.float16)
        if not np.all(np.isfinite(x16)):
            raise EmulationError(f"layer {name!r}: an activation is beyond the FP16 range of the BitMoD PE "
                                 f"(max |x| = {np.max(np.abs(x)):g})")
        return pe_dot_fast(quant, x16, config=cfg).outputs
    return run, f"bitmod {opts['bits']}-bit g{opts['group']}", (16, opts["bits"])


def _systolic_layer(w: np.ndarray, opts: Mapping[str, Any], name: str):
    from rtl_models.systolic.fast import gemm_fast

    qa, qw = (1 << (opts["a_bits"] - 1)) - 1, (1 << (opts["w_bits"] - 1)) - 1
    wq, sw = _sym_quant(w.astype(np.float64), qw, qw, 1, -qw, qw)     # per output channel

    def run(x: np.ndarray) -> np.ndarray:
        xq, sx = _sym_quant(x.astype(np.float64), qa, qa, 1, -qa, qa)  # per token
        acc = gemm_fast(xq, wq.T, acc_bits=opts["acc_bits"], overflow="wrap")
        return acc * sx * sw.T
    return run, f"systolic-int a{opts['a_bits']} w{opts['w_bits']} acc{opts['acc_bits']}", (opts["a_bits"], opts["w_bits"])


_AQ_GROUPS = (("qkv", r"(q|k|v|qkv)_proj$|query$|key$|value$|c_attn$"),
              ("o_proj", r"(o|out)_proj$|dense$|c_proj$"),
              ("ffn_up", r"(up|gate)_proj$|fc1$|w1$|w3$"),
              ("ffn_down", r"down_proj$|fc2$|w2$"))


def agilequant_group(name: str) -> str:
    """The Agile-Quant design group of a layer name (``o_proj`` when nothing matches)."""
    for g, pat in _AQ_GROUPS:
        if re.search(pat, name):
            return g
    return "o_proj"


def _agilequant_layer(w: np.ndarray, opts: Mapping[str, Any], name: str):
    from rtl_models.simd import SMMWConfig
    from rtl_models.simd.fast import packed_gemm_fast
    from rtl_models.systolic.fast import gemm_fast

    g = agilequant_group(name)
    a_bits, w_bits, drain = opts["design"][f"a_bits_{g}"], opts["design"][f"w_bits_{g}"], opts["design"][f"group_size_{g}"]
    if 16 in (a_bits, w_bits):
        return None, f"fp16 ({g})", (a_bits, w_bits)
    # Agile-Quant's released quantizers: s = max|v| / (2**(b-1) - 0.5), q = clip(round(v/s))
    qa, qw = (1 << (a_bits - 1)), (1 << (w_bits - 1))
    wq, sw = _sym_quant(w.astype(np.float64), qw, qw - 0.5, 1, -qw, qw - 1)
    if w_bits == 4:
        layout = dict(act_bits=8, operand_bits=24, lane_bits=48) if a_bits == 8 else {}
        probe = SMMWConfig(**layout, allow_unsafe_drain=True)
        cfg = SMMWConfig(**layout, drain_every=drain, allow_unsafe_drain=drain > probe.max_safe_accumulations)
        label = f"smmw-w4a{a_bits} drain {drain} ({g})"
    else:
        label = f"systolic-int a{a_bits} w{w_bits} ({g})"

    def run(x: np.ndarray) -> np.ndarray:
        xq, sx = _sym_quant(x.astype(np.float64), qa, qa - 0.5, 1, -qa, qa - 1)
        if w_bits == 4:
            acc = packed_gemm_fast(xq, wq.T, config=cfg, signed=True, on_carry="report").out
        else:
            acc = gemm_fast(xq, wq.T, acc_bits=32, overflow="wrap")
        return acc * sx * sw.T
    return run, label, (a_bits, w_bits)


def _matmulfree_layer(w: np.ndarray, opts: Mapping[str, Any], name: str):
    from rtl_models.ternary import ternarize
    from rtl_models.ternary.fast import bitlinear_normed_fast

    tw = ternarize(w.astype(np.float32))
    t = np.ascontiguousarray(tw.unpack().T)

    def run(x: np.ndarray) -> np.ndarray:
        return bitlinear_normed_fast(x.astype(np.float32), t, tw.beta, rounding=opts["rounding"],
                                     acc_bits=opts["acc_bits"]).out
    return run, f"ternary-bitlinear acc{opts['acc_bits']} {opts['rounding']}", (8, 2)


# --------------------------------------------------------------------------- options
_BITMOD_BITS = {"fp3-ext": 3, "fp4-ext": 4, "int6": 6, "int8": 8}


def _options(accelerator: str, design: Mapping[str, Any], given: Mapping[str, Any]) -> dict:
    """Datapath options: derived from the design, overridden by ``given`` (checked)."""
    if accelerator == "bitmod":
        base = {"bits": _BITMOD_BITS[design["w_dtype"]], "group": int(design["group_size"]), "int8_scale": False,
                "pe": "rtl", "guard_bits": 3, "acc_man_bits": 15, "deq_man_bits": 21, "out_man_bits": 25,
                "rounding": "rne"}
    elif accelerator == "systolic":
        base = {"a_bits": int(design["act_bits"]), "w_bits": int(design["weight_bits"]), "acc_bits": 32}
    elif accelerator == "matmulfree":
        base = {"acc_bits": int(design["acc_bits"]), "rounding": "half_even"}
    else:
        base = {}
    unknown = [k for k in given if k not in base]
    if unknown:
        raise EmulationError(f"emulate {accelerator}: unknown option {unknown[0]!r}; options: "
                             f"{', '.join(base) or 'none (set the design instead)'}")
    out = {**base, **given}
    if accelerator == "bitmod":
        from .datapaths import get_datapath

        if out["bits"] not in (3, 4, 6, 8):
            raise EmulationError(f"emulate bitmod: option bits={out['bits']!r} is not allowed; allowed: 3, 4, 6, 8")
        for opt in get_datapath("bitmod").options:   # the validator's checks for the shared options
            if opt.name in out and opt.name != "bits":
                out[opt.name] = opt.check(out[opt.name], "emulate bitmod")
    out["design"] = dict(design)
    return out


_BUILDERS: dict[str, Callable] = {"bitmod": _bitmod_layer, "systolic": _systolic_layer,
                                  "agilequant": _agilequant_layer, "matmulfree": _matmulfree_layer}


# --------------------------------------------------------------------------- costs
def layer_costs(accelerator: str, design: Mapping[str, Any], rows) -> list[dict]:
    """Cycles, latency and energy of each emulated layer from the env's own simulator.

    Builds one :class:`~archgym.workloads.Workload` of the rows' GEMMs (name = the layer's
    qualified name, m = tokens, k = in_features, n = out_features), calls the registered
    simulator's ``evaluate(design, workload)`` and reads ``Metrics.breakdown[name]`` (keys
    ``cycles``, ``latency_s``, ``energy_j``). This is the only place costs come from.
    """
    from .registry import spec_of
    from .simulator import load_simulator
    from .workloads import Gemm, Workload

    spec = spec_of(ACCELERATORS[accelerator])
    sim = load_simulator(spec.simulator, **spec.simulator_kwargs)
    gemms = tuple(Gemm(name=r.name, m=r.m, k=r.k, n=r.n, count=1, a_bits=r.a_bits, w_bits=r.w_bits, kind="linear")
                  for r in rows)
    metrics = sim.evaluate(dict(design), Workload(name=f"emulate/{accelerator}", layers=gemms))
    return [{k: metrics.breakdown[r.name][k] for k in ("cycles", "latency_s", "energy_j")} for r in rows]


# --------------------------------------------------------------------------- emulate
def emulate(module, accelerator: str, *, inputs, design: Mapping[str, Any] | None = None, costs: bool = True,
            **options: Any) -> EmulationResult:
    """Run ``module`` with every ``nn.Linear`` computed by ``accelerator``'s bit-exact datapath.

    Args:
        module: a ``torch.nn.Module``; it is run under ``torch.no_grad()`` and left unchanged.
        accelerator: ``bitmod``, ``agilequant``, ``matmulfree`` or ``systolic``.
        inputs: a tensor (``module(inputs)``), a tuple/list (``module(*inputs)``) or a dict
            (``module(**inputs)``).
        design: the accelerator's design (its env's parameters); missing parameters take the
            simulator's default design. It sets the arithmetic where the design has it (BitMoD
            ``w_dtype``/``group_size``, systolic ``act_bits``/``weight_bits``, Agile-Quant
            per-group bits and drain interval, MatMul-free ``acc_bits``) and prices the layers.
        costs: fill ``cycles``/``latency_s``/``energy_j`` from the simulator (:func:`layer_costs`).
        **options: datapath options overriding the design (BitMoD: ``bits``, ``group``,
            ``int8_scale``, ``pe`` = ``rtl``/``exact``, PE widths, ``rounding``; systolic:
            ``a_bits``, ``w_bits``, ``acc_bits``; MatMul-free: ``acc_bits``, ``rounding``).

    Returns:
        :class:`EmulationResult` with ``outputs`` and one :class:`LayerRow` per emulated layer.
    """
    if accelerator not in ACCELERATORS:
        raise EmulationError(f"unknown accelerator {accelerator!r}; accelerators: {', '.join(ACCELERATORS)}")
    import torch

    from .registry import spec_of
    from .simulator import load_simulator

    spec = spec_of(ACCELERATORS[accelerator])
    sim = load_simulator(spec.simulator, **spec.simulator_kwargs)
    default = sim.default_design()
    unknown = [k for k in (design or {}) if k not in default]
    if unknown:
        raise EmulationError(f"emulate {accelerator}: unknown design parameter {unknown[0]!r}; "
                             f"parameters: {', '.join(default)}")
    full = {**default, **dict(design or {})}
    opts = _options(accelerator, full, options)
    build = _BUILDERS[accelerator]
    rows: dict[str, LayerRow] = {}
    layers: dict[str, Callable | None] = {}

    def hook_for(name: str, lin):
        def hook(mod, args, output):
            x = args[0]
            if name not in layers:
                layers[name], label, (a_bits, w_bits) = build(lin.weight.detach().cpu().double().numpy(), opts, name)
                rows[name] = LayerRow(name, 0, lin.in_features, lin.out_features, 0, label, a_bits, w_bits)
            row = rows[name]
            tokens = int(np.prod(x.shape[:-1]))
            row.m += tokens
            row.calls += 1
            run = layers[name]
            if run is None:      # an operand the accelerator keeps in float: the layer's own output
                return output
            y = run(x.detach().reshape(tokens, lin.in_features).cpu().double().numpy())
            y = torch.from_numpy(np.ascontiguousarray(y)).to(dtype=output.dtype, device=output.device)
            if lin.bias is not None:
                y = y + lin.bias
            return y.reshape(*x.shape[:-1], lin.out_features)
        return hook

    handles = [m.register_forward_hook(hook_for(n, m)) for n, m in module.named_modules()
               if isinstance(m, torch.nn.Linear)]
    try:
        with torch.no_grad():
            if isinstance(inputs, Mapping):
                out = module(**inputs)
            elif isinstance(inputs, (tuple, list)):
                out = module(*inputs)
            else:
                out = module(inputs)
    finally:
        for h in handles:
            h.remove()
    result_rows = tuple(rows.values())
    if costs and result_rows:
        for r, c in zip(result_rows, layer_costs(accelerator, full, result_rows)):
            r.cycles, r.latency_s, r.energy_j = c["cycles"], c["latency_s"], c["energy_j"]
    return EmulationResult(outputs=out, layers=result_rows, accelerator=accelerator, design=full,
                           options={k: v for k, v in opts.items() if k != "design"})
