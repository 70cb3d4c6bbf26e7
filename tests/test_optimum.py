"""``archgym optimum`` and archgym.optimum.optimum: the exact optimum and how it was found."""

import numpy as np
import pytest

from archgym.cli import main
from archgym.optimum import NoExactMethod, optimum
from archgym.runner import make_evaluator

FIX = {"dataflow": "os", "ifmap_sram_kb": 256, "filter_sram_kb": 256, "ofmap_sram_kb": 128, "act_bits": 8,
       "weight_bits": 8}


def test_optimum_equals_brute_force_over_the_scalar_path():
    ev = make_evaluator("archgym/Systolic-v0", workload="opt-125m/decode", fixed=FIX)
    o = optimum(ev)
    assert o.method.startswith("exhaustive batched evaluation of all 720 designs")
    best = max((ev.evaluate(d) for d in ev.space), key=lambda e: (e.reward, -ev.space.index_of(e.design)))
    assert o.design == best.design and o.reward == best.reward


def test_cli_prints_the_optimum_and_the_method(capsys):
    argv = ["optimum", "archgym/Systolic-v0", "--workload", "opt-125m/decode", "--objective", "latency_s"]
    argv += [a for k, v in FIX.items() for a in ("--fix", f"{k}={v}")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    ev = make_evaluator("archgym/Systolic-v0", workload="opt-125m/decode", fixed=FIX, objective="latency_s")
    best = max((ev.evaluate(d) for d in ev.space), key=lambda e: e.reward)
    assert f"exact optimum: reward {best.reward:.6f}" in out
    assert "design: " + ", ".join(f"{k}={v}" for k, v in best.design.items()) in out
    assert "how: exhaustive batched evaluation of all 720 designs" in out


def test_cli_landscape_is_the_descent_of_every_design(capsys):
    from archgym.optimum import descent_basins, exhaustive

    argv = ["optimum", "archgym/Systolic-v0", "--workload", "opt-125m/decode", "--landscape"]
    argv += [a for k, v in FIX.items() for a in ("--fix", f"{k}={v}")]
    assert main(argv) == 0
    ev = make_evaluator("archgym/Systolic-v0", workload="opt-125m/decode", fixed=FIX)
    want = descent_basins(exhaustive(ev, keep_costs=True).costs, ev.space.nvec)
    assert "landscape: " + want.describe() in capsys.readouterr().out
    assert want.n_finite > want.n_local_minima > 0
    assert main(["optimum", "archgym/AgileQuant-v0", "--landscape"]) == 0  # branch and bound, no enumeration
    out = capsys.readouterr().out
    assert "how: branch and bound" in out
    assert "landscape: not computed: the 23,619,600,000 designs are too many to enumerate" in out


def test_no_exact_method_is_one_line(capsys, monkeypatch):
    import simulators.agile_quant as aq

    monkeypatch.setattr(aq.AgileQuantSimulator, "exact_optimum", lambda self, ev: None, raising=False)
    with pytest.raises(NoExactMethod, match="no exact method"):
        optimum(make_evaluator("archgym/AgileQuant-v0"))


def _descend_one_by_one(costs, nvec, start):
    """Steepest one-parameter descent from one design, written out move by move (the
    reference for descent_basins): every other value of every parameter, strictly cheaper
    moves only, the first parameter and the lowest value index among equal costs."""
    import itertools

    x, moves = list(np.unravel_index(start, nvec)), 0
    while True:
        here = costs[np.ravel_multi_index(x, nvec)]
        best, arg = here, None
        for j, v in itertools.product(range(len(nvec)), range(max(nvec))):
            if v < nvec[j] and v != x[j]:
                y = x.copy()
                y[j] = v
                cy = costs[np.ravel_multi_index(y, nvec)]
                if cy < best:
                    best, arg = cy, y
        if arg is None:
            return int(np.ravel_multi_index(x, nvec)), moves
        x, moves = arg, moves + 1


@pytest.mark.parametrize("seed,threshold", [(0, 0.1), (1, 0.1), (2, 1.0), (3, 1.0)])
def test_descent_basins_equal_a_move_by_move_descent_from_every_design(seed, threshold):
    from archgym.optimum import descent_basins

    rng = np.random.default_rng(seed)
    nvec = (3, 4, 1, 5, 2)
    n = int(np.prod(nvec))
    costs = rng.integers(1, 12, n).astype(float)  # small integers: many ties, costs on the threshold
    costs[rng.random(n) < 0.2] = np.inf  # infeasible designs
    land = descent_basins(costs, nvec, threshold=threshold)
    finite = np.isfinite(costs)
    ends = {i: _descend_one_by_one(costs, nvec, i) for i in np.flatnonzero(finite)}
    opt = costs[finite].min()
    minima = [i for i, (e, m) in ends.items() if m == 0]
    assert land.n_finite == finite.sum()
    assert land.n_local_minima == len(minima)
    assert land.n_traps == sum(costs[i] > opt * (1 + threshold) for i in minima)
    near = sum(costs[e] <= opt * (1 + threshold) for e, _ in ends.values())
    assert land.basin_share == pytest.approx(near / finite.sum())
    assert land.max_steps == max(m for _, m in ends.values())
    assert 0 < land.basin_share <= 1 and land.n_traps < land.n_local_minima
