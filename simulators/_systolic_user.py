"""SCALE-Sim 3.0.0 USER mode (bandwidth-limited DRAM) of one layer: a numba walk (``mode="scalesim-user"``).

The rule is stated in ``experiments/systolic/scalesim_user_mode.md`` and implemented line by line
in plain Python by ``experiments/systolic/scalesim_user_model.py`` (which reproduces every USER-mode
golden of the real tool exactly); this module is its port, and the tests compare the two on the
goldens and on random layers.  In short: the array consumes one demand line per cycle; the ifmap
and filter read buffers are circular windows over their operand's prefetch order, cut into sets
of ``ceil(words / 100)`` entries, refilled ``ceil(half / bw)`` DRAM lines at a time when demand
leaves the window (a positive wait counted twice, an early refill pulling the line earlier); the
ofmap write buffer drains half of itself at a time; a line stalls by the largest of the three.

There is no closed form (each stall shifts the cycle of every later refill), so the walk visits
every demand line: its cost grows with the layer's cycle count (measured in benchmarks/README.md),
which makes this a validation mode for small layers, not the search mode.  Demand lines are
generated from index arithmetic per fold (the reference materialises them: gigabytes for large
layers); only the two prefetch orders are built, in numpy.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["user_mode", "operand_matrices"]

_DF = {"os": 0, "ws": 1, "is": 2}


def operand_matrices(M: int, N: int, K: int, conv: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """ifmap (M x K) addresses and filter (K x N) indices; -1 = no data (an im2col tap past the
    input edge).  ``conv = (H, W, Fh, Fw, C, Nf, S)`` gives SCALE-Sim's im2col addresses (HWC
    input, taps ordered filter row, filter column, channel), else a dense GEMM."""
    if conv is None:
        ifmap = np.arange(M * K, dtype=np.int64).reshape(M, K)
    else:
        H, W, Fh, Fw, C, _nf, S = conv
        ow = math.ceil((W - Fw + S) / S)
        oy, ox = np.divmod(np.arange(M), ow)
        fy, rem = np.divmod(np.arange(K), Fw * C)
        fx, ch = np.divmod(rem, C)
        row = oy[:, None] * S + fy[None, :]
        col = ox[:, None] * S + fx[None, :]
        ifmap = np.where((row < H) & (col < W), (row * W + col) * C + ch[None, :], -1).astype(np.int64)
    filt = (np.arange(N, dtype=np.int64)[None, :] * K + np.arange(K, dtype=np.int64)[:, None])
    return ifmap, filt


def _pad(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.full((rows, cols), -1, dtype=np.int64)
    out[: a.shape[0], : a.shape[1]] = a
    return out


def _diag_order(a: np.ndarray) -> np.ndarray:
    """Anti-diagonals r + c = 0, 1, ..., each from the largest row down."""
    r, c = np.indices(a.shape)
    return a.ravel()[np.lexsort((-r.ravel(), (r + c).ravel()))]


def _blocks(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def _prefetch_orders(ifmap: np.ndarray, filt: np.ndarray, R: int, C: int, df: str) -> tuple[np.ndarray, np.ndarray]:
    M, K = ifmap.shape
    N = filt.shape[1]
    if df == "os":
        pre_i = _diag_order(np.vstack([_pad(ifmap[r0:r1].T, K, R) for r0, r1 in _blocks(M, R)]))
        pre_f = _diag_order(np.vstack([_pad(filt[:, c0:c1], K, C) for c0, c1 in _blocks(N, C)]))
    elif df == "ws":
        pre_i = _diag_order(np.vstack([_pad(ifmap[:, r0:r1], M, R) for r0, r1 in _blocks(K, R)]))
        pre_f = np.vstack([_pad(filt[:, c0:c1], K, C) for c0, c1 in _blocks(N, C)]).ravel()
    else:
        pre_i = np.vstack([_pad(ifmap[c0:c1].T, K, C) for c0, c1 in _blocks(M, C)]).ravel()
        pre_f = _diag_order(np.vstack([_pad(filt[r0:r1].T, N, R) for r0, r1 in _blocks(K, R)]))
    return pre_i, pre_f


def _buffer(prefetch: np.ndarray, n_addr: int, words: int, bw: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """A read buffer's set lookup (CSR: address -> its sets) and its constants
    (n_sets, A, P, first_words, prefetch_lines)."""
    active = math.ceil(words * 0.5)
    pref = words - active
    per_set = math.ceil(words / 100)
    valid = prefetch != -1
    sets = (np.cumsum(valid) - 1) // per_set
    n_valid = int(valid.sum())
    n_sets = n_valid // per_set + 1  # one empty set more when the entries fill the last one exactly
    A = min(n_sets, math.ceil(active / per_set))
    P = min(n_sets - A, math.ceil(pref / per_set))
    addrs, asets = prefetch[valid], sets[valid]
    order = np.argsort(addrs, kind="stable")
    ptr = np.zeros(n_addr + 1, dtype=np.int64)
    np.add.at(ptr, addrs + 1, 1)
    ptr = np.cumsum(ptr)
    first = min(math.ceil(active / bw), math.ceil(prefetch.size / bw)) * bw
    return ptr, asets[order].astype(np.int64), (n_sets, A, P, first, math.ceil(pref / bw))


@numba.njit(cache=True)
def _hit(a, ptr, sets, start, n_sets, A):
    for q in range(ptr[a], ptr[a + 1]):
        if (sets[q] - start) % n_sets < A:
            return True
    return False


@numba.njit(cache=True)
def _read(addr_of, n, cycle, st, ptr, sets, n_sets, A, P, n_lines, bw):
    """Serve one demand line (``n`` addresses, -1 entries already dropped) of a read buffer at
    ``cycle``; ``st`` = [window start, last fill cycle, DRAM words read]; returns the stall."""
    offset = 1
    if n == 0 or A == n_sets:
        return 0
    for i in range(n):
        a = addr_of[i]
        while not _hit(a, ptr, sets, st[0], n_sets, A):
            st[0] = (st[0] + P) % n_sets
            st[1] += n_lines + 1
            st[2] += n_lines * bw
            p = st[1] - (cycle + offset)
            offset += 2 * p if p > 0 else p
    return offset - 1


@numba.njit(cache=True)
def _drain(wq, ws, start, bw, half_lines):
    """Drain up to ``half_lines`` queued lines from ``start``; ws = [free, drain_end, open, n_lines,
    ptr, writes]; returns the cycle of the last line written."""
    if ws[2] > 0:
        wq[ws[3]] = ws[2]
        ws[3] += 1
        ws[2] = 0
    n = min(half_lines, ws[3] - ws[4])
    data = n * bw - (bw - wq[ws[4] + n - 1])
    ws[5] += data
    ws[0] += data  # padding of a partial line inside a drain counts as data (SCALE-Sim quirk)
    ws[4] += n
    return start + n - 1


@numba.njit(cache=True)
def _walk(df, M, N, K, R, C, ifmap, filt, ip, isets, icst, fp, fsets, fcst, of_words, bw, wq):
    """Every demand line of the layer in order; returns (stalls, last ofmap cycle, ifmap, filter
    DRAM words read, ofmap DRAM words written)."""
    if df == 0:
        T, na, nb = K, (M + R - 1) // R, (N + C - 1) // C
    elif df == 1:
        T, na, nb = M, (K + R - 1) // R, (N + C - 1) // C
    else:
        T, na, nb = N, (K + R - 1) // R, (M + C - 1) // C
    lines = T + R + C - 2 if df == 0 else 2 * R + C + T - 2
    ist = np.zeros(3, dtype=np.int64)
    fst = np.zeros(3, dtype=np.int64)
    ws = np.zeros(6, dtype=np.int64)
    ws[0] = of_words
    drain = of_words - (of_words + 1) // 2
    half_lines = (drain + bw - 1) // bw
    hold = of_words - drain
    ibuf = np.empty(R + C, dtype=np.int64)
    fbuf = np.empty(R + C, dtype=np.int64)
    stalls = 0
    last_out = 0
    out = 0
    g = 0  # global line index
    for cb in range(nb):
        c0 = cb * C
        cw = min(C, (N if df < 2 else M) - c0)
        for rb in range(na):
            r0 = rb * R
            rw = min(R, (M if df == 0 else K) - r0)
            for l in range(lines):
                cycle = g + stalls
                ni = 0
                nf = 0
                no = 0
                if df == 0:
                    for j in range(rw):  # ifmap: skewed ifmap[r0 + j, t]
                        t = l - j
                        if 0 <= t < T and ifmap[r0 + j, t] >= 0:
                            ibuf[ni] = ifmap[r0 + j, t]
                            ni += 1
                    for j in range(cw):  # filter: skewed filt[t, c0 + j]
                        t = l - j
                        if 0 <= t < T:
                            fbuf[nf] = filt[t, c0 + j]
                            nf += 1
                    for j in range(cw):  # ofmap: skewed, after T - 1 idle lines, R rows (flipped)
                        u = l - j - (T - 1)
                        if 0 <= u < R and R - 1 - u < rw:
                            no += 1
                elif df == 1:
                    for j in range(rw):  # ifmap: skewed, after R idle lines: ifmap[u, r0 + j]
                        u = l - j - R
                        if 0 <= u < T and ifmap[u, r0 + j] >= 0:
                            ibuf[ni] = ifmap[u, r0 + j]
                            ni += 1
                    if l < R and R - 1 - l < rw:  # filter: the block's rows, flipped, not skewed
                        for j in range(cw):
                            fbuf[nf] = filt[r0 + R - 1 - l, c0 + j]
                            nf += 1
                    for j in range(cw):  # ofmap: skewed, after 2R - 1 idle lines
                        u = l - j - (2 * R - 1)
                        if 0 <= u < T:
                            no += 1
                else:
                    if l < R and R - 1 - l < rw:  # ifmap: block of ifmap^T, rows flipped
                        for j in range(cw):
                            v = ifmap[c0 + j, r0 + R - 1 - l]
                            if v >= 0:
                                ibuf[ni] = v
                                ni += 1
                    for j in range(rw):  # filter: skewed, after R idle lines: filt[r0 + j, u]
                        u = l - j - R
                        if 0 <= u < T:
                            fbuf[nf] = filt[r0 + j, u]
                            nf += 1
                    for j in range(cw):  # ofmap: skewed, after 2R - 1 idle lines
                        u = l - j - (2 * R - 1)
                        if 0 <= u < T:
                            no += 1
                if g == 0:  # first access: fill the active halves before cycle 0
                    ist[1] = cycle - 1
                    ist[2] = icst[3]
                    fst[1] = cycle - 1
                    fst[2] = fcst[3]
                s_i = _read(ibuf, ni, cycle, ist, ip, isets, icst[0], icst[1], icst[2], icst[4], bw)
                s_f = _read(fbuf, nf, cycle, fst, fp, fsets, fcst[0], fcst[1], fcst[2], fcst[4], bw)
                cur = cycle
                for _w in range(no):
                    ws[2] += 1
                    ws[0] -= 1
                    if ws[2] == bw:
                        wq[ws[3]] = ws[2]
                        ws[3] += 1
                        ws[2] = 0
                    if cur < ws[1]:
                        if ws[0] <= 0:
                            cur = ws[1]
                    elif ws[0] < hold:
                        ws[1] = _drain(wq, ws, cur, bw, half_lines)
                out = cur
                if out > last_out:
                    last_out = out
                s = s_i
                if s_f > s:
                    s = s_f
                if out - cycle > s:
                    s = out - cycle
                stalls += s
                g += 1
    # after the last line everything left is drained back to back (not counted as stalls)
    if ws[2] > 0:
        wq[ws[3]] = ws[2]
        ws[3] += 1
        ws[2] = 0
    cyc = out
    while ws[4] < ws[3]:
        ws[1] = _drain(wq, ws, cyc, bw, half_lines)
        cyc = ws[1] + 1
    return stalls, last_out, ist[2], fst[2], ws[5]


def user_mode(M: int, N: int, K: int, rows: int, cols: int, dataflow: str, ifmap_kb: float, filter_kb: float,
              ofmap_kb: float, bw: int, conv: tuple | None = None) -> dict[str, int]:
    """SCALE-Sim 3.0.0 USER-mode results of one layer ``(M x K) @ (K x N)``: ``stall_cycles``,
    ``total_cycles`` (its reported Total Cycles: the last 0-based cycle, stalls included) and the
    DRAM words ``ifmap_dram_reads``, ``filter_dram_reads``, ``ofmap_dram_writes``.

    ``bw``: DRAM words (bytes) per cycle for all three operands; SRAMs in kB of 1-byte words;
    ``conv = (H, W, Fh, Fw, C, Nf, S)`` for SCALE-Sim's im2col addresses of a convolution.
    """
    ifmap, filt = operand_matrices(M, N, K, conv)
    pre_i, pre_f = _prefetch_orders(ifmap, filt, rows, cols, dataflow)
    n_if_addr = int(ifmap.max()) + 1 if ifmap.size else 1
    ip, isets, icst = _buffer(pre_i, n_if_addr, int(ifmap_kb * 1024), bw)
    fp, fsets, fcst = _buffer(pre_f, K * N, int(filter_kb * 1024), bw)
    df = _DF[dataflow]
    folds = (-(-((M if df == 0 else K)) // rows)) * (-(-((N if df < 2 else M)) // cols))
    per_fold_out = M * N if df == 0 else M * N  # ofmap words demanded per pass over the outputs
    passes_out = 1 if df == 0 else -(-K // rows)
    wq = np.zeros(per_fold_out * passes_out + folds + 2, dtype=np.int64)
    s, last, ird, frd, owr = _walk(df, M, N, K, rows, cols, ifmap, filt, ip, isets, np.array(icst, np.int64),
                                  fp, fsets, np.array(fcst, np.int64), int(ofmap_kb * 1024), bw, wq)
    return {"stall_cycles": int(s), "total_cycles": int(last), "ifmap_dram_reads": int(ird),
            "filter_dram_reads": int(frd), "ofmap_dram_writes": int(owr)}
