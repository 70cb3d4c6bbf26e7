"""archgym.emulate on transformers' LlamaForCausalLM and OPTForCausalLM built from small configs
with seeded random weights (no download).

The BitMoD logits test and its tolerance. Model A is ``emulate(model, "bitmod", pe="exact")``:
every nn.Linear's output is the exact sum of ``x16 * code * scale`` rounded once to float64
(x16 = the layer input rounded to FP16, the PE's activation format). Model B is the same float64
model with every weight replaced by an independently written torch BitMoD quantizer's
``code * scale`` (exact in float64) and every Linear input rounded to FP16 by a pre-hook, then
``F.linear``. Everything else is the same float64 torch code in both. If the FP16 inputs of
every Linear agree in A and B (asserted: the premise is checked, not assumed), then the logits
(the lm_head output) differ only by the two ways of summing one dot product: A is the exact sum
rounded once (error <= u |A|, u = 2**-53) and B is a float64 GEMM (error <= gamma_K sum_k |x_k w_k|,
gamma_K = K u / (1 - K u), Higham's bound for any summation order). So per logit
``|A - B| <= gamma_K * (|x16| @ |W|^T) + u * |A|``, about 1e-14 relative here.

With the dev-RTL widths (``pe="rtl"``, the default) the PE rounds inside (3 guard bits, 15-bit
group accumulator, ...); there the logits are compared layer-locked (the lm_head on its own
recorded input) against the exact product with the a-priori rounding bound of
``tests/test_rtl_bitmod.py::narrow_error_bound``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

import archgym  # noqa: E402
from archgym.emulate import EmulationError, emulate  # noqa: E402
from rtl_models.bitmod import PEConfig, candidate_sets, quantize_weights  # noqa: E402

U = 2.0 ** -53
TOKENS = 8


def llama():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, vocab_size=256,
                                   max_position_embeddings=64)
    return transformers.LlamaForCausalLM(cfg).eval().double()


def opt():
    torch.manual_seed(1)
    cfg = transformers.OPTConfig(hidden_size=128, ffn_dim=256, num_hidden_layers=2, num_attention_heads=4,
                                 vocab_size=256, max_position_embeddings=64, word_embed_proj_dim=128)
    model = transformers.OPTForCausalLM(cfg).eval().double()
    with torch.no_grad():   # non-zero biases, so the bias path is exercised
        for m in model.modules():
            if isinstance(m, torch.nn.Linear) and m.bias is not None:
                m.bias.normal_(0, 0.02)
    return model


def ids():
    return torch.randint(0, 256, (1, TOKENS), generator=torch.Generator().manual_seed(7))


def linears(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


def torch_bitmod_weights(w: torch.Tensor, bits: int = 4, group: int = 128) -> torch.Tensor:
    """BitMoD's published per-group search written in torch (nearest value by distance, the
    first index winning ties; FP16 scale and MSE; candidate order er_pos, er_neg, ea_pos, ea_neg),
    returning ``code * scale`` in float64 (exact): the weight the PE multiplies by.

    Each FP16 operation is done in float32 and rounded to FP16 (``h``): for one +, -, * or / of
    FP16 operands that equals the FP16 operation (24 >= 2 * 11 + 2), and CPU float16 is slow."""
    h = lambda t: t.half().float()  # noqa: E731
    wt = h(w.reshape(w.shape[0], -1, group).float())
    best_err = best = None
    for vs in candidate_sets(bits):
        vals = torch.tensor(vs.values, dtype=torch.float32)
        lo, hi = float(np.float16(1e-5)), float(np.float16(1e4))   # the published clamp, in FP16
        scale = h(wt.abs().amax(-1, keepdim=True) / vs.qmax).clamp(lo, hi)
        idx = torch.argmin((h(wt / scale).unsqueeze(-1) - vals) ** 2, dim=-1)
        err = h(h(h(h(vals[idx] * scale) - wt) ** 2).double().sum(-1).float().div(group))
        exact = vals[idx].double() * scale.double()
        if best is None:
            best_err, best = err, exact
        else:
            upd = err < best_err
            best_err, best = torch.where(upd, err, best_err), torch.where(upd.unsqueeze(-1), exact, best)
    return best.reshape(w.shape)


def record_inputs(model, store: dict, to_fp16: bool):
    """Pre-hooks that record (and, for model B, replace) every Linear's input by its FP16 rounding.

    Rounded once to nearest-even by numpy: torch's float64 ``.half()`` rounds twice (through
    float32), which differs on rare values and would break the lockstep below."""
    def pre(name):
        def hook(mod, args):
            x16 = torch.from_numpy(args[0].detach().numpy().astype(np.float16))
            store[name] = x16
            return (x16.double(),) if to_fp16 else None
        return hook
    return [m.register_forward_pre_hook(pre(n)) for n, m in linears(model)]


@pytest.mark.parametrize("build", [llama, opt], ids=["llama", "opt"])
def test_bitmod_logits_match_independent_fake_quant_within_derived_tolerance(build):
    model, x = build(), ids()
    a_model, b_model = copy.deepcopy(model), copy.deepcopy(model)
    a_in, b_in = {}, {}
    handles = record_inputs(a_model, a_in, to_fp16=False)
    res = emulate(a_model, "bitmod", inputs=x, costs=False, pe="exact")
    for h in handles:
        h.remove()
    with torch.no_grad():
        for name, lin in linears(b_model):
            # a new parameter, not an in-place copy: OPT ties lm_head to the token embedding
            lin.weight = torch.nn.Parameter(torch_bitmod_weights(lin.weight), requires_grad=False)
            # the independent quantizer equals the datapath's bit for bit
            q = quantize_weights(dict(linears(model))[name].weight.detach().numpy(), bits=4, group=128)
            exact = q.codes.astype(np.float64) * np.repeat(q.scales.astype(np.float64), 128, axis=1)
            assert np.array_equal(lin.weight.numpy(), exact), name
        handles = record_inputs(b_model, b_in, to_fp16=True)
        logits_b = b_model(x).logits[0]
    assert a_in.keys() == b_in.keys() and all(torch.equal(a_in[k], b_in[k]) for k in a_in)  # lockstep
    logits_a = res.outputs.logits[0]
    x16 = a_in["lm_head"][0].double()
    w = dict(linears(b_model))["lm_head"].weight
    k = w.shape[1]
    gamma = k * U / (1 - k * U)
    tol = gamma * (x16.abs() @ w.abs().T) + U * logits_a.abs()
    diff = (logits_a - logits_b).abs()
    assert torch.all(diff <= tol), float((diff / tol).max())
    assert float(tol.max()) < 1e-12 * float(logits_a.abs().max())   # the claim is tight
    # and the emulation is not the float model: BitMoD's 4-bit weights move the logits
    with torch.no_grad():
        assert float((logits_a - model(x).logits[0]).abs().max()) > 1e-3


def test_bitmod_rtl_logits_within_the_pe_rounding_bound():
    from test_rtl_bitmod import narrow_error_bound

    model, x = llama(), ids()
    rec = {}
    handles = record_inputs(model, rec, to_fp16=False)
    res = emulate(model, "bitmod", inputs=x, costs=False)        # dev-RTL widths
    for h in handles:
        h.remove()
    x16 = rec["lm_head"][0].numpy()
    q = quantize_weights(model.lm_head.weight.detach().numpy(), bits=4, group=128)
    exact = x16.astype(np.float64) @ (q.codes * np.repeat(q.scales.astype(np.float64), 128, axis=1)).T
    gamma = 128 * U / (1 - 128 * U)
    mags = np.abs(x16.astype(np.float64)) @ np.abs(q.codes * np.repeat(q.scales.astype(np.float64), 128, axis=1)).T
    got = res.outputs.logits[0].numpy()
    worst = 0.0
    for t in range(0, TOKENS, 3):
        for r in range(0, 256, 5):
            bound = narrow_error_bound(q, x16[t], r, PEConfig()) + gamma * mags[t, r]
            err = abs(got[t, r] - exact[t, r])
            assert err <= bound, (t, r, err, bound)
            worst = max(worst, err)
    assert worst > 0   # the narrow PE really rounds


@pytest.mark.parametrize("build, n_linear", [(llama, 15), (opt, 13)], ids=["llama", "opt"])
def test_every_linear_has_a_row_and_the_module_is_left_unchanged(build, n_linear):
    model, x = build(), ids()
    before = model(x).logits
    res = emulate(model, "bitmod", inputs=x, costs=False)
    rows = {r.name: r for r in res.layers}
    assert len(linears(model)) == n_linear and set(rows) == {n for n, _ in linears(model)}
    for name, lin in linears(model):
        r = rows[name]
        assert r.shape == (TOKENS, lin.in_features, lin.out_features) and r.calls == 1
        assert r.datapath == "bitmod 4-bit g128" and r.cycles is None
    assert torch.equal(model(x).logits, before)       # hooks removed
    assert "lm_head" in res.table() and res.design["w_dtype"] == "fp4-ext"


def test_design_sets_the_arithmetic():
    model, x = llama(), ids()
    r3 = emulate(model, "bitmod", inputs=x, costs=False, design={"w_dtype": "fp3-ext", "group_size": 64})
    assert r3.layers[0].datapath == "bitmod 3-bit g64" and r3.options["bits"] == 3
    r6 = emulate(model, "bitmod", inputs=x, costs=False, design={"w_dtype": "int6"})
    err = lambda r: float((r.outputs.logits - model(x).logits).abs().max().detach())  # noqa: E731
    assert err(r6) < err(r3)   # lossless INT6 is closer to the float model than FP3


def test_systolic_lm_head_equals_torch_integer_gemm():
    """Layer-locked: the systolic emulation of lm_head equals an int8 GEMM written in torch."""
    model, x = llama(), ids()
    rec = {}
    h = model.lm_head.register_forward_pre_hook(lambda m, a: rec.setdefault("x", a[0].clone()))
    res = emulate(model, "systolic", inputs=x, costs=False)
    h.remove()
    xin, w = rec["x"][0], model.lm_head.weight
    sx = xin.abs().amax(1, keepdim=True) / 127
    sw = w.abs().amax(1, keepdim=True) / 127
    xq = torch.round(xin / sx).clamp(-127, 127).long()
    wq = torch.round(w / sw).clamp(-127, 127).long()
    acc = xq @ wq.T
    assert torch.equal(res.outputs.logits[0], acc.double() * sx * sw.T)
    assert res.layers[-1].datapath == "systolic-int a8 w8 acc32"


@pytest.mark.parametrize("accelerator", ["agilequant", "matmulfree"])
def test_other_accelerators_emulate_every_linear(accelerator):
    model, x = llama(), ids()
    res = emulate(model, accelerator, inputs=x, costs=False)
    assert len(res.layers) == 15 and torch.all(torch.isfinite(res.outputs.logits))
    ref = model(x).logits
    err = float((res.outputs.logits - ref).abs().max())
    assert 0 < err < float(ref.abs().max())   # quantized, yet still the same model


def test_bad_input_is_one_clear_error():
    model, x = llama(), ids()
    with pytest.raises(EmulationError, match="unknown accelerator 'tpu'"):
        emulate(model, "tpu", inputs=x)
    with pytest.raises(EmulationError, match="unknown design parameter 'wdtype'"):
        emulate(model, "bitmod", inputs=x, design={"wdtype": "int6"})
    with pytest.raises(EmulationError, match="unknown option 'bitz'"):
        emulate(model, "bitmod", inputs=x, bitz=3)
    with pytest.raises(EmulationError, match="bits=5"):
        emulate(model, "bitmod", inputs=x, bits=5, costs=False)
    with pytest.raises(EmulationError, match="layer 'model.layers.0.self_attn.q_proj'.*group=256"):
        emulate(model, "bitmod", inputs=x, design={"group_size": 256}, costs=False)
    assert archgym.emulate is emulate


@pytest.mark.parametrize("accelerator", ["bitmod", "systolic"])
def test_layer_costs_come_from_the_env_simulator(accelerator, tmp_path, capsys):
    """Every emulated nn.Linear's cycles equal what `archgym eval` gives for the same shape and
    design (a one-layer SCALE-Sim GEMM topology file), and the simulator's API for that layer."""
    from archgym.cli import main
    from archgym.registry import spec_of
    from archgym.simulator import load_simulator
    from archgym.workloads import Gemm, Workload

    model, x = llama(), ids()
    res = emulate(model, accelerator, inputs=x)
    sim = load_simulator(spec_of(archgym.emulate.__globals__["ACCELERATORS"][accelerator]).simulator)
    for r in res.layers:
        assert r.cycles > 0 and r.latency_s > 0 and r.energy_j > 0
        alone = sim.evaluate(res.design, Workload(name=r.name, layers=(
            Gemm(name=r.name, m=r.m, k=r.k, n=r.n, a_bits=r.a_bits, w_bits=r.w_bits),)))
        assert alone.breakdown[r.name]["cycles"] == r.cycles
    env_id = archgym.emulate.__globals__["ACCELERATORS"][accelerator]
    for i, r in enumerate({(r.m, r.k, r.n): r for r in res.layers}.values()):  # each distinct shape once
        csv = tmp_path / f"layer{i}.csv"
        csv.write_text(f"Layer, M, N, K,\nx, {r.m}, {r.n}, {r.k},\n")
        capsys.readouterr()
        assert main(["eval", env_id, "--workload", str(csv), *(f"{k}={v}" for k, v in res.design.items())]) == 0
        out = capsys.readouterr().out
        assert r.cycles == int(r.cycles) and f"cycles = {int(r.cycles):,} cycles" in out.splitlines(), (r.name, out)
