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
import os
import sys
import time
from typing import Any, Sequence

_T0 = time.perf_counter()  # the command's start, for the "in all" wall time

__all__ = ["main"]

EXIT_USAGE = 2


class CliError(Exception):
    """A user-input error reported as one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage + error)
        sub = self.prog.removeprefix("archgym").strip()   # main() already says "archgym: error:"
        if message.startswith("unrecognized arguments:") and "=" in message:
            message += ("  (a design is given as NAME=VALUE to 'archgym eval'; to pin a parameter of a search "
                        "use --fix NAME=VALUE)")
        if message == "the following arguments are required: cmd":
            cmds = next((a.choices for a in self._actions if isinstance(a, argparse._SubParsersAction)), {})
            message = f"a command is required: {', '.join(cmds)} (archgym COMMAND --help for each)"
        raise CliError(f"{sub}: {message}" if sub else message)


def _parse_assignments(items: Sequence[str], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    raw: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            if not part.strip():
                continue
            k, sep, v = part.partition("=")
            k = k.strip()
            if not sep or not k:
                raise CliError(f"malformed {what} {part!r}; expected name=value")
            if not k.isidentifier() or k.startswith("_"):
                raise CliError(f"malformed {what} {part!r}: {k!r} is not a parameter name")
            if k in raw:
                raise CliError(f"{what} {k} is given twice ({k}={raw[k]} and {k}={v.strip()}); give it once")
            raw[k] = v.strip()
            out[k] = _auto(v.strip())
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
    from .optimum import NoExactMethod  # noqa: F401 - a ValueError, listed for the record
    from .space import InvalidDesign
    from .store import StoreError

    return (CliError, InvalidDesign, UnknownAgent, BadHyperparameter, ObjectiveError, StoreError, ValueError,
            FileNotFoundError, PermissionError, IsADirectoryError)


# --- commands --------------------------------------------------------------------------
def cmd_envs(args: argparse.Namespace) -> int:
    import archgym
    from archgym.simulator import load_simulator

    rows = []
    errors = archgym.plugin_errors()
    for env_id in archgym.env_ids():
        spec = archgym.spec_of(env_id)
        try:
            size = f"{load_simulator(spec.simulator, **spec.simulator_kwargs).design_space().size:,}"
        except ImportError as e:  # an optional dependency of one simulator is missing
            size = f"n/a ({e.name})"
        rows.append((env_id, size, spec.workload or "-", spec.description))
    w = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(("env id", "designs", "default workload"))]
    print(f"{'env id':<{w[0]}}  {'designs':>{w[1]}}  {'default workload':<{w[2]}}  description")
    for env_id, size, workload, description in rows:
        print(f"{env_id:<{w[0]}}  {size:>{w[1]}}  {workload:<{w[2]}}  {description}")
    for name, err in errors.items():
        print(f"plugin {name!r} failed to load: {err}")
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from .runner import make_evaluator

    ev = make_evaluator(args.env_id, workload=args.workload, simulator_kwargs=_parse_assignments(args.sim_opt, "--sim-opt"),
                        workload_params=_workload_params(args))
    sim = ev.simulator
    print(f"{args.env_id}: {type(sim).__name__}")
    print(f"reference: {sim.reference}")
    print(f"workload: {ev.workload.spec} ({len(ev.workload.layers)} layers, {ev.workload.macs:,} MACs)")
    print(f"accepts: {sim.accepts}")
    print(f"known workloads: {', '.join(sim.workloads())}")
    print(f"default objective: {ev.objective.describe()}")
    print(ev.space.describe())
    print("default design: " + ", ".join(f"{k}={v}" for k, v in ev.default_design.items()))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .runner import make_evaluator

    ev = make_evaluator(args.env_id, workload=args.workload, objective=_objective(args),
                        simulator_kwargs=_parse_assignments(args.sim_opt, "--sim-opt"),
                        workload_params=_workload_params(args))
    design = {**ev.default_design, **_parse_assignments(args.design, "design assignment")}
    e = ev.evaluate(design)
    print("design: " + ", ".join(f"{k}={v}" for k, v in e.design.items()))
    print(f"workload: {ev.workload.spec}; objective: {ev.objective.describe()}; reward {e.reward:.6f}"
          + (f"; targets met: {e.target_met}" if ev.objective.targets else ""))
    print(e.metrics.summary())
    if args.layers:
        print(_breakdown_table(e.metrics.breakdown))
    return 0


def _breakdown_table(breakdown) -> str:
    """``Metrics.breakdown`` as a table: layers first, then ``unit:`` entries; numeric values
    in columns (units in the names), anything else (a chosen mapping) as text at the end."""
    if not breakdown:
        return "(this simulator reports no per-layer breakdown)"
    rows = sorted(breakdown.items(), key=lambda kv: kv[0].startswith("unit:"))
    cols: list[str] = []
    for _, d in rows:
        cols += [k for k, v in d.items() if isinstance(v, (int, float)) and k not in cols]
    head = ["layer", *cols, "notes"]

    def fmt(v):
        if isinstance(v, float) and v == v and v.is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:.4g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)

    table = [[name, *(fmt(d[c]) if c in d else "" for c in cols),
              "; ".join(f"{k}={v}" for k, v in d.items() if k not in cols)] for name, d in rows]
    widths = [max(len(h), *(len(r[j]) for r in table)) for j, h in enumerate(head)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *table])


def _workload_params(args: argparse.Namespace) -> dict[str, Any]:
    if args.workload is not None and not args.workload.strip():
        raise CliError("--workload is empty; give a workload name or file (see `archgym describe ENV`)")
    return {k: v for k, v in (("phase", args.phase), ("batch", args.batch), ("seq_len", args.seq_len),
                              ("context_len", args.context_len), ("gen_tokens", args.gen_tokens)) if v is not None}


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


def cmd_optimum(args: argparse.Namespace) -> int:
    from .metrics import format_metric
    from .optimum import can_enumerate, descent_basins, exhaustive, optimum
    from .runner import make_evaluator

    ev = make_evaluator(args.env_id, workload=args.workload, objective=_objective(args),
                        simulator_kwargs=_parse_assignments(args.sim_opt, "--sim-opt"),
                        fixed=_parse_assignments(args.fix, "--fix") or None, workload_params=_workload_params(args))
    land = None
    if args.landscape and can_enumerate(ev):  # every design's cost, for the local-search landscape
        o = exhaustive(ev, keep_costs=True)
        land = descent_basins(o.costs, ev.space.nvec).describe()
    else:
        o = optimum(ev)
    e = ev.evaluate(o.design)
    print(f"{args.env_id} on {ev.workload.spec}: {ev.objective.describe()}")
    print(f"exact optimum: reward {o.reward:.6f}, cost {o.cost:.6g}"
          + (f"; targets met: {e.target_met}" if ev.objective.targets else ""))
    print("design: " + ", ".join(f"{k}={v}" for k, v in o.design.items()))
    print("  " + e.metrics.summary().replace("\n", "\n  "))
    print(f"how: {o.method}")
    if args.landscape:
        print("landscape: " + (land or f"not computed: the {ev.space.size:,} designs are too many to enumerate"))
    return 0


def cmd_run(args: argparse.Namespace, agent_params: dict[str, Any]) -> int:
    from .registry import spec_of
    from .runner import Progress, run
    from .store import RunStore

    from .agent import check_seed
    from .runner import check_budget

    spec_of(args.env_id)
    check_budget(args.budget, "--budget")
    check_seed(args.seed, "--seed")
    objective = _objective(args)
    sim_kwargs = _parse_assignments(args.sim_opt, "--sim-opt")
    fixed = _parse_assignments(args.fix, "--fix")
    store = RunStore(args.db)
    try:
        progress = None if args.quiet else Progress(args.budget, label=f"{args.agent}")
        res = run(
            args.env_id, args.agent, args.budget, seed=args.seed, params=agent_params, store=store,
            workload=args.workload, objective=objective, simulator_kwargs=sim_kwargs, fixed=fixed or None,
            workload_params=_workload_params(args), progress=progress,
        )
    finally:
        store.close()
    print(res.summary())
    print(f"run log: {args.db} (run id {res.run_id}); the command took {time.perf_counter() - _T0:.2f} s in all "
          "(imports and start-up included)")
    return 0


def _existing_store(db: str):
    """Open a run log that must already exist, read-only (export/plot/runs never write one)."""
    from .store import RunStore

    return RunStore(db, readonly=True)


def cmd_export(args: argparse.Namespace) -> int:
    with _existing_store(args.db) as st:
        n, fmt = st.export(args.out, args.format, args.run, force=args.force)
    print(f"wrote {n} rows to {args.out} ({fmt})")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .plots import plot_runs

    out = args.out
    ext = os.path.splitext(out)[1].lower()
    if not ext:
        out += ".png"
    elif ext not in (".png", ".pdf", ".svg"):
        raise CliError(f"--out {args.out!r}: unknown image type {ext!r}; allowed: .png, .pdf, .svg")
    with _existing_store(args.db) as st:
        out = plot_runs(st, out, run_ids=args.run, x=args.x, y=args.y)
    print(f"wrote {out}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    with _existing_store(args.db) as st:
        rows = []
        for r in st.runs():
            best = st.conn.execute("SELECT MAX(reward) FROM evals WHERE run_id=? AND feasible=1",
                                   (r.run_id,)).fetchone()[0]
            hp = ",".join(f"{k}={v}" for k, v in r.hyperparameters().items())
            rows.append((r.run_id, r.env_id, r.workload, r.objective_text(), r.agent, hp or "-", str(r.seed),
                         f"{st.count(r.run_id)}/{r.budget}", "-" if best is None else f"{best:.6f}",
                         "yes" if r.finished else "no"))
        head = ("run id", "env", "workload", "objective", "agent", "hyperparameters", "seed", "rows", "best reward",
                "finished")
        widths = [max(len(h), *(len(x[j]) for x in rows)) if rows else len(h) for j, h in enumerate(head)]
        for line in [head, *rows]:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .executors import make_executor
    from .sweep import expand, load_spec, run_sweep

    if args.workers is not None and args.workers < 0:
        raise CliError(f"--workers {args.workers}: must be >= 0 (0 = run inline)")
    if args.max_runs < 1:
        raise CliError(f"--max-runs {args.max_runs}: must be >= 1")
    spec = load_spec(args.spec, max_runs=args.max_runs)
    if args.imports:  # the workers import them too
        spec = dataclasses.replace(spec, imports=tuple(dict.fromkeys((*spec.imports, *args.imports))))
    tasks = expand(spec)
    if args.dry_run:
        for t in tasks:
            print(f"{t.run_id}  {t.label()}  budget {t.budget}")
        print(f"{len(tasks)} runs")
        return 0
    say = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    with make_executor(scheduler=args.scheduler, workers=args.workers) as executor:
        if say:
            say(f"sweep {spec.name!r}: {len(tasks)} runs on {executor.describe()}; run log "
                f"{os.path.abspath(args.db or spec.db or 'runs.db')}")
        report = run_sweep(spec, db=args.db, executor=executor, tasks=tasks, progress=say)
    print(report.summary())
    return 1 if report.failed else 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .validate import validate

    report = validate(args.kernel, args.datapath, cases=args.cases, seed=args.seed, shrink=args.shrink,
                      progress=False if args.quiet else "auto", **_parse_assignments(args.opt, "--opt"))
    print(report.summary())
    return report.exit_code


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
    p.add_argument("--workload", metavar="NAME|FILE",
                   help="a zoo name (llama-2-7b/prefill), a SCALE-Sim topology .csv, a Hugging Face config.json, "
                        "an .onnx graph, optionally with ?key=value parameters (default: the env's)")
    g = p.add_argument_group("workload parameters (override the env's defaults; also as ?key=value in --workload)")
    g.add_argument("--phase", help="prefill, decode or generative (decoder LLMs)")
    g.add_argument("--batch", type=int, help="sequences or images per inference")
    g.add_argument("--seq-len", type=int, help="prefill tokens per sequence")
    g.add_argument("--context-len", type=int, help="decode: KV-cache length attended over (priced in attention)")
    g.add_argument("--gen-tokens", type=int, help="generative phase: decode steps after the prefill")
    p.add_argument("--sim-opt", action="append", default=[], metavar="K=V",
                   help="simulator constructor option, e.g. mode=scalesim (repeatable)")


def _add_objective_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--objective", help="metrics to minimise, e.g. latency_s, energy_j*latency_s, max:throughput_per_s")
    p.add_argument("--target", action="append", default=[], metavar="METRIC<=V",
                   help="a target, e.g. 'area_mm2<=2' (repeatable)")


def build_parser(agent: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser; with ``agent``, ``run`` also takes that agent's hyperparameters."""
    from . import __version__
    from .agent import AGENTS

    imp = dict(action="append", default=[], metavar="MODULE",
               help="import a module that registers envs (installed or on PYTHONPATH; repeatable)")
    common = argparse.ArgumentParser(add_help=False)
    # its own dest: a subparser's default would otherwise overwrite what was given before the command
    common.add_argument("--import", dest="imports_after", **imp)
    p = _Parser(prog="archgym", description="Gymnasium environments for accelerator design-space exploration.")
    p.add_argument("--import", dest="imports", **imp)
    p.add_argument("--version", action="version", version=f"archgym {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    _add = sub.add_parser
    sub.add_parser = lambda *a, **k: _add(*a, parents=[common], **k)  # --import before or after the command
    sub.add_parser("envs", help="list registered env ids with their design-space size")
    d = sub.add_parser("describe", help="show an env's design space, workloads and default design")
    _add_env_opts(d)
    e = sub.add_parser("eval", help="evaluate one design (unspecified parameters take the default)")
    _add_env_opts(e)
    _add_objective_opts(e)
    e.add_argument("design", nargs="*", metavar="PARAM=VALUE")
    e.add_argument("--layers", action="store_true", help="also print the per-layer breakdown (cycles, latency, "
                                                         "energy, the chosen mapping, ...)")
    r = sub.add_parser("run", help="run a search agent for a budget of evaluations, logging every one")
    _add_env_opts(r)
    _add_objective_opts(r)
    r.add_argument("--agent", default="random", help=f"one of: {', '.join(AGENTS)} (default: random; "
                                                       "`archgym run ENV --agent NAME --help` lists its options)")
    r.add_argument("--budget", type=int, default=200, help="number of evaluations (default: 200)")
    r.add_argument("--seed", type=int, default=0, help="0..4294967295 (default: 0)")
    r.add_argument("--db", default="runs.db", help="SQLite run log (default: runs.db)")
    r.add_argument("--fix", action="append", default=[], metavar="PARAM=VALUE",
                   help="pin a design parameter; the agent searches the rest (repeatable)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    if agent is not None:
        _add_agent_options(r, agent)
    o = sub.add_parser("optimum", help="the exact optimum of an env's objective and how it was found")
    _add_env_opts(o)
    _add_objective_opts(o)
    o.add_argument("--fix", action="append", default=[], metavar="PARAM=VALUE",
                   help="pin a design parameter; the optimum is over the rest (repeatable)")
    o.add_argument("--landscape", action="store_true",
                   help="also enumerate every design and report how hard the space is for local search: its local "
                        "minima under one-parameter moves and the share of designs whose steepest descent ends "
                        "within 1%% of the optimum")
    x = sub.add_parser("export", help="export the run log to CSV or Parquet")
    x.add_argument("--db", default="runs.db")
    x.add_argument("--out", required=True, help="output file (.csv or .parquet)")
    x.add_argument("--format", help="csv or parquet (default: from the extension .csv/.parquet)")
    x.add_argument("--force", action="store_true", help="overwrite an existing file (never a run log)")
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
    sw.add_argument("--max-runs", type=int, default=100_000,
                    help="refuse a spec that expands to more runs than this (default: 100,000)")
    sw.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    v = sub.add_parser("validate", help="check a kernel bit-exactly against a datapath model (exit 1 on a mismatch)")
    v.add_argument("datapath", help="systolic-int, bitmod, smmw-w4a8, smmw-w4a4, ternary-bitlinear or moe-fixed")
    v.add_argument("--kernel", required=True, metavar="MODULE:FUNCTION",
                   help="the kernel; MODULE is imported from sys.path, else from the current directory")
    v.add_argument("--cases", type=int, default=1000, help="number of seeded cases (default: 1000)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="datapath option, e.g. acc_bits=20 (repeatable; see docs/validate.md)")
    v.add_argument("--shrink", type=int, default=3, help="failing cases to shrink (default: 3)")
    v.add_argument("--quiet", action="store_true", help="no progress bar")
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
        parser = build_parser(agent)
        args, extra = parser.parse_known_args(argv)
        if extra:
            # `eval ENV --workload x.csv rows=8`: argparse gives a nargs='*' positional only the
            # words before the first option, so design assignments after options come back here
            if args.cmd == "eval" and all("=" in e and not e.startswith("-") for e in extra):
                args.design = [*args.design, *extra]
            else:
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
        from .registry import import_module

        args.imports = [*args.imports, *getattr(args, "imports_after", [])]
        for m in args.imports:
            import_module(m)
        if args.cmd == "run":
            params = {k[3:]: v for k, v in vars(args).items() if k.startswith("hp_") and v is not None}
            return cmd_run(args, params)
        return {"envs": cmd_envs, "describe": cmd_describe, "eval": cmd_eval, "export": cmd_export,
                "optimum": cmd_optimum, "plot": cmd_plot, "runs": cmd_runs, "sweep": cmd_sweep,
                "validate": cmd_validate, "rtl": cmd_rtl}[args.cmd](args)
    except KeyboardInterrupt:
        print("archgym: interrupted; committed rows are kept, rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `archgym runs | head`: the reader went away; not an error of ours
        _silence_stdout()
        return 141
    except _known_errors() as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"archgym: error: {msg}", file=sys.stderr)
        return EXIT_USAGE


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
