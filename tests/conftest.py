"""Shared pytest configuration."""

import os

from hypothesis import settings

# Plots in tests never need a display.
os.environ.setdefault("MPLBACKEND", "Agg")

# Hypothesis keeps no example database: the test run leaves no files in the checkout
# (examples that matter are pinned with @example in the tests themselves).
settings.register_profile("archgym", database=None)
settings.load_profile("archgym")
