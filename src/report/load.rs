//! Reading a results folder into classified runs and variant groups.
//!
//! A corrupted file is data about that run, not a reason to stop: the run is classified FAIL with the
//! parse error (file:line) as its evidence, and every other run is still reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::metrics::{parse_metrics, MetricRow, RunRecord};
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
    /// Problems reading this run's files, each `runs/<id>/<file>:line: message`.
    pub load_errors: Vec<String>,
    /// `runs/<id>/evidence.csv` relative to the results folder, when the run wrote one.
    pub evidence_csv: Option<String>,
    pub verdict: RunVerdict,
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
        self.record.as_ref().map(|r| r.seed)
    }
}

/// Runs with the same variant and swept values: they differ only by seed.
#[derive(Debug, Clone)]
pub struct GroupResult {
    pub variant: String,
    pub swept: BTreeMap<String, String>,
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
    if swept.is_empty() {
        return variant.to_string();
    }
    let kv: Vec<String> = swept
        .iter()
        .map(|(k, v)| format!("{}={v}", k.rsplit('.').next().unwrap_or(k)))
        .collect();
    format!("{variant} ({})", kv.join(", "))
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
    let run_dir = results_dir.join("runs").join(dir_name);
    let mut load_errors = Vec::new();
    let json_rel = rel(dir_name, "run.json");
    let record = match std::fs::read_to_string(run_dir.join("run.json")) {
        Err(e) => {
            load_errors.push(format!("{json_rel}: cannot read: {e}"));
            None
        }
        Ok(text) => match serde_json::from_str::<RunRecord>(&text) {
            Ok(r) => Some(r),
            Err(e) => {
                load_errors.push(format!("{json_rel}:{}:{}: {e}", e.line(), e.column()));
                None
            }
        },
    };
    let csv_rel = rel(dir_name, "metrics.csv");
    let csv_path = run_dir.join("metrics.csv");
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
        Ok(text) => match parse_metrics(Path::new(&csv_rel), &text) {
            Ok(rows) => rows,
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
            && r.outcome == crate::metrics::Outcome::Completed
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
        .join("evidence.csv")
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
    RunResult {
        dir_name: dir_name.to_string(),
        record,
        rows,
        load_errors,
        evidence_csv,
        verdict,
    }
}

/// The runs a results folder holds, and the run folders it leaves out.
#[derive(Debug, Default)]
pub struct LoadedRuns {
    /// Sorted by folder name, so the report is deterministic.
    pub runs: Vec<RunResult>,
    /// Folders under `runs/` that the sweep's current plan (`summary.csv`) does not list: runs of
    /// an earlier version of the sweep file, kept on disk but not part of this verdict.
    pub left_out: Vec<String>,
}

/// The run ids `summary.csv` lists (one row per planned run), or `None` when the folder has no
/// readable summary (a results folder put together by hand: then every run folder counts).
fn planned_run_ids(results_dir: &Path) -> Option<std::collections::BTreeSet<String>> {
    let mut reader = csv::Reader::from_path(results_dir.join("summary.csv")).ok()?;
    let col = reader.headers().ok()?.iter().position(|h| h == "run_id")?;
    let mut ids = std::collections::BTreeSet::new();
    for rec in reader.records() {
        ids.insert(rec.ok()?.get(col)?.to_string());
    }
    Some(ids)
}

/// Loads the folders under `runs/` that belong to the sweep: those `summary.csv` lists when it
/// exists (the sweep rewrites it for its current plan), else all of them.
pub fn load_runs(results_dir: &Path, criteria: &Criteria) -> std::io::Result<LoadedRuns> {
    let runs_dir: PathBuf = results_dir.join("runs");
    let mut names: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(&runs_dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    let planned = planned_run_ids(results_dir);
    let (names, left_out): (Vec<String>, Vec<String>) = names
        .into_iter()
        .partition(|n| planned.as_ref().is_none_or(|p| p.contains(n)));
    Ok(LoadedRuns {
        runs: names
            .iter()
            .map(|n| load_run(results_dir, n, criteria))
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
                .is_some_and(|rec| rec.outcome == crate::metrics::Outcome::Completed)
        })
        .map(|r| r.rows.as_slice())
        .collect();
    classify_group(criteria, &seeds)
}

/// Groups runs by (variant, swept values) and aggregates each group's seeds with the quorum.
/// Runs whose run.json is unreadable form a group of one, named after their folder.
pub fn group_runs(runs: &[RunResult], criteria: &Criteria) -> Vec<GroupResult> {
    let mut map: BTreeMap<(String, BTreeMap<String, String>), Vec<usize>> = BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        let key = match &r.record {
            Some(rec) => (rec.variant.clone(), rec.swept.clone()),
            None => (format!("{} (unreadable)", r.dir_name), BTreeMap::new()),
        };
        map.entry(key).or_default().push(i);
    }
    let mut groups: Vec<GroupResult> = map
        .into_iter()
        .map(|((variant, swept), mut idx)| {
            idx.sort_by_key(|i| (runs[*i].seed(), runs[*i].dir_name.clone()));
            let verdicts: Vec<Verdict> = idx.iter().map(|i| runs[*i].verdict.verdict).collect();
            let seed_findings = group_findings(runs, &idx, criteria);
            GroupResult {
                variant,
                swept,
                verdict: with_seed_rules(
                    aggregate_seeds(&verdicts, criteria.quorum),
                    &seed_findings,
                ),
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
