"""Amaranth building blocks of the BitMoD PE: leading-one count, exact add-and-round.

Numbers are ``(m, x)`` pairs, value ``m * 2**x`` with a signed mantissa ``m`` and a signed
exponent ``x``, as in :mod:`rtl_models.bitmod.pe`. The model adds exactly and rounds the
exact sum once (RNE on the magnitude, or floor as a two's-complement shift); the blocks here
do the same with a fixed-point adder wide enough for every value the parameters allow
(the window is computed by the caller from the value ranges), so they are exact by
construction rather than by a guard/round/sticky argument.
"""

from __future__ import annotations

__all__ = ["bit_length", "round_fixed", "add_round", "EXP_BITS"]

EXP_BITS = 10  # signed exponent registers: every exponent here lies in -128..127


def bit_length(m, value, width: int, name: str):
    """Comb signal = number of bits of the unsigned ``value`` (0 for 0): a priority encoder."""
    from amaranth.hdl import Mux, Signal

    n = Signal(range(width + 1), name=name)
    expr = 0
    for i in range(width):  # the highest set bit wins: build from the bottom up
        expr = Mux(value[i], i + 1, expr)
    m.d.comb += n.eq(expr)
    return n


def round_fixed(m, f, width: int, x0, p: int, rne: bool, name: str):
    """Round the signed fixed-point ``f`` (``width`` bits, value ``f * 2**x0``) to a ``p``-bit mantissa.

    Returns comb ``(mant, exp)``: ``mant`` signed ``p`` bits, ``exp`` signed :data:`EXP_BITS`.
    Same rule as ``pe._round``: keep it if ``|f|`` has at most ``p - 1`` bits, else drop
    ``k = bits(|f|) - (p - 1)`` bits, RNE on the magnitude (renormalising a round-up to
    ``2**(p-1)``) or floor (arithmetic shift). ``x0`` is an int or a signed signal.
    """
    from amaranth.hdl import Mux, Signal, signed, unsigned

    mag = Signal(unsigned(width), name=f"{name}_mag")
    m.d.comb += mag.eq(Mux(f < 0, -f, f))
    n = bit_length(m, mag, width, f"{name}_n")
    kmax = max(width - (p - 1), 1)
    k = Signal(range(kmax + 2), name=f"{name}_k")
    m.d.comb += k.eq(Mux(n > p - 1, n - (p - 1), 0))
    mant = Signal(signed(p), name=f"{name}_m")
    exp = Signal(signed(EXP_BITS), name=f"{name}_x")
    if not rne:
        m.d.comb += [mant.eq(f >> k), exp.eq(x0 + k)]  # floor, as a two's-complement register
        return mant, exp
    q = Signal(unsigned(width), name=f"{name}_q")
    r = Signal(unsigned(width), name=f"{name}_r")
    half = Signal(unsigned(width), name=f"{name}_half")
    m.d.comb += [q.eq(mag >> k), r.eq(mag - (q << k)[:width]),
                 half.eq(Mux(k == 0, 0, _one_shl(m, k, width, name)))]
    up = (k != 0) & ((r > half) | ((r == half) & q[0]))
    qr = Signal(unsigned(p + 1), name=f"{name}_qr")
    m.d.comb += qr.eq(q + up)
    ovf = qr[p - 1]  # rounded up to 2**(p-1): renormalise (exact, the value is even)
    a = Signal(unsigned(p), name=f"{name}_a")
    m.d.comb += a.eq(Mux(ovf, qr >> 1, qr))
    m.d.comb += [mant.eq(Mux(f < 0, -a, a)), exp.eq(x0 + k + ovf)]
    return mant, exp


def _one_shl(m, k, width: int, name: str):
    """``2**(k-1)`` for ``k >= 1`` as a ``width``-bit value (0 if it does not fit)."""
    from amaranth.hdl import Const, Signal

    km1 = Signal(len(k), name=f"{name}_km1")
    m.d.comb += km1.eq(k - 1)
    return (Const(1, width) << km1)[:width]


def add_round(m, a_m, a_x, b_m, b_x, xmin: int, width: int, p: int, rne: bool, name: str):
    """Exact ``a_m*2**a_x + b_m*2**b_x`` rounded once to a ``p``-bit mantissa.

    Both operands are placed on the fixed-point grid ``2**xmin`` in a ``width``-bit signed
    adder; the caller guarantees ``x >= xmin`` for a nonzero operand and that every sum fits.
    Returns comb ``(mant, exp)`` as :func:`round_fixed`.
    """
    from amaranth.hdl import Mux, Signal, signed

    parts = []
    for tag, mm, xx in (("a", a_m, a_x), ("b", b_m, b_x)):
        sh = Signal(range(width), name=f"{name}_{tag}_sh")
        m.d.comb += sh.eq(Mux(mm == 0, 0, xx - xmin))
        fx = Signal(signed(width), name=f"{name}_{tag}_fx")
        m.d.comb += fx.eq((mm.as_signed() << sh)[:width].as_signed())
        parts.append(fx)
    s = Signal(signed(width), name=f"{name}_sum")
    m.d.comb += s.eq(parts[0] + parts[1])
    return round_fixed(m, s, width, xmin, p, rne, name)
