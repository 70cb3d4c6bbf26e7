"""Configuration and weights of the fixed-point MoE layer.

Defaults follow Edge-MoE's number formats (sharc-lab/Edge-MoE ``include/datatypes.hpp``):
activations ``ap_fixed<32,10>``, linear weights ``ap_fixed<16,2>``, biases
``ap_fixed<16,5>``; the gate logits use the activation format (Edge-MoE keeps
them in ``fm_t``).  Choices that are ours, not Edge-MoE's, are marked *ours*.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from .fixed_point import FixedPoint, Rounding
from .nonlinear import GELU_LUT_STEP_LOG2, _GELU_MAX_FRAC

__all__ = [
    "Activation",
    "OverflowMode",
    "AccumulatorOverflowError",
    "MoENumerics",
    "MoEConfig",
    "MoEWeights",
]

_INT64_LIMIT = 1 << 62  # every exact intermediate stays below this (room for rounding adds)


class Activation(str, enum.Enum):
    """Expert activation: Edge-MoE's LUT GELU, or ReLU."""

    GELU_LUT = "gelu_lut"
    RELU = "relu"


class OverflowMode(str, enum.Enum):
    """What an accumulator overflow does.

    ``RAISE``: raise :class:`AccumulatorOverflowError`.  ``WRAP``: keep the
    two's-complement wrapped value (what a plain adder of ``acc_bits`` holds)
    and count the event in ``MoEResult.overflow_counts``.
    """

    RAISE = "raise"
    WRAP = "wrap"


class AccumulatorOverflowError(OverflowError, ValueError):
    """An exact accumulator sum does not fit ``MoENumerics.acc_bits``."""


def _enum(cls, value, name):
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in cls)
        raise ValueError(f"{name}={value!r} is not one of {allowed}") from None


def _check_int(name, v, lo, hi=None):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name}={v!r} must be an int")
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise ValueError(f"{name}={v} out of range; allowed {rng}")


@dataclass(frozen=True, kw_only=True)
class MoENumerics:
    """Number formats and arithmetic rules of the datapath.

    Attributes:
        act: activations, hidden layer and expert outputs (Edge-MoE ``ap_fixed<32,10>``).
        weight: gate and expert linear weights (Edge-MoE ``ap_fixed<16,2>``).
        bias: expert biases (Edge-MoE ``ap_fixed<16,5>``).
        logit: gate logits (Edge-MoE keeps them in the activation type).
        score: gate scores, must represent 1.0; *ours*: ``ap_ufixed<16,1>``
            (Edge-MoE keeps scores in ``ap_fixed<32,10>``).
        acc_bits: width of every wide accumulator (gate, FC1, FC2, combine);
            *ours*: 48, the DSP48E2 P register.  Sums are exact inside it.
        rounding: every runtime right shift / division (Edge-MoE: ``FLOOR`` = ``AP_TRN``).
        activation: expert nonlinearity.
        exp_frac_bits: fraction bits E of the softmax exponentials (*ours*: 20).
            Each exponential can lose up to 2 LSB to rounding, so scores may be
            off by about ``2 * N * 2**-E`` (3e-5 at N=16, E=20).
        exp_lut_bits: the exp ROM has ``2**exp_lut_bits + 1`` entries (*ours*: 6).
        on_overflow: accumulator overflow policy.
    """

    act: FixedPoint = field(default_factory=lambda: FixedPoint(32, 10))
    weight: FixedPoint = field(default_factory=lambda: FixedPoint(16, 2))
    bias: FixedPoint = field(default_factory=lambda: FixedPoint(16, 5))
    logit: FixedPoint = field(default_factory=lambda: FixedPoint(32, 10))
    score: FixedPoint = field(default_factory=lambda: FixedPoint(16, 1, signed=False))
    acc_bits: int = 48
    rounding: Rounding = Rounding.FLOOR
    activation: Activation = Activation.GELU_LUT
    exp_frac_bits: int = 20
    exp_lut_bits: int = 6
    on_overflow: OverflowMode = OverflowMode.RAISE

    def __post_init__(self) -> None:
        for name in ("act", "weight", "bias", "logit", "score"):
            if not isinstance(getattr(self, name), FixedPoint):
                raise ValueError(f"MoENumerics.{name}={getattr(self, name)!r} must be a FixedPoint")
        object.__setattr__(self, "rounding", _enum(Rounding, self.rounding, "MoENumerics.rounding"))
        object.__setattr__(self, "activation", _enum(Activation, self.activation, "MoENumerics.activation"))
        object.__setattr__(self, "on_overflow", _enum(OverflowMode, self.on_overflow, "MoENumerics.on_overflow"))
        _check_int("MoENumerics.acc_bits", self.acc_bits, 2, 63)
        _check_int("MoENumerics.exp_frac_bits", self.exp_frac_bits, 1, 30)
        _check_int("MoENumerics.exp_lut_bits", self.exp_lut_bits, 1, 16)
        for name in ("act", "weight"):
            if not getattr(self, name).signed:
                raise ValueError(f"MoENumerics.{name}={getattr(self, name)} must be signed")
        pf = self.product_frac_bits
        for name in ("bias", "logit"):
            f = getattr(self, name).frac_bits
            if f > pf:
                raise ValueError(
                    f"MoENumerics.{name} has {f} fraction bits; allowed at most act+weight = {pf}"
                )
        if self.score.max_code < (1 << self.score.frac_bits):
            raise ValueError(
                f"MoENumerics.score={self.score} cannot represent 1.0; give it at least "
                f"{1 if not self.score.signed else 2} integer bit(s)"
            )
        if self.logit.total_bits > 44:
            raise ValueError(
                f"MoENumerics.logit={self.logit} too wide for the integer exp; allowed total_bits <= 44"
            )
        if self.activation is Activation.GELU_LUT and not (
            GELU_LUT_STEP_LOG2 <= self.act.frac_bits <= _GELU_MAX_FRAC
        ):
            raise ValueError(
                f"activation='gelu_lut' needs act fraction bits in {GELU_LUT_STEP_LOG2}.."
                f"{_GELU_MAX_FRAC}, got {self.act} with {self.act.frac_bits}"
            )

    @property
    def product_frac_bits(self) -> int:
        """Fraction bits of an activation x weight product (and of FC/gate accumulators)."""
        return self.act.frac_bits + self.weight.frac_bits


@dataclass(frozen=True, kw_only=True)
class MoEConfig:
    """Shape of one MoE layer plus its numerics.

    Attributes:
        d_model: token width d (M3ViT ViT-S: 384; Edge-MoE: 192).
        d_hidden: expert hidden width h (M3ViT: 384; Edge-MoE: 384).
        n_experts: N (M3ViT and Edge-MoE: 16).
        top_k: experts per token k, ``1 <= k <= N`` (M3ViT: 4; Edge-MoE: 2).
        numerics: formats and rounding, see :class:`MoENumerics`.

    Raises ValueError if the formats could overflow the int64 model itself
    (independent of ``acc_bits``, which is checked on the data).
    """

    d_model: int
    d_hidden: int
    n_experts: int
    top_k: int
    numerics: MoENumerics = field(default_factory=MoENumerics)

    def __post_init__(self) -> None:
        _check_int("MoEConfig.d_model", self.d_model, 1)
        _check_int("MoEConfig.d_hidden", self.d_hidden, 1)
        _check_int("MoEConfig.n_experts", self.n_experts, 1)
        _check_int("MoEConfig.top_k", self.top_k, 1)
        if self.top_k > self.n_experts:
            raise ValueError(
                f"MoEConfig.top_k={self.top_k} exceeds n_experts={self.n_experts}; allowed 1..n_experts"
            )
        if not isinstance(self.numerics, MoENumerics):
            raise ValueError(f"MoEConfig.numerics={self.numerics!r} must be a MoENumerics")
        check_headroom(self.numerics, self.d_model, self.d_hidden, self.n_experts, self.top_k)

    @property
    def expert_weight_bytes(self) -> int:
        """Bytes of one expert's W1, b1, W2, b2 at the configured widths (rounded up)."""
        nm = self.numerics
        bits = 2 * self.d_model * self.d_hidden * nm.weight.total_bits
        bits += (self.d_hidden + self.d_model) * nm.bias.total_bits
        return -(-bits // 8)


def check_headroom(nm: MoENumerics, d: int, h: int, n: int, k: int) -> None:
    """Raise ValueError unless every exact intermediate fits int64 with margin."""
    a, w, b = nm.act.max_abs_code, nm.weight.max_abs_code, nm.bias.max_abs_code
    bias_shift = nm.product_frac_bits - nm.bias.frac_bits
    one = 1 << nm.score.frac_bits
    bounds = {
        "gate accumulator": d * a * w,
        "FC1 accumulator": d * a * w + (b << bias_shift),
        "FC2 accumulator": h * a * w + (b << bias_shift),
        "combine accumulator": k * one * a,
        "softmax division": 2 * (1 << nm.exp_frac_bits) * one + n * (1 << nm.exp_frac_bits),
    }
    for what, bound in bounds.items():
        if bound >= _INT64_LIMIT:
            raise ValueError(
                f"{what} bound {bound} exceeds 2**62 for d={d}, h={h}, N={n}, k={k} with "
                f"act={nm.act}, weight={nm.weight}, score={nm.score}; use narrower formats"
            )


def _codes(name: str, arr, shape: tuple, fmt: FixedPoint) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must hold integer codes, got dtype {a.dtype}; quantize with FixedPoint.quantize"
        )
    if a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}; expected {shape}")
    a = a.astype(np.int64)
    bad = ~fmt.in_range(a)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name}{list(idx)} = {int(a[idx])} is outside {fmt} codes "
            f"[{fmt.min_code}, {fmt.max_code}]"
        )
    return a


@dataclass(frozen=True, eq=False)
class MoEWeights:
    """Integer weight codes of one MoE layer (read-only int64 arrays).

    Layouts (``y = x @ W``): ``gate`` [d, N]; ``w1`` [N, d, h]; ``b1`` [N, h];
    ``w2`` [N, h, d]; ``b2`` [N, d].  ``gate``, ``w1``, ``w2`` are in the weight
    format, ``b1``, ``b2`` in the bias format.  Build with :meth:`from_float`
    or :meth:`random`; :meth:`validate` checks shapes and code ranges.
    """

    gate: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    def __post_init__(self) -> None:
        for name in ("gate", "w1", "b1", "w2", "b2"):
            a = np.asarray(getattr(self, name))
            if a.dtype.kind not in "iu":
                raise ValueError(
                    f"MoEWeights.{name} must hold integer codes, got dtype {a.dtype}; "
                    "use MoEWeights.from_float"
                )
            a = a.astype(np.int64, copy=True)
            a.setflags(write=False)
            object.__setattr__(self, name, a)

    @classmethod
    def from_float(cls, gate, w1, b1, w2, b2, numerics: MoENumerics | None = None) -> "MoEWeights":
        """Quantize float weights (same layouts) with ``numerics.rounding``, saturating."""
        nm = numerics if numerics is not None else MoENumerics()
        q = lambda a, f: f.quantize(np.asarray(a, dtype=np.float64), nm.rounding)  # noqa: E731
        return cls(q(gate, nm.weight), q(w1, nm.weight), q(b1, nm.bias), q(w2, nm.weight), q(b2, nm.bias))

    @classmethod
    def random(cls, cfg: MoEConfig, rng: np.random.Generator, bias_std: float = 0.1) -> "MoEWeights":
        """Synthetic weights: normal with std ``1/sqrt(fan_in)`` (biases ``bias_std``),
        quantized to ``cfg.numerics``.  ``rng`` is a ``numpy.random.Generator``."""
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        d, h, n = cfg.d_model, cfg.d_hidden, cfg.n_experts
        return cls.from_float(
            rng.normal(0.0, d**-0.5, (d, n)),
            rng.normal(0.0, d**-0.5, (n, d, h)),
            rng.normal(0.0, bias_std, (n, h)),
            rng.normal(0.0, h**-0.5, (n, h, d)),
            rng.normal(0.0, bias_std, (n, d)),
            cfg.numerics,
        )

    def validate(self, cfg: MoEConfig) -> None:
        """Raise ValueError unless shapes match ``cfg`` and codes fit its formats."""
        d, h, n, nm = cfg.d_model, cfg.d_hidden, cfg.n_experts, cfg.numerics
        _codes("MoEWeights.gate", self.gate, (d, n), nm.weight)
        _codes("MoEWeights.w1", self.w1, (n, d, h), nm.weight)
        _codes("MoEWeights.b1", self.b1, (n, h), nm.bias)
        _codes("MoEWeights.w2", self.w2, (n, h, d), nm.weight)
        _codes("MoEWeights.b2", self.b2, (n, d), nm.bias)
