"""Hugging Face ``config.json`` of a decoder LLM -> :class:`~archgym.workloads.zoo.ModelConfig`.

The file is read as plain JSON (``transformers`` is not needed).  Each supported
``model_type`` maps its own field names onto the zoo's :class:`ModelConfig`, with
the defaults the ``transformers`` configuration class of that type applies when a
field is absent (e.g. ``tie_word_embeddings``: true for OPT and GPT-2, false for
LLaMA, Mistral, Qwen2, Phi and Mixtral; ``num_key_value_heads``: the number of
attention heads; GPT-2's ``n_inner``: four times the width).  The shape fields
(width, depth, heads, FFN size, vocabulary) have no default: a missing one is an
error naming the file, the field and what it should hold.

Supported ``model_type`` values and the block structure each maps to
(:attr:`ModelConfig.family`):

* ``opt`` -> ``opt``; ``gpt2`` -> ``gpt2`` (fused QKV); ``phi`` -> ``phi``;
* ``llama``, ``mistral``, ``qwen2`` -> ``llama`` (GQA, SwiGLU; Mistral's sliding window);
* ``mixtral`` -> ``mixtral`` (``num_local_experts`` experts, ``num_experts_per_tok`` per token);
* ``hgrn_bit`` (MatMul-free LM, ridgerchu/matmulfreellm) -> ``hgrn-bit``.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Mapping

from .layers import WorkloadError
from .zoo import ModelConfig

__all__ = ["config_from_hf", "SUPPORTED_MODEL_TYPES"]

_POS_INT = "a positive integer"


class _Fields:
    """Typed access to one config dict; every error names the file and the field."""

    def __init__(self, d: Mapping[str, Any], where: str):
        self.d, self.where = d, where

    def fail(self, msg: str) -> WorkloadError:
        return WorkloadError(f"{self.where}: {msg}")

    def int(self, key: str, need: str, default: Any = ...) -> int:
        """A required positive integer (or ``default`` when absent or null)."""
        v = self.d.get(key)
        if v is None:
            if default is ...:
                raise self.fail(f"field {key!r} is missing; it must hold {need} ({_POS_INT})")
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or v < 1:
            raise self.fail(f"field {key!r}={v!r} must be {_POS_INT} ({need})")
        return int(v)

    def bool(self, key: str, default: bool) -> bool:
        v = self.d.get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self.fail(f"field {key!r}={v!r} must be true or false")
        return v


def _name(d: Mapping[str, Any], path: str | None) -> str:
    # the Hub id's last part ("meta-llama/Llama-2-7b-hf" -> "Llama-2-7b-hf"), else the folder name
    n = d.get("_name_or_path")
    if isinstance(n, str) and n.strip():
        return os.path.basename(n.strip().rstrip("/\\")) or n.strip()
    if path:
        folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
        stem = os.path.splitext(os.path.basename(path))[0]
        return folder if stem == "config" and folder else stem
    return str(d.get("model_type", "model"))


def _heads(f: _Fields, hidden: int, heads: int, kv_heads: int, head_dim: int | None) -> int:
    """Check the attention geometry; return ``attn_head_dim`` (0 when it is ``hidden // heads``)."""
    if kv_heads > heads or heads % kv_heads:
        raise f.fail(f"num_key_value_heads={kv_heads} must divide num_attention_heads={heads}")
    if head_dim is None:
        if hidden % heads:
            raise f.fail(f"hidden size {hidden} is not a multiple of num_attention_heads={heads}; "
                         f"give head_dim")
        return 0
    return 0 if head_dim * heads == hidden else head_dim


def _opt(f: _Fields, common: dict) -> dict:
    h = f.int("hidden_size", "the model width")
    heads = f.int("num_attention_heads", "the number of attention heads")
    wed = f.int("word_embed_proj_dim", "the embedding width (OPT-350m: 512)", h)
    return dict(common, family="opt", n_layers=f.int("num_hidden_layers", "the number of decoder blocks"),
                hidden=h, ffn=f.int("ffn_dim", "the FFN width"), heads=heads, kv_heads=heads,
                vocab=f.int("vocab_size", "the vocabulary size"), attn_head_dim=_heads(f, h, heads, heads, None),
                word_embed_dim=0 if wed == h else wed, tied_embeddings=f.bool("tie_word_embeddings", True))


def _gpt2(f: _Fields, common: dict) -> dict:
    h = f.int("n_embd", "the model width")
    heads = f.int("n_head", "the number of attention heads")
    return dict(common, family="gpt2", n_layers=f.int("n_layer", "the number of decoder blocks"), hidden=h,
                ffn=f.int("n_inner", "the FFN width (null: 4 * n_embd)", 4 * h), heads=heads, kv_heads=heads,
                vocab=f.int("vocab_size", "the vocabulary size"), attn_head_dim=_heads(f, h, heads, heads, None),
                tied_embeddings=f.bool("tie_word_embeddings", True))


def _llama_like(family: str) -> Callable[[_Fields, dict], dict]:
    def read(f: _Fields, common: dict) -> dict:
        h = f.int("hidden_size", "the model width")
        heads = f.int("num_attention_heads", "the number of attention heads")
        kv = f.int("num_key_value_heads", "the number of key/value heads (GQA)", heads)
        hd = f.int("head_dim", "the width of one attention head", None)
        out = dict(common, family=family, n_layers=f.int("num_hidden_layers", "the number of decoder blocks"),
                   hidden=h, ffn=f.int("intermediate_size", "the FFN width"), heads=heads, kv_heads=kv,
                   vocab=f.int("vocab_size", "the vocabulary size"), attn_head_dim=_heads(f, h, heads, kv, hd),
                   tied_embeddings=f.bool("tie_word_embeddings", False), sliding_window=_window(f))
        if family == "mixtral":
            out.update(n_experts=f.int("num_local_experts", "the number of experts per MoE layer"),
                       top_k=f.int("num_experts_per_tok", "the experts each token is routed to"),
                       expert_hidden=out["ffn"])
            if out["top_k"] > out["n_experts"]:
                raise f.fail(f"num_experts_per_tok={out['top_k']} exceeds num_local_experts={out['n_experts']}")
        return out

    return read


def _window(f: _Fields) -> int:
    """The sliding attention window, as transformers applies it (0: none)."""
    mt = f.d.get("model_type")
    if mt == "qwen2":
        # Qwen2 slides only when use_sliding_window is set, and then only in the blocks from
        # max_window_layers on (transformers' Qwen2Config.layer_types)
        if not f.bool("use_sliding_window", False):
            return 0
        w = f.int("sliding_window", "the attention window in tokens", None)
        n = f.int("num_hidden_layers", "the number of decoder blocks")
        first = f.d.get("max_window_layers", 28)
        if w is None or (isinstance(first, int) and first >= n):
            return 0
        if first not in (0, None):
            raise f.fail(f"use_sliding_window with max_window_layers={first} < num_hidden_layers={n} mixes "
                         f"windowed and full blocks; only all-or-none windows are supported")
        return w
    return f.int("sliding_window", "the attention window in tokens (null: none)", 0)


def _phi(f: _Fields, common: dict) -> dict:
    h = f.int("hidden_size", "the model width")
    heads = f.int("num_attention_heads", "the number of attention heads")
    kv = f.int("num_key_value_heads", "the number of key/value heads", heads)
    return dict(common, family="phi", n_layers=f.int("num_hidden_layers", "the number of decoder blocks"), hidden=h,
                ffn=f.int("intermediate_size", "the FFN width"), heads=heads, kv_heads=kv,
                vocab=f.int("vocab_size", "the vocabulary size"), attn_head_dim=_heads(f, h, heads, kv, None),
                tied_embeddings=f.bool("tie_word_embeddings", False))


def _hgrn_bit(f: _Fields, common: dict) -> dict:
    if f.bool("use_moe", False):
        raise f.fail("use_moe=true: the MoE variant of HGRN-bit is not supported")
    if f.d.get("expand_ratio", 1) not in (1, None):
        raise f.fail(f"field 'expand_ratio'={f.d['expand_ratio']!r}: only 1 is supported (the released MMfreeLM)")
    d = f.int("hidden_size", "the model width")
    ratio = f.int("hidden_ratio", "the GLU expansion ratio", 4)
    # HGRNBitMLP: I = 256 * ceil(int(d * hidden_ratio * 2 / 3) / 256) when intermediate_size is null
    inter = f.int("intermediate_size", "the GLU width", 256 * math.ceil(int(d * ratio * 2 / 3) / 256))
    heads = f.int("num_heads", "the MLGRU heads", 1)
    return dict(common, family="hgrn-bit", n_layers=f.int("num_hidden_layers", "the number of blocks"), hidden=d,
                ffn=inter, heads=heads, kv_heads=heads, vocab=f.int("vocab_size", "the vocabulary size", 32000),
                w_bits=2, tied_embeddings=f.bool("tie_word_embeddings", False))


_READERS: dict[str, Callable[[_Fields, dict], dict]] = {
    "opt": _opt,
    "gpt2": _gpt2,
    "llama": _llama_like("llama"),
    "mistral": _llama_like("llama"),
    "qwen2": _llama_like("llama"),
    "phi": _phi,
    "mixtral": _llama_like("mixtral"),
    "hgrn_bit": _hgrn_bit,
}
#: ``model_type`` values :func:`config_from_hf` reads.
SUPPORTED_MODEL_TYPES = tuple(_READERS)


def config_from_hf(source: str | os.PathLike | Mapping[str, Any], *, name: str | None = None) -> ModelConfig:
    """Read a Hugging Face ``config.json`` (a path, a folder holding one, or the parsed dict) into
    the :class:`ModelConfig` the zoo uses, so :func:`archgym.workloads.model_workload` builds its
    layers exactly as for a zoo model.

    ``name`` defaults to the last part of ``_name_or_path`` (else the folder name).  An unknown
    ``model_type`` is a :class:`WorkloadError` listing :data:`SUPPORTED_MODEL_TYPES`; a missing
    or malformed field is one naming the file, the field and what it must hold.

    >>> cfg = config_from_hf({"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12,
    ...                       "vocab_size": 50257}, name="gpt2")
    >>> cfg.family, cfg.ffn, cfg.tied_embeddings
    ('gpt2', 3072, True)
    """
    path = None
    if isinstance(source, Mapping):
        d, where = source, f"config {name or source.get('_name_or_path') or source.get('model_type', '?')!r}"
    else:
        path = os.fspath(source)
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        where = f"config file {path!r}"
        try:
            with open(path, encoding="utf-8") as fh:
                d = json.load(fh)
        except FileNotFoundError:
            raise WorkloadError(f"{where} does not exist") from None
        except OSError as e:
            raise WorkloadError(f"{where} cannot be read: {e.strerror or e}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise WorkloadError(f"{where} is not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise WorkloadError(f"{where}: expected a JSON object, got {type(d).__name__}")
    f = _Fields(d, where)
    mt = d.get("model_type")
    if mt is None:
        raise f.fail(f"field 'model_type' is missing; it names the architecture, one of: "
                     f"{', '.join(SUPPORTED_MODEL_TYPES)}")
    if mt not in _READERS:
        raise f.fail(f"model_type {mt!r} is not supported; supported: {', '.join(SUPPORTED_MODEL_TYPES)}")
    label = name or _name(d, path)
    src = f"Hugging Face config.json (model_type {mt})" + (f": {path}" if path else "")
    return ModelConfig(**_READERS[mt](f, dict(name=label, source=src)))
