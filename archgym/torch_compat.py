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

``archgym[models]`` does not install torchvision or timm, so transformers imports without this;
it is for users who install either themselves (the test extra does).
"""

from __future__ import annotations

import glob
import importlib.util
import os

__all__ = ["allow_torchvision_on_cpu_torch"]

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
