"""AgileQuant's batched numba path against the one-design reference (issue #19 item 1).

``evaluate_batch`` prices designs from per-group tables (simulators/_agile_quant_kernels.py);
the reference is ``simulators._agile_quant_model.price`` (plain Python, one op at a time, the
path ``evaluate`` takes).  The two sum the same terms in different orders, so metrics agree to
1e-12 relative; feasibility and the reason class (which group overflows, DRAM capacity) agree
exactly.  Speed is measured in benchmarks/bench_envs.py, not here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from archgym.runner import make_evaluator
from archgym.sweep import _batch_reward
from simulators import _agile_quant_kernels as _kern
from simulators._agile_quant_model import GROUPS, smmw_factor
from simulators.agile_quant import AgileQuantSimulator


@pytest.fixture(scope="module")
def sim():
    return AgileQuantSimulator()


def _compare(sim, workload, n, seed, bias_infeasible=False):
    space = sim.design_space()
    rng = np.random.default_rng(seed)
    idx = space.sample_indices(rng, n)
    if bias_infeasible:                     # FP16 everywhere on the Pi: over the DRAM of big models
        idx[: n // 4, 0:15] = np.tile([2, 2, 0], 5)
        idx[: n // 4, 18] = 1
    w = sim.workload(workload)
    batch, reasons = sim.evaluate_batch_reasons(idx, w)
    keys = [k for k in batch if k != "feasible"]
    assert set(keys) == set(_kern.OUT_FIELDS)
    classes = {"feasible": 0, "overflow": 0, "capacity": 0}
    for i in range(n):
        m = sim._evaluate(space.decode(idx[i]), w)
        assert bool(batch["feasible"][i]) == m.feasible, (i, m.reason)
        want = sum(1 << g for g, name in enumerate(GROUPS) if f"{name}: " in m.reason)
        want |= (1 << 5) if "weights + activations need" in m.reason else 0
        assert reasons[i] == want, (i, m.reason, reasons[i])
        classes["feasible" if m.feasible else ("capacity" if want & 32 else "overflow")] += 1
        for k in keys:
            x, y = batch[k][i], m.get(k)
            if math.isnan(y):
                assert math.isnan(x), (i, k)
            else:
                assert x == pytest.approx(y, rel=1e-12, abs=0), (i, k, x, y)
    return classes


@pytest.mark.slow
def test_batch_equals_evaluate_on_10000_random_designs(sim):
    """Every metric, feasibility and reason class, on the env's default workload."""
    classes = _compare(sim, "opt-1.3b/prefill", 10_000, 0)
    assert classes["feasible"] > 5000 and classes["overflow"] > 100


@pytest.mark.parametrize("workload,n,bias,seen", [
    ("llama-7b/prefill", 600, True, ("feasible", "capacity", "overflow")),  # 8 GB Pi, untied embeddings
    ("llama-3-8b/prefill?seq_len=300", 400, False, ("feasible", "overflow")),  # GQA, odd sequence length
    ("opt-125m/prefill?seq_len=64", 400, False, ("feasible",)),     # small tensors stay in the cache
    ("opt-125m/prefill?seq_len=1", 100, False, ("feasible",)),      # edge: one token, K = 1, no pruning
    ("opt-125m/prefill?seq_len=65536", 100, False, ("capacity",)),  # edge: 275 GB of attention scores
])
def test_batch_equals_evaluate_on_other_workloads(sim, workload, n, bias, seen):
    classes = _compare(sim, workload, n, 1, bias)
    assert all(classes[c] > 0 for c in seen), classes


def test_smmw_closed_form_equals_the_instruction_count_reference():
    """The kernel's closed form (5K + 5d instructions + d rescales per 8K MACs) equals the
    factor computed from rtl_models.simd.op_counts, for every group size and many K."""
    for k in [1, 2, 31, 32, 63, 64, 100, 128, 255, 256, 257, 300, 512, 1000, 2048, 4096, 8192, 11008]:
        for g in (32, 64, 128, 256, 512):
            assert _kern.smmw_factor_nb(k, g, 128) == smmw_factor(k, g), (k, g)


def test_batch_rewards_equal_the_evaluator_rewards(sim):
    """The arrays exhaustive() turns into rewards give the evaluator's rewards design by design."""
    ev = make_evaluator("archgym/AgileQuant-v0")
    space = ev.space
    idx = space.sample_indices(np.random.default_rng(3), 300)
    r, _, met = _batch_reward(ev.objective, sim.evaluate_batch(idx, ev.workload))
    evs = [ev.evaluate(space.decode(i)) for i in idx]
    assert np.allclose(r, [e.reward for e in evs], rtol=1e-12, atol=0)
    assert met.tolist() == [e.target_met for e in evs] and 0 < met.sum() < len(met)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((3, 18), dtype=np.int64), r"shape \(n, 19\)"),
    (np.zeros((3, 19)), r"integer array"),
    (np.zeros(19, dtype=np.int64), r"shape \(n, 19\)"),
])
def test_batch_rejects_malformed_index_arrays(sim, bad, match):
    with pytest.raises(ValueError, match=match):
        sim.evaluate_batch(bad, "opt-1.3b/prefill")


@pytest.mark.parametrize("col,value", [(0, -1), (2, 5), (15, 8), (18, 2)])
def test_batch_rejects_out_of_range_indices_instead_of_wrapping(sim, col, value):
    """Issue #16: evaluate_batch with negative or out-of-range indices no longer wraps."""
    idx = np.zeros((4, 19), dtype=np.int64)
    idx[2, col] = value
    name = sim.design_space().names[col]
    with pytest.raises(ValueError, match=rf"indices\[2, {col}\] = {value} is outside .*\({name}\)"):
        sim.evaluate_batch(idx, "opt-1.3b/prefill")
