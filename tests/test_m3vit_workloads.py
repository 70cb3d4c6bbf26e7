"""M3ViT-v0 workloads (issue #13 item 3): which workloads the model prices, the one-line error for
the others, and the per-layer breakdown keys of docs/metrics.md."""

import numpy as np
import pytest

from archgym.workloads import Gemm, Workload, WorkloadError, vit_moe_workload
from archgym.workloads.zoo import ModelConfig
from simulators.m3vit import DEFAULT_DESIGN, M3ViTSimulator

# a ViT-Ti-sized MoE ViT (Edge-MoE's model is ViT-tiny-like: d 192, 3 heads, MLP 768, experts of 384 hidden;
# here expert hidden 192 so it fits the activation-buffer plan), built the way a user would build one
VIT_TI = ModelConfig("vit-ti-moe", "vit-moe", 12, 192, 768, 3, 3, 0, "test config", n_experts=16, top_k=2,
                     expert_hidden=192)


@pytest.mark.parametrize("wl, tokens, task", [
    ("pascal", 1025, None), ("nyud", 1201, None), ("pascal/edge", 1025, "edge"), ("nyud/depth", 1201, "depth"),
    ("m3vit-vit-s/nyud?task=depth", 1201, "depth"), ("pascal-dense", 1025, None),
])
def test_accepted_workloads(wl, tokens, task):
    sim = M3ViTSimulator()
    w = sim.workload(wl)
    assert w.model.family == "vit-moe" and w.meta["tokens"] == tokens and w.params.get("task") == task
    m = sim.evaluate(DEFAULT_DESIGN, wl)
    assert m.feasible and m.extra["encoder_macs"] == w.macs


def test_tasks_have_their_own_routers():
    sim = M3ViTSimulator()
    a, b = (sim.evaluate({**DEFAULT_DESIGN, "schedule": "cache"}, wl) for wl in ("pascal/semseg", "pascal/edge"))
    assert a.extra["cache_misses_count"] != b.extra["cache_misses_count"]


def test_a_user_built_vit_moe_is_priced_and_batched():
    sim = M3ViTSimulator()
    w = vit_moe_workload(VIT_TI, "pascal")
    # the MoE width is co-designed: the design's n_experts/top_k are priced (here the model's own 16/2)
    m = sim.evaluate({**DEFAULT_DESIGN, "top_k": 2}, w)
    assert m.feasible and m.extra["encoder_macs"] == w.macs
    # the activation buffers scale with the width: 3 x 1201 x 192 x 2 B
    assert m.extra["activation_buffer_bytes"] == 3 * 1201 * 192 * 2
    assert m.cycles < sim.evaluate(DEFAULT_DESIGN, "pascal").cycles
    space = sim.design_space()
    idx = space.sample_indices(np.random.default_rng(3), 300)
    b = sim.evaluate_batch(idx, w)
    for i in range(0, 300, 7):
        d = space.decode(idx[i])
        if space.is_feasible(d):
            r = sim._evaluate(d, w)
            assert b["cycles"][i] == r.get("cycles") or (np.isnan(b["cycles"][i]) and np.isnan(r.get("cycles")))
            assert b["energy_j"][i] == r.get("energy_j") or np.isnan(r.get("energy_j"))
            assert b["feasible"][i] == r.feasible


@pytest.mark.parametrize("wl, match", [
    ("llama-2-7b/prefill", r"llama-2-7b is a llama model; this simulator prices MoE ViT encoders"),
    (Workload("topo", (Gemm("l1", 64, 64, 64),)), r"it is a plain layer list with no model config"),
    ("m3vit-vit-s/pascal?batch=2", r"batch=2; the layer-wise design runs one frame at a time"),
    ("m3vit-vit-s/nyud?task=edge", r"task='edge' for nyud; allowed: semseg, depth"),
    (vit_moe_workload(ModelConfig("wide", "vit-moe", 12, 384, 1536, 12, 12, 0, "x", n_experts=8, top_k=2,
                                  expert_hidden=768), "pascal"), r"expert_hidden=768; the buffer plan"),
    (vit_moe_workload(ModelConfig("odd", "vit-moe", 12, 384, 1000, 12, 12, 0, "x", n_experts=8, top_k=2,
                                  expert_hidden=384), "pascal"), r"ffn=1000"),
])
def test_refused_workloads_are_one_line_errors(wl, match):
    with pytest.raises(WorkloadError, match=match) as e:
        M3ViTSimulator().workload(wl)
    assert "\n" not in str(e.value)


def test_more_tokens_than_the_buffers_hold():
    sim = M3ViTSimulator(token_capacity=1100)
    assert sim.evaluate(DEFAULT_DESIGN, "pascal").feasible
    with pytest.raises(WorkloadError, match=r"1201 tokens, more than token_capacity=1100"):
        sim.workload("nyud")


def test_breakdown_keys_follow_the_metrics_doc():
    """docs/metrics.md: layer names of the workload, other groupings prefixed unit:."""
    sim = M3ViTSimulator()
    for wl in ("pascal", "pascal-dense"):
        w = sim.workload(wl)
        m = sim.evaluate(DEFAULT_DESIGN, w)
        layers = {name for name, _ in w.lowered()}
        assert {k for k in m.breakdown if not k.startswith("unit:")} == layers
        for name in layers:
            assert {"cycles", "latency_s", "energy_j"} <= set(m.breakdown[name])
        units = {k for k in m.breakdown if k.startswith("unit:")}
        assert {"unit:memory", "unit:power", "unit:io"} <= units


def test_describe_names_what_it_accepts_and_the_constraint_rule():
    sim = M3ViTSimulator()
    assert "vit-moe" in sim.accepts and "batch 1" in sim.accepts
    text = sim.design_space().describe()
    assert "top_k=<top_k> exceeds n_experts=<n_experts>" in text and "{top_k}" not in text
