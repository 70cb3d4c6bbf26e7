"""Environment registration: plain data plus lazily imported ``"module:Class"`` strings.

``import archgym`` registers every id in :data:`BUILTIN_ENVS` with Gymnasium
without importing any simulator (the class is imported on ``gym.make``), then
the envs of installed plugins: every entry point of the group ``archgym.envs``
(``[project.entry-points."archgym.envs"] myaccel = "my_pkg.envs:register"`` in a
package's pyproject.toml) is loaded; a callable is called with no arguments, a
module is imported; either way it calls :func:`register_env`.  A plugin that
fails to load does not break ``import archgym``: its error is kept in
:func:`plugin_errors` (``archgym envs`` prints it).  Users add their own
accelerator with one :func:`register_env` call, from a plugin or from a module
named by ``archgym --import MODULE``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import gymnasium as gym

__all__ = ["EnvSpec", "BUILTIN_ENVS", "register_env", "env_ids", "spec_of", "make", "load_plugins", "plugin_errors",
           "import_module", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "archgym.envs"


@dataclass(frozen=True)
class EnvSpec:
    """What one env id means: a simulator class path, a default workload and objective."""

    id: str
    simulator: str
    workload: str | None = None
    objective: str | Mapping | None = None
    simulator_kwargs: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


BUILTIN_ENVS: tuple[EnvSpec, ...] = (
    EnvSpec(
        "archgym/Systolic-v0",
        "simulators.systolic:SystolicSimulator",
        workload="llama-2-7b/prefill",
        objective="energy_j*latency_s",
        description="R x C systolic array (os/ws/is), each layer on its best tiling and DRAM loop order; SRAM, DRAM bandwidth, energy/area; SCALE-Sim-exact cycle mode.",
    ),
    EnvSpec(
        "archgym/BitMoD-v0",
        "simulators.bitmod:BitmodSimulator",
        workload="llama-2-7b/prefill",
        objective={"spec": "energy_j*latency_s", "targets": ["area_mm2<=4"]},
        description="BitMoD (HPCA'25) bit-serial mixture-of-datatype PE accelerator; Fig. 7 cycles exact.",
    ),
    EnvSpec(
        "archgym/MatMulFree-v0",
        "simulators.matmulfree:MatMulFreeSimulator",
        workload="1.3b",
        objective={"spec": "max:tokens_per_s", "targets": ["power_w<=13"]},
        description="MatMul-free LM token-generation cores on a Stratix 10 FPGA (arXiv 2406.02528 §6).",
    ),
    EnvSpec(
        "archgym/AgileQuant-v0",
        "simulators.agile_quant:AgileQuantSimulator",
        workload="opt-1.3b/prefill",
        objective={"spec": "latency_s", "targets": ["error_nsr_ratio<=0.03", "weight_bytes<=1e9"]},
        description="Agile-Quant W4A8/W4A4 packed SIMD + token pruning on Snapdragon 870 / RPi 4B CPUs.",
    ),
    EnvSpec(
        "archgym/M3ViT-v0",
        "simulators.m3vit:M3ViTSimulator",
        workload="pascal",
        objective="energy_j*onchip_bytes",
        description="M3ViT MoE ViT-S on a ZCU104-class FPGA (expert-by-expert reordering vs cache/naive); Table 4.",
    ),
)

_REGISTERED: dict[str, EnvSpec] = {}


def register_env(
    id: str,
    simulator: str,
    *,
    workload: str | None = None,
    objective: str | Mapping | None = None,
    simulator_kwargs: Mapping[str, Any] | None = None,
    description: str = "",
) -> EnvSpec:
    """Register ``id`` (e.g. ``"archgym/MyAccel-v0"``) for ``gym.make``.

    ``simulator`` is a ``"package.module:ClassName"`` string naming a
    :class:`~archgym.simulator.Simulator` subclass; it is imported only when the
    env is made.  Re-registering an id replaces it.
    """
    spec = EnvSpec(id, simulator, workload, objective, dict(simulator_kwargs or {}), description)
    kwargs: dict[str, Any] = {"simulator": simulator}
    if workload is not None:
        kwargs["workload"] = workload
    if objective is not None:
        kwargs["objective"] = objective
    if simulator_kwargs:
        kwargs["simulator_kwargs"] = dict(simulator_kwargs)
    if id in gym.registry:
        del gym.registry[id]
    gym.register(id=id, entry_point="archgym.env:ArchGymEnv", kwargs=kwargs, nondeterministic=False)
    _REGISTERED[id] = spec
    return spec


def env_ids() -> list[str]:
    """Every id registered through :func:`register_env`."""
    return list(_REGISTERED)


def spec_of(env_id: str) -> EnvSpec:
    """The :class:`EnvSpec` of a registered id (``ValueError`` lists known ids)."""
    try:
        return _REGISTERED[env_id]
    except KeyError:
        hint = "; a plugin failed to load (see `archgym envs`)" if _PLUGIN_ERRORS else ""
        raise ValueError(f"unknown env id {env_id!r}; registered: {', '.join(_REGISTERED)}{hint} "
                         "(a module of your own: archgym --import MODULE)") from None


def make(env_id: str, **kwargs: Any):
    """``gym.make`` for a registered archgym id, with a clear error for unknown ids."""
    spec_of(env_id)
    return gym.make(env_id, **kwargs)


def _register_builtins() -> None:
    for s in BUILTIN_ENVS:
        register_env(
            s.id, s.simulator, workload=s.workload, objective=s.objective,
            simulator_kwargs=s.simulator_kwargs, description=s.description,
        )


_PLUGIN_ERRORS: dict[str, str] = {}


def load_plugins() -> dict[str, str]:
    """Load every ``archgym.envs`` entry point (see the module docstring).  Returns
    ``{entry point name: error}`` for the ones that failed (also kept for
    :func:`plugin_errors`); the others have registered their envs."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if callable(obj):
                obj()
        except Exception as e:  # noqa: BLE001 - a broken plugin must not break archgym
            msg = str(e).strip().splitlines()
            _PLUGIN_ERRORS[ep.name] = f"{ep.value}: {type(e).__name__}: {msg[0] if msg else ''}"
    return dict(_PLUGIN_ERRORS)


def plugin_errors() -> dict[str, str]:
    """Entry points of ``archgym.envs`` that failed to load, with their one-line error."""
    return dict(_PLUGIN_ERRORS)


def import_module(name: str) -> None:
    """Import a module that registers envs (``archgym --import my_accel``); it must be on
    the Python path (installed, or in a folder of ``PYTHONPATH``).  ``ValueError`` (one
    line) when it cannot be imported or raises while importing."""
    import importlib

    if not isinstance(name, str) or not all(p.isidentifier() for p in name.split(".")):
        raise ValueError(f"--import {name!r}: not a module name (e.g. my_pkg.envs)")
    try:
        importlib.import_module(name)
    except ImportError as e:
        raise ValueError(f"--import {name}: cannot import it ({e}); it must be installed or in a folder "
                         "on PYTHONPATH") from None
    except Exception as e:  # noqa: BLE001 - the user's module raised while importing
        msg = str(e).strip().splitlines()
        raise ValueError(f"--import {name}: importing it raised {type(e).__name__}: {msg[0] if msg else ''}") from None
