"""Integer numba kernels of the vectorised BitMoD PE path (``fast.py``); no fastmath.

* :func:`pe_rows`: the finite-width PE on int64 mantissas, the previous fast path, kept as the
  reference the float-lane kernel (``_float_kernels.py``) is tested against;
* :func:`fsum_rows`: ``math.fsum`` per row, the previous exact-PE path, kept as the reference of
  the exact PE's kernel (``_exact_kernels.py``).

The slow reference is :class:`~rtl_models.bitmod.pe.BitmodPE` (Python ints, one cycle per
step); the tests compare the kernels with it on random and edge-case inputs. The value ``m * 2**x`` of a
register is carried as an int64 mantissa ``m`` and an int exponent ``x``, exactly as the slow
model carries Python ints, with one difference: the slow model adds two values by shifting
the one with the larger exponent left by the full exponent difference (unbounded Python
ints); here a difference above ``_EXACT_SHIFT`` bits is handled by a sticky compression that
provably yields the same rounded result (see :func:`add_round`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from archgym.numba_bits import ctlz as _ctlz

__all__ = ["pe_rows", "pe_rows_serial", "fsum_rows", "fsum_rows_serial", "add_round", "round_to", "bitlen"]

_EXACT_SHIFT = 30  # exponent differences up to this are added exactly in int64



@numba.njit(cache=True, inline="always")
def bitlen(a):
    """Bit length of a non-negative int64 (Python's ``int.bit_length``)."""
    return 64 - _ctlz(a)


@numba.njit(cache=True, inline="always")
def round_to(m, x, p, trunc):
    """``m * 2**x`` rounded to ``p`` magnitude bits: ``pe._round`` with width ``p + 1``.

    RNE on the magnitude (renormalising a round-up to ``2**p``), or floor (an arithmetic
    shift, the two's-complement register's truncation).
    """
    a = -m if m < 0 else m
    n = bitlen(a)
    if n <= p:
        return m, x
    k = n - p
    if trunc:
        return m >> k, x + k
    q = a >> k
    r = a - (q << k)
    half = np.int64(1) << (k - 1)
    if r > half or (r == half and (q & 1) == 1):
        q += 1
    if (q >> p) != 0:
        q >>= 1
        k += 1
    return (-q if m < 0 else q), x + k


@numba.njit(cache=True, inline="always")
def add_round(m1, x1, m2, x2, p, trunc):
    """``round_to(m1*2**x1 + m2*2**x2, p)`` for mantissas of at most 26 bits and ``p <= 25``.

    Equal to the slow model's ``_round(*_add(...))``. If the exponents differ by more than
    ``_EXACT_SHIFT`` (> bits of the smaller operand S + 1), then ``|S| < 2**(x1 - 1)`` for the
    larger operand L = m1*2**x1, so ``|L + S| > 2**(x1-1)`` and rounding to p bits happens at a
    position ``r >= x1 - p``. Replace S by ``floor(S / 2**q) * 2**q + sticky * 2**(q-1)`` with
    ``q = x1 - p - 1``: L is a multiple of ``2**q``, so L + S and the replacement lie in the same
    interval ``[j 2**q, (j+1) 2**q)``, both exactly on its left end or both strictly inside. Every
    rounding boundary and half point at ``r >= q + 1`` is a multiple of ``2**q``, and so is every
    power of two that could change the bit length, so RNE, floor and the bit length agree.
    """
    if m2 == 0:
        return round_to(m1, x1, p, trunc)
    if m1 == 0:
        return round_to(m2, x2, p, trunc)
    if x1 < x2:
        m1, x1, m2, x2 = m2, x2, m1, x1
    d = x1 - x2
    if d <= _EXACT_SHIFT:
        return round_to((m1 << d) + m2, x2, p, trunc)
    q = x1 - p - 1
    sh = q - x2
    if sh >= 62:
        fl = np.int64(-1) if m2 < 0 else np.int64(0)
        sticky = np.int64(1)
    else:
        fl = m2 >> sh
        sticky = np.int64(1) if (fl << sh) != m2 else np.int64(0)
    return round_to((m1 << (p + 2)) + (fl << 1) + sticky, q - 1, p, trunc)


@numba.njit(cache=True, inline="always")
def _rne_up(a, k, notrunc):
    """1 if RNE rounds the magnitude ``a >> k`` up (0 when truncating, ``notrunc == 0``).

    Branch-free so that the token loop below vectorises; ``k`` must be in 0..62.
    """
    q = a >> k
    r = a - (q << k)
    half = (np.int64(1) << k) >> 1
    return ((r > half) | ((r == half) & (half != 0) & ((q & 1) == 1))) * notrunc


@numba.njit(cache=True, inline="always")
def _lane(mag, k, w, neg, notrunc):
    """One lane of a cycle: ``pe._rshift_mag(mag, k)`` with the product's sign, 0 if the
    term's mantissa bit is 0. ``mag < 2**20``, so shifts beyond 31 give 0 either way.

    RNE without compares: with one appended zero bit the shift is >= 1, and
    ``RNE(v / 2**k) = (2v + 2**k - 1 + lsb) >> (k + 1)``, lsb = bit k of v (0 when truncating).
    """
    kc = min(k, 31)
    q = ((mag << 1) + ((np.int64(1) << kc) - 1 + ((mag >> kc) & 1)) * notrunc) >> (kc + 1)
    q = q if (w > 0) != neg else -q
    return q * (w != 0)


def _pe_rows(codes, term_m, term_e, bsig, mag, a_exp, a_neg, scale_m, scale_x, has_ch, ch_m, ch_x,
            group, g_bits, p_acc, p_deq, p_out, trunc, out_m, out_x):
    """Every (token, output channel) of the BitMoD PE with finite widths (``pe.BitmodPE._run``).

    codes: int8 [N, C] weight codes; term_m / term_e: int8 [256, S] signed mantissa bit
    (-1, 0, +1) and exponent of term slot s of code ``c`` at row ``c + 128``; bsig: int64 [S];
    mag: int64 [C, T] activation significand << guard bits; a_exp: int64 [C, T] effective biased
    exponent; a_neg: bool [C, T] sign (token-minor, so the token loop reads contiguous memory);
    scale_m / scale_x: int64 [N, NG] group scale multiplier and its exponent; has_ch: multiply by
    the channel scale ch_m / ch_x (int64 [N]) at the end; p_*: magnitude bits (width - 1) of the
    group accumulator, dequant and output registers. Writes ``(out_m, out_x)`` [T, N].

    Loop order: rows in parallel; per row, group, lane group and term slot, the weight terms are
    read once and the tokens run innermost as independent, branch-free iterations (vectorised
    by LLVM). A cycle whose four terms all have a zero mantissa adds 0 and is skipped: adding 0
    to an already rounded accumulator leaves its value unchanged.
    """
    n_rows, c_len = codes.shape
    n_tok = mag.shape[1]
    n_terms = bsig.shape[0]
    n_groups = c_len // group
    nt = np.int64(0) if trunc else np.int64(1)
    for r in prange(n_rows):
        om = np.zeros(n_tok, np.int64)
        ox = np.zeros(n_tok, np.int64)
        am = np.zeros(n_tok, np.int64)
        ax = np.zeros(n_tok, np.int64)
        for g in range(n_groups):
            am[:] = 0
            ax[:] = 0
            for j in range(group // 4):
                c0 = g * group + 4 * j
                k0 = np.int64(codes[r, c0]) + 128
                k1 = np.int64(codes[r, c0 + 1]) + 128
                k2 = np.int64(codes[r, c0 + 2]) + 128
                k3 = np.int64(codes[r, c0 + 3]) + 128
                for s in range(n_terms):
                    w0 = np.int64(term_m[k0, s])
                    w1 = np.int64(term_m[k1, s])
                    w2 = np.int64(term_m[k2, s])
                    w3 = np.int64(term_m[k3, s])
                    if w0 == 0 and w1 == 0 and w2 == 0 and w3 == 0:
                        continue
                    t0 = np.int64(term_e[k0, s])
                    t1 = np.int64(term_e[k1, s])
                    t2 = np.int64(term_e[k2, s])
                    t3 = np.int64(term_e[k3, s])
                    xb = bsig[s] - 25 - g_bits
                    for t in range(n_tok):
                        # stages 1-2: exponent match over all four lanes, aligned signed lane sum
                        e0 = a_exp[c0, t] + t0
                        e1 = a_exp[c0 + 1, t] + t1
                        e2 = a_exp[c0 + 2, t] + t2
                        e3 = a_exp[c0 + 3, t] + t3
                        emax = max(max(e0, e1), max(e2, e3))
                        m2 = (_lane(mag[c0, t], emax - e0, w0, a_neg[c0, t], nt)
                              + _lane(mag[c0 + 1, t], emax - e1, w1, a_neg[c0 + 1, t], nt)
                              + _lane(mag[c0 + 2, t], emax - e2, w2, a_neg[c0 + 2, t], nt)
                              + _lane(mag[c0 + 3, t], emax - e3, w3, a_neg[c0 + 3, t], nt))
                        x2 = emax + xb  # the cycle's sum is at exponent emax - 25 - guard + bsig
                        # stage 3: group accumulator, add_round written out branch-free
                        m1 = am[t]
                        x1 = ax[t]
                        x1 = x2 if m1 == 0 else x1      # a zero operand takes the other's exponent
                        x2 = x1 if m2 == 0 else x2
                        sw = x1 < x2
                        hm = m2 if sw else m1
                        lm = m1 if sw else m2
                        lx = x1 if sw else x2
                        d = (x2 - x1) if sw else (x1 - x2)
                        m = (hm << min(d, _EXACT_SHIFT)) + lm
                        # beyond the exact window: the sticky compression of add_round
                        shc = min(max(d - p_acc - 1, 0), 62)
                        la = -lm if lm < 0 else lm
                        msk = (np.int64(1) << shc) - 1
                        fl = -((la + msk) >> shc) if lm < 0 else la >> shc
                        far = d > _EXACT_SHIFT
                        m = ((hm << (p_acc + 2)) + 2 * fl + np.int64((la & msk) != 0)) if far else m
                        lx = (lx + d - p_acc - 2) if far else lx
                        neg = m < 0
                        a = -m if neg else m
                        k = max(64 - _ctlz(a) - p_acc, 0)
                        # RNE (renormalising a round-up to 2**p) or floor of the signed value
                        q = (a >> k) + _rne_up(a, k, nt)
                        o = q >> p_acc
                        q = (q >> o) if nt == 1 else (((a + (np.int64(1) << k) - 1) >> k) if neg else (a >> k))
                        o = o * nt
                        am[t] = -q if neg else q
                        ax[t] = lx + k + o
            for t in range(n_tok):           # stages 4-5: dequant, output accumulator
                dm, dx = round_to(am[t] * scale_m[r, g], ax[t] + scale_x[r, g], p_deq, trunc)
                om[t], ox[t] = add_round(om[t], ox[t], dm, dx, p_out, trunc)
        for t in range(n_tok):
            m_ = om[t]
            x_ = ox[t]
            if has_ch:
                m_, x_ = round_to(m_ * ch_m[r], x_ + ch_x[r], p_out, trunc)
            out_m[t, r] = m_
            out_x[t, r] = x_


def _fsum_rows(pieces, out):
    """``out[i] = math.fsum(pieces[i])``: the correctly rounded sum of each row (CPython's
    ``msum`` with its half-even fix-up across partials; finite inputs, no overflow)."""
    n_rows, n = pieces.shape
    for row in prange(n_rows):
        partials = np.empty(n + 1)
        m = 0
        for j in range(n):
            x = pieces[row, j]
            i = 0
            for p in range(m):
                y = partials[p]
                if abs(x) < abs(y):
                    x, y = y, x
                hi = x + y
                lo = y - (hi - x)
                if lo != 0.0:
                    partials[i] = lo
                    i += 1
                x = hi
            partials[i] = x
            m = i + 1
        if m == 0:
            out[row] = 0.0
            continue
        k = m - 1
        hi = partials[k]
        lo = 0.0
        while k > 0:
            x = hi
            k -= 1
            y = partials[k]
            hi = x + y
            yr = hi - x
            lo = y - yr
            if lo != 0.0:
                break
        if k > 0 and ((lo < 0.0 and partials[k - 1] < 0.0) or (lo > 0.0 and partials[k - 1] > 0.0)):
            y = lo * 2.0
            x = hi + y
            yr = x - hi
            if y == yr:
                hi = x
        out[row] = hi


# One body, two compilations: the threaded one for layers, a serial one for small inputs (a
# validation case), where starting the thread pool costs more than the work.
pe_rows = numba.njit(cache=True, parallel=True)(_pe_rows)
pe_rows_serial = numba.njit(cache=True)(_pe_rows)
fsum_rows = numba.njit(cache=True, parallel=True)(_fsum_rows)
fsum_rows_serial = numba.njit(cache=True)(_fsum_rows)
