"""Workload readers: Hugging Face config.json (route b) and ONNX graphs (route d), through their own
functions, load_workload and the CLI.  Tracing torch modules (route c) is in test_workload_trace.py."""

import dataclasses
import json
import os
import sys
import warnings

import pytest

from archgym.cli import main
from archgym.workloads import Conv, Gemm, MoE, WorkloadError, get_model, load_workload, model_workload
from archgym.workloads.hf_config import SUPPORTED_MODEL_TYPES, config_from_hf

HF = os.path.join(os.path.dirname(__file__), "data", "hf_configs")


def hf(name):
    return os.path.join(HF, f"{name}.json")


def shape_fields(cfg):
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("name", "source")}


@pytest.mark.parametrize("zoo, file", [("opt-125m", "opt-125m"), ("opt-1.3b", "opt-1.3b"), ("llama-2-7b", "llama-2-7b"),
                                       ("phi-2", "phi-2"), ("llama-3-8b", "llama-3-8b"), ("yi-6b", "yi-6b")])
def test_zoo_models_from_their_config_json(zoo, file):
    assert shape_fields(config_from_hf(hf(file))) == shape_fields(get_model(zoo))


def _weights(cfg) -> int:
    """Parameters of the model: the GEMM weights the workload prices plus what is not a MAC
    (embeddings, positions, biases, norms), written out per family from the transformers code."""
    w = model_workload(cfg, "decode")
    n = sum(g.k * g.n * g.count for g in w.gemms() if g.kind in ("linear", "lm_head"))
    n += sum(l.count * (l.n_experts * l.matrices * l.d_model * l.d_hidden + l.d_model * l.n_experts) for l in w.moes())
    h, L, f, V = cfg.hidden, cfg.n_layers, cfg.ffn, cfg.vocab
    if cfg.tied_embeddings:
        n -= V * (cfg.word_embed_dim or h)                # the LM head is the embedding
    n += V * (cfg.word_embed_dim or h)                    # token embedding
    if cfg.family == "opt":                               # positions (2048 + 2), 4 biases, fc biases, 2 LN/block
        n += 2050 * h + L * (4 * h + f + h + 4 * h) + 2 * h
    elif cfg.family == "gpt2":                            # 1024 positions; c_attn, c_proj, fc, proj biases; 2 LN
        n += 1024 * h + L * (3 * h + h + f + h + 4 * h) + 2 * h
    elif cfg.family == "phi":                             # q,k,v,dense + fc biases, 1 LN/block, LM head bias
        n += L * (4 * h + f + h + 2 * h) + 2 * h + V
    else:                                                 # RMSNorm: 2 per block + final
        n += L * 2 * h + h
        if cfg.name.startswith("qwen2"):                  # Qwen2: q, k, v biases
            n += L * (h + 2 * cfg.kv_dim)
    return n


# Parameter counts shown on each model's Hugging Face page (safetensors metadata) or model card.
PUBLISHED = {
    "opt-125m": 125_239_296, "opt-1.3b": 1_315_758_080, "gpt2": 124_439_808, "llama-2-7b": 6_738_415_616,
    "llama-3-8b": 8_030_261_248, "yi-6b": 6_061_035_520, "mistral-7b": 7_241_732_096,
    "qwen2-0.5b": 494_032_768, "qwen2-7b": 7_615_616_512, "phi-2": 2_779_683_840, "mixtral-8x7b": 46_702_792_704,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_config_json_gives_the_published_parameter_count(name):
    cfg = config_from_hf(hf(name), name=name)
    assert _weights(cfg) == PUBLISHED[name]


def test_family_specific_shapes():
    gpt2 = model_workload(config_from_hf(hf("gpt2")), "prefill", seq_len=16)
    qkv = next(g for g in gpt2.gemms() if g.name == "qkv_proj")
    assert (qkv.m, qkv.k, qkv.n, qkv.count) == (16, 768, 3 * 768, 12)      # GPT-2's fused c_attn
    assert "q_proj" not in {g.name for g in gpt2.gemms()}
    mix = model_workload(config_from_hf(hf("mixtral-8x7b")), "prefill", seq_len=16)
    (moe,) = mix.moes()
    assert (moe.n_experts, moe.top_k, moe.d_hidden, moe.glu, moe.count) == (8, 2, 14336, True, 32)
    phi = model_workload(config_from_hf(hf("phi-2")), "prefill", seq_len=16)
    norm = next(l for l in phi.layers if l.name == "norm")
    assert norm.count == 32 + 1                     # attention and FFN share one LayerNorm per block
    q05 = config_from_hf(hf("qwen2-0.5b"))
    assert (q05.kv_heads, q05.head_dim, q05.tied_embeddings, q05.sliding_window) == (2, 64, True, 0)


def test_mistral_window_limits_decode_keys():
    qk = lambda w: next(g for g in w.gemms() if g.kind == "attn_qk")  # noqa: E731
    m = load_workload(hf("mistral-7b") + "?phase=decode&context_len=16384")
    assert qk(m).n == 4096                            # sliding_window: the cache keeps 4096 keys
    assert qk(load_workload(hf("mistral-7b") + "?phase=decode&context_len=1000")).n == 1000
    assert qk(load_workload(hf("qwen2-7b") + "?phase=decode&context_len=16384")).n == 16384  # window off
    assert qk(load_workload(hf("mistral-7b") + "?seq_len=8192")).n == 8192    # prefill: dense, as HF runs it


def test_loader_reads_config_json_with_parameters(tmp_path):
    w = load_workload(hf("llama-2-7b") + "?batch=2&seq_len=64")
    same = model_workload(config_from_hf(hf("llama-2-7b")), "prefill", batch=2, seq_len=64)
    assert w.layers == same.layers
    assert "sha256=" in w.source and w.spec.startswith(hf("llama-2-7b") + "?batch=2&seq_len=64")
    assert load_workload(hf("llama-2-7b"), batch=2, seq_len=64) is w          # read once, cached
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text(open(hf("opt-125m")).read())
    assert load_workload(str(folder)).model.hidden == 768                    # a folder holding config.json


def test_hgrn_bit_config_maps_to_the_mmfree_zoo_entry():
    # HGRNBitConfig's fields (ridgerchu/matmulfreellm) at the 370M point of the MMfreeLM README
    d = {"model_type": "hgrn_bit", "hidden_size": 1024, "num_hidden_layers": 24, "vocab_size": 32000,
         "hidden_ratio": 4, "intermediate_size": None, "num_heads": 1, "expand_ratio": 1,
         "tie_word_embeddings": False}
    assert shape_fields(config_from_hf(d)) == shape_fields(get_model("mmfree-370m"))
    with pytest.raises(WorkloadError, match="expand_ratio"):
        config_from_hf({**d, "expand_ratio": 2})


def _write(tmp_path, d, name="config.json"):
    p = tmp_path / name
    p.write_text(d if isinstance(d, str) else json.dumps(d))
    return str(p)


def test_config_errors_are_one_line_naming_file_and_field(tmp_path):
    good = json.load(open(hf("llama-2-7b")))
    cases = [
        ({**good, "model_type": "bert"},
         "model_type 'bert' is not supported; supported: " + ", ".join(SUPPORTED_MODEL_TYPES)),
        ({k: v for k, v in good.items() if k != "model_type"}, "field 'model_type' is missing"),
        ({k: v for k, v in good.items() if k != "intermediate_size"},
         "field 'intermediate_size' is missing; it must hold the FFN width (a positive integer)"),
        ({**good, "hidden_size": -4096}, "field 'hidden_size'=-4096 must be a positive integer"),
        ({**good, "num_key_value_heads": 5}, "num_key_value_heads=5 must divide num_attention_heads=32"),
        ({**good, "tie_word_embeddings": "no"}, "field 'tie_word_embeddings'='no' must be true or false"),
        ("{not json", "is not valid JSON"),
        ([1, 2], "expected a JSON object"),
    ]
    for d, msg in cases:
        p = _write(tmp_path, d if isinstance(d, str) else json.dumps(d))
        with pytest.raises(WorkloadError) as e:
            config_from_hf(p)
        assert msg in str(e.value) and repr(p) in str(e.value) and "\n" not in str(e.value), str(e.value)
    mix = json.load(open(hf("mixtral-8x7b")))
    with pytest.raises(WorkloadError, match="num_experts_per_tok=9 exceeds num_local_experts=8"):
        config_from_hf({**mix, "num_experts_per_tok": 9})
    with pytest.raises(WorkloadError, match="does not exist"):
        config_from_hf(str(tmp_path / "none.json"))


def test_cli_config_json_and_bad_config(tmp_path, capsys):
    assert main(["describe", "archgym/Systolic-v0", "--workload", hf("gpt2"), "--seq-len", "128"]) == 0
    out = capsys.readouterr().out
    assert "gpt2.json?seq_len=128&sha256=" in out and "16,114,089,984 MACs" in out
    bad = _write(tmp_path, {"model_type": "llama", "hidden_size": 64})
    assert main(["eval", "archgym/Systolic-v0", "--workload", bad]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("archgym: error: config file") and "field 'num_attention_heads' is missing" in err
    assert "\n" not in err


# -- ONNX ---------------------------------------------------------------------------------------

def _onnx():
    return pytest.importorskip("onnx")


def _helper_graph(path):
    """A graph built with onnx.helper: projections, single-head attention, a transB Gemm, a weight
    Einsum, a SAME_UPPER strided 2-D conv, a padded 1-D conv and two quantized matmuls, on dims
    named batch and seq."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper
    import numpy as np

    f = TensorProto.FLOAT
    w = lambda n, *s: numpy_helper.from_array(np.zeros(s, np.float32), n)  # noqa: E731
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"], name="/attn/q_proj/MatMul"),
        helper.make_node("MatMul", ["x", "wk"], ["k"], name="/attn/k_proj/MatMul"),
        helper.make_node("MatMul", ["x", "wv"], ["v"], name="/attn/v_proj/MatMul"),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["s"], name="/attn/MatMul"),
        helper.make_node("Softmax", ["s"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["o"], name="/attn/MatMul_1"),
        helper.make_node("Gemm", ["z", "wg", "bg"], ["zg"], name="/head/Gemm", transB=1),
        helper.make_node("Einsum", ["x", "we"], ["xe"], name="/mix/Einsum", equation="bij,jk->bik"),
        helper.make_node("Conv", ["img", "wc"], ["y"], name="/conv2d", strides=[2, 2], auto_pad="SAME_UPPER"),
        helper.make_node("Conv", ["sig", "wc1"], ["y1"], name="/conv1d", strides=[2], pads=[1, 1]),
        helper.make_node("MatMulInteger", ["zq", "wi"], ["zi"], name="/q/MatMulInteger"),
        helper.make_node("QLinearMatMul", ["zq", "sc", "zp", "wi", "sc", "zp", "sc", "zp"], ["zl"],
                         name="/q/QLinearMatMul"),
    ]
    inputs = [helper.make_tensor_value_info("x", f, ["batch", "seq", 32]),
              helper.make_tensor_value_info("z", f, ["batch", 32]),
              helper.make_tensor_value_info("img", f, ["batch", 3, 15, 15]),
              helper.make_tensor_value_info("sig", f, ["batch", 4, 20]),
              helper.make_tensor_value_info("zq", TensorProto.UINT8, ["batch", 32])]
    outs = [helper.make_tensor_value_info(n, f, None) for n in ("o", "zg", "xe", "y", "y1")]
    outs += [helper.make_tensor_value_info("zi", TensorProto.INT32, None),
             helper.make_tensor_value_info("zl", TensorProto.UINT8, None)]
    inits = [w("wq", 32, 32), w("wk", 32, 32), w("wv", 32, 32), w("wg", 10, 32), w("bg", 10), w("we", 32, 24),
             w("wc", 8, 3, 3, 3), w("wc1", 8, 4, 3), numpy_helper.from_array(np.zeros((32, 16), np.uint8), "wi"),
             numpy_helper.from_array(np.array(0.1, np.float32), "sc"),
             numpy_helper.from_array(np.array(0, np.uint8), "zp")]
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outs, inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return str(path)


def test_onnx_helper_graph_layers(tmp_path):
    from archgym.workloads.onnx_graph import read_onnx

    p = _helper_graph(tmp_path / "g.onnx")
    b, s = 3, 5
    w = read_onnx(p, batch=b, seq_len=s)
    assert [(g.name, g.kind, g.m, g.k, g.n, g.count) for g in w.gemms()] == [
        ("/attn/q_proj/MatMul", "linear", b * s, 32, 32, 1), ("/attn/k_proj/MatMul", "linear", b * s, 32, 32, 1),
        ("/attn/v_proj/MatMul", "linear", b * s, 32, 32, 1), ("/attn/MatMul", "attn_qk", s, 32, s, b),
        ("/attn/MatMul_1", "attn_v", s, s, 32, b), ("/head/Gemm", "linear", b, 32, 10, 1),
        ("/mix/Einsum", "linear", b * s, 32, 24, 1), ("/q/MatMulInteger", "linear", b, 32, 16, 1),
        ("/q/QLinearMatMul", "linear", b, 32, 16, 1)]
    c2, c1 = w.convs()
    # SAME_UPPER, stride 2 on 15: output ceil(15/2) = 8, total padding (8-1)*2 + 3 - 15 = 2
    assert (c2.in_h, c2.filter_h, c2.stride_h, c2.out_h, c2.out_w, c2.channels, c2.num_filters, c2.batch) == \
        (17, 3, 2, 8, 8, 3, 8, b)
    # 1-D: height 1, padded width 22, output floor((22 - 3) / 2) + 1 = 10
    assert (c1.in_h, c1.in_w, c1.filter_w, c1.stride_w, c1.out_w, c1.channels) == (1, 22, 3, 2, 10, 4)
    assert read_onnx(p, dims={"batch": b, "seq": s}).layers == w.layers
    assert w.params == {"batch": b, "seq_len": s}


def test_onnx_dynamic_dims_are_errors_naming_the_option(tmp_path):
    from archgym.workloads.onnx_graph import read_onnx

    p = _helper_graph(tmp_path / "g.onnx")
    with pytest.raises(WorkloadError) as e:
        read_onnx(p, seq_len=4)
    assert str(e.value) == (f"ONNX graph {p!r}: dynamic dimension 'batch' of input 'x' is not set; set it with "
                            f"'?dim.batch=N' in the workload text or dims={{'batch': N}} "
                            f"(or batch=N, --batch N on the CLI)")
    with pytest.raises(WorkloadError, match="no dynamic dimension 'seqlen'; its dynamic dimensions: batch, seq"):
        read_onnx(p, dims={"batch": 2, "seqlen": 3})
    with pytest.raises(WorkloadError, match=r"dim.batch=0 must be a positive integer"):
        read_onnx(p, dims={"batch": 0, "seq": 3})
    w = load_workload(p + "?dim.batch=2&dim.seq=5")
    assert w is load_workload(p, dims={"batch": 2, "seq": 5}) and "dim.batch=2&dim.seq=5&sha256=" in w.source


def _torch_net():
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.c2 = torch.nn.Conv2d(8, 16, 3, padding=1, groups=2)
            self.fc1 = torch.nn.Linear(16 * 16 * 16, 64)
            self.fc2 = torch.nn.Linear(64, 10)

        def forward(self, x):
            y = torch.relu(self.c2(torch.relu(self.c1(x))))
            return self.fc2(torch.relu(self.fc1(y.flatten(1))))

    torch.manual_seed(0)
    return torch, Net().eval()


def test_onnx_export_equals_torch_trace(tmp_path):
    # two independent readers of one network: the exported ONNX graph and the traced module
    _onnx()
    torch, net = _torch_net()
    from archgym.workloads import from_torch
    from archgym.workloads.onnx_graph import read_onnx

    path = str(tmp_path / "net.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(2, 3, 32, 32),), path, dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}})
    fields = lambda w: [dataclasses.replace(l, name="") for l in w.layers]  # noqa: E731
    assert fields(read_onnx(path, batch=4)) == fields(from_torch(net, torch.randn(4, 3, 32, 32)))
    static = str(tmp_path / "static.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(1, 3, 32, 32),), static, dynamo=False)
    with pytest.raises(WorkloadError, match="batch=4 given, but no dynamic dimension is named like one.*none"):
        read_onnx(static, batch=4)


def test_bad_onnx_file_is_one_line(tmp_path, capsys):
    _onnx()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf \x00\xff\x12")
    with pytest.raises(WorkloadError) as e:
        load_workload(str(bad))
    assert str(e.value).startswith(f"ONNX graph {str(bad)!r} cannot be loaded: ") and "\n" not in str(e.value)
    assert main(["describe", "archgym/Systolic-v0", "--workload", str(bad)]) == 2
    assert capsys.readouterr().err.strip().startswith("archgym: error: ONNX graph")


def test_missing_onnx_names_the_extra(monkeypatch, tmp_path):
    from archgym.workloads.onnx_graph import read_onnx

    monkeypatch.setitem(sys.modules, "onnx", None)       # `import onnx` now raises ImportError
    with pytest.raises(ImportError) as e:
        read_onnx(str(tmp_path / "x.onnx"))
    msg = str(e.value)
    assert msg.startswith("reading ONNX graphs needs the 'onnx' package") and "pip install 'archgym[models]'" in msg
    assert isinstance(e.value, WorkloadError) and "\n" not in msg


def test_layer_nouns_in_readers_are_the_shared_ones():
    # every reader returns the shared nouns (what the simulators lower)
    w = load_workload(hf("mixtral-8x7b") + "?seq_len=4")
    assert {type(l) for l in w.layers if isinstance(l, (Gemm, MoE, Conv))} == {Gemm, MoE}
