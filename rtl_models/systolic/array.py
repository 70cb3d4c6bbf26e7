"""Register-level R x C PE array: one clock edge per ``*_step`` call, one fold per ``run_*``.

Template rules (follow these in every datapath model):

* A register bank is an ``(R, C)`` numpy array in a frozen dataclass; each data register
  has a ``*_vld`` bool twin that says a token (real operand or zero padding) is present.
* A ``*_step`` function reads only the previous state and this cycle's edge inputs and
  returns a brand-new state; nothing is written in place. Every register therefore
  updates from its neighbours' *previous* values: a true synchronous clock edge.
* Sum registers are written through :meth:`Accumulator.fit` (width check or wrap).
* The array's output port is the bottom row of a register bank; a result counts as
  delivered in the cycle it is latched there. A phase ends when a done condition on the
  registers or the output collector holds, never after a precomputed number of cycles;
  ``max_cycles`` is only a guard against a bug that would loop forever.

The module docstring of :mod:`rtl_models.systolic` describes the registers per dataflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .accumulator import Accumulator

_I64 = np.int64


def _shift_right(reg: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """Next value of a bank that moves left -> right: column 0 takes the edge input."""
    nxt = np.empty_like(reg)
    nxt[:, 0] = edge
    nxt[:, 1:] = reg[:, :-1]
    return nxt


def _shift_down(reg: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """Next value of a bank that moves top -> bottom: row 0 takes the edge input."""
    nxt = np.empty_like(reg)
    nxt[0, :] = edge
    nxt[1:, :] = reg[:-1, :]
    return nxt


def _skewed_edge(tile: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Edge inputs of cycle ``t`` from a skew buffer: lane ``i`` emits ``tile[t - i, i]``.

    ``tile`` is ``(T, lanes)``; lane ``i`` is delayed by ``i`` cycles (in hardware a
    triangular bank of ``i`` registers in front of the array), which lines up the
    operands that must meet in PE ``(i, j)``. Outside ``0 <= t - i < T`` the lane is empty.
    """
    steps, lanes = tile.shape
    k = t - np.arange(lanes)
    vld = (k >= 0) & (k < steps)
    val = np.where(vld, tile[np.clip(k, 0, steps - 1), np.arange(lanes)], 0).astype(_I64)
    return val, vld


# --------------------------------------------------------------------------- os
@dataclass(frozen=True)
class OSRegs:
    """Registers of an output-stationary array (all ``(R, C)``).

    ``a`` moves right (row i carries A[m_i, k]), ``b`` moves down (column j carries
    B[k, n_j]), ``acc`` stays (PE (i, j) owns C[m_i, n_j]), ``n_mac`` counts the MACs a PE
    has done (the controller's done signal), ``out`` is the drain chain moving down whose
    bottom row is the output port.
    """

    a: np.ndarray
    a_vld: np.ndarray
    b: np.ndarray
    b_vld: np.ndarray
    acc: np.ndarray
    n_mac: np.ndarray
    out: np.ndarray
    out_vld: np.ndarray

    @classmethod
    def empty(cls, rows: int, cols: int) -> OSRegs:
        """All registers zero, no token present."""
        z, f = np.zeros((rows, cols), _I64), np.zeros((rows, cols), bool)
        return cls(z, f, z, f, z, z, z, f)


def os_stream_step(s: OSRegs, a_edge: np.ndarray, a_edge_vld: np.ndarray, b_edge: np.ndarray,
                   b_edge_vld: np.ndarray, acc: Accumulator, where: str) -> tuple[OSRegs, np.ndarray]:
    """One streaming cycle: operands move one PE right/down; a PE holding both MACs.

    Returns the new state and the ``(R, C)`` mask of PEs that fired this cycle.
    """
    a, a_vld = _shift_right(s.a, a_edge), _shift_right(s.a_vld, a_edge_vld)
    b, b_vld = _shift_down(s.b, b_edge), _shift_down(s.b_vld, b_edge_vld)
    fire = a_vld & b_vld
    new_acc = acc.fit(s.acc + np.where(fire, a * b, 0), where)
    return OSRegs(a, a_vld, b, b_vld, new_acc, s.n_mac + fire, s.out, s.out_vld), fire


def os_drain_step(s: OSRegs, load: bool) -> OSRegs:
    """One drain cycle: ``load`` (the first) copies every ``acc`` into ``out`` and clears
    ``acc``; the others shift ``out`` down one row, so row ``R-1-d`` is on the port after
    drain cycle ``d + 1``.
    """
    if load:
        z = np.zeros_like(s.acc)
        return OSRegs(s.a, s.a_vld, s.b, s.b_vld, z, np.zeros_like(s.n_mac), s.acc,
                      np.ones_like(s.out_vld))
    out = _shift_down(s.out, np.zeros(s.out.shape[1], _I64))
    out_vld = _shift_down(s.out_vld, np.zeros(s.out.shape[1], bool))
    return OSRegs(s.a, s.a_vld, s.b, s.b_vld, s.acc, s.n_mac, out, out_vld)


def run_os_fold(a_tile: np.ndarray, b_tile: np.ndarray, used: tuple[int, int], acc: Accumulator,
                tag: str) -> tuple[np.ndarray, dict[str, int], list[int]]:
    """Run one os fold; ``a_tile`` is ``(R, K)``, ``b_tile`` is ``(K, C)``, zero padded.

    ``used = (rows, cols)`` of real PEs (the rest compute on padding zeros). Returns the
    ``(R, C)`` result tile, cycles per phase, and real MACs per cycle.
    """
    rows, k = a_tile.shape
    cols = b_tile.shape[1]
    real = np.zeros((rows, cols), bool)
    real[:used[0], :used[1]] = True
    a_stream = np.ascontiguousarray(a_tile.T)   # (K, R): lane i is array row i
    s = OSRegs.empty(rows, cols)
    trace: list[int] = []
    guard = 4 * (k + rows + cols) + 8
    t = 0
    while not (s.n_mac == k).all():             # stream until every PE did its K MACs
        if t > guard:
            raise RuntimeError(f"internal error: os stream did not finish in {guard} cycles")
        a_e, a_v = _skewed_edge(a_stream, t)
        b_e, b_v = _skewed_edge(b_tile, t)
        s, fire = os_stream_step(s, a_e, a_v, b_e, b_v, acc, f"{tag} PE acc cycle {t}")
        trace.append(int((fire & real).sum()))
        t += 1
    stream = t
    result = np.zeros((rows, cols), _I64)
    got = 0
    while got < rows:                           # drain until the port delivered R rows
        if t > 2 * guard:
            raise RuntimeError(f"internal error: os drain did not finish in {guard} cycles")
        s = os_drain_step(s, load=(t == stream))
        if s.out_vld[-1].all():
            result[rows - 1 - got] = s.out[-1]
            got += 1
        trace.append(0)
        t += 1
    return result, {"preload": 0, "stream": stream, "drain": t - stream}, trace


# ------------------------------------------------------------------ ws and is
@dataclass(frozen=True)
class StationaryRegs:
    """Registers of a weight/input-stationary array (all ``(R, C)``).

    ``w`` is the stationary operand (shifted down during preload, then held), ``x`` is the
    streaming operand moving right (row i carries lane i of a row of X), ``p`` is the
    partial sum moving down; the bottom row of ``p`` is the output port.
    """

    w: np.ndarray
    w_vld: np.ndarray
    x: np.ndarray
    x_vld: np.ndarray
    p: np.ndarray
    p_vld: np.ndarray

    @classmethod
    def empty(cls, rows: int, cols: int) -> StationaryRegs:
        """All registers zero, no token present."""
        z, f = np.zeros((rows, cols), _I64), np.zeros((rows, cols), bool)
        return cls(z, f, z, f, z, f)


def preload_step(s: StationaryRegs, w_edge: np.ndarray) -> StationaryRegs:
    """One preload cycle: the stationary bank shifts down; row 0 takes ``w_edge``."""
    w = _shift_down(s.w, w_edge)
    w_vld = _shift_down(s.w_vld, np.ones(s.w.shape[1], bool))
    return StationaryRegs(w, w_vld, s.x, s.x_vld, s.p, s.p_vld)


def stationary_stream_step(s: StationaryRegs, x_edge: np.ndarray, x_edge_vld: np.ndarray,
                           acc: Accumulator, where: str) -> tuple[StationaryRegs, np.ndarray]:
    """One streaming cycle: ``x`` moves right; ``p[i] = p_prev[i-1] + x[i] * w[i]`` (row 0 adds to 0).

    Returns the new state and the mask of PEs that fired.
    """
    x, x_vld = _shift_right(s.x, x_edge), _shift_right(s.x_vld, x_edge_vld)
    cols = s.p.shape[1]
    p_above = _shift_down(s.p, np.zeros(cols, _I64))
    p_above_vld = _shift_down(s.p_vld, x_vld[0])
    if not np.array_equal(p_above_vld, x_vld):
        # the input skew must deliver x[i] exactly when the partial sum from row i-1 arrives
        raise RuntimeError(f"internal error: {where}: partial sum and operand out of step")
    fire = x_vld & s.w_vld
    p = acc.fit(p_above + np.where(fire, x * s.w, 0), where)
    return StationaryRegs(s.w, s.w_vld, x, x_vld, p, x_vld), fire


def run_stationary_fold(w_tile: np.ndarray, x_tile: np.ndarray, used: tuple[int, int],
                        acc: Accumulator, tag: str) -> tuple[np.ndarray, dict[str, int], list[int]]:
    """Run one ws/is fold: ``Y = X @ W``, ``w_tile`` ``(R, C)`` held, ``x_tile`` ``(T, R)`` streamed.

    Both tiles are zero padded; ``used = (rows, cols)`` of real PEs. Returns the ``(T, C)``
    partial result tile, cycles per phase, and real MACs per cycle.
    """
    rows, cols = w_tile.shape
    steps = x_tile.shape[0]
    real = np.zeros((rows, cols), bool)
    real[:used[0], :used[1]] = True
    s = StationaryRegs.empty(rows, cols)
    trace: list[int] = []
    guard = 4 * (steps + rows + cols) + 8
    t = 0
    while not s.w_vld.all():                    # preload: bottom row enters first
        if t > guard:
            raise RuntimeError(f"internal error: preload did not finish in {guard} cycles")
        s = preload_step(s, w_tile[rows - 1 - t])
        trace.append(0)
        t += 1
    preload = t
    result = np.zeros((steps, cols), _I64)
    got = np.zeros(cols, np.int64)              # per-column write pointer of the collector
    while not (got == steps).all():             # stream until every column delivered T sums
        if t > 2 * guard:
            raise RuntimeError(f"internal error: stream did not finish in {guard} cycles")
        x_e, x_v = _skewed_edge(x_tile, t - preload)
        s, fire = stationary_stream_step(s, x_e, x_v, acc, f"{tag} PE psum cycle {t}")
        port = np.flatnonzero(s.p_vld[-1])
        result[got[port], port] = s.p[-1, port]
        got[port] += 1
        trace.append(int((fire & real).sum()))
        t += 1
    return result, {"preload": preload, "stream": t - preload, "drain": 0}, trace
