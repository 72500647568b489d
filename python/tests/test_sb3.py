"""MonitoredTD3: SB3's TD3 updates, unchanged, with td3-sweep's metrics logged from inside them."""

import csv
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")
from stable_baselines3 import TD3  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402

from td3sweep import COLUMNS, Monitor  # noqa: E402
from td3sweep.sb3 import MonitoredTD3, MonitorEval  # noqa: E402

SMALL = dict(learning_starts=100, batch_size=64, seed=0, policy_kwargs=dict(net_arch=[32, 32]),
             device="cpu")


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_pendulum_rows_are_finite_with_the_expected_columns(tmp_path):
    path = tmp_path / "metrics.csv"
    mon = Monitor(path=path, log_every=50)
    model = MonitoredTD3("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=1, seed=0), monitor=mon, **SMALL)
    evaluation = MonitorEval(mon, lambda: make_vec_env("Pendulum-v1", n_envs=1), every=200,
                             episodes=1, seed=0, learning_starts=100)
    model.learn(400, callback=evaluation)
    mon.close()
    with open(path) as f:
        assert f.readline().strip() == ",".join(COLUMNS)
    rows = read(path)
    # The untrained baseline, then one row per 50 of the 300 updates (env steps 101..400).
    assert [int(r["train_step"]) for r in rows] == [0, 50, 100, 150, 200, 250, 300]
    assert rows[0]["eval_return"] and rows[0]["critic_loss"] == ""
    train = rows[1:]
    assert [int(r["env_step"]) for r in train] == [150, 200, 250, 300, 350, 400]
    for r in train:
        for col in ("critic_head_grad_norm", "actor_head_grad_norm", "q_mean", "q_abs_max",
                    "target_q_mean", "critic_loss", "actor_loss"):
            assert math.isfinite(float(r[col])), (col, r)
        assert float(r["critic_head_grad_norm"]) > 0 and float(r["actor_head_grad_norm"]) > 0
        assert r["actor_cnn_grad_norm"] == r["critic_cnn_grad_norm"] == ""  # state: no CNN
    # Evaluations after learning_starts at env steps 200 and 400, each in the row of that step.
    assert [r["env_step"] for r in train if r["eval_return"]] == ["200", "400"]
    assert int(train[-1]["episodes"]) == 2 and float(train[-1]["episode_return"]) < 0


def test_training_is_sb3s_own_update_for_update():
    def weights(cls, **extra):
        model = cls("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=1, seed=0), **SMALL, **extra)
        model.learn(250)
        return [p.detach().clone() for p in model.policy.parameters()], model._n_updates

    plain, n_plain = weights(TD3)
    monitored, n_mon = weights(MonitoredTD3, monitor=Monitor(path="/dev/null", log_every=10**9))
    assert n_plain == n_mon == 150
    for a, b in zip(plain, monitored):
        assert torch.equal(a, b)


class TinyImages(gym.Env):
    """Random 36x36 frames (NatureCNN's smallest input), a 1-d action; enough to train a CNN."""

    observation_space = gym.spaces.Box(0, 255, (36, 36, 1), np.uint8)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.integers(0, 256, (36, 36, 1), dtype=np.uint8), {}

    def step(self, action):
        self.t += 1
        obs = self.np_random.integers(0, 256, (36, 36, 1), dtype=np.uint8)
        return obs, float(-abs(action[0] - 0.5)), False, self.t >= 50, {}


def test_cnn_gradient_norms_are_measured_for_each_net(tmp_path):
    path = tmp_path / "metrics.csv"
    mon = Monitor(path=path, log_every=20)
    model = MonitoredTD3("CnnPolicy", make_vec_env(TinyImages, n_envs=1, seed=0), monitor=mon,
                         learning_starts=40, batch_size=8, buffer_size=200, seed=0, device="cpu",
                         policy_kwargs=dict(net_arch=[16], features_extractor_kwargs=dict(features_dim=16)))
    model.learn(100)
    mon.close()
    rows = read(path)
    assert [r["train_step"] for r in rows] == ["20", "40", "60"]
    for r in rows:
        actor, critic = float(r["actor_cnn_grad_norm"]), float(r["critic_cnn_grad_norm"])
        assert actor > 0 and critic > 0 and actor != critic


def test_without_a_monitor_it_trains_as_td3():
    model = MonitoredTD3("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=1, seed=0), **SMALL)
    model.learn(150)
    assert model._n_updates == 50
