"""M3ViT-v0 metric code: the resource mapping (``resources``) at its edges, worked out by hand
(issue #17 item 7, mutation testing; docs/testing.md).  Device numbers restated from the XCZU7EV
data sheet (96 URAM288, 312 BRAM36), not imported."""

import math

from simulators._m3vit_model import resources
from simulators.m3vit import M3ViTSimulator

URAM_BYTES, BRAM_BYTES = 288 * 1024 // 8, 36 * 1024 // 8      # 36,864 and 4,608 bytes per block
D = {"pe_in": 16, "pe_out": 32}                                # DSPs: 16 x 32 MACs + 32 lanes + 32 misc = 576


def test_resources_fill_uram_then_bram_then_lutram():
    # 1,000 bytes: one URAM block, nothing left for BRAM or LUTRAM
    assert resources(D, 1000.0) == {"dsp_count": 576.0, "bram36_count": 0.0, "uram_count": 1.0, "lutram_bytes": 0.0}
    # every URAM and BRAM block full, 100 bytes over: 100 bytes of LUTRAM
    full = 96 * URAM_BYTES + 312 * BRAM_BYTES
    assert full == 4_976_640
    assert resources(D, full + 100.0) == {"dsp_count": 576.0, "bram36_count": 312.0, "uram_count": 96.0,
                                          "lutram_bytes": 100.0}
    # one URAM and one BRAM block's worth: URAM is used first, in whole blocks (2), no BRAM
    assert resources(D, float(URAM_BYTES + BRAM_BYTES)) == {"dsp_count": 576.0, "bram36_count": 0.0,
                                                            "uram_count": 2.0, "lutram_bytes": 0.0}


def test_resources_of_an_infeasible_inventory_are_nan_but_dsps_are_counted():
    r = resources(D, math.nan)
    assert r["dsp_count"] == 576.0 and all(math.isnan(r[k]) for k in ("bram36_count", "uram_count", "lutram_bytes"))


def test_a_weight_buffer_below_one_tile_still_reports_the_dsp_share():
    """wbuf 64 KiB < one 384 x 96 x 16-bit tile (72 KiB): infeasible, yet the DSPs are known:
    16 x 96 MACs + 96 lanes + 32 misc = 1,664 of the device's 1,728 (0.963)."""
    from simulators.m3vit import simulate

    m = simulate("pascal", "reorder", wbuf_kib=64)
    assert not m.feasible and "smaller than one weight tile 384x96x16-bit = 72 KiB" in m.reason
    assert m.extra["dsp_count"] == 1664 and m.extra["dsp_util_frac"] == 1664 / 1728


def test_lutram_budget_is_lutram_bits_over_8_times_the_fraction():
    """LUTRAM budget = 6.9 Mb / 8 x lutram_frac = 862,500 x frac bytes.  n_wbuf=1, wbuf 2,304 KiB at
    the default PE array needs 5,205,600 bytes on chip; 96 URAM x 36,864 + 312 BRAM x 4,608 =
    4,976,640 of them fit in block RAM, so 228,960 bytes go to LUTRAM: within the budget at
    frac 0.28 (241,500 bytes), over it at frac 0.26 (224,250 = 0.214 MiB)."""
    d = {**M3ViTSimulator().default_design(), "n_wbuf": 1, "wbuf_kib": 2304}
    ok = M3ViTSimulator(lutram_frac=0.28).evaluate(d, "pascal")
    assert ok.feasible and ok.extra["lutram_bytes"] == 228_960.0 and ok.get("onchip_bytes") == 5_205_600.0
    over = M3ViTSimulator(lutram_frac=0.26).evaluate(d, "pascal")
    assert not over.feasible
    assert over.reason == ("needs 4.964 MiB on chip, device holds 4.746 MiB BRAM+URAM + 0.214 MiB LUTRAM "
                           "(lutram_frac=0.26)")


def test_a_design_over_dsps_and_on_chip_memory_reports_both():
    """pe_in=32, pe_out=128: 32 x 128 MACs + 128 lanes + 32 misc = 4,256 DSPs > 1,728; with two
    2,304 KiB weight buffers the inventory is 7,567,200 bytes (7.217 MiB) against 4,976,640 bytes
    (4.746 MiB) of BRAM+URAM and 431,250 bytes (0.411 MiB) of LUTRAM at the default frac 0.5.  Both
    reasons, DSPs first, joined by "; "."""
    sim = M3ViTSimulator()
    m = sim.evaluate({**sim.default_design(), "pe_in": 32, "pe_out": 128, "n_wbuf": 2, "wbuf_kib": 2304}, "pascal")
    assert not m.feasible and m.extra["dsp_count"] == 4256.0
    assert m.reason == ("needs 4256 DSPs (32x128 MAC array + 128 lane + 32 misc), device has 1728; "
                        "needs 7.217 MiB on chip, device holds 4.746 MiB BRAM+URAM + 0.411 MiB LUTRAM "
                        "(lutram_frac=0.5)")


def test_a_design_using_exactly_every_dsp_fits():
    """pe_in=52, pe_out=32 (values the simulator accepts outside the env's grid): 52 x 32 MACs + 32
    lanes + 32 misc = 1,728 DSPs, exactly the XCZU7EV's 1,728: feasible (only more than the device
    has is refused)."""
    sim = M3ViTSimulator()
    m = sim.evaluate({**sim.default_design(), "pe_in": 52, "pe_out": 32}, "pascal")
    assert m.extra["dsp_count"] == 1728.0 and m.extra["dsp_util_frac"] == 1.0
    assert m.feasible, m.reason
