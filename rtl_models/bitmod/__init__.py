"""Bit-exact BitMoD (HPCA'25) datapath: weight quantizer, bit-serial terms, cycle-stepped PE.

Sources: BitMoD (Chen et al., HPCA 2025; arXiv 2411.11745): Table IV, Algorithm 1 and §III-C
(datatypes, quantizer), §IV-A and Figs. 4-5 (bit-serial terms, PE); its artifact
abdelfattah-lab/BitMoD-HPCA-25 (``bitmod_quant/quant_utils/quant_weight.py``); the
pre-publication RTL yc2367/BitMoD ``hardware/pe/*.v`` (Booth table, PE widths).
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
