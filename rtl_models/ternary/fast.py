"""Vectorised bit-exact path of the BitLinear integer datapath (the validation path).

From the normalised activations ``y`` (the BitLinear's input after its RMSNorm) the datapath is:
per-token absmax int8 quantization (:func:`~.quant.quantize_activations`, elementwise and
already vectorised), ``acc = q @ t`` in an ``acc_bits`` two's-complement accumulator, and
``out = acc / s_x / s_w`` in float32 (:func:`~.bitlinear.dequantize`).

The slow path accumulates with the add/subtract/skip numba kernel
(:func:`~.bitlinear.accumulate`, about 0.12e9 MACs/s). Here the accumulation is one float32
GEMM: ``|q| <= 128`` and ``t`` is ternary, so every partial sum is an integer of magnitude
``<= 128 * K``, exact in float32 for ``K <= 131,072`` in any summation order
(:mod:`rtl_models.intgemm`). A wrapping register of ``acc_bits`` holds the exact sum wrapped
once (wrapping is modular), which is :meth:`~.bitlinear.AccResult.wrapped` of the slow path.
RMSNorm is not part of this path: its float32 sum of squares has a pinned sequential order
(:func:`~.quant.rmsnorm`) that a kernel is not expected to reproduce.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..intgemm import exact_matmul
from .bitlinear import _check_acc_bits, dequantize
from .quant import Rounding, TernaryError, _as_f32, quantize_activations

__all__ = ["NormedBitLinear", "bitlinear_normed_fast", "wrap_acc"]

_F32 = np.float32


class NormedBitLinear(NamedTuple):
    """Result of :func:`bitlinear_normed_fast`: int8 ``q`` [M, K], float32 ``s_x`` [M],
    int64 ``acc`` [M, N] (as the ``acc_bits`` register holds it) and float32 ``out`` [M, N]."""

    q: np.ndarray
    s_x: np.ndarray
    acc: np.ndarray
    out: np.ndarray


def wrap_acc(acc: np.ndarray, acc_bits: int) -> np.ndarray:
    """Two's-complement wrap of exact int64 sums to ``acc_bits`` (2..32) bits."""
    _check_acc_bits(acc_bits)
    half = 1 << (acc_bits - 1)
    return (np.asarray(acc, np.int64) + half) % (1 << acc_bits) - half


def _ternary(t: object, k: int) -> np.ndarray:
    arr = np.asarray(t)
    if arr.dtype.kind not in "iu":
        raise TernaryError(f"t has dtype {arr.dtype}; expected integer ternary codes in {{-1, 0, 1}}")
    if arr.ndim != 2 or arr.shape[0] != k or arr.shape[1] == 0:
        raise TernaryError(f"t has shape {arr.shape}; expected [K={k}, N] with N >= 1")
    if int(arr.min()) < -1 or int(arr.max()) > 1:
        raise TernaryError(f"t has values outside {{-1, 0, 1}} (min {int(arr.min())}, max {int(arr.max())})")
    return arr


def bitlinear_normed_fast(y: np.ndarray, t: np.ndarray, beta: float, *,
                          rounding: Rounding | str = Rounding.HALF_EVEN,
                          acc_bits: int = 24) -> NormedBitLinear:
    """BitLinear from normalised activations: y [M, K] float32, t [K, N] ternary, beta > 0.

    ``s_w = 1 / beta`` (float32); ``q, s_x = quantize_activations(y, rounding)``;
    ``acc = wrap_acc(q @ t, acc_bits)``; ``out = acc / s_x / s_w`` (float32, that order).
    Equals the slow composition ``accumulate(q, TernaryWeights.from_ternary(t.T, beta),
    acc_bits, "flag").wrapped()`` -> :func:`dequantize` (tested). ``K <= 131,072``.
    """
    _check_acc_bits(acc_bits)
    y = _as_f32(y, "y")
    if y.ndim != 2:
        raise TernaryError(f"y has shape {y.shape}; expected [M, K]")
    k = y.shape[1]
    if k > 131_072:
        raise TernaryError(f"K={k} exceeds 131,072: float32 partial sums would no longer be exact")
    t = _ternary(t, k)
    b = _F32(beta)
    if not (np.isfinite(b) and b > 0):
        raise TernaryError(f"beta={beta!r} must be a finite float32 > 0")
    q, s_x = quantize_activations(y, rounding)
    acc = exact_matmul(q, t, a_max=128, b_max=1)
    acc = wrap_acc(acc, acc_bits)
    out = dequantize(acc, s_x, _F32(1) / b)
    return NormedBitLinear(q, s_x, acc, out)
