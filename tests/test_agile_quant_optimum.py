"""The exact optimum of AgileQuant-v0 by branch and bound, against brute force (issue #19 item 2).

Brute force is archgym.sweep.exhaustive (every design of a restricted sub-space through the
batched kernel, the best re-evaluated through the evaluator) plus, for the tie rule, the reward
of every design of the sub-space.  The method's proof is in simulators/agile_quant_optimum.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archgym.objective import Objective
from archgym.runner import make_evaluator
from archgym.sweep import _batch_reward, exhaustive
from simulators.agile_quant_optimum import OptimumError, exact_optimum

ENV = "archgym/AgileQuant-v0"
GROUP = {"qkv": (8, 4, 128), "attn": (8, 8, 128), "o_proj": (8, 4, 128), "ffn_up": (8, 4, 128), "ffn_down": (8, 4, 128)}


def _pin(*groups: str, **more) -> dict:
    out = dict(more)
    for g in groups:
        a, w, s = GROUP[g]
        out.update({f"a_bits_{g}": a, f"w_bits_{g}": w, f"group_size_{g}": s})
    return out


CASES = {
    # the env's default objective (latency s.t. error <= 0.03 and weights <= 1 GB): 291,600 designs
    "default": (None, None, _pin("qkv", "attn", device="snapdragon-870", prune_start_frac=0.5,
                                 group_size_ffn_down=128)),
    # a product of two sums with a >= target on a metric that falls as its sum grows
    "edp-like": ("opt-125m/prefill?seq_len=512", Objective.parse("dram_bytes*latency_s", ["sqnr_db>=16"]),
                 _pin("attn", "ffn_down", simd_packing="on", group_size_qkv=64, group_size_o_proj=64)),
    # maximise a rate under a weight budget, GQA model, both devices, capacity in play on the Pi
    "max-rate": ("llama-3-8b/prefill?seq_len=256", Objective.parse("max:tokens_per_s", ["weight_bytes<=7e9"]),
                 _pin("attn", "qkv", prune_start_frac=0.25, group_size_ffn_up=128, group_size_ffn_down=128,
                      group_size_o_proj=128)),
    # targets only: the reward is the closeness, 1.0 for thousands of designs (ties)
    "targets-only": (None, Objective.parse("", ["error_nsr_ratio<=0.025", "latency_s<=2.5"]),
                     _pin("qkv", "attn", "ffn_down", device="snapdragon-870")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_branch_and_bound_equals_brute_force_on_a_sub_space(case):
    workload, objective, fixed = CASES[case]
    ev = make_evaluator(ENV, workload=workload, objective=objective, fixed=fixed)
    assert 20_000 < ev.space.size <= 400_000
    ours = exact_optimum(ev)
    brute = exhaustive(ev)
    assert ours.reward == pytest.approx(brute.reward, rel=0, abs=1e-12)
    assert ours.cost == pytest.approx(brute.cost, rel=1e-12)
    # every design's reward, to check the one returned is an argmax and which ties exist
    idx = ev.space.grid_indices()
    full = ev.simulator.design_space()
    to_full = [np.array([full[p.name].index(v) for v in p.values]) for p in ev.space.params]
    full_idx = np.stack([to_full[j][idx[:, j]] for j in range(idx.shape[1])], axis=1)
    r, _, _ = _batch_reward(ev.objective, ev.simulator.evaluate_batch(full_idx, ev.workload))
    best = r.max()
    mine = r[ev.space.index_of(ours.design)]
    assert mine == pytest.approx(best, rel=0, abs=1e-12) and best > 0.5
    ties = np.flatnonzero(r >= best - 1e-12)
    if len(ties) == 1:
        assert ours.design == brute.design
    assert ours.n_examined < ev.space.size / 3          # it did not enumerate the sub-space


def test_exact_optimum_of_the_full_env():
    """The whole 2.36e10-design space of AgileQuant-v0 (timed in benchmarks/README.md)."""
    ev = make_evaluator(ENV)
    o = exact_optimum(ev)
    assert o.n_designs == 23_619_600_000 and o.n_examined < 10_000_000
    assert o.metrics.feasible and o.metrics.extra["error_nsr_ratio"] <= 0.03 and o.metrics.extra["weight_bytes"] <= 1e9
    assert o.reward == ev.evaluate(o.design).reward > ev.evaluate(ev.default_design).reward
    # no single-parameter change of the optimum is better (a necessary condition, checked exhaustively)
    for p in ev.space.params:
        for v in p.values:
            assert ev.evaluate({**o.design, p.name: v}).reward <= o.reward + 1e-12
    assert "branch and bound" in o.method and o.wall_s > 0


@pytest.mark.parametrize("objective,match", [
    (Objective.parse("latency_s", ["latency_s>=1"]), "both small and large"),
    (Objective.parse("max:weight_bytes"), "both small and large"),
    (Objective.parse("sqnr_db"), "cannot minimise 'sqnr_db'"),
    (Objective.parse("latency_s*dram_overflow_bytes"), "cannot minimise 'dram_overflow_bytes'"),
])
def test_unsupported_objectives_are_refused_in_one_line(objective, match):
    ev = make_evaluator(ENV, objective=objective)
    with pytest.raises(OptimumError, match=match) as e:
        exact_optimum(ev)
    assert "\n" not in str(e.value)


def test_unsupported_objective_on_a_small_sub_space_falls_back_to_exhaustive():
    fixed = _pin("qkv", "attn", "o_proj", "ffn_up", device="rpi-4b", simd_packing="off")
    ev = make_evaluator(ENV, objective=Objective.parse("latency_s", ["latency_s>=300"]), fixed=fixed)
    o = exact_optimum(ev)
    brute = exhaustive(ev)
    assert o.design == brute.design and o.reward == brute.reward and o.n_examined == ev.space.size
    assert o.method.startswith("exhaustive batched evaluation of all 1,440 designs (exact_optimum cannot handle")


def test_other_simulators_are_refused():
    ev = make_evaluator("archgym/BitMoD-v0")
    with pytest.raises(OptimumError, match="needs an AgileQuantSimulator"):
        exact_optimum(ev)


def test_search_of_one_combination_keeps_its_best_leaf_whatever_the_incumbent():
    """Inside one global combination (pruning ratio/start, packing, device) the dominance and
    bound steps never drop the combination's best design: with an incumbent just below that
    combination's brute-force maximum the search still returns it, and with an incumbent above
    it nothing within the slack survives."""
    from simulators.agile_quant_optimum import _Problem, _search_combo

    ev = make_evaluator(ENV, fixed=CASES["default"][2])
    pb = _Problem(ev)
    names = ev.simulator.design_space().names
    idx = ev.space.grid_indices()
    full = ev.simulator.design_space()
    to_full = [np.array([full[p.name].index(v) for v in p.values]) for p in ev.space.params]
    full_idx = np.stack([to_full[j][idx[:, j]] for j in range(idx.shape[1])], axis=1)
    r, _, _ = _batch_reward(ev.objective, ev.simulator.evaluate_batch(full_idx, ev.workload))
    g = [names.index(k) for k in ("prune_ratio", "prune_start_frac", "simd_packing", "device")]
    for ri, pi in [(0, 0), (2, 1), (4, 1), (7, 0)]:
        si, di = int(pb.globals[1][0]), int(pb.globals[3][0])
        sel = (full_idx[:, g[0]] == ri) & (full_idx[:, g[1]] == si) & (full_idx[:, g[2]] == pi) & (full_idx[:, g[3]] == di)
        m = r[sel].max()
        for incumbent in (0.0, m - 1e-9):
            _, leaves, _ = _search_combo(pb, ri, si, pi, di, incumbent, [0])
            assert leaves.max() == pytest.approx(m, rel=0, abs=1e-12), (ri, pi, incumbent)
        _, leaves, _ = _search_combo(pb, ri, si, pi, di, m + 1e-6, [0])
        assert not (leaves >= m + 1e-6 - 1e-12).any()


OBJECTIVES = [
    ("latency_s", ["error_nsr_ratio<={b}"]),
    ("dram_bytes*latency_s", ["sqnr_db>={s}"]),
    ("max:tokens_per_s", ["weight_bytes<={w}"]),
    ("latency_s^2*error_nsr_ratio", []),
    ("", ["error_nsr_ratio<={b}", "throughput_per_s>=0.2"]),
    ("max:sqnr_db", ["latency_s<=4"]),
]


@settings(max_examples=12, deadline=None)
@given(st.data())
def test_property_branch_and_bound_equals_brute_force_on_random_sub_spaces(data):
    """For a random sub-space (random parameters pinned to random values until at most 20,000
    designs are left) and a random supported objective with random bounds, the maximum reward
    the search returns is the brute-force maximum."""
    from archgym.sweep import exhaustive as brute_force

    ev0 = make_evaluator(ENV)
    params = list(ev0.space.params)
    order = data.draw(st.permutations(range(len(params))))
    fixed, size = {}, ev0.space.size
    for j in order:
        if size <= 20_000:
            break
        p = params[j]
        fixed[p.name] = data.draw(st.sampled_from(p.values))
        size //= p.size
    spec, targets = data.draw(st.sampled_from(OBJECTIVES))
    bounds = dict(b=data.draw(st.sampled_from([0.02, 0.03, 0.05])), s=data.draw(st.sampled_from([12, 15, 18])),
                  w=data.draw(st.sampled_from([7e8, 9e8, 1.2e9])))
    obj = Objective.parse(spec, [t.format(**bounds) for t in targets])
    wl = data.draw(st.sampled_from(["opt-125m/prefill?seq_len=256", "opt-1.3b/prefill"]))
    ev = make_evaluator(ENV, workload=wl, objective=obj, fixed=fixed)
    ours, brute = exact_optimum(ev), brute_force(ev)
    assert ours.reward == pytest.approx(brute.reward, rel=0, abs=1e-12), (fixed, obj.describe())
