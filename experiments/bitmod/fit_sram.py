"""Fit the three SRAM energy constants of simulators/bitmod.py (a CACTI stand-in).

The artifact prices its 512 KB, 8-bank SRAMs with CACTI (28 nm), whose outputs it
does not publish.  Everything else in its energy is a closed form we reproduce
(compute: PE energy x 1.5 x #PE x cycles; DRAM: 18.75 pJ/bit, matching every
published DRAM energy to < 1 uJ), so the published on-chip energy minus compute
is the SRAM energy.  We model it with three constants shared by all five
configurations, both phases and all six models (60 data points):

    read energy per access = read_pj0 + read_pj_per_bit * bus_bits   (weights and inputs)
    write energy           = write_pj_per_64b per 64-bit word

and fit them by relative least squares.  Run:

    python experiments/bitmod/fit_sram.py

It prints the constants (paste them into simulators.bitmod.SRAM) and the fit
error.  Data: experiments/bitmod/paper_energy_uj.json (the artifact's notebook).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import simulators.bitmod as B

DATA = Path(__file__).with_name("paper_energy_uj.json")


def features(model: str, accel: str, phase: str) -> tuple[np.ndarray, float]:
    """SRAM energy per unit of each constant (uJ), and the compute energy (uJ)."""
    saved = dict(B.SRAM)
    cols = []
    try:
        for key, field in (("read_pj0", "sram_read_energy_j"), ("read_pj_per_bit", "sram_read_energy_j"),
                           ("write_pj_per_64b", "sram_write_energy_j")):
            B.SRAM.update({k: 0.0 for k in B.SRAM})
            B.SRAM[key] = 1.0
            cols.append(B.simulate_model(model, accel, phase).extra[field] * 1e6)
        compute = B.simulate_model(model, accel, phase).extra["compute_energy_j"] * 1e6
    finally:
        B.SRAM.update(saved)
    return np.array(cols), compute


def fit() -> tuple[dict[str, float], float]:
    """Fitted constants and the largest relative error of the on-chip energy."""
    paper = json.loads(DATA.read_text())
    X, y, onchip = [], [], []
    for phase in B.PHASES:
        for accel in B.ACCELS:
            for i, model in enumerate(paper["models"]):
                f, compute = features(model, accel, phase)
                on = paper[phase][accel][i][0]
                X.append(f)
                y.append(on - compute)
                onchip.append(on)
    X, y, onchip = np.array(X), np.array(y), np.array(onchip)
    w = 1.0 / y
    coef, *_ = np.linalg.lstsq(X * w[:, None], y * w, rcond=None)
    pred_onchip = onchip - y + X @ coef
    err = float(np.max(np.abs(pred_onchip / onchip - 1)))
    return dict(zip(("read_pj0", "read_pj_per_bit", "write_pj_per_64b"), map(float, coef))), err


if __name__ == "__main__":
    consts, err = fit()
    print("SRAM =", {k: round(v, 4) for k, v in consts.items()})
    print(f"largest relative error of the fitted on-chip energy over 60 points: {err * 100:.2f} %")
