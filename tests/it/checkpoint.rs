//! Checkpoints through the binary (tch's global RNG is shared between tests of one process):
//! a resumed run repeats an uninterrupted one value for value, and a bad checkpoint is a clear error.

use crate::common::{bin, metrics_values as metrics, text};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Tiny pixel lane-keep config; 25-step episodes so a checkpoint at env step 60 is mid-episode.
fn config(dir: &Path) -> PathBuf {
    let cfg = dir.join("cfg.yaml");
    std::fs::write(
        &cfg,
        "device: cpu\nenv: { image_size: 24, frame_stack: 2, max_episode_steps: 25 }\nnetworks:\n  cnn: { channels: [8, 8], kernels: [3, 3], strides: [2, 1], feature_dim: 16 }\n  actor: { hidden: [32, 32], learning_rate: 3.0e-4 }\n  critic: { hidden: [32, 32], learning_rate: 3.0e-4 }\ntraining: { batch_size: 16, steps: 120, learning_starts: 20 }\nlogging: { log_every: 10 }\n",
    )
    .unwrap();
    cfg
}

fn train(cfg: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(bin())
        .args(["train", "--config"])
        .arg(cfg)
        .args(["--seed", "3", "--threads", "1", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn record(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap()
}

#[test]
fn resumed_runs_repeat_the_uninterrupted_run_value_for_value() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let whole = tmp.path().join("whole");
    let o = train(&cfg, &whole, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let want = metrics(&whole);
    assert!(want.len() > 8, "{want:?}");

    // Half, checkpoint at the end, then the same command with more steps resumes by itself.
    let halves = tmp.path().join("halves");
    let o = train(&cfg, &halves, &["--steps", "60", "--checkpoint-at-end"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(halves.join("checkpoint/model.safetensors").is_file());
    assert!(halves.join("checkpoint/optimizer.safetensors").is_file());
    assert!(halves.join("checkpoint/replay.safetensors").is_file());
    let o = train(&cfg, &halves, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("resuming from"),
        "{}",
        text(&o)
    );
    assert_eq!(metrics(&halves), want);
    let (a, b) = (record(&whole), record(&halves));
    assert_eq!(b["steps_done"], 120);
    assert_eq!(a["train_steps_done"], b["train_steps_done"]);
    assert_eq!(b["extra"]["resumed_from_env_step"], "60");

    // A crash after a periodic checkpoint: rows written after the checkpoint are cut and redone.
    let crashed = tmp.path().join("crashed");
    let o = train(
        &cfg,
        &crashed,
        &[
            "--set",
            "training.checkpoint_every=50",
            "--set",
            "debug.abort_at_step=70",
        ],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        metrics(&crashed).len() > 4,
        "rows after the checkpoint exist"
    );
    let o = train(
        &cfg,
        &crashed,
        &["--resume", crashed.join("checkpoint").to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(metrics(&crashed), want);
}

#[test]
fn a_corrupted_or_missing_checkpoint_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let out = tmp.path().join("run");
    let o = train(&cfg, &out, &["--steps", "40", "--checkpoint-at-end"]);
    assert!(o.status.success(), "{}", text(&o));

    let missing = tmp.path().join("nowhere/checkpoint");
    let o = train(&cfg, &out, &["--resume", missing.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(err.contains("no checkpoint at"), "{}", text(&o));
    assert!(record(&out)["reason"]
        .as_str()
        .unwrap()
        .contains("cannot resume"));

    let model = out.join("checkpoint/model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    let o = train(
        &cfg,
        &out,
        &["--resume", out.join("checkpoint").to_str().unwrap()],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        err.contains("corrupted checkpoint") && err.contains("model.safetensors"),
        "{}",
        text(&o)
    );
}

/// A fresh start (another config) in a folder holding an earlier attempt's checkpoint removes it:
/// otherwise running the first config again would "resume" from it and trim the second run's
/// metrics.csv to the old checkpoint's length.
#[test]
fn a_fresh_start_removes_the_earlier_attempts_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let out = tmp.path().join("run");
    // Config A stops half way with a checkpoint.
    let o = train(&cfg, &out, &["--steps", "60", "--checkpoint-at-end"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.join("checkpoint").is_dir());
    // Config B in the same folder starts from zero and takes the folder over.
    let o = train(
        &cfg,
        &out,
        &["--set", "networks.cnn.actor_cnn_lr=1e-5", "--steps", "80"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!out.join("checkpoint").exists(), "{}", text(&o));
    let b_rows = metrics(&out);
    // Config A again: nothing to resume from, so it starts from zero and writes its own rows.
    let o = train(&cfg, &out, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("resuming from"),
        "{}",
        text(&o)
    );
    let whole = tmp.path().join("whole");
    assert!(train(&cfg, &whole, &[]).status.success());
    assert_eq!(metrics(&out), metrics(&whole));
    assert_ne!(metrics(&out), b_rows);
}
