"""Workload -> BitMoD layer table (rows ``(count, cout, cin, cin_i, tokens, is_attention)``).

Two conventions, chosen by what the workload is:

* **Decoder LLMs** (a :class:`~archgym.workloads.Workload` built from a decoder
  :class:`~archgym.workloads.ModelConfig`: the zoo's OPT/Phi/LLaMA/Yi models or a
  Hugging Face ``config.json`` read into the same ``ModelConfig``): every linear
  layer is one row with ``tokens`` = the GEMM's rows (batch x tokens), and the two
  attention matmuls of each block follow the HPCA'25 artifact (commit a902a09,
  ``bitmod_sim/pe_array.py``): with ``T`` query tokens of one sequence, ``h`` the
  hidden size and ``kv = kv_heads * head_dim``,

  ====== ============== ============== ======== ==============
  GEMM   cout           cin            cin_i    tokens
  ====== ============== ============== ======== ==============
  QK^T   T              h              kv       heads * T
  AV     heads * T      keys           kv       T
  ====== ============== ============== ======== ==============

  once per block, sequence and repetition (``count = L * batch * rep``).  This is
  the artifact's "one big matmul" treatment (it prices QK^T as if every head
  saw the whole hidden width); it is kept because it is what the paper's Fig. 7
  numbers were made with, so the zoo names reproduce them.  With
  ``attention="per_kv_head"`` the rows are the later artifact's (HEAD e445a5f)
  per-KV-head GEMMs with GQA query sharing: ``count = L * batch * rep * kv_heads``,
  QK^T ``(keys, head_dim, head_dim, q * T)``, AV ``(head_dim, keys, keys, q * T)``
  with ``q = heads / kv_heads``.  Batches follow the artifact's later version too:
  linear layers see ``batch x T`` tokens, each sequence has its own attention.

* **Everything else** (SCALE-Sim topologies, traced torch modules, ONNX graphs,
  ViT-MoE and MatMul-free zoo models): plain GEMMs.  ``Gemm(m, k, n, count)`` is
  the row ``(count, n, k, k, m)``: ``n`` output channels on the PE rows, ``m``
  tokens on the PE columns, ``k`` the reduction (weights ``k x n``).  A
  convolution is its im2col GEMM (:meth:`~archgym.workloads.Conv.as_gemm`), a MoE
  block its router and expert GEMMs (:meth:`~archgym.workloads.MoE.as_gemms`).
  Attention GEMMs (kind ``attn_qk``/``attn_v``) take activation operands: their
  second operand is read at the attention operand width, not the weight datatype.

The workload's own operand widths (``a_bits``/``w_bits``) are not used: BitMoD
runs FP16 activations against weights in the design's datatype.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from archgym.workloads import DECODER_FAMILIES, Conv, Gemm, MoE, Workload, WorkloadError

__all__ = ["LayerTable", "lower", "ATTENTION"]

ATTENTION = ("hpca", "per_kv_head")
_ATT_KINDS = ("attn_qk", "attn_v")


@dataclass(frozen=True)
class LayerTable:
    """A workload lowered for the BitMoD model.

    ``rows``: float64 ``(n, 6)`` artifact rows; ``group[r]``: index into ``names``
    of the workload layer row ``r`` belongs to (rows of one layer are contiguous);
    ``names``: the MAC-carrying layers (breakdown keys); ``reductions``:
    ``(layer name, k)`` of every weight GEMM (group-size feasibility);
    ``model``: the ModelConfig name (``None`` for a plain layer list);
    ``convention``: ``"decoder"`` or ``"gemm"``.
    """

    rows: np.ndarray
    group: np.ndarray
    names: tuple[str, ...]
    reductions: tuple[tuple[str, int], ...]
    model: str | None
    convention: str
    _indivisible: dict = field(default_factory=dict, compare=False, repr=False)

    def indivisible(self, group_size: int) -> tuple[str, int] | None:
        """The first ``(layer, k)`` whose reduction dim ``group_size`` does not divide, or ``None``."""
        hit = self._indivisible.get(group_size, 0)
        if hit == 0:
            hit = next(((n, k) for n, k in self.reductions if k % group_size), None)
            self._indivisible[group_size] = hit
        return hit


def _plain(g: Gemm) -> tuple:
    return (g.count, g.n, g.k, g.k, g.m, 1 if g.kind in _ATT_KINDS else 0)


def _decoder_attention(g: Gemm, cfg, attention: str, where: str) -> tuple:
    """One attention GEMM of a decoder workload in the artifact's convention (module docstring)."""
    if g.count % cfg.heads:
        raise WorkloadError(f"{where}: attention layer {g.name!r} has count {g.count}, not a multiple of "
                            f"heads={cfg.heads} (blocks x batch x heads)")
    n = g.count // cfg.heads  # blocks x sequences x repetitions
    T = g.m                   # query tokens of one sequence
    if attention == "hpca":
        if g.kind == "attn_qk":
            return (n, T, cfg.hidden, cfg.kv_dim, cfg.heads * T, 1)
        return (n, cfg.heads * T, g.k, cfg.kv_dim, T, 1)
    if cfg.heads % cfg.kv_heads:
        raise WorkloadError(f"{where}: heads={cfg.heads} is not a multiple of kv_heads={cfg.kv_heads}")
    q = cfg.heads // cfg.kv_heads
    hd = cfg.head_dim
    if g.kind == "attn_qk":
        keys = g.n
        return (n * cfg.kv_heads, keys, hd, hd, q * T, 1)
    keys = g.k
    return (n * cfg.kv_heads, hd, keys, keys, q * T, 1)


def lower(w: Workload, attention: str = "hpca") -> LayerTable:
    """Lower ``w`` to a :class:`LayerTable` (see the module docstring for the two conventions).

    Raises :class:`~archgym.workloads.WorkloadError` (one line) for a workload with no
    GEMM, convolution or MoE layer, or a decoder whose attention layers do not split
    into heads."""
    if attention not in ATTENTION:
        raise ValueError(f"attention={attention!r}; allowed: {', '.join(ATTENTION)}")
    cfg = w.model
    decoder = cfg is not None and getattr(cfg, "family", None) in DECODER_FAMILIES
    rows: list[tuple] = []
    group: list[int] = []
    names: list[str] = []
    reductions: list[tuple[str, int]] = []
    for layer in w.layers:
        if isinstance(layer, Gemm):
            gemms: tuple[Gemm, ...] = (layer,)
        elif isinstance(layer, Conv):
            gemms = (layer.as_gemm(),)
        elif isinstance(layer, MoE):
            gemms = layer.as_gemms()
        else:
            continue
        j = len(names)
        names.append(layer.name)
        for g in gemms:
            if g.kind in _ATT_KINDS:
                rows.append(_decoder_attention(g, cfg, attention, w.source) if decoder else _plain(g))
            else:
                rows.append(_plain(g))
                reductions.append((layer.name, g.k))
            group.append(j)
    if not rows:
        raise WorkloadError(f"bitmod cannot price workload {w.source!r}: it has no GEMM, convolution or MoE layer")
    r = np.array(rows, dtype=np.float64)
    gr = np.array(group, dtype=np.int64)
    r.setflags(write=False)
    gr.setflags(write=False)
    uniq: dict[int, str] = {}
    for n, k in reductions:
        uniq.setdefault(k, n)
    return LayerTable(r, gr, tuple(names), tuple((n, k) for k, n in uniq.items()),
                      cfg.name if cfg is not None else None, "decoder" if decoder else "gemm")
