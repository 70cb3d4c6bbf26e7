"""Vectorised bit-exact path of the fixed-point MoE layer (the validation path).

:func:`moe_forward_fast` runs the reordered (expert-by-expert) schedule of
:func:`~rtl_models.moe.moe_forward` with every integer matrix product computed by
:func:`rtl_models.intgemm.exact_matmul` (float BLAS on limbs, exact) instead of numpy's int64
``@`` (a scalar loop without BLAS). Everything else (gate requantisation, top-k, integer
softmax, GELU LUT, overflow checks, combine) is the same vectorised integer code. Both
schedules of the slow model produce identical outputs (integer sums are order-free, see
:mod:`.layer`); this path reports the reordered schedule's statistics.
"""

from __future__ import annotations

import numpy as np

from dataclasses import dataclass

from ..intgemm import exact_matmul, exact_matmul_f64
from .config import Activation, MoEConfig, MoEWeights
from .fixed_point import FixedPoint
from .layer import MoEResult, Schedule, _check_x, _Counters, build_queues
from .nonlinear import int_gelu, int_relu, int_softmax

__all__ = ["moe_forward_fast", "PreparedMoEWeights", "prepare_weights"]


@dataclass(frozen=True, eq=False)
class PreparedMoEWeights:
    """Weights checked against a :class:`MoEConfig` once and held as float64 (exact: the
    codes are integers far below 2**53) for the BLAS products; biases stay int64 codes.
    Build with :func:`prepare_weights`; reuse across calls (weights are static)."""

    cfg: MoEConfig
    gate: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray


def _check_codes(name: str, a: np.ndarray, shape: tuple, fmt: FixedPoint) -> None:
    # min/max scans instead of MoEWeights.validate's masks: same verdict, no temporaries
    if a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}; expected {shape}")
    lo, hi = int(a.min()), int(a.max())
    if lo < fmt.min_code or hi > fmt.max_code:
        bad = lo if lo < fmt.min_code else hi
        raise ValueError(f"{name} holds {bad}, outside {fmt} codes [{fmt.min_code}, {fmt.max_code}]")


def prepare_weights(weights: MoEWeights, cfg: MoEConfig) -> PreparedMoEWeights:
    """Check ``weights`` against ``cfg`` (shapes, code ranges) and convert the linear weights to
    float64 once. Raises ValueError like :meth:`MoEWeights.validate`."""
    if not isinstance(cfg, MoEConfig):
        raise ValueError(f"cfg={cfg!r} must be a MoEConfig")
    if not isinstance(weights, MoEWeights):
        raise ValueError(f"weights must be a MoEWeights, got {type(weights).__name__}")
    d, h, n, nm = cfg.d_model, cfg.d_hidden, cfg.n_experts, cfg.numerics
    _check_codes("MoEWeights.gate", weights.gate, (d, n), nm.weight)
    _check_codes("MoEWeights.w1", weights.w1, (n, d, h), nm.weight)
    _check_codes("MoEWeights.b1", weights.b1, (n, h), nm.bias)
    _check_codes("MoEWeights.w2", weights.w2, (n, h, d), nm.weight)
    _check_codes("MoEWeights.b2", weights.b2, (n, d), nm.bias)
    # float64 copies only when a product stays exact with whole weights (K * max|w| <= 2**50)
    wide = nm.weight.max_abs_code.bit_length() + (max(d, h) - 1).bit_length() > 50
    f = (lambda a: a) if wide else (lambda a: a.astype(np.float64))  # noqa: E731
    return PreparedMoEWeights(cfg, f(weights.gate), f(weights.w1), weights.b1, f(weights.w2), weights.b2)


def _mm(x: np.ndarray, w: np.ndarray, w_max: int, a_max: int) -> np.ndarray:
    if w.dtype == np.float64:
        return exact_matmul_f64(x, w, w_max, a_max=a_max)
    return exact_matmul(x, w, a_max=a_max, b_max=w_max)


def moe_forward_fast(x_q, weights: MoEWeights | PreparedMoEWeights, cfg: MoEConfig) -> MoEResult:
    """The fixed-point MoE layer on T tokens, vectorised; same arguments (no schedule) and the
    same ``output``, routing and overflow/saturation counts as ``moe_forward(x_q, weights,
    cfg, schedule="reorder")`` (tested), with the reordered schedule's load statistics.
    ``weights`` may be prepared once with :func:`prepare_weights`.
    """
    if not isinstance(weights, PreparedMoEWeights):
        weights = prepare_weights(weights, cfg)
    elif weights.cfg != cfg:
        raise ValueError("weights were prepared for a different MoEConfig")
    nm = cfg.numerics
    n, k = cfg.n_experts, cfg.top_k
    x = _check_x(x_q, cfg.d_model, nm)
    a_max, w_max = nm.act.max_abs_code, nm.weight.max_abs_code
    cnt = _Counters(nm)
    pf = nm.product_frac_bits

    acc = cnt.check(_mm(x, weights.gate, w_max, a_max), "gate", lambda i: f"token {i[0]}, expert {i[1]}")
    logits = cnt.requant(acc, pf, nm.logit, "gate")
    experts = np.argsort(-logits, axis=1, kind="stable")[:, :k].astype(np.int64)
    probs = int_softmax(logits, nm.logit.frac_bits, nm.score.frac_bits, nm.exp_frac_bits,
                        nm.exp_lut_bits, nm.rounding)
    scores = np.take_along_axis(probs, experts, axis=1)
    queues, qscores = build_queues(experts, scores, n)

    s = pf - nm.bias.frac_bits
    out_acc = np.zeros((x.shape[0], cfg.d_model), dtype=np.int64)
    load_order = []
    for e in range(n):
        idx = queues[e]
        if idx.size == 0:
            continue
        load_order.append(e)
        where = lambda i, e=e, idx=idx: f"token {int(idx[i[0]])}, expert {e}, unit {i[1]}"  # noqa: E731
        a1 = cnt.check(_mm(x[idx], weights.w1[e], w_max, a_max) + (weights.b1[e] << s), "fc1", where)
        hid = cnt.requant(a1, pf, nm.act, "fc1")
        hid = int_gelu(hid, nm.act.frac_bits, nm.rounding) if nm.activation is Activation.GELU_LUT else int_relu(hid)
        a2 = cnt.check(_mm(hid, weights.w2[e], w_max, a_max) + (weights.b2[e] << s), "fc2", where)
        y = cnt.requant(a2, pf, nm.act, "fc2")
        out_acc[idx] += qscores[e][:, None] * y

    out_acc = cnt.check(out_acc, "combine", lambda i: f"token {i[0]}, unit {i[1]}")
    out = cnt.requant(out_acc, nm.score.frac_bits + nm.act.frac_bits, nm.act, "combine")
    for arr in (out, logits, experts, scores):
        arr.setflags(write=False)
    return MoEResult(
        output=out, logits=logits, expert_of_token=experts, scores=scores, queues=queues,
        queue_scores=qscores, queue_lengths=np.array([q.size for q in queues], dtype=np.int64),
        schedule=Schedule.REORDER, weight_loads=len(load_order),
        load_order=np.array(load_order, dtype=np.int64), cache_hits=0, cache_slots=2,
        expert_weight_bytes=cfg.expert_weight_bytes, overflow_counts=dict(cnt.overflow),
        saturation_counts=dict(cnt.saturation),
    )
