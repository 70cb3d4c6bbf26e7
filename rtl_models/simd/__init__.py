"""Bit-exact model of Agile-Quant's SMMW SIMD multiplier.

Source: Agile-Quant (Shen et al., AAAI 2024; arXiv 2312.05693), its SMMW NEON kernel and
Appendix Algorithm 1 (the released code, shawnricecake/agile-quant, has no ARM kernel).

Public API:

* :class:`SMMWConfig` - lane/operand/weight/activation widths, drain policy;
  derives the field layout and rejects layouts that cannot hold a product.
* :class:`SMMWLane` - one lane emulated bit for bit (MUL, LSL, ORR, AND, ADD,
  drain) with per-add carry detection; the slow reference.
* :func:`packed_gemm` / :func:`packed_gemm_reference` - ``A @ W`` built from
  lanes (numba kernel / pure Python), unsigned or signed via offset encoding.
* :func:`op_counts` - instruction counts per GEMM for latency models.
* :func:`requantize`, :func:`quantize_multiplier` - fixed-point requantization.
"""

from .gemm import (PackedGemmResult, offset_correction, offset_encode, pack_weights, packed_gemm,
                   packed_gemm_reference, quantize_multiplier, requantize)
from .layout import CarryError, LayoutError, SMMWConfig, SMMWLane
from .ops import OpCounts, op_counts

__all__ = [
    "SMMWConfig", "SMMWLane", "LayoutError", "CarryError",
    "PackedGemmResult", "packed_gemm", "packed_gemm_reference", "pack_weights",
    "offset_encode", "offset_correction", "requantize", "quantize_multiplier",
    "OpCounts", "op_counts",
]
