"""MatMulFree-v0 metric code: the per-core resources (``_core_resources``) of a 2-bit and a
1.6-bit (ternary-packed) design side by side, worked out by hand (issue #17 item 7, mutation
testing; docs/testing.md).

test_matmulfree_oracle.py checks every metric of three 2-bit, 24-bit-accumulator, fp32-state
designs; the trit decoder, other accumulator and state widths and the ceiling divisions of the
register file are pinned here.  Constants restated from simulators/matmulfree.py's CONST
comments (ALM/M20K/DSP budget of each unit), not imported.
"""

import types

import numpy as np

from simulators.matmulfree import _core_resources

# the program's largest N, K and its recurrent-state values (what sizes the register file)
PROG = types.SimpleNamespace(n_max=3072, k_max=1536, state_values=1024)


def test_core_resources_hand_computed_for_a_2_bit_and_a_1_6_bit_core():
    """A: 4 cores, 64-bit port, 16-beat bursts, 2-bit codes (4 weights/byte), 20-bit accumulators,
    32-bit state at 100 ALMs.  B: 3 cores, 8-bit port, 64-beat bursts, 1.6-bit codes (5 trits/byte),
    16-bit accumulators, 16-bit state at 50 ALMs.
    ALMs: lanes = port bytes x weights per byte (A 32, B 5) x (4 + 0.5 x acc bits) (A 448, B 60);
      B adds the trit decoder 1 byte x 40 = 40;
      + dequant 150 + RMS 800 + row-wise 1200 + state + load/store 300 + 2/port bit + control 1000
      + arbitration 500:  A 448 + 3,950 + 100 + 128 = 4,626;  B 100 + 3,950 + 50 + 16 = 4,116.
    M20K (20,480 bits each): RMS 1 + row 2 + control 2, the double-buffered burst FIFO
      ceil(2 x burst x port bits / 20,480) (A 2,048 -> 1, B 1,024 -> 1), the register file
      ceil((2 K x 8 + 2 ceil(N/cores) x 32 + 6 ceil(max(N, K)/cores) x 32
            + ceil(state/cores) x state bits) / 20,480):
      A 24,576 + 49,152 + 147,456 + 8,192 = 229,376 -> 12;  B 24,576 + 65,536 + 196,608 + 5,472
      = 292,192 -> 15.  A 18, B 21.
    DSP: dequant 1 + RMS 4 + row-wise 3 = 8 each.
    """
    alm, m20k, dsp = _core_resources(PROG, np.array([4, 3]), np.array([64, 8]), np.array([16, 64]),
                                     np.array([2.0, 1.6]), np.array([20, 16]), np.array([32, 16]),
                                     np.array([100, 50]))
    assert alm.tolist() == [4626, 4116]
    assert m20k.tolist() == [18, 21]
    assert dsp.tolist() == [8, 8]


def test_register_file_blocks_at_an_m20k_boundary():
    """The register file's M20K count where one bit decides it (both designs: 64-bit port,
    16-beat bursts, so RMS 1 + row 2 + control 2 + FIFO ceil(2,048 / 20,480) = 1, i.e. 6 blocks
    before the register file; 2-bit codes, 20-bit accumulators, 32-bit state).

    On the boundary: 1 core, K = N = 1,280, no state: 2 x 1,280 x 8 + 2 x 1,280 x 32
    + 6 x 1,280 x 32 = 20,480 + 81,920 + 245,760 = 348,160 = 17 x 20,480 bits exactly -> 17,
    total 23 (one more bit per K or slice element, "2 K x 9" or "2 slice x 33", needs an 18th).

    Just above it: 2 cores, N = 127, K = 127, 129 state values: slices ceil(127 / 2) = 64 and
    ceil(129 / 2) = 65: 2 x 127 x 8 + 2 x 64 x 32 + 6 x 64 x 32 + 65 x 32
    = 2,032 + 4,096 + 12,288 + 2,080 = 20,496 = 20,480 + 16 -> 2, total 8 (unrounded slices,
    63.5 or 64.5 values, would fit one block).
    """
    on = types.SimpleNamespace(n_max=1280, k_max=1280, state_values=0)
    above = types.SimpleNamespace(n_max=127, k_max=127, state_values=129)
    for prog, cores, blocks in ((on, 1, 23), (above, 2, 8)):
        _alm, m20k, _dsp = _core_resources(prog, np.array([cores]), np.array([64]), np.array([16]),
                                           np.array([2.0]), np.array([20]), np.array([32]), np.array([100]))
        assert m20k.tolist() == [blocks]
