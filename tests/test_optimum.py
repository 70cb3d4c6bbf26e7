"""``archgym optimum`` and archgym.optimum.optimum: the exact optimum and how it was found."""

import pytest

from archgym.cli import main
from archgym.optimum import NoExactMethod, optimum
from archgym.runner import make_evaluator

FIX = {"dataflow": "os", "ifmap_sram_kb": 256, "filter_sram_kb": 256, "ofmap_sram_kb": 128, "act_bits": 8,
       "weight_bits": 8}


def test_optimum_equals_brute_force_over_the_scalar_path():
    ev = make_evaluator("archgym/Systolic-v0", workload="opt-125m/decode", fixed=FIX)
    o = optimum(ev)
    assert o.method.startswith("exhaustive batched evaluation of all 720 designs")
    best = max((ev.evaluate(d) for d in ev.space), key=lambda e: (e.reward, -ev.space.index_of(e.design)))
    assert o.design == best.design and o.reward == best.reward


def test_cli_prints_the_optimum_and_the_method(capsys):
    argv = ["optimum", "archgym/Systolic-v0", "--workload", "opt-125m/decode", "--objective", "latency_s"]
    argv += [a for k, v in FIX.items() for a in ("--fix", f"{k}={v}")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    ev = make_evaluator("archgym/Systolic-v0", workload="opt-125m/decode", fixed=FIX, objective="latency_s")
    best = max((ev.evaluate(d) for d in ev.space), key=lambda e: e.reward)
    assert f"exact optimum: reward {best.reward:.6f}" in out
    assert "design: " + ", ".join(f"{k}={v}" for k, v in best.design.items()) in out
    assert "how: exhaustive batched evaluation of all 720 designs" in out


def test_no_exact_method_is_one_line(capsys, monkeypatch):
    import simulators.agile_quant as aq

    monkeypatch.setattr(aq.AgileQuantSimulator, "exact_optimum", lambda self, ev: None, raising=False)
    with pytest.raises(NoExactMethod, match="no exact method"):
        optimum(make_evaluator("archgym/AgileQuant-v0"))
