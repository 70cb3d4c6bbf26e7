"""Workload nouns: layers and layer lists.  Workloads are data, not code.

Layer types:

* :class:`Gemm`: ``(m x k) @ (k x n)`` repeated ``count`` times.
* :class:`Conv`: a 2-D convolution with its own fields (input, filter, channels,
  filters, strides, output size); each simulator lowers it itself.  The shared
  lowering :meth:`Conv.as_gemm` is im2col as SCALE-Sim 3 computes it (one row
  per output pixel, one column per filter tap and channel).
* :class:`MoE`: a mixture-of-experts FFN (router + experts), with the observed
  tokens per expert when known (e.g. traced from a forward pass).
* :class:`Elementwise`: normalisations, activations, softmax (no MACs).

A :class:`Workload` is a named tuple of layers plus where it came from
(``source``, the canonical text a user can pass back to ``--workload``), the
:class:`~archgym.workloads.zoo.ModelConfig` it was built from (when there is
one), and its parameters (batch, sequence and context lengths, generated
tokens) in ``params``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np

__all__ = ["Gemm", "Conv", "Elementwise", "MoE", "Layer", "Workload", "GEMM_KINDS", "WorkloadError"]

GEMM_KINDS = ("linear", "attn_qk", "attn_v", "lm_head", "expert", "gate", "embed", "conv")


class WorkloadError(ValueError):
    """A workload that cannot be built, read or priced (the message names the file, field and value)."""


def _positive(name: str, **vals: int) -> None:
    for k, v in vals.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise WorkloadError(f"{name}: {k}={v!r} must be a positive integer")


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
        _positive(f"Gemm {self.name!r}", m=self.m, k=self.k, n=self.n, count=self.count,
                  a_bits=self.a_bits, w_bits=self.w_bits)
        if self.kind not in GEMM_KINDS:
            raise WorkloadError(f"Gemm {self.name!r}: kind={self.kind!r}; allowed: {', '.join(GEMM_KINDS)}")

    @property
    def macs(self) -> int:
        """Multiply-accumulates of all ``count`` repetitions."""
        return self.m * self.k * self.n * self.count


@dataclass(frozen=True)
class Conv:
    """A 2-D convolution over a ``in_h x in_w x channels`` input (already padded).

    ``filter_h x filter_w`` taps, ``num_filters`` output channels, strides
    ``stride_h``/``stride_w``, ``groups`` (depthwise = ``channels``), ``batch``
    images, repeated ``count`` times.  ``out_h``/``out_w`` are the output size
    as the source computed it (SCALE-Sim and torch round differently when the
    stride does not divide ``in - filter``); 0 means "compute it" with torch's
    rule ``floor((in - filter) / stride) + 1``.  Padding is part of ``in_h`` /
    ``in_w`` (SCALE-Sim's convention: a padded input is a bigger input).
    """

    name: str
    in_h: int
    in_w: int
    filter_h: int
    filter_w: int
    channels: int
    num_filters: int
    stride_h: int = 1
    stride_w: int = 1
    out_h: int = 0
    out_w: int = 0
    groups: int = 1
    batch: int = 1
    count: int = 1
    a_bits: int = 16
    w_bits: int = 16

    def __post_init__(self) -> None:
        where = f"Conv {self.name!r}"
        _positive(where, in_h=self.in_h, in_w=self.in_w, filter_h=self.filter_h, filter_w=self.filter_w,
                  channels=self.channels, num_filters=self.num_filters, stride_h=self.stride_h,
                  stride_w=self.stride_w, groups=self.groups, batch=self.batch, count=self.count,
                  a_bits=self.a_bits, w_bits=self.w_bits)
        if self.filter_h > self.in_h or self.filter_w > self.in_w:
            raise WorkloadError(f"{where}: filter {self.filter_h}x{self.filter_w} is larger than its input "
                                f"{self.in_h}x{self.in_w}")
        if self.channels % self.groups or self.num_filters % self.groups:
            raise WorkloadError(f"{where}: groups={self.groups} must divide channels={self.channels} and "
                                f"num_filters={self.num_filters}")
        if self.out_h == 0:
            object.__setattr__(self, "out_h", (self.in_h - self.filter_h) // self.stride_h + 1)
        if self.out_w == 0:
            object.__setattr__(self, "out_w", (self.in_w - self.filter_w) // self.stride_w + 1)
        _positive(where, out_h=self.out_h, out_w=self.out_w)

    def as_gemm(self) -> Gemm:
        """im2col lowering (SCALE-Sim 3's operand matrices): ``M = batch * out_h * out_w`` output
        pixels, ``K = filter_h * filter_w * channels / groups``, ``N = num_filters / groups``,
        repeated ``count * groups`` times."""
        return Gemm(self.name, self.batch * self.out_h * self.out_w,
                    self.filter_h * self.filter_w * (self.channels // self.groups), self.num_filters // self.groups,
                    self.count * self.groups, self.a_bits, self.w_bits, "conv")

    @property
    def macs(self) -> int:
        return self.as_gemm().macs


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
    ``n_experts`` experts of shape ``d_model -> d_hidden -> d_model`` (``glu``:
    gated, three matrices per expert as in Mixtral's w1/w3/w2), plus the router
    (``d_model x n_experts`` per token).

    ``expert_tokens`` (optional): tokens each expert received, e.g. recorded by
    :func:`archgym.workloads.from_torch`; ``None`` means unknown (lowering then
    assumes a balanced router).  Per-token routing for the M3ViT model is data
    supplied separately (:mod:`archgym.workloads.routing`).
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
    glu: bool = False
    expert_tokens: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        where = f"MoE {self.name!r}"
        _positive(where, tokens=self.tokens, d_model=self.d_model, d_hidden=self.d_hidden,
                  n_experts=self.n_experts, top_k=self.top_k, count=self.count)
        if self.top_k > self.n_experts:
            raise WorkloadError(f"{where}: top_k={self.top_k} exceeds n_experts={self.n_experts}")
        if self.expert_tokens is not None:
            et = tuple(int(t) for t in self.expert_tokens)
            if len(et) != self.n_experts or min(et) < 0 or sum(et) != self.tokens * self.top_k:
                raise WorkloadError(f"{where}: expert_tokens must be {self.n_experts} counts >= 0 summing to "
                                    f"tokens*top_k = {self.tokens * self.top_k}, got {et}")
            object.__setattr__(self, "expert_tokens", et)

    @property
    def matrices(self) -> int:
        """Weight matrices per expert (3 when gated, else 2)."""
        return 3 if self.glu else 2

    @property
    def macs(self) -> int:
        """Expert MACs plus the gate (d_model x n_experts per token)."""
        per_tok = self.top_k * self.matrices * self.d_model * self.d_hidden + self.d_model * self.n_experts
        return per_tok * self.tokens * self.count

    def tokens_per_expert(self) -> tuple[int, ...]:
        """Observed tokens per expert, or a balanced split of ``tokens * top_k`` (the first
        ``tokens*top_k mod n_experts`` experts get one more) when the routing is unknown."""
        if self.expert_tokens is not None:
            return self.expert_tokens
        q, r = divmod(self.tokens * self.top_k, self.n_experts)
        return tuple(q + (1 if e < r else 0) for e in range(self.n_experts))

    def as_gemms(self) -> tuple[Gemm, ...]:
        """The router and the experts as GEMMs (experts with no tokens are skipped; experts
        with equal token counts are merged into one GEMM with a count)."""
        lin = dict(a_bits=self.a_bits, w_bits=self.w_bits)
        out = [Gemm(f"{self.name}.gate", self.tokens, self.d_model, self.n_experts, self.count, kind="gate", **lin)]
        groups: dict[int, int] = {}
        for t in self.tokens_per_expert():
            if t:
                groups[t] = groups.get(t, 0) + 1
        for t, n in sorted(groups.items(), reverse=True):
            tag = f"{self.name}.experts[t={t}]"
            up = 2 if self.glu else 1
            out.append(Gemm(f"{tag}.up", t, self.d_model, self.d_hidden, self.count * n * up, kind="expert", **lin))
            out.append(Gemm(f"{tag}.down", t, self.d_hidden, self.d_model, self.count * n, kind="expert", **lin))
        return tuple(out)


Layer = Gemm | Conv | Elementwise | MoE


@dataclass(frozen=True)
class Workload:
    """A named list of layers (each with a repetition count), plus metadata.

    ``phase`` is ``"prefill"``, ``"decode"``, ``"generative"`` or
    ``"inference"``; ``params`` holds the workload parameters it was built
    with (``batch``, ``seq_len``, ``context_len``, ``gen_tokens``, ...);
    ``model`` is the :class:`~archgym.workloads.zoo.ModelConfig` it came from
    (``None`` for a plain layer list: a topology file, a traced module, an
    ONNX graph); ``source`` is the canonical text that loads it again
    (:func:`archgym.workloads.load_workload`), with a content hash for files.
    A workload with no layers is an opaque name that only its own simulator
    understands (a simulator that names its own workloads).
    """

    name: str
    layers: tuple[Layer, ...]
    phase: str = "inference"
    meta: Mapping[str, object] = field(default_factory=dict)
    model: Any = None
    params: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "params", dict(self.params))
        names = [l.name for l in self.layers]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise WorkloadError(f"workload {self.name!r}: layer name {dup!r} appears twice; layer names must be unique")
        if not self.source:
            object.__setattr__(self, "source", self.name)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def key(self) -> str:
        """Identity of the workload for caches and the run log: ``source`` plus a hash of
        the layers (two workloads with the same key price the same)."""
        k = self.__dict__.get("_key")
        if k is None:
            h = hashlib.sha256(repr((self.phase, self.layers)).encode()).hexdigest()[:12]
            k = f"{self.source}#{h}"
            object.__setattr__(self, "_key", k)
        return k

    @property
    def spec(self) -> str:
        """``source`` with every resolved size parameter spelled out (what the run log
        records), e.g. ``"llama-2-7b/prefill?seq_len=256"``."""
        from .loader import format_workload, parse_workload

        base, q = parse_workload(self.source)
        sizes = ("batch", "seq_len", "context_len", "gen_tokens")
        merged = {**q, **{k: v for k, v in self.params.items() if k in sizes and not (k == "batch" and v == 1)}}
        return format_workload(base, merged)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workload) and self.key == other.key

    def gemms(self) -> tuple[Gemm, ...]:
        """The GEMM layers, in order (convolutions and MoE blocks are not included; see
        :meth:`lowered`)."""
        return tuple(l for l in self.layers if isinstance(l, Gemm))

    def convs(self) -> tuple[Conv, ...]:
        """The convolution layers, in order."""
        return tuple(l for l in self.layers if isinstance(l, Conv))

    def moes(self) -> tuple[MoE, ...]:
        """The mixture-of-experts layers, in order."""
        return tuple(l for l in self.layers if isinstance(l, MoE))

    def lowered(self) -> tuple[tuple[str, tuple[Gemm, ...]], ...]:
        """Every MAC-carrying layer as GEMMs, in order: ``(layer name, gemms)`` pairs.  A
        GEMM is itself, a convolution its im2col GEMM (:meth:`Conv.as_gemm`), a MoE block
        its router and expert GEMMs (:meth:`MoE.as_gemms`); elementwise layers are skipped."""
        out = []
        for l in self.layers:
            if isinstance(l, Gemm):
                out.append((l.name, (l,)))
            elif isinstance(l, Conv):
                out.append((l.name, (l.as_gemm(),)))
            elif isinstance(l, MoE):
                out.append((l.name, l.as_gemms()))
        return tuple(out)

    @property
    def macs(self) -> int:
        """Total multiply-accumulates (GEMMs, convolutions and MoE blocks)."""
        return sum(l.macs for l in self.layers)

    def gemm_array(self) -> np.ndarray:
        """Every lowered GEMM as an ``int64`` array of rows ``(m, k, n, count)`` for batched
        kernels (same order as :meth:`lowered`, flattened; computed once, read-only)."""
        a = self.__dict__.get("_gemm_array")
        if a is None:
            g = [x for _, gs in self.lowered() for x in gs]
            a = np.array([(x.m, x.k, x.n, x.count) for x in g], dtype=np.int64).reshape(-1, 4)
            a.setflags(write=False)
            object.__setattr__(self, "_gemm_array", a)
        return a

    def describe(self) -> str:
        """One line per layer."""
        p = ", ".join(f"{k}={v}" for k, v in self.params.items())
        lines = [f"{self.source} ({self.phase}{'; ' + p if p else ''}): {len(self.layers)} layers, {self.macs:,} MACs"]
        for l in self.layers:
            if isinstance(l, Gemm):
                lines.append(f"  {l.name:<14} gemm {l.m}x{l.k}x{l.n} x{l.count} [{l.kind}]")
            elif isinstance(l, Conv):
                lines.append(
                    f"  {l.name:<14} conv {l.in_h}x{l.in_w}x{l.channels} * {l.filter_h}x{l.filter_w}x{l.num_filters}"
                    f" /{l.stride_h},{l.stride_w} -> {l.out_h}x{l.out_w}"
                    + (f" groups={l.groups}" if l.groups > 1 else "") + f" x{l.count}")
            elif isinstance(l, MoE):
                lines.append(
                    f"  {l.name:<14} moe tokens={l.tokens} {l.d_model}->{l.d_hidden} "
                    f"N={l.n_experts} k={l.top_k}{' glu' if l.glu else ''} x{l.count}"
                )
            else:
                lines.append(f"  {l.name:<14} {l.op} {l.elements} x{l.count}")
        return "\n".join(lines)
