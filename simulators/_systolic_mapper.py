"""Numba mapper of the systolic model: the best legal mapping of one GEMM (see :mod:`simulators.systolic`).

The model and the legal mapping set are stated in :mod:`simulators.systolic` (section
"Mapper"); this module solves it.  Its slow twin, an exhaustive search over every loop
order, tile and residency choice, is :func:`simulators._systolic_ref.best_mapping`; the tests
check that both find the same (DRAM bits, cycles) on random layers and designs.

Everything is written in *role* terms so that one search serves the three dataflows: the
array maps GEMM dims to ``A`` (spatial rows), ``B`` (spatial columns) and ``T`` (streamed);
operand ``S = (A, B)`` is the one held in the PEs during a pass, ``P = (A, T)`` enters along
the rows, ``Q = (B, T)`` along the columns (:data:`ROLES`).

Search (exact, lexicographic on (DRAM bits, compute cycles)): at most one operand is kept in
its SRAM across an innermost DRAM loop that does not index it (case ``save S``, ``save P``,
``save Q``); in each case the traffic depends on two tile sizes, one of which is enumerated
(at most 1 + ceil(log2 d) candidates), the other two are the largest candidates the
capacities allow (proof in the module docstring of :mod:`simulators.systolic`).
"""

from __future__ import annotations

import numba
import numpy as np

from archgym.numba_bits import ctlz as _ctlz

__all__ = ["map_gemm", "map_roles", "map_roles_scan", "CASES", "INF"]

#: mapping case codes: which operand stays in its SRAM across the innermost DRAM loop
CASES = ("save S", "save P", "save Q")
INF = np.int64(1) << np.int64(62)


@numba.njit(cache=True)
def _pow2_floor(x):
    """Largest power of two <= x (x >= 1)."""
    x |= x >> 1
    x |= x >> 2
    x |= x >> 4
    x |= x >> 8
    x |= x >> 16
    x |= x >> 32
    return x - (x >> 1)


@numba.njit(cache=True)
def _fit(d, cap):
    """Largest candidate tile of a dim of size ``d`` (a power of two below d, or d) that is
    <= cap; 0 if none."""
    if cap >= d:
        return d
    if cap < 1:
        return 0
    return _pow2_floor(cap)


@numba.njit(cache=True)
def _cdiv(a, b):
    return (a + b - 1) // b


@numba.njit(cache=True)
def _cycles(At, Tt, PA, PB, nT, A, B, T, R, C):
    """Compute cycles of PA x PB x nT array passes covering an A x B x T role space with row
    tiles of ``At`` and streamed tiles of ``Tt``.

    Passes are pipelined through double-buffered stationary registers: a pass using ``a`` rows
    and streaming ``t`` elements occupies the array for ``max(t, a)`` cycles (its stream, or the
    ``a``-cycle shift of the next stationary tile in, or of its results out, whichever is
    longer), and the skew across the columns in use and one traversal of the array's height,
    ``R + min(B, C) - 2``, are paid once per GEMM.  Row passes are ``h = min(At, R)`` high but the
    last (``A - (PA - 1) h``); streamed tiles are ``Tt`` long but the last (``T - (nT - 1) Tt``);
    every column pass repeats the same row x stream passes.  Doubling a tile merges pairs of
    passes and ``max(x + y, h) <= max(x, h) + max(y, h)``, so larger tiles never cost cycles.
    """
    h = At if At < R else R
    al = A - (PA - 1) * h
    tl = T - (nT - 1) * Tt
    s = ((PA - 1) * (nT - 1) * max(Tt, h) + (PA - 1) * max(tl, h) + (nT - 1) * max(Tt, al)
         + max(tl, al))
    return PB * s + R + min(B, C) - 2


@numba.njit(cache=True)
def _consider(best, A, B, T, R, C, fA, fB, eS, eP, eQ, case, At, Bt, Tt, hS, hP, hQ):
    """``best`` or the candidate mapping, whichever is lexicographically better."""
    if At < 1 or Bt < 1 or Tt < 1:
        return best
    nA = _cdiv(A, At)
    nB = _cdiv(B, Bt)
    nT = _cdiv(T, Tt)
    # DRAM passes: the saved operand once, the other two once per tile of their missing dim
    mS = 1 if case == 0 else nT
    mP = 1 if case == 1 else nB
    mQ = 1 if case == 2 else nA
    v = eS * (mS - 1) + eP * (mP - 1) + eQ * (mQ - 1)
    c = _cycles(At, Tt, max(fA, nA), max(fB, nB), nT, A, B, T, R, C)
    if v < best[0] or (v == best[0] and c < best[1]):
        return (v, c, case, At, Bt, Tt, mS, mP, mQ, hS, hP, hQ, nA, nB, nT)
    return best


@numba.njit(cache=True)
def map_roles_scan(A, B, T, R, C, qS, qP, qQ, eS, eP, eQ):
    """Best mapping in role terms, by scanning every candidate of each case's free tile
    (the oracle of :func:`map_roles`, which must return the same tuple).

    ``qS, qP, qQ``: capacity of the active half of each operand's SRAM in elements;
    ``eS, eP, eQ``: DRAM bits of one extra pass of each operand over DRAM (cycles: :func:`_cycles`).
    Returns ``(extra_bits, compute, case, At, Bt, Tt, mS, mP, mQ,
    hS, hP, hQ)``: traffic above the compulsory, compute cycles, the case code, tile sizes,
    DRAM passes per operand and whether each operand's tile is held in its SRAM.
    """
    fA = _cdiv(A, R)
    fB = _cdiv(B, C)
    best = (INF, INF, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    # ---- case save S (S reused across the innermost DRAM loop, over T): P x nB, Q x nA.
    # Enumerate At; the traffic falls with Bt, so Bt is the largest the capacities allow.
    at = 1
    while True:
        At = at if at < A else A
        # (a) T untiled: S is not reused, P held iff Bt > C, Q held iff At > R (Tt = T)
        cap = B
        if At > R:
            cap = qQ // T
        if At * T > qP and cap > C:
            cap = C
        Bt = _fit(B, cap)
        best = _consider(best, A, B, T, R, C, fA, fB, eS, eP, eQ, 0, At, Bt, T, 0,
                         1 if Bt > C else 0, 1 if At > R else 0)
        # (b) T tiled: S held (At*Bt <= qS); P and Q as in (a) with the largest Tt
        cap = qS // At
        if At > R and cap > qQ:
            cap = qQ
        if At > qP and cap > C:
            cap = C
        Bt = _fit(B, cap)
        if Bt >= 1:
            tcap = T
            if Bt > C:
                tcap = qP // At
            if At > R and tcap > qQ // Bt:
                tcap = qQ // Bt
            Tt = _fit(T, tcap)
            best = _consider(best, A, B, T, R, C, fA, fB, eS, eP, eQ, 0, At, Bt, Tt,
                             1 if Tt < T else 0, 1 if Bt > C else 0, 1 if At > R else 0)
        if At == A:
            break
        at <<= 1

    # ---- case save P (innermost DRAM loop over B): S x nT, Q x nA.  Enumerate At; the
    # traffic falls with Tt, so Tt is the largest possible, then Bt the largest.
    at = 1
    while True:
        At = at if at < A else A
        # (a) P held (At*Tt <= qP); Q held iff At > R (Bt*Tt <= qQ)
        tcap = qP // At
        if At > R and tcap > qQ:
            tcap = qQ
        Tt = _fit(T, tcap)
        if Tt >= 1:
            Bt = B
            if At > R:
                Bt = _fit(B, qQ // Tt)
            best = _consider(best, A, B, T, R, C, fA, fB, eS, eP, eQ, 1, At, Bt, Tt, 0, 1,
                             1 if At > R else 0)
        # (b) B fits the columns (B <= C): B untiled, P streams
        if B <= C:
            tcap = T
            if At > R:
                tcap = qQ // B
            best = _consider(best, A, B, T, R, C, fA, fB, eS, eP, eQ, 1, At, B, _fit(T, tcap), 0, 0,
                             1 if At > R else 0)
        if At == A:
            break
        at <<= 1

    # ---- case save Q (innermost DRAM loop over A): S x nT, P x nB.  Enumerate Bt.
    bt = 1
    while True:
        Bt = bt if bt < B else B
        # (a) Q held (Bt*Tt <= qQ); P held iff Bt > C (At*Tt <= qP)
        tcap = qQ // Bt
        if Bt > C and tcap > qP:
            tcap = qP
        Tt = _fit(T, tcap)
        if Tt >= 1:
            At = A
            if Bt > C:
                At = _fit(A, qP // Tt)
            best = _consider(best, A, B, T, R, C, fA, fB, eS, eP, eQ, 2, At, Bt, Tt, 0,
                             1 if Bt > C else 0, 1)
        # (b) A fits the rows (A <= R): A untiled, Q streams
        if A <= R:
            tcap = T
            if Bt > C:
                tcap = qP // A
            best = _consider(best, A, B, T, R, C, fA, fB, eS, eP, eQ, 2, A, Bt, _fit(T, tcap), 0,
                             1 if Bt > C else 0, 0)
        if Bt == B:
            break
        bt <<= 1
    return best



@numba.njit(cache=True)
def _ilog2(x):
    """floor(log2(x)) for x >= 1."""
    return 63 - _ctlz(x)


@numba.njit(cache=True)
def _fitn(d, cap):
    """(tile, tiles, exponent) of the largest candidate tile <= cap of a dim of size d:
    the exponent is -1 for the whole dim; (0, 0, -1) if no candidate fits."""
    if cap >= d:
        return d, 1, -1
    if cap < 1:
        return 0, 0, -1
    j = _ilog2(cap)
    return 1 << j, (d + (1 << j) - 1) >> j, j


@numba.njit(cache=True)
def _fit_div(d, q, den):
    """:func:`_fitn` of ``cap = q // den`` without a division (tens of cycles): the
    exponent of the quotient from leading-zero counts, corrected by one multiply."""
    if d * den <= q:
        return d, 1, -1
    if den > q:
        return 0, 0, -1
    j = _ilog2(q) - _ilog2(den)
    if (den << j) > q:
        j -= 1
    return 1 << j, (d + (1 << j) - 1) >> j, j


@numba.njit(cache=True)
def _fit_by(d, q, j, whole):
    """:func:`_fitn` of ``q // tile`` for a tile of exponent j (a shift), or of ``q // whole``
    for a whole-dim tile (j = -1)."""
    if j >= 0:
        return _fitn(d, q >> j)
    return _fit_div(d, q, whole)


@numba.njit(cache=True)
def _smaller(a, b):
    """The (tile, tiles, exponent) with the smaller tile (the fit of the smaller cap)."""
    return a if a[0] <= b[0] else b


@numba.njit(cache=True)
def _tile(d, e):
    """(tile, tiles, exponent) of candidate ``e`` of a dim of size d: 2**e below d, else d (-1)."""
    t = 1 << e
    if t >= d:
        return d, 1, -1
    return t, (d + t - 1) >> e, e


@numba.njit(cache=True)
def _nexp(d):
    """Index of the last candidate tile (d itself): ceil(log2(d))."""
    return 0 if d <= 1 else _ilog2(d - 1) + 1


@numba.njit(cache=True)
def _guess(num1, num2, den1, den2, cap, top):
    """Exponent x in [0, top] roughly balancing num / 2**x against den * 2**x / cap
    (num = num1 * num2, den = den1 * den2; only a starting point of the walks)."""
    x = (_ilog2(num1) + _ilog2(num2) - _ilog2(den1) - _ilog2(den2) + _ilog2(max(cap, 1)) + 1) >> 1
    if x <= 0:
        return 0
    if x >= top:
        return top
    return x


@numba.njit(cache=True)
def _keep(best, v, c, case, At, Bt, Tt, nA, nB, nT, hS, hP, hQ):
    """``best`` or the candidate (v, c, case, tiles, holding flags), whichever is lexicographically
    better (trip counts are rebuilt once at the end: a short tuple keeps the search in registers)."""
    if v < best[0] or (v == best[0] and c < best[1]):
        return (v, c, case, At, Bt, Tt, hS, hP, hQ)
    return best


@numba.njit(cache=True)
def _finish(b, A, B, T):
    """The full 15-field result of :func:`map_roles` from the search's short tuple."""
    v, c, case, At, Bt, Tt, hS, hP, hQ = b
    # every tile is the whole dim or a power of two below it: trip counts by shifts, not divisions
    nA = 1 if At >= A else (A + At - 1) >> _ilog2(At)
    nB = 1 if Bt >= B else (B + Bt - 1) >> _ilog2(Bt)
    nT = 1 if Tt >= T else (T + Tt - 1) >> _ilog2(Tt)
    return (v, c, case, At, Bt, Tt, 1 if case == 0 else nT, 1 if case == 1 else nB, 1 if case == 2 else nA,
            hS, hP, hQ, nA, nB, nT)


@numba.njit(cache=True)
def _save_q(x, A, B, T, R, C, qP, qQ):
    """Case save Q, Q held, column tile candidate x: (ok, At, Bt, Tt, nA, nB, nT)."""
    Bt, nB, jB = _tile(B, x)
    tt = _fit_by(T, qQ, jB, B)
    if Bt > C:
        tt = _smaller(tt, _fitn(T, qP))
    Tt, nT, jT = tt
    if Tt == 0:
        return False, 0, Bt, 0, 0, nB, 0
    At, nA = A, 1
    if Bt > C:
        At, nA, _j = _fit_by(A, qP, jT, T)
    return True, At, Bt, Tt, nA, nB, nT


@numba.njit(cache=True)
def _save_p(x, A, B, T, R, C, qP, qQ):
    """Case save P, P held, row tile candidate x: (ok, At, Bt, Tt, nA, nB, nT)."""
    At, nA, jA = _tile(A, x)
    tt = _fit_by(T, qP, jA, A)
    if At > R:
        tt = _smaller(tt, _fitn(T, qQ))
    Tt, nT, jT = tt
    if Tt == 0:
        return False, At, 0, 0, nA, 0, 0
    Bt, nB = B, 1
    if At > R:
        Bt, nB, _j = _fit_by(B, qQ, jT, T)
    return True, At, Bt, Tt, nA, nB, nT


@numba.njit(cache=True)
def _save_s_tiled(x, A, B, T, R, C, qS, qP, qQ):
    """Case save S with T tiled (S held), row tile candidate x: (ok, At, Bt, Tt, nA, nB, nT)."""
    At, nA, jA = _tile(A, x)
    bb = _fit_by(B, qS, jA, A)
    if At > R:
        bb = _smaller(bb, _fitn(B, qQ))
    if At > qP:
        bb = _smaller(bb, _fitn(B, C))
    Bt, nB, jB = bb
    if Bt == 0:
        return False, At, 0, 0, nA, 0, 0
    tt = (T, 1, -1)
    if Bt > C:
        tt = _fit_by(T, qP, jA, A)
    if At > R:
        tt = _smaller(tt, _fit_by(T, qQ, jB, B))
    Tt, nT, _j = tt
    return True, At, Bt, Tt, nA, nB, nT


@numba.njit(cache=True)
def _cannot_win(e1, e2, prod, q, v):
    """True if ``e1 * (n1 - 1) + e2 * (n2 - 1) > v`` for every ``n1, n2 >= 1`` with
    ``n1 * n2 >= prod / q`` (the tiles of a held operand fit its SRAM).  By AM-GM the sum is
    at least ``2 * sqrt(e1 * e2 * prod / q) - e1 - e2``; tested squared, in floats, with a
    relative margin of 1e-9 against rounding (a doubtful case is walked)."""
    if prod <= q:
        return False
    s = float(v) + float(e1) + float(e2)
    return 4.0 * float(e1) * float(e2) * float(prod) > s * s * float(q) * (1.0 + 1e-9)


@numba.njit(cache=True)
def _order3(a, b, c):
    """Indices 0, 1, 2 sorted by the values a, b, c."""
    if a <= b:
        if b <= c:
            return (0, 1, 2)
        return (0, 2, 1) if a <= c else (2, 0, 1)
    if a <= c:
        return (1, 0, 2)
    return (1, 2, 0) if b <= c else (2, 1, 0)


@numba.njit(cache=True)
def map_roles(A, B, T, R, C, qS, qP, qQ, eS, eP, eQ):
    """Best mapping in role terms (same arguments and result as :func:`map_roles_scan`,
    for power-of-two R and C).

    Each case's traffic is ``e1 * (n1 - 1) + e2 * (n2 - 1)`` with n1 non-increasing and n2
    non-decreasing in the free tile's exponent x; the walk starts near the continuous
    optimum and stops in each direction once the monotone term alone exceeds the best
    traffic so far, so every candidate it skips is strictly worse: the result is the scan's.
    No integer division (tens of cycles each): tiles are powers of two or whole dims.
    """
    fA = (A + R - 1) >> _ilog2(R)
    fB = (B + C - 1) >> _ilog2(C)
    cmin = _cycles(A, T, fA, fB, 1, A, B, T, R, C)
    best = (INF, INF, -1, 1, 1, 1, 0, 0, 0)

    # save S, T untiled: nB is constant on the ranges of At split by At <= R and
    # At * T <= qP; the largest At of a range is its best (traffic and cycles fall with At).
    # tR, tP: the largest candidates <= R and <= qP // T; then the maxima of the non-empty
    # ranges are min(tR, tP), tR if tP < tR, tP if tP > R, and A if A > R.
    tR = _fitn(A, R)
    tP = _fit_div(A, qP, T)
    bQ = _fit_div(B, qQ, T)
    bC = _fitn(B, C)
    for k in range(4):
        if k == 0:
            ta = _smaller(tR, tP)
        elif k == 1:
            if tP[0] >= tR[0]:
                continue
            ta = tR
        elif k == 2:
            if tP[0] <= R:
                continue
            ta = tP
        else:
            if A <= R or tP[0] == A:
                continue
            ta = (A, 1, -1)
        At, nA, jA = ta
        if At == 0:
            continue
        bb = (B, 1, -1)
        if At > R:
            bb = bQ
        if At * T > qP:
            bb = _smaller(bb, bC)
        Bt, nB, jB = bb
        if Bt > 0:
            v = eP * (nB - 1) + eQ * (nA - 1)
            c = _cycles(At, T, max(fA, nA), max(fB, nB), 1, A, B, T, R, C)
            best = _keep(best, v, c, 0, At, Bt, T, nA, nB, 1, 0, 1 if Bt > C else 0, 1 if At > R else 0)
    if best[0] == 0 and best[1] == cmin:
        return _finish(best, A, B, T)
    # save Q, A <= R (Q streams): the largest Bt of each range (Bt <= C, Bt > C)
    if A <= R:
        Bt, nB, jB = bC
        c = _cycles(A, T, 1, max(fB, nB), 1, A, B, T, R, C)
        best = _keep(best, eP * (nB - 1), c, 2, A, Bt, T, 1, nB, 1, 0, 0, 0)
        if B > C:
            Tt, nT, jT = _fit_div(T, qP, A)
            if Tt > 0:
                c = _cycles(A, Tt, 1, fB, nT, A, B, T, R, C)
                best = _keep(best, eS * (nT - 1), c, 2, A, B, Tt, 1, 1, nT, 0, 1, 0)
    # save P, B <= C (P streams): the largest At of each range (At <= R, At > R)
    if B <= C:
        At, nA, jA = tR
        c = _cycles(At, T, max(fA, nA), 1, 1, A, B, T, R, C)
        best = _keep(best, eQ * (nA - 1), c, 1, At, B, T, nA, 1, 1, 0, 0, 0)
        if A > R:
            Tt, nT, jT = _fit_div(T, qQ, B)
            if Tt > 0:
                c = _cycles(A, Tt, fA, 1, nT, A, B, T, R, C)
                best = _keep(best, eS * (nT - 1), c, 1, A, B, Tt, 1, 1, nT, 0, 0, 1)

    EA = _nexp(A)
    EB = _nexp(B)
    # The three walks, most promising first; a walk whose lower bound (the tiles of its
    # held operand fit its SRAM, so n1 * n2 >= d1 * d2 / q, and AM-GM) exceeds the best
    # traffic so far cannot win and is skipped.
    # order by the bounds' leading term e1 * e2 * prod / q
    kQ = float(eS) * float(eP) * float(B * T) / max(qQ, 1)
    kP = float(eS) * float(eQ) * float(A * T) / max(qP, 1)
    kS = float(eP) * float(eQ) * float(A * B) / max(qS, 1)
    order = _order3(kQ, kP, kS)
    for w in order:
        if w == 0:
            if _cannot_win(eS, eP, B * T, qQ, best[0]):
                continue
            # save Q, Q held: walk the column tile
            x0 = _guess(eP, B, eS, T, qQ, EB)
            x = x0
            while x <= EB:
                ok, At, Bt, Tt, nA, nB, nT = _save_q(x, A, B, T, R, C, qP, qQ)
                if not ok or eS * (nT - 1) > best[0]:
                    break
                c = _cycles(At, Tt, max(fA, nA), max(fB, nB), nT, A, B, T, R, C)
                best = _keep(best, eS * (nT - 1) + eP * (nB - 1), c, 2, At, Bt, Tt, nA, nB, nT, 0,
                             1 if Bt > C else 0, 1)
                x += 1
            x = x0 - 1
            while x >= 0:
                if eP * (((B + (1 << x) - 1) >> x) - 1) > best[0]:
                    break
                ok, At, Bt, Tt, nA, nB, nT = _save_q(x, A, B, T, R, C, qP, qQ)
                if ok:
                    c = _cycles(At, Tt, max(fA, nA), max(fB, nB), nT, A, B, T, R, C)
                    best = _keep(best, eS * (nT - 1) + eP * (nB - 1), c, 2, At, Bt, Tt, nA, nB, nT, 0,
                                 1 if Bt > C else 0, 1)
                x -= 1
        elif w == 1:
            if _cannot_win(eS, eQ, A * T, qP, best[0]):
                continue
            # save P, P held: walk the row tile
            x0 = _guess(eQ, A, eS, T, qP, EA)
            x = x0
            while x <= EA:
                ok, At, Bt, Tt, nA, nB, nT = _save_p(x, A, B, T, R, C, qP, qQ)
                if not ok or eS * (nT - 1) > best[0]:
                    break
                c = _cycles(At, Tt, max(fA, nA), max(fB, nB), nT, A, B, T, R, C)
                best = _keep(best, eS * (nT - 1) + eQ * (nA - 1), c, 1, At, Bt, Tt, nA, nB, nT, 0, 1,
                             1 if At > R else 0)
                x += 1
            x = x0 - 1
            while x >= 0:
                if eQ * (((A + (1 << x) - 1) >> x) - 1) > best[0]:
                    break
                ok, At, Bt, Tt, nA, nB, nT = _save_p(x, A, B, T, R, C, qP, qQ)
                if ok:
                    c = _cycles(At, Tt, max(fA, nA), max(fB, nB), nT, A, B, T, R, C)
                    best = _keep(best, eS * (nT - 1) + eQ * (nA - 1), c, 1, At, Bt, Tt, nA, nB, nT, 0, 1,
                                 1 if At > R else 0)
                x -= 1
        else:
            if _cannot_win(eP, eQ, A * B, qS, best[0]):
                continue
            # save S, T tiled (S held): walk the row tile
            x0 = _guess(eQ, A, eP, B, qS, EA)
            x = x0
            while x <= EA:
                ok, At, Bt, Tt, nA, nB, nT = _save_s_tiled(x, A, B, T, R, C, qS, qP, qQ)
                if not ok or eP * (nB - 1) > best[0]:
                    break
                c = _cycles(At, Tt, max(fA, nA), max(fB, nB), nT, A, B, T, R, C)
                best = _keep(best, eP * (nB - 1) + eQ * (nA - 1), c, 0, At, Bt, Tt, nA, nB, nT,
                             1 if Tt < T else 0, 1 if Bt > C else 0, 1 if At > R else 0)
                x += 1
            x = x0 - 1
            while x >= 0:
                if eQ * (((A + (1 << x) - 1) >> x) - 1) > best[0]:
                    break
                ok, At, Bt, Tt, nA, nB, nT = _save_s_tiled(x, A, B, T, R, C, qS, qP, qQ)
                if ok:
                    c = _cycles(At, Tt, max(fA, nA), max(fB, nB), nT, A, B, T, R, C)
                    best = _keep(best, eP * (nB - 1) + eQ * (nA - 1), c, 0, At, Bt, Tt, nA, nB, nT,
                                 1 if Tt < T else 0, 1 if Bt > C else 0, 1 if At > R else 0)
                x -= 1
    return _finish(best, A, B, T)


@numba.njit(cache=True)
def map_gemm(M, K, N, R, C, df, q_if, q_fl, q_of, a_bits, w_bits, psum_bits):
    """Best mapping of the GEMM ``(M x K) @ (K x N)`` on an R x C array (dataflow code df;
    R and C powers of two).

    ``q_if, q_fl, q_of``: capacity of the active half of each SRAM in elements (ifmap at
    ``a_bits``, filter at ``w_bits``, ofmap as ``psum_bits`` partial sums).  Returns
    ``(compute, ifmap_sram_reads, filter_sram_reads, ofmap_sram_writes, psum_sram_reads,
    dram_read_bits, dram_write_bits, tile_m, tile_k, tile_n, case, passes_if, passes_fl,
    passes_of, held_mask, array_passes, fill_drain)``: word counts are array-side SRAM
    accesses, ``passes_*`` how often each operand crosses the DRAM interface, ``held_mask``
    bit 0/1/2 = the ifmap/filter/ofmap tile is held in its SRAM, ``array_passes`` the passes of
    the array and ``fill_drain`` the cycles the array is not streaming (compute = fill_drain + row
    passes * column passes * T: the once-per-GEMM skew and height ``R + min(B, C) - 2`` and the
    passes whose stationary shift ``a`` outlasts their stream ``t``; see :func:`_cycles`).
    """
    mk = M * K
    kn = K * N
    mn = M * N
    e_if = mk * a_bits
    e_fl = kn * w_bits
    e_of = 2 * psum_bits * mn
    lR = _ilog2(R)
    lC = _ilog2(C)
    if df == 0:    # os: A = M, B = N, T = K; S = ofmap, P = ifmap, Q = filter
        r = map_roles(M, N, K, R, C, q_of, q_if, q_fl, e_of, e_if, e_fl)
        _v, comp, case, At, Bt, Tt, mS, mP, mQ, hS, hP, hQ, nA, nB, nT = r
        tm, tk, tn = At, Tt, Bt
        p_if, p_fl, p_of = mP, mQ, mS
        held = hP | (hQ << 1) | (hS << 2)
        PA = max((M + R - 1) >> lR, nA)
        PB = max((N + C - 1) >> lC, nB)
        u_if, u_fl, u_of = PB, PA, nT
    elif df == 1:  # ws: A = K, B = N, T = M; S = filter, P = ifmap, Q = ofmap
        r = map_roles(K, N, M, R, C, q_fl, q_if, q_of, e_fl, e_if, e_of)
        _v, comp, case, At, Bt, Tt, mS, mP, mQ, hS, hP, hQ, nA, nB, nT = r
        tm, tk, tn = Tt, At, Bt
        p_if, p_fl, p_of = mP, mS, mQ
        held = hP | (hS << 1) | (hQ << 2)
        PA = max((K + R - 1) >> lR, nA)
        PB = max((N + C - 1) >> lC, nB)
        u_if, u_fl, u_of = PB, nT, PA
    else:          # is: A = K, B = M, T = N; S = ifmap, P = filter, Q = ofmap
        r = map_roles(K, M, N, R, C, q_if, q_fl, q_of, e_if, e_fl, e_of)
        _v, comp, case, At, Bt, Tt, mS, mP, mQ, hS, hP, hQ, nA, nB, nT = r
        tm, tk, tn = Bt, At, Tt
        p_if, p_fl, p_of = mS, mP, mQ
        held = hS | (hP << 1) | (hQ << 2)
        PA = max((K + R - 1) >> lR, nA)
        PB = max((M + C - 1) >> lC, nB)
        u_if, u_fl, u_of = nT, PB, PA
    # array-side SRAM accesses: the row-side operand is read once per column fold, the
    # column-side one once per row fold, the stationary one once per streamed tile; outputs
    # are written once per pass over them and read back as partial sums
    rd = e_if * p_if + e_fl * p_fl + psum_bits * mn * (p_of - 1)
    wr = mn * a_bits + psum_bits * mn * (p_of - 1)
    return (comp, mk * u_if, kn * u_fl, mn * u_of, mn * (u_of - 1), rd, wr, tm, tk, tn, case,
            p_if, p_fl, p_of, held, PA * PB * nT, comp - PA * PB * (K if df == 0 else (M if df == 1 else N)))
