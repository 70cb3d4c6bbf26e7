"""Merging repeated layers of a traced or read graph into one layer with a count.

Layer names come from module paths or node names (``model.layers.3.mlp.down_proj``,
``/layers.3/mlp/down_proj/MatMul``).  A number standing alone between separators is
a block index; layers whose names differ only there and whose shapes are equal are
one layer named with ``*`` in its place and the sum of their counts.  When blocks at
the same position differ in shape (a strided first block), each group is named by
its own indices (``layer2.0.conv1``, or ``blocks.{0-5,7}.attn`` for several).
"""

from __future__ import annotations

import dataclasses
import re
from collections import OrderedDict, defaultdict
from typing import Iterable

from .layers import Layer

__all__ = ["merge_layers"]

_INDEX = re.compile(r"(?<![A-Za-z0-9])\d+(?![A-Za-z0-9])")


def _ranges(vals: list[str]) -> str:
    """``["0", "1", "2", "5"]`` -> ``"{0-2,5}"``."""
    nums, out, i = sorted({int(v) for v in vals}), [], 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if i == j else f"{nums[i]}-{nums[j]}")
        i = j + 1
    return "{" + ",".join(out) + "}"


def _pattern(norm: str, names: list[str]) -> str:
    """``norm`` with each ``*`` replaced by the index (or index set) the names have there."""
    cols = list(zip(*(_INDEX.findall(n) for n in names)))
    parts = norm.split("*")
    out = parts[0]
    for col, text in zip(cols, parts[1:]):
        vals = list(dict.fromkeys(col))
        out += (vals[0] if len(vals) == 1 else _ranges(vals)) + text
    return out


def merge_layers(items: Iterable[tuple[str, Layer, int]]) -> list[Layer]:
    """``(name, layer with any name and count 1, count)`` items -> merged layers, in order of first
    appearance, with unique names (a clash gets ``#2``, ``#3``...)."""
    groups: OrderedDict[tuple, list] = OrderedDict()
    for name, proto, count in items:
        g = groups.setdefault((_INDEX.sub("*", name), dataclasses.replace(proto, name="", count=1)), [[], 0])
        g[0].append(name)
        g[1] += count
    per_norm: dict[str, int] = defaultdict(int)
    for norm, _ in groups:
        per_norm[norm] += 1
    layers, used = [], set()
    for (norm, proto), (names, count) in groups.items():
        uniq = list(dict.fromkeys(names))
        name = uniq[0] if len(uniq) == 1 else norm if per_norm[norm] == 1 else _pattern(norm, uniq)
        base, k = name, 2
        while name in used:
            name, k = f"{base}#{k}", k + 1
        used.add(name)
        layers.append(dataclasses.replace(proto, name=name, count=count))
    return layers
