"""M3ViT model: properties that must hold for every design (hypothesis, off-grid values included).

* The schedule is a max-plus system with non-negative delays (a step starts at the max of
  earlier events plus durations), so shortening the DRAM transfers (more bandwidth at the same
  clock) can never delay the frame.
* Per-layer breakdown: the layers' cycles partition the frame, and their energies plus the
  input/output transfer sum to its energy (docs/metrics.md).
* Power from the resources is at least the static power and grows with the provisioned DSPs.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from simulators._m3vit_model import TECH
from simulators.m3vit import DEFAULT_DESIGN, M3ViTSimulator

SIM = M3ViTSimulator()

designs = st.fixed_dictionaries({
    "pe_in": st.sampled_from([4, 8, 16, 32]),
    "pe_out": st.integers(8, 112),
    "n_wbuf": st.integers(1, 4),
    "wbuf_kib": st.integers(144, 2304),
    "prefetch_depth": st.integers(0, 4),
    "cache_slots": st.integers(1, 16),
    "schedule": st.sampled_from(["reorder", "cache", "naive"]),
    "dram_gbps": st.floats(1.0, 40.0),
    "clock_mhz": st.floats(100.0, 400.0),
    "n_experts": st.sampled_from([4, 8, 16]),
    "top_k": st.sampled_from([1, 2, 4]),
}).filter(lambda d: d["top_k"] <= d["n_experts"])


@settings(max_examples=40, deadline=None)
@given(designs, st.floats(1.0, 4.0))
def test_more_bandwidth_never_delays_the_frame(d, factor):
    slow = SIM.evaluate(d, "pascal")
    fast = SIM.evaluate({**d, "dram_gbps": d["dram_gbps"] * factor}, "pascal")
    if slow.cycles is None or fast.cycles is None:       # a weight tile that fits no buffer: both unpriced
        assert slow.cycles is None and fast.cycles is None
        return
    assert fast.cycles <= slow.cycles
    assert fast.dram_bytes == slow.dram_bytes and fast.extra["encoder_macs"] == slow.extra["encoder_macs"]


@settings(max_examples=40, deadline=None)
@given(designs, st.sampled_from(["pascal", "nyud/depth", "pascal-dense"]))
def test_breakdown_partitions_every_frame(d, wl):
    m = SIM.evaluate(d, wl)
    if m.cycles is None:
        return
    layers = [v for k, v in m.breakdown.items() if not k.startswith("unit:")]
    assert sum(v["cycles"] for v in layers) == m.cycles
    energy = sum(v["energy_j"] for v in layers) + m.breakdown["unit:io"]["energy_j"]
    assert abs(energy - m.energy_j) <= 1e-9 * m.energy_j
    assert m.extra["compute_cycles"] + m.extra["dram_stall_cycles"] == m.cycles
    assert m.power_w >= TECH["static_w"]


@settings(max_examples=25, deadline=None)
@given(st.integers(16, 100), st.integers(1, 20))
def test_more_dsps_draw_more_clocked_power(pe_out, extra):
    a = SIM.evaluate({**DEFAULT_DESIGN, "pe_out": pe_out}, "pascal")
    b = SIM.evaluate({**DEFAULT_DESIGN, "pe_out": pe_out + extra}, "pascal")
    assert b.breakdown["unit:power"]["dsp_clock_w"] > a.breakdown["unit:power"]["dsp_clock_w"]
