"""The model zoo: public model configurations and the workloads built from them.

Every entry is the public configuration of the model (Hugging Face
``config.json`` or the paper/repository named in ``source``).  Layer lists are
derived from these fields by :func:`decoder_workload`, :func:`vit_moe_workload`
and :func:`hgrn_bit_workload`; no per-model layer list is written by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .layers import Elementwise, Gemm, MoE, Workload, WorkloadError

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
    "model_workload",
    "family_params",
    "DECODER_FAMILIES",
]

PHASES = ("prefill", "decode", "generative")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters of one model (fields as in its public config).

    ``family`` is the block structure, as the Hugging Face implementation computes it:

    * ``"opt"``: q, k, v, out projections + fc1/fc2 (ReLU), LayerNorm before attention and FFN;
      ``word_embed_dim`` (OPT-350m's ``word_embed_proj_dim``) adds ``project_in``/``project_out``
      and makes the LM head ``word_embed_dim`` wide;
    * ``"gpt2"``: one fused QKV GEMM (``c_attn``, ``hidden x 3 hidden``), ``c_proj``, fc1/fc2 (GELU);
    * ``"phi"``: q, k, v, dense + fc1/fc2 (GELU), attention and FFN in parallel after one LayerNorm;
    * ``"llama"``: q + GQA k,v + o, SwiGLU gate/up/down, RMSNorm (also Mistral, Qwen2, Yi);
    * ``"mixtral"``: as llama with a mixture-of-experts FFN (``n_experts``, ``top_k``,
      ``expert_hidden``);
    * ``"vit-moe"`` (M3ViT ViT-S, MoE in odd blocks) or ``"hgrn-bit"`` (MatMul-free MLGRU + GLU).

    Biases are not MACs and appear nowhere.  ``attn_head_dim`` is an explicit per-head width
    (0: ``hidden // heads``); ``sliding_window`` limits the keys a decode step reads from the
    KV cache (0: no window).
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
    attn_head_dim: int = 0
    sliding_window: int = 0
    word_embed_dim: int = 0

    @property
    def head_dim(self) -> int:
        """Width of one attention head (``attn_head_dim``, else ``hidden // heads``)."""
        return self.attn_head_dim or self.hidden // self.heads

    @property
    def q_dim(self) -> int:
        """Width of the q projection and of the attention output (``heads * head_dim``)."""
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of the k and v projections (``kv_heads * head_dim``)."""
        return self.kv_heads * self.head_dim


def _mmfree_intermediate(d: int) -> int:
    # I = 256 * ceil(floor(d * 4 * 2 / 3) / 256): HGRNBitMLP with HGRNBitConfig's hidden_ratio 4
    # (ridgerchu/matmulfreellm mmfreelm/models/hgrn_bit/modeling_hgrn_bit.py)
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
        # (VITA-Group/M3ViT at d448b6f: pup_moe_vit_small configs, README training flags,
        # models/vision_transformer_moe.py; M3ViT paper §3.1 for K = 4 of N = 16).
        # "vocab" is unused for a ViT.
        ModelConfig(
            "m3vit-vit-s", "vit-moe", 12, 384, 1536, 12, 12, 0, "VITA-Group/M3ViT configs (d448b6f)",
            n_experts=16, top_k=4, expert_hidden=384,
        ),
        # MatMul-free LM (ridgerchu/matmulfreellm README and HGRNBitConfig): ternary weights,
        # heads=1 MLGRU, vocab 32000.
        ModelConfig("mmfree-370m", "hgrn-bit", 24, 1024, _mmfree_intermediate(1024), 1, 1, 32000,
                    "ridger/MMfreeLM-370M (ridgerchu/matmulfreellm README)", w_bits=2),
        ModelConfig("mmfree-1.3b", "hgrn-bit", 24, 2048, _mmfree_intermediate(2048), 1, 1, 32000,
                    "ridger/MMfreeLM-1.3B (ridgerchu/matmulfreellm README)", w_bits=2),
        ModelConfig("mmfree-2.7b", "hgrn-bit", 32, 2560, _mmfree_intermediate(2560), 1, 1, 32000,
                    "ridger/MMfreeLM-2.7B (ridgerchu/matmulfreellm README)", w_bits=2),
        ModelConfig("mmfree-block-d512", "hgrn-bit", 1, 512, _mmfree_intermediate(512), 1, 1, 32000,
                    "FPGA measurement point: one block, d=512 (arXiv 2406.02528 v5)", w_bits=2),
    ]
}

# Token counts of the M3ViT datasets, derived from the input sizes of the VITA-Group/M3ViT configs
# (PASCAL-Context 512x512, NYUD-v2 480x640) at patch 16: patches + CLS.
VIT_TOKENS = {"pascal": 1025, "nyud": 1201}


def get_model(name: str) -> ModelConfig:
    """Look up a model by name; ``ValueError`` lists the known names."""
    try:
        return MODELS[name]
    except KeyError:
        raise WorkloadError(f"unknown model {name!r}; known models: {', '.join(MODELS)}") from None


DECODER_FAMILIES = ("opt", "phi", "llama", "gpt2", "mixtral")
# Prefill tokens when not given: BitMoD's context length (cxt = 256 in the bitmod_sim of
# abdelfattah-lab/BitMoD-HPCA-25).
DEFAULT_SEQ_LEN = 256
DEFAULT_GEN_TOKENS = 20   # decode steps of the "generative" phase (BitMoD's generative task)


def _check_len(name: str, v: int | None) -> None:
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1 << 24):
        raise WorkloadError(f"{name}={v!r}: must be an integer in [1, {1 << 24}]")


def decoder_workload(
    cfg: ModelConfig, phase: str, *, seq_len: int | None = None, context_len: int | None = None, batch: int = 1,
    gen_tokens: int | None = None, a_bits: int = 16, w_bits: int = 16, lm_head: bool = True,
) -> Workload:
    """Layer list of a decoder-only LLM for one phase.

    * ``prefill``: ``batch`` sequences of ``seq_len`` tokens (default 256), attention over
      ``seq_len`` keys;
    * ``decode``: one generation step of ``batch`` sequences, each attending over
      ``context_len`` cached keys (default: ``seq_len``): the K and V caches are the second
      operands of the attention GEMMs, so their reads are priced there;
    * ``generative``: a prefill of ``seq_len`` tokens then ``gen_tokens`` decode steps
      (default 20) at context ``context_len``; layer names are prefixed ``prefill.`` and
      ``decode.``.

    Per block: q, k, v, o projections (k/v use ``kv_heads``; GPT-2 computes q, k, v as one
    fused ``qkv_proj`` GEMM), the FFN (fc1/fc2, or gate/up/down for the llama family; a
    :class:`MoE` block for mixtral: router + ``n_experts`` gated experts, ``top_k`` per
    token), and per head the attention matmuls QK^T and AV, over every key as the dense
    Hugging Face attention computes them (a decode step of a ``sliding_window`` model reads at
    most that many cached keys).  ``lm_head`` runs on every token of the phase (as the BitMoD
    simulator counts it).  ``params`` of the result hold the resolved lengths.
    """
    if cfg.family not in DECODER_FAMILIES:
        raise WorkloadError(f"decoder_workload: model {cfg.name!r} is a {cfg.family} model, not a decoder LLM")
    if phase not in PHASES:
        raise WorkloadError(f"phase={phase!r}; allowed for {cfg.name}: {', '.join(PHASES)}")
    for k, v in (("seq_len", seq_len), ("context_len", context_len), ("gen_tokens", gen_tokens), ("batch", batch)):
        _check_len(k, v)
    seq_len = seq_len or DEFAULT_SEQ_LEN
    context_len = context_len or seq_len
    params: dict = {"batch": batch}
    if phase == "generative":
        gen_tokens = gen_tokens or DEFAULT_GEN_TOKENS
        pre = _decoder_layers(cfg, "prefill", seq_len, seq_len, batch, a_bits, w_bits, lm_head, 1, "prefill.")
        dec = _decoder_layers(cfg, "decode", 1, context_len, batch, a_bits, w_bits, lm_head, gen_tokens, "decode.")
        layers = pre + dec
        params.update(seq_len=seq_len, context_len=context_len, gen_tokens=gen_tokens)
    elif phase == "prefill":
        layers = _decoder_layers(cfg, phase, seq_len, seq_len, batch, a_bits, w_bits, lm_head, 1, "")
        params.update(seq_len=seq_len)
    else:
        layers = _decoder_layers(cfg, phase, 1, context_len, batch, a_bits, w_bits, lm_head, 1, "")
        params.update(context_len=context_len)
    meta = dict(model=cfg.name, **params)
    return Workload(f"{cfg.name}/{phase}", tuple(layers), phase, meta, model=cfg, params=params)


def _decoder_layers(cfg: ModelConfig, phase: str, q_rows: int, keys: int, batch: int, a_bits: int, w_bits: int,
                    lm_head: bool, rep: int, prefix: str) -> list:
    t = q_rows * batch
    L, h, hd, f = cfg.n_layers, cfg.hidden, cfg.head_dim, cfg.family
    if phase == "decode" and cfg.sliding_window:
        # a sliding-window model keeps only the last `sliding_window` keys in its cache
        keys = min(keys, cfg.sliding_window)
    lin = dict(a_bits=a_bits, w_bits=w_bits)
    n = lambda s: prefix + s  # noqa: E731
    layers: list = []
    if cfg.word_embed_dim:                       # OPT-350m: embeddings narrower than the blocks
        layers.append(Gemm(n("project_in"), t, cfg.word_embed_dim, h, rep, **lin))
    if f == "gpt2":                              # GPT-2's c_attn: one hidden x (q + k + v) GEMM
        layers.append(Gemm(n("qkv_proj"), t, h, cfg.q_dim + 2 * cfg.kv_dim, L * rep, **lin))
    else:
        layers += [
            Gemm(n("q_proj"), t, h, cfg.q_dim, L * rep, **lin),
            Gemm(n("k_proj"), t, h, cfg.kv_dim, L * rep, **lin),
            Gemm(n("v_proj"), t, h, cfg.kv_dim, L * rep, **lin),
        ]
    layers.append(Gemm(n("o_proj"), t, cfg.q_dim, h, L * rep, **lin))
    if f == "mixtral":
        layers.append(MoE(n("moe"), t, h, cfg.expert_hidden or cfg.ffn, cfg.n_experts, cfg.top_k, L * rep,
                          glu=True, **lin))
    elif f == "llama":
        layers += [
            Gemm(n("gate_proj"), t, h, cfg.ffn, L * rep, **lin),
            Gemm(n("up_proj"), t, h, cfg.ffn, L * rep, **lin),
            Gemm(n("down_proj"), t, cfg.ffn, h, L * rep, **lin),
        ]
    else:
        layers += [Gemm(n("fc1"), t, h, cfg.ffn, L * rep, **lin), Gemm(n("fc2"), t, cfg.ffn, h, L * rep, **lin)]
    att = dict(a_bits=a_bits, w_bits=a_bits)
    heads = L * cfg.heads * batch * rep
    act = {"opt": "relu", "phi": "gelu", "gpt2": "gelu", "llama": "swiglu", "mixtral": "swiglu"}[f]
    # one norm before attention and one before the FFN per block, plus the final norm; Phi runs
    # attention and FFN in parallel after a single norm
    norms = (L if f == "phi" else 2 * L) + 1
    layers += [
        Gemm(n("attn_qk"), q_rows, hd, keys, heads, kind="attn_qk", **att),
        Gemm(n("attn_v"), q_rows, keys, hd, heads, kind="attn_v", **att),
        Elementwise(n("softmax"), "softmax", q_rows * keys, heads),
        Elementwise(n("norm"), "rmsnorm" if f in ("llama", "mixtral") else "layernorm", t * h, norms * rep),
    ]
    if f != "mixtral":
        layers.append(Elementwise(n("act"), act, t * cfg.ffn, L * rep))
    if cfg.word_embed_dim:
        layers.append(Gemm(n("project_out"), t, h, cfg.word_embed_dim, rep, **lin))
    if lm_head:
        layers.append(Gemm(n("lm_head"), t, cfg.word_embed_dim or h, cfg.vocab, rep, kind="lm_head", **lin))
    return layers


def vit_moe_workload(cfg: ModelConfig, dataset: str = "pascal", *, moe: bool = True, batch: int = 1,
                     task: str | None = None) -> Workload:
    """M3ViT ViT-S encoder for ``batch`` frames of ``dataset`` (``"pascal"`` 1025 tokens,
    ``"nyud"`` 1201 tokens).  Even blocks use the dense MLP; odd blocks use the
    MoE (``moe=False`` gives the dense ViT-S baseline).  Patch embedding and
    task decoders are not included (the throughput calibration derived from M3ViT's
    Table 4 counts the encoder only).
    ``task`` names the task whose router a multi-gate model uses (routing data; the
    layer shapes do not change).
    """
    if cfg.family != "vit-moe":
        raise WorkloadError(f"vit_moe_workload: model {cfg.name!r} is not a ViT-MoE model")
    try:
        tok = VIT_TOKENS[dataset]
    except KeyError:
        raise WorkloadError(f"dataset={dataset!r}; allowed: {', '.join(VIT_TOKENS)}") from None
    _check_len("batch", batch)
    t = tok * batch
    L, d, hd = cfg.n_layers, cfg.hidden, cfg.head_dim
    n_moe = L // 2 if moe else 0
    n_dense = L - n_moe
    layers: list = [
        Gemm("qkv", t, d, 3 * d, L),
        Gemm("attn_qk", tok, hd, tok, L * cfg.heads * batch, kind="attn_qk"),
        Gemm("attn_v", tok, tok, hd, L * cfg.heads * batch, kind="attn_v"),
        Gemm("proj", t, d, d, L),
        Gemm("fc1", t, d, cfg.ffn, n_dense),
        Gemm("fc2", t, cfg.ffn, d, n_dense),
        Elementwise("softmax", "softmax", tok * tok, L * cfg.heads * batch),
        Elementwise("layernorm", "layernorm", t * d, 2 * L),
        Elementwise("gelu", "gelu", t * cfg.ffn, L),
    ]
    if n_moe:
        layers.append(MoE("moe", t, d, cfg.expert_hidden, cfg.n_experts, cfg.top_k, n_moe))
    params = {"batch": batch, "dataset": dataset} | ({"task": task} if task else {})
    meta = dict(model=cfg.name, dataset=dataset, tokens=tok, moe_blocks=n_moe, batch=batch)
    return Workload(f"{cfg.name}/{dataset}{'' if moe else '-dense'}", tuple(layers), "inference", meta,
                    model=cfg, params=params)


def hgrn_bit_workload(cfg: ModelConfig, phase: str = "decode", *, seq_len: int | None = None, batch: int = 1,
                      lm_head: bool = True) -> Workload:
    """MatMul-free LM (MLGRU token mixer + GLU channel mixer, ternary BitLinears).

    Per block and token: i, f, g, o BitLinears (d x d), gate_proj (d -> 2I),
    down_proj (I -> d); the recurrence and norms are elementwise.  ``decode``
    is one token per sequence (the recurrence needs no context); ``prefill`` runs
    ``seq_len`` tokens (default 1); ``batch`` sequences.
    """
    if cfg.family != "hgrn-bit":
        raise WorkloadError(f"hgrn_bit_workload: model {cfg.name!r} is not a MatMul-free model")
    if phase not in ("prefill", "decode"):
        raise WorkloadError(f"phase={phase!r}; allowed for {cfg.name}: prefill, decode")
    _check_len("seq_len", seq_len)
    _check_len("batch", batch)
    seq_len = seq_len or 1
    t = (seq_len if phase == "prefill" else 1) * batch
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
    params = {"batch": batch} | ({"seq_len": seq_len} if phase == "prefill" else {})
    meta = dict(model=cfg.name, **params)
    return Workload(f"{cfg.name}/{phase}", tuple(layers), phase, meta, model=cfg, params=params)


def family_params(family: str) -> tuple[str, ...]:
    """Workload parameters a model family has (besides its phase)."""
    return {"vit-moe": ("batch", "task"), "hgrn-bit": ("batch", "seq_len")}.get(
        family, ("batch", "seq_len", "context_len", "gen_tokens"))


def model_workload(cfg: ModelConfig, phase: str | None = None, **params) -> Workload:
    """The workload of any :class:`ModelConfig` (zoo or read from a config file) for one phase
    (decoders: prefill/decode/generative, default prefill; MatMul-free: decode/prefill, default
    decode; ViT-MoE: a dataset name, default pascal, ``-dense`` for the dense baseline).
    ``params``: ``batch``, ``seq_len``, ``context_len``, ``gen_tokens`` where the family has them;
    a parameter the family does not have is an error naming it."""
    allowed = family_params(cfg.family)
    given = {k: v for k, v in params.items() if v is not None}
    bad = [k for k in given if k not in allowed]
    if bad:
        raise WorkloadError(f"{cfg.name} ({cfg.family}) has no workload parameter {bad[0]!r}; "
                            f"allowed: {', '.join(allowed)}")
    if cfg.family == "vit-moe":
        ds = phase or "pascal"
        return vit_moe_workload(cfg, ds.removesuffix("-dense"), moe=not ds.endswith("-dense"), **given)
    if cfg.family == "hgrn-bit":
        return hgrn_bit_workload(cfg, phase or "decode", **given)
    return decoder_workload(cfg, phase or "prefill", **given)


def workload(name: str, **kw) -> Workload:
    """Build a zoo workload from ``"<model>/<phase>"`` (decoders, MatMul-free) or
    ``"<model>/<dataset>"`` (M3ViT: ``pascal``, ``nyud``, ``pascal-dense``...).

    Keyword arguments are workload parameters (``batch``, ``seq_len``, ...; see
    :func:`model_workload`).  For files and query strings use
    :func:`archgym.workloads.load_workload`.
    """
    model, _, rest = name.partition("/")
    return model_workload(get_model(model), rest or None, **kw)


def workload_names() -> list[str]:
    """Every zoo workload name accepted by :func:`workload`."""
    out = []
    for m, cfg in MODELS.items():
        if cfg.family == "vit-moe":
            out += [f"{m}/{ds}" for ds in VIT_TOKENS] + [f"{m}/{ds}-dense" for ds in VIT_TOKENS]
        elif cfg.family == "hgrn-bit":
            out += [f"{m}/{p}" for p in ("prefill", "decode")]
        else:
            out += [f"{m}/{p}" for p in PHASES]
    return out
