//! The VALIDATION report: a judged results folder in, bytes out. [`Report::new`] builds the
//! status, the recommendation, the view model (every number already formatted) and the plots;
//! each format in [`export`] (Markdown from a template, SVG, JUnit XML) turns it into files.
//!
//! It never changes the results folder's records: reconciling the folder first is the command's
//! step (the scheduler's `reconcile`). Exit codes of [`Report::exit_code`]: see
//! [`crate::results::exit`].

pub mod export;
mod plot;
mod recommend;
mod view;

pub use export::{
    check_template, junit_xml, Exporter, Junit, Markdown, Output, Plots, DEFAULT_TEMPLATE,
};
pub use recommend::{recommend, Recommendation, GRAD_CLIP_KEY, Q_NORM_KEY};
pub use view::STABLE_BLANK;

use std::path::PathBuf;

use crate::diag::Diagnostics;
use crate::results::{exit, GroupId, LadderState, ResultsDir};
use crate::verdict::compare::compare;
use crate::verdict::{Criteria, GroupResult, RunResult};

/// The metrics plotted, in order.
pub const PLOTTED: [&str; 3] = ["actor_cnn_grad_norm", "critic_cnn_grad_norm", "q_abs_max"];

/// Why no report could be written. A failed or corrupted *run* is not one of these: it is in the report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {why}; give a sweep's results folder, e.g. results/actor_lr")]
    NotResults { path: PathBuf, why: &'static str },
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        /// Quoted in the message (run records embed it), so not also a `#[source]`: printed once.
        cause: std::io::Error,
    },
    #[error("invalid criteria:\n{0}")]
    Criteria(Diagnostics),
    /// Printed once: minijinja's alternate form carries the file, line and detail; `line` is that
    /// line of the template, since an undefined value's message does not name it.
    #[error("template {name}: {error:#}{line}")]
    Template {
        name: String,
        error: minijinja::Error,
        line: String,
    },
}

/// The overall status of a sweep: the worst variant group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Pass,
    Investigate,
    /// Some runs have not finished (and no group FAILs): rerun the sweep to resume.
    Incomplete,
    Fail,
}

/// A results folder read and judged: everything the report shows. Reading and judging are the
/// caller's; the report only lays it out.
pub struct Judged {
    pub sweep: String,
    pub criteria: Criteria,
    /// Where the criteria came from, as the report names it.
    pub criteria_source: String,
    pub runs: Vec<RunResult>,
    pub groups: Vec<GroupResult>,
    /// `ladder.json`, for a sweep with `stages:`.
    pub ladder: Option<LadderState>,
    /// Run folders not in the sweep's current plan, left out of the verdict.
    pub left_out: Vec<String>,
}

/// One drawn plot: its path relative to the results folder, and the SVG.
#[derive(Debug, Clone)]
pub struct Plot {
    pub path: PathBuf,
    pub svg: String,
}

/// A built report: the verdicts, the recommendation, the formatted view model and the drawn
/// plots. The [`export`] formats turn it into files.
#[derive(Debug)]
pub struct Report {
    pub sweep: String,
    pub status: Status,
    /// A plain-text table of variant groups × seeds, for the terminal.
    pub overview: String,
    /// Every unreadable file, `runs/<id>/<file>:line: message`.
    pub load_errors: Vec<String>,
    pub runs: Vec<RunResult>,
    pub groups: Vec<GroupResult>,
    pub recommendation: Recommendation,
    /// Rendered with [`ReportOptions::stable`].
    pub stable: bool,
    model: view::ReportView,
    plots: Vec<Plot>,
}

impl Report {
    /// Builds the report of a judged folder: the status, the recommendation, the view model and
    /// the plots. `date` is the header's; `stable` blanks what changes between renderings.
    pub fn new(j: Judged, date: String, stable: bool) -> Report {
        // A ladder recommends among the variants that reached its last stage.
        let finalists: Option<Vec<String>> = j.ladder.as_ref().and_then(|l| {
            l.stages
                .last()
                .map(|s| s.entered.iter().map(GroupId::to_string).collect())
        });
        let comparison = compare(&j.groups, &j.runs);
        let recommendation = recommend(&j.groups, &j.runs, finalists.as_deref(), &comparison);
        let worst = worst_severity(&j.groups, j.ladder.as_ref());
        let load_errors: Vec<String> = j
            .runs
            .iter()
            .flat_map(|r| r.load_errors.iter().cloned())
            .collect();
        let (mut plots, plot_views) = metric_plots(&j.criteria, &j.groups, &j.runs);
        let mut model = view::build(view::Input {
            sweep: &j.sweep,
            date,
            stable,
            criteria: &j.criteria,
            criteria_source: j.criteria_source.clone(),
            runs: &j.runs,
            groups: &j.groups,
            recommendation: &recommendation,
            plots: plot_views,
            load_errors: &load_errors,
            left_out: &j.left_out,
            comparison: &comparison,
            worst,
        });
        if let Some(learning) = model.learning.as_mut() {
            if let Some(p) = eval_plot(&j.groups, &j.runs) {
                learning.plot = Some(p.path.display().to_string());
                plots.push(p);
            }
        }
        if let Some(l) = &j.ladder {
            let plot = ladder_plot(l, &j.runs);
            let link = plot.as_ref().map(|p| p.path.display().to_string());
            model.ladder = Some(view::ladder_view(l, link));
            label_ladder_stages(l, &j.groups, &mut model.overview);
            plots.extend(plot);
        }
        Report {
            overview: view::overview_text(&j.groups, &j.runs),
            status: match worst {
                0 => Status::Pass,
                1 => Status::Investigate,
                2 => Status::Incomplete,
                _ => Status::Fail,
            },
            sweep: j.sweep,
            load_errors,
            runs: j.runs,
            groups: j.groups,
            recommendation,
            stable,
            model,
            plots,
        }
    }

    /// The status's exit code ([`crate::results::exit`]). Groups, not runs, decide, so a seeds
    /// quorum below `all` is honoured.
    pub fn exit_code(&self) -> i32 {
        match self.status {
            Status::Pass => exit::OK,
            Status::Investigate => exit::INVESTIGATE,
            Status::Fail => exit::FAIL,
            Status::Incomplete => exit::INCOMPLETE,
        }
    }

    /// The Markdown report's path in the results folder, `VALIDATION_<sweep>.md`.
    pub fn file_name(&self) -> PathBuf {
        ResultsDir::new("").report_md(&self.sweep)
    }

    /// The JUnit XML for these runs (and the groups' seeds rules, when the criteria have any).
    pub fn junit(&self) -> String {
        junit_xml(&self.sweep, &self.runs, &self.groups, self.stable)
    }
}

/// The overall severity: the worst group's, raised to INVESTIGATE for a finished ladder that
/// approved nobody, whatever its early stages said (0 PASS, 1 INVESTIGATE, 2 INCOMPLETE, 3 FAIL).
fn worst_severity(groups: &[GroupResult], ladder: Option<&LadderState>) -> u8 {
    let worst = groups
        .iter()
        .map(|g| g.verdict.severity())
        .max()
        .unwrap_or(0);
    let approved_nobody = ladder.is_some_and(|l| {
        l.stages.iter().all(|s| s.done || s.entered.is_empty())
            && l.stages.last().is_some_and(|s| s.entered.is_empty())
    });
    if approved_nobody {
        worst.max(1)
    } else {
        worst
    }
}

/// The plots of [`PLOTTED`] that have data, and for the template each one's link or why it
/// failed to draw.
fn metric_plots(
    criteria: &Criteria,
    groups: &[GroupResult],
    runs: &[RunResult],
) -> (Vec<Plot>, Vec<view::PlotView>) {
    let mut plots = Vec::new();
    let mut views = Vec::new();
    for metric in PLOTTED {
        match view::plot_metric(metric, criteria, groups, runs) {
            Ok(None) => {}
            Ok(Some(svg)) => {
                let path = ResultsDir::new("").plot(metric);
                views.push(view::PlotView::ok(metric, &path));
                plots.push(Plot { path, svg });
            }
            Err(e) => {
                eprintln!("warning: plot {metric}: {e}");
                views.push(view::PlotView::failed(metric, &e));
            }
        }
    }
    (plots, views)
}

/// A ladder's groups ended at different stages: say where, beside each verdict.
fn label_ladder_stages(l: &LadderState, groups: &[GroupResult], overview: &mut [view::GroupView]) {
    let n = l.stages.len();
    for (g, gv) in groups.iter().zip(overview.iter_mut()) {
        let id = GroupId::new(&g.variant, &g.swept);
        if let Some((k, st)) = l
            .stages
            .iter()
            .enumerate()
            .rev()
            .find(|(_, st)| st.entered.contains(&id))
        {
            gv.label = format!("{} · stage {} `{}` of {n}", gv.label, k + 1, st.name);
        }
    }
}

/// Eval return against env step, one band per variant group: the mean over its completed seeds
/// at each evaluation, shaded from the lowest seed to the highest.
fn eval_plot(groups: &[GroupResult], runs: &[RunResult]) -> Option<Plot> {
    let metric = crate::verdict::compare::SCORE_METRIC;
    let bands: Vec<plot::Band> = groups
        .iter()
        .map(|g| {
            let mut at: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
            for r in g
                .runs
                .iter()
                .map(|i| &runs[*i])
                .filter(|r| r.unfinished.is_none())
            {
                for row in &r.rows {
                    if let Some(v) = row.get(metric).filter(|v| v.is_finite()) {
                        at.entry(row.env_step).or_default().push(v);
                    }
                }
            }
            plot::Band {
                label: g.label(),
                points: at
                    .into_iter()
                    .map(|(x, vs)| {
                        let mean = vs.iter().sum::<f64>() / vs.len() as f64;
                        let lo = vs.iter().copied().fold(f64::INFINITY, f64::min);
                        let hi = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        (x as f64, mean, lo, hi)
                    })
                    .collect(),
            }
        })
        .collect();
    match plot::render_bands(
        "eval return (mean over seeds; band: lowest to highest seed)",
        "env step",
        &bands,
    ) {
        Ok(svg) => svg.map(|svg| Plot {
            path: ResultsDir::new("").plot(metric),
            svg,
        }),
        Err(e) => {
            eprintln!("warning: eval return plot: {e}");
            None
        }
    }
}

/// The continuous critic-loss curve of every run of a ladder, with each stage's end marked;
/// `None` when there is nothing to draw or it failed to draw (with a warning).
fn ladder_plot(l: &LadderState, runs: &[RunResult]) -> Option<Plot> {
    let series: Vec<plot::Series> = runs
        .iter()
        .map(|r| plot::Series {
            label: r.dir_name.clone(),
            points: r
                .rows
                .iter()
                .filter_map(|row| row.critic_loss.map(|v| (row.train_step as f64, v)))
                .collect(),
        })
        .collect();
    let markers: Vec<plot::Marker> = l
        .stages
        .iter()
        .filter(|s| s.done)
        .filter_map(|s| {
            let x = s.runs.iter().map(|r| r.train_step).max()?;
            Some(plot::Marker {
                x: x as f64,
                label: format!("end of {}", s.name),
            })
        })
        .collect();
    match plot::render_svg_marked(
        "critic_loss across the ladder's stages",
        &series,
        &[],
        &markers,
    ) {
        Ok(svg) => svg.map(|svg| Plot {
            path: ResultsDir::new("").plot("ladder_critic_loss"),
            svg,
        }),
        Err(e) => {
            eprintln!("warning: ladder plot: {e}");
            None
        }
    }
}
