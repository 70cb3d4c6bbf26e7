"""Regenerate ``tests/data/regression_goldens.json``: every env's metrics on fixed designs.

Run from the repository root after an *intended* model change, then review the diff:

    python tests/data/gen_regression_goldens.py

For every registered env, on its default workload and one other, with the simulator options
listed in ``CASES``: the default design and 48 seeded random designs of the env's design space,
each priced as the env prices it (``Evaluator.metrics_of``: a constraint violation is an
infeasible result; every metric with a finite value, ``feasible`` and ``reason``).
``tests/test_regression_goldens.py`` checks ``evaluate`` on a subset and ``evaluate_batch`` on
all of them against this file (issue #17 item 1: any unintended change to any metric fails).
These are regression values, not oracles: the paper numbers and external-tool goldens are
checked elsewhere.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from archgym.runner import make_evaluator

__all__ = ["CASES", "N_RANDOM", "SEED", "golden_rows", "main"]

OUT = Path(__file__).with_name("regression_goldens.json")
N_RANDOM = 48
SEED = 20261203
# (env id, workload, simulator options)
CASES: list[tuple[str, str, dict]] = [
    ("archgym/Systolic-v0", "llama-2-7b/prefill", {}),
    ("archgym/Systolic-v0", "opt-1.3b/decode", {}),
    ("archgym/Systolic-v0", "llama-2-7b/prefill", {"mapping": "fixed"}),
    ("archgym/Systolic-v0", "resnet18_scalesim", {"mode": "scalesim"}),
    ("archgym/BitMoD-v0", "llama-2-7b/prefill", {}),
    ("archgym/BitMoD-v0", "llama-2-7b/decode", {}),
    ("archgym/MatMulFree-v0", "1.3b", {}),
    ("archgym/MatMulFree-v0", "370m", {}),
    ("archgym/AgileQuant-v0", "opt-1.3b/prefill", {}),
    ("archgym/AgileQuant-v0", "llama-7b/prefill", {}),
    ("archgym/M3ViT-v0", "pascal", {}),
    ("archgym/M3ViT-v0", "nyud", {}),
]


def _workload(name: str) -> str:
    """Zoo names as they are; ``resnet18_scalesim`` is the committed SCALE-Sim topology file."""
    if name == "resnet18_scalesim":
        return str(Path(__file__).with_name("resnet18_scalesim_topology.csv"))
    return name


def case_key(env_id: str, workload: str, opts: dict) -> str:
    """The JSON key of one case."""
    o = ",".join(f"{k}={v}" for k, v in sorted(opts.items()))
    return f"{env_id}|{workload}|{o}"


def design_indices(space, default_design: dict) -> np.ndarray:
    """The default design's index vector followed by ``N_RANDOM`` seeded random ones."""
    default = np.asarray(space.encode(default_design), dtype=np.int64)[None, :]
    rand = space.sample_indices(np.random.default_rng(SEED), N_RANDOM)
    return np.concatenate([default, np.asarray(rand, dtype=np.int64)])


def golden_rows(env_id: str, workload: str, opts: dict) -> list[dict]:
    """``evaluate`` of every design of one case as JSON-ready dicts."""
    ev = make_evaluator(env_id, workload=_workload(workload), simulator_kwargs=opts)
    sim, space, wl = ev.simulator, ev.space, ev.workload
    rows = []
    for idx in design_indices(space, ev.default_design):
        m, _ = ev.metrics_of(space.decode(idx))
        metrics = {n: float(m.get(n)) for n in m.names()}
        rows.append({"index": [int(i) for i in idx], "feasible": bool(m.feasible), "reason": m.reason,
                     "metrics": {k: (v if math.isfinite(v) else None) for k, v in sorted(metrics.items())}})
    return rows


def main() -> None:
    """Write the goldens file."""
    out = {case_key(*c): golden_rows(*c) for c in CASES}
    OUT.write_text(json.dumps(out, indent=0, sort_keys=True) + "\n")
    print(f"wrote {OUT.name}: {sum(len(v) for v in out.values())} designs in {len(out)} cases")


if __name__ == "__main__":
    main()
