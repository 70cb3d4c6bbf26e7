"""Bit-exact tests of the SMMW SIMD multiplier model (rtl_models/simd) against torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtl_models.simd import (CarryError, LayoutError, SMMWConfig, SMMWLane, offset_correction, offset_encode,
                             op_counts, packed_gemm, packed_gemm_reference, quantize_multiplier, requantize)

PAPER = SMMWConfig()


def torch_mm(a: np.ndarray, w: np.ndarray) -> torch.Tensor:
    """The reference: a torch int32 matmul of the same integer operands."""
    return torch.matmul(torch.from_numpy(a).to(torch.int32), torch.from_numpy(w).to(torch.int32))


def assert_equals_torch(out: np.ndarray, a: np.ndarray, w: np.ndarray) -> None:
    ref = torch_mm(a, w)
    assert out.dtype == np.int64
    assert torch.equal(torch.from_numpy(out), ref.to(torch.int64))
    assert torch.equal(torch.from_numpy(out).to(torch.int32), ref)


# ---------------------------------------------------------------- layout
def test_paper_layout_is_derived_from_parameters():
    c = PAPER
    assert (c.slot_bits, c.field_bits, c.product_bits, c.guard) == (8, 16, 8, 8)
    assert c.spread_mask == 0x00FF00FF and c.spread_shift == 8
    assert c.max_product == 225
    # 291 * 225 = 65475 <= 65535 < 292 * 225 = 65700
    assert c.max_safe_accumulations == 291
    assert SMMWConfig(guard_bits=8).guard == 8


def test_wider_activation_layouts():
    c = SMMWConfig(lane_bits=48, operand_bits=24, act_bits=8)
    assert (c.slot_bits, c.field_bits, c.product_bits, c.guard) == (12, 24, 12, 12)
    assert c.spread_mask == 0x000FFF000FFF
    assert c.max_safe_accumulations == (2**24 - 1) // (15 * 255)


@pytest.mark.parametrize("kwargs, needle", [
    (dict(act_bits=8), "needs 12 bits"),
    (dict(lane_bits=24), "lane_bits >= 2*operand_bits = 32"),
    (dict(guard_bits=6), "guard_bits must be 8"),
    (dict(drain_every=292), "1..291"),
    (dict(drain_every=0), "drain_every=0"),
    (dict(lane_bits=0), "lane_bits=0"),
    (dict(weight_bits=-4), "weight_bits=-4"),
    (dict(lane_bits=33), "lane_bits=33"),
    (dict(operand_bits=15), "operand_bits=15"),
    (dict(lane_bits=128, operand_bits=16), "[2, 64]"),
    (dict(acc_bits=8), "acc_bits=8"),
])
def test_bad_layouts_raise_clear_errors(kwargs, needle):
    with pytest.raises(LayoutError, match=None) as err:
        SMMWConfig(**kwargs)
    assert needle in str(err.value)
    assert isinstance(err.value, ValueError)


# ---------------------------------------------------------------- one lane
def test_lane_spread_matches_the_paper_instruction_sequence_exhaustively():
    # torch transcription of sheet §2: p = x * a (16-bit); p |= p << 8; p &= 0x00FF00FF
    w0, w1, a = torch.meshgrid(torch.arange(16), torch.arange(16), torch.arange(16), indexing="ij")
    x = (w0 | (w1 << 8)).to(torch.int64)
    p = (x * a) & 0xFFFF
    p = (p | (p << 8)) & 0xFFFFFFFF
    p = p & 0x00FF00FF
    lane = SMMWLane(PAPER)
    ours = torch.tensor([lane.spread(int(xi), int(ai)) for xi, ai in zip(x.flatten(), a.flatten())])
    assert torch.equal(ours, p.flatten())
    assert torch.equal(p.flatten() & 0xFFFF, (w0 * a).flatten())
    assert torch.equal(p.flatten() >> 16, (w1 * a).flatten())


def test_lane_accumulates_and_drains_exactly_at_the_safe_limit():
    lane = SMMWLane(PAPER)
    x = 15 | (15 << 8)
    for _ in range(291):
        lane.mac(x, 15)
    assert not lane.carry_detected
    assert lane.drain() == (291 * 225, 291 * 225)
    assert lane.value == 0 and lane.count == 0


def test_lane_detects_carry_and_raises_or_reports_the_wrapped_value():
    x = 15 | (15 << 8)
    lane = SMMWLane(PAPER)
    for _ in range(291):
        lane.mac(x, 15)
    with pytest.raises(CarryError, match="field 0 carried after 292"):
        lane.mac(x, 15)
    rep = SMMWLane(PAPER, on_carry="report")
    for _ in range(292):
        rep.mac(x, 15)
    assert rep.carry_detected
    # 292*225 = 65700: field 0 wraps to 164 and carries 1 into field 1 (165); field 1's carry leaves the lane
    assert rep.drain() == (65700 - 65536, 65700 - 65536 + 1)


def test_lane_rejects_out_of_range_operands():
    lane = SMMWLane(PAPER)
    with pytest.raises(LayoutError, match=r"activation 16 outside \[0, 15\]"):
        lane.mac(0, 16)
    with pytest.raises(LayoutError, match=r"outside \[0, 65535\]"):
        lane.mac(1 << 16, 1)
    with pytest.raises(LayoutError, match="on_carry"):
        SMMWLane(PAPER, on_carry="ignore")


# ---------------------------------------------------------------- GEMM
SHAPES = [(1, 1, 1), (3, 7, 5), (4, 256, 6), (2, 257, 3), (5, 1000, 9), (3, 2049, 8), (7, 513, 1)]


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_packed_gemm_equals_torch_unsigned(m, k, n):
    rng = np.random.default_rng(1000 * m + k + n)
    a = rng.integers(0, 16, (m, k))
    w = rng.integers(0, 16, (k, n))
    res = packed_gemm(a, w)
    assert not res.carry_detected and res.first_carry is None
    assert res.drains_per_lane == -(-k // 256)
    assert_equals_torch(res.out, a, w)


@pytest.mark.parametrize("m,k,n", [(2, 3000, 5), (3, 291, 4), (1, 4096, 2)])
@pytest.mark.parametrize("drain", [256, 291, 1, 7])
def test_packed_gemm_adversarial_all_15(m, k, n, drain):
    a = np.full((m, k), 15)
    w = np.full((k, n), 15)
    res = packed_gemm(a, w, config=SMMWConfig(drain_every=drain))
    assert not res.carry_detected
    assert_equals_torch(res.out, a, w)


@pytest.mark.parametrize("m,k,n", [(2, 5, 3), (3, 300, 7), (4, 1100, 6), (1, 1, 1)])
def test_packed_gemm_signed_offset_encoding(m, k, n):
    rng = np.random.default_rng(7 * k + n)
    a = rng.integers(-8, 8, (m, k))
    w = rng.integers(-8, 8, (k, n))
    a[0, :] = -8  # adversarial extremes: a_u = 0 and w_u = 15 rows/columns
    w[:, 0] = 7
    res = packed_gemm(a, w, signed=True)
    assert_equals_torch(res.out, a, w)
    for fill in (-8, 7):
        full_a, full_w = np.full((m, k), fill), np.full((k, n), fill)
        assert_equals_torch(packed_gemm(full_a, full_w, signed=True).out, full_a, full_w)


def test_offset_encode_and_per_column_offsets():
    rng = np.random.default_rng(3)
    assert offset_encode(np.array([-8, 0, 7]), 4).tolist() == [0, 8, 15]
    a = rng.integers(0, 16, (4, 40))
    w_u = rng.integers(0, 16, (40, 6))
    zero = rng.integers(0, 16, 6)  # asymmetric per-output-channel weight zero points
    c_u = packed_gemm(a, w_u).out
    ours = offset_correction(c_u, a, w_u, 0, zero)
    ref = torch_mm(a, w_u - zero[None, :])
    assert torch.equal(torch.from_numpy(ours), ref.to(torch.int64))


def test_eight_bit_activations_on_a_wider_lane():
    cfg = SMMWConfig(lane_bits=48, operand_bits=24, act_bits=8, drain_every=4096)
    rng = np.random.default_rng(8)
    a = rng.integers(0, 256, (3, 5000))
    w = rng.integers(0, 16, (5000, 5))
    assert_equals_torch(packed_gemm(a, w, config=cfg).out, a, w)
    a_full, w_full = np.full((2, 4386 * 2 + 3), 255), np.full((4386 * 2 + 3, 3), 15)
    cfg = SMMWConfig(lane_bits=48, operand_bits=24, act_bits=8, drain_every=4386)
    assert_equals_torch(packed_gemm(a_full, w_full, config=cfg).out, a_full, w_full)
    s_a, s_w = rng.integers(-128, 128, (2, 700)), rng.integers(-8, 8, (700, 3))
    assert_equals_torch(packed_gemm(s_a, s_w, config=cfg, signed=True).out, s_a, s_w)


def test_sixty_four_bit_lane_with_int8_weights():
    cfg = SMMWConfig(lane_bits=64, operand_bits=32, weight_bits=8, act_bits=8, acc_bits=40)
    assert cfg.max_safe_accumulations == (2**32 - 1) // (255 * 255)
    rng = np.random.default_rng(64)
    a, w = rng.integers(0, 256, (3, 900)), rng.integers(0, 256, (900, 5))
    assert_equals_torch(packed_gemm(a, w, config=cfg).out, a, w)
    a, w = np.full((2, 300), 255), np.full((300, 3), 255)
    assert_equals_torch(packed_gemm(a, w, config=cfg).out, a, w)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("m,k,n,drain", [(2, 600, 5, 256), (3, 37, 4, 5), (1, 300, 1, 291)])
def test_kernel_equals_slow_lane_reference(m, k, n, drain, signed):
    rng = np.random.default_rng(m + k + n + drain)
    lo, hi = (-8, 8) if signed else (0, 16)
    a, w = rng.integers(lo, hi, (m, k)), rng.integers(lo, hi, (k, n))
    cfg = SMMWConfig(drain_every=drain)
    fast = packed_gemm(a, w, config=cfg, signed=signed)
    slow = packed_gemm_reference(a, w, config=cfg, signed=signed)
    assert np.array_equal(fast.out, slow.out)
    assert_equals_torch(slow.out, a, w)


# ---------------------------------------------------------------- carry detection
def test_unsafe_drain_carry_is_detected_never_silent():
    cfg = SMMWConfig(drain_every=292, allow_unsafe_drain=True)
    a, w = np.full((2, 292), 15), np.full((292, 3), 15)
    with pytest.raises(CarryError, match="field overflow at row m=0, step k=291"):
        packed_gemm(a, w, config=cfg)
    fast = packed_gemm(a, w, config=cfg, on_carry="report")
    slow = packed_gemm_reference(a, w, config=cfg, on_carry="report")
    assert fast.carry_detected and slow.carry_detected
    assert fast.first_carry == slow.first_carry == (0, 291, 0, "field")
    assert np.array_equal(fast.out, slow.out)
    # the reported value is the corrupted hardware value, not the exact one
    assert fast.out.tolist() == [[164, 165, 164]] * 2
    assert not torch.equal(torch.from_numpy(fast.out), torch_mm(a, w).to(torch.int64))


def test_unsafe_drain_without_overflowing_operands_stays_exact():
    cfg = SMMWConfig(drain_every=1000, allow_unsafe_drain=True)
    rng = np.random.default_rng(5)
    a, w = rng.integers(0, 4, (3, 2500)), rng.integers(0, 4, (2500, 4))  # 1000 * 9 < 65536
    res = packed_gemm(a, w, config=cfg)
    assert not res.carry_detected
    assert_equals_torch(res.out, a, w)


def test_wide_accumulator_overflow_is_reported():
    cfg = SMMWConfig(acc_bits=16)
    a, w = np.full((1, 300), 15), np.full((300, 2), 15)  # 67500 > 65535
    with pytest.raises(CarryError, match="accumulator overflow"):
        packed_gemm(a, w, config=cfg)
    res = packed_gemm(a, w, config=cfg, on_carry="report")
    assert res.first_carry == (0, 299, 0, "accumulator")
    assert packed_gemm_reference(a, w, config=cfg, on_carry="report").first_carry == res.first_carry


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("a, w, kwargs, needle", [
    (np.full((2, 3), 16), np.ones((3, 2), int), {}, r"A holds 16, outside the unsigned 4-bit range \[0, 15\]"),
    (np.ones((2, 3), int), -np.ones((3, 2), int), {}, r"W holds -1, outside the unsigned 4-bit range"),
    (np.full((2, 3), 8), np.ones((3, 2), int), dict(signed=True), r"A holds 8, outside the signed 4-bit range \[-8, 7\]"),
    (np.ones((2, 3)), np.ones((3, 2), int), {}, "integer array"),
    (np.ones((2, 3), int), np.ones((4, 2), int), {}, "inner dimensions differ"),
    (np.ones((0, 3), int), np.ones((3, 2), int), {}, "non-empty 2-D"),
    (np.ones((2, 3), int), np.ones((3, 2), int), dict(on_carry="warn"), "on_carry"),
])
def test_bad_gemm_input_raises_value_error(a, w, kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        packed_gemm(a, w, **kwargs)


# ---------------------------------------------------------------- op counts
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("m,k,n,drain", [(2, 600, 5, 256), (3, 37, 4, 5), (1, 1, 1, 256)])
def test_op_counts_match_the_executed_instructions(m, k, n, drain, signed):
    cfg = SMMWConfig(drain_every=drain)
    lo, hi = (-8, 8) if signed else (0, 16)
    rng = np.random.default_rng(k)
    res = packed_gemm_reference(rng.integers(lo, hi, (m, k)), rng.integers(lo, hi, (k, n)),
                                config=cfg, signed=signed)
    pred = op_counts(m, k, n, config=cfg, signed=signed).as_dict()
    assert {op: c for op, c in pred.items() if c} == res.ops


def test_op_count_model_values():
    oc = op_counts(1, 512, 8)  # 4 lanes, 2 drains each
    assert (oc.mul, oc.lsl, oc.orr) == (4 * 512,) * 3
    assert oc.and_ == 4 * 512 + 4 * 2 and oc.add == 4 * 512 + 2 * 4 * 2 and oc.lsr == oc.mov == 8
    assert oc.per_mac == pytest.approx((5 * 512 + 5 * 2) / (2 * 512))
    vec = op_counts(2, 512, 8, lanes_per_vector=4)  # one NEON vector per row
    assert vec.lane_groups == 2 and vec.mul == 2 * 512
    rq = op_counts(2, 16, 8, requantize=True, lanes_per_vector=4)
    assert (rq.asr, rq.minmax) == (4, 8)
    assert (oc.offline_lsl, oc.offline_orr) == (512 * 4, 512 * 4)
    with pytest.raises(ValueError, match="lanes_per_vector=0"):
        op_counts(1, 1, 1, lanes_per_vector=0)


# ---------------------------------------------------------------- requantization
def test_requantize_matches_torch_fixed_point():
    rng = np.random.default_rng(11)
    a, w = rng.integers(0, 16, (6, 700)), rng.integers(0, 16, (700, 10))
    raw = packed_gemm(a, w).out
    lo = int(raw.min())
    acc = raw - lo  # centre the range so the INT4 codes spread out
    mult, shift = quantize_multiplier(14.0 / float(acc.max()))
    q = requantize(acc, mult, shift, zero_point=1, bits=4)
    t = torch_mm(a, w).to(torch.int64) - lo
    ref = torch.clamp(((t * mult + (1 << (shift - 1))) >> shift) + 1, 0, 15)
    assert torch.equal(torch.from_numpy(q), ref)
    assert q.min() >= 0 and q.max() <= 15 and len(np.unique(q)) > 4
    per_col = rng.integers(1 << 20, 1 << 30, 10)
    qs = requantize(acc - 1000, per_col, 36, bits=8, signed=True)
    ref = torch.clamp((((t - 1000) * torch.from_numpy(per_col) + (1 << 35)) >> 36), -128, 127)
    assert qs.min() < 0 < qs.max()
    assert torch.equal(torch.from_numpy(qs), ref)


def test_quantize_multiplier_accuracy_and_errors():
    for scale in (1e-4, 0.37, 1.0, 3.5):
        mult, shift = quantize_multiplier(scale)
        assert 1 << 30 <= mult < 1 << 31
        assert abs(mult / 2**shift - scale) <= scale * 2.0**-31
    with pytest.raises(ValueError, match="scale=0"):
        quantize_multiplier(0)
    with pytest.raises(ValueError, match=r"shift=0 is outside the allowed range \[1, 62\]"):
        requantize(np.ones(3, int), 5, 0)
    with pytest.raises(ValueError, match="beyond int64"):
        requantize(np.full(3, 1 << 40), (1 << 31) - 1, 4)
