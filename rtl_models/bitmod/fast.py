"""Vectorised bit-exact path of the BitMoD PE (the validation and emulation path).

:func:`pe_dot_fast` returns what :func:`~rtl_models.bitmod.pe_dot` returns (outputs of every
output channel for activations [C] or [T, C], and the cycles per output), computed for all
channels and tokens at once:

* finite datapath widths (the dev-RTL configuration and any widths within
  :data:`FAST_LIMITS`): a parallel numba kernel that performs the slow model's cycle
  arithmetic (lane alignment, group accumulator, dequant, output accumulator) on int64
  mantissas, see :mod:`._fast_kernels`;
* :meth:`PEConfig.exact` (every width None): the exact dot product rounded once to float64,
  from float64 BLAS products that are exact per group (below) and a correctly rounded sum
  (``math.fsum``'s algorithm).

Why a group's dot product is exact in float64 BLAS: an FP16 activation is ``sig * 2**(e-25)``
with ``sig < 2**11`` and ``1 <= e <= 30``, a weight code is at most 16 in magnitude (5 bits;
INT8: 8 bits), so every product is an integer multiple of ``2**-24`` below ``2**(19+5+8)``
and a sum of ``group <= 256`` of them spans at most ``11 + 8 + 29 + 8 = 56`` bits. That is
not below 2**53 for INT8 codes, so groups are split into chunks of at most 16 weights for
INT8/INT6 codes (``11+8+29+4 = 52`` bits) and 128 weights otherwise (``11+5+29+7 = 52``).
Each chunk sum is then exact in any summation order, the products with the group scale are
split (Dekker) into pieces that are exact in float64, and ``math.fsum`` returns the correctly
rounded float64 of their exact sum (CPython's ``math.fsum`` algorithm, as a numba kernel), which
is the slow model's single final rounding.
"""

from __future__ import annotations

import numpy as np

from . import _fast_kernels as _k
from .datatypes import LANES, BitmodInputError, row_cycles
from .pe import _TERM_TABLES, PEConfig, PEDotResult, Rounding, _as_fp16_activations
from .quantizer import BitmodQuant

__all__ = ["pe_dot_fast", "FAST_LIMITS"]

#: Largest widths the int64 kernel supports (see _fast_kernels.add_round): every register
#: mantissa stays within 26 bits, so exact alignments fit int64 with room to spare.
FAST_LIMITS = {"guard_bits": 8, "acc_man_bits": 24, "deq_man_bits": 25, "out_man_bits": 26}
_BIAS_FRAC = 25  # an FP16 value is significand * 2**(biased exponent - 15 - 10)
_PARALLEL_MACS = 1 << 20  # below this many MACs the serial kernels are faster than the threaded ones


def _decode_f16(a: np.ndarray):
    """FP16 array -> (negative, effective biased exponent (subnormals: 1), 11-bit significand)."""
    b = np.asarray(a, np.float16).view(np.uint16).astype(np.int64)
    e = (b >> 10) & 31
    f = b & 1023
    return (b >> 15) == 1, np.maximum(e, 1), np.where(e > 0, f | 1024, f)


def _term_tables(bits: int):
    table = _TERM_TABLES[bits]
    n_terms = len(next(iter(table.values())))
    tm = np.zeros((256, n_terms), np.int8)
    te = np.zeros((256, n_terms), np.int8)
    bsig = np.zeros(n_terms, np.int64)
    for code, terms in table.items():
        for s, term in enumerate(terms):
            tm[code + 128, s] = 0 if not term.man else (-1 if term.sign else 1)
            te[code + 128, s] = term.exp
            bsig[s] = term.bsig
    return tm, te, bsig


def _check_config(config: PEConfig) -> bool:
    """True for the exact configuration, False for finite widths within FAST_LIMITS."""
    widths = {name: getattr(config, name) for name in FAST_LIMITS}
    if all(v is None for v in widths.values()):
        return True
    for name, v in widths.items():
        if v is None or v > FAST_LIMITS[name]:
            raise BitmodInputError(
                f"pe_dot_fast: {name}={v!r} is not supported; allowed: every width None (exact) or "
                f"every width set with {', '.join(f'{k} <= {m}' for k, m in FAST_LIMITS.items())} "
                "(use pe_dot for other configurations)")
    return False


def pe_dot_fast(quant: BitmodQuant, activations, *, config: PEConfig | None = None) -> PEDotResult:
    """Every output channel of ``quant`` on the BitMoD PE for activations [C] or [T, C].

    Same arguments and result as :func:`~rtl_models.bitmod.pe_dot` (outputs float64 [K] or
    [T, K], bit-identical; ``cycles_per_output`` from :func:`row_cycles`, which the slow PE
    reproduces cycle by cycle). ``config`` must be :meth:`PEConfig.exact` or have every width
    set within :data:`FAST_LIMITS` (the default dev-RTL widths are).
    """
    from .pe import BitmodPE

    config = PEConfig() if config is None else config
    if not isinstance(config, PEConfig):
        raise BitmodInputError(f"config={config!r} must be a PEConfig")
    exact = _check_config(config)
    BitmodPE._check_quant(quant)
    k_out, c = quant.codes.shape
    a16 = _as_fp16_activations(activations, c)
    a2 = a16[None] if a16.ndim == 1 else a16
    int8 = quant.scale_codes is not None
    cycles = row_cycles(quant.bits, quant.n_groups, quant.group, 8 if int8 else 11)
    if exact:
        out = _exact(quant, a2)
    else:
        neg, e, sig = _decode_f16(a2)
        g = config.guard_bits
        tm, te, bsig = _term_tables(quant.bits)
        if int8:
            scale_m = quant.scale_codes.astype(np.int64)
            scale_x = np.zeros_like(scale_m)
            _, ce, cm = _decode_f16(quant.channel_scales)
            ch_m, ch_x = cm, ce - _BIAS_FRAC
        else:
            _, se, sm = _decode_f16(quant.scales)
            scale_m, scale_x = sm, se - _BIAS_FRAC
            ch_m = ch_x = np.zeros(k_out, np.int64)
        out_m = np.empty((a2.shape[0], k_out), np.int64)
        out_x = np.empty((a2.shape[0], k_out), np.int64)
        kernel = _k.pe_rows if a2.shape[0] * c * k_out >= _PARALLEL_MACS else _k.pe_rows_serial
        kernel(np.ascontiguousarray(quant.codes, dtype=np.int8), tm, te, bsig,
                   np.ascontiguousarray((sig << g).T), np.ascontiguousarray(e.T), np.ascontiguousarray(neg.T),
                   np.ascontiguousarray(scale_m), np.ascontiguousarray(scale_x), int8,
                   np.ascontiguousarray(ch_m), np.ascontiguousarray(ch_x), quant.group, g,
                   config.acc_man_bits - 1, config.deq_man_bits - 1, config.out_man_bits - 1,
                   config.rounding is Rounding.TRUNCATE, out_m, out_x)
        out = np.ldexp(out_m.astype(np.float64), out_x)  # mantissas <= 26 bits: exact
    return PEDotResult(outputs=out[0] if a16.ndim == 1 else out, cycles_per_output=cycles)


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dekker split: x = hi + lo exactly, hi with <= 26 significant bits, lo with <= 27."""
    t = x * 134217729.0  # 2**27 + 1
    hi = t - (t - x)
    return hi, x - hi


def _exact(quant: BitmodQuant, a2: np.ndarray) -> np.ndarray:
    """``PEConfig.exact()``: the exact dot product rounded once to float64 (module doc)."""
    k_out, c = quant.codes.shape
    ng, group = quant.n_groups, quant.group
    chunk = 16 if quant.bits in (6, 8) else 128
    a = a2.astype(np.float64)
    w = quant.codes.astype(np.float64)
    t = a.shape[0]
    if quant.scale_codes is None:
        gscale = quant.scales.astype(np.float64)                  # [K, NG], 11-bit significands
    else:  # (sum_g q_g dot_g) * s_ch, rounded once: fold s_ch into each exact piece
        gscale = quant.scale_codes.astype(np.float64) * quant.channel_scales.astype(np.float64)[:, None]
    n_chunks = -(-group // chunk)
    stack = np.empty((t, k_out, 2 * ng * n_chunks))                  # every piece of every output
    col = 0
    for g in range(ng):
        end = (g + 1) * group
        s = gscale[:, g][None, :]                                    # <= 19 significant bits
        for c0 in range(g * group, end, chunk):
            c1 = min(c0 + chunk, end)
            dot = a[:, c0:c1] @ w[:, c0:c1].T                        # [T, K], exact (module doc)
            hi, lo = _split(dot)
            stack[:, :, col] = hi * s                                # <= 46 bits each: exact
            stack[:, :, col + 1] = lo * s
            col += 2
    out = np.empty(t * k_out)
    fsum = _k.fsum_rows if t * c * k_out >= _PARALLEL_MACS else _k.fsum_rows_serial
    fsum(stack.reshape(t * k_out, -1), out)                          # math.fsum of each output
    return out.reshape(t, k_out)
