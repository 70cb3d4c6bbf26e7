"""BitMoD (HPCA'25) accelerator model with the FP16, ANT, OliVe, BitMoD-lossless and
BitMoD-lossy configurations, reproducing the paper's Fig. 7 cycle counts exactly.

Reproduces: every cycle count of ``bitmod_fig7_cycles.json`` (ratio 1.00000;
``tests/test_bitmod.py``) from the public model configs of the workload zoo.  The
model is the artifact's analytic per-layer tile counter (bitmod.md §3.2, HPCA-era
semantics of commit a902a09), re-implemented from its formulas:

* layers: every linear layer (q, k, v, o, FFN, lm_head) plus two attention
  matmuls per block.  ``attention="hpca"`` (default) models attention as one big
  matmul per block as the HPCA artifact did; ``attention="per_kv_head"`` is the
  later artifact's per-KV-head GEMMs with GQA query sharing and ``kv_bits``
  K/V operands (bitmod.md §3.7);
* tiles = ceil(Cin/D) * ceil(Cout/H) * ceil(T/W) on an H x W PE array with
  dot-product width D; compute cycles = tiles * L, L = ceil(floor(w_bits)/2)
  for a bit-serial PE (2 bits per cycle via Booth/2-term decoding), else 1;
* bytes: weights ceil(Cin*w_bits/8)*Cout, inputs ceil(Cin*16/8)*T, outputs
  ceil(Cout*16/8)*T; if both weights and inputs exceed their 512 KB buffers,
  the cheaper of re-reading weights or re-reading inputs is taken;
* DRAM: 128-bit DDR bus = 256 bit/cycle; layer = max(compute, DRAM); no overlap
  between layers;
* energy: PE energy x 1.5 (place-and-route factor) x #PEs x compute cycles;
  SRAM reads per tile and 64-bit SRAM writes (see :data:`SRAM`); DRAM 1200 pJ
  per 64 bits = 18.75 pJ/bit.

SRAM energies need CACTI (28 nm, 512 KB, 8 banks), whose output the artifact
does not publish.  :data:`SRAM` holds a two-parameter read model (linear in the
bus width) and a per-64-bit write cost fitted once, on the published on-chip
energies of all five configurations (``experiments/bitmod/fit_sram.py``); they
are stand-ins for CACTI, not published values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from archgym.metrics import Metrics
from archgym.simulator import Simulator
from archgym.space import Choice, DesignSpace, Pow2
from archgym.workloads import WorkloadError, get_model

from . import _bitmod_kernels as _kern

__all__ = [
    "MODELS", "ACCELS", "PHASES", "ACCEL_SPECS", "AccelSpec", "SRAM", "simulate_model", "generative",
    "layer_table", "BitmodSimulator", "CONTEXT_TOKENS", "GENERATED_TOKENS",
]

MODELS = ("opt-1.3b", "phi-2", "yi-6b", "llama-2-7b", "llama-2-13b", "llama-3-8b")
ACCELS = ("fp16", "ant", "olive", "bitmod-lossless", "bitmod-lossy")
PHASES = ("prefill", "decode")
ATTENTION = ("hpca", "per_kv_head")
CONTEXT_TOKENS = 256      # prefill length and decode KV length (bitmod.md §3.4)
GENERATED_TOKENS = 20     # generative task = prefill + 20 decode steps (bitmod.md §3.4)
ACT_BITS = 16             # FP16 activations
BUFFER_KB = 512           # activation and weight buffers (bitmod.md §2.6)
DRAM_BITS_PER_CYCLE = 256  # 128-bit bus, DDR (bitmod.md §3.2)
DRAM_PJ_PER_BIT = 1200.0 / 64.0  # bitmod.md §3.2
PR_SCALING = 1.5          # place-and-route factor on PE energy (bitmod.md §3.2)
ENCODER_UM2_PER_TILE = 2419.0  # BitMoD bit-serial term encoder per 8x8 tile (bitmod.md §2.6, Table X)
SRAM_UM2_PER_BIT = 0.195  # assumed: 28 nm 6T cell 0.127 um^2 at ~65% array efficiency

# Per-model effective weight precisions the paper profiled for ANT/OliVe in decode
# (bitmod.md §3.3); prefill uses 5.5 (ANT) and 4.5 (OliVe) for every model.
ANT_DECODE_BITS = {"opt-1.3b": 5, "phi-2": 5, "yi-6b": 5.25, "llama-2-7b": 5, "llama-2-13b": 5, "llama-3-8b": 4.5}
OLIVE_DECODE_BITS = {"opt-1.3b": 3.875, "phi-2": 4, "yi-6b": 4.25, "llama-2-7b": 3.75, "llama-2-13b": 3.75,
                     "llama-3-8b": 3.5}

# CACTI stand-ins (experiments/bitmod/fit_sram.py): read energy per access of a 512 KB,
# 8-bank SRAM = read_pj0 + read_pj_per_bit * bus_bits; write cost per 64-bit word.
# Fitted on all 60 published on-chip energies; on-chip energy within 0.39 %.
SRAM: dict[str, float] = {"read_pj0": 52.0515, "read_pj_per_bit": 0.0827, "write_pj_per_64b": 9.9079}


@dataclass(frozen=True)
class AccelSpec:
    """One accelerator configuration of the paper (bitmod.md §3.3)."""

    name: str
    pe_prefill: tuple[int, int]
    pe_decode: tuple[int, int]
    dp_size: int
    bit_serial: bool
    pe_pj_per_cycle: float
    pe_um2: float
    w_bits_prefill: float
    w_bits_decode: float | Mapping[str, float]
    kv_bits: int = 16

    def w_bits(self, model: str, phase: str) -> float:
        b = self.w_bits_prefill if phase == "prefill" else self.w_bits_decode
        return float(b[model]) if isinstance(b, Mapping) else float(b)


ACCEL_SPECS: dict[str, AccelSpec] = {
    "fp16": AccelSpec("fp16", (32, 24), (64, 12), 1, False, 0.77, 1968.7, 16, 16),
    "ant": AccelSpec("ant", (32, 32), (64, 16), 1, False, 0.56, 1318.6, 5.5, ANT_DECODE_BITS),
    "olive": AccelSpec("olive", (36, 32), (72, 16), 1, False, 0.613, 1318.6, 4.5, OLIVE_DECODE_BITS),
    "bitmod-lossless": AccelSpec("bitmod-lossless", (32, 32), (64, 16), 4, True, 0.56, 1507.7, 6.0625, 6.0625, 8),
    "bitmod-lossy": AccelSpec("bitmod-lossy", (32, 32), (64, 16), 4, True, 0.56, 1507.7, 4.0625, 3.0625, 8),
}


class BitmodInputError(ValueError):
    """An unknown model/accelerator/phase or a design the model cannot price."""


def _check(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise BitmodInputError(f"{name}={value!r}; allowed: {', '.join(map(str, allowed))}")


def layer_table(model: str, phase: str, *, cxt: int = CONTEXT_TOKENS, attention: str = "hpca") -> np.ndarray:
    """The artifact's layer list as rows ``(count, cout, cin, cin_i, tokens, is_attention)``.

    Linear layers come from the zoo config (q, k, v, o, FFN per block, lm_head
    once).  ``cin_i`` is the input's channel count (the K/V width for attention).
    """
    _check("model", model, MODELS)
    _check("phase", phase, PHASES)
    _check("attention", attention, ATTENTION)
    cfg = get_model(model)
    h, L = cfg.hidden, cfg.n_layers
    t = 1 if phase == "decode" else cxt
    rows = [(L, h, h, h, t, 0), (L, cfg.kv_dim, h, h, t, 0), (L, cfg.kv_dim, h, h, t, 0), (L, h, h, h, t, 0)]
    if cfg.family == "llama":
        rows += [(L, cfg.ffn, h, h, t, 0), (L, cfg.ffn, h, h, t, 0), (L, h, cfg.ffn, cfg.ffn, t, 0)]
    else:
        rows += [(L, cfg.ffn, h, h, t, 0), (L, h, cfg.ffn, cfg.ffn, t, 0)]
    rows.append((1, cfg.vocab, h, h, t, 0))
    kv_w = h / cfg.heads * cfg.kv_heads
    if attention == "hpca":
        # attention as one big matmul per block (artifact a902a09; bitmod.md §3.2 table)
        if phase == "prefill":
            rows += [(L, cxt, h, kv_w, cfg.heads * cxt, 1), (L, cfg.heads * cxt, cxt, kv_w, cxt, 1)]
        else:
            rows += [(L, 1, h, kv_w, cfg.heads, 1), (L, cfg.heads, cxt, kv_w, 1, 1)]
    else:
        # per KV head, queries of a GQA group share one K/V (artifact HEAD; bitmod.md §3.7)
        q = cfg.heads // cfg.kv_heads
        tq = q * cxt if phase == "prefill" else q
        hd = cfg.head_dim
        rows += [(L * cfg.kv_heads, cxt, hd, hd, tq, 1), (L * cfg.kv_heads, hd, cxt, cxt, tq, 1)]
    return np.array(rows, dtype=np.float64)


def _latency_cycles(w_bits: float, bit_serial: bool) -> int:
    return math.ceil(math.floor(w_bits) / 2) if bit_serial else 1


def _layer_reference(row, H, W, D, lat_lin, lat_att, w_bits, att_bits, wbuf, abuf, bw) -> dict:
    """Slow plain-Python twin of the numba kernel for one layer (bitmod.md §3.2)."""
    cnt, cout, cin, cin_i, tok, att = row
    wb = att_bits if att else w_bits
    tiles = math.ceil(cin / D) * math.ceil(cout / H) * math.ceil(tok / W)
    compute = tiles * (lat_att if att else lat_lin)
    wbytes = math.ceil(cin * wb / 8) * cout
    ibytes = math.ceil(cin_i * ACT_BITS / 8) * tok
    obytes = math.ceil(cout * ACT_BITS / 8) * tok
    fw = fi = 1
    if wbytes > wbuf and ibytes > abuf:
        refetch_w, refetch_i = math.ceil(ibytes / abuf), math.ceil(wbytes / wbuf)
        if refetch_w * wbytes + ibytes < refetch_i * ibytes + wbytes:
            fw = refetch_w
        else:
            fi = refetch_i
    dram = int(wbytes * 8 / bw * fw + obytes * 8 / bw + ibytes * 8 / bw * fi)
    return {"compute": compute * cnt, "cycles": max(compute, dram) * cnt, "tiles": tiles * cnt,
            "fw": fw, "fi": fi, "dram_bits": (wbytes * fw + ibytes * fi + obytes) * 8 * cnt}


@dataclass(frozen=True)
class _Design:
    H: int
    W: int
    D: int
    bit_serial: bool
    w_bits: float
    att_bits: float
    pe_pj: float
    pe_um2: float
    wbuf_kb: float = BUFFER_KB
    abuf_kb: float = BUFFER_KB
    dram_bits: int = DRAM_BITS_PER_CYCLE
    clock_mhz: float = 1000.0
    tiles_8x8: int = 0
    extras: dict = field(default_factory=dict)


def _evaluate(model: str, phase: str, d: _Design, attention: str, cxt: int) -> Metrics:
    layers = layer_table(model, phase, cxt=cxt, attention=attention)
    lat_lin = _latency_cycles(d.w_bits, d.bit_serial)
    lat_att = _latency_cycles(d.att_bits, d.bit_serial) if attention == "per_kv_head" else lat_lin
    out = np.empty(_kern.N_FIELDS)
    _kern.model_eval(layers, d.H, d.W, d.D, lat_lin, lat_att, d.w_bits, d.att_bits, ACT_BITS,
                     d.wbuf_kb * 1024.0, d.abuf_kb * 1024.0, d.dram_bits, out)
    return _metrics(out, d)


def _sram_read_pj(bus_bits: float, kb: float) -> float:
    # assumed: CACTI-like sqrt scaling of access energy with capacity away from 512 KB
    return (SRAM["read_pj0"] + SRAM["read_pj_per_bit"] * bus_bits) * math.sqrt(kb / BUFFER_KB)


def _metrics(out: np.ndarray, d: _Design) -> Metrics:
    compute, cycles, tiles, wd, idr, od, w_wr, i_wr, o_wr = (float(x) for x in out)
    n_pe = d.H * d.W
    half = 2 if d.bit_serial else 1
    w_bus = d.D * math.ceil(d.w_bits / 4) * 4 * d.H / half
    i_bus = d.D * ACT_BITS * d.W / half
    compute_pj = d.pe_pj * PR_SCALING * n_pe * compute
    sram_rd_pj = tiles * (_sram_read_pj(w_bus, d.wbuf_kb) + _sram_read_pj(i_bus, d.abuf_kb))
    sram_wr_pj = (w_wr * math.sqrt(d.wbuf_kb / BUFFER_KB) + (i_wr + o_wr) * math.sqrt(d.abuf_kb / BUFFER_KB)) \
        * SRAM["write_pj_per_64b"]
    dram_bits = wd + idr + od
    dram_pj = dram_bits * DRAM_PJ_PER_BIT
    energy = (compute_pj + sram_rd_pj + sram_wr_pj + dram_pj) * 1e-12
    latency = cycles / (d.clock_mhz * 1e6)
    pe_area = n_pe * d.pe_um2 + d.tiles_8x8 * ENCODER_UM2_PER_TILE
    sram_area = (d.wbuf_kb + d.abuf_kb) * 8192 * SRAM_UM2_PER_BIT
    onchip_j = (compute_pj + sram_rd_pj + sram_wr_pj) * 1e-12
    return Metrics(
        cycles=int(cycles), latency_s=latency, energy_j=energy, power_w=energy / latency,
        area_mm2=(pe_area + sram_area) * 1e-6, onchip_bytes=(d.wbuf_kb + d.abuf_kb) * 1024.0,
        dram_bytes=dram_bits / 8.0, throughput_per_s=1.0 / latency, utilization_frac=math.nan,
        extra={
            "compute_cycles": compute, "edp_js": energy * latency, "onchip_energy_j": onchip_j,
            "compute_energy_j": compute_pj * 1e-12, "sram_read_energy_j": sram_rd_pj * 1e-12,
            "sram_write_energy_j": sram_wr_pj * 1e-12, "dram_energy_j": dram_pj * 1e-12,
            "pe_array_area_mm2": pe_area * 1e-6, "pe_count": float(n_pe),
        },
    )


def simulate_model(
    model: str, accel: str, phase: str, *, attention: str = "hpca", cxt: int = CONTEXT_TOKENS,
    pe_rows: int | None = None, pe_cols: int | None = None, dp_size: int | None = None, w_bits: float | None = None,
    act_buffer_kb: float = BUFFER_KB, weight_buffer_kb: float = BUFFER_KB,
    dram_bits_per_cycle: int = DRAM_BITS_PER_CYCLE, clock_mhz: float = 1000.0,
) -> Metrics:
    """Cycles, latency, energy and area of one paper configuration on one model and phase.

    ``model`` in :data:`MODELS`, ``accel`` in :data:`ACCELS`, ``phase`` in
    ``{"prefill", "decode"}`` ("decode" = one generation step at KV length
    ``cxt``).  Keyword overrides change the paper's configuration (PE array,
    dot-product width, weight bits, buffers, DRAM bandwidth, clock).
    ``Metrics.cycles`` is an int; ``extra`` holds the energy breakdown.
    """
    _check("model", model, MODELS)
    _check("accel", accel, ACCELS)
    _check("phase", phase, PHASES)
    spec = ACCEL_SPECS[accel]
    H, W = spec.pe_prefill if phase == "prefill" else spec.pe_decode
    H = H if pe_rows is None else pe_rows
    W = W if pe_cols is None else pe_cols
    wb = spec.w_bits(model, phase) if w_bits is None else float(w_bits)
    D = dp_size or spec.dp_size
    _check_positive(pe_rows=H, pe_cols=W, dp_size=D, cxt=cxt, dram_bits_per_cycle=dram_bits_per_cycle)
    if not (0 < wb <= 16):
        raise BitmodInputError(f"w_bits={wb}; allowed: 0 < w_bits <= 16")
    _check_buffers(act_buffer_kb, weight_buffer_kb, H, W, D, wb)
    d = _Design(H, W, D, spec.bit_serial, wb, spec.kv_bits if attention == "per_kv_head" else ACT_BITS,
                spec.pe_pj_per_cycle * D / spec.dp_size, spec.pe_um2 * D / spec.dp_size, weight_buffer_kb,
                act_buffer_kb, dram_bits_per_cycle, clock_mhz, (H * W) // 64 if spec.bit_serial else 0)
    return _evaluate(model, phase, d, attention, cxt)


def _check_positive(**vals: int) -> None:
    for k, v in vals.items():
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise BitmodInputError(f"{k}={v!r} must be a positive integer")


def _check_buffers(act_kb: float, w_kb: float, H: int, W: int, D: int, w_bits: float) -> None:
    # one PE-array tile: H*D weights and W*D activations
    w_tile = H * D * w_bits / 8 / 1024
    a_tile = W * D * ACT_BITS / 8 / 1024
    if w_kb < w_tile:
        raise BitmodInputError(f"weight_buffer_kb={w_kb} is smaller than one {H}x{D} weight tile ({w_tile:.3f} kB)")
    if act_kb < a_tile:
        raise BitmodInputError(f"act_buffer_kb={act_kb} is smaller than one {W}x{D} activation tile ({a_tile:.3f} kB)")


def generative(model: str, accel: str, **kw: Any) -> dict[str, float]:
    """The paper's generative task: prefill + ``GENERATED_TOKENS`` decode steps.

    Returns ``{"cycles": ..., "energy_j": ..., "onchip_energy_j": ...}``.
    """
    p = simulate_model(model, accel, "prefill", **kw)
    d = simulate_model(model, accel, "decode", **kw)
    n = GENERATED_TOKENS
    return {
        "cycles": p.cycles + n * d.cycles,
        "energy_j": p.energy_j + n * d.energy_j,
        "onchip_energy_j": p.extra["onchip_energy_j"] + n * d.extra["onchip_energy_j"],
    }


# --- the Gymnasium-facing simulator ------------------------------------------------------
# Weight datatypes of the BitMoD PE: (bits, terms per weight from the bit-serial decoder).
W_DTYPES = ("fp3-ext", "fp4-ext", "int6", "int8")
_DTYPE_BITS = {"fp3-ext": 3, "fp4-ext": 4, "int6": 6, "int8": 8}
SCALE_BITS = 8  # second-level INT8 group scale (bitmod.md §1.5-1.6): 8/G bits per weight

# Wikitext-2 perplexity with per-group (g128) BitMoD weights vs FP16 (bitmod.md §5.1 Table VI);
# INT6/INT8 are lossless within 0.05 PPL (Table II), counted as 0 here.  Tabulated, not computed:
# other group sizes reuse the g128 value.
_FP16_PPL = {"opt-1.3b": 14.62, "phi-2": 9.71, "yi-6b": 5.84, "llama-2-7b": 5.47, "llama-2-13b": 4.88,
             "llama-3-8b": 6.13}
_BITMOD_PPL = {
    "fp4-ext": {"opt-1.3b": 14.89, "phi-2": 10.48, "yi-6b": 6.23, "llama-2-7b": 5.72, "llama-2-13b": 5.01,
                "llama-3-8b": 6.73},
    "fp3-ext": {"opt-1.3b": 22.67, "phi-2": 12.91, "yi-6b": 7.66, "llama-2-7b": 6.55, "llama-2-13b": 5.50,
                "llama-3-8b": 8.96},
}


def _ppl_increase(dtype: str, model: str) -> float:
    if dtype not in _BITMOD_PPL:
        return 0.0
    return _BITMOD_PPL[dtype][model] / _FP16_PPL[model] - 1.0


class BitmodSimulator(Simulator):
    """The BitMoD accelerator (bit-serial mixture-of-datatype PEs) as a design space.

    Parameters: ``tile_rows`` x ``tile_cols`` tiles of 8x8 PEs, PE dot-product
    width ``dp_size``, weight datatype ``w_dtype`` (ext-FP3/FP4 or INT6/INT8,
    bit-serial), quantization ``group_size`` (adds 8/G scale bits per weight),
    ``act_buffer_kb``/``weight_buffer_kb``, DRAM bandwidth
    ``dram_bits_per_cycle`` and ``clock_mhz``.  Workloads: ``<model>/prefill``,
    ``<model>/decode`` (one step) and ``<model>/generative`` (prefill + 20 decode
    steps) for the six models of the paper.  A group size that does not divide
    every input-channel count of the model is infeasible.

    Metrics: latency, energy (compute/SRAM/DRAM breakdown), area (PE table of
    the paper + assumed SRAM density), energy-delay product ``edp_js``, and the
    paper's measured Wikitext-2 perplexity increase of the datatype
    (``ppl_increase_frac``, tabulated at group 128).
    """

    name = "bitmod"
    reference = ("BitMoD HPCA'25 Fig. 7 cycle counts, exact (all 30 published numbers); energy within 0.1 % "
                 "of the artifact's Fig. 8 numbers with fitted SRAM constants")

    def __init__(self, attention: str = "hpca") -> None:
        _check("attention", attention, ATTENTION)
        self.attention = attention
        self._space = DesignSpace([
            Choice(name="tile_rows", options=(1, 2, 4, 8), ordinal=True, doc="8x8 PE tiles along output channels"),
            Choice(name="tile_cols", options=(1, 2, 4, 8), ordinal=True, doc="8x8 PE tiles along tokens"),
            Choice(name="dp_size", options=(1, 2, 4, 8), ordinal=True, doc="PE dot-product lanes"),
            Choice(name="w_dtype", options=W_DTYPES, ordinal=True, doc="weight datatype (bit-serial)"),
            Choice(name="group_size", options=(32, 64, 128, 256), ordinal=True, doc="weights per scale"),
            Pow2(name="act_buffer_kb", low=128, high=2048, unit="kB"),
            Pow2(name="weight_buffer_kb", low=128, high=2048, unit="kB"),
            Choice(name="dram_bits_per_cycle", options=(64, 128, 256, 512), ordinal=True, unit="bit/cycle"),
            Choice(name="clock_mhz", options=(500, 800, 1000, 1200), ordinal=True, unit="MHz"),
        ])
        self._vals = tuple(np.asarray(p.values) for p in self._space.params)
        self._layers: dict[tuple[str, str], np.ndarray] = {}

    def design_space(self) -> DesignSpace:
        return self._space

    def default_design(self) -> dict:
        """The paper's BitMoD-lossy prefill configuration: 4x4 tiles (32x32 PEs), D=4, FP4-ext g128."""
        return dict(tile_rows=4, tile_cols=4, dp_size=4, w_dtype="fp4-ext", group_size=128, act_buffer_kb=512,
                    weight_buffer_kb=512, dram_bits_per_cycle=256, clock_mhz=1000)

    def workloads(self) -> tuple[str, ...]:
        return tuple(f"{m}/{p}" for m in ("llama-2-7b", *[x for x in MODELS if x != "llama-2-7b"])
                     for p in ("prefill", "decode", "generative"))

    workload_defaults = {"seq_len": CONTEXT_TOKENS, "gen_tokens": GENERATED_TOKENS}

    accepts = ("decoder-LLM workloads of the paper's six models (opt-1.3b, phi-2, yi-6b, llama-2-7b, "
               "llama-2-13b, llama-3-8b): prefill, decode, generative; batch 1")

    def check_workload(self, workload) -> None:
        cfg = workload.model
        if cfg is None or cfg.name not in MODELS or workload.phase not in ("prefill", "decode", "generative"):
            raise WorkloadError(f"bitmod cannot price workload {workload.source!r}: it prices {self.accepts}")
        if workload.params.get("batch", 1) != 1:
            raise WorkloadError(f"bitmod cannot price workload {workload.source!r}: batch > 1 is not modelled "
                                "(the artifact's layer table has one sequence)")

    def _phases(self, workload) -> tuple[str, list[tuple[str, int, int]]]:
        w = self.workload(workload)
        p = w.params
        if w.phase == "generative":
            return w.model.name, [("prefill", 1, p["seq_len"]), ("decode", p["gen_tokens"], p["context_len"])]
        return w.model.name, [(w.phase, 1, p["seq_len"] if w.phase == "prefill" else p["context_len"])]

    def _table(self, model: str, phase: str, cxt: int) -> np.ndarray:
        key = (model, phase, cxt)
        if key not in self._layers:
            self._layers[key] = layer_table(model, phase, cxt=cxt, attention=self.attention)
        return self._layers[key]

    def _group_ok(self, model: str, group: int) -> bool:
        cfg = get_model(model)
        return all(c % group == 0 for c in (cfg.hidden, cfg.ffn))

    def _design(self, d: Mapping[str, Any]) -> _Design:
        bits = _DTYPE_BITS[d["w_dtype"]]
        spec = ACCEL_SPECS["bitmod-lossy"]
        D = d["dp_size"]
        return _Design(
            8 * d["tile_rows"], 8 * d["tile_cols"], D, True, bits + SCALE_BITS / d["group_size"],
            spec.kv_bits if self.attention == "per_kv_head" else ACT_BITS,
            spec.pe_pj_per_cycle * D / spec.dp_size, spec.pe_um2 * D / spec.dp_size, d["weight_buffer_kb"],
            d["act_buffer_kb"], d["dram_bits_per_cycle"], d["clock_mhz"], d["tile_rows"] * d["tile_cols"],
        )

    def evaluate(self, design: Mapping[str, Any], workload: str) -> Metrics:
        model, phases = self._phases(workload)
        if not self._group_ok(model, design["group_size"]):
            cfg = get_model(model)
            return Metrics.infeasible(
                f"group_size={design['group_size']} does not divide the input channels "
                f"({cfg.hidden}, {cfg.ffn}) of {model}"
            )
        dz = self._design(design)
        parts = [(_evaluate(model, ph, dz, self.attention, cxt), n) for ph, n, cxt in phases]
        m = parts[0][0] if len(parts) == 1 else _combine(parts)
        extra = dict(m.extra)
        extra["ppl_increase_frac"] = _ppl_increase(design["w_dtype"], model)
        return Metrics(cycles=m.cycles, latency_s=m.latency_s, energy_j=m.energy_j, power_w=m.power_w,
                       area_mm2=m.area_mm2, onchip_bytes=m.onchip_bytes, dram_bytes=m.dram_bytes,
                       throughput_per_s=m.throughput_per_s, extra=extra)

    def evaluate_batch(self, indices: np.ndarray, workload: str) -> dict[str, np.ndarray]:
        """Numba-batched evaluation of index vectors ``(n, 9)`` (same numbers as :meth:`evaluate`)."""
        model, phases = self._phases(workload)
        idx = np.asarray(indices, dtype=np.int64)
        tr, tc, dp, dt, gs, ab, wb, bw, clk = (v[idx[:, j]] for j, v in enumerate(self._vals))
        bits = np.array([_DTYPE_BITS[x] for x in W_DTYPES], dtype=np.float64)[idx[:, 3]]
        w_bits = bits + SCALE_BITS / gs
        lat = np.ceil(np.floor(w_bits) / 2).astype(np.int64)
        spec = ACCEL_SPECS["bitmod-lossy"]
        att_bits = np.full(len(idx), float(spec.kv_bits if self.attention == "per_kv_head" else ACT_BITS))
        lat_att = np.ceil(np.floor(att_bits) / 2).astype(np.int64) if self.attention == "per_kv_head" else lat
        H, W = (8 * tr).astype(np.int64), (8 * tc).astype(np.int64)
        totals = np.zeros((len(idx), _kern.N_FIELDS))
        cycles_total = np.zeros(len(idx))
        energy = np.zeros(len(idx))
        for ph, n, cxt in phases:
            res = _kern.batch_eval(self._table(model, ph, cxt), H, W, dp.astype(np.int64), lat, lat_att, w_bits,
                                   att_bits, float(ACT_BITS), wb * 1024.0, ab * 1024.0, bw.astype(np.float64))
            e = _energy_arrays(res, H, W, dp, w_bits, spec, wb, ab)
            totals += n * res
            energy += n * e
            cycles_total += n * res[:, 1]
        latency = cycles_total / (clk * 1e6)
        n_pe = H * W
        area = (n_pe * spec.pe_um2 * dp / spec.dp_size + tr * tc * ENCODER_UM2_PER_TILE
                + (wb + ab) * 8192 * SRAM_UM2_PER_BIT) * 1e-6
        group_ok = np.array([self._group_ok(model, g) for g in self._vals[4]])[idx[:, 4]]
        ppl = np.array([_ppl_increase(x, model) for x in W_DTYPES])[idx[:, 3]]
        return {"cycles": cycles_total, "latency_s": latency, "energy_j": energy, "power_w": energy / latency,
                "area_mm2": area, "dram_bytes": (totals[:, 3] + totals[:, 4] + totals[:, 5]) / 8.0,
                "edp_js": energy * latency, "ppl_increase_frac": ppl, "feasible": group_ok}


def _energy_arrays(res, H, W, D, w_bits, spec, wbuf_kb, abuf_kb) -> np.ndarray:
    """Vectorised twin of the energy part of :func:`_metrics` (joules per design)."""
    compute, _, tiles, wd, idr, od, w_wr, i_wr, o_wr = res.T
    w_bus = D * np.ceil(w_bits / 4) * 4 * H / 2
    i_bus = D * ACT_BITS * W / 2
    rd = tiles * ((SRAM["read_pj0"] + SRAM["read_pj_per_bit"] * w_bus) * np.sqrt(wbuf_kb / BUFFER_KB)
                  + (SRAM["read_pj0"] + SRAM["read_pj_per_bit"] * i_bus) * np.sqrt(abuf_kb / BUFFER_KB))
    wr = (w_wr * np.sqrt(wbuf_kb / BUFFER_KB) + (i_wr + o_wr) * np.sqrt(abuf_kb / BUFFER_KB)) * SRAM["write_pj_per_64b"]
    pe = spec.pe_pj_per_cycle * D / spec.dp_size * PR_SCALING * H * W * compute
    return (pe + rd + wr + (wd + idr + od) * DRAM_PJ_PER_BIT) * 1e-12


def _combine(parts: list[tuple[Metrics, int]]) -> Metrics:
    """Sum of phases (``n`` repetitions each): cycles, latency, energy and traffic add."""
    cycles = sum(m.cycles * n for m, n in parts)
    latency = sum(m.latency_s * n for m, n in parts)
    energy = sum(m.energy_j * n for m, n in parts)
    extra = {k: sum(m.extra[k] * n for m, n in parts) for k in parts[0][0].extra
             if k not in ("pe_array_area_mm2", "pe_count", "edp_js")}
    extra.update(pe_array_area_mm2=parts[0][0].extra["pe_array_area_mm2"], pe_count=parts[0][0].extra["pe_count"],
                 edp_js=energy * latency)
    first = parts[0][0]
    return Metrics(cycles=cycles, latency_s=latency, energy_j=energy, power_w=energy / latency,
                   area_mm2=first.area_mm2, onchip_bytes=first.onchip_bytes,
                   dram_bytes=sum(m.dram_bytes * n for m, n in parts), throughput_per_s=1.0 / latency, extra=extra)
