//! Our TensorBoard events files, read back by TensorBoard's own Python reader.
//!
//! The reader is the `EventMultiplexer` that `tensorboard --logdir` builds on, run in the Python
//! the Gymnasium bridge uses (`TD3_SWEEP_PYTHON`, else `.venv/bin/python`). Its run names, tags,
//! steps, wall times and values must equal what `metrics.csv` holds (values as `f32`, TensorBoard's
//! scalar type). Where `tensorboard` is not importable this test FAILS, with the command that
//! installs it: a format check that skips proves nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::UNIX_EPOCH;

use td3_sweep::results::tensorboard::{refresh, tag, EVENTS_FILE};
use td3_sweep::results::{read_metrics, Metric, MetricRow, MetricsWriter, ResultsDir};
use td3_sweep::train::env::gym::python_path;

use crate::common::{repo, sweep, text};

/// Prints, per TensorBoard run under the folder `argv[1]`: its events files, the first event's
/// `file_version`, the number of raw events, and each scalar tag's points as
/// `[step, wall_time, repr(value)]` (`repr`, so NaN and infinities survive the JSON).
const READER: &str = r#"
import json, os, sys
from tensorboard.backend.event_processing import event_file_loader, event_multiplexer
logdir = sys.argv[1]
mux = event_multiplexer.EventMultiplexer().AddRunsFromDirectory(logdir)
mux.Reload()
out = {}
for run in sorted(mux.Runs()):
    acc = mux.GetAccumulator(run)
    folder = os.path.join(logdir, run)
    files = sorted(f for f in os.listdir(folder) if "tfevents" in f)
    raw = [e for f in files for e in event_file_loader.EventFileLoader(os.path.join(folder, f)).Load()]
    out[run] = {
        "files": files,
        "first_file_version": raw[0].file_version if raw else None,
        "events": len(raw),
        "scalars": {t: [[e.step, e.wall_time, repr(e.value)] for e in acc.Scalars(t)]
                    for t in acc.Tags()["scalars"]},
    }
print(json.dumps(out))
"#;

/// One TensorBoard run as the reader saw it.
#[derive(Debug, serde::Deserialize)]
struct SeenRun {
    files: Vec<String>,
    first_file_version: Option<String>,
    events: usize,
    scalars: BTreeMap<String, Vec<(u64, f64, String)>>,
}

/// Runs [`READER`] on `logdir`; fails the test where TensorBoard is missing or the reader fails.
fn read_back(logdir: &Path) -> BTreeMap<String, SeenRun> {
    let python = python_path();
    let ok = Command::new(&python)
        .args(["-c", "import tensorboard"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "tensorboard is not importable by `{}`: run `just setup` (scripts/setup.sh installs it into \
         .venv) or point TD3_SWEEP_PYTHON at a Python that has it. This test does not skip.",
        python.display()
    );
    let out = Command::new(&python)
        .args(["-c", READER])
        .arg(logdir)
        .output()
        .expect("run the TensorBoard reader");
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "reader output is not the expected JSON: {e}\n{}",
            text(&out)
        )
    })
}

/// Checks one run as TensorBoard read it against its folder's `metrics.csv`: the one events
/// file, its version, one event per row (no duplicates), and for every metric with a value the
/// same tag, steps, wall times and values.
fn assert_matches_metrics(run_dir: &Path, seen: &SeenRun) {
    let csv = run_dir.join("metrics.csv");
    let rows = read_metrics(&csv).unwrap();
    assert!(!rows.is_empty(), "{}: no rows", csv.display());
    assert_eq!(seen.files, [EVENTS_FILE], "{}", run_dir.display());
    assert_eq!(seen.first_file_version.as_deref(), Some("brain.Event:2"));
    // The version event, the START, then one event per row.
    assert_eq!(seen.events, rows.len() + 2, "{}", run_dir.display());
    let mtime = std::fs::metadata(&csv)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last_wall = rows.last().unwrap().wall_s;
    let mut expected: BTreeMap<String, Vec<(u64, f64, f64)>> = BTreeMap::new();
    for m in Metric::ALL {
        let Some(t) = tag(m) else { continue };
        let points: Vec<(u64, f64, f64)> = rows
            .iter()
            .filter_map(|r: &MetricRow| {
                let v = r.value(m)?;
                Some((
                    r.train_step,
                    mtime - (last_wall - r.wall_s),
                    v as f32 as f64,
                ))
            })
            .collect();
        if !points.is_empty() {
            expected.insert(t, points);
        }
    }
    assert_eq!(
        seen.scalars.keys().collect::<BTreeSet<_>>(),
        expected.keys().collect::<BTreeSet<_>>(),
        "{}: tags",
        run_dir.display()
    );
    for (t, want) in &expected {
        let got = &seen.scalars[t];
        assert_eq!(got.len(), want.len(), "{}: {t}: {got:?}", run_dir.display());
        for ((step, wall, value), (w_step, w_wall, w_value)) in got.iter().zip(want) {
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{t}: `{value}`"));
            let same = value == *w_value || (value.is_nan() && w_value.is_nan());
            assert!(
                *step == *w_step && same && (wall - w_wall).abs() < 1e-6,
                "{}: {t}: TensorBoard read (step {step}, wall {wall}, {value}), metrics.csv has \
                 (step {w_step}, wall {w_wall}, {w_value})",
                run_dir.display()
            );
        }
    }
}

/// Rows with what a run can log: an untrained-baseline row with only `eval_return`, empty CNN
/// columns (state observations), a NaN, an infinity, a value beyond `f32`, and a later
/// evaluation.
fn known_rows(seed: u64) -> Vec<MetricRow> {
    let s = seed as f64;
    (0..6u64)
        .map(|i| {
            let trained = i > 0;
            let x = i as f64;
            MetricRow {
                train_step: i * 100,
                env_step: i * 100 + if trained { 100 } else { 0 },
                wall_s: 0.067 + 2.0 * x,
                actor_head_grad_norm: trained.then_some(0.3 / x + s),
                critic_head_grad_norm: trained.then_some(10.9 * x),
                q_mean: trained.then_some(-0.1 * x),
                q_abs_max: trained.then_some(match i {
                    4 => 1.0e40,
                    5 => f64::INFINITY,
                    _ => 1.1 * x,
                }),
                target_q_mean: trained.then_some(0.2 * x),
                actor_loss: (i % 2 == 0 && trained).then_some(x),
                critic_loss: trained.then_some(if i == 5 { f64::NAN } else { 1.0 / x }),
                episode_return: trained.then_some(-6.4 + 0.01 * x),
                episodes: 13 * i,
                nonfinite: u64::from(i == 5),
                eval_return: (i % 3 == 0).then_some(3.75 - x),
                ..Default::default()
            }
        })
        .collect()
}

#[test]
fn tensorboard_reads_known_rows_as_written_once_per_run() {
    let tmp = tempfile::tempdir().unwrap();
    let results = ResultsDir::new(tmp.path().join("known"));
    let ids = ["baseline__s0__9c494e", "actor_cnn_lr=1e-5__s1__1299ea"];
    for (seed, id) in ids.iter().enumerate() {
        let dir = results.run(id);
        std::fs::create_dir_all(dir.path()).unwrap();
        let mut w = MetricsWriter::create(&dir.metrics_csv()).unwrap();
        for r in known_rows(seed as u64) {
            w.write(&r).unwrap();
        }
        let first = refresh(&dir).unwrap().unwrap();
        let bytes = std::fs::read(&first).unwrap();
        // Rewriting (a rerun, a resumed run, the sweep after its child) replaces the file with
        // the same bytes: never a second file, never a second copy of a point.
        assert_eq!(refresh(&dir).unwrap().unwrap(), first);
        assert_eq!(std::fs::read(&first).unwrap(), bytes);
    }
    let seen = read_back(results.path());
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        [
            "runs/actor_cnn_lr=1e-5__s1__1299ea",
            "runs/baseline__s0__9c494e"
        ],
        "TensorBoard's run names are the run folders"
    );
    for id in ids {
        let run = &seen[&format!("runs/{id}")];
        assert_matches_metrics(results.run(id).path(), run);
        // What was written, not just what matches: the sparse, non-finite and overflowing points.
        let eval = &run.scalars["return/eval_return"];
        assert_eq!(eval.iter().map(|p| p.0).collect::<Vec<_>>(), [0, 300]);
        let q = &run.scalars["q/q_abs_max"];
        assert_eq!((q[3].2.as_str(), q[4].2.as_str()), ("inf", "inf"));
        assert_eq!(run.scalars["loss/critic_loss"][4].2, "nan");
        assert!(!run.scalars.contains_key("grad_norm/actor_cnn_grad_norm"));
    }
}

/// Reloads a TensorBoard reader on `argv[1]` once per line on stdin, printing each time how many
/// points of `tag` (`argv[2]`) each run has: a TensorBoard left open while runs go on.
const LIVE_READER: &str = r#"
import json, sys
from tensorboard.backend.event_processing import event_multiplexer
mux = event_multiplexer.EventMultiplexer()
for _ in sys.stdin:
    mux.AddRunsFromDirectory(sys.argv[1])
    mux.Reload()
    print(json.dumps({r: [p.step for p in mux.Scalars(r, sys.argv[2])] for r in mux.Runs()}), flush=True)
"#;

#[test]
fn a_tensorboard_left_open_follows_a_run_that_grows() {
    // A ladder stage or a resumed run rewrites the file with more rows: the rows already there
    // encode to records of the same lengths (only their wall times move), so a reader that
    // continues at its byte offset in the replaced file, as TensorBoard without TensorFlow does,
    // reads exactly the new points. (After a rerun from scratch it would read the new file from
    // the old offset: the README says to restart TensorBoard then.)
    use std::io::{BufRead, BufReader, Write};
    let tmp = tempfile::tempdir().unwrap();
    let results = ResultsDir::new(tmp.path());
    let dir = results.run("v__s0__abc");
    std::fs::create_dir_all(dir.path()).unwrap();
    let rows = known_rows(0);
    let mut w = MetricsWriter::create(&dir.metrics_csv()).unwrap();
    let python = python_path();
    let mut reader = Command::new(&python)
        .args(["-c", LIVE_READER])
        .arg(results.path())
        .arg(tag(Metric::EnvStep).unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    let mut stdin = reader.stdin.take().unwrap();
    let mut stdout = BufReader::new(reader.stdout.take().unwrap());
    let mut reload = || {
        writeln!(stdin).unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        serde_json::from_str::<BTreeMap<String, Vec<u64>>>(&line)
            .unwrap_or_else(|e| panic!("{e}: `{line}`"))
    };
    let mut seen = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        w.write(r).unwrap();
        if i % 2 == 1 {
            refresh(&dir).unwrap();
            seen.push(reload()["runs/v__s0__abc"].clone());
        }
    }
    drop(stdin);
    assert!(reader.wait().unwrap().success());
    assert_eq!(
        seen,
        [
            vec![0, 100],
            vec![0, 100, 200, 300],
            vec![0, 100, 200, 300, 400, 500]
        ]
    );
}

#[test]
fn an_events_file_without_metrics_is_removed() {
    // A rerun that crashed before its first row: the earlier attempt's points must not stay.
    let tmp = tempfile::tempdir().unwrap();
    let dir = ResultsDir::new(tmp.path()).run("v__s0__abc");
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(dir.events_file(), b"an earlier attempt").unwrap();
    assert_eq!(refresh(&dir).unwrap(), None);
    assert!(!dir.events_file().exists());
    assert_eq!(refresh(&dir).unwrap(), None);
}

#[test]
fn a_real_sweep_shows_each_run_in_tensorboard() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    let out = sweep(&repo().join("sweeps/smoke.yaml"), &res, &["--jobs", "2"]);
    let log = text(&out);
    assert!(matches!(out.status.code(), Some(0 | 10 | 11)), "{log}");
    assert!(!log.contains("TensorBoard events not written"), "{log}");
    let results = ResultsDir::new(res.join("smoke"));
    let mut ids: Vec<String> = std::fs::read_dir(results.runs())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 2, "{log}");
    let seen = read_back(results.path());
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        ids.iter().map(|i| format!("runs/{i}")).collect::<Vec<_>>()
    );
    for (id, seed) in ids.iter().zip(["s0", "s1"]) {
        assert!(id.contains(&format!("__{seed}__")), "{id}");
        let run = &seen[&format!("runs/{id}")];
        assert_matches_metrics(results.run(id).path(), run);
        // Pixels: the CNN gradient norms the seed's problem is about are there.
        assert!(run.scalars.contains_key("grad_norm/actor_cnn_grad_norm"));
    }
}
