"""The run loop, branch by branch, on a four-line toy simulator whose every metric and reward is
worked out by hand: budget checks, counting (simulator calls, cache hits, target hits), the best
design (feasible only, first of equals), the logged rows, resume (replay, partial replay, both
mismatch errors), run ids, the progress bar and the summary text (issue #17 item 7, mutation
testing).
"""

import hashlib
import math
import sqlite3
import sys
import types
from dataclasses import dataclass, field
from io import StringIO

import pytest

import archgym.runner as runner
from archgym.agent import Agent, make_agent
from archgym.metrics import Metrics
from archgym.objective import Objective
from archgym.runner import (MAX_BUDGET, Progress, ResumeMismatch, RunResult, check_budget, make_evaluator, run,
                            run_id_for)
from archgym.simulator import Evaluator, Simulator
from archgym.space import Choice, Constraint, DesignSpace, IntRange
from archgym.store import RunStore, StoreError

ENV = "toy/Toy-v0"


class Toy(Simulator):
    """latency_s = a (x2 when b='y'), energy_j = 1/a, area_mm2 = a + 0.5, mac_count = 3a;
    a=4 with b='y' violates the constraint."""

    name = "toy"

    def design_space(self):
        return DesignSpace([IntRange(name="a", low=1, high=4), Choice(name="b", options=("x", "y"))],
                           [Constraint("cap", lambda d: not (d["a"] == 4 and d["b"] == "y"), "a={a} with b={b}")])

    def default_design(self):
        return {"a": 2, "b": "x"}

    def workloads(self):
        return ("toy",)

    def check_workload(self, workload):
        pass

    def _evaluate(self, d, workload):
        lat = d["a"] * (2.0 if d["b"] == "y" else 1.0)
        return Metrics(cycles=int(10 * lat), latency_s=lat, energy_j=1.0 / d["a"], area_mm2=d["a"] + 0.5,
                       extra={"mac_count": 3.0 * d["a"]})


def _ev(cache_size=1 << 16):
    # ref = latency of the default design (a=2, b='x') = 2.0
    return Evaluator(Toy(), "toy", Objective.parse("latency_s", ["area_mm2<=3"]), cache_size=cache_size)


# rewards by hand: met (area <= 3) -> 0.5 + 0.5 * 2/(2 + latency); missed -> 0.5 * 3/area; infeasible -> 0
R = {(1, "x"): 0.5 + 0.5 * 2 / 3, (2, "x"): 0.75, (1, "y"): 0.75, (3, "x"): 0.5 * 3 / 3.5, (4, "y"): 0.0}


class Script(Agent):
    """Asks a fixed list of designs (cycled) and records what it is told."""

    name = "script"

    @dataclass(frozen=True)
    class Params:
        note: str = "n"
        xs: list = field(default_factory=list)

    def __init__(self, space, designs, **kw):
        super().__init__(space, **kw)
        self.designs, self.i, self.told, self.closed = [dict(a=a, b=b) for a, b in designs], 0, [], False

    def ask(self):
        d = self.designs[self.i % len(self.designs)]
        self.i += 1
        return dict(d)

    def tell(self, design, metrics, reward):
        self.told.append((dict(design), metrics, reward))

    def close(self):
        self.closed = True


SEQ = [(1, "x"), (3, "x"), (1, "x"), (4, "y"), (2, "x")]


def _rows(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT step, design, metrics, reward, feasible, target_met, cached, reason FROM evals "
                           "ORDER BY step").fetchall()
    finally:
        con.close()


# --- budgets ---------------------------------------------------------------------------------------
def test_check_budget():
    assert MAX_BUDGET == 10**9
    assert check_budget(1) == 1 and check_budget(MAX_BUDGET) == MAX_BUDGET
    for bad in (0, -1, MAX_BUDGET + 1, True, 2.0, "3", None):
        with pytest.raises(ValueError) as ei:
            check_budget(bad)
        assert str(ei.value) == f"budget={bad!r} is not allowed; a budget is an integer in 1..1,000,000,000"
    with pytest.raises(ValueError, match=r"^--budget=0 is not allowed"):
        check_budget(0, "--budget")
    with pytest.raises(ValueError, match="budget=0 is not allowed"):
        run(ENV, "random", 0, evaluator=_ev())
    assert issubclass(ResumeMismatch, StoreError)


# --- one run, counted and summarised ---------------------------------------------------------------
def test_run_counts_and_best_worked_by_hand():
    ev = _ev()
    ag = Script(ev.space, SEQ)
    seen = []
    res = run(ENV, ag, 5, seed=7, evaluator=ev, progress=lambda done, best: seen.append((done, best)))
    assert (res.env_id, res.agent, res.seed, res.steps, res.resumed_steps) == (ENV, "script", 7, 5, 0)
    # (1,x), (3,x), (2,x) are simulated; the second (1,x) is a cache hit; (4,y) violates the constraint
    assert (res.sim_calls, res.cache_hits) == (3, 1)
    assert res.best_design == {"a": 1, "b": "x"} and res.best_step == 0      # the first of two equal rewards
    assert res.best_reward == pytest.approx(R[(1, "x")], rel=1e-12)
    assert res.best_metrics.latency_s == 1.0 and res.target_met_steps == 3
    assert res.objective is ev.objective and res.wall_s > 0
    assert res.run_id == run_id_for(ENV, ev.workload.key, ev.objective, "script", {"note": "n", "xs": []}, 7, None, {})
    assert [t[2] for t in ag.told] == pytest.approx([R[d] for d in SEQ], rel=1e-12)
    assert [t[0] for t in ag.told] == [dict(a=a, b=b) for a, b in SEQ] and ag.closed
    assert ag.told[3][1].reason == "cap: a=4 with b=y" and not ag.told[3][1].feasible
    assert seen == [(i, pytest.approx(R[(1, "x")], rel=1e-12)) for i in range(1, 6)]


def test_best_is_feasible_strictly_better_and_absent_when_nothing_is_feasible():
    ev = _ev()
    res = run(ENV, Script(ev.space, [(4, "y"), (3, "x"), (2, "x"), (1, "y")]), 4, evaluator=ev)
    assert res.best_step == 2 and res.best_design == {"a": 2, "b": "x"}       # (1,y) only ties it
    assert res.target_met_steps == 2
    res = run(ENV, Script(ev.space, [(4, "y")]), 2, evaluator=ev)
    assert (res.best_design, res.best_metrics, res.best_reward, res.best_step) == (None, None, -math.inf, -1)
    assert res.target_met_steps == 0
    assert res.summary().splitlines()[-1] == "no feasible design found"


def test_summary_text():
    m = Metrics(cycles=20, latency_s=2.0, area_mm2=2.5)
    r = RunResult("abc", ENV, "ga", 3, 10, 4, 5, 1, {"a": 2, "b": "x"}, m, 0.75, 6, 7, 1.234,
                  Objective.parse("latency_s", ["area_mm2<=3"]))
    assert r.summary() == (
        "run abc: ga on toy/Toy-v0, seed 3: 10 evaluations (4 resumed from the log, 5 simulator calls, 1 cache "
        "hits) in 1.23 s of search (agent + simulator + log)\n"
        "objective: minimize latency_s s.t. area_mm2<=3\n"
        "best reward 0.750000 at step 6; targets met in 7 of 10 evaluations\n"
        "best design: a=2, b=x\n"
        "  cycles = 20 cycles\n"
        "  latency_s = 2 s\n"
        "  area_mm2 = 2.5 mm^2")
    plain = RunResult("abc", ENV, "ga", 3, 10, 0, 10, 0, {"a": 2}, m, 0.5, 0, 0, 0.5, Objective.parse("latency_s"))
    assert plain.summary().splitlines()[2] == "best reward 0.500000 at step 0"
    none = RunResult("abc", ENV, "ga", 3, 1, 0, 1, 0, None, None, -math.inf, -1, 0, 0.5, Objective.parse("latency_s"))
    assert none.summary().splitlines()[1:] == ["objective: minimize latency_s", "no feasible design found"]


def test_agent_by_name_gets_seed_params_objective_and_budget(monkeypatch):
    ev = _ev()
    got = {}

    def spy(name, space, **kw):
        got.update(kw, name=name, space=space)
        return make_agent(name, space, **kw)

    monkeypatch.setattr(runner, "make_agent", spy)
    with RunStore(":memory:") as st:
        res = run(ENV, "grid", 6, seed=5, params={"levels": 2}, evaluator=ev, store=st)
        logged = [e.design for e in st.evals(res.run_id)]
    assert got == dict(name="grid", space=ev.space, seed=5, params={"levels": 2}, objective=ev.objective, budget=6)
    # the run asked what the same agent, built and driven by hand, asks
    ref = make_agent("grid", ev.space, seed=5, params={"levels": 2})
    asked = []
    for _ in range(6):
        e = ev.evaluate(ref.ask())
        asked.append(e.design)
        ref.tell(e.design, e.metrics, e.reward)
    assert logged == asked
    assert res.agent == "grid" and res.seed == 5
    defaults = {"levels": 2, "max_points": 100_000, "shuffle": True}
    assert res.run_id == run_id_for(ENV, ev.workload.key, ev.objective, "grid", defaults, 5, None, {})
    with pytest.raises(ValueError, match="seed=-1 is not allowed"):
        run(ENV, "grid", 2, seed=-1, evaluator=ev)


# --- the run log -----------------------------------------------------------------------------------
def test_every_evaluation_is_one_row_and_the_run_is_marked_finished(tmp_path):
    ev = _ev()
    with RunStore(tmp_path / "r.db", batch_rows=2) as st:
        res = run(ENV, Script(ev.space, SEQ), 5, seed=1, evaluator=ev, store=st)
        info = st.run(res.run_id)
        assert info.finished is not None and info.budget == 5 and info.seed == 1 and info.agent == "script"
        assert info.workload == ev.workload.spec == "toy" and info.env_id == ENV
        assert info.params == {"note": "n", "xs": []} and info.objective == ev.objective.to_dict()
        assert info.design_names == ("a", "b") and info.metric_names == ev.metric_names
        rows = list(st.evals(res.run_id))
    assert [(r.design["a"], r.design["b"]) for r in rows] == SEQ
    assert [r.reward for r in rows] == pytest.approx([R[d] for d in SEQ], rel=1e-12)
    assert [r.cached for r in rows] == [False, False, True, False, False]
    assert [r.feasible for r in rows] == [True, True, True, False, True]
    assert [r.target_met for r in rows] == [True, False, True, False, True]
    assert [r.reason for r in rows] == ["", "", "", "cap: a=4 with b=y", ""]
    assert rows[1].metrics == {"cycles": 30.0, "latency_s": 3.0, "energy_j": 1 / 3, "area_mm2": 3.5, "mac_count": 9.0}
    assert all(r.wall_s >= 0 for r in rows)


def _cut(db, keep):
    con = sqlite3.connect(db)
    con.execute("DELETE FROM evals WHERE step >= ?", (keep,))
    con.execute("UPDATE runs SET finished=NULL")
    con.commit()
    con.close()


def test_resume_replays_the_prefix_and_continues(tmp_path):
    db = tmp_path / "r.db"
    ev = _ev()
    with RunStore(db) as st:
        first = run(ENV, Script(ev.space, SEQ), 5, evaluator=ev, store=st)
    reference = _rows(db)
    _cut(db, 3)
    ev2 = _ev()
    ag = Script(ev2.space, SEQ)
    seen = []
    with RunStore(db) as st:
        again = run(ENV, ag, 5, evaluator=ev2, store=st, progress=lambda d, b: seen.append(d))
        assert st.run(again.run_id).finished is not None
    assert _rows(db) == reference
    assert again.run_id == first.run_id and again.resumed_steps == 3
    assert (again.sim_calls, again.cache_hits) == (1, 0)                    # (4,y) is infeasible, (2,x) new
    assert (again.best_step, again.best_reward, again.target_met_steps) == (0, first.best_reward, 3)
    assert again.best_design == {"a": 1, "b": "x"} and again.best_metrics.latency_s == 1.0
    assert seen == [4, 5]                                                   # progress only for new steps
    # the agent was told the logged results of the replayed steps, as in the first run
    assert [t[2] for t in ag.told] == pytest.approx([R[d] for d in SEQ], rel=1e-12)
    replayed = ag.told[1][1]
    assert (replayed.cycles, replayed.latency_s, replayed.energy_j, replayed.area_mm2) == (30, 3.0, 1 / 3, 3.5)
    assert type(replayed.cycles) is int and replayed.extra == {"mac_count": 9.0}
    assert replayed.feasible and replayed.reason == ""
    # a finished run reruns by replay alone; a smaller budget replays only its prefix
    with RunStore(db) as st:
        whole = run(ENV, Script(ev2.space, SEQ), 5, evaluator=_ev(), store=st)
        short = run(ENV, Script(ev2.space, SEQ), 2, evaluator=_ev(), store=st)
    assert (whole.resumed_steps, whole.sim_calls, whole.best_step) == (5, 0, 0)
    assert (short.resumed_steps, short.steps, short.sim_calls, short.target_met_steps) == (2, 2, 0, 1)
    assert _rows(db) == reference


def test_resume_refuses_another_agent_or_another_cache(tmp_path):
    db = tmp_path / "r.db"
    with RunStore(db) as st:
        first = run(ENV, Script(_ev().space, SEQ), 5, evaluator=_ev(), store=st)
    rid = first.run_id
    with RunStore(db) as st:
        with pytest.raises(ResumeMismatch) as ei:
            run(ENV, Script(_ev().space, [(1, "x"), (2, "x")]), 5, evaluator=_ev(), store=st, run_id=rid)
    assert str(ei.value) == (f"cannot resume run {rid}: at step 1 the agent asked for {{'a': 2, 'b': 'x'}} but the "
                             "log has {'a': 3, 'b': 'x'} (was the agent or its seed changed?)")
    with RunStore(db) as st:  # step 2 was a cache hit; without a cache it would be new
        with pytest.raises(ResumeMismatch) as ei:
            run(ENV, Script(_ev().space, SEQ), 5, evaluator=_ev(cache_size=0), store=st)
    assert str(ei.value) == (f"cannot resume run {rid}: step 2 was logged as a cache hit but replaying the log makes "
                             "it new (was the cache size changed?)")
    nocache = tmp_path / "n.db"
    with RunStore(nocache) as st:
        run(ENV, Script(_ev().space, SEQ), 5, evaluator=_ev(cache_size=0), store=st)
    with RunStore(nocache) as st:
        with pytest.raises(ResumeMismatch) as ei:
            run(ENV, Script(_ev().space, SEQ), 5, evaluator=_ev(), store=st)
    assert "step 2 was logged as new but replaying the log makes it a cache hit" in str(ei.value)


def test_run_id_override_is_used(tmp_path):
    with RunStore(tmp_path / "r.db") as st:
        res = run(ENV, Script(_ev().space, SEQ), 2, evaluator=_ev(), store=st, run_id="mine")
        assert res.run_id == "mine" and st.count("mine") == 2


# --- run ids ---------------------------------------------------------------------------------------
def test_run_id_golden_and_sensitivity():
    """Goldens: an id that changes orphans every existing run log (it would no longer resume).
    The id is the first 12 hex digits of the SHA-1 of the sorted-key JSON of the run's identity."""
    o = Objective.parse("latency_s", ["area_mm2<=3"]).with_reference(2.0)
    text = ('["toy/Toy-v0", "toy#0123456789ab", {"ref": 2.0, "targets": ["area_mm2<=3"], "weights": '
            '{"latency_s": 1.0}}, "random", {"k": 1}, 3, {}]')
    assert hashlib.sha1(text.encode()).hexdigest()[:12] == "010f0284ba1e"
    base = run_id_for(ENV, "toy#0123456789ab", o, "random", {"k": 1}, 3)
    assert base == "010f0284ba1e"
    assert run_id_for(ENV, "toy#0123456789ab", o, "random", {"k": 1}, 3, {"mode": "fast"}, {"b": "x"}) == "f1ca80d5bac3"
    assert run_id_for(ENV, "toy#0123456789ab", o, "random", {"k": 1}, 3, {}, {}) == base
    variants = [run_id_for("toy/Other-v0", "toy#0123456789ab", o, "random", {"k": 1}, 3),
                run_id_for(ENV, "toy#ffffffffffff", o, "random", {"k": 1}, 3),
                run_id_for(ENV, "toy#0123456789ab", o.with_reference(3.0), "random", {"k": 1}, 3),
                run_id_for(ENV, "toy#0123456789ab", o, "ga", {"k": 1}, 3),
                run_id_for(ENV, "toy#0123456789ab", o, "random", {"k": 2}, 3),
                run_id_for(ENV, "toy#0123456789ab", o, "random", {"k": 1}, 4),
                run_id_for(ENV, "toy#0123456789ab", o, "random", {"k": 1}, 3, {"mode": "fast"}),
                run_id_for(ENV, "toy#0123456789ab", o, "random", {"k": 1}, 3, None, {"b": "x"})]
    assert len(set(variants + [base])) == 9


# --- make_evaluator --------------------------------------------------------------------------------
def test_make_evaluator_overrides():
    ev = make_evaluator("archgym/Systolic-v0")
    assert ev.objective.weights == {"energy_j": 1.0, "latency_s": 1.0} and ev.objective.targets == ()
    assert ev.workload.source == "llama-2-7b/prefill" and ev.fixed == {} and ev.simulator.mode == "default"
    ev = make_evaluator("archgym/Systolic-v0", objective="energy_j", workload="opt-125m/decode",
                        fixed={"dataflow": "ws"}, simulator_kwargs={"max_area_mm2": 5.0},
                        workload_params={"context_len": 64})
    assert ev.objective.weights == {"energy_j": 1.0} and ev.fixed == {"dataflow": "ws"}
    assert ev.workload.source.startswith("opt-125m/decode") and ev.workload.params["context_len"] == 64
    assert ev.simulator.max_area_mm2 == 5.0 and ev.simulator.mode == "default"
    ev = make_evaluator("archgym/Systolic-v0", objective={"spec": "latency_s", "targets": ["area_mm2<=4"]})
    assert ev.objective.weights == {"latency_s": 1.0} and [str(t) for t in ev.objective.targets] == ["area_mm2<=4"]
    ev = make_evaluator("archgym/Systolic-v0", objective={"targets": ["area_mm2<=4"]})
    assert ev.objective.weights == {}
    # a mapping without "targets": no targets
    ev = make_evaluator("archgym/Systolic-v0", objective={"spec": "latency_s"})
    assert ev.objective.weights == {"latency_s": 1.0} and ev.objective.targets == ()
    o = Objective.parse("latency_s").with_reference(3.0)
    assert make_evaluator("archgym/Systolic-v0", objective=o).objective == o
    # the env's own objective when given as a mapping (BitMoD-v0: a spec and a target)
    ev = make_evaluator("archgym/BitMoD-v0")
    assert ev.objective.weights == {"energy_j": 1.0, "latency_s": 1.0}
    assert [str(t) for t in ev.objective.targets] == ["area_mm2<=4"]


# --- progress bar ----------------------------------------------------------------------------------
def test_progress_bar_text_and_throttling(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(runner, "time", types.SimpleNamespace(monotonic=lambda: clock[0],
                                                              perf_counter=lambda: clock[0]))
    out = StringIO()
    p = Progress(4, "toy", stream=out, every_s=0.25)
    assert p.stream is out and p.total == 4 and p.label == "toy" and Progress(4).every_s == 0.2
    clock[0] = 100.5
    p(1, 0.5)
    assert out.getvalue() == "\rtoy [" + "#" * 7 + "-" * 23 + "] 1/4 best=0.5000 2 eval/s"
    clock[0] = 100.625                                 # 0.125 s later: throttled
    p(2, 0.6)
    clock[0] = 100.75                                  # exactly every_s later: shown
    p(2, 0.6)
    assert out.getvalue().count("\r") == 2 and out.getvalue().endswith("] 2/4 best=0.6000 3 eval/s")
    clock[0] = 100.8125
    p(4, 0.75)                                         # the last step is always shown, with a newline
    assert out.getvalue().endswith("\rtoy [" + "#" * 30 + "] 4/4 best=0.7500 5 eval/s\n")
    assert Progress(1).stream is sys.stderr
    z = StringIO()
    clock[0] = 5.0
    Progress(0, stream=z, every_s=10.0)(0, 1.0)
    assert z.getvalue() == "\r [" + "#" * 30 + "] 0/0 best=1.0000 0 eval/s\n"
    big = StringIO()
    q = Progress(10, stream=big)
    q(3, 0.1)                                          # no time elapsed: the rate is bounded, not a crash
    assert big.getvalue().endswith(" 3/10 best=0.1000 3,000,000,000 eval/s")


# --- helpers ---------------------------------------------------------------------------------------
def test_metrics_rebuilt_from_a_row():
    m = runner._metrics_from_row({"cycles": 12.0, "latency_s": 1.5, "power_w": math.nan, "mac_count": 3.0}, False,
                                 "too big")
    assert m.cycles == 12 and type(m.cycles) is int and m.latency_s == 1.5 and math.isnan(m.power_w)
    assert m.extra == {"mac_count": 3.0} and not m.feasible and m.reason == "too big"
    assert runner._metrics_from_row({"cycles": math.nan}, True, "").cycles is None
    assert runner._metrics_from_row({"energy_j": 2.0}, True, "").cycles is None


def test_params_dict():
    assert runner._params_dict(None) == {} and runner._params_dict({"a": 1}) == {"a": 1}
    assert runner._params_dict(Script.Params(note="z")) == {"note": "z", "xs": []}
    src = {"a": 1}
    assert runner._params_dict(src) is not src


def test_run_defaults_to_seed_0_and_its_id_covers_simulator_options_and_workload_params():
    """The run id (what resume matches on) must change with every input that changes the numbers:
    a run with other simulator options or workload parameters is another run."""
    ev = _ev()
    res = run(ENV, Script(ev.space, [(1, "x")]), 1, evaluator=ev)
    assert res.seed == 0
    params = {"note": "n", "xs": []}
    assert res.run_id == run_id_for(ENV, ev.workload.key, ev.objective, "script", params, 0, None, {})
    opt = run(ENV, Script(ev.space, [(1, "x")]), 1, evaluator=_ev(), simulator_kwargs={"mode": "fast"})
    assert opt.run_id == run_id_for(ENV, ev.workload.key, ev.objective, "script", params, 0, {"mode": "fast"}, {})
    assert opt.run_id != res.run_id
    env, wl = "archgym/Systolic-v0", "opt-125m/decode"
    short = run(env, "random", 1, workload=wl, workload_params={"context_len": 64})
    plain = run(env, "random", 1, workload=wl)
    key = make_evaluator(env, workload=wl, workload_params={"context_len": 64}).workload.key
    assert key != make_evaluator(env, workload=wl).workload.key
    assert short.run_id != plain.run_id


def test_run_id_reads_values_json_cannot_hold_as_their_text_and_wall_time_is_the_runs_own():
    import numpy as np

    o = Objective.parse("latency_s").with_reference(2.0)
    # a numpy integer hyperparameter is identified by its text, like the string "1"
    assert run_id_for(ENV, "toy#0", o, "random", {"k": np.int64(1)}, 3) == run_id_for(ENV, "toy#0", o, "random",
                                                                                       {"k": "1"}, 3)
    ev = _ev()
    t0 = runner.time.perf_counter()
    res = run(ENV, Script(ev.space, [(1, "x")]), 1, evaluator=ev)
    assert 0 < res.wall_s <= runner.time.perf_counter() - t0
