"""Workload readers: load / trace time (first call and cached), and what a user workload costs
in the Systolic env next to the zoo workload of the same model.

Run:  python benchmarks/bench_workloads.py        (about 1-2 min on 2 cores; needs the models extra)

1. Time to turn a source into a Workload, first call (caches cleared; median of 3) and cached
   call (median of 200): a Hugging Face config.json, an ONNX export of ResNet-18 (torchvision,
   random weights), ``from_torch`` of ResNet-18 and of OPT-125m built from its real config.json.
2. The same model three ways -- zoo ``opt-125m/prefill``, ``opt-125m.json?phase=prefill``, and
   OPT-125m traced by ``from_torch`` at the same 256 tokens -- evaluated by the Systolic
   simulator: ``evaluate_batch`` designs/s (median of 7 interleaved repeats of 50,000 designs)
   and one ``evaluate`` (median over 2,000 designs), as the env calls them (a resolved Workload);
   then ``evaluate`` given the zoo name / file path as text on every call.

Prints markdown tables; benchmarks/README.md records the figures.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import warnings

import numpy as np

from archgym.runner import make_evaluator
from archgym.workloads import from_torch, load_workload
from archgym.workloads import loader as _loader
from archgym.workloads import torch_trace as _trace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPT_JSON = os.path.join(ROOT, "tests", "data", "hf_configs", "opt-125m.json")
ENV = "archgym/Systolic-v0"
_KEEP = []


def _torch_stack():
    """torch + torchvision/transformers on the CPU torch wheel (see docs/workloads.md)."""
    import torch

    if not hasattr(torch.ops.torchvision, "nms"):
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _KEEP.append(lib)
    import torchvision
    import transformers

    return torch, torchvision, transformers


def first_and_cached(fn, clear, cold_reps: int = 3, warm_reps: int = 200) -> tuple[float, float]:
    cold = []
    for _ in range(cold_reps):
        clear()
        t0 = time.perf_counter()
        fn()
        cold.append(time.perf_counter() - t0)
    warm = [0.0]
    for _ in range(warm_reps):
        t0 = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t0)
    return statistics.median(cold), statistics.median(warm[1:] or warm)


def _fmt(s: float) -> str:
    return f"{s * 1e3:,.1f} ms" if s >= 1e-3 else f"{s * 1e6:,.1f} us"


def load_times(torch, tv, T) -> tuple[list, object]:
    rows = []
    clear_files = _loader._CACHE.clear
    c, w = first_and_cached(lambda: load_workload(OPT_JSON + "?phase=prefill"), clear_files)
    rows.append(("Hugging Face config.json (opt-125m), `load_workload`", c, w))
    torch.manual_seed(0)
    resnet = tv.models.resnet18(weights=None).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "resnet18.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(resnet, (torch.randn(1, 3, 224, 224),), path, dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "batch"}})
        c, w = first_and_cached(lambda: load_workload(path + "?batch=1"), clear_files)
        rows.append(("ONNX ResNet-18 (export of torchvision's), `load_workload`", c, w))
    x = torch.randn(1, 3, 224, 224)
    opt = T.OPTForCausalLM(T.OPTConfig(**json.load(open(OPT_JSON)))).eval()
    ids = torch.randint(0, 50272, (1, 256))
    for label, mod, inp in (("torchvision ResNet-18 at 224x224", resnet, x),
                            ("transformers OPT-125m (its config.json), 256 tokens", opt, ids)):
        c, w = first_and_cached(lambda: from_torch(mod, inp), _trace.clear_trace_cache, warm_reps=50)
        fwd, _ = first_and_cached(lambda: _forward(torch, mod, inp), lambda: None, warm_reps=0)
        rows.append((f"{label}, `from_torch` (its plain forward pass: {_fmt(fwd)})", c, w))
    return rows, from_torch(opt, ids)


def _forward(torch, mod, inp):
    with torch.no_grad():
        mod(inp)


def systolic_costs(traced) -> list:
    sources = {"zoo `opt-125m/prefill`": "opt-125m/prefill",
               "config.json `opt-125m.json?phase=prefill`": OPT_JSON + "?phase=prefill",
               "traced `from_torch(OPTForCausalLM)`": traced}
    sim = make_evaluator(ENV).simulator
    wls = {k: sim.workload(v) for k, v in sources.items()}      # as the env resolves a --workload
    ref = sorted(map(tuple, wls["zoo `opt-125m/prefill`"].gemm_array().tolist()))
    for k, w in wls.items():
        assert sorted(map(tuple, w.gemm_array().tolist())) == ref, f"{k}: not the same GEMMs"
    space = sim.design_space()
    rng = np.random.default_rng(0)
    idx = space.sample_indices(rng, 50_000)
    designs = [d for d in (space.decode(i) for i in idx[:4000]) if space.is_feasible(d)][:2000]
    for w in wls.values():
        sim.evaluate_batch(idx[:100], w)
        sim.evaluate(designs[0], w)
    batch = {k: [] for k in wls}
    for _ in range(7):                                  # interleaved: load drifts hit all alike
        for k, w in wls.items():
            t0 = time.perf_counter()
            sim.evaluate_batch(idx, w)
            batch[k].append(len(idx) / (time.perf_counter() - t0))
    single = {k: [] for k in wls}
    for d in designs:
        for k, w in wls.items():
            t0 = time.perf_counter()
            sim.evaluate(d, w)
            single[k].append(time.perf_counter() - t0)
    rows = [(k, statistics.median(batch[k]), min(batch[k]), max(batch[k]), statistics.median(single[k]))
            for k in wls]
    # the same sources given as text to every call: a file is re-hashed each time (change detection)
    for k, v in list(sources.items())[:2]:
        ts = []
        for d in designs[:500]:
            t0 = time.perf_counter()
            sim.evaluate(d, v)
            ts.append(time.perf_counter() - t0)
        rows.append((f"{k}, given as text to each `evaluate`", None, None, None, statistics.median(ts)))
    return rows


def main() -> None:
    torch, tv, T = _torch_stack()
    rows, traced = load_times(torch, tv, T)
    print("| source | first call | cached call |")
    print("|---|---|---|")
    for name, c, w in rows:
        print(f"| {name} | {_fmt(c)} | {_fmt(w)} |")
    print()
    print(f"| {ENV} on OPT-125m prefill (256 tokens) | `evaluate_batch` designs/s (median; min-max) "
          f"| `evaluate` median |")
    print("|---|---|---|")
    for name, med, lo, hi, one in systolic_costs(traced):
        rate = "-" if med is None else f"{med:,.0f} ({lo:,.0f}-{hi:,.0f})"
        print(f"| {name} | {rate} | {one * 1e6:.1f} us |")


if __name__ == "__main__":
    main()
