//! The recommendation, following the seed's rollback plan: (1) lower the actor CNN learning rate,
//! (2) gradient clipping, (3) Q-value normalisation — from least to most intrusive.

use std::collections::BTreeMap;

use crate::verdict::compare::Comparison;
use crate::verdict::{fmt_num, GroupVerdict, Verdict};
use crate::verdict::{GroupResult, RunResult, Unfinished};

/// The sweep key that turns on gradient clipping of the actor CNN (rollback Option 2).
pub const GRAD_CLIP_KEY: &str = "training.actor_cnn_grad_clip.max_norm";
/// The sweep key that turns on Q normalisation in the actor loss (rollback Option 3).
pub const Q_NORM_KEY: &str = "training.q_normalization";

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// One sentence.
    pub headline: String,
    /// Supporting lines (why, and the YAML to use).
    pub details: Vec<String>,
    /// The chosen group's index, when one passes.
    pub group: Option<usize>,
}

fn enabled(v: &str) -> bool {
    !matches!(
        v.trim(),
        "" | "false" | "null" | "~" | "0" | "0.0" | "none" | "off"
    )
}

/// 0 = only learning-rate changes, 1 = gradient clipping, 2 = Q normalisation (the rollback order),
/// from everything the group's runs were trained with: a variant's `set:` counts, not only the grid.
fn intrusiveness(g: &GroupResult) -> u8 {
    if uses(g, "q_normalization") {
        2
    } else if uses(g, "grad_clip") {
        1
    } else {
        0
    }
}

/// Whether the group's runs were trained with a setting whose key contains `needle` turned on.
fn uses(g: &GroupResult, needle: &str) -> bool {
    g.swept
        .iter()
        .chain(g.overrides.iter().flatten())
        .any(|(k, v)| k.contains(needle) && enabled(v))
}

/// The group's actor CNN learning rate: resolved from run.json, else a swept `*_lr` value.
fn actor_cnn_lr(g: &GroupResult, runs: &[RunResult]) -> Option<f64> {
    // Only when the sweep varied it: an unchanged base value says nothing about the choice.
    let swept = g
        .swept
        .keys()
        .any(|k| k == "networks.cnn.actor_cnn_lr" || k == "networks.cnn.learning_rate");
    if !swept {
        return None;
    }
    let from_record = g.runs.iter().find_map(|i| {
        runs[*i]
            .record
            .as_ref()?
            .learning_rates
            .map(|l| l.actor_cnn.lr)
    });
    from_record.or_else(|| {
        g.swept
            .iter()
            .filter(|(k, _)| k.starts_with("networks.cnn."))
            .find_map(|(_, v)| v.parse::<f64>().ok())
    })
}

/// The settings that set `g` apart: its overrides (grid values and its variant's `set:`) that
/// some other variant group was not trained with, in key order. Overrides every group shares
/// (the sweep's own `set:`) are the sweep's base, not the choice. Results written before run.json
/// recorded overrides fall back to the swept values.
fn distinguishing(g: &GroupResult, groups: &[GroupResult]) -> Vec<(String, String)> {
    let Some(mine) = &g.overrides else {
        return g
            .swept
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    };
    let others: Vec<&BTreeMap<String, String>> = groups
        .iter()
        .filter(|o| !std::ptr::eq(*o, g))
        .filter_map(|o| o.overrides.as_ref())
        .collect();
    mine.iter()
        .filter(|(k, v)| g.swept.contains_key(*k) || others.iter().any(|o| o.get(*k) != Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn lr_text(lr: f64) -> String {
    if lr < 1e-3 {
        format!("{lr:e}")
    } else {
        fmt_num(lr)
    }
}

/// Picks among the groups that pass on every seed (within the quorum) — stable, and learning
/// where the criteria judge learning — the one that learns best: when runs evaluated, the
/// candidates are the best learner (highest IQM of final eval returns) and every group not
/// distinguishable from it ([`Comparison::tied_with_best`]). Among the candidates, the least
/// intrusive wins: first by the rollback order, then the highest actor CNN learning rate, then the
/// fewest swept keys. If nothing passes, says what to try next.
///
/// `finalists`, for a ladder: the variant groups that reached its last stage. Only they can be
/// recommended; a variant that passed an early stage and stopped there is not a candidate.
pub fn recommend(
    groups: &[GroupResult],
    runs: &[RunResult],
    finalists: Option<&[String]>,
    comparison: &Comparison,
) -> Recommendation {
    let sweep = Sweep {
        groups,
        runs,
        finalists,
    };
    let mut passing = sweep.passing_finalists();
    if let Some(f) = finalists.filter(|_| passing.is_empty()) {
        if f.is_empty() {
            return Recommendation {
                headline: "No variant reached the ladder's last stage: nothing to recommend."
                    .into(),
                details: vec![
                    "The Ladder section below says where each variant stopped and why.".into(),
                ],
                group: None,
            };
        }
    }
    let learned = learning_candidates(&mut passing, comparison);
    sweep.rank_least_intrusive_first(&mut passing);
    let unfinished = unfinished_labels(groups);
    if let Some(&best) = passing.first() {
        return sweep.choose(best, &passing, &unfinished, &learned, comparison);
    }
    if !unfinished.is_empty() {
        return sweep.wait_for(&unfinished);
    }
    if let Some(setup) = sweep.setup_failure() {
        return setup;
    }
    sweep.next_rollback_option()
}

/// What [`recommend`] reads: the sweep's groups and runs, and a ladder's finalists.
struct Sweep<'a> {
    groups: &'a [GroupResult],
    runs: &'a [RunResult],
    finalists: Option<&'a [String]>,
}

impl Sweep<'_> {
    /// The groups that pass (on the quorum) and, for a ladder, reached its last stage.
    fn passing_finalists(&self) -> Vec<usize> {
        (0..self.groups.len())
            .filter(|i| self.groups[*i].verdict == GroupVerdict::Pass)
            .filter(|i| {
                self.finalists
                    .is_none_or(|f| f.contains(&self.groups[*i].label()))
            })
            .collect()
    }

    /// Seeds of a group that PASS (a group passes when enough of them do: the quorum).
    fn passed(&self, g: &GroupResult) -> usize {
        g.runs
            .iter()
            .filter(|i| {
                self.runs[**i].unfinished.is_none()
                    && self.runs[**i].verdict.verdict == Verdict::Pass
            })
            .count()
    }

    /// Whether some run is still in progress (the sweep is live), rather than interrupted.
    fn running(&self) -> bool {
        self.runs
            .iter()
            .any(|r| r.unfinished == Some(Unfinished::Running))
    }

    /// Sorts `passing` best first: passing on every seed, then the rollback order, then the highest
    /// actor CNN learning rate, then the fewest swept keys, then the label.
    fn rank_least_intrusive_first(&self, passing: &mut [usize]) {
        let runs = self.runs;
        passing.sort_by(|a, b| {
            let (ga, gb) = (&self.groups[*a], &self.groups[*b]);
            // Passing on every seed beats passing on the quorum only.
            let all_a = self.passed(ga) == ga.runs.len();
            let all_b = self.passed(gb) == gb.runs.len();
            all_b
                .cmp(&all_a)
                .then_with(|| intrusiveness(ga).cmp(&intrusiveness(gb)))
                .then_with(|| {
                    let (la, lb) = (actor_cnn_lr(ga, runs), actor_cnn_lr(gb, runs));
                    lb.unwrap_or(0.0).total_cmp(&la.unwrap_or(0.0))
                })
                .then_with(|| ga.swept.len().cmp(&gb.swept.len()))
                .then_with(|| ga.label().cmp(&gb.label()))
        });
    }

    /// Recommends group `best`, the first of the ranked `passing`: why it was chosen, how it
    /// learns, its settings, and (first) the seeds that did not pass when only the quorum does.
    fn choose(
        &self,
        best: usize,
        passing: &[usize],
        unfinished: &[String],
        learned: &[usize],
        comparison: &Comparison,
    ) -> Recommendation {
        let g = &self.groups[best];
        let mut details = Vec::new();
        if !unfinished.is_empty() {
            details.push(format!(
                "Not finished yet, so not compared: {}. {}; the choice may change.",
                unfinished.join(", "),
                if self.running() {
                    "The sweep is still running them"
                } else {
                    "Run the same sweep again to finish them"
                }
            ));
        }
        details.push(self.why_chosen(g, passing));
        details.push(learning_detail(best, learned, self.groups, comparison));
        details.extend(self.rejected(best));
        if self.finalists.is_some() {
            details.push(format!(
                "Among the {} variant(s) that reached the ladder's last stage; variants that stopped earlier are not candidates (see the Ladder section).",
                self.finalists.map_or(0, |f| f.len())
            ));
        }
        let settings = distinguishing(g, self.groups);
        if !settings.is_empty() {
            let yaml: Vec<String> = settings.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            details.push(format!("Settings: `{}`", yaml.join("`, `")));
        }
        let (ok, seeds) = (self.passed(g), g.runs.len());
        if ok < seeds {
            details.insert(
                0,
                format!(
                    "Only the quorum passes: {}. Read their evidence before adopting this.",
                    self.not_passing_seeds(g).join("; ")
                ),
            );
        }
        Recommendation {
            headline: format!("Use **{}**: it passes on {ok} of {seeds} seeds.", g.label()),
            details,
            group: Some(best),
        }
    }

    /// Why the chosen group `g` beat the other `passing` ones, in the rollback plan's terms.
    fn why_chosen(&self, g: &GroupResult, passing: &[usize]) -> String {
        let quorum_only = passing
            .iter()
            .filter(|i| self.passed(&self.groups[**i]) < self.groups[**i].runs.len())
            .count();
        match (intrusiveness(g), actor_cnn_lr(g, self.runs)) {
            (0, Some(lr)) if quorum_only > 0 && self.passed(g) == g.runs.len() => format!(
                "It is the highest actor CNN learning rate that passes on every seed ({}); {quorum_only} other variant(s) pass only by the quorum, with some seeds not passing; rollback Option 1 (learning rate only) is the least intrusive change.",
                lr_text(lr),
            ),
            (0, Some(lr)) if passing.len() > 1 => format!(
                "It is the highest actor CNN learning rate that passes ({}), among {} passing variants; rollback Option 1 (learning rate only) is the least intrusive change.",
                lr_text(lr),
                passing.len()
            ),
            (0, Some(lr)) => format!(
                "It is the only passing variant (actor CNN learning rate {}); rollback Option 1 (learning rate only) is the least intrusive change.",
                lr_text(lr)
            ),
            (0, None) => "The sweep turns on neither gradient clipping nor Q normalisation for it (rollback Options 2 and 3): the least intrusive option.".into(),
            (1, _) => "No learning-rate-only variant passes; this one uses gradient clipping (rollback Option 2).".into(),
            _ => "No learning-rate or clipping variant passes; this one uses Q normalisation (rollback Option 3).".into(),
        }
    }

    /// Why every other finished group that did not pass was not chosen: one line each, with its
    /// seeds' verdicts and the rules they broke (the criteria tables below hold the evidence).
    fn rejected(&self, chosen: usize) -> Vec<String> {
        self.groups
            .iter()
            .enumerate()
            .filter(|(i, g)| {
                *i != chosen
                    && !matches!(
                        g.verdict,
                        GroupVerdict::Pass | GroupVerdict::Incomplete { .. }
                    )
            })
            .map(|(_, g)| {
                format!(
                    "Not chosen: {} ({}): {}.",
                    g.label(),
                    g.verdict,
                    self.not_passing_seeds(g).join("; ")
                )
            })
            .collect()
    }

    /// The seeds of `g` that did not pass, each with its verdict and the rules it broke.
    fn not_passing_seeds(&self, g: &GroupResult) -> Vec<String> {
        g.runs
            .iter()
            .map(|i| &self.runs[*i])
            .filter(|r| r.verdict.verdict != Verdict::Pass)
            .map(|r| {
                // Which rules, not their values: the criteria tables hold the evidence,
                // and the verdicts-only template shows no measured number.
                let seed = r.seed().map_or("?".to_string(), |s| s.to_string());
                let mut rules: Vec<&str> = r
                    .verdict
                    .problems()
                    .iter()
                    .map(|f| f.rule.as_str())
                    .collect();
                rules.dedup();
                format!("seed {seed} {} ({})", r.verdict.verdict, rules.join(", "))
            })
            .collect()
    }

    /// Nothing passes yet and some seeds have not finished: wait for them, or resume.
    fn wait_for(&self, unfinished: &[String]) -> Recommendation {
        Recommendation {
            headline: if self.running() {
                "The sweep is still running: no variant passes yet. This report is a snapshot; the sweep writes the final one when it ends.".into()
            } else {
                "The sweep is not finished: no variant passes yet, and some have seeds that did not run. Run the same command again to resume.".into()
            },
            details: vec![format!("Not finished: {}.", unfinished.join(", "))],
            group: None,
        }
    }

    /// Nothing trained at all: the set-up is broken (an env id, a missing dependency), and no
    /// training fix can be read from these runs.
    fn setup_failure(&self) -> Option<Recommendation> {
        let setup_crash = |r: &RunResult| {
            r.record.as_ref().is_some_and(|rec| {
                rec.outcome == crate::results::Outcome::Crashed && rec.train_steps_done == 0
            })
        };
        if self.runs.is_empty() || !self.runs.iter().all(setup_crash) {
            return None;
        }
        let reason = self
            .runs
            .iter()
            .find_map(|r| r.record.as_ref()?.reason.clone())
            .unwrap_or_default();
        let first_line = reason.lines().next().unwrap_or("").to_string();
        Some(Recommendation {
            headline: "Every run crashed before its first training step: this is a set-up problem, not a training one. Fix it, then run the sweep again.".into(),
            details: vec![format!("First run's reason: {first_line}")],
            group: None,
        })
    }

    /// Nothing passes: the next rollback option not yet tried, after what the failures say
    /// (stable but not learning, flaky).
    fn next_rollback_option(&self) -> Recommendation {
        // Each option by itself: a sweep that tried only Q normalisation has not tried clipping.
        let tried = |needle: &str| self.groups.iter().any(|g| uses(g, needle));
        let mut details = Vec::new();
        let not_learning: Vec<String> = self
            .groups
            .iter()
            .filter(|g| only_learning_fails(g, self.runs))
            .map(|g| g.label())
            .collect();
        if !not_learning.is_empty() {
            details.push(format!(
                "Stable but not learning on some seed: {}. A stable variant that does not learn is not a fix: try a learning rate between it and the next higher one that was unstable, or longer runs if its evaluations were still rising.",
                not_learning.join(", ")
            ));
        }
        let flaky: Vec<String> = self
            .groups
            .iter()
            .filter_map(|g| match g.verdict {
                GroupVerdict::Flaky { passed, total } => {
                    Some(format!("{} ({passed}/{total})", g.label()))
                }
                _ => None,
            })
            .collect();
        if !flaky.is_empty() {
            details.push(format!(
                "Flaky variants (not enough seeds pass): {}.",
                flaky.join(", ")
            ));
        }
        let headline = if !tried("grad_clip") {
            details.push(format!(
                "Add a variant with `{GRAD_CLIP_KEY}: 1.0` (the seed's Solution B: clip the actor CNN gradients after `actor_loss.backward()`)."
            ));
            "No variant passes on every seed: try gradient clipping next (rollback Option 2)."
                .to_string()
        } else if !tried("q_normalization") {
            details.push(format!(
                "Add a variant with `{Q_NORM_KEY}: true` (the seed's Solution C: normalise Q before the actor loss)."
            ));
            "No variant passes on every seed, gradient clipping included: try Q normalisation next (rollback Option 3).".to_string()
        } else {
            details.push("Learning rate, gradient clipping and Q normalisation were all tried; look at the evidence of the least-failing variant.".into());
            "No variant passes on every seed, and the rollback plan is exhausted.".to_string()
        };
        Recommendation {
            headline,
            details,
            group: None,
        }
    }
}

/// The groups with seeds not finished, each with how many did.
fn unfinished_labels(groups: &[GroupResult]) -> Vec<String> {
    groups
        .iter()
        .filter_map(|g| match g.verdict {
            GroupVerdict::Incomplete { finished, total } => {
                Some(format!("{} ({finished}/{total} seeds finished)", g.label()))
            }
            _ => None,
        })
        .collect()
}

/// The name of the default criteria's learning rule.
const LEARNING_RULE: &str = "learning";

/// Whether a group's only problems on every non-passing seed are the learning rule's: stable, not
/// learning.
fn only_learning_fails(g: &GroupResult, runs: &[RunResult]) -> bool {
    let mut any = false;
    for i in &g.runs {
        let problems = runs[*i].verdict.problems();
        if problems.is_empty() {
            continue;
        }
        if !problems.iter().all(|f| f.rule == LEARNING_RULE) {
            return false;
        }
        any = true;
    }
    any
}

/// Narrows `passing` to the best learner among them and the groups not distinguishable from it,
/// when they have learning scores; returns the groups it compared (empty when it did not).
fn learning_candidates(passing: &mut Vec<usize>, c: &Comparison) -> Vec<usize> {
    let scored: Vec<usize> = passing
        .iter()
        .copied()
        .filter(|i| c.groups[*i].stats.is_some())
        .collect();
    let iqm = |i: usize| {
        c.groups[i]
            .stats
            .as_ref()
            .map_or(f64::NEG_INFINITY, |s| s.iqm.point)
    };
    let Some(best) = scored
        .iter()
        .copied()
        .max_by(|a, b| iqm(*a).total_cmp(&iqm(*b)))
    else {
        return Vec::new();
    };
    passing.retain(|i| c.tied(*i, best) == Some(true));
    scored
}

/// The recommendation's learning line: how the chosen group learned, and which others it could
/// not be told apart from.
fn learning_detail(
    chosen: usize,
    compared: &[usize],
    groups: &[GroupResult],
    c: &Comparison,
) -> String {
    let l = &c.groups[chosen];
    let Some(s) = &l.stats else {
        return "Learning was not measured (evaluation off, or no evaluation after the untrained one): this rests on stability alone.".into();
    };
    let untrained = l.untrained.iter().sum::<f64>() / l.untrained.len().max(1) as f64;
    let (seeds, learning) = (l.finals.len(), l.learning_seeds);
    let returns = format!(
        "final eval return {} (mean over {seeds} seeds, 95% interval [{}, {}]) against {} untrained",
        fmt_num(s.mean.point),
        fmt_num(s.mean.ci.lo),
        fmt_num(s.mean.ci.hi),
        fmt_num(untrained)
    );
    let mut line = if learning == seeds {
        format!("It learns: {returns}.")
    } else {
        // It passed because the learning rule did not judge these runs (too short for its
        // window, or no learning rule): say what the evaluations show instead of claiming it.
        format!(
            "Learning is not shown: {learning} of {seeds} seeds beat their untrained return by the learning margin ({returns}); the criteria did not judge learning here (runs shorter than the learning rule's window?), so this choice rests on stability alone."
        )
    };
    let tied: Vec<String> = compared
        .iter()
        .filter(|i| **i != chosen)
        .filter(|i| c.tied(**i, chosen) == Some(true))
        .map(|i| groups[*i].label())
        .collect();
    if !tied.is_empty() {
        line.push_str(&format!(
            " Not distinguishable by these seeds from {} (the IQM intervals overlap), so the least intrusive is chosen.",
            tied.join(", ")
        ));
    }
    line
}
