"""Slow plain-Python references of the systolic kernels (the tests compare them with numba).

:func:`best_mapping` searches the legal mapping set of :mod:`simulators.systolic` exhaustively
(every order of the three DRAM loops, every candidate tile of M, K and N, every choice of which
operands' tiles are held in their SRAMs) and returns the lexicographic minimum of (DRAM bits,
compute cycles).  It shares no code with :mod:`simulators._systolic_mapper`, which finds the
same minimum by a case analysis; it is exponential-ish and meant for small layers.
"""

from __future__ import annotations

import itertools

__all__ = ["candidate_tiles", "mapping_cost", "best_mapping"]

PSUM_BITS = 32
DIMS = ("m", "k", "n")
# operand -> the two GEMM dims it is indexed by
OPERAND_DIMS = {"ifmap": ("m", "k"), "filter": ("k", "n"), "ofmap": ("m", "n")}
# dataflow -> (dim on the array rows, dim on the array columns, streamed dim)
DATAFLOW_DIMS = {"os": ("m", "n", "k"), "ws": ("k", "n", "m"), "is": ("k", "m", "n")}


def candidate_tiles(d: int) -> list[int]:
    """Tile sizes a dim of size ``d`` may take: every power of two below d, and d itself."""
    out, t = [], 1
    while t < d:
        out.append(t)
        t *= 2
    return out + [d]


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def mapping_cost(dims: dict, tiles: dict, order: tuple, held: dict, *, rows: int, cols: int,
                 dataflow: str, sram_bits: dict, a_bits: int, w_bits: int) -> tuple[int, int, dict] | None:
    """(DRAM bits, compute cycles, DRAM passes per operand) of one mapping, or None if illegal.

    ``order`` lists the DRAM loops outer to inner; ``held[op]`` says whether the operand's
    tile is kept in its SRAM (it must be when the array reads it more than once per tile).
    """
    rdim, cdim, tdim = DATAFLOW_DIMS[dataflow]
    n = {d: _ceil(dims[d], tiles[d]) for d in DIMS}
    # how many array passes read each operand's tile element: the operand on the row side
    # (indexed by the row and streamed dims) once per column fold of the tile, the one on
    # the column side once per row fold, the stationary one once
    stationary = next(op for op, ds in OPERAND_DIMS.items() if set(ds) == {rdim, cdim})
    row_side = next(op for op, ds in OPERAND_DIMS.items() if set(ds) == {rdim, tdim})
    col_side = next(op for op, ds in OPERAND_DIMS.items() if set(ds) == {cdim, tdim})
    reuse = {stationary: 1, row_side: _ceil(tiles[cdim], cols), col_side: _ceil(tiles[rdim], rows)}
    bits_held = {"ifmap": a_bits, "filter": w_bits, "ofmap": PSUM_BITS}
    passes = {}
    depth = {d: order.index(d) for d in DIMS}
    for op, ds in OPERAND_DIMS.items():
        if reuse[op] > 1 and not held[op]:
            return None
        if held[op]:
            size = tiles[ds[0]] * tiles[ds[1]] * bits_held[op]
            if size > sram_bits[op] // 2:
                return None
        irr = next(d for d in DIMS if d not in ds)
        inner_rel = [depth[d] for d in ds if n[d] > 1]
        # a held tile survives the iterations of its missing dim when that loop runs inside
        # every loop (with more than one iteration) that changes the tile
        stays = held[op] and all(depth[irr] > x for x in inner_rel)
        passes[op] = 1 if (n[irr] == 1 or stays) else n[irr]
    M, K, N = dims["m"], dims["k"], dims["n"]
    o = passes["ofmap"]
    bits = M * K * a_bits * passes["ifmap"] + K * N * w_bits * passes["filter"]
    bits += M * N * a_bits + 2 * PSUM_BITS * M * N * (o - 1)
    # every array pass, enumerated: a tile of the row dim splits into row folds of at most
    # `rows`, a tile of the column dim into column folds of at most `cols`.  Passes are
    # pipelined through double-buffered stationary registers: a pass using a rows and streaming
    # t elements occupies the array for max(t, a) cycles (the stream, or the a-cycle shift of
    # the next stationary tile in or of its results out), every column fold repeats the same
    # row x stream passes, and one traversal of the height plus the skew across the columns in
    # use, rows + min(column dim, cols) - 2, is paid once per GEMM
    pt = _pieces(dims[tdim], tiles[tdim], dims[tdim])
    pa = _pieces(dims[rdim], tiles[rdim], rows)
    pb = _pieces(dims[cdim], tiles[cdim], cols)
    compute = len(pb) * sum(max(t, a) for t in pt for a in pa) + rows + min(dims[cdim], cols) - 2
    return bits, compute, passes


def _pieces(d: int, tile: int, fold: int) -> list[int]:
    """Sizes of the folds of a dim of size d cut into tiles, each tile into folds of at most
    ``fold``."""
    out = []
    for start in range(0, d, tile):
        size = min(tile, d - start)
        out += [min(fold, size - f) for f in range(0, size, fold)]
    return out


def best_mapping(M: int, K: int, N: int, *, rows: int, cols: int, dataflow: str, ifmap_sram_kb: float,
                 filter_sram_kb: float, ofmap_sram_kb: float, act_bits: int, weight_bits: int) -> dict:
    """Exhaustive search: the legal mapping with the fewest DRAM bits, then the fewest compute cycles."""
    dims = {"m": M, "k": K, "n": N}
    sram_bits = {"ifmap": int(ifmap_sram_kb * 8192), "filter": int(filter_sram_kb * 8192),
                 "ofmap": int(ofmap_sram_kb * 8192)}
    best = None
    for tm in candidate_tiles(M):
        for tk in candidate_tiles(K):
            for tn in candidate_tiles(N):
                tiles = {"m": tm, "k": tk, "n": tn}
                for order in itertools.permutations(DIMS):
                    for hold in itertools.product((False, True), repeat=3):
                        held = dict(zip(OPERAND_DIMS, hold))
                        r = mapping_cost(dims, tiles, order, held, rows=rows, cols=cols, dataflow=dataflow,
                                         sram_bits=sram_bits, a_bits=act_bits, w_bits=weight_bits)
                        if r is None:
                            continue
                        key = (r[0], r[1])
                        if best is None or key < best[0]:
                            best = (key, dict(tiles=tiles, order=order, held=held, passes=r[2]))
    (bits, compute), info = best
    return dict(dram_bits=bits, compute_cycles=compute, **info)
