"""Amaranth generator of one SMMW lane (Agile-Quant), held to :class:`rtl_models.simd.SMMWLane`.

Parameterised by the model's own :class:`~rtl_models.simd.SMMWConfig`. One beat per cycle:
``pair`` (two packed unsigned weights, low/high slot), ``act`` (their shared unsigned activation),
``last`` (end of the reduction). At that edge the lane does what ``SMMWLane.mac`` does:
MUL (masked to ``operand_bits``), LSL/ORR/AND spread into the two fields, the lane ADD
(wrapping at ``lane_bits``; a field carry spills into the other field as in the SIMD
register) with the carry of each field detected beside it; and, on the
``drain_every``-th beat or on ``last``, the drain of both fields into the wide
accumulators (``acc_bits``, wrap + overflow detect) with the lane cleared.

Outputs after each edge: ``lane``, ``count``, ``wide0``/``wide1`` (the results after the
``last`` edge), sticky ``carry``/``acc_ovf`` flags of the job; ``carry_evt``/``ovf_evt``
(combinational, sampled at the edge) say a field carried / a wide accumulator overflowed at
this edge. A job starts fresh on the beat after ``last``: its first beat accumulates from 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cosim import Bench, Datapath, Port, abbrev
from .layout import SMMWConfig, SMMWLane

__all__ = ["SMMWLaneHW", "SMMW_LANE"]


def SMMWLaneHW(c: SMMWConfig):
    """The lane as an Amaranth component (see the module docstring for its ports)."""
    try:
        from amaranth.hdl import Cat, Module, Mux, Signal
        from amaranth.lib import wiring
        from amaranth.lib.wiring import In, Out
    except ImportError:
        raise ImportError("the RTL generators need Amaranth; pip install 'archgym[rtl]'") from None
    fb, lb, ab = c.field_bits, c.lane_bits, c.acc_bits
    cnt_w = max(1, c.drain_every.bit_length())

    class Lane(wiring.Component):
        def __init__(self):
            super().__init__({
                "in_valid": In(1), "in_ready": Out(1), "busy": Out(1),
                "pair": In(c.operand_bits), "act": In(c.act_bits), "last": In(1),
                "lane": Out(lb), "count": Out(cnt_w), "wide0": Out(ab), "wide1": Out(ab),
                "carry": Out(1), "acc_ovf": Out(1), "carry_evt": Out(1), "ovf_evt": Out(1)})

        def elaborate(self, platform):
            m = Module()
            take = Signal()
            fresh = Signal(init=1)       # the next beat starts a job: wide accumulators from 0
            m.d.comb += [self.in_ready.eq(1), self.busy.eq(0), take.eq(self.in_valid)]
            prod = Signal(c.operand_bits)
            m.d.comb += prod.eq(self.pair * self.act)                      # MUL (masked)
            spread = Signal(lb)
            shifted = Signal(lb)
            m.d.comb += shifted.eq(prod << c.spread_shift)                   # LSL (to lane width)
            m.d.comb += spread.eq((prod | shifted) & c.spread_mask)          # ORR, AND
            new_lane = Signal(lb)
            m.d.comb += new_lane.eq(self.lane + spread)                      # ADD (wraps)
            carries = []
            for k in range(2):
                s = Signal(fb + 1, name=f"field{k}_sum")
                m.d.comb += s.eq(self.lane[k * fb:(k + 1) * fb] + spread[k * fb:(k + 1) * fb])
                carries.append(s[fb])
            drain = Signal()
            m.d.comb += drain.eq(self.last | (self.count == c.drain_every - 1))
            base = [Mux(fresh, 0, self.wide0), Mux(fresh, 0, self.wide1)]
            wides, ovfs = [], []
            for k in range(2):
                w = Signal(ab + 1, name=f"wide{k}_sum")
                m.d.comb += w.eq(base[k] + new_lane[k * fb:(k + 1) * fb])
                wides.append(w)
                ovfs.append(w[ab])
            m.d.comb += [self.carry_evt.eq(take & Cat(*carries).any()),
                         self.ovf_evt.eq(take & drain & Cat(*ovfs).any())]
            with m.If(take):
                m.d.sync += [self.carry.eq(Mux(fresh, 0, self.carry) | self.carry_evt),
                             self.acc_ovf.eq(Mux(fresh, 0, self.acc_ovf) | self.ovf_evt),
                             fresh.eq(self.last)]
                with m.If(drain):      # AND / LSR into the wide accumulators, MOV #0
                    m.d.sync += [self.wide0.eq(wides[0]), self.wide1.eq(wides[1]), self.lane.eq(0),
                                 self.count.eq(0)]
                with m.Else():
                    m.d.sync += [self.lane.eq(new_lane), self.count.eq(self.count + 1),
                                 self.wide0.eq(base[0]), self.wide1.eq(base[1])]
            return m
    return Lane()


@dataclass(frozen=True)
class LaneVector:
    """One job of the lane: packed operands and activations, one per reduction step."""

    packed: tuple[int, ...]
    act: tuple[int, ...]
    label: str


class _SMMW(Datapath):
    name = "smmw-lane"
    summary = "Agile-Quant SMMW packed multiplier lane with carry detection and drain"
    Params = SMMWConfig

    def elaborate(self, params: SMMWConfig):
        return SMMWLaneHW(params)

    def bench(self, params: SMMWConfig) -> Bench:
        from amaranth.back import verilog

        top = f"smmw_lane_{params.lane_bits}_{params.operand_bits}"
        text = verilog.convert(SMMWLaneHW(params), name=top, emit_src=False)
        cnt_w = max(1, params.drain_every.bit_length())
        return Bench(top, text,
                     (Port("pair", params.operand_bits), Port("act", params.act_bits), Port("last", 1)),
                     (Port("lane", params.lane_bits), Port("count", cnt_w), Port("wide0", params.acc_bits),
                      Port("wide1", params.acc_bits), Port("carry", 1), Port("acc_ovf", 1),
                      Port("carry_evt", 1, comb=True), Port("ovf_evt", 1, comb=True)))

    def vectors(self, c: SMMWConfig, n: int, rng) -> list[LaneVector]:
        wmax, amax = (1 << c.weight_bits) - 1, (1 << c.act_bits) - 1
        pack = lambda lo, hi: lo | (hi << c.slot_bits)  # noqa: E731
        top = min(2 * c.drain_every + 2, 64)

        def const(k, w, a, label):
            return LaneVector((pack(w, w),) * k, (a,) * k, label)

        out = [const(1, wmax, amax, "K=1, max x max"),
               const(1, 0, 0, "K=1, zero"),
               const(c.drain_every, wmax, amax, "exactly drain_every max products"),
               const(c.drain_every + 1, wmax, amax, "drain_every + 1 max products (drain, then one more)"),
               const(min(c.drain_every + 3, c.max_safe_accumulations + 2, 4096), wmax, amax,
                     "past max_safe_accumulations without a drain if drain_every allows (field carry)"),
               LaneVector(tuple(pack(wmax, 0) for _ in range(5)), (amax,) * 5, "low weight only"),
               LaneVector(tuple(pack(0, wmax) for _ in range(5)), (amax,) * 5, "high weight only")]
        long_k = min(c.drain_every + 3, c.max_safe_accumulations + 2, 4096)
        out += [LaneVector((pack(wmax, 0),) * long_k, (amax,) * long_k, "low weight only, long (field 0 carry)"),
                LaneVector((pack(0, wmax),) * long_k, (amax,) * long_k, "high weight only, long (field 1 carry)")]
        # enough drains of max products to overflow a narrow wide accumulator
        per_drain = c.drain_every * c.max_product
        need = -(-((1 << c.acc_bits)) // max(per_drain, 1)) * c.drain_every + 1
        if need <= 4096:
            out.append(const(need, wmax, amax, "wide accumulator overflow"))
        for _ in range(n):
            k = int(rng.integers(1, top + 1))
            bias = rng.random() < 0.25  # a quarter of the jobs use near-max operands (carry-prone)
            lo_w = wmax // 2 if bias else 0
            w = rng.integers(lo_w, wmax + 1, size=(k, 2))
            a = rng.integers(amax // 2 if bias else 0, amax + 1, size=k)
            out.append(LaneVector(tuple(int(pack(x, y)) for x, y in w), tuple(int(v) for v in a), "random"))
        return out

    def describe(self, v: LaneVector) -> str:
        return f"{v.label}; K={len(v.act)}; pair={abbrev(v.packed)}; act={abbrev(v.act)}"

    def expect(self, c: SMMWConfig, v: LaneVector):
        lane = SMMWLane(c, on_carry="report")
        acc_max = (1 << c.acc_bits) - 1
        wide = [0, 0]
        beats, rows = [], []
        sticky_carry = sticky_ovf = 0
        k_len = len(v.act)
        for k, (pk, a) in enumerate(zip(v.packed, v.act)):
            last = k == k_len - 1
            beats.append({"pair": pk, "act": a, "last": int(last)})
            # SMMWLane's flag is sticky; clear it around each mac to see this step's carry alone
            lane.carry_detected = False
            lane.mac(pk, a)
            carry_evt = int(lane.carry_detected)
            sticky_carry |= carry_evt
            ovf_evt = 0
            if lane.count == c.drain_every or last:   # the drain rule of packed_gemm_reference
                for i, f in enumerate(lane.drain()):
                    wide[i] += f
                    if wide[i] > acc_max:
                        ovf_evt = 1
                    wide[i] &= acc_max
            sticky_ovf |= ovf_evt
            rows.append({"take": 1, "lane": lane.value, "count": lane.count, "wide0": wide[0], "wide1": wide[1],
                         "carry": sticky_carry, "acc_ovf": sticky_ovf, "carry_evt": carry_evt,
                         "ovf_evt": ovf_evt})
        return beats, rows

    def replay_matches_model(self, c: SMMWConfig, v: LaneVector) -> bool:
        """True if the lane replay of :meth:`expect` ends where ``packed_gemm_reference`` (1 x K x 2) does."""
        from .gemm import packed_gemm_reference

        _, rows = self.expect(c, v)
        mask = (1 << c.slot_bits) - 1
        w = np.array([[p & mask, p >> c.slot_bits] for p in v.packed], np.int64)
        res = packed_gemm_reference(np.array([v.act], np.int64), w, config=c, on_carry="report")
        return ([int(x) for x in res.out[0]] == [rows[-1]["wide0"], rows[-1]["wide1"]]
                and res.carry_detected == bool(rows[-1]["carry"] or rows[-1]["acc_ovf"]))


SMMW_LANE = _SMMW()
