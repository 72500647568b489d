//! Comparing variants over seeds with uncertainty, by rliable's method (Agarwal et al., NeurIPS 2021,
//! "Deep RL at the Edge of the Statistical Precipice"): the mean and the interquartile mean (IQM)
//! of the runs' scores, stratified bootstrap confidence intervals, and the probability of
//! improvement of one variant over another.
//!
//! Scores are given per task: `tasks[m][n]` is run (seed) `n`'s score on task `m`, as rliable's
//! `num_runs x num_tasks` matrix transposed. A sweep has one task, so `tasks` is usually `[seeds]`.
//! Tasks may have different run counts.
//!
//! # What three seeds can and cannot show
//! With 3 runs the bootstrap has only 10 distinct resamples, and a resample of three copies of the
//! lowest (highest) run has probability 1/27 = 3.7%, more than the 2.5% tail of a 95% interval.
//! So the 95% interval of the mean (and of the IQM, which trims nothing below 4 runs) is the range
//! of the runs (of 2,000 resamples about 74 repeat the lowest run, where 50 put it at the 2.5th
//! percentile): it shows the spread of the seeds, not a calibrated 95% coverage (the
//! percentile bootstrap undercovers at small n). Two variants whose seed ranges overlap are "not
//! distinguishable"; disjoint ranges over 3 seeds each are a real but weak difference: all 9 pairs
//! agree, so the probability of improvement is 1 and so is every resample of it ([1, 1]), since
//! the bootstrap cannot express a doubt the seeds themselves do not show.
//!
//! Everything here is deterministic: the bootstrap draws from a ChaCha RNG seeded by
//! [`Bootstrap::seed`], so a report recomputed from the same scores prints the same intervals.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// rliable's IQM is `scipy.stats.trim_mean(scores, 0.25)`: a quarter cut from each end.
pub const IQM_TRIM: f64 = 0.25;
/// Bootstrap resamples by default: rliable's performance profiles use 2,000 (its interval
/// estimates 50,000); with a handful of seeds the percentiles settle long before either.
pub const DEFAULT_RESAMPLES: usize = 2000;
/// Coverage of the intervals by default.
pub const DEFAULT_CONFIDENCE: f64 = 0.95;

/// The arithmetic mean; `None` for no values or any non-finite one (a NaN score has no place in
/// an average; the caller decides whether to drop the run or report it).
pub fn mean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() || xs.iter().any(|x| !x.is_finite()) {
        return None;
    }
    Some(xs.iter().sum::<f64>() / xs.len() as f64)
}

/// `scipy.stats.trim_mean(xs, proportion_to_cut)`: sorts, cuts `floor(n × proportion_to_cut)`
/// whole values from each end and averages the rest. Like scipy it cuts *less* when the count is
/// fractional rather than weighting the boundary values (5 values at 0.25 cut 1 from each end,
/// not 1.25). `None` for no values, a non-finite one, or a proportion outside `[0, 0.5)`.
pub fn trim_mean(xs: &[f64], proportion_to_cut: f64) -> Option<f64> {
    if !(0.0..0.5).contains(&proportion_to_cut) || xs.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let cut = (v.len() as f64 * proportion_to_cut).floor() as usize;
    mean(&v[cut..v.len() - cut])
}

/// The interquartile mean: [`trim_mean`] at [`IQM_TRIM`]. Below 4 values it trims nothing and
/// equals the mean.
pub fn iqm(xs: &[f64]) -> Option<f64> {
    trim_mean(xs, IQM_TRIM)
}

/// rliable's `aggregate_mean`: the mean over tasks of each task's mean over runs. `None` when
/// there is no task, a task has no runs, or a score is non-finite.
pub fn aggregate_mean<S: AsRef<[f64]>>(tasks: &[S]) -> Option<f64> {
    let per_task: Option<Vec<f64>> = tasks.iter().map(|t| mean(t.as_ref())).collect();
    mean(&per_task?)
}

/// rliable's `aggregate_iqm`: the IQM of all runs' scores on all tasks pooled.
pub fn aggregate_iqm<S: AsRef<[f64]>>(tasks: &[S]) -> Option<f64> {
    if tasks.iter().any(|t| t.as_ref().is_empty()) {
        return None;
    }
    let pooled: Vec<f64> = tasks.iter().flat_map(|t| t.as_ref()).copied().collect();
    iqm(&pooled)
}

/// rliable's probability of improvement of `x` over `y`: per task, the Mann–Whitney
/// `P(X > Y) + ½ P(X = Y)` over every pair of an `x` run and a `y` run; then the mean over tasks.
/// 0.5 means no difference, 1 that every `x` run beats every `y` run. `None` unless both have the
/// same (non-zero) number of tasks, every task has runs, and every score is finite.
pub fn probability_of_improvement<S: AsRef<[f64]>>(x: &[S], y: &[S]) -> Option<f64> {
    if x.len() != y.len() {
        return None;
    }
    let per_task: Option<Vec<f64>> = x
        .iter()
        .zip(y)
        .map(|(xt, yt)| pairwise_improvement(xt.as_ref(), yt.as_ref()))
        .collect();
    mean(&per_task?)
}

fn pairwise_improvement(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.is_empty() || y.is_empty() || x.iter().chain(y).any(|v| !v.is_finite()) {
        return None;
    }
    let wins: f64 = x
        .iter()
        .flat_map(|a| y.iter().map(move |b| (a, b)))
        .map(|(a, b)| match a.total_cmp(b) {
            std::cmp::Ordering::Greater => 1.0,
            std::cmp::Ordering::Equal => 0.5,
            std::cmp::Ordering::Less => 0.0,
        })
        .sum();
    Some(wins / (x.len() * y.len()) as f64)
}

/// A closed interval `[lo, hi]`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    /// Whether the two intervals share at least one point (touching ends count).
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }
}

/// A point estimate with its bootstrap confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// The statistic on the scores as given.
    pub point: f64,
    /// The percentile bootstrap interval at [`Bootstrap::confidence`].
    pub ci: Interval,
}

/// Settings of the stratified percentile bootstrap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bootstrap {
    /// Number of resamples.
    pub resamples: usize,
    /// Coverage of the interval, in (0, 1): 0.95 takes the 2.5th and 97.5th percentiles.
    pub confidence: f64,
    /// Seed of the ChaCha RNG: the same seed and scores give the same interval.
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap {
            resamples: DEFAULT_RESAMPLES,
            confidence: DEFAULT_CONFIDENCE,
            seed: 0,
        }
    }
}

impl Bootstrap {
    /// The mean ([`aggregate_mean`]) with its interval.
    pub fn mean<S: AsRef<[f64]>>(&self, tasks: &[S]) -> Option<Estimate> {
        self.interval(tasks, aggregate_mean::<Vec<f64>>)
    }

    /// The IQM ([`aggregate_iqm`]) with its interval.
    pub fn iqm<S: AsRef<[f64]>>(&self, tasks: &[S]) -> Option<Estimate> {
        self.interval(tasks, aggregate_iqm::<Vec<f64>>)
    }

    /// Any statistic of one variant's scores with its stratified bootstrap interval: each resample
    /// draws, within every task separately, as many runs as the task has, with replacement (so
    /// tasks are never mixed: rliable's `StratifiedBootstrap` without task bootstrap). `None` when
    /// the statistic has no value on the scores as given, or the settings are invalid.
    pub fn interval<S, F>(&self, tasks: &[S], stat: F) -> Option<Estimate>
    where
        S: AsRef<[f64]>,
        F: Fn(&[Vec<f64>]) -> Option<f64>,
    {
        let given: Vec<Vec<f64>> = tasks.iter().map(|t| t.as_ref().to_vec()).collect();
        let point = stat(&given)?;
        let mut rng = self.rng()?;
        let mut sample = given.clone();
        let mut stats = Vec::with_capacity(self.resamples);
        for _ in 0..self.resamples {
            resample(&given, &mut sample, &mut rng);
            stats.push(stat(&sample)?);
        }
        self.estimate(point, stats)
    }

    /// [`probability_of_improvement`] of `x` over `y` with its interval: each resample redraws
    /// `x`'s and `y`'s runs independently, within each task (rliable's
    /// `StratifiedIndependentBootstrap`).
    pub fn improvement<S: AsRef<[f64]>>(&self, x: &[S], y: &[S]) -> Option<Estimate> {
        let gx: Vec<Vec<f64>> = x.iter().map(|t| t.as_ref().to_vec()).collect();
        let gy: Vec<Vec<f64>> = y.iter().map(|t| t.as_ref().to_vec()).collect();
        let point = probability_of_improvement(&gx, &gy)?;
        let mut rng = self.rng()?;
        let (mut sx, mut sy) = (gx.clone(), gy.clone());
        let mut stats = Vec::with_capacity(self.resamples);
        for _ in 0..self.resamples {
            resample(&gx, &mut sx, &mut rng);
            resample(&gy, &mut sy, &mut rng);
            stats.push(probability_of_improvement(&sx, &sy)?);
        }
        self.estimate(point, stats)
    }

    fn rng(&self) -> Option<ChaCha8Rng> {
        let valid = self.resamples > 0 && self.confidence > 0.0 && self.confidence < 1.0;
        valid.then(|| ChaCha8Rng::seed_from_u64(self.seed))
    }

    fn estimate(&self, point: f64, mut stats: Vec<f64>) -> Option<Estimate> {
        stats.sort_by(f64::total_cmp);
        let tail = (1.0 - self.confidence) / 2.0;
        Some(Estimate {
            point,
            ci: Interval {
                lo: percentile(&stats, tail)?,
                hi: percentile(&stats, 1.0 - tail)?,
            },
        })
    }
}

/// Redraws each task's runs with replacement into `out` (same shape as `given`).
fn resample(given: &[Vec<f64>], out: &mut [Vec<f64>], rng: &mut ChaCha8Rng) {
    for (task, drawn) in given.iter().zip(out.iter_mut()) {
        // u32 draws: `gen_range` over usize would depend on the platform's pointer width.
        let n = task.len() as u32;
        for slot in drawn.iter_mut() {
            *slot = task[rng.gen_range(0..n) as usize];
        }
    }
}

/// The `q` quantile (0..=1) of sorted values, interpolating linearly between order statistics as
/// numpy's default `percentile` does (which rliable's bootstrap uses).
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let below = pos.floor() as usize;
    let above = (below + 1).min(last);
    let frac = pos - below as f64;
    Some(sorted[below] + frac * (sorted[above] - sorted[below]))
}

/// One variant's scores summarised for the report: run count, mean and IQM with intervals.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct VariantStats {
    /// Runs over all tasks.
    pub runs: usize,
    pub mean: Estimate,
    pub iqm: Estimate,
}

/// The mean and IQM of one variant's scores, each with its interval; `None` when either has no
/// value (no runs, or a non-finite score).
pub fn variant_stats<S: AsRef<[f64]>>(tasks: &[S], boot: &Bootstrap) -> Option<VariantStats> {
    Some(VariantStats {
        runs: tasks.iter().map(|t| t.as_ref().len()).sum(),
        mean: boot.mean(tasks)?,
        iqm: boot.iqm(tasks)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn iqm_matches_scipy_trim_mean() {
        // scipy.stats.trim_mean(x, 0.25): cut = int(0.25 * n) whole values from each end.
        let table: [(&[f64], f64); 8] = [
            // n = 8, cut 2: mean(3, 4, 5, 6) = 4.5
            (&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], 4.5),
            // n = 8 unsorted, same values
            (&[8.0, 1.0, 7.0, 2.0, 6.0, 3.0, 5.0, 4.0], 4.5),
            // n = 3, cut int(0.75) = 0: the plain mean 110 / 3
            (&[1.0, 9.0, 100.0], 110.0 / 3.0),
            // n = 5, cut int(1.25) = 1 (no fractional weights): mean(2, 3, 50) = 55 / 3
            (&[1.0, 2.0, 3.0, 50.0, 1000.0], 55.0 / 3.0),
            // n = 4, cut 1: mean(-5, 0) = -2.5
            (&[-100.0, -5.0, 0.0, 40.0], -2.5),
            // n = 7, cut int(1.75) = 1: mean(2..=6) = 4
            (&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 70.0], 4.0),
            // n = 1
            (&[-8.6], -8.6),
            // n = 2: cut 0
            (&[1.0, 3.0], 2.0),
        ];
        for (xs, want) in table {
            let got = iqm(xs).unwrap();
            assert!(close(got, want), "iqm({xs:?}) = {got}, want {want}");
        }
        assert_eq!(iqm(&[]), None);
        assert_eq!(iqm(&[1.0, f64::NAN, 3.0]), None);
        assert_eq!(trim_mean(&[1.0, 2.0], 0.5), None);
        // scipy's docstring example: trim_mean(arange(20), 0.1) = 9.5.
        let x: Vec<f64> = (0..20).map(f64::from).collect();
        assert!(close(trim_mean(&x, 0.1).unwrap(), 9.5));
    }

    #[test]
    fn aggregates_over_tasks() {
        // rliable's aggregate_mean is the mean of the per-task means, not of the pooled runs.
        let tasks = [vec![1.0, 3.0], vec![10.0, 20.0, 30.0, 40.0]];
        assert!(close(aggregate_mean(&tasks).unwrap(), (2.0 + 25.0) / 2.0));
        // The IQM pools runs: [1, 3, 10, 20, 30, 40], cut 1 from each end → mean(3, 10, 20, 30).
        assert!(close(aggregate_iqm(&tasks).unwrap(), 63.0 / 4.0));
        assert_eq!(aggregate_mean::<Vec<f64>>(&[]), None);
        assert_eq!(aggregate_iqm(&[vec![1.0], vec![]]), None);
    }

    #[test]
    fn probability_of_improvement_counts_pairs() {
        let table: [(&[f64], &[f64], f64); 6] = [
            (&[3.0, 4.0, 5.0], &[0.0, 1.0, 2.0], 1.0),
            (&[0.0, 1.0, 2.0], &[3.0, 4.0, 5.0], 0.0),
            // identical samples: 3 wins + 3 ties of 9 pairs = (3 + 1.5) / 9
            (&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], 0.5),
            // 2 > 1, 2 = 2, 2 < 3 against [1, 2, 3]; 4 beats all 3: (1 + 0.5 + 3) / 6
            (&[2.0, 4.0], &[1.0, 2.0, 3.0], 4.5 / 6.0),
            (&[-150.0, -200.0, -250.0], &[-1300.0, -1200.0, -1500.0], 1.0),
            (&[5.0], &[5.0], 0.5),
        ];
        for (x, y, want) in table {
            let got = probability_of_improvement(&[x], &[y]).unwrap();
            assert!(close(got, want), "P({x:?} > {y:?}) = {got}, want {want}");
        }
        // Two tasks average their probabilities: (1 + 0) / 2.
        let x = [vec![2.0], vec![0.0]];
        let y = [vec![1.0], vec![1.0]];
        assert!(close(probability_of_improvement(&x, &y).unwrap(), 0.5));
        assert_eq!(probability_of_improvement(&x, &y[..1]), None);
        assert_eq!(probability_of_improvement(&[vec![]], &[vec![1.0]]), None);
    }

    #[test]
    fn bootstrap_is_deterministic_and_seeded() {
        let seeds = [vec![45.0, 173.0, 120.0, 98.0, 60.0]];
        let boot = Bootstrap::default();
        let a = boot.mean(&seeds).unwrap();
        let b = boot.mean(&seeds).unwrap();
        assert_eq!(a, b);
        let other = Bootstrap { seed: 7, ..boot }.mean(&seeds).unwrap();
        assert_eq!(a.point, other.point);
        assert_ne!(a.ci, other.ci, "a different seed draws different resamples");
        assert!(close(a.point, 99.2));
        assert!(a.ci.lo < a.point && a.point < a.ci.hi);
        assert!(a.ci.lo >= 45.0 && a.ci.hi <= 173.0);
    }

    #[test]
    fn three_seeds_give_the_range_of_the_seeds() {
        // A resample of three copies of one seed has probability 1/27 > 2.5%, so both 95%
        // percentiles land on the extreme seeds (see the module docs).
        let boot = Bootstrap::default();
        let pendulum = [vec![-150.0, -250.0, -200.0]];
        for est in [boot.mean(&pendulum).unwrap(), boot.iqm(&pendulum).unwrap()] {
            assert!(close(est.point, -200.0));
            assert_eq!(
                est.ci,
                Interval {
                    lo: -250.0,
                    hi: -150.0
                }
            );
        }
    }

    #[test]
    fn separation_and_improvement_intervals() {
        let boot = Bootstrap::default();
        let trained = [vec![-150.0, -250.0, -200.0]];
        let untrained = [vec![-1200.0, -1500.0, -1300.0]];
        let close_by = [vec![-180.0, -260.0, -210.0]];
        let (t, u, c) = (
            boot.mean(&trained).unwrap(),
            boot.mean(&untrained).unwrap(),
            boot.mean(&close_by).unwrap(),
        );
        // Disjoint intervals separate two variants; overlapping ones do not.
        assert!(!t.ci.overlaps(&u.ci) && t.ci.lo > u.ci.hi);
        assert!(t.ci.overlaps(&c.ci));

        // Every pair agrees: P = 1, and every resample of those runs agrees too.
        let poi = boot.improvement(&trained, &untrained).unwrap();
        assert_eq!(poi.point, 1.0);
        assert_eq!(poi.ci, Interval { lo: 1.0, hi: 1.0 });
        // Interleaved runs: the interval spans 0.5, no evidence either way.
        let poi = boot.improvement(&trained, &close_by).unwrap();
        assert!(poi.ci.lo < 0.5 && poi.ci.hi > 0.5);
        assert_eq!(boot.improvement(&trained, &close_by).unwrap(), poi);
    }

    #[test]
    fn intervals_overlap_at_touching_ends() {
        let a = Interval { lo: 0.0, hi: 1.0 };
        let table = [
            (Interval { lo: 1.0, hi: 2.0 }, true),
            (
                Interval {
                    lo: 1.0 + 1e-9,
                    hi: 2.0,
                },
                false,
            ),
            (Interval { lo: -2.0, hi: -1.0 }, false),
            (Interval { lo: 0.2, hi: 0.3 }, true),
            (Interval { lo: -5.0, hi: 5.0 }, true),
        ];
        for (b, want) in table {
            assert_eq!(a.overlaps(&b), want, "{b:?}");
            assert_eq!(b.overlaps(&a), want, "{b:?}");
        }
    }

    #[test]
    fn percentile_interpolates_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        // numpy.percentile([1, 2, 3, 4], [0, 2.5, 50, 97.5, 100]) = [1, 1.075, 2.5, 3.925, 4]
        let table = [
            (0.0, 1.0),
            (0.025, 1.075),
            (0.5, 2.5),
            (0.975, 3.925),
            (1.0, 4.0),
        ];
        for (q, want) in table {
            assert!(close(percentile(&v, q).unwrap(), want), "q {q}");
        }
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn invalid_settings_and_scores_give_none() {
        let seeds = [vec![1.0, 2.0, 3.0]];
        let zero = Bootstrap {
            resamples: 0,
            ..Bootstrap::default()
        };
        assert_eq!(zero.mean(&seeds), None);
        let full = Bootstrap {
            confidence: 1.0,
            ..Bootstrap::default()
        };
        assert_eq!(full.mean(&seeds), None);
        assert_eq!(Bootstrap::default().mean(&[vec![1.0, f64::NAN]]), None);
        assert_eq!(
            variant_stats(&[Vec::<f64>::new()], &Bootstrap::default()),
            None
        );
        let s = variant_stats(&seeds, &Bootstrap::default()).unwrap();
        assert_eq!(s.runs, 3);
        assert!(close(s.mean.point, 2.0) && close(s.iqm.point, 2.0));
    }
}
