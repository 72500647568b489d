"""Stable-Baselines3's TD3 on the same configs: `model.train(gradient_steps=N)` on a filled buffer.

Matches our setup: a custom features extractor with exactly our CNN (convs + ReLU, flatten,
Linear + ReLU; images / 255 by SB3's `normalize_images`), `share_features_extractor=False`
(separate actor and critic CNNs, as ours), the same `net_arch`, batch size, policy delay,
target noise and clip, tau and gamma. State configs use `MlpPolicy` (identity features).
SB3 samples its own replay buffer inside `train`, so its time includes sampling, as ours does.
"""

import argparse
import json
import os
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import TD3
from stable_baselines3.common.logger import configure
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class OurCnn(BaseFeaturesExtractor):
    """src/train/nets.rs `Encoder`: conv stack (ReLU) → flatten → Linear → ReLU."""

    def __init__(self, observation_space, channels, kernels, strides, feature_dim):
        super().__init__(observation_space, feature_dim)
        ch, side = observation_space.shape[0], observation_space.shape[2]
        layers = []
        for o, k, s in zip(channels, kernels, strides):
            layers += [nn.Conv2d(ch, o, k, s), nn.ReLU()]
            ch, side = o, (side - k) // s + 1
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        self.linear = nn.Sequential(nn.Linear(ch * side * side, feature_dim), nn.ReLU())

    def forward(self, x):
        return self.linear(self.cnn(x))


class SpacesOnly(gym.Env):
    """Carries the observation and action spaces; training never steps it."""

    def __init__(self, c):
        shape = tuple(c["obs_shape"])
        if c["pixels"]:
            self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        else:
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape, np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (c["act_dim"],), np.float32)

    def reset(self, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def make_model(c):
    net_arch = dict(pi=list(c["actor_hidden"]), qf=list(c["critic_hidden"]))
    if c["pixels"]:
        policy = "CnnPolicy"
        kwargs = dict(
            features_extractor_class=OurCnn,
            features_extractor_kwargs=dict(
                channels=c["channels"],
                kernels=c["kernels"],
                strides=c["strides"],
                feature_dim=c["feature_dim"],
            ),
            net_arch=net_arch,
            share_features_extractor=False,
            normalize_images=True,
        )
    else:
        policy = "MlpPolicy"
        kwargs = dict(net_arch=net_arch)
    model = TD3(
        policy,
        SpacesOnly(c),
        buffer_size=c["fill"],
        batch_size=c["batch"],
        learning_starts=0,
        tau=c["tau"],
        gamma=c["discount"],
        policy_delay=c["policy_delay"],
        target_policy_noise=c["policy_noise"],
        target_noise_clip=c["noise_clip"],
        policy_kwargs=kwargs,
        device="cpu",
        seed=0,
        verbose=0,
    )
    model.set_logger(configure(None, []))
    rb = model.replay_buffer
    rng = np.random.default_rng(0)
    if c["pixels"]:
        rb.observations[:] = rng.integers(0, 256, rb.observations.shape, dtype=np.uint8)
        rb.next_observations[:] = rng.integers(0, 256, rb.next_observations.shape, dtype=np.uint8)
    else:
        rb.observations[:] = rng.standard_normal(rb.observations.shape)
        rb.next_observations[:] = rng.standard_normal(rb.next_observations.shape)
    rb.actions[:] = rng.uniform(-1, 1, rb.actions.shape)
    rb.rewards[:] = -1.0
    rb.dones[:] = 0.0
    rb.full, rb.pos = True, 0
    return model


def bench(c):
    torch.manual_seed(0)
    model = make_model(c)
    model.train(gradient_steps=c["warmup"], batch_size=c["batch"])
    per_round = max(1, c["updates"] // c["rounds"])
    rounds = []
    for _ in range(c["rounds"]):
        t = time.perf_counter()
        model.train(gradient_steps=per_round, batch_size=c["batch"])
        rounds.append(per_round / (time.perf_counter() - t))
    best = max(rounds)
    return {
        "config": c["name"],
        "device": "cpu",
        "updates": per_round * c["rounds"],
        "updates_per_s": best,
        "rounds_per_s": rounds,
        "ms_per_update": 1e3 / best,
        "flops_per_update": c["flops_per_update"],
        "gflops": c["flops_per_update"] * best / 1e9,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--configs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import stable_baselines3

    only = set(args.only.split(",")) if args.only else None
    results = []
    for c in json.load(open(args.configs)):
        if only and c["name"] not in only:
            continue
        r = bench(c)
        print(f"sb3_td3: {c['name']:<26} {r['updates_per_s']:9.2f} updates/s {r['ms_per_update']:8.2f} ms", flush=True)
        results.append(r)
    out = {
        "implementation": "sb3",
        "threads": args.threads,
        "stable_baselines3": stable_baselines3.__version__,
        "results": results,
    }
    with open(args.out + ".tmp", "w") as f:
        json.dump(out, f, indent=2)
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
