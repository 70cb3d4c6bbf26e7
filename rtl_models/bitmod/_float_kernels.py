"""Float-lane numba kernel of the BitMoD PE with finite widths (the fast path of ``fast.py``).

Same arithmetic as the cycle-stepped :class:`~rtl_models.bitmod.pe.BitmodPE` (the slow
reference) and as the int64 kernel ``_fast_kernels.pe_rows`` (the previous fast path, kept as a
second reference); the tests compare all three. Here every PE step is a few branch-free SIMD
instructions with one (row, token) per vector lane, because every register value of the PE is
``m * 2**x`` with ``|m| < 2**26`` and ``x`` within a few dozen of 0 (FP16 exponents): such a value
is a float exactly, so the hardware's alignment and normalisation are the float unit's and only
the PE's narrow roundings need integer work on the IEEE bit pattern.

* Stages 1-2 (exponent match, aligned 4-lane sum) in float32: with ``Z_i = act_i * 2**(25+g)``
  (an 11-bit significand), the weight term ``W_i = ±2**(exp_i + bsig)`` (0 for a zero term) and
  ``inv = 2**-(emax + bsig)``, lane i contributes ``rint(Z_i * W_i * inv)`` (``trunc`` when
  truncating) ``= round(sig_i * 2**(g + e_i - emax))``: both products are exact power-of-two
  scalings, ``rint`` rounds half to even, every value stays a normal float32. ``2**(emax+bsig)``
  is the float max of ``2**ea_i * 2**(exp_i + bsig)`` over the four lanes (zero terms and zero
  activations included, as the hardware's max is) and ``inv`` its reciprocal by subtracting bit
  patterns (``bits(2**-k) = 0x7F000000 - bits(2**k)``). The sum ``S`` (an integer below
  ``2**(13+g) <= 2**21``) times ``2**(emax + bsig)`` is exact: the cycle value scaled by
  ``2**(25+g)``. The group accumulator is kept at that scale (rounding to ``p`` bits is
  scale-invariant; the dequant multiplier absorbs ``2**-(25+g)``).
* Stage 3 (group accumulator) in float64, in one of two forms per (token block, group):
  *exact adds* (:func:`round_exact`) where ``acc + cycle`` is provably exact in float64
  (``fast._safe_blocks``: all values are multiples of ``2**Q`` and below ``2**(Q+53)``), else
  *TwoSum adds*: ``s = fl(a + b)`` with its exact error ``err`` (Knuth's TwoSum) and
  :func:`round_sum`, which rounds the exact ``a + b`` from ``(s, err)``: no float lies strictly
  between ``s`` and ``a + b``, so neither does any boundary of the ``p``-bit grid, and ``err``'s
  sign matters only when ``s`` is a tie (RNE) or on the grid (floor). Exponent gaps of any size
  are exact, with no special case (the int64 kernel needs a sticky compression there).
* Stages 4-5 (dequant, output accumulator, channel scale): one exact float64 product (at most
  ``24 + 11`` bits) and one rounding each; the output accumulator uses TwoSum adds.

Zero-term cycles are not skipped (they add an exact 0 to an already rounded register: no
change) so that the accumulators of several rows can run side by side in one loop.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["pe_rows", "round_sum", "round_exact", "two_sum_round", "f2i", "i2f"]

_ABS = np.int64(0x7FFFFFFFFFFFFFFF)
_HID = np.int64(1) << 52           # the implicit leading bit's place (the exponent's lowest bit)
_EXP = np.int64(0x7FF0000000000000)
_INV32 = np.int32(0x7F000000)  # float32: bits(2**k) + bits(2**-k)
_U1, _U2, _U3 = np.uint64(1), np.uint64(2), np.uint64(3)  # unsigned indices: no wraparound code


@intrinsic
def f2i(typingctx, x):
    """The IEEE bit pattern of a float64 as an int64 (a bitcast, free in SIMD registers)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def f2i32(typingctx, x):
    """The IEEE bit pattern of a float32 as an int32."""
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


@intrinsic
def i2f32(typingctx, x):
    """The float32 whose IEEE bit pattern is the int32 ``x``."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@intrinsic
def i2f(typingctx, x):
    """The float64 whose IEEE bit pattern is the int64 ``x``."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


_LANES = 64   # (row, token) accumulator lanes the chain loop runs side by side
_CH = 64      # cycles per chunk: lane sums of a chunk are formed, then the accumulators run


@intrinsic
def _stack_acc(typingctx):
    """A float64[_LANES] on the stack (entry block). Accumulators and cycle values live there, not
    on the heap, so LLVM knows they alias no input array and vectorises without runtime checks."""
    sig = types.CPointer(types.float64)()

    def codegen(context, builder, signature, args):
        ptr = cgutils.alloca_once(builder, ir.ArrayType(ir.DoubleType(), _LANES))
        return builder.bitcast(ptr, ir.PointerType(ir.DoubleType()))

    return sig, codegen


@intrinsic
def _stack_cycles(typingctx):
    """A float32[_CH * _LANES] on the stack: one chunk of cycle values for every lane."""
    sig = types.CPointer(types.float32)()

    def codegen(context, builder, signature, args):
        ptr = cgutils.alloca_once(builder, ir.ArrayType(ir.FloatType(), _CH * _LANES))
        return builder.bitcast(ptr, ir.PointerType(ir.FloatType()))

    return sig, codegen


@numba.njit(cache=True, inline="always")
def round_sum(s, err, d, trunc):
    """Round the exact value ``s + err`` to ``53 - d`` significant bits (``1 <= d <= 52``).

    ``s`` must be a normal float64 or 0 and ``err`` the exact rounding error of the float op
    that produced it (0 if exact), ``|err| <= ulp(s) / 2``. RNE (``trunc`` False) rounds the
    magnitude to nearest, ties to even, renormalising a carry through the exponent field;
    ``trunc`` True is floor of the signed value, as a two's-complement arithmetic shift. Equal
    to ``_fast_kernels.round_to`` / ``pe._round`` of the exact value (tested).
    """
    b = f2i(s)
    mag = b & _ABS
    nz = err != 0.0
    same = (b ^ f2i(err)) >= 0              # err pushes |s + err| above |s|
    e_up = np.int64(nz & same)
    e_dn = np.int64(nz & (not same))
    mask = (np.int64(1) << d) - 1
    if trunc:
        # Positive: truncate; an err below s means the predecessor float (bits - 1) first.
        # Negative: ceil the magnitude; an err beyond s means the successor (bits + 1) first.
        up = (mag + mask + e_up) & ~mask
        dn = (mag - e_dn) & ~mask
        mag2 = up if b < 0 else dn
    else:
        half = np.int64(1) << (d - 1)
        r = mag & mask
        lsb = ((mag | _HID) >> d) & 1        # d = 52: a 1-bit mantissa, always odd
        tie_up = (e_up | ((1 - e_dn) & lsb)) == 1
        go = (r > half) | ((r == half) & tie_up)
        mag2 = (mag & ~mask) + (np.int64(go) << d)
    return i2f(mag2 | (b & ~_ABS))


@numba.njit(cache=True, inline="always")
def two_sum_round(a, b, d, trunc):
    """``a + b`` (float64, exact values) rounded once to ``53 - d`` significant bits."""
    s = a + b
    bb = s - a
    err = (a - (s - bb)) + (b - bb)
    return round_sum(s, err, d, trunc)


@numba.njit(cache=True, inline="always")
def round_exact(x, d, magic, trunc):
    """``x`` (exact) rounded to ``53 - d`` significant bits; ``magic = (d << 52) + (1 << 51)``.

    RNE: ``(x + M) - M`` with ``M = 1.5 * 2**(E + d)`` for ``x``'s binade ``2**E``: the sum lies
    in ``[2**(E+d), 2**(E+d+1))`` (``d >= 2``), whose ulp is ``x``'s ``p``-bit grid, and the
    hardware's ties-to-even is the grid's (M is an even multiple of that ulp). Floor: the
    magnitude truncated (positive) or ceiled (negative) on the bit pattern.
    """
    b = f2i(x)
    if trunc:
        mask = (np.int64(1) << d) - 1
        neg = b < 0
        mag = b & _ABS
        mag2 = ((mag + mask) if neg else mag) & ~mask
        return i2f(mag2 | (b & ~_ABS))
    m = i2f((b & _EXP) + magic)
    return (x + m) - m


@numba.njit(cache=True, inline="always")
def _lanes(z, a2, b, c0, t, w0, w1, w2, w3, u0, u1, u2, u3, trunc):
    """Stages 1-2 of one cycle for token lane t, in float32 (exact, module doc): the signed sum of
    the four aligned lane products times ``2**(emax + bsig)``."""
    c1 = c0 + _U1
    c2 = c0 + _U2
    c3 = c0 + _U3
    e0 = a2[b, c0, t] * u0
    e1 = a2[b, c1, t] * u1
    e2 = a2[b, c2, t] * u2
    e3 = a2[b, c3, t] * u3
    e01 = e0 if e0 > e1 else e1
    e23 = e2 if e2 > e3 else e3
    em = e01 if e01 > e23 else e23
    inv = i2f32(_INV32 - f2i32(em))
    if trunc:
        sm = (np.trunc(z[b, c0, t] * w0 * inv) + np.trunc(z[b, c1, t] * w1 * inv)
              + np.trunc(z[b, c2, t] * w2 * inv) + np.trunc(z[b, c3, t] * w3 * inv))
    else:
        sm = (np.rint(z[b, c0, t] * w0 * inv) + np.rint(z[b, c1, t] * w1 * inv)
              + np.rint(z[b, c2, t] * w2 * inv) + np.rint(z[b, c3, t] * w3 * inv))
    return sm * em


@numba.njit(cache=True, inline="always")
def _block(r0, r1, codes, w_tab, u_tab, z, a2, gscale, has_ch, ch, group, d_acc, d_deq, d_out, safe, trunc,
           out, tb):
    """Rows ``r0:r1`` of every token block: each (row, token, group) chain in PE order.

    Per token block, group and chunk of ``_LANES // tb`` rows: form every cycle's lane sum
    (token lanes innermost, float32) into a stack buffer, then run the chunk's accumulators
    side by side (``_LANES`` independent chains, so that loop is bound by throughput rather
    than by one chain's latency), then dequantize into the output accumulators.
    """
    n_tb = z.shape[0]
    lanes_rt = z.shape[2] * (_LANES // tb)  # == _LANES; a runtime trip count keeps LLVM from
    #                                         fully unrolling (then not re-vectorising) the chain
    c_len = codes.shape[1]
    n_terms = w_tab.shape[1]
    n_groups = c_len // group
    n_lg = group // 4
    jch = _CH // n_terms                      # lane groups per chunk
    rpc = _LANES // tb                        # rows per chunk
    mg_acc = (np.int64(d_acc) << 52) + (np.int64(1) << 51)
    acc = numba.carray(_stack_acc(), _LANES)
    cyc = numba.carray(_stack_cycles(), (_CH, _LANES))
    o = np.zeros((r1 - r0, tb))
    for b in range(n_tb):
        o[:] = 0.0
        for g in range(n_groups):
            cg = g * group
            for rc in range(r0, r1, rpc):
                nr = min(rpc, r1 - rc)
                for x in range(_LANES):
                    acc[x] = 0.0
                for j0 in range(0, n_lg, jch):
                    j1 = min(j0 + jch, n_lg)
                    m = (j1 - j0) * n_terms
                    for rr in range(rpc):
                        if rr >= nr:       # rows past the end: zero cycles, results unused
                            for i in range(m):
                                for t in range(tb):
                                    cyc[i, rr * tb + t] = 0.0
                            continue
                        cr = codes[rc + rr]
                        # slot-major: cycle values are independent (only the accumulator is
                        # sequential), and this order keeps LLVM from spilling the activations
                        for s in range(n_terms):
                            for j in range(j0, j1):
                                c0 = np.uint64(cg + 4 * j)
                                k0 = np.uint64(cr[c0])     # uint8 codes: table row = code mod 256
                                k1 = np.uint64(cr[c0 + _U1])
                                k2 = np.uint64(cr[c0 + _U2])
                                k3 = np.uint64(cr[c0 + _U3])
                                w0 = w_tab[k0, s]
                                w1 = w_tab[k1, s]
                                w2 = w_tab[k2, s]
                                w3 = w_tab[k3, s]
                                u0 = u_tab[k0, s]
                                u1 = u_tab[k1, s]
                                u2 = u_tab[k2, s]
                                u3 = u_tab[k3, s]
                                i = (j - j0) * n_terms + s
                                for t in range(tb):
                                    cyc[i, rr * tb + t] = _lanes(z, a2, b, c0, t, w0, w1, w2, w3,
                                                                 u0, u1, u2, u3, trunc)
                    if safe[b, g]:
                        for i in range(m):
                            for x in range(lanes_rt):
                                acc[x] = round_exact(acc[x] + np.float64(cyc[i, x]), d_acc, mg_acc, trunc)
                    else:
                        for i in range(m):
                            for x in range(lanes_rt):
                                acc[x] = two_sum_round(acc[x], np.float64(cyc[i, x]), d_acc, trunc)
                for rr in range(nr):
                    gs = gscale[rc + rr, g]
                    oi = rc + rr - r0
                    for t in range(tb):
                        dm = round_sum(acc[rr * tb + t] * gs, 0.0, d_deq, trunc)
                        o[oi, t] = two_sum_round(o[oi, t], dm, d_out, trunc)
        for rr in range(r1 - r0):
            for t in range(tb):
                v = o[rr, t]
                if has_ch:
                    v = round_sum(v * ch[r0 + rr], 0.0, d_out, trunc)
                out[b, t, r0 + rr] = v


def _rows_rne16(codes, w_tab, u_tab, z, a2, gscale, has_ch, ch, group, d_acc, d_deq, d_out, safe, out,
                rpb):
    n = codes.shape[0]
    for blk in prange((n + rpb - 1) // rpb):
        _block(blk * rpb, min(blk * rpb + rpb, n), codes, w_tab, u_tab, z, a2, gscale, has_ch, ch, group,
               d_acc, d_deq, d_out, safe, False, out, 16)


def _rows_rne4(codes, w_tab, u_tab, z, a2, gscale, has_ch, ch, group, d_acc, d_deq, d_out, safe, out,
               rpb):
    n = codes.shape[0]
    for blk in prange((n + rpb - 1) // rpb):
        _block(blk * rpb, min(blk * rpb + rpb, n), codes, w_tab, u_tab, z, a2, gscale, has_ch, ch, group,
               d_acc, d_deq, d_out, safe, False, out, 4)


def _rows_trunc16(codes, w_tab, u_tab, z, a2, gscale, has_ch, ch, group, d_acc, d_deq, d_out, safe, out,
                  rpb):
    n = codes.shape[0]
    for blk in prange((n + rpb - 1) // rpb):
        _block(blk * rpb, min(blk * rpb + rpb, n), codes, w_tab, u_tab, z, a2, gscale, has_ch, ch, group,
               d_acc, d_deq, d_out, safe, True, out, 16)


def _rows_trunc4(codes, w_tab, u_tab, z, a2, gscale, has_ch, ch, group, d_acc, d_deq, d_out, safe, out,
                 rpb):
    n = codes.shape[0]
    for blk in prange((n + rpb - 1) // rpb):
        _block(blk * rpb, min(blk * rpb + rpb, n), codes, w_tab, u_tab, z, a2, gscale, has_ch, ch, group,
               d_acc, d_deq, d_out, safe, True, out, 4)


# Rounding mode and token-block width are compile-time constants of the hot loops, so each
# combination is its own function, compiled (and cached) on first use; each has a threaded
# compilation for layers and a serial one for small inputs (a validation case), where starting
# the thread pool costs more than the work.
_KERNELS = {(trunc, tb, par): numba.njit(cache=True, parallel=par)(fn)
            for (trunc, tb), fn in {(False, 16): _rows_rne16, (False, 4): _rows_rne4,
                                    (True, 16): _rows_trunc16, (True, 4): _rows_trunc4}.items()
            for par in (True, False)}


def pe_rows(codes, w_tab, u_tab, z, a2, gscale, has_ch, ch, group, d_acc, d_deq, d_out, safe, trunc, out,
            rows_per_block, parallel):
    """Every (token, output row) of the BitMoD PE with finite widths (``pe.BitmodPE._run``).

    codes: uint8 [N, C], the int8 weight codes' bytes; w_tab / u_tab: float32 [256, S], row
    ``code & 255``, term slot s: ``±2**(exp + bsig)`` (0 for a zero term) and ``2**(exp + bsig)``;
    z / a2: float32 [B, C, TB] per token block of TB = 16 or 4 tokens: ``act * 2**(25+g)`` and
    ``2**ea`` (ea the effective biased exponent, 1 for zeros and subnormals); gscale: float64
    [N, NG], the group scale times ``2**-(25+g)``; ch: float64 [N] channel scales, applied if
    has_ch; d_*: ``54 - width`` of the group accumulator, dequant and output registers; safe:
    bool [B, NG], True where the accumulator adds are exact in float64; trunc: truncation instead
    of RNE. Writes out float64 [B, TB, N]. Rows are split into blocks of ``rows_per_block`` (a
    multiple of ``64 // TB``), one per task, threaded if ``parallel``.
    """
    tb = z.shape[2]
    if tb not in (4, 16) or rows_per_block % (_LANES // tb):
        raise ValueError(f"token block {tb}, rows_per_block {rows_per_block}: need a token block of 4 or 16 "
                         "and rows_per_block a multiple of 64 // token block")
    _KERNELS[(bool(trunc), tb, bool(parallel))](codes, w_tab, u_tab, z, a2, gscale, has_ch, ch, group, d_acc,
                                                d_deq, d_out, safe, out, rows_per_block)
