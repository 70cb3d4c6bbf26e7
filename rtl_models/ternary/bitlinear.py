"""BitLinear integer datapath: add/subtract/skip accumulation, overflow detection, dequant.

One BitLinear (as ridgerchu/matmulfreellm runs it): ``y = RMSNorm_gamma(x)``;
``q, s_x = absmax_int8(y)``; ``acc = sum_k q_k * t_jk`` in an ``acc_bits``-wide signed
accumulator; ``out = acc / s_x / s_w`` in float32, in that order (``bitblas`` branch
``forward_fp32_simulated``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from enum import Enum

import numpy as np

from ._kernels import accumulate_packed
from .quant import (
    Rounding,
    TernaryError,
    TernaryWeights,
    _as_f32,
    quantize_activations,
    rmsnorm,
    ternarize,
)

__all__ = [
    "AccumulatorOverflowError",
    "OverflowPolicy",
    "BitLinearConfig",
    "BitLinearParams",
    "AccResult",
    "BitLinearTrace",
    "OpCounts",
    "max_abs_acc",
    "required_acc_bits",
    "accumulate",
    "dequantize",
    "bitlinear",
    "bitlinear_trace",
    "op_counts",
]

_F32 = np.float32
#: float32 represents every integer with |v| <= 2**24, so acc -> float32 is exact below it.
F32_EXACT_INT = 1 << 24
MAX_ACC_BITS = 32


class AccumulatorOverflowError(OverflowError):
    """A partial sum left the signed range of the configured accumulator width."""


class OverflowPolicy(str, Enum):
    """What :func:`accumulate` does when a partial sum overflows ``acc_bits``.

    RAISE: raise AccumulatorOverflowError naming the first (token, output, k).
    FLAG: return the exact sums with a per-output ``overflow`` mask (never wraps silently;
    :meth:`AccResult.wrapped` gives what a wrapping register would hold).
    """

    RAISE = "raise"
    FLAG = "flag"


@dataclass(frozen=True, kw_only=True)
class BitLinearConfig:
    """Datapath options shared by every BitLinear of a model.

    Attributes:
        eps: RMSNorm epsilon; 1e-6 is what the released fused path uses (``FusedBitLinear``
            calls ``layer_norm_linear_quant_fn`` without eps, so its default), 1e-8 the
            pure-torch ``bitnet.BitLinear`` and the bitblas ``BitLinearBitBLASWithNorm``.
        rounding: ``"half_even"`` (torch, bitblas) or ``"half_away"`` (Triton fused kernel).
        acc_bits: accumulator width in bits including the sign, 2..32. 24 is ample for
            K < 66,052; see :func:`required_acc_bits`.
        on_overflow: ``"raise"`` or ``"flag"``, see :class:`OverflowPolicy`.
    """

    eps: float = 1e-6
    rounding: Rounding = Rounding.HALF_EVEN
    acc_bits: int = 24
    on_overflow: OverflowPolicy = OverflowPolicy.RAISE

    def __post_init__(self) -> None:
        object.__setattr__(self, "rounding", Rounding.parse(self.rounding))
        object.__setattr__(self, "on_overflow", _parse_policy(self.on_overflow))
        if not (isinstance(self.eps, numbers.Real) and math.isfinite(self.eps) and self.eps >= 0):
            raise TernaryError(f"eps={self.eps!r} must be a finite number >= 0")
        _check_acc_bits(self.acc_bits)


def _parse_policy(value: object) -> OverflowPolicy:
    try:
        return OverflowPolicy(value)
    except ValueError:
        raise TernaryError(f"on_overflow={value!r} is not one of 'raise', 'flag'") from None


def _check_acc_bits(acc_bits: object) -> None:
    if isinstance(acc_bits, bool) or not isinstance(acc_bits, (int, np.integer)) or not 2 <= acc_bits <= MAX_ACC_BITS:
        raise TernaryError(f"acc_bits={acc_bits!r} must be an integer in [2, {MAX_ACC_BITS}] (bits incl. sign)")


@dataclass(frozen=True, kw_only=True)
class BitLinearParams:
    """One BitLinear layer: its RMSNorm scale ``gamma`` [K] and ternary ``weights`` [N, K]."""

    gamma: np.ndarray
    weights: TernaryWeights

    def __post_init__(self) -> None:
        if not isinstance(self.weights, TernaryWeights):
            raise TernaryError(f"weights is a {type(self.weights).__name__}; expected TernaryWeights (see ternarize)")
        g = _as_f32(self.gamma, "gamma").copy()
        if g.shape != (self.weights.shape[1],):
            raise TernaryError(f"gamma has shape {g.shape}; expected ({self.weights.shape[1]},) = in_features")
        g.setflags(write=False)
        object.__setattr__(self, "gamma", g)

    @classmethod
    def from_float(cls, w: np.ndarray, gamma: np.ndarray) -> "BitLinearParams":
        """Ternarize a float weight w [N, K] (see :func:`ternarize`) and pair it with gamma [K]."""
        return cls(gamma=gamma, weights=ternarize(w))

    @property
    def in_features(self) -> int:
        """K."""
        return self.weights.shape[1]

    @property
    def out_features(self) -> int:
        """N."""
        return self.weights.shape[0]


@dataclass(frozen=True)
class AccResult:
    """Accumulator contents for q [..., K] times t [N, K]^T.

    Attributes:
        acc: int64 [..., N], the exact sums (what a wide enough accumulator holds).
        overflow: bool [..., N], True where some partial sum (k = 0..K-1 in order, skips
            do not count) left the ``acc_bits`` range.
        first_overflow_k: int64 [..., N], the first k at which that happened, else -1.
        acc_bits: the accumulator width the check used.
    """

    acc: np.ndarray
    overflow: np.ndarray
    first_overflow_k: np.ndarray
    acc_bits: int

    @property
    def any_overflow(self) -> bool:
        """True if any partial sum of any output overflowed."""
        return bool(self.overflow.any())

    @property
    def final_overflow(self) -> np.ndarray:
        """bool [..., N]: the final sum itself does not fit ``acc_bits``."""
        lo, hi = -(1 << (self.acc_bits - 1)), (1 << (self.acc_bits - 1)) - 1
        return (self.acc < lo) | (self.acc > hi)

    def wrapped(self) -> np.ndarray:
        """int64 [..., N]: what a two's-complement register of ``acc_bits`` bits would hold.

        Wrapping is modular, so it equals ``acc`` wherever the final sum fits, even if a
        partial sum overflowed; a saturating register would not have that property.
        """
        span = 1 << self.acc_bits
        half = 1 << (self.acc_bits - 1)
        return (self.acc + half) % span - half


def max_abs_acc(k: int, qmax: int = 127) -> int:
    """Largest |acc| for K inputs with |q| <= qmax and t in {-1, 0, 1}: ``qmax * K``.

    qmax = 127 for activations from :func:`quantize_activations` (the -128 clamp never
    fires because scale = 127/max: |y * scale| <= 127 up to one ulp); use 128 for arbitrary
    int8 input.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise TernaryError(f"k={k!r} must be an integer >= 1")
    if qmax not in (127, 128):
        raise TernaryError(f"qmax={qmax!r} must be 127 or 128")
    return int(qmax) * int(k)


def required_acc_bits(k: int, qmax: int = 127) -> int:
    """Accumulator bits (incl. sign) so that no partial sum can overflow for K inputs.

    Smallest b with ``2**(b-1) - 1 >= qmax*K``. Examples: K=2048 -> 19 (|acc| <= 260,096),
    K=8256 -> 21 (20 bits + sign: 127 * 8256 < 2**20), K=6912 -> 21.
    """
    return max_abs_acc(k, qmax).bit_length() + 1


def accumulate(
    q: np.ndarray,
    weights: TernaryWeights,
    acc_bits: int = 24,
    on_overflow: OverflowPolicy | str = OverflowPolicy.RAISE,
) -> AccResult:
    """acc = q @ t.T using only add (t=+1), subtract (t=-1) and skip (t=0).

    q: int8 [..., K]; weights: [N, K]. Partial sums are checked against the signed
    ``acc_bits`` range after every add/subtract, in k order. On overflow, ``"raise"``
    raises AccumulatorOverflowError; ``"flag"`` returns exact sums plus the mask.
    """
    _check_acc_bits(acc_bits)
    policy = _parse_policy(on_overflow)
    q = np.asarray(q)
    n, k = weights.shape
    if q.dtype != np.int8 or q.ndim < 1 or q.shape[-1] != k:
        raise TernaryError(f"q must be int8 [..., {k}]; got {q.dtype} of shape {q.shape}")
    lead = q.shape[:-1]
    q2 = np.ascontiguousarray(q.reshape(-1, k))
    acc = np.empty((q2.shape[0], n), dtype=np.int64)
    first = np.empty((q2.shape[0], n), dtype=np.int64)
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    accumulate_packed(q2, weights.codes, k, lo, hi, acc, first)
    overflow = first >= 0
    if policy is OverflowPolicy.RAISE and overflow.any():
        m, j = np.argwhere(overflow)[0]
        raise AccumulatorOverflowError(
            f"{acc_bits}-bit accumulator overflows at token {m}, output {j}, k={first[m, j]} "
            f"(range [{lo}, {hi}]); use acc_bits >= {required_acc_bits(k, 128)} or on_overflow='flag'"
        )
    shape = lead + (n,)
    return AccResult(acc.reshape(shape), overflow.reshape(shape), first.reshape(shape), int(acc_bits))


def dequantize(acc: np.ndarray, s_x: np.ndarray, s_w: float) -> np.ndarray:
    """float32 ``acc / s_x / s_w`` in that order (bitblas ``forward_fp32_simulated``).

    acc: integer [..., N] with |acc| <= 2**24 (so the float32 cast is exact);
    s_x: float32 [...] per token; s_w: float32 scalar. Returns float32 [..., N].
    """
    acc = np.asarray(acc)
    if acc.dtype.kind not in "iu":
        raise TernaryError(f"acc has dtype {acc.dtype}; expected an integer array")
    if acc.size and np.abs(acc).max() > F32_EXACT_INT:
        raise TernaryError(f"|acc| = {np.abs(acc).max()} exceeds 2**24; its float32 cast would round")
    s_x = np.asarray(s_x, dtype=_F32)
    if s_x.shape != acc.shape[:-1]:
        raise TernaryError(f"s_x has shape {s_x.shape}; expected {acc.shape[:-1]} (one per token)")
    return acc.astype(_F32) / s_x[..., None] / _F32(s_w)


@dataclass(frozen=True)
class BitLinearTrace:
    """Every intermediate of one BitLinear call (shapes for x [..., K] and N outputs).

    y: float32 [..., K] normalised input; q: int8 [..., K]; s_x: float32 [...];
    acc: :class:`AccResult` [..., N]; out: float32 [..., N].
    """

    y: np.ndarray
    q: np.ndarray
    s_x: np.ndarray
    acc: AccResult
    out: np.ndarray


def bitlinear_trace(x: np.ndarray, params: BitLinearParams, config: BitLinearConfig = BitLinearConfig()) -> BitLinearTrace:
    """Run one BitLinear on x [..., K] and return all intermediates (see :func:`bitlinear`).

    With ``on_overflow="flag"`` and an overflow, ``out`` is computed from the exact sums.
    """
    x = _as_f32(x, "x")
    if x.shape[-1] != params.in_features:
        raise TernaryError(f"x has last dim {x.shape[-1]}; the layer expects in_features={params.in_features}")
    y = rmsnorm(x, params.gamma, config.eps)
    q, s_x = quantize_activations(y, config.rounding)
    acc = accumulate(q, params.weights, config.acc_bits, config.on_overflow)
    out = dequantize(acc.acc, s_x, params.weights.s_w)
    return BitLinearTrace(y, q, s_x, acc, out)


def bitlinear(x: np.ndarray, params: BitLinearParams, config: BitLinearConfig = BitLinearConfig()) -> np.ndarray:
    """BitLinear forward x [..., K] -> float32 [..., N] through the integer datapath.

    RMSNorm (eps, fp32) -> per-token absmax int8 (rounding mode) -> add/sub/skip
    accumulation (acc_bits, overflow policy) -> ``acc / s_x / s_w``. No bias (the model has none).
    """
    return bitlinear_trace(x, params, config).out


@dataclass(frozen=True)
class OpCounts:
    """Integer work of one BitLinear for ``tokens`` tokens.

    adds / subs / skips: weight codes +1 / -1 / 0 visited (each is one accumulator add,
    one subtract, or nothing); dequant_divides: 2 per output (``/ s_x`` then ``/ s_w``).
    """

    adds: int
    subs: int
    skips: int
    dequant_divides: int

    @property
    def total_weight_visits(self) -> int:
        """adds + subs + skips = tokens * N * K."""
        return self.adds + self.subs + self.skips


def op_counts(weights: TernaryWeights, tokens: int = 1) -> OpCounts:
    """Adds / subtracts / skips (and dequant divides) of one BitLinear over ``tokens`` tokens."""
    if isinstance(tokens, bool) or not isinstance(tokens, (int, np.integer)) or tokens < 0:
        raise TernaryError(f"tokens={tokens!r} must be an integer >= 0")
    t = weights.unpack()
    pos = int(np.count_nonzero(t == 1))
    neg = int(np.count_nonzero(t == -1))
    zero = t.size - pos - neg
    return OpCounts(adds=pos * tokens, subs=neg * tokens, skips=zero * tokens,
                    dequant_divides=2 * weights.shape[0] * tokens)
