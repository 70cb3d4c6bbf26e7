"""Accumulator width checking shared by the datapath models.

Every register that holds a sum (a PE accumulator, a partial sum moving down a column,
the output buffer that adds up K-folds) is written through :meth:`Accumulator.fit`.
With ``bits=None`` the register is plain numpy int64 (two's-complement wrap at 2**64,
the same ring as ``torch.matmul`` on int64). With ``bits=b`` the register holds
``[-2**(b-1), 2**(b-1) - 1]`` and an out-of-range write either raises
:class:`AccumulatorOverflowError` (``overflow="raise"``) or wraps modulo ``2**b`` and is
counted in :attr:`Accumulator.overflows` (``overflow="wrap"``, what narrow hardware does).

Exactness: with ``bits`` set, operands are required to fit in int32 and ``bits <= 63``,
so every product (< 2**62 in magnitude) and every in-range sum + product is exact in
int64 before the range check; the check never sees an already-wrapped int64 value.
Because wrapping is a ring homomorphism, a GEMM computed with ``overflow="wrap"``
equals the exact result wrapped once to ``b`` bits, whatever the accumulation order.
"""

from __future__ import annotations

import numbers

import numpy as np

OVERFLOW_MODES: tuple[str, ...] = ("raise", "wrap")
MAX_ACC_BITS = 63


class AccumulatorOverflowError(OverflowError, ValueError):
    """A sum register received a value outside its ``acc_bits`` range (``overflow="raise"``)."""


class Accumulator:
    """Width policy for sum registers: ``bits`` (None or 1..63) and ``overflow`` mode.

    Call :meth:`fit` on every value about to be written into a sum register. The object
    counts wrapped writes in :attr:`overflows` (always 0 with ``bits=None``).
    """

    def __init__(self, bits: int | None = None, overflow: str = "raise") -> None:
        if bits is not None and (isinstance(bits, bool) or not isinstance(bits, numbers.Integral)
                                 or not 1 <= bits <= MAX_ACC_BITS):
            raise ValueError(f"acc_bits={bits!r} is invalid; allowed: None or an integer "
                             f"in 1..{MAX_ACC_BITS}")
        if overflow not in OVERFLOW_MODES:
            raise ValueError(f"overflow={overflow!r} is not supported; allowed: "
                             f"{', '.join(OVERFLOW_MODES)}")
        self.bits = None if bits is None else int(bits)
        self.overflow = overflow
        self.overflows = 0
        if self.bits is not None:
            self.lo = -(1 << (self.bits - 1))
            self.hi = (1 << (self.bits - 1)) - 1

    def fit(self, values: np.ndarray, where: str) -> np.ndarray:
        """Return ``values`` (int64 array) as the register will hold them.

        ``where`` names the register for the error message, e.g. ``"PE acc fold 3 cycle 7"``.
        Raises :class:`AccumulatorOverflowError` on an out-of-range value in raise mode.
        """
        if self.bits is None:
            return values
        bad = (values < self.lo) | (values > self.hi)
        if not bad.any():
            return values
        if self.overflow == "raise":
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise AccumulatorOverflowError(
                f"{where}: entry {list(idx)} = {int(values[idx])} does not fit acc_bits={self.bits} "
                f"(range {self.lo}..{self.hi})")
        self.overflows += int(bad.sum())
        return wrap_to_bits(values, self.bits)


def wrap_to_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement wrap of int64 ``values`` to ``bits`` (1..63) bits, sign-extended."""
    half = np.int64(1 << (bits - 1))
    u = np.asarray(values, dtype=np.int64) & np.int64((1 << bits) - 1)
    # subtract 2**bits in two halves: 2**63 itself does not fit int64
    return np.where(u >= half, u - half - half, u)
