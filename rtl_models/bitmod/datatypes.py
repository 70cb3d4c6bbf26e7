"""BitMoD value sets, the unified bit-serial term representation, and PE cycle rules.

All values are in *code units* (as in ``bitmod_quant/quant_utils/quant_weight.py`` of the
HPCA'25 artifact abdelfattah-lab/BitMoD-HPCA-25): FP4 values are stored x2 so that every code
is an integer (FP4 0.5 -> 1, 6 -> 12, special 8 -> 16).
FP3, INT6 and INT8 code units equal their plain values. Every dequantized weight is
``code * scale``; the x2 of FP4 is folded into the scale, exactly as in the published code.

Sources: BitMoD (Chen et al., HPCA 2025; arXiv 2411.11745): Table IV (value sets), Algorithm 1
(selection order), §IV-A with Fig. 4 and Eq. 4 (bit-serial terms), Fig. 5 (the 4-lane PE, 64
cycles per 128-weight group); the published quantizer above (rounding, qmax); the radix-4 Booth
table of the pre-publication RTL yc2367/BitMoD ``hardware/pe/decoder.v``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "BitmodInputError",
    "ValueSet",
    "Term",
    "SUPPORTED_BITS",
    "candidate_sets",
    "allowed_codes",
    "decompose_terms",
    "terms_per_weight",
    "cycles_per_group",
    "row_cycles",
    "LANES",
]

LANES = 4  # the PE is a 4-way dot product per cycle (BitMoD Fig. 5)
SUPPORTED_BITS = (3, 4, 6, 8)


class BitmodInputError(ValueError):
    """Bad argument to a BitMoD datapath function (a ValueError subclass)."""


@dataclass(frozen=True)
class ValueSet:
    """One candidate datatype: its name, sorted code-unit values and ``qmax = max |value|``.

    ``midpoints`` are the rounding thresholds of the published quantizer: a scaled weight ``x``
    maps to ``values[i]`` where ``i`` = number of midpoints strictly below ``x``, so a value
    exactly on a midpoint goes to the lower neighbour (published quantizer, ``x <= mid`` -> lower).
    ``is_int`` marks the INT6/INT8 sets, which the published code rounds with round-half-even
    (``torch.round``) and clamps to ``[-qmax, qmax]`` instead of using midpoints.
    """

    name: str
    values: tuple[int, ...]
    is_int: bool = False

    @property
    def qmax(self) -> int:
        return max(abs(v) for v in self.values)

    @property
    def midpoints(self) -> tuple[float, ...]:
        v = self.values
        return tuple((v[i] + v[i + 1]) / 2 for i in range(len(v) - 1))


def _ext(base: tuple[int, ...], special: int) -> tuple[int, ...]:
    return tuple(sorted(base + (special,)))


# Code units = bitmod_quant/quant_utils/quant_weight.py of the HPCA'25 artifact (paper Table IV; FP4 x2).
_FP3 = (-4, -2, -1, 0, 1, 2, 4)
_FP4 = (-12, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 12)

# Candidate order is the published tie order [er_pos, er_neg, ea_pos, ea_neg] (Algorithm 1;
# ``search_datatype`` updates only on a strict ``<``):
# the selector stored per group is the index into this tuple.
_CANDIDATES: dict[int, tuple[ValueSet, ...]] = {
    3: (
        ValueSet("fp3_er_pos", _ext(_FP3, 3)),
        ValueSet("fp3_er_neg", _ext(_FP3, -3)),
        ValueSet("fp3_ea_pos", _ext(_FP3, 6)),
        ValueSet("fp3_ea_neg", _ext(_FP3, -6)),
    ),
    4: (
        ValueSet("fp4_er_pos", _ext(_FP4, 10)),
        ValueSet("fp4_er_neg", _ext(_FP4, -10)),
        ValueSet("fp4_ea_pos", _ext(_FP4, 16)),
        ValueSet("fp4_ea_neg", _ext(_FP4, -16)),
    ),
    # Lossless mode: symmetric per-group INT (BitMoD's lossless config, Table II; published
    # quant_int, qmax = 2^(b-1)-1).
    6: (ValueSet("int6", tuple(range(-31, 32)), is_int=True),),
    8: (ValueSet("int8", tuple(range(-127, 128)), is_int=True),),
}

_TERMS_PER_WEIGHT = {3: 2, 4: 2, 6: 3, 8: 4}  # BitMoD §IV-A: ext-FP 2, INT6 3, INT8 4 (Booth)


def _check_bits(bits: object) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in SUPPORTED_BITS:
        raise BitmodInputError(f"bits={bits!r} is not supported; allowed: {SUPPORTED_BITS}")
    return bits


def candidate_sets(bits: int) -> tuple[ValueSet, ...]:
    """The candidate datatypes searched per group for ``bits`` (3, 4: four ext-FP sets; 6, 8: INT)."""
    return _CANDIDATES[_check_bits(bits)]


def allowed_codes(bits: int) -> tuple[int, ...]:
    """Every code-unit value a ``bits``-wide weight can take (union over its candidate sets).

    For INT6/INT8 this is the full two's-complement range the Booth decoder accepts
    (-32..31 / -128..127), a superset of the symmetric quantizer's output.
    """
    bits = _check_bits(bits)
    if bits in (6, 8):
        return tuple(range(-(1 << (bits - 1)), 1 << (bits - 1)))
    return tuple(sorted({v for s in _CANDIDATES[bits] for v in s.values}))


class Term(NamedTuple):
    """One bit-serial weight term: value = (-1)^sign * man * 2^exp * 2^bsig (BitMoD §IV-A, Eq. 4).

    ``exp`` is the 2-bit exponent (0..3), ``man`` the 1-bit mantissa (0 means a zero term),
    ``bsig`` the bit significance shared by the 4 lanes in a cycle.
    """

    sign: int
    exp: int
    man: int
    bsig: int

    @property
    def value(self) -> int:
        return (-1 if self.sign else 1) * self.man * (1 << (self.exp + self.bsig))


def _booth_terms(value: int, bits: int) -> tuple[Term, ...]:
    # Radix-4 Booth over the two's-complement word with an implicit 0 below the LSB (dev RTL
    # decoder.v pads {data, 1'b0}); digit k = -2*b[2k+1] + b[2k] + b[2k-1] in {-2..2}, bsig = 2k.
    # Digit -> {sign, exp, man}: 0 -> 000, +-1 -> s01, +-2 -> s11 (decoder.v table).
    word = (value & ((1 << bits) - 1)) << 1
    out = []
    for k in range(bits // 2):
        trip = (word >> (2 * k)) & 0b111
        digit = -2 * (trip >> 2) + ((trip >> 1) & 1) + (trip & 1)
        if digit == 0:
            out.append(Term(0, 0, 0, 2 * k))
        else:
            out.append(Term(1 if digit < 0 else 0, abs(digit) >> 1, 1, 2 * k))
    return tuple(out)


def _fp_terms(value: int) -> tuple[Term, ...]:
    # BitMoD §IV-A: the magnitude as fixed point I3..I0.F0 (= code-unit bits b4..b1 | b0). A
    # leading-one detector over {I3..I0} (b4..b1, bsig 1) gives the high term; the remainder is
    # at most one bit inside {I2, I1, I0, F0} (b3..b0, bsig 0) and gives the low term.
    sign = 1 if value < 0 else 0
    mag = abs(value)
    if mag >= 2:
        p = mag.bit_length() - 1
        hi = Term(sign, p - 1, 1, 1)
        rem = mag - (1 << p)
    else:
        hi = Term(sign, 0, 0, 1)
        rem = mag
    if rem == 0:
        lo = Term(sign, 0, 0, 0)
    else:
        lo = Term(sign, rem.bit_length() - 1, 1, 0)
    # Issue order follows the dev RTL serial reader: lowest bit significance first.
    return (lo, hi)


def decompose_terms(value: int, bits: int) -> tuple[Term, ...]:
    """Split one integer code (code units) into its bit-serial terms, in PE issue order.

    ``bits`` 3/4 (ext-FP3/FP4): exactly 2 terms (bsig 0, then bsig 1). ``bits`` 6/8: radix-4
    Booth, 3/4 terms with bsig 0, 2, 4(, 6). ``sum(t.value for t in terms) == value`` always.
    Raises BitmodInputError if ``value`` is not a code of that width (see ``allowed_codes``).
    """
    bits = _check_bits(bits)
    if isinstance(value, bool) or int(value) != value:
        raise BitmodInputError(f"value={value!r} must be an integer code")
    value = int(value)
    if value not in _ALLOWED_SET[bits]:
        raise BitmodInputError(
            f"value={value} is not a {bits}-bit BitMoD code; allowed: {allowed_codes(bits)}"
        )
    return _booth_terms(value, bits) if bits in (6, 8) else _fp_terms(value)


_ALLOWED_SET = {b: frozenset(allowed_codes(b)) for b in SUPPORTED_BITS}


def terms_per_weight(bits: int) -> int:
    """Bit-serial terms (= PE cycles per 4 weights): ext-FP3/FP4 2, INT6 3, INT8 4 (BitMoD §IV-A)."""
    return _TERMS_PER_WEIGHT[_check_bits(bits)]


def _check_group(group: object) -> int:
    if isinstance(group, bool) or not isinstance(group, int) or group < LANES or group % LANES:
        raise BitmodInputError(
            f"group={group!r} must be a positive multiple of the {LANES} PE lanes"
        )
    return group


def cycles_per_group(bits: int, group: int = 128) -> int:
    """Dot-product cycles for one weight group: ``group / 4 * terms_per_weight(bits)``.

    128 weights: ext-FP4/FP3 64, INT6 96, INT8 128 cycles (BitMoD Fig. 5: 128/4 x 2 = 64).
    """
    return (_check_group(group) // LANES) * terms_per_weight(bits)


def row_cycles(bits: int, n_groups: int, group: int = 128, scale_bits: int = 8) -> int:
    """Cycles for one PE to produce one output over ``n_groups`` groups, dequant included.

    Two-stage pipeline: group g's bit-serial dequant (``scale_bits`` cycles, one scale bit per
    cycle) runs while group g+1's dot product proceeds; the dot stage stalls only if the
    dequant unit is still busy when the next group finishes. Hence
    ``C_dot + C_deq + (n_groups - 1) * max(C_dot, C_deq)``: e.g. FP4, group 128, 8-bit scales
    -> ``64 * n_groups + 8`` (only the last dequant is exposed). Pipeline-fill latency of the
    exp-match/multiply/accumulate stages and the per-column output accumulator are not counted.
    """
    if isinstance(n_groups, bool) or not isinstance(n_groups, int) or n_groups < 1:
        raise BitmodInputError(f"n_groups={n_groups!r} must be a positive integer")
    if isinstance(scale_bits, bool) or not isinstance(scale_bits, int) or scale_bits < 1:
        raise BitmodInputError(f"scale_bits={scale_bits!r} must be a positive integer")
    c_dot = cycles_per_group(bits, group)
    return c_dot + scale_bits + (n_groups - 1) * max(c_dot, scale_bits)
