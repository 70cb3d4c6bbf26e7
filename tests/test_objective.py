"""Objective: finite, bounded, higher-is-better rewards; targets; parsing errors."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archgym.metrics import Metrics
from archgym.objective import Objective, ObjectiveError, Target

pos = st.floats(1e-12, 1e12, allow_nan=False, allow_infinity=False)


@given(pos, pos)
def test_single_metric_reward_bounded_and_monotone(a, b):
    obj = Objective({"latency_s": 1.0}, ref=1e-3)
    ra, rb = obj.reward(Metrics(latency_s=a)), obj.reward(Metrics(latency_s=b))
    assert 0.0 <= ra <= 1.0 and 0.0 <= rb <= 1.0
    if a < b:
        assert ra >= rb


def test_reference_scores_half_and_infeasible_scores_zero():
    obj = Objective.parse("energy_j*latency_s").with_reference(2.0)
    assert obj.reward(Metrics(energy_j=1.0, latency_s=2.0)) == pytest.approx(0.5)
    assert obj.reward(Metrics.infeasible("too big")) == 0.0
    assert obj.reward(Metrics(energy_j=math.nan, latency_s=1.0)) == 0.0
    assert obj.reward(Metrics(energy_j=0.0, latency_s=1.0)) == 0.0


def test_maximise_with_negative_weight():
    obj = Objective.parse("max:throughput_per_s").with_reference(1 / 100.0)
    lo = obj.reward(Metrics(throughput_per_s=10.0))
    hi = obj.reward(Metrics(throughput_per_s=1000.0))
    mid = obj.reward(Metrics(throughput_per_s=100.0))
    assert mid == pytest.approx(0.5)
    assert hi > mid > lo
    assert obj.directions == ("maximize",)


def test_targets_only():
    obj = Objective.parse(None, ["latency_s<=0.05", "area_mm2<=2"])
    met = Metrics(latency_s=0.04, area_mm2=1.0)
    assert obj.target_met(met) and obj.reward(met) == 1.0
    half = Metrics(latency_s=0.1, area_mm2=1.0)
    assert not obj.target_met(half)
    assert obj.reward(half) == pytest.approx((0.5 + 1.0) / 2)


@given(pos, pos, pos, pos)
def test_targets_are_lexicographic_over_cost(l1, a1, l2, a2):
    obj = Objective.parse("latency_s", ["area_mm2<=2"]).with_reference(1.0)
    m1, m2 = Metrics(latency_s=l1, area_mm2=a1), Metrics(latency_s=l2, area_mm2=a2)
    r1, r2 = obj.reward(m1), obj.reward(m2)
    assert 0 <= r1 <= 1 and 0 <= r2 <= 1
    if obj.target_met(m1) and not obj.target_met(m2):
        assert r1 > r2
    if obj.target_met(m1):
        assert r1 >= 0.5
    else:
        assert r1 < 0.5


@pytest.mark.parametrize("spec", ["lat ency", "latency_s^x", "latency", "energy_j*"])
def test_malformed_objective(spec):
    with pytest.raises(ObjectiveError):
        Objective.parse(spec)


@pytest.mark.parametrize("t", ["latency_s<<1", "latency_s<=abc", "latency<=1", "latency_s<=-1"])
def test_malformed_target(t):
    with pytest.raises(ObjectiveError):
        Target.parse(t)


def test_round_trip_dict_and_describe():
    obj = Objective.parse("energy_j*latency_s^2", ["area_mm2<=2"]).with_reference(3.0)
    assert Objective.from_dict(obj.to_dict()) == obj
    assert obj.describe() == "minimize energy_j*latency_s^2 s.t. area_mm2<=2"


def test_logged_cost_matches_cost_and_counts_a_target_miss_as_infinite(tmp_path):
    """The cost the benchmarks and the lottery read back from a run log is Objective.cost of
    the same metrics; a logged target miss or infeasible row costs inf."""
    from archgym.agent import make_agent
    from archgym.runner import make_evaluator, run
    from archgym.store import RunStore

    ev = make_evaluator("archgym/Systolic-v0", objective=Objective.parse("energy_j*latency_s", ["area_mm2<=10"]))
    with RunStore(tmp_path / "r.db") as st:
        res = run("archgym/Systolic-v0", make_agent("random", ev.space, seed=1), 40, seed=1, evaluator=ev, store=st)
        rows = list(st.evals(res.run_id))
    obj = ev.objective
    kinds = set()
    for e in rows:
        m = ev.evaluate(e.design).metrics
        if not m.feasible or not obj.target_met(m):
            assert obj.logged_cost(e) == math.inf
            kinds.add("feasible miss" if m.feasible else "infeasible")
        else:
            assert obj.logged_cost(e) == obj.cost(m) < math.inf
            kinds.add("hit")
    assert kinds == {"hit", "feasible miss", "infeasible"}


def test_target_log_violation_sign_and_value():
    le, ge = Target("area_mm2", "<=", 4.0), Target("tokens_per_s", ">=", 100.0)
    assert le.log_violation(8.0) == math.log(2.0) and le.log_violation(2.0) == math.log(0.5)
    assert ge.log_violation(50.0) == math.log(2.0) and ge.log_violation(200.0) == math.log(0.5)
    assert le.log_violation(4.0) == 0.0
    for v in (0.0, -1.0, math.inf, math.nan):
        assert math.isnan(le.log_violation(v))
    # the sign agrees with met() wherever it is defined
    for v in (0.5, 3.9, 4.0, 4.1, 100.0):
        assert (le.log_violation(v) <= 0) == le.met(v)


# --- properties over both target directions (issue #17 item 3) ------------------------------------
_METRICS = ("latency_s", "energy_j", "area_mm2", "throughput_per_s")
_vals = st.one_of(st.floats(-1e6, 1e300, allow_nan=False, allow_infinity=False),
                  st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf, 1e-300]))
_bounds = st.floats(1e-9, 1e9, allow_nan=False, allow_infinity=False)


@st.composite
def _objectives(draw):
    names = draw(st.lists(st.sampled_from(_METRICS), min_size=0, max_size=3, unique=True))
    weights = {n: draw(st.sampled_from([-2.0, -1.0, 0.5, 1.0, 2.0])) for n in names}
    tnames = draw(st.lists(st.sampled_from(_METRICS), min_size=0 if weights else 1, max_size=3))
    targets = tuple(Target(n, draw(st.sampled_from(["<=", ">="])), draw(_bounds)) for n in tnames)
    ref = draw(st.one_of(st.none(), _bounds))
    return Objective(weights, targets, ref)


@st.composite
def _metrics(draw):
    feasible = draw(st.booleans())
    vals = {n: draw(_vals) for n in _METRICS}
    return Metrics(feasible=feasible, reason="" if feasible else "x", **vals)


@given(_objectives(), _metrics())
def test_reward_is_finite_in_unit_interval_and_ordered_by_targets(obj, m):
    r = obj.reward(m)
    assert math.isfinite(r) and 0.0 <= r <= 1.0
    if not m.feasible:
        assert r == 0.0
    elif obj.targets and obj.weights:
        assert (r >= 0.5) if obj.target_met(m) else (r < 0.5)
    elif obj.targets:
        assert (r == 1.0) == obj.target_met(m)


@given(st.sampled_from(["<=", ">="]), _bounds, _vals, _vals)
def test_target_met_closeness_and_direction(op, bound, a, b):
    t = Target("latency_s", op, bound)
    for v in (a, b):
        c = t.closeness(v)
        assert 0.0 <= c <= 1.0
        met = math.isfinite(v) and (v <= bound if op == "<=" else v >= bound)
        assert t.met(v) == met
        assert (c == 1.0) == met or (not math.isfinite(v) and c == 0.0)
    if all(math.isfinite(v) and v > 0 for v in (a, b)) and a < b:
        # a smaller value is closer to a <= bound and farther from a >= bound
        assert t.closeness(a) >= t.closeness(b) if op == "<=" else t.closeness(a) <= t.closeness(b)


def test_ge_target_below_its_bound_is_not_met_and_scores_below_half():
    obj = Objective({"latency_s": 1.0}, (Target("throughput_per_s", ">=", 100.0),), ref=1.0)
    below = Metrics(latency_s=1.0, throughput_per_s=50.0)
    above = Metrics(latency_s=1.0, throughput_per_s=200.0)
    assert not obj.target_met(below) and obj.reward(below) == pytest.approx(0.25)  # 0.5 * 50/100
    assert obj.target_met(above) and obj.reward(above) == pytest.approx(0.75)      # 0.5 + 0.5 * 1/(1+1)


@given(st.lists(st.tuples(_objectives(), _metrics()), min_size=1, max_size=1), st.lists(_metrics(), min_size=1,
                                                                                      max_size=12))
def test_batch_reward_equals_scalar_reward_for_both_directions(pair, ms):
    import numpy as np

    from archgym.sweep import _batch_reward

    obj = pair[0][0]
    b = {n: np.array([m.get(n) for m in ms]) for n in _METRICS}
    b["feasible"] = np.array([m.feasible for m in ms])
    r, cost, met = _batch_reward(obj, b)
    for i, m in enumerate(ms):
        assert r[i] == pytest.approx(obj.reward(m), rel=1e-12, abs=1e-300)
        assert bool(met[i]) == obj.target_met(m)
        want = obj.cost(m)
        assert (cost[i] == want) or cost[i] == pytest.approx(want, rel=1e-12)
