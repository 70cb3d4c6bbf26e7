"""Numba kernels of the systolic-array model (see :mod:`simulators.systolic`).

Slow plain-Python twins: :func:`simulators.systolic.layer_model` (``mapping="fixed"`` and
``mode="scalesim"``) and :func:`simulators._systolic_ref.best_mapping` (the mapper); the
tests compare them with these kernels on random inputs.
:func:`batch_eval_grid` is :func:`batch_eval` for grid index vectors with each mapping priced once
per batch; the tests check that both return the same arrays bit for bit.
Dataflow codes: 0 = os, 1 = ws, 2 = is.  Mode codes: 0 = default mode with the fixed loop
order (``mapping="fixed"``), 1 = scalesim, 2 = default mode with the mapper.
"""

from __future__ import annotations

import numba
import numpy as np

from ._systolic_mapper import _ctlz as _clz
from ._systolic_mapper import map_gemm

# Output tuple of layer_eval, in order.
LAYER_FIELDS = (
    "compute_cycles", "cycles", "ifmap_sram_reads", "filter_sram_reads", "ofmap_sram_writes",
    "psum_sram_reads", "dram_read_bits", "dram_write_bits",
)
PSUM_BITS = 32  # partial sums are kept at 32 bits (int32 accumulators)
# Further per-layer fields of layer_row (the mapping; -1 where a mode has none)
MAP_FIELDS = ("passes", "tile_m", "tile_k", "tile_n", "case", "passes_ifmap", "passes_filter", "passes_ofmap",
              "held", "fill_drain")
ROW_FIELDS = LAYER_FIELDS + MAP_FIELDS
N_ROW = len(ROW_FIELDS)
N_OUT = len(LAYER_FIELDS) + 3  # totals, then the MAC count, the passes and their fill/drain cycles
FILL = ROW_FIELDS.index("fill_drain")
FIXED, SCALESIM, MAPPED = 0, 1, 2


@numba.njit(cache=True)
def _cdiv(a, b):
    return (a + b - 1) // b


@numba.njit(cache=True)
def layer_eval(M, K, N, R, C, df, if_bits, fl_bits, of_bits, bw_bits, a_bits, w_bits, mode):
    """One GEMM (M x K) @ (K x N) on an R x C array: cycles, SRAM word counts, DRAM bits.

    SRAM capacities and bandwidth are in bits (bandwidth per cycle).
    """
    if df == 0:
        sr, sc, t = M, N, K
    elif df == 1:
        sr, sc, t = K, N, M
    else:
        sr, sc, t = K, M, N
    rf = _cdiv(sr, R)
    cf = _cdiv(sc, C)
    folds = rf * cf
    if mode == 1 and df == 0:
        per_fold = t + R + C - 2          # SCALE-Sim: OS drain not serialised
    else:
        per_fold = 2 * R + C + t - 2
    compute = folds * per_fold
    if mode == 1:
        compute -= 1                      # SCALE-Sim reports the last 0-based cycle index

    mk = M * K
    kn = K * N
    mn = M * N
    kf = _cdiv(K, R)
    # SRAM word counts as SCALE-Sim 3.0.0 reports them (DETAILED_ACCESS_REPORT.csv)
    if df == 0:
        if_rd = mk * _cdiv(N, C)
        fl_rd = kn * _cdiv(M, R)
        of_wr = mn
        if mode == 1:
            of_wr += folds * (R + C)       # SCALE-Sim over-count quirk
        ps_rd = 0
    elif df == 1:
        if_rd = mk * _cdiv(N, C)
        fl_rd = kn
        of_wr = mn * kf
        ps_rd = 0 if mode == 1 else mn * (kf - 1)
    else:
        if_rd = mk
        fl_rd = kn * _cdiv(M, C)
        of_wr = mn * kf
        ps_rd = 0 if mode == 1 else mn * (kf - 1)

    # DRAM traffic: operands re-read when their reused block does not fit in the
    # active half of the double-buffered SRAM.
    if_half = if_bits // 2
    fl_half = fl_bits // 2
    of_half = of_bits // 2
    if df == 0:
        if_dram = mk * a_bits if R * K * a_bits <= if_half else mk * a_bits * cf
        fl_dram = kn * w_bits if kn * w_bits <= fl_half else kn * w_bits * rf
        wr_dram = mn * a_bits
        ps_dram_rd = 0
    elif df == 1:
        if_dram = mk * a_bits if mk * a_bits <= if_half else mk * a_bits * cf
        fl_dram = kn * w_bits
        if M * C * PSUM_BITS <= of_half or kf == 1:
            wr_dram = mn * a_bits
            ps_dram_rd = 0
        else:
            wr_dram = mn * PSUM_BITS * (kf - 1) + mn * a_bits
            ps_dram_rd = mn * PSUM_BITS * (kf - 1)
    else:
        mf = _cdiv(M, C)
        if_dram = mk * a_bits
        fl_dram = kn * w_bits if kn * w_bits <= fl_half else kn * w_bits * mf
        if C * N * PSUM_BITS <= of_half or kf == 1:
            wr_dram = mn * a_bits
            ps_dram_rd = 0
        else:
            wr_dram = mn * PSUM_BITS * (kf - 1) + mn * a_bits
            ps_dram_rd = mn * PSUM_BITS * (kf - 1)
    if mode == 1:
        # SCALE-Sim CALC mode: stall-free; every partial-sum write reaches DRAM
        # (M*N per row fold for ws/is; the OS over-count is SRAM-only).
        if_dram = mk * a_bits
        fl_dram = kn * w_bits
        wr_dram = mn * a_bits if df == 0 else mn * kf * a_bits
        ps_dram_rd = 0
    rd_dram = if_dram + fl_dram + ps_dram_rd
    if mode == 1:
        cycles = compute
    else:
        dram_cycles = _cdiv(rd_dram + wr_dram, bw_bits)
        cycles = compute if compute >= dram_cycles else dram_cycles
    return compute, cycles, if_rd, fl_rd, of_wr, ps_rd, rd_dram, wr_dram


@numba.njit(cache=True)
def layer_row(M, K, N, R, C, df, if_bits, fl_bits, of_bits, q_if, q_fl, q_of, bw_bits, a_bits, w_bits, mode,
              row):
    """One GEMM in any mode, written to ``row`` (int64, ROW_FIELDS order).

    ``q_*``: active-half SRAM capacities in elements (mapped mode only; see
    :func:`capacities`).  Cycles are ``max(compute, DRAM bits / bandwidth)`` in the default
    mode (transfers double-buffered behind compute) and the stall-free count in scalesim.
    ``passes``: array passes (one stationary block loaded, streamed and drained), each
    paying the fill and drain once; ``fill_drain``: their fill and drain cycles.
    """
    if mode == MAPPED:
        r = map_gemm(M, K, N, R, C, df, q_if, q_fl, q_of, a_bits, w_bits, PSUM_BITS)
        comp = r[0]
        if bw_bits & (bw_bits - 1) == 0:  # a power of two (the env's grid): a shift, not a division
            dram = (r[5] + r[6] + bw_bits - 1) >> (63 - _clz(bw_bits))
        else:
            dram = (r[5] + r[6] + bw_bits - 1) // bw_bits
        row[0] = comp
        row[1] = comp if comp >= dram else dram
        for j in range(2, 8):
            row[j] = r[j - 1]
        row[8] = r[15]
        for j in range(9, 17):
            row[j] = r[j - 2]
        row[17] = r[16]
    else:
        r8 = layer_eval(M, K, N, R, C, df, if_bits, fl_bits, of_bits, bw_bits, a_bits, w_bits, mode)
        for j in range(8):
            row[j] = r8[j]
        if df == 0:
            row[8] = _cdiv(M, R) * _cdiv(N, C)
        elif df == 1:
            row[8] = _cdiv(K, R) * _cdiv(N, C)
        else:
            row[8] = _cdiv(K, R) * _cdiv(M, C)
        for j in range(9, 17):
            row[j] = -1
        # every pass pays the whole array's fill and drain (SCALE-Sim's os: R + C - 2)
        row[17] = row[8] * ((R + C - 2) if (mode == SCALESIM and df == 0) else (2 * R + C - 2))


@numba.njit(cache=True)
def capacities(if_bits, fl_bits, of_bits, a_bits, w_bits):
    """Active-half capacities in elements: ifmap at a_bits, filter at w_bits, ofmap as
    PSUM_BITS partial sums (a design's constants, computed once per design)."""
    return (if_bits // 2) // a_bits, (fl_bits // 2) // w_bits, (of_bits // 2) // PSUM_BITS


@numba.njit(cache=True)
def design_rows(gemms, R, C, df, if_bits, fl_bits, of_bits, bw_bits, a_bits, w_bits, mode, rows, out):
    """Every GEMM row ``(m, k, n, count)`` of a workload: per-instance results in ``rows``
    (int64, (n, N_ROW)) and in ``out`` (float64, N_OUT) the count-weighted totals of
    LAYER_FIELDS, the MAC count, the passes and their fill/drain cycles."""
    q_if, q_fl, q_of = capacities(if_bits, fl_bits, of_bits, a_bits, w_bits)
    for j in range(out.shape[0]):
        out[j] = 0.0
    for i in range(gemms.shape[0]):
        M = gemms[i, 0]
        K = gemms[i, 1]
        N = gemms[i, 2]
        cnt = gemms[i, 3]
        row = rows[i]
        layer_row(M, K, N, R, C, df, if_bits, fl_bits, of_bits, q_if, q_fl, q_of, bw_bits, a_bits, w_bits,
                  mode, row)
        for j in range(8):
            out[j] += float(row[j]) * cnt
        out[8] += float(M) * K * N * cnt
        out[9] += float(row[8]) * cnt
        out[10] += float(row[17]) * cnt


@numba.njit(cache=True)
def _totals(gemms, R, C, df, if_bits, fl_bits, of_bits, bw_bits, a_bits, w_bits, mode, row, out, d):
    """Count-weighted totals of :func:`layer_row` over a workload's GEMM rows into ``out[d]``
    (N_OUT floats: LAYER_FIELDS, the MAC count, the passes, their fill/drain cycles); ``row`` is scratch (N_ROW int64).
    ``out`` is 2-D and indexed here: a row view per design would cost a reference count.
    design_rows and batch_eval_grid add the same terms in the same order into an array; the three
    stay written out: one shared inlined helper measured 2.29 -> 2.52 s for the exhaustive
    Systolic-v0 space and 34 -> 63 us per evaluate() with breakdown (2026-12-03, medians of 5)."""
    q_if, q_fl, q_of = capacities(if_bits, fl_bits, of_bits, a_bits, w_bits)
    # local accumulators, added in the order of the GEMM rows (the same sums as design_rows)
    t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = t8 = t9 = t10 = 0.0
    for i in range(gemms.shape[0]):
        M = gemms[i, 0]
        K = gemms[i, 1]
        N = gemms[i, 2]
        cnt = gemms[i, 3]
        layer_row(M, K, N, R, C, df, if_bits, fl_bits, of_bits, q_if, q_fl, q_of, bw_bits, a_bits, w_bits,
                  mode, row)
        t0 += float(row[0]) * cnt
        t1 += float(row[1]) * cnt
        t2 += float(row[2]) * cnt
        t3 += float(row[3]) * cnt
        t4 += float(row[4]) * cnt
        t5 += float(row[5]) * cnt
        t6 += float(row[6]) * cnt
        t7 += float(row[7]) * cnt
        t8 += float(M) * K * N * cnt
        t9 += float(row[8]) * cnt
        t10 += float(row[17]) * cnt
    out[d, 0] = t0
    out[d, 1] = t1
    out[d, 2] = t2
    out[d, 3] = t3
    out[d, 4] = t4
    out[d, 5] = t5
    out[d, 6] = t6
    out[d, 7] = t7
    out[d, 8] = t8
    out[d, 9] = t9
    out[d, 10] = t10


@numba.njit(cache=True)
def design_eval(gemms, R, C, df, if_bits, fl_bits, of_bits, bw_bits, a_bits, w_bits, mode, out):
    """Count-weighted totals of :func:`layer_row` over a workload's GEMM rows (``out``:
    float64, N_OUT: the totals of LAYER_FIELDS, the MAC count, the passes and their fill/drain cycles)."""
    row = np.empty(N_ROW, dtype=np.int64)
    _totals(gemms, R, C, df, if_bits, fl_bits, of_bits, bw_bits, a_bits, w_bits, mode, row, out.reshape(1, -1), 0)


@numba.njit(cache=True)
def batch_eval(gemms, R, C, df, if_bits, fl_bits, of_bits, bw_bits, a_bits, w_bits, mode):
    """:func:`design_eval` for ``n`` designs given as parameter arrays; returns ``(n, N_OUT)``."""
    n = R.shape[0]
    res = np.empty((n, N_OUT))
    row = np.empty(N_ROW, dtype=np.int64)  # scratch, allocated once per batch
    for d in range(n):
        _totals(gemms, R[d], C[d], df[d], if_bits[d], fl_bits[d], of_bits[d], bw_bits[d], a_bits[d], w_bits[d],
                mode, row, res, d)
    return res


@numba.njit(cache=True)
def gather(idx, table):
    """``out[j, d] = table[j, idx[d, j]]`` (int64): every parameter's values of a batch of grid
    index vectors in one pass over their rows."""
    n, p = idx.shape
    out = np.empty((p, n), dtype=np.int64)
    for d in range(n):
        for j in range(p):
            out[j, d] = table[j, idx[d, j]]
    return out


@numba.njit(cache=True)
def batch_eval_grid(gemms, idx, tabs, strides, n_keys, mode):
    """:func:`batch_eval` for designs given as grid index vectors, pricing each mapping key once.

    ``idx``: int64 ``(n, 10)`` index vectors (parameter order of the env's space); ``tabs[j, i]``:
    the kernel's value of parameter j at index i (rows, cols, dataflow code, ifmap/filter/ofmap
    SRAM bits, DRAM bits per cycle, clock (unused), act bits, weight bits).  Designs that differ
    only in the bandwidth and the clock share one mapping and every count but the cycles, because
    no mode lets the bandwidth change a mapping or a count (the mapper's rule is DRAM bits, then
    compute cycles; the fixed loop order and SCALE-Sim's counts do not read it): the key
    ``sum(idx[d, j] * strides[j])`` (``strides`` 0 for bandwidth and clock, ``n_keys`` distinct
    values) selects a slot priced once, with ``cycles = max(compute, ceil(DRAM bits /
    bandwidth))`` summed per GEMM row for every bandwidth of the grid.  Returns what
    :func:`batch_eval` returns for the same designs, bit for bit (the same sums in the same order).
    """
    n = idx.shape[0]
    nb = 0
    while nb < tabs.shape[1] and tabs[6, nb] > 0:
        nb += 1
    res = np.empty((n, N_OUT))
    slot = np.full(n_keys, -1, dtype=np.int64)
    store = np.empty((min(n, n_keys), N_OUT + nb))  # N_OUT totals (cycles unused), then cycles per bandwidth
    row = np.empty(N_ROW, dtype=np.int64)
    used = 0
    for d in range(n):
        k = 0
        for j in range(idx.shape[1]):
            k += idx[d, j] * strides[j]
        s = slot[k]
        if s < 0:
            s = used
            used += 1
            slot[k] = s
            R = tabs[0, idx[d, 0]]
            C = tabs[1, idx[d, 1]]
            df = tabs[2, idx[d, 2]]
            if_bits = tabs[3, idx[d, 3]]
            fl_bits = tabs[4, idx[d, 4]]
            of_bits = tabs[5, idx[d, 5]]
            bw_bits = tabs[6, idx[d, 6]]
            a_bits = tabs[8, idx[d, 8]]
            w_bits = tabs[9, idx[d, 9]]
            q_if, q_fl, q_of = capacities(if_bits, fl_bits, of_bits, a_bits, w_bits)
            st = store[s]
            for j in range(N_OUT + nb):
                st[j] = 0.0
            for i in range(gemms.shape[0]):
                M = gemms[i, 0]
                K = gemms[i, 1]
                N = gemms[i, 2]
                cnt = gemms[i, 3]
                layer_row(M, K, N, R, C, df, if_bits, fl_bits, of_bits, q_if, q_fl, q_of, bw_bits, a_bits, w_bits,
                          mode, row)
                for j in range(8):
                    st[j] += float(row[j]) * cnt
                st[8] += float(M) * K * N * cnt
                st[9] += float(row[8]) * cnt
                st[10] += float(row[17]) * cnt
                comp = row[0]
                bits = row[6] + row[7]
                for b in range(nb):
                    if mode == SCALESIM:
                        cyc = row[1]      # stall-free: the bandwidth does not enter
                    else:
                        dram = (bits + tabs[6, b] - 1) // tabs[6, b]
                        cyc = comp if comp >= dram else dram
                    st[N_OUT + b] += float(cyc) * cnt
        for j in range(N_OUT):
            res[d, j] = store[s, j]
        res[d, 1] = store[s, N_OUT + idx[d, 6]]
    return res


@numba.njit(cache=True, parallel=True)
def batch_eval_par(gemms, R, C, df, if_bits, fl_bits, of_bits, bw_bits, a_bits, w_bits, mode, n_chunks):
    """:func:`batch_eval` over ``n_chunks`` contiguous chunks of the designs in parallel threads;
    each design's row is computed by the same code in the same order, so the result is
    bit-identical to :func:`batch_eval`."""
    n = R.shape[0]
    res = np.empty((n, N_OUT))
    step = (n + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        lo = c * step
        hi = min(n, lo + step)
        if lo < hi:
            res[lo:hi] = batch_eval(gemms, R[lo:hi], C[lo:hi], df[lo:hi], if_bits[lo:hi], fl_bits[lo:hi],
                                    of_bits[lo:hi], bw_bits[lo:hi], a_bits[lo:hi], w_bits[lo:hi], mode)
    return res


@numba.njit(cache=True, parallel=True)
def batch_eval_grid_par(gemms, idx, tabs, strides, n_keys, mode, n_chunks):
    """:func:`batch_eval_grid` over ``n_chunks`` contiguous chunks in parallel threads, each with
    its own key table (a key shared across chunks is mapped once per chunk); bit-identical to
    :func:`batch_eval_grid`, since a design's values never depend on which slot priced them."""
    n = idx.shape[0]
    res = np.empty((n, N_OUT))
    step = (n + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        lo = c * step
        hi = min(n, lo + step)
        if lo < hi:
            res[lo:hi] = batch_eval_grid(gemms, idx[lo:hi], tabs, strides, n_keys, mode)
    return res
