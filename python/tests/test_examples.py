"""The examples' trainers, run as td3-sweep runs them: a subprocess with TD3SWEEP_* set.

Each runs a few hundred steps from its shipped config, shrunk (learning_starts, batch, network)
so the whole file stays within seconds; the config is written as JSON, which is YAML too.
"""

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from td3sweep import COLUMNS, load_config

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "python"


def run_env(run_dir: Path, config: Path, steps: int, seed: int = 0, **extra) -> dict:
    env = dict(os.environ)
    env.update({
        "TD3SWEEP_CONFIG": str(config), "TD3SWEEP_RUN_DIR": str(run_dir),
        "TD3SWEEP_SEED": str(seed), "TD3SWEEP_STEPS": str(steps), "TD3SWEEP_RUN_ID": run_dir.name,
        "TD3SWEEP_METRICS": str(run_dir / "trainer_metrics.csv"),
        "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": str(PKG) + os.pathsep + env.get("PYTHONPATH", ""),
    })
    env.pop("TD3SWEEP_RESUME_FROM", None)
    env.update(extra)
    return env


def shrunk(src: Path, dest: Path, **changes) -> Path:
    cfg = load_config(src)
    for dotted, value in changes.items():
        node = cfg
        *parents, last = dotted.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    dest.write_text(json.dumps(cfg))
    return dest


def rows(run_dir: Path):
    with open(run_dir / "trainer_metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_sb3_example_runs_under_the_harness_environment(tmp_path):
    cfg = shrunk(REPO / "examples/sb3/config/pendulum.yaml", tmp_path / "cfg.json",
                 td3__learning_starts=100, td3__batch_size=32, td3__net_arch=[32, 32],
                 evaluation__every=100, evaluation__episodes=1, logging__log_every=50)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    out = subprocess.run([sys.executable, "train.py"], cwd=REPO / "examples/sb3",
                         env=run_env(run_dir, cfg, 300), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = rows(run_dir)
    assert list(got[0]) == list(COLUMNS)
    assert [r["train_step"] for r in got] == ["0", "50", "100", "150", "200"]
    assert all(math.isfinite(float(r["critic_loss"])) for r in got[1:])
    assert [r["env_step"] for r in got if r["eval_return"]] == ["0", "200", "300"]


def test_sb3_example_outside_a_sweep_names_the_missing_variables(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TD3SWEEP_")}
    env["PYTHONPATH"] = str(PKG)
    out = subprocess.run([sys.executable, "train.py", "--config", "config/pendulum.yaml"],
                         cwd=REPO / "examples/sb3", env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "TD3SWEEP_METRICS" in out.stderr and "Traceback" not in out.stderr


def _torch_agent_cfg(tmp_path: Path) -> Path:
    return shrunk(REPO / "examples/torch_agent/config/td3_config.yaml", tmp_path / "cfg.json",
                  training__learning_starts=150, training__batch_size=4,
                  networks__actor__hidden=[16], networks__critic__hidden=[16],
                  evaluation__every=100, evaluation__episodes=1, logging__log_every=25)


def test_torch_agent_runs_checkpoints_and_resumes(tmp_path):
    """A ladder stage with `trainer.resume: true`: the same run folder and metrics file, with
    TD3SWEEP_RESUME_FROM naming the folder whose checkpoint to continue from."""
    cfg = _torch_agent_cfg(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    agent = REPO / "examples/torch_agent"
    out = subprocess.run([sys.executable, "train.py"], cwd=agent, env=run_env(run_dir, cfg, 200),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = rows(run_dir)
    assert [r["train_step"] for r in got] == ["0", "25", "50"]
    assert got[-1]["eval_return"] and float(got[-1]["actor_cnn_grad_norm"]) >= 0
    assert float(got[-1]["critic_cnn_grad_norm"]) > 0
    assert (run_dir / "checkpoint.pt").is_file()

    env = run_env(run_dir, cfg, 250, TD3SWEEP_RESUME_FROM=str(run_dir))
    out = subprocess.run([sys.executable, "train.py"], cwd=agent, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "resumed from" in out.stdout
    # One header, no second baseline: the updates continue from the checkpoint's 50 to 100.
    assert (run_dir / "trainer_metrics.csv").read_text().count("train_step") == 1
    got = rows(run_dir)
    assert [r["train_step"] for r in got] == ["0", "25", "50", "75", "100"]
    assert [r["env_step"] for r in got[-2:]] == ["225", "250"]


def test_torch_agent_exits_promptly_on_sigterm(tmp_path):
    cfg = _torch_agent_cfg(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "train.py"], cwd=REPO / "examples/torch_agent",
                            env=run_env(run_dir, cfg, 100000), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        # Wait until it trains (a row past the baseline), then stop it.
        deadline = time.monotonic() + 60
        metrics = run_dir / "trainer_metrics.csv"
        while proc.poll() is None and time.monotonic() < deadline:
            if metrics.exists() and len(rows(run_dir)) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        assert code == 128 + signal.SIGTERM
        assert time.monotonic() - sent < 5
        assert not (run_dir / "checkpoint.pt").exists()  # stopped, not finished
    finally:
        if proc.poll() is None:
            proc.kill()
