"""Vectorised bit-exact path of the SMMW packed GEMM (the validation path).

:func:`packed_gemm_fast` returns the same :class:`PackedGemmResult` as
:func:`~rtl_models.simd.packed_gemm` (the numba lane kernel) and
:func:`~rtl_models.simd.packed_gemm_reference` (the instruction-level lane), but computes
whole blocks of lanes with exact integer GEMMs (:mod:`rtl_models.intgemm`). Why that is the
same arithmetic:

* The spread of one packed product is exactly ``w0*a + (w1*a << field_bits)`` (the layout
  rules of :class:`SMMWConfig` keep the two products apart), so a lane after a drain block of
  steps ``k0..k1`` holds ``(S0 + S1 * 2**field_bits) mod 2**lane_bits`` with ``S0``, ``S1``
  the block's exact unsigned sums of its two weight columns.
* Products are non-negative, so a field's running sum only grows: field 0 carries inside a
  block iff ``S0 > field_mask``; if it does not, field 1 carries iff ``S1 > field_mask``.
* The wide accumulators add the drained fields and mask to ``acc_bits``: modular addition,
  so the final value is the sum of the drained fields mod ``2**acc_bits``, and the first
  overflow is the first drain at which the running (unmasked) sum exceeds the mask.
* With ``drain_every <= max_safe_accumulations`` no field can carry, and if also
  ``K * max_product <= 2**acc_bits - 1`` no wide accumulator can overflow: the result is the
  exact ``A @ W`` of the original (signed or unsigned) operands, one GEMM.

The position of the first carry event (reported as ``first_carry``) is found by running the
instruction-level reference on the one (row, column pair) where it occurs.
"""

from __future__ import annotations

import numpy as np

from ..intgemm import abs_max, exact_matmul
from .gemm import PackedGemmResult, _finish, offset_correction, packed_gemm_reference
from .layout import LayoutError, SMMWConfig

__all__ = ["packed_gemm_fast"]

_DEFAULT = SMMWConfig()


def _operand(name: str, x: object, bits: int, signed: bool) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise LayoutError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if arr.ndim != 2 or 0 in arr.shape:
        raise LayoutError(f"{name} must be a non-empty 2-D array, got shape {arr.shape}")
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    amin, amax = int(arr.min()), int(arr.max())  # in the input dtype: no int64 copy of W
    if amin < lo or amax > hi:
        bad = amin if amin < lo else amax
        kind = "signed" if signed else "unsigned"
        raise LayoutError(f"{name} holds {bad}, outside the {kind} {bits}-bit range [{lo}, {hi}]")
    return arr


def packed_gemm_fast(a: object, w: object, *, config: SMMWConfig = _DEFAULT, signed: bool = False,
                     on_carry: str = "raise") -> PackedGemmResult:
    """``A @ W`` on the SMMW datapath, vectorised; same arguments and result as
    :func:`~rtl_models.simd.packed_gemm` (``ops`` is empty, as for the numba kernel).

    Args:
        a: (M, K) integer activations (unsigned ``act_bits`` codes, or two's complement
            with ``signed``); any integer dtype (int8/uint8 storage avoids int64 copies).
        w: (K, N) integer weights, likewise with ``weight_bits``.
        config, signed, on_carry: as :func:`~rtl_models.simd.packed_gemm`.
    """
    if on_carry not in ("raise", "report"):
        raise LayoutError(f"on_carry={on_carry!r}; allowed: 'raise' or 'report'")
    c = config
    a = _operand("A", a, c.act_bits, signed)
    w = _operand("W", w, c.weight_bits, signed)
    if a.shape[1] != w.shape[0]:
        raise LayoutError(f"inner dimensions differ: A is {a.shape}, W is {w.shape}")
    m, k = a.shape
    n = w.shape[1]
    drains = -(-k // c.drain_every)
    acc_max = (1 << c.acc_bits) - 1
    oa = (1 << (c.act_bits - 1)) if signed else 0
    ow = (1 << (c.weight_bits - 1)) if signed else 0
    if c.drain_every <= c.max_safe_accumulations and k * c.max_product <= acc_max:
        # no carry and no wide overflow is possible: the lanes compute the exact product
        out = exact_matmul(a, w, a_max=max(abs_max(a), 1), b_max=max(abs_max(w), 1))
        return PackedGemmResult(out=out, carry_detected=False, first_carry=None,
                                drains_per_lane=drains, ops={})
    a_u = a.astype(np.int64) + oa
    w_u = w.astype(np.int64) + ow
    if n % 2:
        w_u = np.concatenate([w_u, np.zeros((k, 1), np.int64)], axis=1)
    fb = np.uint64(c.field_bits)
    fmask = np.uint64(c.field_mask)
    lane_mask = np.uint64(c.lane_mask) if c.lane_bits < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
    wide = np.zeros((m, w_u.shape[1]), np.uint64)      # the two wide accumulators of each lane
    event = np.zeros((m, w_u.shape[1] // 2), bool)     # any carry/overflow per (row, pair)
    for k0 in range(0, k, c.drain_every):
        blk = exact_matmul(a_u[:, k0:k0 + c.drain_every], w_u[k0:k0 + c.drain_every])
        s0, s1 = blk[:, 0::2].astype(np.uint64), blk[:, 1::2].astype(np.uint64)
        event |= (s0 > fmask) | (s1 > fmask)
        lane = (s0 + (s1 << fb)) & lane_mask           # uint64 wraps mod 2**64, then the lane
        fields = np.empty_like(wide)
        fields[:, 0::2] = lane & fmask
        fields[:, 1::2] = (lane >> fb) & fmask
        total = wide + fields                          # < 2**63: acc_bits <= 62, fields < 2**32
        over = total > np.uint64(acc_max)
        event |= over[:, 0::2] | over[:, 1::2]
        wide = total & np.uint64(acc_max)
    c_u = wide.view(np.int64)[:, :n]
    first = None
    if event.any():
        row, pair = (int(i) for i in np.argwhere(event)[0])  # the kernel's (m, p, k) loop order
        cols = slice(2 * pair, min(2 * pair + 2, n))
        one = packed_gemm_reference(a[row:row + 1], w[:, cols], config=c, signed=signed, on_carry="report")
        _, kk, _, kind = one.first_carry
        first = (row, kk, pair, kind)
    out = offset_correction(c_u, a_u, w_u[:, :n], oa, ow) if signed else c_u
    return _finish(out, a_u, w_u, oa, ow, False, n, first, on_carry, drains, {})
