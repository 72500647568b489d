"""Monitor: the CSV contract with the harness (header, flushed rows, resume, names, errors)."""

import csv
import math

import pytest

from td3sweep import COLUMNS, METRICS, HarnessError, Monitor, MonitorError

HEADER = ",".join(COLUMNS)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_header_then_rows_each_flushed_before_close(harness_env):
    mon = Monitor()
    path = harness_env["TD3SWEEP_METRICS"]
    # Read while the Monitor is still open: what the harness sees mid-run.
    assert open(path).read() == HEADER + "\n"
    mon.log(100, env_step=200, critic_loss=0.5, q_abs_max=3.0)
    got = rows(path)
    assert len(got) == 1
    assert got[0]["train_step"] == "100"
    assert got[0]["env_step"] == "200"
    assert float(got[0]["critic_loss"]) == 0.5
    assert got[0]["actor_cnn_grad_norm"] == ""  # not measured
    assert float(got[0]["wall_s"]) >= 0
    mon.close()


def test_columns_are_the_criteria_names():
    assert COLUMNS[0] == "train_step" and "wall_s" in COLUMNS
    assert set(METRICS) == {
        "train_step", "env_step", "actor_cnn_grad_norm", "critic_cnn_grad_norm",
        "actor_head_grad_norm", "critic_head_grad_norm", "q_mean", "q_abs_max",
        "target_q_mean", "actor_loss", "critic_loss", "episode_return", "eval_return", "episodes",
    }


def test_properties_come_from_the_environment(harness_env, tmp_path, monkeypatch):
    monkeypatch.setenv("TD3SWEEP_RESUME_FROM", str(tmp_path / "stage0"))
    with Monitor() as mon:
        assert mon.seed == 7 and mon.steps == 1000
        assert mon.config == harness_env["TD3SWEEP_CONFIG"]
        assert mon.run_dir == harness_env["TD3SWEEP_RUN_DIR"]
        assert mon.run_id == "lr=1e-4_s7"
        assert mon.resume_from == str(tmp_path / "stage0")


def test_outside_a_sweep_the_error_names_the_missing_variables(monkeypatch):
    for k in ("TD3SWEEP_CONFIG", "TD3SWEEP_RUN_DIR", "TD3SWEEP_SEED", "TD3SWEEP_STEPS",
              "TD3SWEEP_RUN_ID", "TD3SWEEP_METRICS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("TD3SWEEP_SEED", "0")
    with pytest.raises(HarnessError) as e:
        Monitor()
    msg = str(e.value)
    assert "TD3SWEEP_METRICS" in msg and "TD3SWEEP_CONFIG" in msg
    assert "TD3SWEEP_SEED" not in msg
    assert "path=" in msg


def test_a_path_works_outside_a_sweep(tmp_path, monkeypatch):
    monkeypatch.delenv("TD3SWEEP_METRICS", raising=False)
    monkeypatch.delenv("TD3SWEEP_SEED", raising=False)
    with Monitor(path=tmp_path / "sub" / "m.csv") as mon:
        assert mon.seed is None and mon.resume_from is None
        mon.log(1, critic_loss=1.0)
    assert len(rows(tmp_path / "sub" / "m.csv")) == 1


def test_unknown_metric_names_are_errors_that_list_the_valid_ones(tmp_path):
    with Monitor(path=tmp_path / "m.csv") as mon:
        with pytest.raises(MonitorError) as e:
            mon.log(1, q_max=3.0)
        assert "'q_max'" in str(e.value) and "q_abs_max" in str(e.value)
        with pytest.raises(MonitorError):
            mon.record(actor_cnn_gn=1.0)
        with pytest.raises(MonitorError) as e:
            mon.note(q_mean=1.0)
        assert "record()" in str(e.value)
        with pytest.raises(MonitorError):
            mon.log(1.5)
        with pytest.raises(MonitorError):
            mon.log(1, q_mean="high")


def test_non_finite_values_are_written_as_nan_and_inf(tmp_path):
    path = tmp_path / "m.csv"
    with Monitor(path=path) as mon:
        mon.log(1, q_mean=float("nan"), q_abs_max=float("inf"), target_q_mean=-math.inf)
    r = rows(path)[0]
    assert (r["q_mean"], r["q_abs_max"], r["target_q_mean"]) == ("nan", "inf", "-inf")


def test_record_aggregates_as_the_built_in_trainer(tmp_path):
    path = tmp_path / "m.csv"
    mon = Monitor(path=path, log_every=3)
    mon.record(critic_cnn_grad_norm=1.0, critic_loss=1.0, q_mean=1.0, q_abs_max=5.0, env_step=10,
               episode_return=-100.0, episodes=1)
    mon.note(eval_return=-50.0)
    mon.record(critic_cnn_grad_norm=7.0, critic_loss=2.0, q_mean=2.0, q_abs_max=2.0, env_step=11,
               actor_loss=-4.0, actor_cnn_grad_norm=0.5)
    assert len(rows(path)) == 0  # nothing until log_every updates
    mon.record(critic_cnn_grad_norm=3.0, critic_loss=6.0, q_mean=3.0, q_abs_max=1.0, env_step=12)
    mon.record(critic_loss=1.0, env_step=13)
    mon.close()  # writes the partial window
    first, second = rows(path)
    assert first["train_step"] == "3" and first["env_step"] == "12"
    assert float(first["critic_cnn_grad_norm"]) == 7.0  # max
    assert float(first["q_abs_max"]) == 5.0  # max
    assert float(first["critic_loss"]) == 3.0  # mean
    assert float(first["q_mean"]) == 2.0
    assert float(first["actor_loss"]) == -4.0  # mean over the updates that had one
    assert float(first["actor_cnn_grad_norm"]) == 0.5
    assert float(first["eval_return"]) == -50.0
    assert first["episodes"] == "1"
    # The partial window: latest values persist, per-window ones do not, eval only once.
    assert second["train_step"] == "4" and second["env_step"] == "13"
    assert float(second["episode_return"]) == -100.0 and second["episodes"] == "1"
    assert second["critic_cnn_grad_norm"] == "" and second["eval_return"] == ""
    assert float(second["critic_loss"]) == 1.0


def test_a_non_finite_update_is_written_at_once_and_wins_the_max(tmp_path):
    path = tmp_path / "m.csv"
    mon = Monitor(path=path, log_every=100)
    mon.record(critic_cnn_grad_norm=1e9)
    mon.record(critic_cnn_grad_norm=float("nan"))
    got = rows(path)
    assert len(got) == 1 and got[0]["train_step"] == "2"
    assert got[0]["critic_cnn_grad_norm"] == "nan"


def test_resume_appends_without_a_second_header_and_continues_steps(tmp_path):
    path = tmp_path / "m.csv"
    with Monitor(path=path, log_every=2) as mon:
        mon.log(0, eval_return=-1000.0)
        for i in range(4):
            mon.record(critic_loss=1.0, env_step=100 + 10 * i, episodes=2)
    wall_before = float(rows(path)[-1]["wall_s"])
    # A kill mid-write leaves half a row; the resumed Monitor drops it.
    with open(path, "a") as f:
        f.write("6,6,0.1,")
    with Monitor(path=path, log_every=2) as mon:
        assert mon.last_train_step == 4
        mon.record(critic_loss=2.0)
        mon.record(critic_loss=2.0)
    text = open(path).read()
    assert text.count("train_step") == 1
    got = rows(path)
    assert [r["train_step"] for r in got] == ["0", "2", "4", "6"]
    assert float(got[-1]["wall_s"]) >= wall_before
    # The run-so-far values go on from the last row until the trainer reports new ones.
    assert (got[-1]["env_step"], got[-1]["episodes"]) == ("130", "2")


def test_a_file_with_another_header_is_refused(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("step,loss\n1,2\n")
    with pytest.raises(MonitorError) as e:
        Monitor(path=path)
    assert "another header" in str(e.value)


def test_with_block_leaves_out_the_partial_window_after_an_exception(tmp_path):
    path = tmp_path / "m.csv"
    with pytest.raises(SystemExit):
        with Monitor(path=path, log_every=10) as mon:
            mon.record(critic_loss=1.0)
            raise SystemExit(143)
    assert rows(path) == []
