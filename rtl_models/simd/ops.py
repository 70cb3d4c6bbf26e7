"""Instruction-count model of an SMMW GEMM, for the edge-CPU latency model.

Counts what :func:`rtl_models.simd.packed_gemm_reference` executes (tested
equal with ``lanes_per_vector=1``).  With ``lanes_per_vector=v > 1`` each
instruction is a vector instruction over ``v`` lanes of one output row (NEON:
128-bit registers / 32-bit lanes = 4, the 1x4 mask vector of the paper's
Algorithm 1, sheet §2); lane groups of a row are padded up to a multiple of v.
"""

from __future__ import annotations

from dataclasses import dataclass

from .layout import LayoutError, SMMWConfig

__all__ = ["OpCounts", "op_counts"]


@dataclass(frozen=True)
class OpCounts:
    """Instruction counts of one ``(M, K) @ (K, N)`` SMMW GEMM.

    Online fields count instructions executed per GEMM call; ``offline_*``
    count one-time weight preparation (packing, per-column offset sums).

    Attributes:
        mul, lsl, orr, and_, add, lsr, mov: lane loop (MUL/LSL/ORR/AND/ADD per K
            step), drains (AND, LSR, 2 wide ADD, MOV per lane group per drain),
            signed corrections (ADD/MUL) and requantization (MUL/ADD).
        asr, minmax: requantization's arithmetic shift and clamp (MIN+MAX = 2).
        offline_lsl, offline_orr, offline_add, offline_mul: weight packing and
            offset-correction constants.
        lane_groups: lanes (or vectors of lanes) per GEMM, ``M * ceil(ceil(N/2)/v)``.
        drains_per_lane: ``ceil(K / drain_every)``.
        macs: ``M*K*N`` useful multiply-accumulates.
    """

    mul: int
    lsl: int
    orr: int
    and_: int
    add: int
    lsr: int
    mov: int
    asr: int
    minmax: int
    offline_lsl: int
    offline_orr: int
    offline_add: int
    offline_mul: int
    lane_groups: int
    drains_per_lane: int
    macs: int

    @property
    def total(self) -> int:
        """All online instructions."""
        return (self.mul + self.lsl + self.orr + self.and_ + self.add + self.lsr + self.mov
                + self.asr + self.minmax)

    @property
    def per_mac(self) -> float:
        """Online instructions per useful MAC (5/2 per MAC in the lane loop, plus drains)."""
        return self.total / self.macs

    def as_dict(self) -> dict[str, int]:
        """Online counts keyed by mnemonic (``AND`` for ``and_``)."""
        return {"MUL": self.mul, "LSL": self.lsl, "ORR": self.orr, "AND": self.and_, "ADD": self.add,
                "LSR": self.lsr, "MOV": self.mov, "ASR": self.asr, "MINMAX": self.minmax}


def _pos(name: str, v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise LayoutError(f"{name}={v!r} must be an int >= 1")
    return v


def op_counts(m: int, k: int, n: int, *, config: SMMWConfig = SMMWConfig(), signed: bool = False,
              requantize: bool = False, lanes_per_vector: int = 1) -> OpCounts:
    """Instruction counts for ``(m, k) @ (k, n)`` on the SMMW datapath.

    Args:
        m, k, n: GEMM shape (rows of activations, reduction length, output columns).
        config: lane layout; ``drain_every`` sets the number of drains.
        signed: add the offset-encoding corrections (per-row sums of A_u: m*K
            ADDs (vectorised over K when v > 1, plus one horizontal ADD per row),
            m MULs, 2 ADDs per output; offline: column sums and constants).
        requantize: add per-output fixed-point requantization (MUL, 2 ADD, ASR,
            MIN, MAX).
        lanes_per_vector: lanes per instruction (1 = scalar lane ops; 4 = NEON
            128-bit with 32-bit lanes).
    """
    m, k, n = _pos("m", m), _pos("k", k), _pos("n", n)
    v = _pos("lanes_per_vector", lanes_per_vector)
    pairs = -(-n // 2)
    groups = m * -(-pairs // v)
    drains = -(-k // config.drain_every)
    out_vecs = m * -(-n // v)
    mul = lsl = orr = groups * k
    and_ = groups * k + groups * drains
    add = groups * k + 2 * groups * drains
    lsr = mov = groups * drains
    asr = minmax = 0
    off_add = off_mul = 0
    if signed:
        add += m * -(-k // v) + (m if v > 1 else 0) + 2 * out_vecs
        mul += m
        off_add += k * n + n
        off_mul += n
    if requantize:
        mul += out_vecs
        add += 2 * out_vecs
        asr += out_vecs
        minmax += 2 * out_vecs
    return OpCounts(mul=mul, lsl=lsl, orr=orr, and_=and_, add=add, lsr=lsr, mov=mov, asr=asr,
                    minmax=minmax, offline_lsl=k * pairs, offline_orr=k * pairs, offline_add=off_add,
                    offline_mul=off_mul, lane_groups=groups, drains_per_lane=drains, macs=m * k * n)
