"""BO's candidate moves: ``BayesOpt._moves`` (one table per number of changed parameters) against
the plain loops it replaced (the cross: one parameter changed; the pairs: two), on M3ViT-v0 and
AgileQuant-v0.  Checks that both give the same designs in the same order (so the asks, and the
logged runs, are unchanged), then times them interleaved and prints the medians per ask.

Run:  python benchmarks/bench_bo_moves.py        (about 5 s)
"""

from __future__ import annotations

import itertools
import statistics
import timeit

from archgym.agent import make_agent
from archgym.runner import make_evaluator


def loop_cross(x: tuple, nv: list) -> list:
    """Every design that differs from ``x`` in one parameter (the loop before ``_moves``)."""
    return [x[:j] + (v,) + x[j + 1:] for j, n in enumerate(nv) for v in range(n) if v != x[j]]


def loop_pairs(x: tuple, nv: list) -> list:
    """Every design that differs from ``x`` in two parameters (the loop before ``_moves``)."""
    out = []
    for j, k in itertools.combinations(range(len(nv)), 2):
        for a, b in itertools.product(range(nv[j]), range(nv[k])):
            if a != x[j] and b != x[k]:
                z = list(x)
                z[j], z[k] = a, b
                out.append(tuple(z))
    return out


def main() -> int:
    for env in ("archgym/M3ViT-v0", "archgym/AgileQuant-v0"):
        ag = make_agent("bo", make_evaluator(env).space, seed=0)
        nv = ag._nvec.tolist()
        for x in (tuple(0 for _ in nv), tuple(1 for _ in nv), tuple(n - 1 for n in nv)):
            assert loop_cross(x, nv) == ag._moves(x, 1) and loop_pairs(x, nv) == ag._moves(x, 2), env
        times: dict[str, list[float]] = {"loops": [], "_moves": []}
        for _ in range(9):  # interleaved
            times["loops"].append(timeit.timeit(lambda: (loop_cross(x, nv), loop_pairs(x, nv)), number=50) / 50)
            times["_moves"].append(timeit.timeit(lambda: (ag._moves(x, 1), ag._moves(x, 2)), number=50) / 50)
        a, b = (statistics.median(times[k]) * 1e3 for k in ("loops", "_moves"))
        print(f"{env}: cross + pairs per ask, loops {a:.3f} ms, _moves {b:.3f} ms ({b / a:.2f}x); same designs, same order")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
