"""Trains the plain-PyTorch TD3 agent (td3_agent.py) on pixel Pendulum; one td3-sweep run.

An ordinary training loop. The lines marked `# td3sweep` are all it takes to run under
`td3-sweep sweep` (actor_cnn_lr.yaml, ladder.yaml): a Monitor, one `record` per update, `note` for episodes and
evaluations, and a clean exit on SIGTERM. Everything else is the agent's own.

Under the harness every option comes from the environment (TD3SWEEP_*); by hand:
    python train.py --config config/td3_config.yaml --steps 1000 --metrics /tmp/ta/metrics.csv

A finished run leaves `checkpoint.pt` in its run directory; a ladder stage with
`trainer.resume: true` gets the previous stage's directory as TD3SWEEP_RESUME_FROM and continues
from it (weights, optimizers, replay buffer and RNGs; a new episode starts).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import td3sweep  # td3sweep
from pixel_pendulum import PixelPendulum
from td3_agent import ReplayBuffer, TD3Agent

CHECKPOINT = "checkpoint.pt"


def episode_seed(seed: int, episode: int) -> int:
    """Each training episode's reset seed: distinct across seeds and episodes, and resumable."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


def evaluate(agent: TD3Agent, env: PixelPendulum, cfg: dict, seed: int, high: np.ndarray) -> float:
    """Mean return of deterministic episodes; episode i resets with seed + seed_offset + i."""
    ev, total = cfg["evaluation"], 0.0
    for i in range(ev["episodes"]):
        obs, _ = env.reset(seed=seed + ev["seed_offset"] + i)
        done = False
        while not done:
            obs, r, term, trunc, _ = env.step(agent.select_action(obs) * high)
            total += r
            done = term or trunc
    return total / ev["episodes"]


def parse_args(argv):
    run = td3sweep.RunEnv.from_environ(required=False)
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=run.config or str(here / "config" / "td3_config.yaml"))
    p.add_argument("--seed", type=int, default=run.seed, help="default: $TD3SWEEP_SEED, else the config's")
    p.add_argument("--steps", type=int, default=run.steps, help="env steps; default: $TD3SWEEP_STEPS, else training.steps")
    p.add_argument("--out", default=run.run_dir, help="run directory for checkpoint.pt (default: $TD3SWEEP_RUN_DIR)")
    p.add_argument("--metrics", default=None, help="metrics CSV outside a sweep (default: $TD3SWEEP_METRICS)")
    p.add_argument("--resume-from", default=run.resume_from, help="a run directory with checkpoint.pt")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    td3sweep.exit_on_sigterm()  # td3sweep: SIGTERM means "stop now"
    try:
        config = td3sweep.load_config(args.config)
        monitor = td3sweep.Monitor(args.metrics, log_every=config["logging"]["log_every"])  # td3sweep
    except (td3sweep.HarnessError, td3sweep.ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else config["seed"]
    train_cfg, env_cfg = config["training"], config["env"]
    steps = args.steps if args.steps is not None else train_cfg["steps"]
    want = config.get("device", "auto")
    device = torch.device("cuda" if want == "auto" and torch.cuda.is_available() else
                          "cpu" if want == "auto" else want)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    make_env = lambda: PixelPendulum(env_cfg["image_size"], env_cfg["frame_stack"],  # noqa: E731
                                     env_cfg.get("max_episode_steps"))
    env, eval_env = make_env(), make_env()
    high = env.action_space.high
    action_dim = env.action_space.shape[0]
    agent = TD3Agent(env.observation_space.shape, action_dim, config, device)
    buffer = ReplayBuffer(env.observation_space.shape, action_dim, min(train_cfg["buffer_size"], steps))
    env_step, episodes, ep_return = 0, 0, 0.0

    if args.resume_from:
        ckpt = torch.load(Path(args.resume_from) / CHECKPOINT, weights_only=False)
        agent.load_state_dict(ckpt["agent"])
        buffer.load_state_dict(ckpt["buffer"])
        env_step, episodes = ckpt["env_step"], ckpt["episodes"]
        torch.set_rng_state(ckpt["torch_rng"])
        rng.bit_generator.state = ckpt["numpy_rng"]
        print(f"resumed from {args.resume_from} at env step {env_step}", flush=True)

    ev_every, starts = config["evaluation"]["every"], train_cfg["learning_starts"]
    t0 = time.monotonic()
    with monitor:
        fresh = env_step == 0 and monitor.last_train_step is None
        if ev_every > 0 and fresh:  # td3sweep: the untrained policy's row (train_step 0)
            monitor.log(0, env_step=0, episodes=0, eval_return=evaluate(agent, eval_env, config, seed, high))
        obs, _ = env.reset(seed=episode_seed(seed, episodes))
        while env_step < steps:
            if env_step < starts:
                action = rng.uniform(-1.0, 1.0, action_dim).astype(np.float32)
            else:
                noise = rng.normal(0.0, train_cfg["exploration_noise"], action_dim)
                action = np.clip(agent.select_action(obs) + noise, -1.0, 1.0).astype(np.float32)
            next_obs, reward, terminated, truncated, _ = env.step(action * high)
            env_step += 1
            # Truncation (the time limit) is not terminal: TD3 bootstraps through it.
            buffer.add(obs, action, reward, next_obs, terminated)
            obs, ep_return = next_obs, ep_return + reward
            if terminated or truncated:
                episodes += 1
                monitor.note(episode_return=ep_return, episodes=episodes)  # td3sweep
                obs, _ = env.reset(seed=episode_seed(seed, episodes))
                ep_return = 0.0
            if ev_every > 0 and env_step % ev_every == 0 and env_step > starts:
                monitor.note(eval_return=evaluate(agent, eval_env, config, seed, high))  # td3sweep
            if env_step > starts:
                for _ in range(train_cfg["gradient_steps"]):
                    metrics = agent.train(buffer.sample(train_cfg["batch_size"], rng, device))
                    monitor.record(train_step=agent.total_it, env_step=env_step, **metrics)  # td3sweep

    if args.out:
        save_checkpoint(Path(args.out), agent, buffer, env_step, episodes, rng)
    print(f"done: {env_step} env steps, {agent.total_it} updates, {time.monotonic() - t0:.1f} s", flush=True)
    return 0


def save_checkpoint(out: Path, agent, buffer, env_step, episodes, rng) -> None:
    """Writes checkpoint.pt atomically: a reader (the next stage) never sees half a file."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (CHECKPOINT + ".tmp")
    torch.save({"agent": agent.state_dict(), "buffer": buffer.state_dict(), "env_step": env_step,
                "episodes": episodes, "torch_rng": torch.get_rng_state(),
                "numpy_rng": rng.bit_generator.state}, tmp)
    os.replace(tmp, out / CHECKPOINT)


if __name__ == "__main__":
    sys.exit(main())
