"""PPO (stable-baselines3) training through an ArchGymEnv inside the shared budget.

Needs the ``rl`` extra: ``pip install 'archgym[rl]'`` (stable-baselines3, torch).

How SB3 trains inside the run loop
----------------------------------
SB3's ``model.learn`` *pushes*: it calls ``env.step`` whenever it wants a
sample.  The run loop *pulls*: it calls ``agent.ask()`` and evaluates the
answer itself, so that every agent's evaluations are counted by the same
:class:`~archgym.simulator.Evaluator`.  The agent joins the two with a thread
and a hand-off, never evaluating anything itself:

1. ``learn`` runs on a background thread against a real
   :class:`~archgym.env.ArchGymEnv`.  The env's simulator is a *bridge*
   (:class:`RunnerBridge`): its ``evaluate(design)`` hands the design to the
   run loop and blocks until the result comes back.
2. ``ask`` waits for the next design the bridge hands over; the run loop
   evaluates it with its shared, counted, cached evaluator; ``tell`` passes
   the metrics back, and the env turns them into the observation and the
   reward with the same objective (so PPO's reward equals the logged reward).
3. Exactly one thread runs at a time (each side blocks on the other), so the
   run is as deterministic as a single-threaded one.  When the budget is
   spent the run loop calls ``close``, which stops ``learn`` mid-rollout.

Every env step (and, in ``edit`` mode, every episode reset) is therefore one
counted evaluation within the budget, with no side channel: the bridge's
space has no constraints, so even an infeasible design goes through the run
loop (which applies the constraints) and the env's own evaluator has no cache.
The env's first evaluation is its reference design (it normalises the
observation): the centre of the index grid.

Modes
-----
* ``mode="design"`` (default): one-step episodes; an action is a whole design
  (``MultiDiscrete``), so PPO learns a distribution over designs (a bandit,
  as ArchGym's ``DRAMEnv_RL`` with ``max_steps=1``).
With ``n_envs > 1`` SB3 steps several envs per rollout step (a ``DummyVecEnv``:
one after the other, so asks stay deterministic); each env's first evaluation
is the reference design (a cache hit after the first).

* ``mode="edit"``: each action moves one parameter by -1/0/+1 index from the
  current design; episodes start at a random design and last ``episode_len``
  steps.  A "stay" or a move clamped at a boundary re-evaluates the current
  design: a cache hit that still consumes budget (honest accounting).

Side effects: SB3 seeds Python's, numpy's and torch's *global* RNGs with the
agent's seed, and training runs on one torch thread (restored on ``close``).  SB3 logs
nothing: its logger has no outputs, so no SB3-<date> folder appears in the temp directory.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from typing import Any, Mapping

from archgym.agent import Agent
from archgym.metrics import Metrics
from archgym.simulator import Simulator
from archgym.space import DesignSpace

from ._util import quiet, require

__all__ = ["PPOAgent", "RunnerBridge"]

_MODES = ("design", "edit")
_POLL_S = 1.0


class _Stop(Exception):
    """Raised inside the env on the training thread when the run loop is done."""


class RunnerBridge(Simulator):
    """A "simulator" whose evaluations are done by the run loop (see module docstring)."""

    name = "runner-bridge"
    reference = "results come from the run loop's shared evaluator"

    def __init__(self, space: DesignSpace, start: dict) -> None:
        self._space = DesignSpace(space.params)  # no constraints: the run loop applies them
        self._start = start
        self.designs: queue.Queue = queue.Queue()
        self.results: queue.Queue = queue.Queue()

    def design_space(self) -> DesignSpace:
        return self._space

    def default_design(self) -> dict:
        return dict(self._start)

    def workloads(self) -> tuple[str, ...]:
        return ("run-loop",)

    def check_workload(self, workload) -> None:  # its one opaque workload: the run loop's designs
        pass

    def evaluate(self, design: Mapping[str, Any], workload: str) -> Metrics:
        self.designs.put(("design", dict(design)))
        kind, payload = self.results.get()
        if kind == "stop":
            raise _Stop
        return payload


class PPOAgent(Agent):
    """Proximal Policy Optimisation (stable-baselines3) trained through the run loop."""

    name = "ppo"

    @dataclasses.dataclass(frozen=True)
    class Params:
        """Hyperparameters of SB3's PPO (MLP policy)."""

        mode: str = dataclasses.field(default="design", metadata={"help": "'design' (one-step episodes) or 'edit'"})
        episode_len: int = dataclasses.field(default=8, metadata={"help": "steps per episode in edit mode"})
        n_steps: int = dataclasses.field(default=64, metadata={"help": "env steps per rollout (per update)"})
        batch_size: int = dataclasses.field(default=32, metadata={"help": "minibatch size (divides n_steps)"})
        n_epochs: int = dataclasses.field(default=4, metadata={"help": "passes over each rollout"})
        learning_rate: float = dataclasses.field(default=3e-4, metadata={"help": "Adam learning rate"})
        ent_coef: float = dataclasses.field(default=0.01, metadata={"help": "entropy bonus"})
        clip_range: float = dataclasses.field(default=0.2, metadata={"help": "PPO clip range"})
        gamma: float = dataclasses.field(default=0.99, metadata={"help": "discount (edit mode)"})
        hidden: int = dataclasses.field(default=64, metadata={"help": "units in each of the two hidden layers"})
        n_envs: int = dataclasses.field(
            default=1, metadata={"help": "envs stepped per rollout step (SB3 DummyVecEnv; every step of every env "
                                         "is one counted evaluation)"})

        def __post_init__(self) -> None:
            if self.mode not in _MODES:
                raise ValueError(f"mode={self.mode!r}; allowed: {', '.join(_MODES)}")
            if not 1 <= self.n_envs <= 256:
                raise ValueError(f"n_envs={self.n_envs} must be in 1..256")
            rollout = self.n_steps * self.n_envs
            if self.n_steps < 2 or not 1 <= self.batch_size <= rollout or rollout % self.batch_size:
                raise ValueError(f"need n_steps >= 2 and batch_size dividing n_steps x n_envs; got n_steps={self.n_steps}"
                                 f", n_envs={self.n_envs}, batch_size={self.batch_size}")
            if self.n_epochs < 1 or self.hidden < 1 or self.episode_len < 1:
                raise ValueError("n_epochs, hidden and episode_len must be >= 1")
            if not (self.learning_rate > 0 and 0 < self.clip_range and 0 <= self.gamma <= 1 and self.ent_coef >= 0):
                raise ValueError("need learning_rate > 0, clip_range > 0, 0 <= gamma <= 1, ent_coef >= 0")

    def __init__(self, space, **kw: Any) -> None:
        super().__init__(space, **kw)
        require("stable_baselines3", agent="ppo", extra="rl", package="stable-baselines3")
        require("torch", agent="ppo", extra="rl")
        self.bridge = RunnerBridge(space, space.decode(space.nvec // 2))
        self._thread: threading.Thread | None = None
        self._torch_threads: int | None = None
        self._pending: dict | None = None

    # --- ask/tell ------------------------------------------------------------------------
    def ask(self) -> dict:
        if self._pending is None:
            if self._thread is None:
                self._start()
            while True:
                try:
                    kind, payload = self.bridge.designs.get(timeout=_POLL_S)
                    break
                except queue.Empty:
                    if not self._thread.is_alive():
                        raise RuntimeError("PPO training thread stopped without asking for a design") from None
            if kind == "error":
                raise RuntimeError(f"PPO training failed: {payload!r}") from payload
            self._pending = payload
        return dict(self._pending)

    def tell(self, design: Mapping[str, Any], metrics: Metrics, reward: float) -> None:
        self._pending = None
        self.bridge.results.put(("result", metrics))

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.bridge.results.put(("stop", None))
            self._thread.join(timeout=30)
        self._thread = None
        if self._torch_threads is not None:
            import torch

            torch.set_num_threads(self._torch_threads)
            self._torch_threads = None

    # --- training thread -----------------------------------------------------------------
    def _start(self) -> None:
        import torch

        self._torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        self._thread = threading.Thread(target=self._train, name="archgym-ppo", daemon=True)
        self._thread.start()

    def _train(self) -> None:
        try:
            with quiet():
                model = self._model()
                model.learn(total_timesteps=10**12)  # never ends by itself: the budget stops it
            self.bridge.designs.put(("error", RuntimeError("learn() returned before the budget was spent")))
        except _Stop:
            pass
        except BaseException as e:  # reported to the run loop by ask()
            self.bridge.designs.put(("error", e))

    def _model(self):
        import gymnasium as gym
        from stable_baselines3 import PPO
        from stable_baselines3.common.logger import Logger

        from archgym.env import ArchGymEnv

        from stable_baselines3.common.vec_env import DummyVecEnv

        p = self.params

        def make_env():
            env = ArchGymEnv(self.bridge, objective=self.objective, mode=p.mode, cache_size=0)
            return gym.wrappers.TimeLimit(env, max_episode_steps=p.episode_len) if p.mode == "edit" else env

        # envs are stepped one after the other (DummyVecEnv), so the order of asks is deterministic
        env = DummyVecEnv([make_env for _ in range(p.n_envs)])
        model = PPO(
            "MlpPolicy", env, n_steps=p.n_steps, batch_size=p.batch_size, n_epochs=p.n_epochs,
            learning_rate=p.learning_rate, ent_coef=p.ent_coef, clip_range=p.clip_range, gamma=p.gamma,
            policy_kwargs={"net_arch": [p.hidden, p.hidden]}, seed=self.seed, device="cpu", verbose=0,
        )
        # SB3 would otherwise configure a logger that creates an empty SB3-<date> folder in the
        # temp directory on every learn(); nothing is logged by SB3 (verbose=0)
        model.set_logger(Logger(folder=None, output_formats=[]))
        if p.mode == "edit":
            model.get_env().set_options({"random_start": True})
        return model
