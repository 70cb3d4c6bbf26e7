"""A generic R x C systolic array running GEMM and convolution layers (os / ws / is dataflows).

Modes
-----
* ``mode="default"`` (the env): a register-level array fed by three double-buffered SRAMs and a
  DRAM of a given bandwidth, each layer mapped by the mapper below (``mapping="best"``) or by the
  pre-mapper fixed loop order (``mapping="fixed"``, kept for comparison: ``--sim-opt
  mapping=fixed``).  The fixed loop order takes exactly the cycles of ``rtl_models/systolic``,
  which steps the array register by register with a fixed schedule per fold (the tests assert
  equal counts); the mapper's array pipelines its passes through double-buffered stationary
  registers (below).
* ``mode="scalesim"``: SCALE-Sim 3.0.0's reported "Total Cycles" in CALC mode, exactly, quirks
  included, and its SRAM/DRAM word counts where they are closed-form (golden data:
  ``tests/data/scalesim_goldens.csv``, ``tests/data/scalesim_topology_goldens.csv``).
* ``mode="scalesim-user"``: SCALE-Sim 3.0.0's USER (bandwidth-limited) mode, exactly: its "Total
  Cycles", "Stall Cycles" and DRAM word counts with ``dram_bw_bytes`` words (bytes) per cycle for
  all three operands (``simulators._systolic_user``; golden data ``tests/data/scalesim_user_goldens.csv``).
  A walk over every demand line of every layer: its cost grows with the cycle count, so it is a
  validation mode for small layers, not a search mode.

The array (every mode)
----------------------
A GEMM ``(M x K) @ (K x N)`` maps to spatial rows ``A``, spatial columns ``B`` and a streamed
dim ``T``: os ``(M, N, K)``, ws ``(K, N, M)``, is ``(K, M, N)`` (SCALE-Sim's
``calc_spatio_temporal_params``).  A *pass* loads one stationary R x C block, streams ``t``
elements and drains: ``2R + C + t - 2`` cycles with the fixed loop order (R to preload the
stationary operand or drain the output-stationary results, ``R + C - 2`` of skew); the fill and
drain ``F = 2R + C - 2`` is paid once per pass.  The mapper's array double-buffers the stationary
operand in a shadow register per PE (os: the 32-bit accumulator, ws: a weight, is: an
activation; charged in the area at 6 um^2 per bit), as the TPU's weight FIFO and double-buffered
weights (Jouppi et al., ISCA 2017, section 2) and Gemmini's PEs do: the next pass's stationary
tile shifts in (or the finished results shift out) while the current pass streams, so a pass
that uses ``a`` rows and streams ``t`` elements occupies the array for ``max(t, a)`` cycles, and
one traversal of the height plus the skew across the columns in use, ``R + min(B, C) - 2``, is
paid once per GEMM.  SCALE-Sim runs ``ceil(A/R) * ceil(B/C)`` passes of the
whole ``T``, each ``T + R + C - 2`` cycles for os (it does not serialise the OS drain,
scale-sim-v3 issue #4) and ``2R + C + T - 2`` for ws/is, and reports the last 0-based cycle
index (one less, SCALE-Sim issue #125).

The mapper (``mode="default"``, ``mapping="best"``)
--------------------------------------------------
Operands by role: ``S = (A, B)`` is held in the PEs during a pass (os: ofmap, ws: filter, is:
ifmap), ``P = (A, T)`` enters along the rows, ``Q = (B, T)`` along the columns.  A mapping is

* a tile size for each of M, K and N: a power of two below the dim, or the whole dim;
* an order of the three DRAM loops over the tiles;
* for each operand, whether its tile is held in its SRAM.  Each SRAM is double-buffered, so a
  held tile must fit in half of it: ifmap at ``act_bits``, filter at ``weight_bits``, ofmap as
  32-bit partial sums.  A tile that is not held streams through its SRAM.

A mapping is legal when every tile the array reads more than once is held: P when the tile
spans more than C columns (P is read once per column fold), Q when it spans more than R rows
(read once per row fold; for ws/is these are the partial sums accumulated across row folds).
Its cost:

* DRAM passes of an operand: 1 if the dim it lacks (ifmap: N, filter: M, ofmap: K) has one
  tile, or if its tile is held and that dim's loop runs inside every loop (of more than one
  tile) that changes the tile; otherwise the number of tiles of that dim.  DRAM bits:
  ``M K a * passes + K N w * passes + M N a + 2 * 32 * M N * (ofmap passes - 1)`` (each extra
  ofmap pass writes a 32-bit partial sum out and reads it back).
* compute cycles ``PB * sum over (row pass, T tile) of max(t, a) + R + min(B, C) - 2``:
  ``PA * PB * nT`` passes (``nT`` tiles of T, ``PA = max(ceil(A/R), tiles of A)`` row passes of
  ``a = min(A tile, R)`` rows but the last, ``PB`` column passes likewise), pipelined as above
  (closed form: ``simulators._systolic_mapper._cycles``; every pass enumerated:
  ``simulators._systolic_ref.mapping_cost``).
* layer cycles ``max(compute, ceil(DRAM bits / bandwidth bits))`` (transfers double-buffered
  behind compute); SRAM accesses: P once per column fold, Q once per row fold, S once per T
  tile, outputs written once per pass over them and read back as partial sums.

**Selection rule: the fewest DRAM bits; among those, the fewest compute cycles.**  The
bandwidth and the clock do not enter it, so they never change the mapping.

**Optimality (by construction, checked exhaustively in the tests):** at most one operand can
be reused across a loop of its missing dim (two would each need the other's loop inside its
own), so every mapping is dominated by one of three cases, "save S/P/Q", in which that
operand is held and its missing dim is the innermost loop, the other two crossing DRAM once per
tile of their missing dims.  In a case the DRAM bits depend on two trip counts; for a given
tile of one dim the other's best tile is the largest the capacities allow, and the third dim's
tile only costs cycles (largest again).  ``simulators._systolic_mapper.map_roles`` walks the one
free tile per case from the continuous optimum and stops where a monotone term alone exceeds the
best so far (so it returns exactly what scanning every candidate, ``map_roles_scan``, returns);
``simulators._systolic_ref.best_mapping`` enumerates every tile, loop order and holding choice in
plain Python, and the tests compare the three on random layers.

**Properties** (hypothesis tests in ``tests/test_systolic_properties.py``; counts over 120,000
(design, workload) pairs each from ``benchmarks/bench_systolic.py`` in benchmarks/README.md).
Guaranteed by construction: doubling any SRAM never increases DRAM bits (the legal set only
grows); doubling the bandwidth never increases cycles; latency = cycles / clock; a larger layer
never moves fewer DRAM bits (its mapping, cut to the smaller layer, is legal there).  Doubling R
or C only relaxes the holding rules, so the old mapping stays legal with the same DRAM bits.
With the same tiles, doubling R or C can only merge passes, and merging never adds cycles
(``max(x + y, a) <= max(x, a) + max(y, a)`` for streams, ``max(t, a + b) <= max(t, a) + max(t, b)``
for heights); only the once-per-GEMM term grows, by R, or by ``min(B, 2C) - min(B, C) <= C``.
Hence the **fill/drain bound**: when the chosen mapping's DRAM bits are unchanged, doubling R adds
at most R cycles per GEMM instance and doubling C at most C.  When the doubled array also saves
DRAM bits the rule takes that mapping whatever its cycles.  Not guaranteed, and counted in
benchmarks/README.md: the total energy can fall when a layer grows, because the rule takes the
fewest DRAM bits whatever the cycles (e.g. 4-row tiles on a 32-row array to save 0.16 % of the bits),
and the leakage of that slower mapping can outweigh the work the larger layer adds; a rule
that ranks energy first would guarantee this property but not "doubling an SRAM never
increases DRAM bits" (a larger SRAM costs more per access and leaks more, which can favour a
faster mapping with more DRAM bits); benchmarks/README.md counts both.
R and C must be powers of two in this mode (so are the tiles).

Energy and area use :data:`TECH` (45 nm, Horowitz, ISSCC 2014); entries marked *assumed* are
our estimates, not published values.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Mapping

import numba
import numpy as np

from archgym.metrics import Metrics
from archgym.simulator import Simulator
from archgym.space import Choice, Constraint, DesignSpace, InvalidDesign, Pow2
from archgym.workloads import Workload, WorkloadError, workload_names

from . import _systolic_kernels as _kern
from ._systolic_mapper import map_gemm
from ._systolic_report import LayerBreakdown
from ._systolic_user import user_mode

__all__ = ["gemm_cycles", "SystolicSimulator", "TECH", "DATAFLOWS", "MODES", "MAPPINGS", "layer_model"]

DATAFLOWS = ("os", "ws", "is")
MODES = ("default", "scalesim", "scalesim-user")
MAPPINGS = ("best", "fixed")
#: largest MAC count of one GEMM instance the int64 kernels price without overflow
MAX_GEMM_MACS = 1 << 48

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

# Raw designs (check_design): what the model can honestly price.  Integer parameters: name ->
# (low, high); the mapper also needs power-of-two rows and cols.
_INT_RANGES = {"rows": (1, 4096), "cols": (1, 4096), "ifmap_sram_kb": (1, 1 << 20), "filter_sram_kb": (1, 1 << 20),
               "ofmap_sram_kb": (1, 1 << 20), "dram_bw_bytes": (1, 1 << 16), "act_bits": (1, 32),
               "weight_bits": (1, 32)}
_CLOCK_MHZ = (1e-3, 1e5)
_PARALLEL_MIN = 4096   # designs per batch from which evaluate_batch uses every numba thread
# design-space parameters (by position) a layer's mapping and counts depend on: all but
# dram_bw_bytes (6) and clock_mhz (7)
_KEY_PARAMS = (0, 1, 2, 3, 4, 5, 8, 9)


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


def _is_pow2(v: int) -> bool:
    return v >= 1 and v & (v - 1) == 0


def gemm_cycles(M: int, K: int, N: int, rows: int, cols: int, dataflow: str, mode: str = "scalesim") -> int:
    """Compute cycles of the GEMM ``(M x K) @ (K x N)`` on a ``rows x cols`` array, one pass
    per fold over the whole streamed dim (no tiling).

    ``mode="scalesim"`` returns SCALE-Sim 3.0.0's reported "Total Cycles" (CALC mode) for the
    topology row ``M, N, K``; ``mode="default"`` the register-level count of the fixed loop order
    (``mapping="fixed"``; the mapper's array pipelines its passes, see the module docstring).
    Plain Python: the slow reference the numba kernels are tested against.
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
    mapping: str = "best",
) -> dict[str, int]:
    """One layer: cycles, SRAM word counts and DRAM bits, by the model of the module docstring.

    ``mode="scalesim"`` and ``mapping="fixed"`` are plain Python, written independently of the
    numba kernel (the tests compare the two).  ``mapping="best"`` (default mode) calls the
    mapper kernel; its plain-Python twin is :func:`simulators._systolic_ref.best_mapping`.
    """
    _check_dims(M=M, K=K, N=N, rows=rows, cols=cols, ifmap_sram_kb=ifmap_sram_kb, filter_sram_kb=filter_sram_kb,
                ofmap_sram_kb=ofmap_sram_kb, dram_bw_bytes=dram_bw_bytes, act_bits=act_bits, weight_bits=weight_bits)
    df, md = _df_code(dataflow), _mode_code(mode)
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping={mapping!r}; allowed: {', '.join(MAPPINGS)}")
    if md == 0 and mapping == "best":
        if not (_is_pow2(rows) and _is_pow2(cols)):
            raise ValueError(f"rows={rows}, cols={cols}: the mapper needs powers of two (use mapping='fixed')")
        half = (ifmap_sram_kb * 4096 // act_bits, filter_sram_kb * 4096 // weight_bits,
                ofmap_sram_kb * 4096 // _kern.PSUM_BITS)
        r = map_gemm(M, K, N, rows, cols, df, *half, act_bits, weight_bits, _kern.PSUM_BITS)
        dram = -(-(r[5] + r[6]) // (dram_bw_bytes * 8))
        return dict(compute_cycles=r[0], cycles=max(r[0], dram), ifmap_sram_reads=r[1], filter_sram_reads=r[2],
                    ofmap_sram_writes=r[3], psum_sram_reads=r[4], dram_read_bits=r[5], dram_write_bits=r[6])
    cyc = gemm_cycles(M, K, N, rows, cols, dataflow, mode)
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


class SystolicSimulator(Simulator):
    """Generic systolic-array accelerator (SCALE-Sim-compatible cycle model, mapped layers).

    Design parameters: ``rows``, ``cols`` (PE array), ``dataflow`` (os/ws/is),
    ``ifmap_sram_kb``, ``filter_sram_kb``, ``ofmap_sram_kb`` (double-buffered SRAMs),
    ``dram_bw_bytes`` (bytes per cycle), ``clock_mhz``, ``act_bits``, ``weight_bits``.

    Options: ``mode`` ("default", "scalesim" or "scalesim-user", see the module docstring), ``mapping`` ("best":
    the mapper; "fixed": the pre-mapper loop order; default mode only), ``max_area_mm2`` (area
    budget; a design over it is infeasible).  ``Metrics.breakdown[layer_name]`` has each layer's
    cycles, latency, energy and chosen mapping (:class:`simulators._systolic_report.LayerBreakdown`).
    """

    name = "systolic"
    reference = (
        "SCALE-Sim 3.0.0 'Total Cycles' (CALC mode): exact per layer in mode='scalesim' "
        "(tests/data/scalesim_goldens.csv, scalesim_topology_goldens.csv); default mode = register-level "
        "count (rtl_models/systolic, exact on small shapes) with each layer's best mapping (exact over its "
        "legal set, checked by exhaustive search); DRAM traffic compared with ZigZag 3.9.1 (experiments/systolic)"
    )
    accepts = ("any workload of GEMM, convolution (lowered by im2col as SCALE-Sim does) or MoE layers "
               "(router + expert GEMMs); SCALE-Sim topology CSVs keep their layer names")

    def __init__(self, mode: str = "default", mapping: str = "best", max_area_mm2: float = 25.0) -> None:
        self.mode = mode
        self._mode = _mode_code(mode)
        if mapping not in MAPPINGS:
            raise ValueError(f"mapping={mapping!r}; allowed: {', '.join(MAPPINGS)}")
        if mapping != "best" and mode != "default":
            raise ValueError(f"mapping={mapping!r} applies to mode='default' only (mode={mode!r} has no mapper)")
        self.mapping = mapping
        self._code = _kern.SCALESIM if self._mode >= 1 else (_kern.MAPPED if mapping == "best" else _kern.FIXED)
        if isinstance(max_area_mm2, bool) or not isinstance(max_area_mm2, (int, float)) \
                or not math.isfinite(max_area_mm2) or max_area_mm2 <= 0:
            raise ValueError(f"max_area_mm2={max_area_mm2!r} must be a finite number > 0")
        self.max_area_mm2 = float(max_area_mm2)
        self._space = self._build_space()
        self._vals = tuple(np.asarray(p.values) for p in self._space.params)
        self._tabs, self._strides, self._n_keys = _grid_tables(self._vals)
        self._raw = np.zeros_like(self._tabs)  # each parameter's values as numbers (dataflow: its index)
        for j, v in enumerate(self._vals):
            self._raw[j, :len(v)] = np.arange(len(v)) if j == 2 else np.asarray(v, dtype=np.int64)

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
                vector=lambda c: self._area_mm2_columns(c) <= self.max_area_mm2,
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

    def check_design(self, design: Mapping[str, Any]) -> dict:
        """Validate a raw design for :meth:`evaluate` (it need not lie on the env's grid).

        Integers: rows and cols 1-4096 (powers of two for the mapper), SRAMs 1 kB - 1 GB,
        ``dram_bw_bytes`` 1-65536, bit widths 1-32; ``clock_mhz`` a finite number in
        [0.001, 100000]; ``dataflow`` one of os/ws/is.  Returns the design as a plain dict;
        raises :class:`archgym.InvalidDesign` naming the parameter, the value and what is
        allowed.
        """
        if not isinstance(design, Mapping):
            raise InvalidDesign(f"a design must be a mapping of parameter names to values, got {type(design).__name__}")
        names = self._space.names
        for k in names:
            if k not in design:
                raise InvalidDesign(f"missing parameter {k!r}")
        for k in design:
            if k not in names:
                raise InvalidDesign(f"unknown parameter {k!r}; parameters: {', '.join(names)}")
        out: dict[str, Any] = {}
        for k, (lo, hi) in _INT_RANGES.items():
            v = design[k]
            ok = not isinstance(v, (bool, np.bool_)) and (
                isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and math.isfinite(v)
                                                     and float(v).is_integer()))
            if not ok or not lo <= v <= hi:
                raise InvalidDesign(f"{k}={v!r} is not allowed; allowed: integers {lo} to {hi}")
            out[k] = int(v)
        if self._code == _kern.MAPPED:
            for k in ("rows", "cols"):
                if not _is_pow2(out[k]):
                    raise InvalidDesign(f"{k}={out[k]} is not a power of two; the mapper (mode='default') prices "
                                        "power-of-two arrays (1 to 4096); mapping='fixed' or mode='scalesim' "
                                        "take any size")
        v = design["clock_mhz"]
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not math.isfinite(v) or not _CLOCK_MHZ[0] <= v <= _CLOCK_MHZ[1]:
            raise InvalidDesign(f"clock_mhz={v!r} is not allowed; allowed: a number from {_CLOCK_MHZ[0]:g} to "
                                f"{_CLOCK_MHZ[1]:g}")
        out["clock_mhz"] = v
        if design["dataflow"] not in DATAFLOWS:
            raise InvalidDesign(f"dataflow={design['dataflow']!r} is not allowed; allowed: {', '.join(DATAFLOWS)}")
        out["dataflow"] = design["dataflow"]
        return {k: out[k] for k in names}

    def check_workload(self, workload: Workload) -> None:
        """Any GEMM/convolution/MoE workload, each GEMM instance at most 2**48 MACs (the
        int64 cycle and traffic counts of the kernels)."""
        super().check_workload(workload)
        for name, gemms in workload.lowered():
            for g in gemms:
                if g.m * g.k * g.n > MAX_GEMM_MACS:
                    raise WorkloadError(
                        f"{self.name} cannot price layer {name!r} of {workload.source!r}: {g.m}x{g.k}x{g.n} is "
                        f"{g.m * g.k * g.n:,} MACs per instance; at most 2**48 (int64 counts)")

    # --- model ---------------------------------------------------------------------
    def gemms(self, workload: str | Workload) -> np.ndarray:
        """``(m, k, n, count)`` rows of a workload's lowered GEMMs (convolutions by im2col,
        MoE blocks as router + expert GEMMs)."""
        return self.workload(workload).gemm_array()

    def _area_mm2(self, d: Mapping[str, Any]) -> float:
        return float(_area_um2(d["rows"], d["cols"], d["act_bits"], d["weight_bits"],
                               d["ifmap_sram_kb"] + d["filter_sram_kb"] + d["ofmap_sram_kb"],
                               _shadow_bits(self._code, d["dataflow"], d["act_bits"], d["weight_bits"])) * 1e-6)

    def _area_mm2_columns(self, c: Mapping[str, np.ndarray]) -> np.ndarray:
        """:meth:`_area_mm2` of a batch given as one array of values per parameter."""
        df = np.select([c["dataflow"] == name for name in DATAFLOWS], range(len(DATAFLOWS)))
        return _area_um2(c["rows"], c["cols"], c["act_bits"], c["weight_bits"],
                         c["ifmap_sram_kb"] + c["filter_sram_kb"] + c["ofmap_sram_kb"],
                         _shadow_bits(self._code, df, c["act_bits"], c["weight_bits"])) * 1e-6

    def _evaluate(self, design: dict, workload: Workload) -> Metrics:
        """Metrics of one (checked) design on a (checked) workload, with the per-layer breakdown."""
        d = design
        g = workload.gemm_array()
        rows = np.empty((g.shape[0], _kern.N_ROW), dtype=np.int64)
        out = np.empty(_kern.N_OUT)
        _kern.design_rows(
            g, d["rows"], d["cols"], DATAFLOWS.index(d["dataflow"]), d["ifmap_sram_kb"] * 8192,
            d["filter_sram_kb"] * 8192, d["ofmap_sram_kb"] * 8192, d["dram_bw_bytes"] * 8,
            d["act_bits"], d["weight_bits"], self._code, rows, out,
        )
        if self._mode == 2:
            self._user_rows(d, workload, rows, out)
        consts = (d["rows"], d["cols"], d["dataflow"], d["ifmap_sram_kb"], d["filter_sram_kb"], d["ofmap_sram_kb"],
                  d["clock_mhz"], d["act_bits"], d["weight_bits"], self._code)
        tot = out.tolist()  # Python floats: scalar numpy arithmetic is several times slower
        v = _derive(tot[:8], tot[8], tot[10], *consts)
        area = v.pop("area_mm2")
        if area > self.max_area_mm2:
            return Metrics.infeasible(f"area {area:.1f} mm^2 exceeds the {self.max_area_mm2:g} mm^2 budget",
                                      area_mm2=area)
        per_layer = functools.partial(_per_layer, consts)
        return Metrics(
            cycles=int(out[1]), latency_s=v.pop("latency_s"), energy_j=v.pop("energy_j"), power_w=v.pop("power_w"),
            area_mm2=area, onchip_bytes=v.pop("onchip_bytes"), dram_bytes=v.pop("dram_bytes"),
            throughput_per_s=v.pop("throughput_per_s"), utilization_frac=v.pop("utilization_frac"), extra=v,
            breakdown=LayerBreakdown(workload, rows, g[:, 3], d["dataflow"], self._code, per_layer),
        )

    def distinct_gemms(self, workload: str | Workload) -> np.ndarray:
        """:meth:`gemms` with rows of the same shape merged (counts summed): what the batched
        kernel prices, each distinct ``(m, k, n)`` once per design (identical GEMMs price
        identically).  Cached per workload."""
        w = self.workload(workload)
        cache = self.__dict__.setdefault("_distinct", {})
        g = cache.get(w.key)
        if g is None:
            a = w.gemm_array()
            shapes, inv = np.unique(a[:, :3], axis=0, return_inverse=True)
            counts = np.bincount(inv.ravel(), weights=a[:, 3]).astype(np.int64)
            g = np.ascontiguousarray(np.column_stack([shapes, counts]).astype(np.int64))
            g.setflags(write=False)
            if len(cache) >= 64:
                cache.clear()
            cache[w.key] = g
        return g

    def _user_rows(self, d: dict, workload: Workload, rows: np.ndarray, out: np.ndarray) -> None:
        """USER mode: replace each row's cycles and DRAM bits by SCALE-Sim's walk (SRAM counts stay
        the closed form of CALC mode, which USER mode shares), then redo the totals."""
        from archgym.workloads import Conv

        cache = self.__dict__.setdefault("_user_cache", {})
        lowered = dict(workload.lowered())
        i = 0
        for layer in workload.layers:
            gemms = lowered.get(layer.name)
            if gemms is None:
                continue
            for g in gemms:
                conv = None
                if isinstance(layer, Conv) and layer.batch == 1 and layer.groups == 1 \
                        and layer.stride_h == layer.stride_w:
                    conv = (layer.in_h, layer.in_w, layer.filter_h, layer.filter_w, layer.channels,
                            layer.num_filters, layer.stride_h)
                key = (g.m, g.n, g.k, conv, d["rows"], d["cols"], d["dataflow"], d["ifmap_sram_kb"],
                       d["filter_sram_kb"], d["ofmap_sram_kb"], d["dram_bw_bytes"])
                r = cache.get(key)
                if r is None:
                    r = user_mode(g.m, g.n, g.k, d["rows"], d["cols"], d["dataflow"], d["ifmap_sram_kb"],
                                  d["filter_sram_kb"], d["ofmap_sram_kb"], d["dram_bw_bytes"], conv)
                    if len(cache) >= 4096:
                        cache.clear()
                    cache[key] = r
                rows[i, 1] = r["total_cycles"]
                rows[i, 0] = r["total_cycles"] - r["stall_cycles"]
                rows[i, 6] = 8 * (r["ifmap_dram_reads"] + r["filter_dram_reads"])
                rows[i, 7] = 8 * r["ofmap_dram_writes"]
                i += 1
        cnt = workload.gemm_array()[:, 3].astype(float)
        out[:8] = (rows[:, :8] * cnt[:, None]).sum(axis=0)

    def evaluate_batch(self, indices: np.ndarray, workload: str | Workload) -> dict[str, np.ndarray]:
        """Numba-batched evaluation of index vectors ``(n, 10)``; returns metric arrays (no
        breakdown; each distinct GEMM shape of the workload is priced once per design).  USER
        mode evaluates design by design."""
        if self._mode == 2:
            return super().evaluate_batch(indices, workload)
        idx = np.ascontiguousarray(self._space.check_indices(indices))
        # every parameter's values in one pass over the index rows (int64; dataflow as its index)
        rows, cols, df, ifk, flk, ofk, bw, clk, ab, wb = _kern.gather(idx, self._raw)
        # designs that differ only in bandwidth and clock share their mapping and counts: the grid
        # kernel maps each (array, dataflow, SRAMs, bit widths) of the batch once, reading the
        # index vectors directly.  Only for the mapper (the fixed loop order is cheaper to
        # recompute than to look up) and batches large enough to repay the key table.
        # large batches run as one contiguous chunk per thread (bit-identical: same code per design)
        chunks = numba.get_num_threads() if len(idx) >= _PARALLEL_MIN else 1
        gemms = self.distinct_gemms(workload)
        if self._code == _kern.MAPPED and len(idx) * 4 >= self._n_keys:
            if chunks > 1:
                res = _kern.batch_eval_grid_par(gemms, idx, self._tabs, self._strides, self._n_keys, self._code, chunks)
            else:
                res = _kern.batch_eval_grid(gemms, idx, self._tabs, self._strides, self._n_keys, self._code)
        else:
            args = (gemms, rows, cols, df, ifk * 8192, flk * 8192, ofk * 8192, bw * 8, ab, wb, self._code)
            res = _kern.batch_eval_par(*args, chunks) if chunks > 1 else _kern.batch_eval(*args)
        cols_ = np.ascontiguousarray(res.T)  # one copy, then every column op runs on contiguous data
        out = _derive(cols_[:8], cols_[8], cols_[10], rows, cols, df, ifk, flk, ofk, clk, ab, wb, self._code)
        out["cycles"] = res[:, 1]
        out["feasible"] = out["area_mm2"] <= self.max_area_mm2
        return out


def _grid_tables(vals):
    """The grid kernel's constants (:func:`simulators._systolic_kernels.batch_eval_grid`): each
    parameter's values as the kernel takes them (bits, dataflow codes; 0 pads), the strides of the
    mapping key over the parameters it depends on, and the number of keys."""
    tabs = np.zeros((len(vals), max(len(v) for v in vals)), dtype=np.int64)
    scale = {3: 8192, 4: 8192, 5: 8192, 6: 8}  # kB -> bits, bytes/cycle -> bits/cycle
    for j, v in enumerate(vals):
        if j == 2:
            tabs[j, :len(v)] = [DATAFLOWS.index(x) for x in v]
        elif j != 7:  # the clock does not enter the kernel
            tabs[j, :len(v)] = np.asarray(v, dtype=np.int64) * scale.get(j, 1)
    strides = np.zeros(len(vals), dtype=np.int64)
    n_keys = 1
    for j in reversed(_KEY_PARAMS):
        strides[j] = n_keys
        n_keys *= len(vals[j])
    return tabs, strides, n_keys


def _per_layer(consts, totals, macs, fill):
    """The breakdown's per-layer metrics: :func:`_derive`, plus per-operand SRAM energy and the
    array's SRAM accesses (their sums are ``sram_energy_j`` and the SRAM byte counts)."""
    v = _derive(totals, macs, fill, *consts)
    _r, _c, _df, ifk, flk, ofk, _clk, ab, wb, _m = consts
    v["ifmap_sram_energy_j"] = totals[2] * ab * _sram_pj_per_bit(ifk) * 1e-12
    v["filter_sram_energy_j"] = totals[3] * wb * _sram_pj_per_bit(flk) * 1e-12
    v["ofmap_sram_energy_j"] = (totals[4] + totals[5]) * _kern.PSUM_BITS * _sram_pj_per_bit(ofk) * 1e-12
    v["ifmap_sram_read_bits"] = totals[2] * ab
    v["filter_sram_read_bits"] = totals[3] * wb
    v["ofmap_sram_write_bits"] = totals[4] * _kern.PSUM_BITS
    v["ofmap_sram_read_bits"] = totals[5] * _kern.PSUM_BITS
    return v


def _area_um2(rows, cols, act_bits, weight_bits, sram_kb_total, shadow_bits=0):
    """Die area in um^2: PEs (multiplier, 32-bit accumulator, operand registers, plus
    ``shadow_bits`` of double-buffered stationary register per PE) and SRAM macros."""
    t = TECH
    pe = (t["mult_um2_8x8"] * act_bits * weight_bits / 64.0 + t["add32_um2"]
          + t["reg_um2_per_bit"] * (act_bits + weight_bits + 32 + shadow_bits))
    return rows * cols * pe + sram_kb_total * 8192 * t["sram_um2_per_bit"]


def _shadow_bits(code, dataflow, act_bits, weight_bits):
    """Bits of the shadow register per PE: the mapper's array (kernel code MAPPED) double-buffers
    its stationary operand (os: the 32-bit accumulator, ws: a weight, is: an activation) so that
    passes pipeline; the fixed loop order and SCALE-Sim's array have none.  ``dataflow``: one
    design's name, or an array of dataflow codes (0 os, 1 ws, 2 is) with the widths as arrays."""
    if code != _kern.MAPPED:
        return 0
    if isinstance(dataflow, str):  # one design: no numpy on the evaluate() path
        return _kern.PSUM_BITS if dataflow == "os" else (weight_bits if dataflow == "ws" else act_bits)
    return np.where(dataflow == 0, _kern.PSUM_BITS, np.where(dataflow == 1, weight_bits, act_bits))


def _sram_pj_per_bit(kb):
    return TECH["sram_pj_per_64b_at_8kb"] / 64.0 * (kb / 8.0) ** 0.5


def _derive(res, macs, fill, rows, cols, dataflow, ifk, flk, ofk, clk, ab, wb, code) -> dict[str, np.ndarray]:
    """Latency, energy, power, area and traffic from kernel totals.

    ``res`` is the 8 totals of LAYER_FIELDS (scalars or arrays of designs or layers); the
    other arguments are scalars or arrays alike; ``code`` is the kernel's mode code (the
    mapper's array carries shadow registers, :func:`_shadow_bits`).
    """
    t = TECH
    compute, cycles, if_rd, fl_rd, of_wr, ps_rd, dram_rd, dram_wr = res
    latency = cycles / (clk * 1e6)
    mac_pj = macs * (t["mult_pj_8x8"] * ab * wb / 64.0 + t["add32_pj"])
    # outputs/partial sums are written at 32 bits (accumulators), reads of partial sums likewise
    sram_pj = (if_rd * ab * _sram_pj_per_bit(ifk) + fl_rd * wb * _sram_pj_per_bit(flk)
               + (of_wr + ps_rd) * _kern.PSUM_BITS * _sram_pj_per_bit(ofk))
    dram_pj = (dram_rd + dram_wr) * t["dram_pj_per_bit"]
    area_um2 = _area_um2(rows, cols, ab, wb, ifk + flk + ofk, _shadow_bits(code, dataflow, ab, wb))
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
        "fill_drain_cycles": fill,
        "mac_count": macs,
        "sram_read_bytes": (if_rd * ab + fl_rd * wb + ps_rd * _kern.PSUM_BITS) / 8.0,
        "sram_write_bytes": of_wr * _kern.PSUM_BITS / 8.0,
        "mac_energy_j": mac_pj * 1e-12,
        "sram_energy_j": sram_pj * 1e-12,
        "dram_energy_j": dram_pj * 1e-12,
        "static_energy_j": static_j,
    }
