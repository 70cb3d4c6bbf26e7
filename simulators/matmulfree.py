"""The MatMul-free LM token-generation core on a Stratix-10-class FPGA (arXiv 2406.02528 v1-v5 §6).

Calibrated on (``tests/test_matmulfree.py``, ``experiments/matmulfree/calibration.md``); every
paper number is a calibration input, none is held out:

* the measured point: one block at d=512, one core, 8-bit memory port, 60 MHz: 43 ms
  (model 43.19 ms, +0.4 %; ``t_req_cycles`` fitted on it);
* the projected point: the 1.3B model at ~23.8 tokens/s and ~13 W (model 23.05 tokens/s,
  -3.2 %, with the projected design's 128 cores derived from that throughput; power 12.99 W,
  ``static_shell_w`` fitted on it).

Mechanism (per token; every constant is in :data:`CONST` with its source or marked assumed):

* **Work** comes from the zoo configs (``archgym.workloads``): per layer the i, f, g, o
  BitLinears (d x d), gate_proj (d -> 2I), down_proj (I -> d), plus the lm_head (d -> V)
  for full models, and a fixed program of vector instructions (RMSNorms, int8 quantize,
  dequantize, sigmoid/SiLU, recurrence, residuals; :func:`_program`).
* **Cores split the work**: every BitLinear's output rows are split evenly over the cores
  (each core streams its own rows of packed ternary weights from DDR through its own
  ``mem_port_bits``-wide port); vector instructions are split too; every reduction and
  every BitLinear ends in a barrier of ``sync_base + sync_per_level * ceil(log2 cores)`` cycles.
* **Ternary accumulate** (TMM unit): one port beat per cycle, so ``lanes`` = weights per
  beat (``port_bits / 2`` at 2 bits per weight, ``5 * port_bits / 8`` at 1.6 bits =
  5 trits per byte). Unpipelined (the measured core): per transaction ``t_req`` request
  cycles, then each beat is transferred and accumulated in turn (``txns*t_req + 2*beats``);
  pipelined (the projection: "bursting over the DDR4 interface, vendor IP and pipelining",
  Graphcore review of the paper): ``beats`` plus one exposed DDR latency per matrix.
* **DDR**: every transaction moves ``burst_len * port_bits`` bits; DDR4 moves whole 64-byte
  BL8 bursts, so short transactions waste bandwidth (the burst efficiency). The token takes
  ``max(core cycles / clock, DDR bytes / (channels * 19.2 GB/s * efficiency))``.
* **Power** = static + shell (one constant, fitted on the projected 13 W) + per-core
  dynamic power from the core's ALM/M20K/DSP counts at the clock (Intel's Stratix 10 power
  estimates per resource) + DDR I/O energy per bit (Horowitz, ISSCC 2014).
* **Resources** per core (TMM lanes x accumulator width, RMS and row-wise FP units,
  load/store with burst FIFO, control, register file, arbitration) plus the FIM shell,
  against the Stratix 10 SX 2800 budget (933,120 ALMs, 11,721 M20K, 5,760 DSP).

Metrics (docs/metrics.md): ``cycles`` = token time x clock (the core's cycles, or the DDR time
in core cycles, rounded up, when the token waits on DDR), with ``core_cycles`` and
``stall_cycles`` as extras; ``dram_bytes`` = bytes moved (whole DDR4 bursts), the ternary
weight footprint is ``weight_bytes``.  ``breakdown``: one entry per BitLinear layer of the
workload (its weight streams, input broadcast, output gather and barriers: ``cycles``,
``latency_s``, ``energy_j``, ``dram_bytes``), ``unit:vector`` (the vector program and
instruction issue) and ``unit:stall`` (waiting on DDR): layers + these two sum to the totals;
per functional unit ``unit:tmm``, ``unit:rms``, ... and ``unit:ddr``, ``unit:power``.

Workloads: one generated token (decode, batch 1) of any HGRN-bit ModelConfig (the zoo's
``mmfree-*``, short names ``370m``, ``1.3b``, ``2.7b``, ``block-d512``, or a config read from
an MMfreeLM ``config.json``); its program is built from the config (:func:`_program`).

Infeasible (``Metrics.feasible=False`` with a reason, never an exception): an accumulator
narrower than the datapath needs for the model's largest K (``|acc| <= 127 K``,
``rtl_models.ternary.required_acc_bits``: overflow would be possible, and the model never
wraps silently), a design over the device budget, or an unpipelined core above 60 MHz.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from archgym.metrics import Metrics
from archgym.simulator import Simulator
from archgym.space import Choice, DesignSpace, InvalidDesign, Pow2
from archgym.workloads import ModelConfig, WorkloadError, get_model, hgrn_bit_workload
from rtl_models.ternary import required_acc_bits

from . import _matmulfree_kernels as _kern
from ._matmulfree_state import STATE_PRECISIONS, MatMulFreeInputError, state_error

__all__ = ["MODELS", "CONST", "DEVICE", "MEASURED_DESIGN", "PROJECTED_DESIGN", "MatMulFreeInputError",
           "MatMulFreeDesign", "simulate", "MatMulFreeSimulator", "state_error"]

#: Short model names -> zoo names (archgym.workloads.MODELS; the ridger/MMfreeLM-* configs).
MODELS: dict[str, str] = {"1.3b": "mmfree-1.3b", "370m": "mmfree-370m", "2.7b": "mmfree-2.7b",
                          "block-d512": "mmfree-block-d512"}

# Every constant of the model. "paper" = arXiv 2406.02528 v1-v5 §6 (text verified, see
# experiments/matmulfree/calibration.md); "fitted" = calibrated once; "assumed" = ours.
CONST: dict[str, float] = {
    # --- timing -----------------------------------------------------------------------
    "t_req_cycles": 1,            # fitted on the measured point (0.99 -> 1 cycle per request)
    "fu_latency_cycles": 8,       # assumed: pipeline fill of an FP vector instruction
    "issue_cycles": 1,            # assumed: decode/dispatch of one instruction from the ROM
    "sync_base_cycles": 4,        # assumed: barrier between cores ...
    "sync_per_level_cycles": 2,   # ... plus 2 cycles per level of a reduction tree (assumed)
    "act_bus_bits": 128,          # assumed: on-chip activation broadcast/gather bus width
    "ddr_latency_ns": 150.0,      # assumed: read latency through EMIF + shell, exposed once per matrix
    # --- DDR4 ----------------------------------------------------------------------------
    "ddr_channel_bytes_per_s": 19.2e9,  # DDR4-2400 x64: 2400 MT/s x 8 B (JEDEC rate; D5005 rate unverified)
    "ddr_granule_bytes": 64,      # DDR4 BL8 x 64 bit: the smallest DDR transfer
    "ddr_efficiency_frac": 0.85,  # assumed: sustained/peak for streaming reads (refresh, turnarounds)
    "ddr_pj_per_bit": 1300.0 / 64.0,  # Horowitz ISSCC 2014: DRAM 1.3-2.6 nJ per 64 bit (lower end)
    # --- power (Intel "Designing for Stratix 10 Devices with Power in Mind", 683058, §1.2) --
    "alm_w_per_mhz": 18.0 / (400_000 * 312.0),   # Table 1: 800K half-ALMs at 312 MHz avg -> 18 W dynamic
    "m20k_w_per_mhz": 3.7 / (4_600 * 500.0),     # Table 2: 4600 M20K at 500 MHz, 40 % toggle -> 3.7 W
    "dsp_w_per_mhz": 5.0 / (2_300 * 500.0),      # Table 3: 2300 DSP at 500 MHz, 15 % toggle -> 5 W
    "static_shell_w": 6.86,       # fitted: 6.8675 W puts the projected 1.3B point at 13 W (reproduce.py); truncated to 10 mW
    # --- per-core resources (assumed estimates; Table 2 of the paper is not available) ----
    "tmm_alm_per_lane": 4,        # int8 conditional negate/zero per weight lane (2 bits per ALM)
    "tmm_alm_per_lane_acc_bit": 0.5,  # adder tree + accumulator: 2 adder bits per ALM
    "trit_decode_alm_per_byte": 40,   # 1.6-bit packing: 8 bits -> 5 trits decode LUT per byte lane
    "dequant_alm": 150, "dequant_dsp": 1,            # int -> fp32 convert, fp32 multiply (hard FP DSP)
    "rms_alm": 800, "rms_dsp": 4, "rms_m20k": 1,     # fp32 sum of squares, rsqrt, scale, absmax
    "row_alm": 1200, "row_dsp": 3, "row_m20k": 2,    # fp32 mul/add, exp LUT, divider (sigmoid/SiLU)
    "ls_alm": 300, "ls_alm_per_port_bit": 2,         # load/store unit and memory port
    "ctrl_alm": 1000, "ctrl_m20k": 2,                # decoder, scheduler, instruction ROM
    "arb_alm_per_core": 500,      # interconnect/arbitration share per core
    "vec_scratch_vectors": 6,     # fp32 vector slices held per core by the vector units
    "shell_alm": 180_000, "shell_m20k": 1_200, "shell_dsp": 0,  # FIM shell (PCIe, EMIFs, CCI-P)
}

#: Stratix 10 SX 2800 (1SX280) budget: a Quartus fitter report of the 1SX280 die
#: (POETSII/de10-soak-test v0.1: 933,120 ALMs, 11,721 RAM blocks, 5,760 DSP blocks).
DEVICE: dict[str, int] = {"alm": 933_120, "m20k": 11_721, "dsp": 5_760}

M20K_BITS = 20_480
UNPIPELINED_FMAX_MHZ = 60.0   # the measured core closed timing at 60 MHz (paper §6)
PIPELINED_FMAX_MHZ = 300.0    # assumed: pipelined core with Hyperflex registers

WEIGHT_BITS = (2.0, 1.6)


def _config(model: "str | ModelConfig") -> ModelConfig:
    """The HGRN-bit :class:`~archgym.workloads.ModelConfig` of a short name (``"1.3b"``), a zoo
    name (``"mmfree-1.3b"``) or a ModelConfig (e.g. read from an MMfreeLM ``config.json``)."""
    if isinstance(model, ModelConfig):
        cfg = model
    elif isinstance(model, str) and (model in MODELS or model in MODELS.values()):
        cfg = get_model(MODELS.get(model, model))
    else:
        raise MatMulFreeInputError(f"model={model!r} is unknown; allowed: {', '.join(MODELS)}, a zoo name "
                                   "(mmfree-*) or an HGRN-bit ModelConfig")
    if cfg.family != "hgrn-bit":
        raise MatMulFreeInputError(f"model {cfg.name!r} is a {cfg.family} model; the MatMul-free core runs "
                                   "HGRN-bit (MatMul-free LM) models only")
    return cfg


@dataclass(frozen=True, kw_only=True)
class MatMulFreeDesign:
    """One configuration of the token-generation platform.

    Attributes:
        cores: token-generation cores (each streams its own share of every matrix).
        clock_mhz: core clock; > 60 MHz needs ``pipelined=True``, <= 300 MHz.
        mem_port_bits: width of each core's memory port (multiple of 8, 8..4096).
        burst_len: beats per DDR read transaction (>= 1).
        weight_bits_packed: 2.0 (2-bit codes) or 1.6 (5 trits per byte).
        acc_bits: ternary accumulator width incl. sign (2..32).
        state_precision: recurrent state storage: fp32, bf16, fp16 or int16 (fixed s5.10).
        pipelined: memory requests and accumulation overlap (the projection) or not (measured core).
        ddr_channels: DDR4 channels the cores share (1..4).
    """

    cores: int = 128
    clock_mhz: float = 60.0
    mem_port_bits: int = 8
    burst_len: int = 64
    weight_bits_packed: float = 2.0
    acc_bits: int = 24
    state_precision: str = "fp32"
    pipelined: bool = True
    ddr_channels: int = 1

    def __post_init__(self) -> None:
        def _int(name: str, lo: int, hi: int, mult: int = 1) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi or v % mult:
                extra = f", a multiple of {mult}" if mult > 1 else ""
                raise MatMulFreeInputError(f"{name}={v!r}; allowed: integer in [{lo}, {hi}]{extra}")
        _int("cores", 1, 4096)
        _int("mem_port_bits", 8, 4096, 8)
        _int("burst_len", 1, 4096)
        _int("acc_bits", 2, 32)
        _int("ddr_channels", 1, 4)
        c = self.clock_mhz
        if isinstance(c, bool) or not isinstance(c, (int, float, np.number)) or not 0 < c <= PIPELINED_FMAX_MHZ:
            raise MatMulFreeInputError(f"clock_mhz={c!r}; allowed: a number in (0, {PIPELINED_FMAX_MHZ:g}]")
        if not isinstance(self.weight_bits_packed, (int, float, np.number)) or self.weight_bits_packed not in WEIGHT_BITS:
            raise MatMulFreeInputError(f"weight_bits_packed={self.weight_bits_packed!r}; allowed: 2.0, 1.6")
        if not isinstance(self.state_precision, str) or self.state_precision not in STATE_PRECISIONS:
            raise MatMulFreeInputError(
                f"state_precision={self.state_precision!r}; allowed: {', '.join(STATE_PRECISIONS)}")
        if not isinstance(self.pipelined, (bool, np.bool_)):
            raise MatMulFreeInputError(f"pipelined={self.pipelined!r}; allowed: True, False")


#: The measured point of the paper (§6): one core, 8-bit port, 60 MHz, no bursting/pipelining.
MEASURED_DESIGN = dict(cores=1, clock_mhz=60.0, mem_port_bits=8, burst_len=1, weight_bits_packed=2.0, acc_bits=24,
                       state_precision="fp32", pipelined=False, ddr_channels=1)
#: Our reading of the projected point (assumptions in calibration.md): 128 such cores, bursts of one
#: 64-byte line, pipelined, one DDR4 channel.
PROJECTED_DESIGN = asdict(MatMulFreeDesign())


@dataclass(frozen=True)
class _Program:
    """Per-token work of one model (see :func:`_program`)."""

    mats: np.ndarray      # int64 (n, 3): K, N, count
    names: tuple          # the workload's layer name of each mats row (the per-layer breakdown keys)
    vecs: np.ndarray      # int64 (n, 4): unit (0 rms, 1 row), element cycles, count, reduces
    n_instr: int
    k_max: int
    n_max: int
    state_values: int     # recurrent state values kept across tokens (L * d)


@lru_cache(maxsize=64)
def _program(cfg: ModelConfig) -> _Program:
    """The per-token program of an HGRN-bit model: its decode workload's BitLinears
    (:func:`archgym.workloads.hgrn_bit_workload`), vector instructions from the paper's §3-§5.

    Vector instructions (element cycles = passes x elements): RMSNorm(n) = 2n on the RMS unit
    (sum of squares, scale) + a reduction; quantize(n) = 2n on the row-wise unit (absmax,
    round) + a reduction; dequantize(n) = n; elementwise ops as listed per layer.
    """
    wl = hgrn_bit_workload(cfg, "decode")
    mats = [(g.k, g.n, g.count) for g in wl.gemms()]
    d, i, L = cfg.hidden, cfg.ffn, cfg.n_layers
    ops: dict[tuple[int, int, int], int] = {}

    def op(unit: int, elems: int, red: int, count: int) -> None:
        ops[(unit, elems, red)] = ops.get((unit, elems, red), 0) + count

    def norm(n: int, c: int = L) -> None:
        op(0, 2 * n, 1, c)

    def quant(n: int, c: int = L) -> None:
        op(1, 2 * n, 1, c)

    def ew(n: int, c: int = L) -> None:
        op(1, n, 0, c)

    norm(d)                                    # attn_norm
    for _ in range(3):                         # i, f, g: own RMSNorm (gamma), int8 quantize, dequant
        norm(d), quant(d), ew(d)
    ew(2 * d), ew(2 * d), ew(2 * d)            # sigmoid + lower bound; c = SiLU(i)(1-f); h = f h + c
    norm(d), ew(2 * d)                         # g_norm, RMSNorm(g) * SiLU(h)
    norm(d), quant(d), ew(d)                   # o_proj
    ew(d), norm(d)                             # residual add, mlp_norm
    norm(d), quant(d), ew(2 * i)               # gate_proj (d -> 2I)
    ew(2 * i)                                  # SiLU(gate) * up
    norm(i), quant(i), ew(d)                   # down_proj (I -> d)
    ew(d)                                      # residual add
    if any(g.kind == "lm_head" for g in wl.gemms()):
        norm(d, 1), norm(d, 1), quant(d, 1), ew(cfg.vocab, 1)  # final norm, lm_head norm/quant, dequant
        op(1, cfg.vocab, 1, 1)                                   # argmax over the vocabulary
    vecs = np.array([(u, e, c, r) for (u, e, r), c in ops.items()], dtype=np.int64)
    m = np.array(mats, dtype=np.int64)
    n_instr = int(vecs[:, 2].sum() + 2 * m[:, 2].sum())      # vector ops + (load, TMM) per BitLinear
    return _Program(m, tuple(g.name for g in wl.gemms()), vecs, n_instr, int(m[:, 0].max()), int(m[:, 1].max()),
                    L * d)


def _wpb(weight_bits: Any) -> Any:
    """Weights per byte: 4 at 2 bits, 5 at 1.6 bits (5 trits in 8 bits: 3**5 = 243 <= 256)."""
    return np.where(np.asarray(weight_bits) < 1.8, 5, 4)


def _timing_reference(prog: _Program, d: Mapping[str, Any]) -> dict[str, float]:
    """Slow plain-Python twin of ``_matmulfree_kernels.token_timing`` (one design).

    The program runs on the active core count (``cores`` or a power of two below it) with
    the smallest token time: a design with more cores can always leave some idle.
    """
    cores = int(d["cores"])
    best = _timing_on_reference(prog, d, cores)
    c = 1
    while c < cores:
        t = _timing_on_reference(prog, d, c)
        if t["latency_s"] < best["latency_s"]:
            best = t
        c *= 2
    return best


def _mat_rows(prog: _Program, d: Mapping[str, Any], cores: int) -> list[tuple[int, int, int, int, int]]:
    """Per BitLinear row of ``prog.mats`` (all its repetitions) on ``cores`` active cores:
    ``(tmm cycles, load cycles, store cycles, DDR bytes moved, weight bytes)``."""
    C = CONST
    clock, port_bytes, burst = float(d["clock_mhz"]), int(d["mem_port_bits"]) // 8, int(d["burst_len"])
    wpb = int(_wpb(d["weight_bits_packed"]))
    pipelined = bool(d["pipelined"])
    txn_bytes = burst * port_bytes
    gran = int(C["ddr_granule_bytes"])
    g_full = -(-txn_bytes // gran) * gran
    lat = math.ceil(C["ddr_latency_ns"] * clock / 1000.0)     # exposed once per matrix stream
    out = []
    for k, n, cnt in prog.mats.tolist():
        row_bytes = -(-k // wpb)
        rows_c = -(-n // cores)
        bytes_c = rows_c * row_bytes
        beats = -(-bytes_c // port_bytes)
        txns = -(-beats // burst)
        tmm = cnt * (lat + beats if pipelined else lat + txns * int(C["t_req_cycles"]) + 2 * beats)
        n_full, rem = n // rows_c, n % rows_c
        per_core = (bytes_c // txn_bytes) * g_full + -(-(bytes_c % txn_bytes) // gran) * gran
        rb = rem * row_bytes
        per_rem = (rb // txn_bytes) * g_full + -(-(rb % txn_bytes) // gran) * gran
        out.append((tmm, cnt * -(-(k * 8) // int(C["act_bus_bits"])), cnt * -(-(rows_c * 32) // int(C["act_bus_bits"])),
                    cnt * (n_full * per_core + per_rem), cnt * n * row_bytes))
    return out


def _sync_cycles(cores: int) -> int:
    """Cycles of one barrier across ``cores`` cores (a reduction tree)."""
    return 0 if cores == 1 else int(CONST["sync_base_cycles"] + CONST["sync_per_level_cycles"] * (cores - 1).bit_length())


def _timing_on_reference(prog: _Program, d: Mapping[str, Any], cores: int) -> dict[str, float]:
    C = CONST
    clock = float(d["clock_mhz"])
    sync = _sync_cycles(cores)
    rows = _mat_rows(prog, d, cores)
    tmm, loads, stores, ddr, wbytes = (sum(r[j] for r in rows) for j in range(5))
    barriers = int(prog.mats[:, 2].sum())       # every BitLinear ends in a barrier
    rms = row = 0
    for unit, elems, cnt, red in prog.vecs.tolist():
        c = cnt * (-(-elems // cores) + int(C["fu_latency_cycles"]))
        rms, row = (rms + c, row) if unit == 0 else (rms, row + c)
        barriers += cnt * red
    sync_c = barriers * sync
    issue = prog.n_instr * int(C["issue_cycles"])
    core = tmm + rms + row + loads + stores + sync_c + issue
    ddr_s = ddr / (int(d["ddr_channels"]) * C["ddr_channel_bytes_per_s"] * C["ddr_efficiency_frac"])
    core_s = core / (clock * 1e6)
    vals = (tmm, rms, row, loads, stores, sync_c, issue, core, ddr, wbytes, ddr_s, max(core_s, ddr_s), cores)
    return dict(zip(_kern.FIELDS, (float(v) for v in vals)))


def _core_resources(prog: _Program, cores, port_bits, burst, weight_bits, acc_bits, state_bits, state_alm):
    """(ALMs, M20K, DSP) of one core; numpy-broadcasting over arrays of designs."""
    C = CONST
    cores, port_bits, burst = np.asarray(cores), np.asarray(port_bits), np.asarray(burst)
    wpb = _wpb(weight_bits)
    lanes = (port_bits // 8) * wpb
    tmm = lanes * (C["tmm_alm_per_lane"] + C["tmm_alm_per_lane_acc_bit"] * np.asarray(acc_bits))
    tmm = tmm + np.where(wpb == 5, (port_bits // 8) * C["trit_decode_alm_per_byte"], 0)
    alm = (tmm + C["dequant_alm"] + C["rms_alm"] + C["row_alm"] + np.asarray(state_alm) + C["ls_alm"]
           + C["ls_alm_per_port_bit"] * port_bits + C["ctrl_alm"] + C["arb_alm_per_core"])
    fifo_bits = 2 * burst * port_bits                                   # double-buffered burst FIFO
    slice_n = -(-prog.n_max // cores)
    slice_v = -(-max(prog.n_max, prog.k_max) // cores)
    regfile_bits = (2 * prog.k_max * 8 + 2 * slice_n * 32 + C["vec_scratch_vectors"] * slice_v * 32
                    + -(-prog.state_values // cores) * np.asarray(state_bits))
    m20k = (C["rms_m20k"] + C["row_m20k"] + C["ctrl_m20k"] + -(-fifo_bits // M20K_BITS)
            + -(-regfile_bits // M20K_BITS))
    dsp = np.zeros_like(alm) + (C["dequant_dsp"] + C["rms_dsp"] + C["row_dsp"])
    return np.ceil(alm), m20k, dsp


def _design_arrays(designs: list[Mapping[str, Any]] | Mapping[str, Any]) -> dict[str, np.ndarray]:
    rows = [designs] if isinstance(designs, Mapping) else designs
    keys = ("cores", "clock_mhz", "mem_port_bits", "burst_len", "weight_bits_packed", "acc_bits",
            "state_precision", "pipelined", "ddr_channels")
    return {k: np.array([r[k] for r in rows]) for k in keys}


def _finish(prog: _Program, a: Mapping[str, np.ndarray], t: np.ndarray) -> dict[str, np.ndarray]:
    """Resources, power, feasibility and the metric arrays from timing rows ``t`` (n, N_FIELDS)."""
    C = CONST
    f = {name: t[:, j] for j, name in enumerate(_kern.FIELDS)}
    names, inv = np.unique(a["state_precision"], return_inverse=True)
    sb = np.array([STATE_PRECISIONS[s][0] for s in names])[inv]
    sa = np.array([STATE_PRECISIONS[s][1] for s in names])[inv]
    err = np.array([state_error(str(s)) for s in names])[inv]
    alm_c, m20k_c, dsp_c = _core_resources(prog, a["cores"], a["mem_port_bits"], a["burst_len"],
                                           a["weight_bits_packed"], a["acc_bits"], sb, sa)
    cores = a["cores"].astype(float)
    alm, m20k, dsp = C["shell_alm"] + cores * alm_c, C["shell_m20k"] + cores * m20k_c, C["shell_dsp"] + cores * dsp_c
    clock = a["clock_mhz"].astype(float)
    core_w = clock * (alm_c * C["alm_w_per_mhz"] + m20k_c * C["m20k_w_per_mhz"] + dsp_c * C["dsp_w_per_mhz"])
    lat = f["latency_s"]
    moved = f["ddr_transferred_bytes"]
    ddr_w = moved * 8.0 * C["ddr_pj_per_bit"] * 1e-12 / lat
    power = C["static_shell_w"] + cores * core_w + ddr_w
    energy = power * lat
    per_core_room = np.floor((DEVICE["alm"] - C["shell_alm"]) / alm_c)
    # cycles = token time x clock (docs/metrics.md): the core cycles, or the DDR time in core
    # cycles (rounded up) when the token waits on DDR
    core_c = f["core_cycles"]
    cycles = np.maximum(core_c, np.ceil(f["ddr_s"] * clock * 1e6))
    return {
        "cycles": cycles, "latency_s": lat, "energy_j": energy, "power_w": power,
        "dram_bytes": moved, "throughput_per_s": 1.0 / lat, "tokens_per_s": 1.0 / lat,
        "tokens_per_j": 1.0 / energy, "core_cycles": core_c, "stall_cycles": cycles - core_c,
        "weight_bytes": f["weight_bytes"], "alm_count": alm, "m20k_count": m20k, "dsp_count": dsp,
        "alm_util_frac": alm / DEVICE["alm"], "m20k_util_frac": m20k / DEVICE["m20k"],
        "dsp_util_frac": dsp / DEVICE["dsp"], "core_alm_count": alm_c, "cores_fit_count": per_core_room,
        "ddr_latency_s": f["ddr_s"], "active_cores_count": f["active_cores"],
        "core_latency_s": core_c / (clock * 1e6), "static_shell_power_w": np.full(len(lat), C["static_shell_w"]),
        "cores_power_w": cores * core_w, "ddr_power_w": ddr_w,
        "required_acc_bits": np.full(len(lat), float(required_acc_bits(prog.k_max))),
        "state_err_frac": err,
    }


def _reasons(prog: _Program, a: Mapping[str, np.ndarray], m: Mapping[str, np.ndarray], i: int) -> list[str]:
    out = []
    need = required_acc_bits(prog.k_max)
    if a["acc_bits"][i] < need:
        out.append(f"overflow possible: K={prog.k_max}, needs {need} bits, has {int(a['acc_bits'][i])}")
    over = [f"{lbl} {int(m[key][i]):,} > {DEVICE[res]:,}" for lbl, key, res in
            (("ALMs", "alm_count", "alm"), ("M20K", "m20k_count", "m20k"), ("DSP", "dsp_count", "dsp"))
            if m[key][i] > DEVICE[res]]
    if over:
        out.append("over device budget (Stratix 10 SX 2800): " + ", ".join(over))
    if not a["pipelined"][i] and a["clock_mhz"][i] > UNPIPELINED_FMAX_MHZ:
        out.append(f"timing: clock_mhz={a['clock_mhz'][i]:g} > {UNPIPELINED_FMAX_MHZ:g} needs pipelined=True")
    return out


_UNITS = {"unit:tmm": "tmm_cycles", "unit:rms": "rms_cycles", "unit:rowwise": "row_cycles",
          "unit:load": "load_cycles", "unit:store": "store_cycles", "unit:sync": "sync_cycles",
          "unit:issue": "issue_cycles"}
_CORE_KEYS = ("latency_s", "energy_j", "power_w", "dram_bytes", "throughput_per_s")


def _kernel_args(d: Mapping[str, Any]) -> tuple:
    C = CONST
    return (int(C["t_req_cycles"]), int(C["fu_latency_cycles"]), int(C["issue_cycles"]), int(C["sync_base_cycles"]),
            int(C["sync_per_level_cycles"]), int(C["act_bus_bits"]), float(C["ddr_latency_ns"]),
            float(C["ddr_channel_bytes_per_s"]), int(C["ddr_granule_bytes"]), float(C["ddr_efficiency_frac"]))


def _to_metrics(prog: _Program, d: Mapping[str, Any]) -> Metrics:
    """Metrics of one (trusted) design: the numba timing kernel, then resources, power and the
    breakdown (per BitLinear layer, per unit)."""
    t = np.empty((1, _kern.N_FIELDS))
    _kern.token_timing(prog.mats, prog.vecs, prog.n_instr, int(d["cores"]), float(d["clock_mhz"]),
                       int(d["mem_port_bits"]), int(d["burst_len"]), int(_wpb(d["weight_bits_packed"])),
                       bool(d["pipelined"]), int(d["ddr_channels"]), *_kernel_args(d), t[0])
    a = _design_arrays(d)
    m = _finish(prog, a, t)
    reasons = _reasons(prog, a, m, 0)
    clock_hz = float(d["clock_mhz"]) * 1e6
    timing = dict(zip(_kern.FIELDS, t[0].tolist()))
    v = {k: float(x[0]) for k, x in m.items()}
    # per layer: its weight streams (TMM), input broadcast, output gather and barriers; energy =
    # (static + cores) power over that time + the DDR energy of its bytes.  The vector program and
    # any DDR stall are the "unit:vector" and "unit:stall" entries; layers + those two = the totals.
    active = int(timing["active_cores"])
    sync = _sync_cycles(active)
    p_on = v["static_shell_power_w"] + v["cores_power_w"]
    j_per_byte = 8.0 * CONST["ddr_pj_per_bit"] * 1e-12
    breakdown: dict[str, dict[str, float]] = {}
    lin = 0
    for name, cnt, (tmm, ld, st, moved, wb) in zip(prog.names, prog.mats[:, 2].tolist(), _mat_rows(prog, d, active)):
        c = tmm + ld + st + cnt * sync
        lin += c
        breakdown[name] = {"cycles": float(c), "latency_s": c / clock_hz, "energy_j": p_on * c / clock_hz
                           + moved * j_per_byte, "dram_bytes": float(moved), "weight_bytes": float(wb)}
    vec = timing["core_cycles"] - lin
    stall_s = v["latency_s"] - timing["core_cycles"] / clock_hz
    breakdown["unit:vector"] = {"cycles": vec, "latency_s": vec / clock_hz, "energy_j": p_on * vec / clock_hz}
    breakdown["unit:stall"] = {"cycles": v["stall_cycles"], "latency_s": stall_s, "energy_j": p_on * stall_s}
    breakdown.update({u: {"cycles": timing[k], "latency_s": timing[k] / clock_hz} for u, k in _UNITS.items()})
    breakdown["unit:ddr"] = {"latency_s": timing["ddr_s"], "dram_bytes": timing["ddr_transferred_bytes"]}
    breakdown["unit:power"] = {"static_shell_w": v["static_shell_power_w"], "cores_w": v["cores_power_w"],
                               "ddr_w": v["ddr_power_w"]}
    extra = {k: x for k, x in v.items() if k not in _CORE_KEYS and k != "cycles"}
    return Metrics(cycles=int(v["cycles"]), feasible=not reasons, reason="; ".join(reasons),
                   extra=extra, breakdown=breakdown, **{k: v[k] for k in _CORE_KEYS})


def simulate(model: "str | ModelConfig", **design: Any) -> Metrics:
    """Per-token metrics of ``model`` on one design of the token-generation platform.

    ``model``: a short name (``"block-d512"``, ``"370m"``, ``"1.3b"``, ``"2.7b"``), a zoo name
    (``"mmfree-1.3b"``) or any HGRN-bit :class:`~archgym.workloads.ModelConfig`; ``design``
    keywords are the fields of :class:`MatMulFreeDesign` (missing ones take the projected-point
    defaults).  Example: the measured point is ``simulate("block-d512", **MEASURED_DESIGN)``.
    Returns ``Metrics`` per generated token (``latency_s``, ``cycles`` = latency x clock,
    ``dram_bytes`` moved, ``tokens_per_s``, ``tokens_per_j``, ``power_w``, resources, a
    per-layer and per-unit breakdown); an infeasible design (accumulator overflow possible,
    over the device budget, unpipelined above 60 MHz) comes back with ``feasible=False`` and the
    reason.  Raises :class:`MatMulFreeInputError` on bad input (one line naming the value).
    """
    cfg = _config(model)
    unknown = [k for k in design if k not in PROJECTED_DESIGN]
    if unknown:
        raise MatMulFreeInputError(f"unknown design parameter {unknown[0]!r}; allowed: {', '.join(PROJECTED_DESIGN)}")
    return _to_metrics(_program(cfg), asdict(MatMulFreeDesign(**{**PROJECTED_DESIGN, **design})))


class MatMulFreeSimulator(Simulator):
    """The MatMul-free LM token-generation core (arXiv 2406.02528 §6) as a design space.

    Parameters: ``cores`` (1-256), ``clock_mhz`` (60-300; > 60 needs ``pipelined``),
    ``mem_port_bits`` (8-512 per core), ``burst_len`` (1-64 beats), ``weight_bits_packed``
    (2.0 or 1.6), ``acc_bits`` (16-32), ``state_precision`` (fp32/bf16/fp16/int16),
    ``pipelined`` and ``ddr_channels`` (1/2/4). Workloads: one generated token of any
    HGRN-bit model: ``"1.3b"`` (default), ``"370m"``, ``"2.7b"``, one block at d=512
    (``"block-d512"``), a zoo name or an MMfreeLM ``config.json``.

    Metrics: ``latency_s`` per token, ``cycles`` = latency x clock (``core_cycles``,
    ``stall_cycles``), ``dram_bytes`` moved (``weight_bytes`` = footprint), ``throughput_per_s``
    = ``tokens_per_s``, ``tokens_per_j``, ``power_w``, ``energy_j`` per token, ALM/M20K/DSP
    counts and utilisation against the Stratix 10 SX 2800, ``state_err_frac`` (see
    :func:`state_error`) and a per-layer and per-unit breakdown. The default design is the projected
    1.3B point (the paper's deployment claim on the default workload; the measured
    single-core point is ``simulators.matmulfree.MEASURED_DESIGN`` on ``"block-d512"``).
    """

    name = "matmulfree"
    reference = ("MatMul-free LM FPGA (arXiv 2406.02528 v1-v5 §6), calibrated on all three of its numbers: "
                 "measured d=512 block 43 ms (model +0.4 %), projected 1.3B 23.8 tok/s (model -3.2 %, the 128 "
                 "cores derived from it) and 13 W (static power fitted); no held-out paper number")

    def __init__(self) -> None:
        self._space = DesignSpace(
            [Pow2(name="cores", low=1, high=256, doc="token-generation cores"),
             Choice(name="clock_mhz", options=(60, 100, 150, 200, 250, 300), ordinal=True, unit="MHz"),
             Pow2(name="mem_port_bits", low=8, high=512, unit="bit", doc="memory port width per core"),
             Pow2(name="burst_len", low=1, high=64, doc="beats per DDR read transaction"),
             Choice(name="weight_bits_packed", options=WEIGHT_BITS, ordinal=True, unit="bit"),
             Choice(name="acc_bits", options=(16, 18, 20, 21, 22, 24, 32), ordinal=True, unit="bit"),
             Choice(name="state_precision", options=tuple(STATE_PRECISIONS)),
             Choice(name="pipelined", options=(False, True), ordinal=True),
             Choice(name="ddr_channels", options=(1, 2, 4), ordinal=True)])
        # The timing rule (unpipelined core <= 60 MHz) is checked in evaluate, not as a space
        # Constraint: a constraint-infeasible result carries no extra metrics, and the env's
        # observation of extra objective metrics (tokens_per_s) then raises KeyError.
        self._vals = {p.name: np.array(p.values, dtype=object) for p in self._space.params}

    def design_space(self) -> DesignSpace:
        return self._space

    def default_design(self) -> dict:
        """The projected 1.3B point: 128 pipelined cores, 8-bit ports, 64-beat bursts, 60 MHz."""
        d = dict(PROJECTED_DESIGN)
        d["clock_mhz"] = int(d["clock_mhz"])
        return d

    accepts = ("one generated token (decode, batch 1) of any HGRN-bit (MatMul-free LM) model: the zoo's mmfree-* "
               "(aliases 370m, 1.3b, 2.7b, block-d512) or a ModelConfig read from an MMfreeLM config.json")

    def workloads(self) -> tuple[str, ...]:
        return tuple(MODELS)

    def workload_aliases(self) -> dict[str, str]:
        return {short: f"{zoo}/decode" for short, zoo in MODELS.items()}

    def check_workload(self, workload) -> None:
        """HGRN-bit decode at batch 1: the core generates one token of one sequence at a time
        (a batch would share each weight stream across sequences, which it does not model)."""
        cfg = workload.model
        why = ("it has no HGRN-bit ModelConfig" if cfg is None or getattr(cfg, "family", None) != "hgrn-bit" else
               f"phase {workload.phase!r} is not decode" if workload.phase != "decode" else
               f"batch={workload.params.get('batch')} (only batch 1 is modelled)" if workload.params.get("batch", 1) != 1
               else "")
        if why:
            raise WorkloadError(f"matmulfree cannot price workload {workload.source!r}: {why}; it prices {self.accepts}")

    def check_design(self, design: Mapping[str, Any]) -> dict:
        """Every parameter present and valid for :class:`MatMulFreeDesign` (off-grid values allowed:
        cores 1-4096, clock (0, 300] MHz, port 8-4096 bits in steps of 8, ...); raises
        :class:`~archgym.InvalidDesign` (a ``ValueError``) naming the value and what is allowed."""
        if not isinstance(design, Mapping):
            return super().check_design(design)
        missing = [k for k in PROJECTED_DESIGN if k not in design]
        unknown = [k for k in design if k not in PROJECTED_DESIGN]
        if missing or unknown:
            raise InvalidDesign(f"missing parameter {missing[0]!r}" if missing else
                                f"unknown parameter {unknown[0]!r}; parameters: {', '.join(PROJECTED_DESIGN)}")
        try:
            d = MatMulFreeDesign(**dict(design))
        except MatMulFreeInputError as e:
            raise InvalidDesign(str(e)) from None
        return {k: getattr(d, k) for k in PROJECTED_DESIGN}

    def _evaluate(self, design: dict, workload) -> Metrics:
        return _to_metrics(_program(workload.model), design)

    def evaluate_batch(self, indices: np.ndarray, workload) -> dict[str, np.ndarray]:
        """Numba-batched evaluation of index vectors ``(n, 9)``; same numbers as :meth:`evaluate`
        (no breakdown)."""
        prog = _program(self.workload(workload).model)
        idx = self._space.check_indices(indices)
        a = {name: vals[idx[:, j]] for j, (name, vals) in enumerate(self._vals.items())}
        a = {k: (v.astype(str) if k == "state_precision" else v.astype(bool) if k == "pipelined"
                 else v.astype(float) if k in ("clock_mhz", "weight_bits_packed") else v.astype(np.int64))
             for k, v in a.items()}
        t = _kern.batch_timing(prog.mats, prog.vecs, prog.n_instr, a["cores"], a["clock_mhz"], a["mem_port_bits"],
                               a["burst_len"], _wpb(a["weight_bits_packed"]).astype(np.int64), a["pipelined"],
                               a["ddr_channels"], *_kernel_args({}))
        m = _finish(prog, a, t)
        need = required_acc_bits(prog.k_max)
        feasible = ((a["acc_bits"] >= need) & (m["alm_count"] <= DEVICE["alm"]) & (m["m20k_count"] <= DEVICE["m20k"])
                    & (m["dsp_count"] <= DEVICE["dsp"]) & (a["pipelined"] | (a["clock_mhz"] <= UNPIPELINED_FMAX_MHZ)))
        m["feasible"] = feasible
        return m
