"""BitMoD-v0 metrics against oracles that do not call the model's code (issue #17).

* Hand-computed: every metric the env exposes for the default design and for a design whose
  layers are DRAM-bound, on a two-GEMM workload, with the numbers worked out in the docstrings
  from the model's stated equations (the HPCA'25 artifact's formulas, commit a902a09) and its
  constants (restated here, not imported).
* An independent plain-Python oracle of the same equations, written here, against both
  ``evaluate`` (scalar path) and ``evaluate_batch`` (numba path) on random designs and GEMM
  workloads: the two paths share code, so each is checked against the oracle, not only
  against the other.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archgym.workloads import Gemm, Workload
from simulators.bitmod import BitmodSimulator

# The model's constants, restated from their sources (a change in the model must show up here).
PE_PJ_D4 = 0.56         # pJ per cycle of the BitMoD PE at D=4 (paper's PE table)
PE_UM2_D4 = 1507.7      # um^2 of the BitMoD PE at D=4
PR = 1.5                # place-and-route factor on PE energy (artifact pe_array.py)
ENC_UM2 = 2419.0        # encoder per 8x8 tile (paper Table X)
SRAM_UM2_PER_BIT = 0.195
RD0, RD1, WR64 = 52.0515, 0.0827, 9.9079   # fitted CACTI stand-ins (experiments/bitmod/fit_sram.py)
DRAM_PJ_PER_BIT = 1200 / 64
KB = 1024

TWO_GEMMS = Workload("two", (Gemm("fc", 256, 4096, 4096), Gemm("dec", 1, 4096, 4096)))
DRAM_BOUND = dict(tile_rows=8, tile_cols=8, dp_size=8, w_dtype="fp3-ext", group_size=64, act_buffer_kb=128,
                  weight_buffer_kb=128, dram_bits_per_cycle=64, clock_mhz=500)


def _check(m, cycles, compute, tiles, dram_bits, writes_w, writes_a, pe_pj_cycle, rd_tile, wr_w, wr_a, area_um2,
           clock_hz, pe_count, pe_area_um2):
    """Every metric from hand-derived totals (energies in pJ)."""
    e_cmp = pe_pj_cycle * compute
    e_rd = rd_tile * tiles
    e_wr = wr_w * writes_w + wr_a * writes_a
    e_dram = DRAM_PJ_PER_BIT * dram_bits
    energy = (e_cmp + e_rd + e_wr + e_dram) * 1e-12
    latency = cycles / clock_hz
    assert m.feasible
    assert m.cycles == cycles
    assert m.extra["compute_cycles"] == compute
    assert m.dram_bytes == dram_bits / 8
    assert m.extra["compute_energy_j"] == pytest.approx(e_cmp * 1e-12, rel=1e-12)
    assert m.extra["sram_read_energy_j"] == pytest.approx(e_rd * 1e-12, rel=1e-12)
    assert m.extra["sram_write_energy_j"] == pytest.approx(e_wr * 1e-12, rel=1e-12)
    assert m.extra["dram_energy_j"] == pytest.approx(e_dram * 1e-12, rel=1e-12)
    assert m.extra["onchip_energy_j"] == pytest.approx((e_cmp + e_rd + e_wr) * 1e-12, rel=1e-12)
    assert m.energy_j == pytest.approx(energy, rel=1e-12)
    assert m.latency_s == pytest.approx(latency, rel=1e-15)
    assert m.power_w == pytest.approx(energy / latency, rel=1e-12)
    assert m.throughput_per_s == pytest.approx(1 / latency, rel=1e-15)
    assert m.extra["edp_js"] == pytest.approx(energy * latency, rel=1e-12)
    assert m.area_mm2 == pytest.approx(area_um2 * 1e-6, rel=1e-12)
    assert m.extra["pe_array_area_mm2"] == pytest.approx(pe_area_um2 * 1e-6, rel=1e-12)
    assert m.extra["pe_count"] == pe_count
    assert math.isnan(m.extra["ppl_increase_frac"])  # not one of the paper's six models


def test_default_design_hand_computed():
    """Default design: 32x32 PEs (4x4 tiles), D=4, FP4-ext g128 -> w = 4 + 8/128 = 4.0625 bits,
    L = ceil(floor(4.0625)/2) = 2 cycles per weight; 512 KB buffers (524,288 B); 256 bit/cycle; 1 GHz.

    fc (m=256 tokens, k=4096, n=4096):
      tiles = ceil(4096/4) * ceil(4096/32) * ceil(256/32) = 1024*128*8 = 1,048,576; compute = 2,097,152
      W = ceil(4096*4.0625/8)*4096 = 2080*4096 = 8,519,680 B; I = 4096*2*256 = 2,097,152 B; O = 2,097,152 B
      both > 524,288: weights re-read ceil(I/512K) = 4 times (4*W + I = 36,175,872) beats inputs re-read
      ceil(W/512K) = 17 times (17*I + W = 44,171,264) -> DRAM bits = (4*W + I + O)*8 = 306,184,192
      DRAM cycles = 306,184,192/256 = 1,196,032 < compute: compute-bound, 2,097,152 cycles
      SRAM writes: weights ceil(4096*4.0625/64)*4096*4 = 260*16384 = 4,259,840; inputs 1024*256; outputs 1024*256
    dec (m=1): tiles = 1024*128*1 = 131,072; compute = 262,144; W = 8,519,680 B > 512K but I = 8,192 B fits:
      no re-read; DRAM bits = (W + 8192 + 8192)*8 = 68,288,512 -> 266,752 cycles > compute: DRAM-bound
      SRAM writes: weights 260*4096 = 1,064,960; inputs 1024; outputs 1024
    Totals: cycles 2,097,152 + 266,752 = 2,363,904; compute 2,359,296; tiles 1,179,648;
      DRAM 374,472,704 bits = 46,809,088 B.
    Energy: compute 0.56*1.5*1024 = 860.16 pJ per cycle; SRAM read per tile (bus widths: weights
      4*ceil(4.0625/4)*4*32/2 = 512 bit, inputs 4*16*32/2 = 1024 bit) = (52.0515 + 0.0827*512)
      + (52.0515 + 0.0827*1024) = 231.1302 pJ; SRAM write 9.9079 pJ per 64-bit word; DRAM 18.75 pJ/bit.
    Area: 1024*1507.7 + 16*2419 (encoders) + (512+512)*8192*0.195 (SRAM) = 3,218,367.36 um^2.
    Latency 2,363,904 ns.
    """
    sim = BitmodSimulator()
    m = sim.evaluate(sim.default_design(), TWO_GEMMS)
    rd_tile = (RD0 + RD1 * 512) + (RD0 + RD1 * 1024)
    assert rd_tile == pytest.approx(231.1302, abs=1e-9)
    _check(m, cycles=2_363_904, compute=2_359_296, tiles=1_179_648, dram_bits=306_184_192 + 68_288_512,
           writes_w=4_259_840 + 1_064_960, writes_a=2 * 262_144 + 2 * 1024, pe_pj_cycle=PE_PJ_D4 * PR * 1024,
           rd_tile=rd_tile, wr_w=WR64, wr_a=WR64, area_um2=1024 * PE_UM2_D4 + 16 * ENC_UM2 + 1024 * 8192 * SRAM_UM2_PER_BIT,
           clock_hz=1e9, pe_count=1024, pe_area_um2=1024 * PE_UM2_D4 + 16 * ENC_UM2)
    assert m.area_mm2 == pytest.approx(3.21836736, rel=1e-12)
    # per-layer breakdown: exactly the per-GEMM numbers above
    assert m.breakdown["fc"]["cycles"] == 2_097_152 and m.breakdown["dec"]["cycles"] == 266_752
    assert m.breakdown["fc"]["dram_bytes"] == 306_184_192 / 8 and m.breakdown["dec"]["dram_bytes"] == 68_288_512 / 8
    assert m.breakdown["dec"]["latency_s"] == pytest.approx(266_752e-9, rel=1e-15)
    e_dec = (PE_PJ_D4 * PR * 1024 * 262_144 + rd_tile * 131_072 + WR64 * (1_064_960 + 2048)
             + DRAM_PJ_PER_BIT * 68_288_512) * 1e-12
    assert m.breakdown["dec"]["energy_j"] == pytest.approx(e_dec, rel=1e-12)
    assert m.breakdown["fc"]["energy_j"] + m.breakdown["dec"]["energy_j"] == pytest.approx(m.energy_j, rel=1e-12)


def test_dram_bound_design_hand_computed():
    """64x64 PEs (8x8 tiles), D=8, FP3-ext g64 -> w = 3 + 8/64 = 3.125 bits, L = ceil(3/2) = 2;
    128 KB buffers (131,072 B), 64 bit/cycle, 500 MHz.  Every layer is DRAM-bound.

    fc: tiles = ceil(4096/8) * ceil(4096/64) * ceil(256/64) = 512*64*4 = 131,072; compute = 262,144
      W = ceil(4096*3.125/8)*4096 = 1600*4096 = 6,553,600 B; I = O = 2,097,152 B; both > 128K:
      weights re-read ceil(I/128K) = 16 times (16*W + I = 106,954,752) beats inputs re-read
      ceil(W/128K) = 50 times (50*I + W = 111,411,200) -> DRAM bits = (16*W + I + O)*8 = 872,415,232
      DRAM cycles = 872,415,232/64 = 13,631,488 (52x the compute)
      SRAM writes: weights ceil(4096*3.125/64)*4096*16 = 200*65536 = 13,107,200; inputs/outputs 262,144 each
    dec: tiles = 512*64*1 = 32,768; compute 65,536; W > 128K, I = 8,192 B fits: no re-read;
      DRAM bits = (6,553,600 + 8192 + 8192)*8 = 52,559,872 -> 821,248 cycles
      SRAM writes: weights 200*4096 = 819,200; inputs 1024; outputs 1024
    Totals: cycles 14,452,736; compute 327,680; tiles 163,840; DRAM 924,975,104 bits = 115,621,888 B.
    Energy: PE at D=8 = 0.56*8/4 = 1.12 pJ, x1.5 x 4096 PEs = 6,881.28 pJ per cycle; SRAM access
      energy scales by sqrt(128/512) = 0.5: read per tile = 0.5*((52.0515 + 0.0827*1024)
      + (52.0515 + 0.0827*4096)) = 263.7635 pJ (bus widths 8*1*4*64/2 = 1024 and 8*16*64/2 = 4096 bit);
      write 0.5*9.9079 pJ per 64-bit word.
    Area: 4096*1507.7*8/4 + 64*2419 + 256*8192*0.195 = 12,914,839.04 um^2.  Latency 14,452,736/500 MHz.
    """
    sim = BitmodSimulator()
    m = sim.evaluate(DRAM_BOUND, TWO_GEMMS)
    rd_tile = 0.5 * ((RD0 + RD1 * 1024) + (RD0 + RD1 * 4096))
    assert rd_tile == pytest.approx(263.7635, abs=1e-9)
    pe_area = 4096 * PE_UM2_D4 * 8 / 4 + 64 * ENC_UM2
    _check(m, cycles=14_452_736, compute=327_680, tiles=163_840, dram_bits=872_415_232 + 52_559_872,
           writes_w=13_107_200 + 819_200, writes_a=2 * 262_144 + 2 * 1024, pe_pj_cycle=PE_PJ_D4 * 2 * PR * 4096,
           rd_tile=rd_tile, wr_w=0.5 * WR64, wr_a=0.5 * WR64, area_um2=pe_area + 256 * 8192 * SRAM_UM2_PER_BIT,
           clock_hz=500e6, pe_count=4096, pe_area_um2=pe_area)
    assert m.area_mm2 == pytest.approx(12.91483904, rel=1e-12)
    assert m.dram_bytes == 115_621_888
    assert m.breakdown["fc"]["cycles"] == 13_631_488 and m.breakdown["dec"]["cycles"] == 821_248
    assert m.breakdown["fc"]["compute_cycles"] == 262_144


# --- an independent oracle of the stated equations ------------------------------------------
def oracle(design: dict, gemms: list[Gemm]) -> dict:
    """The BitMoD-v0 model written out from its stated equations for plain GEMM workloads
    (no attention GEMMs): returns the metrics and per-layer cycles."""
    H, W, D = 8 * design["tile_rows"], 8 * design["tile_cols"], design["dp_size"]
    b = {"fp3-ext": 3, "fp4-ext": 4, "int6": 6, "int8": 8}[design["w_dtype"]] + 8 / design["group_size"]
    L = -(-int(b) // 2)
    wbuf, abuf = design["weight_buffer_kb"] * KB, design["act_buffer_kb"] * KB
    bw = design["dram_bits_per_cycle"]
    cyc = comp = tiles = bits = ww = aw = 0
    per = {}
    for g in gemms:
        t = -(-g.k // D) * -(-g.n // H) * -(-g.m // W)
        wbytes, ibytes, obytes = math.ceil(g.k * b / 8) * g.n, g.k * 2 * g.m, g.n * 2 * g.m
        fw = fi = 1
        if wbytes > wbuf and ibytes > abuf:
            rw, ri = math.ceil(ibytes / abuf), math.ceil(wbytes / wbuf)
            if rw * wbytes + ibytes < ri * ibytes + wbytes:
                fw = rw
            else:
                fi = ri
        lb = (wbytes * fw + ibytes * fi + obytes) * 8
        c = max(t * L, int(wbytes * 8 / bw * fw + obytes * 8 / bw + ibytes * 8 / bw * fi))
        per[g.name] = c * g.count
        cyc += c * g.count
        comp += t * L * g.count
        tiles += t * g.count
        bits += lb * g.count
        ww += math.ceil(g.k * b / 64) * g.n * fw * g.count
        aw += (math.ceil(g.k * 16 / 64) * g.m * fi + math.ceil(g.n * 16 / 64) * g.m) * g.count
    sw, sa = math.sqrt(design["weight_buffer_kb"] / 512), math.sqrt(design["act_buffer_kb"] / 512)
    w_bus, i_bus = D * math.ceil(b / 4) * 4 * H / 2, D * 16 * W / 2
    e = (PE_PJ_D4 * D / 4 * PR * H * W * comp + tiles * ((RD0 + RD1 * w_bus) * sw + (RD0 + RD1 * i_bus) * sa)
         + WR64 * (ww * sw + aw * sa) + DRAM_PJ_PER_BIT * bits) * 1e-12
    lat = cyc / (design["clock_mhz"] * 1e6)
    area = (H * W * PE_UM2_D4 * D / 4 + design["tile_rows"] * design["tile_cols"] * ENC_UM2
            + (design["weight_buffer_kb"] + design["act_buffer_kb"]) * 8192 * SRAM_UM2_PER_BIT) * 1e-6
    return {"cycles": cyc, "compute_cycles": comp, "dram_bytes": bits / 8, "energy_j": e, "latency_s": lat,
            "power_w": e / lat, "edp_js": e * lat, "area_mm2": area, "per_layer": per}


_dims = st.sampled_from([1, 3, 64, 100, 256, 640, 1024, 4096, 11008])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_dims, st.sampled_from([256, 512, 1024, 4096]), _dims, st.integers(1, 3)),
                min_size=1, max_size=4),
       st.lists(st.integers(0, 4), min_size=9, max_size=9))
def test_scalar_and_batch_paths_equal_the_oracle(shapes, raw_idx):
    sim = BitmodSimulator()
    space = sim.design_space()
    idx = np.array([min(i, n - 1) for i, n in zip(raw_idx, space.nvec)], dtype=np.int64)
    design = space.decode(idx)
    gemms = [Gemm(f"g{i}", m, k, n, c) for i, (m, k, n, c) in enumerate(shapes)]
    w = Workload("rand", tuple(gemms))
    want = oracle(design, gemms)
    m = sim.evaluate(design, w)
    batch = sim.evaluate_batch(idx[None, :], w)
    assert m.feasible and bool(batch["feasible"][0])
    assert m.cycles == want["cycles"] and batch["cycles"][0] == want["cycles"]
    assert {k: v["cycles"] for k, v in m.breakdown.items()} == want["per_layer"]
    for k in ("compute_cycles", "dram_bytes", "energy_j", "latency_s", "power_w", "edp_js", "area_mm2"):
        assert m.get(k) == pytest.approx(want[k], rel=1e-12), k
        assert batch[k][0] == pytest.approx(want[k], rel=1e-12), k


def test_batch_marks_group_size_infeasible_with_nan_metrics():
    sim = BitmodSimulator()
    w = Workload("odd", (Gemm("a", 8, 96, 64),))  # k = 96: groups of 32 only
    idx = np.array([sim.design_space().encode({**sim.default_design(), "group_size": g}) for g in (32, 64, 128)])
    b = sim.evaluate_batch(idx, w)
    assert b["feasible"].tolist() == [True, False, False]
    assert np.isfinite(b["energy_j"][0]) and np.isnan(b["energy_j"][1:]).all()
