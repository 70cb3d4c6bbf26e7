"""Packed GEMM built from SMMW lanes, offset encoding of signed operands, requantization.

``C = A @ W`` with ``A`` (M, K) activations and ``W`` (K, N) weights.  Weight
columns ``n`` and ``n+1`` share activation ``A[m, k]``, so they are packed into
one operand (``W[k, n]`` low half, ``W[k, n+1]`` high half; sheet §2 "two
adjacent weights ... W[i,j] in the low byte and W[i+1,j] in the high byte",
with the paper's output index ``i`` being our ``n``).  One lane per (m, pair)
accumulates over ``k`` and drains into two wide accumulators every
``drain_every`` steps and at the end of ``K``.

Padding rules: an odd ``N`` gets one zero weight column (its field only ever
accumulates 0 and is dropped from the output).  ``K`` is the accumulation
axis, so any ``K >= 1`` (odd or not) needs no padding: the last block before
the final drain is simply shorter.

Signed operands (the paper only treats unsigned ones, sheet §2): offset
encoding ``a_u = a + 2**(act_bits-1)``, ``w_u = w + 2**(weight_bits-1)`` maps
two's-complement codes onto the unsigned range the lane needs, and

    sum_k a*w = sum_k a_u*w_u - o_w*sum_k a_u - o_a*sum_k w_u + K*o_a*o_w,

so the exact signed result is recovered from the unsigned one with a per-row
sum of ``A_u``, a per-column (offline) sum of ``W_u`` and a constant.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from ._kernels import smmw_gemm_kernel
from .layout import CarryError, LayoutError, SMMWConfig, SMMWLane

__all__ = [
    "PackedGemmResult", "pack_weights", "packed_gemm", "packed_gemm_reference",
    "offset_encode", "offset_correction", "requantize", "quantize_multiplier",
]

_DEFAULT = SMMWConfig()


@dataclass(frozen=True)
class PackedGemmResult:
    """Output of :func:`packed_gemm`.

    Attributes:
        out: (M, N) int64; the exact ``A @ W`` unless ``carry_detected``, in which
            case it is the wrapped value the hardware would have produced.
        carry_detected: True if any field carried into its neighbour or a wide
            accumulator overflowed (only possible with ``on_carry="report"``).
        first_carry: ``(m, k, pair, kind)`` of the first event, kind "field" or
            "accumulator"; None when there was none.
        drains_per_lane: number of lane splits per lane, ``ceil(K / drain_every)``.
        ops: instructions executed by the slow reference (empty for the kernel).
    """

    out: np.ndarray
    carry_detected: bool
    first_carry: tuple[int, int, int, str] | None
    drains_per_lane: int
    ops: dict[str, int]


def _as_int_matrix(name: str, x: object) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise LayoutError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if arr.ndim != 2 or 0 in arr.shape:
        raise LayoutError(f"{name} must be a non-empty 2-D array, got shape {arr.shape}")
    return arr.astype(np.int64)


def _check_range(name: str, arr: np.ndarray, bits: int, signed: bool) -> None:
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    amin, amax = int(arr.min()), int(arr.max())
    if amin < lo or amax > hi:
        bad = amin if amin < lo else amax
        kind = "signed" if signed else "unsigned"
        raise LayoutError(f"{name} holds {bad}, outside the {kind} {bits}-bit range [{lo}, {hi}]")


def offset_encode(x: object, bits: int) -> np.ndarray:
    """Two's-complement ``bits``-bit codes -> unsigned codes ``x + 2**(bits-1)``.

    Raises LayoutError if a value is outside ``[-2**(bits-1), 2**(bits-1)-1]``.
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise LayoutError(f"x must be an integer array, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size:
        _check_range("x", arr, bits, signed=True)
    return arr + (1 << (bits - 1))


def offset_correction(c_u: np.ndarray, a_u: np.ndarray, w_u: np.ndarray,
                      a_offset: int, w_offset: int | np.ndarray) -> np.ndarray:
    """Recover ``sum_k (a_u - a_offset)(w_u - w_offset)`` from ``c_u = A_u @ W_u``.

    ``w_offset`` may be a scalar or one offset per output column (shape (N,)),
    which also covers per-channel asymmetric weight zero points.  int64 exact.
    """
    a_u = np.asarray(a_u, dtype=np.int64)
    w_u = np.asarray(w_u, dtype=np.int64)
    k_len = a_u.shape[1]
    w_off = np.asarray(w_offset, dtype=np.int64)
    rows = a_u.sum(axis=1)[:, None]
    cols = w_u.sum(axis=0)[None, :]
    return np.asarray(c_u, dtype=np.int64) - rows * w_off - a_offset * cols + k_len * a_offset * w_off


def pack_weights(w_u: np.ndarray, config: SMMWConfig = _DEFAULT) -> np.ndarray:
    """Pack unsigned (K, N) weights into (K, ceil(N/2)) operands (odd N: zero column).

    Offline step: one LSL and one ORR per pair.  Values must fit ``weight_bits``.
    """
    w = _as_int_matrix("W", w_u)
    _check_range("W", w, config.weight_bits, signed=False)
    if w.shape[1] % 2:
        w = np.concatenate([w, np.zeros((w.shape[0], 1), dtype=np.int64)], axis=1)
    return w[:, 0::2] | (w[:, 1::2] << config.slot_bits)


def _prepare(a, w, config: SMMWConfig, signed: bool, on_carry: str):
    if on_carry not in ("raise", "report"):
        raise LayoutError(f"on_carry={on_carry!r}; allowed: 'raise' or 'report'")
    a = _as_int_matrix("A", a)
    w = _as_int_matrix("W", w)
    if a.shape[1] != w.shape[0]:
        raise LayoutError(f"inner dimensions differ: A is {a.shape}, W is {w.shape}")
    _check_range("A", a, config.act_bits, signed)
    _check_range("W", w, config.weight_bits, signed)
    oa = (1 << (config.act_bits - 1)) if signed else 0
    ow = (1 << (config.weight_bits - 1)) if signed else 0
    return a + oa, w + ow, oa, ow


def _finish(c_u, a_u, w_u, oa, ow, signed, n_cols, carry, on_carry, drains, ops):
    c_u = c_u[:, :n_cols]
    out = offset_correction(c_u, a_u, w_u, oa, ow) if signed else c_u
    first = None
    if carry is not None:
        m, k, p, kind = carry
        first = (m, k, p, kind)
        if on_carry == "raise":
            raise CarryError(
                f"{kind} overflow at row m={m}, step k={k}, column pair {p}; "
                f"drain_every is unsafe for these operands")
    return PackedGemmResult(out=out, carry_detected=carry is not None, first_carry=first,
                            drains_per_lane=drains, ops=dict(ops))


def packed_gemm(a: object, w: object, *, config: SMMWConfig = _DEFAULT, signed: bool = False,
                on_carry: str = "raise") -> PackedGemmResult:
    """``A @ W`` computed lane by lane on the SMMW datapath (numba kernel).

    Args:
        a: (M, K) integer activations, unsigned ``act_bits``-bit codes, or
            two's-complement ones when ``signed``.
        w: (K, N) integer weights, likewise with ``weight_bits``.
        config: lane layout and drain policy.
        signed: operands are two's complement; they are offset-encoded onto the
            unsigned lane and the exact signed result is restored (module doc).
        on_carry: "raise" (default) raises :class:`CarryError` on the first
            field carry / accumulator overflow; "report" returns the wrapped
            hardware result with ``carry_detected=True``.

    Returns:
        :class:`PackedGemmResult` whose ``out`` equals ``A @ W`` exactly when no
        carry was detected.
    """
    a_u, w_u, oa, ow = _prepare(a, w, config, signed, on_carry)
    packed = pack_weights(w_u, config)
    c = config
    c_u, carry = smmw_gemm_kernel(
        np.ascontiguousarray(a_u), np.ascontiguousarray(packed),
        np.uint64(c.operand_mask), np.uint64(c.lane_mask), np.uint64(c.spread_shift),
        np.uint64(c.spread_mask), c.field_bits, c.drain_every, (1 << c.acc_bits) - 1)
    event = None
    if carry[0]:
        event = (int(carry[1]), int(carry[2]), int(carry[3]), "field" if carry[4] == 1 else "accumulator")
    drains = -(-a_u.shape[1] // c.drain_every)
    return _finish(c_u, a_u, w_u, oa, ow, signed, w_u.shape[1], event, on_carry, drains, {})


def packed_gemm_reference(a: object, w: object, *, config: SMMWConfig = _DEFAULT, signed: bool = False,
                          on_carry: str = "raise") -> PackedGemmResult:
    """Slow pure-Python twin of :func:`packed_gemm` built from :class:`SMMWLane`.

    Same arguments and result; additionally ``ops`` tallies every instruction
    executed online (lane MUL/LSL/ORR/AND/ADD, drain AND/LSR/ADD/MOV and, when
    ``signed``, the row sums and per-output corrections), which is what
    :func:`rtl_models.simd.op_counts` predicts with ``lanes_per_vector=1``.
    """
    a_u, w_u, oa, ow = _prepare(a, w, config, signed, on_carry)
    packed = pack_weights(w_u, config).tolist()
    m_rows, k_len = a_u.shape
    n_pairs = len(packed[0])
    acc_max = (1 << config.acc_bits) - 1
    ops: Counter = Counter()
    c_u = np.zeros((m_rows, 2 * n_pairs), dtype=np.int64)
    event = None
    a_list = a_u.tolist()
    for m in range(m_rows):
        for p in range(n_pairs):
            lane = SMMWLane(config, on_carry="report")
            wide = [0, 0]
            for k in range(k_len):
                was = lane.carry_detected
                lane.mac(packed[k][p], a_list[m][k])
                if lane.carry_detected and not was and event is None:
                    event = (m, k, p, "field")
                if lane.count == config.drain_every or k == k_len - 1:
                    for i, f in enumerate(lane.drain()):
                        wide[i] += f
                        ops["ADD"] += 1
                        if wide[i] > acc_max and event is None:
                            event = (m, k, p, "accumulator")
                        wide[i] &= acc_max
            ops.update(lane.ops)
            c_u[m, 2 * p], c_u[m, 2 * p + 1] = wide
    if signed:
        ops["ADD"] += m_rows * k_len + 2 * m_rows * w_u.shape[1]  # row sums of A_u, 2 per output
        ops["MUL"] += m_rows                                      # o_w * rowsum per row
    drains = -(-k_len // config.drain_every)
    return _finish(c_u, a_u, w_u, oa, ow, signed, w_u.shape[1], event, on_carry, drains, ops)


def quantize_multiplier(scale: float) -> tuple[int, int]:
    """Real scale -> (multiplier, shift) with ``scale ~= multiplier / 2**shift``.

    ``multiplier`` is in ``[2**30, 2**31)`` (gemmlowp convention, rounded half to
    even from the float64 mantissa); ``shift`` must land in ``[1, 62]``.
    """
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise LayoutError(f"scale={scale!r} must be a finite float > 0")
    mant, exp = math.frexp(float(scale))  # scale = mant * 2**exp, mant in [0.5, 1)
    mult = round(mant * (1 << 31))
    if mult == 1 << 31:
        mult //= 2
        exp += 1
    shift = 31 - exp
    if not 1 <= shift <= 62:
        raise LayoutError(f"scale={scale!r} needs shift {shift}; allowed scales give shift in [1, 62]")
    return mult, shift


def requantize(acc: object, multiplier: object, shift: int, *, zero_point: int = 0, bits: int = 4,
               signed: bool = False) -> np.ndarray:
    """Fixed-point requantization of int accumulators to ``bits``-bit codes.

    ``q = clamp(((acc * multiplier + 2**(shift-1)) >> shift) + zero_point, qmin, qmax)``
    in int64 with an arithmetic right shift, i.e. round half towards +inf.
    ``multiplier`` is an int in ``[0, 2**31)`` or an int array broadcasting
    against ``acc`` (per output channel on the last axis).  Unsigned codes
    ``[0, 2**bits-1]`` by default (the next SMMW layer's activations), two's
    complement with ``signed=True``.  Returns int64 codes.
    """
    acc_arr = np.asarray(acc)
    mult = np.asarray(multiplier)
    if acc_arr.dtype.kind not in "iu" or mult.dtype.kind not in "iu":
        raise LayoutError("acc and multiplier must be integer arrays")
    if isinstance(shift, bool) or not isinstance(shift, (int, np.integer)) or not 1 <= shift <= 62:
        raise LayoutError(f"shift={shift!r} is outside the allowed range [1, 62]")
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 32:
        raise LayoutError(f"bits={bits!r} is outside the allowed range [1, 32]")
    if mult.size and (int(mult.min()) < 0 or int(mult.max()) >= 1 << 31):
        raise LayoutError(f"multiplier outside the allowed range [0, 2**31): {int(mult.min())}..{int(mult.max())}")
    acc64 = acc_arr.astype(np.int64)
    big = int(np.abs(acc64).max(initial=0)) * int(mult.max(initial=0)) + (1 << (int(shift) - 1))
    if big >= 1 << 63:
        raise LayoutError(f"acc * multiplier reaches {big}, beyond int64; allowed: < 2**63")
    qmin, qmax = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    q = ((acc64 * mult.astype(np.int64) + (1 << (int(shift) - 1))) >> int(shift)) + int(zero_point)
    return np.clip(q, qmin, qmax)
