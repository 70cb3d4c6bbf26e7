"""Systolic-v0 metric code (``_derive``, ``_area_um2``, ``_sram_pj_per_bit``) on hand-picked
counts: every operand width, SRAM size and count differs, so a swapped operand, size or term
changes a number (issue #17 item 7, mutation testing; docs/testing.md).

The hand-computed oracles in test_systolic.py use 8-bit operands and two equal SRAMs; here the
counts are the input and each metric is worked out by hand in the docstring from the model's
stated equations and constants (Horowitz, ISSCC 2014; restated, not imported).
"""

import numpy as np
import pytest

from simulators.systolic import _derive

# (compute, cycles, ifmap reads, filter reads, ofmap writes, partial-sum reads, DRAM read bits,
# DRAM write bits), MACs, fill/drain cycles (counted per pass by the kernel); 8 x 16 ws array, SRAMs 32/128/512 kB, 250 MHz, 16-bit
# activations, 4-bit weights, SCALE-Sim mode (code 1)
TOTALS = (1000, 1600, 64, 32, 16, 8, 6400, 1280)
ARGS = dict(macs=4096, fill=300, rows=8, cols=16, dataflow="ws", ifk=32, flk=128, ofk=512, clk=250, ab=16, wb=4,
            code=1)


def test_derive_hand_computed_with_unequal_widths_and_srams():
    """SRAM pJ/bit = 10/64 x sqrt(kB/8): ifmap 32 kB 20/64, filter 128 kB 40/64, ofmap 512 kB 80/64.
    SRAM energy = 64 x 16 bit x 20/64 + 32 x 4 bit x 40/64 + (16 + 8) x 32 bit x 80/64
               = 320 + 80 + 960 = 1,360 pJ (operands swapped it would be 80 + 320 + 960).
    MAC energy = 4,096 x (0.2 x 16 x 4 / 64 + 0.1) = 4,096 x 0.3 = 1,228.8 pJ.
    DRAM energy = (6,400 + 1,280) bits x 1300/64 pJ = 156,000 pJ.
    Latency = 1,600 / 250 MHz = 6.4 us.
    Area: PE = 282 x 16 x 4 / 64 + 137 + 6 x (16 + 4 + 32) = 731 um^2, x 128 PEs = 93,568;
          SRAM (32 + 128 + 512) kB x 8,192 bit x 0.5 um^2 = 2,752,512 -> 2.84608 mm^2.
    Leakage = 0.02 W/mm^2 x 2.84608 x 6.4 us = 364,298.24 pJ.
    Energy = 1,228.8 + 1,360 + 156,000 + 364,298.24 = 522,887.04 pJ; power = 81.7011 mW.
    SRAM bytes read = (64 x 16 + 32 x 4 + 8 x 32) / 8 = 176; written 16 x 32 / 8 = 64.
    Utilisation = 4,096 / (1,600 x 128) = 0.02; fill/drain: the kernel's count (300) passed through.
    """
    v = _derive(TOTALS, *ARGS.values())
    want = {
        "latency_s": 6.4e-6, "energy_j": 522_887.04e-12, "power_w": 522_887.04e-12 / 6.4e-6, "area_mm2": 2.84608,
        "onchip_bytes": 672 * 1024, "dram_bytes": 960, "throughput_per_s": 156_250, "utilization_frac": 0.02,
        "compute_cycles": 1000, "stall_cycles": 600, "fill_drain_cycles": 300, "mac_count": 4096,
        "sram_read_bytes": 176, "sram_write_bytes": 64, "mac_energy_j": 1228.8e-12, "sram_energy_j": 1360e-12,
        "dram_energy_j": 156_000e-12, "static_energy_j": 364_298.24e-12,
    }
    assert set(v) == set(want)
    for k, x in want.items():
        assert v[k] == pytest.approx(x, rel=1e-12), k


def test_shadow_register_bits_and_area_per_dataflow():
    """The mapper's array double-buffers its stationary operand (simulators/systolic.py, "The
    array"): os holds a 32-bit accumulator, ws a weight, is an activation; the fixed loop order
    and SCALE-Sim's array (codes 0, 1) have no shadow register.  With 16-bit activations and 4-bit
    weights every case differs.  Area of an 8 x 16 array, 672 kB of SRAM: PE 731 um^2 (see above)
    plus 6 um^2 per shadow bit: os +192, ws +24, is +96 um^2 per PE, x 128 PEs."""
    from simulators import _systolic_kernels as kern
    from simulators.systolic import _shadow_bits

    assert [_shadow_bits(kern.MAPPED, df, 16, 4) for df in ("os", "ws", "is")] == [32, 4, 16]
    assert [_shadow_bits(c, "os", 16, 4) for c in (kern.FIXED, kern.SCALESIM)] == [0, 0]
    codes = np.array([2, 0, 1])  # is, os, ws
    assert _shadow_bits(kern.MAPPED, codes, np.array([16, 16, 16]), np.array([4, 4, 4])).tolist() == [16, 32, 4]
    base = 2.84608e6 - 128 * 731  # SRAM um^2 of the hand-computed case above
    for df, extra in (("os", 192), ("ws", 24), ("is", 96)):
        v = _derive(TOTALS, **{**ARGS, "dataflow": df, "code": kern.MAPPED})
        assert v["area_mm2"] == pytest.approx((base + 128 * (731 + extra)) * 1e-6, rel=1e-12), df
