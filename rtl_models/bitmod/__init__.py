"""Bit-exact BitMoD (HPCA'25) datapath: weight quantizer, bit-serial terms, cycle-stepped PE.

Reference: /work/shared/reference/bitmod.md §1 (datatypes, quantizer) and §2 (PE).
numpy/numba only; torch is used only by the tests.
"""

from .datatypes import (
    BitmodInputError,
    Term,
    ValueSet,
    allowed_codes,
    candidate_sets,
    cycles_per_group,
    decompose_terms,
    row_cycles,
    terms_per_weight,
)
from .pe import BitmodPE, PEConfig, PEDotResult, PEResult, Rounding, pe_dot
from .quantizer import SCALE_DTYPES, BitmodQuant, quantize_weights

__all__ = [
    "BitmodInputError",
    "BitmodPE",
    "BitmodQuant",
    "PEConfig",
    "PEDotResult",
    "PEResult",
    "Rounding",
    "SCALE_DTYPES",
    "Term",
    "ValueSet",
    "allowed_codes",
    "candidate_sets",
    "cycles_per_group",
    "decompose_terms",
    "pe_dot",
    "quantize_weights",
    "row_cycles",
    "terms_per_weight",
]
