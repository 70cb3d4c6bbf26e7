"""Numba kernel of the exact BitMoD PE (``PEConfig.exact()``, the fast path of ``fast.py``).

The exact PE returns the exact dot product ``sum_g (sum_c a_c q_c) * scale_g`` rounded once to
float64. Per (row, token), in one threaded pass with the tokens of a block in SIMD lanes:

* chunk dot products ``sum_c a_c q_c`` in float64 over at most 128 ext-FP / 16 INT6-INT8 weights
  (``fast.py`` module doc: every partial sum is a multiple of ``2**-24`` below ``2**28``, so
  exact in any order), so ``D = dot * 2**24`` is an exact integer below ``2**52``;
* ``D * s`` with the group scale's integer significand ``s < 2**11`` (FP16 scale) or its 8-bit
  code (INT8 scales) fits int64 and is added exactly, shifted by the scale's exponent
  ``sh = e - 1`` (0..29; INT8: 0), into a two-limb integer ``H * 2**52 + L`` (:func:`limb_add`);
* :func:`limbs_to_float` multiplies by the INT8 path's channel significand and rounds once.

The slow reference is :class:`~rtl_models.bitmod.pe.BitmodPE` with ``PEConfig.exact()``; the
tests also compare with the previous formulation (Dekker pieces and ``math.fsum``,
``fast._exact_fsum``) and with ``fractions.Fraction`` sums.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._fast_kernels import bitlen

__all__ = ["exact_rows", "limb_add", "limbs_to_float"]

_LIMB = 52          # H * 2**52 + L with 0 <= L < 2**52
_TB_MAX = 32        # two rows of 16 token lanes


@intrinsic
def _stack_f64(typingctx):
    """A float64[32] on the stack: per-(row, token) dot products (no aliasing with the inputs)."""
    sig = types.CPointer(types.float64)()

    def codegen(context, builder, signature, args):
        ptr = cgutils.alloca_once(builder, ir.ArrayType(ir.DoubleType(), _TB_MAX))
        return builder.bitcast(ptr, ir.PointerType(ir.DoubleType()))

    return sig, codegen


@intrinsic
def _stack_i64(typingctx):
    """An int64[32] on the stack: one limb per (row, token)."""
    sig = types.CPointer(types.int64)()

    def codegen(context, builder, signature, args):
        ptr = cgutils.alloca_once(builder, ir.ArrayType(ir.IntType(64), _TB_MAX))
        return builder.bitcast(ptr, ir.PointerType(ir.IntType(64)))

    return sig, codegen


@numba.njit(cache=True, inline="always")
def limb_add(h, lo, p, sh):
    """``(h, lo)`` plus ``p * 2**sh`` exactly: ``p`` int64, ``0 <= sh <= 29``, ``0 <= lo < 2**52``.

    The low ``52 - sh`` bits of ``p`` (non-negative: ``p`` is split by floor) go to ``lo`` at
    ``2**sh``, the rest to ``h``; ``lo`` stays below ``2**53`` and is renormalised.
    """
    rs = _LIMB - sh
    ll = lo + ((p & ((np.int64(1) << rs) - 1)) << sh)
    c = ll >> _LIMB
    return h + (p >> rs) + c, ll - (c << _LIMB)


@numba.njit(cache=True, inline="always")
def limbs_to_float(h, lo, m, e):
    """``(h * 2**52 + lo) * m * 2**e`` rounded once to float64 (RNE); ``|h| < 2**51``, ``m < 2**11``.

    ``|V| = a * 2**52 + f`` after the multiply (``0 <= f < 2**52``): if ``a < 2**53`` both
    ``a * 2**52`` and ``f`` are floats exactly and their float sum is the correctly rounded
    ``|V|``; otherwise ``f`` is below half an ulp and only breaks ties (a sticky bit), and ``a``
    is rounded in integers.
    """
    hh = h * m
    ll = lo * m                                 # < 2**63
    c = ll >> _LIMB
    hh += c
    ll -= c << _LIMB
    neg = hh < 0
    a = -hh if neg else hh
    f = ll
    if neg and ll != 0:                         # -(a * 2**52 - ll) = -((a-1) * 2**52 + (2**52 - ll))
        a -= 1
        f = (np.int64(1) << _LIMB) - ll
    if a < (np.int64(1) << 53):
        v = float(a) * 4503599627370496.0 + float(f)   # 2**52; one rounding
    else:
        k = bitlen(a) - 53
        q = a >> k
        rem = a - (q << k)
        half = np.int64(1) << (k - 1)
        if rem > half or (rem == half and (f != 0 or (q & 1) == 1)):
            q += 1
        v = float(q) * 2.0 ** k * 4503599627370496.0
    v = -v if neg else v
    return np.ldexp(v, e)


@numba.njit(cache=True, inline="always")
def _block(r0, r1, codes, a, s_k, sh_k, mul_k, exp_k, group, chunk, out, tb):
    """Rows ``r0:r1`` of every token block (module doc), two rows per pass so that each loaded
    activation serves two products (an odd last row is paired with itself)."""
    n_tb = a.shape[0]
    tb_rt = a.shape[2]  # == tb; a runtime trip count keeps LLVM from fully unrolling (then not
    #                     re-vectorising) the dot-product loop
    n_groups = codes.shape[1] // group
    dot = numba.carray(_stack_f64(), (2, tb))
    h = numba.carray(_stack_i64(), (2, tb))
    lo = numba.carray(_stack_i64(), (2, tb))
    for b in range(n_tb):
        for ra in range(r0, r1, 2):
            rb = min(ra + 1, r1 - 1)
            for t in range(tb):
                h[0, t] = 0
                lo[0, t] = 0
                h[1, t] = 0
                lo[1, t] = 0
            for g in range(n_groups):
                end = (g + 1) * group
                for c0 in range(g * group, end, chunk):
                    for t in range(tb):
                        dot[0, t] = 0.0
                        dot[1, t] = 0.0
                    for c in range(c0, min(c0 + chunk, end)):
                        wa = np.float64(codes[ra, c])
                        wb = np.float64(codes[rb, c])
                        for t in range(tb_rt):
                            x = a[b, c, t]
                            dot[0, t] += x * wa             # exact (module doc)
                            dot[1, t] += x * wb
                    for i in range(2):
                        r = ra if i == 0 else rb
                        sc = s_k[r, g]
                        sh = sh_k[r, g]
                        for t in range(tb):
                            p = np.int64(dot[i, t] * 16777216.0) * sc      # D * s, D = dot * 2**24
                            h[i, t], lo[i, t] = limb_add(h[i, t], lo[i, t], p, sh)
            for t in range(tb):
                out[b, t, ra] = limbs_to_float(h[0, t], lo[0, t], mul_k[ra], exp_k[ra])
                out[b, t, rb] = limbs_to_float(h[1, t], lo[1, t], mul_k[rb], exp_k[rb])


def _rows16(codes, a, s_k, sh_k, mul_k, exp_k, group, chunk, out, rpb):
    n = codes.shape[0]
    for blk in prange((n + rpb - 1) // rpb):
        _block(blk * rpb, min(blk * rpb + rpb, n), codes, a, s_k, sh_k, mul_k, exp_k, group, chunk, out, 16)


def _rows4(codes, a, s_k, sh_k, mul_k, exp_k, group, chunk, out, rpb):
    n = codes.shape[0]
    for blk in prange((n + rpb - 1) // rpb):
        _block(blk * rpb, min(blk * rpb + rpb, n), codes, a, s_k, sh_k, mul_k, exp_k, group, chunk, out, 4)


# token-block width 16 or 4, threaded (layers) or serial (small inputs); compiled on first use
_KERNELS = {(tb, par): numba.njit(cache=True, parallel=par)(fn)
            for tb, fn in ((16, _rows16), (4, _rows4)) for par in (True, False)}


def exact_rows(codes, a, s_k, sh_k, mul_k, exp_k, group, chunk, out, rows_per_block, parallel):
    """The exact PE for every (token, output row) (module doc).

    codes: int8 [N, C]; a: float64 [B, C, TB] FP16 activations per token block of TB = 16 or 4;
    s_k / sh_k: int64 [N, NG] scale multipliers (``< 2**11``) and shifts (0..29); mul_k / exp_k:
    int64 [N] the final multiplier (``< 2**11``) and power of two; chunk: weights per exact
    float64 chunk (16 or 128, at most ``group``). Writes out float64 [B, TB, N]; rows in blocks
    of ``rows_per_block``, one per task, threaded if ``parallel``.
    """
    tb = a.shape[2]
    if tb not in (4, 16):
        raise ValueError(f"token block {tb}: need 4 or 16")
    _KERNELS[(tb, bool(parallel))](codes, a, s_k, sh_k, mul_k, exp_k, group, chunk, out, rows_per_block)
