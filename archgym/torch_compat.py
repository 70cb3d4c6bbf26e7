"""Let PyPI's torchvision import next to the CPU torch wheel (``torch==2.13.0+cpu``).

torchvision 0.28.0, the only release built for torch 2.13.0, ships C++ operators linked against
CUDA libraries the CPU wheel lacks.  Its import then fails with ``RuntimeError: operator
torchvision::nms does not exist``, and so does ``import transformers`` or ``import timm`` (both
import torchvision when it is installed).  Its model definitions are pure Python; only its
detection operators need the C++ library.  Call :func:`allow_torchvision_on_cpu_torch` once,
before the first import of torchvision, transformers or timm::

    import archgym.torch_compat
    archgym.torch_compat.allow_torchvision_on_cpu_torch()
    import torchvision            # resnet18(weights=None) builds and runs

``import archgym`` does this for you, lazily: it puts :class:`_TorchvisionFixFinder` on
``sys.meta_path``, which does nothing until torchvision is first imported and then applies the
fix once and removes itself (so ``import archgym`` stays free of torch).  Import archgym before
transformers/timm/torchvision, or call the function yourself.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import sys

__all__ = ["allow_torchvision_on_cpu_torch", "install_lazy_fix"]

_KEEP: list = []   # the Library objects: dropping one unregisters its schemas


def allow_torchvision_on_cpu_torch() -> bool:
    """Make ``import torchvision`` work with a CPU torch wheel; idempotent.

    Where torchvision's operator library loads (a CUDA torch, or a matching build) nothing is
    changed.  Otherwise the two operator schemas torchvision registers fake kernels for at import
    (``nms``, ``qnms``) are defined, so the import succeeds; calling those operators still fails.
    Returns True when the schemas were defined (now or by an earlier call), False when nothing was
    needed or torch/torchvision are not installed.
    """
    if _KEEP:
        return True
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None or importlib.util.find_spec("torch") is None:
        return False
    import torch

    libs = glob.glob(os.path.join(os.path.dirname(spec.origin), "_C*.so"))
    try:
        for path in libs:
            torch.ops.load_library(path)
        if libs:
            return False
    except (OSError, RuntimeError):
        pass
    if hasattr(torch.ops.torchvision, "nms"):   # defined by someone else already
        return False
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _KEEP.append(lib)
    return True


class _TorchvisionFixFinder:
    """A ``sys.meta_path`` entry that never finds a module itself: on the first import of
    torchvision it removes itself, applies :func:`allow_torchvision_on_cpu_torch` and lets the
    normal finders import torchvision."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            _remove_finder()
            try:
                allow_torchvision_on_cpu_torch()
            except Exception:  # noqa: BLE001 - the fix is best effort; the import reports its own error
                pass
        return None


def _remove_finder() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TorchvisionFixFinder)]


def install_lazy_fix() -> None:
    """Apply :func:`allow_torchvision_on_cpu_torch` just before torchvision is first imported
    (``import archgym`` calls this).  Nothing happens if torchvision is already imported."""
    if "torchvision" in sys.modules or any(isinstance(f, _TorchvisionFixFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _TorchvisionFixFinder())
