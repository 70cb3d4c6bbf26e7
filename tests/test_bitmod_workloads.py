"""BitMoD-v0 on any workload (issue #13 item 3) and its raw-input checks (issue #16)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from archgym import InvalidDesign
from archgym.workloads import (
    Conv, Elementwise, Gemm, ModelConfig, MoE, Workload, WorkloadError, decoder_workload, get_model,
)
from simulators._bitmod_lowering import lower
from simulators.bitmod import BitmodSimulator, layer_table

DATA = Path(__file__).parent / "data"
FIG7 = json.loads((DATA / "bitmod_fig7_cycles.json").read_text())["models"]
PAPER = json.loads((DATA / "bitmod_paper.json").read_text())
PAPER_MODELS = PAPER["models"]
JSON_NAME = {"opt-1.3b": "OPT-1.3B", "llama-2-7b": "Llama-2-7B", "llama-3-8b": "Llama-3-8B"}


def _sorted_rows(a):
    return sorted(map(tuple, np.asarray(a).tolist()))


@pytest.mark.parametrize("attention", ["hpca", "per_kv_head"])
@pytest.mark.parametrize("phase", ["prefill", "decode"])
@pytest.mark.parametrize("model", PAPER_MODELS)
def test_decoder_lowering_is_the_artifact_table(model, phase, attention):
    """The zoo workload lowered by the env equals the artifact's layer table written out
    separately (``layer_table``, from the artifact's pe_array.py), row for row."""
    w = decoder_workload(get_model(model), phase, seq_len=256)
    t = lower(w, attention)
    assert t.convention == "decoder"
    assert _sorted_rows(t.rows) == _sorted_rows(layer_table(model, phase, attention=attention))


# Fig. 7 counts the env's design space can express: BitMoD-lossless (INT6 g128) and -lossy
# (FP4-ext g128 prefill on 4x4 tiles, FP3-ext g128 decode on 8x2 tiles); reproduction, not fitted.
_ENV_FIG7 = [(m, ph, acc) for m in JSON_NAME for ph in ("prefill", "decode") for acc in ("BitMoD-LL", "BitMoD-LY")]


@pytest.mark.parametrize("model, phase, accel", _ENV_FIG7)
def test_env_path_reproduces_fig7(model, phase, accel):
    sim = BitmodSimulator()
    tiles = dict(tile_rows=4, tile_cols=4) if phase == "prefill" else dict(tile_rows=8, tile_cols=2)
    dtype = "int6" if accel == "BitMoD-LL" else ("fp4-ext" if phase == "prefill" else "fp3-ext")
    m = sim.evaluate({**sim.default_design(), **tiles, "w_dtype": dtype}, f"{model}/{phase}")
    assert m.cycles == FIG7[JSON_NAME[model]][phase][accel]
    assert sum(v["cycles"] for v in m.breakdown.values()) == m.cycles


def test_fig9_4bit_decode_is_a_prediction_of_the_env_path():
    """Held out: the 4-bit (FP4-ext g128) decode cycles of the paper's Fig. 9 data (Phi-2 and
    Llama-2-7B), which no constant was fitted on, through the env's workload path."""
    fig9 = json.loads((DATA / "bitmod_fig9_pareto.json").read_text())["data"]["bitmod"]
    sim = BitmodSimulator()
    design = {**sim.default_design(), "tile_rows": 8, "tile_cols": 2, "w_dtype": "fp4-ext"}
    for model in ("phi-2", "llama-2-7b"):
        assert sim.evaluate(design, f"{model}/decode").cycles == fig9[model]["4-bit"][1]


def test_generative_is_prefill_plus_decode_steps_per_layer():
    sim = BitmodSimulator()
    d = sim.default_design()
    g = sim.evaluate(d, "llama-3-8b/generative?gen_tokens=7&context_len=512")
    p = sim.evaluate(d, "llama-3-8b/prefill")
    s = sim.evaluate(d, "llama-3-8b/decode?context_len=512")
    assert g.cycles == p.cycles + 7 * s.cycles
    assert g.energy_j == pytest.approx(p.energy_j + 7 * s.energy_j, rel=1e-12)
    assert g.breakdown["decode.attn_v"]["cycles"] == 7 * s.breakdown["attn_v"]["cycles"]
    assert g.breakdown["prefill.lm_head"] == p.breakdown["lm_head"]


def test_zoo_names_keep_their_meaning():
    sim = BitmodSimulator()
    w = sim.workload("yi-6b/generative")
    assert (w.params["seq_len"], w.params["context_len"], w.params["gen_tokens"], w.params["batch"]) == (256, 256, 20, 1)
    assert sim.workloads()[0] == "llama-2-7b/prefill"


def test_batch_scales_linear_tokens_and_repeats_attention_per_sequence():
    """Batch B: linear layers see B*T tokens, each sequence its own attention (count x B)."""
    sim = BitmodSimulator()
    d = sim.default_design()
    one = lower(sim.workload("opt-1.3b/decode"))
    four = lower(sim.workload("opt-1.3b/decode?batch=4"))
    for r1, r4, name in zip(one.rows, four.rows, [one.names[i] for i in one.group]):
        if name.startswith("attn"):
            assert r4[0] == 4 * r1[0] and list(r4[1:]) == list(r1[1:])
        else:
            assert r4[4] == 4 * r1[4] and list(r4[:4]) == list(r1[:4])
    m1, m4 = sim.evaluate(d, "opt-1.3b/decode"), sim.evaluate(d, "opt-1.3b/decode?batch=4")
    # decode is DRAM-bound on weights: 4 sequences cost far less than 4 single ones
    assert m1.cycles < m4.cycles < 2 * m1.cycles


def test_plain_gemm_workload_per_layer_cycles_are_the_gemm_model():
    """A workload of GEMMs named after torch modules (what archgym.emulate builds): one breakdown
    entry per name with exactly that GEMM's cycles (priced alone)."""
    sim = BitmodSimulator()
    d = sim.default_design()
    layers = (Gemm("model.layers.0.mlp.fc1", 17, 256, 1024), Gemm("model.layers.0.mlp.fc2", 17, 1024, 256),
              Gemm("lm_head", 17, 256, 5000))
    m = sim.evaluate(d, Workload("emulate/bitmod", layers))
    assert list(m.breakdown) == [g.name for g in layers]
    for g in layers:
        alone = sim.evaluate(d, Workload("one", (g,)))
        assert m.breakdown[g.name]["cycles"] == alone.cycles
        assert m.breakdown[g.name]["energy_j"] == pytest.approx(alone.energy_j, rel=1e-12)
    assert sum(v["cycles"] for v in m.breakdown.values()) == m.cycles


def test_conv_is_priced_as_its_im2col_gemm():
    sim = BitmodSimulator()
    d = {**sim.default_design(), "group_size": 64}
    conv = Conv("conv3", 58, 58, 3, 3, 64, 128, stride_h=2, stride_w=2, batch=2)
    g = conv.as_gemm()  # M = 2*28*28, K = 576, N = 128
    assert (g.m, g.k, g.n) == (2 * 28 * 28, 576, 128)
    mc = sim.evaluate(d, Workload("c", (conv, Elementwise("relu", "relu", 100))))
    mg = sim.evaluate(d, Workload("g", (Gemm("conv3", g.m, g.k, g.n, g.count),)))
    assert mc.cycles == mg.cycles and mc.energy_j == mg.energy_j and list(mc.breakdown) == ["conv3"]
    # 576 = 4.5 * 128: the default group size does not divide the reduction dimension
    bad = sim.evaluate(sim.default_design(), Workload("c", (conv,)))
    assert not bad.feasible and "group_size=128 does not divide the reduction dimension k=576 of layer 'conv3'" \
        in bad.reason


def test_moe_layers_and_mixtral_style_decoders():
    sim = BitmodSimulator()
    d = sim.default_design()
    moe = MoE("moe", tokens=64, d_model=256, d_hidden=512, n_experts=4, top_k=2, glu=True)
    m = sim.evaluate(d, Workload("m", (moe,)))
    parts = sum(sim.evaluate(d, Workload("g", (g,))).cycles for g in moe.as_gemms())
    assert m.cycles == parts and list(m.breakdown) == ["moe"]
    cfg = ModelConfig("tiny-mixtral", "mixtral", 2, 256, 512, 8, 2, 1000, "test", n_experts=4, top_k=2,
                      expert_hidden=512)
    w = decoder_workload(cfg, "generative", seq_len=32, gen_tokens=3)
    m = sim.evaluate(d, w)
    assert m.feasible and "prefill.moe" in m.breakdown and "decode.attn_qk" in m.breakdown
    assert math.isnan(m.extra["ppl_increase_frac"])


@pytest.mark.parametrize("wl", ["m3vit-vit-s/pascal", "mmfree-370m/decode", "opt-125m/prefill?batch=3",
                                "llama-7b/decode?context_len=4096"])
def test_other_zoo_workloads_are_priced(wl):
    sim = BitmodSimulator()
    m = sim.evaluate(sim.default_design(), wl)
    assert m.feasible and m.cycles > 0 and set(m.breakdown) == {n for n, _ in sim.workload(wl).lowered()}
    assert math.isnan(m.extra["ppl_increase_frac"])


def test_hpca_attention_convention_only_for_decoders():
    """Attention GEMMs of a non-decoder workload are plain GEMMs with activation operands."""
    w = Workload("att", (Gemm("qk", 100, 64, 100, 12, kind="attn_qk"),))
    t = lower(w)
    assert t.convention == "gemm" and t.rows.tolist() == [[12, 100, 64, 64, 100, 1]]
    assert t.reductions == ()  # no weights: no group-size constraint


def test_workload_without_mac_layers_is_refused():
    sim = BitmodSimulator()
    with pytest.raises(WorkloadError, match="no GEMM, convolution or MoE layer"):
        sim.evaluate(sim.default_design(), Workload("e", (Elementwise("relu", "relu", 10),)))


# --- ppl_increase_frac: a lookup of the paper's Table VI ---------------------------------------
@pytest.mark.parametrize("i, model", list(enumerate(PAPER_MODELS)))
def test_ppl_increase_is_table6(i, model):
    """Calibration-free lookup: Table VI Wikitext-2 (g128) / FP16 - 1, from tests/data."""
    sim = BitmodSimulator()
    t6 = PAPER["table6_wikitext2_ppl"]
    for dtype in ("fp3-ext", "fp4-ext"):
        m = sim.evaluate({**sim.default_design(), "w_dtype": dtype}, f"{model}/prefill")
        assert m.extra["ppl_increase_frac"] == pytest.approx(t6[dtype][i] / t6["fp16"][i] - 1, rel=1e-12)
    assert sim.evaluate({**sim.default_design(), "w_dtype": "int6"}, f"{model}/decode").extra["ppl_increase_frac"] == 0


def test_ppl_is_nan_for_a_model_with_the_same_shapes_but_no_table_entry():
    """llama-7b has Llama-2-7B's shapes (same cycles) but is another model: no Table VI entry."""
    sim = BitmodSimulator()
    d = sim.default_design()
    a, b = sim.evaluate(d, "llama-7b/prefill"), sim.evaluate(d, "llama-2-7b/prefill")
    assert a.cycles == b.cycles and math.isnan(a.extra["ppl_increase_frac"])
    assert "tabulated" in sim.reference and "Table VI" in sim.reference


# --- raw designs (issue #16) --------------------------------------------------------------------
@pytest.mark.parametrize("key, value, needle", [
    ("tile_cols", -5, "tile_cols=-5 must be an integer in [1, 64]"),
    ("tile_rows", 2.5, "tile_rows=2.5 must be an integer"),
    ("act_buffer_kb", math.nan, "act_buffer_kb=nan must be a real number"),
    ("weight_buffer_kb", math.inf, "weight_buffer_kb=inf"),
    ("clock_mhz", -1, "clock_mhz=-1 must be a real number in [1, 3000]"),
    ("clock_mhz", 1e6, "clock_mhz=1000000.0"),
    ("dram_bits_per_cycle", 3 + 4j, "dram_bits_per_cycle=(3+4j) must be a real number"),
    ("dp_size", True, "dp_size=True must be an integer"),
    ("dp_size", "4", "dp_size='4'"),
    ("w_dtype", "fp2", "w_dtype='fp2' is not allowed; allowed: fp3-ext, fp4-ext, int6, int8"),
    ("group_size", 0, "group_size=0 must be an integer"),
    ("act_buffer_kb", 0.05, "act_buffer_kb=0.05 is smaller than one 32x4 activation tile"),
])
def test_check_design_rejects_values_the_model_cannot_price(key, value, needle):
    sim = BitmodSimulator()
    with pytest.raises(InvalidDesign) as e:
        sim.evaluate({**sim.default_design(), key: value}, "llama-2-7b/prefill")
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_check_design_dequantization_must_hide_behind_the_group():
    """8 cycles of bit-serial dequantization per group must overlap the group's G/D x L cycles."""
    sim = BitmodSimulator()
    with pytest.raises(InvalidDesign, match="group_size=16 with dp_size=8 .* allowed: group_size >= 32"):
        sim.check_design({**sim.default_design(), "group_size": 16, "dp_size": 8})
    assert sim.check_design({**sim.default_design(), "group_size": 16, "dp_size": 4})["group_size"] == 16


def test_check_design_names_missing_and_unknown_keys():
    sim = BitmodSimulator()
    d = sim.default_design()
    with pytest.raises(InvalidDesign, match="missing parameter 'clock_mhz'"):
        sim.evaluate({k: v for k, v in d.items() if k != "clock_mhz"})
    with pytest.raises(InvalidDesign, match="unknown parameter 'pe_rows'"):
        sim.evaluate({**d, "pe_rows": 3})


def test_off_grid_designs_are_priced():
    sim = BitmodSimulator()
    d = {**sim.default_design(), "tile_rows": 3, "tile_cols": np.int64(5), "clock_mhz": 933.5,
         "act_buffer_kb": 300.0, "dram_bits_per_cycle": np.float64(200.0)}
    m = sim.evaluate(d, "phi-2/decode")
    assert m.feasible and m.extra["pe_count"] == 24 * 40 and m.latency_s == pytest.approx(m.cycles / 933.5e6)


def test_evaluate_batch_rejects_out_of_range_indices():
    sim = BitmodSimulator()
    with pytest.raises(InvalidDesign, match=r"indices\[0, 8\] = 4 \(clock_mhz\) is outside 0..3"):
        sim.evaluate_batch(np.array([[0, 0, 0, 0, 0, 0, 0, 0, 4]]), "phi-2/decode")
    with pytest.raises(InvalidDesign):
        sim.evaluate_batch(np.array([[-1, 0, 0, 0, 0, 0, 0, 0, 0]]), "phi-2/decode")
    with pytest.raises(InvalidDesign):
        sim.evaluate_batch(np.zeros((2, 8), dtype=int), "phi-2/decode")


def test_batch_equals_single_on_generic_and_decoder_workloads():
    sim = BitmodSimulator()
    space = sim.design_space()
    idx = space.sample_indices(np.random.default_rng(5), 60)
    w = Workload("mix", (Gemm("a", 33, 512, 640), Conv("c", 16, 16, 3, 3, 64, 32), Gemm("s", 9, 64, 9, 4,
                                                                                        kind="attn_qk")))
    for wl in (w, "llama-3-8b/generative?batch=2"):
        b = sim.evaluate_batch(idx, wl)
        for i in range(0, 60, 7):
            m = sim.evaluate(space.decode(idx[i]), wl)
            assert bool(b["feasible"][i]) == m.feasible
            if m.feasible:
                for k, v in m.as_dict().items():
                    if not math.isnan(v):
                        assert b[k][i] == pytest.approx(v, rel=1e-12), k


def test_describe_lists_what_bitmod_accepts():
    sim = BitmodSimulator()
    assert "convolution" in sim.accepts and "decoder" in sim.accepts
