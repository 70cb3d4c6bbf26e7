"""AgileQuant-v0 metric code (``simulators._agile_quant_model.price``) at the edges the oracle
tests do not reach (issue #17 item 7, mutation testing; docs/testing.md): a boolean
``simd_packing`` through the public API, a DRAM capacity exceeded by half a byte, and a design with two overflowing
layer groups.  Numbers worked out by hand from the rules in the docstrings of
simulators/agile_quant.py and simulators/_agile_quant_model.py; the comparison side is the
public ``simulate``."""

import pytest

from simulators.agile_quant import simulate

W4A4 = dict(model="opt-125m", device="snapdragon-870", scheme="w4a4")


def test_simd_packing_accepts_booleans_like_on_and_off():
    """``simd_packing`` may be True/False or "on"/"off" (``simulate``'s and ``check_design``'s
    docstrings; check_design turns a boolean into "on"/"off" before pricing).  With every group at
    4-bit x 4-bit and groups of 32, "on" runs the packed SMMW kernel and "off" the INT8 one, so the
    two latencies differ; True must price as "on" and False as "off"."""
    lat = {p: simulate(**W4A4, group_size=32, seq_len=128, simd_packing=p).latency_s
           for p in ("on", True, "off", False)}
    assert lat["on"] != lat["off"]
    assert lat[True] == lat["on"] and lat[False] == lat["off"]


def test_half_a_byte_over_the_dram_is_infeasible():
    """With ``enforce_capacity`` a design is infeasible as soon as weights + activations exceed
    the DRAM, by any amount.  The footprint is read from a run on a 1 kB DRAM (overflow +
    1,000 bytes); a DRAM of footprint - 0.5 bytes leaves an overflow of exactly 0.5 bytes."""
    kw = dict(**W4A4, group_size=32, seq_len=128, enforce_capacity=True)
    tiny = simulate(**kw, dram_gb=1e-6)
    footprint = tiny.extra["dram_overflow_bytes"] + 1000.0
    m = simulate(**kw, dram_gb=(footprint - 0.5) / 1e9)
    assert m.extra["dram_overflow_bytes"] == pytest.approx(0.5, abs=1e-6)
    assert not m.feasible and m.reason.startswith("weights + activations need 0.13 GB; snapdragon-870 has")


def test_two_overflowing_groups_are_both_reported_in_group_order():
    """SMMW: two 16-bit fields per 32-bit lane; a 4-bit x 4-bit product is at most 15 x 15 = 225,
    so a field holds floor(65,535 / 225) = 291 worst-case products between drains.  Groups of 512
    overflow it in o_proj (K = 768 for OPT-125M, 512 products per drain) and ffn_down (K = 3,072);
    the reasons are joined by "; " in layer-group order."""
    m = simulate(**W4A4, seq_len=128, group_size_o_proj=512, group_size_ffn_down=512)
    assert not m.feasible
    assert m.reason == ("o_proj: SMMW lane accumulates 512 products of 4x4 bits per drain (group_size=512, K=768); "
                        "a 16-bit field holds at most 291; "
                        "ffn_down: SMMW lane accumulates 512 products of 4x4 bits per drain (group_size=512, "
                        "K=3072); a 16-bit field holds at most 291")
