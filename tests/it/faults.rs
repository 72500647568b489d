//! Reliability under real faults: real signals to real processes, real files, a real full disk.
//! Every test drives the actual binary; the runs train through tch on the CPU.

use crate::common::{bin, metrics_values, repo, text};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A small sweep spec (lane-keep pixels at 24 px, tiny nets) with `extra` YAML appended.
fn spec(dir: &Path, name: &str, steps: u64, seeds: &str, extra: &str) -> PathBuf {
    let text = format!(
        "name: {name}\nbase: {base}\nsteps: {steps}\nseeds: {seeds}\nset:\n  device: cpu\n  env.image_size: 24\n  env.frame_stack: 2\n  networks.cnn.channels: [8, 8]\n  networks.cnn.kernels: [3, 3]\n  networks.cnn.strides: [2, 1]\n  networks.cnn.feature_dim: 16\n  networks.actor.hidden: [32, 32]\n  networks.critic.hidden: [32, 32]\n  training.batch_size: 16\n  training.buffer_size: 2000\n  training.learning_starts: 20\n  logging.log_every: 10\nresources: {{ devices: cpu, runs_per_device: 1, threads_per_run: 1 }}\n{extra}",
        base = repo().join("configs/td3.yaml").display()
    );
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn sweep_cmd(spec: &Path, results: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("sweep")
        .arg(spec)
        .arg("--results")
        .arg(results)
        .args(extra);
    c.env("TD3_SWEEP_KILL_GRACE_S", "2");
    c
}

fn run(mut c: Command) -> Output {
    c.output().expect("run td3-sweep")
}

fn spawn(mut c: Command) -> Child {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn td3-sweep")
}

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

/// PIDs of live processes whose command line contains `needle`.
fn pids_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'));
        if !zombie
            && String::from_utf8_lossy(&cmd)
                .replace('\0', " ")
                .contains(needle)
        {
            out.push(pid);
        }
    }
    out
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (run_id, column value) pairs of summary.csv.
fn summary(results: &Path, name: &str, column: &str) -> Vec<(String, String)> {
    let Ok(mut r) = csv::Reader::from_path(results.join(name).join("summary.csv")) else {
        return vec![];
    };
    let i = r
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == column)
        .unwrap();
    r.records()
        .map(|x| x.unwrap())
        .map(|x| (x[0].to_string(), x[i].to_string()))
        .collect()
}

fn outcomes(results: &Path, name: &str) -> Vec<(String, String)> {
    summary(results, name, "outcome")
}

fn metrics_rows(results: &Path, name: &str, run_id: &str) -> usize {
    std::fs::read_to_string(
        results
            .join(name)
            .join("runs")
            .join(run_id)
            .join("metrics.csv"),
    )
    .map(|t| t.lines().count().saturating_sub(1))
    .unwrap_or(0)
}

#[test]
fn sigkill_of_one_training_child_is_a_crash_and_the_rest_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let s = spec(tmp.path(), "kill_child", 300, "3", "");
    let sweep = spawn(sweep_cmd(&s, &res, &["--jobs", "3"]));
    let runs = res.join("kill_child/runs");
    // Pick seed 1's run once it has logged a few rows, and SIGKILL its process.
    let mut victim = String::new();
    wait_for("seed 1 to make progress", Duration::from_secs(120), || {
        if let Some((id, _)) = outcomes(&res, "kill_child")
            .into_iter()
            .find(|(id, _)| id.contains("__s1__"))
        {
            victim = id;
        }
        !victim.is_empty() && metrics_rows(&res, "kill_child", &victim) >= 3
    });
    let needle = runs.join(&victim).display().to_string();
    let pids = pids_with(&format!("--out {needle}"));
    assert_eq!(pids.len(), 1, "one child trains {victim}: {pids:?}");
    signal(pids[0], "-KILL");
    let out = sweep.wait_with_output().unwrap();
    let log = text(&out);
    for (id, o) in outcomes(&res, "kill_child") {
        assert_eq!(
            o,
            if id == victim { "crashed" } else { "completed" },
            "{id}: {log}"
        );
    }
    let rec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(runs.join(&victim).join("run.json")).unwrap(),
    )
    .unwrap();
    assert!(rec["exit"].as_str().unwrap().contains("signal 9"), "{rec}");
    let report = std::fs::read_to_string(res.join("kill_child/VALIDATION_kill_child.md")).unwrap();
    assert!(
        report.contains(&victim) && report.contains("crashed"),
        "the report names the crashed run"
    );
    // One seed of three crashed: the run FAILs, and so does its variant, with the count (seeds
    // are judged strictly: exit 11).
    assert_eq!(out.status.code(), Some(11), "{log}");
    assert!(report.contains("FAIL 1/3"), "{report}");
    assert!(
        rec["steps_done"].as_u64().unwrap() > 0,
        "the crash keeps how far it got: {rec}"
    );
}

#[test]
fn sigint_then_resume_trains_nothing_twice_and_matches_an_uninterrupted_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let s = spec(tmp.path(), "interrupt", 150, "4", "");
    let sweep = spawn(sweep_cmd(&s, &res, &["--jobs", "2"]));
    wait_for("two completed runs", Duration::from_secs(180), || {
        outcomes(&res, "interrupt")
            .iter()
            .filter(|(_, o)| o == "completed")
            .count()
            >= 2
    });
    signal(sweep.id(), "-INT");
    let out = sweep.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    let first = outcomes(&res, "interrupt");
    let done: Vec<String> = first
        .iter()
        .filter(|(_, o)| o == "completed")
        .map(|(id, _)| id.clone())
        .collect();
    assert!(done.len() >= 2 && done.len() < 4, "{first:?}");
    let runs = res.join("interrupt/runs");
    let before: Vec<(String, Vec<u8>)> = done
        .iter()
        .map(|id| {
            (
                id.clone(),
                std::fs::read(runs.join(id).join("metrics.csv")).unwrap(),
            )
        })
        .collect();

    let again = run(sweep_cmd(&s, &res, &["--jobs", "2"]));
    let log = text(&again);
    assert!(
        log.contains(&format!("{} already done", done.len())),
        "{log}"
    );
    for (id, bytes) in &before {
        assert_eq!(
            &std::fs::read(runs.join(id).join("metrics.csv")).unwrap(),
            bytes,
            "{id} was trained again"
        );
    }
    // The same runs and verdicts as a sweep nobody interrupted, and the same numbers.
    let clean = tmp.path().join("clean");
    let whole = run(sweep_cmd(&s, &clean, &["--jobs", "2"]));
    assert_eq!(outcomes(&res, "interrupt"), outcomes(&clean, "interrupt"));
    assert!(outcomes(&clean, "interrupt")
        .iter()
        .all(|(_, o)| o == "completed"));
    assert_eq!(again.status.code(), whole.status.code());
    let verdict_lines = |o: &Output| -> Vec<String> {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains("PASS") || l.contains("FAIL"))
            .map(String::from)
            .collect()
    };
    assert_eq!(verdict_lines(&again), verdict_lines(&whole));
    for (id, _) in outcomes(&clean, "interrupt") {
        assert_eq!(
            metrics_values(&runs.join(&id)),
            metrics_values(&clean.join("interrupt/runs").join(&id)),
            "{id}"
        );
    }
}

#[test]
fn sigkill_of_the_sweep_leaves_no_orphans_and_resume_takes_over_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let s = spec(tmp.path(), "kill_sweep", 400, "2", "");
    let mut sweep = spawn(sweep_cmd(&s, &res, &["--jobs", "2"]));
    let needle = res.join("kill_sweep/runs").display().to_string();
    wait_for("both children to train", Duration::from_secs(120), || {
        outcomes(&res, "kill_sweep")
            .iter()
            .all(|(id, _)| metrics_rows(&res, "kill_sweep", id) >= 2)
            && outcomes(&res, "kill_sweep").len() == 2
    });
    assert_eq!(pids_with(&needle).len(), 2);
    signal(sweep.id(), "-KILL");
    let _ = sweep.wait();
    // The children notice their parent is gone (stdin closes) and end themselves.
    wait_for("orphaned children to exit", Duration::from_secs(20), || {
        pids_with(&needle).is_empty()
    });
    assert!(
        res.join("kill_sweep/.lock").exists(),
        "a SIGKILLed sweep cannot remove its lock"
    );

    let again = run(sweep_cmd(&s, &res, &["--jobs", "2"]));
    let log = text(&again);
    assert!(log.contains("took over a stale lock"), "{log}");
    assert!(
        log.contains("2 to train"),
        "partial runs are trained again: {log}"
    );
    assert!(
        outcomes(&res, "kill_sweep")
            .iter()
            .all(|(_, o)| o == "completed"),
        "{log}"
    );
    assert!(!res.join("kill_sweep/.lock").exists());
}

#[test]
fn a_hanging_run_is_killed_by_its_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let s = spec(
        tmp.path(),
        "hang",
        60,
        "[0]",
        "timeout: 4s\nvariants:\n  - name: ok\n  - name: stuck\n    set: { debug.hang_at_step: 5 }\n",
    );
    let t = Instant::now();
    let out = run(sweep_cmd(&s, &res, &["--jobs", "2"]));
    let log = text(&out);
    for (id, o) in outcomes(&res, "hang") {
        assert_eq!(
            o,
            if id.starts_with("stuck") {
                "timeout"
            } else {
                "completed"
            },
            "{log}"
        );
    }
    assert!(t.elapsed() < Duration::from_secs(60), "{log}");
    assert!(
        pids_with(&res.display().to_string()).is_empty(),
        "the hung child was killed"
    );
}

#[test]
fn injected_nan_is_diverged_fail_with_evidence_at_that_step() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let s = spec(
        tmp.path(),
        "nan",
        80,
        "[0]",
        "variants:\n  - name: poisoned\n    set: { debug.nan_at_step: 17 }\n",
    );
    let out = run(sweep_cmd(&s, &res, &[]));
    let log = text(&out);
    assert_eq!(out.status.code(), Some(11), "{log}");
    let (id, o) = outcomes(&res, "nan").remove(0);
    assert_eq!(o, "diverged");
    let dir = res.join("nan/runs").join(&id);
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(rec["first_nonfinite_step"], 17);
    let ev = std::fs::read_to_string(dir.join("evidence.csv")).unwrap();
    let marked: Vec<&str> = ev
        .lines()
        .filter(|l| l.contains("first_nonfinite"))
        .collect();
    assert_eq!(marked.len(), 1);
    assert!(marked[0].starts_with("17,"), "{}", marked[0]);
    let report = std::fs::read_to_string(res.join("nan/VALIDATION_nan.md")).unwrap();
    assert!(
        report.contains("evidence.csv"),
        "the report links the evidence"
    );
    assert!(report.contains("17"), "the report names step 17");
}

#[test]
fn a_full_disk_gives_a_clear_error_and_no_half_written_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    // A real full disk: a 48 KiB tmpfs (CI runs as root, like this test's machines).
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=48k", "tmpfs"])
        .arg(&mnt)
        .status();
    assert!(
        mounted.map(|s| s.success()).unwrap_or(false),
        "mounting a small tmpfs needs root"
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let s = spec(tmp.path(), "full", 300, "2", "");
    let out = run(sweep_cmd(&s, &mnt, &["--jobs", "2"]));
    let log = text(&out);
    assert_ne!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("No space left on device"),
        "the error says why: {log}"
    );
    // Nothing half written: every CSV parses whole, no temporary files are left behind.
    let mut seen = 0;
    let mut stack = vec![mnt.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            assert!(
                !name.contains(".tmp-"),
                "temporary file left: {}",
                p.display()
            );
            if p.is_dir() {
                stack.push(p);
            } else if name == "metrics.csv" {
                td3_sweep::results::read_metrics(&p).unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            } else if name.ends_with(".csv") {
                let mut r = csv::Reader::from_path(&p).unwrap();
                for rec in r.records() {
                    rec.unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                }
            } else if name == "run.json" {
                let t = std::fs::read_to_string(&p).unwrap();
                serde_json::from_str::<serde_json::Value>(&t)
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            }
        }
    }
    assert!(seen > 0, "the sweep got far enough to write metrics: {log}");
}

#[test]
fn report_on_a_corrupted_metrics_csv_names_the_line_and_reports_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let s = spec(tmp.path(), "corrupt", 60, "2", "");
    let out = run(sweep_cmd(&s, &res, &[]));
    assert!(matches!(out.status.code(), Some(0 | 10)), "{}", text(&out));
    let ids: Vec<String> = outcomes(&res, "corrupt")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let bad = res.join("corrupt/runs").join(&ids[0]).join("metrics.csv");
    let t = std::fs::read_to_string(&bad).unwrap();
    let mut lines: Vec<String> = t.lines().map(String::from).collect();
    lines[2] = lines[2].replacen(',', ",garbage", 2);
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let rep = run({
        let mut c = Command::new(bin());
        c.arg("report").arg(res.join("corrupt"));
        c
    });
    let log = text(&rep);
    assert!(
        log.contains(&format!("{}:3", bad.display())) || log.contains("metrics.csv:3"),
        "{log}"
    );
    let report = std::fs::read_to_string(res.join("corrupt/VALIDATION_corrupt.md")).unwrap();
    assert!(report.contains(&ids[1]), "the intact run is still reported");
    assert!(
        report.contains("metrics.csv:3"),
        "the report names the bad line"
    );
}

#[test]
fn a_second_sweep_on_a_busy_results_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let s = spec(tmp.path(), "busy", 400, "2", "");
    let mut first = spawn(sweep_cmd(&s, &res, &["--jobs", "2"]));
    wait_for("the first sweep's lock", Duration::from_secs(60), || {
        res.join("busy/.lock").exists()
    });
    let second = run(sweep_cmd(&s, &res, &[]));
    let log = text(&second);
    assert_eq!(second.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("pid {}", first.id())),
        "the message names the holder: {log}"
    );
    signal(first.id(), "-INT");
    let _ = first.wait();
}

#[test]
fn every_malformed_spec_exits_2_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = repo().join("tests/fixtures/bad_specs");
    let mut n = 0;
    for e in std::fs::read_dir(&fixtures).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        n += 1;
        let res = tmp.path().join(format!("r{n}"));
        let out = run(sweep_cmd(&p, &res, &[]));
        let log = text(&out);
        assert_eq!(out.status.code(), Some(2), "{}: {log}", p.display());
        assert!(!res.exists(), "{}: created {}", p.display(), res.display());
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            log.contains("tests/fixtures/bad_"),
            "{name}: the message names the file: {log}"
        );
    }
    assert!(n >= 20, "only {n} fixtures");
}

/// `td3-sweep sweep x.yaml --dry-run | head -1`: the reader goes away after one line, and the
/// printing command ends by SIGPIPE, quietly, not with a panic and a backtrace.
#[test]
fn a_printing_command_ends_quietly_when_its_reader_goes_away() {
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    // 2,000 runs: the plan is far larger than a pipe's buffer, so writes go on after the close.
    let values: Vec<String> = (0..2000)
        .map(|i| format!("{}", 0.001 + i as f64 * 1e-6))
        .collect();
    let s = spec(
        tmp.path(),
        "bigplan",
        50,
        "[0]",
        &format!("grid:\n  training.tau: [{}]\n", values.join(", ")),
    );
    let mut child = Command::new(bin())
        .args(["sweep"])
        .arg(&s)
        .arg("--dry-run")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("sweep bigplan"), "{first}");
    // The reader (and the pipe's read end) is gone now.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?} {err}",
        out.status
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// The parent sweep is SIGKILLed while its child is stuck inside a step (it never sees the stop
/// flag): the child still ends by itself within the kill grace instead of running forever.
#[test]
fn a_hung_child_does_not_outlive_a_killed_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let s = spec(
        tmp.path(),
        "orphan",
        60,
        "[0]",
        "variants:\n  - name: stuck\n    set: { debug.hang_at_step: 5 }\n",
    );
    let mut sweep = spawn(sweep_cmd(&s, &res, &[]));
    let needle = res.join("orphan/runs").display().to_string();
    let stderr = || {
        std::fs::read_dir(res.join("orphan/runs"))
            .map(|d| {
                d.flatten()
                    .map(|e| {
                        std::fs::read_to_string(e.path().join("stderr.log")).unwrap_or_default()
                    })
                    .collect::<String>()
            })
            .unwrap_or_default()
    };
    wait_for("the child to hang", Duration::from_secs(60), || {
        stderr().contains("hanging")
    });
    signal(sweep.id(), "-KILL");
    let _ = sweep.wait();
    // TD3_SWEEP_KILL_GRACE_S is 2 in sweep_cmd; the child inherits it.
    wait_for("the hung child to exit", Duration::from_secs(20), || {
        pids_with(&needle).is_empty()
    });
    assert!(
        stderr().contains("the parent sweep is gone"),
        "{}",
        stderr()
    );
}

/// A sweep whose stdout reader goes away at once (`| head -1`) still trains, writes its summary
/// and its report, and exits with the verdict's code, not a panic.
#[test]
fn a_closed_stdout_does_not_stop_the_bookkeeping() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let s = spec(tmp.path(), "nostdout", 60, "[0, 1]", "");
    let mut c = sweep_cmd(&s, &res, &["--jobs", "2"]);
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        outcomes(&res, "nostdout"),
        outcomes(&res, "nostdout")
            .into_iter()
            .map(|(id, _)| (id, "completed".to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(outcomes(&res, "nostdout").len(), 2);
    assert!(res.join("nostdout/VALIDATION_nostdout.md").is_file());
}

/// Editing a sweep file and running it again under the same name: the earlier version's runs
/// stay on disk but leave the verdict, and the report lists them as left out.
#[test]
fn an_edited_sweep_is_judged_on_its_current_runs_only() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    // First version: every run diverges (FAIL, exit 11).
    let s = spec(
        tmp.path(),
        "edited",
        60,
        "[0]",
        "variants:\n  - name: v\n    set: { debug.nan_at_step: 5 }\n",
    );
    assert_eq!(run(sweep_cmd(&s, &res, &[])).status.code(), Some(11));
    // The fix: the same name and variant, without the fault.
    let s = spec(tmp.path(), "edited", 60, "[0]", "variants:\n  - name: v\n");
    let out = run(sweep_cmd(&s, &res, &[]));
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("not in the sweep's current plan"), "{log}");
    let report = std::fs::read_to_string(res.join("edited/VALIDATION_edited.md")).unwrap();
    assert!(report.contains("## Left out"), "{report}");
    assert!(report.contains("1 run in 1 variant group:"), "{report}");
    assert_eq!(
        std::fs::read_dir(res.join("edited/runs")).unwrap().count(),
        2,
        "the earlier run is kept on disk"
    );
}

/// A completed run whose metrics.csv was deleted has no evidence: the report makes it FAIL with
/// the file named, and the next sweep trains it again.
#[test]
fn a_run_whose_metrics_were_deleted_fails_and_is_trained_again() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let s = spec(tmp.path(), "lost", 60, "[0, 1]", "");
    let first = run(sweep_cmd(&s, &res, &["--jobs", "2"])).status.code();
    assert_ne!(first, Some(11), "both runs complete without a FAIL");
    let (id, _) = outcomes(&res, "lost").remove(0);
    let csv = res.join("lost/runs").join(&id).join("metrics.csv");
    std::fs::remove_file(&csv).unwrap();

    let report = run({
        let mut c = Command::new(bin());
        c.arg("report").arg(res.join("lost"));
        c
    });
    let log = text(&report);
    // That seed FAILs (its group is FLAKY or FAIL, never PASS).
    assert!(matches!(report.status.code(), Some(10) | Some(11)), "{log}");
    assert!(log.contains(":FAIL"), "{log}");
    assert!(
        log.contains("metrics.csv: missing, though run.json says"),
        "{log}"
    );

    let again = run(sweep_cmd(&s, &res, &["--jobs", "2"]));
    let log = text(&again);
    assert!(log.contains("1 to train, 1 already done"), "{log}");
    assert_eq!(
        again.status.code(),
        first,
        "the same verdict as before: {log}"
    );
    assert!(metrics_rows(&res, "lost", &id) > 0);
}

/// A bad `--template` or `--junit` is found before anything trains: exit 2, nothing created.
#[test]
fn bad_report_outputs_are_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let s = spec(tmp.path(), "outputs", 60, "[0]", "");
    let bad_template = tmp.path().join("t.j2");
    std::fs::write(&bad_template, "{{ foo(").unwrap();
    let missing_dir = tmp.path().join("nope/junit.xml");
    let out = run(sweep_cmd(
        &s,
        &res,
        &[
            "--template",
            bad_template.to_str().unwrap(),
            "--junit",
            missing_dir.to_str().unwrap(),
        ],
    ));
    let log = text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("--template"), "{log}");
    assert!(log.contains("--junit"), "{log}");
    assert!(!res.exists(), "created {}", res.display());
}

#[test]
fn a_report_taken_mid_sweep_says_running_not_interrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let s = spec(tmp.path(), "live", 20000, "[0]", "");
    let mut sweep = spawn(sweep_cmd(&s, &res, &[]));
    wait_for(
        "the run's first metric rows",
        Duration::from_secs(60),
        || {
            std::fs::read_dir(res.join("live/runs"))
                .ok()
                .and_then(|mut d| d.next())
                .and_then(|e| e.ok())
                .is_some_and(|e| metrics_rows(&res, "live", e.file_name().to_str().unwrap()) > 2)
        },
    );
    let junit = tmp.path().join("live.xml");
    let out = run({
        let mut c = Command::new(bin());
        c.arg("report")
            .arg(res.join("live"))
            .arg("--junit")
            .arg(&junit);
        c
    });
    let log = text(&out);
    assert_eq!(out.status.code(), Some(12), "{log}");
    assert!(log.contains("0:RUNNING"), "{log}");
    assert!(
        log.contains(&format!("running sweep (pid {}", sweep.id())),
        "{log}"
    );
    let report = std::fs::read_to_string(res.join("live/VALIDATION_live.md")).unwrap();
    assert!(report.contains("the sweep is still running"), "{report}");
    assert!(!report.contains("INTERRUPTED"), "{report}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<skipped message=\"running:"), "{xml}");
    // Once the sweep is gone without recording the run's end, the same run is INTERRUPTED.
    signal(sweep.id(), "-KILL");
    let _ = sweep.wait();
    wait_for("the orphaned child to end", Duration::from_secs(30), || {
        pids_with(res.to_str().unwrap()).is_empty()
    });
    let out = run({
        let mut c = Command::new(bin());
        c.arg("report").arg(res.join("live"));
        c
    });
    let log = text(&out);
    assert!(log.contains("0:INTERRUPTED"), "{log}");
}
