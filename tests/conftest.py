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


# torchvision 0.28.0 (test extra) next to the CPU torch wheel: archgym/torch_compat.py says why.
from archgym.torch_compat import allow_torchvision_on_cpu_torch  # noqa: E402

allow_torchvision_on_cpu_torch()

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def rtl_cache(tmp_path_factory):
    """One Verilator/Icarus build cache per test session (tests/test_hdl_*.py), outside the checkout."""
    return tmp_path_factory.mktemp("rtl-cache")
