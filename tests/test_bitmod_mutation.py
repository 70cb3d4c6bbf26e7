"""BitMoD-v0 metric code (``_energy_coefs``, ``_energy_parts``, ``_metrics``) on hand-picked kernel
fields, with unequal weight and activation buffers, a weight width that is not a multiple of 4
and both PE kinds (issue #17 item 7, mutation testing; docs/testing.md).

test_bitmod_oracle.py works every metric out from layer shapes with equal buffers; here the
kernel's fields are the input, so a swapped buffer, bus or term changes a number.  Constants are
restated from the HPCA'25 artifact (commit a902a09) and the model's docstrings, not imported.
"""

import numpy as np
import pytest

from simulators.bitmod import _Design, _metrics

# per layer: compute cycles, cycles, tiles, DRAM bits (weights, inputs, outputs), 64-bit writes
# of the weight buffer and (two kinds) of the activation buffer; the two rows sum to
# 1000, 2000, 10, 800, 160, 40, 5, 3, 1
PER = np.array([[600, 1200, 6, 500, 100, 20, 3, 2, 1], [400, 800, 4, 300, 60, 20, 2, 1, 0]], dtype=np.float64)


def _design(bit_serial):
    # 4 x 8 PEs of dot-product size 2, 6-bit weights, 1 pJ / 1000 um^2 per PE, weight buffer
    # 2048 kB, activation buffer 128 kB, 500 MHz, three 8x8 encoder tiles
    return _Design(H=4, W=8, D=2, bit_serial=bit_serial, w_bits=6.0, att_bits=6.0, pe_pj=1.0, pe_um2=1000.0,
                   wbuf_kb=2048.0, abuf_kb=128.0, dram_bits=256, clock_mhz=500.0, tiles_8x8=3)


@pytest.mark.parametrize("bit_serial, sram_read_pj", [(False, 1_512.9995), (True, 1_407.1435)])
def test_metrics_hand_computed_with_unequal_buffers(bit_serial, sram_read_pj):
    """Compute: 1 pJ x 1.5 (place and route) x 32 PEs = 48 pJ per cycle x 1,000 = 48,000 pJ.
    SRAM read per tile = (52.0515 + 0.0827 x weight bus) x sqrt(2048/512 = 4) = x 2
                       + (52.0515 + 0.0827 x activation bus) x sqrt(128/512) = x 0.5.
    Buses (bits): weights D x ceil(6/4) x 4 x H = 2 x 8 x 4 = 64, activations D x 16 x W = 256;
    bit-serial PEs read half of each (32 and 128).
      parallel:    (57.3443 x 2 + 73.2227 x 0.5) x 10 tiles = (114.6886 + 36.61135) x 10 = 1,512.9995 pJ
      bit-serial:  (54.6979 x 2 + 62.6371 x 0.5) x 10 tiles = (109.3958 + 31.31855) x 10 = 1,407.1435 pJ
    SRAM writes: 9.9079 x 2 x 5 + 9.9079 x 0.5 x (3 + 1) = 99.079 + 19.8158 = 118.8948 pJ.
    DRAM: 18.75 pJ/bit x 1,000 bits = 18,750 pJ.  Latency 2,000 / 500 MHz = 4 us.
    Area: PEs 32 x 1,000 + 3 x 2,419 = 39,257 um^2; SRAM (2048 + 128) kB x 8,192 x 0.195
          = 3,476,029.44 um^2.  On chip 2,176 kB = 2,228,224 bytes.
    """
    m = _metrics(PER, _design(bit_serial), ("l1", "l2"))
    onchip_pj = 48_000 + sram_read_pj + 118.8948
    energy = (onchip_pj + 18_750) * 1e-12
    assert m.feasible and m.cycles == 2000
    want = {"latency_s": 4e-6, "energy_j": energy, "power_w": energy / 4e-6, "throughput_per_s": 250_000,
            "area_mm2": (39_257 + 3_476_029.44) * 1e-6, "onchip_bytes": 2_228_224, "dram_bytes": 125,
            "compute_cycles": 1000, "edp_js": energy * 4e-6, "onchip_energy_j": onchip_pj * 1e-12,
            "compute_energy_j": 48_000e-12, "sram_read_energy_j": sram_read_pj * 1e-12,
            "sram_write_energy_j": 118.8948e-12, "dram_energy_j": 18_750e-12, "pe_array_area_mm2": 39_257e-6,
            "pe_count": 32}
    for k, v in want.items():
        assert m.get(k) == pytest.approx(v, rel=1e-12), k
    assert set(m.breakdown) == {"l1", "l2"}


def test_one_layer_and_extra_metrics_pass_through():
    """A single row is its own total; keyword metrics are added to the extras unchanged."""
    m = _metrics(PER[:1], _design(False), (), ppl_increase_frac=0.25)
    assert m.cycles == 1200 and m.extra["compute_cycles"] == 600 and m.dram_bytes == (500 + 100 + 20) / 8
    assert m.extra["ppl_increase_frac"] == 0.25 and dict(m.breakdown) == {}
