"""SCALE-Sim 3 topology CSV files as workloads (:func:`read_topology`).

SCALE-Sim 3.0.0 (``scalesim/topology_utils.py``, class ``topologies``) reads two formats:

* conv: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,
  Num Filter, Strides,`` -> one :class:`~archgym.workloads.Conv` per row;
* GEMM: ``Layer, M, N, K,`` -> one :class:`~archgym.workloads.Gemm` ``(M x K) @ (K x N)`` per row.

Conventions copied from SCALE-Sim (its source, and its parser run on every shipped topology file):

* rows are split on ``,`` and whatever follows the last comma is dropped (shipped files put
  comments there, ``1,#dw``), so every row ends with a comma: a row without one loses its last
  value, and one with too few values left is an error naming the rule; values are integers with
  optional spaces or tabs around them; empty lines are skipped; CRLF endings and a UTF-8
  byte-order mark are fine;
* one stride for both directions; an optional last column ``N:M`` is a sparsity ratio (kept in
  ``Workload.meta["sparsity"]``, not priced: layers are priced dense, as SCALE-Sim does with
  ``SparsitySupport false``);
* output size ``ceil((H - Fh + S) / S)`` (ceil, not floor: when S does not divide ``H - Fh`` SCALE-Sim
  has one more output row than PyTorch, whose window hangs over the edge), the same for the width;
* a layer whose name contains ``DP`` is depthwise: SCALE-Sim expands it into ``Channels`` layers
  named ``<name>Channel_<i>``, each with one channel and the same ``Num Filter``; so do we, so
  that layer names and order match SCALE-Sim's reports;
* a filter larger than its input is an error (SCALE-Sim asserts); there is no padding (inputs
  are listed pre-padded), dilation or groups field; words are 8 bit (SCALE-Sim's word size is
  one byte), so layers get ``a_bits = w_bits = 8``.

Where we differ, and why: SCALE-Sim takes the format from its command line (``-i gemm``) and
skips the first line whatever it holds (a file without a header silently loses its first
layer); we require one of the two headers and take the format from it (titles compared
case-insensitively, spaces normalised).  Malformed input is one :class:`WorkloadError` line naming
the file, the line number, the field and the value.

``batch``: images of a conv topology (``M = batch * out_h * out_w`` rows of each im2col GEMM; SCALE-Sim
fixes it at 1).  A GEMM row's M already counts every row, so ``batch > 1`` is an error for a GEMM file.
"""

from __future__ import annotations

import math
import os
import re

from .layers import Conv, Gemm, Workload, WorkloadError

__all__ = ["read_topology", "CONV_HEADER", "GEMM_HEADER"]

CONV_HEADER = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width", "Channels",
               "Num Filter", "Strides")
GEMM_HEADER = ("Layer", "M", "N", "K")
_CONV_FIELDS = ("ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "num_filters", "stride")
_GEMM_FIELDS = ("M", "N", "K")
# SCALE-Sim's conv CSVs and a BOM-prefixed header of one of them (UNet_2d.csv)
_BOM = "\ufeff"


def _norm(title: str) -> str:
    return re.sub(r"\s+", " ", title.strip().lower())


def _format_of(header: str, where: str) -> str:
    titles = [_norm(t) for t in header.lstrip(_BOM).strip().split(",")]
    if titles and titles[-1] == "":
        titles = titles[:-1]
    conv = [_norm(t) for t in CONV_HEADER[1:]]
    if titles[1:8] == conv and len(titles) <= 9:
        return "conv"
    if titles[1:4] == ["m", "n", "k"] and len(titles) <= 5:
        return "gemm"
    raise WorkloadError(
        f"{where}: line 1: header {header.strip()!r} is neither SCALE-Sim's conv header "
        f"'{', '.join(CONV_HEADER)},' nor its GEMM header '{', '.join(GEMM_HEADER)},'")


def _int(value: str, field: str, where: str, lineno: int) -> int:
    text = value.strip()
    try:
        v = int(text)
    except ValueError:
        raise WorkloadError(f"{where}: line {lineno}: {field}={text!r} is not an integer") from None
    if v < 1:
        raise WorkloadError(f"{where}: line {lineno}: {field}={v} must be a positive integer")
    return v


def _sparsity(value: str, where: str, lineno: int) -> tuple[int, int]:
    parts = value.strip().split(":")
    if len(parts) != 2:
        raise WorkloadError(f"{where}: line {lineno}: sparsity={value.strip()!r} must look like N:M")
    n, m = (_int(p, "sparsity", where, lineno) for p in parts)
    return n, m


def read_topology(path: str, *, batch: int = 1) -> Workload:
    """Read a SCALE-Sim 3 topology CSV (conv or GEMM format) into a :class:`Workload`.

    ``batch`` images for a conv file (see the module docstring; 1 for a GEMM file).  Layer
    names and order are kept (depthwise ``DP`` rows expanded as SCALE-Sim does); each conv
    layer carries SCALE-Sim's output size.  Raises :class:`WorkloadError` (one line naming the
    file, the line and the value) on anything SCALE-Sim would not read or would misread.
    """
    where = os.fspath(path)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise WorkloadError(f"{where}: batch={batch!r} must be a positive integer")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise WorkloadError(f"{where}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise WorkloadError(f"{where}: cannot be read: {e.strerror or e}") from None
    if not lines or not lines[0].strip():
        raise WorkloadError(f"{where}: line 1: empty; expected SCALE-Sim's conv or GEMM header")
    kind = _format_of(lines[0], where)
    if kind == "gemm" and batch != 1:
        raise WorkloadError(f"{where}: batch={batch} applies to conv topologies; a GEMM row's M already counts "
                            "every row (scale M in the file instead)")
    names = _CONV_FIELDS if kind == "conv" else _GEMM_FIELDS
    layers: list = []
    seen: dict[str, int] = {}
    sparsity: dict[str, tuple[int, int]] = {}
    for lineno, raw in enumerate(lines[1:], start=2):
        row = raw.strip()
        if not row:
            continue
        # as SCALE-Sim: whatever follows the last comma is dropped (files use it for comments)
        fields = row.split(",")[:-1]
        want = 1 + len(names)
        if len(fields) not in (want, want + 1):
            hint = ("; SCALE-Sim drops the value after the last comma, so every row must end with ','"
                    if not row.endswith(",") else "")
            raise WorkloadError(f"{where}: line {lineno}: {len(fields)} fields before the last comma, expected "
                                f"{want} (name, {', '.join(names)}) and an optional N:M sparsity{hint}")
        name = fields[0].strip()
        if not name:
            raise WorkloadError(f"{where}: line {lineno}: empty layer name")
        vals = [_int(v, k, where, lineno) for k, v in zip(names, fields[1:want])]
        sp = _sparsity(fields[want], where, lineno) if len(fields) > want else None
        if kind == "gemm":
            M, N, K = vals
            new = [Gemm(name, m=M, k=K, n=N, a_bits=8, w_bits=8)]
        else:
            H, W, fh, fw, ch, nf, s = vals
            if fh > H or fw > W:
                raise WorkloadError(f"{where}: line {lineno}: filter {fh}x{fw} is larger than its input {H}x{W}")
            oh, ow = math.ceil((H - fh + s) / s), math.ceil((W - fw + s) / s)
            conv = dict(in_h=H, in_w=W, filter_h=fh, filter_w=fw, num_filters=nf, stride_h=s, stride_w=s,
                        out_h=oh, out_w=ow, batch=batch, a_bits=8, w_bits=8)
            if "DP" in name:
                new = [Conv(f"{name}Channel_{i}", channels=1, **conv) for i in range(ch)]
            else:
                new = [Conv(name, channels=ch, **conv)]
        for layer in new:
            if layer.name in seen:
                raise WorkloadError(f"{where}: line {lineno}: layer name {layer.name!r} already used on line "
                                    f"{seen[layer.name]}; layer names must be unique")
            seen[layer.name] = lineno
            if sp is not None:
                sparsity[layer.name] = sp
        layers.extend(new)
    if not layers:
        raise WorkloadError(f"{where}: no layers after the header")
    meta = {"format": kind, "scalesim_topology": os.path.basename(where)}
    if sparsity:
        meta["sparsity"] = sparsity
    stem = os.path.splitext(os.path.basename(where))[0]
    return Workload(stem, tuple(layers), phase="inference", meta=meta,
                    params={"batch": batch} if kind == "conv" else {})
