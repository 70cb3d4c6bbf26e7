"""Integer softmax (gate scores) and integer GELU of the MoE datapath.

Both are defined entirely on int64 codes so that any implementation (this one,
the torch reference in ``tests/test_rtl_moe.py``, an HLS kernel) computes the
same bits.  Every runtime right shift / division uses the layer's
:class:`~.fixed_point.Rounding`; the ROM tables are constants computed offline
with round-half-away.

Integer exp (base-2 split + LUT with linear interpolation)
----------------------------------------------------------
For ``x >= 0`` given as a code with ``F`` fraction bits, ``e = exp(-x)`` with
``E`` fraction bits (``exp_frac_bits``) and a ``2**L + 1``-entry ROM
(``L = exp_lut_bits``):

1. ``t = shift_round(x * LOG2E_Q16, F)``: ``x * log2(e)`` with 16 fraction bits,
   ``LOG2E_Q16 = round(log2(e) * 2**16) = 94548``;
2. ``q = t >> 16`` (integer part), ``r = t & 0xFFFF`` (fraction);
3. ``i = r >> (16 - L)``, ``f = r & (2**(16 - L) - 1)``;
   ``v = ROM[i] + shift_round((ROM[i+1] - ROM[i]) * f, 16 - L)`` with
   ``ROM[j] = round(2**(E - j / 2**L))`` (so ``ROM[0] = 2**E``);
4. ``e = shift_round(v, min(q, 62))``  (``2**-q`` is a shift).

Integer softmax over the N gate logits of one token (codes ``z_j``):
``m = max_j z_j``; ``e_j = exp(-(m - z_j))`` as above (the argmax gets exactly
``2**E``); ``S = sum_j e_j``; the score of a chosen expert is
``p_j = div_round(e_j << Fs, S)`` with ``Fs`` the score format's fraction bits.
Scores are the raw top-k probabilities, not renormalised over the k chosen
(VITA-Group/M3ViT ``models/gate_funs/noisy_gate_vmoe.py``).  Edge-MoE instead runs
an online single-pass softmax with ``hls::exp`` in ``ap_fixed<32,10>``
(sharc-lab/Edge-MoE ``src/moe.cpp``, ``compute_gating``); its
bits are not reproduced, only its maths.

Integer GELU (Edge-MoE's LUT scheme, sharc-lab/Edge-MoE ``src/gelu.cpp``)
-------------------------------------------------------------------------
``GELU(x) = ReLU(x) - delta(|x|)`` with ``delta(a) = a * Phi(-a)``, tabulated in
177 entries at step 1/32 (``|x| < 5.5``) and linearly interpolated.  For an
activation code ``x`` with ``F >= 5`` fraction bits, ``s = F - 5``:

* ``a = |x|``; if ``a >= 176 << s`` the result is ``max(x, 0)``;
* else ``i = a >> s``, ``f = a & (2**s - 1)``,
  ``delta = G[i] + shift_round((G[i+1] - G[i]) * f, s)``, result
  ``max(x, 0) - delta``, where ``G[j] = round(j/32 * Phi(-j/32) * 2**F)``
  (``Phi(-a) = erfc(a / sqrt 2) / 2``).

Edge-MoE stores its table as float constants truncated to ``ap_ufixed<22,0>``;
here the table is recomputed from the formula and rounded half-away, so codes
may differ from Edge-MoE's ROM by one LSB.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .fixed_point import Rounding, div_round, shift_round

__all__ = [
    "LOG2E_Q16",
    "GELU_LUT_ENTRIES",
    "GELU_LUT_STEP_LOG2",
    "exp2_rom",
    "gelu_rom",
    "int_exp_neg",
    "int_softmax",
    "int_gelu",
    "int_relu",
]

# round(log2(e) * 2**16); log2(e) = 1.4426950408889634
LOG2E_Q16 = 94548
_T_FRAC = 16  # fraction bits of the base-2 exponent t

# Edge-MoE src/gelu.cpp: GELU_DELTA_TABLE has 177 entries, step 0.03125
GELU_LUT_ENTRIES = 177
GELU_LUT_STEP_LOG2 = 5
# (G[i+1] - G[i]) * f < 2**(F-6) * 2**(F-5) must fit int64
_GELU_MAX_FRAC = 36


@functools.lru_cache(maxsize=32)
def _exp2_rom_cached(exp_frac_bits: int, lut_bits: int) -> np.ndarray:
    n = 1 << lut_bits
    rom = np.array(
        [math.floor(2.0 ** (exp_frac_bits - j / n) + 0.5) for j in range(n + 1)], dtype=np.int64
    )
    rom.setflags(write=False)
    return rom


def exp2_rom(exp_frac_bits: int, lut_bits: int) -> np.ndarray:
    """The ``2**L + 1``-entry ROM ``round(2**(E - j / 2**L))``, read-only int64."""
    if not 1 <= lut_bits <= _T_FRAC:
        raise ValueError(f"exp_lut_bits={lut_bits} out of range; allowed 1..{_T_FRAC}")
    if not 1 <= exp_frac_bits <= 30:
        raise ValueError(f"exp_frac_bits={exp_frac_bits} out of range; allowed 1..30")
    return _exp2_rom_cached(int(exp_frac_bits), int(lut_bits))


@functools.lru_cache(maxsize=32)
def _gelu_rom_cached(frac_bits: int) -> np.ndarray:
    vals = []
    for j in range(GELU_LUT_ENTRIES):
        a = j / (1 << GELU_LUT_STEP_LOG2)
        delta = a * 0.5 * math.erfc(a / math.sqrt(2.0))
        vals.append(math.floor(math.ldexp(delta, frac_bits) + 0.5))
    rom = np.array(vals, dtype=np.int64)
    rom.setflags(write=False)
    return rom


def gelu_rom(frac_bits: int) -> np.ndarray:
    """The 177-entry GELU delta ROM ``round(a * Phi(-a) * 2**F)``, ``a = j/32``."""
    if not GELU_LUT_STEP_LOG2 <= frac_bits <= _GELU_MAX_FRAC:
        raise ValueError(
            f"GELU LUT needs {GELU_LUT_STEP_LOG2}..{_GELU_MAX_FRAC} activation fraction bits, "
            f"got {frac_bits}"
        )
    return _gelu_rom_cached(int(frac_bits))


def int_exp_neg(
    x: np.ndarray, x_frac_bits: int, exp_frac_bits: int, lut_bits: int, rounding: Rounding | str
) -> np.ndarray:
    """``exp(-x)`` for int64 codes ``x >= 0`` (``x_frac_bits`` fraction bits);
    returns codes with ``exp_frac_bits`` fraction bits (algorithm in the module
    docstring).  Needs ``x < 2**45`` so ``x * LOG2E_Q16`` fits int64."""
    x = np.asarray(x, dtype=np.int64)
    if (x < 0).any():
        raise ValueError("int_exp_neg needs x >= 0 (pass max - logit)")
    if (x >= (1 << 45)).any():
        raise ValueError("int_exp_neg needs x < 2**45 to keep x * LOG2E_Q16 inside int64")
    rom = exp2_rom(exp_frac_bits, lut_bits)
    t = shift_round(x * LOG2E_Q16, x_frac_bits, rounding)
    q = t >> _T_FRAC
    r = t & ((1 << _T_FRAC) - 1)
    s = _T_FRAC - lut_bits
    i = r >> s
    f = r & ((1 << s) - 1)
    v = rom[i] + shift_round((rom[i + 1] - rom[i]) * f, s, rounding)
    return shift_round(v, np.minimum(q, 62), rounding)


def int_softmax(
    logits: np.ndarray,
    logit_frac_bits: int,
    score_frac_bits: int,
    exp_frac_bits: int,
    lut_bits: int,
    rounding: Rounding | str,
) -> np.ndarray:
    """Integer softmax along the last axis of int64 logit codes.

    Returns probability codes with ``score_frac_bits`` fraction bits (1.0 is
    ``2**score_frac_bits``), computed for every entry; the layer keeps the top-k.
    """
    z = np.asarray(logits, dtype=np.int64)
    m = z.max(axis=-1, keepdims=True)
    e = int_exp_neg(m - z, logit_frac_bits, exp_frac_bits, lut_bits, rounding)
    s = e.sum(axis=-1, keepdims=True)
    return div_round(e << score_frac_bits, s, rounding)


def int_gelu(x: np.ndarray, frac_bits: int, rounding: Rounding | str) -> np.ndarray:
    """Integer GELU of int64 activation codes with ``frac_bits`` (>= 5) fraction
    bits, Edge-MoE's ``ReLU - delta`` LUT scheme (module docstring)."""
    rom = gelu_rom(frac_bits)
    x = np.asarray(x, dtype=np.int64)
    s = frac_bits - GELU_LUT_STEP_LOG2
    relu = np.maximum(x, 0)
    a = np.abs(x)
    inside = a < ((GELU_LUT_ENTRIES - 1) << s)
    ac = np.where(inside, a, 0)
    i = ac >> s
    f = ac & ((1 << s) - 1)
    i1 = np.minimum(i + 1, GELU_LUT_ENTRIES - 1)
    delta = rom[i] + shift_round((rom[i1] - rom[i]) * f, s, rounding)
    return np.where(inside, relu - delta, relu)


def int_relu(x: np.ndarray) -> np.ndarray:
    """ReLU on int64 codes (exact in any format)."""
    return np.maximum(np.asarray(x, dtype=np.int64), 0)
