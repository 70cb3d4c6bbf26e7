"""GEMM on the register-level array: input checks, fold tiling, result assembly."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .accumulator import Accumulator
from .array import run_os_fold, run_stationary_fold
from .contract import check_dataflow, check_positive_int

_I64 = np.int64
_INT64_MAX = np.iinfo(np.int64).max
_INT32 = np.iinfo(np.int32)


@dataclass(frozen=True)
class SystolicResult:
    """Outcome of :func:`simulate_gemm`.

    Attributes:
        output: ``(M, N)`` int64, ``A @ B`` as the array computed it.
        cycles: clock cycles of the whole GEMM (all folds, back to back).
        folds: number of folds run.
        mac_count: MACs on real operands (padding lanes excluded); ``M * K * N``.
        mac_trace: ``(cycles,)`` int64, real MACs in each cycle (0 in preload and drain).
        phase_cycles: cycles summed over folds per phase: ``preload``, ``stream``, ``drain``.
        overflows: sum-register writes that wrapped (``overflow="wrap"``; else 0).
        rows, cols, dataflow: the array and dataflow simulated.
    """

    output: np.ndarray
    cycles: int
    folds: int
    mac_count: int
    mac_trace: np.ndarray
    phase_cycles: dict[str, int] = field(default_factory=dict)
    overflows: int = 0
    rows: int = 1
    cols: int = 1
    dataflow: str = "os"

    @property
    def utilisation(self) -> np.ndarray:
        """Per-cycle fraction of the ``rows * cols`` PEs doing a real MAC (float64)."""
        return self.mac_trace / float(self.rows * self.cols)


def check_operand(name: str, x: object, int32_only: bool) -> tuple[np.ndarray, int]:
    """Check an integer GEMM operand (2-D, non-empty, integer dtype, values that fit int64, and
    int32 when ``int32_only``) without copying it; returns it (uint64 as int64) and ``max|x|``
    (at least 1).  Shared by this reference and the vectorised path (``fast.py``)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} has dtype {arr.dtype}; allowed: an integer dtype "
                         f"(int8..int64, uint8..uint64)")
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(f"{name} has shape {arr.shape}; allowed: a non-empty 2-D matrix")
    lo, hi = int(arr.min()), int(arr.max())
    if hi > _INT64_MAX:
        raise ValueError(f"{name} holds {hi}; allowed: values that fit int64")
    if int32_only and (lo < _INT32.min or hi > _INT32.max):
        raise ValueError(f"{name} holds values in [{lo}, {hi}]; allowed with acc_bits set: values that "
                         f"fit int32 (so every product is exact)")
    if arr.dtype == np.uint64:
        arr = arr.astype(_I64)
    return arr, max(abs(lo), abs(hi), 1)


def _operand(name: str, x: object, int32_only: bool) -> np.ndarray:
    return check_operand(name, x, int32_only)[0].astype(_I64)


def simulate_gemm(A: np.ndarray, B: np.ndarray, rows: int, cols: int, dataflow: str, *,
                  acc_bits: int | None = None, overflow: str = "raise") -> SystolicResult:
    """Compute ``A @ B`` on a ``rows x cols`` systolic array, one clock edge at a time.

    Args:
        A: ``(M, K)`` integer matrix (any integer dtype; computed in int64).
        B: ``(K, N)`` integer matrix.
        rows, cols: array height R and width C, integers >= 1.
        dataflow: ``"os"`` (output stationary), ``"ws"`` (weight = B stationary) or
            ``"is"`` (input = A stationary); mapping as SCALE-Sim
            (``scalesim/topology_utils.py``).
        acc_bits: width of every sum register (PE accumulator, partial sum, output buffer);
            ``None`` means int64 with two's-complement wrap, like ``torch.matmul``. If set
            (1..63), A and B must fit int32.
        overflow: with ``acc_bits`` set, ``"raise"`` raises :class:`AccumulatorOverflowError`
            at the first out-of-range write; ``"wrap"`` wraps it to ``acc_bits`` and counts it.

    Returns:
        :class:`SystolicResult`; ``cycles`` equals :func:`total_cycles` by construction of
        the register model (checked by the tests, not forced by the code).

    Raises:
        ValueError: non-integer dtype, non-2-D or empty matrix, ``A.shape[1] != B.shape[0]``,
            ``rows``/``cols`` < 1, unknown ``dataflow``/``overflow``, bad ``acc_bits``.
    """
    acc = Accumulator(acc_bits, overflow)
    a = _operand("A", A, acc.bits is not None)
    b = _operand("B", B, acc.bits is not None)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"A has shape {a.shape} and B has shape {b.shape}; allowed: "
                         f"B.shape[0] == A.shape[1]")
    R = check_positive_int("rows", rows)
    C = check_positive_int("cols", cols)
    df = check_dataflow(dataflow)
    if df == "os":
        out, folds, phases, trace = _run_os(a, b, R, C, acc)
    elif df == "ws":    # W = B (K x N) held, X = A (M x K) streamed, Y = A @ B
        out, folds, phases, trace = _run_stationary(b, a, R, C, acc, df)
    else:               # W = A^T (K x M) held, X = B^T (N x K) streamed, Y = (A @ B)^T
        out_t, folds, phases, trace = _run_stationary(a.T, b.T, R, C, acc, df)
        out = np.ascontiguousarray(out_t.T)
    mac_trace = np.asarray(trace, dtype=_I64)
    return SystolicResult(output=out, cycles=len(trace), folds=folds, mac_count=int(mac_trace.sum()),
                          mac_trace=mac_trace, phase_cycles=phases, overflows=acc.overflows,
                          rows=R, cols=C, dataflow=df)


def _add_phases(total: dict[str, int], fold: dict[str, int]) -> None:
    for key, val in fold.items():
        total[key] = total.get(key, 0) + val


def _run_os(a: np.ndarray, b: np.ndarray, R: int, C: int, acc: Accumulator):
    """os: Sr = M on rows, Sc = N on columns, K streamed; results leave complete."""
    M, K = a.shape
    N = b.shape[1]
    out = np.zeros((M, N), _I64)
    phases: dict[str, int] = {"preload": 0, "stream": 0, "drain": 0}
    trace: list[int] = []
    folds = 0
    for r0 in range(0, M, R):                   # row-fold-major
        for c0 in range(0, N, C):
            ru, cu = min(R, M - r0), min(C, N - c0)
            a_tile = np.zeros((R, K), _I64)
            a_tile[:ru] = a[r0:r0 + ru]
            b_tile = np.zeros((K, C), _I64)
            b_tile[:, :cu] = b[:, c0:c0 + cu]
            res, ph, tr = run_os_fold(a_tile, b_tile, (ru, cu), acc, f"os fold {folds}")
            out[r0:r0 + ru, c0:c0 + cu] = res[:ru, :cu]
            _add_phases(phases, ph)
            trace.extend(tr)
            folds += 1
    return out, folds, phases, trace


def _run_stationary(w: np.ndarray, x: np.ndarray, R: int, C: int, acc: Accumulator, df: str):
    """ws/is: ``Y = x @ w`` with ``w`` (Sr x Sc) held per fold and ``x`` (T x Sr) streamed.

    A fold covers R of the Sr reduction rows, so the output buffer adds the partial results
    of the ceil(Sr/R) row folds; it is a sum register and goes through ``acc`` as well.
    """
    sr, sc = w.shape
    steps = x.shape[0]
    out = np.zeros((steps, sc), _I64)
    phases: dict[str, int] = {"preload": 0, "stream": 0, "drain": 0}
    trace: list[int] = []
    folds = 0
    for r0 in range(0, sr, R):                  # row-fold-major
        for c0 in range(0, sc, C):
            ru, cu = min(R, sr - r0), min(C, sc - c0)
            w_tile = np.zeros((R, C), _I64)
            w_tile[:ru, :cu] = w[r0:r0 + ru, c0:c0 + cu]
            x_tile = np.zeros((steps, R), _I64)
            x_tile[:, :ru] = x[:, r0:r0 + ru]
            tag = f"{df} fold {folds}"
            res, ph, tr = run_stationary_fold(w_tile, x_tile, (ru, cu), acc, tag)
            out[:, c0:c0 + cu] = acc.fit(out[:, c0:c0 + cu] + res[:, :cu],
                                         f"{tag} output buffer (column offset {c0})")
            _add_phases(phases, ph)
            trace.extend(tr)
            folds += 1
    return out, folds, phases, trace
