"""Numba kernels for the BitMoD per-group datatype search (fast path of quantizer.py).

Every arithmetic result is formed in float64 and rounded once to the compute dtype. For
+, -, *, / of operands that are already in a p-bit format, rounding the float64 result
(53 bits >= 2p + 2) to p bits equals the correctly rounded p-bit operation (Figueroa's
double-rounding theorem), so this reproduces native float16/float32 arithmetic bit for bit.
The slow numpy reference is ``quantizer._search_numpy``; tests compare the two.
"""

from __future__ import annotations

import math

import numba
import numpy as np

MODE_F16, MODE_F32, MODE_F64 = 0, 1, 2


@numba.njit(cache=True)
def rnd(x, mode):
    """Round a float64 to float16 (mode 0), float32 (1) or keep it (2); RNE, IEEE overflow."""
    if mode == 2:
        return x
    if mode == 1:
        return np.float64(np.float32(x))
    if x != x or x == 0.0 or math.isinf(x):
        return x
    a = abs(x)
    _, e = math.frexp(a)  # a = m * 2**e with 0.5 <= m < 1: leading bit has weight 2**(e-1)
    ulp = 2.0 ** (max(e - 1, -14) - 10)  # float16 ulp (normal: 10 fraction bits; subnormal 2**-24)
    r = np.rint(a / ulp) * ulp  # power-of-two scalings are exact
    if r > 65504.0:  # ties at 65520 went to 65536 by rint (even): both overflow to inf
        r = np.inf
    return r if x > 0 else -r


@numba.njit(cache=True)
def search_groups(w, vals, nvals, mids, qmax, is_int, mode, lo, hi, codes_out, sel_out, scale_out):
    """Per-group min-MSE datatype search over candidate sets (published ``search_datatype``).

    w: (n, G) float64 holding compute-dtype values; vals/mids: (n_cand, V)/(n_cand, V-1)
    padded tables; nvals: set sizes; qmax: per-candidate max |value|. Writes int codes,
    the selector (first candidate with the strictly smallest rounded MSE) and the scale.
    """
    n, g_size = w.shape
    n_cand = vals.shape[0]
    tmp = np.empty(g_size, np.int64)
    dq_tab = np.empty(vals.shape[1])
    for g in range(n):
        rmax = 0.0
        for i in range(g_size):
            a = abs(w[g, i])
            if a > rmax:
                rmax = a
        best = -1
        best_err = 0.0
        for c in range(n_cand):
            s = rnd(rmax / qmax[c], mode)
            if s < lo:
                s = lo
            if s > hi:
                s = hi
            if not is_int:
                for k in range(nvals[c]):  # rd(code * s) for each of the set's codes
                    dq_tab[k] = rnd(vals[c, k] * s, mode)
            acc = 0.0  # sequential float64 sum: exact for float16 squares (see quantizer.py)
            for i in range(g_size):
                x = rnd(w[g, i] / s, mode)
                if is_int:
                    q = np.rint(x)
                    if q > qmax[c]:
                        q = qmax[c]
                    if q < -qmax[c]:
                        q = -qmax[c]
                    dq = rnd(q * s, mode)
                else:
                    k = 0
                    while k < nvals[c] - 1 and mids[c, k] < x:
                        k += 1
                    q = vals[c, k]
                    dq = dq_tab[k]
                tmp[i] = np.int64(q)
                d = rnd(dq - w[g, i], mode)
                acc += rnd(d * d, mode)
            if mode != MODE_F64:  # float32 sum and divide, then the compute dtype (torch mean)
                err = rnd(rnd(rnd(acc, MODE_F32) / g_size, MODE_F32), mode)
            else:
                err = acc / g_size
            if best < 0 or err < best_err:
                best = c
                best_err = err
                scale_out[g] = s
                for i in range(g_size):
                    codes_out[g, i] = tmp[i]
        sel_out[g] = best
