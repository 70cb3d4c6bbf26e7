"""DesignSpace: encodings round-trip, invalid inputs name the parameter and the allowed set."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archgym.space import Choice, Constraint, DesignSpace, FloatRange, IntRange, InvalidDesign, Pow2, index_neighbours

SPACE = DesignSpace(
    [
        Pow2(name="rows", low=4, high=64),
        IntRange(name="banks", low=1, high=9, step=2),
        Choice(name="dataflow", options=("os", "ws", "is")),
        Choice(name="bits", options=(4, 8, 16), ordinal=True),
        FloatRange(name="vdd", low=0.6, high=1.0, num=5),
        FloatRange(name="bw", low=1.0, high=100.0, num=3, log=True),
    ],
    [Constraint("small", lambda d: d["rows"] * d["banks"] <= 256, "rows*banks={rows}*{banks} exceeds 256")],
)


def index_vectors():
    return st.tuples(*[st.integers(0, int(n) - 1) for n in SPACE.nvec]).map(np.array)


@given(index_vectors())
def test_decode_encode_round_trip(idx):
    d = SPACE.decode(idx)
    assert np.array_equal(SPACE.encode(d), idx)
    assert SPACE.validate(d) == d


@given(index_vectors())
def test_unit_round_trip(idx):
    d = SPACE.decode(idx)
    u = SPACE.to_unit(d)
    assert ((u > 0) & (u < 1)).all()
    assert SPACE.from_unit(u) == d


@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=6, max_size=6))
def test_from_unit_clips_to_box(u):
    d = SPACE.from_unit(u)
    SPACE.validate(d)


@given(index_vectors())
def test_flat_index_is_a_bijection_with_grid_order(idx):
    d = SPACE.decode(idx)
    flat = SPACE.index_of(d)
    assert np.array_equal(SPACE.grid_indices()[flat], idx)


def test_size_and_grid():
    assert SPACE.size == 5 * 5 * 3 * 3 * 5 * 3
    g = SPACE.grid_indices()
    assert g.shape == (SPACE.size, 6)
    assert len({tuple(r) for r in g}) == SPACE.size
    assert len(list(SPACE)) == SPACE.size


def test_values():
    assert SPACE["rows"].values == (4, 8, 16, 32, 64)
    assert SPACE["banks"].values == (1, 3, 5, 7, 9)
    assert SPACE["bw"].values == (1.0, 10.0, 100.0)


@pytest.mark.parametrize(
    "design, needle",
    [
        ({"rows": 5}, "rows=5 is not allowed; allowed: {4, 8, 16, 32, 64}"),
        ({"banks": 2}, "banks=2"),
        ({"dataflow": "xs"}, "dataflow='xs' is not allowed; allowed: {'os', 'ws', 'is'}"),
        ({"vdd": 0.65}, "vdd=0.65"),
        ({"colz": 3}, "unknown parameter 'colz'"),
    ],
)
def test_invalid_values_name_parameter_and_allowed(design, needle):
    full = {**SPACE.decode([0] * 6), **design}
    with pytest.raises(InvalidDesign) as e:
        SPACE.validate(full)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_parameter_and_bad_index():
    with pytest.raises(InvalidDesign, match="missing parameter 'rows'"):
        SPACE.validate({"banks": 1})
    with pytest.raises(InvalidDesign, match="index 9 is outside 0..4"):
        SPACE.decode([9, 0, 0, 0, 0, 0])
    with pytest.raises(InvalidDesign, match="6 parameters"):
        SPACE.decode([0, 0])


def test_numpy_scalars_and_integral_floats_accepted():
    d = SPACE.decode([1, 1, 1, 1, 1, 1])
    d2 = {**d, "rows": np.int64(8), "bits": 8.0, "dataflow": np.str_("ws")}
    assert SPACE.validate(d2) == d


def test_constraints_are_feasibility_not_errors():
    d = {**SPACE.decode([0] * 6), "rows": 64, "banks": 9}
    assert SPACE.violations(d) == ["small: rows*banks=64*9 exceeds 256"]
    assert not SPACE.is_feasible(d)
    assert SPACE.is_feasible({**d, "banks": 3})


def test_neighbours_ordered_and_categorical():
    d = SPACE.decode([0, 2, 0, 1, 4, 1])
    nbs = SPACE.neighbours(d)
    # rows: up only (1); banks: 2; dataflow: 2 other options; bits: 2; vdd: down only (1); bw: 2
    assert len(nbs) == 1 + 2 + 2 + 2 + 1 + 2
    for nb in nbs:
        diff = [k for k in d if nb[k] != d[k]]
        assert len(diff) == 1


def test_restrict_pins_parameters():
    sub = SPACE.restrict({"dataflow": "ws", "rows": 16})
    assert sub.size == SPACE.size // (3 * 5)
    assert sub["dataflow"].values == ("ws",)
    with pytest.raises(InvalidDesign):
        SPACE.restrict({"rows": 3})


def test_bad_declarations():
    with pytest.raises(ValueError, match="power of two"):
        Pow2(name="x", low=3, high=8)
    with pytest.raises(ValueError, match="duplicate"):
        Choice(name="x", options=(1, 1))
    with pytest.raises(ValueError, match="duplicate parameter names"):
        DesignSpace([Pow2(name="a", low=1, high=2), Pow2(name="a", low=1, high=4)])


def test_optuna_adapter_round_trip():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(20):
        t = study.ask()
        d = SPACE.suggest(t)
        SPACE.validate(d)
        study.tell(t, 0.0)
    dists = SPACE.optuna_distributions()
    assert set(dists) == set(SPACE.names)


@settings(max_examples=50)
@given(st.integers(0, 2**32 - 1))
def test_sample_is_seeded(seed):
    a = SPACE.sample(np.random.default_rng(seed))
    b = SPACE.sample(np.random.default_rng(seed))
    assert a == b


def test_index_neighbours_order_edges_and_pinned_parameters():
    # ordered at the low edge (only +1), categorical (every other option), pinned (none)
    assert index_neighbours((0, 2, 0), (3, 3, 1), (True, False, True)) == [(1, 2, 0), (0, 0, 0), (0, 1, 0)]
    assert index_neighbours((2,), (3,), (True,)) == [(1,)]
    assert index_neighbours((1,), (3,), (True,)) == [(0,), (2,)]
