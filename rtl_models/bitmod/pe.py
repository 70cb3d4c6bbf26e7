"""Cycle-stepped BitMoD PE (BitMoD, Chen et al., HPCA 2025, Fig. 5).

The pipeline follows the paper's Fig. 5; the widths marked "dev RTL" come from the
pre-publication SystemVerilog of the PE, yc2367/BitMoD ``hardware/pe/*.v`` (July 2024).

Per cycle the PE takes one bit-serial term of each of 4 weights and 4 full FP16 activations:

1. exponent match: e_i = e_act,i + exp_i, E = max_i e_i over the 4 lanes (all lanes, as dev RTL
   ``exp_match.v``), product sign = s_act ^ s_term;
2. bit-serial multiply: the 11-bit activation significand (hidden bit included) AND the term
   mantissa bit, shifted right by E - e_i keeping ``guard_bits`` extra bits (Fig. 5: 3,
   round-to-nearest-even after FPRaker), signed 4-input adder tree (exact);
3. group accumulate: the cycle sum, shifted by the shared bit significance, is added to the
   group accumulator, a float with an ``acc_man_bits``-wide signed mantissa (dev RTL: 15);
4. bit-serial dequant: after the group's last term the accumulator is handed to the dequant
   unit, which multiplies it by the group scale one scale bit per cycle (MSB first,
   shift-and-add) while the next group's dot product runs; the product is rounded to
   ``deq_man_bits`` (dev RTL: 21). The scale is the 8-bit second-level code (8 cycles) when
   the weights carry INT8 scales, else the 11-bit significand of the FP16 group scale (11
   cycles; its exponent is added exactly).
5. the per-column output accumulator adds the dequantized group results (``out_man_bits``;
   the paper does not give its format, default 25 = float32 significand + sign) and finally
   multiplies by the per-channel FP16 scale when INT8 group scales are used.

Schedule: groups in order; within a group, lane-groups of 4 consecutive weights in index
order; for each lane-group its terms in ``decompose_terms`` order (lowest bsig first, as the
dev RTL serial reader), one term slot per cycle.

Every narrowing step rounds the exact value once (RNE, or truncation as the dev RTL's plain
shifts: magnitude truncation for lane alignment, floor for the two's-complement accumulators).
``None`` for a width means exact. Deliberate idealisations of the July-2024 dev RTL, which the
HPCA repo does not contain and which is unfinished: the 23-bit internal group adder and the
6-bit exponent fields are not modelled as separate truncations (the exact sum is rounded once;
FP16 inputs cannot overflow a 6-bit exponent), and the dequant register rounds instead of
wrapping (a 15-bit x 8-bit product needs 23 bits, the RTL register has 21).
The returned float is the final accumulator value, rounded once to float64 if it is wider.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from .datatypes import (
    LANES,
    BitmodInputError,
    allowed_codes,
    cycles_per_group,
    decompose_terms,
    terms_per_weight,
)
from .quantizer import BitmodQuant

__all__ = ["Rounding", "PEConfig", "PEResult", "PEDotResult", "BitmodPE", "pe_dot"]

_FP16_BIAS_PLUS_FRAC = 25  # value = significand * 2^(e_eff - 15 - 10)


class Rounding(enum.Enum):
    """How a narrowing step drops bits: round-to-nearest-even, or truncation like plain shifts."""

    RNE = "rne"
    TRUNCATE = "truncate"


def _check_width(name: str, v: object, minimum: int) -> None:
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise BitmodInputError(f"{name}={v!r} must be None (exact) or an integer >= {minimum}")


@dataclass(frozen=True, kw_only=True)
class PEConfig:
    """Datapath widths of the PE. ``None`` = exact (unbounded) for that step.

    Fields:
        guard_bits: extra bits kept when aligning a lane product to the cycle's max exponent
            (BitMoD Fig. 5: 3). The aligned product is 11 + guard_bits bits wide.
        acc_man_bits: signed mantissa width of the group accumulator (sign included; dev RTL 15).
        deq_man_bits: signed mantissa width of the dequant result (dev RTL 21).
        out_man_bits: signed mantissa width of the per-column output accumulator
            (not given by the paper; 25 = float32's 24-bit significand + sign).
        rounding: Rounding.RNE (paper) or Rounding.TRUNCATE (dev RTL shifters).
    """

    guard_bits: int | None = 3
    acc_man_bits: int | None = 15
    deq_man_bits: int | None = 21
    out_man_bits: int | None = 25
    rounding: Rounding = Rounding.RNE

    def __post_init__(self) -> None:
        _check_width("guard_bits", self.guard_bits, 0)
        _check_width("acc_man_bits", self.acc_man_bits, 2)
        _check_width("deq_man_bits", self.deq_man_bits, 2)
        _check_width("out_man_bits", self.out_man_bits, 2)
        if not isinstance(self.rounding, Rounding):
            raise BitmodInputError(f"rounding={self.rounding!r} must be a Rounding member")

    @classmethod
    def exact(cls) -> "PEConfig":
        """All steps exact: the PE output is the exact dot product rounded once to float64."""
        return cls(guard_bits=None, acc_man_bits=None, deq_man_bits=None, out_man_bits=None)


@dataclass(frozen=True)
class PEResult:
    """One output of one PE: value, total cycles and their split; trace if requested.

    ``cycles`` runs from the first dot-product cycle to the last dequant cycle.
    ``stall_cycles`` counts cycles in which the dot stage had work but waited because the
    dequant unit had not yet taken the previous group (only when scale bits > group cycles).
    ``trace`` entries are ``(cycle, "dot", group, lane_group, term_slot)``,
    ``(cycle, "stall", group)`` and ``(cycle, "deq", group, scale_bit_index)``.
    """

    output: float
    cycles: int
    dot_cycles: int
    dequant_cycles: int
    stall_cycles: int
    trace: tuple | None = None


@dataclass(frozen=True)
class PEDotResult:
    """``pe_dot`` result: outputs [K] (or [T, K]) float64 and cycles per output on one PE."""

    outputs: np.ndarray
    cycles_per_output: int


def _rshift_mag(v: int, k: int, mode: Rounding) -> int:
    """v >= 0 divided by 2^k, rounded (RNE) or truncated."""
    if k <= 0:
        return v << -k
    q = v >> k
    if mode is Rounding.RNE:
        r = v - (q << k)
        half = 1 << (k - 1)
        if r > half or (r == half and q & 1):
            q += 1
    return q


def _round(m: int, x: int, width: int | None, mode: Rounding) -> tuple[int, int]:
    """Round m*2^x to a signed mantissa of ``width`` bits (|m| < 2^(width-1))."""
    if width is None:
        return m, x
    p = width - 1
    n = abs(m).bit_length()
    if n <= p:
        return m, x
    k = n - p
    if mode is Rounding.TRUNCATE:
        return m >> k, x + k  # arithmetic shift = floor, as a two's-complement register
    a = _rshift_mag(abs(m), k, mode)
    if a >> p:  # rounded up to 2^p: renormalise (exact, a is even)
        a >>= 1
        k += 1
    return (-a if m < 0 else a), x + k


def _add(m1: int, x1: int, m2: int, x2: int) -> tuple[int, int]:
    if m1 == 0:
        return m2, x2
    if m2 == 0:
        return m1, x1
    x = min(x1, x2)
    return (m1 << (x1 - x)) + (m2 << (x2 - x)), x


def _to_float(m: int, x: int) -> float:
    m, x = _round(m, x, 54, Rounding.RNE)
    return math.ldexp(float(m), x)


def _decode_f16(a: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    """FP16 -> (sign, effective biased exponent, 11-bit significand) with subnormals."""
    b = np.asarray(a, np.float16).view(np.uint16).astype(np.int64)
    e = (b >> 10) & 31
    f = b & 1023
    sig = np.where(e > 0, f | 1024, f)
    return (b >> 15).tolist(), np.maximum(e, 1).tolist(), sig.tolist()


_TERM_TABLES = {
    bits: {v: decompose_terms(v, bits) for v in allowed_codes(bits)} for bits in (3, 4, 6, 8)
}


def _as_fp16_activations(activations, c: int) -> np.ndarray:
    a = np.asarray(activations)
    if a.ndim not in (1, 2) or a.shape[-1] != c:
        raise BitmodInputError(
            f"activations must have shape [{c}] or [T, {c}] to match the weights, got {a.shape}"
        )
    if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
        raise BitmodInputError(f"activations must be real-valued, got dtype {a.dtype}")
    with np.errstate(over="ignore"):
        a16 = a.astype(np.float16)
    if not np.all(np.isfinite(a16)):
        raise BitmodInputError("activations must be finite and within the float16 range")
    return a16


class BitmodPE:
    """A cycle-stepped BitMoD PE with configurable datapath widths (see module docstring).

    ``BitmodPE()`` uses the dev-RTL widths (``PEConfig()``); ``BitmodPE(PEConfig.exact())``
    computes the dot product exactly.
    """

    def __init__(self, config: PEConfig | None = None) -> None:
        if config is None:
            config = PEConfig()
        if not isinstance(config, PEConfig):
            raise BitmodInputError(f"config={config!r} must be a PEConfig")
        self.config = config

    @staticmethod
    def _check_quant(quant: BitmodQuant) -> None:
        if not isinstance(quant, BitmodQuant):
            raise BitmodInputError(f"quant must be a BitmodQuant, got {type(quant).__name__}")
        cycles_per_group(quant.bits, quant.group)  # validates group % 4 == 0
        if quant.scale_codes is None and quant.scale_dtype != "float16":
            raise BitmodInputError(
                f"the PE dequantizes FP16 or INT8 scales; got scale_dtype={quant.scale_dtype!r}"
            )
        if quant.scale_codes is not None and quant.channel_scales.dtype != np.float16:
            raise BitmodInputError("INT8 group scales need float16 channel scales")

    def _lane_cycle(self, sa, ea, ma, terms) -> tuple[int, int]:
        """One cycle of stages 1-2: signed aligned sum of 4 lane products, as (m, x)."""
        cfg = self.config
        e = [ea[i] + terms[i].exp for i in range(LANES)]
        b = terms[0].bsig
        if cfg.guard_bits is None:
            emin = min(e)
            s = 0
            for i in range(LANES):
                if terms[i].man:
                    v = ma[i] << (e[i] - emin)
                    s += -v if sa[i] ^ terms[i].sign else v
            return s, emin - _FP16_BIAS_PLUS_FRAC + b
        g = cfg.guard_bits
        emax = max(e)
        s = 0
        for i in range(LANES):
            if terms[i].man and ma[i]:
                v = _rshift_mag(ma[i] << g, emax - e[i], cfg.rounding)
                s += -v if sa[i] ^ terms[i].sign else v
        return s, emax - _FP16_BIAS_PLUS_FRAC - g + b

    def run_row(self, quant: BitmodQuant, row: int, activations, *, trace: bool = False) -> PEResult:
        """Compute output channel ``row`` for one activation vector [C], cycle by cycle."""
        self._check_quant(quant)
        k, c = quant.codes.shape
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)) or not 0 <= row < k:
            raise BitmodInputError(f"row={row!r} must be an integer in [0, {k})")
        a16 = _as_fp16_activations(activations, c)
        if a16.ndim != 1:
            raise BitmodInputError(f"run_row takes one activation vector [{c}], got {a16.shape}")
        return self._run(quant, int(row), a16, trace)

    def _run(self, quant: BitmodQuant, row: int, a16: np.ndarray, trace: bool) -> PEResult:
        cfg, mode = self.config, self.config.rounding
        sa, ea, ma = _decode_f16(a16)
        table = _TERM_TABLES[quant.bits]
        terms = [table[v] for v in quant.codes[row].tolist()]
        n_t = terms_per_weight(quant.bits)
        n_lg, ng = quant.group // LANES, quant.n_groups
        if quant.scale_codes is not None:
            scale_q = [(int(q), 0) for q in quant.scale_codes[row].tolist()]
            n_sb = 8
        else:
            _, se, sm = _decode_f16(quant.scales[row])
            scale_q = [(sm[i], se[i] - _FP16_BIAS_PLUS_FRAC) for i in range(ng)]
            n_sb = 11
        g = j = t = 0
        acc = (0, 0)
        out = (0, 0)
        pending = None  # finished group accumulator waiting for the dequant unit
        deq = None  # [m, x, group, bit index, running product]
        cycle = dot_c = deq_c = stall_c = 0
        events = [] if trace else None
        while g < ng or pending is not None or deq is not None:
            if g < ng:
                if pending is None:
                    base = g * quant.group + j * LANES
                    lanes = range(base, base + LANES)
                    s, x = self._lane_cycle(
                        [sa[i] for i in lanes], [ea[i] for i in lanes], [ma[i] for i in lanes],
                        [terms[i][t] for i in lanes],
                    )
                    acc = _round(*_add(*acc, s, x), cfg.acc_man_bits, mode)
                    if events is not None:
                        events.append((cycle, "dot", g, j, t))
                    dot_c += 1
                    t += 1
                    if t == n_t:
                        t, j = 0, j + 1
                        if j == n_lg:
                            pending, acc, g, j = (acc, g), (0, 0), g + 1, 0
                else:
                    stall_c += 1
                    if events is not None:
                        events.append((cycle, "stall", g))
            if deq is not None:
                (m, x), gd, bit, prod = deq
                q, qx = scale_q[gd]
                prod = 2 * prod + (m if (q >> (n_sb - 1 - bit)) & 1 else 0)  # shift-and-add
                if events is not None:
                    events.append((cycle, "deq", gd, bit))
                deq_c += 1
                if bit + 1 == n_sb:
                    dm, dx = _round(prod, x + qx, cfg.deq_man_bits, mode)
                    out = _round(*_add(*out, dm, dx), cfg.out_man_bits, mode)
                    deq = None
                else:
                    deq = ((m, x), gd, bit + 1, prod)
            if pending is not None and deq is None:  # hand over at the end of the cycle
                deq = (pending[0], pending[1], 0, 0)
                pending = None
            cycle += 1
        if quant.scale_codes is not None:
            _, ce, cm = _decode_f16(quant.channel_scales[row : row + 1])
            out = _round(out[0] * cm[0], out[1] + ce[0] - _FP16_BIAS_PLUS_FRAC, cfg.out_man_bits, mode)
        return PEResult(
            output=_to_float(*out),
            cycles=cycle,
            dot_cycles=dot_c,
            dequant_cycles=deq_c,
            stall_cycles=stall_c,
            trace=tuple(events) if events is not None else None,
        )


def pe_dot(quant: BitmodQuant, activations, *, config: PEConfig | None = None) -> PEDotResult:
    """Run every output channel of ``quant`` on one BitMoD PE for activations [C] or [T, C].

    Returns outputs [K] (or [T, K]) as float64 and the cycles one PE takes per output
    (identical for every output: ``row_cycles(bits, C // group, group, scale_bits)`` with
    8 scale bits for INT8 group scales, 11 for FP16 group scales).
    """
    pe = BitmodPE(config)
    pe._check_quant(quant)
    k, c = quant.codes.shape
    a16 = _as_fp16_activations(activations, c)
    a2 = a16[None] if a16.ndim == 1 else a16
    outs = np.empty((a2.shape[0], k))
    cycles = set()
    for ti in range(a2.shape[0]):
        for r in range(k):
            res = pe._run(quant, r, a2[ti], False)
            outs[ti, r] = res.output
            cycles.add(res.cycles)
    assert len(cycles) == 1  # every output of one quant has the same schedule
    return PEDotResult(outputs=outs[0] if a16.ndim == 1 else outs, cycles_per_output=cycles.pop())
