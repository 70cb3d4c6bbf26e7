"""The vectorised datapath paths (the validation path) against the cycle-stepped / slow models
(exact equality) and against references that share neither their code nor their op order:
torch's int64 GEMM, Python integers, ``fractions.Fraction`` exact sums, torch's own rounding,
and a float64 model with a derived error bound."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rtl_models.bitmod import PEConfig, Rounding, candidate_sets, pe_dot, quantize_weights
from rtl_models.bitmod.fast import FAST_LIMITS, pe_dot_fast
from rtl_models.intgemm import exact_matmul, exact_matmul_f64
from rtl_models.moe import MoEConfig, MoENumerics, MoEWeights, moe_forward
from rtl_models.moe.fast import moe_forward_fast, prepare_weights
from rtl_models.simd import CarryError, SMMWConfig, packed_gemm, packed_gemm_reference
from rtl_models.simd.fast import packed_gemm_fast
from rtl_models.systolic import simulate_gemm
from rtl_models.systolic.fast import gemm_fast
from rtl_models.ternary import TernaryWeights, accumulate, dequantize, quantize_activations
from rtl_models.ternary.fast import bitlinear_normed_fast


def _ints(rng, bits, shape):
    hi = 1 << bits
    return rng.integers(-hi + 1, hi, size=shape, dtype=np.int64) if bits < 62 else \
        rng.integers(-(1 << 61), 1 << 61, size=shape, dtype=np.int64)


# --------------------------------------------------------------------------- exact GEMM
@pytest.mark.parametrize("seed", range(6))
def test_exact_matmul_equals_torch_int64_for_every_width(seed):
    """All plans (float32, float64, limbs on either side, both split) against torch's int64 GEMM,
    including products that wrap int64 (torch wraps the same way)."""
    rng = np.random.default_rng(seed)
    for _ in range(60):
        m, k, n = (int(v) for v in rng.integers(1, 12, 3))
        a, b = _ints(rng, int(rng.integers(1, 63)), (m, k)), _ints(rng, int(rng.integers(1, 63)), (k, n))
        ref = (torch.from_numpy(a) @ torch.from_numpy(b)).numpy()
        assert np.array_equal(exact_matmul(a, b), ref)


def test_exact_matmul_small_dtypes_and_python_ints():
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, (5, 300)).astype(np.int8)
    b = rng.integers(0, 16, (300, 7)).astype(np.uint8)
    ref = [[sum(int(a[i, t]) * int(b[t, j]) for t in range(300)) for j in range(7)] for i in range(5)]
    assert exact_matmul(a, b).tolist() == ref
    w = rng.integers(-(1 << 15), 1 << 15, (300, 7))
    x = rng.integers(-(1 << 31), 1 << 31, (5, 300))
    assert np.array_equal(exact_matmul_f64(x, w.astype(np.float64), 1 << 15),
                          (torch.from_numpy(x) @ torch.from_numpy(w)).numpy())


def test_exact_matmul_rejects_bad_input():
    with pytest.raises(ValueError, match="integer"):
        exact_matmul(np.ones((2, 2)), np.ones((2, 2), np.int64))
    with pytest.raises(ValueError, match="2\\*\\*62"):
        exact_matmul(np.array([[1 << 62]]), np.array([[1]]))


# --------------------------------------------------------------------------- systolic
@pytest.mark.parametrize("acc_bits", [None, 9, 20, 32])
@pytest.mark.parametrize("df", ["os", "ws", "is"])
def test_systolic_fast_equals_register_model(acc_bits, df):
    rng = np.random.default_rng(7)
    for _ in range(4):
        m, k, n = (int(v) for v in rng.integers(1, 9, 3))
        a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
        slow = simulate_gemm(a, b, 3, 4, df, acc_bits=acc_bits, overflow="wrap" if acc_bits else "raise").output
        assert np.array_equal(gemm_fast(a, b, acc_bits=acc_bits), slow)


def test_systolic_fast_wrap_is_python_int_modulo():
    a = np.full((1, 300), 127)
    b = np.full((300, 1), 127)
    exact = 300 * 127 * 127
    wrapped = (exact + (1 << 15)) % (1 << 16) - (1 << 15)
    assert gemm_fast(a, b, acc_bits=16)[0, 0] == wrapped
    with pytest.raises(ValueError, match="wrap"):
        gemm_fast(a, b, acc_bits=16, overflow="raise")


# --------------------------------------------------------------------------- SMMW
_SMMW = [SMMWConfig(), SMMWConfig(act_bits=8, operand_bits=24, lane_bits=48),
         SMMWConfig(drain_every=7, acc_bits=16), SMMWConfig(drain_every=300, allow_unsafe_drain=True),
         SMMWConfig(drain_every=1000, allow_unsafe_drain=True, acc_bits=17),
         SMMWConfig(act_bits=8, operand_bits=24, lane_bits=48, drain_every=5000, allow_unsafe_drain=True, acc_bits=24)]


@pytest.mark.parametrize("cfg", _SMMW, ids=range(len(_SMMW)))
@pytest.mark.parametrize("signed", [False, True])
def test_smmw_fast_equals_lane_kernel_including_carries(cfg, signed):
    rng = np.random.default_rng(3)
    lo_a, hi_a = (-(1 << (cfg.act_bits - 1)), 1 << (cfg.act_bits - 1)) if signed else (0, 1 << cfg.act_bits)
    lo_w, hi_w = (-(1 << (cfg.weight_bits - 1)), 1 << (cfg.weight_bits - 1)) if signed else (0, 1 << cfg.weight_bits)
    events = 0
    for trial in range(12):
        m, k, n = int(rng.integers(1, 4)), int(rng.integers(1, max(1400, cfg.drain_every + 600))), int(rng.integers(1, 6))
        if trial % 2:   # worst case: every operand at its unsigned maximum
            a, w = np.full((m, k), hi_a - 1), np.full((k, n), hi_w - 1)
        else:
            a, w = rng.integers(lo_a, hi_a, (m, k)), rng.integers(lo_w, hi_w, (k, n))
        ref = packed_gemm(a, w, config=cfg, signed=signed, on_carry="report")
        got = packed_gemm_fast(a.astype(np.int16), w.astype(np.int8), config=cfg, signed=signed, on_carry="report")
        assert np.array_equal(got.out, ref.out)
        assert (got.carry_detected, got.first_carry, got.drains_per_lane) == \
               (ref.carry_detected, ref.first_carry, ref.drains_per_lane)
        events += ref.carry_detected
        if not ref.carry_detected:   # independent: torch's int64 GEMM of the original operands
            assert np.array_equal(got.out, (torch.from_numpy(a) @ torch.from_numpy(w)).numpy())
    if cfg.allow_unsafe_drain:
        assert events > 0   # the carry path was exercised


def test_smmw_fast_matches_instruction_reference_and_raises():
    cfg = SMMWConfig(drain_every=300, allow_unsafe_drain=True)
    a, w = np.full((2, 301), 15), np.full((301, 3), 15)
    ref = packed_gemm_reference(a, w, config=cfg, on_carry="report")
    got = packed_gemm_fast(a, w, config=cfg, on_carry="report")
    assert np.array_equal(got.out, ref.out) and got.first_carry == ref.first_carry == (0, 291, 0, "field")
    with pytest.raises(CarryError):
        packed_gemm_fast(a, w, config=cfg)


# --------------------------------------------------------------------------- ternary
def _torch_bitlinear(y, t, beta, rounding, acc_bits):
    """Independent: torch's own rounding and F.linear (exact: |acc| < 2**24) in float32."""
    y = torch.from_numpy(y)
    m = y.abs().amax(-1).clamp(min=1e-5)
    s_x = (1.0 / m) * 127
    v = y * s_x[:, None]
    if rounding == "half_even":
        q = torch.round(v)
    else:
        r = torch.trunc(v)
        q = torch.where((v - r).abs() >= 0.5, r + torch.sign(v), r)
    acc = F.linear(q.clamp(-128, 127), torch.from_numpy(t.T.astype(np.float32))).to(torch.int64)
    half = 1 << (acc_bits - 1)
    acc = (acc + half) % (1 << acc_bits) - half
    return (acc.float() / s_x[:, None] / (1.0 / torch.tensor(beta))).numpy()


@pytest.mark.parametrize("rounding", ["half_even", "half_away"])
def test_bitlinear_fast_equals_slow_path_and_torch(rounding):
    rng = np.random.default_rng(11)
    for trial in range(40):
        m, k, n = (int(v) for v in rng.integers(1, 40, 3))
        y = (rng.standard_normal((m, k)) * 10.0 ** rng.integers(-6, 6)).astype(np.float32)
        if trial % 4 == 0:   # exact ties: max 127 * 2**j makes s_x = 2**-j
            y = ((rng.integers(-127, 127, (m, k)) + 0.5) * 2.0 ** -3).astype(np.float32)
            y[:, 0] = 127 * 2.0 ** -3
        t = rng.integers(-1, 2, (k, n)).astype(np.int8)
        beta = np.float32(rng.uniform(1e-5, 3))
        acc_bits = int(rng.integers(8, 26))
        got = bitlinear_normed_fast(y, t, beta, rounding=rounding, acc_bits=acc_bits)
        q, s_x = quantize_activations(y, rounding)
        slow = accumulate(q, TernaryWeights.from_ternary(t.T, beta), acc_bits, "flag").wrapped()
        assert np.array_equal(got.acc, slow)
        assert np.array_equal(got.out, dequantize(slow, s_x, np.float32(1) / beta))
        assert np.array_equal(got.out, _torch_bitlinear(y, t, beta, rounding, acc_bits))


def test_bitlinear_dequant_within_derived_float64_bound():
    """out = acc / s_x / s_w in float32 vs the same quantities in float64 from the exact acc:
    s_x = fl(fl(1/m) * 127) and s_w = fl(1/beta) carry 2 and 1 roundings, the two divisions 2
    more, so |out - acc * m * beta / 127| <= 5.01 u |...| with u = 2**-24 (first order)."""
    rng = np.random.default_rng(5)
    y = rng.standard_normal((20, 300)).astype(np.float32)
    t = rng.integers(-1, 2, (300, 30)).astype(np.int8)
    beta = np.float32(0.37)
    r = bitlinear_normed_fast(y, t, beta)
    m = np.abs(y).max(-1).astype(np.float64)
    exact = r.acc * m[:, None] * float(beta) / 127
    assert np.all(np.abs(r.out - exact) <= 5.01 * 2.0 ** -24 * np.abs(exact))


# --------------------------------------------------------------------------- MoE
@pytest.mark.parametrize("wrap", [False, True])
def test_moe_fast_equals_both_schedules_and_torch_reference(wrap):
    from test_rtl_moe import torch_reference

    rng = np.random.default_rng(2)
    for trial in range(8):
        d, h, n = int(rng.integers(1, 14)), int(rng.integers(1, 14)), int(rng.integers(1, 9))
        nm = MoENumerics(acc_bits=int(rng.integers(30, 48)), on_overflow="wrap") if wrap else \
            MoENumerics(rounding=("floor", "half_away")[trial % 2], activation=("gelu_lut", "relu")[trial % 2])
        cfg = MoEConfig(d_model=d, d_hidden=h, n_experts=n, top_k=int(rng.integers(1, n + 1)), numerics=nm)
        w = MoEWeights.random(cfg, rng)
        x = nm.act.quantize(rng.normal(size=(int(rng.integers(1, 12)), d)) * 4)
        fast = moe_forward_fast(x, prepare_weights(w, cfg), cfg)
        for sch in ("token", "reorder"):
            slow = moe_forward(x, w, cfg, schedule=sch)
            assert np.array_equal(fast.output, slow.output)
            assert fast.overflow_counts == slow.overflow_counts and fast.saturation_counts == slow.saturation_counts
        ref = torch_reference(x, w, cfg)
        assert torch.equal(torch.from_numpy(np.array(fast.output)), ref["output"])


def test_moe_prepared_weights_checked():
    cfg = MoEConfig(d_model=4, d_hidden=4, n_experts=2, top_k=1)
    w = MoEWeights.random(cfg, np.random.default_rng(0))
    bad = MoEWeights(w.gate, w.w1 * 0 + (1 << 20), w.b1, w.w2, w.b2)
    with pytest.raises(ValueError, match="outside"):
        prepare_weights(bad, cfg)
    other = MoEConfig(d_model=4, d_hidden=4, n_experts=2, top_k=2)
    with pytest.raises(ValueError, match="different"):
        moe_forward_fast(np.zeros((1, 4), np.int64), prepare_weights(w, cfg), other)


# --------------------------------------------------------------------------- BitMoD
_PE = [PEConfig(), PEConfig(rounding=Rounding.TRUNCATE), PEConfig.exact(),
       PEConfig(guard_bits=0, acc_man_bits=4, deq_man_bits=5, out_man_bits=6),
       PEConfig(guard_bits=0, acc_man_bits=2, deq_man_bits=2, out_man_bits=2, rounding=Rounding.TRUNCATE),
       PEConfig(**FAST_LIMITS), PEConfig(**FAST_LIMITS, rounding=Rounding.TRUNCATE)]


def _bitmod_case(rng, trial):
    bits = (3, 4, 6, 8)[trial % 4]
    group = (4, 8, 16, 32, 128)[trial % 5]
    k, c, t = int(rng.integers(1, 4)), group * int(rng.integers(1, 3)), int(rng.integers(1, 4))
    w = rng.standard_normal((k, c)) * 10.0 ** rng.integers(-3, 3)
    if trial % 5 == 0:
        w[:, :group] = 0                    # an all-zero group
    act = (rng.standard_normal((t, c)) * 10.0 ** rng.integers(-6, 4)).astype(np.float16)
    if trial % 3 == 0:                      # FP16 extremes: max, subnormals, zeros
        act[:, ::3] = np.float16(65504)
        act[:, 1::3] = np.float16(-6e-8)
        act[:, 2::5] = 0
    return quantize_weights(w, bits=bits, group=group, int8_scale=bool(trial % 2)), act


@pytest.mark.parametrize("cfg", _PE, ids=range(len(_PE)))
def test_bitmod_pe_fast_equals_cycle_stepped_pe(cfg):
    rng = np.random.default_rng(13)
    for trial in range(20):
        quant, act = _bitmod_case(rng, trial)
        slow, fast = pe_dot(quant, act, config=cfg), pe_dot_fast(quant, act, config=cfg)
        assert np.array_equal(fast.outputs, slow.outputs), (trial, cfg)
        assert fast.cycles_per_output == slow.cycles_per_output


def test_bitmod_exact_pe_equals_fraction_sum_rounded_once():
    """Independent of both PE paths: the exact dot product in Fraction arithmetic, rounded once."""
    rng = np.random.default_rng(17)
    for trial in range(6):
        quant, act = _bitmod_case(rng, trial)
        got = pe_dot_fast(quant, act, config=PEConfig.exact()).outputs
        k, c = quant.codes.shape
        for i in range(act.shape[0]):
            for r in range(k):
                tot = Fraction(0)
                for g in range(quant.n_groups):
                    sl = slice(g * quant.group, (g + 1) * quant.group)
                    dot = sum(Fraction(float(a)) * int(q) for a, q in zip(act[i, sl], quant.codes[r, sl]))
                    if quant.scale_codes is None:
                        tot += dot * Fraction(float(quant.scales[r, g]))
                    else:
                        tot += dot * int(quant.scale_codes[r, g])
                if quant.scale_codes is not None:
                    tot *= Fraction(float(quant.channel_scales[r]))
                assert got[i, r] == float(tot)   # float(Fraction) rounds to nearest-even once


def _argmin_quantizer(w: np.ndarray, bits: int, group: int) -> np.ndarray:
    """BitMoD's search as AWQ-BitMoD writes it: nearest value by argmin of squared distance (first
    index wins a tie, i.e. the lower value), not by midpoints; float16 steps in torch."""
    sets = candidate_sets(bits)
    wt = torch.from_numpy(w).half().reshape(w.shape[0], -1, group)
    best_err, best = None, None
    for vs in sets:
        vals = torch.tensor(vs.values, dtype=torch.float16)
        scale = (wt.abs().amax(-1, keepdim=True) / vs.qmax).clamp(1e-5, 1e4)
        x = wt / scale
        idx = torch.argmin((x.unsqueeze(-1).float() - vals.float()) ** 2, dim=-1)
        deq = vals[idx] * scale
        err = ((deq - wt) ** 2).double().sum(-1).float().div(group).half()
        if best is None:
            best_err, best = err, deq
        else:
            upd = err < best_err
            best_err = torch.where(upd, err, best_err)
            best = torch.where(upd.unsqueeze(-1), deq, best)
    return best.reshape(w.shape).numpy()


@pytest.mark.parametrize("bits", [3, 4])
def test_bitmod_quantizer_equals_argmin_formulation(bits):
    rng = np.random.default_rng(23)
    w = (rng.standard_normal((64, 256)) * 0.05).astype(np.float16)
    w[3, :128] = 0
    w[5, 7] = 2.0
    got = quantize_weights(w, bits=bits, group=128).dequant()
    assert np.array_equal(got, _argmin_quantizer(w.astype(np.float64), bits, 128))


def test_bitmod_fast_rejects_unsupported_widths():
    quant = quantize_weights(np.ones((1, 8)), bits=4, group=8)
    with pytest.raises(ValueError, match="acc_man_bits"):
        pe_dot_fast(quant, np.ones(8, np.float16), config=PEConfig(acc_man_bits=30))
    with pytest.raises(ValueError, match="guard_bits"):
        pe_dot_fast(quant, np.ones(8, np.float16), config=PEConfig(guard_bits=None))
    assert math.isfinite(pe_dot_fast(quant, np.ones(8, np.float16)).outputs[0])
