"""Numba kernels of the ternary datapath (integer only, so no float-order concerns)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def accumulate_packed(q, codes, k, lo, hi, acc, first_overflow):  # pragma: no cover - jitted
    """acc[m, n] = sum_k q[m, k] * t[n, k] by add / subtract / skip on packed 2-bit codes.

    q: int8 [M, K]; codes: uint8 [N, ceil(K/4)] (00 = 0, 01 = +1, 11 = -1, LSB first);
    lo, hi: accumulator range. The sum is exact (int64); first_overflow[m, n] is the first
    k whose partial sum left [lo, hi], or -1. Codes must be validated by the caller.
    """
    m_rows = q.shape[0]
    n_rows = codes.shape[0]
    n_bytes = codes.shape[1]
    for m in range(m_rows):
        for n in range(n_rows):
            a = np.int64(0)
            first = np.int64(-1)
            for kb in range(n_bytes):
                byte = codes[n, kb]
                if byte == 0:
                    continue  # four skips
                for j in range(4):
                    kk = kb * 4 + j
                    if kk >= k:
                        break
                    code = (byte >> (2 * j)) & 3
                    if code == 1:
                        a += q[m, kk]
                    elif code == 3:
                        a -= q[m, kk]
                    else:
                        continue
                    if first < 0 and (a < lo or a > hi):
                        first = kk
            acc[m, n] = a
            first_overflow[m, n] = first
