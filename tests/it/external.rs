//! External trainers (issue 16) end to end: the real binary sweeps `tests/fixtures/external/
//! trainer.sh`, a trainer written in bash, through each way a run can go (completed, crashed,
//! hung, NaN, a missing column, fail-fast), through spec errors, through a killed sweep, and
//! checks what its files say: `run.json`, `metrics.csv`, `summary.csv`, the VALIDATION report,
//! and what the trainer itself saw (it writes `seen.env` and `seen_config.yaml` in its run
//! folder). The trainer's modes are documented in the script.
//!
//! A trainer's processes carry a marker unique to the test (the test binary's pid and the test's
//! name), so a test can tell from `/proc` that none of them outlived its sweep.

use crate::common::{bin, repo, sweep, text};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The folder of the bash trainer and the user's config it reads.
fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/external")
}

/// A marker for the processes of one test's trainers, unique across concurrent test binaries.
fn marker(test: &str) -> String {
    format!("td3x{}-{test}", std::process::id())
}

/// The mapping most tests use: the trainer's own column names onto the criteria's.
const MAPPING: &str = "{ train_step: step, actor_cnn_grad_norm: actor_cnn_gn, q_abs_max: q_max }";

/// The arguments after the mode and the marker: every placeholder once.
const ARGS: &str = r#"--config, "{config}", --seed, "{seed}", --steps, "{steps}", --out, "{run_dir}", --id, "{run_id}""#;

/// A sweep file whose trainer is `trainer.sh MODE MARKER ARGS...`, run in the fixtures folder.
struct SweepFile<'a> {
    name: &'a str,
    mode: &'a str,
    args: &'a str,
    metrics: &'a str,
    steps: u64,
    seeds: u32,
    resources: &'a str,
    /// More top-level YAML: grid, timeout, criteria.
    extra: &'a str,
}

impl<'a> SweepFile<'a> {
    fn new(name: &'a str, mode: &'a str) -> SweepFile<'a> {
        SweepFile {
            name,
            mode,
            args: ARGS,
            metrics: MAPPING,
            steps: 500,
            seeds: 1,
            resources: "{ devices: cpu, threads_per_run: 1 }",
            extra: "",
        }
    }

    /// Writes `DIR/NAME.yaml`; the trainer's processes carry `marker`.
    fn write(&self, dir: &Path, marker: &str) -> PathBuf {
        let text = format!(
            "name: {name}\nbase: {base}\ntrainer:\n  command: [./trainer.sh, {mode}, {marker}, {args}]\n  workdir: {workdir}\n  metrics: {metrics}\n  env: {{ TRAINER_NOTE: \"note-{{run_id}}\" }}\nsteps: {steps}\nseeds: {seeds}\nresources: {resources}\n{extra}",
            name = self.name,
            base = fixtures().join("agent.yaml").display(),
            mode = self.mode,
            args = self.args,
            workdir = fixtures().display(),
            metrics = self.metrics,
            steps = self.steps,
            seeds = self.seeds,
            resources = self.resources,
            extra = self.extra,
        );
        let p = dir.join(format!("{}.yaml", self.name));
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// `td3-sweep sweep SPEC --results RESULTS EXTRA...` with a 2 s kill grace, not yet started.
fn sweep_cmd(spec: &Path, results: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("sweep")
        .arg(spec)
        .arg("--results")
        .arg(results)
        .args(extra)
        .current_dir(repo())
        .env("TD3_SWEEP_KILL_GRACE_S", "2");
    c
}

/// The run folders of sweep `name`, sorted.
fn run_dirs(results: &Path, name: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(results.join(name).join("runs"))
        .unwrap_or_else(|e| panic!("{}/{name}/runs: {e}", results.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// The only run folder of sweep `name`.
fn only_run(results: &Path, name: &str, log: &str) -> PathBuf {
    let dirs = run_dirs(results, name);
    assert_eq!(dirs.len(), 1, "{dirs:?}\n{log}");
    dirs.into_iter().next().unwrap()
}

fn record(dir: &Path) -> Value {
    let p = dir.join("run.json");
    serde_json::from_str(
        &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

fn s<'v>(v: &'v Value, key: &str) -> &'v str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is not a string in {v:#}"))
}

/// What the trainer saw: its arguments (`arg`, in order) and its variables (`VAR`, absent when
/// unset), from `seen.env`.
struct Seen {
    args: Vec<String>,
    pwd: String,
    vars: BTreeMap<String, String>,
}

fn seen(dir: &Path) -> Seen {
    let p = dir.join("seen.env");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut out = Seen {
        args: Vec::new(),
        pwd: String::new(),
        vars: BTreeMap::new(),
    };
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue; // "VAR unset"
        };
        match k {
            "arg" => out.args.push(v.to_string()),
            "pwd" => out.pwd = v.to_string(),
            _ => {
                out.vars.insert(k.to_string(), v.to_string());
            }
        }
    }
    out
}

/// The rows of a CSV file, each as column → cell.
fn csv_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            header
                .iter()
                .cloned()
                .zip(rec.iter().map(String::from))
                .collect()
        })
        .collect()
}

/// One column of a run's `metrics.csv`.
fn column(dir: &Path, name: &str) -> Vec<String> {
    csv_rows(&dir.join("metrics.csv"))
        .into_iter()
        .map(|r| r[name].clone())
        .collect()
}

fn lines_in(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .count()
}

fn report(results: &Path, name: &str) -> String {
    let p = results.join(name).join(format!("VALIDATION_{name}.md"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The section of `report` from the heading `### title` to the next heading.
fn section<'r>(report: &'r str, title: &str) -> &'r str {
    let head = format!("\n### {title}\n");
    let start = report
        .find(&head)
        .unwrap_or_else(|| panic!("no section `{title}` in:\n{report}"));
    let body = &report[start + head.len()..];
    &body[..body.find("\n#").unwrap_or(body.len())]
}

/// "PID CMDLINE" of each live (not zombie) process whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.parse::<u32>().is_err() {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'));
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if !zombie && cmd.contains(needle) {
            out.push(format!("{name} {cmd}"));
        }
    }
    out
}

/// The processes still carrying `marker` after waiting up to `timeout` for all of them to end.
fn left_after(marker: &str, timeout: Duration) -> Vec<String> {
    let t = Instant::now();
    loop {
        let left = processes_with(marker);
        if left.is_empty() || t.elapsed() >= timeout {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGKILL to every process carrying `marker` (cleaning up after a failed test).
fn kill_all(marker: &str) {
    for p in processes_with(marker) {
        let pid = p.split(' ').next().unwrap();
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
}

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The sweep's exit and output if it ends within `timeout`, else `None` (it is still running).
fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<Output> {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if child.try_wait().unwrap().is_some() {
            let mut out = Output {
                status: child.wait().unwrap(),
                stdout: Vec::new(),
                stderr: Vec::new(),
            };
            use std::io::Read;
            if let Some(mut o) = child.stdout.take() {
                o.read_to_end(&mut out.stdout).unwrap();
            }
            if let Some(mut e) = child.stderr.take() {
                e.read_to_end(&mut out.stderr).unwrap();
            }
            return Some(out);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The trainer saw what the placeholders and `TD3SWEEP_*` promise, and `run.json`'s invocation
/// is exactly what it ran: the same argv, workdir and environment.
fn check_invocation(dir: &Path, rec: &Value, test_marker: &str) {
    let id = dir.file_name().unwrap().to_str().unwrap();
    let seen = seen(dir);
    let d = dir.display().to_string();
    let expected: BTreeMap<&str, String> = [
        ("TD3SWEEP_CONFIG", format!("{d}/config.yaml")),
        ("TD3SWEEP_RUN_DIR", d.clone()),
        ("TD3SWEEP_SEED", "0".to_string()),
        ("TD3SWEEP_STEPS", "500".to_string()),
        ("TD3SWEEP_RUN_ID", id.to_string()),
        ("TD3SWEEP_METRICS", format!("{d}/trainer_metrics.csv")),
        ("CUDA_VISIBLE_DEVICES", String::new()),
        ("OMP_NUM_THREADS", "1".to_string()),
        ("TRAINER_NOTE", format!("note-{id}")),
    ]
    .into_iter()
    .collect();
    for (k, v) in &expected {
        assert_eq!(seen.vars.get(*k), Some(v), "{k} as the trainer saw it");
    }
    let args = [
        "ok",
        test_marker,
        "--config",
        &expected["TD3SWEEP_CONFIG"],
        "--seed",
        "0",
        "--steps",
        "500",
        "--out",
        &d,
        "--id",
        id,
    ];
    assert_eq!(
        seen.args, args,
        "the trainer's arguments, placeholders filled"
    );
    assert_eq!(
        std::fs::canonicalize(&seen.pwd).unwrap(),
        std::fs::canonicalize(fixtures()).unwrap(),
        "it ran in `workdir`"
    );
    let inv = &rec["invocation"];
    let argv: Vec<&str> = inv["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(argv[0], "./trainer.sh", "{inv:#}");
    assert_eq!(argv[1..], seen.args, "{inv:#}");
    assert_eq!(s(inv, "workdir"), fixtures().display().to_string());
    for (k, v) in &expected {
        assert_eq!(inv["env"][*k].as_str(), Some(v.as_str()), "{k} in {inv:#}");
    }
}

/// `{config}` as the trainer read it: the user's file in its own structure, with the run's
/// override applied and everything else as the base has it. Returns the overridden value.
fn check_config(dir: &Path, rec: &Value) -> f64 {
    let cfg: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("seen_config.yaml")).unwrap())
            .unwrap();
    let lr = cfg["networks"]["cnn"]["actor_cnn_lr"].as_f64().unwrap();
    let swept: f64 = s(&rec["swept"], "networks.cnn.actor_cnn_lr")
        .parse()
        .unwrap();
    assert_eq!(lr, swept, "{cfg:?}");
    assert_eq!(
        cfg["networks"]["cnn"]["learning_rate"].as_f64(),
        Some(1.0e-4)
    );
    assert_eq!(
        cfg["networks"]["cnn"]["channels"],
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>("[32, 64]").unwrap()
    );
    assert_eq!(cfg["training"]["batch_size"].as_i64(), Some(64));
    assert_eq!(cfg["training"]["use_her"].as_bool(), Some(false));
    assert!(cfg["training"]["note"].is_null(), "{cfg:?}");
    lr
}

/// `metrics.csv` of an `ok` run: mapped columns under the criteria's names, critic_loss taken as
/// it is, env_step defaulting to the training step, a metric the trainer does not log empty.
fn check_metrics(dir: &Path) {
    let steps = ["100", "200", "300", "400", "500"];
    assert_eq!(column(dir, "train_step"), steps);
    assert_eq!(column(dir, "env_step"), steps);
    let num = |c: &str| -> Vec<f64> { column(dir, c).iter().map(|v| v.parse().unwrap()).collect() };
    assert_eq!(num("actor_cnn_grad_norm"), [1.5, 2.5, 3.5, 4.5, 5.5]);
    assert_eq!(num("q_abs_max"), [10.0, 20.0, 30.0, 40.0, 50.0]);
    assert_eq!(num("critic_loss"), [0.25; 5]);
    assert!(column(dir, "critic_cnn_grad_norm")
        .iter()
        .all(String::is_empty));
}

#[test]
fn a_completed_run_maps_its_columns_and_records_how_the_trainer_ran() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let m = marker("ok");
    let spec = SweepFile {
        extra: "grid:\n  networks.cnn.actor_cnn_lr: [1.0e-5, 2.0e-5]\n",
        ..SweepFile::new("ext_ok", "ok")
    }
    .write(tmp.path(), &m);
    let out = sweep(&spec, &res, &[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "every run PASSes: {log}");
    let dirs = run_dirs(&res, "ext_ok");
    assert_eq!(dirs.len(), 2, "{log}");
    let mut lrs = Vec::new();
    for dir in &dirs {
        let rec = record(dir);
        assert_eq!(s(&rec, "outcome"), "completed", "{rec:#}");
        assert_eq!(rec["steps_done"], 500, "{rec:#}");
        assert!(rec["reason"].is_null(), "{rec:#}");
        check_invocation(dir, &rec, &m);
        lrs.push(check_config(dir, &rec));
        check_metrics(dir);
    }
    lrs.sort_by(f64::total_cmp);
    assert_eq!(lrs, [1.0e-5, 2.0e-5], "each run got its own grid value");

    let summary = csv_rows(&res.join("ext_ok/summary.csv"));
    assert_eq!(summary.len(), 2, "{summary:?}");
    for row in &summary {
        assert_eq!(row["outcome"], "completed", "{row:?}");
        assert_eq!(row["max_actor_cnn_grad_norm"], "5.5", "{row:?}");
        assert_eq!(row["max_q_abs"], "50", "{row:?}");
    }
}

#[test]
fn a_crashed_trainer_is_crashed_with_its_exit_code_and_last_stderr_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let spec = SweepFile::new("ext_crash", "crash").write(tmp.path(), &marker("crash"));
    let out = sweep(&spec, &res, &[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(11), "a crash FAILs: {log}");
    let dir = only_run(&res, "ext_crash", &log);
    let rec = record(&dir);
    assert_eq!(s(&rec, "outcome"), "crashed", "{rec:#}");
    assert!(
        s(&rec, "reason").contains("ended with exit code 7"),
        "{rec:#}"
    );
    assert_eq!(rec["steps_done"], 300, "{rec:#}");
    assert_eq!(column(&dir, "train_step"), ["100", "200", "300"]);
    let tail: Vec<&str> = s(&rec, "stderr_tail").lines().collect();
    let expected: Vec<String> = (6..=25)
        .map(|n| format!("stderr line {n} of the crash"))
        .collect();
    assert_eq!(tail, expected, "the last 20 lines of the trainer's stderr");
    let stderr_log = std::fs::read_to_string(dir.join("stderr.log")).unwrap();
    assert!(
        stderr_log.contains("stderr line 1 of the crash\n"),
        "all of it is in stderr.log: {stderr_log}"
    );
    let summary = csv_rows(&res.join("ext_crash/summary.csv"));
    assert_eq!(summary[0]["outcome"], "crashed");
    assert!(summary[0]["reason"].contains("code 7"), "{summary:?}");
    let report = report(&res, "ext_crash");
    assert!(
        report.contains("crashed at 300/500 steps") && report.contains("ended with exit code 7"),
        "{report}"
    );
}

#[test]
fn the_report_quotes_a_crashed_trainers_last_stderr_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let spec = SweepFile::new("ext_crash_report", "crash").write(tmp.path(), &marker("crashrep"));
    let out = sweep(&spec, &res, &[]);
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    let report = report(&res, "ext_crash_report");
    for n in 6..=25 {
        assert!(
            report.contains(&format!("stderr line {n} of the crash")),
            "line {n} of the last 20 is quoted:\n{report}"
        );
    }
    assert!(
        !report.contains("stderr line 5 of the crash"),
        "only the last 20 lines:\n{report}"
    );
}

#[test]
fn a_hung_trainer_times_out_and_its_worker_goes_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let m = marker("hang");
    let spec = SweepFile {
        extra: "timeout: 3s\n",
        ..SweepFile::new("ext_hang", "hang")
    }
    .write(tmp.path(), &m);
    let t = Instant::now();
    let out = sweep_cmd(&spec, &res, &[]).output().unwrap();
    let wall = t.elapsed();
    let log = text(&out);
    // The worker ignores SIGTERM: only the SIGKILL to the trainer's whole group ends it.
    let left = left_after(&m, Duration::from_secs(5));
    kill_all(&m);
    assert!(
        left.is_empty(),
        "left running after the sweep: {left:#?}\n{log}"
    );
    assert_eq!(out.status.code(), Some(11), "{log}");
    let dir = only_run(&res, "ext_hang", &log);
    let rec = record(&dir);
    assert_eq!(s(&rec, "outcome"), "timeout", "{rec:#}");
    assert!(s(&rec, "reason").contains("timed out after 3 s"), "{rec:#}");
    assert_eq!(rec["steps_done"], 200, "{rec:#}");
    assert_eq!(column(&dir, "train_step"), ["100", "200"]);
    // 3 s of timeout (the trainer logs its 2 rows well within it), then at most the 2 s grace.
    assert!(wall < Duration::from_secs(20), "{wall:?}\n{log}");
    assert_eq!(
        csv_rows(&res.join("ext_hang/summary.csv"))[0]["outcome"],
        "timeout"
    );
}

#[test]
fn a_stalled_trainer_is_ended_by_the_stall_timeout_long_before_its_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let m = marker("stall");
    let spec = SweepFile {
        extra: "timeout: 10m\nstall_timeout: 2s\n",
        ..SweepFile::new("ext_stall", "hang")
    }
    .write(tmp.path(), &m);
    let t = Instant::now();
    let out = sweep_cmd(&spec, &res, &[]).output().unwrap();
    let wall = t.elapsed();
    let log = text(&out);
    let left = left_after(&m, Duration::from_secs(5));
    kill_all(&m);
    assert!(left.is_empty(), "left running: {left:#?}\n{log}");
    let rec = record(&only_run(&res, "ext_stall", &log));
    assert_eq!(s(&rec, "outcome"), "timeout", "{rec:#}");
    assert_eq!(
        s(&rec, "reason"),
        "stalled: no new metrics row for 2s (stall_timeout)",
        "{rec:#}"
    );
    assert_eq!(rec["steps_done"], 200, "{rec:#}");
    // 2 s without a row, then at most the 2 s grace: nowhere near the 10 min timeout.
    assert!(wall < Duration::from_secs(30), "{wall:?}\n{log}");
}

/// A process the trainer detached into a session of its own is out of its process group, but it
/// must not hold the sweep: the run ends when the trainer does.
#[test]
fn a_process_the_trainer_detached_does_not_hold_up_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let m = marker("detach");
    let spec = SweepFile::new("ext_detach", "detach").write(tmp.path(), &m);
    let t = Instant::now();
    let out = sweep_cmd(&spec, &res, &[]).output().unwrap();
    let wall = t.elapsed();
    let log = text(&out);
    kill_all(&m);
    let rec = record(&only_run(&res, "ext_detach", &log));
    assert_eq!(s(&rec, "outcome"), "completed", "{rec:#}");
    // The detached `sleep 30` holds the trainer's stdout; the sweep must not wait for it.
    assert!(wall < Duration::from_secs(20), "{wall:?}\n{log}");
}

#[test]
fn a_nan_ends_the_trainer_as_diverged_at_its_step() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let spec = SweepFile {
        steps: 600,
        ..SweepFile::new("ext_nan", "nan")
    }
    .write(tmp.path(), &marker("nan"));
    let out = sweep(&spec, &res, &[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(11), "{log}");
    let dir = only_run(&res, "ext_nan", &log);
    let rec = record(&dir);
    assert_eq!(s(&rec, "outcome"), "diverged", "{rec:#}");
    assert_eq!(rec["first_nonfinite_step"], 300, "{rec:#}");
    let reason = s(&rec, "reason");
    assert!(
        reason.contains("q_abs_max") && reason.contains("300"),
        "{rec:#}"
    );
    // Ended by the harness (SIGTERM) before its 6 rows: past step 300 it takes 0.5 s a row.
    assert!(s(&rec, "exit").contains("SIGTERM"), "{rec:#}");
    let trainer_rows = lines_in(&dir.join("trainer_metrics.csv")) - 1;
    assert!(
        trainer_rows < 6,
        "the trainer wrote {trainer_rows} rows of 6"
    );
    let steps = column(&dir, "train_step");
    assert_eq!(steps[..3], ["100", "200", "300"], "{steps:?}");
    assert!(steps.len() < 6, "{steps:?}");
    let evidence = csv_rows(&dir.join("evidence.csv"));
    let first = evidence
        .iter()
        .find(|r| r["marker"] == "first_nonfinite")
        .unwrap_or_else(|| panic!("{evidence:?}"));
    assert_eq!(first["train_step"], "300", "{evidence:?}");
    assert_eq!(
        csv_rows(&res.join("ext_nan/summary.csv"))[0]["outcome"],
        "diverged"
    );
}

/// Criteria where actor_cnn_grad_norm must stay below `actor_fail` and critic_cnn_grad_norm, which
/// the trainer never logs, would FAIL at any value at all.
fn criteria(actor_fail: &str, stop_on_fail: bool) -> String {
    format!(
        "criteria:\n  stop_on_fail: {stop_on_fail}\n  rules:\n    - metric: actor_cnn_grad_norm\n      aggregate: max\n      fail_above: {actor_fail}\n    - metric: critic_cnn_grad_norm\n      aggregate: max\n      fail_above: 1.0e-9\n"
    )
}

#[test]
fn a_metric_the_trainer_does_not_log_reads_not_measured_and_does_not_fail_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let c = criteria("1000", true);
    let spec = SweepFile {
        extra: &c,
        ..SweepFile::new("ext_missing", "ok")
    }
    .write(tmp.path(), &marker("missing"));
    let out = sweep(&spec, &res, &[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "PASS on what it logs: {log}");
    let dir = only_run(&res, "ext_missing", &log);
    let id = dir.file_name().unwrap().to_str().unwrap();
    let rec = record(&dir);
    assert_eq!(s(&rec, "outcome"), "completed", "{rec:#}");
    assert!(
        s(&rec["extra"], "not_logged")
            .split(',')
            .any(|m| m == "critic_cnn_grad_norm"),
        "{rec:#}"
    );
    let report = report(&res, "ext_missing");
    let critic = section(&report, "critic_cnn_grad_norm");
    let row = critic
        .lines()
        .find(|l| l.starts_with(&format!("| {id} |")))
        .unwrap_or_else(|| panic!("no row for {id}:\n{critic}"));
    assert!(row.contains("| not measured |"), "{row}");
    let actor = section(&report, "actor_cnn_grad_norm");
    assert!(
        actor
            .lines()
            .any(|l| l.starts_with(&format!("| {id} | PASS |"))),
        "the logged metric is judged:\n{actor}"
    );
    assert!(
        report.contains(&format!("### {id} — PASS")),
        "the run PASSes:\n{report}"
    );
}

#[test]
fn the_status_line_counts_rules_the_trainer_does_not_log() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let c = criteria("1000", true);
    let spec = SweepFile {
        extra: &c,
        ..SweepFile::new("ext_status", "ok")
    }
    .write(tmp.path(), &marker("status"));
    let out = sweep(&spec, &res, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = report(&res, "ext_status");
    let status = report
        .lines()
        .find(|l| l.starts_with("**Status:"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        status.contains("not measured"),
        "the status line says a rule measured nothing: {status}"
    );
}

#[test]
fn a_mapping_to_a_column_the_header_lacks_is_noted_in_run_json() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let spec = SweepFile {
        metrics: "{ train_step: step, actor_cnn_grad_norm: actor_cnn_gn, q_abs_max: q_max, critic_cnn_grad_norm: critic_gn }",
        ..SweepFile::new("ext_unmapped", "ok")
    }
    .write(tmp.path(), &marker("unmapped"));
    let out = sweep(&spec, &res, &[]);
    let log = text(&out);
    let dir = only_run(&res, "ext_unmapped", &log);
    let rec = record(&dir);
    assert_eq!(s(&rec, "outcome"), "completed", "{rec:#}");
    let notes = s(&rec["extra"], "harness_notes");
    assert!(
        notes.contains("critic_cnn_grad_norm")
            && notes.contains("`critic_gn`")
            && notes.contains("lacks"),
        "{notes}"
    );
    assert!(column(&dir, "critic_cnn_grad_norm")
        .iter()
        .all(String::is_empty));
    assert_eq!(column(&dir, "actor_cnn_grad_norm").len(), 5);
}

#[test]
fn a_header_without_the_training_step_column_is_a_crash_naming_the_header() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let spec = SweepFile::new("ext_noheader", "noheader").write(tmp.path(), &marker("noheader"));
    let out = sweep(&spec, &res, &[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(11), "{log}");
    let dir = only_run(&res, "ext_noheader", &log);
    let rec = record(&dir);
    assert_eq!(s(&rec, "outcome"), "crashed", "{rec:#}");
    let reason = s(&rec, "reason");
    assert!(
        reason.contains("training-step column `step`") && reason.contains("iteration,q_max"),
        "{reason}"
    );
    assert_eq!(
        lines_in(&dir.join("metrics.csv")),
        1,
        "a header and no rows"
    );
}

/// The 1-based line of the first line of `spec` containing `needle`.
fn line_of(spec: &Path, needle: &str) -> usize {
    std::fs::read_to_string(spec)
        .unwrap()
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no `{needle}` in {}", spec.display()))
        + 1
}

/// Runs `spec`, which must be refused before anything runs; returns its stderr.
fn refused(spec: &Path, res: &Path) -> String {
    let out = sweep(spec, res, &[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(2), "bad input: {log}");
    assert!(!res.exists(), "nothing under results/: {log}");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn typos_wrong_types_and_unknown_placeholders_are_errors_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let m = marker("typo");

    let typo = SweepFile {
        extra: "grid:\n  networks.cnn.actor_cnn_rl: [1.0e-5, 2.0e-5]\n",
        ..SweepFile::new("ext_typo", "ok")
    }
    .write(tmp.path(), &m);
    let err = refused(&typo, &res);
    let at = format!(
        "{}:{}:3: error",
        typo.display(),
        line_of(&typo, "actor_cnn_rl")
    );
    assert!(err.contains(&at), "expected `{at}` in:\n{err}");
    assert!(
        err.contains("did you mean `networks.cnn.actor_cnn_lr`"),
        "{err}"
    );

    let types = SweepFile {
        extra: "grid:\n  networks.cnn.actor_cnn_lr: [fast]\n  training.batch_size: [32, 64.5]\n",
        ..SweepFile::new("ext_types", "ok")
    }
    .write(tmp.path(), &m);
    let err = refused(&types, &res);
    let lr = format!(
        "{}:{}:31: error",
        types.display(),
        line_of(&types, "[fast]")
    );
    assert!(err.contains(&lr), "expected `{lr}` in:\n{err}");
    assert!(
        err.contains("must be a number like the base's value"),
        "{err}"
    );
    let bs = format!("{}:{}:29: error", types.display(), line_of(&types, "64.5"));
    assert!(err.contains(&bs), "expected `{bs}` in:\n{err}");
    assert!(
        err.contains("must be an integer like the base's value"),
        "{err}"
    );
    assert!(
        err.contains("2 problems found"),
        "every problem at once:\n{err}"
    );

    let placeholder = SweepFile {
        args: r#"--seed, "{sed}""#,
        ..SweepFile::new("ext_placeholder", "ok")
    }
    .write(tmp.path(), &m);
    let err = refused(&placeholder, &res);
    let at = format!(
        "{}:{}:",
        placeholder.display(),
        line_of(&placeholder, "{sed}")
    );
    assert!(err.contains(&at), "expected `{at}` in:\n{err}");
    assert!(err.contains("unknown placeholder `{sed}`"), "{err}");
    assert!(err.contains("did you mean `{seed}`"), "{err}");
}

#[test]
fn the_caret_points_at_an_unknown_placeholder_in_a_quoted_argument() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let spec = SweepFile {
        args: r#""--seed={sed}""#,
        ..SweepFile::new("ext_caret", "ok")
    }
    .write(tmp.path(), &marker("caret"));
    let err = refused(&spec, &res);
    let line = std::fs::read_to_string(&spec)
        .unwrap()
        .lines()
        .nth(line_of(&spec, "{sed}") - 1)
        .unwrap()
        .to_string();
    let col = line.find("{sed}").unwrap() + 1;
    let at = format!(
        "{}:{}:{col}: error",
        spec.display(),
        line_of(&spec, "{sed}")
    );
    assert!(err.contains(&at), "expected `{at}` in:\n{err}");
}

/// A sweep running in the background. Dropping it (a test that failed half-way included) kills
/// the sweep and every process that carries its marker.
struct Running {
    child: Child,
    marker: String,
    results: PathBuf,
    /// The run's folder.
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        kill_all(&self.marker);
    }
}

/// Starts a sweep `name` of one `slow` run and returns once its trainer runs (its `started` file
/// is there) with its worker and its own wait, so that "none left" afterwards means something.
fn started(name: &str, test: &str, tmp: &Path) -> Running {
    let res = tmp.join("results");
    let m = marker(test);
    let spec = SweepFile::new(name, "slow").write(tmp, &m);
    let child = sweep_cmd(&spec, &res, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = Running {
        child,
        marker: m,
        results: res,
        dir: PathBuf::new(),
    };
    let runs = r.results.join(name).join("runs");
    wait_for("the trainer to start", Duration::from_secs(30), || {
        let first = std::fs::read_dir(&runs)
            .ok()
            .and_then(|mut it| it.next())
            .and_then(Result::ok);
        match first {
            Some(e) if e.path().join("started").exists() => {
                r.dir = e.path();
                true
            }
            _ => false,
        }
    });
    // `started` comes just before the trainer's own wait, and its worker may still be on its way.
    let wanted = [
        format!("worker-{}", r.marker),
        format!("sleeper-{}", r.marker),
        "trainer.sh".to_string(),
    ];
    wait_for(
        "the trainer, its worker and its wait",
        Duration::from_secs(10),
        || {
            let procs = processes_with(&r.marker);
            wanted
                .iter()
                .all(|w| procs.iter().any(|p| p.contains(w.as_str())))
        },
    );
    r
}

#[test]
fn a_sigkilled_sweep_leaves_no_trainer_process() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = started("ext_sigkill", "sigkill", tmp.path());
    signal(r.child.id(), "-KILL");
    r.child.wait().unwrap();
    // The harness sees the sweep's pipe close: SIGTERM to the group, 1.6 s, SIGKILL.
    let left = left_after(&r.marker, Duration::from_secs(15));
    assert!(
        left.is_empty(),
        "left running after the sweep was killed: {left:#?}"
    );
    let rec = record(&r.dir);
    assert_eq!(s(&rec, "outcome"), "interrupted", "{rec:#}");
    assert!(s(&rec, "reason").contains("sweep went away"), "{rec:#}");
}

#[test]
fn sigterm_to_the_sweep_interrupts_the_run_and_leaves_no_process() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = started("ext_sigterm", "sigterm", tmp.path());
    signal(r.child.id(), "-TERM");
    let out = wait_timeout(&mut r.child, Duration::from_secs(20));
    let left = left_after(&r.marker, Duration::from_secs(2));
    let out = out
        .unwrap_or_else(|| panic!("the sweep did not end within 20 s of SIGTERM; left: {left:#?}"));
    let log = text(&out);
    assert!(
        left.is_empty(),
        "left running after the sweep: {left:#?}\n{log}"
    );
    assert_eq!(out.status.code(), Some(130), "{log}");
    let rec = record(&r.dir);
    assert_eq!(s(&rec, "outcome"), "interrupted", "{rec:#}");
    assert_eq!(rec["steps_done"], 100, "{rec:#}");
    assert_eq!(
        csv_rows(&r.results.join("ext_sigterm/summary.csv"))[0]["outcome"],
        "interrupted"
    );
}

#[test]
fn a_sigkilled_harness_has_its_trainer_group_killed_by_the_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = started("ext_harness", "harness", tmp.path());
    let harness: Vec<String> = processes_with(&r.marker)
        .into_iter()
        .filter(|p| p.contains(" external --run-dir "))
        .collect();
    assert_eq!(harness.len(), 1, "{harness:#?}");
    let pid: u32 = harness[0].split(' ').next().unwrap().parse().unwrap();
    signal(pid, "-KILL");
    let out = wait_timeout(&mut r.child, Duration::from_secs(15));
    let left = left_after(&r.marker, Duration::from_secs(1));
    let out = out.unwrap_or_else(|| {
        panic!("the sweep did not end within 15 s of its harness's death; left: {left:#?}")
    });
    assert!(left.is_empty(), "left running: {left:#?}\n{}", text(&out));
    let rec = record(&r.dir);
    assert_eq!(s(&rec, "outcome"), "crashed", "{rec:#}");
    assert!(s(&rec, "exit").contains("signal 9"), "{rec:#}");
}

#[test]
fn cpu_slots_give_the_trainer_no_gpu_and_threads_per_run_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let spec = SweepFile {
        seeds: 2,
        resources: "{ devices: cpu, threads_per_run: 2 }",
        ..SweepFile::new("ext_cpu", "ok")
    }
    .write(tmp.path(), &marker("cpu"));
    let out = sweep(&spec, &res, &[]);
    let log = text(&out);
    let dirs = run_dirs(&res, "ext_cpu");
    assert_eq!(dirs.len(), 2, "{log}");
    for dir in &dirs {
        let seen = seen(dir);
        assert_eq!(
            seen.vars.get("CUDA_VISIBLE_DEVICES").map(String::as_str),
            Some(""),
            "set, and empty: {dir:?}"
        );
        assert_eq!(
            seen.vars.get("OMP_NUM_THREADS").map(String::as_str),
            Some("2")
        );
        let rec = record(dir);
        assert_eq!(rec["invocation"]["env"]["CUDA_VISIBLE_DEVICES"], "");
        assert_eq!(rec["invocation"]["env"]["OMP_NUM_THREADS"], "2");
        assert_eq!(s(&rec, "device"), "cpu");
    }
}

/// `devices: [0, 1]`: each run's slot is its GPU. Where libtorch sees fewer than two GPUs, the
/// plan still shows the slots, and the sweep refuses to run (a run on a missing GPU would
/// silently train on the CPU), so only the plan can be checked there.
#[test]
fn gpu_slots_reach_the_trainer_as_cuda_visible_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let spec = SweepFile {
        seeds: 2,
        resources: "{ devices: [0, 1], runs_per_device: 1, threads_per_run: 1 }",
        ..SweepFile::new("ext_gpu", "ok")
    }
    .write(tmp.path(), &marker("gpu"));
    let plan = sweep(&spec, &res, &["--dry-run"]);
    let plan_log = text(&plan);
    assert_eq!(plan.status.code(), Some(0), "{plan_log}");
    let stdout = String::from_utf8_lossy(&plan.stdout);
    for slot in ["slot 0 (gpu 0)", "slot 1 (gpu 1)"] {
        assert!(stdout.contains(slot), "{slot} in the plan:\n{plan_log}");
    }
    let out = sweep(&spec, &res, &[]);
    let log = text(&out);
    if tch::Cuda::device_count() >= 2 {
        let mut seen_devices: Vec<String> = run_dirs(&res, "ext_gpu")
            .iter()
            .map(|d| seen(d).vars["CUDA_VISIBLE_DEVICES"].clone())
            .collect();
        seen_devices.sort();
        assert_eq!(seen_devices, ["0", "1"], "{log}");
    } else {
        assert_eq!(out.status.code(), Some(2), "{log}");
        assert!(log.contains("asks for GPU"), "{log}");
        assert!(!res.exists(), "{log}");
    }
}

#[test]
fn dry_run_prints_each_runs_command_line_and_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let spec = SweepFile {
        seeds: 2,
        ..SweepFile::new("ext_dry", "ok")
    }
    .write(tmp.path(), &marker("dry"));
    let plan = sweep(&spec, &res, &["--dry-run"]);
    let plan_log = text(&plan);
    assert_eq!(plan.status.code(), Some(0), "{plan_log}");
    assert!(!res.exists(), "a dry run creates nothing: {plan_log}");
    // Per run: its id, its command line, its environment.
    let mut planned: BTreeMap<String, (String, BTreeMap<String, String>)> = BTreeMap::new();
    let mut current = String::new();
    for line in String::from_utf8_lossy(&plan.stdout).lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix('[') {
            current = rest.split_once(']').unwrap().1.trim().to_string();
            planned.insert(current.clone(), Default::default());
        } else if let Some(cmd) = l.strip_prefix("command ") {
            planned.get_mut(&current).unwrap().0 = cmd.to_string();
        } else if let Some((k, v)) = l
            .strip_prefix("env ")
            .and_then(|e| e.trim().split_once('='))
        {
            planned
                .get_mut(&current)
                .unwrap()
                .1
                .insert(k.to_string(), v.to_string());
        }
    }
    assert_eq!(planned.len(), 2, "{plan_log}");

    // The real runs get exactly what the plan showed.
    let out = sweep(&spec, &res, &[]);
    let log = text(&out);
    let dirs = run_dirs(&res, "ext_dry");
    assert_eq!(dirs.len(), 2, "{log}");
    for dir in &dirs {
        let id = dir.file_name().unwrap().to_str().unwrap();
        let (command, env) = planned
            .get(id)
            .unwrap_or_else(|| panic!("{id} is not in the plan:\n{plan_log}"));
        let rec = record(dir);
        let argv: Vec<&str> = rec["invocation"]["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(command, &argv.join(" "), "{plan_log}");
        assert!(!command.contains('{'), "placeholders filled: {command}");
        let seed = s(&rec["invocation"]["env"], "TD3SWEEP_SEED");
        assert!(
            command.contains(&format!("--seed {seed} --steps 500")),
            "{command}"
        );
        for k in [
            "TD3SWEEP_CONFIG",
            "TD3SWEEP_RUN_DIR",
            "TD3SWEEP_SEED",
            "TD3SWEEP_STEPS",
            "TD3SWEEP_RUN_ID",
            "TD3SWEEP_METRICS",
            "TRAINER_NOTE",
        ] {
            assert_eq!(
                env.get(k).map(String::as_str),
                rec["invocation"]["env"][k].as_str(),
                "{k} for {id}:\n{plan_log}"
            );
        }
    }
}

#[test]
fn fail_fast_stops_a_trainer_whose_fail_is_certain() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let c = criteria("1000", true);
    let spec = SweepFile {
        extra: &c,
        ..SweepFile::new("ext_failfast", "explode")
    }
    .write(tmp.path(), &marker("failfast"));
    let out = sweep(&spec, &res, &[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(11), "{log}");
    let dir = only_run(&res, "ext_failfast", &log);
    let rec = record(&dir);
    assert_eq!(s(&rec, "outcome"), "stopped", "{rec:#}");
    let reason = s(&rec, "reason");
    assert!(
        reason.contains("fail-fast")
            && reason.contains("actor_cnn_grad_norm")
            && reason.contains("200"),
        "{reason}"
    );
    assert_eq!(rec["steps_done"], 200, "{rec:#}");
    assert!(s(&rec, "exit").contains("SIGTERM"), "{rec:#}");
    let rows = column(&dir, "train_step").len();
    assert!(rows < 5, "{rows} rows of 5 planned");
    let evidence = csv_rows(&dir.join("evidence.csv"));
    assert!(
        evidence
            .iter()
            .any(|r| r["marker"] == "fail_detected" && r["train_step"] == "200"),
        "{evidence:?}"
    );
}

#[test]
fn without_stop_on_fail_a_failing_trainer_runs_to_its_end() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let c = criteria("1000", false);
    let spec = SweepFile {
        extra: &c,
        ..SweepFile::new("ext_nofailfast", "explode")
    }
    .write(tmp.path(), &marker("nofailfast"));
    let out = sweep(&spec, &res, &[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(11), "it FAILs all the same: {log}");
    let dir = only_run(&res, "ext_nofailfast", &log);
    let rec = record(&dir);
    assert_eq!(s(&rec, "outcome"), "completed", "{rec:#}");
    assert_eq!(column(&dir, "train_step").len(), 5);
    assert!(
        s(&rec["extra"], "harness_notes").contains("FAIL certain"),
        "{rec:#}"
    );
}

/// What `just install` promises: the binary runs a sweep from the user's own folder, outside any
/// td3-sweep checkout, with nothing of ours on the PATH or in the environment; results land in
/// that folder's `results/`.
#[test]
fn a_sweep_runs_from_a_folder_outside_the_checkout() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("my-agent");
    std::fs::create_dir_all(project.join("config")).unwrap();
    std::fs::create_dir_all(project.join("sweeps")).unwrap();
    std::fs::write(project.join("config/agent.yaml"), "lr: 1.0e-3\n").unwrap();
    std::fs::write(
        project.join("train.sh"),
        "#!/bin/sh\necho train_step,critic_loss > \"$TD3SWEEP_METRICS\"\nfor i in 10 20 30; do echo \"$i,0.5\" >> \"$TD3SWEEP_METRICS\"; done\n",
    )
    .unwrap();
    std::fs::write(
        project.join("sweeps/lr.yaml"),
        "name: mine\nbase: ../config/agent.yaml\nsteps: 30\ntrainer:\n  command: [sh, train.sh]\n  workdir: ..\ngrid:\n  lr: [1.0e-3, 1.0e-4]\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["sweep", "sweeps/lr.yaml"])
        .current_dir(&project)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", tmp.path())
        .output()
        .unwrap();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let results = project.join("results/mine");
    assert!(results.join("VALIDATION_mine.md").is_file(), "{log}");
    let dirs = run_dirs(&project.join("results"), "mine");
    assert_eq!(dirs.len(), 2, "{log}");
    for d in dirs {
        assert_eq!(s(&record(&d), "outcome"), "completed");
    }
}

/// A trainer that logs every 100 steps but is asked for 550 last logs at 500: it exits 0 within
/// one logging interval of the end, so it completed, and the `completed` rule agrees.
#[test]
fn a_trainer_whose_last_row_is_within_one_interval_of_the_end_completed() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let spec = SweepFile {
        steps: 550,
        ..SweepFile::new("ext_interval", "ok")
    }
    .write(tmp.path(), &marker("interval"));
    let out = sweep(&spec, &res, &[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "completed and PASS: {log}");
    let rec = record(&only_run(&res, "ext_interval", &log));
    assert_eq!(s(&rec, "outcome"), "completed", "{rec:#}");
    assert_eq!(rec["steps_done"], 550, "{rec:#}");
    assert_eq!(rec["train_steps_done"], 500, "{rec:#}");
}

/// A trainer that starts its CSV over mid-run: metrics.csv starts over with it instead of
/// holding both attempts as one series.
#[test]
fn a_rewritten_trainer_csv_starts_metrics_over() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let spec = SweepFile::new("ext_rewrite", "rewrite").write(tmp.path(), &marker("rewrite"));
    let out = sweep(&spec, &res, &[]);
    let log = text(&out);
    let dir = only_run(&res, "ext_rewrite", &log);
    let rec = record(&dir);
    assert_eq!(s(&rec, "outcome"), "completed", "{rec:#}");
    assert_eq!(
        column(&dir, "train_step"),
        ["100", "200", "300", "400", "500"],
        "{log}"
    );
    assert!(
        s(&rec["extra"], "harness_notes").contains("rewrote its CSV"),
        "{rec:#}"
    );
}

/// Output that is not UTF-8, and a line of 200,000 bytes, pass through to stdout.log without
/// hurting the trainer.
#[test]
fn a_trainer_printing_binary_output_is_not_hurt() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let spec = SweepFile::new("ext_binary", "binary").write(tmp.path(), &marker("binary"));
    let out = sweep(&spec, &res, &[]);
    let log = text(&out);
    let dir = only_run(&res, "ext_binary", &log);
    let rec = record(&dir);
    assert_eq!(s(&rec, "outcome"), "completed", "{rec:#}");
    let stdout =
        String::from_utf8_lossy(&std::fs::read(dir.join("stdout.log")).unwrap()).into_owned();
    assert!(
        stdout.contains("caf\u{fffd} \u{fffd}\u{fffd}"),
        "{stdout:.300}"
    );
    assert!(
        stdout.contains(&"x".repeat(60_000)),
        "the long line is relayed"
    );
}

/// The default criteria's spike rule on a metric the trainer never logs (actor_loss) reads "not
/// measured", as the threshold rules do, and the status line counts it: not a PASS.
#[test]
fn a_spike_rule_on_an_unlogged_metric_reads_not_measured() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let spec = SweepFile::new("ext_spike", "ok").write(tmp.path(), &marker("spike"));
    let out = sweep(&spec, &res, &[]);
    let log = text(&out);
    let dir = only_run(&res, "ext_spike", &log);
    let id = dir.file_name().unwrap().to_str().unwrap().to_string();
    let report = report(&res, "ext_spike");
    let spikes = section(&report, "actor_loss spikes");
    let row = spikes
        .lines()
        .find(|l| l.starts_with(&format!("| {id} |")))
        .unwrap_or_else(|| panic!("no row for {id}:\n{spikes}"));
    assert!(row.contains("| not measured |"), "{row}");
    let status = report.lines().find(|l| l.starts_with("**Status:")).unwrap();
    assert!(status.contains("actor_loss spikes"), "{status}");
}

/// The shipped Stable-Baselines3 example (examples/sb3, MonitoredTD3 on Pendulum-v1) through the
/// real harness for a few hundred steps, its config shrunk by the sweep's own overrides: it
/// completes, its rows land in metrics.csv under the criteria's names, and its gradient norms are
/// measured (not empty).
#[test]
fn the_sb3_example_runs_under_td3_sweep() {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "this test needs the project's .venv with stable-baselines3 and td3sweep: run `just setup`"
    );
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let spec = tmp.path().join("sb3.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: sb3_small\nbase: {base}\ntrainer:\n  command: [{py}, train.py, --config, \"{{config}}\", --seed, \"{{seed}}\", --steps, \"{{steps}}\"]\n  workdir: {workdir}\n  q_bound: 1627\nset:\n  td3: {{ learning_starts: 100, batch_size: 32, net_arch: [32, 32] }}\n  evaluation: {{ every: 100, episodes: 1 }}\n  logging.log_every: 50\nsteps: 300\nseeds: 1\nresources: {{ devices: cpu, threads_per_run: 1 }}\ntimeout: 5m\n",
            base = repo().join("examples/sb3/config/pendulum.yaml").display(),
            py = python.display(),
            workdir = repo().join("examples/sb3").display(),
        ),
    )
    .unwrap();
    let out = sweep(&spec, &res, &[]);
    let log = text(&out);
    let dir = only_run(&res, "sb3_small", &log);
    let rec = record(&dir);
    assert_eq!(s(&rec, "outcome"), "completed", "{rec:#}\n{log}");
    assert_eq!(column(&dir, "train_step"), ["0", "50", "100", "150", "200"]);
    let norms = column(&dir, "critic_head_grad_norm");
    assert!(
        norms[1..]
            .iter()
            .all(|v| v.parse::<f64>().is_ok_and(|x| x > 0.0)),
        "{norms:?}"
    );
    let evals: Vec<String> = column(&dir, "eval_return")
        .into_iter()
        .filter(|v| !v.is_empty())
        .collect();
    assert_eq!(evals.len(), 3, "untrained, then every 100 steps: {evals:?}");
    assert_eq!(rec["q_bound"], 1627.0, "{rec:#}");
    // External runs show in TensorBoard like built-in ones.
    assert!(dir.join("events.out.tfevents.td3-sweep").is_file());
}
