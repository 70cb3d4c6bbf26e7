"""The model zoo against the public parameter counts of each model."""

import pytest

from archgym.workloads import MODELS, Gemm, get_model, workload, workload_names

# Published parameter counts (model cards / papers), in billions.
PUBLISHED_B = {
    "opt-125m": 0.125,
    "opt-1.3b": 1.3,
    "opt-2.7b": 2.7,
    "phi-2": 2.7,
    "yi-6b": 6.06,
    "llama-7b": 6.7,
    "llama-2-7b": 6.74,
    "llama-2-13b": 13.0,
    "llama-3-8b": 8.03,
    "mmfree-370m": 0.37,
    "mmfree-1.3b": 1.3,
    "mmfree-2.7b": 2.7,
}


def weight_params(name: str) -> float:
    cfg = get_model(name)
    w = workload(f"{name}/decode")
    lin = sum(g.k * g.n * g.count for g in w.gemms() if g.kind in ("linear", "lm_head"))
    # + the input embedding, unless it is the lm_head's weight (tied)
    return lin + (0 if cfg.tied_embeddings else cfg.vocab * cfg.hidden)


@pytest.mark.parametrize("name", sorted(PUBLISHED_B))
def test_zoo_matches_published_size(name):
    # Linear + embedding weights cover >97% of these models; norms/biases/positions are the rest.
    assert weight_params(name) / 1e9 == pytest.approx(PUBLISHED_B[name], rel=0.06)


def test_m3vit_encoder_macs_match_hand_count():
    # Hand count for M3ViT's ViT-S (Liang et al., NeurIPS 2022): QKV+proj 4*d^2*T, attention
    # 2*T^2*d, MLP 2*d*4d*T per block give ~31.4 G MACs for the 12-block encoder at 1025
    # tokens; the MoE layer has the same MACs as the dense MLP (4 experts x 384 = 1536) plus
    # the gate.
    dense = workload("m3vit-vit-s/pascal-dense").macs
    assert dense / 1e9 == pytest.approx(31.4, rel=0.01)
    moe = workload("m3vit-vit-s/pascal").macs
    gate = 6 * 1025 * 384 * 16
    assert moe - gate == dense


def test_decode_attention_uses_kv_length():
    w = workload("llama-2-7b/decode", context_len=512)
    qk = next(g for g in w.gemms() if g.kind == "attn_qk")
    assert (qk.m, qk.k, qk.n, qk.count) == (1, 128, 512, 32 * 32)


def test_gqa_kv_projection_width():
    w = workload("llama-3-8b/prefill")
    k = next(g for g in w.gemms() if g.name == "k_proj")
    assert k.n == 8 * 128


def test_every_name_builds_and_unknowns_fail():
    for n in workload_names():
        assert workload(n).macs > 0
    with pytest.raises(ValueError, match="unknown model 'gpt-9'"):
        workload("gpt-9/prefill")
    with pytest.raises(ValueError, match="phase='train'"):
        workload("opt-1.3b/train")
    with pytest.raises(ValueError, match="positive integer"):
        Gemm("x", 0, 1, 1)
    assert len(MODELS) >= 13
