//! Criteria and classification: pure functions from a run's record and metric rows to a verdict with
//! its evidence, and from a variant's seeds to a group verdict.
//!
//! Nothing here reads files except [`load_criteria`]: the results folder's reader, the trainer
//! and the ladder feed it data, and [`judge`] is the one place runs and groups are judged.

mod classify;
pub mod compare;
mod criteria;
mod judge;
pub mod learning;
pub mod stats;
pub mod window_growth;

pub use classify::{
    certain_fail, classify_group, classify_run, growth, log_linear_fit, thresholds, Crossing,
    Finding, FindingKind, Growth, LogFit, RunVerdict, EXPONENTIAL_MIN_FACTOR,
    EXPONENTIAL_MIN_POINTS, EXPONENTIAL_MIN_R2,
};
pub use criteria::{
    load_criteria, parse_criteria, Across, Aggregate, Criteria, Quorum, Rule, SeedRule, SpikeRule,
    DEFAULT_CRITERIA_YAML,
};
pub use judge::{group_label, judge, judge_run, GroupResult, Judgement, RunResult, Unfinished};

use std::fmt;

use serde::Serialize;

/// The verdict on one run. Ordered from best to worst, so `max()` combines findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Verdict {
    Pass,
    Investigate,
    Fail,
}

impl Verdict {
    /// "PASS", "INVESTIGATE" or "FAIL", as the seed's success criteria write them.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Investigate => "INVESTIGATE",
            Verdict::Fail => "FAIL",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict on a variant group (the runs that differ only by seed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum GroupVerdict {
    /// At least the quorum of seeds passed.
    Pass,
    /// Some seeds passed, fewer than the quorum.
    Flaky { passed: usize, total: usize },
    /// No seed passed and none failed.
    Investigate,
    /// Some seed failed (`failed` of `total`; with the default quorum one FAIL seed is enough),
    /// or a seeds rule failed the group (`failed` 0).
    Fail { failed: usize, total: usize },
    /// Some seeds have not finished (never started, or interrupted with the sweep): no verdict
    /// yet. Running the same sweep again trains them.
    Incomplete { finished: usize, total: usize },
}

impl GroupVerdict {
    /// How bad it is, for sorting and for the overall status: Pass 0, Flaky and Investigate 1,
    /// Incomplete 2 (nothing is known to be wrong, but nothing is proven either), Fail 3.
    pub fn severity(self) -> u8 {
        match self {
            GroupVerdict::Pass => 0,
            GroupVerdict::Flaky { .. } | GroupVerdict::Investigate => 1,
            GroupVerdict::Incomplete { .. } => 2,
            GroupVerdict::Fail { .. } => 3,
        }
    }
}

impl fmt::Display for GroupVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupVerdict::Pass => f.write_str("PASS"),
            GroupVerdict::Flaky { passed, total } => {
                write!(f, "FLAKY ({passed}/{total} seeds pass)")
            }
            GroupVerdict::Investigate => f.write_str("INVESTIGATE"),
            GroupVerdict::Fail { failed: 0, .. } => f.write_str("FAIL"),
            GroupVerdict::Fail { failed, total } => write!(f, "FAIL ({failed}/{total} seeds fail)"),
            GroupVerdict::Incomplete { finished, total } => {
                write!(f, "INCOMPLETE ({finished}/{total} seeds finished)")
            }
        }
    }
}

/// Combines the verdicts of one variant's seeds, strictly: one exploding seed in a 1K validation
/// was enough for the seed project to call it CRITICAL, and a long deployment meets that seed's
/// fate.
///
/// 1. no seeds at all → `Investigate` (nothing to vouch for, nothing proven wrong);
/// 2. at least `quorum.required(n)` seeds PASS → `Pass`;
/// 3. any seed FAILs → `Fail { failed, total }` ("FAIL 1/3");
/// 4. some seeds PASS, the rest INVESTIGATE → `Flaky { passed, total }`;
/// 5. every seed INVESTIGATE → `Investigate`.
///
/// With the default quorum (`all`) no FAIL seed can reach step 2, so any FAIL fails the variant;
/// a user who sets `quorum: 2` over 3 seeds has decided to accept one seed of any verdict.
pub fn aggregate_seeds(verdicts: &[Verdict], quorum: Quorum) -> GroupVerdict {
    let total = verdicts.len();
    let count = |v: Verdict| verdicts.iter().filter(|x| **x == v).count();
    let (passed, failed) = (count(Verdict::Pass), count(Verdict::Fail));
    if total == 0 {
        GroupVerdict::Investigate
    } else if passed >= quorum.required(total) {
        GroupVerdict::Pass
    } else if failed > 0 {
        GroupVerdict::Fail { failed, total }
    } else if passed > 0 {
        GroupVerdict::Flaky { passed, total }
    } else {
        GroupVerdict::Investigate
    }
}

/// A group's verdict after its seeds rules ([`classify_group`]): a FAIL among them makes the group
/// FAIL; an INVESTIGATE turns a PASS into INVESTIGATE (a FLAKY group stays FLAKY, which already
/// asks for a look); PASS changes nothing.
pub fn with_seed_rules(group: GroupVerdict, seed_findings: &[Finding]) -> GroupVerdict {
    match seed_findings.iter().map(|f| f.verdict).max() {
        Some(Verdict::Fail) => match group {
            GroupVerdict::Fail { .. } => group,
            GroupVerdict::Flaky { total, .. } | GroupVerdict::Incomplete { total, .. } => {
                GroupVerdict::Fail { failed: 0, total }
            }
            _ => GroupVerdict::Fail {
                failed: 0,
                total: 0,
            },
        },
        Some(Verdict::Investigate) if group == GroupVerdict::Pass => GroupVerdict::Investigate,
        _ => group,
    }
}

/// [`fmt_num`], with more digits when the short form would read as one of `thresholds` without
/// being it (9,999.6 against 10,000 prints "9999.6", not "10,000").
pub fn fmt_num_near(v: f64, thresholds: &[f64]) -> String {
    let short = fmt_num(v);
    if thresholds.iter().any(|&t| t != v && fmt_num(t) == short) {
        format!("{v}")
    } else {
        short
    }
}

/// Formats a metric value for people: thousands separators from 1,000 up ("7,475,702"), a few
/// significant digits below ("233.5", "0.0125", "1.2e-5"), and "NaN" / "inf" spelled out.
pub fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = v.abs();
    if a >= 1000.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        if a >= 1e15 {
            return format!("{v:.3e}");
        }
        return format!("{sign}{}", group_thousands(a.round() as u64));
    }
    if a == 0.0 {
        return "0".into();
    }
    let s = if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 1e-3 {
        format!("{v:.4}")
    } else {
        return format!("{v:.1e}");
    };
    trim_zeros(&s)
}

/// Formats a growth factor the way the seed wrote it: "1,440x", "3.2x".
pub fn fmt_factor(f: f64) -> String {
    if !f.is_finite() {
        return format!("{}x", fmt_num(f));
    }
    if f >= 1e15 {
        // Past what thousands separators keep readable (and past u64 from 1.8e19).
        format!("{f:.3e}x")
    } else if f >= 100.0 {
        format!("{}x", group_thousands(f.round() as u64))
    } else {
        format!("{}x", trim_zeros(&format!("{f:.1}")))
    }
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    #[test]
    fn numbers_read_like_the_seed() {
        let table = [
            (7_475_702.0, "7,475,702"),
            (5_191.0, "5,191"),
            (1_000.0, "1,000"),
            (233.5, "233.5"),
            (-12.25, "-12.25"),
            (0.0125, "0.0125"),
            (0.00001, "1.0e-5"),
            (0.0, "0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "inf"),
        ];
        for (v, want) in table {
            assert_eq!(fmt_num(v), want, "{v}");
        }
        assert_eq!(fmt_factor(7_475_702.0 / 5_191.0), "1,440x");
        assert_eq!(fmt_factor(3.21), "3.2x");
        assert_eq!(fmt_factor(5e12 / 1e-9), "5.000e21x");
        assert_eq!(fmt_factor(999_999_999_999_999.0), "999,999,999,999,999x");
    }

    #[test]
    fn seeds_quorum_table() {
        let fail = |failed, total| GroupVerdict::Fail { failed, total };
        let flaky = |passed, total| GroupVerdict::Flaky { passed, total };
        let table: [(&[Verdict], Quorum, GroupVerdict); 12] = [
            (&[Pass, Pass, Pass], Quorum::All, GroupVerdict::Pass),
            // Strict: one FAIL seed fails the variant, whatever the others did.
            (&[Pass, Pass, Fail], Quorum::All, fail(1, 3)),
            (&[Pass, Fail], Quorum::All, fail(1, 2)),
            (&[Fail, Fail], Quorum::All, fail(2, 2)),
            (&[Investigate, Fail], Quorum::All, fail(1, 2)),
            // FLAKY is PASS mixed with INVESTIGATE only.
            (&[Pass, Investigate], Quorum::All, flaky(1, 2)),
            (&[Pass, Pass, Investigate], Quorum::All, flaky(2, 3)),
            (
                &[Investigate, Investigate],
                Quorum::All,
                GroupVerdict::Investigate,
            ),
            (&[], Quorum::All, GroupVerdict::Investigate),
            // A lower quorum is the user's decision to accept seeds of any verdict.
            (
                &[Pass, Pass, Fail],
                Quorum::Fraction(0.6),
                GroupVerdict::Pass,
            ),
            (&[Pass, Fail, Fail], Quorum::Fraction(0.6), fail(2, 3)),
            (&[Pass, Fail, Fail], Quorum::Count(1), GroupVerdict::Pass),
        ];
        for (seeds, q, want) in table {
            assert_eq!(aggregate_seeds(seeds, q), want, "{seeds:?} {q:?}");
        }
        assert_eq!(aggregate_seeds(&[], Quorum::All), GroupVerdict::Investigate);
    }
}
