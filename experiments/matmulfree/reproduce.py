"""Regenerate the MatMul-free FPGA calibration table and a throughput-vs-power Pareto plot.

Run:  python experiments/matmulfree/reproduce.py [--out experiments/matmulfree/results] [--model 1.3b]

Writes ``calibration.csv`` / ``calibration.md`` (paper vs model, error %, tolerance; the two
fitted constants re-derived from their calibration points; predictions for every model),
``pareto_<model>.csv`` (the Pareto front of max tokens/s vs min power over every feasible
design of the env's space) and ``pareto_<model>.png``. Paper numbers: arXiv 2406.02528
v1-v5 §6 (see calibration.md beside this script for sources and what is unverified).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from simulators.matmulfree import CONST, MEASURED_DESIGN, MODELS, MatMulFreeSimulator, simulate

HERE = Path(__file__).parent
PAPER_BLOCK_S = 0.043        # measured: one block, d=512, one core, 60 MHz (paper §6)
PAPER_TOK_S = 23.8           # projected 1.3B throughput (press; Graphcore review: ~24)
PAPER_POWER_W = 13.0         # projected power (abstract: "13W")
D512_WEIGHTS = 4 * 512 ** 2 + 3 * 512 * 1536


def fits() -> dict[str, float]:
    """Re-derive the two fitted constants from their calibration points (unrounded)."""
    m = simulate("block-d512", **MEASURED_DESIGN)
    b = m.breakdown
    other = m.cycles - b["unit:tmm"]["cycles"]
    beats = D512_WEIGHTS // 4
    lat_total = b["unit:tmm"]["cycles"] - beats * (CONST["t_req_cycles"] + 2)
    t_req = (PAPER_BLOCK_S * 60e6 - other - lat_total) / beats - 2
    p = simulate("1.3b")
    static = PAPER_POWER_W - p.extra["cores_power_w"] - p.extra["ddr_power_w"]
    return {"t_req_cycles": t_req, "static_shell_w": static}


def calibration_rows() -> list[dict]:
    """Paper vs model for the measured and projected points (and quantities derived from them)."""
    meas = simulate("block-d512", **MEASURED_DESIGN)
    proj = simulate("1.3b")
    rows = [
        ("measured", "d=512 block latency (ms), 1 core, 8-bit port, 60 MHz", PAPER_BLOCK_S * 1e3,
         meas.latency_s * 1e3, "10 % (issue)", "paper §6 (measured); calibration: t_req_cycles fitted on it"),
        ("measured", "cycles per ternary weight", PAPER_BLOCK_S * 60e6 / D512_WEIGHTS, meas.cycles / D512_WEIGHTS,
         "-", "derived: 43 ms x 60 MHz / 3,407,872 weights"),
        ("projected", "1.3B tokens/s", PAPER_TOK_S, proj.extra["tokens_per_s"], "15 % (issue)",
         "paper v1-v5 (projection; press 23.8, Graphcore review ~24); calibration: the 128 cores derived from it"),
        ("projected", "1.3B power (W)", PAPER_POWER_W, proj.power_w, "15 % (issue)",
         "paper abstract '13W'; calibration: static_shell_w fitted on it"),
        ("projected", "1.3B tokens/J", PAPER_TOK_S / PAPER_POWER_W, proj.extra["tokens_per_j"], "-",
         "derived: 23.8 / 13"),
        ("projected", "1.3B weight traffic (GB/s)", 7.7, proj.extra["weight_bytes"] * proj.extra["tokens_per_s"] / 1e9,
         "-", "derived: 324.7 MB of 2-bit weights per token x 23.8 tokens/s"),
    ]
    out = []
    for point, quantity, paper, model, tol, source in rows:
        out.append(dict(point=point, quantity=quantity, paper=paper, model=model,
                        error_pct=100.0 * (model / paper - 1.0), tolerance=tol, source=source))
    return out


def prediction_rows() -> list[dict]:
    """Every model on the measured single core and on the projected 128-core design."""
    out = []
    for name, design in (("measured core", MEASURED_DESIGN), ("projected design", {})):
        for model in MODELS:
            m = simulate(model, **design)
            bound = "ddr" if m.extra["ddr_latency_s"] >= m.extra["core_latency_s"] else "core"
            out.append(dict(design=name, model=model, latency_ms=m.latency_s * 1e3, tokens_per_s=m.extra["tokens_per_s"],
                            power_w=m.power_w, tokens_per_j=m.extra["tokens_per_j"],
                            alm_util_pct=100 * m.extra["alm_util_frac"], m20k_util_pct=100 * m.extra["m20k_util_frac"],
                            dsp_util_pct=100 * m.extra["dsp_util_frac"], bound=bound, feasible=m.feasible))
    return out


def pareto(model: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[dict]]:
    """Every design of the env's space on ``model``; returns (metrics, feasible mask, front order, front rows)."""
    sim = MatMulFreeSimulator()
    space = sim.design_space()
    idx = space.grid_indices()
    m = sim.evaluate_batch(idx, model)
    feas = m["feasible"]
    fi = np.flatnonzero(feas)
    order = fi[np.lexsort((-m["tokens_per_s"][fi], m["power_w"][fi]))]   # power up, tokens/s down
    front, best = [], -np.inf
    for i in order:
        if m["tokens_per_s"][i] > best:
            best = m["tokens_per_s"][i]
            front.append(i)
    front = np.array(front)
    rows = [dict(**{k: (v.item() if hasattr(v, "item") else v) for k, v in space.decode(idx[i]).items()},
                 tokens_per_s=float(m["tokens_per_s"][i]), power_w=float(m["power_w"][i]),
                 tokens_per_j=float(m["tokens_per_j"][i]), alm_count=float(m["alm_count"][i])) for i in front]
    return m, feas, front, rows


def plot(model: str, m: dict, feas: np.ndarray, front: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    ax.scatter(m["power_w"][feas], m["tokens_per_s"][feas], s=2, c="0.75", rasterized=True,
               label=f"feasible designs ({int(feas.sum()):,} of {len(feas):,})")
    ax.plot(m["power_w"][front], m["tokens_per_s"][front], "-o", ms=3, c="C0", label="Pareto front")
    if model == "1.3b":
        ax.plot([PAPER_POWER_W], [PAPER_TOK_S], "*", c="C3", ms=16, label="paper projection (23.8 tok/s, 13 W)")
    d = simulate(model)
    ax.plot([d.power_w], [d.extra["tokens_per_s"]], "s", mfc="none", mec="k", mew=1.5, ms=9,
            label=f"model, projected design ({d.extra['tokens_per_s']:.1f} tok/s, {d.power_w:.1f} W)")
    c = simulate(model, **MEASURED_DESIGN)
    ax.plot([c.power_w], [c.extra["tokens_per_s"]], "^", c="C2", ms=8, label="model, measured single core")
    ax.set_yscale("log")
    ax.set_xlabel("power (W)")
    ax.set_ylabel("tokens/s")
    ax.set_title(f"MatMul-free LM {model} on a Stratix 10 SX 2800: throughput vs power")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _md_table(rows: list[dict], fmt: str = "{:.4g}") -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(fmt.format(v) if isinstance(v, float) else str(v) for v in r.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--model", default="1.3b", choices=list(MODELS))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cal, pred, fit = calibration_rows(), prediction_rows(), fits()
    _write_csv(out / "calibration.csv", cal)
    m, feas, front, prow = pareto(args.model)
    _write_csv(out / f"pareto_{args.model}.csv", prow)
    plot(args.model, m, feas, front, out / f"pareto_{args.model}.png")
    text = "\n\n".join([
        "# MatMul-free FPGA model: calibration table (generated by reproduce.py)",
        _md_table(cal),
        "## Fitted constants re-derived from their calibration points (unrounded)",
        "\n".join(f"- `{k}` = {v:.4f} (model uses {CONST[k]})" for k, v in fit.items()),
        "## Predictions (no reference numbers exist for these)",
        _md_table(pred),
        f"## Pareto front, {args.model}: max tokens/s vs min power over the env's design space",
        _md_table(prow),
    ])
    (out / "calibration.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
