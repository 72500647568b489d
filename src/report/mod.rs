//! The VALIDATION report: a judged results folder in, bytes out. [`Report::new`] builds the
//! status, the recommendation, the view model (every number already formatted) and the plots;
//! each format in [`export`] (Markdown from a template, SVG, JUnit XML) turns it into files.
//!
//! It never changes the results folder's records: reconciling the folder first is the command's
//! step (`crate::schedule::reconcile`). Exit codes of [`Report::exit_code`]: see
//! [`crate::results::exit`].

pub mod export;
mod load;
pub use load::group_label;
mod plot;
mod recommend;
mod view;

pub use export::{junit_xml, Exporter, Junit, Markdown, Output, Plots, DEFAULT_TEMPLATE};
pub use load::{group_runs, load_run, load_runs, GroupResult, LoadedRuns, RunResult, Unfinished};
pub use recommend::{recommend, Recommendation, GRAD_CLIP_KEY, Q_NORM_KEY};

use std::path::{Path, PathBuf};

use crate::config::yaml;
use crate::diag::{Diagnostics, Source};
pub use crate::results::printable;
use crate::results::{exit, GroupId, LadderState, ResultsDir};
use crate::verdict::{load_criteria, Criteria};

/// The metrics plotted, in order.
pub const PLOTTED: [&str; 3] = ["actor_cnn_grad_norm", "critic_cnn_grad_norm", "q_abs_max"];

/// What `td3-sweep report` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// A template file to use instead of the embedded one.
    pub template: Option<PathBuf>,
    /// Also write JUnit XML here.
    pub junit: Option<PathBuf>,
    /// Criteria file overriding the results folder's `criteria.yaml`.
    pub criteria: Option<PathBuf>,
    /// The date printed in the header; `None` means now (local time). Tests pin it.
    pub date: Option<String>,
    /// Leave out what changes between two renderings of the same results on another day or
    /// commit (date, git commit, run durations), so the report can be snapshot-tested.
    pub stable: bool,
}

/// Why no report could be written. A failed or corrupted *run* is not one of these: it is in the report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {why}; give a sweep's results folder, e.g. results/actor_lr")]
    NotResults { path: PathBuf, why: &'static str },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid criteria:\n{0}")]
    Criteria(#[source] Diagnostics),
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
        let recommendation = recommend(&j.groups, &j.runs, finalists.as_deref());
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
            worst,
        });
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

/// Writes `text` to `path` atomically ([`crate::results::write_atomic`]).
pub fn write_atomic(path: &Path, text: &str) -> Result<(), ReportError> {
    crate::results::write_atomic(path, text.as_bytes()).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The sweep's name from `sweep.yaml`'s `name:`, else the folder name.
fn sweep_name(results_dir: &Path) -> String {
    let from_yaml = Source::read(&ResultsDir::new(results_dir).sweep_yaml())
        .ok()
        .and_then(|src| yaml::parse(&src).ok())
        .and_then(|n| n.get("name").and_then(|v| v.as_str().map(str::to_string)));
    from_yaml.unwrap_or_else(|| {
        results_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sweep".into())
    })
}

fn resolve_criteria(
    results_dir: &Path,
    opts: &ReportOptions,
) -> Result<(Criteria, String), ReportError> {
    if let Some(p) = &opts.criteria {
        return Ok((
            load_criteria(p).map_err(ReportError::Criteria)?,
            p.display().to_string(),
        ));
    }
    let stored = ResultsDir::new(results_dir).criteria_yaml();
    if stored.is_file() {
        return Ok((
            load_criteria(&stored).map_err(ReportError::Criteria)?,
            "criteria.yaml".into(),
        ));
    }
    Ok((
        Criteria::default_set(),
        "built-in default (criteria/default.yaml)".into(),
    ))
}

/// What [`generate`] wrote.
#[derive(Debug)]
pub struct ReportOutcome {
    pub report: Report,
    pub report_path: PathBuf,
    pub plots: Vec<PathBuf>,
}

impl std::ops::Deref for ReportOutcome {
    type Target = Report;
    fn deref(&self) -> &Report {
        &self.report
    }
}

/// Loads, classifies and renders a results folder: `VALIDATION_<name>.md`, `plots/*.svg` and, when
/// asked, JUnit XML. Unreadable runs are reported (and printed to stderr), never fatal.
pub fn generate(results_dir: &Path, opts: &ReportOptions) -> Result<ReportOutcome, ReportError> {
    let results = ResultsDir::new(results_dir);
    if !results.exists() {
        let why = if !results_dir.exists() {
            "does not exist"
        } else if !results_dir.is_dir() {
            "is a file, not a results folder"
        } else {
            "not a results folder (no runs/ folder inside)"
        };
        return Err(ReportError::NotResults {
            path: results_dir.to_path_buf(),
            why,
        });
    }
    let (criteria, criteria_source) = resolve_criteria(results_dir, opts)?;
    let sweep = sweep_name(results_dir);
    // A sweep still running on this folder (another process holding its lock): its started,
    // unended runs are in progress, not interrupted. The sweep's own final report is not a
    // snapshot, whatever its lock says.
    let live =
        crate::results::lock::live_holder(&results.lock()).filter(|h| h.pid != std::process::id());
    let LoadedRuns { mut runs, left_out } =
        load_runs(results_dir, &criteria).map_err(|source| ReportError::Io {
            path: results.runs(),
            source,
        })?;
    if let Some(h) = &live {
        for r in &mut runs {
            if r.unfinished == Some(Unfinished::Interrupted)
                && r.record.as_ref().is_some_and(|x| x.ended_unobserved())
            {
                r.unfinished = Some(Unfinished::Running);
            }
        }
        eprintln!(
            "note: {} is being written by a running sweep (pid {} since {}: `{}`); this report is a snapshot, and runs it has not finished are RUNNING or PENDING",
            results_dir.display(),
            h.pid,
            h.started_at,
            printable(&h.command)
        );
    }
    if !left_out.is_empty() {
        eprintln!(
            "warning: {}: {} run folder(s) under runs/ are not in the sweep's current plan (plan.json) and are left out of the verdict: {}",
            results_dir.display(),
            left_out.len(),
            left_out.join(", ")
        );
    }
    for e in runs.iter().flat_map(|r| &r.load_errors) {
        eprintln!("warning: {}: {e}", results_dir.display());
    }
    for n in runs.iter().flat_map(|r| &r.notes) {
        eprintln!("note: {}: {n}", results_dir.display());
    }
    let groups = group_runs(&runs, &criteria);
    let date = match (&opts.date, opts.stable) {
        (Some(d), _) => d.clone(),
        (None, true) => view::STABLE_BLANK.to_string(),
        (None, false) => chrono::Local::now().format("%Y-%m-%d %H:%M").to_string(),
    };
    let markdown = Markdown::from_file(opts.template.as_deref())?;
    let report = Report::new(
        Judged {
            sweep,
            criteria,
            criteria_source,
            runs,
            groups,
            ladder: LadderState::read(&results),
            left_out,
        },
        date,
        opts.stable,
    );
    let mut written = Vec::new();
    for exporter in [&Plots as &dyn Exporter, &markdown] {
        for out in exporter.export(&report)? {
            let path = results.path().join(&out.name);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            write_atomic(&path, &String::from_utf8_lossy(&out.bytes))?;
            written.push(path);
        }
    }
    if let Some(j) = &opts.junit {
        write_atomic(j, &report.junit())?;
    }
    let report_path = written.pop().expect("the Markdown exporter makes one file");
    Ok(ReportOutcome {
        report,
        report_path,
        plots: written,
    })
}

/// Checks the output options before any work: a `--template` that is not a readable file or
/// does not compile, and a `--junit` path whose folder does not exist or that names a folder.
/// Every problem, one line each (`--flag PATH: why`), so a long sweep never trains only to fail
/// at the report.
pub fn check_outputs(template: Option<&Path>, junit: Option<&Path>) -> Vec<String> {
    let mut problems: Vec<String> = template
        .and_then(export::check_template)
        .into_iter()
        .collect();
    if let Some(j) = junit {
        let parent = j
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if j.is_dir() {
            problems.push(format!(
                "--junit {}: is a folder; give a file path such as {}",
                j.display(),
                j.join("junit.xml").display()
            ));
        } else if !parent.is_dir() {
            problems.push(format!(
                "--junit {}: the folder {} does not exist; create it first",
                j.display(),
                parent.display()
            ));
        }
    }
    problems
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

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn printable_drops_terminal_codes_and_control_characters() {
        assert_eq!(
            printable("\u{1b}[31mRuntimeError\u{1b}[0m: boom\u{7}\u{0}\tx\ny"),
            "RuntimeError: boom\tx\ny"
        );
        assert_eq!(printable("10%\r50%"), "10%\n50%");
        assert_eq!(printable("plain"), "plain");
    }
}
