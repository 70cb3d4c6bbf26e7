"""Small helpers shared by the agents (private: not part of the public API).

* :class:`Score` maps the env's bounded reward to an unbounded, well-scaled
  score for model-based optimisers (GP, TPE, CMA-ES).
* :func:`require` imports an optional library or raises a one-line
  :class:`MissingExtra` naming the extra to install.
* :func:`quiet` silences optimiser log noise and known-benign warnings.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import warnings
from types import ModuleType
from typing import Iterator

__all__ = ["MissingExtra", "Score", "require", "quiet", "single_thread"]


class MissingExtra(ValueError):
    """An agent's optional library is not installed (the message names the pip extra)."""


def require(module: str, *, agent: str, extra: str | None, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtra` with the install command
    (``pip install 'archgym[extra]'``, or the package itself when ``extra`` is None)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pkg = package or module.split(".")[0]
        how = f"'archgym[{extra}]'" if extra else pkg
        raise MissingExtra(f"agent {agent!r} needs {pkg}, which is not installed: pip install {how}") from None


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Optuna's INFO logging and the benign warnings optimisers emit
    (experimental-feature notices, "point evaluated before", independent sampling)."""
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:  # pragma: no cover - optuna is a core dependency
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


_CONTROLLER: list = []  # one cached threadpoolctl controller (building one costs ~1 ms)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with one BLAS/OpenMP thread (and one torch thread if torch is loaded).

    Surrogate models fit tiny matrices: on a small, shared machine BLAS threads
    only contend (a scikit-optimize GP update took 4x longer with 2 OpenBLAS
    threads than with 1), and a fixed thread count keeps floating-point
    reductions, hence the asked designs, identical on every executor.
    """
    import sys

    torch = sys.modules.get("torch")
    n_torch = torch.get_num_threads() if torch is not None else None
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController

            _CONTROLLER.append(ThreadpoolController())
        except ImportError:  # pragma: no cover - comes with scikit-learn
            _CONTROLLER.append(None)
    if torch is not None:
        torch.set_num_threads(1)
    try:
        if _CONTROLLER[0] is None:
            yield
        else:
            with _CONTROLLER[0].limit(limits=1):
                yield
    finally:
        if torch is not None and n_torch is not None:
            torch.set_num_threads(n_torch)


# reward is clipped to [EPS, 1 - EPS] before the logit: the score stays finite (|score| < 28)
_EPS = 1e-12


class Score:
    """Reward -> score for optimisers that model the objective's value.

    The env's reward ``r = ref / (ref + cost)`` squashes good designs towards
    1.0 (a design 100x cheaper than the reference scores 0.990, 1000x scores
    0.999), which flattens the landscape exactly where the optimum is.  The
    logit ``log(r / (1 - r)) = log(ref / cost)`` undoes the squashing (it is the
    log cost ratio; for target-only or target-missing designs it is still a
    monotone function of the reward), so "higher is better" and the ranking are
    unchanged.

    An infeasible design (reward 0, no cost) scores one below the worst
    feasible score seen so far (or -1 before any), a deterministic function of
    the history, so replaying the run log rebuilds the same values.
    """

    def __init__(self) -> None:
        self.worst = math.inf

    def __call__(self, reward: float, feasible: bool) -> float:
        if feasible and reward > 0:
            r = min(max(float(reward), _EPS), 1.0 - _EPS)
            s = math.log(r / (1.0 - r))
            self.worst = min(self.worst, s)
            return s
        return (self.worst if math.isfinite(self.worst) else 0.0) - 1.0
