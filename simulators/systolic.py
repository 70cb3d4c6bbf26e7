"""A generic R x C systolic array running GEMM layers (os / ws / is dataflows).

Reproduces: SCALE-Sim 3.0.0's reported "Total Cycles" in CALC mode, exactly,
quirks included (``mode="scalesim"``; golden data in
``tests/data/scalesim_goldens.csv``).  The default mode is the cycle count of a
register-level array (``rtl_models/systolic`` steps it register by register and
the tests assert equal counts) plus a DRAM-bandwidth stall model.

Cycle model (per GEMM ``(M x K) @ (K x N)``; dataflow maps it to spatial rows
``Sr``, spatial columns ``Sc`` and a temporal length ``T``:
os: (M, N, K), ws: (K, N, M), is: (K, M, N); scalesim.md §1.6):

* folds = ceil(Sr / R) * ceil(Sc / C), run back to back;
* ``mode="default"``: every fold takes ``2R + C + T - 2`` cycles (R to preload
  the stationary operand or to drain the output-stationary results, T to
  stream, R + C - 2 of skew); the layer then takes
  ``max(compute, DRAM bits / bandwidth)`` (transfers double-buffered behind
  compute; the longer one sets the time);
* ``mode="scalesim"``: per fold ``T + R + C - 2`` for os (SCALE-Sim does not
  serialise the OS drain, upstream scale-sim-v3 issue #4) and ``2R + C + T - 2``
  for ws/is, minus 1 per layer (the reported value is a 0-based cycle index,
  SCALE-Sim issue #125), and no stalls (CALC mode is stall-free by definition).

Why the default differs: a real array must drain R rows of OS results before
the next fold reuses the accumulators, and a count of cycles is not a 0-based
index; SCALE-Sim's own maintainers agree on both (scalesim.md §1.7).

SRAM traffic follows scalesim.md §1.5 (word counts per operand; exact on all
367 golden runs).  In scalesim mode DRAM traffic is SCALE-Sim's when each SRAM
holds its operand (ifmap M*K, filter K*N, OFMAP M*N for os and M*N*ceil(K/R)
for ws/is; exact on all 255 such golden runs).  With SRAMs too small for that,
SCALE-Sim's reads come from its read buffers' prefetch-trigger heuristic (sets
of 1 % of the SRAM, refetch on a full working set) and its writes from its
drain bookkeeping (padding of partial lines counted); we do not replicate that
buffer-management artifact, which needs a walk over every demand line of the
layer (tests/data/gen_scalesim_goldens.py records the numbers).  In default
mode ws/is partial sums are accumulated in the output SRAM (read-modify-write,
``psum_sram_reads``) and only spill to DRAM when an output tile does not fit;
SCALE-Sim writes every partial sum out (no on-chip accumulation).  DRAM reads
repeat when an operand's reused block does not fit in the active half of its
double-buffered SRAM.

Energy and area use the technology table :data:`TECH` (45 nm, Horowitz, ISSCC
2014, "Computing's energy problem", Table/figure of energy and area per
operation); entries marked *assumed* are our estimates, not published values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from archgym.metrics import Metrics
from archgym.simulator import Simulator
from archgym.space import Choice, Constraint, DesignSpace, Pow2
from archgym.workloads import Workload, workload_names

from . import _systolic_kernels as _kern

__all__ = ["gemm_cycles", "SystolicSimulator", "TECH", "DATAFLOWS", "MODES", "layer_model"]

DATAFLOWS = ("os", "ws", "is")
MODES = ("default", "scalesim")

# Technology constants.  Source: M. Horowitz, "Computing's energy problem (and
# what we can do about it)", ISSCC 2014 (45 nm, 0.9 V) unless marked assumed.
TECH: dict[str, float] = {
    # integer multiply: 0.2 pJ at 8x8 bits, 3.1 pJ at 32x32 (scaled by a_bits*w_bits/64)
    "mult_pj_8x8": 0.2,
    # 32-bit integer add (the accumulator)
    "add32_pj": 0.1,
    # SRAM: 10 pJ per 64-bit access at 8 KB, 20 pJ at 32 KB, 100 pJ at 1 MB -> 10*sqrt(kB/8) per 64 bit
    "sram_pj_per_64b_at_8kb": 10.0,
    # DRAM: 1.3-2.6 nJ per 64-bit access -> lower end, 20.3 pJ/bit
    "dram_pj_per_bit": 1300.0 / 64.0,
    # area: 8-bit multiplier 282 um^2, 32-bit adder 137 um^2
    "mult_um2_8x8": 282.0,
    "add32_um2": 137.0,
    # assumed: pipeline/operand registers, 6 um^2 per flip-flop bit at 45 nm
    "reg_um2_per_bit": 6.0,
    # assumed: SRAM macro area including periphery, 0.5 um^2 per bit (about 4.2 mm^2 per MB)
    "sram_um2_per_bit": 0.5,
    # assumed: static (leakage) power density of the logic and SRAM, W per mm^2
    "leak_w_per_mm2": 0.02,
}


def _df_code(dataflow: str) -> int:
    try:
        return DATAFLOWS.index(dataflow)
    except ValueError:
        raise ValueError(f"dataflow={dataflow!r}; allowed: {', '.join(DATAFLOWS)}") from None


def _mode_code(mode: str) -> int:
    try:
        return MODES.index(mode)
    except ValueError:
        raise ValueError(f"mode={mode!r}; allowed: {', '.join(MODES)}") from None


def _check_dims(**dims: Any) -> None:
    for k, v in dims.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{k}={v!r} must be a positive integer")


def gemm_cycles(M: int, K: int, N: int, rows: int, cols: int, dataflow: str, mode: str = "scalesim") -> int:
    """Compute cycles of the GEMM ``(M x K) @ (K x N)`` on a ``rows x cols`` array.

    ``mode="scalesim"`` returns SCALE-Sim 3.0.0's reported "Total Cycles" (CALC
    mode) for the topology row ``M, N, K``; ``mode="default"`` returns the
    register-level count (see the module docstring).  Plain Python: this is the
    slow reference the numba kernels are tested against.
    """
    _check_dims(M=M, K=K, N=N, rows=rows, cols=cols)
    df = _df_code(dataflow)
    md = _mode_code(mode)
    sr, sc, t = ((M, N, K), (K, N, M), (K, M, N))[df]
    folds = -(-sr // rows) * -(-sc // cols)
    if md == 1 and df == 0:
        per_fold = t + rows + cols - 2
    else:
        per_fold = 2 * rows + cols + t - 2
    return folds * per_fold - (1 if md == 1 else 0)


def layer_model(
    M: int, K: int, N: int, *, rows: int, cols: int, dataflow: str, ifmap_sram_kb: int, filter_sram_kb: int,
    ofmap_sram_kb: int, dram_bw_bytes: int, act_bits: int, weight_bits: int, mode: str = "default",
) -> dict[str, int]:
    """Slow reference of one layer: cycles, SRAM word counts and DRAM bits.

    Written independently of the numba kernel; the tests compare the two.
    """
    cyc = gemm_cycles(M, K, N, rows, cols, dataflow, mode)
    df, md = _df_code(dataflow), _mode_code(mode)
    R, C = rows, cols
    cdiv = lambda a, b: -(-a // b)  # noqa: E731
    kf = cdiv(K, R)
    folds = {0: cdiv(M, R) * cdiv(N, C), 1: kf * cdiv(N, C), 2: kf * cdiv(M, C)}[df]
    if df == 0:
        if_rd, fl_rd, of_wr, ps_rd = M * K * cdiv(N, C), K * N * cdiv(M, R), M * N, 0
        if md == 1:
            of_wr += folds * (R + C)
    elif df == 1:
        if_rd, fl_rd, of_wr, ps_rd = M * K * cdiv(N, C), K * N, M * N * kf, M * N * (kf - 1)
    else:
        if_rd, fl_rd, of_wr, ps_rd = M * K, K * N * cdiv(M, C), M * N * kf, M * N * (kf - 1)
    ab, wb, pb = act_bits, weight_bits, _kern.PSUM_BITS
    half = lambda kb: kb * 1024 * 8 // 2  # noqa: E731
    if md == 1:
        ps_rd = 0
        rd = M * K * ab + K * N * wb
        wr = M * N * ab * (1 if df == 0 else kf)
        cycles = cyc
    else:
        spill = False
        if df == 0:
            ifd = M * K * ab * (1 if R * K * ab <= half(ifmap_sram_kb) else cdiv(N, C))
            fld = K * N * wb * (1 if K * N * wb <= half(filter_sram_kb) else cdiv(M, R))
        elif df == 1:
            ifd = M * K * ab * (1 if M * K * ab <= half(ifmap_sram_kb) else cdiv(N, C))
            fld = K * N * wb
            spill = kf > 1 and M * C * pb > half(ofmap_sram_kb)
        else:
            ifd = M * K * ab
            fld = K * N * wb * (1 if K * N * wb <= half(filter_sram_kb) else cdiv(M, C))
            spill = kf > 1 and C * N * pb > half(ofmap_sram_kb)
        psd = M * N * pb * (kf - 1) if spill else 0
        rd = ifd + fld + psd
        wr = M * N * ab + psd
        cycles = max(cyc, cdiv(rd + wr, dram_bw_bytes * 8))
    return dict(
        compute_cycles=cyc, cycles=cycles, ifmap_sram_reads=if_rd, filter_sram_reads=fl_rd,
        ofmap_sram_writes=of_wr, psum_sram_reads=ps_rd, dram_read_bits=rd, dram_write_bits=wr,
    )


@dataclass(frozen=True)
class _Arrays:
    """Parameter value arrays of a design space, for vectorised index -> value lookup."""

    values: tuple[np.ndarray, ...]


class SystolicSimulator(Simulator):
    """Generic systolic-array accelerator (SCALE-Sim-compatible cycle model).

    Design parameters: ``rows``, ``cols`` (PE array), ``dataflow`` (os/ws/is),
    ``ifmap_sram_kb``, ``filter_sram_kb``, ``ofmap_sram_kb`` (double-buffered
    SRAMs), ``dram_bw_bytes`` (bytes per cycle), ``clock_mhz``, ``act_bits``,
    ``weight_bits``.  Workloads: any decoder or ViT workload of the zoo
    (``archgym.workloads.workload_names()``), GEMM layers only.

    ``mode="scalesim"`` switches cycles, SRAM and DRAM counts to SCALE-Sim 3.0.0
    CALC-mode semantics (stall-free, its quirks included).
    """

    name = "systolic"
    reference = (
        "SCALE-Sim 3.0.0 'Total Cycles' (CALC mode): exact in mode='scalesim' "
        "(tests/data/scalesim_goldens.csv); default mode = register-level count "
        "(rtl_models/systolic), exact on small shapes"
    )

    def __init__(self, mode: str = "default", max_area_mm2: float = 25.0) -> None:
        self.mode = mode
        self._mode = _mode_code(mode)
        self.max_area_mm2 = float(max_area_mm2)
        self._space = self._build_space()
        self._vals = tuple(np.asarray(p.values) for p in self._space.params)

    # --- contract ----------------------------------------------------------------
    def _build_space(self) -> DesignSpace:
        params = [
            Pow2(name="rows", low=8, high=256, doc="PE rows"),
            Pow2(name="cols", low=8, high=256, doc="PE columns"),
            Choice(name="dataflow", options=DATAFLOWS, doc="output/weight/input stationary"),
            Pow2(name="ifmap_sram_kb", low=32, high=1024, unit="kB", doc="input SRAM (double-buffered)"),
            Pow2(name="filter_sram_kb", low=32, high=1024, unit="kB", doc="weight SRAM (double-buffered)"),
            Pow2(name="ofmap_sram_kb", low=32, high=512, unit="kB", doc="output/partial-sum SRAM"),
            Pow2(name="dram_bw_bytes", low=8, high=128, unit="B/cycle", doc="DRAM bandwidth per array cycle"),
            Choice(name="clock_mhz", options=(250, 500, 750, 1000), ordinal=True, unit="MHz"),
            Choice(name="act_bits", options=(8, 16), ordinal=True, unit="bit"),
            Choice(name="weight_bits", options=(4, 8, 16), ordinal=True, unit="bit"),
        ]
        cons = [
            Constraint(
                "area", lambda d: self._area_mm2(d) <= self.max_area_mm2,
                f"die area exceeds the {self.max_area_mm2:g} mm^2 budget",
            )
        ]
        return DesignSpace(params, cons)

    def design_space(self) -> DesignSpace:
        return self._space

    def default_design(self) -> dict:
        return dict(rows=32, cols=32, dataflow="ws", ifmap_sram_kb=256, filter_sram_kb=256, ofmap_sram_kb=128,
                    dram_bw_bytes=32, clock_mhz=1000, act_bits=8, weight_bits=8)

    def workloads(self) -> tuple[str, ...]:
        names = [n for n in workload_names() if not n.startswith("mmfree") and not n.endswith("/generative")]
        names.remove("llama-2-7b/prefill")
        return ("llama-2-7b/prefill", *names)

    # --- model ---------------------------------------------------------------------
    def gemms(self, workload: str | Workload) -> np.ndarray:
        """``(m, k, n, count)`` rows of a workload's lowered GEMMs (convolutions by im2col,
        MoE blocks as router + expert GEMMs)."""
        return self.workload(workload).gemm_array()

    @staticmethod
    def _area_mm2(d: Mapping[str, Any]) -> float:
        return float(_area_um2(d["rows"], d["cols"], d["act_bits"], d["weight_bits"],
                               d["ifmap_sram_kb"] + d["filter_sram_kb"] + d["ofmap_sram_kb"]) * 1e-6)

    def evaluate(self, design: Mapping[str, Any], workload: str | Workload) -> Metrics:
        """Metrics of one design on a workload (cycles, latency, energy, area, traffic)."""
        d = design
        g = self.gemms(workload)
        out = np.empty(9)
        _kern.design_eval(
            g, d["rows"], d["cols"], DATAFLOWS.index(d["dataflow"]), d["ifmap_sram_kb"] * 8192,
            d["filter_sram_kb"] * 8192, d["ofmap_sram_kb"] * 8192, d["dram_bw_bytes"] * 8,
            d["act_bits"], d["weight_bits"], self._mode, out,
        )
        v = _derive(
            out.tolist(), d["rows"], d["cols"], d["ifmap_sram_kb"], d["filter_sram_kb"], d["ofmap_sram_kb"],
            d["clock_mhz"], d["act_bits"], d["weight_bits"],
        )
        area = v.pop("area_mm2")
        if area > self.max_area_mm2:
            return Metrics.infeasible(f"area {area:.1f} mm^2 exceeds the {self.max_area_mm2:g} mm^2 budget",
                                      area_mm2=area)
        return Metrics(
            cycles=int(out[1]), latency_s=v.pop("latency_s"), energy_j=v.pop("energy_j"), power_w=v.pop("power_w"),
            area_mm2=area, onchip_bytes=v.pop("onchip_bytes"), dram_bytes=v.pop("dram_bytes"),
            throughput_per_s=v.pop("throughput_per_s"), utilization_frac=v.pop("utilization_frac"), extra=v,
        )

    def evaluate_batch(self, indices: np.ndarray, workload: str | Workload) -> dict[str, np.ndarray]:
        """Numba-batched evaluation of index vectors ``(n, 10)``; returns metric arrays."""
        idx = np.asarray(indices, dtype=np.int64)
        vals = [v[idx[:, j]] for j, v in enumerate(self._vals)]
        rows, cols, df, ifk, flk, ofk, bw, clk, ab, wb = vals
        res = _kern.batch_eval(
            self.gemms(workload), rows.astype(np.int64), cols.astype(np.int64), idx[:, 2].copy(),
            ifk.astype(np.int64) * 8192, flk.astype(np.int64) * 8192, ofk.astype(np.int64) * 8192,
            bw.astype(np.int64) * 8, ab.astype(np.int64), wb.astype(np.int64), self._mode,
        )
        out = _derive(res.T, rows, cols, ifk, flk, ofk, clk, ab, wb)
        out["cycles"] = res[:, 1]
        out["feasible"] = out["area_mm2"] <= self.max_area_mm2
        return out


def _area_um2(rows, cols, act_bits, weight_bits, sram_kb_total):
    t = TECH
    pe = (t["mult_um2_8x8"] * act_bits * weight_bits / 64.0 + t["add32_um2"]
          + t["reg_um2_per_bit"] * (act_bits + weight_bits + 32))
    return rows * cols * pe + sram_kb_total * 8192 * t["sram_um2_per_bit"]


def _sram_pj_per_bit(kb):
    return TECH["sram_pj_per_64b_at_8kb"] / 64.0 * (kb / 8.0) ** 0.5


def _derive(res, rows, cols, ifk, flk, ofk, clk, ab, wb) -> dict[str, np.ndarray]:
    """Latency, energy, power, area and traffic from kernel totals.

    ``res`` is the 9 totals of :func:`_kern.design_eval` (scalars or arrays of
    designs); the other arguments are scalars or arrays alike.
    """
    t = TECH
    compute, cycles, if_rd, fl_rd, of_wr, ps_rd, dram_rd, dram_wr, macs = res
    latency = cycles / (clk * 1e6)
    mac_pj = macs * (t["mult_pj_8x8"] * ab * wb / 64.0 + t["add32_pj"])
    # outputs/partial sums are written at 32 bits (accumulators), reads of partial sums likewise
    sram_pj = (if_rd * ab * _sram_pj_per_bit(ifk) + fl_rd * wb * _sram_pj_per_bit(flk)
               + (of_wr + ps_rd) * _kern.PSUM_BITS * _sram_pj_per_bit(ofk))
    dram_pj = (dram_rd + dram_wr) * t["dram_pj_per_bit"]
    area_um2 = _area_um2(rows, cols, ab, wb, ifk + flk + ofk)
    area = area_um2 * 1e-6
    static_j = t["leak_w_per_mm2"] * area * latency
    energy = (mac_pj + sram_pj + dram_pj) * 1e-12 + static_j
    return {
        "latency_s": latency,
        "energy_j": energy,
        "power_w": energy / latency,
        "area_mm2": area,
        "onchip_bytes": (ifk + flk + ofk) * 1024.0,
        "dram_bytes": (dram_rd + dram_wr) / 8.0,
        "throughput_per_s": 1.0 / latency,
        "utilization_frac": macs / (cycles * rows * cols),
        "compute_cycles": compute,
        "stall_cycles": cycles - compute,
        "mac_count": macs,
        "sram_read_bytes": (if_rd * ab + fl_rd * wb + ps_rd * _kern.PSUM_BITS) / 8.0,
        "sram_write_bytes": of_wr * _kern.PSUM_BITS / 8.0,
        "mac_energy_j": mac_pj * 1e-12,
        "sram_energy_j": sram_pj * 1e-12,
        "dram_energy_j": dram_pj * 1e-12,
        "static_energy_j": static_j,
    }
