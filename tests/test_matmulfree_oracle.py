"""MatMulFree-v0 metrics against hand-computed oracles (issue #17): every metric of the env for
the default design, a DDR-bound design and the measured single core, on one block at d=512.

The numbers are worked out in the docstrings from the model's stated equations
(experiments/matmulfree/calibration.md §3) and its constants, restated here (not imported), and
checked through both ``evaluate`` (scalar path) and ``evaluate_batch`` (numba batch path).
"""

import math

import numpy as np
import pytest

from simulators.matmulfree import MEASURED_DESIGN, MatMulFreeSimulator, simulate

# constants of the model, restated from their sources
ALM_W_PER_MHZ = 18.0 / (400_000 * 312.0)     # Intel 683058 Table 1
M20K_W_PER_MHZ = 3.7 / (4_600 * 500.0)       # Table 2
DSP_W_PER_MHZ = 5.0 / (2_300 * 500.0)        # Table 3
STATIC_W = 6.86                              # fitted on the projected 13 W
DDR_PJ_PER_BIT = 1300.0 / 64.0               # Horowitz ISSCC 2014
DDR_SUSTAINED = 19.2e9 * 0.85                # DDR4-2400 x64 at 85 % efficiency
SHELL_ALM, SHELL_M20K = 180_000, 1_200
DEVICE_ALM, DEVICE_M20K, DEVICE_DSP = 933_120, 11_721, 5_760
WEIGHT_BYTES = 851_968                       # (3*512*512 + 512*512 + 512*3072 + 1536*512) / 4 (2-bit codes)

DEFAULT = dict(cores=128, clock_mhz=60, mem_port_bits=8, burst_len=64, weight_bits_packed=2.0, acc_bits=24,
               state_precision="fp32", pipelined=True, ddr_channels=1)
DDR_BOUND = dict(DEFAULT, cores=64, clock_mhz=300, mem_port_bits=512)


def _check(m, b, *, cycles, core, latency, moved, alm_core, m20k_core, dsp_core, cores, clock_mhz, breakdown):
    """Every metric from the hand-derived timing and per-core resources."""
    core_w = clock_mhz * (alm_core * ALM_W_PER_MHZ + m20k_core * M20K_W_PER_MHZ + dsp_core * DSP_W_PER_MHZ)
    ddr_w = moved * 8 * DDR_PJ_PER_BIT * 1e-12 / latency
    power = STATIC_W + cores * core_w + ddr_w
    want = {
        "cycles": cycles, "core_cycles": core, "stall_cycles": cycles - core, "latency_s": latency,
        "dram_bytes": moved, "weight_bytes": WEIGHT_BYTES, "power_w": power, "energy_j": power * latency,
        "throughput_per_s": 1 / latency, "tokens_per_s": 1 / latency, "tokens_per_j": 1 / (power * latency),
        "ddr_power_w": ddr_w, "cores_power_w": cores * core_w, "static_shell_power_w": STATIC_W,
        "ddr_latency_s": moved / DDR_SUSTAINED, "core_latency_s": core / (clock_mhz * 1e6),
        "alm_count": SHELL_ALM + cores * alm_core, "m20k_count": SHELL_M20K + cores * m20k_core,
        "dsp_count": cores * dsp_core, "alm_util_frac": (SHELL_ALM + cores * alm_core) / DEVICE_ALM,
        "m20k_util_frac": (SHELL_M20K + cores * m20k_core) / DEVICE_M20K, "dsp_util_frac": cores * dsp_core / DEVICE_DSP,
        "core_alm_count": alm_core, "cores_fit_count": (DEVICE_ALM - SHELL_ALM) // alm_core,
        "active_cores_count": cores, "required_acc_bits": 19, "state_err_frac": 0.0,
    }
    assert m.feasible and bool(b["feasible"][0])
    assert m.cycles == cycles
    for k, v in want.items():
        assert m.get(k) == pytest.approx(v, rel=1e-12, abs=0), k
        assert b[k][0] == pytest.approx(v, rel=1e-12, abs=0), k
    for name, c in breakdown.items():
        assert m.breakdown[name]["cycles"] == c, name
    layers = [n for n in m.breakdown if not n.startswith("unit:")]
    assert layers == ["ifg_proj", "o_proj", "gate_proj", "down_proj"]
    assert sum(m.breakdown[n]["cycles"] for n in layers + ["unit:vector"]) == core
    assert sum(m.breakdown[n]["energy_j"] for n in layers + ["unit:vector", "unit:stall"]) == \
        pytest.approx(m.energy_j, rel=1e-12)
    assert sum(m.breakdown[n]["dram_bytes"] for n in layers) == moved


def _both(design, wl="block-d512"):
    sim = MatMulFreeSimulator()
    idx = sim.design_space().encode(design)[None, :]
    return sim.evaluate(design, wl), sim.evaluate_batch(idx, wl)


def test_default_design_hand_computed():
    """Projected design (128 cores, 60 MHz, 8-bit ports, 64-beat bursts, pipelined, 1 channel),
    one block d=512 (I = 1536, no lm_head): BitLinears ifg (K=512, N=512, x3), o (512, 512),
    gate (512, 3072), down (1536, 512).  128 active cores (fewer cores stream more beats each).

    Per core: 2-bit codes -> 4 weights per byte; row bytes K/4; rows per core ceil(N/128);
    beats = bytes per core (1-byte port); DDR latency ceil(150 ns x 60 MHz) = 9 cycles per matrix;
    barrier 4 + 2*7 = 18 cycles.  Pipelined TMM = 9 + beats per matrix:
      ifg 3 x (9 + 4*128) = 1,563; o 521; gate 9 + 24*128 = 3,081; down 9 + 4*384 = 1,545 -> 6,710
    loads ceil(K*8/128): 3*32 + 32 + 32 + 96 = 256; stores ceil(rows*32/128): 3*1 + 1 + 6 + 1 = 11
    vector program at ceil(n/128) + 8 cycles each: RMS unit 8 x RMSNorm(d) (8+8) + RMSNorm(I) (24+8) = 160;
      row-wise 5 x quant(d) 16 + quant(I) 32 + 7 x ew(d) 12 + 4 x ew(2d) 16 + 2 x ew(2I) 32 = 324
    barriers: 6 BitLinears + 15 reductions = 21 x 18 = 378; issue: 28 vector + 2 x 6 BitLinear instr = 40
    core = 6,710 + 160 + 324 + 256 + 11 + 378 + 40 = 7,879 cycles = 131.3 us at 60 MHz
    DDR: 64-byte transactions, whole granules: 851,968 B moved = the weights -> 52.2 us: core-bound
    Per core: ALMs 4 lanes x (4 + 24/2) + 150 + 800 + 1200 + 300 + 2*8 + 1000 + 500 = 4,030;
      M20K 1 + 2 + 2 + FIFO ceil(1024/20480) = 1 + register file ceil(30,848/20480) = 2 -> 8; DSP 8
    Power 6.86 + 128 x 60 x (4030 a + 8 m + 8 d) + 851,968 x 8 x 20.3125 pJ / 131.3 us (1.05 W).
    """
    m, b = _both(DEFAULT)
    _check(m, b, cycles=7_879, core=7_879, latency=7_879 / 60e6, moved=WEIGHT_BYTES, alm_core=4_030, m20k_core=8,
           dsp_core=8, cores=128, clock_mhz=60,
           breakdown={"ifg_proj": 1_563 + 96 + 3 + 3 * 18, "gate_proj": 3_081 + 32 + 6 + 18,
                      "unit:tmm": 6_710, "unit:rms": 160, "unit:rowwise": 324, "unit:sync": 378, "unit:stall": 0})
    assert m.extra["ddr_power_w"] == pytest.approx(1.0543, abs=1e-4)


def test_ddr_bound_design_hand_computed():
    """64 cores at 300 MHz with 512-bit ports (4,096-byte transactions): the token waits on DDR.

    Per core: rows ceil(N/64), 64 bytes per beat; DDR latency ceil(150 x 300 / 1000) = 45 cycles;
    barrier 4 + 2*6 = 16.  TMM: ifg 3 x (45 + 1024/64) = 183; o 61; gate 45 + 6144/64 = 141;
    down 45 + 3072/64 = 93 -> 478.  loads 256; stores 3*2 + 2 + 12 + 2 = 22.
    vector (ceil(n/64) + 8): RMS 8 x 24 + 56 = 248; row-wise 5 x 24 + 56 + 7 x 16 + 4 x 24 + 2 x 56 = 496
    barriers 21 x 16 = 336; issue 40 -> core = 1,876 cycles (6.25 us).
    DDR: every core's bytes are whole 64-byte granules -> 851,968 B moved in 851,968 / 16.32 GB/s
    = 52.20 us > core: DDR-bound; cycles = ceil(52.20 us x 300 MHz) = ceil(15,661.18) = 15,662.
    (Fewer active cores give the same DDR time, so the 64 cores stay active.)
    DDR power when DDR-bound = 8 bit/B x 20.3125 pJ x 16.32 GB/s = 2.652 W (without the bits-per-byte
    factor it would be 0.33 W).
    Per core: 256 lanes x 16 + 150 + 800 + 1200 + 300 + 2*512 + 1000 + 500 = 9,070 ALMs;
      M20K 5 + FIFO ceil(65,536/20,480) = 4 + register file ceil(37,120/20,480) = 2 -> 11; DSP 8.
    """
    m, b = _both(DDR_BOUND)
    latency = WEIGHT_BYTES / DDR_SUSTAINED
    assert math.ceil(latency * 300e6) == 15_662
    _check(m, b, cycles=15_662, core=1_876, latency=latency, moved=WEIGHT_BYTES, alm_core=9_070, m20k_core=11,
           dsp_core=8, cores=64, clock_mhz=300,
           breakdown={"down_proj": 93 + 96 + 2 + 16, "unit:tmm": 478, "unit:rms": 248, "unit:rowwise": 496,
                      "unit:sync": 336, "unit:stall": 15_662 - 1_876})
    assert m.extra["ddr_power_w"] == pytest.approx(8 * DDR_PJ_PER_BIT * 1e-12 * DDR_SUSTAINED, rel=1e-12)
    assert m.extra["ddr_power_w"] == pytest.approx(2.652, abs=1e-3)
    assert m.breakdown["unit:stall"]["latency_s"] == pytest.approx(latency - 1_876 / 300e6, rel=1e-12)


def test_measured_core_hand_computed():
    """The measured single core (calibration point: 43 ms): 1 core, 8-bit port, one beat per
    transaction, unpipelined, 60 MHz.  Per matrix 9 + txns x 1 (request) + 2 x beats:
      ifg 3 x (9 + 3 x 65,536) = 589,851; o 196,617; gate 9 + 3 x 393,216 = 1,179,657;
      down 9 + 3 x 196,608 = 589,833 -> TMM 2,555,958
    loads 256; stores 3 x 128 + 128 + 768 + 128 = 1,408; no barriers on one core; issue 40
    vector (n + 8): RMS 8 x 1,032 + 3,080 = 11,336; row-wise 5 x 1,032 + 3,080 + 7 x 520 + 4 x 1,032
      + 2 x 3,080 = 22,168
    core = 2,591,166 cycles = 43.186 ms (paper: 43 ms).
    DDR: each 1-byte transaction costs a whole 64-byte DDR4 burst: 64 x 851,968 = 54,525,952 B moved
    (the weights are 851,968 B): 3.34 ms, core-bound.
    Per core: 4,030 ALMs; M20K 5 + FIFO 1 + register file ceil(827,392 / 20,480) = 41 -> 47; DSP 8.
    """
    m, b = _both(MEASURED_DESIGN)
    _check(m, b, cycles=2_591_166, core=2_591_166, latency=2_591_166 / 60e6, moved=64 * WEIGHT_BYTES,
           alm_core=4_030, m20k_core=47, dsp_core=8, cores=1, clock_mhz=60,
           breakdown={"unit:tmm": 2_555_958, "unit:rms": 11_336, "unit:rowwise": 22_168, "unit:sync": 0,
                      "unit:store": 1_408, "o_proj": 196_617 + 32 + 128})
    assert m.latency_s == pytest.approx(43.186e-3, abs=1e-6)


def test_cycles_are_latency_times_clock_for_the_issue_example():
    """#16: simulate("1.3b", cores=64, mem_port_bits=512, clock_mhz=300) is DDR-bound: cycles / clock
    is the token time (19.9 ms), not the core's 0.587 ms."""
    m = simulate("1.3b", cores=64, mem_port_bits=512, clock_mhz=300)
    assert m.latency_s == pytest.approx(19.9e-3, rel=0.01)
    assert m.cycles == math.ceil(m.latency_s * 300e6 - 1e-6)
    assert m.extra["core_cycles"] / 300e6 == pytest.approx(0.587e-3, rel=0.01)
    assert m.extra["stall_cycles"] == m.cycles - m.extra["core_cycles"]
    # bytes moved, not the weight footprint: whole DDR4 bursts
    assert m.dram_bytes >= m.extra["weight_bytes"] > 0


def test_batch_flags_every_infeasibility_like_evaluate():
    sim = MatMulFreeSimulator()
    space = sim.design_space()
    designs = [dict(DEFAULT, acc_bits=16), dict(DEFAULT, pipelined=False, clock_mhz=300), dict(DEFAULT, cores=256)]
    b = sim.evaluate_batch(np.array([space.encode(d) for d in designs]), "1.3b")
    for i, d in enumerate(designs):
        assert bool(b["feasible"][i]) is sim.evaluate(d, "1.3b").feasible is False
