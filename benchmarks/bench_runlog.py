"""Where a run-log row's cost goes: the per-row pieces of the SQLite run log, measured alone.

Run:  python benchmarks/bench_runlog.py          (about a minute on 2 cores)

``bench_core.py`` measures the whole logging cost per row (run loop with and
without the log); this script splits it up, on 20,000 evaluations of
Systolic-v0 by the random agent (10 design values, 18 metrics per row):

* ``Metrics.vector``, the design's JSON text and the metrics blob, per row;
* SQLite's ``executemany`` of already-encoded rows in 512-row transactions, with
  RunStore's schema (the evals table is ``WITHOUT ROWID``, keyed by run and
  step), with 4 KiB pages (SQLite's default) and 16 KiB pages (what ``RunStore``
  creates), and two variants not used (a table with a rowid; a 10,000-page WAL
  checkpoint interval);
* ``RunStore.flush`` (encode + commit) timed inside the run loop, per row;
* ``RunStore.append`` (buffering a row, no commit);
* a run's fixed cost (open, schema, begin, finish, close) for a one-row run.

``Metrics.vector`` + ``append`` + ``flush`` is what the run loop adds per row;
compare it with bench_core's whole-loop figure.

Every figure is a median over repeats in this process; compare figures of one run.
"""

from __future__ import annotations

import statistics
import sqlite3
import tempfile
import time
from pathlib import Path

import archgym.store as store_mod
from archgym.agent import make_agent
from archgym.runner import make_evaluator, run
from archgym.store import RunStore, _dump_design, _dump_metrics

ENV, WORKLOAD, N = "archgym/Systolic-v0", "opt-125m/decode", 20_000


def per_row_us(fn, n: int, repeats: int = 7) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) / n * 1e6


def evaluations():
    ev = make_evaluator(ENV, workload=WORKLOAD)
    ag = make_agent("random", ev.space, seed=0, objective=ev.objective, budget=N)
    out = []
    for _ in range(N):
        e = ev.evaluate(ag.ask())
        ag.tell(e.design, e.metrics, e.reward)
        out.append(e)
    return ev, out


# RunStore's own schema (its evals table is WITHOUT ROWID), and the variant with a rowid
_SCHEMA = store_mod._SCHEMA
_SCHEMA_ROWID = _SCHEMA.replace(") WITHOUT ROWID;", ");")
assert _SCHEMA_ROWID != _SCHEMA


def executemany_us(rows, tmp: Path, *, page: int, rowid: bool = False, checkpoint: int = 0) -> float:
    """SQLite alone: insert prepared rows in 512-row transactions into a new WAL file."""
    counter = iter(range(10**6))

    def once():
        con = sqlite3.connect(tmp / f"x{page}{rowid}{checkpoint}_{next(counter)}.db", isolation_level=None)
        con.execute(f"PRAGMA page_size={page}")
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        if checkpoint:
            con.execute(f"PRAGMA wal_autocheckpoint={checkpoint}")
        con.executescript(_SCHEMA_ROWID if rowid else _SCHEMA)
        for b in range(0, len(rows), 512):
            with con:
                con.execute("BEGIN")
                con.executemany("INSERT OR IGNORE INTO evals VALUES (?,?,?,?,?,?,?,?,?,?)", rows[b:b + 512])
        con.close()

    return per_row_us(once, len(rows))


def flush_in_loop_us(tmp: Path, repeats: int = 3) -> float:
    """Time spent in RunStore.flush during a logged run, per row."""
    spent = [0.0]
    orig = store_mod.RunStore.flush

    def timed(self):
        t0 = time.perf_counter()
        orig(self)
        spent[0] += time.perf_counter() - t0

    out = []
    store_mod.RunStore.flush = timed
    try:
        for k in range(repeats):
            spent[0] = 0.0
            ev = make_evaluator(ENV, workload=WORKLOAD)
            with RunStore(tmp / f"loop{k}.db") as st:
                run(ENV, "random", N, seed=0, evaluator=ev, store=st)
            out.append(spent[0] / N * 1e6)
    finally:
        store_mod.RunStore.flush = orig
    return statistics.median(out)


def append_us(es, names, tmp: Path) -> float:
    """RunStore.append alone: the batch never fills (flushed after the clock stops)."""
    counter = iter(range(10**6))
    designs = [tuple(e.design.values()) for e in es]
    vecs = [e.metrics.vector(names) for e in es]

    def once():
        st = RunStore(tmp / f"app{next(counter)}.db", batch_rows=len(es) + 1, batch_seconds=1e9)
        t0 = time.perf_counter()
        for i, e in enumerate(es):
            st.append("r", i, designs[i], vecs[i], reward=e.reward, feasible=e.feasible, target_met=e.target_met,
                      cached=e.cached, reason=e.metrics.reason, wall_s=e.wall_s)
        dt = time.perf_counter() - t0
        st.close()
        return dt

    return statistics.median(once() for _ in range(7)) / len(es) * 1e6


def fixed_cost_ms(tmp: Path, repeats: int = 20) -> float:
    ts = []
    for k in range(repeats):
        t0 = time.perf_counter()
        with RunStore(tmp / f"fixed{k}.db") as st:
            st.begin_run("r", env_id="e", workload="w", agent="a", params={}, seed=0, budget=1, objective={},
                         design_names=("a",), metric_names=("b",))
            st.append("r", 0, (1,), (1.0,), reward=0.5, feasible=True, target_met=True, cached=False, reason="",
                      wall_s=0.0)
            st.finish_run("r")
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def main() -> None:
    ev, es = evaluations()
    names = ev.metric_names
    vals = [(tuple(e.design.values()), e.metrics.vector(names)) for e in es]
    rows = [("a" * 12, i, _dump_design(d), _dump_metrics(m), e.reward, int(e.feasible), int(e.target_met),
             int(e.cached), e.metrics.reason, e.wall_s) for i, ((d, m), e) in enumerate(zip(vals, es))]
    print(f"| piece ({N:,} rows, {len(ev.space.names)} design values, {len(names)} metrics) | us per row |")
    print("|---|---|")
    print(f"| `Metrics.vector` | {per_row_us(lambda: [e.metrics.vector(names) for e in es], N):.2f} |")
    print(f"| design JSON (`_dump_design`) | {per_row_us(lambda: [_dump_design(d) for d, _ in vals], N):.2f} |")
    print(f"| metrics blob (`_dump_metrics`) | {per_row_us(lambda: [_dump_metrics(m) for _, m in vals], N):.2f} |")
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        print(f"| SQLite executemany, 4 KiB pages | {executemany_us(rows, tmp, page=4096):.2f} |")
        print(f"| SQLite executemany, 16 KiB pages (RunStore) | {executemany_us(rows, tmp, page=16384):.2f} |")
        print(f"| ... 16 KiB, a table with a rowid (not used) | "
              f"{executemany_us(rows, tmp, page=16384, rowid=True):.2f} |")
        print(f"| ... 16 KiB, wal_autocheckpoint=10000 (not used) | "
              f"{executemany_us(rows, tmp, page=16384, checkpoint=10_000):.2f} |")
        print(f"| `RunStore.flush` inside the run loop (encode + commit) | {flush_in_loop_us(tmp):.2f} |")
        fixed = fixed_cost_ms(tmp)
        print(f"| a run's fixed cost: {fixed:.1f} ms, spread over {N:,} rows | {fixed / N * 1e3:.2f} |")
        print(f"| `RunStore.append` (buffer one row, no commit) | {append_us(es, names, tmp):.2f} |")

if __name__ == "__main__":
    main()
