"""Workloads: layer lists (GEMM, convolution, MoE, elementwise), a zoo of public model
configs, and readers for a user's own network (:func:`load_workload`, :func:`from_torch`)."""

from .layers import GEMM_KINDS, Conv, Elementwise, Gemm, Layer, MoE, Workload, WorkloadError
from .loader import WORKLOAD_PARAMS, format_workload, load_workload, parse_workload
from .routing import Routing, generate_routing, routing_from_weights
from .zoo import (
    DECODER_FAMILIES,
    MODELS,
    PHASES,
    VIT_TOKENS,
    ModelConfig,
    decoder_workload,
    get_model,
    hgrn_bit_workload,
    model_workload,
    vit_moe_workload,
    workload,
    workload_names,
)

__all__ = [
    "GEMM_KINDS", "Conv", "Elementwise", "Gemm", "Layer", "MoE", "Workload", "WorkloadError",
    "WORKLOAD_PARAMS", "format_workload", "load_workload", "parse_workload", "from_torch",
    "DECODER_FAMILIES", "MODELS", "PHASES", "VIT_TOKENS", "ModelConfig", "decoder_workload", "get_model",
    "hgrn_bit_workload", "model_workload", "vit_moe_workload", "workload", "workload_names",
    "Routing", "generate_routing", "routing_from_weights",
]


def from_torch(module, *example_inputs, **kwargs):
    """Trace a torch module into a :class:`Workload` (torch is imported only here); see
    :func:`archgym.workloads.torch_trace.from_torch`."""
    from .torch_trace import from_torch as _from_torch

    return _from_torch(module, *example_inputs, **kwargs)
