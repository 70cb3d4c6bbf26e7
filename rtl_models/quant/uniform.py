"""Uniform quantizers: the released code's per-channel minmax activation quantizer
and GPTQ-style (round-to-nearest) grouped INT4/INT8 weight quantization.

Rounding everywhere is ``np.rint`` = round half to even, the same as
``torch.round``.  Every operation runs in the input's float dtype in the same
order as the torch code it mirrors, so codes and dequantized values are
bit-identical to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import FQVIT_EPS, QuantError, as_float_array, check_int, qrange

__all__ = ["MinMaxParams", "minmax_calibrate", "minmax_quantize", "minmax_dequantize",
           "GroupWeightQuant", "quantize_weight_groups", "dequantize_weight_groups"]


@dataclass(frozen=True)
class MinMaxParams:
    """Per-channel scale/zero point of the FQ-ViT ``MinmaxObserver``.

    Attributes:
        scale: (C,) scale per channel, in the calibration dtype.
        zero_point: (C,) zero point (0 for symmetric), same dtype.
        bits, signed: the code range (signed = symmetric, as in FQ-ViT).
        axis: channel axis the parameters apply to.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    bits: int
    signed: bool
    axis: int


def _channels_last(x: np.ndarray, axis: int) -> np.ndarray:
    if not -x.ndim <= axis < x.ndim:
        raise QuantError(f"axis={axis} is outside the allowed range [{-x.ndim}, {x.ndim - 1}]")
    return np.moveaxis(x, axis, -1)


def minmax_calibrate(x: object, *, bits: int = 8, signed: bool = True, axis: int = -1) -> MinMaxParams:
    """Per-channel minmax calibration as in Agile-Quant's ``QAct`` (sheet §5).

    Symmetric (``signed=True``, the released configuration):
    ``s = max(-min_c, max_c) / ((qmax - qmin) / 2)`` (i.e. /127.5 for int8,
    /7.5 for int4), clamped to float32 eps, zero point 0.
    Asymmetric (``signed=False``): ``s = (max_c - min_c)/(qmax - qmin)``,
    ``zp = clamp(qmin - round(min_c / s), qmin, qmax)``.

    ``axis`` is the channel axis: the released code uses the last axis for 2-D
    and 3-D tensors and axis 1 (heads) for 4-D ``(batch, heads, seq, dim)``.
    """
    arr = as_float_array("x", x)
    bits = check_int("bits", bits, 2, 16)
    check_int("axis", axis, -arr.ndim, arr.ndim - 1)
    dt = arr.dtype.type
    xc = _channels_last(arr, axis).reshape(-1, arr.shape[axis])
    max_val = xc.max(axis=0)
    min_val = xc.min(axis=0)
    qmin, qmax = qrange(bits, signed)
    if signed:
        top = np.maximum(-min_val, max_val)
        scale = np.maximum(top / dt((qmax - qmin) / 2), dt(FQVIT_EPS))
        zero = np.zeros_like(scale)
    else:
        scale = np.maximum((max_val - min_val) / dt(qmax - qmin), dt(FQVIT_EPS))
        zero = np.clip(dt(qmin) - np.rint(min_val / scale), qmin, qmax).astype(arr.dtype)
    return MinMaxParams(scale=scale, zero_point=zero, bits=bits, signed=signed, axis=axis)


def _broadcast(params: MinMaxParams, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    axis = params.axis % x.ndim
    if x.shape[axis] != params.scale.shape[0]:
        raise QuantError(f"x has {x.shape[axis]} channels on axis {params.axis}, params have "
                         f"{params.scale.shape[0]}")
    shape = [1] * x.ndim
    shape[axis] = -1
    return params.scale.reshape(shape), params.zero_point.reshape(shape)


def minmax_quantize(x: object, params: MinMaxParams) -> np.ndarray:
    """Codes ``clamp(round(x / s + zp), qmin, qmax)`` as int32 (FQ-ViT UniformQuantizer)."""
    arr = as_float_array("x", x)
    if arr.dtype != params.scale.dtype:
        raise QuantError(f"x dtype {arr.dtype} differs from the calibration dtype {params.scale.dtype}")
    scale, zero = _broadcast(params, arr)
    qmin, qmax = qrange(params.bits, params.signed)
    return np.clip(np.rint(arr / scale + zero), qmin, qmax).astype(np.int32)


def minmax_dequantize(codes: object, params: MinMaxParams) -> np.ndarray:
    """``(q - zp) * s`` in the calibration dtype."""
    q = np.asarray(codes)
    scale, zero = _broadcast(params, q)
    return (q.astype(params.scale.dtype) - zero) * scale


@dataclass(frozen=True)
class GroupWeightQuant:
    """Grouped weight codes (GPTQ ``Quantizer`` conventions, RTN).

    Attributes:
        codes: (N, K) unsigned codes in ``[0, 2**bits - 1]`` (int32).
        scale: (N, K // group_size) per-group scales.
        zero: (N, K // group_size) per-group zero points (integer-valued floats;
            ``2**(bits-1)`` when symmetric, so symmetric codes are exactly the
            offset encoding the SMMW datapath consumes).
        bits, group_size, symmetric: the configuration.
    """

    codes: np.ndarray
    scale: np.ndarray
    zero: np.ndarray
    bits: int
    group_size: int
    symmetric: bool


def quantize_weight_groups(w: object, *, bits: int = 4, group_size: int | None = 128,
                           symmetric: bool = False) -> GroupWeightQuant:
    """Round-to-nearest INT``bits`` quantization of a (N, K) weight in groups along K.

    ``w`` uses the torch ``Linear`` layout (out_features, in_features); groups of
    ``group_size`` consecutive input channels share a scale and zero point
    (``None`` = one group per row).  Per group, following GPTQ's
    ``Quantizer.find_params``: ``xmin = min(min(x), 0)``, ``xmax = max(max(x), 0)``;
    symmetric: ``xmax = max(|xmin|, xmax)`` and, if ``xmin < 0``, ``xmin = -xmax``;
    an all-zero group uses ``[-1, 1]``; ``scale = (xmax - xmin) / (2**bits - 1)``;
    ``zero = 2**(bits-1)`` (symmetric) or ``round(-xmin / scale)``;
    ``q = clamp(round(x / scale) + zero, 0, 2**bits - 1)``.
    Only the rounding grid is modelled, not GPTQ's Hessian error feedback.
    Like GPTQ, a symmetric group with no negative value keeps ``xmin = 0`` and so
    only uses codes ``>= zero``.

    Raises QuantError if ``group_size`` does not divide K or ``bits`` is not in 2..8.
    """
    arr = as_float_array("w", w)
    if arr.ndim != 2:
        raise QuantError(f"w must be 2-D (out_features, in_features), got shape {arr.shape}")
    bits = check_int("bits", bits, 2, 8)
    n_out, k_in = arr.shape
    g = k_in if group_size is None else check_int("group_size", group_size, 1, k_in)
    if k_in % g:
        raise QuantError(f"group_size={g} does not divide K={k_in}; allowed: a divisor of {k_in}")
    dt = arr.dtype.type
    maxq = (1 << bits) - 1
    x = arr.reshape(n_out, k_in // g, g)
    xmin = np.minimum(x.min(axis=2), dt(0))
    xmax = np.maximum(x.max(axis=2), dt(0))
    if symmetric:
        xmax = np.maximum(np.abs(xmin), xmax)
        xmin = np.where(xmin < 0, -xmax, xmin)
    both_zero = (xmin == 0) & (xmax == 0)
    xmin = np.where(both_zero, dt(-1), xmin)
    xmax = np.where(both_zero, dt(1), xmax)
    scale = (xmax - xmin) / dt(maxq)
    if symmetric:
        zero = np.full_like(scale, dt((maxq + 1) / 2))
    else:
        zero = np.rint(-xmin / scale)
    q = np.clip(np.rint(x / scale[..., None]) + zero[..., None], 0, maxq)
    return GroupWeightQuant(codes=q.reshape(n_out, k_in).astype(np.int32), scale=scale, zero=zero,
                            bits=bits, group_size=g, symmetric=symmetric)


def dequantize_weight_groups(wq: GroupWeightQuant) -> np.ndarray:
    """``scale * (q - zero)`` per group, (N, K) in the scale dtype."""
    n_out, k_in = wq.codes.shape
    q = wq.codes.reshape(n_out, k_in // wq.group_size, wq.group_size).astype(wq.scale.dtype)
    return (wq.scale[..., None] * (q - wq.zero[..., None])).reshape(n_out, k_in)
