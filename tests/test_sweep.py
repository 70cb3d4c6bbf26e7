"""Sweeps: spec validation, expansion, executors (inline, process pool, Dask) and kill/restart."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from archgym.cli import main
from archgym.executors import DaskExecutor, ExecutorError, LocalExecutor
from archgym.runner import run
from archgym.store import RunStore
from archgym.sweep import SweepSpecError, expand, load_spec, parse_spec, run_sweep

SPEC = """
name: t
budget: 25
seeds: 2
envs:
  - id: archgym/Systolic-v0
    fixed: {act_bits: 8, clock_mhz: 1000}
agents:
  - random
  - name: walk
    params: {accept: always}
  - name: ga
    grid: {pop_size: [4, 8]}
  - name: tpe
    params: {n_startup_trials: 5}
"""

# model-based agents whose numerics (BLAS, torch) could depend on the worker's thread settings
MODEL_AGENTS = """  - name: bo
    params: {n_initial_points: 4, n_points: 300}
    budget: 10
  - name: gp
    params: {n_startup_trials: 4}
    budget: 10
  - name: ppo
    params: {n_steps: 8, batch_size: 8, hidden: 8}
    budget: 12
"""


def _spec(tmp_path, text=SPEC, name="spec.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _rows(db):
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT run_id, step, design, metrics, reward, feasible, target_met, cached, reason FROM evals "
            "ORDER BY run_id, step").fetchall()
    finally:
        con.close()


def _finished(db) -> int:
    con = sqlite3.connect(db, timeout=5)
    try:
        return con.execute("SELECT COUNT(*) FROM runs WHERE finished IS NOT NULL").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def test_expansion_and_run_ids_match_archgym_run(tmp_path):
    spec = load_spec(_spec(tmp_path))
    tasks = expand(spec)
    assert len(tasks) == 2 * (1 + 1 + 2 + 1) == 10
    assert len({t.run_id for t in tasks}) == 10
    ga8 = next(t for t in tasks if t.agent == "ga" and t.params == {"pop_size": 8} and t.seed == 1)
    res = run("archgym/Systolic-v0", "ga", 5, seed=1, params={"pop_size": 8}, fixed={"act_bits": 8, "clock_mhz": 1000})
    assert res.run_id == ga8.run_id  # `archgym run` with the same arguments extends the same run


@pytest.mark.slow
def test_inline_pool_and_dask_give_identical_rows(tmp_path):
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("stable_baselines3")
    spec = load_spec(_spec(tmp_path, SPEC + MODEL_AGENTS))
    tasks = expand(spec)
    r0 = run_sweep(spec, db=tmp_path / "inline.db", executor=LocalExecutor(0), tasks=tasks)
    assert len(r0.completed) == 16 and not r0.failed
    with LocalExecutor(2) as ex:
        r1 = run_sweep(spec, db=tmp_path / "pool.db", executor=ex, tasks=tasks)
    assert len(r1.completed) == 16
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        with DaskExecutor(cluster.scheduler_address) as ex:
            assert "2 workers" in ex.describe()
            r2 = run_sweep(spec, db=tmp_path / "dask.db", executor=ex, tasks=tasks)
    assert len(r2.completed) == 16
    ref = _rows(tmp_path / "inline.db")
    assert len(ref) == 10 * 25 + 2 * 2 * 10 + 2 * 12
    assert _rows(tmp_path / "pool.db") == ref
    assert _rows(tmp_path / "dask.db") == ref
    # a second sweep skips everything
    again = run_sweep(spec, db=tmp_path / "inline.db", executor=LocalExecutor(0), tasks=tasks)
    assert again.skipped == 16 and not again.completed


def test_partial_run_continues_by_replay_and_budget_extends(tmp_path):
    spec = load_spec(_spec(tmp_path))
    tasks = expand(spec)
    ref_db, db = tmp_path / "ref.db", tmp_path / "partial.db"
    run_sweep(spec, db=ref_db, executor=LocalExecutor(0), tasks=tasks)
    t = next(t for t in tasks if t.agent == "tpe")
    with RunStore(db) as st:  # a run killed after 9 committed rows
        run("archgym/Systolic-v0", "tpe", 9, seed=t.seed, params=t.params, store=st, fixed=dict(t.env.fixed))
    rep = run_sweep(spec, db=db, executor=LocalExecutor(0), tasks=tasks)
    by_id = {r.run_id: r for r in rep.completed}
    assert by_id[t.run_id].resumed_steps == 9 and by_id[t.run_id].sim_calls <= 16
    assert _rows(db) == _rows(ref_db)
    # a larger budget extends every run from its logged prefix
    bigger = parse_spec({**_yaml(SPEC), "budget": 30}, source="bigger")
    rep = run_sweep(bigger, db=db, executor=LocalExecutor(0))
    assert all(r.resumed_steps == 25 for r in rep.completed) and len(_rows(db)) == 300


def _yaml(text):
    import yaml

    return yaml.safe_load(text)


@pytest.mark.slow
def test_killed_sweep_restarts_without_loss(tmp_path):
    text = SPEC.replace("budget: 25", "budget: 3000").replace("seeds: 2", "seeds: 3")
    text = text.replace("  - name: tpe\n    params: {n_startup_trials: 5}\n", "")
    spec_path = _spec(tmp_path, text)
    ref_db, db = tmp_path / "ref.db", tmp_path / "killed.db"
    cmd = [sys.executable, "-m", "archgym", "sweep", str(spec_path), "--workers", "1", "--quiet"]
    subprocess.run(cmd + ["--db", str(ref_db)], check=True, capture_output=True)
    reference = _rows(ref_db)
    assert len(reference) == 12 * 3000
    proc = subprocess.Popen(cmd + ["--db", str(db)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and (not db.exists() or _finished(db) < 2):
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be killed; raise the budget"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its pool worker
    proc.wait()
    before = _rows(db)
    assert 0 < len(before) < len(reference)
    assert set(before) <= set(reference)  # committed rows are rows of the uninterrupted sweep
    out = subprocess.run(cmd + ["--db", str(db)], check=True, capture_output=True, text=True)
    assert "already complete (skipped)" in out.stdout and "0 failed" in out.stdout
    assert _rows(db) == reference


BAD_SPECS = [
    ("budget: 5\nenvs: [archgym/Systolic-v0]\nagents: [random]\nbogus: 1\n", "unknown key 'bogus'"),
    ("envs: [archgym/Systolic-v0]\nagents: [random]\n", "missing required key 'budget'"),
    ("budget: 0\nenvs: [archgym/Systolic-v0]\nagents: [random]\n", "budget=0 is not allowed"),
    ("budget: many\nenvs: [archgym/Systolic-v0]\nagents: [random]\n", "budget='many' is not allowed"),
    ("budget: 5\nenvs: [archgym/Nope-v0]\nagents: [random]\n", "unknown env id 'archgym/Nope-v0'"),
    ("budget: 5\nenvs: [archgym/Systolic-v0]\nagents: [nope]\n", "unknown agent 'nope'"),
    ("budget: 5\nenvs: [archgym/Systolic-v0]\nagents: [{name: ga, grid: {pop: [2]}}]\n",
     "has no hyperparameter 'pop'"),
    ("budget: 5\nenvs: [archgym/Systolic-v0]\nagents: [{name: ga, grid: {pop_size: [1, 4]}}]\n",
     "pop_size=1 must be >= 2"),
    ("budget: 5\nenvs: [archgym/Systolic-v0]\nagents: [{name: ga, grid: {pop_size: []}}]\n", "zero runs"),
    ("budget: 5\nseeds: []\nenvs: [archgym/Systolic-v0]\nagents: [random]\n", "zero runs"),
    ("budget: 5\nenvs: []\nagents: [random]\n", "zero runs"),
    ("budget: 5\nenvs: [{id: archgym/Systolic-v0, fixed: {rows: 7}}]\nagents: [random]\n", "rows=7 is not allowed"),
    ("budget: 5\nenvs: [archgym/Systolic-v0]\nagents: [{name: random, seeds: 3}]\n", "unknown key 'seeds'"),
    ("budget: [5\n", "not valid YAML"),
    ("- just a list\n", "must be a mapping"),
]


@pytest.mark.parametrize("text, needle", BAD_SPECS)
def test_bad_spec_one_line_exit_2_and_nothing_lost(tmp_path, capsys, text, needle):
    db = tmp_path / "keep.db"
    with RunStore(db) as st:
        run("archgym/Systolic-v0", "random", 7, store=st)
    code = main(["sweep", str(_spec(tmp_path, text)), "--db", str(db)])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.startswith("archgym: error: ") and err.count("\n") == 1, err
    assert needle in err
    assert len(_rows(db)) == 7


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--scheduler", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler at tcp://127.0.0.1:9"),
        (["--scheduler", "localhost"], "must look like tcp://host:port"),
        (["--workers", "-1"], "--workers -1"),
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:9"], "--workers applies to the local process pool"),
    ],
)
def test_bad_executor_one_line_exit_2(tmp_path, capsys, extra, needle):
    pytest.importorskip("distributed")
    code = main(["sweep", str(_spec(tmp_path)), "--db", str(tmp_path / "x.db")] + extra)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("archgym: error: ") and err.count("\n") == 1 and needle in err, err


def test_missing_spec_file_and_dry_run(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "none.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["sweep", str(_spec(tmp_path)), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "10 runs" in out and "ga(pop_size=8) on archgym/Systolic-v0 seed 1" in out
    assert not (tmp_path / "runs.db").exists()


def test_spec_db_is_as_written_relative_to_the_working_directory(tmp_path):
    sub = tmp_path / "exp"
    sub.mkdir()
    spec = load_spec(_spec(sub, SPEC + "db: ../out.db\n"))
    assert spec.db == "../out.db"  # issue #16: not joined to (and escaping) the spec's folder
    with pytest.raises(SweepSpecError, match="imports\\[0\\]: cannot import 'no_such_module_xyz'"):
        parse_spec({**_yaml(SPEC), "imports": ["no_such_module_xyz"]})
    with pytest.raises(ExecutorError, match="workers=-2"):
        LocalExecutor(-2)


def test_exhaustive_optimum_matches_brute_force():
    """The batched exhaustive search returns the design that scalar evaluation of every
    design ranks first, with and without targets and pinned parameters."""
    import math

    from archgym.objective import Objective
    from archgym.runner import make_evaluator
    from archgym.sweep import _batch_reward, can_enumerate, exhaustive

    ev = make_evaluator("archgym/Systolic-v0", fixed={"rows": 32, "cols": 64, "act_bits": 8, "clock_mhz": 500,
                                                      "ifmap_sram_kb": 256},
                        objective=Objective.parse("energy_j*latency_s", ["area_mm2<=3"]))
    assert can_enumerate(ev) and ev.space.size == 3 * 6 * 5 * 5 * 3
    designs = list(ev.space)
    scalar = [ev.evaluate(d) for d in designs]
    best = max(range(len(designs)), key=lambda i: (scalar[i].reward, -i))
    o = exhaustive(ev, chunk=97, top=4)
    assert o.design == designs[best] and o.reward == scalar[best].reward
    assert o.n_designs == len(designs) and o.n_feasible == sum(e.feasible for e in scalar)
    assert o.cost == ev.objective.cost(scalar[best].metrics)
    # the vectorised reward agrees with Objective.reward design by design
    import numpy as np

    full = ev.simulator.design_space()
    idx = np.array([[full[k].index(v) for k, v in d.items()] for d in designs])
    b = ev.simulator.evaluate_batch(idx, ev.workload)
    r, _, met = _batch_reward(ev.objective, b)
    assert np.allclose(r, [e.reward for e in scalar], rtol=1e-12, atol=0)  # exp/log may differ in the last ulp
    assert met.tolist() == [e.target_met for e in scalar] and o.n_target_met == int(met.sum())
    # a target-only objective: reward = closeness, cost = the empty product (1 when feasible)
    only = Objective.parse("", ["area_mm2<=3"])
    r, c, met = _batch_reward(only, b)
    assert np.allclose(r, [only.reward(e.metrics) for e in scalar], rtol=1e-12, atol=0)
    assert c.tolist() == [only.cost(e.metrics) for e in scalar]
    assert met.tolist() == [only.target_met(e.metrics) for e in scalar] and 0 < met.sum() < len(met)
    assert all(math.isfinite(x) for x in o.front["xs"])
    # keep_costs: every design's cost as the benchmarks count it (inf: infeasible or a target missed)
    kept = exhaustive(ev, chunk=97, top=4, keep_costs=True).costs
    want = np.array([ev.objective.cost(e.metrics) if e.target_met else math.inf for e in scalar])
    assert kept.shape == want.shape and np.array_equal(np.isinf(kept), np.isinf(want))
    assert 0 < np.isinf(want).sum() < len(want)  # the area target rules some designs out
    fin = np.isfinite(want)
    assert np.allclose(kept[fin], want[fin], rtol=1e-12, atol=0)  # exp/log may differ in the last ulp
    assert o.costs is None
