"""RunStore, branch by branch: schema and pragmas of a new log, batching by rows and by time,
the run row's invariants (budget only grows, a changed space is refused), decoding and its
corruption checks, the export table and its refusals, and the file checks with their messages
(issue #17 item 7, mutation testing).

These tests drive RunStore directly with hand-made rows (no simulator), so every expected row,
header and message is written out in the test.
"""

import csv
import dataclasses
import json
import math
import os
import sqlite3
import struct
import threading
import time
import types

import pytest

import archgym.store as store
from archgym.store import LoggedEval, RunInfo, RunStore, StoreError


def _err(fn, *args, **kwargs) -> str:
    with pytest.raises(StoreError) as ei:
        fn(*args, **kwargs)
    assert type(ei.value) is StoreError
    return str(ei.value)


RUN = dict(env_id="toy/Toy-v0", workload="toy#abc", agent="random", params={"x": 1}, seed=3, budget=4,
           objective={"weights": {"latency_s": 1.0}, "targets": [], "ref": 2.0}, design_names=("a", "b"),
           metric_names=("latency_s", "energy_j", "mac_count"))


def _begin(st, rid="r1", **over):
    return st.begin_run(rid, **{**RUN, **over})


def _row(st, rid, step, a=1, b="x", lat=0.5, en=2.0, macs=7.0, *, reward=0.25, feasible=True, target_met=False,
         cached=False, reason="", wall_s=0.125):
    st.append(rid, step, (a, b), (lat, en, macs), reward=reward, feasible=feasible, target_met=target_met,
              cached=cached, reason=reason, wall_s=wall_s)


def _fake_time(monkeypatch, clock):
    """Replace archgym.store's view of the time module: monotonic reads ``clock[0]``; sleeps are recorded."""
    slept = []
    fake = types.SimpleNamespace(monotonic=lambda: clock[0], time=time.time, sleep=slept.append)
    monkeypatch.setattr(store, "time", fake)
    return slept


# --- opening: schema, pragmas, refusals -----------------------------------------------------------
def test_new_log_schema_pragmas_and_version(tmp_path):
    p = tmp_path / "n.db"
    with RunStore(p) as st:
        assert st.path == str(p) and not st.readonly and st.batch_rows == 512 and st.batch_seconds == 1.0
        c = st.conn
        assert store._tables(c) == {"meta", "runs", "evals"}
        for t, cols in store._EXPECTED.items():
            assert store._columns(c, t) == cols
        assert c.execute("SELECT key, value FROM meta").fetchall() == [("schema_version", "1")]
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.execute("PRAGMA synchronous").fetchone()[0] == 1          # NORMAL
        assert c.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
        assert c.execute("PRAGMA page_size").fetchone()[0] == 16384
        assert c.isolation_level is None                                     # autocommit; BEGIN is explicit
    with RunStore(p) as st:  # reopening keeps one version row
        assert st.conn.execute("SELECT COUNT(*) FROM meta").fetchone()[0] == 1
    assert store.SCHEMA_VERSION == 1


def test_refusals_name_the_file_and_the_problem(tmp_path):
    assert _err(RunStore, "") == "the run log path is empty; give a file name, e.g. --db runs.db"
    d = tmp_path / "dir.db"
    d.mkdir()
    assert _err(RunStore, d) == f"run log {str(d)!r} is a directory"
    missing = tmp_path / "none.db"
    assert _err(RunStore, missing, readonly=True) == f"run log {str(missing)!r} does not exist"
    assert not missing.exists()
    nodir = tmp_path / "no" / "x.db"
    assert _err(RunStore, nodir) == (
        f"cannot create run log {str(nodir)!r}: directory {str(tmp_path / 'no')!r} does not exist")
    txt = tmp_path / "t.db"
    txt.write_bytes(b"hello, not sqlite")
    assert _err(RunStore, txt) == f"cannot open run log {str(txt)!r}: it is not an SQLite database"
    # the SQLite magic followed by garbage: SQLite's own error, on one line
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    msg = _err(RunStore, bad)
    assert msg.startswith(f"cannot open run log {str(bad)!r}: ") and "\n" not in msg


def test_permission_checks_name_the_file(tmp_path, monkeypatch):
    p = tmp_path / "x.db"
    RunStore(p).close()
    monkeypatch.setattr(store.os, "access", lambda path, mode: mode != os.W_OK)
    assert _err(RunStore, p) == f"cannot write run log {str(p)!r}: permission denied"
    assert _err(RunStore, tmp_path / "new.db") == f"cannot write run log {str(tmp_path / 'new.db')!r}: permission denied"
    monkeypatch.setattr(store.os, "access", lambda path, mode: mode != os.R_OK)
    assert _err(RunStore, p, readonly=True) == f"cannot read run log {str(p)!r}: permission denied"
    # a log this process may write, in a folder it may not: only the file itself matters for reading
    monkeypatch.setattr(store.os, "access", lambda path, mode: not (mode == os.W_OK and path == str(p)))
    assert _err(RunStore, p) == f"cannot write run log {str(p)!r}: permission denied"


def test_empty_file_is_waited_for_then_refused(tmp_path, monkeypatch):
    e = tmp_path / "e.db"
    e.touch()
    slept = _fake_time(monkeypatch, [0.0])
    assert _err(RunStore, e) == (f"run log {str(e)!r} exists and is empty: not an archgym run log (remove it or "
                                 "choose another --db)")
    assert slept == [0.05] * 40 and e.stat().st_size == 0


def test_foreign_or_future_databases_are_left_alone(tmp_path):
    f = tmp_path / "f.db"
    con = sqlite3.connect(f)
    con.execute("CREATE TABLE zeta (x)")
    con.execute("CREATE TABLE alpha (y)")
    con.commit()
    con.close()
    before = f.read_bytes()
    assert _err(RunStore, f) == (f"{str(f)!r} is not an archgym run log: it is an SQLite database of another "
                                 "program (tables: alpha, zeta); choose another --db")
    assert f.read_bytes() == before
    assert _err(RunStore, f, readonly=True) == f"{str(f)!r} is not an archgym run log (tables: alpha, zeta)"
    empty_db = tmp_path / "z.db"
    sqlite3.connect(empty_db).execute("PRAGMA user_version=1").connection.close()
    assert _err(RunStore, empty_db, readonly=True) == f"{str(empty_db)!r} is not an archgym run log (tables: none)"
    # a log of another schema version, or with changed columns
    v2 = tmp_path / "v2.db"
    RunStore(v2).close()
    con = sqlite3.connect(v2)
    con.execute("UPDATE meta SET value='2'")
    con.commit()
    con.close()
    for ro in (False, True):
        assert _err(RunStore, v2, readonly=ro) == f"run log {str(v2)!r} has schema version 2; this archgym reads version 1"
    cols = tmp_path / "c.db"
    con = sqlite3.connect(cols)
    con.executescript("CREATE TABLE meta (key TEXT, value TEXT); CREATE TABLE runs (run_id TEXT, env TEXT);"
                      "CREATE TABLE evals (run_id TEXT)")
    con.close()
    assert _err(RunStore, cols) == f"{str(cols)!r} is not an archgym run log: its table 'runs' has columns run_id, env"
    # a meta table without a version row is this archgym's (created before it was written)
    nov = tmp_path / "nov.db"
    con = sqlite3.connect(nov)
    con.executescript(store._SCHEMA)
    con.close()
    with RunStore(nov) as st:
        assert st.conn.execute("SELECT value FROM meta").fetchall() == [("1",)]


def test_close_is_idempotent_and_commits(tmp_path):
    st = RunStore(tmp_path / "c.db", batch_rows=100)
    _begin(st)
    _row(st, "r1", 0)
    st.close()
    assert st.conn is None
    st.close()
    with RunStore(tmp_path / "c.db") as st2:
        assert st2.count("r1") == 1
    assert st2.conn is None


# --- runs -----------------------------------------------------------------------------------------
def test_begin_run_stores_every_field_and_only_raises_the_budget(tmp_path):
    with RunStore(tmp_path / "r.db") as st:
        t0 = time.time()
        info = _begin(st)
        assert info == st.run("r1")
        assert dataclasses.astuple(info)[:10] == ("r1", "toy/Toy-v0", "toy#abc", "random", {"x": 1}, 3, 4,
                                                  RUN["objective"], ("a", "b"), ("latency_s", "energy_j", "mac_count"))
        assert t0 - 1 <= info.created <= time.time() + 1 and info.finished is None
        raw = st.conn.execute("SELECT params, objective, design_names FROM runs").fetchone()
        assert raw == ('{"x": 1}', json.dumps(RUN["objective"], sort_keys=True), '["a", "b"]')
        st.finish_run("r1")
        assert st.run("r1").finished is not None
        # a smaller budget leaves the run (finished) as it was; a larger one reopens it
        assert _begin(st, budget=3).budget == 4 and st.run("r1").finished is not None
        assert _begin(st, budget=4).finished is not None
        again = _begin(st, budget=9, seed=5, agent="other")
        assert (again.budget, again.finished, again.seed, again.agent, again.created) == (9, None, 3, "random",
                                                                                          info.created)
        assert _err(_begin, st, design_names=("a", "c")) == (
            f"run r1 in {st.path} was logged with parameters ('a', 'b'), not ('a', 'c'): the design space changed; "
            "use a new --db")
        assert st.run("nope") is None and len(st.runs()) == 1


def test_runs_are_listed_oldest_first(tmp_path, monkeypatch):
    with RunStore(tmp_path / "o.db") as st:
        clock = iter([30.0, 10.0, 10.0, 20.0])
        monkeypatch.setattr(store, "time", types.SimpleNamespace(time=lambda: next(clock), monotonic=time.monotonic,
                                                                 sleep=time.sleep))
        for rid in ("c", "b", "a", "d"):
            _begin(st, rid)
        assert [r.run_id for r in st.runs()] == ["a", "b", "d", "c"]


def test_run_info_text_hyperparameters_and_label():
    base = dict(run_id="r", env_id="e", workload="w", seed=7, budget=1, design_names=(), metric_names=(),
                created=0.0, finished=None)
    ok = RunInfo(agent="random", params={}, objective={"weights": {"energy_j": 1.0}, "targets": ["area_mm2<=4"]},
                 **base)
    assert ok.objective_text() == "minimize energy_j s.t. area_mm2<=4"
    assert ok.hyperparameters() == {} and ok.label() == "random seed 7"
    bad = dataclasses.replace(ok, objective={"weights": {"nounit": 1.0}})
    assert bad.objective_text() == '{"weights": {"nounit": 1.0}}'
    from agents.ga import GeneticAlgorithm

    defaults = dataclasses.asdict(GeneticAlgorithm.Params())
    k, v = next(iter(defaults.items()))
    changed = 2 * v + 3 if isinstance(v, (int, float)) and not isinstance(v, bool) else f"{v}!"
    ga = dataclasses.replace(ok, agent="ga", params={**defaults, k: changed, "unknown_hp": 1})
    assert ga.hyperparameters() == {k: changed, "unknown_hp": 1}
    assert ga.label() == f"ga({k}={changed},unknown_hp=1) seed 7"
    theirs = dataclasses.replace(ok, agent="someone_elses", params={"a": 1, "b": "x"})
    assert theirs.hyperparameters() == {"a": 1, "b": "x"} and theirs.label() == "someone_elses(a=1,b=x) seed 7"


# --- rows: batching, duplicates, decoding ---------------------------------------------------------
def test_rows_commit_in_batches_of_batch_rows(tmp_path):
    with RunStore(tmp_path / "b.db", batch_rows=3, batch_seconds=1e9) as st:
        _begin(st)
        _row(st, "r1", 0)
        _row(st, "r1", 1)
        assert st.count("r1") == 0 and len(st._buf) == 2
        _row(st, "r1", 2)
        assert st.count("r1") == 3 and st._buf == []
        _row(st, "r1", 3)
        assert st.count("r1") == 3
        st.flush()
        assert st.count("r1") == 4
        st.flush()                                         # nothing buffered: a no-op
        assert st.count("r1") == 4


def test_rows_commit_when_the_batch_is_older_than_batch_seconds(tmp_path, monkeypatch):
    clock = [100.0]
    _fake_time(monkeypatch, clock)
    with RunStore(tmp_path / "t.db", batch_rows=1000, batch_seconds=2.0) as st:
        _begin(st)
        clock[0] = 102.0                                   # exactly batch_seconds: not yet
        _row(st, "r1", 0)
        assert st.count("r1") == 0
        clock[0] = 102.5
        _row(st, "r1", 1)
        assert st.count("r1") == 2 and st._last_flush == 102.5
        clock[0] = 103.0
        _row(st, "r1", 2)                                  # 0.5 s after that commit
        assert st.count("r1") == 2
        clock[0] = 110.0
        st.flush()                                         # flush restarts the clock
        assert st._last_flush == 110.0
        clock[0] = 111.0
        _row(st, "r1", 3)
        assert st.count("r1") == 3


def test_committed_steps_are_never_duplicated_or_overwritten(tmp_path):
    with RunStore(tmp_path / "d.db", batch_rows=1) as st:
        _begin(st)
        _row(st, "r1", 0, a=1, reward=0.5)
        _row(st, "r1", 0, a=9, reward=0.9)
        rows = list(st.evals("r1"))
        assert len(rows) == 1 and rows[0].design == {"a": 1, "b": "x"} and rows[0].reward == 0.5


def test_logged_rows_decode_exactly_in_step_order(tmp_path):
    import numpy as np

    with RunStore(tmp_path / "e.db", batch_rows=2) as st:
        _begin(st)
        _begin(st, "other")
        _row(st, "r1", np.int64(2), a=3, b="y", lat=math.nan, en=math.inf, macs=-0.0, reward=np.float32(0.5),
             feasible=np.bool_(False), target_met=False, cached=True, reason="too big", wall_s=1.5)
        _row(st, "other", 0)
        _row(st, "r1", 0, a=2, lat=1e-300, reward=0.75, feasible=True, target_met=True, wall_s=0.25)
        st.flush()
        rows = list(st.evals("r1"))
        assert [r.step for r in rows] == [0, 2]
        r0, r2 = rows
        assert r0 == LoggedEval("r1", 0, {"a": 2, "b": "x"}, {"latency_s": 1e-300, "energy_j": 2.0, "mac_count": 7.0},
                                0.75, True, True, False, "", 0.25)
        assert r2.design == {"a": 3, "b": "y"} and math.isnan(r2.metrics["latency_s"])
        assert r2.metrics["energy_j"] == math.inf and math.copysign(1, r2.metrics["mac_count"]) == -1
        assert (r2.reward, r2.feasible, r2.target_met, r2.cached, r2.reason, r2.wall_s) == (0.5, False, False, True,
                                                                                              "too big", 1.5)
        assert [type(x) for x in (r2.step, r2.reward, r2.feasible, r2.cached, r2.wall_s)] == [int, float, bool, bool,
                                                                                               float]
        stored = st.conn.execute("SELECT design, metrics, feasible, target_met, cached FROM evals "
                                 "WHERE run_id='r1' AND step=2").fetchone()
        assert stored[0] == '[3,"y"]' and stored[1] == struct.pack("<3d", math.nan, math.inf, -0.0)
        assert stored[2:] == (0, 0, 1)
        assert _err(lambda: list(st.evals("zz"))) == f"no run 'zz' in {st.path}"
        assert st.count("zz") == 0 and st.count("other") == 1


@pytest.mark.parametrize("design, metrics", [
    ("[1]", struct.pack("<3d", 1, 2, 3)),                  # too few parameters
    ('{"a": 1, "b": 2}', struct.pack("<3d", 1, 2, 3)),     # not a list
    ("[1, 2", struct.pack("<3d", 1, 2, 3)),                # not JSON
    ('[1, "x"]', struct.pack("<2d", 1, 2)),                # too few metrics
    ('[1, "x"]', struct.pack("<4d", 1, 2, 3, 4)),          # too many metrics
    ('[1, "x"]', b"\x00" * 23),                            # not whole float64s
    ('[1, "x"]', "text"),                                  # not a blob
])
def test_a_corrupt_row_is_one_line_naming_run_and_step(tmp_path, design, metrics):
    with RunStore(tmp_path / "x.db", batch_rows=1) as st:
        _begin(st)
        _row(st, "r1", 0)
        st.conn.execute("INSERT INTO evals VALUES ('r1', 1, ?, ?, 0, 1, 0, 0, '', 0)", (design, metrics))
        assert _err(lambda: list(st.evals("r1"))) == (
            f"run log {st.path}: run r1 step 1 is corrupt (its design or metrics do not match the run's 2 "
            "parameters and 3 metrics)")


def test_metrics_blob_helpers():
    assert store._dump_metrics([1.0, -2.5]) == struct.pack("<2d", 1.0, -2.5)
    assert store._dump_metrics([]) == b""
    assert store._load_metrics(struct.pack("<3d", 1, 2, 3)) == [1.0, 2.0, 3.0]
    assert store._load_metrics(b"") == []
    for bad in (b"\x00" * 7, bytearray(8), "12345678"):
        with pytest.raises(ValueError, match="a metrics blob is a whole number of float64 values"):
            store._load_metrics(bad)
    assert store._dump_design([1, "os", 2.5, True, None]) == '[1,"os",2.5,true,null]'


def test_contiguous_prefix_stops_at_the_first_gap(tmp_path):
    with RunStore(tmp_path / "g.db", batch_rows=1) as st:
        _begin(st)
        assert st.contiguous_prefix("r1") == []
        for s in (0, 1, 3, 4):
            _row(st, "r1", s)
        assert [e.step for e in st.contiguous_prefix("r1")] == [0, 1]
        _begin(st, "late")
        _row(st, "late", 1)
        assert st.contiguous_prefix("late") == []


# --- export ---------------------------------------------------------------------------------------
def _two_runs(st):
    _begin(st, "r1")
    _begin(st, "r2", agent="ga", params={}, design_names=("b", "c"), metric_names=("energy_j", "area_mm2"),
           objective={"weights": {}, "targets": ["area_mm2<=4"], "ref": None})
    _row(st, "r1", 0, reason="")
    st.append("r2", 0, ("q", 5), (3.0, 4.0), reward=1.0, feasible=True, target_met=True, cached=False, reason="ok",
              wall_s=0.5)
    st.flush()


def test_table_header_and_rows_across_runs(tmp_path):
    with RunStore(tmp_path / "t.db") as st:
        _two_runs(st)
        header, rows = st.table()
        assert header == ["run_id", "env_id", "workload", "objective", "agent", "hyperparameters", "seed", "step",
                          "p_a", "p_b", "p_c", "latency_s", "energy_j", "mac_count", "area_mm2",
                          "reward", "feasible", "target_met", "cached", "reason", "wall_s"]
        r1, r2 = rows
        assert r1[:11] == ["r1", "toy/Toy-v0", "toy#abc", "minimize latency_s", "random", '{"x": 1}', 3, 0, 1, "x",
                           None]
        assert r1[11:14] == [0.5, 2.0, 7.0] and math.isnan(r1[14])
        assert r1[15:] == [0.25, True, False, False, "", 0.125]
        assert r2[:11] == ["r2", "toy/Toy-v0", "toy#abc", "meet targets s.t. area_mm2<=4", "ga", "{}", 3, 0, None, "q", 5]
        assert math.isnan(r2[11]) and r2[12] == 3.0 and math.isnan(r2[13]) and r2[14] == 4.0
        assert r2[15:] == [1.0, True, True, False, "ok", 0.5]
        h2, only = st.table(["r2"])
        assert h2 == header[:8] + ["p_b", "p_c", "energy_j", "area_mm2"] + header[-6:] and len(only) == 1
        assert _err(st.table, ["r2", "nope", "nada"]) == f"no run 'nope' in {st.path}"


def test_export_csv_writes_the_table_and_reports_rows_and_format(tmp_path):
    with RunStore(tmp_path / "x.db") as st:
        _two_runs(st)
        out = tmp_path / "o.csv"
        assert st.export(out) == (2, "csv")
        with open(out, newline="") as f:
            got = list(csv.reader(f))
        assert got[0][:3] == ["run_id", "env_id", "workload"] and len(got) == 3
        assert got[1][:10] == ["r1", "toy/Toy-v0", "toy#abc", "minimize latency_s", "random", '{"x": 1}', "3", "0",
                               "1", "x"]
        assert sorted(os.listdir(tmp_path)) == ["o.csv", "x.db", "x.db-shm", "x.db-wal"]   # no temporary left
        assert _err(st.export, out) == f"{str(out)!r} exists; pass --force to overwrite it"
        assert st.export(out, force=True, run_ids=["r2"]) == (1, "csv")
        assert st.export_csv(out) == 2
        other = tmp_path / "table.data"
        assert st.export(other, "csv") == (2, "csv")
        assert other.read_text().startswith("run_id,env_id")


def test_export_refusals(tmp_path):
    with RunStore(tmp_path / "x.db") as st:
        _two_runs(st)
        for name, ext in (("o.txt", "'.txt'"), ("noext", "'(none)'")):
            assert _err(st.export, tmp_path / name) == (
                f"cannot tell the export format of {str(tmp_path / name)!r} from its extension {ext}; name it .csv or "
                ".parquet, or pass --format csv|parquet")
        assert _err(st.export, tmp_path / "o.csv", "xlsx") == "export format 'xlsx'; allowed: csv, parquet"
        assert _err(st.export, tmp_path / "x.db", force=True) == (
            f"refusing to export onto the run log itself ({str(tmp_path / 'x.db')!r})")
        other_db = tmp_path / "other.csv"
        RunStore(other_db).close()
        assert _err(st.export, other_db, force=True) == (
            f"refusing to overwrite {str(other_db)!r}: it is an SQLite database (a run log?)")
        short = tmp_path / "short.csv"
        short.write_bytes(b"SQLite")
        assert st.export(short, force=True) == (2, "csv")
        gone = tmp_path / "missing" / "o.csv"
        assert _err(st.export, gone) == f"cannot write {str(gone)!r}: No such file or directory"
        assert not (tmp_path / "missing").exists()


def test_export_failure_removes_its_temporary_file(tmp_path, monkeypatch):
    with RunStore(tmp_path / "x.db") as st:
        _two_runs(st)

        def full(src, dst):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(store.os, "replace", full)
        out = tmp_path / "o.csv"
        assert _err(st.export, out) == f"cannot write {str(out)!r}: No space left on device"
        assert sorted(os.listdir(tmp_path)) == ["x.db", "x.db-shm", "x.db-wal"]


def test_export_to_a_fifo_writes_through_it(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo).read()), daemon=True)
    reader.start()
    with RunStore(tmp_path / "x.db") as st:
        _two_runs(st)
        try:
            assert st.export(fifo, force=True) == (2, "csv")
        finally:
            reader.join(5)
            if reader.is_alive():  # unblock the reader so the test ends
                open(fifo, "w").close()
    assert got and got[0].startswith("run_id,env_id,workload")
    assert os.path.exists(fifo) and not os.path.isfile(fifo)       # still the FIFO, not replaced by a file
    assert sorted(os.listdir(tmp_path)) == ["pipe.csv", "x.db"]                      # no temporary file


def test_parquet_export_keeps_mixed_design_columns_as_text(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    with RunStore(tmp_path / "x.db") as st:
        _two_runs(st)
        st.append("r1", 1, (2, 5), (1.0, 1.0, 1.0), reward=0.1, feasible=True, target_met=False, cached=False,
                  reason="", wall_s=0.0)
        st.flush()
        assert st.export_parquet(tmp_path / "o.parquet") == 3
        t = pq.read_table(tmp_path / "o.parquet").to_pydict()
        assert t["p_a"] == [1, 2, None]                     # ints only: stays integer
        assert t["p_b"] == ["x", "5", "q"]                  # int and str across runs: text
        assert t["p_c"] == [None, None, 5]
        assert t["run_id"] == ["r1", "r1", "r2"] and t["reward"] == [0.25, 0.1, 1.0]
        assert st.export(tmp_path / "p.parquet") == (3, "parquet")


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    import sys

    with RunStore(tmp_path / "x.db") as st:
        _two_runs(st)
        monkeypatch.setitem(sys.modules, "pyarrow", None)
        assert _err(st.export_parquet, tmp_path / "o.parquet") == (
            "Parquet export needs pyarrow: pip install 'archgym[parquet]'")
        assert not (tmp_path / "o.parquet").exists()


# --- locking retries and read-only opens ----------------------------------------------------------
def test_retry_locked_retries_only_busy_errors(monkeypatch):
    slept = _fake_time(monkeypatch, [0.0])
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 13:
            raise sqlite3.OperationalError("database is locked" if len(calls) % 2 else "database is busy")
        return "done"

    assert store._retry_locked(flaky) == "done" and len(calls) == 13
    assert slept == [0.05 * (1 + i % 10) for i in range(12)]

    def other():
        calls.append(1)
        raise sqlite3.OperationalError("no such table: x")

    calls.clear()
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        store._retry_locked(other)
    assert len(calls) == 1

    def always():
        calls.append(1)
        raise sqlite3.OperationalError("database is locked")

    calls.clear()
    slept.clear()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        store._retry_locked(always, tries=3, wait_s=1.0)
    assert len(calls) == 3 and slept == [1.0, 2.0]


def test_read_only_open_reads_and_cannot_write(tmp_path, monkeypatch):
    folder = tmp_path / "a b#c?d%20"
    folder.mkdir()
    p = folder / "r.db"
    with RunStore(p, batch_rows=1) as st:
        _begin(st)
        _row(st, "r1", 0)
    real_access = os.access
    for access in (real_access, lambda path, mode: mode == os.R_OK or mode == os.X_OK):
        monkeypatch.setattr(store.os, "access", access)
        with RunStore(p, readonly=True) as ro:
            assert ro.readonly and ro.count("r1") == 1 and [e.step for e in ro.evals("r1")] == [0]
            with pytest.raises(sqlite3.OperationalError):
                ro.conn.execute("DELETE FROM evals")
    monkeypatch.setattr(store.os, "access", real_access)
    # a writable log opens read-only without the immutable flag: it sees rows committed after opening
    ro = RunStore(p, readonly=True)
    try:
        with RunStore(p, batch_rows=1) as st:
            _row(st, "r1", 1)
        assert ro.count("r1") == 2
    finally:
        ro.close()


# --- the fixed-format exports and the design encoder ----------------------------------------------
def test_export_csv_and_parquet_fix_the_format_select_runs_and_overwrite(tmp_path):
    """export_csv/export_parquet ignore the extension, honour run_ids and overwrite an existing file."""
    pq = pytest.importorskip("pyarrow.parquet")
    with RunStore(tmp_path / "x.db") as st:
        _two_runs(st)
        out = tmp_path / "table.data"                       # no extension to infer a format from
        out.write_text("old\n")
        assert st.export_csv(out, ["r2"]) == 1
        with open(out, newline="") as f:
            got = list(csv.reader(f))
        assert len(got) == 2 and got[1][:2] == ["r2", "toy/Toy-v0"]
        pout = tmp_path / "table.bin"
        pout.write_text("old\n")
        assert st.export_parquet(pout, ["r1"]) == 1
        assert pq.read_table(pout).to_pydict()["run_id"] == ["r1"]


def test_parquet_mixed_column_keeps_missing_values_null(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    with RunStore(tmp_path / "x.db") as st:
        _two_runs(st)                                       # p_c: missing in r1, 5 in r2
        st.append("r2", 1, ("q", "five"), (1.0, 1.0), reward=0.5, feasible=True, target_met=True, cached=False,
                  reason="", wall_s=0.0)
        st.flush()
        assert st.export_parquet(tmp_path / "o.parquet") == 3
        assert pq.read_table(tmp_path / "o.parquet").to_pydict()["p_c"] == [None, "5", "five"]


def test_a_design_value_json_cannot_hold_is_named_with_its_type():
    assert store._dump_design([1, "x", 2.5]) == '[1,"x",2.5]'
    with pytest.raises(TypeError) as ei:
        store._dump_design([1, 1 + 2j])
    assert str(ei.value) == "design value (1+2j) of type complex is not JSON serialisable"


def test_table_hyperparameters_are_sorted_json(tmp_path):
    with RunStore(tmp_path / "x.db") as st:
        _begin(st, "r1", params={"zeta": 1, "alpha": 2})
        _row(st, "r1", 0)
        st.flush()
        assert st.table()[1][0][5] == '{"alpha": 2, "zeta": 1}'


def test_an_in_memory_log_exports_over_an_existing_file(tmp_path):
    with RunStore(":memory:") as st:
        _two_runs(st)
        out = tmp_path / "o.csv"
        out.write_text("old\n")
        assert st.export(out, force=True) == (2, "csv")
        assert out.read_text().startswith("run_id,env_id")


def test_read_only_open_sees_rows_still_in_the_writers_wal(tmp_path):
    """A writer that is still open keeps its committed rows in the WAL (not yet checkpointed into
    the main file): a read-only open of a writable log must read them (an immutable open would not)."""
    p = tmp_path / "r.db"
    with RunStore(p, batch_rows=1) as st:
        _begin(st)
        _row(st, "r1", 0)
        with RunStore(p, readonly=True) as ro:
            assert ro.count("r1") == 1
            _row(st, "r1", 1)
            assert ro.count("r1") == 2
        with RunStore(p, readonly=True) as ro2:
            assert ro2.count("r1") == 2


def test_a_stored_hyperparameter_the_agent_no_longer_has_is_kept_even_when_none():
    """A log written before a hyperparameter was removed: the retired one is not a default, so it is
    shown whatever its value, None included."""
    info = RunInfo(run_id="r", env_id="e", workload="w", agent="random", params={"retired_knob": None}, seed=1,
                   budget=1, objective={}, design_names=(), metric_names=(), created=0.0, finished=None)
    assert info.hyperparameters() == {"retired_knob": None}


def test_a_failed_export_leaves_the_existing_file_as_it_was(tmp_path, monkeypatch):
    with RunStore(tmp_path / "x.db") as st:
        _two_runs(st)
        out = tmp_path / "o.csv"
        out.write_text("old\n")
        real_replace = os.replace
        moves = []

        def spy(src, dst):
            moves.append((os.path.dirname(src), os.path.basename(src), dst))
            return real_replace(src, dst)

        monkeypatch.setattr(store.os, "replace", spy)
        monkeypatch.chdir(tmp_path.parent)          # a temporary in the cwd would be elsewhere
        assert st.export(out, force=True) == (2, "csv")
        # written next to its destination (same file system), then renamed into place
        assert moves == [(str(tmp_path), f".o.csv.{os.getpid()}.tmp", str(out))]

        def full(src, dst):
            raise OSError(28, "No space left on device")

        out.write_text("old\n")
        monkeypatch.setattr(store.os, "replace", full)
        assert _err(st.export, out, force=True) == f"cannot write {str(out)!r}: No space left on device"
        assert out.read_text() == "old\n"


def test_hyperparameters_are_stored_with_sorted_keys(tmp_path):
    """The params column is JSON with sorted keys, so a run's hyperparameters list (``archgym runs``,
    plot labels) does not depend on the order the agent's fields were given in."""
    with RunStore(tmp_path / "p.db") as st:
        _begin(st, params={"pop_size": 8, "mutation_prob": 0.2, "elite": 1})
        raw = st.conn.execute("SELECT params FROM runs").fetchone()[0]
        assert raw == '{"elite": 1, "mutation_prob": 0.2, "pop_size": 8}'
        assert list(st.run("r1").params) == ["elite", "mutation_prob", "pop_size"]


def test_close_of_a_store_that_never_opened_is_a_no_op(tmp_path):
    """A RunStore whose __init__ failed before it had a connection (no ``conn`` attribute at all)
    closes without an error (close runs from __exit__ and __del__)."""
    half = RunStore.__new__(RunStore)
    half.close()
    assert not hasattr(half, "conn")


def test_a_log_without_its_meta_table_still_opens_read_only(tmp_path):
    """The read-only check needs the runs and evals tables; the meta table (schema version) is
    optional, as in a log whose meta table was dropped."""
    p = tmp_path / "m.db"
    with RunStore(p) as st:
        _begin(st)
        _row(st, "r1", 0)
    con = sqlite3.connect(p)
    con.execute("DROP TABLE meta")
    con.commit()
    con.close()
    with RunStore(p, readonly=True) as ro:
        assert [r.run_id for r in ro.runs()] == ["r1"] and ro.count("r1") == 1


def test_an_in_memory_log_never_checks_the_file_system(monkeypatch):
    """":memory:" is SQLite's in-memory database, not a file name: no file check runs for it."""
    def no_files(path, readonly):
        raise AssertionError(f"_check_file called for {path!r}")

    monkeypatch.setattr(store, "_check_file", no_files)
    with RunStore(":memory:") as st:
        _begin(st)
        assert st.count("r1") == 0


def test_a_connection_that_fails_to_open_is_one_store_error(tmp_path, monkeypatch):
    """If SQLite cannot open the file at all, RunStore raises its one-line StoreError (there is no
    connection to close yet)."""
    def refuse(*args, **kwargs):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(store.sqlite3, "connect", refuse)
    p = tmp_path / "x.db"
    assert _err(RunStore, p) == f"cannot open run log {str(p)!r}: unable to open database file"
