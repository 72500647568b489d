//! Comparing variant groups by how well they learn, over their seeds, with the uncertainty
//! stated: rliable's method (Agarwal et al., NeurIPS 2021, "Deep RL at the Edge of the Statistical
//! Precipice"). Each completed seed's score is its final eval return (the mean of its last
//! evaluations, [`super::learning`]); a group gets the mean and the interquartile mean of its
//! seeds with stratified bootstrap 95% intervals ([`super::stats`]), and the probability that it
//! improves on a reference group.
//!
//! What a handful of seeds can show: with 3 seeds, a 95% bootstrap interval is simply the range
//! of the seeds, and the IQM equals the mean (nothing is trimmed below 4 values). Two groups whose
//! intervals overlap are reported "not distinguishable" — which at 3 seeds is most pairs short of
//! a large, consistent gap; it is not evidence that they are equal. Separated intervals at 3 seeds
//! mean every seed of one beat every seed of the other.

use super::learning::{assess_learning, LearningRule};
use super::stats::{variant_stats, Bootstrap, Estimate, VariantStats};
use super::{GroupResult, RunResult};
use crate::results::Outcome;

/// The metric the comparison reads: the deterministic evaluation's mean return.
pub const SCORE_METRIC: &str = "eval_return";

/// One group's learning over its seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupLearning {
    /// Each completed seed's untrained baseline (its first evaluation).
    pub untrained: Vec<f64>,
    /// Each completed seed's final eval return (mean of its last evaluations).
    pub finals: Vec<f64>,
    /// Seeds that learn by the learning rule's margin, of `finals.len()`.
    pub learning_seeds: usize,
    /// Mean and IQM of `finals` with bootstrap intervals; `None` without any.
    pub stats: Option<VariantStats>,
    /// P(this group's final return > the reference group's), with its interval; `None` for the
    /// reference itself or without scores.
    pub improvement: Option<Estimate>,
}

/// Every group's learning, the reference group and the best learner.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// In the order of the groups given.
    pub groups: Vec<GroupLearning>,
    /// The group the probability of improvement is taken against: the variant named `baseline`
    /// with nothing swept, else the first group (in report order) that has scores.
    pub reference: Option<usize>,
    /// The group with the highest IQM of final returns.
    pub best: Option<usize>,
}

impl Comparison {
    /// Whether any group has learning scores at all (evaluation was on and runs were long
    /// enough to evaluate after the baseline).
    pub fn measured(&self) -> bool {
        self.groups.iter().any(|g| g.stats.is_some())
    }

    /// Whether group `i`'s IQM interval overlaps the best group's: then the two are "not
    /// distinguishable" by these seeds. `None` when either has no scores.
    pub fn tied_with_best(&self, i: usize) -> Option<bool> {
        self.tied(i, self.best?)
    }

    /// Whether groups `i` and `j` cannot be told apart by these seeds: their IQM intervals
    /// overlap. `None` when either has no scores.
    pub fn tied(&self, i: usize, j: usize) -> Option<bool> {
        let (a, b) = (
            self.groups[i].stats.as_ref()?,
            self.groups[j].stats.as_ref()?,
        );
        Some(a.iqm.ci.overlaps(&b.iqm.ci))
    }
}

/// One completed run's (untrained, final, learns) by the default learning rule.
fn run_score(r: &RunResult) -> Option<(f64, f64, bool)> {
    if r.unfinished.is_some() || r.record.as_ref()?.outcome != Outcome::Completed {
        return None;
    }
    let evals: Vec<(u64, Option<f64>)> = r
        .rows
        .iter()
        .map(|row| (row.env_step, row.get(SCORE_METRIC)))
        .collect();
    let l = assess_learning(&evals, &LearningRule::default())?;
    Some((l.baseline, l.final_return, l.learns))
}

/// Compares the groups' learning (see the module docs). Deterministic: the bootstrap is seeded.
pub fn compare(groups: &[GroupResult], runs: &[RunResult]) -> Comparison {
    let boot = Bootstrap::default();
    let mut out: Vec<GroupLearning> = groups
        .iter()
        .map(|g| {
            let scores: Vec<(f64, f64, bool)> =
                g.runs.iter().filter_map(|i| run_score(&runs[*i])).collect();
            let finals: Vec<f64> = scores.iter().map(|s| s.1).collect();
            GroupLearning {
                untrained: scores.iter().map(|s| s.0).collect(),
                learning_seeds: scores.iter().filter(|s| s.2).count(),
                stats: variant_stats(&[finals.as_slice()], &boot),
                finals,
                improvement: None,
            }
        })
        .collect();
    let scored = |i: &usize| out[*i].stats.is_some();
    let reference = (0..groups.len())
        .filter(scored)
        .find(|i| groups[*i].variant == "baseline" && groups[*i].swept.is_empty())
        .or_else(|| (0..groups.len()).find(scored));
    let best = (0..groups.len()).filter(scored).max_by(|a, b| {
        let iqm = |i: usize| {
            out[i]
                .stats
                .as_ref()
                .map_or(f64::NEG_INFINITY, |s| s.iqm.point)
        };
        iqm(*a).total_cmp(&iqm(*b)).then(b.cmp(a))
    });
    if let Some(r) = reference {
        let reference_finals = out[r].finals.clone();
        for (i, g) in out.iter_mut().enumerate() {
            if i != r && !g.finals.is_empty() {
                g.improvement =
                    boot.improvement(&[g.finals.as_slice()], &[reference_finals.as_slice()]);
            }
        }
    }
    Comparison {
        groups: out,
        reference,
        best,
    }
}
