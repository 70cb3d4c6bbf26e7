"""M3ViT model: every metric of three designs worked out by hand (issue #17 item 1).

The expected numbers below come from the model's stated equations and constants (module
docstrings of simulators/m3vit.py and simulators/_m3vit_model.py; experiments/m3vit/
calibration.md), written out as closed forms: they do not call the model's code (the model
simulates the schedule step by step; these sum the steps the docstrings say are exposed).
The only shared input is the routing data (the synthetic router's queues, an input of the
model, not part of it).

Common numbers, ViT-S on PASCAL-Context (T = 1025 tokens, d = 384, 12 heads of 32, FFN
1536 as four 384-wide hidden chunks, 12 blocks, odd blocks MoE with 16 experts of hidden
384, top-4), design pe_in x pe_out = 16 x 96, 300 MHz, 19.2 GB/s:

* pipeline fill per weight chunk / attention matmul: 4 + log2(16) = 8 cycles;
* DRAM: 19.2e9 / 300e6 = 64 B/cycle, latency 200 ns = 60 cycles; a transfer of B bytes
  takes 60 + ceil(B / 64) cycles;
* qkv (384 x 1152, one chunk of 884,736 B weights + 2,304 B biases): load 60 + 13,860 =
  13,920; compute 1025 x ceil(1152/96) x ceil(384/16) + 8 = 1025 x 12 x 24 + 8 = 295,208;
* a 384 x 384 chunk (proj, each MLP FC1/FC2 chunk; 294,912 + 768 B): load 60 + 4,620 =
  4,680; compute with m rows m x 4 x 24 + 8 = 96 m + 8 (98,408 for m = 1025);
* attention per block: QK^T 12 x 1025 x ceil(1025/96) x ceil(32/16) + 8 = 12 x 22,550 + 8,
  AV (32 < 96 outputs: 3 row groups) 12 x ceil(1025/3) x ceil(1025/16) + 8 = 12 x 22,230 + 8:
  537,376 cycles, no weights;
* gate (384 x 16, 12,288 + 32 B): load 60 + 193 = 253; compute (16 < 96: 6 row groups)
  ceil(1025/6) x 24 + 8 = 4,112;
* frame MACs: per block qkv 453,427,200 + attention 2 x 12 x 1025^2 x 32 = 806,880,000 +
  proj 151,142,400; dense MLP 2 x 1025 x 384 x 1536 = 1,209,139,200; MoE: gate 1025 x 384
  x 16 = 6,297,600 + experts 4 x 1025 x 2 x 384^2 = 1,209,139,200.  Total 31,484,851,200.
"""

import numpy as np
import pytest

from archgym.workloads.routing import generate_routing
from simulators.m3vit import DEFAULT_DESIGN, M3ViTSimulator, simulate

T, D, L = 1025, 384, 12
FREQ = 300e6
QKV_LOAD, QKV_COMP = 13_920, 295_208
DD_LOAD, DD_COMP = 4_680, 98_408
ATT = 537_376
GATE_LOAD, GATE_COMP = 253, 4_112
MACS = 6 * (453_427_200 + 806_880_000 + 151_142_400 + 1_209_139_200) + \
    6 * (453_427_200 + 806_880_000 + 151_142_400 + 6_297_600 + 1_209_139_200)
QKV_BYTES, DD_BYTES, GATE_BYTES = 884_736 + 2_304, 294_912 + 768, 12_288 + 32
IO_BYTES = 2 * T * D * 2
# memory of the paper point (calibration.md, "Memory inventory"): 2 x 1152 KiB weights, biases of the
# widest chunk (1152 columns) per buffer, x/K/V of 1201 tokens, 16 queues of 1201 entries of 4 B + 2 B
WEIGHTS, BIASES, ACTS, QUEUES = 2 * 1152 * 1024, 2 * 1152 * 2, 3 * 1201 * 384 * 2, 16 * (1201 * 4 + 2)
# power (TECH in simulators/_m3vit_model.py): static + count x uW/MHz x 300 MHz, + pJ per MAC and per DRAM byte
STATIC_W, DSP_UW, BRAM_UW, URAM_UW, LUT_UW_KIB, MAC_PJ, DRAM_PJ = 7.1288, 1.0, 6.0, 15.0, 0.5, 2.5, 160.0


def _map_memory(onchip_bytes):
    """URAM (288 Kib each, 96), then BRAM36 (36 Kib, 312), then LUTRAM bytes."""
    bits = onchip_bytes * 8
    uram = min(96, -(-bits // (288 * 1024)))
    rest = bits - uram * 288 * 1024
    bram = min(312, -(-rest // (36 * 1024)))
    return uram, bram, -(-(rest - bram * 36 * 1024) // 8)


def _power_w(dsp, bram, uram, lut_bytes, cycles, macs, dram):
    base = STATIC_W + 300 * 1e-6 * (dsp * DSP_UW + bram * BRAM_UW + uram * URAM_UW + lut_bytes / 1024 * LUT_UW_KIB)
    energy = base * cycles / FREQ + 1e-12 * (MAC_PJ * macs + DRAM_PJ * dram)
    return energy


def _queues():
    r = generate_routing(T, 16, 4, 6, seed=0, n_tasks=5)
    return r.queue_lengths()


def test_default_design_every_metric():
    """The paper point on PASCAL (ping-pong, 2 x 1152 KiB, reordered experts).

    Cycles.  With prefetch 1 a chunk's load starts when the chunk before it starts
    computing; both fit the 2,359,296 B pool (largest pair: qkv 884,736 B + a 294,912 B
    chunk).  So a load is exposed only by the part longer than the compute of the chunk
    before it: the first qkv load (13,920, nothing before it), and in every MoE layer the
    first expert's FC1 load after the gate, 4,680 - 4,112 = 568.  Every other load hides:
    qkv (13,920) after an MLP chunk (98,408) or an expert's FC2 (96 n + 8 >= 13,920 for
    n >= 145 tokens), proj and experts (4,680) after >= 98,408 or 96 n + 8 (n >= 49); the
    test checks those queue bounds on the routing.  Experts run FC1 then FC2 for their n
    tokens: 2 (96 n + 8) each, and the 16 queues of a layer hold 4 x 1025 = 4,100 tokens.

      cycles = 13,920 + 12 (295,208 + 537,376 + 98,408) + 6 x 8 x 98,408
               + 6 (4,112 + 2 x 96 x 4,100 + 16 x 2 x 8 + 568) = 20,662,224
      latency = 20,662,224 / 300 MHz = 68.874 ms (Table 4: 69.033)

    DRAM bytes: every weight chunk once + the encoder input and output (2 x 1025 x 384 x 2):
      12 (887,040 + 295,680) + 6 x 8 x 295,680 + 6 (12,320 + 32 x 295,680) + 1,574,400
      = 86,804,160.
    Memory: 2,359,296 + 4,608 + 2,767,104 + 76,896 = 5,207,904 B (4.967 MiB; Table 4:
    4.840), mapped onto 96 URAM (28,311,552 bits), 312 BRAM36 (11,501,568 bits) and
    (41,663,232 - 39,813,120) / 8 = 231,264 B of LUTRAM (budget 6.9 Mb / 8 x 0.5 =
    431,250 B: feasible).  DSPs: 16 x 96 + 96 lane + 32 misc = 1,664 of 1,728.
    Power: 7.1288 + 300e-6 (1,664 x 1 + 312 x 6 + 96 x 15 + 225.84 KiB x 0.5) W, plus
    2.5 pJ x MACs and 160 pJ x DRAM bytes per frame: 10.000 W (the calibration point).
    """
    q = _queues()
    assert q.sum(axis=1).tolist() == [4100] * 6 and (q > 0).all()
    assert q[:, -1].min() >= 145 and q.min() >= 49          # the loads the docstring says are hidden
    cycles = 13_920 + 12 * (QKV_COMP + ATT + DD_COMP) + 6 * 8 * DD_COMP \
        + 6 * (GATE_COMP + 2 * 96 * 4100 + 16 * 2 * 8 + (DD_LOAD - GATE_COMP))
    assert cycles == 20_662_224
    dram = 12 * (QKV_BYTES + DD_BYTES) + 6 * 8 * DD_BYTES + 6 * (GATE_BYTES + 32 * DD_BYTES) + IO_BYTES
    onchip = WEIGHTS + BIASES + ACTS + QUEUES
    uram, bram, lut = _map_memory(onchip)
    assert (uram, bram, lut, onchip) == (96, 312, 231_264, 5_207_904)
    energy = _power_w(1664, bram, uram, lut, cycles, MACS, dram)
    latency = cycles / FREQ
    stalls = 13_920 + 6 * 568
    m = simulate("pascal", "reorder")
    assert m.feasible
    assert m.cycles == cycles
    assert m.latency_s == pytest.approx(latency, rel=1e-12)
    assert m.dram_bytes == dram == 86_804_160
    assert m.onchip_bytes == onchip
    assert m.extra["encoder_macs"] == MACS
    assert m.utilization_frac == pytest.approx(MACS / (1536 * cycles), rel=1e-12)
    assert m.throughput_per_s == pytest.approx(1 / latency, rel=1e-12)
    assert m.energy_j == pytest.approx(energy, rel=1e-12)
    assert m.power_w == pytest.approx(energy / latency, rel=1e-12) and m.power_w == pytest.approx(10.0, abs=1e-4)
    expect = {"dsp_count": 1664, "bram36_count": bram, "uram_count": uram, "lutram_bytes": lut,
              "cache_misses_count": 0, "expert_loads_count": 6 * 16, "dram_stall_cycles": stalls,
              "compute_cycles": cycles - stalls, "weight_buffer_bytes": WEIGHTS, "bias_buffer_bytes": BIASES,
              "activation_buffer_bytes": ACTS, "routing_buffer_bytes": QUEUES, "dsp_util_frac": 1664 / 1728,
              "onchip_util_frac": onchip / ((96 * 288 + 312 * 36) * 1024 / 8)}
    for k, v in expect.items():
        assert m.extra[k] == pytest.approx(v, rel=1e-12), k
    # per-layer breakdown: the exposed loads land on the step that waited for them
    b = m.breakdown
    assert b["qkv"]["cycles"] == 12 * QKV_COMP + 13_920 and b["qkv"]["dram_stall_cycles"] == 13_920
    assert b["attn_qk"]["cycles"] == 12 * (12 * 22_550 + 8) and b["attn_v"]["cycles"] == 12 * (12 * 22_230 + 8)
    assert b["proj"]["cycles"] == 12 * DD_COMP and b["fc1"]["cycles"] == b["fc2"]["cycles"] == 6 * 4 * DD_COMP
    assert b["unit:moe_gate"]["cycles"] == 6 * GATE_COMP
    assert b["unit:moe_experts"]["dram_stall_cycles"] == 6 * 568
    assert b["moe"]["work_macs"] == 6 * (6_297_600 + 1_209_139_200)


def test_no_prefetch_design_exposes_every_load():
    """prefetch_depth = 0: a load starts only when the previous step has ended, so every
    load is exposed: cycles = compute + loads.

      loads = 12 (13,920 + 4,680) + 6 x 8 x 4,680 + 6 (253 + 32 x 4,680) = 1,347,918
      compute = 20,662,224 - 13,920 - 6 x 568 = 20,644,896   (the default's, minus its stalls)
      cycles = 21,992,814, dram_stall_cycles = 1,347,918
    Memory, DSPs, MACs and DRAM bytes are the default design's; energy follows the same
    power equation with the longer frame.
    """
    loads = 12 * (QKV_LOAD + DD_LOAD) + 6 * 8 * DD_LOAD + 6 * (GATE_LOAD + 32 * DD_LOAD)
    comp = 12 * (QKV_COMP + ATT + DD_COMP) + 6 * 8 * DD_COMP + 6 * (GATE_COMP + 2 * 96 * 4100 + 16 * 2 * 8)
    cycles = comp + loads
    assert (loads, comp, cycles) == (1_347_918, 20_644_896, 21_992_814)
    dram = 12 * (QKV_BYTES + DD_BYTES) + 6 * 8 * DD_BYTES + 6 * (GATE_BYTES + 32 * DD_BYTES) + IO_BYTES
    uram, bram, lut = _map_memory(WEIGHTS + BIASES + ACTS + QUEUES)
    energy = _power_w(1664, bram, uram, lut, cycles, MACS, dram)
    m = simulate("pascal", "reorder", prefetch_depth=0)
    assert m.cycles == cycles
    assert m.extra["dram_stall_cycles"] == loads and m.extra["compute_cycles"] == comp
    assert m.dram_bytes == dram and m.extra["encoder_macs"] == MACS
    assert m.energy_j == pytest.approx(energy, rel=1e-12)
    assert m.power_w == pytest.approx(energy / (cycles / FREQ), rel=1e-12)
    assert m.utilization_frac == pytest.approx(MACS / (1536 * cycles), rel=1e-12)


def test_cache_design_stalls_on_every_miss():
    """The cache-based baseline of Table 4 (4 expert slots in the same 2 x 1152 KiB).

    Tokens in order, each with its 4 experts, cached ones first: with 4 slots the cache
    holds the previous token's experts, so a layer misses 4 + sum_t (4 - |E_t & E_t-1|)
    times (E_t: token t's experts; counted here from the routing).  A miss stalls the
    array for 60 + ceil((589,824 + 1,536) / 64) + 8 = 9,308 cycles.  The experts' compute:
    4 x 1025 tokens x (4 x 24 + 4 x 24) + 8 = 787,208 per layer.  The expert step holds the
    whole pool, so the qkv load after each of the first five MoE layers is exposed (13,920)
    as is the first; loads before the expert step hide as in the default design.

      cycles = 6 x 13,920 + 12 (295,208 + 537,376 + 98,408) + 6 x 8 x 98,408
               + 6 (4,112 + 787,208) + misses x 9,308
      DRAM bytes = the dense and gate chunks + misses x (589,824 + 1,536) + input/output
    Memory: weights 2,359,296 (= 4 experts x 589,824), biases 4 x 1,536 = 6,144,
    activations 2,767,104, routing 4 x 3 = 12 B.
    """
    r = generate_routing(T, 16, 4, 6, seed=0, n_tasks=5)
    misses = 0
    for layer in r.experts:
        sets = [set(t) for t in layer.tolist()]
        misses += 4 + sum(4 - len(a & b) for a, b in zip(sets, sets[1:]))
    penalty = 60 + -(-(589_824 + 1_536) // 64) + 8
    assert penalty == 9_308
    comp = 12 * (QKV_COMP + ATT + DD_COMP) + 6 * 8 * DD_COMP + 6 * (GATE_COMP + 4 * 1025 * 192 + 8)
    cycles = 6 * QKV_LOAD + comp + misses * penalty
    dram = 12 * (QKV_BYTES + DD_BYTES) + 6 * 8 * DD_BYTES + 6 * GATE_BYTES + misses * (589_824 + 1_536) + IO_BYTES
    onchip = WEIGHTS + 4 * 1_536 + ACTS + 12
    uram, bram, lut = _map_memory(onchip)
    energy = _power_w(1664, bram, uram, lut, cycles, MACS, dram)
    m = simulate("pascal", "cache")
    assert m.feasible
    assert m.extra["cache_misses_count"] == misses == m.extra["expert_loads_count"]
    assert m.cycles == cycles
    assert m.extra["dram_stall_cycles"] == 6 * QKV_LOAD + misses * penalty
    assert m.extra["compute_cycles"] == comp
    assert m.dram_bytes == dram and m.onchip_bytes == onchip
    assert (m.extra["uram_count"], m.extra["bram36_count"], m.extra["lutram_bytes"]) == (uram, bram, lut)
    assert m.energy_j == pytest.approx(energy, rel=1e-12)
    assert m.latency_s * 1e3 == pytest.approx(640.818, abs=5e-4)   # calibration.md's figure


def test_fixed_power_is_the_papers_convention():
    """power='fixed': M3ViT §4.1 takes 10 W for every FPGA design, so energy = latency x 10 W,
    whatever the hardware (the default model prices the hardware instead)."""
    for s in ("reorder", "cache", "dense"):
        m = simulate("nyud", s, power="fixed")
        assert m.energy_j == pytest.approx(10.0 * m.cycles / FREQ, rel=1e-12)
    lean = simulate("pascal", "reorder", clock_mhz=150)
    assert lean.power_w < simulate("pascal", "reorder").power_w       # fewer MHz: less clocked power


def test_simulator_evaluate_equals_simulate():
    sim = M3ViTSimulator()
    m = sim.evaluate(DEFAULT_DESIGN, "pascal")
    assert m.cycles == 20_662_224 and m.dram_bytes == 86_804_160
    dense = sim.evaluate(DEFAULT_DESIGN, "pascal-dense")
    # the dense frame: the default's blocks with the MLP in every block and no gate/experts
    assert dense.cycles == 13_920 + 12 * (QKV_COMP + ATT + DD_COMP) + 12 * 8 * DD_COMP
    assert np.isclose(dense.latency_s * 1e3, 68.777, atol=5e-4)
