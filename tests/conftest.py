"""Shared pytest configuration."""

import os
import sys
import tempfile
import types

# Hypothesis writes failure patches under its storage directory: keep it out of the checkout.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "archgym-hypothesis"))

from hypothesis import settings  # noqa: E402

# Plots in tests never need a display.
os.environ.setdefault("MPLBACKEND", "Agg")

# Hypothesis keeps no example database: the test run leaves no files in the checkout
# (examples that matter are pinned with @example in the tests themselves).
settings.register_profile("archgym", database=None)
settings.load_profile("archgym")


# Mutation testing (docs/testing.md): mutmut runs, with -x, the tests that call the mutated
# function in an arbitrary order.  Running the focused core tests first lets a killed mutant stop
# within seconds instead of after the env x agent matrix; the normal test order is untouched.
_MUTATION_ORDER = ("test_core_mutation_", "test_objective.py", "test_space.py", "test_store.py", "test_env.py",
                   "test_cli.py", "test_sweep.py", "test_optimum.py", "test_hardening.py", "test_resume.py")


def _mutation_rank(item) -> int:
    name = item.path.name
    if name.endswith("_mutation.py") or name.endswith("_oracle.py"):   # tests/test_<sim>_mutation.py, oracles
        return 0
    return next((i for i, prefix in enumerate(_MUTATION_ORDER) if name.startswith(prefix)), len(_MUTATION_ORDER))


def pytest_collection_modifyitems(config, items):
    if "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", ""):
        items.sort(key=_mutation_rank)

_SHIM_HOLDER = "_archgym_tests_torchvision_shim"


def _torchvision_ops_for_cpu_torch():
    """Let PyPI's torchvision import next to the CPU torch wheel.

    torchvision 0.28.0, the only release built for torch==2.13.0, ships C++ operators linked
    against CUDA libraries the CPU wheel lacks; its import then fails with "operator
    torchvision::nms does not exist" (transformers and timm import it too).  Its model
    definitions are pure Python: where its operator library does not load, define the two
    operator schemas its import registers fake kernels for.  Where the library loads (a CUDA
    torch), nothing is touched.  docs/workloads.md tells users the same."""
    import importlib.util

    spec = importlib.util.find_spec("torchvision")
    if spec is None or importlib.util.find_spec("torch") is None:
        return None
    import glob

    import torch

    libs = glob.glob(os.path.join(os.path.dirname(spec.origin), "_C*.so"))
    try:
        for path in libs:
            torch.ops.load_library(path)
        if libs:
            return None
    except (OSError, RuntimeError):
        pass
    # a second test session in the same process (mutmut calls pytest.main repeatedly) imports this
    # file again: the schemas may be defined only once, so the first session's library is reused
    held = sys.modules.get(_SHIM_HOLDER)
    if held is not None:
        return held.lib
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    holder = types.ModuleType(_SHIM_HOLDER)
    holder.lib = lib  # must stay alive: dropping it unregisters the schemas
    sys.modules[_SHIM_HOLDER] = holder
    return lib


_TORCHVISION_SHIM = _torchvision_ops_for_cpu_torch()

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def rtl_cache(tmp_path_factory):
    """One Verilator/Icarus build cache per test session (tests/test_hdl_*.py), outside the checkout."""
    return tmp_path_factory.mktemp("rtl-cache")
