"""RL throughput: env steps per second with 1 and 8 envs (issue #19 item 4).

    python benchmarks/bench_rl.py [--envs archgym/Systolic-v0 ...] [--steps 4000] [--repeats 3]

For each env id: random actions through a single env (``env.step``), through
``gymnasium.vector`` with 8 envs (sync: one process; async: 8 worker processes), and
stable-baselines3's PPO learning with ``n_envs`` = 1 and 8 (``make_vec_env``: the rollout
steps plus the policy updates).  Every figure is env steps per second, the median of
``--repeats`` runs, all measured in one run of this script.
"""

from __future__ import annotations

import argparse
import statistics
import time

import archgym  # noqa: F401  registers the archgym/* ids


def _single(env_id: str, steps: int) -> float:
    import gymnasium as gym

    env = gym.make(env_id)
    env.reset(seed=0)
    acts = [env.action_space.sample() for _ in range(steps)]
    t0 = time.perf_counter()
    for a in acts:
        env.step(a)
    dt = time.perf_counter() - t0
    env.close()
    return steps / dt


def _vector(env_id: str, steps: int, n: int, mode: str) -> float:
    import gymnasium as gym

    v = gym.make_vec(env_id, num_envs=n, vectorization_mode=mode)
    v.reset(seed=0)
    acts = [v.action_space.sample() for _ in range(max(1, steps // n))]
    t0 = time.perf_counter()
    for a in acts:
        v.step(a)
    dt = time.perf_counter() - t0
    v.close()
    return len(acts) * n / dt


def _ppo(env_id: str, steps: int, n: int) -> float:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    v = make_vec_env(env_id, n_envs=n, seed=0)
    n_steps = max(8, 64 // n)
    model = PPO("MlpPolicy", v, n_steps=n_steps, batch_size=n_steps * n // 2, n_epochs=2, seed=0, device="cpu",
                verbose=0)
    t0 = time.perf_counter()
    model.learn(steps)
    dt = time.perf_counter() - t0
    v.close()
    return steps / dt


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", nargs="+", default=["archgym/Systolic-v0", "archgym/BitMoD-v0",
                                                   "archgym/MatMulFree-v0", "archgym/AgileQuant-v0",
                                                   "archgym/M3ViT-v0"])
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    print("| env | 1 env, env.step | 8 envs, gymnasium sync | 8 envs, gymnasium async | SB3 PPO, 1 env | "
          "SB3 PPO, 8 envs |")
    print("|---|---|---|---|---|---|")
    for env_id in args.envs:
        cols = []
        for fn in (lambda: _single(env_id, args.steps), lambda: _vector(env_id, args.steps, 8, "sync"),
                   lambda: _vector(env_id, args.steps, 8, "async"), lambda: _ppo(env_id, args.steps // 2, 1),
                   lambda: _ppo(env_id, args.steps // 2, 8)):
            fn()  # warm-up: numba compilation, imports, workload tables
            cols.append(statistics.median(fn() for _ in range(args.repeats)))
        print(f"| {env_id} | " + " | ".join(f"{c:,.0f}" for c in cols) + " |", flush=True)


if __name__ == "__main__":
    main()
