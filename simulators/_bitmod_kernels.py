"""Numba kernels of the BitMoD accelerator model (see :mod:`simulators.bitmod`).

The slow reference is ``simulators.bitmod._layer_reference`` (plain Python,
written from the formulas of the HPCA'25 artifact, commit a902a09); the tests
compare the kernels with it.  Layer rows are
``(count, cout, cin, cin_i, tokens, is_attention)``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["FIELDS", "N_FIELDS", "model_eval", "layers_eval", "batch_eval"]

# Output columns of model_eval / layers_eval (per layer row, times its count).
FIELDS = ("compute_cycles", "cycles", "tiles", "w_dram_bits", "i_dram_bits", "o_dram_bits",
          "w_sram_writes", "i_sram_writes", "o_sram_writes")
N_FIELDS = len(FIELDS)


@numba.njit(cache=True)
def _row(layers, r, H, W, D, lat_lin, lat_att, w_bits, att_bits, a_bits, wbuf_bytes, abuf_bytes,
         dram_bits_per_cycle, out, j):
    """Add row ``r`` of ``layers`` (times its count) to ``out[j, :]``."""
    cnt = layers[r, 0]
    cout = layers[r, 1]
    cin = layers[r, 2]
    cin_i = layers[r, 3]
    tok = layers[r, 4]
    att = layers[r, 5] > 0.5
    wb = att_bits if att else w_bits
    lat = lat_att if att else lat_lin
    tiles = math.ceil(cin / D) * math.ceil(cout / H) * math.ceil(tok / W)
    compute = tiles * lat
    w_bytes = math.ceil(cin * wb / 8.0) * cout
    i_bytes = math.ceil(cin_i * a_bits / 8.0) * tok
    o_bytes = math.ceil(cout * a_bits / 8.0) * tok
    fw = 1.0
    fi = 1.0
    # both operands overflow their buffers: re-read whichever moves fewer bytes
    if w_bytes > wbuf_bytes and i_bytes > abuf_bytes:
        re_i = math.ceil(w_bytes / wbuf_bytes)
        re_w = math.ceil(i_bytes / abuf_bytes)
        if re_w * w_bytes + i_bytes < re_i * i_bytes + w_bytes:
            fw = re_w
        else:
            fi = re_i
    dram = int(w_bytes * 8.0 / dram_bits_per_cycle * fw + o_bytes * 8.0 / dram_bits_per_cycle
               + i_bytes * 8.0 / dram_bits_per_cycle * fi)
    out[j, 0] += cnt * compute
    out[j, 1] += cnt * max(compute, dram)
    out[j, 2] += cnt * tiles
    out[j, 3] += cnt * w_bytes * 8.0 * fw
    out[j, 4] += cnt * i_bytes * 8.0 * fi
    out[j, 5] += cnt * o_bytes * 8.0
    out[j, 6] += cnt * math.ceil(cin * wb / 64.0) * cout * fw
    out[j, 7] += cnt * math.ceil(cin_i * a_bits / 64.0) * tok * fi
    out[j, 8] += cnt * math.ceil(cout * a_bits / 64.0) * tok


@numba.njit(cache=True)
def model_eval(layers, H, W, D, lat_lin, lat_att, w_bits, att_bits, a_bits, wbuf_bytes, abuf_bytes,
               dram_bits_per_cycle, out):
    """Totals over a layer table for one design; writes ``out`` (float64, N_FIELDS)."""
    tot = np.zeros((1, N_FIELDS))
    for r in range(layers.shape[0]):
        _row(layers, r, H, W, D, lat_lin, lat_att, w_bits, att_bits, a_bits, wbuf_bytes, abuf_bytes,
             dram_bits_per_cycle, tot, 0)
    for j in range(N_FIELDS):
        out[j] = tot[0, j]


@numba.njit(cache=True)
def layers_eval(layers, group, n_groups, H, W, D, lat_lin, lat_att, w_bits, att_bits, a_bits, wbuf_bytes,
                abuf_bytes, dram_bits_per_cycle):
    """Per-layer sums for one design: row ``r`` adds into output row ``group[r]``;
    returns ``(n_groups, N_FIELDS)`` (the per-layer breakdown; totals are its column sums)."""
    out = np.zeros((n_groups, N_FIELDS))
    for r in range(layers.shape[0]):
        _row(layers, r, H, W, D, lat_lin, lat_att, w_bits, att_bits, a_bits, wbuf_bytes, abuf_bytes,
             dram_bits_per_cycle, out, group[r])
    return out


@numba.njit(cache=True)
def batch_eval(layers, H, W, D, lat_lin, lat_att, w_bits, att_bits, a_bits, wbuf_bytes, abuf_bytes, dram_bits):
    """:func:`model_eval` for ``n`` designs given as arrays; returns ``(n, N_FIELDS)``."""
    n = H.shape[0]
    res = np.zeros((n, N_FIELDS))
    for d in range(n):
        for r in range(layers.shape[0]):
            _row(layers, r, H[d], W[d], D[d], lat_lin[d], lat_att[d], w_bits[d], att_bits[d], a_bits,
                 wbuf_bytes[d], abuf_bytes[d], dram_bits[d], res, d)
    return res
