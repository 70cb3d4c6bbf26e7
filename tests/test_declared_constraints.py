"""Declared constraints: ``DesignSpace.feasible_mask`` (each constraint's vectorised rule) against
the design-by-design ``is_feasible``, and AgileQuant-v0's workload-dependent overflow rules
(``Simulator.workload_constraints``) against the simulator's own verdict."""

from __future__ import annotations

import numpy as np
import pytest

from archgym.runner import make_evaluator
from archgym.space import Choice, Constraint, DesignSpace, InvalidDesign, IntRange


def _scalar(space: DesignSpace, idx: np.ndarray) -> np.ndarray:
    return np.array([space.is_feasible(space.decode(i)) for i in idx], dtype=bool)


def test_feasible_mask_mixes_vector_and_scalar_rules():
    space = DesignSpace(
        [IntRange(name="a", low=0, high=7), Choice(name="c", options=("x", "y", "z")),
         IntRange(name="b", low=1, high=6)],
        [Constraint("sum", lambda d: d["a"] + d["b"] <= 9, "a + b > 9", vector=lambda c: c["a"] + c["b"] <= 9),
         Constraint("cz", lambda d: not (d["c"] == "z" and d["a"] == 7), "c=z with a=7")],  # no vector
    )
    idx = np.array(list(np.ndindex(*space.nvec)))
    m = space.feasible_mask(idx)
    assert m.dtype == bool and np.array_equal(m, _scalar(space, idx))
    assert 0 < m.sum() < len(idx)
    assert space.feasible_mask(np.zeros((0, 3), dtype=np.int64)).shape == (0,)
    assert DesignSpace(space.params).feasible_mask(idx).all()  # no constraint: every design
    with pytest.raises(InvalidDesign, match=r"indices\[0, 1\] = 3 \(c\) is outside 0..2"):
        space.feasible_mask(np.array([[0, 3, 0]]))


@pytest.mark.parametrize("env", ["archgym/Systolic-v0", "archgym/M3ViT-v0", "archgym/AgileQuant-v0"])
def test_vector_rules_equal_the_scalar_ones(env):
    """Each env's vectorised constraints give is_feasible's verdict: on 5,000 random designs and,
    for Systolic-v0's area budget, on every design within 2 % of it (where rounding would show)."""
    ev = make_evaluator(env)
    space = ev.space
    assert space.constraints and all(c.vector is not None for c in space.constraints)
    idx = np.random.default_rng(7).integers(0, space.nvec, size=(5000, len(space.nvec)))
    m = space.feasible_mask(idx)
    assert np.array_equal(m, _scalar(space, idx)) and 0 < m.sum() < len(idx)
    if env == "archgym/Systolic-v0":
        sim = ev.simulator
        allidx = space.grid_indices()
        cols = {p.name: np.asarray(p.values)[allidx[:, j]] for j, p in enumerate(space.params)}
        area = sim._area_mm2_columns(cols)
        near = allidx[np.abs(area / sim.max_area_mm2 - 1) < 0.02]
        assert len(near) > 1000
        assert np.array_equal(space.feasible_mask(near), _scalar(space, near))


def test_agile_quant_overflow_rules_match_the_simulator():
    """The declared rules mark exactly the designs the simulator rejects for an overflow: random
    designs, and each group set to the overflowing A4 x W4 / 512 / packed in turn (and to 256,
    which fits).  The evaluator still lets the simulator price them: same reason and metrics."""
    ev = make_evaluator("archgym/AgileQuant-v0")
    space, sim = ev.space, ev.simulator
    names = [c.name for c in ev.workload_constraints]
    assert names == [f"overflow_{g}" for g in ("qkv", "attn", "o_proj", "ffn_up", "ffn_down")]
    rng = np.random.default_rng(3)
    designs = [space.decode(i) for i in rng.integers(0, space.nvec, size=(400, len(space.nvec)))]
    base = dict(ev.default_design, simd_packing="on")
    for g in ("qkv", "attn", "o_proj", "ffn_up", "ffn_down"):
        for gs in (512, 256):
            designs.append({**base, f"a_bits_{g}": 4, f"w_bits_{g}": 4, f"group_size_{g}": gs})
    designs.append({**base, "a_bits_qkv": 4, "w_bits_qkv": 4, "group_size_qkv": 512, "simd_packing": "off"})
    n_declared = 0
    for d in designs:
        m = sim.evaluate(d, ev.workload)
        overflow = not m.feasible and ("SMMW" in m.reason or "accumulator" in m.reason)
        declared = not space.is_feasible(d)
        assert declared == overflow, (d, m.reason)
        n_declared += declared
        if declared:
            e = ev.evaluate(d)
            assert not e.feasible and e.metrics.reason == m.reason and e.metrics.extra == m.extra
    assert n_declared >= 5
    # the rules follow the workload: at 256 tokens attention's AV reduction is 256 products, which fits
    short = make_evaluator("archgym/AgileQuant-v0", workload_params={"seq_len": 256})
    assert "overflow_attn" not in [c.name for c in short.workload_constraints]
    d = {**base, "a_bits_attn": 4, "w_bits_attn": 4, "group_size_attn": 512}
    assert short.space.is_feasible(d) and short.evaluate(d).feasible


_M3VIT_CASES = [  # (workload, simulator options): MoE and dense, both datasets, a user-built width, budgets
    ("pascal", {}), ("nyud/depth", {}), ("pascal-dense", {}), ("nyud", {"lutram_frac": 0.0}),
    ("pascal", {"token_capacity": 1100, "lutram_frac": 1.0}), ("vit-ti", {}),
]


@pytest.mark.parametrize("wl, opts", _M3VIT_CASES)
def test_m3vit_budget_rules_match_the_simulator(wl, opts):
    """M3ViT-v0's declared budgets (tile, dsp, memory) mark exactly the designs the simulator finds
    infeasible, rule by rule against its reason class: the batched kernel on 20,000 random designs,
    the reference path on 300 (which also checks that the evaluator leaves them to the simulator:
    same reason and metrics).  ``python benchmarks/check_m3vit_budgets.py`` checks the whole
    11 M grid of pascal, pascal-dense and nyud/depth."""
    from test_m3vit_workloads import VIT_TI

    from archgym.simulator import Evaluator
    from archgym.workloads import vit_moe_workload
    from simulators.m3vit import REASON_CLASSES, M3ViTSimulator, reason_class

    sim = M3ViTSimulator(**opts)
    ev = Evaluator(sim, vit_moe_workload(VIT_TI, "pascal") if wl == "vit-ti" else wl)
    space = ev.space
    assert [c.name for c in space.constraints] == ["top_k", "tile", "dsp", "memory"]
    rules = {c.name: c for c in space.constraints}
    idx = np.random.default_rng(11).integers(0, space.nvec, size=(20_000, len(space.nvec)))
    cols = {p.name: np.asarray(p.values)[idx[:, j]] for j, p in enumerate(space.params)}
    ok = {n: np.asarray(rules[n].vector(cols)) for n in rules}
    cls = np.array(REASON_CLASSES)[sim.evaluate_batch(idx, ev.workload, reasons=True)["reason_class"]]
    np.testing.assert_array_equal(space.feasible_mask(idx), cls == "feasible")
    fits = ok["top_k"] & ok["tile"]
    np.testing.assert_array_equal(cls == "tile", ok["top_k"] & ~ok["tile"])
    np.testing.assert_array_equal(np.isin(cls, ("dsp", "dsp+memory")), fits & ~ok["dsp"])
    np.testing.assert_array_equal(np.isin(cls, ("memory", "dsp+memory")), fits & ~ok["memory"])
    seen = set(cls.tolist())
    assert {"feasible", "dsp"} <= seen and len(seen - {"constraint"}) >= 3   # (ViT-Ti's width: every tile fits)
    for i in range(0, 20_000, 67):
        d = space.decode(idx[i])
        m = sim._evaluate(d, ev.workload) if ok["top_k"][i] else None
        if m is None:
            continue
        assert reason_class(m) == cls[i] and space.is_feasible(d) == m.feasible
        if not m.feasible:
            e = ev.evaluate(d)
            assert not e.feasible and e.metrics.reason == m.reason and e.metrics.extra == m.extra
