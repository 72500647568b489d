//! Reading a results folder's runs: each planned run folder's record and metrics, with every
//! problem reading them kept as data.
//!
//! A corrupted file is data about that run, not a reason to stop: its problems are listed
//! (`runs/<id>/<file>:line: message`) and the judge fails the run on them, while every other run
//! is still read. Nothing here judges.

use std::collections::BTreeMap;
use std::path::Path;

use super::plan::{read_planned, Planned};
use super::{parse_metrics_all, printable, MetricRow, Outcome, ResultsDir, RunRecord};

/// One run folder as read from disk.
#[derive(Debug, Clone)]
pub struct LoadedRun {
    /// The folder name under `runs/` (the run id when run.json is unreadable).
    pub dir_name: String,
    /// `None` when run.json is missing or unreadable.
    pub record: Option<RunRecord>,
    pub rows: Vec<MetricRow>,
    /// Problems reading this run's files, each `runs/<id>/<file>:line: message`. The rows that
    /// did parse are kept.
    pub load_errors: Vec<String>,
    /// What was read around without harm (a last metrics line cut off mid-write), for the log.
    pub notes: Vec<String>,
    /// `runs/<id>/evidence.csv` relative to the results folder, when the run wrote one.
    pub evidence_csv: Option<String>,
    /// Neither run.json nor metrics.csv exists: the run never started.
    pub never_started: bool,
    /// The run's identity from the sweep's plan (which variant group and seed it belongs to),
    /// for a run whose record is missing or lost its identity.
    pub planned: Option<Planned>,
}

/// The planned runs of a results folder, and the run folders it leaves out.
#[derive(Debug, Default)]
pub struct LoadedRuns {
    /// Sorted by folder name, so everything built from them is deterministic.
    pub runs: Vec<LoadedRun>,
    /// Folders under `runs/` that the sweep's current plan (`plan.json`) does not list: runs of
    /// an earlier version of the sweep file, kept on disk but not part of this verdict.
    pub left_out: Vec<String>,
}

fn rel(dir_name: &str, file: &Path) -> String {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    format!("runs/{dir_name}/{name}")
}

/// Reads `runs/<id>/run.json`; a missing file is `None` without a problem when the run never
/// started.
fn read_record(
    path: &Path,
    shown: &str,
    never_started: bool,
    errors: &mut Vec<String>,
) -> Option<RunRecord> {
    match std::fs::read_to_string(path) {
        Err(_) if never_started => None,
        Err(e) => {
            errors.push(format!("{shown}: cannot read: {e}"));
            None
        }
        Ok(text) => match serde_json::from_str::<RunRecord>(&text) {
            Ok(mut r) => {
                // Quoted from a child's logs: no terminal codes or control characters.
                for t in [&mut r.reason, &mut r.stderr_tail, &mut r.exit] {
                    if let Some(x) = t.as_mut() {
                        *x = printable(x);
                    }
                }
                r.command = printable(&r.command);
                Some(r)
            }
            Err(e) => {
                errors.push(format!("{shown}:{}:{}: {e}", e.line(), e.column()));
                None
            }
        },
    }
}

/// Reads `runs/<id>/metrics.csv`, keeping the rows that parse; the bool says the file is missing
/// (a run that crashed before its first row: empty, not corrupted).
fn read_rows(
    path: &Path,
    shown: &str,
    errors: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> (Vec<MetricRow>, bool) {
    let text = match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Vec::new(), true),
        Err(e) => {
            errors.push(format!("{shown}: cannot read: {e}"));
            return (Vec::new(), false);
        }
        Ok(text) => text,
    };
    match parse_metrics_all(Path::new(shown), &text) {
        Ok(parsed) => {
            // Every bad line is named (the first few), and the good rows still count: a
            // 1M-step run with one damaged line keeps its evidence.
            const SHOWN: usize = 3;
            let n = parsed.bad_lines.len();
            errors.extend(parsed.bad_lines.iter().take(SHOWN).map(|e| e.to_string()));
            if n > SHOWN {
                errors.push(format!("{shown}: {} more bad lines", n - SHOWN));
            }
            if let Some(line) = parsed.cut_tail {
                notes.push(format!(
                    "{shown}:{line}: the last line was cut off mid-write (the run was killed or the file copied while it ran); it is left out, and the {} whole rows before it are judged",
                    parsed.rows.len()
                ));
            }
            (parsed.rows, false)
        }
        Err(e) => {
            errors.push(e.to_string());
            (Vec::new(), false)
        }
    }
}

/// Reads one run folder, `runs/<dir_name>/`.
pub fn load_run(results: &ResultsDir, dir_name: &str) -> LoadedRun {
    let run_dir = results.run(dir_name);
    let mut load_errors = Vec::new();
    let mut notes = Vec::new();
    let never_started = !run_dir.run_json().exists() && !run_dir.metrics_csv().exists();
    let record = read_record(
        &run_dir.run_json(),
        &rel(dir_name, &run_dir.run_json()),
        never_started,
        &mut load_errors,
    );
    let csv_rel = rel(dir_name, &run_dir.metrics_csv());
    let (rows, csv_missing) = read_rows(
        &run_dir.metrics_csv(),
        &csv_rel,
        &mut load_errors,
        &mut notes,
    );
    // The training loop always writes a row on its last step, so a run that says it completed
    // training steps but has no rows lost its metrics (deleted, truncated, copied without them).
    // Passing it would be a verdict without evidence.
    if let Some(r) = &record {
        if rows.is_empty()
            && load_errors.is_empty()
            && r.outcome == Outcome::Completed
            && r.train_steps_done > 0
        {
            let what = if csv_missing {
                "missing"
            } else {
                "no metric rows"
            };
            load_errors.push(format!(
                "{csv_rel}: {what}, though run.json says the run completed {} training steps",
                r.train_steps_done
            ));
        }
    }
    let evidence = run_dir.evidence_csv();
    LoadedRun {
        dir_name: dir_name.to_string(),
        record,
        rows,
        load_errors,
        notes,
        evidence_csv: evidence.is_file().then(|| rel(dir_name, &evidence)),
        never_started,
        planned: None,
    }
}

/// Reads the folders under `runs/` that belong to the sweep: those its current plan lists when
/// it has one ([`read_planned`]), else all of them.
pub fn load_runs(results: &ResultsDir) -> std::io::Result<LoadedRuns> {
    let mut names: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(results.runs())? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    let planned: Option<BTreeMap<String, Planned>> = read_planned(results);
    let (names, left_out): (Vec<String>, Vec<String>) = names
        .into_iter()
        .partition(|n| planned.as_ref().is_none_or(|p| p.contains_key(n)));
    Ok(LoadedRuns {
        runs: names
            .iter()
            .map(|n| LoadedRun {
                planned: planned.as_ref().and_then(|p| p.get(n).cloned()),
                ..load_run(results, n)
            })
            .collect(),
        left_out,
    })
}
