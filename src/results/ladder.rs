//! `ladder.json`: a validation ladder's state.
//!
//! A ladder runs its stages in order. After a stage, each variant group (the runs that differ only
//! by seed, [`GroupId`]) gets a verdict, and the next stage's rule picks the groups that climb. The
//! state records every finished stage, so a finished stage is not rerun. Verdicts and outcomes are
//! typed; groups are keyed by their identity, never by the label a report shows. Files written
//! before groups had an identity (keyed by label) are still read: each label is matched to its
//! group through the plan.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Outcome, ResultsDir};

/// A variant group's identity: the variant and its swept values (dotted key → value). The seed
/// is not among the swept values (seeds are a list of their own), so a group's runs differ only
/// by seed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupId {
    /// The variant's name.
    pub variant: String,
    /// The swept keys and their values, as written in the sweep.
    pub swept: BTreeMap<String, String>,
}

impl GroupId {
    /// The group of a run of `variant` with `swept` values.
    pub fn new(variant: &str, swept: &BTreeMap<String, String>) -> GroupId {
        GroupId {
            variant: variant.to_string(),
            swept: swept.clone(),
        }
    }

    /// A group as an older `ladder.json` named it (its label), when nothing better is known:
    /// the swept keys are then their last segments.
    fn from_label(label: &str) -> GroupId {
        let parsed = label
            .strip_suffix(')')
            .and_then(|l| l.split_once(" ("))
            .map(|(variant, kv)| {
                let swept = kv
                    .split(", ")
                    .filter_map(|p| p.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                GroupId {
                    variant: variant.to_string(),
                    swept,
                }
            });
        parsed.unwrap_or_else(|| GroupId {
            variant: label.to_string(),
            swept: BTreeMap::new(),
        })
    }
}

/// The group's label in reports and logs: "lr-grid (actor_cnn_lr=1e-4)", the variant and the
/// last segment of each swept key, or just the variant when nothing is swept.
impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.variant)?;
        if self.swept.is_empty() {
            return Ok(());
        }
        let kv: Vec<String> = self
            .swept
            .iter()
            .map(|(k, v)| format!("{}={v}", k.rsplit('.').next().unwrap_or(k)))
            .collect();
        write!(f, " ({})", kv.join(", "))
    }
}

/// A run's verdict at a stage, as `ladder.json` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum StoredVerdict {
    Pass,
    Investigate,
    Fail,
}

/// A group's verdict at a stage, as `ladder.json` stores it: its words (`PASS`,
/// `FLAKY (1/2 seeds pass)`, ...), which are the judge's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredGroupVerdict {
    Pass,
    Flaky { passed: usize, total: usize },
    Investigate,
    Fail { failed: usize, total: usize },
    Incomplete { finished: usize, total: usize },
}

impl fmt::Display for StoredGroupVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoredGroupVerdict::Pass => f.write_str("PASS"),
            StoredGroupVerdict::Flaky { passed, total } => {
                write!(f, "FLAKY ({passed}/{total} seeds pass)")
            }
            StoredGroupVerdict::Investigate => f.write_str("INVESTIGATE"),
            StoredGroupVerdict::Fail { failed: 0, .. } => f.write_str("FAIL"),
            StoredGroupVerdict::Fail { failed, total } => {
                write!(f, "FAIL ({failed}/{total} seeds fail)")
            }
            StoredGroupVerdict::Incomplete { finished, total } => {
                write!(f, "INCOMPLETE ({finished}/{total} seeds finished)")
            }
        }
    }
}

impl std::str::FromStr for StoredGroupVerdict {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let counts = |rest: &str, tail: &str| -> Option<(usize, usize)> {
            let (a, b) = rest
                .strip_prefix('(')?
                .strip_suffix(tail)?
                .split_once('/')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        };
        let bad = || format!("`{s}` is not a group verdict");
        Ok(match s {
            "PASS" => StoredGroupVerdict::Pass,
            "INVESTIGATE" => StoredGroupVerdict::Investigate,
            "FAIL" => StoredGroupVerdict::Fail {
                failed: 0,
                total: 0,
            },
            _ => match s.split_once(' ') {
                Some(("FLAKY", rest)) => {
                    let (passed, total) = counts(rest, " seeds pass)").ok_or_else(bad)?;
                    StoredGroupVerdict::Flaky { passed, total }
                }
                Some(("FAIL", rest)) => {
                    let (failed, total) = counts(rest, " seeds fail)").ok_or_else(bad)?;
                    StoredGroupVerdict::Fail { failed, total }
                }
                Some(("INCOMPLETE", rest)) => {
                    let (finished, total) = counts(rest, " seeds finished)").ok_or_else(bad)?;
                    StoredGroupVerdict::Incomplete { finished, total }
                }
                _ => return Err(bad()),
            },
        })
    }
}

impl Serialize for StoredGroupVerdict {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StoredGroupVerdict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The whole ladder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LadderState {
    /// One entry per stage of the spec, in order.
    pub stages: Vec<StageState>,
    /// Groups that passed the last stage when it has `approve: true`.
    pub approved: Vec<GroupId>,
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
    /// The groups that entered the stage.
    pub entered: Vec<GroupId>,
    /// Each run's result at the end of the stage.
    pub runs: Vec<RunAtStage>,
    /// Each entered group's verdict and whether it climbed to the next stage.
    #[serde(rename = "variants")]
    pub groups: Vec<GroupAtStage>,
}

/// One run at the end of a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunAtStage {
    /// The run id.
    pub run_id: String,
    /// Its group.
    #[serde(flatten)]
    pub group: GroupId,
    /// Its seed.
    pub seed: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Its verdict.
    pub verdict: StoredVerdict,
    /// Env steps done at the stage's end (where the stage ended in `metrics.csv`).
    pub env_step: u64,
    /// Gradient updates done at the stage's end.
    pub train_step: u64,
    /// The run's reason (crash, stop) or its worst findings' evidence.
    pub evidence: Vec<String>,
}

/// One variant group at the end of a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupAtStage {
    /// The group.
    #[serde(flatten)]
    pub group: GroupId,
    /// Its group verdict.
    pub verdict: StoredGroupVerdict,
    /// The ranking value for a `best` rule (mean over seeds), when one applies.
    pub score: Option<f64>,
    /// It entered the next stage.
    pub promoted: bool,
    /// Why it did or did not climb.
    pub why: String,
}

/// A stage as the spec plans it: name, total env steps at its end, its entry rule in words.
#[derive(Debug, Clone, PartialEq)]
pub struct StagePlan {
    pub name: String,
    pub steps: u64,
    pub promote: String,
}

impl LadderState {
    /// A fresh state for `stages`; `approve`: the last stage approves.
    pub fn new(stages: &[StagePlan], approve: bool) -> LadderState {
        LadderState {
            stages: stages
                .iter()
                .map(|s| StageState {
                    name: s.name.clone(),
                    steps: s.steps,
                    promote: s.promote.clone(),
                    ..Default::default()
                })
                .collect(),
            approved: Vec::new(),
            approve,
        }
    }

    /// Reads the folder's `ladder.json`; `None` if absent or unreadable.
    pub fn read(results: &ResultsDir) -> Option<LadderState> {
        let text = std::fs::read_to_string(results.ladder_json()).ok()?;
        let mut value: serde_json::Value = serde_json::from_str(&text).ok()?;
        if is_keyed_by_label(&value) {
            rekey_by_group(&mut value, results);
        }
        serde_json::from_value(value).ok()
    }

    /// Writes the folder's `ladder.json` atomically.
    pub fn write(&self, results: &ResultsDir) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        super::write_atomic(&results.ladder_json(), text.as_bytes())
    }

    /// Whether this saved state belongs to the same stage list (names and steps), so its
    /// finished stages can be reused.
    pub fn matches(&self, stages: &[StagePlan]) -> bool {
        self.stages.len() == stages.len()
            && self
                .stages
                .iter()
                .zip(stages)
                .all(|(a, b)| a.name == b.name && a.steps == b.steps)
    }
}

/// Whether `ladder.json` names its groups by label (written before groups had an identity).
fn is_keyed_by_label(v: &serde_json::Value) -> bool {
    let labels = |list: &serde_json::Value| {
        list.as_array()
            .is_some_and(|a| a.iter().any(|x| x.is_string()))
    };
    let without_swept = |list: &serde_json::Value| {
        list.as_array()
            .is_some_and(|a| a.iter().any(|x| x.get("swept").is_none()))
    };
    labels(&v["approved"])
        || v["stages"].as_array().is_some_and(|stages| {
            stages.iter().any(|s| {
                labels(&s["entered"]) || without_swept(&s["runs"]) || without_swept(&s["variants"])
            })
        })
}

/// Replaces every label in an older `ladder.json` by its group: the plan's group of that label
/// (a run's own planned group first), else the label read back as well as it can be.
fn rekey_by_group(v: &mut serde_json::Value, results: &ResultsDir) {
    let planned = super::plan::read_planned(results).unwrap_or_default();
    let mut by_label: BTreeMap<String, GroupId> = BTreeMap::new();
    for p in planned.values() {
        let g = GroupId::new(&p.variant, &p.swept);
        by_label.insert(g.to_string(), g);
    }
    let group = |label: &str| {
        by_label
            .get(label)
            .cloned()
            .unwrap_or_else(|| GroupId::from_label(label))
    };
    let id_of = |g: GroupId| serde_json::to_value(g).unwrap_or_default();
    let rekey_list = |list: &mut serde_json::Value| {
        if let Some(a) = list.as_array_mut() {
            for x in a.iter_mut().filter(|x| x.is_string()) {
                *x = id_of(group(x.as_str().unwrap_or_default()));
            }
        }
    };
    // An entry `{ "variant": label, ... }` gets the group's variant and swept values.
    let rekey_entry = |x: &mut serde_json::Value, g: GroupId| {
        if let Some(o) = x.as_object_mut() {
            o.insert("variant".into(), g.variant.into());
            o.insert(
                "swept".into(),
                serde_json::to_value(&g.swept).unwrap_or_default(),
            );
        }
    };
    rekey_list(&mut v["approved"]);
    let Some(stages) = v["stages"].as_array_mut() else {
        return;
    };
    for s in stages {
        rekey_list(&mut s["entered"]);
        if let Some(runs) = s["runs"].as_array_mut() {
            for r in runs.iter_mut().filter(|r| r.get("swept").is_none()) {
                let own = r["run_id"]
                    .as_str()
                    .and_then(|id| planned.get(id))
                    .map(|p| GroupId::new(&p.variant, &p.swept));
                let g = own.unwrap_or_else(|| group(r["variant"].as_str().unwrap_or_default()));
                rekey_entry(r, g);
            }
        }
        if let Some(groups) = s["variants"].as_array_mut() {
            for x in groups.iter_mut().filter(|x| x.get("swept").is_none()) {
                let g = group(x["variant"].as_str().unwrap_or_default());
                rekey_entry(x, g);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(variant: &str, swept: &[(&str, &str)]) -> GroupId {
        GroupId {
            variant: variant.into(),
            swept: swept
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn labels_use_the_last_segment_of_each_key() {
        assert_eq!(id("baseline", &[]).to_string(), "baseline");
        assert_eq!(
            id(
                "lr",
                &[
                    ("networks.cnn.actor_cnn_lr", "1e-4"),
                    ("training.tau", "0.01")
                ]
            )
            .to_string(),
            "lr (actor_cnn_lr=1e-4, tau=0.01)"
        );
    }

    #[test]
    fn group_verdicts_keep_their_words() {
        for v in [
            StoredGroupVerdict::Pass,
            StoredGroupVerdict::Flaky {
                passed: 1,
                total: 2,
            },
            StoredGroupVerdict::Investigate,
            StoredGroupVerdict::Fail {
                failed: 1,
                total: 3,
            },
            StoredGroupVerdict::Fail {
                failed: 0,
                total: 0,
            },
            StoredGroupVerdict::Incomplete {
                finished: 0,
                total: 3,
            },
        ] {
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{v}\""));
            assert_eq!(
                serde_json::from_str::<StoredGroupVerdict>(&json).unwrap(),
                v
            );
        }
        assert!("FLAKY (x/2 seeds pass)"
            .parse::<StoredGroupVerdict>()
            .is_err());
    }

    #[test]
    fn a_state_round_trips_and_an_older_one_is_rekeyed_through_the_plan() {
        let d = tempfile::tempdir().unwrap();
        let res = ResultsDir::new(d.path());
        let g = id("base", &[("debug.nan_at_step", "5")]);
        let stage = |name: &str| StagePlan {
            name: name.into(),
            steps: 60,
            promote: "all variants".into(),
        };
        let mut state = LadderState::new(&[stage("s1")], true);
        state.stages[0].entered = vec![g.clone()];
        state.stages[0].runs = vec![RunAtStage {
            run_id: "r0".into(),
            group: g.clone(),
            seed: 0,
            outcome: Outcome::Diverged,
            verdict: StoredVerdict::Fail,
            env_step: 60,
            train_step: 5,
            evidence: vec!["NaN".into()],
        }];
        state.stages[0].groups = vec![GroupAtStage {
            group: g.clone(),
            // As a file written before group verdicts kept their counts reads back.
            verdict: StoredGroupVerdict::Fail {
                failed: 0,
                total: 0,
            },
            score: None,
            promoted: false,
            why: "last stage".into(),
        }];
        state.write(&res).unwrap();
        assert_eq!(LadderState::read(&res).unwrap(), state);
        assert!(state.matches(&[stage("s1")]) && !state.matches(&[stage("s2")]));

        // The same state as an older version wrote it: groups by label, run verdicts as words.
        let old = serde_json::json!({
            "stages": [{ "name": "s1", "steps": 60, "promote": "all variants", "done": false,
                "entered": ["base (nan_at_step=5)"],
                "runs": [{ "run_id": "r0", "variant": "base (nan_at_step=5)", "seed": 0,
                    "outcome": "diverged", "verdict": "FAIL", "env_step": 60, "train_step": 5,
                    "evidence": ["NaN"] }],
                "variants": [{ "variant": "base (nan_at_step=5)", "verdict": "FAIL",
                    "score": null, "promoted": false, "why": "last stage" }] }],
            "approved": [], "approve": true });
        std::fs::write(res.ladder_json(), old.to_string()).unwrap();
        std::fs::write(
            res.summary_csv(),
            "run_id,variant,seed,debug.nan_at_step,outcome\nr0,base,0,5,diverged\n",
        )
        .unwrap();
        assert_eq!(LadderState::read(&res).unwrap(), state);
        // Without a plan, the label is read back as well as it can be.
        std::fs::remove_file(res.summary_csv()).unwrap();
        let guessed = LadderState::read(&res).unwrap();
        assert_eq!(
            guessed.stages[0].entered,
            vec![id("base", &[("nan_at_step", "5")])]
        );
        assert_eq!(guessed.stages[0].entered[0].to_string(), g.to_string());
    }
}
