//! View models for the template: every number is formatted here, so templates only lay text out
//! (criterion.rs style), and Markdown table cells are escaped once, here.

use std::collections::BTreeSet;

use serde::Serialize;

use super::plot::{self, Series, Threshold};
use super::recommend::Recommendation;
use crate::verdict::compare::Comparison;
use crate::verdict::{fmt_num, Aggregate, Criteria, GroupVerdict, Verdict};
use crate::verdict::{GroupResult, RunResult, Unfinished};

/// Everything `build` needs.
pub struct Input<'a> {
    pub sweep: &'a str,
    pub date: String,
    /// `--stable`: the git commit and run durations read [`STABLE_BLANK`].
    pub stable: bool,
    pub criteria: &'a Criteria,
    pub criteria_source: String,
    pub runs: &'a [RunResult],
    pub groups: &'a [GroupResult],
    pub recommendation: &'a Recommendation,
    pub plots: Vec<PlotView>,
    pub load_errors: &'a [String],
    /// Run folders not in the current plan (see [`super::LoadedRuns::left_out`]).
    pub left_out: &'a [String],
    /// The groups' learning, compared over their seeds.
    pub comparison: &'a Comparison,
    /// The overall severity (the worst group's, raised for a ladder that approved nobody):
    /// 0 PASS, 1 INVESTIGATE, 2 INCOMPLETE, 3 FAIL.
    pub worst: u8,
}

/// What `--stable` prints instead of a date, a commit or a duration.
pub const STABLE_BLANK: &str = "— (--stable)";

/// The whole report.
#[derive(Debug, Serialize)]
pub struct ReportView {
    pub sweep: String,
    pub date: String,
    pub git_commit: String,
    pub libtorch_version: String,
    pub device: String,
    pub status: String,
    pub counts: String,
    pub criteria_source: String,
    pub quorum: String,
    pub stop_on_fail: bool,
    pub seeds: Vec<String>,
    pub overview: Vec<GroupView>,
    /// Rules on each variant group's seeds together (`seeds.rules`); empty when there are none.
    pub seed_rules: Vec<SeedRuleView>,
    pub criteria: Vec<CriterionView>,
    pub growth: Vec<GrowthView>,
    /// Growth rows of passing runs without exponential growth, left out (see [`FULL_TABLES_UP_TO`]).
    pub growth_left_out: usize,
    pub exponential_rule: String,
    pub plots: Vec<PlotView>,
    pub plot_aggregation: String,
    pub recommendation: RecommendationView,
    pub runs: Vec<RunView>,
    pub load_errors: Vec<String>,
    /// Run folders left out of the verdict: not in the sweep's current plan.
    pub left_out: Vec<String>,
    /// The validation ladder (`stages:`), when the sweep has one.
    pub ladder: Option<LadderView>,
    /// Whether each variant still learns, over its seeds; `None` when no run evaluated.
    pub learning: Option<LearningView>,
    /// Settings that tested nothing: a clip that never engaged, variants that trained
    /// identically.
    pub knob_notes: Vec<String>,
}

/// The learning comparison ([`crate::verdict::compare`]) as the report shows it.
#[derive(Debug, Serialize)]
pub struct LearningView {
    /// The group the probability of improvement is taken against.
    pub reference: String,
    pub rows: Vec<LearningRow>,
    /// What the seeds can and cannot show.
    pub note: String,
    /// The eval-return plot, relative to the report (set when it drew).
    pub plot: Option<String>,
}

/// One variant group's learning.
#[derive(Debug, Serialize)]
pub struct LearningRow {
    pub label: String,
    /// Seeds that learn, of those scored ("3/3").
    pub learns: String,
    /// Mean untrained baseline over the seeds.
    pub untrained: String,
    /// Each seed's final eval return.
    pub finals: String,
    /// Mean and IQM with their 95% intervals, "93.1 [45.2, 173]".
    pub mean: String,
    pub iqm: String,
    /// P(improvement over the reference) with its interval, or "reference".
    pub improvement: String,
    /// Against the best group: "best", "not distinguishable" or "below".
    pub versus_best: String,
}

/// The ladder section: `ladder.json` as the report shows it.
#[derive(Debug, Serialize)]
pub struct LadderView {
    /// Stage names and steps, in order (`1k (1000 steps)`).
    pub stages: Vec<String>,
    /// Each stage's entry rule.
    pub rules: Vec<String>,
    /// One row per variant.
    pub variants: Vec<LadderVariantView>,
    /// Whether the last stage approves.
    pub approve: bool,
    /// Approved variants (empty when none or not yet).
    pub approved: Vec<String>,
    /// Where each stage ended, per run (`run: env step E, train step T`).
    pub boundaries: Vec<String>,
    /// The plot with stage boundaries, relative to the report.
    pub plot: Option<String>,
}

/// One variant's climb.
#[derive(Debug, Serialize)]
pub struct LadderVariantView {
    pub variant: String,
    /// One cell per stage: its verdict there, or `—` where it did not enter.
    pub cells: Vec<String>,
    /// The highest stage it finished.
    pub reached: String,
    /// Why it stopped climbing (empty for one that finished the last stage), with evidence.
    pub stopped: Vec<String>,
}

/// Builds the ladder section from `ladder.json`.
pub fn ladder_view(l: &crate::results::LadderState, plot: Option<String>) -> LadderView {
    let mut names: Vec<&crate::results::GroupId> = Vec::new();
    for s in &l.stages {
        for v in s.entered.iter().chain(s.groups.iter().map(|v| &v.group)) {
            if !names.contains(&v) {
                names.push(v);
            }
        }
    }
    let variants = names
        .iter()
        .map(|name| {
            let mut cells = Vec::new();
            let mut reached = "—".to_string();
            let mut stopped = Vec::new();
            for (k, s) in l.stages.iter().enumerate() {
                match s.groups.iter().find(|v| &v.group == *name) {
                    Some(v) => {
                        cells.push(v.verdict.to_string());
                        reached = s.name.clone();
                        if !v.promoted && k + 1 < l.stages.len() {
                            stopped.push(format!("stopped after `{}`: {}", s.name, v.why));
                            for r in s.runs.iter().filter(|r| &r.group == *name) {
                                for e in &r.evidence {
                                    stopped.push(format!(
                                        "{} (seed {}, {}): {e}",
                                        r.run_id, r.seed, r.outcome
                                    ));
                                }
                            }
                        }
                    }
                    None if s.entered.contains(name) => cells.push("running".into()),
                    None => cells.push("—".into()),
                }
            }
            LadderVariantView {
                variant: name.to_string(),
                cells,
                reached,
                stopped,
            }
        })
        .collect();
    let boundaries = l
        .stages
        .iter()
        .filter(|s| s.done)
        .flat_map(|s| {
            s.runs.iter().map(move |r| {
                format!(
                    "`{}` ended for {} at env step {}, training step {} ({})",
                    s.name, r.run_id, r.env_step, r.train_step, r.outcome
                )
            })
        })
        .collect();
    LadderView {
        stages: l
            .stages
            .iter()
            .map(|s| format!("{} ({} steps)", s.name, s.steps))
            .collect(),
        rules: l
            .stages
            .iter()
            .map(|s| format!("{}: {}", s.name, s.promote))
            .collect(),
        variants,
        approve: l.approve,
        approved: l.approved.iter().map(|g| g.to_string()).collect(),
        boundaries,
        plot,
    }
}

/// One row of the overview: a variant group and its seeds.
#[derive(Debug, Serialize)]
pub struct GroupView {
    pub label: String,
    pub verdict: String,
    /// One cell per seed column of the report (`—` where this group has no such seed).
    pub seeds: Vec<String>,
}

/// A seeds rule and every variant group's result on it.
#[derive(Debug, Serialize)]
pub struct SeedRuleView {
    pub name: String,
    pub rule: String,
    pub description: String,
    pub rows: Vec<SeedRuleRow>,
}

/// One variant group's result on a seeds rule.
#[derive(Debug, Serialize)]
pub struct SeedRuleRow {
    pub label: String,
    pub verdict: String,
    pub evidence: String,
}

/// A criterion and every run's result on it.
#[derive(Debug, Serialize)]
pub struct CriterionView {
    pub name: String,
    pub rule: String,
    pub description: String,
    pub rows: Vec<FindingView>,
    /// Passing runs left out of `rows` (a sweep of more than [`FULL_TABLES_UP_TO`] runs lists
    /// only the runs that did not pass; summary.csv and the run folders have the rest).
    pub passing_left_out: usize,
    /// No run had a value for this rule in its window: it judged nothing (a step window past
    /// the runs' end, a metric this kind of run never logs).
    pub unmeasured: bool,
    /// Set when every run's value sits three or more orders of magnitude from every threshold:
    /// a PASS under this rule then carries no information about these runs.
    pub calibration: String,
}

/// Up to this many runs, every table lists every run; beyond it, the criteria and growth tables
/// list the runs that need a look (not PASS, or growing exponentially) and count the others.
pub const FULL_TABLES_UP_TO: usize = 24;

/// One run's finding on one criterion.
#[derive(Debug, Serialize)]
pub struct FindingView {
    pub run_id: String,
    pub verdict: String,
    pub worst: String,
    pub evidence: String,
}

/// One run × metric line of the growth analysis.
#[derive(Debug, PartialEq, Serialize)]
pub struct GrowthView {
    pub run_id: String,
    pub metric: String,
    pub growth: String,
    pub fit: String,
}

/// A plot link (or why it is missing).
#[derive(Debug, Serialize)]
pub struct PlotView {
    pub metric: String,
    pub path: String,
    pub error: String,
}

impl PlotView {
    pub(super) fn ok(metric: &str, path: &std::path::Path) -> PlotView {
        PlotView {
            metric: metric.into(),
            path: path.display().to_string(),
            error: String::new(),
        }
    }
    pub(super) fn failed(metric: &str, e: &str) -> PlotView {
        PlotView {
            metric: metric.into(),
            path: String::new(),
            error: e.into(),
        }
    }
}

/// The recommendation section.
#[derive(Debug, Serialize)]
pub struct RecommendationView {
    pub headline: String,
    pub details: Vec<String>,
}

/// Per-run detail: outcome, evidence, reproduction.
#[derive(Debug, Serialize)]
pub struct RunView {
    pub run_id: String,
    pub group: String,
    pub seed: String,
    pub outcome: String,
    pub verdict: String,
    pub steps: String,
    pub wall: String,
    pub headline: String,
    pub problems: Vec<String>,
    pub evidence_csv: String,
    /// The last lines of a crashed run's stderr (up to 20), as `run.json` holds them.
    pub stderr_tail: String,
    pub command: String,
}

/// Escapes text for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', "<br>")
}

pub(super) fn group_short(v: GroupVerdict) -> String {
    match v {
        GroupVerdict::Flaky { passed, total } => format!("FLAKY {passed}/{total}"),
        GroupVerdict::Fail { failed, total } if failed > 0 => format!("FAIL {failed}/{total}"),
        GroupVerdict::Incomplete { finished, total } => format!("INCOMPLETE {finished}/{total}"),
        other => other.to_string(),
    }
}

/// A run's cell in the overviews: its verdict, or PENDING / INTERRUPTED while it has none.
fn run_cell(r: &RunResult) -> String {
    match r.unfinished {
        Some(u) => u.as_str().to_string(),
        None => r.verdict.verdict.to_string(),
    }
}

fn unique<'a>(runs: &'a [RunResult], f: impl Fn(&'a RunResult) -> Option<&'a str>) -> String {
    let set: BTreeSet<&str> = runs
        .iter()
        .filter_map(f)
        .filter(|s| !s.is_empty())
        .collect();
    if set.is_empty() {
        "unknown".into()
    } else {
        set.into_iter().collect::<Vec<_>>().join(", ")
    }
}

fn seed_label(s: Option<u64>) -> String {
    s.map(|s| s.to_string()).unwrap_or_else(|| "?".into())
}

fn group_of(groups: &[GroupResult], run: usize) -> String {
    groups
        .iter()
        .find(|g| g.runs.contains(&run))
        .map(|g| g.label())
        .unwrap_or_default()
}

/// "last of `eval_return`, mean over seeds; INVESTIGATE ≤ -250" for a seeds rule.
fn seed_rule_text(sr: &crate::verdict::SeedRule) -> String {
    let r = &sr.rule;
    let mut parts = vec![format!(
        "{} of `{}` per seed, {} over seeds",
        r.aggregate, r.metric, sr.across
    )];
    parts.extend(threshold_parts(r));
    parts.extend(window_part(r));
    parts.push("completed runs only".into());
    parts.join("; ")
}

/// A rule's thresholds, as the report lists them ("INVESTIGATE ≥ 10,000").
fn threshold_parts(r: &crate::verdict::Rule) -> Vec<String> {
    [
        ("INVESTIGATE ≥", r.investigate_above),
        ("INVESTIGATE ≤", r.investigate_below),
        ("FAIL >", r.fail_above),
        ("FAIL <", r.fail_below),
    ]
    .into_iter()
    .filter_map(|(label, t)| {
        t.map(|t| match r.relative_to_q_bound {
            true => format!("{label} {} × the run's |Q| bound r_max/(1−γ)", fmt_num(t)),
            false => format!("{label} {}", fmt_num(t)),
        })
    })
    .collect()
}

/// A rule's step window ("steps 300–end"), when it has one.
fn window_part(r: &crate::verdict::Rule) -> Option<String> {
    if r.from_step.is_none() && r.to_step.is_none() {
        return None;
    }
    let from = r
        .from_step
        .map(|s| s.to_string())
        .unwrap_or_else(|| "start".into());
    let to = r
        .to_step
        .map(|s| s.to_string())
        .unwrap_or_else(|| "end".into());
    Some(format!("steps {from}–{to}"))
}

fn rule_text(c: &Criteria, name: &str) -> (String, String) {
    if let Some(r) = c.rules.iter().find(|r| r.name == name) {
        let mut parts = vec![format!("{} of `{}`", r.aggregate, r.metric)];
        parts.extend(threshold_parts(r));
        if let Some((lo, hi)) = r.expected {
            parts.push(format!("expected {}–{}", fmt_num(lo), fmt_num(hi)));
        }
        parts.extend(window_part(r));
        return (parts.join("; "), r.description.clone().unwrap_or_default());
    }
    let builtin = match name {
        "completed" => (
            "built in: the run completed all its planned steps, else FAIL".into(),
            String::new(),
        ),
        "non-finite" => (
            "built in: any non-finite value (NaN, inf) is FAIL".into(),
            String::new(),
        ),
        "unreadable" => (
            "built in: a run whose files cannot be read is FAIL".into(),
            String::new(),
        ),
        _ => match &c.spike {
            Some(s) => (
                format!(
                    "|{}| > {}x the median of the previous {} rows is a spike → {}",
                    s.metric,
                    fmt_num(s.factor),
                    s.window,
                    s.verdict
                ),
                "Actor loss: no sudden spikes".into(),
            ),
            None => (String::new(), String::new()),
        },
    };
    builtin
}

/// Builds the report's view model.
pub fn build(i: Input<'_>) -> ReportView {
    let runs = i.runs;
    let seeds = seed_columns(runs);
    let (growth, growth_left_out) = growth_views(runs);
    let criteria = criterion_views(i.criteria, runs);
    ReportView {
        sweep: i.sweep.to_string(),
        date: i.date,
        git_commit: if i.stable {
            STABLE_BLANK.to_string()
        } else {
            unique(runs, |r| r.record.as_ref().map(|x| x.git_commit.as_str()))
        },
        libtorch_version: if !runs.is_empty()
            && runs
                .iter()
                .all(|r| r.record.as_ref().is_some_and(|x| x.invocation.is_some()))
        {
            "not used (an external trainer brings its own framework)".into()
        } else {
            unique(runs, |r| r.record.as_ref().map(|x| x.libtorch_version.as_str()))
        },
        device: unique(runs, |r| r.record.as_ref().map(|x| x.device.as_str())),
        status: status_name(i.worst).into(),
        counts: counts_text(runs, i.groups.len()) + &judged_on(&criteria),
        criteria_source: i.criteria_source,
        quorum: i.criteria.quorum.to_string(),
        stop_on_fail: i.criteria.stop_on_fail,
        seeds: seeds.iter().map(|s| format!("seed {}", seed_label(*s))).collect(),
        overview: overview_rows(i.groups, runs, &seeds),
        seed_rules: seed_rule_views(i.criteria, i.groups),
        criteria,
        growth,
        growth_left_out,
        exponential_rule: format!(
            "\"exponential growth\" is said only when a least-squares fit of ln(value) against the training step over at least {} rows has a positive slope and R² ≥ {}, and the value grew at least {}x from its first row to its peak",
            crate::verdict::EXPONENTIAL_MIN_POINTS,
            crate::verdict::EXPONENTIAL_MIN_R2,
            crate::verdict::EXPONENTIAL_MIN_FACTOR
        ),
        plots: i.plots,
        plot_aggregation: "one line per variant group: the maximum over its seeds at each logged step, so against an upper limit the worst seed shows (against a lower limit, read the per-run evidence)".into(),
        recommendation: RecommendationView {
            headline: i.recommendation.headline.clone(),
            details: i.recommendation.details.clone(),
        },
        runs: run_views(runs, i.groups, i.stable),
        load_errors: i.load_errors.to_vec(),
        left_out: i.left_out.to_vec(),
        ladder: None,
        learning: learning_view(i.groups, i.comparison),
        knob_notes: knob_notes(i.groups, runs),
    }
}

/// The clip settings and the metrics that show whether they engaged: (key, clip fraction column,
/// pre-clip norm column, which CNN).
const CLIPS: [(&str, &str, &str, &str); 2] = [
    (
        "training.actor_cnn_grad_clip.max_norm",
        "actor_cnn_clip_frac",
        "actor_cnn_grad_norm",
        "actor",
    ),
    (
        "training.critic_cnn_grad_clip.max_norm",
        "critic_cnn_clip_frac",
        "critic_cnn_grad_norm",
        "critic",
    ),
];

/// Settings that tested nothing (issue: "variants that test nothing"): a group whose gradient
/// clipping never engaged in any of its runs, and pairs of groups whose runs trained identically
/// seed for seed (every metric row equal but the wall clock), so whatever sets them apart changed
/// nothing.
fn knob_notes(groups: &[GroupResult], runs: &[RunResult]) -> Vec<String> {
    let mut notes = Vec::new();
    for g in groups {
        let set = |key: &str| {
            g.swept
                .get(key)
                .or_else(|| g.overrides.as_ref().and_then(|o| o.get(key)))
                .and_then(|v| v.parse::<f64>().ok())
        };
        for (key, frac, norm, which) in CLIPS {
            let Some(max_norm) = set(key) else { continue };
            let rows = || g.runs.iter().flat_map(|i| runs[*i].rows.iter());
            let engaged = rows().filter_map(|r| r.get(frac)).any(|f| f > 0.0);
            let peak = rows()
                .filter_map(|r| r.get(norm))
                .filter(|v| v.is_finite())
                .fold(f64::NEG_INFINITY, f64::max);
            if !engaged && peak.is_finite() && peak <= max_norm {
                notes.push(format!(
                    "{}: {which} CNN clipping never engaged: max pre-clip norm {} ≤ max_norm {} in every run, so this variant tested nothing that clipping does",
                    cell(&g.label()),
                    fmt_num(peak),
                    fmt_num(max_norm)
                ));
            }
        }
    }
    let same = |a: &RunResult, b: &RunResult| {
        let strip = |r: &RunResult| -> Vec<crate::results::MetricRow> {
            r.rows
                .iter()
                .map(|row| crate::results::MetricRow {
                    wall_s: 0.0,
                    ..row.clone()
                })
                .collect()
        };
        !a.rows.is_empty() && strip(a) == strip(b)
    };
    for (x, gx) in groups.iter().enumerate() {
        for gy in &groups[x + 1..] {
            let pairs: Vec<(&RunResult, &RunResult)> = gx
                .runs
                .iter()
                .filter_map(|i| {
                    let a = &runs[*i];
                    let b = gy
                        .runs
                        .iter()
                        .map(|j| &runs[*j])
                        .find(|b| b.seed() == a.seed())?;
                    Some((a, b))
                })
                .collect();
            if !pairs.is_empty() && pairs.iter().all(|(a, b)| same(a, b)) {
                notes.push(format!(
                    "{} and {} trained identically on all {} shared seed(s) (every metric row equal but the wall clock): what sets them apart changed nothing, so they are one finding, not two",
                    cell(&gx.label()),
                    cell(&gy.label()),
                    pairs.len()
                ));
            }
        }
    }
    notes
}

/// An estimate with its interval: "93.1 [45.2, 173]".
fn estimate_text(e: &crate::verdict::stats::Estimate) -> String {
    format!(
        "{} [{}, {}]",
        fmt_num(e.point),
        fmt_num(e.ci.lo),
        fmt_num(e.ci.hi)
    )
}

/// The learning table; `None` when no group has learning scores.
fn learning_view(groups: &[GroupResult], c: &Comparison) -> Option<LearningView> {
    if !c.measured() {
        return None;
    }
    let rows = groups
        .iter()
        .zip(&c.groups)
        .enumerate()
        .map(|(i, (g, l))| {
            let dash = || "—".to_string();
            let mean_of =
                |xs: &[f64]| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
            LearningRow {
                label: cell(&g.label()),
                learns: format!("{}/{}", l.learning_seeds, l.finals.len()),
                untrained: mean_of(&l.untrained).map_or_else(dash, fmt_num),
                finals: if l.finals.is_empty() {
                    dash()
                } else {
                    l.finals
                        .iter()
                        .map(|v| fmt_num(*v))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                mean: l
                    .stats
                    .as_ref()
                    .map_or_else(dash, |s| estimate_text(&s.mean)),
                iqm: l
                    .stats
                    .as_ref()
                    .map_or_else(dash, |s| estimate_text(&s.iqm)),
                improvement: if c.reference == Some(i) {
                    "reference".into()
                } else {
                    l.improvement.as_ref().map_or_else(dash, |e| {
                        let p = |v: f64| format!("{v:.2}");
                        format!("{} [{}, {}]", p(e.point), p(e.ci.lo), p(e.ci.hi))
                    })
                },
                versus_best: match (c.best == Some(i), c.tied_with_best(i)) {
                    (true, _) => "best".into(),
                    (false, Some(true)) => "not distinguishable".into(),
                    (false, Some(false)) => "below".into(),
                    (false, None) => dash(),
                },
            }
        })
        .collect();
    let seeds = c.groups.iter().map(|g| g.finals.len()).max().unwrap_or(0);
    Some(LearningView {
        reference: c.reference.map(|r| groups[r].label()).unwrap_or_default(),
        rows,
        note: seeds_note(seeds),
        plot: None,
    })
}

/// What `n` seeds per variant can and cannot show.
fn seeds_note(n: usize) -> String {
    let base = "Final = mean of a run's last 3 evaluations; untrained = its first evaluation, same protocol. Intervals are stratified bootstrap 95% (rliable: Agarwal et al. 2021); IQM is the mean of the middle 50% of seeds.";
    match n {
        0 | 1 => format!("{base} With {n} seed per variant there is no interval: one seed cannot separate a variant from luck."),
        2 | 3 => format!("{base} With {n} seeds per variant an interval is just the range of the seeds and the IQM equals the mean: \"not distinguishable\" (overlapping intervals) is what most pairs short of a large, consistent gap read, and does not mean equal; separated intervals mean every seed of one beat every seed of the other. More seeds narrow them."),
        _ => format!("{base} With {n} seeds per variant, overlapping intervals read \"not distinguishable\"."),
    }
}

/// The overall status's name for a severity (0 PASS, 1 INVESTIGATE, 2 INCOMPLETE, 3 FAIL).
fn status_name(worst: u8) -> &'static str {
    match worst {
        0 => "PASS",
        1 => "INVESTIGATE",
        2 => "INCOMPLETE",
        _ => "FAIL",
    }
}

/// The report's seed columns: every seed any run has, in order.
fn seed_columns(runs: &[RunResult]) -> Vec<Option<u64>> {
    runs.iter()
        .map(|r| r.seed())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The status line's counts: runs, groups, runs per verdict and the unfinished ones.
fn counts_text(runs: &[RunResult], groups: usize) -> String {
    let count = |v: Verdict| {
        runs.iter()
            .filter(|r| r.unfinished.is_none() && r.verdict.verdict == v)
            .count()
    };
    let unfinished = runs.iter().filter(|r| r.unfinished.is_some()).count();
    format!(
        "{} run{} in {} variant group{}: {} PASS, {} INVESTIGATE, {} FAIL{}",
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        groups,
        if groups == 1 { "" } else { "s" },
        count(Verdict::Pass),
        count(Verdict::Investigate),
        count(Verdict::Fail),
        if unfinished > 0
            && runs
                .iter()
                .any(|r| r.unfinished == Some(Unfinished::Running))
        {
            format!(", {unfinished} not finished (the sweep is still running: this report is a snapshot)")
        } else if unfinished > 0 {
            format!(", {unfinished} not finished (pending or interrupted: run the same sweep again to resume)")
        } else {
            String::new()
        }
    )
}

/// "; judged on 4 of 9 rules (5 not measured in any run: ...)" when some rule had no value in
/// any run (a metric the runs do not log, a step window they never reach); empty otherwise. Such
/// a rule neither passes nor fails anything, so the status rests on the others.
fn judged_on(criteria: &[CriterionView]) -> String {
    let unmeasured: Vec<&str> = criteria
        .iter()
        .filter(|c| c.unmeasured)
        .map(|c| c.name.as_str())
        .collect();
    if unmeasured.is_empty() {
        return String::new();
    }
    format!(
        "; judged on {} of {} rules ({} not measured in any run: {})",
        criteria.len() - unmeasured.len(),
        criteria.len(),
        unmeasured.len(),
        unmeasured.join(", ")
    )
}

/// The overview table: one row per variant group, one cell per seed column.
fn overview_rows(
    groups: &[GroupResult],
    runs: &[RunResult],
    seeds: &[Option<u64>],
) -> Vec<GroupView> {
    groups
        .iter()
        .map(|g| GroupView {
            label: cell(&g.label()),
            verdict: group_short(g.verdict),
            seeds: seeds
                .iter()
                .map(|s| {
                    g.runs
                        .iter()
                        .filter(|ri| runs[**ri].seed() == *s)
                        .map(|ri| run_cell(&runs[*ri]))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .map(|c| if c.is_empty() { "—".into() } else { c })
                .collect(),
        })
        .collect()
}

/// The "Across seeds" section: each seeds rule with every group's result on it.
fn seed_rule_views(criteria: &Criteria, groups: &[GroupResult]) -> Vec<SeedRuleView> {
    criteria
        .seed_rules
        .iter()
        .enumerate()
        .map(|(k, sr)| SeedRuleView {
            name: sr.rule.name.clone(),
            rule: seed_rule_text(sr),
            description: sr.rule.description.clone().unwrap_or_default(),
            rows: groups
                .iter()
                .filter_map(|g| {
                    let f = g.seed_findings.get(k)?;
                    Some(SeedRuleRow {
                        label: cell(&g.label()),
                        verdict: f.verdict.to_string(),
                        evidence: cell(&f.evidence),
                    })
                })
                .collect(),
        })
        .collect()
}

/// A finding's verdict as a table shows it: an interrupted run did not fail its step count, it
/// was stopped.
fn finding_verdict(r: &RunResult, f: &crate::verdict::Finding) -> String {
    match r.unfinished {
        Some(u) if f.rule == "completed" => u.as_str().to_string(),
        _ if !f.applicable => "not applicable".to_string(),
        // A rule with nothing to judge in this run did not pass it: it said nothing.
        _ if f.measured_nothing() => NOT_MEASURED.to_string(),
        _ => f.verdict.to_string(),
    }
}

/// A finding's verdict cell when its rule had nothing to judge in the run.
const NOT_MEASURED: &str = "not measured";

/// Orders of magnitude between every value and every threshold from which a rule is called
/// uninformative for a sweep.
const UNINFORMATIVE_DECADES: f64 = 3.0;

/// "this threshold cannot tell these runs apart: ..." when every run's (positive) value sits
/// [`UNINFORMATIVE_DECADES`] or more from every (positive) threshold; empty otherwise.
fn calibration_note(values: &[f64], thresholds: &[f64]) -> String {
    let positive = |xs: &[f64]| {
        xs.iter()
            .copied()
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect::<Vec<_>>()
    };
    let (vs, ts) = (positive(values), positive(thresholds));
    if vs.is_empty() || ts.is_empty() || vs.len() < values.len() {
        return String::new();
    }
    let far = vs.iter().all(|v| {
        ts.iter()
            .all(|t| (t / v).log10().abs() >= UNINFORMATIVE_DECADES)
    });
    if !far {
        return String::new();
    }
    let (lo, hi) = vs
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(*v), b.max(*v)));
    let limits: Vec<String> = ts.iter().map(|t| fmt_num(*t)).collect();
    format!(
        "this threshold cannot tell these runs apart: every run's value ({}–{}) is {} or more orders of magnitude from {} {}, so a PASS under it carries no information here",
        fmt_num(lo),
        fmt_num(hi),
        UNINFORMATIVE_DECADES,
        if ts.len() == 1 { "the threshold" } else { "the thresholds" },
        limits.join(" and ")
    )
}

/// The per-criterion tables, criteria in first-seen order across runs (built-ins, declared rules,
/// spike; "unreadable" first).
fn criterion_views(criteria: &Criteria, runs: &[RunResult]) -> Vec<CriterionView> {
    let mut names: Vec<String> = Vec::new();
    for r in runs {
        for f in &r.verdict.findings {
            if !names.contains(&f.rule) {
                names.push(f.rule.clone());
            }
        }
    }
    names
        .iter()
        .map(|name| criterion_view(criteria, runs, name))
        .collect()
}

/// One criterion's table: every run's worst value and evidence on it.
fn criterion_view(criteria: &Criteria, runs: &[RunResult], name: &str) -> CriterionView {
    let (rule, description) = rule_text(criteria, name);
    // The rule's thresholds, so a worst value just short of one prints as itself.
    // (Thresholds relative to each run's |Q| bound are not values of the metric.)
    let limits: Vec<f64> = criteria
        .rules
        .iter()
        .filter(|r| r.name == name && !r.relative_to_q_bound)
        .flat_map(|r| crate::verdict::thresholds(r).into_iter().map(|t| t.2))
        .collect();
    let mut rows: Vec<FindingView> = runs
        .iter()
        .filter_map(|r| {
            let f = r.verdict.findings.iter().find(|f| f.rule == name)?;
            let worst = f
                .worst
                .map(|(v, s)| format!("{} @ {s}", crate::verdict::fmt_num_near(v, &limits)))
                .unwrap_or_else(|| "—".into());
            let evidence = match &f.note {
                Some(n) => format!("{}; {n}", f.evidence),
                None => f.evidence.clone(),
            };
            Some(FindingView {
                run_id: cell(r.run_id()),
                verdict: finding_verdict(r, f),
                worst,
                evidence: cell(&evidence),
            })
        })
        .collect();
    let mut passing_left_out = 0;
    if runs.len() > FULL_TABLES_UP_TO {
        let before = rows.len();
        rows.retain(|r| !matches!(r.verdict.as_str(), "PASS" | NOT_MEASURED | "not applicable"));
        passing_left_out = before - rows.len();
    }
    let unmeasured = !runs.is_empty()
        && runs.iter().all(|r| {
            r.verdict
                .findings
                .iter()
                .find(|f| f.rule == name)
                .is_none_or(|f| f.measured_nothing())
        });
    if unmeasured {
        eprintln!(
            "warning: criterion `{name}` had no value in any run's window: it judged nothing"
        );
    }
    let values: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.verdict.findings.iter().find(|f| f.rule == name))
        .filter_map(|f| f.value)
        .collect();
    CriterionView {
        name: name.to_string(),
        rule: cell(&rule),
        description: cell(&description),
        rows,
        passing_left_out,
        unmeasured,
        calibration: calibration_note(&values, &limits),
    }
}

/// The growth analysis rows, and how many passing, non-exponential ones a large sweep leaves out.
fn growth_views(runs: &[RunResult]) -> (Vec<GrowthView>, usize) {
    let mut growth = Vec::new();
    let mut left_out = 0;
    for r in runs {
        for f in &r.verdict.findings {
            if let (Some(g), Some(m)) = (&f.growth, &f.metric) {
                if runs.len() > FULL_TABLES_UP_TO
                    && r.verdict.verdict == Verdict::Pass
                    && r.unfinished.is_none()
                    && !g.is_exponential()
                {
                    left_out += 1;
                    continue;
                }
                let row = GrowthView {
                    run_id: cell(r.run_id()),
                    metric: m.clone(),
                    growth: g.describe(),
                    fit: g.describe_fit(),
                };
                // Two rules on one metric over the same rows (its threshold and its
                // window_growth) describe the same growth: one row.
                if !growth.contains(&row) {
                    growth.push(row);
                }
            }
        }
    }
    (growth, left_out)
}

/// The per-run details: outcome, steps, wall time, problems, evidence and the command.
fn run_views(runs: &[RunResult], groups: &[GroupResult], stable: bool) -> Vec<RunView> {
    runs.iter()
        .enumerate()
        .map(|(idx, r)| {
            let rec = r.record.as_ref();
            RunView {
                run_id: r.run_id().to_string(),
                group: group_of(groups, idx),
                seed: seed_label(r.seed()),
                outcome: rec
                    .map(|x| x.outcome.to_string())
                    .unwrap_or_else(|| "unknown".into()),
                verdict: run_cell(r),
                steps: rec
                    .map(|x| {
                        format!(
                            "{}/{}",
                            fmt_num(x.steps_done as f64),
                            fmt_num(x.steps_planned as f64)
                        )
                    })
                    .unwrap_or_else(|| "?".into()),
                wall: match rec {
                    _ if stable => STABLE_BLANK.to_string(),
                    Some(x) => format!("{:.1} s", x.wall_s),
                    None => "?".into(),
                },
                headline: r.verdict.headline(),
                problems: r
                    .verdict
                    .problems()
                    .iter()
                    .map(|f| format!("{} ({}): {}", f.rule, finding_verdict(r, f), f.evidence))
                    .collect(),
                evidence_csv: r.evidence_csv.clone().unwrap_or_default(),
                // A fence in the quoted text would end the report's code block early.
                stderr_tail: rec
                    .filter(|x| x.outcome == crate::results::Outcome::Crashed)
                    .and_then(|x| x.stderr_tail.as_deref())
                    .map(|t| crate::results::printable(t).replace("```", "'''"))
                    .unwrap_or_default(),
                command: rec.map(|x| x.command.clone()).unwrap_or_default(),
            }
        })
        .collect()
}

/// The SVG plot of one metric: one line per variant group (max over its seeds at each step), with the
/// criteria's threshold lines. `Ok(None)` when no run measured the metric.
pub fn plot_metric(
    metric: &str,
    criteria: &Criteria,
    groups: &[GroupResult],
    runs: &[RunResult],
) -> Result<Option<String>, String> {
    let mut series = Vec::new();
    for g in groups {
        let mut by_step: std::collections::BTreeMap<u64, f64> = Default::default();
        for ri in &g.runs {
            for row in &runs[*ri].rows {
                if let Some(v) = row.get(metric).filter(|v| v.is_finite()) {
                    let e = by_step.entry(row.train_step).or_insert(v);
                    *e = e.max(v);
                }
            }
        }
        if !by_step.is_empty() {
            series.push(Series {
                label: g.label(),
                points: by_step.into_iter().map(|(s, v)| (s as f64, v)).collect(),
            });
        }
    }
    let mut thresholds: Vec<Threshold> = Vec::new();
    // Only rules that judge the plotted values themselves have lines on this scale: a growth
    // factor or a slope threshold is not a value of the metric.
    for r in criteria.rules_for(metric).filter(|r| {
        !r.relative_to_q_bound
            && matches!(
                r.aggregate,
                Aggregate::Max | Aggregate::Min | Aggregate::Last | Aggregate::Mean
            )
    }) {
        let lines = [
            (
                r.investigate_above,
                "INVESTIGATE ≥",
                plot::INVESTIGATE_ORANGE,
            ),
            (r.fail_above, "FAIL >", plot::FAIL_RED),
            (
                r.investigate_below,
                "INVESTIGATE ≤",
                plot::INVESTIGATE_ORANGE,
            ),
            (r.fail_below, "FAIL <", plot::FAIL_RED),
        ];
        for (t, what, color) in lines {
            let Some(t) = t else { continue };
            let label = format!("{what} {}", fmt_num(t));
            // Two rules on one metric with the same line draw it once.
            if !thresholds.iter().any(|x| x.label == label) {
                thresholds.push(Threshold {
                    label,
                    value: t,
                    color,
                });
            }
        }
        if let Some((lo, hi)) = r.expected {
            thresholds.push(Threshold {
                label: format!("expected ≥ {}", fmt_num(lo)),
                value: lo,
                color: plot::BAND_GREY,
            });
            thresholds.push(Threshold {
                label: format!("expected ≤ {}", fmt_num(hi)),
                value: hi,
                color: plot::BAND_GREY,
            });
        }
    }
    plot::render_svg(
        &format!("{metric} (log scale, max over seeds)"),
        &series,
        &thresholds,
    )
}

/// The plain-text overview for the terminal: one line per variant group with its seeds' verdicts.
pub fn overview_text(groups: &[GroupResult], runs: &[RunResult]) -> String {
    let rows: Vec<[String; 3]> = groups
        .iter()
        .map(|g| {
            let seeds: Vec<String> = g
                .runs
                .iter()
                .map(|ri| format!("{}:{}", seed_label(runs[*ri].seed()), run_cell(&runs[*ri])))
                .collect();
            [g.label(), seeds.join(" "), group_short(g.verdict)]
        })
        .collect();
    let header = [
        "VARIANT".to_string(),
        "SEEDS".to_string(),
        "VERDICT".to_string(),
    ];
    let w0 = rows
        .iter()
        .map(|r| r[0].chars().count())
        .chain([header[0].len()])
        .max()
        .unwrap_or(0);
    let w1 = rows
        .iter()
        .map(|r| r[1].chars().count())
        .chain([header[1].len()])
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for r in std::iter::once(&header).chain(rows.iter()) {
        out.push_str(&format!("{:<w0$}  {:<w1$}  {}\n", r[0], r[1], r[2]));
    }
    out
}
