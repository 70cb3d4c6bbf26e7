"""Per-layer breakdown of the systolic model: numbers and the chosen mapping in words.

:class:`LayerBreakdown` is the ``Metrics.breakdown`` of :mod:`simulators.systolic`: a read-only
mapping ``layer name -> {metric: value}``, computed on first access from the kernel's per-GEMM
rows (so the hot path of the search pays nothing for it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Iterator

import numpy as np

from . import _systolic_kernels as _kern

__all__ = ["LayerBreakdown", "describe_mapping", "ROLE_DIMS"]

#: dataflow -> (dim on the array rows, on the columns, streamed); dims "m", "k", "n"
ROLE_DIMS = {"os": ("m", "n", "k"), "ws": ("k", "n", "m"), "is": ("k", "m", "n")}
_OPERAND_DIMS = {"ifmap": ("m", "k"), "filter": ("k", "n"), "ofmap": ("m", "n")}
_MISSING = {"ifmap": "n", "filter": "m", "ofmap": "k"}
_COL = {f: i for i, f in enumerate(_kern.ROW_FIELDS)}


def describe_mapping(row: np.ndarray, dims: tuple[int, int, int], dataflow: str) -> str:
    """One line saying how a GEMM ``(M, K, N)`` was mapped, from its kernel row (mapped mode):
    tile sizes, the DRAM loop order (outer to inner, trip counts), which tiles are held in
    their SRAMs, where partial sums live and how often each operand crosses DRAM."""
    M, K, N = dims
    size = {"m": M, "k": K, "n": N}
    tile = {"m": int(row[_COL["tile_m"]]), "k": int(row[_COL["tile_k"]]), "n": int(row[_COL["tile_n"]])}
    trips = {d: -(-size[d] // tile[d]) for d in size}
    held_mask = int(row[_COL["held"]])
    held = {op: bool(held_mask >> i & 1) for i, op in enumerate(("ifmap", "filter", "ofmap"))}
    passes = {op: int(row[_COL[f"passes_{op}"]]) for op in ("ifmap", "filter", "ofmap")}
    rows_dim, cols_dim, t_dim = ROLE_DIMS[dataflow]
    stationary = next(op for op, ds in _OPERAND_DIMS.items() if set(ds) == {rows_dim, cols_dim})
    # the saved operand's missing dim is the innermost loop; the others' order is immaterial
    saved = next((op for op in held if held[op] and trips[_MISSING[op]] > 1 and passes[op] == 1), None)
    loops = [d for d in ("m", "k", "n") if trips[d] > 1]
    if saved is not None:
        loops.remove(_MISSING[saved])
        loops.append(_MISSING[saved])
    order = " > ".join(f"{d} x{trips[d]}" for d in loops) if loops else "one tile"
    kept = ", ".join(op for op in ("ifmap", "filter", "ofmap") if held[op]) or "none"
    if dataflow == "os":
        if trips["k"] == 1:
            psum = "PE accumulators"
        elif passes["ofmap"] == 1:
            psum = "ofmap SRAM"
        else:
            psum = f"DRAM (x{passes['ofmap']})"
    elif passes["ofmap"] > 1:
        psum = f"DRAM (x{passes['ofmap']})"
    elif held["ofmap"]:
        psum = "ofmap SRAM"
    else:
        psum = "none (K fits one row fold)"
    return (f"{dataflow}: tile M{tile['m']} K{tile['k']} N{tile['n']}; DRAM loops {order}; "
            f"held in SRAM: {kept} ({stationary} stationary in the PEs); partial sums: {psum}; "
            f"DRAM passes ifmap x{passes['ifmap']}, filter x{passes['filter']}, ofmap x{passes['ofmap']}")


class LayerBreakdown(Mapping):
    """``layer name -> metrics`` of one evaluation (lazy; see the module docstring).

    Each entry: ``cycles``, ``latency_s``, ``energy_j`` (all repetitions of the layer),
    ``compute_cycles``, ``stall_cycles``, ``fill_drain_cycles``, ``dram_bytes``, ``mac_count``,
    the energy parts (SRAM also per operand: ``{ifmap,filter,ofmap}_sram_energy_j``, and the array's
    SRAM accesses ``ifmap_sram_read_bits``, ``filter_sram_read_bits``, ``ofmap_sram_{write,read}_bits``),
    and ``mapping`` (text, :func:`describe_mapping`; for a layer of several
    GEMMs, e.g. an MoE block, one clause per GEMM).  In mapped mode a one-GEMM layer also has
    ``tile_m_count``, ``tile_k_count``, ``tile_n_count`` and ``{ifmap,filter,ofmap}_dram_passes_count``.
    """

    __slots__ = ("_workload", "_rows", "_counts", "_dataflow", "_mode", "_derive", "_data")

    def __init__(self, workload: Any, rows: np.ndarray, counts: np.ndarray, dataflow: str, mode: int,
                 derive: Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]) -> None:
        self._workload = workload  # its lowered() layers are listed on first access
        self._rows = rows
        self._counts = counts
        self._dataflow = dataflow
        self._mode = mode
        self._derive = derive
        self._data: dict[str, dict[str, Any]] | None = None

    def _build(self) -> dict[str, dict[str, Any]]:
        if self._data is not None:
            return self._data
        lowered = self._workload.lowered()
        rows, cnt = self._rows, self._counts.astype(float)
        macs = np.array([g.m * g.k * g.n for _, gs in lowered for g in gs], dtype=float) * cnt
        totals = rows[:, :len(_kern.LAYER_FIELDS)].astype(float) * cnt[:, None]
        per = self._derive(totals.T, macs, rows[:, _COL["passes"]].astype(float) * cnt)
        per["cycles"] = totals[:, 1]
        keys = ("cycles", "latency_s", "energy_j", "compute_cycles", "stall_cycles", "fill_drain_cycles",
                "dram_bytes", "mac_count", "mac_energy_j", "sram_energy_j", "dram_energy_j", "static_energy_j",
                "ifmap_sram_energy_j", "filter_sram_energy_j", "ofmap_sram_energy_j", "ifmap_sram_read_bits",
                "filter_sram_read_bits", "ofmap_sram_write_bits", "ofmap_sram_read_bits")
        data: dict[str, dict[str, Any]] = {}
        i = 0
        for name, gemms in lowered:
            sl = slice(i, i + len(gemms))
            entry: dict[str, Any] = {k: float(np.sum(per[k][sl])) for k in keys}
            entry["cycles"] = int(round(entry["cycles"]))
            texts = []
            for j, g in enumerate(gemms, start=i):
                if self._mode == _kern.MAPPED:
                    t = describe_mapping(rows[j], (g.m, g.k, g.n), self._dataflow)
                elif self._mode == _kern.FIXED:
                    t = f"{self._dataflow}: fixed loop order (mapping='fixed')"
                else:
                    t = f"{self._dataflow}: SCALE-Sim fold order (no mapping)"
                texts.append(t if len(gemms) == 1 else f"{g.name}: {t}")
            entry["mapping"] = "; ".join(texts)
            if self._mode == _kern.MAPPED and len(gemms) == 1:
                r = rows[i]
                for d in ("m", "k", "n"):
                    entry[f"tile_{d}_count"] = float(r[_COL[f"tile_{d}"]])
                for op in ("ifmap", "filter", "ofmap"):
                    entry[f"{op}_dram_passes_count"] = float(r[_COL[f"passes_{op}"]])
            data[name] = entry
            i += len(gemms)
        self._data = data
        return data

    def __getitem__(self, key: str) -> dict[str, Any]:
        return self._build()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._build())

    def __len__(self) -> int:
        return len(self._build())

    def __repr__(self) -> str:
        return f"LayerBreakdown({self._workload.source!r})"

    def __reduce__(self):
        # pickles (sweep workers, caches) as the plain dict it stands for
        return (dict, (self._build(),))
