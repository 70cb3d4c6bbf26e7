"""Bit-exact tests of rtl_models.moe against an independent torch.int64 reference.

The reference below is written from the algorithm text in the module docstrings
(rtl_models/moe/{fixed_point,nonlinear,layer}.py), not from their code: it
computes every expert densely on every token (a third schedule), gathers the
chosen (token, expert) pairs and reduces with torch ops, all in int64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rtl_models.moe import (
    STAGES,
    AccumulatorOverflowError,
    Activation,
    FixedPoint,
    MoEConfig,
    MoENumerics,
    MoEWeights,
    OverflowMode,
    Rounding,
    build_queues,
    div_round,
    int_gelu,
    int_softmax,
    moe_forward,
    rescale,
    route,
    shift_round,
)

# ----------------------------------------------------------------------------------------
# torch reference (spec: module docstrings of rtl_models/moe)


def t_shift(v: torch.Tensor, s, mode: str) -> torch.Tensor:
    s = torch.as_tensor(s, dtype=torch.int64)
    if mode == "floor":
        return torch.bitwise_right_shift(v, s)
    half = torch.where(s > 0, torch.bitwise_left_shift(torch.ones_like(s), (s - 1).clamp(min=0)), 0)
    r = torch.bitwise_right_shift(v.abs() + half, s)
    return torch.where(v < 0, -r, r)


def t_div(n: torch.Tensor, d: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "floor":
        return torch.div(n, d, rounding_mode="floor")
    return torch.div(2 * n + d, 2 * d, rounding_mode="floor")


def t_sat(v: torch.Tensor, fmt: FixedPoint):
    lo = -(2 ** (fmt.total_bits - 1)) if fmt.signed else 0
    hi = 2 ** (fmt.total_bits - 1) - 1 if fmt.signed else 2**fmt.total_bits - 1
    n_sat = int(((v < lo) | (v > hi)).sum())
    return v.clamp(lo, hi), n_sat


def t_acc(v: torch.Tensor, bits: int, mode: str):
    """Exact sum -> (value held by a `bits`-wide accumulator, overflow count)."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    n = int(((v < lo) | (v > hi)).sum())
    if n and mode == "raise":
        raise AccumulatorOverflowError("reference overflow")
    return torch.remainder(v - lo, 2**bits) + lo, n


def t_exp_neg(x, xf, ef, lb, mode):
    log2e = math.floor(math.log2(math.e) * 2**16 + 0.5)
    j = torch.arange(2**lb + 1, dtype=torch.float64)
    rom = torch.floor(torch.exp2(ef - j / 2**lb) + 0.5).to(torch.int64)
    t = t_shift(x * log2e, xf, mode)
    q, r = t >> 16, t & 0xFFFF
    i, f = r >> (16 - lb), r & (2 ** (16 - lb) - 1)
    v = rom[i] + t_shift((rom[i + 1] - rom[i]) * f, 16 - lb, mode)
    return t_shift(v, q.clamp(max=62), mode)


def t_gelu(x, fb, mode):
    j = torch.arange(177, dtype=torch.float64) / 32
    rom = torch.floor(j * 0.5 * torch.special.erfc(j / math.sqrt(2)) * 2.0**fb + 0.5).to(torch.int64)
    s = fb - 5
    relu = x.clamp(min=0)
    a = x.abs()
    inside = a < 176 * 2**s
    a = torch.where(inside, a, 0)
    i, f = a >> s, a & (2**s - 1)
    delta = rom[i] + t_shift((rom[(i + 1).clamp(max=176)] - rom[i]) * f, s, mode)
    return torch.where(inside, relu - delta, relu)


def torch_reference(x_np, w: MoEWeights, cfg: MoEConfig):
    nm = cfg.numerics
    mode, ovf = nm.rounding.value, nm.on_overflow.value
    fa, fw, fb = nm.act.frac_bits, nm.weight.frac_bits, nm.bias.frac_bits
    pf, k = fa + fw, cfg.top_k
    x = torch.from_numpy(np.array(x_np, dtype=np.int64))
    g, w1, b1, w2, b2 = (torch.from_numpy(np.array(a)) for a in (w.gate, w.w1, w.b1, w.w2, w.b2))
    ovc, satc = dict.fromkeys(STAGES, 0), dict.fromkeys(STAGES, 0)
    # gate
    acc, ovc["gate"] = t_acc(x @ g, nm.acc_bits, ovf)
    logits, satc["gate"] = t_sat(t_shift(acc, pf - nm.logit.frac_bits, mode), nm.logit)
    experts = torch.sort(logits, dim=1, descending=True, stable=True).indices[:, :k]
    m = logits.max(dim=1, keepdim=True).values
    e = t_exp_neg(m - logits, nm.logit.frac_bits, nm.exp_frac_bits, nm.exp_lut_bits, mode)
    fs = nm.score.frac_bits
    probs = t_div(e * 2**fs, e.sum(dim=1, keepdim=True).expand_as(e), mode)
    scores = torch.gather(probs, 1, experts)
    # every expert on every token, then keep the chosen pairs: [T, k, ...]
    tok = torch.arange(x.shape[0]).unsqueeze(1).expand(-1, k)
    a1 = (torch.matmul(x.unsqueeze(0), w1) + (b1 * 2 ** (pf - fb)).unsqueeze(1))[experts, tok]
    a1, ovc["fc1"] = t_acc(a1, nm.acc_bits, ovf)
    hid, satc["fc1"] = t_sat(t_shift(a1, pf - fa, mode), nm.act)
    hid = t_gelu(hid, fa, mode) if nm.activation is Activation.GELU_LUT else hid.clamp(min=0)
    # second layer per chosen pair: hid [T, k, h] x w2[experts] [T, k, h, d]
    a2 = torch.matmul(hid.unsqueeze(2), w2[experts]).squeeze(2) + b2[experts] * 2 ** (pf - fb)
    a2, ovc["fc2"] = t_acc(a2, nm.acc_bits, ovf)
    y, satc["fc2"] = t_sat(t_shift(a2, pf - fa, mode), nm.act)
    comb, ovc["combine"] = t_acc((scores.unsqueeze(2) * y).sum(dim=1), nm.acc_bits, ovf)
    out, satc["combine"] = t_sat(t_shift(comb, fs, mode), nm.act)
    return dict(output=out, logits=logits, experts=experts, scores=scores, overflow=ovc, saturation=satc)


# ----------------------------------------------------------------------------------------
# helpers

NUMERICS = {
    "edge_moe": MoENumerics(),
    # round-half-away, narrow formats: logit ties and saturation happen often
    "narrow_half_away_gelu": MoENumerics(
        act=FixedPoint(16, 6),
        weight=FixedPoint(8, 2),
        bias=FixedPoint(8, 3),
        logit=FixedPoint(10, 6),
        score=FixedPoint(10, 2),
        acc_bits=40,
        rounding=Rounding.HALF_AWAY,
        exp_frac_bits=12,
        exp_lut_bits=3,
    ),
    "narrow_floor_relu": MoENumerics(
        act=FixedPoint(14, 5),
        weight=FixedPoint(10, 1),
        bias=FixedPoint(12, 4),
        logit=FixedPoint(12, 5),
        score=FixedPoint(12, 1, signed=False),
        acc_bits=36,
        activation=Activation.RELU,
        exp_lut_bits=4,
    ),
}


def make_case(seed: int, t: int, n: int, k: int, numerics: MoENumerics, d=12, h=20, x_scale=1.5):
    cfg = MoEConfig(d_model=d, d_hidden=h, n_experts=n, top_k=k, numerics=numerics)
    rng = np.random.default_rng(seed)
    w = MoEWeights.random(cfg, rng, bias_std=0.3)
    x = numerics.act.quantize(rng.normal(0.0, x_scale, (t, d)), numerics.rounding)
    return cfg, w, x


def assert_matches_reference(res, ref):
    assert torch.equal(torch.from_numpy(np.array(res.output)), ref["output"])
    assert torch.equal(torch.from_numpy(np.array(res.logits)), ref["logits"])
    assert torch.equal(torch.from_numpy(np.array(res.expert_of_token)), ref["experts"])
    assert torch.equal(torch.from_numpy(np.array(res.scores)), ref["scores"])
    assert dict(res.overflow_counts) == ref["overflow"]
    assert dict(res.saturation_counts) == ref["saturation"]


CASES = [
    (t, n, k)
    for t in (1, 7, 64, 257)
    for n, k in ((1, 1), (4, 1), (4, 2), (4, 4), (16, 1), (16, 2), (16, 4))
]


# ----------------------------------------------------------------------------------------
# bit-exactness


@pytest.mark.parametrize("name", list(NUMERICS))
@pytest.mark.parametrize("t,n,k", CASES)
def test_schedules_equal_each_other_and_torch(name, t, n, k):
    for seed in (1000 * t + 10 * n + k, 7 + t):
        cfg, w, x = make_case(seed, t, n, k, NUMERICS[name])
        tok = moe_forward(x, w, cfg, schedule="token", cache_slots=max(1, n // 2))
        reo = moe_forward(x, w, cfg, schedule="reorder")
        assert np.array_equal(tok.output, reo.output)
        assert dict(tok.saturation_counts) == dict(reo.saturation_counts)
        ref = torch_reference(x, w, cfg)
        assert_matches_reference(tok, ref)
        assert_matches_reference(reo, ref)


def test_narrow_cases_exercise_ties_and_saturation():
    """Guards the parametrised test above against testing only easy paths."""
    nm = NUMERICS["narrow_half_away_gelu"]
    cfg, w, x = make_case(3, 257, 16, 4, nm, x_scale=20.0)
    r = moe_forward(x, w, cfg, schedule="reorder")
    lg = np.asarray(r.logits)
    assert any(len(set(row)) < len(row) for row in lg.tolist())  # tied logits occur
    assert sum(r.saturation_counts.values()) > 0
    assert_matches_reference(r, torch_reference(x, w, cfg))


def test_tie_break_lower_index_wins():
    cfg = MoEConfig(d_model=4, d_hidden=4, n_experts=8, top_k=3)
    nm = cfg.numerics
    gate = np.zeros((4, 8), dtype=np.int64)
    gate[0, [5, 6]] = 1 << nm.weight.frac_bits  # experts 5 and 6 tie on top
    w = MoEWeights(gate, np.zeros((8, 4, 4), np.int64), np.zeros((8, 4), np.int64),
                   np.zeros((8, 4, 4), np.int64), np.zeros((8, 4), np.int64))
    x = nm.act.quantize(np.array([[1.0, 0, 0, 0], [0, 0, 0, 0]]))
    r = route(x, w.gate, 3, nm)
    assert r.experts.tolist() == [[5, 6, 0], [0, 1, 2]]
    # all-equal logits: every expert gets exactly 1/8 of 2**15
    assert r.scores[1].tolist() == [1 << 12] * 3


def test_route_matches_forward():
    cfg, w, x = make_case(5, 64, 16, 4, MoENumerics())
    r = route(x, w.gate, 4, cfg.numerics)
    f = moe_forward(x, w, cfg, schedule="reorder")
    assert np.array_equal(r.logits, f.logits) and np.array_equal(r.experts, f.expert_of_token)
    assert np.array_equal(r.scores, f.scores)


# ----------------------------------------------------------------------------------------
# statistics


def _lru_misses(seq, slots):
    cache, order = [], []
    for e in seq:
        if e in cache:
            cache.remove(e)
        else:
            if len(cache) == slots:
                cache.pop(0)
            order.append(e)
        cache.append(e)
    return order


@pytest.mark.parametrize("slots", [1, 2, 5, 16])
def test_load_statistics(slots):
    cfg, w, x = make_case(11, 257, 16, 4, MoENumerics())
    tok = moe_forward(x, w, cfg, schedule="token", cache_slots=slots)
    reo = moe_forward(x, w, cfg, schedule="reorder")
    seq = np.asarray(tok.expert_of_token).reshape(-1).tolist()
    assert tok.load_order.tolist() == _lru_misses(seq, slots)
    assert tok.weight_loads + tok.cache_hits == 257 * 4
    active = np.flatnonzero(reo.queue_lengths)
    assert reo.load_order.tolist() == active.tolist() and reo.weight_loads == active.size
    assert reo.queue_lengths.sum() == 257 * 4 and np.array_equal(tok.queue_lengths, reo.queue_lengths)
    assert reo.weight_bytes_loaded == active.size * (2 * 12 * 20 * 16 + (12 + 20) * 16) // 8
    if slots == 16:
        assert tok.weight_loads == active.size  # all on chip: compulsory misses only
    if slots == 1:
        assert tok.weight_loads > reo.weight_loads


def test_queues_in_token_order_with_scores():
    experts = np.array([[2, 0], [0, 1], [2, 1]])
    scores = np.array([[5, 6], [7, 8], [9, 10]])
    q, s = build_queues(experts, scores, 4)
    assert [a.tolist() for a in q] == [[0, 1], [1, 2], [0, 2], []]
    assert [a.tolist() for a in s] == [[6, 7], [8, 10], [5, 9], []]


# ----------------------------------------------------------------------------------------
# overflow


def _overflow_case():
    nm = MoENumerics(acc_bits=40)
    cfg = MoEConfig(d_model=8, d_hidden=8, n_experts=4, top_k=2, numerics=nm)
    rng = np.random.default_rng(0)
    w = MoEWeights.random(cfg, rng)
    # near-full-scale activations and weights: |sum| >> 2**39 / 2**36 = 8
    x = np.full((5, 8), nm.act.max_code // 2, dtype=np.int64)
    x[1] = -x[1]
    big = np.where(np.asarray(w.w1) >= 0, nm.weight.max_code, nm.weight.min_code)
    w = MoEWeights(w.gate, big, w.b1, w.w2, w.b2)
    return cfg, w, x


def test_overflow_raises_with_stage():
    cfg, w, x = _overflow_case()
    for schedule in ("token", "reorder"):
        with pytest.raises(AccumulatorOverflowError, match="accumulator overflows acc_bits=40"):
            moe_forward(x, w, cfg, schedule=schedule)


def test_overflow_wrap_is_reported_and_bit_exact():
    cfg, w, x = _overflow_case()
    nm = MoENumerics(acc_bits=40, on_overflow=OverflowMode.WRAP)
    cfg = MoEConfig(d_model=8, d_hidden=8, n_experts=4, top_k=2, numerics=nm)
    tok = moe_forward(x, w, cfg, schedule="token", cache_slots=1)
    reo = moe_forward(x, w, cfg, schedule="reorder")
    assert tok.overflow_counts["fc1"] > 0 and tok.overflow_counts["gate"] > 0
    assert dict(tok.overflow_counts) == dict(reo.overflow_counts)
    assert np.array_equal(tok.output, reo.output)
    assert_matches_reference(reo, torch_reference(x, w, cfg))


def test_no_overflow_at_default_width_on_typical_data():
    cfg, w, x = make_case(2, 64, 16, 4, MoENumerics())
    r = moe_forward(x, w, cfg, schedule="reorder")
    assert sum(r.overflow_counts.values()) == 0


# ----------------------------------------------------------------------------------------
# approximation quality of the integer nonlinearities (not bit-exactness)


@pytest.mark.parametrize("rounding", ["floor", "half_away"])
@pytest.mark.parametrize("exp_frac_bits", [16, 20])
def test_int_softmax_close_to_float(rounding, exp_frac_bits):
    # Error budget (derived, not measured): score LSB 2**-15; each exponential
    # loses <= 2 LSB of 2**-E to the interpolation and 2**-q shifts, so the sum
    # S (>= 1) is off by <= 2N * 2**-E and p by as much; relative error of one
    # exponential <= 1.5e-5 (LUT, 65 entries: (ln2/64)**2/8) + 1.1e-5 (t keeps
    # 16 fraction bits: ln2 * 2**-16) + 1.2e-5 (LOG2E_Q16 error 5.8e-7 times
    # |x| <= 20 here).
    rng = np.random.default_rng(0)
    nm = MoENumerics()
    n = 16
    z = rng.normal(0, 3, (500, n))
    zq = nm.logit.quantize(z)
    p = int_softmax(zq, nm.logit.frac_bits, 15, exp_frac_bits, 6, rounding) / 2.0**15
    zf = nm.logit.to_float(zq)
    assert (zf.max(1) - zf.min(1)).max() <= 20
    pf = np.exp(zf - zf.max(1, keepdims=True))
    pf /= pf.sum(1, keepdims=True)
    tol = 2**-15 + (2 * n + 2) * 2.0**-exp_frac_bits + 2 * (1.5e-5 + 1.1e-5 + 1.2e-5)
    assert np.abs(p - pf).max() < tol


def test_int_gelu_close_to_float():
    # Edge-MoE's table: step 1/32, |delta''| <= 0.8 -> interpolation error
    # <= (1/32)**2 / 8 * 0.8 ~ 1e-4; beyond 5.5 the dropped delta is < 2e-7.
    f = 22
    x = np.arange(-8 << f, 8 << f, 997, dtype=np.int64)
    y = int_gelu(x, f, "floor") / 2.0**f
    xf = x / 2.0**f
    ref = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in xf])
    assert np.abs(y - ref).max() < 1.2e-4


# ----------------------------------------------------------------------------------------
# fixed-point format


def test_fixed_point_quantize_rounding_and_saturation():
    q = FixedPoint(8, 4)  # 4 fraction bits, codes -128..127
    x = np.array([0.03125, -0.03125, 0.09375, -0.09375, 100.0, -100.0, 7.9375])
    assert q.quantize(x, "floor").tolist() == [0, -1, 1, -2, 127, -128, 127]
    assert q.quantize(x, "half_away").tolist() == [1, -1, 2, -2, 127, -128, 127]
    assert q.to_float(np.array([127, -128])).tolist() == [7.9375, -8.0]
    u = FixedPoint(16, 1, signed=False)
    assert (u.min_code, u.max_code, u.frac_bits, str(u)) == (0, 65535, 15, "ap_ufixed<16,1>")


def test_shift_div_rescale_rounding():
    v = np.array([5, -5, 6, -6, 7, -7])
    assert shift_round(v, 1, "floor").tolist() == [2, -3, 3, -3, 3, -4]
    assert shift_round(v, 1, "half_away").tolist() == [3, -3, 3, -3, 4, -4]
    assert shift_round(v, 0, "half_away").tolist() == v.tolist()
    assert div_round(np.array([5, 4]), np.array([2, 3]), "floor").tolist() == [2, 1]
    assert div_round(np.array([5, 4]), np.array([2, 3]), "half_away").tolist() == [3, 1]
    q = FixedPoint(8, 4)
    acc = np.array([1000, -1000, 100000])  # 10 fraction bits -> 4: divide by 64
    assert rescale(acc, 10, q, "floor").tolist() == [15, -16, 127]
    assert rescale(acc, 10, q, "half_away").tolist() == [16, -16, 127]


@pytest.mark.parametrize(
    "args",
    [(0, 0), (1, 1), (63, 10), (8, 9), (8, -1), (8.0, 2), (True, 1)],
)
def test_fixed_point_rejects_bad_formats(args):
    with pytest.raises(ValueError):
        FixedPoint(*args)


# ----------------------------------------------------------------------------------------
# bad input


def test_bad_config_and_inputs_raise_value_error():
    with pytest.raises(ValueError, match="top_k=5 exceeds n_experts=4"):
        MoEConfig(d_model=8, d_hidden=8, n_experts=4, top_k=5)
    with pytest.raises(ValueError, match="rounding"):
        MoENumerics(rounding="nearest")
    with pytest.raises(ValueError, match="cannot represent 1.0"):
        MoENumerics(score=FixedPoint(16, 0, signed=False))
    with pytest.raises(ValueError, match="fraction bits"):
        MoENumerics(logit=FixedPoint(40, 1))
    with pytest.raises(ValueError, match="exceeds 2\\*\\*62"):
        MoEConfig(d_model=1 << 20, d_hidden=8, n_experts=4, top_k=1,
                  numerics=MoENumerics(act=FixedPoint(44, 10), logit=FixedPoint(32, 10)))
    cfg, w, x = make_case(0, 7, 4, 2, MoENumerics())
    with pytest.raises(ValueError, match="x_q has shape"):
        moe_forward(x[:, :5], w, cfg)
    with pytest.raises(ValueError, match="integer codes"):
        moe_forward(x.astype(np.float64), w, cfg)
    bad = x.copy()
    bad[2, 3] = cfg.numerics.act.max_code + 1
    with pytest.raises(ValueError, match=r"x_q\[2, 3\]"):
        moe_forward(bad, w, cfg)
    w_bad = MoEWeights(w.gate[:, :3], w.w1, w.b1, w.w2, w.b2)
    with pytest.raises(ValueError, match="MoEWeights.gate has shape"):
        moe_forward(x, w_bad, cfg)
    with pytest.raises(ValueError, match="schedule='expert'"):
        moe_forward(x, w, cfg, schedule="expert")
    with pytest.raises(ValueError, match="cache_slots"):
        moe_forward(x, w, cfg, schedule="reorder", cache_slots=2)
    with pytest.raises(ValueError, match="cache_slots=0"):
        moe_forward(x, w, cfg, schedule="token", cache_slots=0)
    with pytest.raises(ValueError, match="k=5 out of range"):
        route(x, w.gate, 5)
    with pytest.raises(ValueError, match="their d must match"):
        route(x, w.gate[:6], 1)
    with pytest.raises(ValueError, match="gate_w has shape"):
        route(x, w.gate[0], 1)
