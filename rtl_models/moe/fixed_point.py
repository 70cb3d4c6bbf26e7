"""Fixed-point formats and the integer operations of the MoE datapath.

A value in a :class:`FixedPoint` format is stored as its integer *code* in an
``int64`` array; the real value is ``code * 2**-frac_bits``.  The naming follows
Vivado HLS ``ap_fixed<W, I>`` / ``ap_ufixed<W, I>``: ``total_bits`` = W,
``int_bits`` = I (the sign bit counts as an integer bit for signed formats), so
Edge-MoE's activations ``ap_fixed<32,10>`` are ``FixedPoint(32, 10)`` with 22
fraction bits (sharc-lab/Edge-MoE ``include/datatypes.hpp``).

Rounding (:class:`Rounding`) is explicit on every operation that drops bits:

* ``FLOOR``: round toward minus infinity, i.e. an arithmetic right shift.  This
  is ``ap_fixed``'s default quantisation mode ``AP_TRN``, which Edge-MoE uses
  everywhere (its types in ``include/datatypes.hpp`` name no rounding mode).
* ``HALF_AWAY``: round to nearest, ties away from zero (``AP_RND_INF``).

Overflow is never silent here: :meth:`FixedPoint.saturate` clamps (``AP_SAT``)
and :meth:`FixedPoint.in_range` lets the caller count what was clamped.
(Edge-MoE's types wrap, ``AP_WRAP``; the datapath in :mod:`.layer` reports
instead.)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FixedPoint",
    "Rounding",
    "shift_round",
    "div_round",
    "rescale",
    "wrap_to_bits",
    "fits_in_bits",
]

_MAX_TOTAL_BITS = 62  # codes and their pairwise differences must fit int64


class Rounding(str, enum.Enum):
    """How bits below the kept LSB are dropped (see the module docstring)."""

    FLOOR = "floor"
    HALF_AWAY = "half_away"


def _as_rounding(rounding: Rounding | str) -> Rounding:
    try:
        return Rounding(rounding)
    except ValueError:
        allowed = ", ".join(repr(r.value) for r in Rounding)
        raise ValueError(f"rounding={rounding!r} is not one of {allowed}") from None


@dataclass(frozen=True)
class FixedPoint:
    """A two's-complement (or unsigned) fixed-point format, ``ap_fixed``-style.

    Args:
        total_bits: word width W, 1..62 (2..62 when signed).
        int_bits: integer bits I including the sign bit, 0..W; the format has
            ``W - I`` fraction bits.
        signed: two's complement when True, unsigned otherwise.

    Codes are ``int64``; real value = ``code / 2**frac_bits``.
    """

    total_bits: int
    int_bits: int
    signed: bool = True

    def __post_init__(self) -> None:
        for name in ("total_bits", "int_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"FixedPoint.{name}={v!r} must be an int")
        if not isinstance(self.signed, (bool, np.bool_)):
            raise ValueError(f"FixedPoint.signed={self.signed!r} must be a bool")
        lo = 2 if self.signed else 1
        if not lo <= self.total_bits <= _MAX_TOTAL_BITS:
            raise ValueError(
                f"FixedPoint.total_bits={self.total_bits} out of range; allowed "
                f"{lo}..{_MAX_TOTAL_BITS} for signed={bool(self.signed)}"
            )
        if not 0 <= self.int_bits <= self.total_bits:
            raise ValueError(
                f"FixedPoint.int_bits={self.int_bits} out of range; allowed "
                f"0..total_bits ({self.total_bits})"
            )

    @property
    def frac_bits(self) -> int:
        """Number of fraction bits, ``total_bits - int_bits``."""
        return self.total_bits - self.int_bits

    @property
    def min_code(self) -> int:
        """Smallest representable code."""
        return -(1 << (self.total_bits - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        """Largest representable code."""
        return (1 << (self.total_bits - 1)) - 1 if self.signed else (1 << self.total_bits) - 1

    @property
    def max_abs_code(self) -> int:
        """Largest ``|code|`` (used for int64 headroom checks)."""
        return max(-self.min_code, self.max_code)

    def in_range(self, codes: np.ndarray) -> np.ndarray:
        """Boolean mask of the codes representable in this format."""
        codes = np.asarray(codes)
        return (codes >= self.min_code) & (codes <= self.max_code)

    def saturate(self, codes: np.ndarray) -> np.ndarray:
        """Clamp integer codes to ``[min_code, max_code]`` (``AP_SAT``); int64 out."""
        return np.clip(np.asarray(codes, dtype=np.int64), self.min_code, self.max_code)

    def quantize(self, x: np.ndarray, rounding: Rounding | str = Rounding.FLOOR) -> np.ndarray:
        """Real values -> saturated int64 codes, rounding as ``rounding`` says.

        Exact for every finite float64 (scaling by a power of two is exact and
        the tie test uses the exact fractional part).  NaN raises ValueError.
        """
        rounding = _as_rounding(rounding)
        x = np.asarray(x, dtype=np.float64)
        if np.isnan(x).any():
            raise ValueError("FixedPoint.quantize got NaN; only finite or +-inf values can be quantized")
        v = np.ldexp(x, self.frac_bits)
        if rounding is Rounding.FLOOR:
            r = np.floor(v)
        else:
            t = np.trunc(v)
            frac = np.abs(v - t)  # exact: v and t share their exponent range
            r = t + np.where(frac >= 0.5, np.sign(v), 0.0)
        r = np.clip(r, float(self.min_code), float(self.max_code))
        # float(max_code) may round up past max_code for wide formats: clamp again in int
        return self.saturate(r.astype(np.int64))

    def to_float(self, codes: np.ndarray) -> np.ndarray:
        """Codes -> float64 real values (exact when ``|code| < 2**53``)."""
        return np.ldexp(np.asarray(codes, dtype=np.float64), -self.frac_bits)

    def __str__(self) -> str:
        kind = "fixed" if self.signed else "ufixed"
        return f"ap_{kind}<{self.total_bits},{self.int_bits}>"


def shift_round(v: np.ndarray, shift, rounding: Rounding | str) -> np.ndarray:
    """Divide int64 ``v`` by ``2**shift`` (``shift >= 0``, scalar or array) and round.

    ``FLOOR`` is ``v >> shift``; ``HALF_AWAY`` is
    ``sign(v) * ((|v| + 2**(shift-1)) >> shift)`` (no change when shift is 0).
    ``shift`` must be at most 62.
    """
    rounding = _as_rounding(rounding)
    v = np.asarray(v, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    if (s < 0).any() or (s > 62).any():
        raise ValueError(f"shift_round: shift must be in 0..62, got {shift!r}")
    if rounding is Rounding.FLOOR:
        return v >> s
    a = np.abs(v)
    half = np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), 0)
    r = (a + half) >> s
    return np.where(v < 0, -r, r)


def div_round(n: np.ndarray, d: np.ndarray, rounding: Rounding | str) -> np.ndarray:
    """``n / d`` for int64 ``n >= 0``, ``d > 0``, rounded: ``FLOOR`` is ``n // d``,
    ``HALF_AWAY`` is ``(2n + d) // (2d)`` (ties up, i.e. away from zero)."""
    rounding = _as_rounding(rounding)
    n = np.asarray(n, dtype=np.int64)
    d = np.asarray(d, dtype=np.int64)
    if (n < 0).any() or (d <= 0).any():
        raise ValueError("div_round needs numerators >= 0 and denominators > 0")
    if rounding is Rounding.FLOOR:
        return n // d
    return (2 * n + d) // (2 * d)


def rescale(acc: np.ndarray, acc_frac_bits: int, fmt: FixedPoint, rounding: Rounding | str) -> np.ndarray:
    """Requantise integer ``acc`` holding ``acc_frac_bits`` fraction bits to ``fmt``.

    This is the step after a product of Q formats (whose fraction bits add):
    shift right by ``acc_frac_bits - fmt.frac_bits`` with ``rounding`` (or left
    when negative, which is exact), then saturate to ``fmt``.  Count the clamped
    entries beforehand with ``fmt.in_range`` on the unsaturated result of
    :func:`shift_round` if needed.
    """
    s = acc_frac_bits - fmt.frac_bits
    acc = np.asarray(acc, dtype=np.int64)
    v = shift_round(acc, s, rounding) if s >= 0 else acc << (-s)
    return fmt.saturate(v)


def fits_in_bits(v: np.ndarray, bits: int) -> np.ndarray:
    """Mask of int64 values representable as ``bits``-bit two's complement."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    v = np.asarray(v)
    return (v >= lo) & (v <= hi)


def wrap_to_bits(v: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement wrap of int64 values to ``bits`` bits (what an adder of
    that width holds).  Wrapping commutes with addition mod ``2**bits``."""
    if bits >= 64:
        return np.asarray(v, dtype=np.int64)
    m = np.int64(1) << np.int64(bits)
    h = np.int64(1) << np.int64(bits - 1)
    return ((np.asarray(v, dtype=np.int64) + h) & (m - 1)) - h
