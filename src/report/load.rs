//! Reading a results folder into classified runs and variant groups.
//!
//! A corrupted file is data about that run, not a reason to stop: the run is classified FAIL with the
//! parse error (file:line) as its evidence, and every other run is still reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::results::Planned;
use crate::results::{parse_metrics_all, GroupId, MetricRow, Outcome, ResultsDir, RunRecord};
use crate::verdict::{
    aggregate_seeds, classify_group, classify_run, with_seed_rules, Criteria, Finding, FindingKind,
    GroupVerdict, RunVerdict, Verdict,
};

/// One run folder, loaded and classified.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The folder name under `runs/` (the run id when run.json is unreadable).
    pub dir_name: String,
    /// `None` when run.json is missing or unreadable.
    pub record: Option<RunRecord>,
    pub rows: Vec<MetricRow>,
    /// Problems reading this run's files, each `runs/<id>/<file>:line: message`. Any makes the
    /// run FAIL; the rows that did parse are still judged and shown.
    pub load_errors: Vec<String>,
    /// What was read around without harm (a last metrics line cut off mid-write), for the log.
    pub notes: Vec<String>,
    /// `runs/<id>/evidence.csv` relative to the results folder, when the run wrote one.
    pub evidence_csv: Option<String>,
    pub verdict: RunVerdict,
    /// Set when the run has not finished: it has no verdict yet and its group is INCOMPLETE.
    pub unfinished: Option<Unfinished>,
    /// The run's identity from the sweep's plan, for a run that has no run.json yet: which
    /// variant group and seed it belongs to.
    pub planned: Option<Planned>,
}

/// Why a planned run has no verdict yet. Neither is the run's fault, and running the same sweep
/// again trains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfinished {
    /// Nothing written yet: no run.json and no metrics.csv (the sweep stopped before it started).
    NotStarted,
    /// Ended by Ctrl-C, or its sweep died before seeing it end.
    Interrupted,
    /// Started and not ended, while the sweep that trains it is still running (it holds the
    /// results folder's lock): the report is a snapshot taken mid-sweep.
    Running,
}

impl Unfinished {
    /// The word in overview cells: `PENDING`, `INTERRUPTED` or `RUNNING`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unfinished::NotStarted => "PENDING",
            Unfinished::Interrupted => "INTERRUPTED",
            Unfinished::Running => "RUNNING",
        }
    }
}

impl RunResult {
    /// The run id (from run.json, else the folder name).
    pub fn run_id(&self) -> &str {
        self.record
            .as_ref()
            .map(|r| r.run_id.as_str())
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.dir_name)
    }

    /// The seed, when known.
    pub fn seed(&self) -> Option<u64> {
        self.record
            .as_ref()
            .map(|r| r.seed)
            .or_else(|| self.planned.as_ref().and_then(|p| p.seed))
    }
}

/// Runs with the same variant and swept values: they differ only by seed.
#[derive(Debug, Clone)]
pub struct GroupResult {
    pub variant: String,
    pub swept: BTreeMap<String, String>,
    /// Every override its runs were trained with (sweep `set`, variant `set`, grid), from
    /// run.json; `None` for results written before run.json recorded them.
    pub overrides: Option<BTreeMap<String, String>>,
    /// Indices into the run list, by seed.
    pub runs: Vec<usize>,
    /// The seeds rules' results on this group (`criteria.seeds.rules`), in criteria order.
    pub seed_findings: Vec<Finding>,
    /// The seeds quorum's verdict, then the seeds rules' ([`crate::verdict::with_seed_rules`]).
    pub verdict: GroupVerdict,
}

impl GroupResult {
    /// "lr-grid (actor_cnn_lr=1e-4)": the variant and the last segment of each swept key.
    pub fn label(&self) -> String {
        group_label(&self.variant, &self.swept)
    }
}

/// The name of a variant group (runs that differ only by seed) in reports and ladders:
/// "baseline (actor_cnn_lr=1e-4)", or just the variant when nothing is swept.
pub fn group_label(variant: &str, swept: &BTreeMap<String, String>) -> String {
    GroupId::new(variant, swept).to_string()
}

fn rel(dir_name: &str, file: &str) -> String {
    format!("runs/{dir_name}/{file}")
}

fn unreadable(rule: &str, evidence: String) -> Finding {
    Finding {
        rule: rule.to_string(),
        kind: FindingKind::Outcome,
        metric: None,
        aggregate: None,
        verdict: Verdict::Fail,
        value: None,
        worst: None,
        crossings: Vec::new(),
        growth: None,
        note: None,
        evidence,
        step: None,
    }
}

/// Loads and classifies one run folder.
pub fn load_run(results_dir: &Path, dir_name: &str, criteria: &Criteria) -> RunResult {
    let run_dir = ResultsDir::new(results_dir).run(dir_name);
    let mut load_errors = Vec::new();
    let mut notes = Vec::new();
    let json_rel = rel(dir_name, "run.json");
    let never_started = !run_dir.run_json().exists() && !run_dir.metrics_csv().exists();
    let record = match std::fs::read_to_string(run_dir.run_json()) {
        Err(_) if never_started => None,
        Err(e) => {
            load_errors.push(format!("{json_rel}: cannot read: {e}"));
            None
        }
        Ok(text) => match serde_json::from_str::<RunRecord>(&text) {
            Ok(mut r) => {
                // Quoted from a child's logs: no terminal codes or control characters.
                for t in [&mut r.reason, &mut r.stderr_tail, &mut r.exit] {
                    if let Some(x) = t.as_mut() {
                        *x = super::printable(x);
                    }
                }
                r.command = super::printable(&r.command);
                Some(r)
            }
            Err(e) => {
                load_errors.push(format!("{json_rel}:{}:{}: {e}", e.line(), e.column()));
                None
            }
        },
    };
    let csv_rel = rel(dir_name, "metrics.csv");
    let csv_path = run_dir.metrics_csv();
    // A run that crashed before its first row may have no metrics.csv: that is an empty run, not a
    // corrupted one (its outcome already says what happened).
    let mut csv_missing = false;
    let rows = match std::fs::read_to_string(&csv_path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            csv_missing = true;
            Vec::new()
        }
        Err(e) => {
            load_errors.push(format!("{csv_rel}: cannot read: {e}"));
            Vec::new()
        }
        Ok(text) => match parse_metrics_all(Path::new(&csv_rel), &text) {
            Ok(parsed) => {
                // Every bad line is named (the first few), and the good rows still count: a
                // 1M-step run with one damaged line keeps its evidence.
                const SHOWN: usize = 3;
                let n = parsed.bad_lines.len();
                for e in parsed.bad_lines.iter().take(SHOWN) {
                    load_errors.push(e.to_string());
                }
                if n > SHOWN {
                    load_errors.push(format!("{csv_rel}: {} more bad lines", n - SHOWN));
                }
                if let Some(line) = parsed.cut_tail {
                    notes.push(format!(
                        "{csv_rel}:{line}: the last line was cut off mid-write (the run was killed or the file copied while it ran); it is left out, and the {} whole rows before it are judged",
                        parsed.rows.len()
                    ));
                }
                parsed.rows
            }
            Err(e) => {
                load_errors.push(e.to_string());
                Vec::new()
            }
        },
    };
    // The training loop always writes a row on its last step, so a run that says it completed
    // training steps but has no rows lost its metrics (deleted, truncated, copied without them).
    // Passing it would be a verdict without evidence.
    if let Some(r) = &record {
        if rows.is_empty()
            && load_errors.is_empty()
            && r.outcome == Outcome::Completed
            && r.train_steps_done > 0
        {
            load_errors.push(if csv_missing {
                format!(
                    "{csv_rel}: missing, though run.json says the run completed {} training steps",
                    r.train_steps_done
                )
            } else {
                format!(
                    "{csv_rel}: no metric rows, though run.json says the run completed {} training steps",
                    r.train_steps_done
                )
            });
        }
    }
    let evidence_csv = run_dir
        .evidence_csv()
        .is_file()
        .then(|| rel(dir_name, "evidence.csv"));
    let mut verdict = match &record {
        Some(r) => classify_run(criteria, r, &rows),
        None => RunVerdict {
            verdict: Verdict::Fail,
            findings: Vec::new(),
        },
    };
    for e in &load_errors {
        verdict
            .findings
            .insert(0, unreadable("unreadable", e.clone()));
        verdict.verdict = Verdict::Fail;
    }
    let unfinished = if never_started {
        Some(Unfinished::NotStarted)
    } else {
        record.as_ref().and_then(|r| match r.outcome {
            Outcome::Interrupted => Some(Unfinished::Interrupted),
            Outcome::Crashed if r.ended_unobserved() => Some(Unfinished::Interrupted),
            _ => None,
        })
    };
    RunResult {
        dir_name: dir_name.to_string(),
        record,
        rows,
        load_errors,
        notes,
        evidence_csv,
        verdict,
        unfinished,
        planned: None,
    }
}

/// The runs a results folder holds, and the run folders it leaves out.
#[derive(Debug, Default)]
pub struct LoadedRuns {
    /// Sorted by folder name, so the report is deterministic.
    pub runs: Vec<RunResult>,
    /// Folders under `runs/` that the sweep's current plan (`plan.json`) does not list: runs of
    /// an earlier version of the sweep file, kept on disk but not part of this verdict.
    pub left_out: Vec<String>,
}

/// Loads the folders under `runs/` that belong to the sweep: those its current plan lists when
/// it has one ([`crate::results::plan::read_planned`]), else all of them.
pub fn load_runs(results_dir: &Path, criteria: &Criteria) -> std::io::Result<LoadedRuns> {
    let results = ResultsDir::new(results_dir);
    let runs_dir: PathBuf = results.runs();
    let mut names: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(&runs_dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    let planned = crate::results::plan::read_planned(&results);
    let (names, left_out): (Vec<String>, Vec<String>) = names
        .into_iter()
        .partition(|n| planned.as_ref().is_none_or(|p| p.contains_key(n)));
    Ok(LoadedRuns {
        runs: names
            .iter()
            .map(|n| RunResult {
                planned: planned.as_ref().and_then(|p| p.get(n).cloned()),
                ..load_run(results_dir, n, criteria)
            })
            .collect(),
        left_out,
    })
}

/// The seeds rules on one group. Only completed runs count: a crashed or stopped seed is
/// already a FAIL of its own, and its partial values would skew a mean.
fn group_findings(runs: &[RunResult], idx: &[usize], criteria: &Criteria) -> Vec<Finding> {
    if criteria.seed_rules.is_empty() {
        return Vec::new();
    }
    let seeds: Vec<&[MetricRow]> = idx
        .iter()
        .map(|i| &runs[*i])
        .filter(|r| {
            r.record
                .as_ref()
                .is_some_and(|rec| rec.outcome == Outcome::Completed)
        })
        .map(|r| r.rows.as_slice())
        .collect();
    let left_out = idx.len() - seeds.len();
    let mut findings = classify_group(criteria, &seeds);
    if left_out > 0 {
        // Say so: a seed that exploded and was stopped is not in a mean or max over seeds.
        for f in &mut findings {
            f.evidence.push_str(&format!(
                "; {left_out} of the group's {} seeds did not complete and are not in this (each is a FAIL of its own)",
                idx.len()
            ));
        }
    }
    findings
}

/// Groups runs by (variant, swept values) and aggregates each group's seeds with the quorum.
/// Runs whose run.json is unreadable form a group of one, named after their folder.
pub fn group_runs(runs: &[RunResult], criteria: &Criteria) -> Vec<GroupResult> {
    let mut map: BTreeMap<(String, BTreeMap<String, String>), Vec<usize>> = BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        let key = match (&r.record, &r.planned) {
            // A record that lost its identity (fields missing) belongs where the plan put it.
            (Some(rec), Some(p)) if rec.variant.is_empty() => (p.variant.clone(), p.swept.clone()),
            (Some(rec), _) => (rec.variant.clone(), rec.swept.clone()),
            // Not started yet, or its run.json is unreadable: the plan says which group it
            // belongs to (an unreadable one still FAILs, in its own group's row).
            (None, Some(p)) => (p.variant.clone(), p.swept.clone()),
            (None, _) if r.unfinished.is_some() => {
                (format!("{} (not started)", r.dir_name), BTreeMap::new())
            }
            (None, _) => (format!("{} (unreadable)", r.dir_name), BTreeMap::new()),
        };
        map.entry(key).or_default().push(i);
    }
    let mut groups: Vec<GroupResult> = map
        .into_iter()
        .map(|((variant, swept), mut idx)| {
            idx.sort_by_key(|i| (runs[*i].seed(), runs[*i].dir_name.clone()));
            let verdicts: Vec<Verdict> = idx.iter().map(|i| runs[*i].verdict.verdict).collect();
            let unfinished = idx
                .iter()
                .filter(|i| runs[**i].unfinished.is_some())
                .count();
            let seed_findings = if unfinished > 0 {
                Vec::new()
            } else {
                group_findings(runs, &idx, criteria)
            };
            let verdict = if unfinished > 0 {
                GroupVerdict::Incomplete {
                    finished: idx.len() - unfinished,
                    total: idx.len(),
                }
            } else {
                with_seed_rules(aggregate_seeds(&verdicts, criteria.quorum), &seed_findings)
            };
            let overrides = idx
                .iter()
                .filter_map(|i| runs[*i].record.as_ref())
                .find_map(|r| r.overrides.clone());
            GroupResult {
                variant,
                swept,
                overrides,
                verdict,
                seed_findings,
                runs: idx,
            }
        })
        .collect();
    // Numeric swept values sort as numbers, highest first: a learning-rate grid then reads in the
    // rollback plan's order (1e-4, 5e-5, ... 5e-6), not as strings.
    groups.sort_by(|a, b| {
        a.variant.cmp(&b.variant).then_with(|| {
            for ((ka, va), (kb, vb)) in a.swept.iter().zip(b.swept.iter()) {
                let o = ka
                    .cmp(kb)
                    .then_with(|| match (va.parse::<f64>(), vb.parse::<f64>()) {
                        (Ok(x), Ok(y)) => y.total_cmp(&x),
                        _ => va.cmp(vb),
                    });
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            a.swept.len().cmp(&b.swept.len())
        })
    });
    groups
}
