"""Closed-form cycle contract of the register-level systolic array ("default" mode).

These are the numbers the analytic model (level 1 of the fidelity ladder) uses; the
cycle-stepped array in :mod:`rtl_models.systolic.array` must arrive at them by itself,
and ``tests/test_rtl_systolic.py`` checks that it does on every case.

Mapping and fold order follow SCALE-Sim 3.0.0 (``topology_utils.calc_spatio_temporal_params``
and ``compute/systolic_compute_{os,ws,is}.py`` of scalesim-project/scale-sim-v3): a GEMM
``(M x K) @ (K x N)`` becomes ``Sr`` spatial rows, ``Sc`` spatial columns and ``T``
temporal steps; it runs as ``ceil(Sr/R) * ceil(Sc/C)`` folds, back to back, in
row-fold-major order, and a partly filled fold costs as much as a full one.

Per-fold cycles (the demand matrices of those ``systolic_compute_*`` files, with the os drain
serialised as in the SCALE-Sim paper, which the maintainers confirm in scale-sim-v3 issue #4):

======  ============  ==================  =====================================
df      (Sr, Sc, T)   per fold            phases
======  ============  ==================  =====================================
os      (M, N, K)     2R + C + K - 2      stream K + R + C - 2, drain R
ws      (K, N, M)     2R + C + M - 2      preload R, stream M + R + C - 2
is      (K, M, N)     2R + C + N - 2      preload R, stream N + R + C - 2
======  ============  ==================  =====================================

SCALE-Sim 3.0.0 itself reports ``folds * (K + R + C - 2) - 1`` for os and
``folds * per_fold - 1`` for ws/is (no os drain; a 0-based last-cycle index); that
"scalesim" mode lives in the performance model, not here.
"""

from __future__ import annotations

import numbers

DATAFLOWS: tuple[str, ...] = ("os", "ws", "is")


def check_dataflow(dataflow: object) -> str:
    """Return ``dataflow`` if it is one of :data:`DATAFLOWS`, else raise ValueError."""
    if not isinstance(dataflow, str) or dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow={dataflow!r} is not supported; allowed: {', '.join(DATAFLOWS)}")
    return dataflow


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` as ``int`` if it is an integer >= 1 (bool excluded), else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}={value!r} is invalid; allowed: an integer >= 1")
    return int(value)


def _checked(M: object, K: object, N: object, rows: object, cols: object,
             dataflow: object) -> tuple[int, int, int, int, int, str]:
    return (check_positive_int("M", M), check_positive_int("K", K), check_positive_int("N", N),
            check_positive_int("rows", rows), check_positive_int("cols", cols),
            check_dataflow(dataflow))


def mapping(M: int, K: int, N: int, dataflow: str) -> tuple[int, int, int]:
    """Return ``(Sr, Sc, T)``: spatial rows, spatial columns and temporal length.

    os -> (M, N, K), ws -> (K, N, M), is -> (K, M, N) (as SCALE-Sim's
    ``topology_utils.calc_spatio_temporal_params``).
    """
    M, K, N = (check_positive_int(n, v) for n, v in (("M", M), ("K", K), ("N", N)))
    return {"os": (M, N, K), "ws": (K, N, M), "is": (K, M, N)}[check_dataflow(dataflow)]


def num_folds(M: int, K: int, N: int, rows: int, cols: int, dataflow: str) -> int:
    """Number of folds ``ceil(Sr / rows) * ceil(Sc / cols)`` of a GEMM on a rows x cols array."""
    M, K, N, rows, cols, dataflow = _checked(M, K, N, rows, cols, dataflow)
    sr, sc, _ = mapping(M, K, N, dataflow)
    return -(-sr // rows) * -(-sc // cols)


def fold_cycles(M: int, K: int, N: int, rows: int, cols: int, dataflow: str) -> int:
    """Cycles of one fold (every fold costs the same): ``2*rows + cols + T - 2``.

    ``T`` is the temporal dimension of the dataflow (os: K, ws: M, is: N). For os this is
    ``T + rows + cols - 2`` cycles of streaming plus ``rows`` cycles of drain; for ws/is it
    is ``rows`` cycles of preload plus ``T + rows + cols - 2`` cycles of streaming.
    """
    M, K, N, rows, cols, dataflow = _checked(M, K, N, rows, cols, dataflow)
    _, _, t = mapping(M, K, N, dataflow)
    return 2 * rows + cols + t - 2


def total_cycles(M: int, K: int, N: int, rows: int, cols: int, dataflow: str) -> int:
    """Cycles of the whole GEMM: ``num_folds(...) * fold_cycles(...)`` (folds never overlap)."""
    return (num_folds(M, K, N, rows, cols, dataflow)
            * fold_cycles(M, K, N, rows, cols, dataflow))


def phase_cycles(M: int, K: int, N: int, rows: int, cols: int, dataflow: str) -> dict[str, int]:
    """Per-fold cycles split into ``{"preload", "stream", "drain"}`` (sums to :func:`fold_cycles`)."""
    M, K, N, rows, cols, dataflow = _checked(M, K, N, rows, cols, dataflow)
    _, _, t = mapping(M, K, N, dataflow)
    stream = t + rows + cols - 2
    if dataflow == "os":
        return {"preload": 0, "stream": stream, "drain": rows}
    return {"preload": rows, "stream": stream, "drain": 0}
