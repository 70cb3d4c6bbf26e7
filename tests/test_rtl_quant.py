"""Bit-exact tests of the torch-free quantizers (rtl_models/quant) against torch references.

Each reference below is a transcription of the torch code the sheet cites
(FQ-ViT observers/quantizers used by Agile-Quant, GPTQ's Quantizer, the
released token-importance loop), with the documented choices made explicit
(fsum-scored PTF choice, tie rule of the token selection).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from rtl_models.quant import (QuantError, cascade_prune, dequantize_weight_groups, fold_alpha_into_weight,
                              kept_token_counts, log2_dequantize, log2_quantize, minmax_calibrate,
                              minmax_dequantize, minmax_quantize, prune_ratio, ptf_calibrate, ptf_dequantize,
                              ptf_quantize, quantize_weight_groups, select_tokens, token_importance)

EPS32 = torch.finfo(torch.float32).eps


def qrange(bits, signed):
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


def t(x):
    return torch.from_numpy(np.array(x))  # keeps 0-d arrays 0-d


def outlier_activations(seed, shape=(2, 24, 16), dtype=np.float32, axis=-1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    gains = np.ones(shape[axis], dtype=dtype)
    gains[[1, 5 % gains.size, 11 % gains.size]] = [12.0, 40.0, 3.0]  # outlier channels, as in LLM activations
    bshape = [1] * len(shape)
    bshape[axis] = -1
    return x * gains.reshape(bshape) + dtype(0.3)


# ---------------------------------------------------------------- PTF (TRIP)
def ptf_reference(x, bits, K, signed, criterion="fsum"):
    """FQ-ViT PtfObserver + UniformQuantizer in torch (channel = last dim)."""
    qmin, qmax = qrange(bits, signed)
    max_t, min_t = x.max(), x.min()
    s_k = ((max_t - min_t) / float(qmax - qmin)).clamp(EPS32)
    scales = [s_k]
    for _ in range(K):
        scales.append(scales[-1] / 2)
    scales = scales[::-1]
    zp = (qmin - torch.round(min_t / s_k)).clamp(qmin, qmax)
    alpha = []
    for j in range(x.shape[-1]):
        data = x[..., j].unsqueeze(-1)
        scores = []
        for s in scales:
            dq = ((data / s + zp).round().clamp(qmin, qmax) - zp) * s
            if criterion == "fsum":
                e = (data - dq).double().flatten()
                scores.append(math.fsum((e * e).tolist()))
            else:  # the repo's lp_loss(..., reduction="all") in float32
                scores.append((data - dq).abs().pow(2.0).mean().item())
        alpha.append(scores.index(min(scores)))
    mask = torch.ones(x.shape[-1], dtype=x.dtype)
    for j, a in enumerate(alpha):
        mask[j] *= 2**a
    scale = scales[0] * mask
    codes = (x / scale + zp).round().clamp(qmin, qmax)
    return torch.tensor(alpha), scale, zp, codes, (codes - zp) * scale


@pytest.mark.parametrize("bits,K,signed", [(8, 4, False), (8, 3, True), (4, 4, False), (8, 0, False), (4, 1, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ptf_matches_torch_reference(bits, K, signed, dtype):
    x = outlier_activations(bits + K, dtype=dtype)
    p = ptf_calibrate(x, bits=bits, K=K, signed=signed)
    alpha, scale, zp, codes, deq = ptf_reference(t(x), bits, K, signed)
    assert torch.equal(t(p.alpha), alpha)
    assert torch.equal(t(p.scale), scale)
    assert torch.equal(t(p.zero_point), zp)
    q = ptf_quantize(x, p)
    assert torch.equal(t(q), codes.to(torch.int32))
    assert torch.equal(t(ptf_dequantize(q, p)), deq)
    assert np.all((0 <= p.alpha) & (p.alpha <= K))
    if K >= 3:
        assert len(set(p.alpha.tolist())) >= 2  # outlier channels really get other factors
    # the exact-sum choice agrees with the repo's float32-mean choice on this data
    alpha_repo = ptf_reference(t(x), bits, K, signed, criterion="repo")[0]
    assert torch.equal(t(p.alpha), alpha_repo)


def test_ptf_fold_alpha_into_weight_keeps_the_integer_gemm_exact():
    x = outlier_activations(3, shape=(20, 16))
    p = ptf_calibrate(x, bits=8, K=4)
    q = ptf_quantize(x, p).astype(np.int64) - int(p.zero_point)
    w = np.random.default_rng(4).integers(-8, 8, (16, 5))
    folded = fold_alpha_into_weight(w, p.alpha)
    ref = torch.matmul(t(q) * (2 ** t(p.alpha))[None, :], t(w))
    assert torch.equal(torch.matmul(t(q), t(folded)), ref)
    wf = w.astype(np.float32)
    assert np.array_equal(fold_alpha_into_weight(wf, p.alpha), wf * (2.0 ** p.alpha)[:, None].astype(np.float32))


def test_ptf_constant_tensor_and_errors():
    p = ptf_calibrate(np.zeros((4, 3), np.float32), K=2)
    assert float(p.base_scale) * 4 == np.float32(EPS32) and np.all(ptf_quantize(np.zeros((4, 3), np.float32), p) == 0)
    with pytest.raises(QuantError, match=r"K=21 is outside the allowed range \[0, 20\]"):
        ptf_calibrate(np.ones((2, 2), np.float32), K=21)
    with pytest.raises(QuantError, match=r"bits=0 is outside"):
        ptf_calibrate(np.ones((2, 2), np.float32), bits=0)
    with pytest.raises(QuantError, match="NaN or inf"):
        ptf_calibrate(np.array([[np.nan, 1.0]], np.float32))
    with pytest.raises(QuantError, match="float16/float32/float64"):
        ptf_calibrate(np.ones((2, 2), np.int32))
    with pytest.raises(QuantError, match="3 channels"):
        ptf_quantize(np.ones((2, 3), np.float32), ptf_calibrate(np.ones((2, 2), np.float32)))


# ---------------------------------------------------------------- log2 softmax
def log2_reference(p, bits=4):
    """FQ-ViT Log2Quantizer verbatim (computed in p's dtype)."""
    rounds = torch.round(-1 * p.log2())
    mask = rounds >= 2**bits
    q = torch.clamp(rounds, 0, 2**bits - 1)
    deq = 2 ** (-1 * q)
    deq[mask] = 0
    return q, mask, deq


def softmax_probs(seed, shape=(4, 64, 64)):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g) * 4
    causal = torch.triu(torch.ones(shape[-2:], dtype=torch.bool), 1)
    return torch.softmax(logits.masked_fill(causal, float("-inf")), dim=-1)


@pytest.mark.parametrize("bits", [4, 3, 8])
def test_log2_matches_fqvit_reference(bits):
    p = softmax_probs(bits)
    codes, mask = log2_quantize(p.numpy(), bits=bits)
    q32, m32, d32 = log2_reference(p, bits)            # the repo's float32 log2
    q64, m64, _ = log2_reference(p.double(), bits)     # float64 log2: exact rounding for float32 p
    assert torch.equal(t(codes), q64.to(torch.int32)) and torch.equal(t(mask), m64)
    assert torch.equal(t(codes), q32.to(torch.int32)) and torch.equal(t(mask), m32)
    assert torch.equal(t(log2_dequantize(codes, mask)), d32)
    emu, emu_mask = log2_quantize(p.numpy(), bits=bits, rounding="torch_float32")
    assert torch.equal(t(emu), q32.to(torch.int32)) and torch.equal(t(emu_mask), m32)
    assert mask.any() and (~mask).any()  # zeros of the causal mask and tiny probabilities both occur


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_log2_rounding_at_every_boundary(dtype):
    # values straddling 2**-(n + 1/2), where round(-log2 p) switches from n to n + 1
    vals = []
    for n in range(0, 14):
        b = np.asarray(2.0 ** -(n + 0.5), dtype=dtype)
        lo = hi = b
        for _ in range(4):
            lo, hi = np.nextafter(lo, dtype(0)), np.nextafter(hi, dtype(1))
            vals += [lo, hi]
        vals.append(b)
    p = np.array(vals + [0.0, 1.0, 0.75, 0.5, np.finfo(dtype).tiny], dtype=dtype)
    codes, mask = log2_quantize(p, bits=4)
    # exact reference in rationals: round(-log2 v) = n for the smallest n with v**2 > 2**-(2n+1)
    exact = []
    for v in p.tolist():
        if v == 0:
            exact.append(10**6)
            continue
        n = 0
        while not Fraction(v) ** 2 > Fraction(1, 2 ** (2 * n + 1)):
            n += 1
        exact.append(n)
    exact_t = torch.tensor(exact)
    assert torch.equal(t(codes), exact_t.clamp(0, 15).to(torch.int32))
    assert torch.equal(t(mask), exact_t >= 16)
    assert codes[-5:-1].tolist() == [15, 0, 0, 1] and mask[-5]
    if dtype == np.float32:  # the torch original's float32 rounding differs only on float32 half-integers
        q32, m32, _ = log2_reference(t(p))
        emu, emu_mask = log2_quantize(p, bits=4, rounding="torch_float32")
        assert torch.equal(t(emu), q32.to(torch.int32)) and torch.equal(t(emu_mask), m32)
        half = (-torch.log2(t(p))) % 1 == 0.5
        differs = t(codes) != q32.to(torch.int32)
        assert differs.any() and torch.all(half[differs])
        assert torch.all((t(codes) - q32).abs()[differs] == 1)
    if dtype != np.float64:  # a float64 log2 decides float16/32 inputs exactly (margin >> 1 ulp)
        q64, m64, _ = log2_reference(t(p.astype(np.float64)))
        assert torch.equal(t(codes), q64.to(torch.int32)) and torch.equal(t(mask), m64)


def test_log2_errors():
    with pytest.raises(QuantError, match=r"p holds 1.5, outside the allowed range \[0, 1\]"):
        log2_quantize(np.array([0.2, 1.5], np.float32))
    with pytest.raises(QuantError, match=r"outside the allowed range \[0, 1\]"):
        log2_quantize(np.array([-0.1], np.float32))
    with pytest.raises(QuantError, match=r"bits=0"):
        log2_quantize(np.array([0.5], np.float32), bits=0)
    with pytest.raises(QuantError, match="rounding='half_up'"):
        log2_quantize(np.array([0.5], np.float32), rounding="half_up")
    with pytest.raises(QuantError, match="needs float32"):
        log2_quantize(np.array([0.5]), rounding="torch_float32")


# ---------------------------------------------------------------- per-channel minmax (released code)
def minmax_reference(x, bits, signed):
    """FQ-ViT MinmaxObserver (channel_wise) + UniformQuantizer, as used by Agile-Quant's QAct."""
    qmin, qmax = qrange(bits, signed)
    v = x.permute(0, 2, 3, 1) if x.dim() == 4 else x
    v = v.reshape(-1, v.shape[-1]).transpose(0, 1)
    max_val, min_val = v.max(axis=1).values, v.min(axis=1).values
    if signed:
        scale = torch.max(-min_val, max_val) / (float(qmax - qmin) / 2)
        scale.clamp_(EPS32)
        zp = torch.zeros_like(max_val, dtype=torch.int64)
    else:
        scale = (max_val - min_val) / float(qmax - qmin)
        scale.clamp_(EPS32)
        zp = (qmin - torch.round(min_val / scale)).clamp(qmin, qmax)
    shape = (1, -1, 1, 1) if x.dim() == 4 else (1,) * (x.dim() - 1) + (-1,)
    scale, zp = scale.reshape(shape), zp.reshape(shape)
    q = (x / scale + zp).round().clamp(qmin, qmax)
    return scale.flatten(), q, (q - zp) * scale


@pytest.mark.parametrize("bits,signed", [(8, True), (4, True), (8, False), (4, False)])
@pytest.mark.parametrize("shape,axis", [((2, 24, 16), -1), ((1, 4, 24, 8), 1), ((30, 12), -1)])
def test_minmax_matches_released_quantizer(bits, signed, shape, axis):
    x = outlier_activations(bits, shape=shape, axis=axis)
    p = minmax_calibrate(x, bits=bits, signed=signed, axis=axis)
    scale, codes, deq = minmax_reference(t(x), bits, signed)
    assert torch.equal(t(p.scale), scale)
    q = minmax_quantize(x, p)
    assert torch.equal(t(q), codes.to(torch.int32))
    assert torch.equal(t(minmax_dequantize(q, p)), deq)
    if signed:
        top = np.maximum(np.abs(np.moveaxis(x, axis, -1)).reshape(-1, x.shape[axis]).max(axis=0), 0)
        assert np.array_equal(p.scale, (top / np.float32(127.5 if bits == 8 else 7.5)).astype(np.float32))


def test_minmax_errors():
    with pytest.raises(QuantError, match=r"axis=3 is outside the allowed range \[-2, 1\]"):
        minmax_calibrate(np.ones((2, 2), np.float32), axis=3)
    p = minmax_calibrate(np.ones((2, 2), np.float32))
    with pytest.raises(QuantError, match="calibration dtype"):
        minmax_quantize(np.ones((2, 2), np.float64), p)


# ---------------------------------------------------------------- grouped weights (GPTQ conventions, RTN)
def gptq_reference(w, bits, g, sym):
    """GPTQ Quantizer.find_params + quantize on every (row, group) of w."""
    n, k = w.shape
    maxq = 2**bits - 1
    x = w.reshape(n * (k // g), g)
    tmp = torch.zeros(x.shape[0], dtype=w.dtype)
    xmin = torch.minimum(x.min(1)[0], tmp)
    xmax = torch.maximum(x.max(1)[0], tmp)
    if sym:
        xmax = torch.maximum(torch.abs(xmin), xmax)
        tmp = xmin < 0
        if torch.any(tmp):
            xmin[tmp] = -xmax[tmp]
    tmp = (xmin == 0) & (xmax == 0)
    xmin[tmp] = -1
    xmax[tmp] = +1
    scale = (xmax - xmin) / maxq
    zero = torch.full_like(scale, (maxq + 1) / 2) if sym else torch.round(-xmin / scale)
    q = torch.clamp(torch.round(x / scale[:, None]) + zero[:, None], 0, maxq)
    deq = scale[:, None] * (q - zero[:, None])
    return q.reshape(n, k), scale.reshape(n, -1), zero.reshape(n, -1), deq.reshape(n, k)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("sym", [False, True])
@pytest.mark.parametrize("group", [32, 16, None])
def test_group_weight_quant_matches_gptq_reference(bits, sym, group):
    rng = np.random.default_rng(bits * 10 + sym)
    w = (rng.standard_normal((6, 64)) * 0.05).astype(np.float32)
    w[1, :32] = 0.0                   # an all-zero group
    w[2] = np.abs(w[2])               # an all-positive row
    w[3, 5] = 0.9                     # an outlier
    wq = quantize_weight_groups(w, bits=bits, group_size=group, symmetric=sym)
    codes, scale, zero, deq = gptq_reference(t(w), bits, group or 64, sym)
    assert torch.equal(t(wq.codes), codes.to(torch.int32))
    assert torch.equal(t(wq.scale), scale) and torch.equal(t(wq.zero), zero)
    assert torch.equal(t(dequantize_weight_groups(wq)), deq)
    assert wq.codes.min() >= 0 and wq.codes.max() <= 2**bits - 1


def test_group_weight_errors():
    w = np.ones((2, 96), np.float32)
    with pytest.raises(QuantError, match="group_size=64 does not divide K=96"):
        quantize_weight_groups(w, group_size=64)
    with pytest.raises(QuantError, match=r"bits=9 is outside the allowed range \[2, 8\]"):
        quantize_weight_groups(w, bits=9)
    with pytest.raises(QuantError, match=r"group_size=0 is outside"):
        quantize_weight_groups(w, group_size=0)
    with pytest.raises(QuantError, match="2-D"):
        quantize_weight_groups(np.ones(4, np.float32))


# ---------------------------------------------------------------- token pruning
def importance_reference(p):
    """The released code's "method 2" loop (sheet §5)."""
    score = torch.zeros([p.shape[1], 1], dtype=p.dtype)
    for h in range(p.shape[0]):
        score += p[h, :, :1]
    return score.reshape(-1)


def select_reference(score, n_remove):
    cand = torch.arange(score.numel() - 1, 0, -1)  # positions 1..T-1, descending
    _, order = torch.sort(score[cand], stable=True)  # ties keep the descending order -> higher removed first
    removed = torch.sort(cand[order[:n_remove]]).values
    keep = torch.ones(score.numel(), dtype=torch.bool)
    keep[removed] = False
    return torch.nonzero(keep).flatten(), removed


def make_attention(seed, n_tokens, n_layers, heads=4, quantize=False):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((n_layers, heads, n_tokens, n_tokens)) * 3).astype(np.float32)

    def attention(layer, kept):
        z = logits[layer][:, kept][:, :, kept]
        z = np.where(np.triu(np.ones((kept.size,) * 2, bool), 1), -np.inf, z)
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        probs = (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
        if quantize:  # the released code prunes on log2-quantized softmax outputs: many exact ties
            probs = log2_dequantize(*log2_quantize(probs))
        return probs

    return attention


def cascade_reference(attention, n_tokens, n_layers, start, beta):
    gamma = 1 - (1 - beta) ** (1 / (n_layers - start))
    kept, out = torch.arange(n_tokens), []
    for layer in range(n_layers):
        if layer >= start:
            n = kept.numel()
            probs = torch.from_numpy(attention(layer, kept.numpy().astype(np.int64)))
            local, _ = select_reference(importance_reference(probs), min(int(n * gamma), n - 1))
            kept = kept[local]
        out.append(kept.clone())
    return out


@pytest.mark.parametrize("quantize", [False, True])
@pytest.mark.parametrize("n_tokens,n_layers,start,beta", [(96, 8, 3, 0.5), (64, 6, 0, 0.9), (40, 4, 3, 0.3),
                                                          (33, 5, 2, 0.0)])
def test_cascade_matches_torch_reference(n_tokens, n_layers, start, beta, quantize):
    # one head of log2-quantized probabilities -> many exactly tied scores
    heads = 1 if quantize else 4
    attention = make_attention(n_tokens + n_layers, n_tokens, n_layers, heads=heads, quantize=quantize)
    ours = cascade_prune(attention, n_tokens, n_layers, start, beta)
    ref = cascade_reference(attention, n_tokens, n_layers, start, beta)
    assert len(ours) == n_layers
    for a, b in zip(ours, ref):
        assert torch.equal(t(a), b)
    assert [len(k) for k in ours] == kept_token_counts(n_tokens, n_layers, start, beta)
    assert all(k[0] == 0 for k in ours)
    assert all(np.all(np.isin(ours[i + 1], ours[i])) for i in range(n_layers - 1))


def test_importance_and_tie_rule():
    probs = torch.from_numpy(make_attention(1, 50, 1, heads=1, quantize=True)(0, np.arange(50)))
    score = token_importance(probs.numpy())
    assert torch.equal(t(score), importance_reference(probs))
    assert len(np.unique(score)) < 25  # heavy ties
    kept, removed = select_tokens(score, 20)
    rk, rr = select_reference(t(score), 20)
    assert torch.equal(t(kept), rk) and torch.equal(t(removed), rr)
    idx = np.arange(1, 50)
    opposite = np.sort(idx[np.lexsort((idx, score[1:]))][:20])  # ties removing the lower index first
    assert not np.array_equal(opposite, removed)  # so the stated tie rule is really exercised
    multi = torch.from_numpy(make_attention(2, 40, 1, heads=8)(0, np.arange(40)))
    assert torch.equal(t(token_importance(multi.numpy())), importance_reference(multi))
    # all-equal scores: the highest positions go first, position 0 always stays
    kept, removed = select_tokens(np.ones(6, np.float32), 3)
    assert kept.tolist() == [0, 1, 2] and removed.tolist() == [3, 4, 5]
    # token 0 kept even when it has the lowest score
    kept, _ = select_tokens(np.array([0.0, 1, 2, 3], np.float32), 3)
    assert kept.tolist() == [0]


def test_prune_schedule_reaches_the_final_ratio():
    gamma = prune_ratio(0.5, 16)
    assert (1 - gamma) ** 16 == pytest.approx(0.5, rel=1e-12)
    counts = kept_token_counts(2048, 32, 16, 0.5)
    assert counts[:16] == [2048] * 16
    assert 1024 <= counts[-1] <= 1024 + 16  # floor of each removal keeps at most one extra token per layer
    assert counts == sorted(counts, reverse=True)
    assert kept_token_counts(10, 3, 0, 0.0) == [10, 10, 10]


@pytest.mark.parametrize("beta", [1.0, -0.1, 1.5, True])
def test_pruning_ratio_outside_range(beta):
    with pytest.raises(QuantError, match=r"outside the allowed range \[0, 1\)"):
        kept_token_counts(10, 4, 1, beta)


def test_pruning_errors():
    with pytest.raises(QuantError, match=r"start_layer=4 is outside the allowed range \[0, 3\]"):
        kept_token_counts(10, 4, 4, 0.5)
    with pytest.raises(QuantError, match=r"n_remove=5 is outside the allowed range \[0, 4\]"):
        select_tokens(np.ones(5, np.float32), 5)
    with pytest.raises(QuantError, match="expected"):
        cascade_prune(lambda layer, kept: np.ones((1, 2, 2), np.float32), 5, 2, 0, 0.5)
    with pytest.raises(QuantError, match="heads, T, T"):
        token_importance(np.ones((2, 3), np.float32))
