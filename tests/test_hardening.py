"""Regression tests of issue #16 (hardening): faults and bad inputs found when the gym was
tried as a new user would.  Each test fails on the code before the fix."""

import multiprocessing
import os
import sqlite3
import stat
import sys

import pytest

from archgym.cli import main
from archgym.runner import run
from archgym.store import RunStore, StoreError

ENV = "archgym/Systolic-v0"


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("archgym: error: "), err
    return lines[0]


def _log(tmp_path, n=20, name="runs.db"):
    db = tmp_path / name
    with RunStore(db) as st:
        res = run(ENV, "random", n, seed=1, store=st)
    return db, res.run_id


def _count(db) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT COUNT(*) FROM evals").fetchone()[0]
    finally:
        con.close()


# --- item 1: export never replaces a run log -------------------------------------------------
@pytest.mark.parametrize("extra", [[], ["--format", "csv"], ["--format", "parquet"], ["--force"],
                                   ["--force", "--format", "csv"]])
def test_export_refuses_to_overwrite_the_run_log(tmp_path, capsys, extra):
    db, _ = _log(tmp_path)
    assert main(["export", "--db", str(db), "--out", str(db), *extra]) == 2
    assert "refusing" in _err(capsys)
    assert _count(db) == 20


def test_export_refuses_any_sqlite_file_and_existing_files_without_force(tmp_path, capsys):
    db, _ = _log(tmp_path)
    good, _ = _log(tmp_path, 5, "good.db")
    assert main(["export", "--db", str(db), "--out", str(good), "--format", "parquet", "--force"]) == 2
    assert "SQLite database" in _err(capsys)
    csv = tmp_path / "a.csv"
    csv.write_text("keep me")
    assert main(["export", "--db", str(db), "--out", str(csv)]) == 2
    assert "--force" in _err(capsys) and csv.read_text() == "keep me"
    assert main(["export", "--db", str(db), "--out", str(csv), "--force"]) == 0
    assert csv.read_text().startswith("run_id,")


@pytest.mark.parametrize("name", ["x.txt", "x", "x.CSV", "x.db"])
def test_export_format_only_from_a_known_extension(tmp_path, capsys, name):
    db, _ = _log(tmp_path)
    assert main(["export", "--db", str(db), "--out", str(tmp_path / name)]) == 2
    assert "extension" in _err(capsys) and not (tmp_path / name).exists()
    assert main(["export", "--db", str(db), "--out", str(tmp_path / name), "--format", "csv"]) == 0


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_export_to_a_full_disk_is_one_line(tmp_path, capsys):
    db, _ = _log(tmp_path)
    assert main(["export", "--db", str(db), "--out", "/dev/full", "--format", "csv", "--force"]) == 2
    assert "No space left" in _err(capsys)


# --- item 5: concurrent begin_run and opens ---------------------------------------------------
def _begin_many(args):
    path, who, n = args
    errors = 0
    for i in range(n):
        try:
            with RunStore(path) as st:
                st.begin_run(f"run{i % 7}", env_id="e", workload="w", agent=f"a{who}", params={}, seed=0,
                             budget=10 + i, objective={}, design_names=["x"], metric_names=["latency_s"])
        except Exception as e:  # noqa: BLE001 - the test counts every failure
            errors += 1
            print(type(e).__name__, e, file=sys.stderr)
    return errors


def test_concurrent_begin_run_is_atomic_and_waits_on_busy(tmp_path):
    path = str(tmp_path / "shared.db")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        errors = pool.map(_begin_many, [(path, w, 60) for w in range(4)])
    assert errors == [0, 0, 0, 0]
    con = sqlite3.connect(path)
    assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 7
    assert con.execute("SELECT MAX(budget) FROM runs").fetchone()[0] == 10 + 59
    con.close()


# --- tracebacks: foreign, tampered, read-only, empty, '' ---------------------------------------
def test_foreign_sqlite_file_is_one_line_for_every_command(tmp_path, capsys):
    foreign = tmp_path / "foreign.db"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE runs (id INTEGER, name TEXT)")
    con.execute("CREATE TABLE evals (x)")
    con.commit()
    con.close()
    before = foreign.read_bytes()
    for argv in (["run", ENV, "--budget", "3", "--quiet"], ["runs"], ["export", "--out", str(tmp_path / "o.csv")],
                 ["plot", "--out", str(tmp_path / "p.png")]):
        assert main([*argv, "--db", str(foreign)]) == 2
        assert "not an archgym run log" in _err(capsys)
    assert foreign.read_bytes() == before


def test_tampered_metrics_blob_is_one_line_in_export_and_resume(tmp_path, capsys):
    db, rid = _log(tmp_path)
    con = sqlite3.connect(db)
    con.execute("UPDATE evals SET metrics=x'0102' WHERE step=5")
    con.commit()
    con.close()
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "o.csv")]) == 2
    assert "step 5 is corrupt" in _err(capsys)
    assert main(["run", ENV, "--agent", "random", "--budget", "30", "--seed", "1", "--db", str(db), "--quiet"]) == 2
    assert "step 5 is corrupt" in _err(capsys)
    assert _count(db) == 20


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes any file")
def test_read_only_log_can_be_listed_exported_and_plotted(tmp_path, capsys):
    ro_dir = tmp_path / "ro"
    ro_dir.mkdir()
    db, _ = _log(ro_dir)
    db.chmod(stat.S_IRUSR)
    ro_dir.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        assert main(["runs", "--db", str(db)]) == 0
        assert main(["export", "--db", str(db), "--out", str(tmp_path / "o.csv")]) == 0
        assert main(["plot", "--db", str(db), "--out", str(tmp_path / "o.png")]) == 0
    finally:
        ro_dir.chmod(stat.S_IRWXU)
        db.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_read_only_open_of_a_log_sees_every_committed_row(tmp_path):
    db, rid = _log(tmp_path)
    with RunStore(db, readonly=True) as st:
        assert st.count(rid) == 20
        with pytest.raises(sqlite3.OperationalError):
            st.conn.execute("DELETE FROM evals")


def test_empty_file_and_empty_path_are_errors(tmp_path, capsys):
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(StoreError, match="exists and is empty"):
        RunStore(empty)
    assert empty.stat().st_size == 0
    assert main(["run", ENV, "--budget", "2", "--db", "", "--quiet"]) == 2
    assert "path is empty" in _err(capsys)
    assert main(["runs", "--db", ""]) == 2
    assert "path is empty" in _err(capsys)


def test_read_only_folder_falls_back_to_an_immutable_open(tmp_path, monkeypatch):
    """Where SQLite cannot create the WAL's shared-memory file (a read-only folder; simulated
    here because root can write anywhere), the log is opened immutable and still read whole."""
    import archgym.store as store

    db, rid = _log(tmp_path)
    monkeypatch.setattr(store.os, "access", lambda p, mode: mode == os.R_OK)
    with RunStore(db, readonly=True) as st:
        assert "immutable" not in str(st.path) and st.count(rid) == 20
        assert len(list(st.evals(rid))) == 20


# --- item 4: a killed sweep driver takes its workers with it ---------------------------------
def _group_members(pgid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(d))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc")
def test_kill_9_of_a_sweep_driver_leaves_no_workers(tmp_path):
    import signal
    import subprocess
    import time

    spec = tmp_path / "spec.yaml"
    spec.write_text("budget: 200000\nseeds: 4\nenvs: [archgym/Systolic-v0]\nagents: [random]\n")
    proc = subprocess.Popen([sys.executable, "-m", "archgym", "sweep", str(spec), "--workers", "2", "--quiet",
                             "--db", str(tmp_path / "s.db")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and len(_group_members(proc.pid)) < 3:  # driver + 2 workers (+ tracker)
        time.sleep(0.1)
    assert len(_group_members(proc.pid)) >= 3, "the pool never started"
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)  # the driver only, as a user's kill -9 would
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and _group_members(proc.pid):
        time.sleep(0.1)
    left = _group_members(proc.pid)
    for pid in left:  # do not leak them into the rest of the test run
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{len(left)} processes outlived the driver"


# --- tracebacks and silently wrong input on the CLI ---------------------------------------------
BAD_CLI = [
    (["run", ENV, "--budget", str(2**63)], "--budget=9223372036854775808 is not allowed"),
    (["run", ENV, "--seed", str(2**63)], "--seed=9223372036854775808 is not allowed"),
    (["run", ENV, "--seed", "-1"], "--seed=-1 is not allowed"),
    (["run", ENV, "--agent", "ppo", "--seed", "4294967296"], "--seed=4294967296 is not allowed"),
    (["run", ENV, "--sim-opt", "nope=1"], "unknown simulator option 'nope' for systolic; allowed: mode, mapping, max_area_mm2"),
    (["run", ENV, "--sim-opt", "__class__=x"], "'__class__' is not a parameter name"),
    (["run", ENV, "--sim-opt", "self=1"], "unknown simulator option 'self'"),
    (["run", "archgym/BitMoD-v0", "--sim-opt", "mode=scalesim"], "unknown simulator option 'mode' for bitmod"),
    (["run", ENV, "--agent", "cmaes", "--sigma0", "inf"], "sigma0=inf must be a finite number"),
    (["run", ENV, "--agent", "bo", "--xi", "nan"], "xi=nan must be a finite number"),
    (["run", ENV, "--agent", "bo", "--xi", "-1"], "need xi >= 0"),
    (["run", ENV, "--agent", "ga", "--pop-size", str(10**12)], "pop_size=1000000000000 is out of range"),
    (["eval", ENV, "rows=8", "rows=16"], "rows is given twice (rows=8 and rows=16)"),
    (["run", ENV, "--fix", "rows=8", "--fix", "rows=16"], "--fix rows is given twice"),
    (["eval", ENV, "--objective", "latency_s^"], "has '^' but no exponent"),
    (["eval", ENV, "--workload", ""], "--workload is empty"),
    (["eval", "archgym/AgileQuant-v0", "--objective", "energy_j"], "objective metric 'energy_j' is not modelled"),
    (["plot", "--out", "p.jpeg"], "unknown image type '.jpeg'"),
]


@pytest.mark.parametrize("argv, needle", BAD_CLI)
def test_bad_cli_input_is_one_line_and_logs_nothing(tmp_path, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    db, _ = _log(tmp_path)
    code = main([*argv, "--db", str(db)] if argv[0] in ("run", "plot") else argv)
    assert code == 2
    assert needle in _err(capsys)
    assert _count(db) == 20
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1  # no unfinished run left behind
    con.close()


def test_objective_metric_the_env_never_models_is_an_error():
    import gymnasium as gym

    with pytest.raises(ValueError, match="objective metric 'energy_j' is not modelled by agilequant"):
        gym.make("archgym/AgileQuant-v0", objective="energy_j")


def test_target_on_an_extra_metric_with_infeasible_designs(tmp_path, capsys):
    """``nsga2 --target dram_energy_j<=1`` raised KeyError: an infeasible (over-area) result
    carries no dram_energy_j, and Metrics.get raised for it."""
    assert main(["run", ENV, "--agent", "nsga2", "--target", "dram_energy_j<=1", "--budget", "40", "--quiet",
                 "--db", str(tmp_path / "r.db")]) == 0


def test_version_and_run_help_list_what_exists(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("archgym ")
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for a in ("random", "walk", "grid", "ga", "aco", "bo", "tpe", "cmaes", "nsga2", "gp", "ppo"):
        assert a in out


def test_plot_out_without_extension_writes_and_names_the_png(tmp_path, capsys):
    db, _ = _log(tmp_path)
    assert main(["plot", "--db", str(db), "--out", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p.png").exists() and f"wrote {tmp_path / 'p.png'}" in capsys.readouterr().out


def test_closed_pipe_is_not_a_traceback(tmp_path):
    import subprocess

    db, _ = _log(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "archgym", "runs", "--db", str(db)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader goes away before the command writes (as `| head -0` would)
    err = proc.stderr.read().decode()
    proc.wait()
    assert "Traceback" not in err and proc.returncode in (0, 141)


def test_run_summary_says_what_its_time_measures(tmp_path, capsys):
    assert main(["run", ENV, "--budget", "5", "--quiet", "--db", str(tmp_path / "r.db")]) == 0
    out = capsys.readouterr().out
    assert "s of search (agent + simulator + log)" in out and "in all (imports and start-up included)" in out


# --- resource bombs in sweep specs ----------------------------------------------------------------
ALIAS_BOMB = """budget: 5
envs:
  - id: archgym/Systolic-v0
    sim_opts:
      a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
      e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
      f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
      g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
      h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
      i: [*h, *h, *h, *h, *h, *h, *h, *h, *h]
agents: [random]
"""

BOMBS = [
    (ALIAS_BOMB, "expands to more than 100,000 values"),
    ("budget: 5\nseeds: 1000000000\nenvs: [archgym/Systolic-v0]\nagents: [random]\n", "expected a count in 0..100,000"),
    ("budget: 5\nseeds: 10\nenvs: [archgym/Systolic-v0]\nagents: [{name: ga, grid: {pop_size: "
     + str(list(range(2, 62))) + ", elite: " + str(list(range(0, 60))) + ", tournament: " + str(list(range(1, 61)))
     + ", mutation_prob: " + str([i / 100 for i in range(60)]) + "}}]\n", "more than the cap of 100,000 runs"),
    ("budget: 99999999999999999999999\nenvs: [archgym/Systolic-v0]\nagents: [random]\n", "budget=99999999999999999999999"),
    ("budget: 5\nseeds: [0, -3]\nenvs: [archgym/Systolic-v0]\nagents: [random]\n", "seeds[1]=-3 is not allowed"),
    ("budget: 5\nimports: ['..x']\nenvs: [archgym/Systolic-v0]\nagents: [random]\n", "cannot import '..x'"),
    ("budget: 5\nenvs: [archgym/Systolic-v0]\nagents: [random]\nname: " + "[" * 50000 + "]" * 50000 + "\n",
     "nested too deeply"),
]


@pytest.mark.parametrize("text, needle", BOMBS, ids=["alias", "seeds", "grid", "budget", "seed", "imports", "deep"])
def test_spec_bombs_are_refused_fast_and_small(tmp_path, capsys, text, needle):
    import resource
    import time

    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    db, _ = _log(tmp_path)
    t0 = time.perf_counter()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert main(["sweep", str(spec), "--db", str(db), "--workers", "0"]) == 2
    assert needle in _err(capsys)
    assert time.perf_counter() - t0 < 20  # generous: the point is seconds, not minutes
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 500_000  # KiB: well under 0.5 GB
    assert _count(db) == 20


def test_sweep_says_where_it_writes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp").mkdir()
    spec = tmp_path / "exp" / "s.yaml"
    spec.write_text("budget: 3\ndb: ../up.db\nenvs: [archgym/Systolic-v0]\nagents: [random]\n")
    assert main(["sweep", str(spec), "--workers", "0"]) == 0
    out = capsys.readouterr()
    assert (tmp_path.parent / "up.db").exists()
    assert str(tmp_path.parent / "up.db") in out.out + out.err
    (tmp_path.parent / "up.db").unlink()


# --- env.step with actions outside the space ------------------------------------------------------
BAD_ACTIONS = [None, "abc", [1, 2], [0] * 11, [0.5] + [0] * 9, [float("nan")] + [0] * 9, [-1] + [0] * 9,
               [99] + [0] * 9, {"a": 1}, 3, [0] * 9 + [1e30], [0] * 9 + [float("inf")], object(), [[0, 1]] * 5,
               ["0"] * 10, [0] * 9 + [2**63]]


@pytest.mark.parametrize("mode", ["design", "edit"])
def test_invalid_actions_are_one_clear_error(mode):
    import gymnasium as gym
    import numpy as np

    env = gym.make(ENV, mode=mode)
    env.reset(seed=0)
    n = env.action_space.nvec.size
    cases = BAD_ACTIONS if mode == "design" else [None, [0], [0, 3], [-1, 1], [10, 1], [0.5, 1], [0, 1, 2]]
    for a in cases:
        with pytest.raises(ValueError, match=r"is not in the action space MultiDiscrete"):
            env.step(a)
    # valid ones still step, integral floats included (no silent truncation of fractions)
    env.step(np.zeros(n, dtype=np.int64))
    env.step([1.0] + [0.0] * (n - 1))


# --- run log and plots a user can read --------------------------------------------------------------
def test_runs_and_export_show_workload_objective_and_hyperparameters(tmp_path, capsys):
    db = tmp_path / "r.db"
    with RunStore(db) as st:
        run(ENV, "random", 5, seed=0, store=st)
        run(ENV, "random", 5, seed=0, store=st, objective="latency_s")
        run(ENV, "ga", 5, seed=0, store=st, params={"pop_size": 8})
    assert main(["runs", "--db", str(db)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "workload" in out[0] and "objective" in out[0] and "hyperparameters" in out[0]
    assert any("minimize latency_s" in l for l in out) and any("minimize energy_j*latency_s" in l for l in out)
    assert any("pop_size=8" in l for l in out)
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "o.csv")]) == 0
    import csv

    rows = list(csv.DictReader(open(tmp_path / "o.csv")))
    assert {r["objective"] for r in rows} == {"minimize energy_j*latency_s", "minimize latency_s"}
    assert {r["hyperparameters"] for r in rows} == {"{}", '{"pop_size": 8}'}
    assert {r["workload"] for r in rows} == {"llama-2-7b/prefill?seq_len=256"}


def test_plot_has_a_row_per_env_workload_objective_and_unique_legends(tmp_path, monkeypatch):
    import matplotlib.figure

    from archgym.plots import MAX_LEGEND, plot_runs

    db = tmp_path / "r.db"
    with RunStore(db) as st:
        for seed in range(40):
            run(ENV, "random", 3, seed=seed, store=st)
        for p in range(2, 2 + MAX_LEGEND + 5):
            run(ENV, "ga", 3, seed=0, store=st, params={"pop_size": p})
        run(ENV, "random", 3, seed=0, store=st, objective="latency_s")
        run("archgym/BitMoD-v0", "random", 3, seed=0, store=st)
        run("archgym/MatMulFree-v0", "random", 3, seed=0, store=st)
        run(ENV, "random", 3, seed=0, store=st, workload="opt-125m/decode")
    figs = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: figs.append(self))
    with RunStore(db, readonly=True) as st:
        plot_runs(st, str(tmp_path / "p.png"))
    (fig,) = figs
    rows = [fig.axes[i:i + 3] for i in range(0, len(fig.axes), 3)]
    assert len(rows) == 5  # (systolic, prefill, edp), (systolic, latency), bitmod, matmulfree, (systolic, decode)
    titles = [r[0].get_title() for r in rows]
    assert len(set(titles)) == 5 and all(" | " in t for t in titles)
    first = [t.get_text() for t in rows[0][2].get_legend().get_texts()]
    assert len(first) == MAX_LEGEND + 1 and first[-1] == "+ 6 more configurations"
    assert len(set(first)) == len(first)


def test_describe_prints_constraints_as_rules_not_templates(capsys):
    assert main(["describe", "archgym/M3ViT-v0"]) == 0
    out = capsys.readouterr().out
    assert "{top_k}" not in out and "infeasible when top_k=<top_k> exceeds n_experts=<n_experts>" in out


# --- honesty and hygiene ------------------------------------------------------------------------
def test_lottery_quick_never_writes_over_the_committed_results(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "lottery" / "run.py"
    spec = importlib.util.spec_from_file_location("lottery_run", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with pytest.raises(SystemExit):
        mod.main(["--quick", "--out", str(mod.HERE / "results"), "--no-run"])
    text = path.read_text()
    assert "Gap = best cost found / optimum cost - 1" in text  # the footer was inverted
    assert "optimum cost / best cost found" not in text
