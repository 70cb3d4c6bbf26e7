"""Shared pytest configuration."""

import os

# Plots in tests never need a display.
os.environ.setdefault("MPLBACKEND", "Agg")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def rtl_cache(tmp_path_factory):
    """One Verilator/Icarus build cache per test session (tests/test_hdl_*.py), outside the checkout."""
    return tmp_path_factory.mktemp("rtl-cache")
