//! Seeds judged strictly (issue 15 §3): one variant's per-seed verdicts → its group verdict,
//! where any FAIL seed fails the variant and FLAKY means only PASS mixed with INVESTIGATE.
//!
//! This replaces the quorum-first policy of [`super::aggregate_seeds`], under which a variant with
//! a FAIL seed could still PASS or read FLAKY. One exploding run in a 1K validation was enough for
//! the seed to call it CRITICAL; a 1M-step deployment meets that seed's fate.

use std::fmt;

use serde::Serialize;

use super::{GroupVerdict, Quorum, Verdict};

/// A variant's verdict over its seeds, with the counts the report prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum SeedsVerdict {
    /// At least the quorum of seeds passed. With the default quorum (`all`) that is every seed;
    /// a lower quorum is the user's explicit tolerance, and `failed` keeps count of the FAIL seeds
    /// it let through.
    Pass {
        passed: usize,
        failed: usize,
        total: usize,
    },
    /// PASS mixed with INVESTIGATE (no FAIL), fewer PASS than the quorum.
    Flaky { passed: usize, total: usize },
    /// No seed passed and none failed (or no seeds at all: nothing to vouch for).
    Investigate { total: usize },
    /// At least one seed failed: "FAIL 1/3".
    Fail { failed: usize, total: usize },
}

/// Combines one variant's per-seed verdicts:
/// 1. no seeds → `Investigate`;
/// 2. at least `quorum.required(n)` PASS → `Pass` (with `all`, every seed passed);
/// 3. any FAIL → `Fail { failed, total }`;
/// 4. some PASS (the rest INVESTIGATE) → `Flaky`;
/// 5. otherwise (all INVESTIGATE) → `Investigate`.
///
/// Rule 2 before 3 is what keeps the quorum meaningful "for users who decide otherwise": with
/// `quorum: all` (the default) no FAIL seed can reach rule 2, so any FAIL fails the variant; a
/// user who sets `quorum: 2` over 3 seeds accepts one seed of any verdict, and the PASS says how
/// many of those failed.
pub fn judge_seeds(verdicts: &[Verdict], quorum: Quorum) -> SeedsVerdict {
    let total = verdicts.len();
    let count = |v: Verdict| verdicts.iter().filter(|x| **x == v).count();
    let (passed, failed) = (count(Verdict::Pass), count(Verdict::Fail));
    if total == 0 {
        SeedsVerdict::Investigate { total }
    } else if passed >= quorum.required(total) {
        SeedsVerdict::Pass {
            passed,
            failed,
            total,
        }
    } else if failed > 0 {
        SeedsVerdict::Fail { failed, total }
    } else if passed > 0 {
        SeedsVerdict::Flaky { passed, total }
    } else {
        SeedsVerdict::Investigate { total }
    }
}

impl SeedsVerdict {
    /// How bad it is, on [`GroupVerdict::severity`]'s scale: Pass 0, Flaky and Investigate 1,
    /// Fail 3.
    pub fn severity(self) -> u8 {
        GroupVerdict::from(self).severity()
    }
}

/// The counts are dropped: for callers still on [`GroupVerdict`].
impl From<SeedsVerdict> for GroupVerdict {
    fn from(v: SeedsVerdict) -> GroupVerdict {
        match v {
            SeedsVerdict::Pass { .. } => GroupVerdict::Pass,
            SeedsVerdict::Flaky { passed, total } => GroupVerdict::Flaky { passed, total },
            SeedsVerdict::Investigate { .. } => GroupVerdict::Investigate,
            SeedsVerdict::Fail { .. } => GroupVerdict::Fail,
        }
    }
}

impl fmt::Display for SeedsVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SeedsVerdict::Pass { passed, total, .. } if passed == total => f.write_str("PASS"),
            SeedsVerdict::Pass {
                passed,
                failed: 0,
                total,
            } => write!(f, "PASS ({passed}/{total} seeds pass)"),
            SeedsVerdict::Pass {
                passed,
                failed,
                total,
            } => write!(
                f,
                "PASS ({passed}/{total} seeds pass; {failed} FAIL accepted by the quorum)"
            ),
            SeedsVerdict::Flaky { passed, total } => {
                write!(f, "FLAKY ({passed}/{total} seeds pass)")
            }
            SeedsVerdict::Investigate { .. } => f.write_str("INVESTIGATE"),
            SeedsVerdict::Fail { failed, total } => write!(f, "FAIL {failed}/{total}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    #[test]
    fn strict_seeds_table() {
        let pass = |passed, failed, total| SeedsVerdict::Pass {
            passed,
            failed,
            total,
        };
        let table: [(&[Verdict], Quorum, SeedsVerdict, &str); 14] = [
            (&[Pass, Pass, Pass], Quorum::All, pass(3, 0, 3), "PASS"),
            // Any FAIL seed fails the variant, with the count.
            (
                &[Pass, Pass, Fail],
                Quorum::All,
                SeedsVerdict::Fail {
                    failed: 1,
                    total: 3,
                },
                "FAIL 1/3",
            ),
            (
                &[Investigate, Fail, Pass],
                Quorum::All,
                SeedsVerdict::Fail {
                    failed: 1,
                    total: 3,
                },
                "FAIL 1/3",
            ),
            (
                &[Fail, Fail, Fail],
                Quorum::All,
                SeedsVerdict::Fail {
                    failed: 3,
                    total: 3,
                },
                "FAIL 3/3",
            ),
            // FLAKY is PASS mixed with INVESTIGATE only.
            (
                &[Pass, Investigate, Pass],
                Quorum::All,
                SeedsVerdict::Flaky {
                    passed: 2,
                    total: 3,
                },
                "FLAKY (2/3 seeds pass)",
            ),
            (
                &[Investigate, Investigate],
                Quorum::All,
                SeedsVerdict::Investigate { total: 2 },
                "INVESTIGATE",
            ),
            // A lower quorum accepts INVESTIGATE seeds...
            (
                &[Pass, Investigate, Pass],
                Quorum::Count(2),
                pass(2, 0, 3),
                "PASS (2/3 seeds pass)",
            ),
            // ...and, explicitly, FAIL ones, keeping count.
            (
                &[Pass, Pass, Fail],
                Quorum::Fraction(0.6),
                pass(2, 1, 3),
                "PASS (2/3 seeds pass; 1 FAIL accepted by the quorum)",
            ),
            // Below the quorum a FAIL still fails.
            (
                &[Pass, Fail, Fail],
                Quorum::Fraction(0.6),
                SeedsVerdict::Fail {
                    failed: 2,
                    total: 3,
                },
                "FAIL 2/3",
            ),
            (
                &[Pass, Investigate, Investigate],
                Quorum::Fraction(0.6),
                SeedsVerdict::Flaky {
                    passed: 1,
                    total: 3,
                },
                "FLAKY (1/3 seeds pass)",
            ),
            (
                &[Pass, Fail, Fail],
                Quorum::Count(1),
                pass(1, 2, 3),
                "PASS (1/3 seeds pass; 2 FAIL accepted by the quorum)",
            ),
            (&[Pass], Quorum::All, pass(1, 0, 1), "PASS"),
            (
                &[Fail],
                Quorum::Count(5),
                SeedsVerdict::Fail {
                    failed: 1,
                    total: 1,
                },
                "FAIL 1/1",
            ),
            (
                &[],
                Quorum::All,
                SeedsVerdict::Investigate { total: 0 },
                "INVESTIGATE",
            ),
        ];
        for (seeds, q, want, text) in table {
            let got = judge_seeds(seeds, q);
            assert_eq!(got, want, "{seeds:?} {q:?}");
            assert_eq!(got.to_string(), text, "{seeds:?} {q:?}");
        }
    }

    #[test]
    fn maps_onto_group_verdicts() {
        let table = [
            (
                judge_seeds(&[Pass, Pass], Quorum::All),
                GroupVerdict::Pass,
                0,
            ),
            (
                judge_seeds(&[Pass, Fail], Quorum::All),
                GroupVerdict::Fail,
                3,
            ),
            (
                judge_seeds(&[Pass, Investigate], Quorum::All),
                GroupVerdict::Flaky {
                    passed: 1,
                    total: 2,
                },
                1,
            ),
            (
                judge_seeds(&[Investigate], Quorum::All),
                GroupVerdict::Investigate,
                1,
            ),
        ];
        for (v, group, severity) in table {
            assert_eq!(GroupVerdict::from(v), group);
            assert_eq!(v.severity(), severity);
        }
        // Where the old quorum-first policy differs: a FAIL seed beside a PASS was FLAKY.
        assert_eq!(
            super::super::aggregate_seeds(&[Pass, Fail], Quorum::All),
            GroupVerdict::Flaky {
                passed: 1,
                total: 2
            }
        );
    }
}
