"""The model zoo: public model configurations and the workloads built from them.

Every entry is the public configuration of the model (Hugging Face
``config.json`` or the paper/repository named in ``source``).  Layer lists are
derived from these fields by :func:`decoder_workload`, :func:`vit_moe_workload`
and :func:`hgrn_bit_workload`; no per-model layer list is written by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .layers import Elementwise, Gemm, MoE, Workload

__all__ = [
    "ModelConfig",
    "MODELS",
    "PHASES",
    "get_model",
    "workload",
    "workload_names",
    "decoder_workload",
    "vit_moe_workload",
    "hgrn_bit_workload",
]

PHASES = ("prefill", "decode")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters of one model (fields as in its public config).

    ``family``: ``"opt"`` (q,k,v,o + fc1/fc2, ReLU), ``"phi"`` (as OPT, GELU),
    ``"llama"`` (q + GQA k,v + o, SwiGLU gate/up/down), ``"vit-moe"`` (M3ViT
    ViT-S, MoE in odd blocks) or ``"hgrn-bit"`` (MatMul-free MLGRU + GLU).
    """

    name: str
    family: str
    n_layers: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    vocab: int
    source: str
    n_experts: int = 0
    top_k: int = 0
    expert_hidden: int = 0
    w_bits: int = 16
    tied_embeddings: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        """Width of the k and v projections (``kv_heads * head_dim``)."""
        return self.kv_heads * self.head_dim


def _mmfree_intermediate(d: int) -> int:
    # HGRNBitConfig: I = 256 * ceil(floor(d * 4 * 2 / 3) / 256)  (matmulfree.md §1.1)
    return 256 * math.ceil(math.floor(d * 4 * 2 / 3) / 256)


_HF = "Hugging Face config.json of "
MODELS: dict[str, ModelConfig] = {
    m.name: m
    for m in [
        ModelConfig("opt-125m", "opt", 12, 768, 3072, 12, 12, 50272, _HF + "facebook/opt-125m",
                    tied_embeddings=True),
        ModelConfig("opt-1.3b", "opt", 24, 2048, 8192, 32, 32, 50272, _HF + "facebook/opt-1.3b",
                    tied_embeddings=True),
        ModelConfig("opt-2.7b", "opt", 32, 2560, 10240, 32, 32, 50272, _HF + "facebook/opt-2.7b",
                    tied_embeddings=True),
        ModelConfig("phi-2", "phi", 32, 2560, 10240, 32, 32, 51200, _HF + "microsoft/phi-2"),
        ModelConfig("yi-6b", "llama", 32, 4096, 11008, 32, 4, 64000, _HF + "01-ai/Yi-6B"),
        ModelConfig("llama-7b", "llama", 32, 4096, 11008, 32, 32, 32000, "LLaMA-1 7B (Touvron et al. 2023, Table 2)"),
        ModelConfig("llama-2-7b", "llama", 32, 4096, 11008, 32, 32, 32000, _HF + "meta-llama/Llama-2-7b-hf"),
        ModelConfig("llama-2-13b", "llama", 40, 5120, 13824, 40, 40, 32000, _HF + "meta-llama/Llama-2-13b-hf"),
        ModelConfig("llama-3-8b", "llama", 32, 4096, 14336, 32, 8, 128256, _HF + "meta-llama/Meta-Llama-3-8B"),
        # M3ViT: ViT-S geometry with 12 heads, MoE in odd blocks, 16 experts top-4, expert hidden 384
        # (m3vit.md §1.1-1.2).  "vocab" is unused for a ViT.
        ModelConfig(
            "m3vit-vit-s", "vit-moe", 12, 384, 1536, 12, 12, 0, "VITA-Group/M3ViT configs (m3vit.md §1.1-1.2)",
            n_experts=16, top_k=4, expert_hidden=384,
        ),
        # MatMul-free LM (matmulfree.md §1.1): ternary weights, heads=1 MLGRU, vocab 32000.
        ModelConfig("mmfree-370m", "hgrn-bit", 24, 1024, _mmfree_intermediate(1024), 1, 1, 32000,
                    "ridger/MMfreeLM-370M (matmulfree.md §1.1)", w_bits=2),
        ModelConfig("mmfree-1.3b", "hgrn-bit", 24, 2048, _mmfree_intermediate(2048), 1, 1, 32000,
                    "ridger/MMfreeLM-1.3B (matmulfree.md §1.1)", w_bits=2),
        ModelConfig("mmfree-2.7b", "hgrn-bit", 32, 2560, _mmfree_intermediate(2560), 1, 1, 32000,
                    "ridger/MMfreeLM-2.7B (matmulfree.md §1.1)", w_bits=2),
        ModelConfig("mmfree-block-d512", "hgrn-bit", 1, 512, _mmfree_intermediate(512), 1, 1, 32000,
                    "the FPGA measurement point: one block at d=512 (matmulfree.md §7.1)", w_bits=2),
    ]
}

# Token counts of the M3ViT datasets (m3vit.md §1.1): patches + CLS.
VIT_TOKENS = {"pascal": 1025, "nyud": 1201}


def get_model(name: str) -> ModelConfig:
    """Look up a model by name; ``ValueError`` lists the known names."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}") from None


def decoder_workload(
    cfg: ModelConfig, phase: str, *, seq_len: int = 256, kv_len: int = 256, batch: int = 1,
    a_bits: int = 16, w_bits: int = 16, lm_head: bool = True,
) -> Workload:
    """Layer list of a decoder-only LLM for one phase.

    ``prefill`` processes ``seq_len`` tokens (attention over ``seq_len`` keys);
    ``decode`` is one generation step (1 token) attending over ``kv_len``
    cached keys.  Per block: q, k, v, o projections (k/v use ``kv_heads``), the
    FFN (fc1/fc2, or gate/up/down for the llama family), and per head the
    attention matmuls QK^T and AV.  ``lm_head`` runs on every token of the
    phase (as the BitMoD simulator counts it).
    """
    if cfg.family not in ("opt", "phi", "llama"):
        raise ValueError(f"decoder_workload: model {cfg.name!r} is a {cfg.family} model, not a decoder LLM")
    if phase not in PHASES:
        raise ValueError(f"phase={phase!r}; allowed: {', '.join(PHASES)}")
    t = seq_len * batch if phase == "prefill" else batch
    keys = seq_len if phase == "prefill" else kv_len
    L, h, hd = cfg.n_layers, cfg.hidden, cfg.head_dim
    lin = dict(a_bits=a_bits, w_bits=w_bits)
    layers: list = [
        Gemm("q_proj", t, h, h, L, **lin),
        Gemm("k_proj", t, h, cfg.kv_dim, L, **lin),
        Gemm("v_proj", t, h, cfg.kv_dim, L, **lin),
        Gemm("o_proj", t, h, h, L, **lin),
    ]
    if cfg.family == "llama":
        layers += [
            Gemm("gate_proj", t, h, cfg.ffn, L, **lin),
            Gemm("up_proj", t, h, cfg.ffn, L, **lin),
            Gemm("down_proj", t, cfg.ffn, h, L, **lin),
        ]
    else:
        layers += [Gemm("fc1", t, h, cfg.ffn, L, **lin), Gemm("fc2", t, cfg.ffn, h, L, **lin)]
    q_rows = seq_len if phase == "prefill" else 1
    att = dict(a_bits=a_bits, w_bits=a_bits)
    layers += [
        Gemm("attn_qk", q_rows, hd, keys, L * cfg.heads * batch, kind="attn_qk", **att),
        Gemm("attn_v", q_rows, keys, hd, L * cfg.heads * batch, kind="attn_v", **att),
        Elementwise("softmax", "softmax", q_rows * keys, L * cfg.heads * batch),
        Elementwise("norm", "layernorm" if cfg.family != "llama" else "rmsnorm", t * h, 2 * L + 1),
        Elementwise("act", {"opt": "relu", "phi": "gelu", "llama": "swiglu"}[cfg.family], t * cfg.ffn, L),
    ]
    if lm_head:
        layers.append(Gemm("lm_head", t, h, cfg.vocab, 1, kind="lm_head", **lin))
    meta = dict(model=cfg.name, seq_len=seq_len, kv_len=kv_len, batch=batch)
    return Workload(f"{cfg.name}/{phase}", tuple(layers), phase, meta)


def vit_moe_workload(cfg: ModelConfig, dataset: str = "pascal", *, moe: bool = True) -> Workload:
    """M3ViT ViT-S encoder for one frame of ``dataset`` (``"pascal"`` 1025 tokens,
    ``"nyud"`` 1201 tokens).  Even blocks use the dense MLP; odd blocks use the
    MoE (``moe=False`` gives the dense ViT-S baseline).  Patch embedding and
    task decoders are not included (m3vit.md §2.6 calibrates the encoder only).
    """
    if cfg.family != "vit-moe":
        raise ValueError(f"vit_moe_workload: model {cfg.name!r} is not a ViT-MoE model")
    try:
        t = VIT_TOKENS[dataset]
    except KeyError:
        raise ValueError(f"dataset={dataset!r}; allowed: {', '.join(VIT_TOKENS)}") from None
    L, d, hd = cfg.n_layers, cfg.hidden, cfg.head_dim
    n_moe = L // 2 if moe else 0
    n_dense = L - n_moe
    layers: list = [
        Gemm("qkv", t, d, 3 * d, L),
        Gemm("attn_qk", t, hd, t, L * cfg.heads, kind="attn_qk"),
        Gemm("attn_v", t, t, hd, L * cfg.heads, kind="attn_v"),
        Gemm("proj", t, d, d, L),
        Gemm("fc1", t, d, cfg.ffn, n_dense),
        Gemm("fc2", t, cfg.ffn, d, n_dense),
        Elementwise("softmax", "softmax", t * t, L * cfg.heads),
        Elementwise("layernorm", "layernorm", t * d, 2 * L),
        Elementwise("gelu", "gelu", t * cfg.ffn, L),
    ]
    if n_moe:
        layers.append(MoE("moe", t, d, cfg.expert_hidden, cfg.n_experts, cfg.top_k, n_moe))
    meta = dict(model=cfg.name, dataset=dataset, tokens=t, moe_blocks=n_moe)
    return Workload(f"{cfg.name}/{dataset}{'' if moe else '-dense'}", tuple(layers), "inference", meta)


def hgrn_bit_workload(cfg: ModelConfig, phase: str = "decode", *, seq_len: int = 1, lm_head: bool = True) -> Workload:
    """MatMul-free LM (MLGRU token mixer + GLU channel mixer, ternary BitLinears).

    Per block and token: i, f, g, o BitLinears (d x d), gate_proj (d -> 2I),
    down_proj (I -> d); the recurrence and norms are elementwise.  ``decode``
    is one token; ``prefill`` runs ``seq_len`` tokens.
    """
    if cfg.family != "hgrn-bit":
        raise ValueError(f"hgrn_bit_workload: model {cfg.name!r} is not a MatMul-free model")
    if phase not in PHASES:
        raise ValueError(f"phase={phase!r}; allowed: {', '.join(PHASES)}")
    t = seq_len if phase == "prefill" else 1
    L, d, i = cfg.n_layers, cfg.hidden, cfg.ffn
    tern = dict(a_bits=8, w_bits=2)
    layers: list = [
        Gemm("ifg_proj", t, d, d, 3 * L, **tern),
        Gemm("o_proj", t, d, d, L, **tern),
        Gemm("gate_proj", t, d, 2 * i, L, **tern),
        Gemm("down_proj", t, i, d, L, **tern),
        Elementwise("rmsnorm", "rmsnorm", t * d, 6 * L + 1),
        Elementwise("recurrence", "mlgru", t * d, L),
        Elementwise("glu", "swiglu", t * i, L),
    ]
    if lm_head and cfg.n_layers > 1:
        layers.append(Gemm("lm_head", t, d, cfg.vocab, 1, kind="lm_head", **tern))
    meta = dict(model=cfg.name, seq_len=seq_len)
    return Workload(f"{cfg.name}/{phase}", tuple(layers), phase, meta)


def workload(name: str, **kw) -> Workload:
    """Build a zoo workload from ``"<model>/<phase>"`` (decoders, MatMul-free) or
    ``"<model>/<dataset>"`` (M3ViT: ``pascal``, ``nyud``, ``pascal-dense``...).

    Keyword arguments go to the family's builder (e.g. ``seq_len=512``).
    """
    model, _, rest = name.partition("/")
    cfg = get_model(model)
    if cfg.family == "vit-moe":
        ds = rest or "pascal"
        dense = ds.endswith("-dense")
        return vit_moe_workload(cfg, ds.removesuffix("-dense"), moe=not dense, **kw)
    phase = rest or "prefill"
    if cfg.family == "hgrn-bit":
        return hgrn_bit_workload(cfg, phase, **kw)
    return decoder_workload(cfg, phase, **kw)


def workload_names() -> list[str]:
    """Every zoo workload name accepted by :func:`workload`."""
    out = []
    for m, cfg in MODELS.items():
        if cfg.family == "vit-moe":
            out += [f"{m}/{ds}" for ds in VIT_TOKENS] + [f"{m}/{ds}-dense" for ds in VIT_TOKENS]
        else:
            out += [f"{m}/{p}" for p in PHASES]
    return out
