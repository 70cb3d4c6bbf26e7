"""Workload nouns: layers and layer lists.  Workloads are data, not code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping

import numpy as np

__all__ = ["Gemm", "Elementwise", "MoE", "Layer", "Workload", "GEMM_KINDS"]

GEMM_KINDS = ("linear", "attn_qk", "attn_v", "lm_head", "expert", "gate", "embed", "conv")


def _positive(name: str, **vals: int) -> None:
    for k, v in vals.items():
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: {k}={v!r} must be a positive integer")


@dataclass(frozen=True)
class Gemm:
    """One GEMM ``(m x k) @ (k x n)``, repeated ``count`` times.

    ``m`` is the token/row dimension (activations), ``k`` the reduction, ``n``
    the output channels (weights are ``k x n``).  In SCALE-Sim's topology order
    this is the row ``M, N, K``.  ``a_bits``/``w_bits`` are operand widths; for
    attention GEMMs both operands are activations and ``w_bits`` is the width of
    the second operand (K or V cache).
    """

    name: str
    m: int
    k: int
    n: int
    count: int = 1
    a_bits: int = 16
    w_bits: int = 16
    kind: str = "linear"

    def __post_init__(self) -> None:
        _positive(f"Gemm {self.name!r}", m=self.m, k=self.k, n=self.n, count=self.count)
        if self.kind not in GEMM_KINDS:
            raise ValueError(f"Gemm {self.name!r}: kind={self.kind!r}; allowed: {', '.join(GEMM_KINDS)}")

    @property
    def macs(self) -> int:
        """Multiply-accumulates of all ``count`` repetitions."""
        return self.m * self.k * self.n * self.count


@dataclass(frozen=True)
class Elementwise:
    """An elementwise/normalisation op over ``elements`` values (per repetition)."""

    name: str
    op: str
    elements: int
    count: int = 1
    bits: int = 16

    def __post_init__(self) -> None:
        _positive(f"Elementwise {self.name!r}", elements=self.elements, count=self.count)

    @property
    def macs(self) -> int:
        return 0


@dataclass(frozen=True)
class MoE:
    """A mixture-of-experts FFN: ``tokens`` tokens, each routed to ``top_k`` of
    ``n_experts`` experts of shape ``d_model -> d_hidden -> d_model``.

    Routing (which tokens go to which expert) is data supplied separately,
    e.g. by :mod:`archgym.workloads.routing`.
    """

    name: str
    tokens: int
    d_model: int
    d_hidden: int
    n_experts: int
    top_k: int
    count: int = 1
    a_bits: int = 16
    w_bits: int = 16

    def __post_init__(self) -> None:
        _positive(
            f"MoE {self.name!r}", tokens=self.tokens, d_model=self.d_model, d_hidden=self.d_hidden,
            n_experts=self.n_experts, top_k=self.top_k, count=self.count,
        )
        if self.top_k > self.n_experts:
            raise ValueError(f"MoE {self.name!r}: top_k={self.top_k} exceeds n_experts={self.n_experts}")

    @property
    def macs(self) -> int:
        """Expert MACs plus the gate (d_model x n_experts per token)."""
        per_tok = self.top_k * 2 * self.d_model * self.d_hidden + self.d_model * self.n_experts
        return per_tok * self.tokens * self.count


Layer = Gemm | Elementwise | MoE


@dataclass(frozen=True)
class Workload:
    """A named list of layers (each with a repetition count), plus metadata.

    ``phase`` is ``"prefill"``, ``"decode"`` or ``"inference"``; ``meta`` holds
    e.g. ``{"model": "llama-2-7b", "seq_len": 256}``.
    """

    name: str
    layers: tuple[Layer, ...]
    phase: str = "inference"
    meta: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ValueError(f"workload {self.name!r} has no layers")

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def gemms(self) -> tuple[Gemm, ...]:
        """The GEMM layers, in order."""
        return tuple(l for l in self.layers if isinstance(l, Gemm))

    @property
    def macs(self) -> int:
        """Total multiply-accumulates (GEMMs and MoE experts)."""
        return sum(l.macs for l in self.layers)

    def gemm_array(self) -> np.ndarray:
        """GEMMs as an ``int64`` array of rows ``(m, k, n, count)`` for batched kernels."""
        g = self.gemms()
        if not g:
            return np.zeros((0, 4), dtype=np.int64)
        return np.array([(x.m, x.k, x.n, x.count) for x in g], dtype=np.int64)

    def describe(self) -> str:
        """One line per layer."""
        lines = [f"{self.name} ({self.phase}): {len(self.layers)} layer kinds, {self.macs:,} MACs"]
        for l in self.layers:
            if isinstance(l, Gemm):
                lines.append(f"  {l.name:<14} gemm {l.m}x{l.k}x{l.n} x{l.count} [{l.kind}]")
            elif isinstance(l, MoE):
                lines.append(
                    f"  {l.name:<14} moe tokens={l.tokens} {l.d_model}->{l.d_hidden} "
                    f"N={l.n_experts} k={l.top_k} x{l.count}"
                )
            else:
                lines.append(f"  {l.name:<14} {l.op} {l.elements} x{l.count}")
        return "\n".join(lines)
