//! The validation ladder's state (`results/<name>/ladder.json`) and its promotion rule.
//!
//! A ladder runs its stages in order. After a stage, each variant group (the runs that differ only
//! by seed) gets a verdict, and the next stage's `promote` rule picks the groups that climb. The
//! state file records every finished stage, so a finished stage is not rerun (`--rerun failed`
//! reopens the first one with a failed run).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::spec::{Order, Promote, Stage};
use crate::verdict::GroupVerdict;

/// File name of the ladder state inside a results folder.
pub const LADDER_FILE: &str = "ladder.json";

/// The whole ladder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LadderState {
    /// One entry per stage of the spec, in order.
    pub stages: Vec<StageState>,
    /// Variants that passed the last stage when it has `approve: true`.
    pub approved: Vec<String>,
    /// Whether the last stage approves.
    pub approve: bool,
}

/// One stage's plan and, once finished, its results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageState {
    /// The stage's name.
    pub name: String,
    /// Total env steps at the stage's end.
    pub steps: u64,
    /// The rule that chose who entered this stage, in words.
    pub promote: String,
    /// All runs of the stage ended and were classified.
    pub done: bool,
    /// The variants that entered the stage.
    pub entered: Vec<String>,
    /// Each run's result at the end of the stage.
    pub runs: Vec<RunAtStage>,
    /// Each entered variant's verdict and whether it climbed to the next stage.
    pub variants: Vec<VariantAtStage>,
}

/// One run at the end of a stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunAtStage {
    /// The run id.
    pub run_id: String,
    /// Its variant.
    pub variant: String,
    /// Its seed.
    pub seed: u64,
    /// `completed`, `crashed`, ...
    pub outcome: String,
    /// PASS / INVESTIGATE / FAIL.
    pub verdict: String,
    /// Env steps done at the stage's end (where the stage ended in `metrics.csv`).
    pub env_step: u64,
    /// Gradient updates done at the stage's end.
    pub train_step: u64,
    /// The run's reason (crash, stop) or its worst findings' evidence.
    pub evidence: Vec<String>,
}

/// One variant group at the end of a stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VariantAtStage {
    /// The variant's name.
    pub variant: String,
    /// Its group verdict (`PASS`, `FLAKY (1/2 seeds pass)`, ...).
    pub verdict: String,
    /// The ranking value for a `best` rule (mean over seeds), when one applies.
    pub score: Option<f64>,
    /// It entered the next stage.
    pub promoted: bool,
    /// Why it did or did not climb.
    pub why: String,
}

impl LadderState {
    /// A fresh state for `stages`.
    pub fn new(stages: &[Stage]) -> LadderState {
        LadderState {
            stages: stages
                .iter()
                .map(|s| StageState {
                    name: s.name.clone(),
                    steps: s.steps,
                    promote: s.promote.to_string(),
                    ..Default::default()
                })
                .collect(),
            approved: Vec::new(),
            approve: stages.last().map(|s| s.approve).unwrap_or(false),
        }
    }

    /// Reads `dir/ladder.json`; `None` if absent or unreadable.
    pub fn read(dir: &Path) -> Option<LadderState> {
        std::fs::read_to_string(dir.join(LADDER_FILE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
    }

    /// Writes `dir/ladder.json` atomically.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        crate::metrics::write_atomic(&dir.join(LADDER_FILE), text.as_bytes())
    }

    /// Whether this saved state belongs to the same stage list (names and steps), so its
    /// finished stages can be reused.
    pub fn matches(&self, stages: &[Stage]) -> bool {
        self.stages.len() == stages.len()
            && self
                .stages
                .iter()
                .zip(stages)
                .all(|(a, b)| a.name == b.name && a.steps == b.steps)
    }
}

/// A variant group's standing after a stage, input to [`promote`].
#[derive(Debug, Clone)]
pub struct Standing {
    /// The variant.
    pub variant: String,
    /// Its group verdict.
    pub verdict: GroupVerdict,
    /// The `best` rule's ranking value (mean over seeds of the aggregated metric).
    pub score: Option<f64>,
}

/// Applies `rule` to the standings: for each variant, whether it advances and why. A FAIL never
/// advances, whatever the rule.
pub fn promote(rule: &Promote, standings: &[Standing]) -> BTreeMap<String, (bool, String)> {
    let mut out = BTreeMap::new();
    match rule {
        Promote::All => {
            for s in standings {
                out.insert(s.variant.clone(), (true, "every variant enters".into()));
            }
        }
        Promote::Pass | Promote::PassOrInvestigate => {
            let lenient = *rule == Promote::PassOrInvestigate;
            for s in standings {
                let ok = match s.verdict {
                    GroupVerdict::Pass => true,
                    GroupVerdict::Fail | GroupVerdict::Incomplete { .. } => false,
                    GroupVerdict::Flaky { .. } | GroupVerdict::Investigate => lenient,
                };
                let why = if ok {
                    format!("{} meets `{}`", s.verdict, rule_name(rule))
                } else {
                    format!("{} does not meet `{}`", s.verdict, rule_name(rule))
                };
                out.insert(s.variant.clone(), (ok, why));
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
                        GroupVerdict::Fail | GroupVerdict::Incomplete { .. }
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
                c.then_with(|| a.variant.cmp(&b.variant))
            });
            for s in standings {
                let rank = ranked.iter().position(|r| r.variant == s.variant);
                let (ok, why) = match (s.verdict, rank) {
                    (GroupVerdict::Fail, _) => (false, "FAIL never advances".to_string()),
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
                out.insert(s.variant.clone(), (ok, why));
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
            variant: v.into(),
            verdict,
            score,
        }
    }

    #[test]
    fn rules_pick_the_right_variants() {
        let s = [
            st("a", GroupVerdict::Pass, Some(1.0)),
            st("b", GroupVerdict::Investigate, Some(3.0)),
            st("c", GroupVerdict::Fail, Some(9.0)),
            st("d", GroupVerdict::Pass, Some(2.0)),
        ];
        let up = |r: &Promote| -> Vec<String> {
            promote(r, &s)
                .into_iter()
                .filter(|(_, (ok, _))| *ok)
                .map(|(k, _)| k)
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
