//! The Slurm backend against a real Slurm (`scripts/slurm-local.sh` starts a single-node one).
//!
//! Without a reachable controller these tests SKIP loudly, unless `TD3_REQUIRE_SLURM` is set (CI
//! sets it): then a missing Slurm is a failure.

use crate::common::{bin, repo, sweep, text};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Whether to run: Slurm answers, or (panics) it does not and `TD3_REQUIRE_SLURM` is set.
fn slurm_or_skip(test: &str) -> bool {
    let up = Command::new("scontrol")
        .arg("ping")
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("UP"))
        .unwrap_or(false);
    if up {
        return true;
    }
    if std::env::var_os("TD3_REQUIRE_SLURM").is_some_and(|v| !v.is_empty()) {
        panic!("TD3_REQUIRE_SLURM is set but `scontrol ping` fails: start Slurm with scripts/slurm-local.sh");
    }
    // Straight to stderr, not eprintln!: the test harness would swallow a passing test's output.
    let bar = "!".repeat(78);
    let _ = writeln!(
        std::io::stderr(),
        "\n{bar}\nSKIPPED {test}: no Slurm (`scontrol ping` fails). Start one with `sudo scripts/slurm-local.sh`;\nset TD3_REQUIRE_SLURM=1 to make this a failure.\n{bar}"
    );
    false
}

/// sweeps/smoke.yaml under another name, with an absolute `base:` and `extra` YAML appended.
fn smoke_copy(dir: &Path, name: &str, extra: &str, replace: &[(&str, &str)]) -> PathBuf {
    let smoke = std::fs::read_to_string(repo().join("sweeps/smoke.yaml")).unwrap();
    let mut out = String::new();
    for line in smoke.lines() {
        let line = if line.starts_with("name:") {
            format!("name: {name}")
        } else if line.starts_with("base:") {
            format!("base: {}", repo().join("configs/td3.yaml").display())
        } else {
            replace
                .iter()
                .find(|(k, _)| line.starts_with(k))
                .map(|(_, v)| v.to_string())
                .unwrap_or(line.to_string())
        };
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(extra);
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, out).unwrap();
    p
}

/// The single row of a one-run sweep's summary.csv, by column name.
fn only_summary_row(dir: &Path, log: &str) -> std::collections::HashMap<String, String> {
    let mut r = csv::Reader::from_path(dir.join("summary.csv")).unwrap();
    let h = r.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    assert_eq!(rows.len(), 1, "{log}");
    h.iter()
        .zip(rows[0].iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// summary.csv without the timing column, sorted by run id.
fn summary_rows(dir: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(dir.join("summary.csv")).unwrap();
    let h: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    let keep = [
        "run_id",
        "variant",
        "seed",
        "outcome",
        "steps_done",
        "steps_planned",
        "reason",
    ];
    let idx: Vec<usize> = keep
        .iter()
        .map(|k| h.iter().position(|x| x == k).unwrap())
        .collect();
    let mut rows: Vec<Vec<String>> = r
        .records()
        .map(|rec| {
            idx.iter()
                .map(|&i| rec.as_ref().unwrap()[i].to_string())
                .collect()
        })
        .collect();
    rows.sort();
    rows
}

/// Each JUnit testcase's name and failure type ("" for PASS): the report's per-run verdicts.
fn verdicts(junit: &Path) -> Vec<(String, String)> {
    let xml = std::fs::read_to_string(junit).unwrap();
    let attr = |s: &str, a: &str| -> String {
        let key = format!("{a}=\"");
        s.find(&key)
            .map(|i| {
                s[i + key.len()..]
                    .split('"')
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for case in xml.split("<testcase").skip(1) {
        let body = case.split("</testcase>").next().unwrap_or(case);
        let failure = body
            .find("<failure")
            .map(|i| attr(&body[i..], "type"))
            .unwrap_or_default();
        out.push((attr(case, "name"), failure));
    }
    out.sort();
    out
}

/// The terminal overview (variant × seeds × verdict table) from a sweep's output.
fn overview(o: &Output) -> String {
    let s = String::from_utf8_lossy(&o.stdout);
    let from = s.find("VARIANT").expect("overview table");
    let to = s[from..]
        .find("report:")
        .map(|i| from + i)
        .unwrap_or(s.len());
    s[from..to].trim().to_string()
}

fn jobs_json(res: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(res.join("slurm/jobs.json")).unwrap()).unwrap()
}

#[test]
fn smoke_sweep_on_slurm_matches_the_local_backend_and_records_the_crash() {
    if !slurm_or_skip("smoke_sweep_on_slurm_matches_the_local_backend_and_records_the_crash") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let spec = smoke_copy(
        tmp.path(),
        "slurmsmoke",
        "variants:\n  - name: ok\n  - name: boom\n    set: { debug.abort_at_step: 5 }\n",
        &[],
    );
    let (local, slurm) = (tmp.path().join("local"), tmp.path().join("slurm"));
    let (jl, js) = (tmp.path().join("local.xml"), tmp.path().join("slurm.xml"));
    let lo = sweep(&spec, &local, &["--junit", jl.to_str().unwrap()]);
    let so = sweep(
        &spec,
        &slurm,
        &[
            "--backend",
            "slurm",
            "--slurm-max-parallel",
            "2",
            "--junit",
            js.to_str().unwrap(),
        ],
    );
    let (llog, slog) = (text(&lo), text(&so));
    assert_eq!(
        lo.status.code(),
        Some(11),
        "a crashed run is a FAIL: {llog}"
    );
    assert_eq!(
        so.status.code(),
        lo.status.code(),
        "same exit code as local: {slog}"
    );

    let res = slurm.join("slurmsmoke");
    // Every array task ran: one submission of 4 tasks, each with its Slurm output and run files.
    let jobs = jobs_json(&res);
    let subs = jobs["submissions"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "{jobs}");
    let job_id = subs[0]["job_id"].as_str().unwrap();
    let indices: Vec<u64> = subs[0]["indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(indices, vec![0, 1, 2, 3], "{jobs}");
    let script = std::fs::read_to_string(subs[0]["script"].as_str().unwrap()).unwrap();
    assert!(script.contains("#SBATCH --array=0-3%2"), "{script}");
    for t in 0..indices.len() {
        let out = std::fs::read_to_string(res.join(format!("slurm/slurm-{job_id}_{t}.out")))
            .unwrap_or_else(|e| panic!("task {job_id}_{t} left no output ({e}): {slog}"));
        assert!(out.contains(&format!("run-one: index {t} = ")), "{out}");
    }
    for e in std::fs::read_dir(res.join("runs")).unwrap() {
        let d = e.unwrap().path();
        for f in ["config.yaml", "run.json", "stdout.log", "stderr.log"] {
            assert!(d.join(f).exists(), "{f} missing in {}", d.display());
        }
        let rec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("run.json")).unwrap()).unwrap();
        assert!(rec["exit"].is_string(), "every run.json is final: {rec}");
        if d.to_string_lossy().contains("boom") {
            assert_eq!(rec["outcome"], "crashed", "{rec}");
            assert!(rec["exit"].as_str().unwrap().contains("SIGABRT"), "{rec}");
            assert!(
                rec["stderr_tail"]
                    .as_str()
                    .unwrap()
                    .contains("abort_at_step"),
                "{rec}"
            );
        } else {
            assert_eq!(rec["outcome"], "completed", "{rec}");
        }
    }

    // Same runs and verdicts as the local backend, timings aside.
    assert_eq!(
        summary_rows(&res),
        summary_rows(&local.join("slurmsmoke")),
        "{slog}"
    );
    assert_eq!(summary_rows(&res).len(), 4);
    assert_eq!(verdicts(&js), verdicts(&jl));
    assert_eq!(verdicts(&js).len(), 4);
    assert_eq!(overview(&so), overview(&lo));
    assert!(res.join("VALIDATION_slurmsmoke.md").exists());

    // Resume: nothing completed or crashed is resubmitted ...
    let again = sweep(&spec, &slurm, &["--backend", "slurm"]);
    let log = text(&again);
    assert!(log.contains("0 to train"), "{log}");
    assert_eq!(
        jobs_json(&res)["submissions"].as_array().unwrap().len(),
        1,
        "{log}"
    );
    // ... and `--rerun failed` resubmits exactly the crashed runs.
    let rerun = sweep(&spec, &slurm, &["--backend", "slurm", "--rerun", "failed"]);
    let log = text(&rerun);
    assert!(log.contains("2 to train"), "{log}");
    let jobs = jobs_json(&res);
    let second = &jobs["submissions"][1];
    let runs: Vec<String> = second["indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            std::fs::read_to_string(res.join("plan.json"))
                .map(|p| {
                    let plan: serde_json::Value = serde_json::from_str(&p).unwrap();
                    plan["runs"][i.as_u64().unwrap() as usize]["variant"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .unwrap()
        })
        .collect();
    assert_eq!(runs, vec!["boom", "boom"], "{jobs}");
    assert_eq!(
        summary_rows(&res),
        summary_rows(&local.join("slurmsmoke")),
        "{log}"
    );
}

#[test]
fn a_task_killed_by_slurm_is_a_crashed_row_not_a_missing_one() {
    if !slurm_or_skip("a_task_killed_by_slurm_is_a_crashed_row_not_a_missing_one") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // One run long enough to be killed mid-way.
    let spec = smoke_copy(
        tmp.path(),
        "slurmkill",
        "",
        &[("steps:", "steps: 500000"), ("seeds:", "seeds: [0]")],
    );
    let res = tmp.path().join("results");
    let child = Command::new(bin())
        .arg("sweep")
        .arg(&spec)
        .arg("--results")
        .arg(&res)
        .args(["--backend", "slurm"])
        .current_dir(repo())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let dir = res.join("slurmkill");
    let t0 = Instant::now();
    // Wait until the run is really training (its run.json exists), then SIGKILL the task's batch
    // step: run-one dies without writing a final record, as on an OOM kill or node loss.
    let job_id = loop {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the task never started"
        );
        let started = std::fs::read_dir(dir.join("runs"))
            .map(|rd| rd.flatten().any(|e| e.path().join("run.json").exists()))
            .unwrap_or(false);
        if started {
            break jobs_json(&dir)["submissions"][0]["job_id"]
                .as_str()
                .unwrap()
                .to_string();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let st = Command::new("scancel")
        .args(["--batch", "--signal=KILL", &job_id])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(11), "{log}");
    let row = only_summary_row(&dir, &log);
    let get = |k: &str| row[k].clone();
    assert_eq!(get("outcome"), "crashed", "{log}");
    assert!(get("reason").contains("Slurm"), "{}", get("reason"));
}

/// The 3-stage ladder of tests/it/ladder.rs at tiny sizes: `nan` FAILs stage 1 and stops there,
/// `good` climbs through its checkpoints and is approved.
fn ladder_spec(dir: &Path) -> PathBuf {
    let p = dir.join("slurmladder.yaml");
    std::fs::write(
        &p,
        format!(
            "name: slurmladder\nbase: {}\nset:\n  env.kind: lane-keep\n  env.obs: pixels\n  env.image_size: 24\n  env.frame_stack: 2\n  networks.cnn.channels: [8, 8]\n  networks.cnn.kernels: [3, 3]\n  networks.cnn.strides: [2, 1]\n  networks.cnn.feature_dim: 16\n  networks.actor.hidden: [32, 32]\n  networks.critic.hidden: [32, 32]\n  training.batch_size: 16\n  training.buffer_size: 1000\n  training.learning_starts: 20\n  logging.log_every: 10\nvariants:\n  - name: good\n  - name: nan\n    set: {{ debug.nan_at_step: 5 }}\nseeds: [0]\nstages:\n  - {{ name: s1, steps: 60 }}\n  - {{ name: s2, steps: 100, promote: pass }}\n  - {{ name: s3, steps: 140, promote: pass, approve: true }}\nresources: {{ devices: cpu, runs_per_device: 1, threads_per_run: 1 }}\ntimeout: 2m\n",
            repo().join("configs/td3.yaml").display()
        ),
    )
    .unwrap();
    p
}

#[test]
fn a_ladder_on_slurm_climbs_like_the_local_one() {
    if !slurm_or_skip("a_ladder_on_slurm_climbs_like_the_local_one") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let spec = ladder_spec(tmp.path());
    let (local, slurm) = (tmp.path().join("local"), tmp.path().join("slurm"));
    let lo = sweep(&spec, &local, &[]);
    let so = sweep(&spec, &slurm, &["--backend", "slurm"]);
    let slog = text(&so);
    assert_eq!(so.status.code(), lo.status.code(), "{slog}");
    let ladder = |root: &Path| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(root.join("slurmladder/ladder.json")).unwrap(),
        )
        .unwrap()
    };
    let (l, s) = (ladder(&local), ladder(&slurm));
    let good = serde_json::json!([{ "variant": "good", "swept": {} }]);
    assert_eq!(s["approved"], good, "{slog}");
    for k in 0..3 {
        assert_eq!(s["stages"][k]["done"], true, "{slog}");
        assert_eq!(s["stages"][k]["entered"], l["stages"][k]["entered"]);
        let verdicts = |v: &serde_json::Value| -> Vec<(String, String)> {
            v["stages"][k]["variants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| {
                    (
                        x["variant"].as_str().unwrap().to_string(),
                        x["verdict"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        assert_eq!(verdicts(&s), verdicts(&l), "stage {k}: {slog}");
    }
    assert_eq!(s["stages"][1]["entered"], good);
    // One array per stage, each with its own plan; stage 2's task resumed from its checkpoint.
    let res = slurm.join("slurmladder");
    for (stage, tasks) in [("s1", 2), ("s2", 1), ("s3", 1)] {
        let jobs: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(res.join(format!("slurm/{stage}/jobs.json"))).unwrap(),
        )
        .unwrap();
        let sub = &jobs["submissions"][0];
        assert_eq!(
            sub["indices"].as_array().unwrap().len(),
            tasks,
            "{stage}: {jobs}"
        );
        let script = std::fs::read_to_string(sub["script"].as_str().unwrap()).unwrap();
        // Each submission reads its own copy of the stage's plan.
        let plan_path = res.join(format!("slurm/{stage}/plan-000.json"));
        assert!(
            script.contains(&format!("--plan {} --index", plan_path.display())),
            "{script}"
        );
        assert_eq!(
            std::fs::read(&plan_path).unwrap(),
            std::fs::read(res.join(format!("slurm/{stage}/plan.json"))).unwrap()
        );
        assert_eq!(
            sub["run_ids"].as_array().unwrap().len(),
            tasks,
            "{stage}: {jobs}"
        );
        let plan = std::fs::read_to_string(res.join(format!("slurm/{stage}/plan.json"))).unwrap();
        assert_eq!(plan.contains("--resume"), stage != "s1", "{plan}");
    }
    // The same metrics, value for value, as the local ladder (wall_s aside).
    let good_rows = |root: &Path| {
        let runs = root.join("slurmladder/runs");
        let dir = std::fs::read_dir(&runs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("good"))
            .unwrap();
        crate::common::metrics_values(&dir)
    };
    assert_eq!(good_rows(&slurm), good_rows(&local));
    let summary = std::fs::read_to_string(res.join("summary.csv")).unwrap();
    assert!(
        summary.lines().next().unwrap().contains(",stage,"),
        "{summary}"
    );
}

/// Slurm's own time limit (`--slurm-time 1`: one minute) ends a run that would take far longer:
/// the row says `timeout` with Slurm's reason, and the sweep's verdict is FAIL. About 1-2 minutes.
#[test]
fn slurms_time_limit_is_a_timeout_row() {
    if !slurm_or_skip("slurms_time_limit_is_a_timeout_row") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let spec = smoke_copy(
        tmp.path(),
        "slurmtime",
        "",
        &[("steps:", "steps: 5000000"), ("seeds:", "seeds: [0]")],
    );
    let res = tmp.path().join("results");
    let t0 = Instant::now();
    let out = sweep(&spec, &res, &["--backend", "slurm", "--slurm-time", "1"]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(11), "{log}");
    assert!(
        t0.elapsed() < Duration::from_secs(240),
        "Slurm's 1-minute limit took {:?}: {log}",
        t0.elapsed()
    );
    let dir = res.join("slurmtime");
    let row = only_summary_row(&dir, &log);
    let get = |k: &str| row[k].clone();
    assert_eq!(get("outcome"), "timeout", "{log}");
    assert!(get("reason").contains("time limit"), "{}", get("reason"));
    // The run trained for a while before it was stopped: its metrics are kept.
    assert!(get("steps_done").parse::<u64>().unwrap() > 0, "{log}");
}

/// Resubmitting is safe: a submission sbatch refuses loses no earlier result, and a `--no-submit`
/// script a person submitted by hand is recognised in the queue and waited for, not submitted a
/// second time. About 30 s.
#[test]
fn a_refused_resubmission_loses_nothing_and_hand_submitted_tasks_are_adopted() {
    if !slurm_or_skip("a_refused_resubmission_loses_nothing_and_hand_submitted_tasks_are_adopted") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let spec = smoke_copy(tmp.path(), "slurmresub", "", &[]);
    let results = tmp.path().join("r");
    let first = sweep(&spec, &results, &["--backend", "slurm"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let res = results.join("slurmresub");
    let records = |res: &Path| -> Vec<Vec<u8>> {
        let mut v: Vec<_> = std::fs::read_dir(res.join("runs"))
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path().join("run.json")).unwrap())
            .collect();
        v.sort();
        v
    };
    let before = records(&res);
    let refused = sweep(
        &spec,
        &results,
        &[
            "--backend",
            "slurm",
            "--rerun",
            "all",
            "--slurm-partition",
            "no-such-partition",
        ],
    );
    let log = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{log}");
    assert!(
        log.contains("no-such-partition") || log.contains("partition"),
        "{log}"
    );
    assert_eq!(
        records(&res),
        before,
        "the refused submission changed run.json files"
    );
    let report = Command::new(bin())
        .arg("report")
        .arg(&res)
        .output()
        .unwrap();
    assert_eq!(report.status.code(), Some(0), "{}", text(&report));

    // --no-submit, then a person submits the script, then the same sweep runs: it waits for the
    // hand-submitted tasks instead of submitting the runs again.
    let results2 = tmp.path().join("r2");
    let written = sweep(&spec, &results2, &["--backend", "slurm", "--no-submit"]);
    assert_eq!(written.status.code(), Some(0), "{}", text(&written));
    let res2 = results2.join("slurmresub");
    let jobs = jobs_json(&res2);
    let script = jobs["written"][0]["script"].as_str().unwrap().to_string();
    let sb = Command::new("sbatch")
        .arg("--parsable")
        .arg(&script)
        .output()
        .unwrap();
    assert!(sb.status.success(), "{}", text(&sb));
    let by_hand = String::from_utf8_lossy(&sb.stdout).trim().to_string();
    let again = sweep(&spec, &results2, &["--backend", "slurm"]);
    let log = text(&again);
    assert_eq!(again.status.code(), Some(0), "{log}");
    assert!(log.contains(&format!("job {by_hand} runs")), "{log}");
    assert!(!log.contains(") as job "), "submitted twice: {log}");
    let subs = jobs_json(&res2)["submissions"].as_array().unwrap().clone();
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0]["job_id"], by_hand.as_str());
}

/// The sweep is edited (a seed added) and run again while its first submission's tasks are still
/// queued: those tasks run their runs from the current plan (same run ids), only the new seed is
/// submitted, and every run completes. About 30 s.
#[test]
fn queued_tasks_survive_an_edit_of_their_sweep() {
    if !slurm_or_skip("queued_tasks_survive_an_edit_of_their_sweep") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let spec = smoke_copy(tmp.path(), "slurmedit", "", &[]);
    let results = tmp.path().join("r");
    // Submit, held for 10 s, and stop waiting (as a killed or Ctrl-C'd sweep would).
    let mut first = Command::new(bin())
        .arg("sweep")
        .arg(&spec)
        .arg("--results")
        .arg(&results)
        .args(["--backend", "slurm", "--slurm-extra=--begin=now+10"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let res = results.join("slurmedit");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !res.join("slurm/jobs.json").exists()
        || jobs_json(&res)["submissions"]
            .as_array()
            .is_none_or(|s| s.is_empty())
    {
        assert!(std::time::Instant::now() < deadline, "no submission");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = first.kill();
    let _ = first.wait();
    let edited = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("seeds: [0, 1]", "seeds: [0, 1, 2]");
    std::fs::write(&spec, edited).unwrap();
    let again = sweep(&spec, &results, &["--backend", "slurm"]);
    let log = text(&again);
    assert_eq!(again.status.code(), Some(0), "{log}");
    assert!(
        log.contains("waiting for 2 task(s) already in Slurm"),
        "{log}"
    );
    assert!(
        log.contains("(1 task(s)) as job"),
        "only the new seed is submitted: {log}"
    );
    let rows = summary_rows(&res);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r[3] == "completed"), "{rows:?}\n{log}");
}

/// An external trainer (bash) under Slurm: the array tasks run the same harness, so the runs end
/// as they do locally (one completed, one crashed with the trainer's stderr) with the trainer's
/// environment recorded.
#[test]
fn an_external_trainer_runs_in_the_array_tasks() {
    if !slurm_or_skip("an_external_trainer_runs_in_the_array_tasks") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("agent.yaml"),
        "training:\n  lr: 1.0e-4\n  crash: false\n",
    )
    .unwrap();
    let trainer = dir.join("train.sh");
    std::fs::write(
        &trainer,
        "#!/usr/bin/env bash\nset -eu\necho \"step,critic_loss\" > \"$TD3SWEEP_METRICS\"\nfor i in 10 20 30 40; do echo \"$i,0.5\" >> \"$TD3SWEEP_METRICS\"; done\nif grep -q 'crash: true' \"$TD3SWEEP_CONFIG\"; then echo 'trainer: out of memory on the slurm node' >&2; exit 9; fi\necho \"$SLURM_JOB_ID\" > \"$TD3SWEEP_RUN_DIR/slurm_job\"\n",
    )
    .unwrap();
    let spec = dir.join("ext.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: ext_slurm\nbase: agent.yaml\nsteps: 40\ntrainer:\n  command: [bash, {}]\n  metrics: {{ train_step: step }}\nvariants:\n  - name: ok\n  - name: boom\n    set: {{ training.crash: true }}\n",
            trainer.display()
        ),
    )
    .unwrap();
    let out = sweep(&spec, &dir.join("res"), &["--backend", "slurm"]);
    let log = text(&out);
    assert_eq!(
        out.status.code(),
        Some(11),
        "the crash FAILs its group: {log}"
    );
    let runs = dir.join("res/ext_slurm/runs");
    let record = |variant: &str| -> serde_json::Value {
        let d = std::fs::read_dir(&runs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(variant)
            })
            .unwrap_or_else(|| panic!("no {variant} run: {log}"));
        serde_json::from_str(&std::fs::read_to_string(d.join("run.json")).unwrap()).unwrap()
    };
    let ok = record("ok__");
    assert_eq!(ok["outcome"], "completed", "{ok}");
    assert_eq!(ok["train_steps_done"], 40, "{ok}");
    assert!(
        ok["extra"]["slurm_task"].is_string(),
        "recorded by its array task: {ok}"
    );
    assert_eq!(ok["invocation"]["env"]["TD3SWEEP_STEPS"], "40", "{ok}");
    let boom = record("boom__");
    assert_eq!(boom["outcome"], "crashed", "{boom}");
    assert_eq!(
        boom["reason"], "the trainer ended with exit code 9",
        "{boom}"
    );
    assert!(
        boom["stderr_tail"]
            .as_str()
            .is_some_and(|t| t.contains("out of memory on the slurm node")),
        "{boom}"
    );
}
