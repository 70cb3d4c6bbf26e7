"""Numba kernels of the M3ViT FPGA model (see :mod:`simulators.m3vit`).

Each kernel has a slow plain-Python twin in ``simulators/_m3vit_model.py``
(``lru_misses_reference``, ``timeline_reference``); the tests compare them on random
inputs.  Kernels take arrays and scalars only (no globals, no closures).  The batched
frame model is in ``simulators/_m3vit_batch.py``.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def lru_misses(experts, slots, hits_first):
    """Misses of an LRU expert cache with ``slots`` entries, per MoE layer.

    ``experts``: int64 ``[L, T, k]``; tokens are visited in order.  Within a
    token the experts go in top-k order, or, with ``hits_first``, the cached
    ones first and then the missing ones in top-k order (so a token never
    evicts an expert it still needs when ``slots >= k``).  Every access makes
    the expert most recently used; a miss evicts the least recently used.  The
    cache starts empty at every layer (another layer's experts are other
    weights).  Returns int64 ``[L]``.
    """
    L, T, k = experts.shape
    out = np.zeros(L, dtype=np.int64)
    n_max = 0
    for l in range(L):
        for t in range(T):
            for j in range(k):
                if experts[l, t, j] + 1 > n_max:
                    n_max = experts[l, t, j] + 1
    last = np.empty(n_max, dtype=np.int64)   # last-use time of each expert, -1 = not cached
    done = np.zeros(k, dtype=np.bool_)
    for l in range(L):
        last[:] = -1
        used = 0
        clock = 0
        misses = 0
        for t in range(T):
            done[:] = False
            if hits_first:
                for j in range(k):
                    e = experts[l, t, j]
                    if last[e] >= 0:
                        last[e] = clock
                        clock += 1
                        done[j] = True
            for j in range(k):
                if done[j]:
                    continue
                e = experts[l, t, j]
                if last[e] < 0:
                    misses += 1
                    if used < slots:
                        used += 1
                    else:
                        victim = -1
                        oldest = clock + 1
                        for x in range(n_max):
                            if last[x] >= 0 and last[x] < oldest:
                                oldest = last[x]
                                victim = x
                        last[victim] = -1
                last[e] = clock
                clock += 1
        out[l] = misses
    return out


@numba.njit(cache=True)
def timeline(size, load, comp, capacity, prefetch):
    """Schedule a sequence of steps on one compute engine and one DRAM channel.

    Step ``i`` computes for ``comp[i]`` cycles after its weight chunk of
    ``size[i]`` bytes (0 = no weights) has been loaded in ``load[i]`` cycles.
    Rules (see ``timeline_reference`` for the same rules in plain Python):

    * compute is in order: step ``i`` starts after step ``i-1`` ends and after
      its own load ends;
    * loads are in order on one channel;
    * a chunk occupies ``size`` bytes of a weight pool of ``capacity`` bytes
      from its load start until its compute ends;
    * ``prefetch = 0``: a load starts only after the previous step's compute
      ends; ``prefetch = p >= 1``: chunk ``j`` may start loading once chunk
      ``j - p`` has started computing.

    Returns ``(end, stall)``: int64 arrays of each step's compute end time and
    of the cycles it waited for its load beyond the previous step's end.
    """
    n = size.shape[0]
    end = np.zeros(n, dtype=np.int64)
    stall = np.zeros(n, dtype=np.int64)
    cstart = np.zeros(n, dtype=np.int64)     # compute start of each weight chunk, in chunk order
    live_end = np.zeros(n, dtype=np.int64)   # release times of chunks loaded so far
    live_size = np.zeros(n, dtype=np.int64)
    n_live = 0
    n_chunks = 0
    dram_free = 0
    prev_end = 0
    for i in range(n):
        if size[i] > 0:
            if prefetch == 0:
                t0 = prev_end
            elif n_chunks - prefetch >= 0:
                t0 = cstart[n_chunks - prefetch]
            else:
                t0 = 0
            if dram_free > t0:
                t0 = dram_free
            # earliest t >= t0 with (bytes still held at t) + size <= capacity
            t = t0
            while True:
                held = 0
                nxt = -1
                for c in range(n_live):
                    if live_end[c] > t:
                        held += live_size[c]
                        if nxt < 0 or live_end[c] < nxt:
                            nxt = live_end[c]
                if held + size[i] <= capacity or nxt < 0:
                    break
                t = nxt
            load_end = t + load[i]
            dram_free = load_end
            start = prev_end if prev_end > load_end else load_end
            stall[i] = start - prev_end
            end[i] = start + comp[i]
            cstart[n_chunks] = start
            n_chunks += 1
            # drop chunks released by t (they can never matter again: later loads start >= t)
            k = 0
            for c in range(n_live):
                if live_end[c] > t:
                    live_end[k] = live_end[c]
                    live_size[k] = live_size[c]
                    k += 1
            n_live = k
            live_end[n_live] = end[i]
            live_size[n_live] = size[i]
            n_live += 1
        else:
            end[i] = prev_end + comp[i]
        prev_end = end[i]
    return end, stall

