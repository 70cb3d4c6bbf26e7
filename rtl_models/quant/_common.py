"""Shared validation helpers of the torch-free quantizers."""

from __future__ import annotations

import numpy as np

# FQ-ViT BaseObserver.eps = torch.finfo(torch.float32).eps: the smallest scale
# any observer returns (shawnricecake/agile-quant ptq/observer/base.py).
FQVIT_EPS = float(np.finfo(np.float32).eps)


class QuantError(ValueError):
    """Bad argument to a quantizer (names the value and the allowed range)."""


def check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    """Return ``value`` if it is an int in ``[lo, hi]``, else raise QuantError."""
    top = "inf" if hi is None else hi
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise QuantError(f"{name}={value!r} must be an int in [{lo}, {top}]")
    if value < lo or (hi is not None and value > hi):
        raise QuantError(f"{name}={value} is outside the allowed range [{lo}, {top}]")
    return int(value)


def as_float_array(name: str, x: object) -> np.ndarray:
    """A non-empty float16/32/64 ndarray without NaN/inf (the dtype is kept)."""
    arr = np.asarray(x)
    if arr.dtype not in (np.float16, np.float32, np.float64):
        raise QuantError(f"{name} must be a float16/float32/float64 array, got dtype {arr.dtype}")
    if arr.size == 0:
        raise QuantError(f"{name} must not be empty")
    if not np.isfinite(arr).all():
        raise QuantError(f"{name} contains NaN or inf; allowed: finite values")
    return arr


def qrange(bits: int, signed: bool) -> tuple[int, int]:
    """(qmin, qmax) of the FQ-ViT BitType: signed two's complement or unsigned."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1
