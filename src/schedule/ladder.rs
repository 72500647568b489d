//! The validation ladder's promotion rule: which variant groups climb to the next stage.
//!
//! The ladder's state (`ladder.json`) is [`crate::results::ladder`]'s; the runner is
//! `commands::sweep::ladder`.

use std::collections::BTreeMap;

use crate::results::ladder::{StoredGroupVerdict, StoredVerdict};
use crate::results::GroupId;
use crate::spec::{Order, Promote};
use crate::verdict::{GroupVerdict, Verdict};

/// A run verdict as `ladder.json` stores it.
pub fn stored_verdict(v: Verdict) -> StoredVerdict {
    match v {
        Verdict::Pass => StoredVerdict::Pass,
        Verdict::Investigate => StoredVerdict::Investigate,
        Verdict::Fail => StoredVerdict::Fail,
    }
}

/// A group verdict as `ladder.json` stores it.
pub fn stored_group_verdict(v: GroupVerdict) -> StoredGroupVerdict {
    match v {
        GroupVerdict::Pass => StoredGroupVerdict::Pass,
        GroupVerdict::Flaky { passed, total } => StoredGroupVerdict::Flaky { passed, total },
        GroupVerdict::Investigate => StoredGroupVerdict::Investigate,
        GroupVerdict::Fail { failed, total } => StoredGroupVerdict::Fail { failed, total },
        GroupVerdict::Incomplete { finished, total } => {
            StoredGroupVerdict::Incomplete { finished, total }
        }
    }
}

/// A variant group's standing after a stage, input to [`promote`].
#[derive(Debug, Clone)]
pub struct Standing {
    /// The variant group.
    pub group: GroupId,
    /// Its group verdict.
    pub verdict: GroupVerdict,
    /// The `best` rule's ranking value (mean over seeds of the aggregated metric).
    pub score: Option<f64>,
}

/// Applies `rule` to the standings: for each group, whether it advances and why. A FAIL never
/// advances, whatever the rule.
pub fn promote(rule: &Promote, standings: &[Standing]) -> BTreeMap<GroupId, (bool, String)> {
    let mut out = BTreeMap::new();
    match rule {
        Promote::All => {
            for s in standings {
                out.insert(s.group.clone(), (true, "every variant enters".into()));
            }
        }
        Promote::Pass | Promote::PassOrInvestigate => {
            let lenient = *rule == Promote::PassOrInvestigate;
            for s in standings {
                let ok = match s.verdict {
                    GroupVerdict::Pass => true,
                    GroupVerdict::Fail { .. } | GroupVerdict::Incomplete { .. } => false,
                    GroupVerdict::Flaky { .. } | GroupVerdict::Investigate => lenient,
                };
                let why = if ok {
                    format!("{} meets `{}`", s.verdict, rule_name(rule))
                } else {
                    format!("{} does not meet `{}`", s.verdict, rule_name(rule))
                };
                out.insert(s.group.clone(), (ok, why));
            }
        }
        Promote::Best {
            n, metric, order, ..
        } => {
            let mut ranked: Vec<&Standing> = standings
                .iter()
                .filter(|s| {
                    !matches!(
                        s.verdict,
                        GroupVerdict::Fail { .. } | GroupVerdict::Incomplete { .. }
                    ) && s.score.is_some()
                })
                .collect();
            ranked.sort_by(|a, b| {
                let (x, y) = (a.score.unwrap_or(0.0), b.score.unwrap_or(0.0));
                let c = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
                let c = if *order == Order::Desc {
                    c.reverse()
                } else {
                    c
                };
                c.then_with(|| a.group.cmp(&b.group))
            });
            for s in standings {
                let rank = ranked.iter().position(|r| r.group == s.group);
                let (ok, why) = match (s.verdict, rank) {
                    (GroupVerdict::Fail { .. }, _) => (false, "FAIL never advances".to_string()),
                    (GroupVerdict::Incomplete { .. }, _) => {
                        (false, "not finished: no verdict yet".to_string())
                    }
                    (_, None) => (false, format!("no finite `{metric}` to rank by")),
                    (_, Some(r)) if r < *n => (
                        true,
                        format!("rank {} of {} by `{metric}`", r + 1, ranked.len()),
                    ),
                    (_, Some(r)) => (
                        false,
                        format!(
                            "rank {} of {} by `{metric}`; only the best {n} advance",
                            r + 1,
                            ranked.len()
                        ),
                    ),
                };
                out.insert(s.group.clone(), (ok, why));
            }
        }
    }
    out
}

fn rule_name(rule: &Promote) -> &'static str {
    match rule {
        Promote::All => "all",
        Promote::Pass => "pass",
        Promote::PassOrInvestigate => "pass_or_investigate",
        Promote::Best { .. } => "best",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Aggregate;

    fn st(v: &str, verdict: GroupVerdict, score: Option<f64>) -> Standing {
        Standing {
            group: GroupId::new(v, &BTreeMap::new()),
            verdict,
            score,
        }
    }

    #[test]
    fn rules_pick_the_right_variants() {
        let s = [
            st("a", GroupVerdict::Pass, Some(1.0)),
            st("b", GroupVerdict::Investigate, Some(3.0)),
            st(
                "c",
                GroupVerdict::Fail {
                    failed: 1,
                    total: 1,
                },
                Some(9.0),
            ),
            st("d", GroupVerdict::Pass, Some(2.0)),
        ];
        let up = |r: &Promote| -> Vec<String> {
            promote(r, &s)
                .into_iter()
                .filter(|(_, (ok, _))| *ok)
                .map(|(k, _)| k.variant)
                .collect()
        };
        assert_eq!(up(&Promote::Pass), ["a", "d"]);
        assert_eq!(up(&Promote::PassOrInvestigate), ["a", "b", "d"]);
        let best = |order| Promote::Best {
            n: 2,
            metric: "eval_return".into(),
            aggregate: Aggregate::Max,
            order,
        };
        assert_eq!(up(&best(Order::Desc)), ["b", "d"], "c is FAIL: never");
        assert_eq!(up(&best(Order::Asc)), ["a", "d"]);
    }
}
