"""The ``archgym`` command line.

Bad input (unknown env id, agent, parameter or hyperparameter; a value outside
the space; a malformed objective, target or spec; an unwritable run log) prints
one line ``archgym: error: ...`` to stderr and exits with code 2.  Rows already
committed to the run log are never lost: the log is flushed on every exit path.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from typing import Any, Sequence

__all__ = ["main"]

EXIT_USAGE = 2


class CliError(Exception):
    """A user-input error reported as one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage + error)
        raise CliError(f"{self.prog}: {message}")


def _parse_assignments(items: Sequence[str], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        for part in item.split(","):
            if not part.strip():
                continue
            k, sep, v = part.partition("=")
            if not sep or not k.strip():
                raise CliError(f"malformed {what} {part!r}; expected name=value")
            out[k.strip()] = _auto(v.strip())
    return out


def _auto(v: str) -> Any:
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    return v


def _known_errors() -> tuple[type[BaseException], ...]:
    from .agent import BadHyperparameter, UnknownAgent
    from .objective import ObjectiveError
    from .space import InvalidDesign
    from .store import StoreError

    return (CliError, InvalidDesign, UnknownAgent, BadHyperparameter, ObjectiveError, StoreError, ValueError,
            FileNotFoundError, PermissionError, IsADirectoryError)


# --- commands --------------------------------------------------------------------------
def cmd_envs(args: argparse.Namespace) -> int:
    import archgym
    from archgym.simulator import load_simulator

    print(f"{'env id':<24} {'designs':>12}  {'default workload':<26} description")
    for env_id in archgym.env_ids():
        spec = archgym.spec_of(env_id)
        try:
            size = f"{load_simulator(spec.simulator, **spec.simulator_kwargs).design_space().size:,}"
        except ImportError as e:  # an optional dependency of one simulator is missing
            size = f"n/a ({e.name})"
        print(f"{env_id:<24} {size:>12}  {spec.workload or '-':<26} {spec.description}")
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from .runner import make_evaluator

    ev = make_evaluator(args.env_id, workload=args.workload, simulator_kwargs=_parse_assignments(args.sim_opt, "--sim-opt"))
    sim = ev.simulator
    print(f"{args.env_id}: {type(sim).__name__}")
    print(f"reference: {sim.reference}")
    print(f"workloads: {', '.join(sim.workloads())}")
    print(f"default objective: {ev.objective.describe()}")
    print(ev.space.describe())
    print("default design: " + ", ".join(f"{k}={v}" for k, v in ev.default_design.items()))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .runner import make_evaluator

    ev = make_evaluator(args.env_id, workload=args.workload, objective=_objective(args),
                        simulator_kwargs=_parse_assignments(args.sim_opt, "--sim-opt"))
    design = {**ev.default_design, **_parse_assignments(args.design, "design assignment")}
    e = ev.evaluate(design)
    print("design: " + ", ".join(f"{k}={v}" for k, v in e.design.items()))
    print(f"workload: {ev.workload}; objective: {ev.objective.describe()}; reward {e.reward:.6f}"
          + (f"; targets met: {e.target_met}" if ev.objective.targets else ""))
    print(e.metrics.summary())
    return 0


def _objective(args: argparse.Namespace):
    from .objective import Objective

    if getattr(args, "objective", None) is None and not getattr(args, "target", None):
        return None
    if args.objective is None:
        from .registry import spec_of

        spec = spec_of(args.env_id).objective
        base = spec if isinstance(spec, str) else (spec or {}).get("spec")
        return Objective.parse(base, args.target)
    return Objective.parse(args.objective, args.target or ())


def cmd_run(args: argparse.Namespace, agent_params: dict[str, Any]) -> int:
    from .registry import spec_of
    from .runner import Progress, run
    from .store import RunStore

    spec_of(args.env_id)
    if args.budget < 1:
        raise CliError(f"--budget {args.budget}: must be >= 1")
    objective = _objective(args)
    sim_kwargs = _parse_assignments(args.sim_opt, "--sim-opt")
    fixed = _parse_assignments(args.fix, "--fix")
    store = RunStore(args.db)
    try:
        progress = None if args.quiet else Progress(args.budget, label=f"{args.agent}")
        res = run(
            args.env_id, args.agent, args.budget, seed=args.seed, params=agent_params, store=store,
            workload=args.workload, objective=objective, simulator_kwargs=sim_kwargs, fixed=fixed or None,
            progress=progress,
        )
    finally:
        store.close()
    print(res.summary())
    print(f"run log: {args.db} (run id {res.run_id})")
    return 0


def _existing_store(db: str):
    """Open a run log that must already exist (export/plot/runs never create one)."""
    import os

    from .store import RunStore, StoreError

    if not os.path.exists(db):
        raise StoreError(f"run log {db!r} does not exist")
    return RunStore(db)


def cmd_export(args: argparse.Namespace) -> int:
    fmt = args.format or ("parquet" if args.out.endswith(".parquet") else "csv")
    if fmt not in ("csv", "parquet"):
        raise CliError(f"--format {fmt!r}; allowed: csv, parquet")
    with _existing_store(args.db) as st:
        n = st.export_parquet(args.out, args.run) if fmt == "parquet" else st.export_csv(args.out, args.run)
    print(f"wrote {n} rows to {args.out} ({fmt})")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .plots import plot_runs

    with _existing_store(args.db) as st:
        out = plot_runs(st, args.out, run_ids=args.run, x=args.x, y=args.y)
    print(f"wrote {out}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    with _existing_store(args.db) as st:
        print(f"{'run id':<13} {'env':<22} {'agent':<8} {'seed':>4} {'rows':>7} {'budget':>7} {'best reward':>11} finished")
        for r in st.runs():
            best = st.conn.execute("SELECT MAX(reward) FROM evals WHERE run_id=? AND feasible=1",
                                   (r.run_id,)).fetchone()[0]
            print(f"{r.run_id:<13} {r.env_id:<22} {r.agent:<8} {r.seed:>4} {st.count(r.run_id):>7} {r.budget:>7} "
                  f"{(best if best is not None else math.nan):>11.6f} {'yes' if r.finished else 'no'}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .executors import make_executor
    from .sweep import expand, load_spec, run_sweep

    if args.workers is not None and args.workers < 0:
        raise CliError(f"--workers {args.workers}: must be >= 0 (0 = run inline)")
    spec = load_spec(args.spec)
    tasks = expand(spec)
    if args.dry_run:
        for t in tasks:
            print(f"{t.run_id}  {t.label()}  budget {t.budget}")
        print(f"{len(tasks)} runs")
        return 0
    say = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    with make_executor(scheduler=args.scheduler, workers=args.workers) as executor:
        if say:
            say(f"sweep {spec.name!r}: {len(tasks)} runs on {executor.describe()}")
        report = run_sweep(spec, db=args.db, executor=executor, tasks=tasks, progress=say)
    print(report.summary())
    return 1 if report.failed else 0


def cmd_rtl(args: argparse.Namespace) -> int:
    """``rtl emit`` writes a datapath's Verilog; ``rtl check`` cosimulates it (exit 1 on a mismatch)."""
    from . import rtl

    raw = _parse_assignments(args.param, "--param")
    if args.rtl_cmd == "emit":
        print(f"wrote {rtl.emit(args.datapath, raw, args.out)}")
        return 0
    from rtl_models.cosim import SimulatorError

    try:
        rep = rtl.check(args.datapath, raw, vectors=args.vectors, seed=args.seed, simulator=args.simulator,
                        verilog=args.verilog)
    except SimulatorError as e:
        raise CliError(str(e).splitlines()[0]) from None
    if rep.mismatch is not None:
        print(rep.mismatch.format())
    print(rep.summary())
    return 0 if rep.passed else 1


def _add_rtl_parser(sub) -> None:
    from .rtl import DATAPATHS

    rt = sub.add_parser("rtl", help="emit a datapath's Verilog or cosimulate it against its Python model")
    rsub = rt.add_subparsers(dest="rtl_cmd", required=True, parser_class=_Parser)
    for name, what in (("emit", "write synthesizable Verilog (.v) into --out"),
                       ("check", "run the Verilog in a Verilog simulator against the Python model")):
        c = rsub.add_parser(name, help=what)
        c.add_argument("datapath", help=f"one of: {', '.join(DATAPATHS)}")
        c.add_argument("--param", action="append", default=[], metavar="K=V",
                       help="build parameter, e.g. rows=8 (repeatable)")
        if name == "emit":
            c.add_argument("--out", required=True, help="output directory")
        else:
            c.add_argument("--vectors", type=int, default=10_000, help="random vectors (default: 10000)")
            c.add_argument("--seed", type=int, default=0)
            c.add_argument("--simulator", default="verilator", help="verilator (default) or icarus")
            c.add_argument("--verilog", help="check this Verilog file instead of the generated one")


# --- parser ------------------------------------------------------------------------------
def _add_env_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("env_id", help="a registered env id (see `archgym envs`)")
    p.add_argument("--workload", help="workload name (default: the env's)")
    p.add_argument("--sim-opt", action="append", default=[], metavar="K=V",
                   help="simulator constructor option, e.g. mode=scalesim (repeatable)")


def _add_objective_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--objective", help="metrics to minimise, e.g. latency_s, energy_j*latency_s, max:throughput_per_s")
    p.add_argument("--target", action="append", default=[], metavar="METRIC<=V",
                   help="a target, e.g. 'area_mm2<=2' (repeatable)")


def build_parser(agent: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser; with ``agent``, ``run`` also takes that agent's hyperparameters."""
    p = _Parser(prog="archgym", description="Gymnasium environments for accelerator design-space exploration.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    sub.add_parser("envs", help="list registered env ids with their design-space size")
    d = sub.add_parser("describe", help="show an env's design space, workloads and default design")
    _add_env_opts(d)
    e = sub.add_parser("eval", help="evaluate one design (unspecified parameters take the default)")
    _add_env_opts(e)
    _add_objective_opts(e)
    e.add_argument("design", nargs="*", metavar="PARAM=VALUE")
    r = sub.add_parser("run", help="run a search agent for a budget of evaluations, logging every one")
    _add_env_opts(r)
    _add_objective_opts(r)
    r.add_argument("--agent", default="random", help="agent name (default: random)")
    r.add_argument("--budget", type=int, default=200, help="number of evaluations (default: 200)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--db", default="runs.db", help="SQLite run log (default: runs.db)")
    r.add_argument("--fix", action="append", default=[], metavar="PARAM=VALUE",
                   help="pin a design parameter; the agent searches the rest (repeatable)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    if agent is not None:
        _add_agent_options(r, agent)
    x = sub.add_parser("export", help="export the run log to CSV or Parquet")
    x.add_argument("--db", default="runs.db")
    x.add_argument("--out", required=True, help="output file (.csv or .parquet)")
    x.add_argument("--format", choices=None, help="csv or parquet (default: from the file name)")
    x.add_argument("--run", action="append", help="only these run ids (repeatable)")
    pl = sub.add_parser("plot", help="PNG: best-so-far curves and a metric-vs-metric Pareto scatter")
    pl.add_argument("--db", default="runs.db")
    pl.add_argument("--out", default="archgym_runs.png")
    pl.add_argument("--run", action="append", help="only these run ids (repeatable)")
    pl.add_argument("--x", help="x metric (default: first objective metric)")
    pl.add_argument("--y", help="y metric")
    rs = sub.add_parser("runs", help="list the runs in a run log")
    rs.add_argument("--db", default="runs.db")
    sw = sub.add_parser("sweep", help="run envs x agents x hyperparameter grids x seeds from a YAML spec")
    sw.add_argument("spec", help="sweep spec (YAML); see archgym.sweep")
    sw.add_argument("--db", help="run log (default: the spec's db, else runs.db); completed runs are skipped")
    sw.add_argument("--workers", type=int, default=None, help="local worker processes (default: CPU count; 0 = inline)")
    sw.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run on this Dask scheduler instead")
    sw.add_argument("--dry-run", action="store_true", help="list the expanded runs and exit")
    sw.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    _add_rtl_parser(sub)
    return p


def _bool(text: str) -> bool:
    t = text.lower()
    if t in ("true", "1", "yes"):
        return True
    if t in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid bool value: {text!r} (use true/false)")


_HP_TYPES = {"int": int, "float": float, "str": str, "bool": _bool}


def _add_agent_options(run_parser: argparse.ArgumentParser, agent: str) -> None:
    """Each field of the agent's ``Params`` dataclass becomes a typed ``--option`` of ``run``."""
    from .agent import agent_class

    fields = dataclasses.fields(agent_class(agent).Params)
    if not fields:
        return
    group = run_parser.add_argument_group(f"hyperparameters of agent {agent!r}")
    for f in fields:
        name = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "str")
        group.add_argument("--" + f.name.replace("_", "-"), dest="hp_" + f.name, type=_HP_TYPES.get(name, str),
                           default=None, metavar=f.name.upper(),
                           help=f"{f.metadata.get('help', '')} (default: {f.default})")


def _agent_in(argv: list[str]) -> str:
    agent = "random"
    for i, a in enumerate(argv):
        if a == "--agent" and i + 1 < len(argv):
            agent = argv[i + 1]
        elif a.startswith("--agent="):
            agent = a.split("=", 1)[1]
    return agent


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``archgym`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        agent = _agent_in(argv) if argv and argv[0] == "run" else None
        args = build_parser(agent).parse_args(argv)
        if args.cmd == "run":
            params = {k[3:]: v for k, v in vars(args).items() if k.startswith("hp_") and v is not None}
            return cmd_run(args, params)
        return {"envs": cmd_envs, "describe": cmd_describe, "eval": cmd_eval, "export": cmd_export,
                "plot": cmd_plot, "runs": cmd_runs, "sweep": cmd_sweep, "rtl": cmd_rtl}[args.cmd](args)
    except KeyboardInterrupt:
        print("archgym: interrupted; committed rows are kept, rerun the same command to resume", file=sys.stderr)
        return 130
    except _known_errors() as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"archgym: error: {msg}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
