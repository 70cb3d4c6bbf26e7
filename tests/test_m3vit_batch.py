"""M3ViT evaluate_batch (numba kernel, simulators/_m3vit_batch.py) against evaluate (the slow
reference path, simulators/_m3vit_model.py): every metric, feasibility and reason class,
bit for bit (issue #19 item 1).

The two share no code: the reference builds the step list in Python and runs the
``timeline`` kernel (itself tested against a plain-Python twin in test_m3vit.py); the batch
kernel generates the steps in place, keeps the schedule in local variables and fast-forwards
runs of steps it proves stall-free (its module docstring).  Random designs cover the space;
the designs listed in ``_PATHS`` make sure each schedule mode and fast-forward of the kernel
is exercised (with and without its preconditions).  Speed is in benchmarks/bench_envs.py.
"""

import numpy as np
import pytest

from archgym.metrics import Metrics
from simulators.m3vit import DEFAULT_DESIGN, REASON_CLASSES, M3ViTSimulator, reason_class


def _reference(sim, space, idx, workload):
    w = sim.workload(workload)
    out = []
    for row in idx:
        d = space.decode(row)
        bad = space.violations(d)
        out.append(Metrics.infeasible("; ".join(bad)) if bad else sim._evaluate(d, w))
    return out


def _compare(sim, idx, workload):
    space = sim.design_space()
    b = sim.evaluate_batch(idx, workload, reasons=True)
    ref = _reference(sim, space, idx, workload)
    metrics = [k for k in b if k not in ("feasible", "reason_class")]
    for m in ref:                                   # the batch reports every metric evaluate does
        assert set(m.names()) <= set(metrics)
    for k in metrics:
        want = np.array([m.get(k) for m in ref])
        np.testing.assert_array_equal(b[k], want, err_msg=k)
    np.testing.assert_array_equal(b["feasible"], [m.feasible for m in ref])
    np.testing.assert_array_equal([REASON_CLASSES[c] for c in b["reason_class"]], [reason_class(m) for m in ref])
    return b


@pytest.mark.slow
def test_batch_equals_evaluate_on_10000_random_designs():
    sim = M3ViTSimulator()
    idx = sim.design_space().sample_indices(np.random.default_rng(2024), 10_000)
    b = _compare(sim, idx, "pascal")
    classes = set(np.asarray(b["reason_class"]).tolist())
    assert classes == set(range(len(REASON_CLASSES)))          # every reason class occurs
    assert 0.2 < b["feasible"].mean() < 0.5


@pytest.mark.parametrize("workload, opts", [
    ("nyud/depth", {}),
    ("pascal/edge", {"routing_skew": "task", "task_strength": 4.0}),
    ("pascal-dense", {}),
    ("nyud", {"power": "fixed", "cache_policy": "rank_order"}),
    ("pascal", {"routing_skew": "zipf", "zipf_s": 2.0, "lutram_frac": 0.0}),
])
def test_batch_equals_evaluate_other_workloads_and_options(workload, opts):
    sim = M3ViTSimulator(**opts)
    idx = sim.design_space().sample_indices(np.random.default_rng(7), 600)
    _compare(sim, idx, workload)


# Designs that take each path of the kernel (see its module docstring):
_PATHS = {
    "prefetch 0 (sums only)": {"prefetch_depth": 0},
    "no pool pressure, expert fast-forward": {},
    "no pool pressure, load-bound experts (walked)": {"top_k": 1, "n_experts": 32, "dram_gbps": 4.8},
    "FIFO, experts fast-forwarded with the FIFO rebuilt": {"prefetch_depth": 3, "n_wbuf": 2, "wbuf_kib": 1152},
    "FIFO, no two expert chunks fit: serialized": {"prefetch_depth": 2, "n_wbuf": 1, "wbuf_kib": 288},
    "FIFO, the pool holds 2 of 4 chunks in flight: effective prefetch 1": {"prefetch_depth": 3, "n_wbuf": 1,
                                                                           "wbuf_kib": 576},
    "FIFO, small chunks (many per GEMM)": {"prefetch_depth": 2, "n_wbuf": 1, "wbuf_kib": 64, "pe_out": 16},
    "grouped lanes in a remainder chunk (non-linear experts)": {"wbuf_kib": 144, "pe_out": 80},
    "grouped lanes, FIFO": {"wbuf_kib": 144, "pe_out": 112, "n_wbuf": 1, "prefetch_depth": 3},
    "cache schedule (step holding the pool)": {"schedule": "cache", "prefetch_depth": 2},
    "naive schedule, over budget": {"schedule": "naive", "n_experts": 32},
    "weight tile too big": {"wbuf_kib": 64, "pe_out": 128},
    "over DSPs and memory": {"pe_in": 32, "pe_out": 128, "schedule": "naive"},
    "constraint": {"top_k": 8, "n_experts": 4},
    "few experts (no fast-forward)": {"n_experts": 4, "top_k": 2},
}


@pytest.mark.parametrize("name", list(_PATHS))
def test_batch_equals_evaluate_on_each_kernel_path(name):
    sim = M3ViTSimulator()
    space = sim.design_space()
    base = {**DEFAULT_DESIGN, **_PATHS[name]}
    rows = [space.encode(base)]
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    for _ in range(40):                          # the same path with other clocks, bandwidths, arrays
        d = dict(base)
        for p in ("clock_mhz", "dram_gbps", "pe_in"):
            if p not in _PATHS[name]:
                d[p] = space[p].values[int(rng.integers(len(space[p].values)))]
        rows.append(space.encode(d))
    for wl in ("pascal", "nyud"):
        _compare(sim, np.array(rows), wl)


def test_bad_indices_are_errors():
    sim = M3ViTSimulator()
    ok = np.array([sim.design_space().encode(DEFAULT_DESIGN)])
    with pytest.raises(ValueError, match=r"indices for pe_out must be in 0..7; got values 8..8"):
        sim.evaluate_batch(np.array([[1, 8, 1, 4, 1, 2, 0, 2, 4, 2, 2]]), "pascal")
    with pytest.raises(ValueError, match="must be in 0..2"):
        sim.evaluate_batch(ok - np.eye(11, dtype=int)[0] * 5, "pascal")
    with pytest.raises(ValueError, match=r"shape \(n, 11\)"):
        sim.evaluate_batch(ok[:, :5], "pascal")
    with pytest.raises(ValueError, match="integer array"):
        sim.evaluate_batch(ok.astype(float), "pascal")
    assert sim.evaluate_batch(ok[:0], "pascal")["cycles"].shape == (0,)
