"""Cycle-stepped, register-level R x C systolic array for int GEMM (os / ws / is).

This is the template for the datapath models of ``rtl_models``: operands move through
the array register by register, every register updates from its neighbours' previous
values on each clock edge (one ``*_step`` call = one edge, see :mod:`.array`), and the
cycle count is whatever the registers need, never a formula. The closed-form contract
the analytic model uses is in :mod:`.contract`; the tests check that the two agree.

Public API
----------
* :func:`simulate_gemm` ``(A, B, rows, cols, dataflow, *, acc_bits=None, overflow="raise")
  -> SystolicResult``: ``A @ B`` in int64 plus ``cycles``, ``folds``, ``mac_count``,
  a per-cycle ``mac_trace``, cycles per phase, and the overflow count.
* :func:`fold_cycles`, :func:`num_folds`, :func:`total_cycles` ``(M, K, N, rows, cols,
  dataflow) -> int``: the closed-form contract ("default" mode).
* :class:`AccumulatorOverflowError`: a sum register left its ``acc_bits`` range.

Mapping and folds (SCALE-Sim 3.0.0 ``scalesim/topology_utils.py``, ``scalesim/compute/``)
------------------------------------------------------------------------------------
The GEMM ``(M x K) @ (K x N)`` is mapped as SCALE-Sim does: os puts M on the array rows,
N on the columns and streams K; ws holds B (K on rows, N on columns) and streams the M
rows of A; is holds A^T (K on rows, M on columns) and streams the N columns of B. The
spatial dimensions are cut into ``ceil(Sr/R) * ceil(Sc/C)`` folds run back to back in
row-fold-major order. A partly used fold still runs on the whole array: unused PEs get
zero operands, and the skew and drain span all R rows and C columns.

Registers and movement, per PE ``(i, j)``
-----------------------------------------
Every data register has a valid bit travelling with it ("a token is here"; zero padding
is a valid token, an empty slot is not).

os (output stationary), registers ``a``, ``b``, ``acc``, ``n_mac``, ``out``:
  * ``a`` moves left -> right along row i, carrying ``A[m_i, k]``; ``b`` moves top ->
    bottom down column j, carrying ``B[k, n_j]``.
  * Skew: a skew buffer in front of the array delays row i (and column j) by i (j)
    cycles, so ``A[m_i, k]`` and ``B[k, n_j]`` meet in PE (i, j) at cycle ``k + i + j``.
    On that edge the PE latches both and adds their product to ``acc``.
  * The stream phase ends when every PE has done K MACs: the last one is PE
    (R-1, C-1) at cycle ``K + R + C - 3`` (0-based), so the phase is ``K + R + C - 2``.
  * Drain (serialised, R cycles): the first drain cycle copies every ``acc`` into the
    ``out`` chain; each later cycle shifts ``out`` down one row. The bottom row of
    ``out`` is the output port, so row ``R-1`` is out after drain cycle 1 and row 0
    after drain cycle R. Per fold: ``2R + C + K - 2``.

ws (weight stationary) and is (input stationary), registers ``w``, ``x``, ``p``:
  * Preload (R cycles): the held operand shifts down the columns one row per cycle,
    bottom row first, so after R edges row i holds its R x C slice. ws holds
    ``B[k_i, n_j]``; is holds ``A[m_j, k_i]``.
  * Stream: the streamed operand X (ws: rows of A; is: columns of B) enters row i
    from the left, skewed by i cycles, and ``x`` moves right; the partial sum ``p``
    moves down: ``p[i, j] <- p_prev[i-1, j] + x[i, j] * w[i, j]`` (row 0 starts at 0).
    Element t of X meets the sum from the row above in PE (i, j) at stream cycle
    ``t + i + j``; the bottom row of ``p`` is the output port.
  * The stream phase ends when every column has delivered T sums: the last leaves PE
    (R-1, C-1) at stream cycle ``T + R + C - 3`` (0-based), so the phase is
    ``T + R + C - 2`` and the fold ``2R + C + T - 2`` (T = M for ws, N for is). There is
    no separate drain: results leave the bottom as they are formed.
  * A fold covers R of the K reduction rows; the output buffer (a sum register) adds
    the ``ceil(K/R)`` partial results.

Port convention: a result is delivered in the cycle it is latched into a bottom-row
register (``out`` for os, ``p`` for ws/is). With an extra output register below the
array, ws/is would take one more cycle per fold; reading os results straight out of
``acc`` would take one fewer. SCALE-Sim 3.0.0 omits the os drain (``K + R + C - 2``).

Accumulator width
-----------------
``acc_bits=None`` keeps every sum register int64 with two's-complement wrap (the same
ring as ``torch.matmul`` on int64). ``acc_bits=b`` checks every write to a sum register
(``acc``, ``p``, the output buffer) against ``[-2**(b-1), 2**(b-1) - 1]``: raise, or
wrap-and-count. See :mod:`.accumulator`; later models reuse :class:`.accumulator.Accumulator`.
"""

from .accumulator import AccumulatorOverflowError
from .contract import DATAFLOWS, fold_cycles, num_folds, total_cycles
from .gemm import SystolicResult, simulate_gemm

__all__ = [
    "simulate_gemm", "SystolicResult", "AccumulatorOverflowError",
    "fold_cycles", "num_folds", "total_cycles", "DATAFLOWS",
]
