"""Bit-exact BitMoD weight quantizer: per-group datatype search and the lossless INT mode.

Follows the published ``search_datatype`` / ``quant_datatype`` / ``quant_int`` of
``abdelfattah-lab/BitMoD-HPCA-25 bitmod_quant/quant_utils/quant_weight.py`` (the artifact of
BitMoD, Chen et al., HPCA 2025; selection rule = the paper's Algorithm 1), with every
arithmetic step in one stated dtype:

1. ``w`` is cast to the compute dtype (``scale_dtype``; default float16 as in the published
   code, which casts weights to fp16 before scaling) and viewed as [K, C/G, G].
2. per candidate: ``s = clamp(rd(rmax / qmax), 1e-5, 1e4)``; ``x = rd(w / s)``; code by
   midpoints with ties to the lower value (INT: round-half-even, clamp to +-qmax);
   ``w_hat = rd(code * s)``.
3. ``mse = rd(f32(f32(S) / G))`` (float64 dtype: ``S / G``) with
   ``S = sum_i rd(rd(w_hat_i - w_i)^2)`` accumulated in float64 in index order; the first
   candidate in [er_pos, er_neg, ea_pos, ea_neg] with the strictly smallest ``mse`` wins.

``rd`` rounds to the compute dtype and ``f32`` to float32 (round-to-nearest-even). A float64
input ``w`` is rounded directly to the compute dtype (torch's float64->float16 cast instead
rounds through float32; fp16/fp32 inputs, the published use, are unaffected).

Decisions where the published code is not a complete specification:

* MSE accumulation. torch's CPU fp16 ``mean`` sums in float32 in a SIMD-width-dependent order,
  divides in float32 and casts, so its last bit is machine-dependent. Here the float32 sum is
  replaced by the exact sum rounded once to float32: for float16 the float64 sum is exact
  (every float16 is a multiple of 2^-24 below 2^16, so partial sums of <= 2^13 squares are
  integers times 2^-24 below 2^53, exact in any order); for float32/float64 compute dtypes the
  float64 sum is sequential in index order. It equals torch whenever torch's float32
  accumulation is exact.
* Initial best error. The published loop starts from ``error = 1e3`` and leaves a group at
  zero if no candidate beats it (RMS error > 31); here candidate 0 always seeds the search.
* Second-level INT8 scale (``int8_scale=True``; paper §III-C and Table V; formula of the dev
  code yc2367/BitMoD ``wiki_c4_ppl/quant_utils/quant_weight_double.py``). It is applied
  *after* the search to the selected group scales: ``s_ch = rd(max_g s_g / 255)``,
  ``q_s = clamp(round_half_even(rd(s_g / s_ch)), 0, 255)``, ``w_hat = rd(rd(code * s_ch) * q_s)``.
  The dev code requantizes each candidate with its own channel scale before the MSE search,
  which mixes channel scales within a row and cannot be stored as one FP16 scale per channel;
  applying it once after the search keeps one ``s_ch`` per output channel and leaves codes and
  selectors identical to the FP16-scale search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _kernels
from .datatypes import BitmodInputError, ValueSet, _check_bits, candidate_sets
from .datatypes import allowed_codes as _allowed_codes

__all__ = ["BitmodQuant", "quantize_weights", "SCALE_DTYPES"]

SCALE_DTYPES = ("float16", "float32", "float64")
_MODE = {"float16": _kernels.MODE_F16, "float32": _kernels.MODE_F32, "float64": _kernels.MODE_F64}
SCALE_MIN, SCALE_MAX = 1e-5, 1e4  # published clamp (quant_weight.py)
INT8_SCALE_MAX = 255  # unsigned 8-bit second-level scale, 2^8 - 1 (quant_weight_double.py)


def _rd(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round float64 values to ``dtype`` and back (see _kernels module doc for exactness)."""
    if dtype == np.float64:
        return x
    with np.errstate(over="ignore"):
        return x.astype(dtype).astype(np.float64)


@dataclass(frozen=True, eq=False)
class BitmodQuant:
    """Quantized weights of one [K, C] matrix (K output channels, C input channels).

    Fields:
        bits: 3 or 4 (BitMoD ext-FP search), 6 or 8 (symmetric per-group INT).
        group: weights per group along C.
        scale_dtype: numpy dtype name every scale/dequant step was rounded to.
        codes: int8 [K, C], code-unit values (FP4 x2, see datatypes.py).
        selectors: uint8 [K, C/group], index into ``candidate_sets(bits)`` (all 0 for INT).
        scales: [K, C/group] in ``scale_dtype``: the selected per-group scale.
        channel_scales: [K] in ``scale_dtype`` when ``int8_scale`` was requested, else None.
        scale_codes: uint8 [K, C/group] second-level scale codes with ``int8_scale``, else None.
    """

    bits: int
    group: int
    scale_dtype: str
    codes: np.ndarray
    selectors: np.ndarray
    scales: np.ndarray
    channel_scales: np.ndarray | None = None
    scale_codes: np.ndarray | None = None

    def __post_init__(self) -> None:
        bits = _check_bits(self.bits)
        if self.codes.ndim != 2 or self.group < 1 or self.codes.shape[1] % self.group:
            raise BitmodInputError(
                f"codes shape {self.codes.shape} does not split into groups of {self.group}"
            )
        k, ng = self.codes.shape[0], self.codes.shape[1] // self.group
        per_group = ["selectors", "scales"] + (["scale_codes"] if self.scale_codes is not None else [])
        for name in per_group:
            shape = getattr(self, name).shape
            if shape != (k, ng):
                raise BitmodInputError(f"{name} must have shape {(k, ng)}, got {shape}")
        if (self.channel_scales is None) != (self.scale_codes is None):
            raise BitmodInputError("channel_scales and scale_codes must be given together or not")
        if self.channel_scales is not None and self.channel_scales.shape != (k,):
            raise BitmodInputError(
                f"channel_scales must have shape {(k,)}, got {self.channel_scales.shape}"
            )
        codes = np.asarray(self.codes)
        if codes.size and not np.isin(codes, _allowed_codes(bits)).all():
            raise BitmodInputError(f"codes contain values outside the {bits}-bit code set")

    @property
    def candidates(self) -> tuple[ValueSet, ...]:
        """The candidate sets the selectors index into."""
        return candidate_sets(self.bits)

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape

    @property
    def n_groups(self) -> int:
        return self.codes.shape[1] // self.group

    def dequant(self) -> np.ndarray:
        """Dequantized weights [K, C] in ``scale_dtype``: ``code * scale`` rounded once, or with
        INT8 scales ``(code * channel_scale) * scale_code`` rounded after each product."""
        dt = np.dtype(self.scale_dtype)
        k, c = self.codes.shape
        q = self.codes.astype(np.float64).reshape(k, self.n_groups, self.group)
        if self.scale_codes is None:
            w = _rd(q * self.scales.astype(np.float64)[..., None], dt)
        else:
            w = _rd(q * self.channel_scales.astype(np.float64)[:, None, None], dt)
            w = _rd(w * self.scale_codes.astype(np.float64)[..., None], dt)
        return w.reshape(k, c).astype(dt)


def _tables(sets: tuple[ValueSet, ...]):
    nv = max(len(s.values) for s in sets)
    vals = np.zeros((len(sets), nv))
    mids = np.full((len(sets), max(nv - 1, 1)), np.inf)
    for i, s in enumerate(sets):
        vals[i, : len(s.values)] = s.values
        mids[i, : len(s.values) - 1] = s.midpoints
    nvals = np.array([len(s.values) for s in sets], np.int64)
    qmax = np.array([float(s.qmax) for s in sets])
    return vals, nvals, mids, qmax


def _search_numpy(w: np.ndarray, sets: tuple[ValueSet, ...], dt: np.dtype):
    """Slow vectorised reference of the search; w: (n, G) float64 holding dtype values."""
    n, g = w.shape
    lo, hi = float(dt.type(SCALE_MIN)), float(dt.type(SCALE_MAX))
    rmax = np.max(np.abs(w), axis=1)
    best_err = np.zeros(n)
    sel = np.zeros(n, np.int64)
    codes = np.zeros((n, g), np.int64)
    scales = np.zeros(n)
    for c, vs in enumerate(sets):
        s = np.clip(_rd(rmax / vs.qmax, dt), lo, hi)
        x = _rd(w / s[:, None], dt)
        if vs.is_int:
            q = np.clip(np.rint(x), -vs.qmax, vs.qmax)
        else:
            idx = np.searchsorted(np.asarray(vs.midpoints), x, side="left")
            q = np.asarray(vs.values, np.float64)[idx]
        dq = _rd(q * s[:, None], dt)
        d = _rd(dq - w, dt)
        sq = _rd(d * d, dt)
        acc = np.zeros(n)
        for i in range(g):  # sequential in index order, like the kernel
            acc = acc + sq[:, i]
        if dt == np.float64:
            err = acc / g
        else:  # torch's CPU mean of fp16/fp32: float32 sum, float32 divide, cast
            err = _rd(_rd(_rd(acc, np.dtype(np.float32)) / g, np.dtype(np.float32)), dt)
        upd = np.ones(n, bool) if c == 0 else err < best_err
        best_err = np.where(upd, err, best_err)
        sel = np.where(upd, c, sel)
        scales = np.where(upd, s, scales)
        codes = np.where(upd[:, None], q.astype(np.int64), codes)
    return codes, sel, scales


def _search_numba(w: np.ndarray, sets: tuple[ValueSet, ...], dt: np.dtype):
    n, g = w.shape
    vals, nvals, mids, qmax = _tables(sets)
    codes = np.zeros((n, g), np.int64)
    sel = np.zeros(n, np.int64)
    scales = np.zeros(n)
    _kernels.search_groups(
        np.ascontiguousarray(w), vals, nvals, mids, qmax, sets[0].is_int, _MODE[dt.name],
        float(dt.type(SCALE_MIN)), float(dt.type(SCALE_MAX)), codes, sel, scales,
    )
    return codes, sel, scales


def _second_level(scales: np.ndarray, dt: np.dtype):
    """Dev-code INT8 second-level scale (``quant_weight_double.py``) on selected scales [K, NG]."""
    s_ch = _rd(np.max(scales, axis=1) / INT8_SCALE_MAX, dt)
    with np.errstate(divide="ignore"):
        ratio = _rd(scales / s_ch[:, None], dt)
    q_s = np.clip(np.rint(ratio), 0, INT8_SCALE_MAX)
    return s_ch, q_s.astype(np.uint8)


def quantize_weights(
    w,
    *,
    bits: int = 4,
    group: int = 128,
    scale_dtype: str = "float16",
    int8_scale: bool = False,
    backend: str = "numba",
) -> BitmodQuant:
    """Quantize a [K, C] weight matrix with BitMoD's per-group datatype search.

    Args:
        w: real array [K out-channels, C in-channels]; groups run along C (published layout).
        bits: 4 / 3 -> per-group choice among the four ext-FP4 / ext-FP3 sets
            (``candidate_sets(bits)``); 6 / 8 -> symmetric per-group INT6 / INT8 (lossless).
        group: weights per group (default 128); must divide C.
        scale_dtype: "float16" (default, as the published code), "float32" or "float64": the
            dtype the weights are cast to and every scale/divide/dequant/MSE step is rounded to.
        int8_scale: also quantize the selected group scales to unsigned INT8 codes under one
            per-channel scale (BitMoD §III-C, dev-code formula); ``dequant()`` then uses them.
        backend: "numba" (fast kernel) or "numpy" (slow reference); results are identical.

    Returns:
        BitmodQuant with codes, selectors, scales (+ channel_scales/scale_codes).

    Raises:
        BitmodInputError (ValueError) for a non-2-D or non-finite ``w``, values that overflow
        ``scale_dtype``, unknown ``bits``/``scale_dtype``/``backend``, or a bad ``group``.
    """
    bits = _check_bits(bits)
    try:
        dt_name = np.dtype(scale_dtype).name
    except TypeError:
        dt_name = None
    if dt_name not in SCALE_DTYPES:
        raise BitmodInputError(
            f"scale_dtype={scale_dtype!r} is not supported; allowed: {SCALE_DTYPES}"
        )
    if backend not in ("numba", "numpy"):
        raise BitmodInputError(
            f"backend={backend!r} is not supported; allowed: ('numba', 'numpy')"
        )
    if not isinstance(int8_scale, bool):
        raise BitmodInputError(f"int8_scale={int8_scale!r} must be a bool")
    arr = np.asarray(w)
    if arr.ndim != 2 or arr.size == 0:
        raise BitmodInputError(f"w must be a non-empty 2-D [K, C] array, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise BitmodInputError(f"w must be real-valued, got dtype {arr.dtype}")
    k, c = arr.shape
    if isinstance(group, bool) or not isinstance(group, int) or group < 1 or c % group:
        raise BitmodInputError(
            f"group={group!r} must be a positive integer dividing the {c} input channels"
        )
    arr64 = arr.astype(np.float64)
    if not np.all(np.isfinite(arr64)):
        raise BitmodInputError("w contains NaN or infinite values; all weights must be finite")
    dt = np.dtype(dt_name)
    wc = _rd(arr64, dt)
    if not np.all(np.isfinite(wc)):
        raise BitmodInputError(
            f"w has values beyond the {dt_name} range (max |w| = {np.max(np.abs(arr64)):g})"
        )
    sets = candidate_sets(bits)
    flat = wc.reshape(k * (c // group), group)
    search = _search_numba if backend == "numba" else _search_numpy
    codes, sel, scales = search(flat, sets, dt)
    ng = c // group
    scales = scales.reshape(k, ng)
    ch, sc = (None, None)
    if int8_scale:
        ch, sc = _second_level(scales, dt)
        ch = ch.astype(dt)
    return BitmodQuant(
        bits=bits,
        group=group,
        scale_dtype=dt.name,
        codes=codes.reshape(k, c).astype(np.int8),
        selectors=sel.reshape(k, ng).astype(np.uint8),
        scales=scales.astype(dt),
        channel_scales=ch,
        scale_codes=sc,
    )
