"""SCALE-Sim 3.0.0 USER (bandwidth-limited) mode: the numba port (mode="scalesim-user") against the
real tool's goldens and against the plain-Python reference of the rule (issue #15 item 6)."""

import csv
import importlib.util
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archgym.workloads import Gemm, Workload
from simulators._systolic_user import user_mode
from simulators.systolic import SystolicSimulator

ROOT = Path(__file__).resolve().parent.parent
GOLD = list(csv.DictReader((ROOT / "tests" / "data" / "scalesim_user_goldens.csv").open()))
KEYS = ("stall_cycles", "total_cycles", "ifmap_dram_reads", "filter_dram_reads", "ofmap_dram_writes")


def _reference():
    spec = importlib.util.spec_from_file_location("scalesim_user_model",
                                                  ROOT / "experiments" / "systolic" / "scalesim_user_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


REF = _reference()


def _conv(g):
    if g["input_type"] != "conv":
        return None
    return tuple(int(g[k]) for k in ("ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "num_filters", "stride"))


@pytest.mark.parametrize("g", GOLD, ids=[g["case_id"] for g in GOLD])
def test_port_reproduces_every_user_golden(g):
    """Real SCALE-Sim 3.0.0 runs (tests/data/gen_scalesim_user_goldens.py): Stall Cycles, Total
    Cycles and the DRAM word counts, exactly."""
    got = user_mode(int(g["M"]), int(g["N"]), int(g["K"]), int(g["rows"]), int(g["cols"]), g["dataflow"],
                    int(g["ifmap_sram_kb"]), int(g["filter_sram_kb"]), int(g["ofmap_sram_kb"]), int(g["bw"]), _conv(g))
    assert got == {k: int(float(g[k])) for k in KEYS}


def test_scalesim_ci_goldens():
    """scale-sim-v3's own CI goldens (test/general/golden_trace_user_{os,ws,is}): 256x128x256 GEMM on
    32x32, 10 words/cycle, 64 kB SRAMs."""
    stalls = {df: user_mode(256, 128, 256, 32, 32, df, 64, 64, 64, 10)["stall_cycles"] for df in ("os", "ws", "is")}
    assert stalls == {"os": 42272, "ws": 41248, "is": 5777}


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 40), st.sampled_from([2, 4, 8]),
       st.sampled_from([2, 4, 8]), st.sampled_from(["os", "ws", "is"]), st.sampled_from([1, 2]),
       st.sampled_from([1, 2]), st.sampled_from([1, 2]), st.sampled_from([1, 2, 4, 10]))
def test_port_equals_plain_python_reference(M, N, K, R, C, df, ki, kf, ko, bw):
    """Tiny SRAMs (1-2 kB) so that refills, waits and drains all happen."""
    ref = REF.user_mode(M, N, K, R, C, df, ki, kf, ko, bw)
    assert user_mode(M, N, K, R, C, df, ki, kf, ko, bw) == ref


@settings(max_examples=10, deadline=None)
@given(st.integers(3, 9), st.integers(3, 9), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4),
       st.integers(1, 6), st.integers(1, 3), st.sampled_from(["os", "ws", "is"]))
def test_port_equals_reference_on_convolutions(H, W, fh, fw, ch, nf, s, df):
    import math

    fh, fw = min(fh, H), min(fw, W)
    M = math.ceil((H - fh + s) / s) * math.ceil((W - fw + s) / s)
    conv = (H, W, fh, fw, ch, nf, s)
    K = fh * fw * ch
    assert user_mode(M, nf, K, 4, 4, df, 1, 1, 1, 2, conv) == REF.user_mode(M, nf, K, 4, 4, df, 1, 1, 1, 2, conv)


GROUPS = {}
for _g in GOLD:
    GROUPS.setdefault(tuple(_g[k] for k in ("rows", "cols", "dataflow", "bw", "ifmap_sram_kb", "filter_sram_kb",
                                            "ofmap_sram_kb")), []).append(_g)


def _layer(g):
    import math

    from archgym.workloads import Conv

    conv = _conv(g)
    if conv is None:
        return Gemm(g["case_id"], m=int(g["M"]), k=int(g["K"]), n=int(g["N"]))
    H, W, fh, fw, ch, nf, s = conv
    return Conv(g["case_id"], in_h=H, in_w=W, filter_h=fh, filter_w=fw, channels=ch, num_filters=nf, stride_h=s,
                stride_w=s, out_h=math.ceil((H - fh + s) / s), out_w=math.ceil((W - fw + s) / s))


@pytest.mark.parametrize("key", sorted(GROUPS), ids=["-".join(k) for k in sorted(GROUPS)])
def test_simulator_mode_reports_user_goldens_per_layer(key):
    """SystolicSimulator(mode="scalesim-user") on every golden, as workloads of the golden layers that
    share a design: each layer's breakdown cycles, stalls and DRAM bytes equal SCALE-Sim's Total
    Cycles, Stall Cycles and DRAM words; the totals are their sums."""
    rows = GROUPS[key]
    R, C, df, bw, ki, kf, ko = key
    w = Workload("u", tuple(_layer(g) for g in rows))
    sim = SystolicSimulator(mode="scalesim-user", max_area_mm2=1e9)
    d = {**sim.default_design(), "rows": int(R), "cols": int(C), "dataflow": df, "ifmap_sram_kb": int(ki),
         "filter_sram_kb": int(kf), "ofmap_sram_kb": int(ko), "dram_bw_bytes": int(bw)}
    m = sim.evaluate(d, w)
    for g in rows:
        e = m.breakdown[g["case_id"]]
        assert e["cycles"] == int(g["total_cycles"])
        assert e["stall_cycles"] == int(g["stall_cycles"])
        assert e["dram_bytes"] == sum(int(g[k]) for k in ("ifmap_dram_reads", "filter_dram_reads",
                                                          "ofmap_dram_writes"))
    assert m.cycles == sum(int(g["total_cycles"]) for g in rows)
    assert m.extra["stall_cycles"] == sum(int(g["stall_cycles"]) for g in rows)
