//! The soft-divergence rule (issue 15 §2, after van Hasselt et al. 2018, "Deep RL and the deadly
//! triad"): no policy can earn a return larger in magnitude than `r_max / (1 − γ)`, so a critic
//! whose |Q| goes beyond it has diverged, whatever the task's scale.

use serde::Serialize;

use super::{fmt_num, Verdict};

/// |Q| at or beyond this fraction of the bound is INVESTIGATE.
///
/// The bound is earned only by a policy that takes the largest-magnitude reward at every step
/// forever, and how close real values come depends on the task: in Pendulum-v1 a pendulum left
/// hanging costs π² ≈ 9.9 per step of a possible 16.3, so an accurate critic of a poor policy
/// legitimately reads about 0.61 of the bound (a half would flag it); in lane-keep a good driver
/// earns about 1.25 of the 10 the off-road penalty bounds, 0.13. 0.8 lies beyond every realistic
/// policy of the built-in tasks and still warns before the FAIL line, leaving a fifth of the bound
/// for an overestimating critic.
pub const DEFAULT_INVESTIGATE_FRACTION: f64 = 0.8;

/// The largest |Q| any policy can have: `r_max / (1 − γ)`, where `r_max = reward_bound ×
/// |reward_scale|` is the largest |reward| of one step as the critic sees it.
///
/// - `γ < 1`: `r_max / (1 − γ)`, whatever the episode length. The built-in envs truncate episodes
///   and the critic bootstraps across truncation, so Q estimates the infinite-horizon value and
///   a `horizon` would not tighten the bound.
/// - `γ = 1`: the infinite sum has no bound; with a `horizon` T it is `r_max × T`, which holds only
///   when every episode ends (terminates, without bootstrapping) within T steps: pass one only then.
///
/// `None` (the rule reads "not applicable") when the reward bound is unknown to the caller, not
/// positive or not finite, `reward_scale` is not finite or zero, or γ lies outside `[0, 1]`.
pub fn q_bound(
    reward_bound: f64,
    reward_scale: f64,
    gamma: f64,
    horizon: Option<u64>,
) -> Option<f64> {
    let r_max = reward_bound * reward_scale.abs();
    if !(r_max.is_finite() && r_max > 0.0 && (0.0..=1.0).contains(&gamma)) {
        return None;
    }
    if gamma < 1.0 {
        Some(r_max / (1.0 - gamma))
    } else {
        horizon.filter(|t| *t > 0).map(|t| r_max * t as f64)
    }
}

/// The rule's verdict: "not applicable" is its own state, never a PASS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BoundVerdict {
    /// No bound is known, so the rule says nothing.
    NotApplicable,
    Judged(Verdict),
}

impl BoundVerdict {
    /// The verdict when judged; `None` for "not applicable".
    pub fn verdict(self) -> Option<Verdict> {
        match self {
            BoundVerdict::Judged(v) => Some(v),
            BoundVerdict::NotApplicable => None,
        }
    }
}

impl std::fmt::Display for BoundVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoundVerdict::NotApplicable => f.write_str("not applicable"),
            BoundVerdict::Judged(v) => write!(f, "{v}"),
        }
    }
}

/// The rule's result on one run's |Q| series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SoftDivergence {
    pub verdict: BoundVerdict,
    /// The bound judged against, when known.
    pub bound: Option<f64>,
    /// The largest |Q| and its training step (a non-finite value counts as the largest).
    pub peak: Option<(f64, u64)>,
    /// The first training step at or beyond the INVESTIGATE line, and strictly beyond the bound.
    pub first_investigate: Option<u64>,
    pub first_fail: Option<u64>,
    /// One line for the report.
    pub evidence: String,
}

/// Judges a `(training step, |Q|)` series (such as `q_abs_max`) against `bound`: beyond the bound
/// is FAIL, at or beyond `investigate_fraction` of it INVESTIGATE, else PASS; with no bound "not
/// applicable". Missing values are skipped; a non-finite |Q| is beyond every bound (FAIL). Values
/// are taken as magnitudes. With no value at all the verdict is PASS only if there is a bound to
/// say so against, with evidence "not measured".
pub fn soft_divergence(
    q_abs: &[(u64, Option<f64>)],
    bound: Option<f64>,
    investigate_fraction: f64,
) -> SoftDivergence {
    let mut out = SoftDivergence {
        verdict: BoundVerdict::NotApplicable,
        bound,
        peak: None,
        first_investigate: None,
        first_fail: None,
        evidence: String::new(),
    };
    let Some(b) = bound else {
        out.evidence =
            "not applicable: the task declares no reward bound (set env.reward_bound)".into();
        return out;
    };
    let line = investigate_fraction * b;
    let mut pts: Vec<(u64, f64)> = q_abs
        .iter()
        .filter_map(|&(s, v)| v.map(|v| (s, if v.is_nan() { f64::INFINITY } else { v.abs() })))
        .collect();
    pts.sort_by_key(|p| p.0);
    out.peak = pts
        .iter()
        .copied()
        .reduce(|m, p| if p.1 > m.1 { p } else { m })
        .map(|(s, v)| (v, s));
    out.first_investigate = pts.iter().find(|p| p.1 >= line).map(|p| p.0);
    out.first_fail = pts.iter().find(|p| p.1 > b).map(|p| p.0);
    let verdict = if out.first_fail.is_some() {
        Verdict::Fail
    } else if out.first_investigate.is_some() {
        Verdict::Investigate
    } else {
        Verdict::Pass
    };
    out.verdict = BoundVerdict::Judged(verdict);
    let bound_text = format!("the bound r_max/(1−γ) = {}", fmt_num(b));
    out.evidence = match (out.peak, out.first_fail, out.first_investigate) {
        (None, ..) => format!("not measured (no |Q| values); {bound_text}"),
        (Some((v, at)), Some(step), _) => format!(
            "|Q| beyond {bound_text} from step {step} (peak {} at step {at}, {} of the bound)",
            fmt_num(v),
            percent(v / b)
        ),
        (Some((v, at)), None, Some(step)) => format!(
            "|Q| at or beyond {} of {bound_text} from step {step} (peak {} at step {at}, {})",
            percent(investigate_fraction),
            fmt_num(v),
            percent(v / b)
        ),
        (Some((v, at)), None, None) => format!(
            "peak |Q| {} at step {at}, {} of {bound_text} (INVESTIGATE from {})",
            fmt_num(v),
            percent(v / b),
            percent(investigate_fraction)
        ),
    };
    out
}

/// "1.2%", "61%", "1,440%", "inf%".
fn percent(x: f64) -> String {
    let p = x * 100.0;
    if p.is_finite() && p < 10.0 {
        format!("{}%", fmt_num((p * 10.0).round() / 10.0))
    } else {
        format!("{}%", fmt_num(p.round()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    #[test]
    fn the_bound_from_reward_scale_gamma_and_horizon() {
        // (reward_bound, reward_scale, γ, horizon, bound)
        type Case = (f64, f64, f64, Option<u64>, Option<f64>);
        let table: [Case; 11] = [
            // lane-keep: the off-road penalty bounds |r| at 10; γ = 0.99.
            (10.0, 1.0, 0.99, None, Some(1000.0)),
            // reward_scale multiplies r_max, whatever its sign.
            (10.0, 3.0, 0.99, None, Some(3000.0)),
            (10.0, -0.5, 0.99, None, Some(500.0)),
            // The horizon does not tighten a discounted bound (bootstrapped truncation).
            (16.27, 1.0, 0.9, Some(200), Some(162.7)),
            (1.0, 1.0, 0.0, None, Some(1.0)),
            // γ = 1: bounded only by a horizon.
            (2.0, 1.0, 1.0, Some(200), Some(400.0)),
            (2.0, 1.0, 1.0, None, None),
            // Unknown or meaningless inputs: not applicable.
            (f64::NAN, 1.0, 0.99, None, None),
            (0.0, 1.0, 0.99, None, None),
            (10.0, 0.0, 0.99, None, None),
            (10.0, 1.0, 1.5, None, None),
        ];
        for (r, scale, gamma, horizon, want) in table {
            let got = q_bound(r, scale, gamma, horizon);
            match (got, want) {
                (Some(g), Some(w)) => {
                    assert!((g - w).abs() < 1e-9 * w, "{r} {scale} {gamma}: {g} ≠ {w}")
                }
                _ => assert_eq!(got, want, "{r} {scale} {gamma} {horizon:?}"),
            }
        }
    }

    fn q(values: &[f64]) -> Vec<(u64, Option<f64>)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (100 * (i as u64 + 1), Some(*v)))
            .collect()
    }

    #[test]
    fn q_against_the_bound() {
        let f = DEFAULT_INVESTIGATE_FRACTION;
        // (|Q| series, bound, verdict, first FAIL step)
        type Case = (
            Vec<(u64, Option<f64>)>,
            Option<f64>,
            BoundVerdict,
            Option<u64>,
        );
        let table: [Case; 8] = [
            // The sweep: |Q| peaks at 12 against lane-keep's 1,000.
            (
                q(&[0.1, 3.0, 12.0, 9.0]),
                Some(1000.0),
                BoundVerdict::Judged(Pass),
                None,
            ),
            (
                q(&[10.0, 500.0, 799.0]),
                Some(1000.0),
                BoundVerdict::Judged(Pass),
                None,
            ),
            (
                q(&[10.0, 800.0, 700.0]),
                Some(1000.0),
                BoundVerdict::Judged(Investigate),
                None,
            ),
            (
                q(&[10.0, 800.0, 1000.0]),
                Some(1000.0),
                BoundVerdict::Judged(Investigate),
                None,
            ),
            (
                q(&[10.0, 900.0, 1000.5, 20.0]),
                Some(1000.0),
                BoundVerdict::Judged(Fail),
                Some(300),
            ),
            // Negative Q counts by magnitude; NaN is beyond every bound.
            (
                q(&[-2000.0]),
                Some(1000.0),
                BoundVerdict::Judged(Fail),
                Some(100),
            ),
            (
                q(&[1.0, f64::NAN]),
                Some(1000.0),
                BoundVerdict::Judged(Fail),
                Some(200),
            ),
            // No bound: not applicable, however large |Q| is.
            (q(&[1e12]), None, BoundVerdict::NotApplicable, None),
        ];
        for (series, bound, want, fail_at) in table {
            let got = soft_divergence(&series, bound, f);
            assert_eq!(got.verdict, want, "{series:?}: {}", got.evidence);
            assert_eq!(got.first_fail, fail_at, "{series:?}");
            if bound.is_none() {
                assert_eq!(got.verdict.verdict(), None, "never PASS without a bound");
            }
        }
    }

    #[test]
    fn evidence_reads_as_the_report_prints_it() {
        let f = DEFAULT_INVESTIGATE_FRACTION;
        let pass = soft_divergence(&q(&[0.1, 3.0, 12.0, 9.0]), Some(1000.0), f);
        assert_eq!(
            pass.evidence,
            "peak |Q| 12 at step 300, 1.2% of the bound r_max/(1−γ) = 1,000 (INVESTIGATE from 80%)"
        );
        let fail = soft_divergence(&q(&[10.0, 900.0, 11_000_000.0]), Some(1000.0), f);
        assert_eq!(
            fail.evidence,
            "|Q| beyond the bound r_max/(1−γ) = 1,000 from step 300 (peak 11,000,000 at step 300, 1,100,000% of the bound)"
        );
        assert_eq!(fail.first_investigate, Some(200));
        let inv = soft_divergence(&q(&[850.0]), Some(1000.0), f);
        assert_eq!(
            inv.evidence,
            "|Q| at or beyond 80% of the bound r_max/(1−γ) = 1,000 from step 100 (peak 850 at step 100, 85%)"
        );
        let na = soft_divergence(&q(&[1.0]), None, f);
        assert_eq!(na.verdict.to_string(), "not applicable");
        assert!(na.evidence.starts_with("not applicable"));
        let empty = soft_divergence(&[(100, None)], Some(10.0), f);
        assert_eq!(empty.verdict, BoundVerdict::Judged(Pass));
        assert!(
            empty.evidence.starts_with("not measured"),
            "{}",
            empty.evidence
        );
    }
}
