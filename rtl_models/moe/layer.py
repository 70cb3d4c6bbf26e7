"""Fixed-point MoE layer: gate -> top-k -> per-expert queues -> gather -> expert
FFN -> score-weighted scatter-accumulate, in two schedules with identical arithmetic.

Datapath (all int64 codes; formats and rounding from :class:`MoENumerics`):

1. gate: ``acc = x @ Wg`` exact (act+weight fraction bits), overflow-checked
   against ``acc_bits``, requantised to the logit format (shift with the
   configured rounding, then saturate);
2. top-k on the logit codes, descending; equal logits -> the lower expert index
   wins (Edge-MoE's insertion ``top_k`` keeps the earlier expert on ties);
3. scores = integer softmax over all N logits, raw top-k probabilities, not
   renormalised (M3ViT's ``noisy_gate_vmoe.py``; algorithm in :mod:`.nonlinear`);
4. expert e on token rows X: ``a1 = X @ W1[e] + (b1[e] << s)`` exact, checked,
   requantised to act; activation (LUT GELU or ReLU); ``a2 = H @ W2[e] + (b2[e] << s)``
   exact, checked, requantised to act (the expert output ``y``);
5. combine: ``acc[t] += score * y`` exact with score+act fraction bits,
   overflow-checked once at the end, requantised to act (the output).

Why the two schedules agree bit for bit (and why reordering is legal in
hardware): a token's result is requantised only once, after all its k expert
contributions are summed exactly in a wide accumulator.  Integer addition is
associative and commutative, so visiting the (token, expert) pairs token by
token or expert by expert gives the same sum.  This stays true with a
wrapping adder (addition mod ``2**acc_bits`` is associative too); only the
*final* exact sum decides whether the accumulator overflowed.  Edge-MoE instead
truncates each ``score * y`` to ``ap_fixed<32,10>`` before adding
(``write_out_stream_indirect``), which is also order-independent but loses
bits per product; here the products are kept exact (*ours*).

Schedules (M3ViT §3.2 and Fig. 4; the LRU cache is our model of its cache-based
baseline):

* ``"token"``: tokens in order, each with its k experts in top-k order; the
  expert weights sit in an LRU cache of ``cache_slots`` experts (default N:
  the naive all-experts-on-chip design); every miss is a weight load.
* ``"reorder"``: gate every token first, fill per-expert queues (token index,
  score) in token order, then visit the active experts in ascending index, each
  gathering its queue, running the FFN and scatter-accumulating: one weight
  load per active expert (Edge-MoE's ping-pong ``compute_moe``).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .config import (
    AccumulatorOverflowError,
    Activation,
    MoEConfig,
    MoENumerics,
    MoEWeights,
    OverflowMode,
    _codes,
    check_headroom,
)
from .fixed_point import fits_in_bits, shift_round, wrap_to_bits
from .nonlinear import int_gelu, int_relu, int_softmax

__all__ = ["Schedule", "Routing", "MoEResult", "route", "build_queues", "moe_forward", "STAGES"]

STAGES = ("gate", "fc1", "fc2", "combine")


class Schedule(str, enum.Enum):
    """Order in which (token, expert) pairs are computed."""

    TOKEN = "token"
    REORDER = "reorder"


@dataclass(frozen=True, eq=False)
class Routing:
    """Gate output for T tokens.

    Attributes:
        logits: [T, N] logit codes.
        experts: [T, k] chosen experts, descending logit, ties -> lower index.
        scores: [T, k] score codes (score format) of those experts.
        overflow_counts: gate accumulator overflows (``WRAP`` mode only, else 0).
        saturation_counts: logits clamped to the logit format.
    """

    logits: np.ndarray
    experts: np.ndarray
    scores: np.ndarray
    overflow_counts: int
    saturation_counts: int


@dataclass(frozen=True, eq=False)
class MoEResult:
    """Output and statistics of :func:`moe_forward`.

    Attributes:
        output: [T, d] output codes in the activation format.
        logits, expert_of_token, scores: as in :class:`Routing`.
        queues: N arrays of token indices per expert, in token order.
        queue_scores: N arrays of the matching score codes.
        queue_lengths: [N] tokens per expert (sums to T * k).
        schedule: the schedule that ran.
        weight_loads: expert weight loads from DRAM (token: cache misses;
            reorder: active experts).
        load_order: [weight_loads] the expert loaded at each load.
        cache_hits: token schedule: (token, expert) pairs served from the cache; reorder: 0.
        cache_slots: experts held on chip (token: the LRU size; reorder: 2, ping-pong).
        expert_weight_bytes: bytes of one expert's weights and biases.
        overflow_counts: per stage (``STAGES``), accumulator values whose exact
            sum did not fit ``acc_bits`` (nonzero only with ``on_overflow="wrap"``).
        saturation_counts: per stage, requantised values clamped to their format.
    """

    output: np.ndarray
    logits: np.ndarray
    expert_of_token: np.ndarray
    scores: np.ndarray
    queues: tuple
    queue_scores: tuple
    queue_lengths: np.ndarray
    schedule: Schedule
    weight_loads: int
    load_order: np.ndarray
    cache_hits: int
    cache_slots: int
    expert_weight_bytes: int
    overflow_counts: Mapping[str, int]
    saturation_counts: Mapping[str, int]

    @property
    def weight_bytes_loaded(self) -> int:
        """Total expert weight traffic, ``weight_loads * expert_weight_bytes``."""
        return self.weight_loads * self.expert_weight_bytes

    @property
    def active_experts(self) -> np.ndarray:
        """Experts with a non-empty queue, ascending."""
        return np.flatnonzero(self.queue_lengths)


class _Counters:
    """Overflow / saturation bookkeeping shared by the datapath steps."""

    def __init__(self, nm: MoENumerics) -> None:
        self.nm = nm
        self.overflow = dict.fromkeys(STAGES, 0)
        self.saturation = dict.fromkeys(STAGES, 0)

    def check(self, acc: np.ndarray, stage: str, where) -> np.ndarray:
        bad = ~fits_in_bits(acc, self.nm.acc_bits)
        n = int(bad.sum())
        if n == 0:
            return acc
        if self.nm.on_overflow is OverflowMode.RAISE:
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise AccumulatorOverflowError(
                f"{stage} accumulator overflows acc_bits={self.nm.acc_bits} in {n} value(s); "
                f"first at {where(idx)}: exact sum {int(acc[idx])}"
                " (widen acc_bits or use on_overflow='wrap')"
            )
        self.overflow[stage] += n
        return wrap_to_bits(acc, self.nm.acc_bits)

    def requant(self, acc: np.ndarray, acc_frac: int, fmt, stage: str) -> np.ndarray:
        v = shift_round(acc, acc_frac - fmt.frac_bits, self.nm.rounding)
        self.saturation[stage] += int((~fmt.in_range(v)).sum())
        return fmt.saturate(v)


def _gate(x: np.ndarray, gate_w: np.ndarray, k: int, cnt: _Counters):
    nm = cnt.nm
    acc = cnt.check(x @ gate_w, "gate", lambda i: f"token {i[0]}, expert {i[1]}")
    logits = cnt.requant(acc, nm.product_frac_bits, nm.logit, "gate")
    # stable sort on -logit: equal logits keep ascending expert index
    experts = np.argsort(-logits, axis=1, kind="stable")[:, :k].astype(np.int64)
    probs = int_softmax(
        logits, nm.logit.frac_bits, nm.score.frac_bits, nm.exp_frac_bits, nm.exp_lut_bits, nm.rounding
    )
    scores = np.take_along_axis(probs, experts, axis=1)
    return logits, experts, scores


def _expert_ffn(x: np.ndarray, w: MoEWeights, e: int, tokens: np.ndarray, cnt: _Counters) -> np.ndarray:
    """Expert ``e`` on rows ``x`` (codes of tokens ``tokens``); returns act codes."""
    nm = cnt.nm
    pf = nm.product_frac_bits
    s = pf - nm.bias.frac_bits
    where = lambda i: f"token {int(tokens[i[0]])}, expert {e}, unit {i[1]}"  # noqa: E731
    a1 = cnt.check(x @ w.w1[e] + (w.b1[e] << s), "fc1", where)
    hid = cnt.requant(a1, pf, nm.act, "fc1")
    hid = int_gelu(hid, nm.act.frac_bits, nm.rounding) if nm.activation is Activation.GELU_LUT else int_relu(hid)
    a2 = cnt.check(hid @ w.w2[e] + (w.b2[e] << s), "fc2", where)
    return cnt.requant(a2, pf, nm.act, "fc2")


def _check_x(x_q, d: int, nm: MoENumerics) -> np.ndarray:
    a = np.asarray(x_q)
    if a.ndim != 2 or a.shape[0] < 1:
        raise ValueError(f"x_q has shape {a.shape}; expected [T, {d}] with T >= 1")
    return _codes("x_q", a, (a.shape[0], d), nm.act)


def route(x_q, gate_w, k: int, numerics: MoENumerics | None = None) -> Routing:
    """Run only the gate: per-token top-``k`` experts and their scores.

    Args:
        x_q: [T, d] activation codes (integer dtype).
        gate_w: [d, N] weight codes (integer dtype).
        k: experts per token, ``1 <= k <= N``.
        numerics: formats and rounding (default: Edge-MoE formats).
    """
    nm = numerics if numerics is not None else MoENumerics()
    if not isinstance(nm, MoENumerics):
        raise ValueError(f"numerics={nm!r} must be a MoENumerics")
    g = np.asarray(gate_w)
    if g.ndim != 2:
        raise ValueError(f"gate_w has shape {g.shape}; expected [d, N]")
    d, n = g.shape
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k={k!r} out of range; allowed 1..N={n}")
    g = _codes("gate_w", g, (d, n), nm.weight)
    xs = np.shape(x_q)
    if len(xs) == 2 and xs[1] != d:
        raise ValueError(f"x_q has shape {xs} but gate_w has shape {g.shape}; their d must match")
    x = _check_x(x_q, d, nm)
    check_headroom(nm, d, 1, n, int(k))
    cnt = _Counters(nm)
    logits, experts, scores = _gate(x, g, int(k), cnt)
    return Routing(logits, experts, scores, cnt.overflow["gate"], cnt.saturation["gate"])


def build_queues(experts: np.ndarray, scores: np.ndarray, n_experts: int) -> tuple[tuple, tuple]:
    """Per-expert queues of (token index, score), tokens in ascending order
    (Edge-MoE ``write_gate_results``).  Returns ``(queues, queue_scores)``."""
    experts = np.asarray(experts)
    scores = np.asarray(scores)
    if experts.shape != scores.shape or experts.ndim != 2:
        raise ValueError(f"experts {experts.shape} and scores {scores.shape} must be equal [T, k] shapes")
    if experts.size and (experts.min() < 0 or experts.max() >= n_experts):
        raise ValueError(f"expert ids must be in 0..{n_experts - 1}")
    tok = np.repeat(np.arange(experts.shape[0], dtype=np.int64), experts.shape[1])
    e = experts.reshape(-1)
    sc = scores.reshape(-1).astype(np.int64)
    order = np.argsort(e, kind="stable")  # keeps token order inside each queue
    bounds = np.searchsorted(e[order], np.arange(n_experts + 1))
    queues = tuple(tok[order[bounds[i] : bounds[i + 1]]] for i in range(n_experts))
    qscores = tuple(sc[order[bounds[i] : bounds[i + 1]]] for i in range(n_experts))
    return queues, qscores


def moe_forward(
    x_q,
    weights: MoEWeights,
    cfg: MoEConfig,
    schedule: Schedule | str = Schedule.TOKEN,
    cache_slots: int | None = None,
) -> MoEResult:
    """Run the fixed-point MoE layer on T tokens.

    Args:
        x_q: [T, d] activation codes (integer dtype, inside ``cfg.numerics.act``).
        weights: integer weight codes matching ``cfg``.
        cfg: layer shape and numerics.
        schedule: ``"token"`` (token order with an LRU expert cache) or
            ``"reorder"`` (expert by expert over per-expert queues).
        cache_slots: token schedule only: experts the cache holds, 1..N
            (default N).  Must be None for ``"reorder"``.

    Both schedules return bit-identical ``output``; they differ in the load
    statistics.  Raises :class:`AccumulatorOverflowError` on an accumulator
    overflow unless ``cfg.numerics.on_overflow == "wrap"``.
    """
    if not isinstance(cfg, MoEConfig):
        raise ValueError(f"cfg={cfg!r} must be a MoEConfig")
    if not isinstance(weights, MoEWeights):
        raise ValueError(f"weights must be a MoEWeights, got {type(weights).__name__}")
    try:
        schedule = Schedule(schedule)
    except ValueError:
        raise ValueError(f"schedule={schedule!r} is not one of 'token', 'reorder'") from None
    n, k = cfg.n_experts, cfg.top_k
    if schedule is Schedule.REORDER and cache_slots is not None:
        raise ValueError(
            f"cache_slots={cache_slots!r} applies only to schedule='token'; "
            "the reordered schedule uses 2 ping-pong buffers"
        )
    if schedule is Schedule.TOKEN:
        slots = n if cache_slots is None else cache_slots
        if isinstance(slots, bool) or not isinstance(slots, (int, np.integer)) or not 1 <= slots <= n:
            raise ValueError(f"cache_slots={cache_slots!r} out of range; allowed 1..N={n} or None")
        slots = int(slots)
    else:
        slots = 2
    weights.validate(cfg)
    nm = cfg.numerics
    x = _check_x(x_q, cfg.d_model, nm)
    t_count = x.shape[0]
    cnt = _Counters(nm)

    logits, experts, scores = _gate(x, weights.gate, k, cnt)
    queues, qscores = build_queues(experts, scores, n)
    acc = np.zeros((t_count, cfg.d_model), dtype=np.int64)
    load_order: list[int] = []
    hits = 0

    if schedule is Schedule.TOKEN:
        cache: OrderedDict[int, None] = OrderedDict()
        for t in range(t_count):
            for j in range(k):
                e = int(experts[t, j])
                if e in cache:
                    cache.move_to_end(e)
                    hits += 1
                else:
                    if len(cache) == slots:
                        cache.popitem(last=False)  # evict least recently used
                    cache[e] = None
                    load_order.append(e)
                tok = np.array([t], dtype=np.int64)
                y = _expert_ffn(x[t : t + 1], weights, e, tok, cnt)
                acc[t] += scores[t, j] * y[0]
    else:
        for e in range(n):
            idx = queues[e]
            if idx.size == 0:
                continue  # only active experts are visited (Edge-MoE metaqueue)
            load_order.append(e)
            y = _expert_ffn(x[idx], weights, e, idx, cnt)
            acc[idx] += qscores[e][:, None] * y  # queue holds each token at most once

    acc = cnt.check(acc, "combine", lambda i: f"token {i[0]}, unit {i[1]}")
    out = cnt.requant(acc, nm.score.frac_bits + nm.act.frac_bits, nm.act, "combine")
    for a in (out, logits, experts, scores):
        a.setflags(write=False)
    return MoEResult(
        output=out,
        logits=logits,
        expert_of_token=experts,
        scores=scores,
        queues=queues,
        queue_scores=qscores,
        queue_lengths=np.array([q.size for q in queues], dtype=np.int64),
        schedule=schedule,
        weight_loads=len(load_order),
        load_order=np.array(load_order, dtype=np.int64),
        cache_hits=hits,
        cache_slots=slots,
        expert_weight_bytes=cfg.expert_weight_bytes,
        overflow_counts=dict(cnt.overflow),
        saturation_counts=dict(cnt.saturation),
    )
