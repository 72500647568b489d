"""Stable-Baselines3 TD3 under td3-sweep: one run, judged by the sweep's criteria.

td3-sweep starts this once per run (examples/sb3/pendulum.yaml, carracing.yaml) with the run's
resolved config in TD3SWEEP_CONFIG and the rest of the run in TD3SWEEP_* (docs/python.md). The
model is td3sweep.sb3.MonitoredTD3, SB3's TD3 whose `train()` logs the gradient norms, Q
statistics and losses of every update; MonitorEval adds the deterministic evaluations.

By hand, outside a sweep:
    python train.py --config config/pendulum.yaml --steps 2000 --metrics /tmp/sb3/metrics.csv
"""

from __future__ import annotations

import argparse
import sys
import time

import gymnasium as gym
import numpy as np
from PIL import Image
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.utils import update_learning_rate
from stable_baselines3.common.vec_env import VecFrameStack

import td3sweep
from td3sweep.sb3 import MonitoredTD3, MonitorEval


class GrayResize(gym.ObservationWrapper):
    """RGB frames to `size` x `size` grayscale (ITU-R 601 luma, bilinear resize), channels last."""

    def __init__(self, env: gym.Env, size: int) -> None:
        super().__init__(env)
        self.size = size
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 1), np.uint8)

    def observation(self, obs: np.ndarray) -> np.ndarray:
        gray = (obs[..., 0] * 0.299 + obs[..., 1] * 0.587 + obs[..., 2] * 0.114).astype(np.uint8)
        img = Image.fromarray(gray).resize((self.size, self.size), Image.BILINEAR)
        return np.asarray(img)[..., None]


def make_env(cfg: dict, seed: int | None):
    """The training (or evaluation) env: a 1-env VecEnv, pixels preprocessed and stacked."""
    env_cfg = cfg["env"]
    pixels = env_cfg.get("pixels")
    wrapper = (lambda e: GrayResize(e, pixels["size"])) if pixels else None
    env_kwargs = dict(env_cfg.get("kwargs") or {})
    if env_cfg.get("max_episode_steps") is not None:
        env_kwargs["max_episode_steps"] = env_cfg["max_episode_steps"]
    vec = make_vec_env(env_cfg["id"], n_envs=1, seed=seed, wrapper_class=wrapper, env_kwargs=env_kwargs)
    if pixels and pixels.get("frame_stack", 1) > 1:
        vec = VecFrameStack(vec, pixels["frame_stack"])
    return vec


class ActorLrTD3(MonitoredTD3):
    """MonitoredTD3 whose actor may have its own Adam rate (SB3's TD3 has one for both nets).

    SB3 sets every optimizer to the schedule's rate at the start of each `train()`; this resets
    the actor's afterwards. None keeps SB3's behaviour.
    """

    def __init__(self, *args, actor_learning_rate: float | None = None, **kwargs) -> None:
        self.actor_learning_rate = actor_learning_rate
        super().__init__(*args, **kwargs)

    def _update_learning_rate(self, optimizers) -> None:
        super()._update_learning_rate(optimizers)
        if self.actor_learning_rate is not None:
            update_learning_rate(self.actor.optimizer, self.actor_learning_rate)


def build_model(cfg: dict, env, seed: int, monitor: td3sweep.Monitor) -> ActorLrTD3:
    t = cfg["td3"]
    n_actions = env.action_space.shape[0]
    noise = NormalActionNoise(np.zeros(n_actions), t["action_noise_std"] * np.ones(n_actions))
    policy_kwargs = {"net_arch": t["net_arch"]}
    if t.get("features_dim"):
        policy_kwargs["features_extractor_kwargs"] = {"features_dim": t["features_dim"]}
    return ActorLrTD3(
        t["policy"],
        env,
        monitor=monitor,
        actor_learning_rate=t.get("actor_learning_rate"),
        learning_rate=t["learning_rate"],
        buffer_size=t["buffer_size"],
        learning_starts=t["learning_starts"],
        batch_size=t["batch_size"],
        tau=t["tau"],
        gamma=t["gamma"],
        train_freq=t["train_freq"],
        gradient_steps=t["gradient_steps"],
        policy_delay=t["policy_delay"],
        target_policy_noise=t["target_policy_noise"],
        target_noise_clip=t["target_noise_clip"],
        action_noise=noise,
        policy_kwargs=policy_kwargs,
        seed=seed,
        device=cfg.get("device", "auto"),
        verbose=0,
    )


def main(argv=None) -> int:
    run = td3sweep.RunEnv.from_environ(required=False)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=run.config, help="config YAML (default: $TD3SWEEP_CONFIG)")
    p.add_argument("--seed", type=int, default=run.seed, help="default: $TD3SWEEP_SEED, else the config's")
    p.add_argument("--steps", type=int, default=run.steps, help="env steps (default: $TD3SWEEP_STEPS, else the config's)")
    p.add_argument("--metrics", default=None, help="metrics CSV outside a sweep (default: $TD3SWEEP_METRICS)")
    args = p.parse_args(argv)
    if not args.config:
        p.error("no config: pass --config or run under td3-sweep (TD3SWEEP_CONFIG)")

    td3sweep.exit_on_sigterm()  # the harness's "stop now": leave at once, closing files
    try:
        cfg = td3sweep.load_config(args.config)
        monitor = td3sweep.Monitor(args.metrics, log_every=cfg["logging"]["log_every"])
    except (td3sweep.HarnessError, td3sweep.ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else cfg.get("seed", 0)
    steps = args.steps if args.steps is not None else cfg["steps"]
    ev = cfg["evaluation"]

    t0 = time.monotonic()
    with monitor:
        env = make_env(cfg, seed)
        model = build_model(cfg, env, seed, monitor)
        evaluation = MonitorEval(
            monitor,
            lambda: make_env(cfg, None),
            every=ev["every"],
            episodes=ev["episodes"],
            seed=seed,
            seed_offset=ev["seed_offset"],
            learning_starts=cfg["td3"]["learning_starts"],
            verbose=1,
        )
        print(f"SB3 TD3 on {cfg['env']['id']}: seed {seed}, {steps} steps, device {model.device}", flush=True)
        model.learn(total_timesteps=steps, callback=evaluation)
        env.close()
    print(f"done: {model.num_timesteps} env steps, {model._n_updates} updates, "
          f"{time.monotonic() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
