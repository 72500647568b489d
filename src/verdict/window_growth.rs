//! The scale-free growth rule (issue 15 §2): a monitored norm that grows by 100x or more within
//! any 500 training steps is FAIL, by 10x–100x INVESTIGATE, whatever the metric's scale.
//!
//! A ratio of two rows cannot tell an explosion from noise, a spike or a straight line, so a
//! window counts only when its growth is *sustained exponential growth*:
//! - the log-linear fit over the window's rows explains the rise (R² ≥ [`EXPONENTIAL_MIN_R2`]);
//! - the fitted growth of *each half* of the window exceeds e ≈ 2.718 ([`HALF_GROWTH_MIN`]).
//!
//! The half test is what keeps linear growth from ever being called exponential. For any
//! non-negative curve that is linear or decelerating (concave) from the window's first step `s0`,
//! `f(s) ≥ f'(s)(s − s0)`, so its log-slope `f'/f` is at most `1/(s − s0)`, and at most
//! `2/span` over the window's later half. A least-squares slope is a weighted average of the
//! chord slopes between its points, so the fitted growth of that half is at most
//! `exp(2/span × span/2) = e`. An exponential of 10x per window grows `√10 ≈ 3.2x` in each half,
//! one of 100x by 10x; one below `e² ≈ 7.4x` per window never counts, which is below the
//! INVESTIGATE line anyway. Requiring the first half to grow too rejects a flat stretch followed
//! by a jump: a step, not a trend. A single spike fails both tests; the spike rule judges spikes.
//!
//! The factor a window reports is the fitted growth over the steps its rows span,
//! `exp(slope × span)`: never extrapolated, and robust to one noisy row at either end. It is
//! capped at the window's largest-to-smallest ratio, so an S-shaped rise (flat, steep, flat) is
//! never credited with more growth than its rows show. Windows are all runs of consecutive rows
//! spanning at most [`GrowthRule::window_steps`], so a burst shorter than a window is judged on
//! its own rows. Cost: rows × rows per window (running sums fit each window in constant time).
//!
//! A window's verdict depends only on its own rows and the floor, and the floor only on the
//! series' first rows: a verdict once reached stays, so the trainer may use this to stop early.

use serde::Serialize;

use super::classify::LogFit;
use super::{fmt_factor, fmt_num, Verdict, EXPONENTIAL_MIN_POINTS, EXPONENTIAL_MIN_R2};

/// Each half of a window must grow by more than this (fitted) for the window to count: the most
/// a linear or decelerating curve can grow over a window's later half (see the module docs).
pub const HALF_GROWTH_MIN: f64 = std::f64::consts::E;

/// Values at or below this are numerically zero for the norms the rule watches; see
/// [`GrowthRule::abs_floor`].
pub const DEFAULT_ABS_FLOOR: f64 = 1e-6;

/// Fraction of the series' starting level below which a value counts as that floor; see
/// [`GrowthRule::rel_floor`].
pub const DEFAULT_REL_FLOOR: f64 = 0.1;

/// Rows whose median is the series' starting level.
const START_ROWS: usize = 3;

/// The growth rule's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GrowthRule {
    /// Longest span of training steps a window may cover (500).
    pub window_steps: u64,
    /// Sustained growth of at least this factor within a window is INVESTIGATE (10).
    pub investigate_factor: f64,
    /// Sustained growth of at least this factor within a window is FAIL (100).
    pub fail_factor: f64,
    /// Absolute floor (1e-6): growth among values this small is the noise of a dead network, not
    /// an explosion. The dying actors read 1e-6 and 1e-9; healthy norms seen so far start
    /// three orders of magnitude higher (actor CNN ≈ 4e-3 before it learns, |Q| ≈ 1e-2 at
    /// initialisation). Not scale-free, hence tiny and paired with `rel_floor`.
    pub abs_floor: f64,
    /// Relative floor (0.1): a fraction of the series' starting level (the median of its first
    /// three rows), the metric's own scale before training moved it. An explosion grows beyond
    /// where the series started; a norm that dipped toward 0 and climbs back is recovering, not
    /// exploding (measured, default sweep, actor CNN lr 1e-5, seed 0: the actor CNN gradient
    /// started at 0.20–0.27, fell to 2.7e-4 by step 800 and rose back to 0.70 by step 1,100 as
    /// the actor started to learn). Not the series' maximum: an explosion would raise its own
    /// floor and hide its fastest windows, and a verdict would depend on rows not yet logged.
    pub rel_floor: f64,
    /// Fewest rows a window needs ([`EXPONENTIAL_MIN_POINTS`]); a 500-step window holds 6 at the
    /// default `log_every` of 100, and none holds 4 from a `log_every` of 167: the rule then
    /// reads "not measured".
    pub min_points: usize,
    /// Least R² of the window's log-linear fit ([`EXPONENTIAL_MIN_R2`]).
    pub min_r2: f64,
}

impl Default for GrowthRule {
    fn default() -> Self {
        GrowthRule {
            window_steps: 500,
            investigate_factor: 10.0,
            fail_factor: 100.0,
            abs_floor: DEFAULT_ABS_FLOOR,
            rel_floor: DEFAULT_REL_FLOOR,
            min_points: EXPONENTIAL_MIN_POINTS,
            min_r2: EXPONENTIAL_MIN_R2,
        }
    }
}

/// One window of consecutive rows and how it grew.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GrowthWindow {
    /// Training step of the window's first row.
    pub from_step: u64,
    /// Training step of its last row.
    pub to_step: u64,
    /// The first and last rows' values (magnitudes, before the floor).
    pub from_value: f64,
    pub to_value: f64,
    /// Rows in the window.
    pub points: usize,
    /// Fitted growth over the steps the rows span, `exp(slope × (to_step − from_step))`, capped
    /// at the largest-to-smallest ratio of the window's (floored) values.
    pub factor: f64,
    /// R² of the log-linear fit over the window.
    pub r2: f64,
    /// Growth of the first and of the second half of the window: each half's fitted log-slope
    /// over half the window's span.
    pub halves: (f64, f64),
    /// Whether the window is sustained exponential growth (R² and both halves pass).
    pub sustained: bool,
}

/// The growth rule's result on one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowGrowth {
    /// `None` when no window has enough rows: not measured, which is not a PASS.
    pub verdict: Option<Verdict>,
    /// The sustained window with the largest factor: what the verdict rests on.
    pub sustained: Option<GrowthWindow>,
    /// The window with the largest factor of all, sustained or not. When it is not sustained (a
    /// linear rise, a step, a spike) the evidence shows it, so the reader sees why a big rise did
    /// not count.
    pub largest: Option<GrowthWindow>,
    /// The floor in force: values below it counted as it.
    pub floor: f64,
    /// Windows judged.
    pub windows: usize,
    /// One line for the report.
    pub evidence: String,
}

/// Judges a `(training step, value)` series by the growth rule. Missing (`None`) and non-finite
/// values are skipped (the non-finite rule judges those); values are taken as magnitudes. Rows
/// are sorted by step first.
pub fn window_growth(series: &[(u64, Option<f64>)], rule: &GrowthRule) -> WindowGrowth {
    let mut raw: Vec<(u64, f64)> = series
        .iter()
        .filter_map(|&(s, v)| v.filter(|v| v.is_finite()).map(|v| (s, v.abs())))
        .collect();
    raw.sort_by_key(|p| p.0);
    let mut start: Vec<f64> = raw.iter().take(START_ROWS).map(|p| p.1).collect();
    let start_level = if start.is_empty() {
        0.0
    } else {
        super::classify::median(&mut start)
    };
    let floor = rule.abs_floor.max(rule.rel_floor * start_level);
    let floored: Vec<(u64, f64)> = raw.iter().map(|&(s, v)| (s, v.max(floor))).collect();

    let mut windows = 0;
    let mut sustained: Option<GrowthWindow> = None;
    let mut largest: Option<GrowthWindow> = None;
    let min_points = rule.min_points.max(2);
    // Running sums from row i (centred on row i, so subtracting two prefixes loses nothing to
    // cancellation): every window and both its halves are fitted in O(1), so the cost is rows ×
    // rows per window, not its square (a trainer that logs every step has 500 rows per window).
    let mut prefix: Vec<Sums> = Vec::new();
    for i in 0..floored.len() {
        let end = floored[i].0.saturating_add(rule.window_steps);
        let origin = (floored[i].0 as f64, floored[i].1.ln());
        prefix.clear();
        prefix.push(Sums::default());
        let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
        for j in i..floored.len() {
            if floored[j].0 > end {
                break;
            }
            let next = prefix[prefix.len() - 1].with(floored[j], origin);
            prefix.push(next);
            lo = lo.min(floored[j].1);
            hi = hi.max(floored[j].1);
            if j + 1 < i + min_points {
                continue;
            }
            let window = Window {
                raw: &raw[i..=j],
                pts: &floored[i..=j],
                prefix: &prefix,
                origin,
                lo,
                hi,
            };
            let Some(w) = judge_window(&window, rule) else {
                continue;
            };
            windows += 1;
            if w.sustained && sustained.is_none_or(|b| w.factor > b.factor) {
                sustained = Some(w);
            }
            if largest.is_none_or(|b| w.factor > b.factor) {
                largest = Some(w);
            }
        }
    }
    let verdict = (windows > 0).then_some(match sustained {
        Some(w) if w.factor >= rule.fail_factor => Verdict::Fail,
        Some(w) if w.factor >= rule.investigate_factor => Verdict::Investigate,
        _ => Verdict::Pass,
    });
    let mut result = WindowGrowth {
        verdict,
        sustained,
        largest,
        floor,
        windows,
        evidence: String::new(),
    };
    result.evidence = evidence(&result, rule, raw.len(), raw.iter().any(|p| p.1 < floor));
    result
}

/// Least-squares sums of `(step, ln value)` over consecutive rows, centred on a window's first
/// row (`origin`).
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    n: f64,
    x: f64,
    y: f64,
    xx: f64,
    xy: f64,
    yy: f64,
}

impl Sums {
    /// These sums with one more row.
    fn with(self, (step, v): (u64, f64), origin: (f64, f64)) -> Sums {
        let (x, y) = (step as f64 - origin.0, v.ln() - origin.1);
        Sums {
            n: self.n + 1.0,
            x: self.x + x,
            y: self.y + y,
            xx: self.xx + x * x,
            xy: self.xy + x * y,
            yy: self.yy + y * y,
        }
    }

    /// The sums of the rows between two prefixes (`self` the longer).
    fn minus(self, o: Sums) -> Sums {
        Sums {
            n: self.n - o.n,
            x: self.x - o.x,
            y: self.y - o.y,
            xx: self.xx - o.xx,
            xy: self.xy - o.xy,
            yy: self.yy - o.yy,
        }
    }

    /// The log-linear fit of these rows, as [`log_linear_fit`] computes it (every floored value is
    /// positive); `None` below two rows or a single step.
    fn fit(self, origin_y: f64) -> Option<LogFit> {
        if self.n < 2.0 {
            return None;
        }
        let (mx, my) = (self.x / self.n, self.y / self.n);
        let sxx = self.xx - self.x * mx;
        if sxx <= 0.0 {
            return None;
        }
        let sxy = self.xy - self.x * my;
        let slope = sxy / sxx;
        let ss_tot = (self.yy - self.y * my).max(0.0);
        let ss_res = (ss_tot - slope * sxy).max(0.0);
        let mean = my + origin_y;
        // The same tolerance as log_linear_fit: float noise on a flat series is no growth.
        let r2 = if ss_tot <= 1e-12 * (1.0 + mean * mean) * self.n {
            0.0
        } else {
            (1.0 - ss_res / ss_tot).max(0.0)
        };
        Some(LogFit {
            slope,
            r2,
            points: self.n as usize,
        })
    }
}

/// One window: its rows (raw and floored), the running sums from its first row, and the range of
/// its floored values.
struct Window<'a> {
    raw: &'a [(u64, f64)],
    pts: &'a [(u64, f64)],
    /// `prefix[k]`: the sums of the window's first `k` rows.
    prefix: &'a [Sums],
    origin: (f64, f64),
    lo: f64,
    hi: f64,
}

/// Fits one window; `None` when its rows cannot be fitted (a single step, or a half with fewer
/// than two rows).
fn judge_window(w: &Window, rule: &GrowthRule) -> Option<GrowthWindow> {
    let pts = w.pts;
    let (first, last) = (pts[0].0, pts[pts.len() - 1].0);
    let span = last.checked_sub(first).filter(|s| *s > 0)? as f64;
    let all = w.prefix[pts.len()];
    let fit = all.fit(w.origin.1)?;
    let mid = first as f64 + span / 2.0;
    let split_lo = pts.partition_point(|p| p.0 as f64 <= mid);
    let split_hi = pts.partition_point(|p| (p.0 as f64) < mid);
    let (lo, hi) = (w.lo, w.hi);
    // Capped like the factor: a half of two rows extrapolated to half the window must not read
    // as more growth than the window holds. Capping only lowers a half, so the bound that keeps
    // lines out (module docs) still holds.
    let half = |s: Sums| {
        s.fit(w.origin.1)
            .map(|f| (f.slope * span / 2.0).exp().min(hi / lo))
    };
    let halves = (
        half(w.prefix[split_lo])?,
        half(all.minus(w.prefix[split_hi]))?,
    );
    let sustained = fit.slope > 0.0
        && fit.r2 >= rule.min_r2
        && halves.0 > HALF_GROWTH_MIN
        && halves.1 > HALF_GROWTH_MIN;
    Some(GrowthWindow {
        from_step: first,
        to_step: last,
        from_value: w.raw[0].1,
        to_value: w.raw[w.raw.len() - 1].1,
        points: pts.len(),
        factor: (fit.slope * span).exp().min(hi / lo),
        r2: fit.r2,
        halves,
        sustained,
    })
}

fn describe(w: &GrowthWindow) -> String {
    format!(
        "{} over steps {}–{} ({} → {})",
        fmt_factor(w.factor),
        w.from_step,
        w.to_step,
        fmt_num(w.from_value),
        fmt_num(w.to_value)
    )
}

fn shape(w: &GrowthWindow) -> String {
    format!(
        "log-linear R² {:.3}, halves {} and {}",
        w.r2,
        fmt_factor(w.halves.0),
        fmt_factor(w.halves.1)
    )
}

fn evidence(g: &WindowGrowth, rule: &GrowthRule, rows: usize, floored: bool) -> String {
    let per = format!("within {} steps", rule.window_steps);
    let Some(verdict) = g.verdict else {
        return format!(
            "not measured: {rows} usable rows, a window needs {} within {} steps",
            rule.min_points, rule.window_steps
        );
    };
    let mut parts = vec![match &g.sustained {
        Some(w) if verdict != Verdict::Pass => {
            let at = if verdict == Verdict::Fail {
                rule.fail_factor
            } else {
                rule.investigate_factor
            };
            format!(
                "sustained exponential growth {per}: {} ({}); {verdict} at ≥ {}",
                describe(w),
                shape(w),
                fmt_factor(at)
            )
        }
        Some(w) => format!(
            "largest sustained growth {per}: {}, below {}",
            describe(w),
            fmt_factor(rule.investigate_factor)
        ),
        None => format!(
            "no sustained growth of {} or more {per}",
            fmt_factor(rule.investigate_factor)
        ),
    }];
    match g.largest {
        Some(l)
            if !l.sustained
                && l.factor >= rule.investigate_factor
                && g.sustained.is_none_or(|s| l.factor > s.factor) =>
        {
            parts.push(format!(
            "the largest rise, {}, is not sustained exponential growth ({}: linear or decelerating growth, a step or a spike)",
            describe(&l),
            shape(&l)
        ))
        }
        Some(l) if g.sustained.is_none() => {
            parts.push(format!("largest rise {}", describe(&l)));
        }
        _ => {}
    }
    if floored {
        parts.push(format!(
            "values below the floor {} count as it",
            fmt_num(g.floor)
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_sums_fit_like_log_linear_fit() {
        // A noisy, growing, irregularly logged series; every contiguous range is fitted both ways.
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut step = 1000u64;
        let pts: Vec<(u64, f64)> = (0..60)
            .map(|k| {
                step += 1 + (next() * 40.0) as u64;
                (step, (0.02 * k as f64).exp() * (0.5 + next()) + 1e-3)
            })
            .collect();
        for i in 0..pts.len() {
            let origin = (pts[i].0 as f64, pts[i].1.ln());
            let mut sums = Sums::default();
            for j in i..pts.len() {
                sums = sums.with(pts[j], origin);
                let (ours, theirs) = (
                    sums.fit(origin.1),
                    super::super::log_linear_fit(&pts[i..=j]),
                );
                match (ours, theirs) {
                    (None, None) => {}
                    (Some(a), Some(b)) => {
                        assert!(
                            (a.slope - b.slope).abs() <= 1e-9 * b.slope.abs().max(1e-6),
                            "{i}..{j}: {a:?} {b:?}"
                        );
                        assert!((a.r2 - b.r2).abs() <= 1e-7, "{i}..{j}: {a:?} {b:?}");
                        assert_eq!(a.points, b.points);
                    }
                    (a, b) => panic!("{i}..{j}: {a:?} vs {b:?}"),
                }
            }
        }
        // A flat series has no growth and R² 0, as log_linear_fit says.
        let flat = [(0u64, 2.0), (10, 2.0), (20, 2.0)];
        let origin = (0.0, 2f64.ln());
        let s = flat.iter().fold(Sums::default(), |s, p| s.with(*p, origin));
        let f = s.fit(origin.1).unwrap();
        assert_eq!((f.slope, f.r2), (0.0, 0.0));
    }
    use Verdict::*;

    fn series(f: impl Fn(u64) -> f64, steps: impl Iterator<Item = u64>) -> Vec<(u64, Option<f64>)> {
        steps.map(|s| (s, Some(f(s)))).collect()
    }

    /// 5,191 at `start`, ×1,440 over 500 steps, sampled every 100.
    fn seed_explosion(start: u64) -> impl Fn(u64) -> f64 {
        move |s| 5191.0 * (7_475_702.0f64 / 5191.0).powf((s - start) as f64 / 500.0)
    }

    /// A deterministic ±2x multiplicative noise, like gradient norms' row-to-row jitter.
    fn jitter(s: u64) -> f64 {
        const J: [f64; 10] = [1.0, 1.6, 0.7, 1.3, 0.55, 1.9, 0.8, 1.1, 0.6, 1.5];
        J[(s / 100) as usize % J.len()]
    }

    #[test]
    fn the_seeds_explosion_fails_on_growth_alone() {
        let g = window_growth(
            &series(seed_explosion(0), (0..=500).step_by(100)),
            &GrowthRule::default(),
        );
        assert_eq!(g.verdict, Some(Fail), "{}", g.evidence);
        let w = g.sustained.unwrap();
        assert_eq!((w.from_step, w.to_step), (0, 500));
        assert!((w.factor - 7_475_702.0 / 5191.0).abs() < 1e-6 * w.factor);
        assert_eq!(
            g.evidence,
            "sustained exponential growth within 500 steps: 1,440x over steps 0–500 (5,191 → 7,475,702) \
             (log-linear R² 1.000, halves 37.9x and 37.9x); FAIL at ≥ 100x"
        );
        // The commit message's version: 400 steps after a quiet start, never past 10,000,000.
        let mut quiet = series(|_| 5191.0, (0..100).step_by(100));
        quiet.extend(series(
            |s| 5191.0 * (1440.0f64).powf((s - 100) as f64 / 400.0),
            (100..=500).step_by(100),
        ));
        assert_eq!(
            window_growth(&quiet, &GrowthRule::default()).verdict,
            Some(Fail)
        );
    }

    #[test]
    fn linear_growth_is_never_exponential() {
        // 1 → 1000 over 1000 steps: 500x in the first 500 steps, yet a straight line.
        let g = window_growth(
            &series(|s| 1.0 + 0.999 * s as f64, (0..=1000).step_by(100)),
            &GrowthRule::default(),
        );
        assert_eq!(g.verdict, Some(Pass), "{}", g.evidence);
        assert!(g.evidence.contains("not sustained"), "{}", g.evidence);
        // Any intercept, slope and sampling: the later half of a window never passes.
        for c in [0.0, 1e-3, 1.0, 100.0] {
            for b in [1e-3, 1.0, 1e3] {
                for every in [10, 50, 100, 125] {
                    let s = series(|s| c + b * s as f64, (0..=1500).step_by(every));
                    let g = window_growth(&s, &GrowthRule::default());
                    assert_eq!(
                        g.verdict,
                        Some(Pass),
                        "c {c} b {b} every {every}: {}",
                        g.evidence
                    );
                    assert!(g.sustained.is_none_or(|w| w.factor < 10.0));
                }
            }
        }
        // Nor decelerating (saturating) growth, such as Q learning its values from zero.
        let q = series(
            |s| 100.0 * (1.0 - (-(s as f64) / 300.0).exp()),
            (0..=3000).step_by(100),
        );
        assert_eq!(
            window_growth(&q, &GrowthRule::default()).verdict,
            Some(Pass)
        );
    }

    #[test]
    fn growth_from_the_floor_does_not_count() {
        // 1e-9 → 1e-6, exponentially: all at or below the absolute floor.
        let g = window_growth(
            &series(
                |s| 1e-9 * 1000f64.powf(s as f64 / 500.0),
                (0..=500).step_by(100),
            ),
            &GrowthRule::default(),
        );
        assert_eq!(g.verdict, Some(Pass), "{}", g.evidence);
        assert!(g.evidence.contains("floor"), "{}", g.evidence);
        // A norm that started at 0.1, collapsed to 1e-9 and climbs back 1,000x to 1e-6... is
        // still a dead network: the relative floor (1e-4) holds it.
        let mut dead = series(|_| 0.1, (0..300).step_by(100));
        dead.extend(series(
            |s| 1e-9 * 1000f64.powf((s - 300) as f64 / 500.0),
            (300..=800).step_by(100),
        ));
        assert_eq!(
            window_growth(&dead, &GrowthRule::default()).verdict,
            Some(Pass)
        );
        // ...but one climbing from that collapse past its old level explodes.
        let mut back = series(|_| 0.1, (0..300).step_by(100));
        back.extend(series(
            |s| 1e-9 * 1e4f64.powf((s - 300) as f64 / 500.0),
            (300..=2000).step_by(100),
        ));
        assert_eq!(
            window_growth(&back, &GrowthRule::default()).verdict,
            Some(Fail)
        );
    }

    #[test]
    fn a_healthy_learning_rise_does_not_fail() {
        // The actor CNN gradient norm at actor lr 1e-5: ~0.004 until step 900, ~8 from 2,900,
        // a log-linear rise in between (2,000x over 2,000 steps, 6.7x per 500), with ±2x jitter.
        let rise = |s: u64| {
            let t = (s.clamp(900, 2900) - 900) as f64 / 2000.0;
            0.004 * 2000f64.powf(t) * jitter(s)
        };
        let g = window_growth(
            &series(rise, (100..=10_000).step_by(100)),
            &GrowthRule::default(),
        );
        assert_ne!(g.verdict, Some(Fail), "{}", g.evidence);
        assert_eq!(g.verdict, Some(Pass), "{}", g.evidence);
        // Without the jitter it is a clean exponential at 6.7x per 500 steps: PASS too (its
        // halves, 2.6x each, are within what a line can do; any growth below e² ≈ 7.4x is).
        let clean = |s: u64| 0.004 * 2000f64.powf((s.clamp(900, 2900) - 900) as f64 / 2000.0);
        let g = window_growth(
            &series(clean, (100..=10_000).step_by(100)),
            &GrowthRule::default(),
        );
        assert_eq!(g.verdict, Some(Pass), "{}", g.evidence);
        let w = g.largest.unwrap();
        assert!((w.factor - 2000f64.powf(0.25)).abs() < 1e-6, "{w:?}");
        assert!(
            g.evidence.starts_with(
                "no sustained growth of 10x or more within 500 steps; largest rise 6.7x"
            ),
            "{}",
            g.evidence
        );
    }

    #[test]
    fn a_single_spike_is_not_sustained_growth() {
        let spike = |s: u64| if s == 1000 { 1000.0 } else { 1.0 };
        let g = window_growth(
            &series(spike, (0..=2000).step_by(100)),
            &GrowthRule::default(),
        );
        assert_eq!(g.verdict, Some(Pass), "{}", g.evidence);
        assert!(!g.largest.unwrap().sustained);
        assert!(g.evidence.contains("a step or a spike"), "{}", g.evidence);
        // A step up (flat, then flat 1000x higher) is not a trend either.
        let step = |s: u64| if s >= 1000 { 1000.0 } else { 1.0 };
        let g = window_growth(
            &series(step, (0..=2000).step_by(100)),
            &GrowthRule::default(),
        );
        assert_eq!(g.verdict, Some(Pass), "{}", g.evidence);
    }

    #[test]
    fn sustained_growth_of_10_to_100x_investigates() {
        for per_window in [12.0, 30.0, 90.0] {
            let f = move |s: u64| 2.0 * f64::powf(per_window, s as f64 / 500.0);
            let g = window_growth(&series(f, (0..=1500).step_by(100)), &GrowthRule::default());
            assert_eq!(g.verdict, Some(Investigate), "{per_window}: {}", g.evidence);
            assert!((g.sustained.unwrap().factor - per_window).abs() < 1e-6 * per_window);
        }
        // 100x exactly is FAIL; 9x PASS.
        let at = |k: f64| {
            let f = move |s: u64| f64::powf(k, s as f64 / 500.0);
            window_growth(&series(f, (0..=1500).step_by(100)), &GrowthRule::default()).verdict
        };
        assert_eq!(at(100.0 * (1.0 + 1e-9)), Some(Fail));
        assert_eq!(at(9.0), Some(Pass));
    }

    #[test]
    fn a_short_burst_is_judged_on_its_own_rows() {
        // 200x in 300 steps, flat before and after: every 500-step window holds a flat part.
        let burst = |s: u64| 1.0 * 200f64.powf((s.clamp(1000, 1300) - 1000) as f64 / 300.0);
        let g = window_growth(
            &series(burst, (0..=3000).step_by(100)),
            &GrowthRule::default(),
        );
        assert_eq!(g.verdict, Some(Fail), "{}", g.evidence);
        // Credited with the 200x its rows show, not the steeper fit of an S-shape.
        let w = g.sustained.unwrap();
        assert!((w.factor - 200.0).abs() < 1e-9, "{w:?}");
        assert!(w.from_step <= 1000 && w.to_step >= 1300, "{w:?}");
    }

    #[test]
    fn missing_values_and_short_series() {
        // Gaps (None, NaN) are skipped: the explosion still fails on its 4 remaining rows.
        let mut s = series(seed_explosion(0), (0..=500).step_by(100));
        s[2].1 = None;
        s[3].1 = Some(f64::NAN);
        let g = window_growth(&s, &GrowthRule::default());
        assert_eq!(g.verdict, Some(Fail), "{}", g.evidence);
        assert_eq!(g.sustained.unwrap().points, 4);
        // Too few rows in any window: not measured, not PASS.
        for n in [0, 1, 2, 3] {
            let s = series(seed_explosion(0), (0..=500).step_by(100).take(n));
            let g = window_growth(&s, &GrowthRule::default());
            assert_eq!(g.verdict, None, "{n} rows");
            assert!(g.evidence.starts_with("not measured"), "{}", g.evidence);
        }
        // Rows too far apart: 4 rows, but no two within a window of each other.
        let sparse = series(seed_explosion(0), (0..=3000).step_by(1000));
        assert_eq!(window_growth(&sparse, &GrowthRule::default()).verdict, None);
        // Unsorted rows are sorted first; negative values count as magnitudes.
        let mut s = series(|s| -seed_explosion(0)(s), (0..=500).step_by(100));
        s.reverse();
        assert_eq!(
            window_growth(&s, &GrowthRule::default()).verdict,
            Some(Fail)
        );
    }
}
