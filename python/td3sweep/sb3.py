"""Stable-Baselines3's TD3 with td3-sweep's metrics logged from inside its updates: `MonitoredTD3`.

Also `MonitorEval`, a callback that runs td3-sweep's evaluation protocol (an untrained baseline,
then deterministic episodes on separately seeded env resets every `every` env steps after
`learning_starts`) and hands the mean return to the Monitor as `eval_return`.

Needs torch and stable-baselines3 (`pip install ./python[sb3]`); `import td3sweep` alone does not
import this module.
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np
import torch as th
from stable_baselines3 import TD3
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import polyak_update
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from torch.nn import functional as F

from .monitor import Monitor
from .stats import grad_norm, q_stats

#: The Stable-Baselines3 version whose `TD3.train` `MonitoredTD3.train` reproduces.
SB3_TRAIN_VERSION = "2.9.2"


class MonitoredTD3(TD3):
    """SB3's `TD3`, whose `train()` also writes td3-sweep's metrics to `monitor`.

    `train()` is SB3 2.9.2's `TD3.train`, step for step (same sampling, losses, optimizer steps and
    Polyak updates, so the same seed trains the same weights), with measurements added:

    - `critic_cnn_grad_norm` / `critic_head_grad_norm`: the critic's features extractor and its
      Q networks, read right after `critic_loss.backward()`, before the optimizer step;
    - `actor_cnn_grad_norm` / `actor_head_grad_norm`: the actor's features extractor and `mu`,
      right after `actor_loss.backward()` (delayed updates only);
    - `q_mean` (Q1's batch mean), `q_abs_max` (largest |Q| of both critics), `target_q_mean`,
      `critic_loss`, `actor_loss`;
    - `episode_return` (the newest finished episode in `ep_info_buffer`), `episodes`,
      `env_step` = `num_timesteps` and `train_step` = `_n_updates`.

    The CNN norms are empty for a features extractor without parameters (`FlattenExtractor`, state
    observations), and the critic's when it shares the actor's extractor (it then trains only
    through the actor loss). The monitor aggregates the updates into a row every `log_every`.

    Why not a callback: a callback runs between `train()` calls, not inside them. By then the
    actor's `.grad` holds only the last delayed update's gradient, and the critic's `.grad` is not
    the critic's gradient at all: `actor_loss.backward()` flows through `critic.q1_forward` and
    adds the actor loss's gradient to the critic's Q1 parameters after the critic's own step. With
    `gradient_steps > 1` every update but the last is lost too. The norms before the optimizer
    steps exist only inside `train()`.

    `monitor` may be None (SB3's `load()` builds the model without it): set `model.monitor` later.
    It is not saved with the model.
    """

    def __init__(self, *args, monitor: Optional[Monitor] = None, **kwargs) -> None:
        self.monitor = monitor
        super().__init__(*args, **kwargs)

    def _excluded_save_params(self) -> list[str]:
        return super()._excluded_save_params() + ["monitor"]

    def learn(self, *args, **kwargs):
        """SB3's `learn`, then the monitor writes the updates since its last row."""
        model = super().learn(*args, **kwargs)
        if self.monitor is not None:
            self.monitor.write_window()
        return model

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """SB3 2.9.2's `TD3.train`, measuring each update (see the class docs)."""
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)

        # Update learning rate according to lr schedule
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])

        actor_losses, critic_losses = [], []
        for _ in range(gradient_steps):
            self._n_updates += 1
            # Sample replay buffer
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma

            with th.no_grad():
                # Select action according to policy and add clipped noise
                noise = replay_data.actions.clone().data.normal_(0, self.target_policy_noise)
                noise = noise.clamp(-self.target_noise_clip, self.target_noise_clip)
                next_actions = (self.actor_target(replay_data.next_observations) + noise).clamp(-1, 1)

                # Compute the next Q-values: min over all critics targets
                next_q_values = th.cat(self.critic_target(replay_data.next_observations, next_actions), dim=1)
                next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
                target_q_values = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

            # Get current Q-values estimates for each critic network
            current_q_values = self.critic(replay_data.observations, replay_data.actions)

            # Compute critic loss
            critic_loss = sum(F.mse_loss(current_q, target_q_values) for current_q in current_q_values)
            assert isinstance(critic_loss, th.Tensor)
            critic_losses.append(critic_loss.item())

            # Optimize the critics
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            m = self._critic_metrics(current_q_values, target_q_values, critic_losses[-1])  # td3sweep
            self.critic.optimizer.step()

            # Delayed policy updates
            if self._n_updates % self.policy_delay == 0:
                # Compute actor loss
                actor_loss = -self.critic.q1_forward(replay_data.observations, self.actor(replay_data.observations)).mean()
                actor_losses.append(actor_loss.item())

                # Optimize the actor
                self.actor.optimizer.zero_grad()
                actor_loss.backward()
                m.update(self._actor_metrics(actor_losses[-1]))  # td3sweep
                self.actor.optimizer.step()

                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
                # Copy running stats, see GH issue #996
                polyak_update(self.critic_batch_norm_stats, self.critic_batch_norm_stats_target, 1.0)
                polyak_update(self.actor_batch_norm_stats, self.actor_batch_norm_stats_target, 1.0)

            if self.monitor is not None:  # td3sweep
                self.monitor.record(train_step=self._n_updates, **m)

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if len(actor_losses) > 0:
            self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))

    def _critic_metrics(self, current_q_values, target_q_values, critic_loss: float) -> dict:
        """One critic update's measurements, taken after its backward and before its step."""
        if self.monitor is None:
            return {}
        m = dict(q_stats(current_q_values))
        m["target_q_mean"] = float(target_q_values.mean())
        m["critic_loss"] = critic_loss
        # A critic sharing the actor's extractor computes its features without gradient: its CNN
        # is trained (and measured) through the actor loss only.
        shared = getattr(self.policy, "share_features_extractor", False)
        m["critic_cnn_grad_norm"] = None if shared else grad_norm(self.critic.features_extractor)
        m["critic_head_grad_norm"] = grad_norm(self.critic.q_networks)
        m["env_step"] = self.num_timesteps
        m["episodes"] = self._episode_num
        if self.ep_info_buffer:
            m["episode_return"] = float(self.ep_info_buffer[-1]["r"])
        return m

    def _actor_metrics(self, actor_loss: float) -> dict:
        """One delayed actor update's measurements, after its backward and before its step."""
        if self.monitor is None:
            return {}
        return {
            "actor_loss": actor_loss,
            "actor_cnn_grad_norm": grad_norm(self.actor.features_extractor),
            "actor_head_grad_norm": grad_norm(self.actor.mu),
        }


def evaluate(model, env: Union[VecEnv, "object"], episodes: int, seed: int) -> float:
    """Mean undiscounted return of `episodes` deterministic episodes; episode i resets with
    seed `seed + i` (the same starts at every evaluation, as td3-sweep's built-in trainer does).

    `env` is a single-env VecEnv wrapped like the training env (frame stacking included), or a
    Gymnasium env. The policy transposes image observations itself, so a `VecTransposeImage`
    that SB3 added to the training env is not needed here.
    """
    if not isinstance(env, VecEnv):
        env = DummyVecEnv([lambda e=env: e])
    if env.num_envs != 1:
        raise ValueError(f"evaluate: expected a single-env VecEnv, got {env.num_envs} envs")
    total = 0.0
    for i in range(episodes):
        env.seed(seed + i)
        obs = env.reset()
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, dones, _ = env.step(action)
            total += float(reward[0])
            done = bool(dones[0])
    return total / max(episodes, 1)


class MonitorEval(BaseCallback):
    """td3-sweep's evaluation protocol as an SB3 callback, its result logged as `eval_return`.

    At the start of a fresh run (a metrics file without rows) it evaluates the untrained policy
    and writes the baseline row (train_step 0, env_step 0, episodes 0, eval_return), which the
    default criteria's "learning" rule compares the final returns with. Then, every `every` env
    steps after `learning_starts`, it evaluates again; the return goes into the Monitor's next row
    (the update that follows this env step). Episode i of every evaluation resets with seed
    `seed + seed_offset + i`.

    `make_env` builds the evaluation env (called once, at training start): a single-env VecEnv
    wrapped as the training env is, or a Gymnasium env.
    """

    def __init__(
        self,
        monitor: Monitor,
        make_env: Callable[[], object],
        *,
        every: int,
        episodes: int,
        seed: int,
        seed_offset: int = 100,
        learning_starts: int = 0,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.monitor = monitor
        self.make_env = make_env
        self.every = every
        self.episodes = episodes
        self.eval_seed = seed + seed_offset
        self.learning_starts = learning_starts
        self.eval_env = None

    def _evaluate(self) -> float:
        ret = evaluate(self.model, self.eval_env, self.episodes, self.eval_seed)
        if self.verbose:
            print(f"eval at env step {self.num_timesteps}: {ret:.1f}", flush=True)
        return ret

    def _on_training_start(self) -> None:
        if self.every <= 0:
            return
        self.eval_env = self.make_env()
        if self.monitor.last_train_step is None:
            self.monitor.log(0, env_step=0, episodes=0, eval_return=self._evaluate())

    def _on_step(self) -> bool:
        n = self.num_timesteps
        if self.every > 0 and n % self.every == 0 and n > self.learning_starts:
            self.monitor.note(eval_return=self._evaluate())
        return True

    def _on_training_end(self) -> None:
        if self.eval_env is not None:
            self.eval_env.close()
