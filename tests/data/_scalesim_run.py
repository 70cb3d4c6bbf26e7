"""Shared helpers of the SCALE-Sim 3.0.0 golden generators (not a test, not project code).

Used by ``gen_scalesim_topologies.py`` and ``gen_scalesim_user_goldens.py``. The config
template, the header-only layout file and the report parsing come from
``gen_scalesim_goldens.py`` (the first generator), loaded here by path because ``tests/data`` is
not a package. Run only inside the SCALE-Sim virtualenv (``scalesim==3.0.0``, ``numpy<2.4``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["GEN", "check_versions", "config_text", "run_scalesim", "REPORT_COLS"]


def _load_generator():
    path = Path(__file__).resolve().parent / "gen_scalesim_goldens.py"
    spec = importlib.util.spec_from_file_location("gen_scalesim_goldens", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


GEN = _load_generator()
REPORT_COLS = GEN.COMPUTE_COLS + GEN.BANDWIDTH_COLS + GEN.DETAIL_COLS


def check_versions() -> None:
    """Stop unless this interpreter has scalesim 3.0.0 with numpy < 2.4."""
    import numpy
    from importlib.metadata import version

    np_ver = tuple(int(x) for x in re.findall(r"\d+", numpy.__version__)[:2])
    if version("scalesim") != "3.0.0" or np_ver >= (2, 4):
        raise SystemExit(f"need scalesim 3.0.0 and numpy<2.4, got scalesim {version('scalesim')}"
                         f" numpy {numpy.__version__}")


def config_text(*, rows: int, cols: int, dataflow: str, ifmap_kb: int, filter_kb: int,
                ofmap_kb: int, user_bw: int | None = None, bank_num: int = 10,
                bank_port: int = 2) -> str:
    """SCALE-Sim config: CALC mode by default, USER mode with ``user_bw`` words/cycle.

    In USER mode SCALE-Sim takes the IFMAP and filter DRAM bandwidth from
    ``[layout] IfmapSRAMBankBandwidth`` / ``FilterSRAMBankBandwidth`` and only the OFMAP one from
    ``Bandwidth`` (single_layer_sim.run); all three are set to ``user_bw`` here. The bank
    bandwidth must be a multiple of ``bank_num`` (read_buffer.set_params asserts it).
    """
    text = GEN.CONFIG_TEMPLATE.format(run_name="run", rows=rows, cols=cols, ifmap_kb=ifmap_kb,
                                      filter_kb=filter_kb, ofmap_kb=ofmap_kb, dataflow=dataflow)
    if user_bw is None:
        return text
    if user_bw % bank_num:
        raise ValueError(f"user_bw={user_bw} must be a multiple of bank_num={bank_num}")
    subs = [("\nBandwidth : 10\n", f"\nBandwidth : {user_bw}\n"),
            ("IfmapSRAMBankBandwidth : 10\n", f"IfmapSRAMBankBandwidth : {user_bw}\n"),
            ("FilterSRAMBankBandwidth : 10\n", f"FilterSRAMBankBandwidth : {user_bw}\n"),
            ("IfmapSRAMBankNum : 10\n", f"IfmapSRAMBankNum : {bank_num}\n"),
            ("FilterSRAMBankNum : 10\n", f"FilterSRAMBankNum : {bank_num}\n"),
            ("IfmapSRAMBankPort : 2\n", f"IfmapSRAMBankPort : {bank_port}\n"),
            ("FilterSRAMBankPort : 2\n", f"FilterSRAMBankPort : {bank_port}\n"),
            ("InterfaceBandwidth : CALC\n", "InterfaceBandwidth : USER\n")]
    for old, new in subs:
        if text.count(old) != 1:
            raise RuntimeError(f"config template changed: {old.strip()!r} not found exactly once")
        text = text.replace(old, new)
    return text


def _read_report_rows(path: str, ncols: int) -> list[list[str]]:
    with open(path) as f:
        lines = [ln.strip() for ln in f if ln.strip()]
    rows = []
    for i, line in enumerate(lines[1:]):
        fields = [x.strip() for x in line.split(",")]
        if fields[-1] == "":
            fields = fields[:-1]
        if len(fields) != ncols + 1 or fields[0] != str(i):
            raise RuntimeError(f"{path}: unexpected row {line!r}")
        rows.append(fields[1:])
    return rows


def run_scalesim(cfg_text: str, topo_text: str, gemm: bool, extra=None) -> tuple[list[dict], float]:
    """Run SCALE-Sim (Python API, no traces) on one topology; return per-layer dicts and wall s.

    Every report column (COMPUTE, BANDWIDTH, DETAILED_ACCESS) is parsed from the report files and
    checked against the layer objects' ``get_*_report_items``; integer-valued numbers are written
    without ".0". ``extra(layer_obj) -> dict`` adds items read from each layer object.
    """
    from scalesim.scale_sim import scalesim  # only the SCALE-Sim venv has it

    with tempfile.TemporaryDirectory(prefix="scalesim_gen_") as tmp:
        cfg, topo, layout = (os.path.join(tmp, x) for x in ("cfg.cfg", "topo.csv", "layout.csv"))
        with open(cfg, "w") as f:
            f.write(cfg_text)
        with open(topo, "w") as f:
            f.write(topo_text)
        with open(layout, "w") as f:
            f.write(GEN.LAYOUT_HEADER)
        sim = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo,
                       layout=layout, input_type_gemm=gemm)
        t0 = time.perf_counter()
        sim.run_scale(top_path=os.path.join(tmp, "out"))
        wall = time.perf_counter() - t0
        rep = os.path.join(tmp, "out", "run")
        per_file = [_read_report_rows(os.path.join(rep, name), len(cols))
                    for name, cols in (("COMPUTE_REPORT.csv", GEN.COMPUTE_COLS),
                                       ("BANDWIDTH_REPORT.csv", GEN.BANDWIDTH_COLS),
                                       ("DETAILED_ACCESS_REPORT.csv", GEN.DETAIL_COLS))]
        layers = sim.runner.single_layer_sim_object_list
        if not all(len(p) == len(layers) for p in per_file):
            raise RuntimeError("report row count differs from the number of layer objects")
        out = []
        for i, layer in enumerate(layers):
            row = {}
            for cols, vals in zip((GEN.COMPUTE_COLS, GEN.BANDWIDTH_COLS, GEN.DETAIL_COLS),
                                  (p[i] for p in per_file)):
                row.update(zip(cols, vals))
            api = dict(zip(GEN.COMPUTE_COLS, layer.get_compute_report_items()))
            api.update(zip(GEN.BANDWIDTH_COLS, layer.get_bandwidth_report_items()))
            api.update(zip(GEN.DETAIL_COLS, layer.get_detail_report_items()))
            for key, text in row.items():
                if float(text) != float(api[key]):
                    raise RuntimeError(f"layer {i}: API {key}={api[key]!r} but report says {text!r}")
            row = {k: GEN._canon(v) for k, v in row.items()}
            row["layer_name"] = sim.topo.get_layer_name(i)
            if extra is not None:
                row.update(extra(layer))
            out.append(row)
    return out, wall
