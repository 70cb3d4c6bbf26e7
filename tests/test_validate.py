"""archgym.validate and `archgym validate`: correct kernels pass, planted bugs fail with the
right report (index, values, errors, shrunk input), bad input is one clear error (exit 2)."""

from __future__ import annotations

import sys
from fractions import Fraction

import numpy as np
import pytest
import torch

import archgym
from archgym.cli import main
from archgym.datapaths import DatapathError, datapath_names, get_datapath
from archgym.validate import KernelImportError, ValidationReport, import_kernel, validate


# --------------------------------------------------------------------------- kernels under test
def wrap(c: torch.Tensor, bits: int) -> torch.Tensor:
    half = 1 << (bits - 1)
    return (c + half) % (1 << bits) - half


def systolic_kernel(a, w, acc_bits=32):
    return wrap(a @ w, acc_bits)


def smmw_kernel(act_bits, acc_bits=32):
    """Independent of the lanes: offset-encode, one int64 GEMM wrapped like the wide
    accumulators (no field can carry at a safe drain interval), undo the offsets."""
    def kernel(a, w):
        oa, ow = 1 << (act_bits - 1), 8
        au, wu = a + oa, w + ow
        cu = (au @ wu) % (1 << acc_bits)
        return cu - ow * au.sum(1, keepdim=True) - oa * wu.sum(0, keepdim=True) + a.shape[1] * oa * ow
    return kernel


def ternary_kernel(rounding="half_even", acc_bits=24):
    def kernel(y, w, beta):
        s_x = (1.0 / y.abs().amax(-1).clamp(min=1e-5)) * 127
        v = y * s_x[:, None]
        if rounding == "half_even":
            q = torch.round(v)
        else:
            r = torch.trunc(v)
            q = torch.where((v - r).abs() >= 0.5, r + torch.sign(v), r)
        acc = wrap((q.clamp(-128, 127) @ w.float()).to(torch.int64), acc_bits)
        return acc.float() / s_x[:, None] / (1.0 / beta)
    return kernel


def moe_kernel(x, gate, w1, b1, w2, b2, *, top_k):
    from rtl_models.moe import MoEConfig, MoENumerics, MoEWeights
    from test_rtl_moe import torch_reference   # an independent torch int64 implementation

    cfg = MoEConfig(d_model=x.shape[1], d_hidden=w1.shape[2], n_experts=gate.shape[1], top_k=top_k,
                    numerics=MoENumerics(on_overflow="wrap"))
    return torch_reference(x.numpy(), MoEWeights(*(t.numpy() for t in (gate, w1, b1, w2, b2))), cfg)["output"]


def bitmod_quantize_kernel(ties_up=False):
    """BitMoD's per-group search in torch (nearest value by distance; ties to the lower value
    unless ``ties_up``, the off-by-one a '<' instead of '<=' at the midpoint makes)."""
    from rtl_models.bitmod import candidate_sets

    def kernel(w):
        k, n = w.shape
        wt = w.T.reshape(n, k // 128, 128)
        best_err = best = None
        for vs in candidate_sets(4):
            vals = torch.tensor(vs.values, dtype=torch.float16)
            scale = (wt.abs().amax(-1, keepdim=True) / vs.qmax).clamp(1e-5, 1e4)
            d = ((wt / scale).unsqueeze(-1).float() - vals.float()) ** 2
            idx = d.shape[-1] - 1 - torch.argmin(d.flip(-1), -1) if ties_up else torch.argmin(d, -1)
            deq = vals[idx] * scale
            err = ((deq - wt) ** 2).double().sum(-1).float().div(128).half()
            if best is None:
                best_err, best = err, deq
            else:
                upd = err < best_err
                best_err, best = torch.where(upd, err, best_err), torch.where(upd.unsqueeze(-1), deq, best)
        return best.reshape(n, k).T.contiguous()
    return kernel


def bitmod_exact_kernel(x, w):
    """pe=exact: the exact sum of activation x code x scale (Fraction), rounded once."""
    from rtl_models.bitmod import quantize_weights

    q = quantize_weights(np.ascontiguousarray(w.numpy().T), bits=4, group=128)
    out = np.empty((x.shape[0], w.shape[1]))
    for i in range(x.shape[0]):
        for r in range(w.shape[1]):
            out[i, r] = float(sum(Fraction(float(x[i, c])) * int(q.codes[r, c]) * Fraction(float(q.scales[r, c // 128]))
                                  for c in range(w.shape[0])))
    return torch.from_numpy(out)


# --------------------------------------------------------------------------- correct kernels pass
@pytest.mark.parametrize("datapath, kernel, options", [
    ("systolic-int", systolic_kernel, {}),
    ("systolic-int", lambda a, w: systolic_kernel(a, w, 20), {"acc_bits": 20, "a_bits": 6, "w_bits": 12}),
    ("systolic-int", lambda a, w: systolic_kernel(a, w, 16), {"acc_bits": 16, "signed": False}),
    ("smmw-w4a8", smmw_kernel(8), {}),
    ("smmw-w4a8", smmw_kernel(8, 26), {"acc_bits": 26, "drain_every": 4386}),
    ("smmw-w4a4", smmw_kernel(4, 16), {"acc_bits": 16}),
    ("ternary-bitlinear", ternary_kernel(), {}),
    ("ternary-bitlinear", ternary_kernel("half_away", 16), {"rounding": "half_away", "acc_bits": 16}),
    ("moe-fixed", moe_kernel, {}),
    ("bitmod", bitmod_quantize_kernel(), {"stage": "quantize"}),
], ids=["systolic", "systolic-acc20", "systolic-unsigned", "w4a8", "w4a8-acc26", "w4a4-acc16", "ternary",
        "ternary-away", "moe", "bitmod-quantize"])
def test_correct_independent_kernel_passes(datapath, kernel, options):
    report = validate(kernel, datapath, cases=120, seed=3, **options)
    assert report.ok, report.summary()
    assert report.exit_code == 0 and report.cases_run == report.cases_equal == 120
    assert set(report.kinds) - {"random"} and report.kinds["random"] >= 60   # edge kinds ran


def test_accumulator_and_carry_limits_are_reached():
    """Edge cases really hit the limits: with acc_bits=20 the wrap changes results."""
    r = validate(lambda a, w: a @ w, "systolic-int", cases=60, acc_bits=20, shrink=0)
    assert r.failures and {f.kind for f in r.failures} == {"acc_limit"}
    assert not r.unreachable
    r = validate(smmw_kernel(8), "smmw-w4a8", cases=40, drain_every=4386)
    assert r.ok and r.kinds["carry_limit"] > 0


def test_bitmod_exact_pe_kernel_passes_and_cycle_model_passes_rtl():
    assert validate(bitmod_exact_kernel, "bitmod", cases=16, pe="exact").ok

    def slow_pe(x, w):
        from rtl_models.bitmod import pe_dot, quantize_weights

        q = quantize_weights(np.ascontiguousarray(w.numpy().T), bits=3, group=32)
        return torch.from_numpy(pe_dot(q, x.numpy()).outputs)
    assert validate(slow_pe, "bitmod", cases=16, bits=3, group=32).ok


# --------------------------------------------------------------------------- planted bugs
def test_off_by_one_rounding_fails_on_ties_with_a_small_shrunk_input():
    report = validate(ternary_kernel("half_away"), "ternary-bitlinear", cases=60, seed=0)
    assert not report.ok and report.exit_code == 1
    assert {f.kind for f in report.failures} <= {"ties", "acc_limit", "random", "odd", "k1", "extreme"}
    assert "ties" in {f.kind for f in report.failures}
    f = report.failures[0]
    assert f.failure == "mismatch" and f.n_diff >= 1 and f.abs_err > 0 and f.ulp_err >= 1
    got, exp = f.got, f.expected
    assert abs(got - exp) == pytest.approx(f.abs_err)
    s = f.shrunk
    assert s is not None and s.failure.failure == "mismatch"
    assert sum(np.asarray(a).size for a in s.inputs.values()) < sum(np.asarray(a).size for a in f.inputs.values())
    assert s.inputs["y"].shape[0] == 1 and s.inputs["w"].shape[1] == 1   # one token, one output
    text = report.summary()
    assert "FAIL case" in text and "smallest failing input" in text and "ulp" in text


def test_bitmod_midpoint_off_by_one_fails_only_where_ties_exist():
    report = validate(bitmod_quantize_kernel(ties_up=True), "bitmod", cases=60, stage="quantize", shrink=1)
    assert not report.ok
    assert "ties" in {f.kind for f in report.failures}
    assert all(f.failure == "mismatch" for f in report.failures)


def test_missing_saturation_fails_on_saturating_inputs(monkeypatch):
    import test_rtl_moe

    monkeypatch.setattr(test_rtl_moe, "t_sat", lambda v, fmt: (v, 0))   # the bug: no clamp
    report = validate(moe_kernel, "moe-fixed", cases=60, shrink=1)
    assert report.failures and {f.kind for f in report.failures} == {"saturate"}
    assert report.failures[0].failure == "mismatch" and report.failures[0].shrunk is not None


def test_missing_wrap_fails_only_at_the_accumulator_limit():
    report = validate(lambda a, w: a @ w, "systolic-int", cases=40, acc_bits=24, shrink=1)
    assert {f.kind for f in report.failures} == {"acc_limit"}
    f = report.failures[0]
    assert f.failure == "mismatch" and f.ulp_err == f.abs_err and f.abs_err % (1 << 24) == 0


def test_wrong_dtype_shape_type_nan_and_raising_kernels_are_failed_cases():
    r = validate(lambda a, w: (a @ w).to(torch.int32), "systolic-int", cases=6, shrink=0)
    assert all(f.failure == "dtype" for f in r.failures) and len(r.failures) == 6
    assert "torch.int32; expected torch.int64" in r.failures[0].message
    r = validate(lambda a, w: (a @ w).T, "systolic-int", cases=6, shrink=0)
    assert {f.failure for f in r.failures} <= {"shape", "mismatch"} and "shape" in {f.failure for f in r.failures}
    assert "expected [" in next(f for f in r.failures if f.failure == "shape").message
    r = validate(lambda a, w: (a @ w).numpy(), "systolic-int", cases=4, shrink=0)
    assert r.failures[0].failure == "type" and "torch.Tensor" in r.failures[0].message

    def raises_on_k1(a, w):
        if a.shape[1] == 1:
            raise ValueError("K must be at least 2")
        return systolic_kernel(a, w)
    r = validate(raises_on_k1, "systolic-int", cases=30, shrink=1)
    errs = r.failures
    assert errs and all(f.failure == "error" for f in errs) and all("ValueError: K must be at least 2" in f.message for f in errs)
    assert {f.kind for f in errs} >= {"k1"}
    assert errs[0].shrunk.inputs["a"].shape == (1, 1)
    def no_clamp(y, w, beta):   # the bug: max|y| not clamped to 1e-5, so a zero row gives 0 * inf
        s_x = (1.0 / y.abs().amax(-1)) * 127
        q = torch.round(y * s_x[:, None]).clamp(-128, 127)
        return (q @ w.float()) / s_x[:, None] / (1.0 / beta)
    r = validate(no_clamp, "ternary-bitlinear", cases=30, shrink=1)
    nans = [f for f in r.failures if f.failure == "nan"]
    assert nans and "NaN" in nans[0].message and nans[0].kind in ("zero_row", "random", "k1", "odd")


def test_mismatch_report_fields_and_shrinking_by_hand():
    def off_by_one(a, w):
        c = a @ w
        c[0, 0] += 1
        return c
    r = validate(off_by_one, "systolic-int", cases=5, shrink=1)
    assert len(r.failures) == 5
    f = r.failures[0]
    assert f.index == (0, 0) and f.got == f.expected + 1 and f.abs_err == 1 and f.ulp_err == 1
    assert f.n_diff == 1 and f.max_abs_err == 1
    shrunk = f.shrunk.inputs
    assert shrunk["a"].shape == (1, 1) and shrunk["w"].shape == (1, 1)
    assert shrunk["a"].tolist() == [[0]] and shrunk["w"].tolist() == [[0]]   # zeroed: still off by one
    assert "[0, 0]" in f.describe()


def test_seeded_and_deterministic():
    def bad(a, w):
        c = a @ w
        return c + (c.abs() > 1000).long()
    r1 = validate(bad, "systolic-int", cases=40, seed=5, shrink=0)
    r2 = validate(bad, "systolic-int", cases=40, seed=5, shrink=0)
    r3 = validate(bad, "systolic-int", cases=40, seed=6, shrink=0)
    key = lambda r: [(f.case, f.index, f.got) for f in r.failures]  # noqa: E731
    assert key(r1) == key(r2) and key(r1) != key(r3)


def test_progress_bar_and_callable(capsys):
    seen = []
    validate(systolic_kernel, "systolic-int", cases=5, progress=lambda d, f: seen.append((d, f)))
    assert seen[-1] == (5, 0)
    validate(systolic_kernel, "systolic-int", cases=5, progress=True)
    assert "5/5" in capsys.readouterr().err


# --------------------------------------------------------------------------- bad input
def test_bad_input_is_one_clear_error():
    with pytest.raises(DatapathError, match="unknown datapath 'foo'; datapaths: systolic-int"):
        validate(systolic_kernel, "foo")
    with pytest.raises(DatapathError, match="unknown option 'bitz'"):
        validate(systolic_kernel, "bitmod", bitz=3)
    with pytest.raises(DatapathError, match="bits=5 is not allowed; allowed: 3, 4, 6"):
        validate(systolic_kernel, "bitmod", bits=5)
    with pytest.raises(DatapathError, match="acc_bits=1 is not allowed; allowed: an integer in 2..63"):
        validate(systolic_kernel, "systolic-int", acc_bits=1)
    with pytest.raises(DatapathError, match="drain_every=5000"):
        validate(systolic_kernel, "smmw-w4a4", drain_every=5000)
    with pytest.raises(DatapathError, match="top_k=5"):
        validate(systolic_kernel, "moe-fixed", top_k=5)
    with pytest.raises(ValueError, match="cases=0"):
        validate(systolic_kernel, "systolic-int", cases=0)
    with pytest.raises(KernelImportError, match="MODULE:FUNCTION"):
        validate("nocolon", "systolic-int")
    with pytest.raises(KernelImportError, match="no module named 'surely_not_a_module_xyz'"):
        validate("surely_not_a_module_xyz:f", "systolic-int")


def test_registry_entries_are_complete():
    assert datapath_names() == ("systolic-int", "smmw-w4a8", "smmw-w4a4", "ternary-bitlinear", "bitmod", "moe-fixed")
    for name in datapath_names():
        dp = get_datapath(name)
        assert dp.load_model() is not None and dp.args and dp.options and dp.kinds[0] == "random"
        mod, fn = dp.cycle_model.split(":")
        assert hasattr(__import__(mod, fromlist=[fn]), fn)
    assert archgym.validate is validate and isinstance(validate(systolic_kernel, "systolic-int", cases=1),
                                                       ValidationReport)


def test_import_archgym_loads_neither_torch_nor_rtl_models():
    import subprocess

    code = ("import sys, archgym; archgym.validate; archgym.emulate; "
            "print(sorted(m for m in ('torch', 'rtl_models', 'numba', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_kernel_from_current_directory(tmp_path, monkeypatch):
    (tmp_path / "kern_cwd_a.py").write_text("def f(a, w):\n    return a @ w\nx = 3\n")
    (tmp_path / "kern_cwd_broken.py").write_text("def f(:\n")
    monkeypatch.chdir(tmp_path)
    assert str(tmp_path) not in sys.path
    assert import_kernel("kern_cwd_a:f").__name__ == "f"
    assert str(tmp_path) not in sys.path      # found without editing sys.path
    with pytest.raises(KernelImportError, match="has no attribute 'g'"):
        import_kernel("kern_cwd_a:g")
    with pytest.raises(KernelImportError, match="not a function"):
        import_kernel("kern_cwd_a:x")
    with pytest.raises(KernelImportError, match="SyntaxError"):
        import_kernel("kern_cwd_broken:f")


# --------------------------------------------------------------------------- CLI
_KERNELS = """
import torch
def good(a, w):
    c = a @ w
    return (c + 2**31) % 2**32 - 2**31
def bad(a, w):
    return (a @ w).to(torch.int32)
"""


def test_cli_exit_codes(tmp_path, monkeypatch, capsys):
    (tmp_path / "cli_kernels_v.py").write_text(_KERNELS)
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "systolic-int", "--kernel", "cli_kernels_v:good", "--cases", "30", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "cases run: 30" in out and "PASS" in out
    assert main(["validate", "systolic-int", "--kernel", "cli_kernels_v:bad", "--cases", "5", "--quiet"]) == 1
    assert "dtype torch.int32" in capsys.readouterr().out
    for argv, needle in [
        (["validate", "nope", "--kernel", "cli_kernels_v:good"], "unknown datapath 'nope'"),
        (["validate", "systolic-int", "--kernel", "cli_kernels_v:good", "--opt", "acc_bits=99"], "acc_bits=99"),
        (["validate", "systolic-int", "--kernel", "cli_kernels_v:good", "--opt", "wat=1"], "unknown option 'wat'"),
        (["validate", "systolic-int", "--kernel", "no_such_mod_q:good"], "no module named 'no_such_mod_q'"),
        (["validate", "systolic-int", "--kernel", "cli_kernels_v:good", "--cases", "0"], "cases=0"),
        (["validate", "systolic-int"], "--kernel"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("archgym: error:") and needle in err and "Traceback" not in err
