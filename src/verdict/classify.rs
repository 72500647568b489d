//! The classifier: one run's record and metric rows → a [`RunVerdict`] with evidence.
//!
//! Everything here is a pure function of its arguments, so the report can re-classify stored CSVs
//! after the criteria change, and the trainer can ask [`certain_fail`] at every log row.

use serde::Serialize;

use super::criteria::{Aggregate, Criteria, Rule, SpikeRule};
use super::learning::{assess_learning, LearningRule};
use super::window_growth::{window_growth, GrowthRule};
use super::{fmt_factor, fmt_num, fmt_num_near, Verdict};
use crate::results::{MetricRow, Outcome, RunRecord, COLUMNS};

/// "Exponential growth" needs a log-linear fit with at least this R²...
pub const EXPONENTIAL_MIN_R2: f64 = 0.9;
/// ...over at least this many positive points (fewer fit almost anything)...
pub const EXPONENTIAL_MIN_POINTS: usize = 4;
/// ...and a first-to-peak growth of at least this factor, so a well-fitting drift from 1.0 to 1.5 is
/// not called an explosion.
pub const EXPONENTIAL_MIN_FACTOR: f64 = 10.0;

/// A least-squares fit of `ln(value) = a + slope × train_step`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LogFit {
    /// Natural-log growth per training step.
    pub slope: f64,
    /// Coefficient of determination of the fit in log space (1 for an exact exponential).
    pub r2: f64,
    /// Points used (positive, finite values only).
    pub points: usize,
}

impl LogFit {
    /// Training steps for the value to double (`ln 2 / slope`); `None` unless it grows.
    pub fn doubling_steps(&self) -> Option<f64> {
        (self.slope > 0.0).then(|| std::f64::consts::LN_2 / self.slope)
    }
}

/// Fits `ln(value)` against `step` by least squares. Non-positive and non-finite values are skipped
/// (they have no logarithm); `None` with fewer than two usable points or a single step.
///
/// R² is `1 - SS_res / SS_tot` in log space; a perfectly flat series (SS_tot = 0) gets R² = 0, since a
/// flat line explains no growth.
pub fn log_linear_fit(points: &[(u64, f64)]) -> Option<LogFit> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|(_, v)| v.is_finite() && *v > 0.0)
        .map(|(s, v)| (*s as f64, v.ln()))
        .collect();
    let n = pts.len();
    if n < 2 {
        return None;
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n as f64;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n as f64;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let ss_tot: f64 = pts.iter().map(|p| (p.1 - my).powi(2)).sum();
    let ss_res: f64 = pts
        .iter()
        .map(|p| (p.1 - (intercept + slope * p.0)).powi(2))
        .sum();
    Some(LogFit {
        slope,
        r2: log_r2(ss_tot, ss_res, my, n as f64),
        points: n,
    })
}

/// R² of a log-space fit from its sums of squares, with `mean` the mean of `ln(value)` over `n`
/// points: 0 for a flat series. The tolerance is relative, so float noise on an exactly flat
/// series does not become a tiny SS_tot.
pub(super) fn log_r2(ss_tot: f64, ss_res: f64, mean: f64, n: f64) -> f64 {
    if ss_tot <= 1e-12 * (1.0 + mean * mean) * n {
        0.0
    } else {
        (1.0 - ss_res / ss_tot).max(0.0)
    }
}

/// Growth of a metric from its first row to its peak, with the log-linear fit over all its rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Growth {
    pub first: f64,
    pub first_step: u64,
    pub peak: f64,
    pub peak_step: u64,
    /// `peak / first`.
    pub factor: f64,
    pub fit: Option<LogFit>,
}

impl Growth {
    /// The report says "exponential growth" only when this holds: a fit over at least
    /// [`EXPONENTIAL_MIN_POINTS`] points with a positive slope and R² ≥ [`EXPONENTIAL_MIN_R2`], and a
    /// first-to-peak factor of at least [`EXPONENTIAL_MIN_FACTOR`].
    pub fn is_exponential(&self) -> bool {
        self.factor >= EXPONENTIAL_MIN_FACTOR
            && self.fit.is_some_and(|f| {
                f.points >= EXPONENTIAL_MIN_POINTS && f.slope > 0.0 && f.r2 >= EXPONENTIAL_MIN_R2
            })
    }

    /// "5,191 → 7,475,702, 1,440x (steps 100–500)".
    pub fn describe(&self) -> String {
        format!(
            "{} → {}, {} (steps {}–{})",
            fmt_num(self.first),
            fmt_num(self.peak),
            fmt_factor(self.factor),
            self.first_step,
            self.peak_step
        )
    }

    /// "exponential growth: doubling every 38 steps (R² 0.998)", or a description of why not.
    pub fn describe_fit(&self) -> String {
        match self.fit {
            None => "too few points to fit".into(),
            Some(f) if self.is_exponential() => format!(
                "exponential growth: doubling every {} steps (R² {:.3})",
                fmt_num(f.doubling_steps().unwrap_or(f64::INFINITY).round()),
                f.r2
            ),
            Some(f) => {
                let doubling = match f.doubling_steps() {
                    Some(d) => format!("doubling every {} steps", fmt_num(d.round())),
                    None => "not growing".into(),
                };
                // Just under the bar must not print as the bar itself (0.89999 is not 0.900).
                let r2 = if f.r2 < EXPONENTIAL_MIN_R2
                    && format!("{:.3}", f.r2)
                        .parse::<f64>()
                        .is_ok_and(|x| x >= EXPONENTIAL_MIN_R2)
                {
                    format!("{:.5}", f.r2)
                } else {
                    format!("{:.3}", f.r2)
                };
                format!("not exponential: {doubling}, R² {r2}, {} points", f.points)
            }
        }
    }
}

/// First row to peak for `(train_step, value)` points; `None` without a positive first value.
pub fn growth(points: &[(u64, f64)]) -> Option<Growth> {
    let finite: Vec<(u64, f64)> = points
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    let &(first_step, first) = finite.first()?;
    if first <= 0.0 {
        return None;
    }
    let (peak_step, peak) = finite
        .iter()
        .copied()
        .fold(finite[0], |m, p| if p.1 > m.1 { p } else { m });
    // The fit covers the rise the growth factor describes (first row to peak): a collapse after
    // an explosion must not make the explosion read "not growing".
    let rise: Vec<(u64, f64)> = finite
        .iter()
        .copied()
        .take_while(|p| p.0 <= peak_step)
        .collect();
    let fit = if rise.len() >= EXPONENTIAL_MIN_POINTS {
        log_linear_fit(&rise)
    } else {
        log_linear_fit(&finite)
    };
    Some(Growth {
        first,
        first_step,
        peak,
        peak_step,
        factor: peak / first,
        fit,
    })
}

/// The first training step at which a threshold was crossed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Crossing {
    /// The verdict the threshold gives.
    pub level: Verdict,
    /// "≥ 10,000", "> 50,000", "≤ -5", "< -100".
    pub op: &'static str,
    pub threshold: f64,
    pub step: u64,
    pub value: f64,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FindingKind {
    /// Built in: the run completed all its planned steps.
    Outcome,
    /// Built in: no non-finite value anywhere.
    NonFinite,
    /// A declared rule.
    Threshold,
    /// The spike rule.
    Spike,
}

/// One rule's result on one run, with the evidence behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The rule's name ("actor_cnn_grad_norm", "completed", "non-finite", "actor_loss spikes").
    pub rule: String,
    pub kind: FindingKind,
    pub metric: Option<String>,
    pub aggregate: Option<Aggregate>,
    pub verdict: Verdict,
    /// The aggregated value the thresholds were compared with.
    pub value: Option<f64>,
    /// The worst row (largest, or smallest for higher-is-better rules) and its training step.
    pub worst: Option<(f64, u64)>,
    /// The first step each threshold was crossed, INVESTIGATE before FAIL.
    pub crossings: Vec<Crossing>,
    pub growth: Option<Growth>,
    /// Informational: the expected band and whether the run stayed in it.
    pub note: Option<String>,
    /// The human-readable evidence, one line.
    pub evidence: String,
    /// The training step the problem starts at, when there is one.
    pub step: Option<u64>,
    /// False when the rule cannot apply to this run (a `relative_to: q_bound` rule on a run
    /// whose bound is unknown): it reads "not applicable", never PASS.
    pub applicable: bool,
}

impl Finding {
    /// Whether the rule had nothing to judge in this run (a metric the run never logged, a window
    /// it never reached, too few rows for a spike): it neither passed nor failed the run.
    pub fn measured_nothing(&self) -> bool {
        matches!(self.kind, FindingKind::Threshold | FindingKind::Spike)
            && self.value.is_none()
            && self.verdict == Verdict::Pass
    }

    /// A built-in rule's finding (outcome, non-finite, unreadable files): no metric, no value.
    pub(super) fn builtin(
        rule: &str,
        kind: FindingKind,
        verdict: Verdict,
        evidence: String,
        step: Option<u64>,
    ) -> Finding {
        Finding {
            rule: rule.into(),
            kind,
            metric: None,
            aggregate: None,
            verdict,
            value: None,
            worst: None,
            crossings: Vec::new(),
            growth: None,
            note: None,
            evidence,
            step,
            applicable: true,
        }
    }
}

/// A run's verdict: the worst of its findings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunVerdict {
    pub verdict: Verdict,
    /// One per built-in rule, declared rule and the spike rule, in that order.
    pub findings: Vec<Finding>,
}

impl RunVerdict {
    /// The findings that are not PASS, worst first (stable within a level).
    pub fn problems(&self) -> Vec<&Finding> {
        let mut v: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| f.verdict != Verdict::Pass)
            .collect();
        v.sort_by_key(|f| std::cmp::Reverse(f.verdict));
        v
    }

    /// The evidence of every non-PASS finding, one per line (`rule: evidence`); the JUnit failure text.
    pub fn evidence(&self) -> String {
        self.problems()
            .iter()
            .map(|f| format!("{}: {}", f.rule, f.evidence))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The single most important reason, for one-line summaries.
    pub fn headline(&self) -> String {
        match self.problems().first() {
            Some(f) => format!("{}: {}", f.rule, f.evidence),
            None => "all criteria met".into(),
        }
    }
}

/// Classifies one run. The built-in rules come first: the run must have completed all its planned
/// steps, and no value may be non-finite; then every declared rule and the spike rule.
pub fn classify_run(criteria: &Criteria, record: &RunRecord, rows: &[MetricRow]) -> RunVerdict {
    let mut findings = vec![
        outcome_finding(record, rows),
        nonfinite_finding(record, rows),
    ];
    findings.extend(criteria.rules.iter().map(|r| {
        if r.relative_to_q_bound {
            bounded_finding(r, rows, record.q_bound)
        } else {
            rule_finding(r, rows)
        }
    }));
    if let Some(s) = &criteria.spike {
        findings.push(spike_finding(s, rows));
    }
    let verdict = findings
        .iter()
        .map(|f| f.verdict)
        .max()
        .unwrap_or(Verdict::Pass);
    RunVerdict { verdict, findings }
}

fn outcome_finding(record: &RunRecord, rows: &[MetricRow]) -> Finding {
    let steps = format!(
        "{}/{} steps",
        fmt_num(record.steps_done as f64),
        fmt_num(record.steps_planned as f64)
    );
    let last_step = rows
        .last()
        .map(|r| r.train_step)
        .unwrap_or(record.train_steps_done);
    let reason = record
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    let exit = record
        .exit
        .as_deref()
        .map(|e| format!(" (exit: {e})"))
        .unwrap_or_default();
    let (verdict, evidence, step) = match record.outcome {
        Outcome::Completed if record.steps_done >= record.steps_planned => {
            (Verdict::Pass, format!("completed {steps}"), None)
        }
        Outcome::Completed => (
            Verdict::Fail,
            format!("completed only {steps}{reason}"),
            Some(last_step),
        ),
        Outcome::Stopped => (
            Verdict::Fail,
            format!("FAIL, stopped at training step {last_step} ({steps}){reason}"),
            Some(last_step),
        ),
        Outcome::Diverged => {
            let at = record.first_nonfinite_step.unwrap_or(last_step);
            (
                Verdict::Fail,
                format!("diverged at training step {at} ({steps}){reason}"),
                Some(at),
            )
        }
        other => (
            Verdict::Fail,
            format!("{other} at {steps}{exit}{reason}"),
            Some(last_step),
        ),
    };
    Finding::builtin("completed", FindingKind::Outcome, verdict, evidence, step)
}

fn nonfinite_finding(record: &RunRecord, rows: &[MetricRow]) -> Finding {
    let first_row = rows
        .iter()
        .find_map(|r| row_nonfinite(r).map(|what| (r.train_step, what)));
    let total: u64 = rows.iter().map(|r| r.nonfinite).sum();
    // run.json's step is exact; a row only says "somewhere in the steps up to this row".
    let step = record
        .first_nonfinite_step
        .or(first_row.as_ref().map(|(s, _)| *s));
    let (verdict, evidence) = match step {
        None => (Verdict::Pass, "no non-finite values".to_string()),
        Some(k) => {
            let what = first_row
                .map(|(_, w)| w)
                .unwrap_or_else(|| "a non-finite value".into());
            let count = if total > 0 {
                format!("; {total} non-finite values in all")
            } else {
                String::new()
            };
            (
                Verdict::Fail,
                format!("first non-finite value at training step {k} ({what}){count}"),
            )
        }
    };
    Finding::builtin(
        "non-finite",
        FindingKind::NonFinite,
        verdict,
        evidence,
        step,
    )
}

/// Describes why a row counts as non-finite, if it does.
fn row_nonfinite(r: &MetricRow) -> Option<String> {
    let bad: Vec<&str> = COLUMNS
        .iter()
        .copied()
        .filter(|c| r.get(c).is_some_and(|v| !v.is_finite()))
        .collect();
    if !bad.is_empty() {
        Some(format!("{} is non-finite", bad.join(", ")))
    } else if r.nonfinite > 0 {
        Some(format!("{} non-finite values counted", r.nonfinite))
    } else {
        None
    }
}

fn rule_points(rule: &Rule, rows: &[MetricRow]) -> Vec<(u64, f64)> {
    rows.iter()
        .filter(|r| rule.in_window(r.train_step))
        .filter_map(|r| {
            r.get(&rule.metric)
                .filter(|v| v.is_finite())
                .map(|v| (r.train_step, v))
        })
        .collect()
}

fn crosses(level: Verdict, above: bool, t: f64, v: f64) -> bool {
    // INVESTIGATE is crossed at the threshold, FAIL strictly beyond it (see `Rule`).
    match (level, above) {
        (Verdict::Fail, true) => v > t,
        (Verdict::Fail, false) => v < t,
        (_, true) => v >= t,
        (_, false) => v <= t,
    }
}

fn op(level: Verdict, above: bool) -> &'static str {
    match (level, above) {
        (Verdict::Fail, true) => ">",
        (Verdict::Fail, false) => "<",
        (_, true) => "≥",
        (_, false) => "≤",
    }
}

/// The thresholds of a rule as (level, above?, value), INVESTIGATE first.
/// A rule's thresholds as (level, is an upper limit, value), INVESTIGATE first.
pub fn thresholds(rule: &Rule) -> Vec<(Verdict, bool, f64)> {
    [
        (Verdict::Investigate, true, rule.investigate_above),
        (Verdict::Investigate, false, rule.investigate_below),
        (Verdict::Fail, true, rule.fail_above),
        (Verdict::Fail, false, rule.fail_below),
    ]
    .into_iter()
    .filter_map(|(l, a, t)| t.map(|t| (l, a, t)))
    .collect()
}

fn aggregate(
    agg: Aggregate,
    pts: &[(u64, f64)],
    growth: Option<&Growth>,
) -> Option<(f64, Option<u64>)> {
    let pick = |better: fn(f64, f64) -> bool| {
        pts.iter()
            .copied()
            .reduce(|m, p| if better(p.1, m.1) { p } else { m })
            .map(|(s, v)| (v, Some(s)))
    };
    match agg {
        Aggregate::Max => pick(|a, b| a > b),
        Aggregate::Min => pick(|a, b| a < b),
        Aggregate::Last => pts.last().map(|(s, v)| (*v, Some(*s))),
        Aggregate::Mean => (!pts.is_empty()).then(|| {
            (
                pts.iter().map(|p| p.1).sum::<f64>() / pts.len() as f64,
                None,
            )
        }),
        Aggregate::Growth => growth.map(|g| (g.factor, Some(g.peak_step))),
        Aggregate::LogSlope => log_linear_fit(pts).map(|f| (f.slope, None)),
        // Judged by `window_growth_value` (needs the rule's window) and `learning_value` (needs
        // the rows before the window, for the baseline).
        Aggregate::WindowGrowth | Aggregate::Learning => None,
    }
}

/// A declared rule's finding before anything is judged: PASS, no value, no evidence.
fn threshold_finding(rule: &Rule, growth: Option<Growth>) -> Finding {
    Finding {
        rule: rule.name.clone(),
        kind: FindingKind::Threshold,
        metric: Some(rule.metric.clone()),
        aggregate: Some(rule.aggregate),
        verdict: Verdict::Pass,
        value: None,
        worst: None,
        crossings: Vec::new(),
        growth,
        note: None,
        evidence: String::new(),
        step: None,
        applicable: true,
    }
}

/// "within limits (INVESTIGATE ≥ 10,000, FAIL > 50,000)".
fn within_limits(ths: &[(Verdict, bool, f64)]) -> String {
    let limits: Vec<String> = ths
        .iter()
        .map(|&(l, a, t)| format!("{l} {} {}", op(l, a), fmt_num(t)))
        .collect();
    format!("within limits ({})", limits.join(", "))
}

/// A declared rule on one run: the rule's aggregate over its window, judged against each
/// threshold, with the evidence (the value, each crossing, the expected band, growth) and any
/// non-finite value in the window.
fn rule_finding(rule: &Rule, rows: &[MetricRow]) -> Finding {
    let pts = rule_points(rule, rows);
    let g = growth(&pts);
    let mut f = threshold_finding(rule, g);
    let non_finite = first_non_finite(rule, rows);
    let windowed = match rule.aggregate {
        Aggregate::WindowGrowth => Some(window_growth_value(rule, &pts)),
        Aggregate::Learning => Some(learning_value(rule, rows)),
        _ => None,
    };
    let value_at = match &windowed {
        Some(w) => w.0,
        None => aggregate(rule.aggregate, &pts, g.as_ref()),
    };
    let Some((value, at)) = value_at else {
        f.evidence = if pts.is_empty() {
            "not measured in this run (no values in the window)".into()
        } else {
            format!(
                "{} needs more points than the {} logged",
                rule.aggregate,
                pts.len()
            )
        };
        mark_non_finite(&mut f, non_finite);
        return f;
    };
    f.value = Some(value);
    f.worst = worst_row(rule, &pts, value, at);
    let ths = thresholds(rule);
    let mut parts = vec![value_text(rule, value, at, &ths)];
    for &(level, above, t) in &ths {
        if !crosses(level, above, t, value) {
            continue;
        }
        f.verdict = f.verdict.max(level);
        let (crossing, text) = crossing(rule, &pts, (level, above, t), value, at);
        f.crossings.push(crossing);
        parts.push(text);
    }
    if f.crossings.is_empty() && !ths.is_empty() {
        parts.push(within_limits(&ths));
    }
    f.step = f.crossings.iter().map(|c| c.step).min();
    f.note = rule.expected.map(|band| band_note(band, &pts));
    if let Some((_, evidence)) = &windowed {
        parts.push(evidence.clone());
    } else if let Some(g) = &g {
        if g.factor >= EXPONENTIAL_MIN_FACTOR || g.is_exponential() {
            parts.push(format!("growth {}", g.describe()));
        }
        if g.is_exponential() {
            parts.push(g.describe_fit());
        }
    }
    f.evidence = parts.join("; ");
    mark_non_finite(&mut f, non_finite);
    f
}

/// A `relative_to: q_bound` rule on one run: its thresholds, fractions of the run's |Q| bound,
/// made absolute with that bound (soft divergence: van Hasselt et al. 2018, "Deep RL and the
/// deadly triad"); "not applicable" without a bound.
fn bounded_finding(rule: &Rule, rows: &[MetricRow], bound: Option<f64>) -> Finding {
    let Some(b) = bound.filter(|b| b.is_finite() && *b > 0.0) else {
        let mut f = threshold_finding(rule, None);
        f.applicable = false;
        f.evidence = "not applicable: this run's |Q| bound is unknown (run.json has no `q_bound`: an external trainer without `trainer.q_bound`, a Gymnasium env without `env.reward_bound`, a discount of 1, or a record from before bounds were recorded)".into();
        return f;
    };
    let scale = |t: Option<f64>| t.map(|x| x * b);
    let absolute = Rule {
        investigate_above: scale(rule.investigate_above),
        fail_above: scale(rule.fail_above),
        investigate_below: scale(rule.investigate_below),
        fail_below: scale(rule.fail_below),
        ..rule.clone()
    };
    let mut f = rule_finding(&absolute, rows);
    f.evidence = format!(
        "|Q| bound r_max/(1−γ) = {} for this run; {}",
        fmt_num(b),
        f.evidence
    );
    f
}

/// The first NaN or inf of the rule's metric in its window, with its step.
fn first_non_finite(rule: &Rule, rows: &[MetricRow]) -> Option<(u64, f64)> {
    rows.iter()
        .filter(|r| rule.in_window(r.train_step))
        .find_map(|r| {
            r.get(&rule.metric)
                .filter(|v| !v.is_finite())
                .map(|v| (r.train_step, v))
        })
}

/// A NaN or inf in the window is beyond every threshold: said here too, not only by the
/// built-in non-finite check (the aggregate over the finite rows alone would read "within
/// limits"). The finite rows' evidence stays: it shows what led up to it.
fn mark_non_finite(f: &mut Finding, non_finite: Option<(u64, f64)>) {
    let Some((step, v)) = non_finite else {
        return;
    };
    f.verdict = Verdict::Fail;
    f.worst = Some((v, step));
    f.step = Some(f.step.map_or(step, |s| s.min(step)));
    let note = format!(
        "{} at step {step}: not a number, beyond every threshold (the non-finite check fails this run)",
        fmt_num(v)
    );
    f.evidence = if f.evidence.is_empty() || f.value.is_none() {
        note
    } else {
        format!("{}; then {note}", f.evidence)
    };
}

/// Whether the aggregate is a factor over the run (growth, windowed growth, learning gain),
/// whose step is where it was reached rather than a row's.
fn is_factor(agg: Aggregate) -> bool {
    matches!(
        agg,
        Aggregate::Growth | Aggregate::WindowGrowth | Aggregate::Learning
    )
}

/// The worst row and its step, for a finding with aggregate `value` (reached at step `at`).
fn worst_row(rule: &Rule, pts: &[(u64, f64)], value: f64, at: Option<u64>) -> Option<(f64, u64)> {
    let worse: fn(f64, f64) -> bool = if rule.lower_is_worse() {
        |a, b| a < b
    } else {
        |a, b| a > b
    };
    // The worst row is comparable with the thresholds only when they judge rows (max, min,
    // last); a growth factor or a slope has no worst row, a mean has no step.
    let row_based = matches!(
        rule.aggregate,
        Aggregate::Max | Aggregate::Min | Aggregate::Last
    );
    if row_based {
        pts.iter()
            .copied()
            .reduce(|m, p| if worse(p.1, m.1) { p } else { m })
            .map(|(s, v)| (v, s))
    } else if is_factor(rule.aggregate) {
        at.map(|s| (value, s))
    } else {
        None
    }
}

/// The evidence's first part: the aggregate's value (to the digits that tell it from the
/// thresholds) and, for a row's value, its step.
fn value_text(rule: &Rule, value: f64, at: Option<u64>, ths: &[(Verdict, bool, f64)]) -> String {
    let near: Vec<f64> = ths.iter().map(|t| t.2).collect();
    match at {
        Some(s) if !is_factor(rule.aggregate) => {
            format!(
                "{} {} at step {s}",
                rule.aggregate,
                fmt_num_near(value, &near)
            )
        }
        _ => format!("{} {}", rule.aggregate, fmt_num_near(value, &near)),
    }
}

/// The crossing of threshold `(level, above, t)` by aggregate `value` (reached at step `at`),
/// and its evidence: the first row that crossed it, when the aggregate judges rows.
fn crossing(
    rule: &Rule,
    pts: &[(u64, f64)],
    (level, above, t): (Verdict, bool, f64),
    value: f64,
    at: Option<u64>,
) -> (Crossing, String) {
    // A max crossing an "above" threshold (a min a "below" one) crossed it first on some row,
    // and so did a last value that crosses: that row is the first step it went wrong. A mean,
    // growth or slope crosses as a whole.
    let per_row = (rule.aggregate == Aggregate::Max && above)
        || (rule.aggregate == Aggregate::Min && !above)
        || rule.aggregate == Aggregate::Last;
    let first_row = per_row
        .then(|| pts.iter().find(|p| crosses(level, above, t, p.1)).copied())
        .flatten();
    let (step, v, text) = match first_row {
        Some((step, v)) => (
            step,
            v,
            format!(
                "{level} {} {} first crossed at step {step}",
                op(level, above),
                fmt_num(t)
            ),
        ),
        None => (
            at.or(pts.last().map(|p| p.0)).unwrap_or(0),
            value,
            format!(
                "{level}: the {} is {} {}",
                rule.aggregate,
                op(level, above),
                fmt_num(t)
            ),
        ),
    };
    let crossing = Crossing {
        level,
        op: op(level, above),
        threshold: t,
        step,
        value: v,
    };
    (crossing, text)
}

/// Whether the window's values stayed in the expected band `(lo, hi)`, with their range.
fn band_note((lo, hi): (f64, f64), pts: &[(u64, f64)]) -> String {
    let (min, max) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
    let band = format!("{}–{}", fmt_num(lo), fmt_num(hi));
    let range = format!("{}–{}", fmt_num(min), fmt_num(max));
    if min >= lo && max <= hi {
        format!("stayed in the expected band {band} (range {range})")
    } else {
        format!("outside the expected band {band} (range {range})")
    }
}

/// A `window_growth` rule's value and its step (the factor of the fastest sustained window and
/// where it ends; 1 when no window grew that way; `None` when no window had enough rows), with
/// the windows' evidence.
fn window_growth_value(rule: &Rule, pts: &[(u64, f64)]) -> (Option<(f64, Option<u64>)>, String) {
    let series: Vec<(u64, Option<f64>)> = pts.iter().map(|&(s, v)| (s, Some(v))).collect();
    let d = GrowthRule::default();
    // The windows' evidence names the rule's own thresholds.
    let params = GrowthRule {
        window_steps: rule.window.unwrap_or(d.window_steps),
        investigate_factor: rule.investigate_above.unwrap_or(d.investigate_factor),
        fail_factor: rule.fail_above.unwrap_or(d.fail_factor),
        ..d
    };
    let wg = window_growth(&series, &params);
    let value = (wg.windows > 0).then_some(match wg.sustained {
        Some(w) => (w.factor, Some(w.to_step)),
        None => (1.0, None),
    });
    (value, wg.evidence)
}

/// A `learning` rule's value, the run's gain over its untrained baseline in learning margins (above
/// 1: it learns), at the last evaluation's training step, with the evidence; `None` without a
/// baseline and a later evaluation. The baseline is the first evaluation of the whole run; the
/// rule's window only bounds which evaluations are the final ones.
fn learning_value(rule: &Rule, rows: &[MetricRow]) -> (Option<(f64, Option<u64>)>, String) {
    let mut seen_baseline = false;
    let evals: Vec<(u64, Option<f64>)> = rows
        .iter()
        .filter_map(|r| {
            let v = r.get(&rule.metric).filter(|v| v.is_finite())?;
            let keep = !seen_baseline || rule.in_window(r.train_step);
            seen_baseline = true;
            keep.then_some((r.env_step, Some(v)))
        })
        .collect();
    let Some(l) = assess_learning(&evals, &LearningRule::default()) else {
        return (None, String::new());
    };
    let gain = if l.margin > 0.0 {
        l.improvement / l.margin
    } else if l.improvement > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    let last_step = rows
        .iter()
        .rev()
        .find(|r| r.env_step == l.final_steps.1)
        .map(|r| r.train_step);
    (Some((gain, last_step)), l.evidence)
}

/// Judges a variant group's seeds together on each of `criteria.seed_rules`: each run's rows (one
/// slice per seed) reduce with the rule's aggregate, `across` combines the seeds that have a value,
/// and the thresholds judge that. A rule no seed has a value for passes as "not measured".
pub fn classify_group(criteria: &Criteria, seeds: &[&[MetricRow]]) -> Vec<Finding> {
    criteria
        .seed_rules
        .iter()
        .map(|sr| {
            let rule = &sr.rule;
            let values: Vec<f64> = seeds
                .iter()
                .filter_map(|rows| {
                    let pts = rule_points(rule, rows);
                    let g = growth(&pts);
                    aggregate(rule.aggregate, &pts, g.as_ref()).map(|(v, _)| v)
                })
                .collect();
            let mut f = threshold_finding(rule, None);
            let Some(value) = sr.across.apply(&values) else {
                f.evidence = "not measured (no seed has a value in the window)".into();
                return f;
            };
            f.value = Some(value);
            let each: Vec<String> = values.iter().map(|v| fmt_num(*v)).collect();
            let mut parts = vec![format!(
                "{} {} over {} of {} seeds ({})",
                sr.across,
                fmt_num(value),
                values.len(),
                seeds.len(),
                each.join(", ")
            )];
            let ths = thresholds(rule);
            let mut crossed = Vec::new();
            for &(level, above, t) in &ths {
                if crosses(level, above, t, value) {
                    f.verdict = f.verdict.max(level);
                    crossed.push(format!("{level} {} {}", op(level, above), fmt_num(t)));
                }
            }
            if !crossed.is_empty() {
                parts.push(format!("crossed {}", crossed.join(", ")));
            } else if !ths.is_empty() {
                parts.push(within_limits(&ths));
            }
            f.evidence = parts.join("; ");
            f
        })
        .collect()
}

/// The median (the mean of the middle two for an even count); sorts `v`.
pub(super) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn spike_finding(spike: &SpikeRule, rows: &[MetricRow]) -> Finding {
    let vals: Vec<(u64, f64)> = rows
        .iter()
        .filter_map(|r| {
            r.get(&spike.metric)
                .filter(|v| v.is_finite())
                .map(|v| (r.train_step, v.abs()))
        })
        .collect();
    // (step, |value|, median, ratio)
    let mut spikes: Vec<(u64, f64, f64, f64)> = Vec::new();
    for i in spike.window..vals.len() {
        let mut prev: Vec<f64> = vals[i - spike.window..i].iter().map(|p| p.1).collect();
        let m = median(&mut prev);
        let (step, v) = vals[i];
        if m > 0.0 && v > spike.factor * m {
            spikes.push((step, v, m, v / m));
        }
    }
    let rule = format!("{} spikes", spike.metric);
    let definition = format!(
        "a spike is |{}| > {}x the median of the previous {} rows",
        spike.metric,
        fmt_num(spike.factor),
        spike.window
    );
    let mut f = Finding::builtin(
        &rule,
        FindingKind::Spike,
        Verdict::Pass,
        String::new(),
        None,
    );
    f.metric = Some(spike.metric.clone());
    if vals.len() <= spike.window {
        f.evidence = format!(
            "not measured in this run ({} value{} of {}; a spike needs the {} rows before it)",
            vals.len(),
            if vals.len() == 1 { "" } else { "s" },
            spike.metric,
            spike.window
        );
        return f;
    }
    let Some(&(step, v, m, ratio)) = spikes.first() else {
        // Zero spikes counted: measured, and passed.
        f.value = Some(0.0);
        f.evidence = format!("no spikes ({definition})");
        return f;
    };
    f.verdict = spike.verdict;
    f.step = Some(step);
    f.worst = spikes
        .iter()
        .max_by(|a, b| a.3.total_cmp(&b.3))
        .map(|s| (s.1, s.0));
    f.value = Some(spikes.len() as f64);
    let more = if spikes.len() > 1 {
        format!("; {} spikes in all", spikes.len())
    } else {
        String::new()
    };
    f.evidence = format!(
        "spike at step {step}: |{}| {} = {} the median {} of the previous {} rows ({definition}){more}",
        spike.metric,
        fmt_num(v),
        fmt_factor(ratio),
        fmt_num(m),
        spike.window
    );
    f
}

/// Fail-fast check for the trainer, called with every row logged so far: `Some(reason)` when the run's
/// FAIL is already certain, whatever comes next. That is a non-finite value (the built-in rule), or
/// a `fail_above` threshold crossed on a `max` rule (a `fail_below` on a `min` rule), because later
/// rows can only make those aggregates worse. Rows outside a rule's window are ignored. The earliest
/// such row wins.
pub fn certain_fail(
    criteria: &Criteria,
    rows_so_far: &[MetricRow],
    q_bound: Option<f64>,
) -> Option<String> {
    for row in rows_so_far {
        if let Some(what) = row_nonfinite(row) {
            return Some(format!(
                "non-finite value at training step {} ({what})",
                row.train_step
            ));
        }
        for rule in criteria
            .rules
            .iter()
            .filter(|r| r.in_window(row.train_step))
        {
            let Some(v) = row.get(&rule.metric) else {
                continue;
            };
            // A rule relative to the |Q| bound fails beyond its fraction of the run's bound, and
            // cannot fail a run whose bound is unknown.
            let scale = if rule.relative_to_q_bound {
                match q_bound {
                    Some(b) => b,
                    None => continue,
                }
            } else {
                1.0
            };
            let (fail_above, fail_below) = (
                rule.fail_above.map(|t| t * scale),
                rule.fail_below.map(|t| t * scale),
            );
            let hit = match (rule.aggregate, fail_above, fail_below) {
                (Aggregate::Max, Some(t), _) if v > t => Some((">", t)),
                (Aggregate::Min, _, Some(t)) if v < t => Some(("<", t)),
                _ => None,
            };
            if let Some((op, t)) = hit {
                return Some(format!(
                    "{} = {} {op} {} (FAIL) at training step {}",
                    rule.metric,
                    fmt_num(v),
                    fmt_num(t),
                    row.train_step
                ));
            }
        }
    }
    None
}
