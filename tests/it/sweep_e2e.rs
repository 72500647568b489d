//! End-to-end sweeps through the real binary: real child processes training through tch on the CPU.

use crate::common::{bin, metrics_values, repo, sweep, text};

use std::path::{Path, PathBuf};
use std::process::Command;

fn summary(results: &Path, name: &str) -> Vec<csv::StringRecord> {
    let mut r = csv::Reader::from_path(results.join(name).join("summary.csv")).unwrap();
    r.records().map(|x| x.unwrap()).collect()
}

fn col(results: &Path, name: &str, column: &str) -> Vec<String> {
    let mut r = csv::Reader::from_path(results.join(name).join("summary.csv")).unwrap();
    let i = r
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == column)
        .unwrap();
    r.records().map(|x| x.unwrap()[i].to_string()).collect()
}

/// A copy of smoke.yaml in a temp folder with extra YAML appended (variants, knobs).
fn smoke_variant(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let smoke = std::fs::read_to_string(repo().join("sweeps/smoke.yaml")).unwrap();
    let base = repo().join("configs/td3.yaml");
    let mut out = String::new();
    for line in smoke.lines() {
        if line.starts_with("name:") {
            out.push_str(&format!("name: {name}\n"));
        } else if line.starts_with("base:") {
            out.push_str(&format!("base: {}\n", base.display()));
        } else if line.starts_with("variants:")
            || line.starts_with("  - name")
            || line.starts_with("    set:")
        {
            // replaced by `extra` when it defines variants
            if extra.contains("variants:") {
                continue;
            }
            out.push_str(line);
            out.push('\n');
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(extra);
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, out).unwrap();
    p
}

#[test]
fn smoke_sweep_trains_in_parallel_then_resumes_without_training() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let out = sweep(&repo().join("sweeps/smoke.yaml"), &res, &["--jobs", "2"]);
    let log = text(&out);
    assert!(matches!(out.status.code(), Some(0 | 10 | 11)), "{log}");
    let rows = summary(&res, "smoke");
    assert!(rows.len() >= 2, "{log}");
    assert!(
        col(&res, "smoke", "outcome")
            .iter()
            .all(|o| o == "completed"),
        "{log}"
    );
    let runs = res.join("smoke/runs");
    let mut metrics = Vec::new();
    for e in std::fs::read_dir(&runs).unwrap() {
        let d = e.unwrap().path();
        for f in [
            "config.yaml",
            "metrics.csv",
            "run.json",
            "stdout.log",
            "stderr.log",
        ] {
            assert!(d.join(f).exists(), "{} missing in {}", f, d.display());
        }
        // run.json records what the sweep set on top of the base config (for the report's advice).
        let rec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("run.json")).unwrap()).unwrap();
        assert_eq!(rec["overrides"]["env.image_size"], "24", "{rec}");
        assert!(rec["overrides"].get("seed").is_none(), "{rec}");
        metrics.push((
            d.join("metrics.csv"),
            std::fs::read(d.join("metrics.csv")).unwrap(),
        ));
    }
    assert!(res.join("smoke/sweep.yaml").exists());
    assert!(res.join("smoke/VALIDATION_smoke.md").exists(), "{log}");
    // Both slots were really used at once: the two runs' time spans overlap.
    assert!(log.contains("slot 0") || log.contains("slot(s)"), "{log}");

    let again = sweep(&repo().join("sweeps/smoke.yaml"), &res, &["--jobs", "2"]);
    let log2 = text(&again);
    assert!(log2.contains("0 to train"), "{log2}");
    for (p, bytes) in metrics {
        assert_eq!(
            std::fs::read(&p).unwrap(),
            bytes,
            "{} changed on resume",
            p.display()
        );
    }
}

#[test]
fn a_crashing_run_is_recorded_and_the_others_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = smoke_variant(
        tmp.path(),
        "crashy",
        "variants:\n  - name: ok\n  - name: boom\n    set: { debug.abort_at_step: 5 }\n",
    );
    let res = tmp.path().join("results");
    let out = sweep(&spec, &res, &["--jobs", "2"]);
    let log = text(&out);
    let outcomes = col(&res, "crashy", "outcome");
    let variants = col(&res, "crashy", "variant");
    for (o, v) in outcomes.iter().zip(&variants) {
        let want = if v == "boom" { "crashed" } else { "completed" };
        assert_eq!(o, want, "{v}: {log}");
    }
    assert!(variants.iter().any(|v| v == "boom") && variants.iter().any(|v| v == "ok"));
    let boom = std::fs::read_dir(res.join("crashy/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("boom"))
        .unwrap();
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(boom.join("run.json")).unwrap()).unwrap();
    assert_eq!(rec["outcome"], "crashed");
    assert!(rec["exit"].as_str().unwrap().contains("SIGABRT"), "{rec}");
    assert!(
        rec["stderr_tail"]
            .as_str()
            .unwrap()
            .contains("abort_at_step"),
        "{rec}"
    );
    assert_eq!(
        out.status.code(),
        Some(11),
        "a crashed run is a FAIL: {log}"
    );
}

#[test]
fn a_second_sweep_on_the_same_results_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    std::fs::create_dir_all(res.join("smoke")).unwrap();
    // A live holder: this test process.
    let holder = serde_json::json!({
        "pid": std::process::id(),
        "host": std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(),
        "started_at": "2026-01-01T00:00:00Z",
        "command": "td3-sweep sweep sweeps/smoke.yaml (the first one)"
    });
    std::fs::write(res.join("smoke/.lock"), holder.to_string()).unwrap();
    // The lock is the kernel's lock on the file, held while this handle is open.
    let held = std::fs::File::open(res.join("smoke/.lock")).unwrap();
    held.try_lock().unwrap();
    let out = sweep(&repo().join("sweeps/smoke.yaml"), &res, &[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("pid {}", std::process::id())) && log.contains("(the first one)"),
        "{log}"
    );
    assert!(!res
        .join("smoke/runs")
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false));
    let still = std::fs::read_to_string(res.join("smoke/.lock")).unwrap();
    assert!(
        still.contains("(the first one)"),
        "the refused sweep left the holder's file alone: {still}"
    );
    drop(held);
}

#[test]
fn same_config_and_seed_give_identical_metrics_on_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("cfg.yaml");
    std::fs::write(
        &cfg,
        "device: cpu\nenv: { image_size: 24, frame_stack: 2 }\nnetworks:\n  cnn: { channels: [8, 8], kernels: [3, 3], strides: [2, 1], feature_dim: 16 }\n  actor: { hidden: [32, 32], learning_rate: 3.0e-4 }\n  critic: { hidden: [32, 32], learning_rate: 3.0e-4 }\ntraining: { batch_size: 16, steps: 120, learning_starts: 20 }\nlogging: { log_every: 10 }\n",
    )
    .unwrap();
    let run = |out: &str| {
        let o = Command::new(bin())
            .args(["train", "--config"])
            .arg(&cfg)
            .args(["--seed", "3", "--threads", "1", "--out"])
            .arg(tmp.path().join(out))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        metrics_values(&tmp.path().join(out))
    };
    let a = run("a");
    let b = run("b");
    assert!(a.len() > 5);
    assert_eq!(a, b);
}

#[test]
fn a_certain_fail_stops_the_run_early_or_only_leaves_evidence() {
    let tmp = tempfile::tempdir().unwrap();
    // A criterion every run fails at its first row: the critic CNN's gradient norm is above 1e-9.
    let criteria = "criteria:\n  rules:\n    - metric: critic_cnn_grad_norm\n      aggregate: max\n      fail_above: 1.0e-9\n";
    let stop = smoke_variant(tmp.path(), "failfast", criteria);
    let res = tmp.path().join("results");
    let out = sweep(&stop, &res, &["--jobs", "2"]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(11), "{log}");
    for (o, r) in col(&res, "failfast", "outcome")
        .iter()
        .zip(col(&res, "failfast", "reason"))
    {
        assert_eq!(o, "stopped", "{log}");
        assert!(r.starts_with("FAIL, stopped at step 10"), "{r}");
    }
    for d in std::fs::read_dir(res.join("failfast/runs")).unwrap() {
        let d = d.unwrap().path();
        let ev = std::fs::read_to_string(d.join("evidence.csv")).unwrap();
        assert!(
            ev.lines()
                .any(|l| l.starts_with("10,") && l.contains("fail_detected")),
            "{ev}"
        );
        // One training row, after the untrained baseline's (train step 0).
        let rows = td3_sweep::results::read_metrics(&d.join("metrics.csv")).unwrap();
        assert_eq!(rows.iter().filter(|r| r.train_step > 0).count(), 1);
    }
    // stop_on_fail: false trains to the end, and still keeps the evidence of the first FAIL.
    let go_on = smoke_variant(
        tmp.path(),
        "noff",
        &format!("{criteria}stop_on_fail: false\n"),
    );
    let out = sweep(&go_on, &res, &["--jobs", "2"]);
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    assert!(col(&res, "noff", "outcome")
        .iter()
        .all(|o| o == "completed"));
    for d in std::fs::read_dir(res.join("noff/runs")).unwrap() {
        let d = d.unwrap().path();
        assert!(std::fs::read_to_string(d.join("evidence.csv"))
            .unwrap()
            .contains("fail_detected"));
    }
}

#[test]
fn the_recorded_command_reproduces_a_run_value_for_value() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let out = sweep(&repo().join("sweeps/smoke.yaml"), &res, &["--jobs", "2"]);
    assert!(
        matches!(out.status.code(), Some(0 | 10 | 11)),
        "{}",
        text(&out)
    );
    let run = std::fs::read_dir(res.join("smoke/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    let command = rec["command"].as_str().unwrap().to_string();
    let rest = command
        .strip_prefix("td3-sweep ")
        .expect("starts with td3-sweep");
    let out_dir = PathBuf::from(rest.rsplit("--out ").next().unwrap().trim());
    assert!(
        !out_dir.starts_with(&run),
        "reproducing must not overwrite the sweep's run"
    );
    // Run it the way a user would: pasted into a shell.
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!("'{}' {rest}", bin().display()))
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(o.status.success(), "{command}\n{}", text(&o));
    let again = if out_dir.is_absolute() {
        out_dir.clone()
    } else {
        repo().join(&out_dir)
    };
    assert_eq!(metrics_values(&run), metrics_values(&again), "{command}");
    let _ = std::fs::remove_dir_all(&again);
}

/// What users do in CI: run a sweep, render its report with `--stable`, and compare it with a
/// snapshot. Two sweeps of the same spec on this CPU give the same report, byte for byte, once the
/// results folder's own path (in the reproduce commands) is set aside.
#[test]
fn a_stable_report_is_the_same_for_the_same_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let s = smoke_variant(tmp.path(), "stable", "");
    let render = |root: &str| {
        let results = tmp.path().join(root);
        let o = sweep(&s, &results, &[]);
        assert!(matches!(o.status.code(), Some(0 | 10 | 11)), "{}", text(&o));
        let dir = results.join("stable");
        let r = Command::new(bin())
            .arg("report")
            .arg(&dir)
            .arg("--stable")
            .output()
            .unwrap();
        assert!(matches!(r.status.code(), Some(0 | 10 | 11)), "{}", text(&r));
        std::fs::read_to_string(dir.join("VALIDATION_stable.md"))
            .unwrap()
            .replace(&results.display().to_string(), "RESULTS")
    };
    let (a, b) = (render("a"), render("b"));
    assert!(a.contains("| Date | — (--stable) |"), "{a}");
    // `sweep --stable` renders the same report in one go, JUnit times zeroed.
    let results = tmp.path().join("c");
    let junit = tmp.path().join("c.xml");
    let o = sweep(
        &s,
        &results,
        &["--stable", "--junit", junit.to_str().unwrap()],
    );
    assert!(matches!(o.status.code(), Some(0 | 10 | 11)), "{}", text(&o));
    let c = std::fs::read_to_string(results.join("stable/VALIDATION_stable.md"))
        .unwrap()
        .replace(&results.display().to_string(), "RESULTS");
    assert_eq!(a, c);
    let xml = std::fs::read_to_string(&junit).unwrap();
    let times: Vec<&str> = xml.split("time=\"").skip(1).collect();
    assert!(times.len() >= 3, "{xml}");
    assert!(times.iter().all(|t| t.starts_with("0.000\"")), "{xml}");
    assert!(!a.contains(" s\n"), "a duration is left in:\n{a}");
    assert_eq!(a, b);
}

#[test]
fn bad_slurm_flags_are_named_as_flags_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let out = sweep(
        &repo().join("sweeps/smoke.yaml"),
        &res,
        &[
            "--backend",
            "slurm",
            "--slurm-time",
            "1h",
            "--slurm-cpus-per-task",
            "0",
            "--slurm-extra=--qos=a b",
        ],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    for flag in [
        "--slurm-time: \"1h\"",
        "--slurm-cpus-per-task:",
        "--slurm-extra: \"--qos=a b\"",
    ] {
        assert!(log.contains(flag), "{flag} in {log}");
    }
    assert!(!res.exists(), "nothing written: {log}");
}
