"""Shared pytest configuration."""

import os
import tempfile

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


# torchvision 0.28.0 (test extra) next to the CPU torch wheel: archgym/torch_compat.py says why.
from archgym.torch_compat import allow_torchvision_on_cpu_torch  # noqa: E402

allow_torchvision_on_cpu_torch()

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def rtl_cache(tmp_path_factory):
    """One Verilator/Icarus build cache per test session (tests/test_hdl_*.py), outside the checkout."""
    return tmp_path_factory.mktemp("rtl-cache")
