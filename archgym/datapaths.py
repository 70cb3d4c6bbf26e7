"""The datapaths a kernel can be validated against: a small registry of plain data.

Each :class:`Datapath` names its bit-exact model in ``rtl_models`` as a lazily imported
``"module:function"`` string (the vectorised path; the cycle-stepped model it is tested
against is named too), its kernel signature, its options with their allowed values, and the
functions that generate seeded inputs (:mod:`archgym.datapath_inputs`), run the model on
them, and shrink a failing input. Nothing here imports ``rtl_models`` or torch at import
time.

==================  ==============================================  ===========================
datapath            kernel call (torch tensors in, tensor out)      returns
==================  ==============================================  ===========================
systolic-int        ``kernel(a, w)``: a int64 [M, K], w int64 [K, N] int64 [M, N]
smmw-w4a8           ``kernel(a, w)``: a int64 [M, K] 8-bit, w 4-bit  int64 [M, N]
smmw-w4a4           ``kernel(a, w)``: a int64 [M, K] 4-bit, w 4-bit  int64 [M, N]
ternary-bitlinear   ``kernel(y, w, beta)``: y float32 [M, K], w int8  float32 [M, N]
                    [K, N] in {-1, 0, 1}, beta float32 scalar tensor
bitmod              ``kernel(x, w)``: x float16 [M, K], w float16    float64 [M, N]
                    [K, N] (stage=linear); ``kernel(w)`` (quantize)   (quantize: float16 [K, N])
moe-fixed           ``kernel(x, gate, w1, b1, w2, b2, top_k=k)``:    int64 [T, d]
                    int64 codes
==================  ==============================================  ===========================

The full table with the arithmetic each kernel must reproduce is in ``docs/validate.md``.
"""

from __future__ import annotations

import importlib
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np

__all__ = ["Option", "Arg", "Datapath", "DatapathError", "DATAPATHS", "get_datapath", "datapath_names"]


class DatapathError(ValueError):
    """Bad datapath name or option (one line naming the value and what is allowed)."""


@dataclass(frozen=True)
class Option:
    """One datapath option: a default and either ``choices`` or an integer range ``lo..hi``."""

    name: str
    default: Any
    doc: str
    choices: tuple = ()
    lo: int | None = None
    hi: int | None = None

    def allowed(self) -> str:
        """The allowed values as text, e.g. ``"3, 4"`` or ``"an integer in 2..63"``."""
        if self.choices:
            return ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in self.choices)
        return f"an integer in {self.lo}..{self.hi}"

    def check(self, value: Any, datapath: str) -> Any:
        """Return ``value`` if allowed, else raise :class:`DatapathError`."""
        if self.choices:
            ok = any(value == c and type(value) is type(c) for c in self.choices)
            if not ok and all(isinstance(c, str) for c in self.choices) and isinstance(value, str):
                ok = value in self.choices
            if ok:
                return value
        elif (isinstance(value, numbers.Integral) and not isinstance(value, bool)
              and self.lo <= value <= self.hi):
            return int(value)
        raise DatapathError(f"{datapath}: option {self.name}={value!r} is not allowed; allowed: {self.allowed()}")


@dataclass(frozen=True)
class Arg:
    """One kernel argument: name, dtype, shape and value range as documentation text."""

    name: str
    dtype: str
    shape: str
    values: str


@dataclass(frozen=True)
class Datapath:
    """A registry entry (see the module docstring).

    ``model`` / ``cycle_model``: ``"module:function"`` of the vectorised path the tool runs and of
    the cycle-stepped model it is tested against. ``generate(rng, options, kind) -> dict`` builds
    one case's inputs (numpy); ``reference(inputs, options) -> ndarray`` runs the model;
    ``shrink(inputs, options)`` yields smaller candidate inputs; ``kernel_kwargs(options)`` are
    keyword arguments passed to the kernel besides the tensors. ``kinds`` are the edge-case kinds
    the generator knows (``"random"`` first).
    """

    name: str
    summary: str
    paper: str
    model: str
    cycle_model: str
    args: tuple[Arg, ...]
    returns: Arg
    options: tuple[Option, ...]
    kinds: tuple[str, ...]
    generate: Callable[..., dict]
    reference: Callable[[Mapping[str, np.ndarray], Mapping[str, Any]], np.ndarray]
    shrink: Callable[[Mapping[str, np.ndarray], Mapping[str, Any]], Iterator[dict]]
    resolve: Callable[[dict], dict] = field(default=lambda o: o)
    kernel_kwargs: Callable[[Mapping[str, Any]], dict] = field(default=lambda o: {})
    inputs_for: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None

    def resolve_options(self, options: Mapping[str, Any] | None = None) -> dict:
        """Defaults filled in, every value checked; raises :class:`DatapathError`."""
        given = dict(options or {})
        known = {o.name: o for o in self.options}
        for k in given:
            if k not in known:
                raise DatapathError(f"{self.name}: unknown option {k!r}; options: {', '.join(known)}")
        out = {o.name: o.check(given[o.name], self.name) if o.name in given else o.default for o in self.options}
        return self.resolve(out)

    def input_names(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        """The kernel's positional tensor arguments, in order, for these options."""
        return self.inputs_for(options) if self.inputs_for else tuple(a.name for a in self.args)

    def load_model(self) -> Callable:
        """Import and return the vectorised model function (``model``)."""
        return load_function(self.model)


def load_function(spec: str) -> Callable:
    """Import ``"package.module:function"`` and return the function."""
    mod, _, fn = spec.partition(":")
    return getattr(importlib.import_module(mod), fn)


# --------------------------------------------------------------------------- references
def _ref_systolic(inp, o):
    fn = load_function(DATAPATHS["systolic-int"].model)
    return fn(inp["a"], inp["w"], acc_bits=o["acc_bits"], overflow="wrap")


def smmw_config(name: str, o: Mapping[str, Any]):
    """The :class:`rtl_models.simd.SMMWConfig` of ``smmw-w4a8`` / ``smmw-w4a4`` with options ``o``."""
    from rtl_models.simd import SMMWConfig

    if name == "smmw-w4a8":  # 4x8-bit products need 12-bit slots: 24-bit operand, 48-bit lane
        return SMMWConfig(act_bits=8, weight_bits=4, operand_bits=24, lane_bits=48,
                          drain_every=o["drain_every"], acc_bits=o["acc_bits"])
    return SMMWConfig(drain_every=o["drain_every"], acc_bits=o["acc_bits"])


def _ref_smmw(name):
    def ref(inp, o):
        fn = load_function(DATAPATHS[name].model)
        return fn(inp["a"], inp["w"], config=smmw_config(name, o), signed=o["signed"], on_carry="report").out
    return ref


def _ref_ternary(inp, o):
    fn = load_function(DATAPATHS["ternary-bitlinear"].model)
    return fn(inp["y"], inp["w"], inp["beta"], rounding=o["rounding"], acc_bits=o["acc_bits"]).out


def bitmod_settings(o: Mapping[str, Any]):
    """``(bits, PEConfig)`` of the ``bitmod`` datapath for resolved options ``o``."""
    from rtl_models.bitmod import PEConfig, Rounding

    if o["pe"] == "exact":
        cfg = PEConfig.exact()
    else:
        cfg = PEConfig(guard_bits=o["guard_bits"], acc_man_bits=o["acc_man_bits"],
                       deq_man_bits=o["deq_man_bits"], out_man_bits=o["out_man_bits"],
                       rounding=Rounding(o["rounding"]))
    return o["bits"], cfg


def _ref_bitmod(inp, o):
    from rtl_models.bitmod import quantize_weights

    bits, cfg = bitmod_settings(o)
    quant = quantize_weights(np.ascontiguousarray(inp["w"].T), bits=bits, group=o["group"],
                             int8_scale=o["int8_scale"])
    if o["stage"] == "quantize":
        return np.ascontiguousarray(quant.dequant().T)
    fn = load_function(DATAPATHS["bitmod"].model)
    return fn(quant, inp["x"], config=cfg).outputs


def moe_config(o: Mapping[str, Any], d: int, h: int):
    """The :class:`rtl_models.moe.MoEConfig` of ``moe-fixed`` (Edge-MoE formats, wrapping adders)."""
    from rtl_models.moe import MoEConfig, MoENumerics

    nm = MoENumerics(acc_bits=o["acc_bits"], rounding=o["rounding"], activation=o["activation"],
                     on_overflow="wrap")
    return MoEConfig(d_model=d, d_hidden=h, n_experts=o["n_experts"], top_k=o["top_k"], numerics=nm)


def _ref_moe(inp, o):
    from rtl_models.moe import MoEWeights

    d, h = inp["w1"].shape[1], inp["w1"].shape[2]
    cfg = moe_config(o, d, h)
    w = MoEWeights(inp["gate"], inp["w1"], inp["b1"], inp["w2"], inp["b2"])
    if o["schedule"] == "token":  # the same bits as the reordered schedule (rtl_models.moe.layer)
        from rtl_models.moe import moe_forward

        return np.asarray(moe_forward(inp["x"], w, cfg, schedule="token").output)
    fn = load_function(DATAPATHS["moe-fixed"].model)
    return np.asarray(fn(inp["x"], w, cfg).output)


# --------------------------------------------------------------------------- option rules
def _resolve_systolic(o):
    for k in ("a_bits", "w_bits"):
        if not o["signed"] and o[k] > 31:
            raise DatapathError(f"systolic-int: option {k}={o[k]} is not allowed with signed=false; "
                                "allowed: an integer in 2..31 (operands must fit int32)")
    return o


def _resolve_smmw(name):
    def resolve(o):
        from rtl_models.simd import LayoutError

        try:
            smmw_config(name, o)
        except LayoutError as e:
            raise DatapathError(f"{name}: {e}") from None
        return o
    return resolve


def _resolve_bitmod(o):
    if o["mode"] == "lossless":
        if o["bits"] not in (None, 6):
            raise DatapathError(f"bitmod: option bits={o['bits']} is not allowed with mode=lossless; "
                                "allowed: 6 (lossless is per-group INT6)")
        o["bits"] = 6
    else:
        if o["bits"] is None:
            o["bits"] = 4
        if o["bits"] not in (3, 4):
            raise DatapathError(f"bitmod: option bits={o['bits']} is not allowed with mode=lossy; allowed: 3, 4")
    return o


def _resolve_moe(o):
    if o["top_k"] > o["n_experts"]:
        raise DatapathError(f"moe-fixed: option top_k={o['top_k']} is not allowed with n_experts="
                            f"{o['n_experts']}; allowed: an integer in 1..{o['n_experts']}")
    return o


def _kinds(*extra: str) -> tuple[str, ...]:
    return ("random",) + extra


def _make_registry() -> dict[str, Datapath]:
    from . import datapath_inputs as gi

    gemm_args = (Arg("a", "int64", "[M, K]", "in the operand range"),
                 Arg("w", "int64", "[K, N]", "in the operand range"))
    smmw_opts = (
        Option("signed", True, "two's-complement operands (offset-encoded onto the unsigned lanes); "
               "false: unsigned codes as in the paper", choices=(True, False)),
        Option("drain_every", 256, "accumulations before a lane is split into the wide accumulators "
               "(paper 2**8; at most the layout's max_safe_accumulations)", lo=1, hi=1 << 20),
        Option("acc_bits", 32, "width of the unsigned wide accumulators (they wrap)", lo=1, hi=62),
    )
    regs = [
        Datapath(
            "systolic-int", "integer GEMM on a systolic array with operand and accumulator widths",
            "SCALE-Sim-style R x C array (os/ws/is); the result does not depend on the dataflow",
            "rtl_models.systolic.fast:gemm_fast", "rtl_models.systolic:simulate_gemm",
            gemm_args, Arg("out", "int64", "[M, N]", "a @ w wrapped to acc_bits (two's complement)"),
            (Option("a_bits", 8, "activation width", lo=2, hi=32),
             Option("w_bits", 8, "weight width", lo=2, hi=32),
             Option("acc_bits", 32, "accumulator width; sums wrap (two's complement)", lo=2, hi=63),
             Option("signed", True, "two's-complement operands (false: unsigned)", choices=(True, False))),
            _kinds("extreme", "acc_limit", "k1", "odd", "zero"),
            gi.gen_systolic, _ref_systolic, gi.shrink_gemm("a", "w"), _resolve_systolic),
        *[Datapath(
            name, f"Agile-Quant's packed SIMD multiply (SMMW), {label}",
            "Agile-Quant (AAAI'24) §SIMD: two 4-bit weights per multiply, 8 guard bits per field",
            "rtl_models.simd.fast:packed_gemm_fast", "rtl_models.simd:packed_gemm_reference",
            (Arg("a", "int64", "[M, K]", f"{abits}-bit activations (signed or unsigned)"),
             Arg("w", "int64", "[K, N]", "4-bit weights (signed or unsigned)")),
            Arg("out", "int64", "[M, N]", "a @ w as the lanes produce it (wide accumulators wrap)"),
            smmw_opts, _kinds("extreme", "carry_limit", "acc_limit", "k1", "odd", "zero"),
            gi.gen_smmw(name), _ref_smmw(name), gi.shrink_gemm("a", "w"), _resolve_smmw(name))
          for name, label, abits in (("smmw-w4a8", "W4A8", 8), ("smmw-w4a4", "W4A4", 4))],
        Datapath(
            "ternary-bitlinear", "MatMul-free BitLinear: absmax int8 activations x ternary weights",
            "Scalable MatMul-free LM (arXiv 2406.02528), BitLinear after its RMSNorm; out = acc / s_x / s_w",
            "rtl_models.ternary.fast:bitlinear_normed_fast", "rtl_models.ternary:accumulate",
            (Arg("y", "float32", "[M, K]", "normalised activations (the BitLinear's RMSNorm output)"),
             Arg("w", "int8", "[K, N]", "ternary codes in {-1, 0, 1}"),
             Arg("beta", "float32", "[] (0-d)", "weight scale > 0; s_w = 1 / beta in float32")),
            Arg("out", "float32", "[M, N]", "acc / s_x / s_w, float32, in that order"),
            (Option("rounding", "half_even", "rounding of y * s_x (torch: half_even; Triton: half_away)",
                    choices=("half_even", "half_away")),
             Option("acc_bits", 24, "accumulator width incl. sign; sums wrap", lo=2, hi=25)),
            _kinds("ties", "zero_row", "tiny_row", "extreme", "acc_limit", "k1", "odd"),
            gi.gen_ternary, _ref_ternary, gi.shrink_gemm("y", "w")),
        Datapath(
            "bitmod", "BitMoD mixed-datatype weight quantizer and bit-serial PE",
            "BitMoD (HPCA'25): per-group min-MSE ext-FP3/FP4 (lossy) or INT6 (lossless) weights, FP16 "
            "activations, bit-serial PE with the dev-RTL widths",
            "rtl_models.bitmod.fast:pe_dot_fast", "rtl_models.bitmod:pe_dot",
            (Arg("x", "float16", "[M, K]", "activations (stage=linear only)"),
             Arg("w", "float16", "[K, N]", "float weights; groups of `group` consecutive k per column")),
            Arg("out", "float64", "[M, N]", "PE output (stage=quantize: float16 [K, N] dequantized weights)"),
            (Option("mode", "lossy", "lossy: ext-FP3/FP4 mixture; lossless: per-group INT6",
                    choices=("lossy", "lossless")),
             Option("bits", None, "3 or 4 (lossy; default 4), 6 (lossless)", choices=(3, 4, 6)),
             Option("group", 128, "weights per group along K (a multiple of 4)", choices=(4, 8, 16, 32, 64, 128, 256)),
             Option("int8_scale", False, "second-level INT8 group scales under an FP16 channel scale",
                    choices=(False, True)),
             Option("stage", "linear", "linear: kernel(x, w) -> PE output; quantize: kernel(w) -> "
                    "dequantized weights", choices=("linear", "quantize")),
             Option("pe", "rtl", "rtl: the widths below; exact: exact dot product rounded once",
                    choices=("rtl", "exact")),
             Option("guard_bits", 3, "alignment guard bits", lo=0, hi=8),
             Option("acc_man_bits", 15, "group accumulator mantissa bits incl. sign", lo=2, hi=24),
             Option("deq_man_bits", 21, "dequant mantissa bits incl. sign", lo=2, hi=25),
             Option("out_man_bits", 25, "output accumulator mantissa bits incl. sign", lo=2, hi=26),
             Option("rounding", "rne", "PE narrowing: rne or truncate", choices=("rne", "truncate"))),
            _kinds("ties", "mse_tie", "outlier", "zero_group", "extreme", "one_group", "odd"),
            gi.gen_bitmod, _ref_bitmod, gi.shrink_bitmod, _resolve_bitmod,
            inputs_for=lambda o: ("w",) if o["stage"] == "quantize" else ("x", "w")),
        Datapath(
            "moe-fixed", "M3ViT / Edge-MoE fixed-point MoE layer (gate, top-k, experts, combine)",
            "M3ViT (NeurIPS'22) expert-by-expert reordering; Edge-MoE number formats ap_fixed<32,10> "
            "activations, <16,2> weights, <16,5> biases",
            "rtl_models.moe.fast:moe_forward_fast", "rtl_models.moe:moe_forward",
            (Arg("x", "int64", "[T, d]", "activation codes (ap_fixed<32,10>)"),
             Arg("gate", "int64", "[d, N]", "weight codes (ap_fixed<16,2>)"),
             Arg("w1", "int64", "[N, d, h]", "weight codes"), Arg("b1", "int64", "[N, h]", "bias codes (<16,5>)"),
             Arg("w2", "int64", "[N, h, d]", "weight codes"), Arg("b2", "int64", "[N, d]", "bias codes")),
            Arg("out", "int64", "[T, d]", "output codes (ap_fixed<32,10>); keyword top_k=k is passed too"),
            (Option("n_experts", 4, "experts N", lo=1, hi=16),
             Option("top_k", 2, "experts per token", lo=1, hi=16),
             Option("schedule", "reorder", "the model schedule used as the oracle (outputs are identical)",
                    choices=("reorder", "token")),
             Option("rounding", "floor", "every right shift / division (AP_TRN = floor)",
                    choices=("floor", "half_away")),
             Option("activation", "gelu_lut", "expert nonlinearity", choices=("gelu_lut", "relu")),
             Option("acc_bits", 48, "width of the wide accumulators; sums wrap", lo=8, hi=63)),
            _kinds("empty_queue", "logit_tie", "saturate", "zero", "one_token", "odd"),
            gi.gen_moe, _ref_moe, gi.shrink_moe, _resolve_moe,
            kernel_kwargs=lambda o: {"top_k": o["top_k"]}),
    ]
    return {d.name: d for d in regs}


class _Registry(dict):
    """Built on first use so that importing archgym stays cheap."""

    def _fill(self) -> None:
        if not dict.__len__(self):
            self.update(_make_registry())

    def __getitem__(self, k):
        self._fill()
        return dict.__getitem__(self, k)

    def __iter__(self):
        self._fill()
        return dict.__iter__(self)

    def __len__(self):
        self._fill()
        return dict.__len__(self)

    def __contains__(self, k):
        self._fill()
        return dict.__contains__(self, k)

    def keys(self):
        self._fill()
        return dict.keys(self)

    def values(self):
        self._fill()
        return dict.values(self)

    def items(self):
        self._fill()
        return dict.items(self)


DATAPATHS: dict[str, Datapath] = _Registry()


def datapath_names() -> tuple[str, ...]:
    """The registered datapath names."""
    return tuple(DATAPATHS)


def get_datapath(name: str) -> Datapath:
    """The :class:`Datapath` called ``name``; raises :class:`DatapathError` listing the names."""
    if not isinstance(name, str) or name not in DATAPATHS:
        raise DatapathError(f"unknown datapath {name!r}; datapaths: {', '.join(DATAPATHS)}")
    return DATAPATHS[name]
