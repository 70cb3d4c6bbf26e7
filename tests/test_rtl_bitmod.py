"""Tests for rtl_models.bitmod against a torch reference written here from the published code.

Torch reference = ``search_datatype`` / ``quant_datatype`` / ``quant_int`` of
abdelfattah-lab/BitMoD-HPCA-25 bitmod_quant/quant_utils/quant_weight.py (the artifact of
BitMoD, Chen et al., HPCA 2025) and, for the INT8 second-level scale, the dev code
yc2367/BitMoD wiki_c4_ppl/quant_utils/quant_weight_double.py, in the same dtype as the
model. One stated deviation, shared with the model: the MSE mean accumulates its float64
sum in index order (exact for float16 squares) instead of torch's float32 SIMD-order
``mean``.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from rtl_models.bitmod import (
    BitmodInputError,
    BitmodPE,
    PEConfig,
    Rounding,
    allowed_codes,
    candidate_sets,
    cycles_per_group,
    decompose_terms,
    pe_dot,
    quantize_weights,
    row_cycles,
    terms_per_weight,
)
from rtl_models.bitmod import _kernels

# ---- published value tables, copied from quant_weight.py (code units) -------------------------
FP3_ER_POS = [-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0]
FP3_ER_NEG = [-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0]
FP3_EA_POS = [-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 6.0]
FP3_EA_NEG = [-6.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0]
FP4_ER_POS = [-12.0, -8.0, -6.0, -4.0, -3.0, -2.0, -1.0, 0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0]
FP4_ER_NEG = [-12.0, -10.0, -8.0, -6.0, -4.0, -3.0, -2.0, -1.0, 0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0]
FP4_EA_POS = [-12.0, -8.0, -6.0, -4.0, -3.0, -2.0, -1.0, 0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0]
FP4_EA_NEG = [-16.0, -12.0, -8.0, -6.0, -4.0, -3.0, -2.0, -1.0, 0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0]
PUBLISHED = {3: [FP3_ER_POS, FP3_ER_NEG, FP3_EA_POS, FP3_EA_NEG],
             4: [FP4_ER_POS, FP4_ER_NEG, FP4_EA_POS, FP4_EA_NEG]}
TORCH_DT = {"float16": torch.float16, "float32": torch.float32, "float64": torch.float64}


def _ref_quant_datatype(w, allow_value):
    """Published quant_datatype on an already-grouped [K, NG, G] tensor (no reshape/cast)."""
    mid_value = [(allow_value[i] + allow_value[i + 1]) / 2 for i in range(len(allow_value) - 1)]
    rmax = torch.amax(w.abs(), dim=-1, keepdim=True)
    qmax = max([abs(x) for x in allow_value])
    scale_fp = (rmax / qmax).clamp(min=1e-5, max=1e4)
    x = w / scale_fp
    q = torch.zeros_like(x)
    for i in range(len(allow_value)):
        data = allow_value[i]
        if i == 0:
            q += torch.where(x <= mid_value[i], data, 0)
        elif i == len(allow_value) - 1:
            q += torch.where(x > mid_value[i - 1], data, 0)
        else:
            q += torch.where((mid_value[i - 1] < x) & (x <= mid_value[i]), data, 0)
    return q, scale_fp, q * scale_fp


def _ref_quant_int(w, bits):
    """Published quant_int (symmetric, round-half-even) on a grouped tensor."""
    rmax = torch.amax(w.abs(), dim=-1, keepdim=True)
    qmax = 2 ** (bits - 1) - 1
    scale_fp = (rmax / qmax).clamp(min=1e-5, max=1e4)
    q = torch.clamp(torch.round(w / scale_fp), min=-qmax, max=qmax)
    return q, scale_fp, q * scale_fp


def torch_reference(w_np, bits, group, dtype="float16", int8_scale=False):
    """Published search in ``dtype``: returns codes, selectors, scales, dequant (torch)."""
    k, c = w_np.shape
    ng = c // group
    w = torch.from_numpy(np.asarray(w_np, np.float64)).to(TORCH_DT[dtype]).reshape(k, ng, group)
    cands = PUBLISHED.get(bits, [None])
    best = None
    for ci, vals in enumerate(cands):
        q, s, deq = _ref_quant_int(w, bits) if vals is None else _ref_quant_datatype(w, vals)
        sq = (deq - w).pow(2)
        acc = torch.zeros(k, ng, dtype=torch.float64)
        for i in range(group):  # index-order float64 accumulation (module docstring)
            acc = acc + sq[..., i].double()
        err = acc / group if w.dtype == torch.float64 else (acc.float() / group).to(w.dtype)
        if best is None:
            best = dict(err=err, q=q, s=s, sel=torch.zeros(k, ng, dtype=torch.int64))
            continue
        upd = torch.lt(err, best["err"])  # strict: ties keep the earlier candidate
        best["err"][upd] = err[upd]
        best["q"][upd] = q[upd]
        best["s"][upd] = s[upd]
        best["sel"][upd] = ci
    q, s = best["q"], best["s"]
    out = dict(codes=q.to(torch.int64).reshape(k, c), sel=best["sel"], scales=s[..., 0])
    if int8_scale:  # dev-code second-level formula on the selected scales (quant_weight_double.py)
        s_ch = torch.amax(s.abs(), dim=1, keepdim=True) / 255
        q_s = torch.clamp(torch.round(s / s_ch), min=0, max=255)
        out.update(deq=(q * s_ch * q_s).reshape(k, c), s_ch=s_ch[:, 0, 0], q_s=q_s[..., 0])
    else:
        out["deq"] = (q * s).reshape(k, c)
    return out


def assert_matches_reference(w, bits, group, dtype="float16", int8_scale=False, backend="numba"):
    got = quantize_weights(w, bits=bits, group=group, scale_dtype=dtype, int8_scale=int8_scale,
                           backend=backend)
    ref = torch_reference(w, bits, group, dtype, int8_scale)
    assert torch.equal(torch.from_numpy(got.codes.astype(np.int64)), ref["codes"])
    assert torch.equal(torch.from_numpy(got.selectors.astype(np.int64)), ref["sel"])
    assert torch.equal(torch.from_numpy(got.scales), ref["scales"])
    assert torch.equal(torch.from_numpy(got.dequant()), ref["deq"])
    if int8_scale:
        assert torch.equal(torch.from_numpy(got.channel_scales), ref["s_ch"])
        assert torch.equal(torch.from_numpy(got.scale_codes.astype(np.int64)), ref["q_s"].to(torch.int64))
    return got


def llm_like(rng, k, c, std=0.02, outlier_frac=0.01, outlier_gain=(5.0, 30.0)):
    """Gaussian weights with a few injected outliers (and whole outlier channels), as fp16."""
    w = rng.standard_normal((k, c)) * std
    mask = rng.random((k, c)) < outlier_frac
    w[mask] *= rng.uniform(*outlier_gain, size=mask.sum())
    w[:, rng.integers(0, c)] *= outlier_gain[1]  # an outlier input channel
    return w.astype(np.float16)


# ---- value sets -------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [3, 4])
def test_candidate_sets_are_the_published_tables_in_tie_order(bits):
    sets = candidate_sets(bits)
    assert [list(map(float, s.values)) for s in sets] == PUBLISHED[bits]
    assert [s.qmax for s in sets] == ([4, 4, 6, 6] if bits == 3 else [12, 12, 16, 16])
    assert [s.name.split("_", 1)[1] for s in sets] == ["er_pos", "er_neg", "ea_pos", "ea_neg"]


# ---- quantizer vs torch -------------------------------------------------------------------------
SHAPES = [(1, 128, 128), (3, 256, 128), (8, 1024, 128), (5, 384, 128), (4, 64, 32),
          (2, 96, 16), (16, 128, 64)]


@pytest.mark.parametrize("bits", [3, 4, 6, 8])
@pytest.mark.parametrize("shape", SHAPES)
def test_quantizer_equals_torch_reference(bits, shape):
    k, c, group = shape
    rng = np.random.default_rng(1000 * bits + k + c)
    for std in (0.02, 1.0):
        w = llm_like(rng, k, c, std=std)
        got = assert_matches_reference(w, bits, group)
        assert got.codes.shape == (k, c) and got.selectors.shape == (k, c // group)
    if bits in (3, 4) and k * c // group >= 16:
        assert len(np.unique(got.selectors)) > 1  # the search really chooses


@pytest.mark.parametrize("bits", [3, 4, 6, 8])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_quantizer_other_scale_dtypes_equal_torch_reference(bits, dtype):
    rng = np.random.default_rng(bits)
    w = llm_like(rng, 6, 512).astype(np.float32) * np.float32(1.37)  # not fp16-representable
    for backend in ("numba", "numpy"):
        got = assert_matches_reference(w, bits, 128, dtype=dtype, backend=backend)
        assert got.scales.dtype == np.dtype(dtype)


@pytest.mark.parametrize("bits", [3, 4, 6, 8])
def test_int8_second_level_scale_equals_dev_formula(bits):
    rng = np.random.default_rng(7 + bits)
    w = llm_like(rng, 6, 1024)
    got = assert_matches_reference(w, bits, 128, int8_scale=True)
    plain = quantize_weights(w, bits=bits)
    assert np.array_equal(got.codes, plain.codes) and np.array_equal(got.selectors, plain.selectors)
    assert got.scale_codes.max() == 255  # the largest group scale maps to the top code


def test_every_fp16_rmax_value_matches_torch():
    # Each finite non-negative fp16 value r is the group max of one group [r, r/3, -r/7, 0]:
    # exercises the fp16 division, clamp [1e-5, 1e4], rounding and dequant over the full range.
    r = np.arange(0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)
    w = np.stack([r, r / 3, -r / 7, np.zeros_like(r)], 1).reshape(-1, 64).astype(np.float16)
    for bits in (3, 4, 6, 8):
        assert_matches_reference(w, bits, 4)


def test_midpoint_ties_go_to_lower_value():
    s = 2.0 ** -6  # fp4_er scale = 12 s / 12 = s exactly, so x = w / s is exact
    x = np.array([12, 9, 0.5, 11, -0.5, 7, -9, 2.5, 3.5, 5, -1.5, 1.5, -11, -7, 0, 10])
    w = (x * s).astype(np.float16)[None]
    got = assert_matches_reference(w, 4, 16)
    assert got.selectors[0, 0] == 0 and got.scales[0, 0] == s  # fp4_er_pos, x exact
    # every half-way value went to its lower neighbour in FP4_ER_POS
    assert got.codes[0].tolist() == [12, 8, 0, 10, -1, 6, -8, 2, 3, 4, -2, 1, -12, -8, 0, 10]


def test_mse_ties_keep_the_earlier_candidate():
    # Tiny groups of few-level values make MSE ties between candidates common.
    rng = np.random.default_rng(3)
    for bits in (3, 4):
        w = (rng.integers(-4, 5, size=(400, 8)) * 2.0 ** -5).astype(np.float16)
        got = assert_matches_reference(w, bits, 4)
        ref = torch_reference(w, bits, 4)
        # recompute every candidate's MSE to show later-candidate ties were exercised
        wg = torch.from_numpy(w.astype(np.float64)).half().reshape(400, 2, 4)
        errs = []
        for vals in PUBLISHED[bits]:
            _, _, deq = _ref_quant_datatype(wg, vals)
            errs.append((deq - wg).pow(2).double().sum(-1).float().div(4).half())
        errs = torch.stack(errs, -1)
        first_min = torch.argmax((errs == errs.min(-1, keepdim=True).values).int(), -1)
        assert torch.equal(ref["sel"], first_min)
        n_ties = ((errs == errs.min(-1, keepdim=True).values).sum(-1) > 1).sum().item()
        assert n_ties > 50 and np.array_equal(got.selectors, first_min.numpy())
    zero = quantize_weights(np.zeros((2, 8)), bits=4, group=4)
    assert zero.selectors.tolist() == [[0, 0], [0, 0]] and not zero.codes.any()


@pytest.mark.parametrize("bits", [3, 4, 6, 8])
def test_numba_kernel_equals_numpy_reference(bits):
    rng = np.random.default_rng(11 * bits)
    cases = [llm_like(rng, 7, 256, std=std) for std in (1e-4, 0.02, 3.0, 500.0)]
    cases.append((rng.standard_normal((4, 64)) * 1e-6).astype(np.float16))  # below clamp 1e-5
    cases.append(np.full((2, 64), 65504.0, np.float16))  # overflowing dequant products
    for w in cases:
        for dtype in ("float16", "float32", "float64"):
            a = quantize_weights(w, bits=bits, group=32, scale_dtype=dtype, int8_scale=True)
            b = quantize_weights(w, bits=bits, group=32, scale_dtype=dtype, int8_scale=True,
                                 backend="numpy")
            for f in ("codes", "selectors", "scales", "channel_scales", "scale_codes"):
                assert np.array_equal(getattr(a, f), getattr(b, f)), f
            assert np.array_equal(a.dequant(), b.dequant(), equal_nan=True)


def test_kernel_fp16_rounding_exhaustive():
    h = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    hs = np.unique(h[np.isfinite(h)].astype(np.float64))
    mids = (hs[:-1] + hs[1:]) / 2
    xs = np.concatenate([hs, mids, np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf),
                         [65520.0, -65520.0, 65519.999, 1e9, 2.0 ** -25, 3 * 2.0 ** -26]])
    got = np.array([_kernels.rnd(float(x), 0) for x in xs])
    with np.errstate(over="ignore"):  # numpy rounds float64->float16 directly (torch goes
        ref = xs.astype(np.float16).astype(np.float64)  # through float32: double rounding)
    assert np.array_equal(got, ref)
    f32 = xs.astype(np.float32)  # on float32 inputs torch's cast is a single rounding
    got32 = np.array([_kernels.rnd(float(x), 0) for x in f32])
    assert torch.equal(torch.from_numpy(got32), torch.from_numpy(f32).half().double())


# ---- terms ----------------------------------------------------------------------------------------
BOOTH_TABLE = {0b000: 0, 0b001: 1, 0b010: 1, 0b011: 2, 0b100: -2, 0b101: -1, 0b110: -1, 0b111: 0}


@pytest.mark.parametrize("bits", [3, 4, 6, 8])
def test_terms_reconstruct_every_code_exactly(bits):
    n = terms_per_weight(bits)
    assert n == {3: 2, 4: 2, 6: 3, 8: 4}[bits]
    codes = allowed_codes(bits)
    if bits in (3, 4):
        assert set(codes) == {int(v) for s in PUBLISHED[bits] for v in s}
    else:
        assert codes == tuple(range(-(1 << (bits - 1)), 1 << (bits - 1)))
    for v in codes:
        terms = decompose_terms(v, bits)
        assert len(terms) == n
        assert sum(t.value for t in terms) == v
        for t in terms:
            assert t.sign in (0, 1) and t.man in (0, 1) and 0 <= t.exp <= 3
            assert t.man or (t.exp == 0 and t.sign in (0, 1))
        if bits in (3, 4):
            assert [t.bsig for t in terms] == [0, 1]
            assert all(t.sign == (v < 0) for t in terms if t.man)
        else:
            assert [t.bsig for t in terms] == [0, 2, 4, 6][:n]
            word = (v & ((1 << bits) - 1)) << 1  # dev RTL decoder.v Booth table on each triplet
            digits = [BOOTH_TABLE[(word >> (2 * k)) & 7] for k in range(n)]
            assert [(-1 if t.sign else 1) * t.man * (1 << t.exp) for t in terms] == digits


def test_decompose_terms_rejects_foreign_values():
    for v, bits in [(5, 4), (7, 4), (-16, 3), (8, 3), (128, 8), (32, 6), (2.5, 4)]:
        with pytest.raises(BitmodInputError, match="value="):
            decompose_terms(v, bits)
    with pytest.raises(BitmodInputError, match="bits=5"):
        decompose_terms(1, 5)


# ---- cycles ---------------------------------------------------------------------------------------
def test_cycle_rules_match_the_paper():
    assert [cycles_per_group(b, 128) for b in (4, 3, 6, 8)] == [64, 64, 96, 128]
    assert all(row_cycles(4, g) == 64 * g + 8 for g in range(1, 9))
    assert row_cycles(8, 3, 128, 8) == 3 * 128 + 8
    assert row_cycles(4, 5, group=4, scale_bits=8) == 2 + 5 * 8  # dequant-bound: stalls


@pytest.mark.parametrize("bits,group,int8", [(4, 128, True), (3, 128, False), (6, 128, True),
                                             (8, 64, False), (4, 4, True), (8, 8, False)])
def test_pe_cycle_count_and_hidden_dequant(bits, group, int8):
    rng = np.random.default_rng(group + bits)
    c = 4 * group
    quant = quantize_weights(llm_like(rng, 2, c), bits=bits, group=group, int8_scale=int8)
    act = rng.standard_normal(c).astype(np.float16)
    res = BitmodPE().run_row(quant, 1, act, trace=True)
    sb = 8 if int8 else 11
    cd = cycles_per_group(bits, group)
    assert res.cycles == row_cycles(bits, 4, group, sb)
    assert res.dot_cycles == 4 * cd and res.dequant_cycles == 4 * sb
    assert res.stall_cycles == (2 * (sb - cd) if sb > cd else 0)  # groups 2 and 3 wait
    deq = [e for e in res.trace if e[1] == "deq"]
    dot_end = {}
    for e in res.trace:
        if e[1] == "dot":
            dot_end[e[2]] = e[0]
    prev_end = -1
    for gd in range(4):
        cyc = [e[0] for e in deq if e[2] == gd]
        assert cyc == list(range(cyc[0], cyc[0] + sb))  # one scale bit per cycle
        assert cyc[0] == max(dot_end[gd], prev_end) + 1  # starts once both are ready
        if cd >= sb and gd < 3:  # hidden: group gd is dequantized while group gd+1 computes
            assert cyc[-1] <= dot_end[gd + 1]
        prev_end = cyc[-1]
    if cd >= sb:
        assert res.cycles - 1 - dot_end[3] == sb  # only the last dequant is exposed
    assert pe_dot(quant, act).cycles_per_output == res.cycles


# ---- PE arithmetic --------------------------------------------------------------------------------
def fp16_activations(rng, n, lo_exp=-3, hi_exp=3):
    """fp16 activations with |a| in [2^lo_exp, 2^hi_exp) or 0: multiples of 2^(lo_exp-10)."""
    mag = np.exp2(rng.uniform(lo_exp, hi_exp, n))
    a = np.where(rng.random(n) < 0.05, 0.0, mag * rng.choice([-1.0, 1.0], n))
    return np.clip(a, -(2.0 ** hi_exp - 2.0 ** (hi_exp - 11)), 2.0 ** hi_exp).astype(np.float16)


def torch_pe_reference(quant, act16):
    """float64 torch model: y = sum_g scale_g * sum_i a_i * code_i (per-channel s_ch last).

    Exactness for the tested ranges: every activation is an integer times 2^-13 below 2^16
    units; |code| <= 127, G <= 256, so each group dot is an integer < 2^31 units: exact in any
    order. Times an 11-bit fp16 scale (or an 8-bit INT8 code) it stays < 2^42 significant
    bits; summed over <= 8 groups whose scale exponents differ by < 8 (checked per row against
    the exact rational value in the test) every partial sum is representable in 53 bits.
    """
    k, c = quant.codes.shape
    ng, g = quant.n_groups, quant.group
    a = torch.from_numpy(np.asarray(act16, np.float64))
    q = torch.from_numpy(quant.codes.astype(np.float64)).reshape(k, ng, g)
    dots = (q * a.reshape(-1, 1, ng, g)).sum(-1) if a.ndim == 2 else (q * a.reshape(ng, g)).sum(-1)
    if quant.scale_codes is None:
        return (dots * torch.from_numpy(quant.scales.astype(np.float64))).sum(-1)
    qs = torch.from_numpy(quant.scale_codes.astype(np.float64))
    return (dots * qs).sum(-1) * torch.from_numpy(quant.channel_scales.astype(np.float64))


def exact_rational(quant, act16, row):
    a = [Fraction(float(x)) for x in act16]
    tot = Fraction(0)
    for gi in range(quant.n_groups):
        sl = slice(gi * quant.group, (gi + 1) * quant.group)
        d = sum((ai * int(q) for ai, q in zip(a[sl], quant.codes[row, sl])), Fraction(0))
        tot += d * (int(quant.scale_codes[row, gi]) if quant.scale_codes is not None
                    else Fraction(float(quant.scales[row, gi])))
    if quant.scale_codes is not None:
        tot *= Fraction(float(quant.channel_scales[row]))
    return tot


@pytest.mark.parametrize("bits", [3, 4, 6, 8])
@pytest.mark.parametrize("int8", [False, True])
def test_pe_exact_mode_equals_float64_torch(bits, int8):
    rng = np.random.default_rng(100 + bits + 10 * int8)
    for k, c, group in [(4, 512, 128), (3, 256, 64), (2, 64, 16)]:
        quant = quantize_weights(llm_like(rng, k, c, outlier_gain=(3.0, 8.0)), bits=bits,
                                 group=group, int8_scale=int8)
        act = fp16_activations(rng, c)
        got = pe_dot(quant, act, config=PEConfig.exact())
        ref = torch_pe_reference(quant, act)
        for r in range(k):  # the float64 reference really is exact on these inputs
            assert Fraction(ref[r].item()) == exact_rational(quant, act, r)
        assert torch.equal(torch.from_numpy(got.outputs), ref)
    acts = np.stack([fp16_activations(rng, c) for _ in range(3)])
    got = pe_dot(quant, acts, config=PEConfig.exact())
    assert got.outputs.shape == (3, k)
    assert torch.equal(torch.from_numpy(got.outputs), torch_pe_reference(quant, acts))


def _fp16_exp(a: torch.Tensor) -> torch.Tensor:
    """Effective biased fp16 exponent (subnormals and zero -> 1), from torch.frexp."""
    _, e = torch.frexp(a.double())
    return torch.where(a.abs() >= 2.0 ** -14, e + 14, torch.ones_like(e))


def narrow_error_bound(quant, act16, row, cfg: PEConfig) -> float:
    """A priori bound on |PE - exact| from the rounding steps (pe.py module docstring).

    u = 1/2 (RNE) or 1 (truncation) ulp per rounding; a w-bit signed mantissa has p = w-1
    magnitude bits, so one rounding changes a value r by <= eta|r|, eta = u * 2^(1-p).
    Lane alignment in cycle c: <= u * 2^(E_c - 25 - guard + bsig) per active lane.
    T-step recursive accumulation of cycle sums S_k: |r_T - sum S| <= (1+eta)((1+eta)^T - 1) sum|S|
    and |r_T| <= (1+eta)^T sum|S|, with sum|S| <= A + L (A = sum |a_i| * sum |terms_i|).
    Dequant (one rounding), the NG-step output accumulation and the final channel-scale product
    follow the same pattern. Evaluated in float64 with a 1e-9 relative margin for the bound's
    own evaluation.
    """
    u = 0.5 if cfg.rounding is Rounding.RNE else 1.0

    def eta(width):
        return 0.0 if width is None else u * 2.0 ** (2 - width)

    ea, ed, eo = eta(cfg.acc_man_bits), eta(cfg.deq_man_bits), eta(cfg.out_man_bits)
    a = torch.from_numpy(np.asarray(act16, np.float64))
    aexp = _fp16_exp(torch.from_numpy(np.asarray(act16))).tolist()
    terms = [decompose_terms(int(v), quant.bits) for v in quant.codes[row]]
    n_t, g_size = terms_per_weight(quant.bits), quant.group
    total_err, d_bound = 0.0, 0.0
    for gi in range(quant.n_groups):
        base = gi * g_size
        A = sum(abs(a[i].item()) * sum(abs(t.value) for t in terms[i])
                for i in range(base, base + g_size))
        L = 0.0
        if cfg.guard_bits is not None:
            for j in range(base, base + g_size, 4):
                for t in range(n_t):
                    lanes = [terms[i][t] for i in range(j, j + 4)]
                    e_c = max(aexp[i] + terms[i][t].exp for i in range(j, j + 4))
                    active = sum(1 for i in range(j, j + 4) if terms[i][t].man and a[i] != 0)
                    L += active * u * 2.0 ** (e_c - 25 - cfg.guard_bits + lanes[0].bsig)
        steps = n_t * g_size // 4  # cycles (= roundings) per group
        gamma_acc = (1 + ea) * ((1 + ea) ** steps - 1)
        r_bound = (1 + ea) ** steps * (A + L)
        q_g = (float(quant.scale_codes[row, gi]) if quant.scale_codes is not None
               else float(quant.scales[row, gi]))
        total_err += q_g * (L + gamma_acc * (A + L) + ed * (1 + ed) * r_bound)
        d_bound += (1 + ed) * r_bound * q_g
    ng = quant.n_groups
    total_err += (1 + eo) * ((1 + eo) ** ng - 1) * d_bound
    if quant.scale_codes is not None:
        s_ch = float(quant.channel_scales[row])
        total_err = s_ch * total_err + eo * (1 + eo) * s_ch * (1 + eo) ** ng * d_bound
    return total_err * (1 + 1e-9)


def test_narrow_error_bound_is_zero_for_the_exact_config():
    rng = np.random.default_rng(5)
    quant = quantize_weights(llm_like(rng, 1, 128), bits=4)
    assert narrow_error_bound(quant, fp16_activations(rng, 128), 0, PEConfig.exact()) == 0.0


def test_pe_narrow_rounding_by_hand():
    # One FP4 group of 4: w = s*[12, 10, 10, 10], s = 2^-4 -> fp4_er_pos codes [12, 10, 10, 10].
    # Terms: 12 -> (exp2, bsig0) + (exp2, bsig1); 10 -> (exp1, bsig0) + (exp2, bsig1).
    # a = [1, 1025*2^-14, 1027*2^-14, 2^-20]: significands 1024, 1025, 1027, 16 (subnormal),
    # effective exponents 15, 11, 11, 1.
    # Slot 0: e = [17, 12, 12, 2], E = 17; aligned (3 guard bits) = [8192, 1025/4, 1027/4, 16/2^12]
    #   RNE -> [8192, 256, 257, 0] = 8705; truncate -> 8704; units 2^(17-25-3) = 2^-11.
    # Slot 1: e = [17, 13, 13, 3]; aligned = [8192, 1025/2, 1027/2, ~0]
    #   RNE -> [8192, 512, 514, 0] = 9218 (both ties to even); truncate -> 9217; units 2^-10.
    # Group acc (15-bit signed = 14 magnitude bits): 8705 + 2*9218 = 27141 (15 bits) -> /2 =
    #   13570.5 -> RNE 13570, units 2^-10; truncate: (8704 + 2*9217) >> 1 = 13569.
    # Dequant by the fp16 scale 2^-4 (significand 1024) is exact. Output = acc * 2^-4.
    w = (np.array([[12, 10, 10, 10]]) * 2.0 ** -4).astype(np.float16)
    quant = quantize_weights(w, bits=4, group=4)
    assert quant.codes.tolist() == [[12, 10, 10, 10]] and quant.scales[0, 0] == 2.0 ** -4
    a = np.array([1.0, 1025 * 2.0 ** -14, 1027 * 2.0 ** -14, 2.0 ** -20], np.float16)
    out = {r: BitmodPE(PEConfig(rounding=r)).run_row(quant, 0, a).output for r in Rounding}
    assert out[Rounding.RNE] == 13570 * 2.0 ** -14
    assert out[Rounding.TRUNCATE] == 13569 * 2.0 ** -14
    wide_acc = BitmodPE(PEConfig(acc_man_bits=16)).run_row(quant, 0, a).output
    assert wide_acc == 27141 * 2.0 ** -15  # no accumulator rounding with 15 magnitude bits
    exact = Fraction(1, 16) * (12 + 10 * (Fraction(1025 + 1027, 2 ** 14) + Fraction(1, 2 ** 20)))
    assert BitmodPE(PEConfig.exact()).run_row(quant, 0, a).output == float(exact)


NARROW_ROWS = []  # (bits, int8, rounding, max err, max err/bound, max rel err) for the report


@pytest.mark.parametrize("rounding", [Rounding.RNE, Rounding.TRUNCATE])
@pytest.mark.parametrize("bits", [3, 4, 6, 8])
def test_pe_narrow_mode_error_is_bounded(bits, rounding):
    cfg = PEConfig(rounding=rounding)  # dev-RTL widths: guard 3, acc 15, deq 21, out 25
    rng = np.random.default_rng(200 + bits)
    k, c = 6, 512
    act = rng.standard_normal(c)
    act[rng.integers(0, c, 4)] *= 40.0  # activation outlier channels
    act = act.astype(np.float16)
    for int8 in (False, True):
        quant = quantize_weights(llm_like(rng, k, c), bits=bits, int8_scale=int8)
        got = torch.from_numpy(pe_dot(quant, act, config=cfg).outputs)
        ref = torch_pe_reference(quant, act)
        for r in range(k):
            assert Fraction(ref[r].item()) == exact_rational(quant, act, r)
        err = (got - ref).abs()
        bounds = torch.tensor([narrow_error_bound(quant, act, r, cfg) for r in range(k)],
                              dtype=torch.float64)
        assert torch.all(err <= bounds), (err, bounds)
        assert err.max() > 0  # the narrow datapath really rounds
        mag = (torch.from_numpy(np.abs(quant.dequant().astype(np.float64)))
               @ torch.from_numpy(np.abs(act.astype(np.float64))))
        NARROW_ROWS.append((bits, int8, rounding.value, err.max().item(),
                            (err / bounds).max().item(), (err / mag).max().item()))
    print("\nbits int8 rounding max_abs_err max_err/bound max_err/sum|a||w|")
    for row in NARROW_ROWS[-2:]:
        print("%4d %5s %8s %11.3e %13.3e %17.3e" % row)


# ---- bad input ------------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_value_errors():
    w = np.zeros((2, 256), np.float16)
    with pytest.raises(ValueError, match="group=100"):
        quantize_weights(w, group=100)
    for bits in (5, 2, "4", True, 16):
        with pytest.raises(ValueError, match="bits="):
            quantize_weights(w, bits=bits)
    for bad in (np.nan, np.inf, -np.inf):
        w2 = w.astype(np.float32)
        w2[1, 7] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            quantize_weights(w2)
    with pytest.raises(ValueError, match="float16 range"):
        quantize_weights(np.full((1, 128), 1e6))
    with pytest.raises(ValueError, match="scale_dtype="):
        quantize_weights(w, scale_dtype="bfloat16")
    with pytest.raises(ValueError, match="backend="):
        quantize_weights(w, backend="cuda")
    with pytest.raises(ValueError, match="2-D"):
        quantize_weights(np.zeros(128))
    with pytest.raises(ValueError, match="group="):
        cycles_per_group(4, 6)
    quant = quantize_weights(np.ones((1, 8)), group=2)
    with pytest.raises(ValueError, match="multiple of the 4 PE lanes"):
        pe_dot(quant, np.ones(8))
    quant = quantize_weights(np.ones((2, 128)))
    with pytest.raises(ValueError, match="activations must have shape"):
        pe_dot(quant, np.ones(127))
    with pytest.raises(ValueError, match="finite"):
        pe_dot(quant, np.full(128, np.nan))
    with pytest.raises(ValueError, match="row="):
        BitmodPE().run_row(quant, 2, np.ones(128))
    with pytest.raises(ValueError, match="scale_dtype="):
        pe_dot(quantize_weights(np.ones((1, 128)), scale_dtype="float32"), np.ones(128))
    with pytest.raises(ValueError, match="acc_man_bits="):
        PEConfig(acc_man_bits=1)
    good = quantize_weights(np.ones((1, 8)), group=4, scale_dtype=np.float32)
    assert good.scale_dtype == "float32"
    with pytest.raises(ValueError, match="outside the 4-bit code set"):
        type(good)(bits=4, group=4, scale_dtype="float16", codes=np.full((1, 8), 5, np.int8),
                   selectors=good.selectors, scales=good.scales)
