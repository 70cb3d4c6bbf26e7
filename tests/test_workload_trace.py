"""archgym.workloads.from_torch on public model definitions (small configs, seeded random weights,
no download): the traced layers against the config.json route, a SCALE-Sim topology of the same
network, the published model sizes, and hand-counted shapes."""

import collections
import csv
import inspect
import math
import os

import pytest

from archgym.workloads import Gemm, MoE, WorkloadError, from_torch, load_workload, model_workload
from archgym.workloads.hf_config import config_from_hf

torch = pytest.importorskip("torch")
nn = torch.nn
DATA = os.path.join(os.path.dirname(__file__), "data")


def _import_torchvision():
    """torchvision (tests/conftest.py lets it import next to the CPU torch wheel)."""
    return pytest.importorskip("torchvision")


def _transformers():
    _import_torchvision()
    return pytest.importorskip("transformers")


def shape_counts(w):
    """Multiset of GEMM and MoE shapes with their total counts (names and routing aside)."""
    c = collections.Counter()
    for l in w.layers:
        if isinstance(l, Gemm):
            c[("gemm", l.kind, l.m, l.k, l.n)] += l.count
        elif isinstance(l, MoE):
            c[("moe", l.tokens, l.d_model, l.d_hidden, l.n_experts, l.top_k, l.glu)] += l.count
    return c


_SMALL = dict(vocab_size=100, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
              bos_token_id=0, eos_token_id=0, pad_token_id=0)


def _decoder(name):
    T = _transformers()
    torch.manual_seed(0)
    opt = dict(vocab_size=100, hidden_size=32, ffn_dim=48, num_hidden_layers=2, num_attention_heads=4,
               bos_token_id=0, eos_token_id=0, pad_token_id=0)
    cfg, cls = {
        "llama": (lambda: T.LlamaConfig(**_SMALL, num_key_value_heads=2), T.LlamaForCausalLM),
        "mistral": (lambda: T.MistralConfig(**_SMALL, num_key_value_heads=2, sliding_window=4), T.MistralForCausalLM),
        "qwen2": (lambda: T.Qwen2Config(**_SMALL, num_key_value_heads=2), T.Qwen2ForCausalLM),
        "phi": (lambda: T.PhiConfig(**_SMALL), T.PhiForCausalLM),
        "mixtral": (lambda: T.MixtralConfig(**_SMALL, num_key_value_heads=2, num_local_experts=4,
                                            num_experts_per_tok=2), T.MixtralForCausalLM),
        "opt": (lambda: T.OPTConfig(**opt, word_embed_proj_dim=32), T.OPTForCausalLM),
        # OPT-350m's layout: embeddings narrower than the blocks (project_in / project_out)
        "opt-350m-like": (lambda: T.OPTConfig(**opt, word_embed_proj_dim=16, do_layer_norm_before=False),
                          T.OPTForCausalLM),
        "gpt2": (lambda: T.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                      bos_token_id=0, eos_token_id=0), T.GPT2LMHeadModel),
    }[name]
    cfg = cfg()
    return cfg, cls(cfg)


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "phi", "mixtral", "opt", "opt-350m-like", "gpt2"])
def test_traced_decoder_equals_config_route(family):
    # route (c), the real transformers model run on (batch 2, 7 tokens), against route (b), the
    # same config through config_from_hf + model_workload: same GEMMs and MoE blocks, same counts
    cfg, model = _decoder(family)
    traced = from_torch(model, torch.randint(0, 100, (2, 7)))
    built = model_workload(config_from_hf(cfg.to_dict()), "prefill", batch=2, seq_len=7)
    assert shape_counts(traced) == shape_counts(built)
    assert len(traced.gemms()) == len(built.gemms())      # one layer per projection, merged over blocks
    assert traced.macs == built.macs


def test_traced_names_merge_blocks():
    _, model = _decoder("llama")
    w = from_torch(model, torch.randint(0, 100, (1, 5)))
    by = {l.name: l for l in w.layers}
    assert by["model.layers.*.self_attn.q_proj"].count == 2
    assert by["model.layers.*.self_attn.k_proj"].n == 16            # GQA: 2 kv heads x 8
    assert by["lm_head"].kind == "lm_head" and by["lm_head"].count == 1
    assert by["model.layers.*.self_attn.attn_qk"].count == 2 * 4    # blocks x heads


def _cache_kw(model, cache):
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    return {name: cache, "use_cache": True}


@pytest.mark.parametrize("family", ["llama", "mistral"])
def test_traced_decode_step_equals_config_route(family):
    # one generation step after 6 cached tokens: attention reads 7 keys, or Mistral's window of 4
    cfg, model = _decoder(family)
    model.eval()
    with torch.no_grad():
        out = model(torch.randint(0, 100, (2, 6)), use_cache=True)
    cache = getattr(out, "cache", None) or out.past_key_values
    traced = from_torch(model, torch.randint(0, 100, (2, 1)), kwargs=_cache_kw(model, cache))
    built = model_workload(config_from_hf(cfg.to_dict()), "decode", batch=2, context_len=7)
    keys = min(7, getattr(cfg, "sliding_window", None) or 7)

    def att(w):
        return {l.kind: (l.m * l.count, l.k, l.n) for l in w.gemms() if l.kind.startswith("attn")}

    def lin(w):
        return collections.Counter({k: v for k, v in shape_counts(w).items() if not k[1].startswith("attn")})

    assert lin(traced) == lin(built)
    # transformers folds Mistral's query groups into rows for windowed attention: same MACs and keys
    assert att(traced) == att(built) == {"attn_qk": (2 * 4 * 2, 8, keys), "attn_v": (2 * 4 * 2, keys, 8)}


def _router_choices(model, ids):
    """Tokens per expert in each MoE layer, read from the router modules' own outputs."""
    seen = []
    hooks = [m.gate.register_forward_hook(lambda mod, a, out: seen.append(out[2].detach()))
             for m in model.modules() if type(m).__name__ == "MixtralSparseMoeBlock"]
    with torch.no_grad():
        model.eval()(ids)
    for h in hooks:
        h.remove()
    return [tuple(torch.bincount(s.reshape(-1), minlength=4).tolist()) for s in seen]


@pytest.mark.parametrize("impl", ["grouped_mm", "eager"])
def test_mixtral_expert_tokens_are_the_routers_choice(impl):
    cfg, model = _decoder("mixtral")
    if impl == "eager":
        model.set_experts_implementation("eager")
    ids = torch.randint(0, 100, (2, 7))
    expected = _router_choices(model, ids)
    w = from_torch(model, ids)
    moes = [l for l in w.layers if isinstance(l, MoE)]
    got = [(m.expert_tokens, m.count) for m in moes]
    assert sorted(got) == sorted(collections.Counter(expected).items())
    assert all(m.glu and m.tokens == 14 and m.top_k == 2 and sum(m.expert_tokens) == 28 for m in moes)


def test_moe_trace_is_cached_by_weight_values():
    _, model = _decoder("mixtral")
    ids = torch.randint(0, 100, (1, 9))
    w1 = from_torch(model, ids)
    assert from_torch(model, ids) is w1
    with torch.no_grad():
        for m in model.modules():
            if type(m).__name__ == "MixtralTopKRouter":
                m.weight.mul_(-1.0)          # every token now picks other experts
    w2 = from_torch(model, ids)
    assert w2 is not w1 and shape_counts(w2) == shape_counts(w1)
    assert [l.expert_tokens for l in w2.moes()] != [l.expert_tokens for l in w1.moes()]


def test_trace_runs_once_per_structure_and_shape():
    _, model = _decoder("opt")
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    ids = torch.randint(0, 100, (1, 5))
    w = from_torch(model, ids)
    assert from_torch(model, torch.randint(0, 100, (1, 5))) is w      # same shapes: cached
    assert len(calls) == 1
    assert from_torch(model, torch.randint(0, 100, (1, 6))) is not w  # new shape: traced again
    assert len(calls) == 2


def test_trace_restores_training_mode_and_raises_one_line():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            self.fc(x)
            raise RuntimeError("shape mismatch\nsecond line of detail")

    m = Boom().train()
    with pytest.raises(WorkloadError) as e:
        from_torch(m, torch.randn(2, 4))
    assert str(e.value) == "from_torch: Boom.forward raised RuntimeError: shape mismatch"
    assert m.training and m.fc.training
    with pytest.raises(WorkloadError, match="expected a torch.nn.Module"):
        from_torch(lambda x: x, torch.randn(1))
    with pytest.raises(WorkloadError, match="ran no matrix product"):
        from_torch(nn.ReLU(), torch.randn(3))


def test_mixed_ops_are_recorded_with_their_kinds():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(16, 24))
            self.conv = nn.Conv1d(4, 8, 3, stride=2, padding=1)

        def forward(self, x, y, seq):
            q, k = x @ self.w, y @ self.w                  # 2x10 and 2x6 rows through one weight
            s = torch.einsum("bqd,bkd->bqk", q, k)
            p = torch.softmax(s, dim=-1)
            return torch.matmul(p, k), self.conv(seq)

    w = from_torch(Mixed(), torch.randn(2, 10, 16), torch.randn(2, 6, 16), torch.randn(2, 4, 20))
    gemms = sorted((g.kind, g.m, g.k, g.n, g.count) for g in w.gemms())
    assert gemms == sorted([("linear", 20, 16, 24, 1), ("linear", 12, 16, 24, 1),
                            ("attn_qk", 10, 24, 6, 2), ("attn_v", 10, 6, 24, 2)])
    (c,) = w.convs()
    # a 1-D convolution is a 2-D one of height 1: padded width 22, output floor((22-3)/2)+1 = 10
    assert (c.in_h, c.in_w, c.filter_h, c.filter_w, c.channels, c.num_filters, c.stride_w, c.out_w, c.batch) == \
        (1, 22, 1, 3, 4, 8, 2, 10, 2)


def test_multihead_attention_fast_path():
    e, h, b, s = 16, 4, 2, 5
    w = from_torch(nn.MultiheadAttention(e, h, batch_first=True), *(torch.randn(b, s, e),) * 3)
    assert sorted((g.kind, g.m, g.k, g.n, g.count) for g in w.gemms()) == sorted([
        ("linear", b * s, e, 3 * e, 1), ("attn_qk", s, e // h, s, b * h), ("attn_v", s, s, e // h, b * h),
        ("linear", b * s, e, e, 1)])


def _csv_rows(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))[1:]
    return [(r[0].strip(), *(int(x) for x in r[1:8])) for r in rows if r and r[0].strip()]


def _resnet18_trace():
    tv = _import_torchvision()
    torch.manual_seed(0)
    return from_torch(tv.models.resnet18(weights=None), torch.randn(1, 3, 224, 224))


def test_resnet18_convs_match_the_topology_file():
    # tests/data/resnet18_scalesim_topology.csv: torchvision's resnet18 at 224x224 (He et al. 2016,
    # Table 1) in SCALE-Sim's conv format, inputs written padded (conv1 pads 3, 3x3 convs pad 1)
    w = _resnet18_trace()
    traced = collections.Counter()
    for c in w.convs():
        traced[(c.in_h, c.in_w, c.filter_h, c.filter_w, c.channels, c.num_filters, c.stride_h)] += c.count
        assert c.stride_h == c.stride_w and c.batch == 1 and c.groups == 1
        assert (c.out_h, c.out_w) == ((c.in_h - c.filter_h) // c.stride_h + 1,) * 2      # torch's rule
    rows = _csv_rows(os.path.join(DATA, "resnet18_scalesim_topology.csv"))
    assert traced == collections.Counter(tuple(r[1:]) for r in rows) and len(rows) == 20
    # He et al. 2016, Table 1: 1.8 x 10^9 multiply-adds (convolutions + the 512 x 1000 classifier)
    assert w.macs == pytest.approx(1.8e9, rel=0.01)
    assert [g.name for g in w.gemms()] == ["fc"]


def test_resnet18_convs_match_the_scalesim_reader():
    # What must be equal: input (padded), filter, channels, filters and stride of every conv.  The
    # output size differs where the stride does not divide (in - filter): SCALE-Sim sizes outputs
    # ceil((in - filter + stride) / stride), torch floor((in - filter) / stride) + 1 -- one more
    # row and column for conv1 (230, 7, /2: 113 vs 112) and the six stride-2 3x3 and 1x1
    # convolutions of layers 2-4; the Conv noun keeps each source's own size.
    traced = _resnet18_trace()
    read = load_workload(os.path.join(DATA, "resnet18_scalesim_topology.csv"))

    def geo(c):
        return c.in_h, c.in_w, c.filter_h, c.filter_w, c.channels, c.num_filters, c.stride_h, c.stride_w

    t = collections.Counter()
    for c in traced.convs():
        t[geo(c)] += c.count
    assert t == collections.Counter(geo(c) for c in read.convs() for _ in range(c.count))
    differ = 0
    for c in read.convs():
        assert c.out_h == math.ceil((c.in_h - c.filter_h + c.stride_h) / c.stride_h)
        torch_out = (c.in_h - c.filter_h) // c.stride_h + 1
        differ += c.out_h != torch_out
        assert c.out_h - torch_out == (1 if (c.in_h - c.filter_h) % c.stride_h else 0)
    assert differ == 7


@pytest.mark.slow
def test_vit_small_layers_match_its_definition():
    _import_torchvision()
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    w = from_torch(timm.create_model("vit_small_patch16_224", pretrained=False), torch.randn(1, 3, 224, 224))
    # ViT-S/16 (DeiT-S, Touvron et al. 2021, Table 1): 12 blocks, width 384, 6 heads, MLP 1536,
    # 14 x 14 patches + CLS = 197 tokens; the classifier reads the CLS token only
    t, d, heads, blocks = 197, 384, 6, 12
    assert sorted((g.kind, g.m, g.k, g.n, g.count) for g in w.gemms()) == sorted([
        ("linear", t, d, 3 * d, blocks), ("attn_qk", t, d // heads, t, blocks * heads),
        ("attn_v", t, t, d // heads, blocks * heads), ("linear", t, d, d, blocks),
        ("linear", t, d, 4 * d, blocks), ("linear", t, 4 * d, d, blocks), ("linear", 1, d, 1000, 1)])
    (patch,) = w.convs()
    assert (patch.in_h, patch.filter_h, patch.stride_h, patch.out_h, patch.num_filters) == (224, 16, 16, 14, d)
    assert w.macs / 1e9 == pytest.approx(4.6, rel=0.01)            # DeiT Table 1: 4.6 G


def test_from_torch_without_torch_names_the_extra(monkeypatch):
    import sys

    import archgym.workloads.torch_trace as tt

    monkeypatch.setitem(sys.modules, "torch", None)       # `import torch` now raises ImportError
    with pytest.raises(ImportError) as e:
        tt.from_torch(object())
    assert "pip install 'archgym[models]'" in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, WorkloadError)


@pytest.mark.slow
def test_resnet18_onnx_export_reads_as_the_trace(tmp_path):
    # two independent routes over one network: ONNX shape inference on the exported graph, and the
    # traced module (batch 2, so the batch dimension is carried through both)
    pytest.importorskip("onnx")
    import dataclasses
    import warnings

    from archgym.workloads.onnx_graph import read_onnx

    tv = _import_torchvision()
    torch.manual_seed(0)
    net = tv.models.resnet18(weights=None).eval()
    path = str(tmp_path / "r18.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(1, 3, 224, 224),), path, dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}})
    fields = lambda w: sorted(repr(dataclasses.replace(l, name="")) for l in w.layers)  # noqa: E731
    assert fields(read_onnx(path, batch=2)) == fields(from_torch(net, torch.randn(2, 3, 224, 224)))
