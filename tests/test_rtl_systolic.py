"""Tests of the register-level systolic array (rtl_models/systolic).

Outputs are compared with torch.matmul on the same int64 tensors (torch.equal); cycle
counts with the closed-form contract (rtl_models/systolic/contract.py) and, for the
phases SCALE-Sim models, with SCALE-Sim 3.0.0 goldens (tests/data/scalesim_goldens.csv).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rtl_models.systolic import (DATAFLOWS, AccumulatorOverflowError, SystolicResult, fold_cycles,
                                 num_folds, simulate_gemm, total_cycles)
from rtl_models.systolic.accumulator import Accumulator, wrap_to_bits
from rtl_models.systolic.array import OSRegs, StationaryRegs, os_stream_step, stationary_stream_step
from rtl_models.systolic.contract import mapping, phase_cycles

GOLDENS = Path(__file__).parent / "data" / "scalesim_goldens.csv"


def _torch_ref(A: np.ndarray, B: np.ndarray) -> torch.Tensor:
    return torch.matmul(torch.from_numpy(A.astype(np.int64)), torch.from_numpy(B.astype(np.int64)))


def _check(A: np.ndarray, B: np.ndarray, rows: int, cols: int, df: str) -> SystolicResult:
    """Run one case and assert output, cycles, folds, phases and MAC accounting."""
    M, K = A.shape
    N = B.shape[1]
    res = simulate_gemm(A, B, rows, cols, df)
    assert res.output.dtype == np.int64 and res.output.shape == (M, N)
    assert torch.equal(torch.from_numpy(res.output), _torch_ref(A, B)), (M, K, N, rows, cols, df)
    folds = num_folds(M, K, N, rows, cols, df)
    assert res.folds == folds
    assert res.cycles == total_cycles(M, K, N, rows, cols, df)
    assert res.cycles == folds * fold_cycles(M, K, N, rows, cols, df)
    assert res.phase_cycles == {k: folds * v for k, v in phase_cycles(M, K, N, rows, cols, df).items()}
    assert len(res.mac_trace) == res.cycles
    assert res.mac_count == M * K * N
    assert res.mac_trace.min() >= 0 and res.mac_trace.max() <= rows * cols
    return res


# ------------------------------------------------------------------ correctness + cycles
EDGE_CASES = [
    # (M, K, N, rows, cols)
    (1, 1, 1, 1, 1),
    (4, 4, 4, 4, 4),          # exactly one full fold
    (8, 8, 8, 4, 4),          # divisible, several folds
    (5, 7, 3, 1, 1),          # 1x1 array
    (6, 1, 9, 4, 4),          # K = 1
    (1, 9, 1, 3, 2),          # M = N = 1
    (7, 5, 11, 2, 5),         # non-square array, nothing divisible
    (11, 13, 3, 5, 2),
    (3, 2, 2, 8, 8),          # array much larger than the GEMM
    (1, 17, 6, 1, 4),         # single-row array
    (9, 4, 1, 6, 1),          # single-column array
]


@pytest.mark.parametrize("df", DATAFLOWS)
@pytest.mark.parametrize("shape", EDGE_CASES, ids=lambda s: "x".join(map(str, s)))
def test_edge_shapes_match_torch_and_contract(shape, df):
    M, K, N, R, C = shape
    rng = np.random.default_rng(hash((shape, df)) % 2**32)
    A = rng.integers(-128, 128, (M, K))
    B = rng.integers(-128, 128, (K, N))
    _check(A, B, R, C, df)


@pytest.mark.parametrize("seed", range(12))
def test_seeded_random_shapes(seed):
    rng = np.random.default_rng(1000 + seed)
    M, K, N = (int(v) for v in rng.integers(1, 15, 3))
    R, C = (int(v) for v in rng.integers(1, 7, 2))
    A = rng.integers(-1000, 1000, (M, K))
    B = rng.integers(-1000, 1000, (K, N))
    for df in DATAFLOWS:
        _check(A, B, R, C, df)


@settings(max_examples=150, deadline=None)
@given(M=st.integers(1, 10), K=st.integers(1, 10), N=st.integers(1, 10), R=st.integers(1, 5),
       C=st.integers(1, 5), df=st.sampled_from(DATAFLOWS), seed=st.integers(0, 2**32 - 1),
       bound=st.sampled_from([1, 7, 2**15, 2**31]))
def test_property_any_shape(M, K, N, R, C, df, seed, bound):
    rng = np.random.default_rng(seed)
    A = rng.integers(-bound, bound, (M, K), endpoint=True)
    B = rng.integers(-bound, bound, (K, N), endpoint=True)
    _check(A, B, R, C, df)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64,
                                   np.uint64])
def test_integer_dtypes_accepted(dtype):
    rng = np.random.default_rng(7)
    lo = 0 if np.dtype(dtype).kind == "u" else -100
    A = rng.integers(lo, 100, (5, 6)).astype(dtype)
    B = rng.integers(lo, 100, (6, 4)).astype(dtype)
    for df in DATAFLOWS:
        _check(A, B, 3, 2, df)


def test_int64_wraps_like_torch_without_acc_bits():
    # acc_bits=None: two's-complement int64, the same ring as torch.matmul
    A = np.array([[2**40, 2**40, -2**62], [3, -(2**62), 2**62]], dtype=np.int64)
    B = np.array([[2**40, 5], [2**41, 7], [3, -11]], dtype=np.int64)
    exact = [[sum(int(A[i, k]) * int(B[k, j]) for k in range(3)) for j in range(2)] for i in range(2)]
    wrapped = np.array([[(v + 2**63) % 2**64 - 2**63 for v in row] for row in exact], dtype=np.int64)
    assert wrapped[0, 0] != exact[0][0]          # the case really overflows int64
    for df in DATAFLOWS:
        out = simulate_gemm(A, B, 2, 2, df).output
        assert np.array_equal(out, wrapped)
        assert torch.equal(torch.from_numpy(out), _torch_ref(A, B))


# ------------------------------------------------------------------ closed form
def test_closed_form_by_hand():
    # os: 2R+C+K-2 ; ws: 2R+C+M-2 ; is: 2R+C+N-2 ; folds ceil(Sr/R)*ceil(Sc/C)
    assert fold_cycles(4, 4, 4, 4, 4, "os") == 14
    assert fold_cycles(5, 7, 3, 2, 3, "os") == 2 * 2 + 3 + 7 - 2
    assert fold_cycles(5, 7, 3, 2, 3, "ws") == 2 * 2 + 3 + 5 - 2
    assert fold_cycles(5, 7, 3, 2, 3, "is") == 2 * 2 + 3 + 3 - 2
    assert num_folds(5, 7, 3, 2, 3, "os") == 3 * 1
    assert num_folds(5, 7, 3, 2, 3, "ws") == 4 * 1
    assert num_folds(5, 7, 3, 2, 3, "is") == 4 * 2
    assert mapping(5, 7, 3, "is") == (7, 5, 3)


@pytest.mark.parametrize("M,N,K,os_,ws,is_", [(64, 32, 48, 1983, 2063, 2591),
                                              (20, 13, 37, 305, 419, 524),
                                              (128, 64, 96, 14079, 14399, 16511)])
def test_closed_form_matches_scalesim_handpicked(M, N, K, os_, ws, is_):
    # Hand-picked runs of the real SCALE-Sim 3.0.0 (our measurement; 8x8, layers named
    # M x N x K, also in tests/data/scalesim_goldens.csv): SCALE-Sim reports
    # folds * per_fold - 1, and its os per fold lacks the R-cycle drain
    assert total_cycles(M, K, N, 8, 8, "os") == os_ + 1 + num_folds(M, K, N, 8, 8, "os") * 8
    assert total_cycles(M, K, N, 8, 8, "ws") == ws + 1
    assert total_cycles(M, K, N, 8, 8, "is") == is_ + 1


def _scalesim_cases(max_cycles: int = 700):
    # a missing goldens file is a collection error, never zero silently-passing cases
    with GOLDENS.open() as fh:
        rows = [r for r in csv.DictReader(fh)
                if int(r["stall_cycles"]) == 0 and int(r["total_cycles"]) <= max_cycles]
    return [pytest.param(r, id=r["case_id"]) for r in rows]


@pytest.mark.parametrize("row", _scalesim_cases())
def test_register_phases_match_scalesim_goldens(row):
    """SCALE-Sim counts the same phases minus the os drain, and reports a 0-based index (-1)."""
    M, N, K = int(row["M"]), int(row["N"]), int(row["K"])   # CSV is in SCALE-Sim's M, N, K order
    R, C, df = int(row["rows"]), int(row["cols"]), row["dataflow"]
    rng = np.random.default_rng(int(row["total_cycles"]))
    A = rng.integers(-5, 6, (M, K))
    B = rng.integers(-5, 6, (K, N))
    res = _check(A, B, R, C, df)
    counted = res.cycles - res.phase_cycles["drain"] if df == "os" else res.cycles
    assert counted - 1 == int(row["total_cycles"])


# ------------------------------------------------------------------ register behaviour
@pytest.mark.parametrize("df", DATAFLOWS)
def test_wavefront_of_a_single_full_fold(df):
    # PE (i, j) works on element t of the stream at stream cycle t + i + j; count per cycle
    R, C, T = 3, 4, 5
    M, K, N = {"os": (R, T, C), "ws": (T, R, C), "is": (C, R, T)}[df]
    res = simulate_gemm(np.ones((M, K), np.int64), np.ones((K, N), np.int64), R, C, df)
    pre = res.phase_cycles["preload"]
    expect = [sum(1 for i in range(R) for j in range(C) if 0 <= t - i - j < T)
              for t in range(T + R + C - 2)]
    trace = res.mac_trace.tolist()
    assert trace[:pre] == [0] * pre
    assert trace[pre:pre + len(expect)] == expect
    assert trace[pre + len(expect):] == [0] * res.phase_cycles["drain"]


def test_padding_pes_do_no_real_macs():
    # 2x2 GEMM on a 4x4 array: 4 real PEs, the other 12 compute on zero padding
    res = simulate_gemm(np.ones((2, 3), np.int64), np.ones((3, 2), np.int64), 4, 4, "os")
    assert res.mac_trace.max() == 4 and res.mac_count == 12
    assert res.cycles == fold_cycles(2, 3, 2, 4, 4, "os")  # the full-array constant is paid


def test_os_step_is_synchronous():
    # a token entering row 0 moves exactly one PE per edge, never further in the same edge
    s = OSRegs.empty(2, 3)
    acc = Accumulator()
    z, f = np.zeros(2, np.int64), np.zeros(2, bool)
    s, _ = os_stream_step(s, np.array([5, 0]), np.array([True, False]), np.zeros(3, np.int64),
                          np.zeros(3, bool), acc, "t")
    assert s.a_vld.tolist() == [[True, False, False], [False, False, False]]
    s, _ = os_stream_step(s, z, f, np.zeros(3, np.int64), np.zeros(3, bool), acc, "t")
    assert s.a_vld.tolist() == [[False, True, False], [False, False, False]] and s.a[0, 1] == 5
    assert (s.acc == 0).all()                    # b never arrived: no MAC


def test_stationary_psum_moves_one_row_per_edge():
    s = StationaryRegs.empty(3, 1)
    s = StationaryRegs(np.array([[2], [3], [4]]), np.ones((3, 1), bool), s.x, s.x_vld, s.p, s.p_vld)
    acc = Accumulator()
    s, fire = stationary_stream_step(s, np.array([1, 0, 0]), np.array([True, False, False]), acc, "t")
    assert s.p[:, 0].tolist() == [2, 0, 0] and fire[:, 0].tolist() == [True, False, False]
    s, _ = stationary_stream_step(s, np.array([0, 10, 0]), np.array([False, True, False]), acc, "t")
    assert s.p[:, 0].tolist() == [0, 32, 0] and s.p_vld[:, 0].tolist() == [False, True, False]
    with pytest.raises(RuntimeError, match="out of step"):  # operand without its partial sum
        stationary_stream_step(s, np.array([0, 0, 0]), np.array([True, True, False]), acc, "t")


# ------------------------------------------------------------------ accumulator width
@pytest.mark.parametrize("df", DATAFLOWS)
@pytest.mark.parametrize("size", [1, 4])
def test_acc_bits_raises_on_partial_sum_even_if_final_fits(df, size):
    # partial sums 100, 200, 100: on 1x1, ws/is add the three K-folds in the output buffer;
    # on 4x4 the sum of 200 forms inside the array (PE accumulator or partial-sum register)
    A = np.array([[100, 100, -100]], dtype=np.int64)
    B = np.ones((3, 1), dtype=np.int64)
    where = "PE acc" if df == "os" else ("output buffer" if size == 1 else "PE psum")
    with pytest.raises(AccumulatorOverflowError, match=f"{where}.* = 200 does not fit acc_bits=8"):
        simulate_gemm(A, B, size, size, df, acc_bits=8)
    assert simulate_gemm(A, B, size, size, df, acc_bits=9).output.tolist() == [[100]]
    res = simulate_gemm(A, B, size, size, df, acc_bits=8, overflow="wrap")
    assert res.output.tolist() == [[100]] and res.overflows == 2   # 200 -> -56, then -156 -> 100
    assert issubclass(AccumulatorOverflowError, ValueError)


@pytest.mark.parametrize("df", DATAFLOWS)
def test_acc_bits_no_overflow_when_bound_fits(df):
    # |a|,|b| <= 7, K = 4: every partial sum is within 196 -> 9 bits (-256..255) always fit
    rng = np.random.default_rng(3)
    A = rng.integers(-7, 8, (9, 4))
    B = rng.integers(-7, 8, (4, 7))
    res = simulate_gemm(A, B, 3, 2, df, acc_bits=9)
    assert torch.equal(torch.from_numpy(res.output), _torch_ref(A, B)) and res.overflows == 0


@pytest.mark.parametrize("df", DATAFLOWS)
@pytest.mark.parametrize("bits", [4, 8, 12])
def test_acc_bits_wrap_equals_wrapped_torch(df, bits):
    rng = np.random.default_rng(bits)
    A = rng.integers(-60, 60, (7, 9))
    B = rng.integers(-60, 60, (9, 5))
    res = simulate_gemm(A, B, 2, 3, df, acc_bits=bits, overflow="wrap")
    ref = wrap_to_bits(_torch_ref(A, B).numpy(), bits)
    assert torch.equal(torch.from_numpy(res.output), torch.from_numpy(ref))
    assert res.overflows > 0
    assert not np.array_equal(res.output, _torch_ref(A, B).numpy())


def test_wrap_to_bits_edges():
    v = np.array([127, 128, -128, -129, 255, 2**62, -(2**62) - 1], dtype=np.int64)
    assert wrap_to_bits(v, 8).tolist() == [127, -128, -128, 127, -1, 0, -1]
    assert wrap_to_bits(np.array([2**62, -(2**62) - 1]), 63).tolist() == [-(2**62), 2**62 - 1]


# ------------------------------------------------------------------ invalid input
GOOD_A, GOOD_B = np.ones((2, 3), np.int64), np.ones((3, 4), np.int64)


@pytest.mark.parametrize("kwargs,match", [
    ({"A": GOOD_A.astype(float)}, "dtype float64"),
    ({"A": GOOD_A.astype(bool)}, "dtype bool"),
    ({"B": np.ones(3, np.int64)}, r"shape \(3,\)"),
    ({"B": np.ones((0, 4), np.int64)}, r"shape \(0, 4\)"),
    ({"B": np.ones((4, 4), np.int64)}, r"B.shape\[0\] == A.shape\[1\]"),
    ({"A": np.full((2, 3), 2**64 - 1, np.uint64)}, "fit int64"),
    ({"rows": 0}, "rows=0"),
    ({"cols": -1}, "cols=-1"),
    ({"rows": 2.0}, "rows=2.0"),
    ({"rows": True}, "rows=True"),
    ({"dataflow": "OS"}, "dataflow='OS'.*os, ws, is"),
    ({"dataflow": None}, "dataflow=None"),
    ({"acc_bits": 0}, "acc_bits=0"),
    ({"acc_bits": 64}, "acc_bits=64"),
    ({"acc_bits": "8"}, "acc_bits='8'"),
    ({"overflow": "saturate"}, "overflow='saturate'.*raise, wrap"),
    ({"A": np.full((2, 3), 2**31, np.int64), "acc_bits": 40}, "fit int32"),
])
def test_invalid_inputs_raise(kwargs, match):
    args = {"A": GOOD_A, "B": GOOD_B, "rows": 2, "cols": 2, "dataflow": "os"} | kwargs
    with pytest.raises(ValueError, match=match) as info:
        simulate_gemm(args.pop("A"), args.pop("B"), args.pop("rows"), args.pop("cols"),
                      args.pop("dataflow"), **args)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("fn", [fold_cycles, num_folds, total_cycles])
@pytest.mark.parametrize("bad", [(0, 1, 1, 1, 1, "os"), (1, 1, 1, 1, 0, "ws"), (1, 1, 1, 1, 1, "xs"),
                                 (1, 1.5, 1, 1, 1, "is")])
def test_closed_form_rejects_bad_args(fn, bad):
    with pytest.raises(ValueError):
        fn(*bad)


def test_total_cycles_grows_with_folds():
    # sanity of the contract: cycles = folds * (2R + C + T - 2), never below the MAC bound
    for df in DATAFLOWS:
        for M, K, N, R, C in [(16, 16, 16, 4, 4), (33, 7, 12, 8, 2)]:
            assert total_cycles(M, K, N, R, C, df) >= math.ceil(M * K * N / (R * C))
