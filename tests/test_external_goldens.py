"""Consistency of the committed external-tool goldens (SCALE-Sim 3.0.0 topologies and USER mode,
ZigZag 3.9.1), checked without the tools installed.

These tests check the golden *data* against rules derived independently from the tools' source
(tests/data/scalesim_topology_conventions.md, experiments/systolic/scalesim_user_mode.md,
experiments/systolic/zigzag_crosscheck.md); the model tests that use the goldens live elsewhere.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
EXP = ROOT / "experiments" / "systolic"


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _stall_free(M: int, N: int, K: int, R: int, C: int, df: str) -> int:
    """SCALE-Sim's CALC Total Cycles: folds x per-fold lines - 1 (os drain not serialised)."""
    sr, sc, t = {"os": (M, N, K), "ws": (K, N, M), "is": (K, M, N)}[df]
    per_fold = t + R + C - 2 if df == "os" else 2 * R + C + t - 2
    return math.ceil(sr / R) * math.ceil(sc / C) * per_fold - 1


def test_topology_parse_table_follows_ceil_ofmap_rule():
    rows = [r for r in _rows(DATA / "scalesim_topology_layers.csv") if r["parse_status"] == "ok"]
    assert len(rows) > 300
    for r in rows:
        h, w, fh, fw, c, s = (int(r[k]) for k in ("ifmap_h", "ifmap_w", "filter_h", "filter_w",
                                                  "channels", "stride_h"))
        assert int(r["stride_w"]) == s
        assert int(r["ofmap_h"]) == math.ceil((h - fh) / s) + 1, r
        assert int(r["ofmap_w"]) == math.ceil((w - fw) / s) + 1, r
        assert int(r["window_size"]) == fh * fw * c
        if r["input_type"] == "gemm":  # [name, M, K, 1, K, 1, N, 1]
            assert (fh, c, s) == (1, 1, 1) and fw == w and int(r["ofmap_w"]) == 1


def test_topology_parse_table_records_unreadable_files():
    bad = {r["topology_file"]: r["parse_status"]
           for r in _rows(DATA / "scalesim_topology_layers.csv") if r["parse_status"] != "ok"}
    assert set(bad) == {"conv_nets/MobileNet_4k_non_dw.csv", "conv_nets/Resnet50.csv",
                        "conv_nets/UNet_maestro.csv", "conv_nets/mobilnet_4k.csv",
                        "conv_nets/mobilnet_reduce_run.csv"}
    assert all(v.startswith("error: IndexError") for v in bad.values())


def test_topology_goldens_lowering_and_cycles():
    rows = _rows(DATA / "scalesim_topology_goldens.csv")
    assert len(rows) >= 500
    files = {r["topology_file"] for r in rows}
    assert "random_conv.csv" in files and any(f.startswith("GEMM_mnk/") for f in files)
    for r in rows:
        M, N, K, R, C = (int(r[k]) for k in ("M", "N", "K", "rows", "cols"))
        assert M == int(r["ofmap_h"]) * int(r["ofmap_w"])
        assert K == int(r["filter_h"]) * int(r["filter_w"]) * int(r["channels"])
        assert N == int(r["num_filters"])
        assert int(r["total_cycles"]) == _stall_free(M, N, K, R, C, r["dataflow"]), r
        assert int(r["stall_cycles"]) == 0


def test_topology_goldens_pad_entries_only_when_stride_does_not_divide():
    for r in _rows(DATA / "scalesim_topology_goldens.csv"):
        h, w, fh, fw, c, s = (int(r[k]) for k in ("ifmap_h", "ifmap_w", "filter_h", "filter_w",
                                                  "channels", "stride_h"))
        oh, ow = int(r["ofmap_h"]), int(r["ofmap_w"])
        # taps past the edge: rows oy*s+fy >= h, columns ox*s+fx >= w (counted independently)
        bad_rows = sum(1 for oy in range(oh) for fy in range(fh) if oy * s + fy >= h)
        bad_cols = sum(1 for ox in range(ow) for fx in range(fw) if ox * s + fx >= w)
        good = (oh * fh - bad_rows) * (ow * fw - bad_cols) * c
        assert int(r["ifmap_pad_entries"]) == oh * ow * fh * fw * c - good, r


def _user_model():
    path = EXP / "scalesim_user_model.py"
    spec = importlib.util.spec_from_file_location("scalesim_user_model", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_user_goldens_include_scalesim_ci_numbers():
    ci = {r["dataflow"]: r for r in _rows(DATA / "scalesim_user_goldens.csv") if r["group"] == "ci"}
    assert {df: int(r["stall_cycles"]) for df, r in ci.items()} == {"os": 42272, "ws": 41248,
                                                                   "is": 5777}


@pytest.mark.parametrize("group", ["ci", "conv", "random"])
def test_user_reference_reproduces_scalesim_exactly(group):
    rows = [r for r in _rows(DATA / "scalesim_user_goldens.csv") if r["group"] == group]
    assert rows
    user_mode = _user_model().user_mode
    for r in rows[:12]:
        conv = None
        if r["input_type"] == "conv":
            conv = tuple(int(r[k]) for k in ("ifmap_h", "ifmap_w", "filter_h", "filter_w",
                                             "channels", "num_filters", "stride"))
        res = user_mode(int(r["M"]), int(r["N"]), int(r["K"]), int(r["rows"]), int(r["cols"]),
                  r["dataflow"], int(r["ifmap_sram_kb"]), int(r["filter_sram_kb"]),
                  int(r["ofmap_sram_kb"]), int(r["bw"]), conv)
        for key, val in res.items():
            assert val == int(float(r[key])), (r["case_id"], key, val, r[key])


def test_zigzag_results_are_self_consistent():
    rows = _rows(EXP / "zigzag_results.csv")
    assert len(rows) >= 3 * 24
    for r in rows:
        parts = float(r["mac_energy_pj"]) + sum(float(r[f"energy_{lv}_{op}_pj"])
                                               for lv in ("sram", "dram") for op in "IWO")
        assert float(r["energy_total_pj"]) == pytest.approx(parts, rel=1e-9)
        macs = int(r["M"]) * int(r["N"]) * int(r["K"])
        assert float(r["mac_energy_pj"]) == pytest.approx(0.3 * macs, rel=1e-9)
        # every operand crosses the DRAM at least once (bits = 8 per I/W word, O_final 8 bit)
        if r["form"] == "gemm":
            assert int(r["dram_I_read_bits"]) >= 8 * int(r["M"]) * int(r["K"]) * 0.999
        assert int(r["dram_W_read_bits"]) >= 8 * int(r["K"]) * int(r["N"]) * 0.999
        assert int(r["dram_O_write_bits"]) >= 8 * int(r["M"]) * int(r["N"]) * 0.999
        dram_pj = sum(float(r[f"energy_dram_{op}_pj"]) for op in "IWO")
        bits = sum(int(r[k]) for k in ("dram_I_read_bits", "dram_W_read_bits",
                                       "dram_O_write_bits", "dram_O_read_bits"))
        assert dram_pj == pytest.approx(bits * 1300 / 64, rel=1e-6)
