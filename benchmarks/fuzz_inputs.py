"""Bad input, counted: malformed CLI invocations and invalid Python-API inputs (issue #16).

Every case must end as archgym's contract says: from the CLI one line ``archgym: error: ...``
and exit code 2 (or 0/1 where the input happens to be valid), never a traceback; from the
Python API a ``ValueError`` (``InvalidDesign``, ``WorkloadError``, ``ObjectiveError``, ... are
ValueErrors) naming the bad value, never another exception type, a NaN reported as feasible, or
a negative latency.  Throughout, a run log holding committed rows is passed to every command
and its rows are counted after each one: none may be lost.

    python benchmarks/fuzz_inputs.py [--cli N] [--api N] [--seed S]

Prints the counts (cases tried, tracebacks, other failures, lost rows) that benchmarks/README.md
records; exits 1 if any case broke the contract, listing the first few.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import random
import sqlite3
import sys
import tempfile
import traceback

import numpy as np

BAD_VALUES = ["", "-1", "0", "nan", "inf", "-inf", "1e309", str(2**63), str(2**64), "abc", "1.5", "é", "x" * 5000,
              "/dev/full", "/no/such/dir/f", ".", "..", "__class__", "self", "None", "[1,2]", "{}", "1,2", "=", "==",
              "rows=", "=8", "a=b=c", "'", '"', "\\", "\x00"[:0], "%s", "{0}", "${HOME}"]
ENVS = ["archgym/Systolic-v0", "archgym/BitMoD-v0", "archgym/MatMulFree-v0", "archgym/AgileQuant-v0",
        "archgym/M3ViT-v0", "archgym/Nope-v0", ""]
AGENTS = ["random", "walk", "grid", "ga", "aco", "tpe", "nsga2", "cmaes", "nope"]
FLAGS = {
    "run": ["--agent", "--budget", "--seed", "--workload", "--objective", "--target", "--fix", "--sim-opt", "--batch",
            "--seq-len", "--context-len", "--gen-tokens", "--phase", "--pop-size", "--mutation-prob", "--import"],
    "eval": ["--workload", "--objective", "--target", "--sim-opt", "--batch", "--seq-len", "--phase"],
    "describe": ["--workload", "--sim-opt", "--batch"],
    "optimum": ["--workload", "--objective", "--target", "--fix", "--sim-opt"],
    "export": ["--out", "--format", "--run", "--force"],
    "plot": ["--out", "--run", "--x", "--y"],
    "runs": [],
    "sweep": ["--workers", "--max-runs", "--scheduler", "--dry-run"],
    "envs": [],
}


def _rows(db: str) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT COUNT(*) FROM evals").fetchone()[0]
    finally:
        con.close()


def _cli_case(rng: random.Random, db: str, tmp: str) -> list[str]:
    cmd = rng.choice(list(FLAGS))
    argv = [cmd]
    if cmd in ("run", "eval", "describe", "optimum"):
        argv.append(rng.choice(ENVS))
    if cmd == "sweep":
        spec = os.path.join(tmp, f"spec{rng.randrange(10**9)}.yaml")
        with open(spec, "w") as f:
            f.write(rng.choice([
                "budget: 3\nenvs: [archgym/Systolic-v0]\nagents: [random]\n",
                f"budget: {rng.choice(BAD_VALUES)}\nenvs: [archgym/Systolic-v0]\nagents: [random]\n",
                f"budget: 3\nseeds: {rng.choice(BAD_VALUES)}\nenvs: [archgym/Systolic-v0]\nagents: [random]\n",
                f"budget: 3\nenvs: [{rng.choice(ENVS) or 'x'}]\nagents: [{rng.choice(AGENTS)}]\n",
                "budget: 3\nenvs: [{id: archgym/Systolic-v0, sim_opts: {nope: 1}}]\nagents: [random]\n",
                "budget: 3\nenvs: [archgym/Systolic-v0]\nagents: [{name: ga, grid: {pop_size: [1, 0, -3]}}]\n",
                "- [unbalanced\n", "{" * 200, "\t\x00garbage",
            ]))
        argv.append(spec)
    for _ in range(rng.randrange(0, 4)):
        flags = FLAGS[cmd]
        if not flags:
            break
        flag = rng.choice(flags)
        argv.append(flag)
        if flag not in ("--force", "--dry-run"):
            v = rng.choice(BAD_VALUES + ["8", "ws", "latency_s", "area_mm2<=2", "rows=8", "opt-125m/decode",
                                         "llama-2-7b/prefill?batch=2", "csv", "parquet"])
            argv.append(os.path.join(tmp, "o" + v[:20]) if flag == "--out" and rng.random() < 0.5 else v)
    if cmd in ("run", "export", "plot", "runs", "sweep"):
        argv += ["--db", db if rng.random() < 0.8 else rng.choice(BAD_VALUES)]
    if cmd in ("run",):
        argv.append("--quiet")
        if "--budget" not in argv:
            argv += ["--budget", "3"]
    return argv


def fuzz_cli(n: int, seed: int, db: str, tmp: str) -> dict:
    from archgym.cli import main

    rng = random.Random(seed)
    before = _rows(db)
    stats = {"cases": 0, "tracebacks": 0, "bad_exit": 0, "lost_rows": 0, "exit_codes": {}}
    failures = []
    for _ in range(n):
        argv = _cli_case(rng, db, tmp)
        out, err = io.StringIO(), io.StringIO()
        code = None
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
        except SystemExit as e:  # argparse --help/--version
            code = e.code
        except BaseException:  # noqa: BLE001 - what the CLI must never let out
            stats["tracebacks"] += 1
            failures.append(("traceback", argv, traceback.format_exc().splitlines()[-1]))
        e_text = err.getvalue()
        if code == 2 and (not e_text.startswith("archgym: error: ") or e_text.count("\n") != 1):
            stats["bad_exit"] += 1
            failures.append(("not one line", argv, e_text[:200]))
        if code not in (0, 1, 2, None) or "Traceback" in e_text:
            stats["bad_exit"] += 1
            failures.append(("exit", argv, f"{code} {e_text[:200]}"))
        stats["exit_codes"][code] = stats["exit_codes"].get(code, 0) + 1
        stats["cases"] += 1
        now = _rows(db)
        if now < before:
            stats["lost_rows"] += before - now
            failures.append(("lost rows", argv, f"{before} -> {now}"))
        before = now
    return {**stats, "failures": failures}


def _bad_design_value(rng: random.Random, v):
    return rng.choice([-1, 0, -v if isinstance(v, (int, float)) and not isinstance(v, bool) else -1, math.nan,
                       math.inf, -math.inf, 1e300, 2**70, 1 + 2j, "x", None, [v], True, 0.5, 10**12])


def fuzz_api(n: int, seed: int) -> dict:
    import gymnasium as gym

    import archgym
    from archgym.objective import Objective
    from archgym.runner import make_evaluator
    from archgym.workloads import load_workload

    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    stats = {"cases": 0, "wrong_exception": 0, "silently_wrong": 0}
    failures = []
    evs = {e: make_evaluator(e) for e in archgym.env_ids()}
    envs = {e: gym.make(e) for e in archgym.env_ids()}
    for e in envs.values():
        e.reset(seed=0)

    def check(kind, fn, *args):
        stats["cases"] += 1
        try:
            res = fn(*args)
        except ValueError:
            return
        except Exception as ex:  # noqa: BLE001 - the contract is ValueError only
            stats["wrong_exception"] += 1
            failures.append((kind, repr(args)[:160], f"{type(ex).__name__}: {str(ex)[:120]}"))
            return
        try:
            bad = _silently_wrong(res)
        except Exception as ex:  # noqa: BLE001 - metrics that cannot even be read back
            bad = f"unreadable result: {type(ex).__name__}: {str(ex)[:80]}"
        if bad:
            stats["silently_wrong"] += 1
            failures.append((kind, repr(args)[:160], bad))

    for i in range(n):
        env_id = rng.choice(list(evs))
        ev = evs[env_id]
        sim = ev.simulator
        what = i % 5
        if what == 0:  # a raw design with one bad value
            d = dict(sim.default_design())
            k = rng.choice(list(d))
            d[k] = _bad_design_value(rng, d[k])
            check(f"{env_id} evaluate {k}={d[k]!r}", sim.evaluate, d, ev.workload)
        elif what == 1:  # an action outside the space
            env = envs[env_id]
            a = env.action_space.sample().astype(object)
            j = rng.randrange(len(a))
            a[j] = rng.choice([-1, 10**6, 0.5, math.nan, "x", None, 2**70])
            check(f"{env_id} step", env.step, list(a))
        elif what == 2:  # batched indices outside the grid
            idx = ev.space.sample_indices(nrng, 4)
            idx[rng.randrange(4), rng.randrange(idx.shape[1])] = rng.choice([-1, -100, 10**6])
            check(f"{env_id} evaluate_batch", sim.evaluate_batch, idx, ev.workload)
        elif what == 3:  # objective text
            text = "".join(rng.choice(["latency_s", "energy_j", "*", "^", "max:", "min:", "2", "-", " ", "x", "^0",
                                       "area", "/", "nan", "inf"]) for _ in range(rng.randrange(1, 6)))
            check(f"objective {text!r}", Objective.parse, text, [rng.choice(["area_mm2<=2", "x<=1", "latency_s>=nan",
                                                                             "latency_s<=-1", "latency_s<"])])
        else:  # workload text
            text = rng.choice(["llama-2-7b/prefill", "opt-125m", "gpt-9", "", "m3vit-vit-s/pascal", "x.csv",
                               "/dev/null", "."]) + rng.choice(["", "?batch=0", "?seq_len=-1", "?batch=2", "?zz=1",
                                                                "?batch=1e9", "?phase=train", "?dim.x=3", "?sha256=0"])
            check(f"workload {text!r}", load_workload, text)
    return {**stats, "failures": failures}


def _silently_wrong(res) -> str:
    from archgym.metrics import Metrics

    m = res
    if isinstance(res, tuple) and res and isinstance(res[-1], dict):  # env.step
        return ""
    if isinstance(m, Metrics) and m.feasible:
        for name in ("latency_s", "energy_j", "area_mm2", "power_w"):
            v = m.get(name)
            if isinstance(v, complex) or (v == v and (v < 0 or math.isinf(v))):
                return f"feasible with {name}={v}"
        if all(not (m.get(n) == m.get(n)) for n in ("latency_s",)) and m.cycles is None:
            return "feasible with nothing modelled"
    return ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cli", type=int, default=400, help="malformed CLI invocations")
    ap.add_argument("--api", type=int, default=2000, help="invalid Python-API inputs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    from archgym.runner import run
    from archgym.store import RunStore

    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "log.db")
        with RunStore(db) as st:
            run("archgym/Systolic-v0", "random", 50, seed=1, store=st)
        cwd = os.getcwd()
        os.chdir(tmp)  # files a case may write (runs.db, exports) land in the scratch folder
        try:
            cli = fuzz_cli(args.cli, args.seed, db, tmp)
        finally:
            os.chdir(cwd)
    api = fuzz_api(args.api, args.seed)
    print(f"CLI: {cli['cases']} malformed invocations: {cli['tracebacks']} tracebacks, {cli['bad_exit']} not one "
          f"line / bad exit code, {cli['lost_rows']} logged rows lost; exit codes {dict(sorted(cli['exit_codes'].items(), key=str))}")
    print(f"API: {api['cases']} invalid inputs: {api['wrong_exception']} raised something other than ValueError, "
          f"{api['silently_wrong']} silently wrong results")
    bad = cli["failures"] + api["failures"]
    for f in bad[:15]:
        print("  ", *f)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
