"""Computed accuracy side of the Agile-Quant model: quantization and pruning error tables.

What the metric IS
------------------
For each layer group (``qkv``, ``attn``, ``o_proj``, ``ffn_up``, ``ffn_down``)
a small synthetic GEMM is built from seeded random data that has the
statistics the paper describes (Agile-Quant, AAAI'24, "Activation Quantization"; paper Fig. 1(d):
a few outlier channels, the same channels in every token):

* activations are calibrated on one seeded batch and evaluated on another
  (held out), quantized with the project's torch-free quantizers
  (:mod:`rtl_models.quant`): TRIP/PTF (layer-wise scale + per-channel
  power-of-two factors, K = 4) for GEMM inputs, the log2 quantizer for the
  softmax output, round-to-nearest grouped weights (GPTQ's grid, group size
  along the reduction axis);
* 16 bits means IEEE float16 (the rounding error of the FP16 path);
* the error of a group is the output noise-to-signal ratio
  ``NSR = ||Y_hat - Y||^2 / ||Y||^2`` of the GEMM (for ``attn``: of the whole
  attention output ``softmax(Q K^T / sqrt(d)) V`` with Q, K, softmax and V
  quantized), computed in float64.

Token pruning enters through :func:`prune_nsr`: on a seeded attention map with
an attention sink on token 0 (paper Fig. 1(b)), the tokens with the lowest
attention-to-first-token score are removed (``rtl_models.quant.select_tokens``)
and the error of the attention outputs against unpruned attention is measured
as a function of the kept fraction: the distortion of the surviving tokens'
outputs plus, conservatively, the whole output energy of the pruned tokens
(counted as lost).

What the metric is NOT
----------------------
* Not perplexity, and not calibrated to the paper's perplexities: the data
  are synthetic, the layers are not composed (no error propagation through
  depth), and weights are rounded to nearest (GPTQ's Hessian-based error
  feedback would lower the weight error).
* It is model-independent except for the pruning schedule (which layers lose
  which fraction of tokens).
* It does not credit pruning with the paper's claim that removing tokens
  removes outliers (the synthetic outliers are per channel, in every token),
  and it counts a pruned token's output as entirely lost, which overstates
  the cost if an implementation carries pruned tokens' hidden states forward.

Everything is computed lazily on first use and cached (no work at import).
"""

from __future__ import annotations

import contextlib
import math
from functools import lru_cache

import numpy as np

from rtl_models.quant import (dequantize_weight_groups, log2_dequantize, log2_quantize, ptf_calibrate,
                              ptf_dequantize, ptf_quantize, quantize_weight_groups, select_tokens,
                              token_importance)

__all__ = ["GROUPS", "BITS", "GROUP_SIZES", "group_nsr", "prune_nsr_table", "prune_nsr", "SYNTH"]

GROUPS = ("qkv", "attn", "o_proj", "ffn_up", "ffn_down")
BITS = (4, 8, 16)
GROUP_SIZES = (32, 64, 128, 256, 512)

# Synthetic-data constants (all *assumed*: chosen to show the paper's outlier
# structure, not fitted to anything).
SYNTH: dict[str, float] = {
    "tokens": 128,           # tokens per batch (calibration and evaluation batch each)
    "k": 512,                # reduction width of the linear groups (every group size divides it)
    "n": 128,                # output channels of the linear groups
    "outlier_frac": 0.01,    # fraction of outlier channels (about 5 of 512)
    "outlier_lo": 10.0,      # outlier channel scale ~ U(lo, hi) x the normal channels; the
    "outlier_hi": 40.0,      # range is assumed (LLM.int8, Dettmers et al. 2022, cited by the paper)
    "heads": 8,              # attention group: heads and head dimension
    "head_dim": 64,
    "kv_outlier_scale": 8.0, # a few K channels carry outliers (paper Fig. 1(d))
    "sink_logit": 4.0,       # attention-sink bias on token 0 (paper Fig. 1(b): vertical stripe)
    "prune_heads": 4,        # pruning table: heads, tokens, head dim
    "prune_tokens": 128,
    "prune_head_dim": 32,
    "ptf_k": 4,              # TRIP refinement K (shawnricecake/agile-quant ptq/observer/ptf.py, ptf_0to4)
    "seed": 20231209,        # arXiv submission date of the paper
}


def _check_bits(name: str, v: object) -> int:
    if isinstance(v, bool) or v not in BITS:
        raise ValueError(f"{name}={v!r} is not a supported bit-width; allowed: {', '.join(map(str, BITS))}")
    return int(v)


def _check_group(v: object) -> int:
    if isinstance(v, bool) or v not in GROUP_SIZES:
        raise ValueError(f"group_size={v!r} is not supported; allowed: {', '.join(map(str, GROUP_SIZES))}")
    return int(v)


def _rng(tag: int) -> np.random.Generator:
    return np.random.default_rng([int(SYNTH["seed"]), tag])


def _with_outliers(rng: np.random.Generator, x: np.ndarray, frac: float, lo: float, hi: float) -> np.ndarray:
    k = x.shape[1]
    n_out = max(1, int(round(frac * k)))
    ch = rng.choice(k, size=n_out, replace=False)
    x = x.copy()
    x[:, ch] *= rng.uniform(lo, hi, size=n_out)
    return x


@lru_cache(maxsize=None)
def _linear_data(group: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X_cal, X_eval, W) float32 for one linear group; W is (N, K) torch layout."""
    t, k, n = int(SYNTH["tokens"]), int(SYNTH["k"]), int(SYNTH["n"])
    rng = _rng(GROUPS.index(group))
    lo, hi, frac = SYNTH["outlier_lo"], SYNTH["outlier_hi"], SYNTH["outlier_frac"]
    base = rng.standard_normal((2 * t, k))
    if group in ("qkv", "ffn_up"):        # LayerNorm outputs: strong outlier channels
        x = _with_outliers(rng, base, frac, lo, hi)
    elif group == "o_proj":               # attention outputs: mild outliers
        x = _with_outliers(rng, 0.5 * base, frac, 2.0, 8.0)
    else:                                 # ffn_down: ReLU/SwiGLU output, heavy-tailed per channel
        x = np.maximum(base, 0.0) * rng.lognormal(0.0, 1.0, size=k)
    w = rng.standard_normal((n, k)) / math.sqrt(k)
    x = x.astype(np.float32)
    return x[:t], x[t:], w.astype(np.float32)


def _fq_act(x_cal: np.ndarray, x_eval: np.ndarray, bits: int) -> np.ndarray:
    """Fake-quantize activations: TRIP calibrated on ``x_cal``, applied to ``x_eval``."""
    if bits == 16:
        return x_eval.astype(np.float16).astype(np.float64)
    p = ptf_calibrate(x_cal, bits=bits, K=int(SYNTH["ptf_k"]), signed=False)
    return ptf_dequantize(ptf_quantize(x_eval, p), p).astype(np.float64)


def _fq_weight(w: np.ndarray, bits: int, group: int) -> np.ndarray:
    """Fake-quantize a (N, K) operand in groups of ``group`` along K (capped at K)."""
    if bits == 16:
        return w.astype(np.float16).astype(np.float64)
    g = min(group, w.shape[1])
    return dequantize_weight_groups(quantize_weight_groups(w, bits=bits, group_size=g)).astype(np.float64)


def _nsr(y_hat: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum((y_hat - y) ** 2) / np.sum(y ** 2))


@lru_cache(maxsize=None)
def _act_cache(group: str, a_bits: int) -> np.ndarray:
    x_cal, x_eval, _ = _linear_data(group)
    return _fq_act(x_cal, x_eval, a_bits)


@lru_cache(maxsize=None)
def _attn_data() -> dict[str, np.ndarray]:
    """Q (calibration, evaluation), K, V as (tokens, heads * head_dim) float32."""
    t, h, hd = int(SYNTH["tokens"]), int(SYNTH["heads"]), int(SYNTH["head_dim"])
    rng = _rng(100)
    q = rng.standard_normal((2 * t, h * hd))
    k = _with_outliers(rng, rng.standard_normal((t, h * hd)), 2.0 / hd, 2.0, SYNTH["kv_outlier_scale"])
    v = rng.standard_normal((t, h * hd))
    return {"q_cal": q[:t].astype(np.float32), "q": q[t:].astype(np.float32),
            "k": k.astype(np.float32), "v": v.astype(np.float32)}


def _softmax_causal(s: np.ndarray, sink: float) -> np.ndarray:
    t = s.shape[-1]
    s = s.copy()
    s[..., 0] += sink
    s = np.where(np.tril(np.ones((t, t), dtype=bool)), s, -np.inf)
    s = s - s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=-1, keepdims=True)


def _heads(x: np.ndarray, h: int) -> np.ndarray:
    """(T, h * hd) -> (h, T, hd)."""
    t = x.shape[0]
    return x.reshape(t, h, -1).transpose(1, 0, 2)


@lru_cache(maxsize=None)
def _q_hat(a_bits: int) -> np.ndarray:
    d = _attn_data()
    return _fq_act(d["q_cal"], d["q"], a_bits)


def _attention_nsr(a_bits: int, w_bits: int, group: int) -> float:
    d = _attn_data()
    h, sink = int(SYNTH["heads"]), float(SYNTH["sink_logit"])
    hd = d["q"].shape[1] // h
    q, k, v = (_heads(d[n].astype(np.float64), h) for n in ("q", "k", "v"))
    p = _softmax_causal(q @ k.transpose(0, 2, 1) / math.sqrt(hd), sink)
    ref = p @ v
    q_hat = _heads(_q_hat(a_bits), h)                              # TRIP over the whole Q tensor
    kh = _heads(d["k"], h)                                         # K rows: reduction over head_dim
    k_hat = _fq_weight(kh.reshape(-1, hd), w_bits, group).reshape(kh.shape)
    p_hat = _softmax_causal(q_hat @ k_hat.transpose(0, 2, 1) / math.sqrt(hd), sink)
    if a_bits == 16:
        p_hat = p_hat.astype(np.float16).astype(np.float64)
    else:  # softmax output: 4-bit log2 quantizer whenever activations are quantized (the released
        # code's QAct on the softmax output, shawnricecake/agile-quant)
        codes, zero = log2_quantize(p_hat.astype(np.float32), bits=4)
        p_hat = log2_dequantize(codes, zero, dtype=np.float64)
    vt = _heads(d["v"], h).transpose(0, 2, 1)                      # V^T rows: reduction over tokens
    v_hat = _fq_weight(np.ascontiguousarray(vt.reshape(-1, vt.shape[2])), w_bits, group)
    v_hat = v_hat.reshape(vt.shape).transpose(0, 2, 1)
    return _nsr(p_hat @ v_hat, ref)


def _one_blas_thread():
    """Limit BLAS to one thread while filling the tables: these small products are
    much slower multi-threaded on a busy machine.  threadpoolctl is optional."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of scikit-learn, normally present
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _linear_nsr(group: str, a_bits: int, w_bits: int, group_size: int) -> float:
    _, x_eval, w = _linear_data(group)
    y = x_eval.astype(np.float64) @ w.astype(np.float64).T
    return _nsr(_act_cache(group, a_bits) @ _fq_weight(w, w_bits, group_size).T, y)


@lru_cache(maxsize=None)
def _group_table(group: str) -> dict[tuple[int, int, int], float]:
    """Every (a_bits, w_bits, group_size) NSR of one group, computed together."""
    fn = _attention_nsr if group == "attn" else (lambda a, w, g: _linear_nsr(group, a, w, g))
    with _one_blas_thread():
        return {(a, w, g): fn(a, w, g) for a in BITS for w in BITS for g in GROUP_SIZES}


def group_nsr(group: str, a_bits: int, w_bits: int, group_size: int) -> float:
    """Output noise-to-signal ratio of one layer group's quantized GEMM (see module doc).

    Args:
        group: one of :data:`GROUPS`.
        a_bits: activation (first operand) bits, 4, 8 or 16 (16 = float16).
        w_bits: weight (second operand: weights, or K/V for ``attn``) bits.
        group_size: quantization group along the reduction axis.

    Deterministic (seeded).  The first call for a group computes all of its
    45 entries (about 0.3 s) and caches them.
    """
    if group not in GROUPS:
        raise ValueError(f"group={group!r} is unknown; allowed: {', '.join(GROUPS)}")
    key = (_check_bits("a_bits", a_bits), _check_bits("w_bits", w_bits), _check_group(group_size))
    return _group_table(group)[key]


@lru_cache(maxsize=None)
def prune_nsr_table() -> np.ndarray:
    """``table[c]``: pruning error when ``c`` of ``T`` tokens survive (``c = 1..T``;
    ``table[0]`` is unused, ``table[T] = 0``).

    Error = (sum over survivors of ||o' - o||^2 + sum over pruned tokens of ||o||^2)
    / sum over all tokens of ||o||^2, where ``o`` is the unpruned attention
    output and ``o'`` the output over the surviving keys: a pruned token's output
    counts as lost (conservative).
    """
    h, t, hd = int(SYNTH["prune_heads"]), int(SYNTH["prune_tokens"]), int(SYNTH["prune_head_dim"])
    rng = _rng(200)
    q = rng.standard_normal((h, t, hd))
    k = rng.standard_normal((h, t, hd))
    v = rng.standard_normal((h, t, hd))
    key_bias = rng.standard_normal(t)                        # some tokens matter more than others
    s = q @ k.transpose(0, 2, 1) / math.sqrt(hd) + key_bias
    p = _softmax_causal(s, float(SYNTH["sink_logit"]))
    out = p @ v
    score = token_importance(p)
    table = np.zeros(t + 1)
    with _one_blas_thread():
        table[1:t] = [_prune_entry(s, v, out, score, t, c) for c in range(1, t)]
    return table


def _prune_entry(s: np.ndarray, v: np.ndarray, out: np.ndarray, score: np.ndarray, t: int, c: int) -> float:
    kept, pruned = select_tokens(score, t - c)
    pk = _softmax_causal(s[:, kept][:, :, kept], float(SYNTH["sink_logit"]))
    lost = float(np.sum(out[:, pruned] ** 2))
    return (float(np.sum((pk @ v[:, kept] - out[:, kept]) ** 2)) + lost) / float(np.sum(out ** 2))


def prune_nsr(kept_frac: float) -> float:
    """NSR of the surviving tokens when a fraction ``kept_frac`` in (0, 1] of the
    tokens remain (linear interpolation in :func:`prune_nsr_table`)."""
    if not 0.0 < kept_frac <= 1.0:
        raise ValueError(f"kept_frac={kept_frac!r} is outside the allowed range (0, 1]")
    table = prune_nsr_table()
    t = len(table) - 1
    x = kept_frac * t
    lo = max(1, min(t - 1, int(math.floor(x))))
    hi = lo + 1
    if x <= 1:
        return float(table[1])
    return float(table[lo] + (table[hi] - table[lo]) * (x - lo))
