"""The BitMoD PE's float-lane kernel and exact-PE accumulator (``rtl_models/bitmod/fast.py``):
the corner cases their formulation adds, each against a reference that shares neither its code
nor its op order (the slow model's Python-int rounding, Python integers, ``fractions.Fraction``,
the int64 mantissa kernel, the cycle-stepped PE).

The end-to-end equality with the cycle-stepped PE on the standard configurations is in
``test_rtl_fast.py``."""

from __future__ import annotations

from fractions import Fraction

import numba
import numpy as np
import pytest

from rtl_models.bitmod import PEConfig, Rounding, pe_dot, quantize_weights
from rtl_models.bitmod import _exact_kernels as ek
from rtl_models.bitmod import _float_kernels as flk
from rtl_models.bitmod.fast import (FAST_LIMITS, _exact, _exact_fsum, _rtl, _rtl_int64, _safe_blocks,
                                    pe_dot_fast)
from rtl_models.bitmod.pe import _add, _round

_MODES = [(Rounding.RNE, False), (Rounding.TRUNCATE, True)]


@numba.njit
def _two_sum_round(a, b, d, trunc):
    return flk.two_sum_round(a, b, d, trunc)


@numba.njit
def _round_exact(x, d, trunc):
    return flk.round_exact(x, d, (np.int64(d) << 52) + (np.int64(1) << 51), trunc)


def _slow(ma, xa, mb, xb, width, mode):
    """The cycle-stepped PE's add-and-round on Python ints, as an exact Fraction."""
    m, x = _round(*_add(ma, xa, mb, xb), width, mode)
    return Fraction(m) * Fraction(2) ** x


def _operands(rng, n):
    """Pairs of register values m * 2**x: mantissas up to 26 bits (a few tiny ones, to make
    rounding ties likely), exponent gaps from 0 to 90 bits, both signs, zeros."""
    for i in range(n):
        bits_a, bits_b = (int(v) for v in rng.integers(1, 27, 2))
        if i % 3 == 0:
            bits_a, bits_b = (int(v) for v in rng.integers(1, 5, 2))
        ma = int(rng.integers(-(1 << bits_a) + 1, 1 << bits_a))
        mb = int(rng.integers(-(1 << bits_b) + 1, 1 << bits_b))
        xa = int(rng.integers(-60, 40))
        gap = int(rng.choice([0, 1, 2, 5, 20, 27, 28, 29, 30, 31, 40, 53, 54, 60, 90]))
        xb = xa + gap * int(rng.choice([-1, 1]))
        yield ma, xa, mb, xb


@pytest.mark.parametrize("mode,trunc", _MODES)
def test_two_sum_round_equals_slow_add_and_round(mode, trunc):
    """``round_sum`` sees only ``fl(a + b)`` and the sign of its error: equal to rounding the
    exact sum on Python ints for every width 2..26, including ties broken by a far smaller
    operand (exponent gaps beyond 53 bits) and carries into the next binade."""
    rng = np.random.default_rng(0)
    checked = inexact = 0
    for ma, xa, mb, xb in _operands(rng, 4000):
        a, b = float(Fraction(ma) * Fraction(2) ** xa), float(Fraction(mb) * Fraction(2) ** xb)
        inexact += Fraction(a) + Fraction(b) != Fraction(a + b)
        for width in (2, 3, 5, 15, 21, 25, 26):
            got = _two_sum_round(a, b, 54 - width, trunc)
            assert Fraction(got) == _slow(ma, xa, mb, xb, width, mode), (ma, xa, mb, xb, width)
            checked += 1
    assert checked == 28000 and inexact > 300   # the TwoSum error path was exercised


@pytest.mark.parametrize("mode,trunc", _MODES)
def test_round_exact_equals_slow_round(mode, trunc):
    """The exact-add form (magic-number RNE, bit-pattern floor) on exactly representable sums."""
    rng = np.random.default_rng(1)
    for ma, xa, mb, xb in _operands(rng, 4000):
        if abs(xa - xb) > 26:
            continue
        x = float(Fraction(ma) * Fraction(2) ** xa + Fraction(mb) * Fraction(2) ** xb)  # exact
        for width in (2, 3, 4, 15, 24):
            assert Fraction(_round_exact(x, 54 - width, trunc)) == _slow(ma, xa, mb, xb, width, mode)


@numba.njit
def _limb_sum(ps, shs):
    h = np.int64(0)
    lo = np.int64(0)
    for i in range(ps.shape[0]):
        h, lo = ek.limb_add(h, lo, ps[i], shs[i])
    return h, lo


@numba.njit
def _limbs_to_float(h, lo, m, e):
    return ek.limbs_to_float(h, lo, m, e)


def test_exact_limbs_equal_python_integers():
    """The exact PE's two-limb integer sum and its final rounding against Python ints and
    Fraction, including totals with ``a >= 2**53`` (the integer-rounding branch) and ties."""
    rng = np.random.default_rng(2)
    for _ in range(300):
        n = int(rng.integers(1, 60))
        d = rng.integers(-(1 << 52) + 1, 1 << 52, n)
        d[rng.random(n) < 0.2] = 0
        p = d * rng.integers(0, 2048, n)                 # D * s < 2**63, as the kernel forms it
        sh = rng.integers(0, 30, n)
        h, lo = _limb_sum(p.astype(np.int64), sh.astype(np.int64))
        assert int(h) * (1 << 52) + int(lo) == sum(int(x) << int(y) for x, y in zip(p, sh))
        assert 0 <= lo < 1 << 52
    cases = [((1 << 55) + 4, 0, 1, 0), ((1 << 55) + 4, 1, 1, 0),   # a tie (even stays), + sticky
             (-(1 << 55) - 12, 0, 1, 0), (-(1 << 53), 5, 1, -3),    # negative odd tie; the borrow case
             ((1 << 53) - 1, (1 << 52) - 1, 1, 0), (-1, 1, 1, -60), (0, 0, 7, 0)]
    for _ in range(3000):
        h = int(rng.integers(-(1 << 58), 1 << 58)) >> int(rng.integers(0, 58))
        cases.append((h, int(rng.integers(0, 1 << 52)), int(rng.integers(1, 2048)), int(rng.integers(-90, 20))))
    for h, lo, m, e in cases:
        h = h // m if abs(h) * m >= 1 << 62 else h      # keep h * m within int64, as in the kernel
        got = _limbs_to_float(np.int64(h), np.int64(lo), np.int64(m), np.int64(e))
        assert got == float(Fraction((h * (1 << 52) + lo) * m) * Fraction(2) ** e), (h, lo, m, e)


def _case(rng, trial):
    bits = (3, 4, 6, 8)[trial % 4]
    group = (4, 8, 16, 32, 128, 256)[trial % 6]
    k = int(rng.integers(1, 70))
    c = group * int(rng.integers(1, 3 if group >= 128 else 6))
    t = int(rng.integers(1, 40)) if trial % 3 else int(rng.integers(1, 5))  # both token-block widths
    w = rng.standard_normal((k, c)) * 10.0 ** rng.integers(-3, 3)
    if trial % 5 == 0:
        w[:, :group] = 0
    act = (rng.standard_normal((t, c)) * 10.0 ** rng.integers(-6, 4)).astype(np.float16)
    if trial % 4 == 1:                               # FP16 extremes within a group: TwoSum adds
        act[:, ::3] = np.float16(65504)
        act[:, 1::3] = np.float16(-6e-8)
        act[:, 2::5] = 0
    return quantize_weights(w, bits=bits, group=group, int8_scale=bool(trial % 2)), act


_WIDTHS = [PEConfig(), PEConfig(rounding=Rounding.TRUNCATE),
           PEConfig(guard_bits=0, acc_man_bits=2, deq_man_bits=2, out_man_bits=2),
           PEConfig(guard_bits=1, acc_man_bits=5, deq_man_bits=6, out_man_bits=7, rounding=Rounding.TRUNCATE),
           PEConfig(guard_bits=5, acc_man_bits=11, deq_man_bits=13, out_man_bits=17),
           PEConfig(**FAST_LIMITS), PEConfig(**FAST_LIMITS, rounding=Rounding.TRUNCATE)]


@pytest.mark.parametrize("cfg", _WIDTHS, ids=range(len(_WIDTHS)))
def test_float_kernel_equals_int64_kernel(cfg):
    """Random and edge-case layers (1..69 rows: partial row chunks and blocks; 1..39 tokens:
    4- and 16-token blocks, padded; groups 4..256; INT8 Booth and ext-FP terms; FP16 and INT8
    scales) on the float-lane kernel, in both accumulator forms, against the int64 kernel."""
    rng = np.random.default_rng(5)
    forms = set()
    for trial in range(24):
        quant, act = _case(rng, trial)
        ref = _rtl_int64(quant, act, cfg)
        got = _rtl(quant, act, cfg)
        assert np.array_equal(got, ref), trial
        assert np.array_equal(_rtl(quant, act, cfg, twosum=True), ref), trial
        assert np.array_equal(pe_dot_fast(quant, act, config=cfg).outputs, ref)
        e = np.maximum((act.view(np.uint16).astype(np.int64) >> 10) & 31, 1)
        tb = 4 if act.shape[0] <= 4 else 16
        pad = -act.shape[0] % tb
        safe = _safe_blocks(np.pad(e, ((0, pad), (0, 0)), constant_values=1),
                            np.pad(act != 0, ((0, pad), (0, 0))), quant.group, cfg.guard_bits,
                            quant.bits, cfg.acc_man_bits, tb)
        forms.update(np.unique(safe).tolist())
    if cfg.acc_man_bits >= 11:
        assert forms == {False, True}              # both accumulator forms ran


def test_float_kernel_threaded_layer_equals_int64_kernel():
    """A layer above the threading threshold (parallel row blocks)."""
    rng = np.random.default_rng(6)
    w = rng.standard_normal((67, 1024)) * 0.02
    act = rng.standard_normal((20, 1024)).astype(np.float16)
    act[3, 128:256] *= np.float16(1e-4)
    for bits, int8 in ((4, False), (3, True), (6, False)):
        quant = quantize_weights(w, bits=bits, group=128, int8_scale=int8)
        for cfg in (PEConfig(), PEConfig(rounding=Rounding.TRUNCATE)):
            assert np.array_equal(pe_dot_fast(quant, act, config=cfg).outputs, _rtl_int64(quant, act, cfg))


def test_exact_adds_at_the_proven_bound():
    """Activation spread exactly at the limit ``_safe_blocks`` allows, worst-case magnitudes
    (every lane at 65504 or the group's largest code): the exact-add form still equals the
    TwoSum form and the int64 kernel; one binade more switches the block to TwoSum adds."""
    rng = np.random.default_rng(7)
    for bits in (4, 8):
        cfg = PEConfig()
        w = np.full((3, 128), 1.0)
        w[1] = -1.0
        w[2, ::2] = -1.0
        quant = quantize_weights(w, bits=bits, group=128)
        e_top = 30                                    # 65504
        probe = np.zeros((1, 128), np.float16)
        safe_of = lambda a: _safe_blocks(np.maximum((a.view(np.uint16).astype(np.int64) >> 10) & 31, 1),
                                         a != 0, 128, cfg.guard_bits, bits, cfg.acc_man_bits, 1)
        allowed = next(s for s in range(40) if not safe_of(_spread(probe, e_top, s, rng))[0, 0]) - 1
        assert allowed >= 10
        for spread, expect in ((allowed, True), (allowed + 1, False)):
            act = np.tile(_spread(probe, e_top, spread, rng), (16, 1))
            act[1::2] *= np.float16(-1)
            assert safe_of(act[:1])[0, 0] == expect
            ref = _rtl_int64(quant, act, cfg)
            assert np.array_equal(_rtl(quant, act, cfg), ref)
            assert np.array_equal(_rtl(quant, act, cfg, twosum=True), ref)


def _spread(probe, e_top, spread, rng):
    """One group: lane group 0 at 65504, the others with largest biased exponent e_top - spread
    and random significands below it."""
    a = probe.copy()
    a[0, :4] = np.float16(65504)
    low = float(2.0 ** (e_top - spread - 15))
    a[0, 4:] = (low * (1 + rng.random(124) * 0.999)).astype(np.float16)
    return a


def test_float_kernel_equals_cycle_stepped_pe_with_16_token_blocks():
    """The 16-token block path (5..20 tokens, padded) against the cycle-stepped PE itself."""
    rng = np.random.default_rng(8)
    for trial, cfg in enumerate([PEConfig(), PEConfig(rounding=Rounding.TRUNCATE), PEConfig.exact(),
                                 PEConfig(guard_bits=0, acc_man_bits=3, deq_man_bits=4, out_man_bits=5)]):
        quant = quantize_weights(rng.standard_normal((5, 64)), bits=(4, 3, 8, 6)[trial], group=32,
                                 int8_scale=bool(trial % 2))
        act = (rng.standard_normal((int(rng.integers(5, 21)), 64)) * 10.0 ** (trial - 2)).astype(np.float16)
        act[0, :7] = np.float16(65504)
        slow = pe_dot(quant, act, config=cfg)
        assert np.array_equal(pe_dot_fast(quant, act, config=cfg).outputs, slow.outputs)


def test_exact_pe_integer_accumulator_equals_fsum_path():
    """``PEConfig.exact()``: the two-limb integer kernel against the Dekker + ``math.fsum`` path
    on random and extreme inputs (all lanes at +-65504 with the largest scales), both token-block
    widths, partial row blocks."""
    rng = np.random.default_rng(9)
    for trial in range(40):
        quant, act = _case(rng, trial)
        if trial % 7 == 0:
            act = (np.float16(65504) * np.sign(rng.standard_normal(act.shape))).astype(np.float16)
            quant = quantize_weights(np.sign(rng.standard_normal(quant.codes.shape)) * 6e4, bits=quant.bits,
                                     group=quant.group, int8_scale=bool(trial % 2))
        assert np.array_equal(_exact(quant, act), _exact_fsum(quant, act)), trial
