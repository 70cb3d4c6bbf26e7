"""rtl_models.ternary against torch references (the math of ridgerchu/matmulfreellm at a016f72
and of its ``bitblas`` branch).

Bit-exact (torch.equal): RMSNorm output, q, s_x, t, beta, acc and the dequantized output,
against a torch reference written here in the same op order. Tolerance-checked (bounds
stated at each test): the released fake-quant path, torch's own mean/sqrt, and the nonlinear
MLGRU/GLU parts (exp-based sigmoid/SiLU differ by a few ulp between numpy and torch).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rtl_models.ternary import (
    AccumulatorOverflowError,
    BitLinearConfig,
    BitLinearParams,
    MLGRUParams,
    StateOverflowError,
    StatePrecision,
    TernaryError,
    TernaryWeights,
    accumulate,
    bitlinear,
    bitlinear_trace,
    dequantize,
    gated_rmsnorm,
    glu,
    layer_lower_bounds,
    mlgru_sequence,
    mlgru_step,
    op_counts,
    pack_ternary,
    quantize_activations,
    required_acc_bits,
    rmsnorm,
    sigmoid,
    swiglu,
    ternarize,
    unpack_ternary,
)
from rtl_models.ternary._kernels import accumulate_packed

U32 = 2.0 ** -24  # float32 unit roundoff


def T(a):
    """numpy -> torch (copy, so read-only model arrays are fine)."""
    return torch.from_numpy(np.array(a, copy=True))


# --- torch references, same op order as the model -----------------------------------------

def ref_rmsnorm(x, gamma, eps=1e-6):
    """Released rms_norm_ref order with two reductions pinned: the sum of squares is a
    sequential float32 loop, and sqrt is IEEE (via float64: exact, 53 >= 2*24 + 2), because
    torch 2.13's CPU float32 sqrt is off by 1 ulp for ~17% of inputs (measured)."""
    sq = x.square()
    s = torch.zeros(x.shape[:-1], dtype=torch.float32)
    for k in range(x.shape[-1]):
        s = s + sq[..., k]
    rstd = 1 / torch.sqrt((s / x.shape[-1] + eps).double()).float()
    y = x * rstd[..., None]
    return y * gamma if gamma is not None else y


def ref_act_quant(y, rounding):
    """Released activation_quant (``127.0 / max`` is reciprocal()*127 in torch)."""
    s = 127.0 / y.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    v = y * s
    if rounding == "half_even":
        r = v.round()
    else:  # libdevice roundf, evaluated exactly in float64 (|v| + 0.5 is exact there)
        r = (torch.sign(v.double()) * torch.floor(v.double().abs() + 0.5)).float()
    return r.clamp(-128, 127), s[..., 0]


def exact_beta(w):
    return torch.tensor(math.fsum(w.abs().double().flatten().tolist()) / w.numel()).float().clamp(min=1e-5)


def ref_ternary(w, beta):
    """Released weight_quant with a given beta: t = clamp(round(w * (1/beta)), -1, 1)."""
    s_w = 1.0 / beta
    return (w * s_w).round().clamp(-1, 1), s_w


def ref_bitlinear(x, gamma, w, rounding="half_even", eps=1e-6):
    """bitblas forward_fp32_simulated in fp32: acc = F.linear(q, t); out = acc / s_x / s_w."""
    y = ref_rmsnorm(x, gamma, eps)
    q, s_x = ref_act_quant(y, rounding)
    t, s_w = ref_ternary(w, exact_beta(w))
    acc = F.linear(q, t)  # exact: integers, |partial sums| < 2**24
    out = acc / s_x[..., None] / s_w
    return dict(y=y, q=q, s_x=s_x, t=t, s_w=s_w, acc=acc, out=out)


def make_layer(rng, n, k, wscale=0.02):
    w = (rng.standard_normal((n, k)) * wscale).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, k).astype(np.float32)
    return w, gamma, BitLinearParams.from_float(w, gamma)


def rand_x(rng, shape):
    # rows with very different magnitudes, like residual-stream activations
    return (rng.standard_normal(shape) * rng.uniform(0.01, 20.0, shape[:-1] + (1,))).astype(np.float32)


# --- BitLinear: bit-exact ---------------------------------------------------------------

@pytest.mark.parametrize("rounding", ["half_even", "half_away"])
def test_bitlinear_bit_exact_vs_torch(rounding):
    rng = np.random.default_rng(1)
    w, gamma, layer = make_layer(rng, 96, 256)
    x = rand_x(rng, (4, 64, 256))
    tr = bitlinear_trace(x, layer, BitLinearConfig(rounding=rounding, acc_bits=24))
    ref = ref_bitlinear(T(x), T(gamma), T(w), rounding)
    assert torch.equal(T(tr.y), ref["y"])
    assert torch.equal(T(tr.s_x), ref["s_x"])
    assert torch.equal(T(tr.q), ref["q"].to(torch.int8))
    assert torch.equal(T(layer.weights.unpack()), ref["t"].to(torch.int8))
    assert torch.equal(T(np.asarray(layer.weights.s_w)), ref["s_w"])
    assert torch.equal(T(tr.acc.acc), ref["acc"].to(torch.int64))
    assert torch.equal(T(tr.out), ref["out"])
    assert not tr.acc.any_overflow
    assert np.abs(tr.q).max() == 127 and tr.q.min() >= -127  # -128 never occurs: scale = 127/max


def test_rmsnorm_eps_and_no_gamma_bit_exact():
    rng = np.random.default_rng(2)
    x = rand_x(rng, (32, 100)) * np.float32(1e-3)  # var ~ eps: eps matters
    for eps in (1e-6, 1e-8, 0.0):
        assert torch.equal(T(rmsnorm(x, None, eps)), ref_rmsnorm(T(x), None, eps))


def test_rmsnorm_vs_released_rms_norm_ref_within_bound():
    """The released rms_norm_ref (torch mean + torch sqrt) differs from the pinned order by
    the summation order and the 1-ulp sqrt: |dy|/|y| <= (K + 4) * u (Higham's bound on a
    reordered float32 sum of K positive terms, plus a few roundings)."""
    rng = np.random.default_rng(3)
    k = 256
    x = rand_x(rng, (128, k))
    gamma = rng.uniform(0.5, 1.5, k).astype(np.float32)
    released = T(x) * (1 / torch.sqrt(T(x).square().mean(-1, keepdim=True) + 1e-6)) * T(gamma)
    ours = rmsnorm(x, gamma)
    rel = np.abs(ours - released.numpy()) / np.abs(released.numpy()).clip(min=1e-30)
    assert rel.max() <= (k + 4) * U32


def test_rounding_modes_on_crafted_ties():
    """A row with max|y| = 127 has s_x = fl(fl(1/127) * 127) = 1 exactly, so y * s_x = y and
    y = n + 0.5 are exact ties: half_even and half_away must split exactly as torch.round
    and libdevice roundf do."""
    below_half = np.nextafter(np.float32(0.5), np.float32(0))  # 0.49999997: floor(v + 0.5) pitfall
    ties = np.arange(-127, 127, dtype=np.float32) + np.float32(0.5)
    y = np.concatenate([[127.0], ties, [below_half, -below_half, 0.0]]).astype(np.float32)[None, :]
    even = quantize_activations(y, "half_even")
    away = quantize_activations(y, "half_away")
    assert even.s_x[0] == np.float32(1.0) == away.s_x[0]
    for mode, got in (("half_even", even), ("half_away", away)):
        q_ref, s_ref = ref_act_quant(T(y), mode)
        assert torch.equal(T(got.q.astype(np.float32)), q_ref)
        assert torch.equal(T(got.s_x), s_ref)
    tie_cols = slice(1, 1 + ties.size)
    assert np.array_equal(away.q[0, tie_cols], (np.sign(ties) * (np.abs(ties) + 0.5)).astype(np.int8))
    assert np.array_equal(even.q[0, tie_cols], np.rint(ties).astype(np.int8))
    assert np.all(even.q[0, tie_cols] % 2 == 0)
    # they differ exactly on the ties whose truncation is even (2.5 -> 2 vs 3; 3.5 -> 4 vs 4)
    assert np.array_equal(even.q[0, tie_cols] != away.q[0, tie_cols], np.trunc(ties) % 2 == 0)
    assert np.all(away.q[0, -3:] == 0) and np.all(even.q[0, -3:] == 0)


def test_all_zero_row():
    q, s_x = quantize_activations(np.zeros((2, 8), np.float32))
    assert np.all(q == 0) and s_x[0] == np.float32(1 / np.float32(1e-5)) * np.float32(127)


# --- ternary weights and packing -----------------------------------------------------------

def test_ternarize_matches_torch():
    rng = np.random.default_rng(4)
    w = (rng.standard_normal((300, 257)) * 0.05).astype(np.float32)
    tw = ternarize(w)
    beta = exact_beta(T(w))
    assert torch.equal(T(np.asarray(tw.beta)), beta)
    t_ref, _ = ref_ternary(T(w), beta)
    assert torch.equal(T(tw.unpack().astype(np.float32)), t_ref)
    # torch's own float32 mean (cascade sum) is within a log2(n)-ulp bound of the exact mean,
    # and here gives the same t as the released weight_quant
    torch_mean = T(w).abs().mean()
    assert abs(torch_mean.item() - float(tw.beta)) <= math.ceil(math.log2(w.size)) * U32 * float(tw.beta)
    released_t = (T(w) * (1.0 / torch_mean.clamp(min=1e-5))).round().clamp(-1, 1)
    assert torch.equal(T(tw.unpack().astype(np.float32)), released_t)
    # fake-quant weight t / s_w as the master branch computes it
    assert torch.equal(T(tw.dequantized()), t_ref / (1.0 / beta))


def test_pack_roundtrip_and_encoding():
    rng = np.random.default_rng(5)
    for k in (1, 3, 4, 5, 63, 64, 65):
        t = rng.integers(-1, 2, size=(7, k)).astype(np.int8)
        codes = pack_ternary(t)
        assert codes.shape == (7, -(-k // 4)) and codes.dtype == np.uint8
        assert np.array_equal(unpack_ternary(codes, k), t)
    # 00 = 0, 01 = +1, 11 = -1, LSB first: [+1, -1, 0, +1] -> 0b01_00_11_01
    assert pack_ternary(np.array([[1, -1, 0, 1]]))[0, 0] == 0b01001101
    with pytest.raises(TernaryError, match="0b10"):
        unpack_ternary(np.array([[0b10]], dtype=np.uint8), 1)
    with pytest.raises(TernaryError, match="padding"):
        unpack_ternary(np.array([[0b01000000]], dtype=np.uint8), 3)
    with pytest.raises(TernaryError):
        pack_ternary(np.array([[2]]))
    tw = TernaryWeights.from_ternary(np.array([[1, -1, 0]]), 0.5)
    assert tw.codes.flags.writeable is False and tw.s_w == np.float32(2.0)


# --- accumulator --------------------------------------------------------------------------

def slow_accumulate(q, t, acc_bits):
    """Plain numpy reference for the numba kernel: int64 products, sequential partial sums."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    prods = q.astype(np.int64)[:, None, :] * t.astype(np.int64)[None, :, :]
    partial = np.cumsum(prods, axis=-1)
    bad = ((partial < lo) | (partial > hi)) & (t[None] != 0)
    first = np.where(bad.any(-1), bad.argmax(-1), -1)
    return partial[..., -1], first


def test_kernel_matches_slow_reference_and_fp32_gemm():
    rng = np.random.default_rng(6)
    for k in (1, 5, 64, 131):
        q = rng.integers(-128, 128, size=(9, k)).astype(np.int8)
        t = rng.integers(-1, 2, size=(11, k)).astype(np.int8)
        tw = TernaryWeights.from_ternary(t, 1.0)
        for bits in (8, 12, 24):
            res = accumulate(q, tw, bits, "flag")
            acc_ref, first_ref = slow_accumulate(q, t, bits)
            assert np.array_equal(res.acc, acc_ref) and np.array_equal(res.first_overflow_k, first_ref)
        assert torch.equal(T(res.acc.astype(np.float32)), F.linear(T(q.astype(np.float32)), T(t.astype(np.float32))))
    # the raw kernel too (public wrapper validated above)
    acc = np.empty((9, 11), np.int64)
    first = np.empty((9, 11), np.int64)
    accumulate_packed(q, pack_ternary(t), k, -(1 << 23), (1 << 23) - 1, acc, first)
    assert np.array_equal(acc, acc_ref)


def test_overflow_detection_narrow_accumulator():
    k = 64
    q = np.full((1, k), 127, np.int8)
    t = np.ones((2, k), np.int8)
    t[1, 32:] = -1  # partial sums reach 32*127 = 4064, final sum 0
    tw = TernaryWeights.from_ternary(t, 1.0)
    with pytest.raises(AccumulatorOverflowError, match="12-bit accumulator overflows at token 0, output 0, k=16"):
        accumulate(q, tw, 12)
    res = accumulate(q, tw, 12, "flag")
    assert res.overflow.tolist() == [[True, True]]
    assert res.first_overflow_k.tolist() == [[16, 16]]  # 17 * 127 = 2159 > 2047 = 2**11 - 1
    assert res.acc.tolist() == [[127 * 64, 0]]  # exact sums, never silently wrapped
    assert res.final_overflow.tolist() == [[True, False]]
    assert res.wrapped().tolist() == [[127 * 64 - 4096 * 2, 0]]
    # bitlinear with an overflowing accumulator raises by default, flags on request
    layer = BitLinearParams(gamma=np.ones(k, np.float32), weights=tw)
    with pytest.raises(AccumulatorOverflowError):
        bitlinear(np.ones((1, k), np.float32), layer, BitLinearConfig(acc_bits=12))
    tr = bitlinear_trace(np.ones((1, k), np.float32), layer, BitLinearConfig(acc_bits=12, on_overflow="flag"))
    assert tr.acc.any_overflow


def test_required_acc_bits_is_tight():
    assert required_acc_bits(2048) == 19 and 127 * 2048 == 260_096 < 2 ** 18
    assert required_acc_bits(8256) == 21 and required_acc_bits(8257) == 22  # 20 bits + sign
    assert required_acc_bits(64, qmax=128) == 15  # (-128) * (-1) * 64 = +8192 needs 15 bits
    for k in (1, 16, 17, 100, 2048):
        bits = required_acc_bits(k)
        q = np.full((1, k), 127, np.int8)
        for sign in (1, -1):
            tw = TernaryWeights.from_ternary(np.full((1, k), sign), 1.0)
            assert not accumulate(q, tw, bits).any_overflow
            assert accumulate(q, tw, bits - 1, "flag").any_overflow


def test_dequantize_and_op_counts():
    acc = np.array([[3, -4]], np.int64)
    out = dequantize(acc, np.array([np.float32(1.5)]), np.float32(0.25))
    assert out.dtype == np.float32 and np.array_equal(out, acc.astype(np.float32) / np.float32(1.5) / np.float32(0.25))
    with pytest.raises(TernaryError, match="2\\*\\*24"):
        dequantize(np.array([[1 << 25]]), np.ones(1, np.float32), 1.0)
    tw = TernaryWeights.from_ternary(np.array([[1, -1, 0, 1], [0, 0, -1, 1]]), 1.0)
    c = op_counts(tw, tokens=3)
    assert (c.adds, c.subs, c.skips, c.dequant_divides, c.total_weight_visits) == (9, 6, 9, 12, 24)


def test_fake_quant_path_within_stated_bound():
    """Master-branch fake quant F.linear(q/s_x, t/s_w) vs the integer path acc/s_x/s_w.

    Not bitwise equal (the fake-quant path rounds q/s_x and t/s_w first).
    Bound per output j: |diff_j| <= (K + 4) * u * S_j / (s_x * s_w),
    S_j = sum_k |q_k t_jk| (standard float32 dot-product error for any summation order,
    plus the rounding of q/s_x, t/s_w and the two divisions); u = 2**-24."""
    rng = np.random.default_rng(7)
    k = 512
    w, gamma, layer = make_layer(rng, 128, k)
    x = rand_x(rng, (64, k))
    tr = bitlinear_trace(x, layer)
    q, t = T(tr.q.astype(np.float32)), T(layer.weights.unpack().astype(np.float32))
    s_x, s_w = T(tr.s_x)[:, None], float(layer.weights.s_w)
    fake = F.linear(q / s_x, t / s_w).numpy()
    s_abs = F.linear(q.abs(), t.abs()).numpy()
    bound = (k + 4) * U32 * s_abs / (tr.s_x[:, None] * np.float32(s_w))
    diff = np.abs(fake - tr.out)
    assert np.all(diff <= bound)
    assert np.median(diff / np.abs(tr.out).clip(min=1e-30)) < 1e-6  # earlier fp32 emulation: 3e-7


def released_rms_norm_ref(x, weight, eps=1e-6):
    """mmfreelm/modules/layernorm.py rms_norm_ref (no bias, no residual), verbatim math."""
    rstd = 1 / torch.sqrt((x.square()).mean(dim=-1, keepdim=True) + eps)
    return x * rstd * weight


def released_activation_quant(x):
    """mmfreelm/ops/fusedbitnet.py activation_quant, verbatim."""
    scale = 127.0 / x.abs().max(dim=-1, keepdim=True).values.clamp_(min=1e-5)
    return (x * scale).round().clamp_(-128, 127) / scale


def released_weight_quant(w):
    """mmfreelm/ops/fusedbitnet.py weight_quant, verbatim."""
    scale = 1.0 / w.abs().mean().clamp_(min=1e-5)
    return (w * scale).round().clamp_(-1, 1) / scale


def test_released_bitlinear_path_within_stated_bound():
    """The released pure-torch path end to end (rms_norm_ref eps 1e-6 -> activation_quant ->
    weight_quant -> F.linear) vs the integer model. Its own mean/sqrt move y by <= (K+4)u
    relative (see the rmsnorm bound), which moves s_x by as much and can flip an int8 code
    sitting within that distance of a .5 boundary. Bound per output:
    (K+4)u * S_j / (s_x s_w)  [fake-quant GEMM]  +  2 (K+4)u |out_j|  [s_x, beta]
    +  (# flipped codes of the token) * beta / s_x  [one LSB each]."""
    rng = np.random.default_rng(14)
    k = 512
    w, gamma, layer = make_layer(rng, 128, k)
    x = rand_x(rng, (64, k))
    tr = bitlinear_trace(x, layer)
    y_rel = released_rms_norm_ref(T(x), T(gamma))
    out_rel = F.linear(released_activation_quant(y_rel), released_weight_quant(T(w))).numpy()
    q_rel, _ = ref_act_quant(y_rel, "half_even")
    flips = np.abs(tr.q.astype(np.int64) - q_rel.numpy().astype(np.int64))
    assert flips.max() <= 1 and flips.mean() < 1e-3
    t = layer.weights.unpack()
    s_abs = np.abs(tr.q.astype(np.int64)) @ np.abs(t.astype(np.int64)).T
    beta = float(layer.weights.beta)
    bound = ((k + 4) * U32 * s_abs * beta / tr.s_x[:, None] + 2 * (k + 4) * U32 * np.abs(tr.out)
             + flips.sum(-1, keepdims=True) * beta / tr.s_x[:, None])
    assert np.all(np.abs(out_rel - tr.out) <= bound)


# --- MLGRU and GLU ------------------------------------------------------------------------

def ref_bitlinear_out(x, layer: BitLinearParams):
    """Same-op-order torch BitLinear on the layer's stored t and beta."""
    y = ref_rmsnorm(x, T(layer.gamma))
    q, s_x = ref_act_quant(y, "half_even")
    t = T(layer.weights.unpack().astype(np.float32))
    s_w = 1.0 / torch.tensor(layer.weights.beta)
    return F.linear(q, t) / s_x[..., None] / s_w, q


def ref_mlgru(x, p: MLGRUParams):
    """HGRNBitAttention.forward (master @ a016f72) on CPU: sigmoid, lower bound, jiterator
    swiglu x*y/(1+exp(-x)), naive_recurrent_hgrn in fp32, rms_norm_ref + swish gate."""
    i, _ = ref_bitlinear_out(x, p.i_proj)
    f, _ = ref_bitlinear_out(x, p.f_proj)
    g, _ = ref_bitlinear_out(x, p.g_proj)
    f = f.sigmoid()
    if p.lower_bound is not None:
        lb = T(p.lower_bound)
        f = lb + (1 - lb) * f
    c = i * (1 - f) / (1 + torch.exp(-i))
    h = torch.zeros(x.shape[0], x.shape[-1])
    hs = []
    for step in range(x.shape[1]):
        h = f[:, step] * h + c[:, step]
        hs.append(h)
    h = torch.stack(hs, 1)
    rstd = 1 / torch.sqrt(g.square().mean(-1, keepdim=True) + 1e-6)
    o = g * rstd * T(p.g_norm_gamma)
    o = o * h * torch.sigmoid(h)
    out, q_o = ref_bitlinear_out(o, p.o_proj)
    return dict(i=i, f=f, c=c, h=h, o=o, out=out, q_o=q_o)


def make_mlgru(rng, d, lower_bound=None):
    layers = {name: make_layer(rng, d, d)[2] for name in ("i_proj", "f_proj", "g_proj", "o_proj")}
    return MLGRUParams(**layers, g_norm_gamma=rng.uniform(0.5, 1.5, d).astype(np.float32), lower_bound=lower_bound)


def requant_bound(model_q, ref_q, s_x, beta, out_ref, rtol):
    """Tolerance for outputs behind a re-quantizing BitLinear: rtol * |out| plus, per token,
    one quantization step (beta / s_x) for each int8 code that flipped by one LSB because its
    input sat within a few ulp of a .5 rounding boundary."""
    flips = np.abs(model_q.astype(np.int64) - ref_q.numpy().astype(np.int64))
    assert flips.max() <= 1 and flips.mean() < 0.01
    return rtol * np.abs(out_ref) + (flips.sum(-1) * beta / s_x)[..., None] + 1e-30


def test_mlgru_vs_torch_reference():
    """Tolerances (u = 2**-24):
    * i/f/g raw BitLinear outputs: bit-exact (same input, integer path).
    * f = sigmoid: numpy's float32 exp is within 2 ulp and torch's within 1 ulp of exact
      (measured on 1e6 points), so sigmoids differ by <= ~4 ulp: rtol 1e-6 (measured 2.3e-7).
    * c = silu(i) * (1 - f): 1 - f turns f's <= 4 ulp (absolute <= 4u for f in [0.5, 1))
      into an absolute error, so |dc| <= 1e-6 |c| + 4u |silu(i)|.
    * h: each step injects <= ~2e-6 * max|h| (the c and f*h errors) and the error decays by
      f, so per channel |dh| <= 2e-6 * max|h| / (1 - max f).
    * o = (rmsnorm(g) * h) * sigmoid(h): rmsnorm's summation order (<= (K+4)u = 7.9e-6,
      see test_rmsnorm_vs_released_rms_norm_ref_within_bound) + the h bound + sigmoid
      ulps: 3e-5 of max|o| per token.
    * out: with equal int8 codes, out differs only through s_x, i.e. by the o tolerance
      (rtol 3e-5), plus one quantization step per code that flipped (requant_bound)."""
    rng = np.random.default_rng(8)
    d, steps = 128, 24
    lb = layer_lower_bounds(rng.standard_normal((4, d)).astype(np.float32))[2]
    p = make_mlgru(rng, d, lower_bound=lb)
    x = rand_x(rng, (3, steps, d))
    res = mlgru_sequence(x, p)
    ref = ref_mlgru(T(x), p)
    f = lb + (np.float32(1) - lb) * sigmoid(bitlinear(x, p.f_proj))
    i = bitlinear(x, p.i_proj)
    assert torch.equal(T(i), ref["i"])
    np.testing.assert_allclose(f, ref["f"].numpy(), rtol=1e-6, atol=0)
    c_ref = ref["c"].numpy()
    assert np.all(np.abs(swiglu(i, np.float32(1) - f) - c_ref) <= 1e-6 * np.abs(c_ref) + 4 * U32 * np.abs(swiglu(i, 1)))
    h_ref = ref["h"].numpy()
    h_tol = 2e-6 * np.abs(h_ref).max(1, keepdims=True) / (1 - f.max(1, keepdims=True))
    assert np.all(np.abs(res.states - h_ref) <= h_tol)
    assert np.array_equal(res.final_state, res.states[:, -1])
    o_model = gated_rmsnorm(bitlinear(x, p.g_proj), p.g_norm_gamma, res.states)
    o_ref = ref["o"].numpy()
    assert np.all(np.abs(o_model - o_ref) <= 3e-5 * np.abs(o_ref).max(-1, keepdims=True))
    tr = bitlinear_trace(o_model, p.o_proj)
    assert np.array_equal(tr.out, res.out)
    tol = requant_bound(tr.q, ref["q_o"], tr.s_x, float(p.o_proj.weights.beta), ref["out"].numpy(), 3e-5)
    assert np.all(np.abs(res.out - ref["out"].numpy()) <= tol)
    # the paper's gate sigma(g) * h would be far outside these tolerances
    paper_o = sigmoid(bitlinear(x, p.g_proj)) * res.states
    assert np.abs(paper_o - o_ref).max() > 100 * 3e-5 * np.abs(o_ref).max()


def test_mlgru_step_equals_sequence_and_layer0():
    rng = np.random.default_rng(9)
    p = make_mlgru(rng, 64)
    x = rand_x(rng, (2, 10, 64))
    for state in (StatePrecision(), StatePrecision(format="bf16")):
        seq = mlgru_sequence(x, p, state=state)
        h = np.zeros((2, 64), np.float32)
        for t in range(10):
            out_t, h = mlgru_step(x[:, t], h, p, state=state)
            assert np.array_equal(out_t, seq.out[:, t]) and np.array_equal(h, seq.states[:, t])
    # layer 0: LB_0 = 0 exactly, so applying it changes nothing
    assert np.all(layer_lower_bounds(rng.standard_normal((5, 64)))[0] == 0)
    p0 = MLGRUParams(i_proj=p.i_proj, f_proj=p.f_proj, g_proj=p.g_proj, o_proj=p.o_proj,
                     g_norm_gamma=p.g_norm_gamma, lower_bound=np.zeros(64, np.float32))
    assert np.array_equal(mlgru_sequence(x, p0).out, mlgru_sequence(x, p).out)


def test_layer_lower_bounds_vs_torch():
    """softmax + cumsum in float32; torch's cumsum and softmax sum in other orders: atol 4 ulp of 1."""
    rng = np.random.default_rng(10)
    lbp = rng.standard_normal((24, 256)).astype(np.float32)
    sm = T(lbp).softmax(0)
    ref = (sm.cumsum(0) - sm[0]).numpy()
    ours = layer_lower_bounds(lbp)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=4 * 2.0 ** -23)
    assert np.all(np.diff(ours, axis=0) >= 0) and ours.max() < 1
    np.testing.assert_allclose(layer_lower_bounds(np.zeros((4, 3))), np.arange(4)[:, None] / 4 * np.ones(3), atol=1e-7)


def test_glu_vs_torch_reference():
    """Tolerances: gate/up bit-exact (one beta for both halves); z = silu(gate) * up vs
    F.silu: <= ~4 ulp from exp/sigmoid (as for MLGRU): rtol 1e-6 (measured 2.5e-7); out:
    requant_bound with rtol 1e-5 (s_x shifts by the z error only)."""
    rng = np.random.default_rng(11)
    d, inter = 128, 256
    gate = make_layer(rng, 2 * inter, d)[2]
    down = make_layer(rng, d, inter)[2]
    x = rand_x(rng, (2, 16, d))
    out = glu(x, gate, down)
    y_ref, _ = ref_bitlinear_out(T(x), gate)
    g_ref, up_ref = y_ref.chunk(2, -1)
    z_ref = F.silu(g_ref) * up_ref
    y = bitlinear(x, gate)
    assert torch.equal(T(y), y_ref)
    z = swiglu(y[..., :inter], y[..., inter:])
    np.testing.assert_allclose(z, z_ref.numpy(), rtol=1e-6, atol=1e-30)
    out_ref, q_ref = ref_bitlinear_out(z_ref, down)
    tr = bitlinear_trace(z, down)
    assert np.array_equal(tr.out, out)
    tol = requant_bound(tr.q, q_ref, tr.s_x, float(down.weights.beta), out_ref.numpy(), 1e-5)
    assert np.all(np.abs(out - out_ref.numpy()) <= tol)


# --- state precision ----------------------------------------------------------------------

def test_state_rounding_matches_torch_casts():
    rng = np.random.default_rng(12)
    h = (rng.standard_normal(100_000) * np.exp(rng.uniform(-20, 12, 100_000))).astype(np.float32)
    h = np.concatenate([h, np.float32([0.0, -0.0, 65504.0, 65519.0, 1e-8, 3e-41, 3.38e38])])
    h16 = h[np.abs(h) < 65519.5]  # beyond this fp16 rounds to inf
    assert torch.equal(T(StatePrecision(format="fp16").round(h16)), T(h16).half().float())
    assert torch.equal(T(StatePrecision(format="bf16").round(h)), T(h).bfloat16().float())
    # values that would round to inf are reported, never stored silently
    with pytest.raises(StateOverflowError, match="fp16"):
        StatePrecision(format="fp16").round(np.float32([1.0, 65520.0]))
    with pytest.raises(StateOverflowError, match="bf16"):
        StatePrecision(format="bf16").round(np.float32([3.4e38]))
    fx = StatePrecision(format="fixed", int_bits=3, frac_bits=12)
    v = np.array([0.1, -3.99, 2.0 ** -13, 3 * 2.0 ** -13], np.float32)
    assert np.array_equal(fx.round(v), np.rint(v * 4096) / 4096)
    assert fx.round(v)[2] == 0 and fx.round(v)[3] == 2.0 ** -11  # half-even ties
    with pytest.raises(StateOverflowError):
        fx.round(np.array([8.0], np.float32))
    with pytest.raises(TernaryError):
        StatePrecision(format="fixed", int_bits=10, frac_bits=20)


def test_fp16_state_differs_from_fp32_within_bound():
    """fp16 state register vs fp32: e_t = f e_{t-1} + delta_t with |delta_t| <= (2^-11 + 3u)|h|,
    so |e| <= (2^-11 + 3u) * max|h| / (1 - max f) per channel; it must also be non-zero."""
    rng = np.random.default_rng(13)
    d, steps = 64, 48
    lb = layer_lower_bounds(rng.standard_normal((3, d)).astype(np.float32))[1]
    p = make_mlgru(rng, d, lower_bound=lb)
    x = rand_x(rng, (2, steps, d))
    h32 = mlgru_sequence(x, p).states
    h16 = mlgru_sequence(x, p, state=StatePrecision(format="fp16")).states
    f = lb + (1 - lb) * 1 / (1 + np.exp(-bitlinear(x, p.f_proj).astype(np.float64)))
    bound = (2.0 ** -11 + 3 * U32) * np.abs(h32).max(1) / (1 - f.max(1))
    err = np.abs(h16 - h32).max(1)
    assert np.all(err <= bound)
    # measured: max |h16 - h32| = 3.9e-4 of max|h| (bf16: 3.3e-3); it must be visible
    assert np.abs(h16 - h32).max() / np.abs(h32).max() > 2.0 ** -14


# --- input validation ---------------------------------------------------------------------

def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TernaryError, match="rounding"):
        BitLinearConfig(rounding="nearest")
    with pytest.raises(TernaryError, match="acc_bits"):
        BitLinearConfig(acc_bits=40)
    with pytest.raises(TernaryError, match="on_overflow"):
        BitLinearConfig(on_overflow="wrap")
    tw = TernaryWeights.from_ternary(np.zeros((2, 4)), 1.0)
    with pytest.raises(TernaryError, match="int8"):
        accumulate(np.zeros((1, 5), np.int8), tw)
    with pytest.raises(TernaryError, match="NaN"):
        rmsnorm(np.array([[np.nan, 1.0]]))
    with pytest.raises(TernaryError, match="gamma"):
        BitLinearParams(gamma=np.ones(3), weights=tw)
    with pytest.raises(TernaryError, match="beta"):
        TernaryWeights.from_ternary(np.zeros((1, 1)), 0.0)
