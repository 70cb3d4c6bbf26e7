"""MatMul-free token-generation core model: the paper's calibration points, sanity,
monotonicity, infeasibility (budget, accumulator overflow, timing), bad input, HGRN-bit configs,
the env, and the numba kernel against the slow reference.

Every paper number of this model is a calibration input (the 43 ms fits ``t_req_cycles``, the
23.8 tokens/s sets the projected design's 128 cores, the 13 W fits ``static_shell_w``); no
held-out paper number exists.  The oracle checks of every metric are in
tests/test_matmulfree_oracle.py."""

import math
import re
import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from archgym.env import ArchGymEnv
from rtl_models.ternary import TernaryWeights, accumulate
from simulators import _matmulfree_kernels as kern
from simulators.matmulfree import (
    CONST, DEVICE, MEASURED_DESIGN, MatMulFreeInputError, MatMulFreeSimulator, _config, _program, _timing_reference,
    _wpb, simulate, state_error,
)

SIM = "simulators.matmulfree:MatMulFreeSimulator"
OBJECTIVE = {"spec": "max:tokens_per_s", "targets": ["power_w<=13"]}


# --- the calibration points (arXiv 2406.02528 v1-v5 §6) --------------------------------------
def test_calibration_measured_point_d512_block_43ms_within_10pct():
    """Calibration: ``t_req_cycles`` was fitted on this point."""
    m = simulate("block-d512", **MEASURED_DESIGN)
    assert m.feasible, m.reason
    assert abs(m.latency_s / 0.043 - 1) <= 0.10          # tolerance from the issue
    assert m.cycles == pytest.approx(0.043 * 60e6, rel=0.10)


def test_calibration_projected_point_1p3b_within_15pct():
    """Calibration: the 128 cores come from the 23.8 tokens/s, ``static_shell_w`` from the 13 W."""
    m = simulate("1.3b")                      # the default design is the projected point
    assert m.feasible, m.reason
    assert abs(m.extra["tokens_per_s"] / 23.8 - 1) <= 0.15
    assert abs(m.power_w / 13.0 - 1) <= 0.15
    # weight footprint: 1.30e9 ternary weights at 2 bits (~325 MB/token, ~7.7 GB/s at 23.8 tokens/s)
    assert m.extra["weight_bytes"] == (24 * (4 * 2048 ** 2 + 3 * 2048 * 5632) + 2048 * 32000) // 4
    assert m.extra["weight_bytes"] * m.extra["tokens_per_s"] == pytest.approx(7.7e9, rel=0.15)
    # 64-byte bursts of whole 512-byte rows: the bytes moved are the weights
    assert m.dram_bytes == m.extra["weight_bytes"]


# --- sanity ------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["block-d512", "370m", "1.3b", "2.7b"])
def test_tokens_per_s_and_per_j_are_consistent(model):
    m = simulate(model)
    assert m.extra["tokens_per_s"] == pytest.approx(1 / m.latency_s, rel=1e-12)
    assert m.throughput_per_s == m.extra["tokens_per_s"]
    assert m.energy_j == pytest.approx(m.power_w * m.latency_s, rel=1e-12)
    assert m.extra["tokens_per_j"] == pytest.approx(1 / m.energy_j, rel=1e-12)
    assert m.power_w == pytest.approx(m.extra["static_shell_power_w"] + m.extra["cores_power_w"]
                                      + m.extra["ddr_power_w"], rel=1e-12)
    assert m.feasible and 0 < m.extra["alm_util_frac"] < 1
    assert m.extra["alm_count"] == pytest.approx(m.extra["alm_util_frac"] * DEVICE["alm"])


def test_bigger_model_is_slower_and_packing_helps():
    tps = [simulate(m).extra["tokens_per_s"] for m in ("370m", "1.3b", "2.7b")]
    assert tps[0] > tps[1] > tps[2]
    # 1.6-bit packing moves 5 weights per byte instead of 4: a weight-streaming core gets faster
    assert simulate("1.3b", weight_bits_packed=1.6).extra["tokens_per_s"] > tps[1] * 1.15


@pytest.mark.parametrize("model", ["block-d512", "1.3b"])
def test_monotone_in_cores_port_and_burst(model):
    sim = MatMulFreeSimulator()
    space = sim.design_space()
    sub = space.restrict({"acc_bits": 24, "state_precision": "fp32"})
    idx = sub.grid_indices()
    full = idx.copy()
    full[:, space.names.index("acc_bits")] = space["acc_bits"].index(24)
    full[:, space.names.index("state_precision")] = space["state_precision"].index("fp32")
    tps = sim.evaluate_batch(full, model)["tokens_per_s"].reshape(tuple(sub.nvec))
    for p in ("cores", "mem_port_bits", "burst_len", "ddr_channels", "pipelined", "clock_mhz"):
        step = np.diff(tps, axis=sub.names.index(p))
        assert step.min() >= 0, f"more {p} made {model} slower"


# --- infeasible designs --------------------------------------------------------------------
def test_over_device_budget_is_infeasible_with_numbers():
    ok = simulate("1.3b")
    fit = int(ok.extra["cores_fit_count"])
    assert 128 <= fit < 256
    assert simulate("1.3b", cores=fit).feasible
    m = simulate("1.3b", cores=fit + 1)
    assert not m.feasible
    assert "over device budget" in m.reason and "ALMs" in m.reason and f"{DEVICE['alm']:,}" in m.reason
    assert m.extra["alm_count"] > DEVICE["alm"]
    m = simulate("1.3b", cores=64, mem_port_bits=512)
    assert m.feasible and m.extra["alm_count"] > simulate("1.3b", cores=64).extra["alm_count"]


@pytest.mark.parametrize("model, k, need", [("1.3b", 5632, 21), ("2.7b", 6912, 21), ("370m", 2816, 20),
                                            ("block-d512", 1536, 19)])
def test_narrow_accumulator_is_overflow_possible(model, k, need):
    assert simulate(model, acc_bits=need).feasible
    m = simulate(model, acc_bits=need - 1)
    assert not m.feasible
    assert m.reason == f"overflow possible: K={k}, needs {need} bits, has {need - 1}"
    # the datapath agrees: the worst case (q = 127, every weight +1) overflows need-1 bits, never wraps silently
    w = TernaryWeights.from_ternary(np.ones((1, k), dtype=np.int8), 1.0)
    q = np.full((1, k), 127, dtype=np.int8)
    assert accumulate(q, w, need - 1, "flag").any_overflow
    assert not accumulate(q, w, need, "flag").any_overflow


def test_unpipelined_core_above_60mhz_is_infeasible():
    m = simulate("1.3b", pipelined=False, clock_mhz=100)
    assert not m.feasible and m.reason.startswith("timing: clock_mhz=100")
    assert simulate("1.3b", pipelined=True, clock_mhz=100).feasible


# --- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(cores=0), dict(mem_port_bits=12), dict(weight_bits_packed=1.58),
                                dict(state_precision="fp8"), dict(clock_mhz=400), dict(acc_bits=40), dict(foo=1)])
def test_bad_design_values_raise(kw):
    with pytest.raises(MatMulFreeInputError):
        simulate("1.3b", **kw)


def test_unknown_model_raises_clear_error():
    with pytest.raises(ValueError, match="model='7b' is unknown; allowed: 1.3b, 370m, 2.7b, block-d512"):
        simulate("7b")
    sim = MatMulFreeSimulator()
    with pytest.raises(ValueError, match="workload 'mmfree-7b' is not known to matmulfree: give one of its "
                                         "workloads \\(1.3b, 370m"):
        sim.evaluate(sim.default_design(), "mmfree-7b")


# --- state precision metric ------------------------------------------------------------------
def test_state_error_uses_the_mlgru_datapath():
    assert state_error("fp32") == 0.0
    errs = {p: state_error.__wrapped__(p) for p in ("bf16", "fp16", "int16")}
    # the state is rounded once per token; the output error is of the order of the format's unit
    # roundoff (bf16 2^-9, fp16 2^-12, s5.10 fixed 2^-11 absolute), amplified by the recurrence
    assert 2 ** -9 / 4 < errs["bf16"] < 2 ** -9 * 8
    assert 2 ** -12 / 4 < errs["fp16"] < 2 ** -12 * 16
    assert 0 < errs["int16"] < 2 ** -11 * 16
    assert errs["bf16"] > errs["fp16"]              # bf16 keeps 8 mantissa bits, fp16 11
    m = simulate("1.3b", state_precision="bf16")
    assert m.extra["state_err_frac"] == errs["bf16"]
    ref = simulate("1.3b", cores=1)
    half = simulate("1.3b", cores=1, state_precision="bf16")
    assert half.extra["m20k_count"] < ref.extra["m20k_count"]   # 16-bit state registers need fewer M20K


# --- env --------------------------------------------------------------------------------------
def test_env_passes_check_env_and_flags_infeasible_steps():
    env = ArchGymEnv(simulator=SIM, objective=OBJECTIVE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)
    env.reset(seed=0)
    space = env.unwrapped.space
    _, r, term, _, info = env.step(space.encode(env.unwrapped.evaluator.default_design))
    assert term and info["feasible"] and info["target_met"] and r > 0.5
    bad = dict(env.unwrapped.evaluator.default_design, pipelined=False, clock_mhz=300)
    _, r, _, _, info = env.step(space.encode(bad))
    assert r == 0.0 and not info["feasible"] and "timing" in info["reason"]
    bad = dict(env.unwrapped.evaluator.default_design, acc_bits=16)
    _, r, _, _, info = env.step(space.encode(bad))
    assert r == 0.0 and info["reason"].startswith("overflow possible: K=5632")


def test_env_on_every_workload():
    for wl in MatMulFreeSimulator().workloads():
        env = ArchGymEnv(simulator=SIM, workload=wl, objective="max:tokens_per_j")
        env.reset(seed=1)
        obs, r, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and 0.0 <= r <= 1.0


# --- fast kernel vs slow reference ----------------------------------------------------------
@pytest.mark.parametrize("model", ["block-d512", "370m", "1.3b", "2.7b"])
def test_kernel_equals_reference(model):
    sim = MatMulFreeSimulator()
    space = sim.design_space()
    idx = space.sample_indices(np.random.default_rng(7), 150)
    prog = _program(_config(model))
    C = CONST
    out = np.empty(kern.N_FIELDS)
    for row in idx:
        d = space.decode(row)
        kern.token_timing(prog.mats, prog.vecs, prog.n_instr, d["cores"], float(d["clock_mhz"]), d["mem_port_bits"],
                          d["burst_len"], int(_wpb(d["weight_bits_packed"])), d["pipelined"], d["ddr_channels"],
                          int(C["t_req_cycles"]), int(C["fu_latency_cycles"]), int(C["issue_cycles"]),
                          int(C["sync_base_cycles"]), int(C["sync_per_level_cycles"]), int(C["act_bus_bits"]),
                          float(C["ddr_latency_ns"]), float(C["ddr_channel_bytes_per_s"]),
                          int(C["ddr_granule_bytes"]), float(C["ddr_efficiency_frac"]), out)
        ref = _timing_reference(prog, d)
        assert out.tolist() == list(ref.values()), d
    batch = sim.evaluate_batch(idx, model)
    for i, row in enumerate(idx):
        m = sim.evaluate(space.decode(row), model)
        assert bool(batch["feasible"][i]) == m.feasible
        for k, v in m.as_dict().items():
            if k in batch:
                assert batch[k][i] == v or (math.isnan(v) and math.isnan(batch[k][i])), k


# --- HGRN-bit configs beyond the zoo names (issue #13) ------------------------------------------
def test_any_hgrn_bit_config_is_priced_and_keyed_by_its_config():
    from archgym.workloads import ModelConfig, hgrn_bit_workload

    cfg = ModelConfig("my-mmfree", "hgrn-bit", 6, 768, 2048, 1, 1, 32000, "an MMfreeLM config.json", w_bits=2)
    sim = MatMulFreeSimulator()
    m = sim.evaluate(sim.default_design(), hgrn_bit_workload(cfg, "decode"))
    assert m.feasible and m.extra["weight_bytes"] == (6 * (4 * 768 ** 2 + 3 * 768 * 2048) + 768 * 32000) // 4
    assert simulate(cfg).latency_s == m.latency_s
    # the short names are aliases of the zoo configs
    assert simulate("mmfree-1.3b").latency_s == simulate("1.3b").latency_s
    assert sim.evaluate(sim.default_design(), "mmfree-370m/decode").latency_s == simulate("370m").latency_s


@pytest.mark.parametrize("wl, why", [("mmfree-1.3b/prefill?seq_len=8", "phase 'prefill' is not decode"),
                                     ("mmfree-1.3b/decode?batch=4", "batch=4 (only batch 1 is modelled)"),
                                     ("llama-2-7b/decode", "it has no HGRN-bit ModelConfig")])
def test_workloads_it_cannot_price_are_one_line_errors(wl, why):
    from archgym.workloads import WorkloadError

    sim = MatMulFreeSimulator()
    with pytest.raises(WorkloadError, match=f"matmulfree cannot price workload .*{re.escape(why)}"):
        sim.evaluate(sim.default_design(), wl)
    with pytest.raises(MatMulFreeInputError, match="llama-2-7b' is a llama model"):
        simulate(__import__("archgym").workloads.get_model("llama-2-7b"))


# --- raw designs (issue #16) ------------------------------------------------------------------
@pytest.mark.parametrize("key, value, needle", [
    ("clock_mhz", -1, "clock_mhz=-1; allowed: a number in (0, 300]"), ("clock_mhz", math.nan, "clock_mhz=nan"),
    ("clock_mhz", 1 + 2j, "clock_mhz=(1+2j)"), ("cores", 0, "cores=0; allowed: integer in [1, 4096]"),
    ("cores", 2.5, "cores=2.5"), ("mem_port_bits", 12, "a multiple of 8"), ("acc_bits", True, "acc_bits=True"),
    ("state_precision", "fp8", "state_precision='fp8'"), ("pipelined", 1, "pipelined=1; allowed: True, False"),
    # unhashable values raised a bare TypeError before (found by benchmarks/fuzz_inputs.py)
    ("state_precision", ["fp32"], "state_precision=['fp32']; allowed: fp32"),
    ("weight_bits_packed", [2.0], "weight_bits_packed=[2.0]; allowed: 2.0, 1.6"),
])
def test_check_design_rejects_raw_values(key, value, needle):
    from archgym import InvalidDesign

    sim = MatMulFreeSimulator()
    with pytest.raises(InvalidDesign) as e:
        sim.evaluate({**sim.default_design(), key: value}, "1.3b")
    assert needle in str(e.value)
    with pytest.raises(InvalidDesign, match="missing parameter 'cores'"):
        sim.evaluate({k: v for k, v in sim.default_design().items() if k != "cores"}, "1.3b")
    with pytest.raises(InvalidDesign, match="unknown parameter 'lanes'"):
        sim.evaluate({**sim.default_design(), "lanes": 4}, "1.3b")


def test_off_grid_design_and_bad_batch_indices():
    from archgym import InvalidDesign

    sim = MatMulFreeSimulator()
    m = sim.evaluate({**sim.default_design(), "cores": 100, "clock_mhz": 75.5}, "370m")
    assert m.feasible and m.extra["active_cores_count"] <= 100
    with pytest.raises(InvalidDesign, match=r"indices\[0, 8\] = 3 \(ddr_channels\) is outside 0..2"):
        sim.evaluate_batch(np.array([[0, 0, 0, 0, 0, 0, 0, 0, 3]]), "1.3b")
