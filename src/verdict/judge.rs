//! The one judge: a results folder's runs, as read ([`crate::results::load`]), in; each run's
//! verdict and each variant group's verdict out. The report and the validation ladder both call
//! [`judge`], so a run is judged the same way whoever asks.
//!
//! A file that could not be read is data about its run: the run FAILs with the problem
//! (file:line) as its evidence, and every other run is still judged.

use std::collections::BTreeMap;
use std::ops::Deref;

use super::{
    aggregate_seeds, classify_group, classify_run, with_seed_rules, Criteria, Finding, FindingKind,
    GroupVerdict, RunVerdict, Verdict,
};
use crate::results::{GroupId, LoadedRun, MetricRow, Outcome};

/// One run, read and judged.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// What was read of its folder (record, rows, problems).
    pub loaded: LoadedRun,
    pub verdict: RunVerdict,
    /// Set when the run has not finished: it has no verdict yet and its group is INCOMPLETE.
    pub unfinished: Option<Unfinished>,
}

/// A judged run reads as the run it judged.
impl Deref for RunResult {
    type Target = LoadedRun;
    fn deref(&self) -> &LoadedRun {
        &self.loaded
    }
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

/// Judges one run: the criteria on its record and rows, FAIL for any file that could not be
/// read, and no verdict yet for a run that has not finished.
pub fn judge_run(loaded: LoadedRun, criteria: &Criteria) -> RunResult {
    let mut verdict = match &loaded.record {
        Some(r) => classify_run(criteria, r, &loaded.rows),
        None => RunVerdict {
            verdict: Verdict::Fail,
            findings: Vec::new(),
        },
    };
    for e in &loaded.load_errors {
        verdict.findings.insert(
            0,
            Finding::builtin(
                "unreadable",
                FindingKind::Outcome,
                Verdict::Fail,
                e.clone(),
                None,
            ),
        );
        verdict.verdict = Verdict::Fail;
    }
    let unfinished = if loaded.never_started {
        Some(Unfinished::NotStarted)
    } else {
        loaded.record.as_ref().and_then(|r| match r.outcome {
            Outcome::Interrupted => Some(Unfinished::Interrupted),
            Outcome::Crashed if r.ended_unobserved() => Some(Unfinished::Interrupted),
            _ => None,
        })
    };
    RunResult {
        loaded,
        verdict,
        unfinished,
    }
}

/// A results folder's runs and variant groups, judged.
#[derive(Debug, Clone)]
pub struct Judgement {
    pub runs: Vec<RunResult>,
    pub groups: Vec<GroupResult>,
}

/// Judges every run, then every variant group over its seeds (the seeds quorum, then the seeds
/// rules).
pub fn judge(loaded: Vec<LoadedRun>, criteria: &Criteria) -> Judgement {
    let runs: Vec<RunResult> = loaded.into_iter().map(|l| judge_run(l, criteria)).collect();
    let groups = group_runs(&runs, criteria);
    Judgement { runs, groups }
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
fn group_runs(runs: &[RunResult], criteria: &Criteria) -> Vec<GroupResult> {
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
