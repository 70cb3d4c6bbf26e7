"""Exact integer GEMM on float BLAS: the shared engine of the vectorised datapath paths.

An integer matrix product is exact in IEEE floating point whenever every partial sum is an
integer the format represents: float32 holds every integer with ``|v| <= 2**24``, float64 every
one with ``|v| <= 2**53``. If ``K * max|a| * max|b|`` stays below that, *every* partial sum of
*every* summation order (blocked, vectorised, FMA, multi-threaded) is an exactly represented
integer, so BLAS returns the exact product. Wider operands are split into limbs
``a = sum_i a_i 2**(L*i)`` narrow enough for that rule, the limb products are exact, and the
limbs are recombined in uint64 arithmetic, which is the ring of two's-complement int64 (the
result equals ``a @ b`` computed in int64 with wrap-around, as ``torch.matmul`` on int64 does).

Dependencies: numpy only. The tests compare every path against ``torch.matmul`` on int64 and
against Python integers.
"""

from __future__ import annotations

import numpy as np

__all__ = ["exact_matmul", "exact_matmul_f64", "abs_max", "F32_EXACT", "F64_EXACT"]

F32_EXACT = 1 << 24
F64_EXACT = 1 << 53
_MAX_OPERAND = 1 << 62  # |values| beyond this are rejected (their limbs would not fit int64 shifts)


def abs_max(x: np.ndarray) -> int:
    """Largest ``|x|`` as a Python int (0 for an empty array); no int64 overflow at INT64_MIN."""
    if x.size == 0:
        return 0
    return max(abs(int(x.max())), abs(int(x.min())))


def _split(x: np.ndarray, bits: int, limb_bits: int) -> list[np.ndarray]:
    """Limbs of int64 ``x`` (|x| < 2**bits): unsigned low limbs, a signed top limb."""
    limbs = []
    rest = x.astype(np.int64, copy=False)
    mask = np.int64((1 << limb_bits) - 1)
    while bits > limb_bits:
        limbs.append(rest & mask)
        rest = rest >> np.int64(limb_bits)  # arithmetic shift: the top limb keeps the sign
        bits -= limb_bits
    limbs.append(rest)
    return limbs


def _gemm(a: np.ndarray, b: np.ndarray, bound: int) -> np.ndarray:
    """One limb product, exact because ``bound`` (>= every partial sum) fits the float type."""
    if bound > F64_EXACT:  # the limb plan guarantees this never happens
        raise RuntimeError(f"internal error: limb product bound {bound} exceeds 2**53")
    dt = np.float32 if bound <= F32_EXACT else np.float64
    if a.shape[0] < b.shape[1]:
        # OpenBLAS runs a skinny (few-row) product several times faster in this orientation
        # (measured: 16 x 4096 x 4096 float32, 0.23 s vs 0.056 s); the result is the same exact
        # integers either way.
        return (b.astype(dt).T @ a.astype(dt).T).T.astype(np.int64)
    return (a.astype(dt) @ b.astype(dt)).astype(np.int64)


def exact_matmul(a: np.ndarray, b: np.ndarray, *, a_max: int | None = None,
                 b_max: int | None = None) -> np.ndarray:
    """``a @ b`` for integer matrices, exact (int64 result, wrapped mod 2**64 like int64 GEMM).

    Args:
        a: ``(M, K)`` integer array; b: ``(K, N)`` integer array. Values must satisfy
            ``|v| < 2**62``.
        a_max, b_max: optional known bounds on ``|a|`` and ``|b|`` (skip the scan; must be
            true bounds, e.g. the operand format's range).

    Returns:
        ``(M, N)`` int64. When the exact result fits int64 (always when
        ``K * max|a| * max|b| < 2**63``) it is the exact product.

    The cheapest exact plan is chosen: one float32 GEMM if ``K*max|a|*max|b| <= 2**24``;
    float32 GEMMs over K-chunks of at least 256 whose bound is ``<= 2**24``, summed in int64; one
    float64 GEMM if ``<= 2**53``; otherwise limb products (each exact in float64) recombined
    in uint64. ``K`` is split into chunks when even single limbs would exceed 2**53.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype.kind not in "iu" or b.dtype.kind not in "iu":
        raise ValueError(f"exact_matmul needs integer arrays, got {a.dtype} and {b.dtype}")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"exact_matmul needs (M, K) @ (K, N), got {a.shape} @ {b.shape}")
    m, k = a.shape
    n = b.shape[1]
    if m == 0 or n == 0 or k == 0:
        return np.zeros((m, n), np.int64)
    am = abs_max(a) if a_max is None else int(a_max)
    bm = abs_max(b) if b_max is None else int(b_max)
    if am >= _MAX_OPERAND or bm >= _MAX_OPERAND:
        raise ValueError(f"exact_matmul operands must satisfy |v| < 2**62, got max |a| = {am}, |b| = {bm}")
    if am == 0 or bm == 0:
        return np.zeros((m, n), np.int64)
    if k * am * bm <= F32_EXACT:
        return _gemm(a, b, k * am * bm)
    kc32 = F32_EXACT // (am * bm)
    if kc32 >= 256:
        # narrow operands (e.g. int8 x int8): float32 GEMMs over K-chunks whose partial sums stay
        # below 2**24, added in int64; float32 BLAS is about twice float64's speed
        a32, b32 = a.astype(np.float32), b.astype(np.float32)
        out = np.zeros((m, n), np.int64)
        for k0 in range(0, k, kc32):
            out += _f64_gemm(a32[:, k0:k0 + kc32], b32[k0:k0 + kc32]).astype(np.int64)
        return out
    if k * am * bm <= F64_EXACT:
        return _gemm(a, b, k * am * bm)
    # Limb plan: give the narrower operand as few limbs as possible. With K split into chunks of
    # kc, a limb product is exact when kc * 2**la * 2**lb <= 2**53.
    ab, bb = am.bit_length(), bm.bit_length()
    kc = k
    while True:
        room = 53 - (kc - 1).bit_length() - 1 if kc > 1 else 52   # bits left for la + lb
        if room >= 2:
            break
        kc = (kc + 1) // 2
    # Keep the narrow operand whole when it leaves room for limbs of the other.
    if min(ab, bb) <= room - 8:
        if ab <= bb:
            la, lb = ab, room - ab
        else:
            la, lb = room - bb, bb
    else:
        la = lb = room // 2
    if kc == k and bb == lb:      # b whole: a's limbs stacked into one GEMM
        return exact_matmul_f64(a, b.astype(np.float64), bm, a_max=am)
    if kc == k and ab == la:      # a whole: the same on the transposed product
        return exact_matmul_f64(b.T, a.astype(np.float64).T, am, a_max=bm).T
    a_limbs = _split(a, ab, la) if ab > la else [a]
    b_limbs = _split(b, bb, lb) if bb > lb else [b]
    # each limb is converted to float64 once; every limb is <= 2**la (2**lb) in magnitude, so
    # by the plan kc * 2**la * 2**lb <= 2**52 bounds every partial sum of every chunk product
    a_f = [x.astype(np.float64) for x in a_limbs]
    b_f = [x.astype(np.float64) for x in b_limbs]
    acc = np.zeros((m, n), np.uint64)
    for k0 in range(0, k, kc):
        k1 = min(k, k0 + kc)
        for i, ai in enumerate(a_f):
            for j, bj in enumerate(b_f):
                shift = la * i + lb * j
                if shift >= 64:
                    continue  # vanishes mod 2**64
                part = _f64_gemm(ai[:, k0:k1], bj[k0:k1])
                # uint64 shift/add wrap mod 2**64: the ring of int64 arithmetic
                acc += part.astype(np.int64).astype(np.uint64) << np.uint64(shift)
    return acc.view(np.int64)


def exact_matmul_f64(a: np.ndarray, b_f64: np.ndarray, b_max: int, *, a_max: int | None = None) -> np.ndarray:
    """``a @ b`` exact, for an integer ``a`` (M, K) and a *prepared* ``b``: a float64 (K, N)
    array holding integers with ``|b| <= b_max`` (convert a static weight matrix once and reuse
    it). ``a`` is cut into limbs narrow enough that ``K * 2**la * b_max <= 2**52``; the limbs are
    stacked as extra rows of one GEMM, so ``b`` is read once. Needs
    ``K * b_max <= 2**50``. Returns int64 (wrapped mod 2**64 like an int64 GEMM)."""
    a = np.asarray(a)
    m, k = a.shape
    if b_f64.dtype != np.float64 or b_f64.shape[0] != k:
        raise ValueError(f"b must be float64 of shape ({k}, N), got {b_f64.dtype} {b_f64.shape}")
    room = 52 - int(b_max).bit_length() - (k - 1).bit_length()
    if room < 2:
        raise ValueError(f"exact_matmul_f64 needs K * b_max <= 2**50, got K={k}, b_max={b_max}")
    am = abs_max(a) if a_max is None else int(a_max)
    ab = max(am.bit_length(), 1)
    if ab <= room:
        return _f64_gemm(a.astype(np.float64), b_f64).astype(np.int64)
    limbs = _split(a, ab, room)
    parts = _f64_gemm(np.concatenate(limbs).astype(np.float64), b_f64).astype(np.int64)
    acc = np.zeros((m, b_f64.shape[1]), np.uint64)
    for i in range(len(limbs)):
        if room * i < 64:
            acc += parts[i * m:(i + 1) * m].astype(np.uint64) << np.uint64(room * i)
    return acc.view(np.int64)


def _f64_gemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in the inputs' float dtype, in the faster orientation for skinny products."""
    if a.shape[0] < b.shape[1]:
        return (b.T @ a.T).T  # the fast orientation for skinny products (see _gemm)
    return a @ b
