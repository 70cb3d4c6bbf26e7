"""Amaranth generator of the systolic PE and the R x C array (os and ws), held to array.py.

The hardware is the register model of :mod:`rtl_models.systolic.array`, register for
register: the skew buffers in front of the array (lane ``i`` delayed by ``i`` registers),
the operand registers with their valid bits moving right/down, the sum registers of width
``acc_bits`` (two's-complement wrap, with a per-PE overflow output), the os drain chain and
the ws preload. One fold per job; the tiling of a GEMM into folds and the ws output buffer
that adds row folds stay in :mod:`rtl_models.systolic.gemm` (they are a controller's job).

Ports of the array (the cosimulation contract of :mod:`rtl_models.cosim`):

os: a beat is one reduction step ``k``: ``a_in`` = ``A_tile[:, k]`` (R lanes of
``act_bits``), ``b_in`` = ``B_tile[k, :]`` (C lanes of ``weight_bits``), ``last`` on
``k = K-1``. Streaming ends on the edge where PE (R-1, C-1) does its MAC with the last
token; the R drain cycles follow (``port`` = bottom row of the drain chain).

ws: R preload beats (``w_in`` = ``W_tile[R-1-t, :]``, bottom row first), then one beat per
streamed row ``x_in`` = ``X_tile[t, :]`` with ``last`` on ``t = T-1``; ``port`` is the
bottom row of partial sums, ``port_vld`` one bit per column.

Lanes are packed little-end first: lane ``j`` of a port is bits ``[j*w, (j+1)*w)``;
``fire``/``ovf`` bit ``i*C + j`` is PE (i, j).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .accumulator import Accumulator
from .array import (OSRegs, StationaryRegs, _skewed_edge, os_drain_step, os_stream_step, preload_step,
                    run_os_fold, run_stationary_fold, stationary_stream_step)
from ..cosim import Bench, Datapath, Port, abbrev

__all__ = ["SystolicHW", "SystolicPE", "SystolicArray", "SYSTOLIC_PE", "SYSTOLIC_ARRAY"]

MAX_DIM = 32
HW_DATAFLOWS = ("os", "ws")


@dataclass(frozen=True, kw_only=True)
class SystolicHW:
    """Build parameters of the array (the Python model's ``rows``, ``cols``, ``dataflow``, ``acc_bits``).

    act_bits / weight_bits: signed operand widths of A and B (2..32, so every product is
    exact in the model's int64 with ``acc_bits`` set). acc_bits: width of every sum
    register (2..63); the hardware wraps like ``simulate_gemm(..., overflow="wrap")``.
    """

    rows: int = 4
    cols: int = 4
    dataflow: str = "os"
    act_bits: int = 8
    weight_bits: int = 8
    acc_bits: int = 32

    def __post_init__(self) -> None:
        for name, lo, hi in (("rows", 1, MAX_DIM), ("cols", 1, MAX_DIM), ("act_bits", 2, 32),
                             ("weight_bits", 2, 32), ("acc_bits", 2, 63)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{name}={v!r} cannot be built; allowed: an integer in {lo}..{hi}")
        if self.dataflow not in HW_DATAFLOWS:
            raise ValueError(f"dataflow={self.dataflow!r} cannot be built; allowed: {', '.join(HW_DATAFLOWS)} "
                             f"(is = ws with the operands swapped)")


def _amaranth():
    try:
        import amaranth  # noqa: F401
    except ImportError:
        raise ImportError("the RTL generators need Amaranth; pip install 'archgym[rtl]'") from None
    from amaranth.hdl import Module, Mux, Signal, signed
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out
    return Module, Mux, Signal, signed, wiring, In, Out


def _ovf(total, bits: int):
    """1 where the exact value ``total`` does not fit a signed ``bits``-wide register."""
    return (total < -(1 << (bits - 1))) | (total > (1 << (bits - 1)) - 1)


def SystolicPE(p: SystolicHW):
    """One PE of the array for ``p.dataflow`` (an Amaranth component; see the module doc).

    os PE: operand registers ``a``/``b`` (+ valid), sum register ``acc``, drain register
    ``out``. ws PE: stationary ``w``, operand ``x``, partial sum ``p``. ``fire`` and ``ovf``
    say whether the PE does a MAC at this edge and whether its exact sum leaves ``acc_bits``.
    """
    Module, Mux, Signal, signed, wiring, In, Out = _amaranth()
    ab, wb, accb = p.act_bits, p.weight_bits, p.acc_bits

    if p.dataflow == "os":
        class OSPE(wiring.Component):
            def __init__(self):
                super().__init__({
                    "a_i": In(signed(ab)), "av_i": In(1), "b_i": In(signed(wb)), "bv_i": In(1),
                    "out_i": In(signed(accb)), "ov_i": In(1), "load": In(1), "shift": In(1),
                    "a_o": Out(signed(ab)), "av_o": Out(1), "b_o": Out(signed(wb)), "bv_o": Out(1),
                    "acc": Out(signed(accb)), "out_o": Out(signed(accb)), "ov_o": Out(1),
                    "fire": Out(1), "ovf": Out(1)})

            def elaborate(self, platform):
                m = Module()
                total = Signal(signed(max(accb, ab + wb) + 1))
                m.d.comb += total.eq(self.acc + self.a_i * self.b_i)
                with m.If(self.load):          # first drain cycle: acc -> out, clear the PE
                    m.d.sync += [self.out_o.eq(self.acc), self.ov_o.eq(1), self.acc.eq(0),
                                 self.av_o.eq(0), self.bv_o.eq(0)]
                with m.Elif(self.shift):       # later drain cycles: the out chain moves down
                    m.d.sync += [self.out_o.eq(self.out_i), self.ov_o.eq(self.ov_i)]
                with m.Else():                 # stream: operands move, a PE holding both MACs
                    m.d.comb += [self.fire.eq(self.av_i & self.bv_i),
                                 self.ovf.eq(self.fire & _ovf(total, accb))]
                    m.d.sync += [self.a_o.eq(self.a_i), self.av_o.eq(self.av_i), self.b_o.eq(self.b_i),
                                 self.bv_o.eq(self.bv_i), self.out_o.eq(0), self.ov_o.eq(0)]
                    with m.If(self.fire):
                        m.d.sync += self.acc.eq(total)   # truncation = two's-complement wrap
                return m
        return OSPE()

    class WSPE(wiring.Component):
        def __init__(self):
            super().__init__({
                "w_i": In(signed(wb)), "wv_i": In(1), "x_i": In(signed(ab)), "xv_i": In(1),
                "p_i": In(signed(accb)), "preload": In(1), "clear": In(1),
                "w_o": Out(signed(wb)), "wv_o": Out(1), "x_o": Out(signed(ab)), "xv_o": Out(1),
                "p_o": Out(signed(accb)), "pv_o": Out(1), "fire": Out(1), "ovf": Out(1)})

        def elaborate(self, platform):
            m = Module()
            total = Signal(signed(max(accb, ab + wb) + 1))
            m.d.comb += total.eq(self.p_i + Mux(self.fire, self.x_i * self.w_o, 0))
            with m.If(self.preload):           # stationary bank shifts down; sums and operands empty
                m.d.sync += [self.w_o.eq(self.w_i), self.wv_o.eq(self.wv_i), self.x_o.eq(0),
                             self.xv_o.eq(0), self.p_o.eq(0), self.pv_o.eq(0)]
            with m.Else():                     # stream: x moves right, the partial sum moves down
                m.d.comb += [self.fire.eq(self.xv_i & self.wv_o),
                             self.ovf.eq(self.fire & _ovf(total, accb))]
                m.d.sync += [self.x_o.eq(self.x_i), self.xv_o.eq(self.xv_i), self.p_o.eq(total),
                             self.pv_o.eq(self.xv_i)]
                with m.If(self.clear):         # last edge of the fold: the next fold preloads afresh
                    m.d.sync += self.wv_o.eq(0)
            return m
    return WSPE()


def SystolicArray(p: SystolicHW):
    """The R x C array with skew buffers and its fold controller (an Amaranth component)."""
    Module, Mux, Signal, signed, wiring, In, Out = _amaranth()
    from amaranth.hdl import Cat

    R, C, ab, wb, accb = p.rows, p.cols, p.act_bits, p.weight_bits, p.acc_bits
    os_ = p.dataflow == "os"
    sig = {"in_valid": In(1), "in_ready": Out(1), "busy": Out(1), "last": In(1),
           "port": Out(C * accb), "fire": Out(R * C), "ovf": Out(R * C)}
    if os_:
        sig.update({"a_in": In(R * ab), "b_in": In(C * wb), "port_vld": Out(1)})
    else:
        sig.update({"w_in": In(C * wb), "x_in": In(R * ab), "port_vld": Out(C)})

    class Array(wiring.Component):
        def __init__(self):
            super().__init__(sig)

        def elaborate(self, platform):
            m = Module()
            pes = [[SystolicPE(p) for _ in range(C)] for _ in range(R)]
            for i in range(R):
                for j in range(C):
                    m.submodules[f"pe_{i}_{j}"] = pes[i][j]
            take = Signal()
            m.d.comb += take.eq(self.in_valid & self.in_ready)

            def skew(lanes: int, width: int, data, name: str, with_last: bool, valid):
                """Lane l delayed by l registers; per-lane (value, valid), the delay registers' valids,
                and the last bit of the last lane (the token of row R-1)."""
                out, any_v, last_bit = [], [], None
                for lane in range(lanes):
                    v = data[lane * width:(lane + 1) * width].as_signed()
                    vld, lst = valid, self.last & valid
                    for d in range(lane):
                        rv = Signal(signed(width), name=f"{name}_skew_{lane}_{d}")
                        rvld = Signal(name=f"{name}_skew_vld_{lane}_{d}")
                        m.d.sync += [rv.eq(v), rvld.eq(vld)]
                        any_v.append(rvld)
                        v, vld = rv, rvld
                        if with_last and lane == lanes - 1:
                            rl = Signal(name=f"{name}_skew_last_{d}")
                            m.d.sync += rl.eq(lst)
                            lst = rl
                    out.append((v, vld))
                    if with_last and lane == lanes - 1:
                        last_bit = lst
                return out, any_v, last_bit

            fires = [pes[i][j].fire for i in range(R) for j in range(C)]
            ovfs = [pes[i][j].ovf for i in range(R) for j in range(C)]
            m.d.comb += [self.fire.eq(Cat(*fires)), self.ovf.eq(Cat(*ovfs))]
            # the last token travels with the operand of row R-1 (os: a, ws: x) to PE (R-1, C-1)
            row_last = [Signal(name=f"last_{j}") for j in range(C)]
            if os_:
                a_edge, a_any, last_edge = skew(R, ab, self.a_in, "a", True, take)
                b_edge, b_any, _ = skew(C, wb, self.b_in, "b", False, take)
                draining = Signal()
                d_cnt = Signal(range(R + 1))
                flush = Signal()
                for i in range(R):
                    for j in range(C):
                        pe = pes[i][j]
                        src_a = a_edge[i] if j == 0 else (pes[i][j - 1].a_o, pes[i][j - 1].av_o)
                        src_b = b_edge[j] if i == 0 else (pes[i - 1][j].b_o, pes[i - 1][j].bv_o)
                        m.d.comb += [pe.a_i.eq(src_a[0]), pe.av_i.eq(src_a[1]), pe.b_i.eq(src_b[0]),
                                     pe.bv_i.eq(src_b[1]),
                                     pe.load.eq(draining & (d_cnt == 0)), pe.shift.eq(draining & (d_cnt != 0))]
                        if i > 0:
                            m.d.comb += [pe.out_i.eq(pes[i - 1][j].out_o), pe.ov_i.eq(pes[i - 1][j].ov_o)]
                for j in range(C):
                    m.d.sync += row_last[j].eq(Mux(draining, 0, last_edge if j == 0 else row_last[j - 1]))
                done = pes[R - 1][C - 1].fire & (last_edge if C == 1 else row_last[C - 2])
                m.d.comb += [self.in_ready.eq(~draining & ~flush),
                             self.port.eq(Cat(*[pes[R - 1][j].out_o for j in range(C)])),
                             self.port_vld.eq(pes[R - 1][0].ov_o)]
                with m.If(draining):
                    m.d.sync += d_cnt.eq(d_cnt + 1)
                    with m.If(d_cnt == R - 1):
                        m.d.sync += [draining.eq(0), d_cnt.eq(0)]
                with m.Elif(done):
                    m.d.sync += [draining.eq(1), flush.eq(0)]
                with m.Elif(take & self.last):
                    m.d.sync += flush.eq(1)
                inflight = [v for _, v in a_edge] + [v for _, v in b_edge] + a_any + b_any
                m.d.comb += self.busy.eq(draining | flush | Cat(*inflight).any()
                                         | Cat(*[pes[i][j].av_o for i in range(R) for j in range(C)]).any())
                return m

            # ws
            preload = Signal(init=1)
            p_cnt = Signal(range(R + 1))
            flush = Signal()
            x_take = Signal()
            m.d.comb += x_take.eq(take & ~preload)
            # x lanes only move on stream beats: the skew buffer's valid is gated with ~preload
            x_edge, x_any, last_edge = skew(R, ab, self.x_in, "x", True, x_take)
            done = pes[R - 1][C - 1].fire & (last_edge if C == 1 else row_last[C - 2])
            do_preload = preload & take
            for i in range(R):
                for j in range(C):
                    pe = pes[i][j]
                    src_x = x_edge[i] if j == 0 else (pes[i][j - 1].x_o, pes[i][j - 1].xv_o)
                    m.d.comb += [pe.x_i.eq(src_x[0]), pe.xv_i.eq(src_x[1]), pe.preload.eq(do_preload),
                                 pe.clear.eq(done)]
                    if i == 0:
                        m.d.comb += [pe.w_i.eq(self.w_in[j * wb:(j + 1) * wb].as_signed()), pe.wv_i.eq(1),
                                     pe.p_i.eq(0)]
                    else:
                        m.d.comb += [pe.w_i.eq(pes[i - 1][j].w_o), pe.wv_i.eq(pes[i - 1][j].wv_o),
                                     pe.p_i.eq(pes[i - 1][j].p_o)]
            for j in range(C):
                m.d.sync += row_last[j].eq(Mux(do_preload, 0, last_edge if j == 0 else row_last[j - 1]))
            m.d.comb += [self.in_ready.eq(~flush),
                         self.port.eq(Cat(*[pes[R - 1][j].p_o for j in range(C)])),
                         self.port_vld.eq(Cat(*[pes[R - 1][j].pv_o for j in range(C)]))]
            with m.If(do_preload):
                m.d.sync += p_cnt.eq(p_cnt + 1)
                with m.If(p_cnt == R - 1):
                    m.d.sync += [preload.eq(0), p_cnt.eq(0)]
            with m.If(done):
                m.d.sync += [preload.eq(1), flush.eq(0)]
            with m.Elif(x_take & self.last):
                m.d.sync += flush.eq(1)
            m.d.comb += self.busy.eq(~preload | (p_cnt != 0) | flush | Cat(*x_any).any())
            return m
    return Array()


# ----------------------------------------------------------------------- cosimulation
def _pack(values, width: int) -> int:
    out = 0
    for i, v in enumerate(values):
        out |= (int(v) & ((1 << width) - 1)) << (i * width)
    return out


def _unpack(raw: int, lanes: int, width: int) -> tuple[int, ...]:
    vals = []
    for i in range(lanes):
        v = (raw >> (i * width)) & ((1 << width) - 1)
        vals.append(v - (1 << width) if v >> (width - 1) else v)
    return tuple(vals)


def _mask(bits: np.ndarray) -> int:
    return int(sum(1 << i for i, b in enumerate(np.asarray(bits).ravel()) if b))


@dataclass(frozen=True)
class FoldVector:
    """One fold: os ``a_tile`` (R, K) and ``b_tile`` (K, C); ws ``w_tile`` (R, C) and ``x_tile`` (T, R).

    ``used`` = real PEs (rows, cols); the rest of the tile is zero padding as in gemm.py.
    """

    tile1: np.ndarray
    tile2: np.ndarray
    used: tuple[int, int]
    label: str


class _Systolic(Datapath):
    Params = SystolicHW

    def __init__(self, name: str, summary: str, fixed_pe: bool) -> None:
        self.name, self.summary, self.fixed_pe = name, summary, fixed_pe

    def params(self, raw=None):
        raw = dict(raw or {})
        if self.fixed_pe:
            for k in ("rows", "cols"):
                if k in raw:
                    raise ValueError(f"parameter {k!r} is fixed to 1 for {self.name}; use systolic-array")
            raw.update(rows=1, cols=1)
        return super().params(raw)

    def elaborate(self, params: SystolicHW):
        return SystolicArray(params)

    def bench(self, params: SystolicHW) -> Bench:
        from amaranth.back import verilog

        top = f"systolic_{params.dataflow}_{params.rows}x{params.cols}"
        text = verilog.convert(SystolicArray(params), name=top, emit_src=False)
        R, C = params.rows, params.cols
        if params.dataflow == "os":
            ins = (Port("a_in", R * params.act_bits), Port("b_in", C * params.weight_bits), Port("last", 1))
            outs = (Port("port", C * params.acc_bits), Port("port_vld", 1))
        else:
            ins = (Port("w_in", C * params.weight_bits), Port("x_in", R * params.act_bits), Port("last", 1))
            outs = (Port("port", C * params.acc_bits), Port("port_vld", C))
        return Bench(top, text, ins, outs + (Port("fire", R * C, comb=True), Port("ovf", R * C, comb=True)))

    # -- vectors
    def vectors(self, params: SystolicHW, n: int, rng) -> list[FoldVector]:
        R, C = params.rows, params.cols
        alo, ahi = -(1 << (params.act_bits - 1)), (1 << (params.act_bits - 1)) - 1
        wlo, whi = -(1 << (params.weight_bits - 1)), (1 << (params.weight_bits - 1)) - 1
        os_ = params.dataflow == "os"
        long_t = 2 * (R + C) + 8

        def make(t: int, fill, used, label):
            if os_:
                a = np.zeros((R, t), np.int64)
                b = np.zeros((t, C), np.int64)
                a[:used[0]] = fill("a", (used[0], t))
                b[:, :used[1]] = fill("b", (t, used[1]))
                return FoldVector(a, b, used, label)
            w = np.zeros((R, C), np.int64)
            x = np.zeros((t, R), np.int64)
            w[:used[0], :used[1]] = fill("b", (used[0], used[1]))
            x[:, :used[0]] = fill("a", (t, used[0]))
            return FoldVector(w, x, used, label)

        def const(va, vb):
            return lambda which, shape: np.full(shape, va if which == "a" else vb, np.int64)

        def rand(which, shape):
            lo, hi = (alo, ahi) if which == "a" else (wlo, whi)
            return rng.integers(lo, hi + 1, size=shape, dtype=np.int64)

        edge = [make(1, rand, (R, C), "T=1"),
                make(1, const(0, 0), (R, C), "all zero"),
                make(long_t, const(alo, wlo), (R, C), "min x min (largest products, wraps acc_bits)"),
                make(long_t, const(ahi, wlo), (R, C), "max x min (most negative products)"),
                make(long_t, const(ahi, whi), (R, C), "max x max"),
                make(3, rand, (1, 1), "one real PE, rest padding")]
        out = list(edge)
        for _ in range(n):
            t = int(rng.integers(1, long_t + 1))
            used = (int(rng.integers(1, R + 1)), int(rng.integers(1, C + 1)))
            out.append(make(t, rand, used, "random"))
        return out

    def describe(self, v: FoldVector) -> str:
        if self._os(v):
            names = ("A_tile (R x K)", "B_tile (K x C)")
        else:
            names = ("W_tile (R x C)", "X_tile (T x R)")
        return (f"{v.label}; used PEs {v.used}; {names[0]}={abbrev(v.tile1.tolist(), 8)}; "
                f"{names[1]}={abbrev(v.tile2.tolist(), 8)}")

    @staticmethod
    def _os(v: FoldVector) -> bool:
        return v.tile1.shape[1] == v.tile2.shape[0]

    # -- model trace
    def expect(self, params: SystolicHW, v: FoldVector):
        return self._replay(params, v)[:2]

    def _replay(self, p: SystolicHW, v: FoldVector):
        """(beats, per-cycle rows, result tile) from the model's step functions."""
        return self._expect_os(p, v) if p.dataflow == "os" else self._expect_ws(p, v)

    def _expect_os(self, p: SystolicHW, v: FoldVector):
        R, C = p.rows, p.cols
        a_tile, b_tile = v.tile1, v.tile2
        K = a_tile.shape[1]
        beats = [{"a_in": _pack(a_tile[:, k], p.act_bits), "b_in": _pack(b_tile[k], p.weight_bits),
                  "last": int(k == K - 1)} for k in range(K)]
        # The steps of run_os_fold, recording every register the ports show.
        acc = Accumulator(p.acc_bits, "wrap")
        s = OSRegs.empty(R, C)
        a_stream = np.ascontiguousarray(a_tile.T)
        rows, t, result, got = [], 0, np.zeros((R, C), np.int64), 0
        while not (s.n_mac == K).all():
            a_e, a_v = _skewed_edge(a_stream, t)
            b_e, b_v = _skewed_edge(b_tile, t)
            before = acc.overflows
            s, fire = os_stream_step(s, a_e, a_v, b_e, b_v, acc, "cosim")
            rows.append(self._row_os(t < K, s, fire, acc.overflows - before))
            t += 1
        stream = t
        while got < R:
            s = os_drain_step(s, load=(t == stream))
            if s.out_vld[-1].all():
                result[R - 1 - got] = s.out[-1]
                got += 1
            rows.append(self._row_os(False, s, np.zeros((R, C), bool), 0))
            t += 1
        return beats, rows, result

    def _row_os(self, take: bool, s: OSRegs, fire, ovf: int) -> dict[str, Any]:
        return {"take": int(take), "port": tuple(int(x) for x in s.out[-1]), "port_vld": int(s.out_vld[-1].all()),
                "fire": _mask(fire), "ovf": ovf}

    def _expect_ws(self, p: SystolicHW, v: FoldVector):
        R, C = p.rows, p.cols
        w_tile, x_tile = v.tile1, v.tile2
        T = x_tile.shape[0]
        beats = [{"w_in": _pack(w_tile[R - 1 - t], p.weight_bits), "x_in": 0, "last": 0} for t in range(R)]
        beats += [{"w_in": 0, "x_in": _pack(x_tile[t], p.act_bits), "last": int(t == T - 1)} for t in range(T)]
        acc = Accumulator(p.acc_bits, "wrap")
        s = StationaryRegs.empty(R, C)
        rows, t = [], 0
        while not s.w_vld.all():
            s = preload_step(s, w_tile[R - 1 - t])
            rows.append(self._row_ws(True, s, np.zeros((R, C), bool), 0))
            t += 1
        pre = t
        result = np.zeros((T, C), np.int64)
        got = np.zeros(C, np.int64)
        while not (got == T).all():
            x_e, x_v = _skewed_edge(x_tile, t - pre)
            before = acc.overflows
            s, fire = stationary_stream_step(s, x_e, x_v, acc, "cosim")
            port = np.flatnonzero(s.p_vld[-1])
            result[got[port], port] = s.p[-1, port]
            got[port] += 1
            rows.append(self._row_ws(t - pre < T, s, fire, acc.overflows - before))
            t += 1
        return beats, rows, result

    def _row_ws(self, take: bool, s: StationaryRegs, fire, ovf: int) -> dict[str, Any]:
        return {"take": int(take), "port": tuple(int(x) for x in s.p[-1]), "port_vld": _mask(s.p_vld[-1]),
                "fire": _mask(fire), "ovf": ovf}

    def replay_matches_model(self, p: SystolicHW, v: FoldVector) -> bool:
        """True if the step replay of :meth:`expect` gives ``run_*_fold``'s result, cycles and MAC trace.

        ``expect`` records every register the ports show by calling the model's step
        functions in the model's own fold loop; this checks that loop against the model's.
        """
        _, rows, result = self._replay(p, v)
        acc = Accumulator(p.acc_bits, "wrap")
        if p.dataflow == "os":
            ref, phases, trace = run_os_fold(v.tile1, v.tile2, v.used, acc, "cosim")
        else:
            ref, phases, trace = run_stationary_fold(v.tile1, v.tile2, v.used, acc, "cosim")
        real = np.zeros((p.rows, p.cols), bool)
        real[:v.used[0], :v.used[1]] = True
        real_mask = _mask(real)
        macs = [bin(r["fire"] & real_mask).count("1") for r in rows]
        return (np.array_equal(result, ref) and len(rows) == sum(phases.values())
                and macs == list(trace))

    def observe(self, params: SystolicHW, v: FoldVector, rows):
        out = []
        for r in rows:
            out.append({"take": r["take"], "port": _unpack(r["port"], params.cols, params.acc_bits),
                        "port_vld": r["port_vld"], "fire": r["fire"], "ovf": bin(r["ovf"]).count("1")})
        return out


SYSTOLIC_ARRAY = _Systolic("systolic-array", "R x C systolic array (os or ws) with skew buffers and drain",
                           fixed_pe=False)
SYSTOLIC_PE = _Systolic("systolic-pe", "one systolic PE (os or ws) with its 1 x 1 array controller",
                        fixed_pe=True)
