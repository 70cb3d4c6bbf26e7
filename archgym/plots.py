"""Plots from the run log: best-so-far curves and a metric-vs-metric Pareto scatter.

Runs are grouped by what makes their numbers comparable (env, workload and objective):
each group gets its own row of two panels, so a log holding several accelerators,
workloads or objectives never mixes them on one axis or under one Pareto front.  Within a
group, runs of the same agent and hyperparameters share a colour and one legend entry
(``ga(pop_size=8) x 3 seeds``), and the legend sits beside the panels, so a log of 100 runs
stays readable.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from typing import Sequence

import numpy as np

from .metrics import unit_of
from .store import RunInfo, RunStore, StoreError

__all__ = ["pareto_mask", "plot_runs", "MAX_LEGEND"]

#: legend entries per group; further configurations are summed up in one "+ N more" line
MAX_LEGEND = 20


def pareto_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean mask of the points not dominated when minimising both ``x`` and ``y``."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    order = np.lexsort((y, x))
    mask = np.zeros(x.shape[0], dtype=bool)
    best_y = math.inf
    for i in order:
        if y[i] < best_y:
            mask[i] = True
            best_y = y[i]
    return mask


def _groups(infos: Sequence[RunInfo]) -> "OrderedDict[tuple, list[RunInfo]]":
    out: OrderedDict[tuple, list[RunInfo]] = OrderedDict()
    for i in infos:
        out.setdefault((i.env_id, i.workload, json.dumps(i.objective, sort_keys=True)), []).append(i)
    return out


def _sense(info: RunInfo, metric: str) -> float:
    """+1 when smaller is better for ``metric`` under this run's objective, -1 when larger is
    (a negative weight, a ``>=`` target); metrics the objective does not name: smaller."""
    w = info.objective.get("weights", {}).get(metric)
    if w is not None:
        return 1.0 if w > 0 else -1.0
    for t in info.objective.get("targets", []):
        if t.startswith(metric + ">="):
            return -1.0
    return 1.0


def _axes_metrics(info: RunInfo, x: str | None, y: str | None) -> tuple[str, str]:
    names = list(info.objective.get("weights", {}))
    names += [t.split("<")[0].split(">")[0] for t in info.objective.get("targets", [])]
    names += [m for m in ("latency_s", "energy_j", "area_mm2", "power_w") if m not in names]
    names = [n for n in names if n in info.metric_names]
    x = x or (names[0] if names else None)
    y = y or next((n for n in names if n != x), None)
    return x, y


def plot_runs(
    store: RunStore, out: str, *, run_ids: Sequence[str] | None = None, x: str | None = None, y: str | None = None,
) -> str:
    """Write an image (PNG, PDF or SVG by ``out``'s extension) with one row per (env,
    workload, objective) group: best-so-far reward per run, and ``y`` vs ``x`` over the
    group's feasible evaluations with their exact Pareto front (each metric minimised, or
    maximised where the objective maximises it).

    ``x``/``y`` default, per group, to the first two objective (or target) metrics, else
    ``latency_s`` and ``energy_j``.  Raises :class:`StoreError` for unknown runs or metrics.
    Returns ``out``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    infos = [store.run(r) for r in run_ids] if run_ids else store.runs()
    if not infos or any(i is None for i in infos):
        raise StoreError(f"no runs to plot in {store.path}" if not infos else f"unknown run id in {list(run_ids)}")
    for name in (x, y):
        if name is not None:
            unit_of(name)
            if not any(name in i.metric_names for i in infos):
                raise StoreError(f"metric {name!r} is not in the logged runs; available: "
                                 f"{', '.join(infos[0].metric_names)}")
    groups = _groups(infos)
    fig, axes = plt.subplots(len(groups), 3, figsize=(17, 4.3 * len(groups)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 0.42]})
    tab20 = plt.get_cmap("tab20")
    palette = [tab20(2 * i) for i in range(10)] + [tab20(2 * i + 1) for i in range(10)]  # distinct hues first
    for row, ((env_id, workload, _), members) in enumerate(groups.items()):
        ax0, ax1, ax2 = axes[row]
        ax2.axis("off")  # the runs' legend lives in its own column
        gx, gy = _axes_metrics(members[0], x, y)
        configs: OrderedDict[str, list[RunInfo]] = OrderedDict()
        for info in members:
            configs.setdefault(info.label().rsplit(" seed ", 1)[0], []).append(info)
        best_by_cfg = {}
        xs, ys = [], []
        for c, (cfg, runs) in enumerate(configs.items()):
            color = palette[c % 20]
            best = -math.inf
            for k, info in enumerate(runs):
                rewards, px, py = [], [], []
                for e in store.evals(info.run_id):
                    rewards.append(e.reward)
                    if e.feasible and gx and gy:
                        px.append(e.metrics.get(gx, math.nan))
                        py.append(e.metrics.get(gy, math.nan))
                if not rewards:
                    continue
                curve = np.maximum.accumulate(rewards)
                best = max(best, float(curve[-1]))
                label = (f"{cfg} x {len(runs)} seeds" if len(runs) > 1 else f"{cfg} seed {info.seed}") if k == 0 \
                    else None
                ax0.plot(np.arange(1, len(rewards) + 1), curve, color=color, alpha=0.75, lw=1.2, label=label)
                ax1.scatter(px, py, s=5, alpha=0.35, color=color)
                xs += px
                ys += py
            best_by_cfg[cfg] = best
        objective = members[0].objective_text()
        ax0.set_title(f"{env_id} | {workload}\n{objective}", fontsize=9)
        ax0.set_xlabel("evaluations")
        ax0.set_ylabel("best reward so far")
        ax0.grid(alpha=0.3)
        handles, labels = ax0.get_legend_handles_labels()
        if len(handles) > MAX_LEGEND:  # the best configurations by final reward, then a count of the rest
            keep = sorted(range(len(labels)), key=lambda i: -best_by_cfg.get(labels[i].split(" x ")[0]
                                                                              .split(" seed ")[0], -math.inf))
            keep = sorted(keep[:MAX_LEGEND])
            more = len(handles) - MAX_LEGEND
            handles = [handles[i] for i in keep] + [plt.Line2D([], [], lw=0)]
            labels = [labels[i] for i in keep] + [f"+ {more} more configurations"]
        xa, ya = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        ok = np.isfinite(xa) & np.isfinite(ya)
        front = None
        sx, sy = (_sense(members[0], gx), _sense(members[0], gy)) if gx and gy else (1.0, 1.0)
        if ok.any():
            m = pareto_mask(sx * xa[ok], sy * ya[ok])
            fx, fy = xa[ok][m], ya[ok][m]
            o = np.argsort(fx)
            (front,) = ax1.plot(fx[o], fy[o], "k.-", lw=1.2, label="Pareto front of this group ("
                                + ", ".join(f"{'max' if sg < 0 else 'min'} {n}" for n, sg in ((gx, sx), (gy, sy)))
                                + ")")
            if (xa[ok] > 0).all() and xa[ok].max() / max(xa[ok].min(), 1e-300) > 100:
                ax1.set_xscale("log")
            if (ya[ok] > 0).all() and ya[ok].max() / max(ya[ok].min(), 1e-300) > 100:
                ax1.set_yscale("log")
        if gx and gy:
            ax1.set_xlabel(f"{gx} [{unit_of(gx)}]")
            ax1.set_ylabel(f"{gy} [{unit_of(gy)}]")
        ax1.set_title(f"feasible designs ({int(ok.sum())})", fontsize=9)
        ax1.grid(alpha=0.3)
        ax2.legend(handles, labels, fontsize=7, loc="upper left", borderaxespad=0, title=f"{len(members)} runs",
                   title_fontsize=7)
        if front is not None:
            ax1.legend(handles=[front], fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
