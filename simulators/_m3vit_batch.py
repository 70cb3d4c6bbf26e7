"""The batched numba kernel of the M3ViT FPGA model: every metric of many designs at once.

Same rules as the slow path in ``simulators/_m3vit_model.py`` (``frame_steps`` +
``_m3vit_kernels.timeline`` + ``evaluate_reference``), which stays the reference:
tests/test_m3vit_batch.py checks that both give the same numbers, metric by metric, on
random designs, and on designs chosen to exercise each path below.  What differs is how
the work is done:

* per design, each weight GEMM shape's chunk size, load cycles and cycles per row are
  computed once, so generating a step needs no division;
* pass 1 writes the frame's steps (gap = cycles of weight-free steps before it, load,
  compute, bytes) into per-thread arrays; pass 2 runs the schedule over them with its
  state in local variables.  The whole design loop is one function: numba passes arrays
  to helper functions with reference counting, which costs more than a step;
* three schedule modes, each exact for the designs it is used on:

  - ``prefetch_depth = 0``: a load starts when the previous step has ended, so nothing
    overlaps and nothing else is held: cycles = sum of gaps, loads and computes (pass 1
    only sums, it writes nothing);
  - no pool pressure (``reorder``/dense with ``n_wbuf >= prefetch_depth + 1``): when a
    load starts at most ``p + 1`` chunks are live (chunk j may load once chunk j - p
    started computing, so every chunk before j - p has ended), each at most one buffer,
    so the pool never binds and the loop needs no FIFO.  The reordered experts of a MoE
    layer are not written by pass 1: pass 2 walks them and fast-forwards the middle of
    the run (below);
  - otherwise (the ``cache`` step holds the whole pool, ``naive`` loads all experts, or
    fewer buffers than chunks in flight) the general rule: the held chunks sit in a FIFO
    because chunks are released in the order they computed (release = compute end, and
    compute is in order), so "the earliest time the pool has room" is a pop from the
    front.  Rings of :data:`RING` entries serve ``prefetch_depth <= RING - 2``.

Fast-forward of an expert run (no pool pressure, p >= 1).  Write ``cs_j``/``e_j`` for
step j's compute start/end, ``df`` for the time the DRAM channel is free, ``L``/``C`` for
load/compute cycles.  Always ``df_j <= cs_j``.  If ``df_{u-1} <= cs_{u-p}`` and every
step j >= u of the run has ``L_j <= C_{j-p}`` (guaranteed by ``max L <= min C`` over the
run, the minimum taken at the layer's smallest active queue), then by induction each
such step loads at ``t_j = cs_{j-p}``, its load ends by ``e_{j-p} <= e_{j-1}``, so it
starts at ``e_{j-1}`` without a stall: the skipped steps add exactly the sum of their
compute cycles, ``cs`` of the last ``p`` skipped steps follows from their compute cycles
backwards from the new end, and ``df = cs_{J-p} + L_J`` for the last skipped step J.
The first ``ceil(p / steps per expert)`` experts are walked (so every ``C_{j-p}`` involved
belongs to the run), the rest of the run is skipped when it has at least ``p + 1`` steps
(so the state is rebuilt from skipped steps only).  The same argument skips runs of block
steps without gaps (``skip_to``).  In FIFO mode the pool must also hold ``p + 1`` of the
run's chunks (``(p + 1) * max bytes <= pool``), and the FIFO is rebuilt from the last ``p``
skipped chunks (every earlier chunk ends before the next load can start).  When the pool
holds only ``f <= p`` of a run's equal-size chunks, chunk j loads once chunk j - f has
ended, which is the same argument with an effective prefetch of ``f - 1``.  When no two
expert chunks fit the pool together, every chunk after the first loads when the previous
one has ended, so each adds ``L + C``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["batch_eval", "budget_reasons", "N_OUT", "RING"]

RING = 64
_MASK = RING - 1
N_OUT = 23   # output rows, in the order of simulators.m3vit._BATCH_KEYS
# columns of a weight GEMM shape's constants (per design)
_COLS, _Q, _REM, _KF, _SF, _LF, _AF, _GF, _SR, _LR, _AR, _GR = range(12)


@numba.njit(cache=True, inline="always")
def _cdiv(a, b):
    return -(-a // b)


@numba.njit(cache=True, inline="always")
def _chunk_cols(k, n, wk, po):
    """Columns per chunk (as ``_m3vit_model.chunk_cols``); 0 = not even one tile fits."""
    maxc = wk * 1024 // (k * 2)
    if n <= maxc:
        return n
    return (maxc // po) * po


@numba.njit(cache=True, inline="always")
def _comp(m, a, g, kf, fill):
    """Compute cycles of one chunk for ``m`` rows: ``m * a`` or, lanes grouped, ``ceil(m / g) * kf``."""
    return (m * a if g == 0 else _cdiv(m, g) * kf) + fill


@numba.njit(cache=True, inline="always")
def _expert_c(n_e, pos, q1, n1, q2, kf1, af1, gf1, ar1, gr1, kf2, af2, gf2, ar2, gr2, fill):
    """Compute cycles of step ``pos`` of one expert with ``n_e`` tokens (FC1 chunks, then FC2's)."""
    if pos < q1:
        return _comp(n_e, af1, gf1, kf1, fill)
    if pos < n1:
        return _comp(n_e, ar1, gr1, kf1, fill)
    if pos < n1 + q2:
        return _comp(n_e, af2, gf2, kf2, fill)
    return _comp(n_e, ar2, gr2, kf2, fill)


@numba.njit(cache=True, inline="always")
def _expert_s(pos, q1, n1, q2, sf1, sr1, sf2, sr2):
    """Bytes of step ``pos`` of one expert."""
    if pos < n1:
        return sf1 if pos < q1 else sr1
    return sf2 if pos < n1 + q2 else sr2


@numba.njit(cache=True, inline="always")
def _shape(s, dm, h, nexp):
    """(K, N) of weight GEMM shape ``s``: 0 QKV ``d x 3d``, 1 ``d x d`` (proj and the MLP's chunks),
    2 the gate ``d x N``, 3 an expert's FC1 ``d x h``, 4 its FC2 ``h x d``."""
    if s == 0:
        return dm, 3 * dm
    if s == 1:
        return dm, dm
    if s == 2:
        return dm, nexp
    if s == 3:
        return dm, h
    return h, dm


@numba.njit(cache=True, inline="always")
def _n_shapes(sched):
    """Weight GEMM shapes (of :func:`_shape`) a schedule runs: dense 2, ``cache``/``naive`` 3, ``reorder`` 5."""
    return 2 if sched == 3 else (5 if sched == 0 else 3)


@numba.njit(cache=True, inline="always")
def _resources(pi, po, nb, wk, slots, sched, nexp, topk, dm, h, tcap):
    """A design's resources, without running the model: (every weight tile fits one buffer, DSPs,
    weight / bias / activation / routing buffer bytes, URAM, BRAM36, LUTRAM bytes).  The buffer
    inventory is ``_m3vit_model.memory_inventory``'s, mapped onto URAM, then BRAM36, then LUTRAM
    (``_m3vit_model.resources``); the byte counts mean nothing when a tile does not fit."""
    dsp = pi * po + po + 32
    n_shapes = _n_shapes(sched)
    ok = True
    widest = 0
    for s in range(n_shapes):
        k, n = _shape(s, dm, h, nexp)
        c = _chunk_cols(k, n, wk, po)
        if c == 0:
            ok = False
        elif s < 2 and c > widest:
            widest = c
    ew = 2 * dm * h * 2
    eb = (h + dm) * 2
    weights = nb * wk * 1024
    biases = nb * widest * 2
    if sched == 1 or sched == 2:
        held_n = slots if sched == 1 else nexp
        if held_n * ew > weights:
            weights = held_n * ew
        if held_n * eb > biases:
            biases = held_n * eb
    acts = 3 * tcap * dm * 2
    if sched == 0:
        routing = nexp * (tcap * 4 + 2)
    elif sched == 3:
        routing = 0
    else:
        routing = topk * 3
    bits = (weights + biases + acts + routing) * 8
    uram = min(96, _cdiv(bits, 288 * 1024))
    rest = max(0, bits - uram * 288 * 1024)
    bram = min(312, _cdiv(rest, 36 * 1024))
    lut = _cdiv(max(0, rest - bram * 36 * 1024), 8)
    return ok, dsp, weights, biases, acts, routing, uram, bram, lut


@numba.njit(cache=True, inline="always")
def _over_budget(dsp, lut, cst):
    """Reason code of a design whose tiles fit: 0 within budget, 3 over the DSPs, 4 over the
    memory, 5 both (``cst[0]`` device DSPs, ``cst[11]`` LUTRAM budget bytes)."""
    over_dsp = dsp > cst[0]
    over_mem = float(lut) > cst[11]
    return 5 if over_dsp and over_mem else (3 if over_dsp else (4 if over_mem else 0))


@numba.njit(cache=True)
def budget_reasons(pi_a, po_a, nb_a, wk_a, slots_a, scode_a, nexp_a, topk_a, geom, cst, reason):
    """The reason codes of ``batch_eval`` for the resource budgets alone, without running the model:
    2 a weight tile does not fit one buffer, 3/4/5 over the DSPs / memory / both, 0 within them
    (``top_k > n_experts`` is not checked here).  Arguments as ``batch_eval``'s; the same
    ``_resources`` and ``_over_budget`` decide both."""
    tcap = geom[6]
    for i in range(pi_a.shape[0]):
        ok, dsp, w, b, a, r, uram, bram, lut = _resources(pi_a[i], po_a[i], nb_a[i], wk_a[i], slots_a[i], scode_a[i],
                                                          nexp_a[i], topk_a[i], geom[1], geom[4], tcap)
        reason[i] = _over_budget(dsp, lut, cst) if ok else 2


@numba.njit(cache=True)
def _eval_range(lo, hi, pi_a, po_a, nb_a, wk_a, pf_a, slots_a, scode_a, bw_a, clk_a, nexp_a, topk_a, tab_a, act,
                nact, nmin, pre, miss, geom, cst, power_fixed, out, reason):
    """Every metric of designs ``lo .. hi-1`` into the columns of ``out`` (``[N_OUT, n]``, rows in the
    order of ``simulators.m3vit._BATCH_KEYS``) and each design's reason class into ``reason``
    (codes of ``simulators._m3vit_model.REASON_CLASSES``).

    Per design (int64 arrays unless noted): ``pi_a``/``po_a`` MAC array, ``nb_a``/``wk_a``
    weight buffers and KiB each, ``pf_a`` prefetch depth, ``slots_a`` cache slots, ``scode_a``
    schedule (0 reorder, 1 cache, 2 naive, 3 dense), ``bw_a`` GB/s and ``clk_a`` MHz
    (float64), ``nexp_a``/``topk_a``, ``tab_a`` the routing table row of its
    (n_experts, top_k).  Routing tables: ``act`` int64 ``[rows, n_moe, n_max]`` tokens of
    each active expert in expert order, ``nact``/``nmin`` ``[rows, n_moe]`` how many are
    active and the smallest queue, ``pre`` ``[rows, n_moe, n_max + 1]`` prefix sums of
    ``act``; ``miss`` int64 ``[n, n_moe]`` LRU misses per MoE layer
    (cache schedule).  ``geom``: n_layers, hidden, heads, ffn, expert_hidden, tokens,
    token_capacity.  ``cst``: device DSPs, DRAM latency (s), fixed power (W), static W,
    DSP/BRAM36/URAM uW per MHz, LUTRAM uW per MHz per KiB, pJ per MAC, pJ per DRAM byte,
    BRAM+URAM bytes, LUTRAM budget bytes.  The implementation constants of
    ``_m3vit_model.MODEL`` (16-bit weights, biases and activations, 32 misc DSPs, ...) are
    written in; ``simulators.m3vit`` checks they agree.
    """
    L, dm, heads, ffn, h, T, tcap = geom[0], geom[1], geom[2], geom[3], geom[4], geom[5], geom[6]
    hd = dm // heads
    r_mlp = ffn // dm
    dsp_dev = cst[0]
    fe = np.zeros(RING, dtype=np.int64)     # FIFO of held chunks: release time
    fs = np.zeros(RING, dtype=np.int64)     # ... and bytes
    cs = np.zeros(RING, dtype=np.int64)     # compute start of each chunk (ring)
    shp = np.zeros((5, 12), dtype=np.int64)  # per weight-GEMM shape constants
    shk = np.zeros(5, dtype=np.int64)
    shn = np.zeros(5, dtype=np.int64)
    tpl = np.zeros((2, 4, 256), dtype=np.int64)   # block templates (grown when needed)
    pref = np.zeros((2, 257), dtype=np.int64)      # prefix sums of their compute cycles
    skip_to = np.zeros((2, 256), dtype=np.int64)   # fast-forward targets
    tlen = np.zeros(2, dtype=np.int64)
    block_macs = np.zeros(2, dtype=np.int64)
    block_dram = np.zeros(2, dtype=np.int64)
    for i in range(lo, hi):
        pi, po, nb, wk, p = pi_a[i], po_a[i], nb_a[i], wk_a[i], pf_a[i]
        sched, bw, clk, nexp, topk = scode_a[i], bw_a[i], clk_a[i], nexp_a[i], topk_a[i]
        row = tab_a[i]
        block_macs[0] = block_macs[1] = 0
        block_dram[0] = block_dram[1] = 0
        for r in range(N_OUT):
            out[r, i] = np.nan
        if topk > nexp:                             # the space's constraint (also for -dense)
            reason[i] = 1
            continue
        ok, dsp, weights, biases, acts, routing, uram, bram, lut = _resources(pi, po, nb, wk, slots_a[i], sched,
                                                                              nexp, topk, dm, h, tcap)
        if not ok:                                  # a needed weight tile does not fit one buffer
            out[13, i] = float(dsp)
            out[21, i] = dsp / dsp_dev
            reason[i] = 2
            continue
        onchip_i = weights + biases + acts + routing
        ew = 2 * dm * h * 2                         # bytes of one whole expert's weights and biases
        eb = (h + dm) * 2
        for s in range(5):
            shk[s], shn[s] = _shape(s, dm, h, nexp)
        n_shapes = _n_shapes(sched)
        for s in range(n_shapes):
            shp[s, _COLS] = _chunk_cols(shk[s], shn[s], wk, po)
        # --- per-design step constants ---------------------------------------------------------
        fill = 4
        x = pi - 1
        while x > 0:            # + ceil(log2(pe_in))
            fill += 1
            x >>= 1
        bpc = bw * 1e3 / clk
        lat = math.ceil(cst[1] * clk * 1e6)
        cap = weights
        for s in range(n_shapes):
            k, cols = shk[s], shp[s, _COLS]
            q = shn[s] // cols
            rem = shn[s] - q * cols
            kf = _cdiv(k, pi)
            shp[s, _Q] = q
            shp[s, _REM] = rem
            shp[s, _KF] = kf
            shp[s, _SF] = k * cols * 2
            shp[s, _LF] = lat + math.ceil((k * cols * 2 + cols * 2) / bpc)
            shp[s, _AF] = _cdiv(cols, po) * kf if cols >= po else 0
            shp[s, _GF] = 0 if cols >= po else po // cols
            shp[s, _SR] = k * rem * 2
            shp[s, _LR] = lat + math.ceil((k * rem * 2 + rem * 2) / bpc) if rem > 0 else 0
            shp[s, _AR] = _cdiv(rem, po) * kf if rem >= po else 0
            shp[s, _GR] = 0 if (rem >= po or rem == 0) else po // rem
        att = heads * ((T * _cdiv(T, po) * _cdiv(hd, pi)) if T >= po else _cdiv(T, po // T) * _cdiv(hd, pi)) \
            + fill
        att += heads * ((T * _cdiv(hd, po) * _cdiv(T, pi)) if hd >= po else _cdiv(T, po // hd) * _cdiv(T, pi)) \
            + fill
        att_macs = 2 * heads * T * T * hd
        kfd = _cdiv(dm, pi)
        kfh = _cdiv(h, pi)
        per_tok = (_cdiv(h, po) * kfd if h >= po else kfd) + (_cdiv(dm, po) * kfh if dm >= po else kfh)
        # --- the expert steps (reorder): FC1's q1 full chunks and remainder, then FC2's --------
        q1 = shp[3, _Q]
        n1 = q1 + (1 if shp[3, _REM] > 0 else 0)
        q2 = shp[4, _Q]
        spe = n1 + q2 + (1 if shp[4, _REM] > 0 else 0)
        kf1, af1, gf1, ar1, gr1 = shp[3, _KF], shp[3, _AF], shp[3, _GF], shp[3, _AR], shp[3, _GR]
        kf2, af2, gf2, ar2, gr2 = shp[4, _KF], shp[4, _AF], shp[4, _GF], shp[4, _AR], shp[4, _GR]
        l_max = 0
        l_exp = 0           # load cycles of all of one expert's steps
        for pos in range(spe):
            lp = (shp[3, _LF] if pos < q1 else shp[3, _LR]) if pos < n1 else \
                (shp[4, _LF] if pos < n1 + q2 else shp[4, _LR])
            l_exp += lp
            if lp > l_max:
                l_max = lp
        l_last = shp[4, _LR] if shp[4, _REM] > 0 else shp[4, _LF]
        s_max = max(shp[3, _SF], shp[3, _SR], shp[4, _SF], shp[4, _SR])
        s_min = min(shp[3, _SF], shp[4, _SF])
        if shp[3, _REM] > 0:
            s_min = min(s_min, shp[3, _SR])
        if shp[4, _REM] > 0:
            s_min = min(s_min, shp[4, _SR])
        # an expert's compute cycles are linear in its tokens (n * alpha + spe * fill) unless a
        # chunk has fewer columns than lanes (grouped lanes: ceil(n / g) * kf)
        linear = gf1 == 0 and gf2 == 0 and (gr1 == 0 or n1 == q1) and (gr2 == 0 or spe == n1 + q2)
        alpha = q1 * af1 + (n1 - q1) * ar1 + q2 * af2 + (spe - n1 - q2) * ar2
        # --- templates: the steps of a dense block (0) and of a MoE block before its experts (1) -
        # fields: 0 gap (weight-free cycles before the step: attention), 1 load, 2 compute, 3 bytes
        n_moe = (L // 2) if sched != 3 else 0
        need = 2
        for sh in range(n_shapes):
            need += (shp[sh, _Q] + 1) * (2 + 2 * r_mlp)
        if need > tpl.shape[2]:
            tpl = np.zeros((2, 4, need), dtype=np.int64)
            pref = np.zeros((2, need + 1), dtype=np.int64)
            skip_to = np.zeros((2, need), dtype=np.int64)
        n_dense = L - n_moe
        comp_sum = L * att          # the attention of every block, then the weight steps
        load_sum = 0
        mat = p > 0                 # prefetch 0 needs only the sums (see the schedule below)
        for ty in range(2 if n_moe > 0 else 1):
            n_ops = 3 + 2 * r_mlp if ty == 0 else (4 if sched == 0 else 5)
            reps = n_dense if ty == 0 else n_moe
            nt = 0
            gap = 0
            for o in range(n_ops):
                if o == 1:
                    gap = att
                    continue
                if ty == 1 and o == 4:              # naive / cache: one step for the experts
                    if sched == 2:
                        ld = lat + math.ceil(nexp * (ew + eb) / bpc)
                        sz = nexp * ew
                    else:
                        ld = 0                      # the cache step holds the whole pool
                        sz = cap
                    cp = topk * T * per_tok + fill  # + the layer's miss stalls (below)
                    comp_sum += reps * cp
                    load_sum += reps * ld
                    if mat:
                        tpl[ty, 0, nt] = gap
                        tpl[ty, 1, nt] = ld
                        tpl[ty, 2, nt] = cp
                        tpl[ty, 3, nt] = sz
                    gap = 0
                    nt += 1
                    continue
                sh = 0 if o == 0 else (2 if ty == 1 and o == 3 else 1)
                q = shp[sh, _Q]
                ld = shp[sh, _LF]
                cp = _comp(T, shp[sh, _AF], shp[sh, _GF], shp[sh, _KF], fill)
                sz = shp[sh, _SF]
                comp_sum += reps * q * cp
                load_sum += reps * q * ld
                if mat:
                    for c in range(q):
                        tpl[ty, 0, nt + c] = 0
                        tpl[ty, 1, nt + c] = ld
                        tpl[ty, 2, nt + c] = cp
                        tpl[ty, 3, nt + c] = sz
                    tpl[ty, 0, nt] = gap
                nt += q
                gap = 0
                if shp[sh, _REM] > 0:
                    cp = _comp(T, shp[sh, _AR], shp[sh, _GR], shp[sh, _KF], fill)
                    comp_sum += reps * cp
                    load_sum += reps * shp[sh, _LR]
                    if mat:
                        tpl[ty, 0, nt] = 0
                        tpl[ty, 1, nt] = shp[sh, _LR]
                        tpl[ty, 2, nt] = cp
                        tpl[ty, 3, nt] = shp[sh, _SR]
                    nt += 1
                block_macs[ty] += T * shk[sh] * shn[sh]
                block_dram[ty] += 2 * shn[sh] * (shk[sh] + 1)
            tlen[ty] = nt
            # fast-forward targets (module docstring): in a segment [a, b) of steps without gaps,
            # after p warm-up steps the rest runs without stalls if max L <= min C and the pool has
            # room for p + 1 chunks; skip_to[ty, a + p] = b then
            if not mat:
                continue
            pref[ty, 0] = 0
            for jj in range(nt):
                pref[ty, jj + 1] = pref[ty, jj] + tpl[ty, 2, jj]
                skip_to[ty, jj] = 0
            a = 0
            while a < nt:
                e = a + 1
                while e < nt and tpl[ty, 0, e] == 0:
                    e += 1
                if e - a >= 2 * p + 1:
                    l_hi = 0
                    c_lo = tpl[ty, 2, a]
                    s_hi = 0
                    for jj in range(a, e):
                        if jj >= a + p and tpl[ty, 1, jj] > l_hi:
                            l_hi = tpl[ty, 1, jj]
                        if tpl[ty, 2, jj] < c_lo:
                            c_lo = tpl[ty, 2, jj]
                        if tpl[ty, 3, jj] > s_hi:
                            s_hi = tpl[ty, 3, jj]
                    if l_hi <= c_lo and (nb >= p + 1 and (sched == 0 or sched == 3) or (p + 1) * s_hi <= cap):
                        skip_to[ty, a + p] = e
                a = e
        macs = n_dense * (block_macs[0] + att_macs)
        dram = n_dense * block_dram[0]
        loads = 0
        misses = 0
        miss_stall = 0
        penalty = lat + math.ceil((ew + eb) / bpc) + fill
        if n_moe > 0:
            macs += n_moe * (block_macs[1] + att_macs + topk * T * 2 * dm * h)
            dram += n_moe * block_dram[1]
            for lyr in range(n_moe):
                if sched == 0:
                    a_n = nact[row, lyr]
                    if linear:
                        comp_sum += alpha * pre[row, lyr, a_n] + a_n * spe * fill
                    else:
                        for x in range(a_n):
                            for pos in range(spe):
                                comp_sum += _expert_c(act[row, lyr, x], pos, q1, n1, q2, kf1, af1, gf1, ar1, gr1,
                                                      kf2, af2, gf2, ar2, gr2, fill)
                    load_sum += a_n * l_exp
                    loads += a_n
                    dram += a_n * (2 * h * (dm + 1) + 2 * dm * (h + 1))
                elif sched == 2:
                    loads += nexp
                    dram += nexp * (ew + eb)
                else:
                    ms = miss[i, lyr]
                    comp_sum += ms * penalty
                    dram += ms * (ew + eb)
                    misses += ms
                    loads += ms
                    miss_stall += ms * penalty
        # --- the schedule (the rules of _m3vit_kernels.timeline) ---------------------------------
        if p == 0:
            # a load starts when the previous step has ended (its DRAM transfer too): nothing
            # overlaps and nothing else is held, so the frame is the sum of all its parts
            cycles = comp_sum + load_sum
        else:
            # fifo=False: at most p + 1 chunks of <= one buffer each are live when a load starts,
            # so a pool of n_wbuf >= p + 1 buffers never binds (reorder / dense only)
            fifo = not (nb >= p + 1 and (sched == 0 or sched == 3))
            prev_end = 0
            df = 0
            j = 0               # chunk index (cs ring)
            head = 0
            tail = 0
            held = 0
            lyr = 0
            for b in range(L):
                ty = 1 if (n_moe > 0 and (b & 1) == 1) else 0
                if ty == 1 and sched == 1:
                    tpl[1, 2, tlen[1] - 1] = topk * T * per_tok + fill + miss[i, lyr] * penalty
                jj = 0
                while jj < tlen[ty]:
                    e = skip_to[ty, jj]
                    if e > 0 and df <= cs[(j - p) & _MASK]:    # steps jj .. e-1 without stalls
                        prev_end += pref[ty, e] - pref[ty, jj]
                        last = j + (e - jj) - 1
                        acc = prev_end
                        if fifo:
                            head = tail
                            held = 0
                        for back in range(p + 1):
                            end_b = acc
                            acc -= tpl[ty, 2, e - 1 - back]
                            if back < p:
                                cs[(last - back) & _MASK] = acc
                                if fifo:
                                    head -= 1
                                    fe[head & _MASK] = end_b
                                    fs[head & _MASK] = tpl[ty, 3, e - 1 - back]
                                    held += fs[head & _MASK]
                            else:
                                df = acc + tpl[ty, 1, e - 1]
                        j = last + 1
                        jj = e
                        continue
                    prev_end += tpl[ty, 0, jj]
                    size = tpl[ty, 3, jj]
                    t = cs[(j - p) & _MASK] if j >= p else 0
                    if df > t:
                        t = df
                    if fifo:
                        while head < tail and fe[head & _MASK] <= t:
                            held -= fs[head & _MASK]
                            head += 1
                        while held + size > cap and head < tail:
                            t = fe[head & _MASK]
                            while head < tail and fe[head & _MASK] <= t:
                                held -= fs[head & _MASK]
                                head += 1
                    df = t + tpl[ty, 1, jj]
                    start = prev_end if prev_end > df else df
                    cs[j & _MASK] = start
                    prev_end = start + tpl[ty, 2, jj]
                    if fifo:
                        fe[tail & _MASK] = prev_end
                        fs[tail & _MASK] = size
                        tail += 1
                        held += size
                    j += 1
                    jj += 1
                if ty == 1 and sched == 0:          # the reordered experts of this layer
                    a_n = nact[row, lyr]
                    x0 = _cdiv(p, spe)                  # experts walked before a fast-forward
                    # effective prefetch of the run: p, or, when the pool holds only f of its (equal) chunks,
                    # f - 1 (chunk j then loads once chunk j - f + 1 has started, i.e. j - f has ended)
                    p_eff = p
                    if fifo and (p + 1) * s_max > cap:
                        p_eff = min(p, cap // s_max - 1) if s_min == s_max else 0
                    ff_ok = p_eff >= 1
                    if ff_ok:                           # max L <= min C over the run's steps
                        c_min = _expert_c(nmin[row, lyr], 0, q1, n1, q2, kf1, af1, gf1, ar1, gr1, kf2, af2, gf2,
                                          ar2, gr2, fill)
                        for pos in range(1, spe):
                            c_min = min(c_min, _expert_c(nmin[row, lyr], pos, q1, n1, q2, kf1, af1, gf1, ar1, gr1,
                                                         kf2, af2, gf2, ar2, gr2, fill))
                        ff_ok = l_max <= c_min
                    x = 0
                    while x < a_n:
                        if x == 1 and fifo and 2 * s_min > cap and a_n >= 3:
                            # no two expert chunks fit the pool together: from here every chunk
                            # loads when the previous one has ended, so each step adds L + C
                            if linear:
                                prev_end += alpha * (pre[row, lyr, a_n] - pre[row, lyr, 1]) \
                                    + (a_n - 1) * (spe * fill + l_exp)
                            else:
                                for y in range(1, a_n):
                                    prev_end += l_exp
                                    for pos in range(spe):
                                        prev_end += _expert_c(act[row, lyr, y], pos, q1, n1, q2, kf1, af1, gf1,
                                                              ar1, gr1, kf2, af2, gf2, ar2, gr2, fill)
                            last = j + (a_n - 1) * spe - 1
                            acc = prev_end          # end of step last - back
                            for back in range(p):
                                n_e = act[row, lyr, a_n - 1] if back < spe else act[row, lyr, a_n - 2]
                                pos = spe - 1 - back if back < spe else 2 * spe - 1 - back
                                acc -= _expert_c(n_e, pos, q1, n1, q2, kf1, af1, gf1, ar1, gr1, kf2, af2, gf2,
                                                 ar2, gr2, fill)
                                cs[(last - back) & _MASK] = acc
                                if back == 0:
                                    df = acc
                                acc -= _expert_s(pos, q1, n1, q2, shp[3, _LF], shp[3, _LR], shp[4, _LF],
                                                 shp[4, _LR])
                            head = tail - 1     # only the last chunk is still held
                            fe[head & _MASK] = prev_end
                            fs[head & _MASK] = _expert_s(spe - 1, q1, n1, q2, shp[3, _SF], shp[3, _SR],
                                                         shp[4, _SF], shp[4, _SR])
                            held = fs[head & _MASK]
                            j = last + 1
                            x = a_n
                            continue
                        if ff_ok and x >= x0 and (a_n - x) * spe >= p + 1 and df <= cs[(j - p_eff) & _MASK]:
                            if linear:
                                skip_c = alpha * (pre[row, lyr, a_n] - pre[row, lyr, x]) \
                                    + (a_n - x) * spe * fill
                            else:
                                skip_c = 0
                                for y in range(x, a_n):
                                    for pos in range(spe):
                                        skip_c += _expert_c(act[row, lyr, y], pos, q1, n1, q2, kf1, af1, gf1,
                                                            ar1, gr1, kf2, af2, gf2, ar2, gr2, fill)
                            prev_end += skip_c
                            last = j + (a_n - x) * spe - 1      # the last skipped step
                            acc = prev_end
                            if fifo:            # the pool then holds the last p chunks
                                head = tail
                                held = 0
                            for back in range(p + 1):
                                n_e = act[row, lyr, a_n - 1 - back // spe]
                                pos = spe - 1 - back % spe
                                end_b = acc
                                acc -= _expert_c(n_e, pos, q1, n1, q2, kf1, af1, gf1, ar1, gr1, kf2, af2,
                                                 gf2, ar2, gr2, fill)
                                if back < p:
                                    cs[(last - back) & _MASK] = acc
                                    if fifo:            # pushed newest first: fill the FIFO backwards
                                        head -= 1
                                        fe[head & _MASK] = end_b
                                        fs[head & _MASK] = _expert_s(pos, q1, n1, q2, shp[3, _SF],
                                                                     shp[3, _SR], shp[4, _SF], shp[4, _SR])
                                        held += fs[head & _MASK]
                                if back == p_eff:
                                    df = acc + l_last   # the last step loaded at cs of step last - p_eff
                            j = last + 1
                            x = a_n
                            continue
                        n_e = act[row, lyr, x]
                        for pos in range(spe):
                            if pos < n1:
                                ld = shp[3, _LF] if pos < q1 else shp[3, _LR]
                                size = shp[3, _SF] if pos < q1 else shp[3, _SR]
                            else:
                                ld = shp[4, _LF] if pos < n1 + q2 else shp[4, _LR]
                                size = shp[4, _SF] if pos < n1 + q2 else shp[4, _SR]
                            t = cs[(j - p) & _MASK] if j >= p else 0
                            if df > t:
                                t = df
                            if fifo:
                                while head < tail and fe[head & _MASK] <= t:
                                    held -= fs[head & _MASK]
                                    head += 1
                                while held + size > cap and head < tail:
                                    t = fe[head & _MASK]
                                    while head < tail and fe[head & _MASK] <= t:
                                        held -= fs[head & _MASK]
                                        head += 1
                            df = t + ld
                            start = prev_end if prev_end > df else df
                            cs[j & _MASK] = start
                            prev_end = start + _expert_c(n_e, pos, q1, n1, q2, kf1, af1, gf1, ar1, gr1, kf2, af2,
                                                         gf2, ar2, gr2, fill)
                            if fifo:
                                fe[tail & _MASK] = prev_end
                                fs[tail & _MASK] = size
                                tail += 1
                                held += size
                            j += 1
                        x += 1
                if ty == 1:
                    lyr += 1
            cycles = prev_end
        # --- metrics ---------------------------------------------------------------------------
        latency = cycles / (clk * 1e6)
        dram_total = float(dram) + float(2 * T * dm * 2)
        fmacs = float(macs)
        if power_fixed:
            energy = cst[2] * latency
        else:
            base_w = (cst[3] + float(dsp) * cst[4] * clk * 1e-6 + float(bram) * cst[5] * clk * 1e-6
                      + float(uram) * cst[6] * clk * 1e-6 + float(lut) / 1024 * cst[7] * clk * 1e-6)
            energy = base_w * latency + 1e-12 * (cst[8] * fmacs + cst[9] * dram_total)
        onchip = float(onchip_i)
        out[0, i] = float(cycles)
        out[1, i] = latency
        out[2, i] = energy
        out[3, i] = energy / latency
        out[4, i] = onchip
        out[5, i] = dram_total
        out[6, i] = 1.0 / latency
        out[7, i] = fmacs / float(pi * po * cycles)
        out[8, i] = float(misses)
        out[9, i] = float(loads)
        out[10, i] = float(cycles - comp_sum + miss_stall)
        out[11, i] = float(comp_sum - miss_stall)
        out[12, i] = fmacs
        out[13, i] = float(dsp)
        out[14, i] = float(bram)
        out[15, i] = float(uram)
        out[16, i] = float(lut)
        out[17, i] = float(weights)
        out[18, i] = float(biases)
        out[19, i] = float(acts)
        out[20, i] = float(routing)
        out[21, i] = dsp / dsp_dev
        out[22, i] = onchip / cst[10]
        reason[i] = _over_budget(dsp, lut, cst)


@numba.njit(cache=True, parallel=True)
def batch_eval(pi_a, po_a, nb_a, wk_a, pf_a, slots_a, scode_a, bw_a, clk_a, nexp_a, topk_a, tab_a, act, nact, nmin,
               pre, miss, geom, cst, power_fixed, out, reason):
    """Every metric of ``n`` designs: :func:`_eval_range` over blocks of 256 designs in parallel
    (the same arguments; one function per block keeps the parallel wrapper small to compile)."""
    n = pi_a.shape[0]
    n_blocks = (n + 255) // 256
    for blk in numba.prange(n_blocks):
        _eval_range(blk * 256, min(n, blk * 256 + 256), pi_a, po_a, nb_a, wk_a, pf_a, slots_a, scode_a, bw_a, clk_a,
                    nexp_a, topk_a, tab_a, act, nact, nmin, pre, miss, geom, cst, power_fixed, out, reason)
