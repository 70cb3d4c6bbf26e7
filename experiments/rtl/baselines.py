"""Baseline PEs for the area comparison of experiments/rtl/synth.py (not datapaths of the gym).

BitMoD (HPCA'25, Table X and the dev PE area sheet) compares its PE with an FP16 MAC PE and
an ANT/FIGNA-style "FP16 + FP16 x INT8 -> FP16" PE. These two are built from the same
arithmetic blocks as the generated BitMoD PE (exact fixed-point add, one rounding, see
rtl_models/bitmod/hdl_arith.py), so the ratio compares the datapaths, not two adder styles.

* ``fp16_mac_pe``: one FP16 x FP16 product per cycle (11 x 11-bit significands, exact)
  accumulated into an FP16-precision accumulator (12-bit signed mantissa, RNE).
* ``ant_pe``: one FP16 activation x INT8 weight per cycle into the same accumulator.

``acc_growth`` is the headroom (in bits) the accumulator window has above one product.
"""

from __future__ import annotations

__all__ = ["fp16_mac_pe", "ant_pe"]


def _decode(m, a, Mux, Signal, name):
    e, f = a[10:15], a[0:10]
    ea = Signal(5, name=f"{name}_e")
    ma = Signal(11, name=f"{name}_m")
    m.d.comb += [ea.eq(Mux(e == 0, 1, e)), ma.eq(Mux(e == 0, f, f | 0x400))]
    return a[15], ea, ma


def fp16_mac_pe(acc_growth: int = 8):
    """FP16 MAC PE (Amaranth component): ``acc += a * b`` each cycle ``vld`` is high."""
    return _pe("fp16", acc_growth)


def ant_pe(acc_growth: int = 8):
    """ANT-style PE (Amaranth component): ``acc += a(FP16) * w(INT8)`` each cycle ``vld`` is high."""
    return _pe("ant", acc_growth)


def _pe(kind: str, acc_growth: int):
    from amaranth.hdl import Module, Mux, Signal, signed
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from rtl_models.bitmod.hdl_arith import EXP_BITS, add_round

    p = 12  # FP16: 11-bit significand + sign
    b_width = 16 if kind == "fp16" else 8

    class PE(wiring.Component):
        def __init__(self):
            super().__init__({"a": In(16), "b": In(b_width), "vld": In(1),
                              "acc_m": Out(signed(p)), "acc_x": Out(signed(EXP_BITS))})

        def elaborate(self, platform):
            m = Module()
            sa, ea, ma = _decode(m, self.a, Mux, Signal, "a")
            if kind == "fp16":
                sb, eb, mb = _decode(m, self.b, Mux, Signal, "b")
                prod = Signal(signed(23))
                m.d.comb += prod.eq(Mux(sa ^ sb, -(ma * mb), ma * mb))
                px = Signal(signed(EXP_BITS))
                m.d.comb += px.eq(ea + eb - 50)
                xmin, lead = 2 - 50, 22 + 60 - 50
            else:
                prod = Signal(signed(20))
                m.d.comb += prod.eq(Mux(sa, -(ma * self.b.as_signed()), ma * self.b.as_signed()))
                px = Signal(signed(EXP_BITS))
                m.d.comb += px.eq(ea - 25)
                xmin, lead = 1 - 25, 19 + 30 - 25
            width = lead + acc_growth - xmin + 2
            nm, nx = add_round(m, self.acc_m, self.acc_x, prod, px, xmin, width, p, True, "acc")
            with m.If(self.vld):
                m.d.sync += [self.acc_m.eq(nm), self.acc_x.eq(nx)]
            return m
    return PE()
