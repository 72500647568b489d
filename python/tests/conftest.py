"""Shared fixtures: a fake harness environment under a temporary run directory."""

import pytest


@pytest.fixture
def harness_env(tmp_path, monkeypatch):
    """Sets the TD3SWEEP_* variables a run gets, as `td3-sweep sweep` sets them; returns them."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = run_dir / "config.yaml"
    config.write_text("seed: 0\n")
    env = {
        "TD3SWEEP_CONFIG": str(config),
        "TD3SWEEP_RUN_DIR": str(run_dir),
        "TD3SWEEP_SEED": "7",
        "TD3SWEEP_STEPS": "1000",
        "TD3SWEEP_RUN_ID": "lr=1e-4_s7",
        "TD3SWEEP_METRICS": str(run_dir / "trainer_metrics.csv"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("TD3SWEEP_RESUME_FROM", raising=False)
    return env
