"""Amaranth generator of the MatMul-free ternary accumulate unit, held to :func:`accumulate`.

One beat per cycle carries one byte of packed 2-bit ternary codes (``00`` = 0, ``01`` = +1,
``11`` = -1, LSB first, the storage format of :func:`rtl_models.ternary.pack_ternary`) and
the four int8 activations they multiply. Within the cycle the four codes are applied in
k order by a chain of add / subtract / skip stages; every partial sum after an add or a
subtract is checked against the signed ``acc_bits`` range, as the Python model does.

The accumulator register is ``acc_bits`` wide and wraps (two's complement). A partial sum
leaves the range for the first time exactly when the register add first overflows (before
that the register equals the exact sum), so the hardware's sticky ``ovf`` flag and its
``first_k`` (index of that code, -1 if none) equal the model's ``overflow`` and
``first_overflow_k``, and the register equals :meth:`AccResult.wrapped`. The invalid code
``10`` (which :func:`unpack_ternary` rejects) is treated as a skip and raises the sticky
``bad`` flag. A job ends with the ``last`` beat; the next beat starts a new one from 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cosim import Bench, Datapath, Port, abbrev
from .bitlinear import BitLinearConfig, OverflowPolicy, accumulate
from .quant import TernaryWeights, pack_ternary

__all__ = ["TernaryAccParams", "TernaryAccHW", "TERNARY_ACC"]

K_BITS = 16  # first_k counts codes of one job: K <= 32767


@dataclass(frozen=True, kw_only=True)
class TernaryAccParams:
    """Build parameters: ``acc_bits`` as in :class:`BitLinearConfig` (2..32, sign included)."""

    acc_bits: int = 24

    def __post_init__(self) -> None:
        BitLinearConfig(acc_bits=self.acc_bits)  # the model's own check: an integer in 2..32


def TernaryAccHW(p: TernaryAccParams):
    """The unit as an Amaranth component (see the module docstring for its behaviour)."""
    try:
        from amaranth.hdl import Module, Mux, Signal, signed
        from amaranth.lib import wiring
        from amaranth.lib.wiring import In, Out
    except ImportError:
        raise ImportError("the RTL generators need Amaranth; pip install 'archgym[rtl]'") from None
    ab = p.acc_bits
    lo, hi = -(1 << (ab - 1)), (1 << (ab - 1)) - 1

    class Unit(wiring.Component):
        def __init__(self):
            super().__init__({
                "in_valid": In(1), "in_ready": Out(1), "busy": Out(1),
                "codes": In(8), "q": In(32), "last": In(1),
                "acc": Out(signed(ab)), "ovf": Out(1), "first_k": Out(signed(K_BITS + 1)), "bad": Out(1)})

        def elaborate(self, platform):
            m = Module()
            fresh = Signal(init=1)
            k_base = Signal(K_BITS)
            m.d.comb += [self.in_ready.eq(1), self.busy.eq(0)]
            take = self.in_valid
            cur = Mux(fresh, 0, self.acc)
            ovf = Mux(fresh, 0, self.ovf)
            first = Mux(fresh, -1, self.first_k)
            bad = Mux(fresh, 0, self.bad)
            kb = Mux(fresh, 0, k_base)
            for j in range(4):
                code = self.codes[2 * j:2 * j + 2]
                qj = self.q[8 * j:8 * j + 8].as_signed()
                exact = Signal(signed(max(ab, 8) + 2), name=f"exact_{j}")
                nxt = Signal(signed(ab), name=f"acc_{j}")
                hit = Signal(name=f"ovf_{j}")
                m.d.comb += exact.eq(Mux(code == 0b01, cur + qj, Mux(code == 0b11, cur - qj, cur)))
                m.d.comb += nxt.eq(exact)  # wrap
                # a skip (00) or the invalid 10 changes nothing and is not checked
                m.d.comb += hit.eq(code[0] & ((exact < lo) | (exact > hi)))
                first = Mux(hit & ~ovf, kb + j, first)
                ovf = ovf | hit
                bad = bad | (code == 0b10)
                cur = nxt
            with m.If(take):
                m.d.sync += [self.acc.eq(cur), self.ovf.eq(ovf), self.first_k.eq(first), self.bad.eq(bad),
                             k_base.eq(kb + 4), fresh.eq(self.last)]
            return m
    return Unit()


@dataclass(frozen=True)
class TernaryVector:
    """One output of one token: int8 activations q [K] and ternary codes t [K] (2 = the invalid code)."""

    q: np.ndarray
    t: np.ndarray
    label: str


class _Ternary(Datapath):
    name = "ternary-acc"
    summary = "MatMul-free 2-bit packed ternary accumulate unit (acc_bits, overflow flag)"
    Params = TernaryAccParams

    def elaborate(self, params: TernaryAccParams):
        return TernaryAccHW(params)

    def bench(self, params: TernaryAccParams) -> Bench:
        from amaranth.back import verilog

        top = f"ternary_acc_{params.acc_bits}"
        text = verilog.convert(TernaryAccHW(params), name=top, emit_src=False)
        return Bench(top, text, (Port("codes", 8), Port("q", 32), Port("last", 1)),
                     (Port("acc", params.acc_bits, signed=True), Port("ovf", 1),
                      Port("first_k", K_BITS + 1, signed=True), Port("bad", 1)))

    def vectors(self, p: TernaryAccParams, n: int, rng) -> list[TernaryVector]:
        def vec(q, t, label):
            return TernaryVector(np.asarray(q, np.int8), np.asarray(t, np.int8), label)

        # codes needed to overflow with |q| = 128: enough for acc_bits up to 16 in a test-sized job
        k_ovf = min((1 << (p.acc_bits - 1)) // 127 + 6, 1024)
        out = [vec([127], [1], "K=1, +1"), vec([-128], [-1], "K=1, -(-128) = +128"),
               vec([5, 6, 7], [1, 0, -1], "K=3 (padding codes in the last byte)"),
               vec(np.full(k_ovf, 127), np.ones(k_ovf), "all +127 x +1 (positive overflow)"),
               vec(np.full(k_ovf, -128), np.ones(k_ovf), "all -128 x +1 (negative overflow)"),
               vec(np.full(k_ovf, -128), -np.ones(k_ovf), "all -128 x -1 (positive overflow)"),
               vec(np.full(8, 100), np.zeros(8), "all skips"),
               vec([1, 2, 3, 4, 5, 6], [1, 2, -1, 1, 2, 1], "invalid code 10")]
        for _ in range(n):
            k = int(rng.integers(1, 65))
            q = rng.integers(-128, 128, size=k)
            if rng.random() < 0.25:  # large same-sign runs reach narrow accumulators' limits
                q = rng.integers(100, 128, size=k) * (1 if rng.random() < 0.5 else -1)
            t = rng.integers(-1, 2, size=k)
            out.append(vec(q, t, "random"))
        return out

    def describe(self, v: TernaryVector) -> str:
        return f"{v.label}; K={len(v.q)}; q={abbrev(v.q.tolist())}; t={abbrev(v.t.tolist())} (2 = invalid code 10)"

    def expect(self, p: TernaryAccParams, v: TernaryVector):
        k = len(v.q)
        n_beats = -(-k // 4)
        t_codes = np.where(v.t == 2, 0, v.t)
        packed = pack_ternary(t_codes[None])[0].copy()
        bad_at = int(np.flatnonzero(v.t == 2)[0]) if (v.t == 2).any() else None
        if bad_at is not None:  # plant the 10 pattern the model rejects
            packed[bad_at // 4] |= np.uint8(0b10 << (2 * (bad_at % 4)))
        q4 = np.zeros(n_beats * 4, np.int64)
        q4[:k] = v.q
        beats = []
        for b in range(n_beats):
            qw = 0
            for j in range(4):
                qw |= (int(q4[4 * b + j]) & 0xFF) << (8 * j)
            beats.append({"codes": int(packed[b]), "q": qw, "last": int(b == n_beats - 1)})
        # model: the accumulator after each beat = accumulate() on that prefix (q zeroed past it)
        pref = np.zeros((n_beats, k), np.int8)
        for b in range(n_beats):
            pref[b, :min(4 * (b + 1), k)] = v.q[:min(4 * (b + 1), k)]
        weights = TernaryWeights.from_ternary(t_codes[None], 1.0)
        res = accumulate(pref, weights, p.acc_bits, OverflowPolicy.FLAG)
        wrapped = res.wrapped()[:, 0]
        rows = []
        for b in range(n_beats):
            is_bad = bad_at is not None and bad_at < 4 * (b + 1)
            rows.append({"take": 1, "acc": None if is_bad else int(wrapped[b]),
                         "ovf": None if is_bad else int(res.overflow[b, 0]),
                         "first_k": None if is_bad else int(res.first_overflow_k[b, 0]),
                         "bad": int(is_bad)})
        return beats, rows


TERNARY_ACC = _Ternary()
