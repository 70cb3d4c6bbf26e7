"""Workloads: layer lists (GEMM, elementwise, MoE) and a zoo of public model configs."""

from .layers import GEMM_KINDS, Elementwise, Gemm, Layer, MoE, Workload
from .routing import Routing, generate_routing, routing_from_weights
from .zoo import (
    MODELS,
    PHASES,
    VIT_TOKENS,
    ModelConfig,
    decoder_workload,
    get_model,
    hgrn_bit_workload,
    vit_moe_workload,
    workload,
    workload_names,
)

__all__ = [
    "GEMM_KINDS", "Elementwise", "Gemm", "Layer", "MoE", "Workload",
    "MODELS", "PHASES", "VIT_TOKENS", "ModelConfig", "decoder_workload", "get_model",
    "hgrn_bit_workload", "vit_moe_workload", "workload", "workload_names",
    "Routing", "generate_routing", "routing_from_weights",
]
