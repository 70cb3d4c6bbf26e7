"""archgym: Gymnasium environments for hardware/accelerator co-design.

``import archgym`` registers every built-in env id (``archgym/Systolic-v0``,
...) with Gymnasium; ``gymnasium.make(id)`` then builds an
:class:`~archgym.env.ArchGymEnv`.  The nouns: :class:`DesignSpace`,
:class:`Workload`, :class:`Metrics`, :class:`Objective`, :class:`Simulator`.
"""

from .metrics import Metrics, unit_of
from .objective import Objective, ObjectiveError, Target
from .registry import EnvSpec, env_ids, load_plugins, make, plugin_errors, register_env, spec_of
from .registry import _register_builtins as _register_builtins
from .simulator import Evaluation, Evaluator, Simulator, load_simulator
from .space import Choice, Constraint, DesignSpace, FloatRange, IntRange, InvalidDesign, Param, Pow2
# the functions, not their modules (neither module imports torch or rtl_models at import time)
from .validate import validate
from .emulate import emulate

__version__ = "0.1.0"

__all__ = [
    "Metrics", "unit_of", "Objective", "ObjectiveError", "Target",
    "EnvSpec", "env_ids", "make", "register_env", "spec_of", "load_plugins", "plugin_errors",
    "Evaluation", "Evaluator", "Simulator", "load_simulator",
    "Choice", "Constraint", "DesignSpace", "FloatRange", "IntRange", "InvalidDesign", "Param", "Pow2",
    "validate", "emulate",
]

_register_builtins()
load_plugins()
# PyPI's torchvision cannot import next to the CPU torch wheel; fix it on its first import
# (archgym/torch_compat.py), so `from transformers import ...` works after `import archgym`.
from .torch_compat import install_lazy_fix as _install_lazy_fix  # noqa: E402

_install_lazy_fix()
