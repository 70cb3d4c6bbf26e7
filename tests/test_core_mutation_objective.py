"""Objective, branch by branch: hand-worked rewards, boundaries of both target directions, the
cost cap, the parser and the error messages a user reads (issue #17 item 7, mutation testing).

Every expected number is worked out in the test from the reward contract in the module
docstring of archgym/objective.py (``cost = prod(metric ** weight)``, ``score = ref / (ref +
cost)``; targets first: a miss scores ``0.5 * mean closeness``, a hit ``0.5 + 0.5 * score``),
never by calling the code under test a second time.
"""

import math
from types import MappingProxyType

import pytest

from archgym.metrics import Metrics
from archgym.objective import Objective, ObjectiveError, Target
from archgym.store import LoggedEval


def _err(fn, *args, **kwargs) -> str:
    with pytest.raises(ObjectiveError) as ei:
        fn(*args, **kwargs)
    assert type(ei.value) is ObjectiveError
    return str(ei.value)


# --- Target: construction and parsing -------------------------------------------------------------
def test_target_rejects_a_bad_operator_metric_or_bound_with_one_line_naming_it():
    assert _err(Target, "latency_s", "<", 1.0) == "target operator '<'; allowed: '<=', '>='"
    assert _err(Target, "latency_s", "==", 1.0) == "target operator '=='; allowed: '<=', '>='"
    msg = _err(Target, "latency", "<=", 1.0)
    assert msg.startswith("metric name 'latency' has no unit suffix; allowed suffixes: cycles, _s, _ms")
    for bad in (0.0, -1.0, math.inf, -math.inf, math.nan):
        assert _err(Target, "area_mm2", ">=", bad) == (
            f"target area_mm2 >= {bad}: the bound must be finite and > 0")
    # any finite positive bound is fine, however small or below 1
    for ok in (1e-300, 0.5, 1.0, 3e9):
        assert Target("area_mm2", "<=", ok).value == ok


def test_target_parse_reads_name_operator_and_number_with_spaces():
    t = Target.parse("latency_s<=0.05")
    assert type(t) is Target and (t.metric, t.op, t.value) == ("latency_s", "<=", 0.05)
    t = Target.parse("  throughput_per_s >= 1e3 ")
    assert (t.metric, t.op, t.value) == ("throughput_per_s", ">=", 1000.0)
    assert Target.parse("area_mm2>=+2.5").value == 2.5
    for bad in ("latency_s<1", "latency_s<=", "<=1", "latency_s<=1<=2", "1latency_s<=2"):
        assert _err(Target.parse, bad) == (
            f"malformed target {bad!r}; expected e.g. 'latency_s<=0.05' or 'throughput_per_s>=100'")
    # characters the pattern admits that do not make a number are the same error
    for bad in ("latency_s<=1e", "latency_s<=1.2.3", "latency_s<=+-"):
        assert _err(Target.parse, bad) == (
            f"malformed target {bad!r}; expected e.g. 'latency_s<=0.05' or 'throughput_per_s>=100'")


def test_target_str_is_the_parseable_text():
    assert str(Target("area_mm2", "<=", 2.0)) == "area_mm2<=2"
    assert str(Target("latency_s", ">=", 0.05)) == "latency_s>=0.05"
    assert str(Target("energy_j", "<=", 1e-7)) == "energy_j<=1e-07"
    for t in (Target("area_mm2", "<=", 2.0), Target("throughput_per_s", ">=", 123.5)):
        assert Target.parse(str(t)) == t


# --- Target: met, closeness, log_violation --------------------------------------------------------
def test_target_met_on_both_sides_of_both_bounds():
    le, ge = Target("latency_s", "<=", 4.0), Target("throughput_per_s", ">=", 4.0)
    assert le.met(4.0) and le.met(3.999) and le.met(-1.0) and not le.met(4.001)
    assert ge.met(4.0) and ge.met(4.001) and not ge.met(3.999) and not ge.met(0.0)
    # a value that is not finite never meets a target, even one it would satisfy as a number
    assert not ge.met(math.inf) and not le.met(-math.inf)
    assert not le.met(math.nan) and not ge.met(math.nan)


def test_target_closeness_is_the_ratio_to_the_bound():
    le, ge = Target("latency_s", "<=", 4.0), Target("throughput_per_s", ">=", 100.0)
    assert le.closeness(8.0) == 0.5 and le.closeness(5.0) == 0.8 and le.closeness(40.0) == 0.1
    assert le.closeness(4.0) == 1.0 and le.closeness(1.0) == 1.0 and le.closeness(0.0) == 1.0
    assert ge.closeness(50.0) == 0.5 and ge.closeness(25.0) == 0.25
    assert ge.closeness(100.0) == 1.0 and ge.closeness(1e9) == 1.0
    assert ge.closeness(0.0) == 0.0 and ge.closeness(-5.0) == 0.0
    for v in (math.nan, math.inf, -math.inf):
        assert le.closeness(v) == 0.0 and ge.closeness(v) == 0.0


def test_target_log_violation_values_for_a_bound_below_one():
    le, ge = Target("area_mm2", "<=", 0.5), Target("throughput_per_s", ">=", 0.25)
    assert le.log_violation(1.0) == math.log(2.0)
    assert le.log_violation(0.25) == math.log(0.5)
    assert ge.log_violation(0.125) == math.log(2.0)
    assert ge.log_violation(1.0) == math.log(0.25)
    assert ge.log_violation(0.25) == 0.0
    for v in (0.0, -0.25, math.inf, math.nan):
        assert math.isnan(ge.log_violation(v))


# --- Objective: construction ----------------------------------------------------------------------
def test_objective_defaults_and_normalised_fields():
    o = Objective()
    assert o.weights == {"latency_s": 1.0} and o.targets == () and o.ref is None
    o = Objective(MappingProxyType({"energy_j": 2.0}), [Target("area_mm2", "<=", 2.0)], 3.0)
    assert type(o.weights) is dict and o.weights == {"energy_j": 2.0}
    assert type(o.targets) is tuple and o.targets == (Target("area_mm2", "<=", 2.0),)
    assert o.ref == 3.0
    # targets alone are an objective; so is a weight alone
    assert Objective({}, (Target("area_mm2", "<=", 2.0),)).weights == {}
    assert Objective({"latency_s": -0.5}).weights == {"latency_s": -0.5}


def test_objective_rejects_bad_weights_refs_and_empty_specs():
    assert _err(Objective, {}, ()) == "an objective needs at least one weighted metric or one target"
    assert _err(Objective, {"latency": 1.0}).startswith("metric name 'latency' has no unit suffix")
    for w in (0.0, math.nan, math.inf, -math.inf):
        assert _err(Objective, {"energy_j": w}) == f"weight of 'energy_j' must be finite and non-zero, got {w}"
    for ref in (0.0, -2.0, math.nan, math.inf):
        assert _err(Objective, {"energy_j": 1.0}, (), ref) == f"reference cost must be finite and > 0, got {ref}"
    for ref in (1e-300, 0.5, 7.0):
        assert Objective({"energy_j": 1.0}, (), ref).ref == ref


def test_parse_reads_products_powers_and_directions():
    assert Objective.parse("latency_s").weights == {"latency_s": 1.0}
    assert Objective.parse("energy_j*latency_s").weights == {"energy_j": 1.0, "latency_s": 1.0}
    assert Objective.parse(" energy_j^2 * latency_s ").weights == {"energy_j": 2.0, "latency_s": 1.0}
    assert Objective.parse("energy_j^0.5").weights == {"energy_j": 0.5}
    assert Objective.parse("max:throughput_per_s").weights == {"throughput_per_s": -1.0}
    assert Objective.parse("max:throughput_per_s^2").weights == {"throughput_per_s": -2.0}
    assert Objective.parse("min:latency_s").weights == {"latency_s": 1.0}
    # a repeated metric adds its exponents
    assert Objective.parse("latency_s*latency_s^2").weights == {"latency_s": 3.0}
    assert Objective.parse("energy_j*max:throughput_per_s").weights == {"energy_j": 1.0, "throughput_per_s": -1.0}
    o = Objective.parse(None, ["latency_s<=0.05", "area_mm2<=2"])
    assert o.weights == {} and o.targets == (Target("latency_s", "<=", 0.05), Target("area_mm2", "<=", 2.0))
    assert Objective.parse("", ["area_mm2<=2"]).weights == {}
    o = Objective.parse("latency_s", ("area_mm2<=2",))
    assert type(o) is Objective and type(o.targets) is tuple and o.ref is None


def test_parse_errors_name_the_term():
    assert _err(Objective.parse, "energy_j^") == "objective term 'energy_j^' has '^' but no exponent; e.g. 'energy_j^2'"
    assert _err(Objective.parse, "energy_j^ *latency_s") == (
        "objective term 'energy_j^' has '^' but no exponent; e.g. 'energy_j^2'")
    assert _err(Objective.parse, "max:energy_j^x") == "malformed exponent in objective term 'energy_j^x'"
    for spec in ("lat ency", "energy_j*", "max:", "2x"):
        assert _err(Objective.parse, spec) == (
            f"malformed objective {spec!r}; expected e.g. 'latency_s' or 'energy_j*latency_s'")


def test_with_reference_copies_and_falls_back_to_one():
    o = Objective.parse("energy_j", ["area_mm2<=2"])
    r = o.with_reference(2.5)
    assert (r.weights, r.targets, r.ref) == ({"energy_j": 1.0}, (Target("area_mm2", "<=", 2.0),), 2.5)
    assert o.ref is None
    for bad in (0.0, -1.0, math.inf, math.nan):
        assert o.with_reference(bad).ref == 1.0
    assert o.with_reference(1e-300).ref == 1e-300


def test_metrics_lists_each_metric_once_weights_first():
    o = Objective({"energy_j": 1.0, "latency_s": 1.0},
                  (Target("area_mm2", ">=", 1.0), Target("latency_s", "<=", 2.0), Target("area_mm2", "<=", 4.0)))
    assert o.metrics == ("energy_j", "latency_s", "area_mm2")
    assert Objective({}, (Target("area_mm2", ">=", 1.0), Target("area_mm2", "<=", 4.0))).metrics == ("area_mm2",)
    assert Objective({"latency_s": 1.0, "throughput_per_s": -2.0}).directions == ("minimize", "maximize")


# --- Objective: cost ------------------------------------------------------------------------------
def test_cost_is_the_weighted_product_and_inf_when_undefined():
    o = Objective({"energy_j": 1.0, "latency_s": 2.0})
    assert o.cost(Metrics(energy_j=3.0, latency_s=2.0)) == pytest.approx(12.0, rel=1e-14)  # 3 * 2^2
    assert Objective({"throughput_per_s": -1.0}).cost(Metrics(throughput_per_s=4.0)) == pytest.approx(0.25)
    assert o.cost(Metrics(energy_j=3.0, latency_s=2.0, feasible=False, reason="x")) == math.inf
    for bad in (0.0, -1.0, math.nan, math.inf):
        assert o.cost(Metrics(energy_j=bad, latency_s=2.0)) == math.inf
        assert o.cost(Metrics(energy_j=3.0, latency_s=bad)) == math.inf


def test_cost_caps_at_exp_700():
    """A cost above e^700 (~1.01e304) counts as inf, so no later product or sum overflows."""
    o = Objective({"latency_s": 1.0})
    assert o.cost(Metrics(latency_s=1e300)) == pytest.approx(1e300, rel=1e-12)
    assert o.cost(Metrics(latency_s=1.5e304)) == math.inf     # log = 700.4
    assert Objective({"latency_s": 2.0}).cost(Metrics(latency_s=1.2e152)) == math.inf  # log = 700.35
    # the cap itself: log(e) is exactly 1.0, so e^700 sits on it and is already inf
    assert Objective({"latency_s": 700.0}).cost(Metrics(latency_s=math.e)) == math.inf
    assert Objective({"latency_s": 699.0}).cost(Metrics(latency_s=math.e)) == pytest.approx(math.exp(699.0))


def _logged(metrics, feasible=True, target_met=True):
    return LoggedEval("r", 0, {}, metrics, 0.0, feasible, target_met, False, "", 0.0)


def test_logged_cost_reads_the_logged_row():
    o = Objective({"energy_j": 1.0, "latency_s": 1.0})
    assert o.logged_cost(_logged({"energy_j": 2.0, "latency_s": 3.0})) == pytest.approx(6.0)
    # without targets the logged target flag does not matter
    assert o.logged_cost(_logged({"energy_j": 2.0, "latency_s": 3.0}, target_met=False)) == pytest.approx(6.0)
    assert o.logged_cost(_logged({"energy_j": 2.0, "latency_s": 3.0}, feasible=False)) == math.inf
    assert o.logged_cost(_logged({"energy_j": 2.0})) == math.inf   # a metric the log does not have
    t = Objective({"energy_j": 1.0}, (Target("area_mm2", "<=", 2.0),))
    assert t.logged_cost(_logged({"energy_j": 2.0}, target_met=False)) == math.inf
    assert t.logged_cost(_logged({"energy_j": 2.0}, target_met=True)) == pytest.approx(2.0)


# --- Objective: target_met, closeness, reward -----------------------------------------------------
def test_target_met_needs_feasibility_and_every_target():
    o = Objective({"energy_j": 1.0}, (Target("latency_s", "<=", 1.0), Target("area_mm2", "<=", 2.0)))
    assert o.target_met(Metrics(latency_s=1.0, area_mm2=2.0))
    assert not o.target_met(Metrics(latency_s=1.0, area_mm2=2.5))
    assert not o.target_met(Metrics(latency_s=1.5, area_mm2=2.0))
    assert not o.target_met(Metrics(latency_s=1.0, area_mm2=2.0, feasible=False, reason="x"))
    assert Objective().target_met(Metrics())
    assert not Objective().target_met(Metrics(feasible=False, reason="x"))


def test_objective_closeness_is_the_mean_over_targets():
    o = Objective({}, (Target("latency_s", "<=", 1.0), Target("area_mm2", "<=", 2.0)))
    assert o.closeness(Metrics(latency_s=2.0, area_mm2=8.0)) == (0.5 + 0.25) / 2
    assert o.closeness(Metrics(latency_s=1.0, area_mm2=1.0)) == 1.0
    assert Objective().closeness(Metrics(latency_s=9.0)) == 1.0


def test_reward_worked_examples():
    m = Metrics(latency_s=3.0, energy_j=2.0, area_mm2=4.0, throughput_per_s=50.0)
    # no reference: ref = 1, so cost 3 scores 1/(1+3)
    assert Objective({"latency_s": 1.0}).reward(m) == 0.25
    assert Objective({"latency_s": 1.0}, (), 3.0).reward(m) == 0.5
    assert Objective({"latency_s": 1.0, "energy_j": 1.0}, (), 2.0).reward(m) == 0.25  # 2/(2+6)
    # targets only: mean closeness; met -> exactly 1
    assert Objective({}, (Target("area_mm2", "<=", 2.0),)).reward(m) == 0.5
    assert Objective({}, (Target("area_mm2", "<=", 8.0),)).reward(m) == 1.0
    # targets first: met -> 0.5 + 0.5 * score, missed -> 0.5 * closeness
    met = Objective({"latency_s": 1.0}, (Target("area_mm2", "<=", 8.0),), 1.0)
    assert met.reward(m) == 0.5 + 0.5 * 0.25
    miss = Objective({"latency_s": 1.0}, (Target("throughput_per_s", ">=", 200.0),), 1.0)
    assert miss.reward(m) == 0.5 * 0.25
    # a met target with an undefined cost still beats every miss: score 0
    nan_cost = Metrics(latency_s=math.nan, area_mm2=4.0)
    assert met.reward(nan_cost) == 0.5
    assert Objective({"latency_s": 1.0}).reward(nan_cost) == 0.0
    # infeasible scores 0 whatever its numbers
    for o in (met, miss, Objective({}, (Target("area_mm2", "<=", 8.0),))):
        assert o.reward(Metrics(latency_s=3.0, area_mm2=4.0, feasible=False, reason="x")) == 0.0


# --- describe / to_dict / from_dict ---------------------------------------------------------------
def test_describe_reads_like_the_objective():
    assert Objective.parse("latency_s").describe() == "minimize latency_s"
    assert Objective.parse("max:throughput_per_s").describe() == "maximize throughput_per_s"
    assert Objective.parse("max:throughput_per_s^2").describe() == "maximize throughput_per_s^2"
    assert Objective.parse("energy_j*max:throughput_per_s").describe() == "minimize energy_j/throughput_per_s"
    assert Objective.parse("energy_j^2*latency_s^0.5*max:throughput_per_s*max:tokens_per_s^3").describe() == (
        "minimize energy_j^2*latency_s^0.5/throughput_per_s*tokens_per_s^3")
    assert Objective.parse(None, ["latency_s<=0.05", "area_mm2<=2"]).describe() == (
        "meet targets s.t. latency_s<=0.05, area_mm2<=2")
    assert Objective.parse("energy_j", ["throughput_per_s>=100"]).describe() == (
        "minimize energy_j s.t. throughput_per_s>=100")


def test_to_dict_and_from_dict():
    o = Objective.parse("energy_j*max:throughput_per_s", ["area_mm2<=2"]).with_reference(0.5)
    assert o.to_dict() == {"weights": {"energy_j": 1.0, "throughput_per_s": -1.0}, "targets": ["area_mm2<=2"],
                           "ref": 0.5}
    back = Objective.from_dict(o.to_dict())
    assert type(back) is Objective and back == o
    assert Objective.from_dict({"weights": {"energy_j": 1.0}}) == Objective({"energy_j": 1.0})
    assert Objective.from_dict({"targets": ["area_mm2<=2"]}) == Objective({}, (Target("area_mm2", "<=", 2.0),))
    assert Objective.from_dict({"weights": {"energy_j": 1.0}, "ref": 2.0}).ref == 2.0
