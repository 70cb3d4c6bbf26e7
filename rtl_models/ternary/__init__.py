"""Bit-exact model of the MatMul-free LM ternary datapath (arXiv 2406.02528, released code).

BitLinear as integer hardware runs it: RMSNorm (fp32) -> per-token absmax int8 activations
(rounding mode as a parameter) -> add/subtract/skip accumulation over 2-bit packed ternary
weights in an accumulator of configurable width with overflow detection -> ``acc / s_x / s_w``.
Plus the MLGRU token mixer and the GLU channel mixer built from it, with the recurrent state
precision as a parameter. numpy + numba only.

Sources: the released code ``ridgerchu/matmulfreellm`` at master a016f72, under ``mmfreelm/``:
``ops/fusedbitnet.py``, ``ops/bitnet.py``, ``layers/hgrn_bit.py``, ``modules/fused_norm_gate.py``
and ``models/hgrn_bit/modeling_hgrn_bit.py``; and its ``bitblas`` branch at 905944e
(``mmfreelm/modules/quant_util.py``: the integer path ``acc / s_x / s_w``). Accumulator bounds
and float32 exactness limits are our own arithmetic, stated where they are used.

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
