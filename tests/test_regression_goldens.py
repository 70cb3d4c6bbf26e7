"""Regression goldens: every env's metrics on fixed designs must not change unintentionally.

``tests/data/regression_goldens.json`` holds, for every env on two workloads (and the systolic
model's ``mapping=fixed`` and ``mode=scalesim``), the default design and 48 seeded random designs
with every metric, ``feasible`` and ``reason`` (issue #17 item 1).  An intended model change
regenerates it with ``python tests/data/gen_regression_goldens.py`` and the diff is reviewed.
Relative tolerance 1e-9: tight enough that any real change fails, loose enough for a
different-but-correct floating-point summation order on another CPU.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from archgym.runner import make_evaluator

DATA = Path(__file__).parent / "data"
GOLDENS = json.loads((DATA / "regression_goldens.json").read_text())
REL = 1e-9


def _evaluator(key: str):
    env_id, workload, opts = key.split("|")
    kwargs = dict(o.split("=") for o in opts.split(",") if o)
    if workload == "resnet18_scalesim":
        workload = str(DATA / "resnet18_scalesim_topology.csv")
    return make_evaluator(env_id, workload=workload, simulator_kwargs=kwargs)


def _close(a: float, b: float | None) -> bool:
    if b is None:
        return not math.isfinite(a)
    return math.isclose(a, b, rel_tol=REL, abs_tol=0.0)


def test_goldens_cover_every_env():
    import archgym
    assert {k.split("|")[0] for k in GOLDENS} == set(archgym.env_ids())
    assert all(len(rows) == 49 for rows in GOLDENS.values())


@pytest.mark.parametrize("key", sorted(GOLDENS))
def test_evaluate_matches_goldens(key):
    ev = _evaluator(key)
    for row in GOLDENS[key][:12]:   # the default design and 11 random ones (the batch test checks all)
        m, _ = ev.metrics_of(ev.space.decode(np.asarray(row["index"])))
        assert m.feasible == row["feasible"] and m.reason == row["reason"], row["index"]
        got = {n: float(m.get(n)) for n in m.names()}
        assert sorted(got) == sorted(row["metrics"]), (row["index"], sorted(got))
        bad = {n: (got[n], v) for n, v in row["metrics"].items() if not _close(got[n], v)}
        assert not bad, (row["index"], bad)


@pytest.mark.parametrize("key", sorted(GOLDENS))
def test_evaluate_batch_matches_goldens(key):
    ev = _evaluator(key)
    rows = GOLDENS[key]
    idx = np.asarray([r["index"] for r in rows], dtype=np.int64)
    feasible = np.asarray([ev.space.is_feasible(ev.space.decode(i)) for i in idx])
    out = ev.simulator.evaluate_batch(idx[feasible], ev.workload)
    want_feasible = [r["feasible"] for r, f in zip(rows, feasible) if f]
    assert out["feasible"].tolist() == want_feasible
    for j, row in enumerate(r for r, f in zip(rows, feasible) if f):
        if not row["feasible"]:
            continue
        for name, v in row["metrics"].items():
            assert name in out, f"evaluate_batch lacks {name}"
            assert _close(float(out[name][j]), v), (row["index"], name, float(out[name][j]), v)
