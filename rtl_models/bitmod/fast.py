"""Vectorised bit-exact path of the BitMoD PE (the validation and emulation path).

:func:`pe_dot_fast` returns what :func:`~rtl_models.bitmod.pe_dot` returns (outputs of every
output channel for activations [C] or [T, C], and the cycles per output), computed for all
channels and tokens at once:

* finite datapath widths (the dev-RTL configuration and any widths within
  :data:`FAST_LIMITS`): a parallel numba kernel that performs the slow model's cycle
  arithmetic (lane alignment, group accumulator, dequant, output accumulator) with one
  (row, token) per SIMD lane, on float32/float64 values that hold the PE's registers exactly
  and integer rounding on their bit patterns, see :mod:`._float_kernels`. The previous int64
  mantissa kernel (:mod:`._fast_kernels`, about 10x slower) stays as a second reference for the
  tests (:func:`_rtl_int64`);
* :meth:`PEConfig.exact` (every width None): the exact dot product rounded once to float64,
  from float64 dot products that are exact per chunk of a group (below), summed exactly as
  two-limb integers and rounded once, in one threaded numba pass (:mod:`._exact_kernels`).

Why a chunk's dot product is exact in float64: an FP16 activation is ``sig * 2**(e-25)``
with ``sig < 2**11`` and ``1 <= e <= 30``, a weight code is at most 16 in magnitude (5 bits;
INT8: 8 bits), so every product is an integer multiple of ``2**-24`` below ``2**(19+5+8)``
and a sum of ``group <= 256`` of them spans at most ``11 + 8 + 29 + 8 = 56`` bits. That is
not below 2**53 for INT8 codes, so groups are split into chunks of at most 16 weights for
INT8/INT6 codes (``11+8+29+4 = 52`` bits) and 128 weights otherwise (``11+5+29+7 = 52``).
Each chunk sum is then exact in any summation order and ``D = dot * 2**24`` is an integer below
``2**52``. With the group scale's integer significand ``s`` (FP16: 11 bits, exponent ``e``;
INT8: the 8-bit code), ``D * s`` fits int64 and ``D * s * 2**(e-1)`` is added exactly into a
two-limb integer ``H * 2**52 + L`` per output; the INT8 path's channel significand multiplies the
total at the end, and one rounding to float64 gives the slow model's single final rounding. The
previous formulation (Dekker-split pieces summed by CPython's ``math.fsum`` algorithm) stays as
a test reference (:func:`_exact_fsum`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import _exact_kernels as _ek
from . import _fast_kernels as _k
from . import _float_kernels as _fk
from .datatypes import LANES, BitmodInputError, row_cycles
from .pe import _TERM_TABLES, PEConfig, PEDotResult, Rounding, _as_fp16_activations
from .quantizer import BitmodQuant

__all__ = ["pe_dot_fast", "FAST_LIMITS"]

#: Largest widths the fast kernels support (see _fast_kernels.add_round): every register
#: mantissa stays within 26 bits, so exact alignments fit int64 and every value is a float64.
FAST_LIMITS = {"guard_bits": 8, "acc_man_bits": 24, "deq_man_bits": 25, "out_man_bits": 26}
_BIAS_FRAC = 25  # an FP16 value is significand * 2**(biased exponent - 15 - 10)
_PARALLEL_MACS = 1 << 20  # below this many MACs the serial kernels are faster than the threaded ones
_ROWS_PER_BLOCK = 32      # rows per parallel task of the float kernel (a multiple of 64 // 4)


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
    out = _exact(quant, a2) if exact else _rtl(quant, a2, config)
    return PEDotResult(outputs=out[0] if a16.ndim == 1 else out, cycles_per_output=cycles)


def _rtl_int64(quant: BitmodQuant, a2: np.ndarray, config: PEConfig) -> np.ndarray:
    """Finite widths on the int64 mantissa kernel (the previous fast path; a test reference)."""
    k_out = quant.codes.shape[0]
    int8 = quant.scale_codes is not None
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
    kernel = _k.pe_rows if a2.shape[0] * quant.codes.shape[1] * k_out >= _PARALLEL_MACS else _k.pe_rows_serial
    kernel(np.ascontiguousarray(quant.codes, dtype=np.int8), tm, te, bsig,
           np.ascontiguousarray((sig << g).T), np.ascontiguousarray(e.T), np.ascontiguousarray(neg.T),
           np.ascontiguousarray(scale_m), np.ascontiguousarray(scale_x), int8,
           np.ascontiguousarray(ch_m), np.ascontiguousarray(ch_x), quant.group, g,
           config.acc_man_bits - 1, config.deq_man_bits - 1, config.out_man_bits - 1,
           config.rounding is Rounding.TRUNCATE, out_m, out_x)
    return np.ldexp(out_m.astype(np.float64), out_x)  # mantissas <= 26 bits: exact


@functools.lru_cache(maxsize=None)
def _float_tables(bits: int):
    """float32 [256, S] term tables of the float kernel, row ``code & 255``: the signed term
    ``±2**(exp + bsig)`` (0 for a zero term) and the exponent-match value ``2**(exp + bsig)``
    (a zero term keeps exponent 0, as in the hardware's max)."""
    table = _TERM_TABLES[bits]
    n_terms = len(next(iter(table.values())))
    w = np.zeros((256, n_terms), np.float32)
    u = np.zeros((256, n_terms), np.float32)
    for code, terms in table.items():
        for s, term in enumerate(terms):
            v = 2.0 ** (term.exp + term.bsig)
            u[code & 255, s] = v
            w[code & 255, s] = 0.0 if not term.man else (-v if term.sign else v)
    w.flags.writeable = u.flags.writeable = False
    return w, u


def _safe_blocks(e: np.ndarray, nz: np.ndarray, group: int, guard: int, bits: int, acc_bits: int,
                 tb: int) -> np.ndarray:
    """bool [B, NG]: True where every group-accumulator add of the token block is exact in float64.

    For one (token, group): a cycle of lane group j with a nonzero activation has value
    ``S * 2**(emax + bsig)`` (scaled), ``S`` an integer, ``emax >= m_j`` (the largest effective
    exponent of its four activations), so every cycle and hence every accumulator value (its
    roundings keep multiples) is a multiple of ``2**Q``, ``Q = min_j m_j``. ``|S| < 2**(13+g)`` and
    ``emax <= E + 3`` (E the group's largest exponent, term exponents <= 3), so a cycle is below
    ``C = 2**(16 + g + E + B)`` (B the largest bsig); a rounding to ``p`` bits grows a magnitude by
    at most a factor ``1 + 2**(1-p)``, so each exact sum ``acc + cycle`` over ``n`` cycles is below
    ``C * n * (1 + 2**(1-p))**n``. It is a float64 exactly if that is at most ``2**(Q + 53)``.
    """
    t_len, c = e.shape
    terms = next(iter(_TERM_TABLES[bits].values()))
    n = group // LANES * len(terms)
    big_b = max(t.bsig for t in terms)
    allowed = math.floor(53 - 16 - guard - big_b - math.log2(n) - n * math.log2(1 + 2.0 ** (2 - acc_bits))
                         - 1e-9)
    shape = (t_len, c // group, group // LANES, LANES)
    mj = e.reshape(shape).max(-1)                       # [T, NG, lane groups]
    has = nz.reshape(shape).any(-1)
    spread = mj.max(-1) - np.where(has, mj, np.iinfo(np.int64).max).min(-1)
    safe = (spread <= allowed) | ~has.any(-1)           # [T, NG]; all-zero groups add only zeros
    return np.ascontiguousarray(safe.reshape(t_len // tb, tb, -1).all(1))


def _rtl(quant: BitmodQuant, a2: np.ndarray, config: PEConfig, *, twosum: bool = False) -> np.ndarray:
    """Finite widths on the float-lane kernel (module doc, :mod:`._float_kernels`).

    ``twosum=True`` uses the TwoSum accumulator adds everywhere, also where the exact adds are
    proven exact (the tests compare the two forms).
    """
    k_out, c = quant.codes.shape
    t_len = a2.shape[0]
    g = config.guard_bits
    tb = 4 if t_len <= 4 else 16
    nb = -(-t_len // tb)
    ap = np.zeros((nb * tb, c), np.float16)
    ap[:t_len] = a2
    _, e, _ = _decode_f16(ap)
    # [B, C, TB]: a token block's lanes contiguous; act * 2**(25+g) is an 11-bit significand
    z = (ap.astype(np.float32) * np.float32(2.0 ** (25 + g))).reshape(nb, tb, c).transpose(0, 2, 1)
    a2p = np.ldexp(np.float32(1), e).astype(np.float32).reshape(nb, tb, c).transpose(0, 2, 1)
    w_tab, u_tab = _float_tables(quant.bits)
    if quant.scale_codes is not None:
        gscale = quant.scale_codes.astype(np.float64) * 2.0 ** (-25 - g)
        _, ce, cm = _decode_f16(quant.channel_scales)
        ch, has_ch = np.ldexp(cm.astype(np.float64), ce - _BIAS_FRAC), True
    else:  # the PE reads the FP16 scale's significand and exponent (sign ignored)
        _, se, sm = _decode_f16(quant.scales)
        gscale = np.ldexp(sm.astype(np.float64), se - _BIAS_FRAC - 25 - g)
        ch, has_ch = np.zeros(k_out), False
    safe = _safe_blocks(e, ap != 0, quant.group, g, quant.bits, config.acc_man_bits, tb)
    if twosum:
        safe[:] = False
    out = np.empty((nb, tb, k_out))
    _fk.pe_rows(np.ascontiguousarray(quant.codes, dtype=np.int8).view(np.uint8), w_tab, u_tab,
                np.ascontiguousarray(z), np.ascontiguousarray(a2p), np.ascontiguousarray(gscale), has_ch,
                np.ascontiguousarray(ch), quant.group, 54 - config.acc_man_bits, 54 - config.deq_man_bits,
                54 - config.out_man_bits, safe, config.rounding is Rounding.TRUNCATE, out, _ROWS_PER_BLOCK,
                t_len * c * k_out >= _PARALLEL_MACS)
    return out.reshape(nb * tb, k_out)[:t_len]


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dekker split: x = hi + lo exactly, hi with <= 26 significant bits, lo with <= 27."""
    t = x * 134217729.0  # 2**27 + 1
    hi = t - (t - x)
    return hi, x - hi


def _exact(quant: BitmodQuant, a2: np.ndarray) -> np.ndarray:
    """``PEConfig.exact()``: the exact dot product rounded once to float64 (module doc,
    :mod:`._exact_kernels`)."""
    k_out, c = quant.codes.shape
    t_len = a2.shape[0]
    tb = 4 if t_len <= 4 else 16
    nb = -(-t_len // tb)
    ap = np.zeros((nb * tb, c))
    ap[:t_len] = a2
    if quant.scale_codes is None:   # x = D 2**-24 * sm 2**(se-25) = D sm 2**(se-1) * 2**-48
        _, se, s_k = _decode_f16(quant.scales)
        sh_k = se - 1
        mul_k = np.ones(k_out, np.int64)
        exp_k = np.full(k_out, -48, np.int64)
    else:                           # x = D 2**-24 * q * cm 2**(ce-25): sum D q, then * cm
        s_k = quant.scale_codes.astype(np.int64)
        sh_k = np.zeros_like(s_k)
        _, ce, mul_k = _decode_f16(quant.channel_scales)
        exp_k = ce - 49
    out = np.empty((nb, tb, k_out))
    _ek.exact_rows(np.ascontiguousarray(quant.codes, dtype=np.int8),
                   np.ascontiguousarray(ap.reshape(nb, tb, c).transpose(0, 2, 1)),
                   np.ascontiguousarray(s_k), np.ascontiguousarray(sh_k), np.ascontiguousarray(mul_k),
                   np.ascontiguousarray(exp_k), quant.group,
                   min(16 if quant.bits in (6, 8) else 128, quant.group), out, _ROWS_PER_BLOCK,
                   t_len * c * k_out >= _PARALLEL_MACS)
    return out.reshape(nb * tb, k_out)[:t_len]


def _exact_fsum(quant: BitmodQuant, a2: np.ndarray) -> np.ndarray:
    """The exact PE from Dekker-split pieces and ``math.fsum`` (the previous path; a test reference)."""
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
