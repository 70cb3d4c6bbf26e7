"""Plain-Python reference of SCALE-Sim 3.0.0's USER-mode (bandwidth-limited) stall count.

Companion of ``scalesim_user_mode.md`` (the rule in words). :func:`user_mode` reproduces, for one
layer, SCALE-Sim's COMPUTE_REPORT "Stall Cycles" and "Total Cycles" and the DETAILED_ACCESS_REPORT
DRAM read/write word counts in ``InterfaceBandwidth USER`` mode, without SCALE-Sim: it rebuilds
the demand and prefetch orders of the systolic array and walks the three buffers' bookkeeping
line by line (one line = one array cycle). Run it against the goldens with::

    python experiments/systolic/scalesim_user_model.py   # reads tests/data/scalesim_user_goldens.csv

It is written from the rule, not from SCALE-Sim's code, and needs only numpy. It is a reference
for a port, not a fast model: the walk visits every demand line (about 1 s per 100 k lines).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time

import numpy as np

__all__ = ["operand_matrices", "demand_and_prefetch", "user_mode", "check_goldens"]

FILTER_OFFSET, OFMAP_OFFSET = 10_000_000, 20_000_000


def operand_matrices(M: int, N: int, K: int, conv: tuple | None = None):
    """ifmap (M x K), filter (K x N) and ofmap (M x N) address matrices; -1 = no data.

    ``conv = (H, W, Fh, Fw, C, Nf, S)`` gives im2col addresses (HWC input, taps ordered filter
    row, filter column, channel; taps past the input edge are -1), else a dense GEMM.
    """
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
        ifmap = np.where((row < H) & (col < W), (row * W + col) * C + ch[None, :], -1)
    filt = FILTER_OFFSET + np.arange(N)[None, :] * K + np.arange(K)[:, None]
    ofmap = OFMAP_OFFSET + np.arange(M)[:, None] * N + np.arange(N)[None, :]
    return ifmap, filt, ofmap


def _pad(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.full((rows, cols), -1, dtype=np.int64)
    out[: a.shape[0], : a.shape[1]] = a
    return out


def _skew(a: np.ndarray) -> np.ndarray:
    """Column c delayed by c lines (rows + cols - 1 lines)."""
    r, c = a.shape
    out = np.full((r + c - 1, c), -1, dtype=np.int64)
    for j in range(c):
        out[j:j + r, j] = a[:, j]
    return out


def _gap(rows: int, cols: int) -> np.ndarray:
    return np.full((rows, cols), -1, dtype=np.int64)


def _diag_order(a: np.ndarray) -> np.ndarray:
    """Elements along anti-diagonals r + c = 0, 1, ..., each from the largest row down."""
    r, c = np.indices(a.shape)
    order = np.lexsort((-r.ravel(), (r + c).ravel()))
    return a.ravel()[order]


def _blocks(n: int, size: int):
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def demand_and_prefetch(ifmap, filt, ofmap, R: int, C: int, df: str):
    """Per-line demand matrices (ifmap, filter, ofmap) and the ifmap/filter prefetch orders.

    One demand line per array cycle; each fold is ``T + R + C - 2`` (os) or ``2R + C + T - 2``
    (ws, is) lines, folds in column-fold-outer order.
    """
    M, K = ifmap.shape
    N = filt.shape[1]
    dem_i, dem_f, dem_o = [], [], []
    if df == "os":  # Sr = M on rows, Sc = N on cols, T = K
        T = K
        rb, cb = _blocks(M, R), _blocks(N, C)
        for c0, c1 in cb:
            for r0, r1 in rb:
                dem_i.append(_skew(np.vstack([_pad(ifmap[r0:r1].T, T, R), _gap(C - 1, R)])))
                dem_f.append(_skew(np.vstack([_pad(filt[:, c0:c1], T, C), _gap(R - 1, C)])))
                o = _pad(ofmap[r0:r1, c0:c1], R, C)[::-1]
                dem_o.append(_skew(np.vstack([_gap(T - 1, C), o])))
        pre_i = _diag_order(np.vstack([_pad(ifmap[r0:r1].T, T, R) for r0, r1 in rb]))
        pre_f = _diag_order(np.vstack([_pad(filt[:, c0:c1], T, C) for c0, c1 in cb]))
    elif df == "ws":  # Sr = K on rows, Sc = N on cols, T = M
        T = M
        rb, cb = _blocks(K, R), _blocks(N, C)
        for c0, c1 in cb:
            for r0, r1 in rb:
                dem_i.append(_skew(np.vstack([_gap(R, R), _pad(ifmap[:, r0:r1], T, R),
                                              _gap(C - 1, R)])))
                f = _pad(filt[r0:r1, c0:c1], R, C)[::-1]
                dem_f.append(np.vstack([f, _gap(R + C + T - 2, C)]))
                dem_o.append(_skew(np.vstack([_gap(2 * R - 1, C), _pad(ofmap[:, c0:c1], T, C)])))
        pre_i = _diag_order(np.vstack([_pad(ifmap[:, r0:r1], T, R) for r0, r1 in rb]))
        pre_f = np.vstack([_pad(filt[:, c0:c1], K, C) for c0, c1 in cb]).ravel()
    elif df == "is":  # Sr = K on rows, Sc = M on cols, T = N
        T = N
        rb, cb = _blocks(K, R), _blocks(M, C)
        for c0, c1 in cb:
            for r0, r1 in rb:
                i = _pad(ifmap[c0:c1, r0:r1].T, R, C)[::-1]
                dem_i.append(np.vstack([i, _gap(R + C + T - 2, C)]))
                dem_f.append(_skew(np.vstack([_gap(R, R), _pad(filt[r0:r1].T, T, R),
                                              _gap(C - 1, R)])))
                dem_o.append(_skew(np.vstack([_gap(2 * R - 1, C), _pad(ofmap[c0:c1].T, T, C)])))
        pre_i = np.vstack([_pad(ifmap[c0:c1].T, K, C) for c0, c1 in cb]).ravel()
        pre_f = _diag_order(np.vstack([_pad(filt[r0:r1].T, T, R) for r0, r1 in rb]))
    else:
        raise ValueError(f"dataflow {df!r} is not one of ('os', 'ws', 'is')")
    return np.vstack(dem_i), np.vstack(dem_f), np.vstack(dem_o), pre_i, pre_f


class _ReadBuffer:
    """Double-buffered read SRAM fed from DRAM at ``bw`` words/cycle (USER mode).

    Its prefetch order is cut into sets of ``ceil(words / 100)`` non-empty entries; the active
    buffer is a circular window of ``A`` sets, and each prefetch moves it by ``P`` sets.
    """

    def __init__(self, prefetch: np.ndarray, size_words: int, bw: int):
        active = math.ceil(size_words * 0.5)
        pref = size_words - active
        per_set = math.ceil(size_words / 100)
        valid = prefetch != -1
        set_of_pos = np.cumsum(valid) - 1
        set_of_pos = set_of_pos // per_set
        n_valid = int(valid.sum())
        # A trailing empty set exists when the entries fill the last set exactly.
        self.n_sets = n_valid // per_set + 1
        self.A = min(self.n_sets, math.ceil(active / per_set))
        self.P = min(self.n_sets - self.A, math.ceil(pref / per_set))
        addrs, sets = prefetch[valid], set_of_pos[valid]
        self.sets_of: dict[int, tuple[int, ...]] = {}
        uniq, first, counts = np.unique(addrs, return_index=True, return_counts=True)
        self.dup = bool((counts > 1).any())
        if self.dup:
            by_addr: dict[int, list[int]] = {}
            for a, s in zip(addrs.tolist(), sets.tolist()):
                by_addr.setdefault(a, []).append(s)
            self.sets_of = {a: tuple(v) for a, v in by_addr.items()}
        self.lookup_keys, self.lookup_sets = uniq, sets[first]
        fetch_rows = math.ceil(prefetch.size / bw)
        self.first_words = min(math.ceil(active / bw), fetch_rows) * bw
        self.n_pref_lines = math.ceil(pref / bw)
        self.bw = bw
        self.start = 0
        self.last = None  # cycle the last prefetch completes
        self.reads = 0

    def _set_ids(self, line: np.ndarray) -> np.ndarray:
        return self.lookup_sets[np.searchsorted(self.lookup_keys, line)]

    def _in_window(self, s) -> np.ndarray:
        return (s - self.start) % self.n_sets < self.A

    def _hit(self, addr: int) -> bool:
        if self.dup:
            return any((s - self.start) % self.n_sets < self.A for s in self.sets_of[addr])
        return bool(self._in_window(self._set_ids(np.array([addr])))[0])

    def service(self, line: np.ndarray, cycle: int) -> int:
        """Serve one demand line requested at ``cycle``; return its stall (may be negative)."""
        if self.last is None:  # first access: fill the active buffer before ``cycle``
            self.last = cycle - 1
            self.reads += self.first_words
        line = line[line != -1]
        offset = 1  # hit latency
        if line.size == 0 or self.A == self.n_sets:
            return offset - 1
        if not self.dup and self._in_window(self._set_ids(line)).all():
            return offset - 1
        for addr in line.tolist():
            while not self._hit(addr):
                self.start = (self.start + self.P) % self.n_sets
                self.last += self.n_pref_lines + 1  # DRAM latency 1, one line per cycle
                self.reads += self.n_pref_lines * self.bw
                p = self.last - (cycle + offset)
                offset += 2 * p if p > 0 else p  # SCALE-Sim adds a positive wait twice
        return offset - 1


class _WriteBuffer:
    """Double-buffered OFMAP SRAM drained to DRAM at ``bw`` words/cycle (USER mode)."""

    def __init__(self, size_words: int, bw: int):
        self.total = size_words
        self.drain = size_words - math.ceil(size_words * 0.5)
        self.bw = bw
        self.free = size_words
        self.drain_end = 0
        self.lines: list[int] = []  # fill of each closed line in the drain queue
        self.open = 0  # entries in the open line
        self.ptr = 0  # next queued line to drain
        self.writes = 0
        self.stop = None

    def _drain_now(self, start: int) -> int:
        if self.open:  # the open line is closed (padded) before a drain
            self.lines.append(self.open)
            self.open = 0
        n = min(math.ceil(self.drain / self.bw), len(self.lines) - self.ptr)
        data = n * self.bw - (self.bw - self.lines[self.ptr + n - 1])
        self.writes += data
        self.free += data  # padding of closed partial lines in the middle counts as data
        self.ptr += n
        self.stop = start + n - 1
        return start + n - 1

    def service(self, count: int, cycle: int) -> int:
        """Store ``count`` words requested at ``cycle``; return the cycle the line completes."""
        cur = cycle
        for _ in range(count):
            self.open += 1
            self.free -= 1
            if self.open == self.bw:
                self.lines.append(self.open)
                self.open = 0
            if cur < self.drain_end:
                if self.free <= 0:
                    cur = self.drain_end
            elif self.free < self.total - self.drain:
                self.drain_end = self._drain_now(cur)
        return cur

    def flush(self, cycle: int) -> None:
        """Drain everything left after the last line (SCALE-Sim's ``empty_all_buffers``)."""
        if self.open:
            self.lines.append(self.open)
            self.open = 0
        while self.ptr < len(self.lines):
            self.drain_end = self._drain_now(cycle)
            cycle = self.drain_end + 1


def user_mode(M: int, N: int, K: int, rows: int, cols: int, dataflow: str, ifmap_kb: int,
              filter_kb: int, ofmap_kb: int, bw: int, conv: tuple | None = None) -> dict:
    """SCALE-Sim 3.0.0 USER-mode results of one layer (GEMM ``(M x K) @ (K x N)``).

    ``bw`` is the DRAM bandwidth in words/cycle for all three operands (SCALE-Sim's
    ``IfmapSRAMBankBandwidth``, ``FilterSRAMBankBandwidth`` and ``Bandwidth``); SRAM sizes are kB
    of 1-byte words. Returns ``stall_cycles``, ``total_cycles`` (SCALE-Sim's 0-based last cycle,
    stalls included), ``ifmap_dram_reads``, ``filter_dram_reads``, ``ofmap_dram_writes``.
    """
    ifmap, filt, ofmap = operand_matrices(M, N, K, conv)
    d_i, d_f, d_o, p_i, p_f = demand_and_prefetch(ifmap, filt, ofmap, rows, cols, dataflow)
    bufs = [_ReadBuffer(p_i, ifmap_kb * 1024, bw), _ReadBuffer(p_f, filter_kb * 1024, bw)]
    wbuf = _WriteBuffer(ofmap_kb * 1024, bw)
    o_counts = (d_o != -1).sum(axis=1).tolist()
    stalls, last_out = 0, 0
    for i in range(d_o.shape[0]):
        cycle = i + stalls
        s_i = bufs[0].service(d_i[i], cycle)
        s_f = bufs[1].service(d_f[i], cycle)
        out = wbuf.service(o_counts[i], cycle)
        last_out = max(last_out, out)
        stalls += max(s_i, s_f, out - cycle)
    wbuf.flush(out)
    return {"stall_cycles": stalls, "total_cycles": last_out,
            "ifmap_dram_reads": bufs[0].reads, "filter_dram_reads": bufs[1].reads,
            "ofmap_dram_writes": wbuf.writes}


def check_goldens(path: str) -> list[dict]:
    """Run :func:`user_mode` on every row of scalesim_user_goldens.csv; return comparisons."""
    out = []
    with open(path) as f:
        for g in csv.DictReader(f):
            conv = None
            if g["input_type"] == "conv":
                conv = tuple(int(g[k]) for k in ("ifmap_h", "ifmap_w", "filter_h", "filter_w",
                                                 "channels", "num_filters", "stride"))
            t0 = time.perf_counter()
            res = user_mode(int(g["M"]), int(g["N"]), int(g["K"]), int(g["rows"]), int(g["cols"]),
                            g["dataflow"], int(g["ifmap_sram_kb"]), int(g["filter_sram_kb"]),
                            int(g["ofmap_sram_kb"]), int(g["bw"]), conv)
            row = {"case_id": g["case_id"], "wall_s": time.perf_counter() - t0}
            for key, val in res.items():
                row[key] = val
                row[f"golden_{key}"] = int(float(g[key]))
            row["exact"] = all(res[k] == row[f"golden_{k}"] for k in res)
            out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    """Compare the reference against the committed USER-mode goldens."""
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--goldens", default=os.path.join(here, "..", "..", "tests", "data",
                                                      "scalesim_user_goldens.csv"))
    args = ap.parse_args(argv)
    rows = check_goldens(args.goldens)
    keys = ("stall_cycles", "total_cycles", "ifmap_dram_reads", "filter_dram_reads",
            "ofmap_dram_writes")
    for r in rows:
        diffs = " ".join(f"{k}={r[k]}/{r['golden_' + k]}" for k in keys if r[k] != r["golden_" + k])
        print(f"{r['case_id']:40s} {'exact' if r['exact'] else 'DIFF ' + diffs} ({r['wall_s']:.2f} s)")
    for k in keys:
        print(f"{k}: {sum(r[k] == r['golden_' + k] for r in rows)}/{len(rows)} exact")
    return 0


if __name__ == "__main__":
    sys.exit(main())
