"""Torch-free Agile-Quant quantizers.

Sources: Agile-Quant (Shen et al., AAAI 2024; arXiv 2312.05693) for the scheme, and its
released code ``shawnricecake/agile-quant`` (FQ-ViT observers under ``ptq/``, the LLaMA
``modeling_llama.py`` / ``configuration_llama.py``) for the exact arithmetic.

* :mod:`.ptf` - TRIP's layer-wise scale + per-channel power-of-two factors (FQ-ViT PTF).
* :mod:`.log2` - log2 softmax quantizer.
* :mod:`.uniform` - per-channel minmax activation quantizer of the released
  code; GPTQ-style grouped INT4/INT8 weight quantization (round to nearest).
* :mod:`.token_prune` - attention-to-first-token importance and the pruning cascade.

All rounding is half to even (``np.rint`` = ``torch.round``); all float work
stays in the input dtype in the torch originals' operation order.
"""

from ._common import QuantError
from .log2 import log2_dequantize, log2_quantize
from .ptf import PTFParams, fold_alpha_into_weight, ptf_calibrate, ptf_dequantize, ptf_quantize
from .token_prune import cascade_prune, kept_token_counts, prune_ratio, select_tokens, token_importance
from .uniform import (GroupWeightQuant, MinMaxParams, dequantize_weight_groups, minmax_calibrate,
                      minmax_dequantize, minmax_quantize, quantize_weight_groups)

__all__ = [
    "QuantError",
    "PTFParams", "ptf_calibrate", "ptf_quantize", "ptf_dequantize", "fold_alpha_into_weight",
    "log2_quantize", "log2_dequantize",
    "MinMaxParams", "minmax_calibrate", "minmax_quantize", "minmax_dequantize",
    "GroupWeightQuant", "quantize_weight_groups", "dequantize_weight_groups",
    "token_importance", "select_tokens", "prune_ratio", "kept_token_counts", "cascade_prune",
]
