"""SCALE-Sim topology CSVs as workloads (issue #13 item 1a, item 6 for CSVs): SCALE-Sim's own
parse of every shipped file, its per-layer "Total Cycles" through SystolicSimulator(mode="scalesim"),
and one-line errors for malformed files (exit 2 from the CLI)."""

import collections
import csv
from pathlib import Path

import pytest

from archgym.cli import main
from archgym.workloads import Conv, Gemm, WorkloadError, load_workload
from archgym.workloads.scalesim_topology import read_topology
from simulators.systolic import SystolicSimulator

DATA = Path(__file__).parent / "data"
TOPO = DATA / "scalesim_topologies"
PARSE = list(csv.DictReader((DATA / "scalesim_topology_layers.csv").open()))
GOLD = list(csv.DictReader((DATA / "scalesim_topology_goldens.csv").open()))
FILES = sorted({r["topology_file"] for r in PARSE})


@pytest.mark.parametrize("name", FILES)
def test_reads_every_shipped_file_as_scalesim_parses_it(name):
    """tests/data/scalesim_topology_layers.csv is SCALE-Sim 3.0.0's own parser run on each file
    (gen_scalesim_topologies.py): same layers, names, order, output sizes, GEMM lowering and MACs;
    the files it cannot read are refused with one line."""
    rows = [r for r in PARSE if r["topology_file"] == name]
    if rows[0]["parse_status"] != "ok":
        with pytest.raises(WorkloadError) as e:
            read_topology(TOPO / name)
        assert str(TOPO / name) in str(e.value) and "\n" not in str(e.value)
        return
    w = read_topology(TOPO / name)
    assert [l.name for l in w.layers] == [r["layer_name"] for r in rows]
    for layer, r in zip(w.layers, rows):
        g = layer.as_gemm() if isinstance(layer, Conv) else layer
        assert (g.m, g.k, g.n) == (int(r["ofmap_px_per_filter"]), int(r["window_size"]), int(r["num_filters"]))
        assert g.macs == int(r["num_macs"])
        if isinstance(layer, Conv):
            assert (layer.out_h, layer.out_w) == (int(r["ofmap_h"]), int(r["ofmap_w"]))
            assert (layer.in_h, layer.in_w, layer.filter_h, layer.filter_w, layer.channels, layer.stride_h) == tuple(
                int(r[k]) for k in ("ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "stride_h"))
        else:
            assert r["input_type"] == "gemm"


def test_goldens_cover_files_arrays_and_dataflows():
    assert len(GOLD) >= 900
    assert {r["dataflow"] for r in GOLD} == {"os", "ws", "is"}
    assert len({r["topology_file"] for r in GOLD}) >= 14  # shipped files + random_conv.csv under the cycle cap
    assert any(r["layer_name"].startswith("DP") for r in GOLD)


GROUPS = collections.defaultdict(list)
for _r in GOLD:
    GROUPS[(_r["topology_file"], int(_r["rows"]), int(_r["cols"]), _r["dataflow"])].append(_r)


@pytest.mark.parametrize("key", sorted(GROUPS), ids=[f"{k[0]}-{k[1]}x{k[2]}-{k[3]}" for k in sorted(GROUPS)])
def test_scalesim_mode_per_layer_total_cycles_exact(key):
    """Every golden layer: SystolicSimulator(mode="scalesim").evaluate(design, file) reports SCALE-Sim
    3.0.0's "Total Cycles" in breakdown[layer]["cycles"], and its SRAM read/write counts; the
    workload's cycles are the sum of its layers'."""
    name, R, C, df = key
    sim = SystolicSimulator(mode="scalesim", max_area_mm2=1e12)
    design = {**sim.default_design(), "rows": R, "cols": C, "dataflow": df, "ifmap_sram_kb": 4096,
              "filter_sram_kb": 4096, "ofmap_sram_kb": 4096}
    m = sim.evaluate(design, str(TOPO / name))
    assert m.cycles == sum(e["cycles"] for e in m.breakdown.values())
    for r in GROUPS[key]:
        e = m.breakdown[r["layer_name"]]
        assert e["cycles"] == int(r["total_cycles"]), r["layer_name"]
        assert e["ifmap_sram_read_bits"] == 8 * int(r["ifmap_sram_reads"])
        assert e["filter_sram_read_bits"] == 8 * int(r["filter_sram_reads"])
        assert e["ofmap_sram_write_bits"] == 32 * int(r["ofmap_sram_writes"])


def test_depthwise_rows_expand_like_scalesim(tmp_path):
    p = tmp_path / "dw.csv"
    p.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
                 "conv1, 10, 10, 3, 3, 3, 8, 2,\nmyDP, 9, 9, 3, 3, 3, 5, 1,\n")
    w = read_topology(p)
    assert [l.name for l in w.layers] == ["conv1", "myDPChannel_0", "myDPChannel_1", "myDPChannel_2"]
    assert all(l.channels == 1 and l.num_filters == 5 for l in w.layers[1:])
    # SCALE-Sim's ceil output size: (10 - 3 + 2) / 2 -> 5 rows, where PyTorch has 4
    assert (w.layers[0].out_h, w.layers[0].out_w) == (5, 5)


def test_gemm_format_and_batch(tmp_path):
    g = tmp_path / "g.csv"
    g.write_text("Layer, M, N, K,\nfc, 64, 32, 48,\n")
    w = load_workload(str(g))
    assert w.layers == (Gemm("fc", m=64, k=48, n=32, a_bits=8, w_bits=8),)
    with pytest.raises(WorkloadError, match="batch=2 applies to conv topologies"):
        load_workload(f"{g}?batch=2")
    c = tmp_path / "c.csv"
    c.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
                 "c0, 8, 8, 3, 3, 4, 16, 1,\n")
    one, four = load_workload(str(c)), load_workload(f"{c}?batch=4")
    assert four.layers[0].as_gemm().m == 4 * one.layers[0].as_gemm().m == 4 * 36
    assert four.params["batch"] == 4 and "sha256=" in four.source


CONV_HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"


@pytest.mark.parametrize("body, message", [
    (CONV_HEADER + "c0, 8, 8, 3, 3, 4, 16,\n", "line 2: 7 fields before the last comma, expected 8"),
    (CONV_HEADER + "c0, 8, 8, 3, 3, 4, 16, 1\n", "every row must end with ','"),
    (CONV_HEADER + "c0, 8, 8, 3, 3, 4.5, 16, 1,\n", "line 2: channels='4.5' is not an integer"),
    (CONV_HEADER + "c0, 8, 0, 3, 3, 4, 16, 1,\n", "line 2: ifmap_w=0 must be a positive integer"),
    (CONV_HEADER + "c0, 8, 8, 3, 3, 4, -16, 1,\n", "line 2: num_filters=-16 must be a positive integer"),
    (CONV_HEADER + "c0, 8, 8, 3, 3, 4, 16, 0,\n", "line 2: stride=0 must be a positive integer"),
    (CONV_HEADER + "\nc0, 2, 8, 3, 3, 4, 16, 1,\n", "line 3: filter 3x3 is larger than its input 2x8"),
    ("Layer, A, B, C,\nx, 1, 2, 3,\n", "line 1: header 'Layer, A, B, C,' is neither"),
    ("Layer\tM\tN\tK\nx\t1\t2\t3\n", "is neither SCALE-Sim's conv header"),
    ("", "line 1: empty"),
    ("Layer, M, N, K,\n", "no layers after the header"),
    ("Layer, M, N, K,\nfc, 4, 4, 4,\nfc, 8, 8, 8,\n", "line 3: layer name 'fc' already used on line 2"),
    ("Layer, M, N, K,\n, 4, 4, 4,\n", "line 2: empty layer name"),
    ("Layer, M, N, K,\nfc, 4, 4, 4, 2-4,\n", "line 2: sparsity='2-4' must look like N:M"),
])
def test_malformed_csv_is_one_line_naming_file_and_line(tmp_path, body, message):
    p = tmp_path / "bad.csv"
    p.write_text(body)
    with pytest.raises(WorkloadError) as e:
        load_workload(str(p))
    text = str(e.value)
    assert message in text and str(p) in text and "\n" not in text


def test_sparsity_column_is_kept_not_priced(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("Layer, M, N, K,\nfc, 4, 4, 4, 2:4,\n")
    w = read_topology(p)
    assert w.meta["sparsity"] == {"fc": (2, 4)}


def test_cli_eval_on_a_topology_and_exit_2_on_a_bad_one(tmp_path, capsys):
    good = tmp_path / "good.csv"
    good.write_text("Layer, M, N, K,\nqk, 256, 256, 128,\nav, 256, 128, 256,\n")
    assert main(["eval", "archgym/Systolic-v0", "--workload", str(good)]) == 0
    out = capsys.readouterr().out
    assert "good.csv?sha256=" in out and "cycles = " in out
    bad = tmp_path / "bad.csv"
    bad.write_text("Layer, M, N, K,\nqk, 256, x, 128,\n")
    assert main(["eval", "archgym/Systolic-v0", "--workload", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archgym: error: ") and "line 2: N='x' is not an integer" in err
    assert err.count("\n") == 1 and "Traceback" not in err
