"""Vectorised bit-exact path of the systolic integer GEMM (the validation path).

The register-level array in :mod:`.array` is the cycle reference; this module computes the
same ``output`` in one call. Why the result does not depend on the dataflow: with
``acc_bits=None`` every sum register is int64 with two's-complement wrap, and with
``acc_bits=b`` and ``overflow="wrap"`` every write wraps modulo ``2**b``. Wrapping is a ring
homomorphism, so any order of additions gives the exact product wrapped once to ``b`` bits
(:mod:`.accumulator`). ``overflow="raise"`` depends on which partial sum leaves the range
first, which is dataflow specific: use :func:`~rtl_models.systolic.simulate_gemm` for it.
"""

from __future__ import annotations

import numpy as np

from ..intgemm import abs_max, exact_matmul
from .accumulator import Accumulator, wrap_to_bits
from .gemm import check_operand as _operand

__all__ = ["gemm_fast"]


def gemm_fast(A: np.ndarray, B: np.ndarray, *, acc_bits: int | None = None,
              overflow: str = "wrap") -> np.ndarray:
    """``A @ B`` as the systolic array's output port delivers it, without stepping cycles.

    Args:
        A: ``(M, K)`` integer matrix; B: ``(K, N)`` integer matrix (as :func:`simulate_gemm`).
        acc_bits: sum-register width (None = int64 wrap; 1..63). With it set, A and B must
            fit int32, as in :func:`simulate_gemm`.
        overflow: only ``"wrap"`` (what narrow hardware does); ``"raise"`` needs the
            cycle-stepped model.

    Returns:
        ``(M, N)`` int64, equal to ``simulate_gemm(A, B, R, C, df, acc_bits=acc_bits,
        overflow="wrap").output`` for every array size and dataflow (tested).
    """
    if overflow != "wrap":
        raise ValueError(f"overflow={overflow!r} is not supported by gemm_fast; allowed: 'wrap' "
                         "(use simulate_gemm for 'raise')")
    acc = Accumulator(acc_bits, "wrap")
    a, a_max = _operand("A", A, acc.bits is not None)
    b, b_max = _operand("B", B, acc.bits is not None)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"A has shape {a.shape} and B has shape {b.shape}; allowed: "
                         f"B.shape[0] == A.shape[1]")
    out = exact_matmul(a, b, a_max=a_max, b_max=b_max)
    return out if acc.bits is None else wrap_to_bits(out, acc.bits)
