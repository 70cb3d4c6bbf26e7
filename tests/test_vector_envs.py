"""Vectorised envs (issue #19 item 4): gymnasium.vector (sync and async) and stable-baselines3's
make_vec_env work for every env id; the render modes RL libraries pass are accepted; the PPO
agent trains with n_envs > 1."""

import gymnasium as gym
import numpy as np
import pytest

import archgym
from archgym.runner import run

IDS = archgym.env_ids()


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_vector_envs(env_id, mode):
    v = gym.make_vec(env_id, num_envs=3, vectorization_mode=mode)
    try:
        obs, info = v.reset(seed=0)
        assert obs.shape == (3, v.single_observation_space.shape[0])
        obs, r, term, trunc, info = v.step(v.action_space.sample())
        assert r.shape == (3,) and np.all((0 <= r) & (r <= 1)) and term.all()
        assert set(info) >= {"feasible", "reason"}
    finally:
        v.close()


@pytest.mark.parametrize("env_id", IDS)
def test_sb3_make_vec_env(env_id):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_util import make_vec_env

    v = make_vec_env(env_id, n_envs=4, seed=0)  # failed before: render_mode='rgb_array'
    v.reset()
    obs, r, done, infos = v.step(np.array([v.action_space.sample() for _ in range(4)]))
    assert obs.shape[0] == 4 and r.shape == (4,) and done.all()
    v.close()


@pytest.mark.parametrize("render_mode, kind", [("ansi", str), ("rgb_array", np.ndarray), (None, type(None))])
def test_render_modes(render_mode, kind):
    env = gym.make("archgym/Systolic-v0", render_mode=render_mode)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    out = env.render()
    assert isinstance(out, kind)
    if render_mode == "rgb_array":
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and out.std() > 0
    with pytest.warns(UserWarning, match="render_mode='bogus'"), pytest.raises(ValueError, match="render_mode='bogus'"):
        gym.make("archgym/Systolic-v0", render_mode="bogus")


def test_plain_sb3_ppo_trains_on_an_env():
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", gym.make("archgym/MatMulFree-v0"), n_steps=32, batch_size=16, n_epochs=1, seed=0,
                device="cpu")
    model.learn(64)


def test_ppo_agent_trains_with_several_envs(tmp_path):
    pytest.importorskip("stable_baselines3")
    params = {"n_envs": 4, "n_steps": 8, "batch_size": 16, "n_epochs": 1, "hidden": 16}
    a = run("archgym/Systolic-v0", "ppo", 48, seed=3, params=params)
    b = run("archgym/Systolic-v0", "ppo", 48, seed=3, params=params)
    assert a.steps == 48 and a.best_reward == b.best_reward and a.best_design == b.best_design
    with pytest.raises(ValueError, match="batch_size dividing n_steps x n_envs"):
        run("archgym/Systolic-v0", "ppo", 8, params={"n_envs": 3, "n_steps": 8, "batch_size": 16})
