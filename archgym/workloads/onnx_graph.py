"""ONNX graph -> :class:`Workload` (the ``onnx`` package only: no runtime, no weights needed).

Shapes come from ONNX shape inference (``onnx.shape_inference.infer_shapes`` with data
propagation) after the graph inputs' dynamic dimensions are fixed.  Recorded nodes:

* ``MatMul``, ``Gemm``, ``MatMulInteger``, ``QLinearMatMul``, two-operand ``Einsum`` ->
  :class:`Gemm` (``kind="linear"`` when an operand is a constant: an initializer or
  computed from initializers only; activation x activation products are ``"attn_v"``
  when the first operand comes from a ``Softmax``, else ``"attn_qk"``);
* ``Conv``, ``ConvInteger``, ``QLinearConv`` with 1-D or 2-D kernels -> :class:`Conv` (the
  padded input and the inferred output size); 3-D and ``ConvTranspose`` -> im2col GEMMs;
* ``Attention`` (opset 23) -> its ``attn_qk`` and ``attn_v`` GEMMs.

Nodes inside control flow (``If``, ``Loop``, ``Scan`` bodies) are not visited.  Node names
give layer names, and nodes repeated per block with equal shapes are merged into one
layer with a count (see :mod:`archgym.workloads._naming`).

Dynamic dimensions: ``dims={"name": size}`` (``?dim.name=size`` in a workload text) sets
any; ``batch`` sets the dimension named like a batch (``batch``, ``batch_size``, ``N``,
...) and ``seq_len`` the one named like a sequence (``seq_len``, ``sequence_length``, ...).
A dimension left unresolved is an error naming it and the option that sets it.
"""

from __future__ import annotations

import math
import os
from typing import Any, Mapping

from ._extras import require
from ._naming import merge_layers
from .layers import Conv, Gemm, Workload, WorkloadError

__all__ = ["read_onnx", "BATCH_DIM_NAMES", "SEQ_DIM_NAMES"]

#: Dynamic dimension names ``batch=`` sets (compared case-insensitively).
BATCH_DIM_NAMES = ("batch", "batch_size", "batchsize", "bs", "n", "b", "batch_dim", "num_images")
#: Dynamic dimension names ``seq_len=`` sets (compared case-insensitively).
SEQ_DIM_NAMES = ("seq_len", "seq_length", "seqlen", "sequence", "sequence_length", "seq", "s", "t",
                 "num_tokens", "tokens", "length")
_PASS = {"Cast", "Identity", "Dropout", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Expand",
         "Where", "Mul", "Div", "Add", "Sub", "Slice", "Gather", "Concat"}


def read_onnx(path: str | os.PathLike, *, batch: int | None = None, seq_len: int | None = None,
              dims: Mapping[str, int] | None = None, a_bits: int = 16, w_bits: int = 16) -> Workload:
    """Read the GEMM, convolution and attention nodes of an ONNX file into a :class:`Workload`.

    ``dims`` fixes dynamic dimensions by name; ``batch`` / ``seq_len`` fix the ones with the
    usual names (:data:`BATCH_DIM_NAMES`, :data:`SEQ_DIM_NAMES`).  Giving one the graph has no
    use for, leaving one unresolved, or a file ONNX cannot load is a one-line
    :class:`WorkloadError` naming the file, the dimension or the error.
    """
    onnx = require("onnx", "reading ONNX graphs")
    path = os.fspath(path)
    where = f"ONNX graph {path!r}"
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # noqa: BLE001 -- protobuf raises several types for a bad file
        raise WorkloadError(f"{where} cannot be loaded: {type(e).__name__}: {_line(e)}") from None
    graph = model.graph
    consts = {i.name for i in graph.initializer}
    _strip_weights(graph)
    free = _dynamic_dims(graph, consts)
    fixed = _resolve(where, free, batch, seq_len, dict(dims or {}))
    for vi in (*graph.input, *graph.output, *graph.value_info):
        _fix_type(vi.type, fixed)
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception as e:  # noqa: BLE001
        raise WorkloadError(f"{where}: shape inference failed: {type(e).__name__}: {_line(e)}") from None
    g = model.graph
    shapes = {i.name: tuple(int(d) for d in i.dims) for i in g.initializer}
    for vi in (*g.input, *g.output, *g.value_info):
        if vi.name not in shapes and vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                                    for d in vi.type.tensor_type.shape.dim)
    reader = _Reader(where, g, shapes, consts, a_bits, w_bits)
    items = []
    for i, node in enumerate(g.node):
        items += reader.node(i, node)
    if not items:
        raise WorkloadError(f"{where} has no MatMul, Gemm, Conv or Attention node; there is nothing to price")
    layers = merge_layers(items)
    params = {k: v for k, v in (("batch", batch), ("seq_len", seq_len)) if v is not None}
    name = os.path.splitext(os.path.basename(path))[0]
    return Workload(name, tuple(layers), "inference", {"dims": fixed, "opset": _opset(model)}, params=params)


def _line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0]


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _strip_weights(graph, keep: int = 4096) -> None:
    """Replace large initializers by graph inputs of the same shape: shape inference then copies
    kilobytes instead of the weights (small ones stay: Reshape targets and the like are data)."""
    from onnx import helper

    names = {i.name for i in graph.input}
    small = []
    for t in graph.initializer:
        if math.prod(t.dims) <= keep:
            small.append(t)
        elif t.name not in names:
            graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    del graph.initializer[:]
    graph.initializer.extend(small)


def _dynamic_dims(graph, consts: set[str]) -> dict[str, str]:
    """Symbolic dimension name -> the graph input it first appears in."""
    out: dict[str, str] = {}
    for vi in graph.input:
        if vi.name in consts or not vi.type.HasField("tensor_type"):
            continue
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value") and d.dim_param:
                out.setdefault(d.dim_param, vi.name)
    return out


def _resolve(where: str, free: dict[str, str], batch, seq_len, dims: dict[str, int]) -> dict[str, int]:
    for k, v in dims.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise WorkloadError(f"{where}: dim.{k}={v!r} must be a positive integer")
        if k not in free:
            raise WorkloadError(f"{where} has no dynamic dimension {k!r}; its dynamic dimensions: "
                                f"{', '.join(free) or 'none (all shapes are fixed)'}")
    fixed = dict(dims)
    for opt, val, names in (("batch", batch, BATCH_DIM_NAMES), ("seq_len", seq_len, SEQ_DIM_NAMES)):
        if val is None:
            continue
        hits = [d for d in free if d.lower() in names]
        if not hits:
            raise WorkloadError(f"{where}: {opt}={val} given, but no dynamic dimension is named like one "
                                f"({', '.join(names[:4])}, ...); its dynamic dimensions: "
                                f"{', '.join(free) or 'none (all shapes are fixed)'}; set one with dim.NAME=V")
        for d in hits:
            if fixed.setdefault(d, val) != val:
                raise WorkloadError(f"{where}: dim.{d}={fixed[d]} and {opt}={val} disagree")
    missing = [d for d in free if d not in fixed]
    if missing:
        d = missing[0]
        hint = " (or batch=N, --batch N on the CLI)" if d.lower() in BATCH_DIM_NAMES else \
            " (or seq_len=N, --seq-len N on the CLI)" if d.lower() in SEQ_DIM_NAMES else ""
        more = f"; also unresolved: {', '.join(missing[1:])}" if len(missing) > 1 else ""
        raise WorkloadError(f"{where}: dynamic dimension {d!r} of input {free[d]!r} is not set; set it with "
                            f"'?dim.{d}=N' in the workload text or dims={{'{d}': N}}{hint}{more}")
    return fixed


def _fix_type(tp, fixed: Mapping[str, int]) -> None:
    if tp.HasField("tensor_type") and tp.tensor_type.HasField("shape"):
        for d in tp.tensor_type.shape.dim:
            if not d.HasField("dim_value") and d.dim_param in fixed:
                d.dim_value = fixed[d.dim_param]


class _Reader:
    """Turns one node at a time into ``(name, layer, count)`` items."""

    def __init__(self, where: str, graph, shapes: dict, consts: set[str], a_bits: int, w_bits: int):
        self.where, self.shapes, self.a_bits, self.w_bits = where, shapes, a_bits, w_bits
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consts = set(consts)
        for n in graph.node:                      # constants folded forward: weights behind casts etc.
            if n.op_type == "Constant" or (n.input and all(i in self.consts for i in n.input if i)):
                self.consts.update(n.output)

    def shape(self, node, i: int, what: str) -> tuple[int, ...]:
        name = node.input[i]
        s = self.shapes.get(name)
        label = node.name or node.op_type
        if s is None:
            raise WorkloadError(f"{self.where}: the shape of {what} {name!r} of node {label!r} is unknown after "
                                f"shape inference")
        bad = [d for d in s if not isinstance(d, int) or d < 1]
        if bad:
            d = bad[0]
            if isinstance(d, str):
                raise WorkloadError(f"{self.where}: dimension {d!r} of {name!r} (node {label!r}) is dynamic; set it "
                                    f"with '?dim.{d}=N' in the workload text or dims={{'{d}': N}}")
            raise WorkloadError(f"{self.where}: {what} {name!r} of node {label!r} has a dimension of unknown size "
                                f"{tuple(s)}; fix the graph inputs' shapes")
        return tuple(s)

    def _softmax_fed(self, name: str) -> bool:
        for _ in range(8):
            n = self.producer.get(name)
            if n is None:
                return False
            if n.op_type == "Softmax":
                return True
            if n.op_type not in _PASS or not n.input:
                return False
            name = n.input[0]
        return False

    def _kind(self, node, ia: int, ib: int) -> str:
        a, b = node.input[ia], node.input[ib]
        if a in self.consts or b in self.consts:
            return "linear"
        return "attn_v" if self._softmax_fed(a) else "attn_qk"

    def _name(self, node) -> str:
        return node.name or f"{node.op_type}_{self.index}"    # unnamed nodes: by position in the graph

    def _g(self, node, m, k, n, count, kind, tag=""):
        wb = self.a_bits if kind in ("attn_qk", "attn_v") else self.w_bits
        return (self._name(node) + tag, Gemm("", m, k, n, 1, self.a_bits, wb, kind), count)

    def node(self, i: int, node) -> list:
        self.index = i
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            return []
        if op in ("MatMul", "MatMulInteger"):
            return [self._matmul(node, 0, 1)]
        if op == "QLinearMatMul":
            return [self._matmul(node, 0, 3)]
        if op == "Gemm":
            a, b = self.shape(node, 0, "input A"), self.shape(node, 1, "input B")
            at = _attr(node, "transA", 0)
            bt = _attr(node, "transB", 0)
            m, k = (a[1], a[0]) if at else (a[0], a[1])
            n = b[0] if bt else b[1]
            return [self._g(node, m, k, n, 1, self._kind(node, 0, 1))]
        if op in ("Conv", "ConvInteger", "QLinearConv"):
            return [self._conv(node, *((0, 3) if op == "QLinearConv" else (0, 1)))]
        if op == "ConvTranspose":
            x, w = self.shape(node, 0, "input X"), self.shape(node, 1, "weight W")
            g = _attr(node, "group", 1)
            return [self._g(node, x[0] * math.prod(x[2:]), x[1] // g, w[1] * math.prod(w[2:]), g, "conv")]
        if op == "Einsum":
            return [self._einsum(node)]
        if op == "Attention":
            return self._attention(node)
        return []

    def _matmul(self, node, ia: int, ib: int):
        a, b = self.shape(node, ia, "input A"), self.shape(node, ib, "input B")
        a2, b2 = ((1, *a) if len(a) == 1 else a), ((*b, 1) if len(b) == 1 else b)
        if len(b2) == 2:      # x @ W: every row of every batch goes through one GEMM
            return self._g(node, math.prod(a2[:-1]), a2[-1], b2[-1], 1, self._kind(node, ia, ib))
        batch = _broadcast(a2[:-2], b2[:-2])
        return self._g(node, a2[-2], a2[-1], b2[-1], math.prod(batch), self._kind(node, ia, ib))

    def _conv(self, node, ix: int, iw: int):
        x, w = self.shape(node, ix, "input X"), self.shape(node, iw, "weight W")
        y = self.shape_out(node)
        g = _attr(node, "group", 1)
        nd = len(x) - 2
        if nd not in (1, 2):
            return self._g(node, x[0] * math.prod(y[2:]), (x[1] // g) * math.prod(w[2:]), w[0] // g, g, "conv")
        k = list(w[2:])
        s = list(_attr(node, "strides", [1] * nd))
        d = list(_attr(node, "dilations", [1] * nd))
        pads = _pads(node, list(x[2:]), list(y[2:]), k, s, d)
        hw = [x[2 + j] + pads[j] + pads[j + nd] for j in range(nd)]
        out = list(y[2:])
        if nd == 1:
            hw, k, s, out = [1, *hw], [1, *k], [1, *s], [1, *out]
        c = Conv("", hw[0], hw[1], k[0], k[1], x[1], w[0], s[0], s[1], out[0], out[1], g, x[0], 1,
                 self.a_bits, self.w_bits)
        return (self._name(node), c, 1)

    def shape_out(self, node) -> tuple[int, ...]:
        s = self.shapes.get(node.output[0])
        if s is None or not all(isinstance(v, int) and v > 0 for v in s):
            raise WorkloadError(f"{self.where}: the output shape of node {node.name or node.op_type!r} is unknown "
                                f"after shape inference ({s})")
        return tuple(s)

    def _einsum(self, node):
        eq = _attr(node, "equation", "")
        eq = eq.decode() if isinstance(eq, bytes) else eq
        ins, _, out = eq.replace(" ", "").partition("->")
        terms = ins.split(",")
        if len(node.input) != 2 or len(terms) != 2 or not out or "." in eq:
            raise WorkloadError(f"{self.where}: Einsum {node.name!r} with equation {eq!r} is not supported (two "
                                f"operands, an explicit output, no ellipsis)")
        a, b = self.shape(node, 0, "operand"), self.shape(node, 1, "operand")
        size = {**dict(zip(terms[0], a)), **dict(zip(terms[1], b))}
        ta, tb = set(terms[0]), set(terms[1])
        batch = [c for c in out if c in ta and c in tb]
        m = [c for c in out if c in ta and c not in tb]
        n = [c for c in out if c in tb and c not in ta]
        k = [c for c in ta & tb if c not in out]
        if set(terms[0]) - set(out) - set(k) or set(terms[1]) - set(out) - set(k):
            raise WorkloadError(f"{self.where}: Einsum {node.name!r} ({eq!r}) sums over an index of one operand "
                                f"only; not a matrix product")
        p = lambda cs: math.prod(size[c] for c in cs)  # noqa: E731
        return self._g(node, p(m), p(k), p(n), p(batch), self._kind(node, 0, 1))

    def _attention(self, node) -> list:
        q, k, v = (self.shape(node, i, w) for i, w in ((0, "Q"), (1, "K"), (2, "V")))
        if len(q) == 4:
            b, hq, lq, e = q
            lk, ev = k[2], v[3]
        else:
            hq = _attr(node, "q_num_heads", 0)
            hkv = _attr(node, "kv_num_heads", 0)
            if not hq or not hkv:
                raise WorkloadError(f"{self.where}: Attention {node.name!r} on 3-D inputs needs q_num_heads and "
                                    f"kv_num_heads")
            b, lq, e = q[0], q[1], q[2] // hq
            lk, ev = k[1], v[2] // hkv
        return [self._g(node, lq, e, lk, b * hq, "attn_qk", ".attn_qk"),
                self._g(node, lq, lk, ev, b * hq, "attn_v", ".attn_v")]


def _attr(node, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            from onnx import helper

            return helper.get_attribute_value(a)
    return default


def _pads(node, in_sp: list, out_sp: list, k: list, s: list, d: list) -> list[int]:
    """Begin and end padding per spatial axis (explicit ``pads`` or ``auto_pad``)."""
    nd = len(in_sp)
    auto = _attr(node, "auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        total = [max((out_sp[j] - 1) * s[j] + (k[j] - 1) * d[j] + 1 - in_sp[j], 0) for j in range(nd)]
        small = [t // 2 for t in total]
        big = [t - t // 2 for t in total]
        return small + big if auto == "SAME_UPPER" else big + small
    if auto == "VALID":
        return [0] * (2 * nd)
    return list(_attr(node, "pads", [0] * (2 * nd)))


def _broadcast(a: tuple, b: tuple) -> tuple:
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    return tuple(max(x, y) for x, y in zip(a, b))

