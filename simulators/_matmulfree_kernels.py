"""Numba kernels of the MatMul-free token-generation core model (see :mod:`simulators.matmulfree`).

The slow plain-Python reference is ``simulators.matmulfree._timing_reference``; the tests
compare the two on random designs.  Integer work (beats, transactions, bytes) is exact
int64 arithmetic; times are float64 in one fixed operation order shared with the reference.

Tables (built by ``simulators.matmulfree._program``):

* ``mats`` int64 ``(n, 3)``: one row per BitLinear kind ``(K, N, count)`` per token;
* ``vecs`` int64 ``(n, 4)``: one row per vector instruction kind
  ``(unit, element_cycles, count, reduces)``, unit 0 = RMS unit, 1 = row-wise unit;
  ``reduces`` = 1 when the instruction ends in a cross-core reduction (sum of squares, absmax).
"""

from __future__ import annotations

import numba
import numpy as np

#: Output columns of :func:`token_timing` (all per token).
FIELDS = (
    "tmm_cycles", "rms_cycles", "row_cycles", "load_cycles", "store_cycles", "sync_cycles",
    "issue_cycles", "core_cycles", "ddr_transferred_bytes", "weight_bytes", "ddr_s", "latency_s", "active_cores",
)
N_FIELDS = len(FIELDS)


@numba.njit(cache=True)
def _cdiv(a, b):  # pragma: no cover - jitted
    return -((-a) // b)


@numba.njit(cache=True)
def _log2_ceil(n):  # pragma: no cover - jitted
    r = 0
    v = n - 1
    while v > 0:
        r += 1
        v >>= 1
    return r


@numba.njit(cache=True)
def _timing_on(mats, vecs, n_instr, cores, clock_mhz, port_bits, burst, weights_per_byte, pipelined,
               channels, t_req, fu_lat, issue_cyc, sync_base, sync_lvl, act_bus_bits, ddr_lat_ns,
               ddr_bytes_per_s, granule, ddr_eff, out):  # pragma: no cover - jitted
    """Per-token cycle and DDR model with the program spread over exactly ``cores`` cores."""
    port_bytes = port_bits // 8
    txn_bytes = burst * port_bytes
    g_full = _cdiv(txn_bytes, granule) * granule
    lat = int(np.ceil(ddr_lat_ns * clock_mhz / 1000.0))
    sync = 0
    if cores > 1:
        sync = sync_base + sync_lvl * _log2_ceil(cores)
    tmm = 0
    loads = 0
    stores = 0
    barriers = 0
    ddr_bytes = 0
    w_bytes = 0
    for r in range(mats.shape[0]):
        k = mats[r, 0]
        n = mats[r, 1]
        cnt = mats[r, 2]
        row_bytes = _cdiv(k, weights_per_byte)
        rows_c = _cdiv(n, cores)
        bytes_c = rows_c * row_bytes
        beats = _cdiv(bytes_c, port_bytes)
        txns = _cdiv(beats, burst)
        if pipelined:
            t = lat + beats
        else:
            t = lat + txns * t_req + 2 * beats
        tmm += cnt * t
        # DDR side: every core streams its own rows; the last burst of a core is short.
        n_full = n // rows_c
        rem_rows = n - n_full * rows_c
        per_core = (bytes_c // txn_bytes) * g_full + _cdiv(bytes_c % txn_bytes, granule) * granule
        rb = rem_rows * row_bytes
        per_rem = (rb // txn_bytes) * g_full + _cdiv(rb % txn_bytes, granule) * granule
        ddr_bytes += cnt * (n_full * per_core + per_rem)
        w_bytes += cnt * n * row_bytes
        loads += cnt * _cdiv(k * 8, act_bus_bits)
        stores += cnt * _cdiv(rows_c * 32, act_bus_bits)
        barriers += cnt
    rms = 0
    row = 0
    for r in range(vecs.shape[0]):
        c = vecs[r, 2] * (_cdiv(vecs[r, 1], cores) + fu_lat)
        if vecs[r, 0] == 0:
            rms += c
        else:
            row += c
        barriers += vecs[r, 2] * vecs[r, 3]
    sync_c = barriers * sync
    issue = n_instr * issue_cyc
    core = tmm + rms + row + loads + stores + sync_c + issue
    ddr_s = ddr_bytes / (channels * ddr_bytes_per_s * ddr_eff)
    core_s = core / (clock_mhz * 1e6)
    out[0] = tmm
    out[1] = rms
    out[2] = row
    out[3] = loads
    out[4] = stores
    out[5] = sync_c
    out[6] = issue
    out[7] = core
    out[8] = ddr_bytes
    out[9] = w_bytes
    out[10] = ddr_s
    out[11] = max(core_s, ddr_s)
    out[12] = cores


@numba.njit(cache=True)
def token_timing(mats, vecs, n_instr, cores, clock_mhz, port_bits, burst, weights_per_byte, pipelined,
                 channels, t_req, fu_lat, issue_cyc, sync_base, sync_lvl, act_bus_bits, ddr_lat_ns,
                 ddr_bytes_per_s, granule, ddr_eff, out):  # pragma: no cover - jitted
    """Per-token model of one design; writes ``out`` (float64, N_FIELDS).

    The program runs on the active core count that minimises the token time among
    ``cores`` and the powers of two below it (more cores can always idle some).
    """
    buf = np.empty(N_FIELDS)
    _timing_on(mats, vecs, n_instr, cores, clock_mhz, port_bits, burst, weights_per_byte, pipelined, channels,
               t_req, fu_lat, issue_cyc, sync_base, sync_lvl, act_bus_bits, ddr_lat_ns, ddr_bytes_per_s, granule,
               ddr_eff, out)
    c = 1
    while c < cores:
        _timing_on(mats, vecs, n_instr, c, clock_mhz, port_bits, burst, weights_per_byte, pipelined, channels,
                   t_req, fu_lat, issue_cyc, sync_base, sync_lvl, act_bus_bits, ddr_lat_ns, ddr_bytes_per_s,
                   granule, ddr_eff, buf)
        if buf[11] < out[11]:
            for j in range(N_FIELDS):
                out[j] = buf[j]
        c *= 2


@numba.njit(cache=True)
def batch_timing(mats, vecs, n_instr, cores, clock_mhz, port_bits, burst, weights_per_byte, pipelined,
                 channels, t_req, fu_lat, issue_cyc, sync_base, sync_lvl, act_bus_bits, ddr_lat_ns,
                 ddr_bytes_per_s, granule, ddr_eff):  # pragma: no cover - jitted
    """:func:`token_timing` for ``n`` designs given as arrays; returns ``(n, N_FIELDS)``."""
    n = cores.shape[0]
    res = np.empty((n, N_FIELDS))
    buf = np.empty(N_FIELDS)
    for i in range(n):
        token_timing(mats, vecs, n_instr, cores[i], clock_mhz[i], port_bits[i], burst[i], weights_per_byte[i],
                     pipelined[i], channels[i], t_req, fu_lat, issue_cyc, sync_base, sync_lvl, act_bus_bits,
                     ddr_lat_ns, ddr_bytes_per_s, granule, ddr_eff, buf)
        for j in range(N_FIELDS):
            res[i, j] = buf[j]
    return res
