"""Recurrent-state precision of the MatMul-free core: the storage formats and the output
error each causes (see :mod:`simulators.matmulfree`)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["STATE_PRECISIONS", "MatMulFreeInputError", "state_error"]


class MatMulFreeInputError(ValueError):
    """Bad input to the MatMul-free model: unknown model or a design value out of range."""


#: state precision -> (bits per stored state value, conversion ALMs in the row-wise unit; assumed)
STATE_PRECISIONS: dict[str, tuple[int, int]] = {"fp32": (32, 0), "bf16": (16, 60), "fp16": (16, 150),
                                                "int16": (16, 100)}


@lru_cache(maxsize=None)
def state_error(precision: str) -> float:
    """Relative RMS error of MLGRU outputs when the recurrent state is stored in ``precision``.

    One MLGRU layer (``rtl_models.ternary.mlgru_sequence``) at d=64 with seeded random
    weights (numpy default_rng(2406)), 64 tokens of N(0,1) input, the state rounded to the
    format after every token (as a decode loop stores it), compared with fp32 state:
    ``||out - out_fp32|| / ||out_fp32||``. Indicative only (random weights, small size).
    int16 is fixed point s5.10.
    """
    if precision not in STATE_PRECISIONS:
        raise MatMulFreeInputError(f"state_precision={precision!r}; allowed: {', '.join(STATE_PRECISIONS)}")
    if precision == "fp32":
        return 0.0
    from rtl_models.ternary import BitLinearParams, MLGRUParams, StatePrecision, mlgru_sequence

    rng = np.random.default_rng(2406)
    dm = 64

    def lin() -> BitLinearParams:
        return BitLinearParams.from_float(rng.normal(0, dm ** -0.5, (dm, dm)), 1 + 0.1 * rng.normal(size=dm))

    params = MLGRUParams(i_proj=lin(), f_proj=lin(), g_proj=lin(), o_proj=lin(),
                         g_norm_gamma=np.ones(dm, dtype=np.float32))
    x = rng.normal(size=(64, dm)).astype(np.float32)
    fmt = StatePrecision(format="fixed", int_bits=5, frac_bits=10) if precision == "int16" else \
        StatePrecision(format=precision)
    ref = mlgru_sequence(x, params).out.astype(np.float64)
    out = mlgru_sequence(x, params, state=fmt).out.astype(np.float64)
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
