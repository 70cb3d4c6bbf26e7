"""The systolic mapper: exact against an exhaustive search, the bound-pruned walks against a
full scan, and the mapping it reports."""

import numba
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from simulators._systolic_mapper import map_gemm, map_roles, map_roles_scan
from simulators._systolic_ref import best_mapping, candidate_tiles
from simulators.systolic import DATAFLOWS, SystolicSimulator, layer_model

small = st.integers(1, 40)
pow2 = st.sampled_from([1, 2, 4, 8, 16])
kb = st.sampled_from([0.0625, 0.125, 0.25, 0.5, 1, 2, 4, 0.1875, 3])
bits = st.sampled_from([4, 8, 16])


def kernel(M, K, N, R, C, df, kbs, a, w):
    q = tuple(int(k * 8192) // 2 // b for k, b in zip(kbs, (a, w, 32)))
    return map_gemm(M, K, N, R, C, DATAFLOWS.index(df), *q, a, w, 32)


def test_candidate_tiles():
    assert candidate_tiles(1) == [1]
    assert candidate_tiles(8) == [1, 2, 4, 8]
    assert candidate_tiles(11) == [1, 2, 4, 8, 11]


def check_against_exhaustive(M, K, N, R, C, df, ki, kf, ko, a, w):
    ref = best_mapping(M, K, N, rows=R, cols=C, dataflow=df, ifmap_sram_kb=ki, filter_sram_kb=kf,
                       ofmap_sram_kb=ko, act_bits=a, weight_bits=w)
    r = kernel(M, K, N, R, C, df, (ki, kf, ko), a, w)
    assert (r[5] + r[6], r[0]) == (ref["dram_bits"], ref["compute_cycles"])
    # the reported DRAM passes are consistent with the reported bits
    p_if, p_fl, p_of = r[11], r[12], r[13]
    assert r[5] + r[6] == M * K * a * p_if + K * N * w * p_fl + M * N * a + 2 * 32 * M * N * (p_of - 1)


@settings(max_examples=40, deadline=None)
@given(small, small, small, pow2, pow2, st.sampled_from(DATAFLOWS), kb, kb, kb, bits, bits)
@example(16, 128, 64, 8, 8, "ws", 2, 1, 1, 8, 8)  # the spilling design of test_systolic.py
@example(64, 256, 128, 32, 32, "ws", 256, 256, 128, 8, 8)  # the default design of test_systolic.py
def test_mapper_finds_the_exhaustive_optimum(M, K, N, R, C, df, ki, kf, ko, a, w):
    """The kernel's (DRAM bits, compute cycles) equal the lexicographic minimum over every loop
    order, candidate tile and holding choice (simulators/_systolic_ref.py, plain Python)."""
    check_against_exhaustive(M, K, N, R, C, df, ki, kf, ko, a, w)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(small, small, small, pow2, pow2, st.sampled_from(DATAFLOWS), kb, kb, kb, bits, bits)
def test_mapper_finds_the_exhaustive_optimum_more_cases(M, K, N, R, C, df, ki, kf, ko, a, w):
    """As above on 300 more random layers and designs (about a minute)."""
    check_against_exhaustive(M, K, N, R, C, df, ki, kf, ko, a, w)


@numba.njit  # no cache: nothing written next to the tests
def _walks_vs_scan(seed, n):
    np.random.seed(seed)
    bad = 0
    for _ in range(n):
        kind = np.random.randint(3)
        if kind == 0:
            A, B, T = np.random.randint(1, 70), np.random.randint(1, 70), np.random.randint(1, 70)
        elif kind == 1:
            A, B, T = np.random.randint(1, 40000), np.random.randint(1, 40000), np.random.randint(1, 5000)
        else:
            A, B, T = 1 << np.random.randint(0, 15), 1 << np.random.randint(0, 15), 1 << np.random.randint(0, 13)
        R = 1 << np.random.randint(0, 9)
        C = 1 << np.random.randint(0, 9)
        if np.random.randint(2) == 0:
            qS, qP, qQ = 1 << np.random.randint(0, 22), 1 << np.random.randint(0, 22), 1 << np.random.randint(0, 22)
        else:
            qS, qP, qQ = np.random.randint(0, 1 << 21), np.random.randint(0, 1 << 21), np.random.randint(0, 1 << 21)
        eS, eP, eQ = np.random.randint(1, 1 << 30), np.random.randint(1, 1 << 30), np.random.randint(1, 1 << 30)
        if np.random.randint(4) == 0:
            eS, eP, eQ = A * B * 8, A * T * 8, 64 * B * T
        a = map_roles(A, B, T, R, C, qS, qP, qQ, eS, eP, eQ)
        b = map_roles_scan(A, B, T, R, C, qS, qP, qQ, eS, eP, eQ)
        if a[0] != b[0] or a[1] != b[1]:
            bad += 1
    return bad


def test_bound_pruned_walks_equal_the_full_scan():
    """map_roles (walks from a guess, pruned by monotone bounds, no divisions) returns the same
    optimum as map_roles_scan (every candidate of every case) on 100,000 random inputs: small,
    large and power-of-two dims, arbitrary capacities (0 included) and traffic weights."""
    assert _walks_vs_scan(20261203, 100_000) == 0


def test_mapping_is_independent_of_bandwidth_and_clock():
    sim = SystolicSimulator()
    d = sim.default_design()
    a = sim.evaluate(d, "llama-2-7b/prefill").breakdown
    b = sim.evaluate({**d, "dram_bw_bytes": 8, "clock_mhz": 250}, "llama-2-7b/prefill").breakdown
    assert all(a[n]["mapping"] == b[n]["mapping"] for n in a)


def test_mapping_text_names_tiles_loops_and_partial_sums():
    sim = SystolicSimulator()
    m = sim.evaluate(sim.default_design(), "llama-2-7b/prefill")
    q = m.breakdown["q_proj"]
    tiles = (q["tile_m_count"], q["tile_k_count"], q["tile_n_count"])
    text = q["mapping"]
    assert text.startswith(f"ws: tile M{tiles[0]:.0f} K{tiles[1]:.0f} N{tiles[2]:.0f}; DRAM loops ")
    assert "held in SRAM:" in text and "(filter stationary in the PEs)" in text and "partial sums:" in text
    passes = [q[f"{op}_dram_passes_count"] for op in ("ifmap", "filter", "ofmap")]
    assert text.endswith(f"DRAM passes ifmap x{passes[0]:.0f}, filter x{passes[1]:.0f}, ofmap x{passes[2]:.0f}")
    # os keeps its partial sums in the PE accumulators when K is not split
    d = {**sim.default_design(), "dataflow": "os"}
    mm = sim.evaluate(d, "opt-125m/decode")
    assert "partial sums: PE accumulators" in mm.breakdown["q_proj"]["mapping"]


def test_moe_layer_lists_one_mapping_per_gemm():
    sim = SystolicSimulator()
    m = sim.evaluate(sim.default_design(), "m3vit-vit-s/pascal")
    moe = [n for n, e in m.breakdown.items() if ".gate: " in e["mapping"]]
    assert moe, "an MoE layer's entry names its router and expert GEMMs"
    assert "tile_m_count" not in m.breakdown[moe[0]]


def test_layer_model_best_is_the_kernel_with_the_roofline():
    r = layer_model(256, 4096, 4096, rows=32, cols=32, dataflow="ws", ifmap_sram_kb=256, filter_sram_kb=256,
                    ofmap_sram_kb=128, dram_bw_bytes=4, act_bits=8, weight_bits=8)
    k = kernel(256, 4096, 4096, 32, 32, "ws", (256, 256, 128), 8, 8)
    assert r["compute_cycles"] == k[0] and r["dram_read_bits"] == k[5] and r["dram_write_bits"] == k[6]
    assert r["cycles"] == max(k[0], -(-(k[5] + k[6]) // 32))
    with pytest.raises(ValueError, match="powers of two"):
        layer_model(8, 8, 8, rows=24, cols=8, dataflow="ws", ifmap_sram_kb=1, filter_sram_kb=1, ofmap_sram_kb=1,
                    dram_bw_bytes=1, act_bits=8, weight_bits=8)


@pytest.mark.parametrize("opts", [{}, {"mapping": "fixed"}, {"mode": "scalesim"}])
def test_parallel_batch_equals_sequential(opts):
    """evaluate_batch on a large batch runs one chunk per numba thread (batch_eval_par /
    batch_eval_grid_par); every design's totals equal the sequential kernels' bit for bit."""
    import numba

    from simulators import _systolic_kernels as kern
    from simulators.systolic import SystolicSimulator

    sim = SystolicSimulator(**opts)
    space = sim.design_space()
    idx = np.ascontiguousarray(space.sample_indices(np.random.default_rng(5), 6000))
    gemms = sim.distinct_gemms(sim.workload("llama-2-7b/prefill"))
    rows, cols, df, ifk, flk, ofk, bw, clk, ab, wb = kern.gather(idx, sim._raw)
    args = (gemms, rows, cols, df, ifk * 8192, flk * 8192, ofk * 8192, bw * 8, ab, wb, sim._code)
    for chunks in (2, 3):
        assert np.array_equal(kern.batch_eval_par(*args, chunks), kern.batch_eval(*args))
        assert np.array_equal(kern.batch_eval_grid_par(gemms, idx, sim._tabs, sim._strides, sim._n_keys, sim._code, chunks),
                              kern.batch_eval_grid(gemms, idx, sim._tabs, sim._strides, sim._n_keys, sim._code))
    assert numba.get_num_threads() >= 1
    out = sim.evaluate_batch(idx, "llama-2-7b/prefill")
    seq = sim.evaluate_batch(idx[:4000], "llama-2-7b/prefill")   # below the parallel threshold
    assert np.array_equal(out["cycles"][:4000], seq["cycles"]) and np.array_equal(out["energy_j"][:4000], seq["energy_j"])
