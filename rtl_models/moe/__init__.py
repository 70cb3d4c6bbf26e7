"""Bit-exact fixed-point MoE layer datapath (M3ViT / Edge-MoE), numpy only.

gate -> top-k -> per-expert queues -> gather -> expert FFN -> score-weighted
scatter-accumulate, in token order or reordered expert by expert (M3ViT, Liang et
al., NeurIPS 2022, §3.2 and Fig. 4), with the number formats of Edge-MoE
(Sarkar et al., ICCAD 2023; HLS code sharc-lab/Edge-MoE at 984b23b) by default.
Start with :func:`moe_forward`; :func:`route` runs only the gate.

Example::

    import numpy as np
    from rtl_models.moe import MoEConfig, MoEWeights, moe_forward
    cfg = MoEConfig(d_model=32, d_hidden=32, n_experts=16, top_k=4)
    rng = np.random.default_rng(0)
    w = MoEWeights.random(cfg, rng)
    x = cfg.numerics.act.quantize(rng.normal(size=(64, 32)))
    r = moe_forward(x, w, cfg, schedule="reorder")
    r.output, r.queue_lengths, r.weight_loads
"""

from .config import (
    AccumulatorOverflowError,
    Activation,
    MoEConfig,
    MoENumerics,
    MoEWeights,
    OverflowMode,
)
from .fixed_point import FixedPoint, Rounding, div_round, rescale, shift_round
from .layer import STAGES, MoEResult, Routing, Schedule, build_queues, moe_forward, route
from .nonlinear import int_exp_neg, int_gelu, int_softmax

__all__ = [
    "FixedPoint",
    "Rounding",
    "shift_round",
    "div_round",
    "rescale",
    "Activation",
    "OverflowMode",
    "AccumulatorOverflowError",
    "MoENumerics",
    "MoEConfig",
    "MoEWeights",
    "Schedule",
    "Routing",
    "MoEResult",
    "STAGES",
    "route",
    "build_queues",
    "moe_forward",
    "int_exp_neg",
    "int_softmax",
    "int_gelu",
]
