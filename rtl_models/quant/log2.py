"""Log2 softmax quantizer (FQ-ViT ``Log2Quantizer``, used by Agile-Quant, sheet §5).

``q = clamp(round(-log2 p), 0, 2**bits - 1)``; probabilities whose unclamped
code is ``>= 2**bits`` (including ``p == 0``) dequantize to 0; otherwise
``p ~= 2**-q``.

Rounding without a transcendental call: write ``p = m * 2**e`` with
``m in [0.5, 1)`` (``np.frexp``); then ``-log2 p = -e - log2 m`` with
``-log2 m in (0, 1]``, so ``round(-log2 p) = -e`` if ``m > 2**-0.5`` and
``-e + 1`` otherwise.  ``2**-0.5`` is irrational, so no float equals it and no
tie can occur: half-to-even (``torch.round``) and any other nearest mode agree.
The comparison uses ``T``, the smallest float of the input precision above
``2**-0.5``, derived with exact integer arithmetic.  The result is the exactly
rounded ``-log2 p``; a float32 ``log2`` (as in the torch original) can be one
ulp off and flip a code only for ``p`` within ~1e-7 relative of a boundary
``2**-(n + 1/2)``.

``rounding="torch_float32"`` reproduces the torch original on float32 input
instead: ``-log2 p`` is first rounded to float32 (computed as a float64 log2
cast to float32, i.e. a correctly rounded float32 log2 barring a float64 error
at a float32 midpoint) and then rounded half to even, so a float32 result of
exactly ``n + 1/2`` goes to the even neighbour.  Measured: on the float32
values within 6 ulps of the boundaries 2**-0.5 .. 2**-23.5, torch's float32
log2 equals this emulation everywhere, and differs from the exact mode by one
code on 95 of 312 values (exactly those whose float32 ``-log2 p`` is a
half-integer); on random softmax outputs the two modes agree.
"""

from __future__ import annotations

import math

import numpy as np

from ._common import QuantError, as_float_array, check_int

__all__ = ["log2_quantize", "log2_dequantize"]


def _threshold(dtype: np.dtype) -> float:
    """Smallest float of ``dtype``'s precision that is > 2**-0.5 (exact)."""
    t = np.finfo(dtype).nmant + 1                 # significand bits incl. the hidden one
    k = math.isqrt(1 << (2 * t - 1)) + 1          # smallest k with k**2 > 2**(2t-1)
    return k / (1 << t)                           # exact in float64 for t <= 53


def log2_quantize(p: object, *, bits: int = 4, rounding: str = "exact") -> tuple[np.ndarray, np.ndarray]:
    """Quantize probabilities ``p`` (values in [0, 1]) to log2 codes.

    Args:
        p: probabilities (float16/32/64), values in [0, 1].
        bits: code width (4 in Agile-Quant).
        rounding: "exact" (round the exact ``-log2 p``; no ties exist) or
            "torch_float32" (float32 input only: round ``-log2 p`` to float32,
            then half to even, like the torch original; see the module doc).

    Returns ``(codes, zero_mask)``: int32 codes in ``[0, 2**bits - 1]`` and a
    bool mask of the entries that dequantize to 0 (unclamped code ``>= 2**bits``).
    Raises QuantError for values outside [0, 1], a bad ``bits`` or ``rounding``.
    """
    arr = as_float_array("p", p)
    bits = check_int("bits", bits, 1, 16)
    if arr.min() < 0 or arr.max() > 1:
        raise QuantError(f"p holds {float(arr.min()) if arr.min() < 0 else float(arr.max())}, "
                         f"outside the allowed range [0, 1]")
    if rounding == "exact":
        mant, exp = np.frexp(arr)
        thr = arr.dtype.type(_threshold(arr.dtype))
        raw = np.where(mant >= thr, -exp, 1 - exp).astype(np.int64)
    elif rounding == "torch_float32":
        if arr.dtype != np.float32:
            raise QuantError(f"rounding='torch_float32' needs float32 p, got dtype {arr.dtype}")
        safe = np.where(arr == 0, np.float64(1), arr.astype(np.float64))
        raw = np.rint((-np.log2(safe)).astype(np.float32)).astype(np.int64)
    else:
        raise QuantError(f"rounding={rounding!r}; allowed: 'exact' or 'torch_float32'")
    raw = np.where(arr == 0, np.int64(1) << 40, raw)  # -log2(0) = +inf
    top = (1 << bits) - 1
    zero_mask = raw > top
    return np.clip(raw, 0, top).astype(np.int32), zero_mask


def log2_dequantize(codes: object, zero_mask: object, *, dtype: type = np.float32) -> np.ndarray:
    """``2**-q`` with masked entries set to 0, in ``dtype`` (exact; underflows to 0 like torch)."""
    q = np.asarray(codes)
    mask = np.asarray(zero_mask, dtype=bool)
    if q.dtype.kind not in "iu" or q.shape != mask.shape:
        raise QuantError(f"codes must be an integer array shaped like zero_mask {mask.shape}, "
                         f"got dtype {q.dtype} shape {q.shape}")
    if q.size and (q.min() < 0 or q.max() > 65535):
        raise QuantError(f"codes must be in [0, 65535], got {int(q.min())}..{int(q.max())}")
    out = np.ldexp(np.ones(q.shape, dtype=dtype), -q.astype(np.int32))
    out[mask] = 0
    return out
