"""Validate a kernel against a bit-exact datapath: does it compute exactly what the hardware
computes, and where does it not?

``validate(kernel, "smmw-w4a8", cases=1000, seed=0)`` generates seeded inputs for the datapath
(random ones and its edge cases), runs the kernel and the datapath's bit-exact model
(``rtl_models``, through :mod:`archgym.datapaths`) on each, and compares with ``torch.equal``.
A kernel that raises, returns something other than a tensor, the wrong shape or dtype, or NaN
fails that case with a message; the tool itself never crashes on a kernel. For the first
failing cases the input is shrunk (fewer rows, columns and reduction steps, entries set to
zero) while the kernel keeps failing the same way. ``archgym validate`` is the command line.
torch is needed (kernels receive torch tensors); it is imported when a validation runs.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from .datapaths import Datapath, DatapathError, get_datapath

__all__ = ["validate", "ValidationReport", "CaseFailure", "Shrunk", "KernelImportError", "import_kernel"]

_SHRINK_EVALS = 400      # kernel calls one shrink may spend
_SHRINK_SECONDS = 10.0


class KernelImportError(ValueError):
    """``--kernel MODULE:FUNCTION`` could not be imported (one line saying why)."""


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is in the test environment
        raise ImportError("archgym.validate needs torch (kernels receive torch tensors): "
                          "pip install 'archgym[models]' (torch==2.13.0)") from e
    return torch


def import_kernel(spec: str) -> Callable:
    """Import ``"module:function"`` (``module`` may be dotted) and return the function.

    The module is looked up on ``sys.path`` and, failing that, in the current directory (as
    ``python -m`` would find it), without adding the directory to ``sys.path``. Raises
    :class:`KernelImportError` with one line naming the problem.
    """
    mod_name, sep, fn_name = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if not sep or not mod_name or not fn_name:
        raise KernelImportError(f"kernel {spec!r} must look like MODULE:FUNCTION, e.g. mykernels:w4a8_gemm")
    top = mod_name.split(".")[0]
    try:
        if top not in sys.modules and importlib.util.find_spec(top) is None:
            found = importlib.machinery.PathFinder.find_spec(top, [os.getcwd()])
            if found is None:
                raise KernelImportError(f"kernel {spec!r}: no module named {top!r} in the current directory "
                                        f"({os.getcwd()}) or on sys.path")
            module = importlib.util.module_from_spec(found)
            sys.modules[top] = module
            try:
                found.loader.exec_module(module)
            except BaseException:
                del sys.modules[top]
                raise
        module = importlib.import_module(mod_name)
    except KernelImportError:
        raise
    except Exception as e:  # noqa: BLE001 - any error inside the user's module is reported, not raised
        raise KernelImportError(f"kernel {spec!r}: importing {mod_name!r} raised {type(e).__name__}: "
                                f"{_first_line(e)}") from None
    fn = getattr(module, fn_name, None)
    if fn is None:
        raise KernelImportError(f"kernel {spec!r}: module {mod_name!r} has no attribute {fn_name!r}")
    if not callable(fn):
        raise KernelImportError(f"kernel {spec!r}: {fn_name!r} is a {type(fn).__name__}, not a function")
    return fn


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


@dataclass
class CaseFailure:
    """How one case failed.

    ``failure`` is ``"mismatch"`` (values differ), ``"error"`` (the kernel raised), ``"type"``,
    ``"shape"``, ``"dtype"`` or ``"nan"``. For a mismatch: ``index`` is the first differing index
    (row-major), ``got``/``expected`` the values there, ``abs_err`` and ``ulp_err`` the errors
    there (ulp of the expected value in the output dtype; 1 for integers), ``n_diff`` the number
    of differing outputs of ``n_out``, ``max_abs_err``/``max_ulp_err`` the largest over them.
    ``inputs`` are the case's inputs (numpy); ``shrunk`` the smallest failing input found.
    """

    case: int
    kind: str
    failure: str
    message: str
    inputs: dict = field(repr=False, default_factory=dict)
    index: tuple | None = None
    got: Any = None
    expected: Any = None
    abs_err: float | None = None
    ulp_err: float | None = None
    n_diff: int = 0
    n_out: int = 0
    max_abs_err: float | None = None
    max_ulp_err: float | None = None
    shrunk: "Shrunk | None" = None

    def describe(self) -> str:
        """One line: the failure and, for a mismatch, where and by how much."""
        if self.failure != "mismatch":
            return self.message
        return (f"{self.n_diff} of {self.n_out} outputs differ; first at {list(self.index)}: got {self.got!r}, "
                f"expected {self.expected!r} (abs err {_num(self.abs_err)}, {_num(self.ulp_err)} ulp); "
                f"max abs err {_num(self.max_abs_err)}, max {_num(self.max_ulp_err)} ulp")


@dataclass
class Shrunk:
    """The smallest failing input found from a failing case: ``inputs`` (numpy), its ``failure``,
    the number of accepted shrink ``steps`` and kernel ``evaluations`` spent."""

    inputs: dict
    failure: CaseFailure
    steps: int
    evaluations: int

    def describe(self, max_elems: int = 64) -> str:
        """Shapes and, for small arrays, the values of the shrunk input, plus its failure."""
        parts = []
        for name, arr in self.inputs.items():
            a = np.asarray(arr)
            head = f"{name} {a.dtype} {list(a.shape)}"
            parts.append(head + (f" = {a.tolist()}" if a.size <= max_elems else ""))
        return "; ".join(parts) + f" -> {self.failure.describe()}"


def _num(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return str(int(v))
    return f"{v:.3g}"


@dataclass
class ValidationReport:
    """Outcome of :func:`validate`: ``cases_run``, ``cases_equal`` (``torch.equal``),
    ``failures`` (one :class:`CaseFailure` per failing case), ``kinds`` (cases run per input
    kind), ``unreachable`` (edge-case kinds that could not be built under these options; those
    cases ran as random ones). ``ok`` is True when every case agrees; ``exit_code`` is the
    command line's (0 all equal, 1 any failure)."""

    datapath: str
    options: dict
    kernel: str
    seed: int
    cases_run: int = 0
    cases_equal: int = 0
    failures: list = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)
    unreachable: Counter = field(default_factory=Counter)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.cases_run > 0 and self.cases_equal == self.cases_run

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self, max_failures: int = 10) -> str:
        """The report as text (what ``archgym validate`` prints)."""
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        lines = [f"datapath {self.datapath} ({opts})", f"kernel {self.kernel}",
                 f"cases run: {self.cases_run} (seed {self.seed}, {self.elapsed_s:.1f} s); "
                 f"equal: {self.cases_equal}; failed: {len(self.failures)}",
                 "input kinds: " + ", ".join(f"{k} {n}" for k, n in self.kinds.items())]
        if self.unreachable:
            lines.append("not reachable under these options (ran as random inputs): " + ", ".join(
                f"{k} {n}" for k, n in self.unreachable.items()))
        for f in self.failures[:max_failures]:
            lines.append(f"FAIL case {f.case} [{f.kind}]: {f.describe()}")
            if f.shrunk is not None:
                lines.append(f"  smallest failing input ({f.shrunk.steps} shrink steps, "
                             f"{f.shrunk.evaluations} runs): {f.shrunk.describe()}")
        if len(self.failures) > max_failures:
            lines.append(f"... {len(self.failures) - max_failures} more failing cases")
        lines.append("PASS: the kernel computes exactly what the datapath computes" if self.ok else
                     "FAIL: the kernel differs from the datapath")
        return "\n".join(lines)

    __str__ = summary


class _Progress:
    """A progress bar on stderr that appears only once a run has taken ``delay_s``."""

    def __init__(self, total: int, label: str, delay_s: float = 1.0, stream=None) -> None:
        self.total, self.label, self.delay_s = total, label, delay_s
        self.stream = stream or sys.stderr
        self.t0 = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, failed: int) -> None:
        now = time.monotonic()
        if now - self.t0 < self.delay_s or (done < self.total and now - self.last < 0.2):
            return
        self.last, self.shown = now, True
        width = 30
        fill = int(width * done / max(self.total, 1))
        rate = done / max(now - self.t0, 1e-9)
        self.stream.write(f"\r{self.label} [{'#' * fill}{'-' * (width - fill)}] {done}/{self.total} "
                          f"failed={failed} {rate:,.0f} cases/s")
        if done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def _kind(i: int, kinds: tuple[str, ...]) -> str:
    """Every other case is random; the others cycle through the edge-case kinds."""
    edges = kinds[1:]
    if not edges or i % 2 == 0:
        return kinds[0]
    return edges[(i // 2) % len(edges)]


def _run_case(fn, dp: Datapath, opts, names, kwargs, inputs, expected, torch, case: int, kind: str):
    """None if the kernel's output equals ``expected``, else a :class:`CaseFailure`."""
    def fail(failure: str, message: str, **kw) -> CaseFailure:
        return CaseFailure(case, kind, failure, message, inputs=inputs, **kw)

    tensors = [torch.from_numpy(np.array(inputs[n], copy=True)) for n in names]
    try:
        out = fn(*tensors, **kwargs)
    except Exception as e:  # noqa: BLE001 - a raising kernel is a failed case, never a crash
        return fail("error", f"kernel raised {type(e).__name__}: {_first_line(e)}")
    exp = torch.from_numpy(np.array(expected, copy=True))
    if not isinstance(out, torch.Tensor):
        return fail("type", f"kernel returned a {type(out).__name__}; expected a torch.Tensor "
                            f"{exp.dtype} of shape {list(exp.shape)}")
    if tuple(out.shape) != tuple(exp.shape):
        return fail("shape", f"kernel returned shape {list(out.shape)}; expected {list(exp.shape)}")
    if out.dtype != exp.dtype:
        return fail("dtype", f"kernel returned dtype {out.dtype}; expected {exp.dtype}")
    out = out.detach().cpu()
    if out.is_floating_point():
        nan = torch.isnan(out) & ~torch.isnan(exp)
        if bool(nan.any()):
            first = [int(i) for i in torch.nonzero(nan)[0]]
            return fail("nan", f"kernel returned NaN in {int(nan.sum())} of {out.numel()} outputs; first at "
                               f"{first} (expected {exp[tuple(first)].item()!r})", index=tuple(first))
    if torch.equal(out, exp):
        return None
    return _mismatch(fail, out.numpy(), np.asarray(expected))


def _mismatch(fail, got: np.ndarray, exp: np.ndarray) -> CaseFailure:
    diff = got != exp
    if got.dtype.kind == "f":
        diff &= ~(np.isnan(got) & np.isnan(exp))
    idx = np.argwhere(diff)
    first = tuple(int(i) for i in idx[0])
    if exp.dtype.kind == "f":
        g64, e64 = got.astype(np.float64), exp.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            err = np.abs(g64 - e64)
            ulp = err / np.spacing(np.abs(exp)).astype(np.float64)
        err[~np.isfinite(err)] = np.inf
        ulp[~np.isfinite(ulp)] = np.inf
        conv = float
    else:  # integers: exact errors as Python ints, 1 ulp = 1
        g_obj, e_obj = got.astype(object), exp.astype(object)
        err = np.abs(g_obj - e_obj)
        ulp = err
        conv = int
    d = diff
    return fail("mismatch", "", index=first, got=got[first].item(), expected=exp[first].item(),
                abs_err=conv(err[first]), ulp_err=conv(ulp[first]), n_diff=int(d.sum()), n_out=int(d.size),
                max_abs_err=conv(np.max(err[d])), max_ulp_err=conv(np.max(ulp[d])))


def _reference(dp: Datapath, inputs, opts) -> np.ndarray:
    # the hardware's own overflow to inf (e.g. a float32 dequant) is a result, not a warning
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return dp.reference(inputs, opts)


def _same_failure(a: CaseFailure, b: CaseFailure) -> bool:
    if a.failure != b.failure:
        return False
    if a.failure == "error":  # the same exception type
        return a.message.split(":")[0] == b.message.split(":")[0]
    return True


def _size(inputs: Mapping[str, np.ndarray]) -> tuple[int, int]:
    return (sum(np.asarray(a).size for a in inputs.values()),
            sum(int(np.count_nonzero(np.asarray(a))) for a in inputs.values()))


def _shrink(fn, dp: Datapath, opts, names, kwargs, first: CaseFailure, torch) -> Shrunk:
    cur, cur_fail = first.inputs, first
    steps = evals = 0
    t0 = time.monotonic()
    progressed = True
    while progressed and evals < _SHRINK_EVALS and time.monotonic() - t0 < _SHRINK_SECONDS:
        progressed = False
        for cand in dp.shrink(cur, opts):
            if evals >= _SHRINK_EVALS or time.monotonic() - t0 >= _SHRINK_SECONDS:
                break
            if _size(cand) >= _size(cur):
                continue
            try:
                expected = _reference(dp, cand, opts)
            except Exception:  # noqa: BLE001 - a candidate the model rejects is not smaller input
                continue
            evals += 1
            f = _run_case(fn, dp, opts, names, kwargs, cand, expected, torch, first.case, first.kind)
            if f is not None and _same_failure(f, first):
                cur, cur_fail, steps, progressed = cand, f, steps + 1, True
                break
    cur_fail.inputs = cur
    return Shrunk(inputs=cur, failure=cur_fail, steps=steps, evaluations=evals)


def _kernel_name(kernel) -> str:
    if isinstance(kernel, str):
        return kernel
    mod = getattr(kernel, "__module__", None)
    name = getattr(kernel, "__qualname__", None) or repr(kernel)
    return f"{mod}:{name}" if mod else name


def validate(kernel: Callable | str, datapath: str, *, cases: int = 1000, seed: int = 0, shrink: int = 3,
             progress: bool | str | Callable[[int, int], None] = False,
             **datapath_options: Any) -> ValidationReport:
    """Run ``kernel`` and the bit-exact ``datapath`` on ``cases`` seeded inputs and compare.

    Args:
        kernel: a callable, or ``"module:function"`` (imported as :func:`import_kernel` does).
            It receives the datapath's inputs as torch tensors (see :mod:`archgym.datapaths` or
            ``docs/validate.md`` for every signature) and returns one tensor.
        datapath: ``systolic-int``, ``bitmod``, ``smmw-w4a8``, ``smmw-w4a4``,
            ``ternary-bitlinear`` or ``moe-fixed``.
        cases: number of cases (>= 1). Case ``i`` is generated from ``(seed, i)``; every other
            case is random, the rest cycle through the datapath's edge-case kinds.
        seed: integer seed; the same seed gives the same inputs.
        shrink: how many failing cases to shrink to a smallest failing input (0: none).
        progress: True for a progress bar on stderr, ``"auto"`` for one that appears once the
            run has taken a second, or a callable ``(done, failed)``.
        **datapath_options: the datapath's options (e.g. ``acc_bits=20``, ``rounding="half_away"``).

    Returns:
        :class:`ValidationReport` (``.ok``, ``.exit_code``, ``.failures``, ``print(report)``).

    Raises:
        DatapathError: unknown datapath or option value. KernelImportError: a kernel string
        that cannot be imported. ValueError: ``cases < 1`` or a non-integer seed.
    """
    dp = get_datapath(datapath)
    opts = dp.resolve_options(datapath_options)
    if isinstance(cases, bool) or not isinstance(cases, int) or cases < 1:
        raise ValueError(f"cases={cases!r} is invalid; allowed: an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} is invalid; allowed: an integer >= 0")
    if isinstance(shrink, bool) or not isinstance(shrink, int) or shrink < 0:
        raise ValueError(f"shrink={shrink!r} is invalid; allowed: an integer >= 0")
    fn = import_kernel(kernel) if isinstance(kernel, str) else kernel
    if not callable(fn):
        raise ValueError(f"kernel={kernel!r} is not callable; pass a function or 'module:function'")
    torch = _torch()
    names, kwargs = dp.input_names(opts), dp.kernel_kwargs(opts)
    report = ValidationReport(dp.name, opts, _kernel_name(kernel), seed)
    bar = (_Progress(cases, f"validate {dp.name}", 0.0 if progress is True else 1.0)
           if progress is True or progress == "auto" else (progress if callable(progress) else None))
    t0 = time.perf_counter()
    for i in range(cases):
        kind = _kind(i, dp.kinds)
        rng = np.random.default_rng([seed, i])
        inputs = dp.generate(rng, opts, kind)
        if inputs is None:
            report.unreachable[kind] += 1
            kind = "random"
            inputs = dp.generate(rng, opts, kind)
        expected = _reference(dp, inputs, opts)
        f = _run_case(fn, dp, opts, names, kwargs, inputs, expected, torch, i, kind)
        report.cases_run += 1
        report.kinds[kind] += 1
        if f is None:
            report.cases_equal += 1
        else:
            if len(report.failures) < shrink:
                f.shrunk = _shrink(fn, dp, opts, names, kwargs, f, torch)
            report.failures.append(f)
        if bar is not None:
            bar(i + 1, len(report.failures))
    report.elapsed_s = time.perf_counter() - t0
    return report


__all__ += ["DatapathError"]
