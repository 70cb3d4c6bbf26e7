"""DesignSpace, branch by branch: every parameter kind's values and bounds, the three encodings
worked out by hand, the error messages a user reads, and the adapters for Optuna (issue #17
item 7, mutation testing).

Expected index vectors, flat indices and unit points are computed in the tests from the
definitions in archgym/space.py's docstrings (mixed radix with the last parameter fastest;
cell centres ``(i + 0.5) / n``), not by calling a second method of the code under test.
"""

import math

import numpy as np
import pytest

from archgym.space import (Choice, Constraint, DesignSpace, FloatRange, IntRange, InvalidDesign, Param, Pow2,
                           index_neighbours)


def _err(exc, fn, *args, **kwargs) -> str:
    with pytest.raises(exc) as ei:
        fn(*args, **kwargs)
    assert type(ei.value) is exc
    return str(ei.value)


# a small space: sizes 3 (ordered), 2 (categorical), 4 (ordered)
S = DesignSpace(
    [IntRange(name="a", low=1, high=5, step=2, doc="rows", unit="PE"),
     Choice(name="b", options=("x", "y")),
     Pow2(name="c", low=2, high=16)],
    [Constraint("cap", lambda d: d["a"] * d["c"] <= 40, "a*c={a}*{c} exceeds 40")],
)


# --- parameters -----------------------------------------------------------------------------------
def test_param_declaration_errors():
    assert _err(ValueError, IntRange, name="1x", low=1, high=2) == "parameter name '1x' must be a Python identifier"
    assert _err(ValueError, Choice, name="x", options=()) == "parameter 'x' has no values"
    assert _err(ValueError, Choice, name="x", options=(1, 2, 1)) == "parameter 'x' has duplicate values: (1, 2, 1)"
    assert _err(ValueError, IntRange, name="x", low=2, high=1) == "IntRange 'x': need low <= high and step >= 1"
    assert _err(ValueError, IntRange, name="x", low=1, high=4, step=0) == "IntRange 'x': need low <= high and step >= 1"
    for bad in (0, 3, 6, -4):
        assert _err(ValueError, Pow2, name="x", low=bad, high=8) == f"Pow2 'x': bound {bad} is not a power of two"
        assert _err(ValueError, Pow2, name="x", low=1, high=bad) == f"Pow2 'x': bound {bad} is not a power of two"
    assert _err(ValueError, Pow2, name="x", low=8, high=4) == "Pow2 'x': need low <= high"
    assert _err(ValueError, FloatRange, name="x", low=1.0, high=1.0) == "FloatRange 'x': need low < high and num >= 2"
    assert _err(ValueError, FloatRange, name="x", low=0.0, high=1.0, num=1) == (
        "FloatRange 'x': need low < high and num >= 2")
    for low in (0.0, -1.0):
        assert _err(ValueError, FloatRange, name="x", low=low, high=1.0, log=True) == (
            "FloatRange 'x': log scale needs low > 0")


def test_param_values_at_their_edges():
    assert IntRange(name="x", low=1, high=10, step=3).values == (1, 4, 7, 10)
    assert IntRange(name="x", low=1, high=9, step=3).values == (1, 4, 7)
    assert IntRange(name="x", low=3, high=3).values == (3,)
    assert IntRange(name="x", low=-2, high=1).values == (-2, -1, 0, 1)
    assert Pow2(name="x", low=1, high=1).values == (1,)
    assert Pow2(name="x", low=1, high=8).values == (1, 2, 4, 8)
    assert Pow2(name="x", low=4, high=64).values == (4, 8, 16, 32, 64)
    assert Choice(name="x", options=["p", "q"]).values == ("p", "q")
    assert FloatRange(name="x", low=0.6, high=1.0, num=5).values == (0.6, 0.7, 0.8, 0.9, 1.0)
    assert FloatRange(name="x", low=0.0, high=1.0, num=2).values == (0.0, 1.0)
    assert FloatRange(name="x", low=1.0, high=1000.0, num=4, log=True).values == (1.0, 10.0, 100.0, 1000.0)
    fr = FloatRange(name="x", low=0.1, high=0.3, num=3)
    assert fr.values == (0.1, 0.2, 0.3) and all(type(v) is float for v in fr.values)
    # grid points are rounded to 12 decimals (the text a user reads back and types in): sixths of 1
    # are 0.166666666667, not 1/6 = 0.16666666666666666
    assert FloatRange(name="x", low=0.0, high=1.0, num=7).values == (
        0.0, 0.166666666667, 0.333333333333, 0.5, 0.666666666667, 0.833333333333, 1.0)


def test_values_and_lookup_are_computed_once():
    p = IntRange(name="x", low=1, high=9)
    assert p.values is p.values and p._lookup is p._lookup
    assert p.size == 9 and p._lookup == {v: v - 1 for v in range(1, 10)}


def test_ordered_flags():
    assert IntRange(name="x", low=1, high=2).ordered and Pow2(name="x", low=1, high=2).ordered
    assert FloatRange(name="x", low=0.0, high=1.0).ordered
    assert not Choice(name="x", options=("a", "b")).ordered
    assert Choice(name="x", options=(1, 2), ordinal=True).ordered
    assert not Choice(name="x", options=(1, 2)).ordinal


def test_index_and_value_with_their_errors():
    p = Pow2(name="c", low=2, high=16)
    assert [p.index(v) for v in (2, 4, 8, 16)] == [0, 1, 2, 3]
    assert p.index(np.int32(8)) == 2 and p.index(8.0) == 2 and p.index(np.float64(16.0)) == 3
    assert _err(InvalidDesign, p.index, 3) == "c=3 is not allowed; allowed: {2, 4, 8, 16}"
    assert _err(InvalidDesign, p.index, 8.5) == "c=8.5 is not allowed; allowed: {2, 4, 8, 16}"
    assert _err(InvalidDesign, p.index, [8]) == "c=[8] is not allowed; allowed: {2, 4, 8, 16}"  # unhashable
    assert _err(InvalidDesign, p.index, "8") == "c='8' is not allowed; allowed: {2, 4, 8, 16}"
    assert [p.value(i) for i in (0, 3, np.int64(1), 2.0)] == [2, 16, 4, 8]
    assert _err(InvalidDesign, p.value, 4) == "c: index 4 is outside 0..3"
    assert _err(InvalidDesign, p.value, -1) == "c: index -1 is outside 0..3"
    ch = Choice(name="b", options=("x", "y"))
    assert _err(InvalidDesign, ch.index, "z") == "b='z' is not allowed; allowed: {'x', 'y'}"
    # booleans are their own values (True is not the float 1.0 of a neighbouring option)
    flags = Choice(name="f", options=(True, False))
    assert flags.index(True) == 0 and flags.index(False) == 1 and flags.index(np.bool_(False)) == 1
    halves = Choice(name="h", options=(0.5, 1.0, 2))
    assert halves.index(1) == 1 and halves.index(2.0) == 2 and halves.index(0.5) == 0


def test_allowed_sets_are_abbreviated_past_twelve_values():
    assert IntRange(name="n", low=1, high=12).describe() == "n: {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}"
    assert IntRange(name="n", low=1, high=13).describe() == "n: {1, 2, 3, 4, ..., 11, 12, 13} (13 values)"
    assert _err(InvalidDesign, IntRange(name="n", low=1, high=40).index, 0) == (
        "n=0 is not allowed; allowed: {1, 2, 3, 4, ..., 38, 39, 40} (40 values)")
    assert Pow2(name="sram_kb", low=1, high=4, unit="kB").describe() == "sram_kb: {1, 2, 4} kB"
    assert Choice(name="df", options=("os", 1)).describe() == "df: {'os', 1}"
    # options taken from a numpy array read as plain numbers; only strings are quoted
    assert Choice(name="k", options=tuple(np.arange(1, 4))).describe() == "k: {1, 2, 3}"


def test_float_range_index_tolerances_and_messages():
    p = FloatRange(name="vdd", low=0.6, high=1.0, num=5)
    assert [p.index(v) for v in (0.6, 0.7, 0.8, 0.9, 1.0)] == [0, 1, 2, 3, 4]
    assert p.index(0.7 * (1 + 5e-10)) == 1 and p.index("0.8") == 2 and p.index(np.float32(1.0)) == 4
    msg = "vdd={!r} is not one of the 5 grid points in [0.6, 1.0]: {{0.6, 0.7, 0.8, 0.9, 1.0}}"
    for bad in (0.7 * (1 + 5e-9), 0.65, 1.2, 0.0, math.nan, math.inf, "abc", None):
        assert _err(InvalidDesign, p.index, bad) == msg.format(bad)
    z = FloatRange(name="z", low=0.0, high=1.0, num=3)
    assert z.index(1e-13) == 0                      # absolute tolerance at a zero grid point
    assert _err(InvalidDesign, z.index, 1e-11).startswith("z=1e-11 is not one of the 3 grid points")
    lg = FloatRange(name="bw", low=1.0, high=100.0, num=3, log=True)
    assert lg.index(10.0) == 1
    assert _err(InvalidDesign, lg.index, 5.0) == (
        "bw=5.0 is not one of the 3 grid points in [1.0, 100.0] (log): {1.0, 10.0, 100.0}")


# --- constraints ----------------------------------------------------------------------------------
def test_constraint_rule_and_violation_text():
    c = Constraint("cap", lambda d: d["a"] <= 2, "a={a} exceeds {limit:d}")
    assert c.rule() == "infeasible when a=<a> exceeds <limit>"
    plain = Constraint("p", lambda d: False, "too big")
    assert plain.rule() == "too big"
    assert c.violation({"a": 2}) is None
    # a field the design lacks, a positional field and a bad format spec fall back to the raw text
    assert c.violation({"a": 3}) == "cap: a={a} exceeds {limit:d}"
    assert Constraint("n", lambda d: False, "x {0}").violation({"a": 1}) == "n: x {0}"
    assert Constraint("n", lambda d: False, "x {a:d}").violation({"a": "s"}) == "n: x {a:d}"
    assert c.violation({"a": 3, "limit": 2}) == "cap: a=3 exceeds 2"
    assert plain.violation({}) == "p: too big"


def test_violations_in_declaration_order_and_feasibility():
    sp = DesignSpace([IntRange(name="a", low=0, high=9)],
                     [Constraint("lo", lambda d: d["a"] >= 3, "a={a} < 3"),
                      Constraint("odd", lambda d: d["a"] % 2 == 1, "a={a} is even")])
    assert sp.violations({"a": 2}) == ["lo: a=2 < 3", "odd: a=2 is even"]
    assert sp.violations({"a": 4}) == ["odd: a=4 is even"]
    assert sp.violations({"a": 5}) == [] and sp.is_feasible({"a": 5})
    assert not sp.is_feasible({"a": 1}) and not sp.is_feasible({"a": 4})
    assert S.describe() == (
        "24 designs, 3 parameters:\n"
        "  a: {1, 3, 5} PE\n"
        "  b: {'x', 'y'}\n"
        "  c: {2, 4, 8, 16}\n"
        "  constraint cap: infeasible when a*c=<a>*<c> exceeds 40")


def test_index_neighbours_exact_order():
    # ordered: -1 then +1 (clipped at both ends); categorical: every other option in order
    assert index_neighbours([1, 0, 3], [3, 3, 4], [True, False, True]) == [
        (0, 0, 3), (2, 0, 3), (1, 1, 3), (1, 2, 3), (1, 0, 2)]
    assert index_neighbours((0,), (1,), (True,)) == [] and index_neighbours((0,), (1,), (False,)) == []
    assert index_neighbours(np.array([0, 1]), [2, 2], [True, True]) == [(1, 1), (0, 0)]
    d = {"a": 3, "b": "y", "c": 16}
    assert S.neighbours(d) == [{"a": 1, "b": "y", "c": 16}, {"a": 5, "b": "y", "c": 16},
                               {"a": 3, "b": "x", "c": 16}, {"a": 3, "b": "y", "c": 8}]


# --- DesignSpace structure and validation ---------------------------------------------------------
def test_space_structure():
    assert S.names == ("a", "b", "c") and S.size == 3 * 2 * 4
    nv = S.nvec
    assert nv.dtype == np.int64 and nv.tolist() == [3, 2, 4]
    nv[0] = 99
    assert S.nvec.tolist() == [3, 2, 4]          # a copy: the caller cannot corrupt the space
    assert type(S.params) is tuple and type(S.constraints) is tuple
    assert S["b"] is S.params[1] and "c" in S and "d" not in S
    assert _err(InvalidDesign, S.__getitem__, "d") == "unknown parameter 'd'; parameters: a, b, c"
    assert _err(ValueError, DesignSpace, [Pow2(name="a", low=1, high=2), Pow2(name="a", low=1, high=4)]) == (
        "duplicate parameter names in design space: ['a', 'a']")
    assert _err(ValueError, DesignSpace, []) == "a design space needs at least one parameter"
    assert DesignSpace((p for p in S.params)).names == ("a", "b", "c")


def test_validate_normalises_and_names_what_is_wrong():
    got = S.validate({"a": np.int64(3), "b": np.str_("x"), "c": 8.0})
    assert got == {"a": 3, "b": "x", "c": 8} and [type(v) for v in got.values()] == [int, str, int]
    assert _err(InvalidDesign, S.validate, [("a", 1)]) == (
        "a design must be a mapping of parameter names to values, got list")
    assert _err(InvalidDesign, S.validate, {"a": 1, "zz": 1, "yy": 2}) == "unknown parameter 'zz'; parameters: a, b, c"
    assert _err(InvalidDesign, S.validate, {"a": 1, "c": 2}) == "missing parameter 'b'; allowed: {'x', 'y'}"
    assert S.validate({"c": 4}, partial=True) == {"c": 4}
    assert S.validate({}, partial=True) == {}
    assert _err(InvalidDesign, S.validate, {"c": 5}, partial=True) == "c=5 is not allowed; allowed: {2, 4, 8, 16}"


def test_restrict_pins_and_keeps_docs_units_and_constraints():
    sub = S.restrict({"a": 5, "c": np.int64(4)})
    assert sub.names == S.names and sub.size == 2
    assert sub["a"].values == (5,) and sub["c"].values == (4,) and sub["b"] is S["b"]
    assert type(sub["a"]) is Choice and sub["a"].doc == "rows" and sub["a"].unit == "PE"
    assert sub.constraints == S.constraints
    assert _err(InvalidDesign, S.restrict, {"q": 1}) == "unknown parameter 'q'; parameters: a, b, c"


# --- encodings ------------------------------------------------------------------------------------
def test_encode_decode_unit_and_flat_index_worked_by_hand():
    d = {"a": 5, "b": "x", "c": 8}
    e = S.encode(d)
    assert e.dtype == np.int64 and e.tolist() == [2, 0, 2]
    assert S.decode([2, 0, 2]) == d and S.decode(np.array([[2, 0, 2]])) == d
    assert S.index_of(d) == (2 * 2 + 0) * 4 + 2
    assert S.index_of({"a": 1, "b": "x", "c": 2}) == 0 and S.index_of({"a": 5, "b": "y", "c": 16}) == 23
    assert S.to_unit(d).tolist() == [2.5 / 3, 0.5 / 2, 2.5 / 4]
    assert _err(InvalidDesign, S.decode, [0, 0]) == "index vector has 2 entries; the space has 3 parameters"
    assert _err(InvalidDesign, S.encode, {"a": 2, "b": "x", "c": 8}) == "a=2 is not allowed; allowed: {1, 3, 5}"


def test_from_unit_cells_edges_and_clipping():
    assert S.from_unit([0.0, 0.0, 0.0]) == {"a": 1, "b": "x", "c": 2}
    assert S.from_unit([1.0, 1.0, 1.0]) == {"a": 5, "b": "y", "c": 16}        # the closed upper edge
    assert S.from_unit([-3.0, 7.0, 0.5]) == {"a": 1, "b": "y", "c": 8}        # clipped; 0.5*4 = cell 2
    assert S.from_unit([1 / 3, 0.4999, 0.2499]) == {"a": 3, "b": "x", "c": 2}
    assert S.from_unit(np.array([[0.7, 0.6, 0.75]])) == {"a": 5, "b": "y", "c": 16}
    assert _err(InvalidDesign, S.from_unit, [0.5]) == "unit vector has 1 entries; the space has 3 parameters"


def test_check_indices_shapes_dtypes_and_the_first_bad_entry():
    ok = S.check_indices(np.array([[0, 1, 3], [2, 0, 0]], dtype=np.int32))
    assert ok.dtype == np.int64 and ok.tolist() == [[0, 1, 3], [2, 0, 0]]
    same = np.array([[1, 1, 1]], dtype=np.int64)
    assert S.check_indices(same) is same
    assert S.check_indices([[0, 0, 0]]).tolist() == [[0, 0, 0]]
    empty = S.check_indices(np.zeros((0, 3)))
    assert empty.shape == (0, 3) and empty.dtype == np.int64
    for bad in (np.zeros(3, dtype=np.int64), np.zeros((2, 2), dtype=np.int64), np.zeros((1, 3)),
                np.zeros((1, 1, 3), dtype=np.int64)):
        assert _err(InvalidDesign, S.check_indices, bad) == (
            f"indices must be an integer array of shape (n, 3); got shape {bad.shape}, dtype {bad.dtype}")
    assert _err(InvalidDesign, S.check_indices, [[0, 0, 0], [0, 2, 4], [-1, 0, 0]]) == (
        "indices[1, 1] = 2 (b) is outside 0..1")
    assert _err(InvalidDesign, S.check_indices, [[0, 0, 0], [-1, 0, 9]]) == "indices[1, 0] = -1 (a) is outside 0..2"
    assert _err(InvalidDesign, S.check_indices, [[2, 1, 4]]) == "indices[0, 2] = 4 (c) is outside 0..3"


# --- sampling and enumeration ---------------------------------------------------------------------
def test_sampling_is_uniform_over_indices_and_seeded():
    draws = np.random.default_rng(5).integers(0, [3, 2, 4])
    assert S.sample(np.random.default_rng(5)) == S.decode(draws)
    many = S.sample_indices(np.random.default_rng(9), 4000)
    assert many.shape == (4000, 3)
    assert np.array_equal(many, np.random.default_rng(9).integers(0, [3, 2, 4], size=(4000, 3)))
    for j, n in enumerate([3, 2, 4]):
        assert set(many[:, j].tolist()) == set(range(n))


def test_grid_and_iteration_order_and_limit():
    g = S.grid_indices()
    assert g.dtype == np.int64 and g.shape == (24, 3)
    want = [[i, j, k] for i in range(3) for j in range(2) for k in range(4)]   # last parameter fastest
    assert g.tolist() == want
    assert [S.encode(d).tolist() for d in S] == want
    assert S.grid_indices(limit=24).shape == (24, 3)
    assert _err(ValueError, S.grid_indices, 23) == "design space has 24 designs, more than the enumeration limit 23"
    big = DesignSpace([IntRange(name=f"p{i}", low=0, high=99) for i in range(4)])
    assert _err(ValueError, big.grid_indices) == (
        "design space has 100000000 designs, more than the enumeration limit 20000000")


# --- search-library adapters ----------------------------------------------------------------------
class _Trial:
    """Records what DesignSpace.suggest asks for and answers with fixed indices."""

    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def suggest_int(self, name, low, high):
        self.calls.append(("int", name, low, high))
        return self.answers[name]

    def suggest_categorical(self, name, choices):
        self.calls.append(("cat", name, choices))
        return self.answers[name]


def test_suggest_asks_indices_and_returns_values():
    t = _Trial({"a": 2, "b": 1, "c": 0})
    assert S.suggest(t) == {"a": 5, "b": "y", "c": 2}
    assert t.calls == [("int", "a", 0, 2), ("cat", "b", [0, 1]), ("int", "c", 0, 3)]


def test_optuna_distributions_match_suggest():
    import optuna

    d = S.optuna_distributions()
    assert list(d) == ["a", "b", "c"]
    assert d["a"] == optuna.distributions.IntDistribution(0, 2)
    assert d["b"] == optuna.distributions.CategoricalDistribution([0, 1])
    assert d["c"] == optuna.distributions.IntDistribution(0, 3)


def test_param_base_class_is_abstract():
    with pytest.raises(NotImplementedError):
        Param(name="x")
