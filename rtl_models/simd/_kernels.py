"""Numba kernel of the SMMW packed GEMM (see ``gemm.py`` for the public API).

Bit-exact: all lane arithmetic is unsigned 64-bit integer work masked to the
lane width after every instruction; no floats, no fastmath.  The slow
reference is :class:`rtl_models.simd.layout.SMMWLane` (tests compare both).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def smmw_gemm_kernel(a_u, w_packed, operand_mask, lane_mask, spread_shift, spread_mask,
                     field_bits, drain_every, acc_max):
    """Run every lane of ``C_u = A_u @ W_u`` through MUL/LSL/ORR/AND/ADD.

    a_u: (M, K) int64 unsigned activation codes.
    w_packed: (K, P) int64 packed operands (weight 2p low, 2p+1 high).
    Scalars are uint64 masks/shifts (field_bits, drain_every, acc_max int64).
    Returns (out (M, 2P) int64 field sums, carry int64[5] = flag, m, k, p, kind)
    where kind 1 = field carry, 2 = wide accumulator overflow; the first event
    is recorded and emulation continues with the wrapped hardware values.
    """
    m_rows, k_len = a_u.shape
    n_pairs = w_packed.shape[1]
    out = np.zeros((m_rows, 2 * n_pairs), dtype=np.int64)
    carry = np.zeros(5, dtype=np.int64)
    fb = np.uint64(field_bits)
    fmask = (np.uint64(1) << fb) - np.uint64(1)
    zero = np.uint64(0)
    for m in range(m_rows):
        for p in range(n_pairs):
            acc = zero
            cnt = 0
            w0 = np.int64(0)
            w1 = np.int64(0)
            for k in range(k_len):
                x = np.uint64(w_packed[k, p])
                a = np.uint64(a_u[m, k])
                prod = (x * a) & operand_mask          # MUL
                prod = prod & lane_mask                # zero-extend into the lane
                t = (prod << spread_shift) & lane_mask  # LSL
                prod = (prod | t) & lane_mask          # ORR
                prod = prod & spread_mask              # AND
                f0o = acc & fmask
                f1o = (acc >> fb) & fmask
                f0a = prod & fmask
                f1a = (prod >> fb) & fmask
                if (f0o + f0a > fmask or f1o + f1a > fmask) and carry[0] == 0:
                    carry[0] = 1
                    carry[1] = m
                    carry[2] = k
                    carry[3] = p
                    carry[4] = 1
                acc = (acc + prod) & lane_mask         # ADD
                cnt += 1
                if cnt == drain_every or k == k_len - 1:
                    w0 += np.int64(acc & fmask)        # AND + wide ADD
                    w1 += np.int64((acc >> fb) & fmask)  # LSR + wide ADD
                    if (w0 > acc_max or w1 > acc_max) and carry[0] == 0:
                        carry[0] = 1
                        carry[1] = m
                        carry[2] = k
                        carry[3] = p
                        carry[4] = 2
                    w0 &= acc_max  # the wide register wraps like the hardware
                    w1 &= acc_max
                    acc = zero                         # MOV #0
                    cnt = 0
            out[m, 2 * p] = w0
            out[m, 2 * p + 1] = w1
    return out, carry
