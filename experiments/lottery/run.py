"""ArchGym's hyperparameter lottery, reproduced on our envs as one command.

Run:  python experiments/lottery/run.py [--workers N | --scheduler tcp://host:port] [--quick]
(``--quick`` is a smoke test that writes to ``experiments/lottery/quick/``, never over ``results/``)

1. Runs the sweep of ``spec.yaml`` (every agent over its hyperparameter grid
   and seeds at one fixed budget) into ``results/lottery.db``; a rerun skips
   the runs already complete, so an interrupted study resumes.
2. Finds every env's exact optimum with ``archgym.optimum.optimum`` (exhaustive
   batched evaluation where the space can be enumerated, the simulator's own exact
   method otherwise, e.g. AgileQuant-v0's branch and bound), cached in
   ``results/optima.json``.  An env with no exact method falls back to the best
   design of all runs (marked "best known").
3. Writes ``results/lottery.md`` (the table), ``results/lottery_runs.csv``
   (one row per run) and three figures: ``box.png`` (final quality per run, per
   agent), ``curves.png`` (best-so-far quality, median and inter-quartile band
   over hyperparameters x seeds) and ``pareto.png`` (the exact Pareto front of
   two metrics vs the designs each agent evaluated).

Quality of a design = optimum cost / its cost (1 = optimal; 0 when infeasible
or missing a target), where cost is the objective's weighted product
(``energy_j*latency_s`` ...).  The reward (``ref/(ref+cost)``) squashes good
designs toward 1, so the table reports the gap in cost: ``1/quality - 1``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np

from archgym.executors import make_executor
from archgym.objective import Objective
from archgym.plots import pareto_mask
from archgym.store import RunStore
from archgym.optimum import NoExactMethod, can_enumerate, exhaustive, optimum
from archgym.sweep import evaluator_for, expand, load_spec, run_sweep

HERE = Path(__file__).resolve().parent


def env_key(entry) -> str:
    return json.dumps([entry.id, entry.workload, entry.objective, list(entry.targets), dict(entry.fixed),
                       dict(entry.sim_opts)], sort_keys=True)


def front_metrics(metric_names) -> tuple[str, str]:
    """Two metrics with a real trade-off for the Pareto plot (both minimised)."""
    for pair in (("latency_s", "area_mm2"), ("latency_s", "power_w"), ("latency_s", "energy_j")):
        if all(m in metric_names for m in pair):
            return pair
    return tuple(metric_names[:2])


def optimum_for(entry, cache: dict, out: Path) -> dict | None:
    key = env_key(entry)
    if key in cache:
        return cache[key]
    ev = evaluator_for(entry)
    fx, fy = front_metrics(ev.metric_names)
    try:
        # exhaustive where enumerable (it also gives the exact Pareto front for pareto.png)
        o = exhaustive(ev, front=(fx, fy)) if can_enumerate(ev) else optimum(ev)
    except NoExactMethod as e:
        print(f"no exact optimum of {entry.id}: {e}", flush=True)
        cache[key] = None
        return None
    front = getattr(o, "front", None)
    cache[key] = {"env": entry.id, "design": o.design, "reward": o.reward, "cost": o.cost,
                  "n_designs": o.n_designs, "n_feasible": getattr(o, "n_feasible", None),
                  "front": dict(front) if front else None, "method": o.method, "wall_s": o.wall_s}
    (out / "optima.json").write_text(json.dumps(cache, indent=1, default=str))
    print(f"exact optimum of {entry.id}: cost {o.cost:.6g}, reward {o.reward:.6f} over {o.n_designs:,} designs "
          f"in {o.wall_s:.1f} s ({o.method})", flush=True)
    return cache[key]


def run_rows(store: RunStore, run_id: str, objective: Objective):
    """Per step: reward, cost (inf if infeasible/missing a target), the two front metrics' dict."""
    rewards, costs, mets = [], [], []
    for e in store.evals(run_id):
        rewards.append(e.reward)
        costs.append(objective.logged_cost(e))
        mets.append(e.metrics if e.feasible else None)
    return np.array(rewards), np.array(costs), mets


def analyse(tasks, store: RunStore, optima: dict, out: Path) -> str:
    runs = []  # one dict per run
    for t in tasks:
        info = store.run(t.run_id)
        if info is None or store.count(t.run_id) < t.budget:
            continue
        obj = Objective.from_dict(info.objective)
        rewards, costs, mets = run_rows(store, t.run_id, obj)
        runs.append({"task": t, "key": env_key(t.env), "obj": obj, "rewards": rewards[: t.budget],
                     "costs": costs[: t.budget], "mets": mets[: t.budget], "metric_names": info.metric_names})
    best_known = {}
    for r in runs:
        o = optima.get(r["key"])
        best = o["cost"] if o else math.inf
        best_known[r["key"]] = min(best_known.get(r["key"], best), best, float(np.min(r["costs"])))
    for r in runs:
        q = best_known[r["key"]] / r["costs"]  # inf cost -> 0
        r["curve"] = np.maximum.accumulate(q)
        r["best_q"] = float(r["curve"][-1])
        r["gap_pct"] = (1.0 / r["best_q"] - 1.0) * 100 if r["best_q"] > 0 else math.inf
        hit = np.flatnonzero(r["curve"] >= 0.95)
        r["to95"] = int(hit[0]) + 1 if hit.size else None
        t = r["task"]
        r["config"] = json.dumps(dict(t.params), sort_keys=True)
        r["target_met"] = bool(np.isfinite(np.min(r["costs"]))) if r["obj"].targets else None

    with open(out / "lottery_runs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["env", "agent", "params", "seed", "budget", "best_reward", "best_cost", "quality", "gap_pct",
                    "evals_to_95pct", "run_id"])
        for r in runs:
            t = r["task"]
            w.writerow([t.env.id, t.agent, r["config"], t.seed, t.budget, f"{np.max(r['rewards']):.6f}",
                        f"{np.min(r['costs']):.6g}", f"{r['best_q']:.6f}", f"{r['gap_pct']:.4f}", r["to95"] or "",
                        t.run_id])

    envs = list(dict.fromkeys(r["key"] for r in runs))
    agents = list(dict.fromkeys(r["task"].agent for r in runs))
    lines = ["# Hyperparameter lottery", ""]
    for k in envs:
        rs = [r for r in runs if r["key"] == k]
        env_id = rs[0]["task"].env.id
        o = optima.get(k)
        if o is None:
            ref = "no exact method: gap to the best design of all runs"
        elif o.get("n_feasible") is not None:
            ref = (f"exhaustive optimum: cost {o['cost']:.6g} over {o['n_designs']:,} designs ({o['n_feasible']:,} "
                   f"feasible), found in {o['wall_s']:.1f} s")
        else:  # the simulator's own exact method (e.g. branch and bound)
            ref = (f"exact optimum: cost {o['cost']:.6g} over {o['n_designs']:,} designs, found in {o['wall_s']:.1f} s "
                   f"by {o['method'].split(';')[0]}")
        lines += [f"## {env_id}", "", f"Objective: {rs[0]['obj'].describe()}; budget {rs[0]['task'].budget}; {ref}.", "",
                  "| agent | configs x seeds | best reward: median [min, max] | gap to optimum: best / median | "
                  "within 1% | target-hit rate | evals to 95% (runs reaching) | spread over configs (median gap) |",
                  "|---|---|---|---|---|---|---|---|"]
        for a in agents:
            ra = [r for r in rs if r["task"].agent == a]
            if not ra:
                continue
            br = np.array([np.max(r["rewards"]) for r in ra])
            gaps = np.array([r["gap_pct"] for r in ra])
            configs = sorted({r["config"] for r in ra})
            seeds = len({r["task"].seed for r in ra})
            med_by_cfg = {c: float(np.median([r["gap_pct"] for r in ra if r["config"] == c])) for c in configs}
            best_cfg = min(med_by_cfg, key=med_by_cfg.get)
            worst_cfg = max(med_by_cfg, key=med_by_cfg.get)
            to95 = [r["to95"] for r in ra if r["to95"] is not None]
            hit = [r["target_met"] for r in ra if r["target_met"] is not None]
            if len(configs) == 1:
                spread = "- (one config)"
            elif med_by_cfg[best_cfg] == med_by_cfg[worst_cfg]:
                spread = f"none: every config {_pct(med_by_cfg[best_cfg])}"
            else:
                spread = (f"{_pct(med_by_cfg[best_cfg])} .. {_pct(med_by_cfg[worst_cfg])} "
                          f"(best {_cfg(best_cfg)}, worst {_cfg(worst_cfg)})")
            lines.append(
                f"| {a} | {len(configs)} x {seeds} | {np.median(br):.5f} [{br.min():.5f}, {br.max():.5f}] | "
                f"{_pct(gaps.min())} / {_pct(float(np.median(gaps)))} | {np.mean(gaps <= 1.0):.0%} | "
                f"{(f'{np.mean(hit):.0%}') if hit else '-'} | "
                f"{(f'{int(np.median(to95))}') if to95 else '-'} ({len(to95)}/{len(ra)}) | {spread} |")
        lines.append("")
    lines += ["Gap = best cost found / optimum cost - 1 (cost = the objective's weighted product). "
              "'evals to 95%': first evaluation whose design is within 1/0.95 of the optimum cost (median over the "
              "runs that reach it). Spread: range of the per-config median gap over the hyperparameter grid.", ""]
    (out / "lottery.md").write_text("\n".join(lines))
    _plots(runs, envs, agents, optima, out)
    return "\n".join(lines)


def _pct(g: float) -> str:
    return "inf" if not math.isfinite(g) else (f"{g:.2f}%" if g < 100 else f"{g:.0f}%")


def _cfg(c: str) -> str:
    d = json.loads(c)
    return ",".join(f"{k}={v}" for k, v in d.items()) or "default"


def _plots(runs, envs, agents, optima, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(envs)
    colors = {a: plt.cm.tab20((2 * i) % 20 + (2 * i) // 20) for i, a in enumerate(agents)}
    by_env = {k: [r for r in runs if r["key"] == k] for k in envs}

    @contextlib.contextmanager
    def figure(name: str, rows: int, cols: int, panel: tuple[float, float]):
        """Yields (axes, env key, its runs) per env; saves ``out/name`` when the block ends."""
        fig, axes = plt.subplots(rows, cols, figsize=(panel[0] * cols, panel[1] * rows), squeeze=False)
        yield [(ax, k, by_env[k]) for ax, k in zip(axes.ravel(), envs)]
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)

    # 1. box plots of the final quality, per agent
    with figure("box.png", n, 1, (11, 3.2)) as panels:
        for ax, _, rs in panels:
            data = [[r["best_q"] for r in rs if r["task"].agent == a] for a in agents]
            ax.boxplot(data, tick_labels=agents, showfliers=True)
            ax.set_ylabel("quality = opt cost / cost")
            ax.set_title(f"{rs[0]['task'].env.id}: best design per run (all configs x seeds)")
            ax.axhline(1 / 1.01, color="grey", ls=":", lw=1)
            ax.grid(alpha=0.3)
    # 2. best-so-far curves with inter-quartile bands
    with figure("curves.png", 1, n, (6, 4.5)) as panels:
        for ax, _, rs in panels:
            for a in agents:
                curves = [r["curve"] for r in rs if r["task"].agent == a]
                if not curves:
                    continue
                m = min(len(c) for c in curves)
                c = np.stack([c[:m] for c in curves])
                x = np.arange(1, m + 1)
                ax.plot(x, np.median(c, axis=0), color=colors[a], label=a, lw=1.4)
                ax.fill_between(x, np.quantile(c, 0.25, axis=0), np.quantile(c, 0.75, axis=0), color=colors[a],
                                alpha=0.15)
            ax.set_xscale("log")
            ax.set_xlabel("evaluations")
            ax.set_ylabel("best-so-far quality (median, IQR band)")
            ax.set_title(rs[0]["task"].env.id)
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
        panels[0][0].legend(fontsize=8, ncol=2)
    # 3. Pareto fronts: exact (exhaustive) vs each agent's evaluated designs
    with figure("pareto.png", 1, n, (6, 4.8)) as panels:
        for ax, k, rs in panels:
            fx, fy = front_metrics(rs[0]["metric_names"])
            for a in agents:
                pts = np.array([(m[fx], m[fy]) for r in rs if r["task"].agent == a for m in r["mets"]
                                if m is not None and m.get(fx, 0) > 0 and m.get(fy, 0) > 0])
                if pts.size:
                    f = pareto_mask(pts[:, 0], pts[:, 1])
                    p = pts[f][np.argsort(pts[f][:, 0])]
                    ax.step(p[:, 0], p[:, 1], where="post", color=colors[a], lw=1, alpha=0.8, label=a)
            o = optima.get(k)
            if o and o.get("front") and o["front"]["x"] == fx and o["front"]["y"] == fy:
                ax.step(o["front"]["xs"], o["front"]["ys"], where="post", color="black", lw=2, label="exact front")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(fx)
            ax.set_ylabel(fy)
            ax.set_title(f"{rs[0]['task'].env.id}: Pareto fronts (feasible designs)")
            ax.grid(alpha=0.3, which="both")
        panels[0][0].legend(fontsize=7, ncol=2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(HERE / "spec.yaml"))
    ap.add_argument("--out", default=None, help="output folder (default: results/, or quick/ with --quick)")
    ap.add_argument("--workers", type=int, default=None, help="local worker processes (default: CPU count)")
    ap.add_argument("--scheduler", help="Dask scheduler address (tcp://host:port)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: budget 30, one seed; writes to quick/ (never over the committed results/)")
    ap.add_argument("--no-run", action="store_true", help="only analyse what the run log holds")
    args = ap.parse_args(argv)
    out = Path(args.out or (HERE / ("quick" if args.quick else "results")))
    if args.quick and out.resolve() == (HERE / "results").resolve():
        ap.error("--quick never writes into results/ (the committed study); use another --out")
    out.mkdir(parents=True, exist_ok=True)
    spec = load_spec(args.spec)
    db = str(out / "lottery.db")
    if args.quick:
        spec = dataclasses.replace(spec, budget=30, seeds=(0,), db=None)
        db = str(out / "lottery_quick.db")
    tasks = expand(spec)
    print(f"{spec.name}: {len(tasks)} runs, budget {spec.budget}, seeds {list(spec.seeds)}; run log {db}", flush=True)
    if not args.no_run:
        with make_executor(scheduler=args.scheduler, workers=args.workers) as ex:
            print(f"executor: {ex.describe()}", flush=True)
            rep = run_sweep(spec, db=db, executor=ex, tasks=tasks, progress=lambda s: print(s, flush=True))
        print(rep.summary(), flush=True)
        if rep.failed:
            return 1
    cache_path = out / "optima.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    optima = {}
    for entry in {env_key(e): e for e in spec.envs}.values():
        optima[env_key(entry)] = optimum_for(entry, cache, out)
    with RunStore(db) as store:
        print(analyse(tasks, store, optima, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
