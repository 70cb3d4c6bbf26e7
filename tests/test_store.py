"""Run log: batched SQLite rows, resume after kill -9 without loss or duplication, export."""

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from archgym.runner import run
from archgym.store import RunStore, StoreError

ENV = "archgym/Systolic-v0"


def _rows(db):
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT run_id, step, design, metrics, reward, feasible, target_met, cached, reason FROM evals "
            "ORDER BY run_id, step"
        ).fetchall()
    finally:
        con.close()


def _cmd(db, budget):
    return [sys.executable, "-m", "archgym", "run", ENV, "--agent", "random", "--budget", str(budget),
            "--seed", "7", "--db", str(db), "--quiet"]


@pytest.mark.slow
def test_resume_after_kill_9_loses_and_duplicates_nothing(tmp_path):
    budget = 40_000
    ref_db, db = tmp_path / "ref.db", tmp_path / "crash.db"
    subprocess.run(_cmd(ref_db, budget), check=True, capture_output=True)
    reference = _rows(ref_db)
    assert len(reference) == budget

    proc = subprocess.Popen(_cmd(db, budget), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    committed = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if db.exists():
            try:
                con = sqlite3.connect(db, timeout=1)
                committed = con.execute("SELECT COUNT(*) FROM evals").fetchone()[0]
                con.close()
            except sqlite3.OperationalError:
                continue
            if committed >= 2000:
                break
    assert proc.poll() is None, "the run finished before it could be killed; raise the budget"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _rows(db)
    assert 0 < len(before) < budget
    # committed rows form a contiguous prefix identical to the uninterrupted run
    assert before == reference[: len(before)]

    out = subprocess.run(_cmd(db, budget), check=True, capture_output=True, text=True)
    assert f"{len(before)} resumed from the log" in out.stdout
    after = _rows(db)
    assert len(after) == budget
    assert len({(r[0], r[1]) for r in after}) == budget
    assert after == reference


def test_store_round_trip_and_exports(tmp_path):
    db = tmp_path / "runs.db"
    with RunStore(db, batch_rows=7) as st:
        res = run(ENV, "random", 50, seed=3, store=st)
        assert st.count(res.run_id) == 50
        rows = list(st.evals(res.run_id))
        assert [r.step for r in rows] == list(range(50))
        assert rows[res.best_step].reward == res.best_reward
        assert st.export_csv(tmp_path / "a.csv") == 50
        header = (tmp_path / "a.csv").read_text().splitlines()[0].split(",")
        assert {"p_rows", "latency_s", "energy_j", "reward", "feasible"} <= set(header)
        pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        assert st.export_parquet(tmp_path / "a.parquet") == 50
        t = pq.read_table(tmp_path / "a.parquet")
        assert t.num_rows == 50 and "latency_s" in t.column_names
    # a larger budget extends the same run; the first 50 rows are replayed, not recomputed
    with RunStore(db) as st:
        res2 = run(ENV, "random", 80, seed=3, store=st)
        assert res2.run_id == res.run_id and res2.resumed_steps == 50 and st.count(res.run_id) == 80


def test_resume_mismatch_is_detected(tmp_path):
    from archgym.runner import ResumeMismatch

    db = tmp_path / "runs.db"
    with RunStore(db) as st:
        res = run(ENV, "random", 10, seed=1, store=st)
    with RunStore(db) as st:
        with pytest.raises(ResumeMismatch, match="at step 0"):
            run(ENV, "random", 20, seed=2, store=st, run_id=res.run_id)


def test_unwritable_or_bad_paths(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        RunStore(tmp_path / "no" / "such" / "dir.db")
    bad = tmp_path / "notadb.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open run log"):
        RunStore(bad)
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(StoreError, match="permission denied"):
            RunStore(ro / "x.db")


def test_design_json_is_jsonencoder_text():
    """The run log's once-built C encoder writes exactly what json.JSONEncoder writes."""
    import json

    from archgym.store import _dump_design

    enc = json.JSONEncoder(separators=(",", ":"))
    for values in [(128, 256, "os", 1024), (True, False, 0, -3), (0.1, 1e-300, 2.5e10, math.nan, math.inf, -math.inf),
                   ("é\"\\\n", "", "ws"), (1, 1.0, True)]:
        assert _dump_design(values) == enc.encode(list(values))
    with pytest.raises(TypeError, match="not JSON serialisable"):
        _dump_design((object(),))


def test_metrics_vector_any_name_order():
    """Metrics.vector (the run log's per-row path) == one getattr/extra lookup per name, in
    every order: core first, extras first, interleaved, core only, extras only."""
    from archgym.metrics import Metrics

    m = Metrics(cycles=None, latency_s=2.0, energy_j=3.0, extra={"mac_count": 7.0, "stall_cycles": 1.0})
    m2 = Metrics(cycles=12, latency_s=2.0, extra={"mac_count": 7.0})

    def ref(mm, names):
        return [math.nan if (v := (getattr(mm, n) if hasattr(type(mm), n) and n not in ("extra", "breakdown")
                                   else mm.extra.get(n, math.nan))) is None else float(v) for n in names]

    for names in [("cycles", "latency_s", "energy_j", "mac_count", "stall_cycles"), ("mac_count", "cycles"),
                  ("latency_s", "mac_count", "energy_j"), ("energy_j",), ("cycles", "power_w"), ("stall_cycles",), ()]:
        for mm in (m, m2):
            got, want = mm.vector(names), ref(mm, names)
            assert len(got) == len(want) and all((a == b) or (math.isnan(a) and math.isnan(b))
                                                 for a, b in zip(got, want)), (names, got, want)
            assert all(type(v) is float for v in got)


def test_page_size_new_log_and_old_log_still_appends(tmp_path):
    """New logs use 16 KiB pages; a log created with SQLite's default 4 KiB pages (as before)
    keeps them and takes new runs and rows; metric blobs of any length round-trip exactly."""
    from archgym.store import _dump_metrics, _load_metrics

    with RunStore(tmp_path / "new.db") as st:
        assert st.conn.execute("PRAGMA page_size").fetchone()[0] == 16384
    from archgym.store import _SCHEMA, SCHEMA_VERSION

    old = tmp_path / "old.db"  # a log made before 16 KiB pages: SQLite's default 4 KiB
    con = sqlite3.connect(old)
    con.execute("PRAGMA journal_mode=WAL")
    con.executescript(_SCHEMA)
    con.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    con.commit()
    con.close()
    with RunStore(old, batch_rows=5) as st:
        assert st.conn.execute("PRAGMA page_size").fetchone()[0] == 4096
        res = run(ENV, "random", 12, seed=1, store=st)
        assert st.count(res.run_id) == 12 and [r.step for r in st.evals(res.run_id)] == list(range(12))
    for vals in ([], [1.5], [0.1, -2.0, math.inf, 1e-300], [3.0] * 18):
        assert _load_metrics(_dump_metrics(vals)) == vals
    blob = _dump_metrics([math.nan, 2.0])
    assert math.isnan(_load_metrics(blob)[0]) and len(blob) == 16
