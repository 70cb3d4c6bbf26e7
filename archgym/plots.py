"""Plots from the run log: best-so-far curves and a metric-vs-metric Pareto scatter."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .metrics import unit_of
from .store import RunStore, StoreError

__all__ = ["pareto_mask", "plot_runs"]


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


def plot_runs(
    store: RunStore, out: str, *, run_ids: Sequence[str] | None = None, x: str | None = None, y: str | None = None,
) -> str:
    """Write a PNG with two panels: best-so-far reward per run, and ``y`` vs ``x``
    over feasible evaluations with the Pareto front (both minimised).

    ``x``/``y`` default to the first two objective metrics of the first run (or
    ``latency_s`` and ``energy_j``).  Returns ``out``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    infos = [store.run(r) for r in run_ids] if run_ids else store.runs()
    if not infos or any(i is None for i in infos):
        raise StoreError(f"no runs to plot in {store.path}" if not infos else f"unknown run id in {list(run_ids)}")
    if x is None or y is None:
        names = list(infos[0].objective.get("weights", {}))
        names += [m for m in ("latency_s", "energy_j", "area_mm2") if m not in names]
        x = x or names[0]
        y = y or next(n for n in names if n != x)
    for name in (x, y):
        unit_of(name)
        if not any(name in i.metric_names for i in infos):
            raise StoreError(f"metric {name!r} is not in the logged runs; available: {', '.join(infos[0].metric_names)}")
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2))
    xs, ys = [], []
    for info in infos:
        rewards, px, py = [], [], []
        for e in store.evals(info.run_id):
            rewards.append(e.reward)
            if e.feasible:
                px.append(e.metrics.get(x, math.nan))
                py.append(e.metrics.get(y, math.nan))
        if not rewards:
            continue
        ax0.plot(np.arange(1, len(rewards) + 1), np.maximum.accumulate(rewards),
                 label=f"{info.agent} s{info.seed} ({info.run_id[:6]})")
        ax1.scatter(px, py, s=6, alpha=0.4, label=f"{info.agent} s{info.seed}")
        xs += px
        ys += py
    ax0.set_xlabel("evaluations")
    ax0.set_ylabel("best reward so far")
    ax0.set_title(f"{infos[0].env_id} — {infos[0].workload}")
    ax0.grid(alpha=0.3)
    ax0.legend(fontsize=7)
    xa, ya = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    ok = np.isfinite(xa) & np.isfinite(ya)
    if ok.any():
        m = pareto_mask(xa[ok], ya[ok])
        fx, fy = xa[ok][m], ya[ok][m]
        o = np.argsort(fx)
        ax1.plot(fx[o], fy[o], "k.-", lw=1.2, label="Pareto front")
        if (xa[ok] > 0).all() and xa[ok].max() / max(xa[ok].min(), 1e-300) > 100:
            ax1.set_xscale("log")
        if (ya[ok] > 0).all() and ya[ok].max() / max(ya[ok].min(), 1e-300) > 100:
            ax1.set_yscale("log")
    ax1.set_xlabel(f"{x} [{unit_of(x)}]")
    ax1.set_ylabel(f"{y} [{unit_of(y)}]")
    ax1.set_title("feasible designs")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
