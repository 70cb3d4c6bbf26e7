"""Optional dependencies of the workload readers (the ``models`` extra)."""

from __future__ import annotations

import importlib
from types import ModuleType

from .layers import WorkloadError

__all__ = ["MissingExtra", "require"]


class MissingExtra(WorkloadError, ImportError):
    """An optional package a reader needs is not installed (a ``WorkloadError``, so the CLI
    prints one line and exits 2, and an ``ImportError`` for callers that test for one)."""


def require(package: str, purpose: str) -> ModuleType:
    """Import ``package`` or raise :class:`MissingExtra` naming the extra that provides it."""
    try:
        return importlib.import_module(package)
    except ImportError as e:
        why = (str(e).splitlines() or [type(e).__name__])[0]
        raise MissingExtra(f"{purpose} needs the {package!r} package ({why}); install it with: "
                           f"pip install 'archgym[models]'") from None
