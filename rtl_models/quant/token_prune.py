"""Activation-guided token pruning of Agile-Quant (Shen et al., AAAI 2024).

The rules below follow the released code ``shawnricecake/agile-quant`` (its LLaMA
``modeling_llama.py`` and ``configuration_llama.py``), which fix the details the paper
leaves open.

* Importance (the released code's "method 2"): ``score(i) = sum_h P_h[i, 0]``,
  the attention token ``i`` pays to the first token, summed over heads in the
  attention dtype, heads added in order starting from zeros (as the repo does).
* One layer removes ``n_remove`` tokens with the smallest scores.  Token 0 (the
  start token) is never removed.  Tie rule (the repo's ``torch.topk`` leaves it
  unspecified): among equal scores the token with the *higher* index is removed
  first, i.e. earlier tokens are kept.
* Cascade: layers ``start_layer .. n_layers-1`` (0-based, ``m`` layers) each
  remove ``int(t * gamma)`` of their ``t`` incoming tokens (floor, as the
  repo's ``int(n * percent)``) with ``gamma = 1 - (1 - beta)**(1/m)``, so the last
  layer keeps about ``(1 - beta)`` of the tokens (at least that many, because
  of the floor; at most ``t - 1`` tokens are removed per layer).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._common import QuantError, check_int

__all__ = ["token_importance", "select_tokens", "prune_ratio", "kept_token_counts", "cascade_prune"]


def token_importance(attn: object) -> np.ndarray:
    """Importance ``sum_h attn[h, i, 0]`` of each token; ``attn`` is (H, T, T) probabilities."""
    arr = np.asarray(attn)
    if arr.dtype.kind != "f" or arr.ndim != 3 or arr.shape[1] != arr.shape[2] or 0 in arr.shape:
        raise QuantError(f"attn must be a float (heads, T, T) array, got dtype {arr.dtype} shape {arr.shape}")
    score = np.zeros(arr.shape[1], dtype=arr.dtype)
    for h in range(arr.shape[0]):
        score = score + arr[h, :, 0]
    return score


def select_tokens(score: object, n_remove: int) -> tuple[np.ndarray, np.ndarray]:
    """Split token positions into (kept, removed), both sorted ascending.

    Removes the ``n_remove`` lowest scores among positions ``1..T-1`` (position 0
    is always kept); ties remove the higher position first.
    """
    s = np.asarray(score)
    if s.ndim != 1 or s.size == 0:
        raise QuantError(f"score must be a non-empty 1-D array, got shape {s.shape}")
    n_remove = check_int("n_remove", n_remove, 0, s.size - 1)
    idx = np.arange(1, s.size)
    order = idx[np.lexsort((-idx, s[1:]))]  # primary: score ascending; ties: index descending
    removed = np.sort(order[:n_remove])
    kept = np.setdiff1d(np.arange(s.size), removed)
    return kept, removed


def _check_beta(beta: object) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating)) or not 0 <= beta < 1:
        raise QuantError(f"beta={beta!r} is outside the allowed range [0, 1)")
    return float(beta)


def _check_layers(n_layers: int, start_layer: int) -> tuple[int, int]:
    n_layers = check_int("n_layers", n_layers, 1)
    return n_layers, check_int("start_layer", start_layer, 0, n_layers - 1)


def prune_ratio(beta: float, n_pruned_layers: int) -> float:
    """Per-layer ratio ``gamma = 1 - (1 - beta)**(1/m)`` (float64), ``beta`` in [0, 1)."""
    beta = _check_beta(beta)
    m = check_int("n_pruned_layers", n_pruned_layers, 1)
    return 1.0 - (1.0 - beta) ** (1.0 / m)


def kept_token_counts(n_tokens: int, n_layers: int, start_layer: int, beta: float) -> list[int]:
    """Tokens alive after each layer (no attention needed; for latency models)."""
    n_tokens = check_int("n_tokens", n_tokens, 1)
    n_layers, start_layer = _check_layers(n_layers, start_layer)
    gamma = prune_ratio(beta, n_layers - start_layer)
    counts, t = [], n_tokens
    for layer in range(n_layers):
        if layer >= start_layer:
            t -= min(int(t * gamma), t - 1)
        counts.append(t)
    return counts


def cascade_prune(attention: Callable[[int, np.ndarray], np.ndarray], n_tokens: int, n_layers: int,
                  start_layer: int, beta: float) -> list[np.ndarray]:
    """Run the pruning cascade and return the kept original positions after each layer.

    Args:
        attention: ``attention(layer, kept)`` returns the (H, t, t) softmax
            probabilities of ``layer`` over the ``t = len(kept)`` tokens still
            alive (``kept`` are original positions, ascending; row/column j is
            token ``kept[j]``).  It is called only for pruning layers.
        n_tokens: sequence length entering layer 0.
        n_layers: number of layers; pruning runs at ``start_layer .. n_layers-1``.
        start_layer: first pruning layer (0-based).
        beta: final pruning ratio in [0, 1).

    Returns:
        ``n_layers`` int64 arrays; entry ``l`` holds the original positions of
        the tokens that leave layer ``l`` (``len`` = :func:`kept_token_counts`).
    """
    counts = kept_token_counts(n_tokens, n_layers, start_layer, beta)
    kept = np.arange(n_tokens, dtype=np.int64)
    out = []
    for layer in range(n_layers):
        if layer >= start_layer:
            t = kept.size
            probs = np.asarray(attention(layer, kept.copy()))
            if probs.ndim != 3 or probs.shape[1:] != (t, t):
                raise QuantError(f"attention({layer}, ...) returned shape {probs.shape}; expected (H, {t}, {t})")
            local_kept, _ = select_tokens(token_importance(probs), t - counts[layer])
            kept = kept[local_kept]
        out.append(kept.copy())
    return out
