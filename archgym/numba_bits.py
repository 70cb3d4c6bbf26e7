"""Bit-level numba intrinsics shared by the simulators' and datapaths' kernels."""

from __future__ import annotations

from llvmlite import ir
from numba.core import types
from numba.core.extending import intrinsic

__all__ = ["ctlz"]


@intrinsic
def ctlz(typingctx, x):
    """Count of leading zero bits of an int64 (LLVM ``ctlz``: one instruction; 64 for 0).
    Callable from ``@numba.njit`` code only."""
    sig = types.int64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.ctlz(args[0], ir.Constant(ir.IntType(1), 0))

    return sig, codegen
