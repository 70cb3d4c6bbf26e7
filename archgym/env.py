"""ArchGymEnv: the one Gymnasium environment for every accelerator simulator."""

from __future__ import annotations

import math
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .objective import Objective
from .simulator import Evaluation, Evaluator, Simulator, load_simulator

__all__ = ["ArchGymEnv"]


class ArchGymEnv(gym.Env):
    """Design-space exploration of one accelerator model as a Gymnasium env.

    ## Description
    ``simulator x workload x objective``.  Each step evaluates one accelerator
    design with the simulator (an analytic/cycle-approximate model) on the
    workload and rewards it with the objective.

    ## Modes
    * ``mode="design"`` (default): a one-shot episode. The action is a whole
      design; the step evaluates it and the episode terminates.  This is the
      black-box search setting used by every non-RL agent.
    * ``mode="edit"``: the episode starts at the default design (or a random one
      with ``reset(options={"random_start": True})``) and each action nudges one
      parameter by -1/0/+1 index.  The episode never terminates by itself; pass
      ``max_episode_steps`` to ``gym.make`` to truncate it.

    ## Action space
    ``design`` mode: ``MultiDiscrete(space.nvec)``, one index per parameter
    (decode with ``env.unwrapped.space.decode(action)``).
    ``edit`` mode: ``MultiDiscrete([n_params, 3])``: (parameter index, move) with
    move 0 = -1, 1 = stay, 2 = +1.

    ## Observation space
    ``Box(0, 1, float32)``: for each objective metric ``m``, ``m / (m + m_ref)``
    with ``m_ref`` the default design's value (1.0 when infeasible), then the
    ``feasible`` and ``target_met`` flags; in ``edit`` mode followed by the
    current design's normalised indices.

    ## Reward
    ``objective.reward(metrics)``: finite, in ``[0, 1]``, higher is better; 0 for
    an infeasible design (see :mod:`archgym.objective`).

    ## Info
    Every metric the simulator models (units in the names; a float, NaN where
    absent, e.g. for an infeasible design), ``feasible``, ``target_met``,
    ``reason``: the same keys and types every step (so vector envs can stack them).  Evaluation counters live on
    ``env.unwrapped.evaluator`` (``sim_calls``, ``cache_hits``).

    ## Arguments
    ``simulator``: ``"module:Class"`` string, class or instance; ``workload``:
    one of ``simulator.workloads()``; ``objective``: an
    :class:`~archgym.objective.Objective`, a spec string (``"energy_j*latency_s"``)
    or a dict ``{"spec": ..., "targets": [...]}``; ``simulator_kwargs``: passed to
    the simulator's constructor; ``fixed``: parameters pinned to one value
    (``{"dataflow": "ws"}``), so the action space covers only the rest.

    ## Version history
    * v0: initial release.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        simulator: str | type | Simulator,
        workload: str | None = None,
        objective: Objective | str | Mapping | None = None,
        *,
        mode: str = "design",
        render_mode: str | None = None,
        simulator_kwargs: Mapping[str, Any] | None = None,
        fixed: Mapping[str, Any] | None = None,
        cache_size: int = 1 << 16,
    ) -> None:
        if mode not in ("design", "edit"):
            raise ValueError(f"mode={mode!r}; allowed: 'design', 'edit'")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r}; allowed: {self.metadata['render_modes']}")
        self.mode = mode
        self.render_mode = render_mode
        sim = load_simulator(simulator, **dict(simulator_kwargs or {}))
        self.evaluator = Evaluator(sim, workload, _as_objective(objective), cache_size=cache_size, fixed=fixed)
        self.simulator = sim
        self.space = self.evaluator.space
        self.objective = self.evaluator.objective
        ref = self.evaluator.reference_metrics
        self._obs_ref = np.array(
            [_pos(ref.get(m)) for m in self.objective.metrics], dtype=np.float64
        )
        n_obs = len(self.objective.metrics) + 2 + (len(self.space.params) if mode == "edit" else 0)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(n_obs,), dtype=np.float32)
        if mode == "design":
            self.action_space = spaces.MultiDiscrete(self.space.nvec)
        else:
            self.action_space = spaces.MultiDiscrete(np.array([len(self.space.params), 3]))
        self._indices = self.space.encode(self.evaluator.default_design)
        self._last: Evaluation | None = None

    # --- gymnasium API -------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        if self.mode == "edit" and options.get("random_start"):
            self._indices = self.np_random.integers(0, self.space.nvec).astype(np.int64)
        else:
            self._indices = self.space.encode(self.evaluator.default_design)
        self._last = None
        if self.mode == "edit":
            self._last = self.evaluator.evaluate(self.space.decode(self._indices))
        return self._observation(self._last), self._info(self._last)

    def step(self, action):
        action = self._check_action(action)
        if self.mode == "design":
            self._indices = action.copy()
        else:
            j, move = int(action[0]), int(action[1]) - 1
            nxt = self._indices.copy()
            nxt[j] = min(max(nxt[j] + move, 0), self.space.nvec[j] - 1)
            self._indices = nxt
        ev = self.evaluator.evaluate(self.space.decode(self._indices))
        self._last = ev
        terminated = self.mode == "design"
        return self._observation(ev), float(ev.reward), terminated, False, self._info(ev)

    def render(self):
        """``"ansi"``: the design, reward and metrics as text; ``"rgb_array"``: the same text
        drawn into an RGB image (``uint8 [H, W, 3]``, for video recorders of RL libraries);
        ``None`` without a render mode."""
        if self.render_mode is None:
            return None
        if self._last is None:
            text = f"{self.simulator.name} on {self.evaluator.workload.spec}: no design evaluated yet\n"
        else:
            d = ", ".join(f"{k}={v}" for k, v in self._last.design.items())
            text = f"[{d}] reward={self._last.reward:.4f}\n{self._last.metrics.summary()}\n"
        return text if self.render_mode == "ansi" else _text_image(text)

    def close(self) -> None:
        pass

    # --- helpers -----------------------------------------------------------------
    def _check_action(self, action) -> np.ndarray:
        """The action as int64 indices, or one ``ValueError`` naming the action, what is wrong
        with it and the action space (never a numpy error, never a silent truncation)."""
        space = self.action_space
        what = f"action {action!r} is not in the action space {space}"
        try:
            a = np.asarray(action)
        except Exception:  # noqa: BLE001 - anything that is not array-like
            raise ValueError(f"{what}: not an array of integers") from None
        if a.dtype == object or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
                                     or a.dtype == bool):
            raise ValueError(f"{what}: entries must be integers, got dtype {a.dtype}")
        if a.ndim == 2 and a.shape[0] == 1:  # a batch of one, as some RL code passes it
            a = a[0]
        if a.shape != space.nvec.shape:
            raise ValueError(f"{what}: expected {space.nvec.size} integers, got shape {np.shape(action)}")
        if np.issubdtype(a.dtype, np.floating):
            bad = ~np.isfinite(a) | (a != np.round(a)) | (np.abs(a) > 2.0**62)
            if bad.any():
                j = int(np.argmax(bad))
                raise ValueError(f"{what}: entry {j} ({a[j]!r}) is not an integer index")
        if np.issubdtype(a.dtype, np.unsignedinteger) and (a > 2**62).any():
            raise ValueError(f"{what}: an entry is far outside the space")
        a = a.astype(np.int64)
        out = (a < 0) | (a >= space.nvec)
        if out.any():
            j = int(np.argmax(out))
            name = (self.space.params[j].name if self.mode == "design" else ("parameter", "move")[j])
            raise ValueError(f"{what}: entry {j} ({name}) = {a[j]} is outside 0..{space.nvec[j] - 1}")
        return a

    @property
    def design(self) -> dict:
        """The current design (last evaluated in design mode; current in edit mode)."""
        return self.space.decode(self._indices)

    def _observation(self, ev: Evaluation | None) -> np.ndarray:
        vals = []
        raw = ev.metrics.vector(self.objective.metrics) if ev is not None else [math.nan] * len(self._obs_ref)
        for v, ref in zip(raw, self._obs_ref):
            vals.append(v / (v + ref) if (math.isfinite(v) and v >= 0) else 1.0)
        vals.append(1.0 if (ev is not None and ev.feasible) else 0.0)
        vals.append(1.0 if (ev is not None and ev.target_met) else 0.0)
        if self.mode == "edit":
            span = np.maximum(self.space.nvec - 1, 1)
            vals.extend((self._indices / span).tolist())
        return np.clip(np.asarray(vals, dtype=np.float32), 0.0, 1.0)

    def _info(self, ev: Evaluation | None) -> dict:
        if ev is None:
            return self.evaluator.info_of(None)
        return self.evaluator.info(ev)


def _text_image(text: str) -> np.ndarray:
    """``text`` drawn in a fixed-size RGB image (matplotlib's Agg canvas, imported lazily)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.2), dpi=100)
    canvas = FigureCanvasAgg(fig)
    fig.text(0.01, 0.98, text, va="top", ha="left", family="monospace", fontsize=7, wrap=True)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _pos(v: float) -> float:
    return v if (math.isfinite(v) and v > 0) else 1.0


def _as_objective(obj: Objective | str | Mapping | None) -> Objective | None:
    if obj is None or isinstance(obj, Objective):
        return obj
    if isinstance(obj, str):
        return Objective.parse(obj)
    if isinstance(obj, Mapping):
        return Objective.parse(obj.get("spec"), obj.get("targets", ()))
    raise TypeError(f"objective must be an Objective, a spec string or a mapping, got {type(obj).__name__}")
