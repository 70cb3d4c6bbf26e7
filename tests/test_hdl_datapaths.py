"""Every generated datapath, run in Verilator, equals its Python model bit for bit and cycle for cycle.

A few hundred seeded random vectors plus each datapath's edge cases per configuration (the
10,000-vector runs are in benchmarks/bench_rtl.py). The Python models are tied to torch by
tests/test_rtl_*.py; here the Verilog is tied to the models. Icarus Verilog, where installed,
runs the same checks as a second simulator.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("amaranth")

from archgym import rtl  # noqa: E402
from rtl_models import cosim  # noqa: E402

VECTORS = 200

CONFIGS = [
    ("systolic-pe", {}),
    ("systolic-array", {"rows": 3, "cols": 4, "acc_bits": 14}),
    ("systolic-array", {"rows": 4, "cols": 3, "dataflow": "ws", "act_bits": 6, "acc_bits": 13}),
    ("bitmod-pe", {"bits": 4, "group": 4}),
    ("bitmod-pe", {"bits": 8, "group": 8, "scale": "fp16", "rounding": "truncate"}),
    ("bitmod-pe", {"bits": 3, "group": 8, "scale": "fp16", "guard_bits": 1, "acc_man_bits": 9}),
    ("bitmod-pe", {"bits": 6, "group": 12}),
    ("smmw-lane", {}),
    ("smmw-lane", {"drain_every": 300, "allow_unsafe_drain": True}),
    ("smmw-lane", {"drain_every": 4, "acc_bits": 16}),
    ("ternary-acc", {"acc_bits": 12}),
    ("ternary-acc", {}),
]
IDS = [f"{n}-{'-'.join(f'{k}{v}' for k, v in p.items()) or 'default'}" for n, p in CONFIGS]


def _run(name, raw, simulator, cache, vectors=VECTORS, seed=1):
    rep = rtl.check(name, raw, vectors=vectors, seed=seed, simulator=simulator, cache_dir=cache)
    assert rep.passed, rep.mismatch.format()
    assert rep.vectors == vectors + rep.edge_cases and rep.edge_cases >= 5
    return rep


@pytest.mark.skipif(not cosim.simulator_available("verilator"), reason="Verilator (archgym[rtl]) not installed")
@pytest.mark.parametrize("name, raw", CONFIGS, ids=IDS)
def test_verilator_matches_model(name, raw, rtl_cache):
    rep = _run(name, raw, "verilator", rtl_cache)
    assert rep.cycles > rep.vectors


@pytest.mark.skipif(not cosim.simulator_available("icarus"), reason="Icarus Verilog not installed")
@pytest.mark.parametrize("name, raw", CONFIGS[::2], ids=IDS[::2])
def test_icarus_matches_model(name, raw, rtl_cache):
    _run(name, raw, "icarus", rtl_cache, vectors=40, seed=2)


# ---- the vectors reach the behaviour they are meant to check (model side, no simulator)
def _rows(name, raw, n=VECTORS, seed=1):
    dp = rtl.datapath(name)
    p = dp.params(raw)
    vecs = dp.vectors(p, n, np.random.default_rng(seed))
    return vecs, [dp.expect(p, v)[1] for v in vecs]


def test_systolic_vectors_wrap_pad_and_drain():
    vecs, traces = _rows("systolic-array", {"rows": 3, "cols": 4, "acc_bits": 14})
    assert sum(r["ovf"] for t in traces for r in t) > 0                      # acc_bits wraps
    assert any(v.used != (3, 4) for v in vecs)                               # partly used folds
    assert all(t[-1]["port_vld"] == 1 and t[-1]["take"] == 0 for t in traces)  # ends in the drain
    from rtl_models.systolic import fold_cycles
    for v, t in zip(vecs, traces):  # every fold takes the closed-form contract's cycles
        assert len(t) == fold_cycles(3, v.tile1.shape[1], 4, 3, 4, "os")


def test_bitmod_vectors_stall_use_every_special_value_and_finish_with_the_result():
    vecs, traces = _rows("bitmod-pe", {"bits": 4, "group": 4})
    assert sum(r["stall"] for t in traces for r in t) > 0     # 8 dequant cycles > 2 dot cycles
    specials = {c for v in vecs for c in v.codes if abs(c) in (10, 16)}
    assert specials == {10, -10, 16, -16}
    assert all(t[-1]["res_vld"] == 1 and t[-1]["out"] is not None for t in traces)


def test_smmw_vectors_carry_in_either_field_and_overflow_the_wide_accumulator():
    vecs, traces = _rows("smmw-lane", {"drain_every": 300, "allow_unsafe_drain": True})
    carried = [v.label for v, t in zip(vecs, traces) if any(r["carry_evt"] for r in t)]
    assert any("field 0" in c for c in carried) and any("field 1" in c for c in carried)
    _, narrow = _rows("smmw-lane", {"drain_every": 4, "acc_bits": 16})
    assert any(r["ovf_evt"] for t in narrow for r in t)
    _, safe = _rows("smmw-lane", {})
    assert not any(r["carry"] for t in safe for r in t)   # the paper's drain_every never carries


def test_ternary_vectors_overflow_both_ways_and_flag_the_invalid_code():
    vecs, traces = _rows("ternary-acc", {"acc_bits": 12})
    firsts = {v.label: t[-1]["first_k"] for v, t in zip(vecs, traces)}
    assert firsts["all +127 x +1 (positive overflow)"] == 2047 // 127  # first k with 127*(k+1) > 2047
    assert firsts["all -128 x +1 (negative overflow)"] == 2048 // 128
    assert traces[[v.label for v in vecs].index("invalid code 10")][-1]["bad"] == 1


REPLAYED = ("systolic-array", "systolic-pe", "smmw-lane")


@pytest.mark.parametrize("name, raw", [c for c in CONFIGS if c[0] in REPLAYED],
                         ids=[i for c, i in zip(CONFIGS, IDS) if c[0] in REPLAYED])
def test_trace_replay_is_the_models_own_loop(name, raw):
    # expect() records per-cycle registers by stepping the model; it must end where the model's
    # fold loop / packed GEMM does, with the same cycles and per-cycle MACs
    dp = rtl.datapath(name)
    p = dp.params(raw)
    for v in dp.vectors(p, 60, np.random.default_rng(3)):
        assert dp.replay_matches_model(p, v), dp.describe(v)
