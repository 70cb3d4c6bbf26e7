"""Systolic model: speed with the mapper (issue #15 item 4, issue #13 item 5) and its properties
counted over >= 100,000 (design, workload) pairs (issue #15 item 2).

Run:  python benchmarks/bench_systolic.py               (speed + properties, about 2-4 min)
      python benchmarks/bench_systolic.py --only speed  (or --only properties)
      python benchmarks/bench_systolic.py --only rules  (the rule and fill/drain variants, ~30-60 min;
                                                          --fill pipe --rule energy for one variant)

Prints markdown tables; benchmarks/README.md records them.  Speed figures are medians of
repeats measured side by side in this one process; each is given in wall time and in this
process's CPU time (the machine is shared: CPU time is what other jobs do not inflate).
"""

from __future__ import annotations

import argparse
import csv
import functools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from archgym.runner import make_evaluator
from archgym.sweep import exhaustive
from simulators import _systolic_kernels as kern
from simulators.systolic import TECH, SystolicSimulator, _area_um2, _derive, _shadow_bits, _sram_pj_per_bit
from simulators._systolic_user import user_mode

ROOT = Path(__file__).resolve().parent.parent
WORKLOAD = "llama-2-7b/prefill"
TOPOLOGY = ROOT / "tests" / "data" / "scalesim_topologies" / "conv_nets" / "Googlenet.csv"


def timed(fn, repeats: int = 5) -> tuple[float, float]:
    """(median wall s, median CPU s) of ``fn`` after one warm-up call."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


# --- speed -----------------------------------------------------------------------------
def bench_batch(n: int = 200_000) -> list[tuple]:
    """evaluate_batch on llama-2-7b/prefill: mapper vs fixed mapping, side by side; and the mapper on
    the same designs with repeated mapping keys dropped (every design maps anew: no design of the
    batch shares rows, cols, dataflow, SRAMs and bit widths with another)."""
    from simulators.systolic import _KEY_PARAMS

    rows = []
    idx = SystolicSimulator().design_space().sample_indices(np.random.default_rng(0), n)
    sizes = [len(p.values) for p in SystolicSimulator().design_space().params]
    key = np.zeros(n, dtype=np.int64)
    for j in _KEY_PARAMS:
        key = key * sizes[j] + idx[:, j]
    distinct = idx[np.sort(np.unique(key, return_index=True)[1])]
    for mapping, ix in (("best", idx), ("fixed", idx), ("best, no repeated key", distinct)):
        sim = SystolicSimulator(mapping=mapping.split(",")[0])
        m = len(ix)
        n_layers, n_shapes = len(sim.gemms(WORKLOAD)), len(sim.distinct_gemms(WORKLOAD))
        wall, cpu = timed(lambda: sim.evaluate_batch(ix, WORKLOAD))
        rows.append((f"{mapping} ({m:,} designs)", n_layers, n_shapes, m * n_layers / wall, m * n_layers / cpu,
                     wall / m * 1e6, cpu / m * 1e6))
    return rows


def bench_single(n: int = 5000) -> list[tuple]:
    """One design through evaluate() (checked path, breakdown built lazily, not read)."""
    out = []
    for mapping in ("best", "fixed"):
        sim = SystolicSimulator(mapping=mapping)
        d, w = sim.default_design(), sim.workload(WORKLOAD)
        wall, cpu = timed(lambda: [sim.evaluate(d, w) for _ in range(n)], 3)
        out.append((mapping, wall / n * 1e6, cpu / n * 1e6))
    return out


def bench_exhaustive() -> list[tuple]:
    """Systolic-v0's whole space (2,332,800 designs) through archgym.sweep.exhaustive."""
    out = []
    for mapping in ("best", "fixed"):
        ev = make_evaluator("archgym/Systolic-v0", simulator_kwargs={"mapping": mapping})
        c0 = time.process_time()
        opt = exhaustive(ev)
        out.append((mapping, opt.n_designs, opt.wall_s, time.process_time() - c0, opt.design))
    return out


def bench_topology(n: int = 200_000) -> dict:
    """Googlenet.csv (58 layers): batched kernel rate; archgym eval vs SCALE-Sim 3.0.0 on the file."""
    path = str(TOPOLOGY)
    res = {}
    idx = SystolicSimulator().design_space().sample_indices(np.random.default_rng(1), n)
    for mapping in ("best", "fixed"):
        sim = SystolicSimulator(mapping=mapping)
        layers = len(sim.gemms(path))
        wall, cpu = timed(lambda: sim.evaluate_batch(idx, path), 3)
        res[mapping] = (layers, len(sim.distinct_gemms(path)), n * layers / wall, n * layers / cpu)
    # the same file in SCALE-Sim's mode on the array SCALE-Sim was timed on
    # (CALC-mode cycles do not depend on the SRAM sizes; the largest on the env's grid, so the CLI takes them)
    sim = SystolicSimulator(mode="scalesim")
    d = {**sim.default_design(), "rows": 32, "cols": 32, "dataflow": "ws", "ifmap_sram_kb": 1024,
         "filter_sram_kb": 1024, "ofmap_sram_kb": 512}
    m = sim.evaluate(d, path)
    wall, cpu = timed(lambda: [sim.evaluate(d, path) for _ in range(200)], 3)
    res["scalesim_cycles"] = m.cycles
    res["evaluate_s"] = (wall / 200, cpu / 200)
    cmd = [sys.executable, "-m", "archgym", "eval", "archgym/Systolic-v0", "rows=32", "cols=32", "dataflow=ws",
           "ifmap_sram_kb=1024", "filter_sram_kb=1024", "ofmap_sram_kb=512", "--workload", path,
           "--sim-opt", "mode=scalesim"]
    walls = []
    for _ in range(3):
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        walls.append(time.perf_counter() - t0)
    assert f"cycles = {m.cycles:,} cycles" in out, out
    res["cli_s"] = statistics.median(walls)
    for row in csv.DictReader((ROOT / "benchmarks" / "scalesim_timing.csv").open()):
        if row["layer"] == "file:conv_nets/Googlenet.csv" and row["dataflow"] == "ws":
            res["scalesim_row"] = row
    return res


def bench_user_vs_zoo(n: int = 200_000) -> list[tuple]:
    """A user workload (a GEMM topology CSV with the zoo workload's 10 GEMM shapes, no repeat
    counts) costs what the zoo workload costs."""
    sim = SystolicSimulator()
    g = sim.gemms(WORKLOAD)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "user.csv"
        path.write_text("Layer, M, N, K,\n" + "".join(f"l{i}, {m}, {nn}, {k},\n" for i, (m, k, nn, _c) in enumerate(g)))
        idx = sim.design_space().sample_indices(np.random.default_rng(2), n)
        out = []
        for name, w in ((WORKLOAD, WORKLOAD), ("user CSV, same 10 GEMMs", str(path))):
            wl = sim.workload(w)
            wall, cpu = timed(lambda: sim.evaluate_batch(idx, wl))
            d = sim.default_design()
            w1, c1 = timed(lambda: [sim.evaluate(d, wl) for _ in range(5000)], 3)
            out.append((name, len(wl.gemm_array()), wall / n * 1e6, cpu / n * 1e6, w1 / 5000 * 1e6, c1 / 5000 * 1e6))
    return out


def bench_user_mode() -> tuple:
    """The USER-mode walk on SCALE-Sim's CI layer (256x128x256, 32x32 os): demand lines per second."""
    lines = 4 * 8 * (256 + 32 + 32 - 2)  # folds x lines per fold (os)
    wall, cpu = timed(lambda: user_mode(256, 128, 256, 32, 32, "os", 64, 64, 64, 10), 3)
    return lines, wall, cpu


# --- properties --------------------------------------------------------------------------
PROPERTY_WORKLOADS = ("llama-2-7b/prefill", "opt-1.3b/prefill", "phi-2/prefill",
                      "llama-2-7b/decode", "opt-1.3b/decode", "phi-2/decode")


def evaluate_arrays(sim: SystolicSimulator, gemms: np.ndarray, d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The batched kernel on raw parameter arrays (values may leave the env's grid, e.g. rows=512)."""
    i64 = {k: np.asarray(v, dtype=np.int64) for k, v in d.items() if k not in ("dataflow", "clock_mhz")}
    df = np.asarray([("os", "ws", "is").index(x) for x in d["dataflow"]], dtype=np.int64)
    res = kern.batch_eval(gemms, i64["rows"], i64["cols"], df, i64["ifmap_sram_kb"] * 8192,
                          i64["filter_sram_kb"] * 8192, i64["ofmap_sram_kb"] * 8192, i64["dram_bw_bytes"] * 8,
                          i64["act_bits"], i64["weight_bits"], sim._code)
    out = _derive(res[:, :8].T, res[:, 8], res[:, 10], d["rows"], d["cols"], df, d["ifmap_sram_kb"],
                  d["filter_sram_kb"], d["ofmap_sram_kb"], d["clock_mhz"], d["act_bits"], d["weight_bits"], sim._code)
    out["cycles"] = res[:, 1]
    out["passes"] = res[:, 9]
    return out


def sample_designs(space, rng, n: int) -> dict[str, np.ndarray]:
    """``n`` uniformly random designs of ``space`` as one array per parameter (the dtypes
    :func:`evaluate_arrays` takes)."""
    idx = space.sample_indices(rng, n)
    d = {p.name: np.asarray(p.values, dtype=object)[idx[:, j]] for j, p in enumerate(space.params)}
    return {k: (v.astype(str) if k == "dataflow" else v.astype(float if k == "clock_mhz" else np.int64))
            for k, v in d.items()}


def properties(n_designs: int = 20_000) -> dict:
    """Count each property over len(PROPERTY_WORKLOADS) x n_designs pairs, per mapping."""
    report = {}
    for mapping in ("best", "fixed"):
        sim = SystolicSimulator(mapping=mapping)
        space = sim.design_space()
        rng = np.random.default_rng(20261203)
        c = {k: 0 for k in ("pairs", "sram_worse", "bw_worse", "latency_neq", "energy_down", "energy_pairs")}
        dbl = {key: dict(worse=0, bound_fail=0, bound_fail_same_bits=0, over10_prefill=0, prefill=0, worst=0.0,
                         worst_prefill=0.0) for key in ("rows", "cols")}
        for wl in PROPERTY_WORKLOADS:
            d = sample_designs(space, rng, n_designs)
            g = sim.distinct_gemms(wl)
            instances = int(g[:, 3].sum())  # GEMM instances of the workload
            base = evaluate_arrays(sim, g, d)
            c["pairs"] += n_designs
            prefill = wl.endswith("prefill")
            for key in ("rows", "cols"):
                new = evaluate_arrays(sim, g, {**d, key: d[key] * 2})
                ratio = new["latency_s"] / base["latency_s"]
                # the fill/drain bound (simulators/systolic.py): the mapper's pipelined passes pay the
                # height and the skew, R + min(B, C) - 2, once per GEMM instance; the fixed loop order
                # pays 2R + C - 2 per pass whatever it uses
                if mapping == "best":
                    bound = instances * (d["rows"] if key == "rows" else d["cols"])
                else:
                    bound = base["passes"] * (2 * d["rows"] if key == "rows" else d["cols"])
                bound_ok = new["cycles"] <= base["cycles"] + bound
                same_bits = new["dram_bytes"] == base["dram_bytes"]
                s = dbl[key]
                s["worse"] += int((ratio > 1).sum())
                s["bound_fail"] += int((~bound_ok).sum())
                s["bound_fail_same_bits"] += int((~bound_ok & same_bits).sum())
                s["worst"] = max(s["worst"], float(ratio.max()))
                if prefill:
                    s["prefill"] += n_designs
                    s["over10_prefill"] += int((ratio > 1.10).sum())
                    s["worst_prefill"] = max(s["worst_prefill"], float(ratio.max()))
            for key in ("ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb"):
                new = evaluate_arrays(sim, g, {**d, key: d[key] * 2})
                c["sram_worse"] += int((new["dram_bytes"] > base["dram_bytes"]).sum())
            new = evaluate_arrays(sim, g, {**d, "dram_bw_bytes": d["dram_bw_bytes"] * 2})
            c["bw_worse"] += int((new["cycles"] > base["cycles"]).sum())
            c["latency_neq"] += int((base["latency_s"] != base["cycles"] / (d["clock_mhz"] * 1e6)).sum())
            # more MACs, same design: the prefill at twice the sequence, the decode at twice the context
            more = wl + ("?seq_len=512" if prefill else "?context_len=512")
            bigger = evaluate_arrays(sim, sim.distinct_gemms(more), d)
            assert sim.workload(more).macs > sim.workload(wl).macs
            c["energy_down"] += int((bigger["energy_j"] < base["energy_j"]).sum())
            c["energy_pairs"] += n_designs
        report[mapping] = (c, dbl)
    return report


def energy_growth(n_layers: int = 3000, n_designs: int = 400, seed: int = 1) -> dict:
    """"More MACs never lowers energy" on random single GEMMs (the properties' dims: 1-64, 65-4999,
    or 256/1024/4096/11008) grown by 1-512 in one dim, each on ``n_designs`` random designs of the
    hypothesis tests' ranges (rows, cols 4-256; SRAMs 8-1024 kB; 4-128 B/cycle): pairs, pairs whose
    energy fell, the lowest energy ratio and its case."""
    sim = SystolicSimulator(max_area_mm2=1e9)
    space = sim.design_space()
    rng = np.random.default_rng(seed)

    def dim():
        k = rng.integers(3)
        if k == 0:
            return int(rng.integers(1, 65))
        return int(rng.integers(65, 5000)) if k == 1 else int(rng.choice([256, 1024, 4096, 11008]))

    out = dict(pairs=0, down=0, worst=1.0, case=None)
    for _ in range(n_layers):
        g = np.array([[dim(), dim(), dim(), 1]], dtype=np.int64)
        big = g.copy()
        which = int(rng.integers(3))
        big[0, which] += int(rng.integers(1, 513))
        d = sample_designs(space, rng, n_designs)
        for key, lo, hi in (("rows", 2, 8), ("cols", 2, 8), ("ifmap_sram_kb", 3, 10), ("ofmap_sram_kb", 3, 9),
                            ("filter_sram_kb", 3, 10), ("dram_bw_bytes", 2, 7)):
            d[key] = np.asarray(2 ** rng.integers(lo, hi + 1, n_designs), dtype=np.int64)
        r = evaluate_arrays(sim, big, d)["energy_j"] / evaluate_arrays(sim, g, d)["energy_j"]
        out["pairs"] += n_designs
        out["down"] += int((r < 1).sum())
        i = int(np.argmin(r))
        if r[i] < out["worst"]:
            out["worst"] = float(r[i])
            out["case"] = (tuple(g[0, :3]), tuple(big[0, :3]), {k: d[k][i].item() for k in d})
    return out


def mapped_vs_fixed(n_designs: int = 20_000) -> list[tuple]:
    """Per workload, the mapper against the fixed loop order on the same random designs:
    (workload, share slower by > 10 %, worst latency ratio, median latency ratio, share with more
    energy, worst energy ratio, median energy ratio, median DRAM-bytes ratio)."""
    best, fixed = SystolicSimulator(), SystolicSimulator(mapping="fixed")
    space = best.design_space()
    rng = np.random.default_rng(5)
    out = []
    for wl in PROPERTY_WORKLOADS:
        d = sample_designs(space, rng, n_designs)
        a = evaluate_arrays(best, best.distinct_gemms(wl), d)
        b = evaluate_arrays(fixed, fixed.distinct_gemms(wl), d)
        lr, er, tr = a["latency_s"] / b["latency_s"], a["energy_j"] / b["energy_j"], a["dram_bytes"] / b["dram_bytes"]
        out.append((wl, float(np.mean(lr > 1.1)), float(lr.max()), float(np.median(lr)), float(np.mean(er > 1)),
                    float(er.max()), float(np.median(er)), float(np.median(tr))))
    return out


# --- the rule and the fill/drain model, side by side (issue #15 item 2) -------------------
# A brute-force twin of the mapper (every candidate tile triple, every choice of the one saved
# operand) with two switches the model does not have: the fill/drain per pass ("full": 2R + C - 2
# whatever the pass uses, the model before the used-lane rule; "used": R + a + b - 2, the model
# before the pipelined passes;
# "lanes": 2a + b - 2, an array whose unused rows cost nothing either; "pipe": passes pipelined
# through double-buffered stationary registers, as the TPU's weight double-buffering (Jouppi et al.,
# ISCA 2017, section 2) and Gemmini's PEs do: a pass occupies the array for max(t, a) cycles, its
# streamed length or the a-cycle shift of its stationary tile (ws/is: in from the top, os: out),
# and the skew and one traversal of the height, R + min(B, C) - 2, are paid once per GEMM: the
# model) and the selection rule
# ("bits": fewest DRAM bits, then compute cycles, the model; "cycles": fewest layer cycles
# max(compute, DRAM bits / bandwidth), then DRAM bits, then compute; "energy": the least layer energy
# (SRAM accesses x pJ/bit of each SRAM, DRAM bits x pJ/bit, leakage x layer cycles; the MAC energy is
# the same for every mapping), then DRAM bits, then compute).  ("pipe", "bits") must
# reproduce the model exactly: rule_counts checks it on every design it prices.
FILLS = ("full", "used", "lanes", "pipe")
RULES = ("bits", "cycles", "energy")


@functools.cache  # compiled once per process, not once per (fill, rule)
def _brute_kernels():
    import numba

    big = np.int64(1) << np.int64(62)

    @numba.njit
    def cands(d, out):
        n, t = 0, 1
        while t < d:
            out[n] = t
            n += 1
            t <<= 1
        out[n] = d
        return n + 1

    @numba.njit
    def roles(A, B, T, R, C, qS, qP, qQ, eS, eP, eQ, fill, rule, bw, base, cS, cP, cQ, out_role, lk, e_dram):
        # energy rule: cX = SRAM pJ of one array pass over role X's operand (S once per T tile, P
        # once per column pass, Q once per row pass; the ofmap role writes u times and reads back
        # u - 1), lk = leakage pJ per cycle, e_dram = pJ per DRAM bit
        ca, cb, ct = np.empty(64, np.int64), np.empty(64, np.int64), np.empty(64, np.int64)
        na, nb, nt = cands(A, ca), cands(B, cb), cands(T, ct)
        fA, fB = (A + R - 1) // R, (B + C - 1) // C
        k1b = k2b = k3b = big
        ebest = np.inf
        res = (big, big, 0, 0, 0, 0, 0, 0, 0, 0)
        for i in range(na):
            At = ca[i]
            nA = (A + At - 1) // At
            PA = max(fA, nA)
            for j in range(nb):
                Bt = cb[j]
                nB = (B + Bt - 1) // Bt
                PB = max(fB, nB)
                for k in range(nt):
                    Tt = ct[k]
                    nT = (T + Tt - 1) // Tt
                    fitS, fitP, fitQ = At * Bt <= qS, At * Tt <= qP, Bt * Tt <= qQ
                    if (Bt > C and not fitP) or (At > R and not fitQ):
                        continue  # a tile the array reads more than once must be held
                    mS, mP, mQ = nT, nB, nA
                    v0 = eS * (mS - 1) + eP * (mP - 1) + eQ * (mQ - 1)
                    v, s = v0, -1
                    if fitS and v0 - eS * (mS - 1) < v:
                        v, s = v0 - eS * (mS - 1), 0
                    if fitP and v0 - eP * (mP - 1) < v:
                        v, s = v0 - eP * (mP - 1), 1
                    if fitQ and v0 - eQ * (mQ - 1) < v:
                        v, s = v0 - eQ * (mQ - 1), 2
                    if s == 0:
                        mS = 1
                    elif s == 1:
                        mP = 1
                    elif s == 2:
                        mQ = 1
                    if fill == 0:
                        fd = PA * PB * nT * (2 * R + C - 2)
                    elif fill == 1:
                        fd = nT * (PA * PB * (R - 2) + PB * A + PA * B)
                    elif fill == 2:
                        fd = nT * (2 * PB * A + PA * B - 2 * PA * PB)
                    if fill == 3:
                        h = min(At, R)
                        al = A - (PA - 1) * h
                        tt = min(Tt, T)
                        tl = T - (nT - 1) * tt
                        sm = ((PA - 1) * (nT - 1) * max(tt, h) + (PA - 1) * max(tl, h) + (nT - 1) * max(tt, al)
                             + max(tl, al))
                        comp = PB * sm + R + min(B, C) - 2
                        fd = comp - PA * PB * T
                    else:
                        comp = fd + PA * PB * T
                    if rule == 2:
                        uS, uP, uQ = float(nT), float(PB), float(PA)
                        if out_role == 0:
                            uS = 2.0 * uS - 1.0
                        elif out_role == 1:
                            uP = 2.0 * uP - 1.0
                        else:
                            uQ = 2.0 * uQ - 1.0
                        dc = (base + v + bw - 1) // bw
                        e = cS * uS + cP * uP + cQ * uQ + e_dram * float(v) + lk * float(max(comp, dc))
                        if e < ebest or (e == ebest and (v < k2b or (v == k2b and comp < k3b))):
                            ebest, k2b, k3b = e, v, comp
                            res = (v, comp, PA, PB, nT, mS, mP, mQ, PA * PB * nT, fd)
                        continue
                    if rule == 0:
                        k1, k2, k3 = v, comp, 0
                    else:
                        dc = (base + v + bw - 1) // bw
                        k1, k2, k3 = max(comp, dc), v, comp
                    if k1 < k1b or (k1 == k1b and (k2 < k2b or (k2 == k2b and k3 < k3b))):
                        k1b, k2b, k3b = k1, k2, k3
                        res = (v, comp, PA, PB, nT, mS, mP, mQ, PA * PB * nT, fd)
        return res

    @numba.njit
    def batch(gemms, R, C, df, if_bits, fl_bits, of_bits, bw_bits, a_bits, w_bits, fill, rule, pj_if, pj_fl, pj_of, lk,
              e_dram):
        # pj_*: pJ per bit of each SRAM; lk: leakage pJ per cycle (energy rule only)
        n = R.shape[0]
        res = np.zeros((n, kern.N_OUT))
        for d in range(n):
            a, w, bw = a_bits[d], w_bits[d], bw_bits[d]
            q_if, q_fl, q_of = (if_bits[d] // 2) // a, (fl_bits[d] // 2) // w, (of_bits[d] // 2) // kern.PSUM_BITS
            for i in range(gemms.shape[0]):
                M, K, N, cnt = gemms[i, 0], gemms[i, 1], gemms[i, 2], gemms[i, 3]
                mk, kn, mn = M * K, K * N, M * N
                e_if, e_fl, e_of = mk * a, kn * w, 2 * kern.PSUM_BITS * mn
                base = mk * a + kn * w + mn * a
                c_if, c_fl, c_of = mk * a * pj_if[d], kn * w * pj_fl[d], mn * kern.PSUM_BITS * pj_of[d]
                if df[d] == 0:
                    v, comp, PA, PB, nT, mS, mP, mQ, ps, fd = roles(M, N, K, R[d], C[d], q_of, q_if, q_fl, e_of, e_if,
                                                                    e_fl, fill, rule, bw, base, c_of, c_if, c_fl, 0,
                                                                    lk[d], e_dram)
                    p_if, p_fl, p_of, u_if, u_fl, u_of = mP, mQ, mS, PB, PA, nT
                elif df[d] == 1:
                    v, comp, PA, PB, nT, mS, mP, mQ, ps, fd = roles(K, N, M, R[d], C[d], q_fl, q_if, q_of, e_fl, e_if,
                                                                    e_of, fill, rule, bw, base, c_fl, c_if, c_of, 2,
                                                                    lk[d], e_dram)
                    p_if, p_fl, p_of, u_if, u_fl, u_of = mP, mS, mQ, PB, nT, PA
                else:
                    v, comp, PA, PB, nT, mS, mP, mQ, ps, fd = roles(K, M, N, R[d], C[d], q_if, q_fl, q_of, e_if, e_fl,
                                                                    e_of, fill, rule, bw, base, c_if, c_fl, c_of, 2,
                                                                    lk[d], e_dram)
                    p_if, p_fl, p_of, u_if, u_fl, u_of = mS, mP, mQ, nT, PB, PA
                rd = e_if * p_if + e_fl * p_fl + kern.PSUM_BITS * mn * (p_of - 1)
                wr = mn * a + kern.PSUM_BITS * mn * (p_of - 1)
                dc = (rd + wr + bw - 1) // bw
                vals = (comp, max(comp, dc), mk * u_if, kn * u_fl, mn * u_of, mn * (u_of - 1), rd, wr)
                for j in range(8):
                    res[d, j] += float(vals[j]) * cnt
                res[d, 8] += float(M) * K * N * cnt
                res[d, 9] += float(ps) * cnt
                res[d, 10] += float(fd) * cnt
        return res

    return batch


def rule_counts(fill: str, rule: str, n_designs: int = 20_000) -> dict:
    """The properties of :func:`properties` for one (fill, rule) of the brute-force twin, on the
    same random designs; with ("pipe", "bits") every priced batch is checked against the model's
    kernel (compute cycles, cycles and total DRAM bits equal)."""
    batch = _brute_kernels()
    sim = SystolicSimulator()
    space = sim.design_space()
    fcode, rcode = FILLS.index(fill), RULES.index(rule)

    def ev(g, d):
        i64 = {k: np.asarray(v, dtype=np.int64) for k, v in d.items() if k not in ("dataflow", "clock_mhz")}
        df = np.asarray([("os", "ws", "is").index(x) for x in d["dataflow"]], dtype=np.int64)
        args = (g, i64["rows"], i64["cols"], df, i64["ifmap_sram_kb"] * 8192, i64["filter_sram_kb"] * 8192,
                i64["ofmap_sram_kb"] * 8192, i64["dram_bw_bytes"] * 8, i64["act_bits"], i64["weight_bits"])
        code = kern.MAPPED if fill == "pipe" else kern.FIXED  # pipe: shadow registers in the area
        area_mm2 = _area_um2(d["rows"], d["cols"], d["act_bits"], d["weight_bits"],
                             d["ifmap_sram_kb"] + d["filter_sram_kb"] + d["ofmap_sram_kb"],
                             _shadow_bits(code, df, d["act_bits"], d["weight_bits"])) * 1e-6
        lk = TECH["leak_w_per_mm2"] * area_mm2 / (np.asarray(d["clock_mhz"], dtype=float) * 1e6) * 1e12
        pj = [np.asarray(_sram_pj_per_bit(np.asarray(d[k], dtype=float)), dtype=float)
              for k in ("ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb")]
        res = batch(*args, fcode, rcode, *pj, np.asarray(lk, dtype=float), TECH["dram_pj_per_bit"])
        if (fill, rule) == ("pipe", "bits"):
            k = kern.batch_eval(*args, kern.MAPPED)
            # what the rule fixes: compute, cycles and total DRAM bits (among equally good mappings
            # the twin may pick other tiles, so the SRAM counts and the fill/drain split may differ)
            same = [np.array_equal(res[:, j], k[:, j]) for j in (0, 1, 8)]
            assert all(same) and np.array_equal(res[:, 6] + res[:, 7], k[:, 6] + k[:, 7]), "twin != model"
        out = _derive(res[:, :8].T, res[:, 8], res[:, 10], d["rows"], d["cols"], df, d["ifmap_sram_kb"],
                      d["filter_sram_kb"], d["ofmap_sram_kb"], d["clock_mhz"], d["act_bits"], d["weight_bits"], code)
        out["cycles"] = res[:, 1]
        return out

    rng = np.random.default_rng(20261203)  # the designs of properties()
    c = dict(pairs=0, sram_worse=0, bw_worse=0, energy_down=0, rows10=0, cols10=0, prefill=0, rows_worse=0,
             cols_worse=0)
    lat, en, by = [], [], []
    for wl in PROPERTY_WORKLOADS:
        d = sample_designs(space, rng, n_designs)
        g = sim.distinct_gemms(wl)
        base = ev(g, d)
        c["pairs"] += n_designs
        prefill = wl.endswith("prefill")
        if prefill:
            c["prefill"] += n_designs
            lat.append(base["latency_s"])
            en.append(base["energy_j"])
            by.append(base["dram_bytes"])
        for key in ("rows", "cols"):
            r = ev(g, {**d, key: d[key] * 2})["latency_s"] / base["latency_s"]
            c[key + "_worse"] += int((r > 1).sum())
            if prefill:
                c[key + "10"] += int((r > 1.1).sum())
        for key in ("ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb"):
            c["sram_worse"] += int((ev(g, {**d, key: d[key] * 2})["dram_bytes"] > base["dram_bytes"]).sum())
        c["bw_worse"] += int((ev(g, {**d, "dram_bw_bytes": d["dram_bw_bytes"] * 2})["cycles"] > base["cycles"]).sum())
        more = wl + ("?seq_len=512" if prefill else "?context_len=512")
        c["energy_down"] += int((ev(sim.distinct_gemms(more), d)["energy_j"] < base["energy_j"]).sum())
    c["prefill_median_latency_s"] = float(np.median(np.concatenate(lat)))
    c["prefill_median_energy_j"] = float(np.median(np.concatenate(en)))
    c["prefill_median_dram_gb"] = float(np.median(np.concatenate(by))) / 1e9
    return c


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("speed", "properties", "rules"))
    ap.add_argument("--fill", action="append", choices=FILLS,
                    help="with --only rules: this fill/drain variant only (repeatable; default: all)")
    ap.add_argument("--rule", action="append", choices=RULES,
                    help="with --only rules: this selection rule only (repeatable; default: all)")
    args = ap.parse_args(argv)
    if args.only == "rules":
        print("| fill/drain per pass | rule | prefill: doubling rows > +10 % | doubling cols > +10 % | doubling rows "
              "slower | doubling cols slower | doubling an SRAM increased DRAM bytes | doubling bandwidth increased "
              "cycles | more MACs lowered energy | prefill median latency s | energy J | DRAM GB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for fill in args.fill or FILLS:
            for rule in args.rule or RULES:
                c = rule_counts(fill, rule)
                print(f"| {fill} | {rule} | {c['rows10']:,} of {c['prefill']:,} | {c['cols10']:,} | {c['rows_worse']:,} "
                      f"of {c['pairs']:,} | {c['cols_worse']:,} | {c['sram_worse']:,} of {3 * c['pairs']:,} | "
                      f"{c['bw_worse']:,} | {c['energy_down']:,} | {c['prefill_median_latency_s']:.3f} | "
                      f"{c['prefill_median_energy_j']:.3f} | {c['prefill_median_dram_gb']:.2f} |", flush=True)
        return
    if args.only != "properties":
        print("| mapping | layers (distinct shapes) | layer-evaluations/s wall | ... CPU | us per design wall | ... CPU |")
        print("|---|---|---|---|---|---|")
        for m, nl, ns, lw, lc, uw, uc in bench_batch():
            print(f"| {m} | {nl} ({ns}) | {lw:,.0f} | {lc:,.0f} | {uw:.2f} | {uc:.2f} |")
        print()
        for m, w, c in bench_single():
            print(f"one {WORKLOAD} evaluate(), mapping={m}: {w:.1f} us wall, {c:.1f} us CPU")
        for m, n, w, c, best in bench_exhaustive():
            print(f"exhaustive Systolic-v0, mapping={m}: {n:,} designs in {w:.2f} s wall, {c:.2f} s CPU; optimum {best}")
        t = bench_topology()
        for m in ("best", "fixed"):
            layers, shapes, lw, lc = t[m]
            print(f"{TOPOLOGY.name} ({layers} layers, {shapes} distinct shapes), mapping={m}: {lw:,.0f} "
                  f"layer-evaluations/s wall, {lc:,.0f} CPU")
        row = t.get("scalesim_row")
        ev_w, ev_c = t["evaluate_s"]
        print(f"{TOPOLOGY.name} in mode=scalesim on 32x32 ws: {t['scalesim_cycles']:,} cycles; evaluate() "
              f"{ev_w * 1e3:.2f} ms wall ({ev_c * 1e3:.2f} ms CPU); `archgym eval` process {t['cli_s']:.2f} s wall")
        if row:
            cpu = float(row["note"].split("CPU s median ")[1].split()[0]) if "CPU s median" in row["note"] else None
            print(f"SCALE-Sim 3.0.0 on the file: {row['total_cycles']} cycles, {row['wall_s_median']} s wall, CPU "
                  f"{cpu} s; ratios: evaluate() {cpu / ev_c:,.0f}x (CPU), archgym eval process "
                  f"{cpu / t['cli_s']:,.0f}x (its wall vs SCALE-Sim's CPU)")
        for name, nrows, bw, bc, sw, sc in bench_user_vs_zoo():
            print(f"{name} ({nrows} GEMM rows): evaluate_batch {bw:.2f} us/design wall ({bc:.2f} CPU); "
                  f"evaluate() {sw:.1f} us wall ({sc:.1f} CPU)")
        lines, w, c = bench_user_mode()
        print(f"mode=scalesim-user walk, SCALE-Sim CI layer ({lines:,} demand lines): {w * 1e3:.1f} ms wall, "
              f"{c * 1e3:.1f} ms CPU ({lines / c:,.0f} lines/s CPU)")
        print()
    if args.only != "speed":
        rep = properties()
        for mapping, (c, dbl) in rep.items():
            print(f"mapping={mapping}: {c['pairs']:,} (design, workload) pairs per property")
            print(f"  doubling an SRAM increased DRAM bytes: {c['sram_worse']} of {3 * c['pairs']:,}")
            print(f"  doubling DRAM bandwidth increased cycles: {c['bw_worse']} of {c['pairs']:,}")
            print(f"  latency != cycles / clock: {c['latency_neq']} of {c['pairs']:,}")
            print(f"  twice the sequence/context lowered energy: {c['energy_down']} of {c['energy_pairs']:,}")
            for key, s in dbl.items():
                print(f"  doubling {key}: slower {s['worse']:,}/{c['pairs']:,} ({100 * s['worse'] / c['pairs']:.2f} %), "
                      f"worst latency ratio {s['worst']:.3f}x; fill/drain bound broken {s['bound_fail']} "
                      f"(with unchanged DRAM bytes: {s['bound_fail_same_bits']}); prefill: > +10 % on "
                      f"{s['over10_prefill']}/{s['prefill']:,}, worst {s['worst_prefill']:.3f}x")
        e = energy_growth()
        print(f"random GEMMs grown by 1-512 in one dim (mapper): energy fell on {e['down']:,} of {e['pairs']:,} pairs, "
              f"lowest ratio {e['worst']:.3f} ({e['case']})")
        print()
        print("| workload | mapper slower than fixed by > 10 % | worst | median latency ratio | more energy | worst "
              "| median energy ratio | median DRAM bytes ratio |")
        print("|---|---|---|---|---|---|---|---|")
        for wl, s10, lw, lm, e1, ew, em, tm in mapped_vs_fixed():
            print(f"| {wl} | {100 * s10:.1f} % | {lw:.2f}x | {lm:.3f} | {100 * e1:.2f} % | {ew:.2f}x | {em:.3f} | {tm:.3f} |")


if __name__ == "__main__":
    main()
