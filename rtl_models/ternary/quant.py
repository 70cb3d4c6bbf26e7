"""Front end of the MatMul-free BitLinear datapath: RMSNorm, int8 activations, ternary weights.

Numbers follow the released code ridgerchu/matmulfreellm at a016f72 (``mmfreelm/ops/bitnet.py``,
``ops/fusedbitnet.py``) and the integer path of its ``bitblas`` branch. Every step
is float32, one IEEE-754 operation at a time, in the order the released torch code evaluates
it, so that a torch reference written in the same order is bitwise equal. Two reductions
have no order in torch, so this module fixes one (documented where used):

* the RMSNorm sum of squares is a *sequential* float32 sum over k = 0..K-1 (what a
  streaming RMS unit does); torch's ``mean`` and Triton's tree sum differ by a few ulp;
* the weight mean ``mean|W|`` is the *exactly rounded* sum (``math.fsum``), divided by the
  element count in float64 and rounded once to float32, which depends on no order at all.

sqrt and divisions are IEEE correctly rounded (numpy). torch 2.13's CPU float32 ``sqrt`` is
not (1 ulp off for ~17% of inputs, measured), so a bitwise torch reference takes the sqrt
in float64. Against the released torch code (``mean`` + its sqrt) RMSNorm outputs differ
by <= 5e-7 relative (measured at K=256). The Triton fused kernel differs further: tree sum,
fast ``tl.sqrt``, a true division ``127 / max`` and half-away rounding (use
``rounding="half_away"`` for the last one).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

import numpy as np

__all__ = [
    "Rounding",
    "TernaryError",
    "QuantizedActivations",
    "TernaryWeights",
    "rmsnorm",
    "quantize_activations",
    "ternarize",
    "pack_ternary",
    "unpack_ternary",
]

_F32 = np.float32
#: absmax / absmean clamps of the released code (fusedbitnet.py activation_quant/weight_quant).
ACT_CLAMP = _F32(1e-5)
WEIGHT_CLAMP = _F32(1e-5)
#: int8 activation limits and the absmax target 127 (fusedbitnet.py activation_quant).
QP, QN = 127, -128


class TernaryError(ValueError):
    """Bad input to the ternary datapath model (shape, dtype, value or option)."""


class Rounding(str, Enum):
    """Rounding of ``y * s_x`` to an integer: the released code uses both modes, and exact .5
    ties do occur after RMSNorm (our numpy emulation), so the mode is a parameter.

    HALF_EVEN: ``torch.round`` (pure-torch BitLinear, ``bitblas`` branch).
    HALF_AWAY: Triton 2.x ``tl.math.round`` = libdevice ``roundf`` (the fused kernel the
    released model runs).
    """

    HALF_EVEN = "half_even"
    HALF_AWAY = "half_away"

    @classmethod
    def parse(cls, value: "Rounding | str") -> "Rounding":
        """Return the member for ``value`` (a member or its string); raise TernaryError otherwise."""
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in cls)
            raise TernaryError(f"rounding={value!r} is not one of {allowed}") from None


class QuantizedActivations(NamedTuple):
    """Per-token int8 activations: ``q`` (int8, [..., K]) and ``s_x`` (float32, [...])."""

    q: np.ndarray
    s_x: np.ndarray


def _as_f32(x: object, name: str, min_ndim: int = 1) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TernaryError(f"{name} has dtype {arr.dtype}; expected a real numeric array")
    if arr.ndim < min_ndim or arr.shape[-1] == 0:
        raise TernaryError(f"{name} has shape {arr.shape}; expected >= {min_ndim} dims, last dim > 0")
    arr = arr.astype(_F32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise TernaryError(f"{name} contains NaN or inf; only finite values are allowed")
    return arr


def rmsnorm(x: np.ndarray, gamma: np.ndarray | None = None, eps: float = 1e-6) -> np.ndarray:
    """RMSNorm over the last axis in float32, as the fused kernel computes it
    (``_layer_norm_fwd_quant_kernel`` of ``fusedbitnet.py``).

    ``var = sum(x*x) / K``; ``rstd = 1 / sqrt(var + eps)``; ``y = x * rstd * gamma``.
    The sum is sequential in k (float32 accumulator), sqrt and divisions are IEEE
    correctly rounded. ``eps`` defaults to 1e-6, the value the released FusedBitLinear
    uses (not the module's printed 1e-8). ``x`` is cast to float32; ``gamma`` (shape [K])
    may be None for a norm without a learned scale.
    """
    x = _as_f32(x, "x")
    k = x.shape[-1]
    if not (isinstance(eps, numbers.Real) and math.isfinite(eps) and eps >= 0):
        raise TernaryError(f"eps={eps!r} must be a finite number >= 0")
    # np.add.accumulate is a strict left-to-right float32 loop (np.sum would be pairwise).
    ssq = np.add.accumulate(x * x, axis=-1)[..., -1]
    var = ssq / _F32(k)
    rstd = _F32(1) / np.sqrt(var + _F32(eps))
    y = x * rstd[..., None]
    if gamma is not None:
        g = _as_f32(gamma, "gamma")
        if g.shape != (k,):
            raise TernaryError(f"gamma has shape {g.shape}; expected ({k},) to match x")
        y = y * g
    return y


def _round(v: np.ndarray, mode: Rounding) -> np.ndarray:
    if mode is Rounding.HALF_EVEN:
        return np.rint(v)
    # trunc and v - trunc(v) are exact in float32, so the tie test is exact (no +0.5 trick,
    # which misrounds 0.49999997 in float32).
    r = np.trunc(v)
    return np.where(np.abs(v - r) >= _F32(0.5), r + np.sign(v), r)


def quantize_activations(y: np.ndarray, rounding: Rounding | str = Rounding.HALF_EVEN) -> QuantizedActivations:
    """Per-token absmax int8 quantization of the normalised activations ``y`` [..., K].

    ``s_x = 127 / max(max_k |y_k|, 1e-5)``, evaluated as ``(1 / m) * 127`` because that is
    what torch runs for ``127.0 / tensor`` (``Tensor.__rdiv__`` = ``reciprocal() * 127``;
    it differs from a true division in ~25% of cases). ``q = clamp(R(y * s_x), -128, 127)``
    with ``R`` the rounding mode. Returns ``QuantizedActivations(q int8, s_x float32)``.
    """
    y = _as_f32(y, "y")
    mode = Rounding.parse(rounding)
    m = np.maximum(np.max(np.abs(y), axis=-1), ACT_CLAMP)
    s_x = (_F32(1) / m) * _F32(QP)
    v = y * s_x[..., None]
    q = np.clip(_round(v, mode), QN, QP).astype(np.int8)
    return QuantizedActivations(q, s_x)


# --- ternary weights -----------------------------------------------------------------------

_SHIFTS = np.array([0, 2, 4, 6], dtype=np.uint8)


def pack_ternary(t: np.ndarray) -> np.ndarray:
    """Pack ternary codes t [N, K] (values exactly -1, 0, +1; any numeric dtype) into uint8 [N, ceil(K/4)].

    Encoding (2-bit two's complement): ``00`` = 0, ``01`` = +1, ``11`` = -1; ``10`` is
    invalid. Weight k sits in bits ``2*(k % 4) .. 2*(k % 4)+1`` of byte ``k // 4`` (LSB
    first); the padding codes of the last byte are ``00``.
    """
    t = np.asarray(t)
    if t.ndim != 2 or t.dtype.kind not in "iuf":
        raise TernaryError(f"t must be a 2-D numeric array; got {t.dtype} of shape {t.shape}")
    if not np.all((t == -1) | (t == 0) | (t == 1)):
        raise TernaryError(f"t has values outside {{-1, 0, 1}} (min {t.min()}, max {t.max()})")
    n, k = t.shape
    k4 = -(-k // 4)
    fields = np.zeros((n, 4 * k4), dtype=np.uint8)
    fields[:, :k] = (t.astype(np.int8) & 3).astype(np.uint8)
    fields = fields.reshape(n, k4, 4) << _SHIFTS
    return np.bitwise_or.reduce(fields, axis=-1).astype(np.uint8)


def unpack_ternary(codes: np.ndarray, k: int) -> np.ndarray:
    """Inverse of :func:`pack_ternary`: uint8 [N, ceil(k/4)] -> int8 [N, k].

    Raises TernaryError on an invalid ``10`` code or a non-zero padding code.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.dtype != np.uint8:
        raise TernaryError(f"codes must be 2-D uint8; got {codes.dtype} of shape {codes.shape}")
    if not isinstance(k, (int, np.integer)) or k < 1 or -(-k // 4) != codes.shape[1]:
        raise TernaryError(f"k={k!r} does not fit codes of shape {codes.shape} (need ceil(k/4) bytes per row)")
    fields = ((codes[..., None] >> _SHIFTS) & 3).reshape(codes.shape[0], -1)
    if np.any(fields == 2):
        raise TernaryError("codes contain the invalid 2-bit pattern 0b10")
    if np.any(fields[:, k:]):
        raise TernaryError(f"padding codes beyond k={k} are not 0b00")
    # two's complement sign extension: 0 -> 0, 1 -> 1, 3 -> -1
    return (fields[:, :k].astype(np.int8) - 4 * (fields[:, :k] >> 1).astype(np.int8)).astype(np.int8)


@dataclass(frozen=True, kw_only=True)
class TernaryWeights:
    """A ternary weight matrix as the hardware stores it: packed 2-bit codes plus one scale.

    Attributes:
        codes: uint8 [N, ceil(K/4)], see :func:`pack_ternary` for the encoding.
        beta: float32 per-tensor scale ``max(mean|W|, 1e-5)``; the weight dequant factor is
            ``s_w = 1 / beta`` (float32, :attr:`s_w`).
        shape: (N, K) = (out_features, in_features), as torch's ``nn.Linear.weight``.

    Store t and beta and never re-ternarize dequantized weights (ridgerchu/matmulfreellm
    issue #18: storing pre-ternarized weights, which the runtime ternarizes again, degraded
    the outputs).
    """

    codes: np.ndarray
    beta: np.float32
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != 2 or min(shape) < 1:
            raise TernaryError(f"shape={self.shape!r} must be (N, K) with N, K >= 1")
        beta = _F32(self.beta)
        if not (np.isfinite(beta) and beta > 0):
            raise TernaryError(f"beta={self.beta!r} must be a finite float32 > 0")
        codes = np.array(self.codes, dtype=np.uint8, copy=True)
        if codes.shape != (shape[0], -(-shape[1] // 4)):
            raise TernaryError(f"codes shape {codes.shape} does not match shape {shape} (need [N, ceil(K/4)])")
        unpack_ternary(codes, shape[1])  # validates codes and padding
        codes.setflags(write=False)
        object.__setattr__(self, "codes", codes)
        object.__setattr__(self, "beta", beta)
        object.__setattr__(self, "shape", shape)

    @classmethod
    def from_ternary(cls, t: np.ndarray, beta: float) -> "TernaryWeights":
        """Build from unpacked codes t [N, K] in {-1, 0, 1} and the scale beta (float32)."""
        t = np.asarray(t)
        return cls(codes=pack_ternary(t), beta=_F32(beta), shape=t.shape)

    @property
    def s_w(self) -> np.float32:
        """float32 ``1 / beta``, the scale divided out in dequantization (bitblas ``sw``)."""
        return _F32(1) / self.beta

    def unpack(self) -> np.ndarray:
        """int8 [N, K] ternary codes."""
        return unpack_ternary(self.codes, self.shape[1])

    def dequantized(self) -> np.ndarray:
        """float32 ``t / s_w``: the fake-quant weight the master branch feeds to F.linear."""
        return self.unpack().astype(_F32) / self.s_w


def ternarize(w: np.ndarray) -> TernaryWeights:
    """Absmean ternary quantization of a float weight matrix w [N, K] (``weight_quant`` of
    ``bitnet.py`` / ``fusedbitnet.py``).

    ``beta = max(mean|W|, 1e-5)``, ``s_w = 1 / beta``, ``t = clamp(round_half_even(W*s_w), -1, 1)``,
    all in float32 (w is cast). ``mean|W|`` is the exactly rounded sum of |W| (math.fsum,
    order-independent), divided by N*K in float64, rounded to float32; torch's float32 mean
    agrees to within a few ulp. About 0.5 s per 10M weights (offline step).
    """
    w = _as_f32(w, "w", min_ndim=2)
    if w.ndim != 2:
        raise TernaryError(f"w has shape {w.shape}; expected a 2-D [out_features, in_features] matrix")
    mean_abs = _F32(math.fsum(np.abs(w).ravel().astype(np.float64)) / w.size)
    beta = max(mean_abs, WEIGHT_CLAMP)
    s_w = _F32(1) / beta
    t = np.clip(np.rint(w * s_w), -1, 1).astype(np.int8)
    return TernaryWeights.from_ternary(t, beta)
