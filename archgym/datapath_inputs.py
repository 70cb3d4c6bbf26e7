"""Seeded input generators and shrinkers of the datapaths in :mod:`archgym.datapaths`.

A generator ``gen(rng, options, kind) -> dict | None`` returns one case's kernel inputs as
numpy arrays, for an edge-case ``kind`` (``None`` if the kind cannot be built under these
options, e.g. an accumulator limit that needs more than :data:`K_CAP` terms). A shrinker
yields smaller or simpler candidate inputs (fewer rows/columns/reduction steps, entries set
to zero) for the validator's greedy shrinking. ``rtl_models`` is imported inside functions.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import numpy as np

__all__ = ["K_CAP", "gen_systolic", "gen_smmw", "gen_ternary", "gen_bitmod", "gen_moe",
           "shrink_gemm", "shrink_bitmod", "shrink_moe", "int_range"]

#: Longest reduction an accumulator-limit case may use (such cases are 1-2 rows by 1-2 columns).
K_CAP = 1 << 18
_PRIMES = (1, 3, 5, 7, 11, 13, 17, 31)


def int_range(bits: int, signed: bool) -> tuple[int, int]:
    """``(lo, hi)`` of a ``bits``-wide two's-complement (or unsigned) integer."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _dims(rng, kind: str, k_hi: int = 48) -> tuple[int, int, int]:
    if kind == "k1":
        return int(rng.integers(1, 6)), 1, int(rng.integers(1, 6))
    if kind == "odd":
        return tuple(int(rng.choice(_PRIMES)) for _ in range(3))  # type: ignore[return-value]
    return int(rng.integers(1, 7)), int(rng.integers(1, k_hi + 1)), int(rng.integers(1, 7))


def _uniform(rng, lo: int, hi: int, shape) -> np.ndarray:
    return rng.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64)


def _extreme(rng, lo: int, hi: int, shape) -> np.ndarray:
    pool = np.array(sorted({lo, lo + 1, hi - 1, hi, 0, min(1, hi), max(-1, lo)}), np.int64)
    return rng.choice(pool, size=shape)


def _hit_sum(target: int, a_max: int, w_max: int) -> tuple[list[int], list[int]] | None:
    """Non-negative ``a_k <= a_max``, ``w_k <= w_max`` with ``sum a_k w_k == target``, or None
    if that needs more than :data:`K_CAP` terms."""
    p = a_max * w_max
    n_full, rem = divmod(target, p)
    if n_full + 2 > K_CAP:
        return None
    q, r = divmod(rem, a_max)
    a = [a_max] * n_full + [a_max, r]
    w = [w_max] * n_full + [q, 1 if r else 0]
    return a, w


def _place(rng, a_vec, w_vec, lo_a, hi_a, lo_w, hi_w):
    """A 1-2 x K and K x 1-2 pair whose (0, 0) output is ``sum a_vec * w_vec``."""
    k = len(a_vec)
    m, n = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    a = _uniform(rng, lo_a, hi_a, (m, k))
    w = _uniform(rng, lo_w, hi_w, (k, n))
    a[0] = a_vec
    w[:, 0] = w_vec
    return a, w


# --------------------------------------------------------------------------- systolic
def gen_systolic(rng, o: Mapping[str, Any], kind: str) -> dict | None:
    """Inputs ``a [M, K]``, ``w [K, N]`` of ``systolic-int`` (kinds in the registry)."""
    lo_a, hi_a = int_range(o["a_bits"], o["signed"])
    lo_w, hi_w = int_range(o["w_bits"], o["signed"])
    if kind == "acc_limit":
        half = 1 << (o["acc_bits"] - 1)
        target = int(rng.choice([half - 1, half, half + 1, 2 * half + 3]))
        hit = _hit_sum(target, hi_a, hi_w)
        if hit is None:
            return None
        a, w = _place(rng, hit[0], hit[1], lo_a, hi_a, lo_w, hi_w)
        if o["signed"] and rng.integers(2):   # the negative limit: -a is in range for a <= hi
            a[0] = -a[0]
        return {"a": a, "w": w}
    return _gemm_operands(rng, kind, _dims(rng, kind), lo_a, hi_a, lo_w, hi_w)


def _gemm_operands(rng, kind: str, mkn, lo_a: int, hi_a: int, lo_w: int, hi_w: int) -> dict:
    """``a [m, k]``, ``w [k, n]`` of an ``extreme``, ``zero`` or plain random GEMM case."""
    m, k, n = mkn
    if kind == "extreme":
        return {"a": _extreme(rng, lo_a, hi_a, (m, k)), "w": _extreme(rng, lo_w, hi_w, (k, n))}
    a, w = _uniform(rng, lo_a, hi_a, (m, k)), _uniform(rng, lo_w, hi_w, (k, n))
    if kind == "zero":
        (a if rng.integers(2) else w)[...] = 0
    return {"a": a, "w": w}


# --------------------------------------------------------------------------- SMMW
def gen_smmw(name: str):
    """The generator of ``smmw-w4a8`` / ``smmw-w4a4``."""
    def gen(rng, o: Mapping[str, Any], kind: str) -> dict | None:
        from .datapaths import smmw_config

        cfg = smmw_config(name, o)
        lo_a, hi_a = int_range(cfg.act_bits, o["signed"])
        lo_w, hi_w = int_range(cfg.weight_bits, o["signed"])
        oa, ow = (-lo_a, -lo_w)   # offset encoding: unsigned code = value - lo
        if kind in ("carry_limit", "acc_limit"):
            if kind == "carry_limit":  # every lane field takes drain_every worst-case products
                k = cfg.drain_every * int(rng.integers(1, 3)) + int(rng.integers(0, 2))
                if k > K_CAP:
                    return None
                a_u, w_u = [(1 << cfg.act_bits) - 1] * k, [(1 << cfg.weight_bits) - 1] * k
            else:                      # the wide accumulator reaches its maximum (and wraps)
                acc_max = (1 << cfg.acc_bits) - 1
                hit = _hit_sum(acc_max + int(rng.integers(0, 3)), (1 << cfg.act_bits) - 1,
                               (1 << cfg.weight_bits) - 1)
                if hit is None:
                    return None
                a_u, w_u = hit
            a, w = _place(rng, np.array(a_u) - oa, np.array(w_u) - ow, lo_a, hi_a, lo_w, hi_w)
            return {"a": a, "w": w}
        return _gemm_operands(rng, kind, _dims(rng, kind, 600 if kind == "random" else 48), lo_a, hi_a, lo_w, hi_w)
    return gen


# --------------------------------------------------------------------------- ternary
def _ternary_w(rng, k: int, n: int) -> np.ndarray:
    return rng.integers(-1, 2, size=(k, n)).astype(np.int8)


def gen_ternary(rng, o: Mapping[str, Any], kind: str) -> dict | None:
    """Inputs ``y [M, K]`` float32, ``w [K, N]`` int8 ternary, ``beta`` float32 0-d."""
    beta = np.float32(rng.choice([1e-5, 0.02, 0.5, 1.0, 3.0, 1e3]) if kind == "extreme"
                      else np.exp(rng.uniform(-5, 1)))
    if kind == "acc_limit":   # integer y with max 127 gives s_x = 1 and q = y exactly
        half = 1 << (o["acc_bits"] - 1)
        hit = _hit_sum(half - 1 + int(rng.integers(0, 3)), 127, 1)
        if hit is None:
            return None
        a, w = _place(rng, hit[0], hit[1], -127, 127, -1, 1)
        a[:, 0] = 127
        if rng.integers(2):
            w[:, 0] = -w[:, 0]
        return {"y": a.astype(np.float32), "w": w.astype(np.int8), "beta": np.array(beta, np.float32)}
    m, k, n = _dims(rng, kind, 64)
    y = (rng.standard_normal((m, k)) * 10.0 ** rng.uniform(-3, 3)).astype(np.float32)
    if kind == "ties":
        # max|y| = 127 * 2**j gives s_x = 2**-j exactly, so (n + 0.5) * 2**j are exact ties
        j = int(rng.integers(-12, 12))
        vals = (rng.integers(-127, 127, size=(m, k)) + 0.5) * 2.0 ** j
        vals[:, 0] = 127 * 2.0 ** j * rng.choice([-1, 1])
        y = vals.astype(np.float32)
    elif kind == "zero_row":
        y[rng.integers(0, m)] = 0
    elif kind == "tiny_row":   # below the 1e-5 absmax clamp
        y[rng.integers(0, m)] *= np.float32(1e-7) / max(np.abs(y).max(), 1e-30)
    elif kind == "extreme":
        big = rng.choice([1e30, 3e38, 1e-38, 1e-44])
        y = (np.sign(rng.standard_normal((m, k))) * big * rng.uniform(0.5, 1, (m, k))).astype(np.float32)
    return {"y": y, "w": _ternary_w(rng, k, n), "beta": np.array(beta, np.float32)}


# --------------------------------------------------------------------------- BitMoD
def gen_bitmod(rng, o: Mapping[str, Any], kind: str) -> dict | None:
    """Inputs ``x [M, K]`` and ``w [K, N]`` float16, K a multiple of the group size."""
    from rtl_models.bitmod import candidate_sets

    g = o["group"]
    m, n = (int(rng.choice(_PRIMES[:5])) for _ in range(2)) if kind == "odd" else \
        (int(rng.integers(1, 5)), int(rng.integers(1, 6)))
    ng = 1 if kind == "one_group" else int(rng.integers(1, 4))
    k = g * ng
    w = rng.standard_normal((k, n)) * 10.0 ** rng.uniform(-2, 1)
    x = rng.standard_normal((m, k)) * 10.0 ** rng.uniform(-2, 2)
    col, grp = int(rng.integers(0, n)), int(rng.integers(0, ng))
    rows = slice(grp * g, (grp + 1) * g)
    if kind == "ties":     # group max = qmax * 2**e makes the scale 2**e: midpoints are exact ties
        vs = candidate_sets(o["bits"])[0]
        e = int(rng.integers(-6, 4))
        mids = np.array(vs.midpoints if not vs.is_int else np.arange(-vs.qmax, vs.qmax) + 0.5)
        vals = rng.choice(mids, size=g) * 2.0 ** e
        vals[0] = vs.qmax * 2.0 ** e
        w[rows, col] = vals
    elif kind == "mse_tie":   # a sign-symmetric group: mirrored candidates have equal MSE
        half = np.abs(rng.standard_normal(g // 2)) * 10.0 ** rng.uniform(-2, 1)
        w[rows, col] = np.concatenate([half, -half, np.zeros(g % 2)])
    elif kind == "outlier":
        w[grp * g + int(rng.integers(0, g)), col] *= rng.choice([50.0, 1e3, -1e3])
    elif kind == "zero_group":
        w[rows, col] = 0
    elif kind == "extreme":
        w[rows, col] = rng.choice([6.0e4, -6.0e4, 6e-8, -6e-8, 1e-3], size=g)
        x[:, rows] = rng.choice([65504.0, -65504.0, 6e-8, -1e-7, 0.0], size=(m, g))
    with np.errstate(over="ignore"):
        x16, w16 = x.astype(np.float16), np.clip(w, -65504, 65504).astype(np.float16)
    x16[~np.isfinite(x16)] = np.float16(65504)
    return {"x": x16, "w": w16}


# --------------------------------------------------------------------------- MoE
def gen_moe(rng, o: Mapping[str, Any], kind: str) -> dict | None:
    """Inputs ``x, gate, w1, b1, w2, b2`` (int64 codes, Edge-MoE formats) of ``moe-fixed``."""
    from rtl_models.moe import MoENumerics

    nm = MoENumerics()
    n, k = o["n_experts"], o["top_k"]
    if kind == "one_token":
        t, d, h = 1, int(rng.integers(1, 4)), int(rng.integers(1, 4))
    elif kind == "odd":
        t, d, h = (int(rng.choice(_PRIMES[1:6])) for _ in range(3))
    else:
        t, d, h = int(rng.integers(1, 9)), int(rng.integers(1, 13)), int(rng.integers(1, 13))
    wq = lambda a: nm.weight.quantize(a)  # noqa: E731
    gate = wq(rng.normal(0, d ** -0.5, (d, n)))
    w1, w2 = wq(rng.normal(0, d ** -0.5, (n, d, h))), wq(rng.normal(0, h ** -0.5, (n, h, d)))
    b1, b2 = nm.bias.quantize(rng.normal(0, 0.1, (n, h))), nm.bias.quantize(rng.normal(0, 0.1, (n, d)))
    x = nm.act.quantize(rng.normal(0, 2.0, (t, d)))
    if kind == "empty_queue" and k < n:  # positive tokens, dead experts with the most negative gate
        x = np.abs(x)
        live = rng.choice(n, size=k, replace=False)
        gate = np.abs(gate)
        gate[:, np.setdiff1d(np.arange(n), live)] = nm.weight.min_code
    elif kind == "logit_tie" and n > 1:
        i, j = rng.choice(n, size=2, replace=False)
        gate[:, j] = gate[:, i]
    elif kind == "saturate":
        x = rng.choice([nm.act.max_code, nm.act.min_code, nm.act.max_code // 3], size=(t, d))
        w1 = rng.choice([nm.weight.max_code, nm.weight.min_code], size=w1.shape)
        w2 = rng.choice([nm.weight.max_code, nm.weight.min_code], size=w2.shape)
    elif kind == "zero":
        x[...] = 0
    return {"x": x, "gate": gate, "w1": w1, "b1": b1, "w2": w2, "b2": b2}


# --------------------------------------------------------------------------- shrinking
def _keep_sets(n: int, unit: int = 1) -> Iterator[np.ndarray]:
    """Index sets to keep, largest reductions first: halves, then all but one block."""
    blocks = n // unit
    if blocks <= 1:
        return
    idx = np.arange(n)
    h = blocks // 2
    yield idx[: h * unit]
    yield idx[h * unit:]
    for b in range(min(blocks, 64)):
        yield np.concatenate([idx[: b * unit], idx[(b + 1) * unit:]])


def _zeroings(name: str, arr: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    nz = np.flatnonzero(arr)
    if nz.size == 0:
        return
    parts = [nz[: nz.size // 2], nz[nz.size // 2:]] if nz.size > 1 else []
    parts += [nz[i:i + 1] for i in range(min(nz.size, 64))]
    for p in parts:
        if p.size:
            z = arr.copy()
            z.flat[p] = 0
            yield name, z


def shrink_gemm(a_name: str, w_name: str):
    """Shrinker of the GEMM-shaped datapaths: drop rows of ``a``, columns of ``w``, reduction
    steps of both, then zero entries."""
    def shrink(inp: Mapping[str, np.ndarray], o: Mapping[str, Any]) -> Iterator[dict]:
        a, w = inp[a_name], inp[w_name]
        for keep in _keep_sets(a.shape[0]):
            yield {**inp, a_name: a[keep]}
        for keep in _keep_sets(w.shape[1]):
            yield {**inp, w_name: w[:, keep]}
        for keep in _keep_sets(a.shape[1]):
            yield {**inp, a_name: a[:, keep], w_name: w[keep]}
        for name in (a_name, w_name):
            for nm, z in _zeroings(name, inp[name]):
                yield {**inp, nm: z}
    return shrink


def shrink_bitmod(inp: Mapping[str, np.ndarray], o: Mapping[str, Any]) -> Iterator[dict]:
    """Drop tokens, output columns, whole weight groups; then zero entries."""
    x, w = inp["x"], inp["w"]
    for keep in _keep_sets(x.shape[0]):
        yield {**inp, "x": x[keep]}
    for keep in _keep_sets(w.shape[1]):
        yield {**inp, "w": w[:, keep]}
    for keep in _keep_sets(w.shape[0], o["group"]):
        yield {**inp, "x": x[:, keep], "w": w[keep]}
    for name in ("w", "x"):
        yield from ({**inp, nm: z} for nm, z in _zeroings(name, inp[name]))


def shrink_moe(inp: Mapping[str, np.ndarray], o: Mapping[str, Any]) -> Iterator[dict]:
    """Drop tokens, model dimensions d, hidden dimensions h; then zero entries."""
    x = inp["x"]
    for keep in _keep_sets(x.shape[0]):
        yield {**inp, "x": x[keep]}
    for keep in _keep_sets(x.shape[1]):
        yield {**inp, "x": x[:, keep], "gate": inp["gate"][keep], "w1": inp["w1"][:, keep],
               "w2": inp["w2"][:, :, keep], "b2": inp["b2"][:, keep]}
    for keep in _keep_sets(inp["w1"].shape[2]):
        yield {**inp, "w1": inp["w1"][:, :, keep], "b1": inp["b1"][:, keep], "w2": inp["w2"][:, keep]}
    for name in ("x", "gate", "w1", "b1", "w2", "b2"):
        yield from ({**inp, nm: z} for nm, z in _zeroings(name, inp[name]))
