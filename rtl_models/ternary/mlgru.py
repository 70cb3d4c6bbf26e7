"""MLGRU token mixer and GLU channel mixer of the MatMul-free LM, as the released code runs them.

Follows ``HGRNBitAttention.forward`` and ``HGRNBitMLP.forward`` of ridgerchu/matmulfreellm
master @ a016f72 (``mmfreelm/layers/hgrn_bit.py``, ``models/hgrn_bit/modeling_hgrn_bit.py``),
not the paper equations: the output gate is ``RMSNorm_gamma(g_raw) * SiLU(h)`` and
layers > 0 apply a learned lower bound to f.
The BitLinears run the integer datapath of :mod:`.bitlinear`; the elementwise nonlinear
ops are float32 numpy (exp-based, so they match torch to a few ulp, not bitwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from .bitlinear import BitLinearConfig, BitLinearParams, bitlinear
from .quant import TernaryError, _as_f32, rmsnorm

__all__ = [
    "StateFormat",
    "StatePrecision",
    "StateOverflowError",
    "MLGRUParams",
    "MLGRUOutput",
    "sigmoid",
    "swiglu",
    "gated_rmsnorm",
    "layer_lower_bounds",
    "mlgru_sequence",
    "mlgru_step",
    "glu",
]

_F32 = np.float32


class StateOverflowError(OverflowError):
    """A fixed-point recurrent state value does not fit its integer bits."""


class StateFormat(str, Enum):
    """Storage format of the recurrent state register h."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    FIXED = "fixed"


@dataclass(frozen=True, kw_only=True)
class StatePrecision:
    """How h_t is stored between steps; ``h_t = round(f * h_{t-1} + c)`` with fp32 arithmetic.

    Attributes:
        format: fp32 (the released prefill kernel: no rounding), fp16 / bf16 (the released
            decode cache stores h in the model dtype, ``final_state = x.new_empty(...)``)
            with round-to-nearest-even, or
            fixed (two's complement with ``int_bits`` + ``frac_bits`` + sign, half-even,
            raising StateOverflowError when a value does not fit).
        int_bits, frac_bits: only for fixed; ``1 + int_bits + frac_bits <= 25`` so every
            value is exact in float32.
    """

    format: StateFormat = StateFormat.FP32
    int_bits: int = 0
    frac_bits: int = 0

    def __post_init__(self) -> None:
        try:
            fmt = StateFormat(self.format)
        except ValueError:
            raise TernaryError(f"format={self.format!r} is not one of fp32, fp16, bf16, fixed") from None
        object.__setattr__(self, "format", fmt)
        if fmt is StateFormat.FIXED:
            ok = all(isinstance(b, int) and b >= 0 for b in (self.int_bits, self.frac_bits))
            if not ok or 1 + self.int_bits + self.frac_bits > 25:
                raise TernaryError(
                    f"fixed state needs int_bits, frac_bits >= 0 with 1 + int + frac <= 25; "
                    f"got int_bits={self.int_bits!r}, frac_bits={self.frac_bits!r}")
        elif self.int_bits or self.frac_bits:
            raise TernaryError(f"int_bits/frac_bits apply only to format='fixed', not {fmt.value!r}")

    def round(self, h: np.ndarray) -> np.ndarray:
        """Round float32 h to this format (nearest-even) and return it as float32 (exact values).

        Raises StateOverflowError when a finite value would become inf (fp16/bf16) or does
        not fit the fixed-point range.
        """
        h = np.asarray(h, dtype=_F32)
        if self.format is StateFormat.FP32:
            return h
        if self.format is StateFormat.FIXED:
            return self._round_fixed(h)
        if self.format is StateFormat.FP16:
            with np.errstate(over="ignore"):
                out = h.astype(np.float16).astype(_F32)
        else:  # bf16: keep the top 16 bits, round to nearest even on the dropped 16
            bits = h.view(np.uint32).astype(np.uint64)
            bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
            out = np.where(np.isnan(h), h, bits.astype(np.uint32).view(_F32))
        if np.any(np.isinf(out) & np.isfinite(h)):
            raise StateOverflowError(
                f"state max |h| = {float(np.max(np.abs(h[np.isfinite(h)])))} overflows {self.format.value} to inf")
        return out

    def _round_fixed(self, h: np.ndarray) -> np.ndarray:
        scale = _F32(2.0 ** self.frac_bits)
        r = np.rint(h * scale)  # scaling by a power of two is exact
        lim = _F32(2.0 ** (self.int_bits + self.frac_bits))
        if np.any(~np.isfinite(r) | (r < -lim) | (r > lim - 1)):
            raise StateOverflowError(
                f"state max |h| = {float(np.max(np.abs(h)))} does not fit fixed "
                f"s{self.int_bits}.{self.frac_bits}; increase int_bits")
        return r / scale


def sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 ``1 / (1 + exp(-x))`` (exp overflow gives exactly 0)."""
    x = np.asarray(x, dtype=_F32)
    with np.errstate(over="ignore"):
        return _F32(1) / (_F32(1) + np.exp(-x))


def swiglu(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a * b / (1 + exp(-a))`` = SiLU(a) * b in float32, the op order of the released jiterator kernel."""
    a = np.asarray(a, dtype=_F32)
    b = np.asarray(b, dtype=_F32)
    with np.errstate(over="ignore"):
        return (a * b) / (_F32(1) + np.exp(-a))


def gated_rmsnorm(x: np.ndarray, gamma: np.ndarray, gate: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``FusedRMSNormSwishGate``: ``(RMSNorm_gamma(x) * gate) * sigmoid(gate)`` in float32
    (``mmfreelm/modules/fused_norm_gate.py``)."""
    y = rmsnorm(x, gamma, eps)
    gate = np.asarray(gate, dtype=_F32)
    if gate.shape != y.shape:
        raise TernaryError(f"gate has shape {gate.shape}; expected {y.shape}")
    return (y * gate) * sigmoid(gate)


def layer_lower_bounds(lower_bounds: np.ndarray) -> np.ndarray:
    """Per-layer forget-gate lower bounds from the ``lower_bounds`` parameter [L, d].

    ``sm = softmax(lower_bounds, axis=0)``; ``LB = cumsum(sm, axis=0) - sm[0]`` in float32
    (``HGRNBitModel.forward``), so LB[0] = 0 and LB is non-decreasing in the layer index.
    """
    p = _as_f32(lower_bounds, "lower_bounds", min_ndim=2)
    if p.ndim != 2:
        raise TernaryError(f"lower_bounds has shape {p.shape}; expected [num_layers, hidden_size]")
    e = np.exp(p - p.max(axis=0, keepdims=True))
    sm = e / np.add.accumulate(e, axis=0)[-1]
    return np.add.accumulate(sm, axis=0) - sm[0]


@dataclass(frozen=True, kw_only=True)
class MLGRUParams:
    """Weights of one ``HGRNBitAttention`` (num_heads=1, no short conv: the released config).

    Attributes:
        i_proj, f_proj, g_proj: BitLinear d -> H (each with its own RMSNorm gamma).
        o_proj: BitLinear H -> d.
        g_norm_gamma: float32 [H], gamma of the output-gate RMSNorm (``g_norm``).
        lower_bound: float32 [H] for this layer (a row of :func:`layer_lower_bounds`), or
            None for layer 0 / ``use_lower_bound=False`` (the code skips the bound there).
    """

    i_proj: BitLinearParams
    f_proj: BitLinearParams
    g_proj: BitLinearParams
    o_proj: BitLinearParams
    g_norm_gamma: np.ndarray
    lower_bound: np.ndarray | None = None

    def __post_init__(self) -> None:
        d = self.i_proj.in_features
        h = self.i_proj.out_features
        for name in ("f_proj", "g_proj"):
            p = getattr(self, name)
            if (p.in_features, p.out_features) != (d, h):
                raise TernaryError(f"{name} is {p.in_features}->{p.out_features}; expected {d}->{h} like i_proj")
        if (self.o_proj.in_features, self.o_proj.out_features) != (h, d):
            raise TernaryError(f"o_proj is {self.o_proj.in_features}->{self.o_proj.out_features}; expected {h}->{d}")
        g = _as_f32(self.g_norm_gamma, "g_norm_gamma")
        if g.shape != (h,):
            raise TernaryError(f"g_norm_gamma has shape {g.shape}; expected ({h},)")
        object.__setattr__(self, "g_norm_gamma", g)
        if self.lower_bound is not None:
            lb = _as_f32(self.lower_bound, "lower_bound")
            if lb.shape != (h,) or np.any((lb < 0) | (lb > 1)):
                raise TernaryError(f"lower_bound must have shape ({h},) with values in [0, 1]")
            object.__setattr__(self, "lower_bound", lb)

    @property
    def hidden_size(self) -> int:
        """d, the model width (input and output)."""
        return self.i_proj.in_features

    @property
    def state_size(self) -> int:
        """H, the recurrent state width (= d for expand_ratio 1)."""
        return self.i_proj.out_features


@dataclass(frozen=True)
class MLGRUOutput:
    """Result of :func:`mlgru_sequence` for x [..., T, d].

    out: float32 [..., T, d]; states: float32 [..., T, H], h_t as stored (after rounding to
    the state precision); final_state: float32 [..., H] = states[..., -1, :].
    """

    out: np.ndarray
    states: np.ndarray
    final_state: np.ndarray


def mlgru_sequence(
    x: np.ndarray,
    params: MLGRUParams,
    config: BitLinearConfig = BitLinearConfig(),
    state: StatePrecision = StatePrecision(),
    h0: np.ndarray | None = None,
    eps: float = 1e-6,
) -> MLGRUOutput:
    """MLGRU over a sequence x [..., T, d] (already normalised by the block's ``attn_norm``).

    Per token (``HGRNBitAttention.forward``): i, f, g = BitLinear_{i,f,g}(x); f = sigmoid(f)
    (then LB + (1 - LB) * f if ``params.lower_bound`` is set); c = swiglu(i, 1 - f);
    h_t = round_state(f * h_{t-1} + c); o = gated_rmsnorm(g, g_norm_gamma, h_t);
    out = BitLinear_o(o). ``h0`` [..., H] defaults to 0;
    ``eps`` is the g_norm epsilon (config.rms_norm_eps = 1e-6). No attention mask (no padding).
    """
    x = _as_f32(x, "x", min_ndim=2)
    d, hsz = params.hidden_size, params.state_size
    if x.shape[-1] != d:
        raise TernaryError(f"x has last dim {x.shape[-1]}; expected hidden_size={d}")
    lead, steps = x.shape[:-2], x.shape[-2]
    if steps < 1:
        raise TernaryError("x has no time steps (shape[-2] == 0)")
    i_raw = bitlinear(x, params.i_proj, config)
    f = sigmoid(bitlinear(x, params.f_proj, config))
    g_raw = bitlinear(x, params.g_proj, config)
    if params.lower_bound is not None:
        lb = params.lower_bound
        f = lb + (_F32(1) - lb) * f
    c = swiglu(i_raw, _F32(1) - f)
    if h0 is None:
        h = np.zeros(lead + (hsz,), dtype=_F32)
    else:
        h = _as_f32(h0, "h0")
        if h.shape != lead + (hsz,):
            raise TernaryError(f"h0 has shape {h.shape}; expected {lead + (hsz,)}")
        h = state.round(h)
    states = np.empty(lead + (steps, hsz), dtype=_F32)
    for t in range(steps):
        h = state.round(f[..., t, :] * h + c[..., t, :])
        states[..., t, :] = h
    o = gated_rmsnorm(g_raw, params.g_norm_gamma, states, eps)
    out = bitlinear(o, params.o_proj, config)
    return MLGRUOutput(out, states, states[..., -1, :].copy())


def mlgru_step(
    x_t: np.ndarray,
    h_prev: np.ndarray,
    params: MLGRUParams,
    config: BitLinearConfig = BitLinearConfig(),
    state: StatePrecision = StatePrecision(),
    eps: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray]:
    """One decode step: x_t [..., d], h_prev [..., H] -> (out_t [..., d], h_t [..., H]).

    Identical, bit for bit, to the corresponding step of :func:`mlgru_sequence`.
    """
    x_t = _as_f32(x_t, "x_t")
    res = mlgru_sequence(x_t[..., None, :], params, config, state, h0=h_prev, eps=eps)
    return res.out[..., 0, :], res.final_state


def glu(
    x: np.ndarray,
    gate_proj: BitLinearParams,
    down_proj: BitLinearParams,
    config: BitLinearConfig = BitLinearConfig(),
) -> np.ndarray:
    """GLU channel mixer ``HGRNBitMLP`` (``modeling_hgrn_bit.py``): x [..., d] -> float32 [..., d].

    y = BitLinear_gate(x) (d -> 2I, one beta for both halves); gate, up = y[..., :I], y[..., I:];
    z = swiglu(gate, up) = SiLU(gate) * up; out = BitLinear_down(z) (I -> d).
    """
    two_i = gate_proj.out_features
    if two_i % 2 or down_proj.in_features != two_i // 2:
        raise TernaryError(
            f"gate_proj out_features={two_i} must be even and equal 2 * down_proj.in_features={down_proj.in_features}")
    y = bitlinear(x, gate_proj, config)
    half = two_i // 2
    return bitlinear(swiglu(y[..., :half], y[..., half:]), down_proj, config)
