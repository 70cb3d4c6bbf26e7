"""Speed of the vectorised bit-exact datapath paths (the validation path), side by side with
torch's float32 matmul on the same shapes, and the wall time of `archgym validate` per datapath.

    python benchmarks/bench_validate.py            # about 2-4 minutes on 2 cores
    python benchmarks/bench_validate.py --quick    # fewer repeats, smaller slow-path shapes

Layer: a 4096 x 4096 weight matrix at 16 tokens (268,435,456 MACs), operands in their natural
storage (int8 for <= 8-bit codes, float16 for BitMoD, float32 for BitLinear activations,
int64 codes for the MoE layer as rtl_models.moe keeps them). Each figure is the median of
``--repeats`` calls after one warm-up call (numba compilation is not timed). One-time weight
preparation (BitMoD's datatype search, the MoE weights' float64 copy) is timed separately: it
is offline work a layer does once. The cycle-stepped / slow models are timed on smaller shapes
(stated) and reported in MACs/s for comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

M, K, N = 16, 4096, 4096
MACS = M * K * N


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up (numba compilation, allocator)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def layer_paths(rng):
    """(name, fast call, MACs, prepare seconds or None, slow call, slow MACs, slow shape)."""
    from rtl_models.bitmod import PEConfig, pe_dot, quantize_weights
    from rtl_models.bitmod.fast import pe_dot_fast
    from rtl_models.moe import MoEConfig, MoENumerics, MoEWeights, moe_forward
    from rtl_models.moe.fast import moe_forward_fast, prepare_weights
    from rtl_models.simd import SMMWConfig, packed_gemm
    from rtl_models.simd.fast import packed_gemm_fast
    from rtl_models.systolic import simulate_gemm
    from rtl_models.systolic.fast import gemm_fast
    from rtl_models.ternary import TernaryWeights, accumulate, quantize_activations
    from rtl_models.ternary.fast import bitlinear_normed_fast

    out = []
    a8 = rng.integers(-128, 128, (M, K)).astype(np.int8)
    w8 = rng.integers(-128, 128, (K, N)).astype(np.int8)
    sa, sw = a8[:4, :64], w8[:64, :64]
    out.append(("systolic-int (int8, acc 32)", lambda: gemm_fast(a8, w8, acc_bits=32), MACS, None,
                lambda: simulate_gemm(sa, sw, 16, 16, "ws", acc_bits=32, overflow="wrap"), 4 * 64 * 64,
                "4x64x64 on a 16x16 ws array"))
    w4 = rng.integers(-8, 8, (K, N)).astype(np.int8)
    a4 = rng.integers(-8, 8, (M, K)).astype(np.int8)
    w4a8 = SMMWConfig(act_bits=8, weight_bits=4, operand_bits=24, lane_bits=48)
    out.append(("smmw-w4a8", lambda: packed_gemm_fast(a8, w4, config=w4a8, signed=True), MACS, None,
                lambda: packed_gemm(a8[:, :1024], w4[:1024, :512], config=w4a8, signed=True), M * 1024 * 512,
                "16x1024x512, numba lane kernel"))
    out.append(("smmw-w4a4", lambda: packed_gemm_fast(a4, w4, signed=True), MACS, None,
                lambda: packed_gemm(a4[:, :1024], w4[:1024, :512], signed=True), M * 1024 * 512,
                "16x1024x512, numba lane kernel"))
    y = rng.standard_normal((M, K)).astype(np.float32)
    t = rng.integers(-1, 2, (K, N)).astype(np.int8)
    tw = TernaryWeights.from_ternary(t.T, np.float32(0.7))
    q, _ = quantize_activations(y)
    out.append(("ternary-bitlinear", lambda: bitlinear_normed_fast(y, t, np.float32(0.7)), MACS, None,
                lambda: accumulate(q, tw), MACS, "16x4096x4096, numba add/sub/skip kernel"))
    x16 = rng.standard_normal((M, K)).astype(np.float16)
    w = (rng.standard_normal((N, K)) * 0.02).astype(np.float16)
    t0 = time.perf_counter()
    quant = quantize_weights(w, bits=4, group=128)
    prep = time.perf_counter() - t0
    small = quantize_weights(w[:8, :512], bits=4, group=128)
    out.append(("bitmod (FP4-ext g128, RTL widths)", lambda: pe_dot_fast(quant, x16), MACS, prep,
                lambda: pe_dot(small, x16[:2, :512]), 2 * 512 * 8, "2x512x8, cycle-stepped PE"))
    out.append(("bitmod (exact PE)", lambda: pe_dot_fast(quant, x16, config=PEConfig.exact()), MACS, None,
                lambda: pe_dot(small, x16[:2, :512], config=PEConfig.exact()), 2 * 512 * 8,
                "2x512x8, cycle-stepped PE"))
    cfg = MoEConfig(d_model=K, d_hidden=N, n_experts=4, top_k=2, numerics=MoENumerics())
    mw = MoEWeights.random(cfg, rng)
    xq = cfg.numerics.act.quantize(rng.normal(size=(M, K)))
    t0 = time.perf_counter()
    prepared = prepare_weights(mw, cfg)
    mprep = time.perf_counter() - t0
    moe_macs = M * (K * 4 + 2 * 2 * K * N)
    scfg = MoEConfig(d_model=256, d_hidden=256, n_experts=4, top_k=2, numerics=MoENumerics())
    smw = MoEWeights.random(scfg, rng)
    sx = scfg.numerics.act.quantize(rng.normal(size=(M, 256)))
    out.append(("moe-fixed (d=h=4096, N=4, k=2)", lambda: moe_forward_fast(xq, prepared, cfg), moe_macs, mprep,
                lambda: moe_forward(sx, smw, scfg, schedule="reorder"), M * (256 * 4 + 4 * 256 * 256),
                "d=h=256, numpy int64 @"))
    return out


def bench_validate_cli(cases: int) -> list[tuple[str, float]]:
    """Wall time of validate() with the datapath's own model as the kernel: the tool's cost."""
    from archgym.datapaths import datapath_names, get_datapath
    from archgym.validate import validate

    rows = []
    for name in datapath_names():
        dp = get_datapath(name)

        def kernel(*tensors, _dp=dp, **kw):
            opts = _dp.resolve_options({})
            inputs = dict(zip(_dp.input_names(opts), (t.numpy() for t in tensors)))
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                return torch.from_numpy(np.array(_dp.reference(inputs, opts)))
        validate(kernel, name, cases=4)  # compile
        t0 = time.perf_counter()
        rep = validate(kernel, name, cases=cases)
        rows.append((name, time.perf_counter() - t0, rep.ok))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cases", type=int, default=1000)
    args = ap.parse_args()
    repeats = 3 if args.quick else args.repeats
    rng = np.random.default_rng(0)
    print(f"threads: numba {__import__('numba').get_num_threads()}, torch {torch.get_num_threads()}, "
          f"load average before: {os.getloadavg()[0]:.1f}")
    xa = torch.randn(M, K)
    wa = torch.randn(K, N)
    t_torch = median_time(lambda: xa @ wa, repeats)
    print(f"torch float32 matmul 16x4096x4096: {t_torch * 1e3:.1f} ms = {MACS / t_torch / 1e9:.2f}e9 MACs/s\n")
    print(f"{'datapath':<36} {'ms':>9} {'MACs/s':>10} {'vs torch fp32':>13} {'prepare s':>10}  slow path (shape)")
    for name, fast, macs, prep, slow, slow_macs, shape in layer_paths(rng):
        t = median_time(fast, repeats)
        slow_txt = ""
        if slow is not None:
            ts = median_time(slow, 1 if args.quick else 3)
            slow_txt = f"{slow_macs / ts / 1e9:.4f}e9 MACs/s ({shape})"
        prep_txt = f"{prep:.1f}" if prep is not None else "-"
        print(f"{name:<36} {t * 1e3:9.1f} {macs / t / 1e9:8.2f}e9 {t / (t_torch * macs / MACS):12.1f}x "
              f"{prep_txt:>10}  {slow_txt}", flush=True)
    print(f"\narchgym validate, {args.cases} cases, the datapath's model as the kernel:")
    for name, secs, ok in bench_validate_cli(args.cases):
        print(f"  {name:<20} {secs:6.1f} s  ({'all equal' if ok else 'MISMATCH'})")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
