"""Hand-computed checks of every AgileQuant-v0 metric (issue #17): an oracle that does not
call the model's code.

The equations are the model's stated ones (simulators/agile_quant.py docstring and
experiments/agile_quant/calibration.md §2): per op, time = max(compute, DRAM traffic /
bandwidth); GEMM compute = MACs / rate, rate = FP16 peak x 1.85 (INT8) or x 1.85 x 1.75
(packed SMMW) divided by the group-size factor; an activation operand larger than half the
last-level cache is re-read once per weight panel that fits half the cache; an output larger
than half the cache is written back; weights always stream; elementwise ops cost
``instructions / lanes / vector rate`` per element or ``2 bytes x passes`` of traffic per
element when the tensor exceeds half the cache; total / efficiency.  Each formula below was
worked out by hand from those rules for OPT-1.3B (L = 24, h = 2048, f = 8192, 32 heads of 64,
vocab 50272) at 2048 tokens; the comparison side is the simulator's public output.

Token schedules (pruning cascade t -= floor(t * gamma), gamma = 1 - (1 - beta)^(1/m) over the
m pruned layers; hand-computed):

* default design (beta 0.1 from layer round(0.5 x 24) = 12, gamma = 1 - 0.9^(1/12) = 0.0087410):
  2048 x 12, then 2048 -> 2031 (floor(17.90) = 17), 2014, 1997, 1980, 1963, 1946, 1929,
  1913 (floor(16.86) = 16), 1897, 1881, 1865, 1849.  Entering sums E = 48,040, leaving C =
  47,841, sum of squares of the entering counts Q = 96,251,408, tokens leaving a pruning layer
  G = 23,265.
* spill design (beta 0.3 from layer 6, gamma = 1 - 0.7^(1/18) = 0.019622): 2048 x 6, then
  2008, 1969, 1931, 1894, 1857, 1821, 1786, 1751, 1717, 1684, 1651, 1619, 1588, 1557, 1527,
  1498, 1469, 1441; E = 43,663, C = 43,056, Q = 80,416,031, G = 30,768.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulators.agile_quant import AgileQuantSimulator
from simulators._agile_quant_model import token_schedule

L, H, F, HEADS, HD, VOCAB, S = 24, 2048, 8192, 32, 64, 50272, 2048

DEFAULT_TOKENS = [2048] * 12 + [2031, 2014, 1997, 1980, 1963, 1946, 1929, 1913, 1897, 1881, 1865, 1849]
SPILL_TOKENS = [2048] * 6 + [2008, 1969, 1931, 1894, 1857, 1821, 1786, 1751, 1717, 1684, 1651, 1619, 1588, 1557,
                             1527, 1498, 1469, 1441]

SPILL = dict(a_bits_qkv=8, w_bits_qkv=4, group_size_qkv=64, a_bits_attn=16, w_bits_attn=16, group_size_attn=128,
             a_bits_o_proj=4, w_bits_o_proj=4, group_size_o_proj=32, a_bits_ffn_up=4, w_bits_ffn_up=4,
             group_size_ffn_up=128, a_bits_ffn_down=8, w_bits_ffn_down=8, group_size_ffn_down=256,
             prune_ratio=0.3, prune_start_frac=0.25, simd_packing="on", device="rpi-4b")


@pytest.fixture(scope="module")
def sim():
    return AgileQuantSimulator()


def test_token_counts_after_pruning_hand_computed():
    """The per-layer token counts of both designs (module docstring), and two edge cases:
    ratio 0 prunes nothing; 12 layers at beta 0.9 from layer 0: gamma = 1 - 0.1^(1/12) =
    0.174596, the first layer removes floor(2048 x 0.174596) = floor(357.57) = 357 tokens
    (1691 left), and the floors leave at least ceil(0.1 x 2048) = 205 after the last layer."""
    ent, cnt = token_schedule(S, L, 0.1, 0.5)
    assert cnt == DEFAULT_TOKENS and ent == [S] + DEFAULT_TOKENS[:-1]
    ent, cnt = token_schedule(S, L, 0.3, 0.25)
    assert cnt == SPILL_TOKENS and ent == [S] + SPILL_TOKENS[:-1]
    assert token_schedule(S, L, 0.0, 0.75) == ([S] * L, [S] * L)
    _, cnt = token_schedule(S, 12, 0.9, 0.0)
    assert cnt[0] == 1691 and 205 <= cnt[-1] < 205 + 12


# ------------------------------------------------------------------ default design ----
def test_default_design_every_metric_hand_computed(sim):
    """AgileQuant-v0's default design (W4A8 preset: linear GEMMs A8 x W4 group 128, attention
    A8 x A8, packing on, pruning 0.1 from half depth) on opt-1.3b/prefill, Snapdragon 870.

    Device: sum of clocks 3.2 + 3 x 2.42 = 10.46 GHz; FP16 rate R16 = 10.46e9 x 2 pipes x 8
    lanes = 167.36e9 MAC/s; INT8 rate R8 = 1.85 x R16 = 309.616e9 (group factor 1 at g = 128,
    and for K = 64 or K = t: (1 + 8/min(128, K)) / (1 + 8/min(128, K)) = 1); vector rate
    V = 20.92e9 instructions/s of 8 FP16 elements; half LLC 2 MB; 44 GB/s; efficiency 3.372.

    GEMMs (all compute-bound: the largest traffic/bandwidth is 0.43 ms against >= 25 ms):

    * q/k/v/o_proj (K = N = 2048): sum_l t_l x 2048^2 / R8 / 3.372 = 48,040 x 4,194,304 /
      309.616e9 / 3.372 = 0.1929976 s each.  Traffic per layer: weights 2048 x 2048 x 0.5 +
      2048 x 16 groups x 2.5 = 2,179,072 B; activations 2048 t B > 2 MB, panels of
      floor(2e6 / 1024) = 1953 columns -> 2 passes = 4096 t; output 4096 t (> 2 MB):
      24 x 2,179,072 + 8192 x 48,040 = 445,841,408 B.
    * fc1 (K = 2048, N = 8192): 47,841 x 2048 x 8192 / R8 / 3.372 = 0.7687926 s; traffic per
      layer 8,716,288 + 5 passes x 2048 t + 16384 t -> 24 x 8,716,288 + 26,624 x 47,841 =
      1,482,909,696 B.  fc2 (K = 8192): same time; panels of floor(2e6 / 4096) = 488 columns ->
      5 passes x 8192 t + 4096 t -> 24 x 8,716,288 + 45,056 x 47,841 = 2,364,715,008 B.
    * attn_qk per head: t^2 x 64 / R8; 32 x 64 x Q / R8 / 3.372 = 0.1888105 s; traffic per
      head 67 t (K^T at 1 B + 3 B of scale/zero per column) + 2 t^2 (scores > 2 MB):
      32 x (67 E + 2 Q) = 6,263,087,872 B.  attn_v: same time; traffic per head
      64 t + 192 x ceil(t / 128) + t^2 (the t x t INT8 probabilities exceed 2 MB, one pass):
      32 x (64 E + 192 x 380 + Q) = 3,180,765,696 B.
    * lm_head (last token, FP16, memory-bound): 2048 x 50272 x 2 = 205,914,112 B / 44e9 /
      3.372 = 1.387861 ms (compute would be 0.615 ms before the efficiency scale).

    Elementwise (per element: softmax 40/8 instructions = 2.39e-10 s > 4 B / 44e9 = 9.1e-11 s,
    so compute-bound; every other op is memory-bound because its tensor exceeds 2 MB):

    * unit:softmax: 32 x Q x 5 / V / 3.372 = 0.2183121 s; traffic 32 x 4 Q = 12,320,180,224 B.
    * unit:quantize (10 instructions = 6.0e-11 s < 9.1e-11 s per element: memory-bound):
      inputs of qkv (2048 t), attention q/k/v (6144 t), o_proj (2048 t), fc1 (2048 t_out), fc2
      (8192 t_out), 4 B each: 40,960 x (E + C) = 3,927,285,760 B; time = bytes / 44e9 / 3.372
      = 0.02646990 s.
    * unit:elementwise: two LayerNorms (4 B x 2048 per token in and out), residual adds
      (6 B x 2048), ReLU (4 B x 8192 per surviving token), gathers (4 B x 2048 per surviving
      token of a pruning layer), the final LayerNorm on 1849 tokens and the embedding gather
      (2 B x 2048 x 2048): 8192 (E + C) + 12288 (E + C) + 32768 C + 8192 G + 8192 x 1849 +
      8,388,608 = 3,745,419,264 B; time = bytes / 44e9 / 3.372 = 0.02524412 s.

    Totals: latency_s = 2.958611 s (the sum above); throughput_per_s = 1 / latency =
    0.3379965 /s; tokens_per_s = 2048 / latency = 692.2168; dram_bytes = 35,273,643,264 B.

    Footprints: weight_bytes = 24 x (3 + 1) x 2,179,072 + 24 x 2 x 8,716,288 (linear layers)
    + 50272 x 2048 x 2 (tied embedding) + 2050 x 2048 x 2 (positions) + 98 x 2048 x 2 (norms)
    = 842,285,056 B; dram_overflow_bytes = 0 (842 MB + 2048 x 24576 x 2 + 32 x 2048^2 x 2 =
    1.21 GB < 12 GB); gemm_macs = 4 h^2 E + 2 h Q + 2 h f C + h x vocab = 2,805,603,762,176.

    Error: quant_nsr_ratio = mean of the five groups' NSRs (golden values of the seeded
    tables: qkv 0.0104566, attn 0.0380460, o_proj 0.0116961, ffn_up 0.0105199, ffn_down
    0.00932206) = 0.0160082; prune_nsr_ratio = (1/24) x sum over the 12 pruned entering counts of
    the pruning table linearly interpolated at t / 16 (128-token table) = 0.0103154;
    error_nsr_ratio = 0.0263235; sqnr_db = -10 log10(0.0263235) = 15.79656; pruned_frac =
    1 - 48,040 / (24 x 2048) = 0.0226237.
    """
    m = sim.evaluate(sim.default_design(), "opt-1.3b/prefill")
    E, C, Q, G = 48_040, 47_841, 96_251_408, 23_265
    r8, v, bw, eff = 10.46e9 * 2 * 8 * 1.85, 10.46e9 * 2, 44e9, 3.372
    bd = m.breakdown
    want = {
        "q_proj": (E * 2048**2 / r8 / eff, 24 * 2_179_072 + 8192 * E),
        "fc1": (C * 2048 * 8192 / r8 / eff, 24 * 8_716_288 + 26_624 * C),
        "fc2": (C * 2048 * 8192 / r8 / eff, 24 * 8_716_288 + 45_056 * C),
        "attn_qk": (32 * 64 * Q / r8 / eff, 32 * (67 * E + 2 * Q)),
        "attn_v": (32 * 64 * Q / r8 / eff, 32 * (64 * E + 192 * 380 + Q)),
        "lm_head": (205_914_112 / bw / eff, 205_914_112),
        "unit:softmax": (32 * Q * 5 / v / eff, 32 * 4 * Q),
        "unit:quantize": (40_960 * (E + C) / bw / eff, 40_960 * (E + C)),
        "unit:elementwise": ((20_480 * (E + C) + 32_768 * C + 8192 * G + 8192 * 1849 + 8_388_608) / bw / eff,
                             20_480 * (E + C) + 32_768 * C + 8192 * G + 8192 * 1849 + 8_388_608),
    }
    for k in ("k_proj", "v_proj", "o_proj"):
        want[k] = want["q_proj"]
    assert set(bd) == set(want)
    for k, (t, b) in want.items():
        assert bd[k]["latency_s"] == pytest.approx(t, rel=1e-12), k
        assert bd[k]["dram_bytes"] == pytest.approx(b, rel=1e-12), k
    lat = sum(t for t, _ in want.values())
    assert lat == pytest.approx(2.958611, rel=2e-7)                      # the docstring's number
    assert m.latency_s == pytest.approx(lat, rel=1e-12)
    assert m.throughput_per_s == pytest.approx(1 / lat, rel=1e-12)
    assert m.extra["tokens_per_s"] == pytest.approx(2048 / lat, rel=1e-12)
    assert m.dram_bytes == sum(b for _, b in want.values()) == 35_273_643_264
    assert m.extra["weight_bytes"] == 24 * 4 * 2_179_072 + 24 * 2 * 8_716_288 + 50272 * 2048 * 2 + 2050 * 2048 * 2 \
        + 98 * 2048 * 2 == 842_285_056
    assert m.extra["dram_overflow_bytes"] == 0.0
    assert m.extra["gemm_macs"] == 4 * H**2 * E + 2 * H * Q + 2 * H * F * C + H * VOCAB == 2_805_603_762_176
    _check_error_metrics(m, [0.010456600718857754, 0.038046019111017015, 0.011696142303734867,
                             0.010519940376278195, 0.00932206083012518], DEFAULT_TOKENS, E)
    assert m.extra["quant_nsr_ratio"] == pytest.approx(0.0160082, rel=1e-5)
    assert m.extra["prune_nsr_ratio"] == pytest.approx(0.0103154, rel=1e-5)
    assert m.extra["sqnr_db"] == pytest.approx(15.79656, rel=1e-6)
    assert m.cycles is None and math.isnan(m.energy_j)                 # not modelled on a CPU


def _check_error_metrics(m, group_nsr: list[float], leaving: list[int], E: int) -> None:
    """quant = mean of the group NSRs (golden table values); prune = mean over layers of the
    pruning table interpolated at 128 t / 2048 for every entering count t < 2048; the rest follow."""
    from simulators._agile_quant_error import prune_nsr_table

    table = prune_nsr_table()                       # an input of the oracle (seeded experiment)
    entering = [S] + leaving[:-1]
    prune = sum(np.interp(t / 16, np.arange(len(table)), table) for t in entering if t < S) / L
    quant = sum(group_nsr) / 5
    assert m.extra["quant_nsr_ratio"] == pytest.approx(quant, rel=1e-9)
    assert m.extra["prune_nsr_ratio"] == pytest.approx(prune, rel=1e-12)
    assert m.extra["error_nsr_ratio"] == pytest.approx(quant + prune, rel=1e-9)
    assert m.extra["sqnr_db"] == pytest.approx(-10 * math.log10(quant + prune), rel=1e-9)
    assert m.extra["pruned_frac"] == pytest.approx(1 - E / (L * S), rel=1e-12)


# -------------------------------------------------------------------- spill design ----
def test_spill_design_every_metric_hand_computed(sim):
    """A design whose GEMM activations spill the 1 MB cache of the Raspberry Pi and are
    re-read per weight panel, with every kernel kind: qkv A8 x W4 g64 (INT8), attention FP16
    (FP32 lanes on the A72), o_proj A4 x W4 g32 and FFN-up A4 x W4 g128 (packed SMMW), FFN-down
    A8 x W8 g256 (INT8); pruning 0.3 from layer 6; rpi-4b.

    Device: 4 x 1.5 GHz; R16 = 6e9 x 2 pipes x 4 lanes = 48e9 MAC/s; V = 12e9 vector
    instructions/s of 4 elements; half LLC 0.5 MB; 12.8 GB/s; efficiency 0.0854.
    Rates: qkv R16 x 1.85 / ((1 + 8/64) / (1 + 8/128)) = 83.8667e9; attention R16; o_proj
    (SMMW, g32: drains d = 2048/32 = 64 vs 16 at g128, instructions per MAC (5K + 6d) / 8K ->
    factor 10624 / 10336) R16 x 1.85 x 1.75 / (10624 / 10336) = 151.19e9; fc1 R16 x 3.2375 =
    155.4e9; fc2 R16 x 1.85 / ((1 + 8/256) / (1 + 8/128)) = 91.491e9.  All GEMMs are
    compute-bound (fc2's 34 panel passes cost 44.6 ms of traffic per layer against 0.376 s of
    compute); the LM head is memory-bound (16.1 ms against 2.1 ms).

    Traffic per layer at t tokens (weights + activation passes + output):

    * q/k/v_proj: 2,097,152 + 2048 x 32 x 2.5 = 2,260,992 B; panels of floor(5e5 / 1024) = 488
      -> 5 passes x 2048 t; output 4096 t -> 2,260,992 + 14,336 t.
    * attn_qk per head (FP16): K^T 128 t; output 2 t^2 -> 128 t + 2 t^2; attn_v per head: V
      128 t; probabilities 2 t^2 re-read once (panel of floor(250000 / t) >= 122 >= 64 columns).
    * o_proj: 2,097,152 + 2048 x 64 x 2.5 = 2,424,832; activations 1024 t (4 bit), 5 passes;
      output 4096 t -> 2,424,832 + 9216 t.
    * fc1: 8,716,288; ceil(8192 / 488) = 17 passes x 1024 t; output 16,384 t -> + 33,792 t.
    * fc2: 8192 x 2048 + 2048 x 32 x 3 = 16,973,824; panels of floor(5e5 / 8192) = 61 ->
      34 passes x 8192 t; output 4096 t -> + 282,624 t.

    Elementwise: softmax compute-bound (40 / 4 / 12e9 = 8.3e-10 s > 4 B / 12.8e9 = 3.1e-10 s
    per element); every other op memory-bound; quantize only on the quantized inputs (qkv,
    o_proj: 2048 t; fc1: 2048 t_out; fc2: 8192 t_out): 16,384 E + 40,960 C bytes.

    Totals: latency_s = 348.8606 s; dram_bytes = 43,829,576,448 B; weight_bytes = 24 x
    (3 x 2,260,992 + 2,424,832 + 8,716,288 + 16,973,824) + 214,712,320 (FP16 tensors) =
    1,052,262,400 B.  Error: group NSRs qkv 0.00923974, attn 1.49265e-7 (FP16), o_proj
    0.0195477, ffn_up 0.0274364, ffn_down 1.80755e-4 -> quant 0.0112810; prune 0.0637485;
    error 0.0750295; sqnr 11.24768 dB; pruned_frac = 1 - 43,663 / 49,152 = 0.111674.
    """
    m = sim.evaluate(SPILL, "opt-1.3b/prefill")
    E, C, Q, G = 43_663, 43_056, 80_416_031, 30_768
    r16, v, bw, eff = 48e9, 12e9, 12.8e9, 0.0854
    rq, rfc1 = r16 * 1.85 / ((1 + 8 / 64) / (1 + 8 / 128)), r16 * 1.85 * 1.75
    ro, rfc2 = r16 * 1.85 * 1.75 / (10624 / 10336), r16 * 1.85 / ((1 + 8 / 256) / (1 + 8 / 128))
    want = {
        "q_proj": (E * 2048**2 / rq / eff, 24 * 2_260_992 + 14_336 * E),
        "o_proj": (E * 2048**2 / ro / eff, 24 * 2_424_832 + 9216 * E),
        "fc1": (C * 2048 * 8192 / rfc1 / eff, 24 * 8_716_288 + 33_792 * C),
        "fc2": (C * 2048 * 8192 / rfc2 / eff, 24 * 16_973_824 + 282_624 * C),
        "attn_qk": (32 * 64 * Q / r16 / eff, 32 * (128 * E + 2 * Q)),
        "attn_v": (32 * 64 * Q / r16 / eff, 32 * (128 * E + 2 * Q)),
        "lm_head": (205_914_112 / bw / eff, 205_914_112),
        "unit:softmax": (32 * Q * 10 / v / eff, 32 * 4 * Q),
        "unit:quantize": ((16_384 * E + 40_960 * C) / bw / eff, 16_384 * E + 40_960 * C),
        "unit:elementwise": ((20_480 * (E + C) + 32_768 * C + 8192 * G + 8192 * 1441 + 8_388_608) / bw / eff,
                             20_480 * (E + C) + 32_768 * C + 8192 * G + 8192 * 1441 + 8_388_608),
    }
    want["k_proj"] = want["v_proj"] = want["q_proj"]
    bd = m.breakdown
    assert set(bd) == set(want)
    for k, (t, b) in want.items():
        assert bd[k]["latency_s"] == pytest.approx(t, rel=1e-12), k
        assert bd[k]["dram_bytes"] == pytest.approx(b, rel=1e-12), k
    lat = sum(t for t, _ in want.values())
    assert lat == pytest.approx(348.8606, rel=3e-7)
    assert m.latency_s == pytest.approx(lat, rel=1e-12)
    assert m.throughput_per_s == pytest.approx(1 / lat, rel=1e-12)
    assert m.extra["tokens_per_s"] == pytest.approx(2048 / lat, rel=1e-12)
    assert m.dram_bytes == sum(b for _, b in want.values()) == 43_829_576_448
    assert m.extra["weight_bytes"] == 24 * (3 * 2_260_992 + 2_424_832 + 8_716_288 + 16_973_824) + 214_712_320 \
        == 1_052_262_400
    assert m.extra["dram_overflow_bytes"] == 0.0
    assert m.extra["gemm_macs"] == 4 * H**2 * E + 2 * H * Q + 2 * H * F * C + H * VOCAB
    _check_error_metrics(m, [0.009239739071822848, 1.4926523586311494e-07, 0.019547731548226557,
                             0.027436435529497823, 0.00018075484267875475], SPILL_TOKENS, E)
    assert m.extra["error_nsr_ratio"] == pytest.approx(0.0750295, rel=1e-6)
    assert m.extra["sqnr_db"] == pytest.approx(11.24768, rel=1e-6)


# ---------------------------------------------------------------- infeasible designs ----
def test_infeasible_designs_hand_computed(sim):
    """Two ways to be infeasible, with the numbers in the reason:

    * SMMW field capacity: two 4x4-bit products per 16-bit field, worst case 15 x 15 = 225
      each, 65535 // 225 = 291 products before a drain; group 512 on ffn_down drains every
      min(512, 8192) = 512 products > 291.
    * DRAM capacity: LLaMA-7B all FP16 on the 8 GB Pi: linear weights 32 x (4 x 4096^2 + 3 x
      4096 x 11008) x 2 B = 12,952,010,752 + untied embeddings 2 x 32000 x 4096 x 2 =
      524,288,000 + norms 130 x 4096 x 2 = 1,064,960 -> 13,477,363,712 B; activations 2048 x
      (4 x 4096 + 2 x 11008) x 2 + 32 x 2048^2 x 2 = 157,286,400 + 268,435,456 = 425,721,856 B;
      total 13,903,085,568 B = 13.90 GB > 8 GB; dram_overflow_bytes = 5,903,085,568.
    """
    d = {**sim.default_design(), "a_bits_ffn_down": 4, "w_bits_ffn_down": 4, "group_size_ffn_down": 512}
    m = sim.evaluate(d, "opt-1.3b/prefill")
    assert not m.feasible and "ffn_down: SMMW lane accumulates 512 products" in m.reason and "at most 291" in m.reason
    assert math.isnan(m.latency_s) and math.isnan(m.extra["tokens_per_s"])
    fp16 = {k: (16 if k.startswith(("a_bits", "w_bits")) else v) for k, v in sim.default_design().items()}
    m = sim.evaluate({**fp16, "device": "rpi-4b"}, "llama-7b/prefill")
    assert not m.feasible and "13.90 GB; rpi-4b has 8 GB" in m.reason
    assert m.extra["weight_bytes"] == 13_477_363_712
    assert m.extra["dram_overflow_bytes"] == 5_903_085_568 == 13_477_363_712 + 425_721_856 - 8e9
