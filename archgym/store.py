"""The run log: one SQLite file, one row per evaluation.

* WAL mode, ``synchronous=NORMAL``: a committed transaction survives the
  writing process being killed (``kill -9``) at any instant.
* Batched inserts: rows are buffered and committed every ``batch_rows`` rows
  or ``batch_seconds`` seconds, and on :meth:`RunStore.flush`/``close``.  A
  crash loses at most the uncommitted buffer, which a resumed run recomputes.
  Rows are buffered as raw tuples and encoded only when a batch is committed
  (about 9 us per row in total; benchmarks/README.md, "Core").
* ``PRIMARY KEY (run_id, step)``: a row is never duplicated; resuming appends
  from the first missing step.
* Only the driver process writes (workers return results to it).

Designs are stored as JSON arrays and metrics as little-endian float64 blobs
(NaN where a metric is absent); their column names (parameter names; metric
names with units in them) are stored once per run in ``runs``.  Use
:meth:`RunStore.evals`, ``archgym export`` or :meth:`RunStore.table` to read
them back with names.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import sqlite3
import struct
import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

__all__ = ["RunStore", "RunInfo", "StoreError", "LoggedEval"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    env_id TEXT NOT NULL,
    workload TEXT NOT NULL,
    agent TEXT NOT NULL,
    params TEXT NOT NULL,
    seed INTEGER NOT NULL,
    budget INTEGER NOT NULL,
    objective TEXT NOT NULL,
    design_names TEXT NOT NULL,
    metric_names TEXT NOT NULL,
    created REAL NOT NULL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS evals (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    design TEXT NOT NULL,
    metrics BLOB NOT NULL,
    reward REAL NOT NULL,
    feasible INTEGER NOT NULL,
    target_met INTEGER NOT NULL,
    cached INTEGER NOT NULL,
    reason TEXT NOT NULL,
    wall_s REAL NOT NULL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
"""


class StoreError(ValueError):
    """The run log cannot be opened or does not match the run being resumed."""


@dataclass(frozen=True)
class RunInfo:
    """One row of the ``runs`` table."""

    run_id: str
    env_id: str
    workload: str
    agent: str
    params: dict
    seed: int
    budget: int
    objective: dict
    design_names: tuple[str, ...]
    metric_names: tuple[str, ...]
    created: float
    finished: float | None

    def objective_text(self) -> str:
        """The objective in words (``minimize energy_j*latency_s s.t. area_mm2<=4``)."""
        from .objective import Objective

        try:
            return Objective.from_dict(self.objective).describe()
        except ValueError:
            return json.dumps(self.objective)

    def hyperparameters(self) -> dict:
        """The hyperparameters that differ from the agent's defaults (all of them for an agent
        this archgym does not know)."""
        try:
            from .agent import agent_class

            defaults = dataclasses.asdict(agent_class(self.agent).Params())
        except Exception:  # noqa: BLE001 - an agent registered by another package, or renamed
            return dict(self.params)
        return {k: v for k, v in self.params.items() if defaults.get(k, object()) != v}

    def label(self) -> str:
        """``agent(k=v,...) seed N``: what distinguishes this run in a table or a legend."""
        hp = ",".join(f"{k}={v}" for k, v in self.hyperparameters().items())
        return f"{self.agent}{f'({hp})' if hp else ''} seed {self.seed}"


@dataclass(frozen=True)
class LoggedEval:
    """One logged evaluation, decoded."""

    run_id: str
    step: int
    design: dict
    metrics: dict
    reward: float
    feasible: bool
    target_met: bool
    cached: bool
    reason: str
    wall_s: float


_ENC = json.JSONEncoder(separators=(",", ":"))


def _not_json(o: Any) -> Any:
    raise TypeError(f"design value {o!r} of type {type(o).__name__} is not JSON serialisable")


# The C encoder that JSONEncoder.encode builds on every call, built once: the same text
# (compact separators, NaN allowed) at half the cost per row (0.8 vs 1.7 us for a
# 10-parameter design).  Pure-Python interpreters without it use the encoder itself.
_C_ENC = (json.encoder.c_make_encoder(None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",",
                                      False, False, True)
          if json.encoder.c_make_encoder is not None else None)


def _dump_design(values: Sequence[Any]) -> str:
    if _C_ENC is None:
        return _ENC.encode(list(values))
    return "".join(_C_ENC(list(values), 0))


_PACKERS: dict[int, Any] = {}


def _dump_metrics(values: Sequence[float]) -> bytes:
    # little-endian float64 per metric (NaN where absent): exact, compact and fast
    pack = _PACKERS.get(len(values))
    if pack is None:
        pack = _PACKERS[len(values)] = struct.Struct(f"<{len(values)}d").pack
    return pack(*values)


def _load_metrics(blob: bytes) -> list[float]:
    if not isinstance(blob, bytes) or len(blob) % 8:
        raise ValueError("a metrics blob is a whole number of float64 values")
    return list(struct.unpack(f"<{len(blob) // 8}d", blob))


class RunStore:
    """A SQLite run log (see module docstring).  Use as a context manager.

    ``path`` is a file path; ``":memory:"`` works for tests.  Raises
    :class:`StoreError` with a one-line message if the file cannot be opened or
    created (unwritable directory, not a database).
    """

    def __init__(self, path: str | os.PathLike, *, batch_rows: int = 512, batch_seconds: float = 1.0,
                 readonly: bool = False) -> None:
        self.path = str(path)
        self.readonly = readonly
        self.batch_rows = batch_rows
        self.batch_seconds = batch_seconds
        self._buf: list[tuple] = []
        self._last_flush = time.monotonic()
        self.conn = None
        if not self.path:
            raise StoreError("the run log path is empty; give a file name, e.g. --db runs.db")
        if self.path != ":memory:":
            _check_file(self.path, readonly)
        try:
            if readonly:
                self.conn = _connect_readonly(self.path)
            else:
                self.conn = _retry_locked(lambda: sqlite3.connect(self.path, isolation_level=None, timeout=_BUSY_S))
                _retry_locked(self._init_schema)
            _check_schema(self.conn, self.path, readonly)
        except sqlite3.DatabaseError as e:
            if self.conn is not None:
                self.conn.close()
                self.conn = None
            raise StoreError(f"cannot open run log {self.path!r}: {e}") from None

    def _init_schema(self) -> None:
        c = self.conn
        c.execute(f"PRAGMA busy_timeout={int(_BUSY_S * 1000)}")
        tables = _tables(c)  # look before touching anything: a foreign database is left as it was
        if tables and "meta" not in tables:
            raise StoreError(f"{self.path!r} is not an archgym run log: it is an SQLite database of another "
                             f"program (tables: {', '.join(sorted(tables))}); choose another --db")
        _check_schema(c, self.path, False)
        if c.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            # 16 KiB pages for a new log (no effect on an existing one): 2-5 % less SQLite time per
            # inserted row than 4 KiB (benchmarks/bench_runlog.py); must precede WAL mode
            c.execute("PRAGMA page_size=16384")
            c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        if not {"meta", "runs", "evals"} <= tables:
            c.executescript("BEGIN;" + _SCHEMA + "COMMIT;")
        c.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    # --- context manager -----------------------------------------------------------
    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Commit buffered rows and close the connection (idempotent)."""
        if getattr(self, "conn", None) is None:
            return
        try:
            self.flush()
        finally:
            self.conn.close()
            self.conn = None

    # --- runs ------------------------------------------------------------------------
    def begin_run(
        self, run_id: str, *, env_id: str, workload: str, agent: str, params: Mapping[str, Any], seed: int,
        budget: int, objective: Mapping[str, Any], design_names: Sequence[str], metric_names: Sequence[str],
    ) -> RunInfo:
        """Create the run row, or check an existing one matches and raise its budget.

        Atomic (``INSERT ... ON CONFLICT DO NOTHING``): several processes may begin the same
        run on one log at once; exactly one row is created and every caller gets it."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,NULL) ON CONFLICT(run_id) DO NOTHING",
                (run_id, env_id, workload, agent, json.dumps(dict(params), sort_keys=True), int(seed), int(budget),
                 json.dumps(dict(objective), sort_keys=True), json.dumps(list(design_names)),
                 json.dumps(list(metric_names)), time.time()),
            )
            existing = self.run(run_id)
            if tuple(design_names) != existing.design_names:
                raise StoreError(
                    f"run {run_id} in {self.path} was logged with parameters {existing.design_names}, "
                    f"not {tuple(design_names)}: the design space changed; use a new --db"
                )
            if budget > existing.budget:
                self.conn.execute("UPDATE runs SET budget=?, finished=NULL WHERE run_id=?", (budget, run_id))
        return self.run(run_id)

    def finish_run(self, run_id: str) -> None:
        """Flush and mark the run finished."""
        self.flush()
        self.conn.execute("UPDATE runs SET finished=? WHERE run_id=?", (time.time(), run_id))

    def run(self, run_id: str) -> RunInfo | None:
        """The run's metadata, or None."""
        row = self.conn.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return None if row is None else _run_info(row)

    def runs(self) -> list[RunInfo]:
        """Every run in the log, oldest first."""
        return [_run_info(r) for r in self.conn.execute("SELECT * FROM runs ORDER BY created, run_id")]

    # --- evaluations -----------------------------------------------------------------
    def append(
        self, run_id: str, step: int, design_values: Sequence[Any], metric_values: Sequence[float], *,
        reward: float, feasible: bool, target_met: bool, cached: bool, reason: str, wall_s: float,
    ) -> None:
        """Buffer one evaluation row; commits when the batch is full or old."""
        self._buf.append(
            (run_id, step, design_values, metric_values, reward, feasible, target_met, cached, reason, wall_s)
        )
        if len(self._buf) >= self.batch_rows or time.monotonic() - self._last_flush > self.batch_seconds:
            self.flush()

    def flush(self) -> None:
        """Commit buffered rows in one transaction (duplicates of committed steps are ignored)."""
        if self._buf:
            rows = [
                (r[0], int(r[1]), _dump_design(r[2]), _dump_metrics(r[3]), float(r[4]), int(r[5]), int(r[6]),
                 int(r[7]), r[8], float(r[9]))
                for r in self._buf
            ]
            with self.conn:
                self.conn.execute("BEGIN")
                self.conn.executemany("INSERT OR IGNORE INTO evals VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            self._buf = []
        self._last_flush = time.monotonic()

    def count(self, run_id: str) -> int:
        """Number of committed rows of a run."""
        return self.conn.execute("SELECT COUNT(*) FROM evals WHERE run_id=?", (run_id,)).fetchone()[0]

    def evals(self, run_id: str) -> Iterator[LoggedEval]:
        """Committed rows of a run in step order, decoded with their names."""
        info = self.run(run_id)
        if info is None:
            raise StoreError(f"no run {run_id!r} in {self.path}")
        rows = self.conn.execute(
            "SELECT run_id, step, design, metrics, reward, feasible, target_met, cached, reason, wall_s "
            "FROM evals WHERE run_id=? ORDER BY step", (run_id,)
        ).fetchall()
        for r in rows:
            try:
                dv = json.loads(r[2])
                mv = _load_metrics(r[3])
            except (ValueError, TypeError, struct.error):
                dv = mv = None
            if (not isinstance(dv, list) or mv is None or len(dv) != len(info.design_names)
                    or len(mv) != len(info.metric_names)):
                raise StoreError(f"run log {self.path}: run {run_id} step {r[1]} is corrupt (its design or metrics "
                                 f"do not match the run's {len(info.design_names)} parameters and "
                                 f"{len(info.metric_names)} metrics)")
            design = dict(zip(info.design_names, dv))
            metrics = dict(zip(info.metric_names, mv))
            yield LoggedEval(r[0], r[1], design, metrics, r[4], bool(r[5]), bool(r[6]), bool(r[7]), r[8], r[9])

    def contiguous_prefix(self, run_id: str) -> list[LoggedEval]:
        """Committed rows 0..n-1 with no gap (what a resumed run replays)."""
        out = []
        for i, e in enumerate(self.evals(run_id)):
            if e.step != i:
                break
            out.append(e)
        return out

    # --- export ------------------------------------------------------------------
    def table(self, run_ids: Sequence[str] | None = None) -> tuple[list[str], list[list[Any]]]:
        """All rows of the given runs (default: all) as a header and a list of rows.

        Columns: run_id, env_id, workload, objective, agent, hyperparameters (JSON of the
        values that differ from the agent's defaults), seed, step, every design
        parameter (``p_<name>``), every metric (units in the names), reward,
        feasible, target_met, cached, reason, wall_s.
        """
        infos = [self.run(r) for r in run_ids] if run_ids else self.runs()
        if any(i is None for i in infos):
            missing = [r for r, i in zip(run_ids or [], infos) if i is None]
            raise StoreError(f"no run {missing[0]!r} in {self.path}")
        pnames: list[str] = []
        mnames: list[str] = []
        for i in infos:
            pnames += [n for n in i.design_names if n not in pnames]
            mnames += [n for n in i.metric_names if n not in mnames]
        header = (["run_id", "env_id", "workload", "objective", "agent", "hyperparameters", "seed", "step"]
                  + [f"p_{n}" for n in pnames] + mnames
                  + ["reward", "feasible", "target_met", "cached", "reason", "wall_s"])
        rows = []
        for i in infos:
            head = [i.run_id, i.env_id, i.workload, i.objective_text(), i.agent,
                    json.dumps(i.hyperparameters(), sort_keys=True), i.seed]
            for e in self.evals(i.run_id):
                rows.append(
                    head + [e.step]
                    + [e.design.get(n) for n in pnames] + [e.metrics.get(n, math.nan) for n in mnames]
                    + [e.reward, e.feasible, e.target_met, e.cached, e.reason, e.wall_s]
                )
        return header, rows

    def export(self, out: str | os.PathLike, fmt: str | None = None, run_ids: Sequence[str] | None = None, *,
               force: bool = False) -> tuple[int, str]:
        """Write the :meth:`table` to ``out`` as CSV or Parquet; returns ``(rows, format)``.

        The format comes from ``fmt`` or from the extension (``.csv``, ``.parquet``; anything
        else needs ``fmt``).  Never overwrites a run log (this one or any SQLite file), nor any
        other existing file unless ``force``; the file is written next to its destination and
        renamed into place, so a failed export (disk full) leaves no half-written file.
        """
        out = os.fspath(out)
        if os.path.exists(out):
            if self.path != ":memory:" and os.path.samefile(out, self.path):
                raise StoreError(f"refusing to export onto the run log itself ({out!r})")
            if os.path.isfile(out):
                with open(out, "rb") as f:
                    if f.read(16) == b"SQLite format 3\x00":
                        raise StoreError(f"refusing to overwrite {out!r}: it is an SQLite database (a run log?)")
            if not force:
                raise StoreError(f"{out!r} exists; pass --force to overwrite it")
        if fmt is None:
            ext = os.path.splitext(out)[1]
            fmt = {".csv": "csv", ".parquet": "parquet"}.get(ext)
            if fmt is None:
                raise StoreError(f"cannot tell the export format of {out!r} from its extension {ext or '(none)'!r}; "
                                 "name it .csv or .parquet, or pass --format csv|parquet")
        if fmt not in ("csv", "parquet"):
            raise StoreError(f"export format {fmt!r}; allowed: csv, parquet")
        header, rows = self.table(run_ids)
        direct = os.path.exists(out) and not os.path.isfile(out)   # a device or FIFO: no rename
        tmp = out if direct else os.path.join(os.path.dirname(os.path.abspath(out)),
                                              f".{os.path.basename(out)}.{os.getpid()}.tmp")
        try:
            if fmt == "csv":
                with open(tmp, "w", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(header)
                    w.writerows(rows)
            else:
                _write_parquet(tmp, header, rows)
            if not direct:
                os.replace(tmp, out)
        except OSError as e:
            if not direct and os.path.exists(tmp):
                os.remove(tmp)
            raise StoreError(f"cannot write {out!r}: {e.strerror or e}") from None
        return len(rows), fmt

    def export_csv(self, out: str | os.PathLike, run_ids: Sequence[str] | None = None) -> int:
        """Write the :meth:`table` as CSV (``force=True`` semantics of :meth:`export`); returns the rows."""
        return self.export(out, "csv", run_ids, force=True)[0]

    def export_parquet(self, out: str | os.PathLike, run_ids: Sequence[str] | None = None) -> int:
        """Write the :meth:`table` as Parquet (needs ``pyarrow``: ``pip install archgym[parquet]``)."""
        return self.export(out, "parquet", run_ids, force=True)[0]


def _write_parquet(out: str, header: list[str], rows: list[list[Any]]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise StoreError("Parquet export needs pyarrow: pip install 'archgym[parquet]'") from None
    cols = {h: [r[j] for r in rows] for j, h in enumerate(header)}
    arrays = {}
    for h, vals in cols.items():
        # design parameters may mix ints and strings across runs: keep strings then
        if h.startswith("p_") and len({type(v) for v in vals if v is not None}) > 1:
            vals = [None if v is None else str(v) for v in vals]
        arrays[h] = pa.array(vals)
    pq.write_table(pa.table(arrays), out)


def _run_info(r: Sequence[Any]) -> RunInfo:
    return RunInfo(
        r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], json.loads(r[7]), tuple(json.loads(r[8])),
        tuple(json.loads(r[9])), r[10], r[11],
    )


_BUSY_S = 30.0  # how long a writer waits for another process's transaction (SQLite busy timeout)


def _retry_locked(fn, *, tries: int = 60, wait_s: float = 0.05):
    """``fn()``, retried while SQLite says the database is locked or busy (opening a log that
    another process is creating or switching to WAL can report that without waiting)."""
    for i in range(tries):
        try:
            return fn()
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e) or i == tries - 1:
                raise
            time.sleep(wait_s * (1 + i % 10))
    return None  # pragma: no cover


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


_EXPECTED = {
    "meta": ["key", "value"],
    "runs": ["run_id", "env_id", "workload", "agent", "params", "seed", "budget", "objective", "design_names",
             "metric_names", "created", "finished"],
    "evals": ["run_id", "step", "design", "metrics", "reward", "feasible", "target_met", "cached", "reason", "wall_s"],
}


def _check_schema(conn: sqlite3.Connection, path: str, readonly: bool) -> None:
    tables = _tables(conn)
    if readonly and not {"runs", "evals"} <= tables:
        raise StoreError(f"{path!r} is not an archgym run log (tables: {', '.join(sorted(tables)) or 'none'})")
    for t, cols in _EXPECTED.items():
        if t in tables and _columns(conn, t) != cols:
            raise StoreError(f"{path!r} is not an archgym run log: its table {t!r} has columns "
                             f"{', '.join(_columns(conn, t))}")
    if "meta" in tables:
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is not None and row[0] != str(SCHEMA_VERSION):
            raise StoreError(f"run log {path!r} has schema version {row[0]}; this archgym reads version "
                             f"{SCHEMA_VERSION}")


def _check_file(path: str, readonly: bool) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    exists = os.path.exists(path)
    if exists and os.path.isdir(path):
        raise StoreError(f"run log {path!r} is a directory")
    if readonly:
        if not exists:
            raise StoreError(f"run log {path!r} does not exist")
        if not os.access(path, os.R_OK):
            raise StoreError(f"cannot read run log {path!r}: permission denied")
    else:
        if not os.path.isdir(parent):
            raise StoreError(f"cannot create run log {path!r}: directory {parent!r} does not exist")
        if not os.access(parent, os.W_OK) or (exists and not os.access(path, os.W_OK)):
            raise StoreError(f"cannot write run log {path!r}: permission denied")
    if exists:
        head = b""
        for _ in range(40):  # another process may have just created the log and not yet written its header
            with open(path, "rb") as f:
                head = f.read(16)
            if head:
                break
            time.sleep(0.05)
        if not head:
            raise StoreError(f"run log {path!r} exists and is empty: not an archgym run log (remove it or choose "
                             "another --db)")
        if head != b"SQLite format 3\x00":
            raise StoreError(f"cannot open run log {path!r}: it is not an SQLite database")


def _connect_readonly(path: str) -> sqlite3.Connection:
    """Open an existing log for reading only: works on a read-only file or folder (where SQLite
    cannot create the WAL's shared-memory file, the log is opened as immutable)."""
    from urllib.parse import quote

    uri = "file:" + quote(os.path.abspath(path))
    writable_dir = os.access(os.path.dirname(os.path.abspath(path)), os.W_OK)
    if writable_dir and os.access(path, os.W_OK):
        conn = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=_BUSY_S)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
    conn = sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True)
    conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    return conn
