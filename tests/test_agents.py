"""Conformance suite: every registered agent, on a toy simulator with a planted optimum.

Each agent must: ask only designs inside the space (normalised values); never
exceed the budget (asks, rows, simulator calls); keep infeasible designs out
of its best result; give the same asks for the same seed (run twice) and
different ones for another seed; resume from the run log (budget k, then n)
with exactly the rows of an uninterrupted run; and beat the 95th percentile
of the whole space's reward (the planted optimum makes that non-trivial).
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile

import numpy as np
import pytest

from archgym.agent import AGENTS, BadHyperparameter, UnknownAgent, agent_class, make_agent
from archgym.cli import main
from archgym.metrics import Metrics
from archgym.objective import Objective
from archgym.runner import run
from archgym.simulator import Evaluator, Simulator
from archgym.space import Choice, Constraint, DesignSpace, IntRange, Pow2
from archgym.store import RunStore

OPT = {"a": 5, "b": 16, "c": "z", "d": 3, "e": 1}


class Planted(Simulator):
    """3,360 designs; EDP is minimal at :data:`OPT` (which sits next to the infeasible corner)."""

    name = "planted"
    reference = "test fixture"

    def __init__(self) -> None:
        self.calls = 0
        self._space = DesignSpace(
            [IntRange(name="a", low=0, high=7), Pow2(name="b", low=1, high=64), Choice(name="c", options=("x", "y", "z")),
             Choice(name="d", options=(1, 2, 3, 4), ordinal=True), IntRange(name="e", low=0, high=4)],
            [Constraint("corner", lambda d: d["a"] + d["b"].bit_length() <= 11, "a + log2(b) + 1 > 11")],
        )

    def design_space(self) -> DesignSpace:
        return self._space

    def default_design(self) -> dict:
        return {"a": 0, "b": 1, "c": "x", "d": 1, "e": 0}

    def workloads(self) -> tuple[str, ...]:
        return ("opt-125m/decode",)

    def evaluate(self, design, workload) -> Metrics:
        self.calls += 1
        i = self._space.encode(design)
        o = self._space.encode(OPT)
        d2 = float(np.sum(((i - o) * np.array([1.0, 1.2, 0.0, 0.8, 1.5])) ** 2)) + 3.0 * (design["c"] != OPT["c"])
        return Metrics(latency_s=1e-3 * (1.0 + d2), energy_j=2e-3 * (1.0 + 0.5 * d2 + 0.1 * abs(i[4] - o[4])))


OBJ = Objective({"energy_j": 1.0, "latency_s": 1.0})

# small, fast settings for the expensive agents; the rest use their defaults
FAST = {
    "bo": {"n_initial_points": 6, "n_points": 200, "gp_max_iter": 15},
    "gp": {"n_startup_trials": 6},
    "ppo": {"n_steps": 16, "batch_size": 8, "n_epochs": 2, "hidden": 16},
    "tpe": {"n_startup_trials": 8},
    "nsga2": {"population_size": 8},
    "ga": {"pop_size": 8},
}
BUDGET = {"gp": 20, "bo": 20}
ALL = sorted(AGENTS)


def _budget(name: str) -> int:
    return BUDGET.get(name, 60)


def _run(name: str, seed: int, budget: int, store=None):
    """One run; returns (asked designs, result, evaluator, simulator)."""
    sim = Planted()
    ev = Evaluator(sim, "opt-125m/decode", OBJ)
    ag = make_agent(name, ev.space, seed=seed, params=FAST.get(name, {}), objective=ev.objective, budget=budget)
    asked = []
    ask = ag.ask
    ag.ask = lambda: asked.append(ask()) or asked[-1]
    res = run("test/Planted-v0", ag, budget, seed=seed, evaluator=ev, store=store)
    return asked, res, ev, sim


def _space_rewards() -> np.ndarray:
    ev = Evaluator(Planted(), "opt-125m/decode", OBJ)
    return np.array([ev.evaluate(d).reward for d in ev.space])


def _skip_missing(name: str) -> None:
    needs = {"ppo": "stable_baselines3", "gp": "torch", "cmaes": "cmaes", "bo": "skopt"}
    if name in needs:
        pytest.importorskip(needs[name])


@pytest.mark.parametrize("name", ALL)
def test_agent_conformance(name, tmp_path, monkeypatch):
    _skip_missing(name)
    budget = _budget(name)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with RunStore(tmp_path / "a.db") as st:
        asked, res, ev, sim = _run(name, 0, budget, store=st)
        rows = [(r.step, r.design, r.reward, r.cached) for r in st.evals(res.run_id)]
    space = ev.space
    # respects the space: every ask is a valid, normalised design
    assert len(asked) == budget
    for d in asked:
        assert space.validate(d) == d
    # never exceeds the budget; no evaluation outside the shared evaluator
    assert len(rows) == budget and [r[0] for r in rows] == list(range(budget))
    assert sim.calls - ev.calibration_calls == ev.sim_calls <= budget  # calibration: the reference design
    assert ev.sim_calls + ev.cache_hits <= budget
    assert res.steps == budget
    # constraints: infeasible designs are results, never the best
    assert res.best_design is not None and space.is_feasible(res.best_design)
    # improves on the planted optimum's surroundings: top 5 % of the whole space
    rewards = _space_rewards()
    assert res.best_reward >= np.quantile(rewards, 0.95), (res.best_reward, np.quantile(rewards, 0.95))
    assert res.best_reward > rows[0][2]
    # leaves nothing in the temp directory (SB3's default logger made an SB3-<date> folder per
    # run); torch's own per-user compile cache (torchinductor_<user>) is not a run's output
    assert sorted(p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor_")) == []

    # deterministic for a seed (second run), different for another seed
    asked2, res2, _, _ = _run(name, 0, budget)
    assert asked2 == asked and res2.best_reward == res.best_reward
    asked3, _, _, _ = _run(name, 1, budget)
    assert asked3 != asked


@pytest.mark.parametrize("name", ALL)
def test_agent_resume_replays_the_log(name, tmp_path):
    """Kill mid-run = run budget k, then budget n on the same log: the agent is rebuilt by
    replaying the logged results and the rows equal an uninterrupted run's."""
    _skip_missing(name)
    n = _budget(name)
    k = n // 2 + 1
    db = tmp_path / "r.db"
    with RunStore(db) as st:
        _, first, _, _ = _run(name, 3, k, store=st)
    with RunStore(db) as st:
        asked, res, ev, sim = _run(name, 3, n, store=st)
        resumed = [(r.step, r.design, r.reward, r.feasible, r.cached) for r in st.evals(res.run_id)]
    assert res.run_id == first.run_id and res.resumed_steps == k
    assert sim.calls - ev.calibration_calls == ev.sim_calls <= n - k  # the replayed prefix cost no simulator call
    with RunStore(tmp_path / "straight.db") as st:
        _, straight, _, _ = _run(name, 3, n, store=st)
        ref = [(r.step, r.design, r.reward, r.feasible, r.cached) for r in st.evals(straight.run_id)]
    # the cached flag may differ only where the replayed prefix primed the cache
    assert [r[:4] for r in resumed] == [r[:4] for r in ref]


def test_every_cli_name_is_registered():
    assert {"random", "walk", "grid", "ga", "aco", "bo", "tpe", "cmaes", "nsga2", "gp", "ppo"} <= set(AGENTS)
    for name in AGENTS:
        cls = agent_class(name)
        assert cls.name == name and cls.__doc__ and cls.Params.__doc__


def test_walk_moves_one_parameter_at_a_time():
    asked, _, ev, _ = _run("walk", 0, 60)
    idx = [ev.space.encode(d) for d in asked]
    # after the start, each ask is one step from a design evaluated before (restarts at a
    # local optimum are the exception: a fresh uniform design)
    one_step = sum(any(int(np.sum(idx[j] != idx[i])) == 1 for i in range(j)) for j in range(1, len(idx)))
    assert one_step >= 0.8 * (len(idx) - 1)
    assert len({tuple(i) for i in idx}) == len(idx)  # never asks a design twice


def test_grid_levels_and_cap():
    ev = Evaluator(Planted(), "opt-125m/decode", OBJ)
    ag = make_agent("grid", ev.space, params={"levels": 2, "max_points": 10, "shuffle": False})
    assert ag.grid_size == 2 * 2 * 2 * 2 * 2
    designs = []
    for _ in range(12):
        d = ag.ask()
        designs.append(d)
        ag.tell(d, Metrics(), 0.5)
    assert designs[0] == {"a": 0, "b": 1, "c": "x", "d": 1, "e": 0}
    assert designs[1] == {"a": 0, "b": 1, "c": "x", "d": 1, "e": 4}
    assert {d["a"] for d in designs[:10]} <= {0, 7}  # grid values only until the cap ...
    assert len({tuple(d.values()) for d in designs[:10]}) == 10  # ... then random designs


def test_bad_hyperparameters_are_one_line_errors():
    space = Planted().design_space()
    with pytest.raises(UnknownAgent, match="unknown agent 'nope'; available: random"):
        make_agent("nope", space)
    with pytest.raises(BadHyperparameter, match="has no hyperparameter 'pop'; allowed: pop_size"):
        make_agent("ga", space, params={"pop": 3})
    with pytest.raises(BadHyperparameter, match="pop_size=1 must be >= 2"):
        make_agent("ga", space, params={"pop_size": 1})
    with pytest.raises(BadHyperparameter, match="is not a valid int"):
        make_agent("aco", space, params={"ant_count": "many"})
    with pytest.raises(BadHyperparameter, match="accept='sideways'; allowed: better, always"):
        make_agent("walk", space, params={"accept": "sideways"})


def test_missing_extra_names_the_pip_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)  # import now raises ImportError
    with pytest.raises(ValueError, match=r"pip install 'archgym\[rl\]'"):
        make_agent("ppo", Planted().design_space())
    code = main(["run", "archgym/Systolic-v0", "--agent", "ppo", "--budget", "5", "--db", ":memory:", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "archgym[rl]" in err


CLI_OPTS = {
    "walk": ["--accept", "always"], "grid": ["--levels", "2"], "ga": ["--pop-size", "4", "--dedupe", "false"],
    "aco": ["--ant-count", "4"], "bo": ["--n-initial-points", "10"], "tpe": ["--n-startup-trials", "4"],
    "cmaes": ["--popsize", "6"], "nsga2": ["--population-size", "4"], "gp": ["--n-startup-trials", "10"],
    "ppo": ["--n-steps", "8", "--batch-size", "8"], "random": [],
}


@pytest.mark.parametrize("name", ALL)
def test_cli_run_every_agent_with_typed_options(name, tmp_path, capsys):
    _skip_missing(name)
    db = tmp_path / "c.db"
    argv = ["run", "archgym/Systolic-v0", "--agent", name, "--budget", "10", "--db", str(db), "--quiet",
            "--fix", "act_bits=8,weight_bits=8,clock_mhz=1000,ofmap_sram_kb=128"] + CLI_OPTS[name]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "10 evaluations" in out
    con = sqlite3.connect(db)
    (params,) = con.execute("SELECT params FROM runs").fetchone()
    assert con.execute("SELECT COUNT(*) FROM evals").fetchone()[0] == 10
    if CLI_OPTS[name]:
        key = CLI_OPTS[name][0][2:].replace("-", "_")
        assert f'"{key}"' in params


def test_cli_bad_hyperparameter_value_exit_2(capsys):
    code = main(["run", "archgym/Systolic-v0", "--agent", "ga", "--pop-size", "x", "--db", ":memory:"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("archgym: error: ") and err.count("\n") == 1
    code = main(["run", "archgym/Systolic-v0", "--agent", "bo", "--acq-func", "UCB", "--db", ":memory:"])
    err = capsys.readouterr().err
    assert code == 2 and "acq_func='UCB'; allowed: EI, PI, LCB, gp_hedge" in err


def test_bo_latin_hypercube_covers_every_value():
    pytest.importorskip("skopt")
    space = Planted().design_space()
    # the hypercube itself: the declared constraint would drop its rows that violate it
    ag = make_agent("bo", space, seed=3, params={"n_initial_points": 8, "initial": "lhs", "known_constraints": False})
    first = []
    for _ in range(8):
        d = ag.ask()
        first.append(space.encode(d))
        ag.tell(d, Metrics(latency_s=1.0, energy_j=1.0), 0.5)
    cols = np.array(first).T
    for prm, col in zip(space.params, cols):
        counts = np.bincount(col, minlength=prm.size)
        # each value appears floor(8 / size) or one more times
        assert counts.min() == 8 // prm.size and counts.max() <= -(-8 // prm.size), (prm.name, counts)
    with pytest.raises(BadHyperparameter, match="initial='sobol' is not one of: lhs, random"):
        make_agent("bo", space, params={"initial": "sobol"})


def test_bo_feasibility_model():
    """The objective GP sees feasible designs only; a second GP of +1/-1 feasibility labels
    separates the designs the simulator rejected (imputation mode: one GP on everything).
    The space's declared constraint is what rejects them here, so BO must not apply it itself
    (``known_constraints=False``)."""
    pytest.importorskip("skopt")
    from agents._util import quiet

    for feasibility in (True, False):
        ev = Evaluator(Planted(), "opt-125m/decode", OBJ)
        ag = make_agent("bo", ev.space, seed=0, params={"n_initial_points": 40, "feasibility": feasibility,
                                                       "known_constraints": False},
                        objective=ev.objective, budget=40)
        feasible = []
        for _ in range(40):
            d = ag.ask()
            r = ev.evaluate(d)
            ag.tell(d, r.metrics, r.reward)
            feasible.append(r.feasible)
        feasible = np.array(feasible)
        assert 0 < feasible.sum() < 40  # the corner constraint rejected some of them
        with quiet():  # as the agent fits (sklearn's length-scale-at-bound notices)
            model, constraint_models, _ = ag._fit()
        if feasibility:
            assert model.X_train_.shape[0] == feasible.sum()
            (fm,) = constraint_models
            g = fm.predict(ag._encode(np.array(ag._X)))
            assert (g[feasible] < 0).all() and (g[~feasible] > 0).all()
        else:
            assert model.X_train_.shape[0] == 40 and constraint_models == []


def test_bo_known_constraints():
    """With ``known_constraints`` (the default) BO never asks a design that violates one of the
    space's declared constraints, from its first (random) ask to its last model-based one, and
    the check costs no simulation; without it the same run asks some (the corner is next to the
    optimum) and learns them from the results."""
    pytest.importorskip("skopt")
    for known in (True, False):
        sim = Planted()
        ev = Evaluator(sim, "opt-125m/decode", OBJ)
        ag = make_agent("bo", ev.space, seed=0, params={**FAST["bo"], "known_constraints": known},
                        objective=ev.objective, budget=40)
        ok, calls = [], sim.calls
        for _ in range(40):
            d = ag.ask()
            ok.append(ev.space.is_feasible(d))
            r = ev.evaluate(d)
            ag.tell(d, r.metrics, r.reward)
        assert sim.calls - calls == sum(ok)  # the agent's constraint check is no simulation (nor is the env's)
        if known:
            assert all(ok)
        else:
            assert not all(ok)
    unconstrained = DesignSpace(Planted().design_space().params)
    ag = make_agent("bo", unconstrained, seed=0, params=FAST["bo"])
    assert ag._allowed(np.array([[7, 6, 0, 0, 0]])).all()  # no declared constraint: nothing filtered


def test_bo_moves_differ_in_exactly_m_parameters():
    """``_moves(x, m)``: every design at Hamming distance ``m`` from ``x``, each once, against a
    brute force over the whole grid; with ``triples`` the incumbent's three-parameter moves are
    candidates (an escape from a trap no one- or two-parameter step improves, such as
    M3ViT-v0's pe_in=32, pe_out=48), without it none is (pairs, cross and two-step reach two)."""
    pytest.importorskip("skopt")
    space = DesignSpace(Planted().design_space().params)
    ag = make_agent("bo", space, seed=0, params=FAST["bo"])
    grid = np.array(list(np.ndindex(*ag._nvec)))
    x = (3, 2, 1, 0, 4)
    dist = (grid != np.array(x)).sum(axis=1)
    for m in (1, 2, 3, 5):
        got = ag._moves(x, m)
        assert len(got) == len(set(got))
        assert sorted(got) == sorted(map(tuple, grid[dist == m].tolist()))
    for triples in (True, False):
        ag = make_agent("bo", space, seed=0, params={**FAST["bo"], "n_points": 1, "triples": triples})
        d = space.decode(list(x))
        ag.tell(d, Planted().evaluate(d, None), 0.5)
        cand = ag._candidates()
        far = (cand != np.array(x)).sum(axis=1)
        assert set(ag._moves(x, 1)) <= {tuple(r) for r in cand.tolist()}  # the cross
        if triples:
            assert set(ag._moves(x, 3)) <= {tuple(r) for r in cand.tolist()}
        else:
            assert (far == 3).sum() <= 1  # at most the one random candidate


def test_tpe_gamma_is_optunas_default_and_picklable():
    import pickle

    from agents.optuna_agents import _Gamma

    g = pickle.loads(pickle.dumps(_Gamma(0.1, 25)))
    assert [g(n) for n in (1, 10, 11, 250, 1000)] == [1, 1, 2, 25, 25]
    space = Planted().design_space()
    with pytest.raises(BadHyperparameter, match="need 0 < gamma <= 1"):
        make_agent("tpe", space, params={"gamma": 0.0})
    with pytest.raises(BadHyperparameter, match="group=True needs multivariate=True"):
        make_agent("tpe", space, params={"group": True, "multivariate": False})


def test_tpe_passes_deprecated_optuna_knobs_only_when_set(monkeypatch):
    """gamma, prior_weight and consider_endpoints are deprecated since Optuna 4.9: a default
    TPE must not pass them (so it survives their removal), a non-default one passes exactly
    the ones set, and an Optuna without them gives a one-line BadHyperparameter."""
    import optuna

    real = optuna.samplers.TPESampler
    seen = []

    def recording(**kw):
        seen.append(set(kw))
        return real(**kw)

    monkeypatch.setattr(optuna.samplers, "TPESampler", recording)
    space = Planted().design_space()
    make_agent("tpe", space, seed=0)
    make_agent("tpe", space, seed=0, params={"gamma": 0.2, "consider_endpoints": True})
    deprecated = {"gamma", "prior_weight", "consider_endpoints", "weights", "consider_magic_clip",
                  "consider_prior", "warn_independent_sampling"}
    assert seen[0] & deprecated == set()
    assert seen[1] & deprecated == {"gamma", "consider_endpoints"}

    def without_gamma(*, gamma=None, **kw):
        if gamma is not None:
            raise TypeError("__init__() got an unexpected keyword argument 'gamma'")
        return real(**kw)

    monkeypatch.setattr(optuna.samplers, "TPESampler", without_gamma)
    make_agent("tpe", space, seed=0)  # the default still works
    with pytest.raises(BadHyperparameter, match=r"tpe: gamma not supported by optuna .*use the default") as ei:
        make_agent("tpe", space, seed=0, params={"gamma": 0.2})
    assert "\n" not in str(ei.value)


def _bench_module(name: str):
    """Import ``benchmarks/<name>.py`` (not a package) as a module."""
    import importlib
    import sys as _sys
    from pathlib import Path

    bench = str(Path(__file__).resolve().parents[1] / "benchmarks")
    _sys.path.insert(0, bench)
    try:
        return importlib.import_module(name)
    finally:
        _sys.path.remove(bench)


def test_plain_tpe_cross_check_loop():
    """benchmarks/bench_tpe_plain.py's loop: a budget covering the whole (planted) space finds
    the feasible optimum, and a hit is never reported after more distinct designs than the
    budget (so the benchmark's hit counts can fail)."""
    plain = _bench_module("bench_tpe_plain")
    nvec = (4, 1, 5)
    costs = np.arange(1.0, 21.0)[::-1].copy()  # cheapest is the last design...
    costs[-1] = np.inf  # ...but it is infeasible: the optimum is the second last
    hit, gap = plain.plain_tpe(costs, nvec, ("a", "pinned", "b"), 2.0, seed=0, budget=20)
    assert hit is not None and hit <= 20 and gap == 0.0
    hit, gap = plain.plain_tpe(costs, nvec, ("a", "pinned", "b"), 2.0, seed=0, budget=3)
    assert gap >= 0.0 and (hit is None or hit <= 3)


def test_bench_agents_per_seed_gaps(tmp_path, capsys):
    """benchmarks/bench_agents.py --per-seed: one final gap per seed, whose median and best are the
    table's gap column, and the same gaps when the runs are reused from the run log."""
    import re

    mod = _bench_module("bench_agents")
    argv = ["--envs", "archgym/BitMoD-v0", "--agents", "random", "--seeds", "3", "--budget", "4",
            "--workers", "1", "--db", str(tmp_path / "runs.db"), "--per-seed"]
    outs = []
    for _ in range(2):
        assert mod.main(argv) == 0
        out = capsys.readouterr().out
        line = next(ln for ln in out.splitlines() if "final gap by seed" in ln)
        gaps = {int(k): float(v) for k, v in re.findall(r"(\d+): ([\d.]+)%", line.split("seed:", 1)[1])}
        assert sorted(gaps) == [0, 1, 2]
        row = next(ln for ln in out.splitlines() if ln.startswith("| archgym/BitMoD-v0 | random |"))
        med, best = re.search(r"\| ([\d.]+)% / ([\d.]+)% \|", row).groups()
        assert float(med) == sorted(gaps.values())[1] and float(best) == min(gaps.values())  # same rounding
        outs.append(gaps)
    assert outs[0] == outs[1]


@pytest.mark.parametrize("name", ALL)
def test_first_asks_depend_on_the_seed(name):
    """Issue #17 item 4: ``asked3 != asked`` passed if any one ask differed, so a GA whose
    first generation ignored the seed passed.  Every agent here is stochastic: its first asks
    (the first generation, the initial random designs, the first rollout) must be the same for
    a seed and differ between seeds at most positions."""
    _skip_missing(name)
    k = 6
    first = {s: _run(name, s, k)[0] for s in range(4)}
    assert _run(name, 2, k)[0] == first[2]
    for a in range(4):
        for b in range(a + 1, 4):
            differ = sum(x != y for x, y in zip(first[a], first[b]))
            assert differ >= k // 2, (name, a, b, differ)
