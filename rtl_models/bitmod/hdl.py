"""Amaranth generator of the BitMoD PE, held cycle by cycle to :class:`rtl_models.bitmod.BitmodPE`.

What the hardware stores and decodes (the part the Python model takes as given):

* weights as ``bits``-wide codes plus a 2-bit datatype selector per group. ext-FP3/FP4: a
  sign bit and a magnitude index into FP3 {0, 1, 2, 4} / FP4 {0, 1, 2, 3, 4, 6, 8, 12}
  (code units); the redundant negative-zero code stands for the group's special value,
  chosen by the selector in the published order [er_pos, er_neg, ea_pos, ea_neg] (FP3
  +-3/+-6, FP4 +-10/+-16). INT6/INT8: two's complement, selector unused.
* the bit-serial term generator: ext-FP by two leading-one detectors on the sign-magnitude
  fixed point (high term over I3..I0, low term over the remainder), INT by radix-4 Booth
  over {word, 0}; one term slot per cycle, lowest bit significance first.

Then the model's stages, every narrowing step rounded once from the exact value: exponent
match over the 4 lanes, aligned lane products (``guard_bits``, RNE or truncation), the
group accumulator (``acc_man_bits``), the bit-serial dequant (one scale bit per cycle, MSB
first; 8 bits for INT8 group scales, the 11-bit significand for FP16 ones) overlapped with
the next group, rounding to ``deq_man_bits``, the row accumulator (``out_man_bits``) and,
with INT8 group scales, the FP16 channel scale. The adders are exact fixed-point adders as
wide as the value ranges require (see :mod:`.hdl_arith`), wider than the dev RTL's 23-bit
truncating adder: the model idealises that adder, and so does this hardware.

Beats (one per lane group of 4 weights, taken at the cycle of its first term slot):
``act`` (4 x FP16 bits), ``codes`` (4 x ``bits``), ``sel``, ``gscale`` (FP16 bits or the
INT8 code of the group scale), ``cscale`` (FP16 channel scale, INT8 mode), ``glast`` (last
lane group of a group) and ``last`` (of the row). Per cycle: ``dot``/``stall``/``deq``
(what the stages do at that edge) and, after the last dequant cycle, ``res_vld`` with the
output ``res_m * 2**res_x``. Cycle 0 is the first dot cycle; the row ends with its last
dequant cycle, exactly as ``BitmodPE.run_row`` counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..cosim import Bench, Datapath, Port, abbrev
from .datatypes import LANES, candidate_sets, terms_per_weight
from .hdl_arith import EXP_BITS, add_round, round_fixed
from .pe import BitmodPE, PEConfig, Rounding
from .quantizer import BitmodQuant

__all__ = ["BitmodPEParams", "BitmodPEHW", "BITMOD_PE", "FP4_MAGS", "FP3_MAGS", "encode_code"]

FP4_MAGS = (0, 1, 2, 3, 4, 6, 8, 12)   # code units (FP4 values x2)
FP3_MAGS = (0, 1, 2, 4)
SPECIALS = {4: (10, -10, 16, -16), 3: (3, -3, 6, -6)}  # selector order [er_pos, er_neg, ea_pos, ea_neg]


@dataclass(frozen=True, kw_only=True)
class BitmodPEParams:
    """Build parameters: the weight format, the group, the scale format and :class:`PEConfig`'s widths.

    bits: 3, 4 (ext-FP with selector) or 6, 8 (INT, Booth). group: weights per group (a
    multiple of 4). scale: ``"int8"`` (8-bit group codes + FP16 channel scale) or ``"fp16"``.
    guard_bits, acc_man_bits, deq_man_bits, out_man_bits, rounding: as ``PEConfig`` (the
    hardware needs finite widths). max_groups: groups per row the output adder is sized for.
    """

    bits: int = 4
    group: int = 128
    scale: str = "int8"
    guard_bits: int = 3
    acc_man_bits: int = 15
    deq_man_bits: int = 21
    out_man_bits: int = 25
    rounding: str = "rne"
    max_groups: int = 64

    def __post_init__(self) -> None:
        terms_per_weight(self.bits)  # the model's own check of bits
        if isinstance(self.group, bool) or not isinstance(self.group, int) or not 4 <= self.group <= 1024 \
                or self.group % LANES:
            raise ValueError(f"group={self.group!r} cannot be built; allowed: a multiple of 4 in 4..1024")
        if self.scale not in ("int8", "fp16"):
            raise ValueError(f"scale={self.scale!r} cannot be built; allowed: int8, fp16")
        if self.rounding not in ("rne", "truncate"):
            raise ValueError(f"rounding={self.rounding!r} cannot be built; allowed: rne, truncate")
        for name, lo, hi in (("guard_bits", 0, 8), ("acc_man_bits", 2, 32), ("deq_man_bits", 2, 40),
                             ("out_man_bits", 2, 54), ("max_groups", 1, 4096)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{name}={v!r} cannot be built; allowed: an integer in {lo}..{hi}")
        self.pe_config()

    def pe_config(self) -> PEConfig:
        """The Python model's configuration for these widths."""
        return PEConfig(guard_bits=self.guard_bits, acc_man_bits=self.acc_man_bits,
                        deq_man_bits=self.deq_man_bits, out_man_bits=self.out_man_bits,
                        rounding=Rounding(self.rounding))

    @property
    def scale_bits(self) -> int:
        """Dequant cycles per group: 8 (INT8 codes) or 11 (FP16 significand)."""
        return 8 if self.scale == "int8" else 11


def encode_code(value: int, selector: int, bits: int) -> int:
    """Stored ``bits``-wide code of a code-unit ``value`` in a group with ``selector``.

    Raises ValueError if the value is not in that group's datatype.
    """
    if bits in (6, 8):
        if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
            raise ValueError(f"value {value} is not an INT{bits} code")
        return value & ((1 << bits) - 1)
    if value == SPECIALS[bits][selector]:
        return 1 << (bits - 1)                  # the negative-zero code
    mags = FP4_MAGS if bits == 4 else FP3_MAGS
    if abs(value) not in mags:
        raise ValueError(f"value {value} is not in the {bits}-bit datatype of selector {selector}")
    return ((1 << (bits - 1)) if value < 0 else 0) | mags.index(abs(value))


def _ranges(p: BitmodPEParams) -> dict[str, int]:
    """Fixed-point windows of the exact adders, from the value ranges of the inputs."""
    g = p.guard_bits
    bmax = 1 if p.bits in (3, 4) else p.bits - 2
    n_cyc = p.group // LANES * terms_per_weight(p.bits)
    xmin_a = 1 - 25 - g                          # smallest lane-sum LSB exponent
    lead_a = math.ceil(math.log2(n_cyc)) + 13 + g + (33 - 25 - g + bmax) + 1
    qx_min, qx_max = (0, 0) if p.scale == "int8" else (1 - 25, 30 - 25)
    lead_d = lead_a + p.scale_bits + qx_max + 1
    lead_o = lead_d + math.ceil(math.log2(p.max_groups)) + 1
    xmin_o = xmin_a + qx_min
    return {"xmin_a": xmin_a, "w_a": lead_a - xmin_a + 2, "xmin_o": xmin_o, "w_o": lead_o - xmin_o + 2,
            "w_s": 14 + g + 1}


def BitmodPEHW(p: BitmodPEParams):
    """The PE as an Amaranth component (ports and schedule in the module docstring)."""
    try:
        from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
        from amaranth.lib import wiring
        from amaranth.lib.wiring import In, Out
    except ImportError:
        raise ImportError("the RTL generators need Amaranth; pip install 'archgym[rtl]'") from None
    rng = _ranges(p)
    g, bits, n_t, n_sb = p.guard_bits, p.bits, terms_per_weight(p.bits), p.scale_bits
    n_lg = p.group // LANES
    rne = p.rounding == "rne"
    booth = bits in (6, 8)

    class RowAcc(wiring.Component):
        """Adds each dequantized group result into the row's output; applies the channel scale at the end."""

        def __init__(self):
            super().__init__({"add": In(1), "dm": In(signed(p.deq_man_bits)), "dx": In(signed(EXP_BITS)),
                              "end": In(1), "cscale": In(16), "res_vld": Out(1),
                              "res_m": Out(signed(p.out_man_bits)), "res_x": Out(signed(EXP_BITS))})

        def elaborate(self, platform):
            m = Module()
            out_m, out_x = Signal(signed(p.out_man_bits)), Signal(signed(EXP_BITS))
            no_m, no_x = add_round(m, out_m, out_x, self.dm, self.dx, rng["xmin_o"], rng["w_o"], p.out_man_bits,
                                   rne, "oacc")
            with m.If(self.add):
                m.d.sync += [out_m.eq(no_m), out_x.eq(no_x)]
            if p.scale == "int8":
                ce = self.cscale[10:15]
                cm = Mux(ce == 0, self.cscale[0:10], self.cscale[0:10] | 0x400)
                fprod = Signal(signed(p.out_man_bits + 12))
                m.d.comb += fprod.eq(no_m * cm)
                fx = Signal(signed(EXP_BITS))
                m.d.comb += fx.eq(no_x + Mux(ce == 0, 1, ce) - 25)
                f_m, f_x = round_fixed(m, fprod, p.out_man_bits + 12, fx, p.out_man_bits, rne, "chan")
            else:
                f_m, f_x = no_m, no_x
            m.d.sync += self.res_vld.eq(self.end)
            with m.If(self.end):
                m.d.sync += [self.res_m.eq(f_m), self.res_x.eq(f_x), out_m.eq(0), out_x.eq(0)]
            return m

    class PE(wiring.Component):
        def __init__(self):
            super().__init__({
                "in_valid": In(1), "in_ready": Out(1), "busy": Out(1),
                "act": In(16 * LANES), "codes": In(bits * LANES), "sel": In(2), "gscale": In(16),
                "cscale": In(16), "glast": In(1), "last": In(1),
                "dot": Out(1), "stall": Out(1), "deq": Out(1),
                "res_vld": Out(1), "res_m": Out(signed(p.out_man_bits)), "res_x": Out(signed(EXP_BITS))})

        def elaborate(self, platform):
            m = Module()
            # ---- held beat (slots 1..n_t-1 of a lane group use it; slot 0 uses the port)
            h_act, h_codes, h_sel = Signal(16 * LANES), Signal(bits * LANES), Signal(2)
            h_gscale, h_glast, h_last = Signal(16), Signal(), Signal()
            h_cscale = Signal(16)
            t = Signal(range(max(n_t, 2)))
            row_done = Signal()
            pend_v, pend_m, pend_x, pend_s = Signal(), Signal(signed(p.acc_man_bits)), Signal(signed(EXP_BITS)), \
                Signal(16)
            deq_v, deq_m, deq_x, deq_s = Signal(), Signal(signed(p.acc_man_bits)), Signal(signed(EXP_BITS)), \
                Signal(16)
            deq_bit = Signal(range(n_sb + 1))
            deq_prod = Signal(signed(p.acc_man_bits + n_sb + 1))
            acc_m, acc_x = Signal(signed(p.acc_man_bits)), Signal(signed(EXP_BITS))

            start = Signal()
            m.d.comb += [self.in_ready.eq((t == 0) & ~pend_v & ~row_done), start.eq(self.in_valid & self.in_ready)]
            mid = t != 0
            m.d.comb += [self.dot.eq(start | mid),
                         self.stall.eq((t == 0) & pend_v & ~row_done & self.in_valid),
                         self.deq.eq(deq_v)]
            act = Mux(mid, h_act, self.act)
            codes = Mux(mid, h_codes, self.codes)
            sel = Mux(mid, h_sel, self.sel)
            gscale = Mux(mid, h_gscale, self.gscale)
            glast = Mux(mid, h_glast, self.glast)
            last = Mux(mid, h_last, self.last)
            cscale = Mux(mid, h_cscale, self.cscale)
            with m.If(start):
                m.d.sync += [h_act.eq(self.act), h_codes.eq(self.codes), h_sel.eq(self.sel),
                             h_gscale.eq(self.gscale), h_glast.eq(self.glast), h_last.eq(self.last),
                             h_cscale.eq(self.cscale)]

            # ---- term generator + exponent match + aligned lane products (one cycle)
            lanes = []
            for i in range(LANES):
                a = act[16 * i:16 * (i + 1)]
                ae, af = a[10:15], a[0:10]
                ea = Mux(ae == 0, 1, ae)
                ma = Mux(ae == 0, af, af | 0x400)
                code = codes[bits * i:bits * (i + 1)]
                tsign, texp, tman = self._term(m, code, sel, t, i, Array, Const, Mux, Signal)
                e = Signal(7, name=f"e_{i}")
                m.d.comb += e.eq(ea + texp)
                lanes.append((a[15], e, ma, tsign, texp, tman))
            emax = Signal(7)
            expr = lanes[0][1]
            for ln in lanes[1:]:
                expr = Mux(ln[1] > expr, ln[1], expr)
            m.d.comb += emax.eq(expr)
            s = Signal(signed(rng["w_s"]))
            total = 0
            for i, (sa, e, ma, tsign, _, tman) in enumerate(lanes):
                d = Signal(7, name=f"d_{i}")
                m.d.comb += d.eq(emax - e)
                v = Signal(11 + g + 1, name=f"v_{i}")
                wide = Signal(11 + g, name=f"mg_{i}")
                m.d.comb += wide.eq(ma << g)
                q = Signal(11 + g, name=f"q_{i}")
                m.d.comb += q.eq(wide >> d)
                if rne:
                    r = Signal(11 + g, name=f"r_{i}")
                    half = Signal(11 + g + 33, name=f"half_{i}")
                    m.d.comb += [r.eq(wide - (q << d)[:11 + g]),
                                 half.eq(Mux(d == 0, 0, (Const(1, 11 + g + 33) << (d - 1).as_unsigned()[:6])))]
                    up = (d != 0) & ((r > half) | ((r == half) & q[0]))
                    m.d.comb += v.eq(q + up)
                else:
                    m.d.comb += v.eq(q)
                sv = Signal(signed(rng["w_s"]), name=f"sv_{i}")
                m.d.comb += sv.eq(Mux(tman & (ma != 0), Mux(sa ^ tsign, -v, v), 0))
                total = total + sv
            m.d.comb += s.eq(total)
            bsig = Signal(4)
            m.d.comb += bsig.eq(t * 2 if booth else t)
            s_x = Signal(signed(EXP_BITS))
            m.d.comb += s_x.eq(emax - 25 - g + bsig)
            na_m, na_x = add_round(m, acc_m, acc_x, s, s_x, rng["xmin_a"], rng["w_a"], p.acc_man_bits, rne, "gacc")

            # ---- dot stage state
            lg_end = (t == n_t - 1) & self.dot
            grp_end = lg_end & glast
            new_pend_v = pend_v | grp_end
            new_pend_m = Mux(grp_end, na_m, pend_m)
            new_pend_x = Mux(grp_end, na_x, pend_x)
            new_pend_s = Mux(grp_end, gscale, pend_s)
            with m.If(self.dot):
                m.d.sync += [t.eq(Mux(t == n_t - 1, 0, t + 1)), acc_m.eq(Mux(grp_end, 0, na_m)),
                             acc_x.eq(Mux(grp_end, 0, na_x))]
                with m.If(lg_end & last):
                    m.d.sync += row_done.eq(1)

            # ---- dequant stage: shift-and-add, MSB of the scale first
            sm = deq_s[0:8] if p.scale == "int8" else Mux(deq_s[10:15] == 0, deq_s[0:10], deq_s[0:10] | 0x400)
            bit_idx = Signal(range(n_sb), name="deq_bit_idx")
            m.d.comb += bit_idx.eq(n_sb - 1 - deq_bit)
            sbit = Signal()
            m.d.comb += sbit.eq((sm >> bit_idx)[0])
            prod = Signal(signed(p.acc_man_bits + n_sb + 1))
            m.d.comb += prod.eq(deq_prod * 2 + Mux(sbit, deq_m, 0))
            qx = 0 if p.scale == "int8" else (Mux(deq_s[10:15] == 0, 1, deq_s[10:15]) - 25)
            deq_px = Signal(signed(EXP_BITS))
            m.d.comb += deq_px.eq(deq_x + qx)
            dm, dx = round_fixed(m, prod, p.acc_man_bits + n_sb + 1, deq_px, p.deq_man_bits, rne, "deq")
            finishing = deq_v & (deq_bit == n_sb - 1)
            with m.If(deq_v):
                m.d.sync += [deq_prod.eq(prod), deq_bit.eq(deq_bit + 1)]
                with m.If(finishing):
                    m.d.sync += deq_v.eq(0)
            # handover at the end of the cycle, from the values this cycle produced
            with m.If(new_pend_v & (~deq_v | finishing)):
                m.d.sync += [deq_v.eq(1), deq_m.eq(new_pend_m), deq_x.eq(new_pend_x), deq_s.eq(new_pend_s),
                             deq_bit.eq(0), deq_prod.eq(0), pend_v.eq(0)]
            with m.Else():
                m.d.sync += [pend_v.eq(new_pend_v), pend_m.eq(new_pend_m), pend_x.eq(new_pend_x),
                             pend_s.eq(new_pend_s)]

            # ---- the row accumulator (per PE column in the paper's array): its own module
            row_end = finishing & row_done & ~pend_v
            racc = m.submodules.row_acc = RowAcc()
            m.d.comb += [racc.add.eq(finishing), racc.dm.eq(dm), racc.dx.eq(dx), racc.end.eq(row_end),
                         racc.cscale.eq(h_cscale), self.res_vld.eq(racc.res_vld), self.res_m.eq(racc.res_m),
                         self.res_x.eq(racc.res_x)]
            with m.If(row_end):
                m.d.sync += row_done.eq(0)
            m.d.comb += self.busy.eq(mid | pend_v | deq_v | row_done)
            return m

        @staticmethod
        def _term(m, code, sel, t, lane, Array, Const, Mux, Signal):
            """(sign, exp, man) of term slot ``t`` of one weight code."""
            tsign, texp, tman = Signal(name=f"tsign_{lane}"), Signal(2, name=f"texp_{lane}"), \
                Signal(name=f"tman_{lane}")
            if booth:
                word = Signal(bits + 1, name=f"word_{lane}")
                m.d.comb += word.eq(code << 1)   # {data, 1'b0}
                trip = Signal(3, name=f"trip_{lane}")
                m.d.comb += trip.eq((word >> (t * 2))[0:3])
                m.d.comb += [tman.eq((trip != 0) & (trip != 7)),
                             texp.eq((trip == 3) | (trip == 4)),
                             tsign.eq(trip[2] & (trip != 7))]
                return tsign, texp, tman
            sign = code[bits - 1]
            idx = code[0:bits - 1]
            table = FP4_MAGS if bits == 4 else FP3_MAGS
            mag_t = Array([Const(v, 5) for v in table])
            specials = SPECIALS[bits]
            sp_mag = Array([Const(abs(v), 5) for v in specials])
            sp_sign = Array([Const(1 if v < 0 else 0, 1) for v in specials])
            special = sign & (idx == 0)
            mag = Signal(5, name=f"mag_{lane}")
            vs = Signal(name=f"vsign_{lane}")
            m.d.comb += [mag.eq(Mux(special, sp_mag[sel], mag_t[idx])), vs.eq(Mux(special, sp_sign[sel], sign))]
            # leading-one detector over I3..I0 (mag bits 4..1) gives the high term (bsig 1);
            # the one over the remainder's bits 3..0 gives the low term (bsig 0)
            hp = Signal(3, name=f"hpos_{lane}")
            hexpr = 0
            for b in range(1, 5):
                hexpr = Mux(mag[b], b, hexpr)
            m.d.comb += hp.eq(hexpr)
            rem = Signal(5, name=f"rem_{lane}")
            m.d.comb += rem.eq(Mux(hp != 0, mag ^ (Const(1, 5) << hp), mag))
            lp = Signal(2, name=f"lpos_{lane}")
            lexpr = 0
            for b in range(4):
                lexpr = Mux(rem[b], b, lexpr)
            m.d.comb += lp.eq(lexpr)
            lo_man, hi_man = rem[0:4] != 0, hp != 0
            m.d.comb += [tsign.eq(vs), texp.eq(Mux(t == 0, lp, Mux(hp != 0, hp - 1, 0))),
                         tman.eq(Mux(t == 0, lo_man, hi_man))]
            return tsign, texp, tman
    return PE()


# ----------------------------------------------------------------------- cosimulation
@dataclass(frozen=True)
class RowVector:
    """One output channel: code-unit weights [C], selectors [C/group], FP16 activation bits [C],
    group scales (FP16 bits or INT8 codes) [C/group], the FP16 channel scale bits (INT8 mode)."""

    codes: tuple[int, ...]
    selectors: tuple[int, ...]
    act_bits: tuple[int, ...]
    gscales: tuple[int, ...]
    cscale: int
    label: str


def _f16(bits_: int) -> np.float16:
    return np.array([bits_], np.uint16).view(np.float16)[0]


class _Bitmod(Datapath):
    name = "bitmod-pe"
    summary = "BitMoD PE: term generator with per-group datatype selector, bit-serial dot, dequant"
    Params = BitmodPEParams

    def elaborate(self, params: BitmodPEParams):
        return BitmodPEHW(params)

    def bench(self, p: BitmodPEParams) -> Bench:
        from amaranth.back import verilog

        top = f"bitmod_pe_{p.bits}b_g{p.group}_{p.scale}"
        text = verilog.convert(BitmodPEHW(p), name=top, emit_src=False)
        ins = (Port("act", 16 * LANES), Port("codes", p.bits * LANES), Port("sel", 2), Port("gscale", 16),
               Port("cscale", 16), Port("glast", 1), Port("last", 1))
        outs = (Port("dot", 1, comb=True), Port("stall", 1, comb=True), Port("deq", 1, comb=True),
                Port("res_vld", 1), Port("res_m", p.out_man_bits, signed=True), Port("res_x", EXP_BITS, signed=True))
        return Bench(top, text, ins, outs)

    # -- vectors
    def vectors(self, p: BitmodPEParams, n: int, rng) -> list[RowVector]:
        sets = candidate_sets(p.bits)

        def fp16_bits(k, lo_exp=0, hi_exp=30, sign=True):
            e = rng.integers(lo_exp, hi_exp + 1, size=k)
            f = rng.integers(0, 1024, size=k)
            s = rng.integers(0, 2, size=k) if sign else np.zeros(k, np.int64)
            return tuple(int(x) for x in (s << 15) | (e << 10) | f)

        def row(ng, label, act=None, codes=None, sel=None, gs=None, cs=None):
            c = ng * p.group
            sel = tuple(int(x) for x in rng.integers(0, len(sets), size=ng)) if sel is None else sel
            if codes is None:
                codes = []
                for gi in range(ng):
                    vals = sets[sel[gi]].values
                    codes += [int(v) for v in rng.choice(vals, size=p.group)]
            act = fp16_bits(c) if act is None else act
            if gs is None:
                gs = (tuple(int(x) for x in rng.integers(0, 256, size=ng)) if p.scale == "int8"
                      else fp16_bits(ng, 1, 20, sign=False))
            cs = fp16_bits(1, 1, 20, sign=False)[0] if cs is None else cs
            return RowVector(tuple(codes), tuple(sel), tuple(act), tuple(gs), cs, label)

        special = [s.values for s in sets]
        extreme = max(abs(v) for vs in special for v in vs)
        out = [row(1, "one group, random"),
               row(2, "all activations zero", act=(0,) * (2 * p.group)),
               row(2, "negative zero and subnormal activations",
                   act=tuple((0x8000 if i % 3 == 0 else int(rng.integers(1, 1024))) | (0x8000 * (i % 2))
                             for i in range(2 * p.group))),
               row(2, "largest activations (65504) and largest weights",
                   act=(0x7BFF,) * (2 * p.group), codes=(extreme,) * (2 * p.group),
                   sel=(0, 0) if p.bits in (6, 8) else ((2, 2) if p.bits in (3, 4) else (0, 0))),
               row(2, "mixed extreme exponents (alignment shifts past the guard bits)",
                   act=tuple(0x7BFF if i % 4 == 0 else 0x0001 for i in range(2 * p.group))),
               row(3, "cancellation: +a then -a",
                   act=(0x3C00,) * (3 * p.group),
                   codes=tuple((1 if (i // 4) % 2 == 0 else -1) for i in range(3 * p.group)),
                   sel=(0, 0, 0))]
        if p.bits in (3, 4):  # every selector's special value (the negative-zero code)
            for si in range(4):
                out.append(row(1, f"special value of selector {si}", sel=(si,),
                               codes=(SPECIALS[p.bits][si],) * p.group))
        if p.scale == "int8":
            out.append(row(2, "group scale codes 0 and 255", gs=(0, 255)))
        else:
            out.append(row(2, "subnormal and largest FP16 group scales", gs=(0x0001, 0x7BFF)))
        max_ng = min(p.max_groups, 4)
        for _ in range(n):
            out.append(row(int(rng.integers(1, max_ng + 1)), "random"))
        return out

    def describe(self, v: RowVector) -> str:
        acts = [float(_f16(b)) for b in v.act_bits]
        return (f"{v.label}; groups={len(v.selectors)}; selectors={abbrev(v.selectors)}; codes={abbrev(v.codes)}; "
                f"activations={abbrev(acts)}; group scales={abbrev(v.gscales)}; channel scale bits={v.cscale:#06x}")

    def _quant(self, p: BitmodPEParams, v: RowVector) -> BitmodQuant:
        ng = len(v.selectors)
        codes = np.array([v.codes], np.int8)
        sel = np.array([v.selectors], np.uint8)
        if p.scale == "int8":
            return BitmodQuant(bits=p.bits, group=p.group, scale_dtype="float16", codes=codes, selectors=sel,
                               scales=np.ones((1, ng), np.float16),
                               channel_scales=np.array([_f16(v.cscale)], np.float16),
                               scale_codes=np.array([v.gscales], np.uint8))
        return BitmodQuant(bits=p.bits, group=p.group, scale_dtype="float16", codes=codes, selectors=sel,
                           scales=np.array([[_f16(b) for b in v.gscales]], np.float16))

    def expect(self, p: BitmodPEParams, v: RowVector):
        ng = len(v.selectors)
        beats = []
        for gi in range(ng):
            for j in range(p.group // LANES):
                base = gi * p.group + j * LANES
                act = codes = 0
                for i in range(LANES):
                    act |= v.act_bits[base + i] << (16 * i)
                    codes |= encode_code(v.codes[base + i], v.selectors[gi], p.bits) << (p.bits * i)
                beats.append({"act": act, "codes": codes, "sel": v.selectors[gi] if p.bits in (3, 4) else 0,
                              "gscale": v.gscales[gi], "cscale": v.cscale,
                              "glast": int(j == p.group // LANES - 1),
                              "last": int(gi == ng - 1 and j == p.group // LANES - 1)})
        acts = np.array([_f16(b) for b in v.act_bits], np.float16)
        res = BitmodPE(p.pe_config()).run_row(self._quant(p, v), 0, acts, trace=True)
        rows = [{"take": 0, "dot": 0, "stall": 0, "deq": 0, "res_vld": 0, "out": None} for _ in range(res.cycles)]
        for ev in res.trace:
            r = rows[ev[0]]
            r[ev[1]] = 1
            if ev[1] == "dot" and ev[4] == 0:
                r["take"] = 1
        rows[-1]["res_vld"] = 1
        rows[-1]["out"] = res.output
        return beats, rows

    def observe(self, p: BitmodPEParams, v: RowVector, rows):
        out = []
        for r in rows:
            val = math.ldexp(float(r["res_m"]), r["res_x"]) if r["res_vld"] else None
            out.append({"take": r["take"], "dot": r["dot"], "stall": r["stall"], "deq": r["deq"],
                        "res_vld": r["res_vld"], "out": val})
        return out


BITMOD_PE = _Bitmod()
