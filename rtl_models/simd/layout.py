"""Field layout and one-lane model of the Agile-Quant SMMW multiplier.

SMMW = "single multiplication, multiple weights" (Agile-Quant, Shen et al.,
AAAI 2024; Appendix Algorithm 1): two unsigned weights of the same
output pair are packed into one operand (weight ``n`` in the low half, weight
``n+1`` in the high half), multiplied by their shared unsigned activation,
spread into the two accumulation fields of a lane with ``LSL``/``ORR``/``AND``
and accumulated lane-wise with ``ADD``.  The paper's instance is a 16-bit
operand, a 32-bit lane, 8-bit products, 16-bit fields, mask ``0x00FF00FF`` and
at most 2**8 accumulations before the lane must be split.

Layout rules (all derived from :class:`SMMWConfig`; a violation raises
:class:`LayoutError` naming the value and the allowed range):

* ``slot_bits = operand_bits // 2``: each packed weight owns one half of the
  operand.  One product needs ``product_bits = weight_bits + act_bits`` bits and
  must fit its slot (``product_bits <= slot_bits``), so the multiply never
  carries from the low product into the high one.
* ``field_bits = lane_bits // 2``: the lane holds two accumulation fields.
  The spread is ``p |= p << (field_bits - slot_bits); p &= spread_mask`` where
  ``spread_mask`` keeps the low ``slot_bits`` of each field (``0x00FF00FF`` for
  the paper).  It is clean only if the unshifted high product (bits
  ``[slot, 2*slot)``) stays clear of field 1's kept bits, i.e.
  ``lane_bits >= 2 * operand_bits``.
* ``guard_bits = field_bits - product_bits``: headroom for accumulation.  The
  exact number of worst-case products a field holds is
  ``max_safe_accumulations = (2**field_bits - 1) // max_product`` (291 for the
  paper: 65535 // 225); ``drain_every`` must not exceed it unless
  ``allow_unsafe_drain=True``, in which case the run-time carry check is the
  only guard (used to demonstrate carry detection).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections import Counter

__all__ = ["LayoutError", "CarryError", "SMMWConfig", "SMMWLane"]


class LayoutError(ValueError):
    """An SMMW parameter set that cannot be laid out (or a bad argument)."""


class CarryError(ArithmeticError):
    """A field of a lane (or a wide accumulator) overflowed into its neighbour."""


def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LayoutError(f"{name}={value!r} must be an int in [{lo}, {hi if hi is not None else 'inf'}]")
    if value < lo or (hi is not None and value > hi):
        raise LayoutError(f"{name}={value} is outside the allowed range [{lo}, {hi if hi is not None else 'inf'}]")
    return value


@dataclass(frozen=True, kw_only=True)
class SMMWConfig:
    """Parameters of one SMMW lane (defaults = the paper's NEON kernel).

    Attributes:
        lane_bits: width of one accumulation lane (even, <= 64). Paper: 32.
        operand_bits: width of the packed weight operand (even). Paper: 16.
        weight_bits: unsigned weight width. Paper: 4.
        act_bits: unsigned activation width. Paper: 4 (8-bit activations need
            12-bit products, hence e.g. ``operand_bits=24, lane_bits=48``).
        guard_bits: optional consistency check: if given it must equal the
            derived ``lane_bits // 2 - (weight_bits + act_bits)``.
        drain_every: accumulations into a lane before a forced drain (split of
            the fields into the wide accumulators). Paper: 2**8 = 256.
        acc_bits: width of the unsigned wide accumulators the fields drain into
            (NEON: 32). Their overflow is reported like a field carry.
        allow_unsafe_drain: accept ``drain_every > max_safe_accumulations``;
            the run-time carry check then catches the overflow.
    """

    lane_bits: int = 32
    operand_bits: int = 16
    weight_bits: int = 4
    act_bits: int = 4
    guard_bits: int | None = None
    drain_every: int = 256
    acc_bits: int = 32
    allow_unsafe_drain: bool = False

    def __post_init__(self) -> None:
        _check_int("lane_bits", self.lane_bits, 2, 64)
        _check_int("operand_bits", self.operand_bits, 2, 64)
        _check_int("weight_bits", self.weight_bits, 1, 32)
        _check_int("act_bits", self.act_bits, 1, 32)
        _check_int("drain_every", self.drain_every, 1)
        _check_int("acc_bits", self.acc_bits, 1, 62)
        if self.lane_bits % 2:
            raise LayoutError(f"lane_bits={self.lane_bits} must be even (two accumulation fields per lane)")
        if self.operand_bits % 2:
            raise LayoutError(f"operand_bits={self.operand_bits} must be even (two weights per operand)")
        if self.product_bits > self.slot_bits:
            raise LayoutError(
                f"a {self.weight_bits}x{self.act_bits}-bit product needs {self.product_bits} bits but "
                f"operand_bits={self.operand_bits} gives {self.slot_bits}-bit slots; "
                f"use operand_bits >= {2 * self.product_bits}")
        if self.lane_bits < 2 * self.operand_bits:
            raise LayoutError(
                f"lane_bits={self.lane_bits} cannot hold the spread of a {self.operand_bits}-bit operand; "
                f"allowed: lane_bits >= 2*operand_bits = {2 * self.operand_bits}")
        if self.guard_bits is not None and self.guard_bits != self.lane_bits // 2 - self.product_bits:
            raise LayoutError(
                f"guard_bits={self.guard_bits} is inconsistent: lane_bits={self.lane_bits} gives "
                f"{self.field_bits}-bit fields and a {self.product_bits}-bit product, so guard_bits must be "
                f"{self.field_bits - self.product_bits}")
        if self.acc_bits < self.field_bits:
            raise LayoutError(f"acc_bits={self.acc_bits} must be >= field_bits={self.field_bits}")
        if self.drain_every > self.max_safe_accumulations and not self.allow_unsafe_drain:
            raise LayoutError(
                f"drain_every={self.drain_every} exceeds the {self.max_safe_accumulations} worst-case "
                f"accumulations a {self.field_bits}-bit field holds; allowed: 1..{self.max_safe_accumulations} "
                f"(or set allow_unsafe_drain=True to rely on carry detection)")

    # ---- derived layout -------------------------------------------------
    @property
    def product_bits(self) -> int:
        """Bits of one unsigned weight x activation product."""
        return self.weight_bits + self.act_bits

    @property
    def slot_bits(self) -> int:
        """Bits of one weight's half of the packed operand."""
        return self.operand_bits // 2

    @property
    def field_bits(self) -> int:
        """Bits of one accumulation field (half a lane)."""
        return self.lane_bits // 2

    @property
    def guard(self) -> int:
        """Accumulation headroom above one product: ``field_bits - product_bits``."""
        return self.field_bits - self.product_bits

    @property
    def spread_shift(self) -> int:
        """LSL amount moving the high product to the bottom of field 1."""
        return self.field_bits - self.slot_bits

    @property
    def spread_mask(self) -> int:
        """AND mask keeping one slot per field (``0x00FF00FF`` for the paper)."""
        slot = (1 << self.slot_bits) - 1
        return slot | (slot << self.field_bits)

    @property
    def field_mask(self) -> int:
        return (1 << self.field_bits) - 1

    @property
    def lane_mask(self) -> int:
        return (1 << self.lane_bits) - 1

    @property
    def operand_mask(self) -> int:
        return (1 << self.operand_bits) - 1

    @property
    def max_product(self) -> int:
        """Largest product of two unsigned operands, e.g. 15*15 = 225."""
        return ((1 << self.weight_bits) - 1) * ((1 << self.act_bits) - 1)

    @property
    def max_safe_accumulations(self) -> int:
        """Exact number of worst-case products a field holds without carrying."""
        return self.field_mask // self.max_product


@dataclass
class SMMWLane:
    """One lane, emulated bit for bit with Python ints (the slow reference).

    Every step masks to its register width.  ``mac`` executes MUL, LSL, ORR,
    AND, ADD; ``drain`` executes AND, LSR (field extraction) and a MOV (reset).
    ``ops`` tallies every executed instruction by mnemonic.

    Carry detection: before each ADD, every field's old value plus the incoming
    field value is compared with ``2**field_bits - 1`` (the field's carry-out
    bit, computed in a wider register).  A carry sets ``carry_detected``; with
    ``on_carry="raise"`` it raises :class:`CarryError` instead.  The lane then
    keeps the wrapped hardware value, so a reported result is the corrupted one.
    """

    config: SMMWConfig
    on_carry: str = "raise"
    value: int = 0
    count: int = 0
    carry_detected: bool = False
    ops: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if self.on_carry not in ("raise", "report"):
            raise LayoutError(f"on_carry={self.on_carry!r}; allowed: 'raise' or 'report'")

    def spread(self, packed: int, act: int) -> int:
        """MUL, LSL, ORR, AND: one packed operand times one activation -> lane."""
        c = self.config
        if not 0 <= packed <= c.operand_mask:
            raise LayoutError(f"packed operand {packed} outside [0, {c.operand_mask}]")
        if not 0 <= act < (1 << c.act_bits):
            raise LayoutError(f"activation {act} outside [0, {(1 << c.act_bits) - 1}]")
        p = (packed * act) & c.operand_mask          # MUL (fits: product < 2**operand_bits)
        p &= c.lane_mask                             # zero-extend into the lane (UMULL widening, no op)
        t = (p << c.spread_shift) & c.lane_mask      # LSL
        p = (p | t) & c.lane_mask                    # ORR
        p &= c.spread_mask                           # AND
        self.ops.update(("MUL", "LSL", "ORR", "AND"))
        return p

    def mac(self, packed: int, act: int) -> None:
        """Accumulate ``spread(packed, act)`` into the lane (checks carries)."""
        p = self.spread(packed, act)
        c = self.config
        for k in range(2):
            old = (self.value >> (k * c.field_bits)) & c.field_mask
            new = (p >> (k * c.field_bits)) & c.field_mask
            if old + new > c.field_mask:
                self.carry_detected = True
                if self.on_carry == "raise":
                    raise CarryError(
                        f"field {k} carried after {self.count + 1} accumulations "
                        f"({old} + {new} > {c.field_mask}); drain_every={c.drain_every} is unsafe")
        self.value = (self.value + p) & c.lane_mask  # ADD
        self.ops["ADD"] += 1
        self.count += 1

    def drain(self) -> tuple[int, int]:
        """Split the lane into its two fields (AND, LSR) and reset it (MOV)."""
        c = self.config
        f0 = self.value & c.field_mask               # AND
        f1 = (self.value >> c.field_bits) & c.field_mask  # LSR (top field: the mask is implicit)
        self.value = 0                               # MOV #0
        self.count = 0
        self.ops.update(("AND", "LSR", "MOV"))
        return f0, f1
