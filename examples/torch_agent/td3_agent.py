"""A small vision TD3 agent in plain PyTorch, written the way the seed project's is.

The actor and the critic each have their own CNN encoder with its own Adam optimizer, next to the
optimizers of the actor's and the critics' MLP heads. The CNN rates come from the config's
`networks.cnn` section: `actor_cnn_lr` and `critic_cnn_lr`, each falling back to the legacy
`learning_rate` (the seed's Day 11 change). TD3 as Fujimoto et al. (2018): twin critics, target
policy smoothing, delayed actor and target updates.

The lines marked `# td3sweep` are the ones added to instrument the agent for td3-sweep: the
gradient norms before clipping and the Q statistics of each update.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from td3sweep import get, grad_norm, q_stats  # td3sweep


class CNN(nn.Module):
    """Conv layers with ReLU, then a linear layer with ReLU: frames (uint8) to a feature vector."""

    def __init__(self, in_channels: int, image_size: int, cfg: dict) -> None:
        super().__init__()
        layers, c = [], in_channels
        for out, k, s in zip(cfg["channels"], cfg["kernels"], cfg["strides"]):
            layers += [nn.Conv2d(c, out, k, s), nn.ReLU()]
            c = out
        self.convs = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, in_channels, image_size, image_size)).shape[1]
        self.fc = nn.Linear(flat, cfg["feature_dim"])

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(self.convs(frames.float() / 255.0)))


def mlp(inp: int, hidden: list, out: int) -> nn.Sequential:
    layers, d = [], inp
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU()]
        d = h
    return nn.Sequential(*layers, nn.Linear(d, out))


class Actor(nn.Module):
    def __init__(self, feature_dim: int, action_dim: int, hidden: list) -> None:
        super().__init__()
        self.net = mlp(feature_dim, hidden, action_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(features))


class Critic(nn.Module):
    """Twin Q heads on the critic CNN's features."""

    def __init__(self, feature_dim: int, action_dim: int, hidden: list) -> None:
        super().__init__()
        self.q1 = mlp(feature_dim + action_dim, hidden, 1)
        self.q2 = mlp(feature_dim + action_dim, hidden, 1)

    def forward(self, features: torch.Tensor, action: torch.Tensor):
        x = torch.cat([features, action], 1)
        return self.q1(x), self.q2(x)


class ReplayBuffer:
    """Transitions in preallocated arrays; frames stay uint8."""

    def __init__(self, obs_shape, action_dim: int, capacity: int) -> None:
        self.obs = np.zeros((capacity, *obs_shape), np.uint8)
        self.next_obs = np.zeros((capacity, *obs_shape), np.uint8)
        self.actions = np.zeros((capacity, action_dim), np.float32)
        self.rewards = np.zeros((capacity, 1), np.float32)
        self.not_done = np.zeros((capacity, 1), np.float32)
        self.capacity, self.ptr, self.size = capacity, 0, 0

    def add(self, obs, action, reward, next_obs, terminated: bool) -> None:
        i = self.ptr
        self.obs[i], self.actions[i], self.rewards[i] = obs, action, reward
        self.next_obs[i], self.not_done[i] = next_obs, 0.0 if terminated else 1.0
        self.ptr = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator, device):
        idx = rng.integers(0, self.size, size=batch_size)
        t = lambda a: torch.as_tensor(a[idx], device=device)  # noqa: E731
        return t(self.obs), t(self.actions), t(self.rewards), t(self.next_obs), t(self.not_done)

    def state_dict(self) -> dict:
        n = self.size
        return {"obs": self.obs[:n], "next_obs": self.next_obs[:n], "actions": self.actions[:n],
                "rewards": self.rewards[:n], "not_done": self.not_done[:n], "ptr": self.ptr}

    def load_state_dict(self, s: dict) -> None:
        n = len(s["obs"])
        for k in ("obs", "next_obs", "actions", "rewards", "not_done"):
            getattr(self, k)[:n] = s[k]
        self.size, self.ptr = n, s["ptr"]


class TD3Agent:
    """The seed's agent shape: actor_cnn, critic_cnn, actor, critic, each with its own optimizer."""

    def __init__(self, obs_shape, action_dim: int, config: dict, device: torch.device) -> None:
        self.device = device
        net, train = config["networks"], config["training"]
        cnn_config = net["cnn"]
        channels, image_size = obs_shape[0], obs_shape[1]
        self.actor_cnn = CNN(channels, image_size, cnn_config).to(device)
        self.critic_cnn = CNN(channels, image_size, cnn_config).to(device)
        fd = cnn_config["feature_dim"]
        self.actor = Actor(fd, action_dim, net["actor"]["hidden"]).to(device)
        self.critic = Critic(fd, action_dim, net["critic"]["hidden"]).to(device)
        self.targets = {name: _frozen_copy(getattr(self, name))
                        for name in ("actor_cnn", "critic_cnn", "actor", "critic")}

        # The seed's Day 11 change: separate CNN rates, each falling back to `learning_rate`.
        fallback = get(config, "networks.cnn.learning_rate", 1e-4)
        self.actor_cnn_lr = get(config, "networks.cnn.actor_cnn_lr", fallback)
        self.critic_cnn_lr = get(config, "networks.cnn.critic_cnn_lr", fallback)
        self.actor_cnn_optimizer = torch.optim.Adam(self.actor_cnn.parameters(), lr=self.actor_cnn_lr)
        self.critic_cnn_optimizer = torch.optim.Adam(self.critic_cnn.parameters(), lr=self.critic_cnn_lr)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=net["actor"]["learning_rate"])
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=net["critic"]["learning_rate"])
        print(f"  Actor CNN optimizer lr={self.actor_cnn_lr}, Critic CNN optimizer lr={self.critic_cnn_lr}",
              flush=True)

        self.discount, self.tau = train["discount"], train["tau"]
        self.policy_noise, self.noise_clip = train["policy_noise"], train["noise_clip"]
        self.policy_delay = train["policy_delay"]
        self.actor_cnn_clip = get(config, "training.actor_cnn_grad_clip.max_norm")
        self.critic_cnn_clip = get(config, "training.critic_cnn_grad_clip.max_norm")
        self.total_it = 0

    @torch.no_grad()
    def select_action(self, obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(obs, device=self.device).unsqueeze(0)
        return self.actor(self.actor_cnn(x))[0].cpu().numpy()

    def train(self, batch) -> dict:
        """One TD3 update; returns its measurements for the log."""
        self.total_it += 1
        obs, action, reward, next_obs, not_done = batch
        tg = self.targets
        with torch.no_grad():
            noise = (torch.randn_like(action) * self.policy_noise).clamp(-self.noise_clip, self.noise_clip)
            next_action = (tg["actor"](tg["actor_cnn"](next_obs)) + noise).clamp(-1.0, 1.0)
            tq1, tq2 = tg["critic"](tg["critic_cnn"](next_obs), next_action)
            target_q = reward + not_done * self.discount * torch.min(tq1, tq2)

        current_q1, current_q2 = self.critic(self.critic_cnn(obs), action)
        critic_loss = F.mse_loss(current_q1, target_q) + F.mse_loss(current_q2, target_q)
        self.critic_cnn_optimizer.zero_grad()
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        metrics = {  # td3sweep: the critic's norms, after backward and before any clip or step
            "critic_cnn_grad_norm": grad_norm(self.critic_cnn),  # td3sweep
            "critic_head_grad_norm": grad_norm(self.critic),  # td3sweep
            **q_stats((current_q1, current_q2)),  # td3sweep
            "target_q_mean": target_q.mean().item(),  # td3sweep
            "critic_loss": critic_loss.item(),
        }
        if self.critic_cnn_clip is not None:
            nn.utils.clip_grad_norm_(self.critic_cnn.parameters(), self.critic_cnn_clip)
        self.critic_cnn_optimizer.step()
        self.critic_optimizer.step()

        if self.total_it % self.policy_delay == 0:
            # The critic's features are detached: the actor loss trains the actor and its CNN only.
            features = self.critic_cnn(obs).detach()
            actor_loss = -self.critic.q1(torch.cat([features, self.actor(self.actor_cnn(obs))], 1)).mean()
            self.actor_cnn_optimizer.zero_grad()
            self.actor_optimizer.zero_grad()
            actor_loss.backward()
            metrics["actor_cnn_grad_norm"] = grad_norm(self.actor_cnn)  # td3sweep
            metrics["actor_head_grad_norm"] = grad_norm(self.actor)  # td3sweep
            metrics["actor_loss"] = actor_loss.item()
            if self.actor_cnn_clip is not None:
                nn.utils.clip_grad_norm_(self.actor_cnn.parameters(), self.actor_cnn_clip)
            self.actor_cnn_optimizer.step()
            self.actor_optimizer.step()
            self._soft_update()
        return metrics

    @torch.no_grad()
    def _soft_update(self) -> None:
        for name, target in self.targets.items():
            for tp, p in zip(target.parameters(), getattr(self, name).parameters()):
                tp.lerp_(p, self.tau)

    _NETS = ("actor_cnn", "critic_cnn", "actor", "critic")
    _OPTIMIZERS = ("actor_cnn_optimizer", "critic_cnn_optimizer", "actor_optimizer", "critic_optimizer")

    def state_dict(self) -> dict:
        s = {n: getattr(self, n).state_dict() for n in self._NETS + self._OPTIMIZERS}
        s["targets"] = {n: t.state_dict() for n, t in self.targets.items()}
        s["total_it"] = self.total_it
        return s

    def load_state_dict(self, s: dict) -> None:
        for n in self._NETS + self._OPTIMIZERS:
            getattr(self, n).load_state_dict(s[n])
        for n, t in self.targets.items():
            t.load_state_dict(s["targets"][n])
        self.total_it = s["total_it"]


def _frozen_copy(module: nn.Module) -> nn.Module:
    import copy

    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target
