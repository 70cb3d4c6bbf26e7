"""ArchGymEnv: the Gymnasium contract, on every registered id."""

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import archgym
from archgym.env import ArchGymEnv

IDS = archgym.env_ids()


def test_builtin_ids_registered_on_import():
    assert "archgym/Systolic-v0" in IDS
    assert set(IDS) <= set(gym.registry)


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("mode", ["design", "edit"])
def test_check_env_every_registered_id(env_id, mode):
    env = gym.make(env_id, mode=mode)
    check_env(env.unwrapped)
    env.close()
    env.close()  # idempotent


@pytest.mark.parametrize("env_id", IDS)
def test_one_shot_episode_reward_bounded_and_info_keys_stable(env_id):
    env = gym.make(env_id)
    obs, info = env.reset(seed=1)
    keys = set(info)
    env.action_space.seed(1)
    for _ in range(30):
        env.reset()
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        assert term and not trunc
        assert 0.0 <= r <= 1.0 and math.isfinite(r)
        assert env.observation_space.contains(obs)
        assert set(info) == keys
        assert isinstance(info["feasible"], bool)
        if not info["feasible"]:
            assert r == 0.0 and info["reason"]


def test_infeasible_design_is_a_result_not_an_exception():
    env = ArchGymEnv("simulators.systolic:SystolicSimulator", simulator_kwargs={"max_area_mm2": 1.0})
    env.reset(seed=0)
    big = env.space.encode({**env.evaluator.default_design, "rows": 256, "cols": 256})
    _, r, term, _, info = env.step(big)
    assert r == 0.0 and info["feasible"] is False and "area" in info["reason"] and term


def test_edit_mode_moves_one_parameter_and_truncates():
    env = gym.make("archgym/Systolic-v0", mode="edit", max_episode_steps=3)
    obs, _ = env.reset(seed=0)
    base = env.unwrapped.design
    _, _, term, trunc, _ = env.step(np.array([0, 2]))  # rows +1 index
    assert env.unwrapped.design["rows"] == base["rows"] * 2
    assert not term and not trunc
    env.step(np.array([0, 1]))
    _, _, term, trunc, _ = env.step(np.array([0, 1]))
    assert trunc and not term


def test_edit_mode_random_start_uses_env_rng():
    env = gym.make("archgym/Systolic-v0", mode="edit")
    env.reset(seed=5, options={"random_start": True})
    a = env.unwrapped.design
    env.reset(seed=5, options={"random_start": True})
    assert env.unwrapped.design == a


def test_bad_action_and_bad_kwargs():
    env = gym.make("archgym/Systolic-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="is not in the action space.*outside 0..5"):
        env.unwrapped.step(np.array([99] * 10))
    with pytest.raises(ValueError, match="workload 'nope'"):
        gym.make("archgym/Systolic-v0", workload="nope")
    with pytest.raises(ValueError, match="mode='x'"):
        gym.make("archgym/Systolic-v0", mode="x")
    with pytest.raises(archgym.ObjectiveError):
        gym.make("archgym/Systolic-v0", objective="nope")
    with pytest.raises(ValueError, match="objective metric 'tokens_per_s'"):
        gym.make("archgym/Systolic-v0", objective="max:tokens_per_s")


def test_fixed_parameters_shrink_the_action_space():
    env = gym.make("archgym/Systolic-v0", fixed={"dataflow": "is", "rows": 64})
    assert env.unwrapped.space.size == env.unwrapped.simulator.design_space().size // 18
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert env.unwrapped.design["dataflow"] == "is"


def test_render_ansi():
    env = gym.make("archgym/Systolic-v0", render_mode="ansi")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert "reward=" in env.render()


def test_counters_and_cache():
    env = gym.make("archgym/Systolic-v0")
    ev = env.unwrapped.evaluator
    env.reset(seed=0)
    a = env.unwrapped.space.encode(ev.default_design)
    env.step(a)
    env.reset()
    env.step(a)
    assert ev.sim_calls == 1 and ev.cache_hits == 1


def test_constraint_violation_observation_does_not_need_extra_metrics():
    """A design rejected by a space constraint has no simulator-specific metrics; the env must
    still build its observation (regression: KeyError on an extra objective metric)."""
    from archgym.metrics import Metrics

    env = ArchGymEnv("simulators.systolic:SystolicSimulator", objective="max:throughput_per_s*mac_energy_j")
    obs = env._observation(type("E", (), {"metrics": Metrics.infeasible("x"), "feasible": False,
                                          "target_met": False})())
    assert env.observation_space.contains(obs)
