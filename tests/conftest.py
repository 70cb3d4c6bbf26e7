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
