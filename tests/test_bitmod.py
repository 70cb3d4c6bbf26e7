"""BitMoD accelerator model: the paper's Fig. 7 cycles exactly, its speedups and energies, the env."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators import _bitmod_kernels as kern
from simulators.bitmod import (
    ACCEL_SPECS, ACCELS, MODELS, BitmodSimulator, _layer_reference, generative, layer_table, simulate_model,
)

DATA = Path(__file__).parent / "data"
FIG7 = json.loads((DATA / "bitmod_fig7_cycles.json").read_text())["models"]
ENERGY = json.loads((Path(__file__).parent.parent / "experiments" / "bitmod" / "paper_energy_uj.json").read_text())
NAME = {"OPT-1.3B": "opt-1.3b", "Llama-2-7B": "llama-2-7b", "Llama-3-8B": "llama-3-8b"}
ACC = {"FP16": "fp16", "ANT": "ant", "OliVe": "olive", "BitMoD-LL": "bitmod-lossless", "BitMoD-LY": "bitmod-lossy"}
CASES = [(NAME[m], ph, ACC[a], v) for m, d in FIG7.items() for ph, dd in d.items() for a, v in dd.items()]


@pytest.mark.parametrize("model, phase, accel, paper", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_fig7_cycles_exact(model, phase, accel, paper):
    m = simulate_model(model, accel, phase)
    assert isinstance(m.cycles, int)
    assert m.cycles == paper


def test_all_30_published_numbers_covered():
    assert len(CASES) == 30


# bitmod.md §4.1: per-model speedups over FP16 (two decimals), including the three models whose
# raw cycles are withheld (Phi-2, Yi-6B, Llama-2-13B): an independent check of the model shapes.
SPEEDUP = {
    ("prefill", "ant"): [1.52, 1.65, 1.66, 1.62, 1.64, 1.75],
    ("prefill", "olive"): [1.66, 1.80, 1.83, 1.79, 1.83, 1.98],
    ("prefill", "bitmod-lossless"): [1.99, 2.02, 2.04, 1.91, 1.89, 2.09],
    ("prefill", "bitmod-lossy"): [2.87, 2.72, 3.04, 2.62, 2.57, 3.12],
    ("generative", "ant"): [2.42, 2.50, 2.46, 2.52, 2.50, 2.72],
    ("generative", "olive"): [2.88, 2.93, 2.89, 3.08, 3.06, 3.25],
    ("generative", "bitmod-lossless"): [2.41, 2.41, 2.43, 2.39, 2.36, 2.45],
    ("generative", "bitmod-lossy"): [4.20, 4.09, 4.33, 4.09, 4.00, 4.34],
}


def _cycles(model, accel, task):
    return simulate_model(model, accel, "prefill").cycles if task == "prefill" else generative(model, accel)["cycles"]


@pytest.mark.parametrize("task, accel", list(SPEEDUP))
def test_speedups_match_paper_to_its_two_decimals(task, accel):
    for model, paper in zip(MODELS, SPEEDUP[(task, accel)]):
        sp = _cycles(model, "fp16", task) / _cycles(model, accel, task)
        assert round(sp, 2) == pytest.approx(paper, abs=1e-9), (model, sp)


def test_headline_means():
    # 1.69x vs ANT and 1.48x vs OliVe = mean of the two rounded task means (bitmod.md §4.1)
    for base, paper in (("ant", 1.69), ("olive", 1.48)):
        task = [np.mean([_cycles(m, base, t) / _cycles(m, "bitmod-lossy", t) for m in MODELS])
                for t in ("prefill", "generative")]
        assert round((round(task[0], 2) + round(task[1], 2)) / 2 + 1e-9, 2) == paper


@pytest.mark.parametrize("phase", ["prefill", "decode"])
@pytest.mark.parametrize("accel", ACCELS)
def test_dram_energy_matches_artifact_to_a_microjoule(phase, accel):
    """DRAM energy is a closed form (18.75 pJ/bit): an independent check of the traffic model."""
    for i, model in enumerate(ENERGY["models"]):
        on, total = ENERGY[phase][accel][i]
        m = simulate_model(model, accel, phase)
        assert m.extra["dram_energy_j"] * 1e6 == pytest.approx(total - on, abs=1.0)


def test_total_energy_within_fit_tolerance():
    """On-chip SRAM energy uses 3 constants fitted on these numbers (experiments/bitmod/fit_sram.py);
    this guards the fit (0.39 % on-chip, < 0.1 % total), it is not an independent check."""
    for phase in ("prefill", "decode"):
        for accel in ACCELS:
            for i, model in enumerate(ENERGY["models"]):
                total = ENERGY[phase][accel][i][1]
                assert simulate_model(model, accel, phase).energy_j * 1e6 == pytest.approx(total, rel=2e-3)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(MODELS), st.sampled_from(["prefill", "decode"]), st.sampled_from(["hpca", "per_kv_head"]),
       st.integers(1, 128), st.integers(1, 64), st.sampled_from([1, 2, 4, 8]), st.floats(2, 16),
       st.sampled_from([64, 256, 512, 2048]), st.sampled_from([64, 256, 512]))
def test_kernel_equals_slow_reference(model, phase, attention, H, W, D, wbits, kb, bw):
    layers = layer_table(model, phase, attention=attention)
    lat = math.ceil(math.floor(wbits) / 2)
    out = np.empty(kern.N_FIELDS)
    kern.model_eval(layers, H, W, D, lat, 4, wbits, 8.0, 16.0, kb * 1024.0, kb * 1024.0, bw, out)
    ref = [_layer_reference(tuple(r), H, W, D, lat, 4, wbits, 8.0, kb * 1024.0, kb * 1024.0, bw) for r in layers]
    assert out[0] == sum(r["compute"] for r in ref)
    assert out[1] == sum(r["cycles"] for r in ref)
    assert out[2] == sum(r["tiles"] for r in ref)
    assert out[3] + out[4] + out[5] == sum(r["dram_bits"] for r in ref)


def test_bit_serial_latency_is_the_datapath_rule():
    """The analytic L = ceil(floor(w)/2) equals the bit-serial PE's terms per weight (rtl_models/bitmod)."""
    from rtl_models.bitmod import terms_per_weight

    for bits, wprec in ((3, 3.0625), (4, 4.0625), (6, 6.0625), (8, 8.0625)):
        assert math.ceil(math.floor(wprec) / 2) == terms_per_weight(bits)


def test_per_kv_head_attention_option():
    a = simulate_model("llama-3-8b", "bitmod-lossy", "prefill")
    b = simulate_model("llama-3-8b", "bitmod-lossy", "prefill", attention="per_kv_head")
    assert b.cycles < a.cycles  # far fewer attention MACs than the HPCA one-big-matmul treatment
    t = layer_table("llama-3-8b", "decode", attention="per_kv_head")
    att = t[t[:, 5] == 1]
    assert att[0, 0] == 32 * 8 and att[0, 4] == 4  # 8 KV heads per layer, 4 queries share each


@pytest.mark.parametrize(
    "kw, needle",
    [
        (dict(model="gpt-9"), "model='gpt-9'; allowed: opt-1.3b"),
        (dict(accel="tpu"), "accel='tpu'; allowed: fp16"),
        (dict(phase="train"), "phase='train'"),
        (dict(attention="flash"), "attention='flash'"),
        (dict(act_buffer_kb=0.01), "act_buffer_kb=0.01 is smaller than one"),
        (dict(weight_buffer_kb=0.001), "weight_buffer_kb=0.001 is smaller than one"),
        (dict(pe_rows=0), "pe_rows=0"),
        (dict(w_bits=17), "w_bits=17"),
    ],
)
def test_bad_input(kw, needle):
    args = dict(model="opt-1.3b", accel="bitmod-lossy", phase="prefill")
    args.update(kw)
    with pytest.raises(ValueError) as e:
        simulate_model(**args)
    assert needle in str(e.value)


def test_env_default_is_the_paper_point_and_batch_matches():
    sim = BitmodSimulator()
    m = sim.evaluate(sim.default_design(), "llama-2-7b/prefill")
    assert m.cycles == FIG7["Llama-2-7B"]["prefill"]["BitMoD-LY"]
    space = sim.design_space()
    idx = space.sample_indices(np.random.default_rng(3), 400)
    for wl in ("phi-2/generative", "yi-6b/decode"):
        batch = sim.evaluate_batch(idx, wl)
        for i in range(0, 400, 13):
            mi = sim.evaluate(space.decode(idx[i]), wl)
            assert bool(batch["feasible"][i]) == mi.feasible
            assert batch["cycles"][i] == mi.cycles
            for k in ("latency_s", "energy_j", "area_mm2", "edp_js", "ppl_increase_frac"):
                assert batch[k][i] == pytest.approx(mi.get(k), rel=1e-12)


def test_group_size_not_dividing_channels_is_infeasible():
    from archgym.space import Choice, DesignSpace

    sim = BitmodSimulator()
    assert sim._group_ok("llama-2-7b", 256)  # 4096 and 11008 = 43 * 256
    assert not sim._group_ok("llama-2-7b", 512)
    m = sim.evaluate({**sim.default_design(), "group_size": 512}, "llama-2-7b/prefill")
    assert not m.feasible and "group_size=512 does not divide" in m.reason


def test_paper_configs_are_the_sheet():
    assert ACCEL_SPECS["olive"].pe_decode == (72, 16) and ACCEL_SPECS["bitmod-lossy"].w_bits("phi-2", "decode") == 3.0625
