"""Trace a torch module into a :class:`Workload` by running it once on example inputs.

Every ATen operator the forward pass dispatches is seen by a ``TorchDispatchMode``,
so whatever the Python code calls (``nn.Linear``, ``F.linear``, ``torch.matmul``,
``@``, ``einsum``, ``bmm``, ``F.scaled_dot_product_attention``, ``nn.Conv2d``,
``nn.MultiheadAttention``'s fused fast path, grouped expert GEMMs) reaches the
recorder as the kernel that actually runs.  Forward hooks name each operator by
the module that called it (``model.layers.3.self_attn.q_proj``).

Recorded layers:

* matrix products (``mm``, ``addmm``, ``bmm``, ``baddbmm``, ``mv``, ``_int_mm``,
  ``_grouped_mm``) become :class:`Gemm` layers: ``kind="linear"`` when one operand
  is a parameter or buffer of the module, ``"lm_head"`` for a module named
  ``lm_head`` or a weight shared with an ``nn.Embedding`` (tied embeddings), and for
  activation x activation products ``"attn_v"`` when the first operand comes from a
  softmax, else ``"attn_qk"``;
* fused attention kernels become an ``attn_qk`` and an ``attn_v`` GEMM per head;
* 2-D (and 1-D) convolutions become :class:`Conv` layers with the padded input size
  and the output size torch computed (a dilated convolution keeps its real taps, so its
  MACs are right); 3-D and transposed convolutions become their im2col GEMM
  (``kind="conv"``);
* a mixture-of-experts block (a module with an ``experts`` child and a ``gate`` or
  ``router`` child, as in transformers' Mixtral, Qwen-MoE and similar) becomes one
  :class:`MoE` layer whose ``expert_tokens`` are the tokens each expert received in
  this forward pass (read from the router's top-k choice).  If the work its experts
  did is not a 2- or 3-matrix FFN per routed token, the block's GEMMs are kept as
  they ran (``kind="gate"`` and ``"expert"``) instead.

Layers are named by module path; a layer that repeats with the same shapes in every
block (``model.layers.0.mlp.down_proj`` ... ``model.layers.31.mlp.down_proj``) is one
layer ``model.layers.*.mlp.down_proj`` with a count.  Elementwise operators are not
recorded.  Biases are not MACs and are ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import weakref
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Any, Mapping

from ._extras import require
from ._naming import merge_layers
from .layers import Conv, Gemm, Layer, MoE, Workload, WorkloadError

__all__ = ["from_torch", "clear_trace_cache"]

_CACHE: OrderedDict[str, Workload] = OrderedDict()
_CACHE_SIZE = 64
_SOFTMAX = ("_softmax", "softmax", "_safe_softmax")


def clear_trace_cache() -> None:
    """Forget every traced workload (the next :func:`from_torch` call traces again)."""
    _CACHE.clear()


@dataclass
class _Rec:
    """One recorded operator: where it ran, its role and its layer (name and count filled later)."""

    frame: int
    path: str
    tag: str
    proto: Layer
    count: int


@dataclass
class _Frame:
    """One call of one module."""

    fid: int
    path: str
    moe: "_MoeAcc | None" = None


@dataclass
class _MoeAcc:
    """What happened inside one call of a mixture-of-experts block."""

    path: str
    router: str
    experts: str
    top_k: int | None
    n_experts: int | None
    gate: tuple[int, int, int] | None = None       # (tokens, d_model, n_experts) of the router GEMM
    picks: Any = None                               # top-k expert indices chosen by the router
    ops: list = dataclasses.field(default_factory=list)   # expert GEMMs: (m, k, n, count, rows per group)


def _moe_spec(mod) -> tuple[str, str, int | None, int | None] | None:
    """``(router child, experts child, top_k, n_experts)`` of a mixture-of-experts block, else None."""
    import torch.nn as nn

    experts = getattr(mod, "experts", None)
    if not isinstance(experts, nn.Module):
        return None
    rname = next((n for n in ("gate", "router") if isinstance(getattr(mod, n, None), nn.Module)), None)
    if rname is None:
        return None
    router = getattr(mod, rname)
    top_k = next((v for o in (mod, router) for a in ("top_k", "num_experts_per_tok")
                  if isinstance(v := getattr(o, a, None), int)), None)
    n_exp = next((v for o in (mod, experts, router) for a in ("num_experts", "num_local_experts", "n_routed_experts")
                  if isinstance(v := getattr(o, a, None), int)), None)
    if n_exp is None and isinstance(experts, nn.ModuleList):
        n_exp = len(experts)
    return rname, "experts", top_k, n_exp


def _storage(t) -> int | None:
    """Address of a tensor's storage (views of a weight share it); None if it has none."""
    try:
        return t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError, AttributeError):
        return None


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".")


def _prod(xs) -> int:
    out = 1
    for x in xs:
        out *= int(x)
    return out


class _Recorder:
    """Forward hooks + a dispatch mode; collects :class:`_Rec` records."""

    def __init__(self, torch, module, a_bits: int, w_bits: int):
        self.torch, self.a_bits, self.w_bits = torch, a_bits, w_bits
        self.names = {id(m): n for n, m in module.named_modules()}
        self.moe_specs = {id(m): s for m in module.modules() if (s := _moe_spec(m)) is not None}
        self.params = {_storage(t) for t in itertools.chain(module.parameters(), module.buffers())} - {None}
        self.embeds = {_storage(m.weight) for m in module.modules() if isinstance(m, torch.nn.Embedding)} - {None}
        self.stack: list[_Frame] = []
        self.recs: list[_Rec] = []
        # tensors computed from a softmax, by id (a WeakSet would compare tensors with ==)
        self.soft: dict[int, weakref.ref] = {}
        self.fids = itertools.count()
        aten = torch.ops.aten
        self.handlers = {
            aten.mm: self._mm, aten.addmm: self._addmm, aten._int_mm: self._mm, aten.bmm: self._bmm,
            aten.baddbmm: self._baddbmm, aten.mv: self._mv, aten.addmv: self._addmv,
            aten.convolution: self._conv, aten._grouped_mm: self._grouped_mm, aten.linear: self._linear,
            aten._native_multi_head_attention: self._native_mha, aten.topk: self._topk,
            aten._transformer_encoder_layer_fwd: self._encoder_layer,
        }

    # -- module frames -------------------------------------------------------------------------

    def pre_hook(self, mod, args):
        path = self.names.get(id(mod), "?")
        spec = self.moe_specs.get(id(mod))
        moe = None
        if spec is not None and not any(f.moe for f in self.stack):
            r, e, k, n = spec
            moe = _MoeAcc(path, f"{path}.{r}" if path else r, f"{path}.{e}" if path else e, k, n)
        self.stack.append(_Frame(next(self.fids), path, moe))

    def post_hook(self, mod, args, out):
        if not self.stack:
            return
        frame = self.stack.pop()
        if frame.moe is not None:
            self._finish_moe(frame)

    @property
    def frame(self) -> _Frame:
        return self.stack[-1] if self.stack else _Frame(-1, "")

    def _moe(self) -> _MoeAcc | None:
        return next((f.moe for f in self.stack if f.moe is not None), None)

    # -- recording -----------------------------------------------------------------------------

    def _is_param(self, t) -> bool:
        return _storage(t) in self.params

    def _gemm_kind(self, a, b) -> str:
        if self._is_param(b) or self._is_param(a):
            tied = _storage(b) in self.embeds
            return "lm_head" if tied or self.frame.path.rsplit(".", 1)[-1] == "lm_head" else "linear"
        return "attn_v" if self._soft(a) else "attn_qk"

    def _soft(self, t) -> bool:
        r = self.soft.get(id(t))
        return r is not None and r() is t

    def _gemm(self, m: int, k: int, n: int, count: int, kind: str, tag: str | None = None, rows=None) -> None:
        moe = self._moe()
        path = self.frame.path
        if moe is not None and (_under(path, moe.router) or _under(path, moe.experts)):
            if _under(path, moe.router) and moe.gate is None:
                moe.gate = (m, k, n)
            else:
                moe.ops.append((m, k, n, count, rows))
            return
        wb = self.w_bits if kind in ("linear", "lm_head", "gate", "expert", "conv") else self.a_bits
        g = Gemm("", m, k, n, 1, self.a_bits, wb, kind)
        self.recs.append(_Rec(self.frame.fid, path, tag or kind, g, count))

    def _mm(self, args, out):
        a, b = args[0], args[1]
        self._gemm(a.shape[0], a.shape[1], b.shape[1], 1, self._gemm_kind(a, b))

    def _addmm(self, args, out):
        self._mm(args[1:], out)

    def _linear(self, args, out):
        x, w = args[0], args[1]
        self._gemm(_prod(x.shape[:-1]), x.shape[-1], w.shape[0], 1, self._gemm_kind(x, w))

    def _bmm(self, args, out):
        a, b = args[0], args[1]
        self._gemm(a.shape[1], a.shape[2], b.shape[2], a.shape[0], self._gemm_kind(a, b))

    def _baddbmm(self, args, out):
        self._bmm(args[1:], out)

    def _mv(self, args, out):
        a, v = args[0], args[1]
        self._gemm(a.shape[0], a.shape[1], 1, 1, self._gemm_kind(a, v))

    def _addmv(self, args, out):
        self._mv(args[1:], out)

    def _grouped_mm(self, args, out):
        a, b = args[0], args[1]
        offs = args[2] if len(args) > 2 else None
        if a.dim() == 2 and b.dim() == 3 and offs is not None:
            # rows of group g: offs[g-1]..offs[g] (rows past offs[-1] are padding)
            o = [0] + [int(x) for x in offs.tolist()]
            rows = [o[i + 1] - o[i] for i in range(len(o) - 1)]
            moe = self._moe()
            if moe is not None and _under(self.frame.path, moe.experts):
                moe.ops.append((None, a.shape[1], b.shape[2], 1, rows))
                return
            for r, c in sorted(((r, rows.count(r)) for r in set(rows) if r), reverse=True):
                self._gemm(r, a.shape[1], b.shape[2], c, self._gemm_kind(a, b), tag=f"grouped_mm[m={r}]")
        elif a.dim() == 3 and b.dim() == 3:
            self._gemm(a.shape[1], a.shape[2], b.shape[2], a.shape[0], self._gemm_kind(a, b))
        else:
            raise WorkloadError(f"from_torch: _grouped_mm with operand shapes {tuple(a.shape)} and {tuple(b.shape)} "
                                f"(at {self.frame.path or 'the top module'}) is not supported")

    def _conv(self, args, out):
        x, w = args[0], args[1]
        stride, pad, dil, transposed, groups = args[3], args[4], args[5], args[6], args[8]
        n, cin, cout = x.shape[0], x.shape[1], w.shape[0]
        if x.dim() in (3, 4) and not transposed:
            # 1-D convolutions are 2-D ones with a height of 1
            hw, f, s, p = (x.shape[2:], w.shape[2:], list(stride), list(pad))
            if x.dim() == 3:
                hw, f, s, p = (1, *hw), (1, *f), [1, *s], [0, *p]
            oh, ow = (1, out.shape[2]) if x.dim() == 3 else (out.shape[2], out.shape[3])
            c = Conv("", hw[0] + 2 * p[0], hw[1] + 2 * p[1], f[0], f[1], cin, cout, s[0], s[1], oh, ow,
                     groups, n, 1, self.a_bits, self.w_bits)
            if self._moe() is not None and _under(self.frame.path, self._moe().experts):
                g = c.as_gemm()
                self._gemm(g.m, g.k, g.n, g.count, "conv")
                return
            self.recs.append(_Rec(self.frame.fid, self.frame.path, "conv", c, 1))
            return
        taps = _prod(w.shape[2:])
        if transposed:
            # every input pixel scatters cin/groups x cout/groups x taps products
            self._gemm(n * _prod(x.shape[2:]), cin // groups, (w.shape[1]) * taps, groups, "conv")
        else:
            self._gemm(n * _prod(out.shape[2:]), (cin // groups) * taps, cout // groups, groups, "conv")

    def _sdpa(self, q, k, v) -> None:
        heads = _prod(q.shape[:-2])
        self._gemm(q.shape[-2], q.shape[-1], k.shape[-2], heads, "attn_qk")
        self._gemm(q.shape[-2], k.shape[-2], v.shape[-1], heads, "attn_v")

    def _native_mha(self, args, out):
        q, k, v, e, h, _qkv_w = args[:6]
        batched = q.dim() == 3
        b, lq = (q.shape[0], q.shape[1]) if batched else (1, q.shape[0])
        lk = k.shape[1] if batched else k.shape[0]
        if q is k and k is v:
            self._gemm(b * lq, e, 3 * e, 1, "linear", tag="qkv_proj")
        else:
            self._gemm(b * lq, e, e, 1, "linear", tag="q_proj")
            self._gemm(b * lk, e, 2 * e, 1, "linear", tag="kv_proj")
        self._gemm(lq, e // h, lk, b * h, "attn_qk")
        self._gemm(lq, lk, e // h, b * h, "attn_v")
        self._gemm(b * lq, e, e, 1, "linear", tag="out_proj")

    def _encoder_layer(self, args, out):
        src, e, h = args[0], args[1], args[2]
        if getattr(src, "is_nested", False):
            raise WorkloadError("from_torch: nn.TransformerEncoder's fast path on a padded (nested) batch is not "
                                "supported; trace with src_key_padding_mask=None or in training mode")
        b, l = (src.shape[0], src.shape[1]) if src.dim() == 3 else (1, src.shape[0])
        ffn = args[14].shape[0]
        self._gemm(b * l, e, 3 * e, 1, "linear", tag="qkv_proj")
        self._gemm(l, e // h, l, b * h, "attn_qk")
        self._gemm(l, l, e // h, b * h, "attn_v")
        self._gemm(b * l, e, e, 1, "linear", tag="out_proj")
        self._gemm(b * l, e, ffn, 1, "linear", tag="ffn1")
        self._gemm(b * l, ffn, e, 1, "linear", tag="ffn2")

    def _topk(self, args, out):
        moe = self._moe()
        if moe is None:
            return
        x, k = args[0], args[1]
        dim = args[2] if len(args) > 2 else -1
        n_exp = moe.n_experts or (moe.gate[2] if moe.gate else None)
        if x.shape[dim] == n_exp and (moe.top_k is None or k == moe.top_k):
            moe.picks = out[1].detach()     # the last such call is the final choice

    def dispatch(self, func, args, kwargs, out):
        packet = func.overloadpacket
        h = self.handlers.get(packet)
        try:
            if h is not None:
                h(args, out)
            elif packet.__name__.startswith("_scaled_dot_product") or packet.__name__ == "scaled_dot_product_attention":
                self._sdpa(args[0], args[1], args[2])
        except WorkloadError:
            raise
        except Exception as e:  # noqa: BLE001 -- a recorder failure must not read as the user's error
            raise WorkloadError(f"from_torch: cannot record {func} at {self.frame.path or 'the top module'}: "
                                f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}") from None
        tensors = [a for a in args if isinstance(a, self.torch.Tensor)]
        if not isinstance(out, self.torch.Tensor):
            return
        if packet.__name__ in _SOFTMAX or (tensors and self._soft(tensors[0]) and out.numel() == tensors[0].numel()):
            self.soft[id(out)] = weakref.ref(out)   # views, casts, dropout, masking of a softmax stay "softmax"

    # -- mixture of experts --------------------------------------------------------------------

    def _finish_moe(self, frame: _Frame) -> None:
        acc = frame.moe
        torch = self.torch
        if acc.gate is None:
            raise WorkloadError(f"from_torch: mixture-of-experts block {acc.path!r} ran no router GEMM in "
                                f"{acc.router!r}; cannot tell its experts' routing")
        tokens, d_model, n_exp = acc.gate
        top_k = acc.top_k or (acc.picks.shape[-1] if acc.picks is not None else None)
        per_expert = None
        if acc.picks is not None:
            per_expert = tuple(int(c) for c in torch.bincount(acc.picks.reshape(-1).to(torch.int64),
                                                              minlength=n_exp)[:n_exp].tolist())
        macs = rows_seen = 0
        d_hidden = None
        observed: list[int] = []
        for m, k, n, count, rows in acc.ops:
            mm = sum(rows) if rows is not None else m * count
            macs += mm * k * n
            if n == d_model and d_hidden is None:
                d_hidden = k
            if n == d_model:
                observed += [r for r in rows if r] if rows is not None else [m] * count
            rows_seen += mm
        ok = top_k is not None and per_expert is not None and d_hidden is not None and top_k <= n_exp
        if ok:
            unit = tokens * top_k * d_model * d_hidden
            mats = macs // unit if unit and macs % unit == 0 else 0
            ok = mats in (2, 3) and sum(per_expert) == tokens * top_k \
                and sorted(observed) == sorted(c for c in per_expert if c)
        if ok:
            moe = MoE("", tokens, d_model, d_hidden, n_exp, top_k, 1, self.a_bits, self.w_bits, glu=mats == 3,
                      expert_tokens=per_expert)
            self.recs.append(_Rec(frame.fid, acc.path, "moe", moe, 1))
            return
        # not a plain top-k FFN mixture: keep the GEMMs as they ran
        self.recs.append(_Rec(frame.fid, acc.path, "gate",
                              Gemm("", tokens, d_model, n_exp, 1, self.a_bits, self.w_bits, "gate"), 1))
        for m, k, n, count, rows in acc.ops:
            for r, c in ([(m, count)] if rows is None else sorted(((r, rows.count(r)) for r in set(rows) if r),
                                                                   reverse=True)):
                self.recs.append(_Rec(frame.fid, acc.path, "expert",
                                      Gemm("", r, k, n, 1, self.a_bits, self.w_bits, "expert"), c))


def _mode_class(torch):
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Mode(TorchDispatchMode):
        def __init__(self, rec: _Recorder):
            super().__init__()
            self.rec = rec

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            self.rec.dispatch(func, args, kwargs or {}, out)
            return out

    return _Mode


# -- naming and merging -------------------------------------------------------------------------

def _op_names(recs: list[_Rec]) -> list[str]:
    """A name per record: the module path when the call ran one linear/conv, else path.tag[.i]."""
    per_frame: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(recs):
        per_frame[r.frame].append(i)
    names = [""] * len(recs)
    for idx in per_frame.values():
        if len(idx) == 1 and recs[idx[0]].tag in ("linear", "lm_head", "conv", "moe"):
            r = recs[idx[0]]
            names[idx[0]] = r.path or r.tag
            continue
        seen: dict[str, int] = defaultdict(int)
        for i in idx:
            r = recs[i]
            base = f"{r.path}.{r.tag}" if r.path else r.tag
            names[i] = base if seen[base] == 0 else f"{base}.{seen[base]}"
            seen[base] += 1
    return names



# -- hashing ------------------------------------------------------------------------------------

def _describe(torch, x: Any, depth: int = 0) -> str:
    if isinstance(x, torch.Tensor):
        return f"T{tuple(x.shape)}:{x.dtype}"
    if depth > 4:
        return "..."
    if isinstance(x, (list, tuple)):
        return "(" + ",".join(_describe(torch, v, depth + 1) for v in x) + ")"
    if isinstance(x, Mapping):
        return "{" + ",".join(f"{k}:{_describe(torch, v, depth + 1)}" for k, v in sorted(x.items(), key=str)) + "}"
    if x is None or isinstance(x, (bool, int, float, str)):
        return repr(x)
    return f"{type(x).__qualname__}@{id(x)}"   # an opaque object: never equal to another call's


def _tensor_bytes(torch, t) -> bytes:
    t = t.detach()
    if t.device.type == "meta":
        return b"meta"
    return t.reshape(-1).contiguous().cpu().view(torch.uint8).numpy().tobytes()


def _digest(torch, module, args: tuple, kwargs: Mapping, values: bool) -> str:
    h = hashlib.sha256()
    for name, m in module.named_modules():
        h.update(f"{name}|{type(m).__module__}.{type(m).__qualname__}|{m.extra_repr()}\n".encode())
    for name, t in itertools.chain(module.named_parameters(), module.named_buffers()):
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}\n".encode())
    cfg = getattr(module, "config", None)
    if cfg is not None:
        h.update(repr(cfg).encode())
    h.update(_describe(torch, (args, dict(kwargs))).encode())
    if values:
        # routing depends on the weights and the input values, not only on the shapes
        for t in itertools.chain(module.parameters(), module.buffers()):
            h.update(_tensor_bytes(torch, t))
        for t in _tensors(torch, (args, dict(kwargs))):
            h.update(_tensor_bytes(torch, t))
    return h.hexdigest()


def _tensors(torch, x: Any):
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _tensors(torch, v)
    elif isinstance(x, Mapping):
        for v in x.values():
            yield from _tensors(torch, v)


# -- entry point ----------------------------------------------------------------------------------

def from_torch(module, *example_inputs, kwargs: Mapping[str, Any] | None = None, name: str | None = None,
               a_bits: int = 16, w_bits: int = 16) -> Workload:
    """Run ``module(*example_inputs, **kwargs)`` once and return its GEMM / convolution / MoE layers.

    The module runs in eval mode under ``torch.no_grad()`` (its training flags are restored
    afterwards; nothing else about it changes).  ``a_bits``/``w_bits`` are the operand widths
    written into every layer (activations x activations use ``a_bits`` for both).  ``name``
    names the workload (default: the module's class name).

    Traces are cached by a SHA-256 of the module's structure (every submodule's type and
    ``extra_repr``, every parameter's and buffer's name, shape and dtype, its ``config`` if
    it has one) and of the inputs' shapes and dtypes; a module with a mixture-of-experts
    block also hashes the weight and input values, because its routing depends on them.
    The same module and inputs return the same :class:`Workload` without running again.

    A forward pass that raises is a one-line :class:`WorkloadError` naming the module and the
    error; torch missing is one naming the ``models`` extra.  See the module docstring for
    what is recorded and how layers are named.
    """
    torch = require("torch", "archgym.workloads.from_torch")
    if not isinstance(module, torch.nn.Module):
        raise WorkloadError(f"from_torch: expected a torch.nn.Module, got {type(module).__name__}")
    kwargs = dict(kwargs or {})
    label = name or type(module).__name__
    has_moe = any(_moe_spec(m) is not None for m in module.modules())
    key = _digest(torch, module, example_inputs, kwargs, has_moe) + f"|{a_bits}|{w_bits}|{label}"
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    rec = _Recorder(torch, module, a_bits, w_bits)
    handles = []
    modes = [(m, m.training) for m in module.modules()]
    try:
        for m in module.modules():
            handles.append(m.register_forward_pre_hook(rec.pre_hook))
            handles.append(m.register_forward_hook(rec.post_hook, always_call=True))
        module.eval()
        with torch.no_grad(), _mode_class(torch)(rec):
            module(*example_inputs, **kwargs)
    except WorkloadError:
        raise
    except Exception as e:  # noqa: BLE001 -- any error of the user's forward becomes one line
        msg = (str(e).strip().splitlines() or [""])[0]
        raise WorkloadError(f"from_torch: {type(module).__name__}.forward raised {type(e).__name__}: {msg}") from None
    finally:
        for hd in handles:
            hd.remove()
        for m, t in modes:
            m.training = t
    if not rec.recs:
        raise WorkloadError(f"from_torch: {type(module).__name__} ran no matrix product, convolution or attention; "
                            f"there is nothing to price")
    layers = merge_layers(zip(_op_names(rec.recs), (r.proto for r in rec.recs), (r.count for r in rec.recs)))
    inputs = _describe(torch, (example_inputs, kwargs))
    w = Workload(label, tuple(layers), "inference", {"module": type(module).__name__, "inputs": inputs},
                 source=f"torch:{type(module).__name__}?sha256={key[:16]}")
    _CACHE[key] = w
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return w
