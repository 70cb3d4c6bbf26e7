"""MoE routing as data: which experts each token visits, per MoE layer.

A :class:`Routing` holds, for ``L`` MoE layers and ``T`` tokens, the ``k``
experts each token was routed to (descending score; ties to the lower expert
index) and their gate scores (the raw top-k softmax probabilities, not
renormalised), as the gate of M3ViT (Liang et al., NeurIPS 2022, eqs. 2-4)
runs at inference: VITA-Group/M3ViT ``models/gate_funs/noisy_gate_vmoe.py``
at d448b6f.  Performance models only need the expert ids (queue lengths,
cache misses).

Three sources:

* :func:`generate_routing`: a seeded synthetic router with controllable skew,
  for when no trained checkpoint exists (none is public for M3ViT:
  VITA-Group/M3ViT issues #1, #2).  ``"uniform"``: every expert equally
  likely (what a load-balancing loss drives towards); ``"zipf"``: expert
  popularity proportional to ``1 / rank**zipf_s``; ``"task"``: each task's
  gate prefers its own subset of experts (multi-gate M3ViT: one router per
  task, M3ViT §3.1).
* :func:`routing_from_weights`: a gate with given weights applied to given
  tokens, in numpy (softmax -> top-k).
* :func:`routing_from_torch`: the same through a torch gate module; a
  validation path (torch is imported inside the function only).

Everything here is deterministic: the only randomness is
``numpy.random.default_rng`` seeded from ``(seed, task)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["Routing", "SKEWS", "generate_routing", "routing_from_weights", "routing_from_torch"]

SKEWS = ("uniform", "zipf", "task")


def _pos_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name}={v!r} must be a positive integer")
    return int(v)


def _check_topk(top_k: int, n_experts: int) -> None:
    if top_k > n_experts:
        raise ValueError(f"top_k={top_k} exceeds n_experts={n_experts}; allowed top_k: 1..{n_experts}")


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Routing:
    """Per-layer, per-token expert choices of a top-k MoE router.

    Attributes:
        experts: ``int64 [L, T, k]`` chosen experts, descending score, ties to
            the lower expert index; distinct within a token.
        scores: ``float64 [L, T, k]`` gate scores of those experts.
        n_experts: number of experts ``N`` (ids are ``0..N-1``).
        meta: how the routing was made (skew, seed, task, ...), for the record.

    Arrays are read-only.  Build one with :func:`generate_routing`,
    :func:`routing_from_weights`, :func:`routing_from_torch`, or combine
    layers with :meth:`stack`.
    """

    experts: np.ndarray
    scores: np.ndarray
    n_experts: int
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = _pos_int("n_experts", self.n_experts)
        e = np.asarray(self.experts)
        s = np.asarray(self.scores, dtype=np.float64)
        if e.ndim != 3 or e.shape[0] < 1 or e.shape[1] < 1 or e.shape[2] < 1:
            raise ValueError(f"experts has shape {e.shape}; expected [layers, tokens, top_k], each >= 1")
        if s.shape != e.shape:
            raise ValueError(f"scores shape {s.shape} differs from experts shape {e.shape}")
        if not np.issubdtype(e.dtype, np.integer):
            raise ValueError(f"experts must be integers, got dtype {e.dtype}")
        _check_topk(e.shape[2], n)
        if e.min() < 0 or e.max() >= n:
            raise ValueError(f"expert ids must be in 0..{n - 1}; found {int(e.min())}..{int(e.max())}")
        srt = np.sort(e, axis=2)
        if e.shape[2] > 1 and np.any(srt[..., 1:] == srt[..., :-1]):
            raise ValueError("a token is routed to the same expert twice; expert ids must be distinct per token")
        object.__setattr__(self, "experts", _readonly(e.astype(np.int64, copy=False)))
        object.__setattr__(self, "scores", _readonly(s))
        object.__setattr__(self, "n_experts", n)
        object.__setattr__(self, "meta", dict(self.meta))

    @property
    def n_layers(self) -> int:
        """Number of MoE layers ``L``."""
        return self.experts.shape[0]

    @property
    def tokens(self) -> int:
        """Tokens per layer ``T``."""
        return self.experts.shape[1]

    @property
    def top_k(self) -> int:
        """Experts per token ``k``."""
        return self.experts.shape[2]

    def queue_lengths(self) -> np.ndarray:
        """``int64 [L, N]``: tokens routed to each expert (each row sums to ``T * k``)."""
        cached = self.__dict__.get("_qlen")
        if cached is None:
            L, n = self.n_layers, self.n_experts
            flat = (self.experts + (np.arange(L) * n)[:, None, None]).reshape(-1)
            cached = _readonly(np.bincount(flat, minlength=L * n).reshape(L, n).astype(np.int64))
            object.__setattr__(self, "_qlen", cached)
        return cached

    def queues(self, layer: int) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """Per-expert queues of one layer: ``(token_indices, scores)``, each a
        tuple of ``N`` arrays with tokens in ascending order (Edge-MoE's
        ``write_gate_results``)."""
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer={layer} out of range; allowed 0..{self.n_layers - 1}")
        e = self.experts[layer].reshape(-1)
        tok = np.repeat(np.arange(self.tokens, dtype=np.int64), self.top_k)
        sc = self.scores[layer].reshape(-1)
        order = np.argsort(e, kind="stable")
        bounds = np.searchsorted(e[order], np.arange(self.n_experts + 1))
        q = tuple(tok[order[bounds[i]:bounds[i + 1]]] for i in range(self.n_experts))
        s = tuple(sc[order[bounds[i]:bounds[i + 1]]] for i in range(self.n_experts))
        return q, s

    @classmethod
    def stack(cls, layers: Sequence["Routing"]) -> "Routing":
        """Concatenate single- or multi-layer routings (same T, k, N) along the layer axis."""
        if not layers:
            raise ValueError("Routing.stack needs at least one routing")
        n = layers[0].n_experts
        for r in layers:
            if (r.n_experts, r.tokens, r.top_k) != (n, layers[0].tokens, layers[0].top_k):
                raise ValueError(
                    f"cannot stack routings with (N, T, k) = {(r.n_experts, r.tokens, r.top_k)} and "
                    f"{(n, layers[0].tokens, layers[0].top_k)}"
                )
        return cls(
            np.concatenate([r.experts for r in layers]), np.concatenate([r.scores for r in layers]), n,
            {"source": "stack", "parts": [dict(r.meta) for r in layers]},
        )


def _topk_desc(p: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k along the last axis, descending, ties to the lower index."""
    idx = np.argsort(-p, axis=-1, kind="stable")[..., :k]
    return idx.astype(np.int64), np.take_along_axis(p, idx, axis=-1)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    ez = np.exp(z)
    return ez / ez.sum(axis=-1, keepdims=True)


def generate_routing(
    tokens: int, n_experts: int, top_k: int, n_layers: int, *, skew: str = "uniform",
    zipf_s: float = 1.0, task: int = 0, n_tasks: int = 1, task_strength: float = 3.0,
    seed: int = 0,
) -> Routing:
    """Synthetic top-k routing with controllable skew (no checkpoint needed).

    Every token draws Gumbel-perturbed logits ``prior[layer, e] + G`` with
    ``G ~ Gumbel(0, 1)`` i.i.d.; its experts are the top-k logits (Gumbel-top-k
    = sampling ``k`` experts without replacement with probabilities
    proportional to ``exp(prior)``) and its scores the softmax of the logits
    at those experts.  The prior sets the skew:

    * ``"uniform"``: ``prior = 0``: every k-subset equally likely.
    * ``"zipf"``: expert popularity ``~ 1 / rank**zipf_s`` with a random rank
      order per layer (``zipf_s = 0`` is uniform).
    * ``"task"``: task ``task`` of ``n_tasks`` (multi-gate M3ViT) prefers a
      block of ``max(top_k, n_experts // n_tasks)`` experts, offset by a random
      shift per layer, with logit bonus ``task_strength`` (0 is uniform).

    Args:
        tokens, n_experts, top_k, n_layers: positive ints, ``top_k <= n_experts``.
        skew: one of :data:`SKEWS`.
        zipf_s: Zipf exponent (>= 0), used by ``"zipf"``.
        task, n_tasks: task index in ``0..n_tasks-1``.  Each task's gate is a
            different router, so the task also selects the random stream.
        task_strength: logit bonus (>= 0) of the preferred experts, ``"task"`` only.
        seed: seed of ``numpy.random.default_rng`` (with ``task``).
    """
    T = _pos_int("tokens", tokens)
    N = _pos_int("n_experts", n_experts)
    k = _pos_int("top_k", top_k)
    L = _pos_int("n_layers", n_layers)
    _check_topk(k, N)
    if skew not in SKEWS:
        raise ValueError(f"skew={skew!r}; allowed: {', '.join(SKEWS)}")
    nt = _pos_int("n_tasks", n_tasks)
    if isinstance(task, bool) or not isinstance(task, (int, np.integer)) or not 0 <= task < nt:
        raise ValueError(f"task={task!r} out of range; allowed 0..{nt - 1}")
    if not (np.isfinite(zipf_s) and zipf_s >= 0):
        raise ValueError(f"zipf_s={zipf_s!r} must be a finite number >= 0")
    if not (np.isfinite(task_strength) and task_strength >= 0):
        raise ValueError(f"task_strength={task_strength!r} must be a finite number >= 0")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer")
    rng = np.random.default_rng([int(seed), int(task)])
    prior = np.zeros((L, N))
    if skew == "zipf":
        for l in range(L):
            prior[l, rng.permutation(N)] = -zipf_s * np.log(np.arange(1, N + 1))
    elif skew == "task":
        width = max(k, N // nt)
        for l in range(L):
            shift = int(rng.integers(N))
            pref = (shift + int(task) * width + np.arange(width)) % N
            prior[l, pref] = task_strength
    logits = prior[:, None, :] + rng.gumbel(size=(L, T, N))
    experts, _ = _topk_desc(logits, k)
    scores = np.take_along_axis(_softmax(logits), experts, axis=-1)
    meta = dict(source="generate_routing", skew=skew, zipf_s=float(zipf_s), task=int(task), n_tasks=nt,
                task_strength=float(task_strength), seed=int(seed))
    return Routing(experts, scores, N, meta)


def routing_from_weights(x: np.ndarray, gate_w: np.ndarray, top_k: int) -> Routing:
    """Routing of tokens ``x`` through a linear gate with weights ``gate_w`` (float64 numpy).

    ``p = softmax(x @ gate_w)``; each token takes the ``top_k`` largest ``p``
    (descending, ties to the lower expert index) and scores them with the raw
    probabilities (M3ViT's ``noisy_gate_vmoe.py`` at inference, noise off).

    Args:
        x: ``[T, d]`` tokens (one layer) or ``[L, T, d]`` (one per layer).
        gate_w: ``[d, N]`` (one layer) or ``[L, d, N]``; M3ViT's ``w_gate``
            layout (a ``torch.nn.Linear`` stores the transpose).
        top_k: experts per token, ``1 <= top_k <= N``.
    """
    xa = np.asarray(x, dtype=np.float64)
    wa = np.asarray(gate_w, dtype=np.float64)
    if xa.ndim == 2:
        xa = xa[None]
    if wa.ndim == 2:
        wa = wa[None]
    if xa.ndim != 3 or wa.ndim != 3:
        raise ValueError(f"x has shape {np.shape(x)} and gate_w {np.shape(gate_w)}; expected [T, d] and [d, N] "
                         "(or with a leading layer axis)")
    if xa.shape[0] != wa.shape[0] or xa.shape[2] != wa.shape[1]:
        raise ValueError(f"x {xa.shape} and gate_w {wa.shape} do not match: need [L, T, d] and [L, d, N]")
    k = _pos_int("top_k", top_k)
    _check_topk(k, wa.shape[2])
    if xa.shape[1] < 1:
        raise ValueError("x has no tokens")
    p = _softmax(np.matmul(xa, wa))
    experts, scores = _topk_desc(p, k)
    return Routing(experts, scores, wa.shape[2], {"source": "routing_from_weights"})


def routing_from_torch(gate: Any, x: Any, *, top_k: int | None = None, task: int | None = None) -> Routing:
    """Routing from running a torch gate module on tokens ``x`` (validation path).

    Imports torch inside this function only; simulators never call it.

    Args:
        gate: an M3ViT-style gate with a ``w_gate`` parameter ``[d, N]`` (and a
            ``top_k`` attribute), a ``torch.nn.Linear(d, N)``, any module
            returning ``[T, N]`` logits, or a ``ModuleList`` of those (multi-gate;
            pick one with ``task``).
        x: ``[T, d]`` tokens (tensor or array), the gate input (M3ViT: ``norm2(x)``).
        top_k: experts per token; defaults to ``gate.top_k``.
        task: index into a multi-gate ``ModuleList``.

    Returns the one-layer :class:`Routing` of ``torch.topk(torch.softmax(logits, -1), k)``.
    """
    import torch

    if isinstance(gate, (torch.nn.ModuleList, list, tuple)):
        if task is None or not 0 <= task < len(gate):
            raise ValueError(f"task={task!r}: a multi-gate module needs task in 0..{len(gate) - 1}")
        gate = gate[task]
    k = top_k if top_k is not None else getattr(gate, "top_k", None)
    if k is None:
        raise ValueError("top_k is not given and the gate has no top_k attribute")
    xt = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if xt.ndim != 2:
        raise ValueError(f"x has shape {tuple(xt.shape)}; expected [T, d]")
    with torch.no_grad():
        w = getattr(gate, "w_gate", None)
        logits = xt.to(w.dtype) @ w if isinstance(w, torch.Tensor) else gate(xt)
        n = logits.shape[-1]
        k = _pos_int("top_k", k)
        _check_topk(k, n)
        vals, idx = torch.topk(torch.softmax(logits, dim=-1), k, dim=-1)
    return Routing(idx.cpu().numpy()[None], vals.double().cpu().numpy()[None], n, {"source": "routing_from_torch"})
