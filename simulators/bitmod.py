"""BitMoD (HPCA'25) accelerator model with the FP16, ANT, OliVe, BitMoD-lossless and
BitMoD-lossy configurations, reproducing the paper's Fig. 7 cycle counts exactly.

Reproduces: every cycle count of ``bitmod_fig7_cycles.json`` (ratio 1.00000;
``tests/test_bitmod.py``) from the public model configs of the workload zoo.  The
model is the artifact's analytic per-layer tile counter (the HPCA'25 artifact, abdelfattah-lab/BitMoD-HPCA-25,
commit a902a09, ``bitmod_sim/pe_array.py`` and ``accelerator.py``), re-implemented from its formulas:

* layers: every linear layer (q, k, v, o, FFN, lm_head) plus two attention
  matmuls per block.  ``attention="hpca"`` (default) models attention as one big
  matmul per block as the HPCA artifact did; ``attention="per_kv_head"`` is the
  later artifact's per-KV-head GEMMs with GQA query sharing and ``kv_bits``
  K/V operands (the artifact's HEAD e445a5f).  :class:`BitmodSimulator` prices
  any workload: decoder LLMs with this layer table, everything else (topology
  files, traced modules, ONNX graphs) as plain GEMMs
  (:mod:`simulators._bitmod_lowering` states both conventions);
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

What is calibration and what is prediction: the Fig. 7 cycle counts are a
reproduction of the artifact's formulas (no constant is fitted on them); the
per-model speedups of the three models whose raw cycles the paper withholds are
predictions; the DRAM part of every Fig. 8 energy is a prediction (closed form);
the on-chip part is calibrated (the three :data:`SRAM` constants); the areas use
the paper's PE table plus an assumed SRAM density (:data:`SRAM_UM2_PER_BIT`);
``ppl_increase_frac`` is a table lookup (the paper's Table VI).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from archgym.metrics import Metrics
from archgym.simulator import Simulator
from archgym.space import Choice, DesignSpace, InvalidDesign, Pow2
from archgym.workloads import get_model

from . import _bitmod_kernels as _kern
from ._bitmod_lowering import ATTENTION, LayerTable, lower

__all__ = [
    "MODELS", "ACCELS", "PHASES", "ACCEL_SPECS", "AccelSpec", "SRAM", "simulate_model", "generative",
    "layer_table", "BitmodSimulator", "CONTEXT_TOKENS", "GENERATED_TOKENS",
]

MODELS = ("opt-1.3b", "phi-2", "yi-6b", "llama-2-7b", "llama-2-13b", "llama-3-8b")
ACCELS = ("fp16", "ant", "olive", "bitmod-lossless", "bitmod-lossy")
PHASES = ("prefill", "decode")
CONTEXT_TOKENS = 256      # prefill length and decode KV length (artifact drivers: context_length=256)
GENERATED_TOKENS = 20     # generative task = prefill + 20 decode steps (artifact plot/speedup_plot.ipynb)
ACT_BITS = 16             # FP16 activations
BUFFER_KB = 512           # activation and weight buffers (paper §V-A)
DRAM_BITS_PER_CYCLE = 256  # 128-bit bus, DDR (artifact accelerator.py)
DRAM_PJ_PER_BIT = 1200.0 / 64.0  # artifact: 1200 pJ per 64 bits, read = write
PR_SCALING = 1.5          # place-and-route factor on PE energy (artifact pe_array.py)
ENCODER_UM2_PER_TILE = 2419.0  # BitMoD bit-serial term encoder per 8x8 tile (paper Table X)
SRAM_UM2_PER_BIT = 0.195  # assumed: 28 nm 6T cell 0.127 um^2 at ~65% array efficiency

# Per-model effective weight precisions the paper profiled for ANT/OliVe in decode
# (artifact test_ant.py / test_olive.py at a902a09); prefill uses 5.5 (ANT) and 4.5 (OliVe) for every model.
ANT_DECODE_BITS = {"opt-1.3b": 5, "phi-2": 5, "yi-6b": 5.25, "llama-2-7b": 5, "llama-2-13b": 5, "llama-3-8b": 4.5}
OLIVE_DECODE_BITS = {"opt-1.3b": 3.875, "phi-2": 4, "yi-6b": 4.25, "llama-2-7b": 3.75, "llama-2-13b": 3.75,
                     "llama-3-8b": 3.5}

# CACTI stand-ins (experiments/bitmod/fit_sram.py): read energy per access of a 512 KB,
# 8-bank SRAM = read_pj0 + read_pj_per_bit * bus_bits; write cost per 64-bit word.
# Fitted on all 60 published on-chip energies; on-chip energy within 0.39 %.
SRAM: dict[str, float] = {"read_pj0": 52.0515, "read_pj_per_bit": 0.0827, "write_pj_per_64b": 9.9079}


@dataclass(frozen=True)
class AccelSpec:
    """One accelerator configuration of the paper (artifact drivers test_*.py at a902a09)."""

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
        # attention as one big matmul per block (artifact a902a09, pe_array.py)
        if phase == "prefill":
            rows += [(L, cxt, h, kv_w, cfg.heads * cxt, 1), (L, cfg.heads * cxt, cxt, kv_w, cxt, 1)]
        else:
            rows += [(L, 1, h, kv_w, cfg.heads, 1), (L, cfg.heads, cxt, kv_w, 1, 1)]
    else:
        # per KV head, queries of a GQA group share one K/V (artifact HEAD e445a5f, pe_array.py)
        q = cfg.heads // cfg.kv_heads
        tq = q * cxt if phase == "prefill" else q
        hd = cfg.head_dim
        rows += [(L * cfg.kv_heads, cxt, hd, hd, tq, 1), (L * cfg.kv_heads, hd, cxt, cxt, tq, 1)]
    return np.array(rows, dtype=np.float64)


def _latency_cycles(w_bits: float, bit_serial: bool) -> int:
    return math.ceil(math.floor(w_bits) / 2) if bit_serial else 1


def _layer_reference(row, H, W, D, lat_lin, lat_att, w_bits, att_bits, wbuf, abuf, bw) -> dict:
    """Slow plain-Python twin of the numba kernel for one layer (artifact a902a09, accelerator.py)."""
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


class _Design(NamedTuple):
    """One priced configuration (a NamedTuple: built on every evaluation, so cheap)."""

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


def _evaluate(model: str, phase: str, d: _Design, attention: str, cxt: int) -> Metrics:
    layers = layer_table(model, phase, cxt=cxt, attention=attention)
    lat_lin = _latency_cycles(d.w_bits, d.bit_serial)
    lat_att = _latency_cycles(d.att_bits, d.bit_serial) if attention == "per_kv_head" else lat_lin
    out = np.empty((1, _kern.N_FIELDS))
    _kern.model_eval(layers, d.H, d.W, d.D, lat_lin, lat_att, d.w_bits, d.att_bits, ACT_BITS,
                     d.wbuf_kb * 1024.0, d.abuf_kb * 1024.0, d.dram_bits, out[0])
    return _metrics(out, d, ())


def _energy_coefs(H, W, D, w_bits, half, wbuf_kb, abuf_kb, pe_pj, ceil=math.ceil, sqrt=math.sqrt):
    """Energy per unit of each kernel field (pJ): per compute cycle, per tile (the weight and
    input SRAM reads), per 64-bit weight-buffer write, per 64-bit activation-buffer write.
    Works on floats (``math``) and on arrays (pass ``np.ceil``/``np.sqrt``).  The SRAM access
    energy scales as sqrt(capacity / 512 KB) away from the fitted size (assumed, CACTI-like)."""
    w_bus = D * ceil(w_bits / 4) * 4 * H / half
    i_bus = D * ACT_BITS * W / half
    sw, sa = sqrt(wbuf_kb / BUFFER_KB), sqrt(abuf_kb / BUFFER_KB)
    rd0, rd1 = SRAM["read_pj0"], SRAM["read_pj_per_bit"]
    return (pe_pj * PR_SCALING * H * W, (rd0 + rd1 * w_bus) * sw + (rd0 + rd1 * i_bus) * sa,
            SRAM["write_pj_per_64b"] * sw, SRAM["write_pj_per_64b"] * sa)


def _energy_parts(f, coefs) -> tuple:
    """(compute, SRAM read, SRAM write, DRAM) energy in pJ from the kernel fields ``f[0..8]``
    (floats, or arrays: one per field)."""
    c_cmp, c_tile, c_wwr, c_awr = coefs
    return (c_cmp * f[0], c_tile * f[2], c_wwr * f[6] + c_awr * (f[7] + f[8]), DRAM_PJ_PER_BIT * (f[3] + f[4] + f[5]))


class _Breakdown(Mapping):
    """The per-layer breakdown, built on first access: agents rarely read it, and building
    the dicts would cost as much as the model itself.  Each entry: ``cycles``, ``latency_s``,
    ``energy_j``, ``compute_cycles``, ``dram_bytes`` of one layer (all its repetitions)."""

    __slots__ = ("_names", "_per", "_coefs", "_inv_clock", "_d")

    def __init__(self, names: tuple[str, ...], per: np.ndarray, coefs: tuple, inv_clock: float) -> None:
        self._names, self._per, self._coefs, self._inv_clock, self._d = names, per, coefs, inv_clock, None

    def _dict(self) -> dict:
        if self._d is None:
            per, inv_clock = self._per, self._inv_clock
            c_cmp, c_tile, c_wwr, c_awr = self._coefs
            # per-layer energy and DRAM bytes: the same sums as the totals, as one product per layer
            e, b = DRAM_PJ_PER_BIT * 1e-12, 0.125
            w = np.array([[c_cmp * 1e-12, 0.0], [0.0, 0.0], [c_tile * 1e-12, 0.0], [e, b], [e, b], [e, b],
                          [c_wwr * 1e-12, 0.0], [c_awr * 1e-12, 0.0], [c_awr * 1e-12, 0.0]])
            ed = (per @ w).T.tolist()
            cols = per.T.tolist()
            self._d = {n: {"cycles": c, "latency_s": c * inv_clock, "energy_j": ej, "compute_cycles": cc,
                           "dram_bytes": db}
                       for n, c, ej, cc, db in zip(self._names, cols[1], ed[0], cols[0], ed[1])}
        return self._d

    def __getitem__(self, key: str) -> dict:
        return self._dict()[key]

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return repr(self._dict())


def _metrics(per: np.ndarray, d: _Design, names: tuple[str, ...], **more: float) -> Metrics:
    """Metrics from the kernel's per-layer fields ``per`` (``(len(names) or 1, 9)``); a
    breakdown entry per name; ``more``: further extra metrics."""
    coefs = _energy_coefs(d.H, d.W, d.D, d.w_bits, 2 if d.bit_serial else 1, d.wbuf_kb, d.abuf_kb, d.pe_pj)
    tot = (per.sum(axis=0) if len(per) > 1 else per[0]).tolist()
    compute, cycles = tot[0], tot[1]
    compute_pj, sram_rd_pj, sram_wr_pj, dram_pj = _energy_parts(tot, coefs)
    energy = (compute_pj + sram_rd_pj + sram_wr_pj + dram_pj) * 1e-12
    inv_clock = 1.0 / (d.clock_mhz * 1e6)
    latency = cycles * inv_clock
    n_pe = d.H * d.W
    pe_area = n_pe * d.pe_um2 + d.tiles_8x8 * ENCODER_UM2_PER_TILE
    sram_area = (d.wbuf_kb + d.abuf_kb) * 8192 * SRAM_UM2_PER_BIT
    dram_bits = tot[3] + tot[4] + tot[5]
    breakdown = _Breakdown(names, per, coefs, inv_clock) if names else {}
    return Metrics(
        cycles=int(cycles), latency_s=latency, energy_j=energy, power_w=energy / latency,
        area_mm2=(pe_area + sram_area) * 1e-6, onchip_bytes=(d.wbuf_kb + d.abuf_kb) * 1024.0,
        dram_bytes=dram_bits / 8.0, throughput_per_s=1.0 / latency,
        extra={
            "compute_cycles": compute, "edp_js": energy * latency,
            "onchip_energy_j": (compute_pj + sram_rd_pj + sram_wr_pj) * 1e-12,
            "compute_energy_j": compute_pj * 1e-12, "sram_read_energy_j": sram_rd_pj * 1e-12,
            "sram_write_energy_j": sram_wr_pj * 1e-12, "dram_energy_j": dram_pj * 1e-12,
            "pe_array_area_mm2": pe_area * 1e-6, "pe_count": float(n_pe), **more,
        },
        breakdown=breakdown,
    )


def simulate_model(
    model: str, accel: str, phase: str, *, attention: str = "hpca", cxt: int = CONTEXT_TOKENS,
    pe_rows: int | None = None, pe_cols: int | None = None, dp_size: int | None = None, w_bits: float | None = None,
    act_buffer_kb: float = BUFFER_KB, weight_buffer_kb: float = BUFFER_KB,
    dram_bits_per_cycle: float = DRAM_BITS_PER_CYCLE, clock_mhz: float = 1000.0,
) -> Metrics:
    """Cycles, latency and energy of one of the paper's configurations on one of its models.

    ``model`` in :data:`MODELS`, ``accel`` in :data:`ACCELS`, ``phase`` in
    ``{"prefill", "decode"}`` ("decode" = one generation step at KV length
    ``cxt``).  Keyword overrides change the paper's configuration (PE array,
    dot-product width, weight bits, buffers, DRAM bandwidth, clock); each is
    checked (type, finite, range: :data:`RANGES`) and a bad one raises
    :class:`BitmodInputError` naming it.  ``Metrics.cycles`` is an int; ``extra``
    holds the energy breakdown.  For any other workload use :class:`BitmodSimulator`.
    """
    _check("model", model, MODELS)
    _check("accel", accel, ACCELS)
    _check("phase", phase, PHASES)
    _check("attention", attention, ATTENTION)
    spec = ACCEL_SPECS[accel]
    H, W = spec.pe_prefill if phase == "prefill" else spec.pe_decode
    H = H if pe_rows is None else _num("pe_rows", pe_rows, *RANGES["pe_rows"], integer=True)
    W = W if pe_cols is None else _num("pe_cols", pe_cols, *RANGES["pe_cols"], integer=True)
    D = spec.dp_size if dp_size is None else _num("dp_size", dp_size, *RANGES["dp_size"], integer=True)
    wb = spec.w_bits(model, phase) if w_bits is None else float(_num("w_bits", w_bits, *RANGES["w_bits"]))
    cxt = _num("cxt", cxt, *RANGES["cxt"], integer=True)
    bw = _num("dram_bits_per_cycle", dram_bits_per_cycle, *RANGES["dram_bits_per_cycle"])
    clk = _num("clock_mhz", clock_mhz, *RANGES["clock_mhz"])
    akb = _num("act_buffer_kb", act_buffer_kb, *RANGES["act_buffer_kb"])
    wkb = _num("weight_buffer_kb", weight_buffer_kb, *RANGES["weight_buffer_kb"])
    _check_buffers(akb, wkb, H, W, D, wb)
    d = _Design(H, W, D, spec.bit_serial, wb, spec.kv_bits if attention == "per_kv_head" else ACT_BITS,
                spec.pe_pj_per_cycle * D / spec.dp_size, spec.pe_um2 * D / spec.dp_size, wkb, akb, bw, clk,
                (H * W) // 64 if spec.bit_serial else 0)
    return _evaluate(model, phase, d, attention, cxt)


# What the model can honestly price: (low, high), both inclusive.  Arrays far beyond the
# paper's 1,024-1,152 PEs, clocks far from its 1 GHz and buffers far from its 512 KB are
# extrapolations of per-PE / per-access constants characterised at those points.
RANGES: dict[str, tuple[float, float]] = {
    "pe_rows": (1, 512), "pe_cols": (1, 512), "tile_rows": (1, 64), "tile_cols": (1, 64), "dp_size": (1, 16),
    "w_bits": (1, 16), "cxt": (1, 1 << 24), "group_size": (1, 1 << 16), "act_buffer_kb": (0, 1 << 16),
    "weight_buffer_kb": (0, 1 << 16), "dram_bits_per_cycle": (1, 8192), "clock_mhz": (1, 3000),
}


def _num(name: str, v: Any, lo: float, hi: float, *, integer: bool = False, exc: type = None) -> Any:
    """``v`` if it is a finite real (an integer where ``integer``) in ``[lo, hi]``; else one-line error."""
    tv = type(v)
    if tv is int and lo <= v <= hi:  # the common case, checked first: designs come from grids of ints
        return v
    if tv is not int and tv is not float and (isinstance(v, (bool, np.bool_))
                                             or not isinstance(v, (int, float, np.integer, np.floating))):
        raise (exc or BitmodInputError)(f"{name}={v!r} must be {'an integer' if integer else 'a real number'} in "
                                        f"[{lo:g}, {hi:g}]")
    if not math.isfinite(v) or (integer and v != int(v)) or not lo <= v <= hi:
        raise (exc or BitmodInputError)(f"{name}={v!r} must be {'an integer' if integer else 'a real number'} in "
                                        f"[{lo:g}, {hi:g}]")
    return int(v) if integer else v


def _check_buffers(act_kb: float, w_kb: float, H: int, W: int, D: int, w_bits: float, exc: type = None) -> None:
    # one PE-array tile: H*D weights and W*D activations
    exc = exc or BitmodInputError
    w_tile = H * D * w_bits / 8 / 1024
    a_tile = W * D * ACT_BITS / 8 / 1024
    if w_kb < w_tile:
        raise exc(f"weight_buffer_kb={w_kb} is smaller than one {H}x{D} weight tile ({w_tile:.3f} kB)")
    if act_kb < a_tile:
        raise exc(f"act_buffer_kb={act_kb} is smaller than one {W}x{D} activation tile ({a_tile:.3f} kB)")


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
SCALE_BITS = 8  # second-level INT8 group scale (paper §III-C, Table V): 8/G bits per weight
DEQUANT_CYCLES = 8  # bit-serial dequantization of one group: one scale bit per cycle (paper Fig. 5)

# Wikitext-2 perplexity with per-group (g128) BitMoD weights vs FP16 (the paper's Table VI), the
# model input of ppl_increase_frac.  INT6/INT8 are the paper's lossless configurations (Table II:
# <= 0.05 PPL), counted as 0.  Tabulated, not computed: other group sizes reuse the g128 value, and
# a model without an entry (any workload but the six paper models) has NaN.
_FP16_PPL = {"opt-1.3b": 14.62, "phi-2": 9.71, "yi-6b": 5.84, "llama-2-7b": 5.47, "llama-2-13b": 4.88,
             "llama-3-8b": 6.13}
_BITMOD_PPL = {
    "fp4-ext": {"opt-1.3b": 14.89, "phi-2": 10.48, "yi-6b": 6.23, "llama-2-7b": 5.72, "llama-2-13b": 5.01,
                "llama-3-8b": 6.73},
    "fp3-ext": {"opt-1.3b": 22.67, "phi-2": 12.91, "yi-6b": 7.66, "llama-2-7b": 6.55, "llama-2-13b": 5.50,
                "llama-3-8b": 8.96},
}


_DESIGN_KEYS = ("tile_rows", "tile_cols", "dp_size", "w_dtype", "group_size", "act_buffer_kb", "weight_buffer_kb",
                "dram_bits_per_cycle", "clock_mhz")
# (name, low, high, integer) of the numeric parameters: the PE array and the group are integers
_NUM_SPECS = tuple((k, *RANGES[k], k in ("tile_rows", "tile_cols", "dp_size", "group_size"))
                   for k in _DESIGN_KEYS if k != "w_dtype")


def _ppl_increase(dtype: str, model: str | None) -> float:
    if model not in _FP16_PPL:
        return math.nan
    if dtype not in _BITMOD_PPL:
        return 0.0
    return _BITMOD_PPL[dtype][model] / _FP16_PPL[model] - 1.0


class BitmodSimulator(Simulator):
    """The BitMoD accelerator (bit-serial mixture-of-datatype PEs) as a design space.

    Parameters: ``tile_rows`` x ``tile_cols`` tiles of 8x8 PEs (rows map output
    channels, columns tokens), PE dot-product width ``dp_size``, weight datatype
    ``w_dtype`` (ext-FP3/FP4 or INT6/INT8, bit-serial), quantization ``group_size``
    (adds 8/G scale bits per weight), ``act_buffer_kb``/``weight_buffer_kb``, DRAM
    bandwidth ``dram_bits_per_cycle`` and ``clock_mhz``.

    Workloads: any workload with GEMM, convolution (im2col) or MoE layers.  A
    decoder LLM (zoo name or Hugging Face config; prefill, decode or generative,
    any batch/seq_len/context_len/gen_tokens) is priced with the HPCA'25 artifact's
    layer table, so ``<model>/prefill``, ``<model>/decode`` (one step at KV length
    256) and ``<model>/generative`` (prefill + 20 decode steps) of the paper's six
    models are its Fig. 7 workloads; everything else as plain GEMMs
    (:mod:`simulators._bitmod_lowering` states both conventions).  A design whose
    ``group_size`` does not divide the reduction dimension of every weight GEMM of
    the workload is infeasible (groups run along the input channels).

    Metrics: cycles (layer = max(compute, DRAM), layers in sequence), latency,
    energy (compute/SRAM/DRAM breakdown), area (the paper's PE table + an assumed
    SRAM density), ``edp_js``, a per-layer ``breakdown`` (cycles, latency_s,
    energy_j, compute_cycles, dram_bytes of each MAC layer, all repetitions), and
    ``ppl_increase_frac``: the paper's measured Wikitext-2 perplexity increase of
    the datatype, *tabulated* from its Table VI (g128) for its six models, NaN for
    any other model.
    """

    name = "bitmod"
    reference = ("BitMoD HPCA'25 Fig. 7 cycle counts, exact (all 30 published numbers); energy within 0.2 % "
                 "of the artifact's Fig. 8 numbers with 3 SRAM constants fitted on them; ppl_increase_frac is "
                 "tabulated from the paper's Table VI (Wikitext-2, g128) for its six models, NaN for others")
    accepts = ("any workload with GEMM, convolution (im2col) or MoE layers: decoder LLMs (zoo or Hugging Face "
               "config; prefill, decode, generative; any batch) with the artifact's attention convention, "
               "anything else as plain GEMMs")

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
        self._tables: dict = {}

    def design_space(self) -> DesignSpace:
        return self._space

    def default_design(self) -> dict:
        """The paper's BitMoD-lossy prefill configuration: 4x4 tiles (32x32 PEs), D=4, FP4-ext g128."""
        return dict(tile_rows=4, tile_cols=4, dp_size=4, w_dtype="fp4-ext", group_size=128, act_buffer_kb=512,
                    weight_buffer_kb=512, dram_bits_per_cycle=256, clock_mhz=1000)

    def workloads(self) -> tuple[str, ...]:
        return tuple(f"{m}/{p}" for m in ("llama-2-7b", *[x for x in MODELS if x != "llama-2-7b"])
                     for p in ("prefill", "decode", "generative"))

    # the artifact's context length and generated tokens: zoo names keep their meaning
    workload_defaults = {"seq_len": CONTEXT_TOKENS, "gen_tokens": GENERATED_TOKENS}

    def check_workload(self, workload) -> None:
        """Any workload with a GEMM, convolution or MoE layer (lowered once and cached)."""
        self._lowered(workload)

    def _lowered(self, w) -> LayerTable:
        t = self._tables.get(w)
        if t is None:
            t = lower(w, self.attention)
            if len(self._tables) >= 64:
                self._tables.clear()
            self._tables[w] = t
        return t

    def check_design(self, design: Mapping[str, Any]) -> dict:
        """Validate a raw design (it need not lie on the grid): every parameter present, numbers
        finite and in the range the model can price (:data:`RANGES`; integers where the grid
        has integers), ``w_dtype`` one of :data:`W_DTYPES`, buffers holding one PE-array tile,
        and a group long enough to hide its 8-cycle bit-serial dequantization
        (``group_size x cycles per weight >= 8 x dp_size``).  Raises
        :class:`~archgym.InvalidDesign` naming the parameter, the value and what is allowed."""
        if not isinstance(design, Mapping) or len(design) != len(_DESIGN_KEYS) \
                or any(k not in design for k in _DESIGN_KEYS):
            return super().check_design(design)  # its message names the missing or unknown key
        d = {}
        for k, lo, hi, integer in _NUM_SPECS:
            v = design[k]
            d[k] = v if type(v) is int and lo <= v <= hi else _num(k, v, lo, hi, integer=integer, exc=InvalidDesign)
        dt = design["w_dtype"]
        if not isinstance(dt, str) or dt not in _DTYPE_BITS:
            raise InvalidDesign(f"w_dtype={dt!r} is not allowed; allowed: {', '.join(W_DTYPES)}")
        bits = _DTYPE_BITS[dt] + SCALE_BITS / d["group_size"]
        _check_buffers(d["act_buffer_kb"], d["weight_buffer_kb"], 8 * d["tile_rows"], 8 * d["tile_cols"],
                       d["dp_size"], bits, exc=InvalidDesign)
        terms = _latency_cycles(bits, True)
        if d["group_size"] * terms < DEQUANT_CYCLES * d["dp_size"]:
            raise InvalidDesign(
                f"group_size={d['group_size']} with dp_size={d['dp_size']} and {dt} ({terms} cycles per "
                f"weight) leaves {d['group_size'] * terms / d['dp_size']:g} cycles per group, fewer than its "
                f"{DEQUANT_CYCLES}-cycle dequantization (not modelled); allowed: group_size >= "
                f"{math.ceil(DEQUANT_CYCLES * d['dp_size'] / terms)}")
        return {"tile_rows": d["tile_rows"], "tile_cols": d["tile_cols"], "dp_size": d["dp_size"], "w_dtype": dt,
                "group_size": d["group_size"], "act_buffer_kb": d["act_buffer_kb"],
                "weight_buffer_kb": d["weight_buffer_kb"], "dram_bits_per_cycle": d["dram_bits_per_cycle"],
                "clock_mhz": d["clock_mhz"]}

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

    def _evaluate(self, design: dict, workload) -> Metrics:
        t = self._lowered(workload)
        bad = t.indivisible(design["group_size"])
        if bad is not None:
            return Metrics.infeasible(
                f"group_size={design['group_size']} does not divide the reduction dimension k={bad[1]} of layer "
                f"{bad[0]!r} (BitMoD groups weights along the input channels)")
        d = self._design(design)
        lat_lin = _latency_cycles(d.w_bits, True)
        lat_att = _latency_cycles(d.att_bits, True) if self.attention == "per_kv_head" else lat_lin
        per = _kern.layers_eval(t.rows, t.group, len(t.names), d.H, d.W, d.D, lat_lin, lat_att, d.w_bits,
                                d.att_bits, ACT_BITS, d.wbuf_kb * 1024.0, d.abuf_kb * 1024.0, d.dram_bits)
        return _metrics(per, d, t.names, ppl_increase_frac=_ppl_increase(design["w_dtype"], t.model))

    def evaluate_batch(self, indices: np.ndarray, workload) -> dict[str, np.ndarray]:
        """Numba-batched evaluation of index vectors ``(n, 9)``: every metric of :meth:`evaluate`
        (NaN where infeasible) plus ``feasible``; no per-layer breakdown."""
        t = self._lowered(self.workload(workload))
        idx = self._space.check_indices(indices)
        tr, tc, dp, dt, gs, ab, wb, bw, clk = (v[idx[:, j]] for j, v in enumerate(self._vals))
        bits = np.array([_DTYPE_BITS[x] for x in W_DTYPES], dtype=np.float64)[idx[:, 3]]
        w_bits = bits + SCALE_BITS / gs
        lat = np.ceil(np.floor(w_bits) / 2).astype(np.int64)
        spec = ACCEL_SPECS["bitmod-lossy"]
        att = float(spec.kv_bits if self.attention == "per_kv_head" else ACT_BITS)
        att_bits = np.full(len(idx), att)
        lat_att = np.full(len(idx), _latency_cycles(att, True)) if self.attention == "per_kv_head" else lat
        H, W, D = (8 * tr).astype(np.int64), (8 * tc).astype(np.int64), dp.astype(np.int64)
        res = _kern.batch_eval(t.rows, H, W, D, lat, lat_att, w_bits, att_bits, float(ACT_BITS), wb * 1024.0,
                               ab * 1024.0, bw.astype(np.float64))
        pe_pj = spec.pe_pj_per_cycle * D / spec.dp_size
        parts = _energy_parts(res.T, _energy_coefs(H, W, D, w_bits, 2, wb, ab, pe_pj, np.ceil, np.sqrt))
        energy = sum(parts) * 1e-12
        cycles = res[:, 1]
        latency = cycles / (clk * 1e6)
        pe_area = H * W * spec.pe_um2 * D / spec.dp_size + tr * tc * ENCODER_UM2_PER_TILE
        ok = np.array([t.indivisible(int(g)) is None for g in self._vals[4]])[idx[:, 4]]
        out = {
            "cycles": cycles, "latency_s": latency, "energy_j": energy, "power_w": energy / latency,
            "area_mm2": (pe_area + (wb + ab) * 8192 * SRAM_UM2_PER_BIT) * 1e-6,
            "onchip_bytes": (wb + ab) * 1024.0, "dram_bytes": (res[:, 3] + res[:, 4] + res[:, 5]) / 8.0,
            "throughput_per_s": 1.0 / latency, "compute_cycles": res[:, 0], "edp_js": energy * latency,
            "onchip_energy_j": (parts[0] + parts[1] + parts[2]) * 1e-12, "compute_energy_j": parts[0] * 1e-12,
            "sram_read_energy_j": parts[1] * 1e-12, "sram_write_energy_j": parts[2] * 1e-12,
            "dram_energy_j": parts[3] * 1e-12, "pe_array_area_mm2": pe_area * 1e-6,
            "pe_count": (H * W).astype(np.float64),
            "ppl_increase_frac": np.array([_ppl_increase(x, t.model) for x in W_DTYPES])[idx[:, 3]],
        }
        if not ok.all():
            out = {k: np.where(ok, v, np.nan) for k, v in out.items()}
        out["feasible"] = ok
        return out
