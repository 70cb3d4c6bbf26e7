"""Bit-exact model of the MatMul-free LM ternary datapath (arXiv 2406.02528, released code).

BitLinear as integer hardware runs it: RMSNorm (fp32) -> per-token absmax int8 activations
(rounding mode as a parameter) -> add/subtract/skip accumulation over 2-bit packed ternary
weights in an accumulator of configurable width with overflow detection -> ``acc / s_x / s_w``.
Plus the MLGRU token mixer and the GLU channel mixer built from it, with the recurrent state
precision as a parameter. numpy + numba only; see /work/shared/reference/matmulfree.md §2-§6.

Quick use::

    from rtl_models.ternary import BitLinearParams, BitLinearConfig, bitlinear
    layer = BitLinearParams.from_float(w, gamma)       # w [N, K] float, gamma [K]
    out = bitlinear(x, layer, BitLinearConfig(rounding="half_away", acc_bits=20))
"""

from .bitlinear import (
    AccResult,
    AccumulatorOverflowError,
    BitLinearConfig,
    BitLinearParams,
    BitLinearTrace,
    OpCounts,
    OverflowPolicy,
    accumulate,
    bitlinear,
    bitlinear_trace,
    dequantize,
    max_abs_acc,
    op_counts,
    required_acc_bits,
)
from .mlgru import (
    MLGRUOutput,
    MLGRUParams,
    StateFormat,
    StateOverflowError,
    StatePrecision,
    gated_rmsnorm,
    glu,
    layer_lower_bounds,
    mlgru_sequence,
    mlgru_step,
    sigmoid,
    swiglu,
)
from .quant import (
    QuantizedActivations,
    Rounding,
    TernaryError,
    TernaryWeights,
    pack_ternary,
    quantize_activations,
    rmsnorm,
    ternarize,
    unpack_ternary,
)

__all__ = [
    "AccResult", "AccumulatorOverflowError", "BitLinearConfig", "BitLinearParams", "BitLinearTrace",
    "OpCounts", "OverflowPolicy", "accumulate", "bitlinear", "bitlinear_trace", "dequantize",
    "max_abs_acc", "op_counts", "required_acc_bits",
    "MLGRUOutput", "MLGRUParams", "StateFormat", "StateOverflowError", "StatePrecision",
    "gated_rmsnorm", "glu", "layer_lower_bounds", "mlgru_sequence", "mlgru_step", "sigmoid", "swiglu",
    "QuantizedActivations", "Rounding", "TernaryError", "TernaryWeights", "pack_ternary",
    "quantize_activations", "rmsnorm", "ternarize", "unpack_ternary",
]
