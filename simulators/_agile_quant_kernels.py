"""Batched Agile-Quant evaluation: per-group tables built by numba, one lookup per design.

The cost model (:mod:`simulators._agile_quant_model`) is separable: once the
global parameters are fixed (token-pruning ratio and start, SIMD packing,
device), every op's time and DRAM traffic depends on one layer group's
(activation bits, weight bits, group size) only, and the weight bytes and the
quantization error are sums over groups.  So for one workload:

* ``time[c, g, o]`` / ``traffic[c, g, o]``: the summed time (before the efficiency
  scale) and DRAM bytes of group ``g``'s ops with option ``o`` under global
  combination ``c``; ``const_time[c]`` / ``const_traffic[c]``: the ops of no group
  (norms, RoPE, softmax, residual adds, gathers, LM head, embedding gather);
* ``nsr[g, o]``, ``wbytes[g, o]`` (all layers), ``ok[p, g, o]`` (no accumulator
  overflow with packing ``p``);
* per token schedule: pruning error, pruned fraction, GEMM MACs.

A design is then ``const + sum over 5 groups`` of table entries.  The
reference is :func:`simulators._agile_quant_model.price` (plain Python, one op
at a time); ``tests/test_agile_quant_batch.py`` compares the two on random designs.

Index layout of a design (the simulator's design space order): for each group
``a_bits, w_bits, group_size`` (15 columns), then ``prune_ratio``,
``prune_start_frac``, ``simd_packing`` (off, on), ``device``.  Option
``o = (a_index * 3 + w_index) * 5 + group_size_index``; combination
``c = ((ratio_index * n_starts + start_index) * 2 + packing) * n_devices + device_index``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from archgym.workloads import ModelConfig

from . import _agile_quant_error as _err
from . import _agile_quant_model as _m

__all__ = ["Tables", "build_tables", "group_tables", "batch_eval", "first_out_of_range", "evaluate_tables", "smmw_factor_nb", "OUT_FIELDS", "N_OPTIONS"]

N_OPTIONS = len(_m.BITS) ** 2 * len(_m.GROUP_SIZES)
OUT_FIELDS = ("latency_s", "dram_bytes", "throughput_per_s", "tokens_per_s", "weight_bytes", "gemm_macs",
              "quant_nsr_ratio", "prune_nsr_ratio", "error_nsr_ratio", "sqnr_db", "pruned_frac",
              "dram_overflow_bytes")
_QUANT_INSTR = _m.EW_INSTR["quantize"]


@numba.njit(cache=True)
def smmw_factor_nb(k, group, ref_group):
    """Closed form of :func:`simulators._agile_quant_model.smmw_factor`: ``op_counts(1, k, 8,
    lanes_per_vector=4)`` executes ``5k + 5d`` instructions for ``8k`` MACs with ``d`` drains,
    plus ``d`` rescale instructions; the ratio of drain interval ``group`` to ``ref_group``."""
    de = min(group, k, 256)
    d = -(-k // de)
    pm = (float(5 * k + 5 * d) + d * 4 / 4) / (8 * k)
    de_r = min(ref_group, k, 256)
    d_r = -(-k // de_r)
    pm_r = (float(5 * k + 5 * d_r) + d_r * 4 / 4) / (8 * k)
    return pm / pm_r


@numba.njit(cache=True)
def _gemm(m, k, n, count, a, w, g, pack, rate16, half_llc, bw, kr):
    """(time, traffic) of one GEMM, as ``_Cost.gemm``.  ``kr``: int8/fp16, int4/int8,
    ref group, int8 rescale constant."""
    if a == 16 or w == 16:
        rate = rate16
    elif pack and a + w <= 8:
        rate = rate16 * (kr[0] * kr[1] / smmw_factor_nb(k, g, int(kr[2])))
    else:
        f = (1.0 + kr[3] / min(g, k)) / (1.0 + kr[3] / min(int(kr[2]), k))
        rate = rate16 * (kr[0] / f)
    ab = a / 8
    wb = w / 8
    w_bytes = k * n * wb
    if w < 16:
        w_bytes += n * math.ceil(k / min(g, k)) * (2 + wb)
    a_bytes = m * k * ab
    c_bytes = m * n * 2.0
    a_traffic = 0.0
    if a_bytes > half_llc:
        n_c = max(1, int(half_llc // (k * wb)))
        a_traffic = a_bytes * math.ceil(n / n_c)
    c_traffic = c_bytes if c_bytes > half_llc else 0.0
    traffic = w_bytes + a_traffic + c_traffic
    return max(m * k * n / rate, traffic / bw) * count, traffic * count


@numba.njit(cache=True)
def _ew(elems, instr, passes, count, lanes16, vec_per_s, half_llc, bw):
    compute = elems / lanes16 * instr / vec_per_s
    traffic = elems * 2.0 * passes if elems * 2.0 > half_llc else 0.0
    return max(compute, traffic / bw) * count, traffic * count


@numba.njit(cache=True)
def group_tables(runs, dims, opt_a, opt_w, opt_g, pack, dev, kr, ew, out_t, out_b):
    """Fill ``out_t[g, o]`` / ``out_b[g, o]`` (time before the efficiency scale, DRAM bytes)
    for one token schedule, packing and device; return the (time, bytes) of the ops of no group.

    ``runs``: rows ``(t_in, t_out, repeats)``; ``dims``: ``(h, head_dim, kv_dim, ffn, heads,
    vocab, llama, seq_len, final_tokens)``; ``dev``: ``(fp16 MAC/s, vector instr/s, FP16 lanes,
    half LLC bytes, DRAM bytes/s)``; ``ew``: rows ``(instr, passes)`` for layernorm, rmsnorm,
    softmax, relu, swiglu, rope, add, quantize, gather.
    """
    h, hd, kv, f, heads, vocab, llama, S, final = (dims[0], dims[1], dims[2], dims[3], dims[4], dims[5],
                                                  dims[6], dims[7], dims[8])
    rate16, vps, lanes, half, bw = dev[0], dev[1], dev[2], dev[3], dev[4]
    norm = 1 if llama else 0
    act = 4 if llama else 3
    n_up = 2 if llama else 1
    for g in range(5):
        for o in range(opt_a.shape[0]):
            a, w, gs = opt_a[o], opt_w[o], opt_g[o]
            tt = 0.0
            bb = 0.0
            for r in range(runs.shape[0]):
                t_in, t_out, rep = runs[r, 0], runs[r, 1], float(runs[r, 2])
                if g == 0:
                    if a < 16:
                        x, y = _ew(t_in * h, ew[7, 0], ew[7, 1], rep, lanes, vps, half, bw)
                        tt += x
                        bb += y
                    x, y = _gemm(t_in, h, h, rep, a, w, gs, pack, rate16, half, bw, kr)
                    tt += x
                    bb += y
                    for _ in range(2):
                        x, y = _gemm(t_in, h, kv, rep, a, w, gs, pack, rate16, half, bw, kr)
                        tt += x
                        bb += y
                elif g == 1:
                    if a < 16:
                        x, y = _ew(t_in * (h + 2 * kv), ew[7, 0], ew[7, 1], rep, lanes, vps, half, bw)
                        tt += x
                        bb += y
                    x, y = _gemm(t_in, hd, t_in, heads * rep, a, w, gs, pack, rate16, half, bw, kr)
                    tt += x
                    bb += y
                    x, y = _gemm(t_in, t_in, hd, heads * rep, a, w, gs, pack, rate16, half, bw, kr)
                    tt += x
                    bb += y
                elif g == 2:
                    if a < 16:
                        x, y = _ew(t_in * h, ew[7, 0], ew[7, 1], rep, lanes, vps, half, bw)
                        tt += x
                        bb += y
                    x, y = _gemm(t_in, h, h, rep, a, w, gs, pack, rate16, half, bw, kr)
                    tt += x
                    bb += y
                elif g == 3:
                    if a < 16:
                        x, y = _ew(t_out * h, ew[7, 0], ew[7, 1], rep, lanes, vps, half, bw)
                        tt += x
                        bb += y
                    for _ in range(n_up):
                        x, y = _gemm(t_out, h, f, rep, a, w, gs, pack, rate16, half, bw, kr)
                        tt += x
                        bb += y
                else:
                    if a < 16:
                        x, y = _ew(t_out * f, ew[7, 0], ew[7, 1], rep, lanes, vps, half, bw)
                        tt += x
                        bb += y
                    x, y = _gemm(t_out, f, h, rep, a, w, gs, pack, rate16, half, bw, kr)
                    tt += x
                    bb += y
            out_t[g, o] = tt
            out_b[g, o] = bb
    ct = 0.0
    cb = 0.0
    for r in range(runs.shape[0]):
        t_in, t_out, rep = runs[r, 0], runs[r, 1], float(runs[r, 2])
        x, y = _ew(t_in * h, ew[norm, 0], ew[norm, 1], rep, lanes, vps, half, bw)
        ct += x
        cb += y
        if llama:
            x, y = _ew(t_in * (h + kv), ew[5, 0], ew[5, 1], rep, lanes, vps, half, bw)
            ct += x
            cb += y
        x, y = _ew(t_in * t_in, ew[2, 0], ew[2, 1], heads * rep, lanes, vps, half, bw)
        ct += x
        cb += y
        x, y = _ew(t_in * h, ew[6, 0], ew[6, 1], rep, lanes, vps, half, bw)
        ct += x
        cb += y
        if t_out < t_in:
            x, y = _ew(t_out * h, ew[8, 0], ew[8, 1], rep, lanes, vps, half, bw)
            ct += x
            cb += y
        x, y = _ew(t_out * h, ew[norm, 0], ew[norm, 1], rep, lanes, vps, half, bw)
        ct += x
        cb += y
        x, y = _ew(t_out * f, ew[act, 0], ew[act, 1], rep, lanes, vps, half, bw)
        ct += x
        cb += y
        x, y = _ew(t_out * h, ew[6, 0], ew[6, 1], rep, lanes, vps, half, bw)
        ct += x
        cb += y
    x, y = _ew(final * h, ew[norm, 0], ew[norm, 1], 1.0, lanes, vps, half, bw)
    ct += x
    cb += y
    x, y = _gemm(1, h, vocab, 1.0, 16, 16, 128, False, rate16, half, bw, kr)
    ct += x
    cb += y
    emb = S * h * 2.0
    ct += emb / bw
    cb += emb
    return ct, cb


@numba.njit(cache=True)
def batch_eval(idx, n_starts, n_dev, time, traffic, const_t, const_b, nsr, wbytes, wconst, ok, sched, devs,
               act_bytes, seq_len, out, reasons):
    """Metrics of every design row of ``idx`` into ``out[:, OUT_FIELDS]`` (NaN latency, traffic
    and rates when infeasible) and ``reasons`` (bit g: group g's accumulation overflows; bit 5:
    the device's DRAM is too small).  ``sched[r, s]``: (prune error, pruned fraction, GEMM MACs);
    ``devs[d]``: (efficiency, DRAM capacity in bytes).  Returns the feasibility of each row."""
    n = idx.shape[0]
    feasible = np.empty(n, dtype=np.bool_)
    nan = np.nan
    for i in range(n):
        ri, si, pi, di = idx[i, 15], idx[i, 16], idx[i, 17], idx[i, 18]
        c = ((ri * n_starts + si) * 2 + pi) * n_dev + di
        t = const_t[c]
        b = const_b[c]
        q = 0.0
        wb = 0.0
        mask = 0
        for g in range(5):
            o = (idx[i, 3 * g] * 3 + idx[i, 3 * g + 1]) * 5 + idx[i, 3 * g + 2]
            t += time[c, g, o]
            b += traffic[c, g, o]
            q += nsr[g, o]
            wb += wbytes[g, o]
            if not ok[pi, g, o]:
                mask |= 1 << g
        w_total = wb + wconst
        over = max(0.0, w_total + act_bytes - devs[di, 1])
        if over > 0:
            mask |= 1 << 5
        quant = q / 5
        prune = sched[ri, si, 0]
        err = quant + prune
        out[i, 4] = w_total
        out[i, 5] = sched[ri, si, 2]
        out[i, 6] = quant
        out[i, 7] = prune
        out[i, 8] = err
        out[i, 9] = -10.0 * math.log10(err)
        out[i, 10] = sched[ri, si, 1]
        out[i, 11] = over
        reasons[i] = mask
        feasible[i] = mask == 0
        if mask == 0:
            lat = t / devs[di, 0]
            out[i, 0] = lat
            out[i, 1] = b
            out[i, 2] = 1.0 / lat
            out[i, 3] = seq_len / lat
        else:
            out[i, 0] = nan
            out[i, 1] = nan
            out[i, 2] = nan
            out[i, 3] = nan
    return feasible


@numba.njit(cache=True)
def first_out_of_range(idx, nvec):
    """Flat position of the first entry of ``idx`` outside ``0..nvec[j]-1`` (-1 if none)."""
    for i in range(idx.shape[0]):
        for j in range(idx.shape[1]):
            if idx[i, j] < 0 or idx[i, j] >= nvec[j]:
                return i * idx.shape[1] + j
    return -1


# ------------------------------------------------------------------ tables ----
@dataclass(frozen=True)
class Tables:
    """Every per-group table of one workload (see the module docstring for the indices)."""

    seq_len: int
    n_starts: int
    n_dev: int
    time: np.ndarray        # (C, 5, 45) seconds before the efficiency scale
    traffic: np.ndarray     # (C, 5, 45) DRAM bytes
    const_t: np.ndarray     # (C,)
    const_b: np.ndarray     # (C,)
    nsr: np.ndarray         # (5, 45)
    wbytes: np.ndarray      # (5, 45), all layers
    wconst: float           # FP16 tensors' bytes
    ok: np.ndarray          # (2, 5, 45) bool
    sched: np.ndarray       # (R, S, 3): prune error, pruned fraction, GEMM MACs
    devs: np.ndarray        # (D, 2): efficiency, DRAM capacity (bytes)
    act_bytes: float        # activation footprint (bytes)


def options() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a_bits, w_bits, group_size) of the 45 options, in option-index order."""
    a, w, g = zip(*[(a, w, g) for a in _m.BITS for w in _m.BITS for g in _m.GROUP_SIZES])
    return np.array(a, np.int64), np.array(w, np.int64), np.array(g, np.int64)


def build_tables(cfg: ModelConfig, seq_len: int, prune_ratios, prune_starts, devices) -> Tables:
    """The tables of ``cfg`` at ``seq_len`` tokens for the given grids of pruning ratio and
    start and the given :class:`~simulators._agile_quant_model.Device` objects."""
    opt_a, opt_w, opt_g = options()
    n_r, n_s, n_d = len(prune_ratios), len(prune_starts), len(devices)
    C = n_r * n_s * 2 * n_d
    time = np.zeros((C, 5, N_OPTIONS))
    traffic = np.zeros((C, 5, N_OPTIONS))
    const_t, const_b = np.zeros(C), np.zeros(C)
    sched = np.zeros((n_r, n_s, 3))
    dims_base = [cfg.hidden, cfg.head_dim, cfg.kv_dim, cfg.ffn, cfg.heads, cfg.vocab, int(cfg.family == "llama"),
                 seq_len]
    kr = np.array([_m.KERNEL["int8_over_fp16"], _m.KERNEL["int4_over_int8"], _m.KERNEL["ref_group"],
                   _m.KERNEL["int8_rescale_per_group"]])
    ew = np.array([_m.EW_INSTR[k] for k in ("layernorm", "rmsnorm", "softmax", "relu", "swiglu", "rope", "add",
                                            "quantize", "gather")], dtype=np.float64)
    devs = np.array([[d.efficiency, d.dram_gb * 1e9] for d in devices])
    devp = [np.array([d.fp16_macs_per_s, d.vec_per_s, float(d.lanes16), d.llc_mb * 1e6 / 2, d.dram_gbps * 1e9])
            for d in devices]
    done: dict[tuple, int] = {}
    for ri, r in enumerate(prune_ratios):
        for si, s in enumerate(prune_starts):
            entering, counts = _m.token_schedule(seq_len, cfg.n_layers, r, s)
            sched[ri, si] = (_m.prune_error(entering, seq_len), 1.0 - sum(entering) / (seq_len * cfg.n_layers),
                             float(_m.gemm_macs(cfg, entering, counts)))
            runs = np.array(_m.layer_runs(entering, counts), dtype=np.int64)
            dims = np.array(dims_base + [counts[-1]], dtype=np.int64)
            key = tuple(counts)
            for p in (0, 1):
                for di in range(n_d):
                    c = ((ri * n_s + si) * 2 + p) * n_d + di
                    prev = done.get(key + (p, di))
                    if prev is not None:           # same schedule (e.g. ratio 0 at every start)
                        time[c], traffic[c] = time[prev], traffic[prev]
                        const_t[c], const_b[c] = const_t[prev], const_b[prev]
                        continue
                    const_t[c], const_b[c] = group_tables(runs, dims, opt_a, opt_w, opt_g, bool(p), devp[di], kr,
                                                          ew, time[c], traffic[c])
                    done[key + (p, di)] = c
    nsr = np.array([[_err.group_nsr(g, int(a), int(w), int(gs)) for a, w, gs in zip(opt_a, opt_w, opt_g)]
                    for g in _m.GROUPS])
    shapes = _m.group_weight_shapes(cfg)
    wbytes = np.zeros((5, N_OPTIONS))
    for gi, g in enumerate(_m.GROUPS):
        for o, (w, gs) in enumerate(zip(opt_w, opt_g)):
            wbytes[gi, o] = sum(_m.matrix_bytes(k, n, int(w), int(gs)) for k, n in shapes.get(g, [])) * cfg.n_layers
    dims_k = _m.reduction_dims(cfg, seq_len)
    ok = np.ones((2, 5, N_OPTIONS), dtype=bool)
    for p in (0, 1):
        for gi, g in enumerate(_m.GROUPS):
            for o, (a, w, gs) in enumerate(zip(opt_a, opt_w, opt_g)):
                ok[p, gi, o] = all(_m.overflow_reason(g, k, int(a), int(w), int(gs), bool(p)) is None
                                   for k in dims_k[g])
    for arr in (time, traffic, const_t, const_b, nsr, wbytes, ok, sched, devs):
        arr.setflags(write=False)
    return Tables(seq_len, n_s, n_d, time, traffic, const_t, const_b, nsr, wbytes, _m.fp16_weight_bytes(cfg), ok,
                  sched, devs, _m.footprint_extra_bytes(cfg, seq_len))


def evaluate_tables(t: Tables, idx: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``({metric: array}, reason_bits)`` of every row of ``idx`` (full design-space indices)."""
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    out = np.empty((idx.shape[0], len(OUT_FIELDS)))
    reasons = np.empty(idx.shape[0], dtype=np.int64)
    feas = batch_eval(idx, t.n_starts, t.n_dev, t.time, t.traffic, t.const_t, t.const_b, t.nsr, t.wbytes,
                      t.wconst, t.ok, t.sched, t.devs, t.act_bytes, float(t.seq_len), out, reasons)
    res = {k: out[:, j] for j, k in enumerate(OUT_FIELDS)}
    res["feasible"] = feas
    return res, reasons
