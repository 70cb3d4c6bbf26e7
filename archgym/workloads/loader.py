"""One front door for workloads: a zoo name, a file, or a query string -> :class:`Workload`.

``load_workload(source, *, phase=None, batch=1, seq_len=None, context_len=None,
gen_tokens=None)`` accepts:

* a zoo name (``"llama-2-7b/prefill"``, ``"opt-1.3b"``, ``"m3vit-vit-s/pascal"``;
  :func:`archgym.workloads.workload_names` lists them);
* a SCALE-Sim topology CSV (conv or GEMM format, ``*.csv``);
* a Hugging Face ``config.json`` of a decoder LLM (or a folder holding one);
* an ONNX graph (``*.onnx``);
* any of these with parameters in a query: ``"llama-2-7b/prefill?batch=8&seq_len=2048"``,
  ``"net.onnx?batch=4"``, ``"config.json?phase=decode&context_len=4096"``.

A traced torch module enters through :func:`archgym.workloads.from_torch`.

Parameters (each optional; a parameter the source has no use for is an error):
``phase`` (decoders: ``prefill``, ``decode``, ``generative``; M3ViT: a dataset),
``batch`` (sequences or images), ``seq_len`` (prefill tokens), ``context_len``
(decode: KV-cache length, priced in attention), ``gen_tokens`` (decode steps of
the ``generative`` phase), ``task`` (M3ViT: which task's router), ``dims`` (ONNX: ``{"dim_name": size}`` for dynamic
dimensions).  Unset lengths take the family's defaults (see
:func:`archgym.workloads.decoder_workload`); a simulator may set its own defaults
first (:attr:`archgym.simulator.Simulator.workload_defaults`).

Files are read once per content: results are cached by (path, SHA-256 of the
bytes, parameters), and ``Workload.source`` records the hash
(``"topo.csv?sha256=1a2b3c4d5e6f7a8b"``), so the run log says exactly what was priced.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from typing import Any, Mapping
from urllib.parse import parse_qsl, quote

from .layers import Workload, WorkloadError
from .zoo import MODELS, family_params, get_model, model_workload, workload_names

__all__ = ["load_workload", "parse_workload", "format_workload", "WORKLOAD_PARAMS", "file_digest"]

#: Parameters a workload text may carry (``?key=value&...``) or a caller may pass.
WORKLOAD_PARAMS = ("phase", "batch", "seq_len", "context_len", "gen_tokens", "task")
_INT_PARAMS = ("batch", "seq_len", "context_len", "gen_tokens")
_FILE_KINDS = {".csv": "SCALE-Sim topology", ".json": "Hugging Face config.json", ".onnx": "ONNX graph"}
_CACHE: OrderedDict[tuple, Workload] = OrderedDict()
_CACHE_SIZE = 256


def parse_workload(text: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name?key=value&..."`` into the source and its parameters (ints converted;
    ``dim.NAME=V`` entries go into ``params["dims"]``).  Unknown keys are errors."""
    if not isinstance(text, str) or not text.strip():
        raise WorkloadError(f"workload {text!r} is empty; give a zoo name (e.g. llama-2-7b/prefill) or a file")
    src, sep, query = text.strip().partition("?")
    params: dict[str, Any] = {}
    if sep:
        for k, v in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
            if k.startswith("dim."):
                params.setdefault("dims", {})[k[4:]] = _int(k, v)
            elif k == "sha256":
                params["sha256"] = v
            elif k in WORKLOAD_PARAMS:
                if k in params:
                    raise WorkloadError(f"workload {text!r}: parameter {k!r} is given twice")
                params[k] = _int(k, v) if k in _INT_PARAMS else v
            else:
                raise WorkloadError(f"workload {text!r}: unknown parameter {k!r}; allowed: "
                                    f"{', '.join(WORKLOAD_PARAMS)}, dim.NAME (ONNX dynamic dimensions)")
    if not src:
        raise WorkloadError(f"workload {text!r} has no name or file before '?'")
    return src, params


def _int(key: str, v: Any) -> int:
    if isinstance(v, bool):
        raise WorkloadError(f"{key}={v!r}: must be a positive integer")
    try:
        i = int(v)
    except (TypeError, ValueError):
        raise WorkloadError(f"{key}={v!r}: must be a positive integer") from None
    if isinstance(v, float) and v != i:
        raise WorkloadError(f"{key}={v!r}: must be a positive integer")
    if not 1 <= i <= 1 << 24:
        raise WorkloadError(f"{key}={v!r}: must be an integer in [1, {1 << 24}]")
    return i


def format_workload(source: str, params: Mapping[str, Any]) -> str:
    """The canonical text of a source plus parameters (inverse of :func:`parse_workload`):
    parameters in :data:`WORKLOAD_PARAMS` order, then ``dim.*`` sorted, then ``sha256``."""
    parts = [f"{k}={params[k]}" for k in WORKLOAD_PARAMS if params.get(k) is not None]
    parts += [f"dim.{k}={v}" for k, v in sorted((params.get("dims") or {}).items())]
    if params.get("sha256"):
        parts.append(f"sha256={params['sha256']}")
    return source + ("?" + "&".join(quote(p, safe="=.-_/") for p in parts) if parts else "")


_DIGESTS: dict[tuple, str] = {}


def file_digest(path: str) -> str:
    """First 16 hex digits of the SHA-256 of a file's bytes (remembered per path, size and
    modification time, so a large file is not re-read on every call)."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    hit = _DIGESTS.get(key)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if len(_DIGESTS) > 1024:
        _DIGESTS.clear()
    _DIGESTS[key] = h.hexdigest()[:16]
    return _DIGESTS[key]


def _is_zoo(src: str) -> bool:
    return src.partition("/")[0] in MODELS


def load_workload(source: str | Workload, *, phase: str | None = None, batch: int | None = 1,
                  seq_len: int | None = None, context_len: int | None = None, gen_tokens: int | None = None,
                  dims: Mapping[str, int] | None = None, defaults: Mapping[str, Any] | None = None) -> Workload:
    """Load a workload from a zoo name, a file or a query string (see the module docstring).

    Keyword parameters override the same parameter in a query string only when they
    agree; a conflict is a :class:`WorkloadError`, as is an unknown name, a missing or
    malformed file (the message names the file, the row or field and the value), or a
    parameter the source has no use for.  ``defaults`` (e.g. a simulator's
    ``{"seq_len": 2048}``) fill parameters that were not given, where the source has them.
    A :class:`Workload` passes through unchanged.
    """
    if isinstance(source, Workload):
        return source
    src, q = parse_workload(source)
    given = dict(phase=phase, batch=None if batch == 1 else batch, seq_len=seq_len, context_len=context_len,
                 gen_tokens=gen_tokens, dims=dict(dims) if dims else None)
    for k, v in given.items():
        if v is None:
            continue
        if k in q and q[k] != v:
            raise WorkloadError(f"workload {source!r}: {k}={q[k]!r} in the text but {k}={v!r} given")
        q[k] = v
    want_digest = q.pop("sha256", None)
    filled = {k: v for k, v in (defaults or {}).items() if q.get(k) is None and k in _accepted(src)}
    if _is_zoo(src):
        if want_digest:
            raise WorkloadError(f"workload {source!r}: sha256 applies to files, not to zoo names")
        return _zoo(src, q, filled)
    path = os.path.expanduser(src)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json")):
        path = os.path.join(path, "config.json")
    if not os.path.isfile(path):
        examples = ", ".join(workload_names()[:3])
        raise WorkloadError(
            f"workload {src!r} is neither a zoo name (e.g. {examples}; `archgym describe ENV` lists an env's) "
            f"nor an existing file ({', '.join(f'{e} {k}' for e, k in _FILE_KINDS.items())})")
    ext = os.path.splitext(path)[1].lower()
    if ext not in _FILE_KINDS:
        raise WorkloadError(f"workload file {src!r}: unknown type {ext or '(no extension)'!r}; allowed: "
                            + ", ".join(f"{e} ({k})" for e, k in _FILE_KINDS.items()))
    try:
        digest = file_digest(path)
    except OSError as e:
        raise WorkloadError(f"workload file {src!r} cannot be read: {e.strerror or e}") from None
    if want_digest and want_digest != digest[:len(want_digest)]:
        raise WorkloadError(f"workload file {src!r} has changed: its sha256 starts {digest}, the text asks for "
                            f"{want_digest}")
    canonical = format_workload(src, {**q, "sha256": digest})
    if ext == ".json":  # which defaults apply depends on the model family the file declares
        filled = {k: v for k, v in (defaults or {}).items()
                  if q.get(k) is None and k in family_params(_hf_config(path).family)}
    q = {**filled, **q}
    key = (os.path.abspath(path), digest, tuple(sorted((k, str(v)) for k, v in q.items())))
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    w = _read_file(path, ext, src, q, canonical)
    _CACHE[key] = w
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return w


def _accepted(src: str) -> tuple[str, ...]:
    """Parameters a source can take (for applying defaults softly)."""
    if _is_zoo(src):
        return family_params(get_model(src.partition("/")[0]).family)
    ext = os.path.splitext(src)[1].lower()
    return ()  # SCALE-Sim and ONNX files: a simulator's default lengths never apply to a layer list


def _zoo(src: str, given: dict[str, Any], filled: dict[str, Any]) -> Workload:
    model, _, rest = src.partition("/")
    q = {**filled, **given}
    phase = q.pop("phase", None)
    if rest and phase and rest != phase:
        raise WorkloadError(f"workload {src!r} names phase {rest!r} but phase={phase!r} is given")
    if q.get("dims"):
        raise WorkloadError(f"workload {src!r}: dim.* parameters apply to ONNX graphs only")
    q.pop("dims", None)
    w = model_workload(get_model(model), rest or phase, **q)
    # the canonical text names what was asked for; the resolved lengths are in w.params
    return _with_source(w, format_workload(w.name, {k: v for k, v in given.items() if k != "phase"}))


def _with_source(w: Workload, source: str) -> Workload:
    import dataclasses

    return dataclasses.replace(w, source=source)


def _read_file(path: str, ext: str, src: str, q: dict[str, Any], canonical: str) -> Workload:
    """Dispatch a file to its reader (imported lazily: torch/onnx are optional)."""
    if ext == ".csv":
        from .scalesim_topology import read_topology

        _only(src, q, ("batch",))
        w = read_topology(path, batch=q.get("batch", 1))
    elif ext == ".json":
        cfg = _hf_config(path)
        w = model_workload(cfg, q.pop("phase", None), **{k: v for k, v in q.items() if k != "dims"})
        if q.get("dims"):
            raise WorkloadError(f"workload {src!r}: dim.* parameters apply to ONNX graphs only")
    else:
        from .onnx_graph import read_onnx

        _only(src, q, ("batch", "seq_len", "dims"))
        w = read_onnx(path, batch=q.get("batch"), seq_len=q.get("seq_len"), dims=q.get("dims") or {})
    return _with_source(w, canonical)


def _hf_config(path: str):
    from .hf_config import config_from_hf

    return config_from_hf(path)


def _only(src: str, q: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    bad = [k for k in q if k not in allowed]
    if bad:
        raise WorkloadError(f"workload {src!r}: parameter {bad[0]!r} does not apply to this file type; "
                            f"allowed: {', '.join(allowed)}")
