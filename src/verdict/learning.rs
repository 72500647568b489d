//! The learning rule (issue 15 §1): a run learns when its smoothed final evaluation return beats
//! its own untrained baseline (the first evaluation, under the same protocol) by a margin that
//! holds at any reward scale. A stable run that does not learn is INVESTIGATE, "stable but not
//! learning".
//!
//! # The margin
//! It scales with the returns themselves, so multiplying every reward by any constant leaves the
//! decision unchanged, and it is the largest of:
//! - **a fraction of the task's range**, `margin_fraction × (best − baseline)`, when the best
//!   return the task allows is known: the run must cover a tenth of the way from where it started
//!   to the best possible (a normalised score of 0.1, as rliable normalises scores);
//! - otherwise **a fraction of the returns' magnitude**, `margin_fraction × max(|baseline|,
//!   |final|)`. A fraction of `|baseline|` alone fails when the untrained policy scores near 0
//!   (lane-keep's −8.6 against trained 45–173, or a task whose untrained return is exactly 0,
//!   where any change would count); with the larger of the two, the change must be a tenth of the
//!   scale the run actually reached;
//! - **the spread of the final evaluations** (their sample standard deviation): an improvement
//!   smaller than the evaluations' own scatter is not evidence of learning.
//!
//! Learning requires `final − baseline > margin`, strictly, so a run that changed nothing never
//! learns, even where every term is 0.

use serde::Serialize;

use super::{fmt_num, Verdict};

/// Final evaluations averaged by default: evaluations are noisy, one is not enough.
pub const DEFAULT_FINAL_EVALS: usize = 3;
/// Fraction of the task's range (or of the returns' magnitude) the run must improve by.
pub const DEFAULT_MARGIN_FRACTION: f64 = 0.1;

/// The learning rule's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LearningRule {
    /// Evaluations (after the baseline) whose mean is the final return.
    pub final_evals: usize,
    /// See the module docs.
    pub margin_fraction: f64,
    /// The best return the task allows, when known (Pendulum: 0).
    pub best_return: Option<f64>,
}

impl Default for LearningRule {
    fn default() -> Self {
        LearningRule {
            final_evals: DEFAULT_FINAL_EVALS,
            margin_fraction: DEFAULT_MARGIN_FRACTION,
            best_return: None,
        }
    }
}

/// Which term set the margin.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum MarginBasis {
    /// A fraction of `best − baseline`.
    TaskRange { best: f64 },
    /// A fraction of `max(|baseline|, |final|)`.
    ReturnScale,
    /// The final evaluations' standard deviation.
    Spread,
}

/// The learning rule's result on one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Learning {
    /// The untrained policy's return and its env step.
    pub baseline: f64,
    pub baseline_step: u64,
    /// Mean of the last evaluations, and the env steps of the first and last of them.
    pub final_return: f64,
    pub final_steps: (u64, u64),
    /// Evaluations averaged into `final_return`.
    pub final_evals: usize,
    /// Their sample standard deviation (0 for one).
    pub spread: f64,
    /// `final_return − baseline`.
    pub improvement: f64,
    pub margin: f64,
    pub basis: MarginBasis,
    /// `improvement > margin`.
    pub learns: bool,
    /// One line for the report.
    pub evidence: String,
}

impl Learning {
    /// PASS when it learns, else INVESTIGATE ("stable but not learning").
    pub fn verdict(&self) -> Verdict {
        if self.learns {
            Verdict::Pass
        } else {
            Verdict::Investigate
        }
    }
}

/// Judges one run's `(env step, eval return)` series, the untrained baseline first. Missing and
/// non-finite returns are skipped; rows are sorted by step. `None` without a baseline and at least
/// one evaluation after it: not measured.
pub fn assess_learning(evals: &[(u64, Option<f64>)], rule: &LearningRule) -> Option<Learning> {
    let mut pts: Vec<(u64, f64)> = evals
        .iter()
        .filter_map(|&(s, v)| v.filter(|v| v.is_finite()).map(|v| (s, v)))
        .collect();
    pts.sort_by_key(|p| p.0);
    let (&(baseline_step, baseline), after) = pts.split_first()?;
    let last = &after[after
        .len()
        .checked_sub(rule.final_evals.max(1).min(after.len()))?..];
    let (first_step, last_step) = (last.first()?.0, last.last()?.0);
    let n = last.len() as f64;
    let final_return = last.iter().map(|p| p.1).sum::<f64>() / n;
    let spread = if last.len() > 1 {
        (last
            .iter()
            .map(|p| (p.1 - final_return).powi(2))
            .sum::<f64>()
            / (n - 1.0))
            .sqrt()
    } else {
        0.0
    };
    let (scaled, scaled_basis) = match rule.best_return.filter(|b| *b > baseline) {
        Some(best) => (
            rule.margin_fraction * (best - baseline),
            MarginBasis::TaskRange { best },
        ),
        None => (
            rule.margin_fraction * baseline.abs().max(final_return.abs()),
            MarginBasis::ReturnScale,
        ),
    };
    let (margin, basis) = if spread > scaled {
        (spread, MarginBasis::Spread)
    } else {
        (scaled, scaled_basis)
    };
    let improvement = final_return - baseline;
    let learns = improvement > margin;
    let mut out = Learning {
        baseline,
        baseline_step,
        final_return,
        final_steps: (first_step, last_step),
        final_evals: last.len(),
        spread,
        improvement,
        margin,
        basis,
        learns,
        evidence: String::new(),
    };
    out.evidence = evidence(&out, rule.margin_fraction);
    Some(out)
}

fn evidence(l: &Learning, fraction: f64) -> String {
    let pct = fmt_num(fraction * 100.0);
    let basis = match l.basis {
        MarginBasis::TaskRange { best } => {
            format!(
                "{pct}% of the way from untrained to the best return {}",
                fmt_num(best)
            )
        }
        MarginBasis::ReturnScale => format!("{pct}% of the larger of |untrained| and |final|"),
        MarginBasis::Spread => "the spread of the final evaluations".into(),
    };
    let steps = if l.final_steps.0 == l.final_steps.1 {
        format!("env step {}", fmt_num(l.final_steps.0 as f64))
    } else {
        format!(
            "env steps {}–{}",
            fmt_num(l.final_steps.0 as f64),
            fmt_num(l.final_steps.1 as f64)
        )
    };
    let sign = if l.improvement >= 0.0 { "+" } else { "" };
    format!(
        "{}: final eval return {} (mean of the last {}, {steps}) against untrained {}: {sign}{} {} margin {} ({basis})",
        if l.learns { "learns" } else { "stable but not learning" },
        fmt_num(l.final_return),
        l.final_evals,
        fmt_num(l.baseline),
        fmt_num(l.improvement),
        if l.learns { ">" } else { "≤" },
        fmt_num(l.margin),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evaluations every 1,000 env steps from 0 (the untrained baseline).
    fn evals(returns: &[f64]) -> Vec<(u64, Option<f64>)> {
        returns
            .iter()
            .enumerate()
            .map(|(i, r)| (1000 * i as u64, Some(*r)))
            .collect()
    }

    #[test]
    fn learning_table_at_three_scales() {
        let pendulum_best = LearningRule {
            best_return: Some(0.0),
            ..LearningRule::default()
        };
        let table: [(&str, Vec<f64>, LearningRule, bool); 9] = [
            // Pendulum-like: untrained ≈ −1,300, trained −150..−250.
            (
                "pendulum",
                vec![-1300.0, -1100.0, -600.0, -150.0, -250.0, -200.0],
                LearningRule::default(),
                true,
            ),
            (
                "pendulum, best known",
                vec![-1300.0, -1100.0, -600.0, -150.0, -250.0, -200.0],
                pendulum_best,
                true,
            ),
            // Barely moved: 50 of 1,300.
            (
                "pendulum, stuck",
                vec![-1300.0, -1400.0, -1250.0, -1200.0, -1300.0, -1250.0],
                LearningRule::default(),
                false,
            ),
            (
                "pendulum, stuck, best known",
                vec![-1300.0, -1400.0, -1250.0, -1200.0, -1300.0, -1250.0],
                pendulum_best,
                false,
            ),
            // Lane-keep: untrained −8.6, trained 45–173.
            (
                "lane-keep lr 1e-5",
                vec![-8.6, -8.6, 12.0, 45.0, 173.0, 120.0],
                LearningRule::default(),
                true,
            ),
            // Lane-keep lr 1e-4: the actor died, eval stays at the untrained −8.6.
            (
                "dead actor",
                vec![-8.6, -8.6, -8.6, -8.6, -8.6, -8.6],
                LearningRule::default(),
                false,
            ),
            (
                "dead actor, eval jitter",
                vec![-8.6, -8.5, -8.7, -8.6, -8.5, -8.7],
                LearningRule::default(),
                false,
            ),
            // Improvement within the final evaluations' own scatter.
            (
                "noisy",
                vec![0.0, 5.0, -40.0, 60.0, -30.0, 40.0],
                LearningRule::default(),
                false,
            ),
            // Got worse.
            (
                "worse",
                vec![-100.0, -200.0, -300.0, -400.0],
                LearningRule::default(),
                false,
            ),
        ];
        for (name, returns, rule, want) in table {
            // Scale-free: the same decision at any reward scale.
            for scale in [1e-3, 1.0, 1e3] {
                let scaled: Vec<f64> = returns.iter().map(|r| r * scale).collect();
                let rule = LearningRule {
                    best_return: rule.best_return.map(|b| b * scale),
                    ..rule
                };
                let l = assess_learning(&evals(&scaled), &rule).unwrap();
                assert_eq!(l.learns, want, "{name} ×{scale}: {}", l.evidence);
                assert_eq!(
                    l.verdict(),
                    if want {
                        Verdict::Pass
                    } else {
                        Verdict::Investigate
                    }
                );
            }
        }
    }

    #[test]
    fn final_value_baseline_and_margin() {
        let l = assess_learning(
            &evals(&[-1300.0, -1100.0, -600.0, -150.0, -250.0, -200.0]),
            &LearningRule::default(),
        )
        .unwrap();
        assert_eq!((l.baseline, l.baseline_step), (-1300.0, 0));
        assert_eq!(
            (l.final_return, l.final_steps, l.final_evals),
            (-200.0, (3000, 5000), 3)
        );
        assert_eq!(
            (l.improvement, l.margin, l.basis),
            (1100.0, 130.0, MarginBasis::ReturnScale)
        );
        assert_eq!(l.spread, 50.0);
        assert_eq!(
            l.evidence,
            "learns: final eval return -200 (mean of the last 3, env steps 3,000–5,000) against untrained -1,300: \
             +1,100 > margin 130 (10% of the larger of |untrained| and |final|)"
        );
        // A dead actor: nothing moved, so nothing learns even with every margin term 0.
        let dead = assess_learning(&evals(&[0.0, 0.0, 0.0]), &LearningRule::default()).unwrap();
        assert!(!dead.learns);
        assert_eq!(
            dead.evidence,
            "stable but not learning: final eval return 0 (mean of the last 2, env steps 1,000–2,000) against untrained 0: \
             +0 ≤ margin 0 (10% of the larger of |untrained| and |final|)"
        );
        // The spread sets the margin when it is the largest term.
        let lane = assess_learning(
            &evals(&[-8.6, 45.0, 173.0, 120.0]),
            &LearningRule::default(),
        )
        .unwrap();
        assert_eq!(lane.basis, MarginBasis::Spread);
        assert!(lane.learns && (lane.margin - lane.spread).abs() < 1e-12);
    }

    #[test]
    fn the_best_return_sets_the_range() {
        let rule = LearningRule {
            best_return: Some(0.0),
            ..LearningRule::default()
        };
        // 10% of (0 − (−1,300)) = 130: an improvement of 140 learns (a little).
        let l = assess_learning(&evals(&[-1300.0, -1160.0]), &rule).unwrap();
        assert_eq!(l.basis, MarginBasis::TaskRange { best: 0.0 });
        assert!(l.learns, "{}", l.evidence);
        assert!(l
            .evidence
            .ends_with("(10% of the way from untrained to the best return 0)"));
        // A declared best at or below the baseline says nothing: the returns' scale takes over.
        let low = LearningRule {
            best_return: Some(-2000.0),
            ..LearningRule::default()
        };
        let l = assess_learning(&evals(&[-1300.0, -1160.0]), &low).unwrap();
        assert_eq!(l.basis, MarginBasis::ReturnScale);
    }

    #[test]
    fn gaps_order_and_too_few_evaluations() {
        // Missing and NaN evaluations are skipped, rows sorted by step; k larger than what exists
        // averages what there is.
        let mut e = vec![
            (3000, Some(150.0)),
            (0, Some(-8.6)),
            (1000, None),
            (2000, Some(f64::NAN)),
            (4000, Some(170.0)),
        ];
        let rule = LearningRule {
            final_evals: 5,
            ..LearningRule::default()
        };
        let l = assess_learning(&e, &rule).unwrap();
        assert_eq!(
            (l.baseline, l.final_return, l.final_evals),
            (-8.6, 160.0, 2)
        );
        assert!(l.learns);
        e.truncate(3);
        let one = assess_learning(&e, &rule).unwrap();
        assert_eq!(
            (one.final_return, one.final_steps, one.spread),
            (150.0, (3000, 3000), 0.0)
        );
        assert!(
            one.evidence
                .contains("(mean of the last 1, env step 3,000)"),
            "{}",
            one.evidence
        );
        // The baseline alone, or nothing: not measured.
        assert_eq!(assess_learning(&evals(&[-8.6]), &rule), None);
        assert_eq!(assess_learning(&[(0, None)], &rule), None);
        assert_eq!(assess_learning(&[], &rule), None);
    }
}
