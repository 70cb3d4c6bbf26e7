"""Power-of-two-factor (PTF) activation quantizer, the FQ-ViT observer behind TRIP.

TRIP of Agile-Quant (Shen et al., AAAI 2024; the paper's equations are images, so
the released code ``shawnricecake/agile-quant ptq/observer/ptf.py`` is the reference):

* ``s_K = (max - min) / (qmax - qmin)`` over the whole tensor (clamped to
  float32 eps as in FQ-ViT's ``PtfObserver``), computed in the input dtype;
* zero point ``zp = clamp(qmin - round(min / s_K), qmin, qmax)`` (a float with
  an integer value, shared by all channels);
* candidate scales ``s_alpha`` for ``alpha = K, K-1, ..., 0`` by repeated
  halving of ``s_K`` (base ``s = s_0 = s_K / 2**K``);
* per channel ``c`` (last axis) the ``alpha`` minimising the L2 error of
  ``(clamp(round(x / s_alpha + zp), qmin, qmax) - zp) * s_alpha``; effective
  channel scale ``s * 2**alpha_c``.

Rounding: ``np.rint`` (half to even, = ``torch.round``).  Choice where the
repo is implementation-defined: the repo compares float32 ``torch.mean``
values, whose last bit depends on the summation order.  Here the score is the
*correctly rounded* sum of squared errors (``math.fsum`` of the float64
squares, exact for float16/float32 inputs), so the choice is identical in any
implementation; the mean's 1/N factor does not change the argmin.  Ties go to
the smallest alpha (the repo's ``score.index(min(score))``).  The two can only
differ when two candidates' float32 means agree to rounding noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._common import FQVIT_EPS, QuantError, as_float_array, check_int, qrange

__all__ = ["PTFParams", "ptf_calibrate", "ptf_quantize", "ptf_dequantize", "fold_alpha_into_weight"]


@dataclass(frozen=True)
class PTFParams:
    """Result of :func:`ptf_calibrate` (channel = last axis).

    Attributes:
        base_scale: ``s = s_K / 2**K`` (0-d array in the input dtype).
        alpha: (C,) int64 power-of-two factors in ``[0, K]``.
        scale: (C,) effective scales ``s * 2**alpha``.
        zero_point: shared zero point (0-d array, integer-valued float).
        losses: (C, K + 1) float64 sum of squared errors of each candidate.
        bits, signed, K: the configuration.
    """

    base_scale: np.ndarray
    alpha: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    losses: np.ndarray
    bits: int
    signed: bool
    K: int


def _fake_quant(x: np.ndarray, s, zp, qmin: int, qmax: int) -> np.ndarray:
    return (np.clip(np.rint(x / s + zp), qmin, qmax) - zp) * s


def ptf_calibrate(x: object, *, bits: int = 8, K: int = 4, signed: bool = False) -> PTFParams:
    """Calibrate layer-wise scale + per-channel power-of-two factors on ``x``.

    Args:
        x: calibration activations, channels on the last axis (float16/32/64;
            all arithmetic stays in this dtype, like the torch original).
        bits: code width (8 for TRIP-8, 4 for the INT4 paths).
        K: largest refinement ``alpha`` (``ptf_0to4`` -> K = 4; FQ-ViT's own
            observer uses K = 3); 0..20 as in the repo's variants.
        signed: signed (two's complement) or unsigned code range.
    """
    arr = as_float_array("x", x)
    bits = check_int("bits", bits, 2, 16)
    K = check_int("K", K, 0, 20)
    dt = arr.dtype.type
    qmin, qmax = qrange(bits, signed)
    xmax, xmin = arr.max(), arr.min()
    s_k = np.maximum((xmax - xmin) / dt(qmax - qmin), dt(FQVIT_EPS))
    scales = [s_k]
    for _ in range(K):
        scales.append(scales[-1] / dt(2))
    scales = scales[::-1]  # scales[alpha] = s_K / 2**(K - alpha)
    zp = np.clip(dt(qmin) - np.rint(xmin / s_k), qmin, qmax).astype(arr.dtype)
    xc = arr.reshape(-1, arr.shape[-1])
    losses = np.empty((xc.shape[1], K + 1), dtype=np.float64)
    for a, s in enumerate(scales):
        err = (xc - _fake_quant(xc, s, zp, qmin, qmax)).astype(np.float64)
        sq = err * err
        for c in range(xc.shape[1]):
            losses[c, a] = math.fsum(sq[:, c].tolist())
    alpha = np.argmin(losses, axis=1).astype(np.int64)  # first minimum = smallest alpha
    base = np.asarray(scales[0], dtype=arr.dtype)
    scale = base * np.ldexp(np.ones(alpha.shape, dtype=arr.dtype), alpha.astype(np.int32))
    return PTFParams(base_scale=base, alpha=alpha, scale=scale.astype(arr.dtype),
                     zero_point=np.asarray(zp, dtype=arr.dtype), losses=losses, bits=bits,
                     signed=signed, K=K)


def _check_channels(arr: np.ndarray, params: PTFParams) -> None:
    if arr.shape[-1] != params.scale.shape[0]:
        raise QuantError(f"x has {arr.shape[-1]} channels on its last axis, params have "
                         f"{params.scale.shape[0]}")


def ptf_quantize(x: object, params: PTFParams) -> np.ndarray:
    """Codes ``clamp(round(x / (s * 2**alpha_c) + zp), qmin, qmax)`` as int32."""
    arr = as_float_array("x", x)
    if arr.dtype != params.scale.dtype:
        raise QuantError(f"x dtype {arr.dtype} differs from the calibration dtype {params.scale.dtype}")
    _check_channels(arr, params)
    qmin, qmax = qrange(params.bits, params.signed)
    return np.clip(np.rint(arr / params.scale + params.zero_point), qmin, qmax).astype(np.int32)


def ptf_dequantize(codes: object, params: PTFParams) -> np.ndarray:
    """``(q - zp) * s * 2**alpha_c`` in the calibration dtype."""
    q = np.asarray(codes)
    _check_channels(q, params)
    return (q.astype(params.scale.dtype) - params.zero_point) * params.scale


def fold_alpha_into_weight(w: object, alpha: object) -> np.ndarray:
    """Fold the PTF factors into the next layer's weight rows (Agile-Quant Fig. 6).

    ``w`` is (C, N) with the quantized channel ``c`` as its input row; returns
    ``w * 2**alpha[:, None]`` (integers stay integers), so that
    ``sum_c (q_c - zp) * s * 2**alpha_c * w[c, n] == s * sum_c (q_c - zp) * w_folded[c, n]``
    and the GEMM runs on one layer-wise scale.
    """
    warr = np.asarray(w)
    a = np.asarray(alpha)
    if a.dtype.kind not in "iu" or a.ndim != 1:
        raise QuantError(f"alpha must be a 1-D integer array, got dtype {a.dtype} shape {a.shape}")
    if warr.ndim != 2 or warr.shape[0] != a.shape[0]:
        raise QuantError(f"w must be (C, N) with C = len(alpha) = {a.shape[0]}, got shape {warr.shape}")
    if a.size and (a.min() < 0 or a.max() > 20):
        raise QuantError(f"alpha values must be in [0, 20], got {int(a.min())}..{int(a.max())}")
    if warr.dtype.kind in "iu":
        return warr.astype(np.int64) << a.astype(np.int64)[:, None]
    return warr * np.ldexp(np.ones(a.shape, dtype=warr.dtype), a.astype(np.int32))[:, None]
